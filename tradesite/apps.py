from django.apps import AppConfig


class TradesiteConfig(AppConfig):
    name = "tradesite"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from tradesite.sessions import close_sockets_of_session

        user_logged_out.connect(close_sockets_of_session, dispatch_uid="tradesite-logout-sockets")

        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from tradesite.sessions import check_sockets_of_user

        post_save.connect(check_sockets_of_user, sender=get_user_model(),
                          dispatch_uid="tradesite-user-sockets")

        from alerts import health as alert_health
        from tradesite.health import system_checks

        # The system-health alert rules read /health's own checks (alerts may not import us).
        alert_health.set_system_checks(system_checks)
