"""Hostile WebSocket traffic: a path no route matches is refused at the handshake (no 500, no
traceback), and a client frame that is too large, too deeply nested or not JSON is answered
with a ``rejected`` frame while the socket keeps working."""

from __future__ import annotations

import json
import logging

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from markets import wire
from tradesite.routing import websocket_urlpatterns
from tradesite.tests.test_consumers import T0, bar, connect, next_json, publish, trader  # noqa: F401

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("path", [
    "/ws/chart/sim/KRW-BTC/user.3/", "/ws/nope/", "/ws/chart/sim/KRW-BTC/1m/extra/",
    "/ws/markets", "/", "/ws/chart/" + "a" * 5000 + "/",
], ids=["user-group-as-timeframe", "nope", "extra", "no-slash", "root", "long"])
async def test_a_path_without_a_route_is_refused_at_the_handshake(trader, redis_url, path,  # noqa: F811
                                                                  caplog):
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    comm.scope["user"] = trader
    with caplog.at_level(logging.WARNING):
        connected, code = await comm.connect(timeout=5)
    assert not connected and code == 4404
    assert not [r for r in caplog.records if r.exc_info]


async def test_the_full_asgi_app_refuses_an_unknown_path_too(redis_url, db):
    from tradesite.asgi import application

    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    comm = WebsocketCommunicator(application, "/ws/chart/sim/KRW-BTC/user.3/", headers=headers)
    connected, code = await comm.connect(timeout=5)
    assert not connected and code == 4404


async def _still_live(comm) -> None:
    await comm.send_to(text_data=json.dumps({"type": "ping"}))
    assert (await next_json(comm))["type"] == "pong"


@pytest.mark.parametrize("frame, reason", [
    ("[" * 50_000, "at most 1,024 are accepted"),
    ("[" * 500, "nests arrays or objects more than"),
    ('{"type": "ping", "x": ' + "[" * 10 + "]" * 10 + "}", "nests arrays or objects more than"),
    ("not json", "not valid JSON"),
    ("x" * 100_000, "at most 1,024 are accepted"),
], ids=["deep-and-large", "deep", "deep-inside-a-ping", "not-json", "large"])
async def test_a_hostile_frame_is_rejected_and_the_socket_stays_live(symbol, trader, redis_url,  # noqa: F811
                                                                     frame, reason):
    comm = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    await comm.send_to(text_data=frame)
    answer = await next_json(comm)
    assert answer["type"] == "rejected" and reason in answer["message"], answer
    await _still_live(comm)
    await publish(wire.bars_group("sim", "KRW-BTC", "1m"), bar(T0, 104.0, closed=True))
    assert (await next_json(comm))["c"] == 104.0
    await comm.disconnect()


async def test_a_binary_frame_on_the_markets_socket_is_rejected(trader, redis_url):  # noqa: F811
    comm = await connect("/ws/markets/", trader)
    await comm.send_to(bytes_data=b"\x00\xff" * 10)
    assert (await next_json(comm))["type"] == "rejected"
    await _still_live(comm)
    await comm.disconnect()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frames=st.lists(st.one_of(
    st.text(min_size=1, max_size=200),
    st.integers(1, 20_000).map(lambda n: "{\"a\":" * n),
    st.recursive(st.none() | st.integers() | st.text(max_size=4),
                 lambda inner: st.lists(inner, max_size=3), max_leaves=20).map(json.dumps),
), min_size=1, max_size=5))
async def test_hostile_frames_never_end_the_socket(symbol, trader, redis_url, frames):  # noqa: F811
    comm = await connect("/ws/chart/sim/KRW-BTC/1m/", trader)
    for frame in frames:
        await comm.send_to(text_data=frame)
    await comm.send_to(text_data='{"type": "ping"}')
    while (message := await next_json(comm))["type"] != "pong":
        assert message["type"] == "rejected"
    await comm.disconnect()


async def test_the_web_server_refuses_a_huge_frame_before_buffering_it():
    """uvicorn as ``tradesite.web`` configures it: a client message above 64 KB ends that
    socket with 1009 (message too big); a frame under it reaches the application."""
    import asyncio

    import aiohttp

    from tradesite.tests.asgi_server import uvicorn_serving
    from tradesite.web import WS_MAX_FRAME

    received = []

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            received.append(len(message.get("text") or ""))

    async with uvicorn_serving(app) as port:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"ws://127.0.0.1:{port}/ws/x/")
            await ws.send_str("y" * 1000)
            while not received:
                await asyncio.sleep(0.01)
            await ws.send_str("x" * (WS_MAX_FRAME + 1))
            closed = await ws.receive(timeout=10)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1009
        assert received == [1000]
