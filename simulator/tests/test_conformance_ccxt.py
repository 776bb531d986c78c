"""ccxt 4.5 (``binance``, ``binanceusdm``, ``upbit``) against the simulator with only the base URLs
changed: markets, ticker, OHLCV, order book, trades, balance, a limit order's lifecycle, market
buys and sells, and futures leverage, positions and leverage tiers.

The first slice of issue 17's conformance suite; what a user does to paper-trade a ccxt tool:

    exchange.urls["api"] = {name: url.replace("https://api.binance.com", SIM_BINANCE)
                            .replace("https://fapi.binance.com", SIM_FUTURES) ...}
"""

from __future__ import annotations

import pytest

from simulator.server import Simulator

from .conftest import config
from .helpers import (
    BINANCE_KEY,
    BINANCE_SECRET,
    FUTURES_KEY,
    FUTURES_SECRET,
    UPBIT_KEY,
    UPBIT_SECRET,
)

ccxt = pytest.importorskip("ccxt.async_support")


@pytest.fixture
async def live_sim():
    """A simulator on the wall clock, as a user runs it (ccxt signs with its own clock)."""
    async with Simulator(config(now_ms=None)) as running:
        yield running


def pointed(exchange, hosts: dict[str, str]):
    api = exchange.urls["api"]
    for name, url in list(api.items()):
        if isinstance(url, str):
            for host, base in hosts.items():
                url = url.replace(host, base)
            api[name] = url
    return exchange


async def lifecycle(exchange, symbol: str, amount: float, away: float):
    markets = await exchange.load_markets()
    assert symbol in markets
    ticker = await exchange.fetch_ticker(symbol)
    assert ticker["last"] > 0
    candles = await exchange.fetch_ohlcv(symbol, "1m", limit=5)
    assert len(candles) == 5 and all(len(c) == 6 for c in candles)
    since = candles[0][0] - 3 * 60_000  # pagination backwards: the three minutes before
    older = await exchange.fetch_ohlcv(symbol, "1m", since=since, limit=3)
    assert older and all(since <= c[0] < candles[0][0] for c in older)
    if exchange.id != "upbit":  # Binance: since=0 finds the first candles (Upbit's `to` cannot)
        first = await exchange.fetch_ohlcv(symbol, "1h", since=0, limit=2)
        assert len(first) == 2 and first[0][0] < candles[0][0]
    book = await exchange.fetch_order_book(symbol, 10)
    assert book["bids"][0][0] < book["asks"][0][0]
    trades = await exchange.fetch_trades(symbol, limit=5)
    assert trades and trades[-1]["price"] > 0
    balance = await exchange.fetch_balance()
    assert balance["total"]
    price = float(exchange.price_to_precision(symbol, ticker["last"] * away))
    if exchange.id == "upbit":  # ccxt does not know Upbit's KRW price bands: 1000 above 1M KRW
        price = round(price, -3)
    order = await exchange.create_order(symbol, "limit", "buy", amount, price)
    assert order["id"]
    fetched = await exchange.fetch_order(order["id"], symbol)
    assert fetched["status"] == "open"
    opened = await exchange.fetch_open_orders(symbol)
    assert order["id"] in {o["id"] for o in opened}
    await exchange.cancel_order(order["id"], symbol)
    assert (await exchange.fetch_order(order["id"], symbol))["status"] == "canceled"


async def test_ccxt_binance_spot(live_sim):
    exchange = pointed(
        ccxt.binance({"apiKey": BINANCE_KEY, "secret": BINANCE_SECRET,
                      "options": {"fetchMarkets": ["spot"], "fetchCurrencies": False,
                                  "fetchMargins": False}}),
        {"https://api.binance.com": live_sim.binance_url},
    )
    try:
        await lifecycle(exchange, "BTC/USDT", 0.001, 0.5)
    finally:
        await exchange.close()


async def test_ccxt_binanceusdm(live_sim):
    exchange = pointed(
        ccxt.binanceusdm({"apiKey": FUTURES_KEY, "secret": FUTURES_SECRET,
                          "options": {"fetchMarkets": ["linear"], "fetchCurrencies": False}}),
        {"https://fapi.binance.com": live_sim.futures_url},
    )
    try:
        await lifecycle(exchange, "ETH/USDT:USDT", 0.02, 0.8)
    finally:
        await exchange.close()


async def test_ccxt_upbit(live_sim):
    exchange = ccxt.upbit({"apiKey": UPBIT_KEY, "secret": UPBIT_SECRET})
    exchange.urls["api"] = {"public": live_sim.upbit_url, "private": live_sim.upbit_url}
    try:
        await lifecycle(exchange, "BTC/KRW", 0.001, 0.5)
    finally:
        await exchange.close()


async def test_ccxt_market_orders_and_futures_leverage_and_positions(live_sim):
    spot = pointed(
        ccxt.binance({"apiKey": BINANCE_KEY, "secret": BINANCE_SECRET,
                      "options": {"fetchMarkets": ["spot"], "fetchCurrencies": False,
                                  "fetchMargins": False}}),
        {"https://api.binance.com": live_sim.binance_url},
    )
    futures = pointed(
        ccxt.binanceusdm({"apiKey": FUTURES_KEY, "secret": FUTURES_SECRET,
                          "options": {"fetchMarkets": ["linear"], "fetchCurrencies": False}}),
        {"https://fapi.binance.com": live_sim.futures_url},
    )
    upbit = ccxt.upbit({"apiKey": UPBIT_KEY, "secret": UPBIT_SECRET})
    upbit.urls["api"] = {"public": live_sim.upbit_url, "private": live_sim.upbit_url}
    try:
        for side in ("buy", "sell"):
            order = await spot.create_order("ETH/USDT", "market", side, 0.01)
            assert order["status"] == "closed" and order["filled"] == 0.01
        symbol = "ETH/USDT:USDT"
        await futures.load_markets()
        await futures.set_leverage(5, symbol)
        await futures.create_order(symbol, "market", "buy", 0.02)
        positions = await futures.fetch_positions([symbol])
        assert positions[0]["contracts"] == 0.02 and positions[0]["leverage"] == 5
        await futures.create_order(symbol, "market", "sell", 0.02, None, {"reduceOnly": True})
        closed = await futures.fetch_positions([symbol])  # ccxt leaves out empty positions
        assert not [p for p in closed if p["contracts"]]
        tiers = await futures.fetch_leverage_tiers([symbol])
        assert tiers[symbol][0]["maxLeverage"] == 125
        await upbit.load_markets()
        bought = await upbit.create_order("BTC/KRW", "market", "buy", None, None,
                                          {"cost": 10_000})
        assert bought["id"]
        sold = await upbit.create_order("BTC/KRW", "market", "sell", 0.0001)
        assert sold["id"]
    finally:
        for exchange in (spot, futures, upbit):
            await exchange.close()
