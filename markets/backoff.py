"""Reconnect backoff, written once: jittered exponential delays, capped, and reset once the
thing retried has been healthy for a while.

>>> b = Backoff(min_s=0.5, max_s=30.0, jitter=0.0)
>>> [b.failed() for _ in range(8)]
[0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]

Used by every reconnect loop: the adapters' WebSocket loop (``markets.exchanges.ws``), the
stream's trade and mark-price connections (``markets.stream``), the chart hub's channel-layer
recovery (``tradesite.hub``). Pure: no Django, no I/O; the clock and the random source can be
injected.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable


class Backoff:
    """Delays before successive retries.

    ``failed()`` gives the delay before the next attempt: ``min_s``, then ``factor`` times the
    previous one, at most ``max_s``, each spread by ``± jitter`` (a fraction) so many clients
    that failed together do not retry together; a jittered delay never exceeds ``max_s`` nor
    falls below ``min_s * (1 - jitter)``.

    ``healthy()`` says the last attempt worked (a connection opened, a message arrived). The
    delays start over from ``min_s`` at the next failure only if that failure comes at least
    ``healthy_s`` seconds after the first ``healthy()`` of the stretch: a connection that opens
    and drops at once keeps backing off instead of hammering the venue. ``healthy_s=0``: any
    success starts over.
    """

    def __init__(self, min_s: float = 0.5, max_s: float = 30.0, *, factor: float = 2.0,
                 jitter: float = 0.2, healthy_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"backoff: need 0 < min_s <= max_s, got {min_s} and {max_s}")
        if factor < 1 or not 0 <= jitter < 1 or healthy_s < 0:
            raise ValueError(f"backoff: need factor >= 1, 0 <= jitter < 1 and healthy_s >= 0, "
                             f"got {factor}, {jitter} and {healthy_s}")
        self.min_s, self.max_s, self.factor = min_s, max_s, factor
        self.jitter, self.healthy_s = jitter, healthy_s
        self._clock, self._rand = clock, rand
        self._next = min_s
        self._healthy_since: float | None = None
        self.failures = 0  # in a row, since the last reset

    def reset(self) -> None:
        """Start over from ``min_s`` now."""
        self._next, self.failures, self._healthy_since = self.min_s, 0, None

    def healthy(self) -> None:
        """The retried thing works now (cheap: call it on every message if convenient)."""
        if self._healthy_since is None:
            self._healthy_since = self._clock()

    @property
    def base_s(self) -> float:
        """The next delay before jitter."""
        return self._next

    def failed(self) -> float:
        """It failed: the seconds to wait before the next attempt."""
        if (self._healthy_since is not None
                and self._clock() - self._healthy_since >= self.healthy_s):
            self._next, self.failures = self.min_s, 0
        self._healthy_since = None
        base = self._next
        self._next = min(base * self.factor, self.max_s)
        self.failures += 1
        spread = 1.0 + self.jitter * (2.0 * self._rand() - 1.0)
        return min(base * spread, self.max_s)

    async def sleep(self) -> float:
        """``failed()``, then wait that long (asyncio); returns the delay."""
        delay = self.failed()
        await asyncio.sleep(delay)
        return delay
