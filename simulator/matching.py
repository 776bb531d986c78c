"""The one matching engine: what spot and futures venues share.

A market order, or a limit order that would cross, fills at once as a taker at the last trade
price plus or minus half the spread (the whole quantity: the simulated book is deep); a post-only
order that would cross expires instead; an IOC/FOK order that would rest expires; otherwise the
order rests and fills completely at its limit price (as maker) when a public trade touches that
price. What a fill does to the account (balances for spot, a position for futures) is the
subclass's ``_fill``; how an order ends (unlocking, events) its ``_finish``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from simulator.accounts import Account, Fill, Order, OrderError, dec, quantize_to
from simulator.market import tick_of


class OrderIds:
    """Order ids, trade ids and UUIDs of one venue, from a seeded generator.

    UUIDs mix a per-process random salt into the seeded stream: a venue's order uuids never
    repeat, even across restarts with the same seed (a client that remembers a uuid from an
    earlier run must not find another order under it)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.salt = uuid.uuid4().int
        self.next_order_id = 1
        self.next_trade_id = 1

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128) ^ self.salt, version=4))

    def new_ids(self) -> tuple[int, str]:
        oid = self.next_order_id
        self.next_order_id += 1
        return oid, self.new_uuid()

    def new_trade_id(self) -> int:
        tid = self.next_trade_id
        self.next_trade_id += 1
        return tid


class MatchingEngine:
    """Placement, crossing, resting and touch-fills for one venue. ``markets`` maps symbol to
    ``market.Market``."""

    def __init__(
        self, markets: dict, *, spread_bps: float, ids: OrderIds, clock_ms: Callable[[], int]
    ) -> None:
        self.markets, self.ids, self.clock_ms = markets, ids, clock_ms
        self.half_spread = Decimal(str(spread_bps)) / Decimal(20000)

    # The id source, for the protocol modules (client ids, order ids).
    @property
    def rng(self) -> random.Random:
        return self.ids.rng

    def new_uuid(self) -> str:
        return self.ids.new_uuid()

    def new_ids(self) -> tuple[int, str]:
        return self.ids.new_ids()

    def quote_prices(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(best bid, best ask): last price minus/plus half the spread, on the price grid."""
        market = self.markets[symbol]
        last = dec(market.last_price)
        tick = dec(tick_of(market.spec, market.last_price))
        bid = quantize_to(last * (1 - self.half_spread), tick, ROUND_DOWN)
        ask = quantize_to(last * (1 + self.half_spread), tick, ROUND_UP)
        return bid, max(ask, bid + tick)

    def match_new(self, account: Account, order: Order, bid: Decimal, ask: Decimal) -> None:
        """An accepted order meets the book: fill as taker, expire, or rest."""
        touch = ask if order.side == "buy" else bid
        crosses = order.type == "limit" and (
            (order.side == "buy" and order.price >= ask)
            or (order.side == "sell" and order.price <= bid)
        )
        if order.type == "market":
            self._fill(account, order, touch, maker=False)
        elif crosses:
            if order.time_in_force == "post_only":
                self._finish(account, order, "expired")
            else:
                self._fill(account, order, touch, maker=False)
        elif order.time_in_force in ("ioc", "fok"):
            self._finish(account, order, "expired")

    def cancel(self, account: Account, order: Order) -> Order:
        if not order.is_open:
            raise OrderError("not_open", "Order is not open.")
        self._finish(account, order, "canceled")
        return order

    def on_trades(self, symbol: str, prices, accounts: list) -> None:
        """Fill resting limit orders that the new public trades touched."""
        if len(prices) == 0:
            return
        low, high = dec(float(min(prices))), dec(float(max(prices)))
        for account in accounts:
            for order in account.open_orders(symbol):
                if order.type == "limit" and (
                    (order.side == "buy" and low <= order.price)
                    or (order.side == "sell" and high >= order.price)
                ):
                    self._fill(account, order, order.price, maker=True)
            self.on_range(account, symbol, low, high)

    def on_range(self, account: Account, symbol: str, low: Decimal, high: Decimal) -> None:
        """After the touch-fills: what else trades between ``low`` and ``high`` set off."""

    def new_fill(
        self, price: Decimal, qty: Decimal, fee: Decimal, fee_asset: str, *, maker: bool
    ) -> Fill:
        return Fill(
            self.ids.new_trade_id(),
            self.ids.new_uuid(),
            price,
            qty,
            price * qty,
            fee,
            fee_asset,
            maker,
            self.clock_ms(),
        )

    def _fill(self, account: Account, order: Order, price: Decimal, *, maker: bool) -> None:
        raise NotImplementedError

    def _finish(self, account: Account, order: Order, status: str, **kwargs) -> None:
        raise NotImplementedError
