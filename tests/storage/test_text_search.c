/*
 * test_text_search.c: BM25 search through the storage engine
 * (storage/textindex.c): scores and ranks equal a brute-force BM25 over
 * the live documents whether they sit in the memtable, in several
 * segments, or in one compacted segment, with overwrites and deletes
 * excluded from the statistics; filters; field selection and weights;
 * string[] values; language analyzers; segments opened in place after a
 * reopen and rebuilt when written without a text index; errors.
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

#include <pthread.h>

#include "storage/collection_int.h"
#include "text/bm25.h"
#include "util/fileio.h"
#include "util/pool.h"

#define MAX_DOCS 2000
#define BODY_BYTES 512
#define K1 1.2
#define B 0.75

/* ---- fixture: a collection and an oracle of its live documents ------- */

typedef struct tdoc {
    bool live;
    bool has_body;
    char body[BODY_BYTES];
} tdoc;

typedef struct tfix {
    char *dir;
    st_collection *c;
    st_options opts;
    st_text_field fields[2];
    tdoc *docs; /* MAX_DOCS */
    uint64_t rng;
} tfix;

static char *tmpdir(void) {
    const char *base = getenv("TDB_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    assert_int_equal(fio_mkdir_p(base), 0);
    size_t n = strlen(base) + 32;
    char *t = malloc(n);
    snprintf(t, n, "%s/textsearch-XXXXXX", base);
    assert_non_null(mkdtemp(t));
    return t;
}

static void fix_open(tfix *f) {
    tdb_error err;
    int rc = st_open(f->dir, 0, TDB_METRIC_COSINE, &f->opts, &f->c, &err);
    if (rc != 0) fail_msg("st_open: %s", err.message);
}

/* One full-text field "body" with the default analyzer, manual flushes. */
static void fix_init(tfix *f) {
    memset(f, 0, sizeof *f);
    f->dir = tmpdir();
    f->fields[0].name = "body";
    text_analyzer_config_default(&f->fields[0].analyzer);
    f->opts.text_fields = f->fields;
    f->opts.n_text_fields = 1;
    /* Durability is not what these tests check: no fsync per write. */
    f->opts.fsync = TDB_FSYNC_NONE;
    f->opts.memtable_max_docs = 1000000;
    f->opts.compaction_min_segments = 1000;
    f->docs = calloc(MAX_DOCS, sizeof *f->docs);
    f->rng = 42;
    fix_open(f);
}

static void fix_done(tfix *f) {
    st_close(f->c);
    fio_rmtree(f->dir);
    free(f->dir);
    free(f->docs);
}

static void fix_reopen(tfix *f) {
    st_close(f->c);
    fix_open(f);
}

static uint64_t next_rand(tfix *f) {
    f->rng = f->rng * 6364136223846793005ull + 1442695040888963407ull;
    return f->rng >> 33;
}

static const char *const VOCAB[] = {"alpha", "beta",  "gamma", "delta", "fox",   "dog",
                                    "red",   "tier",  "text",  "vector", "Search", "engine",
                                    "kelp",  "loam",  "jade",  "Ember", "dune",  "grove"};
#define VOCAB_N (sizeof VOCAB / sizeof *VOCAB)

/* A body of 2..41 words, skewed towards the first words of VOCAB. */
static void make_body(tfix *f, char *out) {
    int words = 2 + (int)(next_rand(f) % 40);
    size_t len = 0;
    out[0] = '\0';
    for (int w = 0; w < words; w++) {
        uint64_t r = next_rand(f) % (VOCAB_N * VOCAB_N);
        size_t i = (size_t)sqrt((double)r);
        i = VOCAB_N - 1 - (i < VOCAB_N ? i : VOCAB_N - 1);
        len += (size_t)snprintf(out + len, BODY_BYTES - len, "%s%s", w ? " " : "", VOCAB[i]);
    }
}

static void id_of(char out[16], int i) { snprintf(out, 16, "d%05d", i); }

/* Upserts docs [from, to): fresh bodies, every 13th without a body. */
static void put_range(tfix *f, int from, int to) {
    for (int i = from; i < to; i++) {
        tdoc *d = &f->docs[i];
        char id[16], attrs[BODY_BYTES + 64];
        id_of(id, i);
        d->has_body = i % 13 != 7;
        if (d->has_body) {
            make_body(f, d->body);
            snprintf(attrs, sizeof attrs, "{\"body\":\"%s\",\"n\":%d}", d->body, i);
        } else {
            snprintf(attrs, sizeof attrs, "{\"n\":%d}", i);
        }
        st_doc doc = {id, (uint32_t)strlen(id), NULL, attrs, (uint32_t)strlen(attrs)};
        tdb_error err;
        if (st_upsert(f->c, &doc, 1, &err) != 0) fail_msg("st_upsert: %s", err.message);
        d->live = true;
    }
}

static void del_range(tfix *f, int from, int to, int step) {
    for (int i = from; i < to; i += step) {
        char id[16];
        id_of(id, i);
        st_key k = {id, (uint32_t)strlen(id)};
        size_t deleted;
        tdb_error err;
        if (st_delete(f->c, &k, 1, &deleted, &err) != 0) fail_msg("st_delete: %s", err.message);
        assert_int_equal(deleted, f->docs[i].live ? 1 : 0);
        f->docs[i].live = false;
    }
}

static void flush(tfix *f) {
    tdb_error err;
    if (st_flush(f->c, &err) != 0) fail_msg("st_flush: %s", err.message);
}

static void compact(tfix *f) {
    tdb_error err;
    if (st_compact(f->c, &err) != 0) fail_msg("st_compact: %s", err.message);
}

/* ---- brute-force BM25 ----------------------------------------------- */

typedef struct oscore {
    double score;
    int i;
} oscore;

static int oscore_cmp(const void *a, const void *b) {
    const oscore *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->i - y->i; /* zero-padded ids: numeric order is byte order */
}

static int tokenize(const text_analyzer *an, const char *s, text_tokens *t) {
    tdb_error err;
    int rc = text_analyze(an, s, strlen(s), t, &err);
    assert_int_equal(rc, 0);
    return (int)t->count;
}

static bool tok_eq(const text_tokens *t, size_t i, const char *s, size_t len) {
    return t->tok[i].len == len && memcmp(t->bytes + t->tok[i].off, s, len) == 0;
}

/* Scores of every live document with a positive score, best first;
 * filter_mod > 0 keeps only ids with i % filter_mod == 0 (statistics stay
 * collection-wide). Returns the count. */
static size_t brute_force(const tfix *f, const char *query, int filter_mod, oscore *out) {
    text_analyzer *an;
    text_analyzer_config cfg;
    text_analyzer_config_default(&cfg);
    assert_int_equal(text_analyzer_new(&cfg, &an, NULL), 0);
    text_tokens qt, dt;
    text_tokens_init(&qt);
    text_tokens_init(&dt);
    tokenize(an, query, &qt);
    assert_int_equal(text_tokens_dedup(&qt, NULL), 0);
    uint64_t n_docs = 0, total = 0;
    uint64_t *df = calloc(qt.count + 1, sizeof *df);
    for (int i = 0; i < MAX_DOCS; i++) {
        const tdoc *d = &f->docs[i];
        if (!d->live || !d->has_body) continue;
        n_docs++;
        total += (uint64_t)tokenize(an, d->body, &dt);
        for (size_t t = 0; t < qt.count; t++)
            for (size_t j = 0; j < dt.count; j++)
                if (tok_eq(&dt, j, qt.bytes + qt.tok[t].off, qt.tok[t].len)) {
                    df[t]++;
                    break;
                }
    }
    double avgdl = n_docs ? (double)total / (double)n_docs : 0;
    size_t n = 0;
    for (int i = 0; i < MAX_DOCS; i++) {
        const tdoc *d = &f->docs[i];
        if (!d->live || !d->has_body) continue;
        if (filter_mod > 0 && i % filter_mod != 0) continue;
        uint32_t dl = (uint32_t)tokenize(an, d->body, &dt);
        double score = 0;
        for (size_t t = 0; t < qt.count; t++) {
            uint32_t tf = 0;
            for (size_t j = 0; j < dt.count; j++)
                tf += tok_eq(&dt, j, qt.bytes + qt.tok[t].off, qt.tok[t].len);
            if (tf == 0) continue;
            double idf = text_bm25_idf(n_docs, df[t]);
            double ftf = (double)tf;
            double norm = K1 * (1.0 - B + B * ((double)dl / avgdl));
            score += 1.0 * (idf * ftf * (K1 + 1.0) / (ftf + norm));
        }
        if (score > 0) out[n++] = (oscore){score, i};
    }
    qsort(out, n, sizeof *out, oscore_cmp);
    free(df);
    text_tokens_free(&qt);
    text_tokens_free(&dt);
    text_analyzer_free(an);
    return n;
}

static bool filter_mod3(void *ctx, const char *id, uint32_t id_len, const char *attrs,
                        uint32_t attrs_len) {
    (void)ctx;
    (void)attrs;
    (void)attrs_len;
    int i = atoi(id + 1);
    assert_true(id_len == 6);
    return i % 3 == 0;
}

/* The engine's answer equals the oracle's: same count, at every rank the
 * same score to the last bit (ties may list tied ids in another order, so
 * each id is checked to carry its own oracle score). */
static void check_query(tfix *f, const char *query, size_t k, int filter_mod, bool exhaustive) {
    oscore *want = malloc(MAX_DOCS * sizeof *want);
    size_t n_want = brute_force(f, query, filter_mod, want);
    st_text_query q = {.text = query, .text_len = strlen(query), .exhaustive = exhaustive};
    st_hit *hits;
    size_t n;
    tdb_error err;
    int rc = st_search_text(f->c, &q, k, filter_mod ? filter_mod3 : NULL, NULL, false, &hits, &n,
                            &err);
    if (rc != 0) fail_msg("st_search_text: %s", err.message);
    size_t expect = k < n_want ? k : n_want;
    if (n != expect) fail_msg("query '%s': %zu hits, expected %zu", query, n, expect);
    for (size_t r = 0; r < n; r++) {
        if (hits[r].score != want[r].score)
            fail_msg("query '%s' rank %zu: score %.17g, expected %.17g", query, r, hits[r].score,
                     want[r].score);
        int i = atoi(hits[r].rec.id + 1);
        bool found = false;
        for (size_t j = 0; j < n_want && !found; j++)
            found = want[j].i == i && want[j].score == hits[r].score;
        if (!found) fail_msg("query '%s' rank %zu: %s has another score", query, r, hits[r].rec.id);
        assert_non_null(strstr(hits[r].rec.attrs, "\"body\""));
    }
    st_hits_free(hits, n);
    free(want);
}

static const char *const QUERIES[] = {"fox", "grove dune", "alpha beta gamma", "search engine",
                                      "EMBER jade kelp", "red red fox", "nothing here", "tier"};
#define QUERIES_N (sizeof QUERIES / sizeof *QUERIES)

static void check_all(tfix *f) {
    for (size_t i = 0; i < QUERIES_N; i++) {
        check_query(f, QUERIES[i], 10, 0, false);
        check_query(f, QUERIES[i], 1000, 0, false);
        check_query(f, QUERIES[i], 7, 3, false);
        check_query(f, QUERIES[i], 25, 0, true);
    }
}

/* ---- tests ------------------------------------------------------------- */

static void text_scores_equal_brute_force_across_memtable_segments_and_compaction(void **state) {
    (void)state;
    tfix f;
    fix_init(&f);
    put_range(&f, 0, 400);
    check_all(&f); /* memtable only */
    flush(&f);
    put_range(&f, 300, 700);   /* overwrites rows of segment 1 */
    del_range(&f, 0, 100, 4);  /* deletes rows only in segment 1 */
    flush(&f);
    put_range(&f, 650, 900);   /* overwrites rows of segment 2, stays in the memtable */
    del_range(&f, 350, 450, 3); /* deletes rows of segment 2 */
    del_range(&f, 880, 900, 2); /* deletes memtable versions */
    check_all(&f);
    flush(&f);
    put_range(&f, 900, 1000);
    assert_int_equal(f.c->view->nsegs, 3);
    check_all(&f);
    compact(&f);
    assert_int_equal(f.c->view->nsegs, 1);
    check_all(&f);
    del_range(&f, 500, 600, 5); /* marks in the compacted segment */
    check_all(&f);
    fix_reopen(&f); /* the delete lists come back as marks */
    check_all(&f);
    assert_true(st_check(f.c));
    fix_done(&f);
}

static void text_segments_open_in_place_after_reopen(void **state) {
    (void)state;
    tfix f;
    fix_init(&f);
    put_range(&f, 0, 200);
    flush(&f);
    fix_reopen(&f);
    assert_int_equal(f.c->view->nsegs, 1);
    const st_seg *s = f.c->view->segs[0];
    assert_false(s->text_rebuilt);
    assert_null(s->text_heap[0]);
    const void *blob;
    size_t len;
    assert_int_equal(seg_extra_get(s->seg, ST_EXTRA_TEXT_FIRST, &blob, &len), 0);
    assert_non_null(s->text[0]);
    st_stats st;
    st_stats_get(f.c, &st);
    assert_int_equal(st.indexed_documents, 200);
    check_all(&f);
    fix_done(&f);
}

static void text_segment_without_index_is_rebuilt_at_open(void **state) {
    (void)state;
    tfix f;
    fix_init(&f);
    /* Written by a collection that had no full-text field. */
    st_close(f.c);
    f.opts.n_text_fields = 0;
    fix_open(&f);
    put_range(&f, 0, 150);
    flush(&f);
    f.opts.n_text_fields = 1;
    fix_reopen(&f);
    const st_seg *s = f.c->view->segs[0];
    assert_true(s->text_rebuilt);
    assert_non_null(s->text_heap[0]);
    check_all(&f);
    /* A compaction writes the index into the file. */
    put_range(&f, 140, 160);
    flush(&f);
    compact(&f);
    assert_false(f.c->view->segs[0]->text_rebuilt);
    check_all(&f);
    fix_done(&f);
}

static void text_fields_weights_and_arrays(void **state) {
    (void)state;
    tfix f;
    memset(&f, 0, sizeof f);
    f.dir = tmpdir();
    f.fields[0].name = "title";
    text_analyzer_config_default(&f.fields[0].analyzer);
    f.fields[1].name = "tags";
    text_analyzer_config_default(&f.fields[1].analyzer);
    f.opts.text_fields = f.fields;
    f.opts.n_text_fields = 2;
    f.docs = calloc(MAX_DOCS, sizeof *f.docs);
    fix_open(&f);
    assert_int_equal(st_text_field_count(f.c), 2);
    assert_int_equal(st_text_field_find(f.c, "tags", 4), 1);
    assert_int_equal(st_text_field_find(f.c, "nope", 4), -1);
    const char *attrs[] = {
        "{\"title\":\"red apple\",\"tags\":[\"fruit\",\"red red\"]}",
        "{\"title\":\"green pear\",\"tags\":\"fruit\"}",
        "{\"title\":\"red\",\"tags\":[1,true]}", /* no string: tags absent */
        "{\"title\":42,\"tags\":[\"red\"]}",     /* title absent */
    };
    for (int i = 0; i < 4; i++) {
        char id[16];
        id_of(id, i);
        st_doc d = {id, (uint32_t)strlen(id), NULL, attrs[i], (uint32_t)strlen(attrs[i])};
        assert_int_equal(st_upsert(f.c, &d, 1, NULL), 0);
    }
    for (int round = 0; round < 2; round++) {
        /* tags only: N = 3 (d00000, d00001, d00003), df(red) = 2. */
        uint32_t tags = 1;
        st_text_query q = {.text = "RED", .text_len = 3, .fields = &tags, .n_fields = 1};
        st_hit *h;
        size_t n;
        assert_int_equal(st_search_text(f.c, &q, 10, NULL, NULL, false, &h, &n, NULL), 0);
        assert_int_equal(n, 2);
        /* d00003: tf 1, dl 1; d00000: tf 2, dl 3 (arrays concatenate). */
        double idf = text_bm25_idf(3, 2), avgdl = 5.0 / 3.0;
        double s3 = idf * 1 * (K1 + 1) / (1 + K1 * (1 - B + B * (1.0 / avgdl)));
        double s0 = idf * 2 * (K1 + 1) / (2 + K1 * (1 - B + B * (3.0 / avgdl)));
        const st_hit *h0 = strcmp(h[0].rec.id, "d00000") == 0 ? &h[0] : &h[1];
        const st_hit *h3 = h0 == &h[0] ? &h[1] : &h[0];
        assert_string_equal(h3->rec.id, "d00003");
        assert_true(fabs(h0->score - s0) <= 1e-12 * s0);
        assert_true(fabs(h3->score - s3) <= 1e-12 * s3);
        st_hits_free(h, n);
        /* Both fields, title weighted 2: a sum of the two fields' scores. */
        uint32_t both[2] = {0, 1};
        double w[2] = {2.0, 1.0};
        st_text_query q2 = {.text = "red", .text_len = 3, .fields = both, .weights = w, .n_fields = 2};
        assert_int_equal(st_search_text(f.c, &q2, 10, NULL, NULL, false, &h, &n, NULL), 0);
        assert_int_equal(n, 3);
        uint32_t title = 0;
        st_text_query qt = {.text = "red", .text_len = 3, .fields = &title, .n_fields = 1};
        st_hit *ht;
        size_t nt;
        assert_int_equal(st_search_text(f.c, &qt, 10, NULL, NULL, false, &ht, &nt, NULL), 0);
        assert_int_equal(nt, 2); /* d00000, d00002 */
        for (size_t i = 0; i < n; i++) {
            double want = 0;
            for (size_t j = 0; j < nt; j++)
                if (strcmp(ht[j].rec.id, h[i].rec.id) == 0) want += 2.0 * ht[j].score;
            if (strcmp(h[i].rec.id, "d00000") == 0) want += s0;
            if (strcmp(h[i].rec.id, "d00003") == 0) want += s3;
            assert_true(fabs(h[i].score - want) <= 1e-12 * want);
            if (i) assert_true(h[i - 1].score >= h[i].score);
        }
        st_hits_free(h, n);
        st_hits_free(ht, nt);
        flush(&f); /* the same from a segment */
    }
    fix_done(&f);
}

static void text_language_analyzer_stems_and_drops_stopwords(void **state) {
    (void)state;
    tfix f;
    memset(&f, 0, sizeof f);
    f.dir = tmpdir();
    f.fields[0].name = "t";
    text_analyzer_config_language(&f.fields[0].analyzer, "english");
    f.fields[0].analyzer.stopwords = true;
    f.opts.text_fields = f.fields;
    f.opts.n_text_fields = 1;
    f.docs = calloc(MAX_DOCS, sizeof *f.docs);
    fix_open(&f);
    const char *attrs[] = {"{\"t\":\"running shoes\"}", "{\"t\":\"he runs daily\"}",
                           "{\"t\":\"the banana\"}"};
    for (int i = 0; i < 3; i++) {
        char id[16];
        id_of(id, i);
        st_doc d = {id, (uint32_t)strlen(id), NULL, attrs[i], (uint32_t)strlen(attrs[i])};
        assert_int_equal(st_upsert(f.c, &d, 1, NULL), 0);
    }
    for (int round = 0; round < 2; round++) {
        st_text_query q = {.text = "RUN", .text_len = 3};
        st_hit *h;
        size_t n;
        assert_int_equal(st_search_text(f.c, &q, 10, NULL, NULL, false, &h, &n, NULL), 0);
        assert_int_equal(n, 2);
        st_hits_free(h, n);
        st_text_query q2 = {.text = "the", .text_len = 3};
        assert_int_equal(st_search_text(f.c, &q2, 10, NULL, NULL, false, &h, &n, NULL), 0);
        assert_int_equal(n, 0);
        assert_null(h);
        flush(&f);
        fix_reopen(&f);
    }
    fix_done(&f);
}

static void text_search_rejects_bad_requests(void **state) {
    (void)state;
    tfix f;
    fix_init(&f);
    put_range(&f, 0, 10);
    tdb_error err;
    st_hit *h;
    size_t n;
    uint32_t bad = 5;
    st_text_query q = {.text = "fox", .text_len = 3, .fields = &bad, .n_fields = 1};
    assert_int_equal(st_search_text(f.c, &q, 10, NULL, NULL, false, &h, &n, &err), TDB_EINVAL);
    uint32_t one = 0;
    double neg = -1;
    st_text_query q2 = {.text = "fox", .text_len = 3, .fields = &one, .weights = &neg, .n_fields = 1};
    assert_int_equal(st_search_text(f.c, &q2, 10, NULL, NULL, false, &h, &n, &err), TDB_EINVAL);
    st_text_query q3 = {.text = "  ;; ", .text_len = 5};
    assert_int_equal(st_search_text(f.c, &q3, 10, NULL, NULL, false, &h, &n, &err), 0);
    assert_int_equal(n, 0);
    st_text_query q4 = {.text = "fox", .text_len = 3};
    assert_int_equal(st_search_text(f.c, &q4, TEXT_MAX_K + 1, NULL, NULL, false, &h, &n, &err),
                     TDB_EINVAL);
    fix_done(&f);
    /* A collection without full-text fields. */
    fix_init(&f);
    st_close(f.c);
    f.opts.n_text_fields = 0;
    fix_open(&f);
    assert_int_equal(st_search_text(f.c, &q4, 10, NULL, NULL, false, &h, &n, &err), TDB_EINVAL);
    assert_int_equal(st_text_field_count(f.c), 0);
    fix_done(&f);
    /* An unknown language fails the open with a message naming the field. */
    fix_init(&f);
    st_close(f.c);
    f.fields[0].analyzer.language = "klingon";
    st_collection *c = NULL;
    assert_int_equal(st_open(f.dir, 0, TDB_METRIC_COSINE, &f.opts, &c, &err), TDB_EINVAL);
    assert_non_null(strstr(err.message, "body"));
    f.fields[0].analyzer.language = NULL;
    fix_open(&f);
    fix_done(&f);
}

/* A writer thread overwrites and deletes while background flushes and
 * compactions run (tiny memtable, compaction at 2 segments) and this
 * thread searches: every answer is well formed (best first, positive
 * scores, no id twice); once quiet, the scores are exact again. */
typedef struct churn {
    tfix *f;
    _Atomic bool stop;
    int rounds;
} churn;

static void *churn_writer(void *arg) {
    churn *ch = arg;
    tfix *f = ch->f;
    for (int round = 0; round < ch->rounds; round++) {
        int from = (int)(next_rand(f) % 500);
        put_range(f, from, from + 40);
        del_range(f, from + 40, from + 60, 3);
    }
    atomic_store(&ch->stop, true);
    return NULL;
}

static void text_search_during_writes_flushes_and_compactions(void **state) {
    (void)state;
    tfix f;
    fix_init(&f);
    st_close(f.c);
    pool *bg = pool_create(2);
    assert_non_null(bg);
    f.opts.memtable_max_docs = 150;
    f.opts.compaction_min_segments = 2;
    f.opts.background = bg;
    fix_open(&f);
    put_range(&f, 0, 600);
    churn ch = {&f, false, 60};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, churn_writer, &ch), 0);
    int searches = 0;
    while (!atomic_load(&ch.stop) || searches < 20) {
        const char *qs = QUERIES[searches % QUERIES_N];
        st_text_query q = {.text = qs, .text_len = strlen(qs)};
        st_hit *h;
        size_t n;
        tdb_error err;
        if (st_search_text(f.c, &q, 50, NULL, NULL, false, &h, &n, &err) != 0)
            fail_msg("st_search_text: %s", err.message);
        for (size_t i = 0; i < n; i++) {
            assert_true(h[i].score > 0);
            if (i) assert_true(h[i - 1].score >= h[i].score);
            for (size_t j = 0; j < i; j++) assert_string_not_equal(h[i].rec.id, h[j].rec.id);
        }
        st_hits_free(h, n);
        searches++;
    }
    pthread_join(t, NULL);
    st_stats st;
    st_stats_get(f.c, &st);
    assert_true(st.flushes >= 5);
    assert_true(st.compactions >= 1);
    print_message("%d searches during %llu flushes and %llu compactions\n", searches,
                  (unsigned long long)st.flushes, (unsigned long long)st.compactions);
    st_close(f.c); /* waits for the background jobs */
    f.opts.background = NULL;
    f.opts.compaction_min_segments = 1000;
    fix_open(&f);
    check_all(&f);
    fix_done(&f);
    pool_destroy(bg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_scores_equal_brute_force_across_memtable_segments_and_compaction),
        cmocka_unit_test(text_segments_open_in_place_after_reopen),
        cmocka_unit_test(text_segment_without_index_is_rebuilt_at_open),
        cmocka_unit_test(text_fields_weights_and_arrays),
        cmocka_unit_test(text_language_analyzer_stems_and_drops_stopwords),
        cmocka_unit_test(text_search_rejects_bad_requests),
        cmocka_unit_test(text_search_during_writes_flushes_and_compactions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
