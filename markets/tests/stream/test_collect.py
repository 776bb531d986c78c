"""The collect_candles task: newer-than-stored only, reported gaps, unreachable venues skipped."""

from __future__ import annotations

import logging

import pytest

from markets.backfill import backfill
from markets.candles import find_gaps, last_open_time_ms
from markets.collect import collect, gaps_key, report_gap
from markets.models import Candle, Exchange, Symbol
from markets.timeframes import floor_ms

from .conftest import MINUTE_MS, make_sim_venue, sim_adapter_factory, sim_clock

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def test_collect_fetches_only_newer_candles_and_the_reported_gaps(sim, clean_redis):
    _, (btc,) = make_sim_venue(sim, timeframes=["1m"])
    clock, factory = sim_clock(sim), sim_adapter_factory(sim)
    end = floor_ms(clock(), "1m")
    backfill([btc], ["1m"], start_ms=end - 30 * MINUTE_MS, end_ms=end - 5 * MINUTE_MS,
             clock_ms=clock, adapter_factory=factory, progress=False)
    # A hole the stream could not fill, reported for the collector.
    hole = (end - 20 * MINUTE_MS, end - 18 * MINUTE_MS)
    Candle.objects.filter(symbol=btc, open_time__gte=_dt(hole[0]),
                          open_time__lt=_dt(hole[1])).delete()
    report_gap("sim", "KRW-BTC", "1m", *hole)

    report = collect(clock_ms=clock, adapter_factory=factory)

    assert report.inserted >= 5 + 2 and report.gaps_reported == 1
    assert last_open_time_ms(btc.id, "1m") >= end - MINUTE_MS
    assert find_gaps(btc.id, "1m", end - 30 * MINUTE_MS, end) == []
    assert clean_redis.scard(gaps_key()) == 0
    again = collect(clock_ms=clock, adapter_factory=factory)
    assert again.requests <= 1  # at most the one newly closed minute


def test_an_unreachable_venue_is_logged_once_and_skipped(sim, clean_redis, caplog):
    _, (btc,) = make_sim_venue(sim, timeframes=["1m", "5m"])
    down = Exchange.objects.create(slug="down", name="Down", adapter="upbit",
                                   rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    for code in ("KRW-BTC", "KRW-ETH"):
        Symbol.objects.create(exchange=down, code=code, base=code[4:], quote="KRW")
    with caplog.at_level(logging.WARNING, logger="markets.collect"):
        report = collect(clock_ms=sim_clock(sim), adapter_factory=sim_adapter_factory(sim))
    assert report.venues_skipped == ["down"]
    assert len([r for r in caplog.records if "down unreachable" in r.getMessage()]) == 1
    assert Candle.objects.filter(symbol=btc, timeframe="1m").count() == 200


def test_the_task_is_registered_under_its_name_on_the_collector_queue():
    from tradesite.celery import app

    app.loader.import_default_modules()
    assert "markets.tasks.collect_candles" in app.tasks
    route = app.amqp.router.route({}, "markets.tasks.collect_candles")
    assert route["queue"].name == "collector"


def _dt(ms):
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
