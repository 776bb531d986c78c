"""Live Bithumb orders against the simulator's Bithumb venue over real sockets (issue 19 item
9): a live Bithumb order used to end "the venue has no such order" because the simulator had no
Bithumb order API. The setup is the Upbit live tests' (test_api_quote_amount.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from markets.exchanges import get_adapter
from markets.exchanges.base import OrderRequest
from markets.exchanges.errors import OrderNotFound, OrderStatusUnknown
from orders import services
from orders.models import Order
from orders.tests.live_helpers import last_close, live_account, settled
from simulator.server import DEFAULT_ACCOUNTS, SimConfig, start_in_thread

pytestmark = pytest.mark.django_db(transaction=True)
KEY, SECRET, _ = DEFAULT_ACCOUNTS["bithumb"][0]


@pytest.fixture(scope="module")
def simulator():
    handle = start_in_thread(SimConfig(seed=23, history_days=0.1, venues=("bithumb",)))
    yield handle
    handle.stop()


@pytest.fixture
def live(simulator, trader, settings):
    settings.TRADING_LIVE = True
    account, symbol = live_account(trader, "bithumb", simulator.bithumb_url, "KRW-BTC", "BTC",
                                   "KRW", KEY, SECRET, step_size=Decimal("1e-8"),
                                   min_notional=Decimal("5000"))
    assert account.quote_asset == "KRW"
    return account, symbol


def adapter(simulator, **options):
    return get_adapter("bithumb", rest_url=simulator.bithumb_url, api_key=KEY,
                       api_secret=SECRET, **options)


def last(simulator) -> Decimal:
    return last_close("bithumb", simulator.bithumb_url, "KRW-BTC")


def test_a_live_bithumb_limit_buy_rests_fills_when_the_market_trades_there_and_reconciles(
    live, simulator
):
    account, symbol = live
    price = last(simulator)
    below = services.round_price(symbol, price * Decimal("0.98"), "buy")

    order = services.place_manual_order(account, symbol, side="buy", quantity=Decimal("0.001"),
                                        price=below, last_price=price)

    assert order.status == "open", order.reject_reason
    assert order.exchange_order_id.startswith("C") and len(order.exchange_order_id) == 20
    simulator.print_trade("bithumb", "KRW-BTC", float(below))
    order = settled(order)
    assert order.status == "filled", order.reject_reason
    assert order.filled_quantity == Decimal("0.001")
    (fill,) = order.fills.all()
    assert fill.price == below and fill.fee > 0
    position = account.positions.get(closed_at__isnull=True)
    assert position.quantity == Decimal("0.001")
    venue = adapter(simulator)
    try:
        at_venue = venue.fetch_order("KRW-BTC", client_order_id=order.client_order_id)
    finally:
        venue.close()
    assert at_venue.status == "filled" and at_venue.exchange_order_id == order.exchange_order_id


def test_a_live_bithumb_market_buy_spends_the_quote_amount(live, simulator):
    account, symbol = live
    order = services.place_manual_order(account, symbol, side="buy",
                                        quote_amount=Decimal("100000"),
                                        last_price=last(simulator))
    order = settled(order)

    assert order.status == "filled", order.reject_reason
    assert order.filled_quantity == order.quantity > 0
    notional = sum((f.quantity * f.price for f in order.fills.all()), Decimal(0))
    assert Decimal("99000") < notional <= Decimal("100000")


def test_a_live_bithumb_order_is_cancelled_at_the_venue(live, simulator):
    account, symbol = live
    price = last(simulator)
    order = services.place_manual_order(
        account, symbol, side="buy", quantity=Decimal("0.001"),
        price=services.round_price(symbol, price * Decimal("0.5"), "buy"), last_price=price)
    assert order.status == "open", order.reject_reason

    order = services.cancel_order(order, "changed my mind")
    order = settled(order)

    assert order.status == "cancelled"
    venue = adapter(simulator)
    try:
        assert venue.fetch_order("KRW-BTC", exchange_order_id=order.exchange_order_id
                                 ).status == "cancelled"
        assert order.client_order_id not in {o.client_order_id for o in venue.open_orders()}
    finally:
        venue.close()


def test_a_lost_answer_is_found_by_client_order_id(live, simulator):
    """The venue took the order but its answer came too late: the adapter looks it up by
    client order id instead of sending it again; reconciliation settles a row left submitted."""
    account, symbol = live
    slow = adapter(simulator, timeout=(1.0, 0.3), lookup_delay_s=0.2)
    request = OrderRequest(symbol="KRW-BTC", side="sell", type="market",
                           quantity=Decimal("0.002"), price=None,
                           client_order_id=services.new_client_order_id())
    simulator.set_faults(order_delay_s=1.0)
    try:
        found = slow.place_order(request)
    finally:
        simulator.set_faults(order_delay_s=0.0)
        slow.close()
    assert found.client_order_id == request.client_order_id and found.status == "filled"

    row = Order.objects.create(
        account=account, symbol=symbol, side="sell", type="market", quantity=Decimal("0.002"),
        client_order_id=request.client_order_id, status="submitted", reason="manual")
    assert services.reconcile_live_orders([account.id]) == 1
    row.refresh_from_db()
    assert row.status == "filled" and row.exchange_order_id == found.exchange_order_id


def test_an_order_the_venue_never_got_is_an_unknown_outcome_not_a_resend(live, simulator):
    never = adapter(simulator, lookup_delay_s=0.05)
    request = OrderRequest(symbol="KRW-BTC", side="sell", type="market",
                           quantity=Decimal("0.002"), price=None,
                           client_order_id=services.new_client_order_id())
    never.symbol_info("KRW-BTC")  # the market list is read before the faults start
    simulator.set_faults(error_ratio=1.0)
    try:
        with pytest.raises(OrderStatusUnknown, match=request.client_order_id):
            never.place_order(request)
    finally:
        simulator.set_faults(error_ratio=0.0)
    try:
        with pytest.raises(OrderNotFound):
            never.fetch_order("KRW-BTC", client_order_id=request.client_order_id)
    finally:
        never.close()
