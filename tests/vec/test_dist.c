/*
 * test_dist.c: every kernel set this CPU runs (scalar, AVX2, AVX-512)
 * against a double-precision reference, the top-k heap, and exact search.
 * Inputs: fixed-seed random vectors, edge values, every dimension 1..130
 * plus a few up to 4096, at unaligned offsets so tails and unaligned loads
 * are exercised.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vec/vec.h"

static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static float rng_float(void) { return (float)((rng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

#define MAX_DIM 4096
#define PAD 16 /* floats of slack so the offsets below stay in bounds */

static const size_t big_dims[] = {255, 256, 257, 511, 512, 768, 784, 1000, 1023, 1024, 1536, 4095, 4096};

/* Floats carry 24 bits: a sum of n products in any order is within
 * about n * eps * sum|terms| of the exact value; the SIMD sums are blocked,
 * so the real error is far below this, but the bound must hold for the
 * scalar reference too. */
static void check_close(double got, double ref, double sum_abs, size_t n, const char *what,
                        size_t dim, const char *set) {
    double tol = 1e-30 + (double)(n + 2) * 1.2e-7 * sum_abs;
    if (fabs(got - ref) > tol)
        fail_msg("%s/%s dim %zu: got %.9g want %.9g (tol %.3g)", set, what, dim, got, ref, tol);
}

static void check_sets_on(const float *a, const float *b, const uint8_t *c, size_t dim) {
    double l2 = 0, l2abs = 0, dot = 0, dotabs = 0, du8 = 0, du8abs = 0;
    for (size_t i = 0; i < dim; i++) {
        double d = (double)a[i] - b[i];
        l2 += d * d;
        l2abs += d * d;
        dot += (double)a[i] * b[i];
        dotabs += fabs((double)a[i] * b[i]);
        du8 += (double)a[i] * c[i];
        du8abs += fabs((double)a[i] * c[i]);
    }
    size_t n;
    const vec_kernels *const *sets = vec_kernels_available(&n);
    for (size_t s = 0; s < n; s++) {
        check_close(sets[s]->l2sq(a, b, dim), l2, l2abs, dim, "l2sq", dim, sets[s]->name);
        check_close(sets[s]->dot(a, b, dim), dot, dotabs, dim, "dot", dim, sets[s]->name);
        check_close(sets[s]->dot_u8(a, c, dim), du8, du8abs, dim, "dot_u8", dim, sets[s]->name);
    }
}

static void kernels_match_reference_every_dim_unaligned(void **state) {
    (void)state;
    rng_state = 0x1234567u;
    float *a = malloc((MAX_DIM + PAD) * sizeof *a), *b = malloc((MAX_DIM + PAD) * sizeof *b);
    uint8_t *c = malloc(MAX_DIM + PAD);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    for (size_t dim = 1; dim <= 130 + sizeof big_dims / sizeof big_dims[0]; dim++) {
        size_t d = dim <= 130 ? dim : big_dims[dim - 131];
        for (size_t off = 0; off < 4; off++) { /* float offsets 0..3: 16-byte and odd alignments */
            float *pa = a + off, *pb = b + (3 - off);
            uint8_t *pc = c + off * 5;
            for (size_t i = 0; i < d; i++) {
                pa[i] = rng_float() * 10.0f;
                pb[i] = rng_float() * 10.0f;
                pc[i] = (uint8_t)(rng_next() >> 56);
            }
            check_sets_on(pa, pb, pc, d);
        }
    }
    free(a);
    free(b);
    free(c);
}

static void dot_u8_i16_exact_every_dim(void **state) {
    (void)state;
    rng_state = 4242;
    int16_t a[VEC_MAX_DIM + 8];
    uint8_t c[VEC_MAX_DIM + 8];
    size_t n;
    const vec_kernels *const *sets = vec_kernels_available(&n);
    for (size_t dim = 1; dim <= 130 + sizeof big_dims / sizeof big_dims[0]; dim++) {
        size_t d = dim <= 130 ? dim : big_dims[dim - 131];
        for (size_t off = 0; off < 3; off++) {
            int16_t *pa = a + off;
            uint8_t *pc = c + 2 - off;
            for (size_t i = 0; i < d; i++) {
                /* extremes often: the sum must stay exact in int32 */
                pa[i] = (int16_t)((rng_next() & 3) == 0 ? ((i & 1) ? VEC_I16_QUERY_MAX : -VEC_I16_QUERY_MAX)
                                                       : (int)(rng_next() % (2 * VEC_I16_QUERY_MAX + 1)) - VEC_I16_QUERY_MAX);
                pc[i] = (rng_next() & 3) == 0 ? 255 : (uint8_t)(rng_next() >> 56);
            }
            int64_t want = 0;
            for (size_t i = 0; i < d; i++) want += (int64_t)pa[i] * pc[i];
            for (size_t s = 0; s < n; s++) {
                int32_t got = sets[s]->dot_u8_i16(pa, pc, d);
                if (got != want) fail_msg("%s dot_u8_i16 dim %zu: %d != %lld", sets[s]->name, d, got, (long long)want);
            }
        }
    }
    /* the worst case the bound allows: all terms of one sign at the maximum */
    for (size_t i = 0; i < VEC_MAX_DIM; i++) {
        a[i] = VEC_I16_QUERY_MAX;
        c[i] = 255;
    }
    for (size_t s = 0; s < n; s++)
        assert_int_equal(sets[s]->dot_u8_i16(a, c, VEC_MAX_DIM), (int64_t)VEC_I16_QUERY_MAX * 255 * VEC_MAX_DIM);
}

static void fwht_matches_hadamard_and_keeps_norms(void **state) {
    (void)state;
    rng_state = 31337;
    static float x[4096], y[4096];
    static double ref[4096];
    size_t n_sets;
    const vec_kernels *const *sets = vec_kernels_available(&n_sets);
    for (size_t n = 16; n <= 4096; n *= 2) {
        for (size_t i = 0; i < n; i++) x[i] = rng_float();
        /* reference: H[i][j] = (-1)^popcount(i & j) / sqrt(n) */
        double norm2 = 0;
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (size_t j = 0; j < n; j++) s += (__builtin_popcountll(i & j) & 1) ? -x[j] : x[j];
            ref[i] = s / sqrt((double)n);
            norm2 += (double)x[i] * x[i];
        }
        for (size_t s = 0; s < n_sets; s++) {
            memcpy(y, x, n * sizeof *y);
            sets[s]->fwht(y, n);
            double got2 = 0;
            for (size_t i = 0; i < n; i++) {
                if (fabs(y[i] - ref[i]) > 1e-4 * (1 + fabs(ref[i])))
                    fail_msg("%s fwht n %zu at %zu: %g != %g", sets[s]->name, n, i, y[i], ref[i]);
                got2 += (double)y[i] * y[i];
            }
            assert_true(fabs(got2 - norm2) <= 1e-4 * norm2);
        }
    }
}

static void kernels_edge_values(void **state) {
    (void)state;
    float a[130], b[130];
    uint8_t c[130];
    for (size_t dim = 1; dim <= 130; dim++) {
        /* zeros */
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        memset(c, 0, sizeof c);
        check_sets_on(a, b, c, dim);
        /* equal vectors: l2sq exactly 0 in every set */
        for (size_t i = 0; i < dim; i++) a[i] = b[i] = (float)i - 3.5f;
        size_t n;
        const vec_kernels *const *sets = vec_kernels_available(&n);
        for (size_t s = 0; s < n; s++) assert_true(sets[s]->l2sq(a, b, dim) == 0.0f);
        /* large and tiny magnitudes, max codes */
        for (size_t i = 0; i < dim; i++) {
            a[i] = (i & 1) ? 1e18f : -1e-18f;
            b[i] = (i & 2) ? -1e18f : 1e-20f;
            c[i] = 255;
        }
        check_sets_on(a, b, c, dim);
    }
}

static uint32_t ip_bits4_ref(const uint64_t *x, const uint64_t *planes, size_t words) {
    uint32_t s = 0;
    for (size_t w = 0; w < words; w++)
        for (int bit = 0; bit < 64; bit++) {
            if (!((x[w] >> bit) & 1)) continue;
            uint32_t q = 0;
            for (int j = 0; j < 4; j++) q |= (uint32_t)((planes[j * words + w] >> bit) & 1) << j;
            s += q;
        }
    return s;
}

static void ip_bits4_matches_reference(void **state) {
    (void)state;
    rng_state = 99;
    uint64_t x[70], planes[4 * 70];
    size_t n;
    const vec_kernels *const *sets = vec_kernels_available(&n);
    for (size_t words = 1; words <= 70; words++) {
        for (int rep = 0; rep < 3; rep++) {
            for (size_t w = 0; w < words; w++) x[w] = rep == 2 ? ~0ull : rng_next();
            for (size_t w = 0; w < 4 * words; w++) planes[w] = rep == 1 ? ~0ull : rng_next();
            uint32_t want = ip_bits4_ref(x, planes, words);
            for (size_t s = 0; s < n; s++) {
                uint32_t got = sets[s]->ip_bits4(x, planes, words);
                if (got != want) fail_msg("%s words %zu: %u != %u", sets[s]->name, words, got, want);
            }
        }
    }
}

static void dispatch_picks_best_available(void **state) {
    (void)state;
    size_t n;
    const vec_kernels *const *sets = vec_kernels_available(&n);
    assert_true(n >= 1);
    assert_string_equal(sets[0]->name, "scalar");
    assert_ptr_equal(vec_kernels_scalar(), sets[0]);
    const char *cap = getenv("TDB_SIMD");
    if (!cap) assert_ptr_equal(vec_kernels_get(), sets[n - 1]);
    assert_ptr_equal(vec_kernels_get(), vec_kernels_get());
}

static void distance_per_api(void **state) {
    (void)state;
    float q[3] = {1, 0, 0}, v[3] = {0, 2, 0};
    assert_float_equal(vec_distance(TDB_METRIC_L2, q, 1, v, 2, 3), sqrtf(5.0f), 1e-6);
    assert_float_equal(vec_distance(TDB_METRIC_DOT, q, 1, v, 2, 3), 0.0f, 1e-6);
    assert_float_equal(vec_distance(TDB_METRIC_COSINE, q, 1, v, 2, 3), 1.0f, 1e-6);
    float w[3] = {2, 0, 0};
    assert_float_equal(vec_distance(TDB_METRIC_COSINE, q, 1, w, vec_norm(w, 3), 3), 0.0f, 1e-6);
    assert_float_equal(vec_distance(TDB_METRIC_DOT, q, 1, w, 2, 3), -2.0f, 1e-6);
}

static void topk_keeps_k_smallest_ties_by_id(void **state) {
    (void)state;
    vec_topk t;
    assert_int_equal(vec_topk_init(&t, 3), 0);
    assert_true(isinf(vec_topk_bound(&t)));
    /* all distances equal: the three smallest ids win, whatever the order */
    uint64_t ids[] = {9, 4, 7, 1, 8, 3, 2};
    for (size_t i = 0; i < 7; i++) vec_topk_push(&t, 1.0f, ids[i]);
    vec_topk_sort(&t);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.ids[0], 1);
    assert_int_equal(t.ids[1], 2);
    assert_int_equal(t.ids[2], 3);
    vec_topk_free(&t);

    assert_int_equal(vec_topk_init(&t, 4), 0);
    float d[] = {5, 1, 3, 1, 0.5f, 7, 3};
    for (size_t i = 0; i < 7; i++) vec_topk_push(&t, d[i], 100 - i);
    assert_float_equal(vec_topk_bound(&t), 3.0f, 0);
    vec_topk_sort(&t);
    /* 0.5 (id 96), 1 (id 97), 1 (id 99), 3 (id 94 beats id 98) */
    assert_int_equal(t.ids[0], 96);
    assert_int_equal(t.ids[1], 97);
    assert_int_equal(t.ids[2], 99);
    assert_int_equal(t.ids[3], 94);
    vec_topk_free(&t);

    assert_int_equal(vec_topk_init(&t, 0), 0);
    vec_topk_push(&t, 1, 1);
    assert_int_equal(t.n, 0);
    vec_topk_free(&t);
    vec_topk_free(&t); /* twice is harmless */
}

static void topk_random_matches_sort(void **state) {
    (void)state;
    rng_state = 5;
    enum { N = 2000, K = 37 };
    float d[N];
    for (size_t i = 0; i < N; i++) d[i] = (float)(rng_next() % 300); /* many ties */
    vec_topk t;
    assert_int_equal(vec_topk_init(&t, K), 0);
    for (size_t i = 0; i < N; i++) vec_topk_push(&t, d[i], i);
    vec_topk_sort(&t);
    /* reference: selection by (distance, id) */
    uint8_t taken[N] = {0};
    for (size_t r = 0; r < K; r++) {
        size_t best = N;
        for (size_t i = 0; i < N; i++)
            if (!taken[i] && (best == N || d[i] < d[best])) best = i;
        taken[best] = 1;
        assert_int_equal(t.ids[r], best);
        assert_float_equal(t.dist[r], d[best], 0);
    }
    vec_topk_free(&t);
}

static void exact_search_filters_and_orders(void **state) {
    (void)state;
    enum { ROWS = 300, DIM = 7 };
    float *v = malloc(ROWS * DIM * sizeof *v);
    assert_non_null(v);
    rng_state = 77;
    for (size_t i = 0; i < ROWS * DIM; i++) v[i] = rng_float();
    float q[DIM];
    for (size_t i = 0; i < DIM; i++) q[i] = rng_float();
    uint64_t bits[(ROWS + 63) / 64] = {0};
    for (uint32_t r = 0; r < ROWS; r += 7) bits[r >> 6] |= 1ull << (r & 63);
    vec_filter f = {bits, NULL, NULL};
    tdb_metric metrics[] = {TDB_METRIC_L2, TDB_METRIC_COSINE, TDB_METRIC_DOT};
    for (int mi = 0; mi < 3; mi++) {
        vec_hit hits[60];
        uint32_t n;
        assert_int_equal(vec_search_exact(metrics[mi], q, v, NULL, ROWS, DIM, &f, 60, hits, &n, NULL), 0);
        assert_int_equal(n, (ROWS + 6) / 7); /* 43 matches < k */
        for (uint32_t i = 0; i < n; i++) {
            assert_int_equal(hits[i].row % 7, 0);
            float want = vec_distance(metrics[mi], q, vec_norm(q, DIM), v + hits[i].row * DIM,
                                      vec_norm(v + hits[i].row * DIM, DIM), DIM);
            assert_float_equal(hits[i].distance, want, 1e-5);
            if (i) assert_true(hits[i - 1].distance <= hits[i].distance);
        }
        assert_int_equal(vec_search_exact(metrics[mi], q, v, NULL, ROWS, DIM, NULL, 5, hits, &n, NULL), 0);
        assert_int_equal(n, 5);
    }
    free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kernels_match_reference_every_dim_unaligned),
        cmocka_unit_test(kernels_edge_values),
        cmocka_unit_test(dot_u8_i16_exact_every_dim),
        cmocka_unit_test(fwht_matches_hadamard_and_keeps_norms),
        cmocka_unit_test(ip_bits4_matches_reference),
        cmocka_unit_test(dispatch_picks_best_available),
        cmocka_unit_test(distance_per_api),
        cmocka_unit_test(topk_keeps_k_smallest_ties_by_id),
        cmocka_unit_test(topk_random_matches_sort),
        cmocka_unit_test(exact_search_filters_and_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
