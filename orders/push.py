"""Private events to one user's channel group (``user.<id>``, see ``markets.wire``).

Services queue events with :func:`push_later` (sent only if the transaction commits) and the
outermost service call sends the queue in one go (:func:`batched`): one trip into the event
loop per bar or order rather than one per message (``async_to_sync`` costs milliseconds).

Listeners (:func:`add_listener`, e.g. the alerts app) see every private event when it is
queued, inside the service's transaction, so rows they write commit with the event."""

from __future__ import annotations

import functools
import logging
import threading

from asgiref.sync import async_to_sync
from django.db import transaction

from markets import wire

log = logging.getLogger(__name__)
_local = threading.local()
_listeners: list = []


def add_listener(fn) -> None:
    """Call ``fn(user_id, kind, payload)`` for every private event, when it is queued (inside
    the caller's transaction, if any). A listener's exception is logged, never raised into the
    trading path; a listener that writes must use a savepoint of its own."""
    if fn not in _listeners:
        _listeners.append(fn)


def remove_listener(fn) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def _notify(user_id: int, kind: str, payload: dict) -> None:
    for fn in list(_listeners):
        try:
            fn(user_id, kind, payload)
        except Exception:
            log.warning("private-event listener %r failed on %s", fn, kind, exc_info=True)


def push_to_user(user_id: int, kind: str, payload: dict) -> None:
    """Send a private event to ``user.<id>`` now; a channel-layer failure is logged, never
    raised into the trading path (the row is stored either way and the page reloads it)."""
    _notify(user_id, kind, payload)
    _send([(user_id, kind, payload)])


def _pending() -> list:
    if not hasattr(_local, "items"):
        _local.items = []
    return _local.items


def push_later(user_id: int, kind: str, payload: dict) -> None:
    """Queue an event for when the current transaction commits (dropped on rollback)."""
    _notify(user_id, kind, payload)
    transaction.on_commit(lambda: _pending().append((user_id, kind, payload)))


def flush() -> None:
    """Send every queued event, in order."""
    items = _pending()
    if items:
        _local.items = []
        _send(items)


def _send(items) -> None:
    # Imported here: the trading services import this module, and the channel layer (and
    # its Redis client) is only needed once there is something to send.
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all():
        for user_id, kind, payload in items:
            try:
                await layer.group_send(
                    wire.user_group(user_id), wire.private_message(kind, payload)
                )
            except Exception:
                log.warning("could not push %s to user %s", kind, user_id, exc_info=True)

    try:
        async_to_sync(send_all)()
    except Exception:
        log.warning("could not push %d event(s)", len(items), exc_info=True)


def batched(fn):
    """Send the events queued during ``fn`` when the outermost batched call returns."""

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        depth = getattr(_local, "depth", 0)
        _local.depth = depth + 1
        try:
            return fn(*args, **kwargs)
        finally:
            _local.depth = depth
            if depth == 0:
                flush()

    return inner
