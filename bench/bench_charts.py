"""Live chart benchmarks: publish -> browser latency through the real web server
(``python -m tradesite.web``: uvicorn) and Redis, and the candles API.

``run()`` returns rows ``{name, value, unit, baseline, baseline_value, ratio}`` (ratio = value /
baseline_value; lower is better for times). ``python bench/bench_charts.py`` prints them;
``python bench/bench_charts.py trace [a|b|ab]`` runs the hub server traced stage by stage
(``bench.chart_trace``) and prints where each message's time goes.

Fan-out loads (each ``LOAD_S`` seconds of publishing, then a drain):
  (a) 100 clients on one chart, 4 forming-bar updates/s;
  (b) 1,000 clients across 50 charts, 4 updates/s per chart.
Each chart's stream is bars of 2 s: 7 forming updates, then the closed bar (8 messages at 4/s).
The publisher calls ``channel_layer.group_send(bars_group, bar_message)`` like the stream does;
clients are aiohttp WebSockets logged in by session cookie; latency = client receive time -
time just before ``group_send`` (``time.time()``, one machine). Counted per client: ``lost`` =
a forming update of a bar that never reached the client in any later state either, or a closed
bar that never arrived; ``superseded`` = a forming update replaced by a newer state of the same
bar before delivery.

Servers: ``tradesite.asgi`` (the chart consumer behind the per-process hub) against the
baseline, a plain channels_redis group fan-out (every client's channel joins the group; the
consumer sends each message as it comes), measured in the same run on the same machine; both
in one process of the production web server (``tradesite.web``). A third pair of loads runs the
same hub on daphne, the server tradesite used before: the rows "server uvicorn vs daphne".

Each load runs up to ``STEAL_RUNS`` times, stopping at a run with at most ``QUIET_STEAL_PCT`` of
CPU steal, and the rows report the run with the least steal (row ``runs``: how many it took):
steal stalls every process at once and its bursts, not the code, set the tails of a disturbed
run. The publisher is a process of its own (``python -m bench.chart_load``), as the stream
process is in production.

What the figures include. The bench process (all clients), the publisher, the server and Redis
share the machine's two cores, so the figures include the clients' own CPU (``bench_cpu_us_per_
delivery``) and whatever else runs. Rows that say how far to trust a run: ``client_loop_lag_
p99`` (how late the bench's own loop ran a 5 ms timer: the clients' receive times are late by
about that much), ``publish_call_p99`` (the ``group_send`` call itself, part of every latency)
and ``cpu_contention_pct`` (Linux PSI: share of the run during which some task waited for a
CPU; above ~30 % the tails are the scheduler's, not the code's) and ``cpu_steal_pct``
(``/proc/stat``: the share of this virtual machine's CPU time the hypervisor gave to someone
else). On the 2-core VM this was written on, steal came in bursts: with nothing else running,
four traced runs of load (a) in a row gave p99 52, 67, 1,676 and 1,748 ms, and in the slow ones
the publisher's own ``group_send`` call (p99 0.7-1.1 s) and the server's event loop stalled at
the same moments, about 9 % of the CPU time being stolen over a run.

Where the time goes (``trace``; medians / p99 in ms, load (a), 100 frames per message, a quiet
machine: 0.6 % contention, no steal). On daphne (Twisted + Autobahn) the fan-out was the big
stage: outboxes filled -> the last client's ``send`` returned 14-25 / 28-50, ~100 us of server
CPU per frame. On uvicorn (uvloop, httptools, ``websockets`` sans-I/O; ``tradesite.web``):
  publish: the ``group_send`` call (four Redis round trips from the publisher) 1.8 / 9.9;
  publish -> the hub has the message (BZPOPMIN returned)      1.7 / 6.1;
  hub: decode, one JSON encoding, fill 100 outboxes           0.3 / 0.4;
  outboxes filled -> the last client's ASGI ``send`` returned  2.7 / 5.6;
  the last ``send`` -> the last client has it                  0.7 / 3.4;
  end to end                                                  4.4 / 10.8.
The bench's own process costs more CPU per delivery (90-150 us: aiohttp frames, a JSON parse)
than the server (30-40 us), so on two cores its loop lag (``client_loop_lag_p99``) is part of
every figure; it stayed at 1-6 ms.
Garbage collection: young-generation pauses are small (load b: ~70 in 10 s, ~25 ms in all, none
over 2.5 ms). A full collection walks every tracked object: the start-up heap (~155k objects,
110 ms alone) plus ~180 per connected client (the middleware and consumer coroutines, tasks,
futures). ``tradesite.web`` freezes the start-up heap, so with 1,000 clients one takes
~100-150 ms here instead of 0.3-1.1 s on daphne. Full collections run when the heap has grown
by a quarter, i.e. while clients connect: the bench's 1,000 clients connect just before the
load, so the last one often lands in it (load b's p99 is then ~140-220 ms; (a)'s heap is a
tenth of that). The trace prints every full collection with whether it fell in the load.

Goals (issue 6): (a) p99 < 50 ms, nothing lost; (b) p99 < 250 ms, no closed bar lost;
``/api/candles`` for 5,000 candles within 100 ms on SQLite.

Modules: :mod:`bench.chart_server` (environment, servers, CPU probes), :mod:`bench.chart_load`
(one load and its publisher), this one (the rows, the trace).

Needs nothing running: a private Redis (unless REDIS_URL is set) and a throwaway SQLite
database are made for the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import chart_load
from bench.chart_load import BAR_MS, T0, publish
from bench.chart_server import environment, server
from bench.common import median_ms, percentile, print_table, row

#: Each load runs up to STEAL_RUNS times, until a run has at most QUIET_STEAL_PCT of CPU steal;
#: the rows report the run with the least steal (and how many runs it took).
STEAL_RUNS = 3
QUIET_STEAL_PCT = 3.0
API_CANDLES = 5_000


def _fanout_rows(env: dict, session_id: str) -> list[dict]:
    results = {}
    for label, app, server_name in (("hub", "tradesite.asgi:application", "web"),
                               ("plain", "bench.chart_server:baseline_application", "web"),
                               ("hub-daphne", "tradesite.asgi:application", "daphne")):
        for load_name, clients, charts in (("a", 100, 1), ("b", 1000, 50)):
            runs = []
            while len(runs) < STEAL_RUNS:
                with server(app, env, server_name) as (port, pid):
                    runs.append(asyncio.run(
                        chart_load.load(port, pid, session_id, clients, charts, env)))
                print(f"  {label} load {load_name}: {runs[-1]}", file=sys.stderr)
                if (runs[-1]["cpu_steal_pct"] or 0.0) <= QUIET_STEAL_PCT:
                    break
            # The hypervisor's steal comes in bursts that stall every process at once (server,
            # clients, publisher, Redis) and sets the tails; keep the run it disturbed least.
            results[(label, load_name)] = min(runs, key=lambda r: r["cpu_steal_pct"] or 0.0)
            results[(label, load_name)]["runs"] = len(runs)
    rows = []
    for load, desc in (("a", "100 clients, 1 chart, 4 upd/s"),
                       ("b", "1000 clients, 50 charts, 4 upd/s each")):
        hub, plain, daphne = (results[(label, load)] for label in ("hub", "plain", "hub-daphne"))
        for key, unit in (("p50", "ms"), ("p99", "ms"), ("lost", "messages"),
                          ("lost_closed", "closed bars"), ("superseded", "messages"),
                          ("deliveries_per_s", "msg/s"),
                          ("server_cpu_us_per_delivery", "us CPU"),
                          ("bench_cpu_us_per_delivery", "us CPU"),
                          ("client_loop_lag_p99", "ms"), ("publish_call_p99", "ms"),
                          ("cpu_contention_pct", "% of time"), ("cpu_steal_pct", "% of CPU"),
                          ("runs", "runs")):
            rows.append(row(f"({load}) {desc}: {key}", hub[key], unit,
                            "plain channels_redis group fan-out", plain[key]))
        for key, unit in (("p50", "ms"), ("p99", "ms"), ("lost_closed", "closed bars"),
                          ("server_cpu_us_per_delivery", "us CPU"),
                          ("cpu_steal_pct", "% of CPU")):
            rows.append(row(f"({load}) {desc}: {key}, server uvicorn vs daphne", hub[key], unit,
                            "the same hub on daphne", daphne[key]))
    return rows


# -- the candles API -------------------------------------------------------------------------------


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

    api()  # warm up
    with_ind = url + "&indicators=all"
    api_ms = median_ms(api)
    base_ms = median_ms(orm_per_row)
    ind_ms = median_ms(lambda: client.get(with_ind))
    assert connection.vendor == "sqlite"
    baseline = "ORM objects + dict per row + json"
    return [
        row("/api/candles 5000 candles (SQLite, median)", api_ms, "ms", baseline, base_ms),
        row("/api/candles 5000 candles + all indicators", ind_ms, "ms", baseline, base_ms),
    ]


def _stages(raw: dict, trace: dict) -> dict:
    """Per-stage latency percentiles (ms) from the bench's and the traced server's times."""
    charts = raw["charts"]
    index = {code: c for c, code in enumerate(charts)}

    def by_key(rows):
        return {(index[sym], v): t for t, sym, v in rows}

    published, sent_at = raw["published"], raw["sent_at"]
    redis_out, hub_in, hub_done = (by_key(trace[k]) for k in ("redis_out", "hub_in", "hub_done"))
    sends: dict = {}
    for t, sym, v in trace["sent"]:
        sends.setdefault((index[sym], v), []).append(t)
    delivered: dict = {}
    for i, rows in enumerate(raw["received"]):
        for t, v in rows:
            delivered.setdefault((i % raw["n_charts"], v), []).append(t)
    out: dict = {}

    def add(name, values):
        values = [v * 1000.0 for v in values]
        out[name] = (round(percentile(values, 50), 1), round(percentile(values, 99), 1))

    add("publish: group_send call", [sent_at[k] - published[k] for k in sent_at])
    add("publish -> leaves Redis (BZPOPMIN returned)",
        [redis_out[k] - published[k] for k in redis_out])
    add("leaves Redis -> hub.dispatch",
        [hub_in[k] - redis_out[k] for k in hub_in if k in redis_out])
    add("hub.dispatch (encode + fill outboxes)", [hub_done[k] - hub_in[k] for k in hub_done])
    add("outboxes filled -> ASGI send done (each client)",
        [t - hub_done[k] for k, ts in sends.items() for t in ts if k in hub_done])
    add("outboxes filled -> last client's send done",
        [max(ts) - hub_done[k] for k, ts in sends.items() if k in hub_done])
    add("last send done -> last client received",
        [max(delivered[k]) - max(ts) for k, ts in sends.items() if k in delivered])
    add("publish -> client received (end to end)",
        [t - published[k] for k, ts in delivered.items() for t in ts])
    start = min(published.values())
    end = max((t for ts in delivered.values() for t in ts), default=start)
    pauses = [ms for t, ms, _gen, _n in trace["gc"] if start <= t <= end]
    out["server full (gen 2) GC pauses, whole run: (ms, objects freed, in load)"] = [
        (round(ms), n, start <= t <= end) for t, ms, gen, n in trace["gc"] if gen == 2]
    out["server GC pauses while loaded: count, total, max ms"] = (
        len(pauses), round(sum(pauses), 1), round(max(pauses, default=0.0), 1))
    lags = [ms for t, ms in trace["lags"] if start <= t <= end]
    out["server loop lag while loaded (5 ms timer) p50/p99"] = (
        round(percentile(lags, 50), 1), round(percentile(lags, 99), 1))
    return out


def trace(loads: str = "a") -> None:
    """``python bench/bench_charts.py trace [a|b|ab]``: the hub server traced stage by stage
    (``bench.chart_trace``); prints where each message's time goes."""
    with environment() as (env, session_id, _client):
        for load, clients, charts in (("a", 100, 1), ("b", 1000, 50)):
            if load not in loads:
                continue
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                raw: dict = {}
                with server("bench.chart_trace:application",
                            {**env, "BENCH_CHARTS_TRACE": out.name,
                             "BENCH_CHARTS_PROFILE": os.environ.get("BENCH_CHARTS_PROFILE", ""),
                             "BENCH_CHARTS_HEAP": os.environ.get("BENCH_CHARTS_HEAP", "")},
                            os.environ.get("BENCH_CHARTS_SERVER", "web")) as (port, pid):
                    result = asyncio.run(
                        chart_load.load(port, pid, session_id, clients, charts, env, raw))
                    # uvicorn ends on SIGTERM by re-raising it (no atexit): ask for the file.
                    os.kill(pid, signal.SIGUSR1)
                    deadline = time.monotonic() + 30
                    while not Path(out.name).stat().st_size and time.monotonic() < deadline:
                        time.sleep(0.1)
                    time.sleep(0.5)  # let the server finish writing it
                data = json.loads(Path(out.name).read_text())
            print(f"load {load}: {result}")
            for name, value in _stages(raw, data).items():
                print(f"  {name:55s} {value}")
            for _t, count, top in data.get("heap", []):
                print(f"  after a full GC: {count} tracked objects; most: {top}")


def run() -> list[dict]:
    with environment() as (env, session_id, client):
        rows = _api_rows(client)
        rows += _fanout_rows(env, session_id)
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["publish"]:  # the publisher process (also ``python -m bench.chart_load``)
        publish(sys.argv[2])
        sys.exit(0)
    if sys.argv[1:2] == ["trace"]:
        trace(*sys.argv[2:3])
        sys.exit(0)
    print_table(run())
