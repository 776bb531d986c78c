"""Forms for rules and channels, shared by the admin, the alerts page and the JSON API (one
validation layer). A channel's target is write-only: typed in, checked (``alerts.targets``),
stored encrypted, never rendered back."""

from __future__ import annotations

import json

from django import forms

from alerts import conditions, targets
from alerts.models import PARAMS_MAX_BYTES, AlertRule, Channel
from markets import jsonlimits
from markets.models import Symbol


class ChannelForm(forms.ModelForm):
    new_target = forms.CharField(
        label="URL / address",
        required=False,
        strip=True,
        max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Webhook: an apprise URL (discord://, slack://, json://...) or an http(s) URL "
        "that takes a JSON POST (public hosts only). E-mail: the address. Leave blank to keep "
        "the stored one. In-app needs none; Telegram needs none either (it sends to the chat you "
        "link at /alerts/telegram/link).",
    )

    class Meta:
        model = Channel
        exclude = ["target"]

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind and kind not in Channel.DELIVERABLE:
            raise forms.ValidationError(
                {"kind": f"{Channel.Kind(kind).label} channels are not available yet"}
            )
        new = cleaned.get("new_target")
        if kind == Channel.Kind.TELEGRAM and new:
            raise forms.ValidationError(
                {"new_target": "a Telegram channel takes no URL: it sends to the chat you link "
                               "at /alerts/telegram/link; leave this blank"}
            )
        if kind in (Channel.Kind.WEBHOOK, Channel.Kind.EMAIL) and (
                new or not self.instance.target or kind != self.instance.kind):
            try:
                new = targets.check(kind, new)
            except targets.TargetError as exc:
                raise forms.ValidationError({"new_target": str(exc)}) from None
        if new:
            self.instance.target = new
        elif kind in (Channel.Kind.IN_APP, Channel.Kind.TELEGRAM):
            self.instance.target = ""
        return cleaned


class OwnChannelForm(ChannelForm):
    """The page's and the API's channel form: the owner is the user, never a field."""

    class Meta:
        model = Channel
        fields = ["name", "kind", "is_active"]

    def __init__(self, *args, owner=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.owner = owner if owner is not None else self.instance.owner


class BoundedJSONField(forms.JSONField):
    """Rule parameters: parsed by the project's bounded JSON parser."""

    def to_python(self, value):
        if value in (None, ""):
            return {}
        if isinstance(value, dict):
            return value
        try:
            return jsonlimits.loads_object(str(value), what="the parameters",
                                           max_bytes=PARAMS_MAX_BYTES, max_depth=4)
        except jsonlimits.JsonLimitError as exc:
            raise forms.ValidationError(str(exc)) from None

    def prepare_value(self, value):
        return json.dumps(value if value is not None else {})


class SymbolField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.exchange.slug}:{obj.code}"

    def to_python(self, value):
        if isinstance(value, str) and ":" in value:  # "venue:CODE", as the API takes it
            venue, _, code = value.partition(":")
            found = self.queryset.filter(exchange__slug=venue, code=code).first()
            if found is None:
                raise forms.ValidationError(f"no active symbol {value!r}")
            return found
        return super().to_python(value)


class RuleForm(forms.ModelForm):
    params = BoundedJSONField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text=(conditions.__doc__ or "").split("\n\n")[1])
    symbol = SymbolField(queryset=Symbol.objects.none(), required=False)

    class Meta:
        model = AlertRule
        fields = ["name", "kind", "symbol", "params", "channels", "cooldown_s", "is_active"]

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.owner = owner
        self.fields["channels"].queryset = Channel.objects.filter(owner=owner)
        self.fields["channels"].required = False
        self.fields["symbol"].queryset = Symbol.objects.select_related("exchange").filter(
            is_active=True).order_by("exchange__slug", "code")
