"""Celery tasks of the optimizer queue. Thin shells over ``strategies.optimization`` and
``strategies.screening``."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from strategies import optimization, screening
from strategies.models import BacktestRun
from strategies.params import ParamError
from strategies.services import NoCandles, run_backtest


@shared_task(name="strategies.tasks.optimize_scheduled")
def optimize_scheduled() -> list[int]:
    """Beat, daily 00:05: a run per opted-in config, each as its own task; orphaned unfinished
    runs are sent again (they resume from their stored trials)."""
    runs = optimization.stale_runs() + optimization.schedule_nightly()
    for run in runs:
        run_optimization.apply_async(args=[run.pk], queue="optimizer")
    return [run.pk for run in runs]


# Acks late: a run whose worker died is sent again and resumes (tradesite.celery renews the
# lease while it runs, so it is never sent twice while running). reject_on_worker_lost off: a
# pool child that dies alone under an optimizer task most likely ran out of memory, and
# requeueing would kill the next one too; the nightly job resends orphaned runs.
@shared_task(name="strategies.tasks.run_optimization", acks_late=True,
             reject_on_worker_lost=False)
def run_optimization(run_id: int) -> str:
    """Run or resume one optimization (trials already stored are not redone)."""
    return optimization.execute_run(run_id).status


@shared_task(name="strategies.tasks.screen_symbols")
def screen_symbols() -> int:
    """Beat, hourly: rank every active venue's symbols; returns how many were ranked."""
    return screening.screen_all()


@shared_task(name="strategies.tasks.run_backtest_run", acks_late=True,
             reject_on_worker_lost=False)
def run_backtest_run(run_id: int) -> str:
    """Run a backtest created by the backtest page (status pending) and fill its results.

    A request the run cannot satisfy (bad parameters, no stored candles) is stored on the run
    as ``failed`` with the message for the trader; so is any other error (the page shows it).
    A run left ``running`` by a worker that died (the message is redelivered: acks late) is
    run again from the start (a backtest is deterministic); finished or failed runs are left
    alone."""
    updated = BacktestRun.objects.filter(
        pk=run_id, status__in=[BacktestRun.Status.PENDING, BacktestRun.Status.RUNNING]
    ).update(status=BacktestRun.Status.RUNNING)
    if not updated:
        return BacktestRun.objects.filter(pk=run_id).values_list("status", flat=True).first() or ""
    run = BacktestRun.objects.select_related("symbol__exchange").get(pk=run_id)
    try:
        run = run_backtest(
            strategy=run.strategy, params=run.params, symbol=run.symbol,
            timeframe=run.timeframe, start=run.start, end=run.end, fee_bps=run.fee_bps,
            slippage_bps=run.slippage_bps, cash=run.cash,
            risk=(run.settings or {}).get("risk") or None, run=run,
        )
    except (ParamError, NoCandles) as exc:  # the request, not the code, is at fault
        _fail(run_id, str(exc))
    except Exception as exc:  # stored for the trader; the worker log keeps the traceback
        _fail(run_id, f"the backtest stopped with an internal error ({type(exc).__name__}: "
                      f"{exc}); nothing was traded")
        raise
    return BacktestRun.objects.get(pk=run_id).status


def _fail(run_id: int, message: str) -> None:
    BacktestRun.objects.filter(pk=run_id).update(
        status=BacktestRun.Status.FAILED, error=message[:2000], finished_at=timezone.now()
    )
