"""Send a placement once; when its outcome is unknown, look it up by client id, never re-send.

Every adapter's ``place_order`` (and ``place_stop``) goes through ``send_once``:

* the send succeeds: its answer;
* ``RequestNotSent`` (nothing left this machine) or ``RateLimited`` (the venue refused it
  before acting): raised as is; the caller may retry with the same client id;
* any other ``TemporaryExchangeError`` (read timeout, dropped connection, 5xx): the order may
  exist. It is looked up through the adapter's own ``lookup`` at most ``attempts`` times,
  ``delay_s`` apart. Found: the lookup's answer. ``OrderNotFound`` or a failed lookup on every
  attempt: ``OrderStatusUnknown`` (reconcile later) - the request is never sent again;
* anything else (a rejection, bad credentials): raised as is.

``PlacesOnce`` is the ``place_order`` of the adapters built on it: pre-check, round to the
venue's rules (``_prepare``), then ``send_once`` with ``_submit`` and ``fetch_order`` by client
order id.

Pure: standard library and ``errors`` only; the adapter supplies ``send``, ``lookup`` and
``sleep``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import (
    OrderNotFound,
    OrderStatusUnknown,
    RateLimited,
    RequestNotSent,
    TemporaryExchangeError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


def send_once(send: Callable[[], T], lookup: Callable[[], T], *, venue: str, client_id: str,
              attempts: int, delay_s: float, sleep: Callable[[float], None],
              what: str = "order", reconcile: str = "fetch_order") -> T:
    """``send()`` once; on an unknown outcome ``lookup()`` (by client id) up to ``attempts``
    times, else raise ``OrderStatusUnknown`` naming ``what`` and the ``reconcile`` call."""
    try:
        return send()
    except (RequestNotSent, RateLimited):
        raise
    except TemporaryExchangeError as exc:
        log.warning("%s: placing %s %s gave %s; looking it up by client id", venue, what,
                    client_id, exc)
        for attempt in range(max(0, attempts)):
            if attempt:
                sleep(delay_s)
            try:
                return lookup()
            except OrderNotFound:
                continue
            except TemporaryExchangeError as lookup_exc:
                log.warning("%s: lookup of %s %s failed: %s", venue, what, client_id,
                            lookup_exc)
        raise OrderStatusUnknown(
            f"{venue}: {what} {client_id} outcome unknown after {exc}; not resent - "
            f"reconcile with {reconcile}", client_order_id=client_id, venue=venue) from exc


class PlacesOnce:
    """Mixin giving an adapter its ``place_order``. The adapter supplies ``_prepare`` (round
    and check against the symbol's rules), ``_submit`` (one send), ``fetch_order``,
    ``lookup_attempts``, ``lookup_delay_s`` and ``_sleep``."""

    def place_order(self: Any, order: Any) -> Any:
        """Pre-check, round and send ``order``; never re-sends blindly.

        If the response times out, the connection drops after sending, or the venue answers
        5xx, the order is looked up by its client order id (``lookup_attempts`` times,
        ``lookup_delay_s`` apart) and returned when found. If it still cannot be found,
        ``OrderStatusUnknown`` is raised: reconcile later with ``fetch_order``. A request that
        provably never left (connection refused) raises ``RequestNotSent`` and may be retried
        with the same client order id.
        """
        self.check_order_request(order)
        order = self._prepare(order)
        return send_once(lambda: self._submit(order),
                         lambda: self.fetch_order(order.symbol,
                                                  client_order_id=order.client_order_id),
                         venue=self.key, client_id=order.client_order_id,
                         attempts=self.lookup_attempts, delay_s=self.lookup_delay_s,
                         sleep=self._sleep)
