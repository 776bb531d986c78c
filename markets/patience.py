"""Waiting out a venue's refusals (429 and 418) and its passing failures (5xx, unavailable,
a timeout) instead of giving up on the first ones.

The REST client already blocks the shared limiter for the venue's ``Retry-After`` (or Upbit's
``Remaining-Req: sec=0``, or Binance's ``X-MBX-USED-WEIGHT-1M``) and waits out two 429s itself;
a :class:`Patience` goes on waiting after that, each time for the ``Retry-After`` the venue
gave. A temporary failure of a venue that answers (``TemporaryExchangeError``: a 5xx, the
venue's "unavailable", an answer lost to a timeout) is retried after a jittered exponential
backoff (1 s doubling to 60 s). No connection at all (``RequestNotSent``: a wrong address, the
venue or the network down) is raised at once, as before: the caller records the range and
``collect_candles`` comes back to it. It stops once the venue has refused for
``max_refused_s`` seconds in a row (failed: ``max_failing_s``, by default the same), and raises
:class:`VenueRefusing`, whose message says how long and how often, and what happens
next. Only for reads (candle fetches), which are safe to send again.

Pure: no Django.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from markets.backoff import Backoff
from markets.exchanges.errors import (
    ExchangeError,
    RateLimited,
    RequestNotSent,
    TemporaryExchangeError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class VenueRefusing(ExchangeError):
    """The venue kept refusing (429/418) or failing (5xx, unavailable, timeouts) for longer than
    the caller waits."""


class Patience:
    """Calls a function again after each ``RateLimited``, waiting ``retry_after`` seconds, and
    after each ``TemporaryExchangeError``, waiting ``backoff``'s next delay, until the venue
    has refused for ``max_refused_s`` seconds in a row, or failed for ``max_failing_s`` (default:
    the same), a success starting over.

    ``limit_name`` names the setting that sets ``max_refused_s`` in the error message.
    ``on_wait(seconds)`` runs before each wait (a job renews its lease there).
    """

    def __init__(self, max_refused_s: float, *, limit_name: str = "",
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 on_wait: Callable[[float], None] | None = None,
                 backoff: Backoff | None = None,
                 max_failing_s: float | None = None) -> None:
        self.max_refused_s = float(max_refused_s)
        #: How long failures in a row are retried (default: as long as refusals).
        self.max_failing_s = self.max_refused_s if max_failing_s is None else float(max_failing_s)
        self.limit_name = limit_name
        self._sleep = sleep
        self._clock = clock
        self.on_wait = on_wait
        self.refusals = 0  # every 429/418 seen
        self.waited_s = 0.0  # seconds spent waiting them out
        self.failures = 0  # every temporary failure seen (5xx, unavailable, timeout)
        self.failed_wait_s = 0.0  # seconds spent waiting before trying again
        self._backoff = backoff or Backoff(min_s=1.0, max_s=60.0, clock=clock)
        self._since: float | None = None  # first refusal of the current streak
        self._streak = 0

    def call(self, fn: Callable[..., T], *args, venue: str | None = None, **kwargs) -> T:
        """``fn(*args, **kwargs)``, again after each refusal; ``venue`` names it in messages
        (default: the adapter's protocol name the error carries)."""
        while True:
            try:
                result = fn(*args, **kwargs)
            except RateLimited as exc:
                self._refused(exc, venue or exc.venue or "the venue")
                continue
            except RequestNotSent:
                raise  # no connection at all (a wrong address, the venue or the network down)
            except TemporaryExchangeError as exc:
                self._failed(exc, venue or exc.venue or "the venue")
                continue
            self._since, self._streak = None, 0
            self._backoff.reset()
            return result

    def _in_a_row(self) -> float:
        """Count one more refusal or failure of the streak; seconds since the streak began."""
        now = self._clock()
        if self._since is None:
            self._since = now
        self._streak += 1
        return now - self._since

    def _wait(self, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds)
        self._sleep(seconds)

    def _failed(self, exc: TemporaryExchangeError, venue: str) -> None:
        self.failures += 1
        failing_for = self._in_a_row()
        wait = self._backoff.failed()
        if failing_for + wait > self.max_failing_s:
            named = self.limit_name and self.max_failing_s == self.max_refused_s
            limit = f" ({self.limit_name})" if named else ""
            raise VenueRefusing(
                f"{venue} kept failing: {self._streak} requests in a row refused or failed "
                f"over {failing_for:.0f}s (last: {exc}); stopped waiting after "
                f"{self.max_failing_s:.0f}s{limit}. The unfinished range is recorded; "
                f"collect_candles fetches it once the venue answers again.",
                venue=venue, status=exc.status, code=exc.code,
            ) from exc
        log.warning("%s failed a request (%s), trying again in %.1fs (%d in a row)",
                    venue, exc, wait, self._streak)
        self._wait(wait)
        self.failed_wait_s += wait

    def _refused(self, exc: RateLimited, venue: str) -> None:
        self.refusals += 1
        refused_for = self._in_a_row()
        wait = max(exc.retry_after, 0.05)
        if refused_for + wait > self.max_refused_s:
            limit = f" ({self.limit_name})" if self.limit_name else ""
            raise VenueRefusing(
                f"{venue} kept refusing requests: {self._streak} requests refused (429/418) "
                f"in a row over {refused_for:.0f}s (last: {exc.status} asking for "
                f"{exc.retry_after:.0f}s more); stopped waiting after {self.max_refused_s:.0f}s"
                f"{limit}. The unfinished range is recorded; collect_candles fetches it once "
                f"the venue answers again.",
                venue=venue, status=exc.status, code=exc.code,
            ) from exc
        log.warning("%s refused a request (%s), waiting %.1fs as asked (%d in a row)",
                    venue, exc.status, wait, self._streak)
        self._wait(wait)
        self.waited_s += wait
