"""``/ws/alerts/``: the user's own notifications (``alert.created`` on ``user.<id>``), for the
alerts page's toasts. Only the user's own group and login session's group are joined, so a
socket never carries another user's alerts; logging out closes it, and so does a password
change or deactivation that ends its session (``tradesite.sessions``)."""

from __future__ import annotations

import json

from channels.generic.websocket import AsyncWebsocketConsumer

from markets import wire
from tradesite.sessions import session_holds

CLOSE_UNAUTHENTICATED = 4401


class AlertsConsumer(AsyncWebsocketConsumer):
    groups_joined: tuple[str, ...] = ()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.send(text_data=json.dumps({"type": "error", "code": CLOSE_UNAUTHENTICATED,
                                                  "message": "log in to see your alerts"}))
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        session_key = getattr(self.scope.get("session"), "session_key", None)
        self.groups_joined = (wire.user_group(user.pk),
                              *([wire.session_group(session_key)] if session_key else []))
        await self.accept()
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.send(text_data=json.dumps({"type": "hello"}))

    async def disconnect(self, code) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Nothing is read from the page (frames are dropped unparsed)."""

    async def alert_created(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event, default=str))

    async def session_ended(self, event: dict) -> None:
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def session_check(self, event: dict) -> None:
        """The user changed: closed unless this socket's login session still holds."""
        if not await session_holds(self.scope):
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _ignore(self, event: dict) -> None:
        """The user's other private events (orders, fills ...) are not this page's."""

    signal_created = order_updated = fill_created = position_updated = account_updated = _ignore
