/*
 * test_index.c: the memtable inverted index (add, remove, statistics,
 * invariants) and the serialized segment blob (round trip, row maps,
 * corrupted and truncated blobs -> TDB_ECORRUPT, never a crash).
 */
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
#include "text/postings.h"
#include "util/log.h"

/* Deterministic generator (64-bit LCG, high bits). */
static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

/* Tokens from a space-separated string (already "analyzed"). */
static void make_tokens(text_tokens *t, const char *words) {
    t->bytes_len = 0;
    t->count = 0;
    size_t len = strlen(words);
    if (t->bytes_cap < len + 1) {
        t->bytes = realloc(t->bytes, len + 1);
        t->bytes_cap = len + 1;
    }
    if (t->cap < len + 1) {
        t->tok = realloc(t->tok, (len + 1) * sizeof(*t->tok));
        t->cap = len + 1;
    }
    assert_non_null(t->bytes);
    assert_non_null(t->tok);
    memcpy(t->bytes, words, len);
    t->bytes_len = len;
    for (size_t i = 0; i < len;) {
        while (i < len && words[i] == ' ') i++;
        size_t s = i;
        while (i < len && words[i] != ' ') i++;
        if (i > s) {
            t->tok[t->count].off = (uint32_t)s;
            t->tok[t->count].len = (uint32_t)(i - s);
            t->count++;
        }
    }
}

/* A random document over a Zipf-like vocabulary "w0".."w{V-1}". */
static void random_doc(char *out, size_t cap, uint32_t vocab, uint32_t max_len) {
    uint32_t n = 1 + rnd(max_len);
    size_t o = 0;
    for (uint32_t i = 0; i < n && o + 16 < cap; i++) {
        uint32_t w = rnd(vocab);
        w = (uint32_t)((uint64_t)w * rnd(vocab) / vocab); /* skew to small ids */
        o += (size_t)snprintf(out + o, cap - o, "%sw%u", i ? " " : "", w);
    }
    out[o] = 0;
}

/* Postings of a term in a segment index, decoded (test-side reader of the
 * format, through the internal block decoder). Returns the count. */
static uint32_t seg_postings(const text_segindex *s, const char *term, uint32_t *rows, uint32_t *tfs) {
    int64_t t = seg_term_find(s, term, (uint32_t)strlen(term));
    if (t < 0) return 0;
    const uint8_t *e = s->term_entries + (uint64_t)TEXT_TERM_ENTRY_BYTES * t;
    uint32_t df = load_u32(e), first = load_u32(e + 4);
    uint32_t n = 0;
    int64_t prev = -1;
    for (uint32_t b = 0; b * TEXT_BLOCK_SIZE < df; b++) {
        const uint8_t *be = s->blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * (first + b);
        uint32_t bn = seg_block_n(be);
        assert_true(seg_block_decode(s->postings + seg_block_off(be), bn, seg_block_doc_bits(be),
                                     seg_block_tf_bits(be), prev, seg_block_last(be), rows + n,
                                     tfs + n));
        prev = seg_block_last(be);
        n += bn;
    }
    assert_int_equal(n, df);
    return n;
}

static text_segindex *open_blob(const buf *b) {
    text_segindex *s = NULL;
    tdb_error err;
    int rc = text_segindex_open(b->data, b->len, "test", &s, &err);
    if (rc) fail_msg("open: %s", err.message);
    assert_int_equal(text_segindex_verify(s, &err), 0);
    return s;
}

static void memindex_add_remove_keeps_stats_and_invariants(void **state) {
    (void)state;
    text_memindex *m;
    assert_int_equal(text_memindex_new(&m, NULL), 0);
    text_tokens t;
    text_tokens_init(&t);
    make_tokens(&t, "red shoes red");
    assert_int_equal(text_memindex_add(m, 0, &t, NULL), 0);
    make_tokens(&t, "blue shoes");
    assert_int_equal(text_memindex_add(m, 1, &t, NULL), 0);
    make_tokens(&t, "");
    assert_int_equal(text_memindex_add(m, 2, &t, NULL), 0); /* empty field: counted, length 0 */
    assert_true(text_memindex_check(m));
    text_index_stats st;
    text_memindex_stats(m, &st);
    assert_int_equal(st.doc_count, 3);
    assert_int_equal(st.total_length, 5);
    assert_int_equal(st.term_count, 3);
    assert_int_equal(st.posting_count, 4);
    assert_int_equal(text_memindex_df(m, "shoes", 5), 2);
    assert_int_equal(text_memindex_df(m, "red", 3), 1);
    assert_int_equal(text_memindex_df(m, "green", 5), 0);
    assert_int_equal(text_memindex_length(m, 0), 3);

    /* adding a row twice is refused */
    tdb_error err;
    assert_int_equal(text_memindex_add(m, 1, &t, &err), TDB_EINVAL);
    assert_true(text_memindex_check(m));

    assert_int_equal(text_memindex_remove(m, 0), 1);
    assert_int_equal(text_memindex_remove(m, 0), 0);
    assert_int_equal(text_memindex_remove(m, 99), 0);
    assert_true(text_memindex_check(m));
    text_memindex_stats(m, &st);
    assert_int_equal(st.doc_count, 2);
    assert_int_equal(st.total_length, 2);
    assert_int_equal(st.term_count, 2);
    assert_int_equal(text_memindex_df(m, "red", 3), 0);
    assert_int_equal(text_memindex_df(m, "shoes", 5), 1);
    assert_false(text_memindex_has(m, 0));

    /* re-adding a removed row reuses its place (out of order) */
    make_tokens(&t, "green shoes");
    assert_int_equal(text_memindex_add(m, 0, &t, NULL), 0);
    assert_true(text_memindex_check(m));
    assert_int_equal(text_memindex_df(m, "shoes", 5), 2);
    assert_int_equal(text_memindex_df(m, "green", 5), 1);
    assert_true(text_memindex_memory_bytes(m) > 0);
    text_tokens_free(&t);
    text_memindex_free(m);
    text_memindex_free(NULL);
}

/* Random adds (in and out of row order) and removes, checked against a
 * plain model of the documents after every step. */
static void memindex_random_ops_match_model(void **state) {
    (void)state;
    rng_state = 42;
    enum { ROWS = 400, STEPS = 1500, VOCAB = 60 };
    static char docs[ROWS][600];
    static bool present[ROWS];
    memset(present, 0, sizeof(present));
    text_memindex *m;
    assert_int_equal(text_memindex_new(&m, NULL), 0);
    text_tokens t;
    text_tokens_init(&t);
    for (int step = 0; step < STEPS; step++) {
        uint32_t row = step < ROWS / 2 ? (uint32_t)step : rnd(ROWS);
        if (present[row] && rnd(2)) {
            assert_int_equal(text_memindex_remove(m, row), 1);
            present[row] = false;
        } else if (!present[row]) {
            random_doc(docs[row], sizeof(docs[row]), VOCAB, 40);
            make_tokens(&t, docs[row]);
            assert_int_equal(text_memindex_add(m, row, &t, NULL), 0);
            present[row] = true;
        }
        if (step % 50 == 0) assert_true(text_memindex_check(m));
    }
    assert_true(text_memindex_check(m));
    /* df of every word equals the model's */
    for (uint32_t w = 0; w < VOCAB; w++) {
        char word[16];
        snprintf(word, sizeof(word), "w%u", w);
        uint32_t df = 0;
        for (uint32_t r = 0; r < ROWS; r++) {
            if (!present[r]) continue;
            make_tokens(&t, docs[r]);
            for (size_t i = 0; i < t.count; i++)
                if (t.tok[i].len == strlen(word) && memcmp(t.bytes + t.tok[i].off, word, t.tok[i].len) == 0) {
                    df++;
                    break;
                }
        }
        assert_int_equal(text_memindex_df(m, word, (uint32_t)strlen(word)), df);
    }
    text_tokens_free(&t);
    text_memindex_free(m);
}

/* Build a memindex, serialize it, open it: every term's postings, every
 * row's length and the statistics survive; the blob is deterministic. */
static void serialized_blob_round_trips(void **state) {
    (void)state;
    rng_state = 7;
    enum { ROWS = 3000, VOCAB = 500 };
    text_memindex *m;
    assert_int_equal(text_memindex_new(&m, NULL), 0);
    text_tokens t;
    text_tokens_init(&t);
    char doc[4096];
    for (uint32_t r = 0; r < ROWS; r++) {
        if (r % 97 == 5) continue; /* rows without the field */
        random_doc(doc, sizeof(doc), VOCAB, 80);
        if (r == 17) strcat(doc, " hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot"
                                 " hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot"
                                 " hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot"
                                 " hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot hot");
        make_tokens(&t, doc);
        assert_int_equal(text_memindex_add(m, r, &t, NULL), 0);
    }
    buf b = BUF_INIT, b2 = BUF_INIT;
    assert_int_equal(text_memindex_serialize(m, NULL, 0, ROWS, &b, NULL), 0);
    assert_int_equal(text_memindex_serialize(m, NULL, 0, ROWS, &b2, NULL), 0);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    assert_int_equal(b.len % 8, 0);
    text_segindex *s = open_blob(&b);
    text_index_stats ms, ss;
    text_memindex_stats(m, &ms);
    text_segindex_stats(s, &ss);
    assert_int_equal(ms.doc_count, ss.doc_count);
    assert_int_equal(ms.total_length, ss.total_length);
    assert_int_equal(ms.term_count, ss.term_count);
    assert_int_equal(ms.posting_count, ss.posting_count);
    assert_int_equal(text_segindex_row_count(s), ROWS);
    for (uint32_t r = 0; r < ROWS; r++) assert_int_equal(text_segindex_length(s, r), text_memindex_length(m, r));
    static uint32_t rows[ROWS], tfs[ROWS];
    for (uint32_t w = 0; w <= VOCAB; w++) {
        char word[16];
        if (w == VOCAB) snprintf(word, sizeof(word), "hot");
        else snprintf(word, sizeof(word), "w%u", w);
        uint32_t len = (uint32_t)strlen(word);
        uint32_t n = seg_postings(s, word, rows, tfs);
        assert_int_equal(n, text_memindex_df(m, word, len));
        assert_int_equal(n, text_segindex_df(s, word, len));
        int64_t id = mem_term_find(m, word, len);
        if (n == 0) continue;
        assert_true(id >= 0);
        const mem_term *mt = &m->terms[id];
        uint32_t j = 0;
        for (uint32_t i = 0; i < mt->n; i++) {
            if (!mt->tfs[i]) continue;
            assert_int_equal(rows[j], mt->rows[i]);
            assert_int_equal(tfs[j], mt->tfs[i]);
            j++;
        }
        assert_int_equal(j, n);
    }
    assert_int_equal(text_segindex_df(s, "nope", 4), 0);
    assert_int_equal(text_segindex_df(s, "w", 1), 0);
    text_segindex_free(s);
    buf_free(&b);
    buf_free(&b2);
    text_tokens_free(&t);
    text_memindex_free(m);
}

/* A flush's row map: permuted, with dropped rows; postings come out sorted
 * by the new rows. */
static void serialize_applies_row_map(void **state) {
    (void)state;
    rng_state = 99;
    enum { ROWS = 1000 };
    text_memindex *m;
    assert_int_equal(text_memindex_new(&m, NULL), 0);
    text_tokens t;
    text_tokens_init(&t);
    static char docs[ROWS][512];
    for (uint32_t r = 0; r < ROWS; r++) {
        random_doc(docs[r], sizeof(docs[r]), 100, 30);
        make_tokens(&t, docs[r]);
        assert_int_equal(text_memindex_add(m, r, &t, NULL), 0);
    }
    assert_int_equal(text_memindex_remove(m, 3), 1);
    /* map: reverse order, every 10th row dropped */
    static uint32_t map[ROWS];
    uint32_t kept = 0;
    for (uint32_t r = 0; r < ROWS; r++) kept += r % 10 != 0;
    uint32_t next = kept;
    for (uint32_t r = 0; r < ROWS; r++) map[r] = r % 10 == 0 ? TEXT_ROW_NONE : --next;
    buf b = BUF_INIT;
    assert_int_equal(text_memindex_serialize(m, map, ROWS, kept, &b, NULL), 0);
    text_segindex *s = open_blob(&b);
    text_index_stats ss;
    text_segindex_stats(s, &ss);
    assert_int_equal(ss.doc_count, kept - 1); /* row 3 was removed */
    for (uint32_t r = 0; r < ROWS; r++) {
        if (map[r] == TEXT_ROW_NONE) continue;
        assert_int_equal(text_segindex_length(s, map[r]), r == 3 ? 0 : text_memindex_length(m, r));
    }
    static uint32_t rows[ROWS], tfs[ROWS];
    uint32_t n = seg_postings(s, "w0", rows, tfs);
    uint32_t want = 0;
    for (uint32_t r = 0; r < ROWS; r++) {
        if (map[r] == TEXT_ROW_NONE || r == 3) continue;
        make_tokens(&t, docs[r]);
        for (size_t i = 0; i < t.count; i++)
            if (t.tok[i].len == 2 && memcmp(t.bytes + t.tok[i].off, "w0", 2) == 0) {
                want++;
                break;
            }
    }
    assert_int_equal(n, want);
    for (uint32_t i = 1; i < n; i++) assert_true(rows[i] > rows[i - 1]);
    text_segindex_free(s);
    buf_reset(&b);

    /* bad maps */
    tdb_error err;
    assert_int_equal(text_memindex_serialize(m, map, ROWS, kept - 1, &b, &err), TDB_EINVAL);
    map[1] = map[2];
    buf_reset(&b);
    assert_int_equal(text_memindex_serialize(m, map, ROWS, kept, &b, &err), TDB_EINVAL);
    buf_free(&b);
    text_tokens_free(&t);
    text_memindex_free(m);
}

static void empty_index_round_trips(void **state) {
    (void)state;
    text_memindex *m;
    assert_int_equal(text_memindex_new(&m, NULL), 0);
    buf b = BUF_INIT;
    assert_int_equal(text_memindex_serialize(m, NULL, 0, 0, &b, NULL), 0);
    assert_int_equal(b.len, TEXT_SEG_HEADER_BYTES + 8);
    text_segindex *s = open_blob(&b);
    text_index_stats st;
    text_segindex_stats(s, &st);
    assert_int_equal(st.doc_count, 0);
    assert_int_equal(text_segindex_df(s, "a", 1), 0);
    text_segindex_free(s);
    buf_free(&b);
    text_memindex_free(m);
}

static void build_blob(buf *b, uint32_t rows_n, uint32_t vocab) {
    text_memindex *m;
    assert_int_equal(text_memindex_new(&m, NULL), 0);
    text_tokens t;
    text_tokens_init(&t);
    char doc[2048];
    for (uint32_t r = 0; r < rows_n; r++) {
        random_doc(doc, sizeof(doc), vocab, 40);
        make_tokens(&t, doc);
        assert_int_equal(text_memindex_add(m, r, &t, NULL), 0);
    }
    assert_int_equal(text_memindex_serialize(m, NULL, 0, rows_n, b, NULL), 0);
    text_tokens_free(&t);
    text_memindex_free(m);
}

/* Runs every reader entry point on a (possibly damaged) blob copy; returns
 * the first error code (0 when the blob passed everything). Must never
 * crash or read outside the copy (ASan checks that). */
static int exercise(const uint8_t *data, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    text_segindex *s = NULL;
    int rc = text_segindex_open(copy, len, "damaged", &s, NULL);
    if (rc == 0) {
        rc = text_segindex_verify(s, NULL);
        text_index_stats st;
        text_segindex_stats(s, &st);
        text_field_source f = {NULL, s, 1.0, st.doc_count + 1, 10.0};
        text_query_term q[3] = {{0, "w0", 2, 5}, {0, "w1", 2, 5}, {0, "w7", 2, 5}};
        text_search_opts o = {10, 0.0, NULL, 0, NULL, NULL};
        text_hit hits[10];
        uint32_t n;
        int src = text_search(&f, 1, q, 3, &o, hits, &n, NULL, NULL);
        assert_true(src == 0 || src == TDB_ECORRUPT);
        int erc = text_search_exhaustive(&f, 1, q, 3, &o, hits, &n, NULL);
        assert_true(erc == 0 || erc == TDB_ECORRUPT);
        for (uint32_t i = 0; i < n; i++) assert_true(hits[i].row < text_segindex_row_count(s));
        if (!rc) rc = src ? src : erc;
        text_segindex_free(s);
    }
    free(copy);
    return rc;
}

static void truncated_blobs_are_corrupt(void **state) {
    (void)state;
    rng_state = 3;
    buf b = BUF_INIT;
    build_blob(&b, 300, 40);
    assert_int_equal(exercise((const uint8_t *)b.data, b.len), 0);
    for (size_t len = 0; len < b.len; len += 1 + len / 64)
        assert_int_equal(exercise((const uint8_t *)b.data, len), TDB_ECORRUPT);
    buf_free(&b);
}

static void damaged_blobs_never_crash(void **state) {
    (void)state;
    rng_state = 5;
    buf b = BUF_INIT;
    build_blob(&b, 300, 40);
    uint8_t *d = (uint8_t *)b.data;
    size_t corrupt = 0, trials = 0;
    /* every byte of the header and tables, random bytes elsewhere */
    for (size_t i = 0; i < b.len; i += (i < 4096 ? 1 : 1 + rnd(64))) {
        for (int bit = 0; bit < 8; bit += 3) {
            d[i] ^= (uint8_t)(1u << bit);
            int rc = exercise(d, b.len);
            d[i] ^= (uint8_t)(1u << bit);
            assert_true(rc == 0 || rc == TDB_ECORRUPT);
            corrupt += rc == TDB_ECORRUPT;
            trials++;
        }
    }
    /* most damage is caught (flips in impacts or field lengths of rows
     * outside the queried terms may pass; a section CRC catches those) */
    assert_true(corrupt > trials / 3);
    buf_free(&b);
}

static void specific_damage_is_reported(void **state) {
    (void)state;
    rng_state = 11;
    buf b = BUF_INIT;
    build_blob(&b, 500, 50);
    uint8_t *d = (uint8_t *)b.data;
    tdb_error err;
    text_segindex *s = NULL;
    /* magic */
    d[0] ^= 1;
    assert_int_equal(text_segindex_open(d, b.len, "seg-1/text", &s, &err), TDB_ECORRUPT);
    assert_non_null(strstr(err.message, "seg-1/text"));
    assert_non_null(strstr(err.message, "magic"));
    d[0] ^= 1;
    /* version from the future */
    d[4] = 2;
    assert_int_equal(text_segindex_open(d, b.len, "x", &s, &err), TDB_ECORRUPT);
    assert_non_null(strstr(err.message, "version 2"));
    d[4] = 1;
    /* longer blob than described */
    assert_int_equal(text_segindex_open(d, b.len - 8, "x", &s, &err), TDB_ECORRUPT);
    /* huge term count */
    uint32_t saved = load_u32(d + 20);
    store_u32(d + 20, 0xFFFFFFF0u);
    assert_int_equal(text_segindex_open(d, b.len, "x", &s, &err), TDB_ECORRUPT);
    store_u32(d + 20, saved);
    /* a posting block whose rows no longer end at the table's last row:
     * open accepts it (tables are fine), decoding reports it */
    assert_int_equal(text_segindex_open(d, b.len, "x", &s, &err), 0);
    int64_t ti = seg_term_find(s, "w0", 2);
    assert_true(ti >= 0);
    uint32_t first = load_u32(s->term_entries + 8 * ti + 4);
    const uint8_t *be = s->blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * first;
    assert_true(seg_block_doc_bits(be) > 0);
    uint8_t *gap = (uint8_t *)s->postings + seg_block_off(be);
    *gap ^= 1;
    assert_int_equal(text_segindex_verify(s, &err), TDB_ECORRUPT);
    text_field_source f = {NULL, s, 1.0, 500, 20.0};
    text_query_term q = {0, "w0", 2, 100};
    text_search_opts o = {5, 0.0, NULL, 0, NULL, NULL};
    text_hit hits[5];
    uint32_t n;
    assert_int_equal(text_search(&f, 1, &q, 1, &o, hits, &n, NULL, &err), TDB_ECORRUPT);
    assert_int_equal(err.code, TDB_ECORRUPT);
    assert_int_equal(text_search_exhaustive(&f, 1, &q, 1, &o, hits, &n, &err), TDB_ECORRUPT);
    *gap ^= 1;
    assert_int_equal(text_segindex_verify(s, &err), 0);
    text_segindex_free(s);
    buf_free(&b);
}

int main(void) {
    /* Corruption is logged at error level by design; thousands of damaged
     * blobs would flood the test output. */
    log_set_level((log_level)-1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memindex_add_remove_keeps_stats_and_invariants),
        cmocka_unit_test(memindex_random_ops_match_model),
        cmocka_unit_test(serialized_blob_round_trips),
        cmocka_unit_test(serialize_applies_row_map),
        cmocka_unit_test(empty_index_round_trips),
        cmocka_unit_test(truncated_blobs_are_corrupt),
        cmocka_unit_test(damaged_blobs_never_crash),
        cmocka_unit_test(specific_damage_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
