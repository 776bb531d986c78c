"""Benchmark: one year of 1m candles through every strategy, signals + backtest with stops and fees.

Data: 525,600 synthetic 1m candles (a seeded geometric random walk). Each strategy runs with
its default parameters, a 0.05 % taker fee, 2 bps slippage, a 2 % stop-loss and a 4 %
take-profit (``macd_turtle`` sizes with the ATR unit). The figure per strategy is the best of
``REPEATS`` warm runs of ``backtest.run`` (signals + the event loop + statistics), wall clock
with CPU time beside it; the first, compiling run is reported separately.

Baseline: backtesting.py 0.6.6 (``pip install backtesting==0.6.6``) runs the same two rules
(the three-SMA cross of ``ma_cross`` and the Bollinger reversion of ``bollinger``, long only,
same stops, same commission) on the same candles in the same run. It is slow, so by default it
gets the first ``BASELINE_BARS`` candles and its time is scaled linearly to the full year (its
loop is per bar, so linear scaling is fair); ``--baseline-bars 525600`` runs it on all of them.

Memory (issue 5: under 200 MB peak for the whole backtest process): a fresh child process
whose database is a scratch SQLite file runs ``manage.py backtest`` (``call_command``) for
every strategy over the whole year, one after the other: each loads the year with
``markets.candles.load_candles``, computes the signals, simulates and stores a ``BacktestRun``
with its trades, the real command's path. Its peak RSS is the figure; the row names the
strategy during which it was reached and whether the kernels ran compiled ahead of time
(``aot``, ``python -m strategies.aot``) or through numba's JIT. The baseline is a child that
only sets Django up and imports the same modules, so the difference is what the candles, the
backtests and the saves cost. Peak RSS is ``VmHWM`` of the child's own image (``ru_maxrss``
would inherit the parent's peak through fork and exec). The scratch database is migrated and
written by a third child beforehand, so writing it counts against neither.

Run: ``python -m bench.bench_backtest [--baseline-bars N]`` (prints a table).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from strategies import backtest, registry, sizing
from strategies.base import Candles
from strategies.trade_math import RiskParams

BARS = 525_600
REPEATS = 7
BASELINE_BARS = 100_000
MEMORY_GOAL_MB = 200
RISK = RiskParams(fee_rate=0.0005, slippage_bps=2.0, stop_loss_pct=2.0, take_profit_pct=4.0)


def synthetic_year(n: int = BARS, seed: int = 42) -> Candles:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    open_ = np.concatenate(([30_000.0], close[:-1]))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.0006, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.0006, n))
    start = 1_672_531_200_000  # 2023-01-01 00:00 UTC
    times = start + np.arange(n, dtype=np.int64) * 60_000
    return Candles.from_arrays(times, open_, high, low, close, rng.uniform(1, 10, n))


def _config(name: str) -> backtest.BacktestConfig:
    sizing_params = sizing.AtrUnit(risk_pct=1.0, atr_period=20) if name == "macd_turtle" else None
    return backtest.BacktestConfig(risk=RISK, sizing=sizing_params, timeframe="1m")


def time_strategy(
    name: str, candles: Candles
) -> tuple[float, float, float, backtest.BacktestResult]:
    """(first run s, best warm wall-clock s, best warm CPU s, result) for one strategy.

    CPU time (``time.process_time``) is reported beside wall-clock time because other jobs
    share this machine's two cores; numpy and numba run single-threaded here, so CPU time is
    the run's own cost.
    """
    strategy = registry.build(name)
    config = _config(name)
    start = time.perf_counter()
    result = backtest.run(strategy, candles, config)
    first = time.perf_counter() - start
    best = best_cpu = float("inf")
    for _ in range(REPEATS):
        start, cpu = time.perf_counter(), time.process_time()
        result = backtest.run(strategy, candles, config)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return first, best, best_cpu, result


def _baseline(candles: Candles, bars: int) -> dict[str, float] | None:
    """Seconds backtesting.py needs per rule on ``bars`` candles, or None if not installed."""
    try:
        import pandas as pd
        from backtesting import Backtest, Strategy
        from backtesting.lib import crossover
    except ImportError:
        return None

    def sma(values, period):
        return pd.Series(values).rolling(period).mean().to_numpy()

    def band(values, period, k, sign):
        series = pd.Series(values).rolling(period)
        return (series.mean() + sign * k * series.std(ddof=0)).to_numpy()

    class SmaCross(Strategy):
        def init(self):
            close = self.data.Close
            self.s = self.I(sma, close, 7)
            self.m = self.I(sma, close, 20)
            self.long = self.I(sma, close, 60)

        def next(self):
            s, m, lg = self.s, self.m, self.long
            if crossover(s, m) and s[-1] > s[-2] and m[-1] > m[-2] and lg[-1] > lg[-2]:
                price = self.data.Close[-1]
                if not self.position:
                    self.buy(sl=price * 0.98, tp=price * 1.04)
            elif crossover(m, s) and self.position:
                self.position.close()

    class BollingerReversion(Strategy):
        def init(self):
            close = self.data.Close
            self.mid = self.I(sma, close, 20)
            self.lower = self.I(band, close, 20, 2.0, -1.0)

        def next(self):
            close = self.data.Close
            if close[-2] < self.lower[-2] and close[-1] >= self.lower[-1]:
                if not self.position:
                    self.buy(sl=close[-1] * 0.98, tp=close[-1] * 1.04)
            elif crossover(close, self.mid) and self.position:
                self.position.close()

    part = candles[:bars]
    frame = pd.DataFrame(
        {"Open": part.open, "High": part.high, "Low": part.low, "Close": part.close,
         "Volume": part.volume},
        index=pd.to_datetime(part.open_time_ms, unit="ms"),
    )
    seconds = {}
    for label, rule in (("ma_cross", SmaCross), ("bollinger", BollingerReversion)):
        test = Backtest(frame, rule, cash=1e12, commission=0.0005, finalize_trades=True)
        start = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            test.run()
        seconds[label] = time.perf_counter() - start
    return seconds


# -- peak memory of a whole backtest process ----------------------------------------------------


def _peak_rss_kb() -> int:
    """This process image's peak RSS in KiB: ``VmHWM`` (Linux, reset by exec). Not
    ``ru_maxrss``, which Linux carries over from the parent through fork and exec, so a child
    of a large bench process would report the parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


#: ``manage.py backtest`` options per strategy for the memory row: the timing rows' costs and
#: risk (0.05 % fee, 2 bps slippage, 2 % stop, 4 % target), ``macd_turtle`` sized by ATR unit.
MEMORY_OPTIONS = {
    "fee": "5", "slippage": "2", "risk": json.dumps({"stop_loss_pct": 2, "take_profit_pct": 4}),
}


def _year_range() -> tuple[str, str]:
    first_ms = int(synthetic_year(1).open_time_ms[0])
    start = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(first_ms / 1000))
    end = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(first_ms / 1000 + BARS * 60))
    return start, end


def _memory_child(mode: str, path: str) -> dict:
    """In a fresh interpreter whose database is the SQLite file ``path`` (``DATABASE_URL``, set
    by the parent): ``write`` migrate it and store the synthetic year; ``imports`` set Django up
    and import what ``manage.py backtest`` imports; ``backtest`` run ``manage.py backtest`` for
    every registered strategy over the whole year (each loads the candles, runs and stores a
    ``BacktestRun`` with its trades). Returns the peak RSS and what was done."""
    import django

    django.setup()
    from django.core.management import call_command

    from strategies import _jit

    out: dict = {"mode": mode, "kernels": _jit.MODE}
    if mode == "write":
        from bench.common import scratch_symbol
        from markets.candles import upsert_candles

        call_command("migrate", verbosity=0)
        symbol_id = scratch_symbol("default")
        year = synthetic_year()
        rows = list(zip(year.open_time_ms.tolist(), year.open.tolist(), year.high.tolist(),
                        year.low.tolist(), year.close.tolist(), year.volume.tolist()))
        out["counts"] = upsert_candles(symbol_id, "1m", rows)
    elif mode == "backtest":
        from strategies.models import BacktestRun

        start, end = _year_range()
        out["trades"], out["peak_after_kb"] = {}, {}
        for name in registry.names():
            sizing_options = (
                {"sizing": "atr_unit", "sizing_params": '{"risk_pct": 1, "atr_period": 20}'}
                if name == "macd_turtle" else {}
            )
            call_command(
                "backtest", strategy=name, venue="bench", symbol="KRW-BENCH", timeframe="1m",
                start=start, end=end, stdout=io.StringIO(), **MEMORY_OPTIONS, **sizing_options,
            )
            run = BacktestRun.objects.latest("pk")
            if run.status != BacktestRun.Status.DONE or run.stats["bars"] != BARS:
                raise AssertionError(f"{name}: {run.status} over {run.stats.get('bars')} bars")
            out["trades"][name] = run.stats["trade_count"]
            out["peak_after_kb"][name] = _peak_rss_kb()
            del run
    elif mode == "imports":
        from strategies import services  # noqa: F401 - what the command imports
        from strategies.management.commands import backtest as command  # noqa: F401

        registry.names()
    else:
        raise ValueError(f"unknown memory child mode {mode!r}")
    out["peak_rss_kb"] = _peak_rss_kb()
    return out


def _spawn_memory_child(mode: str, path: str) -> dict:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tradesite.settings",
           "DATABASE_URL": f"sqlite:///{path}"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_backtest", "--memory-child", mode, path],
        cwd=root, env=env, stdout=subprocess.PIPE, text=True, check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_row() -> dict:
    """Peak RSS of a fresh process that runs ``manage.py backtest`` for every strategy over a
    year of 1m candles in SQLite, against a fresh process that only sets Django up and imports
    the same modules."""
    with tempfile.TemporaryDirectory(prefix="bench-backtest-memory-") as tmp:
        path = str(Path(tmp) / "year.sqlite3")
        written = _spawn_memory_child("write", path)
        if written["counts"] != [BARS, 0]:
            raise AssertionError(f"scratch year not written: {written}")
        measured = _spawn_memory_child("backtest", path)
        imports = _spawn_memory_child("imports", path)
    peak_mb = measured["peak_rss_kb"] / 1024
    base_mb = imports["peak_rss_kb"] / 1024
    worst = max(measured["peak_after_kb"], key=measured["peak_after_kb"].get)
    return {
        "name": f"peak RSS: manage.py backtest of all {len(measured['trades'])} strategies, "
                f"{BARS:,} 1m candles from SQLite, kernels {measured['kernels']} (goal < "
                f"{MEMORY_GOAL_MB} MB; peak reached by {worst})",
        "value": round(peak_mb, 1),
        "unit": "MB",
        "baseline": "fresh process setting Django up and importing the same modules",
        "baseline_value": round(base_mb, 1),
        "ratio": round(peak_mb / base_mb, 2),
        "meets_goal": peak_mb < MEMORY_GOAL_MB,
        "trades": measured["trades"],
    }


def run(baseline_bars: int = BASELINE_BARS) -> list[dict]:
    candles = synthetic_year()
    baseline = _baseline(candles, min(baseline_bars, len(candles)))
    scale = len(candles) / min(baseline_bars, len(candles))
    rows = []
    for name in registry.names():
        first, best, best_cpu, result = time_strategy(name, candles)
        base_value = baseline.get(name) * scale if baseline and name in baseline else None
        rows.append({
            "name": f"{name}: signals + backtest, {len(candles):,} 1m bars",
            "value": round(best, 4),
            "unit": "s",
            "baseline": (
                f"backtesting.py 0.6.6 same rule, {min(baseline_bars, len(candles)):,} bars"
                + (" scaled to a year" if scale != 1 else "")
            ) if base_value is not None else None,
            "baseline_value": round(base_value, 3) if base_value is not None else None,
            "ratio": round(base_value / best, 1) if base_value is not None else None,
            "bars_per_s": round(len(candles) / best),
            "cpu_s": round(best_cpu, 4),
            "first_run_s": round(first, 3),
            "trades": result.stats["trade_count"],
        })
    rows.append(memory_row())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-bars", type=int, default=BASELINE_BARS)
    parser.add_argument("--memory-child", nargs=2, metavar=("MODE", "PATH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(_memory_child(*args.memory_child)))
        return
    rows = run(args.baseline_bars)
    memory = rows.pop()
    print(f"{memory['name']}: {memory['value']} MB (baseline {memory['baseline_value']} MB: "
          f"{memory['baseline']})")
    header = f"{'strategy':<58} {'best s':>8} {'cpu s':>7} {'bars/s':>12} {'1st s':>7} "
    header += f"{'trades':>7} "
    header += f"{'baseline s':>11} {'ratio':>7}"
    print(header)
    for row in rows:
        base = row["baseline_value"]
        print(
            f"{row['name']:<58} {row['value']:>8.4f} {row['cpu_s']:>7.4f} {row['bars_per_s']:>12,} "
            f"{row['first_run_s']:>7.3f} {row['trades']:>7} "
            f"{'' if base is None else f'{base:.2f}':>11} "
            f"{'' if row['ratio'] is None else row['ratio']:>7}"
        )
    baselines = {r["baseline"] for r in rows if r["baseline"]}
    for text in sorted(baselines):
        print(f"baseline: {text}")


if __name__ == "__main__":
    main()
