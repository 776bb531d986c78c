"""The benchmark's baseline aggregation is a correct one (the bench itself runs in `make bench`,
not in pytest)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_marketdata.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_marketdata", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_trades_give_the_same_bar_count_as_the_dict_baseline_without_late_trades():
    bench = load_bench()
    trades = sorted(bench.make_trades(5_000), key=lambda t: (t.symbol, t.ts_ms))
    assert bench.aggregate_with_aggregator(trades) == bench.aggregate_with_dicts(trades)
