/*
 * rabitq.c: RaBitQ 1-bit codes (Gao & Long, SIGMOD 2024): the random
 * rotation, encoder, blob format, validating reader and query
 * preparation. The estimator itself is inline in rabitq.h.
 * Layer: vec. Encoded at flush beside the graph; used by hnsw_search to
 * compute an exact float distance only for rows whose estimated lower
 * bound can still enter the result list.
 *
 * Where we depart from the paper, and why:
 *   1. The rotation is not a dense random orthogonal matrix (D^2 floats
 *      and D^2 work per query) but T = H S3 H S2 H S1 / D'^(3/2): three
 *      rounds of random sign flips S and the Walsh-Hadamard transform H
 *      over D' = dim rounded up to a power of two (>= 64), zero padded.
 *      T is orthogonal (so norms and inner products are kept) and costs
 *      3 D' log2 D' additions per query; three rounds spread any input
 *      nearly as evenly as a dense random rotation does.
 *   2. One centroid (the mean of the encoded rows) instead of IVF
 *      clusters: the graph, not an inverted file, narrows the search.
 *   3. The query is quantized to B_q = 4 bits by rounding to nearest
 *      instead of randomized rounding: deterministic answers, and the
 *      extra error is far below the code's own (section 3.3 shows
 *      B_q = 4 is already negligible).
 *   4. The bound is used as a gate during the graph walk (hnsw_int.h)
 *      rather than to re-rank an IVF probe list.
 *
 * Estimator (section 3.2-3.3). Row o, centroid c, residual r = o - c
 * (unit-length o for cosine), o^ = r / |r|, code bits b = sign(T o^) > 0,
 * x_b = (2b - 1) / sqrt(D'), <x, o> = <x_b, T o^> = sum |T o^| / sqrt(D').
 * Query u (q - c, or q for dot), q' = T u / |u| quantized as
 * low + delta * qu_i with qu_i in 0..15. Then
 *   <x_b, q'> = (2 (delta sum b_i qu_i + low popcount(b)) - (delta sum qu + D' low)) / sqrt(D')
 *   <o^, u^> ~ <x_b, q'> / <x, o>, error <= EPS0 sqrt(1 - <x,o>^2) / (<x,o> sqrt(D' - 1))
 * with probability that grows with EPS0 (the paper's Theorem 3.2;
 * EPS0 = 1.9 makes failures rare in its experiments).
 *
 * Blob format, version 1 (little-endian; offsets from the blob start):
 *   offset size  field
 *   0      4     magic "RBQ1" (0x31514252)
 *   4      4     version (1)
 *   8      4     header bytes (64)
 *   12     4     metric
 *   16     4     rows
 *   20     4     dim
 *   24     4     dim_pad D' (power of two, >= max(dim, 64), < 2 max(dim, 64))
 *   28     4     stride: bytes per row = D' / 8 + 16
 *   32     4     eps0 (f32, > 0)
 *   36     4     flags (0)
 *   40     8     seed of the rotation (informational)
 *   48     16    zero
 *   64           centroid: dim x f32
 *   align 64     signs: 3 x D' / 8 bytes (bit i of round j: flip coordinate i)
 *   align 64     rows x stride: D' / 64 u64 code words, then f_add, f_mul,
 *                f_err, f_pop (f32 each; see rabitq.h)
 *   end          exactly after the last row
 * The reader refuses unknown magic/version/flags, counts that disagree
 * with the segment, a D' or stride or length that does not match, and a
 * non-finite centroid or eps0 (TDB_ECORRUPT).
 * Version history:
 *   1  first version.
 * Code size: D' / 8 + 16 bytes per row (<= dim / 4 + 16 for dim >= 64),
 * at most a sixteenth of the float row plus 16 bytes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/error.h"
#include "vec/rabitq.h"

#define RABITQ_MAGIC 0x31514252u
#define RABITQ_VERSION 1u
#define RABITQ_HEADER_BYTES 64u
#define RABITQ_MIN_PAD 64u /* one code word */
#define RABITQ_ROUNDS 3u
#define RABITQ_FACTORS 4u
/* Confidence multiplier of the error bound (the paper's epsilon_0). */
#define RABITQ_EPS0 1.9f
#define RABITQ_QUERY_LEVELS 15.0f /* B_q = 4 bits */

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

static uint32_t pad_dim(uint32_t dim) {
    uint32_t d = RABITQ_MIN_PAD;
    while (d < dim) d *= 2;
    return d;
}

typedef struct layout {
    size_t signs, codes, stride, end;
} layout;

static layout blob_layout(uint32_t rows, uint32_t dim, uint32_t dpad) {
    layout l;
    l.signs = align64(RABITQ_HEADER_BYTES + 4 * (size_t)dim);
    l.codes = align64(l.signs + RABITQ_ROUNDS * (size_t)dpad / 8);
    l.stride = (size_t)dpad / 8 + RABITQ_FACTORS * sizeof(float);
    l.end = l.codes + (size_t)rows * l.stride;
    return l;
}

/* x (D' floats) <- T x. */
static void rotate(const vec_kernels *k, const uint8_t *signs, uint32_t dpad, float *x) {
    for (uint32_t round = 0; round < RABITQ_ROUNDS; round++) {
        const uint8_t *s = signs + (size_t)round * dpad / 8;
        for (uint32_t i = 0; i < dpad; i++) {
            uint32_t bits;
            memcpy(&bits, &x[i], 4);
            bits ^= (uint32_t)((s[i >> 3] >> (i & 7)) & 1) << 31; /* flip the sign bit */
            memcpy(&x[i], &bits, 4);
        }
        k->fwht(x, dpad);
    }
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t x = (*state += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int rabitq_encode(const float *vectors, uint32_t rows, uint32_t dim, tdb_metric metric,
                  uint64_t seed, void **blob_out, size_t *len_out, tdb_error *err) {
    *blob_out = NULL;
    *len_out = 0;
    if (dim == 0 || dim > VEC_MAX_DIM || (rows && !vectors))
        return tdb_err(err, TDB_EINVAL, "invalid_request", "rabitq needs vectors of dimension 1..%u", VEC_MAX_DIM);
    uint32_t dpad = pad_dim(dim), words = dpad / 64;
    layout lay = blob_layout(rows, dim, dpad);
    uint8_t *b = calloc(1, lay.end);
    double *sum = calloc(dim, sizeof *sum);
    float *work = malloc(dpad * sizeof *work);
    if (!b || !sum || !work) {
        free(b);
        free(sum);
        free(work);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    }
    bool cosine = metric == TDB_METRIC_COSINE;
    store_u32(b + 0, RABITQ_MAGIC);
    store_u32(b + 4, RABITQ_VERSION);
    store_u32(b + 8, RABITQ_HEADER_BYTES);
    store_u32(b + 12, (uint32_t)metric);
    store_u32(b + 16, rows);
    store_u32(b + 20, dim);
    store_u32(b + 24, dpad);
    store_u32(b + 28, (uint32_t)lay.stride);
    float eps0 = RABITQ_EPS0;
    memcpy(b + 32, &eps0, 4);
    store_u64(b + 40, seed);

    /* The centroid of the rows as encoded. */
    for (uint32_t r = 0; r < rows; r++) {
        const float *v = vectors + (size_t)r * dim;
        float inv = 1.0f;
        if (cosine) {
            float n = vec_norm(v, dim);
            inv = n > 0 ? 1.0f / n : 0.0f;
        }
        for (uint32_t i = 0; i < dim; i++) sum[i] += (double)v[i] * inv;
    }
    float *centroid = (float *)(void *)(b + RABITQ_HEADER_BYTES);
    for (uint32_t i = 0; i < dim; i++) centroid[i] = rows ? (float)(sum[i] / rows) : 0.0f;
    uint8_t *signs = b + lay.signs;
    uint64_t state = seed;
    for (size_t i = 0; i < RABITQ_ROUNDS * (size_t)dpad / 8; i++) signs[i] = (uint8_t)splitmix64(&state);

    float inv_sqrt_d = 1.0f / sqrtf((float)dpad);
    float err_scale = eps0 / sqrtf((float)(dpad - 1));
    for (uint32_t r = 0; r < rows; r++) {
        const float *v = vectors + (size_t)r * dim;
        float inv = 1.0f;
        if (cosine) {
            float n = vec_norm(v, dim);
            inv = n > 0 ? 1.0f / n : 0.0f;
        }
        double n2 = 0;
        for (uint32_t i = 0; i < dim; i++) {
            work[i] = v[i] * inv - centroid[i];
            n2 += (double)work[i] * work[i];
        }
        for (uint32_t i = dim; i < dpad; i++) work[i] = 0;
        uint8_t *row = b + lay.codes + (size_t)r * lay.stride;
        uint64_t *code = (uint64_t *)(void *)row;
        float f[RABITQ_FACTORS] = {0, 0, 0, 0};
        float nr = (float)sqrt(n2);
        if (nr > 0) {
            float inv_nr = 1.0f / nr;
            for (uint32_t i = 0; i < dim; i++) work[i] *= inv_nr;
            rotate(vec_kernels_get(), signs, dpad, work);
            double abs_sum = 0;
            uint32_t pop = 0;
            for (uint32_t i = 0; i < dpad; i++) {
                abs_sum += fabsf(work[i]);
                if (work[i] > 0) {
                    code[i >> 6] |= 1ull << (i & 63);
                    pop++;
                }
            }
            float ip = (float)abs_sum * inv_sqrt_d; /* <x, o>, in (0, 1] */
            if (ip > 1.0f) ip = 1.0f;
            f[0] = metric == TDB_METRIC_DOT ? 0.0f : (float)n2;
            f[1] = ip > 0 ? nr / ip : 0.0f;
            f[2] = ip > 0 ? nr * err_scale * sqrtf(1.0f - ip * ip) / ip : 0.0f;
            f[3] = (float)pop;
        }
        memcpy(code + words, f, sizeof f);
    }
    free(sum);
    free(work);
    *blob_out = b;
    *len_out = lay.end;
    return 0;
}

#define CORRUPT(...) TDB_CORRUPT(err, "rabitq codes", 0, __VA_ARGS__)

int rabitq_view_open(const void *blob, size_t len, uint32_t rows, uint32_t dim, tdb_metric metric,
                     rabitq_view **out, tdb_error *err) {
    *out = NULL;
    const uint8_t *b = blob;
    if (!b || ((uintptr_t)b & 7) != 0)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "rabitq blob must be 8-byte aligned");
    if (dim == 0 || dim > VEC_MAX_DIM)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "dimension must be 1..%u", VEC_MAX_DIM);
    if (len < RABITQ_HEADER_BYTES) return CORRUPT("rabitq blob of %zu bytes is shorter than its header", len);
    if (load_u32(b) != RABITQ_MAGIC) return CORRUPT("rabitq blob has a bad magic");
    if (load_u32(b + 4) != RABITQ_VERSION)
        return CORRUPT("rabitq blob version %u is not supported (this build reads %u)", load_u32(b + 4), RABITQ_VERSION);
    if (load_u32(b + 8) != RABITQ_HEADER_BYTES || load_u32(b + 36) != 0)
        return CORRUPT("rabitq blob header size or flags unknown");
    if (load_u32(b + 12) != (uint32_t)metric || load_u32(b + 16) != rows || load_u32(b + 20) != dim)
        return CORRUPT("rabitq blob is for %u rows of dim %u, segment has %u of dim %u", load_u32(b + 16),
                       load_u32(b + 20), rows, dim);
    uint32_t dpad = pad_dim(dim);
    layout lay = blob_layout(rows, dim, dpad);
    if (load_u32(b + 24) != dpad || load_u32(b + 28) != lay.stride)
        return CORRUPT("rabitq blob padded dimension %u / stride %u, expected %u / %zu", load_u32(b + 24),
                       load_u32(b + 28), dpad, lay.stride);
    if (len != lay.end) return CORRUPT("rabitq blob is %zu bytes, its counts need %zu", len, lay.end);
    float eps0;
    memcpy(&eps0, b + 32, 4);
    if (!isfinite(eps0) || eps0 <= 0) return CORRUPT("rabitq blob has a bad eps0");
    const float *centroid = (const float *)(const void *)(b + RABITQ_HEADER_BYTES);
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(centroid[i])) return CORRUPT("rabitq blob centroid is not finite at %u", i);
    rabitq_view *v = calloc(1, sizeof *v);
    if (!v) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    v->rows = rows;
    v->dim = dim;
    v->dim_pad = dpad;
    v->words = dpad / 64;
    v->metric = metric;
    v->eps0 = eps0;
    v->stride = lay.stride;
    v->centroid = centroid;
    v->signs = b + lay.signs;
    v->codes = b + lay.codes;
    *out = v;
    return 0;
}

void rabitq_view_close(rabitq_view *v) { free(v); }

size_t rabitq_query_floats(const rabitq_view *v) { return 2 * (size_t)v->dim_pad; }

void rabitq_query_prepare(const rabitq_view *v, const float *q, rabitq_query *rq, float *work) {
    uint32_t dim = v->dim, dpad = v->dim_pad, words = v->words;
    double n2 = 0, cq = 0;
    for (uint32_t i = 0; i < dim; i++) {
        float u = v->metric == TDB_METRIC_DOT ? q[i] : q[i] - v->centroid[i];
        work[i] = u;
        n2 += (double)u * u;
        cq += (double)v->centroid[i] * q[i];
    }
    for (uint32_t i = dim; i < dpad; i++) work[i] = 0;
    memset(rq->planes, 0, 4 * (size_t)words * sizeof *rq->planes);
    rq->u_norm = (float)sqrt(n2);
    rq->u_norm2 = (float)n2;
    rq->cq = (float)cq;
    rq->inv_sqrt_d = 1.0f / sqrtf((float)dpad);
    rq->delta = rq->low = rq->sum_q = 0;
    rq->bound_scale = RABITQ_SEARCH_EPS0 / v->eps0;
    if (rq->u_norm == 0) return; /* every estimate of <r, u> is then exactly 0 */
    float inv = 1.0f / rq->u_norm;
    for (uint32_t i = 0; i < dim; i++) work[i] *= inv;
    rotate(vec_kernels_get(), v->signs, dpad, work);
    float lo = work[0], hi = work[0];
    for (uint32_t i = 1; i < dpad; i++) {
        if (work[i] < lo) lo = work[i];
        if (work[i] > hi) hi = work[i];
    }
    float delta = (hi - lo) / RABITQ_QUERY_LEVELS;
    float inv_delta = delta > 0 ? 1.0f / delta : 0.0f;
    uint32_t sum = 0;
    for (uint32_t w = 0; w < words; w++) {
        uint64_t p0 = 0, p1 = 0, p2 = 0, p3 = 0;
        for (uint32_t t = 0; t < 64; t++) {
            float x = (work[w * 64 + t] - lo) * inv_delta + 0.5f; /* >= 0.5: round to nearest */
            uint32_t qu = x >= RABITQ_QUERY_LEVELS ? 15u : (uint32_t)x;
            sum += qu;
            p0 |= (uint64_t)(qu & 1) << t;
            p1 |= (uint64_t)((qu >> 1) & 1) << t;
            p2 |= (uint64_t)((qu >> 2) & 1) << t;
            p3 |= (uint64_t)((qu >> 3) & 1) << t;
        }
        rq->planes[w] = p0;
        rq->planes[words + w] = p1;
        rq->planes[2 * (size_t)words + w] = p2;
        rq->planes[3 * (size_t)words + w] = p3;
    }
    rq->delta = delta;
    rq->low = lo;
    rq->sum_q = (float)sum;
}
