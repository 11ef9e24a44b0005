/*
 * storage_oracle.h: test support for the storage engine tests: a temp-dir
 * fixture around one st_collection and an in-memory oracle of what it
 * must hold (ids "doc00000".., deterministic vectors and attributes), with
 * checks of get, scan and exact search against brute force.
 * Included by tests/storage/test_collection.c and test_compaction.c only
 * (after cmocka.h); every function is static.
 */
#ifndef TDB_TESTS_STORAGE_ORACLE_H
#define TDB_TESTS_STORAGE_ORACLE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"
#include "util/fileio.h"
#include "vec/vec.h"

#define ORACLE_DIM 8
#define ORACLE_MAX 1000
#define ORACLE_BATCH 16

typedef struct odoc {
    bool live;
    float v[ORACLE_DIM];
    char attrs[64];
} odoc;

typedef struct oracle {
    odoc *d; /* ORACLE_MAX entries, indexed by the number in the id */
} oracle;

typedef struct fixture {
    char *dir;
    st_collection *c;
    st_options opts;
    uint32_t dim;
    tdb_metric metric;
    oracle o;
} fixture;

static void oracle_id(char out[16], int i) { snprintf(out, 16, "doc%05d", i); }

/* Deterministic, never the zero vector (cosine rejects it). */
static void oracle_vector(float *v, int i, int version) {
    uint32_t x = (uint32_t)i * 2654435761u ^ (uint32_t)version * 40503u ^ 0x9E3779B9u;
    for (int k = 0; k < ORACLE_DIM; k++) {
        x = x * 1664525u + 1013904223u;
        v[k] = (float)((x >> 8) % 2001) / 1000.0f - 1.0f;
    }
    v[0] += 0.01f + (float)(i % 7) * 0.25f;
}

static void oracle_fill(odoc *d, int i, int version) {
    oracle_vector(d->v, i, version);
    snprintf(d->attrs, sizeof d->attrs, "{\"i\":%d,\"v\":%d,\"even\":%s}", i, version,
             i % 2 == 0 ? "true" : "false");
}

static bool filter_even(void *ctx, const char *id, uint32_t id_len, const char *attrs,
                        uint32_t attrs_len) {
    (void)ctx;
    (void)id;
    (void)id_len;
    /* attrs is not NUL-terminated when it points into a segment. */
    static const char needle[] = "\"even\":true";
    return memmem(attrs, attrs_len, needle, sizeof needle - 1) != NULL;
}

static char *test_tmpdir(void) {
    const char *base = getenv("TDB_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    assert_int_equal(fio_mkdir_p(base), 0);
    size_t n = strlen(base) + 32;
    char *t = malloc(n);
    snprintf(t, n, "%s/storage-XXXXXX", base);
    assert_non_null(mkdtemp(t));
    return t;
}

static void fixture_reopen_closed(fixture *f) {
    tdb_error err;
    int rc = st_open(f->dir, f->dim, f->metric, &f->opts, &f->c, &err);
    if (rc != 0) fail_msg("st_open: %s", err.message);
}

static void fixture_open_dim(fixture *f, int unused, uint32_t dim, tdb_metric metric,
                             const st_options *opts) {
    (void)unused;
    memset(f, 0, sizeof *f);
    f->dir = test_tmpdir();
    f->dim = dim;
    f->metric = metric;
    if (opts) f->opts = *opts;
    f->o.d = calloc(ORACLE_MAX, sizeof *f->o.d);
    assert_non_null(f->o.d);
    fixture_reopen_closed(f);
}

static void fixture_open(fixture *f, int unused, tdb_metric metric, const st_options *opts) {
    fixture_open_dim(f, unused, ORACLE_DIM, metric, opts);
}

static void fixture_close(fixture *f, bool remove) {
    st_close(f->c);
    f->c = NULL;
    if (!remove) return;
    fio_rmtree(f->dir);
    free(f->dir);
    free(f->o.d);
    f->dir = NULL;
}

static void fixture_reopen(fixture *f) {
    st_close(f->c);
    fixture_reopen_closed(f);
}

static void fixture_flush(fixture *f) {
    tdb_error err;
    int rc = st_flush(f->c, &err);
    if (rc != 0) fail_msg("st_flush: %s", err.message);
}

static void oracle_upsert(fixture *f, int i, int version) {
    odoc *d = &f->o.d[i];
    oracle_fill(d, i, version);
    char id[16];
    oracle_id(id, i);
    st_doc doc = {id, (uint32_t)strlen(id), d->v, d->attrs, (uint32_t)strlen(d->attrs)};
    tdb_error err;
    int rc = st_upsert(f->c, &doc, 1, &err);
    if (rc != 0) fail_msg("st_upsert: %s", err.message);
    d->live = true;
}

/* Upserts ids [from, to) in batches. */
static void oracle_upsert_range(fixture *f, int from, int to, int version) {
    for (int start = from; start < to; start += ORACLE_BATCH) {
        st_doc docs[ORACLE_BATCH];
        char ids[ORACLE_BATCH][16];
        int n = 0;
        for (int i = start; i < to && n < ORACLE_BATCH; i++, n++) {
            odoc *d = &f->o.d[i];
            oracle_fill(d, i, version);
            oracle_id(ids[n], i);
            docs[n] = (st_doc){ids[n], (uint32_t)strlen(ids[n]), d->v, d->attrs,
                               (uint32_t)strlen(d->attrs)};
        }
        tdb_error err;
        int rc = st_upsert(f->c, docs, (size_t)n, &err);
        if (rc != 0) fail_msg("st_upsert: %s", err.message);
        for (int i = start; i < start + n; i++) f->o.d[i].live = true;
    }
}

/* Deletes ids [from, to) in one batch; checks the count of live ones. */
static void oracle_delete_range(fixture *f, int from, int to) {
    int n = to - from;
    st_key *keys = calloc((size_t)n, sizeof *keys);
    char (*ids)[16] = calloc((size_t)n, 16);
    size_t expect = 0;
    for (int i = 0; i < n; i++) {
        oracle_id(ids[i], from + i);
        keys[i] = (st_key){ids[i], (uint32_t)strlen(ids[i])};
        if (f->o.d[from + i].live) expect++;
        f->o.d[from + i].live = false;
    }
    size_t deleted = 0;
    tdb_error err;
    int rc = st_delete(f->c, keys, (size_t)n, &deleted, &err);
    if (rc != 0) fail_msg("st_delete: %s", err.message);
    assert_int_equal(deleted, expect);
    free(keys);
    free(ids);
}

static size_t oracle_live_count(const fixture *f) {
    size_t n = 0;
    for (int i = 0; i < ORACLE_MAX; i++) n += f->o.d[i].live;
    return n;
}

static void fixture_verify_gets(fixture *f) {
    for (int i = 0; i < ORACLE_MAX; i++) {
        char id[16];
        oracle_id(id, i);
        st_record r;
        tdb_error err;
        int rc = st_get(f->c, id, (uint32_t)strlen(id), true, &r, &err);
        if (!f->o.d[i].live) {
            if (rc != TDB_ENOTFOUND) fail_msg("%s should be absent, got %d", id, rc);
            continue;
        }
        if (rc != 0) fail_msg("%s should be present: %s", id, err.message);
        assert_string_equal(r.id, id);
        assert_string_equal(r.attrs, f->o.d[i].attrs);
        if (f->dim) assert_memory_equal(r.vector, f->o.d[i].v, sizeof f->o.d[i].v);
        st_record_free(&r);
    }
}

static void fixture_verify_scan(fixture *f, size_t page, bool filtered) {
    char after[64] = "";
    bool started = false;
    int expect = 0;
    for (;;) {
        st_record *recs;
        size_t n;
        tdb_error err;
        int rc = st_scan(f->c, started ? after : NULL, (uint32_t)strlen(after), page,
                         expect % 2 == 0, filtered ? filter_even : NULL, NULL, &recs, &n, &err);
        if (rc != 0) fail_msg("st_scan: %s", err.message);
        for (size_t k = 0; k < n; k++) {
            while (expect < ORACLE_MAX &&
                   (!f->o.d[expect].live || (filtered && expect % 2 != 0)))
                expect++;
            assert_true(expect < ORACLE_MAX);
            char id[16];
            oracle_id(id, expect);
            assert_string_equal(recs[k].id, id);
            assert_string_equal(recs[k].attrs, f->o.d[expect].attrs);
            if (recs[k].vector) assert_memory_equal(recs[k].vector, f->o.d[expect].v, sizeof f->o.d[expect].v);
            expect++;
        }
        if (n > 0) {
            snprintf(after, sizeof after, "%s", recs[n - 1].id);
            started = true;
        }
        st_records_free(recs, n);
        if (n < page) break;
    }
    while (expect < ORACLE_MAX && (!f->o.d[expect].live || (filtered && expect % 2 != 0))) expect++;
    assert_int_equal(expect, ORACLE_MAX);
}

typedef struct oracle_hit {
    float dist;
    int i;
} oracle_hit;

static int oracle_hit_cmp(const void *a, const void *b) {
    const oracle_hit *x = a, *y = b;
    if (x->dist != y->dist) return x->dist < y->dist ? -1 : 1;
    return x->i - y->i; /* ids are zero-padded: numeric order is byte order */
}

static void fixture_verify_search(fixture *f, const float *q, size_t k, bool filtered) {
    oracle_hit *all = malloc(ORACLE_MAX * sizeof *all);
    size_t n_all = 0;
    float qn = vec_norm(q, ORACLE_DIM);
    for (int i = 0; i < ORACLE_MAX; i++) {
        const odoc *d = &f->o.d[i];
        if (!d->live || (filtered && i % 2 != 0)) continue;
        all[n_all++] = (oracle_hit){vec_distance(f->metric, q, qn, d->v, vec_norm(d->v, ORACLE_DIM),
                                                 ORACLE_DIM),
                                    i};
    }
    qsort(all, n_all, sizeof *all, oracle_hit_cmp);
    st_hit *hits;
    size_t n;
    tdb_error err;
    int rc = st_search(f->c, q, k, filtered ? filter_even : NULL, NULL, false, &hits, &n, &err);
    if (rc != 0) fail_msg("st_search: %s", err.message);
    assert_int_equal(n, k < n_all ? k : n_all);
    for (size_t j = 0; j < n; j++) {
        char id[16];
        oracle_id(id, all[j].i);
        if (strcmp(hits[j].rec.id, id) != 0)
            fail_msg("rank %zu: got %s (%g), want %s (%g)", j, hits[j].rec.id,
                     (double)hits[j].distance, id, (double)all[j].dist);
        assert_true(fabsf(hits[j].distance - all[j].dist) <= 1e-6f * fmaxf(1, fabsf(all[j].dist)));
        assert_string_equal(hits[j].rec.attrs, f->o.d[all[j].i].attrs);
        assert_null(hits[j].rec.vector);
    }
    st_hits_free(hits, n);
    free(all);
}

static void fixture_verify_all(fixture *f) {
    fixture_verify_gets(f);
    fixture_verify_scan(f, 50, false);
    if (f->dim) {
        float q[ORACLE_DIM];
        oracle_vector(q, 777, 3);
        fixture_verify_search(f, q, 7, false);
    }
    st_stats s;
    st_stats_get(f->c, &s);
    assert_int_equal(s.documents, oracle_live_count(f));
}

#endif
