"""A USDT account made in the admin trades: the account's quote asset follows its venue, and a
config on a USDT perpetual gets its automated entries filled (closed bar -> evaluate -> paper
order -> position), as orders/tests/test_trading_flow.py does for KRW."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from markets.models import Account, Balance, Exchange, Symbol
from orders import tasks
from orders.models import Order, Position
from orders.tests.conftest import MINUTE, T0, store
from strategies.models import Signal, StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 100_000.0


@pytest.fixture
def futures():
    venue = Exchange.objects.create(
        slug="simfut", name="Sim futures", adapter="binance_futures",
        rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1",
    )
    symbol = Symbol.objects.create(
        exchange=venue, code="BTCUSDT", base="BTC", quote="USDT", market_type="perpetual",
        tick_size=Decimal("0.1"), step_size=Decimal("0.001"), min_notional=Decimal("5"),
        max_leverage=125,
    )
    return venue, symbol


def errors(response) -> str:
    html = response.content.decode()
    return " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S))


def account_form(venue, **overrides):
    data = {
        "label": "usdt futures", "exchange": venue.pk, "mode": "paper", "quote_asset": "",
        "new_api_key": "", "new_api_secret": "", "halted_reason": "",
        "balances-TOTAL_FORMS": "1", "balances-INITIAL_FORMS": "0",
        "balances-0-asset": "USDT", "balances-0-free": "10000", "balances-0-locked": "0",
    }
    return data | overrides


@pytest.mark.redis
def test_an_admin_made_usdt_futures_account_gets_its_automated_entries_filled(
    make_trader, futures
):
    venue, symbol = futures
    trader = make_trader("carol")
    client = Client()
    client.force_login(trader)

    # The quote asset left blank: the venue's main quote (USDT at Binance), not KRW.
    response = client.post("/admin/markets/account/add/", account_form(venue))
    assert response.status_code == 302, errors(response)
    account = Account.objects.get(owner=trader)
    assert account.quote_asset == "USDT"
    assert Balance.objects.get(account=account, asset="USDT").free == 10_000
    # The API measures it in USDT too (it said 0.00, in KRW, before).
    (row,) = client.get("/api/balances").json()["accounts"]
    assert (row["quote_asset"], Decimal(row["equity"])) == ("USDT", 10_000)

    response = client.post("/admin/strategies/strategyconfig/add/", {
        "name": "futures script", "strategy": "test_script", "params": '{"enter": 3}',
        "symbol": symbol.pk, "timeframe": "1m", "account": account.pk, "is_active": "on",
        "leverage": "5", "sizing_method": "fraction", "sizing_params": '{"fraction": 0.5}',
    })
    assert response.status_code == 302, errors(response)
    config = StrategyConfig.objects.get(owner=trader)
    store(symbol, [PRICE] * 4)

    report = tasks.evaluate("simfut", "BTCUSDT", "1m", T0 + 3 * MINUTE)

    assert report["executions"] == {"ordered": 1}, report
    signal = Signal.objects.get(config=config)
    order = Order.objects.get(signal=signal)
    assert order.status == "filled", order.reject_reason
    assert order.fee_asset == "USDT"
    position = Position.objects.get(account=account)
    assert position.side == "long" and position.quantity == order.filled_quantity > 0
    # Half the equity at 5x: the margin is at most half of the 10,000 USDT.
    assert position.quantity * position.entry_price <= Decimal(5 * 5_000)


def test_a_quote_asset_the_venue_does_not_trade_is_refused(make_trader, futures):
    venue, _ = futures
    trader = make_trader("dave")
    client = Client()
    client.force_login(trader)
    page = client.get("/admin/markets/account/add/").content.decode()
    assert '<option value="USDT">USDT (Sim futures)</option>' in page

    response = client.post("/admin/markets/account/add/", account_form(venue, quote_asset="KRW"))

    assert response.status_code == 200
    assert "Select a valid choice. KRW is not one of the available choices." in errors(response)
    account = Account(owner=trader, exchange=venue, label="shell", quote_asset="KRW")
    with pytest.raises(Exception, match="Sim futures trades symbols quoted in USDT; an account "
                       "measuring equity in KRW could trade none of them"):
        account.full_clean()
