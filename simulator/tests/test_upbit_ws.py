"""Upbit WebSockets on 127.0.0.1: binary frames, the subscribe array, status, private streams."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from .helpers import body_query, same_shape, sample, upbit_auth


async def recv_json(ws, timeout=5.0):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    return raw, json.loads(raw)


async def test_trades_arrive_as_binary_frames_in_the_documented_format(sim):
    async with websockets.connect(sim.upbit_ws_url + "/websocket/v1") as ws:
        await ws.send(
            json.dumps(
                [{"ticket": "t-1"}, {"type": "trade", "codes": ["KRW-BTC"]}, {"format": "DEFAULT"}]
            )
        )
        raw, snapshot = await recv_json(ws)
        assert isinstance(raw, bytes)
        assert snapshot["stream_type"] == "SNAPSHOT"
        raw, frame = await recv_json(ws)
        assert isinstance(raw, bytes) and frame["stream_type"] == "REALTIME"
    assert same_shape(frame, sample("upbit_ws_trade.json")) == []
    assert frame["code"] == "KRW-BTC" and frame["ask_bid"] in ("ASK", "BID")
    assert isinstance(frame["sequential_id"], int)


async def test_ticker_and_candle_frames_match_the_samples(sim):
    async with websockets.connect(sim.upbit_ws_url + "/websocket/v1") as ws:
        await ws.send(
            json.dumps(
                [
                    {"ticket": "t-2"},
                    {"type": "ticker", "codes": ["KRW-ETH"]},
                    {"type": "candle.1m", "codes": ["KRW-ETH"]},
                ]
            )
        )
        frames = {}
        while len(frames) < 2:
            _, frame = await recv_json(ws)
            frames[frame["type"]] = frame
    candle = frames["candle.1m"]
    assert same_shape(candle, sample("upbit_ws_candle.json")[0]) == []
    assert "x" not in candle and "closed" not in candle  # Upbit has no closed flag
    assert frames["ticker"]["code"] == "KRW-ETH" and frames["ticker"]["change"] in (
        "RISE",
        "EVEN",
        "FALL",
    )


async def test_ping_text_gets_status_up_and_status_is_repeated(sim):
    sim.venues["upbit"].streams.status_interval_s = 0.3
    async with websockets.connect(sim.upbit_ws_url + "/websocket/v1") as ws:
        await ws.send("PING")
        _, reply = await recv_json(ws)
        assert reply == {"status": "UP"}
        _, again = await recv_json(ws, timeout=2)
        assert again == {"status": "UP"}


@pytest.mark.parametrize(
    "message,name",
    [
        ([{"type": "trade", "codes": ["KRW-BTC"]}], "NO_TICKET"),
        ([{"ticket": "x"}], "NO_TYPE"),
        ([{"ticket": "x"}, {"type": "trade"}], "NO_CODES"),
        ([{"ticket": "x"}, {"type": "trade", "codes": ["krw-btc"]}], "INVALID_PARAM"),
        ({"ticket": "x"}, "WRONG_FORMAT"),
    ],
)
async def test_bad_subscriptions_get_the_documented_error_frames(sim, message, name):
    async with websockets.connect(sim.upbit_ws_url + "/websocket/v1") as ws:
        await ws.send(json.dumps(message))
        _, frame = await recv_json(ws)
    assert frame["error"]["name"] == name


async def test_private_stream_needs_a_jwt_and_sends_my_order_and_my_asset(frozen_sim, http):
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(frozen_sim.upbit_ws_url + "/websocket/v1/private"):
            pass
    async with websockets.connect(
        frozen_sim.upbit_ws_url + "/websocket/v1/private", additional_headers=upbit_auth()
    ) as ws:
        await ws.send(
            json.dumps(
                [{"ticket": "p-1"}, {"type": "myOrder", "codes": ["KRW-BTC"]}, {"type": "myAsset"}]
            )
        )
        await asyncio.sleep(0.1)
        body = {"market": "KRW-BTC", "side": "bid", "price": "10000", "ord_type": "price"}
        async with http.post(
            frozen_sim.upbit_url + "/v1/orders", json=body, headers=upbit_auth(body_query(body))
        ) as resp:
            assert resp.status == 201
        frames = []
        while len(frames) < 5:
            raw, frame = await recv_json(ws)
            assert isinstance(raw, bytes)
            frames.append(frame)
    orders = [f for f in frames if f["type"] == "myOrder"]
    assets = [f for f in frames if f["type"] == "myAsset"]
    assert [o["state"] for o in orders] == ["wait", "trade", "cancel"]
    assert same_shape(orders[1], sample("upbit_ws_myorder.json")) == []
    assert assets and same_shape(assets[0], sample("upbit_ws_myasset.json")) == []
    assert isinstance(orders[1]["executed_volume"], float)  # numbers here, not strings


async def test_my_asset_with_codes_is_a_wrong_format(frozen_sim):
    async with websockets.connect(
        frozen_sim.upbit_ws_url + "/websocket/v1/private", additional_headers=upbit_auth()
    ) as ws:
        await ws.send(json.dumps([{"ticket": "p-2"}, {"type": "myAsset", "codes": ["KRW-BTC"]}]))
        _, frame = await recv_json(ws)
    assert frame["error"]["name"] == "WRONG_FORMAT"


async def test_a_silent_connection_is_closed_after_the_idle_timeout(sim):
    sim.venues["upbit"].streams.idle_timeout_s = 0.5
    async with websockets.connect(sim.upbit_ws_url + "/websocket/v1", ping_interval=None) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
