"""The screener's stored figures per symbol."""

from __future__ import annotations

from django.db import models

from markets.models import Symbol, Timeframe


class SymbolScreen(models.Model):
    """The screener's latest figures for one symbol (percentages in percent)."""

    symbol = models.OneToOneField(Symbol, on_delete=models.CASCADE, related_name="screen")
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    last_close = models.FloatField()
    atr_pct = models.FloatField(null=True, blank=True, help_text="ATR as % of the last close.")
    range_24h_pct = models.FloatField(
        null=True, blank=True, help_text="(24h high - 24h low) as % of the 24h low."
    )
    traded_value_24h = models.FloatField(help_text="Σ close × volume over 24h, quote currency.")
    momentum_pct = models.FloatField(null=True, blank=True, help_text="Change over the window, %.")
    score = models.FloatField(help_text="Mean of the percentile ranks within the venue, 0..1.")
    rank = models.PositiveIntegerField(help_text="1 = best within the venue.")
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["symbol__exchange", "rank"]

    def __str__(self) -> str:
        return f"{self.symbol} #{self.rank}"
