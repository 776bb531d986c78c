"""Private REST calls of each adapter against a local server that checks the documented wire
format (paths, parameter names, signatures) and answers with the recorded payloads."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from markets.exchanges import get_adapter
from markets.exchanges.base import CANCELLED, FILLED, OPEN, OrderRequest
from markets.exchanges.errors import AuthenticationError, OrderRejected
from markets.exchanges.signing import binance_signature, jwt_decode, plain_query, query_hash

from .conftest import Reply, load

SPOT_SYMBOL = {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
               "isSpotTradingAllowed": True, "filters": [
                   {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000",
                    "tickSize": "0.01"},
                   {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000",
                    "stepSize": "0.00001"},
                   {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True}]}


def _binance_verify(req):
    query, _, sig = req.raw_query.rpartition("&signature=")
    assert binance_signature("secret", query) == sig, "bad signature"
    assert req.arg("recvWindow") == "5000" and req.arg("timestamp")


def _kr_claims(req, signed: str) -> dict:
    payload = jwt_decode(req.headers["Authorization"].removeprefix("Bearer "), "secret")
    if signed:
        assert payload["query_hash"] == query_hash(signed)
    return payload


def test_upbit_market_buy_is_sized_by_krw_total_and_sent_as_ord_type_price(server):
    bodies = []

    @server.route("GET", "/v1/market/all")
    def markets(req):
        return Reply(200, [{"market": "KRW-BTC", "korean_name": "x", "english_name": "Bitcoin"}])

    @server.route("POST", "/v1/orders")
    def place(req):
        bodies.append(req.json())
        _kr_claims(req, plain_query(req.json()))
        return Reply(201, load("upbit_order_market_buy_sell")[0]["response"]["body"])

    adapter = get_adapter("upbit", rest_url=server.url, api_key="ak", api_secret="secret")
    order = adapter.place_order(OrderRequest("KRW-BTC", "buy", "market", None, None, "mb-1",
                                             quote_amount=Decimal("10000")))
    assert bodies == [{"market": "KRW-BTC", "side": "bid", "price": "10000",
                       "ord_type": "price", "identifier": "mb-1"}]
    assert order.type == "market" and order.status == OPEN


def test_upbit_order_below_5000_krw_is_rejected_without_a_request(server):
    @server.route("GET", "/v1/market/all")
    def markets(req):
        return Reply(200, [{"market": "KRW-BTC", "korean_name": "x", "english_name": "Bitcoin"}])

    adapter = get_adapter("upbit", rest_url=server.url, api_key="ak", api_secret="secret")
    with pytest.raises(OrderRejected, match="below the minimum 5000 KRW"):
        adapter.place_order(OrderRequest("KRW-BTC", "sell", "limit", Decimal("0.00001"),
                                         Decimal("100000000"), "small-1"))
    assert server.hits("POST", "/v1/orders") == []


def test_upbit_open_orders_and_cancel_use_documented_params(server):
    closed = load("upbit_orders_closed")[0]["response"]["body"]
    waiting = load("upbit_order_create_get_cancel")

    @server.route("GET", "/v1/orders/open")
    def open_(req):
        _kr_claims(req, req.raw_query.replace("%5B%5D", "[]"))
        assert [v for k, v in req.query if k == "states[]"] == ["wait", "watch"]
        return Reply(200, closed[:2])

    @server.route("DELETE", "/v1/order")
    def cancel(req):
        _kr_claims(req, req.raw_query)
        assert req.arg("uuid") == "82fe9b72-eb0f-462b-8e0e-e74ad844acea"
        return Reply(200, waiting[2]["response"]["body"])

    adapter = get_adapter("upbit", rest_url=server.url, api_key="ak", api_secret="secret")
    assert len(adapter.open_orders("KRW-BTC")) == 2
    snapshot = adapter.cancel_order("KRW-BTC",
                                    exchange_order_id="82fe9b72-eb0f-462b-8e0e-e74ad844acea")
    assert snapshot.status == OPEN  # Upbit answers with the pre-cancel state


def test_bithumb_v2_order_is_acknowledged_then_read_back(server):
    placed = []

    @server.route("GET", "/v1/market/all")
    def markets(req):
        assert req.arg("isDetails") == "true"
        return Reply(200, load("bithumb_market_all"))

    @server.route("POST", "/v2/orders")
    def place(req):
        body = req.json()
        claims = _kr_claims(req, plain_query(body))
        assert "timestamp" in claims
        placed.append(body)
        return Reply(201, load("bithumb_v2_order_place")["response_inferred"])

    @server.route("GET", "/v1/order")
    def get(req):
        _kr_claims(req, req.raw_query)
        assert req.arg("uuid") == "C0101000007410713262"
        return Reply(200, load("bithumb_order_get"))

    adapter = get_adapter("bithumb", rest_url=server.url, api_key="ak", api_secret="secret")
    order = adapter.place_order(OrderRequest("KRW-BTC", "buy", "limit", Decimal("0.001"),
                                             Decimal("100000050"), "my-id-1"))
    assert placed == [load("bithumb_v2_order_place")["request"]["json_body"]]
    assert order.status == FILLED and order.fills


def test_bithumb_error_with_http_200_raises(server):
    @server.route("GET", "/v1/accounts")
    def accounts(req):
        return Reply(200, {"error": {"name": "invalid_access_key", "message": "잘못된 액세스 키"}})

    adapter = get_adapter("bithumb", rest_url=server.url, api_key="ak", api_secret="secret")
    with pytest.raises(AuthenticationError, match="invalid_access_key"):
        adapter.balances()


def test_binance_spot_order_fetch_and_fills(server):
    @server.route("GET", "/api/v3/exchangeInfo")
    def info(req):
        return Reply(200, {"symbols": [SPOT_SYMBOL]})

    @server.route("POST", "/api/v3/order")
    def place(req):
        _binance_verify(req)
        assert req.arg("quoteOrderQty") == "25" and req.arg("newOrderRespType") == "FULL"
        assert req.arg("newClientOrderId") == "spot-1" and req.arg("type") == "MARKET"
        return Reply(200, load("binance_spot_order_new")["FULL"])

    @server.route("GET", "/api/v3/order")
    def query(req):
        _binance_verify(req)
        return Reply(200, load("binance_spot_order_new")["RESULT"])

    @server.route("GET", "/api/v3/myTrades")
    def trades(req):
        _binance_verify(req)
        assert req.arg("orderId") == "28"
        return Reply(200, load("binance_spot_my_trades"))

    adapter = get_adapter("binance_spot", rest_url=server.url, api_key="ak", api_secret="secret")
    order = adapter.place_order(OrderRequest("BTCUSDT", "buy", "market", None, None, "spot-1",
                                             quote_amount=Decimal("25")))
    assert order.status == FILLED and len(order.fills) == 5
    again = adapter.fetch_order("BTCUSDT", exchange_order_id="28")
    assert again.fills[0].trade_id == "28457"


def test_binance_spot_cancel_and_balances(server):
    @server.route("DELETE", "/api/v3/order")
    def cancel(req):
        _binance_verify(req)
        assert req.arg("origClientOrderId") == "myOrder1"
        return Reply(200, load("binance_spot_order_cancel"))

    @server.route("GET", "/api/v3/account")
    def account(req):
        _binance_verify(req)
        return Reply(200, load("binance_spot_account"))

    adapter = get_adapter("binance_spot", rest_url=server.url, api_key="ak", api_secret="secret")
    assert adapter.cancel_order("LTCBTC", client_order_id="myOrder1").status == CANCELLED
    assert adapter.balances()[0].free == Decimal("4723846.89208129")


def test_binance_clock_skew_is_resynced_and_the_request_retried(server):
    calls = []

    @server.route("GET", "/api/v3/time")
    def time_(req):
        return Reply(200, {"serverTime": 1_000_000})

    @server.route("GET", "/api/v3/account")
    def account(req):
        _binance_verify(req)
        calls.append(int(req.arg("timestamp")))
        if len(calls) == 1:
            return Reply(400, {"code": -1021, "msg": "Timestamp for this request is outside "
                                                     "of the recvWindow."})
        return Reply(200, load("binance_spot_account"))

    adapter = get_adapter("binance_spot", rest_url=server.url, api_key="ak", api_secret="secret",
                          clock=lambda: 2_000.0)
    adapter.balances()
    assert calls == [2_000_000, 1_000_000]
    assert adapter.time_offset_ms == -1_000_000


def test_binance_futures_leverage_margin_type_and_positions(server):
    @server.route("POST", "/fapi/v1/leverage")
    def leverage(req):
        _binance_verify(req)
        assert req.arg("leverage") == "21"
        return Reply(200, load("binance_futures_leverage_response"))

    @server.route("POST", "/fapi/v1/marginType")
    def margin(req):
        _binance_verify(req)
        assert req.arg("marginType") == "ISOLATED"
        return Reply(400, load("binance_futures_margin_type_response")["already_set_error"])

    @server.route("GET", "/fapi/v2/positionRisk")
    def positions(req):
        _binance_verify(req)
        rows = load("binance_futures_position_risk_v2")
        return Reply(200, rows["one_way"] + rows["hedge"])

    adapter = get_adapter("binance_futures", rest_url=server.url, api_key="ak",
                          api_secret="secret")
    assert adapter.set_leverage("BTCUSDT", 21) == 21
    adapter.set_margin_type("BTCUSDT", "isolated")  # -4046 "no need to change" is success
    (position,) = adapter.positions()
    assert position.side == "long" and position.leverage == 4
    with pytest.raises(ValueError):
        adapter.set_leverage("BTCUSDT", 200)


def test_spot_adapters_have_no_positions():
    with pytest.raises(NotImplementedError, match="spot only"):
        get_adapter("upbit").positions()


def test_bithumb_cancel_uses_v2_then_reads_the_order_back(server):
    @server.route("DELETE", "/v2/order")
    def cancel(req):
        _kr_claims(req, req.raw_query)
        assert req.arg("order_id") == "C0101000000001799625"
        return Reply(200, load("bithumb_v2_order_cancel"))

    @server.route("GET", "/v1/order")
    def get(req):
        _kr_claims(req, req.raw_query)
        row = dict(load("bithumb_orders_list")[0], state="cancel")
        return Reply(200, row)

    adapter = get_adapter("bithumb", rest_url=server.url, api_key="ak", api_secret="secret")
    order = adapter.cancel_order("KRW-BTC", exchange_order_id="C0101000000001799625")
    assert order.status == CANCELLED and order.exchange_order_id == "C0101000000001799625"


def test_binance_futures_balances_split_available_from_wallet(server):
    @server.route("GET", "/fapi/v3/balance")
    def balance(req):
        _binance_verify(req)
        return Reply(200, [{"accountAlias": "SgsR", "asset": "USDT", "balance": "122.5",
                            "crossWalletBalance": "122.5", "crossUnPnl": "0",
                            "availableBalance": "100.25", "maxWithdrawAmount": "100.25",
                            "marginAvailable": True, "updateTime": 1617939110373}])

    @server.route("GET", "/fapi/v1/openOrders")
    def open_(req):
        _binance_verify(req)
        assert req.arg("symbol") == "BTCUSDT"
        return Reply(200, [load("binance_futures_create_order_response")])

    adapter = get_adapter("binance_futures", rest_url=server.url, api_key="ak",
                          api_secret="secret")
    (usdt,) = adapter.balances()
    assert usdt.free == Decimal("100.25") and usdt.locked == Decimal("22.25")
    (order,) = adapter.open_orders("BTCUSDT")
    assert order.status == OPEN and order.client_order_id == "x-xcKtGhcu04075babaeb34c55af79ba"


def test_binance_futures_filled_market_order_comes_back_with_its_fills(server):
    @server.route("GET", "/fapi/v1/exchangeInfo")
    def info(req):
        return Reply(200, {"symbols": [{
            "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
            "contractType": "PERPETUAL", "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.1", "tickSize": "0.1"},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "stepSize": "0.001"},
                {"filterType": "MIN_NOTIONAL", "notional": "5"}]}]})

    @server.route("POST", "/fapi/v1/order")
    def place(req):
        _binance_verify(req)
        assert req.arg("type") == "MARKET" and req.arg("newOrderRespType") == "RESULT"
        return Reply(200, dict(load("binance_futures_create_order_response"), status="FILLED",
                               type="MARKET", side="BUY", executedQty="0.200",
                               avgPrice="110001.00", cumQuote="22000.2"))

    @server.route("GET", "/fapi/v1/userTrades")
    def trades(req):
        _binance_verify(req)
        assert req.arg("orderId") == "4087922044"
        return Reply(200, [{"symbol": "BTCUSDT", "id": 698759, "orderId": 4087922044,
                            "side": "BUY", "price": "110001.00", "qty": "0.200",
                            "realizedPnl": "0", "quoteQty": "22000.2", "commission": "8.80008",
                            "commissionAsset": "USDT", "time": 1739781831932,
                            "positionSide": "BOTH", "buyer": True, "maker": False}])

    adapter = get_adapter("binance_futures", rest_url=server.url, api_key="ak",
                          api_secret="secret")
    order = adapter.place_order(OrderRequest("BTCUSDT", "buy", "market", Decimal("0.2"), None,
                                             "fut-m-1"))
    assert order.status == FILLED and order.average_price == Decimal("110001.00")
    (fill,) = order.fills
    assert fill.fee == Decimal("8.80008") and fill.is_maker is False
    assert order.fee == Decimal("8.80008")


def test_adapters_of_one_venue_share_its_symbol_rules_for_a_while(server, monkeypatch):
    """A broker (and its adapter) is built per account and bar: each used to download the
    venue's whole symbol list before its first order (Binance: weight 20 every bar)."""
    from markets.exchanges import base

    asked = []

    @server.route("GET", "/api/v3/exchangeInfo")
    def info(req):
        asked.append(1)
        return Reply(200, {"symbols": [SPOT_SYMBOL]})

    def adapter():
        return get_adapter("binance_spot", rest_url=server.url, api_key="ak", api_secret="s")

    assert adapter().symbol_info("BTCUSDT").code == "BTCUSDT"
    assert adapter().symbol_info("BTCUSDT").code == "BTCUSDT"
    assert len(asked) == 1  # the second adapter reused the first one's list
    # A symbol the list does not hold reloads it (a listing since), then is refused by name.
    with pytest.raises(ValueError, match="unknown or untradable symbol 'NEWUSDT'"):
        adapter().symbol_info("NEWUSDT")
    assert len(asked) == 2
    # Older than the TTL: fetched again.
    now = time.monotonic()
    monkeypatch.setattr(base.time, "monotonic", lambda: now + base.SYMBOL_RULES_TTL_S + 1)
    adapter().symbol_info("BTCUSDT")
    assert len(asked) == 3
    base.forget_symbol_rules()
    adapter().symbol_info("BTCUSDT")
    assert len(asked) == 4
