"""Binance ticker and book market streams over a socket (issue 17 gaps 3 and 4): a connection
opened on ``/ws/0`` then SUBSCRIBEd, spot and futures ``@ticker``/``@miniTicker``/
``@bookTicker``/``@depth``, and futures' ``/public`` routes for the book streams."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from .helpers import same_shape, sample


async def frames_until(ws, wanted: set[str], key=lambda m: m.get("stream"), timeout=10.0):
    """Read JSON messages until one of each ``wanted`` key was seen; return them by key."""
    got: dict[str, dict] = {}
    async with asyncio.timeout(timeout):
        while not wanted <= set(got):
            message = json.loads((await ws.receive()).data)
            if key(message) in wanted:
                got.setdefault(key(message), message)
    return got


SPOT = ["btcusdt@ticker", "btcusdt@miniTicker", "btcusdt@bookTicker", "btcusdt@depth5",
        "btcusdt@depth@100ms"]


async def test_spot_ws_0_then_subscribe_serves_ticker_and_book_streams(sim, http):
    async with http.ws_connect(f"{sim.binance_ws_url}/ws/0") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": SPOT, "id": 7})
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply == {"result": None, "id": 7}

        def kind(m):
            if "e" in m:
                return m["e"]
            return "partial" if "lastUpdateId" in m else "bookTicker" if "u" in m else None

        got = await frames_until(
            ws, {"24hrTicker", "24hrMiniTicker", "bookTicker", "partial", "depthUpdate"}, kind
        )
    assert same_shape(got["24hrTicker"], sample("binance_spot_ticker_ws.json")) == []
    assert same_shape(got["24hrMiniTicker"], sample("binance_spot_mini_ticker_ws.json")) == []
    assert set(got["bookTicker"]) == {"u", "s", "b", "B", "a", "A"}
    assert float(got["bookTicker"]["b"]) < float(got["bookTicker"]["a"])
    assert set(got["partial"]) == {"lastUpdateId", "bids", "asks"}
    assert len(got["partial"]["bids"]) == 5
    assert set(got["depthUpdate"]) == {"e", "E", "s", "U", "u", "b", "a"}


async def test_futures_book_streams_are_on_public_and_the_rest_on_market(sim, http):
    base = sim.futures_ws_url
    names = ["btcusdt@bookTicker", "btcusdt@depth10@100ms", "btcusdt@depth"]
    async with http.ws_connect(f"{base}/public/stream?streams={'/'.join(names)}") as ws:
        got = await frames_until(ws, set(names))
    book = got["btcusdt@bookTicker"]["data"]
    assert set(book) == {"e", "u", "E", "T", "s", "b", "B", "a", "A"} and book["e"] == "bookTicker"
    for name in names[1:]:
        data = got[name]["data"]
        assert set(data) == {"e", "E", "T", "s", "U", "u", "pu", "b", "a"}
    assert len(got["btcusdt@depth10@100ms"]["data"]["b"]) == 10
    async with http.ws_connect(f"{base}/market/ws/0") as ws:
        await ws.send_json(
            {"method": "SUBSCRIBE", "params": ["ethusdt@ticker", "ethusdt@miniTicker"], "id": 1}
        )
        assert json.loads((await ws.receive(timeout=5)).data) == {"result": None, "id": 1}
        got = await frames_until(ws, {"24hrTicker", "24hrMiniTicker"}, key=lambda m: m.get("e"))
        ticker = got["24hrTicker"]
        assert not {"x", "b", "B", "a", "A"} & set(ticker) and ticker["s"] == "ETHUSDT"
        # A book stream belongs to /public: refused on /market.
        await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 2})
        reply = await frames_until(ws, {2}, key=lambda m: m.get("id"))
        assert reply[2]["code"] == 2
    async with http.ws_connect(f"{base}/public/ws/btcusdt@bookTicker") as ws:
        message = json.loads((await ws.receive(timeout=5)).data)
        assert message["e"] == "bookTicker"


@pytest.mark.parametrize("path", ["/public/ws/btcusdt@kline_1m", "/market/ws/btcusdt@depth5"])
async def test_futures_streams_on_the_wrong_route_are_refused(sim, http, path):
    with pytest.raises(aiohttp.WSServerHandshakeError):
        async with http.ws_connect(sim.futures_ws_url + path):
            pass
