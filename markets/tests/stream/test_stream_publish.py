"""Closed bars reach charts exactly once (issue 21, items 3 and 4): overlapping REST fills of
one interval push each bar once (a corrected bar again), and bars that closed while the stream
was down are pushed when it restarts, not only stored."""

from __future__ import annotations

import asyncio

from markets.simulator.server import Simulator
from markets.stream import StreamConfig, SymbolSpec, VenueSpec
from markets.stream.gaps import Interruption
from markets.timeframes import floor_ms

from .conftest import MINUTE_MS, sim_config
from .test_stream import Recorder, make_stream, wait_until


class MemoryStore:
    def __init__(self, last=None):
        self.rows: dict[int, tuple] = {}
        self.last = last

    def store(self, symbol_id, timeframe, rows):
        for r in rows:
            self.rows[r.open_time_ms] = (r.open, r.high, r.low, r.close, r.volume)
        return len(rows), 0

    def last_stored(self, symbol_id, timeframe):
        return self.last


def spec_for(sim):
    return VenueSpec("sim", "upbit", sim.upbit_url, sim.upbit_ws_url,
                     (SymbolSpec("KRW-BTC", 1, ("1m",)),))


async def test_overlapping_fills_push_each_closed_bar_once_and_a_corrected_bar_again():
    async with Simulator(sim_config(speed=1.0, tick_s=0.05, history_days=0.2)) as sim:
        rec, memory = Recorder(), MemoryStore()
        stream = make_stream(spec_for(sim), rec, sim.clock_ms, store=memory.store,
                             last_stored=memory.last_stored)
        try:
            now = sim.clock_ms()
            start, end = floor_ms(now, "1m") - 10 * MINUTE_MS, floor_ms(now, "1m") - MINUTE_MS
            # Three reconnects whose interruptions overlap the same minutes.
            for shift in (0, MINUTE_MS, 2 * MINUTE_MS):
                stream.interruptions.append(
                    Interruption(frozenset({"KRW-BTC"}), start + shift, end))
            await stream._fill_once()
            assert not stream.interruptions
            pushed = rec.closed("1m")
            assert pushed and len(pushed) == len(set(pushed)), sorted(pushed)
            assert set(pushed) == set(memory.rows)  # every stored bar pushed, once

            t = pushed[0]
            bar = next(m["bar"] for _, _, m in rec.messages if m["bar"]["t"] == t)
            await stream._emit_closed("KRW-BTC", "1m", dict(bar), evaluate=False)
            assert rec.closed("1m").count(t) == 1  # the same bar again: not pushed
            await stream._emit_closed("KRW-BTC", "1m", dict(bar, c=bar["c"] * 1.001),
                                      evaluate=False)
            assert rec.closed("1m").count(t) == 2  # a correction is
        finally:
            stream.db.shutdown(wait=True)
            stream.io.shutdown(wait=True)


async def test_bars_that_closed_while_the_stream_was_down_are_pushed_on_restart():
    async with Simulator(sim_config(speed=1.0, tick_s=0.05, history_days=0.2)) as sim:
        started = sim.clock_ms()
        last = floor_ms(started, "1m") - 8 * MINUTE_MS  # stored before the stream went down
        rec, memory = Recorder(), MemoryStore(last=last)
        stream = make_stream(spec_for(sim), rec, sim.clock_ms, store=memory.store,
                             last_stored=memory.last_stored,
                             config=StreamConfig(grace_ms=500, catchup_candles=30))
        missed = set(range(last + MINUTE_MS, floor_ms(started - 500, "1m"), MINUTE_MS))
        runner = asyncio.ensure_future(stream.run())
        try:
            assert await wait_until(lambda: missed <= set(memory.rows), 20), sorted(memory.rows)
            assert await wait_until(lambda: missed <= set(rec.closed("1m")), 10), \
                (sorted(missed), sorted(rec.closed("1m")))
        finally:
            stream.stop()
            await asyncio.wait_for(runner, 20)
        pushed = rec.closed("1m")
        assert len(pushed) == len(set(pushed))
