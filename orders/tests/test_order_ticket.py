"""The order ticket's server side: ``POST /api/positions/<id>/close`` (the kill switch's closing
service, one position at a time), the ticket's data (``orders.ticket.ticket_context``: the
user's accounts that trade a symbol, each venue's rule for sizing a market buy) and the pages
that include it."""

import json
from decimal import Decimal

import pytest

from markets.models import Account, Balance, Exchange, Symbol
from orders.models import ApiToken, Order, Position
from orders.tests.conftest import T0, fund, store
from orders.ticket import sizing_rule, ticket_context

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0


def call(client, path, key, body=None):
    response = client.post(path, data=json.dumps(body or {}), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key}")
    return response.status_code, response.json()


@pytest.fixture
def alice(paper):
    _, key = ApiToken.issue(paper.owner, "test")
    return key


def _buy(client, key, account, symbol="sim:KRW-BTC", quantity="0.01"):
    status, body = call(client, "/api/orders", key, {
        "account": account.pk, "symbol": symbol, "side": "buy", "quantity": quantity})
    assert status == 201 and body["order"]["status"] == "filled", body
    return Position.objects.get(account=account, closed_at=None)


def test_close_sells_a_manual_spot_position_through_the_closing_service(client, symbol, paper,
                                                                       alice):
    store(symbol, [PRICE] * 4)
    position = _buy(client, alice, paper)
    assert position.config_id is None and position.quantity == Decimal("0.01")

    status, body = call(client, f"/api/positions/{position.pk}/close", alice)

    assert status == 200, body
    order = body["order"]
    assert order["side"] == "sell" and order["status"] == "filled"
    assert order["reduce_only"] is True and order["reason"] == "manual_close"
    assert Decimal(order["quantity"]) == Decimal("0.01")
    assert body["position"]["open"] is False and body["position"]["close_reason"] == "manual_close"
    position.refresh_from_db()
    assert position.closed_at is not None
    assert Balance.objects.get(account=paper, asset="BTC").free == 0
    # Closed: a second close says so and sends nothing.
    status, body = call(client, f"/api/positions/{position.pk}/close", alice)
    assert status == 409 and body["error"] == f"position {position.pk} is closed already"
    assert Order.objects.filter(account=paper, reason="manual_close").count() == 1


def test_close_reduces_a_futures_position_on_a_halted_account_too(client, perpetual,
                                                                  futures_account, alice):
    store(perpetual, [100.0] * 4)
    status, body = call(client, "/api/orders", alice, {
        "account": futures_account.pk, "symbol": "sim:BTCUSDT", "side": "sell",
        "quantity": "1"})
    assert status == 201 and body["order"]["status"] == "filled", body
    position = Position.objects.get(account=futures_account, closed_at=None)
    assert position.side == "short"
    # The kill switch halted the account: protective closes still run.
    Account.objects.filter(pk=futures_account.pk).update(halted=True, halted_reason="test")

    status, body = call(client, f"/api/positions/{position.pk}/close", alice)

    assert status == 200, body
    assert body["order"]["side"] == "buy" and body["order"]["reduce_only"] is True
    assert body["order"]["status"] == "filled" and body["position"]["open"] is False


def test_close_refuses_another_users_position_and_an_unpriced_one(client, symbol, paper, alice,
                                                                  make_trader, make_account):
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob")
    fund(bob_account, "KRW", "1000000")
    store(symbol, [PRICE] * 4)
    _, bob_key = ApiToken.issue(bob, "test")
    bobs = _buy(client, bob_key, bob_account)
    status, body = call(client, f"/api/positions/{bobs.pk}/close", alice)
    assert status == 404 and body["error"] == f"no position with id {bobs.pk}"
    assert Position.objects.get(pk=bobs.pk).closed_at is None

    other = Symbol.objects.create(exchange=symbol.exchange, code="KRW-ETH", base="ETH",
                                  quote="KRW")
    unpriced = Position.objects.create(account=paper, symbol=other, side="long",
                                       quantity=Decimal("1"), entry_price=Decimal("1"),
                                       opened_at=bobs.opened_at)
    status, body = call(client, f"/api/positions/{unpriced.pk}/close", alice)
    assert status == 409 and "no price is known for" in body["error"]


def test_close_needs_a_login_and_the_csrf_token_of_a_session(client, symbol, paper):
    store(symbol, [PRICE] * 4)
    response = client.post("/api/positions/1/close")
    assert response.status_code == 401
    csrf_client = type(client)(enforce_csrf_checks=True)
    csrf_client.force_login(paper.owner)
    response = csrf_client.post("/api/positions/1/close")
    assert response.status_code == 403 and "CSRF" in response.json()["error"]


def test_ticket_lists_the_accounts_that_trade_the_symbol_with_each_venues_rule(
    symbol, perpetual, paper, futures_account, make_trader, make_account
):
    trader = paper.owner
    Account.objects.create(owner=trader, exchange=symbol.exchange, label="live upbit",
                           mode="live", quote_asset="KRW")
    make_account(make_trader("bob"), label="bob")  # never shown to alice
    store(symbol, [PRICE] * 2)

    chart = ticket_context(trader, symbol)

    assert [a["label"] for a in chart["accounts"]] == ["alice-paper", "live upbit"]
    assert chart["fixed_symbol"] == "sim:KRW-BTC"
    assert chart["symbols"]["sim:KRW-BTC"]["last_price"] == "50000000"
    assert chart["symbols"]["sim:KRW-BTC"]["min_notional"] == "5000"
    paper_rule, live_rule = (a["rules"]["KRW-BTC"] for a in chart["accounts"])
    assert paper_rule["by_quantity"] and paper_rule["by_quote"]
    # Upbit (the test venue's adapter) takes a live market buy by the KRW to spend only.
    assert live_rule == {"by_quantity": False, "by_quote": True,
                         "text": "Simulator: a market buy is sized by the KRW amount to spend only"}
    assert chart["api"]["close"] == "/api/positions/{id}/close"

    dashboard = ticket_context(trader)
    by_label = {a["label"]: a for a in dashboard["accounts"]}
    assert by_label["futures"]["symbols"] == ["BTCUSDT"]  # the USDT account: USDT symbols only
    assert by_label["alice-paper"]["symbols"] == ["KRW-BTC"]
    assert set(dashboard["symbols"]) == {"sim:KRW-BTC", "sim:BTCUSDT"}
    futures_rule = by_label["futures"]["rules"]["BTCUSDT"]
    assert futures_rule["by_quote"] is False and "contracts" in futures_rule["text"]


def test_live_binance_futures_rule_is_by_quantity(make_trader, db):
    venue = Exchange.objects.create(slug="bf", name="Binance USDⓈ-M", adapter="binance_futures",
                                    rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    symbol = Symbol.objects.create(exchange=venue, code="BTCUSDT", base="BTC", quote="USDT",
                                   market_type="perpetual", max_leverage=20)
    account = Account.objects.create(owner=make_trader("dora"), exchange=venue, label="live",
                                     mode="live")
    assert sizing_rule(account, symbol) == {
        "by_quantity": True, "by_quote": False,
        "text": "Binance USDⓈ-M: size by quantity in contracts of BTC"}


def test_chart_and_dashboard_include_the_ticket(client, symbol, paper):
    store(symbol, [PRICE] * 2, start=T0)
    client.force_login(paper.owner)
    for path in ("/chart/sim/KRW-BTC/", "/"):
        html = client.get(path).content.decode()
        assert html.count('id="order-ticket"') == 1, path
        assert 'id="order-ticket-data"' in html and "order-ticket.js" in html
        assert f'<option value="{paper.pk}">alice-paper' in html


def test_the_ticket_says_when_no_account_trades_the_symbol(client, symbol, make_trader):
    user = make_trader("erin")
    client.force_login(user)
    html = client.get("/chart/sim/KRW-BTC/").content.decode()
    assert "None of your accounts trades sim:KRW-BTC" in html
    assert "order-ticket.js" not in html
