"""What the order ticket (``templates/_order_ticket.html``) needs to draw itself: the user's
accounts, the symbols each can trade, each venue's rule for sizing a market buy, the last price
(for the estimated value) and the JSON API's addresses.

Display only: the ticket sends every order and close through the JSON API (``orders.api``),
so the services' gates decide and their messages are what the trader reads.
"""

from __future__ import annotations

from django.urls import reverse

from markets.exchanges import capabilities_of
from markets.models import Account, Symbol
from orders.brokers import PaperBroker
from orders.equity import last_prices


def sizing_rule(account: Account, symbol: Symbol) -> dict:
    """How a market buy on ``symbol`` through ``account`` may be sized, as the broker the
    service will use says (paper: both ways on spot; live: the venue's capabilities), with the
    sentence the ticket shows."""
    perpetual = symbol.market_type == Symbol.MarketType.PERPETUAL
    if account.mode == Account.Mode.LIVE:
        caps = capabilities_of(account.exchange.adapter)
        by_quantity, by_quote = caps.market_buy_by_quantity, caps.supports_quote_amount_market_buy
    else:
        by_quantity, by_quote = PaperBroker.market_buy_by_quantity, PaperBroker.market_buy_by_quote
    by_quote = by_quote and not perpetual
    venue = account.exchange.name
    if perpetual:
        text = f"{venue}: size by quantity in contracts of {symbol.base}"
    elif by_quote and not by_quantity:
        text = f"{venue}: a market buy is sized by the {symbol.quote} amount to spend only"
    elif by_quote:
        text = (f"{venue}: a market buy is sized by {symbol.base} quantity or by the "
                f"{symbol.quote} amount to spend")
    else:
        text = f"{venue}: size by {symbol.base} quantity"
    return {"by_quantity": by_quantity, "by_quote": by_quote, "text": text}


def _symbol(symbol: Symbol, price) -> dict:
    return {
        "key": f"{symbol.exchange.slug}:{symbol.code}",
        "venue": symbol.exchange.slug,
        "code": symbol.code,
        "base": symbol.base,
        "quote": symbol.quote,
        "perpetual": symbol.market_type == Symbol.MarketType.PERPETUAL,
        "min_notional": f"{symbol.min_notional.normalize():f}",
        "min_qty": f"{symbol.min_qty.normalize():f}",
        "step": f"{symbol.step_size.normalize():f}",
        "tick": None if symbol.tick_size is None else f"{symbol.tick_size.normalize():f}",
        "last_price": None if price is None else f"{price.normalize():f}",
    }


def ticket_context(user, symbol: Symbol | None = None) -> dict:
    """The ticket's data: ``symbol`` given (the chart), the accounts that trade it; else (the
    dashboard) every account of the user with the active symbols it can trade. Only the user's
    own accounts (superusers too): the API refuses any other."""
    accounts = list(
        Account.objects.filter(owner=user).select_related("exchange").order_by("label", "pk")
    )
    if symbol is not None:
        symbols = [symbol]
    else:
        symbols = list(
            Symbol.objects.active()
            .filter(exchange_id__in={a.exchange_id for a in accounts})
            .select_related("exchange")
            .order_by("exchange__slug", "code")
        )
    prices = last_prices({s.pk for s in symbols})
    out = []
    for account in accounts:
        tradable = [
            s for s in symbols
            if s.exchange_id == account.exchange_id and s.quote == account.quote_asset
        ]
        if not tradable:
            continue
        out.append({
            "id": account.pk,
            "label": account.label,
            "venue": account.exchange.slug,
            "venue_name": account.exchange.name,
            "mode": account.mode,
            "halted": account.halted,
            "quote_asset": account.quote_asset,
            "symbols": [s.code for s in tradable],
            "rules": {s.code: sizing_rule(account, s) for s in tradable},
        })
    return {
        "accounts": out,
        "symbols": {f"{s.exchange.slug}:{s.code}": _symbol(s, prices.get(s.pk)) for s in symbols},
        "fixed_symbol": None if symbol is None else f"{symbol.exchange.slug}:{symbol.code}",
        "api": {
            "place": reverse("api:order-place"),
            "positions": reverse("api:positions"),
            # The id is filled in by the script.
            "close": reverse("api:position-close", args=[0]).replace("/0/", "/{id}/"),
        },
    }
