"""Command line of the simulator: ``python -m simulator`` and ``manage.py simexchange``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from simulator.faults import Faults
from simulator.server import VENUES, SimConfig, Simulator
from simulator.symbols import MarketScale


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags, shared by ``python -m simulator`` and the management command."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--upbit-port", type=int, default=0, help="Upbit protocol port (0 = free)")
    parser.add_argument("--binance-port", type=int, default=0, help="Binance spot port (0 = free)")
    parser.add_argument(
        "--futures-port", type=int, default=0, help="Binance USDⓈ-M futures port (0 = free)"
    )
    parser.add_argument(
        "--bithumb-port", type=int, default=0, help="Bithumb protocol port (0 = free)"
    )
    parser.add_argument(
        "--venues", default=",".join(VENUES), help=f"comma-separated subset of {','.join(VENUES)}"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of prices, ids and faults")
    parser.add_argument(
        "--history-days", type=float, default=2.0, help="days of past 1m candles generated at start"
    )
    parser.add_argument(
        "--trade-rate", type=float, default=2.0, help="live trades per second per symbol"
    )
    parser.add_argument(
        "--market-symbols",
        type=int,
        default=0,
        help="serve this many symbols per venue (the defaults, then made-up ones), with "
        "Zipf-distributed trade rates whose mean is --trade-rate (0 = the defaults only)",
    )
    parser.add_argument(
        "--zipf", type=float, default=1.1, help="exponent of the trade-rate ranks (1/rank^zipf)"
    )
    parser.add_argument(
        "--burst-every",
        type=float,
        default=0.0,
        help="a symbol bursts every this many seconds on average (0 = no bursts)",
    )
    parser.add_argument("--burst-seconds", type=float, default=3.0, help="length of a burst")
    parser.add_argument(
        "--burst-factor", type=float, default=8.0, help="trade-rate multiple during a burst"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument(
        "--tick-s",
        type=float,
        default=0.1,
        help="how often the clock advances and the trades since the last tick are published "
        "(a venue pushes each trade at once: a shorter tick is closer to it, at more CPU)",
    )
    parser.add_argument(
        "--now-ms", type=int, default=None, help="simulated clock at start, ms UTC (default: now)"
    )
    parser.add_argument(
        "--replay",
        action="append",
        default=[],
        metavar="SYMBOL=CSV",
        help="replay a candle CSV (open_time,open,high,low,close,volume) for SYMBOL",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fault: added REST latency")
    parser.add_argument("--error-ratio", type=float, default=0.0, help="fault: share of 5xx")
    parser.add_argument("--no-rate-limits", action="store_true", help="do not enforce budgets")
    parser.add_argument(
        "--rate-limit-budget",
        type=int,
        default=None,
        help="fault: override every request budget per window",
    )
    parser.add_argument(
        "--no-retry-after", action="store_true", help="fault: no Retry-After on 429 and 418"
    )
    parser.add_argument(
        "--ban-after",
        type=int,
        default=None,
        help="fault: 418 ban after this many requests sent while told to wait (default: never)",
    )
    parser.add_argument(
        "--ban-seconds", type=float, default=120.0, help="length of the first 418 ban (doubles)"
    )
    parser.add_argument(
        "--ws-drop-every",
        type=float,
        default=None,
        help="fault: close each WebSocket after this many seconds",
    )
    parser.add_argument(
        "--order-delay",
        type=float,
        default=0.0,
        help="fault: seconds an executed order's response is held back",
    )
    parser.add_argument(
        "--malformed-candle-share",
        type=float,
        default=0.0,
        help="fault: share (0..1) of REST klines sent with their close above their high",
    )


def config_from(options: argparse.Namespace | dict) -> SimConfig:
    o = options if isinstance(options, dict) else vars(options)
    replay = {}
    for item in o.get("replay") or []:
        symbol, sep, path = item.partition("=")
        if not sep or not symbol or not path:
            raise ValueError(f"--replay expects SYMBOL=CSV, got {item!r}")
        replay[symbol] = path
    tick_s = o.get("tick_s", 0.1)
    if not 0.001 <= tick_s <= 10:
        raise ValueError(f"--tick-s must be between 0.001 and 10 seconds, got {tick_s}")
    faults = Faults(
        latency_ms=o["latency_ms"],
        error_ratio=o["error_ratio"],
        rate_limits=not o["no_rate_limits"],
        rate_limit_budget=o["rate_limit_budget"],
        retry_after=not o.get("no_retry_after", False),
        ban_after=o.get("ban_after"),
        ban_s=o.get("ban_seconds", 120.0),
        ws_drop_every_s=o["ws_drop_every"],
        order_delay_s=o["order_delay"],
        malformed_candle_share=o.get("malformed_candle_share", 0.0),
    )
    return SimConfig(
        host=o["host"],
        upbit_port=o["upbit_port"],
        binance_port=o["binance_port"],
        futures_port=o["futures_port"],
        bithumb_port=o.get("bithumb_port", 0),
        venues=tuple(v for v in o["venues"].split(",") if v),
        seed=o["seed"],
        now_ms=o["now_ms"],
        speed=o["speed"],
        tick_s=tick_s,
        history_days=o["history_days"],
        trade_rate=o["trade_rate"],
        replay=replay,
        faults=faults,
        scale=MarketScale(
            symbols=o.get("market_symbols", 0),
            zipf=o.get("zipf", 1.1),
            burst_every_s=o.get("burst_every", 0.0),
            burst_s=o.get("burst_seconds", 3.0),
            burst_factor=o.get("burst_factor", 8.0),
        ),
    )


async def run(config: SimConfig, out=sys.stdout) -> None:
    """Serve until SIGINT/SIGTERM; prints one JSON line with the URLs once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with Simulator(config) as sim:
        urls = {name: {"rest": sim.url(name), "ws": sim.url(name, "ws")} for name in sim.venues}
        print(json.dumps({"simexchange": urls}), file=out, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Local exchange simulator (Upbit, Bithumb and Binance protocols) on 127.0.0.1.",
    )
    add_arguments(parser)
    options = parser.parse_args(argv)
    try:
        config = config_from(options)
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(run(config))
    return 0
