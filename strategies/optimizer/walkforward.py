"""Walk-forward windows, objectives, constraints and the scoring of one parameter set.

Windows (bar indices, end exclusive), for ``n`` bars, ``folds`` folds and an in-sample to
out-of-sample ratio ``r``: the out-of-sample length is ``n // (r + folds)`` bars and the
in-sample length ``r`` times that. Fold ``i``'s in-sample window is immediately followed by its
out-of-sample window; the folds roll forward by one out-of-sample length and the last fold's
out-of-sample window ends at the newest bar. A last *final* window (the newest in-sample length,
no out-of-sample part) chooses the parameters to deploy, since the future is its out-of-sample.

What chooses never sees what scores: a fold's choice depends only on bars before its
out-of-sample window (its in-sample bars, plus warm-up bars before them so that indicators are
final at the window's first bar). Strategies are causal, and signals are computed on a slice
that ends at the window's end, so no later bar can reach a choice even through a strategy bug.

Pure: numpy, the standard library and the pure strategy modules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import numpy as np

from markets.timeframes import TIMEFRAME_MS
from strategies import backtest, registry
from strategies.base import Candles, Signals
from strategies.params import ParamError

#: How a backtest's statistics become one number to maximize.
OBJECTIVES = ("sharpe", "sortino", "total_return", "return_over_drawdown")
#: return_over_drawdown divides by at least this drawdown (fraction), so a curve that never
#: dipped does not score infinity.
MIN_DRAWDOWN = 0.01

#: Statistics kept with each trial (the rest of a backtest's stats are not stored).
KEPT_STATS = (
    "total_return", "max_drawdown", "sharpe", "sortino", "trade_count", "win_rate",
    "profit_factor", "exposure", "bars",
)


@dataclasses.dataclass(frozen=True)
class Window:
    """Bar index ranges ``[start, end)``; a final window has no out-of-sample part."""

    index: int
    is_start: int
    is_end: int
    oos_start: int | None = None
    oos_end: int | None = None

    @property
    def final(self) -> bool:
        return self.oos_start is None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def walk_forward_windows(n_bars: int, folds: int = 3, in_sample_ratio: float = 3.0) -> list[Window]:
    """``folds`` rolling in-sample/out-of-sample windows and the final window (see module doc)."""
    if folds < 1:
        raise ParamError(f"folds must be at least 1; got {folds}")
    if not in_sample_ratio > 0:
        raise ParamError(f"in_sample_ratio must be above 0; got {in_sample_ratio}")
    oos = int(n_bars // (in_sample_ratio + folds))
    ins = int(in_sample_ratio * oos)
    if oos < 10 or ins < 10:
        raise ParamError(
            f"{n_bars} candles are too few for {folds} walk-forward folds at "
            f"{in_sample_ratio:g}:1 in-sample to out-of-sample; load more history or use fewer "
            "folds"
        )
    windows = []
    for i in range(folds):
        oos_end = n_bars - (folds - 1 - i) * oos
        oos_start = oos_end - oos
        windows.append(Window(i, oos_start - ins, oos_start, oos_start, oos_end))
    windows.append(Window(folds, n_bars - ins, n_bars))
    return windows


@dataclasses.dataclass(frozen=True)
class Constraints:
    """A trial that breaks one is infeasible: it cannot be chosen."""

    #: Fewest trades in the window.
    min_trades: int = 1
    #: Largest drawdown allowed, a fraction (0.3 = 30 %); None = no limit.
    max_drawdown: float | None = None

    def __post_init__(self) -> None:
        if self.min_trades < 0:
            raise ParamError(f"min_trades must not be negative; got {self.min_trades}")
        if self.max_drawdown is not None and not 0 < self.max_drawdown <= 1:
            raise ParamError(
                f"max_drawdown is a fraction between 0 and 1; got {self.max_drawdown}"
            )

    def violation(self, stats: dict[str, Any]) -> str | None:
        if stats["trade_count"] < self.min_trades:
            return f"{stats['trade_count']} trades, fewer than the minimum {self.min_trades}"
        if self.max_drawdown is not None and stats["max_drawdown"] > self.max_drawdown:
            return (
                f"drawdown {stats['max_drawdown']:.1%} is above the limit "
                f"{self.max_drawdown:.1%}"
            )
        return None


def objective_value(stats: dict[str, Any], objective: str) -> float | None:
    """The number to maximize, or None when the statistic is not finite."""
    if objective == "return_over_drawdown":
        value = stats["total_return"] / max(stats["max_drawdown"], MIN_DRAWDOWN)
    elif objective in OBJECTIVES:
        value = stats[objective]
    else:
        raise ParamError(f"objective must be one of {', '.join(OBJECTIVES)}; got {objective!r}")
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One parameter set on one range of bars."""

    score: float | None
    feasible: bool
    reason: str = ""
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)


def _with_timeframe(config: backtest.BacktestConfig, candles: Candles):
    """``config`` with its timeframe named (inferred once here rather than on every trial)."""
    if config.timeframe is not None or len(candles) < 2:
        return config
    steps = np.diff(candles.open_time_ms)
    steps = steps[steps > 0]
    if not steps.size:
        return config
    names = {ms: name for name, ms in TIMEFRAME_MS.items()}
    name = names.get(int(steps.min()))
    return config if name is None else dataclasses.replace(config, timeframe=name)


def _digest(array: np.ndarray | None) -> bytes:
    """A 128-bit fingerprint of a mostly-zero array (its non-zero positions and values)."""
    if array is None:
        return b""
    where = np.flatnonzero(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(np.int64(array.shape[0]).tobytes())
    h.update(where.tobytes())
    h.update(np.ascontiguousarray(array[where]).tobytes())
    return h.digest()


class Evaluator:
    """Scores parameter sets of one strategy on ranges of one candle series.

    With ``cache`` it reuses candle slices (so indicator memoization can key on them) and the
    simulation of identical action sequences on the same range (two parameter sets that trade
    the same bars have the same result).
    """

    def __init__(
        self,
        strategy: str,
        candles: Candles,
        config: backtest.BacktestConfig,
        *,
        objective: str = "sharpe",
        constraints: Constraints | None = None,
        warmup_bars: int = 0,
        cache: bool = True,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ParamError(
                f"objective must be one of {', '.join(OBJECTIVES)}; got {objective!r}"
            )
        self.strategy_cls = registry.get(strategy)
        self.candles = candles
        self.config = _with_timeframe(config, candles)
        self.objective = objective
        self.constraints = constraints or Constraints()
        self.warmup_bars = int(warmup_bars)
        self.cache = cache
        self.indicator_cache = None  # set by the runner when memoizing indicators
        self._slices: dict[tuple[int, int], Candles] = {}
        self._simulated: dict[tuple, dict[str, Any]] = {}

    def _slice(self, start: int, end: int) -> Candles:
        if not self.cache:
            return self.candles[start:end]
        key = (start, end)
        piece = self._slices.get(key)
        if piece is None:
            piece = self.candles[start:end]
            self._slices[key] = piece
            if self.indicator_cache is not None:
                self.indicator_cache.add_stable(
                    [piece.open_time_ms, piece.open, piece.high, piece.low, piece.close,
                     piece.volume]
                )
        return piece

    def evaluate(self, params: dict[str, Any], start: int, end: int, *,
                 constrained: bool = True) -> Evaluation:
        """Backtest ``params`` on bars ``[start, end)``; signals see bars before ``end`` only."""
        try:
            strategy = self.strategy_cls(self.strategy_cls.Params.from_dict(params))
        except ParamError as exc:
            return Evaluation(None, False, f"invalid parameters: {exc}")
        warm = max(self.warmup_bars, strategy.lookback())
        sig_start = max(0, start - warm)
        signals = strategy.signals(self._slice(sig_start, end))
        skip = start - sig_start
        actions = signals.actions[skip:]
        size = None if signals.size is None else signals.size[skip:]
        stats = None
        if self.cache:
            key = (start, end, _digest(actions), _digest(size))
            stats = self._simulated.get(key)
        if stats is None:
            result = backtest.simulate(
                self._slice(start, end), Signals(actions=actions, size=size), self.config
            )
            stats = {name: result.stats[name] for name in KEPT_STATS}
            if self.cache:
                self._simulated[key] = stats
        score = objective_value(stats, self.objective)
        if score is None:
            return Evaluation(None, False, f"{self.objective} is not finite", stats)
        if constrained:
            reason = self.constraints.violation(stats)
            if reason is not None:
                return Evaluation(score, False, reason, stats)
        return Evaluation(score, True, "", stats)
