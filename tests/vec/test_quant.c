/*
 * test_quant.c: SQ8 and RaBitQ codes: sizes, estimator accuracy (RaBitQ's
 * lower bound holds for nearly every pair), recall of graph searches on
 * codes after re-ranking for every metric, filters with codes, and blobs
 * refused when corrupt. Data: fixed-seed Gaussian mixtures.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"
#include "vec/hnsw.h"
#include "vec/rabitq.h"
#include "vec/sq8.h"
#include "vec_testdata.h"

#define ROWS 2500u
#define DIM 96u /* not a power of two: RaBitQ pads to 128 */
#define CENTRES 40u
#define QUERIES 100u
#define K 10u
#define RECALL_FLOOR 0.95

static const tdb_metric metrics[] = {TDB_METRIC_L2, TDB_METRIC_COSINE, TDB_METRIC_DOT};

static void codes_sizes_within_bounds(void **state) {
    (void)state;
    float *v = td_mixture(1, ROWS, DIM, CENTRES, 1);
    size_t floats = (size_t)ROWS * DIM * sizeof(float);
    for (int mi = 0; mi < 3; mi++) {
        void *b;
        size_t len;
        assert_int_equal(sq8_encode(v, ROWS, DIM, metrics[mi], &b, &len, NULL), 0);
        /* a quarter of the floats + 4-byte row factor + header and ranges */
        assert_true(len <= floats / 4 + 4 * (size_t)ROWS + 64 + 8 * DIM + 64);
        free(b);
        assert_int_equal(rabitq_encode(v, ROWS, DIM, metrics[mi], 7, &b, &len, NULL), 0);
        /* a sixteenth of the floats + 16-byte row factors + header, centroid, signs */
        assert_true(len <= floats / 16 + 16 * (size_t)ROWS + 64 + 4 * DIM + 3 * 128 / 8 + 128);
        free(b);
    }
    free(v);
}

static void encoding_is_deterministic(void **state) {
    (void)state;
    float *v = td_mixture(2, 500, DIM, 10, 0);
    void *a, *b;
    size_t la, lb;
    assert_int_equal(sq8_encode(v, 500, DIM, TDB_METRIC_L2, &a, &la, NULL), 0);
    assert_int_equal(sq8_encode(v, 500, DIM, TDB_METRIC_L2, &b, &lb, NULL), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    assert_int_equal(rabitq_encode(v, 500, DIM, TDB_METRIC_L2, 9, &a, &la, NULL), 0);
    assert_int_equal(rabitq_encode(v, 500, DIM, TDB_METRIC_L2, 9, &b, &lb, NULL), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    free(v);
}

/* Internal distance as the graph uses it (l2 squared, dot -<q,v>,
 * cosine 1 - cos), for comparing estimates. */
static float internal_dist(tdb_metric m, const float *q, const float *v) {
    switch (m) {
    case TDB_METRIC_L2: return vec_kernels_scalar()->l2sq(q, v, DIM);
    case TDB_METRIC_DOT: return -vec_kernels_scalar()->dot(q, v, DIM);
    default: return vec_distance(m, q, vec_norm(q, DIM), v, vec_norm(v, DIM), DIM);
    }
}

static void estimators_track_exact_distances(void **state) {
    (void)state;
    float *v = td_mixture(3, ROWS + QUERIES, DIM, CENTRES, 1);
    const float *queries = v + (size_t)ROWS * DIM;
    const vec_kernels *k = vec_kernels_get();
    for (int mi = 0; mi < 3; mi++) {
        tdb_metric m = metrics[mi];
        void *b1, *b2;
        size_t l1, l2;
        sq8_view *sv;
        rabitq_view *rv;
        assert_int_equal(sq8_encode(v, ROWS, DIM, m, &b1, &l1, NULL), 0);
        assert_int_equal(sq8_view_open(b1, l1, ROWS, DIM, m, &sv, NULL), 0);
        assert_int_equal(rabitq_encode(v, ROWS, DIM, m, 5, &b2, &l2, NULL), 0);
        assert_int_equal(rabitq_view_open(b2, l2, ROWS, DIM, m, &rv, NULL), 0);
        int16_t qi[DIM];
        float work[2 * 128], qn[DIM];
        uint64_t planes[4 * 2];
        sq8_query sq = {qi, 0, 0};
        rabitq_query rq = {.planes = planes};
        double sq8_err = 0, scale = 0;
        uint32_t pairs = 0, bound_fail = 0, wide_fail = 0;
        for (uint32_t i = 0; i < QUERIES; i++) {
            const float *q = queries + (size_t)i * DIM;
            if (m == TDB_METRIC_COSINE) { /* codes take unit queries for cosine */
                float n = vec_norm(q, DIM);
                for (uint32_t d = 0; d < DIM; d++) qn[d] = q[d] / n;
                q = qn;
            }
            sq8_query_prepare(sv, q, &sq, work);
            rabitq_query_prepare(rv, q, &rq, work);
            rq.bound_scale = 1.0f; /* the paper's bound (EPS0 1.9), not the search's tighter one */
            for (uint32_t r = 0; r < ROWS; r += 7) {
                float exact = internal_dist(m, q, v + (size_t)r * DIM);
                float est = sq8_distance(sv, k, &sq, r);
                sq8_err += fabs(est - exact);
                scale += fabs(exact);
                float lower;
                float est_rq = rabitq_estimate(rv, k, &rq, r, &lower);
                float slack = 1e-4f * (1 + fabsf(exact));
                if (lower > exact + slack) bound_fail++;
                /* 3 standard deviations instead of 1.9 */
                if (est_rq - (est_rq - lower) * (3.0f / 1.9f) > exact + slack) wide_fail++;
                pairs++;
            }
        }
        print_message("metric %d: sq8 mean relative error %.5f, rabitq lower bound above the "
                      "exact distance: %u / %u at EPS0 1.9, %u at 3.0\n",
                      m, sq8_err / scale, bound_fail, pairs, wide_fail);
        assert_true(sq8_err / scale < 0.01);
        /* The estimator's error is about normal with the standard deviation
         * the bound divides EPS0 out of: one-sided failures near 2.9% at
         * 1.9 and 0.13% at 3 standard deviations. */
        assert_true(bound_fail <= pairs / 20);
        assert_true(wide_fail <= pairs / 200);
        sq8_view_close(sv);
        rabitq_view_close(rv);
        free(b1);
        free(b2);
    }
    free(v);
}

static void search_on_codes_recall_after_rerank(void **state) {
    (void)state;
    for (int mi = 0; mi < 3; mi++) {
        tdb_metric m = metrics[mi];
        float *v = td_mixture(10 + mi, ROWS + QUERIES, DIM, CENTRES, m != TDB_METRIC_L2);
        const float *queries = v + (size_t)ROWS * DIM;
        hnsw_params p;
        hnsw_params_default(&p);
        p.ef_construction = 100; /* keeps the suite fast under ASan */
        void *g, *c1, *c2;
        size_t lg, l1, l2;
        assert_int_equal(hnsw_build(v, ROWS, DIM, m, &p, &g, &lg, NULL), 0);
        assert_int_equal(sq8_encode(v, ROWS, DIM, m, &c1, &l1, NULL), 0);
        assert_int_equal(rabitq_encode(v, ROWS, DIM, m, 5, &c2, &l2, NULL), 0);
        hnsw_view *view;
        sq8_view *sv;
        rabitq_view *rv;
        assert_int_equal(hnsw_view_open(g, lg, ROWS, DIM, m, v, NULL, &view, NULL), 0);
        assert_int_equal(sq8_view_open(c1, l1, ROWS, DIM, m, &sv, NULL), 0);
        assert_int_equal(rabitq_view_open(c2, l2, ROWS, DIM, m, &rv, NULL), 0);
        hnsw_scratch *s = hnsw_scratch_new();
        for (int kind = 0; kind < 2; kind++) {
            if (kind == 0)
                hnsw_view_use_sq8(view, sv);
            else
                hnsw_view_use_rabitq(view, rv);
            assert_true(hnsw_view_check(view));
            double sum = 0;
            uint64_t exact_d = 0, code_d = 0;
            for (uint32_t i = 0; i < QUERIES; i++) {
                const float *q = queries + (size_t)i * DIM;
                vec_hit hits[K];
                uint32_t n;
                hnsw_stats st;
                hnsw_query hq = {q, K, 64, NULL};
                assert_int_equal(hnsw_search(view, &hq, s, hits, &n, &st, NULL), 0);
                assert_int_equal(n, K);
                exact_d += st.distances;
                code_d += st.code_distances;
                /* re-ranked: API distances, exact, best first */
                for (uint32_t j = 0; j < n; j++) {
                    const float *r = v + (size_t)hits[j].row * DIM;
                    float want = vec_distance(m, q, vec_norm(q, DIM), r, vec_norm(r, DIM), DIM);
                    assert_float_equal(hits[j].distance, want, 1e-3 * (1 + fabsf(want)));
                    if (j) assert_true(hits[j - 1].distance <= hits[j].distance);
                }
                sum += td_recall(m, q, v, ROWS, DIM, NULL, K, hits, n);
            }
            print_message("metric %d %s: recall@10 at ef 64 = %.4f (%.0f exact, %.0f code distances per query)\n",
                          m, kind ? "rabitq" : "sq8", sum / QUERIES, (double)exact_d / QUERIES,
                          (double)code_d / QUERIES);
            assert_true(sum / QUERIES >= RECALL_FLOOR);
            assert_true(code_d > 0);
            /* Filters work on codes too: min(k, matches) accepted rows. */
            uint64_t bits[(ROWS + 63) / 64] = {0};
            for (uint32_t r = 0; r < ROWS; r += 97) bits[r >> 6] |= 1ull << (r & 63);
            vec_filter f = {bits, NULL, NULL};
            vec_hit hits[K];
            uint32_t n;
            hnsw_query hq = {queries, K, 32, &f};
            assert_int_equal(hnsw_search(view, &hq, s, hits, &n, NULL, NULL), 0);
            assert_int_equal(n, K);
            for (uint32_t j = 0; j < n; j++) assert_int_equal(hits[j].row % 97, 0);
            assert_true(td_recall(m, queries, v, ROWS, DIM, &f, K, hits, n) >= 0.9);
        }
        hnsw_view_use_sq8(view, NULL);
        hnsw_scratch_free(s);
        hnsw_view_close(view);
        sq8_view_close(sv);
        rabitq_view_close(rv);
        free(g);
        free(c1);
        free(c2);
        free(v);
    }
}

typedef int (*open_fn)(const void *, size_t, uint32_t, uint32_t, tdb_metric, void **);
static int open_sq8(const void *b, size_t l, uint32_t rows, uint32_t dim, tdb_metric m, void **out) {
    return sq8_view_open(b, l, rows, dim, m, (sq8_view **)out, NULL);
}
static int open_rabitq(const void *b, size_t l, uint32_t rows, uint32_t dim, tdb_metric m, void **out) {
    return rabitq_view_open(b, l, rows, dim, m, (rabitq_view **)out, NULL);
}

static void corrupt_code_blobs_are_refused(void **state) {
    (void)state;
    enum { R = 300 };
    float *v = td_mixture(4, R, DIM, 10, 0);
    for (int kind = 0; kind < 2; kind++) {
        void *b;
        size_t len;
        if (kind == 0)
            assert_int_equal(sq8_encode(v, R, DIM, TDB_METRIC_L2, &b, &len, NULL), 0);
        else
            assert_int_equal(rabitq_encode(v, R, DIM, TDB_METRIC_L2, 1, &b, &len, NULL), 0);
        open_fn op = kind == 0 ? open_sq8 : open_rabitq;
        uint8_t *c = NULL;
        assert_int_equal(posix_memalign((void **)&c, 64, len + 64), 0);
        void *view;
#define REOPEN() memcpy(c, b, len)
        REOPEN();
        assert_int_equal(op(c, len, R, DIM, TDB_METRIC_L2, &view), 0);
        kind == 0 ? sq8_view_close(view) : rabitq_view_close(view);
        size_t cuts[] = {0, 10, 63, 64, len / 2, len - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
            assert_int_equal(op(c, cuts[i], R, DIM, TDB_METRIC_L2, &view), TDB_ECORRUPT);
        assert_int_equal(op(c, len + 1, R, DIM, TDB_METRIC_L2, &view), TDB_ECORRUPT);
        assert_int_equal(op(c, len, R + 1, DIM, TDB_METRIC_L2, &view), TDB_ECORRUPT);
        assert_int_equal(op(c, len, R, DIM, TDB_METRIC_DOT, &view), TDB_ECORRUPT);
        c[0] ^= 1; /* magic */
        assert_int_equal(op(c, len, R, DIM, TDB_METRIC_L2, &view), TDB_ECORRUPT);
        REOPEN();
        store_u32(c + 4, 77); /* version */
        assert_int_equal(op(c, len, R, DIM, TDB_METRIC_L2, &view), TDB_ECORRUPT);
        REOPEN();
        store_u32(c + 24, load_u32(c + 24) + 4); /* stride / padded dim */
        assert_int_equal(op(c, len, R, DIM, TDB_METRIC_L2, &view), TDB_ECORRUPT);
        REOPEN();
        float nan = NAN;
        memcpy(c + 64, &nan, 4); /* first min / centroid value */
        assert_int_equal(op(c, len, R, DIM, TDB_METRIC_L2, &view), TDB_ECORRUPT);
        /* Flips in the rows change answers, never safety: codes are data. */
        free(c);
        free(b);
    }
    free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(codes_sizes_within_bounds),
        cmocka_unit_test(encoding_is_deterministic),
        cmocka_unit_test(estimators_track_exact_distances),
        cmocka_unit_test(search_on_codes_recall_after_rerank),
        cmocka_unit_test(corrupt_code_blobs_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
