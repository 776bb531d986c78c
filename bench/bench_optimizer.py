"""Benchmark: a 200-trial grid for ``ma_cross`` over 90 days of 1m candles, 3 walk-forward folds.

Data: 129,600 synthetic 1m candles (a seeded geometric random walk). Grid: short 5..14 ×
mid {20, 30, 40, 50} × long {60, 120, 180, 240, 300} = 200 parameter sets, each scored on the
in-sample ranges of 3 folds and the final window (800 backtests), then the choices out of
sample. Objective Sharpe, 0.05 % taker fee.

Wall-clock figures depend on what else the machine runs (on a shared 2-core machine the two
pool processes rarely get both cores); the CPU-time row sums user and system time of every
process and does not.

Measured: the optimizer as it runs in a task (a fork pool over every core, indicator arrays
memoized per window, identical action sequences simulated once) against the baseline, the same
grid one trial at a time in one process with no caching. Both must choose the same parameters.
A trial here is one parameter set (scored on all four windows).

Run: ``python -m bench.bench_optimizer [--workers N]``.
"""

from __future__ import annotations

import argparse
import resource
import time

from bench.bench_backtest import synthetic_year
from strategies import backtest, registry
from strategies.base import Candles
from strategies.optimizer import Job, Space, default_workers, optimize
from strategies.trade_math import RiskParams

BARS = 90 * 1440
GRID = {
    "short": {"min": 5, "max": 14},
    "mid": [20, 30, 40, 50],
    "long": [60, 120, 180, 240, 300],
}




def job(candles: Candles) -> Job:
    space = Space.from_params(registry.get("ma_cross").Params, GRID)
    config = backtest.BacktestConfig(risk=RiskParams(fee_rate=0.0005), timeframe="1m")
    return Job("ma_cross", candles, space, backtest=config, method="grid", trials=200, folds=3)


def run(bars: int = BARS, workers: int | None = None) -> list[dict]:
    candles = synthetic_year(bars)  # the same seeded walk as the backtest bench
    the_job = job(candles)
    workers = workers or default_workers()
    # Compile the numba kernels first so neither side pays for it.
    optimize(job(candles[: min(20_000, bars)]), workers=1, cache=False)

    cpu, start = _cpu_s(), time.perf_counter()
    fast = optimize(the_job, workers=workers)
    fast_s, fast_cpu = time.perf_counter() - start, _cpu_s() - cpu
    cpu, start = _cpu_s(), time.perf_counter()
    slow = optimize(the_job, workers=1, cache=False)
    slow_s, slow_cpu = time.perf_counter() - start, _cpu_s() - cpu
    if fast.summary() != slow.summary():
        raise AssertionError("cached parallel and uncached serial runs chose differently")
    n = len(the_job.space.grid())
    label = f"ma_cross {n}-trial grid, 3 folds, {bars:,} 1m bars"
    baseline = "same grid, one trial at a time, no caching"
    return [
        {
            "name": f"{label}: total time ({workers} processes, cached)",
            "value": round(fast_s, 3),
            "unit": "s",
            "baseline": baseline,
            "baseline_value": round(slow_s, 3),
            "ratio": round(slow_s / fast_s, 2),
        },
        {
            "name": f"{label}: trials per second",
            "value": round(n / fast_s, 2),
            "unit": "trials/s",
            "baseline": baseline,
            "baseline_value": round(n / slow_s, 2),
            "ratio": round(slow_s / fast_s, 2),
        },
        {
            "name": f"{label}: CPU time, all processes (cached)",
            "value": round(fast_cpu, 3),
            "unit": "CPU s",
            "baseline": baseline,
            "baseline_value": round(slow_cpu, 3),
            "ratio": round(slow_cpu / fast_cpu, 2),
        },
    ]


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its reaped children (the pool's workers
    are joined when a run ends), so the figure does not depend on other load on the machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--bars", type=int, default=BARS)
    args = parser.parse_args()
    for row in run(args.bars, args.workers):
        print(f"{row['name']}: {row['value']} {row['unit']} vs {row['baseline_value']} "
              f"({row['baseline']}), ratio {row['ratio']}")


if __name__ == "__main__":
    main()
