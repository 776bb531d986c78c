"""Fixtures: a simulator on 127.0.0.1 (free ports, fixed anchor and seed) and a ``sim`` venue in
the database pointing at it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from markets.simulator.market import Frame
from markets.simulator.server import SimConfig, SimulatorThread

#: 2026-03-11 14:40:30 UTC: a fixed anchor so generated history is the same on every run.
ANCHOR_MS = 1_773_240_030_000
MINUTE_MS = 60_000


def sim_config(**overrides) -> SimConfig:
    base = {
        "seed": 5,
        "now_ms": ANCHOR_MS,
        "history_days": 1.0,
        "trade_rate": 3.0,
        "tick_s": 0.05,
        "venues": ("upbit",),
    }
    return SimConfig(**(base | overrides))


@pytest.fixture
def sim():
    handle = SimulatorThread(sim_config())
    yield handle
    handle.stop()


def make_sim_venue(sim, codes=("KRW-BTC",), timeframes=None, venue="upbit", slug="sim"):
    """A venue row for the simulator's ``venue`` (``upbit`` or ``bithumb``: the adapter)."""
    from markets.models import Exchange, Symbol

    exchange = Exchange.objects.create(
        slug=slug, name="Simulator", adapter=venue, rest_url=sim.url(venue),
        ws_url=sim.url(venue, "ws"),
    )
    symbols = [
        Symbol.objects.create(
            exchange=exchange, code=code, base=code.split("-")[1], quote="KRW",
            min_notional=Decimal("5000"), **({"timeframes": timeframes} if timeframes else {}),
        )
        for code in codes
    ]
    return exchange, symbols


def sim_clock(sim):
    return sim.sim.clock_ms


def sim_adapter_factory(sim):
    from markets.adapters import adapter_for

    clock = sim.sim.clock_ms
    return lambda exchange: adapter_for(exchange, clock=lambda: clock() / 1000.0)


def venue_candles(sim, code: str, timeframe_minutes: int, start_ms: int, end_ms: int,
                  venue: str = "upbit"):
    """The simulator's own candles (open, high, low, close, volume) in ``[start, end)``."""
    arrays = sim.call(
        lambda: sim.sim.market(venue, code).candles(
            Frame("m", timeframe_minutes), end_ms=end_ms, start_ms=start_ms)
    )
    return {
        int(t): (float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in zip(arrays.open_time.tolist(), arrays.open.tolist(),
                                     arrays.high.tolist(), arrays.low.tolist(),
                                     arrays.close.tolist(), arrays.volume.tolist())
    }


def stored_candles(symbol, timeframe: str, start_ms: int, end_ms: int):
    from markets.candles import load_candles

    c = load_candles(symbol.id, timeframe, start_ms, end_ms)
    return {
        int(t): (o, h, lo, cl, v)
        for t, o, h, lo, cl, v in zip(c.open_time_ms.tolist(), c.open.tolist(), c.high.tolist(),
                                      c.low.tolist(), c.close.tolist(), c.volume.tolist())
    }
