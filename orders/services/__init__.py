"""The trading services: the only writers of orders, fills, positions and paper balances, split
by job (``docs/subsystems.md``, "orders"):

=============  ==========================================================================
``common``     venue rules (ticks, steps, limit prices), ids, time, the open-position lookup
``payloads``   the event payloads of orders, fills, positions and accounts, in one place
``ledger``     the only writer of orders, fills, positions and balances; halts accounts; its
               paper balance moves are in ``paper_book`` (a fill's rows read together)
``dispatch``   sends a saved order and applies the answer; asks ``orders.venue_stops`` for
               venue stops after an entry fill (the ledger never does: no import cycle)
``entries``    the entry gates and sizing (``orders.risk``, ``strategies.sizing``)
``equity``     equity snapshots and the trading day's start equity
``execution``  one signal: close, reverse, enter or add
``batch``      a bar's signals at once, in one transaction
``closing``    closing a whole position (exit guard, signal exits, kill switch)
``manual``     a person's orders and cancels (API, dashboard)
``reconcile``  live orders settled with the venue; paper limit orders matched
=============  ==========================================================================

Everything everywhere runs in transactions with the account row locked, so paper and live share
one persistence path. An order's life: (1) in one transaction with the account row locked
(``select_for_update``) and the open position locked, the risk gates run (``orders.risk``), the
size is computed with ``strategies.sizing`` and rounded with the adapters' rounding, paper funds
(fees included) are reserved, and the Order is saved with a fresh client order id, status
``new``; (2) it is marked ``submitted`` and handed to the broker (paper or live); (3) the
broker's answer (the adapters' ``OrderInfo``) is applied in a second locked transaction: fills,
position, paper balances. Nothing is sent inside a database transaction, so a slow venue never
holds the lock.

Rejections: a gate that stops a *signal* before any order exists is recorded on the Signal
(``signal.reason["execution"] = {"status": "rejected", "reason": ...}``) and pushed with
``signal.created``; a rejection of an *order* (the venue said no, or a manual order failed a
gate) is an Order row with status ``rejected`` and ``reject_reason``, pushed as
``order.updated``.

This package re-exports the public names callers use (``services.execute_signals`` ...),
loaded on first use (PEP 562), so importing ``orders.services`` loads neither the exchange
adapters nor the channel layer (the admin, a backtest). Monkeypatch a name where it is looked
up: ``services.X`` for callers that write ``services.X``, the submodule for calls inside it.
"""

from __future__ import annotations

import importlib

#: {public name: the submodule that defines it}
_EXPORTS = {
    # common
    "PLACES": "common", "ZERO": "common", "dec": "common", "ms_to_dt": "common",
    "now_ms": "common", "new_client_order_id": "common", "symbol_info": "common",
    "round_price": "common", "limit_price": "common",
    # payloads
    "order_payload": "payloads", "fill_payload": "payloads", "position_payload": "payloads",
    "account_payload": "payloads",
    # ledger
    "free_balance": "ledger", "sync_balances": "ledger", "halt_account": "ledger",
    # dispatch
    "send_order": "dispatch", "apply_order_info": "dispatch",
    # entries, equity
    "risk_params": "entries", "Rejected": "entries",
    "day_start_equity": "equity", "snapshot_equity": "equity",
    # execution, batch
    "Execution": "execution", "execute_signal": "execution", "finish_execution": "execution",
    "finish_close": "execution", "finish_reversal": "execution",
    "execute_signals": "batch",
    # closing, manual, reconcile
    "close_position": "closing", "track_best_price": "closing",
    "place_manual_order": "manual", "cancel_order": "manual",
    "match_resting_orders": "reconcile", "reconcile_live_orders": "reconcile",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups (and monkeypatch.undo) find it here
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
