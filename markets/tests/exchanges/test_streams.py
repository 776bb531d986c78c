"""WebSocket streams against local ``websockets`` servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from http import HTTPStatus

import pytest
from websockets.asyncio.server import serve

from markets.exchanges import get_adapter
from markets.exchanges.base import BalanceUpdate, OrderUpdate, StreamNotice, Trade
from markets.exchanges.errors import AuthenticationError
from markets.exchanges.signing import binance_ws_signature, jwt_decode

from .conftest import Reply, load


async def _take(agen, n: int, timeout: float = 10.0) -> list:
    out = []
    async with asyncio.timeout(timeout):
        async for item in agen:
            out.append(item)
            if len(out) == n:
                break
    await agen.aclose()
    return out


def _port(ws_server) -> int:
    return next(iter(ws_server.sockets)).getsockname()[1]


async def test_upbit_stream_decodes_binary_frames_and_skips_bad_ones(caplog):
    trade = load("upbit_ws_trade") | {"sequential_id": 1}
    other = trade | {"code": "KRW-ETH", "sequential_id": 2, "ask_bid": "BID"}
    seen = {}

    async def handler(conn):
        seen["path"] = conn.request.path
        seen["subscribe"] = json.loads(await conn.recv())
        await conn.send(json.dumps(trade).encode())  # binary frame
        await conn.send("{not json")  # malformed
        await conn.send(json.dumps(other).encode()[:40])  # truncated binary
        await conn.send(json.dumps({"status": "UP"}))
        await conn.send(json.dumps(other).encode())
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        adapter = get_adapter("upbit", ws_url=f"ws://127.0.0.1:{_port(ws_server)}")
        with caplog.at_level(logging.WARNING):
            trades = await _take(adapter.stream_trades(["KRW-BTC", "krw-eth"]), 2)
    assert [t.symbol for t in trades] == ["KRW-BTC", "KRW-ETH"]
    assert all(isinstance(t, Trade) for t in trades) and trades[1].side == "buy"
    assert adapter.stream_stats.malformed == 2 and adapter.stream_stats.connects == 1
    assert "skipped malformed message" in caplog.text
    assert seen["path"] == "/websocket/v1"
    ticket, sub, fmt = seen["subscribe"]
    assert "ticket" in ticket and fmt == {"format": "DEFAULT"}
    assert sub == {"type": "trade", "codes": ["KRW-BTC", "KRW-ETH"]}


async def test_korean_stream_sends_text_ping_and_ignores_status_up():
    received = []

    async def handler(conn):
        await conn.recv()  # subscription
        received.append(await conn.recv())
        await conn.send(json.dumps({"status": "UP"}))
        await conn.send(json.dumps(load("bithumb_ws_trade")))
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        adapter = get_adapter("bithumb", ws_url=f"ws://127.0.0.1:{_port(ws_server)}",
                              ws_text_ping_s=0.2)
        (trade,) = await _take(adapter.stream_trades(["KRW-BTC"]), 1)
    assert received == ["PING"] and trade.symbol == "KRW-BTC"
    assert adapter.stream_stats.malformed == 0


async def test_binance_combined_stream_skips_bad_messages_and_reconnects_on_shutdown():
    trade = {"stream": "btcusdt@trade", "data": load("binance_spot_trade_ws") | {"s": "BTCUSDT"}}
    paths = []

    async def handler(conn):
        paths.append(conn.request.path)
        if len(paths) == 1:
            await conn.send(json.dumps(trade))
            await conn.send('{"stream":"btcusdt@trade","data":{"e":"trade","p":')  # truncated
            await conn.send(json.dumps({"stream": "x", "data": {"e": "trade", "s": "BTCUSDT"}}))
            await conn.send(json.dumps(load("binance_ws_subscribe")["server_shutdown_combined"]))
        else:
            second = json.loads(json.dumps(trade))
            second["data"]["t"] = 12346
            await conn.send(json.dumps(second))
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        adapter = get_adapter("binance_spot", ws_url=f"ws://127.0.0.1:{_port(ws_server)}")
        trades = await _take(adapter.stream_trades(["BTCUSDT", "ETHUSDT"]), 2)
    assert [t.trade_id for t in trades] == ["12345", "12346"]
    stats = adapter.stream_stats
    assert stats.malformed == 2 and stats.connects == 2 and stats.planned_reconnects == 1
    assert paths[0] == "/stream?streams=btcusdt@trade/ethusdt@trade"


async def test_binance_stream_reconnects_before_its_lifetime_runs_out():
    kline = {"stream": "btcusdt@kline_1m", "data": load("binance_futures_kline_ws")}
    kline["data"]["k"]["l"] = "0.0010"  # the documented example's low is above its open
    connections = []

    async def handler(conn):
        connections.append(conn.request.path)
        await conn.send(json.dumps(kline))
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        adapter = get_adapter("binance_futures", ws_url=f"ws://127.0.0.1:{_port(ws_server)}",
                              ws_max_lifetime_s=0.3, ws_overlap_s=0.05)
        klines = await _take(adapter.stream_klines(["BTCUSDT"], "1m"), 2)
    assert [k.closed for k in klines] == [False, False]
    assert connections == ["/market/stream?streams=btcusdt@kline_1m"] * 2
    assert adapter.stream_stats.planned_reconnects >= 1


async def test_planned_reconnect_overlaps_so_no_trade_is_missed_or_repeated():
    """The venue keeps publishing while the client rotates connections; every trade id
    arrives exactly once, in order."""
    clients: set = set()
    connections = []

    async def handler(conn):
        connections.append(conn)
        clients.add(conn)
        try:
            await conn.wait_closed()
        finally:
            clients.discard(conn)

    async def publish():
        trade_id = 0
        while True:
            trade_id += 1
            frame = json.dumps({"stream": "btcusdt@trade", "data": {
                "e": "trade", "E": 1, "s": "BTCUSDT", "t": trade_id, "p": "100.5", "q": "1",
                "T": 1_700_000_000_000 + trade_id, "m": False, "M": True}})
            for conn in list(clients):
                try:
                    await conn.send(frame)
                except Exception:
                    clients.discard(conn)
            await asyncio.sleep(0.002)

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        publisher = asyncio.create_task(publish())
        adapter = get_adapter("binance_spot", ws_url=f"ws://127.0.0.1:{_port(ws_server)}",
                              ws_max_lifetime_s=0.4, ws_overlap_s=0.3)
        trades = await _take(adapter.stream_trades(["BTCUSDT"]), 300)
        publisher.cancel()
    ids = [int(t.trade_id) for t in trades]
    assert ids == list(range(ids[0], ids[0] + 300))
    assert adapter.stream_stats.connects >= 2 and len(connections) >= 2


async def test_upbit_private_stream_sends_a_jwt_and_yields_order_and_asset_events():
    seen = {}

    async def handler(conn):
        seen["auth"] = conn.request.headers["Authorization"]
        seen["path"] = conn.request.path
        seen["subscribe"] = json.loads(await conn.recv())
        await conn.send(json.dumps(load("upbit_ws_myorder")).encode())
        await conn.send(json.dumps(load("upbit_ws_myasset")).encode())
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        adapter = get_adapter("upbit", ws_url=f"ws://127.0.0.1:{_port(ws_server)}",
                              api_key="ak", api_secret="secret")
        connected, order, asset = await _take(adapter.user_stream(), 3)
    assert isinstance(connected, StreamNotice) and connected.kind == "connected"
    assert isinstance(order, OrderUpdate) and isinstance(asset, BalanceUpdate)
    claims = jwt_decode(seen["auth"].removeprefix("Bearer "), "secret")
    assert claims["access_key"] == "ak" and "query_hash" not in claims
    assert seen["path"] == "/websocket/v1/private"
    assert {"type": "myAsset"} in seen["subscribe"]


async def test_binance_spot_user_stream_subscribes_with_a_signed_ws_api_request():
    sample = load("binance_spot_user_stream_subscribe")
    seen = {}

    async def handler(conn):
        seen["path"] = conn.request.path
        request = json.loads(await conn.recv())
        seen["request"] = request
        await conn.send(json.dumps({"id": request["id"], "status": 200,
                                    "result": {"subscriptionId": 0}}))
        await conn.send(json.dumps(load("binance_spot_execution_report")))
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        adapter = get_adapter("binance_spot", ws_url=f"ws://127.0.0.1:{_port(ws_server)}",
                              api_key="ak", api_secret="secret")
        notice, update = await _take(adapter.user_stream(), 2)
    assert isinstance(notice, StreamNotice) and notice.kind == "subscribed"
    assert isinstance(update, OrderUpdate)
    request = seen["request"]
    assert request["method"] == sample["request"]["method"]
    params = request["params"]
    assert set(params) == {"apiKey", "timestamp", "recvWindow", "signature"}
    assert params["signature"] == binance_ws_signature("secret", params)
    assert seen["path"] == "/ws-api/v3"


async def test_futures_user_stream_renews_the_listen_key_when_it_expires(server):
    keys = iter(["key-1", "key-2"])

    @server.route("POST", "/fapi/v1/listenKey")
    def start(req):
        assert req.headers["X-MBX-APIKEY"] == "ak"
        return Reply(200, {"listenKey": next(keys)})

    @server.route("PUT", "/fapi/v1/listenKey")
    def keep(req):
        return Reply(200, {})

    paths = []
    update = load("binance_futures_order_trade_update")
    expired = load("binance_futures_listen_key")["listen_key_expired_event_captured"]

    async def handler(conn):
        paths.append(conn.request.path)
        await conn.send(json.dumps(update))
        if len(paths) == 1:
            await asyncio.sleep(0.3)  # let a keepalive PUT happen
            await conn.send(json.dumps(expired))
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        adapter = get_adapter("binance_futures", rest_url=server.url,
                              ws_url=f"ws://127.0.0.1:{_port(ws_server)}", api_key="ak",
                              api_secret="secret", keepalive_s=0.1)
        events = await _take(adapter.user_stream(), 5)
    assert [type(e) for e in events] == [StreamNotice, OrderUpdate, StreamNotice,
                                         StreamNotice, OrderUpdate]
    assert [e.kind for e in events if isinstance(e, StreamNotice)] == [
        "connected", "listen_key_expired", "connected"]
    assert paths[0].startswith("/private/ws?listenKey=key-1&events=ORDER_TRADE_UPDATE")
    assert paths[1].startswith("/private/ws?listenKey=key-2")
    assert len(server.hits("PUT", "/fapi/v1/listenKey")) >= 1


async def test_a_dropped_connection_is_reconnected_and_the_stream_goes_on():
    frames = [load("bithumb_ws_trade") | {"sequential_id": n} for n in (1, 2)]
    served = []

    async def handler(conn):
        served.append(conn)
        await conn.recv()
        await conn.send(json.dumps(frames[len(served) - 1]))
        if len(served) == 1:
            await conn.close(code=1011)  # the venue drops us
            return
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        adapter = get_adapter("bithumb", ws_url=f"ws://127.0.0.1:{_port(ws_server)}")
        trades = await _take(adapter.stream_trades(["KRW-BTC"]), 2)
    assert [t.trade_id for t in trades] == ["1", "2"]
    assert adapter.stream_stats.connects == 2 and "ConnectionClosed" in \
        adapter.stream_stats.last_error


async def test_private_stream_refused_with_401_raises_authentication_error():
    def refuse(conn, request):
        return conn.respond(HTTPStatus.UNAUTHORIZED, "invalid key\n")

    async def handler(conn):
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0, process_request=refuse) as ws_server:
        adapter = get_adapter("upbit", ws_url=f"ws://127.0.0.1:{_port(ws_server)}",
                              api_key="ak", api_secret="bad")
        with pytest.raises(AuthenticationError, match="HTTP 401"):
            await _take(adapter.user_stream(), 1)


async def test_a_connection_that_drops_at_once_keeps_backing_off(monkeypatch):
    """Reconnects start over from the minimum only after a healthy stretch: a venue that accepts
    and closes every connection at once is retried ever more slowly, never every 0.5 s."""
    from markets.backoff import Backoff

    delays = []

    class Recorded(Backoff):  # the delays the loop would wait, waited 1 ms here
        def failed(self):
            delays.append(super().failed())
            return 0.001

    trade = load("upbit_ws_trade") | {"sequential_id": 1}
    connects = 0

    async def handler(conn):
        nonlocal connects
        connects += 1
        await conn.recv()  # subscription
        if connects > 5:
            await conn.send(json.dumps(trade).encode())
            await conn.wait_closed()
        # else: close at once

    monkeypatch.setattr("markets.exchanges.ws.Backoff", Recorded)
    async with serve(handler, "127.0.0.1", 0) as ws_server:
        adapter = get_adapter("upbit", ws_url=f"ws://127.0.0.1:{_port(ws_server)}")
        (got,) = await _take(adapter.stream_trades(["KRW-BTC"]), 1)
    assert got.symbol == "KRW-BTC" and adapter.stream_stats.connects == 6
    assert len(delays) == 5
    assert all(later > earlier for earlier, later in itertools.pairwise(delays)), delays
    assert delays[0] <= 0.5 * 1.2 and delays[-1] >= 8 * 0.8  # 0.5, 1, 2, 4, 8 (jittered)


async def test_buffered_messages_are_read_without_a_timer_each_and_idleness_still_times_out(
    monkeypatch,
):
    """Issue 20: arming a timeout per message cost about a third of the stream's CPU per trade
    at 500 symbols. A message already received is taken at once; waiting still times out."""
    from websockets.asyncio.client import connect

    from markets.exchanges import ws as ws_module

    armed = []
    real_timeout = asyncio.timeout

    def counting_timeout(delay):
        armed.append(delay)
        return real_timeout(delay)

    async def handler(conn):
        for i in range(10):
            await conn.send(json.dumps({"n": i}))
        await conn.wait_closed()

    spec = ws_module.StreamSpec(venue="test", url="", parse=lambda msg: [msg["n"]],
                                idle_timeout_s=0.3)
    stats = ws_module.StreamStats()
    async with serve(handler, "127.0.0.1", 0) as ws_server, \
            connect(f"ws://127.0.0.1:{_port(ws_server)}") as conn:
        async with asyncio.timeout(10):
            while len(conn.recv_messages.frames) < 10:  # all ten received and buffered
                await asyncio.sleep(0.01)
        monkeypatch.setattr(ws_module.asyncio, "timeout", counting_timeout)
        reader = ws_module._read(conn, spec, stats, {})
        got = [await anext(reader) for _ in range(10)]
        assert got == list(range(10)) and armed == []
        with pytest.raises(TimeoutError, match=r"no message for 0\.3s"):
            await anext(reader)
        assert armed == [0.3]
