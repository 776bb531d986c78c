"""How an optimizer run chooses its trials: the grid or random points batch by batch
(:func:`run_fixed`), or Optuna's TPE sampler in rounds per window (:func:`run_tpe`). Each scores
its trials through a :class:`~strategies.optimizer.pool.Pool` and adds them to ``stored``.
Pure: numpy and (for TPE) optuna."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from strategies.optimizer.job import TrialResult
from strategies.optimizer.space import Choice, FloatRange, IntRange, Simplex, Space
from strategies.params import ParamError

#: Trials asked per window before telling the TPE sampler the scores.
TPE_ROUND = 8


def _report(on_batch, new: list[TrialResult], progress: float) -> None:
    if on_batch is not None and new:
        on_batch(new, min(progress, 1.0))


def run_fixed(job, method, windows, stored, pool, on_batch, batch_size) -> None:
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


def run_tpe(job, windows, stored, pool, on_batch) -> None:
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
