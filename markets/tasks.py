"""Celery tasks of the markets app (queue ``collector`` via ``markets.tasks.*``)."""

from __future__ import annotations

import logging

from celery import shared_task

from markets.collect import collect

log = logging.getLogger(__name__)


@shared_task(name="markets.tasks.collect_candles", ignore_result=True)
def collect_candles() -> dict:
    """Fetch what is newer than the stored candles for every active symbol and timeframe,
    plus the gaps the stream reported. Unreachable venues are logged and skipped."""
    report = collect()
    log.info("collect_candles: %s%s", report.summary(),
             f"; skipped {', '.join(report.venues_skipped)}" if report.venues_skipped else "")
    return {"fetched": report.fetched, "inserted": report.inserted, "requests": report.requests,
            "skipped": report.venues_skipped}
