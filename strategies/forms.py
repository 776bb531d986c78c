"""The backtest request form: what a trader may ask ``strategies.services.run_backtest`` for.

Parameters arrive as JSON and are validated by the strategy's own ``Params`` (the messages of
``ParamError`` are shown on the field); dates are whole UTC days, ``end`` exclusive."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from django import forms

from markets.models import Symbol
from markets.timeframes import TIMEFRAMES
from strategies import registry
from strategies.models import BacktestRun
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["strategy"].choices = registry.choices()
        self.fields["symbol"].queryset = (
            Symbol.objects.filter(is_active=True, exchange__is_active=True)
            .select_related("exchange").order_by("exchange__slug", "code")
        )

    def clean_params(self) -> dict:
        text = (self.cleaned_data.get("params") or "").strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Parameters are not valid JSON ({exc.msg} at line {exc.lineno}, "
                f"column {exc.colno})."
            ) from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Parameters must be a JSON object, e.g. {"short": 5}.')
        return value

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


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
