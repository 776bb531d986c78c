"""Account valuation: cash plus holdings and open positions marked to the last closed candle."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.db.models import OuterRef, Subquery

from markets.models import Account, Balance, Candle, Symbol
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
    return value_accounts([account], {account.pk: list(account.balances.all())})[account.pk]


def value_accounts(accounts, balances: dict[int, list] | None = None) -> dict[int, Valuation]:
    """:func:`value_account` for many accounts in four queries in all (balances, spot symbols,
    open perpetual positions, last prices), not four per account. ``balances`` maps an account
    id to its Balance rows when the caller already holds them (e.g. locked); by account id."""
    accounts = list(accounts)
    ids = [a.pk for a in accounts]
    if balances is None:
        balances = {pk: [] for pk in ids}
        for row in Balance.objects.filter(account_id__in=ids):
            balances[row.account_id].append(row)
    others = {
        a.pk: [
            b for b in balances.get(a.pk, ()) if b.asset != a.quote_asset and b.total > 0
        ]
        for a in accounts
    }
    wanted = {(a.exchange_id, a.quote_asset, b.asset) for a in accounts for b in others[a.pk]}
    symbols: dict[tuple, Symbol] = {}
    if wanted:
        rows = Symbol.objects.filter(
            exchange_id__in={w[0] for w in wanted},
            quote__in={w[1] for w in wanted},
            market_type=Symbol.MarketType.SPOT,
            base__in={w[2] for w in wanted},
        )
        symbols = {(s.exchange_id, s.quote, s.base): s for s in rows}
    positions: dict[int, list[Position]] = {pk: [] for pk in ids}
    for position in Position.objects.filter(
        account_id__in=ids,
        closed_at__isnull=True,
        symbol__market_type=Symbol.MarketType.PERPETUAL,
    ).select_related("symbol"):
        positions[position.account_id].append(position)
    prices = last_prices(
        {s.pk for s in symbols.values()}
        | {p.symbol_id for rows in positions.values() for p in rows}
    )
    out = {}
    for account in accounts:
        cash = sum(
            (b.total for b in balances.get(account.pk, ()) if b.asset == account.quote_asset),
            ZERO,
        )
        equity = cash
        unpriced = []
        for balance in others[account.pk]:
            symbol = symbols.get((account.exchange_id, account.quote_asset, balance.asset))
            price = prices.get(symbol.pk) if symbol else None
            if price is None:
                unpriced.append(balance.asset)
                continue
            equity += balance.total * price
        for position in positions[account.pk]:
            price = prices.get(position.symbol_id)
            if price is None:
                unpriced.append(position.symbol.code)
                continue
            direction = 1 if position.side == Position.PositionSide.LONG else -1
            equity += (price - position.entry_price) * position.quantity * direction
        out[account.pk] = Valuation(equity=equity, cash=cash, unpriced_assets=tuple(unpriced))
    return out
