"""Pages of the optimizer and the screener: thin views over ``strategies.optimization`` and
``strategies.screening``. Rendered inside the admin's frame (same login, header and style)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from markets.models import Exchange, Symbol
from strategies import optimization, screening, tasks
from strategies.models import OptimizationRun, StrategyConfig, SymbolScreen
from strategies.optimizer import METHODS, OBJECTIVES

SCREEN_COLUMNS = {
    "rank": "rank",
    "symbol": "symbol__code",
    "score": "score",
    "atr": "atr_pct",
    "range": "range_24h_pct",
    "value": "traded_value_24h",
    "momentum": "momentum_pct",
}
TRIAL_COLUMNS = {"window": "window", "number": "number", "score": "score"}


def _context(request, **extra):
    return {**admin.site.each_context(request), **extra}


def _sorting(request, columns: dict[str, str], default: str, default_dir: str = "asc"):
    """(key, direction, order expression) from ?sort=key&dir=asc|desc; unknown keys fall back.
    Missing figures sort last either way."""
    key = request.GET.get("sort", default)
    if key not in columns:
        key = default
    direction = request.GET.get("dir", default_dir if key == default else "asc")
    direction = "desc" if direction == "desc" else "asc"
    field = F(columns[key])
    expr = field.desc(nulls_last=True) if direction == "desc" else field.asc(nulls_last=True)
    return key, direction, expr


def _runs(request):
    return OptimizationRun.objects.filter(
        config__in=StrategyConfig.objects.owned_by(request.user)
    ).select_related("config")


@staff_member_required
def screener(request):
    exchanges = Exchange.objects.filter(is_active=True).order_by("slug")
    slug = request.GET.get("exchange")
    exchange = exchanges.filter(slug=slug).first() if slug else exchanges.first()
    key, direction, order = _sorting(request, SCREEN_COLUMNS, "rank")
    rows = (
        SymbolScreen.objects.filter(symbol__exchange=exchange).select_related("symbol")
        .order_by(order, "rank")
        if exchange else SymbolScreen.objects.none()
    )
    configs = StrategyConfig.objects.owned_by(request.user).filter(
        strategy="dual_momentum", symbol__exchange=exchange
    )
    return render(request, "strategies/screener.html", _context(
        request,
        title="Screener",
        exchanges=exchanges,
        exchange=exchange,
        rows=rows,
        sort=key,
        direction=direction,
        columns=[("rank", "Rank"), ("symbol", "Symbol"), ("score", "Score"),
                 ("atr", "ATR % of price"), ("range", "24h range %"),
                 ("value", "24h traded value"), ("momentum", "24h momentum %")],
        configs=configs,
        can_activate=request.user.has_perm("markets.change_symbol"),
    ))


@staff_member_required
@require_POST
def activate_symbol(request, symbol_id: int):
    if not request.user.has_perm("markets.change_symbol"):
        raise PermissionDenied("Only users who may change symbols can start collecting one.")
    symbol = get_object_or_404(Symbol, pk=symbol_id)
    screening.activate_symbol(symbol)
    messages.success(request, f"{symbol} is now collected.")
    return redirect(f"{reverse('strategies:screener')}?exchange={symbol.exchange.slug}")


@staff_member_required
@require_POST
def set_top_symbols(request):
    config = get_object_or_404(
        StrategyConfig.objects.owned_by(request.user), pk=request.POST.get("config")
    )
    try:
        top_n = int(request.POST.get("top_n", ""))
        version = screening.set_top_symbols(config, top_n, by=request.user)
    except ValueError:
        messages.error(request, "Top N must be a whole number.")
    except optimization.OptimizationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"{config}: peers set to {', '.join(version.params['symbols'])} "
            f"(version {version.number})."
        )
    return redirect(f"{reverse('strategies:screener')}?exchange={config.symbol.exchange.slug}")


@staff_member_required
def run_list(request):
    return render(request, "strategies/runs.html", _context(
        request,
        title="Optimizer runs",
        runs=_runs(request)[:200],
        configs=StrategyConfig.objects.owned_by(request.user).order_by("name"),
        objectives=OBJECTIVES,
        methods=METHODS,
    ))


@staff_member_required
@require_POST
def start_run(request):
    """Create a run and hand it to the optimizer queue: it goes on if the browser closes."""
    config = get_object_or_404(
        StrategyConfig.objects.owned_by(request.user), pk=request.POST.get("config")
    )
    try:
        trials = int(request.POST.get("trials", "100"))
        days = int(request.POST.get("days", "30"))
        run = optimization.create_run(
            config,
            trials=trials,
            days=days,
            objective=request.POST.get("objective", "sharpe"),
            method=request.POST.get("method", "auto"),
            requested_by=request.user,
        )
    except ValueError:
        messages.error(request, "Trials and days must be whole numbers.")
        return redirect("strategies:run_list")
    except optimization.OptimizationError as exc:
        messages.error(request, str(exc))
        return redirect("strategies:run_list")
    tasks.run_optimization.apply_async(args=[run.pk], queue="optimizer")
    messages.success(request, f"Run {run.pk} queued; this page shows its progress.")
    return redirect("strategies:run_detail", run_id=run.pk)


@staff_member_required
def run_detail(request, run_id: int):
    run = get_object_or_404(_runs(request), pk=run_id)
    key, direction, order = _sorting(request, TRIAL_COLUMNS, "score", "desc")
    trials = run.trials.order_by(order, "window", "number")
    folds = run.result.get("folds", [])
    return render(request, "strategies/run_detail.html", _context(
        request,
        title=f"Optimizer run {run.pk}",
        run=run,
        folds=folds,
        trials=trials,
        sort=key,
        direction=direction,
        can_apply=run.status == OptimizationRun.Status.DONE and run.best_params is not None,
        current=optimization.current_version(run.config),
    ))


@staff_member_required
@require_POST
def apply_run(request, run_id: int):
    run = get_object_or_404(_runs(request), pk=run_id)
    try:
        version = optimization.apply_run(run, by=request.user)
    except optimization.OptimizationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{run.config}: applied as version {version.number}.")
    return redirect("strategies:run_detail", run_id=run.pk)
