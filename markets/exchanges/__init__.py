"""Exchange adapters: one interface (``base.ExchangeAdapter``) over Upbit, Bithumb, Binance spot
and Binance USDⓈ-M futures. No Django: URLs and credentials are passed in.

>>> adapter = get_adapter("upbit", rest_url="http://127.0.0.1:8001")  # doctest: +SKIP

URLs are roots without paths (the adapter appends ``/v1/...``, ``/api/v3/...``,
``/websocket/v1`` ...); None means the venue's production URL.
"""

from __future__ import annotations

import functools
from typing import Any

from .base import ExchangeAdapter
from .ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter


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


def make_limiter(key: str, redis_client=None) -> RateLimiter:
    """The venue's limiter: shared through ``redis_client`` (a ``redis.Redis``) when given,
    so every process using that Redis shares one budget; in-process otherwise."""
    adapters = _adapters()
    groups = adapters[key].capabilities.rate_groups
    if redis_client is not None:
        return RedisRateLimiter(key, groups, redis_client)
    return InProcessRateLimiter(key, groups)


__all__ = ["ADAPTERS", "ExchangeAdapter", "get_adapter", "make_limiter"]
