/*
 * vec.h: vector kernels and exact top-k search.
 * Layer: vec. Pure computation on float arrays: no storage, no db.
 *
 * Distances as API.md defines them: cosine 1 - <q,v>/(|q||v|), l2 the
 * Euclidean distance, dot -<q,v>. Kernels (l2sq, dot) are chosen once at
 * start-up from CPUID (scalar reference, AVX2/FMA, AVX-512).
 */
#ifndef TDB_VEC_VEC_H
#define TDB_VEC_VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"

typedef float (*vec_kernel_fn)(const float *a, const float *b, size_t dim);

typedef struct vec_kernels {
    const char *name;     /* "scalar", "avx2", "avx512" */
    vec_kernel_fn l2sq;   /* sum (a_i - b_i)^2 */
    vec_kernel_fn dot;    /* sum a_i b_i */
} vec_kernels;

/* The kernels for this CPU (chosen once, thread-safe). */
const vec_kernels *vec_kernels_get(void);
/* The scalar reference kernels (tests compare SIMD against these). */
const vec_kernels *vec_kernels_scalar(void);

float vec_norm(const float *a, size_t dim);

/* Distance between q and v per API.md; q_norm and v_norm are only read for
 * cosine (pass vec_norm of each). */
float vec_distance(tdb_metric metric, const float *q, float q_norm, const float *v, float v_norm,
                   size_t dim);

/* A bounded max-heap of the k best (smallest distance) (distance, id)
 * pairs. Ties on distance keep the smaller id. */
typedef struct vec_topk {
    size_t k;
    size_t n;
    float *dist;
    uint64_t *ids;
} vec_topk;

int vec_topk_init(vec_topk *t, size_t k); /* 0 or -1 (out of memory) */
void vec_topk_free(vec_topk *t);
/* The distance a candidate must beat to enter (INFINITY while not full). */
float vec_topk_bound(const vec_topk *t);
void vec_topk_push(vec_topk *t, float dist, uint64_t id);
/* Sorts the heap's contents best first in place (the heap is consumed). */
void vec_topk_sort(vec_topk *t);

#endif
