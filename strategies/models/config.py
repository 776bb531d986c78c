"""Per-user strategy configurations: one strategy with its parameters on one symbol, trading one
account, with the user's risk and sizing settings."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from markets.models import Account, Symbol, Timeframe
from strategies import registry, sizing
from strategies.params import ParamError

PCT = {"max_digits": 8, "decimal_places": 4}
MONEY = {"max_digits": 30, "decimal_places": 12}
MAX_LEVERAGE = 125


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
