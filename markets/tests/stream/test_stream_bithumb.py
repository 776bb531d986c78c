"""The live stream on the simulator's Bithumb venue (issue 19 item 9): trades over Bithumb's
public WebSocket build the bars (Bithumb has no candle stream), closed bars are stored equal to
the venue's REST candles, and the REST catch-up pages Bithumb's naive-KST history."""

from __future__ import annotations

import asyncio

import pytest

from markets.timeframes import floor_ms
from simulator.server import Simulator

from .conftest import MINUTE_MS, sim_config, stored_candles
from .test_stream import EVALUATE, _venue_candles, live_krw_btc_stream


@pytest.mark.django_db(transaction=True)
async def test_the_bithumb_stream_stores_closed_bars_equal_to_the_venues_candles():

    grace_ms = 20_000  # see test_stream: the simulator shares this loop at 30x speed
    async with Simulator(sim_config(venues=("bithumb",), speed=30.0, trade_rate=1.0,
                                    history_days=0.5, tick_s=0.02)) as sim:
        btc, stream, rec, runner, started = await live_krw_btc_stream(
            sim, "sim-bithumb", "bithumb", sim.bithumb_url, sim.bithumb_ws_url, grace_ms)
        stream.stop()
        await asyncio.wait_for(runner, 20)
        stopped = sim.clock_ms()

        start = floor_ms(started, "1m") - 30 * MINUTE_MS  # the catch-up's 30 candles
        end = floor_ms(stopped - grace_ms, "1m")
        venue = _venue_candles(sim, start, end, venue="bithumb")
        stored = await asyncio.to_thread(stored_candles, btc, "1m", start, end)
        assert len(venue) == (end - start) // MINUTE_MS
        assert sorted(stored) == sorted(venue), sorted(set(venue) ^ set(stored))
        for t, row in venue.items():
            assert stored[t] == pytest.approx(row, rel=1e-9), t
        assert rec.tasks and all(name == EVALUATE for name, _ in rec.tasks)
