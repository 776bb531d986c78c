"""The project's Bithumb adapter, its whole path, against the simulator's Bithumb venue over
real sockets on 127.0.0.1 (issue 17 point 2): markets, candles equal to the venue's own, the
balance, the order lifecycle (a limit order rests, fills when the market trades there, is
cancelled; market buy by KRW, market sell by quantity) and each documented error answer
mapped to the adapter's exception with the venue's name.

The adapter signs with its own code (markets/exchanges/signing.py); the simulator verifies with
its own (simulator/bithumb/auth.py); both follow apidocs.bithumb.com independently. The adapter
has no ticker call: live prices reach the product through the trade stream, covered for
Bithumb by test_adapter_contract.py::TestBithumb. Looking an order up by client id after a lost
answer is orders/tests/test_live_bithumb.py::test_a_lost_answer_is_found_by_client_order_id.
"""

from __future__ import annotations

import re
import time
import uuid
from decimal import Decimal

import pytest

from markets.exchanges import get_adapter
from markets.exchanges.base import OrderRequest
from markets.exchanges.errors import AuthenticationError, OrderNotFound, OrderRejected
from simulator.market import Frame
from simulator.server import DEFAULT_ACCOUNTS, SimConfig, start_in_thread

KEY, SECRET, _ = DEFAULT_ACCOUNTS["bithumb"][0]
MINUTE = 60_000
SYMBOL = "KRW-BTC"


@pytest.fixture(scope="module")
def sim():
    handle = start_in_thread(SimConfig(seed=31, history_days=0.5, venues=("bithumb",)))
    yield handle
    handle.stop()


@pytest.fixture
def bithumb(sim):
    adapter = get_adapter("bithumb", rest_url=sim.bithumb_url, ws_url=sim.bithumb_ws_url,
                          api_key=KEY, api_secret=SECRET)
    yield adapter
    adapter.close()


def cid() -> str:
    return "bt-" + uuid.uuid4().hex[:20]


def wait_for(condition, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def holdings(adapter) -> dict[str, tuple[Decimal, Decimal]]:
    return {b.asset: (b.free, b.locked) for b in adapter.balances()}


def last_price(adapter) -> Decimal:
    now = int(time.time() * 1000)
    return Decimal(repr(adapter.fetch_candles(SYMBOL, "1m", now - 10 * MINUTE, now)[-1].close))


def limit(side: str, price: Decimal, quantity: str) -> OrderRequest:
    return OrderRequest(symbol=SYMBOL, side=side, type="limit", quantity=Decimal(quantity),
                        price=price, quote_amount=None, client_order_id=cid())


def market(side: str, *, quantity: str | None = None, quote: str | None = None) -> OrderRequest:
    return OrderRequest(symbol=SYMBOL, side=side, type="market",
                        quantity=Decimal(quantity) if quantity else None, price=None,
                        quote_amount=Decimal(quote) if quote else None, client_order_id=cid())


def below_market(adapter, fraction: str = "0.9") -> Decimal:
    """A tick-aligned price ``fraction`` of the last one (the 1,000 KRW tick of KRW-BTC)."""
    return (last_price(adapter) * Decimal(fraction) / 1000).quantize(Decimal(1)) * 1000


# ---- market data ---------------------------------------------------------------------------

def test_markets_carry_bithumbs_krw_rules(bithumb):
    symbols = {s.code: s for s in bithumb.list_symbols()}
    assert set(symbols) == {"KRW-BTC", "KRW-ETH", "KRW-XRP"}
    btc = symbols[SYMBOL]
    assert (btc.base, btc.quote) == ("BTC", "KRW")
    assert btc.step_size == Decimal("0.00000001") and btc.min_notional == Decimal("5000")


def test_candles_paged_through_naive_kst_times_equal_the_venues_own(sim, bithumb):
    now = int(time.time() * 1000)
    end = now - now % MINUTE - 5 * MINUTE
    start = end - 450 * MINUTE  # three pages of 200
    got = bithumb.fetch_candles(SYMBOL, "1m", start, end)
    venue = sim.call(lambda: sim.market("bithumb", SYMBOL).candles(Frame("m", 1), end, start))
    assert [c.open_time_ms for c in got] == [int(t) for t in venue.open_time]
    assert len(got) == 450
    for row, i in zip(got, range(len(got)), strict=True):
        assert (row.open, row.high, row.low, row.close) == pytest.approx(
            (venue.open[i], venue.high[i], venue.low[i], venue.close[i]))
        assert row.volume == pytest.approx(venue.volume[i])


def test_balances_are_the_venues_account(sim, bithumb):
    account = sim.account("bithumb", KEY)
    got = holdings(bithumb)
    assert got["KRW"][0] > 0 and all(isinstance(v, Decimal) for pair in got.values()
                                     for v in pair)
    for asset, (free, locked) in got.items():
        assert (free, locked) == (account.free(asset), account.locked(asset))


# ---- the order lifecycle ---------------------------------------------------------------------

def test_a_limit_buy_rests_then_fills_when_the_market_trades_at_its_price(sim, bithumb):
    price = below_market(bithumb)
    before = holdings(bithumb)
    request = limit("buy", price, "0.002")

    placed = bithumb.place_order(request)

    assert placed.status == "open" and placed.exchange_order_id.startswith("C")
    assert placed.client_order_id == request.client_order_id and placed.price == price
    assert request.client_order_id in {o.client_order_id for o in bithumb.open_orders(SYMBOL)}
    locked = holdings(bithumb)["KRW"][1] - before["KRW"][1]
    assert locked >= price * Decimal("0.002")  # the order's KRW (and its fee) is held

    sim.print_trade("bithumb", SYMBOL, float(price), qty=0.01)
    filled = wait_for(lambda: (o := bithumb.fetch_order(
        SYMBOL, client_order_id=request.client_order_id)).status == "filled" and o)

    assert filled, "the resting order did not fill"
    assert filled.filled_quantity == Decimal("0.002") and filled.average_price == price
    assert [f.quantity for f in filled.fills] == [Decimal("0.002")] and filled.fee > 0
    assert re.fullmatch(r"C0101\d{15}", filled.fills[0].trade_id)  # Bithumb's trade id form
    after = holdings(bithumb)
    assert after["BTC"][0] - before["BTC"][0] == Decimal("0.002")
    assert before["KRW"][0] + before["KRW"][1] - after["KRW"][0] - after["KRW"][1] == (
        price * Decimal("0.002") + filled.fee)
    assert request.client_order_id not in {o.client_order_id for o in bithumb.open_orders()}


def test_a_resting_limit_sell_is_cancelled_and_its_btc_released(bithumb):
    price = below_market(bithumb, "1.5")
    before = holdings(bithumb)
    request = limit("sell", price, "0.003")
    placed = bithumb.place_order(request)
    assert placed.status == "open"
    assert holdings(bithumb)["BTC"][1] - before["BTC"][1] == Decimal("0.003")

    bithumb.cancel_order(SYMBOL, client_order_id=request.client_order_id)

    done = wait_for(lambda: (o := bithumb.fetch_order(
        SYMBOL, exchange_order_id=placed.exchange_order_id)).status == "cancelled" and o)
    assert done and done.filled_quantity == 0
    assert holdings(bithumb)["BTC"] == before["BTC"]
    with pytest.raises(OrderRejected) as refused:  # a second cancel of a final order
        bithumb.cancel_order(SYMBOL, exchange_order_id=placed.exchange_order_id)
    assert refused.value.status == 400 and refused.value.code == "invalid_parameter"


def test_a_market_buy_spends_the_krw_amount(bithumb):
    before = holdings(bithumb)
    order = bithumb.place_order(market("buy", quote="100000"))

    assert order.status == "filled" and order.filled_quantity > 0 and order.fills
    spent = sum((f.price * f.quantity for f in order.fills), Decimal(0))
    assert Decimal("99000") < spent <= Decimal("100000")
    after = holdings(bithumb)
    assert after["BTC"][0] - before["BTC"][0] == order.filled_quantity
    assert before["KRW"][0] - after["KRW"][0] == spent + order.fee


def test_a_market_sell_sells_the_quantity(bithumb):
    before = holdings(bithumb)
    order = bithumb.place_order(market("sell", quantity="0.004"))

    assert order.status == "filled" and order.filled_quantity == Decimal("0.004")
    received = sum((f.price * f.quantity for f in order.fills), Decimal(0))
    after = holdings(bithumb)
    assert before["BTC"][0] - after["BTC"][0] == Decimal("0.004")
    assert after["KRW"][0] - before["KRW"][0] == received - order.fee


# ---- the venue's error answers through the adapter -----------------------------------------

@pytest.mark.parametrize("options,code", [
    ({"api_secret": "not-the-secret"}, "jwt_verification"),  # bad signature
    ({"api_key": "nobody"}, "invalid_access_key"),
    ({"clock": lambda: time.time() - 120}, "expired_jwt"),  # timestamp claim 2 min old
])
def test_bad_credentials_raise_authentication_error_with_the_venues_name(sim, options, code):
    adapter = get_adapter("bithumb", rest_url=sim.bithumb_url,
                          **({"api_key": KEY, "api_secret": SECRET} | options))
    try:
        with pytest.raises(AuthenticationError) as refused:
            adapter.balances()
    finally:
        adapter.close()
    assert refused.value.status == 401 and refused.value.code == code
    assert refused.value.venue_message


def test_an_unknown_symbol_is_refused_before_sending_and_by_the_venue(bithumb):
    request = OrderRequest(symbol="KRW-NOPE", side="buy", type="limit",
                           quantity=Decimal("1"), price=Decimal("10000"), quote_amount=None,
                           client_order_id=cid())
    with pytest.raises(ValueError, match="unknown or untradable symbol 'KRW-NOPE'"):
        bithumb.place_order(request)
    with pytest.raises(OrderRejected) as refused:  # the venue's own answer, unchecked
        bithumb._submit(request)
    assert refused.value.status == 400 and refused.value.code == "invalid_parameter"


def test_a_too_small_order_is_refused_by_the_adapter_or_by_the_venue(bithumb):
    tiny = limit("buy", below_market(bithumb), "0.00001")  # about 1,300 KRW
    with pytest.raises(OrderRejected, match="below the minimum 5000 KRW") as local:
        bithumb.place_order(tiny)
    assert local.value.code == "pre_check"
    # A market sell has no price to check against: the venue refuses it.
    with pytest.raises(OrderRejected) as refused:
        bithumb.place_order(market("sell", quantity="0.00001"))
    assert refused.value.status == 400 and refused.value.code == "under_min_total_ask"


def test_a_too_precise_quantity_is_rounded_by_the_adapter_and_refused_by_the_venue(bithumb):
    price = below_market(bithumb, "0.5")
    fine = limit("buy", price, "0.0010000009")
    with pytest.raises(OrderRejected) as refused:  # unrounded, straight to the venue
        bithumb._submit(fine)
    assert refused.value.status == 400 and refused.value.code == "invalid_parameter"
    assert "step" in refused.value.venue_message

    placed = bithumb.place_order(fine)  # rounded down to the 8-decimal step first
    assert placed.quantity == Decimal("0.001") and placed.status == "open"
    bithumb.cancel_order(SYMBOL, exchange_order_id=placed.exchange_order_id)


def test_an_order_the_venue_does_not_have_is_order_not_found(bithumb):
    with pytest.raises(OrderNotFound) as missing:
        bithumb.fetch_order(SYMBOL, exchange_order_id="C0101999999999999999")
    assert missing.value.status == 404 and missing.value.code == "order_not_found"
    with pytest.raises(OrderNotFound):
        bithumb.fetch_order(SYMBOL, client_order_id=cid())
