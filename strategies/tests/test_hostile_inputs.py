"""Hostile input on the optimizer, screener and backtest pages and commands: every bad value is
a message naming the field or the limit, never a 500; and the limits on user-triggered work
(trials, folds, days, span, stored range, runs at once) hold at every entry point."""

from __future__ import annotations

import itertools
import re

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies import optimization, tasks
from strategies.models import BacktestRun, OptimizationRun
from strategies.tests.test_backtest_pages import form_data, stored  # noqa: F401
from strategies.tests.test_optimizer_services import (  # noqa: F401
    DAYS,
    END,
    make_config,
    stored_candles,
)
from strategies.tests.test_screener import venue  # noqa: F401

# The project's URLs: the pages render the shell, which links every page.
pytestmark = [pytest.mark.django_db]
NAMES = itertools.count()


@pytest.fixture(autouse=True)
def _settings(settings, monkeypatch):
    settings.OPTIMIZER_WORKERS = 1
    settings.OPTIMIZER_MAX_TRIALS = 500
    settings.OPTIMIZER_MAX_DAYS = 365
    settings.OPTIMIZER_MAX_FOLDS = 10
    settings.OPTIMIZER_MAX_RUNS_PER_USER = 2
    settings.BACKTEST_MAX_DAYS = 400
    settings.BACKTEST_MAX_RUNS_PER_USER = 2
    monkeypatch.setattr(timezone, "now", lambda: END)


@pytest.fixture
def queued(monkeypatch):
    """Task messages the views send (no worker runs here)."""
    calls = []
    monkeypatch.setattr(tasks.run_optimization, "apply_async",
                        lambda args, queue: calls.append(("opt", args)))
    monkeypatch.setattr(tasks.run_backtest_run, "apply_async",
                        lambda args, queue: calls.append(("bt", args)))
    return calls


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def flashed(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def start(client, the_config, **fields):
    data = {"config": the_config.pk, "trials": "20", "days": str(DAYS), "objective": "sharpe",
            "method": "auto", **fields}
    return client.post(reverse("strategies:start_run"), data)


# --------------------------------------------------------------------------- optimizer page

@pytest.mark.parametrize("fields, message", [
    ({"trials": "-1"}, "trials must be at least 1"),
    ({"trials": "0"}, "trials must be at least 1"),
    ({"trials": "1000000000000"}, "at most 500 trials per run (OPTIMIZER_MAX_TRIALS)"),
    ({"trials": "1e3"}, "Trials: Enter a whole number."),
    ({"days": "0"}, "days must be at least 1"),
    ({"days": "1000000000"}, "at most 365 days of history (OPTIMIZER_MAX_DAYS)"),
    ({"config": "abc"}, "Config: Select a valid choice"),
    ({"config": ""}, "Config: This field is required."),
    ({"objective": "x" * 300}, "Objective: Select a valid choice"),
])
def test_a_bad_optimizer_start_is_a_message_naming_the_field(make_config, queued, fields,  # noqa: F811
                                                              message):
    config = make_config()
    response = start(logged_in(config.owner), config, **fields)
    assert response.status_code == 302
    assert any(message in m for m in flashed(response)), flashed(response)
    assert not OptimizationRun.objects.exists() and queued == []


def test_runs_at_once_per_user_are_limited_on_the_page(make_config, queued):  # noqa: F811
    config = make_config()
    client = logged_in(config.owner)
    for _ in range(2):
        assert start(client, config).status_code == 302
    response = start(client, config)
    assert any("2 optimizer runs at once (OPTIMIZER_MAX_RUNS_PER_USER)" in m
               for m in flashed(response)), flashed(response)
    assert OptimizationRun.objects.count() == 2 and len(queued) == 2
    # A finished run frees its place.
    OptimizationRun.objects.filter(pk=OptimizationRun.objects.first().pk).update(status="done")
    start(client, config)
    assert OptimizationRun.objects.count() == 3


def test_the_command_applies_the_same_limits(make_config):  # noqa: F811
    config = make_config()
    for args, message in [
        (["--trials", "1000000000000"], "OPTIMIZER_MAX_TRIALS"),
        (["--trials", "0"], "trials must be at least 1"),
        (["--days", "1000000000"], "OPTIMIZER_MAX_DAYS"),
        (["--folds", "100000"], "at most 10 walk-forward folds (OPTIMIZER_MAX_FOLDS)"),
        (["--folds", "0"], "folds must be at least 1"),
        (["--space", "[" * 50_000], "--space nests arrays or objects more than"),
        (["--space", '{"short": {"min": "a", "max": 3}}'], "must be finite numbers"),
        (["--seed", "-1"], "seed must be a whole number of at least 0"),
        (["--workers", "100000"], "workers must be between 1 and"),
        (["--workers", "0"], "workers must be between 1 and"),
    ]:
        with pytest.raises(CommandError, match=re.escape(message)):
            call_command("optimize", "--config", str(config.pk), *args)
    assert not OptimizationRun.objects.exists()


def test_a_big_grid_counts_as_trials(make_config):  # noqa: F811
    config = make_config()
    with pytest.raises(optimization.OptimizationError, match="OPTIMIZER_MAX_TRIALS"):
        optimization.create_run(config, method="grid", days=DAYS,
                                space={"short": {"min": 2, "max": 60}, "mid": {"min": 5, "max": 80},
                                       "long": {"min": 20, "max": 150}})


def test_random_trials_are_drawn_lazily(make_config, monkeypatch):  # noqa: F811
    """A run never holds all of its parameter sets at once: the tasks are built batch by batch
    (with 10^12 trials the old code built a list of 10^12 dicts)."""
    from strategies.optimizer import core

    drawn = []
    real = core.Space.sample
    monkeypatch.setattr(core.Space, "sample",
                        lambda self, rng: drawn.append(1) or real(self, rng))
    seen = []
    stop = RuntimeError("stop after the first batch")

    def first_batch(batch, fraction):
        seen.append(len(batch))
        raise stop

    config = make_config()
    run = optimization.create_run(config, method="random", trials=400, days=DAYS)
    job = optimization.runs._job(run)
    with pytest.raises(RuntimeError):
        core.optimize(job, workers=1, on_batch=first_batch, batch_size=8)
    assert seen == [8] and len(drawn) < 50


# --------------------------------------------------------------------------- screener

def test_screener_with_an_unknown_exchange_says_so(venue, make_trader):  # noqa: F811
    client = logged_in(make_trader("t"))
    for slug in ("nope", "%00", "a" * 500, "%F0%9F%92%A5"):
        response = client.get(reverse("strategies:screener") + f"?exchange={slug}")
        assert response.status_code == 404, slug


def test_top_n_with_a_config_that_is_not_an_id_is_a_message(venue, make_trader):  # noqa: F811
    client = logged_in(make_trader("t"))
    for data in ({"config": "abc", "top_n": "3"}, {"top_n": "3"}, {"config": "1e9"}):
        response = client.post(reverse("strategies:set_top_symbols"), data)
        assert response.status_code in (302, 404)
        if response.status_code == 302:
            assert any("Config" in m for m in flashed(response)), flashed(response)


# --------------------------------------------------------------------------- backtests

def test_deeply_nested_parameters_are_a_field_error(make_trader, symbol, stored, queued):  # noqa: F811
    client = logged_in(make_trader("alice"))
    response = client.post(reverse("strategies:backtest_list"),
                           form_data(symbol, params="[" * 50_000))
    assert response.status_code == 200
    assert "more than 20 levels deep" in response.context["form"].errors["params"][0]
    assert not BacktestRun.objects.exists()


def test_a_backtest_range_outside_the_stored_candles_names_what_is_stored(
    make_trader, symbol, stored, queued  # noqa: F811
):
    client = logged_in(make_trader("alice"))
    response = client.post(reverse("strategies:backtest_list"),
                           form_data(symbol, start="2022-01-01", end="2022-02-01"))
    errors = response.context["form"].errors
    assert "stored 1h candles of KRW-BTC on sim cover 2023-11-14 00:00 to 2024-01-15" in (
        errors["__all__"][0]), errors
    response = client.post(reverse("strategies:backtest_list"),
                           form_data(symbol, timeframe="4h"))
    assert "No 4h candles of KRW-BTC on sim are stored" in (
        response.context["form"].errors["__all__"][0])
    response = client.post(reverse("strategies:backtest_list"),
                           form_data(symbol, start="0001-01-01", end="9999-12-31"))
    assert "at most 400 days (BACKTEST_MAX_DAYS)" in response.context["form"].errors["end"][0]
    assert not BacktestRun.objects.exists() and queued == []


def test_backtests_at_once_per_user_are_limited(make_trader, symbol, stored, queued,  # noqa: F811
                                                django_capture_on_commit_callbacks):
    client = logged_in(make_trader("alice"))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            assert client.post(reverse("strategies:backtest_list"),
                               form_data(symbol)).status_code == 302
        response = client.post(reverse("strategies:backtest_list"), form_data(symbol))
    assert response.status_code == 200
    assert "2 backtests at once (BACKTEST_MAX_RUNS_PER_USER)" in (
        response.context["form"].errors["__all__"][0])
    assert BacktestRun.objects.count() == 2


def test_the_backtest_command_applies_the_span_and_stored_range(symbol, stored):  # noqa: F811
    base = ["--strategy", "ma_cross", "--venue", "sim", "--symbol", "KRW-BTC",
            "--timeframe", "1h"]
    with pytest.raises(CommandError, match=r"BACKTEST_MAX_DAYS"):
        call_command("backtest", *base, "--start", "2020-01-01", "--end", "2024-01-01")
    with pytest.raises(CommandError, match="cover 2023-11-14 00:00 to 2024-01-15"):
        call_command("backtest", *base, "--start", "2022-01-01", "--end", "2022-02-01")
    with pytest.raises(CommandError, match="--params nests"):
        call_command("backtest", *base, "--start", "2023-12-01", "--end", "2023-12-05",
                     "--params", "[" * 50_000)
    with pytest.raises(CommandError, match="not a date"):
        call_command("backtest", *base, "--start", "99999-01-01", "--end", "2023-12-05")
    assert not BacktestRun.objects.exists()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.fixed_dictionaries({}, optional={
    name: st.one_of(st.text(max_size=30), st.integers(-10**15, 10**15).map(str),
                    st.sampled_from(["1e999", "NaN", "-0", "9" * 400, "[" * 2000, "99999-01-01",
                                     "0001-01-01", "2023-02-30"]))
    for name in ("strategy", "params", "symbol", "timeframe", "start", "end", "fee_bps",
                 "slippage_bps", "cash", "stop_loss_pct", "take_profit_pct")
}))
def test_hostile_backtest_forms_never_fail_the_server(make_trader, symbol, queued, data):
    user = make_trader(f"h{next(NAMES)}")
    response = logged_in(user).post(reverse("strategies:backtest_list"), data)
    assert response.status_code in (200, 302)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.fixed_dictionaries({}, optional={
    name: st.one_of(st.text(max_size=20), st.integers(-10**15, 10**15).map(str),
                    st.sampled_from(["1e999", "NaN", "9" * 400]))
    for name in ("config", "trials", "days", "objective", "method")
}))
def test_hostile_optimizer_starts_never_fail_the_server(make_config, queued, data):  # noqa: F811
    config = make_config()
    response = logged_in(config.owner).post(reverse("strategies:start_run"), data)
    assert response.status_code in (302, 404)
