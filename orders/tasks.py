"""Celery tasks of the trader queue. Thin shells over ``orders`` services."""

from __future__ import annotations

import logging

from celery import shared_task

from orders import evaluation, exits, services

log = logging.getLogger(__name__)


@shared_task(name="orders.tasks.snapshot_equity")
def snapshot_equity() -> int:
    """Beat, every 5 minutes: one EquitySnapshot per account."""
    return services.snapshot_equity()


@shared_task(name="orders.tasks.evaluate")
def evaluate(venue: str, symbol: str, timeframe: str, bar_time_ms: int) -> dict:
    """Sent by the stream (by name) on every closed bar: evaluate the active configs on it and
    act on their new signals."""
    report = evaluation.evaluate_bar(venue, symbol, timeframe, int(bar_time_ms))
    return {
        "configs": report.configs,
        "signals_created": report.signals_created,
        "signals_existing": report.signals_existing,
        "skipped_missing_bar": report.skipped_missing_bar,
        "errors": report.errors,
        "executions": report.executions,
    }


@shared_task(name="orders.tasks.exit_guard")
def exit_guard(
    venue: str,
    symbol: str,
    price: float,
    ts_ms: int,
    high: float | None = None,
    low: float | None = None,
) -> dict:
    """Sent by the stream (by name) on price updates: ``venue`` slug, ``symbol`` code, the last
    ``price`` (float), its time ``ts_ms`` (int ms UTC), and optionally the ``high``/``low`` of
    the trades since the previous message. Closes positions whose stop, target, trailing stop
    or liquidation level was reached."""
    report = exits.guard_by_name(venue, symbol, price, ts_ms, high=high, low=low)
    return {
        "positions": report.positions,
        "closed": report.closed,
        "reasons": report.reasons,
        "resting_filled": report.resting_filled,
        "errors": report.errors,
    }


@shared_task(name="orders.tasks.run_trading")
def run_trading() -> int:
    """Beat, every minute: settle live orders with the venue (by client order id), the exit
    guard's fallback on the newest stored prices, then catch up
    on the newest stored bar of every traded symbol/timeframe (a bar whose evaluate message
    was lost is evaluated here; a repeat stores and orders nothing new). Returns the number of
    signals created."""
    try:
        services.reconcile_live_orders()
    except Exception:
        log.exception("run_trading: reconciling live orders failed")
    guard = exits.guard_all_from_candles()
    created = 0
    for venue, symbol, timeframe, bar_time_ms in evaluation.latest_closed_bars():
        created += evaluation.evaluate_bar(venue, symbol, timeframe, bar_time_ms).signals_created
    if guard.closed:
        log.info("run_trading: exit guard fallback closed %s position(s)", guard.closed)
    return created
