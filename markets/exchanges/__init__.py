"""Exchange adapters: one interface (``base.ExchangeAdapter``) over Upbit, Bithumb, Binance spot
and Binance USDⓈ-M futures. No Django: URLs and credentials are passed in.

>>> adapter = get_adapter("upbit", rest_url="http://127.0.0.1:8001")  # doctest: +SKIP

URLs are roots without paths (the adapter appends ``/v1/...``, ``/api/v3/...``,
``/websocket/v1`` ...); None means the venue's production URL. Without a ``limiter`` an adapter
limits itself alone: the project builds adapters through ``markets.adapters.adapter_for``, which
gives each the venue's budget shared through Redis.
"""

from __future__ import annotations

from typing import Any

from .base import Capabilities, ExchangeAdapter
from .binance_futures import BinanceFuturesAdapter
from .binance_spot import BinanceSpotAdapter
from .bithumb import BithumbAdapter
from .ratelimit import RateLimiter
from .upbit import UpbitAdapter

ADAPTERS: dict[str, type[ExchangeAdapter]] = {
    "upbit": UpbitAdapter,
    "bithumb": BithumbAdapter,
    "binance_spot": BinanceSpotAdapter,
    "binance_futures": BinanceFuturesAdapter,
}


def capabilities_of(key: str) -> Capabilities:
    """The capabilities of adapter ``key`` without building one (callers branch on these, never
    on the venue's name)."""
    try:
        return ADAPTERS[key].capabilities
    except KeyError:
        raise ValueError(f"unknown exchange adapter {key!r}; use one of "
                         f"{', '.join(ADAPTERS)}") from None


def get_adapter(key: str, *, rest_url: str | None = None, ws_url: str | None = None,
                api_key: str | None = None, api_secret: str | None = None,
                limiter: RateLimiter | None = None, **options: Any) -> ExchangeAdapter:
    """A ready adapter for ``key`` (``upbit``, ``bithumb``, ``binance_spot``,
    ``binance_futures``). ``options`` go to the adapter (``timeout``, ``ws_api_url``,
    ``recv_window_ms``, ``lookup_attempts`` ...). Builds nothing on the network."""
    try:
        cls = ADAPTERS[key]
    except KeyError:
        raise ValueError(f"unknown exchange adapter {key!r}; use one of "
                         f"{', '.join(ADAPTERS)}") from None
    return cls(rest_url=rest_url, ws_url=ws_url, api_key=api_key, api_secret=api_secret,
               limiter=limiter, **options)


__all__ = ["ADAPTERS", "Capabilities", "ExchangeAdapter", "capabilities_of", "get_adapter"]
