"""The market rules inside the stream process: a watcher of ``markets.stream_hooks``,
registered by ``AlertsConfig.ready``.

- The rules live in memory (``alerts.market``), loaded from the database at start and again
  when ``<prefix>alerts:rules:changed`` in Redis changes (every save or delete of a rule bumps
  it after commit: :func:`bump`), checked by the runner every couple of seconds, the way the
  stream reloads its symbols. A price update of a symbol without rules costs a dictionary
  lookup: no query per tick.
- A firing is stored (the notification rows, ``alerts.events.fire``: dedupe and cooldown in
  the database too) on a thread of its own, never on the stream's event loop, and the rows are
  sent to the delivery task at once.
- Closed bars of a series with bar rules are kept in memory (seeded once from the candle store,
  on that thread) so an indicator needs no query per bar either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from django.db import close_old_connections, transaction

from alerts import market
from alerts.rule_changes import RELOAD_FALLBACK_S, changed_key

log = logging.getLogger(__name__)


def load_rules() -> list[market.Rule]:
    from alerts.models import AlertRule

    close_old_connections()
    rows = (AlertRule.objects.filter(is_active=True, kind__in=AlertRule.MARKET_KINDS,
                                     symbol__isnull=False)
            .select_related("symbol__exchange"))
    return [market.Rule(r.pk, r.kind, r.symbol.exchange.slug, r.symbol.code, r.symbol_id,
                        dict(r.params or {}), float(r.cooldown_s), r.name) for r in rows]


class MarketWatch:
    def __init__(self, *, load=load_rules, stamp=None, store=None) -> None:
        self.evaluator = market.Evaluator()
        self.load_fn = load
        self.stamp_fn = stamp or self._stamp
        self.store_fn = store or store_firing
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="alerts-watch")
        self.stamp: object = object()  # never equal: the first refresh loads
        self.loaded_at = float("-inf")  # never loaded: the first refresh loads, Redis or not
        self.bars: dict[tuple[str, str, str], deque] = {}
        self.fired = 0

    @staticmethod
    def _stamp():
        from markets import heartbeat

        return heartbeat.client().get(changed_key())

    async def refresh(self) -> None:
        try:
            # None (no rule saved since Redis started) is a stamp like any other: it stays
            # None until a rule is saved, so it does not reload the rules on every refresh.
            stamp = await asyncio.to_thread(self.stamp_fn)
        except Exception as exc:
            log.warning("alerts: cannot read the rule stamp: %s", exc)
            if time.monotonic() - self.loaded_at < RELOAD_FALLBACK_S:
                return  # keep the loaded rules; reload once RELOAD_FALLBACK_S has passed
            stamp = object()  # unknown: reload now (and again RELOAD_FALLBACK_S later)
        if stamp == self.stamp:
            return
        rules = await asyncio.get_running_loop().run_in_executor(self.pool, self.load_fn)
        self.evaluator.load(market.RuleIndex(rules))
        for series in [s for s in self.bars if s not in self.evaluator.index.bar_series]:
            del self.bars[series]
        self.stamp, self.loaded_at = stamp, time.monotonic()
        log.info("alerts: %d market rule(s) on %d symbol(s)", len(rules),
                 len(self.evaluator.index.symbols))

    def on_price(self, venue, code, price, high, low, ts_ms) -> None:
        if (venue, code) not in self.evaluator.last_price and (
                (venue, code) in self.evaluator.index.symbols):
            log.info("alerts: watching %s %s from %s", venue, code, price)
        firings = self.evaluator.on_price(venue, code, price, high, low, ts_ms)
        for firing in firings:
            self.pool.submit(self._store, firing)

    def on_bar(self, venue, code, tf, bar) -> None:
        series = (venue, code, tf)
        if series in self.evaluator.index.bar_series:
            self.pool.submit(self._bar, series, dict(bar))

    def _bar(self, series, bar) -> None:
        venue, code, tf = series
        need = self.evaluator.index.history_needed(venue, code, tf)
        rows = self.bars.get(series)
        if rows is None or rows.maxlen != need:
            rows = self.bars[series] = deque(self._seed(series, bar["t"], need - 1), need)
        if rows and rows[-1][0] >= bar["t"]:
            while rows and rows[-1][0] >= bar["t"]:
                rows.pop()  # a corrected bar replaces the one pushed before
        rows.append((int(bar["t"]), float(bar["c"]), float(bar.get("v") or 0.0)))
        arr = np.array(rows, dtype=float).reshape(-1, 3)
        for firing in self.evaluator.on_bars(venue, code, tf, arr[:, 0], arr[:, 1], arr[:, 2]):
            self._store(firing)

    def _seed(self, series, before_ms: int, count: int) -> list[tuple]:
        venue, code, tf = series
        rule = self.evaluator.index.bar_series[series][0]
        try:
            from markets.candles import load_candles

            close_old_connections()
            c = load_candles(rule.symbol_id, tf, end_ms=before_ms, limit=max(count, 0))
            return list(zip(c.open_time_ms.tolist(), c.close.tolist(), c.volume.tolist(),
                            strict=True))
        except Exception as exc:
            log.warning("alerts: cannot read the %s %s %s candles: %s", venue, code, tf, exc)
            return []

    def _store(self, firing: market.Firing) -> None:
        try:
            self.store_fn(firing)
            self.fired += 1
        except Exception:
            log.exception("alerts: could not store the firing of rule %s", firing.rule_id)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def store_firing(firing: market.Firing) -> list[int]:
    """The notification rows of a firing (dedupe and cooldown in the database), then sent."""
    from alerts import events
    from alerts.models import AlertRule

    close_old_connections()
    rule = (AlertRule.objects.filter(pk=firing.rule_id, is_active=True)
            .prefetch_related("channels").first())
    if rule is None:
        return []  # deleted or paused since the index was loaded
    event = events.Event(rule.kind, firing.key, None, firing.title, firing.body, firing.data)
    with transaction.atomic():
        created = events.fire(rule, event)
    events.schedule(created)
    return created
