"""Adapters over real HTTP against a local server on 127.0.0.1 (no exchange host is contacted).

The server here implements only what each test needs, following the documented wire formats.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from markets.exchanges import get_adapter
from markets.exchanges.base import OPEN, OrderRequest
from markets.exchanges.errors import AuthenticationError, OrderStatusUnknown
from markets.exchanges.signing import binance_signature, jwt_decode, plain_query, query_hash

from .conftest import Reply

MIN = 60_000
NOW_MS = 1_785_400_000_000 + 25_000  # 25 s into a minute: that minute's candle is forming
FORMING = NOW_MS - NOW_MS % MIN


def clock():
    return NOW_MS / 1000


def _series(count: int, *, skip=()) -> list[int]:
    """Open times of ``count`` 1m candles ending with the forming one, minus ``skip``."""
    return [FORMING - i * MIN for i in range(count) if i not in skip][::-1]


def _kr_row(open_ms: int) -> dict:
    utc = datetime.fromtimestamp(open_ms / 1000, UTC)
    price = 1000.0 + (open_ms // MIN) % 97
    return {"market": "KRW-BTC", "candle_date_time_utc": utc.strftime("%Y-%m-%dT%H:%M:%S"),
            "candle_date_time_kst": (utc + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S"),
            "opening_price": price, "high_price": price + 5, "low_price": price - 5,
            "trade_price": price + 1, "timestamp": open_ms + 59_000,
            "candle_acc_trade_price": 10.0 * price, "candle_acc_trade_volume": 10.0, "unit": 1}


def _serve_kr_candles(server, opens: list[int], *, kst: bool):
    def candles(req):
        to = req.arg("to")
        count = int(req.arg("count") or 1)
        if count > 200:
            return Reply(400, {"error": {"name": 400, "message": "count > 200"}})
        if kst:
            if to.endswith("Z") or "+" in to:
                return Reply(400, {"error": {"name": 400, "message": "zone suffix"}})
            to_ms = int((datetime.fromisoformat(to) - timedelta(hours=9))
                        .replace(tzinfo=UTC).timestamp() * 1000)
        else:
            to_ms = int(datetime.fromisoformat(to.replace("Z", "+00:00")).timestamp() * 1000)
        rows = [o for o in opens if o < to_ms][-count:]
        return Reply(200, [_kr_row(o) for o in reversed(rows)],
                     headers={"Remaining-Req": "group=candles; min=600; sec=9"})

    server.route("GET", "/v1/candles/minutes/1")(candles)


@pytest.mark.parametrize("venue", ["upbit", "bithumb"])
def test_korean_candles_page_backwards_without_gap_or_duplicate(server, venue):
    opens = _series(520, skip={3, 250})  # two intervals without trades: no candle there
    _serve_kr_candles(server, opens, kst=venue == "bithumb")
    adapter = get_adapter(venue, rest_url=server.url, clock=clock)
    start = FORMING - 450 * MIN
    candles = adapter.fetch_candles("KRW-BTC", "1m", start, FORMING + 10 * MIN)
    expected = [o for o in opens if start <= o < FORMING]
    assert [c.open_time_ms for c in candles] == expected  # oldest first, forming excluded
    assert len(server.hits("GET", "/v1/candles/minutes/1")) == 3  # 200 + 200 + the rest
    assert candles[0].close == _kr_row(start)["trade_price"]


def test_bithumb_sends_to_as_naive_kst_wall_clock(server):
    opens = _series(30)
    _serve_kr_candles(server, opens, kst=True)
    adapter = get_adapter("bithumb", rest_url=server.url, clock=clock)
    candles = adapter.fetch_candles("KRW-BTC", "1m", FORMING - 20 * MIN, FORMING)
    assert len(candles) == 20
    (req,) = server.hits("GET", "/v1/candles/minutes/1")
    kst = datetime.fromtimestamp(FORMING / 1000, UTC) + timedelta(hours=9)
    assert req.arg("to") == kst.strftime("%Y-%m-%dT%H:%M:%S")


def test_bithumb_refuses_utc_aligned_4h_and_1d_candles_with_a_reason():
    adapter = get_adapter("bithumb")
    with pytest.raises(ValueError, match="aggregate 4h from 1h"):
        adapter.fetch_candles("KRW-BTC", "4h", 0, 1)


def _kline(open_ms: int, step: int = MIN) -> list:
    p = 100 + (open_ms // step) % 13
    return [open_ms, f"{p}", f"{p + 1}", f"{p - 1}", f"{p}.5", "2.5", open_ms + step - 1,
            f"{p * 2.5}", 7, "1", "1", "0"]


def _serve_klines(server, path: str, opens: list[int], *, limit_max: int):
    def klines(req):
        start, end = int(req.arg("startTime")), int(req.arg("endTime"))
        limit = int(req.arg("limit") or 500)
        if limit > limit_max:
            return Reply(400, {"code": -1130, "msg": "limit too large"})
        rows = [_kline(o) for o in opens if start <= o <= end][:limit]
        return Reply(200, rows, headers={"X-MBX-USED-WEIGHT-1M": "12"})

    server.route("GET", path)(klines)


@pytest.mark.parametrize("venue,path,limit", [
    ("binance_spot", "/api/v3/klines", 1000), ("binance_futures", "/fapi/v1/klines", 1500)])
def test_binance_klines_page_forward_and_drop_the_forming_candle(server, venue, path, limit):
    opens = _series(3200)
    _serve_klines(server, path, opens, limit_max=limit)
    adapter = get_adapter(venue, rest_url=server.url, clock=clock)
    start = opens[0]
    candles = adapter.fetch_candles("BTCUSDT", "1m", start, FORMING + 5 * MIN)
    assert [c.open_time_ms for c in candles] == opens[:-1]
    pages = server.hits("GET", path)
    assert len(pages) == -(-3199 // limit)
    assert all(int(p.arg("endTime")) == FORMING - 1 for p in pages)


def test_429_with_retry_after_waits_then_succeeds(server):
    calls = []

    @server.route("GET", "/api/v3/time")
    def time_(req):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Reply(429, {"code": -1003, "msg": "Too much request weight used"},
                         headers={"Retry-After": "1"})
        return Reply(200, {"serverTime": 1_785_400_000_123})

    adapter = get_adapter("binance_spot", rest_url=server.url)
    assert adapter.server_time_ms() == 1_785_400_000_123
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.95


def test_upbit_plain_text_429_backs_off_a_second(server):
    calls = []

    @server.route("GET", "/v1/market/all")
    def markets(req):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Reply(429, text="Too many API requests.")
        return Reply(200, [{"market": "KRW-BTC", "korean_name": "x", "english_name": "Bitcoin"}])

    symbols = get_adapter("upbit", rest_url=server.url).list_symbols()
    assert symbols[0].code == "KRW-BTC" and calls[1] - calls[0] >= 0.95


def test_upbit_bad_key_raises_authentication_error_with_the_venue_message(server):
    @server.route("GET", "/v1/accounts")
    def accounts(req):
        return Reply(401, {"error": {"name": "jwt_verification",
                                     "message": "잘못된 API 키입니다."}})

    adapter = get_adapter("upbit", rest_url=server.url, api_key="ak", api_secret="bad")
    with pytest.raises(AuthenticationError) as err:
        adapter.balances()
    assert err.value.venue_message == "잘못된 API 키입니다." and err.value.status == 401


def test_binance_bad_key_raises_authentication_error(server):
    @server.route("GET", "/api/v3/account")
    def account(req):
        return Reply(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})

    adapter = get_adapter("binance_spot", rest_url=server.url, api_key="ak", api_secret="s")
    with pytest.raises(AuthenticationError, match="Invalid API-key"):
        adapter.balances()


def _upbit_exchange(server, *, post_delay_s: float = 0.0, known: bool = True):
    """Upbit order endpoints that verify the JWT and its query_hash like the venue."""
    orders: dict[str, dict] = {}

    @server.route("GET", "/v1/market/all")
    def markets(req):
        return Reply(200, [{"market": "KRW-BTC", "korean_name": "x", "english_name": "Bitcoin"}])

    def claims(req, signed: str) -> dict:
        token = req.headers["Authorization"].removeprefix("Bearer ")
        payload = jwt_decode(token, "secret")
        assert payload["query_hash"] == query_hash(signed)
        return payload

    @server.route("POST", "/v1/orders")
    def place(req):
        body = req.json()
        claims(req, plain_query(body))
        order = {"uuid": "82fe9b72-eb0f-462b-8e0e-e74ad844acea", "side": body["side"],
                 "ord_type": body["ord_type"], "price": body["price"], "state": "wait",
                 "market": body["market"], "created_at": "2026-03-22T21:42:22+09:00",
                 "volume": body["volume"], "remaining_volume": body["volume"],
                 "reserved_fee": "2.5", "remaining_fee": "2.5", "paid_fee": "0",
                 "locked": "5002.5", "executed_volume": "0", "trades_count": 0,
                 "identifier": body["identifier"]}
        if known:
            orders[body["identifier"]] = order
        return Reply(201, order, delay_s=post_delay_s)

    @server.route("GET", "/v1/order")
    def get(req):
        claims(req, req.raw_query)
        found = orders.get(req.arg("identifier"))
        if found is None:
            return Reply(404, {"error": {"name": "order_not_found", "message": "없음"}})
        return Reply(200, dict(found, trades=[]))

    return orders


def test_upbit_order_whose_response_times_out_is_found_by_client_id_not_resent(server):
    _upbit_exchange(server, post_delay_s=1.5)
    adapter = get_adapter("upbit", rest_url=server.url, api_key="ak", api_secret="secret",
                          timeout=(1.0, 0.5))
    order = adapter.place_order(OrderRequest("KRW-BTC", "buy", "limit", Decimal("0.0005"),
                                             Decimal("10000400"), "cid-1"))
    assert order.client_order_id == "cid-1" and order.status == OPEN
    assert order.price == Decimal("10000000")  # rounded down to the 1,000 KRW tick
    assert len(server.hits("POST", "/v1/orders")) == 1


def test_order_never_found_after_a_timeout_is_reported_unknown_not_resent(server):
    _upbit_exchange(server, post_delay_s=1.0, known=False)
    adapter = get_adapter("upbit", rest_url=server.url, api_key="ak", api_secret="secret",
                          timeout=(1.0, 0.3), lookup_attempts=2, lookup_delay_s=0.05)
    with pytest.raises(OrderStatusUnknown) as err:
        adapter.place_order(OrderRequest("KRW-BTC", "buy", "limit", Decimal("0.0005"),
                                         Decimal("10000000"), "cid-2"))
    assert err.value.client_order_id == "cid-2"
    assert len(server.hits("POST", "/v1/orders")) == 1
    assert len(server.hits("GET", "/v1/order")) == 2


def test_binance_futures_order_answered_502_is_looked_up_by_client_id(server):
    futures_symbol = {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC",
                      "quoteAsset": "USDT", "contractType": "PERPETUAL", "filters": [
                          {"filterType": "PRICE_FILTER", "minPrice": "0.1", "tickSize": "0.1"},
                          {"filterType": "LOT_SIZE", "minQty": "0.001", "stepSize": "0.001"},
                          {"filterType": "MIN_NOTIONAL", "notional": "5"}]}
    stored = {}

    def verify(req):
        query, _, sig = req.raw_query.rpartition("&signature=")
        assert binance_signature("secret", query) == sig
        assert req.headers["X-MBX-APIKEY"] == "ak"

    @server.route("GET", "/fapi/v1/exchangeInfo")
    def info(req):
        return Reply(200, {"symbols": [futures_symbol]})

    @server.route("POST", "/fapi/v1/order")
    def place(req):
        verify(req)
        assert req.arg("reduceOnly") == "true"
        stored[req.arg("newClientOrderId")] = {
            "orderId": 4087922044, "symbol": "BTCUSDT", "status": "NEW",
            "clientOrderId": req.arg("newClientOrderId"), "price": req.arg("price"),
            "avgPrice": "0.00", "origQty": req.arg("quantity"), "executedQty": "0",
            "cumQuote": "0", "type": "LIMIT", "side": "SELL", "reduceOnly": True}
        return Reply(502, text="Bad Gateway")

    @server.route("GET", "/fapi/v1/order")
    def query(req):
        verify(req)
        return Reply(200, stored[req.arg("origClientOrderId")])

    adapter = get_adapter("binance_futures", rest_url=server.url, api_key="ak",
                          api_secret="secret")
    order = adapter.place_order(OrderRequest("BTCUSDT", "sell", "limit", Decimal("0.001"),
                                             Decimal("1000.04"), "fut-1", reduce_only=True))
    assert order.exchange_order_id == "4087922044" and order.reduce_only
    assert order.price == Decimal("1000.1")  # sell rounds up to the 0.1 tick
    assert len(server.hits("POST", "/fapi/v1/order")) == 1
