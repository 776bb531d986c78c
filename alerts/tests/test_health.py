"""System-health rules (``alerts.health``): one notification per episode of a problem, a
silent stream only once it has been silent for the rule's minutes, and live orders whose
outcome stays unknown."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from alerts import health
from alerts.models import AlertRule, Notification
from markets import heartbeat

pytestmark = [pytest.mark.redis, pytest.mark.django_db]
T = 1_800_000_000.0  # "now" in seconds


@pytest.fixture
def checks(monkeypatch):
    state = {"workers": {"ok": True}, "beat": {"ok": True},
             "stream": {"ok": True, "venues": {}, "required": []}}
    monkeypatch.setitem(health._system_checks, "default", lambda now: state)
    return state


def make_rule(owner, kind, **params):
    r = AlertRule(owner=owner, name=kind, kind=kind, params=params)
    r.full_clean()
    r.save()
    return r


def test_workers_missing_fires_once_per_episode(owner, in_app, checks, scheduled, clean_redis):
    rule = make_rule(owner, "workers_missing")
    assert health.check(T)["notifications"] == 0
    checks["workers"] = {"ok": False, "error": "no live worker serves queue(s): trader"}
    assert health.check(T + 60)["notifications"] == 1
    assert health.check(T + 120)["notifications"] == 0  # the same episode
    checks["workers"] = {"ok": True}
    health.check(T + 180)
    checks["workers"] = {"ok": False, "error": "again"}
    assert health.check(T + 240)["notifications"] == 1  # a new episode
    titles = list(Notification.objects.filter(rule=rule).values_list("title", flat=True))
    assert titles == ["System: workers missing"] * 2


def test_a_stream_fires_after_its_minutes_of_silence(owner, in_app, checks, scheduled,
                                                     clean_redis):
    make_rule(owner, "stream_silent", minutes=10, venue="sim")
    make_rule(owner, "stream_silent", minutes=10, venue="other")
    last = int(T * 1000)
    checks["stream"] = {"required": ["sim"], "venues": {
        "sim": {"last_message_ms": str(last), "state": "polling"}}}
    assert health.check(T + 5 * 60)["notifications"] == 0
    assert health.check(T + 11 * 60)["notifications"] == 1
    # the process is gone (no heartbeat): still the same episode, from the last message known
    checks["stream"] = {"required": ["sim"], "venues": {}}
    assert health.check(T + 20 * 60)["notifications"] == 0
    note = Notification.objects.get()
    assert note.title.startswith("Stream silent: sim for 11 min")


def test_a_reconciliation_difference_fires(owner, in_app, checks, scheduled, clean_redis):
    make_rule(owner, "reconcile_diff")
    heartbeat.beat("reconcile", "last", net_mismatches=2)
    assert health.check(T)["notifications"] == 1
    assert "2 net position(s) differ" in Notification.objects.get().body


def test_a_live_order_in_an_unknown_state_fires_for_its_owner_only(
        owner, in_app, checks, scheduled, clean_redis, make_trader, make_account, symbol):
    from orders.models import Order

    make_rule(owner, "order_unknown", minutes=5)
    other = make_trader("other")
    orders = []
    for user in (owner, other):
        account = make_account(user, label=f"live-{user.pk}", mode="live")
        orders.append(Order.objects.create(account=account, symbol=symbol, side="buy",
                                           type="market", quantity=Decimal("0.01"),
                                           status="submitted",
                                           client_order_id=f"unknown-{user.pk}"))
    Order.objects.update(created_at=timezone.now() - timedelta(minutes=6))
    assert health.check(T)["notifications"] == 1
    assert health.check(T + 60)["notifications"] == 0  # dedupe: the same order
    note = Notification.objects.get()
    assert note.owner == owner and f"Live order {orders[0].pk}" in note.body


def test_the_project_registers_health_checks_and_a_beat_entry():
    from tradesite.demo import PERIODIC_TASKS

    assert "default" in health._system_checks
    assert any(t["task"] == "alerts.tasks.check_health" for t in PERIODIC_TASKS)
