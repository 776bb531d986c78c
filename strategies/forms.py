"""The backtest request form: what a trader may ask ``strategies.services.run_backtest`` for.

Parameters arrive as JSON and are validated by the strategy's own ``Params`` (the messages of
``ParamError`` are shown on the field); dates are whole UTC days, ``end`` exclusive."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms

from markets import jsonlimits
from markets.models import Symbol
from markets.timeframes import TIMEFRAMES
from strategies import limits, registry
from strategies.models import BacktestRun, StrategyConfig
from strategies.optimizer import METHODS, OBJECTIVES
from strategies.params import ParamError

RISK_FIELDS = ("stop_loss_pct", "take_profit_pct", "trailing_stop_pct")


class BacktestForm(forms.Form):
    strategy = forms.ChoiceField(choices=())
    params = forms.CharField(
        label="Parameters (JSON)", required=False, initial="{}",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text='Only what differs from the defaults, e.g. {"short": 5}.',
    )
    symbol = forms.ModelChoiceField(queryset=Symbol.objects.none())
    timeframe = forms.ChoiceField(choices=[(tf, tf) for tf in TIMEFRAMES], initial="1h")
    start = forms.DateField(help_text="UTC, from 00:00",
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(help_text="UTC, up to 00:00 (excluded)",
                          widget=forms.DateInput(attrs={"type": "date"}))
    fee_bps = forms.DecimalField(label="Fee (bps)", min_value=0, max_value=500,
                                 initial=Decimal("5"), max_digits=8, decimal_places=3)
    slippage_bps = forms.DecimalField(label="Slippage (bps)", min_value=0, max_value=1000,
                                      initial=Decimal("0"), max_digits=8, decimal_places=3)
    cash = forms.DecimalField(min_value=Decimal("0.00000001"), initial=Decimal("10000000"),
                              max_digits=28, decimal_places=8)
    stop_loss_pct = forms.FloatField(label="Stop-loss %", required=False, min_value=0,
                                     max_value=100)
    take_profit_pct = forms.FloatField(label="Take-profit %", required=False, min_value=0,
                                       max_value=1000)
    trailing_stop_pct = forms.FloatField(label="Trailing stop %", required=False, min_value=0,
                                         max_value=100)

    def __init__(self, *args, owner=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner  # whose runs at once count (BACKTEST_MAX_RUNS_PER_USER)
        self.fields["strategy"].choices = registry.choices()
        self.fields["symbol"].queryset = (
            Symbol.objects.filter(is_active=True, exchange__is_active=True)
            .select_related("exchange").order_by("exchange__slug", "code")
        )

    def clean_params(self) -> dict:
        text = (self.cleaned_data.get("params") or "").strip() or "{}"
        try:
            return jsonlimits.loads_object(text, what="Parameters", example='{"short": 5}')
        except jsonlimits.JsonLimitError as exc:
            raise forms.ValidationError(f"{exc}.") from None

    def clean(self):
        data = super().clean()
        strategy, params = data.get("strategy"), data.get("params")
        if strategy and params is not None and "params" not in self.errors:
            try:
                data["params"] = registry.validate_params(strategy, params)
            except ParamError as exc:
                self.add_error("params", str(exc))
        start, end = data.get("start"), data.get("end")
        if start and end and end <= start:
            self.add_error("end", "End must be after start.")
        elif start and end:
            try:
                limits.check_backtest_span(_utc(start), _utc(end))
            except limits.LimitExceeded as exc:
                self.add_error("end", f"{str(exc)[0].upper()}{str(exc)[1:]}.")
        if not self.errors and data.get("symbol"):
            try:
                limits.check_backtest_range(data["symbol"], data["timeframe"], _utc(start),
                                            _utc(end))
                if self.owner is not None:
                    limits.check_backtest_runs(self.owner)
            except limits.LimitExceeded as exc:
                raise forms.ValidationError(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
        return data

    def create_run(self, owner) -> BacktestRun:
        """A pending run with this form's request (call after ``is_valid()``)."""
        data = self.cleaned_data
        risk = {k: data[k] for k in RISK_FIELDS if data.get(k)}
        return BacktestRun.objects.create(
            owner=owner, strategy=data["strategy"], params=data["params"],
            symbol=data["symbol"], timeframe=data["timeframe"],
            start=_utc(data["start"]), end=_utc(data["end"]), fee_bps=data["fee_bps"],
            slippage_bps=data["slippage_bps"], cash=data["cash"], settings={"risk": risk},
            status=BacktestRun.Status.PENDING,
        )


class OptimizerStartForm(forms.Form):
    """What the optimizer runs page may start: the user's own config, whole numbers, known
    objective and method. The limits (trials, days, runs at once) are checked by
    ``optimization.create_run``, the one place every entry point goes through."""

    config = forms.ModelChoiceField(queryset=StrategyConfig.objects.none())
    trials = forms.IntegerField(initial=100, required=False,
                                error_messages={"invalid": "Enter a whole number."})
    days = forms.IntegerField(initial=30, required=False,
                              error_messages={"invalid": "Enter a whole number."})
    objective = forms.ChoiceField(choices=[(o, o) for o in OBJECTIVES], initial="sharpe",
                                  required=False)
    method = forms.ChoiceField(choices=[(m, m) for m in METHODS], initial="auto",
                               required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["config"].queryset = StrategyConfig.objects.own(user)

    def clean(self):
        data = super().clean()
        for name in ("trials", "days", "objective", "method"):  # left out: the default
            if data.get(name) in (None, "") and name not in self.errors:
                data[name] = self.fields[name].initial
        return data

    def messages(self) -> list[str]:
        """Every error, each prefixed by its field's label."""
        out = []
        for name, errors in self.errors.items():
            field = self.fields.get(name)
            label = (field.label or name.replace("_", " ").capitalize()) if field else ""
            out.extend(f"{label}: {e}" if label else str(e) for e in errors)
        return out


class TopSymbolsForm(forms.Form):
    """The screener's "make the top N the peers of this config"."""

    config = forms.ModelChoiceField(queryset=StrategyConfig.objects.none())
    top_n = forms.IntegerField(label="Top N", min_value=1, max_value=100,
                               error_messages={"invalid": "Enter a whole number."})

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["config"].queryset = StrategyConfig.objects.own(user).select_related(
            "symbol__exchange"
        )

    messages = OptimizerStartForm.messages


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
