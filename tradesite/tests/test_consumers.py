"""The chart and markets WebSockets against the real Redis channel layer (``make test`` starts
one): who may connect, who receives what, and the delivery promises (closed bars and private
events exactly once and in order; forming bars may be superseded, never stale)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from markets import wire
from tradesite.consumers import (
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
    LayerReader,
    Outbox,
    RedisLayerReader,
    Writer,
    hub,
    start_eagerly,
)
from tradesite.routing import websocket_urlpatterns

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def bar(t: int, close: float, closed: bool, tf: str = "1m", symbol: str = "KRW-BTC") -> dict:
    return wire.bar_message(
        "sim", symbol, tf, {"t": t, "o": 100.0, "h": max(100.0, close), "l": 99.0, "c": close,
                            "v": 1.5}, closed
    )


async def connect(path: str, user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    comm.scope["user"] = user
    connected, _ = await comm.connect(timeout=5)
    assert connected
    hello = json.loads(await comm.receive_from(timeout=5))
    assert hello["type"] == "hello"
    return comm


async def publish(group: str, message: dict) -> None:
    await get_channel_layer().group_send(group, message)


async def next_json(comm: WebsocketCommunicator, timeout: float = 3) -> dict:
    return json.loads(await comm.receive_from(timeout=timeout))


@pytest.fixture
def trader(make_trader):
    return make_trader("alice")


@pytest.fixture
def other(make_trader):
    return make_trader("bob")


async def test_anonymous_chart_socket_is_told_to_log_in_and_closed_with_4401(symbol, redis_url):
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chart/sim/KRW-BTC/1m/")
    comm.scope["user"] = AnonymousUser()
    connected, _ = await comm.connect(timeout=5)
    assert connected
    error = json.loads(await comm.receive_from(timeout=5))
    assert error == {"type": "error", "code": 4401, "message": "log in to see live charts"}
    closed = await comm.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}


async def test_anonymous_markets_socket_is_closed_with_4401(redis_url, db):
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/markets/")
    comm.scope["user"] = AnonymousUser()
    await comm.connect(timeout=5)
    await comm.receive_from(timeout=5)
    assert (await comm.receive_output(timeout=5))["code"] == CLOSE_UNAUTHENTICATED


@pytest.mark.parametrize(
    "path, reason",
    [
        ("/ws/chart/sim/KRW-DOGE/1m/", "no active symbol 'KRW-DOGE' on venue 'sim'"),
        ("/ws/chart/nowhere/KRW-BTC/1m/", "no active symbol 'KRW-BTC' on venue 'nowhere'"),
        ("/ws/chart/sim/KRW-BTC/2m/", "unknown timeframe '2m'"),
    ],
)
async def test_unknown_venue_symbol_or_timeframe_closes_with_4404_and_a_reason(
    symbol, trader, redis_url, path, reason
):
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    comm.scope["user"] = trader
    await comm.connect(timeout=5)
    error = json.loads(await comm.receive_from(timeout=5))
    assert error["code"] == CLOSE_NOT_FOUND
    assert error["message"].startswith(reason)
    assert (await comm.receive_output(timeout=5))["code"] == CLOSE_NOT_FOUND


async def test_inactive_symbol_closes_with_4404(symbol, trader, redis_url):
    symbol.is_active = False
    await database_sync_to_async(symbol.save)()
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chart/sim/KRW-BTC/1m/")
    comm.scope["user"] = trader
    await comm.connect(timeout=5)
    await comm.receive_from(timeout=5)
    assert (await comm.receive_output(timeout=5))["code"] == CLOSE_NOT_FOUND


async def test_bars_reach_the_subscribers_of_that_group_only(symbol, trader, other, redis_url):
    one_minute = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    also_one_minute = await connect("/ws/chart/sim/KRW-BTC/1m/", other)
    five_minutes = await connect("/ws/chart/sim/KRW-BTC/5m/", trader)
    await publish(wire.bars_group("sim", "KRW-BTC", "1m"), bar(T0, 101.0, closed=True))
    expected = {"type": "bar", "t": T0, "o": 100.0, "h": 101.0, "l": 99.0, "c": 101.0,
                "v": 1.5, "closed": True}
    assert await next_json(one_minute) == expected
    assert await next_json(also_one_minute) == expected
    assert await five_minutes.receive_nothing(timeout=0.5)
    for comm in (one_minute, also_one_minute, five_minutes):
        await comm.disconnect()


async def test_private_events_reach_only_their_owner_and_only_on_that_symbol(
    symbol, trader, other, redis_url
):
    alice = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    bob = await connect("/ws/chart/sim/KRW-BTC/1m/", other)
    signal = wire.private_message(
        wire.SIGNAL_CREATED,
        {"id": 7, "symbol": "sim:KRW-BTC", "action": "enter_long", "bar_time": T0,
         "price": "101", "reason": {"rsi": 28.5}},
    )
    elsewhere = wire.private_message(
        wire.FILL_CREATED, {"id": 8, "symbol": "sim:KRW-ETH", "price": "5", "ts": T0}
    )
    await publish(wire.user_group(trader.pk), elsewhere)
    await publish(wire.user_group(trader.pk), signal)
    assert await next_json(alice) == signal  # the KRW-ETH fill was filtered out
    assert await alice.receive_nothing(timeout=0.3)
    assert await bob.receive_nothing(timeout=0.5)
    await alice.disconnect()
    await bob.disconnect()


async def test_closed_bars_and_private_events_arrive_once_in_order(symbol, trader, redis_url):
    comm = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    group = wire.bars_group("sim", "KRW-BTC", "1m")
    for i in range(50):
        await publish(group, bar(T0 + i * 60_000, 100.0 + i, closed=True))
        await publish(wire.user_group(trader.pk), wire.private_message(
            wire.ORDER_UPDATED, {"id": i, "symbol": "sim:KRW-BTC", "status": "filled"}))
    received = [await next_json(comm) for _ in range(100)]
    assert [m["t"] for m in received if m["type"] == "bar"] == [T0 + i * 60_000 for i in range(50)]
    assert [m["id"] for m in received if m["type"] == "order.updated"] == list(range(50))
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_hello_means_subscribed_even_when_joining_groups_is_slow(
        symbol, trader, redis_url, monkeypatch):
    """A private event published the moment hello arrives is delivered: hello waits for the
    user group's join, however long Redis takes (it was once sent before that join)."""
    layer = get_channel_layer()
    joined = []
    real_group_add = type(layer).group_add

    async def slow_group_add(self, group, channel):
        await asyncio.sleep(0.3)
        await real_group_add(self, group, channel)
        joined.append(group)

    monkeypatch.setattr(type(layer), "group_add", slow_group_add)
    comm = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    assert wire.user_group(trader.pk) in joined
    await publish(wire.user_group(trader.pk), wire.private_message(
        wire.ORDER_UPDATED, {"id": 7, "symbol": "sim:KRW-BTC", "status": "filled"}))
    await publish(wire.bars_group("sim", "KRW-BTC", "1m"), bar(T0, 101.0, closed=True))
    received = [await next_json(comm), await next_json(comm)]
    assert sorted(m["type"] for m in received) == ["bar", "order.updated"]
    await comm.disconnect()


async def test_a_malformed_bar_is_skipped_and_the_chart_stays_live(symbol, trader, redis_url):
    comm = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    group = wire.bars_group("sim", "KRW-BTC", "1m")
    await publish(group, bar(T0, float("nan"), closed=False))
    broken = bar(T0, 101.0, closed=False)
    del broken["bar"]["c"]
    await publish(group, broken)
    await publish(group, bar(T0, 102.0, closed=False))
    assert (await next_json(comm))["c"] == 102.0
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_a_forming_update_after_its_bar_closed_is_not_sent(symbol, trader, redis_url):
    comm = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    group = wire.bars_group("sim", "KRW-BTC", "1m")
    await publish(group, bar(T0, 101.0, closed=True))
    await publish(group, bar(T0, 99.5, closed=False))  # late tick of the closed bar
    await publish(group, bar(T0 + 60_000, 103.0, closed=False))
    assert [(m["t"], m["closed"]) for m in [await next_json(comm), await next_json(comm)]] == [
        (T0, True), (T0 + 60_000, False)]
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_a_quiet_socket_stays_open_past_the_redis_socket_timeout(symbol, trader, redis_url):
    """redis-py 8's default 5 s socket timeout would end idle layer readers (STACK-NOTES)."""
    comm = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    await asyncio.sleep(6)
    await publish(wire.bars_group("sim", "KRW-BTC", "1m"), bar(T0, 105.0, closed=False))
    assert (await next_json(comm, timeout=5))["c"] == 105.0
    await comm.disconnect()


async def test_a_disconnect_that_redis_refuses_still_releases_the_client(
    symbol, trader, redis_url, monkeypatch, caplog
):
    """A thousand clients leaving at once ran channels_redis' pool out of connections: the
    membership is left to expire, and the outbox and the hub's membership are still released
    (the hub leaves the market group with its last client)."""
    import redis.exceptions

    comm = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    group = wire.bars_group("sim", "KRW-BTC", "1m")
    the_hub = hub()
    for _ in range(100):  # "hello" goes out before the consumer has joined its groups
        if the_hub.members.get(group):
            break
        await asyncio.sleep(0.02)
    (outbox,) = the_hub.members[group]
    await publish(group, bar(T0, 101.0, closed=False))
    assert (await next_json(comm))["c"] == 101.0
    layer = get_channel_layer()

    async def refused(group, channel):
        raise redis.exceptions.MaxConnectionsError("Too many connections")

    monkeypatch.setattr(layer, "group_discard", refused)
    await comm.disconnect()
    assert outbox.closed and group not in the_hub.members and the_hub.channel is None
    assert "could not leave user." in caplog.text and "could not leave bars." in caplog.text


async def test_markets_socket_forwards_tickers(symbol, trader, redis_url):
    comm = await connect("/ws/markets/", trader)
    await publish(wire.MARKETS_GROUP, wire.ticker_message("sim", "KRW-BTC", 101.5, T0))
    assert await next_json(comm) == {
        "type": "ticker", "venue": "sim", "symbol": "KRW-BTC", "price": 101.5, "ts": T0}
    # The stream's form: one message per venue and tick carries every symbol's ticker; the
    # page gets each as its own frame.
    await publish(wire.MARKETS_GROUP, wire.tickers_message(
        "sim", [("KRW-BTC", 102.0, T0 + 1_000), ("KRW-ETH", 3.5, T0 + 1_000)]))
    assert [await next_json(comm), await next_json(comm)] == [
        {"type": "ticker", "venue": "sim", "symbol": "KRW-BTC", "price": 102.0, "ts": T0 + 1_000},
        {"type": "ticker", "venue": "sim", "symbol": "KRW-ETH", "price": 3.5, "ts": T0 + 1_000}]
    await comm.disconnect()


async def test_ping_is_answered_with_pong(symbol, trader, redis_url):
    comm = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    await comm.send_to(text_data=json.dumps({"type": "ping"}))
    assert (await next_json(comm))["type"] == "pong"
    await comm.disconnect()


async def test_the_full_asgi_app_authenticates_by_session_cookie(symbol, trader, redis_url):
    from django.test import Client

    from tradesite.asgi import application

    client = Client()
    await database_sync_to_async(client.force_login)(trader)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)]
    comm = WebsocketCommunicator(application, "/ws/chart/sim/KRW-BTC/1m/", headers=headers)
    assert (await comm.connect(timeout=5))[0]
    assert json.loads(await comm.receive_from(timeout=5))["type"] == "hello"
    # Through the full stack the fan-out sends with the server's own send (RAW_SEND).
    await publish(wire.bars_group("sim", "KRW-BTC", "1m"), bar(T0, 104.0, closed=True))
    assert (await next_json(comm))["c"] == 104.0
    await comm.disconnect()
    anonymous = WebsocketCommunicator(application, "/ws/chart/sim/KRW-BTC/1m/",
                                      headers=headers[:2])
    await anonymous.connect(timeout=5)
    await anonymous.receive_from(timeout=5)
    assert (await anonymous.receive_output(timeout=5))["code"] == CLOSE_UNAUTHENTICATED


# -- the hub's reader ------------------------------------------------------------------------------


async def test_the_hub_reads_everything_waiting_in_one_batch_in_publish_order(redis_url):
    layer = get_channel_layer()
    reader = await LayerReader.open(layer)
    assert isinstance(reader, RedisLayerReader)
    assert "!" not in reader.channel  # its own sorted set, not the process-local one
    group = wire.bars_group("sim", "KRW-BTC", "1m")
    await layer.group_add(group, reader.channel)
    try:
        for i in range(20):
            await layer.group_send(group, bar(T0 + i * 60_000, 100.0 + i, closed=True))
        batch = await reader.receive_many()
        assert [m["bar"]["t"] for m in batch] == [T0 + i * 60_000 for i in range(20)]
        assert batch[0] == bar(T0, 100.0, closed=True)  # the layer's routing key is removed
        waiting = asyncio.ensure_future(reader.receive_many())  # nothing left: it blocks
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await layer.group_send(group, bar(T0 + 20 * 60_000, 120.0, closed=True))
        assert [m["bar"]["c"] for m in await asyncio.wait_for(waiting, 3)] == [120.0]
    finally:
        await layer.group_discard(group, reader.channel)


async def test_an_undecodable_entry_is_skipped_and_the_rest_of_the_batch_delivered(redis_url):
    layer = get_channel_layer()
    reader = await LayerReader.open(layer)
    group = wire.bars_group("sim", "KRW-BTC", "1m")
    await layer.group_add(group, reader.channel)
    try:
        await layer.group_send(group, bar(T0, 100.0, closed=True))
        await layer.connection(reader.index).zadd(reader.key, {b"\xc1 not msgpack": time.time()})
        await layer.group_send(group, bar(T0 + 60_000, 101.0, closed=True))
        assert [m["bar"]["c"] for m in await reader.receive_many()] == [100.0, 101.0]
    finally:
        await layer.group_discard(group, reader.channel)


async def test_a_layer_other_than_core_redis_is_read_with_its_own_receive():
    from channels.layers import InMemoryChannelLayer

    layer = InMemoryChannelLayer()
    reader = await LayerReader.open(layer)
    assert type(reader) is LayerReader
    await layer.group_add("markets", reader.channel)
    await layer.group_send("markets", wire.ticker_message("sim", "KRW-BTC", 1.0, T0))
    assert await reader.receive_many() == [wire.ticker_message("sim", "KRW-BTC", 1.0, T0)]


# -- the outbox on its own: a slow client gets the latest state, never a backlog --------------


async def test_slow_client_gets_every_closed_bar_in_order_and_only_the_latest_forming_bar():
    sent: list[dict] = []
    gate = asyncio.Event()

    async def slow_send(text: str) -> None:
        await gate.wait()
        sent.append(json.loads(text))

    box = Outbox(slow_send)
    box.put(json.dumps({"n": "first"}))
    await asyncio.sleep(0)  # the writer takes "first" and blocks on the slow socket
    for i in range(10):  # forming ticks of bar 1 pile up while the client is slow
        box.put_latest("g", 1, json.dumps({"t": 1, "c": i}))
    box.put_closed("g", 1, json.dumps({"t": 1, "closed": True}))  # drops the forming bar 1
    for i in range(5):
        box.put_latest("g", 2, json.dumps({"t": 2, "c": i}))
    box.put_latest("g", 1, json.dumps({"t": 1, "c": 99}))  # late and older: ignored
    box.put(json.dumps({"n": "event"}))
    gate.set()
    for _ in range(50):
        await asyncio.sleep(0)
    assert sent == [
        {"n": "first"},
        {"t": 1, "closed": True},
        {"n": "event"},
        {"t": 2, "c": 4},
    ]
    assert box.sent == 4
    assert box.superseded == 10 + 4 + 1
    box.close()


# -- the writer: a send that waits on the network holds up only its own client ----------------


async def settle(rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_a_client_whose_send_waits_does_not_hold_up_the_others_and_catches_up():
    """uvicorn's ``send`` waits while a client's socket buffer is full; the other clients of
    the process keep receiving, and the slow one then gets its closed bars in order and only
    the latest forming bar."""
    writer = Writer()
    fast_got, slow_got = [], []
    network = asyncio.Event()

    async def fast_send(text: str) -> None:
        fast_got.append(json.loads(text))

    async def slow_send(text: str) -> None:
        if not network.is_set():
            await network.wait()
        slow_got.append(json.loads(text))

    fast, slow = Outbox(fast_send, writer), Outbox(slow_send, writer)
    for i in range(3):
        for box in (slow, fast):
            box.put_latest("g", 1, json.dumps({"t": 1, "c": i}))
        await settle()
    for box in (slow, fast):
        box.put_closed("g", 1, json.dumps({"t": 1, "closed": True}))
        box.put_latest("g", 2, json.dumps({"t": 2, "c": 0}))
    await settle()
    assert fast_got == [{"t": 1, "c": 0}, {"t": 1, "c": 1}, {"t": 1, "c": 2},
                        {"t": 1, "closed": True}, {"t": 2, "c": 0}]
    assert slow_got == [] and slow.blocked is not None and slow.scheduled
    network.set()
    await settle()
    # c=0 was in flight when the send waited; c=1 and c=2 were replaced by the closed bar.
    assert slow_got == [{"t": 1, "c": 0}, {"t": 1, "closed": True}, {"t": 2, "c": 0}]
    assert (slow.sent, slow.superseded, slow.blocked, slow.scheduled) == (3, 2, None, False)
    assert fast.sent == 5 and writer._task is None


async def test_a_send_that_fails_after_waiting_drops_only_that_clients_queue():
    writer = Writer()
    fast_got = []
    network = asyncio.Event()

    async def gone(text: str) -> None:
        await network.wait()
        raise ConnectionResetError("the client went away")

    async def fast_send(text: str) -> None:
        fast_got.append(text)

    dead, fast = Outbox(gone, writer), Outbox(fast_send, writer)
    for box in (dead, fast):
        box.put("one")
    await settle()
    dead.put("two")
    fast.put("two")
    network.set()
    await settle()
    assert dead.closed and not dead.pending() and dead.sent == 0 and dead.blocked is None
    assert fast_got == ["one", "two"]


async def test_closing_an_outbox_cancels_its_waiting_send():
    cancelled = asyncio.Event()

    async def stuck(text: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    box = Outbox(stuck, Writer())
    box.put("frame")
    await settle()
    assert box.blocked is not None
    box.close()
    await asyncio.wait_for(cancelled.wait(), 1)
    await settle()
    assert box.blocked is None and box.sent == 0 and not box.scheduled


async def test_start_eagerly_runs_a_coroutine_inline_until_it_has_to_wait():
    ran = []

    async def at_once(x):
        ran.append(x)
        return x

    assert start_eagerly(at_once(1)) is None and ran == [1]  # no loop turn needed

    async def fails():
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        start_eagerly(fails())

    gate = asyncio.Event()

    async def waits():
        ran.append("before")
        await gate.wait()
        await asyncio.sleep(0)
        ran.append("after")
        return "done"

    task = start_eagerly(waits())
    assert ran[-1] == "before" and isinstance(task, asyncio.Task) and not task.done()
    gate.set()
    assert await asyncio.wait_for(task, 1) == "done" and ran[-1] == "after"

    async def waits_then_fails():
        await gate.wait()
        await asyncio.sleep(0)
        raise KeyError("late")

    gate.clear()
    task = start_eagerly(waits_then_fails())
    gate.set()
    with pytest.raises(KeyError):
        await asyncio.wait_for(task, 1)


async def session_socket(path: str, session_cookie: str) -> WebsocketCommunicator:
    """A socket through the real ASGI stack: origin check, session cookie, auth."""
    from tradesite.asgi import application

    comm = WebsocketCommunicator(application, path, headers=[
        (b"origin", b"http://localhost"), (b"cookie", f"sessionid={session_cookie}".encode()),
    ])
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert (await next_json(comm))["type"] == "hello"
    return comm


async def test_logging_out_closes_that_sessions_sockets_and_no_private_event_follows(
    symbol, trader, redis_url
):
    """The reproduction: after logging out, the open chart socket kept receiving the user's
    signals and orders. Now the logout closes every socket of that session (4401); another
    session of the same user (another browser) keeps its own."""
    from asgiref.sync import sync_to_async
    from django.test import Client

    leaving, staying = Client(), Client()
    await sync_to_async(leaving.force_login)(trader)
    await sync_to_async(staying.force_login)(trader)
    chart = await session_socket("/ws/chart/sim/KRW-BTC/1m/", leaving.cookies["sessionid"].value)
    markets = await session_socket("/ws/markets/", leaving.cookies["sessionid"].value)
    other = await session_socket("/ws/chart/sim/KRW-BTC/1m/", staying.cookies["sessionid"].value)

    response = await sync_to_async(leaving.post)("/logout/")
    assert response.status_code == 302
    order = wire.private_message(
        wire.ORDER_UPDATED, {"id": 1, "symbol": "sim:KRW-BTC", "status": "filled"})
    await publish(wire.user_group(trader.pk), order)

    for comm in (chart, markets):
        assert await comm.receive_output(timeout=5) == {
            "type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}
        assert await comm.receive_nothing(timeout=0.3)
    assert await next_json(other) == order
    for comm in (chart, markets, other):
        await comm.disconnect()


async def test_a_password_change_or_deactivation_closes_the_sockets_it_logs_out(
    symbol, trader, redis_url
):
    """The reproduction: after the password changed (in another browser, or by an admin), the
    old session's HTTP requests were refused but its open sockets kept receiving the user's
    orders. Now a changed user makes every socket of that user check its own session: the
    ones Django no longer accepts close (4401); a save that changes nothing of the kind (a
    name) keeps them, and so does a session logged in after the change, until the user is
    deactivated."""
    from asgiref.sync import sync_to_async
    from django.test import Client

    old = Client()
    await sync_to_async(old.force_login)(trader)
    cookie = old.cookies["sessionid"].value
    chart = await session_socket("/ws/chart/sim/KRW-BTC/1m/", cookie)
    markets = await session_socket("/ws/markets/", cookie)
    alerts = await session_socket("/ws/alerts/", cookie)
    order = wire.private_message(
        wire.ORDER_UPDATED, {"id": 1, "symbol": "sim:KRW-BTC", "status": "filled"})

    trader.first_name = "Alice"
    await sync_to_async(trader.save)()
    await publish(wire.user_group(trader.pk), order)
    assert await next_json(chart) == order
    assert await markets.receive_nothing(timeout=0.5) and await alerts.receive_nothing(0.1)

    trader.set_password("a-new-secret-4711")
    await sync_to_async(trader.save)()
    for comm in (chart, markets, alerts):
        assert await comm.receive_output(timeout=5) == {
            "type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}
    await publish(wire.user_group(trader.pk), order)
    assert await chart.receive_nothing(timeout=0.3)

    fresh = Client()
    await sync_to_async(fresh.force_login)(trader)
    again = await session_socket("/ws/chart/sim/KRW-BTC/1m/", fresh.cookies["sessionid"].value)
    trader.last_name = "Smith"
    await sync_to_async(trader.save)()
    await publish(wire.user_group(trader.pk), order)
    assert await next_json(again) == order
    trader.is_active = False
    await sync_to_async(trader.save)()
    assert await again.receive_output(timeout=5) == {
        "type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}
    for comm in (chart, markets, alerts, again):
        await comm.disconnect()


async def test_a_logout_without_redis_still_logs_out(trader, settings):
    from asgiref.sync import sync_to_async
    from django.test import Client

    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:1/0", "socket_timeout": 1}]},
    }}
    from channels.layers import channel_layers

    channel_layers.backends.pop("default", None)
    client = Client()
    await sync_to_async(client.force_login)(trader)
    try:
        response = await sync_to_async(client.post)("/logout/")
    finally:
        channel_layers.backends.pop("default", None)
    assert response.status_code == 302
    assert "_auth_user_id" not in await sync_to_async(lambda: client.session.keys())()
