"""Bounds on the work a user can start: optimizer runs and backtests.

Each limit is a setting read from the environment at start (``tradesite/settings.py``, README
"Limits") and each refusal names it, so a trader knows what to change and an operator what to
raise. Checked where runs are created: ``optimization.create_run`` (the page, the command, the
nightly schedule), ``services.run_backtest`` (the command and the worker) and the backtest form
(the page, before anything is queued).

Runs "at once" are a user's pending or running ones created within :data:`BUSY_WINDOW`: a run
whose worker died long ago does not lock its owner out (the nightly job resumes it).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from markets.models import Candle, Symbol
from strategies.params import ParamError

#: Unfinished runs older than this no longer count as "at once" (orphaned by a dead worker).
BUSY_WINDOW = dt.timedelta(hours=6)


class LimitExceeded(ParamError):
    """A request beyond a limit; the message names the limit's setting. A ``ParamError``:
    every caller already shows those to the trader as the request's fault."""


def setting(name: str) -> int:
    return int(getattr(settings, name))


def _at_least_one(value: int, what: str) -> None:
    if value < 1:
        raise LimitExceeded(f"{what} must be at least 1; got {value}")


def _at_most(value: int, name: str, what: str) -> None:
    limit = setting(name)
    if value > limit:
        raise LimitExceeded(f"at most {limit:,} {what} ({name}); got {value:,}")


def check_optimizer(*, trials: int, days: int, folds: int) -> None:
    """Trials per window, days of history and walk-forward folds within their bounds."""
    _at_least_one(trials, "trials")
    _at_most(trials, "OPTIMIZER_MAX_TRIALS", "trials per run")
    _at_least_one(days, "days")
    _at_most(days, "OPTIMIZER_MAX_DAYS", "days of history")
    _at_least_one(folds, "folds")
    _at_most(folds, "OPTIMIZER_MAX_FOLDS", "walk-forward folds")


def check_grid(points: float) -> None:
    """A grid search scores every point: the points count as trials."""
    limit = setting("OPTIMIZER_MAX_TRIALS")
    if points > limit:
        raise LimitExceeded(
            f"the grid has {points:,.0f} points; at most {limit:,} trials per run "
            "(OPTIMIZER_MAX_TRIALS): narrow the ranges or use the random or tpe method"
        )


def _busy(queryset, now: dt.datetime | None):
    now = now or timezone.now()
    return queryset.filter(status__in=["pending", "running"],
                           created_at__gte=now - BUSY_WINDOW).count()


def check_optimizer_runs(owner, now: dt.datetime | None = None) -> None:
    """At most OPTIMIZER_MAX_RUNS_PER_USER pending or running runs on ``owner``'s configs."""
    from strategies.models import OptimizationRun

    limit = setting("OPTIMIZER_MAX_RUNS_PER_USER")
    busy = _busy(OptimizationRun.objects.filter(config__owner=owner), now)
    if busy >= limit:
        raise LimitExceeded(
            f"{busy} of your optimizer runs are queued or running; at most {limit} optimizer "
            "runs at once (OPTIMIZER_MAX_RUNS_PER_USER): wait for one to finish"
        )


def check_backtest_runs(owner, now: dt.datetime | None = None) -> None:
    """At most BACKTEST_MAX_RUNS_PER_USER pending or running backtests of ``owner``."""
    from strategies.models import BacktestRun

    limit = setting("BACKTEST_MAX_RUNS_PER_USER")
    busy = _busy(BacktestRun.objects.filter(owner=owner), now)
    if busy >= limit:
        raise LimitExceeded(
            f"{busy} of your backtests are queued or running; at most {limit} backtests at "
            "once (BACKTEST_MAX_RUNS_PER_USER): wait for one to finish"
        )


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def check_backtest_span(start: dt.datetime, end: dt.datetime) -> None:
    limit = setting("BACKTEST_MAX_DAYS")
    if end - start > dt.timedelta(days=limit):
        raise LimitExceeded(
            f"a backtest covers at most {limit:,} days (BACKTEST_MAX_DAYS); "
            f"{_when(start)} to {_when(end)} is {(end - start).days:,} days"
        )


def check_backtest_range(symbol: Symbol, timeframe: str, start: dt.datetime,
                         end: dt.datetime) -> None:
    """The range must overlap the stored candles (it may run past them: the newest candle
    is rarely exactly at "now"); the message says what is stored."""
    first_at, last_at = stored_range(symbol, timeframe)
    where = f"{timeframe} candles of {symbol.code} on {symbol.exchange.slug}"
    if first_at is None:
        raise LimitExceeded(f"no {where} are stored; import or backfill them first")
    if end <= first_at or start > last_at:
        raise LimitExceeded(
            f"the stored {where} cover {_when(first_at)} to {_when(last_at)} UTC; "
            f"choose a range within it (asked {_when(start)} to {_when(end)})"
        )


def stored_range(symbol: Symbol, timeframe: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Open times of the oldest and newest stored candle (None, None when there is none)."""
    times = Candle.objects.filter(symbol_id=symbol.pk, timeframe=timeframe).values_list(
        "open_time", flat=True
    )
    first_at = times.order_by("open_time").first()  # two probes of the unique index
    if first_at is None:
        return None, None
    return first_at, times.order_by("-open_time").first()
