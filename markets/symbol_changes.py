"""Symbol-set change stamp: any save or delete of a Symbol or Exchange bumps
``tradesite:symbols:changed`` (ms UTC) in Redis, so the stream reloads its symbols by reading one
key instead of polling every row."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from markets import heartbeat
from markets.models import Exchange, Symbol

log = logging.getLogger(__name__)
_warned = False


def changed_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}symbols:changed"


def bump() -> None:
    """Record that the symbol set changed now (after the transaction commits)."""

    def write() -> None:
        global _warned
        try:
            heartbeat.client().set(changed_key(), int(time.time() * 1000))
        except Exception as exc:  # Redis down must not break saving a symbol in the admin
            # Harmless before the stream runs (it reads every symbol at start): say it once.
            if not _warned:
                _warned = True
                log.warning("could not record the symbol-set change in Redis (%s); a running "
                            "stream picks the change up when it restarts", exc)

    transaction.on_commit(write)


def changed_stamp(client=None) -> str | None:
    return (client or heartbeat.client()).get(changed_key())


@receiver(post_save, sender=Symbol)
@receiver(post_delete, sender=Symbol)
@receiver(post_save, sender=Exchange)
@receiver(post_delete, sender=Exchange)
def _symbols_changed(sender, **kwargs) -> None:
    bump()
