"""Celery tasks of the trader queue. Thin shells over ``orders.services``."""

from __future__ import annotations

from celery import shared_task

from orders import services


@shared_task(name="orders.tasks.snapshot_equity")
def snapshot_equity() -> int:
    """Beat, every 5 minutes: one EquitySnapshot per account."""
    return services.snapshot_equity()
