/*
 * dist.c: distance dispatch, the scalar reference kernels, norms, API
 * distances and the top-k heap.
 * Layer: vec. Called by every vector search (storage's exact scan, HNSW,
 * quantized codes). Uses dist_avx2.c / dist_avx512.c behind one table.
 *
 * Dispatch: vec_kernels_get() picks, once per process, the best kernel set
 * the CPU supports (__builtin_cpu_supports): AVX-512 when F, BW, DQ, VL
 * and VPOPCNTDQ are all there, else AVX2+FMA, else scalar. The environment
 * variable TDB_SIMD=scalar|avx2|avx512 caps the choice (for benchmarks and
 * to rule a kernel out when hunting a bug); it can never select a set the
 * CPU lacks. The scalar kernels are the reference the tests compare every
 * other set against.
 * Concurrency: the choice is published through an atomic pointer; two
 * threads racing on the first call compute the same answer.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "vec/dist_simd.h"
#include "vec/vec.h"

static float l2sq_scalar(const float *a, const float *b, size_t dim) {
    float s = 0;
    for (size_t i = 0; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static float dot_scalar(const float *a, const float *b, size_t dim) {
    float s = 0;
    for (size_t i = 0; i < dim; i++) s += a[i] * b[i];
    return s;
}

static float dot_u8_scalar(const float *a, const uint8_t *codes, size_t dim) {
    float s = 0;
    for (size_t i = 0; i < dim; i++) s += a[i] * (float)codes[i];
    return s;
}

static uint32_t ip_bits4_scalar(const uint64_t *bits, const uint64_t *planes, size_t words) {
    uint32_t s = 0;
    for (uint32_t j = 0; j < 4; j++) {
        uint32_t c = 0;
        for (size_t w = 0; w < words; w++) c += (uint32_t)__builtin_popcountll(bits[w] & planes[j * words + w]);
        s += c << j;
    }
    return s;
}

static int32_t dot_u8_i16_scalar(const int16_t *a, const uint8_t *codes, size_t dim) {
    int32_t s = 0;
    for (size_t i = 0; i < dim; i++) s += (int32_t)a[i] * codes[i];
    return s;
}

void vec_fwht_scalar(float *x, size_t n) {
    for (size_t h = 1; h < n; h *= 2)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    float s = 1.0f / sqrtf((float)n);
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

static const vec_kernels scalar_kernels = {"scalar", l2sq_scalar, dot_scalar, dot_u8_scalar,
                                           ip_bits4_scalar, dot_u8_i16_scalar, vec_fwht_scalar};

const vec_kernels *vec_kernels_scalar(void) { return &scalar_kernels; }

/* Index into the list below: 0 scalar, 1 avx2, 2 avx512. */
static int cpu_level(void) {
#ifdef VEC_HAVE_X86
    __builtin_cpu_init();
    int level = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = 1;
    if (level == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vpopcntdq"))
        level = 2;
    return level;
#else
    return 0;
#endif
}

static const vec_kernels *const *kernel_list(size_t *n) {
#ifdef VEC_HAVE_X86
    static const vec_kernels *const all[] = {&scalar_kernels, &vec_kernels_avx2, &vec_kernels_avx512};
#else
    static const vec_kernels *const all[] = {&scalar_kernels};
#endif
    *n = sizeof all / sizeof all[0];
    return all;
}

const vec_kernels *const *vec_kernels_available(size_t *n) {
    size_t total;
    const vec_kernels *const *all = kernel_list(&total);
    int level = cpu_level();
    *n = (size_t)level + 1 < total ? (size_t)level + 1 : total;
    return all;
}

static _Atomic(const vec_kernels *) chosen;

const vec_kernels *vec_kernels_get(void) {
    const vec_kernels *k = atomic_load_explicit(&chosen, memory_order_acquire);
    if (k) return k;
    size_t n;
    const vec_kernels *const *all = vec_kernels_available(&n);
    size_t pick = n - 1;
    const char *cap = getenv("TDB_SIMD");
    if (cap) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(cap, all[i]->name) == 0) pick = i;
    }
    k = all[pick];
    atomic_store_explicit(&chosen, k, memory_order_release);
    return k;
}

float vec_norm(const float *a, size_t dim) { return sqrtf(vec_kernels_get()->dot(a, a, dim)); }

float vec_distance(tdb_metric metric, const float *q, float q_norm, const float *v, float v_norm,
                   size_t dim) {
    const vec_kernels *k = vec_kernels_get();
    switch (metric) {
    case TDB_METRIC_L2: return sqrtf(k->l2sq(q, v, dim));
    case TDB_METRIC_DOT: return -k->dot(q, v, dim);
    case TDB_METRIC_COSINE:
    default: {
        float denom = q_norm * v_norm;
        if (denom == 0) return 1.0f;
        return 1.0f - k->dot(q, v, dim) / denom;
    }
    }
}

int vec_topk_init(vec_topk *t, size_t k) {
    t->k = k;
    t->n = 0;
    t->dist = malloc((k ? k : 1) * sizeof *t->dist);
    t->ids = malloc((k ? k : 1) * sizeof *t->ids);
    if (!t->dist || !t->ids) {
        vec_topk_free(t);
        return -1;
    }
    return 0;
}

void vec_topk_free(vec_topk *t) {
    free(t->dist);
    free(t->ids);
    t->dist = NULL;
    t->ids = NULL;
    t->n = t->k = 0;
}

/* a is worse than b: larger distance, or equal distance and larger id. */
static inline int worse(float da, uint64_t ia, float db, uint64_t ib) {
    return da > db || (da == db && ia > ib);
}

float vec_topk_bound(const vec_topk *t) { return t->n < t->k ? INFINITY : t->dist[0]; }

static void sift_down(vec_topk *t, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && worse(t->dist[l], t->ids[l], t->dist[m], t->ids[m])) m = l;
        if (r < t->n && worse(t->dist[r], t->ids[r], t->dist[m], t->ids[m])) m = r;
        if (m == i) return;
        float d = t->dist[i]; t->dist[i] = t->dist[m]; t->dist[m] = d;
        uint64_t id = t->ids[i]; t->ids[i] = t->ids[m]; t->ids[m] = id;
        i = m;
    }
}

void vec_topk_push(vec_topk *t, float dist, uint64_t id) {
    if (t->k == 0) return;
    if (t->n < t->k) {
        size_t i = t->n++;
        t->dist[i] = dist;
        t->ids[i] = id;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!worse(t->dist[i], t->ids[i], t->dist[p], t->ids[p])) break;
            float d = t->dist[i]; t->dist[i] = t->dist[p]; t->dist[p] = d;
            uint64_t x = t->ids[i]; t->ids[i] = t->ids[p]; t->ids[p] = x;
            i = p;
        }
        return;
    }
    if (!worse(t->dist[0], t->ids[0], dist, id)) return;
    t->dist[0] = dist;
    t->ids[0] = id;
    sift_down(t, 0);
}

void vec_topk_sort(vec_topk *t) {
    size_t n = t->n;
    while (t->n > 1) {
        size_t last = t->n - 1;
        float d = t->dist[0]; t->dist[0] = t->dist[last]; t->dist[last] = d;
        uint64_t x = t->ids[0]; t->ids[0] = t->ids[last]; t->ids[last] = x;
        t->n--;
        sift_down(t, 0);
    }
    t->n = n;
}

_Static_assert((int64_t)VEC_I16_QUERY_MAX * 255 * VEC_MAX_DIM <= INT32_MAX,
               "dot_u8_i16 sums must fit int32");
