from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "markets"
    verbose_name = "Markets"

    def ready(self) -> None:
        from markets import symbol_changes  # noqa: F401  (connects the symbol-set change stamp)
