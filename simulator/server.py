"""The simulator: builds markets, accounts and venues, serves them on 127.0.0.1, ticks the clock.

Python API::

    async with Simulator(SimConfig(seed=1)) as sim:
        sim.upbit_url, sim.binance_url, sim.futures_url, sim.bithumb_url  # 127.0.0.1:<port>
        sim.set_faults(error_ratio=0.5); await sim.drop_websockets()

    handle = start_in_thread(SimConfig())    # for sync tests; handle.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from decimal import Decimal

import numpy as np
from aiohttp import web

from simulator.accounts import Account
from simulator.bithumb.rest import bithumb_krw_tick
from simulator.faults import Faults
from simulator.market import DAY_MS, Market, SymbolSpec, csv_trades, krw_tick
from simulator.stats import AnswerCounts
from simulator.symbols import MarketScale, generated_symbols, zipf_rates
from simulator.venue import Context, Venue

VENUES = ("upbit", "binance", "futures", "bithumb")


def default_symbols() -> dict[str, list[SymbolSpec]]:
    """Realistic levels and precision for each venue's default symbols."""
    return {
        "upbit": [
            SymbolSpec("KRW-BTC", "BTC", "KRW", 1.45e8, krw_tick, 1e-8, 0.0012, 2.0),
            SymbolSpec("KRW-ETH", "ETH", "KRW", 5.2e6, krw_tick, 1e-8, 0.0015, 20.0),
            SymbolSpec("KRW-XRP", "XRP", "KRW", 3100.0, krw_tick, 1e-8, 0.002, 50_000.0),
            SymbolSpec("KRW-SOL", "SOL", "KRW", 280_000.0, krw_tick, 1e-8, 0.0018, 100.0),
        ],
        "binance": [
            SymbolSpec("BTCUSDT", "BTC", "USDT", 1.0e5, 0.01, 1e-5, 0.0012, 10.0),
            SymbolSpec("ETHUSDT", "ETH", "USDT", 3600.0, 0.01, 1e-4, 0.0015, 200.0),
            SymbolSpec("SOLUSDT", "SOL", "USDT", 190.0, 0.01, 1e-3, 0.0018, 1500.0),
            SymbolSpec("XRPUSDT", "XRP", "USDT", 2.2, 0.0001, 0.1, 0.002, 200_000.0),
        ],
        "futures": [
            SymbolSpec("BTCUSDT", "BTC", "USDT", 1.0e5, 0.1, 1e-3, 0.0012, 50.0),
            SymbolSpec("ETHUSDT", "ETH", "USDT", 3600.0, 0.01, 1e-3, 0.0015, 800.0),
        ],
        "bithumb": [
            SymbolSpec("KRW-BTC", "BTC", "KRW", 1.45e8, bithumb_krw_tick, 1e-8, 0.0012, 2.0),
            SymbolSpec("KRW-ETH", "ETH", "KRW", 5.2e6, bithumb_krw_tick, 1e-8, 0.0015, 20.0),
            SymbolSpec("KRW-XRP", "XRP", "KRW", 3100.0, bithumb_krw_tick, 1e-8, 0.002, 50_000.0),
        ],
    }


#: Demo credentials. The Binance spot pair is the documented HMAC test vector's key pair.
DEFAULT_ACCOUNTS = {
    "upbit": [
        (
            "sim-upbit-access-key",
            "sim-upbit-secret-key",
            {"KRW": "100000000", "BTC": "1", "ETH": "10"},
        )
    ],
    "binance": [
        (
            "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
            "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
            {"USDT": "100000", "BTC": "1", "ETH": "10"},
        )
    ],
    "futures": [("sim-futures-api-key", "sim-futures-secret-key", {"USDT": "100000"})],
    "bithumb": [
        (
            "sim-bithumb-access-key",
            "sim-bithumb-secret-key",
            {"KRW": "100000000", "BTC": "1", "ETH": "10"},
        )
    ],
}


@dataclasses.dataclass
class SimConfig:
    """Everything the simulator needs. Ports 0 pick a free port. Times in ms UTC."""

    host: str = "127.0.0.1"
    upbit_port: int = 0
    binance_port: int = 0
    futures_port: int = 0
    bithumb_port: int = 0
    venues: tuple[str, ...] = VENUES
    seed: int = 7
    now_ms: int | None = None  # the simulated clock at start (default: wall clock)
    speed: float = 1.0  # simulated ms per wall ms
    history_days: float = 2.0
    trade_rate: float = 2.0  # live trades per second per symbol
    tick_s: float = 0.1  # how often the clock advances and trades are published
    spread_bps: float = 4.0
    symbols: dict[str, list[SymbolSpec]] = dataclasses.field(default_factory=default_symbols)
    accounts: dict[str, list[tuple[str, str, dict[str, str]]]] = dataclasses.field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ACCOUNTS.items()}
    )
    replay: dict[str, str] = dataclasses.field(default_factory=dict)  # symbol -> candle CSV
    faults: Faults = dataclasses.field(default_factory=Faults)
    #: A whole market per venue (hundreds of symbols, Zipf trade rates, bursts); off by default.
    scale: MarketScale = dataclasses.field(default_factory=MarketScale)

    def venue_symbols(self, venue: str) -> list[tuple[SymbolSpec, float]]:
        """The symbols ``venue`` serves and each one's mean live trade rate (per second)."""
        specs = list(self.symbols.get(venue, []))
        if not self.scale.symbols:
            return [(spec, self.trade_rate) for spec in specs]
        rng = np.random.default_rng([self.seed, VENUES.index(venue), 20])
        tick = {"upbit": krw_tick, "bithumb": bithumb_krw_tick}.get(venue)
        specs = generated_symbols(venue, specs, self.scale.symbols, rng, tick)
        return list(zip(specs, zipf_rates(len(specs), self.trade_rate, self.scale.zipf)))


class Simulator:
    """Serves the configured venues on one asyncio loop."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config = config or SimConfig()
        unknown = set(config.venues) - set(VENUES)
        if unknown:
            raise ValueError(f"unknown venue(s) {sorted(unknown)}; use {', '.join(VENUES)}")
        self._anchor = config.now_ms if config.now_ms is not None else self._default_anchor()
        self._t0 = time.monotonic()
        self.ctx = Context(self.clock_ms, config.seed, config.faults)
        self.venues: dict[str, Venue] = {}
        scale = config.scale
        bursts = (scale.burst_every_s, scale.burst_s, scale.burst_factor)
        for name in config.venues:
            markets = {
                spec.symbol: Market(
                    name,
                    spec,
                    seed=config.seed,
                    now_ms=self._anchor,
                    history_days=config.history_days,
                    trade_rate=rate,
                    replay_csv=config.replay.get(spec.symbol),
                    bursts=bursts if scale.burst_every_s else None,
                )
                for spec, rate in config.venue_symbols(name)
            }
            accounts = [
                Account(k, s, {a: Decimal(v) for a, v in b.items()})
                for k, s, b in config.accounts.get(name, [])
            ]
            self.venues[name] = _venue_class(name)(
                self.ctx, markets, accounts, spread_bps=config.spread_bps
            )
        self.ports: dict[str, int] = {}
        self._runners: list[web.AppRunner] = []
        self._ticker: asyncio.Task | None = None

    def _default_anchor(self) -> int:
        """Wall clock; with a replay, the first CSV candle plus ``history_days`` (at most the
        last CSV trade), so the rest of the CSV plays out at ``speed``."""
        now = int(time.time() * 1000)
        if not self.config.replay:
            return now
        spans = [csv_trades(path, None)[0][[0, -1]] for path in self.config.replay.values()]
        first = max(int(span[0]) for span in spans)
        last = min(int(span[1]) for span in spans)
        return min(first + int(self.config.history_days * DAY_MS), last)

    def clock_ms(self) -> int:
        """The simulated clock (ms UTC)."""
        return self._anchor + int((time.monotonic() - self._t0) * 1000 * self.config.speed)

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> Simulator:
        if self.config.now_ms is not None or self.config.replay:
            # A chosen clock starts running now, not while history was built. A wall-clock
            # anchor keeps running, so the simulated clock stays on real time (signed requests
            # carry real timestamps and must fall inside recvWindow).
            self._t0 = time.monotonic()
        ports = {
            "upbit": self.config.upbit_port,
            "binance": self.config.binance_port,
            "futures": self.config.futures_port,
            "bithumb": self.config.bithumb_port,
        }
        for name, venue in self.venues.items():
            runner = web.AppRunner(venue.app(), access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, self.config.host, ports[name])
            await site.start()
            self._runners.append(runner)
            self.ports[name] = runner.addresses[0][1]
        self._ticker = asyncio.ensure_future(self._tick_forever())
        return self

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for venue in self.venues.values():
            await venue.sockets.drop_all()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _tick_forever(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.config.tick_s)

    def tick(self) -> None:
        """Advance every market to the clock; publish and match the new trades."""
        now = self.clock_ms()
        for venue in self.venues.values():
            for symbol, market in venue.markets.items():
                new = market.advance(now)
                if new is not None:
                    venue.on_trades(symbol, new)
            venue.on_tick(now)

    # ---- test API -----------------------------------------------------------------------------

    def url(self, venue: str, scheme: str = "http") -> str:
        return f"{scheme}://{self.config.host}:{self.ports[venue]}"

    upbit_url = property(lambda self: self.url("upbit"))
    upbit_ws_url = property(lambda self: self.url("upbit", "ws"))
    binance_url = property(lambda self: self.url("binance"))
    binance_ws_url = property(lambda self: self.url("binance", "ws"))
    futures_url = property(lambda self: self.url("futures"))
    futures_ws_url = property(lambda self: self.url("futures", "ws"))
    bithumb_url = property(lambda self: self.url("bithumb"))
    bithumb_ws_url = property(lambda self: self.url("bithumb", "ws"))

    @property
    def answers(self) -> AnswerCounts:
        """Counters of the REST answers given, by venue and status (also ``GET /_sim/stats``)."""
        return self.ctx.answers

    @property
    def faults(self) -> Faults:
        return self.config.faults

    def set_faults(self, **changes) -> None:
        """Change fault knobs at run time (see :class:`Faults`)."""
        self.config.faults.update(**changes)

    async def drop_websockets(self) -> int:
        """Close every open WebSocket of every venue now; returns how many."""
        return sum([await v.sockets.drop_all() for v in self.venues.values()])

    def print_trade(
        self,
        venue: str,
        symbol: str,
        price: float,
        qty: float | None = None,
        buyer_maker: bool = False,
    ) -> None:
        """Print one public trade now at ``price`` (tests move the market with it): it is
        published, matched against resting orders, and the price walk continues from there."""
        market = self.market(venue, symbol)
        now = self.clock_ms()
        new = market.advance(now)
        if new is not None:
            self.venues[venue].on_trades(symbol, new)
        qty = market.spec.step * 10 if qty is None else qty
        market.log.append(
            np.array([max(now, market.log.ts[market.log.size - 1])]),
            np.array([float(price)]),
            np.array([float(qty)]),
            np.array([buyer_maker]),
        )
        if market.feed is not None:
            market.feed.price = float(price)
        new = market.advance(int(market.log.ts[market.log.size - 1]))
        if new is not None:
            self.venues[venue].on_trades(symbol, new)

    def market(self, venue: str, symbol: str) -> Market:
        return self.venues[venue].markets[symbol]

    def account(self, venue: str, key: str) -> Account:
        return self.venues[venue].accounts[key]


def _venue_class(name: str):
    if name == "upbit":
        from simulator.upbit.rest import UpbitVenue

        return UpbitVenue
    if name == "binance":
        from simulator.binance.spot import BinanceSpotVenue

        return BinanceSpotVenue
    if name == "bithumb":
        from simulator.bithumb.rest import BithumbVenue

        return BithumbVenue
    from simulator.binance.futures import FuturesVenue

    return FuturesVenue


class SimulatorThread:
    """A simulator running on its own event loop in a daemon thread (for sync tests)."""

    def __init__(self, config: SimConfig | None = None, timeout_s: float = 30.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.sim = Simulator(config)
        ready = threading.Event()
        self._error: BaseException | None = None

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self.sim.start())
            except BaseException as exc:  # reported to the starting thread
                self._error = exc
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="simexchange", daemon=True)
        self.thread.start()
        if not ready.wait(timeout_s):
            raise TimeoutError("the simulator did not start in time")
        if self._error is not None:
            raise self._error

    def __getattr__(self, name: str):
        return getattr(self.sim, name)

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the simulator's loop and return its result (awaits coroutines)."""

        async def runner():
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(30)

    def set_faults(self, **changes) -> None:
        self.call(lambda: self.sim.set_faults(**changes))

    def print_trade(self, *args, **kwargs) -> None:
        self.call(lambda: self.sim.print_trade(*args, **kwargs))

    def drop_websockets(self) -> int:
        return self.call(self.sim.drop_websockets)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.call(self.sim.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self) -> SimulatorThread:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_in_thread(config: SimConfig | None = None) -> SimulatorThread:
    """Start a simulator in a background thread; use the handle's urls, then ``stop()``."""
    return SimulatorThread(config)
