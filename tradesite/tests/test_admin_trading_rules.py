"""The admin's trading rules for configs: a config's symbol is quoted in its account's quote
asset, and a spot symbol is never shorted (shorts off unless said, refused when said)."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from markets.models import Account, Exchange, Symbol
from strategies.models import StrategyConfig

pytestmark = pytest.mark.django_db


def errors(response) -> str:
    html = response.content.decode()
    return " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S))


@pytest.fixture
def trader(make_trader):
    user = make_trader("erin")
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def usdt_symbol(exchange):
    """A USDT spot symbol beside the fixture venue's KRW-BTC (one venue, two quotes)."""
    return Symbol.objects.create(
        exchange=exchange, code="USDT-BTC", base="BTC", quote="USDT",
        min_notional=Decimal("1"),
    )


def config_form(symbol, account, **overrides):
    return {
        "name": "cfg", "strategy": "bollinger", "params": "{}", "symbol": symbol.pk,
        "timeframe": "1m", "account": account.pk, "leverage": "1",
        "sizing_method": "fraction", "sizing_params": "{}",
    } | overrides


def test_a_config_whose_symbol_is_quoted_otherwise_than_its_account_is_refused(
    trader, make_account, symbol, usdt_symbol
):
    user, client = trader
    krw = make_account(user, label="krw paper")
    assert krw.quote_asset == "KRW"  # the Upbit venue's main quote, not given

    response = client.post("/admin/strategies/strategyconfig/add/",
                           config_form(usdt_symbol, krw))

    assert response.status_code == 200
    assert (
        "sim:USDT-BTC is quoted in USDT, but account krw paper measures equity in KRW; pick an "
        "account whose quote asset is USDT." in errors(response)
    )
    usdt = make_account(user, label="usdt paper", quote_asset="USDT")
    response = client.post("/admin/strategies/strategyconfig/add/",
                           config_form(usdt_symbol, usdt))
    assert response.status_code == 302, errors(response)


def test_an_account_cannot_change_its_quote_under_its_configs(
    trader, make_account, symbol, usdt_symbol
):
    user, client = trader
    account = make_account(user, label="krw paper")
    StrategyConfig.objects.create(owner=user, name="btc", strategy="bollinger", symbol=symbol,
                                  account=account)
    page = client.get(f"/admin/markets/account/{account.pk}/change/").content.decode()
    assert '<option value="USDT">USDT (Simulator)</option>' in page
    assert '<option value="KRW" selected>KRW (Simulator)</option>' in page

    response = client.post(f"/admin/markets/account/{account.pk}/change/", {
        "label": "krw paper", "exchange": account.exchange_id, "mode": "paper",
        "quote_asset": "USDT", "halted_reason": "", "balances-TOTAL_FORMS": "0",
        "balances-INITIAL_FORMS": "0",
    })

    assert response.status_code == 200
    assert (
        "Config btc trades sim:KRW-BTC, quoted in KRW; this account cannot measure equity in USDT "
        "while it does." in errors(response)
    )


def test_an_account_on_a_venue_without_symbols_takes_the_adapters_main_quote(trader):
    user, _ = trader
    venue = Exchange.objects.create(slug="bn", name="Binance", adapter="binance_spot",
                                    rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    account = Account.objects.create(owner=user, exchange=venue, label="new")
    assert account.quote_asset == "USDT"


def test_shorts_are_off_by_default_on_a_spot_symbol(trader, make_account, symbol):
    user, client = trader
    account = make_account(user)

    response = client.post("/admin/strategies/strategyconfig/add/", config_form(symbol, account))

    assert response.status_code == 302, errors(response)
    config = StrategyConfig.objects.get(owner=user)
    assert config.params["shorts"] is False
    assert config.build_strategy().params.shorts is False
    # A config saved without the form (shell, fixtures) resolves the same way.
    bare = StrategyConfig.objects.create(owner=user, name="bare", strategy="bollinger",
                                         symbol=symbol, account=account)
    assert bare.params == {} and bare.build_strategy().params.shorts is False


def test_shorts_on_a_spot_symbol_are_refused_with_a_message(trader, make_account, symbol):
    user, client = trader
    account = make_account(user)

    response = client.post("/admin/strategies/strategyconfig/add/",
                           config_form(symbol, account, params='{"shorts": "yes"}'))

    assert response.status_code == 200
    assert (
        "shorts: sim:KRW-BTC is a spot symbol and a spot symbol cannot be shorted; set "
        "&quot;shorts&quot;: false (or leave it out) or pick a perpetual symbol."
        in errors(response)
    )
    assert not StrategyConfig.objects.filter(owner=user).exists()


def test_shorts_stay_on_by_default_on_a_perpetual(trader, make_account, exchange):
    user, client = trader
    perpetual = Symbol.objects.create(
        exchange=exchange, code="KRW-BTC-PERP", base="BTC", quote="KRW",
        market_type="perpetual", min_notional=Decimal("5000"), max_leverage=20,
    )
    account = make_account(user)

    response = client.post("/admin/strategies/strategyconfig/add/",
                           config_form(perpetual, account))

    assert response.status_code == 302, errors(response)
    assert StrategyConfig.objects.get(owner=user).params["shorts"] is True


def test_the_config_form_says_how_shorts_and_exits_are_set(trader):
    _, client = trader
    page = client.get("/admin/strategies/strategyconfig/add/").content.decode()
    assert "On a spot symbol shorts are off" in page
    assert "a spot symbol cannot be shorted" in page
    assert "exit=middle {middle|opposite|none}" in page  # Bollinger's exit modes
