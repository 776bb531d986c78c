"""Stream resilience: REST polling while the WebSocket is unreachable, the silence watchdog,
quiet logs for an offline venue, the symbol-set change stamp and reload, heartbeats."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import websockets

from markets import heartbeat
from markets.stream import StreamConfig, StreamRunner, SymbolSpec, VenueSpec
from markets.stream.runner import WsLogFilter, stream_beat
from markets.timeframes import floor_ms
from simulator.server import Simulator

from .conftest import MINUTE_MS, sim_config
from .test_stream import Recorder, make_stream, wait_until


async def test_while_the_websocket_is_down_closed_bars_arrive_over_rest():
    stored: dict[int, tuple] = {}

    def store(symbol_id, tf, rows):
        for r in rows:
            stored[r.open_time_ms] = (r.open, r.close)
        return len(rows), 0

    async with Simulator(sim_config(speed=30.0, trade_rate=1.0, history_days=0.2,
                                    tick_s=0.02)) as sim:
        # REST answers; the WebSocket URL points at a closed port.
        spec = VenueSpec("sim", "upbit", sim.upbit_url, "ws://127.0.0.1:1",
                         (SymbolSpec("KRW-BTC", 1, ("1m",)),))
        rec = Recorder()
        beats = []
        stream = make_stream(spec, rec, sim.clock_ms, store=store, last_stored=lambda *a: None,
                             config=StreamConfig(grace_ms=3_000, catchup_candles=5,
                                                 heartbeat_s=0.2))
        stream.beat_fn = lambda slug, **f: beats.append(f)
        started = sim.clock_ms()
        runner = asyncio.ensure_future(stream.run())
        first_live = floor_ms(started, "1m")
        assert await wait_until(
            lambda: any(k["bar_time_ms"] == first_live + MINUTE_MS for _, k in rec.tasks), 20
        ), sorted(stored)
        stream.stop()
        await asyncio.wait_for(runner, 10)
    # Catch-up, then every minute closed while the socket was down, over REST, no holes.
    times = sorted(stored)
    assert times == list(range(times[0], times[-1] + MINUTE_MS, MINUTE_MS))
    assert times[0] <= first_live - 4 * MINUTE_MS
    assert any(b.get("state") == "polling" for b in beats)
    # Evaluated: the latest closed bar of each REST poll (not the catch-up history).
    assert [k["bar_time_ms"] for _, k in rec.tasks][-2:] == [first_live, first_live + MINUTE_MS]


async def test_a_silent_open_connection_is_reconnected_by_the_watchdog():
    connections = []

    async def handler(ws):
        connections.append(ws)
        await ws.recv()  # subscribed, then silence (no trades, no status frames)
        await ws.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        spec = VenueSpec("quiet", "upbit", "http://127.0.0.1:1", f"ws://127.0.0.1:{port}",
                         (SymbolSpec("KRW-BTC", 1, ("1m",)),))
        stream = make_stream(spec, Recorder(), lambda: int(time.time() * 1000),
                             store=lambda *a: (0, 0), last_stored=lambda *a: None,
                             config=StreamConfig(silence_s=0.6, reconnect_min_s=0.1,
                                                 fill_retry_s=60))
        runner = asyncio.ensure_future(stream.run())
        assert await wait_until(lambda: len(connections) >= 3, 10)
        stream.stop()
        await asyncio.wait_for(runner, 10)
    assert stream.reconnects >= 1
    assert stream.connections[0].restarts >= 2


def test_an_offline_venue_logs_its_first_drop_and_then_at_most_once_a_minute():
    logger = logging.getLogger("markets.exchanges.ws")
    flt = WsLogFilter(every_s=60.0)
    records = [logging.LogRecord("markets.exchanges.ws", logging.WARNING, __file__, 1,
                                 "%s: stream dropped (%s); reconnecting in %.1fs",
                                 ("upbit", "OSError", 0.5), None) for _ in range(20)]
    passed = [flt.filter(r) for r in records]
    assert passed == [True] + [False] * 19
    other = logging.LogRecord("markets.exchanges.ws", logging.WARNING, __file__, 1,
                              "%s: stream dropped (%s); reconnecting in %.1fs",
                              ("bithumb", "OSError", 0.5), None)
    assert flt.filter(other)  # per venue
    assert logger is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
def test_saving_or_deleting_a_symbol_or_exchange_bumps_the_change_stamp(clean_redis, exchange):
    from markets.models import Symbol
    from markets.symbol_changes import changed_key

    clean_redis.delete(changed_key())
    Symbol.objects.create(exchange=exchange, code="KRW-XRP", base="XRP", quote="KRW")
    first = clean_redis.get(changed_key())
    assert first is not None
    time.sleep(0.01)
    Symbol.objects.filter(code="KRW-XRP").get().delete()
    second = clean_redis.get(changed_key())
    assert int(second) >= int(first)
    exchange.is_active = False
    clean_redis.delete(changed_key())
    exchange.save()
    assert clean_redis.get(changed_key()) is not None


class FakeVenueStream:
    def __init__(self, spec):
        self.spec = spec
        self._stop = asyncio.Event()
        self.stopped = False

    async def run(self):
        await self._stop.wait()
        self.stopped = True

    def stop(self):
        self._stop.set()


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_the_runner_reloads_venues_when_the_stamp_changes(clean_redis):
    from markets.models import Exchange, Symbol

    ex = await Exchange.objects.acreate(slug="sim", name="Sim", adapter="upbit",
                                        rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    await Symbol.objects.acreate(exchange=ex, code="KRW-BTC", base="BTC", quote="KRW")
    made: list[FakeVenueStream] = []

    def factory(spec):
        made.append(FakeVenueStream(spec))
        return made[-1]

    runner = StreamRunner(factory=factory, reload_every_s=0.1)
    task = asyncio.ensure_future(runner.run())
    assert await wait_until(lambda: len(made) == 1, 5)
    assert [s.code for s in made[0].spec.symbols] == ["KRW-BTC"]
    await Symbol.objects.acreate(exchange=ex, code="KRW-ETH", base="ETH", quote="KRW")
    assert await wait_until(lambda: len(made) == 2, 5)
    # A new listing starts as a part of its own: KRW-BTC keeps streaming, uninterrupted.
    assert not made[0].stopped
    assert [s.code for s in made[1].spec.symbols] == ["KRW-ETH"]
    # A changed symbol restarts the part that holds it.
    await Symbol.objects.filter(code="KRW-BTC").aupdate(timeframes=["1m"])
    btc = await Symbol.objects.aget(code="KRW-BTC")
    await btc.asave()  # the change stamp moves on save
    assert await wait_until(lambda: len(made) == 3, 5)
    assert made[0].stopped and not made[1].stopped
    assert [(s.code, s.timeframes) for s in made[2].spec.symbols] == [("KRW-BTC", ("1m",))]
    ex.is_active = False
    await ex.asave()
    assert await wait_until(lambda: made[1].stopped and made[2].stopped, 5)
    runner.stop()
    await asyncio.wait_for(task, 5)
    assert len(made) == 3


@pytest.mark.redis
def test_the_stream_heartbeat_is_written_and_removed_on_stop(clean_redis):
    stream_beat("sim", state="streaming", reconnects=1, skipped=2, last_message_ms=5)
    fields = heartbeat.read("stream")["sim"]
    assert fields["state"] == "streaming" and fields["skipped"] == "2"
    stream_beat("sim", stopped=True)
    assert "sim" not in heartbeat.read("stream")


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_sigterm_flushes_closed_bars_and_never_stores_the_forming_one(clean_redis):
    import os
    import signal

    from markets.models import Exchange, Symbol

    from .test_stream import T0, trade

    ex = await Exchange.objects.acreate(slug="script", name="Script", adapter="upbit",
                                        rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    await Symbol.objects.acreate(exchange=ex, code="KRW-BTC", base="BTC", quote="KRW",
                                 timeframes=["1m"])
    clock = {"now": T0 + 500}
    script = [(T0 + 1_000, 100.0), (T0 + 61_000, 101.0), (T0 + 62_000, 105.0),
              (T0 + 121_000, 107.0)]
    sent = asyncio.Event()

    async def handler(ws):
        await ws.recv()
        for i, (ts, price) in enumerate(script):
            clock["now"] = ts
            await ws.send(trade(i + 1, ts, price))
            await asyncio.sleep(0.05)
        sent.set()
        await ws.wait_closed()

    stored: list = []
    streams = []
    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]

        def factory(spec):
            scripted = VenueSpec(spec.slug, "upbit", "http://127.0.0.1:1",
                                 f"ws://127.0.0.1:{port}", spec.symbols)
            streams.append(make_stream(
                scripted, Recorder(), lambda: clock["now"],
                store=lambda sid, tf, rows: stored.extend((tf, r) for r in rows) or (0, 0),
                last_stored=lambda *a: None,
                config=StreamConfig(grace_ms=500, margin_ms=500, fill_retry_s=3600)))

            async def idle_writer():  # closed bars wait in `pending` until the shutdown
                await asyncio.Event().wait()

            streams[-1]._writer_loop = idle_writer
            return streams[-1]

        runner = StreamRunner(factory=factory, reload_every_s=0.1)
        task = asyncio.ensure_future(runner.run())
        assert await wait_until(sent.is_set, 10)
        await asyncio.sleep(0.3)
        assert stored == []  # the writer is idle: only the shutdown stores
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)

    # Minute 1 was closed by the trade in minute 2 and flushed at SIGTERM; minute 0 overlapped
    # the start-up interruption (REST's job); minute 2 was still forming and was not stored.
    assert [(tf, r.open_time_ms, r.open, r.close) for tf, r in stored] == [
        ("1m", T0 + 60_000, 101.0, 105.0)]


def test_one_connection_per_venue_split_only_where_the_venue_limits_streams_or_url_length():
    def build(adapter, n):
        symbols = tuple(SymbolSpec(f"S{i}USDT", i, ("1m",)) for i in range(n))
        spec = VenueSpec("v", adapter, "http://127.0.0.1:1", "ws://127.0.0.1:1", symbols)
        return make_stream(spec, Recorder(), lambda: 0, store=lambda *a: (0, 0),
                           last_stored=lambda *a: None)

    assert [len(c.codes) for c in build("upbit", 450).connections] == [450]
    assert [len(c.codes) for c in build("binance_futures", 450).connections] == [200, 200, 50]
    # Spot allows 1024 streams a connection, but Binance names them in the URL: 450 of them
    # would make a URL over 8 KB, so they take two connections.
    assert [len(c.codes) for c in build("binance_spot", 450).connections] == [329, 121]
    assert [len(c.codes) for c in build("binance_spot", 300).connections] == [300]


def test_the_evaluation_is_sent_through_the_projects_celery_app(monkeypatch):
    from celery import current_app

    import tradesite  # noqa: F401  (what every entry point imports first)
    from markets.stream.runner import default_send_task

    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, kwargs: sent.append((name,
                                                                                    kwargs)))
    assert current_app.main == "tradesite"
    default_send_task("orders.tasks.evaluate", {"venue": "sim"})
    assert sent == [("orders.tasks.evaluate", {"venue": "sim"})]
