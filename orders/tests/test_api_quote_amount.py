"""Market buys sized by the quote amount to spend (Upbit's ``ord_type=price``, Binance spot's
``quoteOrderQty``): through POST /api/orders and ``services.place_manual_order``, with the same
gates as a quantity, filled on paper at the last price plus slippage within the amount (fees
included), and live through the simulator's venues."""

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from markets.models import Account, Balance, Symbol
from orders import services
from orders.brokers import PaperBroker
from orders.brokers.base import Costs
from orders.models import ApiToken, Order
from orders.tests.conftest import T0, fund, store
from orders.tests.live_helpers import last_close, live_account, settled
from simulator.server import DEFAULT_ACCOUNTS, SimConfig, start_in_thread

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0


def call(client, key, body):
    response = client.post("/api/orders", data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key}")
    return response.status_code, response.json()


@pytest.fixture
def alice(paper, symbol):
    store(symbol, [PRICE] * 4)
    _, key = ApiToken.issue(paper.owner, "test")
    return key


def balance(account, asset):
    return Balance.objects.get(account=account, asset=asset)


def test_a_paper_market_buy_spends_at_most_the_quote_amount_fees_included(client, alice, paper):
    status, body = call(client, alice, {
        "account": paper.pk, "symbol": "sim:KRW-BTC", "side": "buy", "quote_amount": "100000",
    })

    assert status == 201, body
    order = Order.objects.get(pk=body["order"]["id"])
    assert body["order"]["quote_amount"] == "100000" and order.quote_amount == 100_000
    assert order.status == "filled" and order.type == "market"
    fill = order.fills.get()
    assert fill.price == Decimal("50025000")  # last price + 5 bps slippage
    spent = fill.quantity * fill.price + fill.fee
    assert spent <= Decimal("100000")
    # The largest quantity on the 1E-8 step that stays within the amount.
    one_more = (fill.quantity + Decimal("1e-8")) * fill.price * Decimal("1.0005")
    assert one_more > Decimal("100000")
    krw = balance(paper, "KRW")
    assert krw.free == Decimal("1000000") - spent and krw.locked == 0
    assert balance(paper, "BTC").free == fill.quantity


@pytest.mark.parametrize("body, message", [
    ({"quantity": "0.001", "quote_amount": "100000"},
     'give either "quantity" or "quote_amount", not both'),
    ({}, 'give "quantity" (or "quote_amount" for a market buy)'),
    ({"side": "sell", "quote_amount": "100000"}, '"quote_amount" sizes a market buy only'),
    ({"quote_amount": "100000", "price": "40000000"}, '"quote_amount" sizes a market buy only'),
    ({"quote_amount": "-1"}, "quote_amount must be more than 0"),
    ({"quote_amount": "1e30"}, "quote_amount must be less than 10^18"),
    ({"quote_amount": True}, "quote_amount must be a number"),
])
def test_quote_amount_errors_name_the_field(client, alice, paper, body, message):
    request = {"account": paper.pk, "symbol": "sim:KRW-BTC", "side": "buy"} | body
    status, answer = call(client, alice, request)
    assert status == 400 and message in answer["error"], answer
    assert not Order.objects.exists()


@pytest.mark.parametrize("amount, funds, halted, reason", [
    ("4000", "1000000", False, "quote_amount 4000 KRW is below the venue minimum 5000 KRW"),
    ("200000", "100000", False,
     "this order needs 200000 KRW (fees included) but 100000 KRW is free"),
    ("100000", "1000000", True, "panic"),
])
def test_quote_amount_orders_pass_the_same_gates(client, alice, paper, amount, funds, halted,
                                                  reason):
    fund(paper, "KRW", funds)
    Account.objects.filter(pk=paper.pk).update(halted=halted, halted_reason="panic")
    status, body = call(client, alice, {
        "account": paper.pk, "symbol": "sim:KRW-BTC", "side": "buy", "quote_amount": amount,
    })
    assert status == 422 and body["order"]["status"] == "rejected"
    assert reason in body["order"]["reject_reason"]
    assert body["order"]["quote_amount"] == amount
    assert balance(paper, "KRW").free == Decimal(funds) and balance(paper, "KRW").locked == 0


def test_a_perpetual_is_sized_by_quantity(paper, exchange):
    perp = Symbol.objects.create(exchange=exchange, code="KRW-BTC-PERP", base="BTC", quote="KRW",
                                 market_type="perpetual", max_leverage=10)
    with pytest.raises(ValueError, match="is a perpetual: size the order by quantity"):
        services.place_manual_order(paper, perp, side="buy", quote_amount=Decimal("100000"),
                                    last_price=Decimal(PRICE))


@examples(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=st.decimals(min_value=Decimal("5000"), max_value=Decimal("900000"), places=4),
    last=st.decimals(min_value=Decimal("1"), max_value=Decimal("200000000"), places=3),
    slippage=st.sampled_from([0.0, 5.0, 37.5]),
    fee=st.sampled_from([0.0, 0.0005, 0.0025]),
)
def test_paper_never_spends_more_than_the_quote_amount(paper, symbol, amount, last, slippage, fee):
    fund(paper, "KRW", "1000000")
    fund(paper, "BTC", "0")
    broker = PaperBroker(Costs(fee_rate=fee, slippage_bps=slippage))
    try:
        order = services.place_manual_order(paper, symbol, side="buy", quote_amount=amount,
                                            last_price=last, broker=broker, ts_ms=T0)
    except ValueError as exc:  # a price so high the amount buys less than one step
        assert "buys less than one step" in str(exc)
        return
    if order.status == "rejected":
        assert "minimum" in order.reject_reason
        return
    fill = order.fills.get()
    spent = fill.quantity * fill.price + fill.fee
    # Read back from the database: SQLite keeps decimals as doubles (15 significant digits).
    read_back = amount * Decimal("1e-14")
    assert spent <= amount + read_back
    krw = balance(paper, "KRW")
    assert abs(krw.free + spent - Decimal("1000000")) <= Decimal("1e-8")
    assert krw.locked == 0


# ------------------------------------------------------------------------ live, on the simulator

@pytest.fixture(scope="module")
def simulator():
    handle = start_in_thread(SimConfig(seed=11, history_days=0.1, venues=("upbit", "binance")))
    yield handle
    handle.stop()


def test_a_live_upbit_market_buy_spends_the_quote_amount(simulator, trader, settings):
    settings.TRADING_LIVE = True
    key, secret, _ = DEFAULT_ACCOUNTS["upbit"][0]
    account, symbol = live_account(trader, "upbit", simulator.upbit_url, "KRW-BTC", "BTC", "KRW",
                                   key, secret, step_size=Decimal("1e-8"),
                                   min_notional=Decimal("5000"))
    assert account.quote_asset == "KRW"
    last = last_close("upbit", simulator.upbit_url, "KRW-BTC")
    # Reproduction: a market buy by quantity cannot be sent to Upbit; it says what to send.
    with pytest.raises(ValueError, match="sizes a market buy by quote_amount"):
        services.place_manual_order(account, symbol, side="buy", quantity=Decimal("0.001"),
                                    last_price=last)

    order = services.place_manual_order(account, symbol, side="buy",
                                        quote_amount=Decimal("100000"), last_price=last)
    assert order.status in ("open", "filled"), order.reject_reason  # Upbit answers "wait"
    order = settled(order)

    assert order.status == "filled", order.reject_reason
    assert order.quote_amount == 100_000 and order.filled_quantity == order.quantity > 0
    fills = list(order.fills.all())
    notional = sum((f.quantity * f.price for f in fills), Decimal(0))
    fees = sum((f.fee for f in fills), Decimal(0))
    # Upbit spends the amount on the coin and charges its fee on top (0.05 % at the simulator).
    assert Decimal("99000") < notional <= Decimal("100000")
    assert 0 < fees <= notional * Decimal("0.0005") + Decimal("0.01")


def test_a_live_binance_spot_market_buy_by_quote_order_qty(simulator, trader, settings):
    settings.TRADING_LIVE = True
    key, secret, _ = DEFAULT_ACCOUNTS["binance"][0]
    account, symbol = live_account(trader, "binance_spot", simulator.binance_url, "BTCUSDT", "BTC",
                                   "USDT", key, secret, tick_size=Decimal("0.01"),
                                   step_size=Decimal("0.00001"), min_notional=Decimal("5"))
    assert account.quote_asset == "USDT"
    last = last_close("binance_spot", simulator.binance_url, "BTCUSDT")

    order = settled(services.place_manual_order(account, symbol, side="buy",
                                                quote_amount=Decimal("250"), last_price=last))

    assert order.status == "filled", order.reject_reason
    assert order.filled_quantity == order.quantity > 0
    notional = sum((f.quantity * f.price for f in order.fills.all()), Decimal(0))
    assert Decimal("240") < notional <= Decimal("250")
