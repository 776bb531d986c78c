"""Admin for StrategyConfig. It lives here, in the app that composes the others, because its
"stop trading" action reaches into ``orders`` (the kill switch), which ``strategies`` must not
import.
"""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from markets.admin_ownership import OwnedAdminMixin
from orders.killswitch import NothingSelected, stop_trading
from strategies import registry
from strategies.models import StrategyConfig


@admin.register(StrategyConfig)
class StrategyConfigAdmin(OwnedAdminMixin, admin.ModelAdmin):
    owned_foreign_keys = {"account": "owner"}
    list_display = [
        "name",
        "owner",
        "strategy",
        "symbol",
        "timeframe",
        "account",
        "mode",
        "is_active",
        "leverage",
        "stop_loss_pct",
        "take_profit_pct",
    ]
    list_editable = ["is_active", "leverage", "stop_loss_pct", "take_profit_pct"]
    list_filter = ["owner", "strategy", "symbol", "account__mode", "is_active", "timeframe"]
    list_select_related = ["owner", "symbol__exchange", "account__exchange"]
    search_fields = ["name", "symbol__code"]
    readonly_fields = ["parameter_reference", "created_at", "updated_at"]
    actions = ["activate", "deactivate", "stop_trading_action"]
    fieldsets = [
        (
            "Strategy",
            {
                "fields": [
                    "owner",
                    "name",
                    "strategy",
                    "params",
                    "parameter_reference",
                    "symbol",
                    "timeframe",
                    "account",
                    "is_active",
                ],
                "description": "The symbol must be quoted in the account's quote asset. On a "
                "spot symbol shorts are off: a strategy's \"shorts\" parameter defaults to "
                "false there, and \"shorts\": true is refused (a spot symbol cannot be "
                "shorted); on a perpetual it keeps the strategy's default.",
            },
        ),
        (
            "Risk",
            {
                "fields": [
                    "leverage",
                    "stop_loss_pct",
                    "take_profit_pct",
                    "trailing_stop_pct",
                    "daily_target_pct",
                    "daily_max_loss_pct",
                ],
                "description": "Percentages are percent of the entry price or of the day's "
                "starting equity (2.5 = 2.5%). Leave empty to switch a rule off.",
            },
        ),
        ("Sizing", {"fields": ["sizing_method", "sizing_params"]}),
        ("Optimizer", {"fields": ["auto_apply_optimized"], "classes": ["collapse"]}),
        ("Record", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f != "owner"]})
            for name, opts in fieldsets
        ]

    @admin.display(description="mode", ordering="account__mode")
    def mode(self, obj):
        return obj.account.get_mode_display()

    @admin.display(description="Declared parameters")
    def parameter_reference(self, obj):
        rows = []
        for name in registry.names():
            described = registry.get(name).Params.describe()
            params = (
                ", ".join(
                    f"{p['name']}={p['default']}"
                    + (
                        f" [{p['min']}..{p['max']}]"
                        if p["min"] is not None or p["max"] is not None
                        else ""
                    )
                    + (f" {{{'|'.join(map(str, p['choices']))}}}" if p["choices"] else "")
                    for p in described
                )
                or "no parameters"
            )
            rows.append((name, params))
        if not rows:
            return "No strategies are registered."
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

    @admin.action(description="Activate selected configs")
    def activate(self, request, queryset):
        count = queryset.update(is_active=True)
        self.message_user(request, f"Activated {count} config(s).")

    @admin.action(description="Deactivate selected configs")
    def deactivate(self, request, queryset):
        count = queryset.update(is_active=False)
        self.message_user(request, f"Deactivated {count} config(s).")

    @admin.action(
        description="Stop selected configs (deactivate, cancel their open orders)"
    )
    def stop_trading_action(self, request, queryset):
        user = None if request.user.is_superuser else request.user
        try:
            result = stop_trading(
                user=user,
                configs=list(queryset.values_list("pk", flat=True)),
                reason=f"admin: configs stopped by {request.user}",
            )
        except NothingSelected as exc:
            self.message_user(request, str(exc).capitalize() + ".", messages.ERROR)
            return
        self.message_user(request, result.summary().capitalize() + ".", messages.WARNING)
