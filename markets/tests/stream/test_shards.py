"""Stream shards (issue 20): the rendezvous assignment, the membership in Redis, the runner
following only its share, the merged heartbeats in /health, and the symbol sync of venues that
follow all their symbols."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from markets import heartbeat
from markets.stream.config import accelerated_clock
from markets.stream.runner import StreamRunner
from markets.stream.shards import (
    Member,
    ShardRegistry,
    assign,
    check_shard_id,
    owner,
    parse_venues,
    venue_beats,
)

from .test_stream_resilience import FakeVenueStream, wait_until

VENUES = ("upbit", "bithumb", "binance")
ids = st.text("abcdefghij0123456789-", min_size=1, max_size=8)
symbols = st.lists(st.tuples(st.sampled_from(VENUES), st.text("ABCXYZ-", min_size=1, max_size=6)),
                   unique=True, max_size=60)
members_st = st.dictionaries(
    ids, st.one_of(st.none(), st.frozensets(st.sampled_from(VENUES), min_size=1)),
    min_size=1, max_size=6,
).map(lambda d: [Member(k, v) for k, v in d.items()])


@given(symbols, members_st, st.randoms())
def test_every_symbol_has_exactly_one_live_owner_that_takes_its_venue_whatever_the_order(
        keys, members, rnd):
    owners = assign(keys, members)
    shuffled = list(members)
    rnd.shuffle(shuffled)
    assert assign(keys, shuffled) == owners  # every shard computes the same assignment
    by_id = {m.id: m for m in members}
    for (venue, _code), shard in owners.items():
        takers = [m for m in members if m.takes(venue)]
        if takers:
            assert shard in by_id and by_id[shard].takes(venue)
        else:
            assert shard is None  # nobody takes the venue: nobody follows it


@given(symbols, members_st, ids)
def test_a_shard_joining_takes_symbols_only_for_itself_and_leaving_hands_over_only_its_own(
        keys, members, newcomer):
    if any(m.id == newcomer for m in members):
        return
    before = assign(keys, members)
    after = assign(keys, [*members, Member(newcomer)])
    for key, shard in after.items():
        assert shard == before[key] or shard == newcomer  # no move between old shards
    gone = members[0].id
    rest = members[1:]
    left = assign(keys, rest)
    for key, shard in before.items():
        if shard != gone:
            assert left[key] == shard  # the survivors keep what they had


@pytest.mark.parametrize("n", [1, 2, 4, 9])
def test_about_one_nth_of_the_symbols_move_when_the_nth_shard_joins_or_leaves(n):
    keys = [("upbit", f"KRW-C{i}") for i in range(3000)]
    members = [Member(f"shard-{i}") for i in range(n)]
    before = assign(keys, members)
    after = assign(keys, [*members, Member("joiner")])
    moved = sum(before[k] != after[k] for k in keys) / len(keys)
    assert abs(moved - 1 / (n + 1)) < 0.03, moved
    counts = {m.id: list(after.values()).count(m.id) for m in members}
    assert min(counts.values()) > 0.75 * len(keys) / (n + 1)  # balanced within 25 %


def test_shard_ids_and_venue_lists_are_checked():
    assert check_shard_id("host-1.a_b") == "host-1.a_b"
    with pytest.raises(ValueError, match="STREAM_SHARD_ID"):
        check_shard_id("a@b")
    assert parse_venues("") is None and parse_venues("*") is None
    assert parse_venues("upbit, bithumb") == frozenset({"upbit", "bithumb"})
    assert owner("upbit", "KRW-BTC", [Member("a", frozenset({"binance"}))]) is None


def test_the_accelerated_clock_runs_from_its_anchor_at_its_speed():
    wall = int(time.time() * 1000)
    clock = accelerated_clock(f"at=1000000,wall={wall},speed=20")
    assert abs(clock() - 1_000_000) < 2_000  # within 0.1 s of wall time at 20x
    assert accelerated_clock("") is None
    with pytest.raises(ValueError, match="STREAM_CLOCK"):
        accelerated_clock("speed=20")


def test_venue_heartbeats_of_several_shards_are_merged_per_venue():
    merged = venue_beats({
        "sim@a": {"ts_ms": "100", "state": "streaming", "symbols": "3", "reconnects": "1"},
        "sim@b": {"ts_ms": "200", "state": "polling", "symbols": "2", "reconnects": "0"},
        "other": {"ts_ms": "50", "state": "streaming", "symbols": "1"},
    })
    assert merged["sim"] == {"shards": ["a", "b"], "ts_ms": "200", "state": "polling",
                             "symbols": "5", "reconnects": "1"}
    assert merged["other"]["symbols"] == "1" and merged["other"]["shards"] == ["-"]


# -- the membership in Redis and the runner --------------------------------------------------


@pytest.mark.redis
def test_a_shard_is_live_while_it_beats_and_gone_after_its_ttl_or_when_it_leaves(clean_redis):
    a = ShardRegistry("a", None, ttl_s=1.0)
    b = ShardRegistry("b", frozenset({"upbit"}), ttl_s=1.0)
    a.beat(["sim:KRW-BTC"])
    b.beat([])
    assert a.members() == {"a": Member("a"), "b": Member("b", frozenset({"upbit"}))}
    assert clean_redis.smembers(a.key() + ":symbols") == {"sim:KRW-BTC"}
    assert wait_for_sync(lambda: set(a.members()) == {"a"}, 5)  # b stopped beating
    b.beat([])
    b.leave()
    assert set(a.members()) == {"a"}


def wait_for_sync(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_two_runners_split_the_symbols_and_one_takes_all_when_the_other_stops(clean_redis):
    from markets.models import Exchange, Symbol

    ex = await Exchange.objects.acreate(slug="sim", name="Sim", adapter="upbit",
                                        rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    codes = [f"KRW-C{i}" for i in range(12)]
    for code in codes:
        await Symbol.objects.acreate(exchange=ex, code=code, base=code[4:], quote="KRW")
    made: dict[str, list[FakeVenueStream]] = {"a": [], "b": []}

    def runner(name):
        def factory(spec):
            made[name].append(FakeVenueStream(spec))
            return made[name][-1]

        return StreamRunner(factory=factory, reload_every_s=0.1, watchers=[],
                            shard=ShardRegistry(name, None, ttl_s=1.0))

    def following(name):
        live = [s for s in made[name] if not s.stopped]
        return {c.code for s in live for c in s.spec.symbols}

    a, b = runner("a"), runner("b")
    ta = asyncio.ensure_future(a.run())
    tb = asyncio.ensure_future(b.run())
    expected = assign([("sim", c) for c in codes], [Member("a"), Member("b")])
    assert await wait_until(lambda: all(
        following(n) == {c for (_, c), o in expected.items() if o == n} for n in "ab"), 5)
    assert following("a") and following("b") and not following("a") & following("b")
    # /health lists both shards with their symbol counts.
    from tradesite.health import stream_shards

    assert await wait_until(lambda: {k: v["symbols"] for k, v in stream_shards(
        time.time()).items()} == {"a": len(following("a")), "b": len(following("b"))}, 5)

    b.stop()  # a clean stop: b leaves at once
    await asyncio.wait_for(tb, 5)
    assert await wait_until(lambda: following("a") == set(codes), 5)
    # a's own symbols kept streaming; b's started as a part of their own.
    first = made["a"][-2] if len(made["a"]) >= 2 else None
    assert first is not None and not first.stopped
    assert {c.code for c in made["a"][-1].spec.symbols} == set(codes) - {
        c.code for c in first.spec.symbols}
    a.stop()
    await asyncio.wait_for(ta, 5)
    assert heartbeat.client().keys("tradesite:stream:shard:*") == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_a_shard_that_only_takes_one_venue_leaves_the_others_to_the_rest(clean_redis):
    from markets.models import Exchange, Symbol

    for slug in ("sim", "other"):
        ex = await Exchange.objects.acreate(slug=slug, name=slug, adapter="upbit",
                                            rest_url="http://127.0.0.1:1",
                                            ws_url="ws://127.0.0.1:1")
        for i in range(6):
            await Symbol.objects.acreate(exchange=ex, code=f"KRW-C{i}", base=f"C{i}", quote="KRW")
    made: dict[str, list[FakeVenueStream]] = {"a": [], "b": []}

    def runner(name, venues):
        def factory(spec):
            made[name].append(FakeVenueStream(spec))
            return made[name][-1]

        return StreamRunner(factory=factory, reload_every_s=0.1, watchers=[], only=venues,
                            shard=ShardRegistry(name, venues and frozenset(venues), ttl_s=1.0))

    def venues_of(name):
        return {s.spec.slug for s in made[name] if not s.stopped}

    a, b = runner("a", {"sim"}), runner("b", None)
    tasks = [asyncio.ensure_future(a.run()), asyncio.ensure_future(b.run())]
    assert await wait_until(lambda: venues_of("a") == {"sim"} and "other" in venues_of("b"), 5)
    other = next(s for s in made["b"] if not s.stopped and s.spec.slug == "other")
    assert len(other.spec.symbols) == 6  # a never takes the venue it does not stream
    a.stop()
    b.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)


def test_compose_runs_as_many_stream_shards_as_stream_shards_says():
    import yaml

    from tradesite.tests.test_settings import ROOT

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    stream = compose["services"]["stream"]
    assert stream["command"] == ["python", "manage.py", "stream"]
    assert stream["deploy"]["replicas"] == "${STREAM_SHARDS:-1}"


@pytest.mark.redis
def test_two_processes_under_one_shard_id_are_noticed(clean_redis):
    mine = ShardRegistry("same", None)
    mine.beat([])
    mine.members()
    assert not mine.duplicate
    clean_redis.hset(mine.key(), mapping={"host": "elsewhere", "pid": "1"})  # the other's beat
    mine.members()
    assert mine.duplicate


async def test_gained_symbols_start_as_parts_and_a_venue_of_four_parts_is_consolidated():
    from markets.stream.config import SymbolSpec, VenueSpec

    made: list[FakeVenueStream] = []

    def factory(spec):
        made.append(FakeVenueStream(spec))
        return made[-1]

    runner = StreamRunner(factory=factory, watchers=[])

    def venue(n):
        return {"sim": VenueSpec("sim", "upbit", "http://127.0.0.1:1", "ws://127.0.0.1:1",
                                 tuple(SymbolSpec(f"KRW-C{i}", i, ("1m",)) for i in range(n)))}

    for n in (2, 3, 4, 5):
        await runner._apply(venue(n))
    assert [len(s.spec.symbols) for s in made] == [2, 1, 1, 1] and not any(
        s.stopped for s in made)
    await runner._apply(venue(6))  # a fifth part would be one too many: one part again
    assert all(s.stopped for s in made[:4]) and [c.code for c in made[4].spec.symbols] == [
        f"KRW-C{i}" for i in range(6)]
    await runner._apply(venue(5))  # a symbol lost: its part restarts with the rest
    assert made[4].stopped and len(made[5].spec.symbols) == 5
    await runner._apply({})
    assert made[5].stopped and runner.running == {}


@pytest.mark.redis
def test_a_killed_shard_of_this_machine_is_dropped_once_its_pid_is_gone_without_its_ttl(
        clean_redis):
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    me = ShardRegistry("me", None, ttl_s=60.0, stale_s=1.0)
    old = int(time.time() * 1000)
    for shard_id, pid, ts in (("dead", dead_pid, old - 5_000), ("fresh", dead_pid, old),
                              ("alive", os.getppid(), old - 5_000),
                              ("remote", dead_pid, old - 5_000)):
        clean_redis.hset(me.key(shard_id), mapping={
            "ts_ms": ts, "pid": pid, "venues": "*",
            "host": "elsewhere" if shard_id == "remote" else socket.gethostname()})
        clean_redis.expire(me.key(shard_id), 60)
    # Gone and silent: dropped. Beat just now, alive, or on another machine: kept (TTL rules).
    assert set(me.members()) == {"me", "fresh", "alive", "remote"}
    assert not clean_redis.exists(me.key("dead"))
