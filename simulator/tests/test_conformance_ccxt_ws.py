"""ccxt.pro (part of ccxt 4.5) WebSocket methods against the simulator: ``watch_ticker``,
``watch_trades``, ``watch_ohlcv`` and ``watch_order_book`` for each of the three protocols
(``binance`` spot, ``binanceusdm``, ``upbit``), with only the base URLs changed::

    exchange.urls["api"]["ws"]["spot"] = "ws://127.0.0.1:8802/ws"      # binance
    exchange.urls["api"]["ws"]["linear"] = "ws://127.0.0.1:8803/ws"    # binanceusdm
    exchange.urls["api"]["ws"] = "ws://127.0.0.1:8801/websocket/v1"    # upbit

plus the REST base URLs of test_conformance_ccxt.py (``load_markets`` and the order book
snapshot ccxt takes for Binance's diff depth stream are REST calls).
"""

from __future__ import annotations

import asyncio

import pytest

from simulator.server import Simulator

from .conftest import config
from .test_conformance_ccxt import pointed

ccxtpro = pytest.importorskip("ccxt.pro")


@pytest.fixture
async def live_sim():
    async with Simulator(config(now_ms=None, trade_rate=8.0)) as running:
        yield running


def binance_spot(sim):
    exchange = pointed(
        ccxtpro.binance({"options": {"fetchMarkets": ["spot"], "fetchCurrencies": False,
                                     "fetchMargins": False}}),
        {"https://api.binance.com": sim.binance_url},
    )
    exchange.urls["api"]["ws"]["spot"] = f"{sim.binance_ws_url}/ws"
    return exchange


def binance_usdm(sim):
    exchange = pointed(
        ccxtpro.binanceusdm({"options": {"fetchMarkets": ["linear"], "fetchCurrencies": False}}),
        {"https://fapi.binance.com": sim.futures_url},
    )
    exchange.urls["api"]["ws"]["linear"] = f"{sim.futures_ws_url}/ws"
    return exchange


def upbit(sim):
    exchange = ccxtpro.upbit()
    exchange.urls["api"] = {"public": sim.upbit_url, "private": sim.upbit_url,
                            "ws": f"{sim.upbit_ws_url}/websocket/v1"}
    return exchange


async def watch_all(exchange, symbol: str) -> None:
    await exchange.load_markets()
    ticker = await asyncio.wait_for(exchange.watch_ticker(symbol), 10)
    assert ticker["symbol"] == symbol and ticker["last"] > 0
    trades = await asyncio.wait_for(exchange.watch_trades(symbol), 10)
    assert trades and trades[-1]["symbol"] == symbol and trades[-1]["price"] > 0
    frame = "1s" if exchange.id == "upbit" else "1m"  # ccxt's Upbit watches only candle.1s
    candles = await asyncio.wait_for(exchange.watch_ohlcv(symbol, frame), 10)
    last = candles[-1] if isinstance(candles[0], list) else candles  # ccxt's upbit: one row
    assert len(last) == 6 and last[2] >= last[3] and last[0] > 0
    book = await asyncio.wait_for(exchange.watch_order_book(symbol), 10)
    assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0]
    book = await asyncio.wait_for(exchange.watch_order_book(symbol), 10)  # an update applies
    assert book["bids"][0][0] < book["asks"][0][0]


@pytest.mark.parametrize(
    ("make", "symbol"),
    [(binance_spot, "BTC/USDT"), (binance_usdm, "ETH/USDT:USDT"), (upbit, "BTC/KRW")],
    ids=["binance", "binanceusdm", "upbit"],
)
async def test_ccxt_pro_watch_methods(live_sim, make, symbol):
    exchange = make(live_sim)
    try:
        await watch_all(exchange, symbol)
    finally:
        await exchange.close()
