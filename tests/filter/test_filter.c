/*
 * test_filter.c: the filter language of API.md: a truth table of every
 * operator and combinator over documents of mixed types (ints, floats,
 * strings, booleans, null, arrays of mixed types, a nested object, a
 * missing attribute) and the id; every compile error with its path;
 * bitmaps of matching rows and selectivity estimates.
 *
 * Filters and documents are written with single quotes for readability;
 * q() turns them into JSON (no test string needs an apostrophe).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter.h"
#include "util/buf.h"
#include "util/json.h"

/* ---- helpers ------------------------------------------------------------- */

/* Single quotes to double quotes, into a malloc'd string. */
static char *q(const char *s) {
    char *out = strdup(s);
    assert_non_null(out);
    for (char *p = out; *p; p++)
        if (*p == '\'') *p = '"';
    return out;
}

static json_doc *parse(const char *text) {
    json_doc *doc = NULL;
    json_error jerr;
    if (json_parse(text, strlen(text), &doc, &jerr) != 0)
        fail_msg("test JSON does not parse: %s (byte %zu: %s)", text, jerr.offset, jerr.message);
    return doc;
}

static filter_expr *compile_ok(const char *filter_sq) {
    char *text = q(filter_sq);
    filter_expr *e = NULL;
    tdb_error err = {0};
    int rc = filter_compile_text(text, strlen(text), &e, &err);
    if (rc != 0) fail_msg("filter %s did not compile: %s", text, err.message);
    free(text);
    assert_non_null(e);
    return e;
}

#include "filter_truth.h"

/* The ids of DOCS that match e, space-separated, via both match entry
 * points (parsed tree and text); they must agree. */
static void matched_ids(const filter_expr *e, char *out, size_t cap) {
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NDOCS; i++) {
        char *attrs = q(DOCS[i].attrs);
        json_doc *doc = parse(attrs);
        uint32_t id_len = (uint32_t)strlen(DOCS[i].id);
        bool by_tree = filter_match(e, DOCS[i].id, id_len, json_root(doc));
        bool by_text = filter_match_text(e, DOCS[i].id, id_len, attrs, (uint32_t)strlen(attrs));
        bool by_cb = filter_match_cb((void *)e, DOCS[i].id, id_len, attrs, (uint32_t)strlen(attrs));
        if (by_tree != by_text || by_tree != by_cb)
            fail_msg("tree/text/callback disagree on %s", DOCS[i].id);
        if (by_tree) {
            int n = snprintf(out + len, cap - len, "%s%s", len ? " " : "", DOCS[i].id);
            assert_true(n > 0 && (size_t)n < cap - len);
            len += (size_t)n;
        }
        json_doc_free(doc);
        free(attrs);
    }
}

static void filter_truth_table_holds(void **state) {
    (void)state;
    int failures = 0;
    for (size_t t = 0; t < sizeof TRUTH / sizeof TRUTH[0]; t++) {
        filter_expr *e = compile_ok(TRUTH[t].filter);
        char got[512];
        matched_ids(e, got, sizeof got);
        if (strcmp(got, TRUTH[t].want) != 0) {
            print_error("filter %s\n  got:  [%s]\n  want: [%s]\n", TRUTH[t].filter, got,
                        TRUTH[t].want);
            failures++;
        }
        filter_free(e);
    }
    assert_int_equal(failures, 0);
}

/* ---- the id, copies, attributes ------------------------------------------- */

static bool match1(const char *filter_sq, const char *id, const char *attrs_sq) {
    filter_expr *e = compile_ok(filter_sq);
    char *attrs = attrs_sq ? q(attrs_sq) : NULL;
    bool m = filter_match_text(e, id, (uint32_t)strlen(id), attrs,
                               attrs ? (uint32_t)strlen(attrs) : 0);
    free(attrs);
    filter_free(e);
    return m;
}

static void filter_id_is_the_document_id_not_an_attribute(void **state) {
    (void)state;
    assert_true(match1("{'id': 'a1'}", "a1", "{'id': 'zz'}"));
    assert_false(match1("{'id': 'zz'}", "a1", "{'id': 'zz'}"));
    /* an integer written for an id denotes its decimal string, as at upsert */
    assert_true(match1("{'id': 5}", "5", NULL));
    assert_true(match1("{'id': {'$in': [4, 5, 6]}}", "5", NULL));
    assert_true(match1("{'id': {'$nin': [4, 6]}}", "5", NULL));
    assert_false(match1("{'id': 5.0}", "5", NULL));
    assert_true(match1("{'id': -12}", "-12", NULL));
    assert_false(match1("{'id': 5}", "05", NULL));
    /* id need not be NUL-terminated */
    filter_expr *e = compile_ok("{'id': 'ab'}");
    assert_true(filter_match(e, "abc", 2, NULL));
    assert_false(filter_match(e, "abc", 3, NULL));
    assert_false(filter_needs_attrs(e));
    /* an id-only filter does not look at the attributes at all */
    assert_true(filter_match_text(e, "ab", 2, "not json", 8));
    filter_free(e);
}

static void filter_attributes_edge_cases(void **state) {
    (void)state;
    /* no attributes at all, and attributes that are not an object */
    assert_true(match1("{'v': {'$exists': false}}", "x", NULL));
    assert_true(match1("{'v': {'$ne': 1}}", "x", NULL));
    assert_false(match1("{'v': {'$exists': true}}", "x", "[1, 2]"));
    /* unparsable attribute text matches nothing (tierdb never writes it) */
    assert_false(match1("{'v': {'$ne': 1}}", "x", "{'v': "));
    /* duplicate attribute keys: the last one counts, as in json_get */
    assert_true(match1("{'v': 2}", "x", "{'v': 1, 'v': 2}"));
    assert_false(match1("{'v': 1}", "x", "{'v': 1, 'v': 2}"));
    /* nested objects are values, not paths */
    assert_false(match1("{'m.k': 1}", "x", "{'m': {'k': 1}}"));
    assert_true(match1("{'m.k': 1}", "x", "{'m.k': 1}"));
    /* keys and strings with U+0000 compare by length too */
    assert_true(match1("{'a\\u0000b': 'x\\u0000y'}", "x", "{'a\\u0000b': 'x\\u0000y', 'a': 'x'}"));
    assert_false(match1("{'a\\u0000b': 'x'}", "x", "{'a\\u0000b': 'x\\u0000y'}"));
    assert_false(match1("{'a': {'$prefix': 'x\\u0000'}}", "x", "{'a': 'x'}"));
    assert_true(match1("{'a': {'$prefix': 'x\\u0000'}}", "x", "{'a': 'x\\u0000y'}"));
    /* an empty field name is a field like any other */
    assert_true(match1("{'': 1}", "x", "{'': 1}"));
    /* arrays nested in arrays: one level of any-element, as in MongoDB */
    assert_false(match1("{'v': 1}", "x", "{'v': [[1]]}"));
    assert_true(match1("{'v': [1]}", "x", "{'v': [[1]]}"));
    /* an attribute object with duplicate keys equals no object */
    assert_false(match1("{'v': {'$eq': {'a': 1, 'b': 2}}}", "x", "{'v': {'a': 1, 'a': 1}}"));
    assert_false(match1("{'v': {'$eq': {'a': 1}}}", "x", "{'v': {'a': 1, 'a': 1}}"));
    assert_true(match1("{'v': {'$eq': {'a': 1}}}", "x", "{'v': {'a': 1}}"));
    /* a literal object with $-keys is written through $eq */
    assert_true(match1("{'v': {'$eq': {'$gt': 1}}}", "x", "{'v': {'$gt': 1}}"));
    /* ints and floats of the same value in any spelling */
    assert_true(match1("{'v': 100}", "x", "{'v': 1e2}"));
    assert_true(match1("{'v': 1.0}", "x", "{'v': 1}"));
    assert_true(match1("{'v': {'$in': [100]}}", "x", "{'v': 1.00e+2}"));
    assert_false(match1("{'v': 9223372036854775807}", "x", "{'v': 9223372036854775806}"));
    assert_true(match1("{'v': {'$lt': 9223372036854775807}}", "x", "{'v': 9223372036854775806}"));
    assert_true(match1("{'v': {'$lt': 9223372036854775808}}", "x", "{'v': 9223372036854775807}"));
    assert_true(match1("{'v': -9223372036854775808}", "x", "{'v': -9223372036854775808.0}"));
}

/* Compiled values are copies: the JSON may be freed right after compiling. */
static void filter_outlives_its_json(void **state) {
    (void)state;
    char *text = q("{'$or': [{'s': {'$in': ['alpha', 'beta', 'gamma']}}, "
                   "{'o': {'$eq': {'k': ['x', 1]}}}, {'p': {'$prefix': 'pre'}}]}");
    json_doc *doc = parse(text);
    filter_expr *e = NULL;
    tdb_error err = {0};
    assert_int_equal(filter_compile(json_root(doc), &e, &err), 0);
    json_doc_free(doc);
    memset(text, 'X', strlen(text));
    free(text);
    json_doc *a = parse("{\"s\": \"beta\"}");
    json_doc *b = parse("{\"o\": {\"k\": [\"x\", 1]}}");
    json_doc *c = parse("{\"p\": \"prefix\"}");
    json_doc *d = parse("{\"s\": \"delta\", \"p\": \"pr\"}");
    assert_true(filter_match(e, "a", 1, json_root(a)));
    assert_true(filter_match(e, "b", 1, json_root(b)));
    assert_true(filter_match(e, "c", 1, json_root(c)));
    assert_false(filter_match(e, "d", 1, json_root(d)));
    json_doc_free(a);
    json_doc_free(b);
    json_doc_free(c);
    json_doc_free(d);
    filter_free(e);
    filter_free(NULL);
}

/* A long $in list is sorted and bisected: membership must equal a linear
 * scan, for numbers of both kinds and for strings. */
static void filter_in_long_list_matches_linear_scan(void **state) {
    (void)state;
    buf b = BUF_INIT;
    buf_puts(&b, "{\"n\": {\"$in\": [");
    /* values 3k for ints, 3k + 0.5 as floats, and "s<3k>" strings */
    for (int k = 0; k < 3000; k++) buf_printf(&b, "%s%d, %d.5, \"s%d\"", k ? ", " : "", 3 * k, 3 * k, 3 * k);
    buf_puts(&b, "]}}");
    assert_false(buf_failed(&b));
    filter_expr *e = NULL;
    tdb_error err = {0};
    assert_int_equal(filter_compile_text(b.data, b.len, &e, &err), 0);
    for (int v = -5; v < 9010; v++) {
        char attrs[96];
        bool in = v >= 0 && v < 9000 && v % 3 == 0;
        snprintf(attrs, sizeof attrs, "{\"n\": %d}", v);
        assert_int_equal(filter_match_text(e, "x", 1, attrs, (uint32_t)strlen(attrs)), in);
        snprintf(attrs, sizeof attrs, "{\"n\": %d.0}", v);
        assert_int_equal(filter_match_text(e, "x", 1, attrs, (uint32_t)strlen(attrs)), in);
        snprintf(attrs, sizeof attrs, "{\"n\": %d.5}", v);
        assert_int_equal(filter_match_text(e, "x", 1, attrs, (uint32_t)strlen(attrs)), in);
        snprintf(attrs, sizeof attrs, "{\"n\": [\"s%d\"]}", v);
        assert_int_equal(filter_match_text(e, "x", 1, attrs, (uint32_t)strlen(attrs)), in);
        snprintf(attrs, sizeof attrs, "{\"n\": \"s%d \"}", v);
        assert_false(filter_match_text(e, "x", 1, attrs, (uint32_t)strlen(attrs)));
    }
    filter_free(e);
    buf_free(&b);
}

/* ---- errors ---------------------------------------------------------------- */

typedef struct bad {
    const char *filter;  /* single-quoted JSON */
    const char *message; /* the start of the expected message */
} bad;

static const bad BAD[] = {
    {"[{'year': 1}]", "filter: a filter must be a JSON object"},
    {"5", "filter: a filter must be a JSON object such as {\"year\": 2024}, got a number"},
    {"null", "filter: a filter must be a JSON object such as {\"year\": 2024}, got null"},
    {"{'year': {'$gtx': 1}}", "filter.year: unknown operator \"$gtx\" (operators: $eq"},
    {"{'$and': [{'a': 1}, {'year': {'$gtx': 1}}]}", "filter.$and[1].year: unknown operator \"$gtx\""},
    {"{'year': {'$near': 5}}", "filter.year: unknown operator \"$near\""},
    {"{'year': {'$': 5}}", "filter.year: unknown operator \"$\""},
    {"{'$nor': [{'year': 1}]}", "filter: unknown combinator \"$nor\""},
    {"{'$gt': 5}", "filter: unknown combinator \"$gt\""},
    {"{'$and': {'year': 1}}", "filter.$and: $and takes an array of filter objects, got an object"},
    {"{'$or': 'year'}", "filter.$or: $or takes an array of filter objects, got a string"},
    {"{'$and': [{'a': 1}, 5]}", "filter.$and[1]: a filter must be a JSON object"},
    {"{'$or': [[]]}", "filter.$or[0]: a filter must be a JSON object"},
    {"{'$not': [1]}", "filter.$not: $not takes a filter object, got an array"},
    {"{'$not': true}", "filter.$not: $not takes a filter object, got a boolean"},
    {"{'year': {'$in': 5}}", "filter.year.$in: $in takes an array of values, got a number"},
    {"{'year': {'$nin': 'a'}}", "filter.year.$nin: $nin takes an array of values, got a string"},
    {"{'year': {'$in': {'a': 1}}}", "filter.year.$in: $in takes an array of values, got an object"},
    {"{'year': {'$exists': 1}}", "filter.year.$exists: $exists takes true or false, got a number"},
    {"{'year': {'$exists': null}}", "filter.year.$exists: $exists takes true or false, got null"},
    {"{'year': {'$prefix': 1}}", "filter.year.$prefix: $prefix takes a string, got a number"},
    {"{'year': {'$prefix': ['a']}}", "filter.year.$prefix: $prefix takes a string, got an array"},
    {"{'year': {'$gt': 1, 'x': 2}}",
     "filter.year: mixes operators (\"$gt\") with plain keys (\"x\")"},
    {"{'year': {'x': 2, '$gt': 1}}",
     "filter.year: mixes operators (\"$gt\") with plain keys (\"x\")"},
    {"{'year': {'$not': 5}}", "filter.year.$not: $not on a field takes an object of operators"},
    {"{'year': {'$not': {}}}", "filter.year.$not: $not on a field needs at least one operator"},
    {"{'year': {'$not': {'a': 1}}}",
     "filter.year.$not: $not on a field takes operators, not the plain key \"a\""},
    {"{'year': {'$not': {'$gt': 1, '$bad': 2}}}", "filter.year.$not: unknown operator \"$bad\""},
    {"{'year': {'$not': {'$in': 1}}}", "filter.year.$not.$in: $in takes an array"},
    {"{'year': {'$and': [{'a': 1}]}}", "filter.year: $and combines filters and goes outside a field"},
    {"{'a': 1, 'a': 2}", "filter: duplicate key \"a\""},
    {"{'year': {'$gt': 1, '$gt': 2}}", "filter.year: duplicate key \"$gt\""},
    {"{'$and': [{'a': 1, 'b': 2, 'c': 3, 'd': 4, 'e': 5, 'f': 6, 'g': 7, 'h': 8, 'i': 9, 'c': 0}]}",
     "filter.$and[0]: duplicate key \"c\""},
    {"{'$or': [{'x': 1}, {'a.b c': {'$bad': 1}}]}",
     "filter.$or[1][\"a.b c\"]: unknown operator \"$bad\""},
    {"{'q\\\"\\u0001': {'$bad': 1}}", "filter[\"q\\\"\\u0001\"]: unknown operator"},
    {"{'\\u00e9t\\u00e9': {'$in': true}}", "filter.\xc3\xa9t\xc3\xa9.$in: $in takes an array"},
    {"{'year': {'$bad\\u0000x': 1}}", "filter.year: unknown operator \"$bad\\u0000x\""},
    {"{'v': {'$eq': {'a': 1, 'a': 2}}}", "filter.v.$eq: duplicate key \"a\""},
    {"{'v': {'a': 1, 'a': 2}}", "filter.v: duplicate key \"a\""},
    {"{'v': {'$in': [1, [{'a': {'b': 1, 'b': 1}}]]}}", "filter.v.$in[1][0].a: duplicate key \"b\""},
    {"{'year': 1", "filter: not valid JSON at byte"},
    {"", "filter: not valid JSON at byte 0"},
};

static void expect_compile_error(const char *text, size_t len, const char *want) {
    filter_expr *e = (filter_expr *)&e; /* must be reset to NULL */
    tdb_error err = {0};
    int rc = filter_compile_text(text, len, &e, &err);
    if (rc != TDB_EINVAL) fail_msg("%s: rc %d, not TDB_EINVAL", text, rc);
    assert_null(e);
    assert_int_equal(err.code, TDB_EINVAL);
    assert_string_equal(err.name, "invalid_filter");
    if (strncmp(err.message, want, strlen(want)) != 0)
        fail_msg("filter %s\n  message: %s\n  expected to start with: %s", text, err.message, want);
}

static void filter_compile_errors_name_their_path(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        char *text = q(BAD[i].filter);
        expect_compile_error(text, strlen(text), BAD[i].message);
        free(text);
    }
    /* NULL: no filter value at all */
    filter_expr *e = NULL;
    tdb_error err = {0};
    assert_int_equal(filter_compile(NULL, &e, &err), TDB_EINVAL);
    assert_string_equal(err.name, "invalid_filter");
    assert_null(e);
}

static void filter_long_keys_and_paths_are_cut(void **state) {
    (void)state;
    /* a 100-byte key is shown cut, in quotes */
    char key[101];
    memset(key, 'k', 100);
    key[100] = '\0';
    char text[256];
    snprintf(text, sizeof text, "{\"%s\": {\"$bad\": 1}}", key);
    tdb_error err = {0};
    filter_expr *e = NULL;
    assert_int_equal(filter_compile_text(text, strlen(text), &e, &err), TDB_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "filter[\"%.48s...\"]: unknown operator \"$bad\"", key);
    assert_int_equal(strncmp(err.message, want, strlen(want)), 0);
    /* a deep path keeps its tail */
    buf b = BUF_INIT;
    for (int i = 0; i < 40; i++) buf_puts(&b, "{\"$or\": [");
    buf_puts(&b, "{\"year\": {\"$gtx\": 1}}");
    for (int i = 0; i < 40; i++) buf_puts(&b, "]}");
    assert_int_equal(filter_compile_text(b.data, b.len, &e, &err), TDB_EINVAL);
    assert_int_equal(strncmp(err.message, "...", 3), 0);
    assert_non_null(strstr(err.message, ".$or[0].$or[0].year: unknown operator \"$gtx\""));
    assert_true(strlen(err.message) < 400);
    buf_free(&b);
}

static void filter_limits_are_enforced(void **state) {
    (void)state;
    tdb_error err = {0};
    filter_expr *e = NULL;
    buf b = BUF_INIT;
    /* depth: FILTER_MAX_DEPTH nested objects compile, one more does not */
    for (int depth = FILTER_MAX_DEPTH; depth <= FILTER_MAX_DEPTH + 1; depth++) {
        buf_reset(&b);
        for (int i = 1; i < depth; i++) buf_puts(&b, "{\"$not\": ");
        buf_puts(&b, "{\"a\": 1}");
        for (int i = 1; i < depth; i++) buf_puts(&b, "}");
        int rc = filter_compile_text(b.data, b.len, &e, &err);
        if (depth == FILTER_MAX_DEPTH) {
            assert_int_equal(rc, 0);
            /* an odd number of $not around a == 1: NOT */
            bool odd = (FILTER_MAX_DEPTH - 1) % 2 == 1;
            assert_int_equal(filter_match_text(e, "x", 1, "{\"a\": 1}", 8), !odd);
            filter_free(e);
        } else {
            assert_int_equal(rc, TDB_EINVAL);
            assert_non_null(strstr(err.message, "nests deeper than 64 levels"));
        }
    }
    /* the same through a field's $not */
    buf_reset(&b);
    buf_puts(&b, "{\"a\": ");
    for (int i = 0; i < FILTER_MAX_DEPTH; i++) buf_puts(&b, "{\"$not\": ");
    buf_puts(&b, "{\"$eq\": 1}");
    for (int i = 0; i < FILTER_MAX_DEPTH; i++) buf_puts(&b, "}");
    buf_puts(&b, "}");
    assert_int_equal(filter_compile_text(b.data, b.len, &e, &err), TDB_EINVAL);
    assert_non_null(strstr(err.message, "nests deeper than"));
    /* $in: FILTER_MAX_IN_VALUES values compile, one more does not */
    for (int n = FILTER_MAX_IN_VALUES; n <= FILTER_MAX_IN_VALUES + 1; n++) {
        buf_reset(&b);
        buf_puts(&b, "{\"ids\": {\"$in\": [");
        for (int i = 0; i < n; i++) buf_printf(&b, "%s%d", i ? "," : "", i);
        buf_puts(&b, "]}}");
        int rc = filter_compile_text(b.data, b.len, &e, &err);
        if (n == FILTER_MAX_IN_VALUES) {
            assert_int_equal(rc, 0);
            assert_true(filter_match_text(e, "x", 1, "{\"ids\": 9999}", 13));
            filter_free(e);
        } else {
            assert_int_equal(rc, TDB_EINVAL);
            assert_string_equal(err.message,
                                "filter.ids.$in: $in takes at most 10000 values, got 10001");
        }
    }
    /* conditions: FILTER_MAX_CONDITIONS leaves compile, one more does not */
    for (int n = FILTER_MAX_CONDITIONS; n <= FILTER_MAX_CONDITIONS + 1; n++) {
        buf_reset(&b);
        buf_puts(&b, "{\"$or\": [");
        for (int i = 0; i < n; i++) buf_printf(&b, "%s{\"id\": \"%d\"}", i ? "," : "", i);
        buf_puts(&b, "]}");
        int rc = filter_compile_text(b.data, b.len, &e, &err);
        if (n == FILTER_MAX_CONDITIONS) {
            assert_int_equal(rc, 0);
            assert_true(filter_match(e, "4095", 4, NULL));
            assert_false(filter_match(e, "4096", 4, NULL));
            filter_free(e);
        } else {
            assert_int_equal(rc, TDB_EINVAL);
            assert_non_null(strstr(err.message, "filter.$or[4096].id: the filter has more than 4096"));
        }
    }
    assert_false(buf_failed(&b));
    buf_free(&b);
}

/* ---- bitmaps and selectivity ------------------------------------------------ */

/* A synthetic segment: row r has id "r<r>" and attributes {"n": r,
 * "even": r % 2 == 0}; rows with r % 10 == 7 are deleted (skipped). */
typedef struct seg {
    char id[32];
    char attrs[96];
    json_doc *doc;   /* with_tree: the parsed attributes of the last row */
    bool with_tree;  /* hand over parsed attributes instead of text */
    int64_t fail_at; /* row whose visit fails (-1: none) */
    bool skip_all;
    uint64_t visits;
} seg;

static int seg_get(void *ctx, uint32_t row, filter_row *out, tdb_error *err) {
    seg *s = ctx;
    s->visits++;
    if ((int64_t)row == s->fail_at) {
        err->code = TDB_EIO;
        snprintf(err->message, sizeof err->message, "read failed at row %u", row);
        return TDB_EIO;
    }
    if (s->skip_all || row % 10 == 7) return FILTER_ROW_SKIP;
    snprintf(s->id, sizeof s->id, "r%u", row);
    snprintf(s->attrs, sizeof s->attrs, "{\"n\": %u, \"even\": %s}", row, row % 2 ? "false" : "true");
    out->id = s->id;
    out->id_len = (uint32_t)strlen(s->id);
    if (s->with_tree) {
        json_doc_free(s->doc);
        s->doc = parse(s->attrs);
        out->attrs = json_root(s->doc);
    } else {
        out->attrs_json = s->attrs;
        out->attrs_len = (uint32_t)strlen(s->attrs);
    }
    return 0;
}

static void filter_bitmap_holds_exactly_the_matching_rows(void **state) {
    (void)state;
    filter_expr *e = compile_ok("{'n': {'$lt': 100}, 'even': {'$ne': true}}");
    for (int tree = 0; tree < 2; tree++) {
        seg s = {.fail_at = -1, .with_tree = tree};
        filter_rows rows = {.row_count = 1000, .candidates = NULL, .get = seg_get, .ctx = &s};
        roaring_bitmap_t *bm = NULL;
        tdb_error err = {0};
        assert_int_equal(filter_bitmap_build(e, &rows, &bm, &err), 0);
        assert_non_null(bm);
        assert_int_equal(s.visits, 1000);
        /* odd rows below 100 except those ending in 7 */
        for (uint32_t r = 0; r < 1000; r++)
            assert_int_equal(roaring_bitmap_contains(bm, r), r < 100 && r % 2 == 1 && r % 10 != 7);
        assert_int_equal(roaring_bitmap_get_cardinality(bm), 40);
        filter_estimate est;
        filter_selectivity_from_bitmap(bm, 900, &est);
        assert_true(est.exact);
        assert_int_equal(est.matched, 40);
        assert_true(est.selectivity > 40.0 / 900 - 1e-12 && est.selectivity < 40.0 / 900 + 1e-12);
        assert_true(est.upper95 == est.selectivity);
        roaring_bitmap_free(bm);
        json_doc_free(s.doc);
    }
    filter_free(e);
}

static void filter_bitmap_visits_only_candidates(void **state) {
    (void)state;
    filter_expr *e = compile_ok("{'even': true}");
    seg s = {.fail_at = -1};
    roaring_bitmap_t *cand = roaring_bitmap_create();
    roaring_bitmap_add_range(cand, 50, 150);
    roaring_bitmap_add(cand, 5000); /* beyond row_count: ignored */
    filter_rows rows = {.row_count = 1000, .candidates = cand, .get = seg_get, .ctx = &s};
    roaring_bitmap_t *bm = NULL;
    tdb_error err = {0};
    assert_int_equal(filter_bitmap_build(e, &rows, &bm, &err), 0);
    assert_int_equal(s.visits, 100);
    assert_int_equal(roaring_bitmap_get_cardinality(bm), 50);
    assert_true(roaring_bitmap_contains(bm, 50));
    assert_false(roaring_bitmap_contains(bm, 48));
    assert_false(roaring_bitmap_contains(bm, 150));
    roaring_bitmap_free(bm);
    /* an estimate over 100 candidates is exact (10 of them skipped) */
    filter_estimate est;
    s.visits = 0;
    assert_int_equal(filter_selectivity_estimate(e, &rows, 0, 1, &est, &err), 0);
    assert_true(est.exact);
    assert_int_equal(est.evaluated, 90);
    assert_int_equal(est.matched, 50);
    assert_int_equal(s.visits, 100);
    roaring_bitmap_free(cand);
    filter_free(e);
}

static void filter_bitmap_stops_on_visitor_error(void **state) {
    (void)state;
    filter_expr *e = compile_ok("{'n': {'$gte': 0}}");
    seg s = {.fail_at = 500};
    filter_rows rows = {.row_count = 1000, .get = seg_get, .ctx = &s};
    roaring_bitmap_t *bm = (roaring_bitmap_t *)&bm;
    tdb_error err = {0};
    assert_int_equal(filter_bitmap_build(e, &rows, &bm, &err), TDB_EIO);
    assert_null(bm);
    assert_int_equal(s.visits, 501);
    assert_string_equal(err.message, "read failed at row 500");
    filter_estimate est;
    s.visits = 0;
    assert_int_equal(filter_selectivity_estimate(e, &rows, 2000, 1, &est, &err), TDB_EIO);
    assert_int_equal(est.evaluated, 0);
    filter_free(e);
}

static void filter_selectivity_is_sampled_and_reproducible(void **state) {
    (void)state;
    /* 10% of a 200000-row segment: rows 0..19999 */
    filter_expr *e = compile_ok("{'n': {'$lt': 20000}}");
    seg s = {.fail_at = -1};
    filter_rows rows = {.row_count = 200000, .get = seg_get, .ctx = &s};
    filter_estimate a, b;
    tdb_error err = {0};
    assert_int_equal(filter_selectivity_estimate(e, &rows, 0, 42, &a, &err), 0);
    assert_false(a.exact);
    assert_int_equal(a.evaluated, FILTER_DEFAULT_SAMPLE_ROWS);
    /* ~4 standard errors of slack: deterministic for this seed anyway */
    assert_true(a.selectivity > 0.06 && a.selectivity < 0.14);
    assert_true(a.upper95 > a.selectivity && a.upper95 < a.selectivity + 0.04);
    assert_true(s.visits >= a.evaluated && s.visits <= a.evaluated * 2); /* skips redrawn */
    assert_int_equal(filter_selectivity_estimate(e, &rows, 0, 42, &b, &err), 0);
    assert_int_equal(a.matched, b.matched);
    assert_int_equal(a.evaluated, b.evaluated);
    filter_free(e);

    /* a filter matching nothing: 0, with a small but positive upper bound */
    e = compile_ok("{'n': {'$lt': 0}}");
    assert_int_equal(filter_selectivity_estimate(e, &rows, 500, 7, &a, &err), 0);
    assert_int_equal(a.evaluated, 500);
    assert_int_equal(a.matched, 0);
    assert_true(a.selectivity == 0.0);
    assert_true(a.upper95 > 0.0 && a.upper95 < 0.01);
    filter_free(e);

    /* with candidates: sampled by rank among them (rows 100000..199999) */
    e = compile_ok("{'n': {'$gte': 150000}}");
    roaring_bitmap_t *cand = roaring_bitmap_create();
    roaring_bitmap_add_range(cand, 100000, 200000);
    rows.candidates = cand;
    assert_int_equal(filter_selectivity_estimate(e, &rows, 2000, 3, &a, &err), 0);
    assert_false(a.exact);
    assert_int_equal(a.evaluated, 2000);
    assert_true(a.selectivity > 0.43 && a.selectivity < 0.57);
    roaring_bitmap_free(cand);
    filter_free(e);
}

static void filter_selectivity_small_and_empty_inputs(void **state) {
    (void)state;
    filter_expr *e = compile_ok("{'even': true}");
    tdb_error err = {0};
    filter_estimate est;
    /* few rows: exact (rows 0..99 minus 10 skipped; evens: 50) */
    seg s = {.fail_at = -1};
    filter_rows rows = {.row_count = 100, .get = seg_get, .ctx = &s};
    assert_int_equal(filter_selectivity_estimate(e, &rows, 0, 1, &est, &err), 0);
    assert_true(est.exact);
    assert_int_equal(est.evaluated, 90);
    assert_int_equal(est.matched, 50);
    assert_true(est.upper95 == est.selectivity);
    /* no rows: exactly 0 */
    rows.row_count = 0;
    assert_int_equal(filter_selectivity_estimate(e, &rows, 0, 1, &est, &err), 0);
    assert_true(est.exact && est.evaluated == 0 && est.selectivity == 0.0 && est.upper95 == 0.0);
    /* every sampled row skipped: nothing known, and the draws are bounded */
    seg gone = {.fail_at = -1, .skip_all = true};
    filter_rows many = {.row_count = 100000, .get = seg_get, .ctx = &gone};
    assert_int_equal(filter_selectivity_estimate(e, &many, 100, 1, &est, &err), 0);
    assert_false(est.exact);
    assert_int_equal(est.evaluated, 0);
    assert_true(est.selectivity == 0.0 && est.upper95 == 1.0);
    assert_true(gone.visits <= 100 * 4);
    /* the exact estimate from a bitmap over no rows */
    filter_selectivity_from_bitmap(NULL, 0, &est);
    assert_true(est.exact && est.selectivity == 0.0);
    filter_free(e);
}

/* ---- typed columns ------------------------------------------------------------- */

/* A hand-made number column over five rows whose JSON is ROWS_JSON, with a
 * dictionary in no order and a value given twice (5 and 5.0): the
 * evaluator needs neither order nor uniqueness, and must agree with the
 * JSON on every row, with and without postings. */
static const char *const COL_JSON[] = {"{'n': 5}", "{'n': [1, 5.0]}", "{'n': null}", "{}",
                                       "{'n': []}"};
static const uint8_t COL_TAGS[] = {FILTER_TAG_SCALAR, FILTER_TAG_ARRAY, FILTER_TAG_NULL,
                                   FILTER_TAG_MISSING, FILTER_TAG_ARRAY};
static const uint32_t COL_FIRST[] = {0, 1, 3, 3, 3, 3};
static const uint32_t COL_CODES[] = {0, 1, 2};
static const int64_t COL_I64[] = {5, 1, 0};
static const double COL_F64[] = {5, 1, 5.0};
static const uint8_t COL_IS_INT[] = {1, 1, 0};
static const uint32_t COL_POST_OFF[] = {0, 1, 2, 3};
static const uint32_t COL_POST_ROWS[] = {0, 1, 1};
static const char *const COL_IDS[] = {"a", "b", "c", "d", "e"};
static bool col_with_postings;

static bool col_find(const void *ctx, const char *name, uint32_t len, filter_column *out) {
    (void)ctx;
    if (len != 1 || name[0] != 'n') return false;
    *out = (filter_column){.kind = FILTER_ATOM_NUM, .rows = 5, .tags = COL_TAGS, .first = COL_FIRST,
                           .codes = COL_CODES, .dict_count = 3, .num_i64 = COL_I64,
                           .num_f64 = COL_F64, .num_is_int = COL_IS_INT};
    if (col_with_postings) {
        out->post_offsets = COL_POST_OFF;
        out->post_rows = COL_POST_ROWS;
    }
    return true;
}

static uint32_t col_id_bound(const void *ctx, const char *id, uint32_t len, bool strict) {
    (void)ctx;
    uint32_t r = 0;
    while (r < 5) {
        int c = memcmp(COL_IDS[r], id, len < 1 ? len : 1);
        if (c == 0) c = (1 > len) - (1 < len);
        if (strict ? c > 0 : c >= 0) break;
        r++;
    }
    return r;
}

static void filter_columns_agree_with_json(void **state) {
    (void)state;
    static const char *const filters[] = {
        "{'n': 5}", "{'n': {'$ne': 5}}", "{'n': 1}", "{'n': null}", "{'n': {'$exists': false}}",
        "{'n': {'$gt': 1}}", "{'n': {'$lte': 1}}", "{'n': {'$in': [1, null]}}", "{'n': {'$nin': [5]}}",
        "{'n': {'$contains': 5}}", "{'n': []}", "{'n': [1, 5]}", "{'n': {'$in': [[]]}}",
        "{'n': {'$prefix': ''}}", "{'n': '5'}", "{'$or': [{'n': 1}, {'other': 1}]}",
        "{'$not': {'n': {'$gt': 2}}}", "{'id': {'$gte': 'b', '$lt': 'd'}}", "{'id': {'$prefix': 'c'}}",
        "{'id': {'$in': ['a', 'e', 'z']}, 'n': {'$exists': true}}",
    };
    for (int post = 0; post < 2; post++) {
        col_with_postings = post;
        filter_columns cols = {5, col_find, col_id_bound, NULL};
        for (size_t k = 0; k < sizeof filters / sizeof filters[0]; k++) {
            filter_expr *e = compile_ok(filters[k]);
            roaring_bitmap_t *yes, *und;
            tdb_error err;
            assert_int_equal(filter_columns_eval(e, &cols, &yes, &und, &err), 0);
            for (uint32_t r = 0; r < 5; r++) {
                char *attrs = q(COL_JSON[r]);
                bool json = filter_match_text(e, COL_IDS[r], 1, attrs, (uint32_t)strlen(attrs));
                free(attrs);
                bool y = roaring_bitmap_contains(yes, r), u = roaring_bitmap_contains(und, r);
                if (y && u) fail_msg("%s: row %u both matched and undecided", filters[k], r);
                if (!u && y != json)
                    fail_msg("%s (postings %d): row %u: columns %d, JSON %d", filters[k], post, r, y,
                             json);
                /* Only whole-array operands and the attribute without a
                 * column leave rows undecided. */
                if (u && !strstr(filters[k], "[") && !strstr(filters[k], "other"))
                    fail_msg("%s: row %u undecided", filters[k], r);
            }
            roaring_bitmap_free(yes);
            roaring_bitmap_free(und);
            filter_free(e);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filter_truth_table_holds),
        cmocka_unit_test(filter_id_is_the_document_id_not_an_attribute),
        cmocka_unit_test(filter_attributes_edge_cases),
        cmocka_unit_test(filter_outlives_its_json),
        cmocka_unit_test(filter_in_long_list_matches_linear_scan),
        cmocka_unit_test(filter_compile_errors_name_their_path),
        cmocka_unit_test(filter_long_keys_and_paths_are_cut),
        cmocka_unit_test(filter_limits_are_enforced),
        cmocka_unit_test(filter_bitmap_holds_exactly_the_matching_rows),
        cmocka_unit_test(filter_bitmap_visits_only_candidates),
        cmocka_unit_test(filter_bitmap_stops_on_visitor_error),
        cmocka_unit_test(filter_selectivity_is_sampled_and_reproducible),
        cmocka_unit_test(filter_selectivity_small_and_empty_inputs),
        cmocka_unit_test(filter_columns_agree_with_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
