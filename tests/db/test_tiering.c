/*
 * test_tiering.c: tier moves through the public API: a full hot -> warm ->
 * cold -> warm -> hot cycle driven by the test clock with every document
 * and query answer identical at each step, pins, manual moves, and an I/O
 * fault injected at every step of each move (SQLite's method: N = 1, 2,
 * ... until the move completes) followed by a reopen that must find the
 * collection whole in the old or the new tier.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db/catalog.h"
#include "tierdb.h"
#include "util/fileio.h"

#define DOCS 5000
#define DIM 8

static char *make_dir(void) {
    const char *base = getenv("TDB_TEST_TMP");
    char tmpl[512];
    if (base) {
        fio_mkdir_p(base);
        snprintf(tmpl, sizeof tmpl, "%s/tiertest-XXXXXX", base);
    } else {
        snprintf(tmpl, sizeof tmpl, "/tmp/tiertest-XXXXXX");
    }
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static tdb_db *open_db(const char *dir) {
    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = dir;
    o.test_clock = true;
    o.worker_interval_ms = 0; /* cycles only when the test asks */
    o.memtable_max_docs = 2000; /* several segments */
    tdb_db *db = NULL;
    tdb_error err;
    int rc = tdb_open(&o, &db, &err);
    if (rc) fail_msg("tdb_open: %s", err.message);
    return db;
}

/* The whole observable state: every document (paged) plus three query
 * answers. Caller frees. */
static char *state_of(tdb_db *db) {
    size_t cap = 1 << 20, len = 0;
    char *all = malloc(cap);
    char *cursor = NULL;
    tdb_error err;
    for (;;) {
        char *page = NULL;
        int rc = tdb_list_json(db, "t", 1000, cursor, true, &page, &err);
        if (rc) fail_msg("list: %s", err.message);
        size_t n = strlen(page);
        while (len + n + 1 > cap) all = realloc(all, cap *= 2);
        memcpy(all + len, page, n);
        len += n;
        free(cursor);
        cursor = NULL;
        char *nc = strstr(page, "\"next_cursor\":\"");
        if (nc) {
            cursor = strdup(nc + 15);
            *strchr(cursor, '"') = '\0';
        }
        tdb_free(page);
        if (!cursor) break;
    }
    for (int q = 0; q < 3; q++) {
        char body[256], *out = NULL;
        snprintf(body, sizeof body, "{\"vector\":[%d,1,2,3,4,5,6,7],\"top_k\":7,\"exact\":true}", q);
        if (tdb_query_json(db, "t", body, strlen(body), &out, &err)) fail_msg("query: %s", err.message);
        /* took_ms and tier vary; keep only the results. */
        char *end = strstr(out, "],\"took_ms\"");
        assert_non_null(end);
        size_t n = (size_t)(end - out);
        while (len + n + 1 > cap) all = realloc(all, cap *= 2);
        memcpy(all + len, out, n);
        len += n;
        tdb_free(out);
    }
    all[len] = '\0';
    return all;
}

static void fill(tdb_db *db) {
    tdb_error err;
    char *out = NULL;
    const char *create = "{\"name\":\"t\",\"dimension\":8,\"metric\":\"l2\"}";
    assert_int_equal(tdb_collection_create_json(db, create, strlen(create), &out, &err), 0);
    tdb_free(out);
    char *body = malloc(1 << 20);
    for (int b = 0; b < DOCS / 500; b++) {
        size_t len = (size_t)sprintf(body, "{\"documents\":[");
        for (int i = b * 500; i < (b + 1) * 500; i++) {
            len += (size_t)sprintf(body + len, "%s{\"id\":\"d%05d\",\"vector\":[", i % 500 ? "," : "", i);
            for (int k = 0; k < DIM; k++)
                len += (size_t)sprintf(body + len, "%s%d", k ? "," : "", (i * 7 + k * 13) % 101);
            len += (size_t)sprintf(body + len, "],\"attributes\":{\"n\":%d,\"s\":\"v\\u00e9%d\"}}", i, i);
        }
        len += (size_t)sprintf(body + len, "]}");
        size_t n;
        if (tdb_upsert_json(db, "t", body, len, &n, &err)) fail_msg("upsert: %s", err.message);
    }
    free(body);
    /* Some deletes and overwrites too. */
    const char *del = "{\"ids\":[\"d00001\",\"d04999\",\"d02500\"]}";
    size_t n;
    assert_int_equal(tdb_delete_json(db, "t", del, strlen(del), &n, &err), 0);
    assert_int_equal(n, 3);
}

static const char *tier_now(tdb_db *db) {
    static char t[8];
    char *out = NULL;
    tdb_error err;
    assert_int_equal(tdb_tier_get_json(db, "t", &out, &err), 0);
    sscanf(strstr(out, "\"tier\":\"") + 8, "%7[a-z]", t);
    tdb_free(out);
    return t;
}

static void cycle(tdb_db *db) {
    char *out = NULL;
    tdb_error err;
    assert_int_equal(tdb_tiering_cycle_json(db, &out, &err), 0);
    assert_non_null(strstr(out, "\"errors\":[]"));
    tdb_free(out);
}

static void advance(tdb_db *db, int64_t ms) {
    int64_t now;
    tdb_error err;
    assert_int_equal(tdb_clock_advance(db, ms, &now, &err), 0);
}

#define HOUR (3600LL * 1000)

static void tiering_full_cycle_keeps_every_document(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    fill(db);
    char *base = state_of(db);
    assert_string_equal(tier_now(db), "hot");
    advance(db, 5 * HOUR);
    cycle(db);
    assert_string_equal(tier_now(db), "hot");
    advance(db, 2 * HOUR);
    cycle(db);
    assert_string_equal(tier_now(db), "warm");
    char *s = state_of(db); /* an access: idle time restarts */
    assert_string_equal(s, base);
    free(s);
    advance(db, 7 * 24 * HOUR + HOUR);
    cycle(db);
    assert_string_equal(tier_now(db), "cold");
    char path[600];
    snprintf(path, sizeof path, "%s/collections/1", dir);
    assert_false(fio_exists(path));
    /* Metadata reads do not bring it back. */
    char *out = NULL;
    tdb_error err;
    assert_int_equal(tdb_collection_get_json(db, "t", &out, &err), 0);
    assert_non_null(strstr(out, "\"documents\":4997"));
    assert_non_null(strstr(out, "\"tier\":\"cold\""));
    tdb_free(out);
    /* Survives a restart in the cold tier. */
    tdb_close(db);
    db = open_db(dir);
    assert_string_equal(tier_now(db), "cold");
    s = state_of(db); /* first access: cold -> warm */
    assert_string_equal(s, base);
    free(s);
    assert_string_equal(tier_now(db), "warm");
    for (int i = 0; i < 10; i++) {
        s = state_of(db);
        free(s);
    }
    cycle(db);
    assert_string_equal(tier_now(db), "hot");
    s = state_of(db);
    assert_string_equal(s, base);
    free(s);
    tdb_close(db);
    db = open_db(dir);
    assert_string_equal(tier_now(db), "hot");
    tdb_close(db);
    free(base);
    fio_rmtree(dir);
    free(dir);
}

static void tiering_pinned_is_never_demoted_and_manual_moves_check_direction(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    tdb_error err;
    char *out = NULL;
    const char *create = "{\"name\":\"t\",\"dimension\":8}";
    assert_int_equal(tdb_collection_create_json(db, create, strlen(create), &out, &err), 0);
    tdb_free(out);
    assert_int_equal(tdb_tier_pin(db, "t", true, &out, &err), 0);
    assert_non_null(strstr(out, "\"pinned\":true"));
    tdb_free(out);
    advance(db, 30 * 24 * HOUR);
    cycle(db);
    assert_string_equal(tier_now(db), "hot");
    assert_int_equal(tdb_tier_move(db, "t", false, -1, &out, &err), TDB_ECONFLICT);
    assert_int_equal(tdb_tier_pin(db, "t", false, &out, &err), 0);
    tdb_free(out);
    assert_int_equal(tdb_tier_move(db, "t", true, -1, &out, &err), TDB_ECONFLICT); /* already hot */
    assert_int_equal(tdb_tier_move(db, "t", false, TDB_TIER_COLD, &out, &err), 0);
    assert_non_null(strstr(out, "\"tier\":\"cold\""));
    tdb_free(out);
    assert_int_equal(tdb_tier_move(db, "t", false, -1, &out, &err), TDB_ECONFLICT); /* already cold */
    assert_int_equal(tdb_tier_move(db, "t", true, TDB_TIER_WARM, &out, &err), 0);
    assert_non_null(strstr(out, "\"tier\":\"warm\""));
    tdb_free(out);
    assert_int_equal(tdb_tier_move(db, "t", true, -1, &out, &err), 0);
    assert_non_null(strstr(out, "\"tier\":\"hot\""));
    tdb_free(out);
    tdb_close(db);
    fio_rmtree(dir);
    free(dir);
}

/* Injects a fault at the n-th counted I/O call of a move; after the
 * failure (or success) the reopened database must hold every document,
 * in the old or the new tier. Returns whether the move completed without
 * reaching the fault. */
static bool move_with_fault(const char *dir, const char *base, bool promote, int to, uint64_t nth,
                            int err_no) {
    tdb_db *db = open_db(dir);
    const char *before = tier_now(db);
    char before_tier[8];
    strcpy(before_tier, before);
    tdb_error err;
    char *out = NULL;
    uint64_t calls_before = fio_calls();
    fio_fault_set(nth, err_no, true);
    int rc = tdb_tier_move(db, "t", promote, to, &out, &err);
    bool hit = fio_calls() - calls_before >= nth;
    fio_fault_clear();
    tdb_free(out);
    tdb_close(db);
    db = open_db(dir);
    const char *after = tier_now(db);
    if (rc == 0) assert_string_not_equal(after, before_tier);
    char *s = state_of(db);
    if (strcmp(s, base) != 0) fail_msg("data differs after a fault at call %llu (rc %d)",
                                       (unsigned long long)nth, rc);
    free(s);
    tdb_close(db);
    return rc == 0 && !hit;
}

static void tiering_moves_survive_an_io_fault_at_every_step(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    fill(db);
    tdb_close(db);
    db = open_db(dir);
    char *base = state_of(db);
    tdb_close(db);
    /* Each round: demote hot -> cold with a fault at call n, then bring it
     * back to hot (also under a fault), until the moves finish untouched. */
    bool clean = false;
    for (uint64_t n = 1; n < 400 && !clean; n++) {
        int e = n % 2 ? EIO : ENOSPC;
        bool down = move_with_fault(dir, base, false, TDB_TIER_COLD, n, e);
        bool up = move_with_fault(dir, base, true, TDB_TIER_HOT, n, e);
        clean = down && up;
        /* Put it back to hot without faults for the next round. */
        db = open_db(dir);
        char *out = NULL;
        tdb_error err;
        if (strcmp(tier_now(db), "hot") != 0) {
            if (tdb_tier_move(db, "t", true, TDB_TIER_HOT, &out, &err) != 0)
                fail_msg("promote after fault %llu: %s", (unsigned long long)n, err.message);
            tdb_free(out);
        }
        tdb_close(db);
    }
    assert_true(clean);
    free(base);
    fio_rmtree(dir);
    free(dir);
}

/* Flips one byte of every segment object of the cold copy. */
static int damage_segments(const char *root) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "for f in $(find '%s/objects/collections' -name '*.seg'); do "
             "printf 'X' | dd of=\"$f\" bs=1 seek=100 conv=notrunc status=none; done; "
             "find '%s/objects/collections' -name '*.seg' | wc -l",
             root, root);
    FILE *p = popen(cmd, "r");
    int n = 0;
    if (p && fscanf(p, "%d", &n) != 1) n = 0;
    if (p) pclose(p);
    return n;
}

static void tiering_damaged_segment_copy_falls_back_to_parquet(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    fill(db);
    char *base = state_of(db);
    char *out = NULL;
    tdb_error err;
    assert_int_equal(tdb_tier_move(db, "t", false, TDB_TIER_COLD, &out, &err), 0);
    tdb_free(out);
    tdb_close(db);
    assert_true(damage_segments(dir) > 0);
    db = open_db(dir);
    char *s = state_of(db); /* cold -> warm from data.parquet */
    assert_string_equal(s, base);
    assert_string_equal(tier_now(db), "warm");
    free(s);
    tdb_close(db);
    free(base);
    fio_rmtree(dir);
    free(dir);
}

/* A version 1 catalog (access fields in the collections row) opens, is
 * migrated to the narrow access table with its access state carried over,
 * and later access writes land there; a catalog from a newer build is
 * refused. */
static void catalog_version_1_is_migrated_with_its_access_state(void **state) {
    (void)state;
    char *dir = make_dir();
    char path[600];
    snprintf(path, sizeof path, "%s/catalog.db", dir);
    sqlite3 *s = NULL;
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(s,
                     "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
                     "INSERT INTO meta VALUES('schema_version', '1');"
                     "CREATE TABLE collections("
                     " id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
                     " config TEXT NOT NULL, dimension INTEGER NOT NULL, metric INTEGER NOT NULL,"
                     " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
                     " tier INTEGER NOT NULL DEFAULT 0, pinned INTEGER NOT NULL DEFAULT 0,"
                     " last_accessed_at INTEGER NOT NULL DEFAULT 0,"
                     " access_count INTEGER NOT NULL DEFAULT 0,"
                     " access_window_start INTEGER NOT NULL DEFAULT 0,"
                     " window_count INTEGER NOT NULL DEFAULT 0, snapshot_id TEXT,"
                     " object_bytes INTEGER NOT NULL DEFAULT 0,"
                     " cold_documents INTEGER NOT NULL DEFAULT 0,"
                     " cold_since INTEGER NOT NULL DEFAULT 0);"
                     "INSERT INTO collections(name, config, dimension, metric, created_at,"
                     " updated_at, tier, pinned, last_accessed_at, access_count,"
                     " access_window_start, window_count, snapshot_id, object_bytes)"
                     " VALUES('a', '{}', 8, 0, 100, 200, 2, 1, 1234, 77, 1000, 5, 'snap-a', 999),"
                     " ('b', '{}', 4, 1, 300, 400, 1, 0, 5678, 3, 5000, 1, NULL, 0);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(s);

    catalog *c = NULL;
    tdb_error err;
    if (catalog_open(path, &c, &err) != 0) fail_msg("catalog_open: %s", err.message);
    catalog_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(catalog_list(c, &rows, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].name, "a");
    assert_int_equal(rows[0].tier, 2);
    assert_true(rows[0].pinned);
    assert_int_equal(rows[0].last_accessed_at_ms, 1234);
    assert_int_equal(rows[0].access_count, 77);
    assert_int_equal(rows[0].access_window_start_ms, 1000);
    assert_int_equal(rows[0].window_count, 5);
    assert_string_equal(rows[0].snapshot_id, "snap-a");
    assert_int_equal(rows[0].object_bytes, 999);
    assert_int_equal(rows[1].last_accessed_at_ms, 5678);
    assert_int_equal(rows[1].access_count, 3);
    assert_null(rows[1].snapshot_id);

    /* An access write touches only the access fields. */
    rows[1].last_accessed_at_ms = 9000;
    rows[1].access_count = 4;
    rows[1].window_count = 2;
    rows[1].tier = 0; /* ignored by an access write */
    assert_int_equal(catalog_update_access(c, &rows[1], 1, &err), 0);
    catalog_rows_free(rows, n);
    catalog_close(c);

    if (catalog_open(path, &c, &err) != 0) fail_msg("reopen: %s", err.message);
    assert_int_equal(catalog_list(c, &rows, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[1].last_accessed_at_ms, 9000);
    assert_int_equal(rows[1].access_count, 4);
    assert_int_equal(rows[1].window_count, 2);
    assert_int_equal(rows[1].tier, 1);
    assert_int_equal(rows[0].access_count, 77);
    /* A dropped collection's access row goes with it. */
    assert_int_equal(catalog_delete(c, rows[1].id, &err), 0);
    catalog_rows_free(rows, n);
    catalog_close(c);

    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s, "SELECT count(*) FROM access_state", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(s, "UPDATE meta SET value='3' WHERE key='schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(s);
    assert_int_not_equal(catalog_open(path, &c, &err), 0);
    assert_null(c);

    fio_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(catalog_version_1_is_migrated_with_its_access_state),
        cmocka_unit_test(tiering_full_cycle_keeps_every_document),
        cmocka_unit_test(tiering_pinned_is_never_demoted_and_manual_moves_check_direction),
        cmocka_unit_test(tiering_moves_survive_an_io_fault_at_every_step),
        cmocka_unit_test(tiering_damaged_segment_copy_falls_back_to_parquet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
