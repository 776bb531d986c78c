"""Simulated symbols: their spec, price ticks (Upbit's KRW bands) and rounding. Pure."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable


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


def step_decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step)))


# ---- a whole market: many symbols, a few busy and a long quiet tail ------------------------


@dataclasses.dataclass(frozen=True)
class MarketScale:
    """How a venue serves a whole market: ``symbols`` in all (the defaults first, then made-up
    ones), their live trade rates Zipf-distributed (rank ``r`` trades ``1 / r**zipf`` as often as
    the busiest; the mean is the simulator's ``trade_rate``), and bursts: every
    ``burst_every_s`` seconds on average (0 = never) a symbol trades ``burst_factor`` times
    faster for ``burst_s`` seconds."""

    symbols: int = 0
    zipf: float = 1.1
    burst_every_s: float = 0.0
    burst_s: float = 3.0
    burst_factor: float = 8.0

    def __post_init__(self) -> None:
        if self.symbols < 0 or self.zipf < 0:
            raise ValueError("market scale: symbols and zipf must be >= 0")
        if self.burst_every_s < 0 or self.burst_s <= 0 or self.burst_factor < 1:
            raise ValueError("market scale: burst_every_s >= 0, burst_s > 0, burst_factor >= 1")


def zipf_rates(n: int, mean_rate: float, exponent: float) -> list[float]:
    """Trade rates (per second) of ranks 1..n: proportional to ``1 / rank**exponent``, with
    mean ``mean_rate`` (so the venue trades ``n * mean_rate`` times a second in all)."""
    weights = [1.0 / (rank**exponent) for rank in range(1, n + 1)]
    total = sum(weights)
    return [mean_rate * n * w / total for w in weights]


def generated_symbols(
    venue: str,
    existing: list[SymbolSpec],
    count: int,
    rng,
    krw_tick_fn: Callable[[float], float] | None = None,
) -> list[SymbolSpec]:
    """``existing`` followed by made-up symbols up to ``count`` in all (``KRW-A001`` on the KRW
    venues, ``A001USDT`` on Binance): levels log-uniform over 0.01..100,000 USDT (×1,400 in KRW),
    volatility 0.1-0.4 % a minute. ``rng`` is a numpy generator (deterministic with the seed)."""
    specs = list(existing)
    taken = {s.symbol for s in specs}
    krw = krw_tick_fn is not None
    i = 0
    while len(specs) < count:
        i += 1
        base = f"A{i:03d}"
        symbol = f"KRW-{base}" if krw else f"{base}USDT"
        usdt = float(10 ** rng.uniform(-2, 5))
        vol = float(rng.uniform(0.001, 0.004))
        if symbol in taken:
            continue
        if krw:
            price = usdt * 1400
            spec = SymbolSpec(symbol, base, "KRW", price, krw_tick_fn, 1e-8, vol, 20_000 / usdt)
        else:
            tick = 10.0 ** (math.floor(math.log10(usdt)) - 4)
            step = 1.0 if usdt < 1 else 10.0 ** -min(5, math.floor(math.log10(usdt)) + 1)
            spec = SymbolSpec(symbol, base, "USDT", usdt, tick, step, vol,
                              max(step * 10, 20_000 / usdt))
        specs.append(dataclasses.replace(spec, price=round_price(spec, spec.price)))
    return specs[:count]
