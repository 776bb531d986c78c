"""What a venue stream is given: the venue and its symbols, its timings, and a log throttle."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

log = logging.getLogger("markets.stream")


@dataclasses.dataclass(frozen=True)
class SymbolSpec:
    """What the stream needs of one symbol: its code, row id and timeframes."""

    code: str
    id: int
    timeframes: tuple[str, ...]
    market_type: str = "spot"


@dataclasses.dataclass(frozen=True)
class VenueSpec:
    slug: str
    adapter: str
    rest_url: str
    ws_url: str
    symbols: tuple[SymbolSpec, ...]


@dataclasses.dataclass
class StreamConfig:
    """Timings (seconds unless the name says ms)."""

    grace_ms: int = 2_000  # a bucket closes this long after its end (late trades)
    #: ... or sooner: once a connection's trades are this far past its end (venue time), the
    #: bars of that connection's symbols close (a quiet symbol need not wait for the grace).
    #: A trade arriving later still has its bar taken from REST. Negative: off.
    watermark_lag_ms: int = 300
    margin_ms: int = 2_000  # widen an interruption by this much on both sides (clock skew)
    forming_interval_s: float = 0.25  # at most 4 forming-bar pushes a second per group
    ticker_interval_s: float = 1.0  # at most one ticker a second per symbol
    flush_interval_s: float = 0.5  # a failed store of closed bars is retried this often
    silence_s: float = 30.0  # an open connection this quiet is reconnected (watchdog)
    heartbeat_s: float = 5.0
    heartbeat_ttl_s: int = 60
    catchup_candles: int = 400  # at start, fetch at most this many missing candles per series
    fill_retry_s: float = 5.0  # after a failed REST fill, wait this long
    reconnect_min_s: float = 0.5  # watchdog restarts back off from here ...
    reconnect_max_s: float = 30.0  # ... to here (jittered, doubling), and start over once
    reconnect_healthy_s: float = 5.0  # a connection streamed this long (markets.backoff)
    log_every_s: float = 60.0  # a repeated failure is logged at most this often


class LogThrottle:
    """Logs the first occurrence of a key, then at most once per ``every_s`` (with a count)."""

    def __init__(self, every_s: float = 60.0, logger: logging.Logger = log) -> None:
        self.every_s, self.logger = every_s, logger
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: Any) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        n = self._suppressed.pop(key, 0)
        suffix = f" (repeated {n} time(s) since the last report)" if n else ""
        self.logger.warning(msg + suffix, *args)
        return True

    def reset(self, key: str) -> None:
        self._last.pop(key, None)
        self._suppressed.pop(key, None)


#: Characters a symbol adds to a combined-stream URL beyond its code: ``/``, ``@aggTrade`` or
#: ``@markPrice@1s`` (the longest stream suffix the stream subscribes to) and some slack.
STREAM_NAME_OVERHEAD = 16
#: The base of such a URL (scheme, host, path, ``?streams=``), generously.
URL_BASE_CHARS = 200


def connection_groups(codes: list[str], per_connection: int | None,
                      url_max_chars: int | None = None) -> list[list[str]]:
    """``codes`` split into connections of at most ``per_connection`` streams (the venue's
    ``capabilities.ws_streams_per_connection``; None: no count limit) and, where the venue
    names the streams in the URL, URLs of at most ``url_max_chars``
    (``capabilities.ws_url_max_chars``). In order; every code in exactly one group."""
    groups: list[list[str]] = []
    budget = None if url_max_chars is None else url_max_chars - URL_BASE_CHARS
    current: list[str] = []
    used = 0
    for code in codes:
        cost = len(code) + STREAM_NAME_OVERHEAD
        full = (per_connection and len(current) >= per_connection) or (
            budget is not None and current and used + cost > budget)
        if full:
            groups.append(current)
            current, used = [], 0
        current.append(code)
        used += cost
    if current:
        groups.append(current)
    return groups


def accelerated_clock(spec: str):
    """``STREAM_CLOCK`` -> a clock (ms) for a simulator on its accelerated clock, or None (the
    wall clock). ``"at=<sim ms>,wall=<wall ms>,speed=<x>"``: the simulated clock read ``at``
    when the wall clock read ``wall`` and runs ``speed`` times as fast."""
    if not (spec or "").strip():
        return None
    try:
        parts = dict(p.split("=", 1) for p in spec.replace(" ", "").split(","))
        at, wall, speed = int(parts["at"]), int(parts["wall"]), float(parts["speed"])
    except (ValueError, KeyError) as exc:
        raise ValueError(f"STREAM_CLOCK {spec!r}: expected 'at=<sim ms>,wall=<wall ms>,"
                         f"speed=<x>' ({exc})") from None
    if not speed > 0:
        raise ValueError(f"STREAM_CLOCK {spec!r}: speed must be positive")

    def clock_ms() -> int:
        return at + int((time.time() * 1000 - wall) * speed)

    clock_ms.speed = speed  # type: ignore[attr-defined]
    return clock_ms


def scaled_config(speed: float) -> StreamConfig:
    """Timings for a clock running ``speed`` times as fast: the grace for late trades, the
    watermark's lag and the margin around interruptions are simulated time, so they stretch
    with it (the process's own scheduling delays do not shrink)."""
    base = StreamConfig()
    return dataclasses.replace(base, grace_ms=int(base.grace_ms * speed),
                               margin_ms=int(base.margin_ms * speed),
                               watermark_lag_ms=int(base.watermark_lag_ms * speed))
