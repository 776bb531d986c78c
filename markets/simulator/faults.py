"""Fault knobs and rate limits shared by the simulated venues.

:class:`Faults` is a mutable settings object: change its fields at run time (from the loop's
thread, or through ``Simulator.set_faults`` from any thread) and the next request sees them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Awaitable, Callable

from aiohttp import web


@dataclasses.dataclass
class Faults:
    """Test knobs. Times in seconds unless the name says ms; ratios are fractions (0..1)."""

    latency_ms: float = 0.0  # added before every REST response
    error_ratio: float = 0.0  # share of REST requests answered with a 5xx, before any effect
    rate_limits: bool = True  # enforce the venue's request budgets (429 when exceeded)
    rate_limit_budget: int | None = None  # override every budget (requests or weight per window)
    ws_drop_every_s: float | None = None  # close every WebSocket this long after it opened
    order_delay_s: float = 0.0  # order placement executes, then the response waits this long
    retry_after: bool = True  # send Retry-After (seconds) on 429 and 418
    # A client that sends this many requests while told to wait (before a 429's Retry-After)
    # is banned with 418 for ``ban_s`` seconds, doubled for each further ban (None = never).
    ban_after: int | None = None
    ban_s: float = 120.0
    # Malformed candle rows in REST candle answers (klines): the candles opening at these times
    # (ms), and about this share of all others (the same ones on every request), are sent with
    # their close above their high. Off by default.
    malformed_candle_times: tuple[int, ...] = ()
    malformed_candle_share: float = 0.0

    def malformed_candle(self, open_time_ms: int) -> bool:
        """Whether the candle opening at ``open_time_ms`` is sent malformed."""
        if open_time_ms in self.malformed_candle_times:
            return True
        if not self.malformed_candle_share:
            return False
        # A fixed pseudo-random draw per open time (Knuth's multiplicative hash).
        draw = (open_time_ms // 1000 * 2_654_435_761) % 2**32 / 2**32
        return draw < self.malformed_candle_share

    def update(self, **changes) -> None:
        for name, value in changes.items():
            if not hasattr(self, name):
                raise ValueError(
                    f"unknown fault knob {name!r}; use one of "
                    f"{', '.join(f.name for f in dataclasses.fields(self))}"
                )
            setattr(self, name, value)


class Budget:
    """Fixed-window counters: ``spend(group, cost)`` returns (allowed, used, limit, reset_s)."""

    def __init__(self, limits: dict[str, tuple[int, float]], clock=time.monotonic) -> None:
        self.limits = limits  # group -> (limit per window, window seconds)
        self.clock = clock
        self.windows: dict[str, tuple[float, int]] = {}

    def spend(self, group: str, cost: int, override: int | None = None, who: str = ""):
        limit, width = self.limits[group]
        if override is not None:
            limit = override
        now = self.clock()
        start = now - now % width
        slot = f"{group}:{who}"
        w_start, used = self.windows.get(slot, (start, 0))
        if w_start != start:
            used = 0
        reset = start + width - now
        if used + cost > limit:
            self.windows[slot] = (start, used)
            return False, used, limit, reset
        used += cost
        self.windows[slot] = (start, used)
        return True, used, limit, reset


class Bans:
    """418 for a client that keeps sending while told to wait, as Binance and Upbit do ("IP
    auto-banned after ignoring 429s"; the ban grows for repeat offenders)."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.retry_at: dict[str, float] = {}  # who -> when the last 429 said to come back
        self.strikes: dict[str, int] = {}
        self.banned_until: dict[str, float] = {}
        self.bans: dict[str, int] = {}

    def check(self, who: str, faults: Faults) -> float:
        """Seconds left on ``who``'s ban (0.0: not banned); counts a request sent too early."""
        now = self.clock()
        left = self.banned_until.get(who, 0.0) - now
        if left > 0:
            return left
        if faults.ban_after is None or now >= self.retry_at.get(who, 0.0):
            return 0.0
        self.strikes[who] = self.strikes.get(who, 0) + 1
        if self.strikes[who] < faults.ban_after:
            return 0.0
        self.bans[who] = self.bans.get(who, 0) + 1
        length = faults.ban_s * 2 ** (self.bans[who] - 1)
        self.banned_until[who] = now + length
        self.strikes[who] = 0
        return length

    def refused(self, who: str, wait_s: float) -> None:
        """A 429 told ``who`` to wait ``wait_s`` seconds."""
        self.retry_at[who] = max(self.retry_at.get(who, 0.0), self.clock() + wait_s)


def retry_after_value(seconds: float) -> str:
    """``Retry-After`` as the venues send it: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fault_middleware(
    faults: Faults, rng: random.Random, server_error: Callable[[], web.Response]
) -> Callable:
    """Latency and injected 5xx for every HTTP request except WebSocket upgrades."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.headers.get("Upgrade", "").lower() == "websocket"
                or request.path.startswith("/_sim/")):
            return await handler(request)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.error_ratio and rng.random() < faults.error_ratio:
            return server_error()
        return await handler(request)

    return middleware


async def delay_order_response(faults: Faults) -> None:
    """Called after an order was executed: hold the response past the client's timeout."""
    if faults.order_delay_s:
        await asyncio.sleep(faults.order_delay_s)


class SocketRegistry:
    """Open WebSocket responses of a venue, so they can be dropped on demand or on a timer."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.sockets: set[web.WebSocketResponse] = set()
        self._closing: set[asyncio.Future] = set()

    def add(self, ws: web.WebSocketResponse) -> None:
        self.sockets.add(ws)
        if self.faults.ws_drop_every_s:
            loop = asyncio.get_running_loop()
            loop.call_later(self.faults.ws_drop_every_s, self._close_soon, ws)

    def discard(self, ws: web.WebSocketResponse) -> None:
        self.sockets.discard(ws)

    def _close_soon(self, ws: web.WebSocketResponse) -> None:
        if not ws.closed:
            task = asyncio.ensure_future(ws.close(code=1001, message=b"simulated drop"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def drop_all(self) -> int:
        """Close every open socket now (code 1001); returns how many were closed."""
        victims = [ws for ws in self.sockets if not ws.closed]
        await asyncio.gather(
            *(ws.close(code=1001, message=b"simulated drop") for ws in victims),
            return_exceptions=True,
        )
        return len(victims)
