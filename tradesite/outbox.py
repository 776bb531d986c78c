"""Per-client delivery of the chart WebSockets: :class:`Outbox` (what one client still has to
receive, closed bars in order, forming bars coalesced) and :class:`Writer` (one task per event
loop that sends every outbox's frames). See ``tradesite.consumers`` for the whole picture."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger("tradesite.consumers")


def frame(text: str) -> dict:
    """The ASGI message that sends ``text``. The hub builds one per market message and every
    client's outbox shares it (servers only read what they are sent)."""
    return {"type": "websocket.send", "text": text}


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
