"""Per-user strategy configurations, the signals they produce, and stored backtests."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from markets.models import Account, Symbol, Timeframe
from strategies import registry, sizing
from strategies.base import ACTION_NAMES
from strategies.params import ParamError

PCT = {"max_digits": 8, "decimal_places": 4}
MONEY = {"max_digits": 30, "decimal_places": 12}
MAX_LEVERAGE = 125


class Action(models.TextChoices):
    ENTER_LONG = "enter_long", "Enter long"
    EXIT_LONG = "exit_long", "Exit long"
    ENTER_SHORT = "enter_short", "Enter short"
    EXIT_SHORT = "exit_short", "Exit short"
    ADD_LONG = "add_long", "Add to long"
    ADD_SHORT = "add_short", "Add to short"


assert set(Action.values) >= set(ACTION_NAMES.values()) - {"hold"}


class SizingMethod(models.TextChoices):
    FIXED_QUOTE = sizing.FIXED_QUOTE, "Fixed quote amount"
    FRACTION = sizing.FRACTION, "Fraction of equity"
    ATR_UNIT = sizing.ATR_UNIT, "ATR unit (turtle)"
    KELLY = sizing.KELLY, "Kelly"


def strategy_choices():
    return registry.choices()


#: The config's risk percentages: each blank (none) or more than 0.
RISK_PCT_FIELDS = (
    "stop_loss_pct",
    "take_profit_pct",
    "trailing_stop_pct",
    "daily_target_pct",
    "daily_max_loss_pct",
)


def _positive_pct(name: str) -> Q:
    return Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gt": 0})


class StrategyConfigQuerySet(models.QuerySet):
    def owned_by(self, user):
        """What ``user`` may manage in the admin: a superuser every config."""
        return self if user.is_superuser else self.filter(owner=user)

    def own(self, user):
        """``user``'s own configs, a superuser's too: what the trading pages and API show."""
        return self.filter(owner=user)

    def active(self):
        return self.filter(is_active=True)


class StrategyConfig(models.Model):
    """One strategy with its parameters on one symbol and timeframe, trading one account,
    with the user's risk settings. Percentages are percent (2.5 = 2.5%)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="strategy_configs"
    )
    name = models.CharField(max_length=80)
    strategy = models.CharField(max_length=40, choices=strategy_choices)
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="Strategy parameters as JSON; missing ones take the strategy's defaults.",
    )
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="strategy_configs")
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices, default=Timeframe.M1)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="strategy_configs")
    is_active = models.BooleanField(default=False)

    leverage = models.PositiveSmallIntegerField(
        default=1,
        validators=[
            MinValueValidator(1, "Leverage is at least 1x (1x means no leverage)."),
            MaxValueValidator(
                MAX_LEVERAGE, f"Leverage can be at most {MAX_LEVERAGE}x, the most any venue allows."
            ),
        ],
        help_text="1 for spot; up to the venue's maximum for futures.",
    )
    stop_loss_pct = models.DecimalField(
        **PCT, null=True, blank=True, help_text="Close when price moves this % against entry."
    )
    take_profit_pct = models.DecimalField(
        **PCT, null=True, blank=True, help_text="Close when price moves this % in favour."
    )
    trailing_stop_pct = models.DecimalField(
        **PCT, null=True, blank=True, help_text="Close after this % retreat from the best price."
    )
    daily_target_pct = models.DecimalField(
        **PCT, null=True, blank=True, help_text="No new entries today once equity is up this %."
    )
    daily_max_loss_pct = models.DecimalField(
        **PCT, null=True, blank=True, help_text="No new entries today once equity is down this %."
    )
    sizing_method = models.CharField(
        max_length=16, choices=SizingMethod.choices, default=SizingMethod.FRACTION
    )
    sizing_params = models.JSONField(
        default=dict, blank=True, help_text="Parameters of the sizing method as JSON."
    )
    auto_apply_optimized = models.BooleanField(
        default=False, help_text="Apply optimizer results automatically when they beat the margin."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StrategyConfigQuerySet.as_manager()

    class Meta:
        ordering = ["owner_id", "name"]
        verbose_name = "strategy config"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="config_unique_name"),
            models.CheckConstraint(
                condition=Q(leverage__gte=1) & Q(leverage__lte=MAX_LEVERAGE),
                name="config_leverage_range",
            ),
            *[
                models.CheckConstraint(
                    condition=_positive_pct(field), name=f"config_{field}_positive"
                )
                for field in RISK_PCT_FIELDS
            ],
            models.CheckConstraint(
                condition=Q(timeframe__in=Timeframe.values), name="config_timeframe_known"
            ),
        ]
        indexes = [models.Index(fields=["symbol", "timeframe", "is_active"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if (
            self.owner_id
            and self.name
            and StrategyConfig.objects.filter(owner_id=self.owner_id, name=self.name)
            .exclude(pk=self.pk)
            .exists()
        ):
            errors["name"] = ["You already have a strategy config with this name."]
        if self.strategy:
            try:
                self.params = registry.validate_params(self.strategy, self.effective_params())
            except ParamError as exc:
                field = "strategy" if str(exc).startswith("unknown strategy") else "params"
                errors.setdefault(field, []).append(str(exc))
            else:
                if self.params.get("shorts") is True and self._on_spot():
                    errors.setdefault("params", []).append(
                        f"shorts: {self.symbol} is a spot symbol and a spot symbol cannot be "
                        "shorted; set \"shorts\": false (or leave it out) or pick a perpetual "
                        "symbol."
                    )
        try:
            self.sizing_params = sizing.validate(self.sizing_method, self.sizing_params).to_dict()
        except ParamError as exc:
            errors.setdefault("sizing_params", []).append(str(exc))
        for field in RISK_PCT_FIELDS:
            value = getattr(self, field)
            if value is not None and value <= 0:
                label = self._meta.get_field(field).verbose_name
                errors.setdefault(field, []).append(
                    f"{label.capitalize()} must be more than 0 %, or blank for none; got {value}."
                )
        if self.account_id and self.symbol_id:
            if self.account.exchange_id != self.symbol.exchange_id:
                errors.setdefault("account", []).append(
                    f"This account trades on {self.account.exchange}, but the symbol is on "
                    f"{self.symbol.exchange}."
                )
            if self.symbol.quote != self.account.quote_asset:
                errors.setdefault("account", []).append(
                    f"{self.symbol} is quoted in {self.symbol.quote}, but account "
                    f"{self.account.label} measures equity in {self.account.quote_asset}; pick "
                    f"an account whose quote asset is {self.symbol.quote}."
                )
            if self.leverage and self.leverage > self.symbol.max_leverage:
                errors.setdefault("leverage", []).append(
                    f"{self.symbol} allows leverage up to {self.symbol.max_leverage}x; "
                    f"got {self.leverage}x."
                )
        if errors:
            raise ValidationError(errors)

    def _on_spot(self) -> bool:
        return bool(self.symbol_id) and self.symbol.market_type == Symbol.MarketType.SPOT

    def effective_params(self) -> dict:
        """The stored parameters, with ``shorts`` off on a spot symbol unless they say it
        (a spot position cannot be short, so the strategy's default of shorts on would only
        produce ignored signals)."""
        params = dict(self.params or {}) if isinstance(self.params, dict) else self.params
        if (
            isinstance(params, dict)
            and "shorts" not in params
            and self._on_spot()
            and self.strategy
            and "shorts" in registry.get(self.strategy).Params.names()
        ):
            params["shorts"] = False
        return params

    def build_strategy(self):
        return registry.build(self.strategy, self.effective_params())

    def sizing(self):
        return sizing.validate(self.sizing_method, self.sizing_params)


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


# ---------------------------------------------------------------------------- optimizer


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
