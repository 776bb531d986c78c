"""The admin in a real browser: log in as the demo trader and edit a strategy config's risk."""

import pytest

from strategies.models import StrategyConfig
from tradesite.demo import bootstrap

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_trader_logs_in_and_sets_a_stop_loss(live_server, page, screenshot, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-1")
    bootstrap()
    page.goto(live_server.url + "/admin/")
    assert page.locator("input[name=username]").is_visible()
    screenshot("login")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo-password-1")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Strategy configs")
    page.click("text=Strategy configs")
    page.wait_for_selector("#result_list")
    configs = StrategyConfig.objects.filter(owner__username="demo")
    if not configs.exists():
        pytest.fail("bootstrap_demo created no example configs (strategy library missing?)")
    config = configs.order_by("pk").first()
    page.goto(f"{live_server.url}/admin/strategies/strategyconfig/{config.pk}/change/")
    page.fill("input[name=stop_loss_pct]", "1.5")
    page.fill("input[name=leverage]", "300")
    page.click("input[name=_save]")
    page.wait_for_selector(".errorlist")
    assert "Leverage can be at most 125x" in page.inner_text(".errorlist")
    screenshot("leverage-error")
    page.fill("input[name=leverage]", "1")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    config.refresh_from_db()
    assert str(config.stop_loss_pct) == "1.5000"
    screenshot("saved")
