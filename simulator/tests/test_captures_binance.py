"""Binance spot and USDⓈ-M futures answers against the real captures, field by field; the
mapping table and the comparison rules are in test_captures.py."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from .helpers import (
    BINANCE_KEY,
    BINANCE_SECRET,
    FUTURES_KEY,
    FUTURES_SECRET,
    PAYLOADS,
    binance_query,
    sample,
)
from .test_captures import check


async def spot(sim, http, method, path, params=None, signed=False):
    headers = {"X-MBX-APIKEY": BINANCE_KEY} if signed else {}
    params = params or {}
    query = (binance_query(params, BINANCE_SECRET, timestamp_ms=sim.clock_ms()) if signed
             else "&".join(f"{k}={v}" for k, v in params.items()))
    async with http.request(method, f"{sim.binance_url}{path}?{query}", headers=headers) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return body


async def futures(sim, http, method, path, params=None, signed=False):
    headers = {"X-MBX-APIKEY": FUTURES_KEY} if signed else {}
    params = params or {}
    query = (binance_query(params, FUTURES_SECRET, timestamp_ms=sim.clock_ms()) if signed
             else "&".join(f"{k}={v}" for k, v in params.items()))
    async with http.request(method, f"{sim.futures_url}{path}?{query}", headers=headers) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return body


async def test_spot_rest(sim, http):
    klines = await spot(sim, http, "GET", "/api/v3/klines",
                        {"symbol": "BTCUSDT", "interval": "1m", "limit": 5})
    check("binance_spot_klines.json", klines, sample("binance_spot_klines.json"))
    account = await spot(sim, http, "GET", "/api/v3/account", {"omitZeroBalances": "true"}, True)
    check("binance_spot_account.json", account, sample("binance_spot_account.json"))

    price = float((await spot(sim, http, "GET", "/api/v3/ticker/price",
                              {"symbol": "BTCUSDT"}))["price"])
    new = sample("binance_spot_order_new.json")
    orders = {}
    for kind in ("ACK", "RESULT", "FULL"):
        orders[kind] = await spot(sim, http, "POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.001", "price": f"{price / 2:.2f}", "newOrderRespType": kind}, True)
        check("binance_spot_order_new.json", orders[kind], new[kind])
    order_id = orders["FULL"]["orderId"]
    query = await spot(sim, http, "GET", "/api/v3/order",
                       {"symbol": "BTCUSDT", "orderId": order_id}, True)
    check("binance_spot_order_query.json", query, sample("binance_spot_order_query.json"))
    cancel = await spot(sim, http, "DELETE", "/api/v3/order",
                        {"symbol": "BTCUSDT", "orderId": order_id}, True)
    check("binance_spot_order_cancel.json", cancel, sample("binance_spot_order_cancel.json"))

    await spot(sim, http, "POST", "/api/v3/order",
               {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}, True)
    trades = await spot(sim, http, "GET", "/api/v3/myTrades", {"symbol": "ETHUSDT"}, True)
    assert trades
    check("binance_spot_my_trades.json", trades, sample("binance_spot_my_trades.json"))


async def test_spot_exchange_info_symbols_and_filters(sim, http):
    info = await spot(sim, http, "GET", "/api/v3/exchangeInfo", {"symbol": "BTCUSDT"})
    name = "binance_spot_exchange_info_filters.json"
    example = json.loads((PAYLOADS / name).read_text())["_symbol_example"]
    symbol = info["symbols"][0]
    check(name, {k: v for k, v in symbol.items() if k != "filters"},
          {k: v for k, v in example["symbols"][0].items() if k != "filters"})
    by_type = {f["filterType"]: f for f in symbol["filters"]}
    assert {"PRICE_FILTER", "LOT_SIZE"} <= set(by_type)
    assert {"NOTIONAL", "MIN_NOTIONAL"} & set(by_type)
    for kind, expected in sample(name).items():
        if kind in by_type:
            check(name, by_type[kind], expected)


async def test_futures_rest(sim, http):
    klines = await futures(sim, http, "GET", "/fapi/v1/klines",
                           {"symbol": "BTCUSDT", "interval": "1m", "limit": 5})
    check("binance_futures_klines.json", klines, sample("binance_futures_klines.json"))
    leverage = await futures(sim, http, "POST", "/fapi/v1/leverage",
                             {"symbol": "BTCUSDT", "leverage": 21}, True)
    check("binance_futures_leverage_response.json", leverage,
          sample("binance_futures_leverage_response.json"))
    price = float((await futures(sim, http, "GET", "/fapi/v1/ticker/price",
                                 {"symbol": "BTCUSDT"}))["price"])
    order = await futures(sim, http, "POST", "/fapi/v1/order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.003", "price": f"{price * 0.6:.1f}"}, True)
    check("binance_futures_create_order_response.json", order,
          sample("binance_futures_create_order_response.json"))
    risk = await futures(sim, http, "GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"}, True)
    check("binance_futures_position_risk_v2.json", risk,
          sample("binance_futures_position_risk_v2.json")["one_way"])


async def first_event(url: str, kind: str):
    async with websockets.connect(url) as ws:
        async def wait():
            while True:
                message = json.loads(await ws.recv())
                if message.get("data", message).get("e") == kind:
                    return message
        return await asyncio.wait_for(wait(), 10)


@pytest.mark.parametrize(
    ("name", "where", "path", "kind"),
    [
        ("binance_kline_ws.json", "spot", "/ws/btcusdt@kline_1m", "kline"),
        ("binance_spot_kline_ws_combined.json", "spot", "/stream?streams=btcusdt@kline_1m",
         "kline"),
        ("binance_spot_trade_ws.json", "spot", "/ws/btcusdt@trade", "trade"),
        ("binance_spot_agg_trade_ws.json", "spot", "/ws/btcusdt@aggTrade", "aggTrade"),
        ("binance_spot_ticker_ws.json", "spot", "/ws/btcusdt@ticker", "24hrTicker"),
        ("binance_spot_mini_ticker_ws.json", "spot", "/ws/btcusdt@miniTicker", "24hrMiniTicker"),
        ("binance_futures_kline_ws.json", "futures", "/market/ws/btcusdt@kline_1m", "kline"),
    ],
)
async def test_binance_ws_events(sim, name, where, path, kind):
    base = sim.binance_ws_url if where == "spot" else sim.futures_ws_url
    check(name, await first_event(base + path, kind), sample(name))
