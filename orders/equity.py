"""Account valuation: cash plus holdings and open positions marked to the last closed candle."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.db.models import OuterRef, Subquery

from markets.models import Account, Candle, Symbol
from orders.models import Position

ZERO = Decimal("0")


@dataclasses.dataclass(frozen=True)
class Valuation:
    equity: Decimal
    cash: Decimal
    unpriced_assets: tuple[str, ...] = ()


def last_prices(symbol_ids) -> dict[int, Decimal]:
    """Close of the newest stored 1m candle (else any timeframe) per symbol, in one query."""
    newest = Candle.objects.filter(symbol_id=OuterRef("pk")).order_by("-open_time")
    rows = (
        Symbol.objects.filter(pk__in=list(symbol_ids))
        .annotate(
            last_close=Subquery(newest.filter(timeframe="1m").values("close")[:1]),
            any_close=Subquery(newest.values("close")[:1]),
        )
        .values_list("pk", "last_close", "any_close")
    )
    prices = {}
    for pk, last_close, any_close in rows:
        close = last_close if last_close is not None else any_close
        if close is not None:
            prices[pk] = Decimal(repr(close))
    return prices


def value_account(account: Account) -> Valuation:
    """Equity in ``account.quote_asset``: quote balance + other assets at their last close on the
    same venue + unrealized PnL of open perpetual positions. Assets without a price are listed in
    ``unpriced_assets`` and count as zero (reported, not guessed)."""
    balances = list(account.balances.all())
    cash = sum((b.total for b in balances if b.asset == account.quote_asset), ZERO)
    others = [b for b in balances if b.asset != account.quote_asset and b.total > 0]
    symbols = {
        s.base: s
        for s in Symbol.objects.filter(
            exchange_id=account.exchange_id,
            quote=account.quote_asset,
            market_type=Symbol.MarketType.SPOT,
            base__in=[b.asset for b in others],
        )
    }
    positions = list(
        Position.objects.filter(
            account=account,
            closed_at__isnull=True,
            symbol__market_type=Symbol.MarketType.PERPETUAL,
        )
    )
    prices = last_prices([s.pk for s in symbols.values()] + [p.symbol_id for p in positions])
    equity = cash
    unpriced = []
    for balance in others:
        symbol = symbols.get(balance.asset)
        price = prices.get(symbol.pk) if symbol else None
        if price is None:
            unpriced.append(balance.asset)
            continue
        equity += balance.total * price
    for position in positions:
        price = prices.get(position.symbol_id)
        if price is None:
            unpriced.append(position.symbol.code)
            continue
        direction = 1 if position.side == Position.PositionSide.LONG else -1
        equity += (price - position.entry_price) * position.quantity * direction
    return Valuation(equity=equity, cash=cash, unpriced_assets=tuple(unpriced))
