/*
 * json.h: a strict JSON (RFC 8259) parser into an arena-allocated tree,
 * and a writer. Written for tierdb because requests carry large float
 * arrays and attributes must round-trip value for value: numbers keep
 * their source text, strings may hold U+0000, and every value remembers
 * its span in the source.
 * Layer: util.
 *
 * Parsing rules: UTF-8 only (invalid UTF-8 is an error), no comments, no
 * trailing commas, no NaN/Infinity literals, nesting at most
 * JSON_MAX_DEPTH, lone surrogate escapes rejected, input at most
 * JSON_MAX_TEXT_BYTES. Numbers that overflow a double (1e999) parse, with
 * num = +-inf: callers that need finite values check isfinite. Duplicate
 * object keys are kept in order (json_get returns the last one, as most
 * parsers do).
 *
 * Float arrays. A document of vectors as a tree costs a node per number
 * (72 bytes plus its text). json_parse_ex can instead read the arrays
 * that are the value of one named member (e.g. "vector") straight into
 * floats: such an array is a JSON_ARRAY with len elements, no children,
 * and json_floats() returns its values (4 bytes each). Only arrays of
 * finite float32 numbers take that form; any other value under that key
 * (a string element, a nested array, NaN, a number beyond float32, a
 * syntax error...) is parsed as an ordinary tree, so errors and messages
 * are exactly those of json_parse.
 *
 * Ownership: json_parse returns a json_doc that owns every json_value and
 * string in it; json_doc_free releases them all. The source text must
 * stay alive while the doc is used only through `src` spans.
 */
#ifndef TDB_UTIL_JSON_H
#define TDB_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Deeper nesting is rejected: bounds recursion on hostile input. */
#define JSON_MAX_DEPTH 256
/* Longer input is rejected: spans and lengths are 32-bit, which keeps a
 * node small (request bodies are limited far below this). */
#define JSON_MAX_TEXT_BYTES ((size_t)UINT32_MAX)

typedef enum json_type {
    JSON_NULL = 0,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

typedef struct json_value json_value;
struct json_value {
    uint8_t type;        /* a json_type */
    bool is_int;         /* NUMBER: no fraction/exponent and fits int64 */
    uint32_t len;        /* STRING: decoded bytes; ARRAY/OBJECT: element count; NUMBER: raw text bytes */
    uint32_t key_len;
    uint32_t src_off;    /* span of this value in the source text */
    uint32_t src_len;
    union {
        const char *str;     /* STRING: decoded UTF-8, NUL-terminated (may contain NUL); NUMBER: raw
                                text (NUL-terminated copy); OBJECT: NULL */
        const float *floats; /* ARRAY: the values of a float array (json_parse_ex), else NULL */
    };
    double num;          /* NUMBER: value (may be +-inf on overflow) */
    int64_t i64;         /* NUMBER: exact value when is_int */
    json_value *child;   /* ARRAY/OBJECT: first element / member value (NULL for a float array) */
    json_value *next;    /* next sibling in the parent */
    const char *key;     /* member of an OBJECT: decoded key, NUL-terminated */
};

typedef struct json_doc json_doc;

typedef struct json_error {
    size_t offset;       /* byte offset in the input where parsing failed */
    char message[160];   /* e.g. "expected ',' or '}' after object member" */
} json_error;

/* Parses text[0..len). Returns 0 and *out, or -1 with err filled. */
int json_parse(const char *text, size_t len, json_doc **out, json_error *err);

/* Where json_parse_ex reads float arrays (see "Float arrays" above). */
typedef struct json_parse_options {
    /* Arrays that are the value of a member named float_key (NULL: none)
     * of an object at a nesting depth whose bit is set in float_depths:
     * bit 0 for the root object, bit 2 for {"documents": [{"vector": ..}]}
     * (root object 0, array 1, document 2). */
    const char *float_key;
    uint32_t float_depths;
    /* The expected element count (e.g. a collection's dimension), 0 if
     * unknown: the size of the first buffer. */
    uint32_t float_count_hint;
} json_parse_options;

/* json_parse with options (NULL: as json_parse). */
int json_parse_ex(const char *text, size_t len, const json_parse_options *opts, json_doc **out,
                  json_error *err);
const json_value *json_root(const json_doc *doc);
void json_doc_free(json_doc *doc);

/* Member lookup in an OBJECT (NULL if absent or v is not an object). */
const json_value *json_get(const json_value *obj, const char *key);
/* The values of a float array read by json_parse_ex (len of them), or
 * NULL if v is anything else (an ordinary array included). */
const float *json_floats(const json_value *v);
/* A NUMBER's value correctly rounded to float32: the float nearest to the
 * decimal text (ties to even), as strtof gives, which (float)v->num is
 * not always (it rounds twice). +-inf beyond float32's range. */
float json_number_float(const json_value *v);
/* Copies a numeric ARRAY (or a float array) into out[0..n) as float,
 * correctly rounded; returns 0, or -1 if v is not an array of exactly n
 * numbers. Non-finite results are left for the caller to check. */
int json_to_floats(const json_value *v, float *out, size_t n);

/* Writer. Strings are escaped minimally (", \, control characters) and
 * otherwise written byte for byte; U+0000 becomes \u0000. */
void json_write_string(buf *b, const char *s, size_t len);
/* Writes v minified; numbers by their raw text (so 1.0 stays 1.0 and
 * 9007199254740993 stays exact), strings re-escaped, the values of a float
 * array as json_write_float writes them. */
void json_write_value(buf *b, const json_value *v);
/* Shortest text that parses back to the same float ("%.9g" or shorter). */
void json_write_float(buf *b, float f);
void json_write_double(buf *b, double d);

/* Validates that s[0..len) is UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool json_utf8_valid(const char *s, size_t len);

#endif
