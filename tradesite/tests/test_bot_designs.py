"""The five original bot designs (issue 19), each set up by a trader only through the admin's
forms, trading candles backfilled from the seeded simulator through the production path
(``orders.tasks.exit_guard`` and ``orders.tasks.evaluate`` per bar) until an entry and an exit
have filled. Each design has an account of its own. The demo seeds the same five
(``tradesite.demo_bots``); the parameters here are the demo's."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from orders.brokers.base import default_costs
from orders.models import Order, Position
from strategies.models import StrategyConfig
from tradesite import demo, demo_bots
from tradesite.tests.bot_designs import (
    ANCHOR_MS,
    MINUTE_MS,
    AdminTrader,
    backfill_from_sim,
    demo_venue,
    simulator,
    trade_bars,
)

pytestmark = pytest.mark.django_db(transaction=False)

END_MS = ANCHOR_MS - ANCHOR_MS % MINUTE_MS  # the last whole minute of the simulator's history


@pytest.fixture
def trader(make_trader, clean_redis):
    return AdminTrader(make_trader("tess"), "pw-tess")


def configure(trader, design: demo_bots.Design, venue) -> StrategyConfig:
    """The design's own paper account and config, typed into the admin as the demo has them."""
    account = trader.add_paper_account(design.account_label, venue, design.quote,
                                       str(design.funds))
    symbol = venue.symbols.get(code=design.symbol)
    return trader.add_config(
        name=design.name, strategy=design.strategy, params=json.dumps(design.params),
        symbol=symbol, timeframe=design.timeframe, account=account,
        sizing_method=design.sizing_method, sizing_params=json.dumps(design.sizing_params),
        leverage=design.leverage, stop_loss=design.stop_loss_pct or "",
        take_profit=design.take_profit_pct or "", trailing=design.trailing_stop_pct or "",
        auto_apply_optimized=design.auto_apply_optimized,
    )


def entry_and_exit_filled(config):
    """``until`` for trade_bars: the config has a filled entry and a filled exit."""
    def done():
        filled = Order.objects.filter(config=config, status=Order.Status.FILLED)
        return filled.filter(reduce_only=False).exists() and filled.filter(
            reduce_only=True).exists()
    return done


def first_round_trip(config) -> tuple[Order, Order, Position]:
    """The config's first filled entry, the exit that closed its position, and the position."""
    position = Position.objects.filter(config=config).order_by("opened_at", "pk").first()
    assert position is not None, "no position was opened"
    assert position.closed_at is not None, "the position is still open"
    filled = Order.objects.filter(config=config, status=Order.Status.FILLED, symbol=config.symbol)
    entry = filled.filter(reduce_only=False).order_by("created_at", "pk").first()
    exit_ = filled.filter(reduce_only=True, fills__ts=position.closed_at).first()
    assert entry is not None and entry.fills.exists()
    assert exit_ is not None and exit_.fills.exists(), "no filled exit order closed the position"
    assert exit_.filled_quantity == exit_.quantity
    return entry, exit_, position


def test_upbit_ensemble_with_its_nightly_optimizer(trader):
    design = demo_bots.by_key("ensemble")
    with simulator(("upbit",), seed=5, history_days=1.3) as sim:
        venue = demo_venue(sim, "sim")
        config = configure(trader, design, venue)
        start = END_MS - int(1.3 * 1440) * MINUTE_MS
        assert backfill_from_sim(sim, config.symbol, "1m", start, END_MS) >= 1800
    # The six votes need the previous (KST) trading day: trade from 08:00 UTC of the last day.
    bars = trade_bars(config, END_MS - 400 * MINUTE_MS, END_MS,
                      until=entry_and_exit_filled(config))
    assert bars < 400
    entry, exit_, position = first_round_trip(config)
    assert (entry.side, exit_.side, position.side) == ("buy", "sell", "long")
    assert entry.signal.action == "enter_long" and exit_.signal.action == "exit_long"
    assert set(entry.signal.reason["params"]) >= {f"w_{v}" for v in (
        "trend", "momentum", "swing", "scalping", "day", "price_action")}
    # Opted into the nightly optimizer (the "Optimize strategies" job, 00:05): its weights.
    from strategies import optimization
    from strategies.models import OptimizationRun

    runs = optimization.schedule_nightly()
    assert [(r.config_id, r.kind) for r in runs] == [
        (config.pk, OptimizationRun.Kind.ENSEMBLE_WEIGHTS)]
    demo._periodic_tasks(demo.Report())  # the demo's schedule; the trader's form states it
    page = trader.client.get(f"/admin/strategies/strategyconfig/{config.pk}/change/")
    assert "Optimize strategies: every day at 00:05 (Asia/Seoul)" in page.content.decode()


def test_binance_futures_bollinger_exits_only_at_target_or_stop_at_10x(trader):
    design = demo_bots.by_key("futures_bollinger")
    assert design.params["exit"] == "none" and design.params["vol_filter"] is True
    with simulator(("futures",), seed=7, history_days=0.5) as sim:
        venue = demo_venue(sim, "sim-futures")
        config = configure(trader, design, venue)
        assert backfill_from_sim(sim, config.symbol, "1m", END_MS - 720 * MINUTE_MS,
                                 END_MS) >= 700
    bars = trade_bars(config, END_MS - 720 * MINUTE_MS, END_MS,
                      until=entry_and_exit_filled(config))
    assert bars < 720
    entry, exit_, position = first_round_trip(config)
    assert position.leverage == 10 and config.leverage == 10
    assert position.close_reason in ("take_profit", "stop_loss")
    assert exit_.reason == position.close_reason
    entry_price, side = position.entry_price, 1 if position.side == "long" else -1
    assert position.target_price == pytest.approx(entry_price * (1 + side * Decimal("0.0016")),
                                                  rel=Decimal("1e-9"))
    assert position.stop_price == pytest.approx(entry_price * (1 - side * Decimal("0.0011")),
                                                rel=Decimal("1e-9"))
    # Filled at that level with the paper broker's slippage against the close (the bar did not
    # gap through it), never on a signal: Bollinger's exit is "none", so no middle band.
    level = position.target_price if position.close_reason == "take_profit" else (
        position.stop_price)
    slippage = Decimal(repr(default_costs().slippage_bps)) / 10_000
    assert exit_.average_price == pytest.approx(level * (1 - side * slippage), rel=Decimal("1e-9"))
    assert exit_.signal is None
    assert not config.signals.filter(action__in=["exit_long", "exit_short"]).exists()
    # 10x: half of the 10,000 USDT as margin buys 50,000 USDT of BTC.
    notional = entry.filled_quantity * entry.average_price
    assert notional == pytest.approx(Decimal("50000"), rel=Decimal("0.005"))


def test_binance_macd_turtle_pyramids_in_atr_units(trader):
    from markets.candles import load_candles
    from strategies import indicators

    design = demo_bots.by_key("macd_turtle")
    with simulator(("binance",), seed=1, history_days=0.5) as sim:
        venue = demo_venue(sim, "sim-binance")
        config = configure(trader, design, venue)
        start = END_MS - 720 * MINUTE_MS
        assert backfill_from_sim(sim, config.symbol, "1m", start, END_MS) >= 700

    def orders_of(position):
        return list(Order.objects.filter(
            config=config, status=Order.Status.FILLED, fills__ts__gte=position.opened_at,
            fills__ts__lte=position.closed_at,
        ).distinct().select_related("signal").order_by("created_at", "pk"))

    def pyramided(position):
        return any(o.signal and o.signal.reason.get("size") == 1.0 for o in orders_of(position))

    def pyramided_and_closed():  # an ATR add (one unit) filled, and nothing is open now
        adds = Order.objects.filter(config=config, status=Order.Status.FILLED,
                                    signal__action="add_long")
        return any(reason.get("size") == 1.0 for reason in adds.values_list(
            "signal__reason", flat=True)) and not Position.objects.filter(
            config=config, closed_at__isnull=True).exists()

    bars = trade_bars(config, start, END_MS, until=pyramided_and_closed)
    assert bars < 720
    position = next(p for p in Position.objects.filter(config=config, closed_at__isnull=False)
                    if pyramided(p))
    assert position.close_reason == "signal"
    orders = orders_of(position)
    actions = [(o.signal.action, o.signal.reason.get("size")) for o in orders if o.signal]
    assert actions[:3] == [("enter_long", 0.5), ("add_long", 1.5), ("add_long", 1.0)], actions
    assert actions[-1][0] == "exit_long"
    # Each order is its units x (equity x 0.03 % / ATR(20)) at its bar: the turtle unit.
    for order in orders[:3]:
        size = order.signal.reason["size"]
        at_ms = int(order.signal.bar_time.timestamp() * 1000) + MINUTE_MS
        candles = load_candles(config.symbol_id, "1m", end_ms=at_ms, limit=20 * 12 + 2)
        atr = float(indicators.atr(candles.high, candles.low, candles.close, 20)[-1])
        unit = 10_000 * 0.0003 / atr  # equity within a few USDT of the 10,000 funded
        assert float(order.quantity) == pytest.approx(unit * size, rel=0.01)
    exit_ = orders[-1]
    assert exit_.reduce_only and exit_.quantity == sum(o.quantity for o in orders[:-1])


def test_upbit_volatility_breakout_sized_by_kelly(trader):
    design = demo_bots.by_key("volatility_breakout")
    assert design.sizing_method == "kelly"
    with simulator(("upbit",), seed=5, history_days=3) as sim:
        venue = demo_venue(sim, "sim")
        config = configure(trader, design, venue)
        start = END_MS - 3 * 1440 * MINUTE_MS
        assert backfill_from_sim(sim, config.symbol, "1h", start, END_MS) >= 70
    bars = trade_bars(config, start, END_MS, until=entry_and_exit_filled(config))
    assert bars < 72
    entry, exit_, position = first_round_trip(config)
    assert entry.signal.action == "enter_long" and exit_.signal.action == "exit_long"
    # Kelly: W - (1 - W) / R = 0.55 - 0.45 / 1.5 = 0.25 of equity, half of it (fraction 0.5).
    spent = entry.filled_quantity * entry.average_price
    assert spent == pytest.approx(Decimal("1250000"), rel=Decimal("0.002"))
    # Exit at the next (KST) day's open: the signal on the day's last bar, 15:00 UTC.
    assert exit_.signal.bar_time.hour == 14 and position.close_reason == "signal"


def test_bithumb_bollinger_on_krw_spot(trader):
    design = demo_bots.by_key("bithumb_bollinger")
    with simulator(("bithumb",), seed=3, history_days=1) as sim:
        venue = demo_venue(sim, "sim-bithumb")
        config = configure(trader, design, venue)
        start = END_MS - 1440 * MINUTE_MS
        assert backfill_from_sim(sim, config.symbol, "5m", start, END_MS) >= 280
    bars = trade_bars(config, start, END_MS, until=entry_and_exit_filled(config))
    assert bars < 288
    entry, exit_, position = first_round_trip(config)
    assert (entry.side, exit_.side, position.side) == ("buy", "sell", "long")
    assert entry.signal.action == "enter_long" and exit_.signal.action == "exit_long"
    assert position.close_reason == "signal"  # back to the middle band
    assert config.build_strategy().params.shorts is False  # KRW spot: longs only
    spent = entry.filled_quantity * entry.average_price
    assert spent == pytest.approx(Decimal("3000000"), rel=Decimal("0.002"))  # 30 % of equity
