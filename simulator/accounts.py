"""Accounts, orders and fills: the venue-neutral records every venue keeps.

Money is Decimal. Matching is :mod:`simulator.matching` (spot balances:
:mod:`simulator.balances`; futures positions: :mod:`simulator.binance.positions`). Venue rules
(ticks, minimums, error names) live in the protocol modules; the engines raise
:class:`OrderError` with a neutral ``kind``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

ZERO = Decimal(0)


class OrderError(Exception):
    """Order refused. ``kind``: insufficient_funds, unknown_order, not_open, duplicate, invalid."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def dec(value: float | str | Decimal) -> Decimal:
    """Decimal from a market-data float without binary noise (uses the shortest repr)."""
    return (
        value
        if isinstance(value, Decimal)
        else Decimal(repr(value) if isinstance(value, float) else value)
    )


def quantize_to(value: Decimal, step: Decimal, rounding=ROUND_DOWN) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


@dataclasses.dataclass
class Fill:
    trade_id: int
    uuid: str
    price: Decimal
    qty: Decimal
    quote: Decimal
    fee: Decimal
    fee_asset: str
    is_maker: bool
    ts_ms: int


@dataclasses.dataclass
class Order:
    """A venue-neutral order. ``status``: open, filled, canceled, expired."""

    id: int
    uuid: str
    symbol: str
    side: str  # buy | sell
    type: str  # limit | market
    price: Decimal | None
    qty: Decimal | None
    quote_qty: Decimal | None  # market buy by quote amount (Upbit ord_type=price, quoteOrderQty)
    client_id: str | None
    created_ms: int
    time_in_force: str | None = None
    status: str = "open"
    updated_ms: int = 0
    locked: Decimal = ZERO  # still locked for this order (quote for buys, base for sells)
    reserved_fee: Decimal = ZERO
    fills: list[Fill] = dataclasses.field(default_factory=list)
    extra: dict = dataclasses.field(default_factory=dict)  # venue fields echoed back

    @property
    def executed_qty(self) -> Decimal:
        return sum((f.qty for f in self.fills), ZERO)

    @property
    def executed_quote(self) -> Decimal:
        return sum((f.quote for f in self.fills), ZERO)

    @property
    def paid_fee(self) -> Decimal:
        return sum((f.fee for f in self.fills), ZERO)

    @property
    def is_open(self) -> bool:
        return self.status == "open"


Listener = Callable[[str, dict], None]


class Account:
    """One API key's balances and orders on one venue. ``listeners`` get (kind, event) calls:
    ("order", {"order", "fill"}) and ("balance", {"assets"})."""

    def __init__(self, key: str, secret: str, balances: dict[str, str | Decimal]) -> None:
        self.key, self.secret = key, secret
        self.balances: dict[str, list[Decimal]] = {
            a: [dec(str(v)), ZERO] for a, v in balances.items()
        }
        self.orders: dict[int, Order] = {}
        self.listeners: list[Listener] = []

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, [ZERO, ZERO])[0]

    def locked(self, asset: str) -> Decimal:
        return self.balances.get(asset, [ZERO, ZERO])[1]

    def move(self, asset: str, d_free: Decimal = ZERO, d_locked: Decimal = ZERO) -> None:
        row = self.balances.setdefault(asset, [ZERO, ZERO])
        row[0] += d_free
        row[1] += d_locked

    def emit(self, kind: str, **event) -> None:
        for listener in list(self.listeners):
            listener(kind, event)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open and symbol in (None, o.symbol)]


def listen(accounts, handler: Callable[[Account, str, dict], None]) -> None:
    """Call ``handler(account, kind, event)`` on every event of each of ``accounts``."""
    for account in accounts:
        account.listeners.append(lambda kind, event, a=account: handler(a, kind, event))
