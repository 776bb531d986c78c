from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "strategies"
    verbose_name = "Strategies"

    def ready(self) -> None:
        from django.conf import settings

        from strategies import registry

        # Where traders keep their own strategies; they load lazily, on the first lookup.
        registry.configure(paths=getattr(settings, "TRADESITE_STRATEGY_PATHS", ()))
