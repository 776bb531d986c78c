from django.contrib import admin

from markets.admin import CappedCountPaginator
from markets.admin_ownership import OwnedAdminMixin, ReadOnlyAdminMixin
from orders.models import EquitySnapshot, Fill, Order, Position


class FillInline(admin.TabularInline):
    model = Fill
    extra = 0
    can_delete = False
    fields = ["ts", "trade_id", "price", "quantity", "fee", "fee_asset", "is_maker"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(OwnedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    owner_path = "account__owner"
    list_display = [
        "created_at",
        "account",
        "symbol",
        "side",
        "type",
        "price",
        "quantity",
        "status",
        "filled_quantity",
        "average_price",
        "reason",
        "reject_reason",
        "config",
    ]
    # Which config placed an order; the choices are only configs of the orders listed (the
    # trader's own), never another user's config names.
    list_filter = ["status", "side", "type", "account__mode", "account__owner",
                   ("config", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["account__exchange", "symbol__exchange", "config"]
    search_fields = ["client_order_id", "exchange_order_id", "symbol__code"]
    inlines = [FillInline]
    date_hierarchy = "created_at"


@admin.register(Fill)
class FillAdmin(OwnedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    owner_path = "order__account__owner"
    list_display = ["ts", "order", "price", "quantity", "fee", "fee_asset", "is_maker"]
    list_select_related = ["order"]
    list_filter = ["is_maker", "order__account__owner"]


@admin.register(Position)
class PositionAdmin(OwnedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    owner_path = "account__owner"
    list_display = [
        "opened_at",
        "account",
        "config",
        "symbol",
        "side",
        "quantity",
        "entry_price",
        "leverage",
        "stop_price",
        "target_price",
        "liquidation_price",
        "realized_pnl",
        "closed_at",
        "close_reason",
        "config",
    ]
    list_filter = [
        "side",
        "account__mode",
        ("closed_at", admin.EmptyFieldListFilter),
        "account__owner",
        ("config", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["account__exchange", "symbol__exchange", "config"]


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(OwnedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    owner_path = "account__owner"
    list_display = ["ts", "account", "equity", "cash"]
    list_filter = ["account__owner"]
    list_select_related = ["account__exchange"]
    # A snapshot a minute per account: 525,600 rows a year each. The unique (account, ts) index
    # read backwards gives each account's newest first; "newest first over all accounts" and
    # counting every row sorted and counted them all on every page.
    ordering = ["-account_id", "-ts"]
    paginator = CappedCountPaginator
    show_full_result_count = False
