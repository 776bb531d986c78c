"""The optimizer benchmark runs and reports rows in the shape `make bench` expects."""

from __future__ import annotations

import pytest

from bench import bench_optimizer


def test_bench_rows_have_the_agreed_keys_and_consistent_figures():
    rows = bench_optimizer.run(bars=6_000, workers=2)
    assert len(rows) == 3
    for r in rows:
        assert set(r) == {"name", "value", "unit", "baseline", "baseline_value", "ratio"}
        assert r["value"] > 0 and r["baseline_value"] > 0
    total, rate, _cpu = rows
    assert total["ratio"] == pytest.approx(total["baseline_value"] / total["value"], rel=0.02)
    assert rate["value"] == pytest.approx(200 / total["value"], rel=0.02)
