"""The one place the project builds exchange adapters: backfill, the collector, the live stream,
mark prices, live brokers and user streams all call :func:`adapter_for`.

Every adapter gets the venue's *shared* rate limiter (:func:`venue_limiter`): with Redis
configured (``settings.REDIS_URL``, always in a deployment) a
:class:`~markets.exchanges.ratelimit.RedisRateLimiter` keyed by the venue's slug, so the stream,
every worker, a backfill and the order path of every process spend from one budget (Binance's
request weight is one budget for market data and orders alike). Without Redis, or while it does
not answer, one in-process limiter per venue, shared by every adapter of the process.

``settings.EXCHANGE_RATE_LIMITS`` lowers (or raises) a venue's budgets below what its
capabilities declare, per slug and group: ``{"binance": {"weight": (1200, 60.0)}}`` (capacity,
window seconds), for a server whose IP another program also spends from.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from django.conf import settings

from markets import heartbeat
from markets.exchanges import ADAPTERS, get_adapter
from markets.exchanges.base import ExchangeAdapter, RateGroup
from markets.exchanges.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter


class Venue(Protocol):
    """What the factory reads of a venue: an ``Exchange`` row, or the stream's ``VenueSpec``."""

    slug: str
    adapter: str
    rest_url: str
    ws_url: str


def rate_groups(slug: str, adapter_key: str) -> dict[str, RateGroup]:
    """The venue's budgets: its adapter's capabilities, with ``EXCHANGE_RATE_LIMITS`` on top."""
    try:
        groups = dict(ADAPTERS[adapter_key].capabilities.rate_groups)
    except KeyError:
        raise ValueError(f"venue {slug!r}: unknown exchange adapter {adapter_key!r}; use one of "
                         f"{', '.join(ADAPTERS)}") from None
    overrides: Mapping[str, Any] = (getattr(settings, "EXCHANGE_RATE_LIMITS", None) or {}).get(
        slug, {})
    for group, value in overrides.items():
        if group not in groups:
            raise ValueError(f"EXCHANGE_RATE_LIMITS[{slug!r}]: {adapter_key} has no rate-limit "
                             f"group {group!r}; known: {', '.join(sorted(groups))}")
        capacity, window_s = value
        if int(capacity) < 1 or float(window_s) <= 0:
            raise ValueError(f"EXCHANGE_RATE_LIMITS[{slug!r}][{group!r}]: capacity must be at "
                             f"least 1 and the window positive, got {value!r}")
        groups[group] = RateGroup(int(capacity), float(window_s))
    return groups


_local_lock = threading.Lock()
_local: dict[tuple[str, str, tuple], InProcessRateLimiter] = {}


def venue_limiter(venue: Venue) -> RateLimiter:
    """The venue's shared limiter (keyed by its slug, so the simulator never spends a real
    venue's budget): through Redis when configured, else one per venue in this process."""
    groups = rate_groups(venue.slug, venue.adapter)
    key = (venue.slug, venue.adapter, tuple(sorted(groups.items())))
    with _local_lock:
        if key not in _local:
            _local[key] = InProcessRateLimiter(venue.slug, groups)
        local = _local[key]
    if getattr(settings, "REDIS_URL", ""):
        # While Redis does not answer, the process-wide limiter stands in (logged), so a cancel
        # or an order is never refused for want of the shared budget.
        return RedisRateLimiter(venue.slug, groups, heartbeat.client(), fallback=local)
    return local


def adapter_for(venue: Venue, *, api_key: str | None = None, api_secret: str | None = None,
                **options: Any) -> ExchangeAdapter:
    """An adapter for ``venue`` under its shared limiter; with ``api_key``/``api_secret`` it can
    trade. ``options`` go to the adapter (``timeout``, ``clock``, ``ws_text_ping_s`` ...); a
    ``limiter`` among them replaces the shared one (tests only)."""
    options.setdefault("limiter", venue_limiter(venue))
    return get_adapter(venue.adapter, rest_url=venue.rest_url, ws_url=venue.ws_url,
                       api_key=api_key, api_secret=api_secret,
                       **options)
