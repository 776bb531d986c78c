"""WebSocket consumers of the live chart and the markets overview.

Modules: the consumers here; the per-process hub, its layer reader and its recovery in
``tradesite.hub``; outboxes and the writer in ``tradesite.outbox``.

Fan-out. Each server process (event loop) has one :class:`Hub`: one channel-layer channel that
joins a market group (``bars.<venue>.<symbol>.<timeframe>``, ``markets``) when the first local
client wants it and leaves it with the last. A message read from the layer is encoded to JSON
once and handed to every local client's :class:`Outbox`. So Redis carries one copy per process
instead of one per client, and a message is encoded once per process, not per client. On
the Redis layer the hub pops its channel a batch per round trip (:class:`LayerReader`).

Delivery. An outbox holds the messages that must all arrive, in order (closed bars, private
events), and at most one forming bar (or ticker) per key. A newer forming bar replaces a pending
one, and a closed bar drops a pending forming bar of the same or an older open time: a client
that falls behind gets the latest state, never a backlog of stale ticks. One :class:`Writer`
task per event loop sends every outbox's messages, inline while sends complete at once; a client
whose send waits on the network gets a task of its own until it has caught up.

Private events (``user.<id>``: signals, orders, fills, positions) go to the consumer's own
channel and are filtered to the chart's symbol; a user's group holds only that user's sockets.

Close codes: 4401 not logged in, 4404 unknown venue, symbol or timeframe; each is preceded by
an ``{"type": "error", "code", "message"}`` frame the page shows. A socket whose login session
logs out is closed with 4401 at once (``session.ended`` on its session's group), and so is one
whose session no longer holds after its user changed (a new password, deactivated:
``session.check`` on the user's group).

Recovery. A consumer rides out a Redis outage (its own channel's receive is retried) and leaves
the hub however it ends; the hub rejoins every group after a Redis restart and sends the pages
a ``resync`` frame (:class:`tradesite.hub.Hub`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import redis.exceptions
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from markets import jsonlimits, wire
from markets.backoff import Backoff
from markets.jsonlimits import JsonLimitError
from markets.timeframes import TIMEFRAMES
from tradesite.hub import (  # noqa: F401 (re-exported: tests and benches import them here)
    GROUP_RENEW_S,
    Hub,
    LayerReader,
    RedisLayerReader,
    _leave,
    dumps,
    hub,
    hub_report,
    now_ms,
)
from tradesite.outbox import Outbox, Writer, frame, start_eagerly  # noqa: F401 (re-exported)
from tradesite.sessions import session_holds

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
#: A client frame (a ping is about 20 bytes) is parsed only within these bounds.
CLIENT_FRAME_BYTES = 1024
CLIENT_FRAME_DEPTH = 4

#: Scope key under which ``tradesite.asgi`` passes the server's own ``send`` (see there).
RAW_SEND = "tradesite.websocket_send"


# -- consumers ------------------------------------------------------------------------------------


@database_sync_to_async
def _symbol_exists(venue: str, code: str) -> bool:
    from markets.models import Symbol

    return Symbol.objects.active().filter(exchange__slug=venue, code=code).exists()


class NoRouteConsumer(AsyncWebsocketConsumer):
    """Every path no other route matches: the handshake is refused (HTTP 403 to the client,
    close code 4404 in ASGI), quietly."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)


class _HubConsumer(AsyncWebsocketConsumer):
    """Shared: authentication, an outbox, a hub subscription, ping/pong."""

    group: str | None = None
    outbox: Outbox | None = None
    #: Channel-layer groups of this consumer's own channel (the user's, the login session's).
    own_groups: tuple[str, ...] = ()
    #: Client frames refused (too large, too deep, not JSON text) on this socket.
    rejected_frames = 0
    _released = False
    _layer_receive: Callable[[], Awaitable[dict]] | None = None

    async def __call__(self, scope, receive, send) -> None:
        """Whatever ends this consumer (a disconnect, an exception, a cancellation), its outbox
        is closed and it leaves the hub: a dead socket never stays a member."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()

    # Channels sets ``channel_receive`` to the layer's receive of this consumer's channel; the
    # consumer reads it through :meth:`_receive_resilient` instead.
    @property
    def channel_receive(self):
        return self._receive_resilient

    @channel_receive.setter
    def channel_receive(self, value) -> None:
        self._layer_receive = value

    async def _receive_resilient(self) -> dict:
        """The layer's receive, retried while Redis is down instead of ending the socket (which
        channels does on any exception); the hub rejoins this channel's groups and tells the
        page to resync once Redis answers again."""
        backoff = Backoff(0.1, Hub.CHECK_S)
        while True:
            try:
                return await self._layer_receive()
            except (redis.exceptions.RedisError, OSError) as exc:  # the hub logs the loss once
                log.debug("chart: own channel receive failed (%s: %s); retrying",
                          type(exc).__name__, exc)
                hub().lost(f"consumer receive: {type(exc).__name__}: {exc}")
                await backoff.sleep()

    async def refuse(self, code: int, message: str) -> None:
        await self.accept()
        await self.send(text_data=dumps({"type": "error", "code": code, "message": message}))
        await self.close(code=code)

    def authenticated(self) -> bool:
        user = self.scope.get("user")
        return bool(user is not None and user.is_authenticated)

    async def start(self, group: str, own_groups: tuple[str, ...] = ()) -> None:
        """Accept, join the hub's ``group`` and this consumer's ``own_groups``, then say hello.

        Hello is the first frame and goes out only once every subscription is in place, so a
        client may take it as "subscribed": nothing published after it is missed (before, a
        private event published right after hello could beat the user group's join and be
        lost). Messages that arrive while the later groups are joined queue behind hello.
        """
        await self.accept()
        # The server's own send when tradesite.asgi passes it: frames then skip the session
        # middleware's send wrapper (it acts on HTTP responses only) and the consumer's.
        self.outbox = Outbox(self.scope.get(RAW_SEND) or self.base_send, held=True)
        self.outbox.put(frame(dumps({"type": "hello", "ts": now_ms(), "group": group})))
        self.group = group
        await hub().subscribe(group, self.outbox)
        # The login session's group: its logout closes this socket (tradesite.sessions).
        session_key = getattr(self.scope.get("session"), "session_key", None)
        self.own_groups = (*own_groups, *([wire.session_group(session_key)] if session_key else []))
        for own in self.own_groups:
            await self.channel_layer.group_add(own, self.channel_name)
        hub().joined_own(self.outbox, self.channel_name, self.own_groups)
        self.outbox.release()

    async def session_ended(self, event: dict) -> None:
        """The login session logged out: nothing more goes out; closed as never logged in."""
        if self.outbox is not None:
            self.outbox.close()
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def session_check(self, event: dict) -> None:
        """The user changed (password, active flag): closed like a logout unless this socket's
        login session still holds (``tradesite.sessions``)."""
        if not await session_holds(self.scope):
            await self.session_ended(event)

    async def disconnect(self, code) -> None:
        await self._release()

    async def _release(self) -> None:
        """Close the outbox, leave the hub and this channel's own groups (once)."""
        if self._released:
            return
        self._released = True
        if self.outbox is not None:
            self.outbox.close()
            if self.group is not None:
                await hub().unsubscribe(self.group, self.outbox)
        for own in self.own_groups:
            await _leave(self.channel_layer, own, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The page pings to tell a quiet market from a dead connection. Anything else a client
        sends is parsed within :data:`CLIENT_FRAME_BYTES` and :data:`CLIENT_FRAME_DEPTH`; a frame
        outside them (or not JSON text) gets a ``rejected`` frame, is counted, and the socket
        carries on."""
        try:
            if text_data is None:
                raise JsonLimitError("send JSON text frames, not binary ones")
            message = jsonlimits.loads(text_data, what="the frame", max_bytes=CLIENT_FRAME_BYTES,
                                       max_depth=CLIENT_FRAME_DEPTH)
        except JsonLimitError as exc:
            self.rejected_frames += 1
            if self.outbox is not None:
                self.outbox.put(frame(dumps({"type": "rejected", "message": str(exc)[:200]})))
            return
        if isinstance(message, dict) and message.get("type") == "ping" and self.outbox:
            self.outbox.put(frame(dumps({"type": "pong", "ts": now_ms()})))


class ChartConsumer(_HubConsumer):
    """``/ws/chart/<venue>/<symbol>/<timeframe>/``: bars of that group, and the user's own
    signals, orders, fills and positions on that symbol."""

    user_group: str | None = None

    async def connect(self) -> None:
        if not self.authenticated():
            await self.refuse(CLOSE_UNAUTHENTICATED, "log in to see live charts")
            return
        kwargs = self.scope["url_route"]["kwargs"]
        venue, code, timeframe = kwargs["venue"], kwargs["symbol"], kwargs["timeframe"]
        if timeframe not in TIMEFRAMES:
            await self.refuse(
                CLOSE_NOT_FOUND,
                f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}",
            )
            return
        try:
            group = wire.bars_group(venue, code, timeframe)
        except ValueError as exc:
            await self.refuse(CLOSE_NOT_FOUND, str(exc))
            return
        if not await _symbol_exists(venue, code):
            await self.refuse(CLOSE_NOT_FOUND, f"no active symbol {code!r} on venue {venue!r}")
            return
        self.symbol_key = f"{venue}:{code}"
        self.user_group = wire.user_group(self.scope["user"].pk)
        await self.start(group, own_groups=(self.user_group,))

    async def private_event(self, event: dict) -> None:
        if self.outbox is None or event.get("symbol") != self.symbol_key:
            return
        self._put(event)

    def _put(self, event: dict) -> None:
        try:
            text = dumps(event)
        except (TypeError, ValueError):  # NaN or a non-JSON value: the publisher's bug
            log.warning("chart: skipped an event that is not JSON: %r", event)
            return
        self.outbox.put(frame(text))

    # Channels routes type "a.b" to method "a_b"; all private events take the same path.
    signal_created = order_updated = fill_created = position_updated = private_event

    async def account_updated(self, event: dict) -> None:
        """Account state is not symbol-specific: every chart of the user shows it."""
        if self.outbox is not None:
            self._put(event)

    alert_created = account_updated  # an alert toast shows on every chart of the user

    async def equity_updated(self, event: dict) -> None:
        """Equity snapshots are the dashboard's (``/ws/markets/``); a chart has no use for them."""


class MarketsConsumer(_HubConsumer):
    """``/ws/markets/``: the latest ticker per symbol (group ``markets``), and the user's
    account-wide events from ``user.<id>`` that the dashboard redraws on: equity snapshots,
    positions that closed, account state and alerts. Per-symbol order, fill and signal events
    stay on the charts."""

    async def connect(self) -> None:
        if not self.authenticated():
            await self.refuse(CLOSE_UNAUTHENTICATED, "log in to see live prices")
            return
        await self.start(wire.MARKETS_GROUP,
                         own_groups=(wire.user_group(self.scope["user"].pk),))

    def _put(self, event: dict) -> None:
        if self.outbox is None:
            return
        try:
            text = dumps(event)
        except (TypeError, ValueError):  # NaN or a non-JSON value: the publisher's bug
            log.warning("markets: skipped an event that is not JSON: %r", event)
            return
        self.outbox.put(frame(text))

    async def account_wide(self, event: dict) -> None:
        self._put(event)

    equity_updated = account_updated = alert_created = account_wide

    async def position_updated(self, event: dict) -> None:
        if not event.get("open", True):  # a closed position: a new row of the trade history
            self._put(event)

    async def symbol_event(self, event: dict) -> None:
        """Signals, orders and fills: the charts' business."""

    signal_created = order_updated = fill_created = symbol_event
