"""The event payloads (``markets.wire``) of orders, fills, positions and accounts, in one
place: what the dashboard, the API and the WebSocket push all show."""

from __future__ import annotations

from markets.models import Account, Symbol
from orders.models import Fill, Order, Position
from orders.push import push_later


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
        "trigger_price": _text(order.trigger_price),  # a venue stop (orders.venue_stops)
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



def account_payload(account: Account) -> dict:
    return {
        "id": account.pk,
        "label": account.label,
        "mode": account.mode,
        "halted": account.halted,
        "halted_reason": account.halted_reason,
    }
