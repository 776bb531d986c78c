"""Beat's scheduler: django-celery-beat's DatabaseScheduler plus a heartbeat on every tick.

django-celery-beat writes ``last_run_at`` lazily (every few minutes), so ``/health`` reads this
heartbeat instead to know beat is alive.
"""

from __future__ import annotations

import logging
import time

from django_celery_beat.schedulers import DatabaseScheduler

from markets import heartbeat

log = logging.getLogger(__name__)


class HeartbeatScheduler(DatabaseScheduler):
    heartbeat_interval = 5.0

    def __init__(self, *args, **kwargs):
        self._last_heartbeat = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now - self._last_heartbeat >= self.heartbeat_interval:
            self._last_heartbeat = now
            try:
                heartbeat.beat("beat", "scheduler", ttl=120)
            except Exception:
                log.warning("beat heartbeat failed", exc_info=True)
        return interval
