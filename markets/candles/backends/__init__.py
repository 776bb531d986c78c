"""Candle-store backends, one per database vendor, the way Django picks a cache or session
backend: a dotted path per vendor (``settings.CANDLE_STORE_BACKENDS`` may override or add
one), imported once and built around the connection of each call.

- ``sqlite``: :class:`markets.candles.backends.sqlite.SQLiteCandleBackend` -- multi-row
  ``INSERT ... ON CONFLICT`` on the raw sqlite3 connection; reads through the optional C reader
  (:mod:`markets.sqlite_columns`, this backend its only user) or the sqlite3 cursor.
- ``postgresql``: :class:`markets.candles.backends.postgresql.PostgreSQLCandleBackend` --
  binary ``COPY`` both ways (the codec: :mod:`markets.candles.backends.postgresql_copy`).
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.utils.module_loading import import_string

from markets.candles.backends.base import CandleBackend

DEFAULT_BACKENDS = {
    "sqlite": "markets.candles.backends.sqlite.SQLiteCandleBackend",
    "postgresql": "markets.candles.backends.postgresql.PostgreSQLCandleBackend",
}


@functools.cache
def _backend_class(path: str) -> type[CandleBackend]:
    return import_string(path)


def backend_for(connection) -> CandleBackend:
    """The candle backend for a Django connection; NotImplementedError for a vendor without
    one."""
    paths = {**DEFAULT_BACKENDS, **getattr(settings, "CANDLE_STORE_BACKENDS", {})}
    path = paths.get(connection.vendor)
    if path is None:
        raise NotImplementedError(
            f"the candle store supports {' and '.join(sorted(paths))}, not {connection.vendor}"
        )
    return _backend_class(path)(connection)


__all__ = ["DEFAULT_BACKENDS", "CandleBackend", "backend_for"]
