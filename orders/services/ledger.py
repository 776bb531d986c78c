"""The ledger: the only writer of orders, fills, positions and paper balances.

It saves orders (with their paper reserve), applies a broker's answer (``apply_order_info``:
fills, position, balances, status, in one locked transaction), cancels or rejects what no venue
holds, and halts accounts. It never sends anything and never asks for venue stops: a caller that
applies an entry fill asks ``orders.venue_stops`` (``orders.services.dispatch``), so the ledger
imports nothing of ``orders.venue_stops`` and ``orders.venue_stops`` may import it."""

from __future__ import annotations

import logging
import math
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from markets import wire
from markets.exchanges.base import OrderInfo
from markets.models import Account, Balance, Symbol
from orders.models import Fill, Order, Position, Side
from orders.push import batched, push_to_user
from orders.services import paper_book
from orders.services.common import (
    PLACES,
    ZERO,
    _open_position,
    _side_int,
    dec,
    ms_to_dt,
    new_client_order_id,
    now_ms,
)
from orders.services.paper_book import _balance, _move
from orders.services.payloads import (
    _push_later,
    account_payload,
    fill_payload,
    order_payload,
    position_payload,
)
from strategies import trade_math
from strategies.models import StrategyConfig

log = logging.getLogger(__name__)


def free_balance(account: Account, asset: str) -> Decimal:
    row = Balance.objects.filter(account=account, asset=asset).first()
    return row.free if row else ZERO


def sync_balances(account: Account, balances) -> None:
    """Store a live venue's balances (a full fetch: every asset) and mark the account confirmed
    by the venue now (``orders.venue_balances``)."""
    from orders import venue_balances

    venue_balances.store(account, balances, full=True)


# ------------------------------------------------------------------------ daily limits


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


def _plain(value) -> str:
    """A Decimal for a log line: no trailing zeros, no exponent."""
    return f"{Decimal(value).normalize():f}"


def log_order(order: Order) -> None:
    """One INFO line per order as it leaves for its broker (a trader's log)."""
    amount = (_plain(order.quantity) if order.quote_amount is None or order.quantity
              else f"{_plain(order.quote_amount)} {order.symbol.quote} of")
    log.info("order: %s %s %s %s%s on %s (%s, %s)", order.side, amount, order.symbol,
             order.type, f" at {_plain(order.price)}" if order.price is not None else "",
             order.account, order.reason or "manual", order.client_order_id)


def _reject_order(order: Order, reason: str) -> None:
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
        if order.status not in Order.OPEN_STATUSES:
            return
        _release(order)
        order.status = Order.Status.REJECTED
        order.reject_reason = reason[:2000]
        order.save(update_fields=["status", "reject_reason", "raw", "updated_at"])
        log.info("order rejected: %s %s %s on %s (%s): %s", order.side, _plain(order.quantity),
                 order.symbol, order.account, order.client_order_id, reason)
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
def apply_order_info(order: Order, info: OrderInfo, *, close_reason: str = "") -> Order:
    """Apply a broker's answer to ``order``: new fills (unique per trade id, so a replay is
    harmless), the position, paper balances, status. One transaction, rows locked."""
    with transaction.atomic():
        account = Account.objects.select_for_update(of=("self",)).get(pk=order.account_id)
        order = (
            Order.objects.select_for_update(of=("self",))
            .select_related("symbol__exchange", "config")
            .get(pk=order.pk)
        )
        order.account = account  # the row just locked (the same row, read once)
        if account.exchange_id == order.symbol.exchange_id:
            account.exchange = order.symbol.exchange  # for the log lines: no query each
        paper = account.mode == Account.Mode.PAPER
        with paper_book.read_together(account if paper else None,
                                      _fill_assets(order) if paper else ()):
            return _apply_in_transaction(account, order, info, close_reason)


def _fill_assets(order: Order) -> set[str]:
    """The paper balances an order's fills may move: its reserve's, its symbol's quote and
    (spot) base."""
    assets = {order.symbol.quote}
    if order.symbol.market_type != Symbol.MarketType.PERPETUAL:
        assets.add(order.symbol.base)
    reserved = (order.raw or {}).get("reserved_asset")
    if reserved:
        assets.add(reserved)
    return assets


def _apply_in_transaction(account: Account, order: Order, info: OrderInfo,
                          close_reason: str) -> Order:
    """:func:`apply_order_info` inside its transaction, account and order locked."""
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
        log.info("fill: %s %s %s at %s, fee %s %s (%s, %s order %s)", order.side,
                 _plain(fill.quantity), order.symbol, _plain(fill.price), _plain(fill.fee),
                 fill.fee_asset, account, order.reason or "manual", order.client_order_id)
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
    if position is not None:  # its config and symbol are the order's, read with it
        if position.symbol_id == symbol.pk:
            position.symbol = symbol
        if order.config_id is not None and position.config_id == order.config_id:
            position.config = order.config
    direction = trade_math.BUY if order.side == Side.BUY else trade_math.SELL
    qty, price, fee = fill.quantity, fill.price, fill.fee
    if order.reduce_only and perpetual and (position is None or _side_int(position) == direction):
        # A reduce-only fill with nothing here to reduce (the venue and this database
        # disagree): never let it open or grow a position (for a venue stop,
        # orders.venue_stops.settle also halts the account).
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
    if not perpetual and direction == trade_math.SELL:
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
    stop, target = trade_math.entry_levels(
        side, float(entry), float(config.stop_loss_pct or 0), float(config.take_profit_pct or 0)
    )
    return (None if math.isnan(stop) else dec(stop)), (None if math.isnan(target) else dec(target))


def _liquidation(side, qty, entry, margin, leverage) -> Decimal | None:
    if leverage <= 1 and side == trade_math.LONG:
        return None
    value = trade_math.liquidation_price(
        side, float(qty), float(entry), float(margin),
        trade_math.RiskParams().maintenance_margin_rate,
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
        side = (Position.PositionSide.LONG if direction == trade_math.LONG
                else Position.PositionSide.SHORT)
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
        entry = dec(trade_math.average_entry(float(position.quantity), float(position.entry_price),
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


def halt_account(account: Account, reason: str) -> None:
    """Halt one account (bad API keys, kill switch) and tell its owner (``account.updated``)."""
    changed = Account.objects.filter(pk=account.pk, halted=False).update(
        halted=True, halted_at=timezone.now(), halted_reason=reason[:255]
    )
    if changed:
        account = Account.objects.get(pk=account.pk)
        push_to_user(account.owner_id, wire.ACCOUNT_UPDATED, account_payload(account))



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
