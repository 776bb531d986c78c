"""The statistics of a backtest's equity curve and trades.

Sharpe and Sortino use per-bar simple returns of the equity curve, risk-free rate 0,
annualized with ``sqrt(bars per year)`` (365-day crypto year). CAGR uses the series' time span
(first open to last open plus one bar), not bars × bar length: venues skip intervals with no
trades, so a series may have gaps. Daily and monthly returns use the trading day (00:00 UTC +
``day_offset_hours``).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from strategies._jit import njit
from strategies.backtest.inputs import BacktestConfig
from strategies.backtest.results import BacktestResult
from strategies.base import Candles
from strategies.trade_math import DAY_MS, HOUR_MS

YEAR_MS = 365 * DAY_MS


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _period_returns(
    equity: np.ndarray, initial: float, keys: np.ndarray, names: list[str]
) -> dict[str, float]:
    """Return of each period: its last equity over the previous period's last (or initial)."""
    if equity.size == 0:
        return {}
    ends = np.append(np.flatnonzero(np.diff(keys) != 0), keys.size - 1)
    closing = equity[ends]
    opening = np.concatenate(([initial], closing[:-1]))
    returns = (closing / opening - 1.0).tolist()
    return {names[j]: r for j, r in enumerate(returns)}


@njit(aot="Tuple((f8, f8, f8, f8, i8[:]))(f8[:], f8, i8[:], i8)")
def _curve_stats(equity, initial, times, offset_ms):
    """One pass over the equity curve: per-bar return moments, max drawdown, day ends."""
    n = equity.shape[0]
    total = 0.0
    total_sq = 0.0
    down_sq = 0.0
    peak = initial
    max_dd = 0.0
    prev = initial
    day_ends = np.empty(n, dtype=np.int64)
    n_days = 0
    for i in range(n):
        e = equity[i]
        r = e / prev - 1.0 if prev > 0.0 else 0.0
        total += r
        total_sq += r * r
        if r < 0.0:
            down_sq += r * r
        prev = e
        if e > peak:
            peak = e
        if peak > 0.0 and 1.0 - e / peak > max_dd:
            max_dd = 1.0 - e / peak
        if i == n - 1 or (times[i + 1] + offset_ms) // DAY_MS != (times[i] + offset_ms) // DAY_MS:
            day_ends[n_days] = i
            n_days += 1
    mean = total / n
    var = total_sq / n - mean * mean
    return mean, math.sqrt(var) if var > 0.0 else 0.0, math.sqrt(down_sq / n), max_dd, \
        day_ends[:n_days]


def cagr(initial: float, final: float, first_open_ms: int, last_open_ms: int,
         bar_ms: int) -> float:
    """Compound annual growth over the series' time span (first to last open, plus the last
    bar); -1.0 when the equity is gone, ``inf`` beyond floating point."""
    years = (last_open_ms - first_open_ms + bar_ms) / YEAR_MS
    if final > 0 and years > 0:
        growth = math.log(final / initial) / years
        return math.expm1(growth) if growth < 700 else math.inf  # inf is reported as None
    return -1.0


def summarize(
    candles: Candles,
    equity: np.ndarray,
    columns: dict[str, np.ndarray],
    config: BacktestConfig,
    bar_ms: int,
    *,
    ambiguous: int = 0,
    replayed: int = 0,
    in_market: int = 0,
    halted_days: int = 0,
) -> BacktestResult:
    """The result of a run: its trades' ``columns`` and equity curve, with the statistics."""
    initial = float(config.initial_cash)
    n = equity.size
    times = np.asarray(candles.open_time_ms, dtype=np.int64)
    final = float(equity[-1]) if n else initial
    bars_per_year = YEAR_MS / bar_ms
    offset_ms = int(config.risk.day_offset_hours * HOUR_MS)
    if n:
        mean, std, downside, max_dd, day_ends = _curve_stats(equity, initial, times, offset_ms)
        sharpe = mean / std * math.sqrt(bars_per_year) if std > 0 else 0.0
        sortino = mean / downside * math.sqrt(bars_per_year) if downside > 0 else 0.0
        growth = cagr(initial, final, int(times[0]), int(times[-1]), bar_ms)
    else:
        max_dd = sharpe = sortino = growth = 0.0
        day_ends = np.zeros(0, dtype=np.int64)
    pnls = columns["pnl"]
    gross_win = float(pnls[pnls > 0].sum())
    gross_loss = float(-pnls[pnls < 0].sum())
    epoch = dt.date(1970, 1, 1)
    day_numbers = ((times[day_ends] + offset_ms) // DAY_MS).tolist()
    days = [epoch + dt.timedelta(days=k) for k in day_numbers]
    day_equity = equity[day_ends]
    month_keys = np.array([d.year * 12 + d.month - 1 for d in days], dtype=np.int64)
    month_names = [f"{k // 12:04d}-{k % 12 + 1:02d}" for k in sorted(set(month_keys.tolist()))]
    stats = {
        "initial_equity": initial,
        "final_equity": final,
        "total_return": final / initial - 1.0,
        "cagr": _finite_or_none(growth),
        "max_drawdown": float(max_dd),
        "sharpe": _finite_or_none(sharpe),
        "sortino": _finite_or_none(sortino),
        "win_rate": float((pnls > 0).mean()) if pnls.size else 0.0,
        "profit_factor": _finite_or_none(gross_win / gross_loss) if gross_loss > 0 else None,
        "exposure": in_market / n if n else 0.0,
        "trade_count": int(pnls.size),
        "average_trade": float(pnls.mean()) if pnls.size else 0.0,
        "total_fees": float(columns["fees"].sum()),
        "ambiguous_bars": int(ambiguous),
        "ambiguous_bars_replayed": int(replayed),
        "halted_days": int(halted_days),
        "bars": n,
        "bar_ms": bar_ms,
        "intrabar": config.intrabar,
    }
    return BacktestResult(
        trade_columns=columns,
        open_time_ms=times,
        equity=equity,
        stats=stats,
        daily_returns=_period_returns(
            day_equity, initial, np.arange(len(days)), [d.isoformat() for d in days]
        ),
        monthly_returns=_period_returns(day_equity, initial, month_keys, month_names),
    )
