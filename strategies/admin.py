from django.contrib import admin, messages

from markets.admin_ownership import OwnedAdminMixin, ReadOnlyAdminMixin, SharedAdminMixin
from strategies.models import (
    BacktestRun,
    OptimizationRun,
    OptimizationTrial,
    ParamVersion,
    Signal,
    SymbolScreen,
)


@admin.register(Signal)
class SignalAdmin(OwnedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    owner_path = "config__owner"
    list_display = ["bar_time", "config", "symbol", "timeframe", "action", "price", "score"]
    list_filter = ["action", "timeframe", "config__strategy", "config__owner"]
    list_select_related = ["config", "symbol__exchange"]
    search_fields = ["config__name", "symbol__code"]
    date_hierarchy = "bar_time"


@admin.register(BacktestRun)
class BacktestRunAdmin(OwnedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "owner",
        "strategy",
        "symbol",
        "timeframe",
        "start",
        "end",
        "status",
        "total_return",
    ]
    list_filter = ["status", "strategy", "timeframe", "owner"]
    list_select_related = ["symbol__exchange", "owner"]
    exclude = ["trades", "equity"]

    @admin.display(description="total return")
    def total_return(self, obj):
        value = (obj.stats or {}).get("total_return")
        return "—" if value is None else f"{value * 100:.2f}%"


def _score(value) -> str:
    return "—" if value is None else f"{value:.3f}"


class ScoreColumns:
    """The in-sample and out-of-sample score columns optimizer runs and versions share."""

    @admin.display(description="in-sample")
    def in_sample(self, obj):
        return _score(obj.in_sample_score)

    @admin.display(description="out-of-sample")
    def out_of_sample(self, obj):
        return _score(obj.out_of_sample_score)


class OptimizationTrialInline(admin.TabularInline):
    model = OptimizationTrial
    fields = ["window", "number", "params", "score", "feasible", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ["window", "-score"]


@admin.register(OptimizationRun)
class OptimizationRunAdmin(ScoreColumns, OwnedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    owner_path = "config__owner"
    list_display = [
        "created_at", "config", "kind", "method", "objective", "status", "progress_pct",
        "outcome", "in_sample", "out_of_sample", "current_out_of_sample",
    ]
    list_filter = ["status", "outcome", "kind", "trigger", "config__strategy"]
    list_select_related = ["config"]
    search_fields = ["config__name"]
    inlines = [OptimizationTrialInline]
    actions = ["apply_proposal"]

    @admin.display(description="progress")
    def progress_pct(self, obj):
        return f"{obj.progress * 100:.0f}%"

    @admin.display(description="current params out-of-sample")
    def current_out_of_sample(self, obj):
        return _score(obj.baseline_out_of_sample_score)

    @admin.action(description="Apply the proposed parameters to the config")
    def apply_proposal(self, request, queryset):
        # Imported in the actions, not at django.setup() (which imports every admin module).
        from strategies import optimization

        for run in queryset.select_related("config"):
            try:
                version = optimization.apply_run(run, by=request.user)
            except optimization.OptimizationError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{run.config}: applied as v{version.number}")


@admin.register(ParamVersion)
class ParamVersionAdmin(ScoreColumns, OwnedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    owner_path = "config__owner"
    list_display = [
        "config", "number", "source", "created_at", "applied_by", "run", "in_sample",
        "out_of_sample", "objective", "note",
    ]
    list_filter = ["source", "config__strategy"]
    list_select_related = ["config", "applied_by", "run"]
    search_fields = ["config__name"]
    actions = ["restore"]

    @admin.action(description="Roll back: restore these exact parameters as a new version")
    def restore(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to restore.", messages.ERROR)
            return
        version = queryset.select_related("config").get()
        from strategies import optimization

        new = optimization.rollback(version.config, to=version, by=request.user)
        self.message_user(request, f"{version.config}: v{version.number} restored as v{new.number}")


@admin.register(SymbolScreen)
class SymbolScreenAdmin(SharedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "symbol", "rank", "score", "atr_pct", "range_24h_pct", "traded_value_24h",
        "momentum_pct", "computed_at",
    ]
    list_filter = ["symbol__exchange"]
    list_select_related = ["symbol__exchange"]
