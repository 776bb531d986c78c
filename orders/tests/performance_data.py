"""Closed trades and equity snapshots written straight to the tables (bulk inserts): what the
performance tests and ``bench/bench_dashboard.py`` build their dashboards from. Each trade is a
position with an entry order + fill and an exit order + fill, like the ledger leaves them."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from orders.models import EquitySnapshot, Fill, Order, Position


def closed_trades(account, config, symbol, specs, start: dt.datetime,
                  every: dt.timedelta = dt.timedelta(minutes=10)) -> list[Position]:
    """``specs``: ``[(side, quantity, entry, exit, fee per fill), ...]`` (Decimals); trade ``i``
    opens at ``start + i * every`` and closes half a period later. Its realized PnL is the
    ledger's: direction x quantity x (exit - entry) - both fees."""
    positions, orders, fills = [], [], []
    for i, (side, qty, entry, exit_, fee) in enumerate(specs):
        opened = start + i * every
        closed = opened + every / 2
        direction = 1 if side == "long" else -1
        positions.append(Position(
            account=account, config=config, symbol=symbol, side=side, quantity=Decimal(0),
            entry_price=entry, realized_pnl=direction * qty * (exit_ - entry) - 2 * fee,
            opened_at=opened, closed_at=closed, close_reason="signal" if i % 3 else "stop_loss",
        ))
        enter_side, exit_side = ("buy", "sell") if side == "long" else ("sell", "buy")
        for order_side, price, ts, reason in ((enter_side, entry, opened, "signal"),
                                              (exit_side, exit_, closed, "exit")):
            orders.append(Order(
                account=account, config=config, symbol=symbol, side=order_side, type="market",
                quantity=qty, client_order_id=str(uuid.uuid4()), status="filled",
                filled_quantity=qty, average_price=price, fee=fee, reason=reason[:16],
            ))
            fills.append((price, qty, fee, ts))
    Position.objects.bulk_create(positions, batch_size=2000)
    Order.objects.bulk_create(orders, batch_size=2000)
    Fill.objects.bulk_create([
        Fill(order=order, trade_id=f"t{order.pk}", price=price, quantity=qty, fee=fee, ts=ts)
        for order, (price, qty, fee, ts) in zip(orders, fills, strict=True)
    ], batch_size=2000)
    return positions


def snapshots(account, points) -> None:
    """``points``: ``[(datetime UTC, equity), ...]``."""
    EquitySnapshot.objects.bulk_create(
        [EquitySnapshot(account=account, ts=ts, equity=Decimal(str(eq)), cash=Decimal(str(eq)))
         for ts, eq in points], batch_size=2000,
    )
