"""Price process, trade log and candles of the simulated venues.

One trade log per symbol is the single source of truth: REST candles, WebSocket trades and
klines, tickers and the matching engine all read it, so every view agrees. History is made of
1m candles turned into four trades each (open, high, low, close, in that order, at :00, :15,
:30 and :45 s), so candles of any timeframe aggregate exactly from the log. Live trades follow
a GARCH(1,1) return process with Poisson arrivals, or replay a candle CSV.

The price processes that feed the log are :mod:`simulator.prices`.

Times are int ms UTC; prices and volumes are floats (market data), rounded to the symbol's tick
and step. Pure: numpy and the standard library only; deterministic given a seed.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from simulator.prices import MINUTE_MS, SyntheticFeed, csv_trades, history_trades
from simulator.symbols import (
    UPBIT_KRW_BANDS,
    SymbolSpec,
    krw_tick,
    round_price,
    step_decimals,
    tick_of,
)

# The symbols' spec and ticks live in simulator.symbols; importers read them here too.
__all__ = [
    "DAY_MS",
    "MINUTE_MS",
    "UPBIT_KRW_BANDS",
    "CandleArrays",
    "Frame",
    "Market",
    "SymbolSpec",
    "TradeLog",
    "aggregate",
    "krw_tick",
    "round_price",
    "step_decimals",
    "symbol_seed",
    "tick_of",
]

DAY_MS = 86_400_000
_WEEK_OFFSET_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday; weeks start on Monday 00:00 UTC


def symbol_seed(seed: int, venue: str, symbol: str) -> np.random.Generator:
    """A generator that depends only on the seed and the names (stable across runs)."""
    return np.random.default_rng([seed, zlib.crc32(f"{venue}:{symbol}".encode())])


class TradeLog:
    """Append-only trades of one symbol: ts_ms, price, qty, buyer_maker; ids are 1-based."""

    def __init__(self, capacity: int = 4096) -> None:
        self.ts = np.zeros(capacity, dtype=np.int64)
        self.price = np.zeros(capacity, dtype=np.float64)
        self.qty = np.zeros(capacity, dtype=np.float64)
        self.buyer_maker = np.zeros(capacity, dtype=bool)
        self.size = 0

    def append(self, ts, price, qty, buyer_maker) -> None:
        n = len(ts)
        if n == 0:
            return
        if self.size and int(ts[0]) < int(self.ts[self.size - 1]):
            raise ValueError("trades must be appended in time order")
        need = self.size + n
        if need > len(self.ts):
            cap = max(need, 2 * len(self.ts))
            for name in ("ts", "price", "qty", "buyer_maker"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[: self.size] = old[: self.size]
                setattr(self, name, new)
        sl = slice(self.size, need)
        self.ts[sl], self.price[sl], self.qty[sl], self.buyer_maker[sl] = (
            ts,
            price,
            qty,
            buyer_maker,
        )
        self.size = need

    def index_before(self, ts_ms: int) -> int:
        """Number of trades with ts < ts_ms."""
        return int(np.searchsorted(self.ts[: self.size], ts_ms, side="left"))

    def index_through(self, ts_ms: int) -> int:
        """Number of trades with ts <= ts_ms."""
        return int(np.searchsorted(self.ts[: self.size], ts_ms, side="right"))

    def view(self, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        hi = self.size if hi is None else hi
        return {
            "id": np.arange(lo + 1, hi + 1, dtype=np.int64),
            "ts": self.ts[lo:hi],
            "price": self.price[lo:hi],
            "qty": self.qty[lo:hi],
            "buyer_maker": self.buyer_maker[lo:hi],
        }


# ---- timeframes ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Frame:
    """A candle grid: ``n`` units of s, m, h, d (epoch aligned), w (Monday 00:00 UTC), M or y.

    ``zone_ms`` moves the grid to a zone's wall clock: Bithumb's days, weeks, months and
    240-minute candles open on KST boundaries (``zone_ms`` = 9 h, so a day opens 15:00 UTC).
    """

    unit: str
    n: int = 1
    zone_ms: int = 0

    _FIXED = {"s": 1000, "m": MINUTE_MS, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}

    def __post_init__(self) -> None:
        if (self.unit not in self._FIXED and self.unit not in ("M", "y")) or self.n < 1:
            raise ValueError(f"unknown candle frame {self.n}{self.unit}")

    @property
    def width_ms(self) -> int | None:
        """Length in ms for fixed-width frames, None for months and years."""
        base = self._FIXED.get(self.unit)
        return None if base is None else base * self.n

    def start(self, ts: np.ndarray) -> np.ndarray:
        """Open time of the candle that holds each ts (ms)."""
        local = ts + self.zone_ms
        width = self.width_ms
        if width is not None:
            offset = _WEEK_OFFSET_MS if self.unit == "w" else 0
            return local - (local - offset) % width - self.zone_ms
        code = "M" if self.unit == "M" else "Y"
        months = local.astype("datetime64[ms]").astype(f"datetime64[{code}]")
        months = months - months.astype(np.int64) % self.n
        return months.astype("datetime64[ms]").astype(np.int64) - self.zone_ms

    def next_open(self, open_ms: int) -> int:
        """Open time of the candle after the one opening at ``open_ms``."""
        width = self.width_ms
        if width is not None:
            return open_ms + width
        code = "M" if self.unit == "M" else "Y"
        local = np.datetime64(open_ms + self.zone_ms, "ms").astype(f"datetime64[{code}]")
        start = local + self.n
        return int(start.astype("datetime64[ms]").astype(np.int64)) - self.zone_ms


@dataclasses.dataclass
class CandleArrays:
    """Non-empty candles, oldest first, as parallel arrays."""

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    count: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray
    last_ts: np.ndarray
    taker_buy_volume: np.ndarray
    taker_buy_quote: np.ndarray

    def __len__(self) -> int:
        return len(self.open_time)

    def tail(self, n: int) -> CandleArrays:
        return CandleArrays(
            **{
                f.name: getattr(self, f.name)[-n:] if n else getattr(self, f.name)[:0]
                for f in dataclasses.fields(self)
            }
        )


def aggregate(trades: dict[str, np.ndarray], frame: Frame) -> CandleArrays:
    """Aggregate trades (time-ordered) into the non-empty candles of ``frame``."""
    ts, price, qty = trades["ts"], trades["price"], trades["qty"]
    if len(ts) == 0:
        empty_i = np.zeros(0, dtype=np.int64)
        empty_f = np.zeros(0, dtype=np.float64)
        return CandleArrays(
            empty_i,
            empty_f,
            empty_f,
            empty_f,
            empty_f,
            empty_f,
            empty_f,
            empty_i,
            empty_i,
            empty_i,
            empty_i,
            empty_f,
            empty_f,
        )
    buckets = frame.start(ts)
    cut = np.flatnonzero(np.diff(buckets)) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [len(ts)])) - 1
    quote = price * qty
    taker_buy = ~trades["buyer_maker"]
    return CandleArrays(
        open_time=buckets[starts],
        open=price[starts],
        high=np.maximum.reduceat(price, starts),
        low=np.minimum.reduceat(price, starts),
        close=price[ends],
        volume=np.add.reduceat(qty, starts),
        quote_volume=np.add.reduceat(quote, starts),
        count=np.diff(np.concatenate((starts, [len(ts)]))),
        first_id=trades["id"][starts],
        last_id=trades["id"][ends],
        last_ts=ts[ends],
        taker_buy_volume=np.add.reduceat(np.where(taker_buy, qty, 0.0), starts),
        taker_buy_quote=np.add.reduceat(np.where(taker_buy, quote, 0.0), starts),
    )


class Market:
    """One symbol on one venue: its trade log, visible up to the simulator clock."""

    def __init__(
        self,
        venue: str,
        spec: SymbolSpec,
        *,
        seed: int,
        now_ms: int,
        history_days: float,
        trade_rate: float,
        replay_csv: str | None = None,
        bursts: tuple[float, float, float] | None = None,
    ) -> None:
        self.venue, self.spec, self.symbol = venue, spec, spec.symbol
        self.log = TradeLog()
        self.visible = 0
        self.feed: SyntheticFeed | None = None
        rng = symbol_seed(seed, venue, spec.symbol)
        if replay_csv:
            self.log.append(*csv_trades(replay_csv, spec))
        else:
            start = now_ms - now_ms % MINUTE_MS
            minutes = int(history_days * 1440)
            arrays, last, garch = history_trades(spec, rng, start - minutes * MINUTE_MS, minutes)
            self.log.append(*arrays)
            self.feed = SyntheticFeed(spec, rng, start, last, trade_rate, garch, bursts)
        self.advance(now_ms)

    def advance(self, now_ms: int) -> dict[str, np.ndarray] | None:
        """Make trades up to ``now_ms`` visible; return the new ones (or None)."""
        if self.feed is not None:
            new = self.feed.until(now_ms)
            if new is not None:
                self.log.append(*new)
        hi = self.log.index_through(now_ms)
        if hi <= self.visible:
            return None
        lo, self.visible = self.visible, hi
        return self.log.view(lo, hi)

    def trades(self, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        return self.log.view(lo, self.visible if hi is None else min(hi, self.visible))

    @property
    def last_price(self) -> float:
        return float(self.log.price[self.visible - 1]) if self.visible else self.spec.price

    def candles(
        self, frame: Frame, end_ms: int | None = None, start_ms: int | None = None
    ) -> CandleArrays:
        """Non-empty candles whose open time is in [start_ms, end_ms) (bounds optional)."""
        ts = self.log.ts[: self.visible]

        def cut(bound: int) -> int:  # trades before the first candle boundary >= bound
            first = int(frame.start(np.array([bound], dtype=np.int64))[0])
            boundary = bound if first == bound else frame.next_open(first)
            return int(np.searchsorted(ts, boundary, side="left"))

        lo = 0 if start_ms is None else cut(start_ms)
        hi = self.visible if end_ms is None else cut(end_ms)
        return aggregate(self.log.view(lo, max(lo, hi)), frame)
