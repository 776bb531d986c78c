"""Live execution against the exchange simulator over real sockets: a manual live order goes
through the adapter, and the kill switch cancels it at the venue before marking it here."""

import time
from decimal import Decimal

import pytest

from markets.exchanges import get_adapter
from markets.models import Account
from orders import killswitch, services
from orders.brokers import BrokerUnavailable, LiveBroker, broker_for
from orders.models import Order
from orders.tests.live_helpers import live_account
from simulator.server import SimConfig, start_in_thread

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


@pytest.fixture(scope="module")
def simulator():
    handle = start_in_thread(SimConfig(seed=9, history_days=0.1, venues=("binance",)))
    yield handle
    handle.stop()


@pytest.fixture
def live(simulator, trader, settings):
    settings.TRADING_LIVE = True
    return live_account(trader, "binance_spot", simulator.binance_url, "BTCUSDT", "BTC", "USDT",
                        KEY, SECRET, slug="simbinance", name="Sim Binance", label="live",
                        quote_asset="USDT", tick_size=Decimal("0.01"),
                        step_size=Decimal("0.00001"), min_notional=Decimal("5"))


def market_price(simulator) -> Decimal:
    adapter = get_adapter("binance_spot", rest_url=simulator.binance_url)
    now = int(time.time() * 1000)
    close = adapter.fetch_candles("BTCUSDT", "1m", now - 600_000, now + 60_000)[-1].close
    adapter.close()
    return Decimal(repr(close))


def test_live_needs_the_server_switch(live, settings):
    account, _ = live
    settings.TRADING_LIVE = False
    with pytest.raises(BrokerUnavailable, match="TRADING_LIVE=1"):
        broker_for(account)
    settings.TRADING_LIVE = True
    assert isinstance(broker_for(account), LiveBroker)


def test_kill_switch_cancels_live_orders_at_the_venue(live, simulator):
    account, symbol = live
    price = market_price(simulator)
    order = services.place_manual_order(
        account, symbol, side="buy", quantity=Decimal("0.001"),
        price=(price * Decimal("0.5")).quantize(Decimal("0.01")), last_price=price,
    )
    assert order.status == "open" and order.exchange_order_id
    adapter = get_adapter("binance_spot", rest_url=simulator.binance_url, api_key=KEY,
                          api_secret=SECRET)
    assert adapter.fetch_order("BTCUSDT", client_order_id=order.client_order_id).status == "open"

    result = killswitch.stop_trading(user=account.owner, configs=killswitch.ALL, reason="panic")

    assert result.orders_cancelled == 1 and result.live_orders_open == 0
    at_venue = adapter.fetch_order("BTCUSDT", client_order_id=order.client_order_id)
    assert at_venue.status == "cancelled"
    order.refresh_from_db()
    assert order.status == "cancelled" and order.reject_reason == "cancelled: panic"
    assert Account.objects.get(pk=account.pk).halted
    adapter.close()


def test_a_live_market_order_is_filled_and_recorded(live, simulator):
    account, symbol = live
    order = services.place_manual_order(
        account, symbol, side="buy", quantity=Decimal("0.002"),
        last_price=market_price(simulator),
    )
    assert order.status == "filled" and order.filled_quantity == Decimal("0.002")
    assert order.fills.count() >= 1 and order.exchange_order_id
    position = order.account.positions.get(closed_at__isnull=True)
    assert position.quantity == Decimal("0.002")
    assert Order.objects.filter(account=account).count() == 1


def test_a_stale_signal_is_not_sent_live(live):
    from datetime import UTC, datetime

    from strategies.models import Signal, StrategyConfig

    account, symbol = live
    config = StrategyConfig.objects.create(
        owner=account.owner, name="live-rsi", strategy="rsi", symbol=symbol, timeframe="1m",
        account=account, is_active=True,
    )
    bar_ms = int(time.time() * 1000) - 10 * 60_000
    signal = Signal.objects.create(
        config=config, symbol=symbol, timeframe="1m", action="enter_long",
        bar_time=datetime.fromtimestamp(bar_ms / 1000, tz=UTC), price=Decimal("100000"),
    )
    outcome = services.execute_signal(signal, at_ms=bar_ms + 60_000)
    assert outcome.status == "rejected"
    assert outcome.reason.startswith("signal is ")
    assert outcome.reason.endswith("s old (more than 120 s); not sent live")
    assert not Order.objects.exists()


def test_an_order_whose_answer_was_lost_is_settled_by_reconciliation(live, simulator):
    """The venue took the order but the answer never arrived: the row stays submitted until
    reconciliation looks it up by client order id; nothing is sent twice."""
    from markets.exchanges.base import OrderRequest

    account, symbol = live
    order = Order.objects.create(
        account=account, symbol=symbol, side="buy", type="market", quantity=Decimal("0.003"),
        client_order_id=services.new_client_order_id(), status="submitted", reason="manual",
    )
    adapter = get_adapter("binance_spot", rest_url=simulator.binance_url, api_key=KEY,
                          api_secret=SECRET)
    adapter.place_order(OrderRequest(
        symbol="BTCUSDT", side="buy", type="market", quantity=Decimal("0.003"), price=None,
        client_order_id=order.client_order_id,
    ))
    lost = Order.objects.create(
        account=account, symbol=symbol, side="buy", type="market", quantity=Decimal("0.001"),
        client_order_id=services.new_client_order_id(), status="submitted", reason="manual",
    )

    assert services.reconcile_live_orders() == 2

    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity == Decimal("0.003")
    assert account.positions.get(closed_at__isnull=True).quantity == Decimal("0.003")
    lost.refresh_from_db()
    assert lost.status == "rejected" and "never arrived" in lost.reject_reason
    assert services.reconcile_live_orders() == 0
    adapter.close()
