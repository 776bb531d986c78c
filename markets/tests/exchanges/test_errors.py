"""Venue error payloads map onto errors named for the caller's reaction."""

from __future__ import annotations

import pytest

from markets.exchanges.errors import (
    AuthenticationError,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    TemporaryExchangeError,
    map_binance_error,
    map_kr_error,
)

from .conftest import load


def _upbit(name):
    for example in load("upbit_errors")["examples"]:
        body = example.get("body")
        if body and body["error"]["name"] == name:
            return example["status"], body
    raise LookupError(name)


def test_upbit_bad_key_is_an_authentication_error_with_the_venue_message():
    status, body = _upbit("jwt_verification")
    err = map_kr_error("upbit", status, body)
    assert isinstance(err, AuthenticationError)
    assert err.venue_message == "잘못된 API 키입니다." and err.status == 401


def test_upbit_wrong_tick_on_an_order_is_rejected():
    status, body = _upbit("invalid_price_bid")
    assert isinstance(map_kr_error("upbit", status, body, is_order=True), OrderRejected)


def test_upbit_swapped_name_and_message_still_reads_the_name():
    example = load("upbit_errors")["examples"][2]
    err = map_kr_error("upbit", example["status"], example["body"], is_order=True)
    assert err.code == "validation_error" and isinstance(err, OrderRejected)


def test_upbit_order_not_found_and_maintenance():
    assert isinstance(map_kr_error("upbit", *_upbit("order_not_found")), OrderNotFound)
    assert isinstance(map_kr_error("upbit", *_upbit("market_offline")), ExchangeUnavailable)


def test_upbit_plain_text_429_is_rate_limited():
    err = map_kr_error("upbit", 429, None, text="Too many API requests.")
    assert isinstance(err, RateLimited) and err.retry_after == 1.0


def test_insufficient_funds_names_map_to_insufficient_funds():
    body = {"error": {"name": "insufficient_funds_bid", "message": "not enough KRW"}}
    assert isinstance(map_kr_error("upbit", 400, body, is_order=True), InsufficientFunds)


def test_bithumb_error_with_http_200_is_still_an_error():
    example = load("bithumb_errors")["examples"][1]
    err = map_kr_error("bithumb", example["status"], example["body"])
    assert isinstance(err, ExchangeError) and err.code == 404
    assert isinstance(map_kr_error("bithumb", 401, load("bithumb_errors")["examples"][0]["body"]),
                      AuthenticationError)


def test_bithumb_order_not_ready_is_temporary():
    body = {"error": {"name": "order_not_ready", "message": "retry later"}}
    assert isinstance(map_kr_error("bithumb", 422, body), TemporaryExchangeError)


@pytest.mark.parametrize("status,code,msg,expected", [
    (400, -1021, "Timestamp for this request is outside of the recvWindow.",
     TemporaryExchangeError),
    (400, -1022, "Signature for this request is not valid.", AuthenticationError),
    (401, -2015, "Invalid API-key, IP, or permissions for action.", AuthenticationError),
    (429, -1003, "Too much request weight used", RateLimited),
    (400, -1013, "Filter failure: LOT_SIZE", OrderRejected),
    (400, -2010, "Account has insufficient balance for requested action.", InsufficientFunds),
    (400, -2010, "Duplicate order sent.", OrderRejected),
    (400, -2013, "Order does not exist.", OrderNotFound),
    (503, -1008, "Server is currently overloaded", ExchangeUnavailable),
    (400, -2019, "Margin is insufficient.", InsufficientFunds),
    (400, -4164, "Order's notional must be no smaller than 5", OrderRejected),
])
def test_binance_codes_map_by_reaction(status, code, msg, expected):
    err = map_binance_error("binance_spot", status, {"code": code, "msg": msg}, is_order=True,
                            retry_after=3.0)
    assert type(err) is expected
    assert err.code == code and err.venue_message == msg


def test_binance_418_carries_retry_after():
    err = map_binance_error("binance_spot", 418, {"code": -1003, "msg": "banned"},
                            retry_after=120.0)
    assert isinstance(err, RateLimited) and err.retry_after == 120.0
