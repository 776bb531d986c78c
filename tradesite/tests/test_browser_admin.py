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


# Django's live_server speaks WSGI only: the pages' WebSockets (markets, the shell's alerts) are
# refused there (they are tested against the real ASGI server in test_browser_chart/_shell).
@pytest.mark.allow_browser_errors(r"WebSocket connection to 'ws://[^']*/ws/(markets|alerts)/' "
                                  "failed")
def test_pages_work_under_the_content_security_policy(live_server, page, monkeypatch):
    """The dashboard's kill switch asks first (a static script now: no inline handler is
    allowed), and the markets page, the backtests page and the admin raise no CSP violation
    (the autouse fixture in conftest fails the test on any)."""
    from markets.models import Account

    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-1")
    bootstrap()
    page.goto(live_server.url + "/admin/login/?next=/")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo-password-1")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Trading dashboard")
    policy = page.request.get(live_server.url + "/").headers["content-security-policy"]
    assert "script-src 'self'" in policy

    asked = []

    def answer(accept: bool):
        def handle(dialog):
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handle

    page.once("dialog", answer(False))
    page.click("button.kill")
    assert asked == ["Stop all your strategies and halt your accounts?"]
    assert page.locator(".messages li").count() == 0
    page.once("dialog", answer(True))
    page.click("button.kill")
    page.wait_for_selector(".messages li:has-text('Kill switch:')")
    assert len(asked) == 2
    assert Account.objects.filter(owner__username="demo", halted=True).exists()

    for path, ready in [("/markets/", "main"), ("/strategies/backtests/", "#backtest-form"),
                        ("/admin/strategies/strategyconfig/", "#result_list")]:
        page.goto(live_server.url + path)
        page.wait_for_selector(ready)
        page.wait_for_load_state("networkidle")


@pytest.mark.allow_browser_errors("Content Security Policy", "CSP violation")
def test_a_csp_violation_is_caught(live_server, page, csp_violations):
    """The listener behind every browser test's CSP check does see a violation."""
    page.goto(live_server.url + "/admin/login/")
    with page.expect_console_message(lambda m: "style-src" in m.text, timeout=5000):
        page.evaluate("""() => {
            const style = document.createElement("style");
            style.textContent = "body { color: red; }";
            document.head.appendChild(style);
        }""")
    assert any("style-src" in v for v in csp_violations), csp_violations
    csp_violations.clear()  # expected here: the autouse check must not fail this test
