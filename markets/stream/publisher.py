"""What a venue stream pushes: forming bars (at most 4 a second per group), tickers (once a
second per symbol, with the exit-guard task and the watchers of ``markets.stream_hooks``), and
closed bars (offered to the watchers too), each pushed once (a REST fill
overlapping the stream's own bar does not push it again; a corrected bar is pushed again) before
the evaluation task is sent. :class:`Publisher` is a part of
:class:`~markets.stream.venue.VenueStream`.
"""

from __future__ import annotations

import time

from markets import wire

#: Closed bars remembered per series to push each once (a day of 1m bars, and then some).
PUBLISHED_MEMORY = 2048
#: How often the stream asks which forming-bar groups have a listener: a chart opened just now
#: gets its first forming bar within about this long (its candles come over HTTP at once).
WATCHED_EVERY_S = 1.0


class Publisher:
    """Pushes to the channel layer and sends tasks; a failure is logged (throttled), never
    raised."""

    async def _push_forming(self) -> None:
        """The forming bars of the symbols that traded since the last push, to the groups a
        chart listens to (a stream following a whole market has hundreds of symbols and few
        open charts: a push nobody reads is a Redis round trip wasted)."""
        touched, self.touched = self.touched, set()
        watched = await self._watched()
        for code in touched:
            for tf in self.specs[code].timeframes:
                group = wire.bars_group(self.slug, code, tf)
                if watched is not None and group not in watched:
                    continue
                bar = self.agg.forming(code, tf)
                if bar is not None:
                    await self._publish(group, wire.bar_message(self.slug, code, tf,
                                                                bar.to_wire(), closed=False))

    async def _watched(self) -> set[str] | None:
        """The forming-bar groups with a listener, read at most every ``WATCHED_EVERY_S``; None
        (push to all) without a way to ask or when asking fails."""
        if self.watched_fn is None:
            return None
        now = time.monotonic()
        if now - self.watched_at >= WATCHED_EVERY_S:
            self.watched_at = now
            try:
                self.watched_groups = await self.watched_fn(self.forming_groups)
            except Exception as exc:
                self.watched_groups = None
                self.throttle.warning(f"watched:{self.slug}", "%s: cannot read which charts are "
                                      "open (pushing every forming bar): %s", self.slug, exc)
        return self.watched_groups

    async def _push_tickers(self) -> None:
        """The tickers due (a price changed, none pushed for ``ticker_interval_s``) go out as
        one ``tickers.update`` for the venue; each is offered to the watchers and, where the
        gate says so, sent to the exit guard with the trades' high and low since the last."""
        now = time.monotonic()
        due = []
        for code, (price, ts) in list(self.ticks.items()):
            if now - self.ticker_sent.get(code, 0.0) >= self.config.ticker_interval_s:
                self.ticker_sent[code] = now
                del self.ticks[code]
                due.append((code, price, ts))
        if not due:
            return
        await self._publish(wire.MARKETS_GROUP, wire.tickers_message(self.slug, due))
        for code, price, ts in due:
            high, low = self.extremes.pop(code, (price, price))
            for watcher in self.watchers:
                try:
                    watcher.on_price(self.slug, code, price, high, low, ts)
                except Exception as exc:
                    self.throttle.warning(f"watch:{self.slug}", "%s: a price watcher "
                                          "failed: %r", self.slug, exc)
            if self.exit_guard_task and self._worth_guarding(code):
                await self._send(self.exit_guard_task, {
                    "venue": self.slug, "symbol": code, "price": price, "ts_ms": ts,
                    "high": high, "low": low,
                })

    async def _send(self, task: str, kwargs: dict) -> None:
        try:
            await self._in(self.io, self.send_task_fn, task, kwargs)
        except Exception as exc:
            self.throttle.warning(f"task:{self.slug}", "%s: cannot send %s: %s", self.slug,
                                  task, exc)

    async def _publish(self, group: str, message: dict) -> bool:
        try:
            await self.publish_fn(group, message)
        except Exception as exc:
            self.throttle.warning(f"publish:{self.slug}", "%s: cannot publish to %s: %s",
                                  self.slug, group, exc)
            return False
        return True

    async def _emit_closed(self, code: str, tf: str, bar: dict, *, evaluate: bool,
                           sends: list[dict] | None = None) -> None:
        """Push a closed bar (once; a correction again), then, with ``evaluate``, offer it to
        the watchers and send its evaluation task (:meth:`_evaluate_closed`)."""
        await self._push_closed(code, tf, bar)
        if evaluate:
            await self._evaluate_closed(code, tf, bar, sends)

    async def _push_closed(self, code: str, tf: str, bar: dict) -> None:
        key = (code, tf)
        seen = self.published.setdefault(key, {})
        as_pushed = tuple(sorted(bar.items()))
        if seen.get(bar["t"]) != as_pushed:  # overlapping fills of one bar: pushed once
            if await self._publish(wire.bars_group(self.slug, code, tf),
                                   wire.bar_message(self.slug, code, tf, bar, closed=True)):
                seen.pop(bar["t"], None)
                seen[bar["t"]] = as_pushed
                while len(seen) > PUBLISHED_MEMORY:
                    del seen[next(iter(seen))]
            self.published_closed += 1

    async def _evaluate_closed(self, code: str, tf: str, bar: dict,
                               sends: list[dict] | None = None) -> None:
        """Once per bar: offer it to the watchers and send its evaluation task (not when the
        gate says no config trades it). With ``sends`` the task's kwargs are appended there for
        the caller to send in one go."""
        key = (code, tf)
        if bar["t"] <= self.evaluated.get(key, -1):
            return
        self.evaluated[key] = bar["t"]
        for watcher in self.watchers:
            try:
                watcher.on_bar(self.slug, code, tf, bar)
            except Exception as exc:
                self.throttle.warning(f"watch:{self.slug}", "%s: a bar watcher failed: %r",
                                      self.slug, exc)
        if not self._worth_evaluating(code, tf):
            self.evaluations_skipped += 1
            return
        kwargs = {"venue": self.slug, "symbol": code, "timeframe": tf, "bar_time_ms": bar["t"]}
        if sends is not None:
            sends.append(kwargs)
        else:
            await self._send_evaluations([kwargs])

    def _worth_guarding(self, code: str) -> bool:
        if self.gate is None:
            return True
        try:
            return bool(self.gate.guards(self.slug, code))
        except Exception as exc:
            self.throttle.warning(f"gate:{self.slug}", "%s: the exit-guard gate failed (sending "
                                  "every price): %r", self.slug, exc)
            return True

    def _worth_evaluating(self, code: str, tf: str) -> bool:
        if self.gate is None:
            return True
        try:
            return bool(self.gate.wants(self.slug, code, tf))
        except Exception as exc:  # a broken gate costs work, never a missed evaluation
            self.throttle.warning(f"gate:{self.slug}", "%s: the evaluation gate failed (sending "
                                  "every bar): %r", self.slug, exc)
            return True

    async def _send_evaluations(self, sends: list[dict]) -> None:
        """Send evaluation tasks in one hop to the I/O thread; one failing is logged and the
        rest are still sent (beat's catch-up evaluates a bar whose task was lost)."""
        if not sends:
            return

        def send_all() -> list[str]:
            failures = []
            for kwargs in sends:
                try:
                    self.send_task_fn(self.evaluate_task, kwargs)
                except Exception as exc:
                    failures.append(str(exc))
            return failures

        try:
            failures = await self._in(self.io, send_all)
        except Exception as exc:
            failures = [str(exc)]
        if failures:
            self.throttle.warning(f"task:{self.slug}", "%s: cannot send %s (%d of %d): %s",
                                  self.slug, self.evaluate_task, len(failures), len(sends),
                                  failures[0])
