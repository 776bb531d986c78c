"""The pure optimizer: walk-forward windows, choice without out-of-sample bars, determinism,
constraints, caching, parallel workers and resuming."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from strategies import registry
from strategies.base import Candles
from strategies.optimizer import (
    Constraints,
    Job,
    Simplex,
    Space,
    optimize,
    walk_forward_windows,
)
from strategies.optimizer.memo import IndicatorCache
from strategies.params import ParamError
from strategies.tests.conftest import random_walk

MA_RANGES = {"short": [3, 5, 8, 30], "mid": [12, 20, 30], "long": [40, 60]}


def ma_job(candles: Candles, **kwargs) -> Job:
    space = Space.from_params(registry.get("ma_cross").Params, MA_RANGES)
    defaults = dict(method="grid", trials=100, constraints=Constraints(min_trades=1))
    defaults.update(kwargs)
    return Job("ma_cross", candles, space, **defaults)


def comparable(result) -> list:
    return [(t.window, t.number, t.params, t.score, t.feasible, t.reason) for t in result.trials]


def scaled_after(candles: Candles, start: int, end: int, factor: float) -> Candles:
    """Prices of bars [start, end) multiplied by ``factor`` (a shock the chooser must not see)."""
    cols = {f.name: getattr(candles, f.name).copy() for f in dataclasses.fields(candles)}
    for name in ("open", "high", "low", "close"):
        cols[name][start:end] *= factor
    return Candles(**cols)


@pytest.fixture(scope="module")
def candles():
    return random_walk(4000, seed=7, vol=0.004)


def test_windows_put_each_out_of_sample_range_right_after_its_in_sample_range():
    windows = walk_forward_windows(1200, folds=3, in_sample_ratio=3.0)
    folds, final = windows[:-1], windows[-1]
    assert [(w.is_start, w.is_end, w.oos_start, w.oos_end) for w in folds] == [
        (0, 600, 600, 800), (200, 800, 800, 1000), (400, 1000, 1000, 1200)
    ]
    assert final.final and (final.is_start, final.is_end) == (600, 1200)
    for w in folds:
        assert w.is_end <= w.oos_start  # no overlap between what chooses and what scores


def test_windows_refuse_a_series_too_short_for_the_folds():
    with pytest.raises(ParamError, match="too few"):
        walk_forward_windows(50, folds=3)


def test_out_of_sample_bars_never_change_the_parameters_chosen_before_them(candles):
    job = ma_job(candles)
    base = optimize(job, workers=1)
    for fold in base.folds:
        w = fold.window
        # Shock every bar of this fold's out-of-sample range (and nothing before it).
        shocked = scaled_after(candles, w.oos_start, w.oos_end,
                               np.linspace(1.0, 1.6, w.oos_end - w.oos_start))
        again = optimize(dataclasses.replace(job, candles=shocked), workers=1)
        for before, after in zip(base.folds, again.folds):
            if before.window.is_end <= w.oos_start:
                assert after.best.params == before.best.params
                assert after.best.score == before.best.score
        # The shock did reach the score of this fold's choice: the bars are really used there.
        same_fold = again.folds[w.index]
        assert same_fold.out_of_sample.stats != fold.out_of_sample.stats


def test_same_seed_gives_the_same_result_and_another_seed_other_trials(candles):
    cls = registry.get("ma_cross")
    space = Space.from_params(cls.Params, {"short": {"min": 3, "max": 15},
                                           "mid": {"min": 16, "max": 40}})
    for method in ("random", "tpe"):
        job = Job("ma_cross", candles, space, method=method, trials=12, seed=3)
        first, second = optimize(job, workers=1), optimize(job, workers=1)
        assert comparable(first) == comparable(second)
        assert first.summary() == second.summary()
        other = optimize(dataclasses.replace(job, seed=4), workers=1)
        assert [t.params for t in other.trials] != [t.params for t in first.trials]


def test_invalid_parameter_combinations_are_infeasible_not_errors(candles):
    result = optimize(ma_job(candles), workers=1)
    bad = [t for t in result.trials if t.params["short"] >= t.params["mid"]]
    assert bad, "the grid holds short >= mid points"
    assert all(not t.feasible and "short < mid < long" in t.reason for t in bad)
    for fold in result.folds:
        assert fold.best.params["short"] < fold.best.params["mid"]


def test_constraints_exclude_trials_and_the_choice_respects_them(candles):
    loose = optimize(ma_job(candles), workers=1)
    counts = sorted(t.stats["trade_count"] for t in loose.trials if t.stats)
    floor = counts[len(counts) // 2]
    limit = float(np.median([t.stats["max_drawdown"] for t in loose.trials if t.stats]))
    strict = optimize(ma_job(candles, constraints=Constraints(min_trades=floor,
                                                              max_drawdown=limit)), workers=1)
    assert any(not t.feasible and "fewer than the minimum" in t.reason for t in strict.trials)
    assert any(not t.feasible and "above the limit" in t.reason for t in strict.trials)
    chosen = [f.best for f in strict.folds if f.best] + ([strict.best] if strict.best else [])
    assert chosen
    for t in chosen:
        assert t.stats["trade_count"] >= floor and t.stats["max_drawdown"] <= limit


def test_nothing_feasible_means_no_proposal(candles):
    result = optimize(ma_job(candles, constraints=Constraints(min_trades=10**6)), workers=1)
    assert result.best is None and result.out_of_sample_score is None
    assert all(f.best is None for f in result.folds)


def test_objectives_rank_by_their_own_statistic(candles):
    for objective in ("sortino", "total_return", "return_over_drawdown"):
        result = optimize(ma_job(candles, objective=objective), workers=1)
        final = [t for t in result.trials if t.window == result.best.window and t.feasible]
        assert result.best.score == max(t.score for t in final)
    with pytest.raises(ParamError, match="objective"):
        optimize(ma_job(candles, objective="luck"), workers=1)


def test_caching_and_parallel_workers_change_nothing_but_speed(candles):
    job = ma_job(candles)
    serial_uncached = optimize(job, workers=1, cache=False)
    serial = optimize(job, workers=1)
    parallel = optimize(job, workers=2, batch_size=20)
    assert comparable(serial_uncached) == comparable(serial) == comparable(parallel)
    assert serial.summary() == parallel.summary() == serial_uncached.summary()


def test_every_registered_strategy_gives_the_same_signals_with_memoized_indicators():
    candles = random_walk(3000, seed=2)
    for name in registry.names():
        strategy = registry.build(name, {})
        plain = strategy.signals(candles)
        with IndicatorCache() as memo:
            memo.add_stable([candles.open, candles.high, candles.low, candles.close,
                             candles.volume, candles.open_time_ms])
            first = strategy.signals(candles)
            cached = strategy.signals(candles)
        for got in (first, cached):
            np.testing.assert_array_equal(got.actions, plain.actions, err_msg=name)
            np.testing.assert_array_equal(got.score, plain.score, err_msg=name)


def test_indicator_cache_hits_on_repeated_inputs_and_returns_read_only_arrays():
    from strategies import indicators as ind

    close = random_walk(500, seed=1).close
    with IndicatorCache() as memo:
        memo.add_stable([close])
        a = ind.sma(close, 10)
        b = ind.sma(close, 10)
        ind.sma(close.copy(), 10)  # a temporary: not a key, computed directly
    assert a is b and memo.hits == 1 and memo.misses == 1
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 1.0
    assert ind.sma.__module__ == "strategies.indicators"  # unpatched after the block


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("method", ["grid", "tpe"])
def test_an_interrupted_run_resumes_without_rescoring_stored_trials(candles, method):
    if method == "grid":
        job = ma_job(candles)
    else:
        space = Space.from_params(registry.get("ma_cross").Params,
                                  {"short": {"min": 3, "max": 15}, "mid": {"min": 16, "max": 40}})
        job = Job("ma_cross", candles, space, method="tpe", trials=16, seed=5)
    whole = optimize(job, workers=1)
    stored = []

    def store_then_die(batch, progress):
        stored.extend(batch)
        if len(stored) >= len(whole.trials) // 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        optimize(job, workers=1, on_batch=store_then_die, batch_size=10)
    assert 0 < len(stored) < len(whole.trials)
    rescored = []
    resumed = optimize(job, workers=1, done=list(stored),
                       on_batch=lambda batch, progress: rescored.extend(batch), batch_size=10)
    done_keys = {(t.window, t.number) for t in stored}
    assert not done_keys & {(t.window, t.number) for t in rescored}
    assert len(stored) + len(rescored) == len(whole.trials)
    assert comparable(resumed) == comparable(whole)
    assert resumed.summary() == whole.summary()


def test_simplex_weights_are_non_negative_and_sum_to_one():
    cls = registry.get("ensemble").Params
    names = ("w_trend", "w_momentum", "w_swing", "w_scalping", "w_day", "w_price_action")
    space = Space(cls, {"weights": Simplex(names)})
    rng = np.random.default_rng(0)
    for params in [space.sample(rng) for _ in range(200)] + space.grid():
        weights = np.array([params[n] for n in names])
        assert (weights >= 0).all()
        assert weights.sum() == pytest.approx(1.0, abs=1e-12)
        cls.from_dict(params)  # a valid ensemble parameter set


def test_user_ranges_are_validated_with_readable_messages():
    cls = registry.get("ma_cross").Params
    with pytest.raises(ParamError, match="unknown parameter fast"):
        Space.from_params(cls, {"fast": [1, 2]})
    with pytest.raises(ParamError, match="min 9 is above max 3"):
        Space.from_params(cls, {"short": {"min": 9, "max": 3}})
    space = Space.from_params(cls, {"short": {"min": 3, "max": 9, "step": 3}, "ma_type": ["ema"]})
    assert [p["short"] for p in space.grid()] == [3, 6, 9]
    assert space.size() == 3


def test_a_daemonic_process_such_as_a_celery_child_still_fans_out(candles, monkeypatch, caplog):
    import multiprocessing

    monkeypatch.setitem(multiprocessing.current_process()._config, "daemon", True)
    job = ma_job(candles)
    with caplog.at_level("WARNING", logger="strategies.optimizer.pool"):
        parallel = optimize(job, workers=2)
    assert "one process" not in caplog.text
    assert multiprocessing.current_process()._config["daemon"] is True  # restored
    assert comparable(parallel) == comparable(optimize(job, workers=1))


@given(
    n=st.integers(min_value=100, max_value=500_000),
    folds=st.integers(min_value=1, max_value=8),
    ratio=st.floats(min_value=0.5, max_value=8.0),
)
def test_windows_always_score_on_bars_after_those_that_choose(n, folds, ratio):
    try:
        windows = walk_forward_windows(n, folds, ratio)
    except ParamError:
        assume(False)
    *fold_windows, final = windows
    assert len(fold_windows) == folds and final.final
    for w in fold_windows:
        assert 0 <= w.is_start < w.is_end == w.oos_start < w.oos_end <= n
    assert fold_windows[-1].oos_end == n and final.is_end == n
    lengths = {(w.is_end - w.is_start, w.oos_end - w.oos_start) for w in fold_windows}
    assert len(lengths) == 1  # every fold has the same in-sample and out-of-sample lengths
    starts = [w.oos_start for w in fold_windows]
    assert starts == sorted(starts) and len(set(starts)) == folds  # the folds roll forward
    # Out-of-sample ranges do not overlap one another.
    for a, b in itertools.pairwise(fold_windows):
        assert a.oos_end <= b.oos_start


def test_fingerprints_tell_action_sequences_apart():
    from strategies.optimizer.walkforward import _digest

    a = np.zeros(1000, dtype=np.int8)
    b = a.copy()
    b[10] = 1
    c = a.copy()
    c[10] = 2
    d = np.zeros(1001, dtype=np.int8)
    assert len({_digest(a), _digest(b), _digest(c), _digest(d)}) == 4
    assert _digest(b) == _digest(b.copy())


def test_a_huge_grid_is_refused_with_the_way_out(candles):
    space = Space.from_params(registry.get("ma_cross").Params,
                              {"short": {"min": 2, "max": 200}, "mid": {"min": 3, "max": 500}})
    with pytest.raises(ParamError, match="random or tpe"):
        optimize(Job("ma_cross", candles, space, method="grid"), workers=1)


def test_optimizer_and_screener_import_without_django():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; import strategies.optimizer, strategies.screener; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'celery', 'channels', 'orders', 'tradesite') or m == 'strategies.models'); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
