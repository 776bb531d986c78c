"""Streams read in batches (issue 20): every message already received is parsed in one go and
handed over as one list; the items, their order, the bad-frame counting, a parser's restart and
the duplicate filter are as when they were read one by one."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from markets.exchanges import get_adapter
from markets.exchanges import ws as ws_module
from markets.exchanges.errors import AuthenticationError, StreamRestart

from .conftest import load


def _port(ws_server) -> int:
    return next(iter(ws_server.sockets)).getsockname()[1]


def _parse(msg):
    if "restart" in msg:
        raise StreamRestart("going away", ("re-sync",))
    if "auth" in msg:
        raise AuthenticationError("key revoked", venue="test")
    return [msg["n"]]


MESSAGES = [json.dumps({"n": 0}), json.dumps({"n": 1}), "not json", json.dumps({"n": 2}),
            json.dumps({"restart": True}), json.dumps({"n": 3})]


async def _buffered_connection(port: int, count: int):
    conn = await connect(f"ws://127.0.0.1:{port}")
    async with asyncio.timeout(10):
        while len(conn.recv_messages.frames) < count:  # all received before the first read
            await asyncio.sleep(0.01)
    return conn


async def _serving(messages):
    async def handler(conn):
        for message in messages:
            await conn.send(message)
        await conn.wait_closed()

    return serve(handler, "127.0.0.1", 0)


@pytest.mark.parametrize("batched", [True, False])
async def test_received_messages_come_as_one_batch_with_bad_ones_counted_and_a_restart_ending_it(
    batched,
):
    spec = ws_module.StreamSpec(venue="test", url="", parse=_parse)
    stats = ws_module.StreamStats()
    async with await _serving(MESSAGES) as server:
        conn = await _buffered_connection(_port(server), len(MESSAGES))
        if batched:
            got = [batch async for batch in ws_module._read_batches(conn, spec, stats, {})]
        else:
            got = [item async for item in ws_module._read(conn, spec, stats, {})]
    # One batch when batched; the same items one by one otherwise. The message after the
    # restart is never read: the connection was closed for the reconnect.
    assert got == ([[0, 1, 2, "re-sync"]] if batched else [0, 1, 2, "re-sync"])
    assert (stats.messages, stats.malformed, stats.items) == (5, 1, 4)
    assert conn.state.name == "CLOSED"


async def test_an_authentication_error_in_a_batch_comes_after_the_items_before_it():
    messages = [json.dumps({"n": 0}), json.dumps({"n": 1}), json.dumps({"auth": 1}),
                json.dumps({"n": 2})]
    spec = ws_module.StreamSpec(venue="test", url="", parse=_parse)
    stats = ws_module.StreamStats()
    async with await _serving(messages) as server:
        conn = await _buffered_connection(_port(server), len(messages))
        reader = ws_module._read_batches(conn, spec, stats, {})
        assert await anext(reader) == [0, 1]
        with pytest.raises(AuthenticationError, match="key revoked"):
            await anext(reader)
        await conn.close()


async def test_binance_trades_of_one_batch_are_deduplicated_and_kept_in_order():
    base = load("binance_spot_trade_ws") | {"s": "BTCUSDT"}
    ids = [1, 2, 1, 3, 2, 4]  # repeats within what arrives at once (a reconnect overlap)
    frames = [json.dumps({"stream": "btcusdt@trade", "data": base | {"t": i}}) for i in ids]
    sent = asyncio.Event()

    async def handler(conn):
        for frame in frames:
            await conn.send(frame)
        sent.set()
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        adapter = get_adapter("binance_spot", ws_url=f"ws://127.0.0.1:{_port(server)}")
        stream = adapter.stream_trades(["BTCUSDT"])
        got = []
        async with asyncio.timeout(10):
            async for trade in stream:
                got.append(trade.trade_id)
                if len(got) == 4:
                    break
        await stream.aclose()
    assert got == ["1", "2", "3", "4"]
    assert adapter.stream_stats.messages == len(ids) and adapter.stream_stats.malformed == 0
