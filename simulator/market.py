"""Price process, trade log and candles of the simulated venues.

One trade log per symbol is the single source of truth: REST candles, WebSocket trades and
klines, tickers and the matching engine all read it, so every view agrees. History is made of
1m candles turned into four trades each (open, high, low, close, in that order, at :00, :15,
:30 and :45 s), so candles of any timeframe aggregate exactly from the log. Live trades follow
a GARCH(1,1) return process with Poisson arrivals, or replay a candle CSV.

Times are int ms UTC; prices and volumes are floats (market data), rounded to the symbol's tick
and step. Pure: numpy and the standard library only; deterministic given a seed.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import zlib
from collections.abc import Callable

import numpy as np

MINUTE_MS = 60_000
DAY_MS = 86_400_000
_WEEK_OFFSET_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday; weeks start on Monday 00:00 UTC


@dataclasses.dataclass(frozen=True)
class SymbolSpec:
    """A simulated symbol: its code on the venue, assets, starting level and precision."""

    symbol: str
    base: str
    quote: str
    price: float
    tick: float | Callable[[float], float]  # price step, or a function of the price (KRW bands)
    step: float  # quantity step (base units)
    vol_1m: float = 0.0012  # stdev of 1-minute log returns (fraction)
    volume_1m: float = 1.0  # mean base volume per minute


#: Upbit's KRW price units by price floor (policy of 2025-07-31; rows below 100 KRW unconfirmed).
UPBIT_KRW_BANDS = (
    (1_000_000, 1000.0),
    (500_000, 500.0),
    (100_000, 100.0),
    (50_000, 50.0),
    (10_000, 10.0),
    (5_000, 5.0),
    (100, 1.0),
    (10, 0.1),
    (1, 0.01),
    (0.1, 0.001),
)


def krw_tick(price: float, bands=UPBIT_KRW_BANDS) -> float:
    """The KRW price unit for ``price`` in ``bands`` (Upbit's unless given)."""
    return next((tick for floor, tick in bands if price >= floor), 0.0001)


def tick_of(spec: SymbolSpec, price: float) -> float:
    return spec.tick(price) if callable(spec.tick) else spec.tick


def round_price(spec: SymbolSpec, price: float) -> float:
    tick = tick_of(spec, price)
    decimals = max(0, -math.floor(math.log10(tick)) + 1)
    return round(round(price / tick) * tick, decimals)


def _step_decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step)))


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


# ---- price processes ----------------------------------------------------------------------


@dataclasses.dataclass
class Garch:
    """GARCH(1,1) on log returns: var' = omega + alpha * r^2 + beta * var."""

    target_var: float
    alpha: float = 0.08
    beta: float = 0.9

    def __post_init__(self) -> None:
        self.omega = self.target_var * (1 - self.alpha - self.beta)
        self.var = self.target_var

    def returns(self, shocks: np.ndarray) -> np.ndarray:
        out = np.empty(len(shocks))
        var, omega, alpha, beta = self.var, self.omega, self.alpha, self.beta
        for i, z in enumerate(shocks.tolist()):
            r = math.sqrt(var) * z
            out[i] = r
            var = omega + alpha * r * r + beta * var
        self.var = var
        return out


def history_trades(spec: SymbolSpec, rng: np.random.Generator, start_ms: int, minutes: int):
    """Seeded 1m candles turned into four trades each (open, high, low, close). Returns arrays
    (ts, price, qty, buyer_maker) and the last close."""
    garch = Garch(spec.vol_1m**2)
    rets = garch.returns(rng.standard_normal(minutes))
    closes = spec.price * np.exp(np.cumsum(rets))
    opens = np.concatenate(([spec.price], closes[:-1]))
    wick = np.abs(rng.standard_normal((2, minutes))) * spec.vol_1m * 0.6
    highs = np.maximum(opens, closes) * (1 + wick[0])
    lows = np.minimum(opens, closes) * (1 - wick[1])
    prices = np.stack([opens, highs, lows, closes], axis=1).reshape(-1)
    prices = np.array([round_price(spec, p) for p in prices.tolist()])
    vol = rng.lognormal(math.log(spec.volume_1m) - 0.5, 1.0, minutes)
    qty = np.repeat(vol / 4, 4)
    digits = _step_decimals(spec.step)
    qty = np.maximum(np.round(qty, digits), spec.step)
    minute_starts = start_ms + MINUTE_MS * np.arange(minutes, dtype=np.int64)
    ts = (minute_starts[:, None] + np.array([0, 15_000, 30_000, 45_000])).reshape(-1)
    maker = rng.random(len(ts)) < 0.5
    return (ts, prices, qty, maker), float(closes[-1]) if minutes else spec.price, garch


class SyntheticFeed:
    """Live trades: Poisson arrivals (``rate`` per second) and GARCH(1,1) returns.

    Arrivals, returns, sizes and sides draw from four separate streams and the log price is
    accumulated one trade at a time, so the trades do not depend on how often ``until`` is
    called (the simulator's tick), only on the seed.
    """

    def __init__(
        self,
        spec: SymbolSpec,
        rng: np.random.Generator,
        start_ms: int,
        price: float,
        rate: float,
        garch: Garch,
    ) -> None:
        self.spec, self.rate = spec, max(rate, 1e-6)
        streams = np.random.SeedSequence(int(rng.integers(2**63))).spawn(4)
        self.gaps, self.shocks, self.sizes, self.sides = (np.random.default_rng(s) for s in streams)
        per_trade_var = spec.vol_1m**2 / (60 * self.rate)
        garch.omega = per_trade_var * (1 - garch.alpha - garch.beta)
        garch.var = garch.var / (60 * self.rate)
        self.garch = garch
        self.log_price = math.log(price)
        self.next_ts = start_ms + self._gap()
        self.digits = _step_decimals(spec.step)

    @property
    def price(self) -> float:
        return math.exp(self.log_price)

    @price.setter
    def price(self, value: float) -> None:
        self.log_price = math.log(value)

    def _gap(self) -> int:
        return max(1, int(self.gaps.exponential(1000.0 / self.rate)))

    def until(self, ts_ms: int):
        times = []
        while self.next_ts <= ts_ms:
            times.append(self.next_ts)
            self.next_ts += self._gap()
        n = len(times)
        if not n:
            return None
        rets = self.garch.returns(self.shocks.standard_normal(n))
        logs = np.cumsum(np.concatenate(([self.log_price], rets)))[1:]
        self.log_price = float(logs[-1])
        prices = np.array([round_price(self.spec, p) for p in np.exp(logs).tolist()])
        mean_qty = self.spec.volume_1m / (60 * self.rate)
        qty = np.round(self.sizes.exponential(mean_qty, n), self.digits)
        qty = np.maximum(qty, self.spec.step)
        return np.array(times, dtype=np.int64), prices, qty, self.sides.random(n) < 0.5


def csv_trades(path: str, spec: SymbolSpec | None = None):
    """Trades from a candle CSV (open_time ms, open, high, low, close, volume; header optional)."""
    rows = []
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if not row or not row[0].strip().lstrip("-").isdigit():
                continue
            rows.append([float(x) for x in row[:6]])
    if len(rows) < 2:
        raise ValueError(
            f"{path}: need at least two candle rows (open_time,open,high,low,close,volume)"
        )
    data = np.array(rows)
    open_time = data[:, 0].astype(np.int64)
    width = int(np.min(np.diff(open_time)))
    if width <= 0:
        raise ValueError(f"{path}: open_time must increase strictly")
    offsets = np.array([0, width // 4, width // 2, 3 * width // 4], dtype=np.int64)
    ts = (open_time[:, None] + offsets).reshape(-1)
    prices = data[:, 1:5].reshape(-1)
    qty = np.repeat(data[:, 5] / 4, 4)
    return ts, prices, qty, np.zeros(len(ts), dtype=bool)


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
            self.feed = SyntheticFeed(spec, rng, start, last, trade_rate, garch)
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
