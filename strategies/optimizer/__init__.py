"""Parameter optimization with walk-forward validation (pure core).

Public names: :class:`Job`, :func:`optimize`, :class:`OptimizationResult`, :class:`TrialResult`,
:class:`Space` (+ dimensions), :class:`Constraints`, :data:`OBJECTIVES`,
:func:`walk_forward_windows`. See :mod:`strategies.optimizer.core` for how a run works.
"""

from strategies.optimizer.core import (
    METHODS,
    FoldResult,
    Job,
    OptimizationResult,
    TrialResult,
    default_workers,
    optimize,
)
from strategies.optimizer.space import Choice, FloatRange, IntRange, Simplex, Space
from strategies.optimizer.walkforward import (
    OBJECTIVES,
    Constraints,
    Evaluation,
    Evaluator,
    Window,
    objective_value,
    walk_forward_windows,
)

__all__ = [
    "METHODS",
    "OBJECTIVES",
    "Choice",
    "Constraints",
    "Evaluation",
    "Evaluator",
    "FloatRange",
    "FoldResult",
    "IntRange",
    "Job",
    "OptimizationResult",
    "Simplex",
    "Space",
    "TrialResult",
    "Window",
    "default_workers",
    "objective_value",
    "optimize",
    "walk_forward_windows",
]
