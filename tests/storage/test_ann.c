/*
 * test_ann.c: approximate vector search through the storage engine
 * (st_search_ex, storage/vecindex.c): recall against exact search over the
 * memtable plus several segments and after compaction, deleted and
 * superseded rows never returned, filtered searches returning
 * min(k, matches) whichever plan runs (the graph walk forced where the
 * cost model would scan), SQ8 and RaBitQ codes, graphs opened
 * in place after a reopen, and segments without a graph scanned exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/collection_int.h"
#include "util/fileio.h"
#include "vec/vec.h"

#define DIM 16
#define MAX_DOCS 12000
#define N_QUERIES 40
#define K 10
/* Recall floors: m 16, ef 64 on a few thousand 16-d points is near 1.0;
 * the floors leave room for the codes' approximation. */
#define MIN_RECALL_FLOAT 0.95
#define MIN_RECALL_CODES 0.90

typedef struct afix {
    char *dir;
    st_collection *c;
    st_options opts;
    tdb_metric metric;
    float *vec;  /* MAX_DOCS x DIM: the live version of each id */
    bool *live;
    int loaded;  /* ids below this have a vector */
    uint64_t rng;
} afix;

static char *tmpdir(void) {
    const char *base = getenv("TDB_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    assert_int_equal(fio_mkdir_p(base), 0);
    size_t n = strlen(base) + 32;
    char *t = malloc(n);
    snprintf(t, n, "%s/ann-XXXXXX", base);
    assert_non_null(mkdtemp(t));
    return t;
}

static void fix_open(afix *f) {
    tdb_error err;
    int rc = st_open(f->dir, DIM, f->metric, &f->opts, &f->c, &err);
    if (rc != 0) fail_msg("st_open: %s", err.message);
}

static void fix_init(afix *f, tdb_metric metric, st_quantization quant) {
    memset(f, 0, sizeof *f);
    f->dir = tmpdir();
    f->metric = metric;
    /* Durability is not what these tests check: no fsync per write. */
    f->opts.fsync = TDB_FSYNC_NONE;
    f->opts.memtable_max_docs = 1000000;
    f->opts.compaction_min_segments = 1000;
    f->opts.vector_index = (st_vector_index){16, 100, quant, 2};
    f->vec = calloc((size_t)MAX_DOCS * DIM, sizeof *f->vec);
    f->live = calloc(MAX_DOCS, sizeof *f->live);
    f->rng = 7;
    fix_open(f);
}

static void fix_done(afix *f) {
    st_close(f->c);
    fio_rmtree(f->dir);
    free(f->dir);
    free(f->vec);
    free(f->live);
}

static void fix_reopen(afix *f) {
    st_close(f->c);
    fix_open(f);
}

static double next_gauss(afix *f) {
    /* Box-Muller on a 64-bit LCG: deterministic. */
    f->rng = f->rng * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = ((double)(f->rng >> 11) + 1.0) / 9007199254740993.0;
    f->rng = f->rng * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = (double)(f->rng >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Clustered data (like real embeddings): 20 centres plus noise. */
static void make_vector(afix *f, float *v) {
    int centre = (int)(f->rng >> 40) % 20;
    for (int d = 0; d < DIM; d++)
        v[d] = (float)((double)((centre * 7 + d * 3) % 11) - 5.0 + 0.8 * next_gauss(f));
}

static void id_of(char out[16], int i) { snprintf(out, 16, "v%05d", i); }

static void put_range(afix *f, int from, int to) {
    enum { BATCH = 100 };
    for (int start = from; start < to; start += BATCH) {
        st_doc docs[BATCH];
        char ids[BATCH][16], attrs[BATCH][48];
        int n = 0;
        for (int i = start; i < to && n < BATCH; i++, n++) {
            make_vector(f, &f->vec[(size_t)i * DIM]);
            id_of(ids[n], i);
            snprintf(attrs[n], sizeof attrs[n], "{\"grp\":%d}", i % 100);
            docs[n] = (st_doc){ids[n], (uint32_t)strlen(ids[n]), &f->vec[(size_t)i * DIM],
                               attrs[n], (uint32_t)strlen(attrs[n])};
            f->live[i] = true;
            if (i >= f->loaded) f->loaded = i + 1;
        }
        tdb_error err;
        if (st_upsert(f->c, docs, (size_t)n, &err) != 0) fail_msg("st_upsert: %s", err.message);
    }
}

static void del_range(afix *f, int from, int to, int step) {
    for (int i = from; i < to; i += step) {
        char id[16];
        id_of(id, i);
        st_key k = {id, (uint32_t)strlen(id)};
        assert_int_equal(st_delete(f->c, &k, 1, NULL, NULL), 0);
        f->live[i] = false;
    }
}

static void flush(afix *f) {
    tdb_error err;
    if (st_flush(f->c, &err) != 0) fail_msg("st_flush: %s", err.message);
}

static void compact(afix *f) {
    tdb_error err;
    if (st_compact(f->c, &err) != 0) fail_msg("st_compact: %s", err.message);
}

/* Filters on the attribute grp = i % 100: keep grp < keep_per_100. */
typedef struct grp_filter {
    int keep_per_100;
} grp_filter;

static bool grp_pass(void *ctx, const char *id, uint32_t id_len, const char *attrs,
                     uint32_t attrs_len) {
    (void)id;
    (void)id_len;
    (void)attrs_len;
    const grp_filter *g = ctx;
    const char *p = strstr(attrs, "\"grp\":");
    assert_non_null(p);
    return atoi(p + 6) < g->keep_per_100;
}

static int id_num(const char *id) { return atoi(id + 1); }

/* Searches N_QUERIES queries (near stored points) approximately and
 * exactly; checks every approximate hit is live, passes the filter and
 * carries its true distance, the count is min(k, matches), and returns
 * the recall. */
static double measure_plan(afix *f, size_t k, grp_filter *flt, st_plan plan,
                           st_search_info *info_out) {
    size_t found = 0, wanted = 0;
    st_search_info total = {0};
    for (int qi = 0; qi < N_QUERIES; qi++) {
        float q[DIM];
        int base = (qi * 97) % f->loaded;
        for (int d = 0; d < DIM; d++) q[d] = f->vec[(size_t)base * DIM + d] + 0.05f * (float)(d % 3);
        if (f->metric == TDB_METRIC_COSINE && vec_norm(q, DIM) == 0) q[0] = 1;
        st_hit *ex, *ap;
        size_t nex, nap;
        tdb_error err;
        st_filter_fn fn = flt ? grp_pass : NULL;
        if (st_search(f->c, q, k, fn, flt, false, &ex, &nex, &err) != 0)
            fail_msg("st_search: %s", err.message);
        st_search_info info;
        st_search_opts o = {.exact = false, .ef = 64, .plan = plan, .info = &info};
        if (st_search_ex(f->c, q, k, fn, flt, false, &o, &ap, &nap, &err) != 0)
            fail_msg("st_search_ex: %s", err.message);
        total.graph_segments += info.graph_segments;
        total.exact_segments += info.exact_segments;
        assert_int_equal(nap, nex); /* min(k, matches) */
        float qn = vec_norm(q, DIM);
        for (size_t i = 0; i < nap; i++) {
            int n = id_num(ap[i].rec.id);
            if (!f->live[n]) fail_msg("deleted %s returned", ap[i].rec.id);
            if (flt) assert_true(n % 100 < flt->keep_per_100);
            const float *v = &f->vec[(size_t)n * DIM];
            float d = vec_distance(f->metric, q, qn, v, vec_norm(v, DIM), DIM);
            if (fabsf(d - ap[i].distance) > 1e-3f * fmaxf(1.0f, fabsf(d)))
                fail_msg("%s: distance %g, true %g", ap[i].rec.id, (double)ap[i].distance, (double)d);
            if (i) assert_true(ap[i - 1].distance <= ap[i].distance);
            for (size_t j = 0; j < nex; j++)
                if (strcmp(ex[j].rec.id, ap[i].rec.id) == 0) found++;
        }
        wanted += nex;
        st_hits_free(ex, nex);
        st_hits_free(ap, nap);
    }
    if (info_out) *info_out = total;
    return wanted ? (double)found / (double)wanted : 1.0;
}

static double measure(afix *f, size_t k, grp_filter *flt, st_search_info *info_out) {
    return measure_plan(f, k, flt, ST_PLAN_AUTO, info_out);
}

/* Three segments (3000 rows each) and a memtable (1000). */
static void load_history(afix *f) {
    put_range(f, 0, 3000);
    flush(f);
    put_range(f, 3000, 6000);
    flush(f);
    put_range(f, 6000, 9000);
    flush(f);
    put_range(f, 9000, 10000);
}

static void recall_for(tdb_metric metric) {
    afix f;
    fix_init(&f, metric, ST_QUANT_NONE);
    load_history(&f);
    st_search_info info;
    double r = measure(&f, K, NULL, &info);
    print_message("metric %d: recall@%d %.3f over 3 segments + memtable\n", (int)metric, K, r);
    assert_true(r >= MIN_RECALL_FLOAT);
    assert_int_equal(info.graph_segments, 3 * N_QUERIES);
    st_stats st;
    st_stats_get(f.c, &st);
    assert_int_equal(st.indexed_documents, 9000);
    assert_int_equal(st.documents, 10000);
    compact(&f);
    r = measure(&f, K, NULL, &info);
    assert_true(r >= MIN_RECALL_FLOAT);
    assert_int_equal(info.graph_segments, N_QUERIES);
    r = measure(&f, 100, NULL, NULL);
    assert_true(r >= MIN_RECALL_FLOAT);
    fix_done(&f);
}

static void ann_recall_l2_across_segments_and_compaction(void **state) {
    (void)state;
    recall_for(TDB_METRIC_L2);
}

static void ann_recall_cosine_across_segments_and_compaction(void **state) {
    (void)state;
    recall_for(TDB_METRIC_COSINE);
}

static void ann_recall_dot_across_segments(void **state) {
    (void)state;
    afix f;
    fix_init(&f, TDB_METRIC_DOT, ST_QUANT_NONE);
    load_history(&f);
    assert_true(measure(&f, K, NULL, NULL) >= MIN_RECALL_FLOAT);
    fix_done(&f);
}

static void ann_never_returns_deleted_or_superseded_rows(void **state) {
    (void)state;
    afix f;
    fix_init(&f, TDB_METRIC_L2, ST_QUANT_NONE);
    load_history(&f);
    /* Queries sit next to these: deleted ones would be the nearest. */
    for (int qi = 0; qi < N_QUERIES; qi += 2) {
        int n = (qi * 97) % f.loaded;
        if (f.live[n]) del_range(&f, n, n + 1, 1);
    }
    del_range(&f, 1, 9000, 10);
    /* Overwrites: the new vectors live in the memtable, the old rows stay
     * in the segments' graphs, marked. */
    put_range(&f, 1000, 1200);
    st_search_info info;
    assert_true(measure(&f, K, NULL, NULL) >= MIN_RECALL_FLOAT);
    /* Walks that step over the marked rows (whatever the planner would
     * choose for segments this size). */
    assert_true(measure_plan(&f, K, NULL, ST_PLAN_GRAPH, &info) >= MIN_RECALL_FLOAT);
    assert_int_equal(info.graph_segments, 3 * N_QUERIES);
    flush(&f);
    assert_true(measure(&f, K, NULL, NULL) >= MIN_RECALL_FLOAT);
    fix_reopen(&f); /* marks come back from the MANIFEST */
    assert_true(measure(&f, K, NULL, NULL) >= MIN_RECALL_FLOAT);
    compact(&f);
    assert_true(measure(&f, K, NULL, NULL) >= MIN_RECALL_FLOAT);
    assert_true(st_check(f.c));
    fix_done(&f);
}

static void ann_filtered_search_returns_min_k_matches(void **state) {
    (void)state;
    afix f;
    fix_init(&f, TDB_METRIC_L2, ST_QUANT_NONE);
    load_history(&f);
    /* 1 row in 100 matches (100 in all): the planner scans the matches
     * exactly; k above the matches returns every match. */
    grp_filter rare = {1};
    st_search_info info;
    assert_true(measure(&f, K, &rare, &info) >= 0.999);
    assert_int_equal(info.exact_segments, 3 * N_QUERIES);
    assert_true(measure(&f, 150, &rare, NULL) >= 0.999);
    /* Walks with a filter, forced whatever the cost model says: still
     * min(k, matches) (the walk completes a short answer), good recall. */
    grp_filter half = {50}, most = {90};
    double r = measure_plan(&f, K, &half, ST_PLAN_GRAPH, &info);
    assert_true(r >= MIN_RECALL_FLOAT);
    assert_int_equal(info.graph_segments, 3 * N_QUERIES);
    assert_true(measure_plan(&f, K, &most, ST_PLAN_GRAPH, NULL) >= MIN_RECALL_FLOAT);
    assert_true(measure_plan(&f, 150, &rare, ST_PLAN_GRAPH, NULL) >= 0.999);
    assert_true(measure(&f, K, &half, NULL) >= MIN_RECALL_FLOAT);
    /* A filter nothing passes. */
    grp_filter none = {0};
    assert_true(measure(&f, K, &none, NULL) >= 0.999);
    assert_true(measure_plan(&f, K, &none, ST_PLAN_GRAPH, NULL) >= 0.999);
    fix_done(&f);
}

static void codes_for(st_quantization quant) {
    afix f;
    fix_init(&f, TDB_METRIC_L2, quant);
    load_history(&f);
    double r = measure(&f, K, NULL, NULL);
    print_message("quantization %d: recall@%d %.3f\n", (int)quant, K, r);
    assert_true(r >= MIN_RECALL_CODES);
    fix_reopen(&f);
    for (size_t i = 0; i < f.c->view->nsegs; i++) {
        const st_seg *s = f.c->view->segs[i];
        assert_non_null(s->hnsw);
        if (quant == ST_QUANT_SQ8) assert_non_null(s->sq8);
        if (quant == ST_QUANT_RABITQ) assert_non_null(s->rabitq);
    }
    assert_true(measure(&f, K, NULL, NULL) >= MIN_RECALL_CODES);
    grp_filter most = {90};
    assert_true(measure_plan(&f, K, &most, ST_PLAN_GRAPH, NULL) >= MIN_RECALL_CODES);
    fix_done(&f);
}

static void ann_sq8_codes_are_built_and_used(void **state) {
    (void)state;
    codes_for(ST_QUANT_SQ8);
}

static void ann_rabitq_codes_are_built_and_used(void **state) {
    (void)state;
    codes_for(ST_QUANT_RABITQ);
}

static void ann_reopen_opens_graphs_in_place(void **state) {
    (void)state;
    afix f;
    fix_init(&f, TDB_METRIC_COSINE, ST_QUANT_NONE);
    load_history(&f);
    fix_reopen(&f); /* the memtable's 1000 rows come back from the WAL */
    assert_int_equal(f.c->view->nsegs, 3);
    for (size_t i = 0; i < 3; i++) {
        const st_seg *s = f.c->view->segs[i];
        assert_non_null(s->hnsw);
        const void *blob;
        size_t len;
        assert_int_equal(seg_extra_get(s->seg, ST_EXTRA_HNSW, &blob, &len), 0);
        assert_int_equal(hnsw_view_rows(s->hnsw), s->rows);
        assert_true(hnsw_view_check(s->hnsw));
    }
    st_search_info info;
    assert_true(measure(&f, K, NULL, &info) >= MIN_RECALL_FLOAT);
    assert_int_equal(info.graph_segments, 3 * N_QUERIES);
    fix_done(&f);
}

static void ann_segment_without_graph_is_scanned_exactly(void **state) {
    (void)state;
    afix f;
    fix_init(&f, TDB_METRIC_L2, ST_QUANT_NONE);
    st_close(f.c);
    f.opts.vector_index.m = 0; /* written without a graph */
    fix_open(&f);
    put_range(&f, 0, 2000);
    flush(&f);
    f.opts.vector_index.m = 16;
    fix_reopen(&f);
    assert_null(f.c->view->segs[0]->hnsw);
    st_stats st;
    st_stats_get(f.c, &st);
    assert_int_equal(st.indexed_documents, 0);
    st_search_info info;
    assert_true(measure(&f, K, NULL, &info) >= 0.999); /* exact */
    assert_int_equal(info.exact_segments, N_QUERIES);
    assert_int_equal(info.graph_segments, 0);
    /* Compaction builds the graph. */
    put_range(&f, 1990, 2100);
    flush(&f);
    compact(&f);
    assert_non_null(f.c->view->segs[0]->hnsw);
    st_stats_get(f.c, &st);
    assert_int_equal(st.indexed_documents, 2100);
    double r = measure(&f, K, NULL, &info);
    print_message("recall %.3f\n", r);
    assert_true(r >= MIN_RECALL_FLOAT);
    assert_int_equal(info.graph_segments, N_QUERIES);
    fix_done(&f);
}

static void ann_exact_option_scans_everything(void **state) {
    (void)state;
    afix f;
    fix_init(&f, TDB_METRIC_L2, ST_QUANT_NONE);
    load_history(&f);
    float q[DIM] = {0};
    st_search_info info;
    st_search_opts o = {.exact = true, .info = &info};
    st_hit *h;
    size_t n;
    assert_int_equal(st_search_ex(f.c, q, K, NULL, NULL, false, &o, &h, &n, NULL), 0);
    assert_int_equal(n, K);
    assert_int_equal(info.exact_segments, 3);
    assert_int_equal(info.graph_segments, 0);
    st_hits_free(h, n);
    fix_done(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ann_recall_l2_across_segments_and_compaction),
        cmocka_unit_test(ann_recall_cosine_across_segments_and_compaction),
        cmocka_unit_test(ann_recall_dot_across_segments),
        cmocka_unit_test(ann_never_returns_deleted_or_superseded_rows),
        cmocka_unit_test(ann_filtered_search_returns_min_k_matches),
        cmocka_unit_test(ann_sq8_codes_are_built_and_used),
        cmocka_unit_test(ann_rabitq_codes_are_built_and_used),
        cmocka_unit_test(ann_reopen_opens_graphs_in_place),
        cmocka_unit_test(ann_segment_without_graph_is_scanned_exactly),
        cmocka_unit_test(ann_exact_option_scans_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
