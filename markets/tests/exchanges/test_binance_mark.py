"""The Binance USDⓈ-M mark price: the parsers on the documented payloads, and the adapter's
REST and stream calls against the futures simulator."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from markets.exchanges import binance_mark as bm
from markets.exchanges import binance_parse as bp
from markets.exchanges import get_adapter
from markets.exchanges.base import MarkPrice
from simulator.server import SimConfig, Simulator

from .conftest import load


def test_premium_index_of_one_symbol_parses_to_a_mark_price():
    (mark,) = bm.parse_premium_index(load("binance_futures_premium_index")["one"])
    assert mark == MarkPrice(symbol="BTCUSDT", mark_price=Decimal("11793.63104562"),
                             index_price=Decimal("11781.80495970"),
                             funding_rate=Decimal("0.00038246"),
                             next_funding_ms=1597392000000, ts_ms=1597370495002)


def test_premium_index_of_all_symbols_is_a_list():
    rows = bm.parse_premium_index(load("binance_futures_premium_index")["all"])
    assert [r.symbol for r in rows] == ["BTCUSDT"]


def test_mark_price_event_parses_and_comes_out_of_the_market_stream_parser():
    event = load("binance_futures_mark_price_ws")
    mark = bm.parse_mark_price_event(event)
    assert mark == MarkPrice(symbol="BTCUSDT", mark_price=Decimal("11794.15000000"),
                             index_price=Decimal("11784.62659091"),
                             funding_rate=Decimal("0.00038167"),
                             next_funding_ms=1562306400000, ts_ms=1562305380000)
    combined = {"stream": "btcusdt@markPrice@1s", "data": event}
    assert bp.parse_ws_market(combined) == [mark]


def test_a_delivery_contract_has_no_funding_and_a_bad_mark_is_refused():
    event = load("binance_futures_mark_price_ws") | {"r": "", "T": 0}
    mark = bm.parse_mark_price_event(event)
    assert mark.funding_rate is None and mark.next_funding_ms is None
    for bad in ("0", "-1", "NaN", "abc", None):
        with pytest.raises(ValueError):
            bm.parse_mark_price_event(event | {"p": bad})


@pytest.fixture
async def futures_sim():
    config = SimConfig(seed=11, now_ms=1_773_240_030_000, history_days=0.1, trade_rate=4.0,
                       tick_s=0.05, venues=("futures",))
    async with Simulator(config) as running:
        yield running


async def test_adapter_reads_the_premium_index_of_one_and_of_several_symbols(futures_sim):
    adapter = get_adapter("binance_futures", rest_url=futures_sim.futures_url,
                          ws_url=futures_sim.futures_ws_url)
    try:
        (one,) = await asyncio.to_thread(adapter.mark_prices, ["BTCUSDT"])
        assert one.symbol == "BTCUSDT" and one.mark_price > 0 and one.funding_rate is not None
        assert one.next_funding_ms % (8 * 3_600_000) == 0
        codes = list(futures_sim.venues["futures"].markets)
        rows = await asyncio.to_thread(adapter.mark_prices, None)
        assert sorted(r.symbol for r in rows) == sorted(codes)
        rows = await asyncio.to_thread(adapter.mark_prices, codes[:2])
        assert sorted(r.symbol for r in rows) == sorted(codes[:2])
    finally:
        adapter.close()


async def test_adapter_streams_mark_prices_of_each_symbol(futures_sim):
    adapter = get_adapter("binance_futures", rest_url=futures_sim.futures_url,
                          ws_url=futures_sim.futures_ws_url)
    codes = list(futures_sim.venues["futures"].markets)[:2]
    seen: dict[str, MarkPrice] = {}
    stream = adapter.stream_mark_prices(codes)
    async with asyncio.timeout(10):
        async for mark in stream:
            seen[mark.symbol] = mark
            if len(seen) == len(codes):
                break
    await stream.aclose()
    adapter.close()
    assert set(seen) == set(codes)
    assert all(m.mark_price > 0 and m.next_funding_ms for m in seen.values())
