"""The outbox: atomic claim, lease after a killed worker, backoff, webhooks exactly once,
in-app pushes and failing channels."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import delivery, tasks
from alerts.models import Channel, Notification
from tradesite.celery import app

pytestmark = pytest.mark.django_db


def row(channel, key="k1", **fields):
    return Notification.objects.create(
        owner_id=channel.owner_id, channel=channel, dedupe_key=key, title="Order filled",
        body="Order 1 filled 0.1 at 100.", **fields,
    )


def test_of_two_claimers_only_one_gets_the_row(webhook):
    n = row(webhook)
    now = timezone.now()
    first, second = delivery.claim(n.pk, now), delivery.claim(n.pk, now)
    assert first is not None and first.status == "sending" and first.attempts == 1
    assert second is None


def test_a_worker_killed_mid_send_leaves_the_row_to_be_claimed_after_its_lease(webhook):
    n = row(webhook)
    now = timezone.now()
    assert delivery.claim(n.pk, now) is not None  # ...and the worker dies here
    assert delivery.due_ids(now + timedelta(seconds=delivery.LEASE_S - 1)) == []
    assert delivery.claim(n.pk, now + timedelta(seconds=delivery.LEASE_S - 1)) is None
    later = now + timedelta(seconds=delivery.LEASE_S)
    assert delivery.due_ids(later) == [n.pk]
    again = delivery.claim(n.pk, later)
    assert again is not None and again.attempts == 2


def test_backoff_doubles_and_is_capped():
    assert [delivery.backoff(a) for a in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert delivery.backoff(40) == delivery.BACKOFF_MAX_S


def test_a_webhook_is_delivered_exactly_once_after_a_500(webhook, receiver):
    receiver.fail_first = 1
    n = row(webhook)

    first = delivery.deliver(n.pk)
    assert first.status == "retry" and first.retry_in == delivery.BACKOFF_S
    assert "500" in first.error
    n.refresh_from_db()
    assert n.status == "new" and n.attempts == 1 and "500" in n.last_error
    assert delivery.deliver(n.pk).status == "skipped"  # not due before its backoff

    due = n.next_attempt_at
    assert delivery.deliver(n.pk, now=due).status == "sent"
    n.refresh_from_db()
    assert n.status == "sent" and n.sent_at is not None and n.attempts == 2
    assert delivery.deliver(n.pk, now=due + timedelta(hours=1)).status == "skipped"

    key = f"tradesite-notification-{n.pk}"
    assert [h.get("X-Idempotency-Key") for h, _ in receiver.requests] == [key, key]
    assert receiver.accepted == [key]
    assert receiver.requests[-1][1]["title"] == "Order filled"
    assert receiver.requests[-1][1]["message"] == "Order 1 filled 0.1 at 100."
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0 and not webhook.failing


def test_the_deliver_task_retries_after_the_backoff(webhook, receiver, monkeypatch):
    receiver.fail_first = 1
    n = row(webhook)
    queued = []
    monkeypatch.setattr(tasks.deliver, "apply_async",
                        lambda args, countdown: queued.append((args, countdown)))
    assert tasks.deliver(n.pk) == "retry"
    assert queued == [([n.pk], delivery.BACKOFF_S)]


def test_the_sweep_sends_what_is_due(webhook, receiver):
    rows = [row(webhook, key=f"k{i}") for i in range(3)]
    Notification.objects.filter(pk=rows[2].pk).update(
        next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    assert tasks.deliver_due() == {"sent": 2}
    assert len(receiver.accepted) == 2


@pytest.mark.redis
def test_in_app_is_pushed_to_the_owners_group(in_app, listen, clean_redis):
    inbox = listen(in_app.owner_id)
    n = row(in_app)
    assert delivery.deliver(n.pk).status == "sent"
    messages = inbox.drain()
    assert [(m["type"], m["id"], m["title"]) for m in messages] == [
        ("alert.created", n.pk, "Order filled")
    ]


@pytest.mark.redis
def test_a_channel_that_keeps_failing_is_marked_and_its_owner_told_in_app(
    trader, receiver, listen, clean_redis
):
    receiver.fail_first = 100
    channel = Channel.objects.create(owner=trader, name="broken hook", kind="webhook",
                                     target=receiver.url)
    inbox = listen(trader.pk)
    for i in range(delivery.FAILING_AFTER):
        assert delivery.deliver(row(channel, key=f"k{i}").pk).status == "retry"
    channel.refresh_from_db()
    assert channel.failing and channel.failing_since is not None
    assert channel.consecutive_failures == delivery.FAILING_AFTER
    told = [m for m in inbox.drain() if m["type"] == "alert.created"]
    assert len(told) == 1 and told[0]["title"] == "Alert channel failing: broken hook"
    assert told[0]["level"] == "error"


def test_a_row_fails_for_good_after_max_attempts(webhook, receiver):
    receiver.fail_first = 100
    n = row(webhook)
    now = timezone.now()
    for _ in range(delivery.MAX_ATTEMPTS):
        outcome = delivery.deliver(n.pk, now=now)
        now += timedelta(hours=2)
    assert outcome.status == "failed"
    n.refresh_from_db()
    assert n.status == "failed" and n.attempts == delivery.MAX_ATTEMPTS
    assert delivery.due_ids(now) == []


def test_a_kind_that_cannot_send_fails_at_once_with_the_reason(trader):
    # A row from a newer version (a kind this one does not know) fails at once, not retried.
    channel = Channel.objects.create(owner=trader, name="pager", kind="pager", target="123")
    outcome = delivery.deliver(row(channel).pk)
    assert outcome.status == "failed"
    assert ("pager channels cannot send yet: use an in-app, webhook, e-mail or Telegram channel"
            in outcome.error)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_fill_reaches_the_owners_page_through_a_real_worker_path(
    symbol, paper, make_config, in_app, listen, clean_redis, monkeypatch
):
    """The whole slice with tasks run eagerly: paper fill → row → deliver → ``user.<id>``."""
    from alerts.models import AlertRule
    from orders import tasks as order_tasks
    from orders.tests.conftest import MINUTE, T0, store

    monkeypatch.setattr(app.conf, "task_always_eager", True)
    AlertRule.objects.create(owner=paper.owner, name="fills", kind="order_filled")
    make_config(paper)
    store(symbol, [50_000_000.0] * 4)
    inbox = listen(paper.owner_id)
    order_tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    n = Notification.objects.get()
    assert n.status == "sent"
    alerts = [m for m in inbox.drain() if m["type"] == "alert.created"]
    assert [(m["id"], m["title"]) for m in alerts] == [(n.pk, n.title)]


def test_apprise_urls_carry_the_idempotency_header():
    assert (delivery.apprise_url("https://h.example/x", "k")
            == "jsons://h.example/x?+X-Idempotency-Key=k")
    assert delivery.apprise_url("http://h/x?a=1", "k") == "json://h/x?a=1&+X-Idempotency-Key=k"
    assert delivery.apprise_url("discord://1/t", "k") == "discord://1/t"


@pytest.mark.django_db(transaction=True)
def test_of_eight_concurrent_claimers_exactly_one_wins(webhook):
    import threading

    from django.db import connections

    n = row(webhook)
    now = timezone.now()
    start = threading.Barrier(8)
    won, failures = [], []

    def claim():
        try:
            start.wait()
            if delivery.claim(n.pk, now) is not None:
                won.append(threading.get_ident())
        except Exception as exc:  # reported on the test's thread
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == [] and len(won) == 1
    n.refresh_from_db()
    assert n.status == "sending" and n.attempts == 1
