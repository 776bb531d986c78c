"""The backtest pages: the form (validation on the fields), owners only, the Celery task that
fills a pending run from stored candles, and the results page."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from markets.candles import upsert_candles
from strategies import services, tasks
from strategies.models import BacktestRun
from strategies.tests.conftest import DAY0_MS, random_walk

# The project's URLs: the pages render the shell, which links every page.
pytestmark = [pytest.mark.django_db]

HOUR = 3_600_000
DAY0 = dt.datetime.fromtimestamp(DAY0_MS / 1000, tz=dt.UTC)  # 2023-11-14


@pytest.fixture
def stored(symbol):
    """1500 hourly candles (2023-11-14 .. 2024-01-15) of a seeded random walk."""
    candles = random_walk(1500, seed=5, step_ms=HOUR, vol=0.01)
    upsert_candles(symbol.pk, "1h", zip(
        candles.open_time_ms.tolist(), candles.open.tolist(), candles.high.tolist(),
        candles.low.tolist(), candles.close.tolist(), candles.volume.tolist(),
    ))
    return candles


@pytest.fixture
def sent(monkeypatch):
    """The task messages the views send (no worker runs in these tests)."""
    calls = []
    monkeypatch.setattr(tasks.run_backtest_run, "apply_async",
                        lambda args, queue: calls.append((args, queue)))
    return calls


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(symbol, **overrides):
    data = {
        "strategy": "ma_cross", "params": '{"short": 5, "mid": 12, "long": 30}',
        "symbol": symbol.pk, "timeframe": "1h", "start": "2023-11-20", "end": "2024-01-10",
        "fee_bps": "10", "slippage_bps": "2", "cash": "1000000", "stop_loss_pct": "3",
        "take_profit_pct": "", "trailing_stop_pct": "",
    }
    return {**data, **overrides}


def pending_run(owner, symbol, **fields) -> BacktestRun:
    values = dict(
        owner=owner, strategy="ma_cross", params={"short": 5, "mid": 12, "long": 30},
        symbol=symbol, timeframe="1h", start=DAY0 + dt.timedelta(days=6),
        end=DAY0 + dt.timedelta(days=57), settings={"risk": {"stop_loss_pct": 3.0}},
    )
    return BacktestRun.objects.create(**{**values, **fields})


def test_pages_need_a_login(symbol):
    response = Client().get(reverse("strategies:backtest_list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_a_bad_parameter_is_explained_on_the_parameters_field(make_trader, symbol, sent):
    client = client_for(make_trader("alice"))
    response = client.post(reverse("strategies:backtest_list"),
                           form_data(symbol, params='{"short": 1}'))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["params"]
    assert "short" in errors["params"][0] and "2" in errors["params"][0]
    assert 'id="errors-params"' in response.content.decode()
    assert not BacktestRun.objects.exists() and sent == []


def test_parameters_that_are_not_a_json_object_are_refused(make_trader, symbol, sent):
    client = client_for(make_trader("alice"))
    for text, message in [('{"short": 5', "not valid JSON"), ("[5]", "must be a JSON object")]:
        response = client.post(reverse("strategies:backtest_list"), form_data(symbol, params=text))
        assert message in response.context["form"].errors["params"][0]
    response = client.post(reverse("strategies:backtest_list"),
                           form_data(symbol, start="2024-01-10", end="2024-01-10"))
    assert response.context["form"].errors["end"] == ["End must be after start."]
    assert not BacktestRun.objects.exists() and sent == []


def test_submitting_creates_a_pending_run_of_the_user_and_queues_it_after_commit(
    make_trader, symbol, stored, sent, django_capture_on_commit_callbacks
):
    alice, bob = make_trader("alice"), make_trader("bob")
    client = client_for(alice)
    with django_capture_on_commit_callbacks(execute=True):
        # A crafted field naming another owner is ignored: runs belong to who submits them.
        response = client.post(reverse("strategies:backtest_list"),
                               {**form_data(symbol), "owner": bob.pk})
    run = BacktestRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("strategies:backtest_detail", args=[run.pk])
    assert run.owner == alice and run.status == BacktestRun.Status.PENDING
    assert run.start == dt.datetime(2023, 11, 20, tzinfo=dt.UTC)
    assert run.end == dt.datetime(2024, 1, 10, tzinfo=dt.UTC)
    assert run.params["short"] == 5 and run.params["ma_type"] == "sma"  # complete, validated
    assert run.settings == {"risk": {"stop_loss_pct": 3.0}}
    assert run.fee_bps == Decimal("10") and run.slippage_bps == Decimal("2")
    assert run.cash == Decimal("1000000")
    assert sent == [([run.pk], "optimizer")]


def test_another_users_run_is_not_found_anywhere(make_trader, symbol):
    alice, bob = make_trader("alice"), make_trader("bob")
    run = pending_run(alice, symbol)
    client = client_for(bob)
    assert client.get(reverse("strategies:backtest_detail", args=[run.pk])).status_code == 404
    assert client.get(reverse("strategies:backtest_status", args=[run.pk])).status_code == 404
    listing = client.get(reverse("strategies:backtest_list")).content.decode()
    assert f"#{run.pk}<" not in listing and "No backtests yet." in listing
    own = client_for(alice).get(reverse("strategies:backtest_list")).content.decode()
    assert f'href="/strategies/backtests/{run.pk}/"' in own


def test_status_json_reports_a_pending_run(make_trader, symbol):
    alice = make_trader("alice")
    run = pending_run(alice, symbol)
    body = client_for(alice).get(reverse("strategies:backtest_status", args=[run.pk])).json()
    assert body == {"id": run.pk, "status": "pending", "progress": 0.0, "stage": "",
                    "error": "", "finished": False, "total_return": None}
    page = client_for(alice).get(reverse("strategies:backtest_detail", args=[run.pk]))
    html = page.content.decode()
    assert 'id="progress"' in html and 'id="stats"' not in html


def test_a_running_backtest_reports_each_stage_where_the_page_polls_it(
    make_trader, symbol, stored, monkeypatch
):
    alice = make_trader("alice")
    run = pending_run(alice, symbol)
    client = client_for(alice)
    seen = []
    report = services._report

    def spy(target, fraction, stage):
        report(target, fraction, stage)
        body = client.get(reverse("strategies:backtest_status", args=[run.pk])).json()
        seen.append((body["progress"], body["stage"], body["status"]))

    monkeypatch.setattr(services, "_report", spy)
    assert tasks.run_backtest_run(run.pk) == "done"
    stages = [stage for _, stage, _ in seen]
    assert stages[0] == "loading candles" and stages[-1] == "saving results"
    assert "computing signals" in stages and "simulating" in stages
    fractions = [fraction for fraction, _, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0
    assert {status for _, _, status in seen} == {"running"}
    run.refresh_from_db()
    assert (run.progress, run.stage) == (1.0, "")


def test_the_task_fills_the_run_and_the_page_shows_its_results(make_trader, symbol, stored):
    alice = make_trader("alice")
    run = pending_run(alice, symbol)
    assert tasks.run_backtest_run(run.pk) == "done"
    run.refresh_from_db()
    assert run.status == BacktestRun.Status.DONE and run.progress == 1.0 and run.error == ""
    assert run.owner == alice and BacktestRun.objects.count() == 1
    assert run.stats["trade_count"] == len(run.trades) > 0
    assert set(run.stats["monthly_returns"]) == {"2023-11", "2023-12", "2024-01"}
    assert run.settings["risk"]["stop_loss_pct"] == 3.0
    assert run.equity[0][0] == DAY0_MS + 6 * 24 * HOUR

    client = client_for(alice)
    body = client.get(reverse("strategies:backtest_status", args=[run.pk])).json()
    assert body["finished"] and body["total_return"] == pytest.approx(run.stats["total_return"])
    response = client.get(reverse("strategies:backtest_detail", args=[run.pk]))
    html = response.content.decode()
    assert 'id="stats"' in html and 'data-stat="sharpe"' in html
    assert "2023-11-20 00:00 to 2024-01-10 00:00 UTC" in html  # UTC, whatever TIME_ZONE says
    assert f"{run.stats['total_return'] * 100:+.2f}%" in html
    assert '<tr data-year="2023">' in html and '<tr data-year="2024">' in html
    assert html.count("<tr><td>") >= len(run.trades)  # the trades table
    chart = json.loads(html.split('id="backtest-chart" type="application/json">')[1]
                       .split("</script>")[0])
    assert len(chart["candles"]["t"]) == 51 * 24
    assert len(chart["markers"]) == 2 * len(run.trades)
    assert chart["markers"][0]["t"] == run.trades[0]["entry_time_ms"]
    assert chart["equity"] == run.equity
    listing = client.get(reverse("strategies:backtest_list")).content.decode()
    assert "2023-11-20 to 2024-01-10" in listing
    assert f"<td>{run.stats['total_return'] * 100:+.2f}%</td>" in listing
    # Finished runs are not started again.
    assert tasks.run_backtest_run(run.pk) == "done"


def test_a_run_orphaned_by_a_dead_worker_is_run_again_when_redelivered(make_trader, symbol,
                                                                       stored):
    run = pending_run(make_trader("alice"), symbol, status=BacktestRun.Status.RUNNING)
    assert tasks.run_backtest_run(run.pk) == "done"
    run.refresh_from_db()
    assert run.stats["trade_count"] == len(run.trades)


def test_a_range_without_candles_fails_with_a_message_for_the_trader(make_trader, symbol):
    run = pending_run(make_trader("alice"), symbol)
    assert tasks.run_backtest_run(run.pk) == "failed"
    run.refresh_from_db()
    assert run.status == BacktestRun.Status.FAILED and run.finished_at is not None
    assert run.error.startswith("no 1h candles for KRW-BTC on sim between 2023-11-20 00:00")
    assert "import or backfill them first" in run.error
    page = client_for(run.owner).get(reverse("strategies:backtest_detail", args=[run.pk]))
    assert 'class="errornote" id="error" >no 1h candles' in page.content.decode()


def test_a_run_the_queue_cannot_take_fails_visibly(make_trader, symbol, stored, monkeypatch,
                                                   django_capture_on_commit_callbacks):
    def refuse(args, queue):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.run_backtest_run, "apply_async", refuse)
    client = client_for(make_trader("alice"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("strategies:backtest_list"), form_data(symbol))
    run = BacktestRun.objects.get()
    assert response.status_code == 302 and run.status == BacktestRun.Status.FAILED
    assert "task queue could not be reached" in run.error


def test_an_internal_error_is_stored_on_the_run_and_raised_for_the_worker_log(
    make_trader, symbol, stored, monkeypatch
):
    from strategies import backtest

    def broken(*args, **kwargs):
        raise FloatingPointError("overflow in equity")

    monkeypatch.setattr(backtest, "simulate", broken)
    run = pending_run(make_trader("alice"), symbol)
    with pytest.raises(FloatingPointError):
        tasks.run_backtest_run(run.pk)
    run.refresh_from_db()
    assert run.status == BacktestRun.Status.FAILED and run.finished_at is not None
    assert run.error == ("the backtest stopped with an internal error (FloatingPointError: "
                         "overflow in equity); nothing was traded")
