"""Live chart benchmarks: publish -> browser latency through a real daphne and Redis, and the
candles API.

``run()`` returns rows ``{name, value, unit, baseline, baseline_value, ratio}`` (ratio = value /
baseline_value; lower is better for times). ``python bench/bench_charts.py`` prints them.

Fan-out loads (each ``LOAD_S`` seconds of publishing, then a drain):
  (a) 100 clients on one chart, 4 forming-bar updates/s;
  (b) 1,000 clients across 50 charts, 4 updates/s per chart.
Each chart's stream is bars of 2 s: 7 forming updates, then the closed bar (8 messages at 4/s).
The publisher calls ``channel_layer.group_send(bars_group, bar_message)`` like the stream does;
clients are aiohttp WebSockets logged in by session cookie; latency = client receive time -
publish time (one clock: same process). Counted per client: ``lost`` = a forming update of a bar
that never reached the client in any later state either, or a closed bar that never arrived;
``superseded`` = a forming update replaced by a newer state of the same bar before delivery.

Servers: ``tradesite.asgi`` (the chart consumer behind the per-process hub) against the
baseline, a plain channels_redis group fan-out (every client's channel joins the group; the
consumer sends each message as it comes), measured in the same run on the same machine; both
in one daphne process. The bench process (publisher + all clients), daphne and Redis share the
machine's cores, so figures include the clients' own CPU cost.

Goals (issue 6): (a) p99 < 50 ms, nothing lost; (b) p99 < 250 ms, no closed bar lost;
``/api/candles`` for 5,000 candles within 100 ms on SQLite.

Needs nothing running: a private Redis (unless REDIS_URL is set) and a throwaway SQLite
database are made for the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
LOAD_S = 10.0
DRAIN_S = 2.0
MAX_DRAIN_S = 30.0
RATE_HZ = 4.0
BAR_MESSAGES = 8  # 7 forming + 1 closed per bar
BAR_MS = 60_000  # the bars are labelled as 1m bars (any aligned time will do)
T0 = 1_704_067_200_000
API_CANDLES = 5_000


# -- the baseline server: a plain group fan-out, one channel per client ---------------------------


def _baseline_application():
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
    # daphne imports ``bench.bench_charts:baseline_application``; build it only then.
    if name == "baseline_application":
        return _baseline_application()
    raise AttributeError(name)


# -- environment ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _environment():
    """A Redis (private unless REDIS_URL is set) and a migrated throwaway SQLite database with
    a user, a session and 50 symbols; yields ``(env for daphne, session id)``."""
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

        from markets.models import Exchange, Symbol

        call_command("migrate", verbosity=0)
        venue = Exchange.objects.create(slug="sim", name="Simulator", adapter="upbit",
                                        rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _daphne(app: str, env: dict):
    from tradesite.devservices import free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout=60, proc=proc)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- one load -----------------------------------------------------------------------------------


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


async def _load(port: int, pid: int, session_id: str, n_clients: int, n_charts: int) -> dict:
    import aiohttp
    from channels.layers import get_channel_layer

    from markets import wire

    layer = get_channel_layer()
    charts = [f"KRW-C{i:02d}" for i in range(n_charts)]
    headers = {"Origin": f"http://127.0.0.1:{port}", "Cookie": f"sessionid={session_id}"}
    received: list[list[tuple[float, int]]] = [[] for _ in range(n_clients)]
    sockets = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        sem = asyncio.Semaphore(20)

        async def open_client(i: int):
            async with sem:
                url = f"ws://127.0.0.1:{port}/ws/chart/sim/{charts[i % n_charts]}/1m/"
                for attempt in range(5):  # a loaded server's listen backlog may reset a few
                    try:
                        ws = await http.ws_connect(url, max_msg_size=0, autoping=True)
                        break
                    except aiohttp.ClientOSError:
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.2 * (attempt + 1))
                hello = await ws.receive(timeout=30)
                if json.loads(hello.data)["type"] != "hello":
                    raise RuntimeError(f"unexpected first frame {hello.data!r}")
                return ws

        started = time.perf_counter()
        sockets = await asyncio.gather(*(open_client(i) for i in range(n_clients)))
        connect_s = time.perf_counter() - started

        async def reader(i: int, ws):
            sink = received[i]
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.perf_counter()
                data = json.loads(msg.data)
                if data.get("type") == "bar":
                    sink.append((now, int(data["v"])))

        readers = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(sockets)]
        server_cpu, own_cpu = _cpu_s(pid), time.process_time()
        published: dict[tuple[int, int], float] = {}  # (chart, seq) -> publish time
        seq = 0
        interval = 1.0 / RATE_HZ
        next_tick = time.perf_counter()
        end = next_tick + LOAD_S
        while next_tick < end:
            bar_index, step = divmod(seq, BAR_MESSAGES)
            closed = step == BAR_MESSAGES - 1
            t = T0 + bar_index * BAR_MS
            for c, code in enumerate(charts):
                bar = {"t": t, "o": 100.0, "h": 101.0 + step, "l": 99.0, "c": 100.0 + step,
                       "v": float(seq)}
                published[(c, seq)] = time.perf_counter()
                await layer.group_send(wire.bars_group("sim", code, "1m"),
                                       wire.bar_message("sim", code, "1m", bar, closed))
            seq += 1
            next_tick += interval
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
        # Drain: wait until nothing has arrived for DRAIN_S (bounded), so "lost" means never
        # delivered, not merely late.
        drain_end = time.perf_counter() + MAX_DRAIN_S
        while time.perf_counter() < drain_end:
            last = max((r[-1][0] for r in received if r), default=0.0)
            if time.perf_counter() - last > DRAIN_S:
                break
            await asyncio.sleep(0.25)
        publish_s = LOAD_S
        server_cpu, own_cpu = _cpu_s(pid) - server_cpu, time.process_time() - own_cpu
        for ws in sockets:
            await ws.close()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    latencies, lost_forming, lost_closed, superseded = [], 0, 0, 0
    for i in range(n_clients):
        c = i % n_charts
        got = {s: at for at, s in received[i]}
        for s, at in got.items():
            latencies.append((at - published[(c, s)]) * 1000.0)
        for s in range(seq):
            if s in got:
                continue
            bar_end = (s // BAR_MESSAGES + 1) * BAR_MESSAGES
            if s % BAR_MESSAGES == BAR_MESSAGES - 1:
                lost_closed += 1
            elif any(later in got for later in range(s + 1, bar_end)):
                superseded += 1
            else:
                lost_forming += 1
    return {
        "p50": _percentile(latencies, 50),
        "p99": _percentile(latencies, 99),
        "lost": lost_forming + lost_closed,
        "lost_closed": lost_closed,
        "superseded": superseded,
        "deliveries_per_s": len(latencies) / publish_s,
        "expected": seq * n_clients,
        "connect_s": connect_s,
        # CPU spent while publishing and draining, per delivered message (both processes).
        "server_cpu_us_per_delivery": server_cpu / max(len(latencies), 1) * 1e6,
        "bench_cpu_us_per_delivery": own_cpu / max(len(latencies), 1) * 1e6,
    }


def _fanout_rows(env: dict, session_id: str) -> list[dict]:
    results = {}
    for label, app in (("hub", "tradesite.asgi:application"),
                       ("plain", "bench.bench_charts:baseline_application")):
        for load, clients, charts in (("a", 100, 1), ("b", 1000, 50)):
            with _daphne(app, env) as (port, pid):
                results[(label, load)] = asyncio.run(
                    _load(port, pid, session_id, clients, charts))
            print(f"  {label} load {load}: {results[(label, load)]}", file=sys.stderr)
    rows = []
    for load, desc in (("a", "100 clients, 1 chart, 4 upd/s"),
                       ("b", "1000 clients, 50 charts, 4 upd/s each")):
        hub, plain = results[("hub", load)], results[("plain", load)]
        for key, unit in (("p50", "ms"), ("p99", "ms"), ("lost", "messages"),
                          ("lost_closed", "closed bars"), ("superseded", "messages"),
                          ("deliveries_per_s", "msg/s"),
                          ("server_cpu_us_per_delivery", "us CPU"),
                          ("bench_cpu_us_per_delivery", "us CPU")):
            base = plain[key]
            rows.append({
                "name": f"({load}) {desc}: {key}",
                "value": hub[key],
                "unit": unit,
                "baseline": "plain channels_redis group fan-out",
                "baseline_value": base,
                "ratio": (hub[key] / base) if base else None,
            })
    return rows


# -- the candles API ------------------------------------------------------------------------------


def _api_rows(client) -> list[dict]:
    from django.db import connection

    from markets.candles import upsert_candles
    from markets.models import Candle, Symbol

    symbol = Symbol.objects.get(code="KRW-C00")
    rows = [(T0 + i * BAR_MS, 100.0 + i % 9, 110.0, 99.0, 100.5 + i % 7 * 0.1,
             1.0 + i % 5) for i in range(6_000)]
    upsert_candles(symbol.pk, "1m", rows)
    url = f"/api/candles?venue=sim&symbol=KRW-C00&timeframe=1m&limit={API_CANDLES}"

    def api():
        response = client.get(url)
        assert response.status_code == 200 and len(json.loads(response.content)["candles"]["t"]) \
            == API_CANDLES

    def orm_per_row():
        """The obvious ORM view: model objects, one dict per candle, json.dumps."""
        candles = list(Candle.objects.filter(symbol=symbol, timeframe="1m")
                       .order_by("-open_time")[:API_CANDLES])
        json.dumps([{"t": int(c.open_time.timestamp() * 1000), "o": c.open, "h": c.high,
                     "l": c.low, "c": c.close, "v": c.volume} for c in reversed(candles)])

    def timed(fn, repeats=15):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1000.0)
        return statistics.median(times)

    api()  # warm up
    with_ind = url + "&indicators=all"
    api_ms = timed(api)
    base_ms = timed(orm_per_row)
    ind_ms = timed(lambda: client.get(with_ind))
    assert connection.vendor == "sqlite"
    return [
        {"name": "/api/candles 5000 candles (SQLite, median)", "value": api_ms, "unit": "ms",
         "baseline": "ORM objects + dict per row + json", "baseline_value": base_ms,
         "ratio": api_ms / base_ms},
        {"name": "/api/candles 5000 candles + all indicators", "value": ind_ms, "unit": "ms",
         "baseline": "ORM objects + dict per row + json", "baseline_value": base_ms,
         "ratio": ind_ms / base_ms},
    ]


def run() -> list[dict]:
    with _environment() as (env, session_id, client):
        rows = _api_rows(client)
        rows += _fanout_rows(env, session_id)
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
