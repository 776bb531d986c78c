"""Celery tasks of the trader queue. Thin shells over ``orders`` services."""

from __future__ import annotations

import logging

from celery import shared_task

from orders import evaluation, services

log = logging.getLogger(__name__)


@shared_task(name="orders.tasks.snapshot_equity")
def snapshot_equity() -> int:
    """Beat, every 5 minutes: one EquitySnapshot per account."""
    return services.snapshot_equity()


@shared_task(name="orders.tasks.evaluate")
def evaluate(venue: str, symbol: str, timeframe: str, bar_time_ms: int) -> dict:
    """Sent by the stream (by name) on every closed bar: evaluate the active configs on it."""
    report = evaluation.evaluate_bar(venue, symbol, timeframe, int(bar_time_ms))
    return {
        "configs": report.configs,
        "signals_created": report.signals_created,
        "signals_existing": report.signals_existing,
        "skipped_missing_bar": report.skipped_missing_bar,
        "errors": report.errors,
    }


@shared_task(name="orders.tasks.run_trading")
def run_trading() -> int:
    """Beat, every minute: catch up on the newest stored bar of every traded symbol/timeframe
    (a bar whose evaluate message was lost is evaluated here; a repeat stores nothing new)."""
    created = 0
    for venue, symbol, timeframe, bar_time_ms in evaluation.latest_closed_bars():
        created += evaluation.evaluate_bar(venue, symbol, timeframe, bar_time_ms).signals_created
    return created
