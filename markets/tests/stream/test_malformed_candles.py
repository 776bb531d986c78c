"""One malformed venue row (close above high) never aborts a backfill or the minute job
(issue 14): it is dropped where it enters, logged with venue, symbol, timeframe, open time and
what is wrong, counted in the report, and every good row of the range is stored. Before the
candle contract the parser let it through, ``upsert_candles`` refused the whole chunk and the
error ended the backfill (and failed ``collect_candles`` on every run)."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command

from markets.backfill import backfill
from markets.candles import find_gaps
from markets.collect import collect
from markets.models import Exchange, Symbol
from markets.simulator.market import Frame
from markets.simulator.server import SimulatorThread
from markets.timeframes import floor_ms

from .conftest import MINUTE_MS, sim_adapter_factory, sim_clock, sim_config, stored_candles

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


@pytest.fixture
def binance_sim():
    handle = SimulatorThread(sim_config(venues=("binance",)))
    yield handle
    handle.stop()


def make_binance_venue(sim) -> Symbol:
    exchange = Exchange.objects.create(
        slug="simb", name="Simulated Binance", adapter="binance_spot", rest_url=sim.binance_url,
        ws_url=sim.binance_ws_url,
    )
    return Symbol.objects.create(exchange=exchange, code="BTCUSDT", base="BTC", quote="USDT",
                                 timeframes=["1m"])


def venue_rows(sim, start_ms: int, end_ms: int) -> dict[int, tuple]:
    arrays = sim.call(lambda: sim.sim.market("binance", "BTCUSDT").candles(
        Frame("m", 1), end_ms=end_ms, start_ms=start_ms))
    return {int(t): (o, h, lo, c, v) for t, o, h, lo, c, v in zip(
        arrays.open_time.tolist(), arrays.open.tolist(), arrays.high.tolist(),
        arrays.low.tolist(), arrays.close.tolist(), arrays.volume.tolist(), strict=True)}


def assert_stored_all_but(sim, symbol, start, end, bad):
    venue = venue_rows(sim, start, end)
    assert bad in venue and len(venue) > 10
    stored = stored_candles(symbol, "1m", start, end)
    assert sorted(stored) == sorted(t for t in venue if t != bad)
    for t, row in stored.items():
        assert row == pytest.approx(venue[t], rel=1e-6), t


def test_the_simulator_fault_sends_the_chosen_candle_with_its_close_above_its_high(binance_sim):
    import requests

    end = floor_ms(sim_clock(binance_sim)(), "1m")
    bad = end - 7 * MINUTE_MS
    binance_sim.set_faults(malformed_candle_times=(bad,))
    raw = requests.get(f"{binance_sim.binance_url}/api/v3/klines", timeout=10, params={
        "symbol": "BTCUSDT", "interval": "1m", "startTime": bad, "limit": 3}).json()
    by_time = {row[0]: row for row in raw}
    assert float(by_time[bad][4]) > float(by_time[bad][2])  # close above high
    ok = by_time[bad + MINUTE_MS]
    assert float(ok[3]) <= min(float(ok[1]), float(ok[4])) <= float(ok[2])


def test_a_backfill_over_a_malformed_row_stores_every_good_row_and_reports_the_bad_one(
    binance_sim, clean_redis, caplog
):
    symbol = make_binance_venue(binance_sim)
    clock = sim_clock(binance_sim)
    end = floor_ms(clock(), "1m") - 2 * MINUTE_MS
    start = end - 40 * MINUTE_MS
    bad = start + 17 * MINUTE_MS
    binance_sim.set_faults(malformed_candle_times=(bad,))
    with caplog.at_level(logging.WARNING, logger="markets.candle_contract"):
        report = backfill([symbol], ["1m"], start_ms=start, end_ms=end, clock_ms=clock,
                          adapter_factory=sim_adapter_factory(binance_sim), progress=False)
    assert_stored_all_but(binance_sim, symbol, start, end, bad)
    assert report.dropped.total == 1 and report.inserted == 39
    assert "1 malformed candle(s) dropped (1 high is below open or close)" in report.summary()
    (example,) = report.dropped.examples
    assert example.startswith("simb BTCUSDT 1m at ") and "is below open" in example
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"dropped candle {example}"]
    assert find_gaps(symbol.id, "1m", start, end) == [(bad, bad + MINUTE_MS)]


def test_the_backfill_command_completes_and_says_how_many_rows_it_dropped_and_why(
    binance_sim, clean_redis, monkeypatch
):
    symbol = make_binance_venue(binance_sim)
    clock = sim_clock(binance_sim)
    monkeypatch.setattr("markets.backfill.adapter_for", sim_adapter_factory(binance_sim))
    monkeypatch.setattr("markets.backfill.now_ms", clock)
    end = floor_ms(clock(), "1m")
    bad = (end - 30 * MINUTE_MS, end - 12 * MINUTE_MS)
    binance_sim.set_faults(malformed_candle_times=bad)
    out = io.StringIO()
    call_command("backfill", "--venue", "simb", "--symbol", "BTCUSDT", "--timeframe", "1m",
                 "--days", "0.05", stdout=out)
    text = out.getvalue()
    assert "2 malformed candle(s) dropped (2 high is below open or close)" in text, text
    assert text.count("dropped malformed candle simb BTCUSDT 1m at ") == 2, text
    start = end - int(0.05 * 86_400_000)
    assert all(t in stored_candles(symbol, "1m", start, end) for t in
               (end - 31 * MINUTE_MS, end - 29 * MINUTE_MS))
    assert not set(bad) & set(stored_candles(symbol, "1m", start, end))


def test_collect_candles_completes_over_a_malformed_row(binance_sim, clean_redis, monkeypatch):
    """The minute job stores the rest, reports the drop, and the next run goes on."""
    from markets.tasks import collect_candles

    symbol = make_binance_venue(binance_sim)
    clock = sim_clock(binance_sim)
    factory = sim_adapter_factory(binance_sim)
    monkeypatch.setattr("markets.collect.adapter_for", factory)
    monkeypatch.setattr("markets.collect.now_ms", clock)
    monkeypatch.setattr("markets.tasks.refresh_stale", lambda adapter_for: 0)
    end = floor_ms(clock(), "1m")
    bad = end - 30 * MINUTE_MS
    binance_sim.set_faults(malformed_candle_times=(bad,))
    result = collect_candles()
    assert result["skipped"] == [] and result["dropped"] == 1 and result["inserted"] >= 150
    around = stored_candles(symbol, "1m", bad - MINUTE_MS, bad + 2 * MINUTE_MS)
    assert sorted(around) == [bad - MINUTE_MS, bad + MINUTE_MS]
    again = collect(clock_ms=clock, adapter_factory=factory)
    assert again.venues_skipped == [] and again.dropped.total == 0


def test_the_share_knob_picks_about_that_share_of_candles_and_the_same_ones_every_time():
    import argparse

    from markets.simulator.cli import add_arguments, config_from
    from markets.simulator.faults import Faults

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    faults = config_from(parser.parse_args(["--malformed-candle-share", "0.1"])).faults
    times = [1_704_067_200_000 + i * MINUTE_MS for i in range(10_000)]
    picked = [t for t in times if faults.malformed_candle(t)]
    assert 900 <= len(picked) <= 1100
    assert picked == [t for t in times if faults.malformed_candle(t)]
    assert not any(Faults().malformed_candle(t) for t in times)  # off by default
