"""The signal path for one signal: close, reverse, enter or add as the backtester would
(:func:`execute_signal`), and the steps a batch leaves for after its commit (``finish_*``).

A bar's signals go through ``orders.services.batch.execute_signals``, which decides them all in
one transaction and hands each its ``pending`` step from here; one signal on its own (the tests,
the parity check, a queued signal, a batch that failed to write) runs :func:`execute_signal`.
Both share the gates (:func:`broker_state`, :func:`_signal_gate`), the plan
(``orders.risk.plan_action``), the sizing (``orders.services.entries``) and the closing path."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from markets.exchanges.errors import ExchangeError
from markets.models import Account, Symbol
from orders import risk, venue_stops
from orders.brokers import Broker, BrokerUnavailable, broker_for
from orders.models import Order, Position, Side
from orders.push import batched
from orders.services.closing import close_position
from orders.services.common import (
    _open_position,
    _side_int,
    now_ms,
)
from orders.services.dispatch import send_order
from orders.services.entries import (
    Rejected,
    _entry_order,
)
from orders.services.ledger import (
    _cancel_here,
    _new_order,
    sync_balances,
)
from strategies import trade_math
from strategies.models import Signal, StrategyConfig


@dataclasses.dataclass
class Execution:
    """What became of a signal: ``ordered`` (order ids), ``rejected`` (reason), ``ignored``."""

    status: str
    reason: str = ""
    orders: list[int] = dataclasses.field(default_factory=list)
    #: With ``defer_send`` / :func:`execute_signals`: what is left to do after the commit
    #: (send the saved order, or a reversal's close then entry); call it with no arguments.
    #: It returns the final Execution and records it on the signal.
    pending: Callable[[], Execution] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def recorded(cls, signal: Signal) -> Execution | None:
        """The outcome already recorded on ``signal`` (a signal is acted on once), or None."""
        done = (signal.reason or {}).get("execution")
        if not done:
            return None
        return cls(done["status"], done.get("reason", ""), done.get("orders", []))

    def as_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "orders": list(self.orders)}


@batched
def execute_signal(
    signal: Signal,
    *,
    config: StrategyConfig | None = None,
    at_ms: int | None = None,
    last_price: Decimal | None = None,
    broker: Broker | None = None,
    defer_send: bool = False,
) -> Execution:
    """Act on a stored signal once: close, reverse, enter or add as the backtester would, at
    ``last_price`` (default: the signal's close) and time ``at_ms`` (default: now). A signal
    already acted on returns its stored outcome, so evaluating a bar twice orders once.

    ``defer_send=True`` saves a plain entry or add without sending it: call the result's
    ``pending()`` to send it (:func:`finish_execution`). Closes and reversals are always
    carried out at once. A bar's signals go through :func:`execute_signals` instead, which
    saves all their orders in one transaction.

    A plain entry or add is decided and saved in one transaction with the account, the signal
    and the position locked: the signal's outcome and its Order are written together."""
    at_ms = now_ms() if at_ms is None else at_ms
    if config is None or config.pk != signal.config_id:
        config = StrategyConfig.objects.select_related(
            "account__exchange", "symbol__exchange"
        ).get(pk=signal.config_id)
    last_price = signal.price if last_price is None else last_price
    broker, unavailable = broker_state(config.account, at_ms, broker=broker)
    try:
        with transaction.atomic():
            account = Account.objects.select_for_update(of=("self",)).get(pk=config.account_id)
            config.account = account
            signal = Signal.objects.select_for_update(of=("self",)).get(pk=signal.pk)
            recorded = Execution.recorded(signal)
            if recorded is not None:
                return recorded
            result = _signal_gate(account, config, unavailable)
            if result is not None:
                _mark(signal, result)
                return result
            position = _open_position(
                account.pk, config.symbol_id, config_id=config.pk, lock=True
            )
            plan = _plan(signal, config, position)
            if plan.ignored:
                result = Execution("ignored", plan.ignored)
                _mark(signal, result)
                return result
            entry = None
            if not plan.close:
                entry, result = _entry_in_transaction(
                    account, config, signal, plan, position, last_price, at_ms, broker, []
                )
                if entry is None:
                    _mark(signal, result)
                    return result
            _mark(signal, Execution("ordered", "", [entry.pk]) if entry else Execution("started"))
        if entry is not None:
            if defer_send:
                return Execution(
                    "ordered", "", [entry.pk],
                    pending=functools.partial(
                        finish_execution, signal, entry, broker, last_price, at_ms
                    ),
                )
            return finish_execution(signal, entry, broker, last_price, at_ms)
        return _close_then_enter(signal, config, plan, position, last_price, at_ms, broker)
    except Exception as exc:
        # Marked, never retried blindly: a person (or reconciliation) looks at it.
        _mark(signal, Execution("error", f"execution failed: {exc}"[:500]))
        raise


@batched
def finish_execution(signal, entry: Order, broker: Broker, last_price: Decimal, at_ms: int):
    """Send a saved entry and record a venue rejection on its signal."""
    try:
        entry = send_order(entry, broker, last_price=last_price, ts_ms=at_ms)
    except Exception as exc:
        _mark(signal, Execution("error", f"execution failed: {exc}"[:500], [entry.pk]))
        raise
    if entry.reject_reason:
        result = Execution("ordered", entry.reject_reason, [entry.pk])
        _mark(signal, result)
        return result
    return Execution("ordered", "", [entry.pk])


@batched
def finish_close(signal, close: Order, broker: Broker, last_price: Decimal, at_ms: int):
    """Send a saved signal close (reduce-only) and record on the signal what became of it: a
    fill leaves the stored ``ordered``; a rejection or a close still open is written.

    A live position's venue stops are cancelled first, as every close of ours does
    (``orders.venue_stops.release``); when one already executed or its state is unknown, the
    close is withdrawn unsent, so the position is closed once."""
    if broker.live:
        position = _open_position(
            close.account_id, close.symbol_id, config_id=close.config_id, lock=False
        )
        if position is not None and not venue_stops.release(position, broker, close.reason):
            closed = not Position.objects.filter(pk=position.pk, closed_at__isnull=True).exists()
            why = (
                "not sent: a venue stop already closed the position" if closed else
                "not sent: the position's venue stops could not be cancelled (they still "
                "protect it); reconciliation and the exit guard try again"
            )
            close = _cancel_here(close, why)
            result = Execution("ordered", why, [close.pk])
            _mark(signal, result)
            return result
    try:
        close = send_order(close, broker, last_price=last_price, ts_ms=at_ms)
    except Exception as exc:
        _mark(signal, Execution("error", f"execution failed: {exc}"[:500], [close.pk]))
        raise
    if close.status == Order.Status.FILLED:
        return Execution("ordered", "", [close.pk])
    result = Execution(
        "ordered", close.reject_reason or "the close did not fill yet; no new entry", [close.pk]
    )
    _mark(signal, result)
    return result


@batched
def finish_reversal(signal, config, plan, position, last_price: Decimal, at_ms: int, broker):
    """A reversal decided by :func:`execute_signals`: close, then enter once the close filled
    (the close's fill frees the funds, so the entry cannot be decided with the bar's batch)."""
    try:
        return _close_then_enter(signal, config, plan, position, last_price, at_ms, broker)
    except Exception as exc:
        _mark(signal, Execution("error", f"execution failed: {exc}"[:500]))
        raise



def broker_state(account: Account, at_ms: int, *, broker: Broker | None = None,
                 costs=None) -> tuple[Broker | None, str]:
    """``(broker, why the account cannot trade now or "")``, before any transaction: a live
    account's balances are fetched from its venue here (network), and a late evaluate (a worker
    backlog) older than ``TRADING_MAX_SIGNAL_AGE_S`` never sends a live order at a stale
    price. Used by one signal (:func:`execute_signal`) and by a bar's batch alike."""
    try:
        broker = broker or broker_for(account, costs)
        if broker.live:
            sync_balances(account, broker.balances())
    except (BrokerUnavailable, ExchangeError) as exc:
        return broker, str(exc)
    if broker.live:
        max_age_s = float(getattr(settings, "TRADING_MAX_SIGNAL_AGE_S", 120))
        age_s = (now_ms() - at_ms) / 1000
        if age_s > max_age_s:
            return broker, (
                f"signal is {age_s:.0f} s old (more than {max_age_s:.0f} s); not sent live"
            )
    return broker, ""


def _plan(signal: Signal, config: StrategyConfig, position: Position | None):
    """What ``signal`` means for the config's ``position`` (``orders.risk.plan_action``)."""
    return risk.plan_action(
        signal.action,
        _side_int(position),
        can_short=config.symbol.market_type == Symbol.MarketType.PERPETUAL,
    )


def _signal_size(signal: Signal) -> float:
    """The size multiplier a strategy gave its signal (1 when none; None reads as 0)."""
    size = (signal.reason or {}).get("size", 1.0)
    return 0.0 if size is None else float(size)


def _signal_gate(account, config, unavailable: str) -> Execution | None:
    """Gates for any order from a signal (exits too): ownership, halt, active, broker."""
    if account.owner_id != config.owner_id:
        return Execution(
            "rejected", "the config's account belongs to another user; pick one of yours"
        )
    if account.halted:
        return Execution("rejected", risk.halted_reason(True, account.halted_reason))
    if not config.is_active:
        return Execution("rejected", "strategy config is inactive; switch it on to trade")
    if unavailable:
        return Execution("rejected", unavailable)
    return None


def _entry_in_transaction(account, config, signal, plan, position, last_price, at_ms, broker,
                          orders):
    """Inside the caller's transaction: ``(order, None)`` saved, or ``(None, outcome)``."""
    size = _signal_size(signal)
    if not size > 0:
        return None, Execution("ignored" if not orders else "ordered", "signal size is 0", orders)
    try:
        with transaction.atomic():
            qty, price, reserve = _entry_order(
                account, config, position, plan.open_side, last_price, size, at_ms,
                broker.costs, broker,
            )
            side = Side.BUY if plan.open_side == trade_math.LONG else Side.SELL
            order = _new_order(
                account, config.symbol, side=side, quantity=qty, price=price,
                reason=("add" if plan.add else "entry"), config=config, signal=signal,
                reserve=reserve, reserve_asset=config.symbol.quote,
            )
    except Rejected as exc:
        return None, Execution("rejected" if not orders else "ordered", str(exc), orders)
    return order, None


def _close_then_enter(signal, config, plan, position, last_price, at_ms, broker) -> Execution:
    """A signal exit or a reversal: close first (its fill frees the funds), then enter."""
    orders: list[int] = []
    closed = close_position(
        position, plan.close, last_price=last_price, ts_ms=at_ms, broker=broker,
        signal=signal, use_limit=True,
    )
    if closed is not None:
        orders.append(closed.pk)
        if closed.status != Order.Status.FILLED:
            result = Execution("ordered", "the close did not fill yet; no new entry", orders)
            _mark(signal, result)
            return result
    result = Execution("ordered", "", orders)
    if plan.open_side:
        with transaction.atomic():
            account = Account.objects.select_for_update(of=("self",)).get(pk=config.account_id)
            config.account = account
            position = _open_position(
                account.pk, config.symbol_id, config_id=config.pk, lock=True
            )
            if position is not None and _side_int(position) != plan.open_side:
                # The close did not go out (one in flight, or a venue stop's state unknown):
                # never open the other side on top of a position still open.
                order, outcome = None, Execution(
                    "ordered", "the position could not be closed first; no new entry", orders
                )
            else:
                order, outcome = _entry_in_transaction(
                    account, config, signal, plan, position, last_price, at_ms, broker, orders
                )
        if order is None:
            _mark(signal, outcome)
            return outcome
        order = send_order(order, broker, last_price=last_price, ts_ms=at_ms)
        orders.append(order.pk)
        result = Execution("ordered", order.reject_reason, orders)
    _mark(signal, result)
    return result


def _mark(signal: Signal, result: Execution) -> None:
    reason = dict(signal.reason or {})
    reason["execution"] = result.as_dict()
    signal.reason = reason
    Signal.objects.filter(pk=signal.pk).update(reason=reason)
