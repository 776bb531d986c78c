"""An in-process uvicorn, configured as ``tradesite.web`` configures it, serving a test's own
ASGI app on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import uvicorn

from tradesite.devservices import free_port
from tradesite.web import options


@asynccontextmanager
async def uvicorn_serving(app, **web_options):
    """Serve ``app`` for the block; yields the port. ``web_options`` go to
    ``tradesite.web.options`` (e.g. ``proxy_headers``, ``trusted``)."""
    port = free_port()
    config = {**options("127.0.0.1", port, **web_options), "loop": "none",
              "log_level": "warning"}
    server = uvicorn.Server(uvicorn.Config(app, **config))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()  # the server failed to start: raise its error
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
