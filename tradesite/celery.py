"""The Celery application: queues ``collector``, ``trader``, ``optimizer``; beat's schedule lives in
the database (django-celery-beat, editable in the admin).

Workers and beat write heartbeats to Redis (see ``markets.heartbeat``) so ``/health`` can tell a
stopped scheduler from a quiet one.
"""

from __future__ import annotations

import os

from celery import Celery, bootsteps
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")

QUEUES = ("collector", "trader", "optimizer")

app = Celery("tradesite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = tuple(Queue(name) for name in QUEUES)
app.autodiscover_tasks()

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


app.steps["worker"].add(WorkerHeartbeat)
