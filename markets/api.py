"""Market data for the pages: candle queries as columnar JSON, and the markets overview.

No strategies or orders here (imports flow markets <- strategies <- orders <- tradesite): the
chart adds its indicators in ``tradesite.views``. Candles come from
:func:`markets.candles.load_candles` (one query straight into numpy) and leave as one
``json.dumps`` of plain lists, never through the ORM per row. Times are int ms UTC.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping

import numpy as np

from markets.candles import load_candles
from markets.models import Symbol
from markets.timeframes import TIMEFRAMES, timeframe_ms

MAX_LIMIT = 5_000
#: Times a query may name: the epoch .. the last millisecond of year 9999 (Python's datetime).
MIN_TIME_MS = 0
MAX_TIME_MS = 253_402_300_799_999
DEFAULT_LIMIT = 1_000
SPARK_TIMEFRAME = "1h"
SPARK_BARS = 24


class BadCandleQuery(ValueError):
    """The request's parameters are malformed: answer 400 with this message."""


class UnknownSymbol(LookupError):
    """No active symbol of that code on an active venue: answer 404 with this message."""


@dataclasses.dataclass(frozen=True)
class CandleQuery:
    """``before_ms``: newest ``limit`` candles opening before it (scrolling left).
    ``after_ms``: oldest ``limit`` candles opening at or after it (filling a gap).
    Neither: the newest ``limit`` candles."""

    venue: str
    symbol: str
    timeframe: str
    limit: int = DEFAULT_LIMIT
    before_ms: int | None = None
    after_ms: int | None = None


def _int(params: Mapping, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        if isinstance(raw, bool) or (isinstance(raw, str) and len(raw) > 30):
            raise ValueError(raw)
        return int(raw)
    except (TypeError, ValueError):
        raise BadCandleQuery(f"{name} must be a whole number (ms since the epoch for times), "
                             f"got {str(raw)[:40]!r}") from None


def parse_candle_query(params: Mapping) -> CandleQuery:
    """Validate untrusted query parameters (``venue, symbol, timeframe, before, after, limit``)."""
    missing = [k for k in ("venue", "symbol", "timeframe") if not params.get(k)]
    if missing:
        raise BadCandleQuery(f"missing parameter(s): {', '.join(missing)}")
    for name in ("venue", "symbol", "timeframe"):
        value = params[name]
        if not isinstance(value, str) or len(value) > 64 or "\x00" in value:
            raise BadCandleQuery(f"{name} must be text of at most 64 characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadCandleQuery(f"{name} must be plain text") from None
    timeframe = params["timeframe"]
    if timeframe not in TIMEFRAMES:
        raise BadCandleQuery(f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}")
    limit = _int(params, "limit")
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise BadCandleQuery(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    before, after = _int(params, "before"), _int(params, "after")
    for name, value in (("before", before), ("after", after)):
        if value is not None and not MIN_TIME_MS <= value <= MAX_TIME_MS:
            raise BadCandleQuery(
                f"{name} must be a time in ms since the epoch between {MIN_TIME_MS} and "
                f"{MAX_TIME_MS} (year 9999), got {value}"
            )
    if before is not None and after is not None:
        raise BadCandleQuery("give before (older candles) or after (newer candles), not both")
    return CandleQuery(params["venue"], params["symbol"], timeframe, limit, before, after)


def find_symbol(venue: str, code: str) -> Symbol:
    """The active symbol ``code`` on the active venue ``venue`` (slug), or UnknownSymbol."""
    found = (
        Symbol.objects.active()
        .select_related("exchange")
        .filter(exchange__slug=venue, code=code)
        .first()
    )
    if found is None:
        raise UnknownSymbol(f"no active symbol {code!r} on venue {venue!r}")
    return found


def query_candles(symbol_id: int, query: CandleQuery, warmup: int = 0) -> tuple:
    """The candles a query asks for, preceded by up to ``warmup`` older ones (for indicators).

    Returns ``(candles, first)`` (candles as ``load_candles`` gives them):
    ``candles[first:]`` are the ones asked for.
    """
    tf = query.timeframe
    if query.after_ms is not None:
        step = timeframe_ms(tf)
        start = query.after_ms - warmup * step
        candles = load_candles(symbol_id, tf, start_ms=start, limit=query.limit + warmup)
        first = int(np.searchsorted(candles.open_time_ms, query.after_ms, side="left"))
        # The warm-up window may hold fewer (or more, after a gap) candles than asked; keep at
        # most `limit` of the wanted ones.
        if len(candles) - first > query.limit:
            candles = candles[: first + query.limit]
        return candles, first
    candles = load_candles(symbol_id, tf, end_ms=query.before_ms, limit=query.limit + warmup)
    return candles, max(len(candles) - query.limit, 0)


def candle_columns(candles) -> dict[str, list]:
    """Columns ``t, o, h, l, c, v`` as plain lists (times int ms, the rest floats)."""
    return {
        "t": candles.open_time_ms.tolist(),
        "o": candles.open.tolist(),
        "h": candles.high.tolist(),
        "l": candles.low.tolist(),
        "c": candles.close.tolist(),
        "v": candles.volume.tolist(),
    }


def series_column(values: np.ndarray) -> dict:
    """An indicator column as ``{"start": index of the first value, "v": [...]}``: the leading
    NaNs (warm-up) are cut, any later NaN becomes null (JSON has no NaN)."""
    finite = np.isfinite(values)
    if not finite.any():
        return {"start": len(values), "v": []}
    start = int(np.argmax(finite))
    tail = values[start:]
    out = tail.tolist()
    if not finite[start:].all():
        out = [x if math.isfinite(x) else None for x in out]
    return {"start": start, "v": out}


def encode(payload) -> bytes:
    """Compact JSON; NaN or infinity is a bug upstream, so it fails loudly."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def reference_24h(symbol_id: int) -> tuple:
    """The price 24 h ago (open of the first of the newest 24 hourly candles) and those
    candles (for a sparkline); ``(None, empty)`` when there are none."""
    hourly = load_candles(symbol_id, SPARK_TIMEFRAME, limit=SPARK_BARS)
    return (float(hourly.open[0]) if len(hourly) else None), hourly


def overview() -> list[dict]:
    """Active symbols per active venue: last price, 24h change (%), hourly sparkline.

    ``ref`` is the price 24 h ago (the open of the first of the last 24 hourly candles), so the
    page can recompute the change from live ticker prices. Two small queries per symbol.
    """
    venues: dict[str, dict] = {}
    symbols = Symbol.objects.active().select_related("exchange").order_by("exchange__slug", "code")
    for symbol in symbols:
        ref, hourly = reference_24h(symbol.pk)
        minute = load_candles(symbol.pk, "1m", limit=1)
        last = None
        if len(minute):
            last = float(minute.close[-1])
        elif len(hourly):
            last = float(hourly.close[-1])
        change = None if last is None or not ref else (last / ref - 1.0) * 100.0
        venue = venues.setdefault(
            symbol.exchange.slug,
            {"venue": symbol.exchange.slug, "name": symbol.exchange.name, "symbols": []},
        )
        venue["symbols"].append({
            "venue": symbol.exchange.slug,
            "symbol": symbol.code,
            "base": symbol.base,
            "quote": symbol.quote,
            "market_type": symbol.market_type,
            "last": last,
            "ref": ref,
            "change_pct": change,
            "spark": hourly.close.tolist(),
        })
    return list(venues.values())
