from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from alerts import events, rule_changes
        from alerts.models import AlertRule
        from markets import stream_hooks as hooks
        from orders import push

        # Every private event a user is sent (order, fill, position, account) is offered to
        # the alert rules while its transaction is still open: the notification rows commit
        # with the event, or not at all.
        push.add_listener(events.on_private_event)
        post_save.connect(events.invalidate, sender=AlertRule, dispatch_uid="alerts-index")
        post_delete.connect(events.invalidate, sender=AlertRule, dispatch_uid="alerts-index-del")
        # Market rules are evaluated in the stream process (markets never imports alerts: the
        # stream calls the watchers registered here); a rule change reloads them there.
        hooks.register("alerts", rule_changes.make_watch)
        post_save.connect(rule_changes.bump, sender=AlertRule, dispatch_uid="alerts-watch")
        post_delete.connect(rule_changes.bump, sender=AlertRule, dispatch_uid="alerts-watch-del")
