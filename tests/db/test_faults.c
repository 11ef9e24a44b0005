/*
 * test_faults.c: I/O faults at every step of every operation that writes,
 * through the public API (SQLite's test_vfs method, with util/fileio.h as
 * the seam). For N = 1, 2, ... the N-th counted I/O call of the operation
 * fails with EIO or ENOSPC, once or from then on (persistent), until the
 * operation runs to its end without reaching the fault. Operations: an
 * upsert batch and a delete batch, a flush (tdb_flush_all), a compaction
 * (three flushes with compaction_min_segments 3, run in the background and
 * waited for by tdb_close), a snapshot create, a snapshot restore in place
 * and one into a new name.
 *
 * After every attempt:
 *   - the call returned an error, or success for something durable: an
 *     acknowledged write is in the oracle for good and must be found;
 *   - with the fault cleared and the same handle: reads answer; the
 *     collection either takes writes and a flush (a failure that touched
 *     no fsync, a full disk above all, is retried, never sticky), or
 *     refuses writes with TDB_EREADONLY, and then (only then)
 *     tdb_problems_json lists it as read_only and
 *     tierdb_read_only_collections counts it;
 *   - tdb_close + tdb_open recovers every acknowledged write: every
 *     document is listed (paged, with vectors) with exactly the content of
 *     its last acknowledged version, an exact query, a graph query and a
 *     full-text query each see exactly the live documents, and the one
 *     operation whose call failed is found whole or not at all;
 *   - the reopened database takes writes, deletes and a flush again.
 *
 * The oracle: every write gives its documents a fresh version number, and
 * a document's vector and attributes are a function of (id, version), so a
 * listing tells exactly which version of each id survived. A failed write
 * may still surface after the reopen (an injected fsync failure leaves the
 * bytes in the page cache, as a real one may), so the oracle keeps two
 * states while one operation is uncertain: without it and with it whole.
 *
 * An fsync failure must make the collection read-only (PostgreSQL's 2018
 * lesson: never retry an fsync and pretend): fsync_failure_is_never_
 * acknowledged fails each counted call of a minimal write in turn and
 * checks that none is acknowledged and that at least one leaves the
 * collection refusing writes, reported, and readable.
 *
 * The library logs every injected fault at error level (by design), so a
 * run prints many error lines; TDB_TEST_VERBOSE=1 shows every level,
 * TDB_TEST_FILTER='faults_flush' runs one test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tierdb.h"
#include "util/buf.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/log.h"
#include "fast_tmpdir.h"

#define NIDS 96        /* ids d00..d95; writes pick among them */
#define DIM 4
#define COLL "f"
#define MAX_N 2000     /* a loop that never completes is a failure, not a hang */
#define MAX_SNAPS 4096

#define ABSENT (-1)

typedef struct state {
    int v[NIDS]; /* version of each id, or ABSENT */
} state;

typedef struct oracle {
    state cur;      /* every acknowledged write applied */
    state alt;      /* cur with the one uncertain operation applied whole */
    bool uncertain; /* an operation failed: alt may be what the disk holds */
    int next_ver;   /* versions only grow, so every write is told apart */
    uint64_t rng;   /* fixed seed: the same batches on every run */
} oracle;

/* What one fault-loop run saw, for the summary line and the checks. */
typedef struct loop_stats {
    unsigned attempts;
    unsigned failed_calls;  /* the operation returned an error */
    unsigned read_only;     /* ... and left the collection read-only */
    unsigned read_only_enospc; /* ... of them with ENOSPC injected */
    unsigned resumed;       /* failed, not read-only: writes and a flush then worked */
    unsigned resumed_enospc; /* ... of them with ENOSPC injected */
    unsigned uncertain_applied; /* a failed operation surfaced whole after the reopen */
    uint64_t clean_calls;   /* counted calls of the run that completed */
} loop_stats;

/* What the running test holds, released by cleanup() even when it fails
 * half-way (a failed check longjmps out of the test). */
typedef struct fault_ctx fault_ctx;
static fault_ctx *g_ctx;
#define MAX_OPEN 4
static tdb_db *g_open[MAX_OPEN];

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rnd(oracle *o) {
    o->rng = o->rng * 6364136223846793005ull + 1442695040888963407ull;
    return o->rng >> 33;
}

static char *make_dir(void) {
    char *d = fast_tmpdir("TDB_FAULT_TMP", "faulttest");
    assert_non_null(d);
    return d;
}

/* Options of one loop's database. */
typedef struct db_opts {
    uint32_t min_segments;   /* 1000: no compaction unless a loop wants it */
    uint32_t memtable_docs;  /* 0: never fills by itself (flushes when asked) */
    uint64_t wal_file_bytes; /* 0: WAL_FILE_BYTES */
} db_opts;

/* Small WAL files: rotations (new file, fsyncs) happen inside writes and
 * flushes, so faults reach them too. */
#define WAL_FILE_BYTES 8192

static tdb_db *open_db(const char *dir, db_opts dbo) {
    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = dir;
    o.test_clock = true;
    o.worker_interval_ms = 0;
    o.compaction_min_segments = dbo.min_segments;
    if (dbo.memtable_docs) o.memtable_max_docs = dbo.memtable_docs;
    o.wal_file_max_bytes = dbo.wal_file_bytes ? dbo.wal_file_bytes : WAL_FILE_BYTES;
    tdb_db *db = NULL;
    tdb_error err;
    int rc = tdb_open(&o, &db, &err);
    if (rc) fail_msg("tdb_open: %s", err.message);
    for (int k = 0; k < MAX_OPEN; k++)
        if (g_open[k] == NULL) {
            g_open[k] = db;
            break;
        }
    return db;
}

static void close_db(tdb_db *db) {
    for (int k = 0; k < MAX_OPEN; k++)
        if (g_open[k] == db) g_open[k] = NULL;
    tdb_close(db);
}

#define PLAIN ((db_opts){1000, 0, 0})

static void vector_of(int i, int v, float out[DIM]) {
    out[0] = (float)(i + 1);
    out[1] = (float)(v % 89 + 1);
    out[2] = (float)((i * 7 + v) % 13);
    out[3] = 0.5f;
}

static void put_doc(buf *b, int i, int v) {
    float x[DIM];
    vector_of(i, v, x);
    buf_printf(b, "{\"id\":\"d%02d\",\"vector\":[%g,%g,%g,%g],\"attributes\":{\"v\":%d,"
                  "\"t\":\"common w%d v%d\"}}",
               i, (double)x[0], (double)x[1], (double)x[2], (double)x[3], v, i, v);
}

static void create_coll(tdb_db *db, const char *name) {
    char body[256], *out = NULL;
    tdb_error err;
    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"dimension\":%d,\"metric\":\"l2\","
             "\"attributes\":{\"t\":{\"type\":\"string\",\"full_text\":true},"
             "\"v\":{\"type\":\"int\"}}}",
             name, DIM);
    if (tdb_collection_create_json(db, body, strlen(body), &out, &err))
        fail_msg("create %s: %s", name, err.message);
    tdb_free(out);
}

static bool state_eq(const state *a, const state *b) { return memcmp(a, b, sizeof *a) == 0; }

static int live_count(const state *s) {
    int n = 0;
    for (int i = 0; i < NIDS; i++) n += s->v[i] != ABSENT;
    return n;
}

static void state_print(const char *what, const state *s) {
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < NIDS; i++)
        if (s->v[i] != ABSENT) fprintf(stderr, " %d=%d", i, s->v[i]);
    fprintf(stderr, "\n");
}

/* ---- writes ------------------------------------------------------------ */

/* A batch: k distinct ids with fresh versions (upsert) or to delete. */
typedef struct batch {
    int n;
    int ids[NIDS];
    int ver[NIDS]; /* ABSENT for a delete */
} batch;

static void batch_pick(oracle *o, batch *b, int k, bool del) {
    bool used[NIDS] = {0};
    b->n = 0;
    while (b->n < k) {
        int i = (int)(rnd(o) % NIDS);
        if (used[i]) continue;
        used[i] = true;
        b->ids[b->n] = i;
        b->ver[b->n] = del ? ABSENT : o->next_ver++;
        b->n++;
    }
}

/* Runs the batch; on success the oracle takes it, on failure it becomes
 * the uncertain operation (found whole or not at all after a reopen). */
static int batch_run(tdb_db *db, const char *coll, oracle *o, const batch *b, bool record,
                     tdb_error *err) {
    buf body = BUF_INIT;
    bool del = b->n > 0 && b->ver[0] == ABSENT;
    buf_puts(&body, del ? "{\"ids\":[" : "{\"documents\":[");
    for (int k = 0; k < b->n; k++) {
        if (k) buf_putc(&body, ',');
        if (del) buf_printf(&body, "\"d%02d\"", b->ids[k]);
        else put_doc(&body, b->ids[k], b->ver[k]);
    }
    buf_puts(&body, "]}");
    assert_false(buf_failed(&body));
    size_t count = 0;
    int rc = del ? tdb_delete_json(db, coll, body.data, body.len, &count, err)
                 : tdb_upsert_json(db, coll, body.data, body.len, &count, err);
    buf_free(&body);
    if (!record) return rc;
    if (rc == 0) {
        if (!del) assert_int_equal(count, (size_t)b->n);
        for (int k = 0; k < b->n; k++) o->cur.v[b->ids[k]] = b->ver[k];
    } else {
        assert_false(o->uncertain); /* one uncertain operation at a time */
        o->alt = o->cur;
        for (int k = 0; k < b->n; k++) o->alt.v[b->ids[k]] = b->ver[k];
        o->uncertain = true;
    }
    return rc;
}

/* A clean write that must succeed (setup and "keeps working" checks). */
static void write_ok(tdb_db *db, oracle *o, int k, bool del, const char *what) {
    batch b;
    batch_pick(o, &b, k, del);
    tdb_error err;
    int rc = batch_run(db, COLL, o, &b, true, &err);
    if (rc) fail_msg("%s: %s (%d)", what, err.message, rc);
}

static void flush_ok(tdb_db *db, const char *what) {
    tdb_error err;
    int rc = tdb_flush_all(db, &err);
    if (rc) fail_msg("%s: flush: %s (%d)", what, err.message, rc);
}

/* ---- reads ------------------------------------------------------------- */

static int id_index(const json_value *id) {
    if (id == NULL || id->type != JSON_STRING || id->len != 3 || id->str[0] != 'd') return -1;
    int i = (id->str[1] - '0') * 10 + (id->str[2] - '0');
    return i >= 0 && i < NIDS ? i : -1;
}

/* Reads every document of coll (pages of 37, with vectors) into *out,
 * checking that each holds exactly the content of its version. */
static void read_state(tdb_db *db, const char *coll, state *out, const char *what) {
    for (int i = 0; i < NIDS; i++) out->v[i] = ABSENT;
    char *cursor = NULL;
    int pages = 0, prev = -1;
    for (;;) {
        char *page = NULL;
        tdb_error err;
        int rc = tdb_list_json(db, coll, 37, cursor, true, &page, &err);
        if (rc) fail_msg("%s: list %s: %s (%d)", what, coll, err.message, rc);
        free(cursor);
        cursor = NULL;
        json_doc *doc = NULL;
        json_error jerr;
        if (json_parse(page, strlen(page), &doc, &jerr))
            fail_msg("%s: list answer is not JSON", what);
        const json_value *docs = json_get(json_root(doc), "documents");
        assert_non_null(docs);
        for (const json_value *d = docs->child; d; d = d->next) {
            int i = id_index(json_get(d, "id"));
            if (i < 0) fail_msg("%s: unknown id in %s", what, page);
            if (i <= prev) fail_msg("%s: ids out of order or repeated at d%02d", what, i);
            prev = i;
            const json_value *attrs = json_get(d, "attributes");
            const json_value *v = attrs ? json_get(attrs, "v") : NULL;
            const json_value *t = attrs ? json_get(attrs, "t") : NULL;
            if (!v || !v->is_int || !t || t->type != JSON_STRING)
                fail_msg("%s: d%02d has damaged attributes", what, i);
            int ver = (int)v->i64;
            char want_t[64];
            snprintf(want_t, sizeof want_t, "common w%d v%d", i, ver);
            if (strcmp(t->str, want_t) != 0)
                fail_msg("%s: d%02d: text of another version", what, i);
            float want[DIM], got[DIM];
            vector_of(i, ver, want);
            if (json_to_floats(json_get(d, "vector"), got, DIM) || memcmp(want, got, sizeof want))
                fail_msg("%s: d%02d version %d: wrong vector", what, i, ver);
            out->v[i] = ver;
        }
        const json_value *nc = json_get(json_root(doc), "next_cursor");
        if (nc && nc->type == JSON_STRING) cursor = strdup(nc->str);
        json_doc_free(doc);
        tdb_free(page);
        if (!cursor) break;
        if (++pages > NIDS) fail_msg("%s: the listing does not end", what);
    }
}

/* Runs a query; returns how many results, each a live id of s. */
static int query_count(tdb_db *db, const char *coll, const char *body, const state *s,
                       const char *what) {
    char *out = NULL;
    tdb_error err;
    int rc = tdb_query_json(db, coll, body, strlen(body), &out, &err);
    if (rc) fail_msg("%s: query %s: %s (%d)", what, body, err.message, rc);
    json_doc *doc = NULL;
    json_error jerr;
    if (json_parse(out, strlen(out), &doc, &jerr)) fail_msg("%s: query answer is not JSON", what);
    const json_value *res = json_get(json_root(doc), "results");
    assert_non_null(res);
    int n = 0;
    bool seen[NIDS] = {0};
    for (const json_value *r = res->child; r; r = r->next, n++) {
        int i = id_index(json_get(r, "id"));
        if (i < 0 || s->v[i] == ABSENT || seen[i])
            fail_msg("%s: query %s answered a dead or repeated id: %s", what, body, out);
        seen[i] = true;
    }
    json_doc_free(doc);
    tdb_free(out);
    return n;
}

/* Every index answers over exactly the live documents of s. */
static void check_queries(tdb_db *db, const char *coll, const state *s, const char *what) {
    int live = live_count(s);
    char body[160];
    snprintf(body, sizeof body, "{\"vector\":[1,2,3,0.5],\"top_k\":%d,\"exact\":true}", NIDS);
    int n = query_count(db, coll, body, s, what);
    if (n != live) fail_msg("%s: exact query found %d of %d live documents", what, n, live);
    snprintf(body, sizeof body, "{\"vector\":[40,2,3,0.5],\"top_k\":10}");
    n = query_count(db, coll, body, s, what);
    if (n != (live < 10 ? live : 10)) fail_msg("%s: graph query found %d (live %d)", what, n, live);
    snprintf(body, sizeof body, "{\"text\":\"common\",\"top_k\":%d}", NIDS);
    n = query_count(db, coll, body, s, what);
    if (n != live) fail_msg("%s: text query found %d of %d live documents", what, n, live);
}

static void violation(const char *kind, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The database holds o->cur, or (when an operation is uncertain) o->alt:
 * never a mix. resolve: the oracle takes what was found (after a reopen).
 * Anything else is lost or half-applied data: recorded, and the oracle
 * takes what was found so the loop can go on and show every kind. */
static bool check_state(tdb_db *db, oracle *o, bool resolve, const char *what) {
    state got;
    read_state(db, COLL, &got, what);
    bool applied = false;
    if (!state_eq(&got, &o->cur)) {
        if (!o->uncertain || !state_eq(&got, &o->alt)) {
            int lost = 0, extra = 0;
            for (int i = 0; i < NIDS; i++) {
                lost += o->cur.v[i] != ABSENT && got.v[i] != o->cur.v[i] &&
                        (!o->uncertain || got.v[i] != o->alt.v[i]);
                extra += got.v[i] != o->cur.v[i] && (!o->uncertain || got.v[i] != o->alt.v[i]);
            }
            violation("lost or half-applied data", what,
                      "%d acknowledged documents missing or changed, %d ids differ from both "
                      "allowed states (%d live found, %d acknowledged)",
                      lost, extra, live_count(&got), live_count(&o->cur));
            if (getenv("TDB_TEST_VERBOSE")) {
                state_print("acknowledged", &o->cur);
                if (o->uncertain) state_print("with the failed operation", &o->alt);
                state_print("found", &got);
            }
            o->cur = got;
            o->uncertain = false;
        } else {
            applied = true;
        }
    }
    check_queries(db, COLL, &got, what);
    if (resolve) {
        o->cur = got;
        o->uncertain = false;
    }
    return applied;
}

/* ---- violations ---------------------------------------------------------- */

/* A broken promise that leaves the oracle sound (a misleading error code,
 * litter on disk) is recorded and the loop goes on, so one run shows every
 * kind; the test fails at the end of the loop. Lost or half-applied data
 * fails at once. */
#define MAX_KINDS 16
static struct {
    const char *kind;
    unsigned count;
} g_viol[MAX_KINDS];

static void violation(const char *kind, const char *what, const char *fmt, ...) {
    int k = 0;
    while (k < MAX_KINDS && g_viol[k].kind && strcmp(g_viol[k].kind, kind) != 0) k++;
    assert_true(k < MAX_KINDS);
    g_viol[k].kind = kind;
    if (g_viol[k].count++ == 0) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        printf("[ VIOLATED ] %s: first at %s: %s\n", kind, what, msg);
    }
}

/* Fails the test if anything was recorded, listing kinds and counts. */
static void violations_check(const char *name) {
    unsigned total = 0;
    for (int k = 0; k < MAX_KINDS && g_viol[k].kind; k++) {
        printf("[ VIOLATED ] %s: %s: %u times\n", name, g_viol[k].kind, g_viol[k].count);
        total += g_viol[k].count;
    }
    memset(g_viol, 0, sizeof g_viol);
    if (total) fail_msg("%s: %u broken promises (listed above)", name, total);
}

/* ---- the read-only state ----------------------------------------------- */

static bool problems_list_read_only(tdb_db *db, const char *coll) {
    char *p = NULL;
    tdb_error err;
    assert_int_equal(tdb_problems_json(db, &p, &err), 0);
    char needle[160];
    snprintf(needle, sizeof needle, "{\"collection\":\"%s\",\"kind\":\"read_only\"", coll);
    bool found = strstr(p, needle) != NULL;
    tdb_free(p);
    return found;
}

static long metric_value(tdb_db *db, const char *series) {
    char *text = NULL;
    tdb_error err;
    assert_int_equal(tdb_metrics_text(db, &text, &err), 0);
    long v = -1;
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ') v = strtol(p + n + 1, NULL, 10);
    tdb_free(text);
    return v;
}

/* With the fault cleared and the same handle: reads answer; a write is
 * taken, or refused with TDB_EREADONLY, and refused exactly when the
 * collection is reported read-only. A writable collection also flushes
 * (a flush that failed without an fsync failure is retried, not sticky),
 * and a write refused because the memtable is full while flushes were
 * failing is taken after that flush. Returns whether it is read-only. */
static bool check_live(tdb_db *db, oracle *o, int op_rc, const char *what) {
    check_state(db, o, false, what);
    bool reported = problems_list_read_only(db, COLL);
    batch b;
    batch_pick(o, &b, 3, false);
    tdb_error err;
    int rc = batch_run(db, COLL, o, &b, false, &err);
    if (rc == TDB_EBUSY && !reported) {
        if (strcmp(err.name, "disk_full") != 0 && strcmp(err.name, "flush_failed") != 0)
            fail_msg("%s: a write after the fault was cleared was refused as %s: %s", what,
                     err.name, err.message);
        /* An explicit flush retries now, whatever the backoff. */
        flush_ok(db, what);
        rc = batch_run(db, COLL, o, &b, false, &err);
    }
    if (rc == 0) {
        if (reported) fail_msg("%s: reported read-only but took a write", what);
        if (op_rc == TDB_EREADONLY)
            violation("read_only error from a writable collection", what,
                      "the call failed with TDB_EREADONLY, yet the collection takes writes");
        for (int k = 0; k < b.n; k++) {
            o->cur.v[b.ids[k]] = b.ver[k];
            if (o->uncertain) o->alt.v[b.ids[k]] = b.ver[k];
        }
        /* Flushing works again on the same handle, and everything is
         * still there after it. */
        flush_ok(db, what);
        check_state(db, o, false, what);
        return false;
    }
    if (rc != TDB_EREADONLY)
        fail_msg("%s: a write after the fault was cleared failed with %d: %s", what, rc,
                 err.message);
    if (strcmp(err.name, "read_only") != 0)
        fail_msg("%s: read-only error named %s", what, err.name);
    if (!reported)
        fail_msg("%s: writes are refused (%s) but tdb_problems_json does not list the collection",
                 what, err.message);
    if (metric_value(db, "tierdb_read_only_collections") < 1)
        fail_msg("%s: tierdb_read_only_collections does not count the read-only collection", what);
    /* Sticky: a second write is refused too, reads still answer. */
    batch_pick(o, &b, 1, true);
    if (batch_run(db, COLL, o, &b, false, &err) != TDB_EREADONLY)
        fail_msg("%s: a delete on a read-only collection was not refused", what);
    check_state(db, o, false, what);
    return true;
}

/* After the reopen: everything acknowledged is there, the failed operation
 * whole or not at all, nothing is read-only, and writes work again. */
static bool check_reopened(tdb_db *db, oracle *o, const char *what) {
    bool applied = check_state(db, o, true, what);
    if (problems_list_read_only(db, COLL)) fail_msg("%s: still read-only after a reopen", what);
    write_ok(db, o, 5, false, what);
    write_ok(db, o, 2, true, what);
    flush_ok(db, what);
    check_state(db, o, true, what);
    /* Left in the WAL only: the next open replays it. */
    write_ok(db, o, 4, false, what);
    return applied;
}

/* ---- the fault loop ---------------------------------------------------- */

/* prep: clean setup before the fault is armed (may be NULL). op: the
 * operation under the fault; returns its rc. close_in_op: the operation
 * leaves background work that tdb_close waits for (so the handle is
 * closed with the fault still armed, and no live checks are made). after:
 * extra checks on the reopened database, NULL allowed. */
struct fault_ctx {
    const char *name;
    char *dir;
    db_opts dbo;
    oracle o;
    void (*prep)(fault_ctx *f, tdb_db *db);
    int (*op)(fault_ctx *f, tdb_db *db, tdb_error *err);
    void (*after)(fault_ctx *f, tdb_db *db, int rc, bool applied, const char *what);
    bool close_in_op;
    bool cold_open;         /* no warm-up: the operation opens the storage */
    state snap;             /* contents of the snapshot restores use */
    char snap_id[96];
    int n_snaps;
    char (*snap_ids)[96];   /* snapshots created successfully */
    state *snap_states;
};

/* One attempt; returns true when the operation completed without
 * reaching the fault. */
static bool attempt(fault_ctx *f, uint64_t nth, int err_no, bool persistent, loop_stats *st) {
    char what[160];
    snprintf(what, sizeof what, "%s: %s fault (%s) at call %llu", f->name,
             persistent ? "persistent" : "one", err_no == EIO ? "EIO" : "ENOSPC",
             (unsigned long long)nth);
    tdb_db *db = open_db(f->dir, f->dbo);
    if (!f->cold_open) {
        /* Open the collection's storage (replay, mmaps) before the fault:
         * the operation's counted calls are then its own. */
        char *out = NULL;
        tdb_error gerr;
        int grc = tdb_get_json(db, COLL, "d00", 3, &out, &gerr);
        if (grc != 0 && grc != TDB_ENOTFOUND) fail_msg("%s: warm-up get: %s", what, gerr.message);
        tdb_free(out);
    }
    if (f->prep) f->prep(f, db);
    tdb_error err;
    memset(&err, 0, sizeof err);
    uint64_t before = fio_calls();
    fio_fault_set(nth, err_no, persistent);
    int rc = f->op(f, db, &err);
    if (f->close_in_op) close_db(db);
    uint64_t used = fio_calls() - before;
    fio_fault_clear();
    bool hit = used >= nth;
    st->attempts++;
    if (rc != 0) {
        st->failed_calls++;
        if (err.message[0] == '\0') fail_msg("%s: error %d without a message", what, rc);
        if (!hit) fail_msg("%s: failed (%d: %s) without reaching the fault", what, rc, err.message);
    }
    if (!f->close_in_op) {
        if (check_live(db, &f->o, rc, what)) {
            st->read_only++;
            st->read_only_enospc += err_no == ENOSPC;
        } else if (rc != 0) {
            st->resumed++;
            st->resumed_enospc += err_no == ENOSPC;
        }
        close_db(db);
    }
    /* Compaction may run while checking (and keeps the segment count, and
     * so the cost of the next open, bounded). */
    db_opts check_opts = f->dbo;
    if (check_opts.min_segments > 4) check_opts.min_segments = 4;
    db = open_db(f->dir, check_opts);
    bool applied = check_reopened(db, &f->o, what);
    if (rc != 0 && applied) st->uncertain_applied++;
    if (rc == 0 && applied)
        fail_msg("%s: impossible: an acknowledged operation counted as uncertain", what);
    if (f->after) f->after(f, db, rc, applied, what);
    close_db(db);
    if (!hit) st->clean_calls = used;
    return rc == 0 && !hit;
}

/* The loop: for N = 1, 2, ... a one-shot fault and a persistent fault at
 * call N (EIO and ENOSPC alternate), until both complete untouched. */
static loop_stats fault_loop(fault_ctx *f) {
    loop_stats st = {0};
    uint64_t n;
    bool done = false;
    for (n = 1; n <= MAX_N && !done; n++) {
        int e1 = n % 2 ? EIO : ENOSPC, e2 = n % 2 ? ENOSPC : EIO;
        /* Each attempt starts from what the one before left, so call
         * counts may differ a little between the two. */
        bool once = attempt(f, n, e1, false, &st);
        bool persistent = attempt(f, n, e2, true, &st);
        done = once && persistent;
    }
    if (!done) fail_msg("%s: did not complete within %d calls", f->name, MAX_N);
    printf("[ faults   ] %-24s %4llu calls, %4u attempts, %4u failed, %4u read-only (%u ENOSPC), "
           "%4u resumed on the same handle (%u ENOSPC), %3u failed but found whole after reopen\n",
           f->name, (unsigned long long)st.clean_calls, st.attempts, st.failed_calls, st.read_only,
           st.read_only_enospc, st.resumed, st.resumed_enospc, st.uncertain_applied);
    violations_check(f->name);
    return st;
}

static void ctx_init(fault_ctx *f, const char *name, db_opts dbo) {
    memset(f, 0, sizeof *f);
    memset(g_viol, 0, sizeof g_viol);
    f->name = name;
    f->dir = make_dir();
    g_ctx = f;
    f->dbo = dbo;
    f->o.rng = 0x5eed0001u;
    f->o.next_ver = 1;
    for (int i = 0; i < NIDS; i++) f->o.cur.v[i] = ABSENT;
    /* The starting point: two segments, some deletes, a memtable. */
    tdb_db *db = open_db(f->dir, dbo);
    create_coll(db, COLL);
    write_ok(db, &f->o, 40, false, "setup");
    flush_ok(db, "setup");
    write_ok(db, &f->o, 30, false, "setup");
    write_ok(db, &f->o, 6, true, "setup");
    flush_ok(db, "setup");
    write_ok(db, &f->o, 10, false, "setup");
    check_state(db, &f->o, true, "setup");
    close_db(db);
}

static void ctx_free(fault_ctx *f) {
    fio_rmtree(f->dir);
    free(f->dir);
    free(f->snap_ids);
    free(f->snap_states);
    g_ctx = NULL;
}

static int cleanup(void **state) {
    (void)state;
    fio_fault_clear();
    for (int k = 0; k < MAX_OPEN; k++)
        if (g_open[k]) close_db(g_open[k]);
    if (g_ctx) ctx_free(g_ctx);
    return 0;
}

/* Errors only (every injected fault logs one by design); TDB_TEST_VERBOSE=1
 * shows everything. TDB_TEST_FILTER=name* runs matching tests only. */
static void setup_run(void) {
    const char *v = getenv("TDB_TEST_VERBOSE");
    log_set_level(v && v[0] && v[0] != '0' ? LOG_DEBUG : LOG_ERROR);
    setvbuf(stdout, NULL, _IOLBF, 0); /* in order with cmocka's stderr */
    const char *filter = getenv("TDB_TEST_FILTER");
    if (filter && filter[0]) cmocka_set_test_filter(filter);
}

/* ---- upserts and deletes ------------------------------------------------ */

static int op_upsert(fault_ctx *f, tdb_db *db, tdb_error *err) {
    batch b;
    batch_pick(&f->o, &b, 24, false);
    return batch_run(db, COLL, &f->o, &b, true, err);
}

/* Keeps the population up so that every delete removes live documents. */
static void prep_delete(fault_ctx *f, tdb_db *db) { write_ok(db, &f->o, 10, false, "prep delete"); }

static int op_delete(fault_ctx *f, tdb_db *db, tdb_error *err) {
    batch b;
    b.n = 0;
    for (int tries = 0; b.n < 8 && tries < 10 * NIDS; tries++) {
        int i = (int)(rnd(&f->o) % NIDS);
        bool dup = false;
        for (int k = 0; k < b.n; k++) dup |= b.ids[k] == i;
        if (dup || f->o.cur.v[i] == ABSENT) continue;
        b.ids[b.n] = i;
        b.ver[b.n++] = ABSENT;
    }
    assert_true(b.n > 0);
    return batch_run(db, COLL, &f->o, &b, true, err);
}

static void faults_upsert_batch(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "upsert batch", PLAIN);
    f.op = op_upsert;
    loop_stats st = fault_loop(&f);
    /* The WAL fsync is in every write's path (fsync=always): failing it
     * must have left the collection read-only at least once. */
    assert_true(st.read_only > 0);
    ctx_free(&f);
}

static void faults_delete_batch(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "delete batch", PLAIN);
    f.prep = prep_delete;
    f.op = op_delete;
    loop_stats st = fault_loop(&f);
    assert_true(st.read_only > 0);
    ctx_free(&f);
}

/* ---- opening a collection (recovery) ------------------------------------ */

/* The first access after tdb_open opens the storage: MANIFEST, segment
 * mappings, WAL replay (the previous attempt left writes in the WAL only)
 * and a new WAL file. A failure must leave everything to the next try. */
static int op_open(fault_ctx *f, tdb_db *db, tdb_error *err) {
    (void)f;
    char *out = NULL;
    int rc = tdb_get_json(db, COLL, "d00", 3, &out, err);
    tdb_free(out);
    return rc == TDB_ENOTFOUND ? 0 : rc;
}

static void faults_open_and_recover(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "open and recover", PLAIN);
    f.cold_open = true;
    f.op = op_open;
    fault_loop(&f);
    ctx_free(&f);
}

/* ---- a write that fills the memtable --------------------------------------- */

/* memtable_max_docs 32: the batch fills the memtable, so the write
 * schedules a background flush; tdb_close waits for it. */
static int op_upsert_fill(fault_ctx *f, tdb_db *db, tdb_error *err) {
    batch b;
    batch_pick(&f->o, &b, 40, false);
    return batch_run(db, COLL, &f->o, &b, true, err);
}

static void faults_upsert_background_flush(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "upsert + background flush", ((db_opts){1000, 32, 0}));
    f.op = op_upsert_fill;
    f.close_in_op = true;
    fault_loop(&f);
    ctx_free(&f);
}

/* ---- flush ------------------------------------------------------------- */

static void prep_flush(fault_ctx *f, tdb_db *db) {
    write_ok(db, &f->o, 20, false, "prep flush");
    write_ok(db, &f->o, 3, true, "prep flush");
}

static int op_flush(fault_ctx *f, tdb_db *db, tdb_error *err) {
    (void)f;
    return tdb_flush_all(db, err);
}

/* Segments of the collection, from its collection object. */
static int segments_of(tdb_db *db, const char *coll) {
    char *out = NULL;
    tdb_error err;
    if (tdb_collection_get_json(db, coll, &out, &err)) fail_msg("get %s: %s", coll, err.message);
    const char *p = strstr(out, "\"segments\":");
    assert_non_null(p);
    int n = atoi(p + 11);
    tdb_free(out);
    return n;
}

static void faults_flush(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "flush", PLAIN);
    f.prep = prep_flush;
    f.op = op_flush;
    loop_stats st = fault_loop(&f);
    /* A segment is written with an fsync: failing it stops the flush and
     * makes the collection read-only until the reopen. */
    assert_true(st.read_only > 0);
    /* Any other failure of a flush (ENOSPC writing the segment above all)
     * changes nothing durable: the same handle takes writes and flushes
     * again once the fault is gone, with no reopen. (An ENOSPC that hits
     * an fsync is an fsync failure like any other: read-only.) */
    assert_true(st.resumed_enospc > 0);
    ctx_free(&f);
}

/* ---- compaction -------------------------------------------------------- */

#define COMPACT_MIN 3

static int op_compaction(fault_ctx *f, tdb_db *db, tdb_error *err) {
    for (int k = 0; k < COMPACT_MIN; k++) {
        batch b;
        batch_pick(&f->o, &b, 12, false);
        int rc = batch_run(db, COLL, &f->o, &b, true, err);
        if (rc) return rc;
        if ((rc = tdb_flush_all(db, err)) != 0) return rc;
    }
    return 0;
}

static void faults_compaction(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "compaction", ((db_opts){COMPACT_MIN, 0, 0}));
    f.op = op_compaction;
    f.close_in_op = true;
    fault_loop(&f);
    /* The clean run merged: check it once more without faults. */
    tdb_db *db = open_db(f.dir, f.dbo);
    int before = segments_of(db, COLL);
    tdb_error err;
    assert_int_equal(op_compaction(&f, db, &err), 0);
    /* The merge runs in the background and a close cancels it: wait for it
     * (bounded) before closing. */
    for (int i = 0; i < 3000 && segments_of(db, COLL) >= before + COMPACT_MIN; i++) usleep(10000);
    close_db(db);
    db = open_db(f.dir, f.dbo);
    int after = segments_of(db, COLL);
    if (after >= before + COMPACT_MIN)
        fail_msg("no compaction ran: %d -> %d segments", before, after);
    check_state(db, &f.o, true, "compaction, final");
    close_db(db);
    ctx_free(&f);
}

/* ---- creating a collection ------------------------------------------------ */

static bool coll_exists(tdb_db *db, const char *name) {
    char *out = NULL;
    tdb_error err;
    int rc = tdb_collection_get_json(db, name, &out, &err);
    tdb_free(out);
    if (rc != 0 && rc != TDB_ENOTFOUND) fail_msg("get %s: %s", name, err.message);
    return rc == 0;
}

/* Entries under DATA/collections (directories of collections). */
static int collection_dirs(const fault_ctx *f) {
    char path[1024];
    snprintf(path, sizeof path, "%s/collections", f->dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int op_create(fault_ctx *f, tdb_db *db, tdb_error *err) {
    (void)f;
    char *out = NULL;
    const char *body = "{\"name\":\"c\",\"dimension\":2,\"metric\":\"cosine\"}";
    int rc = tdb_collection_create_json(db, body, strlen(body), &out, err);
    tdb_free(out);
    return rc;
}

/* A created collection exists after the reopen and takes a write; a
 * failed create leaves nothing (tierdb.h: a call that fails changed
 * nothing). Then c is dropped for the next attempt. */
static void after_create(fault_ctx *f, tdb_db *db, int rc, bool applied, const char *what) {
    (void)applied;
    bool exists = coll_exists(db, "c");
    if (rc == 0 && !exists) fail_msg("%s: created collection c is missing after the reopen", what);
    if (rc != 0 && exists)
        violation("failed create leaves the collection", what,
                  "tdb_collection_create_json failed, yet collection c exists after the reopen");
    tdb_error err;
    if (exists) {
        const char *doc = "{\"documents\":[{\"id\":\"x\",\"vector\":[1,2]}]}";
        size_t n;
        if (tdb_upsert_json(db, "c", doc, strlen(doc), &n, &err))
            fail_msg("%s: write to c: %s", what, err.message);
        if (tdb_collection_drop(db, "c", false, &err))
            fail_msg("%s: drop c: %s", what, err.message);
    }
    if (collection_dirs(f) != 1)
        violation("orphan collection directory", what,
                  "%d entries under collections/ (expected f's alone)", collection_dirs(f));
}

static void faults_create_collection(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "create collection", PLAIN);
    f.op = op_create;
    f.after = after_create;
    fault_loop(&f);
    ctx_free(&f);
}

/* ---- snapshots ---------------------------------------------------------- */

/* Regular files under dir (recursively), names starting with '.' too. */
static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) n += count_files(p);
        else n++;
    }
    closedir(d);
    return n;
}

static bool parse_snapshot_id(const char *json, char id[96]) {
    const char *p = strstr(json, "\"snapshot_id\":\"");
    if (!p) return false;
    p += 15;
    size_t n = strcspn(p, "\"");
    if (n == 0 || n >= 96) return false;
    memcpy(id, p, n);
    id[n] = '\0';
    return true;
}

static int op_snapshot_create(fault_ctx *f, tdb_db *db, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_snapshot_create_json(db, COLL, &out, err);
    if (rc == 0) {
        char id[96];
        if (!parse_snapshot_id(out, id)) fail_msg("snapshot answer without an id: %s", out);
        char want[64];
        snprintf(want, sizeof want, "\"documents\":%d", live_count(&f->o.cur));
        if (!strstr(out, want))
            fail_msg("snapshot of %d documents answered %s", live_count(&f->o.cur), out);
        assert_true(f->n_snaps < MAX_SNAPS);
        memcpy(f->snap_ids[f->n_snaps], id, 96);
        f->snap_states[f->n_snaps] = f->o.cur;
        f->n_snaps++;
    }
    tdb_free(out);
    return rc;
}

/* Restores snapshot id of COLL into a scratch collection and checks it
 * holds exactly s; drops the scratch collection. */
static void check_snapshot_contents(tdb_db *db, const char *id, const state *s, const char *what) {
    char *out = NULL;
    tdb_error err;
    const char *body = "{\"into\":\"chk\"}";
    int rc = tdb_snapshot_restore_json(db, COLL, id, body, strlen(body), &out, &err);
    if (rc) fail_msg("%s: restoring snapshot %s: %s (%d)", what, id, err.message, rc);
    tdb_free(out);
    state got;
    read_state(db, "chk", &got, what);
    if (!state_eq(&got, s)) {
        state_print("snapshot taken of", s);
        state_print("restored", &got);
        fail_msg("%s: snapshot %s does not hold what it was taken of", what, id);
    }
    check_queries(db, "chk", &got, what);
    if (tdb_collection_drop(db, "chk", true, &err)) fail_msg("%s: drop chk: %s", what, err.message);
}

static void after_snapshot_create(fault_ctx *f, tdb_db *db, int rc, bool applied,
                                  const char *what) {
    (void)applied;
    /* Listed snapshots are exactly the acknowledged ones. */
    char *out = NULL;
    tdb_error err;
    assert_int_equal(tdb_snapshot_list_json(db, COLL, &out, &err), 0);
    int listed = 0;
    for (const char *p = out; (p = strstr(p, "\"snapshot_id\":\"")) != NULL; p += 15) {
        char id[96];
        assert_true(parse_snapshot_id(p, id));
        bool known = false;
        for (int k = 0; k < f->n_snaps; k++) known |= strcmp(f->snap_ids[k], id) == 0;
        if (!known) fail_msg("%s: snapshot %s is listed but its create failed", what, id);
        listed++;
    }
    tdb_free(out);
    if (listed != f->n_snaps)
        fail_msg("%s: %d snapshots listed, %d acknowledged", what, listed, f->n_snaps);
    /* No litter: one object per snapshot, an empty DATA/tmp. */
    char path[1024];
    snprintf(path, sizeof path, "%s/objects/snapshots/%s", f->dir, COLL);
    int objects = count_files(path);
    if (objects != listed)
        violation("orphan snapshot object", what,
                  "%d files under objects/snapshots/%s for %d listed snapshots", objects, COLL,
                  listed);
    snprintf(path, sizeof path, "%s/tmp", f->dir);
    if (count_files(path) != 0)
        violation("litter in DATA/tmp", what, "files left in DATA/tmp after the reopen");
    if (rc == 0) check_snapshot_contents(db, f->snap_ids[f->n_snaps - 1],
                                         &f->snap_states[f->n_snaps - 1], what);
}

static void faults_snapshot_create(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "snapshot create", PLAIN);
    f.snap_ids = calloc(MAX_SNAPS, sizeof *f.snap_ids);
    f.snap_states = calloc(MAX_SNAPS, sizeof *f.snap_states);
    assert_non_null(f.snap_ids);
    assert_non_null(f.snap_states);
    f.op = op_snapshot_create;
    f.after = after_snapshot_create;
    fault_loop(&f);
    ctx_free(&f);
}

/* Restores: one clean snapshot; before each attempt the collection is
 * changed, so a restore in place is visible and a failed one found whole
 * or not at all. */
static void take_snapshot(fault_ctx *f) {
    tdb_db *db = open_db(f->dir, f->dbo);
    char *out = NULL;
    tdb_error err;
    if (tdb_snapshot_create_json(db, COLL, &out, &err)) fail_msg("snapshot: %s", err.message);
    assert_true(parse_snapshot_id(out, f->snap_id));
    tdb_free(out);
    f->snap = f->o.cur;
    close_db(db);
}

static void prep_restore(fault_ctx *f, tdb_db *db) {
    write_ok(db, &f->o, 6, false, "prep restore");
    write_ok(db, &f->o, 2, true, "prep restore");
}

static int op_restore_in_place(fault_ctx *f, tdb_db *db, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_snapshot_restore_json(db, COLL, f->snap_id, "{}", 2, &out, err);
    tdb_free(out);
    if (rc == 0) {
        f->o.cur = f->snap;
    } else {
        f->o.alt = f->snap;
        f->o.uncertain = true;
    }
    return rc;
}

static void faults_snapshot_restore_in_place(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "restore in place", PLAIN);
    take_snapshot(&f);
    f.prep = prep_restore;
    f.op = op_restore_in_place;
    fault_loop(&f);
    ctx_free(&f);
}

static int op_restore_into(fault_ctx *f, tdb_db *db, tdb_error *err) {
    char *out = NULL;
    const char *body = "{\"into\":\"g\"}";
    int rc = tdb_snapshot_restore_json(db, COLL, f->snap_id, body, strlen(body), &out, err);
    tdb_free(out);
    return rc;
}

static void after_restore_into(fault_ctx *f, tdb_db *db, int rc, bool applied, const char *what) {
    (void)applied;
    bool exists = coll_exists(db, "g");
    if (rc == 0 && !exists) fail_msg("%s: restored collection g is missing after the reopen", what);
    if (rc != 0 && exists) {
        violation("failed restore leaves the new collection", what,
                  "the restore failed, yet collection g exists after the reopen");
        tdb_error err;
        if (tdb_collection_drop(db, "g", true, &err)) fail_msg("%s: drop g: %s", what, err.message);
        exists = false;
    }
    if (exists) {
        state got;
        read_state(db, "g", &got, what);
        if (!state_eq(&got, &f->snap)) fail_msg("%s: g does not hold the snapshot", what);
        check_queries(db, "g", &got, what);
        /* It takes writes like any other collection. */
        buf b = BUF_INIT;
        buf_puts(&b, "{\"documents\":[");
        put_doc(&b, 1, 999999);
        buf_puts(&b, "]}");
        size_t n;
        tdb_error err;
        if (tdb_upsert_json(db, "g", b.data, b.len, &n, &err))
            fail_msg("%s: write to g: %s", what, err.message);
        buf_free(&b);
        if (tdb_collection_drop(db, "g", true, &err)) fail_msg("%s: drop g: %s", what, err.message);
    }
    /* Nothing of g is left on disk: only f's directory under collections/. */
    int dirs = collection_dirs(f);
    if (dirs != 1)
        violation("orphan collection directory", what,
                  "%d entries under collections/ (expected f's alone)", dirs);
}

static void faults_snapshot_restore_into(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    ctx_init(&f, "restore into new", PLAIN);
    take_snapshot(&f);
    f.prep = prep_restore;
    f.op = op_restore_into;
    f.after = after_restore_into;
    fault_loop(&f);
    ctx_free(&f);
}

/* ---- fsync failures ------------------------------------------------------ */

/* A minimal write (one document, fsync=always, nothing to flush or rotate)
 * makes a few counted calls, the WAL fsync among them. Failing any of them
 * must fail the write (each is needed for durability), and failing the
 * fsync must leave the collection read-only: refused writes, reported in
 * tdb_problems_json and the metrics, reads answering, and a reopen
 * recovering. */
static void fsync_failure_is_never_acknowledged(void **state) {
    (void)state;
    static fault_ctx f; /* static: cleanup() may reach it after a failed check */
    /* A WAL file that never fills: no rotation inside the write (a failed
     * rotation rightly does not fail the write it follows). */
    const db_opts big_wal = {1000, 0, 1u << 30};
    ctx_init(&f, "minimal write", big_wal);
    tdb_db *db = open_db(f.dir, big_wal);
    write_ok(db, &f.o, 1, false, "warm up"); /* storage open, WAL file current */
    uint64_t before = fio_calls();
    write_ok(db, &f.o, 1, false, "count");
    uint64_t calls = fio_calls() - before;
    close_db(db);
    if (calls < 2)
        fail_msg("a durable write made %llu counted I/O calls: no fsync?",
                 (unsigned long long)calls);
    unsigned read_only = 0;
    for (uint64_t n = 1; n <= calls; n++) {
        for (int persistent = 0; persistent < 2; persistent++) {
            char what[96];
            snprintf(what, sizeof what, "minimal write: %s fault at call %llu of %llu",
                     persistent ? "persistent" : "one", (unsigned long long)n,
                     (unsigned long long)calls);
            db = open_db(f.dir, big_wal);
            write_ok(db, &f.o, 1, false, what); /* warm up again */
            batch b;
            batch_pick(&f.o, &b, 1, false);
            tdb_error err;
            fio_fault_set(n, EIO, persistent);
            int rc = batch_run(db, COLL, &f.o, &b, true, &err);
            fio_fault_clear();
            if (rc == 0) fail_msg("%s: the write was acknowledged although a call failed", what);
            if (check_live(db, &f.o, rc, what)) read_only++;
            close_db(db);
            db = open_db(f.dir, big_wal);
            check_reopened(db, &f.o, what);
            close_db(db);
        }
    }
    violations_check("minimal write");
    printf("[ faults   ] minimal write: %llu calls, %u of %llu faults left it read-only\n",
           (unsigned long long)calls, read_only, (unsigned long long)(2 * calls));
    if (read_only == 0) fail_msg("no fault of a durable write made the collection read-only");
    ctx_free(&f);
}

int main(void) {
    setup_run();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(fsync_failure_is_never_acknowledged, cleanup),
        cmocka_unit_test_teardown(faults_open_and_recover, cleanup),
        cmocka_unit_test_teardown(faults_upsert_batch, cleanup),
        cmocka_unit_test_teardown(faults_delete_batch, cleanup),
        cmocka_unit_test_teardown(faults_upsert_background_flush, cleanup),
        cmocka_unit_test_teardown(faults_create_collection, cleanup),
        cmocka_unit_test_teardown(faults_flush, cleanup),
        cmocka_unit_test_teardown(faults_compaction, cleanup),
        cmocka_unit_test_teardown(faults_snapshot_create, cleanup),
        cmocka_unit_test_teardown(faults_snapshot_restore_in_place, cleanup),
        cmocka_unit_test_teardown(faults_snapshot_restore_into, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
