"""A bar's signals executed as one batch (``services.execute_signals``): every order saved in
one transaction, one config's rejection or error never costing the others theirs, a second
evaluation of the bar (also a concurrent one) ordering nothing new, and a query count that
does not grow with the number of configs."""

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from alerts import events as alert_events
from markets.models import Balance
from orders import evaluation, services, tasks
from orders.models import Order, Position
from orders.services import batch, ledger
from orders.tests.conftest import MINUTE, T0, fund, store
from strategies.models import Signal, StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0
BAR = T0 + 3 * MINUTE  # the conftest's script strategy enters long on minute 3


def execution_at(config, minute):
    bar = datetime.fromtimestamp((T0 + minute * MINUTE) / 1000, tz=UTC)
    return Signal.objects.get(config=config, bar_time=bar).reason["execution"]


def execution(config):
    return execution_at(config, 3)


@pytest.fixture
def world(symbol, make_trader, make_account, make_config):
    """Alice with two funded accounts (two configs on the first), Bob with one."""
    alice, bob = make_trader("alice"), make_trader("bob")
    accounts = {
        "alice-1": make_account(alice, label="alice-1", quote_asset="KRW"),
        "alice-2": make_account(alice, label="alice-2", quote_asset="KRW"),
        "bob": make_account(bob, label="bob", quote_asset="KRW"),
    }
    for account in accounts.values():
        fund(account, "KRW", "1000000")
    configs = {
        "a1": make_config(accounts["alice-1"], name="a1"),
        "a1-second": make_config(accounts["alice-1"], name="a1-second"),
        "a2": make_config(accounts["alice-2"], name="a2"),
        "bob": make_config(accounts["bob"], name="bob"),
    }
    store(symbol, [PRICE] * 8)
    return accounts, configs


def test_one_rejected_and_one_failing_config_leave_the_others_orders_intact(
    world, make_account, make_config, make_trader
):
    _, configs = world
    carol = make_trader("carol")
    broke = make_account(carol, label="carol-broke", quote_asset="KRW")
    fund(broke, "KRW", "1000")  # below Upbit's 5,000 KRW minimum
    configs["rejected"] = make_config(broke, name="rejected")
    failing = make_account(carol, label="carol-failing", quote_asset="KRW")
    fund(failing, "KRW", "1000000")
    configs["failing"] = make_config(failing, name="failing")
    # Edited outside the form: its sizing cannot be read, so deciding its entry raises.
    StrategyConfig.objects.filter(pk=configs["failing"].pk).update(sizing_method="nonsense")

    report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", BAR)

    assert report.signals_created == 6 and report.errors == 1
    assert report.executions == {"ordered": 3, "rejected": 2}
    for name in ("a1", "a2", "bob"):
        outcome = execution(configs[name])
        order = Order.objects.get(config=configs[name])
        assert outcome == {"status": "ordered", "reason": "", "orders": [order.pk]}
        assert order.status == Order.Status.FILLED and order.signal.config_id == configs[name].pk
        assert Position.objects.filter(config=configs[name], closed_at__isnull=True).count() == 1
    # The second config on alice-1 waits only for its own orders, but its balance gate sees
    # the whole account, as if run one after the other: the first entry spent the balance.
    second = execution(configs["a1-second"])
    assert second["status"] == "rejected" and "insufficient balance" in second["reason"]
    rejected = execution(configs["rejected"])
    assert rejected["status"] == "rejected"
    assert "below the venue minimum 5000 KRW" in rejected["reason"]
    error = execution(configs["failing"])
    assert error["status"] == "error" and "nonsense" in error["reason"]
    assert not Order.objects.filter(config__in=[configs["rejected"], configs["failing"]]).exists()
    # Paper reservations were released by the fills: nothing stays locked.
    assert not Balance.objects.filter(locked__gt=0).exists()
    assert Balance.objects.get(account=failing, asset="KRW").free == Decimal("1000000")


def test_evaluating_a_bar_again_orders_nothing_new(world):
    tasks.evaluate("sim", "KRW-BTC", "1m", BAR)
    again = tasks.evaluate("sim", "KRW-BTC", "1m", BAR)
    assert again["signals_created"] == 0 and again["signals_existing"] == 4
    assert again["executions"] == {} and again["errors"] == 0
    assert Signal.objects.count() == 4 and Order.objects.count() == 3


def test_a_signal_stored_by_a_run_that_stopped_is_acted_on_by_the_next(world, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(services, "execute_signals", crash)
    report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", BAR)
    assert report.signals_created == 4 and report.errors == 4 and not Order.objects.exists()
    monkeypatch.undo()
    report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", BAR)
    assert report.signals_existing == 4 and report.executions == {"ordered": 3, "rejected": 1}
    assert Order.objects.count() == 3


def test_a_failed_batch_write_keeps_nothing_and_each_signal_runs_on_its_own(world, monkeypatch):
    _, configs = world
    real = ledger._update_rows
    calls = []

    def fail_once(model, rows, fields):
        calls.append(model)
        if len(calls) == 1:
            raise DatabaseError("disk I/O error")
        return real(model, rows, fields)

    monkeypatch.setattr(batch, "_update_rows", fail_once)  # where batch looks it up
    report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", BAR)
    assert report.executions == {"ordered": 3, "rejected": 1} and report.errors == 0
    assert Order.objects.count() == 3  # no order of the failed batch survived
    for name in ("a1", "a2", "bob"):
        order = Order.objects.get(config=configs[name])
        assert execution(configs[name])["orders"] == [order.pk]
        assert order.status == Order.Status.FILLED
    assert not Balance.objects.filter(locked__gt=0).exists()


def test_exits_of_a_bar_are_saved_together_and_filled(world):
    _, configs = world
    StrategyConfig.objects.filter(pk__in=[c.pk for c in configs.values()]).update(
        params={"enter": 3, "exit": 5}
    )
    tasks.evaluate("sim", "KRW-BTC", "1m", BAR)
    report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", T0 + 5 * MINUTE)
    # alice-1 holds one position (a1's entry; a1-second's was rejected). The first of its two
    # exit signals closes it; the second runs after that close, as if one by one, and finds
    # no position to exit.
    assert report.executions == {"ordered": 3, "ignored": 1} and report.errors == 0
    outcomes = sorted(execution_at(c, 5)["status"] for c in (configs["a1"], configs["a1-second"]))
    assert outcomes == ["ignored", "ordered"]
    closes = Order.objects.filter(reduce_only=True)
    assert closes.count() == 3 and all(o.status == Order.Status.FILLED for o in closes)
    assert not Position.objects.filter(closed_at__isnull=True).exists()
    assert {p.close_reason for p in Position.objects.all()} == {"signal"}


def _queries_to_save(symbol, make_account, make_trader, make_config, n):
    user = make_trader(f"user{n}")
    for k in range(n):
        account = make_account(user, label=f"{n}-{k}", quote_asset="KRW")
        fund(account, "KRW", "1000000")
        make_config(account, name=f"{n}-{k}")
    real = services.execute_signals
    captured = {}

    def counted(*args, **kwargs):
        with CaptureQueriesContext(connection) as queries:
            out = real(*args, **kwargs)
        captured["n"] = len(queries)
        return out

    services.execute_signals = counted
    try:
        report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", BAR)
    finally:
        services.execute_signals = real
    StrategyConfig.objects.filter(owner=user).update(is_active=False)
    Signal.objects.all().delete()
    assert report.executions == {"ordered": n}
    return captured["n"]


def test_saving_a_bars_orders_takes_the_same_queries_for_3_or_12_configs(
    symbol, make_account, make_trader, make_config
):
    store(symbol, [PRICE] * 8)
    few = _queries_to_save(symbol, make_account, make_trader, make_config, 3)
    many = _queries_to_save(symbol, make_account, make_trader, make_config, 12)
    assert few == many and few < 25


def _queries_per_bar(symbol, make_account, make_trader, make_config, n):
    """Every query of evaluating the entry bar (minute 3) and the exit bar (minute 5) of ``n``
    paper configs, each on its own account: ``(entry bar, exit bar)``, paper fills included."""
    user = make_trader(f"fills{n}")
    for k in range(n):
        account = make_account(user, label=f"fills{n}-{k}", quote_asset="KRW")
        fund(account, "KRW", "1000000")
        make_config(account, name=f"fills{n}-{k}", params={"enter": 3, "exit": 5})
    counts = []
    for minute, done in ((3, {"ordered": n}), (5, {"ordered": n})):
        with CaptureQueriesContext(connection) as queries:
            report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", T0 + minute * MINUTE)
        assert report.executions == done and report.errors == 0
        counts.append(len(queries))
    assert not Position.objects.filter(account__owner=user, closed_at__isnull=True).exists()
    StrategyConfig.objects.filter(owner=user).update(is_active=False)
    return counts


def test_a_paper_order_costs_a_bounded_number_of_queries_from_bar_to_fill(
    symbol, make_account, make_trader, make_config, monkeypatch
):
    """The bar's decisions take the same queries for any number of configs (above); what grows
    with them is each paper order's fill (its own locked transaction: account, order, fills,
    balances, position). Pinned per config, so a query per order cannot creep back: an entry
    (its first, which creates the base asset's balance row) at most 18, an exit at most 12
    (20.5 and 18 before the ledger read an order's balance rows together and reused the
    order's account, venue, symbol and config)."""
    store(symbol, [PRICE] * 8)
    # The alerts' per-process rule index is read again every 2 s (3 queries) wherever a
    # push happens to fall: read it now and stop its clock, so only trading is counted.
    monkeypatch.setattr(alert_events, "_clock", lambda: 0.0)
    monkeypatch.setitem(alert_events._index, "expires", 0.0)
    alert_events.rule_kinds(0)
    few = _queries_per_bar(symbol, make_account, make_trader, make_config, 2)
    many = _queries_per_bar(symbol, make_account, make_trader, make_config, 8)
    entry, exit_ = ((b - a) / 6 for a, b in zip(few, many, strict=True))
    assert entry <= 18 and exit_ <= 12, (few, many)


def test_two_concurrent_evaluations_of_a_bar_order_once_per_config(world):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers; the row locks are PostgreSQL's to prove")
    _, configs = world
    start = threading.Barrier(2)
    reports, failures = [], []

    def run():
        from django.db import connections

        try:
            start.wait()
            reports.append(evaluation.evaluate_bar("sim", "KRW-BTC", "1m", BAR))
        except Exception as exc:  # reported below, on the test's thread
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and len(reports) == 2
    assert sum(r.errors for r in reports) == 0
    assert Signal.objects.count() == 4
    assert Order.objects.count() == 3
    for name in ("a1", "a2", "bob"):
        assert Order.objects.filter(config=configs[name]).count() == 1
    ordered = sum(r.executions.get("ordered", 0) for r in reports)
    assert ordered in (3, 6)  # the second run returns the stored outcomes, or saw none new


def test_a_reversal_in_a_batch_closes_then_enters_after_the_commit(
    exchange, make_trader, make_account, make_config
):
    from markets.models import Symbol

    perpetual = Symbol.objects.create(
        exchange=exchange, code="BTCUSDT", base="BTC", quote="USDT",
        market_type=Symbol.MarketType.PERPETUAL, tick_size=Decimal("0.1"),
        step_size=Decimal("0.001"), min_notional=Decimal("5"), max_leverage=20,
    )
    dave = make_trader("dave")
    accounts = [make_account(dave, label=f"futures-{k}", quote_asset="USDT") for k in range(2)]
    for account in accounts:
        fund(account, "USDT", "10000")
    reverses = make_config(
        accounts[0], name="reverses", symbol=perpetual, leverage=2,
        params={"enter": 3, "short": 5},
    )
    exits = make_config(
        accounts[1], name="exits", symbol=perpetual, leverage=2, params={"enter": 3, "exit": 5}
    )
    store(perpetual, [100_000.0] * 8)
    evaluation.evaluate_bar("sim", "BTCUSDT", "1m", BAR)
    report = evaluation.evaluate_bar("sim", "BTCUSDT", "1m", T0 + 5 * MINUTE)

    assert report.executions == {"ordered": 2} and report.errors == 0
    reversal = execution_at(reverses, 5)
    assert reversal["status"] == "ordered" and len(reversal["orders"]) == 2
    close, entry = Order.objects.filter(pk__in=reversal["orders"]).order_by("pk")
    assert close.reduce_only and close.reason == "reverse" and entry.reason == "entry"
    assert close.status == entry.status == Order.Status.FILLED
    short = Position.objects.get(config=reverses, closed_at__isnull=True)
    assert short.side == Position.PositionSide.SHORT
    assert execution_at(exits, 5)["status"] == "ordered"
    assert not Position.objects.filter(config=exits, closed_at__isnull=True).exists()
    assert not Balance.objects.filter(locked__gt=0).exists()
