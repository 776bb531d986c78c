"""Crash recovery of paper orders: an order saved ``new`` whose process died before the paper
fill is settled by reconciliation once older than the grace period: filled exactly as the paper
broker would have filled it when its price is known (a signal's), cancelled with the reason
and its funds released when not, and never settled twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone

from markets.models import Balance
from orders import recovery, services, tasks
from orders.brokers import broker_for
from orders.models import Fill, Order, Position
from orders.services import ledger
from orders.tests.conftest import fund
from strategies.models import Signal

PRICE = Decimal("100000000")
AT_MS = 1_767_225_660_000


@pytest.fixture
def twin(trader, make_account, make_config):
    """Two paper accounts with the same money and the same config."""

    def make(label):
        account = make_account(trader, label=label, quote_asset="KRW")
        fund(account, "KRW", "1000000")
        return account, make_config(account, name=label)

    return make("normal"), make("crashed")


def signal_for(config, price=PRICE):
    return Signal.objects.create(
        config=config, symbol=config.symbol, timeframe="1m", action="enter_long",
        bar_time=datetime(2026, 1, 1, 0, 0, tzinfo=UTC), price=price,
    )


def age(order, seconds):
    Order.objects.filter(pk=order.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )


def book(account):
    return sorted(Balance.objects.filter(account=account).values_list("asset", "free", "locked"))


def test_a_signal_order_left_new_fills_as_the_paper_broker_would_have(twin):
    (normal, normal_config), (crashed, crashed_config) = twin
    services.execute_signal(signal_for(normal_config), at_ms=AT_MS)
    # The other process saved its entry, then died before handing it to the paper broker.
    outcome = services.execute_signal(signal_for(crashed_config), at_ms=AT_MS, defer_send=True)
    (pending_id,) = outcome.orders
    pending = Order.objects.get(pk=pending_id)
    assert pending.status == "new" and Balance.objects.get(account=crashed, asset="KRW").locked > 0
    age(pending, 61)

    report = recovery.settle_stale_paper_orders()

    assert report.filled == [pending.pk] and not report.cancelled and report.errors == 0
    recovered = Order.objects.get(pk=pending.pk)
    expected = Order.objects.get(account=normal)
    assert recovered.status == expected.status == "filled"
    assert (recovered.average_price, recovered.filled_quantity, recovered.fee) == (
        expected.average_price, expected.filled_quantity, expected.fee)
    assert recovered.fills.get().ts == expected.fills.get().ts  # filled at the decision time
    mine = Position.objects.get(account=crashed, closed_at__isnull=True)
    theirs = Position.objects.get(account=normal, closed_at__isnull=True)
    assert (mine.entry_price, mine.quantity, mine.stop_price, mine.realized_pnl) == (
        theirs.entry_price, theirs.quantity, theirs.stop_price, theirs.realized_pnl)
    assert book(crashed) == book(normal)

    # Never twice: another run, or the slow process finally sending it, adds nothing.
    again = recovery.settle_stale_paper_orders()
    assert not (again.filled or again.resting or again.cancelled)
    late = services.send_order(recovered, broker_for(crashed), last_price=PRICE,
                               ts_ms=AT_MS)
    assert late.status == "filled" and Fill.objects.filter(order=recovered).count() == 1
    assert Position.objects.get(account=crashed, closed_at__isnull=True).quantity == mine.quantity
    assert book(crashed) == book(normal)


def test_an_order_inside_the_grace_period_is_left_to_its_process(twin):
    _, (_, config) = twin
    outcome = services.execute_signal(signal_for(config), at_ms=AT_MS, defer_send=True)
    age(Order.objects.get(pk=outcome.orders[0]), 10)
    report = recovery.settle_stale_paper_orders()
    assert not (report.filled or report.cancelled)
    assert Order.objects.get(pk=outcome.orders[0]).status == "new"


def test_a_limit_entry_that_the_price_does_not_cross_rests(twin, settings):
    _, (crashed, config) = twin
    outcome = services.execute_signal(signal_for(config), at_ms=AT_MS, defer_send=True)
    order = Order.objects.get(pk=outcome.orders[0])
    assert order.type == "limit" and order.price > PRICE
    # Reprice the saved order below the signal's price: the paper broker would have rested it.
    Order.objects.filter(pk=order.pk).update(price=PRICE - 1000)
    age(order, 120)
    report = recovery.settle_stale_paper_orders()
    assert report.resting == [order.pk]
    assert Order.objects.get(pk=order.pk).status == "open"
    assert not Position.objects.filter(account=crashed).exists()


def test_an_order_without_a_known_price_is_cancelled_and_its_funds_released(paper, symbol,
                                                                             make_config):
    config = make_config(paper)
    services.execute_signal(signal_for(config), at_ms=AT_MS)
    position = Position.objects.get(account=paper, closed_at__isnull=True)
    before = book(paper)
    # The exit guard's close was saved, then the process died: its trigger price is not
    # recorded on the order.
    close = ledger._new_order(
        paper, symbol, side="sell", quantity=position.quantity, price=None,
        reason="stop_loss", config=config, reduce_only=True,
    )
    manual = ledger._new_order(
        paper, symbol, side="buy", quantity=Decimal("0.0001"), price=None, reason="manual",
        reserve=Decimal("500"), reserve_asset="KRW",
    )
    assert book(paper) != before
    age(close, 300)
    age(manual, 300)

    report = recovery.settle_stale_paper_orders()

    assert sorted(report.cancelled) == sorted([close.pk, manual.pk]) and not report.filled
    for row in Order.objects.filter(pk__in=[close.pk, manual.pk]):
        assert row.status == "cancelled" and row.reject_reason == recovery.INTERRUPTED
        assert not row.fills.exists()
    assert book(paper) == before  # the manual order's reserve is free again
    # The position is still open; the exit guard closes it on its next price.
    assert Position.objects.get(pk=position.pk).closed_at is None
    assert not services.close_position(position, "stop_loss", last_price=PRICE).reject_reason
    assert Position.objects.get(pk=position.pk).closed_at is not None


def test_reconciliation_runs_recovery_and_a_worker_start_asks_for_it(twin):
    _, (_, config) = twin
    outcome = services.execute_signal(signal_for(config), at_ms=AT_MS, defer_send=True)
    age(Order.objects.get(pk=outcome.orders[0]), 61)
    assert tasks.reconcile_all()["paper_filled"] == 1
    assert tasks.reconcile_all()["paper_filled"] == 0

    sent = []
    queues = {"trader": SimpleNamespace(name="trader")}
    app = SimpleNamespace(
        amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=queues)),
        send_task=lambda name, **kw: sent.append((name, kw)),
    )
    tasks.reconcile_at_worker_start(sender=SimpleNamespace(app=app))
    assert sent == [("orders.tasks.reconcile", {"queue": "trader"})]
    queues.clear()
    queues["collector"] = SimpleNamespace(name="collector")
    tasks.reconcile_at_worker_start(sender=SimpleNamespace(app=app))
    assert len(sent) == 1  # a worker without the trader queue does not trade
