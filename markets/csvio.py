"""Candles as CSV: parse with every row checked, write so that a parse gives back the same bits.

Format: a header line, then one candle per line::

    open_time,open,high,low,close,volume[,quote_volume]
    2024-01-01T00:00:00Z,42000.5,42100.0,41950.0,42050.25,12.5,525000.0

``open_time`` is the candle's open time, either ISO-8601 with ``Z`` or an offset
(``2024-01-01T09:00:00+09:00``) or integer epoch milliseconds (``1704067200000``). Columns may
come in any order; names are matched ignoring case and surrounding spaces. Prices and volumes
are floats (market data, not money). Each row is checked against the candle contract
(:mod:`markets.candle_contract`). Pure: standard library and numpy only.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import itemgetter
from typing import IO

import numpy as np

from markets.candle_contract import RULES, CandleRow, failed_rules
from markets.timeframes import timeframe_ms

__all__ = [
    "COLUMNS",
    "CandleRow",
    "CsvError",
    "format_open_time",
    "parse_candles_csv",
    "parse_open_time",
    "write_candles_csv",
]

REQUIRED = ("open_time", "open", "high", "low", "close", "volume")
OPTIONAL = ("quote_volume",)
COLUMNS = REQUIRED + OPTIONAL

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Epoch ms below this (1973-03-03) are almost surely epoch *seconds* typed into a ms column.
_SECONDS_SUSPECT = 100_000_000_000
#: The latest open time a datetime can hold with room for a candle: 9999-12-31T00:00:00Z.
_MAX_MS = (dt.datetime(9999, 12, 31, tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(milliseconds=1)
#: A candle row is a few dozen characters; a longer line is refused before the CSV reader
#: (whose own limit is 128 KB per field) holds it.
MAX_LINE = 4096
_NEWLINES = ("\n", b"\n")
_FIRST_SIX = itemgetter(0, 1, 2, 3, 4, 5)


@dataclasses.dataclass(frozen=True)
class CsvError:
    """A problem with one line of a CSV file (``line`` counts from 1, the header is line 1)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class _RowError(Exception):
    pass


def parse_open_time(text: str) -> int:
    """Epoch ms from ``1704067200000`` or an ISO-8601 time with ``Z`` or an offset.

    Raises ValueError with a message a trader understands.
    """
    text = text.strip()
    if not text:
        raise ValueError("open_time is empty")
    if text.isascii() and text.isdigit():
        ms = int(text) if len(text) <= 17 else _MAX_MS + 1  # int() refuses 4,300+ digits
        if ms > _MAX_MS:
            shown = text if len(text) <= 24 else text[:20] + "..."
            raise ValueError(f"open_time {shown} is after 9999-12-31; write epoch milliseconds "
                             "such as 1704067200000")
        if ms < _SECONDS_SUSPECT:
            raise ValueError(
                f"open_time {text} looks like epoch seconds; write epoch milliseconds "
                f"({text}000) or an ISO-8601 time such as 2024-01-01T00:00:00Z"
            )
        return ms
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"open_time {text!r} is neither epoch milliseconds nor an ISO-8601 time such as "
            "2024-01-01T00:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise ValueError(
            f"open_time {text!r} has no time zone; add Z for UTC or an offset such as +09:00"
        )
    try:
        delta = when - _EPOCH
    except OverflowError:  # an offset that moves the time past year 9999
        delta = dt.timedelta.max
    if delta.microseconds % 1000:
        raise ValueError(f"open_time {text!r} has a fraction of a millisecond")
    ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if ms > _MAX_MS:
        raise ValueError(f"open_time {text!r} is after 9999-12-31")
    return ms


def format_open_time(ms: int) -> str:
    """ISO-8601 UTC with ``Z``; milliseconds only when the time has any."""
    when = _EPOCH + dt.timedelta(milliseconds=ms)
    if ms % 1000:
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Lines:
    """The source's physical lines as text, one string per line, so the CSV reader's line
    numbers stay the file's. A line that is not UTF-8 or longer than :data:`MAX_LINE` is handed
    on as an empty line and its problem kept in ``problems`` (line number -> message): a binary
    file or a huge field is a message per line, never an exception or a huge string."""

    def __init__(self, source: str | bytes | IO | Iterable[str]) -> None:
        self.problems: dict[int, str] = {}
        self.number = 0
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        elif isinstance(source, str):
            source = io.StringIO(source, newline="")
        self._read = self._reader(source)

    @staticmethod
    def _reader(source):
        readline = getattr(source, "readline", None)
        if readline is None:  # an iterable of lines
            for line in source:
                yield line, False
            return
        while line := readline(MAX_LINE + 1):
            long = len(line) > MAX_LINE and line[-1:] not in _NEWLINES
            while long and (rest := readline(MAX_LINE)) and rest[-1:] not in _NEWLINES:
                pass  # the rest of an overlong line, dropped a piece at a time
            yield line, long

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line, long = next(self._read)
        self.number += 1
        if long or len(line) > MAX_LINE:
            self.problems[self.number] = (
                f"longer than {MAX_LINE:,} characters; a candle row is a few dozen"
            )
            return "\n"
        if isinstance(line, bytes):
            try:
                return line.decode("utf-8-sig" if self.number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                self.problems[self.number] = (
                    f"not UTF-8 text (byte 0x{line[exc.start]:02x} at column {exc.start + 1});"
                    " save the file as UTF-8 CSV"
                )
                return "\n"
        return line


def _number(name: str, text: str) -> float:
    text = text.strip()
    if not text:
        raise _RowError(f"{name} is empty")
    try:
        value = float(text)
    except ValueError:
        raise _RowError(f"{name} {text!r} is not a number") from None
    return value


def _header(fields: list[str]) -> tuple[dict[str, int], str | None]:
    """Column name -> index, or an error message."""
    names = [f.strip().lower() for f in fields]
    if names:
        names[0] = names[0].lstrip("\ufeff")
    if names and names[0] and (names[0][0].isdigit() or names[0][0] == "-"):
        return {}, (
            "the first line must be a header naming the columns: "
            f"{','.join(REQUIRED)}[,quote_volume]"
        )
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name not in COLUMNS:
            return {}, (
                f"unknown column {fields[i].strip()!r}; the columns are "
                f"{', '.join(REQUIRED)} and optionally quote_volume"
            )
        if name in index:
            return {}, f"column {name!r} appears twice"
        index[name] = i
    missing = [c for c in REQUIRED if c not in index]
    if missing:
        return {}, f"missing column(s) {', '.join(missing)}; the header needs {','.join(REQUIRED)}"
    return index, None


def parse_candles_csv(
    lines_or_file: str | bytes | IO | Iterable[str], timeframe: str
) -> tuple[list[CandleRow], list[CsvError]]:
    """Parse and check candles of ``timeframe`` from CSV text (str or UTF-8 bytes), an
    iterable of lines, or an open file (text, or binary read as UTF-8).

    Returns ``(rows, errors)``: ``rows`` holds every valid candle in file order, ``errors`` one
    :class:`CsvError` per rejected line (with its line number). A row is rejected when a number
    is missing, not finite or negative where it must not be, when high/low do not contain
    open/close, when low is not above zero, when its open time is not the start of a
    ``timeframe`` bar, or when its open time repeats an earlier line's. Blank lines are skipped.
    """
    step = timeframe_ms(timeframe)
    lines = _Lines(lines_or_file)
    reader = csv.reader(lines)
    rows: list[CandleRow] = []
    errors: list[CsvError] = []
    try:
        header = next(reader)
        while not header:
            header = next(reader)
    except StopIteration:
        if lines.problems:
            return rows, [CsvError(n, m) for n, m in lines.problems.items()][:1]
        return rows, [CsvError(1, "the file is empty; it needs a header line and candles")]
    except csv.Error as exc:
        return rows, [CsvError(reader.line_num, f"not CSV: {exc}")]
    if lines.problems:  # the header, or a line before it, is unreadable
        return rows, [CsvError(n, m) for n, m in lines.problems.items()][:1]
    index, problem = _header(header)
    if problem:
        return rows, [CsvError(reader.line_num, problem)]
    width = len(header)
    i_time, i_open, i_high, i_low, i_close, i_volume = (index[c] for c in REQUIRED)
    i_quote = index.get("quote_volume")
    # First the text: every line that reads as numbers and a time becomes a candidate.
    candidates: list[CandleRow] = []
    numbers: list[int] = []
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a NUL character, an unterminated huge quoted field
            errors.append(CsvError(reader.line_num, f"not CSV: {exc}"))
            continue
        # Fast path: plain well-formed text; anything unusual (blank, empty cells, odd times)
        # goes to the explaining reader.
        if len(fields) == width:
            try:
                q = None if i_quote is None else float(fields[i_quote])
                t = fields[i_time]
                row = CandleRow(int(t) if t.isdigit() else parse_open_time(t),
                                float(fields[i_open]), float(fields[i_high]),
                                float(fields[i_low]), float(fields[i_close]),
                                float(fields[i_volume]), q)
            except ValueError:
                pass
            else:
                if (q is None or q == q) and _SECONDS_SUSPECT <= row[0] <= _MAX_MS:
                    candidates.append(row)
                    numbers.append(reader.line_num)
                    continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        try:
            candidates.append(_read_row(fields, index, width))
        except _RowError as exc:
            errors.append(CsvError(reader.line_num, str(exc)))
            continue
        numbers.append(reader.line_num)
    # Then the candle contract over all of them at once, and the file's own rule: one line
    # per open time.
    failed, times = _failed(candidates, step)
    if not (failed >= 0).any() and len(np.unique(times)) == len(times):
        rows = candidates  # the usual file: every row valid, no open time twice
    else:
        rows = _keep(candidates, numbers, failed.tolist(), step, timeframe, errors)
    if lines.problems:
        errors.extend(CsvError(n, m) for n, m in lines.problems.items())
    errors.sort(key=lambda e: e.line)
    return rows, errors


def _keep(candidates: list[CandleRow], numbers: list[int], failed: list[int], step: int,
          timeframe: str, errors: list[CsvError]) -> list[CandleRow]:
    """The valid candidates, each open time once; an error per other line."""
    rows = []
    seen: dict[int, int] = {}
    for row, line, rule in zip(candidates, numbers, failed, strict=True):
        if rule >= 0:
            q = np.nan if row[6] is None else row[6]
            errors.append(CsvError(line, RULES[rule].detail(*row[:6], q, step, timeframe)))
            continue
        first = seen.get(row[0])
        if first is not None:
            errors.append(CsvError(line, f"open_time {format_open_time(row[0])} repeats line "
                                         f"{first}"))
            continue
        seen[row[0]] = line
        rows.append(row)
    return rows


def _failed(candidates: list[CandleRow], step: int) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate the index of the first contract rule it breaks, or -1; and the open times
    (int64). (Open times are
    at most year 9999 in ms, below 2**53, so they pass through float64 exactly.)"""
    n = len(candidates)
    if n == 0:
        return np.empty(0, dtype=np.int8), np.empty(0, dtype=np.int64)
    try:  # every row has a quote volume: one pass
        flat = np.fromiter(chain.from_iterable(candidates), np.float64, count=n * 7)
        flat = flat.reshape(n, 7)
        quote = flat[:, 6]
    except TypeError:  # a missing quote volume (None) somewhere
        flat = np.fromiter(chain.from_iterable(map(_FIRST_SIX, candidates)), np.float64,
                           count=n * 6).reshape(n, 6)
        quote = np.fromiter((np.nan if r[6] is None else r[6] for r in candidates),
                            dtype=np.float64, count=n)
    cols = {"open_time_ms": flat[:, 0].astype(np.int64), "quote_volume": quote}
    for i, name in enumerate(("open", "high", "low", "close", "volume"), start=1):
        cols[name] = flat[:, i]
    return failed_rules(cols, step), cols["open_time_ms"]


def _read_row(fields: list[str], index: dict[str, int], width: int) -> CandleRow:
    """The slow, explaining reader of one line's text (the contract is checked after)."""
    if len(fields) != width:
        raise _RowError(f"expected {width} values like the header, found {len(fields)}")
    try:
        open_time = parse_open_time(fields[index["open_time"]])
    except ValueError as exc:
        raise _RowError(str(exc)) from None
    values = [_number(name, fields[index[name]]) for name in REQUIRED[1:]]
    q = None
    i_quote = index.get("quote_volume")
    if i_quote is not None and fields[i_quote].strip():
        q = _number("quote_volume", fields[i_quote])
        if not math.isfinite(q):  # NaN would read as "no quote volume" further on
            raise _RowError(f"quote_volume is {fields[i_quote].strip()}; prices and volumes "
                            "must be finite numbers")
    return CandleRow(open_time, *values, q)


def write_candles_csv(
    rows: Iterable[Sequence], file: IO[str], *, time_format: str = "iso"
) -> int:
    """Write candles as CSV to an open text file; returns the number of candles written.

    ``rows`` are :class:`CandleRow` or any sequences in the same order
    ``(open_time_ms, open, high, low, close, volume[, quote_volume])``. ``time_format`` is
    ``"iso"`` (``2024-01-01T00:00:00Z``) or ``"ms"`` (epoch milliseconds). Floats are written
    with ``repr``, so :func:`parse_candles_csv` reads back the same values bit for bit. The
    quote_volume column is written when any row has one (empty cells for the others).
    (The parser takes epoch-ms values before 1973-03-03 for epoch seconds and refuses them;
    no market data is that old, and ``"iso"`` has no such limit.)
    """
    if time_format not in ("iso", "ms"):
        raise ValueError(f"time_format must be 'iso' or 'ms', got {time_format!r}")
    rows = list(rows)
    with_quote = any(len(r) > 6 and r[6] is not None for r in rows)
    fmt_time = format_open_time if time_format == "iso" else str
    file.write(",".join(COLUMNS if with_quote else REQUIRED) + "\n")
    out = []
    for r in rows:
        cells = [fmt_time(int(r[0]))]
        cells.extend(repr(float(x)) for x in r[1:6])
        if with_quote:
            q = r[6] if len(r) > 6 else None
            cells.append("" if q is None else repr(float(q)))
        out.append(",".join(cells))
        if len(out) >= 10_000:
            file.write("\n".join(out) + "\n")
            out.clear()
    if out:
        file.write("\n".join(out) + "\n")
    return len(rows)
