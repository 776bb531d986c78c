"""The optimizer's schedule: nightly runs for opted-in configs, and the unfinished runs whose
task was probably lost."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from strategies.models import OptimizationRun, StrategyConfig
from strategies.optimization.errors import OptimizationError
from strategies.optimization.runs import create_run

log = logging.getLogger(__name__)

#: An unfinished run older than this is taken as orphaned (its task lost) and resumed.
STALE_AFTER = dt.timedelta(hours=6)


def unfinished_runs():
    return OptimizationRun.objects.filter(
        status__in=[OptimizationRun.Status.PENDING, OptimizationRun.Status.RUNNING]
    )


def stale_runs(now: dt.datetime | None = None) -> list[OptimizationRun]:
    """Unfinished runs started long ago, whose task was probably lost: the nightly job sends
    them again, and they resume from their stored trials."""
    now = now or timezone.now()
    return list(unfinished_runs().filter(created_at__lt=now - STALE_AFTER))


def schedule_nightly(now: dt.datetime | None = None) -> list[OptimizationRun]:
    """Pending runs for every opted-in config (``auto_apply_optimized``): ensemble configs
    optimize their weights and threshold, others their declared grid. A config with a run
    still pending or running gets no second one. Seeded by the date, so a night is repeatable."""
    now = now or timezone.now()
    seed = int(now.strftime("%Y%m%d"))
    busy = set(unfinished_runs().values_list("config_id", flat=True))
    runs = []
    configs = StrategyConfig.objects.filter(auto_apply_optimized=True).select_related("symbol")
    for config in configs:
        if config.pk in busy:
            continue
        ensemble = config.strategy == "ensemble"
        try:
            run = create_run(
                config,
                kind=(OptimizationRun.Kind.ENSEMBLE_WEIGHTS if ensemble
                      else OptimizationRun.Kind.PARAMS),
                trials=getattr(settings, "OPTIMIZER_NIGHTLY_TRIALS", 60),
                seed=seed,
                end=now,
                trigger=OptimizationRun.Trigger.SCHEDULE,
            )
        except OptimizationError as exc:
            log.warning("nightly optimization of %s not started: %s", config, exc)
            continue
        runs.append(run)
    return runs
