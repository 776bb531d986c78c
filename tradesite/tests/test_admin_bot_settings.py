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
    assert ("kelly: Kelly fraction f* = W - (1 - W) / R, scaled by fraction (half-Kelly by "
            "default). win_rate=0.0 [0.0..1.0], payoff=1.0 [0.01..100.0], fraction=0.5 "
            "[0.01..1.0], min_trades=20 [1..10000], fallback=0.1 [0.0..1.0]") in page
    assert "atr_unit: Turtle unit: a 1-ATR move against the position costs risk_pct" in page
    assert "risk_pct=1.0 [0.01..100.0], atr_period=20" in page
    assert "fixed_quote: Spend the same quote amount" in page and "amount=100000.0 [0.0..]" in page


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


def account_form(exchange, label, asset, free, locked="0"):
    return {
        "label": label, "exchange": exchange.pk, "quote_asset": "KRW", "mode": "paper",
        "new_api_key": "", "new_api_secret": "", "halted_reason": "",
        "balances-TOTAL_FORMS": "1", "balances-INITIAL_FORMS": "0",
        "balances-MIN_NUM_FORMS": "0", "balances-MAX_NUM_FORMS": "1000",
        "balances-0-asset": asset, "balances-0-free": free, "balances-0-locked": locked,
    }


def test_a_paper_balance_typed_in_lower_case_funds_the_accounts_quote(trader, symbol):
    # "krw" was stored as typed: the KRW account then had no KRW, equity 0, every entry refused.
    trader.post("/admin/markets/account/add/", account_form(symbol.exchange, "lc", " krw ",
                                                            "1000000"))
    account = Account.objects.get(owner=trader.user, label="lc")
    assert list(account.balances.values_list("asset", "free")) == [("KRW", 1_000_000)]


@pytest.mark.parametrize("asset, free, locked, message", [
    ("KRW", "-5", "0", "Free must be 0 or more; got -5."),
    ("KRW", "10", "-1", "Locked must be 0 or more; got -1."),
    ("KR W", "10", "0", "Asset must be a currency code of letters and digits, like KRW or USDT; "
                        "got &#x27;KR W&#x27;."),
])
def test_a_bad_paper_balance_is_refused_in_words_not_by_its_constraint(
    trader, symbol, asset, free, locked, message
):
    response = trader.client.post("/admin/markets/account/add/",
                                  account_form(symbol.exchange, "bad", asset, free, locked))
    assert response.status_code == 200
    errors = form_errors(response)
    assert message in errors and "Constraint" not in errors
    assert not Account.objects.filter(label="bad").exists()


def test_orders_and_positions_name_their_config_and_filter_by_the_traders_own(
    trader, make_trader, make_account, symbol
):
    """Five designs on one login: which config placed an order or holds a position must be
    visible and filterable, without listing another user's config names."""
    import datetime as dt

    from orders.models import Order, Position
    from strategies.models import StrategyConfig

    other = make_trader("olga")
    rows = {}
    for user, name in ((trader.user, "Upbit ensemble mine"), (other, "Secret design of olga")):
        account = make_account(user, label=f"acct {user.username}")
        config = StrategyConfig.objects.create(owner=user, name=name, strategy="rsi",
                                               symbol=symbol, account=account)
        Order.objects.create(account=account, config=config, symbol=symbol, side="buy",
                             type="market", quantity=1, client_order_id=f"c-{user.pk}")
        Position.objects.create(account=account, config=config, symbol=symbol, side="long",
                                quantity=1, entry_price=100, opened_at=dt.datetime.now(dt.UTC))
        rows[user.username] = config
    mine = rows["sam"]
    for url in ("/admin/orders/order/", "/admin/orders/position/"):
        page = text(trader.client.get(url))
        assert "Upbit ensemble mine" in page and "By config" in page
        assert "Secret design of olga" not in page
        filtered = trader.client.get(f"{url}?config__id__exact={mine.pk}")
        assert filtered.status_code == 200 and "Upbit ensemble mine" in text(filtered)
