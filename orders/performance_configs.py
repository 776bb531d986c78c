"""Each config's live performance beside the backtest of the same config over the same period.

"Since activation": a config stores no activation time, so its period starts at its first
trade (the first position it opened; the time it first acted) and ends now. Trades, wins and
PnL are the closed positions'; the drawdown is of the cumulative realized PnL (quote
currency), peak starting at 0.

The backtest is a ``strategies.BacktestRun`` of the config (its strategy, parameters, risk
percentages, sizing, the broker's fee and slippage) over that period, run by the existing
engine on stored candles in the optimizer queue and stored like any backtest: the dashboard
reads the stored run and never recomputes on a page load. Until the trader asks (a button),
it says "not run yet"; a run started before newer trades shows the end it covered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Min, Q, Sum

from orders.brokers.base import default_costs
from orders.models import EquitySnapshot, Position
from orders.performance import ZERO
from orders.services.entries import risk_params
from strategies.models import BacktestRun, StrategyConfig

log = logging.getLogger(__name__)
DEFAULT_CASH = Decimal("10000000")
PLACES = Decimal("0.000000000001")
RISK_KEYS = ("leverage", "stop_loss_pct", "take_profit_pct", "trailing_stop_pct",
             "daily_target_pct", "daily_max_loss_pct", "day_offset_hours")


@dataclasses.dataclass
class ConfigPerformance:
    config: StrategyConfig
    trades: int = 0
    wins: int = 0
    pnl: Decimal = ZERO
    max_drawdown: Decimal = ZERO
    since: dt.datetime | None = None
    backtest: BacktestRun | None = None

    @property
    def win_rate(self) -> Decimal | None:
        return Decimal(self.wins) / self.trades * 100 if self.trades else None

    @property
    def backtest_return_pct(self) -> float | None:
        value = (self.backtest.stats or {}).get("total_return") if self.backtest else None
        return None if value is None else value * 100

    @property
    def backtest_state(self) -> str:
        run = self.backtest
        if self.since is None:
            return "no trades yet"
        if run is None:
            return "not run yet"
        return run.status

    def as_dict(self) -> dict:
        run = self.backtest
        stats = (run.stats or {}) if run is not None else {}
        return {
            "config": self.config.pk,
            "name": self.config.name,
            "account": self.config.account_id,
            "trades": self.trades,
            "wins": self.wins,
            "win_rate": None if self.win_rate is None else float(self.win_rate),
            "pnl": format(self.pnl.normalize(), "f"),
            "max_drawdown": format(self.max_drawdown.normalize(), "f"),
            "since": self.since.isoformat() if self.since else None,
            "backtest": {
                "state": self.backtest_state,
                "id": run.pk if run is not None else None,
                "start": run.start.isoformat() if run is not None else None,
                "end": run.end.isoformat() if run is not None else None,
                "trades": stats.get("trade_count"),
                "win_rate": stats.get("win_rate"),
                "total_return": stats.get("total_return"),
                "max_drawdown": stats.get("max_drawdown"),
                "error": run.error if run is not None else "",
            },
        }


def config_performance(user, account_id: int | None = None) -> list[ConfigPerformance]:
    """The user's configs with their live figures and stored backtest: four queries whatever
    the number of configs or trades."""
    configs = StrategyConfig.objects.filter(owner=user, account__owner=user).select_related(
        "symbol__exchange", "account"
    ).order_by("name", "pk")
    if account_id is not None:
        configs = configs.filter(account_id=account_id)
    rows = {c.pk: ConfigPerformance(c) for c in configs}
    if not rows:
        return []
    closed = Position.objects.filter(config_id__in=list(rows), closed_at__isnull=False)
    for cid, n, wins, pnl in closed.values("config_id").annotate(
        n=Count("id"), wins=Count("id", filter=Q(realized_pnl__gt=0)), pnl=Sum("realized_pnl")
    ).values_list("config_id", "n", "wins", "pnl"):
        row = rows[cid]
        row.trades, row.wins, row.pnl = n, wins, pnl or ZERO
    for cid, first in Position.objects.filter(config_id__in=list(rows)).values(
        "config_id"
    ).annotate(first=Min("opened_at")).values_list("config_id", "first"):
        rows[cid].since = first
    for cid, drawdown in _drawdowns(list(rows)):
        rows[cid].max_drawdown = drawdown
    runs = BacktestRun.objects.filter(config_id__in=list(rows), owner=user).only(
        "id", "config_id", "start", "end", "status", "stats", "error", "created_at"
    ).order_by("config_id", "-created_at")
    for run in runs:
        row = rows[run.config_id]
        if row.backtest is None and row.since is not None and run.start == _start(row.since):
            row.backtest = run
    return list(rows.values())


def _drawdowns(config_ids: list[int]) -> list[tuple[int, Decimal]]:
    """Each config's :func:`orders.performance.max_drawdown` in the database (window
    functions: the running sum of the realized PnL by close, its running peak from 0), so
    10,000 trades never cross into Python. One query."""
    from django.db import connection

    quote = connection.ops.quote_name
    meta = Position._meta
    table = quote(meta.db_table)
    config, pnl, closed, pk = (quote(meta.get_field(f).column)
                               for f in ("config", "realized_pnl", "closed_at", "id"))
    marks = ", ".join(["%s"] * len(config_ids))
    sql = f"""
        SELECT cid, MAX(CASE WHEN peak > 0 THEN peak ELSE 0 END - cum) FROM (
            SELECT cid, cum, MAX(cum) OVER (PARTITION BY cid ORDER BY closed, pk
                                            ROWS UNBOUNDED PRECEDING) AS peak
            FROM (
                SELECT {config} AS cid, {closed} AS closed, {pk} AS pk,
                       SUM({pnl}) OVER (PARTITION BY {config} ORDER BY {closed}, {pk}
                                        ROWS UNBOUNDED PRECEDING) AS cum
                FROM {table} WHERE {closed} IS NOT NULL AND {config} IN ({marks})
            ) running
        ) peaks GROUP BY cid"""
    with connection.cursor() as cursor:
        cursor.execute(sql, config_ids)
        found = cursor.fetchall()
    # SQLite sums the column as a float: back to the money's 12 places.
    return [(cid, Decimal(str(value)).quantize(PLACES)) for cid, value in found]


def _start(since: dt.datetime) -> dt.datetime:
    """The backtest's start: the minute of the first trade."""
    return since.replace(second=0, microsecond=0)


def request_backtest(user, config_id: int, now: dt.datetime) -> BacktestRun:
    """Create (and queue after commit) the backtest of the config over its period. Raises
    ``LookupError`` for a config that is not the user's or has not traded yet."""
    config = StrategyConfig.objects.filter(
        owner=user, account__owner=user, pk=config_id
    ).select_related("symbol__exchange", "account").first()
    if config is None:
        raise LookupError(f"no config with id {config_id}")
    since = Position.objects.filter(config=config).aggregate(first=Min("opened_at"))["first"]
    if since is None:
        raise LookupError(f"config {config.name} has not traded yet: there is no period to "
                          "backtest")
    start = _start(since)
    end = max(now.replace(second=0, microsecond=0), start + dt.timedelta(minutes=1))
    costs = default_costs()
    params = risk_params(config, costs, ts_ms=int(start.timestamp() * 1000)).to_dict()
    first = EquitySnapshot.objects.filter(account_id=config.account_id, ts__gte=since).order_by(
        "ts").values_list("equity", flat=True).first()
    with transaction.atomic():
        run = BacktestRun.objects.create(
            owner=user, config=config, strategy=config.strategy,
            params=config.effective_params(), symbol=config.symbol, timeframe=config.timeframe,
            start=start, end=end, fee_bps=Decimal(str(costs.fee_rate * 10_000)),
            slippage_bps=Decimal(str(costs.slippage_bps)),
            cash=first if first and first > 0 else DEFAULT_CASH,
            settings={"risk": {k: params[k] for k in RISK_KEYS if k in params},
                      "sizing": {"method": config.sizing_method,
                                 "params": config.sizing_params or {}}},
            status=BacktestRun.Status.PENDING,
        )
        transaction.on_commit(lambda: _queue(run.pk))
    return run


def _queue(run_id: int) -> None:
    # By name (``orders.tasks`` imports this module to run it).
    from celery import current_app

    try:
        current_app.send_task("orders.tasks.backtest_config_period", args=[run_id],
                              queue="optimizer")
    except Exception as exc:  # the broker is down: the run fails visibly, never waits forever
        BacktestRun.objects.filter(pk=run_id).update(
            status=BacktestRun.Status.FAILED,
            error=f"the task queue could not be reached ({type(exc).__name__}); "
                  "start the backtest again later",
        )


def run_config_backtest(run_id: int) -> str:
    """Fill a pending run created by :func:`request_backtest` through the backtest engine (with
    the config's sizing, which the backtest page's task does not pass)."""
    from strategies.params import ParamError
    from strategies.services import NoCandles, run_backtest

    updated = BacktestRun.objects.filter(
        pk=run_id, status__in=[BacktestRun.Status.PENDING, BacktestRun.Status.RUNNING]
    ).update(status=BacktestRun.Status.RUNNING)
    if not updated:
        return BacktestRun.objects.filter(pk=run_id).values_list("status", flat=True).first() or ""
    run = BacktestRun.objects.select_related("symbol__exchange").get(pk=run_id)
    sizing = (run.settings or {}).get("sizing") or {}
    try:
        run_backtest(
            strategy=run.strategy, params=run.params, symbol=run.symbol, timeframe=run.timeframe,
            start=run.start, end=run.end, fee_bps=run.fee_bps, slippage_bps=run.slippage_bps,
            cash=run.cash, risk=(run.settings or {}).get("risk") or None,
            sizing_method=sizing.get("method"), sizing_params=sizing.get("params"), run=run,
        )
    except (ParamError, NoCandles) as exc:
        _fail(run_id, str(exc))
    except Exception as exc:
        _fail(run_id, f"the backtest stopped with an internal error ({type(exc).__name__}: "
                      f"{exc}); nothing was traded")
        raise
    return BacktestRun.objects.get(pk=run_id).status


def _fail(run_id: int, message: str) -> None:
    from django.utils import timezone

    BacktestRun.objects.filter(pk=run_id).update(
        status=BacktestRun.Status.FAILED, error=message[:2000], finished_at=timezone.now()
    )
