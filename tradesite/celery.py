"""The Celery application: queues ``collector``, ``trader``, ``optimizer``; beat's schedule lives in
the database (django-celery-beat, editable in the admin).

Workers and beat write heartbeats to Redis (see ``markets.heartbeat``) so ``/health`` can tell a
stopped scheduler from a quiet one.

Redelivery (settings, "Task redelivery"): tasks are acknowledged late, so the Redis transport
keeps each delivered message in its unacked set, scored by delivery time, and puts it back on
its queue once the score is older than the visibility timeout (30 s). :class:`LeaseRenewal`
re-scores the messages this worker still holds (running or waiting in its buffer) every third
of that timeout, so only a worker that is gone loses them: a killed worker's tasks run again
within about 35 s, and a task that runs for an hour is never sent to a second worker. It needs
the worker's main process free to run its timer: the prefork (default) or threads pool, not
``--pool solo``.
"""

from __future__ import annotations

import os

from celery import Celery, bootsteps
from kombu import Queue

from tradesite import quietlogs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")

QUEUES = ("collector", "trader", "optimizer")

app = Celery("tradesite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = tuple(Queue(name) for name in QUEUES)
app.autodiscover_tasks()
quietlogs.install()  # routine per-tick tasks' "received"/"succeeded" lines at DEBUG

WORKER_HEARTBEAT_SECONDS = 10


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Writes ``tradesite:heartbeat:worker:<hostname>`` every few seconds with the queues served."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        self._beat(worker)
        self.tref = worker.timer.call_repeatedly(
            WORKER_HEARTBEAT_SECONDS, self._beat, (worker,), priority=10
        )

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    @staticmethod
    def _beat(worker):
        from markets import heartbeat

        queues = sorted(q.name for q in worker.app.amqp.queues.consume_from.values())
        try:
            heartbeat.beat("worker", worker.hostname, ttl=60, queues=",".join(queues))
        except Exception:  # never let monitoring take a worker down
            import logging

            logging.getLogger(__name__).warning("worker heartbeat failed", exc_info=True)


class LeaseRenewal(bootsteps.StartStopStep):
    """Renews the visibility of the messages this worker holds (see the module docstring)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None
        self.client = None

    def start(self, worker):
        from django.conf import settings

        every = max(0.5, float(settings.CELERY_VISIBILITY_TIMEOUT_S) / 3)
        self.tref = worker.timer.call_repeatedly(every, self.renew, (), priority=10)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def renew(self) -> int:
        """Re-score every message still held; returns how many were renewed."""
        import time

        from celery.worker import state

        tags = [tag for tag in (_delivery_tag(r) for r in list(state.reserved_requests)) if tag]
        if not tags:
            return 0
        try:
            if self.client is None:
                import redis
                from django.conf import settings

                self.client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
            key = app.conf.broker_transport_options.get("global_keyprefix", "") + "unacked_index"
            now = time.time()
            # XX: only messages still unacked; an acked one must not come back.
            return self.client.zadd(key, dict.fromkeys(tags, now), xx=True, ch=True)
        except Exception:  # never let this take a worker down; the timeout is the fallback
            import logging

            logging.getLogger(__name__).warning("renewing task leases failed", exc_info=True)
            self.client = None
            return 0


def _delivery_tag(request) -> str | None:
    message = getattr(request, "_message", None) or getattr(request, "message", None)
    tag = getattr(message, "delivery_tag", None)
    return str(tag) if tag else None


app.steps["worker"].add(WorkerHeartbeat)
app.steps["worker"].add(LeaseRenewal)
