"""Pages of the optimizer and the screener: thin views over ``strategies.optimization`` and
``strategies.screening``. Rendered inside the admin's frame (same login, header and style)."""

from __future__ import annotations

import datetime as dt
import re

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from markets import candles as stored
from markets.models import Exchange, Symbol
from strategies import optimization, registry, screening, tasks
from strategies.forms import BacktestForm, OptimizerStartForm, TopSymbolsForm
from strategies.models import BacktestRun, OptimizationRun, StrategyConfig, SymbolScreen
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
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,50}")
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
        config__in=StrategyConfig.objects.own(request.user)
    ).select_related("config")


@staff_member_required
def screener(request):
    exchanges = Exchange.objects.filter(is_active=True).order_by("slug")
    slug = request.GET.get("exchange")
    if slug and not SLUG.fullmatch(slug):  # never sent to the database (NUL, ...)
        raise Http404("no such venue")
    exchange = exchanges.filter(slug=slug).first() if slug else exchanges.first()
    if slug and exchange is None:
        raise Http404(f"no active venue {slug[:40]!r}")
    key, direction, order = _sorting(request, SCREEN_COLUMNS, "rank")
    rows = (
        SymbolScreen.objects.filter(symbol__exchange=exchange).select_related("symbol")
        .order_by(order, "rank")
        if exchange else SymbolScreen.objects.none()
    )
    configs = StrategyConfig.objects.own(request.user).filter(
        strategy__in=[n for n in registry.names() if registry.takes_peers(n)],
        symbol__exchange=exchange,
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
    form = TopSymbolsForm(request.POST, user=request.user)
    if not form.is_valid():
        for text in form.messages():
            messages.error(request, text)
        return redirect("strategies:screener")
    config, top_n = form.cleaned_data["config"], form.cleaned_data["top_n"]
    try:
        version = screening.set_top_symbols(config, top_n, by=request.user)
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
        configs=StrategyConfig.objects.own(request.user).order_by("name"),
        objectives=OBJECTIVES,
        methods=METHODS,
    ))


@staff_member_required
@require_POST
def start_run(request):
    """Create a run and hand it to the optimizer queue: it goes on if the browser closes."""
    form = OptimizerStartForm(request.POST, user=request.user)
    if not form.is_valid():
        for text in form.messages():
            messages.error(request, text)
        return redirect("strategies:run_list")
    data = form.cleaned_data
    try:
        run = optimization.create_run(
            data["config"],
            trials=data["trials"],
            days=data["days"],
            objective=data["objective"],
            method=data["method"],
            requested_by=request.user,
        )
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
        stored=_stored_span(run),
        folds=folds,
        trials=trials,
        sort=key,
        direction=direction,
        can_apply=run.status == OptimizationRun.Status.DONE and run.best_params is not None,
        current=optimization.current_version(run.config),
    ))


def _stored_span(run: OptimizationRun) -> dict:
    """The candles actually stored inside the run's requested range: a run asked for 30 days
    may have found only 2."""
    from django.db.models import Count, Max, Min

    from markets.models import Candle

    return Candle.objects.filter(
        symbol_id=run.config.symbol_id, timeframe=run.config.timeframe,
        open_time__gte=run.start, open_time__lt=run.end,
    ).aggregate(first=Min("open_time"), last=Max("open_time"), count=Count("pk"))


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


# ---------------------------------------------------------------------------- backtests

#: The detail page embeds at most this many candles (the newest of the range).
MAX_CHART_CANDLES = 20_000
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
STAT_ROWS = [
    ("total_return", "Total return", "ret"),
    ("cagr", "CAGR", "ret"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "num"),
    ("exposure", "Exposure", "pct"),
    ("trade_count", "Trades", "int"),
    ("average_trade", "Average trade (quote)", "num"),
    ("total_fees", "Fees (quote)", "num"),
    ("ambiguous_bars", "Ambiguous bars", "int"),
    ("final_equity", "Final equity", "num"),
]


def _fmt(value, kind: str) -> str:
    """A stat for the tables: returns signed, other fractions as plain percentages (two
    decimals), "—" when undefined."""
    if value is None:
        return "—"
    if kind == "ret":
        return f"{value * 100:+.2f}%"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.2f}"


def _backtests(request):
    return BacktestRun.objects.filter(owner=request.user).select_related("symbol__exchange")


def _queue_backtest(run: BacktestRun) -> None:
    """Send the run to the optimizer queue; if the broker is down the run fails visibly rather
    than waiting forever."""
    try:
        tasks.run_backtest_run.apply_async(args=[run.pk], queue="optimizer")
    except Exception as exc:  # kombu raises several connection error types
        BacktestRun.objects.filter(pk=run.pk).update(
            status=BacktestRun.Status.FAILED,
            error=f"the task queue could not be reached ({type(exc).__name__}); "
                  "start the backtest again later",
        )


@login_required
def backtest_list(request):
    """The user's backtests and the form to start one (POST: create, queue, go to its page)."""
    if request.method == "POST":
        form = BacktestForm(request.POST, owner=request.user)
        if form.is_valid():
            with transaction.atomic():
                run = form.create_run(request.user)
                transaction.on_commit(lambda: _queue_backtest(run))
            return redirect("strategies:backtest_detail", run_id=run.pk)
    else:
        form = BacktestForm()
    runs = list(_backtests(request)[:200])
    for run in runs:
        run.total_return_text = _fmt((run.stats or {}).get("total_return"), "ret")
    return render(request, "strategies/backtests.html", _context(
        request, title="Backtests", form=form, runs=runs,
    ))


def _status(run: BacktestRun) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "progress": run.progress,
        "stage": run.stage,
        "error": run.error,
        "finished": run.status in (BacktestRun.Status.DONE, BacktestRun.Status.FAILED),
        "total_return": (run.stats or {}).get("total_return"),
    }


@login_required
def backtest_status(request, run_id: int):
    """``/strategies/backtests/<id>.json``: what the detail page polls while the run works."""
    return JsonResponse(_status(get_object_or_404(_backtests(request), pk=run_id)))


def _monthly_rows(monthly: dict[str, float]) -> list[dict]:
    by_year: dict[int, list] = {}
    for key, value in monthly.items():
        year, month = int(key[:4]), int(key[5:7])
        by_year.setdefault(year, [None] * 12)[month - 1] = value
    rows = []
    for year in sorted(by_year):
        total = 1.0
        for value in by_year[year]:
            if value is not None:
                total *= 1.0 + value
        rows.append({
            "year": year,
            "months": [{"value": v, "text": _fmt(v, "ret")} for v in by_year[year]],
            "total": _fmt(total - 1.0, "ret"),
        })
    return rows


def _chart_data(run: BacktestRun) -> dict:
    start_ms = int(run.start.timestamp() * 1000)
    end_ms = int(run.end.timestamp() * 1000)
    candles = stored.load_candles(run.symbol_id, run.timeframe, start_ms, end_ms)
    truncated = len(candles) > MAX_CHART_CANDLES
    if truncated:
        candles = candles.tail(MAX_CHART_CANDLES)
    markers = []
    for trade in run.trades:
        long = trade["side"] == "long"
        markers.append({
            "t": trade["entry_time_ms"], "kind": "buy" if long else "sell",
            "label": "L" if long else "S",
            "hover": f"enter {trade['side']} {trade['size']:.8g} @ {trade['entry_price']:.8g}",
        })
        markers.append({
            "t": trade["exit_time_ms"], "kind": "sell" if long else "buy",
            "label": "x",
            "hover": (f"exit {trade['side']} @ {trade['exit_price']:.8g} ({trade['reason']}),"
                      f" pnl {trade['pnl']:.8g}"),
        })
    return {
        "timeframe": run.timeframe,
        "candles": {
            "t": candles.open_time_ms.tolist(), "o": candles.open.tolist(),
            "h": candles.high.tolist(), "l": candles.low.tolist(), "c": candles.close.tolist(),
            "v": candles.volume.tolist(),
        },
        "truncated": truncated,
        "markers": markers,
        "equity": run.equity,
    }


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _trade_rows(trades: list[dict]) -> list[dict]:
    return [{
        **t, "entry": _when(t["entry_time_ms"]), "exit": _when(t["exit_time_ms"]),
        "entry_price_text": f"{t['entry_price']:,.8g}",
        "exit_price_text": f"{t['exit_price']:,.8g}",
        "size_text": f"{t['size']:.8g}", "fees_text": f"{t['fees']:,.2f}",
        "pnl_text": f"{t['pnl']:+,.2f}",
    } for t in trades]


@login_required
def backtest_detail(request, run_id: int):
    run = get_object_or_404(_backtests(request), pk=run_id)
    done = run.status == BacktestRun.Status.DONE
    stats = run.stats or {}
    return render(request, "strategies/backtest_detail.html", _context(
        request,
        title=f"Backtest {run.pk}",
        run=run,
        done=done,
        risk=(run.settings or {}).get("risk") or {},
        status=_status(run),
        stat_rows=[(key, label, _fmt(stats.get(key), kind)) for key, label, kind in STAT_ROWS],
        months=MONTHS,
        monthly=_monthly_rows(stats.get("monthly_returns") or {}),
        chart=_chart_data(run) if done else None,
        trades=_trade_rows(run.trades) if done else [],
    ))
