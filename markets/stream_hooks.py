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

A gate (:func:`register_gate`, at most one a process is used: ``orders`` registers
``orders.stream_gate``) tells the stream which closed bars are worth an evaluation task and which
price updates an exit-guard task: ``wants(venue, code, timeframe)``, ``guards(venue, code)`` and
``async refresh()`` (called with the watchers'). Without a gate every bar and price update sends
its task.
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


_gate_factory: Callable[[], Any] | None = None


def register_gate(factory: Callable[[], Any] | None) -> None:
    """Register (or replace; None removes) the stream's gate factory."""
    global _gate_factory
    _gate_factory = factory


def make_gate() -> Any | None:
    return _gate_factory() if _gate_factory is not None else None
