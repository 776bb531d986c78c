"""Backfill and collection under refusals and interruptions (issue 21): 429 and 418 are waited
out, never a reason to exit; a job that stops leaves its unfinished range recorded and
``collect_candles`` fills it, including a hole before the first stored candle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest
from django.db import connection

from markets.backfill import BackfillReport, backfill
from markets.backoff import Backoff
from markets.candles import find_gaps
from markets.collect import collect
from markets.exchanges.errors import (
    AuthenticationError,
    ExchangeUnavailable,
    RateLimited,
    RequestNotSent,
    TemporaryExchangeError,
)
from markets.models import Candle, PendingRange
from markets.patience import Patience, VenueRefusing
from markets.pending import to_dt, to_ms
from markets.tests.database import database_url
from markets.timeframes import floor_ms

from .conftest import (
    MINUTE_MS,
    make_sim_venue,
    sim_adapter_factory,
    sim_clock,
    stored_candles,
    venue_candles,
)

pytestmark = [pytest.mark.redis]
ROOT = Path(__file__).resolve().parents[3]


def assert_same_candles(stored, venue):
    assert sorted(stored) == sorted(venue)
    for t, row in venue.items():
        assert stored[t] == pytest.approx(row, rel=1e-9), t


def fetching_through(sim, wrap):
    """An adapter factory for the simulator whose adapters' candle reads go through
    ``wrap(fetch, *args)`` (a fault injected before or around the real request)."""
    base = sim_adapter_factory(sim)

    def factory(exchange):
        adapter = base(exchange)
        fetch = adapter.fetch_candles
        adapter.fetch_candles = lambda *args: wrap(fetch, *args)
        return adapter

    return factory


def wait_for(condition, timeout_s=60.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- waiting out refusals ---------------------------------------------------------------------


def test_patience_waits_as_asked_and_gives_up_with_a_clear_message_after_its_bound():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    waiting = Patience(10.0, limit_name="BACKFILL_MAX_REFUSED_S", sleep=sleep,
                       clock=lambda: now[0])
    answers = iter([RateLimited("429", venue="sim", status=429, retry_after=2.0),
                    RateLimited("418", venue="sim", status=418, retry_after=3.0), "rows"])

    def call():
        got = next(answers)
        if isinstance(got, Exception):
            raise got
        return got

    assert waiting.call(call) == "rows"
    assert slept == [2.0, 3.0] and waiting.refusals == 2 and waiting.waited_s == 5.0

    def always_refused():
        raise RateLimited("429", venue="sim", status=429, retry_after=4.0)

    with pytest.raises(VenueRefusing) as refused:
        waiting.call(always_refused)
    message = str(refused.value)
    assert "sim kept refusing requests" in message and "BACKFILL_MAX_REFUSED_S" in message
    assert "collect_candles" in message
    assert slept[2:] == [4.0, 4.0]  # 0 s + 4 + 4 = 8 s; a third wait would pass the 10 s bound


def test_patience_retries_passing_failures_with_a_backoff_and_gives_up_after_its_bound():
    """A 5xx, "unavailable" or a lost answer on a read is tried again after 1 s, 2 s, 4 s ...;
    a success starts over; failures for longer than the bound stop with a clear message; an
    error that is not temporary (bad keys) is raised at once, never retried."""
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    def clock():
        return now[0]

    waiting = Patience(60.0, limit_name="BACKFILL_MAX_REFUSED_S", sleep=sleep, clock=clock,
                       backoff=Backoff(1.0, 60.0, jitter=0.0, clock=clock))

    def answering(*answers):
        it = iter(answers)

        def call():
            got = next(it)
            if isinstance(got, Exception):
                raise got
            return got
        return call

    assert waiting.call(answering(
        TemporaryExchangeError("502", venue="sim", status=502),
        ExchangeUnavailable("503", venue="sim", status=503), "rows")) == "rows"
    assert slept == [1.0, 2.0] and waiting.failures == 2 and waiting.failed_wait_s == 3.0
    # The success started over: the next failure waits 1 s again.
    assert waiting.call(answering(TemporaryExchangeError("500", venue="sim", status=500),
                                  "more")) == "more"
    assert slept[2:] == [1.0]

    def always_failing():
        raise TemporaryExchangeError("sim: 502 Bad Gateway", venue="sim", status=502)

    with pytest.raises(VenueRefusing) as stopped:
        waiting.call(always_failing)
    message = str(stopped.value)
    assert "sim kept failing" in message and "502 Bad Gateway" in message
    assert "BACKFILL_MAX_REFUSED_S" in message and "unfinished range is recorded" in message
    assert slept[3:] == [1.0, 2.0, 4.0, 8.0, 16.0]  # 31 s; 32 more would pass the 60 s bound

    slept.clear()
    with pytest.raises(AuthenticationError):
        waiting.call(answering(AuthenticationError("sim: bad key", venue="sim", status=401)))
    with pytest.raises(RequestNotSent):  # no connection at all: a wrong address fails at once
        waiting.call(answering(RequestNotSent("sim: refused", venue="sim")))
    assert slept == []

    # A shorter bound for failures (collect_candles: a venue that stays down is skipped at
    # once, so it never holds up the other venues).
    quick = Patience(45.0, limit_name="COLLECT_MAX_REFUSED_S", sleep=sleep, clock=clock,
                     backoff=Backoff(1.0, 60.0, jitter=0.0, clock=clock), max_failing_s=5.0)
    with pytest.raises(VenueRefusing) as skipped:
        quick.call(always_failing)
    assert slept == [1.0, 2.0] and "COLLECT_MAX_REFUSED_S" not in str(skipped.value)


@pytest.mark.django_db
def test_backfill_rides_out_a_venue_answering_5xx(sim, clean_redis):
    """The simulator answers 5xx (its injected server error, through the real adapter) to
    the 1st, 2nd and 4th request: the backfill tries each again and stores every candle,
    where it used to stop at the first one."""
    _, (btc,) = make_sim_venue(sim)
    end = floor_ms(sim_clock(sim)(), "1m")
    start = end - 1_000 * MINUTE_MS  # 5 requests of 200
    calls = [0]

    def through_faults(fetch, *args):
        calls[0] += 1
        sim.set_faults(error_ratio=1.0 if calls[0] in (1, 2, 4) else 0.0)
        try:
            return fetch(*args)
        finally:
            sim.set_faults(error_ratio=0.0)

    slept = []
    report = backfill([btc], ["1m"], start_ms=start, end_ms=end, clock_ms=sim_clock(sim),
                      adapter_factory=fetching_through(sim, through_faults), progress=False,
                      waiting=Patience(600.0, sleep=slept.append))
    assert report.failures == 3 and len(slept) == 3 and calls[0] == 5 + 3
    assert "retried 3 failed request(s) (5xx, unavailable, timeout)" in report.summary()
    assert_same_candles(stored_candles(btc, "1m", start, end),
                        venue_candles(sim, "KRW-BTC", 1, start, end))
    assert not PendingRange.objects.exists()


@pytest.mark.django_db
def test_backfill_waits_out_429_and_418_instead_of_exiting(sim, clean_redis):
    _, (btc,) = make_sim_venue(sim)
    end = floor_ms(sim_clock(sim)(), "1m")
    start = end - 600 * MINUTE_MS
    refusals = iter([429, 429, 418, 429])

    def fetch_or_refuse(fetch, *args):
        status = next(refusals, None)
        if status is not None:
            raise RateLimited(f"sim: {status}", venue="sim", status=status, retry_after=1.0)
        return fetch(*args)

    slept = []
    report = backfill([btc], ["1m"], start_ms=start, end_ms=end, clock_ms=sim_clock(sim),
                      adapter_factory=fetching_through(sim, fetch_or_refuse), progress=False,
                      waiting=Patience(60.0, sleep=slept.append))
    assert report.refusals == 4 and slept == [1.0] * 4
    assert "waited 4.0s on 4 refusal(s) (429/418)" in report.summary()
    assert_same_candles(stored_candles(btc, "1m", start, end),
                        venue_candles(sim, "KRW-BTC", 1, start, end))
    assert not PendingRange.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_backfills_and_a_rest_consumer_on_a_budget_of_3_per_second_store_every_candle(
        sim, clean_redis):
    """The Done-when of issue 21: two backfills and other REST traffic against a venue that
    answers 3 candle requests a second; every candle stored, no traceback."""
    sim.set_faults(rate_limit_budget=3)
    _, (btc, eth) = make_sim_venue(sim, codes=("KRW-BTC", "KRW-ETH"))
    clock, factory = sim_clock(sim), sim_adapter_factory(sim)
    end = floor_ms(clock(), "5m")
    start = end - 400 * MINUTE_MS  # 2 requests of 1m and 1 of 5m per symbol
    errors: list[str] = []
    reports: dict[str, BackfillReport] = {}
    stop = threading.Event()
    hogged: list[int] = []

    def run_backfill(symbol):
        try:
            reports[symbol.code] = backfill([symbol], ["1m", "5m"], start_ms=start, end_ms=end,
                                            clock_ms=clock, adapter_factory=factory,
                                            progress=False)
        except BaseException:
            errors.append(traceback.format_exc())
        finally:
            connection.close()

    def budget_hog():
        # Another client on the same address (the venue counts per IP; the shared limiter
        # cannot see it: another bot, a browser, a script) takes the whole budget at the start
        # of each one-second window for the first 4 windows, then 2 of the 3 requests: the
        # backfills meet more 429s in a row than the REST client waits out by itself.
        import requests

        url = sim.upbit_url + "/v1/candles/minutes/1"
        with requests.Session() as http:
            while not stop.is_set():
                time.sleep(1.0 - time.monotonic() % 1.0 + 0.002)  # the simulator's windows
                for _ in range(3 if len(hogged) < 4 else 2):
                    http.get(url, params={"market": "KRW-BTC", "count": 1}, timeout=5)
                hogged.append(1)

    consumer = threading.Thread(target=budget_hog, daemon=True)
    workers = [threading.Thread(target=run_backfill, args=(s,)) for s in (btc, eth)]
    consumer.start()
    wait_for(lambda: hogged, what="the other client's first burst")
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    stop.set()
    consumer.join(30)

    assert not errors, errors[0]
    assert not any(w.is_alive() for w in workers)
    waited = sum(r.refusals for r in reports.values())
    assert waited > 0, "no request was refused 3 times in a row: the test proves nothing"
    for symbol in (btc, eth):
        for tf, minutes in (("1m", 1), ("5m", 5)):
            assert_same_candles(stored_candles(symbol, tf, start, end),
                                venue_candles(sim, symbol.code, minutes, start, end))
    assert not PendingRange.objects.exists()
    print(f"429 answers: {sim.answers.total(429)}, 200 answers: {sim.answers.total(200)}, "
          f"refusals waited out by the backfills beyond the client's own 2 retries: {waited}")


# -- unfinished ranges ------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_interrupted_backfill_records_its_range_and_collect_fills_the_hole_before_the_first_stored_candle(  # noqa: E501
        sim, clean_redis):
    _, (btc,) = make_sim_venue(sim, timeframes=["1m"])
    clock, factory = sim_clock(sim), sim_adapter_factory(sim)
    collect(clock_ms=clock, adapter_factory=factory)  # the last 200 minutes, as the stream would
    first_stored = Candle.objects.filter(symbol=btc).order_by("open_time").first()
    end = to_ms(first_stored.open_time) + 200 * MINUTE_MS
    start = end - 1000 * MINUTE_MS

    def interrupted(exchange):
        adapter = factory(exchange)

        def ctrl_c(*args):
            raise KeyboardInterrupt

        adapter.fetch_candles = ctrl_c
        return adapter

    with pytest.raises(KeyboardInterrupt):
        backfill([btc], ["1m"], start_ms=start, end_ms=end, clock_ms=clock,
                 adapter_factory=interrupted, progress=False)

    (row,) = PendingRange.objects.all()
    assert (to_ms(row.start), row.timeframe) == (start, "1m")
    assert to_ms(row.end) == to_ms(first_stored.open_time)  # the hole before the first candle
    assert "KeyboardInterrupt" in row.note
    assert find_gaps(btc.id, "1m", start, end) == [(start, to_ms(first_stored.open_time))]

    report = collect(clock_ms=clock, adapter_factory=factory)

    assert report.pending_filled == 1 and not PendingRange.objects.exists()
    assert find_gaps(btc.id, "1m", start, end) == []
    assert_same_candles(stored_candles(btc, "1m", start, end),
                        venue_candles(sim, "KRW-BTC", 1, start, end))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_backfill_command_leaves_its_unfinished_range_and_collect_fills_it(
        sim, clean_redis, how):
    sim.set_faults(rate_limit_budget=1)  # one request a second: the job runs for seconds
    _, (btc,) = make_sim_venue(sim, timeframes=["1m"])
    btc.is_active = False  # collection proper stays out of it: only the recorded range fills
    btc.save()
    end = floor_ms(sim_clock(sim)(), "1m") - 60 * MINUTE_MS
    start = end - 1000 * MINUTE_MS  # 5 chunks
    env = os.environ | {"DATABASE_URL": database_url(),
                        "PYTHONUNBUFFERED": "1"}
    job = subprocess.Popen(
        [sys.executable, "manage.py", "backfill", "--venue", "sim", "--symbol", "KRW-BTC",
         "--timeframe", "1m", "--start", str(start), "--end", str(end), "--no-progress"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        wait_for(lambda: Candle.objects.filter(symbol=btc).count() >= 200 or job.poll() is not None,
                 what="the first chunk")
        assert job.poll() is None, job.stdout.read().decode()
        os.killpg(job.pid, how)
        job.wait(30)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(10)
    stored = Candle.objects.filter(symbol=btc).count()
    assert 200 <= stored < 1000

    (row,) = PendingRange.objects.all()
    # Moved past what was stored, or not yet when the kill came between a chunk's commit and
    # the row's update (it never claims less than is missing).
    assert to_ms(row.end) == end and start <= to_ms(row.start) < end
    assert find_gaps(btc.id, "1m", start, end)[-1][0] >= to_ms(row.start)
    sim.set_faults(rate_limit_budget=None)
    if how == signal.SIGKILL:  # no last word: the row waits for its lease to run out
        assert collect(clock_ms=sim_clock(sim),
                       adapter_factory=sim_adapter_factory(sim)).pending_filled == 0
        PendingRange.objects.update(lease_until=row.created_at)  # as if BACKFILL_LEASE_S passed
    else:  # SIGTERM ends it like Ctrl-C: a clear line, no traceback, the row released at once
        output = job.stdout.read().decode()
        assert "interrupted" in output and "Traceback" not in output, output
        assert "KeyboardInterrupt: SIGTERM" in row.note

    report = collect(clock_ms=sim_clock(sim), adapter_factory=sim_adapter_factory(sim))

    assert report.pending_filled == 1 and not PendingRange.objects.exists()
    assert find_gaps(btc.id, "1m", start, end) == []
    assert_same_candles(stored_candles(btc, "1m", start, end),
                        venue_candles(sim, "KRW-BTC", 1, start, end))


@pytest.mark.django_db
def test_a_venue_refusing_for_too_long_stops_the_command_with_a_clear_message(
        sim, clean_redis, settings, monkeypatch):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    settings.BACKFILL_MAX_REFUSED_S = 2.5
    sim.set_faults(rate_limit_budget=0)  # every request refused
    make_sim_venue(sim)
    monkeypatch.setattr("markets.backfill.adapter_for", sim_adapter_factory(sim))
    monkeypatch.setattr("markets.backfill.now_ms", sim_clock(sim))
    end = floor_ms(sim_clock(sim)(), "1m")
    with pytest.raises(CommandError) as stopped:
        call_command("backfill", "--venue", "sim", "--symbol", "KRW-BTC", "--timeframe", "1m",
                     "--start", str(end - 300 * MINUTE_MS), "--end", str(end), "--no-progress")
    message = str(stopped.value)
    assert "sim kept refusing requests" in message and "BACKFILL_MAX_REFUSED_S" in message
    assert "unfinished range is recorded" in message
    (row,) = PendingRange.objects.all()
    assert to_ms(row.start) == end - 300 * MINUTE_MS and "VenueRefusing" in row.note


@pytest.mark.django_db
def test_a_gap_the_stream_reports_outlives_a_redis_restart_and_collect_fills_it(sim, clean_redis):
    from markets.collect import report_gap

    _, (btc,) = make_sim_venue(sim, timeframes=["1m"])
    clock, factory = sim_clock(sim), sim_adapter_factory(sim)
    collect(clock_ms=clock, adapter_factory=factory)
    end = floor_ms(clock(), "1m") - 20 * MINUTE_MS
    hole = (end - 30 * MINUTE_MS, end)
    Candle.objects.filter(symbol=btc, open_time__gte=to_dt(hole[0]),
                          open_time__lt=to_dt(hole[1])).delete()
    report_gap("sim", "KRW-BTC", "1m", *hole)  # the stream stopped before it could fill it
    clean_redis.flushdb()  # Redis restarted (the private one keeps nothing)

    report = collect(clock_ms=clock, adapter_factory=factory)

    assert report.gaps_reported == 1 and not PendingRange.objects.exists()
    assert find_gaps(btc.id, "1m", *hole) == []
