"""Readable logs (issue 15 item 6): the routine per-tick tasks log nothing at INFO when there is
nothing to tell (no position open, no signal), Celery's own "received"/"succeeded"/"sent" lines
about them included; what a trader wants (a signal, an order, its fill) is at INFO."""

from __future__ import annotations

import logging

import pytest
from celery.app.trace import LOG_SUCCESS

from alerts import tasks as alert_tasks
from markets import tasks as market_tasks
from markets.models import Exchange
from orders import tasks
from orders.models import Position
from orders.tests.conftest import MINUTE, T0, store
from tradesite import quietlogs

pytestmark = pytest.mark.django_db


def celery_lines(task: str) -> None:
    """What the worker (received), the tracer (succeeded) and beat (sent) log about ``task``."""
    logging.getLogger("celery.worker.strategy").info(
        "Task %(name)s[%(id)s] received", {"name": task, "id": "1", "args": "", "kwargs": ""})
    logging.getLogger("celery.app.trace").info(LOG_SUCCESS, {
        "id": "1", "name": task, "return_value": "{}", "runtime": 0.01, "args": "",
        "kwargs": ""})
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "job", task)


def info_or_above(caplog) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.INFO]


def test_routine_tasks_emit_no_info_with_no_position_open(paper, make_config, symbol, caplog):
    quietlogs.install()
    make_config(paper, params={"enter": 50})  # active, but no signal on these bars
    store(symbol, [100.0 + i for i in range(10)])
    with caplog.at_level(logging.DEBUG):  # DEBUG shows them: only their level changes
        tasks.exit_guard.apply(args=("sim", "KRW-BTC", 109.0, T0 + 10 * MINUTE)).get()
        tasks.exit_guard.apply(args=("sim", "KRW-BTC", 109.5, T0 + 10 * MINUTE + 500),
                               kwargs={"high": 109.6, "low": 109.0}).get()
        assert tasks.evaluate.apply(args=("sim", "KRW-BTC", "1m", T0 + 9 * MINUTE)).get()[
            "configs"] == 1
        tasks.run_trading.apply().get()
        tasks.reconcile.apply().get()
        assert tasks.snapshot_equity.apply().get() == 1
        alert_tasks.deliver_due.apply().get()
        Exchange.objects.update(is_active=False)  # nothing to collect: a quiet minute
        market_tasks.collect_candles.apply().get()
        for task in quietlogs.ROUTINE_TASKS:
            celery_lines(task)
    assert not Position.objects.exists()
    assert info_or_above(caplog) == []
    # The tracer's "succeeded" line of each task run above (8) and the three lines per task.
    demoted = [r for r in caplog.records if r.name in quietlogs.CELERY_LOGGERS]
    assert len(demoted) == 8 + 3 * len(quietlogs.ROUTINE_TASKS)
    assert {r.levelname for r in demoted} == {"DEBUG"}


def test_at_info_the_routine_lines_are_dropped_and_the_others_kept(caplog):
    quietlogs.install()
    with caplog.at_level(logging.INFO):
        celery_lines("orders.tasks.exit_guard")
        celery_lines("strategies.tasks.run_backtest_run")  # a trader's own request: kept
        logging.getLogger("celery.app.trace").error(  # a routine task failing: kept
            "Task %(name)s[%(id)s] raised unexpected: %(exc)s",
            {"name": "orders.tasks.exit_guard", "id": "2", "exc": "boom"})
    lines = info_or_above(caplog)
    assert len(lines) == 4 and not any("exit_guard" in line for line in lines[:3])
    assert all("run_backtest_run" in line for line in lines[:3])
    assert lines[3].startswith("ERROR celery.app.trace") and "exit_guard" in lines[3]


def test_signals_their_orders_and_fills_are_logged_at_info(paper, make_config, symbol, caplog):
    make_config(paper, name="in at 3, out at 4", params={"enter": 3, "exit": 4})
    store(symbol, [100.0, 101.0, 102.0, 103.0, 104.0])
    with caplog.at_level(logging.INFO):
        tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
        tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 4 * MINUTE)
    lines = info_or_above(caplog)
    text = "\n".join(lines)
    assert "signal: in at 3, out at 4 enter_long sim:KRW-BTC 1m, bar 2026-01-01 00:03 UTC" in text
    assert "signal: in at 3, out at 4 exit_long sim:KRW-BTC 1m, bar 2026-01-01 00:04 UTC" in text
    orders = [line for line in lines if ": order: " in line]
    fills = [line for line in lines if ": fill: " in line]
    assert [line.split(": order: ")[1].split()[0] for line in orders] == ["buy", "sell"]
    assert [line.split(": fill: ")[1].split()[0] for line in fills] == ["buy", "sell"]
    assert all("alice-paper" in line for line in orders + fills)
    assert not any("000000 " in line for line in fills)  # amounts without trailing zeros
