"""Tick/step rounding and pre-send checks (Decimal only)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from markets.exchanges.base import OrderRequest, SymbolInfo
from markets.exchanges.errors import OrderRejected
from markets.exchanges.rounding import (
    BITHUMB_KRW_TICKS,
    UPBIT_KRW_TICKS,
    fmt,
    prepare_order,
    round_price,
    round_quantity,
    table_tick,
)

KRW_BTC = SymbolInfo("KRW-BTC", "BTC", "KRW", "spot", None, D("0.00000001"), None, D(5000))
BTCUSDT = SymbolInfo("BTCUSDT", "BTC", "USDT", "perpetual", D("0.1"), D("0.001"), D("0.001"),
                     D(5), 125, min_price=D("1"))


@pytest.mark.parametrize("price,tick", [
    ("2500000", "1000"), ("1000000", "1000"), ("999999", "500"), ("150000", "100"),
    ("75000", "50"), ("12345", "10"), ("7000", "5"), ("1500", "1"), ("150", "1"),
    ("50", "0.1"), ("5", "0.01"), ("0.5", "0.001"), ("0.000005", "0.00000001"),
])
def test_upbit_krw_ticks_by_band(price, tick):
    assert table_tick(D(price), UPBIT_KRW_TICKS) == D(tick)


def test_bithumb_sub_100_rows_differ_from_upbit():
    assert table_tick(D("50"), BITHUMB_KRW_TICKS) == D("0.01")
    assert table_tick(D("0.5"), BITHUMB_KRW_TICKS) == D("0.0001")


def test_buy_rounds_down_and_sell_rounds_up_on_the_krw_table():
    assert round_price(D("103460500"), KRW_BTC, side="buy", table=UPBIT_KRW_TICKS) == \
        D("103460000")
    assert round_price(D("103460500"), KRW_BTC, side="sell", table=UPBIT_KRW_TICKS) == \
        D("103461000")
    assert round_price(D("999800"), KRW_BTC, side="sell", table=UPBIT_KRW_TICKS) == D("1000000")


def test_binance_price_grid_starts_at_min_price():
    assert round_price(D("100000.17"), BTCUSDT, side="buy") == D("100000.1")
    assert round_price(D("100000.11"), BTCUSDT, side="sell") == D("100000.2")


def test_quantity_rounds_down_to_the_step():
    assert round_quantity(D("0.0019999"), BTCUSDT) == D("0.001")


def test_order_below_min_notional_is_rejected_before_sending():
    order = OrderRequest("KRW-BTC", "buy", "limit", D("0.00001"), D("100000000"), "c1")
    with pytest.raises(OrderRejected, match="below the minimum 5000 KRW"):
        prepare_order(order, KRW_BTC, table=UPBIT_KRW_TICKS, venue="upbit")


def test_reduce_only_is_exempt_from_futures_min_notional():
    order = OrderRequest("BTCUSDT", "sell", "limit", D("0.001"), D("1000"), "c2",
                         reduce_only=True)
    out = prepare_order(order, BTCUSDT, min_notional_exempt_reduce_only=True)
    assert out.quantity == D("0.001")
    with pytest.raises(OrderRejected):
        prepare_order(order, BTCUSDT, min_notional_exempt_reduce_only=False)


def test_quantity_that_rounds_to_zero_is_rejected_with_the_step():
    order = OrderRequest("BTCUSDT", "buy", "market", D("0.0004"), None, "c3")
    with pytest.raises(OrderRejected, match=r"rounds down to 0 with step 0\.001"):
        prepare_order(order, BTCUSDT)


def test_market_buy_by_quote_amount_checks_the_amount():
    order = OrderRequest("KRW-BTC", "buy", "market", None, None, "c4", quote_amount=D(4999))
    with pytest.raises(OrderRejected):
        prepare_order(order, KRW_BTC, table=UPBIT_KRW_TICKS)
    ok = prepare_order(OrderRequest("KRW-BTC", "buy", "market", None, None, "c5",
                                    quote_amount=D(10000)), KRW_BTC, table=UPBIT_KRW_TICKS)
    assert ok.quote_amount == D(10000)


def test_fmt_writes_plain_decimals():
    assert fmt(D("1E+3")) == "1000" and fmt(D("0.00100000")) == "0.001"


@given(st.decimals(min_value=D("0.0001"), max_value=D("5000000000"), places=6,
                   allow_nan=False, allow_infinity=False), st.sampled_from(["buy", "sell"]))
def test_rounded_krw_price_is_on_its_own_band_grid_and_on_the_safe_side(price, side):
    rounded = round_price(price, KRW_BTC, side=side, table=UPBIT_KRW_TICKS)
    assert rounded % table_tick(rounded, UPBIT_KRW_TICKS) == 0
    assert (rounded <= price) if side == "buy" else (rounded >= price)
    assert abs(rounded - price) < table_tick(max(price, rounded), UPBIT_KRW_TICKS)


@given(st.decimals(min_value=D("0.001"), max_value=D("1000"), places=8,
                   allow_nan=False, allow_infinity=False))
def test_rounded_quantity_is_a_step_multiple_never_above_the_input(qty):
    out = round_quantity(qty, BTCUSDT)
    assert out <= qty and out % D("0.001") == 0 and qty - out < D("0.001")
