"""pyupbit 0.2 against the simulator: markets, tickers, OHLCV with pagination, order book,
balances, a limit order's lifecycle (rest, cancel, fill), market buys and sells, and the
WebSocketManager (ticker, trade, orderbook).

pyupbit has no setting for its host: every call spells ``https://api.upbit.com`` (and
``wss://api.upbit.com/websocket/v1``) inside its functions. What a user does to paper-trade a
pyupbit tool is redirect the three ``requests`` calls of ``pyupbit.request_api`` and the
``websockets.connect`` of ``pyupbit.websocket_api`` to the simulator's URLs, which is what
:func:`redirect_pyupbit` does (the README shows the same lines). pyupbit has no call for recent
trades (``/v1/trades/ticks``); that is covered through ccxt. ``Upbit.get_order(ticker)`` lists
orders with the legacy ``GET /v1/orders``, which the venue's current documentation replaces by
``/v1/orders/open`` and ``/v1/orders/closed`` and the simulator does not serve (``get_order(uuid)``,
``GET /v1/order``, is served and tested). pyupbit swallows many errors (its
order methods print the exception's class name and return ``None``), so every answer is checked.
"""

from __future__ import annotations

import time
import types

import pytest

from simulator.server import start_in_thread

from .conftest import config
from .helpers import UPBIT_KEY, UPBIT_SECRET

pyupbit = pytest.importorskip("pyupbit")
websockets = pytest.importorskip("websockets")

REST, WS = "https://api.upbit.com", "wss://api.upbit.com"


def redirect_pyupbit(monkeypatch, rest_url: str, ws_url: str) -> None:
    """Send pyupbit's REST and WebSocket calls to ``rest_url`` / ``ws_url`` instead of Upbit."""
    import pyupbit.request_api as request_api
    import pyupbit.websocket_api as websocket_api
    import requests

    def moved(fn):
        return lambda url, **kw: fn(url.replace(REST, rest_url), **kw)

    shim = types.SimpleNamespace(
        get=moved(requests.get), post=moved(requests.post), delete=moved(requests.delete)
    )
    monkeypatch.setattr(request_api, "requests", shim)
    connect = websockets.connect
    monkeypatch.setattr(
        websocket_api,
        "websockets",
        types.SimpleNamespace(
            connect=lambda uri, **kw: connect(uri.replace(WS, ws_url), **kw),
            ConnectionClosed=websockets.ConnectionClosed,
        ),
    )


@pytest.fixture(scope="module")
def thread_sim():
    """A simulator on the wall clock (pyupbit's `to` defaults to now) in a thread: pyupbit is
    synchronous."""
    sim = start_in_thread(config(now_ms=None))
    yield sim
    sim.stop()


@pytest.fixture
def upbit(thread_sim, monkeypatch):
    redirect_pyupbit(monkeypatch, thread_sim.upbit_url, thread_sim.upbit_ws_url)
    return pyupbit.Upbit(UPBIT_KEY, UPBIT_SECRET)


def wait_for(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_pyupbit_market_data(upbit):
    tickers = pyupbit.get_tickers(fiat="KRW")
    assert "KRW-BTC" in tickers and all(t.startswith("KRW-") for t in tickers)
    detailed = pyupbit.get_tickers(fiat="KRW", is_details=True)
    assert {"market", "korean_name", "english_name"} <= set(detailed[0])
    price = pyupbit.get_current_price("KRW-BTC")
    assert price > 0
    prices = pyupbit.get_current_price(["KRW-BTC", "KRW-ETH"])
    assert set(prices) == {"KRW-BTC", "KRW-ETH"} and all(p > 0 for p in prices.values())
    book = pyupbit.get_orderbook("KRW-BTC")
    unit = book["orderbook_units"][0]
    assert book["market"] == "KRW-BTC" and unit["bid_price"] < unit["ask_price"]
    candles = pyupbit.get_ohlcv("KRW-BTC", interval="minute1", count=5)
    assert candles is not None and len(candles) == 5
    assert list(candles.columns) == ["open", "high", "low", "close", "volume", "value"]
    assert (candles["high"] >= candles["low"]).all()
    # more than one page of 200: pyupbit pages backwards with `to` = the oldest candle's UTC time
    paged = pyupbit.get_ohlcv("KRW-BTC", interval="minute1", count=250, period=0)
    assert paged is not None and len(paged) == 250
    assert paged.index.is_unique and paged.index.is_monotonic_increasing
    days = pyupbit.get_ohlcv("KRW-BTC", interval="day", count=2)
    assert days is not None and len(days) >= 1


def test_pyupbit_balances_and_order_lifecycle(upbit):
    balances = upbit.get_balances()
    assert isinstance(balances, list) and any(b["currency"] == "KRW" for b in balances)
    krw = upbit.get_balance("KRW")
    assert krw > 0
    assert upbit.get_chance("KRW-BTC")["market"]["id"] == "KRW-BTC"

    price = pyupbit.get_current_price("KRW-BTC")
    resting = pyupbit.get_tick_size(price * 0.5)
    order = upbit.buy_limit_order("KRW-BTC", resting, 0.001)
    assert order and order["state"] == "wait", order
    assert upbit.get_individual_order(order["uuid"])["state"] == "wait"
    assert upbit.get_order(order["uuid"])["uuid"] == order["uuid"]
    assert upbit.cancel_order(order["uuid"])["uuid"] == order["uuid"]
    canceled = wait_for(lambda: upbit.get_individual_order(order["uuid"])["state"] == "cancel")
    assert canceled

    crossing = pyupbit.get_tick_size(price * 1.1)
    filled = upbit.buy_limit_order("KRW-BTC", crossing, 0.0002)
    assert filled and filled["uuid"], filled
    assert wait_for(lambda: upbit.get_individual_order(filled["uuid"])["state"] == "done")
    assert upbit.get_balance("KRW-BTC") >= 0.0002

    bought = upbit.buy_market_order("KRW-BTC", 10_000)
    assert bought and bought["ord_type"] == "price", bought
    sold = upbit.sell_market_order("KRW-BTC", 0.0001)
    assert sold and sold["ord_type"] == "market", sold
    assert wait_for(lambda: upbit.get_individual_order(sold["uuid"])["state"] == "done")


@pytest.mark.parametrize("kind", ["ticker", "trade", "orderbook"])
def test_pyupbit_websocket_manager(upbit, kind):
    manager = pyupbit.WebSocketManager(kind, ["KRW-BTC"])
    try:
        message = manager.get()  # the manager runs in a forked process; get() blocks
        assert message["type"] == kind and message["code"] == "KRW-BTC", message
    finally:
        manager.terminate()
        manager.join(5)
