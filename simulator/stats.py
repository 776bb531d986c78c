"""Counters of the simulator's answers by venue and HTTP status, for tests and fault drills.

Every REST answer a venue gives is counted after everything else decided it (an injected 5xx, a
429 or 418, a handler's own error), so a drill reads how often it was refused without wrapping
the simulator. WebSocket upgrades are not answers and are not counted.

``GET /_sim/stats`` on any venue's port answers ``{"answers": {"upbit": {"200": 12, "429": 3}},
"by_status": {"200": 12, "429": 3}, "total": 15}`` for the whole simulator; ``DELETE
/_sim/stats`` zeroes the counters. ``/_sim/`` is part of no venue's protocol. In Python:
``Simulator.answers`` (an :class:`AnswerCounts`; thread-safe).
"""

from __future__ import annotations

import collections
import threading

from aiohttp import web

STATS_PATH = "/_sim/stats"


class AnswerCounts:
    """How many answers each venue gave, by HTTP status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, int]] = collections.Counter()

    def count(self, venue: str, status: int) -> None:
        with self._lock:
            self._counts[(venue, int(status))] += 1

    def snapshot(self) -> dict[str, dict[int, int]]:
        """``{venue: {status: count}}``."""
        out: dict[str, dict[int, int]] = {}
        with self._lock:
            for (venue, status), n in sorted(self._counts.items()):
                out.setdefault(venue, {})[status] = n
        return out

    def total(self, status: int | None = None, venue: str | None = None) -> int:
        """Answers with ``status`` (any when None) from ``venue`` (every venue when None)."""
        with self._lock:
            return sum(n for (v, s), n in self._counts.items()
                       if (status is None or s == status) and (venue is None or v == venue))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def as_json(self) -> dict:
        snap = self.snapshot()
        by_status: collections.Counter[int] = collections.Counter()
        for statuses in snap.values():
            by_status.update(statuses)
        return {
            "answers": {v: {str(s): n for s, n in st.items()} for v, st in snap.items()},
            "by_status": {str(s): n for s, n in sorted(by_status.items())},
            "total": sum(by_status.values()),
        }


def counting_middleware(counts: AnswerCounts, venue: str):
    """Counts the status of every REST answer of ``venue`` (outermost middleware)."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if (request.path.startswith("/_sim/")
                or request.headers.get("Upgrade", "").lower() == "websocket"):
            return await handler(request)
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            counts.count(venue, exc.status)
            raise
        except Exception:
            counts.count(venue, 500)  # aiohttp answers an unhandled error with a 500
            raise
        counts.count(venue, resp.status)
        return resp

    return middleware


def add_stats_routes(app: web.Application, counts: AnswerCounts) -> None:
    async def show(request: web.Request) -> web.Response:
        return web.json_response(counts.as_json())

    async def reset(request: web.Request) -> web.Response:
        counts.reset()
        return web.json_response(counts.as_json())

    app.router.add_get(STATS_PATH, show)
    app.router.add_delete(STATS_PATH, reset)
