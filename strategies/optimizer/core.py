"""The optimizer run: trials over walk-forward windows, fanned out over processes.

A *trial* is one parameter set scored on the in-sample range of one window. Methods:

``grid``
    every point of the space (trial number = index in the grid), the same points in every window;
``random``
    ``trials`` points per window drawn from the space with ``numpy.random.default_rng((seed, k))``
    for trial ``k`` (the same points in every window; Simplex groups from a Dirichlet);
``tpe``
    Optuna's TPE sampler, one study per window so that a fold's search only ever sees its own
    in-sample scores; asked and told in rounds of :data:`TPE_ROUND` trials per window, the
    sampler reseeded from ``(seed, window, round)`` before each round, so a run gives the same
    trials for a seed whether or not it was interrupted and resumed between rounds;
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

Pure: numpy, the standard library and (for ``tpe``) optuna.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import itertools
import logging
import math
import multiprocessing
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from strategies import backtest, registry
from strategies.base import Candles
from strategies.optimizer.memo import IndicatorCache
from strategies.optimizer.space import Choice, FloatRange, IntRange, Simplex, Space
from strategies.optimizer.walkforward import (
    Constraints,
    Evaluation,
    Evaluator,
    Window,
    walk_forward_windows,
)
from strategies.params import ParamError

log = logging.getLogger(__name__)

METHODS = ("auto", "grid", "random", "tpe")
#: The largest grid searched point by point (a larger space needs random or tpe).
MAX_GRID = 20_000
#: Trials asked per window before telling the TPE sampler the scores.
TPE_ROUND = 8


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


# ---------------------------------------------------------------------------- worker side

# Set in the parent before the pool forks; each worker inherits it.
_WORKER: dict[str, Any] = {}


def _worker_evaluator() -> Evaluator:
    evaluator = _WORKER["evaluator"]
    if evaluator.cache and _WORKER.get("memo") is None:
        memo = IndicatorCache()
        memo.__enter__()  # for the life of this worker process
        evaluator.indicator_cache = memo
        evaluator._slices.clear()  # re-register slices with this process's cache
        _WORKER["memo"] = memo
    return evaluator


def _score(task: tuple[int, int, dict[str, Any]]) -> TrialResult:
    window_index, number, params = task
    evaluator = _worker_evaluator()
    window = _WORKER["windows"][window_index]
    result = evaluator.evaluate(params, window.is_start, window.is_end)
    return TrialResult(window_index, number, params, result.score, result.feasible,
                       result.reason, result.stats)


# ---------------------------------------------------------------------------- the run


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


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


@contextlib.contextmanager
def _children_allowed():
    """Let a daemonic process (a Celery prefork child) start the pool's workers.

    multiprocessing refuses children to daemonic processes because a daemon may exit without
    joining them. The pool here is shut down (its workers joined) when the run ends, normally or
    by an exception, so that reason does not apply to a run that finishes; a hard kill of the
    Celery child can still leave the pool's workers behind, as it would any child process. The
    flag is restored as soon as the workers have started.
    """
    process = multiprocessing.current_process()
    daemon = process._config.get("daemon")
    process._config["daemon"] = False
    try:
        yield
    finally:
        if daemon is not None:
            process._config["daemon"] = daemon
        else:
            process._config.pop("daemon", None)


class _Pool:
    """Maps tasks in this process (workers=1) or over a fork pool, in task order."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.executor = None
        self.memo = None

    def __enter__(self) -> _Pool:
        if self.workers > 1:
            try:
                context = multiprocessing.get_context("fork")
                self.executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=context
                )
                with _children_allowed():
                    # With fork, the executor starts every worker on the first submit.
                    self.executor.submit(int).result()
            except (ValueError, OSError, AssertionError) as exc:
                log.warning("optimizer runs in one process: %s", exc)
                if self.executor is not None:
                    self.executor.shutdown(wait=False, cancel_futures=True)
                self.executor = None
        return self

    def __exit__(self, *exc) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        memo = _WORKER.pop("memo", None)
        if memo is not None:
            memo.__exit__()
            _WORKER["evaluator"].indicator_cache = None

    def map(self, tasks: list) -> list[TrialResult]:
        if not tasks:
            return []
        if self.executor is None:
            return [_score(task) for task in tasks]
        chunk = max(1, math.ceil(len(tasks) / (self.workers * 4)))
        try:
            return list(self.executor.map(_score, tasks, chunksize=chunk))
        except concurrent.futures.process.BrokenProcessPool as exc:
            log.warning("optimizer pool broke (%s); continuing in one process", exc)
            self.executor = None
            return [_score(task) for task in tasks]


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
    _WORKER.clear()
    _WORKER.update(evaluator=evaluator, windows=windows)
    workers = max(1, workers or default_workers())
    # Compile the numba kernels once here, before the fork, instead of once per worker.
    tail = max(0, len(job.candles) - 300)
    evaluator.evaluate(dict(job.space.base), tail, len(job.candles), constrained=False)

    with _Pool(workers) as pool:
        if method == "tpe":
            _run_tpe(job, windows, stored, pool, on_batch)
        else:
            _run_fixed(job, method, windows, stored, pool, on_batch, batch_size)

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


def _report(on_batch, new: list[TrialResult], progress: float) -> None:
    if on_batch is not None and new:
        on_batch(new, min(progress, 1.0))


def _run_fixed(job, method, windows, stored, pool, on_batch, batch_size) -> None:
    """Grid or random trials, built a batch at a time: a run never holds more parameter sets
    than one batch (and the grid, at most ``MAX_GRID`` points) however many trials it asks."""
    if method == "grid":
        grid = job.space.grid()
        count = len(grid)
        point = grid.__getitem__
    else:
        count = job.trials

        def point(k: int) -> dict[str, Any]:  # trial k's point: the same in every window
            return job.space.sample(np.random.default_rng((job.seed, k)))

    tasks = (
        (w.index, k, point(k))
        for w in windows
        for k in range(count)
        if (w.index, k) not in stored
    )
    total = count * len(windows)
    step = max(batch_size, 1)
    while batch := list(itertools.islice(tasks, step)):
        new = pool.map(batch)
        for t in new:
            stored[(t.window, t.number)] = t
        _report(on_batch, new, len(stored) / total)


def _distributions(space: Space) -> dict[str, Any]:
    import optuna.distributions as od

    dists = {}
    for name, dim in space.dims.items():
        if isinstance(dim, IntRange):
            dists[name] = od.IntDistribution(dim.low, dim.high, step=dim.step)
        elif isinstance(dim, FloatRange):
            dists[name] = od.FloatDistribution(dim.low, dim.high, step=dim.step)
        elif isinstance(dim, Choice):
            dists[name] = od.CategoricalDistribution(dim.values)
        elif isinstance(dim, Simplex):
            raise ParamError("TPE cannot search a weight simplex; use the random method")
    return dists


def _run_tpe(job, windows, stored, pool, on_batch) -> None:
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = _distributions(job.space)
    studies = {}
    for w in windows:
        study = optuna.create_study(direction="maximize")
        for t in sorted((t for t in stored.values() if t.window == w.index),
                        key=lambda t: t.number):
            raw = {name: t.params[name] for name in dists}
            if t.feasible and t.score is not None:
                study.add_trial(create_trial(params=raw, distributions=dists, value=t.score))
            else:
                study.add_trial(create_trial(params=raw, distributions=dists,
                                             state=TrialState.FAIL))
        studies[w.index] = study
    total = job.trials * len(windows)
    while True:
        asked = []
        for w in windows:
            study = studies[w.index]
            have = len(study.trials)
            if have >= job.trials:
                continue
            rounds = have // TPE_ROUND
            study.sampler = optuna.samplers.TPESampler(
                seed=int(np.random.SeedSequence((job.seed, w.index, rounds)).generate_state(1)[0])
            )
            for _ in range(min(TPE_ROUND, job.trials - have)):
                trial = study.ask(dists)
                asked.append((w.index, trial, job.space._merge(trial.params)))
        if not asked:
            return
        new = pool.map([(wi, trial.number, params) for wi, trial, params in asked])
        for (wi, trial, _), result in zip(asked, new):
            study = studies[wi]
            if result.feasible and result.score is not None:
                study.tell(trial, result.score)
            else:
                study.tell(trial, state=TrialState.FAIL)
            stored[(result.window, result.number)] = result
        _report(on_batch, new, len(stored) / total)
