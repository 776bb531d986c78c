"""WebSocket plumbing shared by the venues: one outbound queue and writer task per connection.

Publishers call :meth:`Connection.send` synchronously from the simulator's tick; the writer task
drains the queue, so a slow client never blocks the market. A client that falls more than
``max_queue`` frames behind is disconnected (code 1008), as a real venue would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from aiohttp import WSMsgType, web

from simulator.faults import SocketRegistry


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Connection:
    """An accepted WebSocket with a send queue. ``binary`` frames (Upbit) or text (Binance)."""

    def __init__(self, ws: web.WebSocketResponse, *, binary: bool, max_queue: int = 20_000) -> None:
        self.ws, self.binary, self.max_queue = ws, binary, max_queue
        self.queue: asyncio.Queue = asyncio.Queue()
        self.state: dict = {}  # per-venue subscription state
        self.writer: asyncio.Task | None = None
        self.closer: asyncio.Future | None = None

    def send(self, obj, *, text: bool = False) -> None:
        """Queue one frame (a dict/list, JSON-encoded; ``text`` forces a text frame)."""
        if self.ws.closed:
            return
        if self.queue.qsize() >= self.max_queue:
            self.closer = asyncio.ensure_future(
                self.ws.close(code=1008, message=b"client too slow")
            )
            return
        self.queue.put_nowait((dumps(obj), text))

    async def _write(self, periodic: Callable[[], None] | None, every_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + every_s if every_s else None
        while not self.ws.closed:
            timeout = None if next_tick is None else max(0.0, next_tick - loop.time())
            try:
                async with asyncio.timeout(timeout):  # not wait_for: CPython gh-86296
                    payload, text = await self.queue.get()
            except TimeoutError:
                if periodic is not None:
                    periodic()
                next_tick = loop.time() + every_s
                continue
            try:
                if self.binary and not text:
                    await self.ws.send_bytes(payload.encode())
                else:
                    await self.ws.send_str(payload)
            except (ConnectionError, RuntimeError):
                return

    def start(
        self, periodic: Callable[[], None] | None = None, every_s: float | None = None
    ) -> None:
        self.writer = asyncio.ensure_future(self._write(periodic, every_s))

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.writer


async def serve(
    request: web.Request,
    registry: SocketRegistry,
    conns: set,
    *,
    binary: bool,
    on_text: Callable[[Connection, str], None],
    heartbeat: float | None = None,
    autoping: bool = True,
    periodic: Callable[[Connection], None] | None = None,
    every_s: float | None = None,
    idle_timeout_s: float | None = None,
    on_open: Callable[[Connection], None] | None = None,
) -> web.WebSocketResponse:
    """Accept a WebSocket, run its writer, feed incoming text/binary messages to ``on_text``."""
    ws = web.WebSocketResponse(heartbeat=heartbeat, autoping=autoping)
    await ws.prepare(request)
    conn = Connection(ws, binary=binary)
    conn.start((lambda: periodic(conn)) if periodic else None, every_s)
    registry.add(ws)
    conns.add(conn)
    if on_open is not None:
        on_open(conn)
    try:
        while True:
            try:
                msg = await ws.receive(timeout=idle_timeout_s)
            except TimeoutError:
                await ws.close(code=1000, message=b"idle timeout")
                break
            if msg.type == WSMsgType.TEXT:
                on_text(conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                on_text(conn, msg.data.decode("utf-8", "replace"))
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type in (
                WSMsgType.CLOSE,
                WSMsgType.CLOSING,
                WSMsgType.CLOSED,
                WSMsgType.ERROR,
            ):
                break
    finally:
        conns.discard(conn)
        registry.discard(ws)
        await conn.stop()
        if not ws.closed:
            await ws.close()
    return ws
