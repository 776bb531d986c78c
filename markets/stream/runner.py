"""Runs a :class:`VenueStream` per active venue and reloads when the symbol set changes.

With a :class:`~markets.stream.shards.ShardRegistry` (``manage.py stream`` always has one) the
runner follows only the symbols the rendezvous assignment gives its shard and re-reads the live
shards every reload tick. A venue may run as a few parts (see :meth:`StreamRunner._apply`), so
symbols gained on a hand-over start without interrupting the ones already streaming."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable
from typing import Any

from django.conf import settings

from markets import heartbeat
from markets import stream_hooks as hooks
from markets.stream.config import LogThrottle, StreamConfig, SymbolSpec, VenueSpec
from markets.stream.shards import Member, ShardRegistry, owner
from markets.stream.venue import VenueStream
from markets.timeframes import TIMEFRAMES

log = logging.getLogger("markets.stream")
#: A venue running as this many parts is restarted as one (each part holds connections).
MAX_PARTS = 4


def load_venues(only: set[str] | None = None) -> dict[str, VenueSpec]:
    """Active venues with their active symbols (read from the database)."""
    from markets.models import Symbol

    venues: dict[str, dict[str, Any]] = {}
    qs = Symbol.objects.active().select_related("exchange").order_by("exchange__slug", "code")
    for s in qs:
        ex = s.exchange
        if only and ex.slug not in only:
            continue
        entry = venues.setdefault(ex.slug, {"ex": ex, "symbols": []})
        tfs = tuple(tf for tf in TIMEFRAMES if tf in (s.timeframes or []))
        entry["symbols"].append(SymbolSpec(s.code, s.id, tfs or ("1m",), s.market_type))
    return {
        slug: VenueSpec(slug, e["ex"].adapter, e["ex"].rest_url, e["ex"].ws_url,
                        tuple(e["symbols"]))
        for slug, e in venues.items()
    }


def default_publish() -> Callable[[str, dict], Any]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()

    async def publish(group: str, message: dict) -> None:
        if layer is not None:
            await layer.group_send(group, message)

    return publish


def default_watched() -> Callable[[list[str]], Any]:
    """``await watched(groups)``: the groups with at least one member on the Redis channel
    layer (one pipelined ZCARD per Redis shard of the layer); None (every group) on another
    layer. A member that died without leaving counts until the layer's ``group_expiry``."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()

    async def watched(groups: list[str]) -> set[str] | None:
        from channels_redis.core import RedisChannelLayer

        if not isinstance(layer, RedisChannelLayer):
            return None
        by_index: dict[int, list[str]] = {}
        for group in groups:
            by_index.setdefault(layer.consistent_hash(group), []).append(group)
        found: set[str] = set()
        for index, names in by_index.items():
            pipe = layer.connection(index).pipeline(transaction=False)
            for group in names:
                pipe.zcard(layer._group_key(group))
            counts = await pipe.execute()
            found.update(g for g, n in zip(names, counts) if n)
        return found

    return watched


def default_send_task(name: str, kwargs: dict) -> None:
    """Send a task by name through the project's Celery app (the current app once the
    project package is imported; markets does not import it, by the layering rule)."""
    from celery import current_app

    current_app.send_task(name, kwargs=kwargs)


def stream_beat(slug: str, stopped: bool = False, ttl: int = 60, **fields) -> None:
    if stopped:
        heartbeat.client().delete(heartbeat.key("stream", slug))
    else:
        heartbeat.beat("stream", slug, ttl=ttl, **fields)


class WsLogFilter(logging.Filter):
    """Keeps a venue that is offline from flooding the log: the adapter's "stream dropped"
    line is let through the first time and then at most once per ``every_s`` per venue."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.throttle = LogThrottle(every_s, logging.getLogger("markets.exchanges.ws"))
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if "stream dropped" not in str(record.msg):
            return True
        import time

        venue = str(record.args[0]) if record.args else ""
        now = time.monotonic()
        if now - self._last.get(venue, -1e9) < self.throttle.every_s:
            return False
        self._last[venue] = now
        return True


class StreamRunner:
    """All venues in one process. ``factory(spec) -> VenueStream`` is injectable for tests."""

    def __init__(self, *, only: set[str] | None = None, config: StreamConfig | None = None,
                 factory: Callable[[VenueSpec], VenueStream] | None = None,
                 reload_every_s: float = 2.0, watchers: list | None = None,
                 shard: ShardRegistry | None = None,
                 clock_ms: Callable[[], int] | None = None, gate: Any | None = None) -> None:
        self.only = only
        #: This process's shard (None: follow every symbol, no coordination).
        self.shard = shard
        self.clock_ms = clock_ms
        self.members: dict[str, Member] = shard.last_members if shard else {}
        self.loaded: dict[str, VenueSpec] = {}
        self.throttle = LogThrottle(60.0)
        self.config = config or StreamConfig()
        self.factory = factory or self._make
        self.reload_every_s = reload_every_s
        #: (venue slug, part number) -> the part's spec, stream and task.
        self.running: dict[tuple[str, int], tuple[VenueSpec, VenueStream, asyncio.Task]] = {}
        self._next_part = 0
        self._part_name = ""
        self._stop = asyncio.Event()
        self._publish = None
        self._watched = None
        #: One instance of each registered watcher (``markets.stream_hooks``) for every venue.
        self.watchers = hooks.make_all() if watchers is None else list(watchers)
        #: Which closed bars and price updates send a task (``markets.stream_hooks``).
        self.gate = hooks.make_gate() if gate is None else gate

    def _make(self, spec: VenueSpec) -> VenueStream:
        from markets.adapters import adapter_for, venue_limiter
        from markets.collect import report_gap
        from markets.exchanges import ADAPTERS

        limiter = venue_limiter(spec)
        if self._publish is None:
            self._publish = default_publish()
            self._watched = default_watched()

        options = {}
        if ADAPTERS[spec.adapter].capabilities.ws_text_ping:
            # A text PING well inside the watchdog's silence window keeps a quiet but healthy
            # connection from looking dead (the venue answers {"status":"UP"}).
            options["ws_text_ping_s"] = max(1.0, self.config.silence_s / 3)
        if self.clock_ms is not None:
            clock_ms = self.clock_ms
            options["clock"] = lambda: clock_ms() / 1000.0
        name = self._part_name

        def adapter():
            return adapter_for(spec, limiter=limiter, **options)

        return VenueStream(
            spec, rest_adapter=adapter(), stream_adapter_factory=adapter,
            publish=self._publish, send_task=default_send_task,
            evaluate_task=settings.TRADESITE_TASKS["evaluate"], config=self.config,
            exit_guard_task=settings.TRADESITE_TASKS.get("exit_guard"), clock_ms=self.clock_ms,
            beat=lambda slug, **f: stream_beat(name, ttl=self.config.heartbeat_ttl_s, **f),
            report_gap=report_gap, watchers=self.watchers, gate=self.gate,
            watched=self._watched,
        )

    def stop(self) -> None:
        self._stop.set()

    async def _load(self) -> dict[str, VenueSpec]:
        self.loaded = await asyncio.to_thread(_load_in_thread, self.only)
        return self.share(self.loaded)

    def share(self, specs: dict[str, VenueSpec]) -> dict[str, VenueSpec]:
        """This shard's part of ``specs``: the symbols the assignment gives it."""
        if self.shard is None:
            return specs
        members = list(self.members.values()) or [self.shard.me]
        mine = {}
        for slug, spec in specs.items():
            symbols = tuple(s for s in spec.symbols
                            if owner(slug, s.code, members) == self.shard.id)
            if symbols:
                mine[slug] = dataclasses.replace(spec, symbols=symbols)
        return mine

    async def _sync_shard(self) -> bool:
        """Beat this shard's keys and re-read the live shards; True when they changed. Without
        Redis the last membership stays (logged at most once a minute)."""
        if self.shard is None:
            return False
        following = [f"{spec.slug}:{s.code}" for spec, _, _ in self.running.values()
                     for s in spec.symbols]
        try:
            # Read before beating: our record then shows whoever wrote it last, so a second
            # process under the same id is noticed within a few ticks.
            members = await asyncio.to_thread(self.shard.members)
            await asyncio.to_thread(self.shard.beat, following)
        except Exception as exc:
            self.throttle.warning("shard", "stream shard %s: cannot reach Redis (%s); keeping "
                                  "the %d shard(s) last seen", self.shard.id, exc,
                                  len(self.members))
            return False
        self.throttle.reset("shard")
        if self.shard.duplicate:
            self.throttle.warning("shard-id", "stream shard %s: another process beats under the "
                                  "same id; give each stream process its own STREAM_SHARD_ID",
                                  self.shard.id)
        changed = members != self.members
        if changed:
            log.info("stream shard %s: live shards %s", self.shard.id,
                     ", ".join(sorted(members)))
        self.members = members
        return changed

    async def _stamp(self) -> str | None:
        from markets.symbol_changes import changed_stamp

        return await asyncio.to_thread(changed_stamp)

    async def _apply(self, specs: dict[str, VenueSpec]) -> None:
        """Run ``specs`` (this shard's share of each venue). A venue may run as several parts
        (one :class:`VenueStream` each): symbols gained (a dead shard's, a new listing) start
        as a part of their own, so the symbols already streaming are not interrupted; a part
        that lost or changed a symbol, or whose venue changed, restarts with what remains."""
        for slug in {key[0] for key in self.running} - set(specs):
            for key in self._parts(slug):
                await self._stop_venue(key)
        for slug, want in specs.items():
            wanted = {s.code: s for s in want.symbols}
            base = dataclasses.replace(want, symbols=())
            parts = self._parts(slug)
            if len(parts) >= MAX_PARTS:  # consolidate: one part again
                for key in parts:
                    await self._stop_venue(key)
            kept: set[str] = set()
            for key in self._parts(slug):
                spec = self.running[key][0]
                if dataclasses.replace(spec, symbols=()) != base or any(
                        wanted.get(s.code) != s for s in spec.symbols):
                    await self._stop_venue(key)
                else:
                    kept.update(s.code for s in spec.symbols)
            start = tuple(s for s in want.symbols if s.code not in kept)
            if start:
                self._start_part(dataclasses.replace(want, symbols=start))

    def _parts(self, slug: str) -> list[tuple[str, int]]:
        return sorted(key for key in self.running if key[0] == slug)

    def _start_part(self, spec: VenueSpec) -> None:
        self._next_part += 1
        key = (spec.slug, self._next_part)
        self._part_name = self._beat_name(*key)
        stream = self.factory(spec)
        task = asyncio.ensure_future(stream.run())
        self.running[key] = (spec, stream, task)
        log.info("stream: %s with %d symbol(s)", self._part_name, len(spec.symbols))

    def _beat_name(self, slug: str, part: int) -> str:
        """The part's heartbeat name: ``<venue>@<shard>#<part>`` (``/health`` merges a venue's)."""
        return f"{slug}@{self.shard.id if self.shard else '-'}#{part}"

    async def _stop_venue(self, key: tuple[str, int]) -> None:
        _, stream, task = self.running.pop(key)
        stream.stop()
        with contextlib.suppress(Exception):
            await task
        log.info("stream: %s stopped", self._beat_name(*key))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop)
        stamp = await self._safe_stamp()
        await self._refresh_watchers()
        await self._sync_shard()
        await self._apply(await self._load())
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.reload_every_s):  # not wait_for: gh-86296
                        await self._stop.wait()
                if self._stop.is_set():
                    break
                force = False
                for key, (_, _, task) in list(self.running.items()):
                    if task.done():  # a venue stream died: start it again
                        self.running.pop(key)
                        exc = task.exception() if not task.cancelled() else None
                        log.error("stream: %s stopped unexpectedly (%s); restarting",
                                  self._beat_name(*key), exc)
                        force = True
                await self._refresh_watchers()
                moved = await self._sync_shard()
                new = await self._safe_stamp()
                if new != stamp or force:
                    stamp = new
                    await self._apply(await self._load())
                elif moved:  # same symbols, other shards: only the share changes
                    await self._apply(self.share(self.loaded))
        finally:
            if self.shard is not None:  # the others take our symbols over at once
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.shard.leave)
            for key in list(self.running):
                await self._stop_venue(key)

    async def _refresh_watchers(self) -> None:
        for watcher in [*self.watchers, *([self.gate] if self.gate is not None else [])]:
            try:
                await watcher.refresh()
            except Exception as exc:
                log.warning("stream: a watcher could not refresh: %s", exc)

    async def _safe_stamp(self) -> str | None:
        try:
            return await self._stamp()
        except Exception as exc:
            log.warning("stream: cannot read the symbol-set stamp: %s", exc)
            return None


def _load_in_thread(only):
    from django.db import connection

    # A reload is rare (a symbol or venue change, a dead venue stream): the worker thread
    # does not keep a connection open in between.
    try:
        return load_venues(only)
    finally:
        connection.close()
