"""USDⓈ-M futures accounts: one-way positions with leverage, margin type, reduce-only, fees.

The wallet is the account's USDT ``free`` balance. Margin of a position is ``|amount| * entry /
leverage``; a resting order that would grow the position reserves ``qty * price / leverage``.
Available balance = wallet + unrealized PnL of cross positions - position margins - order
margins. Matching is :class:`simulator.matching.MatchingEngine`, shared with spot (market at
last +- half spread, limits when touched); this module is what a fill does to a position.
Conditional ("algo") orders: STOP_MARKET / TAKE_PROFIT_MARKET, reduce-only, triggered by this
venue's own trades (CONTRACT_PRICE: the last trade price) and filled as a reduce-only market
order at that moment; a trigger with nothing left to reduce is REJECTED.
Unrealized PnL (and so the available balance) is marked to the venue's mark price
(:mod:`simulator.binance.markprice`, ``mark_fn``); triggers stay on the last trade.
Not simulated: hedge mode, liquidation, funding payments, MARK_PRICE triggers, limit
(STOP/TAKE_PROFIT) conditional orders, trailing stops.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from simulator.accounts import ZERO, Account, Fill, Order, OrderError, dec
from simulator.matching import MatchingEngine, OrderIds


@dataclasses.dataclass
class AlgoOrder:
    """A conditional order held until its trigger. ``status``: NEW, TRIGGERED, FINISHED,
    CANCELED, REJECTED, EXPIRED (Binance's algo states). ``order`` is the market order placed
    when it triggered."""

    algo_id: int
    client_id: str
    symbol: str
    side: str  # buy | sell
    type: str  # STOP_MARKET | TAKE_PROFIT_MARKET
    qty: Decimal
    trigger: Decimal
    reduce_only: bool
    created_ms: int
    close_position: bool = False  # close whatever the position is when triggered
    status: str = "NEW"
    updated_ms: int = 0
    trigger_ms: int = 0
    order: Order | None = None

    def reached(self, low: Decimal, high: Decimal) -> bool:
        """Whether trades between ``low`` and ``high`` reach the trigger: a stop sells on a
        fall (buys on a rise), a take-profit sells on a rise (buys on a fall)."""
        falls = (self.type == "STOP_MARKET") == (self.side == "sell")
        return low <= self.trigger if falls else high >= self.trigger

    def would_trigger_now(self, last: Decimal) -> bool:
        return self.reached(last, last)


@dataclasses.dataclass
class Position:
    symbol: str
    amount: Decimal = ZERO  # signed base quantity; negative = short
    entry: Decimal = ZERO
    leverage: int = 20
    margin_type: str = "cross"  # cross | isolated
    realized: Decimal = ZERO
    update_ms: int = 0

    def margin(self) -> Decimal:
        return abs(self.amount) * self.entry / self.leverage


class FuturesAccount(Account):
    def __init__(self, key: str, secret: str, balances: dict) -> None:
        super().__init__(key, secret, balances)
        self.positions: dict[str, Position] = {}
        self.algo_orders: dict[int, AlgoOrder] = {}

    def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        return [a for a in self.algo_orders.values()
                if a.status == "NEW" and (symbol is None or a.symbol == symbol)]

    def position(self, symbol: str) -> Position:
        return self.positions.setdefault(symbol, Position(symbol))


class FuturesEngine(MatchingEngine):
    def __init__(
        self,
        markets: dict,
        *,
        maker: str = "0.0002",
        taker: str = "0.0005",
        spread_bps: float = 2.0,
        clock_ms,
        asset: str = "USDT",
        ids: OrderIds,
        mark_fn=None,
    ) -> None:
        super().__init__(markets, spread_bps=spread_bps, ids=ids, clock_ms=clock_ms)
        self.asset = asset
        self.mark_fn = mark_fn or self.last
        self.maker, self.taker = dec(maker), dec(taker)

    def last(self, symbol: str) -> Decimal:
        return dec(self.markets[symbol].last_price)

    def mark(self, symbol: str) -> Decimal:
        """The mark price (unrealized PnL, margin); the last trade price without a mark."""
        return self.mark_fn(symbol)

    def unrealized(self, pos: Position) -> Decimal:
        return (self.mark(pos.symbol) - pos.entry) * pos.amount if pos.amount else ZERO

    def order_margin(self, account: FuturesAccount) -> Decimal:
        return sum((o.extra.get("margin", ZERO) for o in account.open_orders()), ZERO)

    def available(self, account: FuturesAccount) -> Decimal:
        wallet = account.free(self.asset)
        upnl = sum(
            (self.unrealized(p) for p in account.positions.values() if p.margin_type == "cross"),
            ZERO,
        )
        used = sum((p.margin() for p in account.positions.values()), ZERO)
        return wallet + min(upnl, ZERO) - used - self.order_margin(account)

    def _growth(self, pos: Position, side: str, qty: Decimal) -> Decimal:
        """The part of ``qty`` that opens or grows exposure (the rest closes the position)."""
        signed = qty if side == "buy" else -qty
        if pos.amount == 0 or (pos.amount > 0) == (signed > 0):
            return qty
        return max(ZERO, qty - abs(pos.amount))

    def place(self, account: FuturesAccount, order: Order) -> Order:
        pos = account.position(order.symbol)
        bid, ask = self.quote_prices(order.symbol)
        reduce_only = order.extra.get("reduce_only", False)
        if reduce_only:
            closing = (pos.amount > 0 and order.side == "sell") or (
                pos.amount < 0 and order.side == "buy"
            )
            if not closing:
                raise OrderError("reduce_only", "ReduceOnly Order is rejected.")
        price = order.price if order.type == "limit" else (ask if order.side == "buy" else bid)
        growth = ZERO if reduce_only else self._growth(pos, order.side, order.qty)
        need = growth * price / pos.leverage + order.qty * price * self.taker
        if need > self.available(account):
            raise OrderError("margin", "Margin is insufficient.")
        order.extra["margin"] = growth * price / pos.leverage if order.type == "limit" else ZERO
        account.orders[order.id] = order
        order.updated_ms = order.created_ms
        account.emit("order", order=order, fill=None)
        self.match_new(account, order, bid, ask)
        return order

    def on_range(self, account: FuturesAccount, symbol: str, low: Decimal, high: Decimal) -> None:
        """Conditional orders whose trigger the new trades reached."""
        for algo in account.open_algo_orders(symbol):
            if algo.reached(low, high):
                self.trigger(account, algo)

    # ---- conditional orders -------------------------------------------------------------------

    def place_algo(self, account: FuturesAccount, algo: AlgoOrder) -> AlgoOrder:
        """Hold ``algo``; ``OrderError("immediate")`` when the last price already reaches it."""
        if algo.would_trigger_now(self.last(algo.symbol)):
            raise OrderError("immediate", "Order would immediately trigger.")
        algo.updated_ms = algo.created_ms
        account.algo_orders[algo.algo_id] = algo
        account.emit("algo", algo=algo)
        return algo

    def cancel_algo(self, account: FuturesAccount, algo: AlgoOrder) -> AlgoOrder:
        if algo.status != "NEW":
            raise OrderError("not_open", "Order is not open.")
        algo.status, algo.updated_ms = "CANCELED", self.clock_ms()
        account.emit("algo", algo=algo)
        return algo

    def trigger(self, account: FuturesAccount, algo: AlgoOrder) -> None:
        """The trigger was reached: place the reduce-only market order now and fill it."""
        now = self.clock_ms()
        algo.status, algo.trigger_ms, algo.updated_ms = "TRIGGERED", now, now
        account.emit("algo", algo=algo)
        pos = account.position(algo.symbol)
        closing = (pos.amount > 0 and algo.side == "sell") or (
            pos.amount < 0 and algo.side == "buy"
        )
        if algo.reduce_only and not closing:
            algo.status, algo.updated_ms = "REJECTED", self.clock_ms()
            account.emit("algo", algo=algo)
            return
        qty = abs(pos.amount) if algo.close_position else algo.qty
        oid, uid = self.new_ids()
        order = Order(
            oid, uid, algo.symbol, algo.side, "market", None, qty, None,
            f"algo{algo.algo_id}", now,
            extra={"type": "MARKET", "tif": "GTC", "reduce_only": algo.reduce_only,
                   "orig_type": algo.type},
        )
        algo.order = order
        try:
            self.place(account, order)
        except OrderError:
            algo.status, algo.updated_ms = "REJECTED", self.clock_ms()
            account.emit("algo", algo=algo)
            return
        algo.status = "FINISHED"
        algo.updated_ms = self.clock_ms()
        account.emit("algo", algo=algo)

    def _fill(self, account: FuturesAccount, order: Order, price: Decimal, *, maker: bool) -> None:
        pos = account.position(order.symbol)
        qty = order.qty
        if order.extra.get("reduce_only"):
            qty = min(qty, abs(pos.amount))
            if qty <= 0:
                self._finish(account, order, "expired")
                return
        signed = qty if order.side == "buy" else -qty
        realized = ZERO
        if pos.amount == 0 or (pos.amount > 0) == (signed > 0):
            total = pos.amount + signed
            pos.entry = (pos.entry * abs(pos.amount) + price * qty) / abs(total)
            pos.amount = total
        else:
            closed = min(qty, abs(pos.amount))
            realized = (price - pos.entry) * closed * (1 if pos.amount > 0 else -1)
            pos.amount += signed
            if pos.amount == 0:
                pos.entry = ZERO
            elif (pos.amount > 0) == (signed > 0):  # flipped: the rest opens at this price
                pos.entry = price
        fee = price * qty * (self.maker if maker else self.taker)
        pos.realized += realized
        account.move(self.asset, realized - fee)
        fill = self.new_fill(price, qty, fee, self.asset, maker=maker)
        pos.update_ms = fill.ts_ms
        order.fills.append(fill)
        order.extra["realized"] = order.extra.get("realized", ZERO) + realized
        self._finish(account, order, "filled", fill=fill)

    def _finish(
        self, account: FuturesAccount, order: Order, status: str, *, fill: Fill | None = None
    ) -> None:
        order.status = status
        order.extra["margin"] = ZERO
        order.updated_ms = self.clock_ms()
        account.emit("order", order=order, fill=fill)
        if fill is not None:
            account.emit("position", symbol=order.symbol, fill=fill)
