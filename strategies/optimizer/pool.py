"""Where an optimizer run's trials are scored: in this process, or over a ``fork`` process pool
whose workers inherit the candles (through :data:`WORKER`) and keep their own indicator cache.
Pure: the standard library and numpy."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import multiprocessing
import os
from typing import Any

from strategies.optimizer.job import TrialResult
from strategies.optimizer.memo import IndicatorCache
from strategies.optimizer.walkforward import Evaluator

log = logging.getLogger(__name__)

# Set in the parent before the pool forks; each worker inherits it.
WORKER: dict[str, Any] = {}


def _worker_evaluator() -> Evaluator:
    evaluator = WORKER["evaluator"]
    if evaluator.cache and WORKER.get("memo") is None:
        memo = IndicatorCache()
        memo.__enter__()  # for the life of this worker process
        evaluator.indicator_cache = memo
        evaluator._slices.clear()  # re-register slices with this process's cache
        WORKER["memo"] = memo
    return evaluator


def score(task: tuple[int, int, dict[str, Any]]) -> TrialResult:
    window_index, number, params = task
    evaluator = _worker_evaluator()
    window = WORKER["windows"][window_index]
    result = evaluator.evaluate(params, window.is_start, window.is_end)
    return TrialResult(window_index, number, params, result.score, result.feasible,
                       result.reason, result.stats)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


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


class Pool:
    """Maps tasks in this process (workers=1) or over a fork pool, in task order."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.executor = None
        self.memo = None

    def __enter__(self) -> Pool:
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
        memo = WORKER.pop("memo", None)
        if memo is not None:
            memo.__exit__()
            WORKER["evaluator"].indicator_cache = None

    def map(self, tasks: list) -> list[TrialResult]:
        if not tasks:
            return []
        if self.executor is None:
            return [score(task) for task in tasks]
        chunk = max(1, math.ceil(len(tasks) / (self.workers * 4)))
        try:
            return list(self.executor.map(score, tasks, chunksize=chunk))
        except concurrent.futures.process.BrokenProcessPool as exc:
            log.warning("optimizer pool broke (%s); continuing in one process", exc)
            self.executor = None
            return [score(task) for task in tasks]
