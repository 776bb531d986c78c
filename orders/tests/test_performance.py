"""Profit and loss over time (orders.performance, performance_configs, performance_views):
returns against hand-computed values across a trading-day and a month boundary, drawdown,
win rate, paging, the CSV, the backtest button, the dashboard's bounded query count and the
live equity event."""

import csv
import datetime as dt
import io
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders import performance, performance_configs
from orders.tests.performance_data import closed_trades, snapshots
from strategies.models import BacktestRun

UTC = dt.UTC


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


# Asia/Seoul is UTC+9: its trading day starts at 15:00 UTC. Jan 31 14:59 UTC is Jan 31 23:59 in
# Seoul, 15:01 UTC is Feb 1 00:01: another day and another month.
POINTS = [
    (at(2026, 1, 10, 3, 0), D("800")),     # Jan 10 12:00 KST
    (at(2026, 1, 31, 14, 0), D("1000")),   # Jan 31 23:00 KST: the day's first
    (at(2026, 1, 31, 14, 59), D("1100")),  # Jan 31 23:59 KST
    (at(2026, 1, 31, 15, 1), D("1210")),   # Feb 1 00:01 KST: the next day's (and month's) first
    (at(2026, 2, 1, 10, 0), D("1089")),    # Feb 1 19:00 KST: the newest
]


def _rows(rows):
    return [(r.period.isoformat(), r.start_equity, r.end_equity, r.pct) for r in rows]


def test_daily_returns_across_the_seoul_day_boundary():
    points = [(ms(t), e) for t, e in POINTS]
    # Jan 10: 800 -> next day's first (1000) = +25%; Jan 31: 1000 -> 1210 (Feb 1 00:01 KST)
    # = +21%; Feb 1: 1210 -> newest 1089 = -10%.
    assert _rows(performance.period_returns(points, "Asia/Seoul")) == [
        ("2026-02-01", D("1210"), D("1089"), D("-10")),
        ("2026-01-31", D("1000"), D("1210"), D("21")),
        ("2026-01-10", D("800"), D("1000"), D("25")),
    ]


def test_monthly_returns_across_the_seoul_month_boundary():
    points = [(ms(t), e) for t, e in POINTS]
    # January: 800 -> February's first 1210 = +51.25%; February: 1210 -> 1089 = -10%.
    assert _rows(performance.period_returns(points, "Asia/Seoul", monthly=True)) == [
        ("2026-02-01", D("1210"), D("1089"), D("-10")),
        ("2026-01-01", D("800"), D("1210"), D("51.25")),
    ]


def test_the_same_snapshots_in_utc_fall_on_one_day():
    points = [(ms(t), e) for t, e in POINTS]
    # In UTC 14:59 and 15:01 are the same day (Jan 31): 1000 -> Feb 1's first 1089 = +8.9%.
    daily = _rows(performance.period_returns(points, "UTC"))
    assert daily[1] == ("2026-01-31", D("1000"), D("1089"), D("8.9"))
    monthly = _rows(performance.period_returns(points, "UTC", monthly=True))
    assert monthly == [("2026-02-01", D("1089"), D("1089"), D("0")),
                       ("2026-01-01", D("800"), D("1089"), D("36.125"))]


def test_a_period_that_starts_with_no_equity_has_no_return():
    rows = performance.period_returns([(0, D("0")), (1000, D("5"))], "UTC")
    assert rows[0].pct is None and rows[0].change == D("5")


def test_max_drawdown_of_cumulative_pnl():
    # Cumulative 10, 5, 25, -5, 0: the fall from 25 to -5 is 30.
    assert performance.max_drawdown([D(10), D(-5), D(20), D(-30), D(5)]) == D(30)
    # The peak starts at 0: losing from the first trade is a drawdown.
    assert performance.max_drawdown([D(-10), D(5)]) == D(10)
    assert performance.max_drawdown([]) == D(0)


@pytest.mark.django_db
def test_stored_returns_pick_each_days_first_snapshot(paper):
    extra = [(at(2026, 1, 31, 14, 30), D("1050")), (at(2026, 1, 31, 15, 30), D("999"))]
    snapshots(paper, POINTS + extra)
    rows = performance.account_returns(paper.pk, at(2026, 2, 1, 12, 0), "Asia/Seoul")
    assert [(r.period.isoformat(), r.start_equity, r.end_equity) for r in rows["daily"]] == [
        ("2026-02-01", D("1210"), D("1089")),
        ("2026-01-31", D("1000"), D("1210")),
        ("2026-01-10", D("800"), D("1000")),
    ]
    assert [r.pct for r in rows["monthly"]] == [D("-10"), D("51.25")]


@pytest.mark.django_db
def test_a_half_hour_time_zone_keeps_its_day_boundary(paper):
    # Asia/Kolkata is UTC+5:30: the day starts at 18:30 UTC, inside a UTC hour.
    snapshots(paper, [(at(2026, 3, 1, 18, 10), 100), (at(2026, 3, 1, 18, 40), 110),
                      (at(2026, 3, 1, 18, 50), 120), (at(2026, 3, 2, 10, 0), 132)])
    rows = performance.account_returns(paper.pk, at(2026, 3, 2, 12, 0), "Asia/Kolkata")
    assert [(r.period.isoformat(), r.start_equity, r.end_equity) for r in rows["daily"]] == [
        ("2026-03-02", D("110"), D("132")),
        ("2026-03-01", D("100"), D("110")),
    ]


@pytest.mark.django_db
def test_equity_curve_ranges_and_downsampling(paper):
    now = at(2026, 3, 1, 12, 0)
    # Every 5 minutes for 3 days: 864 snapshots.
    snapshots(paper, [(now - dt.timedelta(minutes=5 * i), 1000 + i) for i in range(864)])
    day = performance.equity_curve(paper.pk, "1D", now)
    assert len(day) == 289 and day[-1] == [ms(now), "1000"]
    week = performance.equity_curve(paper.pk, "1W", now)
    assert len(week) == 73  # the last snapshot of each UTC hour
    assert week[-1] == [ms(now), "1000"] and week == sorted(week)
    assert len(performance.equity_curve(paper.pk, "All", now)) == 4  # one per UTC day
    with pytest.raises(ValueError, match="range must be one of"):
        performance.equity_curve(paper.pk, "2D", now)


START = at(2026, 1, 5)


def _trades(account, config, symbol, n, start=START):
    # Trade i: long 0.1 at 100, exit at 110 (even i: +1 - 2*0.05 fees) or 95 (odd: -0.5 - 0.1).
    specs = [("long", D("0.1"), D("100"), D("110") if i % 2 == 0 else D("95"), D("0.05"))
             for i in range(n)]
    return closed_trades(account, config, symbol, specs, start)


@pytest.mark.django_db
def test_trade_history_pages_and_fills(paper, make_config, symbol):
    config = make_config(paper)
    _trades(paper, config, symbol, 5)
    page = performance.trade_page(paper.owner, 1, size=2)
    assert (page.number, page.pages, page.total, page.has_next) == (1, 3, 5, True)
    newest = page.trades[0].as_dict()  # trade 4: even, a win
    assert newest["size"] == "0.1" and newest["entry_price"] == "100"
    assert newest["exit_price"] == "110" and newest["fees"] == "0.1" and newest["pnl"] == "0.9"
    assert newest["duration_s"] == 300 and newest["config_name"] == "script"
    last = performance.trade_page(paper.owner, 99, size=2)  # past the end: the last page
    assert (last.number, len(last.trades), last.has_previous) == (3, 1, True)
    assert last.trades[0].as_dict()["exit_reason"] == "stop_loss"


@pytest.mark.django_db
def test_config_performance_win_rate_pnl_drawdown(paper, make_config, symbol):
    config = make_config(paper)
    idle = make_config(paper, name="idle")
    _trades(paper, config, symbol, 5)  # +0.9, -0.6, +0.9, -0.6, +0.9
    rows = {r.config.name: r for r in performance_configs.config_performance(paper.owner)}
    row = rows["script"]
    assert (row.trades, row.wins, row.pnl) == (5, 3, D("1.5"))
    assert row.win_rate == D(60) and row.max_drawdown == D("0.6")
    assert row.since == at(2026, 1, 5) and row.backtest_state == "not run yet"
    assert rows["idle"].trades == 0 and rows["idle"].backtest_state == "no trades yet"
    assert idle.pk in {r.config.pk for r in rows.values()}


@pytest.mark.django_db
def test_csv_lists_every_closed_trade(client, paper, make_config, symbol, monkeypatch):
    from orders import performance_views

    monkeypatch.setattr(performance_views, "CSV_CHUNK", 2)  # three chunks
    config = make_config(paper)
    _trades(paper, config, symbol, 5)
    client.force_login(paper.owner)
    response = client.get("/dashboard/trades.csv")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 5 and len({r["id"] for r in rows}) == 5
    assert rows[0]["closed_at"] == "2026-01-05T00:45:00+00:00"
    assert (rows[0]["side"], rows[0]["size"], rows[0]["exit_price"], rows[0]["pnl"],
            rows[0]["fees"], rows[0]["config_name"]) == ("long", "0.1", "110", "0.9", "0.1",
                                                         "script")
    assert [r["pnl"] for r in rows] == ["0.9", "-0.6", "0.9", "-0.6", "0.9"]


@pytest.mark.django_db
def test_csv_and_pages_show_only_the_users_own_trades(client, paper, make_config, symbol,
                                                      make_trader, make_account):
    _trades(paper, make_config(paper), symbol, 3)
    bob = make_trader("bob")
    client.force_login(bob)
    body = b"".join(client.get(f"/dashboard/trades.csv?account={paper.pk}").streaming_content)
    assert body.decode().strip().count("\n") == 0  # the header only
    for hostile in ("x", "0", "-3", str(10**30)):
        response = client.get(f"/dashboard/trades.csv?account={hostile}")
        assert response.status_code == 400 and b"account must be" in response.content
    html = client.get("/").content.decode()
    assert "No closed positions yet." in html and "alice-paper" not in html


@pytest.mark.django_db
def test_backtest_button_queues_one_run_over_the_live_period(
    client, paper, make_config, symbol, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(performance_configs, "_queue", queued.append)
    config = make_config(paper, stop_loss_pct=D("2"))
    _trades(paper, config, symbol, 2)
    client.force_login(paper.owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/dashboard/configs/{config.pk}/backtest", follow=True)
    assert "queued" in response.content.decode()
    run = BacktestRun.objects.get(config=config)
    assert queued == [run.pk] and run.start == at(2026, 1, 5)
    assert run.settings["risk"]["stop_loss_pct"] == 2.0 and run.status == "pending"
    row = performance_configs.config_performance(paper.owner)[0]
    assert row.backtest == run and row.backtest_state == "pending"


@pytest.mark.django_db
def test_the_dashboards_queries_do_not_grow_with_trades_or_configs(client, paper, make_config,
                                                                   symbol):
    client.force_login(paper.owner)
    snapshots(paper, [(at(2026, 1, 5) + dt.timedelta(hours=h), 1000 + h) for h in range(48)])
    _trades(paper, make_config(paper, name="c0"), symbol, 3)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/").status_code == 200
        return len(queries)

    few = count()
    for i in range(1, 6):
        _trades(paper, make_config(paper, name=f"c{i}"), symbol, 60,
                start=at(2026, 2, i))
    assert count() == few


@pytest.mark.django_db
def test_the_databases_drawdown_matches_the_definition(paper, make_config, symbol):
    config = make_config(paper, name="loser")
    exits = [D("99"), D("100.5"), D("98"), D("101.25"), D("97.5")]
    specs = [("long", D("1"), D("100"), e, D("0")) for e in exits]
    closed_trades(paper, config, symbol, specs, START)
    row = performance_configs.config_performance(paper.owner)[0]
    pnls = [e - D("100") for e in exits]  # -1, +0.5, -2, +1.25, -2.5: cumulative low -3.75
    assert row.max_drawdown == performance.max_drawdown(pnls) == D("3.75")
