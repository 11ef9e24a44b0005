/*
 * vec_testdata.h: fixed-seed data for the vec tests: a Gaussian mixture
 * (clustered, as real embeddings are; uniform random points in many
 * dimensions have no near neighbours worth finding), exact answers and
 * recall. Header-only, static, for tests/vec/test_*.c.
 */
#ifndef TDB_TESTS_VEC_TESTDATA_H
#define TDB_TESTS_VEC_TESTDATA_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "vec/vec.h"

#ifndef TD_SPREAD
#define TD_SPREAD 1.0f
#endif

typedef struct td_rng {
    uint64_t s;
} td_rng;

static inline uint64_t td_next(td_rng *r) {
    uint64_t x = (r->s += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static inline double td_unit(td_rng *r) { return ((td_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static inline float td_gauss(td_rng *r) {
    return (float)(sqrt(-2.0 * log(td_unit(r))) * cos(6.283185307179586 * td_unit(r)));
}

/* n rows of dim floats around `centres` random centres (TD_SPREAD of the
 * centre scale: clusters overlap, so neighbours are not trivially the own
 * cluster's); with scale_norms the rows get norms in [0.5, 1.5] times
 * (so dot and cosine rank differently). malloc'ed. */
static inline float *td_mixture(uint64_t seed, uint32_t n, uint32_t dim, uint32_t centres,
                                int scale_norms) {
    td_rng r = {seed};
    float *c = malloc((size_t)centres * dim * sizeof *c);
    float *v = malloc((size_t)n * dim * sizeof *v);
    if (!c || !v) abort();
    for (size_t i = 0; i < (size_t)centres * dim; i++) c[i] = td_gauss(&r);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)(td_next(&r) % centres);
        float f = scale_norms ? (float)(0.5 + td_unit(&r)) : 1.0f;
        for (uint32_t d = 0; d < dim; d++)
            v[(size_t)i * dim + d] = f * (c[(size_t)k * dim + d] + TD_SPREAD * td_gauss(&r));
    }
    free(c);
    return v;
}

/* Fraction of the exact top-k (filtered) rows found in got[0..n). */
static inline double td_recall(tdb_metric metric, const float *q, const float *base, uint32_t rows,
                               uint32_t dim, const vec_filter *f, uint32_t k, const vec_hit *got,
                               uint32_t n) {
    vec_hit *want = malloc(k * sizeof *want);
    uint32_t nw = 0;
    if (!want) abort();
    vec_search_exact(metric, q, base, NULL, rows, dim, f, k, want, &nw, NULL);
    uint32_t hit = 0;
    for (uint32_t i = 0; i < nw; i++)
        for (uint32_t j = 0; j < n; j++)
            if (got[j].row == want[i].row) {
                hit++;
                break;
            }
    free(want);
    return nw ? (double)hit / nw : 1.0;
}

#endif
