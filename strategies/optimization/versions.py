"""A config's parameter versions: apply a parameter set (by hand, from an optimizer run, or
automatically) as a new :class:`ParamVersion`, and roll back to an earlier one. The parameters in
force before the first change are saved as version 1 (``initial``), so there is always something
to roll back to."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from strategies import registry
from strategies.models import OptimizationRun, ParamVersion, StrategyConfig
from strategies.optimization.errors import OptimizationError
from strategies.params import ParamError


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
