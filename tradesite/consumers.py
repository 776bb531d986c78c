"""WebSocket consumers of the live chart and the markets overview.

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
logs out is closed with 4401 at once (``session.ended`` on its session's group).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import time
import types
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis.exceptions
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from markets import jsonlimits, wire
from markets.jsonlimits import JsonLimitError
from markets.timeframes import TIMEFRAMES

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
#: A client frame (a ping is about 20 bytes) is parsed only within these bounds.
CLIENT_FRAME_BYTES = 1024
CLIENT_FRAME_DEPTH = 4
#: channels_redis forgets a group membership after ``group_expiry`` (default 1 day): the hub
#: renews its memberships well before that.
GROUP_RENEW_S = 3600.0


def dumps(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def frame(text: str) -> dict:
    """The ASGI message that sends ``text``. The hub builds one per market message and every
    client's outbox shares it (servers only read what they are sent)."""
    return {"type": "websocket.send", "text": text}


#: Scope key under which ``tradesite.asgi`` passes the server's own ``send`` (see there).
RAW_SEND = "tradesite.websocket_send"


# -- per-client delivery ----------------------------------------------------------------------


class Outbox:
    """What one client still has to receive; the loop's :class:`Writer` sends it.

    Items are whatever ``send`` takes (the consumers queue ASGI ``websocket.send`` messages).
    ``put`` queues a message that must arrive (in order); ``put_latest(key, t, item)`` keeps
    only the newest coalescable message per key (a forming bar, a ticker); ``put_closed(key, t,
    item)`` queues a closed bar and drops a pending forming bar of that key opening at or before
    ``t`` (and later forming updates of a closed bar are dropped). Counters: ``sent``,
    ``superseded``.
    """

    def __init__(self, send: Callable[[Any], Awaitable[None]], writer: Writer | None = None,
                 held: bool = False):
        self._send = send
        self._writer = writer or Writer.for_loop()
        self._ordered: collections.deque = collections.deque()
        self._latest: dict[str, tuple[int, Any]] = {}
        self._closed: dict[str, int] = {}  # key -> newest closed open time
        #: A held outbox queues but does not send until :meth:`release` (see the consumers'
        #: ``start``: nothing goes out before the client's subscriptions are all in place).
        self.scheduled = held
        self.closed = False
        #: The task finishing a send that had to wait for the network (see :class:`Writer`).
        self.blocked: asyncio.Task | None = None
        self.sent = 0
        self.superseded = 0

    def _ready(self) -> None:
        if not self.scheduled and not self.closed:
            self.scheduled = True
            self._writer.schedule(self)

    def put(self, item) -> None:
        self._ordered.append(item)
        self._ready()

    def put_latest(self, key: str, t: int, item) -> None:
        if t <= self._closed.get(key, -1):  # that bar is closed: its final state went out
            self.superseded += 1
            return
        pending = self._latest.get(key)
        if pending is not None:
            self.superseded += 1
            if pending[0] > t:  # an older bar arriving late never hides a newer one
                return
        self._latest[key] = (t, item)
        self._ready()

    def put_closed(self, key: str, t: int, item) -> None:
        self._closed[key] = max(t, self._closed.get(key, t))
        pending = self._latest.get(key)
        if pending is not None and pending[0] <= t:
            del self._latest[key]
            self.superseded += 1
        self.put(item)

    def release(self) -> None:
        """Start sending what a held outbox queued."""
        self.scheduled = False
        if self.pending():
            self._ready()

    def take(self):
        """The next message to send: ordered ones first, then the latest states."""
        if self._ordered:
            return self._ordered.popleft()
        if self._latest:
            key = next(iter(self._latest))
            return self._latest.pop(key)[1]
        return None

    def pending(self) -> bool:
        return bool(self._ordered or self._latest)

    def close(self) -> None:
        self.closed = True
        self._ordered.clear()
        self._latest.clear()
        if self.blocked is not None:  # a send waiting on a client that is gone
            self.blocked.cancel()


class Writer:
    """Sends what the outboxes of one event loop hold: one message per outbox per round (fair),
    yielding to the loop every ``BATCH`` sends.

    The yields keep the hub reading the channel layer while clients are written, so under
    overload the backlog stays in the outboxes, where forming bars coalesce, and not in Redis,
    where a channel over capacity drops messages (closed bars included).

    A send normally finishes without suspending (the server frames the message and hands it to
    the transport at once), and the writer runs it inline (:func:`start_eagerly`): no task per
    frame. A send that suspends waits on the network: uvicorn's waits while the client's
    socket buffer is over its high-water mark. That send finishes in a task of its own and its
    outbox is left out of the rounds until it has (its forming bars coalesce meanwhile); the
    other clients are not held up by one slow reader.
    """

    BATCH = 32
    _by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self._ready: collections.deque[Outbox] = collections.deque()
        self._task: asyncio.Task | None = None

    @classmethod
    def for_loop(cls) -> Writer:
        loop = asyncio.get_running_loop()
        found = cls._by_loop.get(loop)
        if found is None:
            found = cls._by_loop[loop] = cls()
        return found

    def schedule(self, outbox: Outbox) -> None:
        self._ready.append(outbox)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        sent = 0
        try:
            while self._ready:
                outbox = self._ready.popleft()
                item = None if outbox.closed else outbox.take()
                if item is None:
                    outbox.scheduled = False
                    continue
                sent += 1
                try:
                    blocked = start_eagerly(outbox._send(item))
                except Exception:  # the socket went away; its consumer's disconnect cleans up
                    log.debug("chart: send failed; dropping the client's queue", exc_info=True)
                    outbox.close()
                    blocked = None
                if blocked is not None:  # stays scheduled: puts do not queue it again
                    outbox.blocked = blocked
                    blocked.add_done_callback(functools.partial(self._unblocked, outbox))
                else:
                    if not outbox.closed:
                        outbox.sent += 1
                    if outbox.pending() and not outbox.closed:
                        self._ready.append(outbox)
                    else:
                        outbox.scheduled = False
                if sent % self.BATCH == 0:
                    await asyncio.sleep(0)
        finally:
            self._task = None  # idle: the next schedule() starts a new task

    def _unblocked(self, outbox: Outbox, task: asyncio.Task) -> None:
        """A send that had to wait finished: count it and put the outbox back in the rounds."""
        outbox.blocked = None
        if task.cancelled() or task.exception() is not None:
            log.debug("chart: send failed; dropping the client's queue",
                      exc_info=None if task.cancelled() else task.exception())
            outbox.close()
        elif not outbox.closed:
            outbox.sent += 1
        if outbox.pending() and not outbox.closed:
            self.schedule(outbox)
        else:
            outbox.scheduled = False


def start_eagerly(coro: Coroutine) -> asyncio.Task | None:
    """Run ``coro`` at once up to its first suspension, as Python 3.12's eager tasks do.

    Returns None when it finished without suspending (its exception, if any, is raised here),
    else a task that runs the rest of it. The task is handed exactly what ``coro`` yielded
    (the future it waits on), so it waits for the same thing ``await coro`` would have.
    """
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_resume(coro, waiting_on))


@types.coroutine
def _resume(coro: Coroutine, waiting_on):
    """The rest of a coroutine that :func:`start_eagerly` began: ``yield from`` for one whose
    first step has already run (results, exceptions and cancellation are passed through)."""
    while True:
        try:
            yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # a cancellation or an error thrown in by the task
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(None)
            except StopIteration as stop:
                return stop.value


# -- reading the channel layer ---------------------------------------------------------------------


class LayerReader:
    """The hub's channel on the channel layer, read a batch at a time.

    ``channels_redis``' ``receive()`` costs four sequential Redis round trips per message (a
    clean-up script, BZPOPMIN, a backup ZADD, then a ZPOPMIN that the next receive waits for),
    each behind a lock shared with every consumer of the process: with a thousand clients
    writing, the hub read well under 200 messages a second and the backlog grew in Redis
    (bench_charts load b: seconds of latency, none of it in the fan-out). So on the core Redis
    layer the hub's channel is a plain channel (no ``!``: its own sorted set, which
    ``group_send`` fills like any member's) and :class:`RedisLayerReader` pops everything
    waiting in one ZPOPMIN, blocking in BZPOPMIN only when the set is empty: one round trip per
    batch. Order is the layer's own (lowest score = oldest send first). The backup queue that
    ``receive()`` keeps against a crash between pop and handling buys nothing here: what the
    hub pops goes to clients of this same process. Other layers (in-memory, pub/sub) are read
    with their own ``receive()``.
    """

    def __init__(self, layer, channel: str) -> None:
        self.layer = layer
        self.channel = channel

    @staticmethod
    async def open(layer) -> LayerReader:
        from channels_redis.core import RedisChannelLayer

        if isinstance(layer, RedisChannelLayer):
            return RedisLayerReader(layer, f"chart-hub.{uuid.uuid4().hex}")
        return LayerReader(layer, await layer.new_channel())

    async def receive_many(self) -> list[dict]:
        return [await self.layer.receive(self.channel)]


class RedisLayerReader(LayerReader):
    #: BZPOPMIN's timeout: the wait is renewed, so it only bounds how long a dead connection
    #: goes unnoticed by redis-py.
    BLOCK_S = 5
    #: Messages popped per round trip at most (each is a few hundred bytes).
    BATCH = 500

    def __init__(self, layer, channel: str) -> None:
        super().__init__(layer, channel)
        self.key = layer.prefix + channel
        self.index = layer.consistent_hash(channel)

    async def receive_many(self) -> list[dict]:
        connection = self.layer.connection(self.index)
        popped = await connection.zpopmin(self.key, self.BATCH)
        if not popped:
            found = await connection.bzpopmin(self.key, timeout=self.BLOCK_S)
            if found is None:
                return []
            popped = [(found[1], found[2])]
        messages = []
        for content, _score in popped:  # popped already: one bad entry must not lose the rest
            try:
                message = self.layer.deserialize(content)
                if not isinstance(message, dict):
                    raise TypeError(f"a layer message is a dict, not {type(message).__name__}")
            except Exception:
                log.warning("chart hub: skipped an undecodable layer message", exc_info=True)
                continue
            message.pop("__asgi_channel__", None)
            messages.append(message)
        return messages


# -- per-process fan-out -------------------------------------------------------------------------


class Hub:
    """One channel-layer subscription per market group for all clients of this event loop.

    Recovery (a Redis restart forgets every group membership): the hub notices a lost
    connection from its reader's error, a consumer's (:meth:`lost`) or its watch, which checks
    every :attr:`CHECK_S` that Redis still lists each membership it relies on (its market groups
    and its clients' own ``user.<id>`` / ``session.<hash>`` groups). Then it rejoins them all,
    retrying with a backoff while Redis is down, drops clients whose outbox is closed, and sends
    every client a ``{"type": "resync"}`` frame: what was published while it was not subscribed
    is lost, and the chart page refetches it from the database. ``state`` (``idle``,
    ``subscribed``, ``recovering``) is what ``/health`` reports (:func:`hub_report`).
    """

    #: Seconds between membership checks (also the longest a recovery waits between tries).
    CHECK_S = 5.0

    def __init__(self, layer) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.reader: LayerReader | None = None
        self.members: dict[str, set[Outbox]] = {}
        #: Each client's own channel and the groups it joined there (see ``_HubConsumer``).
        self.own: dict[Outbox, tuple[str, tuple[str, ...]]] = {}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self.received = 0
        self.state = "idle"
        self.lost_since: float | None = None  # monotonic seconds
        self.checked_at: float | None = None  # monotonic seconds of the last good check
        self.last_error = ""
        self.recoveries = 0

    async def subscribe(self, group: str, outbox: Outbox) -> None:
        async with self._lock:
            if self.channel is None:
                self.reader = await LayerReader.open(self.layer)
                self.channel = self.reader.channel
                loop = asyncio.get_running_loop()
                self.state, self.checked_at = "subscribed", time.monotonic()
                self._tasks = [loop.create_task(self._read()), loop.create_task(self._watch())]
            members = self.members.setdefault(group, set())
            if not members:
                await self.layer.group_add(group, self.channel)
            members.add(outbox)

    def joined_own(self, outbox: Outbox, channel: str, groups: tuple[str, ...]) -> None:
        """A client joined ``groups`` on its own ``channel``: rejoined with the hub's."""
        if groups and not outbox.closed:
            self.own[outbox] = (channel, groups)

    async def unsubscribe(self, group: str, outbox: Outbox) -> None:
        """Forget ``outbox`` at once (no await before it: a cancelled disconnect cannot leave it
        behind), then leave ``group`` if it has no client left."""
        self.own.pop(outbox, None)
        members = self.members.get(group)
        if members is None:
            return
        members.discard(outbox)
        if members:
            return
        del self.members[group]
        async with self._lock:
            if group not in self.members and self.channel is not None:
                await _leave(self.layer, group, self.channel)
            if not self.members:  # the last client left: stop reading until the next one
                self._stop()

    def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self.channel = self.reader = None
        self.own.clear()
        self.state, self.lost_since, self.last_error = "idle", None, ""

    def lost(self, reason: str) -> None:
        """The connection to the layer failed (or a membership is gone): rejoin everything."""
        if self.state == "subscribed":  # the first report wakes the watch; it then retries
            log.warning("chart hub: lost the channel layer (%s); rejoining its groups", reason)
            self.state, self.lost_since = "recovering", time.monotonic()
            self._wake.set()
        if self.state == "recovering":
            self.last_error = reason

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            try:
                messages = await self.reader.receive_many()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("chart hub: channel layer receive failed; retrying", exc_info=True)
                self.lost(f"receive: {type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.CHECK_S)
                continue
            for message in messages:
                self.received += 1
                try:
                    self.dispatch(message)
                except Exception:  # one malformed message must not stop every chart
                    log.warning("chart hub: skipped malformed message %r", message, exc_info=True)

    async def _watch(self) -> None:
        """Check the memberships every :attr:`CHECK_S`, renew them every :data:`GROUP_RENEW_S`,
        and recover (rejoin, prune, resync) as soon as something is lost, retrying with a
        backoff until Redis answers."""
        backoff = 0.1
        renewed = time.monotonic()
        while True:
            wait = self.CHECK_S if self.state == "subscribed" else backoff
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()
            try:
                self._prune()
                if self.state != "subscribed":
                    await self._rejoin()
                    self._recovered()
                    backoff, renewed = 0.1, time.monotonic()
                elif time.monotonic() - renewed >= GROUP_RENEW_S:
                    await self._rejoin()
                    renewed = time.monotonic()
                else:
                    missing = await self._missing()
                    if missing:
                        self.lost(f"Redis no longer lists {missing[0]} (restarted?)")
                        continue
                self.checked_at = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.lost(f"{type(exc).__name__}: {exc}")
                backoff = min(backoff * 2, self.CHECK_S)

    def _memberships(self) -> list[tuple[str, str]]:
        """(group, channel) of every membership this hub and its clients rely on."""
        pairs = [(group, self.channel) for group in self.members]
        for channel, groups in list(self.own.values()):
            pairs.extend((group, channel) for group in groups)
        return pairs

    async def _rejoin(self) -> None:
        async with self._lock:
            for group, channel in self._memberships():
                await self.layer.group_add(group, channel)

    async def _missing(self) -> list[str]:
        """Memberships Redis no longer lists (core Redis layer only; others cannot lose them)."""
        from channels_redis.core import RedisChannelLayer

        if not isinstance(self.layer, RedisChannelLayer):
            return []
        by_index: dict[int, list[tuple[str, str]]] = {}
        for group, channel in self._memberships():
            by_index.setdefault(self.layer.consistent_hash(group), []).append((group, channel))
        missing = []
        for index, pairs in by_index.items():
            pipe = self.layer.connection(index).pipeline(transaction=False)
            for group, channel in pairs:
                pipe.zscore(self.layer._group_key(group), channel)
            scores = await pipe.execute()
            missing.extend(f"{g} for {c}" for (g, c), score in zip(pairs, scores) if score is None)
        return missing

    def _prune(self) -> None:
        """Drop clients whose outbox closed (their socket is gone) from every group."""
        for group, members in list(self.members.items()):
            gone = {outbox for outbox in members if outbox.closed}
            if gone:
                members.difference_update(gone)
                for outbox in gone:
                    self.own.pop(outbox, None)
                if not members:  # its membership expires (``group_expiry``)
                    del self.members[group]

    def _recovered(self) -> None:
        down = time.monotonic() - (self.lost_since or time.monotonic())
        self.state, self.lost_since, self.last_error = "subscribed", None, ""
        self.recoveries += 1
        item = frame(dumps({"type": "resync", "ts": now_ms()}))
        clients = {outbox for members in self.members.values() for outbox in members}
        for outbox in clients:
            outbox.put(item)
        log.warning("chart hub: rejoined %d group(s) after %.1f s; %d client(s) told to resync",
                    len(self.members), down, len(clients))

    def report(self, now: float | None = None) -> dict:
        now = time.monotonic() if now is None else now
        return {
            "state": self.state,
            "groups": len(self.members),
            "clients": len({o for members in self.members.values() for o in members}),
            "recoveries": self.recoveries,
            "recovering_seconds": None if self.lost_since is None
            else round(now - self.lost_since, 1),
            "last_check_seconds_ago": None if self.checked_at is None
            else round(now - self.checked_at, 1),
            **({"error": self.last_error} if self.last_error else {}),
        }

    def dispatch(self, message: dict) -> None:
        kind = message.get("type")
        if kind == wire.BAR_UPDATE:
            group = wire.bars_group(message["venue"], message["symbol"], message["timeframe"])
            members = self.members.get(group)
            if not members:
                return
            bar = message["bar"]
            t = int(bar["t"])
            closed = bool(message.get("closed"))
            item = frame(dumps({
                "type": "bar", "t": t, "o": float(bar["o"]), "h": float(bar["h"]),
                "l": float(bar["l"]), "c": float(bar["c"]), "v": float(bar["v"]),
                "closed": closed,
            }))
            for outbox in members:
                if closed:
                    outbox.put_closed(group, t, item)
                else:
                    outbox.put_latest(group, t, item)
        elif kind == wire.TICKER_UPDATE:
            members = self.members.get(wire.MARKETS_GROUP)
            if not members:
                return
            key = f"{message['venue']}:{message['symbol']}"
            item = frame(dumps({
                "type": "ticker", "venue": message["venue"], "symbol": message["symbol"],
                "price": float(message["price"]), "ts": int(message["ts"]),
            }))
            for outbox in members:
                outbox.put_latest(key, int(message["ts"]), item)
        else:
            log.debug("chart hub: ignored message type %r", kind)


async def _leave(layer, group: str, channel: str) -> None:
    """``group_discard`` that cannot stop a disconnect half-way: when Redis refuses (a thousand
    clients leaving at once ran channels_redis' pool out of connections) the membership is
    left to expire (``group_expiry``) and the client's outbox and hub membership are still
    released."""
    try:
        await layer.group_discard(group, channel)
    except Exception as exc:  # any layer error: the membership expires
        log.warning("chart: could not leave %s (%s: %s); it expires on its own", group,
                    type(exc).__name__, exc)


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hub_report() -> list[dict]:
    """The state of every hub of this process (``/health``)."""
    return [found.report() for loop, found in list(_hubs.items()) if not loop.is_closed()]


def hub() -> Hub:
    """This event loop's hub (tests run one loop per test; uvicorn one per process)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(get_channel_layer())
    return found


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
        backoff = 0.1
        while True:
            try:
                return await self._layer_receive()
            except (redis.exceptions.RedisError, OSError) as exc:  # the hub logs the loss once
                log.debug("chart: own channel receive failed (%s: %s); retrying",
                          type(exc).__name__, exc)
                hub().lost(f"consumer receive: {type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, Hub.CHECK_S)

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


class MarketsConsumer(_HubConsumer):
    """``/ws/markets/``: the latest ticker per symbol (group ``markets``)."""

    async def connect(self) -> None:
        if not self.authenticated():
            await self.refuse(CLOSE_UNAUTHENTICATED, "log in to see live prices")
            return
        await self.start(wire.MARKETS_GROUP)
