/*
 * hnsw_build.c: bulk build of a segment's graph with N threads, returned
 * as one serialized blob (format: hnsw.c).
 * Layer: vec. Called by storage at flush and compaction with the rows of
 * the new segment, in row order; uses hnsw_insert.c for INSERT
 * (Algorithm 1) and hnsw.c to serialize.
 *
 * Phases:
 *   1. draw every row's level (a hash of seed and row, so levels do not
 *      depend on thread timing) and lay out all upper-level blocks in one
 *      allocation at the offsets the blob will use;
 *   2. insert row 0 (the first entry point), then let the threads take
 *      rows in increasing order from a shared counter and insert them;
 *   3. serialize (one copy of the lists into the blob).
 * Memory: the lists (rows x (1 + 2m) x 4 bytes plus the upper blocks),
 * one scratch per thread (2 bytes per row of visited tags) and, for
 * cosine, a unit-length copy of the vectors. The caller's vectors are only
 * read.
 * Threads: each worker owns its scratch; the graph's row locks and mu
 * (hnsw_insert.c) order everything else. With one thread and a fixed seed
 * the graph is deterministic; with more it depends on the interleaving
 * (recall does not, measurably).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "vec/hnsw_int.h"

typedef struct build_ctx {
    hnsw_index *ix;
    atomic_uint next; /* next row to insert */
    atomic_int rc;    /* first failure, or 0 */
    const _Atomic bool *cancel; /* NULL, or stop with TDB_ESHUTDOWN once true */
} build_ctx;

static void *build_worker(void *arg) {
    build_ctx *b = arg;
    hnsw_scratch *s = hnsw_scratch_new();
    if (!s) {
        atomic_store(&b->rc, TDB_ENOMEM);
        return NULL;
    }
    uint32_t rows = b->ix->g.rows;
    for (;;) {
        if (atomic_load_explicit(&b->rc, memory_order_relaxed) != 0) break;
        if (b->cancel != NULL && atomic_load_explicit(b->cancel, memory_order_relaxed)) {
            atomic_store(&b->rc, TDB_ESHUTDOWN);
            break;
        }
        uint32_t r = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed);
        if (r >= rows) break;
        int rc = hnsw_index_insert_row(b->ix, s, r);
        if (rc) {
            atomic_store(&b->rc, rc);
            break;
        }
    }
    hnsw_scratch_free(s);
    return NULL;
}

static uint32_t build_threads(const hnsw_params *p, uint32_t rows) {
    long n = p->threads;
    if (n == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n < 1) n = 1;
        if (n > (long)HNSW_THREADS_MAX) n = HNSW_THREADS_MAX;
    }
    /* Below a few thousand rows per thread the threads mostly wait on
     * each other's row locks near the entry point. */
    long useful = rows / 1024 + 1;
    return (uint32_t)(n < useful ? n : useful);
}

int hnsw_build(const float *vectors, uint32_t rows, uint32_t dim, tdb_metric metric,
               const hnsw_params *p, void **blob_out, size_t *len_out, tdb_error *err) {
    return hnsw_build_cancellable(vectors, rows, dim, metric, p, NULL, blob_out, len_out, err);
}

int hnsw_build_cancellable(const float *vectors, uint32_t rows, uint32_t dim, tdb_metric metric,
                           const hnsw_params *p, const _Atomic bool *cancel, void **blob_out,
                           size_t *len_out, tdb_error *err) {
    *blob_out = NULL;
    *len_out = 0;
    int rc = hnsw_params_check(p, err);
    if (rc) return rc;
    if (dim == 0 || dim > VEC_MAX_DIM)
        return tdb_err(err, TDB_EINVAL, "invalid_dimension", "dimension must be 1..%u, got %u",
                       VEC_MAX_DIM, dim);
    if (rows > HNSW_MAX_ROWS || (rows && !vectors))
        return tdb_err(err, TDB_EINVAL, "invalid_request", "a graph holds 0..%u rows", HNSW_MAX_ROWS);
    float *unit = NULL;
    hnsw_index *ix = NULL;
    pthread_t *tids = NULL;
    const float *base = vectors;
    if (metric == TDB_METRIC_COSINE && rows) {
        unit = malloc((size_t)rows * dim * sizeof *unit);
        if (!unit) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        for (size_t r = 0; r < rows; r++) {
            const float *v = vectors + r * dim;
            float n = vec_norm(v, dim), inv = n > 0 ? 1.0f / n : 0.0f;
            for (size_t i = 0; i < dim; i++) unit[r * dim + i] = v[i] * inv;
        }
        base = unit;
    }
    /* A 1-row dummy keeps the allocation path uniform for rows == 0. */
    rc = hnsw_index_alloc(rows, dim, metric, p, base ? base : (const float *)&dim,
                          metric == TDB_METRIC_COSINE, &ix, err);
    if (rc) goto done;

    /* Phase 1: levels and the upper blocks at their blob offsets. */
    size_t upper_words = 0;
    for (uint32_t r = 0; r < rows; r++) {
        uint32_t l = hnsw_draw_level(p->seed, r, ix->ml);
        ix->levels[r] = (uint8_t)l;
        upper_words += (size_t)l * (1 + p->m);
    }
    if (upper_words) {
        ix->upper_block = calloc(upper_words, sizeof(uint32_t));
        if (!ix->upper_block) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
            goto done;
        }
        size_t off = 0;
        for (uint32_t r = 0; r < rows; r++) {
            if (ix->levels[r]) ix->upper[r] = ix->upper_block + off;
            off += (size_t)ix->levels[r] * (1 + p->m);
        }
    }

    /* Phase 2: row 0 first (entry point), then every thread. */
    if (rows) {
        build_ctx b = {.ix = ix, .cancel = cancel};
        atomic_init(&b.next, 1);
        atomic_init(&b.rc, 0);
        hnsw_scratch *s = hnsw_scratch_new();
        rc = s ? hnsw_index_insert_row(ix, s, 0) : TDB_ENOMEM;
        hnsw_scratch_free(s);
        if (rc) {
            rc = tdb_err(err, rc, NULL, "out of memory while building the graph");
            goto done;
        }
        uint32_t nt = build_threads(p, rows);
        tids = calloc(nt, sizeof *tids);
        if (!tids) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
            goto done;
        }
        uint32_t started = 0;
        for (uint32_t t = 1; t < nt; t++) {
            if (pthread_create(&tids[t], NULL, build_worker, &b) != 0) break;
            started++;
        }
        build_worker(&b); /* the calling thread works too */
        for (uint32_t t = 1; t <= started; t++) pthread_join(tids[t], NULL);
        rc = atomic_load(&b.rc);
        if (rc == TDB_ESHUTDOWN) {
            rc = tdb_err(err, rc, "shutting_down", "graph build cancelled");
            goto done;
        }
        if (rc) {
            rc = tdb_err(err, rc, NULL, "out of memory while building the graph");
            goto done;
        }
    }

    /* Phase 3: serialize. */
    rc = hnsw_serialize(&ix->g, ix->entry, ix->max_level, p->ef_construction, blob_out, len_out, err);
done:
    free(tids);
    hnsw_index_free(ix);
    free(unit);
    return rc;
}
