"""Venue stops end to end on the exchange simulator (real sockets, real Redis for the pushes):
a live USDⓈ-M futures entry leaves its stop-loss and take-profit with the venue as conditional
reduce-only orders; the venue triggers and fills the stop on its own trades; reconciliation
closes the position here with the venue's fill and cancels the take-profit. Racing closes
(the exit guard, the kill switch) close a position exactly once."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from markets.exchanges import get_adapter
from markets.exchanges.base import CANCELLED, STOP_FINISHED, STOP_OPEN
from markets.models import Account, Exchange, Symbol
from orders import exits, killswitch, services, tasks, userstream, venue_stops
from orders.models import Fill, Order, Position
from orders.tests.conftest import store
from orders.tests.live_helpers import Following, live_account, wait_for
from simulator.server import DEFAULT_ACCOUNTS, SimConfig, start_in_thread
from strategies.models import Signal, StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)
KEY, SECRET, _ = DEFAULT_ACCOUNTS["futures"][0]


@pytest.fixture
def simulator():
    handle = start_in_thread(SimConfig(seed=21, history_days=0.02, venues=("futures",),
                                       trade_rate=0.5))
    yield handle
    handle.stop()


@pytest.fixture
def venue(simulator):
    adapter = get_adapter("binance_futures", rest_url=simulator.futures_url, api_key=KEY,
                          api_secret=SECRET)
    yield adapter
    adapter.close()


@pytest.fixture
def futures(simulator, trader, settings):
    settings.TRADING_LIVE = True
    account, symbol = live_account(
        trader, "binance_futures", simulator.futures_url, "BTCUSDT", "BTC", "USDT", KEY, SECRET,
        slug="simfutures", name="Sim Binance futures", label="live futures",
        quote_asset="USDT", market_type=Symbol.MarketType.PERPETUAL, tick_size=Decimal("0.1"),
        step_size=Decimal("0.001"), min_qty=Decimal("0.001"), min_notional=Decimal("5"),
        max_leverage=125)
    config = StrategyConfig.objects.create(
        owner=trader, name="live-fut", strategy="test_script", params={"enter": 3},
        symbol=symbol, timeframe="1m", account=account, is_active=True, leverage=5,
        stop_loss_pct=Decimal("2"), take_profit_pct=Decimal("3"),
        sizing_method="fixed_quote", sizing_params={"amount": 200},
    )
    return account, symbol, config


def last_price(simulator) -> Decimal:
    return Decimal(repr(simulator.market("futures", "BTCUSDT").last_price))


def act(simulator, config, action: str) -> list[Order]:
    """A live signal executed now at the venue's last price; returns its orders."""
    price = last_price(simulator)
    now_ms = int(time.time() * 1000)
    signal = Signal.objects.create(
        config=config, symbol=config.symbol, timeframe="1m", action=action,
        bar_time=datetime.fromtimestamp((now_ms - 60_000) / 1000, tz=UTC), price=price,
    )
    outcome = services.execute_signal(signal, at_ms=now_ms, last_price=price)
    assert outcome.status == "ordered" and not outcome.reason, outcome
    orders = [Order.objects.get(pk=pk) for pk in outcome.orders]
    assert all(o.status == "filled" for o in orders)
    return orders


def enter_long(simulator, config) -> Position:
    """A live entry signal executed now: the entry fills at the venue, then its stops are
    placed there."""
    (entry,) = act(simulator, config, "enter_long")
    assert entry.reason == "entry"
    return Position.objects.get(account=config.account, closed_at__isnull=True)


def stops_of(position):
    stops = {o.reason: o for o in Order.objects.filter(position=position,
                                                        trigger_price__isnull=False)}
    assert set(stops) == {"stop_loss", "take_profit"}
    return stops["stop_loss"], stops["take_profit"]


def closing_fills(account):
    return Fill.objects.filter(order__account=account, order__side="sell")


def test_a_venue_stop_fill_closes_the_position_here_and_cancels_the_target(
    futures, simulator, venue, listen
):
    account, symbol, config = futures
    position = enter_long(simulator, config)
    stop, target = stops_of(position)

    # Placed at the position's levels, rounded to the tick toward the entry, reduce-only.
    assert stop.status == target.status == "open"
    assert stop.side == target.side == "sell" and stop.reduce_only and target.reduce_only
    assert stop.quantity == target.quantity == position.quantity == Decimal("0.010")
    assert stop.trigger_price == services.round_price(symbol, position.stop_price, "sell")
    assert target.trigger_price == services.round_price(symbol, position.target_price, "buy")
    assert position.stop_price <= stop.trigger_price < position.entry_price
    assert position.entry_price < target.trigger_price <= position.target_price
    at_venue = venue.fetch_stop("BTCUSDT", stop.client_order_id)
    assert at_venue.status == STOP_OPEN and at_venue.trigger_price == stop.trigger_price
    assert venue.fetch_stop("BTCUSDT", target.client_order_id).status == STOP_OPEN

    events = listen(account.owner_id)
    simulator.print_trade("futures", "BTCUSDT", float(stop.trigger_price) - 3)
    triggered = venue.fetch_stop("BTCUSDT", stop.client_order_id)
    assert triggered.status == STOP_FINISHED and triggered.order_id
    assert venue.positions() == []  # the venue closed it; this database does not know yet
    assert Position.objects.get(pk=position.pk).closed_at is None

    result = tasks.reconcile_all()

    assert result["venue_stops"] == 2  # the stop filled, the target cancelled
    venue_fill = venue.fetch_order("BTCUSDT", exchange_order_id=triggered.order_id)
    position.refresh_from_db()
    assert position.closed_at is not None and position.close_reason == "stop_loss"
    assert position.quantity == 0
    stop.refresh_from_db()
    assert stop.status == "filled" and stop.filled_quantity == Decimal("0.010")
    assert stop.exchange_order_id == triggered.order_id
    assert stop.average_price == venue_fill.average_price < stop.trigger_price
    (fill,) = stop.fills.all()
    (venue_trade,) = venue_fill.fills
    assert (fill.trade_id, fill.price, fill.quantity, fill.fee) == (
        venue_trade.trade_id, venue_trade.price, venue_trade.quantity, venue_trade.fee)
    expected_pnl = (fill.price - position.entry_price) * fill.quantity
    entry_fee = Fill.objects.get(order__account=account, order__reason="entry").fee
    assert position.realized_pnl == expected_pnl - fill.fee - entry_fee
    target.refresh_from_db()
    assert target.status == "cancelled" and "stop loss filled" in target.reject_reason
    assert venue.fetch_stop("BTCUSDT", target.client_order_id).status == CANCELLED
    assert closing_fills(account).count() == 1
    assert stop.raw["stop"]["status"] == STOP_FINISHED

    pushed = events.drain()
    assert [m["trade_id"] for m in pushed if m["type"] == "fill.created"] == [fill.trade_id]
    assert {(m["client_order_id"], m["status"]) for m in pushed if m["type"] == "order.updated"
            } >= {(stop.client_order_id, "filled"), (target.client_order_id, "cancelled")}
    assert any(m["type"] == "position.updated" and not m["open"] for m in pushed)

    # Nothing left to do: a second run changes nothing and sends nothing.
    assert tasks.reconcile_all()["venue_stops"] == 0
    assert Order.objects.filter(account=account).count() == 3


def test_the_exit_guard_racing_a_triggered_venue_stop_closes_once(futures, simulator, venue):
    """The venue's stop triggered and filled; before reconciliation ran, the exit guard sees
    the same trade. It must not sell too: it asks the venue to cancel the stop, learns it
    filled, and applies that fill instead."""
    account, symbol, config = futures
    position = enter_long(simulator, config)
    stop, target = stops_of(position)
    below = float(position.stop_price) - 5  # past both the venue's and the guard's level
    simulator.print_trade("futures", "BTCUSDT", below)
    assert venue.fetch_stop("BTCUSDT", stop.client_order_id).status == STOP_FINISHED

    report = exits.guard_symbol(symbol, below, int(time.time() * 1000))

    assert report.errors == 0
    position.refresh_from_db()
    assert position.closed_at is not None and position.close_reason == "stop_loss"
    stop.refresh_from_db()
    target.refresh_from_db()
    assert stop.status == "filled" and target.status == "cancelled"
    # Exactly one close, here and at the venue: the guard sent no order of its own.
    assert list(Order.objects.filter(account=account).order_by("pk").values_list(
        "reason", "status")) == [("entry", "filled"), ("stop_loss", "filled"),
                                 ("take_profit", "cancelled")]
    assert closing_fills(account).count() == 1
    sells = [t for t in venue._signed("GET", "/fapi/v1/userTrades", [("symbol", "BTCUSDT")])
             if t["side"] == "SELL"]
    assert len(sells) == 1
    assert venue.positions() == []
    # The guard seeing more trades, and reconciliation, find nothing left to do.
    exits.guard_symbol(symbol, below - 10, int(time.time() * 1000))
    assert tasks.reconcile_all()["venue_stops"] == 0
    assert closing_fills(account).count() == 1


@pytest.mark.parametrize("who", ["exit_guard_trailing", "kill_switch"])
def test_our_own_close_cancels_the_venue_stops_first(futures, simulator, venue, who):
    """The guard's trailing stop (the guard's alone) or the kill switch with
    --close-positions closes first: the venue stops are cancelled before our close is sent,
    so a later fall through the old stop level sells nothing more."""
    account, _, config = futures
    position = enter_long(simulator, config)
    stop, target = stops_of(position)
    if who == "kill_switch":
        minute = int(time.time() * 1000) // 60_000 * 60_000
        store(config.symbol, [float(last_price(simulator))], start=minute)  # its last price
        result = killswitch.stop_trading(user=account.owner, configs=killswitch.ALL, reason="panic",
                                       close_positions=True)
        assert result.positions_closed == 1 and not result.errors
    else:
        closed = services.close_position(position, "trailing_stop",
                                         last_price=last_price(simulator))
        assert closed is not None and closed.status == "filled"
    position.refresh_from_db()
    assert position.closed_at is not None
    stop.refresh_from_db()
    target.refresh_from_db()
    assert stop.status == target.status == "cancelled"
    for row in (stop, target):
        assert venue.fetch_stop("BTCUSDT", row.client_order_id).status == CANCELLED
    assert venue.positions() == []

    simulator.print_trade("futures", "BTCUSDT", float(stop.trigger_price) - 5)

    assert venue.positions() == []  # nothing triggered: no short opened, nothing sold twice
    assert tasks.reconcile_all()["venue_stops"] == 0
    assert closing_fills(account).count() == 1


def test_the_kill_switch_without_closing_leaves_the_venue_stops_working(futures, simulator,
                                                                         venue):
    account, _, config = futures
    position = enter_long(simulator, config)
    stop, target = stops_of(position)
    result = killswitch.stop_trading(user=account.owner, configs=killswitch.ALL, reason="pause")
    assert result.orders_cancelled == 0 and not result.errors
    stop.refresh_from_db()
    assert stop.status == "open"
    assert venue.fetch_stop("BTCUSDT", stop.client_order_id).status == STOP_OPEN
    # A person cancels the take-profit by hand: at the venue first.
    cancelled = services.cancel_order(target, "cancelled by user")
    assert cancelled.status == "cancelled"
    assert venue.fetch_stop("BTCUSDT", target.client_order_id).status == CANCELLED
    # ... and reconciliation does not put it back.
    tasks.reconcile_all()
    assert not Order.objects.filter(position=position, reason="take_profit",
                                    status="open").exists()
    assert Order.objects.get(pk=stop.pk).status == "open"


def test_a_lost_stop_is_replaced_by_reconciliation(futures, simulator, venue):
    """A stop saved here that never reached the venue (the process stopped before sending
    it) is marked and the position protected again; one a person cancelled at the venue is
    recorded as cancelled and not put back."""
    _, _, config = futures
    position = enter_long(simulator, config)
    stop, target = stops_of(position)
    venue.cancel_stop("BTCUSDT", stop.client_order_id)
    lost_id = services.new_client_order_id()  # the venue never saw this one
    Order.objects.filter(pk=stop.pk).update(status="submitted", client_order_id=lost_id)
    venue.cancel_stop("BTCUSDT", target.client_order_id)  # a person, on the venue's site

    tasks.reconcile_all()

    stop.refresh_from_db()
    assert stop.status == "rejected" and stop.reject_reason == venue_stops.NEVER_ARRIVED
    fresh = Order.objects.get(position=position, reason="stop_loss", status="open")
    assert fresh.trigger_price == stop.trigger_price and fresh.pk != stop.pk
    assert venue.fetch_stop("BTCUSDT", fresh.client_order_id).status == STOP_OPEN
    target.refresh_from_db()
    assert target.status == "cancelled" and "cancelled" in target.reject_reason
    assert not Order.objects.filter(position=position, reason="take_profit",
                                    status="open").exists()


def test_an_add_replaces_the_stops_and_a_reversal_protects_the_short(futures, simulator,
                                                                      venue):
    account, symbol, config = futures
    position = enter_long(simulator, config)
    old_stop, old_target = stops_of(position)

    (add,) = act(simulator, config, "add_long")

    assert add.reason == "add"
    position.refresh_from_db()
    assert position.quantity == Decimal("0.020")
    for old in (old_stop, old_target):
        old.refresh_from_db()
        assert old.status == "cancelled" and "replaced" in old.reject_reason
        assert venue.fetch_stop("BTCUSDT", old.client_order_id).status == CANCELLED
    stop = Order.objects.get(position=position, reason="stop_loss", status="open")
    target = Order.objects.get(position=position, reason="take_profit", status="open")
    assert stop.quantity == target.quantity == Decimal("0.020")
    assert stop.trigger_price == services.round_price(symbol, position.stop_price, "sell")
    assert venue.fetch_stop("BTCUSDT", stop.client_order_id).quantity == Decimal("0.020")

    close, entry = act(simulator, config, "enter_short")  # close the long, then go short

    assert close.reason == "reverse" and entry.reason == "entry"
    stop.refresh_from_db()
    assert stop.status == "cancelled"
    short = Position.objects.get(account=account, closed_at__isnull=True)
    assert short.side == "short" and short.quantity == Decimal("0.010")
    short_stop, short_target = stops_of(short)
    assert short_stop.side == short_target.side == "buy"
    # Rounded toward the entry: the short's stop down, its target up.
    assert short_stop.trigger_price == services.round_price(symbol, short.stop_price, "buy")
    assert short_target.trigger_price == services.round_price(symbol, short.target_price,
                                                              "sell")
    assert short.entry_price < short_stop.trigger_price <= short.stop_price
    assert short.target_price <= short_target.trigger_price < short.entry_price

    simulator.print_trade("futures", "BTCUSDT", float(short_stop.trigger_price) + 3)
    assert tasks.reconcile_all()["venue_stops"] == 2

    short.refresh_from_db()
    assert short.closed_at is not None and short.close_reason == "stop_loss"
    short_stop.refresh_from_db()
    assert short_stop.status == "filled" and short_stop.average_price > short_stop.trigger_price
    assert Order.objects.get(pk=short_target.pk).status == "cancelled"
    assert venue.positions() == []
    assert not Order.objects.filter(account=account, trigger_price__isnull=False,
                                    status__in=Order.OPEN_STATUSES).exists()


def test_no_reversal_while_a_venue_stop_cannot_be_cancelled(futures, simulator, venue,
                                                             monkeypatch):
    """The venue does not answer the cancel of a stop: our close is not sent (the stop may
    still fill), and the reversal's new entry is not sent on top of the open long either."""
    from markets.exchanges.errors import TemporaryExchangeError
    from orders.brokers import LiveBroker

    account, _, config = futures
    position = enter_long(simulator, config)
    stop, target = stops_of(position)

    def no_answer(self, symbol, client_id):
        raise TemporaryExchangeError("binance_futures: 503 Service Unavailable")

    monkeypatch.setattr(LiveBroker, "cancel_stop", no_answer)
    price = last_price(simulator)
    now_ms = int(time.time() * 1000)
    signal = Signal.objects.create(
        config=config, symbol=config.symbol, timeframe="1m", action="enter_short",
        bar_time=datetime.fromtimestamp((now_ms - 60_000) / 1000, tz=UTC), price=price,
    )
    outcome = services.execute_signal(signal, at_ms=now_ms, last_price=price)

    assert outcome.reason == "the position could not be closed first; no new entry"
    assert outcome.orders == []
    assert Position.objects.get(pk=position.pk).closed_at is None
    assert Order.objects.filter(account=account).count() == 3  # entry + the two stops
    assert {o.status for o in (Order.objects.get(pk=stop.pk), Order.objects.get(pk=target.pk))
            } == {"open"}
    (at_venue,) = venue.positions()
    assert at_venue.quantity == Decimal("0.010")
    monkeypatch.undo()
    # Once the venue answers again, the guard's close goes through.
    assert services.close_position(position, "trailing_stop",
                                   last_price=last_price(simulator)).status == "filled"
    assert venue.positions() == []


def exit_in_a_bar_batch(simulator, config) -> services.Execution:
    """An exit_long signal acted on the way evaluation does it: saved with the bar's batch
    (``execute_signals``), then sent after the commit."""
    price = last_price(simulator)
    now_ms = int(time.time() * 1000)
    signal = Signal.objects.create(
        config=config, symbol=config.symbol, timeframe="1m", action="exit_long",
        bar_time=datetime.fromtimestamp((now_ms - 60_000) / 1000, tz=UTC), price=price,
    )
    (outcome,) = services.execute_signals([(signal, config)], at_ms=now_ms)
    return outcome.pending() if outcome.pending else outcome


def test_a_bar_batch_exit_cancels_the_venue_stops_before_its_close(futures, simulator, venue):
    account, _, config = futures
    position = enter_long(simulator, config)
    stop, target = stops_of(position)

    outcome = exit_in_a_bar_batch(simulator, config)

    assert outcome.status == "ordered" and not outcome.reason, outcome
    position.refresh_from_db()
    assert position.closed_at is not None and position.close_reason == "signal"
    for row in (stop, target):
        row.refresh_from_db()
        assert row.status == "cancelled"
        assert venue.fetch_stop("BTCUSDT", row.client_order_id).status == CANCELLED
    simulator.print_trade("futures", "BTCUSDT", float(stop.trigger_price) - 5)
    assert venue.positions() == []  # the old stop sold nothing: it was cancelled first
    assert closing_fills(account).count() == 1


def test_a_bar_batch_exit_after_the_venue_stop_filled_sends_nothing(futures, simulator, venue):
    """The venue's stop filled before the bar's exit is sent: the saved close is withdrawn
    unsent, the venue's fill closes the position, and exactly one sell exists anywhere."""
    account, _, config = futures
    position = enter_long(simulator, config)
    stop, _ = stops_of(position)
    simulator.print_trade("futures", "BTCUSDT", float(position.stop_price) - 5)
    assert venue.fetch_stop("BTCUSDT", stop.client_order_id).status == STOP_FINISHED

    outcome = exit_in_a_bar_batch(simulator, config)

    assert outcome.reason == "not sent: a venue stop already closed the position"
    (close,) = [Order.objects.get(pk=pk) for pk in outcome.orders]
    assert close.status == "cancelled" and close.reject_reason == outcome.reason
    assert close.exchange_order_id == "" and close.fills.count() == 0
    position.refresh_from_db()
    assert position.closed_at is not None and position.close_reason == "stop_loss"
    assert closing_fills(account).count() == 1
    sells = [t for t in venue._signed("GET", "/fapi/v1/userTrades", [("symbol", "BTCUSDT")])
             if t["side"] == "SELL"]
    assert len(sells) == 1 and venue.positions() == []


def test_paper_and_spot_positions_get_no_venue_stops(symbol, paper, make_config):
    from orders.brokers import PaperBroker

    assert not PaperBroker().venue_stops
    config = make_config(paper, stop_loss_pct=Decimal("2"))
    signal = Signal.objects.create(
        config=config, symbol=symbol, timeframe="1m", action="enter_long",
        bar_time=datetime(2026, 1, 1, tzinfo=UTC), price=Decimal("100000000"),
    )
    services.execute_signal(signal, at_ms=1_767_225_660_000)
    position = Position.objects.get(account=paper, closed_at__isnull=True)
    assert position.stop_price is not None
    assert venue_stops.protect(position) == []
    assert not Order.objects.filter(trigger_price__isnull=False).exists()


def test_the_exit_guard_and_reconciliation_at_the_same_time_close_once(futures, simulator,
                                                                        venue):
    """The same race with real concurrency: the exit guard (stream task) and reconciliation
    (beat task) act on the triggered stop in two threads at once."""
    import threading

    from django.db import connection

    account, symbol, config = futures
    position = enter_long(simulator, config)
    below = float(position.stop_price) - 5
    simulator.print_trade("futures", "BTCUSDT", below)
    start = threading.Barrier(2)
    failures = []

    def run(work):
        try:
            start.wait(5)
            work()
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(lambda: exits.guard_symbol(
            symbol, below, int(time.time() * 1000)),)),
        threading.Thread(target=run, args=(venue_stops.reconcile_stops,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not failures
    position.refresh_from_db()
    assert position.closed_at is not None and position.close_reason == "stop_loss"
    assert closing_fills(account).count() == 1
    assert list(Order.objects.filter(account=account).order_by("pk").values_list(
        "reason", "status")) == [("entry", "filled"), ("stop_loss", "filled"),
                                 ("take_profit", "cancelled")]
    sells = [t for t in venue._signed("GET", "/fapi/v1/userTrades", [("symbol", "BTCUSDT")])
             if t["side"] == "SELL"]
    assert len(sells) == 1 and venue.positions() == []


def test_the_user_stream_closes_the_position_without_waiting_for_reconciliation(
    futures, simulator, venue
):
    """``manage.py userstreams``: the venue's ALGO_UPDATE names the stop that triggered; its
    state and fill are read from REST and applied at once, no minute reconciliation needed."""
    from orders import userstream

    account, _, config = futures
    Exchange.objects.filter(pk=account.exchange_id).update(ws_url=simulator.futures_ws_url)
    assert userstream.live_account_ids() == [account.pk]
    position = enter_long(simulator, config)
    stop, target = stops_of(position)
    with Following(account) as following:
        users = simulator.venues["futures"].user_conns
        wait_for(lambda: simulator.call(lambda: len(users)), 10, step_s=0.05)
        # The connect-time resync runs first: its balance fetch is its last step.
        assert wait_for(lambda: following.fetches >= 1, 10, step_s=0.05)
        simulator.print_trade("futures", "BTCUSDT", float(stop.trigger_price) - 3)
        wait_for(lambda: Position.objects.get(pk=position.pk).closed_at is not None
                 and Order.objects.get(pk=target.pk).status == "cancelled", 10, step_s=0.05)

    position.refresh_from_db()
    assert position.closed_at is not None and position.close_reason == "stop_loss"
    stop.refresh_from_db()
    assert stop.status == "filled" and stop.fills.count() == 1
    assert Order.objects.get(pk=target.pk).status == "cancelled"
    assert closing_fills(account).count() == 1
    assert tasks.reconcile_all()["venue_stops"] == 0  # nothing left for the minute job


def test_a_user_stream_order_event_applies_the_venue_answer_once(futures, simulator):
    from markets.exchanges.base import OrderInfo, OrderUpdate
    from orders import userstream
    from orders.brokers import broker_for

    account, symbol, _ = futures
    price = last_price(simulator)
    limit = services.round_price(symbol, price * Decimal("0.99"), "buy")
    order = services.place_manual_order(account, symbol, side="buy", quantity=Decimal("0.002"),
                                        price=limit, last_price=price)
    assert order.status == "open"
    simulator.print_trade("futures", "BTCUSDT", float(limit) - 1)  # the venue fills it
    broker = broker_for(account)

    def event(client_id):
        info = OrderInfo(exchange_order_id="", client_order_id=client_id, symbol="BTCUSDT",
                         side="buy", type="limit", status="filled", price=limit,
                         quantity=Decimal("0.002"), filled_quantity=Decimal("0.002"),
                         average_price=limit, fee=None)
        return OrderUpdate(venue="binance_futures", order=info, fill=None, ts_ms=0)

    assert userstream.apply_event(account, event("someone-else"), broker) == "ignored"
    assert userstream.apply_event(account, event(order.client_order_id), broker) == "order"
    order.refresh_from_db()
    assert order.status == "filled" and order.fills.count() == 1
    assert userstream.apply_event(account, event(order.client_order_id), broker) == "ignored"
    assert order.fills.count() == 1
    assert Position.objects.get(account=account, closed_at__isnull=True).quantity == \
        Decimal("0.002")


def test_userstreams_follows_the_live_accounts_as_they_come_and_go(futures):
    import asyncio

    from orders import userstream

    account, _, _ = futures
    started, stopped = [], []

    async def follow(pk):
        started.append(pk)
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.append(pk)

    async def scenario():
        runner = asyncio.ensure_future(userstream.follow_all(interval_s=0.05, follow=follow))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(userstream._db, lambda: Account.objects.filter(
            pk=account.pk).update(mode=Account.Mode.PAPER))
        await asyncio.sleep(0.2)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    asyncio.run(scenario())
    assert started == [account.pk] and stopped == [account.pk]  # followed once, let go


def test_no_user_stream_is_followed_while_live_trading_is_off(futures, settings):
    account, _, _ = futures
    assert userstream.live_account_ids() == [account.pk]
    settings.TRADING_LIVE = False
    assert userstream.live_account_ids() == []  # nothing contacts a venue
