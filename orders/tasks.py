"""Celery tasks of the trader queue. Thin shells over ``orders`` services."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_init, worker_ready
from django.conf import settings

from markets import heartbeat
from markets.fields import UNREADABLE
from markets.models import Account
from orders import (
    evaluation,
    exits,
    funding,
    positions,
    recovery,
    services,
    venue_balances,
    venue_stops,
)

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


def reconcile_all() -> dict:
    """Every reconciliation, each step on its own (one failing does not stop the others):
    live orders by client order id, venue stops (a stop the venue executed closes its
    position), the balances of every live account fetched from its venue (the user streams'
    safety net: ``orders.venue_balances``), the net futures position per symbol against the
    venue's (``orders.positions``), then paper orders a stopped process left unsent
    (``orders.recovery``). Live
    accounts whose stored keys cannot be decrypted are skipped with one log line and counted
    (``live_accounts_skipped``): nothing can be asked of their venue until the keys are entered
    again."""
    out = {"live_orders": 0, "venue_stops": 0, "live_balances": 0, "paper_filled": 0,
           "paper_cancelled": 0, "live_accounts_skipped": 0, "net_mismatches": 0}
    account_ids = None  # every account
    try:
        live = list(Account.objects.filter(mode=Account.Mode.LIVE))
        unreadable = [a for a in live
                      if a.credentials_state == Account.CREDENTIALS_UNREADABLE]
        if unreadable:
            account_ids = [a.pk for a in live if a not in unreadable]
            out["live_accounts_skipped"] = len(unreadable)
            log.warning("reconcile: %d live account(s) skipped, API %s: %s", len(unreadable),
                        UNREADABLE, ", ".join(f"{a.label} (id {a.pk})" for a in unreadable))
    except Exception:
        log.exception("reading the live accounts failed")
    try:
        out["live_orders"] = services.reconcile_live_orders(account_ids=account_ids)
    except Exception:
        log.exception("reconciling live orders failed")
    try:
        out["venue_stops"] = venue_stops.reconcile_stops(account_ids=account_ids)
    except Exception:
        log.exception("reconciling venue stops failed")
    if getattr(settings, "TRADING_LIVE", False):
        try:
            out["live_balances"] = venue_balances.refresh_live_balances(account_ids=account_ids)
        except Exception:
            log.exception("refreshing live balances failed")
        try:
            # The venue's net futures position per symbol against the sum over the account's
            # configs and manual orders (logged; no repair: orders.positions).
            out["net_mismatches"] = len(positions.reconcile_net_positions(account_ids))
        except Exception:
            log.exception("comparing net positions with the venue failed")
    try:
        report = recovery.settle_stale_paper_orders()
        out["paper_filled"] = len(report.filled) + len(report.resting)
        out["paper_cancelled"] = len(report.cancelled)
    except Exception:
        log.exception("recovering paper orders failed")
    try:  # the last round's counters, read by the reconciliation alert rule (alerts.health)
        heartbeat.beat("reconcile", "last", ttl=3600, **out)
    except Exception as exc:
        log.warning("could not record the reconciliation counters: %s", exc)
    return out


@shared_task(name="orders.tasks.reconcile")
def reconcile() -> dict:
    """Sent once when a worker starts (and callable by hand): :func:`reconcile_all`."""
    return reconcile_all()


def warm_trading_path() -> None:
    """Load what the first closed bar would otherwise load: the venue adapters (requests,
    websockets; ``markets.exchanges`` loads them on first use so that importing the services
    stays light) and every module of ``orders.services``. Cold, a worker's first evaluation
    (1 config) took 244 ms of CPU against 59 ms with these loaded (cProfile, in isolation)."""
    from markets import exchanges

    exchanges.ADAPTERS  # noqa: B018 - the lazy loader
    for name in services.__all__:
        getattr(services, name)


@worker_init.connect
def warm_at_worker_start(**kwargs) -> None:
    """Before the pool starts (its processes are forked from this one and inherit the
    modules): :func:`warm_trading_path`. A failure is logged; the imports then happen on the
    first bar, as before."""
    try:
        warm_trading_path()
    except Exception:
        log.exception("could not warm the trading path at worker start")


@worker_ready.connect
def reconcile_at_worker_start(sender=None, **kwargs) -> None:
    """A worker that serves the trader queue starts: reconcile before trading resumes (a
    crash may have left orders unsettled). Sent as a task, so start-up is not held up."""
    try:
        queues = {q.name for q in sender.app.amqp.queues.consume_from.values()}
        if "trader" in queues:
            sender.app.send_task("orders.tasks.reconcile", queue="trader")
    except Exception:
        log.exception("could not send the start-up reconciliation")


@shared_task(name="orders.tasks.run_trading")
def run_trading() -> int:
    """Beat, every minute: reconcile (live orders by client order id, venue stops, paper
    orders left unsent by a stopped process), the exit guard's fallback on the newest stored
    prices, funding of paper perpetual positions at the funding times (``orders.funding``),
    then catch up on the newest stored bar of every traded symbol/timeframe (a bar
    whose evaluate message was lost is evaluated here; a repeat stores and orders nothing
    new). Returns the number of signals created."""
    reconcile_all()
    guard = exits.guard_all_from_candles()
    try:
        paid = funding.apply_funding()
        if paid:
            log.info("run_trading: %s paper funding payment(s) booked", paid)
    except Exception:
        log.exception("paper funding failed")
    created = 0
    for venue, symbol, timeframe, bar_time_ms in evaluation.latest_closed_bars():
        created += evaluation.evaluate_bar(venue, symbol, timeframe, bar_time_ms).signals_created
    if guard.closed:
        log.info("run_trading: exit guard fallback closed %s position(s)", guard.closed)
    return created


@shared_task(name="orders.tasks.backtest_config_period", acks_late=True,
             reject_on_worker_lost=False)
def backtest_config_period(run_id: int) -> str:
    """The optimizer queue: a config's backtest over its live period (the dashboard's button;
    ``orders.performance_configs``)."""
    from orders import performance_configs

    return performance_configs.run_config_backtest(run_id)
