"""Venue stops on Binance USDⓈ-M futures: the signed ``/fapi/v1/algoOrder`` requests (checked
against a local server that verifies the wire format and the HMAC signature), the parsers of the
algo order answers and of ALGO_UPDATE, and the capability that says who holds stops."""

from __future__ import annotations

from decimal import Decimal

import pytest

from markets.exchanges import binance_parse as bp
from markets.exchanges import get_adapter
from markets.exchanges.base import (
    CANCELLED,
    REJECTED,
    STOP_FINISHED,
    STOP_OPEN,
    STOP_TRIGGERED,
    StopRequest,
    StopUpdate,
)
from markets.exchanges.errors import OrderNotFound, OrderStatusUnknown

from .conftest import Reply
from .test_http_private import _binance_verify

FUTURES_INFO = {"symbols": [{
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
    "contractType": "PERPETUAL", "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.1", "tickSize": "0.1"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "stepSize": "0.001"},
        {"filterType": "MIN_NOTIONAL", "notional": "5"}]}]}

#: The documented New Algo Order answer (field list of the official connector's model).
NEW_ALGO = {
    "algoId": 2146760, "clientAlgoId": "sl-4f1c", "algoType": "CONDITIONAL",
    "orderType": "STOP_MARKET", "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH",
    "timeInForce": "GTC", "quantity": "0.012", "algoStatus": "NEW", "triggerPrice": "96500.0",
    "price": "0.0", "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
    "workingType": "CONTRACT_PRICE", "priceMatch": "NONE", "closePosition": False,
    "priceProtect": False, "reduceOnly": True, "activatePrice": "", "callbackRate": "",
    "createTime": 1750485492076, "updateTime": 1750485492076, "triggerTime": 0,
    "goodTillDate": 0,
}
#: The same stop queried after it triggered and its market order filled.
QUERIED_FINISHED = NEW_ALGO | {
    "algoStatus": "FINISHED", "actualOrderId": "4087922100", "actualPrice": "96480.3",
    "actualType": "MARKET", "actualQty": "0.012", "tpOrderType": "", "triggerTime": 1750485600000,
    "updateTime": 1750485600010,
}


def adapter(server):
    return get_adapter("binance_futures", rest_url=server.url, api_key="ak", api_secret="secret",
                       lookup_delay_s=0.0)


def info_route(server):
    @server.route("GET", "/fapi/v1/exchangeInfo")
    def info(req):
        return Reply(200, FUTURES_INFO)


def test_futures_holds_stops_and_spot_venues_do_not():
    assert get_adapter("binance_futures").capabilities.supports_venue_stops
    for key in ("binance_spot", "upbit", "bithumb"):
        venue = get_adapter(key)
        assert not venue.capabilities.supports_venue_stops
        with pytest.raises(NotImplementedError, match="exit guard"):
            venue.place_stop(StopRequest("X", "sell", "stop_loss", Decimal(1), Decimal(1), "c1"))


def test_place_stop_sends_a_signed_conditional_reduce_only_algo_order(server):
    info_route(server)
    sent = []

    @server.route("POST", "/fapi/v1/algoOrder")
    def place(req):
        _binance_verify(req)
        assert req.headers["X-MBX-APIKEY"] == "ak"
        sent.append([(k, v) for k, v in req.query if k not in ("recvWindow", "timestamp",
                                                               "signature")])
        return Reply(200, NEW_ALGO)

    stop = adapter(server).place_stop(StopRequest(
        "BTCUSDT", "sell", "stop_loss", Decimal("96500.0"), Decimal("0.0125"), "sl-4f1c"))
    assert sent == [[
        ("algoType", "CONDITIONAL"), ("symbol", "BTCUSDT"), ("side", "SELL"),
        ("type", "STOP_MARKET"), ("quantity", "0.012"), ("triggerPrice", "96500"),
        ("workingType", "CONTRACT_PRICE"), ("reduceOnly", "true"), ("clientAlgoId", "sl-4f1c"),
    ]]
    assert stop.status == STOP_OPEN and stop.stop_id == "2146760" and stop.kind == "stop_loss"
    assert stop.trigger_price == Decimal("96500.0") and stop.quantity == Decimal("0.012")
    assert stop.order_id == "" and not stop.is_final


def test_take_profit_type_and_off_tick_trigger(server):
    info_route(server)

    @server.route("POST", "/fapi/v1/algoOrder")
    def place(req):
        _binance_verify(req)
        assert req.arg("type") == "TAKE_PROFIT_MARKET" and req.arg("side") == "BUY"
        return Reply(200, NEW_ALGO | {"orderType": "TAKE_PROFIT_MARKET", "side": "BUY"})

    venue = adapter(server)
    stop = venue.place_stop(StopRequest("BTCUSDT", "buy", "take_profit", Decimal("90000.1"),
                                        Decimal("0.012"), "tp-1"))
    assert stop.kind == "take_profit" and stop.side == "buy"
    with pytest.raises(ValueError, match="tick grid"):
        venue.place_stop(StopRequest("BTCUSDT", "buy", "take_profit", Decimal("90000.15"),
                                     Decimal("0.012"), "tp-2"))
    with pytest.raises(ValueError, match="clientAlgoId"):
        venue.place_stop(StopRequest("BTCUSDT", "buy", "take_profit", Decimal("90000.1"),
                                     Decimal("0.012"), "bad id!"))
    assert len(server.hits("POST", "/fapi/v1/algoOrder")) == 1


def test_a_stop_whose_answer_was_lost_is_looked_up_not_resent(server):
    info_route(server)

    @server.route("POST", "/fapi/v1/algoOrder")
    def place(req):
        return Reply(503, {"code": -1001, "msg": "Internal error"})

    lookups = []

    @server.route("GET", "/fapi/v1/algoOrder")
    def fetch(req):
        _binance_verify(req)
        lookups.append(req.arg("clientAlgoId"))
        if len(lookups) == 1:
            return Reply(400, {"code": -2013, "msg": "Order does not exist."})
        return Reply(200, NEW_ALGO | {"actualOrderId": "", "actualPrice": "0"})

    stop = adapter(server).place_stop(StopRequest(
        "BTCUSDT", "sell", "stop_loss", Decimal("96500"), Decimal("0.012"), "sl-4f1c"))
    assert stop.status == STOP_OPEN and lookups == ["sl-4f1c", "sl-4f1c"]
    assert len(server.hits("POST", "/fapi/v1/algoOrder")) == 1

    lookups.clear()

    @server.route("GET", "/fapi/v1/algoOrder")
    def never(req):
        return Reply(400, {"code": -2013, "msg": "Order does not exist."})

    with pytest.raises(OrderStatusUnknown, match="not resent"):
        adapter(server).place_stop(StopRequest(
            "BTCUSDT", "sell", "stop_loss", Decimal("96500"), Decimal("0.012"), "sl-2"))
    assert len(server.hits("POST", "/fapi/v1/algoOrder")) == 2


def test_fetch_cancel_and_open_stops(server):
    @server.route("GET", "/fapi/v1/algoOrder")
    def fetch(req):
        _binance_verify(req)
        assert req.arg("clientAlgoId") == "sl-4f1c" and req.arg("symbol") is None
        return Reply(200, QUERIED_FINISHED)

    @server.route("DELETE", "/fapi/v1/algoOrder")
    def cancel(req):
        _binance_verify(req)
        if req.arg("clientAlgoId") == "gone":
            return Reply(400, {"code": -2011, "msg": "Unknown order sent."})
        return Reply(200, {"algoId": 2146761, "clientAlgoId": req.arg("clientAlgoId"),
                           "code": "200", "msg": "success"})

    @server.route("GET", "/fapi/v1/openAlgoOrders")
    def open_(req):
        _binance_verify(req)
        assert req.arg("symbol") == "BTCUSDT"
        return Reply(200, [NEW_ALGO | {"actualOrderId": "", "actualPrice": "0"}])

    venue = adapter(server)
    stop = venue.fetch_stop("BTCUSDT", "sl-4f1c")
    assert stop.status == STOP_FINISHED and stop.is_final
    assert stop.order_id == "4087922100" and stop.filled_quantity == Decimal("0.012")
    assert stop.average_price == Decimal("96480.3")
    cancelled = venue.cancel_stop("BTCUSDT", "tp-4f1c")
    assert cancelled.status == CANCELLED and cancelled.stop_id == "2146761"
    assert cancelled.client_id == "tp-4f1c"
    with pytest.raises(OrderNotFound):
        venue.cancel_stop("BTCUSDT", "gone")
    (open_stop,) = venue.open_stops("BTCUSDT")
    assert open_stop.status == STOP_OPEN and open_stop.order_id == ""


@pytest.mark.parametrize("wire, status", [
    ("NEW", STOP_OPEN), ("TRIGGERING", STOP_TRIGGERED), ("TRIGGERED", STOP_TRIGGERED),
    ("FINISHED", STOP_FINISHED), ("CANCELED", CANCELLED), ("REJECTED", REJECTED),
    ("EXPIRED", "expired"),
])
def test_algo_statuses(wire, status):
    assert bp.parse_algo_order(NEW_ALGO | {"algoStatus": wire}).status == status


def test_unknown_algo_status_is_refused():
    with pytest.raises(ValueError, match="unknown algo order status"):
        bp.parse_algo_order(NEW_ALGO | {"algoStatus": "PAUSED"})


def test_algo_update_on_the_user_stream():
    frame = {"e": "ALGO_UPDATE", "T": 1750515742297, "E": 1750515742303, "o": {
        "caid": "Q5xaq5EGKgXXa0fD7fs0Ip", "aid": 2148719, "at": "CONDITIONAL",
        "o": "TAKE_PROFIT_MARKET", "s": "BNBUSDT", "S": "SELL", "ps": "BOTH", "f": "GTC",
        "q": "0.01", "X": "FINISHED", "ai": "5570384", "ap": "750.10", "aq": "0.01",
        "act": "MARKET"}}
    (event,) = bp.parse_ws_futures_user(frame)
    assert isinstance(event, StopUpdate) and event.ts_ms == 1750515742303
    stop = event.stop
    assert stop.client_id == "Q5xaq5EGKgXXa0fD7fs0Ip" and stop.stop_id == "2148719"
    assert stop.kind == "take_profit" and stop.status == STOP_FINISHED
    assert stop.order_id == "5570384" and stop.average_price == Decimal("750.10")
    assert stop.filled_quantity == Decimal("0.01") and stop.trigger_price is None
