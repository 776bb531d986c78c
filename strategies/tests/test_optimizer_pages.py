"""The optimizer and screener pages: owners only, sortable tables, Apply, screener actions."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from strategies import optimization, screening
from strategies.models import OptimizationRun, StrategyConfig, SymbolScreen
from strategies.tests.test_optimizer_services import DAYS, END, make_config, stored_candles  # noqa: F401
from strategies.tests.test_screener import NOW, venue  # noqa: F401

# This module is the URLconf of its tests, as tradesite/urls.py will include strategies.urls.
# The project's URLs: the pages render the shell, which links every page.
pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.OPTIMIZER_WORKERS = 1


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def finished_run(make_config):  # noqa: F811 - the imported fixture
    config = make_config()
    run = optimization.create_run(config, end=END, days=DAYS)
    return optimization.execute_run(run.pk)


def test_run_pages_show_folds_trials_and_apply_the_proposal(finished_run):
    owner = finished_run.config.owner
    client = logged_in(owner)
    listing = client.get(reverse("strategies:run_list"))
    assert listing.status_code == 200
    assert f'href="/strategies/optimizer/runs/{finished_run.pk}/"' in listing.content.decode()

    page = client.get(reverse("strategies:run_detail", args=[finished_run.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count("<tr>", html.index('id="trials"')) == finished_run.trials.count() + 1
    assert html.count("<tr>", html.index('id="folds"'), html.index('id="trials"')) == 4
    assert 'id="apply"' in html

    # Trials sort by score, best first, by default; ?sort=score&dir=asc reverses it.
    scores = [float(s) for s in re.findall(r"<td>(-?\d+\.\d{4})</td>\s*<td>\d+</td>",
                                           html[html.index('id="trials"'):])]
    assert scores == sorted(scores, reverse=True)

    response = client.post(reverse("strategies:apply_run", args=[finished_run.pk]))
    assert response.status_code == 302
    config = StrategyConfig.objects.get(pk=finished_run.config_id)
    assert config.params == finished_run.best_params
    assert optimization.current_version(config).run_id == finished_run.pk


def test_another_traders_run_is_not_found(finished_run, make_trader):
    stranger = logged_in(make_trader("stranger"))
    assert stranger.get(reverse("strategies:run_detail", args=[finished_run.pk])).status_code == 404
    assert stranger.post(reverse("strategies:apply_run", args=[finished_run.pk])).status_code == 404
    assert OptimizationRun.objects.get(pk=finished_run.pk).outcome != "applied"


def test_screener_table_sorts_and_its_actions_need_the_right_rights(
    venue, make_trader, make_account  # noqa: F811
):
    screening.screen_all(now=NOW)
    trader = make_trader("screen")
    client = logged_in(trader)
    page = client.get(reverse("strategies:screener") + "?exchange=sim&sort=value&dir=asc")
    html = page.content.decode()
    assert page.status_code == 200
    order = re.findall(r"<td>(KRW-[A-Z]+)</td>", html)
    by_value = list(
        SymbolScreen.objects.order_by("traded_value_24h").values_list("symbol__code", flat=True)
    )
    assert order == by_value

    eth = venue["eth"]
    activate = reverse("strategies:activate_symbol", args=[eth.pk])
    assert client.post(activate).status_code == 403  # traders only view symbols
    root = get_user_model().objects.create_superuser("root", "root@localhost", "pw")
    assert logged_in(root).post(activate).status_code == 302
    eth.refresh_from_db()
    assert eth.is_active

    config = StrategyConfig.objects.create(
        owner=trader, name="dm", strategy="dual_momentum", params={}, symbol=venue["btc"],
        account=make_account(trader),
    )
    response = client.post(reverse("strategies:set_top_symbols"),
                           {"config": config.pk, "top_n": "2"})
    assert response.status_code == 302
    config.refresh_from_db()
    assert config.params["symbols"] == list(
        SymbolScreen.objects.exclude(symbol=venue["btc"]).order_by("rank")
        .values_list("symbol__code", flat=True)[:2]
    )


def test_starting_a_run_from_the_page_queues_it_on_the_optimizer(make_config, monkeypatch):  # noqa: F811
    from tradesite.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)
    monkeypatch.setattr(timezone, "now", lambda: END)
    config = make_config()
    client = logged_in(config.owner)
    response = client.post(reverse("strategies:start_run"), {
        "config": config.pk, "trials": "20", "days": str(DAYS), "objective": "sortino",
        "method": "auto",
    })
    run = config.optimization_runs.get()
    assert response.status_code == 302 and response.url.endswith(f"/runs/{run.pk}/")
    assert run.status == OptimizationRun.Status.DONE and run.objective == "sortino"
    assert run.requested_by == config.owner
    bad = client.post(reverse("strategies:start_run"),
                      {"config": config.pk, "trials": "20", "days": "x"})
    assert bad.status_code == 302 and config.optimization_runs.count() == 1


def test_the_run_page_names_the_candles_actually_stored_not_only_the_range_asked_for(
    finished_run,
):
    """Seen: the page named a 30-day candle range when only 2 days were stored."""
    from django.utils import timezone

    from markets.models import Candle

    config = finished_run.config
    stored = Candle.objects.filter(symbol=config.symbol, timeframe=config.timeframe)
    cut = stored.order_by("open_time")[stored.count() // 2].open_time
    stored.filter(open_time__lt=cut).delete()  # the first half of the range is not stored
    html = logged_in(config.owner).get(
        reverse("strategies:run_detail", args=[finished_run.pk])
    ).content.decode()
    shown = timezone.localtime(cut).strftime("%Y-%m-%d %H:%M")
    asked = timezone.localtime(finished_run.start).strftime("%Y-%m-%d %H:%M")
    assert f"{stored.count()} candles stored from {shown}" in html
    assert f"(asked for {asked}" in html
