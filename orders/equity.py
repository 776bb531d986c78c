"""Account valuation: cash plus holdings marked to the last closed candle, and open positions
marked to their price: for a perpetual, the venue's mark price when it is fresh
(``markets.markprice.fresh_marks``, under ``MARK_PRICE_FRESH_S`` = 60 s old), else the last
trade price with a logged note (at most once per symbol per ``NOTE_EVERY_S``)."""

from __future__ import annotations

import dataclasses
import logging
import time
from decimal import Decimal

from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce

from markets.markprice import fresh_marks
from markets.models import Account, Balance, Candle, Symbol
from orders.models import Position

log = logging.getLogger(__name__)

ZERO = Decimal("0")
NOTE_EVERY_S = 300.0
_noted: dict[int, float] = {}


@dataclasses.dataclass(frozen=True)
class Valuation:
    equity: Decimal
    cash: Decimal
    unpriced_assets: tuple[str, ...] = ()


def last_prices(symbol_ids) -> dict[int, Decimal]:
    """Close of the newest stored 1m candle (else any timeframe) per symbol, in one query.

    The 1m close is one probe of the (symbol, timeframe, open_time) index. "Any timeframe"
    orders all of a symbol's candles by time, which that index cannot serve (a year of 1m
    candles: ~0.1 s a symbol), so it sits behind ``COALESCE``, which both databases evaluate
    only when the 1m close is missing."""
    newest = Candle.objects.filter(symbol_id=OuterRef("pk")).order_by("-open_time")
    rows = (
        Symbol.objects.filter(pk__in=list(symbol_ids))
        .annotate(close=Coalesce(Subquery(newest.filter(timeframe="1m").values("close")[:1]),
                                 Subquery(newest.values("close")[:1])))
        .values_list("pk", "close")
    )
    return {pk: Decimal(repr(close)) for pk, close in rows if close is not None}


def note_no_mark(symbol_id: int, what: str) -> None:
    """Log that a perpetual had no fresh mark price and ``what`` used the last trade price."""
    now = time.monotonic()
    if now - _noted.get(symbol_id, -1e9) >= NOTE_EVERY_S:
        _noted[symbol_id] = now
        log.info("no fresh mark price for perpetual symbol %s: %s uses the last trade price",
                 symbol_id, what)


def with_marks(prices: dict[int, Decimal], perpetual_ids, what: str) -> set[int]:
    """Replace, in ``prices``, the price of each perpetual in ``perpetual_ids`` by its fresh mark
    price (one query); returns the ids that were marked. The others keep the last trade price
    (noted in the log)."""
    perpetual_ids = set(perpetual_ids)
    marks = fresh_marks(perpetual_ids) if perpetual_ids else {}
    prices.update(marks)
    for pk in perpetual_ids - set(marks):
        note_no_mark(pk, what)
    return set(marks)


def position_prices(positions, last: dict[int, Decimal] | None = None
                    ) -> tuple[dict[int, Decimal], set[int]]:
    """The price each position's unrealized PnL uses, by symbol id (positions need their
    ``symbol`` loaded), and the symbol ids priced at the mark. ``last``: the last prices when
    the caller already has them."""
    positions = list(positions)
    prices = dict(last) if last is not None else last_prices({p.symbol_id for p in positions})
    perpetual = {p.symbol_id for p in positions
                 if p.symbol.market_type == Symbol.MarketType.PERPETUAL}
    return prices, with_marks(prices, perpetual, "unrealized PnL")


def value_account(account: Account) -> Valuation:
    """Equity in ``account.quote_asset``: quote balance + other assets at their last close on the
    same venue + unrealized PnL of open perpetual positions (+ their margin on a paper account,
    whose ledger takes the margin out of the balance). Assets without a price are listed in
    ``unpriced_assets`` and count as zero (reported, not guessed)."""
    return value_accounts([account], {account.pk: list(account.balances.all())})[account.pk]


def value_accounts(accounts, balances: dict[int, list] | None = None) -> dict[int, Valuation]:
    """:func:`value_account` for many accounts in five queries in all (balances, spot symbols,
    open perpetual positions, last prices, mark prices), not five per account. ``balances``
    maps an account id to its Balance rows when the caller already holds them (e.g. locked);
    by account id."""
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
    perpetual_ids = {p.symbol_id for rows in positions.values() for p in rows}
    prices = last_prices({s.pk for s in symbols.values()} | perpetual_ids)
    with_marks(prices, perpetual_ids, "equity")
    out = {}
    for account in accounts:
        cash = sum(
            (b.total for b in balances.get(account.pk, ()) if b.asset == account.quote_asset),
            ZERO,
        )
        equity = cash
        paper = account.mode == Account.Mode.PAPER
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
            if paper:
                # The paper ledger moves a perpetual's margin out of the quote balance
                # (orders.services.ledger); a venue's wallet balance still holds it.
                equity += position.margin
        out[account.pk] = Valuation(equity=equity, cash=cash, unpriced_assets=tuple(unpriced))
    return out
