"""The only writer of orders, fills and positions (and paper balances).

Everything that changes trading state goes through here, in a transaction, so paper and live
share one persistence path and every change is traceable.

An order's life: (1) in one transaction with the account row locked (``select_for_update``)
and the open position locked, the risk gates run (``orders.risk``), the size is computed with
``strategies.sizing`` and rounded with the adapters' rounding, paper funds (fees included) are
reserved, and the Order is saved with a fresh client order id, status ``new``; (2) it is marked
``submitted`` and handed to the broker (paper or live); (3) the broker's answer (the adapters'
``OrderInfo``) is applied in a second locked transaction: fills, position, paper balances.
Nothing is sent inside a database transaction, so a slow venue never holds the lock.

Rejections: a gate that stops a *signal* before any order exists is recorded on the Signal
(``signal.reason["execution"] = {"status": "rejected", "reason": ...}``) and pushed with
``signal.created``; a rejection of an *order* (the venue said no, or a manual order failed a
gate) is an Order row with status ``rejected`` and ``reject_reason``, pushed as
``order.updated``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from markets import wire
from markets.exchanges import capabilities_of, rounding
from markets.exchanges.base import OrderInfo, OrderRequest, SymbolInfo
from markets.exchanges.errors import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    OrderRejected,
    OrderStatusUnknown,
    TemporaryExchangeError,
)
from markets.models import Account, Balance, Symbol
from orders import positions as net
from orders import protection, risk
from orders.brokers import Broker, BrokerUnavailable, broker_for
from orders.brokers.base import Costs, default_costs
from orders.models import EquitySnapshot, Fill, Order, Position, Side
from orders.push import batched, push_later, push_to_user
from strategies import position as pm
from strategies import sizing
from strategies.models import Signal, StrategyConfig

log = logging.getLogger(__name__)
ZERO = Decimal("0")
PLACES = Decimal("0.000000000001")
#: Reservations are rounded up to 1e-8: with SQLite's REAL columns (15 significant digits)
#: a 12-place amount on a large balance would not round-trip.
RESERVE_PLACES = Decimal("0.00000001")
#: A manual order's value (quantity x price) must stay below this: reserves are computed to
#: 8 places in 28 significant digits, and no balance comes near it.
MAX_ORDER_VALUE = Decimal(10) ** 15


def dec(value) -> Decimal:
    """A float or text as Decimal with the models' 12 decimal places."""
    if isinstance(value, Decimal):
        return value.quantize(PLACES)
    return Decimal(repr(float(value)) if isinstance(value, float) else str(value)).quantize(PLACES)


def ms_to_dt(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def now_ms() -> int:
    return int(timezone.now().timestamp() * 1000)


def new_client_order_id() -> str:
    """33 characters, ``[A-Za-z0-9]``: valid on every venue (Binance <= 36, Upbit unique)."""
    return "t" + uuid.uuid4().hex


# ------------------------------------------------------------------------ venue rules


def symbol_info(symbol: Symbol) -> SymbolInfo:
    return SymbolInfo(
        code=symbol.code,
        base=symbol.base,
        quote=symbol.quote,
        market_type=symbol.market_type,
        tick_size=symbol.tick_size,
        step_size=symbol.step_size,
        min_qty=symbol.min_qty,
        min_notional=symbol.min_notional,
        max_leverage=symbol.max_leverage,
    )


def tick_table(symbol: Symbol):
    """The price-band table of a symbol without a fixed tick (Upbit/Bithumb KRW), else None:
    chosen by the venue's ``Capabilities.price_bands``, not its name."""
    return rounding.band_table(symbol_info(symbol), capabilities_of(symbol.exchange.adapter))


def round_price(symbol: Symbol, price: Decimal, side: str | None = None) -> Decimal:
    return rounding.round_price(price, symbol_info(symbol), side=side, table=tick_table(symbol))


def limit_price(symbol: Symbol, side: str, last_price: Decimal, costs: Costs) -> Decimal | None:
    """A signal's limit price: the last price moved ``aggressiveness_pct`` past it (buy above,
    sell below) on the venue's tick; None (a market order) when aggressiveness is 0."""
    if costs.aggressiveness_pct <= 0:
        return None
    offset = Decimal(repr(costs.aggressiveness_pct)) / 100
    raw = last_price * (1 + offset) if side == Side.BUY else last_price * (1 - offset)
    # Round away from the last price so the order stays marketable.
    price = round_price(symbol, raw, "sell" if side == Side.BUY else "buy")
    return price if price > 0 else None


def risk_params(config: StrategyConfig, costs: Costs | None = None, ts_ms: int | None = None):
    """The backtester's ``RiskParams`` for ``config``: its leverage and percentages, the
    broker's fee and slippage, the trading day of ``settings.TIME_ZONE``."""
    costs = costs or default_costs()
    offset = risk.utc_offset_hours(settings.TIME_ZONE, ts_ms if ts_ms is not None else now_ms())
    return pm.RiskParams(
        fee_rate=costs.fee_rate,
        maker_fee_rate=costs.maker_fee_rate,
        slippage_bps=costs.slippage_bps,
        leverage=float(config.leverage),
        stop_loss_pct=float(config.stop_loss_pct or 0),
        take_profit_pct=float(config.take_profit_pct or 0),
        trailing_stop_pct=float(config.trailing_stop_pct or 0),
        daily_target_pct=float(config.daily_target_pct or 0),
        daily_max_loss_pct=float(config.daily_max_loss_pct or 0),
        day_offset_hours=offset,
    )


# ------------------------------------------------------------------------ payloads


def _symbol_name(symbol: Symbol) -> str:
    return f"{symbol.exchange.slug}:{symbol.code}"


def _text(value) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def order_payload(order: Order) -> dict:
    return {
        "id": order.pk,
        "account": order.account_id,
        "config": order.config_id,
        "signal": order.signal_id,
        "symbol": _symbol_name(order.symbol),
        "side": order.side,
        "order_type": order.type,
        "price": _text(order.price),
        "quantity": _text(order.quantity),
        "quote_amount": _text(order.quote_amount),
        "reduce_only": order.reduce_only,
        "trigger_price": _text(order.trigger_price),  # a venue stop (orders.protection)
        "client_order_id": order.client_order_id,
        "status": order.status,
        "filled_quantity": _text(order.filled_quantity),
        "average_price": _text(order.average_price),
        "fee": _text(order.fee),
        "reason": order.reason,
        "reject_reason": order.reject_reason,
        "created_at": order.created_at.isoformat() if order.created_at else None,
    }


def fill_payload(fill: Fill) -> dict:
    return {
        "id": fill.pk,
        "order": fill.order_id,
        "symbol": _symbol_name(fill.order.symbol),
        "side": fill.order.side,
        "trade_id": fill.trade_id,
        "price": _text(fill.price),
        "quantity": _text(fill.quantity),
        "fee": _text(fill.fee),
        "ts": int(fill.ts.timestamp() * 1000),
    }


def position_payload(position: Position) -> dict:
    return {
        "id": position.pk,
        "account": position.account_id,
        "config": position.config_id,
        # Who owns it: the config's name, "manual" for the account's own orders.
        "config_name": position.config.name if position.config_id else "manual",
        "symbol": _symbol_name(position.symbol),
        "side": position.side,
        "quantity": _text(position.quantity),
        "entry_price": _text(position.entry_price),
        "leverage": position.leverage,
        "margin": _text(position.margin),
        "stop_price": _text(position.stop_price),
        "target_price": _text(position.target_price),
        "trailing_stop_pct": _text(position.trailing_stop_pct),
        "best_price": _text(position.best_price),
        "liquidation_price": _text(position.liquidation_price),
        "realized_pnl": _text(position.realized_pnl),
        "opened_at": int(position.opened_at.timestamp() * 1000),
        "closed_at": int(position.closed_at.timestamp() * 1000) if position.closed_at else None,
        "close_reason": position.close_reason,
        "open": position.closed_at is None,
    }


def _push_later(user_id: int, kind: str, payload: dict) -> None:
    push_later(user_id, kind, payload)


# ------------------------------------------------------------------------ balances


def _balance(account: Account, asset: str) -> Balance:
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


def free_balance(account: Account, asset: str) -> Decimal:
    row = Balance.objects.filter(account=account, asset=asset).first()
    return row.free if row else ZERO


def sync_balances(account: Account, balances) -> None:
    """Store a live venue's balances (a full fetch: every asset) and mark the account confirmed
    by the venue now (``orders.venue_balances``)."""
    from orders import venue_balances

    venue_balances.store(account, balances, full=True)


# ------------------------------------------------------------------------ daily limits


def day_start_equity(account: Account, at_ms: int, equity: Decimal) -> Decimal:
    """The equity the trading day (``settings.TIME_ZONE``) started with: the day's first
    EquitySnapshot (beat writes one every 5 minutes), or, when none exists yet, one written
    now from ``equity`` (the day's reference is then the equity when trading first looked)."""
    start, end = risk.day_bounds_ms(at_ms, settings.TIME_ZONE)
    first = (
        EquitySnapshot.objects.filter(
            account=account, ts__gte=ms_to_dt(start), ts__lt=ms_to_dt(end)
        )
        .order_by("ts")
        .first()
    )
    if first is not None:
        return first.equity
    snapshot, _ = EquitySnapshot.objects.get_or_create(
        account=account,
        ts=ms_to_dt(at_ms).replace(microsecond=0),
        defaults={"equity": equity, "cash": free_balance(account, account.quote_asset)},
    )
    return snapshot.equity


# ------------------------------------------------------------------------ execution


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

    def as_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "orders": list(self.orders)}


class Rejected(Exception):
    """A gate said no; the message is the trader-readable reason."""


def _bucket(config_id: int | None) -> dict:
    """The filter of one config's positions and orders, or of the manual ones (no config)."""
    return {"config__isnull": True} if config_id is None else {"config_id": config_id}


def _open_position(
    account_id: int, symbol_id: int, *, config_id: int | None, lock: bool
) -> Position | None:
    """The open position of ``config_id`` (None: the account's manual orders) on the symbol:
    each config owns its positions (``orders.positions``)."""
    qs = Position.objects.filter(
        account_id=account_id, symbol_id=symbol_id, closed_at__isnull=True, **_bucket(config_id)
    )
    if lock:
        qs = qs.select_for_update(of=("self",))
    return qs.first()


def _side_int(position: Position | None) -> int:
    if position is None:
        return 0
    return pm.LONG if position.side == Position.PositionSide.LONG else pm.SHORT


def _trade_returns(config: StrategyConfig) -> list[float]:
    rows = Position.objects.filter(config=config, closed_at__isnull=False).values_list(
        "realized_pnl", "entry_price", "quantity", "margin"
    )
    out = []
    for pnl, entry, _qty, margin in rows:
        cost = margin if margin else entry
        if cost:
            out.append(float(pnl / cost))
    return out


def _atr(config: StrategyConfig, params, at_ms: int) -> float | None:
    if not isinstance(params, sizing.AtrUnit):
        return None
    from markets.candles import load_candles
    from strategies import indicators

    candles = load_candles(
        config.symbol_id, config.timeframe, end_ms=at_ms, limit=params.atr_period * 12 + 2
    )
    if len(candles) <= params.atr_period:
        return None
    values = indicators.atr(candles.high, candles.low, candles.close, params.atr_period)
    value = float(values[-1])
    return value if math.isfinite(value) else None


def _entry_order(
    account: Account,
    config: StrategyConfig,
    position: Position | None,
    side_int: int,
    last_price: Decimal,
    size_mult: float,
    at_ms: int,
    costs: Costs,
    broker: Broker,
) -> tuple[Decimal, Decimal | None, Decimal]:
    """Gates, sizing and rounding for an entry or add: ``(quantity, limit price, reserve)``;
    ``Rejected`` with the reason otherwise. Runs under the account's row lock; reads the facts
    one query at a time (:func:`execute_signals` reads them for a whole bar at once)."""
    from orders.equity import value_account

    equity = value_account(account).equity
    return _decide_entry(
        account, config, side_int, last_price, size_mult, costs, broker.live,
        equity=equity,
        day_start=lambda: day_start_equity(account, at_ms, equity),
        open_order=lambda: Order.objects.filter(
            account=account, symbol=config.symbol, status__in=Order.OPEN_STATUSES,
            reduce_only=False, config=config,
        ).exists(),
        available=lambda: free_balance(account, config.symbol.quote),
        atr=lambda params: _atr(config, params, at_ms),
        others=lambda: net.others_on_symbol(account.pk, config.symbol_id, config.pk),
    )


def _decide_entry(
    account: Account,
    config: StrategyConfig,
    side_int: int,
    last_price: Decimal,
    size_mult: float,
    costs: Costs,
    live: bool,
    *,
    equity: Decimal,
    day_start,
    open_order,
    available,
    atr,
    others,
) -> tuple[Decimal, Decimal | None, Decimal]:
    """The entry gates (``risk.entry_reason``), sizing (``strategies.sizing``) and the venue's
    rounding, on facts the caller gathered under the account's row lock: ``equity`` (quote
    currency), and callables for the rest, asked only when a gate needs them — ``day_start()``
    the day's start equity, ``open_order()`` whether the config has an entry order open on the
    symbol, ``available()`` the free quote balance, ``atr(params)`` the ATR for ATR sizing,
    ``others()`` the other configs' open positions and entry orders on the account and symbol
    (``orders.positions.opposite_reason``: one net position per symbol at the venue). Equity,
    balance and the daily limits are the whole account's. Returns
    ``(quantity, limit price or None, paper reserve)``; raises ``Rejected`` with the reason."""
    symbol = config.symbol
    side = Side.BUY if side_int == pm.LONG else Side.SELL
    facts = risk.EntryFacts(
        halted=account.halted,
        halted_reason=account.halted_reason,
        config_active=config.is_active,
        leverage=config.leverage,
        max_leverage=symbol.max_leverage,
        symbol=str(symbol),
        day_start_equity=day_start(),
        equity=equity,
        daily_target_pct=config.daily_target_pct,
        daily_max_loss_pct=config.daily_max_loss_pct,
        open_order_for_symbol=open_order(),
    )
    why = risk.entry_reason(facts)
    if why:
        raise Rejected(why)
    why = net.opposite_reason(symbol, side_int, others()) if (
        symbol.market_type == Symbol.MarketType.PERPETUAL) else ""
    if why:
        raise Rejected(why)
    if symbol.quote != account.quote_asset:
        raise Rejected(
            f"{symbol} is quoted in {symbol.quote} but account {account.label} measures equity "
            f"in {account.quote_asset}; use an account whose quote asset is {symbol.quote}"
        )
    leverage = config.leverage if symbol.market_type == Symbol.MarketType.PERPETUAL else 1
    limit = limit_price(symbol, side, last_price, costs)
    fill_estimate = pm.slipped_price(float(last_price), side_int, costs.slippage_bps)
    worst = float(limit) if limit is not None else fill_estimate
    params = config.sizing()
    wanted = sizing.quantity(
        params,
        equity=float(equity),
        price=fill_estimate,
        leverage=float(leverage),
        atr=atr(params),
        trade_returns=_trade_returns(config) if isinstance(params, sizing.Kelly) else (),
    ) * size_mult
    available = available()
    room = pm.affordable_quantity(float(available), worst, float(leverage), costs.fee_rate)
    info = symbol_info(symbol)
    want_qty = rounding.round_quantity(dec(max(wanted, 0.0)), info)
    qty = rounding.round_quantity(dec(max(min(wanted, room), 0.0)), info)
    price_for_checks = dec(worst)
    minimum = dict(
        min_qty=symbol.min_qty, min_notional=symbol.min_notional, quote=symbol.quote,
        symbol=str(symbol),
    )
    why = risk.min_order_reason(want_qty, price_for_checks, **minimum)
    if why:
        raise Rejected(why)
    if risk.min_order_reason(qty, price_for_checks, **minimum):
        needed_qty = max(symbol.min_notional / price_for_checks, symbol.min_qty, info.step_size)
        needed = needed_qty * price_for_checks * (
            1 / Decimal(leverage) + Decimal(repr(costs.fee_rate))
        )
        raise Rejected(
            risk.balance_reason(available, needed.quantize(Decimal("0.01"), ROUND_CEILING),
                                account.quote_asset, what="the smallest order the venue takes")
            or "insufficient balance"
        )
    reserve = ZERO
    if not live:
        reserve = (qty * dec(worst) * (1 / Decimal(leverage) + Decimal(repr(costs.fee_rate))))
        reserve = min(reserve.quantize(RESERVE_PLACES, ROUND_CEILING), available)
    return qty, limit, reserve


def _new_order(
    account, symbol, *, side, quantity, price, reason, config=None, signal=None,
    reduce_only=False, reserve=ZERO, reserve_asset="",
) -> Order:
    """Save an order (status ``new``, fresh client order id) and reserve its paper funds."""
    order = _order_row(
        account, symbol, side=side, quantity=quantity, price=price, reason=reason,
        config=config, signal=signal, reduce_only=reduce_only, reserve=reserve,
        reserve_asset=reserve_asset,
    )
    order.save(force_insert=True)
    if reserve:
        _move(account, reserve_asset, -reserve, reserve)
    return order


def _order_row(
    account, symbol, *, side, quantity, price, reason, config=None, signal=None,
    reduce_only=False, reserve=ZERO, reserve_asset="",
) -> Order:
    """An unsaved order, status ``new``, with a fresh client order id (and its paper reserve
    noted in ``raw``; the caller moves the funds)."""
    return Order(
        account=account,
        config=config,
        signal=signal,
        symbol=symbol,
        side=side,
        type=Order.Type.LIMIT if price is not None else Order.Type.MARKET,
        price=price,
        quantity=quantity,
        reduce_only=reduce_only,
        client_order_id=new_client_order_id(),
        reason=reason[:64],
        raw={"reserved": str(reserve), "reserved_asset": reserve_asset} if reserve else {},
    )


def _reject_order(order: Order, reason: str) -> None:
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
        if order.status not in Order.OPEN_STATUSES:
            return
        _release(order)
        order.status = Order.Status.REJECTED
        order.reject_reason = reason[:2000]
        order.save(update_fields=["status", "reject_reason", "raw", "updated_at"])
        _push_later(order.account.owner_id, wire.ORDER_UPDATED, order_payload(order))


def _release(order: Order) -> None:
    """Return an order's reserved paper funds to free (once)."""
    raw = dict(order.raw or {})
    reserved = Decimal(raw.get("reserved", "0"))
    if reserved and not raw.get("released"):
        # SQLite stores decimals as REAL (15 significant digits): never release more than
        # is locked.
        locked = _balance(order.account, raw["reserved_asset"]).locked
        reserved = min(reserved, locked)
        _move(order.account, raw["reserved_asset"], reserved, -reserved)
        raw["released"] = True
        order.raw = raw


@batched
def send_order(order: Order, broker: Broker, *, last_price: Decimal, ts_ms: int) -> Order:
    """Send a saved ``new`` order through ``broker`` and apply the answer. A venue rejection
    becomes status ``rejected``; an unknown outcome stays ``submitted`` (never re-sent: the
    adapter already looked it up by client order id); bad keys halt the account. A live order
    is marked ``submitted`` before it leaves (a paper order never leaves the process), and
    only if this call moved it out of ``new``: one cancelled meanwhile (the kill switch) or
    already sent is not sent again."""
    if broker.live:
        claimed = Order.objects.filter(pk=order.pk, status=Order.Status.NEW).update(
            status=Order.Status.SUBMITTED
        )
        if not claimed:
            log.warning("order %s is no longer new; not sent", order.client_order_id)
            return Order.objects.get(pk=order.pk)
    symbol = order.symbol
    # A live buy by quote amount leaves the quantity to the venue; paper bought it already.
    by_quote = order.quote_amount is not None and broker.live
    request = OrderRequest(
        symbol=symbol.code,
        side=order.side,
        type=order.type,
        quantity=None if by_quote else order.quantity,
        quote_amount=order.quote_amount if by_quote else None,
        price=order.price,
        client_order_id=order.client_order_id,
        reduce_only=order.reduce_only and symbol.market_type == Symbol.MarketType.PERPETUAL,
    )
    try:
        perpetual = symbol.market_type == Symbol.MarketType.PERPETUAL
        if broker.live and perpetual and not order.reduce_only:
            leverage = order.config.leverage if order.config_id else 1
            broker.prepare_futures(symbol.code, leverage)
        info = broker.place(request, last_price=last_price, ts_ms=ts_ms)
    except (OrderRejected, InsufficientFunds, ValueError) as exc:
        _reject_order(order, f"rejected by {symbol.exchange}: {exc}")
        return Order.objects.get(pk=order.pk)
    except AuthenticationError as exc:
        _reject_order(order, f"the venue refused the API key: {exc}")
        halt_account(order.account, f"API key refused by {symbol.exchange}: {exc}")
        return Order.objects.get(pk=order.pk)
    except (OrderStatusUnknown, TemporaryExchangeError, ExchangeError) as exc:
        Order.objects.filter(pk=order.pk).update(
            reject_reason=f"outcome unknown, reconcile with the venue: {exc}"[:2000]
        )
        log.warning("order %s outcome unknown: %s", order.client_order_id, exc)
        return Order.objects.get(pk=order.pk)
    return apply_order_info(order, info)


@batched
def apply_order_info(order: Order, info: OrderInfo, *, close_reason: str = "") -> Order:
    """Apply a broker's answer to ``order``: new fills (unique per trade id, so a replay is
    harmless), the position, paper balances, status. One transaction, rows locked."""
    with transaction.atomic():
        account = Account.objects.select_for_update(of=("self",)).get(pk=order.account_id)
        order = (
            Order.objects.select_for_update(of=("self",))
            .select_related("symbol__exchange", "config", "account")
            .get(pk=order.pk)
        )
        existing = list(order.fills.all())
        known = {f.trade_id for f in existing}
        fills = list(info.fills)
        filled_before = sum((f.quantity for f in existing), ZERO)
        if not fills and info.filled_quantity and info.filled_quantity > filled_before:
            # A venue answer without trade details: one fill for the newly filled amount.
            fills = [
                _synthetic_fill(info, info.filled_quantity - filled_before)
            ]
        paper = account.mode == Account.Mode.PAPER
        if paper and (info.is_final or fills):
            _release(order)
        for item in fills:
            if item.trade_id in known:
                continue
            fill = Fill.objects.create(
                order=order,
                trade_id=item.trade_id,
                price=item.price,
                quantity=item.quantity,
                fee=item.fee or ZERO,
                fee_asset=item.fee_asset or account.quote_asset,
                is_maker=bool(item.is_maker),
                ts=ms_to_dt(item.ts_ms),
            )
            existing.append(fill)
            _apply_fill(account, order, fill, paper=paper, close_reason=close_reason)
            _push_later(account.owner_id, wire.FILL_CREATED, fill_payload(fill))
        order.status = info.status if info.status in Order.Status.values else order.status
        if info.status == "new":
            order.status = Order.Status.OPEN
        order.exchange_order_id = info.exchange_order_id or order.exchange_order_id
        filled = sum((f.quantity for f in existing), ZERO)
        if order.quote_amount is not None and filled > 0 and (
            info.is_final or filled > order.quantity
        ):
            order.quantity = filled  # bought by quote amount: the venue's quantity, not ours
        order.filled_quantity = min(filled, order.quantity)
        order.average_price = info.average_price or order.average_price
        order.fee = sum((f.fee for f in existing), ZERO)
        order.fee_asset = account.quote_asset
        raw = dict(order.raw or {})
        raw["venue"] = info.raw if isinstance(info.raw, dict) else {}
        order.raw = raw
        order.save()
        _push_later(account.owner_id, wire.ORDER_UPDATED, order_payload(order))
    if protection.needs_protection(order, account):
        # Venue stops for the position, once this fill is committed (nothing is sent inside
        # a transaction). In memory: paper and spot orders pay nothing here.
        transaction.on_commit(functools.partial(protection.after_fill, order.pk))
    return order


def _synthetic_fill(info: OrderInfo, quantity: Decimal):
    from markets.exchanges.base import FillInfo

    total = info.filled_quantity
    return FillInfo(
        trade_id=f"{info.exchange_order_id}:{total.normalize():f}",
        price=info.average_price or info.price,
        quantity=quantity,
        fee=(info.fee or ZERO) * quantity / total if total else ZERO,
        fee_asset=None,
        ts_ms=now_ms(),
    )


def _apply_fill(account, order, fill, *, paper: bool, close_reason: str) -> None:
    """One fill's effect on its order's position (and the paper book): the position of the
    order's config (a venue stop: the position it protects; a manual order: the account's
    manual position), never another config's."""
    symbol = order.symbol
    perpetual = symbol.market_type == Symbol.MarketType.PERPETUAL
    if order.position_id is not None:
        position = (
            Position.objects.select_for_update(of=("self",))
            .filter(pk=order.position_id, closed_at__isnull=True).first()
        )
    else:
        position = _open_position(account.pk, symbol.pk, config_id=order.config_id, lock=True)
    direction = pm.BUY if order.side == Side.BUY else pm.SELL
    qty, price, fee = fill.quantity, fill.price, fill.fee
    if order.reduce_only and perpetual and (position is None or _side_int(position) == direction):
        # A reduce-only fill with nothing here to reduce (the venue and this database
        # disagree): never let it open or grow a position (for a venue stop,
        # orders.protection.settle also halts the account).
        log.warning("reduce-only fill %s of %s has no position to reduce", fill.trade_id, order)
        return
    if position is not None and _side_int(position) != direction:
        reduce = min(qty, position.quantity)
        _reduce(account, position, order, reduce, price, fee * reduce / qty, fill.ts,
                paper=paper, perpetual=perpetual, reason=close_reason or order.reason)
        qty -= reduce
        fee -= fee * reduce / fill.quantity
        position = None
        if qty <= 0 or order.reduce_only:
            return
    if not perpetual and direction == pm.SELL:
        # A spot sell without a long position: selling holdings, no position to track.
        if paper:
            _move(account, symbol.base, -qty)
            _move(account, symbol.quote, qty * price - fee)
        return
    _increase(account, position, order, direction, qty, price, fee, fill.ts, paper=paper,
              perpetual=perpetual)


def _levels(config: StrategyConfig | None, side: int, entry: Decimal):
    if config is None:
        return None, None
    stop = pm.stop_price(side, float(entry), float(config.stop_loss_pct or 0))
    target = pm.target_price(side, float(entry), float(config.take_profit_pct or 0))
    return (None if math.isnan(stop) else dec(stop)), (None if math.isnan(target) else dec(target))


def _liquidation(side, qty, entry, margin, leverage) -> Decimal | None:
    if leverage <= 1 and side == pm.LONG:
        return None
    value = pm.liquidation_price(
        side, float(qty), float(entry), float(margin), pm.RiskParams().maintenance_margin_rate
    )
    return None if math.isnan(value) or value <= 0 else dec(value)


def _increase(account, position, order, direction, qty, price, fee, ts, *, paper, perpetual):
    config = order.config
    leverage = (config.leverage if config else 1) if perpetual else 1
    if position is not None:
        leverage = position.leverage
    margin = (qty * price / leverage).quantize(PLACES)
    if paper:
        if perpetual:
            _move(account, order.symbol.quote, -(margin + fee))
        else:
            _move(account, order.symbol.quote, -(qty * price + fee))
            _move(account, order.symbol.base, qty)
    if position is None:
        side = Position.PositionSide.LONG if direction == pm.LONG else Position.PositionSide.SHORT
        stop, target = _levels(config, direction, price)
        position = Position.objects.create(
            account=account,
            config=config,
            symbol=order.symbol,
            side=side,
            quantity=qty,
            entry_price=price,
            leverage=leverage,
            margin=margin,
            stop_price=stop,
            target_price=target,
            trailing_stop_pct=config.trailing_stop_pct if config else None,
            best_price=price,
            liquidation_price=_liquidation(direction, qty, price, margin, leverage),
            realized_pnl=-fee,
            opened_at=ts,
        )
    else:
        entry = dec(pm.average_entry(float(position.quantity), float(position.entry_price),
                                     float(qty), float(price)))
        position.quantity += qty
        position.entry_price = entry
        position.margin += margin
        position.realized_pnl -= fee
        position.stop_price, position.target_price = _levels(position.config, direction, entry)
        position.liquidation_price = _liquidation(
            direction, position.quantity, entry, position.margin, position.leverage
        )
        position.save()
    _push_later(account.owner_id, wire.POSITION_UPDATED, position_payload(position))


def _reduce(account, position, order, qty, price, fee, ts, *, paper, perpetual, reason):
    side = _side_int(position)
    liquidated = reason == "liquidation"
    share = qty / position.quantity
    released = (position.margin * share).quantize(PLACES)
    pnl = -released if liquidated else side * qty * (price - position.entry_price)
    if paper:
        if perpetual:
            back = ZERO if liquidated else released + pnl - fee
            if back < 0:
                log.warning("paper %s: loss beyond margin on %s", account, position)
                back = ZERO
            _move(account, order.symbol.quote, back)
        else:
            _move(account, order.symbol.base, -qty)
            _move(account, order.symbol.quote, qty * price - fee)
    position.quantity -= qty
    position.margin -= released
    position.realized_pnl += pnl - fee
    if position.quantity <= 0:
        position.quantity = ZERO
        position.closed_at = ts
        position.close_reason = (reason or "signal")[:32]
    position.save()
    _push_later(account.owner_id, wire.POSITION_UPDATED, position_payload(position))


def account_payload(account: Account) -> dict:
    return {
        "id": account.pk,
        "label": account.label,
        "mode": account.mode,
        "halted": account.halted,
        "halted_reason": account.halted_reason,
    }


def halt_account(account: Account, reason: str) -> None:
    """Halt one account (bad API keys, kill switch) and tell its owner (``account.updated``)."""
    changed = Account.objects.filter(pk=account.pk, halted=False).update(
        halted=True, halted_at=timezone.now(), halted_reason=reason[:255]
    )
    if changed:
        account = Account.objects.get(pk=account.pk)
        push_to_user(account.owner_id, wire.ACCOUNT_UPDATED, account_payload(account))


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
    unavailable = ""
    try:
        broker = broker or broker_for(config.account)
        if broker.live:
            sync_balances(config.account, broker.balances())
    except (BrokerUnavailable, ExchangeError) as exc:
        unavailable = str(exc)
    if not unavailable and broker.live:
        # A late evaluate (a worker backlog) must not send a live order at a stale price.
        max_age_s = float(getattr(settings, "TRADING_MAX_SIGNAL_AGE_S", 120))
        age_s = (now_ms() - at_ms) / 1000
        if age_s > max_age_s:
            unavailable = (
                f"signal is {age_s:.0f} s old (more than {max_age_s:.0f} s); not sent live"
            )
    try:
        with transaction.atomic():
            account = Account.objects.select_for_update(of=("self",)).get(pk=config.account_id)
            config.account = account
            signal = Signal.objects.select_for_update(of=("self",)).get(pk=signal.pk)
            stored = (signal.reason or {}).get("execution")
            if stored:
                return Execution(
                    stored["status"], stored.get("reason", ""), stored.get("orders", [])
                )
            result = _signal_gate(account, config, unavailable)
            if result is not None:
                _mark(signal, result)
                return result
            position = _open_position(
                account.pk, config.symbol_id, config_id=config.pk, lock=True
            )
            plan = risk.plan_action(
                signal.action,
                _side_int(position),
                can_short=config.symbol.market_type == Symbol.MarketType.PERPETUAL,
            )
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
    (``orders.protection.release``); when one already executed or its state is unknown, the
    close is withdrawn unsent, so the position is closed once."""
    if broker.live:
        position = _open_position(
            close.account_id, close.symbol_id, config_id=close.config_id, lock=False
        )
        if position is not None and not protection.release(position, broker, close.reason):
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
    max_age_s = float(getattr(settings, "TRADING_MAX_SIGNAL_AGE_S", 120))
    costs = default_costs()  # read from settings once per bar, not once per account
    for config in configs:
        if config.account_id in out:
            continue
        broker, unavailable = None, ""
        try:
            broker = broker_for(config.account, costs)
            if broker.live:
                sync_balances(config.account, broker.balances())
        except (BrokerUnavailable, ExchangeError) as exc:
            unavailable = str(exc)
        if not unavailable and broker.live:
            age_s = (now_ms() - at_ms) / 1000
            if age_s > max_age_s:
                unavailable = (
                    f"signal is {age_s:.0f} s old (more than {max_age_s:.0f} s); not sent live"
                )
        out[config.account_id] = (broker, unavailable)
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


def _update_rows(model, rows, fields: list[str]) -> None:
    """``UPDATE`` each of ``rows`` (saved instances) with its values of ``fields``, in one
    ``executemany``: ``bulk_update``'s ``CASE WHEN`` costs about a millisecond of query
    building per row, which a bar of a hundred orders cannot afford. Values are prepared by
    the fields themselves, as ``save()`` prepares them."""
    from django.db import connection

    quote = connection.ops.quote_name
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(meta.db_table),
        ", ".join(f"{quote(field.column)} = %s" for field in columns),
        quote(meta.pk.column),
    )
    params = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for field in columns]
        + [row.pk]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


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
        done = (signal.reason or {}).get("execution")
        if done:
            results[i] = Execution(done["status"], done.get("reason", ""), done.get("orders", []))
            continue
        book = books[config.account_id]
        config.account = book.account
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
        plan = risk.plan_action(
            signal.action,
            _side_int(position),
            can_short=config.symbol.market_type == Symbol.MarketType.PERPETUAL,
        )
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
                    (config_id, pm.BUY if side == Side.BUY else pm.SELL)
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
            size = (signal.reason or {}).get("size", 1.0)
            size = 0.0 if size is None else float(size)
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
                side=Side.BUY if plan.open_side == pm.LONG else Side.SELL,
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
    size = (signal.reason or {}).get("size", 1.0)
    size = 0.0 if size is None else float(size)
    if not size > 0:
        return None, Execution("ignored" if not orders else "ordered", "signal size is 0", orders)
    try:
        with transaction.atomic():
            qty, price, reserve = _entry_order(
                account, config, position, plan.open_side, last_price, size, at_ms,
                broker.costs, broker,
            )
            side = Side.BUY if plan.open_side == pm.LONG else Side.SELL
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


@batched
def close_position(
    position: Position,
    reason: str,
    *,
    last_price: Decimal,
    ts_ms: int | None = None,
    broker: Broker | None = None,
    signal: Signal | None = None,
    use_limit: bool = False,
) -> Order | None:
    """Close the whole ``position`` through the broker at ``last_price`` (the exit guard's
    trigger price or a signal's close). A reduce-only order (market, or a limit offset by
    the aggressiveness for signal exits). Protective closes run on halted accounts too.
    A paper liquidation loses the margin: recorded as a fill at the liquidation price, no fee.
    Returns the order, or None when the position is already closed or has a close in flight.

    Venue stops of the position are cancelled first (``orders.protection.release``); when one
    already executed, the venue closed the position (its fill is applied) and nothing is sent.
    """
    ts_ms = now_ms() if ts_ms is None else ts_ms
    if not protection.release(position, broker, reason):
        return None
    with transaction.atomic():
        account = Account.objects.select_for_update(of=("self",)).get(pk=position.account_id)
        position = (
            Position.objects.select_for_update(of=("self",))
            .select_related("symbol__exchange", "config")
            .filter(pk=position.pk, closed_at__isnull=True)
            .first()
        )
        if position is None or position.quantity <= 0:
            return None
        if Order.objects.filter(
            account=account, symbol=position.symbol, reduce_only=True,
            status__in=Order.OPEN_STATUSES, **_bucket(position.config_id),
        ).exists():
            return None  # this position's own close is in flight
        broker = broker or broker_for(account)
        side = Side.SELL if position.side == Position.PositionSide.LONG else Side.BUY
        price = limit_price(position.symbol, side, last_price, broker.costs) if use_limit else None
        order = _new_order(
            account, position.symbol, side=side, quantity=position.quantity, price=price,
            reason=reason, config=position.config, signal=signal, reduce_only=True,
        )
    if reason == "liquidation" and not broker.live:
        from markets.exchanges.base import FILLED, FillInfo

        fill = FillInfo(
            trade_id=f"liquidation-{order.client_order_id}", price=last_price,
            quantity=order.quantity, fee=ZERO, fee_asset=None, ts_ms=ts_ms,
        )
        info = OrderInfo(
            exchange_order_id=f"paper-{order.client_order_id}",
            client_order_id=order.client_order_id, symbol=position.symbol.code, side=side,
            type="market", status=FILLED, price=None, quantity=order.quantity,
            filled_quantity=order.quantity, average_price=last_price, fee=ZERO, fills=[fill],
            raw={"paper": True, "liquidation": True}, reduce_only=True,
        )
        return apply_order_info(order, info, close_reason=reason)
    if broker.live:
        Order.objects.filter(pk=order.pk, status=Order.Status.NEW).update(
            status=Order.Status.SUBMITTED
        )
    try:
        info = broker.place(
            OrderRequest(
                symbol=position.symbol.code, side=side, type=order.type,
                quantity=order.quantity, price=order.price,
                client_order_id=order.client_order_id,
                reduce_only=position.symbol.market_type == Symbol.MarketType.PERPETUAL,
            ),
            last_price=last_price, ts_ms=ts_ms,
        )
    except (OrderRejected, InsufficientFunds, ValueError) as exc:
        _reject_order(order, f"close rejected by {position.symbol.exchange}: {exc}")
        return Order.objects.get(pk=order.pk)
    except ExchangeError as exc:
        Order.objects.filter(pk=order.pk).update(
            reject_reason=f"outcome unknown, reconcile with the venue: {exc}"[:2000]
        )
        return Order.objects.get(pk=order.pk)
    return apply_order_info(order, info, close_reason=reason)


def track_best_price(position: Position, price: float) -> None:
    """Move the trailing stop's best price (highest for a long, lowest for a short)."""
    best = position.best_price
    value = dec(price)
    if best is not None and (
        (position.side == Position.PositionSide.LONG and value <= best)
        or (position.side == Position.PositionSide.SHORT and value >= best)
    ):
        return
    Position.objects.filter(pk=position.pk, closed_at__isnull=True).update(best_price=value)
    position.best_price = value


@batched
def match_resting_orders(symbol: Symbol, price: Decimal, ts_ms: int) -> int:
    """Fill paper limit orders on ``symbol`` that ``price`` crossed. Returns how many filled."""
    filled = 0
    resting = Order.objects.filter(
        symbol=symbol, status=Order.Status.OPEN, type=Order.Type.LIMIT,
        account__mode=Account.Mode.PAPER,
    ).select_related("account", "symbol__exchange")
    for order in resting:
        broker = broker_for(order.account)
        info = broker.match(_order_info(order), price=price, ts_ms=ts_ms)
        if info is not None:
            apply_order_info(order, info)
            filled += 1
    return filled


def _order_info(order: Order) -> OrderInfo:
    return OrderInfo(
        exchange_order_id=order.exchange_order_id, client_order_id=order.client_order_id,
        symbol=order.symbol.code, side=order.side, type=order.type, status=order.status,
        price=order.price, quantity=order.quantity, filled_quantity=order.filled_quantity,
        average_price=order.average_price, fee=order.fee, reduce_only=order.reduce_only,
    )


@batched
def reconcile_live_orders(account_ids=None, broker_factory=None) -> int:
    """Ask the venue about every live order still ``submitted`` (outcome unknown), ``open`` or
    ``partially_filled``, by client order id, and apply the answer (fills, position, status).
    This is how a placement that timed out is settled without ever re-sending it. Returns the
    number of orders whose state changed."""
    from markets.exchanges.errors import OrderNotFound

    broker_factory = broker_factory or broker_for
    orders = Order.objects.filter(
        account__mode=Account.Mode.LIVE,
        status__in=[Order.Status.SUBMITTED, Order.Status.OPEN, Order.Status.PARTIALLY_FILLED],
        trigger_price__isnull=True,  # venue stops: orders.protection.reconcile_stops
    ).select_related("account__exchange", "symbol__exchange")
    if account_ids is not None:
        orders = orders.filter(account_id__in=list(account_ids))
    changed = 0
    brokers: dict[int, Broker] = {}
    for order in orders:
        try:
            broker = brokers.get(order.account_id) or broker_factory(order.account)
            brokers[order.account_id] = broker
            info = broker.fetch(order.symbol.code, order.client_order_id, order.exchange_order_id)
        except OrderNotFound:
            if order.status == Order.Status.SUBMITTED:
                _reject_order(order, "the venue has no such order: it never arrived")
                changed += 1
            continue
        except (BrokerUnavailable, ExchangeError) as exc:
            log.warning("reconcile %s: %s", order.client_order_id, exc)
            continue
        before = (order.status, order.filled_quantity)
        order = apply_order_info(order, info)
        changed += int((order.status, order.filled_quantity) != before)
    return changed


# ------------------------------------------------------------------------ manual orders


#: The largest price or quantity a Money column reads back (18 digits before the point; SQLite
#: keeps them as doubles, so a larger value would be stored but no query could load it).
MAX_AMOUNT = Decimal(10) ** 17


def _amount(value, name: str) -> Decimal:
    """``value`` as a finite Decimal in (0, MAX_AMOUNT); ValueError naming ``name``."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{name} must be a number; got {str(value)[:40]!r}") from None
    if not number.is_finite() or number <= 0 or number >= MAX_AMOUNT:
        raise ValueError(f"{name} must be more than 0 and below 1E17; got {number:.6g}")
    return number


#: The models' 12 decimal places.
QUANTITY_PLACES = Decimal("1e-12")


def _quote_sized(symbol: Symbol, side: str, price, broker: Broker) -> None:
    """ValueError unless a market buy by quote amount is what this order can be."""
    if side != Side.BUY or price is not None:
        raise ValueError(
            "quote_amount sizes a market buy only; give quantity for a sell or a limit order"
        )
    if symbol.market_type != Symbol.MarketType.SPOT:
        raise ValueError(f"{symbol} is a perpetual: size the order by quantity (contracts)")
    if not broker.market_buy_by_quote:
        raise ValueError(
            f"{symbol.exchange} takes a market buy by quantity, not quote_amount; send quantity"
        )


def _quote_quantity(symbol, info, quote_amount: Decimal, last_price: Decimal, broker) -> Decimal:
    """The quantity ``quote_amount`` buys: paper, at the fill price (last price + slippage) with
    the fee inside the amount, on the step; live, the estimate at the last price (the venue
    decides what it buys, and ``apply_order_info`` records that)."""
    if broker.live:
        return (quote_amount / last_price).quantize(QUANTITY_PLACES, ROUND_FLOOR)
    fill_price = getattr(broker, "fill_price", None)
    fill = fill_price(Side.BUY, last_price, None) if fill_price else (
        last_price * (1 + Decimal(repr(broker.costs.slippage_bps)) / 10_000)
    )
    rate = Decimal(repr(broker.costs.fee_rate))
    quantity = rounding.round_quantity(quote_amount / (fill * (1 + rate)), info)
    quantity = quantity.quantize(QUANTITY_PLACES, ROUND_FLOOR)
    # The fee is rounded to 12 places: never let that rounding spend past the amount.
    while quantity > 0 and quantity * fill + (quantity * fill * rate).quantize(
        QUANTITY_PLACES
    ) > quote_amount:
        quantity -= info.step_size or QUANTITY_PLACES
    return quantity


@batched
def place_manual_order(
    account: Account,
    symbol: Symbol,
    *,
    side: str,
    quantity: Decimal | None = None,
    price: Decimal | None = None,
    last_price: Decimal,
    quote_amount: Decimal | None = None,
    ts_ms: int | None = None,
    broker: Broker | None = None,
) -> Order:
    """A person's order (API): same gates (halted, minimum, balance), same persistence. A gate
    failure is stored as a rejected Order with the reason. A market buy is sized by exactly one
    of ``quantity`` (base asset) or ``quote_amount`` (quote currency to spend), as the venue
    takes it (Upbit only by quote amount, Binance futures only by quantity). Paper spends at
    most ``quote_amount`` fees included; live, the venue applies its own fee (Upbit on top)."""
    ts_ms = now_ms() if ts_ms is None else ts_ms
    if side not in Side.values:
        raise ValueError("side must be buy or sell")
    if (quantity is None) == (quote_amount is None):
        raise ValueError("give exactly one of quantity or quote_amount")
    price = None if price is None else _amount(price, "price")
    broker = broker or broker_for(account)
    info = symbol_info(symbol)
    if quote_amount is not None:
        quote_amount = _amount(quote_amount, "quote_amount")
        _quote_sized(symbol, side, price, broker)
        if quote_amount >= MAX_ORDER_VALUE:
            raise ValueError(
                f"quote_amount is {quote_amount:.3E} {symbol.quote}, beyond any balance (the "
                f"limit is {MAX_ORDER_VALUE:.0E})"
            )
        quantity = _quote_quantity(symbol, info, quote_amount, last_price, broker)
        if quantity <= 0:
            raise ValueError(
                f"quote_amount {quote_amount.normalize():f} {symbol.quote} buys less than one "
                f"step of {symbol} at {last_price.normalize():f}; spend more"
            )
    else:
        quantity = _amount(quantity, "quantity")
        if side == Side.BUY and price is None and not broker.market_buy_by_quantity:
            raise ValueError(
                f"{symbol.exchange} sizes a market buy by quote_amount ({symbol.quote} to "
                "spend), not quantity; send quote_amount"
            )
        quantity = rounding.round_quantity(quantity, info)
    if quantity <= 0:
        raise ValueError(
            f"quantity rounds down to 0 with the step {symbol.step_size.normalize():f} of {symbol}"
        )
    if price is not None:
        price = round_price(symbol, price, side)
        if price <= 0:
            raise ValueError(f"price rounds to 0 on the tick of {symbol}; give a higher price")
    reference = price if price is not None else last_price
    if quantity * reference >= MAX_ORDER_VALUE:
        raise ValueError(
            f"quantity x price is {quantity * reference:.3E} {symbol.quote}, beyond any "
            f"balance (the limit is {MAX_ORDER_VALUE:.0E}); check quantity and price"
        )
    reason = None
    with transaction.atomic():
        account = Account.objects.select_for_update(of=("self",)).get(pk=account.pk)
        reason = risk.halted_reason(account.halted, account.halted_reason)
        if quote_amount is not None and symbol.min_notional and (
            quote_amount < symbol.min_notional
        ):
            reason = reason or (
                f"quote_amount {quote_amount.normalize():f} {symbol.quote} is below the venue "
                f"minimum {symbol.min_notional.normalize():f} {symbol.quote} for {symbol}"
            )
        if not reason and symbol.market_type == Symbol.MarketType.PERPETUAL:
            # One net position per symbol at the venue: a manual order may reduce the manual
            # position, never open against a config's (it would reduce or reverse it there).
            manual = _open_position(account.pk, symbol.pk, config_id=None, lock=True)
            direction = pm.BUY if side == Side.BUY else pm.SELL
            if manual is None or _side_int(manual) == direction or quantity > manual.quantity:
                reason = net.opposite_reason(
                    symbol, direction, net.others_on_symbol(account.pk, symbol.pk, None)
                )
        reason = reason or risk.min_order_reason(
            quantity, reference, min_qty=symbol.min_qty,
            min_notional=None if quote_amount is not None else symbol.min_notional,
            quote=symbol.quote, symbol=str(symbol),
        )
        reserve, reserve_asset = ZERO, ""
        if not reason and not broker.live:
            fee_rate = Decimal(repr(broker.costs.fee_rate))
            worst = price if price is not None else (
                last_price * (1 + Decimal(repr(broker.costs.slippage_bps)) / 10_000)
            )
            if quote_amount is not None:  # what the trader said to spend, fees included
                reserve_asset, reserve = symbol.quote, quote_amount
            elif symbol.market_type == Symbol.MarketType.PERPETUAL or side == Side.BUY:
                reserve_asset = symbol.quote
                reserve = (quantity * worst * (1 + fee_rate)).quantize(
                    RESERVE_PLACES, ROUND_CEILING
                )
            else:
                reserve_asset, reserve = symbol.base, quantity
            reason = risk.balance_reason(
                free_balance(account, reserve_asset), reserve, reserve_asset
            )
        if reason:
            order = Order.objects.create(
                account=account, symbol=symbol, side=side,
                type=Order.Type.LIMIT if price is not None else Order.Type.MARKET,
                price=price, quantity=quantity, quote_amount=quote_amount,
                client_order_id=new_client_order_id(), reason="manual",
                status=Order.Status.REJECTED, reject_reason=reason,
            )
            _push_later(account.owner_id, wire.ORDER_UPDATED, order_payload(order))
            return order
        order = _order_row(
            account, symbol, side=side, quantity=quantity, price=price, reason="manual",
            reserve=reserve, reserve_asset=reserve_asset,
        )
        order.quote_amount = quote_amount
        order.save(force_insert=True)
        if reserve:
            _move(account, reserve_asset, -reserve, reserve)
    return send_order(order, broker, last_price=last_price, ts_ms=ts_ms)


@batched
def cancel_order(order: Order, reason: str = "cancelled by user", broker: Broker | None = None):
    """Cancel an open order: at the venue first for live accounts, then here."""
    if order.status not in Order.OPEN_STATUSES:
        return order
    account = order.account
    if order.trigger_price is not None:
        return protection.cancel_stop_order(order, reason, broker)
    if account.mode == Account.Mode.LIVE:
        broker = broker or broker_for(account)
        info = broker.cancel(order.symbol.code, order.client_order_id, order.exchange_order_id)
        order = apply_order_info(order, info)
        if order.status not in Order.OPEN_STATUSES:
            Order.objects.filter(pk=order.pk).update(reject_reason=reason[:2000])
        return Order.objects.get(pk=order.pk)
    return _cancel_here(order, reason)


def _cancel_here(order: Order, reason: str) -> Order:
    """Cancel an order no venue holds (a paper order, or one never sent): its reserved funds
    are released and the reason recorded, once, under the order's row lock."""
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(of=("self",)).select_related("account").get(pk=order.pk)
        )
        if order.status in Order.OPEN_STATUSES:
            _release(order)
            order.status = Order.Status.CANCELLED
            order.reject_reason = reason[:2000]
            order.save(update_fields=["status", "reject_reason", "raw", "updated_at"])
            _push_later(order.account.owner_id, wire.ORDER_UPDATED, order_payload(order))
    return order


def snapshot_equity(now=None) -> int:
    """Store one EquitySnapshot per account at ``now`` (UTC, truncated to the second).
    Idempotent for a given ``now``. Returns the number of snapshots written."""
    from orders.equity import value_account

    now = (now or timezone.now()).replace(microsecond=0)
    written = 0
    for account in Account.objects.select_related("exchange"):
        valuation = value_account(account)
        if valuation.unpriced_assets:
            log.warning(
                "equity of %s leaves out unpriced %s", account, ", ".join(valuation.unpriced_assets)
            )
        _, created = EquitySnapshot.objects.get_or_create(
            account=account, ts=now, defaults={"equity": valuation.equity, "cash": valuation.cash}
        )
        written += int(created)
    return written
