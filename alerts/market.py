"""Market-condition rules, evaluated in memory (pure: no database, no Redis; ``alerts.watch``
loads the rules and stores what fires).

:class:`RuleIndex` holds the active market rules per ``(venue slug, symbol code)``:

- price crosses: one sorted array of levels per symbol, so an update finds the levels between
  the previous price and this update's high/low by bisection (the cost does not grow with the
  number of rules that are not crossed: 10,000 rules, ``make bench``);
- moves of X % within a window: a monotonic min/max queue per rule;
- bar rules (indicator condition, volume spike) per timeframe, on closed bars.

:class:`Evaluator` keeps the state that outlives a reload of the rules (the last price per
symbol, each rule's last firing, whether a condition held on the previous bar) and returns the
:class:`Firing` s of an update. Dedup: a crossing fires once (the next one needs the price to go
back across the level first), a move once (its window starts again from the firing price), an
indicator condition when it becomes true, a volume spike once per bar; and nothing fires again
within the rule's cooldown.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from strategies import indicators


@dataclass(frozen=True)
class Rule:
    """What the evaluator needs of an ``AlertRule`` (built by ``alerts.watch``)."""

    id: int
    kind: str
    venue: str
    code: str
    symbol_id: int
    params: dict
    cooldown_s: float = 0.0
    name: str = ""


@dataclass(frozen=True)
class Firing:
    rule_id: int
    key: str  # what happened, unique per occurrence (the dedupe key's tail)
    title: str
    body: str
    data: dict


@dataclass
class SymbolRules:
    levels: list[float] = field(default_factory=list)  # sorted
    at_level: list[list[tuple[int, str]]] = field(default_factory=list)  # (rule id, direction)
    moves: list[Rule] = field(default_factory=list)
    bars: dict[str, list[Rule]] = field(default_factory=dict)  # timeframe -> rules


def history_needed(rule: Rule) -> int:
    """Closed bars (before and with the current one) a bar rule reads."""
    p = rule.params
    if rule.kind == "volume_spike":
        return int(p["bars"]) + 1
    period = int(p["period"])
    if p["indicator"] == "rsi":
        return min(indicators.rsi_bars(period), 2000)
    if p["indicator"] == "ema":
        return min(indicators.ema_bars(period) + 1, 2000)
    return period + 1


class RuleIndex:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = {r.id: r for r in rules}
        self.symbols: dict[tuple[str, str], SymbolRules] = {}
        crosses: dict[tuple[str, str], dict[float, list]] = {}
        for rule in rules:
            key = (rule.venue, rule.code)
            entry = self.symbols.setdefault(key, SymbolRules())
            if rule.kind == "price_cross":
                level = float(rule.params["level"])
                crosses.setdefault(key, {}).setdefault(level, []).append(
                    (rule.id, rule.params.get("direction", "either")))
            elif rule.kind == "price_move":
                entry.moves.append(rule)
            elif rule.kind in ("indicator", "volume_spike"):
                entry.bars.setdefault(rule.params["timeframe"], []).append(rule)
        for key, by_level in crosses.items():
            entry = self.symbols[key]
            entry.levels = sorted(by_level)
            entry.at_level = [by_level[level] for level in entry.levels]
        self.bar_series = {(v, c, tf): rs for (v, c), e in self.symbols.items()
                           for tf, rs in e.bars.items()}

    def history_needed(self, venue: str, code: str, tf: str) -> int:
        return max((history_needed(r) for r in self.bar_series.get((venue, code, tf), ())),
                   default=0)


class MoveWindow:
    """Min and max of the prices within the last ``window_ms`` (monotonic queues)."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.lows: deque = deque()
        self.highs: deque = deque()

    def add(self, ts_ms: int, high: float, low: float) -> tuple[float, float]:
        start = ts_ms - self.window_ms
        while self.lows and self.lows[0][0] < start:
            self.lows.popleft()
        while self.highs and self.highs[0][0] < start:
            self.highs.popleft()
        while self.lows and self.lows[-1][1] >= low:
            self.lows.pop()
        self.lows.append((ts_ms, low))
        while self.highs and self.highs[-1][1] <= high:
            self.highs.pop()
        self.highs.append((ts_ms, high))
        return self.lows[0][1], self.highs[0][1]

    def reset(self, ts_ms: int, price: float) -> None:
        self.lows = deque([(ts_ms, price)])
        self.highs = deque([(ts_ms, price)])


_NONE: list = []  # returned, never changed: a symbol without rules allocates nothing


def _fmt(x: float) -> str:
    """A price as a trader reads it: 148,000,000 or 0.00001234, never 1.48e+08."""
    if abs(x) >= 1:
        return f"{x:,.4f}".rstrip("0").rstrip(".")
    return f"{x:.10f}".rstrip("0").rstrip(".") or "0"


class Evaluator:
    def __init__(self, index: RuleIndex | None = None) -> None:
        self.index = index or RuleIndex([])
        self.last_price: dict[tuple[str, str], float] = {}
        self.fired_at: dict[int, float] = {}  # rule id -> update time (s) of its last firing
        self.moves: dict[int, MoveWindow] = {}
        self.held: dict[int, bool] = {}  # indicator rules: the condition held on the last bar

    def load(self, index: RuleIndex) -> None:
        """New rules; what is known of prices and of rules still there is kept."""
        self.index = index
        for state in (self.fired_at, self.moves, self.held):
            for rule_id in [k for k in state if k not in index.rules]:
                del state[rule_id]

    def _cooling(self, rule: Rule, now_s: float) -> bool:
        last = self.fired_at.get(rule.id)
        return last is not None and now_s - last < rule.cooldown_s

    def on_price(self, venue: str, code: str, price: float, high: float, low: float,
                 ts_ms: int) -> list[Firing]:
        key = (venue, code)
        entry = self.index.symbols.get(key)
        previous = self.last_price.get(key)
        self.last_price[key] = price
        if entry is None:
            return _NONE
        out: list[Firing] = []
        now_s = ts_ms / 1000.0
        levels = entry.levels
        if levels and previous is not None:
            # One bisection answers "no level between the previous price and this update's
            # range" (nearly every update); only then look for the crossed ones.
            lo = low if low < previous else previous
            first = bisect.bisect_left(levels, lo)
            if first < len(levels) and levels[first] <= (high if high > previous else previous):
                # Up: levels in (previous, high]; down: levels in [low, previous).
                for i in range(bisect.bisect_right(levels, previous),
                               bisect.bisect_right(levels, high)):
                    out += self._crossed(levels[i], entry.at_level[i], "up", code, price,
                                         ts_ms, now_s)
                for i in range(first, bisect.bisect_left(levels, previous)):
                    out += self._crossed(levels[i], entry.at_level[i], "down", code, price,
                                         ts_ms, now_s)
        for rule in entry.moves:
            out += self._move(rule, code, price, high, low, ts_ms, now_s)
        return out

    def _crossed(self, level, rules, direction, code, price, ts_ms, now_s) -> list[Firing]:
        out = []
        for rule_id, wanted in rules:
            rule = self.index.rules[rule_id]
            if wanted not in (direction, "either") or self._cooling(rule, now_s):
                continue
            self.fired_at[rule_id] = now_s
            word = "above" if direction == "up" else "below"
            out.append(Firing(
                rule_id, f"cross:{rule.params['level']}:{direction}:{ts_ms}",
                f"{code} crossed {word} {_fmt(level)}",
                f"{rule.name}: {rule.venue} {code} traded at {_fmt(price)}, crossing "
                f"{rule.params['level']} {direction}.",
                {"venue": rule.venue, "symbol": code, "price": price, "level":
                 rule.params["level"], "direction": direction, "ts_ms": ts_ms}))
        return out

    def _move(self, rule, code, price, high, low, ts_ms, now_s) -> list[Firing]:
        window = self.moves.get(rule.id)
        if window is None:
            window = self.moves[rule.id] = MoveWindow(int(rule.params["window_s"]) * 1000)
        lowest, highest = window.add(ts_ms, high, low)
        percent = float(rule.params["percent"])
        wanted = rule.params.get("direction", "either")
        rise = (high - lowest) / lowest * 100 if lowest > 0 else 0.0
        drop = (highest - low) / highest * 100 if highest > 0 else 0.0
        direction = None
        if wanted in ("up", "either") and rise >= percent:
            direction, size = "up", rise
        elif wanted in ("down", "either") and drop >= percent:
            direction, size = "down", drop
        if direction is None or self._cooling(rule, now_s):
            return []
        window.reset(ts_ms, price)
        self.fired_at[rule.id] = now_s
        sign = "+" if direction == "up" else "-"
        return [Firing(
            rule.id, f"move:{direction}:{ts_ms}",
            f"{code} moved {sign}{size:.2f} % within {rule.params['window_s']} s",
            f"{rule.name}: {rule.venue} {code} at {_fmt(price)}, {sign}{size:.2f} % "
            f"(threshold {rule.params['percent']} %).",
            {"venue": rule.venue, "symbol": code, "price": price, "percent": round(size, 4),
             "direction": direction, "ts_ms": ts_ms})]

    def on_bars(self, venue: str, code: str, tf: str, times: np.ndarray, close: np.ndarray,
                volume: np.ndarray) -> list[Firing]:
        """The bar rules of a series, given its closed bars up to and with the new one (last)."""
        out = []
        if not len(times):
            return out
        t = int(times[-1])
        now_s = (t + _tf_ms(tf)) / 1000.0
        for rule in self.index.bar_series.get((venue, code, tf), ()):
            firing = (self._volume(rule, code, tf, t, volume) if rule.kind == "volume_spike"
                      else self._indicator(rule, code, tf, t, close))
            if firing is not None and not self._cooling(rule, now_s):
                self.fired_at[rule.id] = now_s
                out.append(firing)
        return out

    def _volume(self, rule, code, tf, t, volume) -> Firing | None:
        n = int(rule.params["bars"])
        if len(volume) < n + 1:
            return None
        average = float(np.mean(volume[-n - 1:-1]))
        factor = float(rule.params["factor"])
        current = float(volume[-1])
        if not (average > 0 and current > factor * average):
            return None
        return Firing(rule.id, f"volume:{tf}:{t}",
                      f"{code} volume spike on {tf}: {current / average:.1f}× the average",
                      f"{rule.name}: {rule.venue} {code} {tf} bar volume {_fmt(current)} > "
                      f"{rule.params['factor']} × {_fmt(average)} (average of {n} bars).",
                      {"venue": rule.venue, "symbol": code, "timeframe": tf, "bar_time_ms": t,
                       "volume": current, "average": average})

    def _indicator(self, rule, code, tf, t, close) -> Firing | None:
        p = rule.params
        name, period = p["indicator"], int(p["period"])
        values = getattr(indicators, name)(close, period)
        value = float(values[-1]) if len(values) else math.nan
        if math.isnan(value):
            return None
        threshold = float(p["value"])
        holds = value < threshold if p["op"] == "below" else value > threshold
        was = self.held.get(rule.id, False)
        self.held[rule.id] = holds
        if not holds or was:
            return None
        label = f"{name.upper()}({period}) on {tf}"
        return Firing(rule.id, f"indicator:{tf}:{t}",
                      f"{code} {label} {p['op']} {p['value']}: {value:.2f}",
                      f"{rule.name}: {rule.venue} {code} {label} is {value:.2f}, {p['op']} "
                      f"{p['value']} on the bar closed at {t}.",
                      {"venue": rule.venue, "symbol": code, "timeframe": tf, "bar_time_ms": t,
                       "value": value})


def _tf_ms(tf: str) -> int:
    from markets.timeframes import timeframe_ms

    return timeframe_ms(tf)
