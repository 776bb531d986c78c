"""The servers and the environment of ``bench_charts``: a private Redis and a throwaway SQLite
database (:func:`environment`), the web server in a process of its own (:func:`server`), the
baseline application (a plain channels_redis group fan-out) and the CPU probes (Linux PSI,
steal, a process's CPU time)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from bench.common import scratch_venue

ROOT = Path(__file__).resolve().parents[1]


def baseline_app():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()
    from channels.auth import AuthMiddlewareStack
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator
    from django.urls import re_path

    from markets import wire

    class PlainGroupConsumer(AsyncWebsocketConsumer):
        async def connect(self):
            if not self.scope["user"].is_authenticated:
                await self.close(code=4401)
                return
            kw = self.scope["url_route"]["kwargs"]
            self.group = wire.bars_group(kw["venue"], kw["symbol"], kw["timeframe"])
            await self.channel_layer.group_add(self.group, self.channel_name)
            await self.accept()
            await self.send(text_data=json.dumps({"type": "hello"}))

        async def disconnect(self, code):
            if hasattr(self, "group"):
                await self.channel_layer.group_discard(self.group, self.channel_name)

        async def bar_update(self, event):
            await self.send(text_data=json.dumps({"type": "bar", **event["bar"],
                                                  "closed": event["closed"]}))

    routes = [re_path(r"^ws/chart/(?P<venue>[^/]+)/(?P<symbol>[^/]+)/(?P<timeframe>[^/]+)/$",
                      PlainGroupConsumer.as_asgi())]
    return ProtocolTypeRouter({
        "http": django_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(routes))),
    })


def __getattr__(name: str):
    # The server imports ``bench.chart_server:baseline_application``; build it only then.
    if name == "baseline_application":
        return baseline_app()
    raise AttributeError(name)


# -- environment -----------------------------------------------------------------------------------


@contextlib.contextmanager
def environment():
    """A Redis (private unless REDIS_URL is set) and a migrated throwaway SQLite database with
    a user, a session and 50 symbols; yields ``(env for the server, session id)``."""
    from django.conf import settings

    if settings.configured:
        raise RuntimeError("bench_charts must set up Django itself (run it in a fresh process)")
    from tradesite.devservices import redis_server

    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get("REDIS_URL") or stack.enter_context(redis_server())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-charts-")))
        os.environ["REDIS_URL"] = redis_url
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
        import django

        warnings.filterwarnings("ignore", "No directory at")  # whitenoise without collectstatic
        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client

        from markets.models import Symbol

        call_command("migrate", verbosity=0)
        venue = scratch_venue(slug="sim", name="Simulator")
        Symbol.objects.bulk_create(
            Symbol(exchange=venue, code=f"KRW-C{i:02d}", base=f"C{i:02d}", quote="KRW")
            for i in range(50)
        )
        user = get_user_model().objects.create_user("bench", password=None, is_staff=True)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        env = {
            **os.environ,
            "SECRET_KEY": settings.SECRET_KEY,
            "LOG_LEVEL": "WARNING",
        }
        yield env, client.cookies["sessionid"].value, client


def cpu_waiting_us() -> int | None:
    """Microseconds so far during which some runnable task waited for a CPU (Linux PSI
    ``/proc/pressure/cpu``, "some" total); None where the kernel does not report it."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(line.rsplit("total=", 1)[1])


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) CPU ticks so far across all CPUs (Linux ``/proc/stat``): steal is the
    time a virtual machine's CPUs were runnable but the hypervisor ran someone else."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: How each server is started. ``web`` is the production one (``python -m tradesite.web``:
#: uvicorn, see there); ``daphne`` the server tradesite ran before, for the same-run comparison.
SERVERS = {
    "web": lambda port, app: [sys.executable, "-m", "tradesite.web", "--port", str(port), app],
    "daphne": lambda port, app: [sys.executable, "-m", "daphne", "-b", "127.0.0.1",
                                 "-p", str(port), app],
}


@contextlib.contextmanager
def server(app: str, env: dict, server: str = "web"):
    from tradesite.devservices import free_port, wait_for_port

    port = free_port()
    # The server's output goes to a file: a pipe nobody reads fills up (64 kB) and then blocks
    # the server's event loop in its next log write (seen: daphne hung after a mass disconnect).
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        SERVERS[server](port, app), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        try:
            wait_for_port(port, timeout=60, proc=proc)
        except RuntimeError:
            log.seek(0)
            print(log.read()[-3000:].decode(errors="replace"), file=sys.stderr)
            raise
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
