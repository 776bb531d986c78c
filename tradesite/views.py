"""The live chart, the markets overview and the candles payload of the JSON API.

The chart's first paint needs one HTML request (it embeds the newest candles, their indicators,
the user's markers and open positions) and one WebSocket. ``/api/candles`` serves older candles
when the user scrolls left and the missed ones after a reconnect (``tradesite.api`` serves it
with ``candles_payload``). Indicators are computed here, server-side, by
``strategies.indicators`` over the candles plus a warm-up window, so the first visible values
are final.

The ``*_payload`` functions give the public fields of a Signal, Order, Fill or Position as the
chart draws them, both in the page and on the wire (``user.<id>`` events carry the same dict
plus ``type``): publishers use them with ``markets.wire.private_message``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from markets import api
from markets.models import Symbol
from markets.timeframes import TIMEFRAMES
from orders import evaluation, services
from orders.models import Fill, Position
from orders.positions import net_positions
from orders.ticket import ticket_context
from strategies import indicators as ind
from strategies.base import Candles
from strategies.models import Signal, StrategyConfig

#: Candles loaded before the first one asked for, so every overlay is final where it starts
#: (SMA 120 needs 120; MACD 12/26/9 converges within ~100 more).
WARMUP = 300
MARKERS_LIMIT = 1_000
PAGE_CANDLES = 1_000


def _num(value) -> float | None:
    return None if value is None else float(value)


# -- indicators -------------------------------------------------------------------------------


def _bollinger(c: Candles) -> dict:
    upper, middle, lower = ind.bollinger(c.close, 20, 2.0)
    return {"upper": upper, "middle": middle, "lower": lower}


def _sma(period: int) -> Callable[[Candles], dict]:
    return lambda c: {"value": ind.sma(c.close, period)}


def _macd(c: Candles) -> dict:
    line, signal, hist = ind.macd(c.close, 12, 26, 9)
    return {"macd": line, "signal": signal, "hist": hist}


def _rsi(c: Candles) -> dict:
    return {"value": ind.rsi(c.close, 14)}


#: name -> (label, pane: "price" overlays the candles, else its own pane; compute)
INDICATORS: dict[str, tuple[str, str, Callable[[Candles], dict]]] = {
    "bb": ("Bollinger 20, 2", "price", _bollinger),
    "sma7": ("SMA 7", "price", _sma(7)),
    "sma20": ("SMA 20", "price", _sma(20)),
    "sma60": ("SMA 60", "price", _sma(60)),
    "sma120": ("SMA 120", "price", _sma(120)),
    "macd": ("MACD 12, 26, 9", "macd", _macd),
    "rsi": ("RSI 14", "rsi", _rsi),
}


def indicator_columns(candles: Candles, first: int, names: Iterable[str]) -> dict:
    """``{name: {line: {"start", "v"}}}`` for ``candles[first:]``, computed over all of
    ``candles`` (the ones before ``first`` are the warm-up). ``start`` counts from ``first``."""
    out = {}
    for name in names:
        lines = INDICATORS[name][2](candles)
        out[name] = {key: api.series_column(np.asarray(v)[first:]) for key, v in lines.items()}
    return out


def overlays_for(configs: Iterable[StrategyConfig]) -> list[str]:
    """The overlays that show what the given (active) configs look at."""
    wanted: list[str] = []

    def add(name: str) -> None:
        if name in INDICATORS and name not in wanted:
            wanted.append(name)

    for config in configs:
        params = config.params or {}
        if config.strategy == "bollinger":
            add("bb")
        elif config.strategy == "rsi":
            add("rsi")
        elif config.strategy == "macd_turtle":
            add("macd")
            add(f"sma{params.get('breakout', 20)}")
        elif config.strategy == "ma_cross":
            for key, default in (("short", 7), ("mid", 20), ("long", 60)):
                add(f"sma{params.get(key, default)}")
    return wanted


def candles_payload(symbol: Symbol, query: api.CandleQuery, names: list[str]) -> dict:
    warmup = WARMUP if names else 0
    candles, first = api.query_candles(symbol.pk, query, warmup)
    payload = {
        "venue": query.venue,
        "symbol": query.symbol,
        "timeframe": query.timeframe,
        "candles": api.candle_columns(candles[first:]),
    }
    if names:
        payload["indicators"] = indicator_columns(candles, first, names)
    return payload


def indicator_names(raw: str | None) -> list[str]:
    """The indicators a comma list names (``all`` or ``1``: every one); BadCandleQuery for
    an unknown name."""
    if not raw:
        return []
    if raw in ("1", "all"):
        return list(INDICATORS)
    names = [n for n in raw.split(",") if n]
    unknown = [n for n in names if n not in INDICATORS]
    if unknown:
        shown = ", ".join(repr(n)[1:-1][:20] for n in unknown[:5])
        raise api.BadCandleQuery(f"unknown indicator(s) {shown}; use {', '.join(INDICATORS)}")
    return names


# -- the user's rows, as the chart draws them -------------------------------------------------


# The chart draws the same payloads the trader pushes live (one shape per object).
signal_payload = evaluation.signal_payload
order_payload = services.order_payload
fill_payload = services.fill_payload
position_payload = services.position_payload


def user_rows(user, symbol: Symbol) -> dict:
    """The user's own signals, fills and open positions on ``symbol`` (never another user's,
    superusers included: a chart is personal)."""
    signals = (
        Signal.objects.filter(config__owner=user, symbol=symbol)
        .select_related("config", "symbol__exchange")
        .order_by("-bar_time", "-id")[:MARKERS_LIMIT]
    )
    fills = (
        Fill.objects.filter(order__account__owner=user, order__symbol=symbol)
        .select_related("order__symbol__exchange")
        .order_by("-ts", "-id")[:MARKERS_LIMIT]
    )
    positions = list(Position.objects.filter(
        account__owner=user, symbol=symbol, closed_at__isnull=True
    ).select_related("symbol__exchange", "config").order_by("account_id", "pk"))
    return {
        "signals": [signal_payload(s) for s in reversed(signals)],
        "fills": [fill_payload(f) for f in reversed(fills)],
        # Each config's own position, and each account's net on the symbol (their sum).
        "positions": [position_payload(p) for p in positions],
        "net": [n.payload() for n in net_positions(positions)],
    }


# -- pages ----------------------------------------------------------------------------------


def _picker() -> list[dict]:
    """Every active symbol for the chart's picker, by venue. The URL pattern is reversed once
    (a ``reverse()`` per symbol was a third of the picker's cost at 500 symbols)."""
    pattern = reverse("chart", args=["VENUE-SLUG", "SYMBOL-CODE"])
    rows = Symbol.objects.active().order_by("exchange__slug", "code").values_list(
        "exchange__slug", "exchange__name", "code")
    return [
        {"venue": slug, "venue_name": name, "symbol": code,
         "url": pattern.replace("VENUE-SLUG", slug).replace("SYMBOL-CODE", code)}
        for slug, name, code in rows
    ]


@login_required
def chart(request: HttpRequest, venue: str, symbol: str) -> HttpResponse:
    """``/chart/<venue>/<symbol>/?tf=1m``: candles, volume, overlays, markers, live updates."""
    try:
        found = api.find_symbol(venue, symbol)
    except api.UnknownSymbol as exc:
        raise Http404(str(exc)) from None
    timeframe = request.GET.get("tf") or "1m"
    if timeframe not in TIMEFRAMES:
        timeframe = "1m"
    configs = list(
        StrategyConfig.objects.filter(owner=request.user, symbol=found, is_active=True)
    )
    overlays = overlays_for(configs)
    query = api.CandleQuery(venue, symbol, timeframe, PAGE_CANDLES)
    ref, _ = api.reference_24h(found.pk)
    data = {
        # Only the overlays that are on: the others load when toggled (keeps the page small).
        **candles_payload(found, query, overlays),
        "timeframes": list(TIMEFRAMES),
        "indicator_labels": {k: [v[0], v[1]] for k, v in INDICATORS.items()},
        "overlays": overlays,
        "configs": [
            {"name": c.name, "strategy": c.strategy, "timeframe": c.timeframe} for c in configs
        ],
        "ref_24h": ref,
        "api": reverse("api:candles"),
        "ws": f"/ws/chart/{venue}/{symbol}/",
        **user_rows(request.user, found),
    }
    # The picker is the template's alone (the page's script never reads it): not in ``data``,
    # whose JSON would carry every symbol a second time.
    return render(request, "chart.html", {"symbol": found, "timeframe": timeframe, "data": data,
                                          "picker": _picker(),
                                          "ticket": ticket_context(request.user, found)})


@login_required
def markets(request: HttpRequest) -> HttpResponse:
    """``/markets/``: active symbols per venue, last price, 24h change, sparkline, live."""
    venues = api.overview()
    for venue in venues:
        for row in venue["symbols"]:
            row["url"] = reverse("chart", args=[row["venue"], row["symbol"]])
    return render(request, "markets.html", {"venues": venues, "data": {"venues": venues}})
