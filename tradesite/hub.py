"""The per-process fan-out of the chart WebSockets: :class:`Hub` (one channel-layer channel per
event loop joined to the market groups its clients want, read a batch at a time by
:class:`RedisLayerReader`), and its recovery after a Redis restart. See ``tradesite.consumers``
for the whole picture."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import weakref

from channels.layers import get_channel_layer

from markets import wire
from markets.backoff import Backoff
from tradesite.outbox import Outbox, frame

log = logging.getLogger("tradesite.consumers")

#: channels_redis forgets a group membership after ``group_expiry`` (default 1 day): the hub
#: renews its memberships well before that.
GROUP_RENEW_S = 3600.0


def dumps(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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
        backoff = Backoff(0.1, self.CHECK_S)
        while True:
            try:
                messages = await self.reader.receive_many()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the first failure of an outage is logged in full
                (log.warning if self.state == "subscribed" else log.debug)(
                    "chart hub: channel layer receive failed; retrying", exc_info=True)
                self.lost(f"receive: {type(exc).__name__}: {exc}")
                await backoff.sleep()
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
        backoff = Backoff(0.1, self.CHECK_S)
        retry_in = backoff.min_s
        renewed = time.monotonic()
        while True:
            wait = self.CHECK_S if self.state == "subscribed" else retry_in
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()
            try:
                self._prune()
                if self.state != "subscribed":
                    await self._rejoin()
                    self._recovered()
                    backoff.reset()
                    renewed = time.monotonic()
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
                retry_in = backoff.failed()

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
        clients = set().union(*self.members.values())
        for outbox in clients:
            outbox.put(item)
        log.warning("chart hub: rejoined %d group(s) after %.1f s; %d client(s) told to resync",
                    len(self.members), down, len(clients))

    def report(self, now: float | None = None) -> dict:
        now = time.monotonic() if now is None else now
        return {
            "state": self.state,
            "groups": len(self.members),
            # set.union in C: safe against the event loop's thread changing the groups meanwhile
            "clients": len(set().union(*list(self.members.values()))),
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
            self._tickers(message["venue"], [(message["symbol"], message["price"],
                                              message["ts"])])
        elif kind == wire.TICKERS_UPDATE:
            self._tickers(message["venue"], message["tickers"])
        else:
            log.debug("chart hub: ignored message type %r", kind)


    def _tickers(self, venue: str, tickers) -> None:
        members = self.members.get(wire.MARKETS_GROUP)
        if not members:
            return
        for symbol, price, ts in tickers:
            key = f"{venue}:{symbol}"
            item = frame(dumps({"type": "ticker", "venue": venue, "symbol": symbol,
                                "price": float(price), "ts": int(ts)}))
            for outbox in members:
                outbox.put_latest(key, int(ts), item)


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
