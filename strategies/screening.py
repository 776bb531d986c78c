"""The screener's Django shell: rank stored candles per venue, act on the ranking.

Pure figures and ranking live in :mod:`strategies.screener`.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from markets.candles import load_candles
from markets.models import Exchange, Symbol
from markets.timeframes import timeframe_ms
from strategies import registry, screener
from strategies.models import ParamVersion, StrategyConfig, SymbolScreen
from strategies.optimization import OptimizationError, apply_params


def screen_exchange(exchange: Exchange, *, now: dt.datetime | None = None) -> list[SymbolScreen]:
    """Rank the venue's symbols from their stored candles of the last day; store the figures."""
    now = now or timezone.now()
    timeframe = getattr(settings, "SCREENER_TIMEFRAME", "1m")
    atr_period = getattr(settings, "SCREENER_ATR_PERIOD", 14)
    bar_ms = timeframe_ms(timeframe)
    end_ms = int(now.timestamp() * 1000)
    start_ms = end_ms - screener.DAY_MS - (atr_period + 2) * bar_ms
    symbols = {s.code: s for s in Symbol.objects.filter(exchange=exchange)}
    rows = {}
    for code, symbol in symbols.items():
        found = screener.figures(
            load_candles(symbol.pk, timeframe, start_ms, end_ms), bar_ms, atr_period=atr_period
        )
        if found is not None:
            rows[code] = found
    ranked = screener.rank(rows)
    with transaction.atomic():
        SymbolScreen.objects.filter(symbol__exchange=exchange).exclude(
            symbol__code__in=list(rows)
        ).delete()
        # One upsert (INSERT ... ON CONFLICT (symbol) DO UPDATE), not an update_or_create (two
        # queries) per symbol: that was 40 % of the screener's time at 500 symbols
        # (docs/performance.md, issue 20). A row keeps its id.
        out = [
            SymbolScreen(
                symbol=symbols[row.key], timeframe=timeframe, last_close=row.figures.last_close,
                atr_pct=row.figures.atr_pct, range_24h_pct=row.figures.range_24h_pct,
                traded_value_24h=row.figures.traded_value_24h,
                momentum_pct=row.figures.momentum_pct, score=row.score, rank=row.rank,
                computed_at=now,
            )
            for row in ranked
        ]
        SymbolScreen.objects.bulk_create(
            out, batch_size=500, update_conflicts=True, unique_fields=["symbol"],
            update_fields=_SCREEN_FIELDS,
        )
    return out


_SCREEN_FIELDS = (
    "timeframe", "last_close", "atr_pct", "range_24h_pct", "traded_value_24h", "momentum_pct",
    "score", "rank", "computed_at",
)


def screen_all(now: dt.datetime | None = None) -> int:
    """Screen every active venue; the number of symbols ranked."""
    return sum(len(screen_exchange(ex, now=now)) for ex in Exchange.objects.filter(is_active=True))


def activate_symbol(symbol: Symbol) -> Symbol:
    """Start collecting (and streaming) this symbol."""
    if not symbol.is_active:
        symbol.is_active = True
        symbol.save(update_fields=["is_active", "updated_at"])
    return symbol


def set_top_symbols(config: StrategyConfig, top_n: int, *, by=None) -> ParamVersion:
    """Make the venue's best ``top_n`` screened symbols (other than the config's own) the peers
    (``symbols``) of a config whose strategy declares a symbols list (``dual_momentum``, or a
    user strategy that does), as a new parameter version."""
    if not registry.takes_peers(config.strategy):
        takers = ", ".join(n for n in registry.names() if registry.takes_peers(n)) or "none"
        raise OptimizationError(
            f"{config} runs {config.strategy}; only strategies with a symbols parameter take a "
            f"symbols list ({takers})"
        )
    if top_n < 1:
        raise OptimizationError(f"top N must be at least 1; got {top_n}")
    codes = list(
        SymbolScreen.objects.filter(symbol__exchange_id=config.symbol.exchange_id)
        .exclude(symbol_id=config.symbol_id)
        .order_by("rank")
        .values_list("symbol__code", flat=True)[:top_n]
    )
    if not codes:
        raise OptimizationError(
            f"no screened symbols on {config.symbol.exchange} yet; run the screener first"
        )
    params = {**config.params, "symbols": codes}
    return apply_params(config, params, source=ParamVersion.Source.MANUAL, by=by,
                        note=f"screener top {top_n}")
