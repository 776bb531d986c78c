"""A bar's signals at once (:func:`execute_signals`): every order of the bar decided in
Python on facts read once per account, then saved in one transaction; each signal's sending is
left to its ``pending()`` step (``orders.services.execution``)."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from markets.models import Account, Balance
from orders import risk
from orders.brokers import Broker
from orders.brokers.base import default_costs
from orders.models import EquitySnapshot, Order, Position, Side
from orders.push import batched
from orders.services.common import (
    ZERO,
    _side_int,
    limit_price,
    ms_to_dt,
    now_ms,
)
from orders.services.entries import (
    Rejected,
    _atr,
    _decide_entry,
)
from orders.services.execution import (
    Execution,
    _plan,
    _signal_gate,
    _signal_size,
    broker_state,
    execute_signal,
    finish_close,
    finish_execution,
    finish_reversal,
)
from orders.services.ledger import (
    _order_row,
    _update_rows,
)
from strategies import trade_math
from strategies.models import Signal, StrategyConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Book:
    """One account's state while a bar's batch is decided: read once under the account's row
    lock, then kept current in memory as each of the bar's orders is decided."""

    account: Account
    broker: Broker | None
    unavailable: str
    balances: dict[str, Balance] = dataclasses.field(default_factory=dict)
    equity: Decimal = ZERO
    day_start: Decimal | None = None
    #: (symbol id, config id or None) with an entry (not reduce-only) / a reduce-only order
    #: open: each config waits only for its own orders.
    open_entry: set[tuple[int, int | None]] = dataclasses.field(default_factory=set)
    open_close: set[tuple[int, int | None]] = dataclasses.field(default_factory=set)
    #: {symbol id: [(config id or None, +1 long / -1 short)]}: the open positions and entry
    #: orders of every config on the symbol (``orders.positions.opposite_reason``).
    sides: dict[int, list] = dataclasses.field(default_factory=dict)
    changed: dict[str, Balance] = dataclasses.field(default_factory=dict)

    def free(self, asset: str) -> Decimal:
        row = self.balances.get(asset)
        return row.free if row is not None else ZERO

    def reserve(self, asset: str, amount: Decimal) -> None:
        """``_move(asset, -amount, +amount)`` in memory; written with the batch."""
        row = self.balances[asset]
        free, locked = row.free - amount, row.locked + amount
        if free < 0:
            raise ValueError(f"paper balance of {asset} would go negative (free {free})")
        row.free, row.locked = free, locked
        self.changed[asset] = row


def _brokers(configs, at_ms: int) -> dict[int, tuple[Broker | None, str]]:
    """``{account id: (broker, why it cannot trade or "")}``, before any transaction: a live
    account's balances are fetched from its venue here (network), as in execute_signal."""
    out: dict[int, tuple[Broker | None, str]] = {}
    costs = default_costs()  # read from settings once per bar, not once per account
    for config in configs:
        if config.account_id not in out:
            out[config.account_id] = broker_state(config.account, at_ms, costs=costs)
    return out


def _day_starts(books: list[_Book], at_ms: int) -> None:
    """:func:`day_start_equity` for every book in two queries: the day's first snapshot per
    account (one query), and one bulk insert of a snapshot for the accounts without one (the
    day's reference is then the equity now, as in ``day_start_equity``)."""
    start, end = risk.day_bounds_ms(at_ms, settings.TIME_ZONE)
    first = EquitySnapshot.objects.filter(
        account=OuterRef("pk"), ts__gte=ms_to_dt(start), ts__lt=ms_to_dt(end)
    ).order_by("ts")
    found = dict(
        Account.objects.filter(pk__in=[b.account.pk for b in books])
        .annotate(day_start=Subquery(first.values("equity")[:1]))
        .values_list("pk", "day_start")
    )
    ts = ms_to_dt(at_ms).replace(microsecond=0)
    missing = []
    for book in books:
        book.day_start = found.get(book.account.pk)
        if book.day_start is None:
            book.day_start = book.equity
            missing.append(
                EquitySnapshot(
                    account=book.account, ts=ts, equity=book.equity,
                    cash=book.free(book.account.quote_asset),
                )
            )
    if missing:
        # A snapshot stored at the same second meanwhile wins (equity of the same moment).
        EquitySnapshot.objects.bulk_create(missing, ignore_conflicts=True)


@batched
def execute_signals(items, *, at_ms: int | None = None) -> list[Execution]:
    """Act on a bar's new signals at once: :func:`execute_signal`'s rules, with every order
    of the bar saved in one transaction. ``items`` is a list of ``(signal, config)`` whose
    configs have ``account`` and ``symbol__exchange`` loaded; each signal is acted on at its
    close, time ``at_ms`` (default: now). Returns one Execution per item, in order.

    In one transaction: the accounts, signals, open positions and (for entries) balances
    are locked, each kind in one query in primary-key order (two workers never deadlock);
    valuations, day-start equities and open orders are read for all accounts at once; each
    signal's gates, plan and size are decided in Python (``orders.risk``,
    ``strategies.sizing``), updating an in-memory book per account, so a second config on
    the same account sees the first one's order and reserve; then the orders, the reserves
    and every signal's outcome are written in bulk. A config whose decision raises is
    recorded as ``error`` on its signal and the others go on; a rejection is recorded with
    its reason. Nothing is sent inside the transaction: call each item's ``pending()``, in
    order, after the commit: it sends the saved order and returns the final Execution. A
    reversal closes and enters there (the entry needs the close's fill), and a signal on an
    account and symbol that an earlier signal of the batch closes is ``queued``: it goes
    through :func:`execute_signal` after that close, so it sees the position as one-by-one
    execution would. A signal already acted on returns its stored outcome. If the batch's
    writes fail, nothing of it is kept and each signal goes through :func:`execute_signal`
    on its own."""
    at_ms = now_ms() if at_ms is None else at_ms
    items = [
        (
            signal,
            config if config is not None and config.pk == signal.config_id
            else StrategyConfig.objects.select_related(
                "account__exchange", "symbol__exchange"
            ).get(pk=signal.config_id),
        )
        for signal, config in items
    ]
    if not items:
        return []
    brokers = _brokers([config for _, config in items], at_ms)
    try:
        with transaction.atomic():
            results = _decide_and_save(items, brokers, at_ms)
    except DatabaseError:
        log.exception("execute_signals: the batch failed; executing its signals one by one")
        results = []
        for signal, config in items:
            try:
                results.append(
                    execute_signal(signal, config=config, at_ms=at_ms, defer_send=True)
                )
            except Exception as exc:
                log.exception("execute: signal %s of config %s failed", signal.pk, config.pk)
                results.append(Execution("error", f"execution failed: {exc}"[:500]))
    return results


def _decide_and_save(items, brokers, at_ms: int) -> list[Execution]:
    """The transaction of :func:`execute_signals`."""
    account_ids = sorted({config.account_id for _, config in items})
    symbol_ids = sorted({config.symbol_id for _, config in items})
    accounts = {
        a.pk: a
        for a in Account.objects.select_for_update(of=("self",))
        .filter(pk__in=account_ids)
        .order_by("pk")
    }
    stored = dict(  # {signal id: its reason}, re-read under the lock
        Signal.objects.select_for_update(of=("self",))
        .filter(pk__in=[signal.pk for signal, _ in items])
        .order_by("pk")
        .values_list("pk", "reason")
    )
    positions = {  # every config's own open position (and the manual ones: config None)
        (p.account_id, p.symbol_id, p.config_id): p
        for p in Position.objects.select_for_update(of=("self",))
        .filter(account_id__in=account_ids, symbol_id__in=symbol_ids, closed_at__isnull=True)
        .order_by("pk")
    }
    books = {pk: _Book(account, *brokers[pk]) for pk, account in accounts.items()}
    for (account_id, symbol_id, config_id), p in positions.items():
        books[account_id].sides.setdefault(symbol_id, []).append((config_id, _side_int(p)))
    results: list[Execution | None] = [None] * len(items)
    marks: dict[int, Signal] = {}

    def mark(i, signal, result):
        results[i] = result
        signal.reason = {**(signal.reason or {}), "execution": result.as_dict()}
        marks[signal.pk] = signal

    # 1. What each signal means: its stored outcome, a gate, an ignored plan, or an order.
    planned = []
    after: dict[int, Callable] = {}
    #: (account, symbol, config) with a close or reversal in this batch: a later signal of
    #: the config must see the position that close leaves, so it runs on its own after it.
    serial: set[tuple[int, int, int]] = set()
    for i, (signal, config) in enumerate(items):
        if signal.pk not in stored:
            results[i] = Execution("error", "the signal was deleted")
            continue
        signal.reason = stored[signal.pk]
        recorded = Execution.recorded(signal)
        if recorded is not None:
            results[i] = recorded
            continue
        book = books[config.account_id]
        config.account = book.account
        if book.account.exchange_id == config.symbol.exchange_id:
            # The same row as the symbol's (loaded with it): the order's log line and
            # payloads name the account's venue without a query per order.
            book.account.exchange = config.symbol.exchange
        if (book.account.pk, config.symbol_id, config.pk) in serial:
            results[i] = Execution("queued", "after an earlier close on the same position")
            after[i] = functools.partial(
                execute_signal, signal, config=config, at_ms=at_ms, broker=book.broker
            )
            continue
        gate = _signal_gate(book.account, config, book.unavailable)
        if gate is not None:
            mark(i, signal, gate)
            continue
        position = positions.get((book.account.pk, config.symbol_id, config.pk))
        plan = _plan(signal, config, position)
        if plan.ignored:
            mark(i, signal, Execution("ignored", plan.ignored))
            continue
        if plan.close:
            serial.add((book.account.pk, config.symbol_id, config.pk))
        planned.append((i, signal, config, book, position, plan))
    # 2. The facts, for all accounts at once.
    entering = {
        book.account.pk: book
        for _, _, _, book, _, plan in planned
        if plan.open_side and not plan.close
    }
    if entering:
        from orders.equity import value_accounts

        for row in (
            Balance.objects.select_for_update(of=("self",))
            .filter(account_id__in=sorted(entering))
            .order_by("pk")
        ):
            entering[row.account_id].balances[row.asset] = row
        valuations = value_accounts(
            [b.account for b in entering.values()],
            {pk: list(b.balances.values()) for pk, b in entering.items()},
        )
        for pk, book in entering.items():
            book.equity = valuations[pk].equity
        _day_starts(list(entering.values()), at_ms)
    if planned:
        for account_id, symbol_id, config_id, side, reduce_only in Order.objects.filter(
            account_id__in=account_ids, symbol_id__in=symbol_ids,
            status__in=Order.OPEN_STATUSES,
            # A venue stop is not a close in flight: finish_close cancels it before sending.
            trigger_price__isnull=True,
        ).values_list("account_id", "symbol_id", "config_id", "side", "reduce_only"):
            book = books[account_id]
            (book.open_close if reduce_only else book.open_entry).add((symbol_id, config_id))
            if not reduce_only:
                book.sides.setdefault(symbol_id, []).append(
                    (config_id, trade_math.BUY if side == Side.BUY else trade_math.SELL)
                )
    # 3. Each signal's decision, in Python; its order built, not saved yet.
    atr_cache: dict = {}
    new_orders: list[tuple[int, Order]] = []
    for i, signal, config, book, position, plan in planned:
        last_price = signal.price
        try:
            if plan.close and plan.open_side:
                mark(i, signal, Execution("started"))
                after[i] = functools.partial(
                    finish_reversal, signal, config, plan, position, last_price, at_ms,
                    book.broker,
                )
                continue
            if plan.close:
                if position.quantity <= 0 or (config.symbol_id, config.pk) in book.open_close:
                    mark(i, signal, Execution("ordered", "", []))  # a close is in flight
                    continue
                side = Side.SELL if position.side == Position.PositionSide.LONG else Side.BUY
                order = _order_row(
                    book.account, config.symbol, side=side, quantity=position.quantity,
                    price=limit_price(config.symbol, side, last_price, book.broker.costs),
                    reason=plan.close, signal=signal, reduce_only=True,
                    config=config,  # its own position: the fill is attributed to it
                )
                book.open_close.add((config.symbol_id, config.pk))
                new_orders.append((i, order))
                after[i] = functools.partial(
                    finish_close, signal, order, book.broker, last_price, at_ms
                )
                continue
            size = _signal_size(signal)
            if not size > 0:
                mark(i, signal, Execution("ignored", "signal size is 0"))
                continue

            def atr(params, config=config):
                key = (config.symbol_id, config.timeframe, getattr(params, "atr_period", None))
                if key not in atr_cache:
                    atr_cache[key] = _atr(config, params, at_ms)
                return atr_cache[key]

            try:
                qty, price, reserve = _decide_entry(
                    book.account, config, plan.open_side, last_price, size,
                    book.broker.costs, book.broker.live,
                    equity=book.equity,
                    day_start=lambda book=book: book.day_start,
                    open_order=lambda book=book, config=config: (
                        (config.symbol_id, config.pk) in book.open_entry
                    ),
                    available=lambda book=book, config=config: book.free(config.symbol.quote),
                    atr=atr,
                    others=lambda book=book, config=config: [
                        item for item in book.sides.get(config.symbol_id, [])
                        if item[0] != config.pk
                    ],
                )
            except Rejected as exc:
                mark(i, signal, Execution("rejected", str(exc)))
                continue
            quote = config.symbol.quote
            order = _order_row(
                book.account, config.symbol,
                side=Side.BUY if plan.open_side == trade_math.LONG else Side.SELL,
                quantity=qty, price=price, reason=("add" if plan.add else "entry"),
                config=config, signal=signal, reserve=reserve, reserve_asset=quote,
            )
            if reserve:
                book.reserve(quote, reserve)
            book.open_entry.add((config.symbol_id, config.pk))
            book.sides.setdefault(config.symbol_id, []).append((config.pk, plan.open_side))
            new_orders.append((i, order))
            after[i] = functools.partial(
                finish_execution, signal, order, book.broker, last_price, at_ms
            )
        except Exception as exc:
            log.exception("execute: signal %s of config %s failed", signal.pk, config.pk)
            after.pop(i, None)
            mark(i, signal, Execution("error", f"execution failed: {exc}"[:500]))
    # 4. Writes: the orders, the reserves, every outcome.
    if new_orders:
        Order.objects.bulk_create([order for _, order in new_orders])
        for i, order in new_orders:
            if order.pk is None:  # every supported database returns the ids
                raise DatabaseError("bulk insert of orders returned no ids")
            mark(i, items[i][0], Execution("ordered", "", [order.pk]))
    changed = [row for book in books.values() for row in book.changed.values()]
    if changed:
        now = timezone.now()
        for row in changed:
            row.updated_at = now
        _update_rows(Balance, changed, ["free", "locked", "updated_at"])
    if marks:
        _update_rows(Signal, list(marks.values()), ["reason"])
    for i, fn in after.items():
        results[i].pending = fn
    return results
