/*
 * test_compaction.c: segment merges (storage/compaction.c): deleted rows
 * dropped with results unchanged, writes issued while a compaction runs
 * carried over, readers of an old view unaffected, replaced files removed
 * once unused, the background size policy, and failures at every I/O call.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/collection_int.h"
#include "util/fileio.h"

#include "storage_oracle.h"

static int count_segment_files(const fixture *f) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/segments", f->dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".seg") == 0) n++;
    }
    closedir(d);
    return n;
}

static void compact(fixture *f) {
    tdb_error err;
    int rc = st_compact(f->c, &err);
    if (rc != 0) fail_msg("st_compact: %s", err.message);
}

/* Three segments with overwrites and deletes spread over them and the
 * memtable. */
static void build_history(fixture *f) {
    oracle_upsert_range(f, 0, 120, 1);
    fixture_flush(f);
    oracle_upsert_range(f, 60, 180, 2);
    oracle_delete_range(f, 0, 15);
    fixture_flush(f);
    oracle_upsert_range(f, 100, 200, 3);
    oracle_delete_range(f, 150, 170);
    fixture_flush(f);
    oracle_upsert_range(f, 190, 210, 4);
    oracle_delete_range(f, 20, 25);
}

static void compaction_drops_deleted_rows_and_keeps_results(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_COSINE, NULL);
    build_history(&f);
    fixture_verify_all(&f);
    st_stats before;
    st_stats_get(f.c, &before);
    assert_int_equal(before.segments, 3);
    compact(&f);
    st_stats s;
    st_stats_get(f.c, &s);
    assert_int_equal(s.segments, 1);
    assert_int_equal(s.compactions, 1);
    assert_int_equal(s.documents, before.documents);
    assert_int_equal(s.indexed_documents, before.indexed_documents);
    /* Only rows alive at the compaction were written. */
    assert_int_equal(f.c->view->segs[0]->rows, s.indexed_documents);
    assert_true(s.disk_bytes < before.disk_bytes);
    assert_int_equal(count_segment_files(&f), 1);
    assert_true(st_check(f.c));
    fixture_verify_all(&f);
    for (int q = 0; q < 4; q++) {
        float query[ORACLE_DIM];
        oracle_vector(query, 300 + q, 1);
        fixture_verify_search(&f, query, 15, q % 2 == 1);
    }
    fixture_verify_scan(&f, 9, true);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    assert_int_equal(count_segment_files(&f), 1);
    fixture_close(&f, true);
}

static void compaction_of_only_deleted_rows_leaves_no_segment(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    oracle_upsert_range(&f, 0, 10, 1);
    fixture_flush(&f);
    oracle_delete_range(&f, 0, 10);
    compact(&f);
    st_stats s;
    st_stats_get(f.c, &s);
    assert_int_equal(s.segments, 0);
    assert_int_equal(s.documents, 0);
    assert_int_equal(count_segment_files(&f), 0);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    /* A second st_compact with nothing to merge is a no-op. */
    compact(&f);
    fixture_close(&f, true);
}

/* Writes issued between the merge and the commit, through the test hook:
 * deletes and overwrites of rows being merged, and new ids. */
static fixture *hook_fixture;

static void write_during_compaction(st_collection *c) {
    assert_ptr_equal(c, hook_fixture->c);
    oracle_delete_range(hook_fixture, 30, 40);    /* rows in the inputs */
    oracle_upsert_range(hook_fixture, 40, 50, 9); /* superseded input rows */
    oracle_upsert_range(hook_fixture, 0, 5, 9);   /* ids deleted before: new again */
    oracle_upsert_range(hook_fixture, 400, 410, 9);
}

static void compaction_keeps_writes_made_while_it_runs(void **state) {
    (void)state;
    tdb_fsync_policy policies[2] = {TDB_FSYNC_ALWAYS, TDB_FSYNC_NONE};
    for (int p = 0; p < 2; p++) {
        st_options o = {.fsync = policies[p]};
        fixture f;
        fixture_open(&f, 0, TDB_METRIC_L2, &o);
        build_history(&f);
        fixture_flush(&f);
        hook_fixture = &f;
        st_test_compaction_hook = write_during_compaction;
        compact(&f);
        st_test_compaction_hook = NULL;
        assert_true(st_check(f.c));
        fixture_verify_all(&f);
        st_stats s;
        st_stats_get(f.c, &s);
        assert_int_equal(s.segments, 1);
        fixture_reopen(&f);
        fixture_verify_all(&f);
        fixture_flush(&f);
        compact(&f);
        fixture_reopen(&f);
        fixture_verify_all(&f);
        assert_true(st_check(f.c));
        fixture_close(&f, true);
    }
}

static void compaction_leaves_old_views_readable_until_released(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    oracle_upsert_range(&f, 0, 40, 1);
    fixture_flush(&f);
    oracle_upsert_range(&f, 20, 60, 2);
    fixture_flush(&f);
    uint64_t snap;
    st_view *old = st_view_acquire(f.c, &snap);
    assert_int_equal(old->nsegs, 2);
    compact(&f);
    /* Replaced, but still open and on disk while a reader holds them. */
    assert_int_equal(count_segment_files(&f), 3);
    uint32_t len;
    const char *id = seg_id(old->segs[0]->seg, 39, &len);
    assert_memory_equal(id, "doc00039", 8);
    assert_int_equal(seg_seqno(old->segs[1]->seg, 0) > seg_seqno(old->segs[0]->seg, 0), 1);
    st_view_release(old);
    assert_int_equal(count_segment_files(&f), 1);
    fixture_verify_all(&f);
    fixture_close(&f, true);
}

static void compaction_in_background_merges_similar_segments(void **state) {
    (void)state;
    /* No pool: the flush that reaches the threshold compacts inline. */
    st_options o = {.compaction_min_segments = 3};
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_DOT, &o);
    for (int s = 0; s < 3; s++) {
        oracle_upsert_range(&f, s * 30, s * 30 + 30, 1);
        fixture_flush(&f);
    }
    st_stats s;
    st_stats_get(f.c, &s);
    assert_int_equal(s.segments, 1);
    assert_int_equal(s.compactions, 1);
    /* One big and two small: not similar, and fewer than twice the
     * threshold: left alone. */
    for (int k = 0; k < 2; k++) {
        oracle_upsert(&f, 200 + k, 1);
        fixture_flush(&f);
    }
    st_stats_get(f.c, &s);
    assert_int_equal(s.segments, 3);
    assert_int_equal(s.compactions, 1);
    fixture_verify_all(&f);
    fixture_close(&f, true);
}

/* Every counted I/O call of a compaction failed in turn: afterwards the
 * collection answers the same, and so does a reopen. */
static void compaction_failure_at_any_step_loses_nothing(void **state) {
    (void)state;
    for (uint64_t nth = 1;; nth++) {
        fixture f;
        fixture_open(&f, 0, TDB_METRIC_L2, NULL);
        build_history(&f);
        uint64_t before = fio_calls();
        fio_fault_set(nth, EIO, false);
        tdb_error err;
        int rc = st_compact(f.c, &err);
        uint64_t calls = fio_calls() - before;
        fio_fault_clear();
        (void)rc;
        fixture_verify_all(&f);
        assert_true(st_check(f.c));
        fixture_reopen(&f);
        fixture_verify_all(&f);
        assert_true(st_check(f.c));
        fixture_close(&f, true);
        if (calls < nth) break;
        assert_true(nth < 200);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compaction_drops_deleted_rows_and_keeps_results),
        cmocka_unit_test(compaction_of_only_deleted_rows_leaves_no_segment),
        cmocka_unit_test(compaction_keeps_writes_made_while_it_runs),
        cmocka_unit_test(compaction_leaves_old_views_readable_until_released),
        cmocka_unit_test(compaction_in_background_merges_similar_segments),
        cmocka_unit_test(compaction_failure_at_any_step_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
