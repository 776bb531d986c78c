"""The product's timeframes and their arithmetic. Pure: no Django, safe to import anywhere.

Times here are integer milliseconds since the Unix epoch, UTC. Every timeframe's buckets are
aligned to the epoch, so a 1d bar opens at 00:00 UTC and a 4h bar at 00:00, 04:00, ... UTC.
"""

from __future__ import annotations

MINUTE_MS = 60_000

#: Timeframes the product offers, shortest first, with their length in milliseconds.
TIMEFRAME_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}
TIMEFRAMES: tuple[str, ...] = tuple(TIMEFRAME_MS)


def timeframe_ms(timeframe: str) -> int:
    """Length of one bar of ``timeframe`` in ms; a clear ValueError for an unknown one."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(
            f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}"
        ) from None


def floor_ms(ts_ms: int, timeframe: str) -> int:
    """Open time (ms) of the ``timeframe`` bar that contains ``ts_ms``."""
    step = timeframe_ms(timeframe)
    return ts_ms - ts_ms % step


def is_aligned(ts_ms: int, timeframe: str) -> bool:
    """True when ``ts_ms`` is the open time of a ``timeframe`` bar."""
    return ts_ms % timeframe_ms(timeframe) == 0


def parse_timeframes(text: str) -> list[str]:
    """Parse a comma-separated list such as ``"1m,5m,1h"``; unknown names raise ValueError."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        timeframe_ms(name)
    return names
