from django.apps import AppConfig


class TradesiteConfig(AppConfig):
    name = "tradesite"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from tradesite.sessions import close_sockets_of_session

        user_logged_out.connect(close_sockets_of_session, dispatch_uid="tradesite-logout-sockets")
