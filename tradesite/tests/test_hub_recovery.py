"""The chart hub survives a Redis restart (issue 21, item 1): a private Redis server is killed
(SIGKILL) and restarted on the same port under the channel layer; sockets opened before and
after it get every closed bar published after recovery, exactly once and in order, and a
``resync`` frame tells the pages that were open to refetch what they missed. Consumers that end
in any way leave the hub."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import pytest
import redis
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from markets import wire
from tradesite import health
from tradesite.consumers import CLOSE_UNAUTHENTICATED, ChartConsumer, Hub, hub
from tradesite.devservices import free_port, redis_command, wait_for_port
from tradesite.routing import websocket_urlpatterns
from tradesite.tests.test_consumers import session_socket

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
PATH = "/ws/chart/sim/KRW-BTC/1m/"
GROUP = wire.bars_group("sim", "KRW-BTC", "1m")
#: Bounds of the waits (not assertions on time): recovery retries at most every Hub.CHECK_S.
RECOVERY_S = 30.0


class PrivateRedis:
    """A redis-server of this test's own, killed and restarted on the same port."""

    def __init__(self, directory) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(redis_command(self.directory, self.port),
                                     stdout=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path, settings):
    """The channel layer on a private Redis (the shared one must not be killed)."""
    server = PrivateRedis(tmp_path)
    server.start()
    layer = settings.CHANNEL_LAYERS["default"]
    host = {**layer["CONFIG"]["hosts"][0], "address": server.url}
    settings.CHANNEL_LAYERS = {"default": {**layer, "CONFIG": {**layer["CONFIG"],
                                                                "hosts": [host]}}}
    yield server
    server.stop()


@pytest.fixture
def trader(make_trader):
    return make_trader("alice")


@pytest.fixture
def other(make_trader):
    return make_trader("bob")


def bar(t: int) -> dict:
    return wire.bar_message("sim", "KRW-BTC", "1m",
                            {"t": t, "o": 100.0, "h": 101.0, "l": 99.0, "c": 100.5, "v": 1.0},
                            True)


async def connect(user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), PATH)
    comm.scope["user"] = user
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert json.loads(await comm.receive_from(timeout=5))["type"] == "hello"
    return comm


async def next_of(comm, kind: str, timeout: float = 5.0, skip: tuple[str, ...] = ()) -> dict:
    """The next frame, which must be of ``kind`` (frames of the types in ``skip`` are passed)."""
    deadline = time.monotonic() + timeout
    while True:
        left = max(deadline - time.monotonic(), 0.01)
        message = json.loads(await comm.receive_from(timeout=left))
        if message["type"] in skip:
            continue
        assert message["type"] == kind, message
        return message


async def wait_until(condition, timeout: float = RECOVERY_S, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(0.05)


async def publish(group: str, message: dict) -> None:
    await get_channel_layer().group_send(group, message)


async def test_sockets_opened_before_and_after_a_redis_restart_get_every_closed_bar(
        symbol, trader, other, private_redis):
    before = await connect(trader)
    await publish(GROUP, bar(T0))
    assert (await next_of(before, "bar"))["t"] == T0
    chart_hub = hub()
    assert chart_hub.state == "subscribed" and health.check_chart_hub()["ok"]

    await asyncio.to_thread(private_redis.kill)
    await wait_until(lambda: chart_hub.state == "recovering", what="the hub notices Redis died")
    down = health.check_chart_hub()
    assert not down["ok"] and "chart hub not subscribed" in down["error"]

    await asyncio.to_thread(private_redis.start)  # same port, empty: every membership is gone
    after = await connect(other)
    # The socket that stayed open is told to refetch what it missed, once, before any bar.
    await next_of(before, "resync", timeout=RECOVERY_S)
    await wait_until(lambda: chart_hub.state == "subscribed", what="the hub rejoins")
    assert health.check_chart_hub()["ok"] and chart_hub.recoveries == 1

    published = [T0 + i * 60_000 for i in range(1, 21)]
    for t in published:
        await publish(GROUP, bar(t))
    for comm in (before, after):
        # ``after`` may have opened before the rejoin, then it gets a resync too.
        got = [(await next_of(comm, "bar", skip=("resync",) if comm is after else ()))["t"]
               for _ in published]
        assert got == published
    for comm in (before, after):
        assert await comm.receive_nothing(timeout=0.3)

    # The user group of the socket opened before the restart was rejoined too.
    order = wire.private_message(wire.ORDER_UPDATED,
                                 {"id": 1, "symbol": "sim:KRW-BTC", "status": "filled"})
    await publish(wire.user_group(trader.pk), order)
    assert await next_of(before, wire.ORDER_UPDATED) == order
    await before.disconnect()
    await after.disconnect()
    assert chart_hub.state == "idle" and not chart_hub.members and not chart_hub.own


async def test_memberships_that_redis_forgot_without_a_dropped_connection_are_rejoined(
        symbol, trader, private_redis, monkeypatch):
    """A restart the reader does not notice (or a flush): the periodic check finds it."""
    monkeypatch.setattr(Hub, "CHECK_S", 0.2)
    comm = await connect(trader)
    await asyncio.to_thread(lambda: redis.Redis.from_url(private_redis.url).flushall())
    await next_of(comm, "resync", timeout=RECOVERY_S)
    await publish(GROUP, bar(T0))
    assert (await next_of(comm, "bar"))["t"] == T0
    signal_message = wire.private_message(
        wire.SIGNAL_CREATED, {"id": 3, "symbol": "sim:KRW-BTC", "action": "enter_long",
                              "bar_time": T0, "price": "100", "reason": {}})
    await publish(wire.user_group(trader.pk), signal_message)
    assert await next_of(comm, wire.SIGNAL_CREATED) == signal_message
    await comm.disconnect()


async def test_a_logout_after_a_redis_restart_still_closes_that_sessions_socket(
        symbol, trader, private_redis):
    """The ``session.<hash>`` membership is rejoined too."""
    from asgiref.sync import sync_to_async
    from django.test import Client

    browser = Client()
    await sync_to_async(browser.force_login)(trader)
    comm = await session_socket(PATH, browser.cookies["sessionid"].value)
    await asyncio.to_thread(private_redis.kill)
    await asyncio.to_thread(private_redis.start)
    await next_of(comm, "resync", timeout=RECOVERY_S)
    assert (await sync_to_async(browser.post)("/logout/")).status_code == 302
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close",
                                                    "code": CLOSE_UNAUTHENTICATED}
    await comm.disconnect()


async def test_a_consumer_that_dies_of_an_exception_leaves_the_hub(
        symbol, trader, other, private_redis, monkeypatch):
    stays = await connect(other)
    dies = await connect(trader)
    chart_hub = hub()
    assert len(chart_hub.members[GROUP]) == 2 and len(chart_hub.own) == 2

    async def crash(self, text_data=None, bytes_data=None):
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(ChartConsumer, "receive", crash)
    await dies.send_to(text_data='{"type": "ping"}')
    with pytest.raises(RuntimeError, match="a bug in a handler"):
        await dies.receive_output(timeout=5)
    assert len(chart_hub.members[GROUP]) == 1 and len(chart_hub.own) == 1
    await publish(GROUP, bar(T0))
    assert (await next_of(stays, "bar"))["t"] == T0
    await stays.disconnect()
    assert not chart_hub.members
