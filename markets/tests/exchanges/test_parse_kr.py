"""Upbit/Bithumb parsers on the recorded and documented payloads."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from markets.exchanges import kr_parse
from markets.exchanges.base import CANCELLED, FILLED, OPEN, PARTIALLY_FILLED
from markets.exchanges.errors import AuthenticationError

from .conftest import load


def _body(name: str, index: int = 0):
    return load(name)[index]["response"]["body"]


def test_upbit_minute_candle_parses_open_time_from_utc_field():
    (candle,) = kr_parse.parse_candles(_body("upbit_candles_minutes"))
    assert candle.open_time_ms == 1773240000000  # 2026-03-11T14:40:00Z
    assert (candle.open, candle.high, candle.low, candle.close) == (
        103600000.0, 103600000.0, 103425000.0, 103460000.0)
    assert candle.volume == pytest.approx(1.5933512)
    assert candle.quote_volume == pytest.approx(164899503.14206)


def test_upbit_candles_newest_first_come_back_oldest_first_even_with_string_numbers():
    candles = kr_parse.parse_candles(load("upbit_candles_minutes_raw_multi"))
    assert [c.open_time_ms for c in candles] == sorted(c.open_time_ms for c in candles)
    assert candles[-1].close == 46945000.0
    assert candles[1].open_time_ms - candles[0].open_time_ms == 60_000


def test_upbit_day_candle_opens_at_utc_midnight():
    (candle,) = kr_parse.parse_candles(_body("upbit_candles_days"))
    assert candle.open_time_ms % 86_400_000 == 0


def test_bithumb_month_candle_opens_at_kst_midnight():
    candles = kr_parse.parse_candles(load("bithumb_candles_months"))
    assert candles[-1].open_time_ms % 86_400_000 == 15 * 3_600_000
    assert [c.open_time_ms for c in candles] == sorted(c.open_time_ms for c in candles)


def test_upbit_ws_trade_becomes_a_taker_sell():
    (trade,) = kr_parse.parse_ws_public(json.dumps(load("upbit_ws_trade")), "upbit")
    assert trade.side == "sell" and trade.symbol == "KRW-BTC"
    assert trade.price == 37625 and trade.quantity == pytest.approx(8.428e-05)
    assert trade.ts_ms == 1696585056846
    assert trade.trade_id == "1696585056846:37625:8.428e-05:ASK"  # frame has no sequential_id


def test_bithumb_ws_trade_keeps_its_sequential_id_as_trade_id():
    (trade,) = kr_parse.parse_ws_public(json.dumps(load("bithumb_ws_trade")), "bithumb")
    assert trade.trade_id == "921046844841158138"
    assert trade.ts_ms == 1785397735004


def test_status_up_and_other_types_yield_nothing():
    assert kr_parse.parse_ws_public('{"status":"UP"}', "upbit") == []
    assert kr_parse.parse_ws_public(json.dumps(load("upbit_ws_orderbook")), "upbit") == []


def test_invalid_auth_frame_raises_authentication_error():
    with pytest.raises(AuthenticationError):
        kr_parse.parse_ws_private(json.dumps(load("upbit_ws_subscribe")["error_frame_example"]),
                                  "upbit")


def test_wrong_format_frame_is_a_bad_message():
    with pytest.raises(ValueError, match="WRONG_FORMAT"):
        kr_parse.parse_ws_public('{"error":{"name":"WRONG_FORMAT","message":"x"}}', "bithumb")


def test_upbit_limit_order_waiting_is_open():
    order = kr_parse.parse_order(_body("upbit_order_create_get_cancel", 1))
    assert order.status == OPEN and order.side == "buy" and order.type == "limit"
    assert order.price == Decimal("10000000") and order.quantity == Decimal("0.0005")
    assert order.exchange_order_id == "82fe9b72-eb0f-462b-8e0e-e74ad844acea"
    assert order.created_ms == 1774183342000  # 21:42:22 KST


def test_upbit_market_buy_ending_in_cancel_with_executions_is_filled():
    order = kr_parse.parse_order(_body("upbit_order_market_buy_sell", 1))
    assert order.status == FILLED
    assert order.filled_quantity == Decimal("0.00009713")
    assert order.price is None  # ord_type=price: "price" was the KRW total
    (fill,) = order.fills
    assert fill.price == Decimal("102945000") and fill.fee == Decimal("4.999523925")
    assert fill.fee_asset == "KRW"
    assert order.average_price == Decimal("9999.04785") / Decimal("0.00009713")


def test_upbit_market_sell_done_is_filled():
    order = kr_parse.parse_order(_body("upbit_order_market_buy_sell", 3))
    assert order.status == FILLED and order.side == "sell" and order.type == "market"


def test_upbit_cancelled_limit_order_without_fills_is_cancelled():
    closed = load("upbit_orders_closed")[0]["response"]["body"]
    cancelled = [kr_parse.parse_order(o) for o in closed if o["state"] == "cancel"]
    assert cancelled and all(o.status == CANCELLED for o in cancelled)


def test_bithumb_order_get_has_fills_and_client_id_key():
    order = kr_parse.parse_order(load("bithumb_order_get"))
    assert order.status == FILLED and order.exchange_order_id == "C0101000000001799231"
    assert order.fills[0].trade_id == "C0101000000001713006"
    assert order.fills[0].fee == Decimal("207500")
    assert order.average_price == Decimal("83000000")


def test_balances_are_decimal():
    (krw,) = kr_parse.parse_balances(_body("upbit_accounts"))
    assert krw.free == Decimal("50000.47088291") and krw.locked == Decimal(0)
    btc = kr_parse.parse_balances(load("bithumb_accounts"))[1]
    assert btc.asset == "BTC" and btc.free == Decimal("124.45272908")


def test_upbit_my_order_trade_frame_carries_the_fill():
    (event,) = kr_parse.parse_ws_private(json.dumps(load("upbit_ws_myorder")), "upbit")
    assert event.fill.trade_id == "00000000-0000-0000-0000-000000000002"
    assert event.fill.fee == Decimal("500.0") and event.order.status == FILLED
    assert event.fill.is_maker is False


def test_bithumb_my_order_v2_uses_new_field_names():
    (event,) = kr_parse.parse_ws_private(json.dumps(load("bithumb_ws_myorder_v2")), "bithumb")
    assert event.order.exchange_order_id == "C0101000000001818113"
    assert event.order.client_order_id == "my-client-order-id-1"
    assert event.order.status == PARTIALLY_FILLED and event.order.side == "buy"
    assert event.fill.quantity == Decimal("0.4697") and event.fill.price == Decimal("1927000")


def test_my_asset_frames_become_balance_updates():
    (upbit,) = kr_parse.parse_ws_private(json.dumps(load("upbit_ws_myasset")), "upbit")
    assert [b.asset for b in upbit.balances] == ["KRW", "BTC"]
    (bithumb,) = kr_parse.parse_ws_private(json.dumps(load("bithumb_ws_myasset")), "bithumb")
    assert bithumb.balances[0].locked == Decimal("3824127.3")


def test_markets_become_symbols_with_krw_minimum():
    symbols = kr_parse.parse_markets(load("bithumb_market_all"),
                                     min_totals={"KRW": Decimal(5000)}, ticks={"KRW": None})
    assert symbols[0].code == "KRW-BTC" and symbols[0].base == "BTC"
    assert symbols[0].quote == "KRW" and symbols[0].min_notional == Decimal(5000)


def test_nan_trade_price_is_rejected():
    msg = dict(load("upbit_ws_trade"), trade_price=float("nan"))
    with pytest.raises(ValueError):
        kr_parse.parse_trade(msg)


def test_insane_rest_candles_are_dropped():
    rows = _body("upbit_candles_minutes")
    broken = dict(rows[0], candle_date_time_utc="2026-03-11T14:39:00", low_price=2e9)
    assert [c.open_time_ms for c in kr_parse.parse_candles([*rows, broken])] == [1773240000000]
