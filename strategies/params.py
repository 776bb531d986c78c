"""Declared, validated parameters: the one way a strategy or a sizing method says what it takes.

A parameter set is a frozen dataclass whose fields are made with :func:`param`, which records the
default, the bounds and a help text. Validation happens in ``__post_init__`` so an invalid object
cannot exist, and every message names the parameter and the fix, because a trader reads it in the
admin. ``from_dict`` is the edge: it takes untrusted JSON (admin form, API, command line), rejects
unknown names and coerces numbers written as strings.

Pure: standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar


class ParamError(ValueError):
    """Bad parameters. The message is meant for the trader who typed them."""


def param(
    default: Any,
    *,
    min: float | None = None,  # noqa: A002 - reads best at the declaration site
    max: float | None = None,  # noqa: A002
    choices: tuple | None = None,
    help: str = "",  # noqa: A002
    grid: tuple | None = None,
):
    """Declare one parameter.

    ``min``/``max`` are inclusive bounds; ``choices`` restricts to listed values; ``grid`` is the
    default search grid the optimizer uses (values within bounds).
    """
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(
        default=default,
        metadata={"min": min, "max": max, "choices": choices, "help": help, "grid": grid},
    )


def _kind(default: Any) -> type:
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    if isinstance(default, tuple):
        return tuple
    raise TypeError(f"unsupported parameter default {default!r}")


def _coerce(name: str, kind: type, value: Any) -> Any:
    """Turn JSON-ish input into ``kind`` or raise ParamError naming ``name``."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ParamError(f"{name} must be true or false, not {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ParamError(f"{name} must be a whole number, not {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = math.nan
            if number.is_integer():
                return int(number)
        raise ParamError(f"{name} must be a whole number, not {value!r}")
    if kind is float:
        if isinstance(value, bool):
            raise ParamError(f"{name} must be a number, not {value!r}")
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ParamError(f"{name} must be a number, not {value!r}") from None
        if not math.isfinite(number):
            raise ParamError(f"{name} must be a finite number, not {value!r}")
        return number
    if kind is str:
        if isinstance(value, str):
            return value.strip()
        raise ParamError(f"{name} must be text, not {value!r}")
    if kind is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple)):
            return tuple(value)
        raise ParamError(f"{name} must be a list, not {value!r}")
    raise ParamError(f"{name}: unsupported type")


@dataclasses.dataclass(frozen=True)
class Params:
    """Base of every parameter set. Subclasses declare fields with :func:`param`."""

    #: Shown in messages, e.g. "rsi" or "sizing 'kelly'". Set by subclasses or the registry.
    label: ClassVar[str] = "parameters"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            kind = _kind(f.default)
            value = _coerce(f.name, kind, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
            meta = f.metadata
            if kind in (int, float):
                low, high = meta.get("min"), meta.get("max")
                if low is not None and value < low:
                    raise ParamError(self._bounds_message(f.name, value, low, high))
                if high is not None and value > high:
                    raise ParamError(self._bounds_message(f.name, value, low, high))
            choices = meta.get("choices")
            if choices is not None:
                items = value if kind is tuple else (value,)
                bad = [item for item in items if item not in choices]
                if bad:
                    raise ParamError(
                        f"{f.name} must be one of {', '.join(map(str, choices))}; got {bad[0]!r}"
                    )
        self.check()

    @staticmethod
    def _bounds_message(name: str, value: Any, low: Any, high: Any) -> str:
        if low is not None and high is not None:
            return f"{name} must be between {low} and {high}; got {value}"
        if low is not None:
            return f"{name} must be at least {low}; got {value}"
        return f"{name} must be at most {high}; got {value}"

    def check(self) -> None:
        """Cross-parameter rules (for example fast < slow). Raise ParamError to reject."""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Params:
        """Build from untrusted input. Unknown names are an error, missing ones take defaults."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ParamError(
                f"{cls.label}: parameters must be a JSON object, like {cls.example()}"
            )
        known = cls.names()
        unknown = sorted(set(data) - set(known))
        if unknown:
            takes = ", ".join(known) if known else "no parameters"
            raise ParamError(
                f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"for {cls.label}; it takes: {takes}"
            )
        try:
            return cls(**data)
        except TypeError as exc:  # defensive: dataclass signature mismatch
            raise ParamError(f"{cls.label}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def example(cls) -> str:
        """A JSON object naming this class's first parameter with its default, for messages."""
        for f in dataclasses.fields(cls):
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            return json.dumps({f.name: default})
        return "{}"

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """Declared parameters as plain dicts: name, type, default, min, max, choices, help."""
        rows = []
        for f in dataclasses.fields(cls):
            meta = f.metadata
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            rows.append(
                {
                    "name": f.name,
                    "type": _kind(f.default).__name__,
                    "default": default,
                    "min": meta.get("min"),
                    "max": meta.get("max"),
                    "choices": list(meta["choices"]) if meta.get("choices") else None,
                    "help": meta.get("help", ""),
                    "grid": list(meta["grid"]) if meta.get("grid") else None,
                }
            )
        return rows
