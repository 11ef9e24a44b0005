/*
 * sq8.h: scalar quantization to 8 bits per dimension (SQ8).
 * Layer: vec. Built beside the graph at flush (sq8_encode), stored as one
 * blob (a segment section), opened in place (sq8_view_open) and walked by
 * hnsw_search with re-ranking by exact float distance. Format: sq8.c.
 *
 * Each dimension i has its own range [min_i, min_i + 255 scale_i] taken
 * over the encoded rows; a value becomes round((x_i - min_i) / scale_i),
 * so the per-dimension error is at most scale_i / 2 (zero for data that is
 * already 8-bit, such as image pixels). For cosine the unit-length vectors
 * are encoded. The estimated internal distance of a query q to a row with
 * codes c (x^_i = min_i + scale_i c_i) is
 *   l2:     sum (q_i - min_i)^2 - 2 sum scale_i (q_i - min_i) c_i + B_row
 *           with B_row = sum (scale_i c_i)^2 stored per row
 *   dot:    -sum q_i min_i - sum q_i scale_i c_i
 *   cosine: 1 - sum q^_i min_i - sum q^_i scale_i c_i   (q^ = q / |q|)
 * i.e. a per-query constant + sign * <qw, c> + B_row, one float x uint8
 * dot product per row (vec_kernels.dot_u8).
 */
#ifndef TDB_VEC_SQ8_H
#define TDB_VEC_SQ8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tierdb.h"
#include "vec/vec.h"

/* An open SQ8 blob. All pointers point into the borrowed blob. Immutable:
 * any number of threads may read it. */
struct sq8_view {
    uint32_t rows, dim;
    tdb_metric metric;
    size_t stride;         /* bytes per row: codes (dim, padded to 4) + B_row f32 */
    size_t b_offset;       /* offset of B_row inside a row */
    const float *mins;     /* dim */
    const float *scales;   /* dim */
    const uint8_t *codes;  /* rows x stride */
};
typedef struct sq8_view sq8_view;

/* Encodes rows vectors into a malloc'ed blob (*blob_out, free()). rows may
 * be 0. Returns 0, TDB_EINVAL, TDB_ENOMEM. */
int sq8_encode(const float *vectors, uint32_t rows, uint32_t dim, tdb_metric metric,
               void **blob_out, size_t *len_out, tdb_error *err);
/* Validates a blob (4-byte aligned) against rows/dim/metric; the view
 * borrows it. Returns 0, TDB_ECORRUPT, TDB_EINVAL, TDB_ENOMEM. */
int sq8_view_open(const void *blob, size_t len, uint32_t rows, uint32_t dim, tdb_metric metric,
                  sq8_view **out, tdb_error *err);
void sq8_view_close(sq8_view *v); /* NULL is a no-op */

/* A prepared query: qw_i (see above) quantized to int16 in
 * [-VEC_I16_QUERY_MAX, VEC_I16_QUERY_MAX] with one scale, so a row costs
 * one int16 x uint8 dot product (vec_kernels.dot_u8_i16); the rounding
 * (at most 1/4094 of the largest term) is far under the codes' own error and
 * re-ranking removes both. */
typedef struct sq8_query {
    int16_t *qi;  /* dim */
    float scale;  /* qw_i ~ scale * qi_i, times the sign */
    float qconst; /* the per-query constant */
} sq8_query;

/* Prepares q (the raw query, unit length already for cosine); qi must hold
 * dim int16, work dim floats. */
void sq8_query_prepare(const sq8_view *v, const float *q, sq8_query *sq, float *work);

static inline const uint8_t *sq8_row(const sq8_view *v, uint32_t row) {
    return v->codes + (size_t)row * v->stride;
}

/* Estimated internal distance (see above). */
static inline float sq8_distance(const sq8_view *v, const vec_kernels *k, const sq8_query *sq,
                                 uint32_t row) {
    const uint8_t *c = sq8_row(v, row);
    float b;
    memcpy(&b, c + v->b_offset, sizeof b);
    return sq->qconst + sq->scale * (float)k->dot_u8_i16(sq->qi, c, v->dim) + b;
}

#endif
