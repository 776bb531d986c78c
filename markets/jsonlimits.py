"""Bounded JSON from users: one parser for every form, command, socket and API body.

``json.loads`` recurses once per nesting level, so 50,000 ``[`` raise ``RecursionError``
(a 500, or a dead WebSocket), and it accepts ``NaN``, ``Infinity`` and numbers of thousands of
digits. :func:`loads` checks the size first, then the nesting depth with a linear scan (no
recursion), and only then parses, refusing non-finite numbers. Every refusal is a
:class:`JsonLimitError` (a ``ValueError``) whose message a trader understands, prefixed with
what was being read (``what``).

Pure: standard library only (``markets`` is the bottom layer, so ``strategies``, ``orders``
and ``tradesite`` can all use it). The Django form field that uses it is
``markets.admin_safety.BoundedJSONFormField``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: Defaults: far above any parameter set, ranges, risk or API body this site takes.
MAX_BYTES = 64 * 1024
MAX_DEPTH = 20

# Strings are skipped whole (a bracket inside one does not nest); brackets are counted.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


# An escaped NUL (\u0000, not preceded by an escaping backslash): valid JSON, but neither
# PostgreSQL's jsonb nor its text columns can store it.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


class JsonLimitError(ValueError):
    """The text is not JSON this site accepts; the message says why."""


def nesting_depth(text: str, limit: int | None = None) -> int:
    """How deeply ``text`` nests arrays and objects, without recursion. Stops counting (and
    returns ``limit + 1``) as soon as ``limit`` is exceeded."""
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        char = match.group()[0]
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if limit is not None and deepest > limit:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def _constant(name: str):
    raise JsonLimitError(f"{name} is not a JSON number; use a finite number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonLimitError(f"{text} is too large a number")
    return value


def loads(
    text: str | bytes,
    *,
    what: str = "the JSON",
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse ``text`` as JSON within ``max_bytes`` (UTF-8) and ``max_depth`` levels.

    Raises :class:`JsonLimitError` naming ``what`` for text that is too long, nested too
    deeply, not UTF-8, not JSON (with line and column), or holding NaN, Infinity or a number
    too large to represent."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > max_bytes:
            raise JsonLimitError(
                f"{what} is {len(text):,} bytes; at most {max_bytes:,} are accepted"
            )
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonLimitError(f"{what} is not UTF-8 text") from None
    elif len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise JsonLimitError(
            f"{what} is {len(text.encode('utf-8', 'surrogatepass')):,} bytes; at most "
            f"{max_bytes:,} are accepted"
        )
    if nesting_depth(text, max_depth) > max_depth:
        raise JsonLimitError(
            f"{what} nests arrays or objects more than {max_depth} levels deep"
        )
    if _NUL_ESCAPE.search(text):
        raise JsonLimitError(f"{what} contains a NUL character (\\u0000), which cannot be stored")
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float)
    except JsonLimitError as exc:
        raise JsonLimitError(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise JsonLimitError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4,300 digits
        raise JsonLimitError(f"{what} is not JSON this site accepts ({exc})") from None


def loads_object(text: str | bytes, *, what: str = "the JSON", example: str = '{"period": 14}',
                 **limits) -> dict:
    """:func:`loads`, and the value must be a JSON object."""
    value = loads(text, what=what, **limits)
    if not isinstance(value, dict):
        raise JsonLimitError(f"{what} must be a JSON object, e.g. {example}")
    return value
