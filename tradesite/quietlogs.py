"""Readable logs: the routine per-tick tasks at DEBUG, what a trader wants at INFO.

Celery logs two INFO lines per task ("received", "succeeded") and beat one per job sent. For
the jobs that run every second or every minute whatever happens (the exit guard on each price
update, the evaluation of each closed bar, the minute's collection, reconciliation, equity
snapshots, the alert outbox), those lines say nothing, drown the rest and cost CPU: they are
demoted to DEBUG here (``LOG_LEVEL=DEBUG`` shows them again). Failures, retries and every other
task keep their levels. What such a task did that matters to a trader (a signal, an order, a
fill, a rejection, a reconnect) is logged at INFO by the code that does it.
"""

from __future__ import annotations

import logging

#: Tasks that run on every tick or every minute, whether or not anything happens.
ROUTINE_TASKS = frozenset({
    "orders.tasks.exit_guard",
    "orders.tasks.evaluate",
    "orders.tasks.run_trading",
    "orders.tasks.reconcile",
    "orders.tasks.snapshot_equity",
    "markets.tasks.collect_candles",
    "alerts.tasks.deliver_due",
})

#: Celery's loggers of the per-task lines: received (worker), succeeded (trace), sent (beat).
CELERY_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat")


def _task_name(record: logging.LogRecord) -> str | None:
    args = record.args
    if isinstance(args, dict):  # worker and trace: a context dict with the task's name
        name = args.get("name")
        return name if isinstance(name, str) else None
    if isinstance(args, tuple) and len(args) == 2 and record.msg.startswith(
            "Scheduler: Sending due task"):
        return str(args[1])  # beat: (entry name, task name)
    return None


class RoutineTasksAtDebug(logging.Filter):
    """Demotes Celery's INFO lines about :data:`ROUTINE_TASKS` to DEBUG (dropped unless the
    logger is enabled for DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or _task_name(record) not in ROUTINE_TASKS:
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


FILTER = RoutineTasksAtDebug()


def install() -> None:
    """Attach the filter to Celery's per-task loggers (idempotent)."""
    for name in CELERY_LOGGERS:
        logger = logging.getLogger(name)
        if FILTER not in logger.filters:
            logger.addFilter(FILTER)
