"""Rules, channels and notification history, each user's own (``OwnedAdminMixin``).

A channel's target (a webhook URL holds its token) is a write-only field stored through
``EncryptedTextField``: the admin shows only "stored (hidden)", never the value."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from alerts import delivery, targets
from alerts.forms import ChannelForm
from alerts.models import AlertRule, Channel, Notification
from markets.admin_ownership import OwnedAdminMixin, ReadOnlyAdminMixin
from markets.fields import UNREADABLE, Sealed


class AlertRuleAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "kind", "symbol", "cooldown_s", "is_active", "last_fired_at"]
    list_filter = ["kind", "is_active", "owner"]
    list_select_related = ["owner", "symbol__exchange"]
    search_fields = ["name"]
    readonly_fields = ["last_fired_at"]
    filter_horizontal = ["channels"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "channels" and not request.user.is_superuser:
            kwargs["queryset"] = Channel.objects.filter(owner=request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        rule = form.instance
        foreign = rule.channels.exclude(owner_id=rule.owner_id)
        if foreign.exists():  # a superuser editing someone's rule: only their own channels
            rule.channels.remove(*foreign)
            self.message_user(request, "Channels of another user were removed from the rule.",
                              messages.WARNING)


class ChannelAdmin(OwnedAdminMixin, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "owner", "kind", "target_status", "is_active", "failing",
                    "consecutive_failures"]
    list_filter = ["kind", "is_active", "failing", "owner"]
    list_select_related = ["owner"]
    search_fields = ["name"]
    readonly_fields = ["target_status", "failing", "failing_since", "consecutive_failures",
                       "last_error"]
    actions = ["send_test"]

    @admin.display(description="URL / address")
    def target_status(self, obj):
        value = getattr(obj, "target", "") if obj is not None else ""
        if not value:
            return "none"
        if isinstance(value, Sealed) and not value.readable:
            return format_html('<strong class="errornote">{}</strong>', UNREADABLE)
        return f"stored (hidden): {targets.hint(obj.kind, value)}"

    @admin.action(description="Send a test notification")
    def send_test(self, request, queryset):
        for channel in queryset:
            outcome = delivery.send_test(channel)
            if outcome.status == "sent":
                self.message_user(request, f"Test sent to {channel.name}.", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"Test to {channel.name} failed: {outcome.error or outcome.status}"
                    + (" (retried automatically)" if outcome.status == "retry" else ""),
                    messages.ERROR,
                )


class NotificationAdmin(OwnedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "owner", "title", "channel", "status", "attempts", "sent_at"]
    list_filter = ["status", "owner"]
    list_select_related = ["owner", "channel"]
    search_fields = ["title"]
    date_hierarchy = "created_at"
    fields = ["created_at", "rule", "channel", "title", "body", "status", "attempts",
              "next_attempt_at", "sent_at", "last_error", "dedupe_key"]


admin.site.register(AlertRule, AlertRuleAdmin)
admin.site.register(Channel, ChannelAdmin)
admin.site.register(Notification, NotificationAdmin)
