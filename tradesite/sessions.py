"""Logging out ends the live feeds of that login session: every chart and markets WebSocket the
session opened is closed (code 4401, the page says the session ended), so no private event
reaches a browser after its user logged out.

Django sends ``user_logged_out`` before it flushes the session, so the session key is still
known here; the consumers joined ``wire.session_group(key)`` when they connected
(``tradesite.consumers``). Other sessions of the same user (another browser) keep theirs.

A changed user (a new password, deactivated in the admin) ends the sessions Django no longer
accepts: each HTTP request checks the session's password hash, but an open socket made no more
requests. So a saved user sends ``session.check`` to the user's group, and each of that user's
sockets checks its own login session the way Django's ``get_user`` does, and closes (4401) if
it no longer holds. The session that changed the password gets a new key from Django, so its
open sockets close too; its pages reconnect with the new cookie.
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


def check_sockets_of_user(sender, instance, created=False, update_fields=None, **kwargs) -> None:
    """``post_save`` of the user model: after the commit, every socket of this user re-checks
    its login session (a login only stamps ``last_login``: no check)."""
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    from django.db import transaction

    user_id = instance.pk
    transaction.on_commit(lambda: _send_check(user_id))


def _send_check(user_id: int) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from markets import wire

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        _in_sync_thread(async_to_sync(layer.group_send), wire.user_group(user_id),
                        {"type": wire.SESSION_CHECK})
    except Exception as exc:  # the save itself must succeed
        log.warning("user %s changed: could not ask the live sockets to check their sessions "
                    "(%s: %s); they close on their next reconnect", user_id, type(exc).__name__,
                    exc)


def session_still_valid(session_key: str | None, user_id: int) -> bool:
    """Does the login session ``session_key`` still log in user ``user_id``, as Django's
    ``get_user`` decides it (the session exists, the password hash matches, with the secret key
    fallbacks; the user may log in)? Without a session key (a socket not opened with a
    session cookie): whether the user still exists and is active."""
    from importlib import import_module
    from types import SimpleNamespace

    from django.conf import settings
    from django.contrib.auth import get_user, get_user_model

    if not session_key:
        return get_user_model().objects.filter(pk=user_id, is_active=True).exists()
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=store))  # flushes a session it refuses, as Django
    return bool(user.is_authenticated and user.pk == user_id)


async def session_holds(scope) -> bool:
    """:func:`session_still_valid` for a socket's scope (its session cookie's key, its user)."""
    from channels.db import database_sync_to_async

    key = getattr(scope.get("session"), "session_key", None)
    return await database_sync_to_async(session_still_valid)(key, scope["user"].pk)


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
