"""Indicator memoization across optimizer trials.

Trials of one strategy over one window call the same indicators with the same inputs again and
again (``sma(close, 20)`` for every trial whose ``mid`` is 20). :class:`IndicatorCache` wraps the
public functions of :mod:`strategies.indicators` while it is active, so a call whose array
arguments are all *stable* (a column of the window's candles, or an earlier cached result) and
whose other arguments are equal returns the stored array instead of computing it again.

Safety rules:

* Array arguments are keyed by identity, and the cache holds a reference to every stable array,
  so an id cannot be reused by another array while its entry exists.
* Calls with any other array (a temporary the strategy computed) go straight through, uncached.
* Cached results are made read-only: a strategy that writes into an indicator's result fails
  loudly instead of corrupting the next trial.
* The cache is bounded in bytes; the least recently used entries go first.

Pure: numpy and the standard library.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from strategies import indicators

#: The functions of :mod:`strategies.indicators` that are pure in their arguments.
CACHED_FUNCTIONS = (
    "sma", "ema", "wma", "rolling_std", "bollinger", "rsi", "macd", "roc", "true_range", "atr",
    "rolling_max", "rolling_min", "donchian", "realized_volatility", "volatility_rising",
    "crossed_above", "crossed_below", "shift",
)

def _read_only(value):
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, tuple):
        for item in value:
            _read_only(item)
    return value


def _arrays(value) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, tuple):
        return [a for item in value for a in _arrays(item)]
    return []


class IndicatorCache:
    """Memoizes indicator calls on stable arrays. Use as a context manager (patches the module)."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._stable: dict[int, np.ndarray] = {}
        self._bytes = 0
        self._originals: dict[str, object] = {}

    # ------------------------------------------------------------------ stable inputs

    def add_stable(self, arrays: Iterable[np.ndarray]) -> None:
        """Declare arrays (a window's candle columns) as keys the cache may use."""
        for array in arrays:
            self._stable[id(array)] = array

    def clear(self) -> None:
        self._entries.clear()
        self._stable.clear()
        self._bytes = 0

    # ------------------------------------------------------------------ patching

    def __enter__(self) -> IndicatorCache:
        for name in CACHED_FUNCTIONS:
            original = getattr(indicators, name)
            self._originals[name] = original
            setattr(indicators, name, self._wrap(name, original))
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._originals.items():
            setattr(indicators, name, original)
        self._originals.clear()

    def _key_part(self, value):
        """(key part, array id or None), or None when ``value`` cannot be a key."""
        if isinstance(value, np.ndarray):
            if self._stable.get(id(value)) is not value:
                return None
            return ("array", id(value)), id(value)
        if isinstance(value, (int, float, str, bool, type(None))):
            return (type(value).__name__, value), None
        return None

    def _wrap(self, name: str, func):
        @functools.wraps(func)
        def cached(*args, **kwargs):
            items = [(None, a) for a in args] + sorted(kwargs.items())
            parts = []
            ids = []
            for keyword, value in items:
                part = self._key_part(value)
                if part is None:
                    return func(*args, **kwargs)
                parts.append((keyword, part[0]))
                if part[1] is not None:
                    ids.append(part[1])
            key = (name, *parts)
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[0]
            self.misses += 1
            result = _read_only(func(*args, **kwargs))
            produced = _arrays(result)
            size = sum(a.nbytes for a in produced)
            self._entries[key] = (result, size, tuple(ids))
            self._bytes += size
            for array in produced:
                self._stable[id(array)] = array
            self._evict()
            return result

        return cached

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, (result, size, _ids) = self._entries.popitem(last=False)
            self._bytes -= size
            for array in _arrays(result):
                self._stable.pop(id(array), None)
            # Entries keyed on an array that is no longer stable must go: its id may be reused.
            dead = [k for k, e in self._entries.items() if any(i not in self._stable for i in e[2])]
            for key in dead:
                self._bytes -= self._entries.pop(key)[1]
