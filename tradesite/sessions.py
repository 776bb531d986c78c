"""Logging out ends the live feeds of that login session: every chart and markets WebSocket the
session opened is closed (code 4401, the page says the session ended), so no private event
reaches a browser after its user logged out.

Django sends ``user_logged_out`` before it flushes the session, so the session key is still
known here; the consumers joined ``wire.session_group(key)`` when they connected
(``tradesite.consumers``). Other sessions of the same user (another browser) keep theirs.
"""

from __future__ import annotations

import asyncio
import logging
import threading

log = logging.getLogger(__name__)


def close_sockets_of_session(sender, request, user, **kwargs) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if not key:
        return
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from markets import wire

    layer = get_channel_layer()
    if layer is None:
        return
    send = async_to_sync(layer.group_send)
    message = {"type": wire.SESSION_ENDED}
    try:
        _in_sync_thread(send, wire.session_group(key), message)
    except Exception as exc:  # the logout itself must succeed; the sockets expire with Redis
        log.warning("logout: could not close the session's live sockets (%s: %s)",
                    type(exc).__name__, exc)


def _in_sync_thread(function, *args) -> None:
    """Call ``function`` here, or in a short-lived thread when this thread runs an event loop
    (``async_to_sync`` refuses to run there)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        function(*args)
        return
    errors: list[BaseException] = []

    def run() -> None:
        try:
            function(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="logout-close-sockets")
    thread.start()
    thread.join(10)
    if errors:
        raise errors[0]
