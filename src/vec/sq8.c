/*
 * sq8.c: SQ8 codes (8-bit scalar quantization per dimension): encoder,
 * blob format, validating reader and query preparation. The estimator and
 * its algebra are in sq8.h.
 * Layer: vec. Encoded at flush beside the graph; searched by hnsw_search
 * (walk on codes, re-rank the ef best by exact float distance).
 *
 * Blob format, version 1 (little-endian; offsets from the blob start):
 *   offset size  field
 *   0      4     magic "SQ8\0" (0x00385153)
 *   4      4     version (1)
 *   8      4     header bytes (64)
 *   12     4     metric
 *   16     4     rows
 *   20     4     dim
 *   24     4     stride: bytes per row = round_up(dim, 4) + 4
 *   28     4     flags (0)
 *   32     32    zero
 *   64           mins: dim x f32
 *   64 + 4 dim   scales: dim x f32 (>= 0; 0 for a constant dimension)
 *   align 64     rows x stride: dim codes (u8), zero padding to a multiple
 *                of 4, then B_row (f32, sum of (scale_i c_i)^2; 0 unless l2)
 *   end          exactly after the last row
 * The reader refuses unknown magic/version/flags, counts that disagree
 * with the segment, a stride or length that does not match, and
 * non-finite or negative range parameters (TDB_ECORRUPT).
 * Version history:
 *   1  first version.
 * Code size: dim + 4 bytes (+ padding) per row, about a quarter of the
 * 4 dim bytes of the float row.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/error.h"
#include "vec/sq8.h"

#define SQ8_MAGIC 0x00385153u
#define SQ8_VERSION 1u
#define SQ8_HEADER_BYTES 64u
#define SQ8_LEVELS 255.0f /* codes 0..255 */

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }
static size_t row_stride(uint32_t dim) { return (((size_t)dim + 3) & ~(size_t)3) + 4; }
static size_t codes_offset(uint32_t dim) { return align64(SQ8_HEADER_BYTES + 8 * (size_t)dim); }

int sq8_encode(const float *vectors, uint32_t rows, uint32_t dim, tdb_metric metric,
               void **blob_out, size_t *len_out, tdb_error *err) {
    *blob_out = NULL;
    *len_out = 0;
    if (dim == 0 || dim > VEC_MAX_DIM || (rows && !vectors))
        return tdb_err(err, TDB_EINVAL, "invalid_request", "sq8 needs vectors of dimension 1..%u", VEC_MAX_DIM);
    size_t stride = row_stride(dim), off = codes_offset(dim);
    size_t len = off + (size_t)rows * stride;
    uint8_t *b = calloc(1, len);
    float *mins = malloc(dim * sizeof *mins), *maxs = malloc(dim * sizeof *maxs);
    float *unit = malloc(dim * sizeof *unit);
    if (!b || !mins || !maxs || !unit) {
        free(b);
        free(mins);
        free(maxs);
        free(unit);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    }
    bool cosine = metric == TDB_METRIC_COSINE;
    /* Pass 1: the range of each dimension over the rows as encoded (unit
     * length for cosine). */
    for (uint32_t i = 0; i < dim; i++) {
        mins[i] = rows ? INFINITY : 0;
        maxs[i] = rows ? -INFINITY : 0;
    }
    for (uint32_t r = 0; r < rows; r++) {
        const float *v = cosine ? NULL : vectors + (size_t)r * dim;
        if (cosine) {
            float n = vec_norm(vectors + (size_t)r * dim, dim), inv = n > 0 ? 1.0f / n : 0.0f;
            for (uint32_t i = 0; i < dim; i++) unit[i] = vectors[(size_t)r * dim + i] * inv;
            v = unit;
        }
        for (uint32_t i = 0; i < dim; i++) {
            if (v[i] < mins[i]) mins[i] = v[i];
            if (v[i] > maxs[i]) maxs[i] = v[i];
        }
    }
    float *scales = maxs; /* reuse: scale_i = (max_i - min_i) / 255 */
    for (uint32_t i = 0; i < dim; i++) scales[i] = (maxs[i] - mins[i]) / SQ8_LEVELS;
    store_u32(b + 0, SQ8_MAGIC);
    store_u32(b + 4, SQ8_VERSION);
    store_u32(b + 8, SQ8_HEADER_BYTES);
    store_u32(b + 12, (uint32_t)metric);
    store_u32(b + 16, rows);
    store_u32(b + 20, dim);
    store_u32(b + 24, (uint32_t)stride);
    memcpy(b + SQ8_HEADER_BYTES, mins, dim * sizeof(float));
    memcpy(b + SQ8_HEADER_BYTES + 4 * (size_t)dim, scales, dim * sizeof(float));
    /* Pass 2: the codes. */
    size_t b_offset = stride - 4;
    for (uint32_t r = 0; r < rows; r++) {
        const float *v = vectors + (size_t)r * dim;
        if (cosine) {
            float n = vec_norm(v, dim), inv = n > 0 ? 1.0f / n : 0.0f;
            for (uint32_t i = 0; i < dim; i++) unit[i] = v[i] * inv;
            v = unit;
        }
        uint8_t *c = b + off + (size_t)r * stride;
        double brow = 0;
        for (uint32_t i = 0; i < dim; i++) {
            float q = scales[i] > 0 ? (v[i] - mins[i]) / scales[i] : 0.0f;
            q = nearbyintf(q);
            if (!(q >= 0)) q = 0; /* also NaN */
            if (q > SQ8_LEVELS) q = SQ8_LEVELS;
            c[i] = (uint8_t)q;
            double x = (double)scales[i] * c[i];
            brow += x * x;
        }
        float bf = metric == TDB_METRIC_L2 ? (float)brow : 0.0f;
        memcpy(c + b_offset, &bf, sizeof bf);
    }
    free(mins);
    free(maxs);
    free(unit);
    *blob_out = b;
    *len_out = len;
    return 0;
}

#define CORRUPT(...) TDB_CORRUPT(err, "sq8 codes", 0, __VA_ARGS__)

int sq8_view_open(const void *blob, size_t len, uint32_t rows, uint32_t dim, tdb_metric metric,
                  sq8_view **out, tdb_error *err) {
    *out = NULL;
    const uint8_t *b = blob;
    if (!b || ((uintptr_t)b & 3) != 0)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "sq8 blob must be 4-byte aligned");
    if (dim == 0 || dim > VEC_MAX_DIM)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "dimension must be 1..%u", VEC_MAX_DIM);
    if (len < SQ8_HEADER_BYTES) return CORRUPT("sq8 blob of %zu bytes is shorter than its header", len);
    if (load_u32(b) != SQ8_MAGIC) return CORRUPT("sq8 blob has a bad magic");
    if (load_u32(b + 4) != SQ8_VERSION)
        return CORRUPT("sq8 blob version %u is not supported (this build reads %u)", load_u32(b + 4), SQ8_VERSION);
    if (load_u32(b + 8) != SQ8_HEADER_BYTES || load_u32(b + 28) != 0)
        return CORRUPT("sq8 blob header size or flags unknown");
    if (load_u32(b + 12) != (uint32_t)metric || load_u32(b + 16) != rows || load_u32(b + 20) != dim)
        return CORRUPT("sq8 blob is for %u rows of dim %u, segment has %u of dim %u", load_u32(b + 16),
                       load_u32(b + 20), rows, dim);
    size_t stride = row_stride(dim), off = codes_offset(dim);
    if (load_u32(b + 24) != stride) return CORRUPT("sq8 blob stride %u, expected %zu", load_u32(b + 24), stride);
    if (len != off + (size_t)rows * stride) return CORRUPT("sq8 blob is %zu bytes, its counts need %zu", len, off + (size_t)rows * stride);
    const float *mins = (const float *)(const void *)(b + SQ8_HEADER_BYTES);
    const float *scales = mins + dim;
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(mins[i]) || !isfinite(scales[i]) || scales[i] < 0)
            return CORRUPT("sq8 blob dimension %u has a bad range", i);
    sq8_view *v = calloc(1, sizeof *v);
    if (!v) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    v->rows = rows;
    v->dim = dim;
    v->metric = metric;
    v->stride = stride;
    v->b_offset = stride - 4;
    v->mins = mins;
    v->scales = scales;
    v->codes = b + off;
    *out = v;
    return 0;
}

void sq8_view_close(sq8_view *v) { free(v); }

void sq8_query_prepare(const sq8_view *v, const float *q, sq8_query *sq, float *qw) {
    double c = 0;
    float sign;
    if (v->metric == TDB_METRIC_L2) {
        for (uint32_t i = 0; i < v->dim; i++) {
            float d = q[i] - v->mins[i];
            qw[i] = v->scales[i] * d;
            c += (double)d * d;
        }
        sign = -2.0f;
        sq->qconst = (float)c;
    } else {
        for (uint32_t i = 0; i < v->dim; i++) {
            qw[i] = q[i] * v->scales[i];
            c += (double)q[i] * v->mins[i];
        }
        sign = -1.0f;
        sq->qconst = v->metric == TDB_METRIC_DOT ? (float)-c : (float)(1.0 - c);
    }
    float amax = 0;
    for (uint32_t i = 0; i < v->dim; i++) amax = fabsf(qw[i]) > amax ? fabsf(qw[i]) : amax;
    float step = amax > 0 ? amax / (float)VEC_I16_QUERY_MAX : 1.0f, inv = 1.0f / step;
    for (uint32_t i = 0; i < v->dim; i++) sq->qi[i] = (int16_t)lrintf(qw[i] * inv);
    sq->scale = sign * step;
}
