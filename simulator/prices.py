"""Price processes of the simulated venues: seeded history (1m candles as four trades each), a
GARCH(1,1) live process with Poisson arrivals, and candle-CSV replay. Pure: numpy and the
standard library only; deterministic given a seed."""

from __future__ import annotations

import csv
import dataclasses
import math

import numpy as np

from simulator.symbols import SymbolSpec, round_price, step_decimals

MINUTE_MS = 60_000


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
    digits = step_decimals(spec.step)
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

    ``bursts`` (every_s, length_s, factor): on average every ``every_s`` seconds the arrivals
    run ``factor`` times faster for ``length_s`` seconds (the windows draw from a fifth stream).
    """

    def __init__(
        self,
        spec: SymbolSpec,
        rng: np.random.Generator,
        start_ms: int,
        price: float,
        rate: float,
        garch: Garch,
        bursts: tuple[float, float, float] | None = None,
    ) -> None:
        self.spec, self.rate = spec, max(rate, 1e-6)
        streams = np.random.SeedSequence(int(rng.integers(2**63))).spawn(5)
        self.gaps, self.shocks, self.sizes, self.sides, self.windows = (
            np.random.default_rng(s) for s in streams
        )
        self.bursts = bursts if bursts and bursts[0] > 0 else None
        self.burst_start = self.burst_end = start_ms
        self.burst_trades = 0
        per_trade_var = spec.vol_1m**2 / (60 * self.rate)
        garch.omega = per_trade_var * (1 - garch.alpha - garch.beta)
        garch.var = garch.var / (60 * self.rate)
        self.garch = garch
        self.log_price = math.log(price)
        if self.bursts:
            self._next_burst(start_ms)
        self.next_ts = start_ms
        self.next_ts = start_ms + self._gap()
        self.digits = step_decimals(spec.step)

    @property
    def price(self) -> float:
        return math.exp(self.log_price)

    @price.setter
    def price(self, value: float) -> None:
        self.log_price = math.log(value)

    def _next_burst(self, after_ms: int) -> None:
        every_s, length_s, _ = self.bursts
        self.burst_start = after_ms + int(self.windows.exponential(every_s * 1000.0))
        self.burst_end = self.burst_start + int(length_s * 1000)

    def _gap(self) -> int:
        rate = self.rate
        if self.bursts:
            at = self.next_ts
            while at >= self.burst_end:
                self._next_burst(self.burst_end)
            if at >= self.burst_start:
                rate *= self.bursts[2]
                self.burst_trades += 1
        return max(1, int(self.gaps.exponential(1000.0 / rate)))

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
