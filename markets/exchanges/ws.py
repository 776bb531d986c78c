"""One WebSocket loop for every venue: connect, subscribe, keep alive, decode text or binary
frames, parse, skip bad messages (logged and counted), reconnect on close and before a venue's
connection lifetime runs out.

Frames (text or binary) are decoded here with ``decode_frame`` (orjson when installed, else the
standard json module); a parser takes the decoded object and returns a list of items to yield
(empty for control frames such as Upbit's ``{"status":"UP"}``); any exception in decoding or
parsing marks the message malformed.
A parser may raise ``StreamRestart`` to ask for a planned reconnect (Binance ``serverShutdown``).

``run_stream_batches`` yields the items as lists: every message the connection has already
received (up to ``MAX_BATCH``) is read and parsed in one go, so a busy stream pays the async
generators' hand-over per batch, not per message (issue 20: three generators deep, it was about
a third of a busy stream's profile; the CPU per trade fell ~10 %, docs/performance.md).
``run_stream`` yields the same items one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ..backoff import Backoff
from .errors import AuthenticationError, ExchangeError, StreamRestart

try:  # optional accelerator: about twice as fast as json.loads on trade frames
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - the standard library is the fallback
    from json import loads as _loads

log = logging.getLogger(__name__)

#: Messages already received that one batch takes at most (the event loop gets a turn between
#: batches; a batch of 1,000 trade frames is about 10 ms of work).
MAX_BATCH = 1000


def decode_frame(raw: str | bytes) -> Any:
    """A WebSocket frame's JSON (text or UTF-8 binary frame) as Python objects."""
    return _loads(raw)


@dataclasses.dataclass
class StreamStats:
    """Counters a caller (or a heartbeat) can read while the stream runs."""

    messages: int = 0
    items: int = 0
    malformed: int = 0
    connects: int = 0
    planned_reconnects: int = 0
    last_message_ms: int = 0
    last_error: str = ""


@dataclasses.dataclass
class StreamSpec:
    """How to open one venue connection.

    ``url``/``headers``/``subscribe`` may be callables so each reconnect gets fresh values
    (a new JWT, a new listenKey). ``text_ping``: text to send every ``text_ping_s`` seconds
    (Upbit ``PING``). ``max_lifetime_s``: reconnect before the venue's limit (Binance 24 h);
    ``overlap_s``: keep reading the old connection that long after the new one is subscribed.
    """

    venue: str
    url: str | Callable[[], Awaitable[str]]
    parse: Callable[[Any], list[Any]]
    subscribe: list[str] | Callable[[Any], Awaitable[None]] = dataclasses.field(
        default_factory=list)
    headers: dict[str, str] | Callable[[], dict[str, str]] | None = None
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    text_ping: str | None = None
    text_ping_s: float = 60.0
    max_lifetime_s: float | None = None
    overlap_s: float = 0.0
    idle_timeout_s: float | None = None
    reconnect_min_s: float = 0.5  # reconnects back off from here (jittered, doubling) ...
    reconnect_max_s: float = 30.0  # ... to here, and start over once a connection stayed up
    reconnect_healthy_s: float = 5.0  # this long (see ``markets.backoff``)
    max_size: int = 2 ** 22
    on_connect: Callable[[], list[Any]] | None = None  # items yielded after each subscribe
    limiter: Any = None  # a RateLimiter; connects count against ``connect_group``
    connect_group: str = "ws-connect"


async def _resolve(value):
    if callable(value):
        value = value()
    if asyncio.iscoroutine(value):
        value = await value
    return value


async def _open(spec: StreamSpec, stats: StreamStats):
    if spec.limiter is not None and spec.connect_group in spec.limiter.groups:
        while (wait := await asyncio.to_thread(spec.limiter.try_acquire,
                                               spec.connect_group)) > 0:
            await asyncio.sleep(wait)
    url = await _resolve(spec.url)
    headers = await _resolve(spec.headers) if spec.headers is not None else None
    conn = await connect(url, additional_headers=headers, proxy=None,
                         ping_interval=spec.ping_interval_s, ping_timeout=spec.ping_timeout_s,
                         open_timeout=10, close_timeout=2, max_size=spec.max_size)
    try:
        if callable(spec.subscribe):
            await spec.subscribe(conn)
        else:
            for message in spec.subscribe:
                await conn.send(message)
    except BaseException:
        await conn.close()
        raise
    stats.connects += 1
    return conn


async def run_stream(spec: StreamSpec, stats: StreamStats | None = None) -> AsyncIterator[Any]:
    """Yield parsed items forever, reconnecting as needed; stop by closing the generator.

    At ``max_lifetime_s`` the next connection is opened *before* the old one is closed and the
    old one is read for ``overlap_s`` more seconds, so nothing is missed across a planned
    reconnect (callers drop the repeats, e.g. by trade id).
    """
    async with contextlib.aclosing(run_stream_batches(spec, stats)) as batches:
        async for batch in batches:
            for item in batch:
                yield item


async def run_stream_batches(spec: StreamSpec, stats: StreamStats | None = None
                             ) -> AsyncIterator[list[Any]]:
    """:func:`run_stream`'s items as non-empty lists, in the same order: the items of the
    messages already received when the stream is read (see ``MAX_BATCH``)."""
    stats = stats if stats is not None else StreamStats()
    backoff = Backoff(spec.reconnect_min_s, spec.reconnect_max_s,
                      healthy_s=spec.reconnect_healthy_s)
    conn = retiring = None
    try:
        while True:
            try:
                if conn is None:
                    conn = await _open(spec, stats)
                    backoff.healthy()
                    if spec.on_connect and (items := list(spec.on_connect())):
                        yield items
                state: dict[str, bool] = {}
                async for batch in _read_batches(conn, spec, stats, state):
                    yield batch
                stats.planned_reconnects += 1
                log.info("%s: planned reconnect", spec.venue)
                if state.get("expired") and spec.overlap_s > 0:
                    retiring, conn = conn, None
                    conn = await _open(spec, stats)
                    if spec.on_connect and (items := list(spec.on_connect())):
                        yield items
                    old, retiring = retiring, None
                    async for item in _drain(old, spec, stats):
                        yield [item]
                else:
                    await conn.close()
                    conn = None
                continue
            except (AuthenticationError, GeneratorExit, asyncio.CancelledError):
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                stats.last_error = f"handshake HTTP {status}"
                if status in (401, 403):
                    raise AuthenticationError(
                        f"{spec.venue}: WebSocket refused with HTTP {status}",
                        venue=spec.venue, status=status) from exc
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError,
                    ExchangeError) as exc:
                stats.last_error = f"{type(exc).__name__}: {exc}"
            delay = backoff.failed()
            log.warning("%s: stream dropped (%s); reconnecting in %.1fs", spec.venue,
                        stats.last_error, delay)
            for dropped in (conn, retiring):
                if dropped is not None:
                    await dropped.close()
            conn = retiring = None
            await asyncio.sleep(delay)
    finally:
        for leftover in (conn, retiring):
            if leftover is not None:
                await leftover.close()


def _parse(raw: Any, spec: StreamSpec, stats: StreamStats) -> list[Any]:
    """Decode and parse one frame; a bad one is logged, counted and yields nothing."""
    stats.messages += 1
    stats.last_message_ms = int(time.time() * 1000)
    try:
        return spec.parse(_loads(raw))
    except (StreamRestart, AuthenticationError):
        raise
    except Exception as exc:
        stats.malformed += 1
        preview = raw[:200] if isinstance(raw, str | bytes) else repr(raw)[:200]
        log.warning("%s: skipped malformed message (%s: %s): %r", spec.venue,
                    type(exc).__name__, exc, preview)
        return []


async def _drain(old, spec: StreamSpec, stats: StreamStats) -> AsyncIterator[Any]:
    """Read the retiring connection for ``overlap_s`` seconds, then close it."""
    deadline = time.monotonic() + spec.overlap_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    raw = await old.recv()
            except (TimeoutError, ConnectionClosed):
                break
            try:
                items = _parse(raw, spec, stats)
            except StreamRestart:
                break
            for item in items:
                stats.items += 1
                yield item
    finally:
        await old.close()


def _buffered(conn) -> bool:
    """Whether ``conn`` (a websockets asyncio connection) holds a whole received message, so
    ``recv()`` returns at once. False when the internals are not as expected (other versions,
    test doubles): the caller then waits with a timeout, as always."""
    queue = getattr(getattr(getattr(conn, "recv_messages", None), "frames", None), "queue", None)
    try:
        return bool(queue) and bool(queue[0].fin)
    except (AttributeError, IndexError, TypeError):
        return False


async def _read(conn, spec: StreamSpec, stats: StreamStats,
                state: dict[str, bool]) -> AsyncIterator[Any]:
    """Yield items until the lifetime runs out (``state["expired"]``, connection left open)
    or a parser asks for a restart (connection closed)."""
    async with contextlib.aclosing(_read_batches(conn, spec, stats, state)) as batches:
        async for batch in batches:
            for item in batch:
                yield item


async def _read_batches(conn, spec: StreamSpec, stats: StreamStats,
                        state: dict[str, bool]) -> AsyncIterator[list[Any]]:
    """:func:`_read`'s items as non-empty lists: after each wait, every message already
    received (up to ``MAX_BATCH``) is parsed into one list."""
    opened = time.monotonic()
    next_text_ping = opened + spec.text_ping_s
    while True:
        timeout = spec.idle_timeout_s
        if spec.max_lifetime_s is not None:
            left = spec.max_lifetime_s - (time.monotonic() - opened)
            if left <= 0:
                state["expired"] = True
                return
            timeout = left if timeout is None else min(timeout, left)
        if spec.text_ping is not None:
            left = max(0.0, next_text_ping - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        try:
            if _buffered(conn) and (timeout is None or timeout > 0):
                # A whole message is waiting: recv() returns it without suspending, so no
                # timeout can fire; arming one costs ~6.5 us per message, a fifth of the
                # stream's marginal CPU per trade (docs/performance.md, issue 20).
                raw = await conn.recv()
            else:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that arrives as the message does (CPython gh-86296), and a
                # cancelled stream then reads on forever instead of stopping.
                async with asyncio.timeout(timeout):
                    raw = await conn.recv()
        except TimeoutError:
            now = time.monotonic()
            if spec.text_ping is not None and now >= next_text_ping:
                await conn.send(spec.text_ping)
                next_text_ping = now + spec.text_ping_s
                continue
            if spec.max_lifetime_s is not None and now - opened >= spec.max_lifetime_s:
                continue  # handled at the top of the loop
            raise TimeoutError(f"{spec.venue}: no message for {spec.idle_timeout_s}s") from None
        raws = [raw]
        try:
            while len(raws) < MAX_BATCH and _buffered(conn):
                raws.append(await conn.recv())  # returns at once: no timer needed
        except Exception:  # the next wait meets (and raises) it again, after this batch
            pass
        items: list[Any] = []
        restart = None
        try:
            for raw in raws:
                items += _parse(raw, spec, stats)
        except StreamRestart as exc:
            restart = exc
            items += exc.items
        except AuthenticationError:
            if items:  # the messages before it are delivered first, as one by one
                stats.items += len(items)
                yield items
            raise
        if items:
            stats.items += len(items)
            yield items
        if restart is not None:
            log.info("%s: reconnecting on request (%s)", spec.venue, restart)
            await conn.close()
            return
