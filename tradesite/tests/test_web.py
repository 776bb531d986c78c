"""The web process as the Procfile starts it (``python -m tradesite.web``): WebSockets go
through Channels' origin check and session auth, and frames are never compressed per client."""

from __future__ import annotations

import asyncio
import gc
import json

import aiohttp
import pytest
from django.test import Client

from tradesite.tests.test_browser_chart import web  # noqa: F401 - the fixture
from tradesite.web import freeze_startup_heap

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def first_frames(url: str, headers: dict, n: int) -> tuple[int, list]:
    """The deflate window the server agreed to (0: none) and the first ``n`` frames."""
    # compress=15 offers permessage-deflate, as every browser does.
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.ws_connect(url, compress=15) as ws:
        return ws.compress, [await ws.receive(timeout=10) for _ in range(n)]


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
