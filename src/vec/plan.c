/*
 * plan.c: choosing between an exact scan of a filter's matches and a
 * filtered graph walk.
 * Layer: vec. Pure decision plus dispatch; the walk is hnsw_search, the
 * scan vec_search_exact.
 *
 * Cost model, in float distance computations (the unit both plans spend):
 *   exact  = selectivity x rows x EXACT_RELATIVE_COST
 *   graph  = GRAPH_DISTANCES_PER_EF x ef / selectivity
 * A filtered walk has to meet about ef accepted rows, so it reads about
 * 1 / selectivity times the rows an unfiltered walk of the same ef reads.
 * The exact scan reads only the matching rows, in row order (sequential
 * memory, prefetch friendly), so each distance costs less than a graph
 * distance (random access). The plan with the smaller estimate wins; the
 * crossover is selectivity* = sqrt(GRAPH_DISTANCES_PER_EF x ef /
 * (EXACT_RELATIVE_COST x rows)): on 60,000 rows at ef 64 about 0.24, on
 * 10 million rows about 0.018 (docs/vector.md).
 * Either plan returns min(k, matches) rows: a wrong estimate only costs
 * time (the walk completes short answers with an exact pass).
 */
#include <math.h>
#include <stdlib.h>

#include "util/error.h"
#include "vec/hnsw_int.h"
#include "vec/plan.h"

/* Float distances an unfiltered walk computes per unit of ef (measured on
 * fashion-mnist 60k x 784, m 16: 281 at ef 16 (17.6 per ef), 412 at 32
 * (12.9), 626 at 64 (9.8); 13 is the middle of the usual ef range). */
#define VEC_PLAN_GRAPH_DISTANCES_PER_EF 13.0
/* Cost of one distance in a sequential exact scan relative to one in a
 * graph walk. Measured on the same data: an exact scan streams at memory
 * bandwidth (about 130 ns per 784-d row on one core), a walk spends about
 * 500 ns per distance (cache misses on vectors and link lists, heaps). */
#define VEC_PLAN_EXACT_RELATIVE_COST 0.25

vec_plan vec_plan_filtered(uint32_t rows, double selectivity, uint32_t ef, uint32_t k) {
    if (!(selectivity < 1.0)) return VEC_PLAN_GRAPH; /* no filter, or NaN */
    if (selectivity <= 0.0) return VEC_PLAN_EXACT;    /* nothing (or almost) matches */
    double breadth = ef > k ? ef : k;
    if (breadth < 1) breadth = HNSW_EF_DEFAULT;
    double exact = selectivity * (double)rows * VEC_PLAN_EXACT_RELATIVE_COST;
    double graph = VEC_PLAN_GRAPH_DISTANCES_PER_EF * breadth / selectivity;
    return exact <= graph ? VEC_PLAN_EXACT : VEC_PLAN_GRAPH;
}

int vec_ann_search(const hnsw_view *v, const hnsw_query *q, double selectivity,
                   hnsw_scratch *scratch, vec_hit *out, uint32_t *n_out, vec_plan *chosen,
                   tdb_error *err) {
    *n_out = 0;
    if (!v || !q || !q->vector || q->k == 0 || q->k > HNSW_EF_MAX)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "a search needs a vector and k in 1..%u",
                       HNSW_EF_MAX);
    bool filtered = q->filter && (q->filter->bitset || q->filter->accept);
    uint32_t ef = q->ef ? q->ef : HNSW_EF_DEFAULT;
    vec_plan plan = filtered && selectivity >= 0 ? vec_plan_filtered(v->g.rows, selectivity, ef, q->k)
                                                 : VEC_PLAN_GRAPH;
    if (chosen) *chosen = plan;
    if (plan == VEC_PLAN_GRAPH) return hnsw_search(v, q, scratch, out, n_out, NULL, err);
    return vec_search_exact(v->g.metric, q->vector, v->g.vectors, v->g.norms, v->g.rows, v->g.dim,
                            q->filter, q->k, out, n_out, err);
}
