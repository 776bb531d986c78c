"""A person's orders (the API and dashboard): validation of quantity, quote amount and
price, the same gates as signals (halt, minimum, balance, one net position per symbol), the same
persistence; and cancels (at the venue first for live accounts)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.db import transaction

from markets import wire
from markets.exchanges import rounding
from markets.models import Account, Symbol
from orders import positions as net
from orders import risk, venue_stops
from orders.brokers import Broker, broker_for
from orders.models import Order, Side
from orders.push import batched
from orders.services.common import (
    MAX_ORDER_VALUE,
    RESERVE_PLACES,
    ZERO,
    _open_position,
    _side_int,
    new_client_order_id,
    now_ms,
    round_price,
    symbol_info,
)
from orders.services.dispatch import (
    apply_order_info,
    send_order,
)
from orders.services.ledger import (
    _cancel_here,
    _move,
    _order_row,
    free_balance,
)
from orders.services.payloads import (
    _push_later,
    order_payload,
)
from strategies import trade_math

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
def _configs_coins_reason(account, symbol, quantity: Decimal, free: Decimal) -> str | None:
    """A manual spot sell may sell only coins no config's open position holds: a config's exit
    (or the kill switch closing its position) must find its own coins there."""
    held, names = net.held_by_configs(account.pk, symbol.base)
    if not held:
        return None  # no config holds any: the balance check (or the venue) decides
    available = max(free - held, ZERO)
    if quantity <= available:
        return None
    return (
        f"{held.normalize():f} of the free {free.normalize():f} {symbol.base} belong to the open "
        f"position(s) of {', '.join(names)}; a manual sell may sell at most "
        f"{available.normalize():f} {symbol.base}. Close those positions through their configs "
        f"or the kill switch"
    )


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
            direction = trade_math.BUY if side == Side.BUY else trade_math.SELL
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
        if not reason and side == Side.SELL and symbol.market_type == Symbol.MarketType.SPOT:
            reason = _configs_coins_reason(
                account, symbol, quantity, free_balance(account, symbol.base)
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
        return venue_stops.cancel_stop_order(order, reason, broker)
    if account.mode == Account.Mode.LIVE:
        broker = broker or broker_for(account)
        info = broker.cancel(order.symbol.code, order.client_order_id, order.exchange_order_id)
        order = apply_order_info(order, info)
        if order.status not in Order.OPEN_STATUSES:
            Order.objects.filter(pk=order.pk).update(reject_reason=reason[:2000])
        return Order.objects.get(pk=order.pk)
    return _cancel_here(order, reason)
