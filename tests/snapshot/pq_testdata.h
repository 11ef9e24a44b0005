/*
 * pq_testdata.h: the rows both Parquet tests write and compare: every
 * attribute type with nulls, unicode, emoji, U+0000, +-2^53 and int64
 * extremes, -0.0 and denormal doubles, generated from fixed seeds.
 * Header-only (static functions) so each test executable stays one file;
 * include it after cmocka.h.
 */
#ifndef TDB_TESTS_PQ_TESTDATA_H
#define TDB_TESTS_PQ_TESTDATA_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/parquet.h"
#include "util/buf.h"
#include "util/json.h"

static uint64_t g_rng;
static inline uint64_t rnd(void) { /* splitmix64: fixed seeds, same data every run */
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A deterministic float for row i, component j (any bit pattern but NaN). */
static inline float vec_value(uint64_t i, uint32_t j) {
    uint64_t z = i * 1000003ull + j * 7919ull + 12345;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    float f = (float)((double)(int64_t)(z >> 11) / (double)(1ull << 52)) - 0.5f;
    if ((z & 255) == 0) f = -0.0f;
    return f;
}

/* ---- a table of rows with every attribute type ------------------------ */

static const pq_attr_def g_all_attrs[] = {
    {"title", PQ_ATTR_STRING}, {"year", PQ_ATTR_INT},          {"price", PQ_ATTR_FLOAT},
    {"ok", PQ_ATTR_BOOL},      {"tags", PQ_ATTR_STRING_ARRAY}, {"nums", PQ_ATTR_INT_ARRAY},
};
#define ALL_ATTRS (sizeof g_all_attrs / sizeof g_all_attrs[0])

static const char *const g_strings[] = {
    "", "hello", "h\xc3\xa9llo w\xc3\xb6rld", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
    "emoji \xf0\x9f\x98\x80\xf0\x9f\x8e\x89", "red", "green", "blue", "quote \" back \\ slash",
    "line\nbreak\ttab",
};
#define NSTR (sizeof g_strings / sizeof g_strings[0])

static const int64_t g_ints[] = {
    0, 1, -1, 9007199254740992LL, -9007199254740992LL, 9007199254740993LL, INT64_MAX, INT64_MIN, 2024,
};

#define PQ_TEST_MAX_DIM 128

typedef struct trow {
    char id[64];
    size_t id_len;
    float vec[PQ_TEST_MAX_DIM];
    pq_value vals[ALL_ATTRS];
    pq_bytes tags[6];
    int64_t nums[6];
    char *attrs_json;
    size_t attrs_len;
    char big[300]; /* a string with U+0000 inside */
} trow;

static inline pq_bytes str_at(size_t k) { return (pq_bytes){g_strings[k], strlen(g_strings[k])}; }

static inline void make_rows(trow *rows, size_t n, uint32_t dim) {
    g_rng = 42;
    for (size_t i = 0; i < n; i++) {
        trow *t = &rows[i];
        memset(t, 0, sizeof *t);
        if (i % 50 == 7) {
            t->id_len = (size_t)snprintf(t->id, sizeof t->id, "\xf0\x9f\x98\x80-%zu", i);
        } else if (i % 50 == 9) {
            memcpy(t->id, "nul\0id", 6); /* U+0000 inside an id */
            t->id_len = (size_t)(6 + snprintf(t->id + 6, sizeof t->id - 6, "%zu", i));
        } else {
            t->id_len = (size_t)snprintf(t->id, sizeof t->id, "doc-%05zu", i);
        }
        for (uint32_t j = 0; j < dim; j++) t->vec[j] = vec_value(i, j);
        for (size_t a = 0; a < ALL_ATTRS; a++) t->vals[a].is_null = rnd() % 4 == 0;
        memset(t->big, 'x', sizeof t->big);
        t->big[100] = '\0';
        t->vals[0].str = i % 17 == 3 ? (pq_bytes){t->big, sizeof t->big} : str_at(rnd() % NSTR);
        t->vals[1].i64 = rnd() % 3 == 0 ? (int64_t)rnd() : g_ints[rnd() % (sizeof g_ints / sizeof g_ints[0])];
        static const double doubles[] = {0.0, -0.0, 1.5, 1e308, -1e-308, 5e-324, 9007199254740992.0, -3.25};
        t->vals[2].f64 = doubles[rnd() % 8];
        t->vals[3].boolean = rnd() & 1;
        t->vals[4].count = rnd() % 6;
        for (size_t k = 0; k < t->vals[4].count; k++) t->tags[k] = str_at(rnd() % NSTR);
        t->vals[4].strs = t->tags;
        t->vals[5].count = rnd() % 6;
        for (size_t k = 0; k < t->vals[5].count; k++) t->nums[k] = g_ints[rnd() % 9];
        t->vals[5].ints = t->nums;
        /* attributes: the values as JSON (a real snapshot's source) */
        buf b = BUF_INIT;
        buf_printf(&b, "{\"n\":%zu,\"s\":", i);
        json_write_string(&b, t->vals[0].str.data, t->vals[0].str.len);
        buf_puts(&b, ",\"big\":9007199254740993}");
        t->attrs_len = b.len;
        t->attrs_json = buf_steal(&b);
    }
}

static inline void free_rows(trow *rows, size_t n) {
    for (size_t i = 0; i < n; i++) free(rows[i].attrs_json);
}

static inline void assert_bytes_equal(pq_bytes a, pq_bytes b) {
    assert_int_equal(a.len, b.len);
    if (a.len) assert_memory_equal(a.data, b.data, a.len);
}

static inline void assert_value_equal(pq_attr_type t, const pq_value *want, const pq_value *got) {
    assert_int_equal(want->is_null, got->is_null);
    if (want->is_null) return;
    switch (t) {
    case PQ_ATTR_STRING: assert_bytes_equal(want->str, got->str); break;
    case PQ_ATTR_INT: assert_true(want->i64 == got->i64); break;
    case PQ_ATTR_FLOAT: assert_memory_equal(&want->f64, &got->f64, 8); break;
    case PQ_ATTR_BOOL: assert_int_equal(want->boolean, got->boolean); break;
    case PQ_ATTR_STRING_ARRAY:
        assert_int_equal(want->count, got->count);
        for (size_t k = 0; k < want->count; k++) assert_bytes_equal(want->strs[k], got->strs[k]);
        break;
    case PQ_ATTR_INT_ARRAY:
        assert_int_equal(want->count, got->count);
        for (size_t k = 0; k < want->count; k++) assert_true(want->ints[k] == got->ints[k]);
        break;
    }
}

#endif
