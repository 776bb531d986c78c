"""Liveness records in Redis: one hash per process kind and name, read by ``/health`` and the admin.

Keys: ``tradesite:heartbeat:<kind>:<name>`` (kind: ``beat``, ``worker``, ``stream``), each a hash
with ``ts_ms`` (last beat, ms UTC) plus whatever counters the writer adds, expiring after ``ttl``
seconds so a dead process disappears instead of looking alive forever.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    import redis


@functools.cache
def client() -> redis.Redis:
    """A process-wide Redis client for the app's own keys (short timeouts: health must answer)."""
    import redis  # here, not at django.setup(): a backtest process never talks to Redis

    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
    )


def key(kind: str, name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}heartbeat:{kind}:{name}"


def beat(kind: str, name: str, *, ttl: int = 300, **fields: object) -> None:
    """Record that ``name`` of ``kind`` is alive now, with optional counters."""
    mapping = {"ts_ms": int(time.time() * 1000)}
    mapping.update({k: str(v) for k, v in fields.items()})
    pipe = client().pipeline()
    pipe.hset(key(kind, name), mapping=mapping)
    pipe.expire(key(kind, name), ttl)
    pipe.execute()


def read(kind: str) -> dict[str, dict[str, str]]:
    """All live heartbeats of ``kind``: name -> fields (``ts_ms`` as a string)."""
    conn = client()
    prefix = key(kind, "")
    names = sorted(conn.scan_iter(match=prefix + "*", count=100))
    if not names:
        return {}
    pipe = conn.pipeline()
    for name in names:
        pipe.hgetall(name)
    return {name[len(prefix) :]: fields for name, fields in zip(names, pipe.execute()) if fields}


def age_seconds(fields: dict[str, str], now: float | None = None) -> float | None:
    try:
        ts_ms = int(fields["ts_ms"])
    except (KeyError, ValueError):
        return None
    return max((now if now is not None else time.time()) - ts_ms / 1000.0, 0.0)
