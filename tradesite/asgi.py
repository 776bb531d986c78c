"""ASGI entry point: HTTP through Django, WebSockets through Channels with session auth."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
# Django must be set up before routing and consumers are imported (STACK-NOTES).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from tradesite.consumers import RAW_SEND  # noqa: E402
from tradesite.routing import websocket_urlpatterns  # noqa: E402


def with_raw_send(inner):
    """Pass the server's own ``send`` in the scope (``tradesite.consumers.RAW_SEND``).

    Channels' session middleware wraps ``send`` to save the session on HTTP responses; on a
    WebSocket the wrapper only costs time, once per frame per client. The chart fan-out sends
    its frames with this one (measured in bench_charts); everything else still goes through
    the middleware.
    """

    async def app(scope, receive, send):
        return await inner({**scope, RAW_SEND: send}, receive, send)

    return app


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": with_raw_send(
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
