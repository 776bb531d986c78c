"""Binance USDⓈ-M futures protocol: leverage, margin type, positions, reduce-only, user stream."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from .helpers import FUTURES_KEY, FUTURES_SECRET, binance_query, same_shape, sample


async def signed(http, sim, method, path, **params):
    query = binance_query(params, FUTURES_SECRET, timestamp_ms=sim.clock_ms())
    async with http.request(
        method, f"{sim.futures_url}{path}?{query}", headers={"X-MBX-APIKEY": FUTURES_KEY}
    ) as resp:
        return resp.status, await resp.json()


async def position(http, sim, symbol="BTCUSDT"):
    status, rows = await signed(http, sim, "GET", "/fapi/v2/positionRisk", symbol=symbol)
    assert status == 200
    return rows[0]


async def test_leverage_and_margin_type_follow_the_documented_responses(frozen_sim, http):
    status, body = await signed(
        http, frozen_sim, "POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=21
    )
    assert (
        status == 200 and same_shape(body, sample("binance_futures_leverage_response.json")) == []
    )
    assert body["leverage"] == 21
    status, body = await signed(
        http, frozen_sim, "POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=126
    )
    assert (status, body["code"]) == (400, -4028)
    status, body = await signed(
        http, frozen_sim, "POST", "/fapi/v1/marginType", symbol="BTCUSDT", marginType="CROSSED"
    )
    assert body == {"code": -4046, "msg": "No need to change margin type."}
    status, body = await signed(
        http, frozen_sim, "POST", "/fapi/v1/marginType", symbol="BTCUSDT", marginType="ISOLATED"
    )
    assert (status, body) == (200, {"code": 200, "msg": "success"})
    row = await position(http, frozen_sim)
    assert same_shape(row, sample("binance_futures_position_risk_v2.json")["one_way"][0]) == []
    assert row["leverage"] == "21" and row["marginType"] == "isolated"


async def test_market_order_opens_a_leveraged_position_and_reduce_only_closes_it(frozen_sim, http):
    await signed(http, frozen_sim, "POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=10)
    status, order = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="BUY",
        type="MARKET",
        quantity="0.010",
        newClientOrderId="open-1",
        newOrderRespType="RESULT",
    )
    assert status == 200 and order["status"] == "FILLED"
    assert same_shape(order, sample("binance_futures_create_order_response.json")) == []
    row = await position(http, frozen_sim)
    assert row["positionAmt"] == "0.010" and row["entryPrice"] == order["avgPrice"]
    _, balance = await signed(http, frozen_sim, "GET", "/fapi/v2/balance")
    margin = Decimal(order["avgPrice"]) * Decimal("0.010") / 10
    fee = Decimal(order["cumQuote"]) * Decimal("0.0005")
    wallet = Decimal(balance[0]["balance"])
    assert wallet == Decimal(100000) - fee
    assert Decimal(balance[0]["availableBalance"]) <= wallet - margin
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="BUY",
        type="MARKET",
        quantity="0.010",
        reduceOnly="true",
    )
    assert (status, body["code"]) == (400, -2022)
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="SELL",
        type="MARKET",
        quantity="0.001",
        reduceOnly="true",
    )
    assert status == 200
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="SELL",
        type="MARKET",
        quantity="0.009",
        reduceOnly="true",
    )
    assert status == 200
    row = await position(http, frozen_sim)
    assert row["positionAmt"] == "0.000"


async def test_min_notional_applies_except_to_reduce_only(frozen_sim, http):
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="ETHUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.001",
        price="100.00",
    )
    assert (status, body["code"]) == (400, -4164)
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.001",
        price="50000.05",
    )
    assert (status, body["code"]) == (400, -4014)
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="BUY",
        type="MARKET",
        quantity="0.001",
        positionSide="LONG",
    )
    assert (status, body["code"]) == (400, -4061)


async def test_margin_is_checked_against_leverage(frozen_sim, http):
    await signed(http, frozen_sim, "POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=1)
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="BUY",
        type="MARKET",
        quantity="2.000",
    )
    assert (status, body["code"]) == (400, -2019)
    await signed(http, frozen_sim, "POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=50)
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="BUY",
        type="MARKET",
        quantity="2.000",
    )
    assert status == 200 and body["status"] == "FILLED"


async def test_limit_short_fills_when_the_price_rises_and_realizes_pnl(frozen_sim, http):
    last = frozen_sim.market("futures", "BTCUSDT").last_price
    price = f"{round(last * 1.01, 1):.1f}"
    status, order = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="SELL",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.100",
        price=price,
        newClientOrderId="short-1",
    )
    assert status == 200 and order["status"] == "NEW"
    status, dup = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="SELL",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.100",
        price=price,
        newClientOrderId="short-1",
    )
    assert (status, dup["code"]) == (400, -4116)  # unique among open orders
    frozen_sim.print_trade("futures", "BTCUSDT", float(price) + 10)
    status, got = await signed(
        http, frozen_sim, "GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="short-1"
    )
    assert got["status"] == "FILLED" and got["avgPrice"] == price
    row = await position(http, frozen_sim)
    assert row["positionAmt"] == "-0.100" and row["entryPrice"] == price
    frozen_sim.print_trade("futures", "BTCUSDT", float(price) - 100)
    status, close = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="BUY",
        type="MARKET",
        quantity="0.100",
        reduceOnly="true",
    )
    _, trades = await signed(
        http, frozen_sim, "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", orderId=close["orderId"]
    )
    assert Decimal(trades[0]["realizedPnl"]) > 0


async def test_user_stream_over_a_listen_key_emits_order_and_account_updates(frozen_sim, http):
    async with http.post(
        frozen_sim.futures_url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": FUTURES_KEY}
    ) as resp:
        key = (await resp.json())["listenKey"]
    async with http.post(
        frozen_sim.futures_url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": FUTURES_KEY}
    ) as resp:
        assert (await resp.json())["listenKey"] == key  # the active key is returned again
    url = (
        f"{frozen_sim.futures_ws_url}/private/ws?listenKey={key}"
        "&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE"
    )
    async with http.ws_connect(url) as ws:
        status, _ = await signed(
            http,
            frozen_sim,
            "POST",
            "/fapi/v1/order",
            symbol="BTCUSDT",
            side="BUY",
            type="MARKET",
            quantity="0.010",
        )
        assert status == 200
        events = [json.loads((await ws.receive(timeout=5)).data) for _ in range(3)]
    kinds = [(e["e"], e.get("o", {}).get("x")) for e in events]
    assert kinds == [
        ("ORDER_TRADE_UPDATE", "NEW"),
        ("ORDER_TRADE_UPDATE", "TRADE"),
        ("ACCOUNT_UPDATE", None),
    ]
    documented = sample("binance_futures_order_trade_update.json")
    for trailing_stop_only in ("AP", "cr"):  # activation price and callback rate
        documented["o"].pop(trailing_stop_only)
    assert same_shape(events[1], documented) == []
    assert (
        same_shape(
            events[2],
            sample("binance_futures_account_update.json")["order_example_usdm_docs_trimmed"],
        )
        == []
    )
    assert events[2]["a"]["P"][0]["pa"] == "0.010"
    async with http.delete(
        frozen_sim.futures_url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": FUTURES_KEY}
    ) as resp:
        assert await resp.json() == {}
    async with http.put(
        frozen_sim.futures_url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": FUTURES_KEY}
    ) as resp:
        assert (await resp.json())["code"] == -1125


@pytest.mark.parametrize(
    "path", ["/market/ws/btcusdt@kline_1m", "/market/stream?streams=btcusdt@kline_1m"]
)
async def test_klines_stream_on_the_market_route(sim, http, path):
    async with http.ws_connect(sim.futures_ws_url + path) as ws:
        msg = json.loads((await ws.receive(timeout=5)).data)
    data = msg.get("data", msg)
    assert same_shape(data, sample("binance_kline_ws.json")) == []
    assert data["k"]["i"] == "1m" and data["k"]["x"] is False


async def test_futures_klines_allow_1500_and_have_no_1s(frozen_sim, http):
    async with http.get(
        frozen_sim.futures_url + "/fapi/v1/klines",
        params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1500},
    ) as resp:
        rows = await resp.json()
    assert len(rows) == 1441  # one day of history plus the forming minute
    assert same_shape(rows, sample("binance_futures_klines.json")) == []
    async with http.get(
        frozen_sim.futures_url + "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1s"}
    ) as resp:
        assert (await resp.json())["code"] == -1120


async def test_reduce_only_is_exempt_from_the_minimum_notional(frozen_sim, http):
    status, _ = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="ETHUSDT",
        side="BUY",
        type="MARKET",
        quantity="0.010",
    )
    assert status == 200
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="ETHUSDT",
        side="SELL",
        type="MARKET",
        quantity="0.001",
    )
    assert (status, body["code"]) == (400, -4164)
    status, body = await signed(
        http,
        frozen_sim,
        "POST",
        "/fapi/v1/order",
        symbol="ETHUSDT",
        side="SELL",
        type="MARKET",
        quantity="0.001",
        reduceOnly="true",
    )
    assert status == 200 and body["status"] == "FILLED"
    assert (await position(http, frozen_sim, "ETHUSDT"))["positionAmt"] == "0.009"
