/*
 * test_attrcol.c: typed attribute columns in segment files
 * (storage/attrcol.h) give exactly the answers of the JSON evaluation:
 * the filter truth table (tests/filter/filter_truth.h) run on segments
 * both ways, declared-style typed attributes, a randomized differential
 * test of random documents against random filters, the query callback
 * through a collection (segments, memtable, superseded rows), segments
 * without columns (older files), and the reader's checks on damaged
 * column sections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filter/filter.h"
#include "storage/attrcol.h"
#include "storage/segment.h"
#include "storage/storage.h"
#include "util/buf.h"
#include "util/crc32c.h"
#include "util/fileio.h"
#include "util/json.h"

/* Single quotes to double quotes, into a malloc'd string. */
static char *q(const char *s) {
    char *out = strdup(s);
    assert_non_null(out);
    for (char *p = out; *p; p++)
        if (*p == '\'') *p = '"';
    return out;
}

static filter_expr *compile_ok(const char *filter_sq) {
    char *text = q(filter_sq);
    filter_expr *e = NULL;
    tdb_error err = {0};
    int rc = filter_compile_text(text, strlen(text), &e, &err);
    if (rc != 0) fail_msg("filter %s did not compile: %s", text, err.message);
    free(text);
    return e;
}

#include "../filter/filter_truth.h"

static char *tmpdir(void) {
    const char *base = getenv("TDB_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    assert_int_equal(fio_mkdir_p(base), 0);
    size_t n = strlen(base) + 32;
    char *t = malloc(n);
    snprintf(t, n, "%s/attrcol-XXXXXX", base);
    assert_non_null(mkdtemp(t));
    return t;
}

static void rm_rf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- segments from documents ------------------------------------------------ */

typedef struct tdoc {
    char id[32];
    char *attrs; /* JSON text (owned), or NULL */
} tdoc;

static int tdoc_cmp(const void *a, const void *b) {
    const tdoc *x = a, *y = b;
    return seg_id_cmp(x->id, (uint32_t)strlen(x->id), y->id, (uint32_t)strlen(y->id));
}

static int seg_counter;

/* Writes docs (sorted here) as a segment in dir and opens it. */
static segment *write_open(const char *dir, tdoc *docs, size_t n) {
    qsort(docs, n, sizeof *docs, tdoc_cmp);
    seg_row *rows = calloc(n ? n : 1, sizeof *rows);
    for (size_t i = 0; i < n; i++)
        rows[i] = (seg_row){docs[i].id, (uint32_t)strlen(docs[i].id), i + 1, NULL, docs[i].attrs,
                            docs[i].attrs ? (uint32_t)strlen(docs[i].attrs) : 0};
    char path[600];
    snprintf(path, sizeof path, "%s/%06d.seg", dir, ++seg_counter);
    tdb_error err;
    if (seg_write(path, 0, TDB_METRIC_COSINE, rows, n, NULL, 0, &err) != 0)
        fail_msg("seg_write: %s", err.message);
    free(rows);
    segment *s = NULL;
    if (seg_open(path, 0, &s, &err) != 0) fail_msg("seg_open: %s", err.message);
    unlink(path); /* the mapping stays */
    return s;
}

typedef struct tally {
    uint64_t rows;         /* rows checked */
    uint64_t column_rows;  /* rows the columns decided */
    uint64_t columns;      /* columns seen in the segments */
    uint64_t kinds[3];     /* columns per atom kind */
} tally;

/* Every row of s matched three ways (JSON; filter_columns_eval; the query
 * callback through seg_locate), which must agree. Matching ids are appended
 * to out (space-separated). */
static void check_segment(segment *s, const filter_expr *e, buf *out, tally *t, const char *what) {
    filter_columns cols;
    roaring_bitmap_t *yes = NULL, *und = NULL;
    bool have = attrcol_segment_columns(s, &cols);
    if (have) {
        tdb_error err;
        assert_int_equal(filter_columns_eval(e, &cols, &yes, &und, &err), 0);
    }
    attrcol_filter f;
    attrcol_filter_init(&f, e, false);
    f.lazy = false; /* columns from the first row on */
    uint64_t decided = 0;
    for (uint64_t r = 0; r < seg_rows(s); r++) {
        uint32_t id_len, alen;
        const char *id = seg_id(s, r, &id_len);
        const char *attrs = seg_attrs(s, r, &alen);
        bool json = filter_match_text(e, id, id_len, attrs, alen);
        bool cb = attrcol_filter_cb(&f, id, id_len, attrs, alen);
        if (cb != json)
            fail_msg("%s: row %.*s attrs %.*s: callback says %d, JSON %d", what, (int)id_len, id,
                     (int)alen, attrs, cb, json);
        if (have) {
            bool y = roaring_bitmap_contains(yes, (uint32_t)r);
            bool u = roaring_bitmap_contains(und, (uint32_t)r);
            if (y && u) fail_msg("%s: row %.*s both matched and undecided", what, (int)id_len, id);
            if (!u && y != json)
                fail_msg("%s: row %.*s attrs %.*s: columns say %d, JSON %d", what, (int)id_len, id,
                         (int)alen, attrs, y, json);
            if (!u) {
                t->column_rows++;
                decided++;
            }
        }
        t->rows++;
        if (json && out != NULL) {
            if (out->len) buf_putc(out, ' ');
            buf_append(out, id, id_len);
        }
    }
    if (have) {
        t->columns += attrcol_count(seg_attrcols(s));
        for (uint32_t i = 0; i < attrcol_count(seg_attrcols(s)); i++) {
            uint32_t len;
            filter_column c;
            attrcol_name(seg_attrcols(s), i, &len, &c);
            t->kinds[c.kind]++;
        }
        roaring_bitmap_free(yes);
        roaring_bitmap_free(und);
        /* The callback answered exactly the decided rows from the columns
         * (an id-only filter never needs them). */
        if (filter_needs_attrs(e)) assert_int_equal(f.column_rows, decided);
    }
    attrcol_filter_done(&f);
}

/* ---- the truth table on segments -------------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Space-separated words sorted, so answers from several segments compare. */
static void sort_words(char *s) {
    char *words[64];
    size_t n = 0;
    for (char *tok = strtok(s, " "); tok && n < 64; tok = strtok(NULL, " ")) words[n++] = strdup(tok);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(words[j - 1], words[j]) > 0; j--) {
            char *t = words[j];
            words[j] = words[j - 1];
            words[j - 1] = t;
        }
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(s, " ");
        strcat(s, words[i]);
        free(words[i]);
    }
}

/* The documents split into segments by part[i]; every truth-table filter
 * checked on them, and the union of matches compared with the table. */
static void truth_on_partition(const char *dir, const int *part, int nparts, tally *t) {
    segment *segs[NDOCS];
    for (int p = 0; p < nparts; p++) {
        tdoc docs[NDOCS];
        size_t n = 0;
        for (size_t i = 0; i < NDOCS; i++) {
            if (part[i] != p) continue;
            snprintf(docs[n].id, sizeof docs[n].id, "%s", DOCS[i].id);
            docs[n].attrs = q(DOCS[i].attrs);
            n++;
        }
        segs[p] = write_open(dir, docs, n);
        for (size_t i = 0; i < n; i++) free(docs[i].attrs);
    }
    for (size_t k = 0; k < sizeof TRUTH / sizeof TRUTH[0]; k++) {
        filter_expr *e = compile_ok(TRUTH[k].filter);
        buf got = BUF_INIT;
        for (int p = 0; p < nparts; p++) check_segment(segs[p], e, &got, t, TRUTH[k].filter);
        char words[1024] = "";
        if (got.len) snprintf(words, sizeof words, "%s", got.data);
        sort_words(words);
        if (strcmp(words, TRUTH[k].want) != 0)
            fail_msg("filter %s on segments\n  got:  [%s]\n  want: [%s]", TRUTH[k].filter, words,
                     TRUTH[k].want);
        buf_free(&got);
        filter_free(e);
    }
    for (int p = 0; p < nparts; p++) seg_close(segs[p]);
}

static void attrcol_truth_table_on_segments_both_ways(void **state) {
    (void)state;
    char *dir = tmpdir();
    tally t = {0};
    int part[NDOCS];
    /* One segment; one per document; by type, so that columns form with
     * null and missing rows. */
    memset(part, 0, sizeof part);
    truth_on_partition(dir, part, 1, &t);
    for (size_t i = 0; i < NDOCS; i++) part[i] = (int)i;
    truth_on_partition(dir, part, (int)NDOCS, &t);
    static const char *const groups[] = {"float frac int zero none null", "s10 s9 str empty",
                                         "bool"};
    for (size_t i = 0; i < NDOCS; i++) {
        part[i] = 3; /* arr, obj */
        for (int g = 0; g < 3; g++) {
            char words[64];
            snprintf(words, sizeof words, " %s ", groups[g]);
            char needle[40];
            snprintf(needle, sizeof needle, " %s ", DOCS[i].id);
            if (strstr(words, needle)) part[i] = g;
        }
    }
    truth_on_partition(dir, part, 4, &t);
    /* Random splits into 2..4 segments. */
    uint64_t seed = 42;
    for (int round = 0; round < 40; round++) {
        int nparts = 2 + (int)(rng_next(&seed) % 3);
        for (size_t i = 0; i < NDOCS; i++) part[i] = (int)(rng_next(&seed) % (uint64_t)nparts);
        truth_on_partition(dir, part, nparts, &t);
    }
    /* The columns were there and decided most rows; each kind occurred. */
    assert_true(t.columns > 0);
    assert_true(t.kinds[FILTER_ATOM_NUM] > 0 && t.kinds[FILTER_ATOM_STR] > 0 &&
                t.kinds[FILTER_ATOM_BOOL] > 0);
    print_message("truth table: %llu row checks, %llu decided by columns, %llu columns\n",
                  (unsigned long long)t.rows, (unsigned long long)t.column_rows,
                  (unsigned long long)t.columns);
    assert_true(t.column_rows * 4 > t.rows);
    rm_rf(dir);
    free(dir);
}

/* ---- typed attributes as a schema declares them ------------------------------- */

/* Values of every declared type, with null, missing and empty arrays. */
static const char *const TYPED[] = {
    "{'n': 5, 'f': 1.5, 's': 'red', 'b': true, 'tags': ['a', 'b'], 'nums': [1, 2, 3]}",
    "{'n': -3, 'f': 2, 's': 'green', 'b': false, 'tags': [], 'nums': []}",
    "{'n': null, 'f': null, 's': null, 'b': null, 'tags': null, 'nums': null}",
    "{}",
    "{'n': 9007199254740993, 'f': 9007199254740992.0, 's': '', 'tags': ['b', 'b'], 'nums': [5, 5]}",
    "{'n': 0, 'f': -0.0, 's': 'r', 'b': true, 'tags': ['red'], 'nums': [0]}",
    "{'n': 5, 'f': 5, 's': 'redder', 'tags': ['a'], 'nums': [-1, 7]}",
    "{'n': 7, 'f': 1e300, 's': '\\u00e9', 'b': false, 'nums': [9007199254740993]}",
};

static const char *const TYPED_FILTERS[] = {
    "{'n': 5}", "{'n': 5.0}", "{'n': {'$ne': 5}}", "{'n': {'$gt': 0}}", "{'n': {'$lte': 0}}",
    "{'n': {'$in': [7, -3, null]}}", "{'n': {'$nin': [5]}}", "{'n': null}", "{'n': {'$exists': true}}",
    "{'n': {'$exists': false}}", "{'n': '5'}", "{'n': {'$gt': 9007199254740992.0}}",
    "{'f': 2}", "{'f': {'$gte': 1.5, '$lt': 5}}", "{'f': 0}", "{'f': {'$gt': 1e299}}",
    "{'s': 'red'}", "{'s': {'$prefix': 'red'}}", "{'s': {'$prefix': ''}}", "{'s': {'$gt': 'r'}}",
    "{'s': {'$lt': 'green'}}", "{'s': {'$in': ['', 'green', 5]}}", "{'s': {'$nin': ['red']}}",
    "{'s': {'$contains': 'red'}}", "{'s': ''}", "{'b': true}", "{'b': {'$ne': true}}",
    "{'b': false}", "{'b': {'$in': [false, null]}}", "{'b': {'$gt': false}}", "{'b': 1}",
    "{'tags': 'b'}", "{'tags': {'$contains': 'a'}}", "{'tags': []}", "{'tags': ['a', 'b']}",
    "{'tags': {'$in': [['red'], 'x']}}", "{'tags': {'$nin': ['a', 'red']}}", "{'tags': {'$gte': 'b'}}",
    "{'tags': {'$prefix': 're'}}", "{'tags': {'$exists': true}}", "{'tags': null}",
    "{'nums': 5}", "{'nums': {'$gt': 2, '$lt': 3}}", "{'nums': {'$contains': 9007199254740993}}",
    "{'nums': [5, 5]}", "{'nums': {'$in': [[], 0]}}", "{'nums': {'$lt': 0}}",
    "{'$or': [{'n': 5}, {'b': false}]}", "{'$and': [{'s': {'$prefix': 'r'}}, {'nums': {'$gt': 0}}]}",
    "{'$not': {'$or': [{'n': {'$gt': 0}}, {'tags': 'b'}]}}", "{'n': {'$not': {'$gte': 0}}}",
    "{'$and': [{'n': 5}, {'undeclared': {'$exists': false}}]}", "{'$or': [{'n': 5}, {'id': 't3'}]}",
    "{'id': {'$prefix': 't'}, 's': 'red'}", "{'id': {'$gte': 't2', '$lt': 't5'}}",
};

static void attrcol_typed_attributes_decided_by_columns(void **state) {
    (void)state;
    char *dir = tmpdir();
    enum { COPIES = 40 };
    const size_t n = COPIES * (sizeof TYPED / sizeof TYPED[0]);
    tdoc *docs = calloc(n, sizeof *docs);
    for (size_t i = 0; i < n; i++) {
        snprintf(docs[i].id, sizeof docs[i].id, "t%zu", i);
        docs[i].attrs = q(TYPED[i % (sizeof TYPED / sizeof TYPED[0])]);
    }
    segment *s = write_open(dir, docs, n);
    /* Every attribute got its column, of its type. */
    static const struct { const char *name; filter_atom_kind kind; } want[] = {
        {"n", FILTER_ATOM_NUM}, {"f", FILTER_ATOM_NUM}, {"s", FILTER_ATOM_STR},
        {"b", FILTER_ATOM_BOOL}, {"tags", FILTER_ATOM_STR}, {"nums", FILTER_ATOM_NUM},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        filter_column c;
        assert_true(attrcol_find(seg_attrcols(s), want[i].name, (uint32_t)strlen(want[i].name), &c));
        assert_int_equal(c.kind, want[i].kind);
    }
    for (size_t k = 0; k < sizeof TYPED_FILTERS / sizeof TYPED_FILTERS[0]; k++) {
        filter_expr *e = compile_ok(TYPED_FILTERS[k]);
        tally t = {0};
        check_segment(s, e, NULL, &t, TYPED_FILTERS[k]);
        /* Only whole-array operands leave rows to the JSON. */
        bool whole = strstr(TYPED_FILTERS[k], "[[") || strstr(TYPED_FILTERS[k], ": [") ||
                     strstr(TYPED_FILTERS[k], "'undeclared'");
        if (!whole && t.column_rows != t.rows)
            fail_msg("%s: columns decided %llu of %llu rows", TYPED_FILTERS[k],
                     (unsigned long long)t.column_rows, (unsigned long long)t.rows);
        filter_free(e);
    }
    seg_close(s);
    for (size_t i = 0; i < n; i++) free(docs[i].attrs);
    free(docs);
    rm_rf(dir);
    free(dir);
}

/* ---- randomized differential test --------------------------------------------- */

static const char *const NUMS[] = {"-3", "0", "1", "2", "5", "5.0", "-0.0", "0.5", "2.5", "-1.5",
                                   "9007199254740993", "9007199254740992.0", "1e300", "-1e999"};
static const char *const STRS[] = {"''", "'a'", "'ab'", "'abc'", "'b'", "'B'", "'\\u00e9'", "'a\\u0000'",
                                   "'5'", "'zz'"};

static void put_atom(buf *b, uint64_t *rng, int kind) {
    switch (kind) {
    case 0: buf_puts(b, NUMS[rng_next(rng) % (sizeof NUMS / sizeof NUMS[0])]); break;
    case 1: buf_puts(b, STRS[rng_next(rng) % (sizeof STRS / sizeof STRS[0])]); break;
    default: buf_puts(b, rng_next(rng) % 2 ? "true" : "false"); break;
    }
}

/* A value of `regime`: 0..2 one atom kind (with null and arrays), 3 mixed. */
static void put_value(buf *b, uint64_t *rng, int regime, int depth) {
    uint64_t r = rng_next(rng) % 10;
    int kind = regime < 3 ? regime : (int)(rng_next(rng) % 3);
    if (r == 0) {
        buf_puts(b, "null");
    } else if (r <= 2) {
        buf_putc(b, '[');
        int n = (int)(rng_next(rng) % 4);
        for (int i = 0; i < n; i++) {
            if (i) buf_putc(b, ',');
            if (regime == 3 && depth == 0 && rng_next(rng) % 4 == 0) put_value(b, rng, 3, 1);
            else put_atom(b, rng, regime < 3 ? kind : (int)(rng_next(rng) % 3));
        }
        buf_putc(b, ']');
    } else if (regime == 3 && r == 3 && depth == 0) {
        buf_puts(b, "{'k': ");
        put_atom(b, rng, kind);
        buf_putc(b, '}');
    } else {
        put_atom(b, rng, kind);
    }
}

static const char *const KEYS[] = {"a", "b", "c", "d", "e"};

/* An operand of any kind, sometimes an array or object. */
static void put_operand(buf *b, uint64_t *rng) {
    uint64_t r = rng_next(rng) % 12;
    if (r == 0) buf_puts(b, "null");
    else if (r == 1) put_value(b, rng, 3, 0);
    else put_atom(b, rng, (int)(rng_next(rng) % 3));
}

static void put_filter(buf *b, uint64_t *rng, int depth) {
    uint64_t r = rng_next(rng) % 10;
    if (depth < 3 && r < 3) {
        static const char *const comb[] = {"$and", "$or", "$not"};
        const char *c = comb[r];
        buf_printf(b, "{'%s': ", c);
        if (r == 2) {
            put_filter(b, rng, depth + 1);
        } else {
            buf_putc(b, '[');
            int n = (int)(rng_next(rng) % 4);
            for (int i = 0; i < n; i++) {
                if (i) buf_putc(b, ',');
                put_filter(b, rng, depth + 1);
            }
            buf_putc(b, ']');
        }
        buf_putc(b, '}');
        return;
    }
    uint64_t f = rng_next(rng) % 14;
    if (f >= 12) { /* the id */
        static const char *const idops[] = {"$eq", "$gt", "$gte", "$lt", "$lte", "$prefix", "$in", "$ne"};
        static const char *const ids[] = {"'r0001'", "'r005'", "'r01'", "'r'", "'s'", "''", "'r0100'"};
        const char *op = idops[rng_next(rng) % 8];
        buf_printf(b, "{'id': {'%s': ", op);
        if (!strcmp(op, "$in")) buf_printf(b, "[%s, %s]", ids[rng_next(rng) % 7], ids[rng_next(rng) % 7]);
        else buf_puts(b, ids[rng_next(rng) % 7]);
        buf_puts(b, "}}");
        return;
    }
    const char *key = f < 10 ? KEYS[f % 5] : "zz";
    static const char *const ops[] = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin",
                                      "$exists", "$contains", "$prefix", "$not", "plain"};
    const char *op = ops[rng_next(rng) % (sizeof ops / sizeof ops[0])];
    buf_printf(b, "{'%s': ", key);
    if (!strcmp(op, "plain")) {
        put_operand(b, rng);
    } else if (!strcmp(op, "$in") || !strcmp(op, "$nin")) {
        buf_printf(b, "{'%s': [", op);
        int n = (int)(rng_next(rng) % 4);
        for (int i = 0; i < n; i++) {
            if (i) buf_putc(b, ',');
            put_operand(b, rng);
        }
        buf_puts(b, "]}");
    } else if (!strcmp(op, "$exists")) {
        buf_printf(b, "{'$exists': %s}", rng_next(rng) % 2 ? "true" : "false");
    } else if (!strcmp(op, "$prefix")) {
        buf_puts(b, "{'$prefix': ");
        put_atom(b, rng, 1);
        buf_putc(b, '}');
    } else if (!strcmp(op, "$not")) {
        buf_puts(b, "{'$not': {'$gte': ");
        put_atom(b, rng, (int)(rng_next(rng) % 2));
        buf_puts(b, "}}");
    } else {
        buf_printf(b, "{'%s': ", op);
        put_operand(b, rng);
        buf_putc(b, '}');
    }
    buf_putc(b, '}');
}

static void attrcol_random_documents_and_filters_agree(void **state) {
    (void)state;
    char *dir = tmpdir();
    uint64_t rng = 20261122;
    tally t = {0};
    enum { SEGMENTS = 16, ROWS = 120, FILTERS = 120 };
    for (int sgi = 0; sgi < SEGMENTS; sgi++) {
        int regime[5];
        for (int k = 0; k < 5; k++) regime[k] = (int)(rng_next(&rng) % 5); /* 4: typed like 0 */
        tdoc docs[ROWS];
        for (int i = 0; i < ROWS; i++) {
            snprintf(docs[i].id, sizeof docs[i].id, "r%04d", i * 3 + (int)(rng_next(&rng) % 3));
            buf b = BUF_INIT;
            buf_putc(&b, '{');
            bool first = true;
            for (int k = 0; k < 5; k++) {
                if (rng_next(&rng) % 5 == 0) continue; /* missing */
                if (!first) buf_putc(&b, ',');
                first = false;
                buf_printf(&b, "'%s': ", KEYS[k]);
                put_value(&b, &rng, regime[k] == 4 ? 0 : regime[k], 0);
            }
            buf_putc(&b, '}');
            docs[i].attrs = q(b.data);
            buf_free(&b);
        }
        segment *s = write_open(dir, docs, ROWS);
        for (int k = 0; k < FILTERS; k++) {
            buf fb = BUF_INIT;
            put_filter(&fb, &rng, 0);
            filter_expr *e = compile_ok(fb.data);
            check_segment(s, e, NULL, &t, fb.data);
            filter_free(e);
            buf_free(&fb);
        }
        seg_close(s);
        for (int i = 0; i < ROWS; i++) free(docs[i].attrs);
    }
    assert_true(t.columns > 0);
    assert_true(t.column_rows * 2 > t.rows); /* the columns did most of the work */
    rm_rf(dir);
    free(dir);
}

/* ---- through a collection ----------------------------------------------------- */

typedef struct scan_out {
    char ids[4096];
} scan_out;

static void scan_ids(st_collection *c, st_filter_fn fn, void *ctx, scan_out *out) {
    st_record *recs = NULL;
    size_t n = 0;
    tdb_error err;
    if (st_scan(c, NULL, 0, 100000, false, fn, ctx, &recs, &n, &err) != 0)
        fail_msg("st_scan: %s", err.message);
    size_t len = 0;
    out->ids[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out->ids + len, sizeof out->ids - len, "%s%s", i ? " " : "", recs[i].id);
        assert_true(w > 0 && (size_t)w < sizeof out->ids - len);
        len += (size_t)w;
    }
    st_records_free(recs, n);
}

static void attrcol_query_callback_through_a_collection(void **state) {
    (void)state;
    char *dir = tmpdir();
    st_options opts;
    memset(&opts, 0, sizeof opts);
    opts.fsync = TDB_FSYNC_NONE;
    opts.memtable_max_docs = 1000000;
    opts.compaction_min_segments = 1000;
    st_collection *c = NULL;
    tdb_error err;
    if (st_open(dir, 2, TDB_METRIC_L2, &opts, &c, &err) != 0) fail_msg("st_open: %s", err.message);
    /* Three generations: two flushed segments (the second superseding part
     * of the first) and a memtable. */
    for (int gen = 0; gen < 3; gen++) {
        enum { N = 300 };
        st_doc docs[N];
        char ids[N][16], attrs[N][96];
        float vec[N][2];
        for (int i = 0; i < N; i++) {
            int k = gen == 0 ? i : gen == 1 ? i / 2 * 3 : i + 250;
            snprintf(ids[i], sizeof ids[i], "doc%05d", k);
            snprintf(attrs[i], sizeof attrs[i], "{\"n\": %d, \"s\": \"v%d\", \"g\": %d%s}",
                     (k * 7 + gen) % 50, k % 5, gen, k % 4 == 0 ? ", \"x\": [1]" : "");
            vec[i][0] = (float)k;
            vec[i][1] = (float)gen;
            docs[i] = (st_doc){ids[i], (uint32_t)strlen(ids[i]), vec[i], attrs[i],
                               (uint32_t)strlen(attrs[i])};
        }
        if (st_upsert(c, docs, N, &err) != 0) fail_msg("st_upsert: %s", err.message);
        if (gen < 2 && st_flush(c, &err) != 0) fail_msg("st_flush: %s", err.message);
    }
    static const char *const filters[] = {
        "{'n': {'$lt': 5}}", "{'s': 'v3', 'g': 1}", "{'$or': [{'n': 7}, {'x': {'$exists': true}}]}",
        "{'s': {'$in': ['v1', 'v2']}, 'n': {'$gte': 40}}", "{'$not': {'g': 0}}", "{'x': [1]}",
    };
    for (size_t k = 0; k < sizeof filters / sizeof filters[0]; k++) {
        filter_expr *e = compile_ok(filters[k]);
        scan_out by_json, by_cols;
        scan_ids(c, filter_match_cb, e, &by_json);
        attrcol_filter f;
        attrcol_filter_init(&f, e, false);
        scan_ids(c, attrcol_filter_cb, &f, &by_cols);
        assert_string_equal(by_cols.ids, by_json.ids);
        assert_true(f.column_rows > 0);
        /* A filtered vector search: the same hits either way. */
        float query[2] = {100.0f, 0.0f};
        st_hit *h1 = NULL, *h2 = NULL;
        size_t n1 = 0, n2 = 0;
        assert_int_equal(st_search(c, query, 20, filter_match_cb, e, false, &h1, &n1, &err), 0);
        assert_int_equal(st_search(c, query, 20, attrcol_filter_cb, &f, false, &h2, &n2, &err), 0);
        assert_int_equal(n1, n2);
        for (size_t i = 0; i < n1; i++) assert_string_equal(h1[i].rec.id, h2[i].rec.id);
        st_hits_free(h1, n1);
        st_hits_free(h2, n2);
        attrcol_filter_done(&f);
        /* Forced JSON: no row from the columns. */
        attrcol_filter_init(&f, e, true);
        scan_ids(c, attrcol_filter_cb, &f, &by_cols);
        assert_string_equal(by_cols.ids, by_json.ids);
        assert_int_equal(f.column_rows, 0);
        attrcol_filter_done(&f);
        filter_free(e);
    }
    st_close(c);
    rm_rf(dir);
    free(dir);
}

/* ---- files without columns, and what is left out --------------------------------- */

/* Rewrites the segment file at path without its ATTRCOLS section, as a
 * writer from before columns existed would have: the section's bytes stay
 * as an unlisted gap, the footer lists the other sections. */
static void strip_columns(const char *path) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)size + 64);
    assert_int_equal(fread(d, 1, (size_t)size, fp), (size_t)size);
    fclose(fp);
    uint64_t fo = load_u64(d + size - 16);
    uint32_t n = load_u32(d + fo);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = d + fo + 8 + 32 * i;
        if (load_u32(e) == 6) continue;
        memmove(d + fo + 8 + 32 * kept, e, 32);
        kept++;
    }
    assert_int_equal(kept, n - 1);
    store_u32(d + fo, kept);
    uint64_t body = 8 + 32 * (uint64_t)kept;
    store_u32(d + fo + body, crc32c(d + fo, body));
    store_u64(d + fo + body + 4, fo);
    memcpy(d + fo + body + 12, "TDB_END\n", 8);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(d, 1, fo + body + 20, fp), fo + body + 20);
    fclose(fp);
    free(d);
}

static void attrcol_segment_without_columns_uses_json(void **state) {
    (void)state;
    char *dir = tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/old.seg", dir);
    seg_row rows[3] = {
        {"a", 1, 1, NULL, "{\"n\":1}", 7}, {"b", 1, 2, NULL, "{\"n\":2}", 7}, {"c", 1, 3, NULL, NULL, 0}};
    tdb_error err;
    assert_int_equal(seg_write(path, 0, TDB_METRIC_COSINE, rows, 3, NULL, 0, &err), 0);
    strip_columns(path);
    segment *s = NULL;
    if (seg_open(path, 0, &s, &err) != 0) fail_msg("seg_open: %s", err.message);
    assert_null(seg_attrcols(s));
    uint64_t row;
    uint32_t len;
    assert_null(seg_locate(seg_id(s, 0, &len), &row));
    filter_expr *e = compile_ok("{'n': {'$gte': 2}}");
    tally t = {0};
    buf got = BUF_INIT;
    check_segment(s, e, &got, &t, "old file");
    assert_string_equal(got.data, "b");
    assert_int_equal(t.column_rows, 0);
    buf_free(&got);
    filter_free(e);
    seg_close(s);
    rm_rf(dir);
    free(dir);
}

static void attrcol_left_out_attributes(void **state) {
    (void)state;
    /* Objects, mixed types, a key twice, long text: no column; a plain
     * number attribute beside them still gets one. */
    char longtext[400];
    memset(longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    char a0[600], a1[600];
    snprintf(a0, sizeof a0, "{\"o\": {\"k\": 1}, \"m\": 1, \"d\": 1, \"d\": 2, \"t\": \"%s0\", \"n\": 1}",
             longtext);
    snprintf(a1, sizeof a1, "{\"o\": 2, \"m\": \"1\", \"d\": 3, \"t\": \"%s1\", \"n\": 2}", longtext);
    seg_row rows[2] = {{"a", 1, 1, NULL, a0, (uint32_t)strlen(a0)},
                       {"b", 1, 2, NULL, a1, (uint32_t)strlen(a1)}};
    void *sec = NULL;
    size_t len = 0;
    tdb_error err;
    assert_int_equal(attrcol_build(rows, 2, &sec, &len, &err), 0);
    attrcol *a = NULL;
    char why[160];
    assert_int_equal(attrcol_open(sec, len, 2, &a, why, sizeof why), 0);
    assert_int_equal(attrcol_count(a), 1);
    filter_column c;
    assert_true(attrcol_find(a, "n", 1, &c));
    assert_false(attrcol_find(a, "d", 1, &c));
    assert_false(attrcol_find(a, "t", 1, &c));
    attrcol_free(a);
    free(sec);
    /* No attributes at all: no section. */
    seg_row none[1] = {{"a", 1, 1, NULL, NULL, 0}};
    assert_int_equal(attrcol_build(none, 1, &sec, &len, &err), 0);
    assert_null(sec);
    assert_int_equal(len, 0);
}

static bool find_in(const void *ctx, const char *name, uint32_t len, filter_column *out) {
    return attrcol_find(ctx, name, len, out);
}

/* Every truncation and many single-byte changes of a valid section: the
 * reader accepts it or says why, never reads outside it (ASan), and what
 * it accepts is safe to evaluate. */
static void attrcol_damaged_sections_are_refused_or_safe(void **state) {
    (void)state;
    seg_row rows[4];
    filter_columns cols = {4, find_in, NULL, NULL};
    const char *attrs[4] = {"{\"n\": 1, \"s\": \"a\", \"b\": true, \"l\": [1, 2]}",
                            "{\"n\": 2.5, \"s\": \"bb\", \"l\": []}", "{\"n\": null, \"s\": null}",
                            "{\"b\": false, \"l\": [3]}"};
    const char *ids[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        rows[i] = (seg_row){ids[i], 1, (uint64_t)i, NULL, attrs[i], (uint32_t)strlen(attrs[i])};
    void *sec = NULL;
    size_t len = 0;
    tdb_error err;
    assert_int_equal(attrcol_build(rows, 4, &sec, &len, &err), 0);
    assert_non_null(sec);
    filter_expr *e = compile_ok("{'$or': [{'n': {'$gt': 1}}, {'s': {'$prefix': 'b'}}, {'b': true}, {'l': 3}]}");
    uint8_t *copy = malloc(len);
    char why[160];
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        memcpy(copy, sec, cut);
        attrcol *a = NULL;
        if (attrcol_open(copy, cut, 4, &a, why, sizeof why) == 0) attrcol_free(a);
        else refused++;
    }
    assert_true(refused > 0);
    uint64_t rng = 7;
    for (int round = 0; round < 4000; round++) {
        memcpy(copy, sec, len);
        size_t at = rng_next(&rng) % len;
        copy[at] ^= (uint8_t)(1u << (rng_next(&rng) % 8));
        attrcol *a = NULL;
        if (attrcol_open(copy, len, 4, &a, why, sizeof why) != 0) continue;
        cols.ctx = a;
        roaring_bitmap_t *yes = NULL, *und = NULL;
        assert_int_equal(filter_columns_eval(e, &cols, &yes, &und, &err), 0);
        roaring_bitmap_free(yes);
        roaring_bitmap_free(und);
        attrcol_free(a);
    }
    /* The wrong row count is refused. */
    attrcol *a = NULL;
    assert_int_equal(attrcol_open(sec, len, 5, &a, why, sizeof why), TDB_ECORRUPT);
    free(copy);
    free(sec);
    filter_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(attrcol_truth_table_on_segments_both_ways),
        cmocka_unit_test(attrcol_typed_attributes_decided_by_columns),
        cmocka_unit_test(attrcol_random_documents_and_filters_agree),
        cmocka_unit_test(attrcol_query_callback_through_a_collection),
        cmocka_unit_test(attrcol_segment_without_columns_uses_json),
        cmocka_unit_test(attrcol_left_out_attributes),
        cmocka_unit_test(attrcol_damaged_sections_are_refused_or_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
