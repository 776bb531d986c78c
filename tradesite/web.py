"""The web process: ``python -m tradesite.web [--host H] [--port P] [--proxy-headers] [app]``.

One place says how tradesite's ASGI application is served, so the Procfile, the Docker image,
the browser tests and ``bench_charts`` run the same server with the same options:

- **uvicorn** on **uvloop** with **httptools**, WebSockets by ``websockets``' sans-I/O protocol
  (``websockets-sansio``: a frame is encoded and written to the transport in the ``send`` call
  itself). Measured in ``bench_charts`` against daphne (Twisted + Autobahn), same run, same
  machine: a third to a half of daphne's server CPU per delivered chart frame (30-90 us against
  70-160), and for 1,000 clients on 50 charts a p99 of 5-20 ms against 130-250 ms (see
  ``docs/performance.md``).
- **No per-message deflate.** Browsers always offer it and uvicorn accepts it by default, which
  would compress every chart frame once per client (zlib state is per connection): the hub's
  frames are a few hundred bytes, encoded once for all clients, and cheap to send as they are.
- ``lifespan`` off: Channels' router has no lifespan protocol.
- HTTP access lines off (daphne logged none either); the level follows ``LOG_LEVEL``.
- The start-up heap is frozen out of garbage collection (:func:`freeze_startup_heap`).
- A stop (SIGTERM, Ctrl-C) closes the WebSockets (code 1012, the page reconnects) and waits at
  most ``GRACEFUL_S`` for requests in flight.

``--proxy-headers`` trusts ``X-Forwarded-For``/``-Proto`` only from the addresses in
``TRUSTED_PROXY_IPS`` (comma-separated addresses or networks, default ``127.0.0.1,::1``): the
reverse proxy's. From anyone else they are ignored, so a client cannot make up its address
(which login throttling keys on) or claim HTTPS. Without the flag they are always ignored.
Host and port default to ``TRADESITE_BIND`` (127.0.0.1) and ``TRADESITE_PORT`` (8000).
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import sys

APPLICATION = "tradesite.asgi:application"
GRACEFUL_S = 10
DEFAULT_TRUSTED_PROXIES = "127.0.0.1,::1"


def trusted_proxies(value: str) -> list[str]:
    """``TRUSTED_PROXY_IPS`` checked: addresses or networks (``10.0.0.5``, ``172.16.0.0/12``).
    A wildcard is refused: trusting everyone would let any client forge its address."""
    entries = [part.strip() for part in value.split(",") if part.strip()]
    if not entries:
        raise ValueError("TRUSTED_PROXY_IPS is empty; name the reverse proxy's address")
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"TRUSTED_PROXY_IPS: {entry!r} is not an IP address or network (e.g. 10.0.0.5 or "
                "172.16.0.0/12); a wildcard is not allowed"
            ) from None
    return entries


#: The largest WebSocket message a client may send (the consumers parse at most 1 KB of it).
WS_MAX_FRAME = 64 * 1024


def options(host: str, port: int, *, proxy_headers: bool = False,
            log_level: str | None = None, trusted: list[str] | None = None) -> dict:
    """Keyword arguments for ``uvicorn.run`` (and ``uvicorn.Config``). With ``proxy_headers``,
    forwarded headers are trusted from ``trusted`` (default: ``TRUSTED_PROXY_IPS``)."""
    level = (log_level or os.environ.get("LOG_LEVEL") or "info").lower()
    if proxy_headers and trusted is None:
        trusted = trusted_proxies(os.environ.get("TRUSTED_PROXY_IPS") or DEFAULT_TRUSTED_PROXIES)
    return {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        # Clients only ping (tens of bytes); a larger frame is refused by the protocol (close
        # 1009) before it is buffered, instead of uvicorn's default 16 MB.
        "ws_max_size": WS_MAX_FRAME,
        "lifespan": "off",
        "access_log": False,
        "log_level": level,
        "proxy_headers": proxy_headers,
        "forwarded_allow_ips": trusted if proxy_headers else [],
        "timeout_graceful_shutdown": GRACEFUL_S,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tradesite.web", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("app", nargs="?", default=APPLICATION,
                        help=f"ASGI application, module:attribute (default {APPLICATION})")
    parser.add_argument("--host", default=os.environ.get("TRADESITE_BIND", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TRADESITE_PORT", "8000")))
    parser.add_argument("--proxy-headers", action="store_true",
                        help="trust X-Forwarded-For/-Proto from TRUSTED_PROXY_IPS "
                        f"(default {DEFAULT_TRUSTED_PROXIES}): behind a reverse proxy")
    args = parser.parse_args(argv)
    try:
        server_options = options(args.host, args.port, proxy_headers=args.proxy_headers)
    except ValueError as exc:
        parser.error(str(exc))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    import uvicorn

    config = uvicorn.Config(args.app, **server_options)
    config.load()  # imports Django, the app and the protocols (exits with a message on error)
    freeze_startup_heap()
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # e.g. the port is taken; uvicorn has said why
        sys.exit(3)


def freeze_startup_heap() -> None:
    """Leave what start-up built (Django, the app, ~155k objects) out of every later garbage
    collection: ``gc.freeze()`` after one full collection.

    A full collection walks every tracked object: with the start-up heap in it, one took
    110 ms on an idle 2-core VM and 150-210 ms with 1,000 chart clients connected, a stall of
    every WebSocket of the process (the goal for one chart is p99 < 50 ms). Those objects live
    as long as the process; the frozen ones are never collected, so only what exists now is
    frozen, after a collection.
    """
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    main(sys.argv[1:])
