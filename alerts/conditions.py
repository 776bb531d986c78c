"""The parameters each rule kind takes, checked in one place (the admin, the page and the API
all go through :func:`check`). Pure: no database.

- ``price_cross``: ``{"level": "65000", "direction": "up" | "down" | "either"}``
- ``price_move``: ``{"percent": "3", "window_s": 900, "direction": "up" | "down" | "either"}``
- ``indicator``: ``{"indicator": "rsi", "period": 14, "timeframe": "15m", "op": "below" |
  "above", "value": "25"}`` (on closed bars)
- ``volume_spike``: ``{"timeframe": "1m", "factor": "3", "bars": 20}`` (closed bar's volume >
  factor × the average of the ``bars`` before it)
- ``stream_silent``: ``{"minutes": 10, "venue": "sim"}`` (venue optional: every venue)
- ``order_unknown``: ``{"minutes": 5}`` (a live order still awaiting its outcome)
- ``workers_missing``, ``reconcile_diff`` and the trading-event kinds: ``{}``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from markets.timeframes import TIMEFRAMES

MARKET_KINDS = frozenset({"price_cross", "price_move", "indicator", "volume_spike"})
HEALTH_KINDS = frozenset({"stream_silent", "workers_missing", "reconcile_diff",
                          "order_unknown"})
#: Indicators a rule may watch: name -> (function name in strategies.indicators, default period).
INDICATORS = {"rsi": 14, "sma": 20, "ema": 20, "roc": 10}
DIRECTIONS = ("up", "down", "either")
MAX_WINDOW_S = 24 * 3600
MAX_BARS = 500


class ParamError(ValueError):
    """A parameter a trader must fix: ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _decimal(params: dict, field: str, *, low: Decimal | None = Decimal(0),
             high: Decimal | None = None, default=None) -> Decimal:
    raw = params.get(field, default)
    if raw is None:
        raise ParamError(field, "required")
    if isinstance(raw, bool):
        raise ParamError(field, f"must be a number, got {raw!r}")
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise ParamError(field, f"must be a number, got {raw!r}") from None
    if not value.is_finite():
        raise ParamError(field, "must be a finite number")
    if low is not None and value <= low:
        raise ParamError(field, f"must be greater than {low}")
    if high is not None and value > high:
        raise ParamError(field, f"must be at most {high}")
    return value


def _int(params: dict, field: str, low: int, high: int, default=None) -> int:
    raw = params.get(field, default)
    if raw is None:
        raise ParamError(field, "required")
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ParamError(field, f"must be a whole number, got {raw!r}")
    try:
        value = int(raw)
    except ValueError:
        raise ParamError(field, f"must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ParamError(field, f"must be between {low} and {high}, got {value}")
    return value


def _choice(params: dict, field: str, choices, default=None) -> str:
    raw = params.get(field, default)
    if raw not in choices:
        raise ParamError(field, f"must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def check(kind: str, params: dict) -> dict:
    """The normalized parameters of a rule of ``kind`` (numbers as strings), or ParamError."""
    if not isinstance(params, dict):
        raise ParamError("params", "must be a JSON object")
    allowed: tuple[str, ...]
    if kind == "price_cross":
        allowed = ("level", "direction")
        out = {"level": str(_decimal(params, "level")),
               "direction": _choice(params, "direction", DIRECTIONS, "either")}
    elif kind == "price_move":
        allowed = ("percent", "window_s", "direction")
        out = {"percent": str(_decimal(params, "percent", high=Decimal(1000))),
               "window_s": _int(params, "window_s", 1, MAX_WINDOW_S),
               "direction": _choice(params, "direction", DIRECTIONS, "either")}
    elif kind == "indicator":
        allowed = ("indicator", "period", "timeframe", "op", "value")
        name = _choice(params, "indicator", tuple(INDICATORS), "rsi")
        out = {"indicator": name,
               "period": _int(params, "period", 2, MAX_BARS, INDICATORS[name]),
               "timeframe": _choice(params, "timeframe", TIMEFRAMES, "1m"),
               "op": _choice(params, "op", ("below", "above")),
               "value": str(_decimal(params, "value", low=None))}
    elif kind == "volume_spike":
        allowed = ("timeframe", "factor", "bars")
        out = {"timeframe": _choice(params, "timeframe", TIMEFRAMES, "1m"),
               "factor": str(_decimal(params, "factor", high=Decimal(10_000))),
               "bars": _int(params, "bars", 2, MAX_BARS, 20)}
    elif kind == "stream_silent":
        allowed = ("minutes", "venue")
        out = {"minutes": _int(params, "minutes", 1, 24 * 60, 10)}
        venue = params.get("venue")
        if venue not in (None, ""):
            if not isinstance(venue, str) or len(venue) > 50:
                raise ParamError("venue", "must be a venue's slug, e.g. \"sim\"")
            out["venue"] = venue
    elif kind == "order_unknown":
        allowed = ("minutes",)
        out = {"minutes": _int(params, "minutes", 1, 24 * 60, 5)}
    else:
        allowed = ()
        out = {}
    extra = sorted(set(params) - set(allowed))
    if extra:
        takes = ", ".join(allowed) if allowed else "no parameters (leave it as {})"
        raise ParamError(extra[0], f"not a parameter of this kind of rule; it takes {takes}")
    return out


def needs_symbol(kind: str) -> bool:
    return kind in MARKET_KINDS
