"""Trade-message parse throughput per venue (messages/s on one core) against plain json.loads.

Measured exactly as the stream does it: ``ws.decode_frame`` (orjson when installed, else the
standard json module) then the venue's pure parser, yielding a ``Trade`` per message.

Run: /work/main/.venv/bin/python bench/bench_exchanges.py
``run()`` returns rows {"name", "value", "unit", "baseline", "baseline_value", "ratio"} for the
project's single ``make bench`` table. Goal: >= 100,000 messages/s per venue.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from markets.exchanges import binance_parse, kr_parse  # noqa: E402
from markets.exchanges.ws import decode_frame  # noqa: E402

PAYLOADS = ROOT / "simulator" / "payloads"
N_MESSAGES = 10_000
REPEATS = 9


def _load(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())["data"]


def _messages() -> dict[str, tuple[list, object]]:
    """Per venue: distinct wire messages (ids, prices and times vary) and the parser."""
    upbit = _load("upbit_ws_trade") | {"sequential_id": 0}
    bithumb = _load("bithumb_ws_trade")
    spot = {"stream": "btcusdt@trade", "data": _load("binance_spot_trade_ws")}
    futures = {"stream": "btcusdt@aggTrade", "data": _load("binance_spot_agg_trade_ws")}

    def vary(base: dict, i: int, venue: str) -> str:
        msg = json.loads(json.dumps(base))
        if venue in ("upbit", "bithumb"):
            msg["sequential_id"] = 1_000_000 + i
            msg["trade_price"] = msg["trade_price"] + i % 50
            msg["trade_timestamp"] += i
            raw = json.dumps(msg)
            return raw.encode() if venue == "upbit" else raw  # Upbit frames are binary
        data = msg["data"]
        data["t" if "t" in data else "a"] = 1_000_000 + i
        data["p"] = f"{float(data['p']) + (i % 50) * 0.001:.8f}"
        data["T"] += i
        return json.dumps(msg)

    def kr(venue):
        def parse(raw):
            return kr_parse.parse_ws_public(decode_frame(raw), venue)
        return parse

    def binance(raw):
        return binance_parse.parse_ws_market(decode_frame(raw))

    return {
        "upbit": ([vary(upbit, i, "upbit") for i in range(N_MESSAGES)], kr("upbit")),
        "bithumb": ([vary(bithumb, i, "bithumb") for i in range(N_MESSAGES)], kr("bithumb")),
        "binance_spot": ([vary(spot, i, "spot") for i in range(N_MESSAGES)], binance),
        "binance_futures": ([vary(futures, i, "futures") for i in range(N_MESSAGES)], binance),
    }


def _once(fn, messages) -> float:
    started = time.perf_counter()
    for raw in messages:
        fn(raw)
    return time.perf_counter() - started


def _rates(fn, baseline, messages) -> tuple[float, float]:
    """Best-of-``REPEATS`` rates, parser and baseline interleaved so load spikes hit both."""
    best_fn = best_base = float("inf")
    for _ in range(REPEATS):
        best_fn = min(best_fn, _once(fn, messages))
        best_base = min(best_base, _once(baseline, messages))
    return len(messages) / best_fn, len(messages) / best_base


def run() -> list[dict]:
    rows = []
    for venue, (messages, parse) in _messages().items():
        assert all(len(parse(m)) == 1 for m in messages[:100]), venue
        value, baseline = _rates(parse, json.loads, messages)
        rows.append({"name": f"exchanges: {venue} ws trade parse", "value": round(value),
                     "unit": "msg/s", "baseline": "json.loads of the same messages",
                     "baseline_value": round(baseline), "ratio": round(value / baseline, 3)})
    return rows


def main() -> None:
    rows = run()
    print(f"{'benchmark':42} {'msg/s':>12} {'json.loads/s':>14} {'ratio':>7}")
    for row in rows:
        print(f"{row['name']:42} {row['value']:>12,} {row['baseline_value']:>14,} "
              f"{row['ratio']:>7.3f}")


if __name__ == "__main__":
    main()
