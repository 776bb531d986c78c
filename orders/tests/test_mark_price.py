"""Paper perpetuals and the venue's mark price: liquidation follows the mark (not the last
trade) when a fresh mark is stored, stops and targets stay on the trade price, unrealized PnL
is marked to it, and funding is booked once per position and funding time with the right sign.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest
from django.utils import timezone

from markets.models import Balance, MarkPrice, Symbol
from orders import equity, funding, tasks
from orders.models import FundingPayment, Position
from orders.tests.conftest import MINUTE, T0, fund, store

pytestmark = pytest.mark.django_db(transaction=True)
HOUR = 3_600_000


def at_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def set_mark(symbol, price, *, age_s: float = 0.0, rate=None, next_funding_ms=None,
             last=None):
    """Store ``symbol``'s mark price as the stream would, ``age_s`` seconds ago. ``last``:
    (funding time ms, rate, mark) of the settlement before."""
    stored = timezone.now() - dt.timedelta(seconds=age_s)
    fields = {"price": Decimal(str(price)), "venue_time": stored, "updated_at": stored,
              "funding_rate": None if rate is None else Decimal(str(rate)),
              "next_funding_time": None if next_funding_ms is None else at_ms(next_funding_ms)}
    if last is not None:
        fields |= {"last_funding_time": at_ms(last[0]),
                   "last_funding_rate": Decimal(str(last[1])),
                   "last_funding_price": Decimal(str(last[2]))}
    MarkPrice.objects.update_or_create(symbol=symbol, defaults=fields)


def open_position(account, make_config, symbol, *, short=False, name="perp", **fields):
    params = {"enter": 0, "short": 3} if short else {"enter": 3}
    make_config(account, name=name, symbol=symbol, leverage=10, params=params,
                sizing_method="fixed_quote", sizing_params={"amount": 1000}, **fields)
    store(symbol, [100_000.0] * 4)
    tasks.evaluate("sim", "BTCUSDT", "1m", T0 + 3 * MINUTE)
    return Position.objects.get(account=account, closed_at__isnull=True)


def test_liquidation_triggers_on_the_mark_while_the_last_trade_stays_above(
        perpetual, futures_account, make_config):
    position = open_position(futures_account, make_config, perpetual)
    liq = float(position.liquidation_price)
    assert position.side == "long" and 80_000 < liq < 95_000
    set_mark(perpetual, liq - 50)  # the mark went through the liquidation price ...
    result = tasks.exit_guard("sim", "BTCUSDT", liq + 2_000, T0 + 5 * MINUTE)  # ... trades not
    assert result["reasons"] == ["liquidation"]
    position.refresh_from_db()
    assert position.close_reason == "liquidation" and position.closed_at is not None


def test_no_liquidation_while_the_mark_stays_above_though_a_trade_went_below(
        perpetual, futures_account, make_config, caplog):
    position = open_position(futures_account, make_config, perpetual)
    liq = float(position.liquidation_price)
    set_mark(perpetual, liq + 2_000)
    result = tasks.exit_guard("sim", "BTCUSDT", liq - 50, T0 + 5 * MINUTE)
    assert result["closed"] == 0
    assert Position.objects.get(pk=position.pk).closed_at is None
    # The mark goes stale (the stream and REST both down): the trade price decides, noted.
    set_mark(perpetual, liq + 2_000, age_s=61)
    equity._noted.clear()
    with caplog.at_level(logging.INFO, logger="orders.equity"):
        result = tasks.exit_guard("sim", "BTCUSDT", liq - 50, T0 + 6 * MINUTE)
    assert result["reasons"] == ["liquidation"]
    assert "no fresh mark price" in caplog.text and "liquidation check" in caplog.text


def test_a_short_is_liquidated_on_the_mark_too(perpetual, futures_account, make_config):
    position = open_position(futures_account, make_config, perpetual, short=True)
    liq = float(position.liquidation_price)
    assert position.side == "short" and liq > 100_000
    set_mark(perpetual, liq - 2_000)
    assert tasks.exit_guard("sim", "BTCUSDT", liq + 50, T0 + 5 * MINUTE)["closed"] == 0
    set_mark(perpetual, liq + 50)
    result = tasks.exit_guard("sim", "BTCUSDT", liq - 2_000, T0 + 6 * MINUTE)
    assert result["reasons"] == ["liquidation"]


def test_stop_loss_keeps_following_the_last_trade_not_the_mark(
        perpetual, futures_account, make_config):
    position = open_position(futures_account, make_config, perpetual,
                             stop_loss_pct=Decimal("2"))
    stop = float(position.stop_price)
    assert stop > float(position.liquidation_price)
    set_mark(perpetual, stop - 500)  # the mark under the stop: not a trigger
    assert tasks.exit_guard("sim", "BTCUSDT", stop + 500, T0 + 5 * MINUTE)["closed"] == 0
    set_mark(perpetual, stop + 500)
    result = tasks.exit_guard("sim", "BTCUSDT", stop - 100, T0 + 6 * MINUTE)
    assert result["reasons"] == ["stop_loss"]


def test_unrealized_pnl_uses_a_fresh_mark_else_the_last_close(
        perpetual, futures_account, make_config):
    position = open_position(futures_account, make_config, perpetual)
    # The paper ledger took the margin out of the balance: the equity still holds it.
    cash = Balance.objects.get(account=futures_account, asset="USDT").free + position.margin
    fills = position.account.orders.get().fills.get()
    set_mark(perpetual, float(position.entry_price))
    assert equity.value_account(futures_account).equity == Decimal("10000") - fills.fee
    set_mark(perpetual, 101_000)
    value = equity.value_account(futures_account)
    assert value.equity == cash + (Decimal("101000") - position.entry_price) * position.quantity
    prices, marked = equity.position_prices(
        Position.objects.filter(pk=position.pk).select_related("symbol"))
    assert prices[perpetual.pk] == Decimal("101000") and marked == {perpetual.pk}
    set_mark(perpetual, 101_000, age_s=120)
    value = equity.value_account(futures_account)
    assert value.equity == cash + (Decimal("100000") - position.entry_price) * position.quantity


def test_funding_is_booked_once_longs_pay_and_shorts_receive_a_positive_rate(
        perpetual, futures_account, trader, make_account, make_config):
    long = open_position(futures_account, make_config, perpetual)
    other = make_account(trader, label="futures-2", quote_asset="USDT")
    fund(other, "USDT", "10000")
    short = open_position(other, make_config, perpetual, short=True, name="perp-short")
    funding_time = T0 + 8 * HOUR  # 08:00 UTC, after both opened
    set_mark(perpetual, 100_500, rate="0.0001", next_funding_ms=funding_time + 8 * HOUR,
             last=(funding_time, "0.0003", 100_400))
    before = {a.pk: Balance.objects.get(account=a, asset="USDT").free
              for a in (futures_account, other)}
    now = at_ms(funding_time + HOUR)  # before the next funding time
    assert funding.apply_funding(now=now) == 2
    assert funding.apply_funding(now=now) == 0  # idempotent: once per position and time
    paid = FundingPayment.objects.get(position=long)
    received = FundingPayment.objects.get(position=short)
    assert paid.funding_time == at_ms(funding_time) and paid.rate == Decimal("0.0003")
    assert paid.amount == -(long.quantity * Decimal("100400") * Decimal("0.0003"))
    assert received.amount == short.quantity * Decimal("100400") * Decimal("0.0003")
    assert paid.amount < 0 < received.amount
    for account, row in ((futures_account, paid), (other, received)):
        after = Balance.objects.get(account=account, asset="USDT").free
        assert after == before[account.pk] + row.amount
    long_pnl = Position.objects.get(pk=long.pk).realized_pnl
    assert long_pnl == long.realized_pnl + paid.amount


def test_a_negative_rate_reverses_the_sign_and_late_positions_do_not_pay(
        perpetual, futures_account, make_config):
    position = open_position(futures_account, make_config, perpetual)
    # The funding time passed with no newer update (the stream was down): the stored rate is
    # the settled one. One settlement before the position opened pays nothing.
    set_mark(perpetual, 100_000, rate="-0.0002", next_funding_ms=T0 + 8 * HOUR,
             last=(T0 - 8 * HOUR, "0.0005", 99_000))
    assert funding.apply_funding(now=at_ms(T0 + 8 * HOUR + MINUTE)) == 1
    row = FundingPayment.objects.get()
    assert row.funding_time == at_ms(T0 + 8 * HOUR)
    assert row.amount == position.quantity * Decimal("100000") * Decimal("0.0002") > 0
    assert funding.apply_funding(now=at_ms(T0 + 8 * HOUR + 2 * MINUTE)) == 0


def test_the_api_and_the_dashboard_show_pnl_at_the_mark(
        client, perpetual, futures_account, make_config):
    from orders.models import ApiToken

    position = open_position(futures_account, make_config, perpetual)
    set_mark(perpetual, 101_000)
    _, key = ApiToken.issue(futures_account.owner, "test")
    body = client.get("/api/positions", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    (item,) = body["positions"]
    assert Decimal(item["mark_price"]) == 101_000 and Decimal(item["last_price"]) == 100_000
    pnl = (Decimal("101000") - position.entry_price) * position.quantity
    assert Decimal(item["unrealized_pnl"]) == pnl
    client.force_login(futures_account.owner)
    page = client.get("/").content.decode()
    assert "mark</span>" in page
    set_mark(perpetual, 101_000, age_s=61)
    (item,) = client.get("/api/positions",
                         HTTP_AUTHORIZATION=f"Bearer {key}").json()["positions"]
    assert item["mark_price"] is None
    assert Decimal(item["unrealized_pnl"]) == (Decimal("100000") - position.entry_price) * \
        position.quantity


def test_on_the_simulator_the_venue_mark_liquidates_and_the_trade_price_does_not(
        trader, make_account, make_config):
    """End to end: the futures simulator's mark diverges from its trades; the collector's REST
    fallback stores it; the exit guard liquidates on it (and not on a trade alone)."""
    from markets.adapters import adapter_for
    from markets.markprice import refresh_stale
    from markets.models import Exchange
    from simulator.server import SimConfig, SimulatorThread

    sim = SimulatorThread(SimConfig(seed=3, history_days=0.05, venues=("futures",)))
    try:
        exchange = Exchange.objects.create(slug="simf", name="Sim futures",
                                           adapter="binance_futures", rest_url=sim.futures_url,
                                           ws_url=sim.futures_ws_url)
        perp = Symbol.objects.create(
            exchange=exchange, code="BTCUSDT", base="BTC", quote="USDT",
            market_type=Symbol.MarketType.PERPETUAL, tick_size=Decimal("0.1"),
            step_size=Decimal("0.001"), min_notional=Decimal("5"), max_leverage=20)
        account = make_account(trader, label="sim-futures", quote_asset="USDT")
        fund(account, "USDT", "10000")
        make_config(account, name="perp", symbol=perp, leverage=10, params={"enter": 3},
                    sizing_method="fixed_quote", sizing_params={"amount": 1000})
        store(perp, [100_000.0] * 4)
        tasks.evaluate("simf", "BTCUSDT", "1m", T0 + 3 * MINUTE)
        position = Position.objects.get(account=account)
        liq = float(position.liquidation_price)
        marks = sim.sim.venues["futures"].marks

        sim.call(lambda: marks.pin("BTCUSDT", mark=round(liq + 3_000, 1)))
        assert refresh_stale(adapter_for) == 1
        assert tasks.exit_guard("simf", "BTCUSDT", liq - 50, T0 + 5 * MINUTE)["closed"] == 0

        sim.call(lambda: marks.pin("BTCUSDT", mark=round(liq - 100, 1)))
        MarkPrice.objects.filter(symbol=perp).update(
            updated_at=timezone.now() - dt.timedelta(seconds=61))  # the stream is down
        assert refresh_stale(adapter_for) == 1
        assert MarkPrice.objects.get(symbol=perp).price == Decimal(str(round(liq - 100, 1)))
        result = tasks.exit_guard("simf", "BTCUSDT", liq + 3_000, T0 + 6 * MINUTE)
        assert result["reasons"] == ["liquidation"]
    finally:
        sim.stop()
