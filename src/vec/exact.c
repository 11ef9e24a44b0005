/*
 * exact.c: exhaustive (brute-force) top-k search over contiguous vectors.
 * Layer: vec. Used by the filtered planner (plan.c) when a filter is so
 * selective that scanning the matching rows beats walking the graph, by
 * HNSW search as its completion pass, and by benchmarks for ground truth.
 * Distances as API.md defines them (vec_distance); ties by smaller row.
 * Concurrency: pure function of its inputs; any number of threads.
 */
#include <math.h>

#include "util/error.h"
#include "vec/vec.h"

int vec_search_exact(tdb_metric metric, const float *query, const float *vectors,
                     const float *norms, uint32_t rows, uint32_t dim, const vec_filter *filter,
                     uint32_t k, vec_hit *out, uint32_t *n_out, tdb_error *err) {
    *n_out = 0;
    if (dim == 0 || !query || (rows && !vectors))
        return tdb_err(err, TDB_EINVAL, "invalid_request", "exact search needs a query and vectors");
    if (k == 0) return 0;
    vec_topk top;
    if (vec_topk_init(&top, k) != 0) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    const vec_kernels *kern = vec_kernels_get();
    float q_norm = metric == TDB_METRIC_COSINE ? vec_norm(query, dim) : 0;
    for (uint32_t r = 0; r < rows; r++) {
        /* Skip whole empty bitset words: a selective filter then costs
         * rows / 64 word tests plus its matches. */
        if (filter && filter->bitset && (r & 63) == 0 && filter->bitset[r >> 6] == 0) {
            r += 63;
            continue;
        }
        if (!vec_filter_pass(filter, r)) continue;
        const float *v = vectors + (size_t)r * dim;
        float d;
        if (metric == TDB_METRIC_L2)
            d = kern->l2sq(query, v, dim); /* sqrt is monotonic: taken on the k kept */
        else {
            float vn = metric == TDB_METRIC_COSINE ? (norms ? norms[r] : vec_norm(v, dim)) : 0;
            d = vec_distance(metric, query, q_norm, v, vn, dim);
        }
        vec_topk_push(&top, d, r);
    }
    vec_topk_sort(&top);
    for (size_t i = 0; i < top.n; i++) {
        out[i].row = (uint32_t)top.ids[i];
        out[i].distance = metric == TDB_METRIC_L2 ? sqrtf(top.dist[i]) : top.dist[i];
    }
    *n_out = (uint32_t)top.n;
    vec_topk_free(&top);
    return 0;
}
