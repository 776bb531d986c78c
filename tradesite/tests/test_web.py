"""The web process as the Procfile starts it (``python -m tradesite.web``): WebSockets go
through Channels' origin check and session auth, and frames are never compressed per client;
and the chart writer on uvicorn's real backpressure: a client that stops reading holds up no
one else."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys

import aiohttp
import pytest
from django.test import Client

from tradesite.consumers import Outbox, frame
from tradesite.tests.asgi_server import uvicorn_serving
from tradesite.tests.test_browser_chart import web, web_server  # noqa: F401 - the fixtures
from tradesite.web import freeze_startup_heap, options, trusted_proxies


async def first_frames(url: str, headers: dict, n: int) -> tuple[int, list]:
    """The deflate window the server agreed to (0: none) and the first ``n`` frames."""
    # compress=15 offers permessage-deflate, as every browser does.
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.ws_connect(url, compress=15) as ws:
        return ws.compress, [await ws.receive(timeout=10) for _ in range(n)]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_browser_offering_deflate_gets_plain_frames_and_session_auth_works(
    web, symbol, make_trader  # noqa: F811 - the imported fixture
):
    user = make_trader("dora")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    origin = {"Origin": web.url}
    url = web.url.replace("http", "ws") + "/ws/chart/sim/KRW-BTC/1m/"

    deflate, (hello,) = asyncio.run(first_frames(
        url, {**origin, "Cookie": f"sessionid={client.cookies['sessionid'].value}"}, 1))
    assert deflate == 0  # no per-message deflate negotiated: one encoding for every client
    assert json.loads(hello.data)["type"] == "hello"

    _, (error, closed) = asyncio.run(first_frames(url, origin, 2))  # no session
    assert json.loads(error.data)["code"] == 4401
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4401

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # a foreign page's socket
        asyncio.run(first_frames(url, {"Origin": "http://evil.example"}, 1))
    assert refused.value.status == 403


def test_freezing_the_startup_heap_leaves_it_out_of_later_collections():
    try:
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        assert len(gc.get_objects()) < frozen  # a full collection now walks far fewer objects
    finally:
        gc.unfreeze()


async def test_a_client_that_stops_reading_holds_up_no_one_on_uvicorn():
    """Frames of 256 kB overflow the stalled client's socket buffers, so uvicorn's ``send``
    for it waits (its transport paused writing); the other client still gets every frame at
    once, and the stalled one gets all of its own, in order, when it reads again."""
    outboxes: dict[str, Outbox] = {}

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        outboxes[scope["path"]] = box = Outbox(send)
        while (await receive())["type"] != "websocket.disconnect":
            pass
        box.close()

    async with uvicorn_serving(app) as port, aiohttp.ClientSession() as http:
        stalled = await http.ws_connect(f"ws://127.0.0.1:{port}/stalled", max_msg_size=0)
        reader = await http.ws_connect(f"ws://127.0.0.1:{port}/reader", max_msg_size=0)
        while len(outboxes) < 2:
            await asyncio.sleep(0.01)
        n, big = 40, "x" * 256_000
        for i in range(n):
            for box in outboxes.values():
                box.put(frame(f"{i}:{big}"))
        got = [(await reader.receive(timeout=10)).data.split(":")[0] for _ in range(n)]
        assert got == [str(i) for i in range(n)]
        assert outboxes["/stalled"].blocked is not None  # its send waits on the network
        assert outboxes["/stalled"].sent < n
        got = [(await stalled.receive(timeout=10)).data.split(":")[0] for _ in range(n)]
        assert got == [str(i) for i in range(n)]
        assert outboxes["/stalled"].sent == n and outboxes["/stalled"].blocked is None
        await stalled.close()
        await reader.close()


@pytest.mark.parametrize("trusted, client_seen, scheme_seen", [
    (["127.0.0.1"], "198.51.100.9", "https"),   # the proxy: its forwarded headers count
    (["10.1.2.3"], "127.0.0.1", "http"),        # anyone else: ignored, not believed
])
async def test_forwarded_headers_count_only_from_the_trusted_proxy(trusted, client_seen,
                                                                   scheme_seen):
    async def app(scope, receive, send):
        body = f"{scope['client'][0]} {scope['scheme']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async with uvicorn_serving(app, proxy_headers=True, trusted=trusted) as port, \
            aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{port}/",
                headers={"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https"},
            ) as response:
        assert (await response.text()).split() == [client_seen, scheme_seen]


def test_trusted_proxy_ips_are_checked(monkeypatch):
    assert trusted_proxies(" 10.0.0.5, 172.16.0.0/12 ,::1") == ["10.0.0.5", "172.16.0.0/12",
                                                                "::1"]
    for bad in ("*", "", "proxy.local", "10.0.0.300"):
        with pytest.raises(ValueError, match="TRUSTED_PROXY_IPS"):
            trusted_proxies(bad)
    monkeypatch.setenv("TRUSTED_PROXY_IPS", "10.0.0.5")
    assert options("0.0.0.0", 8000, proxy_headers=True)["forwarded_allow_ips"] == ["10.0.0.5"]
    monkeypatch.delenv("TRUSTED_PROXY_IPS")
    assert options("0.0.0.0", 8000, proxy_headers=True)["forwarded_allow_ips"] == [
        "127.0.0.1", "::1"]


def test_a_bad_trusted_proxy_list_stops_the_web_process_naming_it():
    result = subprocess.run(
        [sys.executable, "-m", "tradesite.web", "--proxy-headers", "--port", "1"],
        env={**os.environ, "TRUSTED_PROXY_IPS": "*"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "TRUSTED_PROXY_IPS" in result.stderr


def test_compose_publishes_the_web_port_on_loopback_and_names_the_trusted_proxies():
    import yaml

    from tradesite.tests.test_settings import ROOT

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["web"]
    assert service["ports"] == ["${WEB_BIND:-127.0.0.1}:${WEB_PORT:-8000}:8000"]
    assert "--proxy-headers" in service["command"]
    trusted = service["environment"]["TRUSTED_PROXY_IPS"]
    assert trusted.startswith("${TRUSTED_PROXY_IPS:-")
    assert trusted_proxies(trusted.removeprefix("${TRUSTED_PROXY_IPS:-").removesuffix("}"))
