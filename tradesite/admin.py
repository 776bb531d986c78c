"""Admin for StrategyConfig. It lives here, in the app that composes the others, because its
"stop trading" action reaches into ``orders`` (the kill switch), which ``strategies`` must not
import.
"""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from markets.admin_ownership import OwnedAdminMixin
from orders.killswitch import NothingSelected, stop_trading
from strategies import registry, sizing
from strategies.models import StrategyConfig

NIGHTLY_TASK = "strategies.tasks.optimize_scheduled"


def _bound(value) -> str:
    return "" if value is None else str(value)


def _declared(params_cls) -> str:
    """``name=default [min..max] {choices}`` for each declared parameter of ``params_cls``."""
    return ", ".join(
        f"{p['name']}={p['default']}"
        + (f" [{_bound(p['min'])}..{_bound(p['max'])}]"
           if p["min"] is not None or p["max"] is not None else "")
        + (f" {{{'|'.join(map(str, p['choices']))}}}" if p["choices"] else "")
        for p in params_cls.describe()
    ) or "no parameters"


def _when(job) -> str:
    """A periodic task's schedule in words where it is a daily time, else as beat states it."""
    cron = job.crontab
    if cron is None:
        return str(job.interval or job.clocked or job.solar)
    if (cron.minute.isdigit() and cron.hour.isdigit()
            and cron.day_of_week == cron.day_of_month == cron.month_of_year == "*"):
        return f"every day at {int(cron.hour):02d}:{int(cron.minute):02d} ({cron.timezone})"
    return str(cron)


def _reference_table(rows) -> str:
    return format_html("<table><tbody>{}</tbody></table>",
                       format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))


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
    readonly_fields = ["parameter_reference", "sizing_reference", "nightly_optimizer",
                       "created_at", "updated_at"]
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
                "starting equity (2.5 = 2.5%), not of the margin: at 10x leverage a 0.11 "
                "stop-loss closes on a 0.11% price move, which loses 1.1% of the margin. "
                "Leave empty to switch a rule off.",
            },
        ),
        (
            "Sizing",
            {
                "fields": ["sizing_method", "sizing_params", "sizing_reference"],
                "description": "Sizing parameters as JSON, only what differs from the "
                "method's defaults, e.g. {\"win_rate\": 0.55, \"payoff\": 1.5} for Kelly. "
                "An add (a strategy's pyramiding) is sized like an entry, times its units.",
            },
        ),
        (
            "Optimizer",
            {
                "fields": ["auto_apply_optimized", "nightly_optimizer"],
                "description": "With auto apply on, the config is re-optimized by the nightly "
                "job (an ensemble: its six weights and threshold) and takes the result when "
                "it beats the current parameters out of sample.",
            },
        ),
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
        rows = [(f"{name} (your own)" if registry.is_user(name) else name,
                 _declared(registry.get(name).Params)) for name in registry.names()]
        rows += [(f"not loaded: {failure.source}", failure.error)
                 for failure in registry.failures()]
        return _reference_table(rows) if rows else "No strategies are registered."

    def _warn_failed_strategies(self, request) -> None:
        """Each user strategy module that did not load, named with its error, on the list
        and the form (the other strategies load and trade as usual)."""
        for failure in registry.failures():
            self.message_user(request, f"Strategy module not loaded: {failure}",
                              level=messages.WARNING)

    def changelist_view(self, request, extra_context=None):
        self._warn_failed_strategies(request)
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "GET":
            self._warn_failed_strategies(request)
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description="Sizing methods")
    def sizing_reference(self, obj):
        return _reference_table(
            (f"{name}: {cls.__doc__.split(chr(10))[0].replace('``', '')}", _declared(cls))
            for name, cls in sizing.METHODS.items()
        )

    @admin.display(description="Nightly optimizer")
    def nightly_optimizer(self, obj):
        """When the nightly job runs (django-celery-beat's periodic task, which traders cannot
        open), so a trader opting in knows when to expect a new version."""
        from django_celery_beat.models import PeriodicTask

        jobs = PeriodicTask.objects.filter(task=NIGHTLY_TASK, enabled=True).select_related(
            "crontab", "interval", "clocked", "solar")
        described = [f"{job.name}: {_when(job)}" for job in jobs]
        if not described:
            return ("No nightly optimizer job is enabled: opted-in configs are not re-optimized "
                    "until an administrator enables one (Periodic tasks, "
                    f"{NIGHTLY_TASK}).")
        return "; ".join(described)

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
