"""SQLite rows straight into numpy columns through the C module ``markets._sqlite_columns``.

Built by ``python -m markets.sqlite_columns_build``. Used only when it links the very SQLite
library Python's ``_sqlite3`` uses (one copy of SQLite in the process: two copies keep separate
POSIX-lock bookkeeping, and closing a file in one drops the other's locks). ``AVAILABLE`` says
whether it can be used; when the module is missing or links another copy, callers read through
the sqlite3 module instead (logged at debug level).
"""

from __future__ import annotations

import ctypes
import logging
import sqlite3

import numpy as np

log = logging.getLogger(__name__)

_ERRLEN = 512


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


def read_columns(
    path: str, *, uri: bool, timeout_s: float, count_sql: str, sql: str, symbol_id: int,
    texts: list[str], limit: int | None, descending: bool, nvalues: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run ``sql`` (an int64 first column and ``nvalues`` float columns; ``?1`` the symbol id,
    ``?2``... ``texts``) on a new read-only connection to ``path``, in one read transaction with
    ``count_sql`` (same parameters; its count, capped at ``limit``, sizes the arrays). Rows come
    out in query order, or reversed when ``descending``. Raises :class:`ReadError`."""
    if _MODULE is None:
        raise ReadError("markets._sqlite_columns is not available")
    ffi, lib = _MODULE
    err = ffi.new("char[]", _ERRLEN)
    keep = [ffi.new("char[]", t.encode()) for t in texts]
    c_texts = ffi.new("const char *[]", keep) if keep else ffi.NULL
    handle = lib.sqlc_open(path.encode(), int(uri), int(timeout_s * 1000), err, _ERRLEN)
    if handle == ffi.NULL:
        raise ReadError(ffi.string(err).decode(errors="replace"))
    try:
        n = lib.sqlc_count(handle, count_sql.encode(), symbol_id, c_texts, len(keep), err,
                           _ERRLEN)
        if n < 0:
            raise ReadError(ffi.string(err).decode(errors="replace"))
        if limit is not None:
            n = min(n, limit)
        times = np.empty(n, dtype=np.int64)
        values = [np.empty(n, dtype=np.float64) for _ in range(nvalues)]
        pointers = ffi.new("double *[]", [ffi.from_buffer("double[]", v) for v in values]
                           ) if values else ffi.NULL
        got = lib.sqlc_read(handle, sql.encode(), symbol_id, c_texts, len(keep), n,
                            int(descending), ffi.from_buffer("long long[]", times), pointers,
                            nvalues, err, _ERRLEN)
        if got < 0:
            raise ReadError(ffi.string(err).decode(errors="replace"))
        if got != n:  # cannot happen in one snapshot; never hand out unwritten memory
            raise ReadError(f"read {got} rows, counted {n}")
        return times, values
    finally:
        lib.sqlc_close(handle)
