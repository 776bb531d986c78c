"""Upbit answers that client libraries depend on (issue 17's gaps): ``to`` before the first candle,
parameters sent in a body on GET/DELETE, the WebSocket ``{"status":"UP"}`` only after ``PING``."""

from __future__ import annotations

import asyncio
import json

import websockets

from simulator.server import Simulator

from .conftest import config
from .helpers import body_query, same_shape, sample_body, upbit_auth


async def get(http, sim, path, **params):
    async with http.get(sim.upbit_url + path, params=params) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_to_is_exclusive_and_before_the_first_candle_answers_nothing(frozen_sim, http):
    path = "/v1/candles/minutes/60"
    status, newest = await get(http, frozen_sim, path, market="KRW-BTC", count=200)
    assert status == 200 and len(newest) > 3
    first = newest[-1]  # newest first: the last row is the first candle
    status, rows = await get(
        http, frozen_sim, path, market="KRW-BTC", count=5, to=first["candle_date_time_utc"] + "Z"
    )
    assert (status, rows) == (200, [])
    status, rows = await get(http, frozen_sim, path, market="KRW-BTC", count=5,
                             to="2000-01-01T00:00:00Z")
    assert (status, rows) == (200, [])
    status, rows = await get(
        http, frozen_sim, path, market="KRW-BTC", count=2, to=newest[-3]["candle_date_time_utc"]
    )
    assert rows == newest[-2:]


async def place(http, sim):
    body = {"market": "KRW-BTC", "side": "bid", "volume": "0.0005", "price": "10000000",
            "ord_type": "limit"}
    async with http.post(
        sim.upbit_url + "/v1/orders", json=body, headers=upbit_auth(body_query(body))
    ) as resp:
        assert resp.status == 201
        return await resp.json()


async def test_get_order_with_a_form_body_and_delete_with_a_json_body_pass_the_signature(
    frozen_sim, http
):
    created = await place(http, frozen_sim)
    form = {"uuid": created["uuid"]}
    async with http.get(
        frozen_sim.upbit_url + "/v1/order", data=form, headers=upbit_auth(body_query(form))
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["uuid"] == created["uuid"]
    async with http.delete(
        frozen_sim.upbit_url + "/v1/order", json=form, headers=upbit_auth(body_query(form))
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["uuid"] == created["uuid"]
    # A hash over other parameters than those sent still fails, wherever they were sent.
    async with http.get(
        frozen_sim.upbit_url + "/v1/order", data=form, headers=upbit_auth("uuid=other")
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["name"] == "invalid_query_payload"


async def test_websocket_status_up_is_sent_only_after_a_client_ping(sim):
    streams = sim.venues["upbit"].streams
    streams.status_interval_s = 0.05
    loop = asyncio.get_running_loop()
    async with websockets.connect(sim.upbit_ws_url + "/websocket/v1") as ws:
        await ws.send(json.dumps([{"ticket": "g8"}, {"type": "ticker", "codes": ["KRW-BTC"]}]))
        seen, until = 0, loop.time() + 20 * streams.status_interval_s
        while loop.time() < until or seen == 0:  # twenty status periods and at least one frame
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.01, until - loop.time()))
            except TimeoutError:
                continue
            assert isinstance(raw, bytes), raw  # a status frame would be text
            seen += 1
        await ws.send("PING")
        while isinstance(raw := await asyncio.wait_for(ws.recv(), 5), bytes):
            pass
        assert json.loads(raw) == {"status": "UP"}


async def test_orderbook_prices_are_integers_and_instrument_levels_strings(frozen_sim, http):
    recorded = sample_body("upbit_orderbook.json")[0]["orderbook_units"][0]
    assert isinstance(recorded["bid_price"], int)  # the venue's KRW-BTC prices are integers
    status, books = await get(http, frozen_sim, "/v1/orderbook", markets="KRW-BTC,KRW-XRP")
    assert status == 200
    for book in books:
        for unit in book["orderbook_units"]:
            assert type(unit["bid_price"]) is int and type(unit["ask_price"]) is int
    recorded = sample_body("upbit_orderbook_instruments.json")[0]
    status, rows = await get(http, frozen_sim, "/v1/orderbook/instruments", markets="KRW-BTC")
    assert status == 200 and same_shape(rows[0], recorded) == []
    assert all(isinstance(level, str) for level in rows[0]["supported_levels"])


async def test_order_uuids_do_not_repeat_across_restarts_with_the_same_seed(http):
    uuids = []
    for _ in range(2):
        async with Simulator(config(tick_s=3600.0, speed=0.0)) as sim:
            uuids.append((await place(http, sim))["uuid"])
    assert uuids[0] != uuids[1]


async def test_an_unknown_route_answers_the_venue_json_error(frozen_sim, http):
    async with http.get(frozen_sim.upbit_url + "/v1/nope") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["name"] == 404
    async with http.put(frozen_sim.upbit_url + "/v1/accounts") as resp:
        assert resp.status == 405 and (await resp.json())["error"]["name"] == 405
