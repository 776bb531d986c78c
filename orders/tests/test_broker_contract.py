"""One broker contract, run against the paper broker and the live broker on the exchange
simulator over real sockets (127.0.0.1). Brokers touch no database, so neither do these."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from markets.exchanges import get_adapter
from markets.exchanges.base import OrderRequest
from orders.brokers import LiveBroker, PaperBroker
from orders.brokers.base import Costs
from orders.services import new_client_order_id
from simulator.server import SimConfig, start_in_thread

BINANCE_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
FUTURES_KEY, FUTURES_SECRET = "sim-futures-api-key", "sim-futures-secret-key"
TICK = Decimal("0.01")


@pytest.fixture(scope="module")
def simulator():
    handle = start_in_thread(SimConfig(seed=5, history_days=0.1, trade_rate=5.0, tick_s=0.05))
    yield handle
    handle.stop()


def request(side, quantity, *, kind="market", price=None, reduce_only=False, symbol="BTCUSDT"):
    return OrderRequest(
        symbol=symbol, side=side, type=kind, quantity=Decimal(quantity), price=price,
        client_order_id=new_client_order_id(), reduce_only=reduce_only,
    )


class BrokerContract:
    """What every broker promises. Subclasses give ``broker`` and ``last_price``."""

    def test_market_buy_fills_the_whole_quantity_and_reports_fees(self, broker, last_price):
        order = request("buy", "0.002")
        info = broker.place(order, last_price=last_price, ts_ms=int(time.time() * 1000))
        assert info.status == "filled" and info.client_order_id == order.client_order_id
        assert info.filled_quantity == Decimal("0.002")
        assert sum(f.quantity for f in info.fills) == Decimal("0.002")
        assert info.average_price > 0 and all(f.fee >= 0 for f in info.fills)
        assert len({f.trade_id for f in info.fills}) == len(info.fills)

    def test_market_sell_fills(self, broker, last_price):
        info = broker.place(request("sell", "0.001"), last_price=last_price,
                            ts_ms=int(time.time() * 1000))
        assert info.status == "filled" and info.filled_quantity == Decimal("0.001")

    def test_marketable_limit_buy_fills_no_worse_than_its_limit(self, broker, last_price):
        limit = (last_price * Decimal("1.01")).quantize(TICK)
        info = broker.place(request("buy", "0.001", kind="limit", price=limit),
                            last_price=last_price, ts_ms=int(time.time() * 1000))
        assert info.status == "filled"
        assert all(f.price <= limit for f in info.fills)

    def test_limit_far_from_the_market_rests_until_cancelled(self, broker, last_price):
        limit = (last_price * Decimal("0.5")).quantize(TICK)
        order = request("buy", "0.001", kind="limit", price=limit)
        info = broker.place(order, last_price=last_price, ts_ms=int(time.time() * 1000))
        assert info.status == "open" and info.filled_quantity == 0
        fetched = broker.fetch("BTCUSDT", order.client_order_id, info.exchange_order_id)
        assert fetched.status == "open" and fetched.client_order_id == order.client_order_id
        cancelled = broker.cancel("BTCUSDT", order.client_order_id, info.exchange_order_id)
        assert cancelled.status == "cancelled"
        assert broker.fetch("BTCUSDT", order.client_order_id).status == "cancelled"


class TestPaperBroker(BrokerContract):
    @pytest.fixture
    def broker(self):
        return PaperBroker(Costs(fee_rate=0.001, slippage_bps=5.0))

    @pytest.fixture
    def last_price(self):
        return Decimal("100000.00")

    def test_fills_follow_the_backtesters_slippage_and_fee(self, broker, last_price):
        info = broker.place(request("buy", "0.5"), last_price=last_price, ts_ms=1)
        assert info.average_price == Decimal("100050")  # +5 bps
        assert info.fee == Decimal("50.025")  # 0.1% of 0.5 x 100,050
        sell = broker.place(request("sell", "0.5"), last_price=last_price, ts_ms=2)
        assert sell.average_price == Decimal("99950")

    def test_a_resting_limit_fills_at_its_limit_when_price_crosses(self, broker, last_price):
        resting = broker.place(request("buy", "1", kind="limit", price=Decimal("99000")),
                               last_price=last_price, ts_ms=1)
        assert broker.match(resting, price=Decimal("99500"), ts_ms=2) is None
        filled = broker.match(resting, price=Decimal("98900"), ts_ms=3)
        assert filled.status == "filled" and filled.average_price == Decimal("99000")
        assert filled.fills[0].is_maker and filled.fee == Decimal("19.8")  # 2 bps maker


class TestLiveBrokerOnSimulator(BrokerContract):
    @pytest.fixture
    def broker(self, simulator):
        adapter = get_adapter(
            "binance_spot", rest_url=simulator.binance_url, api_key=BINANCE_KEY,
            api_secret=BINANCE_SECRET, timeout=5,
        )
        broker = LiveBroker(adapter)
        yield broker
        broker.close()

    @pytest.fixture
    def last_price(self, broker):
        now = int(time.time() * 1000)
        candles = broker.adapter.fetch_candles("BTCUSDT", "1m", now - 600_000, now + 60_000)
        return Decimal(repr(candles[-1].close)).quantize(TICK)


def test_live_futures_sets_leverage_and_margin_then_closes_reduce_only(simulator):
    adapter = get_adapter(
        "binance_futures", rest_url=simulator.futures_url, api_key=FUTURES_KEY,
        api_secret=FUTURES_SECRET, timeout=5,
    )
    broker = LiveBroker(adapter)
    try:
        broker.prepare_futures("BTCUSDT", 5)
        opened = broker.place(request("sell", "0.01"), last_price=Decimal(0), ts_ms=0)
        assert opened.status == "filled"
        position = next(p for p in adapter.positions() if p.symbol == "BTCUSDT")
        assert position.side == "short" and position.leverage == 5
        assert position.margin_type.lower() == "isolated"
        closed = broker.place(request("buy", "0.01", reduce_only=True), last_price=Decimal(0),
                              ts_ms=0)
        assert closed.status == "filled"
        assert all(p.quantity == 0 for p in adapter.positions() if p.symbol == "BTCUSDT")
    finally:
        broker.close()
