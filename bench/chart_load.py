"""One fan-out load of ``bench_charts``: ``n_clients`` WebSocket clients on ``n_charts`` charts
(:func:`load`), fed by a publisher in a process of its own (:func:`publish`, run as
``python -m bench.chart_load SPEC``) as the stream process is in production; what each client
received, lost and how late."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench.chart_server import ROOT, cpu_s, cpu_ticks, cpu_waiting_us
from bench.common import percentile

LOAD_S = 10.0
DRAIN_S = 2.0
MAX_DRAIN_S = 30.0
RATE_HZ = 4.0
BAR_MESSAGES = 8  # 7 forming + 1 closed per bar
BAR_MS = 60_000  # the bars are labelled as 1m bars (any aligned time will do)
T0 = 1_704_067_200_000
#: The publisher process starts publishing this long after it is spawned (Django set-up).
PUBLISHER_START_S = 4.0


async def load(port: int, pid: int, session_id: str, n_clients: int, n_charts: int,
                env: dict, raw: dict | None = None) -> dict:
    import aiohttp

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
                now = time.time()
                data = json.loads(msg.data)
                if data.get("type") == "bar":
                    sink.append((now, int(data["v"])))

        readers = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(sockets)]
        lags: list[float] = []

        async def lag_sampler():
            while True:
                due = time.perf_counter() + 0.005
                await asyncio.sleep(0.005)
                lags.append((time.perf_counter() - due) * 1000.0)

        sampler = asyncio.create_task(lag_sampler())
        # The publisher is a process of its own, as the stream process is in production: the
        # clients' work in this process does not delay its group_send calls.
        start_at = time.time() + PUBLISHER_START_S
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            publisher = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.chart_load",
                json.dumps({"charts": charts, "start_at": start_at, "out": out.name}),
                env=env, cwd=str(ROOT))
            await asyncio.sleep(max(0.0, start_at - time.time()))
            server_cpu, own_cpu = cpu_s(pid), time.process_time()
            waiting, load_started = cpu_waiting_us(), time.time()
            ticks = cpu_ticks()
            if await publisher.wait() != 0:
                raise RuntimeError(f"the publisher process failed ({publisher.returncode})")
            report = json.loads(Path(out.name).read_text())
        seq = report["seq"]
        published = {(c, q): t for c, q, t in report["published"]}  # -> publish time
        sent_at = {(c, q): t for c, q, t in report["sent_at"]}  # -> group_send returned
        # Drain: wait until nothing has arrived for DRAIN_S (bounded), so "lost" means never
        # delivered, not merely late.
        drain_end = time.perf_counter() + MAX_DRAIN_S
        while time.perf_counter() < drain_end:
            last = max((r[-1][0] for r in received if r), default=0.0)
            if time.time() - last > DRAIN_S:
                break
            await asyncio.sleep(0.25)
        publish_s = LOAD_S
        server_cpu, own_cpu = cpu_s(pid) - server_cpu, time.process_time() - own_cpu
        if waiting is not None:  # share of the run during which something waited for a CPU
            waiting = (cpu_waiting_us() - waiting) / 1e6 / (time.time() - load_started)
        steal = None
        if ticks is not None and (now := cpu_ticks()) is not None and now[1] > ticks[1]:
            steal = (now[0] - ticks[0]) / (now[1] - ticks[1])  # share of all CPU time
        sampler.cancel()
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
    if raw is not None:
        raw.update(charts=charts, published=published, sent_at=sent_at, received=received,
                   n_charts=n_charts)
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "lost": lost_forming + lost_closed,
        "lost_closed": lost_closed,
        "superseded": superseded,
        "deliveries_per_s": len(latencies) / publish_s,
        "expected": seq * n_clients,
        "connect_s": connect_s,
        # CPU spent while publishing and draining, per delivered message (both processes).
        "server_cpu_us_per_delivery": server_cpu / max(len(latencies), 1) * 1e6,
        "bench_cpu_us_per_delivery": own_cpu / max(len(latencies), 1) * 1e6,
        # How late the bench's own event loop ran a 5 ms timer: the clients' receive times
        # are late by about this much when the bench process is the bottleneck.
        "client_loop_lag_p99": percentile(lags, 99),
        "cpu_contention_pct": None if waiting is None else round(waiting * 100, 1),
        # The hypervisor's share of this VM's CPU time during the load: stalls we cannot fix.
        "cpu_steal_pct": None if steal is None else round(steal * 100, 1),
        "publish_call_p99": percentile(
            [(sent_at[k] - published[k]) * 1000.0 for k in sent_at], 99),
    }


async def publish_loop(charts: list[str], start_at: float) -> dict:
    from channels.layers import get_channel_layer

    from markets import wire

    layer = get_channel_layer()
    await layer.group_send("bench-warm-up", {"type": "noop"})  # connect before the clock runs
    await asyncio.sleep(max(0.0, start_at - time.time()))
    published, sent_at = [], []
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
            published.append((c, seq, time.time()))
            await layer.group_send(wire.bars_group("sim", code, "1m"),
                                   wire.bar_message("sim", code, "1m", bar, closed))
            sent_at.append((c, seq, time.time()))
        seq += 1
        next_tick += interval
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    return {"seq": seq, "published": published, "sent_at": sent_at}


def publish(spec: str) -> None:
    """``python -m bench.chart_load SPEC``: the publisher process of a load. From ``start_at``
    (wall clock), ``RATE_HZ`` bar messages a second per chart for ``LOAD_S`` seconds through
    ``channel_layer.group_send``, as the stream process publishes; writes when each was
    published and when its ``group_send`` returned to ``out`` (JSON)."""
    import django

    args = json.loads(spec)
    warnings.filterwarnings("ignore", "No directory at")
    django.setup()  # the bench's environment: its Redis and settings
    report = asyncio.run(publish_loop(args["charts"], args["start_at"]))
    Path(args["out"]).write_text(json.dumps(report))


if __name__ == "__main__":
    publish(sys.argv[1])
