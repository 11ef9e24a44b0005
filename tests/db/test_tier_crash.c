/*
 * test_tier_crash.c: a SIGKILL at every step of every tier move.
 *
 * For each move kind (hot -> warm, warm -> cold, warm -> hot, cold -> warm
 * by a manual promote, cold -> warm by a query on the cold collection) and
 * N = 1, 2, ...: a forked child opens a copy of a prepared data directory,
 * arms fio_crash_set(N) (the N-th counted file-system call of the move
 * raises SIGKILL before its I/O, util/fileio.h) and runs the move. The
 * child must die by SIGKILL, or exit 0 once N is past the move's last
 * counted call, which ends the loop. The parent then opens the directory
 * and checks what db/tiering.c invariant (1) promises:
 *   - the catalog names the old or the new tier;
 *   - what the interrupted move left is gone: no <id>.incoming, no local
 *     directory for a cold collection (and one for a warm or hot one), no
 *     DATA/tmp, and in the object store only the copy the catalog names
 *     (a cold collection: exactly the objects of its snapshot_id, FILES
 *     among them; a warm or hot one: none);
 *   - the move can be completed (run again when the tier is still the old
 *     one), leaving the same;
 *   - every document is present and identical (listing paged with
 *     vectors and attributes), and an exact vector query, a filtered
 *     vector query, a text query and a filter-only query give the answers
 *     they gave before the move.
 *
 * The data: 300 documents of dimension 16 in three batches with flushes
 * between them (two segments plus memtable rows replayed from the WAL),
 * overwrites and deletes; the warm and cold sources get a fourth batch
 * written while warm, so their WAL holds rows too. Compaction is off so
 * no background thread takes a ticket; each step is tested (no stride).
 *
 * The library logs at error level only (TDB_TEST_VERBOSE=1 for all);
 * TDB_CRASH_TMP overrides where the data directories go (default
 * /dev/shm when writable: thousands of fsyncs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tierdb.h"
#include "util/fileio.h"
#include "util/log.h"
#include "fast_tmpdir.h"

#define COLL "t"
#define DIM 16
#define BATCH 100
#define MAX_N 5000 /* a loop that never completes is a failure, not a hang */

typedef enum kind {
    HOT_TO_WARM,
    WARM_TO_COLD,
    WARM_TO_HOT,
    COLD_TO_WARM,
    COLD_TO_WARM_BY_QUERY,
} kind;

static const char *const kind_names[] = {"hot_to_warm", "warm_to_cold", "warm_to_hot",
                                         "cold_to_warm", "cold_to_warm_by_query"};

/* The prepared sources (one directory per source tier) and their answers. */
typedef struct fixture {
    char *root;       /* everything of this test lives under it */
    char *src[3];     /* pristine data directories, by source tier */
    char *base[3];    /* state_of() of each source */
    char *scratch;    /* the directory a child crashes in */
} fixture;

/* ---- helpers ----------------------------------------------------------- */

static char *make_root(void) {
    char *d = fast_tmpdir("TDB_CRASH_TMP", "tiercrash");
    assert_non_null(d);
    return d;
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* rm -rf to, then cp -a from to (extended attributes too: the local
 * object store keeps each object's CRC32C in one). */
static void copy_dir(const char *from, const char *to) {
    assert_int_equal(fio_rmtree(to), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", from, to);
    if (system(cmd) != 0) fail_msg("%s failed", cmd);
}

static tdb_db *open_db(const char *dir, tdb_error *err) {
    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = dir;
    o.test_clock = true;
    o.worker_interval_ms = 0;          /* no cycles but the test's */
    o.memtable_max_docs = 100000;      /* flushes only where the test says */
    o.compaction_min_segments = 1000;  /* no background I/O during a move */
    o.background_threads = 1;
    tdb_db *db = NULL;
    return tdb_open(&o, &db, err) == 0 ? db : NULL;
}

static tdb_db *must_open(const char *dir) {
    tdb_error err;
    tdb_db *db = open_db(dir, &err);
    if (db == NULL) fail_msg("tdb_open %s: %s", dir, err.message);
    return db;
}

static void append(char **all, size_t *len, size_t *cap, const char *s, size_t n) {
    while (*len + n + 1 > *cap) {
        *cap *= 2;
        *all = realloc(*all, *cap);
        assert_non_null(*all);
    }
    memcpy(*all + *len, s, n);
    *len += n;
    (*all)[*len] = '\0';
}

static const char *const queries[] = {
    "{\"vector\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],\"top_k\":25,\"exact\":true,"
    "\"include\":{\"attributes\":true,\"vector\":true}}",
    "{\"vector\":[16,1,15,2,14,3,13,4,12,5,11,6,10,7,9,8],\"top_k\":20,\"exact\":true,"
    "\"filter\":{\"n\":{\"$gte\":50},\"tags\":{\"$in\":[\"odd\"]}}}",
    "{\"text\":\"alpha gamma\",\"top_k\":40}",
    "{\"filter\":{\"$or\":[{\"n\":{\"$lt\":30}},{\"tags\":{\"$contains\":\"seven\"}}]},"
    "\"top_k\":1000}",
};

/* The observable state: every document (paged, with vectors) and the
 * answers of the queries (without took_ms and tier). Caller frees. */
static char *state_of(tdb_db *db) {
    size_t cap = 1 << 16, len = 0;
    char *all = malloc(cap);
    assert_non_null(all);
    all[0] = '\0';
    char *cursor = NULL;
    tdb_error err;
    for (int pages = 0;; pages++) {
        char *page = NULL;
        if (tdb_list_json(db, COLL, 64, cursor, true, &page, &err) != 0)
            fail_msg("list: %s", err.message);
        append(&all, &len, &cap, page, strlen(page));
        free(cursor);
        cursor = NULL;
        char *nc = strstr(page, "\"next_cursor\":\"");
        if (nc) {
            cursor = strdup(nc + 15);
            *strchr(cursor, '"') = '\0';
        }
        tdb_free(page);
        if (!cursor) break;
        assert_true(pages < 100);
    }
    for (size_t q = 0; q < sizeof queries / sizeof *queries; q++) {
        char *out = NULL;
        if (tdb_query_json(db, COLL, queries[q], strlen(queries[q]), &out, &err) != 0)
            fail_msg("query %zu: %s", q, err.message);
        char *end = strstr(out, "],\"took_ms\"");
        assert_non_null(end);
        append(&all, &len, &cap, out, (size_t)(end - out));
        tdb_free(out);
    }
    return all;
}

static void upsert_range(tdb_db *db, int from, int to, int version) {
    char *body = malloc(1 << 20);
    assert_non_null(body);
    size_t len = (size_t)sprintf(body, "{\"documents\":[");
    static const char *const words[] = {"alpha", "beta", "gamma", "delta", "\\u00e9t\\u00e9"};
    for (int i = from; i < to; i++) {
        len += (size_t)sprintf(body + len, "%s{\"id\":\"d%04d\",\"vector\":[",
                               i > from ? "," : "", i);
        for (int k = 0; k < DIM; k++)
            len += (size_t)sprintf(body + len, "%s%d.%d", k ? "," : "",
                                   (i * 7 + k * 13 + version) % 53, (i + k) % 10);
        len += (size_t)sprintf(body + len,
                               "],\"attributes\":{\"n\":%d,\"v\":%d,\"title\":\"%s %s doc %d\","
                               "\"tags\":[\"%s\",\"%s\"],\"nested\":{\"x\":[1,{\"y\":null}]}}}",
                               i, version, words[i % 5], words[(i / 5) % 5], i,
                               i % 2 ? "odd" : "even", i % 7 ? "other" : "seven");
    }
    len += (size_t)sprintf(body + len, "]}");
    size_t n;
    tdb_error err;
    if (tdb_upsert_json(db, COLL, body, len, &n, &err) != 0) fail_msg("upsert: %s", err.message);
    assert_int_equal(n, (size_t)(to - from));
    free(body);
}

static void flush(tdb_db *db) {
    tdb_error err;
    if (tdb_flush_all(db, &err) != 0) fail_msg("flush: %s", err.message);
}

/* Three batches, two flushes (two segments), the third batch and some
 * overwrites and deletes left in the memtable (and WAL). */
static void fill(tdb_db *db) {
    tdb_error err;
    char *out = NULL;
    const char *create =
        "{\"name\":\"t\",\"dimension\":16,\"metric\":\"l2\",\"attributes\":{"
        "\"title\":{\"type\":\"string\",\"full_text\":true},\"n\":{\"type\":\"int\"},"
        "\"tags\":{\"type\":\"string[]\"}}}";
    if (tdb_collection_create_json(db, create, strlen(create), &out, &err) != 0)
        fail_msg("create: %s", err.message);
    tdb_free(out);
    upsert_range(db, 0, BATCH, 0);
    flush(db);
    upsert_range(db, BATCH, 2 * BATCH, 0);
    upsert_range(db, 10, 20, 1); /* overwrites of segment 1 rows */
    flush(db);
    upsert_range(db, 2 * BATCH, 3 * BATCH, 0);
    upsert_range(db, 150, 160, 2);
    const char *del = "{\"ids\":[\"d0003\",\"d0155\",\"d0299\"]}";
    size_t n;
    assert_int_equal(tdb_delete_json(db, COLL, del, strlen(del), &n, &err), 0);
    assert_int_equal(n, 3);
}

static void tier_move(tdb_db *db, bool promote, int to) {
    char *out = NULL;
    tdb_error err;
    if (tdb_tier_move(db, COLL, promote, to, &out, &err) != 0) fail_msg("move: %s", err.message);
    tdb_free(out);
}

/* The tier and snapshot_id of the collection, from its tier object (a
 * metadata read: no access, so a cold collection stays cold). */
static void tier_state(tdb_db *db, char tier[8], char snapshot[128]) {
    char *out = NULL;
    tdb_error err;
    if (tdb_tier_get_json(db, COLL, &out, &err) != 0) fail_msg("tier: %s", err.message);
    assert_int_equal(sscanf(strstr(out, "\"tier\":\"") + 8, "%7[a-z]", tier), 1);
    snapshot[0] = '\0';
    const char *s = strstr(out, "\"snapshot_id\":\"");
    if (s) assert_int_equal(sscanf(s + 15, "%127[^\"]", snapshot), 1);
    tdb_free(out);
}

/* ---- what is on disk --------------------------------------------------- */

typedef struct listing {
    char names[256][512]; /* object keys, relative to the store root */
    int count;
    int temps;            /* .tmp-* files (a put the kill interrupted) */
} listing;

static void walk(const char *dir, const char *rel, listing *l) {
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[1024], r[480];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            walk(path, r, l);
        } else if (e->d_name[0] == '.') {
            l->temps++;
        } else if (l->count < 256) {
            snprintf(l->names[l->count++], sizeof l->names[0], "%s", r);
        }
    }
    closedir(d);
}

/* Checks the leftovers rule of the header for the tier the catalog names. */
static int check_clean(const char *dir, const char *tier, const char *snapshot, const char *what) {
    char *coll = join(dir, "collections/1");
    char *incoming = join(dir, "collections/1.incoming");
    char *tmp = join(dir, "tmp/cold-1.parquet");
    char *objects = join(dir, "objects");
    bool cold = strcmp(tier, "cold") == 0;
    if (fio_exists(incoming)) fail_msg("%s: %s left behind", what, incoming);
    if (fio_exists(tmp)) fail_msg("%s: %s left behind", what, tmp);
    if (cold && fio_exists(coll)) fail_msg("%s: cold, but %s exists", what, coll);
    if (!cold && !fio_exists(coll)) fail_msg("%s: %s, but %s is missing", what, tier, coll);
    listing *l = calloc(1, sizeof *l);
    assert_non_null(l);
    walk(objects, "", l);
    bool files = false;
    size_t plen = strlen(snapshot);
    for (int i = 0; i < l->count; i++) {
        if (!cold)
            fail_msg("%s: %s, but the object store holds %s", what, tier, l->names[i]);
        if (strncmp(l->names[i], snapshot, plen) != 0 || l->names[i][plen] != '/')
            fail_msg("%s: object %s is not part of the cold copy %s", what, l->names[i], snapshot);
        if (strcmp(l->names[i] + plen, "/FILES") == 0) files = true;
    }
    if (cold && !files) fail_msg("%s: the cold copy %s has no FILES", what, snapshot);
    /* The store's open removes the temporaries of dead processes. */
    if (l->temps) fail_msg("%s: %d object-store temporaries left behind", what, l->temps);
    int temps = l->temps;
    free(l);
    free(coll);
    free(incoming);
    free(tmp);
    free(objects);
    return temps;
}

/* ---- the fixture ------------------------------------------------------- */

static int setup(void **state) {
    const char *v = getenv("TDB_TEST_VERBOSE");
    log_set_level(v && v[0] && v[0] != '0' ? LOG_DEBUG : LOG_ERROR);
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->root = make_root();
    f->scratch = join(f->root, "scratch");
    for (int t = 0; t < 3; t++) {
        char name[16];
        snprintf(name, sizeof name, "src-%d", t);
        f->src[t] = join(f->root, name);
    }
    /* hot: fill and close; the memtable rows are in the WAL. */
    tdb_db *db = must_open(f->src[TDB_TIER_HOT]);
    fill(db);
    f->base[TDB_TIER_HOT] = state_of(db);
    tdb_close(db);
    /* warm: demoted, then written to (a warm collection takes writes). */
    copy_dir(f->src[TDB_TIER_HOT], f->src[TDB_TIER_WARM]);
    db = must_open(f->src[TDB_TIER_WARM]);
    char *s = state_of(db);
    assert_string_equal(s, f->base[TDB_TIER_HOT]);
    free(s);
    tier_move(db, false, TDB_TIER_WARM);
    upsert_range(db, 3 * BATCH, 3 * BATCH + 20, 0);
    upsert_range(db, 40, 45, 3);
    size_t n;
    tdb_error err;
    assert_int_equal(tdb_delete(db, COLL, "d0100", 5, &n, &err), 0);
    assert_int_equal(n, 1);
    f->base[TDB_TIER_WARM] = state_of(db);
    char tier[8], snap[128];
    tier_state(db, tier, snap);
    assert_string_equal(tier, "warm");
    tdb_close(db);
    /* cold: the warm source demoted. */
    copy_dir(f->src[TDB_TIER_WARM], f->src[TDB_TIER_COLD]);
    db = must_open(f->src[TDB_TIER_COLD]);
    tier_move(db, false, TDB_TIER_COLD);
    tier_state(db, tier, snap);
    assert_string_equal(tier, "cold");
    check_clean(f->src[TDB_TIER_COLD], tier, snap, "cold source");
    tdb_close(db);
    f->base[TDB_TIER_COLD] = strdup(f->base[TDB_TIER_WARM]);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    fio_rmtree(f->root);
    for (int t = 0; t < 3; t++) {
        free(f->src[t]);
        free(f->base[t]);
    }
    free(f->scratch);
    free(f->root);
    free(f);
    return 0;
}

/* ---- one move kind, crashed at every step ------------------------------ */

static tdb_tier source_of(kind k) {
    switch (k) {
    case HOT_TO_WARM: return TDB_TIER_HOT;
    case WARM_TO_COLD:
    case WARM_TO_HOT: return TDB_TIER_WARM;
    default: return TDB_TIER_COLD;
    }
}

static const char *target_of(kind k) {
    switch (k) {
    case HOT_TO_WARM: return "warm";
    case WARM_TO_COLD: return "cold";
    case WARM_TO_HOT: return "hot";
    default: return "warm";
    }
}

/* Runs the move itself (in the child under the armed crash, and in the
 * parent to complete an interrupted one). */
static int run_move(tdb_db *db, kind k, tdb_error *err) {
    char *out = NULL;
    int rc;
    switch (k) {
    case HOT_TO_WARM: rc = tdb_tier_move(db, COLL, false, TDB_TIER_WARM, &out, err); break;
    case WARM_TO_COLD: rc = tdb_tier_move(db, COLL, false, TDB_TIER_COLD, &out, err); break;
    case WARM_TO_HOT: rc = tdb_tier_move(db, COLL, true, TDB_TIER_HOT, &out, err); break;
    case COLD_TO_WARM: rc = tdb_tier_move(db, COLL, true, TDB_TIER_WARM, &out, err); break;
    default: rc = tdb_query_json(db, COLL, queries[0], strlen(queries[0]), &out, err); break;
    }
    tdb_free(out);
    return rc;
}

/* The child: open, get the collection into its running state, arm the
 * crash, move. Exit codes: 0 the move finished before call n; others are
 * failures the parent reports. */
static void child(const char *dir, kind k, uint64_t n) {
    tdb_error err;
    tdb_db *db = open_db(dir, &err);
    if (db == NULL) _exit(10);
    if (k == HOT_TO_WARM) {
        /* Open the storage (replaying the WAL into the memtable) so the
         * move has a memtable to flush, as a hot collection in use has. */
        char *out = NULL;
        if (tdb_get_json(db, COLL, "d0000", 5, &out, &err) != 0) _exit(11);
        tdb_free(out);
    }
    fio_crash_set(n);
    int rc = run_move(db, k, &err);
    fio_crash_clear();
    if (rc != 0) {
        fprintf(stderr, "child: move failed without a crash: %s\n", err.message);
        _exit(12);
    }
    tdb_close(db);
    _exit(0);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void crash_every_step(fixture *f, kind k) {
    tdb_tier from = source_of(k);
    const char *to = target_of(k);
    const char *from_name = from == TDB_TIER_HOT ? "hot" : from == TDB_TIER_WARM ? "warm" : "cold";
    unsigned in_old = 0, in_new = 0, temps = 0;
    double t0 = now_s();
    uint64_t n = 1;
    for (;; n++) {
        if (n > MAX_N)
            fail_msg("%s: the move did not complete within %d calls", kind_names[k], MAX_N);
        copy_dir(f->src[from], f->scratch);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) child(f->scratch, k, n);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        bool finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!finished && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("%s, crash at call %llu: the child ended with status %d", kind_names[k],
                     (unsigned long long)n, status);
        char what[96];
        snprintf(what, sizeof what, "%s, crash at call %llu", kind_names[k], (unsigned long long)n);
        /* What the catalog says, and nothing left over. */
        tdb_db *db = must_open(f->scratch);
        char tier[8], snap[128];
        tier_state(db, tier, snap);
        if (strcmp(tier, from_name) == 0) in_old++;
        else if (strcmp(tier, to) == 0) in_new++;
        else fail_msg("%s: the collection is %s, neither %s nor %s", what, tier, from_name, to);
        if (finished && strcmp(tier, to) != 0)
            fail_msg("%s: the move finished, but the collection is %s", what, tier);
        if (check_clean(f->scratch, tier, snap, what) > 0) temps++;
        /* Every document and every answer as before, in the tier found
         * (this is an access: a cold collection comes back warm on it). */
        char *s = state_of(db);
        if (strcmp(s, f->base[from]) != 0)
            fail_msg("%s: documents or answers differ (%s)", what, tier);
        free(s);
        /* The move can be completed (again, when the reads above brought a
         * cold collection back). */
        tier_state(db, tier, snap);
        if (strcmp(tier, from_name) == 0) {
            tdb_error err;
            if (run_move(db, k, &err) != 0)
                fail_msg("%s: completing the move: %s", what, err.message);
        }
        tdb_close(db);
        /* Reopened: the completed move is durable and left nothing behind. */
        db = must_open(f->scratch);
        tier_state(db, tier, snap);
        if (strcmp(tier, to) != 0)
            fail_msg("%s: %s after completing and reopening, not %s", what, tier, to);
        check_clean(f->scratch, tier, snap, what);
        tdb_close(db);
        if (finished) break;
    }
    print_message("%s: %llu crash points (old tier after %u, new after %u; %u left object-store "
                  "temporaries), %.1f s\n",
                  kind_names[k], (unsigned long long)(n - 1), in_old, in_new, temps, now_s() - t0);
    /* A move with counted calls has crash points on both sides of its commit. */
    assert_true(n > 1);
    assert_true(in_old > 0);
    assert_true(in_new > 0);
    fio_rmtree(f->scratch);
}

static void crash_hot_to_warm(void **state) { crash_every_step(*state, HOT_TO_WARM); }
static void crash_warm_to_cold(void **state) { crash_every_step(*state, WARM_TO_COLD); }
static void crash_warm_to_hot(void **state) { crash_every_step(*state, WARM_TO_HOT); }
static void crash_cold_to_warm(void **state) { crash_every_step(*state, COLD_TO_WARM); }
static void crash_cold_to_warm_by_query(void **state) {
    crash_every_step(*state, COLD_TO_WARM_BY_QUERY);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crash_hot_to_warm),
        cmocka_unit_test(crash_warm_to_cold),
        cmocka_unit_test(crash_warm_to_hot),
        cmocka_unit_test(crash_cold_to_warm),
        cmocka_unit_test(crash_cold_to_warm_by_query),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
