"""Checks a strategy must pass before a backtest of it means anything.

One implementation for two callers: the registry-wide tests run it on every built-in strategy
(``strategies/tests/test_registry_contract.py``) and ``manage.py check_strategy`` runs it on a
trader's own strategy over stored candles. The checks:

- **look-ahead**: the action at bar ``i`` computed on the full series equals the one computed
  on the series cut right after bar ``i`` (bars ``[0, i]``), at the bars where the strategy
  acts and at a spread of other bars. A strategy that reads a later bar (``np.roll(close, -1)``,
  a centred window, a normalisation over the whole series) fails here;
- **lookback** (recursive analysis): paper and live trading call ``signals`` on
  ``candles.tail(lookback())`` and act on the last action; it must equal the full-series one.
  If not, the smallest lookback that would give the same actions on the checked bars is found;
- **determinism and purity**: two runs give the same output; the input arrays are unchanged;
- **contract and parameters**: one known action code per bar; the declared ranges and
  ``check()`` accept the defaults and the optimizer grids lie in the ranges.

Pure: numpy and the standard library only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from strategies.base import ACTION_NAMES, Candles, Signals, Strategy
from strategies.params import ParamError

#: How many differing bars a finding lists.
SHOWN = 5


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str  # "look-ahead", "lookback", "determinism", "purity", "contract", "parameters"
    ok: bool
    message: str
    bars: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Report:
    strategy: str
    bars: int
    checked_bars: int
    findings: tuple[Finding, ...]
    suggested_lookback: int | None = None

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def verdict(self) -> str:
        if self.ok:
            return (
                f"PASS: {self.strategy} decides each bar from that bar and earlier ones only, "
                f"its lookback is long enough for paper and live trading to act as the backtest "
                f"does, and it is deterministic and leaves its input alone "
                f"({self.checked_bars} of {self.bars} bars checked). Its backtests can be trusted "
                "on these grounds."
            )
        names = ", ".join(f.check for f in self.problems())
        return (
            f"FAIL ({names}): do not trust a backtest of {self.strategy} until this is fixed; "
            "see the lines marked FAIL above."
        )


def _when(candles: Candles, i: int) -> str:
    moment = dt.datetime.fromtimestamp(int(candles.open_time_ms[i]) / 1000, tz=dt.UTC)
    return f"bar {i} ({moment:%Y-%m-%d %H:%M} UTC)"


def _listed(candles: Candles, bars) -> str:
    bars = list(bars)
    shown = ", ".join(_when(candles, i) for i in bars[:SHOWN])
    more = f" and {len(bars) - SHOWN} more" if len(bars) > SHOWN else ""
    return shown + more


def sample_bars(actions: np.ndarray, *, active: int = 40, spread: int = 25, random: int = 0,
                seed: int = 0) -> list[int]:
    """Bars to check: the first ``active`` bars where the strategy acts, ``spread`` bars evenly
    spaced over the series and ``random`` seeded random bars."""
    n = actions.shape[0]
    if n == 0:
        return []
    chosen = set(np.flatnonzero(actions)[:active].tolist())
    chosen |= set(np.linspace(0, n - 1, spread).astype(int).tolist())
    if random:
        chosen |= set(np.random.default_rng(seed).integers(0, n, random).tolist())
    return sorted(chosen)


def contract(strategy: Strategy, candles: Candles, full: Signals) -> Finding:
    n = len(candles)
    actions = np.asarray(full.actions)
    if actions.shape != (n,):
        return Finding("contract", False, f"signals() returned {actions.shape} actions for {n} "
                       "candles; it must return one action per candle")
    unknown = sorted(set(np.unique(actions).tolist()) - set(ACTION_NAMES))
    if unknown:
        return Finding("contract", False, f"unknown action codes {unknown}; use the constants "
                       "of strategies.base (HOLD, ENTER_LONG, ...)")
    for name in ("score", "size"):
        extra = getattr(full, name)
        if extra is not None and np.shape(extra) != (n,):
            return Finding("contract", False, f"signals() returned {np.shape(extra)} {name} "
                           f"values for {n} candles")
    return Finding("contract", True, f"one known action per bar ({n} bars)")


def lookahead_bars(strategy: Strategy, candles: Candles, indices, full: Signals) -> list[int]:
    """Bars whose action changes when the series is cut right after a checked bar."""
    differing: set[int] = set()
    for i in indices:
        prefix = strategy.signals(candles[: i + 1]).actions
        changed = np.flatnonzero(prefix != full.actions[: i + 1])
        differing.update(changed.tolist())
    return sorted(differing)


def _tail_differs(strategy: Strategy, candles: Candles, i: int, lookback: int,
                  full: Signals) -> bool:
    tail = strategy.signals(candles[max(0, i + 1 - lookback): i + 1])
    if len(tail.actions) != min(i + 1, lookback) or tail.actions[-1] != full.actions[i]:
        return True
    return bool(full.size is not None and full.actions[i] != 0
                and (tail.size is None or tail.size[-1] != full.size[i]))


def lookback_bars(strategy: Strategy, candles: Candles, indices, full: Signals,
                  lookback: int | None = None) -> list[int]:
    """Checked bars where ``signals(candles[: i + 1].tail(lookback))`` decides differently."""
    lookback = strategy.lookback() if lookback is None else lookback
    return [i for i in indices if _tail_differs(strategy, candles, i, lookback, full)]


def smallest_lookback(strategy: Strategy, candles: Candles, indices, full: Signals) -> int:
    """The smallest lookback that gives the full-series action at every checked bar (found by
    doubling, then halving the interval; the series length when none shorter does)."""
    n = len(candles)

    def enough(lookback: int) -> bool:
        return not lookback_bars(strategy, candles, indices, full, lookback)

    low, high = 0, max(1, strategy.lookback())
    while high < n and not enough(high):
        low, high = high, min(n, high * 2)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f")


def determinism(strategy: Strategy, candles: Candles, full: Signals) -> Finding:
    again = strategy.signals(candles)
    for name in ("actions", "score", "size"):
        first, second = getattr(full, name), getattr(again, name)
        if not _same(first, second):
            bars = ()
            if first is not None and second is not None and np.shape(first) == np.shape(second):
                bars = tuple(np.flatnonzero(~np.isclose(first, second, equal_nan=True)).tolist())
            return Finding("determinism", False, f"two runs on the same candles gave different "
                           f"{name}" + (f" at {_listed(candles, bars)}" if bars else "")
                           + "; do not use random numbers, the clock or state kept between calls",
                           bars)
    return Finding("determinism", True, "two runs on the same candles agree")


def purity(strategy: Strategy, candles: Candles) -> Finding:
    columns = [f.name for f in dataclasses.fields(Candles)]
    given = Candles(**{c: np.array(getattr(candles, c), copy=True) for c in columns})
    strategy.signals(given)
    changed = [c for c in columns if not np.array_equal(getattr(given, c), getattr(candles, c),
                                                        equal_nan=c != "open_time_ms")]
    if changed:
        return Finding("purity", False, f"signals() modified its input ({', '.join(changed)}): "
                       "the next call, and other strategies on the same candles, would see the "
                       "changed values; work on a copy (values = candles.close.copy())")
    return Finding("purity", True, "the input candles are left unchanged")


def parameters(cls: type[Strategy]) -> Finding:
    try:
        defaults = cls.Params()
    except (ParamError, TypeError, ValueError) as exc:
        return Finding("parameters", False, f"the defaults are rejected: {exc}")
    problems = []
    for row in cls.Params.describe():
        low, high, choices = row["min"], row["max"], row["choices"]
        for value in row["grid"] or ():
            if (low is not None and value < low) or (high is not None and value > high) or (
                    choices and value not in choices):
                problems.append(f"{row['name']} grid value {value!r} is outside its range")
    try:
        lookback = cls(defaults).lookback()
    except Exception as exc:  # a user's lookback() may fail in any way: report it
        return Finding("parameters", False, f"lookback() failed: {type(exc).__name__}: {exc}")
    if not isinstance(lookback, (int, np.integer)) or isinstance(lookback, bool) or lookback < 1:
        problems.append(f"lookback() must return a whole number of bars of at least 1, "
                        f"not {lookback!r}")
    if problems:
        return Finding("parameters", False, "; ".join(problems))
    return Finding("parameters", True, f"the defaults {defaults.to_dict()} are accepted")


def _read_only(candles: Candles) -> Candles:
    columns = {}
    for f in dataclasses.fields(Candles):
        column = np.array(getattr(candles, f.name), copy=True)
        column.flags.writeable = False
        columns[f.name] = column
    return Candles(**columns)


def check(strategy: Strategy, candles: Candles, *, random: int = 25, seed: int = 0) -> Report:
    """Every check on ``candles``; a report with a verdict."""
    name = strategy.name or type(strategy).__name__
    findings = [parameters(type(strategy))]
    try:
        findings.append(purity(strategy, candles))
        if not findings[-1].ok:  # the other checks would run on changing input
            return Report(name, len(candles), 0, tuple(findings))
        candles = _read_only(candles)
        full = strategy.signals(candles)
    except Exception as exc:  # the user's code: report, do not crash the command
        findings.append(Finding("contract", False,
                                f"signals() failed: {type(exc).__name__}: {exc}"))
        return Report(name, len(candles), 0, tuple(findings))
    findings.append(contract(strategy, candles, full))
    if not findings[-1].ok:
        return Report(name, len(candles), 0, tuple(findings))
    indices = sample_bars(full.actions, random=random, seed=seed)
    ahead = lookahead_bars(strategy, candles, indices, full)
    findings.append(Finding(
        "look-ahead", not ahead,
        f"the actions at {_listed(candles, ahead)} change when the bars after them are removed: "
        "the strategy reads bars that had not closed yet, so a backtest shows trades nobody "
        "could have made" if ahead else
        "every checked action stays the same when the later bars are removed",
        tuple(ahead)))
    try:
        declared = strategy.lookback()
    except Exception:  # reported by the parameter check
        declared = None
    if not isinstance(declared, (int, np.integer)) or isinstance(declared, bool) or declared < 1:
        findings.append(Finding("lookback", False, f"lookback() gave {declared!r}, not a whole "
                                "number of bars; the lookback cannot be checked"))
        findings.append(determinism(strategy, candles, full))
        return Report(name, len(candles), len(indices), tuple(findings))
    short = lookback_bars(strategy, candles, indices, full, declared)
    suggested = smallest_lookback(strategy, candles, indices, full) if short else None
    findings.append(Finding(
        "lookback", not short,
        f"lookback() is {declared} bars, but with only that much history paper and live "
        f"trading decide differently from the backtest at {_listed(candles, short)}; the "
        f"smallest lookback that gives the same actions on the checked bars is {suggested}"
        if short else f"{declared} bars of history give the full-series action at every "
        "checked bar", tuple(short)))
    findings.append(determinism(strategy, candles, full))
    return Report(name, len(candles), len(indices), tuple(findings), suggested)
