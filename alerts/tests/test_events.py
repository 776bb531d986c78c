"""Trading events → notification rows, in the event's transaction, deduplicated, cooled down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from alerts import events
from alerts.models import AlertRule, Notification
from markets import wire
from orders import push, services, tasks
from orders.models import Order, Position
from orders.tests.conftest import MINUTE, T0, store

PRICE = 50_000_000.0
K = AlertRule.Kind


def rule(owner, kind, **fields):
    return AlertRule.objects.create(owner=owner, name=str(kind), kind=kind, **fields)


def titles(kind):
    return [n.title for n in Notification.objects.filter(rule__kind=kind).order_by("pk")]


@pytest.mark.django_db(transaction=True)
def test_a_paper_fill_and_its_stop_loss_become_notifications(
    symbol, paper, make_config, in_app, scheduled
):
    for kind in (K.ORDER_FILLED, K.POSITION_OPENED, K.POSITION_CLOSED, K.STOP_LOSS_HIT,
                 K.TAKE_PROFIT_HIT):
        rule(paper.owner, kind)
    make_config(paper, stop_loss_pct=Decimal("2"))
    store(symbol, [PRICE] * 4)

    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    entry = Order.objects.get(reason="entry")
    assert titles(K.ORDER_FILLED) == [f"Order filled: buy {entry.quantity.normalize()} sim:KRW-BTC"]
    assert titles(K.POSITION_OPENED) == ["Position opened: long sim:KRW-BTC"]
    assert sorted(scheduled) == sorted(Notification.objects.values_list("pk", flat=True))

    tasks.exit_guard("sim", "KRW-BTC", 48_000_000.0, T0 + 6 * MINUTE)
    position = Position.objects.get(account=paper)
    pnl = format(position.realized_pnl.normalize(), "f")
    assert titles(K.POSITION_CLOSED) == [f"Position closed: long sim:KRW-BTC, PnL {pnl}"]
    assert titles(K.STOP_LOSS_HIT) == [f"Stop-loss hit: long sim:KRW-BTC, PnL {pnl}"]
    assert titles(K.TAKE_PROFIT_HIT) == []
    assert len(titles(K.ORDER_FILLED)) == 2  # the entry and the stop's close
    closed = Notification.objects.get(rule__kind=K.POSITION_CLOSED)
    assert "(stop_loss)" in closed.body and closed.payload["event"]["realized_pnl"] == pnl
    assert set(Notification.objects.values_list("channel", flat=True)) == {in_app.pk}
    assert set(Notification.objects.values_list("status", flat=True)) == {"new"}


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_event_leaves_no_notification(paper, in_app, scheduled):
    rule(paper.owner, K.ORDER_REJECTED)
    payload = {"id": 9, "symbol": "sim:KRW-BTC", "status": "rejected", "side": "buy",
               "quantity": "1", "reject_reason": "insufficient KRW"}
    with pytest.raises(RuntimeError), transaction.atomic():
        push.push_later(paper.owner_id, wire.ORDER_UPDATED, payload)
        assert Notification.objects.count() == 1  # written with the event...
        raise RuntimeError("the service failed after queuing the event")
    assert Notification.objects.count() == 0 and scheduled == []  # ...and undone with it

    with transaction.atomic():
        push.push_later(paper.owner_id, wire.ORDER_UPDATED, payload)
    row = Notification.objects.get()
    assert row.body == "Order 9 was rejected: insufficient KRW" and scheduled == [row.pk]


@pytest.mark.django_db
def test_the_same_event_twice_is_one_notification_per_channel(paper, in_app, webhook, scheduled):
    r = rule(paper.owner, K.ORDER_FILLED)
    payload = {"id": 5, "symbol": "sim:KRW-BTC", "status": "filled", "side": "sell",
               "quantity": "0.1", "filled_quantity": "0.1", "average_price": "100"}
    for _ in range(3):
        push.push_later(paper.owner_id, wire.ORDER_UPDATED, payload)
    rows = Notification.objects.filter(rule=r)
    assert sorted(rows.values_list("channel", flat=True)) == sorted([in_app.pk, webhook.pk])
    assert set(rows.values_list("dedupe_key", flat=True)) == {f"{r.pk}:order:5:filled"}


@pytest.mark.django_db
def test_a_rule_stays_quiet_during_its_cooldown(paper, in_app):
    r = rule(paper.owner, K.POSITION_OPENED, cooldown_s=600)
    now = timezone.now()

    def opened(pk, at):
        payload = {"id": pk, "symbol": "sim:KRW-BTC", "open": True, "side": "long"}
        return events.record(paper.owner_id, events.describe(wire.POSITION_UPDATED, payload),
                             now=at)

    assert len(opened(1, now)) == 1
    assert opened(2, now + timedelta(seconds=599)) == []  # quiet
    assert len(opened(3, now + timedelta(seconds=600))) == 1  # cooled down
    # Position 2's next update, after the cooldown: not notified late as "opened".
    assert opened(2, now + timedelta(seconds=1300)) == []
    r.refresh_from_db()
    assert r.last_fired_at == now + timedelta(seconds=600)
    rows = Notification.objects.filter(rule=r).order_by("pk")
    assert [(n.dedupe_key.split(":", 1)[1], n.status) for n in rows] == [
        ("position:1:opened", "new"), ("position:2:opened", "suppressed"),
        ("position:3:opened", "new"),
    ]
    assert rows[1].last_error == "not sent: the rule was in its cooldown"


@pytest.mark.django_db
def test_rules_filter_by_symbol_and_owner_and_skip_inactive(paper, in_app, symbol, make_trader,
                                                           scheduled):
    other = make_trader("bob")
    rule(paper.owner, K.POSITION_OPENED, symbol=symbol)
    rule(paper.owner, K.POSITION_OPENED, is_active=False)
    rule(other, K.POSITION_OPENED)
    for pk, sym in ((1, "sim:KRW-BTC"), (2, "sim:KRW-ETH")):
        push.push_later(paper.owner_id, wire.POSITION_UPDATED,
                        {"id": pk, "symbol": sym, "open": True, "side": "long"})
    assert list(Notification.objects.values_list("dedupe_key", "owner")) == [
        (f"{AlertRule.objects.get(symbol=symbol).pk}:position:1:opened", paper.owner_id)
    ]


@pytest.mark.django_db
def test_a_halted_account_notifies_once_per_halt(paper, in_app, scheduled):
    r = rule(paper.owner, K.ACCOUNT_HALTED)
    services.halt_account(paper, "daily max loss reached")
    services.halt_account(paper, "again")  # already halted: no event
    row = Notification.objects.get(rule=r)
    assert row.title == "Account halted: alice-paper"
    assert row.body == "Trading on alice-paper is halted: daily max loss reached."


@pytest.mark.django_db
def test_an_owner_without_rules_costs_no_query_and_new_rules_are_seen(
    paper, in_app, scheduled, django_assert_num_queries, monkeypatch
):
    filled = {"id": 7, "symbol": "sim:KRW-BTC", "status": "filled", "side": "buy",
              "quantity": "1"}
    events.invalidate()
    events.rule_kinds(paper.owner_id)  # the index, loaded once
    with django_assert_num_queries(0):
        push.push_later(paper.owner_id, wire.ORDER_UPDATED, filled)
    # A rule saved in another process (no signal here): seen once the index expires.
    AlertRule.objects.bulk_create([AlertRule(owner=paper.owner, name="f", kind=K.ORDER_FILLED)])
    push.push_later(paper.owner_id, wire.ORDER_UPDATED, filled)
    assert Notification.objects.count() == 0
    later = events._clock() + events.RULE_INDEX_S
    monkeypatch.setattr(events, "_clock", lambda: later)
    push.push_later(paper.owner_id, wire.ORDER_UPDATED, filled)
    assert Notification.objects.get().dedupe_key.endswith(":order:7:filled")
    # Saved in this process: seen at once.
    rule(paper.owner, K.ORDER_REJECTED)
    push.push_later(paper.owner_id, wire.ORDER_UPDATED, filled | {"status": "rejected"})
    assert Notification.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_signal_becomes_a_notification_with_what_was_done_about_it(
    symbol, paper, make_config, in_app, scheduled
):
    rule(paper.owner, K.SIGNAL_FIRED)
    make_config(paper, name="btc script")
    store(symbol, [PRICE] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    row = Notification.objects.get(rule__kind=K.SIGNAL_FIRED)
    assert row.title == "Signal: enter long sim:KRW-BTC 1m"
    bar = datetime.fromtimestamp((T0 + 3 * MINUTE) / 1000, UTC)
    assert row.body == (f"btc script: enter long on sim:KRW-BTC 1m, bar {bar:%Y-%m-%d %H:%M} "
                        "UTC, close 50000000 -> ordered.")
    assert scheduled == [row.pk]
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)  # the same bar again: no second
    assert Notification.objects.filter(rule__kind=K.SIGNAL_FIRED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_daily_max_loss_notifies_once_that_day_and_names_the_configs_it_stops(
    paper, make_config, in_app, scheduled
):
    from markets.models import Balance

    r = rule(paper.owner, K.DAILY_LIMIT_HIT)
    make_config(paper, name="careful", daily_max_loss_pct=Decimal("2"))
    make_config(paper, name="brave", daily_max_loss_pct=Decimal("5"))
    make_config(paper, name="unlimited")
    # Seoul's trading day 2026-03-02 runs from 2026-03-01 15:00 to 2026-03-02 15:00 UTC.
    day = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)

    def equity_at(krw: str, hours: float) -> None:
        Balance.objects.filter(account=paper, asset="KRW").update(free=Decimal(krw))
        services.snapshot_equity(now=day + timedelta(hours=hours))

    equity_at("1000000", 0)  # the day's first snapshot: the reference
    equity_at("990000", 1)  # -1 %: no limit reached
    assert not Notification.objects.exists()
    equity_at("975000", 2)  # -2.5 %: careful's 2 % limit, not brave's 5 %
    row = Notification.objects.get(rule=r)
    assert row.title == "Daily max loss hit: alice-paper"
    assert row.body == ("alice-paper: daily max loss hit: equity is down 2.50% today (limit 2%); "
                        "no new entries until tomorrow (configs: careful).")
    assert scheduled == [row.pk]
    equity_at("940000", 3)  # -6 %: the same day's max loss again is not a second notification
    assert Notification.objects.filter(rule=r).count() == 1
    equity_at("940000", 24)  # the next day starts from here: nothing reached
    assert Notification.objects.filter(rule=r).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_daily_target_is_its_own_notification(paper, make_config, in_app, scheduled):
    from markets.models import Balance

    r = rule(paper.owner, K.DAILY_LIMIT_HIT)
    make_config(paper, name="greedy", daily_target_pct=Decimal("3"))
    start = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    services.snapshot_equity(now=start)
    Balance.objects.filter(account=paper, asset="KRW").update(free=Decimal("1030000"))
    services.snapshot_equity(now=start + timedelta(minutes=5))
    row = Notification.objects.get(rule=r)
    assert row.title == "Daily target reached: alice-paper"
    assert "equity is up 3.00% today (target 3%)" in row.body and "(configs: greedy)" in row.body
    assert scheduled == [row.pk]
