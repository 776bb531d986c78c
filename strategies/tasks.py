"""Celery tasks of the optimizer queue. Thin shells over ``strategies.optimization`` and
``strategies.screening``."""

from __future__ import annotations

from celery import shared_task

from strategies import optimization, screening


@shared_task(name="strategies.tasks.optimize_scheduled")
def optimize_scheduled() -> list[int]:
    """Beat, daily 00:05: a run per opted-in config, each as its own task; orphaned unfinished
    runs are sent again (they resume from their stored trials)."""
    runs = optimization.stale_runs() + optimization.schedule_nightly()
    for run in runs:
        run_optimization.apply_async(args=[run.pk], queue="optimizer")
    return [run.pk for run in runs]


@shared_task(name="strategies.tasks.run_optimization", acks_late=True)
def run_optimization(run_id: int) -> str:
    """Run or resume one optimization (trials already stored are not redone)."""
    return optimization.execute_run(run_id).status


@shared_task(name="strategies.tasks.screen_symbols")
def screen_symbols() -> int:
    """Beat, hourly: rank every active venue's symbols; returns how many were ranked."""
    return screening.screen_all()
