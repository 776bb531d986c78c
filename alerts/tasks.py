"""Delivery tasks (queue ``collector``: the trader queue stays free for trading)."""

from __future__ import annotations

from celery import shared_task

from alerts import delivery


@shared_task(name="alerts.tasks.deliver")
def deliver(pk: int) -> str:
    """Send one notification; a failure is retried after its backoff."""
    outcome = delivery.deliver(pk)
    if outcome.status == "retry":
        deliver.apply_async(args=[pk], countdown=outcome.retry_in)
    return outcome.status


@shared_task(name="alerts.tasks.deliver_due")
def deliver_due() -> dict:
    """The safety net (every 30 s): rows whose task was lost (broker down at commit) or whose
    worker died mid-send (lease passed)."""
    counts: dict[str, int] = {}
    for pk in delivery.due_ids():
        status = delivery.deliver(pk).status
        counts[status] = counts.get(status, 0) + 1
    return counts


@shared_task(name="alerts.tasks.check_health")
def check_health() -> dict:
    """The system-health rules (beat, every ``ALERTS_HEALTH_EVERY_S``): ``alerts.health``."""
    from alerts import health

    return health.check()
