/*
 * test_collection.c: the storage engine of one collection (storage.h)
 * against an in-memory oracle: point reads, ordered scans and exact search
 * for every metric across memtable and segments, overwrites and deletes
 * through flushes, reopen and WAL damage, concurrency, failures.
 * Compaction has its own file (test_compaction.c); the oracle and the
 * fixture are in storage_oracle.h.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/collection_int.h"
#include "util/clock.h"
#include "util/fileio.h"
#include "vec/vec.h"

#include "storage_oracle.h"

/* ---- tests ----------------------------------------------------------- */

static void collection_upsert_get_delete_round_trip(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    oracle_upsert_range(&f, 0, 10, 1);
    fixture_verify_gets(&f);
    st_record r;
    tdb_error err;
    assert_int_equal(st_get(f.c, "nope", 4, true, &r, &err), TDB_ENOTFOUND);
    size_t deleted = 99;
    st_key keys[2] = {{"doc00003", 8}, {"missing", 7}};
    assert_int_equal(st_delete(f.c, keys, 2, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    f.o.d[3].live = false;
    assert_int_equal(st_delete(f.c, keys, 1, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    fixture_verify_all(&f);
    /* A document without attributes reads back as "{}". */
    st_doc d = {"bare", 4, f.o.d[0].v, NULL, 0};
    assert_int_equal(st_upsert(f.c, &d, 1, &err), 0);
    assert_int_equal(st_get(f.c, "bare", 4, false, &r, &err), 0);
    assert_string_equal(r.attrs, "{}");
    assert_null(r.vector);
    st_record_free(&r);
    fixture_close(&f, true);
}

static void collection_batch_with_duplicate_ids_keeps_the_last(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    float a[ORACLE_DIM] = {1}, b[ORACLE_DIM] = {2};
    st_doc docs[3] = {{"x", 1, a, "{\"n\":1}", 7}, {"y", 1, a, NULL, 0}, {"x", 1, b, "{\"n\":2}", 7}};
    tdb_error err;
    assert_int_equal(st_upsert(f.c, docs, 3, &err), 0);
    st_record r;
    assert_int_equal(st_get(f.c, "x", 1, true, &r, &err), 0);
    assert_string_equal(r.attrs, "{\"n\":2}");
    assert_float_equal(r.vector[0], 2, 0);
    st_record_free(&r);
    st_stats s;
    st_stats_get(f.c, &s);
    assert_int_equal(s.documents, 2);
    /* Same after replay. */
    fixture_reopen(&f);
    assert_int_equal(st_get(f.c, "x", 1, true, &r, &err), 0);
    assert_string_equal(r.attrs, "{\"n\":2}");
    st_record_free(&r);
    st_stats_get(f.c, &s);
    assert_int_equal(s.documents, 2);
    fixture_close(&f, true);
}

static void collection_search_matches_brute_force_for_every_metric(void **state) {
    (void)state;
    tdb_metric metrics[3] = {TDB_METRIC_COSINE, TDB_METRIC_L2, TDB_METRIC_DOT};
    for (int m = 0; m < 3; m++) {
        fixture f;
        fixture_open(&f, 0, metrics[m], NULL);
        /* Two segments and a memtable, with overwrites and deletes that
         * cross them. */
        oracle_upsert_range(&f, 0, 200, 1);
        fixture_flush(&f);
        oracle_upsert_range(&f, 150, 350, 2);
        fixture_flush(&f);
        oracle_upsert_range(&f, 300, 400, 3);
        oracle_upsert_range(&f, 10, 30, 4);
        oracle_delete_range(&f, 100, 120);
        oracle_delete_range(&f, 340, 345);
        assert_true(st_check(f.c));
        for (int q = 0; q < 6; q++) {
            float query[ORACLE_DIM];
            oracle_vector(query, 1000 + q, 7);
            fixture_verify_search(&f, query, 10, false);
            fixture_verify_search(&f, query, 1, false);
            fixture_verify_search(&f, query, 10, true); /* even ids only */
        }
        float query[ORACLE_DIM];
        oracle_vector(query, 5000, 1);
        fixture_verify_search(&f, query, 10000, false); /* more than there are */
        fixture_close(&f, true);
    }
}

static void collection_search_returns_vectors_and_ties_by_id(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    float v[ORACLE_DIM] = {1, 1};
    st_doc docs[3] = {{"c", 1, v, NULL, 0}, {"a", 1, v, NULL, 0}, {"b", 1, v, NULL, 0}};
    tdb_error err;
    assert_int_equal(st_upsert(f.c, docs, 1, &err), 0);
    fixture_flush(&f);
    assert_int_equal(st_upsert(f.c, docs + 1, 2, &err), 0);
    st_hit *hits;
    size_t n;
    assert_int_equal(st_search(f.c, v, 2, NULL, NULL, true, &hits, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(hits[0].rec.id, "a");
    assert_string_equal(hits[1].rec.id, "b");
    assert_float_equal(hits[0].distance, 0, 0);
    assert_memory_equal(hits[0].rec.vector, v, sizeof v);
    st_hits_free(hits, n);
    fixture_close(&f, true);
}

static void collection_overwrites_across_memtable_and_segments_read_newest(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_COSINE, NULL);
    oracle_upsert_range(&f, 0, 50, 1);
    fixture_flush(&f);
    oracle_upsert_range(&f, 0, 25, 2);
    fixture_flush(&f);
    oracle_upsert_range(&f, 0, 10, 3);
    fixture_verify_all(&f);
    st_stats s;
    st_stats_get(f.c, &s);
    assert_int_equal(s.documents, 50);
    assert_int_equal(s.segments, 2);
    assert_int_equal(s.indexed_documents, 40);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    fixture_close(&f, true);
}

static void collection_deletes_stay_deleted_after_flush_and_reopen(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    oracle_upsert_range(&f, 0, 60, 1);
    fixture_flush(&f);
    oracle_delete_range(&f, 0, 20);  /* rows only in a segment: marks */
    oracle_upsert_range(&f, 40, 50, 2);
    oracle_delete_range(&f, 45, 50); /* memtable versions: tombstones */
    fixture_verify_all(&f);
    fixture_flush(&f);
    fixture_verify_all(&f);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    /* Deleted again after reopen, and re-created. */
    oracle_delete_range(&f, 0, 5);
    oracle_upsert_range(&f, 0, 3, 9);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    fixture_close(&f, true);
}

static void collection_scan_pages_return_each_live_id_once_in_order(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    /* Interleaved ids across three segments and the memtable. */
    for (int s = 0; s < 3; s++) {
        for (int i = s; i < 300; i += 4) oracle_upsert(&f, i, s + 1);
        fixture_flush(&f);
    }
    for (int i = 3; i < 300; i += 4) oracle_upsert(&f, i, 7);
    oracle_upsert_range(&f, 100, 140, 8);
    oracle_delete_range(&f, 130, 160);
    size_t pages[] = {1, 7, 64, 1000};
    for (size_t p = 0; p < sizeof pages / sizeof *pages; p++) {
        fixture_verify_scan(&f, pages[p], false);
        fixture_verify_scan(&f, pages[p], true);
    }
    fixture_close(&f, true);
}

static void collection_reopen_recovers_every_acknowledged_write(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_DOT, NULL);
    oracle_upsert_range(&f, 0, 100, 1);
    fixture_reopen(&f); /* WAL only */
    fixture_verify_all(&f);
    fixture_flush(&f);
    oracle_upsert_range(&f, 50, 150, 2);
    oracle_delete_range(&f, 0, 10);
    fixture_reopen(&f); /* segment + WAL */
    fixture_verify_all(&f);
    const st_recovery *r = st_recovery_get(f.c);
    assert_int_equal(r->records_replayed, (100 + ORACLE_BATCH - 1) / ORACLE_BATCH + 1);
    assert_false(r->corrupt);
    fixture_flush(&f);
    fixture_reopen(&f); /* segments only */
    fixture_verify_all(&f);
    assert_int_equal(st_recovery_get(f.c)->records_replayed, 0);
    assert_true(st_check(f.c));
    fixture_close(&f, true);
}

static void collection_zero_dimension_stores_documents_without_vectors(void **state) {
    (void)state;
    fixture f;
    fixture_open_dim(&f, 0, 0, TDB_METRIC_COSINE, NULL);
    st_doc d = {"t1", 2, NULL, "{\"title\":\"x\"}", 13};
    tdb_error err;
    assert_int_equal(st_upsert(f.c, &d, 1, &err), 0);
    fixture_flush(&f);
    fixture_reopen(&f);
    st_record r;
    assert_int_equal(st_get(f.c, "t1", 2, true, &r, &err), 0);
    assert_null(r.vector);
    assert_string_equal(r.attrs, "{\"title\":\"x\"}");
    st_record_free(&r);
    st_hit *h;
    size_t n;
    float q = 0;
    assert_int_equal(st_search(f.c, &q, 1, NULL, NULL, false, &h, &n, &err), TDB_EINVAL);
    fixture_close(&f, true);
}

/* ---- WAL damage ------------------------------------------------------ */

/* The single .wal file of the fixture's collection. */
static void wal_file_path(const fixture *f, char *out, size_t size) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/wal", f->dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".wal") == 0) {
            int64_t sz;
            snprintf(out, size, "%s/%s", dir, e->d_name);
            sz = fio_file_size(out);
            if (sz > 20) found++;
            if (sz > 20) break;
        }
    }
    closedir(d);
    assert_int_equal(found, 1);
}

static void collection_torn_wal_tail_is_dropped_on_reopen(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    for (int i = 0; i < 20; i++) oracle_upsert(&f, i, 1); /* one record each */
    fixture_close(&f, false);
    char path[1200];
    wal_file_path(&f, path, sizeof path);
    int64_t size = fio_file_size(path);
    assert_int_equal(truncate(path, size - 3), 0); /* the last record loses its end */
    f.o.d[19].live = false;
    fixture_reopen_closed(&f);
    const st_recovery *r = st_recovery_get(f.c);
    assert_false(r->corrupt);
    assert_true(r->torn_bytes > 0);
    assert_int_equal(r->records_replayed, 19);
    fixture_verify_all(&f);
    /* Writes continue after the cut, and survive another reopen. */
    oracle_upsert(&f, 19, 2);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    assert_int_equal(st_recovery_get(f.c)->torn_bytes, 0);
    fixture_close(&f, true);
}

static void collection_corrupt_wal_record_is_reported_and_prefix_kept(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    for (int i = 0; i < 40; i++) oracle_upsert(&f, i, 1);
    fixture_close(&f, false);
    char path[1200];
    wal_file_path(&f, path, sizeof path);
    int64_t size = fio_file_size(path);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, (long)(size / 2), SEEK_SET);
    int ch = fgetc(fp);
    fseek(fp, (long)(size / 2), SEEK_SET);
    fputc(ch ^ 0x5A, fp);
    fclose(fp);
    fixture_reopen_closed(&f);
    const st_recovery *r = st_recovery_get(f.c);
    assert_true(r->corrupt);
    assert_true(r->bytes_lost > 0);
    assert_non_null(strstr(r->message, "corrupt"));
    /* A prefix of the writes survived, nothing after the damage. */
    uint64_t kept = r->records_replayed;
    assert_true(kept > 0 && kept < 40);
    for (int i = (int)kept; i < 40; i++) f.o.d[i].live = false;
    fixture_verify_all(&f);
    /* The collection is writable, and the recovered prefix is durable even
     * though the damaged file was moved aside. */
    oracle_upsert(&f, 39, 5);
    fixture_reopen(&f);
    assert_false(st_recovery_get(f.c)->corrupt);
    fixture_verify_all(&f);
    assert_true(st_check(f.c));
    fixture_close(&f, true);
}

/* Deletes of rows that only a segment held leave no memtable entry; the
 * recovered prefix must still keep them once the damaged file is moved
 * aside. */
static void collection_corrupt_wal_keeps_deletes_of_segment_rows(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    oracle_upsert_range(&f, 0, 20, 1);
    fixture_flush(&f);
    for (int i = 0; i < 5; i++) oracle_delete_range(&f, i, i + 1);
    for (int i = 20; i < 40; i++) oracle_upsert(&f, i, 1);
    fixture_close(&f, false);
    char path[1200];
    wal_file_path(&f, path, sizeof path);
    /* Damage the first upsert after the deletes (its vector bytes), so the
     * recovered prefix holds nothing but marks. */
    char *data;
    size_t size;
    assert_int_equal(fio_read_file(path, &data, &size), 0);
    char *at = memmem(data, size, f.o.d[20].v, sizeof f.o.d[20].v);
    assert_non_null(at);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, (long)(at - data), SEEK_SET);
    fputc(*at ^ 0x01, fp);
    fclose(fp);
    free(data);
    fixture_reopen_closed(&f);
    const st_recovery *r = st_recovery_get(f.c);
    assert_true(r->corrupt);
    uint64_t upserts_kept = r->records_replayed - 5;
    assert_int_equal(upserts_kept, 0);
    for (int i = 20 + (int)upserts_kept; i < 40; i++) f.o.d[i].live = false;
    fixture_verify_all(&f);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    fixture_close(&f, true);
}

/* A stream of deletes of segment rows adds nothing to the memtable but
 * still gets flushed, so the WAL does not grow without bound. */
static void collection_deletes_of_segment_rows_trigger_flushes(void **state) {
    (void)state;
    st_options o = {.memtable_max_docs = 10};
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, &o);
    oracle_upsert_range(&f, 0, 9, 1);
    fixture_flush(&f);
    st_stats s;
    st_stats_get(f.c, &s);
    uint64_t flushes = s.flushes;
    for (int i = 0; i < 9; i++) oracle_delete_range(&f, i, i + 1);
    oracle_upsert_range(&f, 100, 102, 1); /* with the 9 marks: at the limit */
    st_stats_get(f.c, &s);
    assert_true(s.flushes > flushes);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    assert_true(st_recovery_get(f.c)->records_replayed <= 1);
    fixture_close(&f, true);
}

/* ---- failures -------------------------------------------------------- */

static void collection_fsync_failure_makes_it_read_only_but_readable(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_COSINE, NULL);
    oracle_upsert_range(&f, 0, 30, 1);
    fixture_flush(&f);
    oracle_upsert_range(&f, 30, 40, 1);
    /* An upsert under fsync=always makes two counted calls: the write and
     * the fsync. Fail the fsync. */
    fio_fault_set(2, EIO, false);
    float v[ORACLE_DIM];
    oracle_vector(v, 99, 1);
    st_doc d = {"late", 4, v, NULL, 0};
    tdb_error err;
    int rc = st_upsert(f.c, &d, 1, &err);
    fio_fault_clear();
    assert_int_equal(rc, TDB_EREADONLY);
    st_stats s;
    st_stats_get(f.c, &s);
    assert_true(s.read_only);
    assert_int_equal(st_upsert(f.c, &d, 1, &err), TDB_EREADONLY);
    assert_non_null(strstr(err.message, "read-only"));
    size_t deleted;
    st_key k = {"doc00001", 8};
    assert_int_equal(st_delete(f.c, &k, 1, &deleted, &err), TDB_EREADONLY);
    /* Reads still work, and see exactly the acknowledged writes. */
    fixture_verify_all(&f);
    fixture_close(&f, true);
}

/* Every counted I/O call of a flush, failed in turn with EIO and with
 * ENOSPC: the flush completes, or fails and then either the collection is
 * read-only (an fsync failed: never retried) or nothing durable changed:
 * the failure is reported, writes go on, and the next flush on the same
 * handle succeeds. A reopen always finds every acknowledged write. */
static void collection_failed_flush_loses_nothing(void **state) {
    (void)state;
    /* Retries only when the test asks (st_flush); closing must not wait
     * for the retry timer's hour. */
    st_test_flush_retry_ms = 3600u * 1000u;
    int errnos[2] = {EIO, ENOSPC};
    for (int k = 0; k < 2; k++) {
        unsigned read_only = 0, resumed = 0;
        for (uint64_t nth = 1;; nth++) {
            fixture f;
            fixture_open(&f, 0, TDB_METRIC_L2, NULL);
            oracle_upsert_range(&f, 0, 20, 1);
            fixture_flush(&f);
            oracle_upsert_range(&f, 10, 30, 2);
            oracle_delete_range(&f, 0, 5);
            uint64_t before = fio_calls();
            fio_fault_set(nth, errnos[k], false);
            tdb_error err;
            int rc = st_flush(f.c, &err);
            uint64_t calls = fio_calls() - before;
            fio_fault_clear();
            bool hit = calls >= nth;
            st_stats s;
            st_stats_get(f.c, &s);
            char problem[600];
            if (rc < 0 && s.read_only) {
                read_only++;
            } else if (rc < 0) {
                /* Reported, not sticky: writes and the next flush work. */
                const char *kind = st_write_problem(f.c, problem, sizeof problem);
                assert_non_null(kind);
                if (errnos[k] == ENOSPC) {
                    assert_string_equal(kind, "disk_full");
                    assert_non_null(strstr(problem, "disk full"));
                }
                oracle_upsert_range(&f, 40, 45, 3);
                fixture_verify_all(&f);
                fixture_flush(&f);
                assert_null(st_write_problem(f.c, problem, sizeof problem));
                resumed++;
            }
            fixture_verify_all(&f);
            fixture_reopen(&f);
            fixture_verify_all(&f);
            assert_true(st_check(f.c));
            fixture_close(&f, true);
            if (!hit) break;
            assert_true(nth < 200);
        }
        /* The segment's fsync fails the flush for good; creating or
         * writing its file does not. */
        assert_true(read_only > 0);
        assert_true(resumed > 0);
    }
    st_test_flush_retry_ms = 0;
}

/* Opens f with opts and fails one flush so that it is retryable: one
 * fault of err_no at each counted call in turn until a flush fails and
 * leaves the collection writable (creating the segment file, typically).
 * The memtable then holds ids 0..7, frozen. */
static void open_with_failed_flush(fixture *f, const st_options *opts, int err_no) {
    for (uint64_t nth = 1;; nth++) {
        assert_true(nth < 100);
        fixture_open(f, 0, TDB_METRIC_L2, opts);
        oracle_upsert_range(f, 0, 8, 1);
        fio_fault_set(nth, err_no, false);
        tdb_error err;
        int rc = st_flush(f->c, &err);
        fio_fault_clear();
        st_stats s;
        st_stats_get(f->c, &s);
        if (rc < 0 && !s.read_only) return;
        fixture_close(f, true);
    }
}

/* A full disk during a flush: the frozen memtable stays readable, writes
 * go on until the active memtable reaches its hard cap, then are refused
 * with a clear error and change nothing; once a flush works again (here an
 * explicit one) writes are taken again on the same handle. */
static void collection_flush_failing_for_space_refuses_writes_at_the_hard_cap(void **state) {
    (void)state;
    st_test_flush_retry_ms = 3600u * 1000u; /* no retry unless asked */
    st_options o = {.memtable_max_docs = 10};
    fixture f;
    open_with_failed_flush(&f, &o, ENOSPC);
    char problem[600];
    const char *kind = st_write_problem(f.c, problem, sizeof problem);
    assert_non_null(kind);
    assert_string_equal(kind, "disk_full");
    assert_non_null(strstr(problem, "No space left on device"));
    /* The hard cap is 2 x 10 entries in the active memtable. */
    for (int i = 100; i < 100 + (int)ST_MEMTABLE_HARD_CAP_FACTOR * 10; i++) oracle_upsert(&f, i, 1);
    float v[ORACLE_DIM];
    oracle_vector(v, 500, 1);
    st_doc d = {"doc00500", 8, v, NULL, 0};
    tdb_error err;
    assert_int_equal(st_upsert(f.c, &d, 1, &err), TDB_EBUSY);
    assert_string_equal(err.name, "disk_full");
    assert_non_null(strstr(err.message, "disk full"));
    st_key key = {"doc00001", 8};
    size_t deleted = 9;
    assert_int_equal(st_delete(f.c, &key, 1, &deleted, &err), TDB_EBUSY);
    /* Refused writes changed nothing; everything else reads back. */
    st_record r;
    assert_int_equal(st_get(f.c, "doc00500", 8, false, &r, &err), TDB_ENOTFOUND);
    fixture_verify_all(&f);
    st_stats s;
    st_stats_get(f.c, &s);
    assert_false(s.read_only);
    assert_int_equal(s.flushes, 0);
    /* Space is back: the retry flushes, and writes are taken again. */
    fixture_flush(&f);
    assert_null(st_write_problem(f.c, problem, sizeof problem));
    oracle_upsert(&f, 500, 1);
    oracle_delete_range(&f, 1, 2);
    fixture_verify_all(&f);
    assert_true(st_check(f.c));
    fixture_reopen(&f);
    fixture_verify_all(&f);
    fixture_close(&f, true);
    st_test_flush_retry_ms = 0;
}

/* Nobody writes or flushes after a failed flush: the retry timer retries
 * by itself, and the problem clears. */
static void collection_flush_retry_timer_retries_by_itself(void **state) {
    (void)state;
    st_test_flush_retry_ms = 10;
    fixture f;
    open_with_failed_flush(&f, NULL, ENOSPC);
    char problem[600];
    /* Poll (no sleeps for synchronisation) until the retry succeeded. */
    uint64_t deadline = clock_mono_ns() + 20ull * 1000000000ull;
    while (st_write_problem(f.c, problem, sizeof problem) != NULL) {
        assert_true(clock_mono_ns() < deadline);
        sched_yield();
    }
    st_stats s;
    st_stats_get(f.c, &s);
    assert_int_equal(s.flushes, 1);
    assert_false(s.read_only);
    fixture_verify_all(&f);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    assert_int_equal(st_recovery_get(f.c)->records_replayed, 0);
    fixture_close(&f, true);
    st_test_flush_retry_ms = 0;
}

/* A restart while the disk is full: the replay fills the memtable and its
 * flush fails for lack of space. The collection still opens, with every
 * write readable (the rest of the replay stays in memory) and writable;
 * the flush is retried, and a reopen after it finds everything. */
static void collection_replay_survives_a_failed_flush(void **state) {
    (void)state;
    st_test_flush_retry_ms = 3600u * 1000u; /* no retry unless asked */
    bool found = false;
    for (uint64_t nth = 1; !found; nth++) {
        assert_true(nth < 200);
        fixture f;
        fixture_open(&f, 0, TDB_METRIC_L2, NULL);
        oracle_upsert_range(&f, 0, 40, 1);
        oracle_delete_range(&f, 3, 6);
        st_close(f.c);
        /* Reopened with a small memtable: the replay has to flush. */
        f.opts.memtable_max_docs = 10;
        fio_fault_set(nth, ENOSPC, false);
        tdb_error err;
        int rc = st_open(f.dir, f.dim, f.metric, &f.opts, &f.c, &err);
        fio_fault_clear();
        if (rc != 0) {
            f.c = NULL;
        } else {
            char problem[600];
            st_stats s;
            st_stats_get(f.c, &s);
            if (!s.read_only && st_write_problem(f.c, problem, sizeof problem) != NULL) {
                found = true;
                fixture_verify_all(&f);
                /* The replay left the memtable over its hard cap: writes
                 * wait for a flush that works. */
                st_key key = {"doc00001", 8};
                size_t deleted;
                assert_int_equal(st_delete(f.c, &key, 1, &deleted, &err), TDB_EBUSY);
                assert_string_equal(err.name, "disk_full");
                fixture_flush(&f); /* the frozen memtable */
                assert_null(st_write_problem(f.c, problem, sizeof problem));
                oracle_upsert_range(&f, 50, 55, 2); /* flushes the rest first */
                fixture_verify_all(&f);
                assert_true(st_check(f.c));
            }
        }
        fixture_reopen(&f);
        fixture_verify_all(&f);
        fixture_close(&f, true);
    }
    st_test_flush_retry_ms = 0;
}

/* The memtable's text indexes count towards the flush trigger: one small
 * document whose entry is far under memtable_max_bytes, but whose text
 * index (hash table, term arena, row table) is over it, starts a flush. */
static void collection_text_index_memory_counts_towards_the_flush_trigger(void **state) {
    (void)state;
    st_text_field field = {.name = "body"};
    text_analyzer_config_default(&field.analyzer);
    for (int with_text = 0; with_text < 2; with_text++) {
        st_options o = {.memtable_max_bytes = 16u << 10, .memtable_max_docs = 100000};
        if (with_text) {
            o.text_fields = &field;
            o.n_text_fields = 1;
        }
        fixture f;
        fixture_open(&f, 0, TDB_METRIC_L2, &o);
        float v[ORACLE_DIM] = {1};
        const char *attrs = "{\"body\":\"a few words of text\"}";
        st_doc d = {"t1", 2, v, attrs, (uint32_t)strlen(attrs)};
        tdb_error err;
        assert_int_equal(st_upsert(f.c, &d, 1, &err), 0);
        st_stats s;
        st_stats_get(f.c, &s);
        /* Without a pool the write that crossed the limit flushed. */
        assert_int_equal(s.flushes, with_text ? 1 : 0);
        if (with_text) {
            /* ... and the new memtable counts its own index from its first
             * write on. */
            assert_int_equal(st_upsert(f.c, &d, 1, &err), 0);
            st_stats_get(f.c, &s);
            assert_int_equal(s.flushes, 2);
        } else {
            assert_true(s.memory_bytes < o.memtable_max_bytes);
        }
        fixture_close(&f, true);
    }
}

/* ---- concurrency ------------------------------------------------------ */

enum { WRITERS = 3, READERS = 2, PER_WRITER = 400, CONC_IDS = 300 };

typedef struct conc {
    fixture *f;
    _Atomic int writers_done;
    _Atomic int failures;
} conc;

typedef struct writer_arg {
    conc *cc;
    int w;
} writer_arg;

/* Writer w owns the ids i with i % WRITERS == w, so the final value of each
 * id is known: writes of one thread are applied in its order. */
static void *conc_writer(void *arg) {
    writer_arg *wa = arg;
    fixture *f = wa->cc->f;
    for (int round = 0; round < PER_WRITER; round++) {
        int i = (round * 37 + wa->w) % CONC_IDS;
        i -= i % WRITERS;
        i += wa->w;
        if (i >= CONC_IDS) continue;
        tdb_error err;
        if (round % 5 == 4) {
            char id[16];
            size_t deleted;
            oracle_id(id, i);
            st_key k = {id, (uint32_t)strlen(id)};
            if (st_delete(f->c, &k, 1, &deleted, &err) != 0) atomic_fetch_add(&wa->cc->failures, 1);
            f->o.d[i].live = false;
        } else {
            odoc *d = &f->o.d[i];
            oracle_fill(d, i, round + 1);
            char id[16];
            oracle_id(id, i);
            st_doc doc = {id, (uint32_t)strlen(id), d->v, d->attrs, (uint32_t)strlen(d->attrs)};
            if (st_upsert(f->c, &doc, 1, &err) != 0) atomic_fetch_add(&wa->cc->failures, 1);
            d->live = true;
        }
    }
    atomic_fetch_add(&wa->cc->writers_done, 1);
    return NULL;
}

/* Readers check what holds at any instant: scans are strictly ordered with
 * no duplicates, searches return k sorted hits, gets never fail oddly. */
static void *conc_reader(void *arg) {
    conc *cc = arg;
    fixture *f = cc->f;
    float q[ORACLE_DIM];
    oracle_vector(q, 4242, 1);
    while (atomic_load(&cc->writers_done) < WRITERS) {
        st_record *recs;
        size_t n;
        tdb_error err;
        if (st_scan(f->c, NULL, 0, 100000, false, NULL, NULL, &recs, &n, &err) != 0) {
            atomic_fetch_add(&cc->failures, 1);
            break;
        }
        for (size_t i = 1; i < n; i++)
            if (strcmp(recs[i - 1].id, recs[i].id) >= 0) atomic_fetch_add(&cc->failures, 1);
        st_records_free(recs, n);
        st_hit *hits;
        if (st_search(f->c, q, 5, NULL, NULL, false, &hits, &n, &err) != 0) {
            atomic_fetch_add(&cc->failures, 1);
            break;
        }
        for (size_t i = 1; i < n; i++)
            if (hits[i - 1].distance > hits[i].distance) atomic_fetch_add(&cc->failures, 1);
        st_hits_free(hits, n);
    }
    return NULL;
}

static void collection_concurrent_writers_and_readers_agree_with_oracle(void **state) {
    (void)state;
    pool *p = pool_create(2);
    assert_non_null(p);
    st_options o = {.fsync = TDB_FSYNC_NONE, .memtable_max_docs = 64, .compaction_min_segments = 3,
                    .background = p};
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_COSINE, &o);
    conc cc = {.f = &f};
    pthread_t wt[WRITERS], rt[READERS];
    writer_arg wa[WRITERS];
    for (int i = 0; i < READERS; i++) assert_int_equal(pthread_create(&rt[i], NULL, conc_reader, &cc), 0);
    for (int w = 0; w < WRITERS; w++) {
        wa[w] = (writer_arg){&cc, w};
        assert_int_equal(pthread_create(&wt[w], NULL, conc_writer, &wa[w]), 0);
    }
    for (int w = 0; w < WRITERS; w++) pthread_join(wt[w], NULL);
    for (int i = 0; i < READERS; i++) pthread_join(rt[i], NULL);
    assert_int_equal(atomic_load(&cc.failures), 0);
    fixture_verify_all(&f);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    st_stats s;
    st_stats_get(f.c, &s);
    fixture_close(&f, true);
    pool_destroy(p);
    assert_true(s.documents <= CONC_IDS);
}

static void collection_background_flush_and_compaction_keep_everything(void **state) {
    (void)state;
    pool *p = pool_create(1);
    st_options o = {.fsync = TDB_FSYNC_NONE, .memtable_max_docs = 50, .compaction_min_segments = 3,
                    .background = p};
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, &o);
    for (int round = 0; round < 12; round++) {
        oracle_upsert_range(&f, round * 40, round * 40 + 60, round + 1);
        oracle_delete_range(&f, round * 40, round * 40 + 5);
    }
    /* Poll (no sleeps for synchronisation) until the jobs are idle. */
    uint64_t deadline = clock_mono_ns() + 20ull * 1000000000ull;
    for (;;) {
        pthread_mutex_lock(&f.c->write_mu);
        uint32_t pending = f.c->jobs_pending;
        pthread_mutex_unlock(&f.c->write_mu);
        if (pending == 0) break;
        assert_true(clock_mono_ns() < deadline);
        sched_yield();
    }
    st_stats s;
    st_stats_get(f.c, &s);
    assert_true(s.flushes >= 5);
    assert_true(s.compactions >= 1);
    assert_true(st_check(f.c));
    fixture_verify_all(&f);
    fixture_reopen(&f);
    fixture_verify_all(&f);
    fixture_close(&f, true);
    pool_destroy(p);
}

static void collection_stats_count_documents_segments_and_bytes(void **state) {
    (void)state;
    fixture f;
    fixture_open(&f, 0, TDB_METRIC_L2, NULL);
    st_stats s;
    st_stats_get(f.c, &s);
    assert_int_equal(s.documents, 0);
    assert_int_equal(s.segments, 0);
    assert_false(s.read_only);
    oracle_upsert_range(&f, 0, 100, 1);
    st_stats_get(f.c, &s);
    assert_int_equal(s.documents, 100);
    assert_int_equal(s.indexed_documents, 0);
    assert_true(s.memory_bytes >= 100 * ORACLE_DIM * sizeof(float));
    assert_true(s.wal_bytes_written > 100 * ORACLE_DIM * sizeof(float));
    assert_true(s.wal_fsyncs >= 100 / ORACLE_BATCH);
    fixture_flush(&f);
    st_stats_get(f.c, &s);
    assert_int_equal(s.documents, 100);
    assert_int_equal(s.indexed_documents, 100);
    assert_int_equal(s.segments, 1);
    assert_int_equal(s.flushes, 1);
    assert_true(s.disk_bytes >= 100 * ORACLE_DIM * sizeof(float));
    oracle_delete_range(&f, 0, 10);
    oracle_upsert_range(&f, 90, 110, 2);
    st_stats_get(f.c, &s);
    assert_int_equal(s.documents, 100);
    assert_int_equal(s.indexed_documents, 80);
    fixture_reopen(&f);
    st_stats_get(f.c, &s);
    assert_int_equal(s.documents, 100);
    assert_int_equal(s.indexed_documents, 80);
    fixture_close(&f, true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(collection_upsert_get_delete_round_trip),
        cmocka_unit_test(collection_batch_with_duplicate_ids_keeps_the_last),
        cmocka_unit_test(collection_search_matches_brute_force_for_every_metric),
        cmocka_unit_test(collection_search_returns_vectors_and_ties_by_id),
        cmocka_unit_test(collection_overwrites_across_memtable_and_segments_read_newest),
        cmocka_unit_test(collection_deletes_stay_deleted_after_flush_and_reopen),
        cmocka_unit_test(collection_scan_pages_return_each_live_id_once_in_order),
        cmocka_unit_test(collection_reopen_recovers_every_acknowledged_write),
        cmocka_unit_test(collection_zero_dimension_stores_documents_without_vectors),
        cmocka_unit_test(collection_torn_wal_tail_is_dropped_on_reopen),
        cmocka_unit_test(collection_corrupt_wal_record_is_reported_and_prefix_kept),
        cmocka_unit_test(collection_corrupt_wal_keeps_deletes_of_segment_rows),
        cmocka_unit_test(collection_deletes_of_segment_rows_trigger_flushes),
        cmocka_unit_test(collection_fsync_failure_makes_it_read_only_but_readable),
        cmocka_unit_test(collection_failed_flush_loses_nothing),
        cmocka_unit_test(collection_flush_failing_for_space_refuses_writes_at_the_hard_cap),
        cmocka_unit_test(collection_flush_retry_timer_retries_by_itself),
        cmocka_unit_test(collection_replay_survives_a_failed_flush),
        cmocka_unit_test(collection_text_index_memory_counts_towards_the_flush_trigger),
        cmocka_unit_test(collection_concurrent_writers_and_readers_agree_with_oracle),
        cmocka_unit_test(collection_background_flush_and_compaction_keep_everything),
        cmocka_unit_test(collection_stats_count_documents_segments_and_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
