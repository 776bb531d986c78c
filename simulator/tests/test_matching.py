"""The one matching engine, driven through both products: spot (balances) and futures
(positions) take, expire, rest and touch-fill by the same rules, with no HTTP in between."""

from __future__ import annotations

from decimal import Decimal

import pytest

from simulator.accounts import Account, Order, OrderError
from simulator.balances import FeeModel, SpotEngine
from simulator.binance.positions import FuturesAccount, FuturesEngine
from simulator.market import Market, SymbolSpec
from simulator.matching import MatchingEngine, OrderIds

from .conftest import ANCHOR_MS

SPEC = SymbolSpec("BTCUSDT", "BTC", "USDT", 100_000.0, 0.01, 0.001, 0.0012, 1.0)


def spot_engine(market):
    engine = SpotEngine(
        {SPEC.symbol: market},
        FeeModel(Decimal("0.001"), Decimal("0.001"), in_quote=False),
        spread_bps=4.0,
        seed=5,
        clock_ms=lambda: ANCHOR_MS,
    )
    return engine, Account("k", "s", {"USDT": "1000000", "BTC": "10"})


def futures_engine(market):
    engine = FuturesEngine(
        {SPEC.symbol: market}, spread_bps=4.0, clock_ms=lambda: ANCHOR_MS, ids=OrderIds(5)
    )
    return engine, FuturesAccount("k", "s", {"USDT": "1000000"})


@pytest.fixture(params=[spot_engine, futures_engine], ids=["spot", "futures"])
def engine_and_account(request):
    market = Market(
        "binance", SPEC, seed=3, now_ms=ANCHOR_MS, history_days=0.01, trade_rate=1.0
    )
    return request.param(market)


def order(engine, side, kind, price=None, tif=None) -> Order:
    oid, uid = engine.new_ids()
    return Order(
        oid, uid, SPEC.symbol, side, kind, price, Decimal("0.01"), None, f"c{oid}", ANCHOR_MS,
        time_in_force=tif, extra={},
    )


def test_both_products_use_the_one_engine(engine_and_account):
    engine, _ = engine_and_account
    assert isinstance(engine, MatchingEngine)
    assert type(engine).match_new is MatchingEngine.match_new
    assert type(engine).on_trades is MatchingEngine.on_trades


def test_a_market_order_takes_at_the_touch(engine_and_account):
    engine, account = engine_and_account
    bid, ask = engine.quote_prices(SPEC.symbol)
    buy = engine.place(account, order(engine, "buy", "market"))
    assert buy.status == "filled"
    assert [(f.price, f.is_maker) for f in buy.fills] == [(ask, False)]
    assert bid < ask


def test_a_crossing_post_only_order_expires_and_a_crossing_limit_takes(engine_and_account):
    engine, account = engine_and_account
    _, ask = engine.quote_prices(SPEC.symbol)
    post_only = engine.place(account, order(engine, "buy", "limit", ask + 100, "post_only"))
    assert post_only.status == "expired" and not post_only.fills
    taker = engine.place(account, order(engine, "buy", "limit", ask + 100))
    assert taker.status == "filled" and taker.fills[0].price == ask


def test_an_ioc_order_that_would_rest_expires(engine_and_account):
    engine, account = engine_and_account
    bid, _ = engine.quote_prices(SPEC.symbol)
    ioc = engine.place(account, order(engine, "buy", "limit", bid - 100, "ioc"))
    assert ioc.status == "expired" and not ioc.fills


def test_a_resting_order_fills_as_maker_at_its_price_when_a_trade_touches_it(engine_and_account):
    engine, account = engine_and_account
    bid, _ = engine.quote_prices(SPEC.symbol)
    price = bid - 100
    resting = engine.place(account, order(engine, "buy", "limit", price))
    assert resting.status == "open"
    engine.on_trades(SPEC.symbol, [float(price) + 50], [account])
    assert resting.status == "open"
    engine.on_trades(SPEC.symbol, [float(price) + 50, float(price)], [account])
    assert resting.status == "filled"
    assert [(f.price, f.is_maker) for f in resting.fills] == [(price, True)]


def test_a_cancel_of_a_closed_order_is_refused(engine_and_account):
    engine, account = engine_and_account
    filled = engine.place(account, order(engine, "buy", "market"))
    with pytest.raises(OrderError, match="not open"):
        engine.cancel(account, filled)
