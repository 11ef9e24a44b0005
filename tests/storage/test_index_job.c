/*
 * test_index_job.c: segments flushed without their graph and indexed by
 * the background index job (storage/compaction.c, "The index job"), its
 * cancellation at close, the job queued at open, a crash at every file
 * system call of the job, and the idle merge (once per idle period).
 * Exact answers are checked against the oracle before, during and after
 * the job and across a restart.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/collection_int.h"
#include "util/fileio.h"
#include "util/pool.h"

#include "storage_oracle.h"

/* Rows of the flushed segment: above the test threshold below. */
#define ROWS 300
#define INLINE_ROWS 50

static int count_segment_files(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/segments", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static st_options index_opts(void) {
    return (st_options){.fsync = TDB_FSYNC_NONE, .memtable_max_docs = 100000,
                        .compaction_min_segments = 1000,
                        .vector_index = (st_vector_index){16, 100, ST_QUANT_NONE, 1}};
}

static size_t nsegs(st_collection *c) {
    uint64_t snap;
    st_view *v = st_view_acquire(c, &snap);
    size_t n = v->nsegs;
    st_view_release(v);
    return n;
}

static bool seg_has_graph(st_collection *c, size_t i) {
    uint64_t snap;
    st_view *v = st_view_acquire(c, &snap);
    assert_true(i < v->nsegs);
    bool g = v->segs[i]->hnsw != NULL;
    st_view_release(v);
    return g;
}

static int setup(void **state) {
    (void)state;
    st_test_index_inline_rows = INLINE_ROWS;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    st_test_index_inline_rows = 0;
    st_test_compaction_hook = NULL;
    return 0;
}

/* The hook runs in the index job after its output is written and before
 * it commits: the view still has the graph-less input. */
static fixture *hook_fixture;
static int hook_calls;

static void during_job(st_collection *c) {
    fixture *f = hook_fixture;
    assert_ptr_equal(c, f->c);
    hook_calls++;
    assert_int_equal(nsegs(c), 1);
    assert_false(seg_has_graph(c, 0));
    fixture_verify_all(f); /* exact answers before the swap */
    /* Writes and deletes while the job runs: kept by the swap. */
    oracle_upsert_range(f, 0, 20, 2);
    oracle_delete_range(f, 20, 40);
    fixture_verify_all(f);
}

static void index_job_keeps_answers_and_concurrent_writes(void **state) {
    (void)state;
    fixture f;
    st_options o = index_opts();
    fixture_open(&f, 0, TDB_METRIC_L2, &o);
    oracle_upsert_range(&f, 0, ROWS, 1);
    oracle_delete_range(&f, 290, 300); /* memtable tombstones: no rows */
    hook_fixture = &f;
    hook_calls = 0;
    st_test_compaction_hook = during_job;
    fixture_flush(&f); /* no pool: the index job runs before st_flush returns */
    st_test_compaction_hook = NULL;
    assert_int_equal(hook_calls, 1);
    assert_int_equal(nsegs(f.c), 1);
    assert_true(seg_has_graph(f.c, 0));
    assert_int_equal(atomic_load(&f.c->compactions), 1);
    fixture_verify_all(&f);
    assert_true(st_check(f.c));
    /* The replaced file went with its last reader. */
    assert_int_equal(count_segment_files(f.dir), 1);
    fixture_reopen(&f);
    assert_true(seg_has_graph(f.c, 0));
    fixture_verify_all(&f);
    assert_true(st_check(f.c));
    fixture_close(&f, true);
}

static void small_flush_builds_graph_inline(void **state) {
    (void)state;
    fixture f;
    st_options o = index_opts();
    fixture_open(&f, 0, TDB_METRIC_COSINE, &o);
    oracle_upsert_range(&f, 0, INLINE_ROWS - 1, 1);
    fixture_flush(&f);
    assert_true(seg_has_graph(f.c, 0));
    assert_int_equal(atomic_load(&f.c->compactions), 0); /* no job */
    fixture_verify_all(&f);
    fixture_close(&f, true);
}

/* Leaves f's collection with one graph-less segment of ROWS rows: the
 * index job is cancelled as a close would cancel it. */
static void make_graphless(fixture *f) {
    st_options o = index_opts();
    fixture_open(f, 0, TDB_METRIC_L2, &o);
    oracle_upsert_range(f, 0, ROWS - 1, 1);
    oracle_upsert(f, ROWS - 1, 1);
    atomic_store(&f->c->cancel, true);
    fixture_flush(f);
    atomic_store(&f->c->cancel, false);
}

static void cancelled_job_leaves_old_segment_and_open_indexes_it(void **state) {
    (void)state;
    fixture f;
    make_graphless(&f);
    /* Cancelled: nothing written, nothing failed, the old segment stays. */
    assert_int_equal(nsegs(f.c), 1);
    assert_false(seg_has_graph(f.c, 0));
    assert_false(atomic_load(&f.c->read_only));
    assert_int_equal(f.c->compaction_failures, 0);
    assert_int_equal(atomic_load(&f.c->compactions), 0);
    assert_int_equal(count_segment_files(f.dir), 1);
    fixture_verify_all(&f); /* scanned exactly meanwhile */
    /* An open finds it graph-less and queues the job on the pool. */
    pool *p = pool_create(1);
    assert_non_null(p);
    f.opts.background = p;
    fixture_reopen(&f);
    fixture_verify_all(&f);
    st_wait_background(f.c);
    assert_true(seg_has_graph(f.c, 0));
    fixture_verify_all(&f);
    assert_true(st_check(f.c));
    fixture_close(&f, false);
    pool_destroy(p);
    f.opts.background = NULL;
    fixture_reopen_closed(&f);
    assert_true(seg_has_graph(f.c, 0));
    assert_int_equal(count_segment_files(f.dir), 1);
    fixture_close(&f, true);
}

/* A SIGKILL at each counted file system call of the open that runs the
 * index job: the next open finds the old or the new segment (one of them,
 * exactly), nothing else left in segments/, and every answer right. */
static void crash_at_every_step_of_the_index_job(void **state) {
    (void)state;
    bool completed = false;
    for (uint64_t nth = 1; nth < 400 && !completed; nth++) {
        fixture f;
        make_graphless(&f);
        st_close(f.c);
        f.c = NULL;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            tdb_error err;
            st_collection *c;
            fio_crash_set(nth);
            if (st_open(f.dir, f.dim, f.metric, &f.opts, &c, &err) != 0) _exit(2);
            st_close(c);
            _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status)) {
            assert_int_equal(WEXITSTATUS(status), 0);
            completed = true;
        } else {
            assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        }
        /* Look without running the job again. */
        st_test_index_inline_rows = UINT32_MAX;
        fixture_reopen_closed(&f);
        assert_int_equal(nsegs(f.c), 1);
        assert_int_equal(count_segment_files(f.dir), 1);
        fixture_verify_all(&f);
        assert_true(st_check(f.c));
        if (completed) assert_true(seg_has_graph(f.c, 0));
        st_test_index_inline_rows = INLINE_ROWS;
        fixture_close(&f, true);
    }
    assert_true(completed);
}

static void wait_for_segments(st_collection *c, size_t want) {
    for (int i = 0; i < 6000 && nsegs(c) != want; i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(nsegs(c), want);
    st_wait_background(c);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void idle_merge_runs_once_per_idle_period(void **state) {
    (void)state;
    fixture f;
    st_options o = index_opts();
    st_test_index_inline_rows = UINT32_MAX; /* every graph inline: only merges count */
    fixture_open(&f, 0, TDB_METRIC_L2, &o);
    oracle_upsert_range(&f, 0, 40, 1);
    fixture_flush(&f);
    oracle_upsert_range(&f, 30, 80, 2);
    oracle_delete_range(&f, 0, 5);
    fixture_flush(&f);
    oracle_upsert_range(&f, 70, 120, 3);
    fixture_flush(&f);
    assert_int_equal(nsegs(f.c), 3);
    /* Reopened with the idle merge on: no write since the open, so the
     * timer is not armed and nothing merges. */
    f.opts.compaction_idle_merge_ms = 20;
    fixture_reopen(&f);
    sleep_ms(200);
    assert_int_equal(nsegs(f.c), 3);
    assert_false(f.c->idle_timer);
    /* A write and a flush arm it: one merge into one segment. */
    oracle_upsert_range(&f, 110, 130, 4);
    fixture_flush(&f);
    wait_for_segments(f.c, 1);
    uint64_t merges = atomic_load(&f.c->compactions);
    assert_int_equal(merges, 1);
    assert_true(seg_has_graph(f.c, 0));
    fixture_verify_all(&f);
    /* Idle on: no second merge (one segment, and one per idle period). */
    sleep_ms(200);
    assert_int_equal(atomic_load(&f.c->compactions), merges);
    /* The next idle period merges once more. */
    oracle_upsert_range(&f, 130, 140, 5);
    fixture_flush(&f);
    assert_int_equal(nsegs(f.c) + atomic_load(&f.c->compactions) - merges, 2);
    wait_for_segments(f.c, 1);
    assert_int_equal(atomic_load(&f.c->compactions), merges + 1);
    sleep_ms(200);
    assert_int_equal(atomic_load(&f.c->compactions), merges + 1);
    fixture_verify_all(&f);
    assert_true(st_check(f.c));
    fixture_reopen(&f);
    fixture_verify_all(&f);
    fixture_close(&f, true);
}

static void idle_merge_off_by_default_and_close_stops_timer(void **state) {
    (void)state;
    fixture f;
    st_options o = index_opts();
    fixture_open(&f, 0, TDB_METRIC_L2, &o);
    oracle_upsert_range(&f, 0, 20, 1);
    fixture_flush(&f);
    oracle_upsert_range(&f, 20, 40, 1);
    fixture_flush(&f);
    sleep_ms(100);
    assert_int_equal(nsegs(f.c), 2);
    /* A long idle period: the close does not wait for it. */
    f.opts.compaction_idle_merge_ms = 3600 * 1000;
    fixture_reopen(&f);
    oracle_upsert_range(&f, 40, 60, 1);
    fixture_flush(&f);
    assert_true(f.c->idle_timer);
    fixture_reopen(&f);
    assert_int_equal(nsegs(f.c), 3);
    fixture_verify_all(&f);
    fixture_close(&f, true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(index_job_keeps_answers_and_concurrent_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(small_flush_builds_graph_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelled_job_leaves_old_segment_and_open_indexes_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(crash_at_every_step_of_the_index_job, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_merge_runs_once_per_idle_period, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_merge_off_by_default_and_close_stops_timer, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
