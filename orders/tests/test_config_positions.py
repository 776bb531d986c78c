"""Positions belong to the config that opened them (issue 19, item 1): two configs on one
account and symbol each hold their own position, a config's exit closes only its own quantity,
the account's net (what the venue sees) is the sum, and on a perpetual (one-way mode) an entry
opposite another config's position is refused. Every path that looks up "the open position":
the bar's batch, a single signal, the exit guard, the kill switch, paper recovery, manual
orders, and what the dashboard, API and chart show."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from markets.exchanges.base import PositionInfo
from markets.models import Account, Balance, Symbol
from orders import exits, killswitch, recovery, services, tasks
from orders.models import Order, Position
from orders.positions import (
    compare_nets,
    net_positions,
    net_quantity,
    reconcile_net_positions,
    signed,
)
from orders.tests.conftest import MINUTE, T0, store
from strategies.models import Signal

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0
SIZE = {"sizing_method": "fixed_quote", "sizing_params": {"amount": 100_000}}


def bar(minute: int) -> int:
    return T0 + minute * MINUTE


def signal(config, action: str, minute: int, price=PRICE) -> Signal:
    return Signal.objects.create(
        config=config, symbol=config.symbol, timeframe="1m", action=action,
        bar_time=datetime.fromtimestamp(bar(minute) / 1000, tz=UTC),
        price=Decimal(repr(float(price))),
    )


def act(config, action: str, minute: int, price=PRICE) -> services.Execution:
    """One signal through ``execute_signal`` (the single-signal path), at the bar's close."""
    return services.execute_signal(signal(config, action, minute, price), at_ms=bar(minute + 1))


def own(config) -> Position | None:
    return Position.objects.filter(config=config, closed_at__isnull=True).first()


def assert_net_is_the_sum(account, symbol):
    open_rows = Position.objects.filter(account=account, symbol=symbol, closed_at__isnull=True)
    total = sum((signed(p) for p in open_rows), Decimal(0))
    assert net_quantity(account.pk, symbol.pk) == total
    if symbol.market_type == Symbol.MarketType.SPOT:
        # Paper spot: the base balance is what the venue would hold, the net of the configs.
        held = Balance.objects.filter(account=account, asset=symbol.base).first()
        assert (held.total if held else Decimal(0)) == total
    return total


def perp_config(account, make_config, perpetual, name, **params):
    return make_config(account, name=name, symbol=perpetual, leverage=5,
                       params={"enter": 99, **params}, sizing_method="fixed_quote",
                       sizing_params={"amount": 1000})


# ------------------------------------------------------------------------ reproduction


def test_reproduction_another_configs_exit_leaves_the_first_ones_position(
        symbol, paper, make_config):
    """The issue's report: the ensemble's exit_long sold the position the RSI config had
    opened. Both enter on the same bar (the bar's batch); only the ensemble exits."""
    rsi = make_config(paper, name="rsi", params={"enter": 3}, **SIZE)
    ensemble = make_config(paper, name="ensemble", params={"enter": 3, "exit": 5}, **SIZE)
    store(symbol, [PRICE] * 8)
    for minute in (3, 4, 5):
        tasks.evaluate("sim", "KRW-BTC", "1m", bar(minute))
    kept = own(rsi)
    assert kept is not None and kept.quantity > 0
    closed = Position.objects.get(config=ensemble)
    assert closed.closed_at is not None and closed.close_reason == "signal"
    entry = Order.objects.get(config=ensemble, reason="entry")
    (exit_order,) = Order.objects.filter(reduce_only=True)
    assert exit_order.config_id == ensemble.pk  # labelled with the config whose position it is
    assert exit_order.quantity == entry.filled_quantity  # its own quantity, not the account's
    assert own(rsi).quantity == Order.objects.get(config=rsi).filled_quantity
    assert assert_net_is_the_sum(paper, symbol) == kept.quantity


def test_the_single_signal_path_keeps_each_configs_position(symbol, paper, make_config):
    a = make_config(paper, name="a", params={"enter": 99}, **SIZE)
    b = make_config(paper, name="b", params={"enter": 99}, **SIZE)
    store(symbol, [PRICE] * 8)
    assert act(a, "enter_long", 3).status == "ordered"
    first = own(a).quantity
    assert assert_net_is_the_sum(paper, symbol) == first
    outcome = act(b, "enter_long", 4)
    assert outcome.status == "ordered" and not outcome.reason, outcome
    assert own(a).quantity == first and own(b).quantity > 0
    assert assert_net_is_the_sum(paper, symbol) == first + own(b).quantity
    # a's second enter_long: already long (its own position), ignored; b's changes nothing.
    assert act(a, "enter_long", 5).status == "ignored"
    # b exits: only b's quantity is sold.
    assert act(b, "exit_long", 6).status == "ordered"
    assert own(b) is None and own(a).quantity == first
    assert assert_net_is_the_sum(paper, symbol) == first
    # b has no position any more: its exit is ignored and never touches a's.
    assert act(b, "exit_long", 7).reason == "no long position to exit"
    assert own(a).quantity == first


def test_the_bar_batch_lets_each_config_add_to_and_exit_only_its_own(symbol, paper, make_config):
    """Two configs on one account, the same bar: one exits while the other enters."""
    a = make_config(paper, name="a", params={"enter": 3, "exit": 6}, **SIZE)
    b = make_config(paper, name="b", params={"enter": 6}, **SIZE)
    store(symbol, [PRICE] * 8)
    tasks.evaluate("sim", "KRW-BTC", "1m", bar(3))
    a_qty = own(a).quantity
    tasks.evaluate("sim", "KRW-BTC", "1m", bar(6))
    assert own(a) is None and own(b).quantity > 0
    close = Order.objects.get(config=a, reduce_only=True)
    assert close.quantity == a_qty and close.status == Order.Status.FILLED
    assert assert_net_is_the_sum(paper, symbol) == own(b).quantity


# ------------------------------------------------------------------------ futures one-way


def test_perpetual_entry_opposite_another_configs_position_is_refused(
        perpetual, futures_account, make_config):
    a = perp_config(futures_account, make_config, perpetual, "a")
    b = perp_config(futures_account, make_config, perpetual, "b")
    store(perpetual, [100_000.0] * 12)
    assert act(a, "enter_long", 3, 100_000).status == "ordered"
    refused = act(b, "enter_short", 4, 100_000)
    assert refused.status == "rejected"
    assert "config a (id" in refused.reason and "one net position per symbol" in refused.reason
    assert own(b) is None
    # The same side nets with a's at the venue: allowed, each keeps its own quantity.
    assert act(b, "enter_long", 5, 100_000).status == "ordered"
    a_qty, b_qty = own(a).quantity, own(b).quantity
    assert assert_net_is_the_sum(futures_account, perpetual) == a_qty + b_qty
    # a reverses: its own long is closed (reduce-only, its quantity); the short is refused
    # because b is still long (at the venue it would net against b's position).
    outcome = act(a, "enter_short", 6, 100_000)
    assert outcome.status == "ordered" and "one net position per symbol" in outcome.reason
    assert own(a) is None and own(b).quantity == b_qty
    (close,) = Order.objects.filter(config=a, reduce_only=True)
    assert close.quantity == a_qty and close.reduce_only
    assert assert_net_is_the_sum(futures_account, perpetual) == b_qty
    # b exits; a may now go short.
    assert act(b, "exit_long", 7, 100_000).status == "ordered"
    assert act(a, "enter_short", 8, 100_000).status == "ordered"
    assert own(a).side == "short"
    assert assert_net_is_the_sum(futures_account, perpetual) == -own(a).quantity


def test_the_bar_batch_refuses_opposite_entries_of_two_configs_on_one_bar(
        perpetual, futures_account, make_config):
    """Neither has a position yet: the first entry of the bar counts for the second."""
    long = perp_config(futures_account, make_config, perpetual, "long", enter=3)
    short = perp_config(futures_account, make_config, perpetual, "short", short=3)
    store(perpetual, [100_000.0] * 5)
    tasks.evaluate("sim", "BTCUSDT", "1m", bar(3))
    outcomes = {s.config.name: s.reason["execution"]
                for s in Signal.objects.select_related("config")}
    assert outcomes["long"]["status"] == "ordered"
    assert outcomes["short"]["status"] == "rejected"
    assert "one net position per symbol" in outcomes["short"]["reason"]
    assert own(long) is not None and own(short) is None


def test_manual_orders_have_their_own_position_and_never_open_against_a_config(
        perpetual, futures_account, make_config):
    a = perp_config(futures_account, make_config, perpetual, "a")
    store(perpetual, [100_000.0] * 6)
    act(a, "enter_long", 3, 100_000)
    a_qty = own(a).quantity
    sell = services.place_manual_order(futures_account, perpetual, side="sell",
                                       quantity=Decimal("0.002"), last_price=Decimal("100000"))
    assert sell.status == Order.Status.REJECTED
    assert "config a (id" in sell.reject_reason and "close that position" in sell.reject_reason
    buy = services.place_manual_order(futures_account, perpetual, side="buy",
                                      quantity=Decimal("0.002"), last_price=Decimal("100000"))
    assert buy.status == Order.Status.FILLED
    manual = Position.objects.get(account=futures_account, config__isnull=True,
                                  closed_at__isnull=True)
    assert manual.quantity == Decimal("0.002") and own(a).quantity == a_qty
    # Selling the manual position back is a reduction of the manual bucket: allowed.
    back = services.place_manual_order(futures_account, perpetual, side="sell",
                                       quantity=Decimal("0.002"), last_price=Decimal("100000"))
    assert back.status == Order.Status.FILLED
    assert not Position.objects.filter(config__isnull=True, closed_at__isnull=True).exists()
    assert own(a).quantity == a_qty
    assert assert_net_is_the_sum(futures_account, perpetual) == a_qty


# ------------------------------------------------------------------------ other paths


def test_the_exit_guard_closes_only_the_config_whose_stop_was_reached(symbol, paper, make_config):
    stopped = make_config(paper, name="stopped", params={"enter": 3}, stop_loss_pct=Decimal("2"),
                          **SIZE)
    loose = make_config(paper, name="loose", params={"enter": 3}, **SIZE)
    store(symbol, [PRICE] * 5)
    tasks.evaluate("sim", "KRW-BTC", "1m", bar(3))
    loose_qty = own(loose).quantity
    report = exits.guard_symbol(symbol, PRICE * 0.97, bar(5))
    assert report.positions == 2 and report.reasons == ["stop_loss"]
    assert own(stopped) is None and own(loose).quantity == loose_qty
    close = Order.objects.get(config=stopped, reduce_only=True)
    assert close.reason == "stop_loss"
    assert assert_net_is_the_sum(paper, symbol) == loose_qty


def test_the_kill_switch_closes_the_selected_configs_positions_only(
        trader, symbol, paper, make_config):
    a = make_config(paper, name="a", params={"enter": 3}, **SIZE)
    b = make_config(paper, name="b", params={"enter": 3}, **SIZE)
    store(symbol, [PRICE] * 5)
    tasks.evaluate("sim", "KRW-BTC", "1m", bar(3))
    b_qty = own(b).quantity
    result = killswitch.stop_trading(user=trader, configs=[a.pk], close_positions=True)
    assert result.positions_closed == 1
    assert own(a) is None and own(b).quantity == b_qty
    result = killswitch.stop_trading(user=trader, configs="all", close_positions=True)
    assert result.positions_closed == 1 and own(b) is None
    assert assert_net_is_the_sum(paper, symbol) == 0


def test_paper_recovery_attributes_a_stale_entry_to_its_own_config(symbol, paper, make_config):
    a = make_config(paper, name="a", params={"enter": 99}, **SIZE)
    b = make_config(paper, name="b", params={"enter": 99}, **SIZE)
    store(symbol, [PRICE] * 6)
    act(a, "enter_long", 3)
    a_qty = own(a).quantity
    # b's entry is saved, then the process "dies" before sending it.
    saved = services.execute_signal(signal(b, "enter_long", 4), at_ms=bar(5), defer_send=True)
    assert saved.pending is not None and own(b) is None
    report = recovery.settle_stale_paper_orders(grace=0)
    assert report.filled == saved.orders
    assert own(b).quantity == Order.objects.get(pk=saved.orders[0]).filled_quantity
    assert own(a).quantity == a_qty
    assert assert_net_is_the_sum(paper, symbol) == a_qty + own(b).quantity


def test_one_open_position_per_account_config_and_symbol(symbol, paper, make_config):
    a = make_config(paper, name="a")
    b = make_config(paper, name="b")
    fields = dict(account=paper, symbol=symbol, side="long", quantity=Decimal("1"),
                  entry_price=Decimal("100"), opened_at=datetime.now(UTC))
    Position.objects.create(config=a, **fields)
    Position.objects.create(config=b, **fields)  # another config: its own position
    Position.objects.create(config=None, **fields)  # manual orders: their own bucket
    for config in (a, None):
        with pytest.raises(IntegrityError), transaction.atomic():
            Position.objects.create(config=config, **fields)
    assert net_quantity(paper.pk, symbol.pk) == Decimal("3")


# ------------------------------------------------------------------------ what is shown


def test_dashboard_api_and_chart_show_each_configs_position_and_the_net(
        client, trader, symbol, paper, make_config):
    from orders.models import ApiToken
    from tradesite.views import user_rows

    a = make_config(paper, name="rsi", params={"enter": 3}, **SIZE)
    b = make_config(paper, name="ensemble", params={"enter": 3}, **SIZE)
    store(symbol, [PRICE] * 5)
    tasks.evaluate("sim", "KRW-BTC", "1m", bar(3))
    total = own(a).quantity + own(b).quantity
    _, key = ApiToken.issue(trader, "test")
    body = client.get("/api/positions", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert sorted(p["config_name"] for p in body["positions"]) == ["ensemble", "rsi"]
    assert {p["config"] for p in body["positions"]} == {a.pk, b.pk}
    (net,) = body["net"]
    assert net["account"] == paper.pk and net["symbol"] == "sim:KRW-BTC"
    assert Decimal(net["net_quantity"]) == total and net["side"] == "long"
    assert net["positions"] == 2 and sorted(net["configs"]) == sorted([a.pk, b.pk])
    rows = user_rows(trader, symbol)
    assert len(rows["positions"]) == 2
    assert [Decimal(n["net_quantity"]) for n in rows["net"]] == [total]
    client.force_login(trader)
    page = client.get("/").content.decode()
    assert 'id="net-positions"' in page and "ensemble" in page and "rsi" in page


def test_net_of_long_and_short_configs_is_their_signed_sum(perpetual, futures_account, make_config):
    a = perp_config(futures_account, make_config, perpetual, "a")
    b = perp_config(futures_account, make_config, perpetual, "b")
    common = dict(account=futures_account, symbol=perpetual, entry_price=Decimal("100"),
                  opened_at=datetime.now(UTC))
    Position.objects.create(config=a, side="long", quantity=Decimal("0.005"), **common)
    Position.objects.create(config=b, side="short", quantity=Decimal("0.002"), **common)
    (net,) = net_positions(Position.objects.filter(account=futures_account).order_by("pk"))
    assert net.quantity == Decimal("0.003") and net.side == "long"
    assert net.parts == [(a.pk, Decimal("0.005")), (b.pk, Decimal("-0.002"))]


# ------------------------------------------------------------------------ reconciliation


def test_compare_nets_reports_each_symbol_that_differs():
    assert compare_nets({"BTCUSDT": Decimal("0.005")}, {"BTCUSDT": Decimal("0.005")}) == []
    assert compare_nets({"BTCUSDT": Decimal("0.005")}, {}) == [
        ("BTCUSDT", Decimal("0.005"), Decimal(0))]
    assert compare_nets({}, {"ETHUSDT": Decimal("-1")}) == [("ETHUSDT", Decimal(0), Decimal(-1))]


def test_reconciliation_compares_the_sum_over_configs_with_the_venues_net(
        trader, exchange, perpetual, make_config, settings):
    account = Account.objects.create(owner=trader, exchange=exchange, label="live",
                                     mode=Account.Mode.LIVE, quote_asset="USDT")
    a = perp_config(account, make_config, perpetual, "a")
    b = perp_config(account, make_config, perpetual, "b")
    common = dict(account=account, symbol=perpetual, entry_price=Decimal("100"),
                  opened_at=datetime.now(UTC))
    Position.objects.create(config=a, side="long", quantity=Decimal("0.003"), **common)
    Position.objects.create(config=b, side="long", quantity=Decimal("0.002"), **common)
    Position.objects.create(config=None, side="short", quantity=Decimal("0.001"), **common)

    class Venue:
        def __init__(self, quantity):
            self.quantity = quantity

        def positions(self):
            return [PositionInfo(symbol="BTCUSDT", side="long", quantity=self.quantity,
                                 entry_price=Decimal("100"), leverage=5, margin_type="isolated",
                                 unrealized_pnl=Decimal(0))]

    assert reconcile_net_positions(broker_factory=lambda _: Venue(Decimal("0.004"))) == []
    (mismatch,) = reconcile_net_positions(broker_factory=lambda _: Venue(Decimal("0.003")))
    assert (mismatch.ours, mismatch.venue) == (Decimal("0.004"), Decimal("0.003"))
    assert "net 0.004 here, 0.003 at the venue" in str(mismatch)


def test_funding_is_booked_on_each_configs_position_and_sums_to_the_nets(
        perpetual, futures_account, make_config):
    from orders import funding
    from orders.models import FundingPayment
    from orders.tests.test_mark_price import HOUR, at_ms, set_mark

    a = perp_config(futures_account, make_config, perpetual, "a")
    b = perp_config(futures_account, make_config, perpetual, "b", enter=3)
    store(perpetual, [100_000.0] * 5)
    act(a, "enter_long", 3, 100_000)
    tasks.evaluate("sim", "BTCUSDT", "1m", bar(3))
    funding_time = T0 + 8 * HOUR
    set_mark(perpetual, 100_500, rate="0.0001", next_funding_ms=funding_time + 8 * HOUR,
             last=(funding_time, "0.0003", 100_400))
    before = Balance.objects.get(account=futures_account, asset="USDT").free
    assert funding.apply_funding(now=at_ms(funding_time + HOUR)) == 2
    paid = {p.position.config_id: p.amount for p in FundingPayment.objects.all()}
    for config in (a, b):
        assert paid[config.pk] == -(own(config).quantity * Decimal("100400") * Decimal("0.0003"))
    net = net_quantity(futures_account.pk, perpetual.pk)
    assert sum(paid.values()) == -(net * Decimal("100400") * Decimal("0.0003"))
    free = Balance.objects.get(account=futures_account, asset="USDT").free
    assert free == before + sum(paid.values())


def test_a_config_with_an_open_position_cannot_be_deleted(symbol, paper, make_config):
    from django.db.models import ProtectedError

    a = make_config(paper, name="a")
    fields = dict(account=paper, symbol=symbol, side="long", quantity=Decimal("1"),
                  entry_price=Decimal("100"), opened_at=datetime.now(UTC))
    Position.objects.create(config=None, **fields)  # the account's manual position
    mine = Position.objects.create(config=a, **fields)
    with pytest.raises(ProtectedError, match=r"Position\.config"):
        a.delete()
    Position.objects.filter(pk=mine.pk).update(closed_at=datetime.now(UTC), quantity=0)
    a.delete()  # closed: its history stays, without the config
    mine.refresh_from_db()
    assert mine.config_id is None and mine.closed_at is not None


def test_a_manual_spot_sell_leaves_the_configs_coins_so_the_kill_switch_can_close_them(
        trader, symbol, paper, make_config):
    """Found by the API's property test: a manual sell of the coins a config's position held
    left that position without coins, and the kill switch closing it then failed (negative
    balance) instead of stopping trading."""
    a = make_config(paper, name="a", params={"enter": 3}, **SIZE)
    store(symbol, [PRICE] * 5)
    tasks.evaluate("sim", "KRW-BTC", "1m", bar(3))
    held = own(a).quantity
    Balance.objects.filter(account=paper, asset="BTC").update(free=held + Decimal("0.001"))
    too_much = services.place_manual_order(paper, symbol, side="sell", quantity=held,
                                           last_price=Decimal(str(PRICE)))
    assert too_much.status == Order.Status.REJECTED
    assert "position(s) of a" in too_much.reject_reason
    assert "at most 0.001 BTC" in too_much.reject_reason
    spare = services.place_manual_order(paper, symbol, side="sell", quantity=Decimal("0.001"),
                                        last_price=Decimal(str(PRICE)))
    assert spare.status == Order.Status.FILLED
    result = killswitch.stop_trading(user=trader, configs=[a.pk], close_positions=True)
    assert own(a) is None and result.positions_closed == 1


def test_a_position_that_cannot_close_does_not_stop_the_kill_switch_closing_the_others(
        trader, symbol, paper, make_config, monkeypatch):
    a = make_config(paper, name="a", params={"enter": 3}, **SIZE)
    b = make_config(paper, name="b", params={"enter": 3}, **SIZE)
    store(symbol, [PRICE] * 5)
    tasks.evaluate("sim", "KRW-BTC", "1m", bar(3))
    broken = own(a).pk
    real = killswitch.close_position

    def close(position, *args, **kwargs):
        if position.pk == broken:
            raise ValueError("paper balance of BTC would go negative")
        return real(position, *args, **kwargs)

    monkeypatch.setattr(killswitch, "close_position", close)
    result = killswitch.stop_trading(user=trader, configs=[a.pk, b.pk], close_positions=True)
    assert own(b) is None and own(a) is not None and result.positions_closed == 1
    assert any("would go negative" in error for error in result.errors)
    assert not type(a).objects.filter(pk__in=[a.pk, b.pk], is_active=True).exists()
