"""WebSocket routes: the live chart and the markets overview (see tradesite.consumers).

The last route matches every other path and refuses the handshake (close 4404): without it
Channels' router raises, and the server answers with a 500 and a traceback in the log."""

from django.urls import re_path

from tradesite import alert_socket, consumers

websocket_urlpatterns: list = [
    re_path(
        r"^ws/chart/(?P<venue>[A-Za-z0-9_-]+)/(?P<symbol>[A-Za-z0-9_-]+)/(?P<timeframe>[A-Za-z0-9]+)/$",
        consumers.ChartConsumer.as_asgi(),
    ),
    re_path(r"^ws/markets/$", consumers.MarketsConsumer.as_asgi()),
    re_path(r"^ws/alerts/$", alert_socket.AlertsConsumer.as_asgi()),
    re_path(r"", consumers.NoRouteConsumer.as_asgi()),
]
