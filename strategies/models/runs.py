"""Stored runs: backtests, optimizer runs with their trials, and the parameter versions a
config went through (an optimizer result applied, a rollback)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from markets.models import Symbol, Timeframe
from strategies.models.config import MONEY, StrategyConfig


class BacktestRun(models.Model):
    """A backtest request and its results (stats, trades, equity curve), owned by a user."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="backtests",
        null=True,
        blank=True,
        help_text="Empty for runs started from the command line.",
    )
    config = models.ForeignKey(
        StrategyConfig, on_delete=models.SET_NULL, null=True, blank=True, related_name="backtests"
    )
    strategy = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    symbol = models.ForeignKey(Symbol, on_delete=models.CASCADE, related_name="backtests")
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()
    fee_bps = models.DecimalField(max_digits=8, decimal_places=3, default=Decimal("5"))
    slippage_bps = models.DecimalField(max_digits=8, decimal_places=3, default=Decimal("0"))
    cash = models.DecimalField(**MONEY, default=Decimal("10000000"))
    settings = models.JSONField(
        default=dict, blank=True, help_text="Risk and sizing settings the run used."
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    progress = models.FloatField(default=0.0, help_text="0..1")
    stage = models.CharField(
        max_length=40, blank=True, default="", help_text="What the run is doing now."
    )
    stats = models.JSONField(default=dict, blank=True)
    trades = models.JSONField(default=list, blank=True)
    equity = models.JSONField(default=list, blank=True, help_text="[[time ms, equity], ...]")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="backtest_range"),
            models.CheckConstraint(
                condition=Q(fee_bps__gte=0) & Q(slippage_bps__gte=0), name="backtest_costs"
            ),
            models.CheckConstraint(condition=Q(cash__gt=0), name="backtest_cash_positive"),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="backtest_progress"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} on {self.symbol} {self.timeframe} ({self.status})"


class OptimizationRun(models.Model):
    """One optimizer run for a config: its settings, progress, outcome and summary.

    The trials live in :class:`OptimizationTrial` rows, written after each batch, so a run that
    a worker restart interrupted resumes from them. Scores are in the units of ``objective``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        PARAMS = "params", "Strategy parameters"
        ENSEMBLE_WEIGHTS = "ensemble_weights", "Ensemble weights"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        PROPOSED = "proposed", "Proposed"
        APPLIED = "applied", "Applied"
        NOTHING_FEASIBLE = "nothing_feasible", "Nothing feasible"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULE = "schedule", "Nightly schedule"
        COMMAND = "command", "Command line"

    config = models.ForeignKey(
        StrategyConfig, on_delete=models.CASCADE, related_name="optimization_runs"
    )
    strategy = models.CharField(max_length=40)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PARAMS)
    method = models.CharField(max_length=8, default="auto", help_text="auto, grid, random or tpe")
    objective = models.CharField(max_length=24, default="sharpe")
    space = models.JSONField(
        default=dict,
        blank=True,
        help_text='Ranges per parameter: a list of values, or {"min": a, "max": b, "step": s}. '
        "Empty: the strategy's declared grid.",
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="folds, in_sample_ratio, min_trades, max_drawdown, days, margin, workers.",
    )
    seed = models.BigIntegerField(default=0)
    trials_requested = models.PositiveIntegerField(default=100)
    start = models.DateTimeField(help_text="First candle's open time considered.")
    end = models.DateTimeField(help_text="Candles open before this time.")
    baseline_params = models.JSONField(
        default=dict, blank=True, help_text="The config's parameters when the run started."
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    progress = models.FloatField(default=0.0, help_text="0..1")
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.NONE, blank=True
    )
    best_params = models.JSONField(null=True, blank=True)
    in_sample_score = models.FloatField(null=True, blank=True)
    out_of_sample_score = models.FloatField(null=True, blank=True)
    baseline_out_of_sample_score = models.FloatField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="Windows, folds and scores.")
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.MANUAL)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="optimization_runs",
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")), name="optimization_range"
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="optimization_progress"
            ),
        ]

    def __str__(self) -> str:
        return f"optimize {self.config} #{self.pk} ({self.status})"


class OptimizationTrial(models.Model):
    """One parameter set scored on one walk-forward window's in-sample range."""

    run = models.ForeignKey(OptimizationRun, on_delete=models.CASCADE, related_name="trials")
    window = models.PositiveSmallIntegerField()
    number = models.PositiveIntegerField()
    params = models.JSONField(default=dict)
    score = models.FloatField(null=True, blank=True)
    feasible = models.BooleanField(default=False)
    reason = models.CharField(max_length=255, blank=True, default="")
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "window", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "window", "number"], name="optimization_trial_unique"
            )
        ]

    def __str__(self) -> str:
        return f"trial {self.number} (window {self.window}) of run {self.run_id}"


class ParamVersion(models.Model):
    """A parameter set applied to a config. The newest version is the config's current one;
    rollback applies an older version's exact parameters as a new version."""

    class Source(models.TextChoices):
        INITIAL = "initial", "Parameters before the first change"
        MANUAL = "manual", "Applied by hand"
        OPTIMIZER = "optimizer", "Optimizer result applied by hand"
        AUTO = "auto", "Optimizer result applied automatically"
        ROLLBACK = "rollback", "Rollback"

    config = models.ForeignKey(
        StrategyConfig, on_delete=models.CASCADE, related_name="param_versions"
    )
    number = models.PositiveIntegerField()
    params = models.JSONField(default=dict)
    source = models.CharField(max_length=12, choices=Source.choices)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="param_versions",
    )
    run = models.ForeignKey(
        OptimizationRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="versions",
        help_text="The optimizer run that produced these parameters.",
    )
    restored_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="restorations"
    )
    in_sample_score = models.FloatField(null=True, blank=True)
    out_of_sample_score = models.FloatField(null=True, blank=True)
    objective = models.CharField(max_length=24, blank=True, default="")
    note = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["config", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["config", "number"], name="param_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.config} v{self.number}"
