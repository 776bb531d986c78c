"""Exchange adapters: one interface (``base.ExchangeAdapter``) over Upbit, Bithumb, Binance spot
and Binance USDⓈ-M futures. No Django: URLs and credentials are passed in.

>>> adapter = get_adapter("upbit", rest_url="http://127.0.0.1:8001")  # doctest: +SKIP

URLs are roots without paths (the adapter appends ``/v1/...``, ``/api/v3/...``,
``/websocket/v1`` ...); None means the venue's production URL. Without a ``limiter`` an adapter
limits itself alone: the project builds adapters through ``markets.adapters.adapter_for``, which
gives each the venue's budget shared through Redis.
"""

from __future__ import annotations

import functools
from typing import Any

from .base import Capabilities, ExchangeAdapter
from .ratelimit import RateLimiter


@functools.cache
def _adapters() -> dict[str, type[ExchangeAdapter]]:
    # The adapters (requests, websockets) load on first use: importing a plain module of this
    # package (``base``, ``errors``, ``rounding``), as the trading services do, loads none.
    from .binance_futures import BinanceFuturesAdapter
    from .binance_spot import BinanceSpotAdapter
    from .bithumb import BithumbAdapter
    from .upbit import UpbitAdapter

    return {
        "upbit": UpbitAdapter,
        "bithumb": BithumbAdapter,
        "binance_spot": BinanceSpotAdapter,
        "binance_futures": BinanceFuturesAdapter,
    }


def __getattr__(name: str):
    if name == "ADAPTERS":  # {key: adapter class}
        return _adapters()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def capabilities_of(key: str) -> Capabilities:
    """The capabilities of adapter ``key`` without building one (callers branch on these, never
    on the venue's name)."""
    try:
        return _adapters()[key].capabilities
    except KeyError:
        raise ValueError(f"unknown exchange adapter {key!r}; use one of "
                         f"{', '.join(_adapters())}") from None


def get_adapter(key: str, *, rest_url: str | None = None, ws_url: str | None = None,
                api_key: str | None = None, api_secret: str | None = None,
                limiter: RateLimiter | None = None, **options: Any) -> ExchangeAdapter:
    """A ready adapter for ``key`` (``upbit``, ``bithumb``, ``binance_spot``,
    ``binance_futures``). ``options`` go to the adapter (``timeout``, ``ws_api_url``,
    ``recv_window_ms``, ``lookup_attempts`` ...). Builds nothing on the network."""
    adapters = _adapters()
    try:
        cls = adapters[key]
    except KeyError:
        raise ValueError(f"unknown exchange adapter {key!r}; use one of "
                         f"{', '.join(adapters)}") from None
    return cls(rest_url=rest_url, ws_url=ws_url, api_key=api_key, api_secret=api_secret,
               limiter=limiter, **options)


__all__ = ["ADAPTERS", "Capabilities", "ExchangeAdapter", "capabilities_of", "get_adapter"]
