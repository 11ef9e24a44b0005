/*
 * fuzz_json.c: libFuzzer target for util/json.c (json_parse, the writer).
 *
 * Input: any bytes, parsed as one JSON text. Beyond "no crash, no leak"
 * it checks properties the rest of tierdb relies on:
 *   - a text that parses is valid UTF-8 (json_utf8_valid agrees);
 *   - every value's source span lies inside the input;
 *   - writing the tree and parsing the output gives a tree that writes
 *     to the same bytes (the writer is a fixed point after one pass);
 *   - every finite number written by json_write_double / json_write_float
 *     reads back to the same bits;
 *   - json_parse_ex reading "vector" arrays at every depth as floats
 *     accepts exactly what json_parse accepts, fails with the same offset
 *     and message, and gives the same tree except that the arrays it read
 *     as floats hold, bit for bit, json_number_float of each element.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "util/buf.h"
#include "util/json.h"

static void check_number_text(double d) {
    if (!isfinite(d)) return;
    buf b = BUF_INIT;
    json_write_double(&b, d);
    FUZZ_CHECK(!buf_failed(&b), "out of memory");
    double back = strtod(b.data, NULL);
    FUZZ_CHECK(memcmp(&back, &d, sizeof d) == 0, "double %.17g written as %s", d, b.data);
    float f = (float)d;
    if (isfinite(f)) {
        buf_reset(&b);
        json_write_float(&b, f);
        float fb = strtof(b.data, NULL);
        FUZZ_CHECK(memcmp(&fb, &f, sizeof f) == 0, "float %.9g written as %s", (double)f, b.data);
    }
    buf_free(&b);
}

/* Visits every value: spans, strings and keys are read in full. */
static void walk(const json_value *v, size_t src_len, int depth) {
    FUZZ_CHECK(depth <= JSON_MAX_DEPTH + 1, "depth %d", depth);
    FUZZ_CHECK(v->src_off <= src_len && v->src_len <= src_len - v->src_off,
               "span %u+%u outside %zu bytes", (unsigned)v->src_off, (unsigned)v->src_len, src_len);
    if (v->key) fuzz_touch(v->key, (size_t)v->key_len + 1);
    switch (v->type) {
    case JSON_STRING:
        FUZZ_CHECK(v->str != NULL, "string without bytes");
        fuzz_touch(v->str, (size_t)v->len + 1);
        FUZZ_CHECK(v->str[v->len] == '\0', "string not NUL-terminated");
        FUZZ_CHECK(json_utf8_valid(v->str, v->len), "decoded string is not UTF-8");
        break;
    case JSON_NUMBER:
        FUZZ_CHECK(v->str != NULL && v->len > 0, "number without its text");
        fuzz_touch(v->str, v->len);
        if (v->is_int) FUZZ_CHECK((double)v->i64 == v->num || !isfinite(v->num), "int/double");
        check_number_text(v->num);
        break;
    case JSON_ARRAY:
    case JSON_OBJECT: {
        if (json_floats(v)) {
            FUZZ_CHECK(v->type == JSON_ARRAY && v->child == NULL && v->len > 0, "float array shape");
            fuzz_touch(json_floats(v), (size_t)v->len * sizeof(float));
            for (uint32_t i = 0; i < v->len; i++) FUZZ_CHECK(isfinite(json_floats(v)[i]), "float not finite");
            break;
        }
        uint32_t n = 0;
        for (const json_value *c = v->child; c; c = c->next) {
            if (v->type == JSON_OBJECT) FUZZ_CHECK(c->key != NULL, "member without key");
            walk(c, src_len, depth + 1);
            n++;
        }
        FUZZ_CHECK(n == v->len, "child count %u, len %u", n, v->len);
        if (v->type == JSON_ARRAY && n > 0 && n <= 4096) {
            float *fl = malloc(n * sizeof *fl);
            if (fl) {
                (void)json_to_floats(v, fl, n);
                free(fl);
            }
        }
        break;
    }
    default:
        break;
    }
}

/* t (json_parse) and f (json_parse_ex with float arrays) describe the
 * same text: same shapes, and each float array holds its numbers. */
static void same_tree(const json_value *t, const json_value *f) {
    FUZZ_CHECK(t->type == f->type && t->len == f->len && t->src_off == f->src_off &&
                   t->src_len == f->src_len && t->key_len == f->key_len,
               "json_parse_ex shape differs at offset %u", (unsigned)t->src_off);
    const float *fl = json_floats(f);
    if (fl) {
        FUZZ_CHECK(f->key_len == 6 && memcmp(f->key, "vector", 6) == 0, "float array under another key");
        uint32_t i = 0;
        for (const json_value *e = t->child; e; e = e->next, i++) {
            FUZZ_CHECK(e->type == JSON_NUMBER, "float array from a non-number");
            float want = json_number_float(e);
            FUZZ_CHECK(memcmp(&want, &fl[i], sizeof want) == 0, "vector[%u] = %s: %a, want %a", i, e->str,
                       (double)fl[i], (double)want);
        }
        return;
    }
    if (t->type == JSON_NUMBER || t->type == JSON_STRING)
        FUZZ_CHECK(t->len == f->len && memcmp(t->str, f->str, t->len) == 0, "json_parse_ex text differs");
    const json_value *a = t->child, *b = f->child;
    for (; a && b; a = a->next, b = b->next) same_tree(a, b);
    FUZZ_CHECK(a == NULL && b == NULL, "json_parse_ex child count differs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_doc *doc = NULL, *fdoc = NULL;
    json_error jerr, ferr;
    json_parse_options opts = {.float_key = "vector", .float_depths = UINT32_MAX,
                               .float_count_hint = size > 0 ? data[0] % 5 : 0};
    int frc = json_parse_ex((const char *)data, size, &opts, &fdoc, &ferr);
    if (json_parse((const char *)data, size, &doc, &jerr) != 0) {
        FUZZ_CHECK(jerr.offset <= size, "error offset %zu past %zu", jerr.offset, size);
        FUZZ_CHECK(memchr(jerr.message, '\0', sizeof jerr.message) != NULL, "message unterminated");
        FUZZ_CHECK(frc != 0 && ferr.offset == jerr.offset && strcmp(ferr.message, jerr.message) == 0,
                   "json_parse_ex disagrees on an error: %s", jerr.message);
        json_doc_free(doc);
        return 0;
    }
    FUZZ_CHECK(frc == 0, "json_parse_ex fails where json_parse does not: %s", ferr.message);
    walk(json_root(fdoc), size, 1);
    same_tree(json_root(doc), json_root(fdoc));
    json_doc_free(fdoc);
    FUZZ_CHECK(json_utf8_valid((const char *)data, size), "parsed text that is not UTF-8");
    const json_value *root = json_root(doc);
    FUZZ_CHECK(root != NULL, "no root");
    walk(root, size, 1);
    /* The lookups the request handlers do. */
    static const char *const keys[] = {"documents", "vector", "filter", "id", "text", "name", ""};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) (void)json_get(root, keys[i]);

    buf w1 = BUF_INIT, w2 = BUF_INIT;
    json_write_value(&w1, root);
    FUZZ_CHECK(!buf_failed(&w1), "out of memory");
    json_doc *doc2 = NULL;
    int rc = json_parse(w1.data ? w1.data : "", w1.len, &doc2, &jerr);
    FUZZ_CHECK(rc == 0, "writer output does not parse: %s at %zu: %.200s", jerr.message,
               jerr.offset, w1.data);
    json_write_value(&w2, json_root(doc2));
    FUZZ_CHECK(w1.len == w2.len && memcmp(w1.data, w2.data, w1.len) == 0,
               "writer not stable: %.200s vs %.200s", w1.data, w2.data);
    buf_free(&w1);
    buf_free(&w2);
    json_doc_free(doc2);
    json_doc_free(doc);
    return 0;
}
