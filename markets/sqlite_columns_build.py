"""Builds ``markets/_sqlite_columns*.so``: SQLite query results straight into numpy buffers.

``python -m markets.sqlite_columns_build [OUTPUT_DIR]`` (default: this package's folder) compiles
a small C module with cffi (out-of-line API mode) that links the system ``libsqlite3`` -- the
same library Python's own ``_sqlite3`` links, which :mod:`markets.sqlite_columns` checks at
import; the module is used only when both are the same copy in the process. Needs a C compiler
and ``sqlite3.h``; without them the build fails and the SQLite candle backend
(:mod:`markets.candles.backends.sqlite`, the only importer of the reader) reads through the
sqlite3 module as before.

The C side: open a read-only connection (no connection mutex: one thread uses it), begin a read
transaction (one snapshot for everything that follows), size the arrays (the first and last
open time, or a count), then step a prepared statement writing the open time (an integer, or
Django's 'YYYY-MM-DD HH:MM:SS' text parsed here rather than by unixepoch() per row) and float64
further columns into caller-allocated arrays, and close. Every error carries SQLite's message.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from cffi import FFI

MODULE = "markets._sqlite_columns"

CDEF = """
typedef struct sqlc_db sqlc_db;
sqlc_db *sqlc_open(const char *path, int uri, int timeout_ms, char *err, int errlen);
int sqlc_close(sqlc_db *h);
long long sqlc_count(sqlc_db *h, const char *sql, long long symbol_id,
                     const char **texts, int ntexts, char *err, int errlen);
long long sqlc_read(sqlc_db *h, const char *sql, long long symbol_id,
                    const char **texts, int ntexts, long long capacity, int descending,
                    long long *times, double **values, int nvalues, char *err, int errlen);
int sqlc_time_of(sqlc_db *h, const char *sql, long long symbol_id, const char **texts,
                 int ntexts, long long *out, char *err, int errlen);
long long sqlc_collect(sqlc_db *h, const char *sql, long long symbol_id,
                       const char **texts, int ntexts, long long capacity, long long *times,
                       double **values, int nvalues, char *err, int errlen);
const char *sqlite3_libversion(void);
void *sqlc_libversion_address(void);
"""

#: The C source, kept as C (editors, compilers' warnings and diffs read it as what it is).
SOURCE = (Path(__file__).with_name("sqlite_columns.c")).read_text()


def ffibuilder() -> FFI:
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(MODULE, SOURCE, libraries=["sqlite3"], extra_compile_args=["-O2"])
    return ffi


def build(output_dir: str | Path | None = None) -> Path:
    """Compile the module into ``output_dir`` (default: this package's folder, so it lands at
    ``markets/_sqlite_columns*.so``); returns the path of the built file."""
    target = Path(output_dir) if output_dir is not None else Path(__file__).resolve().parent
    target.mkdir(parents=True, exist_ok=True)
    # Compiled in a scratch folder (setuptools must not see the project's packages there).
    with tempfile.TemporaryDirectory(prefix="sqlite-columns-") as tmp:
        built = Path(ffibuilder().compile(tmpdir=tmp, verbose=False))
        final = target / built.name
        shutil.copyfile(built, final.with_suffix(".tmp"))
        final.with_suffix(".tmp").replace(final)  # atomic: a running process keeps its copy
    return final


def main(argv: list[str]) -> int:
    path = build(argv[0] if argv else None)
    print(f"built {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
