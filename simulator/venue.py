"""What every simulated venue shares: the clock, markets, accounts, faults and formatting."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable
from decimal import Decimal

from aiohttp import web

from simulator.accounts import Account
from simulator.faults import Bans, Faults, SocketRegistry, fault_middleware
from simulator.market import Market
from simulator.stats import AnswerCounts, add_stats_routes, counting_middleware

KST = dt.timezone(dt.timedelta(hours=9))


@dataclasses.dataclass
class Context:
    """Shared by all venues of one simulator: the clock (sim ms), the seed and the faults."""

    clock_ms: Callable[[], int]
    seed: int
    faults: Faults
    answers: AnswerCounts = dataclasses.field(default_factory=AnswerCounts)


class Venue:
    """Base of a protocol module: markets and accounts of one venue, plus its aiohttp app."""

    name = "venue"

    def __init__(self, ctx: Context, markets: dict[str, Market], accounts: list[Account]) -> None:
        self.ctx = ctx
        self.markets = markets
        self.accounts = {a.key: a for a in accounts}
        self.sockets = SocketRegistry(ctx.faults)
        self.rng = random.Random(f"{ctx.seed}:{self.name}:faults")
        self.bans = Bans()

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                counting_middleware(self.ctx.answers, self.name),
                self._unknown_route_middleware(),
                fault_middleware(self.ctx.faults, self.rng, self.server_error),
            ]
        )
        add_stats_routes(app, self.ctx.answers)
        self.routes(app)
        return app

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def unknown_route(self, status: int, method: str, path: str) -> web.Response:
        """The answer to a path (404) or method (405) the venue does not serve, in the venue's
        JSON error shape (a client decodes it like any other error)."""
        raise NotImplementedError

    def _unknown_route_middleware(self):
        @web.middleware
        async def middleware(request: web.Request, handler) -> web.StreamResponse:
            try:
                return await handler(request)
            except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
                return self.unknown_route(exc.status, request.method, request.path)

        return middleware

    def server_error(self) -> web.Response:
        raise NotImplementedError

    def on_trades(self, symbol: str, trades: dict) -> None:
        """New public trades of ``symbol`` (arrays): match resting orders, push to streams."""
        raise NotImplementedError

    def on_tick(self, now_ms: int) -> None:
        """Called every simulator tick after the trades (periodic stream frames)."""

    def now(self) -> int:
        return self.ctx.clock_ms()


def fmt(value: Decimal | None) -> str:
    """A Decimal as a plain string with no exponent and no trailing zeros ("0.0005", "5002.5")."""
    if value is None:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def fixed(value: Decimal | float, places: int) -> str:
    """Binance style: fixed decimals ("0.01000000")."""
    return f"{Decimal(str(value)):.{places}f}"


def utc_naive(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def kst_naive(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, KST).strftime("%Y-%m-%dT%H:%M:%S")


def kst_iso(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, KST).isoformat(timespec="seconds")


def parse_time(text: str) -> int:
    """ISO 8601 (``Z``, an offset, or none = UTC; ``T`` or a space) to ms."""
    value = text.strip().replace(" ", "T").replace("Z", "+00:00")
    stamp = dt.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp() * 1000)


def num(value: float, places: int = 8) -> float:
    """A market-data JSON number, rounded to ``places`` decimals."""
    return round(float(value), places)
