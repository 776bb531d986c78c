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
