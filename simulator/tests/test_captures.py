"""The simulator's answers against the real venue captures, field by field (issue 17).

The captures are ``simulator/payloads/`` (the same files as ``../shared/exchanges/samples/``,
kept in the package so that neither these tests nor the adapters' read outside the repository).
``MAPPED`` maps each capture to the request that produced it; the simulator answers the same
request and :func:`simulator.tests.captures.compare` must find no missing field and no JSON-kind
mismatch. Extra fields are allowed only where ``EXTRAS`` names them with the reason. ``UNMAPPED``
lists the captures (or capture steps) this test cannot replay, and why.

Upbit captures are recorded exchanges ``[{request, response}]``: they are replayed step by step,
the capture's order uuids replaced by the simulator's. Binance captures are single bodies.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest
import websockets

from .captures import compare
from .helpers import (
    body_query,
    sample,
    upbit_auth,
)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Upbit steps on endpoints the simulator does not serve (the adapters do not use them).
UPBIT_UNSERVED = ("/v1/orders/cancel_and_new", "/v1/orders/test", "/v1/orders/uuids",
                  "DELETE /v1/orders/open")

#: capture file -> request(s) whose answer is compared (Upbit: the capture's own requests).
MAPPED = {
    "upbit_accounts.json": "replay: GET /v1/accounts",
    "upbit_candles_seconds.json": "replay: GET /v1/candles/seconds?market=KRW-BTC",
    "upbit_candles_minutes.json": "replay: GET /v1/candles/minutes/1?market=KRW-BTC",
    "upbit_candles_days.json": "replay: GET /v1/candles/days?market=KRW-BTC",
    "upbit_candles_weeks.json": "replay: GET /v1/candles/weeks?market=KRW-BTC",
    "upbit_candles_months.json": "replay: GET /v1/candles/months?market=KRW-BTC",
    "upbit_candles_years.json": "replay: GET /v1/candles/years?market=KRW-BTC",
    "upbit_ticker.json": "replay: GET /v1/ticker?markets=KRW-BTC",
    "upbit_ticker_all.json": "replay: GET /v1/ticker/all?quote_currencies=KRW",
    "upbit_trades_ticks.json": "replay: GET /v1/trades/ticks?market=KRW-BTC",
    "upbit_orderbook.json": "replay: GET /v1/orderbook?markets=KRW-BTC",
    "upbit_orderbook_instruments.json": "replay: GET /v1/orderbook/instruments?markets=KRW-BTC",
    "upbit_orders_chance.json": "replay: GET /v1/orders/chance?market=KRW-BTC",
    "upbit_orders_closed.json": "replay after a cancelled order: GET /v1/orders/closed",
    "upbit_order_create_get_cancel.json": "replay: POST /v1/orders, GET + DELETE /v1/order",
    "upbit_order_market_buy_sell.json": "replay: POST /v1/orders price/market, GET /v1/order",
    "upbit_order_cancel_and_new.json": "replay of its POST /v1/orders step (the rest: unserved)",
    "upbit_orders_uuids_get.json": "replay of its POST /v1/orders and DELETE /v1/order steps",
    "upbit_orders_uuids_cancel.json": "replay of its two POST /v1/orders steps",
    "upbit_orders_open_cancel_all.json": "replay of its POST /v1/orders step",
    "upbit_candles_minutes_raw_multi.json": "GET /v1/candles/minutes/1?market=KRW-BTC&count=3",
    "upbit_ws_ticker.json": "WS /websocket/v1 [{ticket},{type:ticker,codes:[KRW-BTC]}]",
    "upbit_ws_trade.json": "WS /websocket/v1 type trade",
    "upbit_ws_orderbook.json": "WS /websocket/v1 type orderbook",
    "upbit_ws_candle.json": "WS /websocket/v1 type candle.1m",
    "binance_spot_klines.json": "GET /api/v3/klines?symbol=BTCUSDT&interval=1m&limit=5",
    "binance_futures_klines.json": "futures GET /fapi/v1/klines?symbol=BTCUSDT&interval=1m",
    "binance_spot_account.json": "GET /api/v3/account?omitZeroBalances=true (signed)",
    "binance_spot_order_new.json": "POST /api/v3/order LIMIT, newOrderRespType ACK/RESULT/FULL",
    "binance_spot_order_query.json": "GET /api/v3/order?symbol=BTCUSDT&orderId=<the new order>",
    "binance_spot_order_cancel.json": "DELETE /api/v3/order?symbol=BTCUSDT&orderId=<it>",
    "binance_spot_my_trades.json": "GET /api/v3/myTrades?symbol=ETHUSDT after a market buy",
    "binance_spot_exchange_info_filters.json": "GET /api/v3/exchangeInfo: filters by filterType",
    "binance_futures_leverage_response.json": "futures POST /fapi/v1/leverage symbol=BTCUSDT",
    "binance_futures_create_order_response.json": "futures POST /fapi/v1/order LIMIT",
    "binance_futures_position_risk_v2.json": "futures GET /fapi/v2/positionRisk?symbol=BTCUSDT",
    "binance_kline_ws.json": "WS /ws/btcusdt@kline_1m",
    "binance_spot_kline_ws_combined.json": "WS /stream?streams=btcusdt@kline_1m",
    "binance_spot_trade_ws.json": "WS /ws/btcusdt@trade",
    "binance_spot_agg_trade_ws.json": "WS /ws/btcusdt@aggTrade",
    "binance_spot_ticker_ws.json": "WS /ws/btcusdt@ticker",
    "binance_spot_mini_ticker_ws.json": "WS /ws/btcusdt@miniTicker",
    "binance_futures_kline_ws.json": "futures WS /market/ws/btcusdt@kline_1m",
}

UNMAPPED = {
    "upbit_errors.json": "error bodies: test_error_shapes.py",
    "binance_spot_errors.json": "error bodies: test_error_shapes.py",
    "bithumb_errors.json": "Bithumb's private API is being added in parallel (bithumb/)",
    "upbit_jwt_example.json": "a signing example, not an answer (test_upbit_rest.py uses it)",
    "bithumb_jwt_payload_example.json": "a signing example, not an answer",
    "binance_hmac_test_vectors.json": "signing vectors, not an answer (test_binance_spot.py)",
    "upbit_remaining_req_headers.json": "headers, not a body (test_upbit_rest.py checks them)",
    "binance_spot_rate_limits.json": "rate-limit rules, not an answer",
    "upbit_ws_subscribe.json": "subscription protocol and error frames (test_upbit_ws.py)",
    "binance_ws_subscribe.json": "SUBSCRIBE protocol exchange (test_binance_streams.py)",
    "upbit_ws_myorder.json": "private stream (test_upbit_ws.py compares it)",
    "upbit_ws_myasset.json": "private stream (test_upbit_ws.py compares it)",
    "binance_spot_execution_report.json": "user-data event (test_binance_spot.py compares it)",
    "binance_spot_outbound_account_position.json": "user-data event (test_binance_spot.py)",
    "binance_spot_user_stream_subscribe.json": "WS-API logon exchange (test_binance_spot.py)",
    "binance_futures_listen_key.json": "listenKey exchange (test_futures.py)",
    "binance_futures_account_update.json": "user-data event, docs examples of several eras",
    "binance_futures_order_trade_update.json": "user-data event (test_futures.py compares it)",
    "upbit_order_test.json": "POST /v1/orders/test is not served (the adapters do not use it)",
    "binance_futures_margin_type_response.json": "not replayed here (test_futures.py)",
    "binance_futures_mark_price_ws.json": "recorded by the simulator's authors, not the venue",
    "binance_futures_premium_index.json": "recorded by the simulator's authors, not the venue",
}
#: Bithumb's public market data (its private API is being added in parallel in bithumb/).
BITHUMB_PUBLIC = {
    "bithumb_market_all.json": ("/v1/market/all", {"isDetails": "true"}),
    "bithumb_ticker.json": ("/v1/ticker", {"markets": "KRW-BTC"}),
    "bithumb_orderbook.json": ("/v1/orderbook", {"markets": "KRW-BTC"}),
    "bithumb_trades_ticks.json": ("/v1/trades/ticks", {"market": "KRW-BTC", "count": "3"}),
    "bithumb_candles_minutes.json": ("/v1/candles/minutes/1", {"market": "KRW-BTC", "count": "1"}),
    "bithumb_candles_weeks.json": ("/v1/candles/weeks", {"market": "KRW-BTC", "count": "1"}),
    "bithumb_candles_months.json": ("/v1/candles/months", {"market": "KRW-BTC", "count": "3"}),
}
MAPPED |= {name: f"Bithumb GET {path} {params}" for name, (path, params) in BITHUMB_PUBLIC.items()}
MAPPED |= {f"bithumb_ws_{kind}.json": f"Bithumb WS /websocket/v1 type {kind}"
           for kind in ("ticker", "trade", "orderbook")}
for _name in ("accounts", "order_get", "orders_chance", "orders_list", "v2_order_cancel",
              "v2_order_place", "v2_orders_batch", "v2_orders_cancel_batch", "ws_myasset",
              "ws_myorder_v2"):
    UNMAPPED[f"bithumb_{_name}.json"] = (
        "Bithumb's private API is being made its own venue in parallel (simulator/bithumb/)")

#: Fields the simulator sends beyond a capture, per capture, with the reason they are allowed.
EXTRAS = {
    # Bithumb's captures are a client's parser constants (jabdori/maxt parse.rs, "shape ref"),
    # not wire recordings, and bithumb.md says its frames carry Upbit's fields: Upbit's
    # orderbook `level`, ticker `delisting_date` and trade `best_*` are allowed
    "bithumb_orderbook.json": {"[].level"},
    "bithumb_ws_ticker.json": {".delisting_date"},
    "bithumb_ws_trade.json": {".best_ask_price", ".best_ask_size", ".best_bid_price",
                              ".best_bid_size"},
    # the captures are trimmed frames; upbit.md (from the venue's WebSocket spec) lists these
    "upbit_ws_ticker.json": {".stream_type"},
    "upbit_ws_trade.json": {".stream_type", ".sequential_id"},
    "upbit_ws_orderbook.json": {".stream_type", ".level"},
    # the capture predates fields the venue's current docs list for the same request
    "binance_spot_order_new.json": {".workingTime", ".selfTradePreventionMode"},
}
#: Paths where the venue sends null or a value depending on the order or the market.
NULLABLE = {
    "upbit_order_market_buy_sell.json": {".price", ".volume", ".remaining_volume"},
    "upbit_order_create_get_cancel.json": {".trades[].trend"},
}


def check(name: str, actual, expected, nullable=frozenset()):
    problems, extras = compare(actual, expected, frozenset(nullable) | NULLABLE.get(name, set()))
    assert problems == [], f"{name}: {problems}"
    unexpected = set(extras) - EXTRAS.get(name, set())
    assert not unexpected, f"{name}: fields the venue does not send: {sorted(unexpected)}"


def test_compare_finds_missing_fields_kind_mismatches_and_extras():
    capture = {"a": 1, "b": "x", "c": [{"d": True}], "e": None, "k": [1, "2"]}
    answer = {"a": "1", "c": [{"d": True, "z": 0}, {"d": "no"}], "e": 3, "k": [1, 2], "y": 1}
    problems, extras = compare(answer, capture)
    assert problems == [".a: string instead of number", ".b: missing", ".c[].d: string instead "
                        "of bool", ".e: number instead of null", ".k[1]: number instead of string"]
    assert extras == [".c[].z", ".y"]
    assert compare(answer, capture, frozenset({".e"}))[0] == problems[:3] + problems[4:]


def test_every_capture_is_mapped_or_explained():
    from .helpers import PAYLOADS

    names = {p.name for p in PAYLOADS.glob("*.json")}
    assert names == set(MAPPED) | set(UNMAPPED), names ^ (set(MAPPED) | set(UNMAPPED))
    assert not set(MAPPED) & set(UNMAPPED)


# ---- Upbit: replay the recorded requests ----------------------------------------------------

async def upbit_call(sim, http, method: str, uri: str, body: dict | None):
    path = uri.split("api.upbit.com", 1)[1]
    query = path.partition("?")[2].replace("%5B%5D", "[]")
    headers = {}
    if path.startswith(("/v1/accounts", "/v1/order")):
        headers = upbit_auth(body_query(body) if body else query)
    async with http.request(method, sim.upbit_url + path.replace("%5B%5D", "[]"),
                            json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def settled(sim, http, order_uri: str, timeout_s: float = 10.0) -> dict:
    """GET the order until it has left ``wait`` (polling, no fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        _, answer = await upbit_call(sim, http, "GET", order_uri, None)
        if answer.get("state") != "wait" or loop.time() > deadline:
            return answer
        await asyncio.sleep(0.05)


UPBIT_REPLAYS = [name for name in MAPPED if name.startswith("upbit_") and "replay" in MAPPED[name]]


@pytest.mark.parametrize("name", UPBIT_REPLAYS)
async def test_upbit_replays(sim, http, name):
    steps = sample(name)
    ids: dict[str, str] = {}
    if name == "upbit_orders_closed.json":  # something closed to list
        body = {"market": "KRW-BTC", "side": "bid", "volume": "0.0005", "price": "10000000",
                "ord_type": "limit"}
        _, placed = await upbit_call(sim, http, "POST", "https://api.upbit.com/v1/orders", body)
        order = f"https://api.upbit.com/v1/order?uuid={placed['uuid']}"
        await upbit_call(sim, http, "DELETE", order, None)
        await settled(sim, http, order)
    compared = 0
    for step in steps:
        request, response = step["request"], step["response"]
        route = f"{request['method']} {request['uri'].split('api.upbit.com', 1)[1]}"
        if any(u in route for u in UPBIT_UNSERVED):
            continue
        if any(u not in ids for u in UUID.findall(request["uri"])):
            continue  # an order of an unserved step (cancel_and_new's new order)
        uri = UUID.sub(lambda m: ids[m.group(0)], request["uri"])
        body = request.get("json_body")
        if body and body.get("ord_type") == "market":  # sell what the simulator's buy got
            body = body | {"volume": "0.00005"}
        status, answer = await upbit_call(sim, http, request["method"], uri, body)
        assert status == response["status"], (name, route, answer)
        expected = response["body"]
        if isinstance(expected, dict) and "uuid" in expected and "uuid" in answer:
            ids[expected["uuid"]] = answer["uuid"]
        market_order = isinstance(answer, dict) and answer.get("ord_type") in ("price", "market")
        if route.startswith("GET /v1/order?") and market_order and answer.get("state") == "wait":
            answer = await settled(sim, http, uri)  # a market order settles on the next tick
        check(name, answer, expected)
        compared += 1
    assert compared


async def test_upbit_raw_multi_candles(sim, http):
    async with http.get(f"{sim.upbit_url}/v1/candles/minutes/1",
                        params={"market": "KRW-BTC", "count": "3"}) as resp:
        answer = await resp.json()
    # the capture keeps the wire's numbers as strings to preserve "46886000.00000000"; on the
    # wire they are numbers (its _note)
    expected = [{k: float(v) if k.endswith(("price", "volume")) else v for k, v in row.items()}
                for row in sample("upbit_candles_minutes_raw_multi.json")]
    check("upbit_candles_minutes_raw_multi.json", answer, expected)


@pytest.mark.parametrize("kind", ["ticker", "trade", "orderbook", "candle.1m"])
async def test_upbit_ws_frames(sim, kind):
    name = f"upbit_ws_{kind.split('.')[0]}.json"
    expected = sample(name)
    expected = expected[0] if isinstance(expected, list) else expected
    async with websockets.connect(f"{sim.upbit_ws_url}/websocket/v1") as ws:
        await ws.send(json.dumps([{"ticket": str(uuid.uuid4())},
                                  {"type": kind, "codes": ["KRW-BTC"]}]))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    check(name, frame, expected)


@pytest.mark.parametrize("name", sorted(BITHUMB_PUBLIC))
async def test_bithumb_public_rest(sim, http, name):
    path, params = BITHUMB_PUBLIC[name]
    async with http.get(sim.bithumb_url + path, params=params) as resp:
        assert resp.status == 200
        check(name, await resp.json(), sample(name))


@pytest.mark.parametrize("kind", ["ticker", "trade", "orderbook"])
async def test_bithumb_ws_frames(sim, kind):
    name = f"bithumb_ws_{kind}.json"
    async with websockets.connect(f"{sim.bithumb_ws_url}/websocket/v1") as ws:
        await ws.send(json.dumps([{"ticket": str(uuid.uuid4())},
                                  {"type": kind, "codes": ["KRW-BTC"]}]))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    check(name, frame, sample(name))
