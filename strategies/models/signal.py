"""The signals a strategy config produces: one decision per closed bar and action."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from markets.models import Symbol, Timeframe
from strategies.base import ACTIONS, HOLD
from strategies.models.config import MONEY, StrategyConfig

#: The stored actions: every action of ``strategies.base.ACTIONS`` but "hold" (a bar without a
#: decision stores nothing), with the same names and labels.
Action = models.TextChoices(
    "Action", [(name.upper(), (name, label)) for code, name, label in ACTIONS if code != HOLD]
)


class Signal(models.Model):
    """A strategy's decision on a closed bar. Stored once per config, bar and action."""

    config = models.ForeignKey(StrategyConfig, on_delete=models.CASCADE, related_name="signals")
    symbol = models.ForeignKey(Symbol, on_delete=models.CASCADE, related_name="signals")
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    bar_time = models.DateTimeField(help_text="Open time (UTC) of the bar the decision closed on.")
    action = models.CharField(max_length=16, choices=Action.choices)
    price = models.DecimalField(**MONEY, help_text="Close of the bar.")
    score = models.FloatField(null=True, blank=True)
    reason = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-bar_time", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["config", "bar_time", "action"], name="signal_unique_per_bar"
            ),
            models.CheckConstraint(condition=Q(price__gt=0), name="signal_price_positive"),
        ]
        indexes = [models.Index(fields=["symbol", "timeframe", "bar_time"])]

    def __str__(self) -> str:
        return f"{self.action} {self.symbol_id} @ {self.bar_time:%Y-%m-%d %H:%M}"
