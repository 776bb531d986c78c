"""Market-scale benchmarks (issue 20): one stream process following 500 symbols of the
simulator, and the time from the trade that closes a bar to the order: PAPER (order row saved)
and LIVE (order acknowledged by the simulator's venue).

The simulator runs in a process of its own (``python -m simulator --market-symbols 500``: Zipf
trade rates, bursts, Binance spot protocol on 127.0.0.1, ``--no-rate-limits``), so its CPU is not
the stream's. The stream is the product's :class:`~markets.stream.venue.VenueStream` with the
real Binance adapter, the real store (a scratch SQLite database) and the real channel layer
(Redis); the evaluation task it sends goes through a multiprocessing queue to a worker process
calling ``orders.evaluation.evaluate_bar`` (what the Celery worker runs; the broker hop is not
in it). Two such workers run (the trader queue's concurrency in docker-compose); the paper
phases use the first only.

The clocks: the simulator runs on the wall clock (speed 1), so a bar closes at a real minute
boundary; the run waits for them. Phases, one minute boundary each:

0. ingest: no active config; trades/s received, process CPU per trade over the window, and each
   closed 1m bar's delay from its end to stored and to published (an evaluation task is sent
   only where a config trades: the product's ``orders.stream_gate``);
1. PAPER, 1 active config on the busiest symbol; 2. 100 on it; 3. 1,000 on the ten busiest (100
   each): the trade that closed the bar (its venue time stamp) -> the paper order row committed;
4. LIVE (:mod:`bench.scale_live`): 1 config on a live account on the busiest symbol, and 10
   configs sharing one live account on the second busiest (each symbol's bar in its own worker,
   so neither waits for the other): the trade that closed the bar -> the commit of the order
   row updated with the simulator's answer to the signed REST order (venue order id, status,
   fills). Live orders go only to the simulator on 127.0.0.1.

Baselines (same run): the aggregator alone on the same number of trades (CPU per trade), the
paper 1-config figure for the live 1-config one, and the issue's goals (1 s p99 bar end ->
stored; 100 ms p99 tick -> paper order). ``python -m bench scale``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench import scale_live
from bench.common import percentile, row
from bench.scale_worker import evaluator

ROOT = Path(__file__).resolve().parents[1]
MINUTE = 60_000
SYMBOLS = int(os.environ.get("BENCH_SCALE_SYMBOLS", "500"))
RATE = float(os.environ.get("BENCH_SCALE_RATE", "4"))  # mean trades/s per symbol
GOAL_STORED_P99_MS = 1000.0
#: The simulator publishes the trades of each tick at its end (a venue pushes each at once):
#: a trade waits up to a tick before it is sent, which the tick-to-order figures include.
TICK_S = float(os.environ.get("BENCH_SCALE_TICK_S", "0.025"))
GOAL_ORDER_P99_MS = 100.0


def _setup_django(folder: str) -> None:
    """A scratch SQLite file; or, under ``devservices with-postgres`` (a private, throwaway
    server) with ``BENCH_SCALE_POSTGRES=1``, that PostgreSQL: the stream's bar writes and the
    worker's order transactions then do not wait on SQLite's single writer lock."""
    on_postgres = os.environ.get("BENCH_SCALE_POSTGRES") == "1"
    if not (on_postgres and os.environ.get("DATABASE_URL", "").startswith("postgres")):
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _simulator() -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--venues", "binance", "--market-symbols",
         str(SYMBOLS), "--trade-rate", str(RATE), "--history-days", "0.06", "--seed", "11",
         "--burst-every", "60", "--no-rate-limits", "--tick-s", str(TICK_S)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the simulator did not start")
    urls = json.loads(line)["simexchange"]["binance"]
    return proc, urls["rest"], urls["ws"]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _world(rest: str, ws: str):
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from markets.models import Exchange, Symbol
    from simulator.server import DEFAULT_ACCOUNTS, SimConfig
    from simulator.symbols import MarketScale

    config = SimConfig(seed=11, trade_rate=RATE, scale=MarketScale(symbols=SYMBOLS))
    specs = [spec for spec, _ in config.venue_symbols("binance")]
    ranked = [spec.symbol for spec in specs]  # busiest first
    exchange = Exchange.objects.create(slug="scale", name="Scale", adapter="binance_spot",
                                       rest_url=rest, ws_url=ws)
    Symbol.objects.bulk_create(
        Symbol(exchange=exchange, code=code, base=code.removesuffix("USDT"), quote="USDT",
               timeframes=["1m"], min_notional=Decimal("5"), max_leverage=1)
        for code in ranked
    )
    user = get_user_model().objects.create_user("bench-scale")
    # For the live phase: the simulator's demo key and each symbol's tick and step.
    venue = {"key": DEFAULT_ACCOUNTS["binance"][0][:2],
             "rules": {spec.symbol: (spec.tick, spec.step) for spec in specs[:3]}}
    return exchange, {s.code: s for s in Symbol.objects.filter(exchange=exchange)}, ranked, user, \
        venue


def _configs(user, exchange, symbols, codes: list[str], per_symbol: int, tag: str) -> None:
    from decimal import Decimal

    from bench.bench_trading import _strategy
    from markets.models import Account, Balance
    from strategies.models import StrategyConfig

    _strategy()
    StrategyConfig.objects.filter(is_active=True).update(is_active=False)
    for code in codes:
        for k in range(per_symbol):
            account = Account.objects.create(owner=user, exchange=exchange, label=f"{tag}{code}{k}")
            Balance.objects.create(account=account, asset="USDT", free=Decimal("1000000"))
            StrategyConfig.objects.create(owner=user, name=f"{tag}{code}{k}",
                                          strategy="bench_alternate", symbol=symbols[code],
                                          timeframe="1m", account=account, is_active=True)


def _set_offset(offset: int) -> None:
    from strategies.models import StrategyConfig

    StrategyConfig.objects.filter(is_active=True).update(params={"offset": offset})


class Probe:
    """Time stamps along the path, keyed by (symbol, bar open ms); wall clock in ms."""

    def __init__(self) -> None:
        self.trades = 0
        self.closed_by: dict[tuple, float] = {}  # venue time of the trade that closed the bar
        self.closed_at: dict[tuple, float] = {}  # wall clock when the aggregator closed it
        self.stored: dict[tuple, float] = {}
        self.published: dict[tuple, float] = {}
        self.sent: dict[tuple, float] = {}
        self.orders: list[tuple[tuple, float]] = []  # order rows saved (paper and live)
        # Live orders (bench.scale_live): "acked" -> [(key, wall ms the venue's answer was
        # committed)], "place" / "balances" -> [(key, REST round trip ms)].
        self.live: dict[str, list[tuple[tuple, float]]] = {"acked": [], "place": [],
                                                            "balances": []}


def _stream(spec, probe: Probe, evaluate, gate):
    from markets.adapters import adapter_for, venue_limiter
    from markets.aggregator import Bar
    from markets.candles import last_open_time_ms, upsert_candles
    from markets.stream.runner import default_publish, default_watched
    from markets.stream.venue import VenueStream

    limiter = venue_limiter(spec)
    publish = default_publish()

    def store(symbol_id, tf, rows):
        result = upsert_candles(symbol_id, tf, rows)
        now = time.time() * 1000
        for bar in rows:
            if isinstance(bar, Bar):  # a bar the stream built (not a REST row)
                probe.stored.setdefault((bar.symbol, bar.open_time_ms), now)
        return result

    async def published(group, message):
        await publish(group, message)
        if message.get("closed"):
            probe.published.setdefault((message["symbol"], message["bar"]["t"]),
                                       time.time() * 1000)

    def send_task(name, kwargs):
        if "bar_time_ms" in kwargs:
            key = (kwargs["symbol"], kwargs["bar_time_ms"])
            probe.sent.setdefault(key, time.time() * 1000)
            evaluate(key)

    def adapter():
        return adapter_for(spec, limiter=limiter)

    stream = VenueStream(spec, rest_adapter=adapter(), stream_adapter_factory=adapter,
                         publish=published, send_task=send_task, evaluate_task="bench.evaluate",
                         store=store, last_stored=last_open_time_ms, gate=gate,
                         watched=default_watched())
    add_trade = stream.agg.add_trade

    def counted(symbol, trade_id, ts_ms, price, qty):
        probe.trades += 1
        closed = add_trade(symbol, trade_id, ts_ms, price, qty)
        if closed:
            now = time.time() * 1000
            for bar in closed:
                probe.closed_by.setdefault((bar.symbol, bar.open_time_ms), ts_ms)
                probe.closed_at.setdefault((bar.symbol, bar.open_time_ms), now)
        return closed

    stream.agg.add_trade = counted
    return stream


async def _until_boundary(after_s: float) -> int:
    """Sleep until the first minute boundary at least ``after_s`` from now; its ms."""
    now = time.time() * 1000
    boundary = (int(now + after_s * 1000) // MINUTE + 1) * MINUTE
    await asyncio.sleep((boundary - now) / 1000)
    return boundary


async def _settle(probe: Probe, boundary: int, keys: set | None, timeout_s: float = 15.0) -> None:
    """Wait until the bars of ``boundary - 1 min`` are stored (and the orders of ``keys`` are
    in), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    bar = boundary - MINUTE
    while time.monotonic() < deadline:
        sent = sum(1 for (_, t) in probe.stored if t == bar)
        orders = {k for k, _ in probe.orders if k[1] == bar}
        if sent >= 0.95 * SYMBOLS and (keys is None or keys <= orders):
            await asyncio.sleep(0.5)
            return
        await asyncio.sleep(0.1)


def _delays(stamps: dict, bar: int) -> list[float]:
    return [t - (open_ms + MINUTE) for (_, open_ms), t in stamps.items() if open_ms == bar]


def _aggregator_cpu_per_trade(n: int) -> float:
    from markets.aggregator import BarAggregator

    agg = BarAggregator(("1m",))
    rng = np.random.default_rng(1)
    codes = [f"S{i}" for i in rng.integers(0, SYMBOLS, n)]
    ts = (1_767_225_600_000 + np.arange(n) * (120_000 // n)).tolist()
    prices = (100 + rng.standard_normal(n)).tolist()
    started = time.process_time()
    for i in range(n):
        agg.add_trade(codes[i], i + 1, ts[i], prices[i], 1.0)
    return (time.process_time() - started) / n


async def _run(rest: str, ws: str, sim_pid: int) -> list[dict]:
    from markets.stream.config import SymbolSpec, VenueSpec

    exchange, symbols, ranked, user, venue = await asyncio.to_thread(_world, rest, ws)
    spec = VenueSpec("scale", "binance_spot", rest, ws, tuple(
        SymbolSpec(code, symbols[code].id, ("1m",)) for code in ranked))
    from orders.stream_gate import StreamGate

    probe = Probe()
    # Two workers (docker-compose runs the trader queue with concurrency 2); the paper phases
    # use the first only, the live phase sends the second busiest symbol's bars to the second.
    workers = [evaluator(probe, os.environ["DATABASE_URL"]) for _ in range(2)]
    second: set[str] = set()

    def evaluate(key) -> None:
        workers[1 if key[0] in second else 0][1](("eval", key))

    def warm(account_ids) -> None:
        for (_, put), pk in zip(workers, account_ids, strict=True):
            put(("warm", pk))

    gate = StreamGate()  # the product's: evaluation tasks only where a config trades
    await gate.refresh()
    stream = _stream(spec, probe, evaluate, gate)
    # Ten open charts (the five busiest symbols and the five quietest): the stream pushes their
    # closed bars before the evaluation tasks, the others' after.
    from channels.layers import get_channel_layer

    from markets import wire

    layer = get_channel_layer()
    chart = await layer.new_channel()
    charted = ranked[:5] + ranked[-5:]
    for code in charted:
        await layer.group_add(wire.bars_group("scale", code, "1m"), chart)
    task = asyncio.ensure_future(stream.run())
    rows = []
    try:
        async with asyncio.timeout(60):
            while not probe.trades:  # connected and streaming
                await asyncio.sleep(0.1)
        # The first whole minute streamed after the start-up catch-up (bars an interruption
        # overlaps are REST's): from boundary B1 to B2, measured at B2.
        await _until_boundary(3.0)
        trades0, cpu0, sim0, wall0 = probe.trades, time.process_time(), _cpu_s(sim_pid), \
            time.perf_counter()
        boundary = await _until_boundary(0.0)
        await _settle(probe, boundary, None)
        trades, cpu, wall = probe.trades - trades0, time.process_time() - cpu0, \
            time.perf_counter() - wall0
        sim_cpu = _cpu_s(sim_pid) - sim0
        base = _aggregator_cpu_per_trade(max(trades, 50_000))
        bar = boundary - MINUTE
        per_trade = cpu / max(trades, 1)
        rows += [
            row(f"stream ingest, {SYMBOLS} symbols: trades received", trades / wall, "trades/s",
                "goal", 50_000, digits=1, ratio_digits=3),
            row("stream ingest: process CPU per trade", per_trade * 1e6, "µs",
                "aggregator alone, same number of trades", base * 1e6, digits=2,
                ratio_digits=1),
            row("stream ingest: trades per CPU-second (capacity)", 1 / per_trade, "trades/s",
                "goal", 50_000, digits=0, ratio_digits=2),
            row("stream ingest: process CPU share over the window", cpu / wall, "cores",
                None, None, digits=3),
            row("stream ingest: simulator CPU share (its own process)", sim_cpu / wall, "cores",
                None, None, digits=3),
        ]
        watched = {k: t for k, t in probe.published.items() if k[0] in charted}
        for name, stamps in (("stored", probe.stored), ("published", probe.published),
                             ("published, the 10 with an open chart", watched)):
            delays = _delays(stamps, bar)
            for pct in (50, 99):
                rows.append(row(f"closed 1m bar end -> {name} p{pct} ({len(delays)} bars)",
                                percentile(delays, pct), "ms", "goal p99 (stored)",
                                GOAL_STORED_P99_MS, digits=1, ratio_digits=2))
        paper = {}
        for label, codes, per in (("1 config", ranked[:1], 1), ("100 configs, 1 symbol",
                                  ranked[:1], 100), ("1,000 configs, 10 symbols",
                                                     ranked[:10], 100)):
            await asyncio.to_thread(_configs, user, exchange, symbols, codes, per, label[:4])
            await gate.refresh()  # the stream runner does this every 2 s
            boundary = (int(time.time() * 1000 + 3000) // MINUTE + 1) * MINUTE
            bar = boundary - MINUTE
            # The strategy enters on even minutes (offset shifts it): this bar is an entry.
            await asyncio.to_thread(_set_offset, (bar // MINUTE) % 2)
            await asyncio.sleep(max(0.0, boundary / 1000 - time.time()))
            await _settle(probe, boundary, {(c, bar) for c in codes}, timeout_s=30.0)
            latencies = [t - probe.closed_by.get(k, k[1] + MINUTE) for k, t in probe.orders
                         if k[1] == bar]
            paper[label.split()[0]] = latencies
            rows += [row(f"tick to paper order saved, {label}: p{pct} ({len(latencies)} orders)",
                         percentile(latencies, pct), "ms", "goal p99", GOAL_ORDER_P99_MS,
                         digits=1, ratio_digits=2) for pct in (50, 99)]
            # Where the time goes: the stream's part (tick -> evaluation task sent) and the
            # worker's (task sent -> the symbol's last order saved).
            keys = [(c, bar) for c in codes]
            stream_part = [probe.sent[k] - probe.closed_by.get(k, bar + MINUTE)
                           for k in keys if k in probe.sent]
            last = {}
            for k, t in probe.orders:
                if k in probe.sent:
                    last[k] = max(last.get(k, 0.0), t)
            worker_part = [t - probe.sent[k] for k, t in last.items() if k[1] == bar]
            rows += [row(f"  of which tick -> evaluation task sent, {label}: p{pct}",
                         percentile(stream_part, pct), "ms", None, None, digits=1)
                     for pct in (50, 99)]
            # The stream's part split: the trade's way to the aggregator (the simulator's tick,
            # the socket, the read), the bar closed -> stored, stored -> task sent.
            split = [(probe.closed_at[k] - probe.closed_by[k], probe.stored[k] - probe.closed_at[k],
                      probe.sent[k] - probe.stored[k]) for k in keys
                     if k in probe.sent and k in probe.closed_at and k in probe.stored
                     and k in probe.closed_by]
            for i, name in enumerate(("trade (venue time) -> closed by the stream",
                                      "closed -> stored", "stored -> evaluation task sent")):
                rows.append(row(f"    {name}, {label}: p99",
                                percentile([s[i] for s in split], 99), "ms", None, None,
                                digits=1))
            rows += [row(f"  of which task sent -> last order saved, {label}: p{pct}",
                         percentile(worker_part, pct), "ms", None, None, digits=1)
                     for pct in (50, 99)]
            # The worker's part split: waiting for the worker (task sent -> job picked), and
            # the job (picked -> last order saved) with the worker's CPU time for it.
            picked = {k: t for k, t in probe.live.get("picked", []) if k in last}
            cpu = {}
            for k, c in probe.live.get("saved_cpu", []):
                if k in last:
                    cpu[k] = max(cpu.get(k, 0.0), c)
            waits = [picked[k] - probe.sent[k] for k in last if k in picked]
            jobs = [last[k] - picked[k] for k in last if k in picked]
            for name, values in (("task sent -> picked by the worker", waits),
                                 ("picked -> last order saved (wall)", jobs),
                                 ("picked -> last order saved (worker CPU)", list(cpu.values()))):
                rows.append(row(f"    {name}, {label}: p99", percentile(values, 99), "ms",
                                None, None, digits=1))
        second.add(ranked[1])
        rows += await scale_live.phase(probe, gate, (user, exchange, symbols, ranked, venue),
                                       warm, paper, _set_offset)
    finally:
        stream.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
        for stop_worker, _ in workers:
            await asyncio.to_thread(stop_worker)
    return rows


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        _setup_django(folder)
        proc, rest, ws = _simulator()
        try:
            return asyncio.run(_run(rest, ws, proc.pid))
        finally:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    for r in run():
        print(r)
