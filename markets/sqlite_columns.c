#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

/* Where the tradesite_collect() aggregate writes its rows (see sqlc_collect). */
struct sqlc_sink {
    long long capacity, n, last;
    long long *times;
    double **values;
    int nvalues;
    int outcome;  /* 0, or SQLC_FULL / SQLC_UNORDERED / SQLC_BAD: why the statement stopped */
    char msg[160];
};

struct sqlc_db { sqlite3 *db; int in_txn; struct sqlc_sink sink; };

#define SQLC_BAD (-1)
#define SQLC_FULL (-2)
#define SQLC_UNORDERED (-3)

/* The address this module's sqlite3_libversion resolves to (through the GOT: the library's
   own function, not a wrapper), to compare with the one Python's _sqlite3 resolves. */
void *sqlc_libversion_address(void) { return (void *)&sqlite3_libversion; }
typedef struct sqlc_db sqlc_db;

static void sqlc_err(char *err, int errlen, const char *what, sqlite3 *db, int rc) {
    snprintf(err, (size_t)errlen, "%s: %s (SQLite code %d)", what,
             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
}

static int sqlc_parse_time(const void *text, int len, long long *ms);

/* An open time from a value: an integer as it is, Django's datetime text parsed. */
static int sqlc_value_time(sqlite3_value *v, long long *ms) {
    int t = sqlite3_value_type(v);
    if (t == SQLITE_INTEGER) {
        *ms = sqlite3_value_int64(v);
        return 1;
    }
    /* _blob, not _text: the bytes as stored; _text would copy each one to add a NUL. */
    return t == SQLITE_TEXT && sqlc_parse_time(sqlite3_value_blob(v), sqlite3_value_bytes(v),
                                               ms);
}

static void sqlc_stop(sqlite3_context *ctx, struct sqlc_sink *s, int outcome) {
    s->outcome = outcome;
    sqlite3_result_error(ctx, s->msg, -1);
}

/* tradesite_collect(open_time, v1, ..., vN): one row into the sink's arrays, in the order the
   statement visits the rows, which must be by increasing open time (checked: the caller
   reads with ORDER BY instead when it is not). One call per row from inside the statement:
   no result row, no step return and no column calls per value. */
static void sqlc_collect_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    struct sqlc_sink *s = sqlite3_user_data(ctx);
    long long t;
    int j, type;
    if (argc != 1 + s->nvalues) {
        snprintf(s->msg, sizeof s->msg, "tradesite_collect: %d arguments, expected %d",
                 argc, 1 + s->nvalues);
        sqlc_stop(ctx, s, SQLC_BAD);
        return;
    }
    if (s->n >= s->capacity) {
        snprintf(s->msg, sizeof s->msg, "more rows than the capacity (%lld)", s->capacity);
        sqlc_stop(ctx, s, SQLC_FULL);
        return;
    }
    if (!sqlc_value_time(argv[0], &t)) {
        snprintf(s->msg, sizeof s->msg, "row %lld: open time is not an integer or a "
                 "'YYYY-MM-DD HH:MM:SS' text", s->n);
        sqlc_stop(ctx, s, SQLC_BAD);
        return;
    }
    if (s->n > 0 && t <= s->last) {
        snprintf(s->msg, sizeof s->msg, "row %lld: rows not visited by open time", s->n);
        sqlc_stop(ctx, s, SQLC_UNORDERED);
        return;
    }
    s->times[s->n] = s->last = t;
    for (j = 0; j < s->nvalues; j++) {
        sqlite3_value *v = argv[1 + j];
        type = sqlite3_value_type(v);
        if (type == SQLITE_FLOAT) {
            s->values[j][s->n] = sqlite3_value_double(v);
        } else if (type == SQLITE_INTEGER) {  /* as Python's float(int): nearest double */
            s->values[j][s->n] = (double)sqlite3_value_int64(v);
        } else {
            snprintf(s->msg, sizeof s->msg, "row %lld: column %d is not a number", s->n, 1 + j);
            sqlc_stop(ctx, s, SQLC_BAD);
            return;
        }
    }
    s->n++;
}

static void sqlc_collect_final(sqlite3_context *ctx) {
    struct sqlc_sink *s = sqlite3_user_data(ctx);
    sqlite3_result_int64(ctx, s->n);
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
    /* NOMUTEX: the connection is used by one thread, so every step and column call skips
       the connection mutex (a dozen lock round trips per row otherwise). */
    int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | (uri ? SQLITE_OPEN_URI : 0);
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
    rc = sqlite3_create_function_v2(h->db, "tradesite_collect", -1,
                                    SQLITE_UTF8 | SQLITE_DIRECTONLY, &h->sink, 0,
                                    sqlc_collect_step, sqlc_collect_final, 0);
    if (rc != SQLITE_OK) {
        sqlc_err(err, errlen, "create function", h->db, rc);
        sqlite3_close(h->db);
        free(h);
        return 0;
    }
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

/* Django's SQLite text for a UTC datetime, 'YYYY-MM-DD HH:MM:SS' with an optional fraction
   ('.ffffff'), as ms since the epoch in whole seconds: what unixepoch(t) * 1000 gives.
   Returns 0 for any other text (the caller's other reader then reports it). Days from the
   civil date by the proleptic Gregorian era arithmetic (400-year cycles). */
static int sqlc_two(const unsigned char *s, int *out) {
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9') return 0;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

static int sqlc_parse_time(const void *text, int len, long long *ms) {
    const unsigned char *s = text;
    int yh, yl, mo, d, h, mi, sec, i;
    long long y, era, yoe, doy, doe, days, ms_of_minute;
    double fraction = 0.0, scale = 1.0, seconds;
    if (len < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T')
        || s[13] != ':' || s[16] != ':')
        return 0;
    if (!sqlc_two(s, &yh) || !sqlc_two(s + 2, &yl) || !sqlc_two(s + 5, &mo)
        || !sqlc_two(s + 8, &d) || !sqlc_two(s + 11, &h) || !sqlc_two(s + 14, &mi)
        || !sqlc_two(s + 17, &sec))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) return 0;
    if (len > 19) {  /* only a fraction may follow */
        if (s[19] != '.' || len == 20) return 0;
        for (i = 20; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') return 0;
            fraction = fraction * 10.0 + (s[i] - '0');
            scale *= 10.0;
        }
    }
    /* The seconds as SQLite's date code takes them (the same double operations in the same
       order): rounded to the millisecond, and unixepoch() then drops the milliseconds. So
       ':59.9996' is the next second, as there. */
    seconds = sec + fraction / scale;
    ms_of_minute = (long long)(seconds * 1000.0 + 0.5);
    y = yh * 100 + yl - (mo <= 2);
    era = y / 400;  /* y >= -1: year 0000 is the earliest this accepts */
    if (y < 0) era = -1;
    yoe = y - era * 400;
    doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = era * 146097 + doe - 719468;
    *ms = ((days * 24 + h) * 60 + mi) * 60000LL + ms_of_minute / 1000 * 1000;
    return 1;
}

/* An open time in column i: an integer as it is, Django's datetime text parsed. */
static int sqlc_time(sqlite3_stmt *stmt, int i, long long *ms) {
    int t = sqlite3_column_type(stmt, i);
    if (t == SQLITE_INTEGER) {
        *ms = sqlite3_column_int64(stmt, i);
        return 1;
    }
    return t == SQLITE_TEXT && sqlc_parse_time(sqlite3_column_blob(stmt, i),
                                               sqlite3_column_bytes(stmt, i), ms);
}

/* The open time in the first row's first column (say, a min() or a max()): 1, or 0 when it
   is NULL (no rows); -1 (message in err) on an error. */
int sqlc_time_of(sqlc_db *h, const char *sql, long long symbol_id, const char **texts,
                 int ntexts, long long *out, char *err, int errlen) {
    sqlite3_stmt *stmt = sqlc_prepare(h, sql, symbol_id, texts, ntexts, err, errlen);
    int rc, found = -1;
    if (!stmt) return -1;
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW)
        sqlc_err(err, errlen, "time", h->db, rc);
    else if (sqlite3_column_type(stmt, 0) == SQLITE_NULL)
        found = 0;
    else if (sqlc_time(stmt, 0, out))
        found = 1;
    else
        snprintf(err, (size_t)errlen, "time: not an integer or a 'YYYY-MM-DD HH:MM:SS' text");
    sqlite3_finalize(stmt);
    return found;
}

/* Rows into times[] and values[j][] (capacity each), from the end backwards when descending
   (so the arrays come out oldest first). Returns the number of rows; SQLC_FULL (-2) when
   there are more rows than capacity (the caller counts and reads again); -1 (message in err)
   on an error or a NULL or non-numeric value (which the caller's other reader reports). */
long long sqlc_read(sqlc_db *h, const char *sql, long long symbol_id,
                    const char **texts, int ntexts, long long capacity, int descending,
                    long long *times, double **values, int nvalues, char *err, int errlen) {
    sqlite3_stmt *stmt = sqlc_prepare(h, sql, symbol_id, texts, ntexts, err, errlen);
    long long n = 0, at;
    int rc, j, t;
    if (!stmt) return -1;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n >= capacity) {
            snprintf(err, (size_t)errlen, "more rows than the capacity (%lld)", capacity);
            sqlite3_finalize(stmt);
            return SQLC_FULL;
        }
        at = descending ? capacity - 1 - n : n;
        if (!sqlc_time(stmt, 0, &times[at])) {
            snprintf(err, (size_t)errlen, "row %lld: open time is not an integer or a "
                     "'YYYY-MM-DD HH:MM:SS' text", n);
            sqlite3_finalize(stmt);
            return -1;
        }
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

/* Runs sql, which calls tradesite_collect(open_time, v1, ..., vN) over the rows (an aggregate
   query, no ORDER BY: the index visits them in order, which the collector checks), writing
   times[] and values[j][] (capacity each). Returns the number of rows; SQLC_FULL (-2) when
   there are more than capacity; SQLC_UNORDERED (-3) when the rows did not come by increasing
   open time; -1 (message in err) otherwise. */
long long sqlc_collect(sqlc_db *h, const char *sql, long long symbol_id,
                       const char **texts, int ntexts, long long capacity, long long *times,
                       double **values, int nvalues, char *err, int errlen) {
    struct sqlc_sink *s = &h->sink;
    sqlite3_stmt *stmt;
    long long n = SQLC_BAD;
    int rc;
    s->capacity = capacity;
    s->n = 0;
    s->last = 0;
    s->times = times;
    s->values = values;
    s->nvalues = nvalues;
    s->outcome = 0;
    s->msg[0] = 0;
    stmt = sqlc_prepare(h, sql, symbol_id, texts, ntexts, err, errlen);
    if (!stmt) return SQLC_BAD;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && s->outcome == 0) {
        n = s->n;
    } else if (s->outcome != 0) {
        snprintf(err, (size_t)errlen, "%s", s->msg);
        n = s->outcome;
    } else {
        sqlc_err(err, errlen, "collect", h->db, rc);
    }
    sqlite3_finalize(stmt);
    s->times = 0;
    s->values = 0;
    return n;
}
