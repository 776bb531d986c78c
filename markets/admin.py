import re

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from markets.admin_ownership import OwnedAdminMixin, ReadOnlyAdminMixin, SharedAdminMixin
from markets.fields import UNREADABLE
from markets.models import (
    SQLITE_MONEY_WARNING,
    Account,
    Balance,
    Candle,
    Exchange,
    PendingRange,
    Symbol,
    money_is_approximate,
)


class SuperuserEditsMixin:
    """Venues and symbols are shared market data: staff with permission view, superusers edit."""

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser or (
            obj is None and super().has_change_permission(request, obj)
        )

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Exchange)
class ExchangeAdmin(SharedAdminMixin, SuperuserEditsMixin, admin.ModelAdmin):
    list_display = ["slug", "name", "adapter", "rest_url", "ws_url", "is_active",
                    "follow_all_symbols", "follow_quotes", "stream_status"]
    list_filter = ["adapter", "is_active", "follow_all_symbols"]
    search_fields = ["slug", "name"]

    @admin.display(description="stream")
    def stream_status(self, obj):
        from markets import heartbeat  # redis: only for this column, not at django.setup()
        from markets.stream.shards import venue_beats

        try:
            fields = venue_beats(heartbeat.read("stream")).get(obj.slug)
        except Exception:
            return "Redis unreachable"
        if not fields:
            return "not streaming"
        age = heartbeat.age_seconds(fields)
        detail = ", ".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}"
                           for k, v in fields.items() if k != "ts_ms")
        return f"last message {age:.0f}s ago" + (f" ({detail})" if detail else "")


@admin.register(Symbol)
class SymbolAdmin(SharedAdminMixin, SuperuserEditsMixin, admin.ModelAdmin):
    list_display = [
        "code",
        "exchange",
        "market_type",
        "base",
        "quote",
        "tick_size",
        "step_size",
        "min_notional",
        "max_leverage",
        "is_active",
    ]
    list_editable = ["is_active"]
    list_filter = ["exchange", "market_type", "is_active", "quote"]
    list_select_related = ["exchange"]
    search_fields = ["code", "base", "quote"]


class CappedCountPaginator(Paginator):
    """Counts at most :attr:`CAP` + 1 rows (a ``LIMIT`` inside the ``COUNT``): the admin's
    list of hundreds of millions of candles counted them all on every page (500 symbols × a
    year of 1m: minutes). Past the cap the list pages through the first :attr:`CAP` rows;
    a filter or a search narrows it."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP + 1].count()


@admin.register(Candle)
class CandleAdmin(SharedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["symbol", "timeframe", "open_time", "open", "high", "low", "close", "volume"]
    list_filter = ["timeframe", "symbol__exchange"]
    list_select_related = ["symbol__exchange"]
    search_fields = ["symbol__code"]
    # The unique (symbol, timeframe, open_time) index read backwards: newest first within each
    # series. "Newest first over all symbols" had no index to read and sorted the whole table.
    ordering = ["-symbol_id", "-timeframe", "-open_time"]
    paginator = CappedCountPaginator
    show_full_result_count = False  # COUNT(*) over millions of candles is slow

    def get_search_results(self, request, queryset, search_term):
        """The symbols whose code holds the term first (a small table), then their candles by
        ``symbol_id IN (...)`` on the series index. Django's own search joined the symbol to
        every candle and tested its code row by row: 42 s at 500 symbols × a year."""
        term = search_term.strip()
        if not term:
            return queryset, False
        ids = list(Symbol.objects.filter(code__icontains=term)
                   .values_list("pk", flat=True)[: self.SEARCH_MAX_SYMBOLS])
        return queryset.filter(symbol_id__in=ids), False

    #: A search matching more symbols lists the candles of the first this many.
    SEARCH_MAX_SYMBOLS = 100


@admin.register(PendingRange)
class PendingRangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Unfinished candle ranges stopped jobs left; collect_candles fills them."""

    list_display = ["symbol", "timeframe", "start", "end", "source", "lease_until", "note"]
    list_filter = ["timeframe", "source", "symbol__exchange"]
    list_select_related = ["symbol__exchange"]


class BalanceForm(forms.ModelForm):
    """A balance a trader types in: the asset as the venues spell it (upper case), amounts 0 or
    more, each refusal naming the field in words rather than the database constraint."""

    class Meta:
        model = Balance
        fields = ["asset", "free", "locked"]

    def clean_asset(self):
        asset = (self.cleaned_data.get("asset") or "").strip().upper()
        if not re.fullmatch(r"[A-Z0-9]{1,16}", asset):
            raise forms.ValidationError(
                f"Asset must be a currency code of letters and digits, like KRW or USDT; got "
                f"{asset!r}.")
        return asset

    def _amount(self, name: str, label: str):
        value = self.cleaned_data.get(name)
        if value is not None and value < 0:
            raise forms.ValidationError(f"{label} must be 0 or more; got {value}.")
        return value

    def clean_free(self):
        return self._amount("free", "Free")

    def clean_locked(self):
        return self._amount("locked", "Locked")


class BalanceInline(admin.TabularInline):
    model = Balance
    form = BalanceForm
    extra = 0
    fields = ["asset", "free", "locked", "updated_at"]
    readonly_fields = ["updated_at"]


def quote_asset_choices(current: str = "") -> list[tuple[str, str]]:
    """Every quote asset of the active venues' active symbols, each labelled with the venues
    that trade in it (the model's clean checks it against the chosen venue)."""
    venues: dict[str, list[str]] = {}
    rows = (
        Symbol.objects.active().values_list("quote", "exchange__name").distinct()
        .order_by("quote", "exchange__name")
    )
    for quote, venue in rows:
        venues.setdefault(quote, []).append(venue)
    if current and current not in venues:
        venues[current] = ["no active venue"]
    return [("", "— the venue's main quote —")] + [
        (quote, f"{quote} ({', '.join(names)})") for quote, names in sorted(venues.items())
    ]


class AccountForm(forms.ModelForm):
    """API credentials are write-only: typed in, stored encrypted, never rendered back."""

    new_api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave blank to keep the stored key.",
    )
    new_api_secret = forms.CharField(
        label="API secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave blank to keep the stored secret.",
    )
    clear_keys = forms.BooleanField(
        label="Remove stored keys",
        required=False,
        help_text="Forget the key and secret (the account can then only paper trade).",
    )

    quote_asset = forms.ChoiceField(
        label="Quote asset",
        required=False,
        help_text="Currency the account measures equity in; every symbol it trades must be "
        "quoted in it. Blank: the venue's main quote (KRW at Upbit and Bithumb, USDT at Binance).",
    )

    class Meta:
        model = Account
        exclude = ["api_key", "api_secret"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["quote_asset"].choices = quote_asset_choices(self.instance.quote_asset)

    def clean(self):
        cleaned = super().clean()
        key, secret = cleaned.get("new_api_key"), cleaned.get("new_api_secret")
        if bool(key) != bool(secret) and not (self.instance.pk and self.instance.has_keys):
            state = self.instance.credentials_state if self.instance.pk else None
            if state == Account.CREDENTIALS_UNREADABLE:
                raise forms.ValidationError(
                    "The stored credentials are unreadable: enter both the API key and the "
                    "API secret again."
                )
            raise forms.ValidationError("Enter both the API key and the API secret.")
        if cleaned.get("clear_keys"):
            self.instance.api_key = self.instance.api_secret = ""
        if key:
            self.instance.api_key = key
        if secret:
            self.instance.api_secret = secret
        return cleaned


@admin.register(Account)
class AccountAdmin(OwnedAdminMixin, admin.ModelAdmin):
    form = AccountForm
    list_display = [
        "label", "owner", "exchange", "quote_asset", "mode", "keys_status", "halted",
        "halted_reason",
    ]
    list_filter = ["mode", "halted", "exchange", "owner"]
    list_select_related = ["exchange", "owner"]
    search_fields = ["label"]
    inlines = [BalanceInline]
    readonly_fields = ["keys_status", "halted_at", "venue_confirmed_at", "created_at",
                       "updated_at"]
    actions = ["halt_accounts", "resume_accounts"]
    fieldsets = [
        (None, {"fields": ["owner", "label", "exchange", "quote_asset", "mode"]}),
        (
            "API credentials (write-only, encrypted at rest)",
            {"fields": ["keys_status", "new_api_key", "new_api_secret", "clear_keys"]},
        ),
        ("Kill switch", {"fields": ["halted", "halted_reason", "halted_at"]}),
        ("Record", {"fields": ["venue_confirmed_at", "created_at", "updated_at"],
                    "classes": ["collapse"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f != "owner"]})
            for name, opts in fieldsets
        ]

    @admin.display(description="API keys")
    def keys_status(self, obj):
        if obj is None or not obj.pk:
            return "none"
        state = obj.credentials_state
        if state == Account.CREDENTIALS_UNREADABLE:
            return format_html('<strong class="errornote">{}</strong>', UNREADABLE)
        return format_html("<span>{}</span>", "stored (hidden)" if state == "stored" else "none")

    def save_model(self, request, obj, form, change):
        if obj.halted and obj.halted_at is None:
            obj.halted_at = timezone.now()
        if not obj.halted:
            obj.halted_at = None
        super().save_model(request, obj, form, change)
        if obj.mode == Account.Mode.LIVE and money_is_approximate(connection):
            self.message_user(request, SQLITE_MONEY_WARNING, messages.WARNING)

    @admin.action(description="Halt selected accounts (kill switch)")
    def halt_accounts(self, request, queryset):
        count = queryset.update(
            halted=True, halted_at=timezone.now(), halted_reason=f"halted by {request.user}"
        )
        self.message_user(request, f"Halted {count} account(s).", messages.WARNING)

    @admin.action(description="Resume selected accounts")
    def resume_accounts(self, request, queryset):
        count = queryset.update(halted=False, halted_at=None, halted_reason="")
        self.message_user(request, f"Resumed {count} account(s).")
