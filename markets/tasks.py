"""Celery tasks of the markets app (queue ``collector`` via ``markets.tasks.*``)."""

from __future__ import annotations

import logging

from celery import shared_task

from markets.adapters import adapter_for
from markets.collect import collect
from markets.markprice import refresh_stale

log = logging.getLogger(__name__)


@shared_task(name="markets.tasks.collect_candles", ignore_result=True)
def collect_candles() -> dict:
    """Fetch what is newer than the stored candles for every active symbol and timeframe,
    plus the gaps the stream reported, and the mark prices of perpetuals whose stored mark is
    stale. Unreachable venues are logged and skipped."""
    report = collect()
    # Every minute: a routine run (new candles only) at DEBUG; gaps, unfinished ranges,
    # unreachable venues and dropped rows at INFO.
    notable = (report.gaps_found or report.gaps_filled or report.pending_filled
               or report.venues_skipped or report.dropped.total or report.errors)
    log.log(logging.INFO if notable else logging.DEBUG, "collect_candles: %s%s",
            report.summary(),
            f"; skipped {', '.join(report.venues_skipped)}" if report.venues_skipped else "")
    marks = 0
    try:  # the mark-price fallback: stale marks of perpetuals (the stream is down) over REST
        marks = refresh_stale(adapter_for)
    except Exception:
        log.exception("collect_candles: refreshing stale mark prices failed")
    return {"fetched": report.fetched, "inserted": report.inserted, "requests": report.requests,
            "skipped": report.venues_skipped, "marks": marks, "dropped": report.dropped.total}


@shared_task(name="markets.tasks.sync_symbols", ignore_result=True)
def sync_symbols() -> dict:
    """New listings and delistings of the venues that follow all their symbols
    (``Exchange.follow_all_symbols``; :mod:`markets.symbol_sync`)."""
    from markets.symbol_sync import sync_symbols as run

    report = run()
    log.log(logging.INFO if report.changed or report.failed else logging.DEBUG,
            "sync_symbols: %s", report.summary())
    return {"venues": report.venues, "added": len(report.added),
            "reactivated": len(report.reactivated), "deactivated": len(report.deactivated),
            "updated": report.updated, "failed": report.failed}
