"""WebSocket routes. The chart/dashboard consumer joins here (see docs/architecture.md)."""

websocket_urlpatterns: list = []
