/*
 * fuzz_filter.c: libFuzzer target for filter/filter.c and
 * filter/filter_bitmap.c (filter_compile_text, matching, bitmaps,
 * selectivity).
 *
 * Input: FILTER [ '\0' ATTRS ]... : the bytes before the first NUL are the
 * filter's JSON text (a raw NUL can never be part of a valid JSON text);
 * each later NUL-separated piece is the attributes JSON of one extra
 * document, matched beside a fixed set of documents of every value type.
 *
 * Properties checked for a filter that compiles:
 *   - filter_match_text on attribute text agrees with filter_match on the
 *     same attributes parsed (for text that parses as an object);
 *   - {"$not": F} matches exactly the documents F does not, and
 *     {"$and": [F]} and {"$or": [F]} exactly those F does (when those
 *     wrappers compile: they are one level deeper);
 *   - filter_bitmap_build's bitmap holds exactly the matching rows, and
 *     the exact selectivity estimate counts the same rows.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/roaring.h>

#include "filter/filter.h"
#include "fuzz_common.h"
#include "util/buf.h"
#include "util/json.h"

#define MAX_EXTRA_DOCS 8

static const char *const fixed_attrs[] = {
    "{\"year\":2024,\"tags\":[\"sale\",\"new\"],\"title\":\"Hello\",\"price\":9.5,"
    "\"flag\":true,\"n\":null,\"nested\":{\"a\":1,\"b\":[1,2]}}",
    "{\"year\":2019,\"tags\":[],\"title\":\"h\\u00e9llo\",\"price\":-0.0,\"flag\":false}",
    "{\"year\":\"2024\",\"tags\":\"sale\",\"nums\":[0,5,[1,2]],\"v\":[]}",
    "{\"big\":9007199254740993,\"f\":9007199254740992.0,\"neg\":-9223372036854775808,"
    "\"huge\":1e308,\"s\":\"\\u0000x\"}",
    "{\"id\":\"not-the-id\",\"meta.k\":1,\"dup\":1,\"dup\":2}",
    "{}",
    NULL, /* no attributes */
};
#define N_FIXED (sizeof fixed_attrs / sizeof *fixed_attrs)

typedef struct doc {
    char id[16];
    const char *attrs;  /* NULL: none */
    uint32_t attrs_len;
    json_doc *parsed;   /* NULL when absent or not JSON */
    bool is_object;     /* parsed to an object, or absent */
} doc;

typedef struct docs {
    doc d[N_FIXED + MAX_EXTRA_DOCS];
    size_t n;
} docs;

static int row_get(void *ctx, uint32_t row, filter_row *out, tdb_error *err) {
    (void)err;
    docs *ds = ctx;
    FUZZ_CHECK(row < ds->n, "row %u of %zu", row, ds->n);
    const doc *d = &ds->d[row];
    memset(out, 0, sizeof *out);
    out->id = d->id;
    out->id_len = (uint32_t)strlen(d->id);
    /* Odd rows hand over text, even rows parsed values: both paths run. */
    if (row % 2 == 1 || !d->is_object || d->parsed == NULL) {
        out->attrs_json = d->attrs;
        out->attrs_len = d->attrs_len;
    } else {
        out->attrs = json_root(d->parsed);
    }
    return 0;
}

static bool match_doc(const filter_expr *e, const doc *d) {
    return filter_match_text(e, d->id, (uint32_t)strlen(d->id), d->attrs, d->attrs_len);
}

/* Compiles PREFIX filter SUFFIX; NULL when it does not compile. */
static filter_expr *compile_wrapped(const char *prefix, const char *f, size_t len,
                                    const char *suffix) {
    buf b = BUF_INIT;
    buf_puts(&b, prefix);
    buf_append(&b, f, len);
    buf_puts(&b, suffix);
    filter_expr *e = NULL;
    tdb_error err;
    if (buf_failed(&b) || filter_compile_text(b.data, b.len, &e, &err) != 0) e = NULL;
    buf_free(&b);
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t flen = nul ? (size_t)(nul - text) : size;

    filter_expr *e = NULL;
    tdb_error err;
    int rc = filter_compile_text(text, flen, &e, &err);
    if (rc != 0) {
        FUZZ_CHECK(e == NULL, "filter returned on failure");
        FUZZ_CHECK(rc == TDB_EINVAL || rc == TDB_ENOMEM, "unexpected code %d", rc);
        FUZZ_CHECK(memchr(err.message, '\0', sizeof err.message) != NULL, "message unterminated");
        return 0;
    }
    (void)filter_needs_attrs(e);

    docs ds;
    memset(&ds, 0, sizeof ds);
    for (size_t i = 0; i < N_FIXED; i++) {
        doc *d = &ds.d[ds.n++];
        d->attrs = fixed_attrs[i];
        d->attrs_len = d->attrs ? (uint32_t)strlen(d->attrs) : 0;
    }
    const char *p = nul ? nul + 1 : NULL, *end = text + size;
    while (p && p <= end && ds.n < N_FIXED + MAX_EXTRA_DOCS) {
        const char *q = memchr(p, '\0', (size_t)(end - p));
        doc *d = &ds.d[ds.n++];
        d->attrs = p;
        d->attrs_len = (uint32_t)((q ? q : end) - p);
        if (d->attrs_len == 0) d->attrs = NULL;
        p = q ? q + 1 : NULL;
    }
    for (size_t i = 0; i < ds.n; i++) {
        doc *d = &ds.d[i];
        /* Ids that the fixed filters of the seed corpus name. */
        snprintf(d->id, sizeof d->id, i % 3 == 0 ? "a%zu" : "%zu", i);
        json_error jerr;
        d->is_object = d->attrs == NULL;
        if (d->attrs && json_parse(d->attrs, d->attrs_len, &d->parsed, &jerr) == 0)
            d->is_object = json_root(d->parsed)->type == JSON_OBJECT;
    }

    filter_expr *not_e = compile_wrapped("{\"$not\":", text, flen, "}");
    filter_expr *and_e = compile_wrapped("{\"$and\":[", text, flen, "]}");
    filter_expr *or_e = compile_wrapped("{\"$or\":[", text, flen, "]}");

    bool matched[N_FIXED + MAX_EXTRA_DOCS];
    uint64_t match_count = 0;
    for (size_t i = 0; i < ds.n; i++) {
        const doc *d = &ds.d[i];
        bool m = match_doc(e, d);
        matched[i] = m;
        match_count += m;
        if (!d->is_object) continue; /* text that is not an object: "matches nothing" */
        const json_value *attrs = d->parsed ? json_root(d->parsed) : NULL;
        bool mp = filter_match(e, d->id, (uint32_t)strlen(d->id), attrs);
        FUZZ_CHECK(m == mp, "doc %zu: text match %d, parsed match %d", i, m, mp);
        if (not_e) FUZZ_CHECK(match_doc(not_e, d) == !m, "doc %zu: $not does not negate", i);
        if (and_e) FUZZ_CHECK(match_doc(and_e, d) == m, "doc %zu: $and of one differs", i);
        if (or_e) FUZZ_CHECK(match_doc(or_e, d) == m, "doc %zu: $or of one differs", i);
    }

    filter_rows rows = {.row_count = (uint32_t)ds.n, .candidates = NULL, .get = row_get, .ctx = &ds};
    roaring_bitmap_t *bm = NULL;
    rc = filter_bitmap_build(e, &rows, &bm, &err);
    FUZZ_CHECK(rc == 0 && bm != NULL, "bitmap build failed: %d", rc);
    for (size_t i = 0; i < ds.n; i++) {
        FUZZ_CHECK(roaring_bitmap_contains(bm, (uint32_t)i) == matched[i], "row %zu bitmap", i);
    }
    filter_estimate est;
    rc = filter_selectivity_estimate(e, &rows, 0, 42, &est, &err);
    FUZZ_CHECK(rc == 0, "estimate failed: %d", rc);
    FUZZ_CHECK(est.exact && est.evaluated == ds.n, "estimate not exact over %zu rows", ds.n);
    FUZZ_CHECK(est.matched == roaring_bitmap_get_cardinality(bm), "estimate %llu vs bitmap %llu",
               (unsigned long long)est.matched,
               (unsigned long long)roaring_bitmap_get_cardinality(bm));
    FUZZ_CHECK(est.matched == match_count, "estimate %llu vs matches %llu",
               (unsigned long long)est.matched, (unsigned long long)match_count);
    filter_estimate fb;
    filter_selectivity_from_bitmap(bm, ds.n, &fb);
    roaring_bitmap_free(bm);

    /* Only the odd rows (every row once more, as candidates). */
    roaring_bitmap_t *odd = roaring_bitmap_create();
    for (uint32_t i = 1; i < ds.n; i += 2) roaring_bitmap_add(odd, i);
    rows.candidates = odd;
    rc = filter_bitmap_build(e, &rows, &bm, &err);
    FUZZ_CHECK(rc == 0, "candidate bitmap build failed: %d", rc);
    for (uint32_t i = 0; i < ds.n; i++)
        FUZZ_CHECK(roaring_bitmap_contains(bm, i) == (i % 2 == 1 && matched[i]), "row %u cand", i);
    roaring_bitmap_free(bm);
    rc = filter_selectivity_estimate(e, &rows, 2, 7, &est, &err); /* sampled */
    FUZZ_CHECK(rc == 0 && est.selectivity >= 0 && est.selectivity <= 1 && est.upper95 <= 1.0000001,
               "sampled estimate");
    roaring_bitmap_free(odd);

    filter_free(not_e);
    filter_free(and_e);
    filter_free(or_e);
    for (size_t i = 0; i < ds.n; i++) json_doc_free(ds.d[i].parsed);
    filter_free(e);
    return 0;
}
