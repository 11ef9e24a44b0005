/*
 * plan.h: the filtered-search planner: exact scan over the rows a filter
 * keeps, or a filtered walk of the graph.
 * Layer: vec. Called by db's query path (with a selectivity estimate from
 * filter/) and by the ANN benchmark. Cost model and constants: plan.c and
 * docs/vector.md.
 */
#ifndef TDB_VEC_PLAN_H
#define TDB_VEC_PLAN_H

#include <stdint.h>

#include "vec/hnsw.h"

typedef enum vec_plan {
    VEC_PLAN_GRAPH = 0, /* walk the graph with the filter (hnsw_search) */
    VEC_PLAN_EXACT = 1  /* scan the matching rows exactly (vec_search_exact) */
} vec_plan;

/* The cheaper plan for a filter keeping `selectivity` (0..1, an estimate)
 * of rows, for a search of breadth max(ef, k). */
vec_plan vec_plan_filtered(uint32_t rows, double selectivity, uint32_t ef, uint32_t k);

/* Searches the view with q, choosing the plan from selectivity (pass 1.0
 * or a negative value when there is no filter: always the graph). Results
 * as hnsw_search; *chosen (may be NULL) says which plan ran. */
int vec_ann_search(const hnsw_view *v, const hnsw_query *q, double selectivity,
                   hnsw_scratch *scratch, vec_hit *out, uint32_t *n_out, vec_plan *chosen,
                   tdb_error *err);

#endif
