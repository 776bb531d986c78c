"""What a trader setting up the original bot designs could not find or understand in the config
form (issue 19): the sizing methods' parameters, when the nightly optimizer runs, what a risk
percentage is a percentage of at leverage, and a sizing JSON error's example."""

import html
import re

import pytest

from markets.models import Account
from tradesite import demo
from tradesite.tests.bot_designs import AdminTrader, form_errors

pytestmark = pytest.mark.django_db

ADD = "/admin/strategies/strategyconfig/add/"


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


@pytest.fixture
def trader(make_trader):
    return AdminTrader(make_trader("sam"), "pw-sam")


def test_the_form_lists_each_sizing_method_with_its_parameters(trader):
    page = text(trader.client.get(ADD))
    assert "Sizing methods" in page
    assert ("kelly: Kelly fraction f* = W - (1 - W) / R, scaled by ``fraction`` (half-Kelly by "
            "default). win_rate=0.0 [0.0..1.0], payoff=1.0 [0.01..100.0], fraction=0.5 "
            "[0.01..1.0], min_trades=20 [1..10000], fallback=0.1 [0.0..1.0]") in page
    assert "atr_unit: Turtle unit" in page and "risk_pct=1.0 [0.01..100.0], atr_period=20" in page
    assert "fixed_quote: Spend the same quote amount" in page and "amount=100000.0" in page


def test_the_form_says_when_the_nightly_optimizer_runs(trader):
    page = text(trader.client.get(ADD))
    assert "No nightly optimizer job is enabled: opted-in configs are not re-optimized" in page

    demo._periodic_tasks(demo.Report())  # what bootstrap_demo schedules

    page = text(trader.client.get(ADD))
    assert "Nightly optimizer: Optimize strategies: every day at 00:05 (Asia/Seoul)" in page


def test_the_risk_section_says_percentages_are_of_price_not_margin(trader):
    page = text(trader.client.get(ADD))
    assert ("not of the margin: at 10x leverage a 0.11 stop-loss closes on a 0.11% price move, "
            "which loses 1.1% of the margin") in page


def test_sizing_parameters_that_are_not_an_object_show_the_methods_own_example(
    trader, symbol
):
    account = trader.add_paper_account("krw", symbol.exchange, "KRW", "1000000")
    assert Account.objects.get(pk=account.pk).balances.get(asset="KRW").free == 1000000
    response = trader.client.post(ADD, {
        "name": "k", "strategy": "rsi", "params": "{}", "symbol": symbol.pk, "timeframe": "1m",
        "account": account.pk, "leverage": "1", "sizing_method": "kelly", "sizing_params": "[0.5]",
    })
    assert response.status_code == 200
    assert ("sizing &#x27;kelly&#x27;: parameters must be a JSON object, like "
            "{&quot;win_rate&quot;: 0.0}") in form_errors(response)
