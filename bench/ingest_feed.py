"""The feeder of ``bench ingest``: Binance spot's combined market streams on 127.0.0.1, served
from pre-encoded WebSocket frames so that the feeder costs next to no CPU.

``python -m bench.ingest_feed --symbols 500 --seed 7`` prints one JSON line
``{"url": "http://127.0.0.1:PORT", "symbols": [...]}`` (busiest first) and then takes one JSON
command a line on stdin, answering each with one JSON line on stdout:

* ``{"cmd": "wait", "connections": N}``: answers once N WebSocket connections are open.
* ``{"cmd": "step", "rate": R, "trades": N}``: sends N trades across the symbols (Zipf-ish:
  weight 1/rank^1.1, every symbol trading), paced at R trades/s in 20 ms slices, or with
  ``"rate": 0`` as fast as the reader drains them (each connection's write buffer is kept
  under 1 MB, so TCP back-pressure paces it). The frames are built before the step starts
  (not timed) and answered ``{"ready": true}``; the step's answer is
  ``{"sent": N, "started": wall_s, "ended": wall_s, "late_slices": k, "build_s": s}``.
* ``{"cmd": "cpu"}``: the feeder's process CPU seconds so far.

What it serves, as the simulator does (``simulator/binance/market_ws.py``), in Binance's compact
JSON: ``/stream?streams=a/b`` with ``{"stream":"<s>@trade","data":{"e":"trade","E":..,"s":..,
"t":..,"p":"..","q":"..","T":..,"m":..,"M":true}}`` frames (text, unmasked, no compression:
Binance's market streams do not offer permessage-deflate); ``GET /api/v3/klines`` answers ``[]``
(the stream's REST catch-up finds nothing to fill) and ``/api/v3/time`` the clock. A frame's
``E`` and ``T`` are written as 13 placeholder digits and set to the wall clock (ms) of the slice
that sends it, a ``bytes.replace`` per slice, so trades are never late to the stream's clock.
Trade ids are unique and increasing per symbol across steps. Pings are answered (aiohttp's
autoping) between slices, so frames are never split.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import numpy as np
from aiohttp import web

SLICE_S = 0.02
HIGH_WATER = 1 << 20
PLACEHOLDER = b"4444444444444"  # 13 digits, the width of a ms time stamp until 2286


def _header(n: int) -> bytes:
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big")
    return bytes((0x81, 127)) + n.to_bytes(8, "big")


def _payload(stream: str, code: str, tid: int, price: float, qty: float, maker, stamp: str
             ) -> bytes:
    return (f'{{"stream":"{stream}","data":{{"e":"trade","E":{stamp},"s":"{code}","t":{tid},'
            f'"p":"{price:.6g}","q":"{qty:.4f}","T":{stamp},"m":{"true" if maker else "false"},'
            f'"M":true}}}}').encode()


def sample_frames(trades: int, symbols: int, seed: int, start_ms: int) -> list[bytes]:
    """``trades`` frame payloads as the feeder sends them (same distribution), time stamped
    from ``start_ms`` at one trade per ms per symbol at most: the in-process baselines."""
    feed = Feed(symbols, seed)
    which = feed.rng.choice(symbols, size=trades, p=feed.weights)
    out = []
    for i, s in enumerate(which.tolist()):
        tid = feed.next_id[s]
        feed.next_id[s] = tid + 1
        out.append(_payload(feed.codes[s].lower() + "@trade", feed.codes[s], tid,
                            feed.levels[s], 1.0, i & 1, str(start_ms + i // 50)))
    return out


class Feed:
    def __init__(self, symbols: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.codes = [f"B{i:03d}USDT" for i in range(1, symbols + 1)]
        weights = 1.0 / np.arange(1, symbols + 1) ** 1.1
        self.weights = weights / weights.sum()
        self.levels = 10.0 ** self.rng.uniform(-2, 5, symbols)
        self.next_id = [1_000_000] * symbols
        self.conns: list[tuple[web.WebSocketResponse, set[int], asyncio.Transport]] = []
        self.opened = asyncio.Event()

    # http ----------------------------------------------------------------------------------
    async def klines(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def server_time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def combined(self, request: web.Request) -> web.WebSocketResponse:
        index = {c.lower() + "@trade": i for i, c in enumerate(self.codes)}
        wanted = {index[s] for s in request.query.get("streams", "").split("/") if s in index}
        ws = web.WebSocketResponse(compress=False, autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        entry = (ws, wanted, request.transport)
        self.conns.append(entry)
        self.opened.set()
        try:
            async for _ in ws:  # subscribe requests and the like: ignored; pings: autoping
                pass
        finally:
            self.conns.remove(entry)
        return ws

    # frames --------------------------------------------------------------------------------
    def _build(self, trades: int, per_slice: int) -> list[list[bytes]]:
        """Slices of whole frames per open connection: ``out[k][c]`` is slice k of conn c."""
        which = self.rng.choice(len(self.codes), size=trades, p=self.weights)
        noise = self.rng.standard_normal(trades) * 1e-3
        qty = self.rng.uniform(0.001, 5.0, trades)
        maker = self.rng.integers(0, 2, trades)
        owner = {}
        for c, (_, wanted, _t) in enumerate(self.conns):
            for s in wanted:
                owner[s] = c
        stamp = PLACEHOLDER.decode()
        names = [c.lower() + "@trade" for c in self.codes]
        slices = []
        for start in range(0, trades, per_slice):
            parts: list[list[bytes]] = [[] for _ in self.conns]
            for i in range(start, min(trades, start + per_slice)):
                s = int(which[i])
                c = owner.get(s)
                if c is None:
                    continue
                tid = self.next_id[s]
                self.next_id[s] = tid + 1
                payload = _payload(names[s], self.codes[s], tid, self.levels[s] * (1 + noise[i]),
                                   qty[i], maker[i], stamp)
                parts[c].append(_header(len(payload)) + payload)
            slices.append([b"".join(p) for p in parts])
        return slices

    async def step(self, rate: float, trades: int, say) -> dict:
        built = time.perf_counter()
        per_slice = max(1, int(rate * SLICE_S)) if rate else 2000
        slices = self._build(trades, per_slice)
        build_s = time.perf_counter() - built
        transports = [transport for _, _, transport in self.conns]  # raw writes, whole frames
        say({"ready": True})
        started = time.time()
        t0 = time.monotonic()
        late = 0
        for k, chunks in enumerate(slices):
            if rate:
                wait = t0 + k * SLICE_S - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif wait < -SLICE_S:
                    late += 1
            while any(t.get_write_buffer_size() > HIGH_WATER for t in transports):
                await asyncio.sleep(0.001)
            now = str(int(time.time() * 1000)).encode()
            for transport, chunk in zip(transports, chunks, strict=True):
                if chunk:
                    transport.write(chunk.replace(PLACEHOLDER, now))
        while any(t.get_write_buffer_size() for t in transports):
            await asyncio.sleep(0.001)
        return {"sent": trades, "started": started, "ended": time.time(), "late_slices": late,
                "build_s": round(build_s, 3)}


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    feed = Feed(args.symbols, args.seed)
    app = web.Application()
    app.router.add_get("/stream", feed.combined)
    app.router.add_get("/api/v3/klines", feed.klines)
    app.router.add_get("/api/v3/time", feed.server_time)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the port chosen

    def say(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say({"url": f"http://127.0.0.1:{port}", "symbols": feed.codes})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "wait":
            while len(feed.conns) < cmd["connections"]:
                await asyncio.sleep(0.05)
            say({"connections": len(feed.conns)})
        elif cmd["cmd"] == "step":
            say(await feed.step(float(cmd["rate"]), int(cmd["trades"]), say))
        elif cmd["cmd"] == "cpu":
            say({"cpu": time.process_time()})
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
