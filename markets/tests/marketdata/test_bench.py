"""The benchmark module runs and reports rows in the shape `make bench` expects."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_marketdata.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_marketdata", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_rows_have_the_agreed_keys_and_positive_figures():
    rows = load_bench().run(n_trades=3_000, n_candles=300, repeats=1, n_stored=None)
    assert len(rows) >= 4
    for r in rows:
        assert set(r) == {"name", "value", "unit", "baseline", "baseline_value", "ratio"}
        assert r["value"] > 0 and r["baseline_value"] > 0
        assert r["ratio"] == pytest.approx(r["value"] / r["baseline_value"], abs=0.01)


def test_bench_trades_give_the_same_bar_count_as_the_dict_baseline_without_late_trades():
    bench = load_bench()
    trades = sorted(bench.make_trades(5_000), key=lambda t: (t.symbol, t.ts_ms))
    assert bench.aggregate_with_aggregator(trades) == bench.aggregate_with_dicts(trades)
