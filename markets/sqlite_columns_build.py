"""Builds ``markets/_sqlite_columns*.so``: SQLite query results straight into numpy buffers.

``python -m markets.sqlite_columns_build [OUTPUT_DIR]`` (default: this package's folder) compiles
a small C module with cffi (out-of-line API mode) that links the system ``libsqlite3`` -- the
same library Python's own ``_sqlite3`` links, which :mod:`markets.sqlite_columns` checks at
import; the module is used only when both are the same copy in the process. Needs a C compiler
and ``sqlite3.h``; without them the build fails and :mod:`markets.candles` reads through the
sqlite3 module as before.

The C side: open a read-only connection, begin a read transaction (one snapshot for the count
and the rows), count, then step a prepared statement writing an int64 first column and float64
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
const char *sqlite3_libversion(void);
void *sqlc_libversion_address(void);
"""

SOURCE = r"""
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

struct sqlc_db { sqlite3 *db; int in_txn; };

/* The address this module's sqlite3_libversion resolves to (through the GOT: the library's
   own function, not a wrapper), to compare with the one Python's _sqlite3 resolves. */
void *sqlc_libversion_address(void) { return (void *)&sqlite3_libversion; }
typedef struct sqlc_db sqlc_db;

static void sqlc_err(char *err, int errlen, const char *what, sqlite3 *db, int rc) {
    snprintf(err, (size_t)errlen, "%s: %s (SQLite code %d)", what,
             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
}

int sqlc_close(sqlc_db *h) {
    int rc = SQLITE_OK;
    if (!h) return rc;
    if (h->in_txn) sqlite3_exec(h->db, "COMMIT", 0, 0, 0);  /* read-only: ends the snapshot */
    rc = sqlite3_close(h->db);  /* statements are finalized by their callers */
    free(h);
    return rc;
}

sqlc_db *sqlc_open(const char *path, int uri, int timeout_ms, char *err, int errlen) {
    sqlc_db *h = calloc(1, sizeof *h);
    int flags = SQLITE_OPEN_READONLY | (uri ? SQLITE_OPEN_URI : 0);
    int rc;
    if (!h) { snprintf(err, (size_t)errlen, "out of memory"); return 0; }
    rc = sqlite3_open_v2(path, &h->db, flags, 0);
    if (rc != SQLITE_OK) {
        sqlc_err(err, errlen, "open", h->db, rc);
        sqlite3_close(h->db);
        free(h);
        return 0;
    }
    sqlite3_busy_timeout(h->db, timeout_ms);
    /* The count and the rows come from one snapshot of the database. */
    rc = sqlite3_exec(h->db, "BEGIN", 0, 0, 0);
    if (rc != SQLITE_OK) {
        sqlc_err(err, errlen, "begin", h->db, rc);
        sqlc_close(h);
        return 0;
    }
    h->in_txn = 1;
    return h;
}

static sqlite3_stmt *sqlc_prepare(sqlc_db *h, const char *sql, long long symbol_id,
                                  const char **texts, int ntexts, char *err, int errlen) {
    sqlite3_stmt *stmt = 0;
    int rc = sqlite3_prepare_v2(h->db, sql, -1, &stmt, 0);
    int i;
    if (rc != SQLITE_OK) { sqlc_err(err, errlen, "prepare", h->db, rc); return 0; }
    rc = sqlite3_bind_int64(stmt, 1, symbol_id);
    for (i = 0; rc == SQLITE_OK && i < ntexts; i++)
        rc = sqlite3_bind_text(stmt, 2 + i, texts[i], -1, SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) {
        sqlc_err(err, errlen, "bind", h->db, rc);
        sqlite3_finalize(stmt);
        return 0;
    }
    return stmt;
}

long long sqlc_count(sqlc_db *h, const char *sql, long long symbol_id,
                     const char **texts, int ntexts, char *err, int errlen) {
    sqlite3_stmt *stmt = sqlc_prepare(h, sql, symbol_id, texts, ntexts, err, errlen);
    long long n = -1;
    int rc;
    if (!stmt) return -1;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) == SQLITE_INTEGER)
        n = sqlite3_column_int64(stmt, 0);
    else if (rc == SQLITE_ROW)
        snprintf(err, (size_t)errlen, "count: not an integer");
    else
        sqlc_err(err, errlen, "count", h->db, rc);
    sqlite3_finalize(stmt);
    return n;
}

/* Rows into times[] and values[j][] (capacity each), from the end backwards when descending
   (so the arrays come out oldest first). Returns the number of rows, or -1 (message in err)
   on an error, a NULL or non-numeric value (which the caller's other reader reports), or more
   rows than capacity. */
long long sqlc_read(sqlc_db *h, const char *sql, long long symbol_id,
                    const char **texts, int ntexts, long long capacity, int descending,
                    long long *times, double **values, int nvalues, char *err, int errlen) {
    sqlite3_stmt *stmt = sqlc_prepare(h, sql, symbol_id, texts, ntexts, err, errlen);
    long long n = 0, at;
    int rc, j, t;
    if (!stmt) return -1;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n >= capacity) {
            snprintf(err, (size_t)errlen, "more rows than counted (%lld)", capacity);
            sqlite3_finalize(stmt);
            return -1;
        }
        at = descending ? capacity - 1 - n : n;
        if (sqlite3_column_type(stmt, 0) != SQLITE_INTEGER) {
            snprintf(err, (size_t)errlen, "row %lld: open time is not an integer", n);
            sqlite3_finalize(stmt);
            return -1;
        }
        times[at] = sqlite3_column_int64(stmt, 0);
        for (j = 0; j < nvalues; j++) {
            t = sqlite3_column_type(stmt, 1 + j);
            if (t == SQLITE_FLOAT) {
                values[j][at] = sqlite3_column_double(stmt, 1 + j);
            } else if (t == SQLITE_INTEGER) {  /* as Python's float(int): nearest double */
                values[j][at] = (double)sqlite3_column_int64(stmt, 1 + j);
            } else {
                snprintf(err, (size_t)errlen, "row %lld: column %d is not a number", n, 1 + j);
                sqlite3_finalize(stmt);
                return -1;
            }
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        sqlc_err(err, errlen, "step", h->db, rc);
        sqlite3_finalize(stmt);
        return -1;
    }
    sqlite3_finalize(stmt);
    return n;
}
"""


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
