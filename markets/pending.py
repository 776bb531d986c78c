"""Unfinished candle ranges (:class:`markets.models.PendingRange`): written ahead, shrunk as
chunks are stored, left behind by whatever stops a job, filled by ``collect_candles``.

A job *owns* its rows while their lease runs (``BACKFILL_LEASE_S``, 60 s, renewed with every
chunk and before every wait on the venue); a row whose lease ran out belongs to nobody, and the
collector claims it with one conditional update, so two collectors never fill the same row.
A job killed outright (SIGKILL) cannot say anything on its way out: its rows simply stop being
renewed, and the collector takes them a lease later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.utils import timezone

from markets.models import PendingRange, Symbol

DEFAULT_LEASE_S = 60.0
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def lease_s() -> float:
    return float(getattr(settings, "BACKFILL_LEASE_S", DEFAULT_LEASE_S))


def to_dt(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=int(ms))


def to_ms(value: dt.datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _lease(extra_s: float = 0.0) -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=lease_s() + extra_s)


def open_range(symbol: Symbol, timeframe: str, start_ms: int, end_ms: int, *,
               source: str = PendingRange.Source.BACKFILL, owned: bool = True) -> PendingRange:
    """Record ``[start_ms, end_ms)`` as owned by the calling job (``owned=False``: for the
    collector from now on). Unowned rows of the series lying inside it are dropped: this row
    covers them."""
    PendingRange.objects.filter(
        symbol=symbol, timeframe=timeframe, lease_until__lt=timezone.now(),
        start__gte=to_dt(start_ms), end__lte=to_dt(end_ms),
    ).delete()
    return PendingRange.objects.create(
        symbol=symbol, timeframe=timeframe, start=to_dt(start_ms), end=to_dt(end_ms),
        source=source, lease_until=_lease() if owned else timezone.now(),
    )


def advance(row: PendingRange, start_ms: int) -> None:
    """Everything before ``start_ms`` is stored (or empty at the venue): shrink or delete."""
    if start_ms >= to_ms(row.end):
        finish(row)
        return
    row.start = to_dt(start_ms)
    row.lease_until = _lease()
    PendingRange.objects.filter(pk=row.pk).update(start=row.start, lease_until=row.lease_until,
                                                  updated_at=timezone.now())


def renew(row: PendingRange, extra_s: float = 0.0) -> None:
    """Keep owning ``row`` for another lease (plus ``extra_s``: a wait about to start)."""
    row.lease_until = _lease(extra_s)
    PendingRange.objects.filter(pk=row.pk).update(lease_until=row.lease_until)


def finish(row: PendingRange) -> None:
    PendingRange.objects.filter(pk=row.pk).delete()


def release(rows: Iterable[PendingRange], note: str) -> int:
    """The job stops: its rows are the collector's from now on, with the reason."""
    pks = [r.pk for r in rows]
    return PendingRange.objects.filter(pk__in=pks).update(
        lease_until=timezone.now(), note=note[:2000], updated_at=timezone.now())


def claim(row: PendingRange) -> bool:
    """Take an unowned row for this job (False: someone else owns it now)."""
    now = timezone.now()
    lease = _lease()
    taken = PendingRange.objects.filter(pk=row.pk, lease_until__lt=now).update(
        lease_until=lease)
    if taken:
        row.lease_until = lease
    return bool(taken)


def unowned(exchange_ids: Iterable[int] | None = None) -> list[PendingRange]:
    """Rows no job owns on active venues, oldest lease first."""
    qs = PendingRange.objects.filter(lease_until__lt=timezone.now(),
                                     symbol__exchange__is_active=True).select_related(
        "symbol__exchange")
    if exchange_ids is not None:
        qs = qs.filter(symbol__exchange_id__in=list(exchange_ids))
    return list(qs.order_by("lease_until", "id"))
