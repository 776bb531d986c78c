"""python-binance 1.0 (``AsyncClient`` and ``BinanceSocketManager``) against the simulator with
only its base URLs changed: spot markets, tickers, klines with pagination, order book, trades,
balances, a limit order's lifecycle and market buys and sells; futures the same plus leverage,
positions and account; and the WebSocket streams (ticker, trades, klines, depth) of both.

What a user does to paper-trade a python-binance tool (the README shows the same lines)::

    client = await AsyncClient.create(KEY, SECRET)  # or AsyncClient(KEY, SECRET) without the ping
    client.API_URL = "http://127.0.0.1:8802/api"
    client.FUTURES_URL = "http://127.0.0.1:8803/fapi"
    sockets = BinanceSocketManager(client)
    sockets.STREAM_URL = "ws://127.0.0.1:8802/"
    sockets.FSTREAM_URL = "ws://127.0.0.1:8803/"
"""

from __future__ import annotations

import asyncio

import pytest

from simulator.server import Simulator, start_in_thread

from .conftest import config
from .helpers import BINANCE_KEY, BINANCE_SECRET, FUTURES_KEY, FUTURES_SECRET

binance = pytest.importorskip("binance")
from binance import AsyncClient, BinanceSocketManager  # noqa: E402
from binance.exceptions import BinanceAPIException  # noqa: E402


@pytest.fixture
async def live_sim():
    """A simulator on the wall clock, as a user runs it (python-binance signs with its own)."""
    async with Simulator(config(now_ms=None, history_days=2.0)) as running:
        yield running


def pointed(client: AsyncClient, sim: Simulator) -> AsyncClient:
    client.API_URL = f"{sim.binance_url}/api"
    client.FUTURES_URL = f"{sim.futures_url}/fapi"
    return client


@pytest.fixture
async def spot(live_sim):
    client = pointed(AsyncClient(BINANCE_KEY, BINANCE_SECRET), live_sim)
    yield client
    await client.close_connection()


@pytest.fixture
async def futures(live_sim):
    client = pointed(AsyncClient(FUTURES_KEY, FUTURES_SECRET), live_sim)
    yield client
    await client.close_connection()


async def test_python_binance_spot(spot):
    await spot.ping()
    assert (await spot.get_server_time())["serverTime"] > 0
    info = await spot.get_symbol_info("BTCUSDT")
    assert info["status"] == "TRADING" and info["filters"]
    assert float((await spot.get_symbol_ticker(symbol="BTCUSDT"))["price"]) > 0
    assert float((await spot.get_ticker(symbol="BTCUSDT"))["lastPrice"]) > 0
    klines = await spot.get_klines(symbol="BTCUSDT", interval="1m", limit=5)
    assert len(klines) == 5 and all(len(k) == 12 for k in klines)
    # two pages: python-binance pages forwards from the start, 1000 candles a request (its
    # `limit` caps the total)
    start = klines[0][0] - 1500 * 60_000
    history = await spot.get_historical_klines("BTCUSDT", "1m", start, klines[0][0])
    opens = [k[0] for k in history]
    assert len(opens) == 1501 and opens == sorted(set(opens))
    first = await spot.get_historical_klines("BTCUSDT", "1d", 0, limit=2)  # the first candles
    assert first and first[0][0] < klines[0][0]
    book = await spot.get_order_book(symbol="BTCUSDT", limit=10)
    assert float(book["bids"][0][0]) < float(book["asks"][0][0])
    assert (await spot.get_recent_trades(symbol="BTCUSDT", limit=5))[-1]["price"]
    assert (await spot.get_aggregate_trades(symbol="BTCUSDT", limit=5))[-1]["p"]
    assert float((await spot.get_asset_balance(asset="USDT"))["free"]) > 0

    price = float((await spot.get_symbol_ticker(symbol="BTCUSDT"))["price"])
    order = await spot.order_limit_buy(symbol="BTCUSDT", quantity="0.001", price=f"{price / 2:.2f}")
    assert order["status"] == "NEW"
    queried = await spot.get_order(symbol="BTCUSDT", orderId=order["orderId"])
    assert queried["status"] == "NEW"
    assert order["orderId"] in {o["orderId"] for o in await spot.get_open_orders(symbol="BTCUSDT")}
    assert (await spot.cancel_order(symbol="BTCUSDT", orderId=order["orderId"]))["status"] == (
        "CANCELED"
    )
    assert order["orderId"] in {o["orderId"] for o in await spot.get_all_orders(symbol="BTCUSDT")}
    filled = await spot.order_limit_buy(symbol="ETHUSDT", quantity="0.01", price=f"{price:.2f}")
    assert filled["status"] == "FILLED"  # far above ETH's price: it takes the book
    bought = await spot.order_market_buy(symbol="ETHUSDT", quantity="0.01")
    sold = await spot.order_market_sell(symbol="ETHUSDT", quantity="0.01")
    assert bought["status"] == sold["status"] == "FILLED"
    assert await spot.get_my_trades(symbol="ETHUSDT")


async def test_python_binance_futures(futures):
    await futures.futures_ping()
    info = await futures.futures_exchange_info()
    assert "ETHUSDT" in {s["symbol"] for s in info["symbols"]}
    assert float((await futures.futures_symbol_ticker(symbol="ETHUSDT"))["price"]) > 0
    assert float((await futures.futures_ticker(symbol="ETHUSDT"))["lastPrice"]) > 0
    klines = await futures.futures_klines(symbol="ETHUSDT", interval="1m", limit=5)
    assert len(klines) == 5
    start = klines[0][0] - 1200 * 60_000
    history = await futures.futures_historical_klines("ETHUSDT", "1m", start, klines[0][0])
    assert len(history) == 1201  # two pages
    book = await futures.futures_order_book(symbol="ETHUSDT", limit=10)
    assert float(book["bids"][0][0]) < float(book["asks"][0][0])
    assert await futures.futures_recent_trades(symbol="ETHUSDT", limit=5)
    assert await futures.futures_aggregate_trades(symbol="ETHUSDT", limit=5)
    assert float((await futures.futures_mark_price(symbol="ETHUSDT"))["markPrice"]) > 0

    assert (await futures.futures_change_leverage(symbol="ETHUSDT", leverage=5))["leverage"] == 5
    account = await futures.futures_account()
    assert float(account["totalWalletBalance"]) > 0
    assert [b for b in await futures.futures_account_balance() if b["asset"] == "USDT"]
    price = float((await futures.futures_symbol_ticker(symbol="ETHUSDT"))["price"])
    resting = await futures.futures_create_order(
        symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.02",
        price=f"{price * 0.8:.2f}",
    )
    assert resting["status"] == "NEW"
    got = await futures.futures_get_order(symbol="ETHUSDT", orderId=resting["orderId"])
    assert got["status"] == "NEW"
    assert await futures.futures_get_open_orders(symbol="ETHUSDT")
    canceled = await futures.futures_cancel_order(symbol="ETHUSDT", orderId=resting["orderId"])
    assert canceled["status"] == "CANCELED"
    await futures.futures_create_order(symbol="ETHUSDT", side="BUY", type="MARKET",
                                       quantity="0.02")
    position = await futures.futures_position_information(symbol="ETHUSDT")
    assert float(position[0]["positionAmt"]) == 0.02
    await futures.futures_create_order(symbol="ETHUSDT", side="SELL", type="MARKET",
                                       quantity="0.02", reduceOnly="true")
    assert not [p for p in await futures.futures_position_information(symbol="ETHUSDT")
                if float(p["positionAmt"])]
    assert await futures.futures_account_trades(symbol="ETHUSDT")


async def test_python_binance_errors_are_binance_api_exceptions(spot):
    with pytest.raises(BinanceAPIException) as raised:
        await spot.get_symbol_ticker(symbol="NOPEUSDT")
    assert raised.value.code == -1121 and raised.value.status_code == 400


async def first_message(socket, predicate=lambda m: True):
    async with socket as stream:
        async def receive():
            while True:
                message = await stream.recv()
                if predicate(message):
                    return message
        return await asyncio.wait_for(receive(), 10)


def payload(message: dict) -> dict:
    return message.get("data", message)  # the combined streams wrap the event in "data"


async def test_python_binance_socket_manager(live_sim, spot, futures):
    sockets = BinanceSocketManager(spot)
    sockets.STREAM_URL = f"{live_sim.binance_ws_url}/"
    fsockets = BinanceSocketManager(futures)
    fsockets.FSTREAM_URL = f"{live_sim.futures_ws_url}/"
    ticker, trade, agg, kline, partial, diff, fticker, ftrade, fdepth, fkline = (
        await asyncio.gather(  # each socket is its own connection: wait for them together
            first_message(sockets.symbol_ticker_socket("BTCUSDT")),
            first_message(sockets.trade_socket("BTCUSDT")),
            first_message(sockets.aggtrade_socket("BTCUSDT")),
            first_message(sockets.kline_socket("BTCUSDT", "1m")),
            first_message(sockets.depth_socket("BTCUSDT", depth="5")),
            first_message(sockets.depth_socket("BTCUSDT")),
            first_message(fsockets.symbol_ticker_futures_socket("ETHUSDT")),
            first_message(fsockets.aggtrade_futures_socket("ETHUSDT")),
            first_message(fsockets.futures_depth_socket("ETHUSDT", depth="5")),
            first_message(fsockets.futures_multiplex_socket(["ethusdt@kline_1m"])),
        )
    )
    assert ticker["e"] == "24hrTicker" and trade["e"] == "trade" and agg["e"] == "aggTrade"
    assert kline["e"] == "kline" and partial["bids"] and diff["e"] == "depthUpdate"
    assert payload(fticker)["e"] == "bookTicker" and payload(ftrade)["e"] == "aggTrade"
    assert payload(fdepth)["e"] == "depthUpdate" and payload(fkline)["e"] == "kline"


def test_python_binance_threaded_websocket_manager(monkeypatch):
    """ThreadedWebsocketManager builds its own AsyncClient and BinanceSocketManager in a thread,
    so the URLs go on the classes (their ``{}`` placeholders are then simply absent)."""
    import threading

    from binance import ThreadedWebsocketManager

    sim = start_in_thread(config(now_ms=None))
    try:
        monkeypatch.setattr(AsyncClient, "API_URL", f"{sim.binance_url}/api")
        monkeypatch.setattr(BinanceSocketManager, "STREAM_URL", f"{sim.binance_ws_url}/")
        got, seen = [], threading.Event()

        def on_message(message):
            got.append(message)
            seen.set()

        manager = ThreadedWebsocketManager(BINANCE_KEY, BINANCE_SECRET)
        manager.start()
        try:
            manager.start_symbol_ticker_socket(callback=on_message, symbol="BTCUSDT")
            assert seen.wait(10), "no ticker through the ThreadedWebsocketManager"
            assert got[0]["e"] == "24hrTicker" and got[0]["s"] == "BTCUSDT"
        finally:
            manager.stop()
            manager.join(10)
    finally:
        sim.stop()
