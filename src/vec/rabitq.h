/*
 * rabitq.h: RaBitQ 1-bit codes with their error bound (Gao & Long,
 * "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical Error
 * Bound for Approximate Nearest Neighbor Search", SIGMOD 2024).
 * Layer: vec. Built beside the graph at flush (rabitq_encode), stored as
 * one blob (a segment section), opened in place (rabitq_view_open) and
 * used by hnsw_search to skip exact distances that cannot matter.
 * Format and estimator details: rabitq.c.
 *
 * Every row o is taken relative to the centroid c of the encoded rows,
 * r = o - c (unit-length rows for cosine), rotated by a fixed random
 * orthogonal map T and stored as the sign bits of T(r / |r|) in D' bits
 * (D' = dim rounded up to a power of two, >= 64), plus four floats:
 *   f_add  = |r|^2 (l2, cosine; 0 for dot)
 *   f_mul  = |r| / <x, o>     (<x, o>: the code's inner product with the
 *                              unit residual, section 3.2 of the paper)
 *   f_err  = |r| * EPS0 * sqrt(1 - <x,o>^2) / <x,o> / sqrt(D' - 1)
 *   f_pop  = number of set bits
 * A query u (q - c for l2/cosine, q itself for dot) is rotated, scaled to
 * unit length and quantized to 4 bits per dimension (B_q = 4, section
 * 3.3); the estimate of <r, u> and its bound come from one popcount
 * kernel per row (vec_kernels.ip_bits4).
 */
#ifndef TDB_VEC_RABITQ_H
#define TDB_VEC_RABITQ_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tierdb.h"
#include "vec/vec.h"

/* An open RaBitQ blob; pointers into the borrowed blob. Immutable. */
struct rabitq_view {
    uint32_t rows, dim;
    uint32_t dim_pad;        /* D': power of two >= max(dim, 64) */
    uint32_t words;          /* D' / 64 */
    tdb_metric metric;
    float eps0;              /* confidence multiplier the bounds were stored with */
    size_t stride;           /* bytes per row: words u64 + 4 f32 */
    const float *centroid;   /* dim */
    const uint8_t *signs;    /* 3 x D' / 8 bytes: the rotation's sign flips */
    const uint8_t *codes;    /* rows x stride, 8-byte aligned */
};
typedef struct rabitq_view rabitq_view;

/* The confidence multiplier searches use for the bound (the blob stores
 * bounds for the paper's 1.9). Measured on fashion-mnist (60k x 784, l2,
 * m 16): 1.9 skips 35-45% of exact distances, 1.0 skips 45-55% and loses
 * under 0.001 of recall@10 (a skipped row that belonged in the top k is
 * rare, and other paths through the graph usually reach it), for about
 * 1.2x the queries per second of 1.9. */
#define RABITQ_SEARCH_EPS0 1.0f

/* A prepared query (lives in the searcher's scratch). */
typedef struct rabitq_query {
    uint64_t *planes;   /* 4 x words: bit plane j of the 4-bit query */
    float u_norm;       /* |u| */
    float u_norm2;      /* |u|^2 */
    float delta;        /* quantization step of the rotated unit query */
    float low;          /* its lowest value */
    float sum_q;        /* sum of the 4-bit values */
    float cq;           /* <c, q> (dot) */
    float inv_sqrt_d;   /* 1 / sqrt(D') */
    float bound_scale;  /* RABITQ_SEARCH_EPS0 / the blob's eps0 */
} rabitq_query;

int rabitq_encode(const float *vectors, uint32_t rows, uint32_t dim, tdb_metric metric,
                  uint64_t seed, void **blob_out, size_t *len_out, tdb_error *err);
int rabitq_view_open(const void *blob, size_t len, uint32_t rows, uint32_t dim, tdb_metric metric,
                     rabitq_view **out, tdb_error *err);
void rabitq_view_close(rabitq_view *v); /* NULL is a no-op */

/* Floats of work space rabitq_query_prepare needs (2 x D'). */
size_t rabitq_query_floats(const rabitq_view *v);
/* Prepares q (the raw query, unit length already for cosine) into rq;
 * rq->planes must hold 4 x words u64, work rabitq_query_floats floats. */
void rabitq_query_prepare(const rabitq_view *v, const float *q, rabitq_query *rq, float *work);

static inline const uint64_t *rabitq_row(const rabitq_view *v, uint32_t row) {
    return (const uint64_t *)(const void *)(v->codes + (size_t)row * v->stride);
}

/* Estimated internal distance of row and a lower bound of the true one
 * (holds with the probability the paper states for EPS0). */
static inline float rabitq_estimate(const rabitq_view *v, const vec_kernels *k,
                                    const rabitq_query *rq, uint32_t row, float *lower) {
    const uint64_t *code = rabitq_row(v, row);
    float f[4];
    memcpy(f, code + v->words, sizeof f);
    float bq = (float)k->ip_bits4(code, rq->planes, v->words);
    /* <x_b, q'> with x_b in {+-1/sqrt(D')}: (2 sum b_i q'_i - sum q'_i) / sqrt(D') */
    float xq = (2.0f * (rq->delta * bq + rq->low * f[3]) -
                (rq->delta * rq->sum_q + rq->low * (float)v->dim_pad)) * rq->inv_sqrt_d;
    float ip = xq * f[1] * rq->u_norm; /* estimate of <r, u> */
    float err = f[2] * rq->u_norm * rq->bound_scale;
    float d;
    switch (v->metric) {
    case TDB_METRIC_L2:
        d = f[0] + rq->u_norm2 - 2.0f * ip;
        *lower = d - 2.0f * err;
        break;
    case TDB_METRIC_DOT:
        d = -(rq->cq + ip);
        *lower = d - err;
        break;
    default: /* cosine on unit vectors: 1 - cos = |o - q|^2 / 2 */
        d = 0.5f * (f[0] + rq->u_norm2 - 2.0f * ip);
        *lower = d - err;
        break;
    }
    return d;
}

#endif
