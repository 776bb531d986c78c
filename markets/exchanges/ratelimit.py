"""Rate limiting per venue and endpoint group, in-process or shared through Redis.

Both backends keep a *sliding-window log* per group: a request of weight ``w`` is granted only if
the weights granted in the last ``window_s`` seconds plus ``w`` stay within ``capacity``. That
bounds every interval of ``window_s`` seconds, so it also bounds the venue's own fixed windows
(Upbit's per-second groups, Binance's per-minute weight). On top of the log, a group can be
*blocked* until a moment: a 429/418 ``Retry-After``, Upbit's ``Remaining-Req: ...; sec=0``, or
Binance's ``X-MBX-USED-WEIGHT-1M`` reaching the limit.

Upbit's ``sec=0`` blocks only until the venue's current second can have ended: the venue counts
in fixed one-second windows whose start we never see, but every response it counted in a window
arrived back after that window began. So while ``sec`` falls by exactly one per response (our
own requests, one window), the earliest of those responses bounds the window's start, and the
block lasts until one window length after it. Anything else (a rise: a new window; a skip:
someone else spent from it; an out-of-order reply) starts over from the response at hand,
which degrades to a whole window's block, never to a shorter one than is safe.

The Redis backend runs one Lua script per acquisition (atomic on the server, clocked by Redis'
``TIME``), so the stream, every worker and a backfill share one budget. Keys live under
``tradesite:ratelimit:<venue>:<group>`` (a sorted set) and ``...:block`` (a string with a TTL).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping

from .base import RateGroup

KEY_PREFIX = "tradesite:ratelimit:"

log = logging.getLogger(__name__)


class RateLimiter:
    """Interface: ``acquire`` blocks until the group has room; ``block`` pauses a group."""

    def __init__(self, venue: str, groups: Mapping[str, RateGroup], *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.venue = venue
        self.groups = dict(groups)
        self._sleep = sleep
        # Upbit ``Remaining-Req`` bookkeeping per group: (when the earliest response known to be
        # in the venue's current window arrived back, the ``sec`` it or a later one reported).
        self._venue_window: dict[str, tuple[float, int]] = {}
        self._venue_lock = threading.Lock()

    def _monotonic(self) -> float:
        """The clock header observations are timed with (seconds, monotonic)."""
        return time.monotonic()

    def _group(self, group: str) -> RateGroup:
        try:
            return self.groups[group]
        except KeyError:
            raise ValueError(f"{self.venue}: unknown rate-limit group {group!r}; "
                             f"known: {', '.join(sorted(self.groups))}") from None

    def try_acquire(self, group: str, weight: int = 1) -> float:
        """Take ``weight`` now and return 0.0, or take nothing and return seconds to wait."""
        raise NotImplementedError

    def acquire(self, group: str, weight: int = 1, *, timeout_s: float | None = None) -> float:
        """Wait until ``weight`` fits in ``group``; returns the seconds waited.

        ``timeout_s``: give up with ``TimeoutError`` once waiting longer would exceed it.
        """
        spec = self._group(group)
        if weight > spec.capacity:
            raise ValueError(f"{self.venue}/{group}: weight {weight} exceeds the whole "
                             f"budget of {spec.capacity} per {spec.window_s}s")
        waited = 0.0
        while True:
            wait = self.try_acquire(group, weight)
            if wait <= 0:
                return waited
            if timeout_s is not None and waited + wait > timeout_s:
                raise TimeoutError(f"{self.venue}/{group}: no room within {timeout_s}s")
            self._sleep(wait)
            waited += wait

    def block(self, group: str, seconds: float) -> None:
        """Grant nothing in ``group`` for ``seconds`` (extends, never shortens, a block)."""
        raise NotImplementedError

    def blocked_for(self, group: str) -> float:
        """Seconds left on the group's block (0.0 when not blocked)."""
        raise NotImplementedError

    # venue header feedback ----------------------------------------------------------------
    #: Added to a ``sec=0`` block: timer and clock granularity, never a reason for a 429.
    VENUE_WINDOW_MARGIN_S = 0.005

    def observe_remaining(self, group: str, remaining_this_second: int, *,
                          now_s: float | None = None) -> None:
        """Upbit ``Remaining-Req: ...; sec=N`` of a response that just arrived: at 0, grant
        nothing in ``group`` until the venue's current second has surely ended (see the module
        doc; at most one window length, the group's ``window_s``). ``now_s``: the arrival time
        on :meth:`_monotonic`'s clock (tests)."""
        spec = self.groups.get(group)
        if spec is None:
            return
        now = self._monotonic() if now_s is None else now_s
        with self._venue_lock:
            seen = self._venue_window.get(group)
            same_window = (
                seen is not None
                and remaining_this_second == seen[1] - 1
                and 0.0 <= now - seen[0] < spec.window_s
            )
            first = seen[0] if same_window else now
            self._venue_window[group] = (first, remaining_this_second)
        if remaining_this_second <= 0:
            self.block(group, first + spec.window_s - now + self.VENUE_WINDOW_MARGIN_S)

    def observe_used_weight(self, group: str, used: int, *, now_s: float | None = None) -> None:
        """Binance ``X-MBX-USED-WEIGHT-1M``: at the limit, wait for the next UTC minute."""
        spec = self.groups.get(group)
        if spec is not None and used >= spec.capacity:
            now = time.time() if now_s is None else now_s
            self.block(group, 60.0 - now % 60.0 + 0.05)


class InProcessRateLimiter(RateLimiter):
    """Thread-safe limiter for one process (tests, a single runner)."""

    def __init__(self, venue: str, groups: Mapping[str, RateGroup], *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(venue, groups, sleep=sleep)
        self._clock = clock
        self._lock = threading.Lock()
        self._log: dict[str, collections.deque[tuple[float, int]]] = collections.defaultdict(
            collections.deque)
        self._blocked_until: dict[str, float] = {}

    def _monotonic(self) -> float:
        return self._clock()

    def try_acquire(self, group: str, weight: int = 1) -> float:
        spec = self._group(group)
        with self._lock:
            now = self._clock()
            blocked = self._blocked_until.get(group, 0.0) - now
            if blocked > 0:
                return blocked
            log = self._log[group]
            while log and log[0][0] <= now - spec.window_s:
                log.popleft()
            used = sum(w for _, w in log)
            if used + weight <= spec.capacity:
                log.append((now, weight))
                return 0.0
            need, freed = used + weight - spec.capacity, 0
            for ts, w in log:
                freed += w
                if freed >= need:
                    return max(ts + spec.window_s - now, 1e-3)
            return spec.window_s

    def block(self, group: str, seconds: float) -> None:
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            self._blocked_until[group] = max(self._blocked_until.get(group, 0.0), until)

    def blocked_for(self, group: str) -> float:
        with self._lock:
            return max(0.0, self._blocked_until.get(group, 0.0) - self._clock())


_ACQUIRE_LUA = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local weight = tonumber(ARGV[3])
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then return blocked end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
  used = used + tonumber(string.match(entries[i], ':(%d+)$'))
end
if used + weight <= capacity then
  redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. weight)
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  return 0
end
local need = used + weight - capacity
local freed = 0
for i = 1, #entries, 2 do
  freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
  if freed >= need then
    return math.max(tonumber(entries[i + 1]) + window - now + 1, 1)
  end
end
return window
"""

_BLOCK_LUA = """
local ms = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 1
"""


class RedisRateLimiter(RateLimiter):
    """Limiter shared by every process using the same Redis (``redis.Redis`` client given).

    ``fallback``: while Redis does not answer, this process is limited by it alone (a warning
    says so, at most once a minute), so an order or a cancel is not refused for want of the
    shared budget; without one, the Redis error is raised. After a failure the fallback alone
    answers for :attr:`RETRY_REDIS_AFTER_S`: a Redis that hangs (each call waits out the
    client's 2 s timeouts) then delays one call, not every order and cancel of a kill switch."""

    #: Seconds between two "Redis unreachable" warnings of one limiter.
    DEGRADED_LOG_EVERY_S = 60.0
    #: Seconds after a Redis failure before Redis is asked again (the fallback meanwhile).
    RETRY_REDIS_AFTER_S = 5.0

    def __init__(self, venue: str, groups: Mapping[str, RateGroup], client, *,
                 sleep: Callable[[float], None] = time.sleep,
                 fallback: RateLimiter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(venue, groups, sleep=sleep)
        self.client = client
        self.fallback = fallback
        self._clock = clock
        self._redis_down_until = float("-inf")
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._block = client.register_script(_BLOCK_LUA)
        self._warned_at: float | None = None
        from redis.exceptions import RedisError  # here: a client was given, so redis is there

        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError)

    def _keys(self, group: str) -> list[str]:
        base = f"{KEY_PREFIX}{self.venue}:{group}"
        return [base, base + ":block"]

    def _skipping_redis(self) -> bool:
        """A fallback stands in and Redis failed less than RETRY_REDIS_AFTER_S ago."""
        return self.fallback is not None and self._clock() < self._redis_down_until

    def _degraded(self, exc: BaseException) -> RateLimiter:
        if self.fallback is None:
            raise exc
        self._redis_down_until = self._clock() + self.RETRY_REDIS_AFTER_S
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= self.DEGRADED_LOG_EVERY_S:
            self._warned_at = now
            log.warning("%s: the shared rate limit in Redis is unreachable (%s: %s); limiting "
                        "this process alone until it answers", self.venue,
                        type(exc).__name__, exc)
        return self.fallback

    def try_acquire(self, group: str, weight: int = 1) -> float:
        spec = self._group(group)
        if self._skipping_redis():
            return self.fallback.try_acquire(group, weight)
        try:
            wait_ms = self._acquire(
                keys=self._keys(group),
                args=[spec.capacity, math.ceil(spec.window_s * 1000), int(weight),
                      uuid.uuid4().hex],
            )
        except self._errors as exc:
            return self._degraded(exc).try_acquire(group, weight)
        return int(wait_ms) / 1000.0

    def block(self, group: str, seconds: float) -> None:
        ms = math.ceil(max(0.0, seconds) * 1000)
        if self.fallback is not None:
            self.fallback.block(group, seconds)  # kept locally too, for an outage to come
        if ms > 0 and not self._skipping_redis():
            try:
                self._block(keys=[self._keys(group)[1]], args=[ms])
            except self._errors as exc:
                self._degraded(exc)

    def blocked_for(self, group: str) -> float:
        if self._skipping_redis():
            return self.fallback.blocked_for(group)
        try:
            left = self.client.pttl(self._keys(group)[1])
        except self._errors as exc:
            return self._degraded(exc).blocked_for(group)
        return max(0, int(left)) / 1000.0


def parse_remaining_req(value: str | None) -> tuple[str, int] | None:
    """``"group=order; min=480; sec=7"`` -> ``("order", 7)``; None when absent or garbled."""
    if not value:
        return None
    fields = {}
    for part in value.split(";"):
        name, _, val = part.strip().partition("=")
        fields[name.strip()] = val.strip()
    try:
        return fields["group"], int(fields["sec"])
    except (KeyError, ValueError):
        return None


def parse_retry_after(value: str | None, default: float) -> float:
    """``Retry-After`` in seconds (a number); ``default`` when absent or not a number."""
    try:
        return max(0.0, float(value)) if value not in (None, "") else default
    except ValueError:
        return default
