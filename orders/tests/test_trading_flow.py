"""End to end on a real Redis: closed bar -> evaluate -> signal -> paper order -> position ->
stop-loss on a later price -> closed, with the rows and the messages the owner receives."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from markets.models import Balance
from orders import tasks
from orders.models import Fill, Order, Position
from orders.tests.conftest import MINUTE, T0, store
from strategies.models import Signal

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0


def free(account, asset):
    row = Balance.objects.filter(account=account, asset=asset).first()
    return row.free if row else Decimal(0)


@pytest.mark.redis
def test_signal_becomes_a_paper_position_that_its_stop_loss_closes(
    symbol, paper, make_config, listen
):
    config = make_config(paper, stop_loss_pct=Decimal("2"))
    inbox = listen(paper.owner_id)
    store(symbol, [PRICE] * 4)

    report = tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)

    assert report["signals_created"] == 1 and report["executions"] == {"ordered": 1}
    signal = Signal.objects.get(config=config)
    assert signal.action == "enter_long"
    order = Order.objects.get(signal=signal)
    # Limit 0.15% above the close on Upbit's 1,000 KRW tick; filled at close + 5 bps slippage.
    assert order.type == "limit" and order.price == Decimal("50075000")
    assert order.status == "filled" and order.reason == "entry"
    fill = Fill.objects.get(order=order)
    assert fill.price == Decimal("50025000")
    assert fill.fee == (fill.quantity * fill.price * Decimal("0.0005")).quantize(Decimal("1e-12"))
    assert fill.ts == datetime.fromtimestamp((T0 + 4 * MINUTE) / 1000, tz=UTC)
    position = Position.objects.get(account=paper)
    assert position.side == "long" and position.quantity == fill.quantity
    assert position.entry_price == fill.price and position.closed_at is None
    assert position.stop_price == Decimal("49024500")  # 2% under the entry
    # The paper book: KRW paid (notional + fee), BTC received, no reservation left.
    assert free(paper, "BTC") == fill.quantity
    assert free(paper, "KRW") == Decimal("1000000") - fill.quantity * fill.price - fill.fee
    assert Balance.objects.get(account=paper, asset="KRW").locked == 0

    # Above the stop: nothing; through it: closed at the price (a gap) minus slippage.
    assert tasks.exit_guard("sim", "KRW-BTC", 49_500_000.0, T0 + 5 * MINUTE)["closed"] == 0
    result = tasks.exit_guard("sim", "KRW-BTC", 48_000_000.0, T0 + 6 * MINUTE)
    assert result["closed"] == 1 and result["reasons"] == ["stop_loss"]

    position.refresh_from_db()
    assert position.closed_at == datetime.fromtimestamp((T0 + 6 * MINUTE) / 1000, tz=UTC)
    assert position.close_reason == "stop_loss" and position.quantity == 0
    close = Order.objects.get(reason="stop_loss")
    assert close.side == "sell" and close.type == "market" and close.reduce_only
    assert close.status == "filled" and close.quantity == fill.quantity
    exit_fill = Fill.objects.get(order=close)
    assert exit_fill.price == Decimal("47976000")  # 48,000,000 - 5 bps
    expected_pnl = (
        fill.quantity * (exit_fill.price - fill.price) - fill.fee - exit_fill.fee
    )
    assert position.realized_pnl == expected_pnl
    assert free(paper, "BTC") == 0
    assert free(paper, "KRW") == Decimal("1000000") + expected_pnl
    messages = inbox.drain()  # once: channels_redis binds a receive queue to one event loop
    kinds = [m["type"] for m in messages]
    assert kinds.count("signal.created") == 1
    assert {"order.updated", "fill.created", "position.updated"} <= set(kinds)
    entry_messages = [m for m in messages if m.get("order") == order.pk or m.get("id") == order.pk]
    assert any(m["type"] == "order.updated" and m["status"] == "filled" for m in entry_messages)
    created = next(m for m in messages if m["type"] == "signal.created")
    assert created["execution"]["status"] == "ordered" and created["execution"]["orders"]
    closed = [m for m in messages if m["type"] == "position.updated"]
    assert closed and closed[-1]["close_reason"] == "stop_loss" and closed[-1]["id"] == position.pk
    assert any(m["type"] == "fill.created" and m["order"] == close.pk for m in messages)
    assert all(m["symbol"] == "sim:KRW-BTC" for m in messages)


def test_evaluating_a_bar_twice_orders_once(symbol, paper, make_config):
    config = make_config(paper)
    store(symbol, [PRICE] * 4)
    first = tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    second = tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    assert first["signals_created"] == 1 and second["signals_created"] == 0
    assert second["executions"] == {}
    assert Signal.objects.filter(config=config).count() == 1
    assert Order.objects.count() == 1 and Position.objects.count() == 1


def test_exit_signal_closes_and_reverse_is_ignored_on_spot(symbol, paper, make_config):
    make_config(paper, params={"enter": 3, "exit": 5, "short": 7})
    store(symbol, [PRICE] * 4 + [PRICE * 1.01, PRICE * 1.02, PRICE, PRICE, PRICE])
    for minute in range(3, 9):
        tasks.evaluate("sim", "KRW-BTC", "1m", T0 + minute * MINUTE)
    position = Position.objects.get()
    assert position.close_reason == "signal"
    assert position.closed_at == datetime.fromtimestamp((T0 + 6 * MINUTE) / 1000, tz=UTC)
    exit_order = Order.objects.get(reason="signal")
    assert exit_order.side == "sell" and exit_order.type == "limit"
    assert exit_order.price < Decimal(str(PRICE * 1.02))  # priced 0.15% under the close
    short = Signal.objects.get(action="enter_short")
    assert short.reason["execution"] == {
        "status": "ignored", "reason": "no long position to exit", "orders": []
    }
    assert Order.objects.count() == 2
