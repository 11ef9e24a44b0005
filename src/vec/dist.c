/*
 * dist.c: distance dispatch, norms, API distances and the top-k heap.
 * Layer: vec. The scalar kernels here are the reference for the SIMD ones.
 */
#include <math.h>
#include <stdlib.h>

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

static const vec_kernels scalar_kernels = {"scalar", l2sq_scalar, dot_scalar};

const vec_kernels *vec_kernels_scalar(void) { return &scalar_kernels; }
const vec_kernels *vec_kernels_get(void) { return &scalar_kernels; }

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
