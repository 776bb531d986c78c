"""Fault knobs: rate limits with the venues' headers, 5xx, latency, dropped WebSockets and an
order response held past the client's timeout while the order still executes."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import requests
import websockets

from simulator.faults import Budget
from simulator.server import start_in_thread

from .conftest import config
from .helpers import BINANCE_SECRET, binance_query, body_query, upbit_auth

HEAD = {"X-MBX-APIKEY": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"}


async def test_upbit_over_budget_is_a_plain_text_429_with_remaining_req(frozen_sim, http):
    frozen_sim.set_faults(rate_limit_budget=3)
    seen = []
    for _ in range(5):
        async with http.get(
            frozen_sim.upbit_url + "/v1/ticker", params={"markets": "KRW-BTC"}
        ) as resp:
            seen.append((resp.status, resp.headers["Remaining-Req"], await resp.text()))
    assert [s for s, _, _ in seen[:3]] == [200, 200, 200]
    assert seen[2][1] == "group=ticker; min=600; sec=0"
    status, header, text = seen[3]
    assert status == 429 and text == "Too many API requests." and header.endswith("sec=0")


async def test_upbit_real_order_budget_is_eight_per_second(frozen_sim, http):
    statuses = []
    for i in range(20):
        body = {
            "market": "KRW-BTC",
            "side": "bid",
            "volume": "0.001",
            "price": "10000000",
            "ord_type": "limit",
            "identifier": f"burst-{i}",
        }
        async with http.post(
            frozen_sim.upbit_url + "/v1/orders", json=body, headers=upbit_auth(body_query(body))
        ) as resp:
            statuses.append(resp.status)
    # 20 quick calls span at most two one-second windows: 8 to 16 pass, the rest are 429
    assert 8 <= statuses.count(201) <= 16 and statuses.count(429) == 20 - statuses.count(201)


def test_budget_windows_reset_every_window():
    now = [100.2]
    budget = Budget({"order": (8, 1.0)}, clock=lambda: now[0])
    assert [budget.spend("order", 1)[0] for _ in range(9)] == [True] * 8 + [False]
    now[0] = 101.0
    assert budget.spend("order", 1)[:3] == (True, 1, 8)


async def test_binance_over_budget_is_429_with_retry_after_and_used_weight(frozen_sim, http):
    frozen_sim.set_faults(rate_limit_budget=5)
    results = []
    for _ in range(4):
        async with http.get(
            frozen_sim.binance_url + "/api/v3/klines",
            params={"symbol": "BTCUSDT", "interval": "1m"},
        ) as resp:
            results.append((resp.status, dict(resp.headers), await resp.json()))
    assert [r[0] for r in results[:2]] == [200, 200]
    assert results[1][1]["X-MBX-USED-WEIGHT-1M"] == "4"
    status, headers, body = results[2]
    assert status == 429 and body["code"] == -1003
    assert 1 <= int(headers["Retry-After"]) <= 60 and "X-MBX-USED-WEIGHT-1M" in headers
    frozen_sim.set_faults(rate_limit_budget=None)
    async with http.get(frozen_sim.binance_url + "/api/v3/time") as resp:
        assert resp.status == 200


async def test_error_ratio_answers_5xx_before_anything_executes(frozen_sim, http):
    frozen_sim.set_faults(error_ratio=1.0)
    query = binance_query(
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"},
        BINANCE_SECRET,
        timestamp_ms=frozen_sim.clock_ms(),
    )
    async with http.post(f"{frozen_sim.binance_url}/api/v3/order?{query}", headers=HEAD) as resp:
        assert resp.status == 500 and (await resp.json())["code"] == -1001
    async with http.get(frozen_sim.upbit_url + "/v1/ticker", params={"markets": "KRW-BTC"}) as r:
        assert r.status == 500
    frozen_sim.set_faults(error_ratio=0.0)
    account = frozen_sim.account("binance", HEAD["X-MBX-APIKEY"])
    assert account.orders == {}


async def test_latency_is_added_to_every_rest_response(frozen_sim, http):
    frozen_sim.set_faults(latency_ms=300)
    started = time.monotonic()
    async with http.get(frozen_sim.futures_url + "/fapi/v1/time") as resp:
        assert resp.status == 200
    assert time.monotonic() - started >= 0.3


async def test_delayed_order_response_times_out_but_the_order_exists(frozen_sim, http):
    frozen_sim.set_faults(order_delay_s=2.0)
    body = {
        "market": "KRW-BTC",
        "side": "bid",
        "volume": "0.001",
        "price": "10000000",
        "ord_type": "limit",
        "identifier": "slow-1",
    }
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            frozen_sim.upbit_url + "/v1/orders",
            json=body,
            headers=upbit_auth(body_query(body)),
            timeout=aiohttp.ClientTimeout(total=0.5),
        ):
            pass
    async with http.get(
        frozen_sim.upbit_url + "/v1/order?identifier=slow-1",
        headers=upbit_auth("identifier=slow-1"),
    ) as resp:
        order = await resp.json()
    assert resp.status == 200 and order["state"] == "wait" and order["identifier"] == "slow-1"


async def test_websockets_are_dropped_on_a_timer_and_on_demand(sim):
    sim.set_faults(ws_drop_every_s=0.5)
    started = time.monotonic()
    async with websockets.connect(sim.binance_ws_url + "/ws/btcusdt@trade") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert 0.4 <= time.monotonic() - started < 4 and closed.value.rcvd.code == 1001
    sim.set_faults(ws_drop_every_s=None)
    async with websockets.connect(sim.upbit_ws_url + "/websocket/v1") as ws:
        await ws.send(json.dumps([{"ticket": "d"}, {"type": "trade", "codes": ["KRW-BTC"]}]))
        await asyncio.wait_for(ws.recv(), 5)
        assert await sim.drop_websockets() >= 1
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)


def test_a_thread_started_simulator_serves_sync_clients_and_takes_runtime_faults():
    handle = start_in_thread(config())
    try:
        response = requests.get(handle.binance_url + "/api/v3/time", timeout=5)
        assert response.status_code == 200
        assert abs(response.json()["serverTime"] - handle.clock_ms()) < 5_000
        handle.set_faults(error_ratio=1.0)
        assert requests.get(handle.upbit_url + "/v1/market/all", timeout=5).status_code == 500
        handle.set_faults(error_ratio=0.0)
        assert requests.get(handle.upbit_url + "/v1/market/all", timeout=5).status_code == 200
        with pytest.raises(ValueError, match="unknown fault knob"):
            handle.set_faults(nonsense=1)
    finally:
        handle.stop()
