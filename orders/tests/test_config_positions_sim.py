"""Done when (issue 19, item 1), end to end on the exchange simulator: two configs on one
account and symbol each open and close only their own position, and the account's net equals
the sum of the configs' positions at every step — paper spot and paper futures (one-way) at the
simulator's prices, and live USDⓈ-M futures, where the simulator's one net position per symbol
is compared with the sum after each step (venue stops reduce-only for each config's own
quantity; a stop that fires closes only its config's position)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from markets.models import Balance, Exchange, Symbol
from orders import services, tasks
from orders.models import Order, Position
from orders.positions import net_quantity, reconcile_net_positions, signed
from orders.tests.conftest import fund
from orders.tests.test_venue_stops import (  # noqa: F401  (fixtures: the live futures setup)
    futures,
    last_price,
    simulator,
    venue,
)
from simulator.server import SimConfig, start_in_thread
from strategies.models import Signal, StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)


def act(config, action: str, price: Decimal) -> services.Execution:
    """A signal of ``config`` executed now at ``price`` (the simulator's last trade)."""
    now_ms = int(time.time() * 1000)
    signal = Signal.objects.create(
        config=config, symbol=config.symbol, timeframe="1m", action=action,
        bar_time=datetime.fromtimestamp((now_ms - 60_000) / 1000, tz=UTC), price=price,
    )
    return services.execute_signal(signal, at_ms=now_ms, last_price=price)


def own(config) -> Position | None:
    return Position.objects.filter(config=config, closed_at__isnull=True).first()


def configs_sum(account, symbol) -> Decimal:
    return sum((signed(p) for p in Position.objects.filter(
        account=account, symbol=symbol, closed_at__isnull=True)), Decimal(0))


# ------------------------------------------------------------------------ paper


@pytest.fixture
def paper_sim():
    handle = start_in_thread(SimConfig(seed=31, history_days=0.02, venues=("binance", "futures"),
                                       trade_rate=0.5))
    yield handle
    handle.stop()


@pytest.mark.parametrize("venue_name", ["binance", "futures"])
def test_paper_two_configs_on_one_account_and_symbol_each_close_only_their_own(
        paper_sim, trader, venue_name):
    perpetual = venue_name == "futures"
    exchange = Exchange.objects.create(
        slug=f"sim{venue_name}", name=f"Sim {venue_name}",
        adapter="binance_futures" if perpetual else "binance_spot",
        rest_url=getattr(paper_sim, f"{venue_name}_url"), ws_url="ws://127.0.0.1:1",
    )
    symbol = Symbol.objects.create(
        exchange=exchange, code="BTCUSDT", base="BTC", quote="USDT",
        market_type=Symbol.MarketType.PERPETUAL if perpetual else Symbol.MarketType.SPOT,
        tick_size=Decimal("0.1") if perpetual else Decimal("0.01"),
        step_size=Decimal("0.001") if perpetual else Decimal("0.00001"),
        min_notional=Decimal("5"), max_leverage=20,
    )
    from markets.models import Account

    account = Account.objects.create(owner=trader, exchange=exchange, label="paper usdt",
                                     quote_asset="USDT")
    fund(account, "USDT", "10000")

    def config(name, amount):
        return StrategyConfig.objects.create(
            owner=trader, name=name, strategy="test_script", params={"enter": 99},
            symbol=symbol, timeframe="1m", account=account, is_active=True,
            leverage=5 if perpetual else 1, sizing_method="fixed_quote",
            sizing_params={"amount": amount},
        )

    a, b = config("a", 300), config("b", 500)

    def price() -> Decimal:
        return Decimal(repr(paper_sim.market(venue_name, "BTCUSDT").last_price))

    def step(cfg, action, *, refused=False):
        outcome = act(cfg, action, price())
        if refused:
            assert outcome.status == "rejected" or "refused" in outcome.reason, outcome
        else:
            assert outcome.status == "ordered" and not outcome.reason, outcome
        total = configs_sum(account, symbol)
        assert net_quantity(account.pk, symbol.pk) == total
        if not perpetual:  # paper spot: the base balance held is the net
            held = Balance.objects.filter(account=account, asset="BTC").first()
            assert (held.total if held else Decimal(0)) == total
        return total

    assert step(a, "enter_long") == own(a).quantity > 0
    a_qty = own(a).quantity
    assert step(b, "enter_long") == a_qty + own(b).quantity
    b_qty = own(b).quantity
    assert b_qty > a_qty  # sized on its own amount, not merged into a's position
    if perpetual:
        # One-way mode: a short of b would net against a's long at the venue: refused.
        step(b, "exit_long")
        assert step(b, "enter_short", refused=True) == a_qty
        assert own(b) is None
        assert step(b, "enter_long") == a_qty + own(b).quantity
        b_qty = own(b).quantity
    # a exits: only its own quantity; b's position is intact.
    assert step(a, "exit_long") == b_qty
    assert own(a) is None and own(b).quantity == b_qty
    (a_close,) = Order.objects.filter(config=a, reduce_only=True)
    assert a_close.quantity == a_qty and a_close.status == Order.Status.FILLED
    assert step(b, "exit_long") == 0
    assert not Position.objects.filter(closed_at__isnull=True).exists()


# ------------------------------------------------------------------------ live futures


def venue_net(venue) -> Decimal:  # noqa: F811
    return sum((p.quantity for p in venue.positions() if p.symbol == "BTCUSDT"), Decimal(0))


def stops_of(position):
    return list(Order.objects.filter(position=position, trigger_price__isnull=False,
                                     status__in=Order.OPEN_STATUSES))


def test_live_futures_one_way_two_configs_net_equals_the_venues_position(
        futures, simulator, venue):  # noqa: F811
    account, symbol, a = futures
    b = StrategyConfig.objects.create(
        owner=a.owner, name="live-b", strategy="test_script", params={"enter": 99},
        symbol=symbol, timeframe="1m", account=account, is_active=True, leverage=5,
        sizing_method="fixed_quote", sizing_params={"amount": 300},
    )  # no stop or target: the exit guard alone; the venue holds no stop for it

    def step(cfg, action):
        outcome = act(cfg, action, last_price(simulator))
        ours = configs_sum(account, symbol)
        assert ours == venue_net(venue), (action, cfg.name)
        assert reconcile_net_positions([account.pk]) == []
        return outcome

    assert step(a, "enter_long").status == "ordered"
    a_pos = own(a)
    a_stops = stops_of(a_pos)
    assert {s.reason for s in a_stops} == {"stop_loss", "take_profit"}
    assert all(s.reduce_only and s.quantity == a_pos.quantity for s in a_stops)
    for stop in a_stops:  # at the venue: reduce-only for a's quantity, never closePosition
        held = venue.fetch_stop("BTCUSDT", stop.client_order_id)
        assert held.quantity == a_pos.quantity
        assert held.raw.get("closePosition") in (False, "false", None)
        assert str(held.raw.get("reduceOnly")).lower() == "true"
    assert step(b, "enter_long").status == "ordered"
    b_qty = own(b).quantity
    assert b_qty != a_pos.quantity and stops_of(own(b)) == []
    # a's stops are unchanged: still for a's own quantity, never the venue's whole position.
    assert {s.pk for s in stops_of(a_pos)} == {s.pk for s in a_stops}

    # b's reversal: its own long closed reduce-only; the short refused (a is long).
    outcome = step(b, "enter_short")
    assert "one net position per symbol" in outcome.reason
    (b_close,) = Order.objects.filter(config=b, reduce_only=True, trigger_price__isnull=True)
    assert b_close.quantity == b_qty and b_close.status == Order.Status.FILLED
    assert own(b) is None and own(a).quantity == a_pos.quantity
    assert len(stops_of(a_pos)) == 2

    # b long again; then a's stop fires at the venue: only a's quantity goes.
    step(b, "enter_long")
    b_qty = own(b).quantity
    stop = next(s for s in stops_of(a_pos) if s.reason == "stop_loss")
    simulator.print_trade("futures", "BTCUSDT", float(stop.trigger_price) - 3)
    assert venue_net(venue) == b_qty  # the venue reduced a's share
    tasks.reconcile_all()
    a_pos.refresh_from_db()
    assert a_pos.closed_at is not None and a_pos.close_reason == "stop_loss"
    assert own(b).quantity == b_qty
    assert configs_sum(account, symbol) == venue_net(venue) == b_qty
    assert reconcile_net_positions([account.pk]) == []

    assert step(b, "exit_long").status == "ordered"
    assert venue_net(venue) == 0 and own(b) is None
