"""Optimizer runs against the database: the nightly task end to end, auto-apply only above the
margin, versions and rollback, resuming an interrupted run, the ensemble's weights, the command."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from markets.candles import upsert_candles
from strategies import optimization, registry
from strategies.models import OptimizationRun, OptimizationTrial, ParamVersion, StrategyConfig
from strategies.optimizer import pool
from strategies.tests.conftest import DAY0_MS, random_walk

pytestmark = pytest.mark.django_db

DAYS = 3
END = dt.datetime.fromtimestamp((DAY0_MS + DAYS * 86_400_000) / 1000, tz=dt.UTC)


@pytest.fixture(autouse=True)
def _one_process(settings):
    settings.OPTIMIZER_WORKERS = 1
    settings.OPTIMIZER_DAYS = DAYS
    settings.OPTIMIZER_NIGHTLY_TRIALS = 12
    settings.OPTIMIZER_BATCH_SIZE = 10


@pytest.fixture
def stored_candles(symbol):
    c = random_walk(DAYS * 1440, seed=11, vol=0.004)
    rows = zip(c.open_time_ms.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(),
               c.close.tolist(), c.volume.tolist())
    upsert_candles(symbol.pk, "1m", list(rows))
    return c


@pytest.fixture
def make_config(make_trader, make_account, symbol, stored_candles):
    owner = make_trader("trader")
    account = make_account(owner)

    def make(strategy="ma_cross", params=None, **kwargs):
        return StrategyConfig.objects.create(
            owner=owner, name=f"{strategy} {StrategyConfig.objects.count()}", strategy=strategy,
            params=registry.validate_params(strategy, params or {}), symbol=symbol,
            account=account, timeframe="1m", **kwargs,
        )

    return make


def run_for(config, **kwargs) -> OptimizationRun:
    run = optimization.create_run(config, end=END, days=DAYS, **kwargs)
    return optimization.execute_run(run.pk)


def test_nightly_task_optimizes_opted_in_configs_and_leaves_the_result_on_the_config(
    make_config, monkeypatch
):
    from strategies import tasks
    from tradesite.celery import app

    opted = make_config(auto_apply_optimized=True)
    ignored = make_config(auto_apply_optimized=False)
    monkeypatch.setattr(app.conf, "task_always_eager", True)
    monkeypatch.setattr(timezone, "now", lambda: END)
    run_ids = tasks.optimize_scheduled()

    assert len(run_ids) == 1
    run = OptimizationRun.objects.get(pk=run_ids[0])
    assert run.config == opted and run.trigger == OptimizationRun.Trigger.SCHEDULE
    assert run.status == OptimizationRun.Status.DONE, run.error
    assert run.trials.count() == 12 * 4  # the declared 12-point grid on 3 folds + final window
    assert run.outcome in (OptimizationRun.Outcome.PROPOSED, OptimizationRun.Outcome.APPLIED)
    opted.refresh_from_db()
    if run.outcome == OptimizationRun.Outcome.APPLIED:
        version = optimization.current_version(opted)
        assert version.run == run and version.source == ParamVersion.Source.AUTO
        assert opted.params == run.best_params
    else:
        assert opted.optimization_runs.filter(outcome="proposed").get() == run
        assert opted.params == run.baseline_params
    assert not ignored.optimization_runs.exists()
    # A second night while a run is still pending does not pile up another one.
    OptimizationRun.objects.filter(pk=run.pk).update(status=OptimizationRun.Status.RUNNING)
    assert tasks.optimize_scheduled() == []
    # A run left unfinished for hours (its task lost) is sent again and resumes.
    OptimizationRun.objects.filter(pk=run.pk).update(
        status=OptimizationRun.Status.RUNNING, created_at=END - dt.timedelta(days=1))
    assert tasks.optimize_scheduled() == [run.pk]
    run.refresh_from_db()
    assert run.status == OptimizationRun.Status.DONE
    assert run.trials.count() == 12 * 4


@pytest.mark.parametrize(
    ("auto", "margin", "applied"),
    [(True, -1e9, True), (True, 1e9, False), (False, -1e9, False)],
)
def test_auto_apply_happens_only_when_opted_in_and_above_the_margin(
    make_config, auto, margin, applied
):
    config = make_config(auto_apply_optimized=auto)
    before = dict(config.params)
    run = run_for(config, margin=margin)
    config.refresh_from_db()
    assert run.out_of_sample_score is not None and run.baseline_out_of_sample_score is not None
    if applied:
        assert run.outcome == OptimizationRun.Outcome.APPLIED
        assert config.params == run.best_params
        assert [v.source for v in config.param_versions.order_by("number")] == ["initial", "auto"]
    else:
        assert run.outcome == OptimizationRun.Outcome.PROPOSED
        assert config.params == before
        assert not config.param_versions.exists()


def test_a_proposal_is_not_auto_applied_when_the_config_changed_during_the_run(make_config):
    config = make_config(auto_apply_optimized=True)
    run = optimization.create_run(config, end=END, days=DAYS, margin=-1e9)
    StrategyConfig.objects.filter(pk=config.pk).update(params={**config.params, "short": 3})
    run = optimization.execute_run(run.pk)
    assert run.outcome == OptimizationRun.Outcome.PROPOSED


def test_applying_and_rolling_back_restores_the_exact_previous_parameters(make_config):
    config = make_config(params={"short": 6, "mid": 25, "long": 90, "ma_type": "ema"})
    original = dict(config.params)
    run = run_for(config)
    v2 = optimization.apply_run(run)
    config.refresh_from_db()
    assert config.params == run.best_params != original
    assert v2.number == 2 and v2.run == run and v2.out_of_sample_score == run.out_of_sample_score
    v3 = optimization.rollback(config)
    config.refresh_from_db()
    assert config.params == original
    assert v3.source == ParamVersion.Source.ROLLBACK and v3.restored_from.number == 1
    # Rolling forward again to a chosen version restores that one exactly.
    optimization.rollback(config, to=v2)
    config.refresh_from_db()
    assert config.params == run.best_params


def test_parameters_that_short_a_spot_symbol_are_not_applied(make_config):
    config = make_config(strategy="bollinger", params={"shorts": False})
    with pytest.raises(optimization.OptimizationError, match="a spot symbol cannot be shorted"):
        optimization.apply_params(config, {"shorts": True}, source=ParamVersion.Source.MANUAL)
    config.refresh_from_db()
    assert config.params["shorts"] is False and not config.param_versions.exists()


def test_rollback_without_history_says_so(make_config):
    config = make_config()
    with pytest.raises(optimization.OptimizationError, match="no recorded parameter versions"):
        optimization.rollback(config)


class WorkerKilled(BaseException):
    """Stands in for a worker process dying mid-run (not an Exception: nothing handles it)."""


def test_an_interrupted_run_resumes_without_rescoring_stored_trials(make_config, monkeypatch):
    config = make_config()
    run = optimization.create_run(config, end=END, days=DAYS)
    scored = []
    real_score = pool.score

    def counting(task):
        scored.append(task[:2])
        return real_score(task)

    monkeypatch.setattr(pool, "score", counting)

    def die_after_first_batch(fraction):
        raise WorkerKilled

    with pytest.raises(WorkerKilled):
        optimization.execute_run(run.pk, progress=die_after_first_batch)
    run.refresh_from_db()
    assert run.status == OptimizationRun.Status.RUNNING and 0 < run.progress < 1
    first = set(run.trials.values_list("window", "number"))
    assert first == set(scored)
    scored.clear()

    run = optimization.execute_run(run.pk)
    assert run.status == OptimizationRun.Status.DONE
    assert not first & set(scored)  # nothing stored was scored again
    assert run.trials.count() == len(first) + len(scored) == 48

    # The resumed run chose exactly what an uninterrupted one chooses.
    fresh = run_for(config)
    assert fresh.best_params == run.best_params
    assert fresh.result == run.result


def test_nightly_ensemble_weights_stay_on_the_simplex(make_config, monkeypatch):
    config = make_config("ensemble", auto_apply_optimized=True)
    monkeypatch.setattr(timezone, "now", lambda: END)
    (run,) = optimization.schedule_nightly()
    assert run.config == config
    assert run.kind == OptimizationRun.Kind.ENSEMBLE_WEIGHTS and run.method == "random"
    run = optimization.execute_run(run.pk)
    assert run.status == OptimizationRun.Status.DONE, run.error
    names = optimization.ENSEMBLE_WEIGHTS
    params_list = [t.params for t in OptimizationTrial.objects.filter(run=run)]
    assert len(params_list) == 12 * 4
    for params in params_list + ([run.best_params] if run.best_params else []):
        weights = np.array([params[n] for n in names])
        assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0)
        assert 0.05 <= params["threshold"] <= 0.6


def test_a_run_on_a_symbol_without_candles_fails_with_a_reason(make_config):
    config = make_config()
    run = optimization.create_run(config, end=END - dt.timedelta(days=30), days=DAYS)
    run = optimization.execute_run(run.pk)
    assert run.status == OptimizationRun.Status.FAILED
    assert "too few" in run.error


def test_create_run_rejects_bad_ranges_with_the_trader_readable_reason(make_config):
    config = make_config()
    with pytest.raises(optimization.OptimizationError, match="unknown parameter period"):
        optimization.create_run(config, space={"period": [1, 2]})
    with pytest.raises(optimization.OptimizationError, match="only ensemble has weights"):
        optimization.create_run(config, kind=OptimizationRun.Kind.ENSEMBLE_WEIGHTS)


def test_optimize_command_runs_shows_progress_and_applies(make_config, monkeypatch):
    config = make_config()
    monkeypatch.setattr(timezone, "now", lambda: END)
    out, err = io.StringIO(), io.StringIO()
    call_command("optimize", "--config", str(config.pk), "--trials", "20", "--apply",
                 "--seed", "3", "--days", str(DAYS), "--workers", "1", stdout=out, stderr=err)
    assert "100.0%" in err.getvalue()
    assert "applied as version 2" in out.getvalue()
    config.refresh_from_db()
    run = config.optimization_runs.get()
    assert run.trigger == OptimizationRun.Trigger.COMMAND and config.params == run.best_params


def test_default_history_gives_a_daily_config_enough_candles(make_config):
    config = make_config()
    config.timeframe = "1d"
    run = optimization.create_run(config, end=END)
    assert (run.end - run.start).days == optimization.MIN_BARS
    config.timeframe = "1m"
    run = optimization.create_run(config, end=END)
    assert (run.end - run.start).days == DAYS  # OPTIMIZER_DAYS when that is enough


def test_admin_actions_apply_a_proposal_and_roll_back(make_config, admin_client):
    from django.urls import reverse

    config = make_config()
    original = dict(config.params)
    run = run_for(config)
    response = admin_client.post(
        reverse("admin:strategies_optimizationrun_changelist"),
        {"action": "apply_proposal", "_selected_action": [run.pk]},
    )
    assert response.status_code == 302
    config.refresh_from_db()
    assert config.params == run.best_params
    first = config.param_versions.get(number=1)
    admin_client.post(
        reverse("admin:strategies_paramversion_changelist"),
        {"action": "restore", "_selected_action": [first.pk]},
    )
    config.refresh_from_db()
    assert config.params == original
    assert optimization.current_version(config).source == ParamVersion.Source.ROLLBACK
