"""Market data as stored: candles, the latest mark price per perpetual, and unfinished candle
ranges. Candle prices are floats (analytics data); mark prices are Decimal. Times are aware UTC.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from markets.models.venues import MONEY, Symbol, Timeframe
from markets.timeframes import TIMEFRAMES


class Candle(models.Model):
    """A closed candle. The forming bar never lands here; it lives on the wire."""

    # No index of its own: the unique (symbol, timeframe, open_time) index starts with it, and
    # a second index would cost every candle written (the bulk upsert is the hot path). No
    # database constraint either: the database would check the same symbol once per candle
    # (525,600 times for a year of 1m); ``markets.candles.upsert_candles``, the only writer,
    # checks it once per call and key-share locks the symbol row as the constraint would.
    # Deleting a symbol deletes its candles (Django's cascade).
    symbol = models.ForeignKey(
        Symbol, on_delete=models.CASCADE, related_name="candles", db_index=False,
        db_constraint=False,
    )
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    open_time = models.DateTimeField(help_text="UTC open time of the candle.")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField()
    quote_volume = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["symbol", "timeframe", "open_time"]
        constraints = [
            # Also the index behind "latest candles of a symbol and timeframe" (read backwards).
            models.UniqueConstraint(
                fields=["symbol", "timeframe", "open_time"], name="candle_unique_open_time"
            ),
            models.CheckConstraint(
                condition=Q(high__gte=F("open")) & Q(high__gte=F("close")),
                name="candle_high_is_highest",
            ),
            models.CheckConstraint(
                condition=Q(low__lte=F("open")) & Q(low__lte=F("close")),
                name="candle_low_is_lowest",
            ),
            models.CheckConstraint(condition=Q(low__gt=0), name="candle_prices_positive"),
            models.CheckConstraint(condition=Q(volume__gte=0), name="candle_volume_non_negative"),
            models.CheckConstraint(
                condition=Q(quote_volume__isnull=True) | Q(quote_volume__gte=0),
                name="candle_quote_volume_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(timeframe__in=TIMEFRAMES), name="candle_timeframe_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol_id} {self.timeframe} {self.open_time:%Y-%m-%d %H:%M}"


class MarkPrice(models.Model):
    """The latest mark price of a perpetual symbol, with its funding rate and next funding time,
    as the venue last published it (``markets.markprice``: the stream's ``@markPrice@1s``, the
    collector's REST ``premiumIndex`` when the stream is down). One row per symbol, upserted.

    Its own table rather than fields on :class:`Symbol`: it is written every second, and a
    Symbol save is an admin edit that bumps the stream's symbol-set stamp. ``last_funding_*``
    keep the settlement before ``next_funding_time`` (kept when the venue moves it on), which
    paper funding books (``orders.funding``)."""

    symbol = models.OneToOneField(
        Symbol, on_delete=models.CASCADE, primary_key=True, related_name="mark"
    )
    price = models.DecimalField(**MONEY)
    index_price = models.DecimalField(**MONEY, null=True, blank=True)
    funding_rate = models.DecimalField(
        max_digits=16, decimal_places=10, null=True, blank=True,
        help_text="Rate settled at the next funding time (fraction: 0.0001 = 0.01 %).",
    )
    next_funding_time = models.DateTimeField(null=True, blank=True)
    last_funding_time = models.DateTimeField(null=True, blank=True)
    last_funding_rate = models.DecimalField(
        max_digits=16, decimal_places=10, null=True, blank=True
    )
    last_funding_price = models.DecimalField(**MONEY, null=True, blank=True)
    venue_time = models.DateTimeField(help_text="When the venue computed it (UTC).")
    updated_at = models.DateTimeField(help_text="When it was stored here (UTC).")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="markprice_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol_id} mark {self.price}"


class PendingRange(models.Model):
    """Candles a job set out to store and has not stored yet: ``[start, end)`` of one series.

    A backfill writes one row per series before its first request and moves ``start`` forward
    after each chunk it stores, so whatever stops it (an exception, Ctrl-C, SIGTERM, SIGKILL)
    leaves exactly its unfinished range here, including the part before the first stored
    candle (``start`` is where the request began). ``collect_candles`` fills rows whose lease
    ran out. In the database rather than Redis: the private Redis keeps nothing across a
    restart, and a hole must not be forgotten because Redis was.
    """

    class Source(models.TextChoices):
        BACKFILL = "backfill", "backfill"
        STREAM = "stream", "stream (not filled before it stopped)"
        COLLECT = "collect", "collection"

    symbol = models.ForeignKey(Symbol, on_delete=models.CASCADE, related_name="pending_ranges")
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    start = models.DateTimeField(help_text="UTC: the first open time not yet stored.")
    end = models.DateTimeField(help_text="UTC: end of the range (exclusive).")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.BACKFILL)
    lease_until = models.DateTimeField(
        help_text="The job filling it owns it until then; afterwards the collector may fill it."
    )
    note = models.TextField(blank=True, help_text="Why the last job stopped, when it said.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["lease_until", "id"]
        indexes = [models.Index(fields=["lease_until"], name="pendingrange_lease")]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="pendingrange_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol_id} {self.timeframe} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"
