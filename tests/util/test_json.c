/*
 * test_json.c: unit tests for src/util/json.c (parser, writer, UTF-8).
 *
 * Every parse goes through parse_exact(), which copies the input into a
 * malloc'd buffer of exactly its length (no NUL after it) and frees that
 * copy before the doc is used: ASan then catches any read past the end of
 * the input, and any value that still points into the source.
 * Randomized cases use fixed seeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/json.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s ? s : 0x9E3779B97F4A7C15ull; }
static uint64_t rng_next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static uint32_t rng_below(uint32_t n) { return (uint32_t)(rng_next() % n); }

static int parse_exact(const char *text, size_t len, json_doc **doc, json_error *err) {
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, text, len);
    int rc = json_parse(copy, len, doc, err);
    memset(copy, 0xAA, len); /* a value still pointing into the source would now be garbage */
    free(copy);
    return rc;
}

static json_doc *parse_ok_n(const char *text, size_t len) {
    json_doc *doc = NULL;
    json_error err;
    int rc = parse_exact(text, len, &doc, &err);
    if (rc != 0) print_error("unexpected parse failure at offset %zu: %s\n", err.offset, err.message);
    assert_int_equal(rc, 0);
    assert_non_null(doc);
    assert_non_null(json_root(doc));
    return doc;
}
#define PARSE_OK(lit) parse_ok_n((lit), sizeof(lit) - 1)

static void expect_fail_n(const char *text, size_t len, size_t offset, const char *msg_part) {
    json_doc *doc = (json_doc *)&doc; /* must be reset to NULL */
    json_error err;
    int rc = parse_exact(text, len, &doc, &err);
    if (rc == 0) {
        print_error("expected a failure for input of %zu bytes\n", len);
        json_doc_free(doc);
        fail();
    }
    assert_int_equal(rc, -1);
    assert_null(doc);
    if (err.offset != offset || strstr(err.message, msg_part) == NULL)
        print_error("input %.*s: got offset %zu \"%s\", want offset %zu containing \"%s\"\n",
                    (int)(len > 60 ? 60 : len), text, err.offset, err.message, offset, msg_part);
    assert_int_equal(err.offset, offset);
    assert_non_null(strstr(err.message, msg_part));
    assert_true(strlen(err.message) < sizeof err.message);
}
#define EXPECT_FAIL(lit, off, msg) expect_fail_n((lit), sizeof(lit) - 1, (off), (msg))

/* Minified re-serialization of text (which must parse). Caller frees. */
static char *rewrite_n(const char *text, size_t len, size_t *out_len) {
    json_doc *doc = parse_ok_n(text, len);
    buf b = BUF_INIT;
    json_write_value(&b, json_root(doc));
    json_doc_free(doc);
    assert_false(buf_failed(&b));
    if (out_len) *out_len = b.len;
    return buf_steal(&b);
}

static void assert_rewrites_to(const char *in, const char *want) {
    size_t n;
    char *got = rewrite_n(in, strlen(in), &n);
    if (strcmp(got, want) != 0) print_error("rewrite of %s: got %s want %s\n", in, got, want);
    assert_int_equal(n, strlen(want));
    assert_string_equal(got, want);
    free(got);
}

static uint64_t dbits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}
static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ------------------------------------------------------------------ */
/* Scalars and structure                                               */

static void json_parses_scalars_at_root(void **state) {
    (void)state;
    json_doc *d;
    d = PARSE_OK("null");
    assert_int_equal(json_root(d)->type, JSON_NULL);
    assert_null(json_root(d)->str);
    json_doc_free(d);
    d = PARSE_OK(" \t\r\ntrue\n");
    assert_int_equal(json_root(d)->type, JSON_TRUE);
    assert_int_equal(json_root(d)->src_off, 4);
    assert_int_equal(json_root(d)->src_len, 4);
    json_doc_free(d);
    d = PARSE_OK("false");
    assert_int_equal(json_root(d)->type, JSON_FALSE);
    json_doc_free(d);
    d = PARSE_OK("42");
    assert_int_equal(json_root(d)->type, JSON_NUMBER);
    assert_true(json_root(d)->is_int);
    assert_int_equal(json_root(d)->i64, 42);
    assert_string_equal(json_root(d)->str, "42");
    assert_int_equal(json_root(d)->len, 2);
    json_doc_free(d);
    d = PARSE_OK("\"hi\"");
    assert_int_equal(json_root(d)->type, JSON_STRING);
    assert_string_equal(json_root(d)->str, "hi");
    assert_int_equal(json_root(d)->len, 2);
    assert_int_equal(json_root(d)->src_len, 4);
    json_doc_free(d);
    d = PARSE_OK("\"\"");
    assert_int_equal(json_root(d)->len, 0);
    assert_string_equal(json_root(d)->str, "");
    json_doc_free(d);
    json_doc_free(NULL);
    assert_null(json_root(NULL));
}

static void json_builds_tree_with_spans(void **state) {
    (void)state;
    const char text[] = "{ \"a\" : [1, 2.5, \"x\", true, null, {}, []] , \"b\":{\"c\":false} }";
    json_doc *d = PARSE_OK(text);
    const json_value *r = json_root(d);
    assert_int_equal(r->type, JSON_OBJECT);
    assert_int_equal(r->len, 2);
    assert_int_equal(r->src_off, 0);
    assert_int_equal(r->src_len, sizeof text - 1);
    assert_null(r->key);

    const json_value *a = json_get(r, "a");
    assert_non_null(a);
    assert_ptr_equal(a, r->child);
    assert_string_equal(a->key, "a");
    assert_int_equal(a->key_len, 1);
    assert_int_equal(a->type, JSON_ARRAY);
    assert_int_equal(a->len, 7);
    assert_memory_equal(text + a->src_off, "[1, 2.5, \"x\", true, null, {}, []]", a->src_len);
    const json_type types[] = {JSON_NUMBER, JSON_NUMBER, JSON_STRING, JSON_TRUE,
                               JSON_NULL,   JSON_OBJECT, JSON_ARRAY};
    const char *spans[] = {"1", "2.5", "\"x\"", "true", "null", "{}", "[]"};
    size_t i = 0;
    for (const json_value *e = a->child; e; e = e->next, i++) {
        assert_true(i < 7);
        assert_int_equal(e->type, types[i]);
        assert_null(e->key);
        assert_int_equal(e->src_len, strlen(spans[i]));
        assert_memory_equal(text + e->src_off, spans[i], e->src_len);
    }
    assert_int_equal(i, 7);
    assert_int_equal(a->child->next->next->next->next->next->len, 0);
    assert_null(a->child->next->next->next->next->next->child);

    const json_value *b = json_get(r, "b");
    assert_non_null(b);
    assert_ptr_equal(b, a->next);
    assert_null(b->next);
    const json_value *c = json_get(b, "c");
    assert_non_null(c);
    assert_int_equal(c->type, JSON_FALSE);
    assert_memory_equal(text + b->src_off, "{\"c\":false}", b->src_len);

    assert_null(json_get(r, "zz"));
    assert_null(json_get(a, "a")); /* not an object */
    assert_null(json_get(NULL, "a"));
    assert_null(json_get(r, NULL));
    json_doc_free(d);
}

static void json_get_returns_last_duplicate_key(void **state) {
    (void)state;
    json_doc *d = PARSE_OK("{\"a\":1,\"b\":2,\"a\":3,\"\":4,\"a\\u0000b\":5}");
    const json_value *r = json_root(d);
    assert_int_equal(r->len, 5);
    assert_int_equal(json_get(r, "a")->i64, 3);
    assert_int_equal(json_get(r, "b")->i64, 2);
    assert_int_equal(json_get(r, "")->i64, 4);
    /* A key with U+0000 keeps its full length; "a" does not match it. */
    const json_value *last = r->child->next->next->next->next;
    assert_int_equal(last->key_len, 3);
    assert_memory_equal(last->key, "a\0b", 4);
    /* Writing keeps every member, in order. */
    buf b = BUF_INIT;
    json_write_value(&b, r);
    assert_string_equal(b.data, "{\"a\":1,\"b\":2,\"a\":3,\"\":4,\"a\\u0000b\":5}");
    buf_free(&b);
    json_doc_free(d);
}

static void json_accepts_only_four_whitespace_bytes(void **state) {
    (void)state;
    json_doc *d = PARSE_OK(" \t\n\r[ \t\n\r1 \t\n\r, \t\n\r{ \t\n\r\"k\" \t\n\r: \t\n\r2 \t\n\r} \t\n\r] \t\n\r");
    assert_int_equal(json_root(d)->len, 2);
    json_doc_free(d);
    EXPECT_FAIL("\f1", 0, "control character 0x0C");
    EXPECT_FAIL("[1,\v2]", 3, "expected a value");
    EXPECT_FAIL("\xC2\xA0" "1", 0, "U+00A0");         /* no-break space */
    EXPECT_FAIL("1\xE3\x80\x80", 1, "expected end of input"); /* ideographic space */
    EXPECT_FAIL("\xEF\xBB\xBF{}", 0, "byte order mark");
}

/* ------------------------------------------------------------------ */
/* Strings                                                             */

static void json_decodes_every_escape(void **state) {
    (void)state;
    json_doc *d = PARSE_OK("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u00E9\\u20AC\\uFFFF\"");
    const json_value *v = json_root(d);
    const char want[] = "\"\\/\b\f\n\r\tA\xC3\xA9\xC3\xA9\xE2\x82\xAC\xEF\xBF\xBF";
    assert_int_equal(v->len, sizeof want - 1);
    assert_memory_equal(v->str, want, sizeof want);
    json_doc_free(d);

    /* Writing re-escapes only what must be: '/' stays, U+FFFF stays raw. */
    assert_rewrites_to("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\"", "\"\\\"\\\\/\\b\\f\\n\\r\\tA\"");
}

static void json_string_holds_u0000(void **state) {
    (void)state;
    json_doc *d = PARSE_OK("[\"a\\u0000b\", \"\\u0000\"]");
    const json_value *a = json_root(d)->child;
    assert_int_equal(a->len, 3);
    assert_memory_equal(a->str, "a\0b\0", 4); /* still NUL-terminated after the length */
    assert_int_equal(a->next->len, 1);
    assert_int_equal(a->next->str[0], 0);
    json_doc_free(d);
    assert_rewrites_to("[\"a\\u0000b\",\"\\u0000\"]", "[\"a\\u0000b\",\"\\u0000\"]");
}

static void json_decodes_surrogate_pairs(void **state) {
    (void)state;
    json_doc *d = PARSE_OK("[\"\\ud83d\\ude00\", \"\\uD834\\uDD1E\", \"\\uDBFF\\uDFFF\", \"\\uD800\\uDC00\"]");
    const json_value *e = json_root(d)->child;
    assert_string_equal(e->str, "\xF0\x9F\x98\x80"); /* U+1F600 */
    assert_int_equal(e->len, 4);
    e = e->next;
    assert_string_equal(e->str, "\xF0\x9D\x84\x9E"); /* U+1D11E */
    e = e->next;
    assert_string_equal(e->str, "\xF4\x8F\xBF\xBF"); /* U+10FFFF */
    e = e->next;
    assert_string_equal(e->str, "\xF0\x90\x80\x80"); /* U+10000 */
    json_doc_free(d);
}

static void json_rejects_lone_surrogates(void **state) {
    (void)state;
    EXPECT_FAIL("\"\\ud83d\"", 1, "lone high surrogate \\uD83D");
    EXPECT_FAIL("\"ab\\ud83dx\"", 3, "lone high surrogate");
    EXPECT_FAIL("\"\\ud83d\\n\"", 1, "lone high surrogate");
    EXPECT_FAIL("\"\\ud83d\\u0041\"", 1, "followed by \\u0041");
    EXPECT_FAIL("\"\\ud83d\\ud83d\"", 1, "expected a low surrogate");
    EXPECT_FAIL("\"\\ude00\"", 1, "lone low surrogate \\uDE00");
    EXPECT_FAIL("\"x\\uDFFF\\ud83d\"", 2, "lone low surrogate");
    EXPECT_FAIL("\"\\ud83d\\ude0", 12, "4 hex digits"); /* truncated low half */
    EXPECT_FAIL("\"\\ud83d", 1, "lone high surrogate"); /* at end of input */
    EXPECT_FAIL("[\"\\ud800\"]", 2, "lone high surrogate"); /* offsets are absolute */
}

static void json_rejects_bad_escapes(void **state) {
    (void)state;
    EXPECT_FAIL("\"\\x\"", 1, "invalid escape");
    EXPECT_FAIL("\"abc\\'\"", 4, "found '''");
    EXPECT_FAIL("\"\\U0041\"", 1, "invalid escape");
    EXPECT_FAIL("\"\\0\"", 1, "invalid escape");
    EXPECT_FAIL("\"\\u12G4\"", 5, "4 hex digits");
    EXPECT_FAIL("\"\\u12\"", 5, "4 hex digits");
    EXPECT_FAIL("\"\\u", 3, "4 hex digits");
    EXPECT_FAIL("\"\\", 1, "unterminated escape");
    EXPECT_FAIL("\"\\\xC3\xA9\"", 1, "U+00E9");
}

static void json_rejects_raw_control_chars_in_strings(void **state) {
    (void)state;
    for (int c = 0; c < 0x20; c++) {
        char text[8] = {'[', '"', 'a', (char)c, 'b', '"', ']'};
        char want[48];
        snprintf(want, sizeof want, "control character 0x%02X", c);
        expect_fail_n(text, 7, 3, want);
    }
    EXPECT_FAIL("{\"k\ney\":1}", 3, "must be escaped");
    /* DEL (0x7F) is not a control character for JSON. */
    json_doc *d = PARSE_OK("\"\x7F\"");
    assert_int_equal(json_root(d)->len, 1);
    assert_int_equal(json_root(d)->str[0], 0x7F);
    json_doc_free(d);
}

static void json_rejects_unterminated_strings(void **state) {
    (void)state;
    EXPECT_FAIL("\"abc", 4, "unterminated string");
    EXPECT_FAIL("[\"abc\\\"]", 8, "unterminated string");
    EXPECT_FAIL("{\"abc", 5, "unterminated string");
    EXPECT_FAIL("\"", 1, "unterminated string");
    /* An error inside the unterminated string is reported first. */
    EXPECT_FAIL("\"ab\x01", 3, "control character");
}

static void json_round_trips_unicode_byte_for_byte(void **state) {
    (void)state;
    const char *texts[] = {
        "\"caf\xC3\xA9\"",                                     /* é precomposed */
        "\"cafe\xCC\x81\"",                                    /* e + combining acute */
        "\"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\"",            /* 日本語 */
        "\"\xF0\x9F\x98\x80\"",                                /* 😀 */
        "\"\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7\"", /* ZWJ family */
        "\"\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7\"",                /* flag: regional indicators */
        "\"a\xCC\x8A\xCC\xB1\xCD\x9C b\"",                     /* stacked combining marks */
        "\"\xE2\x80\xA8\xE2\x80\xA9\"",                        /* U+2028/2029 stay raw */
        "\"\xEF\xBB\xBF\"",                                    /* a BOM inside a string is text */
        "\"\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF\"",
        "{\"cl\xC3\xA9\":\"\xF0\x9F\x98\x80\"}",               /* keys too */
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        assert_true(json_utf8_valid(texts[i], strlen(texts[i])));
        assert_rewrites_to(texts[i], texts[i]);
    }
    /* Escaped and raw spellings decode to the same bytes. */
    json_doc *d = PARSE_OK("[\"\\u65e5\\u672c\\u8a9e \\ud83d\\ude00 e\\u0301\", "
                           "\"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x98\x80 e\xCC\x81\"]");
    const json_value *a = json_root(d)->child, *b = a->next;
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->str, b->str, a->len);
    json_doc_free(d);
}

static void json_string_of_every_ascii_byte_round_trips(void **state) {
    (void)state;
    /* Build the escaped form of bytes 0x01..0x7F, parse it, compare, write it. */
    buf in = BUF_INIT;
    char raw[128];
    for (int c = 1; c < 128; c++) raw[c - 1] = (char)c;
    json_write_string(&in, raw, 127);
    assert_false(buf_failed(&in));
    json_doc *d = parse_ok_n(in.data, in.len);
    assert_int_equal(json_root(d)->len, 127);
    assert_memory_equal(json_root(d)->str, raw, 127);
    buf out = BUF_INIT;
    json_write_value(&out, json_root(d));
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    json_doc_free(d);
    buf_free(&in);
    buf_free(&out);
}

/* ------------------------------------------------------------------ */
/* Invalid UTF-8                                                       */

typedef struct utf8_case {
    const char *bytes;
    size_t len;
    const char *what;
} utf8_case;

#define U8(lit, what) {lit, sizeof(lit) - 1, what}
static const utf8_case bad_utf8[] = {
    U8("\x80", "stray continuation"),
    U8("\xBF", "stray continuation"),
    U8("\xC0\x80", "overlong NUL"),
    U8("\xC1\xBF", "overlong 2-byte"),
    U8("\xE0\x80\x80", "overlong 3-byte NUL"),
    U8("\xE0\x9F\xBF", "overlong 3-byte U+07FF"),
    U8("\xF0\x80\x80\x80", "overlong 4-byte NUL"),
    U8("\xF0\x8F\xBF\xBF", "overlong 4-byte U+FFFF"),
    U8("\xED\xA0\x80", "surrogate U+D800"),
    U8("\xED\xAD\xBF", "surrogate U+DB7F"),
    U8("\xED\xB0\x80", "surrogate U+DC00"),
    U8("\xED\xBF\xBF", "surrogate U+DFFF"),
    U8("\xED\xA0\xBD\xED\xB8\x80", "CESU-8 surrogate pair"),
    U8("\xF4\x90\x80\x80", "U+110000"),
    U8("\xF5\x80\x80\x80", "lead F5"),
    U8("\xF7\xBF\xBF\xBF", "lead F7"),
    U8("\xF8\x88\x80\x80\x80", "5-byte form"),
    U8("\xFC\x84\x80\x80\x80\x80", "6-byte form"),
    U8("\xFE", "byte FE"),
    U8("\xFF", "byte FF"),
    U8("\xC3", "truncated 2-byte"),
    U8("\xE2\x82", "truncated 3-byte"),
    U8("\xE2", "truncated 3-byte, lead only"),
    U8("\xF0\x9F\x98", "truncated 4-byte"),
    U8("\xF0\x9F", "truncated 4-byte"),
    U8("\xC3\x28", "bad continuation"),
    U8("\xE2\x28\xA1", "bad continuation"),
    U8("\xF0\x9F\x28\x80", "bad continuation"),
    U8("\xC3\xC3\xA9", "lead then lead"),
};

static void json_rejects_invalid_utf8_in_strings_and_keys(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        const utf8_case *c = &bad_utf8[i];
        char text[64];
        /* In a string value: ["ok<bad>"] ; the error points at the bad sequence. */
        size_t n = 0;
        memcpy(text + n, "[\"ok", 4);
        n += 4;
        memcpy(text + n, c->bytes, c->len);
        n += c->len;
        memcpy(text + n, "\"]", 2);
        n += 2;
        expect_fail_n(text, n, 4, "invalid UTF-8");
        /* In a key. */
        n = 0;
        memcpy(text + n, "{\"", 2);
        n += 2;
        memcpy(text + n, c->bytes, c->len);
        n += c->len;
        memcpy(text + n, "\":1}", 4);
        n += 4;
        expect_fail_n(text, n, 2, "invalid UTF-8");
        /* Outside any string. */
        n = 0;
        memcpy(text + n, "[1,", 3);
        n += 3;
        memcpy(text + n, c->bytes, c->len);
        n += c->len;
        memcpy(text + n, "]", 1);
        n += 1;
        expect_fail_n(text, n, 3, "invalid UTF-8 byte");
        /* The validator agrees. */
        if (json_utf8_valid(c->bytes, c->len)) print_error("accepted: %s\n", c->what);
        assert_false(json_utf8_valid(c->bytes, c->len));
    }
    /* Truncated at the very end of the input, inside an unterminated string. */
    EXPECT_FAIL("\"\xF0\x9F\x98", 1, "invalid UTF-8");
    EXPECT_FAIL("\"\xC3", 1, "invalid UTF-8");
}

static void json_utf8_valid_accepts_boundaries(void **state) {
    (void)state;
    static const utf8_case good[] = {
        U8("", "empty"),
        U8("\x00", "NUL byte"),
        U8("\x7F", "U+007F"),
        U8("\xC2\x80", "U+0080"),
        U8("\xDF\xBF", "U+07FF"),
        U8("\xE0\xA0\x80", "U+0800"),
        U8("\xEC\xBF\xBF", "U+CFFF"),
        U8("\xED\x80\x80", "U+D000"),
        U8("\xED\x9F\xBF", "U+D7FF"),
        U8("\xEE\x80\x80", "U+E000"),
        U8("\xEF\xBF\xBD", "U+FFFD"),
        U8("\xEF\xBF\xBF", "U+FFFF"),
        U8("\xF0\x90\x80\x80", "U+10000"),
        U8("\xF3\xBF\xBF\xBF", "U+FFFFF"),
        U8("\xF4\x80\x80\x80", "U+100000"),
        U8("\xF4\x8F\xBF\xBF", "U+10FFFF"),
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!json_utf8_valid(good[i].bytes, good[i].len)) print_error("rejected: %s\n", good[i].what);
        assert_true(json_utf8_valid(good[i].bytes, good[i].len));
        if (good[i].len == 0 || good[i].bytes[0] == 0) continue;
        /* The parser accepts them inside strings, raw, and keeps the bytes. */
        char text[16] = "\"";
        memcpy(text + 1, good[i].bytes, good[i].len);
        text[good[i].len + 1] = '"';
        json_doc *d = parse_ok_n(text, good[i].len + 2);
        assert_int_equal(json_root(d)->len, good[i].len);
        assert_memory_equal(json_root(d)->str, good[i].bytes, good[i].len);
        json_doc_free(d);
    }
    assert_true(json_utf8_valid(NULL, 0));
}

/* Reference validator: decode by code point, then check the ranges. */
static bool ref_utf8_valid(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (i + n > len) return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n;
    }
    return true;
}

static void json_utf8_valid_matches_reference_on_random_bytes(void **state) {
    (void)state;
    rng_seed(12345);
    /* Bytes drawn from a set rich in boundaries, so valid sequences occur. */
    static const unsigned char pool[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                         0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                         0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    unsigned char s[80];
    int valid = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = rng_below(12);
        size_t pre = (iter & 1) ? rng_below(20) : 0; /* ASCII prefix exercises the 8-byte path */
        for (size_t k = 0; k < pre; k++) s[k] = 'a';
        for (size_t k = 0; k < len; k++) s[pre + k] = pool[rng_below(sizeof pool)];
        bool want = ref_utf8_valid(s, pre + len);
        valid += want;
        assert_int_equal(json_utf8_valid((const char *)s, pre + len), want);
    }
    assert_true(valid > 1000); /* the test did see valid text */
    /* An invalid byte at every position of a long ASCII run. */
    char longs[100];
    for (size_t pos = 0; pos < sizeof longs; pos++) {
        memset(longs, 'x', sizeof longs);
        longs[pos] = (char)0x80;
        assert_false(json_utf8_valid(longs, sizeof longs));
        assert_true(json_utf8_valid(longs, pos));
    }
}

/* ------------------------------------------------------------------ */
/* Numbers                                                             */

static const json_value *num_of(json_doc *d) {
    const json_value *v = json_root(d);
    assert_int_equal(v->type, JSON_NUMBER);
    return v;
}

static void json_number_keeps_raw_text_and_int64(void **state) {
    (void)state;
    struct {
        const char *text;
        bool is_int;
        int64_t i64;
        double num;
    } cases[] = {
        {"0", true, 0, 0.0},
        {"-0", true, 0, -0.0},
        {"7", true, 7, 7.0},
        {"-12", true, -12, -12.0},
        {"9007199254740992", true, 9007199254740992ll, 9007199254740992.0},
        {"-9007199254740992", true, -9007199254740992ll, -9007199254740992.0},
        {"9007199254740993", true, 9007199254740993ll, 9007199254740992.0}, /* ties to even */
        {"9007199254740995", true, 9007199254740995ll, 9007199254740996.0},
        {"-9007199254740993", true, -9007199254740993ll, -9007199254740992.0},
        {"9223372036854775807", true, INT64_MAX, 9223372036854775807.0},
        {"-9223372036854775808", true, INT64_MIN, -9223372036854775808.0},
        {"9223372036854775808", false, 0, 9223372036854775808.0},
        {"-9223372036854775809", false, 0, -9223372036854775809.0},
        {"18446744073709551616", false, 0, 18446744073709551616.0},
        {"123456789012345678901234567890", false, 0, 123456789012345678901234567890.0},
        {"1.0", false, 0, 1.0},
        {"1e2", false, 0, 100.0},
        {"1E+2", false, 0, 100.0},
        {"-1.5e-3", false, 0, -1.5e-3},
        {"0.1", false, 0, 0.1},
        {"0.3", false, 0, 0.3},
        {"-0.0", false, 0, -0.0},
        {"0e5", false, 0, 0.0},
        {"-0E-5", false, 0, -0.0},
        {"1e308", false, 0, 1e308},
        {"1.7976931348623157e308", false, 0, DBL_MAX},
        {"1.7976931348623158e308", false, 0, DBL_MAX},
        {"4.9406564584124654e-324", false, 0, 4.9406564584124654e-324},
        {"2.2250738585072014e-308", false, 0, DBL_MIN},
        {"1e-400", false, 0, 0.0},
        {"-1e-400", false, 0, -0.0},
        {"1e999", false, 0, INFINITY},
        {"-1e999", false, 0, -INFINITY},
        {"1E400", false, 0, INFINITY},
        {"1.8e308", false, 0, INFINITY},
        {"0.000001234", false, 0, 0.000001234},
        {"1234567890123456789", true, 1234567890123456789ll, 1234567890123456789.0},
        {"12345678901234567890", false, 0, 12345678901234567890.0},
        {"1e22", false, 0, 1e22},
        {"1e23", false, 0, 1e23},
        {"9007199254740992e22", false, 0, 9007199254740992e22},
        {"3e37", false, 0, 3e37},
        {"123e30", false, 0, 123e30},
        {"0.30000001192092896", false, 0, 0.30000001192092896},
        {"1000000000000000000000000000000000000000000000000000000000000e-60", false, 0, 1.0},
        {"0.0000000001e10", false, 0, 1.0},
        /* Ties and near-ties beyond 2^53 (the 128-bit integer path). */
        {"4503599627370496.5", false, 0, 4503599627370496.0},
        {"4503599627370497.5", false, 0, 4503599627370498.0},
        {"4503599627370496.51", false, 0, 4503599627370497.0},
        {"4503599627370496.49", false, 0, 4503599627370496.0},
        {"9007199254740993.0", false, 0, 9007199254740992.0},
        {"9007199254740993e1", false, 0, 90071992547409930.0},
        {"18446744073709551615e-1", false, 0, 1844674407370955161.5},
        {"1844674407370955161e27", false, 0, 1844674407370955161e27},
        {"1844674407370955161e-27", false, 0, 1844674407370955161e-27},
        {"0.12345679104328156", false, 0, 0.12345679104328156},
        {"-0.0012345679104328156", false, 0, -0.0012345679104328156},
        {"1.2345679104328156e-05", false, 0, 1.2345679104328156e-05},
        {"9999999999999999999", false, 0, 9999999999999999999.0},
        {"0.9999999999999999999", false, 0, 0.9999999999999999999},
        {"1e-99999999999999999999", false, 0, 0.0},
        {"1e99999999999999999999", false, 0, INFINITY},
        {"0e99999999999999999999", false, 0, 0.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_doc *d = parse_ok_n(cases[i].text, strlen(cases[i].text));
        const json_value *v = num_of(d);
        assert_string_equal(v->str, cases[i].text);
        assert_int_equal(v->len, strlen(cases[i].text));
        if (v->is_int != cases[i].is_int) print_error("is_int of %s\n", cases[i].text);
        assert_int_equal(v->is_int, cases[i].is_int);
        if (cases[i].is_int) assert_int_equal(v->i64, cases[i].i64);
        if (dbits(v->num) != dbits(cases[i].num))
            print_error("%s: got %.17g want %.17g\n", cases[i].text, v->num, cases[i].num);
        assert_int_equal(dbits(v->num), dbits(cases[i].num));
        /* The raw text is what gets written back. */
        buf b = BUF_INIT;
        json_write_value(&b, v);
        assert_string_equal(b.data, cases[i].text);
        buf_free(&b);
        json_doc_free(d);
    }
    assert_rewrites_to("[9007199254740993,-0,1.0,1E+2,1e999,-1e999]",
                       "[9007199254740993,-0,1.0,1E+2,1e999,-1e999]");
}

/* A random decimal in JSON syntax: digits of random lengths, exponents
 * around the fast-path limits. */
static size_t random_number_text(char *out) {
    size_t n = 0;
    if (rng_below(2)) out[n++] = '-';
    int int_digits = (int)rng_below(21);
    if (int_digits == 0) out[n++] = '0';
    for (int k = 0; k < int_digits; k++) out[n++] = (char)('0' + (k == 0 ? 1 + rng_below(9) : rng_below(10)));
    if (rng_below(2)) {
        out[n++] = '.';
        int frac = 1 + (int)rng_below(20);
        for (int k = 0; k < frac; k++) out[n++] = (char)('0' + rng_below(10));
    }
    if (rng_below(2)) {
        out[n++] = rng_below(2) ? 'e' : 'E';
        int r = (int)rng_below(3);
        if (r == 1) out[n++] = '-';
        if (r == 2) out[n++] = '+';
        int e = rng_below(4) == 0 ? (int)rng_below(330) : (int)rng_below(45);
        n += (size_t)sprintf(out + n, "%d", e);
    }
    out[n] = '\0';
    return n;
}

static void json_numbers_are_correctly_rounded(void **state) {
    (void)state;
    rng_seed(777);
    char text[96];
    for (int iter = 0; iter < 400000; iter++) {
        size_t n;
        if (iter % 4 == 3) {
            /* 16..19 significant digits, exponents within +-30: the
             * 128-bit path and its boundaries. Every 8th ends in 5000 to
             * make exact and near ties common. */
            uint64_t m = rng_next() % 10000000000000000000ull;
            if (m < 1000000000000000ull) m += 1000000000000000ull;
            if (iter % 8 == 7) m = m / 10000 * 10000 + 5000;
            n = (size_t)snprintf(text, sizeof text, "%s%llue%d", rng_below(2) ? "-" : "",
                                 (unsigned long long)m, (int)rng_below(61) - 30);
            if (iter % 16 == 15) {
                /* The exact midpoint between two doubles in [2^53, 2^63),
                 * an integer, written plainly or with a fraction point. */
                double a = (double)(rng_next() >> (1 + rng_below(11)));
                if (a < 0x1p53) a += 0x1p53;
                double b = nextafter(a, INFINITY);
                unsigned long long mid = (unsigned long long)a + ((unsigned long long)b - (unsigned long long)a) / 2;
                int point = (int)rng_below(4); /* digits after a decimal point */
                char digits[32];
                int dn = snprintf(digits, sizeof digits, "%llu", mid);
                if (point == 0 || point >= dn) {
                    n = (size_t)snprintf(text, sizeof text, "%s", digits);
                } else {
                    n = (size_t)snprintf(text, sizeof text, "%.*s.%se%d", dn - point, digits,
                                         digits + dn - point, point);
                }
            }
        } else if (iter % 3 == 0) {
            /* A double's own shortest-ish text, as clients send them. */
            uint64_t bits = rng_next();
            double d;
            memcpy(&d, &bits, sizeof d);
            if (!isfinite(d)) continue;
            n = (size_t)snprintf(text, sizeof text, "%.*g", 15 + (int)rng_below(3), d);
            if (strchr(text, 'n') || strchr(text, 'i')) continue;
        } else if (iter % 3 == 1) {
            /* Floats widened to double (numpy float32 .tolist()). */
            float f = (float)((double)rng_next() / 18446744073709551616.0 * 2.0 - 1.0);
            n = (size_t)snprintf(text, sizeof text, "%.17g", (double)f);
        } else {
            n = random_number_text(text);
        }
        json_doc *d = parse_ok_n(text, n);
        const json_value *v = num_of(d);
        double want = strtod(text, NULL);
        if (dbits(v->num) != dbits(want)) print_error("%s: got %.17g want %.17g\n", text, v->num, want);
        assert_int_equal(dbits(v->num), dbits(want));
        assert_string_equal(v->str, text);
        if (v->is_int) {
            assert_null(strpbrk(text, ".eE"));
            assert_int_equal(v->i64, strtoll(text, NULL, 10));
        }
        json_doc_free(d);
    }
}

/* Decimals of 19 digits nearest to (and one unit either side of) the exact
 * midpoints between doubles in [1e-9, 1e-8), written as N e-27: there the
 * 128-bit quotient has only ~65 bits, so some decimals fall within one
 * quotient unit of the midpoint and the remainder alone decides. */
static void json_numbers_near_midpoints_round_correctly(void **state) {
    (void)state;
    rng_seed(4711);
    char text[64];
    for (int iter = 0; iter < 60000; iter++) {
        double a = 1e-9 + (double)(rng_next() >> 11) * 0x1p-53 * 9e-9;
        double b = nextafter(a, INFINITY);
        long double mid = ((long double)a + (long double)b) / 2; /* exact in 64-bit precision */
        char digits[64];
        snprintf(digits, sizeof digits, "%.18Le", mid); /* d.ddd...e-09 */
        if (strstr(digits, "e-09") == NULL) continue;
        char n19[20];
        n19[0] = digits[0];
        memcpy(n19 + 1, digits + 2, 18);
        n19[19] = '\0';
        unsigned long long nv = strtoull(n19, NULL, 10);
        for (int delta = -1; delta <= 1; delta++) {
            size_t n = (size_t)snprintf(text, sizeof text, "%llue-27", nv + (unsigned long long)(long long)delta);
            json_doc *d = parse_ok_n(text, n);
            double want = strtod(text, NULL);
            if (dbits(json_root(d)->num) != dbits(want))
                print_error("%s: got %a want %a\n", text, json_root(d)->num, want);
            assert_int_equal(dbits(json_root(d)->num), dbits(want));
            json_doc_free(d);
        }
    }
}

static void json_rejects_malformed_numbers(void **state) {
    (void)state;
    EXPECT_FAIL("01", 0, "leading zeros");
    EXPECT_FAIL("-01", 1, "leading zeros");
    EXPECT_FAIL("00", 0, "leading zeros");
    EXPECT_FAIL("[1, 007]", 4, "leading zeros");
    EXPECT_FAIL("-", 1, "expected a digit after '-', found end of input");
    EXPECT_FAIL("-x", 1, "expected a digit after '-'");
    EXPECT_FAIL("- 1", 1, "expected a digit after '-'");
    EXPECT_FAIL("1.", 2, "expected a digit after '.'");
    EXPECT_FAIL("1.e5", 2, "expected a digit after '.'");
    EXPECT_FAIL("[1.]", 3, "expected a digit after '.'");
    EXPECT_FAIL(".5", 0, "expected a value");
    EXPECT_FAIL("+1", 0, "expected a value");
    EXPECT_FAIL("1e", 2, "exponent");
    EXPECT_FAIL("1e+", 3, "exponent");
    EXPECT_FAIL("1E-x", 3, "exponent");
    EXPECT_FAIL("0x10", 1, "expected end of input");
    EXPECT_FAIL("1.5.3", 3, "expected end of input");
    EXPECT_FAIL("[1.5.3]", 4, "expected ',' or ']'");
    EXPECT_FAIL("NaN", 0, "NaN is not valid JSON");
    EXPECT_FAIL("[1, NaN]", 4, "NaN is not valid JSON");
    EXPECT_FAIL("Infinity", 0, "Infinity is not valid JSON");
    EXPECT_FAIL("-Infinity", 0, "-Infinity is not valid JSON");
    EXPECT_FAIL("{\"x\": -Infinity}", 6, "-Infinity is not valid JSON");
    EXPECT_FAIL("nan", 1, "expected 'null'");
    EXPECT_FAIL("inf", 0, "expected a value");
    EXPECT_FAIL("-nan", 1, "expected a digit after '-'");
    EXPECT_FAIL("1_000", 1, "expected end of input");
}

/* ------------------------------------------------------------------ */
/* Literals and structure errors                                       */

static void json_rejects_bad_literals(void **state) {
    (void)state;
    EXPECT_FAIL("tru", 3, "expected 'true', found end of input");
    EXPECT_FAIL("trUe", 2, "expected 'true'");
    EXPECT_FAIL("True", 0, "expected a value");
    EXPECT_FAIL("fals", 4, "expected 'false'");
    EXPECT_FAIL("nul", 3, "expected 'null'");
    EXPECT_FAIL("[nulL]", 4, "expected 'null'");
    EXPECT_FAIL("falsey", 5, "expected end of input");
    EXPECT_FAIL("[truex]", 5, "expected ',' or ']'");
    EXPECT_FAIL("None", 0, "expected a value");
    EXPECT_FAIL("undefined", 0, "expected a value");
}

static void json_rejects_trailing_commas(void **state) {
    (void)state;
    EXPECT_FAIL("[1,]", 2, "trailing comma");
    EXPECT_FAIL("[1, 2 , ]", 6, "trailing comma before ']'");
    EXPECT_FAIL("{\"a\":1,}", 6, "trailing comma before '}'");
    EXPECT_FAIL("{\"a\":1 ,\n}", 7, "trailing comma");
    EXPECT_FAIL("[[],]", 3, "trailing comma");
    EXPECT_FAIL("[,1]", 1, "expected a value");
    EXPECT_FAIL("[,]", 1, "expected a value");
    EXPECT_FAIL("[1,,2]", 3, "expected a value");
    EXPECT_FAIL("{,}", 1, "expected '\"' to start an object key");
    EXPECT_FAIL("{\"a\":1,,\"b\":2}", 7, "expected '\"' to start an object key");
}

static void json_rejects_comments(void **state) {
    (void)state;
    EXPECT_FAIL("// c\n1", 0, "comments are not allowed");
    EXPECT_FAIL("/* c */ 1", 0, "comments are not allowed");
    EXPECT_FAIL("[1 /* c */]", 3, "comments are not allowed");
    EXPECT_FAIL("[1, // c\n 2]", 4, "comments are not allowed");
    EXPECT_FAIL("{\"a\": 1 // c\n}", 8, "comments are not allowed");
    EXPECT_FAIL("{/*k*/\"a\":1}", 1, "comments are not allowed");
    EXPECT_FAIL("1 // c", 2, "comments are not allowed");
    EXPECT_FAIL("# c\n1", 0, "expected a value");
}

static void json_rejects_structure_errors(void **state) {
    (void)state;
    EXPECT_FAIL("", 0, "expected a value");
    EXPECT_FAIL(" \n\t ", 4, "expected a value (object, array, string, number, true, false or null), "
                             "found end of input");
    EXPECT_FAIL("[", 1, "expected a value");
    EXPECT_FAIL("[1", 2, "expected ',' or ']' after array element, found end of input");
    EXPECT_FAIL("[1 2]", 3, "expected ',' or ']' after array element, found '2'");
    EXPECT_FAIL("[1:2]", 2, "expected ',' or ']'");
    EXPECT_FAIL("[1}", 2, "expected ',' or ']'");
    EXPECT_FAIL("{", 1, "expected '\"' to start an object key, found end of input");
    EXPECT_FAIL("{\"a\"", 4, "expected ':' after object key");
    EXPECT_FAIL("{\"a\" 1}", 5, "expected ':' after object key, found '1'");
    EXPECT_FAIL("{\"a\"=1}", 4, "expected ':'");
    EXPECT_FAIL("{\"a\":}", 5, "expected a value");
    EXPECT_FAIL("{\"a\":1", 6, "expected ',' or '}' after object member, found end of input");
    EXPECT_FAIL("{\"a\":1 \"b\":2}", 7, "expected ',' or '}' after object member");
    EXPECT_FAIL("{\"a\":1]", 6, "expected ',' or '}'");
    EXPECT_FAIL("{1:2}", 1, "expected '\"' to start an object key, found '1'");
    EXPECT_FAIL("{a:2}", 1, "expected '\"' to start an object key");
    EXPECT_FAIL("{'a':2}", 1, "double quotes");
    EXPECT_FAIL("['a']", 1, "double quotes");
    EXPECT_FAIL("{null:2}", 1, "expected '\"'");
    EXPECT_FAIL("]", 0, "expected a value");
    EXPECT_FAIL("}", 0, "expected a value");
    EXPECT_FAIL(":", 0, "expected a value");
    EXPECT_FAIL("\x01", 0, "control character 0x01");
    EXPECT_FAIL("\x00", 0, "control character 0x00");
    EXPECT_FAIL("[1]\x00", 3, "expected end of input");
}

static void json_rejects_trailing_garbage(void **state) {
    (void)state;
    EXPECT_FAIL("1 2", 2, "expected end of input after the JSON value, found '2'");
    EXPECT_FAIL("{} x", 3, "expected end of input");
    EXPECT_FAIL("[]]", 2, "expected end of input");
    EXPECT_FAIL("{}}", 2, "expected end of input");
    EXPECT_FAIL("\"a\"\"b\"", 3, "expected end of input");
    EXPECT_FAIL("null,", 4, "expected end of input after the JSON value, found ','");
    EXPECT_FAIL("true\n\nfalse", 6, "expected end of input");
    EXPECT_FAIL("[] \xFF", 3, "invalid UTF-8 byte 0xFF");
    EXPECT_FAIL("{}\xC3\xA9", 2, "U+00E9");
    /* Trailing whitespace is fine. */
    json_doc *d = PARSE_OK("{}  \r\n\t ");
    json_doc_free(d);
}

static void json_err_may_be_null(void **state) {
    (void)state;
    json_doc *d = NULL;
    assert_int_equal(json_parse("[1,", 3, &d, NULL), -1);
    assert_null(d);
    assert_int_equal(json_parse("[1]", 3, &d, NULL), 0);
    json_doc_free(d);
    /* A NULL text of length 0 is an empty input. */
    json_error err;
    assert_int_equal(json_parse(NULL, 0, &d, &err), -1);
    assert_int_equal(err.offset, 0);
}

/* ------------------------------------------------------------------ */
/* Nesting                                                             */

static char *nested_arrays(size_t depth, size_t *len) {
    char *s = malloc(depth * 2 + 1);
    assert_non_null(s);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    *len = depth * 2;
    return s;
}

static void json_nesting_at_limit_parses(void **state) {
    (void)state;
    size_t len;
    char *s = nested_arrays(JSON_MAX_DEPTH, &len);
    json_doc *d = parse_ok_n(s, len);
    const json_value *v = json_root(d);
    size_t depth = 1;
    while (v->child) {
        assert_int_equal(v->type, JSON_ARRAY);
        assert_int_equal(v->len, 1);
        v = v->child;
        depth++;
    }
    assert_int_equal(depth, JSON_MAX_DEPTH);
    assert_int_equal(v->len, 0);
    /* Writing it back reproduces it. */
    buf b = BUF_INIT;
    json_write_value(&b, json_root(d));
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, s, len);
    buf_free(&b);
    json_doc_free(d);
    free(s);

    /* Objects at the limit: {"k":{"k":...{"k":1}...}} is 256 objects. */
    buf o = BUF_INIT;
    for (int i = 0; i < JSON_MAX_DEPTH; i++) buf_puts(&o, "{\"k\":");
    buf_puts(&o, "1");
    for (int i = 0; i < JSON_MAX_DEPTH; i++) buf_putc(&o, '}');
    d = parse_ok_n(o.data, o.len);
    json_doc_free(d);
    buf_free(&o);
}

static void json_nesting_past_limit_is_rejected(void **state) {
    (void)state;
    size_t len;
    char *s = nested_arrays(JSON_MAX_DEPTH + 1, &len);
    char want[64];
    snprintf(want, sizeof want, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    expect_fail_n(s, len, JSON_MAX_DEPTH, want);
    free(s);

    /* Mixed containers: 128 x {"a":[ ... ] } plus one more '[' is 257. */
    buf o = BUF_INIT;
    size_t off = 0;
    for (int i = 0; i < JSON_MAX_DEPTH / 2; i++) buf_puts(&o, "{\"a\":[");
    off = o.len;
    buf_puts(&o, "[1]");
    for (int i = 0; i < JSON_MAX_DEPTH / 2; i++) buf_puts(&o, "]}");
    expect_fail_n(o.data, o.len, off, want);
    buf_free(&o);

    /* Hostile depth: a million '[' fail fast with no recursion. */
    size_t big = 1000000;
    s = malloc(big);
    assert_non_null(s);
    memset(s, '[', big);
    expect_fail_n(s, big, JSON_MAX_DEPTH, want);
    free(s);
}

/* ------------------------------------------------------------------ */
/* Large documents and floats                                          */

static void json_parses_huge_float_array(void **state) {
    (void)state;
    rng_seed(4242);
    const size_t n = 200000;
    float *want = malloc(n * sizeof *want);
    float *got = malloc(n * sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    buf b = BUF_INIT;
    buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) buf_putc(&b, ',');
        char tmp[40];
        switch (i % 4) {
        case 0: snprintf(tmp, sizeof tmp, "%.8f", (double)rng_next() / 1.8446744073709552e19 - 0.5); break;
        case 1: snprintf(tmp, sizeof tmp, "%.17g", (double)(float)((double)rng_next() / 1.8e19)); break;
        case 2: snprintf(tmp, sizeof tmp, "%de%d", (int)rng_below(2000) - 1000, (int)rng_below(20) - 10); break;
        default: snprintf(tmp, sizeof tmp, "%.9g", (double)(float)((double)rng_next() / 1e15)); break;
        }
        want[i] = strtof(tmp, NULL);
        buf_puts(&b, tmp);
    }
    buf_putc(&b, ']');
    assert_false(buf_failed(&b));
    json_doc *d = parse_ok_n(b.data, b.len);
    const json_value *r = json_root(d);
    assert_int_equal(r->len, n);
    assert_int_equal(r->src_len, b.len);
    assert_int_equal(json_to_floats(r, got, n), 0);
    for (size_t i = 0; i < n; i++) {
        if (fbits(got[i]) != fbits(want[i])) print_error("element %zu: %.9g vs %.9g\n", i, got[i], want[i]);
        assert_int_equal(fbits(got[i]), fbits(want[i]));
    }
    /* Re-serialization is byte-identical (the input was already minified). */
    buf out = BUF_INIT;
    json_write_value(&out, r);
    assert_int_equal(out.len, b.len);
    assert_memory_equal(out.data, b.data, b.len);
    buf_free(&out);
    json_doc_free(d);
    buf_free(&b);
    free(want);
    free(got);
}

static void json_parses_large_object_and_long_strings(void **state) {
    (void)state;
    buf b = BUF_INIT;
    buf_putc(&b, '{');
    for (int i = 0; i < 20000; i++) buf_printf(&b, "%s\"key%d\":%d", i ? "," : "", i, i);
    /* A long string: 3 MB of mixed ASCII, escapes and multibyte text. */
    buf_puts(&b, ",\"long\":\"");
    for (int i = 0; i < 100000; i++) buf_puts(&b, "abc\\n\\u00e9\xE6\x97\xA5\\ud83d\\ude00");
    buf_puts(&b, "\"}");
    json_doc *d = parse_ok_n(b.data, b.len);
    const json_value *r = json_root(d);
    assert_int_equal(r->len, 20001);
    assert_int_equal(json_get(r, "key0")->i64, 0);
    assert_int_equal(json_get(r, "key19999")->i64, 19999);
    const json_value *l = json_get(r, "long");
    assert_int_equal(l->len, 100000 * (3 + 1 + 2 + 3 + 4));
    assert_memory_equal(l->str, "abc\n\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80" "abc", 16);
    assert_int_equal(l->str[l->len], 0);
    json_doc_free(d);
    buf_free(&b);
}

static void json_to_floats_checks_shape(void **state) {
    (void)state;
    float out[4] = {9, 9, 9, 9};
    json_doc *d = PARSE_OK("[1, -2.5, 1e999, 3.4028236e38]");
    const json_value *r = json_root(d);
    assert_int_equal(json_to_floats(r, out, 4), 0);
    assert_true(out[0] == 1.0f && out[1] == -2.5f);
    assert_true(isinf(out[2]) && out[2] > 0); /* non-finite left for the caller */
    assert_true(isinf(out[3]));               /* beyond FLT_MAX rounds to inf */
    assert_int_equal(json_to_floats(r, out, 3), -1);
    assert_int_equal(json_to_floats(r, out, 5), -1);
    assert_int_equal(json_to_floats(NULL, out, 0), -1);
    assert_int_equal(json_to_floats(r->child, out, 1), -1); /* not an array */
    json_doc_free(d);

    d = PARSE_OK("[1, \"2\", 3]");
    assert_int_equal(json_to_floats(json_root(d), out, 3), -1);
    json_doc_free(d);
    d = PARSE_OK("[1, [2], 3]");
    assert_int_equal(json_to_floats(json_root(d), out, 3), -1);
    json_doc_free(d);
    d = PARSE_OK("[1, null]");
    assert_int_equal(json_to_floats(json_root(d), out, 2), -1);
    json_doc_free(d);
    d = PARSE_OK("{\"a\":1}");
    assert_int_equal(json_to_floats(json_root(d), out, 1), -1);
    json_doc_free(d);
    d = PARSE_OK("[]");
    assert_int_equal(json_to_floats(json_root(d), out, 0), 0);
    assert_int_equal(json_to_floats(json_root(d), NULL, 0), 0);
    json_doc_free(d);
}

static void json_to_floats_rounds_once(void **state) {
    (void)state;
    /* 1 + 2^-24 is halfway between the floats 1 and 1 + 2^-23. A decimal a
     * hair above it rounds (as a double) to the midpoint itself; a naive
     * (float)double then ties to even (1.0), but the decimal rounds to
     * 1 + 2^-23. Likewise just below rounds down. */
    json_doc *d = PARSE_OK("[1.00000005960464477539062500001, 1.00000005960464477539062499999,"
                           " 1.000000059604644775390625, 1.000000178813934326171875,"
                           " 7.00649232162408535461864791644958065640130970938257885878534141944895541342930300743319094181060791015625e-46,"
                           " 7.0064923216240854e-46, 1e-46, 1.4e-45, 3.40282356779733661637539395458142568448e38]");
    float out[9];
    assert_int_equal(json_to_floats(json_root(d), out, 9), 0);
    assert_int_equal(fbits(out[0]), fbits(1.0f + 0x1p-23f));
    assert_int_equal(fbits(out[1]), fbits(1.0f));
    assert_int_equal(fbits(out[2]), fbits(1.0f));              /* exact tie: to even */
    assert_int_equal(fbits(out[3]), fbits(1.0f + 0x1p-22f));   /* exact tie 1+3*2^-24 -> even */
    assert_int_equal(fbits(out[4]), fbits(0.0f));              /* exactly half of 2^-149: to even (0) */
    assert_int_equal(fbits(out[5]), fbits(0x1p-149f));         /* a bit above half */
    assert_int_equal(fbits(out[6]), fbits(0.0f));
    assert_int_equal(fbits(out[7]), fbits(0x1p-149f));
    assert_true(isinf(out[8]));                                /* FLT_MAX + half ulp: ties away to inf */
    for (int i = 0; i < 9; i++) {
        const json_value *e = json_root(d)->child;
        for (int k = 0; k < i; k++) e = e->next;
        assert_int_equal(fbits(out[i]), fbits(strtof(e->str, NULL)));
    }
    json_doc_free(d);
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */

/* ------------------------------------------------------------------ */
/* Float arrays (json_parse_ex)                                        */

/* Parses text (exact-size copy, freed before use) with "vector" arrays of
 * objects at the depths in `depths` read as floats. */
static int parse_ex_exact(const char *text, size_t len, uint32_t depths, uint32_t hint, json_doc **doc,
                          json_error *err) {
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, text, len);
    json_parse_options opts = {.float_key = "vector", .float_depths = depths, .float_count_hint = hint};
    int rc = json_parse_ex(copy, len, &opts, doc, err);
    memset(copy, 0xAA, len);
    free(copy);
    return rc;
}

static json_doc *parse_ex_ok(const char *text, uint32_t depths, uint32_t hint) {
    json_doc *doc = NULL;
    json_error err;
    int rc = parse_ex_exact(text, strlen(text), depths, hint, &doc, &err);
    if (rc != 0) print_error("%s: unexpected failure at %zu: %s\n", text, err.offset, err.message);
    assert_int_equal(rc, 0);
    return doc;
}

static char *write_minified(const json_value *v) {
    buf b = BUF_INIT;
    json_write_value(&b, v);
    assert_false(buf_failed(&b));
    return buf_steal(&b);
}

static void json_parse_ex_reads_vectors_as_floats(void **state) {
    (void)state;
    const char *text = "{\"documents\": [{\"id\": 1, \"vector\": [1, -2.5 ,0.1,\n3e-3\t, -0],"
                       " \"attributes\": {\"vector\": [1, 2], \"x\": 1}}, {\"vector\": []}], \"vector\": [7]}";
    json_doc *d = parse_ex_ok(text, 1u << 2, 0);
    const json_value *root = json_root(d);
    const json_value *doc0 = json_get(root, "documents")->child;
    const json_value *vec = json_get(doc0, "vector");
    assert_int_equal(vec->type, JSON_ARRAY);
    assert_int_equal(vec->len, 5);
    assert_null(vec->child);
    const float *f = json_floats(vec);
    assert_non_null(f);
    const float want[5] = {1.0f, -2.5f, 0.1f, 3e-3f, -0.0f};
    for (int i = 0; i < 5; i++) assert_int_equal(fbits(f[i]), fbits(want[i]));
    assert_memory_equal(text + vec->src_off, "[1, -2.5 ,0.1,\n3e-3\t, -0]", vec->src_len);
    float out[5];
    assert_int_equal(json_to_floats(vec, out, 5), 0);
    assert_memory_equal(out, want, sizeof out);
    assert_int_equal(json_to_floats(vec, out, 4), -1);
    /* Other "vector" members stay trees: an attribute (depth 3), an empty
     * array, the root's (depth 0 is not asked for). */
    const json_value *attr_vec = json_get(json_get(doc0, "attributes"), "vector");
    assert_null(json_floats(attr_vec));
    assert_int_equal(attr_vec->child->i64, 1);
    const json_value *empty = json_get(doc0->next, "vector");
    assert_int_equal(empty->type, JSON_ARRAY);
    assert_int_equal(empty->len, 0);
    assert_null(json_floats(empty));
    assert_null(json_floats(json_get(root, "vector")));
    assert_null(json_floats(root));
    assert_null(json_floats(NULL));
    /* The writer writes a float array's values. */
    char *w = write_minified(doc0);
    assert_string_equal(w, "{\"id\":1,\"vector\":[1,-2.5,0.1,0.003,-0],\"attributes\":{\"vector\":[1,2],\"x\":1}}");
    free(w);
    json_doc_free(d);

    /* Depth 0: a query or an import line. Without options: a tree. */
    d = parse_ex_ok("{\"vector\": [0.5, 2]}", 1u << 0, 2);
    assert_non_null(json_floats(json_get(json_root(d), "vector")));
    json_doc_free(d);
    static const json_parse_options none[3] = {{NULL, 1, 0}, {"", 1, 0}, {"vector", 0, 0}};
    for (int i = 0; i < 3; i++) {
        json_doc *t = NULL;
        assert_int_equal(json_parse_ex("{\"vector\": [0.5]}", 17, &none[i], &t, NULL), 0);
        assert_null(json_floats(json_get(json_root(t), "vector")));
        json_doc_free(t);
    }
    json_doc *t = NULL;
    assert_int_equal(json_parse_ex("{\"vector\": [0.5]}", 17, NULL, &t, NULL), 0);
    assert_null(json_floats(json_get(json_root(t), "vector")));
    json_doc_free(t);
}

/* Long arrays with hints below, at and above their length: the buffer
 * grows in place or moves, and the values stay in order. */
static void json_parse_ex_float_buffer_grows(void **state) {
    (void)state;
    static const uint32_t counts[] = {1, 2, 15, 16, 17, 128, 129, 1000, 100000};
    static const uint32_t hints[] = {0, 1, 7, 128, 1000, 200000};
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        buf b = BUF_INIT;
        /* Two vectors and strings between them, so a growing buffer is
         * not always the arena's last allocation. */
        for (int k = 0; k < 2; k++) {
            buf_puts(&b, k ? ",\"vector\":[" : "{\"a\":\"x\",\"vector\":[");
            for (uint32_t i = 0; i < counts[c]; i++) buf_printf(&b, "%s%u.5", i ? "," : "", i + 1000 * k);
            buf_puts(&b, "]");
        }
        buf_puts(&b, ",\"z\":\"end\"}");
        for (size_t h = 0; h < sizeof hints / sizeof *hints; h++) {
            json_doc *d = NULL;
            json_error err;
            assert_int_equal(parse_ex_exact(b.data, b.len, 1u << 0, hints[h], &d, &err), 0);
            int k = 0;
            for (const json_value *m = json_root(d)->child; m; m = m->next) {
                if (strcmp(m->key, "vector") != 0) continue;
                const float *f = json_floats(m);
                assert_non_null(f);
                assert_int_equal(m->len, counts[c]);
                for (uint32_t i = 0; i < counts[c]; i++) assert_true(f[i] == (float)(i + 1000 * k) + 0.5f);
                k++;
            }
            assert_int_equal(k, 2);
            assert_string_equal(json_get(json_root(d), "z")->str, "end");
            json_doc_free(d);
        }
        buf_free(&b);
    }
}

/* Whatever the float path does not take is parsed as before: same
 * acceptance, same error offset and message, same tree. */
static void json_parse_ex_leaves_the_rest_to_the_tree(void **state) {
    (void)state;
    char long_number[128];
    snprintf(long_number, sizeof long_number, "[0.%s]",
             "12345678901234567890123456789012345678901234567890123456789012345678901234567890");
    const char *vectors[] = {
        "[1,\"2\",3]", "[1,null]", "[1,[2]]", "[1,{}]", "[true]", "[NaN]", "[1, NaN]", "[Infinity]",
        "[-Infinity]", "[1e39]", "[-3.5e38]", "[1e999]", "[3.40282357e38]", "[01]", "[1.]", "[1e]",
        "[-]", "[1,]", "[1 2]", "[1", "[1,", "[", "[1]x", "[1.5x]", "[+1]", "[.5]", "[1,,2]",
        "[1;2]", "[1\x01]", "[0x10]", "[1e+]", "[-0.]", "[ ]", "[]", long_number,
        "[1,2,3e999999999999]", "[1, 2, \"\xff\"]", "[1/*c*/]",
    };
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        char text[256];
        int n = snprintf(text, sizeof text, "{\"id\": \"a\", \"vector\": %s}", vectors[i]);
        json_doc *plain = NULL, *ex = NULL;
        json_error e1, e2;
        memset(&e1, 0, sizeof e1);
        memset(&e2, 0, sizeof e2);
        int r1 = parse_exact(text, (size_t)n, &plain, &e1);
        int r2 = parse_ex_exact(text, (size_t)n, 1u << 0, 3, &ex, &e2);
        if (r1 != r2 || (r1 != 0 && (e1.offset != e2.offset || strcmp(e1.message, e2.message) != 0)))
            print_error("%s: json_parse %d at %zu \"%s\", json_parse_ex %d at %zu \"%s\"\n", text, r1,
                        e1.offset, e1.message, r2, e2.offset, e2.message);
        assert_int_equal(r1, r2);
        if (r1 != 0) {
            assert_int_equal(e1.offset, e2.offset);
            assert_string_equal(e1.message, e2.message);
            continue;
        }
        assert_null(json_floats(json_get(json_root(ex), "vector")));
        char *w1 = write_minified(json_root(plain)), *w2 = write_minified(json_root(ex));
        assert_string_equal(w1, w2);
        free(w1);
        free(w2);
        json_doc_free(plain);
        json_doc_free(ex);
    }
    /* The "NaN" message is the tree's, at the same offset. */
    json_doc *d = NULL;
    json_error err;
    assert_int_equal(parse_ex_exact("{\"vector\":[1,NaN]}", 18, 1, 0, &d, &err), -1);
    assert_int_equal(err.offset, 13);
    assert_non_null(strstr(err.message, "NaN is not valid JSON"));
}

/* One text in a float array: the value must be strtof's (the correctly
 * rounded float32), bit for bit; a text that is not a finite float32 must
 * leave the array to the tree. Returns 1 when strtof and (float)strtod
 * disagree on it (double rounding), else 0. */
static int check_float_text(const char *number) {
    char text[160];
    int n = snprintf(text, sizeof text, "{\"vector\":[%s]}", number);
    assert_true(n > 0 && (size_t)n < sizeof text);
    json_doc *d = parse_ex_ok(text, 1u << 0, 1);
    const json_value *v = json_get(json_root(d), "vector");
    float want = strtof(number, NULL);
    float via_double = (float)strtod(number, NULL);
    const float *f = json_floats(v);
    if (isfinite(want) && strlen(number) <= 63) {
        if (f == NULL || fbits(f[0]) != fbits(want))
            print_error("%s: got %a, want %a\n", number, f ? (double)f[0] : NAN, (double)want);
        assert_non_null(f);
        assert_int_equal(fbits(f[0]), fbits(want));
    } else if (!isfinite(want)) {
        assert_null(f);
    }
    if (f == NULL) assert_int_equal(fbits(json_number_float(v->child)), fbits(want));
    json_doc_free(d);
    return fbits(want) != fbits(via_double);
}

static void json_float_arrays_round_like_strtof(void **state) {
    (void)state;
    static const char *const edges[] = {
        "0", "-0", "0.0", "-0.0e5", "1", "-1", "0.1", "0.2", "0.3", "1e-45", "1.4e-45", "1.401298464324817e-45",
        "7.006492321624085e-46", "7.0064923216240854e-46", "7.006492321624086e-46", "1e-46", "1e-50", "1e-400",
        "1.1754942e-38", "1.17549435e-38", "1.1754943508222875e-38", "1.17549421e-38", "3.4028234e38",
        "3.40282346638528859811704183484516925440e38", "3.4028235e38", "3.40282356e38",
        "3.4028235677973362e38", "3.4028235677973366e38", "-3.4028235677973362e38",
        "1.00000005960464477539062500001", "1.00000005960464477539062499999", "1.000000059604644775390625",
        "1.000000178813934326171875", "1.000000178813934326", "1.000000178813934327", "16777216",
        "16777217", "16777218", "16777219", "33554431", "33554433", "9007199254740993", "123456789012345678",
        "1234567890123456789", "12345678901234567890", "0.12345678901234567890123", "1e22", "1e23", "1e37",
        "1e38", "9.999999e37", "4.2e-39", "2.35098856151472858e-38", "0.000000000000000000001",
        "6103515625e-24", "1e-27", "1e27", "123e-28", "8388608.5", "8388609.5", "0.99999997", "0.99999998",
        "0.999999970198", "1e0", "1E+0", "1e-0", "-1.5e-7", "5e-324", "2.2250738585072014e-308",
        "1.7976931348623157e308", "4503599627370496.5", "-9223372036854775808", "18446744073709551616",
    };
    int double_rounding = 0;
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) double_rounding += check_float_text(edges[i]);
    /* "1.000000178813934326" rounds to a float midpoint as a double, so
     * (float)strtod ties to even; the decimal is below the midpoint. */
    assert_true(double_rounding >= 3);

    rng_seed(31337);
    char number[96];
    int disagreements = 0;
    for (int iter = 0; iter < 300000; iter++) {
        switch (iter % 6) {
        case 0: random_number_text(number); break;
        case 1: {
            /* A random float32 (any exponent) in %.9g, %.8g or %.17g. */
            uint32_t bits = (uint32_t)rng_next();
            float f;
            memcpy(&f, &bits, sizeof f);
            if (!isfinite(f)) continue;
            static const int digits[3] = {9, 8, 17};
            snprintf(number, sizeof number, "%.*g", digits[rng_below(3)], (double)f);
            break;
        }
        case 2: snprintf(number, sizeof number, "%.6f", (double)rng_next() / 1.8e19 - 0.5); break;
        case 3: {
            /* 19 significant digits next to the midpoint of two floats:
             * mostly rounds to the midpoint as a double. */
            uint32_t bits = (uint32_t)rng_next() & 0x7FFFFFFFu;
            float f;
            memcpy(&f, &bits, sizeof f);
            if (!isfinite(f) || f == FLT_MAX) continue;
            double mid = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
            char digits[64];
            snprintf(digits, sizeof digits, "%.18e", mid);
            char *e = strchr(digits, 'e');
            int last = e[-1] - '0' + (int)rng_below(3) - 1;
            if (last < 0 || last > 9) continue;
            e[-1] = (char)('0' + last);
            snprintf(number, sizeof number, "%s%s", rng_below(2) ? "-" : "", digits);
            break;
        }
        case 4: {
            /* Float32 values widened to double, in [-1, 1), as numpy sends them. */
            float f = (float)((double)rng_next() / 18446744073709551616.0 * 2.0 - 1.0);
            snprintf(number, sizeof number, "%.17g", (double)f);
            break;
        }
        default:
            /* Short decimals with exponents around float32's range. */
            snprintf(number, sizeof number, "%llue%d", (unsigned long long)(rng_next() % 100000000ull),
                     (int)rng_below(100) - 55);
            break;
        }
        disagreements += check_float_text(number);
    }
    /* Double rounding happens (the midpoint cases): the float path gave
     * strtof's value every time, where (float)strtod would not have. */
    print_message("float arrays: %d of 300000 random decimals round differently through a double\n",
                  disagreements);
    assert_true(disagreements > 0);
}

static void json_rejects_text_longer_than_the_limit(void **state) {
    (void)state;
    json_doc *d = (json_doc *)&d;
    json_error err;
    /* Never read: the length alone is refused. */
    assert_int_equal(json_parse("{}", JSON_MAX_TEXT_BYTES + 1, &d, &err), -1);
    assert_null(d);
    assert_non_null(strstr(err.message, "JSON text longer than"));
}

static void json_write_string_escapes_minimally(void **state) {
    (void)state;
    buf b = BUF_INIT;
    const char in[] = "a\"b\\c/d\x01\x1f\x7f\b\f\n\r\t\x00\xC3\xA9\xF0\x9F\x98\x80";
    json_write_string(&b, in, sizeof in - 1);
    const char want[] = "\"a\\\"b\\\\c/d\\u0001\\u001f\x7f\\b\\f\\n\\r\\t\\u0000\xC3\xA9\xF0\x9F\x98\x80\"";
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.data, want, sizeof want);
    buf_reset(&b);
    json_write_string(&b, "", 0);
    assert_string_equal(b.data, "\"\"");
    buf_reset(&b);
    /* Every control byte: \b \t \n \f \r by name, the rest as \u00XX. */
    for (int c = 0; c < 0x20; c++) {
        char ch = (char)c;
        buf_reset(&b);
        json_write_string(&b, &ch, 1);
        char want1[16];
        switch (c) {
        case '\b': strcpy(want1, "\"\\b\""); break;
        case '\t': strcpy(want1, "\"\\t\""); break;
        case '\n': strcpy(want1, "\"\\n\""); break;
        case '\f': strcpy(want1, "\"\\f\""); break;
        case '\r': strcpy(want1, "\"\\r\""); break;
        default: snprintf(want1, sizeof want1, "\"\\u%04x\"", c);
        }
        assert_string_equal(b.data, want1);
        json_doc *d = parse_ok_n(b.data, b.len);
        assert_int_equal(json_root(d)->len, 1);
        assert_int_equal(json_root(d)->str[0], ch);
        json_doc_free(d);
    }
    /* Invalid UTF-8 is the caller's business: written byte for byte. */
    buf_reset(&b);
    json_write_string(&b, "\xFF", 1);
    assert_string_equal(b.data, "\"\xFF\"");
    buf_free(&b);
}

static void json_write_value_minifies(void **state) {
    (void)state;
    assert_rewrites_to(" { \"a\" : [ 1 , 2.50 , -0.0e0 ] ,\n\t\"b\" : { } , \"c\" : [ ] , \"d\" : \"x y\" ,"
                       " \"e\" : true , \"f\" : false , \"g\" : null } ",
                       "{\"a\":[1,2.50,-0.0e0],\"b\":{},\"c\":[],\"d\":\"x y\",\"e\":true,\"f\":false,"
                       "\"g\":null}");
    assert_rewrites_to("{\"k\\n\\\"ey\":\"v\\u0001\"}", "{\"k\\n\\\"ey\":\"v\\u0001\"}");
    assert_rewrites_to("[[[[]]],{\"\":{\"\":[]}}]", "[[[[]]],{\"\":{\"\":[]}}]");
    assert_rewrites_to("\"\\u00e9\\/\"", "\"\xC3\xA9/\"");
    buf b = BUF_INIT;
    json_write_value(&b, NULL);
    assert_string_equal(b.data, "null");
    buf_free(&b);
}

static void json_write_value_handles_hand_built_values(void **state) {
    (void)state;
    json_value num = {.type = JSON_NUMBER, .num = 0.5};
    json_value str = {.type = JSON_STRING};
    json_value arr = {.type = JSON_ARRAY, .len = 2, .child = &num};
    num.next = &str;
    buf b = BUF_INIT;
    json_write_value(&b, &arr);
    assert_string_equal(b.data, "[0.5,\"\"]");
    buf_free(&b);
}

static void assert_float_text(float f, const char *want) {
    buf b = BUF_INIT;
    json_write_float(&b, f);
    if (strcmp(b.data, want) != 0) print_error("float %.9g: got %s want %s\n", f, b.data, want);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void json_write_float_known_values(void **state) {
    (void)state;
    assert_float_text(0.0f, "0");
    assert_float_text(-0.0f, "-0");
    assert_float_text(1.0f, "1");
    assert_float_text(-2.5f, "-2.5");
    assert_float_text(0.1f, "0.1");
    assert_float_text(0.3f, "0.3");
    assert_float_text(1.0f / 3.0f, "0.33333334");
    assert_float_text(16777216.0f, "16777216");
    assert_float_text(16777217.0f, "16777216");
    assert_float_text(1e-7f, "1e-07");
    assert_float_text(123456.0f, "123456");
    assert_float_text(1234567.0f, "1234567");
    assert_float_text(123456792.0f, "123456792"); /* %.8g "1.2345679e+08" round-trips but is longer */
    assert_float_text(1e10f, "1e+10");
    assert_float_text(-1.5e-10f, "-1.5e-10");
    assert_float_text(FLT_MAX, "3.4028235e+38");
    assert_float_text(FLT_MIN, "1.1754944e-38");
    assert_float_text(0x1p-149f, "1.4013e-45");
    assert_float_text(INFINITY, "null");
    assert_float_text(-INFINITY, "null");
    assert_float_text(NAN, "null");
}

static void json_write_float_round_trips_random_floats(void **state) {
    (void)state;
    rng_seed(99);
    const size_t n = 200000;
    float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    assert_non_null(in);
    assert_non_null(out);
    buf b = BUF_INIT;
    buf_putc(&b, '[');
    size_t count = 0;
    while (count < n) {
        float f;
        uint32_t bits = (uint32_t)rng_next();
        if (count % 3 == 1) {
            f = (float)((double)(int32_t)bits / 2147483648.0); /* typical embedding values */
        } else {
            memcpy(&f, &bits, sizeof f); /* every exponent, subnormals too */
        }
        if (!isfinite(f)) continue;
        if (count) buf_putc(&b, ',');
        size_t before = b.len;
        json_write_float(&b, f);
        /* Never longer than %.9g. */
        char nine[48];
        int nine_len = snprintf(nine, sizeof nine, "%.9g", (double)f);
        assert_true(b.len - before <= (size_t)nine_len);
        in[count++] = f;
    }
    buf_putc(&b, ']');
    assert_false(buf_failed(&b));
    json_doc *d = parse_ok_n(b.data, b.len);
    assert_int_equal(json_to_floats(json_root(d), out, n), 0);
    for (size_t i = 0; i < n; i++) {
        if (fbits(in[i]) != fbits(out[i])) print_error("float %zu: %a -> %a\n", i, in[i], out[i]);
        assert_int_equal(fbits(in[i]), fbits(out[i]));
    }
    json_doc_free(d);
    buf_free(&b);
    free(in);
    free(out);
}

static void json_write_double_round_trips(void **state) {
    (void)state;
    buf b = BUF_INIT;
    json_write_double(&b, 0.1);
    assert_string_equal(b.data, "0.1");
    buf_reset(&b);
    json_write_double(&b, -0.0);
    assert_string_equal(b.data, "-0");
    buf_reset(&b);
    json_write_double(&b, 1e308);
    assert_string_equal(b.data, "1e+308");
    buf_reset(&b);
    json_write_double(&b, 9007199254740993.0);
    assert_string_equal(b.data, "9007199254740992");
    buf_reset(&b);
    json_write_double(&b, 12345678901234560.0); /* %.16g round-trips, %.17g is shorter */
    assert_string_equal(b.data, "12345678901234560");
    buf_reset(&b);
    json_write_double(&b, 0.1 + 0.2);
    assert_string_equal(b.data, "0.30000000000000004");
    buf_reset(&b);
    json_write_double(&b, INFINITY);
    json_write_double(&b, NAN);
    assert_string_equal(b.data, "nullnull");
    buf_reset(&b);

    rng_seed(2024);
    for (int i = 0; i < 100000; i++) {
        uint64_t bits = rng_next();
        double x;
        memcpy(&x, &bits, sizeof x);
        if (i % 2) x = (double)(int64_t)bits / 9.2e18;
        if (!isfinite(x)) continue;
        buf_reset(&b);
        json_write_double(&b, x);
        json_doc *d = parse_ok_n(b.data, b.len);
        assert_int_equal(json_root(d)->type, JSON_NUMBER);
        if (dbits(json_root(d)->num) != dbits(x)) print_error("%a -> %s\n", x, b.data);
        assert_int_equal(dbits(json_root(d)->num), dbits(x));
        json_doc_free(d);
    }
    buf_free(&b);
}

/* Switches LC_NUMERIC to a decimal-comma locale: an installed one, or one
 * compiled with localedef into a temp dir (found through LOCPATH). Returns
 * false when neither is possible here. *tmpdir is set when one was built. */
static bool use_comma_locale(char *tmpdir, size_t tmpdir_size) {
    tmpdir[0] = '\0';
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (setlocale(LC_NUMERIC, names[i]) && localeconv()->decimal_point[0] == ',') return true;
    if (access("/usr/share/i18n/locales/de_DE", R_OK) != 0) return false;
    const char *base = getenv("TDB_TEST_TMP");
    char cmd[1024];
    if (base) {
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", base);
        if (system(cmd) != 0) return false;
    }
    snprintf(tmpdir, tmpdir_size, "%s/json-locale-XXXXXX", base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        tmpdir[0] = '\0';
        return false;
    }
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1", tmpdir);
    int rc = system(cmd); /* exit 1 means "warnings", the locale is still written */
    (void)rc;
    setenv("LOCPATH", tmpdir, 1);
    bool ok = setlocale(LC_NUMERIC, "de_DE.UTF-8") && localeconv()->decimal_point[0] == ',';
    unsetenv("LOCPATH");
    return ok;
}

static void json_ignores_application_locale(void **state) {
    (void)state;
    char tmpdir[512];
    bool ok = use_comma_locale(tmpdir, sizeof tmpdir);
    if (ok) {
        char check[32];
        snprintf(check, sizeof check, "%.1f", 0.5);
        ok = strcmp(check, "0,5") == 0; /* the locale really is in effect */
    }
    buf b = BUF_INIT;
    double num = 0, slow = 0;
    float fl[2] = {0, 0};
    if (ok) {
        json_write_float(&b, 0.5f);
        buf_putc(&b, ' ');
        json_write_double(&b, 2.25);
        buf_putc(&b, ' ');
        json_write_float(&b, 1.0f / 3.0f);
        json_doc *d = PARSE_OK("[1.5, 0.30000001192092896, 1.00000005960464477539062500001]");
        const json_value *r = json_root(d);
        num = r->child->num;
        slow = r->child->next->num; /* 17 digits: the strtod path */
        float out[3];
        assert_int_equal(json_to_floats(r, out, 3), 0);
        fl[0] = out[1];
        fl[1] = out[2]; /* the strtof path */
        json_doc_free(d);
    }
    setlocale(LC_NUMERIC, "C");
    if (tmpdir[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        assert_int_equal(system(cmd), 0);
    }
    if (!ok) {
        buf_free(&b);
        skip(); /* no decimal-comma locale available on this machine */
    }
    assert_string_equal(b.data, "0.5 2.25 0.33333334");
    assert_true(num == 1.5);
    assert_true(slow == 0.30000001192092896);
    assert_true(fl[0] == 0.30000001192092896f);
    assert_true(fl[1] == 1.0f + 0x1p-23f);
    buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Robustness                                                          */

static void json_survives_random_mutations(void **state) {
    (void)state;
    static const char seed_doc[] =
        "{\"id\":\"doc-1\",\"vector\":[0.25,-1e-3,3E+2,0],\"attributes\":{\"name\":\"caf\xC3\xA9 "
        "\\ud83d\\ude00\",\"n\":-12,\"ok\":true,\"nil\":null,\"tags\":[\"a\",\"b\\n\"],"
        "\"deep\":[[[{}]]]}}";
    static const char alphabet[] = "{}[]\",:\\/ \t\n0123456789-+.eEabfnrtu\x00\x1f\x7f\x80\xC3\xED\xF0\xFF";
    rng_seed(31337);
    char text[sizeof seed_doc + 16];
    int parsed = 0;
    for (int iter = 0; iter < 30000; iter++) {
        size_t len = sizeof seed_doc - 1;
        memcpy(text, seed_doc, len);
        int edits = 1 + (int)rng_below(3);
        for (int k = 0; k < edits; k++) {
            size_t pos = rng_below((uint32_t)len);
            char c = alphabet[rng_below(sizeof alphabet - 1)];
            switch (rng_below(3)) {
            case 0: text[pos] = c; break;                                   /* replace */
            case 1: memmove(text + pos, text + pos + 1, len - pos - 1); len--; break; /* delete */
            default:
                if (len < sizeof text) { memmove(text + pos + 1, text + pos, len - pos); text[pos] = c; len++; }
            }
        }
        json_doc *d = NULL;
        json_error err;
        if (parse_exact(text, len, &d, &err) == 0) {
            parsed++;
            assert_true(json_utf8_valid(text, len));
            /* write -> parse -> write is a fixed point. */
            buf a = BUF_INIT, b2 = BUF_INIT;
            json_write_value(&a, json_root(d));
            json_doc *d2 = parse_ok_n(a.data, a.len);
            json_write_value(&b2, json_root(d2));
            assert_int_equal(a.len, b2.len);
            assert_memory_equal(a.data, b2.data, a.len);
            buf_free(&a);
            buf_free(&b2);
            json_doc_free(d2);
            json_doc_free(d);
        } else {
            assert_null(d);
            assert_true(err.offset <= len);
            assert_true(err.message[0] != '\0');
        }
    }
    assert_true(parsed > 100);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_parses_scalars_at_root),
        cmocka_unit_test(json_builds_tree_with_spans),
        cmocka_unit_test(json_get_returns_last_duplicate_key),
        cmocka_unit_test(json_accepts_only_four_whitespace_bytes),
        cmocka_unit_test(json_decodes_every_escape),
        cmocka_unit_test(json_string_holds_u0000),
        cmocka_unit_test(json_decodes_surrogate_pairs),
        cmocka_unit_test(json_rejects_lone_surrogates),
        cmocka_unit_test(json_rejects_bad_escapes),
        cmocka_unit_test(json_rejects_raw_control_chars_in_strings),
        cmocka_unit_test(json_rejects_unterminated_strings),
        cmocka_unit_test(json_round_trips_unicode_byte_for_byte),
        cmocka_unit_test(json_string_of_every_ascii_byte_round_trips),
        cmocka_unit_test(json_rejects_invalid_utf8_in_strings_and_keys),
        cmocka_unit_test(json_utf8_valid_accepts_boundaries),
        cmocka_unit_test(json_utf8_valid_matches_reference_on_random_bytes),
        cmocka_unit_test(json_number_keeps_raw_text_and_int64),
        cmocka_unit_test(json_numbers_are_correctly_rounded),
        cmocka_unit_test(json_numbers_near_midpoints_round_correctly),
        cmocka_unit_test(json_rejects_malformed_numbers),
        cmocka_unit_test(json_rejects_bad_literals),
        cmocka_unit_test(json_rejects_trailing_commas),
        cmocka_unit_test(json_rejects_comments),
        cmocka_unit_test(json_rejects_structure_errors),
        cmocka_unit_test(json_rejects_trailing_garbage),
        cmocka_unit_test(json_err_may_be_null),
        cmocka_unit_test(json_nesting_at_limit_parses),
        cmocka_unit_test(json_nesting_past_limit_is_rejected),
        cmocka_unit_test(json_parses_huge_float_array),
        cmocka_unit_test(json_parses_large_object_and_long_strings),
        cmocka_unit_test(json_to_floats_checks_shape),
        cmocka_unit_test(json_to_floats_rounds_once),
        cmocka_unit_test(json_parse_ex_reads_vectors_as_floats),
        cmocka_unit_test(json_parse_ex_float_buffer_grows),
        cmocka_unit_test(json_parse_ex_leaves_the_rest_to_the_tree),
        cmocka_unit_test(json_float_arrays_round_like_strtof),
        cmocka_unit_test(json_rejects_text_longer_than_the_limit),
        cmocka_unit_test(json_write_string_escapes_minimally),
        cmocka_unit_test(json_write_value_minifies),
        cmocka_unit_test(json_write_value_handles_hand_built_values),
        cmocka_unit_test(json_write_float_known_values),
        cmocka_unit_test(json_write_float_round_trips_random_floats),
        cmocka_unit_test(json_write_double_round_trips),
        cmocka_unit_test(json_ignores_application_locale),
        cmocka_unit_test(json_survives_random_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
