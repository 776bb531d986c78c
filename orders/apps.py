from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self) -> None:
        from markets import stream_hooks
        from orders import stream_gate

        # The stream sends evaluation and exit-guard tasks only where a config, a position or
        # an open order needs them (markets never imports orders: it asks the hook).
        stream_hooks.register_gate(stream_gate.make_gate)
