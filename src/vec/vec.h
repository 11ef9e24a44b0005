/*
 * vec.h: vector kernels and exact top-k search.
 * Layer: vec. Pure computation on float arrays: no storage, no db.
 *
 * Distances as API.md defines them: cosine 1 - <q,v>/(|q||v|), l2 the
 * Euclidean distance, dot -<q,v>. Kernels (l2sq, dot, and those of the
 * quantized codes: float x uint8, int16 x uint8, 4-bit x 1-bit popcount,
 * Walsh-Hadamard) are chosen once from CPUID (scalar reference, AVX2/FMA,
 * AVX-512). The graph index is vec/hnsw.h, codes vec/sq8.h and
 * vec/rabitq.h, the filtered-search planner vec/plan.h.
 */
#ifndef TDB_VEC_VEC_H
#define TDB_VEC_VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"

/* The largest dimension (API.md: 1..4096): 16 KiB per float vector keeps
 * a row and a query comfortably in L1/L2 and row offsets in 32 bits. */
#define VEC_MAX_DIM 4096u

typedef float (*vec_kernel_fn)(const float *a, const float *b, size_t dim);
/* sum a_i * codes_i: a float32 query against uint8 codes (SQ8 distances). */
typedef float (*vec_dot_u8_fn)(const float *a, const uint8_t *codes, size_t dim);
/* sum_j 2^j * popcount(bits & planes[j]) over 4 bit planes of `words` u64
 * each (planes[j * words + w]): the inner product of a 1-bit code with a
 * 4-bit query (RaBitQ). */
/* sum a_i * codes_i with a int16 and codes uint8, in int32: SQ8 walks
 * with the query quantized to |a_i| <= VEC_I16_QUERY_MAX; that bound keeps
 * the whole sum inside int32 for every dimension up to VEC_MAX_DIM
 * (2047 x 255 x 4096 < 2^31). */
typedef int32_t (*vec_dot_u8_i16_fn)(const int16_t *a, const uint8_t *codes, size_t dim);
#define VEC_I16_QUERY_MAX 2047
/* In-place Walsh-Hadamard transform of n floats (n a power of two, >= 16),
 * scaled by 1 / sqrt(n) so that it is orthogonal (RaBitQ's rotation). */
typedef void (*vec_fwht_fn)(float *x, size_t n);
typedef uint32_t (*vec_ip_bits4_fn)(const uint64_t *bits, const uint64_t *planes, size_t words);

typedef struct vec_kernels {
    const char *name;     /* "scalar", "avx2", "avx512" */
    vec_kernel_fn l2sq;   /* sum (a_i - b_i)^2 */
    vec_kernel_fn dot;    /* sum a_i b_i */
    vec_dot_u8_fn dot_u8;     /* sum a_i c_i, c uint8 */
    vec_ip_bits4_fn ip_bits4; /* see vec_ip_bits4_fn */
    vec_dot_u8_i16_fn dot_u8_i16; /* see vec_dot_u8_i16_fn */
    vec_fwht_fn fwht;             /* see vec_fwht_fn */
} vec_kernels;

/* The kernels for this CPU (chosen once, thread-safe). */
const vec_kernels *vec_kernels_get(void);
/* The scalar reference kernels (tests compare SIMD against these). */
const vec_kernels *vec_kernels_scalar(void);
/* Every kernel set this build has and this CPU can run, best last; *n is
 * their count (tests run each against the scalar one). */
const vec_kernels *const *vec_kernels_available(size_t *n);

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

/* ---- Filters and exact search (vec/exact.c) ----------------------------
 * A row filter for searches: a row passes when the bitset has its bit set
 * (bit r % 64 of word r / 64) and/or the callback accepts it. Either may be
 * NULL; a NULL vec_filter (or both NULL) accepts every row. The callback
 * runs on the searching thread, may be called more than once per row and
 * must not block; ctx and bitset are borrowed for the call. */
typedef bool (*vec_accept_fn)(void *ctx, uint32_t row);
typedef struct vec_filter {
    const uint64_t *bitset; /* ceil(rows / 64) words, or NULL */
    vec_accept_fn accept;   /* or NULL */
    void *ctx;              /* passed to accept */
} vec_filter;

static inline bool vec_filter_pass(const vec_filter *f, uint32_t row) {
    if (!f) return true;
    if (f->bitset && !((f->bitset[row >> 6] >> (row & 63)) & 1)) return false;
    return !f->accept || f->accept(f->ctx, row);
}

/* One search hit: a row of the searched set and its API distance. */
typedef struct vec_hit {
    uint32_t row;
    float distance;
} vec_hit;

/* Exact top-k over rows (row-major, dim floats each) passing filter, best
 * first (ties by smaller row). norms (|v| per row) are read for cosine and
 * may be NULL (then computed). out holds k hits; *n_out = min(k, matches).
 * Returns 0 or TDB_EINVAL / TDB_ENOMEM. */
int vec_search_exact(tdb_metric metric, const float *query, const float *vectors,
                     const float *norms, uint32_t rows, uint32_t dim, const vec_filter *filter,
                     uint32_t k, vec_hit *out, uint32_t *n_out, tdb_error *err);

#endif
