"""Spot matching: what a fill does to balances (locked on placement, moved on fills, fees).

The matching itself (crossing, resting, touch-fills) is :class:`simulator.matching.MatchingEngine`,
shared with futures (:mod:`simulator.binance.positions`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal

from simulator.accounts import ZERO, Account, Fill, Order, OrderError, dec, quantize_to
from simulator.matching import MatchingEngine, OrderIds


@dataclasses.dataclass(frozen=True)
class FeeModel:
    maker: Decimal
    taker: Decimal
    in_quote: bool  # True: fee always in quote, reserved up front (Upbit); False: in received asset
    quote_decimals: int = 8


class SpotEngine(MatchingEngine):
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
        super().__init__(markets, spread_bps=spread_bps, ids=OrderIds(seed), clock_ms=clock_ms)
        self.fees = fees

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
        self.match_new(account, order, bid, ask)
        return order

    def _fill(self, account: Account, order: Order, price: Decimal, *, maker: bool) -> None:
        spec = self.markets[order.symbol].spec
        step = dec(spec.step)
        qty = order.qty if order.qty is not None else quantize_to(order.quote_qty / price, step)
        if qty <= 0:
            self._finish(account, order, "canceled" if order.quote_qty is not None else "expired")
            return
        quote = price * qty
        rate = self.fees.maker if maker else self.fees.taker
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
        fill = self.new_fill(price, qty, fee, fee_asset, maker=maker)
        order.fills.append(fill)
        order.updated_ms = fill.ts_ms
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
