"""What an optimizer run is asked (:class:`Job`) and what it answers (:class:`TrialResult`,
:class:`FoldResult`, :class:`OptimizationResult`). Pure: the standard library."""

from __future__ import annotations

import dataclasses
from typing import Any

from strategies import backtest
from strategies.base import Candles
from strategies.optimizer.space import Space
from strategies.optimizer.walkforward import Constraints, Evaluation, Window
from strategies.params import ParamError

METHODS = ("auto", "grid", "random", "tpe")
#: The largest grid searched point by point (a larger space needs random or tpe).
MAX_GRID = 20_000


@dataclasses.dataclass(frozen=True)
class Job:
    """What to optimize and how it is judged."""

    strategy: str
    candles: Candles
    space: Space
    backtest: backtest.BacktestConfig = dataclasses.field(
        default_factory=backtest.BacktestConfig
    )
    objective: str = "sharpe"
    constraints: Constraints = dataclasses.field(default_factory=Constraints)
    folds: int = 3
    in_sample_ratio: float = 3.0
    method: str = "auto"
    #: Trials per window for random/tpe; the most grid points ``auto`` still grids.
    trials: int = 100
    seed: int = 0
    #: Current parameters, scored on the same out-of-sample ranges for comparison.
    baseline: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ParamError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.trials < 1:
            raise ParamError(f"trials must be at least 1; got {self.trials}")

    def resolved_method(self) -> str:
        if self.method == "auto":
            return "grid" if self.space.size() <= self.trials else "tpe"
        if self.method == "grid" and self.space.size() > MAX_GRID:
            raise ParamError(
                f"the grid has {self.space.size():.0f} points, more than {MAX_GRID:,}; narrow "
                "the ranges or use the random or tpe method"
            )
        return self.method


@dataclasses.dataclass(frozen=True)
class TrialResult:
    window: int
    number: int
    params: dict[str, Any]
    score: float | None
    feasible: bool
    reason: str = ""
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclasses.dataclass(frozen=True)
class FoldResult:
    window: Window
    best: TrialResult | None
    out_of_sample: Evaluation | None
    baseline_out_of_sample: Evaluation | None


@dataclasses.dataclass(frozen=True)
class OptimizationResult:
    method: str
    objective: str
    windows: list[Window]
    trials: list[TrialResult]
    folds: list[FoldResult]
    #: The final window's choice: the parameters to deploy (None when nothing was feasible).
    best: TrialResult | None
    in_sample_score: float | None
    out_of_sample_score: float | None
    baseline_in_sample_score: float | None
    baseline_out_of_sample_score: float | None

    @property
    def best_params(self) -> dict[str, Any] | None:
        return None if self.best is None else dict(self.best.params)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (without the trials)."""

        def ev(e: Evaluation | None):
            return None if e is None else dataclasses.asdict(e)

        return {
            "method": self.method,
            "objective": self.objective,
            "windows": [w.to_dict() for w in self.windows],
            "folds": [
                {
                    "window": f.window.index,
                    "best_number": None if f.best is None else f.best.number,
                    "params": None if f.best is None else f.best.params,
                    "in_sample": None if f.best is None else f.best.score,
                    "in_sample_stats": None if f.best is None else f.best.stats,
                    "out_of_sample": ev(f.out_of_sample),
                    "baseline_out_of_sample": ev(f.baseline_out_of_sample),
                }
                for f in self.folds
            ],
            "best_params": self.best_params,
            "best_number": None if self.best is None else self.best.number,
            "in_sample_score": self.in_sample_score,
            "out_of_sample_score": self.out_of_sample_score,
            "baseline_in_sample_score": self.baseline_in_sample_score,
            "baseline_out_of_sample_score": self.baseline_out_of_sample_score,
        }
