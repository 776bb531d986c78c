"""Optimizer runs for configs: the inputs a run takes from its config, creating a run (validated
before anything runs), executing it (resumably), and finishing it (auto-applying its proposal
when the config opted in)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from markets.candles import load_candles
from markets.models import Balance, Symbol
from markets.timeframes import timeframe_ms
from strategies import backtest, limits, optimizer, registry
from strategies.models import OptimizationRun, OptimizationTrial, StrategyConfig
from strategies.optimization.errors import OptimizationError
from strategies.optimization.versions import apply_run
from strategies.optimizer import Constraints, FloatRange, Job, Simplex, Space, TrialResult
from strategies.params import ParamError
from strategies.trade_math import RiskParams

ENSEMBLE_WEIGHTS = ("w_trend", "w_momentum", "w_swing", "w_scalping", "w_day", "w_price_action")
#: The ensemble threshold range searched with the weights.
ENSEMBLE_THRESHOLD = FloatRange(0.05, 0.6)
DEFAULT_CASH = 10_000_000.0
#: Default history covers at least this many candles (so a 1d config gets enough days).
MIN_BARS = 600


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
