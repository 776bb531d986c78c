"""Where the chart fan-out's time goes: a traced ASGI application for ``bench_charts``.

Only the bench imports this (``BENCH_CHARTS_TRACE=<file>`` in the server's environment, app
``bench.chart_trace:application``); nothing in ``tradesite`` knows about it, so the hot path
carries no tracing. It wraps, from the outside:

- the channel layer's ``receive_single`` or the hub's batched reader (the moment a bar
  message leaves Redis),
- ``Hub.dispatch`` (the moment the hub gets it, and when it has filled every outbox),
- each client's outbox ``send`` (the moment the server accepted the frame: ASGI ``send``
  returned),

keyed by ``(symbol, v)``: the bench's bars carry their sequence number in ``v``. It also samples
the event loop's lag (how late a 5 ms timer fires) and times garbage-collector pauses. Times are
``time.time()`` (one machine: the same clock as the bench's publisher and clients).
``BENCH_CHARTS_PROFILE=<file>`` also writes a cProfile of the server; ``BENCH_CHARTS_HEAP=1``
counts the tracked objects by type after each full collection (slow: only to see what the heap
holds). ``tradesite.web`` loads this module as the app and then freezes the start-up heap as
it does in production, so the collections seen here are the production server's.
The file is written on ``SIGUSR1`` (the bench sends it after the load) and at a normal exit
(daphne runs ``atexit`` on SIGTERM; uvicorn re-raises the SIGTERM once stopped, so no
``atexit`` there).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import os
import signal
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
django.setup()  # before the consumers are imported (STACK-NOTES)

from channels_redis import core as _core  # noqa: E402

from tradesite import consumers  # noqa: E402
from tradesite import hub as hub_module  # noqa: E402
from tradesite.asgi import application as _app  # noqa: E402

OUT = os.environ.get("BENCH_CHARTS_TRACE", "")
redis_out: list = []  # (time, symbol, v)
hub_in: list = []  # (time, symbol, v)
hub_done: list = []  # (time, symbol, v)
sent: list = []  # (time, symbol, v)
lags: list = []  # (time, ms late)
gc_pauses: list = []  # (time, ms, generation, objects collected)
_text_key: dict[int, tuple] = {}
_keep: list = []
_current: list = [None]


def _key(message: dict):
    if message.get("type") != "bar.update":
        return None
    return message["symbol"], int(message["bar"]["v"])


_orig_receive_single = _core.RedisChannelLayer.receive_single


async def _receive_single(self, channel):
    channel_out, message = await _orig_receive_single(self, channel)
    key = _key(message)
    if key is not None:
        redis_out.append((time.time(), *key))
    return channel_out, message


_core.RedisChannelLayer.receive_single = _receive_single

if hasattr(consumers, "RedisLayerReader"):  # the hub's batched reader
    _orig_receive_many = consumers.RedisLayerReader.receive_many

    async def _receive_many(self):
        messages = await _orig_receive_many(self)
        now = time.time()
        for message in messages:
            key = _key(message)
            if key is not None:
                redis_out.append((now, *key))
        return messages

    consumers.RedisLayerReader.receive_many = _receive_many

_orig_dispatch = consumers.Hub.dispatch


def _dispatch(self, message):
    key = _key(message)
    if key is not None:
        hub_in.append((time.time(), *key))
    _current[0] = key
    try:
        return _orig_dispatch(self, message)
    finally:
        _current[0] = None
        if key is not None:
            hub_done.append((time.time(), *key))


consumers.Hub.dispatch = _dispatch

_orig_dumps = hub_module.dumps


def _dumps(payload):
    text = _orig_dumps(payload)
    if _current[0] is not None:
        _text_key[id(text)] = _current[0]
        _keep.append(text)
    return text


hub_module.dumps = _dumps  # what Hub.dispatch calls

_orig_outbox_init = consumers.Outbox.__init__


def _outbox_init(self, send, writer=None):
    async def traced_send(item):
        await send(item)
        key = _text_key.get(id(item if isinstance(item, str) else item.get("text")))
        if key is not None:
            sent.append((time.time(), *key))

    _orig_outbox_init(self, traced_send, writer)


consumers.Outbox.__init__ = _outbox_init

_gc_started = [0.0]


heap: list = []  # (time, tracked objects, top types) after full collections


def _gc(phase, info):
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    gc_pauses.append((time.time(), (time.perf_counter() - _gc_started[0]) * 1000.0,
                      info["generation"], info["collected"]))
    if info["generation"] == 2 and os.environ.get("BENCH_CHARTS_HEAP"):
        import collections

        objects = gc.get_objects()
        top = collections.Counter(type(o).__qualname__ for o in objects).most_common(12)
        heap.append((time.time(), len(objects), top))
        del objects


gc.callbacks.append(_gc)


async def _lag_sampler():
    while True:
        due = time.perf_counter() + 0.005
        await asyncio.sleep(0.005)
        lags.append((time.time(), (time.perf_counter() - due) * 1000.0))


_sampler: list = []


PROFILE = os.environ.get("BENCH_CHARTS_PROFILE", "")
_profiler: list = []


def _dump(*_args):
    if _profiler:
        _profiler[0].disable()
        _profiler[0].dump_stats(PROFILE)
    if not OUT:
        return
    with open(OUT, "w") as fh:
        json.dump({"redis_out": redis_out, "hub_in": hub_in, "hub_done": hub_done, "sent": sent,
                   "lags": lags, "gc": gc_pauses, "heap": heap}, fh)


atexit.register(_dump)
signal.signal(signal.SIGUSR1, _dump)


async def application(scope, receive, send):
    if not _sampler:
        _sampler.append(asyncio.get_running_loop().create_task(_lag_sampler()))
        if PROFILE:
            import cProfile

            _profiler.append(cProfile.Profile())
            _profiler[0].enable()
    return await _app(scope, receive, send)
