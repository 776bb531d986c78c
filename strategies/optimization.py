"""Optimizer runs for configs: create, execute (resumably), apply, roll back, schedule.

The Django shell around :mod:`strategies.optimizer`. Tasks, the command, the admin and the views
call these functions; nothing else writes ``OptimizationRun``, ``OptimizationTrial`` or
``ParamVersion`` rows.

Decisions:

* A run compares its proposal with the config's *current* parameters on the same out-of-sample
  ranges (``baseline_out_of_sample_score``), so both are judged on the same bars.
* A config with ``auto_apply_optimized`` takes a run's parameters only when its out-of-sample
  score beats the current parameters' by more than ``margin`` (objective units, e.g. 0.1 Sharpe;
  setting ``OPTIMIZER_APPLY_MARGIN``) and the config's parameters did not change during the run.
  Otherwise the run stays a proposal that a trader can apply.
* Every applied parameter set is a new :class:`ParamVersion`; the parameters in force before the
  first change are saved as version 1 (``initial``), so there is always something to roll back to.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from markets.candles import load_candles
from markets.models import Balance, Symbol
from markets.timeframes import timeframe_ms
from strategies import backtest, limits, optimizer, registry
from strategies.models import OptimizationRun, OptimizationTrial, ParamVersion, StrategyConfig
from strategies.optimizer import Constraints, FloatRange, Job, Simplex, Space, TrialResult
from strategies.params import ParamError
from strategies.position import RiskParams

log = logging.getLogger(__name__)

ENSEMBLE_WEIGHTS = ("w_trend", "w_momentum", "w_swing", "w_scalping", "w_day", "w_price_action")
#: The ensemble threshold range searched with the weights.
ENSEMBLE_THRESHOLD = FloatRange(0.05, 0.6)
DEFAULT_CASH = 10_000_000.0
#: Default history covers at least this many candles (so a 1d config gets enough days).
MIN_BARS = 600


class OptimizationError(Exception):
    """A run cannot start or finish as asked; the message says why, for the trader."""


def _setting(name: str, default):
    return getattr(settings, name, default)


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


# ---------------------------------------------------------------------------- inputs


def backtest_config(config: StrategyConfig) -> backtest.BacktestConfig:
    """The config's risk, sizing and cash as the backtester takes them."""

    def percent(value) -> float:  # the model and RiskParams both use percent; None = off
        return 0.0 if value is None else float(value)

    risk = RiskParams(
        leverage=float(config.leverage),
        stop_loss_pct=percent(config.stop_loss_pct),
        take_profit_pct=percent(config.take_profit_pct),
        trailing_stop_pct=percent(config.trailing_stop_pct),
        daily_target_pct=percent(config.daily_target_pct),
        daily_max_loss_pct=percent(config.daily_max_loss_pct),
    )
    balance = Balance.objects.filter(
        account_id=config.account_id, asset=config.account.quote_asset
    ).first()
    cash = float(balance.free + balance.locked) if balance and balance.free > 0 else DEFAULT_CASH
    return backtest.BacktestConfig(
        initial_cash=cash,
        risk=risk,
        sizing=config.sizing(),
        allow_short=config.symbol.market_type != Symbol.MarketType.SPOT,
        timeframe=config.timeframe,
    )


def ensemble_space(base: dict[str, Any]) -> Space:
    """The six weights on the simplex (they sum to 1) and the entry threshold."""
    cls = registry.get("ensemble").Params
    return Space(cls, {"weights": Simplex(ENSEMBLE_WEIGHTS), "threshold": ENSEMBLE_THRESHOLD},
                 dict(base))


def run_space(run: OptimizationRun) -> Space:
    if run.kind == OptimizationRun.Kind.ENSEMBLE_WEIGHTS:
        return ensemble_space(run.baseline_params)
    cls = registry.get(run.strategy).Params
    return Space.from_params(cls, run.space or None, base=run.baseline_params)


# ---------------------------------------------------------------------------- runs


def create_run(
    config: StrategyConfig,
    *,
    kind: str = OptimizationRun.Kind.PARAMS,
    space: dict[str, Any] | None = None,
    method: str = "auto",
    objective: str = "sharpe",
    trials: int = 100,
    seed: int = 0,
    days: int | None = None,
    end: dt.datetime | None = None,
    folds: int = 3,
    in_sample_ratio: float = 3.0,
    min_trades: int = 1,
    max_drawdown: float | None = None,
    margin: float | None = None,
    workers: int | None = None,
    trigger: str = OptimizationRun.Trigger.MANUAL,
    requested_by=None,
) -> OptimizationRun:
    """A pending run over the last ``days`` before ``end``, validated before anything runs."""
    if kind == OptimizationRun.Kind.ENSEMBLE_WEIGHTS and config.strategy != "ensemble":
        raise OptimizationError(f"{config} runs {config.strategy}; only ensemble has weights")
    if objective not in optimizer.OBJECTIVES:
        raise OptimizationError(
            f"objective must be one of {', '.join(optimizer.OBJECTIVES)}; got {objective!r}"
        )
    if method not in optimizer.METHODS:
        raise OptimizationError(
            f"method must be one of {', '.join(optimizer.METHODS)}; got {method!r}"
        )
    if days is None:
        bar_days = timeframe_ms(config.timeframe) / 86_400_000
        days = min(max(_setting("OPTIMIZER_DAYS", 30), math.ceil(MIN_BARS * bar_days)),
                   limits.setting("OPTIMIZER_MAX_DAYS"))
    if seed < 0:
        raise OptimizationError(f"seed must be a whole number of at least 0; got {seed}")
    cores = optimizer.default_workers()
    if workers is not None and not 1 <= workers <= cores:
        raise OptimizationError(f"workers must be between 1 and {cores} (the cores); got {workers}")
    try:
        limits.check_optimizer(trials=trials, days=days, folds=folds)
        if trigger != OptimizationRun.Trigger.SCHEDULE:
            limits.check_optimizer_runs(config.owner_id)
    except limits.LimitExceeded as exc:
        raise OptimizationError(str(exc)) from None
    end = end or timezone.now()
    try:
        Constraints(min_trades=min_trades, max_drawdown=max_drawdown)
        baseline = registry.validate_params(config.strategy, config.effective_params())
        run = OptimizationRun(
            config=config,
            strategy=config.strategy,
            kind=kind,
            method="random" if kind == OptimizationRun.Kind.ENSEMBLE_WEIGHTS else method,
            objective=objective,
            space=space or {},
            options={
                "folds": folds,
                "in_sample_ratio": in_sample_ratio,
                "min_trades": min_trades,
                "max_drawdown": max_drawdown,
                "days": days,
                "margin": _setting("OPTIMIZER_APPLY_MARGIN", 0.1) if margin is None else margin,
                "workers": workers,
            },
            seed=seed,
            trials_requested=trials,
            start=end - dt.timedelta(days=days),
            end=end,
            baseline_params=baseline,
            trigger=trigger,
            requested_by=requested_by,
        )
        space_used = run_space(run)  # the ranges parse
        if run.method == "grid" or (run.method == "auto" and space_used.size() <= trials):
            limits.check_grid(space_used.size())
    except (ParamError, limits.LimitExceeded) as exc:
        raise OptimizationError(str(exc)) from None
    run.save()
    return run


def _job(run: OptimizationRun) -> Job:
    config = run.config
    candles = load_candles(config.symbol_id, config.timeframe, _ms(run.start), _ms(run.end))
    options = run.options
    return Job(
        strategy=run.strategy,
        candles=candles,
        space=run_space(run),
        backtest=backtest_config(config),
        objective=run.objective,
        constraints=Constraints(
            min_trades=options.get("min_trades", 1), max_drawdown=options.get("max_drawdown")
        ),
        folds=options.get("folds", 3),
        in_sample_ratio=options.get("in_sample_ratio", 3.0),
        method=run.method,
        trials=run.trials_requested,
        seed=run.seed,
        baseline=run.baseline_params,
    )


def _stored_trials(run: OptimizationRun) -> list[TrialResult]:
    return [
        TrialResult(t.window, t.number, t.params, t.score, t.feasible, t.reason, t.stats)
        for t in run.trials.all()
    ]


def execute_run(
    run_id: int,
    *,
    workers: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> OptimizationRun:
    """Run (or resume) a run: trials already stored are not scored again. Each batch of new
    trials is stored before the next starts, with the run's progress."""
    run = OptimizationRun.objects.select_related("config__symbol", "config__account").get(
        pk=run_id
    )
    if run.status in (OptimizationRun.Status.DONE, OptimizationRun.Status.FAILED):
        return run
    run.status = OptimizationRun.Status.RUNNING
    run.started_at = run.started_at or timezone.now()
    run.save(update_fields=["status", "started_at"])

    def store(batch: list[TrialResult], fraction: float) -> None:
        OptimizationTrial.objects.bulk_create(
            [
                OptimizationTrial(
                    run=run, window=t.window, number=t.number, params=t.params, score=t.score,
                    feasible=t.feasible, reason=t.reason[:255], stats=t.stats,
                )
                for t in batch
            ],
            ignore_conflicts=True,
        )
        OptimizationRun.objects.filter(pk=run.pk).update(progress=round(fraction, 4))
        if progress is not None:
            progress(fraction)

    try:
        job = _job(run)
        result = optimizer.optimize(
            job,
            workers=workers or run.options.get("workers") or _setting("OPTIMIZER_WORKERS", None),
            done=_stored_trials(run),
            on_batch=store,
            batch_size=_setting("OPTIMIZER_BATCH_SIZE", 64),
        )
    except (ParamError, OptimizationError) as exc:
        _fail(run, str(exc))
        return run
    except Exception as exc:
        _fail(run, f"{type(exc).__name__}: {exc}")
        raise
    _finish(run, result)
    return run


def _fail(run: OptimizationRun, message: str) -> None:
    run.status = OptimizationRun.Status.FAILED
    run.error = message
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])


def _finish(run: OptimizationRun, result: optimizer.OptimizationResult) -> None:
    run.result = result.summary()
    run.best_params = result.best_params
    run.in_sample_score = result.in_sample_score
    run.out_of_sample_score = result.out_of_sample_score
    run.baseline_out_of_sample_score = result.baseline_out_of_sample_score
    run.status = OptimizationRun.Status.DONE
    run.progress = 1.0
    run.finished_at = timezone.now()
    if result.best is None:
        run.outcome = OptimizationRun.Outcome.NOTHING_FEASIBLE
    else:
        run.outcome = OptimizationRun.Outcome.PROPOSED
    run.save()
    if run.outcome == OptimizationRun.Outcome.PROPOSED and should_auto_apply(run):
        apply_run(run, auto=True)


def should_auto_apply(run: OptimizationRun) -> bool:
    """Opted in, the config unchanged since the run began, and out of sample better than the
    current parameters by more than the margin."""
    config = StrategyConfig.objects.get(pk=run.config_id)
    if not config.auto_apply_optimized or run.best_params is None:
        return False
    if registry.validate_params(config.strategy, config.effective_params()) != run.baseline_params:
        return False
    if run.out_of_sample_score is None:
        return False
    margin = float(run.options.get("margin", 0.1))
    baseline = run.baseline_out_of_sample_score
    return baseline is None or run.out_of_sample_score > baseline + margin


# ---------------------------------------------------------------------------- versions


def current_version(config: StrategyConfig) -> ParamVersion | None:
    return config.param_versions.order_by("-number").first()


@transaction.atomic
def apply_params(
    config: StrategyConfig,
    params: dict[str, Any],
    *,
    source: str,
    by=None,
    run: OptimizationRun | None = None,
    restored_from: ParamVersion | None = None,
    note: str = "",
) -> ParamVersion:
    """Make ``params`` the config's parameters, recorded as a new version."""
    config = StrategyConfig.objects.select_for_update().get(pk=config.pk)
    try:
        validated = registry.validate_params(config.strategy, params)
    except ParamError as exc:
        raise OptimizationError(str(exc)) from None
    if validated.get("shorts") is True and config.symbol.market_type == "spot":
        raise OptimizationError(f"shorts: {config.symbol} is a spot symbol and a spot symbol "
                                "cannot be shorted; these parameters cannot be applied")
    latest = current_version(config)
    if latest is None:
        latest = ParamVersion.objects.create(
            config=config,
            number=1,
            params=registry.validate_params(config.strategy, config.effective_params()),
            source=ParamVersion.Source.INITIAL,
            note="parameters in force before the first recorded change",
        )
    version = ParamVersion.objects.create(
        config=config,
        number=latest.number + 1,
        params=validated,
        source=source,
        applied_by=by,
        run=run,
        restored_from=restored_from,
        in_sample_score=None if run is None else run.in_sample_score,
        out_of_sample_score=None if run is None else run.out_of_sample_score,
        objective="" if run is None else run.objective,
        note=note,
    )
    config.params = validated
    config.save(update_fields=["params", "updated_at"])
    return version


def apply_run(run: OptimizationRun, *, by=None, auto: bool = False) -> ParamVersion:
    """Apply a finished run's proposal to its config."""
    if run.status != OptimizationRun.Status.DONE or run.best_params is None:
        raise OptimizationError(f"run {run.pk} has no parameters to apply ({run.status})")
    version = apply_params(
        run.config,
        run.best_params,
        source=ParamVersion.Source.AUTO if auto else ParamVersion.Source.OPTIMIZER,
        by=by,
        run=run,
        note=(
            f"out-of-sample {run.objective} {run.out_of_sample_score:.4g} vs current "
            f"{_fmt(run.baseline_out_of_sample_score)}"
        ),
    )
    OptimizationRun.objects.filter(pk=run.pk).update(outcome=OptimizationRun.Outcome.APPLIED)
    run.outcome = OptimizationRun.Outcome.APPLIED
    return version


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def rollback(config: StrategyConfig, *, to: ParamVersion | None = None, by=None) -> ParamVersion:
    """Restore an earlier version's exact parameters (default: the one before the current)."""
    current = current_version(config)
    if current is None:
        raise OptimizationError(f"{config} has no recorded parameter versions to roll back to")
    if to is None:
        to = config.param_versions.filter(number__lt=current.number).order_by("-number").first()
        if to is None:
            raise OptimizationError(f"{config} is at its first version; nothing to roll back to")
    elif to.config_id != config.pk:
        raise OptimizationError(f"version {to} belongs to another config")
    return apply_params(
        config, to.params, source=ParamVersion.Source.ROLLBACK, by=by, restored_from=to,
        note=f"restored v{to.number}",
    )


# ---------------------------------------------------------------------------- schedule


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
                trials=_setting("OPTIMIZER_NIGHTLY_TRIALS", 60),
                seed=seed,
                end=now,
                trigger=OptimizationRun.Trigger.SCHEDULE,
            )
        except OptimizationError as exc:
            log.warning("nightly optimization of %s not started: %s", config, exc)
            continue
        runs.append(run)
    return runs
