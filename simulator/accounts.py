"""Spot accounts and matching: balances, orders, fills, fees.

Money is Decimal. Market orders fill at once at the last trade price plus or minus half the
spread (the whole quantity: the simulated book is deep); a limit order that would cross fills
the same way as a taker; otherwise it rests and fills completely at its limit price (as maker)
when a public trade touches that price. Venue rules (ticks, minimums, error names) live in the
protocol modules; this module raises :class:`OrderError` with a neutral ``kind``.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_UP, Decimal

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


@dataclasses.dataclass(frozen=True)
class FeeModel:
    maker: Decimal
    taker: Decimal
    in_quote: bool  # True: fee always in quote, reserved up front (Upbit); False: in received asset
    quote_decimals: int = 8


class SpotEngine:
    """Matching for one spot venue. ``markets`` maps symbol to ``market.Market``."""

    def __init__(
        self,
        markets: dict,
        fees: FeeModel,
        *,
        spread_bps: float,
        seed: int,
        clock_ms: Callable[[], int],
    ) -> None:
        self.markets, self.fees, self.clock_ms = markets, fees, clock_ms
        self.half_spread = Decimal(str(spread_bps)) / Decimal(20000)
        self.rng = random.Random(seed)
        self.next_order_id = 1
        self.next_trade_id = 1

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_ids(self) -> tuple[int, str]:
        oid = self.next_order_id
        self.next_order_id += 1
        return oid, self.new_uuid()

    def quote_prices(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(best bid, best ask): last price minus/plus half the spread, on the price grid."""
        market = self.markets[symbol]
        last = dec(market.last_price)
        tick = dec(_tick(market.spec, market.last_price))
        bid = quantize_to(last * (1 - self.half_spread), tick, ROUND_DOWN)
        ask = quantize_to(last * (1 + self.half_spread), tick, ROUND_UP)
        return bid, max(ask, bid + tick)

    # ---- placement ----------------------------------------------------------------------------

    def place(self, account: Account, order: Order) -> Order:
        spec = self.markets[order.symbol].spec
        bid, ask = self.quote_prices(order.symbol)
        if order.side == "buy":
            if order.type == "limit":
                need = order.price * order.qty
            elif order.quote_qty is not None:
                need = order.quote_qty
            else:
                need = ask * order.qty
            fee_lock = need * self.fees.taker if self.fees.in_quote else ZERO
            if account.free(spec.quote) < need + fee_lock:
                raise OrderError("insufficient_funds", "Account has insufficient balance.")
            order.locked, order.reserved_fee = need + fee_lock, fee_lock
            account.move(spec.quote, -(need + fee_lock), need + fee_lock)
            changed = [spec.quote]
        else:
            if account.free(spec.base) < order.qty:
                raise OrderError("insufficient_funds", "Account has insufficient balance.")
            order.locked = order.qty
            account.move(spec.base, -order.qty, order.qty)
            changed = [spec.base]
        account.orders[order.id] = order
        order.updated_ms = order.created_ms
        account.emit("order", order=order, fill=None)
        account.emit("balance", assets=changed)
        if order.type == "market":
            self._fill(account, order, ask if order.side == "buy" else bid, maker=False)
        elif (order.side == "buy" and order.price >= ask) or (
            order.side == "sell" and order.price <= bid
        ):
            if order.time_in_force == "post_only":
                self._finish(account, order, "expired")
            else:
                self._fill(account, order, ask if order.side == "buy" else bid, maker=False)
        elif order.time_in_force in ("ioc", "fok"):
            self._finish(account, order, "expired")
        return order

    def cancel(self, account: Account, order: Order) -> Order:
        if not order.is_open:
            raise OrderError("not_open", "Order is not open.")
        self._finish(account, order, "canceled")
        return order

    def on_trades(self, symbol: str, prices, accounts: list[Account]) -> None:
        """Fill resting limit orders that the new public trades touched."""
        if len(prices) == 0:
            return
        low, high = dec(float(min(prices))), dec(float(max(prices)))
        for account in accounts:
            for order in account.open_orders(symbol):
                if order.type != "limit":
                    continue
                if (order.side == "buy" and low <= order.price) or (
                    order.side == "sell" and high >= order.price
                ):
                    self._fill(account, order, order.price, maker=True)

    # ---- internals ----------------------------------------------------------------------------

    def _fill(self, account: Account, order: Order, price: Decimal, *, maker: bool) -> None:
        spec = self.markets[order.symbol].spec
        step = dec(spec.step)
        qty = order.qty if order.qty is not None else quantize_to(order.quote_qty / price, step)
        if qty <= 0:
            self._finish(account, order, "canceled" if order.quote_qty is not None else "expired")
            return
        quote = price * qty
        rate = self.fees.maker if maker else self.fees.taker
        now = self.clock_ms()
        if order.side == "buy":
            fee = quote * rate if self.fees.in_quote else qty * rate
            fee_asset = spec.quote if self.fees.in_quote else spec.base
            spend = quote + (fee if self.fees.in_quote else ZERO)
            account.move(spec.quote, ZERO, -spend)
            order.locked -= spend
            account.move(spec.base, qty - (ZERO if self.fees.in_quote else fee))
        else:
            fee = quote * rate
            fee_asset = spec.quote
            account.move(spec.base, ZERO, -qty)
            order.locked -= qty
            account.move(spec.quote, quote - fee)
        fill = Fill(
            self.next_trade_id, self.new_uuid(), price, qty, quote, fee, fee_asset, maker, now
        )
        self.next_trade_id += 1
        order.fills.append(fill)
        order.updated_ms = now
        status = (
            "canceled"
            if order.quote_qty is not None and order.extra.get("quote_cancels")
            else "filled"
        )
        self._finish(account, order, status, fill=fill, assets=[spec.base, spec.quote])

    def _finish(
        self,
        account: Account,
        order: Order,
        status: str,
        *,
        fill: Fill | None = None,
        assets: list[str] | None = None,
    ) -> None:
        spec = self.markets[order.symbol].spec
        asset = spec.quote if order.side == "buy" else spec.base
        if order.locked:
            account.move(asset, order.locked, -order.locked)
            order.locked = ZERO
        order.status = status
        order.updated_ms = self.clock_ms()
        account.emit("order", order=order, fill=fill)
        account.emit("balance", assets=assets or [asset])


def _tick(spec, price: float) -> float:
    return spec.tick(price) if callable(spec.tick) else spec.tick
