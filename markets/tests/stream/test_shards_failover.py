"""Two ``manage.py stream`` shards on one machine (issue 20, third "Done when" bullet): they
split the simulator's symbols (each a non-empty share, disjoint, together all of them); one is
SIGKILLed; within 30 s the other follows every symbol, and no 1m candle of any symbol is missing
(or differs from the venue's) over the test's minutes.

The simulator runs in this process on its accelerated clock (10 simulated seconds a second: a
1m bar closes every 6 s); the shards get that clock through ``STREAM_CLOCK``. Two ways a dead
shard is noticed, each as deployed: on one machine its pid is gone, so it is dropped once it
missed its beats (``STREAM_SHARD_STALE_S``, 5 s); across machines only its key's TTL ends it
(``STREAM_SHARD_TTL_S``, 15 s; the ``ttl`` case turns the pid check off to take that path).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from markets.models import Symbol
from markets.stream.shards import Member, assign
from markets.tests.database import database_url
from markets.timeframes import floor_ms
from simulator.server import SimulatorThread, default_symbols
from simulator.symbols import SymbolSpec, krw_tick

from .conftest import MINUTE_MS, make_sim_venue, sim_config, stored_candles, venue_candles

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
SPEED = 10.0
TAKEOVER_BOUND_S = 30.0
CODES = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-ADA", "KRW-DOT", "KRW-LINK",
         "KRW-AVAX"]


def eight_symbols():
    upbit = default_symbols()["upbit"]
    extra = [SymbolSpec(code, code[4:], "KRW", 900.0 * (i + 2), krw_tick, 1e-8, 0.0015, 500.0)
             for i, code in enumerate(CODES[len(upbit):])]
    return {"upbit": [*upbit, *extra]}


@pytest.fixture
def fast_sim():
    handle = SimulatorThread(sim_config(speed=SPEED, trade_rate=1.0, history_days=0.05,
                                        tick_s=0.05, symbols=eight_symbols()))
    yield handle
    handle.stop()


def wait_for(condition, timeout_s, what, procs=()):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        for name, proc in procs:
            assert proc.poll() is None, f"shard {name} exited: {read_log(name)}"
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.1)


def log_path(name):
    return ROOT / "test-artifacts" / f"shard-{name}.log"


def read_log(name):
    try:
        return log_path(name).read_text()[-3000:]
    except OSError:
        return ""


def following(client, shard):
    return {m.split(":", 1)[1] for m in client.smembers(f"tradesite:stream:shard:{shard}:symbols")}


@pytest.mark.parametrize("stale_s", ["5", "0"], ids=["same-machine", "ttl"])
def test_two_shards_split_the_symbols_and_a_killed_ones_are_taken_over_without_a_missing_candle(
        fast_sim, clean_redis, stale_s):
    exchange, _ = make_sim_venue(fast_sim, codes=CODES, timeframes=["1m"])
    symbols = {s.code: s for s in Symbol.objects.filter(exchange=exchange)}
    clock = fast_sim.sim.clock_ms
    at, wall = clock(), int(time.time() * 1000)
    env = os.environ | {"DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1",
                        "STREAM_CLOCK": f"at={at},wall={wall},speed={SPEED}",
                        "STREAM_SHARD_STALE_S": stale_s}
    os.makedirs(ROOT / "test-artifacts", exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in ("s1", "s2"):
            with open(log_path(name), "wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "manage.py", "stream", "--shard-id", name], cwd=ROOT,
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        live = list(procs.items())

        # Both shards follow their rendezvous share: non-empty, disjoint, together everything.
        expected = assign([("sim", c) for c in CODES], [Member("s1"), Member("s2")])
        share = {n: {c for (_, c), o in expected.items() if o == n} for n in procs}
        wait_for(lambda: all(following(clean_redis, n) == share[n] for n in procs), 45,
                 f"the shards following {share}", live)
        one, two = following(clean_redis, "s1"), following(clean_redis, "s2")
        assert one and two and not one & two and one | two == set(CODES)
        # From here on every minute must be stored; wait for each symbol's first live bar.
        first = floor_ms(clock(), "1m")
        wait_for(lambda: all(stored_candles(symbols[c], "1m", first, first + MINUTE_MS)
                             for c in CODES), 30, "a live 1m bar of every symbol", live)

        victim, survivor = ("s1", "s2") if one else ("s2", "s1")
        os.killpg(procs[victim].pid, signal.SIGKILL)
        procs[victim].wait(10)
        killed_at = time.monotonic()
        killed_sim_ms = clock()
        live = [(survivor, procs[survivor])]
        wait_for(lambda: following(clean_redis, survivor) == set(CODES), TAKEOVER_BOUND_S,
                 f"{survivor} following every symbol after {victim} was killed", live)
        takeover_s = time.monotonic() - killed_at

        # Two more minutes after the hand-over, closed and stored by the survivor.
        end = floor_ms(clock(), "1m") + 2 * MINUTE_MS
        wait_for(lambda: all(stored_candles(symbols[c], "1m", end - MINUTE_MS, end)
                             for c in CODES), 60, "the minutes after the hand-over", live)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    assert takeover_s < TAKEOVER_BOUND_S
    assert end - first >= 4 * MINUTE_MS and first < killed_sim_ms < end
    for code in CODES:
        venue = venue_candles(fast_sim, code, 1, first, end)
        stored = stored_candles(symbols[code], "1m", first, end)
        missing = sorted(set(venue) - set(stored))
        assert not missing, f"{code}: missing 1m candles {missing}"
        assert sorted(stored) == sorted(venue), code
        for t, row in venue.items():
            assert stored[t] == pytest.approx(row, rel=1e-9), (code, t)
    print(f"hand-over: {takeover_s:.1f} s after SIGKILL; checked "
          f"{(end - first) // MINUTE_MS} minutes x {len(CODES)} symbols")
