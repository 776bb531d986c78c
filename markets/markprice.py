"""The latest mark price per perpetual symbol (:class:`~markets.models.MarkPrice`).

Written by the stream (``@markPrice@1s`` of each venue whose capabilities say ``mark_price``,
batched about once a second) and, as the fallback when the stream is down, by the collector's
minute job over REST (:func:`refresh_stale`: only symbols whose row is older than
``MARK_PRICE_FRESH_S``). Read by the valuation and the exit guard through :func:`fresh_marks`:
a mark older than ``MARK_PRICE_FRESH_S`` (60 s) is not used; the caller falls back to the last
trade price and says so in the log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from markets.exchanges.base import ExchangeAdapter
from markets.exchanges.base import MarkPrice as MarkInfo
from markets.models import Exchange, MarkPrice, Symbol

log = logging.getLogger(__name__)

DEFAULT_FRESH_S = 60.0


def fresh_s() -> float:
    return float(getattr(settings, "MARK_PRICE_FRESH_S", DEFAULT_FRESH_S))


def _dt(ms: int | None) -> dt.datetime | None:
    return None if not ms else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def store_marks(venue: str, marks: Iterable[MarkInfo], *, now: dt.datetime | None = None) -> int:
    """Upsert the latest mark of each symbol of ``venue`` (slug) in ``marks`` (the newest per
    symbol wins; older than the stored one is ignored). When the venue's next funding time moves
    on, the stored rate, time and mark become ``last_funding_*``: the settlement that just
    happened. Unknown symbols are skipped. Returns the rows written."""
    now = now or timezone.now()
    latest: dict[str, MarkInfo] = {}
    for mark in marks:
        if mark.symbol not in latest or mark.ts_ms >= latest[mark.symbol].ts_ms:
            latest[mark.symbol] = mark
    if not latest:
        return 0
    symbols = dict(Symbol.objects.filter(exchange__slug=venue, code__in=list(latest))
                   .values_list("code", "pk"))
    written = 0
    with transaction.atomic():
        rows = {r.symbol_id: r for r in MarkPrice.objects.select_for_update().filter(
            symbol_id__in=list(symbols.values()))}
        new, changed = [], []
        for code, mark in latest.items():
            pk = symbols.get(code)
            if pk is None:
                continue
            venue_time = _dt(mark.ts_ms)
            next_funding = _dt(mark.next_funding_ms)
            row = rows.get(pk)
            if row is None:
                new.append(MarkPrice(symbol_id=pk, price=mark.mark_price,
                                     index_price=mark.index_price,
                                     funding_rate=mark.funding_rate,
                                     next_funding_time=next_funding, venue_time=venue_time,
                                     updated_at=now))
                continue
            if venue_time < row.venue_time:
                continue
            if (row.next_funding_time is not None and next_funding is not None
                    and next_funding > row.next_funding_time
                    and row.funding_rate is not None):
                row.last_funding_time = row.next_funding_time
                row.last_funding_rate = row.funding_rate
                row.last_funding_price = row.price
            row.price, row.index_price = mark.mark_price, mark.index_price
            row.funding_rate, row.next_funding_time = mark.funding_rate, next_funding
            row.venue_time, row.updated_at = venue_time, now
            changed.append(row)
        MarkPrice.objects.bulk_create(new)
        MarkPrice.objects.bulk_update(changed, [
            "price", "index_price", "funding_rate", "next_funding_time", "last_funding_time",
            "last_funding_rate", "last_funding_price", "venue_time", "updated_at"])
        written = len(new) + len(changed)
    return written


def fresh_marks(symbol_ids: Iterable[int], *, now: dt.datetime | None = None
                ) -> dict[int, Decimal]:
    """Mark prices stored less than ``MARK_PRICE_FRESH_S`` ago, by symbol id (one query)."""
    now = now or timezone.now()
    since = now - dt.timedelta(seconds=fresh_s())
    return dict(MarkPrice.objects.filter(symbol_id__in=list(symbol_ids), updated_at__gte=since)
                .values_list("symbol_id", "price"))


def perpetuals_needing_marks() -> dict[Exchange, list[Symbol]]:
    """Active perpetual symbols of venues that publish a mark price, by exchange."""
    from markets.exchanges import ADAPTERS

    out: dict[Exchange, list[Symbol]] = {}
    for symbol in Symbol.objects.active().filter(
            market_type=Symbol.MarketType.PERPETUAL).select_related("exchange"):
        adapter = ADAPTERS.get(symbol.exchange.adapter)
        if adapter is not None and adapter.capabilities.mark_price:
            out.setdefault(symbol.exchange, []).append(symbol)
    return out


def refresh_stale(adapter_factory: Callable[[Exchange], ExchangeAdapter],
                  *, now: dt.datetime | None = None) -> int:
    """The REST fallback: fetch ``premiumIndex`` for active perpetual symbols whose stored mark
    is missing or older than ``MARK_PRICE_FRESH_S`` (the stream is down or lagging). A venue
    that fails is logged and skipped. Returns the rows written."""
    now = now or timezone.now()
    written = 0
    for exchange, symbols in perpetuals_needing_marks().items():
        fresh = fresh_marks([s.pk for s in symbols], now=now)
        stale = [s.code for s in symbols if s.pk not in fresh]
        if not stale:
            continue
        adapter = adapter_factory(exchange)
        try:
            marks = adapter.mark_prices(stale if len(stale) == 1 else None)
            written += store_marks(exchange.slug, [m for m in marks if m.symbol in stale],
                                   now=now)
        except Exception as exc:
            log.warning("mark prices of %s over REST failed: %s", exchange.slug, exc)
        finally:
            adapter.close()
    return written
