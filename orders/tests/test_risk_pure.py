"""The pure gates and plans (no database): trading-day bounds, daily limits, minimums, and the
signal plan that mirrors the backtester's loop."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from markets.exchanges.base import OrderRequest
from orders import risk
from orders.brokers.base import Costs
from orders.brokers.paper import PaperBroker

DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC = 09:00 in Seoul
SPOT_NO_SHORT = "short selling is not available on a spot market"


def test_trading_day_follows_the_configured_time_zone():
    assert risk.day_bounds_ms(T0, "Asia/Seoul") == (T0 - 9 * 3_600_000, T0 + 15 * 3_600_000)
    assert risk.day_bounds_ms(T0, "UTC") == (T0, T0 + DAY)
    # New York on 2026-07-01 is UTC-4 (daylight saving time).
    july = 1_782_864_000_000  # 2026-07-01 00:00 UTC
    start, end = risk.day_bounds_ms(july, "America/New_York")
    assert start == july - DAY + 4 * 3_600_000 and end - start == DAY


@given(ts=st.integers(min_value=0, max_value=4_000_000_000_000))
def test_every_moment_lies_in_its_trading_day(ts):
    start, end = risk.day_bounds_ms(ts, "Asia/Seoul")
    assert start <= ts < end and end - start == DAY


@pytest.mark.parametrize(
    "equity, expected",
    [
        ("1049", None),
        ("1050", "daily target reached: equity is up 5.00% today (target 5%); no new entries"),
        ("970", "daily max loss hit: equity is down 3.00% today (limit 3%); no new entries"),
    ],
)
def test_daily_limits(equity, expected):
    reason = risk.daily_limit_reason(Decimal("1000"), Decimal(equity), Decimal("5"), Decimal("3"))
    assert (reason is None) if expected is None else reason.startswith(expected)


def test_minimum_order_reasons_name_the_fix():
    reason = risk.min_order_reason(
        Decimal("0.0001"), Decimal("40000000"), min_qty=Decimal(0), min_notional=Decimal("5000"),
        quote="KRW", symbol="upbit:KRW-BTC",
    )
    assert reason == "order value 4000.00 KRW is below the venue minimum 5000 KRW for upbit:KRW-BTC"
    assert risk.min_order_reason(
        Decimal("0.001"), Decimal("40000000"), min_qty=Decimal(0), min_notional=Decimal("5000"),
        quote="KRW", symbol="upbit:KRW-BTC",
    ) is None


@pytest.mark.parametrize(
    "action, side, can_short, expected",
    [
        ("enter_long", 0, False, risk.Plan(open_side=1)),
        ("enter_long", 1, False, risk.Plan(ignored="already long")),
        ("enter_short", 1, False, risk.Plan(close="signal")),  # spot: exit the long
        ("enter_short", 0, False, risk.Plan(ignored="no long position to exit")),
        ("enter_short", 1, True, risk.Plan(close="reverse", open_side=-1)),
        ("exit_short", -1, True, risk.Plan(close="signal")),
        ("add_long", 1, False, risk.Plan(open_side=1, add=True)),
        ("add_long", 0, False, risk.Plan(ignored="no long position to add to")),
        ("add_short", -1, False, risk.Plan(ignored=SPOT_NO_SHORT)),
    ],
)
def test_signal_plans_follow_the_backtester(action, side, can_short, expected):
    assert risk.plan_action(action, side, can_short=can_short) == expected


@given(
    last=st.decimals(min_value="0.01", max_value="1000000", places=2),
    offset=st.decimals(min_value="-0.05", max_value="0.05", places=4),
    slippage=st.floats(min_value=0, max_value=100),
    side=st.sampled_from(["buy", "sell"]),
)
def test_paper_fills_never_beyond_the_limit_and_pay_the_fee(last, offset, slippage, side):
    broker = PaperBroker(Costs(fee_rate=0.001, slippage_bps=slippage))
    limit = (last * (1 + offset)).quantize(Decimal("0.01"))
    if limit <= 0:
        return
    order = OrderRequest(symbol="X", side=side, type="limit", quantity=Decimal("2"),
                         price=limit, client_order_id="t1")
    info = broker.place(order, last_price=last, ts_ms=0)
    if info.status == "open":
        assert (side == "buy" and limit < last) or (side == "sell" and limit > last)
        return
    price = info.average_price
    assert price <= limit if side == "buy" else price >= limit
    assert info.fee == (Decimal("2") * price * Decimal("0.001")).quantize(Decimal("1e-12"))
