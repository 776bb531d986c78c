"""The backtest pages in headless Chromium against the real web server (see
``tradesite/tests/test_browser_chart.py``): submit the form, follow the progress, see the
results with the chart, its trade markers, the stats and the monthly returns."""

from __future__ import annotations

import pytest

from markets.candles import upsert_candles
from strategies import tasks
from strategies.models import BacktestRun
from strategies.tests.conftest import random_walk
from tradesite.tests.test_browser_chart import log_in, trader, web, web_server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

HOUR = 3_600_000


def test_a_backtest_submitted_in_the_browser_shows_progress_then_its_results(
    web, page, screenshot, symbol, trader  # noqa: F811 - the imported fixtures
):
    candles = random_walk(1500, seed=5, step_ms=HOUR, vol=0.01)  # from 2023-11-14
    upsert_candles(symbol.pk, "1h", zip(
        candles.open_time_ms.tolist(), candles.open.tolist(), candles.high.tolist(),
        candles.low.tolist(), candles.close.tolist(), candles.volume.tolist(),
    ))
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, web, "/strategies/backtests/")

    # A bad parameter first: the message sits on the field and nothing is created.
    page.select_option("#id_strategy", "ma_cross")
    page.fill("#id_params", '{"short": 1}')
    page.select_option("#id_symbol", str(symbol.pk))
    page.select_option("#id_timeframe", "1h")
    page.fill("#id_start", "2023-11-20")
    page.fill("#id_end", "2024-01-10")
    page.fill("#id_stop_loss_pct", "3")
    page.click("#run-backtest")
    page.wait_for_selector("#errors-params")
    assert "short" in page.inner_text("#errors-params")
    assert not BacktestRun.objects.exists()
    screenshot("bad-params")

    page.fill("#id_params", '{"short": 5, "mid": 12, "long": 30}')
    page.click("#run-backtest")
    page.wait_for_url(web.url + "/strategies/backtests/*/")
    run = BacktestRun.objects.get()
    assert run.owner == trader and run.status == BacktestRun.Status.PENDING
    page.wait_for_function("() => window.tradesiteBacktest?.polls() >= 1")
    assert page.inner_text("#status") == "Pending"
    screenshot("pending")

    # The worker's job, done here: the polling page notices and shows the results.
    assert tasks.run_backtest_run(run.pk) == "done"
    run.refresh_from_db()
    page.wait_for_selector("#stats", timeout=10_000)
    page.wait_for_function("() => window.tradesiteBacktest.markers().length > 0", timeout=10_000)
    assert page.inner_text("#status") == "Done"
    assert page.evaluate("window.tradesiteBacktest.bars()") == 51 * 24
    markers = page.evaluate("window.tradesiteBacktest.markers()")
    assert len(markers) == 2 * len(run.trades)  # one bar per entry and per exit
    assert markers[0]["time"] == run.trades[0]["entry_time_ms"] // 1000
    assert page.evaluate("window.tradesiteBacktest.equityPoints()") == len(run.equity)
    assert page.locator("#chart canvas").count() > 0
    assert page.locator("#equity canvas").count() > 0
    total = page.inner_text("#stats tr[data-stat='total_return'] td")
    assert total == f"{run.stats['total_return'] * 100:+.2f}%"
    assert page.locator("#stats tr").count() == 13
    assert page.locator("#monthly tbody tr").count() == 2  # 2023 and 2024
    assert page.locator("#trades tbody tr").count() == len(run.trades)
    screenshot("results")
