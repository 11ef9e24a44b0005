/*
 * test_hnsw.c: HNSW build recall per metric, blob round trip (serialize,
 * view, same answers), corrupted blobs refused, filtered search
 * (min(k, matches) rows with high recall at selectivities 0.5, 0.05,
 * 0.005), the planner, tiny and degenerate inputs, and the mutable index.
 * Data: fixed-seed Gaussian mixtures (vec_testdata.h).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"
#include "vec/hnsw.h"
#include "vec/plan.h"
#include "vec_testdata.h"

#define ROWS 2500u
#define DIM 32u
#define CENTRES 40u
#define QUERIES 100u
#define K 10u
/* Recall floors at ef 64 on this data (measured ~0.99+; the floors leave
 * room for float rounding differences between CPUs, not for regressions). */
#define RECALL_FLOOR 0.95
/* Below the default 200 to keep the suite fast under ASan; the recall
 * floors hold with margin at this value too. */
#define TEST_EF_CONSTRUCTION 100u
#define RECALL_FLOOR_DOT 0.90

typedef struct fixture {
    float *base, *queries;
    tdb_metric metric;
    void *blob;
    size_t len;
    hnsw_view *view;
} fixture;

static void build_fixture(fixture *f, tdb_metric metric, uint32_t threads, uint64_t seed) {
    f->metric = metric;
    f->base = td_mixture(seed, ROWS + QUERIES, DIM, CENTRES, metric != TDB_METRIC_L2);
    f->queries = f->base + (size_t)ROWS * DIM; /* fresh draws from the same mixture */
    hnsw_params p;
    hnsw_params_default(&p);
    p.threads = threads;
    p.ef_construction = TEST_EF_CONSTRUCTION;
    tdb_error err;
    assert_int_equal(hnsw_build(f->base, ROWS, DIM, metric, &p, &f->blob, &f->len, &err), 0);
    assert_int_equal(hnsw_view_open(f->blob, f->len, ROWS, DIM, metric, f->base, NULL, &f->view, &err), 0);
    assert_true(hnsw_view_check(f->view));
}

static void free_fixture(fixture *f) {
    hnsw_view_close(f->view);
    free(f->blob);
    free(f->base);
}

static double mean_recall(fixture *f, hnsw_view *v, uint32_t ef, const vec_filter *filter) {
    vec_hit hits[K];
    hnsw_scratch *s = hnsw_scratch_new();
    double sum = 0;
    for (uint32_t i = 0; i < QUERIES; i++) {
        const float *q = f->queries + (size_t)i * DIM;
        hnsw_query hq = {q, K, ef, filter};
        uint32_t n;
        assert_int_equal(hnsw_search(v, &hq, s, hits, &n, NULL, NULL), 0);
        sum += td_recall(f->metric, q, f->base, ROWS, DIM, filter, K, hits, n);
    }
    hnsw_scratch_free(s);
    return sum / QUERIES;
}

static void check_build_recall(tdb_metric metric, uint32_t threads, double floor) {
    fixture f;
    build_fixture(&f, metric, threads, 11 + metric);
    double r = mean_recall(&f, f.view, 64, NULL);
    print_message("metric %d threads %u: recall@10 at ef 64 = %.4f\n", metric, threads, r);
    assert_true(r >= floor);
    /* Distances are the API's. */
    vec_hit hits[K];
    uint32_t n;
    hnsw_query hq = {f.queries, K, 64, NULL};
    assert_int_equal(hnsw_search(f.view, &hq, NULL, hits, &n, NULL, NULL), 0);
    assert_int_equal(n, K);
    for (uint32_t i = 0; i < n; i++) {
        const float *v = f.base + (size_t)hits[i].row * DIM;
        float want = vec_distance(metric, f.queries, vec_norm(f.queries, DIM), v, vec_norm(v, DIM), DIM);
        assert_float_equal(hits[i].distance, want, 1e-3 * (1 + fabsf(want)));
        if (i) assert_true(hits[i - 1].distance <= hits[i].distance);
    }
    free_fixture(&f);
}

static void hnsw_build_recall_l2(void **state) {
    (void)state;
    check_build_recall(TDB_METRIC_L2, 1, RECALL_FLOOR);
}
static void hnsw_build_recall_cosine(void **state) {
    (void)state;
    check_build_recall(TDB_METRIC_COSINE, 2, RECALL_FLOOR);
}
static void hnsw_build_recall_dot(void **state) {
    (void)state;
    check_build_recall(TDB_METRIC_DOT, 1, RECALL_FLOOR_DOT);
}

static void hnsw_serialize_view_same_results(void **state) {
    (void)state;
    fixture f;
    build_fixture(&f, TDB_METRIC_L2, 1, 5);
    /* A single-thread build with the same seed is byte-for-byte the same. */
    hnsw_params p;
    hnsw_params_default(&p);
    p.threads = 1;
    p.ef_construction = TEST_EF_CONSTRUCTION;
    void *again;
    size_t again_len;
    assert_int_equal(hnsw_build(f.base, ROWS, DIM, TDB_METRIC_L2, &p, &again, &again_len, NULL), 0);
    assert_int_equal(again_len, f.len);
    assert_memory_equal(again, f.blob, f.len);
    free(again);
    /* The blob moved elsewhere (as an mmap at another address) answers the same. */
    void *copy = NULL;
    assert_int_equal(posix_memalign(&copy, 64, f.len), 0);
    memcpy(copy, f.blob, f.len);
    hnsw_view *v2;
    assert_int_equal(hnsw_view_open(copy, f.len, ROWS, DIM, TDB_METRIC_L2, f.base, NULL, &v2, NULL), 0);
    assert_int_equal(hnsw_view_rows(v2), ROWS);
    assert_int_equal(hnsw_view_m(v2), 16);
    assert_int_equal(hnsw_view_links(v2), hnsw_view_links(f.view));
    for (uint32_t i = 0; i < QUERIES; i++) {
        vec_hit a[K], b[K];
        uint32_t na, nb;
        hnsw_query q = {f.queries + (size_t)i * DIM, K, 32, NULL};
        assert_int_equal(hnsw_search(f.view, &q, NULL, a, &na, NULL, NULL), 0);
        assert_int_equal(hnsw_search(v2, &q, NULL, b, &nb, NULL, NULL), 0);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na * sizeof *a);
    }
    hnsw_view_close(v2);
    free(copy);
    free_fixture(&f);
}

/* ---- Corruption ------------------------------------------------------------ */

/* Offsets of the blob's sections, recomputed from its header as the format
 * comment in hnsw.c describes them. */
typedef struct blob_map {
    uint32_t rows, m, m0;
    size_t levels, upper_off, upper, level0;
} blob_map;

static size_t al64(size_t x) { return (x + 63) & ~(size_t)63; }

static blob_map map_blob(const uint8_t *b) {
    blob_map m;
    m.rows = load_u32(b + 16);
    m.m = load_u32(b + 24);
    m.m0 = load_u32(b + 28);
    uint64_t upper_words = load_u64(b + 48);
    m.levels = 64;
    m.upper_off = al64(m.levels + m.rows);
    m.upper = al64(m.upper_off + 4 * (size_t)m.rows);
    m.level0 = al64(m.upper + 4 * upper_words);
    return m;
}

/* Opens a copy of the first len bytes of blob (blob_len bytes; a longer
 * len gets zero padding), mutated first when mutate is set. */
static int open_copy(const void *blob, size_t blob_len, size_t len, const float *base,
                     void (*mutate)(uint8_t *, size_t, blob_map *)) {
    uint8_t *c = NULL;
    assert_int_equal(posix_memalign((void **)&c, 64, len + 64), 0);
    memset(c, 0, len + 64);
    memcpy(c, blob, len < blob_len ? len : blob_len);
    blob_map m = map_blob(c);
    if (mutate) mutate(c, len, &m);
    hnsw_view *v = NULL;
    tdb_error err;
    int rc = hnsw_view_open(c, len, ROWS, DIM, TDB_METRIC_L2, base, NULL, &v, &err);
    if (rc == 0) { /* whatever still opens must search safely */
        vec_hit hits[K];
        uint32_t n;
        hnsw_query q = {base, K, 32, NULL};
        assert_int_equal(hnsw_search(v, &q, NULL, hits, &n, NULL, NULL), 0);
        assert_int_equal(n, K);
    }
    hnsw_view_close(v);
    free(c);
    return rc;
}

static void mut_magic(uint8_t *b, size_t len, blob_map *m) { (void)len; (void)m; b[0] ^= 1; }
static void mut_version(uint8_t *b, size_t len, blob_map *m) { (void)len; (void)m; store_u32(b + 4, 2); }
static void mut_rows(uint8_t *b, size_t len, blob_map *m) { (void)len; (void)m; store_u32(b + 16, ROWS + 1); }
static void mut_m(uint8_t *b, size_t len, blob_map *m) { (void)len; (void)m; store_u32(b + 24, 1000); }
static void mut_entry(uint8_t *b, size_t len, blob_map *m) { (void)len; (void)m; store_u32(b + 40, ROWS); }
static void mut_max_level(uint8_t *b, size_t len, blob_map *m) { (void)len; (void)m; store_u32(b + 36, 200); }
static void mut_upper_words(uint8_t *b, size_t len, blob_map *m) {
    (void)len; (void)m;
    store_u64(b + 48, load_u64(b + 48) + 1u);
}
static void mut_links_total(uint8_t *b, size_t len, blob_map *m) {
    (void)len; (void)m;
    store_u64(b + 56, load_u64(b + 56) + 1u);
}
static void mut_count(uint8_t *b, size_t len, blob_map *m) {
    (void)len;
    store_u32(b + m->level0 + 7 * 4 * (1 + (size_t)m->m0), m->m0 + 1); /* row 7: too many links */
}
static void mut_count_huge(uint8_t *b, size_t len, blob_map *m) {
    (void)len;
    store_u32(b + m->level0, 0xffffffffu);
}
static void mut_link_range(uint8_t *b, size_t len, blob_map *m) {
    (void)len;
    store_u32(b + m->level0 + 4, ROWS + 5); /* row 0's first link */
}
static void mut_self_link(uint8_t *b, size_t len, blob_map *m) {
    (void)len;
    store_u32(b + m->level0 + 3 * 4 * (1 + (size_t)m->m0) + 4, 3); /* row 3 -> row 3 */
}
static void mut_duplicate(uint8_t *b, size_t len, blob_map *m) {
    (void)len;
    uint8_t *row = b + m->level0 + 9 * 4 * (1 + (size_t)m->m0);
    assert_true(load_u32(row) >= 2);
    store_u32(row + 8, load_u32(row + 4)); /* second link = first */
}
static void mut_level_above(uint8_t *b, size_t len, blob_map *m) {
    (void)len;
    b[m->levels + 5] = 100;
}
static void mut_upper_off(uint8_t *b, size_t len, blob_map *m) {
    (void)len;
    for (uint32_t r = 0; r < m->rows; r++)
        if (b[m->levels + r] > 0) {
            store_u32(b + m->upper_off + 4 * (size_t)r, load_u32(b + m->upper_off + 4 * (size_t)r) + 1000000);
            return;
        }
}
static void mut_upper_link_level(uint8_t *b, size_t len, blob_map *m) {
    (void)len;
    /* a level-1 link to a row of level 0 */
    uint32_t low = 0;
    while (b[m->levels + low] != 0) low++;
    for (uint32_t r = 0; r < m->rows; r++)
        if (b[m->levels + r] > 0 && r != low) {
            uint8_t *list = b + m->upper + 4 * (size_t)load_u32(b + m->upper_off + 4 * (size_t)r);
            if (load_u32(list) == 0) continue;
            store_u32(list + 4, low);
            return;
        }
}

static void hnsw_corrupt_blobs_are_refused(void **state) {
    (void)state;
    fixture f;
    build_fixture(&f, TDB_METRIC_L2, 1, 21);
    assert_int_equal(open_copy(f.blob, f.len, f.len, f.base, NULL), 0);
    void (*muts[])(uint8_t *, size_t, blob_map *) = {
        mut_magic, mut_version, mut_rows, mut_m, mut_entry, mut_max_level, mut_upper_words,
        mut_links_total, mut_count, mut_count_huge, mut_link_range, mut_self_link, mut_duplicate,
        mut_level_above, mut_upper_off, mut_upper_link_level};
    for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++) {
        int rc = open_copy(f.blob, f.len, f.len, f.base, muts[i]);
        if (rc != TDB_ECORRUPT) fail_msg("mutation %zu: rc %d, want TDB_ECORRUPT", i, rc);
    }
    /* Truncations anywhere, and an extra byte. */
    size_t cuts[] = {0, 1, 63, 64, 65, f.len / 2, f.len - 4, f.len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        assert_int_equal(open_copy(f.blob, f.len, cuts[i], f.base, NULL), TDB_ECORRUPT);
    assert_int_equal(open_copy(f.blob, f.len, f.len + 1, f.base, NULL), TDB_ECORRUPT);
    /* A blob for another segment: rows, dim, metric mismatch. */
    hnsw_view *v;
    assert_int_equal(hnsw_view_open(f.blob, f.len, ROWS - 1, DIM, TDB_METRIC_L2, f.base, NULL, &v, NULL), TDB_ECORRUPT);
    assert_int_equal(hnsw_view_open(f.blob, f.len, ROWS, DIM + 1, TDB_METRIC_L2, f.base, NULL, &v, NULL), TDB_ECORRUPT);
    assert_int_equal(hnsw_view_open(f.blob, f.len, ROWS, DIM, TDB_METRIC_DOT, f.base, NULL, &v, NULL), TDB_ECORRUPT);
    /* Misaligned pointer: an argument error, not corruption. */
    assert_int_equal(hnsw_view_open((char *)f.blob + 1, f.len - 1, ROWS, DIM, TDB_METRIC_L2, f.base, NULL, &v, NULL), TDB_EINVAL);
    free_fixture(&f);
}

static void hnsw_random_byte_flips_never_crash(void **state) {
    (void)state;
    fixture f;
    build_fixture(&f, TDB_METRIC_L2, 1, 23);
    td_rng r = {99};
    int refused = 0;
    for (int i = 0; i < 150; i++) {
        uint8_t *c = NULL;
        assert_int_equal(posix_memalign((void **)&c, 64, f.len), 0);
        memcpy(c, f.blob, f.len);
        /* Bias flips toward the header and the link counts, where they
         * matter most; any byte can be hit. */
        size_t at = (i % 3 == 0) ? td_next(&r) % 64 : td_next(&r) % f.len;
        c[at] ^= (uint8_t)(1u << (td_next(&r) % 8));
        hnsw_view *v = NULL;
        int rc = hnsw_view_open(c, f.len, ROWS, DIM, TDB_METRIC_L2, f.base, NULL, &v, NULL);
        assert_true(rc == 0 || rc == TDB_ECORRUPT);
        if (rc == 0) {
            assert_true(hnsw_view_check(v));
            vec_hit hits[K];
            uint32_t n;
            hnsw_query q = {f.queries, K, 16, NULL};
            assert_int_equal(hnsw_search(v, &q, NULL, hits, &n, NULL, NULL), 0);
            assert_int_equal(n, K);
        } else {
            refused++;
        }
        hnsw_view_close(v);
        free(c);
    }
    assert_true(refused > 0);
    free_fixture(&f);
}

/* ---- Filters --------------------------------------------------------------- */

static bool accept_mod(void *ctx, uint32_t row) { return row % *(uint32_t *)ctx == 0; }

static void check_filtered(fixture *f, double selectivity, bool use_callback) {
    uint64_t bits[(ROWS + 63) / 64] = {0};
    td_rng r = {(uint64_t)(selectivity * 1e6)};
    uint32_t matches = 0;
    uint32_t mod = (uint32_t)(1.0 / selectivity + 0.5);
    for (uint32_t i = 0; i < ROWS; i++) {
        bool keep = use_callback ? i % mod == 0 : td_unit(&r) < selectivity;
        if (keep) {
            bits[i >> 6] |= 1ull << (i & 63);
            matches++;
        }
    }
    vec_filter filt = use_callback ? (vec_filter){NULL, accept_mod, &mod} : (vec_filter){bits, NULL, NULL};
    hnsw_scratch *s = hnsw_scratch_new();
    double sum = 0, sum_planned = 0;
    for (uint32_t i = 0; i < QUERIES; i++) {
        const float *q = f->queries + (size_t)i * DIM;
        vec_hit hits[K];
        uint32_t n;
        hnsw_query hq = {q, K, 64, &filt};
        assert_int_equal(hnsw_search(f->view, &hq, s, hits, &n, NULL, NULL), 0);
        assert_int_equal(n, matches < K ? matches : K);
        for (uint32_t j = 0; j < n; j++) assert_true((bits[hits[j].row >> 6] >> (hits[j].row & 63)) & 1);
        sum += td_recall(f->metric, q, f->base, ROWS, DIM, &filt, K, hits, n);
        vec_plan plan;
        assert_int_equal(vec_ann_search(f->view, &hq, (double)matches / ROWS, s, hits, &n, &plan, NULL), 0);
        assert_int_equal(n, matches < K ? matches : K);
        sum_planned += td_recall(f->metric, q, f->base, ROWS, DIM, &filt, K, hits, n);
    }
    hnsw_scratch_free(s);
    print_message("selectivity %.3f (%u matches, %s): recall %.4f, planned %.4f\n", selectivity,
                  matches, use_callback ? "callback" : "bitset", sum / QUERIES, sum_planned / QUERIES);
    assert_true(sum / QUERIES >= RECALL_FLOOR);
    assert_true(sum_planned / QUERIES >= RECALL_FLOOR);
}

static void hnsw_filtered_search_returns_min_k_matches(void **state) {
    (void)state;
    fixture f;
    build_fixture(&f, TDB_METRIC_L2, 2, 31);
    check_filtered(&f, 0.5, false);
    check_filtered(&f, 0.05, false);
    check_filtered(&f, 0.005, false);
    check_filtered(&f, 0.05, true);
    check_filtered(&f, 0.001, true); /* 4 matches: fewer than k */
    /* No match at all. */
    uint64_t none[(ROWS + 63) / 64] = {0};
    vec_filter fz = {none, NULL, NULL};
    vec_hit hits[K];
    uint32_t n = 99;
    hnsw_query q = {f.queries, K, 16, &fz};
    assert_int_equal(hnsw_search(f.view, &q, NULL, hits, &n, NULL, NULL), 0);
    assert_int_equal(n, 0);
    free_fixture(&f);
}

static void plan_prefers_exact_for_selective_filters(void **state) {
    (void)state;
    assert_int_equal(vec_plan_filtered(60000, 1.0, 64, 10), VEC_PLAN_GRAPH);
    assert_int_equal(vec_plan_filtered(60000, 0.5, 64, 10), VEC_PLAN_GRAPH);
    assert_int_equal(vec_plan_filtered(60000, 0.01, 64, 10), VEC_PLAN_EXACT);
    assert_int_equal(vec_plan_filtered(60000, 0.0, 64, 10), VEC_PLAN_EXACT);
    assert_int_equal(vec_plan_filtered(10000000, 0.05, 64, 10), VEC_PLAN_GRAPH);
    assert_int_equal(vec_plan_filtered(1000, 0.5, 64, 10), VEC_PLAN_EXACT); /* tiny: scan */
    /* monotonic in selectivity */
    vec_plan last = VEC_PLAN_EXACT;
    for (double s = 0.001; s < 1; s *= 1.2) {
        vec_plan p = vec_plan_filtered(60000, s, 64, 10);
        assert_true(!(last == VEC_PLAN_GRAPH && p == VEC_PLAN_EXACT));
        last = p;
    }
}

/* ---- Edges ----------------------------------------------------------------- */

static void hnsw_tiny_and_degenerate_inputs(void **state) {
    (void)state;
    hnsw_params p;
    hnsw_params_default(&p);
    p.threads = 2;
    /* rows = 0 */
    void *blob;
    size_t len;
    float one[DIM] = {0};
    assert_int_equal(hnsw_build(NULL, 0, DIM, TDB_METRIC_L2, &p, &blob, &len, NULL), 0);
    hnsw_view *v;
    assert_int_equal(hnsw_view_open(blob, len, 0, DIM, TDB_METRIC_L2, NULL, NULL, &v, NULL), 0);
    vec_hit hits[K];
    uint32_t n = 5;
    hnsw_query q = {one, K, 0, NULL};
    assert_int_equal(hnsw_search(v, &q, NULL, hits, &n, NULL, NULL), 0);
    assert_int_equal(n, 0);
    hnsw_view_close(v);
    free(blob);
    /* 1..7 rows, and many identical vectors (all distances tie) */
    float *same = calloc(500 * DIM, sizeof *same);
    for (uint32_t rows = 1; rows <= 500; rows = rows < 7 ? rows + 1 : 500) {
        tdb_metric metrics[] = {TDB_METRIC_L2, TDB_METRIC_COSINE, TDB_METRIC_DOT};
        for (int mi = 0; mi < 3; mi++) {
            assert_int_equal(hnsw_build(same, rows, DIM, metrics[mi], &p, &blob, &len, NULL), 0);
            assert_int_equal(hnsw_view_open(blob, len, rows, DIM, metrics[mi], same, NULL, &v, NULL), 0);
            assert_true(hnsw_view_check(v));
            assert_int_equal(hnsw_search(v, &q, NULL, hits, &n, NULL, NULL), 0);
            assert_int_equal(n, rows < K ? rows : K);
            for (uint32_t i = 1; i < n; i++) assert_true(hits[i - 1].row < hits[i].row); /* ties by row */
            hnsw_view_close(v);
            free(blob);
        }
        if (rows == 500) break;
    }
    free(same);
    /* Parameter checks */
    p.m = 1;
    assert_int_equal(hnsw_build(one, 1, DIM, TDB_METRIC_L2, &p, &blob, &len, NULL), TDB_EINVAL);
    hnsw_params_default(&p);
    p.ef_construction = HNSW_EF_CONSTRUCTION_MAX + 1;
    assert_int_equal(hnsw_build(one, 1, DIM, TDB_METRIC_L2, &p, &blob, &len, NULL), TDB_EINVAL);
    hnsw_params_default(&p);
    assert_int_equal(hnsw_build(one, 1, 0, TDB_METRIC_L2, &p, &blob, &len, NULL), TDB_EINVAL);
    assert_int_equal(hnsw_build(one, 1, VEC_MAX_DIM + 1, TDB_METRIC_L2, &p, &blob, &len, NULL), TDB_EINVAL);
    q.k = 0;
    assert_int_equal(hnsw_search(NULL, &q, NULL, hits, &n, NULL, NULL), TDB_EINVAL);
}

/* ---- Mutable index ---------------------------------------------------------- */

typedef struct ins_ctx {
    hnsw_index *ix;
    const float *base;
    uint32_t from, to, step;
    int rc;
} ins_ctx;

static void *insert_range(void *arg) {
    ins_ctx *c = arg;
    for (uint32_t r = c->from; r < c->to && !c->rc; r += c->step)
        c->rc = hnsw_index_insert(c->ix, r, c->base + (size_t)r * DIM, NULL);
    return NULL;
}

static void hnsw_index_insert_recall(void **state) {
    (void)state;
    tdb_metric metric = TDB_METRIC_COSINE;
    float *base = td_mixture(41, ROWS + QUERIES, DIM, CENTRES, 1);
    hnsw_params p;
    hnsw_params_default(&p);
    p.ef_construction = TEST_EF_CONSTRUCTION;
    hnsw_index *ix;
    assert_int_equal(hnsw_index_new(ROWS, DIM, metric, &p, &ix, NULL), 0);
    /* Two writers interleaved, while this thread searches. */
    ins_ctx a = {ix, base, 0, ROWS, 2, 0}, b = {ix, base, 1, ROWS, 2, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, insert_range, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, insert_range, &b), 0);
    vec_hit hits[K];
    uint32_t n;
    for (int i = 0; i < 50; i++) {
        hnsw_query q = {base + (size_t)(ROWS + i % QUERIES) * DIM, K, 32, NULL};
        assert_int_equal(hnsw_index_search(ix, &q, NULL, hits, &n, NULL, NULL), 0);
        assert_true(n <= K);
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(hnsw_index_count(ix), ROWS);
    assert_true(hnsw_index_check(ix));
    assert_int_equal(hnsw_index_insert(ix, 3, base, NULL), TDB_EINVAL);     /* twice */
    assert_int_equal(hnsw_index_insert(ix, ROWS, base, NULL), TDB_EINVAL);  /* out of range */
    double sum = 0;
    hnsw_scratch *s = hnsw_scratch_new();
    for (uint32_t i = 0; i < QUERIES; i++) {
        const float *q = base + (size_t)(ROWS + i) * DIM;
        hnsw_query hq = {q, K, 64, NULL};
        assert_int_equal(hnsw_index_search(ix, &hq, s, hits, &n, NULL, NULL), 0);
        assert_int_equal(n, K);
        sum += td_recall(metric, q, base, ROWS, DIM, NULL, K, hits, n);
    }
    print_message("insert recall@10 at ef 64 = %.4f\n", sum / QUERIES);
    assert_true(sum / QUERIES >= RECALL_FLOOR);
    hnsw_scratch_free(s);
    hnsw_index_free(ix);

    /* A partly filled index answers from the rows present only. */
    assert_int_equal(hnsw_index_new(100, DIM, TDB_METRIC_L2, &p, &ix, NULL), 0);
    hnsw_query q = {base, K, 16, NULL};
    assert_int_equal(hnsw_index_search(ix, &q, NULL, hits, &n, NULL, NULL), 0);
    assert_int_equal(n, 0);
    for (uint32_t r = 10; r < 100; r += 30) assert_int_equal(hnsw_index_insert(ix, r, base + (size_t)r * DIM, NULL), 0);
    assert_int_equal(hnsw_index_search(ix, &q, NULL, hits, &n, NULL, NULL), 0);
    assert_int_equal(n, 3);
    for (uint32_t i = 0; i < n; i++) assert_int_equal(hits[i].row % 30, 10);
    hnsw_index_free(ix);
    hnsw_index_free(NULL);
    free(base);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hnsw_build_recall_l2),
        cmocka_unit_test(hnsw_build_recall_cosine),
        cmocka_unit_test(hnsw_build_recall_dot),
        cmocka_unit_test(hnsw_serialize_view_same_results),
        cmocka_unit_test(hnsw_corrupt_blobs_are_refused),
        cmocka_unit_test(hnsw_random_byte_flips_never_crash),
        cmocka_unit_test(hnsw_filtered_search_returns_min_k_matches),
        cmocka_unit_test(plan_prefers_exact_for_selective_filters),
        cmocka_unit_test(hnsw_tiny_and_degenerate_inputs),
        cmocka_unit_test(hnsw_index_insert_recall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
