"""The optimizer run: trials over walk-forward windows, fanned out over processes.

A *trial* is one parameter set scored on the in-sample range of one window. Methods:

``grid``
    every point of the space (trial number = index in the grid), the same points in every window;
``random``
    ``trials`` points per window drawn from the space with ``numpy.random.default_rng((seed, k))``
    for trial ``k`` (the same points in every window; Simplex groups from a Dirichlet);
``tpe``
    Optuna's TPE sampler, one study per window so that a fold's search only ever sees its own
    in-sample scores; asked and told in rounds of :data:`~strategies.optimizer.search.TPE_ROUND`
    trials per window, the sampler reseeded from ``(seed, window, round)`` before each round, so
    a run gives the same trials for a seed whether or not it was interrupted and resumed between
    rounds;
``auto``
    grid when the grid has at most ``trials`` points, else TPE.

Per window the best feasible trial (highest score; lowest number on a tie) is chosen. Each
fold's choice is then scored on its out-of-sample range, and so are the ``baseline`` parameters
(the config's current ones), so both are judged on bars that chose nothing. The run's
out-of-sample score is the mean over folds; the parameters it proposes are the final window's
choice.

Parallelism: trials run in a ``fork`` process pool (every core by default). Workers inherit the
candles and keep their own indicator cache. Resuming: pass the trials already stored as
``done``; they are not evaluated again, and ``on_batch`` receives each newly scored batch so the
caller can store it before the next one starts.

Modules: :mod:`.job` (what is asked and answered), :mod:`.search` (grid, random, TPE),
:mod:`.pool` (where trials are scored), this one (the run: choose per window, score out of
sample).

Pure: numpy, the standard library and (for ``tpe``) optuna.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from strategies import registry
from strategies.optimizer import pool, search
from strategies.optimizer.job import (
    MAX_GRID,
    METHODS,
    FoldResult,
    Job,
    OptimizationResult,
    TrialResult,
)
from strategies.optimizer.pool import default_workers
from strategies.optimizer.search import TPE_ROUND
from strategies.optimizer.space import Space
from strategies.optimizer.walkforward import Evaluator, walk_forward_windows
from strategies.params import ParamError

__all__ = [
    "MAX_GRID",
    "METHODS",
    "TPE_ROUND",
    "FoldResult",
    "Job",
    "OptimizationResult",
    "TrialResult",
    "default_workers",
    "optimize",
    "warmup_bars",
]


def warmup_bars(strategy: str, space: Space, baseline: dict[str, Any] | None = None) -> int:
    """A warm-up long enough for the space's longest lookback (its largest values)."""
    cls = registry.get(strategy)
    best = 0
    for params in (space.corner(), dict(space.base), baseline or {}):
        try:
            best = max(best, cls(cls.Params.from_dict(params)).lookback())
        except ParamError:
            continue
    return best


def _pick(trials: Iterable[TrialResult]) -> TrialResult | None:
    best = None
    for t in sorted(trials, key=lambda t: t.number):
        if t.feasible and t.score is not None and (best is None or t.score > best.score):
            best = t  # strictly better only: the lowest number wins a tie
    return best


def optimize(
    job: Job,
    *,
    workers: int | None = None,
    done: Iterable[TrialResult] = (),
    on_batch: Callable[[list[TrialResult], float], None] | None = None,
    batch_size: int = 64,
    cache: bool = True,
) -> OptimizationResult:
    """Run ``job``: score every trial on every window's in-sample range, choose, then score the
    choices and the baseline out of sample. See the module docstring."""
    windows = walk_forward_windows(len(job.candles), job.folds, job.in_sample_ratio)
    method = job.resolved_method()
    evaluator = Evaluator(
        job.strategy, job.candles, job.backtest, objective=job.objective,
        constraints=job.constraints, warmup_bars=warmup_bars(job.strategy, job.space, job.baseline),
        cache=cache,
    )
    stored: dict[tuple[int, int], TrialResult] = {}
    for t in done:
        stored[(t.window, t.number)] = t
    pool.WORKER.clear()
    pool.WORKER.update(evaluator=evaluator, windows=windows)
    workers = max(1, workers or pool.default_workers())
    # Compile the numba kernels once here, before the fork, instead of once per worker.
    tail = max(0, len(job.candles) - 300)
    evaluator.evaluate(dict(job.space.base), tail, len(job.candles), constrained=False)

    with pool.Pool(workers) as trials_pool:
        if method == "tpe":
            search.run_tpe(job, windows, stored, trials_pool, on_batch)
        else:
            search.run_fixed(job, method, windows, stored, trials_pool, on_batch, batch_size)

        trials = sorted(stored.values(), key=lambda t: (t.window, t.number))
        by_window: dict[int, list[TrialResult]] = {w.index: [] for w in windows}
        for t in trials:
            by_window[t.window].append(t)
        folds = []
        for window in windows[:-1]:
            best = _pick(by_window[window.index])
            oos = None if best is None else evaluator.evaluate(
                best.params, window.oos_start, window.oos_end, constrained=False)
            base = None if job.baseline is None else evaluator.evaluate(
                job.baseline, window.oos_start, window.oos_end, constrained=False)
            folds.append(FoldResult(window, best, oos, base))
        final = windows[-1]
        best = _pick(by_window[final.index])
        base_is = None if job.baseline is None else evaluator.evaluate(
            job.baseline, final.is_start, final.is_end, constrained=False)

    oos_scores = [None if f.out_of_sample is None else f.out_of_sample.score for f in folds]
    base_scores = [None if f.baseline_out_of_sample is None else f.baseline_out_of_sample.score
                   for f in folds]
    return OptimizationResult(
        method=method,
        objective=job.objective,
        windows=windows,
        trials=trials,
        folds=folds,
        best=best,
        in_sample_score=None if best is None else best.score,
        out_of_sample_score=_mean(oos_scores),
        baseline_in_sample_score=None if base_is is None else base_is.score,
        baseline_out_of_sample_score=_mean(base_scores),
    )


def _mean(values: list[float | None]) -> float | None:
    """Mean, or None when any value is missing (a fold without a choice fails the run)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))
