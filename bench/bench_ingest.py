"""Stream ingest capacity (issue 20): trades/s ONE stream process sustains across 500 symbols,
and its CPU per trade, with a feeder that is not the bottleneck.

``bench scale`` streams from the simulator, a Python process that offers ~2,600 trades/s, so it
cannot show the stream's capacity. Here the feeder (``bench/ingest_feed.py``, its own process)
serves Binance spot's combined streams on 127.0.0.1 from pre-encoded frames written in 20 ms
slices (its CPU is reported too). The receiving side is the product's path: a
:class:`~markets.stream.venue.VenueStream` with the real ``binance_spot`` adapter (websockets,
orjson, the parser, the adapter's duplicate filter), the real aggregator, the real store (a
scratch SQLite database) and the real channel layer (Redis: forming bars, tickers, closed bars).
Injected: ``send_task`` counts the tasks instead of sending them to a broker (a closed bar's
evaluation task, ~500 a minute here, is not per trade).

Steps: a warm-up (connections open, the start-up REST catch-up done), then fixed offered rates
(10k, 25k, 50k trades/s for ``BENCH_INGEST_SECONDS``, default 6 s each) and a last step "as fast
as the stream drains" (the feeder keeps each connection's write buffer under 1 MB, so TCP
back-pressure paces it). For each step: the rate the stream processed (trades counted by the
aggregator, from the step's start until all its trades are in), the stream process's CPU per
trade and cores used over that window, and the feeder's cores.

Then the per-trade path alone, without the stream's fixed per-symbol work (forming bars four
times a second and a ticker a second per symbol, each a channel-layer send): the adapter's
``stream_trades`` on the same connections into one aggregator, a drain step.

Baselines (same run, same machine, in this process): the aggregator alone on the same number of
trades with the same symbol distribution (as ``bench scale``), and "frames -> aggregator": the
same kind of frame decoded (orjson), parsed (``parse_ws_market``) and aggregated, no I/O.
``python -m bench ingest`` (needs Redis: ``python -m tradesite.devservices with-redis -- ...``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import row

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = int(os.environ.get("BENCH_INGEST_SYMBOLS", "500"))
SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", "6"))
RATES = [int(r) for r in os.environ.get("BENCH_INGEST_RATES", "10000,25000,50000").split(",")]
MAX_TRADES = int(os.environ.get("BENCH_INGEST_MAX_TRADES", "300000"))
GOAL = 50_000
SEED = 7


def _setup_django(folder: str) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class Feeder:
    """The feeder process, driven over its stdin/stdout (one JSON line each way)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> tuple[Feeder, dict]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.ingest_feed", "--symbols", str(SYMBOLS), "--seed",
            str(SEED), cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=os.environ | {"PYTHONPATH": str(ROOT)}, limit=1 << 20)
        feeder = cls(proc)
        return feeder, await feeder.answer()

    async def answer(self, timeout: float = 120.0) -> dict:
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the feeder exited")
        return json.loads(line)

    async def ask(self, **cmd) -> None:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _world(url: str, codes: list[str]):
    from decimal import Decimal

    from markets.models import Exchange, Symbol
    from markets.stream.config import SymbolSpec, VenueSpec

    exchange = Exchange.objects.create(slug="ingest", name="Ingest", adapter="binance_spot",
                                       rest_url=url, ws_url=url.replace("http", "ws", 1))
    Symbol.objects.bulk_create(
        Symbol(exchange=exchange, code=code, base=code.removesuffix("USDT"), quote="USDT",
               timeframes=["1m"], min_notional=Decimal("5"), max_leverage=1) for code in codes)
    ids = dict(Symbol.objects.filter(exchange=exchange).values_list("code", "id"))
    return VenueSpec("ingest", "binance_spot", exchange.rest_url, exchange.ws_url,
                     tuple(SymbolSpec(code, ids[code], ("1m",)) for code in codes))


def _stream(spec, tasks: list):
    from markets.adapters import adapter_for, venue_limiter
    from markets.stream.runner import default_publish
    from markets.stream.venue import VenueStream

    limiter = venue_limiter(spec)

    def adapter():
        return adapter_for(spec, limiter=limiter)

    return VenueStream(spec, rest_adapter=adapter(), stream_adapter_factory=adapter,
                       publish=default_publish(), send_task=lambda name, kw: tasks.append(name),
                       evaluate_task="bench.evaluate")


def _processed(stream) -> int:
    c = stream.agg.counters()
    return c["accepted"] + c["duplicates"] + c["late_skipped"] + c["invalid_skipped"]


async def _step(stream, feeder: Feeder, rate: int, trades: int, processed=_processed) -> dict:
    n0 = processed(stream)  # the previous step's trades are all in
    await feeder.ask(cmd="step", rate=rate, trades=trades)
    await feeder.answer()  # frames built: the step starts now
    cpu0, wall0, fcpu0 = time.process_time(), time.perf_counter(), feeder.cpu_s()
    done = asyncio.ensure_future(feeder.answer(timeout=600))
    deadline = time.perf_counter() + 120
    while processed(stream) - n0 < trades and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    n, cpu, wall = processed(stream) - n0, time.process_time() - cpu0, \
        time.perf_counter() - wall0
    fcpu = feeder.cpu_s() - fcpu0
    sent = await done
    return {"rate": rate, "trades": n, "wall": wall, "cpu": cpu, "feeder_cpu": fcpu,
            "send_s": sent["ended"] - sent["started"], "late_slices": sent["late_slices"]}


async def _adapter_path(spec, feeder: Feeder, trades: int) -> dict:
    """The per-trade path alone: the adapter's trade streams (websockets, orjson, parser,
    duplicate filter) into one aggregator, the same connections as the stream's, no
    ``VenueStream`` (no publishing, storing or clock loop): a drain step."""
    from markets.adapters import adapter_for
    from markets.aggregator import BarAggregator
    from markets.exchanges import ADAPTERS
    from markets.stream.config import connection_groups

    caps = ADAPTERS[spec.adapter].capabilities
    groups = connection_groups([s.code for s in spec.symbols], caps.ws_streams_per_connection,
                               caps.ws_url_max_chars)
    agg = BarAggregator(("1m",))

    async def consume(codes: list[str]) -> None:
        add = agg.add_trade
        async for t in adapter_for(spec).stream_trades(codes):
            add(t.symbol, t.trade_id, t.ts_ms, t.price, t.quantity)

    tasks = [asyncio.ensure_future(consume(g)) for g in groups]
    try:
        await feeder.ask(cmd="wait", connections=len(groups))
        await feeder.answer(timeout=60)
        await _step(agg, feeder, 2000, 2_000, processed=lambda a: a.accepted)
        return await _step(agg, feeder, 0, trades, processed=lambda a: a.accepted)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _baselines(n: int) -> tuple[float, float]:
    """CPU s per trade: the aggregator alone, and decode + parse + aggregate (no I/O)."""
    from bench.ingest_feed import sample_frames
    from markets.aggregator import BarAggregator
    from markets.exchanges.binance_parse import parse_ws_market
    from markets.exchanges.ws import decode_frame

    frames = sample_frames(n, SYMBOLS, SEED, 1_767_225_600_000)
    trades = [parse_ws_market(decode_frame(f))[0] for f in frames]
    args = [(t.symbol, t.trade_id, t.ts_ms, t.price, t.quantity) for t in trades]
    agg = BarAggregator(("1m",))
    add = agg.add_trade
    started = time.process_time()
    for a in args:
        add(*a)
    alone = (time.process_time() - started) / n
    agg = BarAggregator(("1m",))
    add = agg.add_trade
    started = time.process_time()
    for f in frames:
        for t in parse_ws_market(decode_frame(f)):
            add(t.symbol, t.trade_id, t.ts_ms, t.price, t.quantity)
    return alone, (time.process_time() - started) / n


async def _run() -> list[dict]:
    feeder, hello = await Feeder.start()
    tasks: list = []
    stream = None
    run = None
    try:
        spec = await asyncio.to_thread(_world, hello["url"], hello["symbols"])
        stream = _stream(spec, tasks)
        run = asyncio.ensure_future(stream.run())
        await feeder.ask(cmd="wait", connections=len(stream.connections))
        await feeder.answer(timeout=60)
        # Warm-up: every connection streaming, and the start-up interruption's REST catch-up
        # done (it ends at the first minute boundary after the stream started + the grace).
        async with asyncio.timeout(150):
            while True:
                await _step(stream, feeder, 2000, 4_000)
                if not stream.interruptions:
                    break
        steps = [await _step(stream, feeder, r, int(r * SECONDS)) for r in RATES]
        steps.append(await _step(stream, feeder, 0, MAX_TRADES))
    finally:
        if stream is not None:
            stream.stop()
            try:
                await asyncio.wait_for(run, 30)
            except Exception as exc:  # the figures are in; say why the stop was unclean
                print(f"stream stop: {exc!r}", file=sys.stderr)
    try:
        bare = await _adapter_path(spec, feeder, MAX_TRADES)
    finally:
        await feeder.stop()
    alone, no_io = await asyncio.to_thread(_baselines, 200_000)
    rows = []
    for s in steps:
        label = f"offered {s['rate']:,}/s" if s["rate"] else "as fast as it drains"
        per = s["cpu"] / max(s["trades"], 1)
        rows += [
            row(f"ingest {SYMBOLS} symbols, {label}: trades/s processed", s["trades"] / s["wall"],
                "trades/s", "goal", GOAL, digits=0, ratio_digits=3),
            row(f"ingest, {label}: stream CPU per trade", per * 1e6, "µs",
                "aggregator alone, same trades", alone * 1e6, digits=2, ratio_digits=1),
            row(f"ingest, {label}: stream / feeder cores", s["cpu"] / s["wall"], "cores",
                "feeder cores", s["feeder_cpu"] / s["wall"], digits=3, ratio_digits=1),
        ]
    last = steps[-1]
    capacity = last["trades"] / last["cpu"]
    rows += [
        row("ingest: capacity, trades per stream CPU-second (drain step)", capacity, "trades/s",
            "goal", GOAL, digits=0, ratio_digits=3),
        row("adapter path alone (websockets -> parser -> dedupe -> aggregator), drain: CPU "
            "per trade", bare["cpu"] / max(bare["trades"], 1) * 1e6, "µs", "aggregator alone",
            alone * 1e6, digits=2, ratio_digits=1),
        row("adapter path alone, drain: trades/s processed / cores", bare["trades"] / bare["wall"],
            "trades/s", "cores", bare["cpu"] / bare["wall"], digits=3),
        row("baseline: frames -> aggregator, no I/O (orjson + parser + aggregator)",
            no_io * 1e6, "µs", "aggregator alone", alone * 1e6, digits=2, ratio_digits=1),
    ]
    if len(steps) >= 3:  # marginal cost between the lowest and highest fixed rate
        lo, hi = steps[0], steps[-2]
        cores = [s["cpu"] / s["wall"] for s in (lo, hi)]
        rates = [s["trades"] / s["wall"] for s in (lo, hi)]
        if rates[1] > rates[0]:
            marginal = (cores[1] - cores[0]) / (rates[1] - rates[0])
            rows.append(row("ingest: marginal stream CPU per trade (between fixed rates)",
                            marginal * 1e6, "µs", "aggregator alone", alone * 1e6, digits=2,
                            ratio_digits=1))
    return rows


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        _setup_django(folder)
        return asyncio.run(_run())


if __name__ == "__main__":
    for r in run():
        print(r)
