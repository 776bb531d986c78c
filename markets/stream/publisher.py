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


class Publisher:
    """Pushes to the channel layer and sends tasks; a failure is logged (throttled), never
    raised."""

    async def _push_forming(self) -> None:
        touched, self.touched = self.touched, set()
        for code in touched:
            for tf in self.specs[code].timeframes:
                bar = self.agg.forming(code, tf)
                if bar is not None:
                    await self._publish(wire.bars_group(self.slug, code, tf),
                                        wire.bar_message(self.slug, code, tf, bar.to_wire(),
                                                         closed=False))

    async def _push_tickers(self) -> None:
        now = time.monotonic()
        for code, (price, ts) in list(self.ticks.items()):
            if now - self.ticker_sent.get(code, 0.0) >= self.config.ticker_interval_s:
                self.ticker_sent[code] = now
                del self.ticks[code]
                await self._publish(wire.MARKETS_GROUP,
                                    wire.ticker_message(self.slug, code, price, ts))
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
        """Push a closed bar (once; a correction again), offer it to the watchers and send its
        evaluation task (once per bar; not when the gate says no config trades it). With
        ``sends`` the task's kwargs are appended there for the caller to send in one go."""
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
        if evaluate and bar["t"] > self.evaluated.get(key, -1):
            self.evaluated[key] = bar["t"]
            for watcher in self.watchers:
                try:
                    watcher.on_bar(self.slug, code, tf, bar)
                except Exception as exc:
                    self.throttle.warning(f"watch:{self.slug}", "%s: a bar watcher failed: "
                                          "%r", self.slug, exc)
            if not self._worth_evaluating(code, tf):
                self.evaluations_skipped += 1
                return
            kwargs = {"venue": self.slug, "symbol": code, "timeframe": tf,
                      "bar_time_ms": bar["t"]}
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
