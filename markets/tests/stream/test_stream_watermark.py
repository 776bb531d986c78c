"""A quiet symbol's bar closes at its connection's watermark (issue 20: closed bars stored within
1 s of their end), a trade arriving after that takes the bar from REST, and the gate decides
which closed bars and price updates send a task. Scripted Upbit frames over a real socket; the
venue clock is the test's."""

from __future__ import annotations

import asyncio
import json

import websockets

from markets.candle_contract import CandleRow
from markets.exchanges import get_adapter
from markets.stream import StreamConfig, SymbolSpec, VenueSpec, VenueStream

from .test_stream import EVALUATE, T0, Recorder, wait_until

GUARD = "orders.tasks.exit_guard"
BTC, ETH = "KRW-BTC", "KRW-ETH"
# The grace is far longer than the test: anything closed early was closed by the watermark.
CONFIG = StreamConfig(grace_ms=30_000, margin_ms=500, watermark_lag_ms=300, fill_retry_s=0.2)


def frame(code, seq, ts, price, qty=0.01):
    return json.dumps({"type": "trade", "code": code, "trade_price": price,
                       "trade_volume": qty, "ask_bid": "BID", "trade_timestamp": ts,
                       "timestamp": ts, "sequential_id": seq, "stream_type": "REALTIME"})


class Rest:
    """The venue's REST candles, as the repair fetches them."""

    def __init__(self):
        self.candles: dict[tuple[str, int], CandleRow] = {}
        self.calls: list[tuple[str, str, int, int]] = []

    def fetch_candles(self, code, tf, start, end):
        self.calls.append((code, tf, start, end))
        return [row for (c, t), row in sorted(self.candles.items())
                if c == code and start <= t < end]

    def close(self):
        pass


class Script:
    """A scripted venue: the test hands it frames phase by phase and moves its clock."""

    def __init__(self):
        self.now = T0 + 500
        self.queue: asyncio.Queue = asyncio.Queue()

    async def handler(self, ws):
        await ws.recv()  # the subscription
        closed = asyncio.ensure_future(ws.wait_closed())
        while True:
            item = asyncio.ensure_future(self.queue.get())
            await asyncio.wait({item, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not item.done():
                item.cancel()
                return
            ts, message = item.result()
            self.now = max(self.now, ts)
            await ws.send(message)

    def send(self, code, seq, ts, price):
        self.queue.put_nowait((ts, frame(code, seq, ts, price)))


async def run_stream(script, *, rest=None, gate=None, exit_guard_task=None):
    stored: list[tuple[int, str, object]] = []

    def store(symbol_id, tf, rows):
        stored.extend((symbol_id, tf, r) for r in rows)
        return len(rows), 0

    server = await websockets.serve(script.handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spec = VenueSpec("script", "upbit", "http://127.0.0.1:1", f"ws://127.0.0.1:{port}",
                     (SymbolSpec(BTC, 1, ("1m",)), SymbolSpec(ETH, 2, ("1m",))))

    def adapter():
        return get_adapter("upbit", rest_url=spec.rest_url, ws_url=spec.ws_url,
                           clock=lambda: script.now / 1000.0)

    rec = Recorder()
    stream = VenueStream(spec, rest_adapter=rest or Rest(), stream_adapter_factory=adapter,
                         publish=rec.publish, send_task=rec.send_task, evaluate_task=EVALUATE,
                         clock_ms=lambda: script.now, config=CONFIG, store=store,
                         last_stored=lambda *a: None, gate=gate,
                         exit_guard_task=exit_guard_task)
    task = asyncio.ensure_future(stream.run())
    return stream, rec, stored, task, server


async def stop(stream, task, server):
    stream.stop()
    await asyncio.wait_for(task, 10)
    server.close()
    await server.wait_closed()


def bars_of(stored, symbol_id, t):
    return [r for sid, tf, r in stored if sid == symbol_id and tf == "1m" and r.open_time_ms == t]


async def start_minute_one(script, stream):
    """Minute 0 is the start-up interruption's (REST's); both symbols trade in minute 1, the
    quiet one once."""
    script.send(BTC, 1, T0 + 1_000, 100.0)
    script.send(ETH, 2, T0 + 1_500, 10.0)
    script.send(ETH, 3, T0 + 61_000, 11.0)
    script.send(BTC, 4, T0 + 62_000, 101.0)
    assert await wait_until(lambda: stream.counters()["trades"] == 4, 10), stream.counters()


async def test_a_quiet_symbols_bar_closes_at_the_connection_watermark_not_after_the_grace():
    script = Script()
    stream, rec, stored, task, server = await run_stream(script)
    try:
        await start_minute_one(script, stream)
        script.send(BTC, 5, T0 + 120_100, 102.0)  # closes BTC's minute 1 (its own trade) ...
        assert await wait_until(lambda: bars_of(stored, 1, T0 + 60_000), 10)
        await asyncio.sleep(0.6)  # two clock-loop rounds: ... 100 ms past the end < the lag
        assert not bars_of(stored, 2, T0 + 60_000)
        script.send(BTC, 7, T0 + 120_400, 103.0)  # 400 ms past: ETH's minute 1 closes
        assert await wait_until(lambda: bars_of(stored, 2, T0 + 60_000), 10)
        assert script.now < T0 + 120_000 + CONFIG.grace_ms  # long before the grace
        [eth] = bars_of(stored, 2, T0 + 60_000)
        assert (eth.open, eth.close, eth.volume) == (11.0, 11.0, 0.01)
        assert await wait_until(lambda: (ETH, T0 + 60_000) in {
            (k["symbol"], k["bar_time_ms"]) for _, k in rec.tasks}, 5)
    finally:
        await stop(stream, task, server)
    assert stream.counters()["late_skipped"] == 0 and stream.late_repairs == 0


async def test_a_trade_arriving_after_the_watermark_closed_its_bar_takes_that_bar_from_rest():
    script, rest = Script(), Rest()
    stream, rec, stored, task, server = await run_stream(script, rest=rest)
    try:
        await start_minute_one(script, stream)
        script.send(BTC, 5, T0 + 121_500, 102.0)
        assert await wait_until(lambda: bars_of(stored, 2, T0 + 60_000), 10)
        # The venue's minute 1 of ETH has a second trade, which arrives only now.
        rest.candles[(ETH, T0 + 60_000)] = CandleRow(T0 + 60_000, 11.0, 12.0, 11.0, 12.0, 0.02)
        script.send(ETH, 8, T0 + 61_500, 12.0)
        assert await wait_until(lambda: stream.late_repairs == 1, 10)
        assert stream.counters()["late_skipped"] == 1
        # REST is asked once the grace has passed (the venue's candle is final then).
        script.now = T0 + 120_000 + CONFIG.grace_ms + 1_000
        assert await wait_until(lambda: len(bars_of(stored, 2, T0 + 60_000)) == 2, 10)
        assert await wait_until(lambda: not stream.repairs and not stream.interruptions, 5)
    finally:
        await stop(stream, task, server)
    first, repaired = bars_of(stored, 2, T0 + 60_000)
    assert (first.close, first.volume) == (11.0, 0.01)  # the stream's, one trade short
    assert (repaired.close, repaired.volume) == (12.0, 0.02)  # the venue's, stored over it
    assert (ETH, "1m", T0 + 60_000, T0 + 120_000) in rest.calls
    pushed = [m["bar"] for _, g, m in rec.messages
              if g == "bars.script.KRW-ETH.1m" and m["closed"] and m["bar"]["t"] == T0 + 60_000]
    assert [b["c"] for b in pushed] == [11.0, 12.0]  # pushed, then pushed again corrected
    evaluated = [(k["symbol"], k["bar_time_ms"]) for name, k in rec.tasks if name == EVALUATE]
    assert evaluated.count((ETH, T0 + 60_000)) == 1  # a correction is not traded twice


class Gate:
    def __init__(self, evaluate=(), guard=(), broken=False):
        self.evaluate, self.guard, self.broken = set(evaluate), set(guard), broken

    def wants(self, venue, code, tf):
        if self.broken:
            raise RuntimeError("gate down")
        return code in self.evaluate

    def guards(self, venue, code):
        if self.broken:
            raise RuntimeError("gate down")
        return code in self.guard


async def test_the_gate_picks_the_bars_that_send_an_evaluation_and_the_prices_an_exit_guard():
    script = Script()
    stream, rec, stored, task, server = await run_stream(
        script, gate=Gate(evaluate={BTC}, guard={ETH}), exit_guard_task=GUARD)
    try:
        await start_minute_one(script, stream)
        script.send(BTC, 5, T0 + 121_500, 102.0)
        assert await wait_until(lambda: len(bars_of(stored, 2, T0 + 60_000)) == 1, 10)
        assert await wait_until(lambda: stream.evaluations_skipped >= 1, 5)
        assert await wait_until(lambda: any(n == GUARD for n, _ in rec.tasks), 5)
    finally:
        await stop(stream, task, server)
    evaluated = {k["symbol"] for name, k in rec.tasks if name == EVALUATE}
    guarded = {k["symbol"] for name, k in rec.tasks if name == GUARD}
    assert evaluated == {BTC} and guarded == {ETH}
    # Both symbols' bars were still stored and pushed.
    pushed = {m["symbol"] for _, g, m in rec.messages if m["type"] == "bar.update" and m["closed"]}
    assert pushed == {BTC, ETH}


async def test_a_failing_gate_sends_every_task_rather_than_miss_one():
    script = Script()
    stream, rec, _stored, task, server = await run_stream(
        script, gate=Gate(broken=True), exit_guard_task=GUARD)
    try:
        await start_minute_one(script, stream)
        script.send(BTC, 5, T0 + 121_500, 102.0)
        assert await wait_until(lambda: {k["symbol"] for n, k in rec.tasks if n == EVALUATE}
                                == {BTC, ETH}, 10)
        assert await wait_until(lambda: {k["symbol"] for n, k in rec.tasks if n == GUARD}
                                == {BTC, ETH}, 5)
    finally:
        await stop(stream, task, server)
    assert stream.evaluations_skipped == 0


async def test_forming_bars_go_only_to_groups_a_chart_listens_to_and_tickers_go_as_one_message():
    script = Script()
    asked: list[list[str]] = []

    async def watched(groups):
        asked.append(list(groups))
        return {"bars.script.KRW-BTC.1m"}

    stream, rec, _stored, task, server = await run_stream(script)
    stream.watched_fn = watched
    try:
        await start_minute_one(script, stream)
        assert await wait_until(lambda: any(
            g == "markets" and {s for s, _, _ in m["tickers"]} == {BTC, ETH}
            for _, g, m in rec.messages), 5)
        await asyncio.sleep(0.6)
    finally:
        await stop(stream, task, server)
    forming = {g for _, g, m in rec.messages if m["type"] == "bar.update" and not m["closed"]}
    assert forming == {"bars.script.KRW-BTC.1m"}
    assert asked and set(asked[0]) == {"bars.script.KRW-BTC.1m", "bars.script.KRW-ETH.1m"}
    # Both symbols' prices in one tickers.update per tick, not one message per symbol.
    tickers = [m for _, g, m in rec.messages if g == "markets"]
    assert all(m["type"] == "tickers.update" and m["venue"] == "script" for m in tickers)


async def test_without_an_answer_on_open_charts_every_forming_bar_is_pushed():
    script = Script()

    async def broken(groups):
        raise ConnectionError("redis down")

    stream, rec, _stored, task, server = await run_stream(script)
    stream.watched_fn = broken
    try:
        await start_minute_one(script, stream)
        assert await wait_until(lambda: {
            g for _, g, m in rec.messages if m["type"] == "bar.update" and not m["closed"]}
            == {"bars.script.KRW-BTC.1m", "bars.script.KRW-ETH.1m"}, 5)
    finally:
        await stop(stream, task, server)


async def test_the_redis_layer_names_the_groups_with_a_listener(redis_url):
    from channels.layers import get_channel_layer

    from markets.stream.runner import default_watched

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("bars.script.KRW-BTC.1m", channel)
    try:
        watched = default_watched()
        assert await watched(["bars.script.KRW-BTC.1m", "bars.script.KRW-ETH.1m"]) == {
            "bars.script.KRW-BTC.1m"}
    finally:
        await layer.group_discard("bars.script.KRW-BTC.1m", channel)
    assert await watched(["bars.script.KRW-BTC.1m"]) == set()


async def test_a_batch_pushes_watched_bars_then_sends_the_evaluations_then_pushes_the_rest():
    """On a minute boundary hundreds of bars close at once: the tasks must not wait behind
    pushes nobody reads, and a watched chart must still see its bar before its signal."""
    script = Script()
    events: list[tuple[str, str]] = []
    stream, _rec, _stored, task, server = await run_stream(script)
    publish, send = stream.publish_fn, stream.send_task_fn

    async def recording_publish(group, message):
        if message.get("closed"):
            events.append(("push", message["symbol"]))
        await publish(group, message)

    def recording_send(name, kwargs):
        events.append(("task", kwargs["symbol"]))
        send(name, kwargs)

    async def watched(groups):
        return {"bars.script.KRW-BTC.1m"}

    stream.publish_fn, stream.send_task_fn, stream.watched_fn = (
        recording_publish, recording_send, watched)
    try:
        script.send(BTC, 1, T0 + 1_000, 100.0)
        script.send(ETH, 2, T0 + 1_500, 10.0)
        assert await wait_until(lambda: stream.watched_groups is not None, 5)
        # Both minute-1 bars close in one clock tick (neither has traded since), so they are
        # stored in one batch.
        script.send(ETH, 3, T0 + 61_000, 11.0)
        script.send(BTC, 4, T0 + 62_000, 101.0)
        assert await wait_until(lambda: stream.counters()["trades"] == 4, 5)
        script.now = T0 + 120_000 + CONFIG.grace_ms + 1
        assert await wait_until(lambda: len(events) == 4, 10), events
    finally:
        await stop(stream, task, server)
    assert events == [("push", BTC), ("task", BTC), ("task", ETH), ("push", ETH)] or \
        events == [("push", BTC), ("task", ETH), ("task", BTC), ("push", ETH)]
