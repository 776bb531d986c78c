"""Backfill against the simulator over real sockets: pagination, resumability, gaps, summary."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from markets.backfill import CheckedRanges, backfill, subtract
from markets.candles import find_gaps
from markets.models import Candle
from markets.timeframes import floor_ms

from .conftest import (
    MINUTE_MS,
    make_sim_venue,
    sim_adapter_factory,
    sim_clock,
    stored_candles,
    venue_candles,
)

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def assert_same_candles(stored, venue):
    assert sorted(stored) == sorted(venue)
    for t, row in venue.items():
        assert stored[t] == pytest.approx(row, rel=1e-9), t


def test_backfill_across_pages_equals_the_venue_and_a_second_run_fetches_nothing(
        sim, clean_redis):
    _, (btc,) = make_sim_venue(sim)
    now = sim_clock(sim)()
    end = floor_ms(now, "1m")
    start = end - 700 * MINUTE_MS  # 4 pages of 200 (the last one partial)
    kwargs = dict(start_ms=start, clock_ms=sim_clock(sim),
                  adapter_factory=sim_adapter_factory(sim), progress=False)

    first = backfill([btc], ["1m", "5m"], **kwargs)

    assert first.requests == 4 + 1  # 700 1m candles in 4 requests, 140 5m candles in 1
    assert first.inserted == first.fetched == 700 + 140
    assert_same_candles(stored_candles(btc, "1m", start, end),
                        venue_candles(sim, "KRW-BTC", 1, start, end))
    assert_same_candles(stored_candles(btc, "5m", start, end),
                        venue_candles(sim, "KRW-BTC", 5, start, end))

    second = backfill([btc], ["1m", "5m"], **(kwargs | {"end_ms": end}))
    assert (second.requests, second.fetched, second.inserted) == (0, 0, 0)


def test_backfill_fills_an_inner_gap_and_fetches_only_the_gap(sim, clean_redis):
    _, (btc,) = make_sim_venue(sim)
    end = floor_ms(sim_clock(sim)(), "1m")
    start = end - 300 * MINUTE_MS
    kwargs = dict(start_ms=start, end_ms=end, clock_ms=sim_clock(sim),
                  adapter_factory=sim_adapter_factory(sim), progress=False)
    backfill([btc], ["1m"], **kwargs)
    hole = (start + 100 * MINUTE_MS, start + 110 * MINUTE_MS)
    Candle.objects.filter(symbol=btc, timeframe="1m", open_time__gte=_dt(hole[0]),
                          open_time__lt=_dt(hole[1])).delete()
    CheckedRanges("sim", "KRW-BTC", "1m").clear()  # as if Redis had been lost

    again = backfill([btc], ["1m"], **kwargs)

    assert (again.gaps_found, again.gaps_filled, again.requests) == (1, 1, 1)
    assert again.inserted == 10 and again.updated == 0
    assert find_gaps(btc.id, "1m", start, end) == []


def test_an_empty_gap_at_the_venue_is_fetched_once_and_then_remembered(sim, clean_redis):
    _, (btc,) = make_sim_venue(sim)
    end = floor_ms(sim_clock(sim)(), "1m")
    start = end - 50 * MINUTE_MS
    kwargs = dict(start_ms=start, end_ms=end, clock_ms=sim_clock(sim),
                  adapter_factory=sim_adapter_factory(sim), progress=False)
    backfill([btc], ["1m"], **kwargs)
    # Pretend the venue had no trades for ten minutes: drop them from the store and make the
    # checked range say only the surroundings were fetched (so the hole looks unchecked).
    hole = (start + 20 * MINUTE_MS, start + 30 * MINUTE_MS)
    Candle.objects.filter(symbol=btc, timeframe="1m", open_time__gte=_dt(hole[0]),
                          open_time__lt=_dt(hole[1])).delete()
    checked = CheckedRanges("sim", "KRW-BTC", "1m")
    checked.clear()
    checked.add(start, hole[0])
    checked.add(hole[1], end)

    first = backfill([btc], ["1m"], **kwargs)
    assert (first.gaps_found, first.requests) == (1, 1)
    second = backfill([btc], ["1m"], **kwargs)
    assert (second.gaps_found, second.requests) == (0, 0)


def test_checked_range_subtraction():
    assert subtract([(0, 10), (20, 30)], [(5, 25)]) == [(0, 5), (25, 30)]
    assert subtract([(0, 10)], []) == [(0, 10)]
    assert subtract([(0, 10)], [(0, 10)]) == []


def test_backfill_command_prints_a_summary(sim, clean_redis, monkeypatch):
    _, (btc,) = make_sim_venue(sim)
    monkeypatch.setattr("markets.backfill.adapter_for", sim_adapter_factory(sim))
    monkeypatch.setattr("markets.backfill.now_ms", sim_clock(sim))
    out = io.StringIO()
    call_command("backfill", "--venue", "sim", "--symbol", "KRW-BTC", "--timeframe", "15m",
                 "--days", "0.5", stdout=out)
    text = out.getvalue()
    stored = Candle.objects.filter(symbol=btc, timeframe="15m").count()
    assert stored in (47, 48)  # 12 h of closed 15m candles, depending on alignment
    assert f"fetched {stored} candles, inserted {stored}" in text, text
    assert "requests" in text and "gaps found 0" in text


def _dt(ms):
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def test_an_interrupted_backfill_keeps_its_chunks_and_the_next_run_continues(sim, clean_redis):
    _, (btc,) = make_sim_venue(sim)
    end = floor_ms(sim_clock(sim)(), "1m")
    start = end - 1000 * MINUTE_MS  # 5 chunks of 200
    base = sim_adapter_factory(sim)
    calls = {"n": 0}

    def interrupting(exchange):
        adapter = base(exchange)
        fetch = adapter.fetch_candles

        def fetch_then_ctrl_c(*args):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return fetch(*args)

        adapter.fetch_candles = fetch_then_ctrl_c
        return adapter

    from markets.backfill import BackfillReport

    report = BackfillReport()
    kwargs = dict(start_ms=start, end_ms=end, clock_ms=sim_clock(sim), progress=False)
    with pytest.raises(KeyboardInterrupt):
        backfill([btc], ["1m"], adapter_factory=interrupting, report=report, **kwargs)
    assert report.inserted == 400 and report.requests == 2
    assert Candle.objects.filter(symbol=btc, timeframe="1m").count() == 400

    resumed = backfill([btc], ["1m"], adapter_factory=base, **kwargs)
    assert resumed.requests == 3 and resumed.inserted == 600 and resumed.updated == 0
    assert find_gaps(btc.id, "1m", start, end) == []


def test_the_progress_bar_shows_candles_done(sim, clean_redis):
    _, (btc,) = make_sim_venue(sim)
    end = floor_ms(sim_clock(sim)(), "1m")
    out = io.StringIO()
    backfill([btc], ["1m"], start_ms=end - 400 * MINUTE_MS, end_ms=end,
             clock_ms=sim_clock(sim), adapter_factory=sim_adapter_factory(sim),
             progress=True, out=out)
    assert "400/400" in out.getvalue() and "sim:KRW-BTC 1m" in out.getvalue()
