"""SQLite rows straight into numpy columns through the C module ``markets._sqlite_columns``.

Built by ``python -m markets.sqlite_columns_build``; imported only by the SQLite candle backend
(:mod:`markets.candles.backends.sqlite`), an optional accelerator. Used only when it links the
very SQLite library Python's ``_sqlite3`` uses (one copy of SQLite in the process: two copies
keep separate POSIX-lock bookkeeping, and closing a file in one drops the other's locks).
``AVAILABLE`` says whether it can be used; when the module is missing or links another copy,
the backend reads through the sqlite3 module instead (logged at debug level).
"""

from __future__ import annotations

import ctypes
import logging
import sqlite3

import numpy as np

log = logging.getLogger(__name__)

_ERRLEN = 512
#: What the C functions return when there were more rows than the arrays hold, and when the
#: collector's rows did not come by increasing open time.
_FULL, _UNORDERED = -2, -3


class ReadError(RuntimeError):
    """The C reader could not read (SQLite's message); the caller falls back."""


def _load():
    try:
        from markets import _sqlite_columns
    except ImportError as exc:
        log.debug("markets._sqlite_columns not built (%s); SQLite reads use the sqlite3 module",
                  exc)
        return None
    ffi, lib = _sqlite_columns.ffi, _sqlite_columns.lib
    problem = _same_sqlite_problem(ffi, lib)
    if problem:
        log.debug("markets._sqlite_columns not used: %s", problem)
        return None
    return ffi, lib


def _same_sqlite_problem(ffi, lib) -> str | None:
    """None when the module and Python's ``_sqlite3`` share one SQLite library, else why not."""
    import _sqlite3

    version = ffi.string(lib.sqlite3_libversion()).decode()
    if version != sqlite3.sqlite_version:
        return f"it links SQLite {version}, Python's sqlite3 uses {sqlite3.sqlite_version}"
    try:
        theirs = ctypes.cast(ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion,
                             ctypes.c_void_p).value
    except (OSError, AttributeError) as exc:
        return f"cannot resolve sqlite3_libversion through _sqlite3 ({exc})"
    ours = int(ffi.cast("uintptr_t", lib.sqlc_libversion_address()))
    if theirs != ours:
        return f"a second copy of SQLite ({ours:#x} is not _sqlite3's {theirs:#x})"
    return None


_MODULE = _load()
AVAILABLE = _MODULE is not None


def same_sqlite_copy() -> bool:
    """Whether the built module shares Python's SQLite library (False when not built)."""
    return AVAILABLE and _same_sqlite_problem(*_MODULE) is None


#: A span-sized read keeps its arrays when they are at least this full; emptier ones (a series
#: with many missing candles) are copied to their size so the spare capacity is freed.
KEEP_FILL = 0.9
#: A span longer than this many steps (a stray open time decades off) is sized by a count.
MAX_SPAN_ROWS = 20_000_000


def read_columns(
    path: str, *, uri: bool, timeout_s: float, count_sql: str, sql: str, symbol_id: int,
    texts: list[str], limit: int | None, descending: bool, nvalues: int,
    span_sql: tuple[str, str] | None = None, step: int | None = None,
    collect_sql: str | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run ``sql`` (an open time -- an integer, or Django's datetime text -- then ``nvalues``
    float columns; ``?1`` the symbol id, ``?2``... ``texts``) on a new read-only connection to
    ``path``, in one read transaction. Rows come out in query order, or reversed when
    ``descending``. Raises :class:`ReadError`.

    The arrays are sized before the read: with ``span_sql`` (two queries: the first and the
    last open time of the rows, a min() and a max(), one index probe each) and ``step`` (the
    open times' spacing) by the span, which holds every row when the open times are
    multiples of ``step`` (what ``upsert_candles`` stores); otherwise, or when the span turns
    out short, by ``count_sql`` (a count of the rows, a scan of the index), capped at
    ``limit``.

    ``collect_sql`` (ascending reads without a limit): the same rows through the
    ``tradesite_collect(open_time, v1, ...)`` aggregate and no ORDER BY, about twice as fast
    (the statement hands each row to the collector instead of returning it); the collector
    checks that the rows came by increasing open time, and ``sql`` reads them when not.
    """
    if _MODULE is None:
        raise ReadError("markets._sqlite_columns is not available")
    ffi, lib = _MODULE
    err = ffi.new("char[]", _ERRLEN)
    keep = [ffi.new("char[]", t.encode()) for t in texts]
    c_texts = ffi.new("const char *[]", keep) if keep else ffi.NULL

    def fail():
        raise ReadError(ffi.string(err).decode(errors="replace"))

    handle = lib.sqlc_open(path.encode(), int(uri), int(timeout_s * 1000), err, _ERRLEN)
    if handle == ffi.NULL:
        fail()
    try:
        capacity = None
        if span_sql is not None and step:
            bounds = ffi.new("long long[2]")
            found = [lib.sqlc_time_of(handle, q.encode(), symbol_id, c_texts, len(keep),
                                      bounds + i, err, _ERRLEN) for i, q in enumerate(span_sql)]
            if min(found) < 0:
                fail()
            capacity = (bounds[1] - bounds[0]) // step + 1 if min(found) else 0
            if capacity > MAX_SPAN_ROWS:
                capacity = None
            elif limit is not None:
                capacity = min(capacity, limit)
        while True:
            if capacity is None:
                capacity = lib.sqlc_count(handle, count_sql.encode(), symbol_id, c_texts,
                                          len(keep), err, _ERRLEN)
                if capacity < 0:
                    fail()
                if limit is not None:
                    capacity = min(capacity, limit)
                exact = True
            else:
                exact = False
            times = np.empty(capacity, dtype=np.int64)
            values = [np.empty(capacity, dtype=np.float64) for _ in range(nvalues)]
            pointers = ffi.new("double *[]", [ffi.from_buffer("double[]", v) for v in values]
                               ) if values else ffi.NULL
            c_times = ffi.from_buffer("long long[]", times)
            got = _UNORDERED
            if collect_sql is not None:
                got = lib.sqlc_collect(handle, collect_sql.encode(), symbol_id, c_texts,
                                       len(keep), capacity, c_times, pointers, nvalues, err,
                                       _ERRLEN)
                if got == _UNORDERED:  # another query plan: read with ORDER BY from now on
                    log.info("C reader: rows did not come in open-time order (%s); reading "
                             "with ORDER BY", ffi.string(err).decode(errors="replace"))
                    collect_sql = None
            if got == _UNORDERED:
                got = lib.sqlc_read(handle, sql.encode(), symbol_id, c_texts, len(keep),
                                    capacity, int(descending), c_times, pointers, nvalues, err,
                                    _ERRLEN)
            if got == _FULL and not exact:  # open times off the step: count, then read again
                capacity = None
                continue
            if got < 0:
                fail()
            if exact and got != capacity:  # one snapshot: cannot happen; never hand out
                raise ReadError(f"read {got} rows, counted {capacity}")  # unwritten memory
            break
        if got < capacity:  # the rows filled one end of the arrays (the start, or the end
            rows = slice(capacity - got, None) if descending else slice(0, got)  # descending)
            small = got < KEEP_FILL * capacity
            times = times[rows].copy() if small else times[rows]
            values = [v[rows].copy() if small else v[rows] for v in values]
        return times, values
    finally:
        lib.sqlc_close(handle)
