"""Private events to one user's channel group (``user.<id>``, see ``markets.wire``)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from markets import wire

log = logging.getLogger(__name__)


def push_to_user(user_id: int, kind: str, payload: dict) -> None:
    """Send a private event to ``user.<id>``; a channel-layer failure is logged, never raised
    into the trading path (the row is stored either way and the page reloads it)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            wire.user_group(user_id), wire.private_message(kind, payload)
        )
    except Exception:
        log.warning("could not push %s to user %s", kind, user_id, exc_info=True)
