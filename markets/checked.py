"""Time ranges already fetched from a venue, per symbol and timeframe (in Redis), and the
interval arithmetic :mod:`markets.backfill` plans with. See its docstring for why."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from django.conf import settings

from markets import heartbeat

log = logging.getLogger(__name__)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in ranges if b > a):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def subtract(ranges: Iterable[tuple[int, int]], minus: Iterable[tuple[int, int]]
             ) -> list[tuple[int, int]]:
    """``ranges`` without the parts covered by ``minus`` (half-open ms intervals)."""
    cut = _merge(minus)
    out = []
    for a, b in ranges:
        for c, d in cut:
            if d <= a or c >= b:
                continue
            if c > a:
                out.append((a, c))
            a = max(a, d)
            if a >= b:
                break
        if a < b:
            out.append((a, b))
    return out


class CheckedRanges:
    """Time ranges already fetched from the venue for one symbol and timeframe (in Redis)."""

    def __init__(self, venue: str, symbol: str, timeframe: str, client=None) -> None:
        self.key = f"{settings.REDIS_KEY_PREFIX}backfill:checked:{venue}:{symbol}:{timeframe}"
        self.client = client or heartbeat.client()

    def get(self) -> list[tuple[int, int]]:
        raw = self.client.get(self.key)
        if not raw:
            return []
        try:
            return [(int(a), int(b)) for a, b in json.loads(raw)]
        except (ValueError, TypeError):
            log.warning("ignoring unreadable checked ranges in %s", self.key)
            return []

    def add(self, start_ms: int, end_ms: int) -> None:
        if end_ms <= start_ms:
            return
        merged = _merge([*self.get(), (start_ms, end_ms)])
        self.client.set(self.key, json.dumps(merged))

    def clear(self) -> None:
        self.client.delete(self.key)
