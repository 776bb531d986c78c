"""Binance spot/futures parsers on the documented payloads."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from markets.exchanges import binance_parse as bp
from markets.exchanges.base import (
    CANCELLED,
    FILLED,
    OPEN,
    BalanceUpdate,
    PositionUpdate,
    StreamNotice,
)
from markets.exchanges.errors import AuthenticationError, StreamRestart

from .conftest import PAYLOADS, load


def test_spot_klines_parse_all_columns_needed():
    (candle,) = bp.parse_klines(load("binance_spot_klines"))
    assert candle.open_time_ms == 1499040000000
    assert (candle.open, candle.high, candle.low, candle.close) == (
        0.0163479, 0.8, 0.015758, 0.015771)
    assert candle.volume == pytest.approx(148976.11427815)
    assert candle.quote_volume == pytest.approx(2434.19055334)


def test_futures_klines_parse():
    (candle,) = bp.parse_klines(load("binance_futures_klines"))
    assert candle.open_time_ms == 1499040000000


def test_trade_with_buyer_maker_is_a_taker_sell():
    (trade,) = bp.parse_ws_market(json.dumps(load("binance_spot_trade_ws")))
    assert trade.side == "sell" and trade.trade_id == "12345" and trade.symbol == "BNBBTC"
    assert trade.price == 0.001 and trade.quantity == 100.0


def test_agg_trade_uses_the_aggregate_id():
    (trade,) = bp.parse_ws_market(json.dumps(load("binance_spot_agg_trade_ws")))
    assert trade.trade_id == "12345" and trade.ts_ms == 1672515782136


def test_combined_kline_frame_is_unwrapped_and_open():
    frame = load("binance_spot_kline_ws_combined")
    # Binance's documented example has low 0.0015 above open 0.001: the candle contract
    # refuses it (a bad frame, skipped by the stream), naming what is wrong.
    with pytest.raises(ValueError, match=r"kline BNBBTC 1m 1672515780000: low 0.0015 is above "
                                         r"open 0.001 or close 0.002"):
        bp.parse_ws_market(json.dumps(frame))
    frame["data"]["k"]["l"] = "0.0010"
    (kline,) = bp.parse_ws_market(json.dumps(frame))
    assert kline.closed is False and kline.timeframe == "1m"
    assert kline.open_time_ms == 1672515780000 and kline.quote_volume == 1.0


def test_futures_kline_closed_flag():
    msg = load("binance_futures_kline_ws")
    msg["k"]["x"] = True
    msg["k"]["l"] = "0.0010"  # the documented example's low is above its open
    (kline,) = bp.parse_ws_market(json.dumps(msg))
    assert kline.closed is True and kline.symbol == "BTCUSDT"


def test_subscribe_reply_yields_nothing_and_server_shutdown_restarts():
    sub = load("binance_ws_subscribe")
    assert bp.parse_ws_market(json.dumps(sub["subscribe_response"])) == []
    with pytest.raises(StreamRestart):
        bp.parse_ws_market(json.dumps(sub["server_shutdown_combined"]))


def test_exchange_info_filters_become_symbol_rules():
    f = load("binance_spot_exchange_info_filters")
    symbol = {"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC",
              "isSpotTradingAllowed": True,
              "filters": [f["PRICE_FILTER"], f["LOT_SIZE"], f["NOTIONAL"]]}
    (info,) = bp.parse_exchange_info({"symbols": [symbol]})
    assert info.tick_size == Decimal("0.000001") and info.step_size == Decimal("0.001")
    assert info.min_qty == Decimal("0.001") and info.min_notional == Decimal("10")


def test_futures_min_notional_uses_the_notional_key():
    symbol = {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
              "contractType": "PERPETUAL", "filters": [
                  {"filterType": "PRICE_FILTER", "minPrice": "1", "maxPrice": "1000000",
                   "tickSize": "0.1"},
                  {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "100",
                   "stepSize": "0.001"},
                  {"filterType": "MIN_NOTIONAL", "notional": "5"}]}
    (info,) = bp.parse_exchange_info({"symbols": [symbol]}, futures=True, max_leverage=125)
    assert info.market_type == "perpetual" and info.min_notional == Decimal(5)
    assert info.max_leverage == 125


def test_full_order_response_carries_fills_and_average():
    order = bp.parse_order(load("binance_spot_order_new")["FULL"])
    assert order.status == FILLED and len(order.fills) == 5
    assert order.fee == Decimal("39.98300000")
    assert order.average_price == Decimal(1)  # cummulativeQuoteQty 10 / executedQty 10


def test_cancel_response_reports_our_client_id():
    order = bp.parse_order(load("binance_spot_order_cancel"))
    assert order.client_order_id == "myOrder1" and order.status == CANCELLED


def test_query_order_new_is_open():
    order = bp.parse_order(load("binance_spot_order_query"))
    assert order.status == OPEN and order.price == Decimal("0.1")


def test_futures_order_response():
    order = bp.parse_order(load("binance_futures_create_order_response"), fills=[])
    assert order.status == OPEN and order.side == "sell"
    assert order.quantity == Decimal("0.200") and order.average_price is None


def test_my_trades_become_fills():
    (fill,) = bp.parse_my_trades(load("binance_spot_my_trades"))
    assert fill.trade_id == "28457" and fill.fee_asset == "BNB" and fill.is_maker is False


def test_position_risk_signs_and_sides():
    rows = load("binance_futures_position_risk_v2")
    (flat,) = bp.parse_position_risk(rows["one_way"])
    assert flat.side == "flat" and flat.leverage == 10
    (hedge,) = bp.parse_position_risk(rows["hedge"])
    assert hedge.side == "long" and hedge.quantity == Decimal("0.001")


def test_spot_user_events_arrive_in_the_subscription_envelope():
    (update,) = bp.parse_ws_spot_user(json.dumps(load("binance_spot_execution_report")))
    assert update.order.client_order_id == "mUvoqJxFIILMdfAW5iGSOW"
    assert update.order.status == OPEN and update.fill is None
    (balances,) = bp.parse_ws_spot_user(
        json.dumps(load("binance_spot_outbound_account_position")))
    assert isinstance(balances, BalanceUpdate) and balances.balances[0].asset == "ETH"
    assert not balances.wallet_totals  # free and locked as the venue holds them


def test_spot_subscribe_reply_is_a_notice_and_hmac_logon_refusal_is_auth():
    sample = load("binance_spot_user_stream_subscribe")
    (notice,) = bp.parse_ws_spot_user(json.dumps(sample["response_captured"]))
    assert isinstance(notice, StreamNotice) and notice.kind == "subscribed"
    with pytest.raises(AuthenticationError):
        bp.parse_ws_spot_user(json.dumps(sample["hmac_session_logon_refused_captured"]))
    with pytest.raises(StreamRestart) as restart:
        bp.parse_ws_spot_user(json.dumps(sample["event_stream_terminated"]))
    assert restart.value.items[0].kind == "stream_terminated"


def _real_frames():
    raw = json.loads((PAYLOADS / "binance_futures_order_trade_update.json").read_text())
    return raw["_real_world_example_unattributed"]


def test_futures_order_trade_update_is_an_order_update():
    (update,) = bp.parse_ws_futures_user(json.dumps(load("binance_futures_order_trade_update")))
    assert update.order.client_order_id == "TEST" and update.order.status == OPEN
    (real,) = bp.parse_ws_futures_user(json.dumps(_real_frames()["frame"]))
    assert real.order.price == Decimal("2463.26") and real.fill is None


def test_futures_account_update_splits_balances_and_positions():
    balance, positions = bp.parse_ws_futures_user(
        json.dumps(_real_frames()["account_update_frame"]))
    assert isinstance(positions, PositionUpdate) and positions.reason == "ORDER"
    assert positions.positions[0].side == "short"
    assert positions.positions[0].quantity == Decimal("-0.473")
    assert balance.balances[0].asset == "USDC" and balance.balances[0].free == Decimal(291)
    assert balance.wallet_totals  # wallet balances, the held margin not given


def test_listen_key_expired_yields_a_notice_and_restarts():
    expired = load("binance_futures_listen_key")["listen_key_expired_event_captured"]
    with pytest.raises(StreamRestart) as restart:
        bp.parse_ws_futures_user(json.dumps(expired))
    assert restart.value.items[0].kind == "listen_key_expired"
    assert restart.value.items[0].ts_ms == 1785449618659


def test_nan_or_inverted_klines_are_dropped_from_rest_and_rejected_on_the_stream():
    good = load("binance_spot_klines")[0]
    nan = [good[0] + 60_000, "NaN", *good[2:]]
    inverted = [good[0] + 120_000, "1", "0.5", "2", "1", *good[5:]]
    assert [c.open_time_ms for c in bp.parse_klines([good, nan, inverted])] == [good[0]]
    event = load("binance_kline_ws")
    event["k"]["c"] = "nan"
    with pytest.raises(ValueError, match="close is nan; prices and volumes must be finite"):
        bp.parse_ws_market(json.dumps(event))
