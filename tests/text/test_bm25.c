/*
 * test_bm25.c: BM25 scoring and top-k search.
 *   - scores equal a brute-force BM25 computed straight from the documents;
 *   - a document scores exactly the same (bit for bit) whether the corpus is
 *     one index or split over segments and a memtable with global stats;
 *   - block-max WAND returns exactly the exhaustive top-k (rows and scores)
 *     while scoring fewer rows than there are postings;
 *   - multi-field weights, deleted rows, filter callbacks, min_score, and
 *     argument checks.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text/bm25.h"
#include "text/index.h"

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

enum { MAX_DOC = 120, MAX_Q = 8 };

/* A corpus of documents as word ids; word w is the term "w<w>". */
typedef struct corpus {
    uint32_t n;
    uint32_t *len;
    uint32_t (*words)[MAX_DOC];
} corpus;

static void corpus_make(corpus *c, uint32_t n, uint32_t vocab, uint32_t seed) {
    rng_state = seed;
    c->n = n;
    c->len = calloc(n, sizeof(*c->len));
    c->words = calloc(n, sizeof(*c->words));
    assert_non_null(c->len);
    assert_non_null(c->words);
    for (uint32_t d = 0; d < n; d++) {
        c->len[d] = rnd(6) == 0 ? rnd(4) : 1 + rnd(MAX_DOC); /* some empty / tiny docs */
        for (uint32_t i = 0; i < c->len[d]; i++) {
            uint32_t w = rnd(vocab);
            c->words[d][i] = (uint32_t)((uint64_t)w * rnd(vocab) / vocab); /* Zipf-ish */
        }
        /* bursts: a few documents repeat one word many times (large tf) */
        if (rnd(50) == 0)
            for (uint32_t i = 0; i < c->len[d]; i += 2) c->words[d][i] = c->words[d][0];
    }
}

static void corpus_free(corpus *c) {
    free(c->len);
    free(c->words);
}

static void doc_tokens(const corpus *c, uint32_t d, text_tokens *t) {
    t->bytes_len = 0;
    t->count = 0;
    if (t->bytes_cap < MAX_DOC * 12) {
        t->bytes = realloc(t->bytes, MAX_DOC * 12);
        t->bytes_cap = MAX_DOC * 12;
        t->tok = realloc(t->tok, MAX_DOC * sizeof(*t->tok));
        t->cap = MAX_DOC;
    }
    for (uint32_t i = 0; i < c->len[d]; i++) {
        int n = sprintf(t->bytes + t->bytes_len, "w%u", c->words[d][i]);
        t->tok[t->count].off = (uint32_t)t->bytes_len;
        t->tok[t->count].len = (uint32_t)n;
        t->count++;
        t->bytes_len += (size_t)n;
    }
}

/* Memindex of docs [from, to) with rows d - from. */
static text_memindex *index_range(const corpus *c, uint32_t from, uint32_t to) {
    text_memindex *m;
    assert_int_equal(text_memindex_new(&m, NULL), 0);
    text_tokens t;
    text_tokens_init(&t);
    for (uint32_t d = from; d < to; d++) {
        doc_tokens(c, d, &t);
        assert_int_equal(text_memindex_add(m, d - from, &t, NULL), 0);
    }
    text_tokens_free(&t);
    return m;
}

typedef struct seg_holder {
    buf blob;
    text_segindex *seg;
} seg_holder;

static void flush(const text_memindex *m, uint32_t rows, seg_holder *h) {
    buf b = BUF_INIT;
    h->blob = b;
    assert_int_equal(text_memindex_serialize(m, NULL, 0, rows, &h->blob, NULL), 0);
    assert_int_equal(text_segindex_open(h->blob.data, h->blob.len, "t", &h->seg, NULL), 0);
}

static void seg_holder_free(seg_holder *h) {
    text_segindex_free(h->seg);
    buf_free(&h->blob);
}

/* Query: distinct word ids, with their term strings. */
typedef struct query {
    uint32_t n;
    uint32_t w[MAX_Q];
    char s[MAX_Q][16];
} query;

static void query_make(query *q, uint32_t vocab) {
    q->n = 1 + rnd(MAX_Q);
    uint32_t k = 0;
    while (k < q->n) {
        uint32_t w = rnd(4) == 0 ? rnd(8) : rnd(vocab + 20); /* common words, and some absent */
        bool dup = false;
        for (uint32_t i = 0; i < k; i++) dup |= q->w[i] == w;
        if (dup) continue;
        q->w[k] = w;
        snprintf(q->s[k], sizeof(q->s[k]), "w%u", w);
        k++;
    }
}

/* Brute force, straight from the documents: N, avgdl, df from scanning,
 * then the BM25 formula of the reference, terms in query order. */
static void brute_scores(const corpus *c, const query *q, double *score) {
    uint64_t total = 0;
    uint32_t df[MAX_Q] = {0};
    for (uint32_t d = 0; d < c->n; d++) {
        total += c->len[d];
        for (uint32_t t = 0; t < q->n; t++)
            for (uint32_t i = 0; i < c->len[d]; i++)
                if (c->words[d][i] == q->w[t]) {
                    df[t]++;
                    break;
                }
    }
    double avgdl = (double)total / c->n;
    for (uint32_t d = 0; d < c->n; d++) {
        double s = 0.0;
        for (uint32_t t = 0; t < q->n; t++) {
            uint32_t tf = 0;
            for (uint32_t i = 0; i < c->len[d]; i++) tf += c->words[d][i] == q->w[t];
            if (!tf) continue;
            double idf = log(1.0 + ((double)c->n - df[t] + 0.5) / (df[t] + 0.5));
            s += idf * tf * (1.2 + 1.0) / (tf + 1.2 * (1.0 - 0.75 + 0.75 * (c->len[d] / avgdl)));
        }
        score[d] = s;
    }
}

/* Global statistics over several sources. */
typedef struct sources {
    uint32_t n;
    const text_memindex *mem[4];
    const text_segindex *seg[4];
    uint32_t base[4]; /* global doc id of row 0 */
} sources;

static void global_terms(const sources *src, const query *q, text_query_term *terms,
                         text_field_source *field_template) {
    uint64_t docs = 0, total = 0;
    for (uint32_t i = 0; i < src->n; i++) {
        text_index_stats st;
        if (src->seg[i]) text_segindex_stats(src->seg[i], &st);
        else text_memindex_stats(src->mem[i], &st);
        docs += st.doc_count;
        total += st.total_length;
    }
    for (uint32_t t = 0; t < q->n; t++) {
        uint64_t df = 0;
        for (uint32_t i = 0; i < src->n; i++)
            df += src->seg[i] ? text_segindex_df(src->seg[i], q->s[t], (uint32_t)strlen(q->s[t]))
                              : text_memindex_df(src->mem[i], q->s[t], (uint32_t)strlen(q->s[t]));
        terms[t].field = 0;
        terms[t].bytes = q->s[t];
        terms[t].len = (uint32_t)strlen(q->s[t]);
        terms[t].df = df;
    }
    field_template->weight = 1.0;
    field_template->doc_count = docs;
    field_template->avg_length = docs ? (double)total / (double)docs : 1.0;
}

typedef struct ghit {
    uint32_t doc;
    double score;
} ghit;

static int cmp_ghit(const void *a, const void *b) {
    const ghit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* Top-k over all sources: per-source search, merged. */
static uint32_t search_all(const sources *src, const query *q, uint32_t k, bool exhaustive,
                           ghit *out) {
    text_query_term terms[MAX_Q];
    text_field_source f;
    global_terms(src, q, terms, &f);
    ghit *all = calloc((size_t)k * src->n, sizeof(*all));
    text_hit *hits = calloc(k, sizeof(*hits));
    assert_non_null(all);
    assert_non_null(hits);
    uint32_t total = 0;
    for (uint32_t i = 0; i < src->n; i++) {
        f.mem = src->mem[i];
        f.seg = src->seg[i];
        text_search_opts o = {k, 0.0, NULL, 0, NULL, NULL};
        uint32_t n;
        tdb_error err;
        int rc = exhaustive ? text_search_exhaustive(&f, 1, terms, q->n, &o, hits, &n, &err)
                            : text_search(&f, 1, terms, q->n, &o, hits, &n, NULL, &err);
        if (rc) fail_msg("search: %s", err.message);
        for (uint32_t j = 0; j < n; j++) {
            all[total].doc = src->base[i] + hits[j].row;
            all[total].score = hits[j].score;
            total++;
        }
    }
    qsort(all, total, sizeof(*all), cmp_ghit);
    uint32_t n = total < k ? total : k;
    memcpy(out, all, n * sizeof(*out));
    free(all);
    free(hits);
    return n;
}

static void bm25_matches_brute_force_on_small_corpus(void **state) {
    (void)state;
    corpus c;
    corpus_make(&c, 2000, 400, 1);
    text_memindex *m = index_range(&c, 0, c.n);
    seg_holder h;
    flush(m, c.n, &h);
    double *brute = calloc(c.n, sizeof(double));
    ghit *want = calloc(c.n, sizeof(ghit)), got[100];
    rng_state = 77;
    for (int qi = 0; qi < 60; qi++) {
        query q;
        query_make(&q, 400);
        brute_scores(&c, &q, brute);
        uint32_t nw = 0;
        for (uint32_t d = 0; d < c.n; d++)
            if (brute[d] > 0) want[nw++] = (ghit){d, brute[d]};
        qsort(want, nw, sizeof(*want), cmp_ghit);
        for (int kind = 0; kind < 2; kind++) {
            sources src = {1, {kind ? NULL : m}, {kind ? h.seg : NULL}, {0}};
            uint32_t n = search_all(&src, &q, 100, false, got);
            assert_int_equal(n, nw < 100 ? nw : 100);
            for (uint32_t i = 0; i < n; i++) {
                double rel = fabs(got[i].score - want[i].score) / want[i].score;
                if (rel > 1e-12) fail_msg("query %d rank %u: %.17g vs brute %.17g", qi, i, got[i].score, want[i].score);
                /* same document, unless the brute scores tie (then any order of the tie) */
                if (got[i].doc != want[i].doc)
                    assert_true(fabs(brute[got[i].doc] - want[i].score) <= 1e-12 * want[i].score);
            }
        }
    }
    free(brute);
    free(want);
    seg_holder_free(&h);
    text_memindex_free(m);
    corpus_free(&c);
}

static void scores_do_not_depend_on_segmentation(void **state) {
    (void)state;
    corpus c;
    corpus_make(&c, 3000, 300, 2);
    /* one index holding everything */
    text_memindex *whole_m = index_range(&c, 0, c.n);
    seg_holder whole;
    flush(whole_m, c.n, &whole);
    /* two segments and a memtable */
    text_memindex *a_m = index_range(&c, 0, 1100), *b_m = index_range(&c, 1100, 2300);
    seg_holder a, b;
    flush(a_m, 1100, &a);
    flush(b_m, 1200, &b);
    text_memindex *mem = index_range(&c, 2300, c.n);
    /* churn in the memtable: remove and re-add some rows */
    text_tokens t;
    text_tokens_init(&t);
    for (uint32_t r = 0; r < 700; r += 7) {
        assert_int_equal(text_memindex_remove(mem, r), 1);
        doc_tokens(&c, 2300 + r, &t);
        assert_int_equal(text_memindex_add(mem, r, &t, NULL), 0);
    }
    text_tokens_free(&t);
    sources one = {1, {NULL}, {whole.seg}, {0}};
    sources split = {3, {NULL, NULL, mem}, {a.seg, b.seg, NULL}, {0, 1100, 2300}};
    ghit x[50], y[50];
    rng_state = 123;
    for (int qi = 0; qi < 200; qi++) {
        query q;
        query_make(&q, 300);
        uint32_t k = 1 + rnd(50);
        uint32_t nx = search_all(&one, &q, k, false, x);
        uint32_t ny = search_all(&split, &q, k, false, y);
        assert_int_equal(nx, ny);
        for (uint32_t i = 0; i < nx; i++) {
            assert_int_equal(x[i].doc, y[i].doc);
            assert_true(x[i].score == y[i].score); /* bit for bit */
        }
    }
    seg_holder_free(&whole);
    seg_holder_free(&a);
    seg_holder_free(&b);
    text_memindex_free(whole_m);
    text_memindex_free(a_m);
    text_memindex_free(b_m);
    text_memindex_free(mem);
    corpus_free(&c);
}

static void wand_topk_equals_exhaustive_topk(void **state) {
    (void)state;
    corpus c;
    corpus_make(&c, 6000, 1000, 3);
    text_memindex *m = index_range(&c, 0, c.n);
    /* tombstones in the memtable too */
    for (uint32_t r = 0; r < c.n; r += 11) assert_int_equal(text_memindex_remove(m, r), 1);
    seg_holder h;
    flush(m, c.n, &h);
    static const uint32_t ks[] = {1, 3, 10, 50, 1000};
    text_hit *w = calloc(1000, sizeof(*w)), *e = calloc(1000, sizeof(*e));
    uint64_t scored = 0, postings = 0;
    rng_state = 9;
    for (int qi = 0; qi < 250; qi++) {
        query q;
        query_make(&q, 1000);
        uint32_t k = ks[qi % 5];
        for (int kind = 0; kind < 2; kind++) {
            sources src = {1, {kind ? NULL : m}, {kind ? h.seg : NULL}, {0}};
            text_query_term terms[MAX_Q];
            text_field_source f;
            global_terms(&src, &q, terms, &f);
            f.mem = src.mem[0];
            f.seg = src.seg[0];
            text_search_opts o = {k, 0.0, NULL, 0, NULL, NULL};
            uint32_t nw, ne;
            text_search_stats st;
            assert_int_equal(text_search(&f, 1, terms, q.n, &o, w, &nw, &st, NULL), 0);
            assert_int_equal(text_search_exhaustive(&f, 1, terms, q.n, &o, e, &ne, NULL), 0);
            assert_int_equal(nw, ne);
            for (uint32_t i = 0; i < nw; i++) {
                assert_int_equal(w[i].row, e[i].row);
                assert_true(w[i].score == e[i].score);
                assert_true(w[i].row % 11 != 0);
            }
            if (kind == 1 && k <= 10) {
                scored += st.scored;
                postings += st.postings;
            }
        }
    }
    /* block-max WAND skipped most of the work for small k */
    assert_true(scored * 2 < postings);
    free(w);
    free(e);
    seg_holder_free(&h);
    text_memindex_free(m);
    corpus_free(&c);
}

/* Two fields with weights: score = sum over fields of w_f * BM25_f. */
static void multi_field_weights_match_brute_force(void **state) {
    (void)state;
    corpus title, body;
    corpus_make(&title, 1500, 100, 4);
    corpus_make(&body, 1500, 500, 5);
    text_memindex *tm = index_range(&title, 0, 1500), *bm = index_range(&body, 0, 1500);
    seg_holder ts, bs;
    flush(tm, 1500, &ts);
    flush(bm, 1500, &bs);
    double *st_ = calloc(1500, sizeof(double)), *sb = calloc(1500, sizeof(double));
    text_hit hits[20], ex[20];
    rng_state = 31;
    for (int qi = 0; qi < 40; qi++) {
        query q;
        query_make(&q, 100);
        /* terms: each word in title then body (the canonical sum order) */
        text_query_term terms[2 * MAX_Q];
        text_field_source f[2] = {{NULL, ts.seg, 2.0, 0, 0}, {NULL, bs.seg, 0.5, 0, 0}};
        for (int fi = 0; fi < 2; fi++) {
            text_index_stats s;
            text_segindex_stats(f[fi].seg, &s);
            f[fi].doc_count = s.doc_count;
            f[fi].avg_length = (double)s.total_length / (double)s.doc_count;
        }
        for (uint32_t t = 0; t < q.n; t++)
            for (uint32_t fi = 0; fi < 2; fi++) {
                text_query_term *qt = &terms[2 * t + fi];
                qt->field = fi;
                qt->bytes = q.s[t];
                qt->len = (uint32_t)strlen(q.s[t]);
                qt->df = text_segindex_df(f[fi].seg, qt->bytes, qt->len);
            }
        /* brute force per field, one term at a time, summed in the same order */
        double *acc = calloc(1500, sizeof(double));
        for (uint32_t t = 0; t < q.n; t++) {
            query one = {1, {q.w[t]}, {{0}}};
            snprintf(one.s[0], sizeof(one.s[0]), "%s", q.s[t]);
            brute_scores(&title, &one, st_);
            brute_scores(&body, &one, sb);
            for (uint32_t d = 0; d < 1500; d++) {
                if (st_[d] > 0) acc[d] += 2.0 * st_[d];
                if (sb[d] > 0) acc[d] += 0.5 * sb[d];
            }
        }
        text_search_opts o = {20, 0.0, NULL, 0, NULL, NULL};
        uint32_t n, ne;
        assert_int_equal(text_search(f, 2, terms, 2 * q.n, &o, hits, &n, NULL, NULL), 0);
        assert_int_equal(text_search_exhaustive(f, 2, terms, 2 * q.n, &o, ex, &ne, NULL), 0);
        assert_int_equal(n, ne);
        for (uint32_t i = 0; i < n; i++) {
            assert_int_equal(hits[i].row, ex[i].row);
            assert_true(hits[i].score == ex[i].score);
            double want = acc[hits[i].row];
            assert_true(fabs(hits[i].score - want) <= 1e-12 * want);
        }
        uint32_t positive = 0;
        for (uint32_t d = 0; d < 1500; d++) positive += acc[d] > 0;
        assert_int_equal(n, positive < 20 ? positive : 20);
        free(acc);
    }
    free(st_);
    free(sb);
    seg_holder_free(&ts);
    seg_holder_free(&bs);
    text_memindex_free(tm);
    text_memindex_free(bm);
    corpus_free(&title);
    corpus_free(&body);
}

static uint32_t accept_calls;
static bool accept_not_multiple_of_5(void *ctx, uint32_t row) {
    (void)ctx;
    accept_calls++;
    return row % 5 != 0;
}

static void deleted_rows_and_filters_are_skipped(void **state) {
    (void)state;
    corpus c;
    corpus_make(&c, 4000, 200, 6);
    text_memindex *m = index_range(&c, 0, c.n);
    seg_holder h;
    flush(m, c.n, &h);
    uint64_t deleted[(4000 + 63) / 64] = {0};
    for (uint32_t r = 0; r < 4000; r += 3) deleted[r / 64] |= 1ull << (r % 64);
    double *brute = calloc(c.n, sizeof(double));
    ghit *want = calloc(c.n, sizeof(ghit));
    text_hit hits[25], ex[25];
    rng_state = 55;
    for (int qi = 0; qi < 50; qi++) {
        query q;
        query_make(&q, 200);
        sources src = {1, {NULL}, {h.seg}, {0}};
        text_query_term terms[MAX_Q];
        text_field_source f;
        global_terms(&src, &q, terms, &f);
        f.mem = NULL;
        f.seg = h.seg;
        text_search_opts o = {25, 0.0, deleted, 4000, accept_not_multiple_of_5, NULL};
        uint32_t n, ne;
        accept_calls = 0;
        assert_int_equal(text_search(&f, 1, terms, q.n, &o, hits, &n, NULL, NULL), 0);
        assert_int_equal(text_search_exhaustive(&f, 1, terms, q.n, &o, ex, &ne, NULL), 0);
        brute_scores(&c, &q, brute);
        uint32_t nw = 0;
        for (uint32_t d = 0; d < c.n; d++)
            if (brute[d] > 0 && d % 3 != 0 && d % 5 != 0) want[nw++] = (ghit){d, brute[d]};
        qsort(want, nw, sizeof(*want), cmp_ghit);
        assert_int_equal(n, nw < 25 ? nw : 25);
        assert_int_equal(n, ne);
        for (uint32_t i = 0; i < n; i++) {
            assert_true(hits[i].row % 3 != 0 && hits[i].row % 5 != 0);
            assert_int_equal(hits[i].row, ex[i].row);
            assert_true(hits[i].score == ex[i].score);
            assert_true(fabs(hits[i].score - want[i].score) <= 1e-12 * want[i].score);
        }
        /* min_score: only rows above it */
        if (n > 3) {
            double cut = hits[3].score;
            text_search_opts o2 = {25, cut, deleted, 4000, accept_not_multiple_of_5, NULL};
            uint32_t n2;
            text_hit h2[25];
            assert_int_equal(text_search(&f, 1, terms, q.n, &o2, h2, &n2, NULL, NULL), 0);
            uint32_t above = 0;
            while (above < n && hits[above].score > cut) above++;
            assert_int_equal(n2, above);
            for (uint32_t i = 0; i < n2; i++) assert_int_equal(h2[i].row, hits[i].row);
        }
    }
    free(brute);
    free(want);
    seg_holder_free(&h);
    text_memindex_free(m);
    corpus_free(&c);
}

static void idf_matches_definition(void **state) {
    (void)state;
    assert_true(fabs(text_bm25_idf(100, 10) - log(1.0 + 90.5 / 10.5)) < 1e-15);
    assert_true(fabs(text_bm25_idf(63666, 1) - log(1.0 + 63665.5 / 1.5)) < 1e-15);
    /* df above N (inconsistent stats) clamps: idf stays > 0 */
    assert_true(text_bm25_idf(10, 50) == text_bm25_idf(10, 10));
    assert_true(text_bm25_idf(10, 10) > 0);
}

static void bad_arguments_are_rejected(void **state) {
    (void)state;
    text_memindex *m;
    assert_int_equal(text_memindex_new(&m, NULL), 0);
    text_field_source f = {m, NULL, 1.0, 1, 1.0};
    text_query_term q = {0, "a", 1, 1};
    text_hit hits[4];
    uint32_t n;
    tdb_error err;
    text_search_opts o = {0, 0.0, NULL, 0, NULL, NULL};
    assert_int_equal(text_search(&f, 1, &q, 1, &o, hits, &n, NULL, &err), TDB_EINVAL);
    o.k = TEXT_MAX_K + 1;
    assert_int_equal(text_search(&f, 1, &q, 1, &o, hits, &n, NULL, &err), TDB_EINVAL);
    o.k = 4;
    q.field = 1;
    assert_int_equal(text_search(&f, 1, &q, 1, &o, hits, &n, NULL, &err), TDB_EINVAL);
    assert_int_equal(text_search_exhaustive(&f, 1, &q, 1, &o, hits, &n, &err), TDB_EINVAL);
    q.field = 0;
    f.weight = -1;
    assert_int_equal(text_search(&f, 1, &q, 1, &o, hits, &n, NULL, &err), TDB_EINVAL);
    f.weight = 1;
    assert_int_equal(text_search(&f, 1, &q, TEXT_MAX_QUERY_TERMS + 1, &o, hits, &n, NULL, &err), TDB_EINVAL);
    /* an empty query or a source without the field finds nothing */
    assert_int_equal(text_search(&f, 1, &q, 0, &o, hits, &n, NULL, &err), 0);
    assert_int_equal(n, 0);
    text_field_source none = {NULL, NULL, 1.0, 1, 1.0};
    assert_int_equal(text_search(&none, 1, &q, 1, &o, hits, &n, NULL, &err), 0);
    assert_int_equal(n, 0);
    text_memindex_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bm25_matches_brute_force_on_small_corpus),
        cmocka_unit_test(scores_do_not_depend_on_segmentation),
        cmocka_unit_test(wand_topk_equals_exhaustive_topk),
        cmocka_unit_test(multi_field_weights_match_brute_force),
        cmocka_unit_test(deleted_rows_and_filters_are_skipped),
        cmocka_unit_test(idf_matches_definition),
        cmocka_unit_test(bad_arguments_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
