"""Fault knobs and rate limits shared by the simulated venues.

:class:`Faults` is a mutable settings object: change its fields at run time (from the loop's
thread, or through ``Simulator.set_faults`` from any thread) and the next request sees them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable

from aiohttp import web


@dataclasses.dataclass
class Faults:
    """Test knobs. Times in seconds unless the name says ms; ratios are fractions (0..1)."""

    latency_ms: float = 0.0  # added before every REST response
    error_ratio: float = 0.0  # share of REST requests answered with a 5xx, before any effect
    rate_limits: bool = True  # enforce the venue's request budgets (429 when exceeded)
    rate_limit_budget: int | None = None  # override every budget (requests or weight per window)
    ws_drop_every_s: float | None = None  # close every WebSocket this long after it opened
    order_delay_s: float = 0.0  # order placement executes, then the response waits this long

    def update(self, **changes) -> None:
        for name, value in changes.items():
            if not hasattr(self, name):
                raise ValueError(
                    f"unknown fault knob {name!r}; use one of "
                    f"{', '.join(f.name for f in dataclasses.fields(self))}"
                )
            setattr(self, name, value)


class Budget:
    """Fixed-window counters: ``spend(group, cost)`` returns (allowed, used, limit, reset_s)."""

    def __init__(self, limits: dict[str, tuple[int, float]], clock=time.monotonic) -> None:
        self.limits = limits  # group -> (limit per window, window seconds)
        self.clock = clock
        self.windows: dict[str, tuple[float, int]] = {}

    def spend(self, group: str, cost: int, override: int | None = None, who: str = ""):
        limit, width = self.limits[group]
        if override is not None:
            limit = override
        now = self.clock()
        start = now - now % width
        slot = f"{group}:{who}"
        w_start, used = self.windows.get(slot, (start, 0))
        if w_start != start:
            used = 0
        reset = start + width - now
        if used + cost > limit:
            self.windows[slot] = (start, used)
            return False, used, limit, reset
        used += cost
        self.windows[slot] = (start, used)
        return True, used, limit, reset


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fault_middleware(
    faults: Faults, rng: random.Random, server_error: Callable[[], web.Response]
) -> Callable:
    """Latency and injected 5xx for every HTTP request except WebSocket upgrades."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.error_ratio and rng.random() < faults.error_ratio:
            return server_error()
        return await handler(request)

    return middleware


async def delay_order_response(faults: Faults) -> None:
    """Called after an order was executed: hold the response past the client's timeout."""
    if faults.order_delay_s:
        await asyncio.sleep(faults.order_delay_s)


class SocketRegistry:
    """Open WebSocket responses of a venue, so they can be dropped on demand or on a timer."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.sockets: set[web.WebSocketResponse] = set()
        self._closing: set[asyncio.Future] = set()

    def add(self, ws: web.WebSocketResponse) -> None:
        self.sockets.add(ws)
        if self.faults.ws_drop_every_s:
            loop = asyncio.get_running_loop()
            loop.call_later(self.faults.ws_drop_every_s, self._close_soon, ws)

    def discard(self, ws: web.WebSocketResponse) -> None:
        self.sockets.discard(ws)

    def _close_soon(self, ws: web.WebSocketResponse) -> None:
        if not ws.closed:
            task = asyncio.ensure_future(ws.close(code=1001, message=b"simulated drop"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def drop_all(self) -> int:
        """Close every open socket now (code 1001); returns how many were closed."""
        victims = [ws for ws in self.sockets if not ws.closed]
        await asyncio.gather(
            *(ws.close(code=1001, message=b"simulated drop") for ws in victims),
            return_exceptions=True,
        )
        return len(victims)
