from django.contrib import admin

from markets.admin_ownership import OwnedAdminMixin, ReadOnlyAdminMixin
from strategies.models import BacktestRun, Signal


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
