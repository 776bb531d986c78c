"""The exit guard on paper: take-profit, trailing stop, and perpetual futures with leverage,
isolated margin, shorts and liquidation, all through the backtester's position math."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from markets.models import Balance
from orders import exits, tasks
from orders.models import Fill, Order, Position
from orders.tests.conftest import MINUTE, T0, store
from strategies import trade_math

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0


def at(minute):
    return datetime.fromtimestamp((T0 + minute * MINUTE) / 1000, tz=UTC)


def test_take_profit_closes_at_the_target(symbol, paper, make_config):
    make_config(paper, take_profit_pct=Decimal("3"))
    store(symbol, [PRICE] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    position = Position.objects.get()
    target = position.target_price
    assert target == (position.entry_price * Decimal("1.03")).quantize(Decimal("1e-12"))
    tasks.exit_guard("sim", "KRW-BTC", float(target) - 1000, T0 + 5 * MINUTE)
    assert Position.objects.get().closed_at is None
    tasks.exit_guard("sim", "KRW-BTC", float(target) * 1.001, T0 + 6 * MINUTE)
    position.refresh_from_db()
    assert position.close_reason == "take_profit" and position.closed_at == at(6)
    assert position.realized_pnl > 0


def test_trailing_stop_follows_the_best_price_then_closes(symbol, paper, make_config):
    make_config(paper, trailing_stop_pct=Decimal("2"))
    store(symbol, [PRICE] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    for minute, price in ((5, 51_000_000.0), (6, 53_000_000.0), (7, 52_500_000.0)):
        assert tasks.exit_guard("sim", "KRW-BTC", price, T0 + minute * MINUTE)["closed"] == 0
    position = Position.objects.get()
    assert position.best_price == Decimal("53000000")
    # 2% under the best (51,940,000) is hit.
    result = tasks.exit_guard("sim", "KRW-BTC", 51_900_000.0, T0 + 8 * MINUTE)
    assert result["reasons"] == ["trailing_stop"]
    assert Position.objects.get().realized_pnl > 0


def test_a_range_uses_the_best_price_seen_before_it(symbol, paper, make_config):
    """As in the backtester: the range's own high moves the trailing stop only afterwards."""
    make_config(paper, trailing_stop_pct=Decimal("2"))
    store(symbol, [PRICE] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    position = Position.objects.get()
    report = exits.guard_range(symbol, PRICE, PRICE * 1.05, PRICE * 0.985, T0 + 5 * MINUTE)
    assert report.closed == 0  # low 1.5% under the entry's best, not 2%
    position.refresh_from_db()
    assert position.best_price == Decimal(repr(PRICE * 1.05)).quantize(Decimal("1e-12"))


def test_paper_short_with_leverage_reserves_margin_and_is_liquidated(
    perpetual, futures_account, make_config
):
    make_config(
        futures_account, name="short", symbol=perpetual, leverage=5,
        params={"enter": 0, "short": 3}, sizing_method="fixed_quote",
        sizing_params={"amount": 1000},
    )
    store(perpetual, [100_000.0] * 4)
    tasks.evaluate("sim", "BTCUSDT", "1m", T0 + 3 * MINUTE)
    position = Position.objects.get()
    fill = Fill.objects.get()
    assert position.side == "short" and position.leverage == 5
    # 1,000 USDT of margin at 5x: 5,000 USDT of notional at 99,950, down to the 0.001 step.
    assert position.quantity == Decimal("0.05")
    assert fill.price == Decimal("99950")  # a sell fills 5 bps under the close
    assert position.margin == (position.quantity * fill.price / 5).quantize(Decimal("1e-12"))
    usdt = Balance.objects.get(account=futures_account, asset="USDT")
    assert usdt.free == Decimal("10000") - position.margin - fill.fee and usdt.locked == 0
    expected_liq = trade_math.liquidation_price(
        trade_math.SHORT, 0.05, 99950.0, float(position.margin), 0.005
    )
    assert float(position.liquidation_price) == pytest.approx(expected_liq)

    margin = position.margin
    result = tasks.exit_guard("sim", "BTCUSDT", expected_liq + 10, T0 + 5 * MINUTE)
    assert result["reasons"] == ["liquidation"]
    position.refresh_from_db()
    assert position.close_reason == "liquidation"
    assert position.realized_pnl == -(margin + fill.fee) and position.margin == 0
    closing = Order.objects.get(reason="liquidation")
    assert closing.fee == 0 and closing.side == "buy" and closing.reduce_only
    # The margin is gone; nothing came back.
    assert Balance.objects.get(account=futures_account, asset="USDT").free == usdt.free


def test_paper_short_take_profit_returns_margin_plus_profit(
    perpetual, futures_account, make_config
):
    make_config(
        futures_account, name="short", symbol=perpetual, leverage=2,
        params={"enter": 0, "short": 3}, take_profit_pct=Decimal("1"),
        sizing_method="fixed_quote", sizing_params={"amount": 1000},
    )
    store(perpetual, [100_000.0] * 4)
    tasks.evaluate("sim", "BTCUSDT", "1m", T0 + 3 * MINUTE)
    position = Position.objects.get()
    tasks.exit_guard("sim", "BTCUSDT", 98_000.0, T0 + 5 * MINUTE)
    position.refresh_from_db()
    assert position.close_reason == "take_profit"
    usdt = Balance.objects.get(account=futures_account, asset="USDT").free
    # Margin back plus the short's profit, minus both fees: the realized PnL exactly.
    assert usdt == Decimal("10000") + position.realized_pnl
    assert position.realized_pnl > 0
