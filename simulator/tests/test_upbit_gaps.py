"""Upbit answers that client libraries depend on (issue 17's gaps): ``to`` before the first candle,
parameters sent in a body on GET/DELETE, the WebSocket ``{"status":"UP"}`` only after ``PING``."""

from __future__ import annotations

import asyncio
import json

import websockets

from .helpers import body_query, upbit_auth


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
