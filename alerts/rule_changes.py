"""The rule-change stamp: every save or delete of an alert rule bumps
``<prefix>alerts:rules:changed`` in Redis after commit, and the stream's market watch
(``alerts.watch``) reloads its rules when it changes (as the stream reloads its symbols on
``markets.symbol_changes``). Light on purpose: imported at every process's start."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)
#: Without a readable stamp (Redis down), the watch reloads at least this often.
RELOAD_FALLBACK_S = 30.0


def changed_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}alerts:rules:changed"


def bump(**_kwargs) -> None:
    """Record that the rules changed (after the transaction commits); connected to the rule's
    post_save and post_delete."""

    def write() -> None:
        from markets import heartbeat

        try:
            heartbeat.client().set(changed_key(), time.time_ns())
        except Exception as exc:  # saving a rule must not fail on Redis
            log.warning("alerts: could not record the rule change in Redis (%s); the stream "
                        "picks it up within %.0f s", exc, RELOAD_FALLBACK_S)

    transaction.on_commit(write)


def make_watch():
    """The stream's watcher factory (``markets.stream_hooks``): numpy and the indicators are
    loaded only in the stream process."""
    from alerts.watch import MarketWatch

    return MarketWatch()
