"""Backfill and collect on the simulator's Bithumb venue (issue 19 item 9).

Before the simulator had a Bithumb venue, a Bithumb adapter pointed at its Upbit port fetched 0
candles: the adapter sends ``to`` as naive KST wall-clock time, which the Upbit port reads as
UTC, so every page was the newest 200 candles before *now + 9 h*, never the requested range.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from markets.backfill import backfill
from markets.collect import collect
from markets.models import Candle, PendingRange
from markets.timeframes import floor_ms
from simulator.server import SimulatorThread

from .conftest import (
    MINUTE_MS,
    make_sim_venue,
    sim_adapter_factory,
    sim_clock,
    sim_config,
    stored_candles,
    venue_candles,
)

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


@pytest.fixture
def bithumb_sim():
    handle = SimulatorThread(sim_config(venues=("bithumb",)))
    yield handle
    handle.stop()


def assert_same_candles(stored, venue):
    assert sorted(stored) == sorted(venue)
    for t, row in venue.items():
        assert stored[t] == pytest.approx(row, rel=1e-9), t


def test_bithumb_backfill_across_pages_equals_the_simulators_candles(bithumb_sim, clean_redis):
    sim = bithumb_sim
    _, (btc,) = make_sim_venue(sim, venue="bithumb", slug="sim-bithumb")
    end = floor_ms(sim_clock(sim)(), "1h")
    start = end - 700 * MINUTE_MS  # 4 pages of 200 1m candles; ends 0..59 min before now
    kwargs = dict(start_ms=start, end_ms=end, clock_ms=sim_clock(sim),
                  adapter_factory=sim_adapter_factory(sim), progress=False)

    first = backfill([btc], ["1m", "5m", "1h"], **kwargs)

    assert not first.errors
    assert first.inserted == first.fetched == 700 + 140 + 11
    for tf, minutes in (("1m", 1), ("5m", 5), ("1h", 60)):
        venue = venue_candles(sim, "KRW-BTC", minutes, start, end, venue="bithumb")
        assert len(venue) == 700 // minutes
        assert_same_candles(stored_candles(btc, tf, start, end), venue)

    again = backfill([btc], ["1m", "5m", "1h"], **kwargs)
    assert (again.requests, again.fetched, again.inserted) == (0, 0, 0)


def test_an_interrupted_bithumb_backfill_resumes_where_it_stopped(bithumb_sim, clean_redis):
    sim = bithumb_sim
    _, (btc,) = make_sim_venue(sim, venue="bithumb", slug="sim-bithumb")
    clock, factory = sim_clock(sim), sim_adapter_factory(sim)
    end = floor_ms(clock(), "1m") - 60 * MINUTE_MS
    start = end - 800 * MINUTE_MS  # 4 requests of 200
    calls = []

    def stops_after_two_requests(exchange):
        adapter = factory(exchange)
        fetch = adapter.fetch_candles

        def counted(*args):
            calls.append(args)
            if len(calls) > 2:
                raise KeyboardInterrupt
            return fetch(*args)

        adapter.fetch_candles = counted
        return adapter

    with pytest.raises(KeyboardInterrupt):
        backfill([btc], ["1m"], start_ms=start, end_ms=end, clock_ms=clock,
                 adapter_factory=stops_after_two_requests, progress=False)
    assert len(stored_candles(btc, "1m", start, end)) == 400
    assert PendingRange.objects.count() == 1

    resumed = backfill([btc], ["1m"], start_ms=start, end_ms=end, clock_ms=clock,
                       adapter_factory=factory, progress=False)

    assert (resumed.requests, resumed.inserted) == (2, 400)
    assert not PendingRange.objects.exists()
    assert_same_candles(stored_candles(btc, "1m", start, end),
                        venue_candles(sim, "KRW-BTC", 1, start, end, venue="bithumb"))


def test_collect_fetches_the_bithumb_venues_recent_candles(bithumb_sim, clean_redis):
    sim = bithumb_sim
    _, (btc,) = make_sim_venue(sim, venue="bithumb", slug="sim-bithumb",
                               timeframes=["1m", "15m"])
    clock = sim_clock(sim)

    report = collect(clock_ms=clock, adapter_factory=sim_adapter_factory(sim))

    assert not report.errors and not report.venues_skipped
    end = floor_ms(clock(), "1m")
    start = end - 100 * MINUTE_MS
    stored = stored_candles(btc, "1m", start, end)
    assert len(stored) >= 99
    venue = venue_candles(sim, "KRW-BTC", 1, start, end, venue="bithumb")
    assert_same_candles(stored, {t: venue[t] for t in stored})
    assert stored_candles(btc, "15m", end - 600 * MINUTE_MS, end)


def test_the_backfill_command_on_the_bithumb_venue_stores_what_it_fetched(
        bithumb_sim, clean_redis, monkeypatch):
    """The issue's reproduction: ``backfill --venue <bithumb on the simulator>`` said
    "fetched 0 candles in 14 requests"."""
    sim = bithumb_sim
    _, (btc,) = make_sim_venue(sim, venue="bithumb", slug="sim-bithumb")
    monkeypatch.setattr("markets.backfill.adapter_for", sim_adapter_factory(sim))
    monkeypatch.setattr("markets.backfill.now_ms", sim_clock(sim))
    out = io.StringIO()
    call_command("backfill", "--venue", "sim-bithumb", "--symbol", "KRW-BTC", "--timeframe",
                 "1m", "--days", "0.5", stdout=out)
    stored = Candle.objects.filter(symbol=btc, timeframe="1m").count()
    assert stored in (719, 720), out.getvalue()  # 12 h of closed 1m candles
    assert f"fetched {stored} candles, inserted {stored}" in out.getvalue()
