/*
 * hnsw_search.c: K-NN-SEARCH (Algorithm 5) on a read-only view: greedy
 * descent through the upper levels, then SEARCH-LAYER (Algorithm 2) at
 * level 0 with breadth ef, on float vectors, SQ8 codes or RaBitQ-gated
 * exact distances, with or without a filter.
 * Layer: vec. Called by db's query path (directly or through plan.c) with
 * views that storage opened on mmap'd segments, and by benchmarks.
 * Each (mode, filtered) pair gets its own copy of the walk: the mode is a
 * compile-time constant of the always-inline SEARCH-LAYER (hnsw_int.h), so
 * the innermost loop carries no mode tests.
 * Concurrency: the view is immutable; the scratch is the caller's thread's.
 */
#include "util/error.h"
#include "vec/hnsw_int.h"

static inline __attribute__((always_inline)) void walk(const hnsw_view *v, hnsw_qctx *c,
                                                       size_t ef, int mode, bool filtered) {
    uint32_t ep = v->entry;
    int dmode = mode == HNSW_MODE_SQ8 ? HNSW_MODE_SQ8 : HNSW_MODE_FLOAT;
    float ep_d = hnsw_dist_mode(c, ep, dmode);
    hnsw_descend(c, &ep, &ep_d, v->max_level, 0, mode);
    hnsw_search_level(c, 0, ef, ep, ep_d, mode, filtered);
}

static __attribute__((noinline)) void walk_float(const hnsw_view *v, hnsw_qctx *c, size_t ef) {
    walk(v, c, ef, HNSW_MODE_FLOAT, false);
}
static __attribute__((noinline)) void walk_float_f(const hnsw_view *v, hnsw_qctx *c, size_t ef) {
    walk(v, c, ef, HNSW_MODE_FLOAT, true);
}
static __attribute__((noinline)) void walk_sq8(const hnsw_view *v, hnsw_qctx *c, size_t ef) {
    walk(v, c, ef, HNSW_MODE_SQ8, false);
}
static __attribute__((noinline)) void walk_sq8_f(const hnsw_view *v, hnsw_qctx *c, size_t ef) {
    walk(v, c, ef, HNSW_MODE_SQ8, true);
}
static __attribute__((noinline)) void walk_rabitq(const hnsw_view *v, hnsw_qctx *c, size_t ef) {
    walk(v, c, ef, HNSW_MODE_RABITQ, false);
}
static __attribute__((noinline)) void walk_rabitq_f(const hnsw_view *v, hnsw_qctx *c, size_t ef) {
    walk(v, c, ef, HNSW_MODE_RABITQ, true);
}

int hnsw_search(const hnsw_view *v, const hnsw_query *q, hnsw_scratch *scratch, vec_hit *out,
                uint32_t *n_out, hnsw_stats *stats, tdb_error *err) {
    *n_out = 0;
    if (stats) *stats = (hnsw_stats){0};
    if (!v || !q || !q->vector || q->k == 0 || q->k > HNSW_EF_MAX)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "a search needs a vector and k in 1..%u",
                       HNSW_EF_MAX);
    if (v->g.rows == 0) return 0;
    size_t ef = q->ef ? q->ef : HNSW_EF_DEFAULT;
    if (ef < q->k) ef = q->k;
    if (ef > HNSW_EF_MAX) ef = HNSW_EF_MAX;
    int mode = v->sq8 ? HNSW_MODE_SQ8 : v->rq ? HNSW_MODE_RABITQ : HNSW_MODE_FLOAT;
    bool filtered = q->filter && (q->filter->bitset || q->filter->accept);

    hnsw_scratch *s = scratch ? scratch : hnsw_scratch_new();
    if (!s) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    hnsw_qctx c = {.g = &v->g, .s = s, .filter = filtered ? q->filter : NULL, .sq8 = v->sq8, .rq = v->rq};
    int rc;
    if (!hnsw_scratch_begin(s, v->g.rows, ef) || !hnsw_qctx_prepare(&c, q->vector, mode)) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    switch (mode) {
    case HNSW_MODE_SQ8: filtered ? walk_sq8_f(v, &c, ef) : walk_sq8(v, &c, ef); break;
    case HNSW_MODE_RABITQ: filtered ? walk_rabitq_f(v, &c, ef) : walk_rabitq(v, &c, ef); break;
    default: filtered ? walk_float_f(v, &c, ef) : walk_float(v, &c, ef); break;
    }
    rc = hnsw_finish(&c, q->k, mode, NULL, out, n_out, stats, err);
done:
    if (!scratch) hnsw_scratch_free(s);
    return rc;
}
