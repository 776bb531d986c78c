"""A paper account's balance rows as the ledger moves them (``orders.services.ledger``): each
move locks its row, checks the amounts in Decimal and writes it. Inside
:func:`read_together` (one fill's transaction) the rows the fill may move are locked and read
in one query instead of one each."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable
from decimal import Decimal

from markets.models import Account, Balance
from orders.services.common import ZERO

#: Inside :func:`read_together`: ``{"account": id, "assets": the assets still to read,
#: "rows": {asset: Balance}}``; None elsewhere.
_locked_balances: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "locked_balances", default=None
)


@contextlib.contextmanager
def read_together(account: Account | None, assets: Iterable[str]):
    """For the block (inside a transaction holding ``account``'s row lock): the first read of
    one of the account's balance rows locks and reads those of all ``assets`` in one query
    (primary-key order). ``account=None`` reads each row on its own (and hides an enclosing
    block's rows)."""
    scope = None if account is None else {"account": account.pk, "rows": {},
                                          "assets": set(assets)}
    token = _locked_balances.set(scope)
    try:
        yield
    finally:
        _locked_balances.reset(token)


def _balance(account: Account, asset: str) -> Balance:
    """The account's balance row of ``asset``, locked (created at zero when missing).

    Inside :func:`read_together` a row read with the others is handed out until :func:`_move`
    writes it; after a write it is read again from the database, as it always was, so every
    amount is the one the database stores (SQLite keeps 15 significant digits, PostgreSQL the
    column's scale), exactly as when each move read its row on its own."""
    scope = _locked_balances.get()
    if scope is not None and scope["account"] == account.pk:
        rows = scope["rows"]
        if scope["assets"]:
            wanted = sorted(scope["assets"] | {asset})
            scope["assets"] = set()
            for row in (
                Balance.objects.select_for_update(of=("self",))
                .filter(account=account, asset__in=wanted)
                .order_by("pk")
            ):
                rows[row.asset] = row
        balance = rows.get(asset)
        if balance is not None:
            return balance
    balance, _ = Balance.objects.select_for_update(of=("self",)).get_or_create(
        account=account, asset=asset
    )
    return balance


def _move(account: Account, asset: str, d_free: Decimal = ZERO, d_locked: Decimal = ZERO):
    """Change a paper balance (callers hold the account's row lock). Computed in Decimal here,
    not as an SQL expression: SQLite would do the arithmetic in floating point. The database
    also refuses a negative balance (check constraint); this refuses it first, by name."""
    balance = _balance(account, asset)
    free, locked = balance.free + d_free, balance.locked + d_locked
    if free < 0 or locked < 0:
        raise ValueError(
            f"paper balance of {asset} would go negative (free {free}, locked {locked})"
        )
    balance.free, balance.locked = free, locked
    balance.save(update_fields=["free", "locked", "updated_at"])
    scope = _locked_balances.get()
    if scope is not None:
        scope["rows"].pop(asset, None)  # written: the next move reads what was stored
