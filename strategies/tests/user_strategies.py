"""Helpers for tests that install user strategies: sources to write, a folder, an installed
package with an entry point, and :func:`installed`, which restores the registry, ``sys.path``
and ``sys.modules`` afterwards so no user strategy leaks into other tests."""

from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from strategies import registry

BUILT_IN = ["bollinger", "dual_momentum", "ensemble", "ma_cross", "macd_turtle", "rsi",
            "volatility_breakout"]

HEADER = """
import dataclasses

import numpy as np

from strategies import indicators as ind
from strategies.base import ENTER_LONG, EXIT_LONG, Signals, Strategy
from strategies.params import Params, param
from strategies.registry import register
"""


def sma_break(name: str, *, cls: str = "SmaBreak", decorate: bool = True) -> str:
    """A correct strategy: long while the close crosses above its ``window``-bar average."""
    return HEADER + textwrap.dedent(f'''
        @dataclasses.dataclass(frozen=True)
        class {cls}Params(Params):
            window: int = param(3, min=2, max=100, help="bars of the average", grid=(3, 5))


        {"@register" if decorate else ""}
        class {cls}(Strategy):
            name = "{name}"
            Params = {cls}Params

            def lookback(self):
                return self.params.window + 1

            def signals(self, candles):
                average = ind.sma(candles.close, self.params.window)
                actions = np.zeros(len(candles), dtype=np.int8)
                actions[ind.crossed_above(candles.close, average)] = ENTER_LONG
                actions[ind.crossed_below(candles.close, average)] = EXIT_LONG
                return Signals(actions=actions)
    ''')


def flawed(name: str, body: str, lookback: int = 20) -> str:
    """A strategy whose ``signals`` body is ``body`` (sets ``actions`` from ``close``)."""
    return HEADER + textwrap.dedent(f'''
        @dataclasses.dataclass(frozen=True)
        class FlawedParams(Params):
            period: int = param(50, min=2, max=500, grid=(20, 50))


        @register
        class Flawed(Strategy):
            name = "{name}"
            Params = FlawedParams

            def lookback(self):
                return {lookback}

            def signals(self, candles):
                close = candles.close
                actions = np.zeros(len(candles), dtype=np.int8)
    ''') + textwrap.indent(textwrap.dedent(body), " " * 8) + (
        "        return Signals(actions=actions)\n")


def write_folder(folder: Path, modules: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(source)
    return folder


def write_package(site: Path, package: str, source: str, entry_points: dict[str, str]) -> Path:
    """An installed distribution in ``site``: the package and a dist-info whose
    entry_points.txt declares ``entry_points`` in the ``tradesite.strategies`` group."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(source)
    info = site / f"{package}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[tradesite.strategies]\n{lines}")
    return site


@contextlib.contextmanager
def installed(folders=(), site: Path | None = None):
    """Load user strategies from ``folders`` and the packages in ``site``; restore everything
    on the way out."""
    registry.names()  # the built-in library is loaded (once per process) before the snapshot
    saved_path = list(sys.path)
    saved = dict(registry._REGISTRY)
    saved_paths = registry._sources["paths"]
    try:
        if site is not None:
            sys.path.insert(0, str(site))
        importlib.invalidate_caches()
        registry.configure(paths=[str(f) for f in folders])
        registry.names()
        yield
    finally:
        registry.configure(paths=saved_paths)  # forgets the user strategies and their modules
        sys.path[:] = saved_path
        importlib.invalidate_caches()
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved)


@pytest.fixture
def install():
    """``install(folders=..., site=...)`` within a test; undone when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda folders=(), site=None: stack.enter_context(installed(folders, site))
