"""Watchers the stream offers its price updates and closed bars to, registered by the layers
above (``markets`` imports none of them: ``alerts`` registers its market rules from its app's
``ready()``).

A watcher is a factory registered with :func:`register`; the stream runner makes one instance
per process (:func:`make_all`) and gives it to every venue stream. The instance has:

- ``on_price(venue, code, price, high, low, ts_ms)``: each throttled price update (at most one
  a second per symbol; ``high``/``low`` of the trades since the previous one);
- ``on_bar(venue, code, timeframe, bar)``: each closed bar, once (the bar as pushed: ``t``,
  ``o``, ``h``, ``l``, ``c``, ``v``);
- ``async refresh()``: called every couple of seconds by the runner (reload what changed).

Both ``on_*`` run on the stream's event loop: they must be cheap and never block (hand slow work
to a thread). A watcher that raises is logged (throttled) and never stops the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_factories: dict[str, Callable[[], Any]] = {}


def register(name: str, factory: Callable[[], Any]) -> None:
    """Register (or replace) the watcher ``name``; idempotent, so ``ready()`` may run twice."""
    _factories[name] = factory


def unregister(name: str) -> None:
    _factories.pop(name, None)


def make_all() -> list[Any]:
    return [factory() for factory in _factories.values()]
