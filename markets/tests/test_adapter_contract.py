"""One contract, every venue: each adapter against the local simulator over real HTTP and
WebSocket on 127.0.0.1. The adapters are written from the venues' documentation and the simulator
from the same documentation, independently; agreeing here is the check that both follow it.

Bithumb runs on the simulator's own Bithumb venue (naive-KST candle paging, v2 orders read back
through v1, the v2 private stream).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from decimal import Decimal

import pytest

from markets.exchanges import get_adapter
from markets.exchanges.base import OrderRequest, OrderUpdate
from markets.exchanges.errors import AuthenticationError
from simulator import SimConfig, start_in_thread
from simulator.server import DEFAULT_ACCOUNTS

MINUTE = 60_000


@pytest.fixture(scope="module")
def sim():
    handle = start_in_thread(SimConfig(seed=11, history_days=3, trade_rate=20))
    yield handle
    handle.stop()


def client_id() -> str:
    return "ct" + uuid.uuid4().hex[:20]


class AdapterContract:
    adapter_key: str
    sim_venue: str
    symbol: str
    other_symbol: str
    quote: str
    span_minutes: int  # more than one page of 1m candles

    def adapter(self, sim, *, keys=True, **options):
        key, secret, _ = DEFAULT_ACCOUNTS[self.sim_venue][0]
        return get_adapter(
            self.adapter_key,
            rest_url=sim.url(self.sim_venue, "http"),
            ws_url=sim.url(self.sim_venue, "ws"),
            api_key=key if keys else None,
            api_secret=secret if keys else None,
            **options,
        )

    def test_lists_symbols_with_trading_rules(self, sim):
        symbols = {s.code: s for s in self.adapter(sim, keys=False).list_symbols()}
        assert {self.symbol, self.other_symbol} <= set(symbols)
        info = symbols[self.symbol]
        assert info.quote == self.quote and "/" not in info.code
        assert info.step_size is not None and info.step_size > 0
        assert info.min_notional is not None and info.min_notional > 0

    def test_candles_across_page_boundaries_have_no_gap_or_duplicate(self, sim):
        adapter = self.adapter(sim, keys=False)
        now = int(time.time() * 1000)
        end = now - now % MINUTE  # the forming minute's open: excluded
        start = end - self.span_minutes * MINUTE
        candles = adapter.fetch_candles(self.symbol, "1m", start, end)
        times = [c.open_time_ms for c in candles]
        assert times == sorted(set(times)), "oldest first, no duplicates"
        assert times[0] == start and times[-1] == end - MINUTE
        assert all(b - a == MINUTE for a, b in itertools.pairwise(times)), "no gap"
        assert all(c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in candles)
        # The same range at 5m equals the aggregation of the 1m candles.
        five = adapter.fetch_candles(
            self.symbol, "5m", start - start % (5 * MINUTE), end - end % (5 * MINUTE)
        )
        by_open = {c.open_time_ms: c for c in candles}
        for bar in five[1:-1]:
            minutes = [by_open[bar.open_time_ms + i * MINUTE] for i in range(5)]
            assert bar.open == minutes[0].open and bar.close == minutes[-1].close
            assert bar.high == max(m.high for m in minutes)
            assert bar.low == min(m.low for m in minutes)

    def test_trades_stream_for_several_symbols_on_one_connection(self, sim):
        adapter = self.adapter(sim, keys=False)

        async def collect():
            seen: dict[str, int] = {}
            async for trade in adapter.stream_trades([self.symbol, self.other_symbol]):
                assert trade.price > 0 and trade.quantity > 0 and trade.side in ("buy", "sell")
                seen[trade.symbol] = seen.get(trade.symbol, 0) + 1
                if len(seen) == 2 and min(seen.values()) >= 3:
                    return seen

        seen = asyncio.run(asyncio.wait_for(collect(), 20))
        assert set(seen) == {self.symbol, self.other_symbol}

    def test_balances(self, sim):
        balances = {b.asset: b for b in self.adapter(sim).balances()}
        assert balances[self.quote].free > 0
        assert all(isinstance(b.free, Decimal) for b in balances.values())

    def test_bad_key_raises_authentication_error_with_the_venues_message(self, sim):
        adapter = get_adapter(
            self.adapter_key,
            rest_url=sim.url(self.sim_venue),
            ws_url=sim.url(self.sim_venue, "ws"),
            api_key="not-a-real-key",
            api_secret="not-a-real-secret",
        )
        with pytest.raises(AuthenticationError) as excinfo:
            adapter.balances()
        assert str(excinfo.value)

    def resting_buy(self, adapter) -> OrderRequest:
        last = adapter.fetch_candles(
            self.symbol, "1m", int(time.time() * 1000) - 10 * MINUTE, int(time.time() * 1000)
        )[-1].close
        info = adapter.symbol_info(self.symbol)
        price = Decimal(str(last * 0.8))
        quantity = (info.min_notional * 3 / price).quantize(info.step_size, rounding="ROUND_UP")
        return OrderRequest(
            symbol=self.symbol,
            side="buy",
            type="limit",
            quantity=quantity,
            price=price,
            quote_amount=None,
            client_order_id=client_id(),
        )

    def test_place_fetch_cancel_a_resting_limit_order(self, sim):
        adapter = self.adapter(sim)
        request = self.resting_buy(adapter)
        placed = adapter.place_order(request)
        assert placed.client_order_id == request.client_order_id
        assert placed.status in ("new", "open")
        fetched = adapter.fetch_order(self.symbol, client_order_id=request.client_order_id)
        assert fetched.exchange_order_id == placed.exchange_order_id
        assert request.client_order_id in {
            o.client_order_id for o in adapter.open_orders(self.symbol)
        }
        adapter.cancel_order(self.symbol, client_order_id=request.client_order_id)
        after = adapter.fetch_order(self.symbol, client_order_id=request.client_order_id)
        assert after.status == "cancelled"
        assert request.client_order_id not in {
            o.client_order_id for o in adapter.open_orders(self.symbol)
        }

    def test_user_stream_reports_our_order(self, sim):
        adapter = self.adapter(sim)

        async def run():
            stream = adapter.user_stream()
            request = None
            async for event in stream:
                if request is None:
                    # Subscribed (the first event is a notice): now place the order.
                    request = self.resting_buy(adapter)
                    await asyncio.to_thread(adapter.place_order, request)
                    continue
                if isinstance(event, OrderUpdate) and (
                    event.order.client_order_id == request.client_order_id
                ):
                    await asyncio.to_thread(
                        adapter.cancel_order, self.symbol, client_order_id=request.client_order_id
                    )
                    return event

        event = asyncio.run(asyncio.wait_for(run(), 20))
        assert event.order.symbol == self.symbol and event.order.side == "buy"


class TestUpbit(AdapterContract):
    adapter_key, sim_venue, symbol, other_symbol, quote = (
        "upbit",
        "upbit",
        "KRW-BTC",
        "KRW-ETH",
        "KRW",
    )
    span_minutes = 450  # 200 per page

    def test_market_buy_by_quote_amount_fills_and_moves_balances(self, sim):
        adapter = self.adapter(sim)
        before = {b.asset: b.total for b in adapter.balances()}
        request = OrderRequest(
            symbol=self.symbol,
            side="buy",
            type="market",
            quantity=None,
            price=None,
            quote_amount=Decimal("100000"),
            client_order_id=client_id(),
        )
        adapter.place_order(request)
        order = adapter.fetch_order(self.symbol, client_order_id=request.client_order_id)
        assert order.status == "filled" and order.filled_quantity > 0 and order.fills
        after = {b.asset: b.total for b in adapter.balances()}
        assert after["BTC"] > before["BTC"] and after["KRW"] < before["KRW"]


class TestBithumb(TestUpbit):
    adapter_key, sim_venue = "bithumb", "bithumb"


class TestBinanceSpot(AdapterContract):
    adapter_key, sim_venue, symbol, other_symbol, quote = (
        "binance_spot",
        "binance",
        "BTCUSDT",
        "ETHUSDT",
        "USDT",
    )
    span_minutes = 2300  # 1000 per page


class TestBinanceFutures(AdapterContract):
    adapter_key, sim_venue, symbol, other_symbol, quote = (
        "binance_futures",
        "futures",
        "BTCUSDT",
        "ETHUSDT",
        "USDT",
    )
    span_minutes = 3200  # 1500 per page

    def test_leverage_and_positions(self, sim):
        adapter = self.adapter(sim)
        assert adapter.set_leverage(self.symbol, 5) == 5
        info = adapter.symbol_info(self.symbol)
        request = OrderRequest(
            symbol=self.symbol,
            side="buy",
            type="market",
            quantity=info.step_size * 10,
            price=None,
            quote_amount=None,
            client_order_id=client_id(),
        )
        adapter.place_order(request)
        positions = {p.symbol: p for p in adapter.positions()}
        position = positions[self.symbol]
        assert position.quantity == info.step_size * 10 and position.leverage == 5
        close = OrderRequest(
            symbol=self.symbol,
            side="sell",
            type="market",
            quantity=info.step_size * 10,
            price=None,
            quote_amount=None,
            client_order_id=client_id(),
            reduce_only=True,
        )
        adapter.place_order(close)
        remaining = {p.symbol: p for p in adapter.positions() if p.quantity}
        assert self.symbol not in remaining
