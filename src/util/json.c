/*
 * json.c: strict RFC 8259 parser into an arena, and the JSON writer.
 * Layer: util. The contract (what is accepted, who owns what) is in json.h.
 *
 * Arena. Every json_value, decoded string and number text of one document
 * lives in a short list of large malloc'd blocks (the json_doc header sits at
 * the start of the first). Block sizes grow geometrically, starting from a
 * guess based on the input length, so a body of 100,000 floats costs a
 * handful of mallocs, and json_doc_free is one free() per block.
 *
 * Parser. One loop with an explicit stack of open containers (at most
 * JSON_MAX_DEPTH frames, on the C stack), so hostile nesting can never
 * recurse. The states are the labels in json_parse:
 *   value       a value is expected at pos (after whitespace)
 *   member_key  a '"' key is expected at pos (inside an object)
 *   after_value a value just ended; the innermost container decides what
 *               may follow (',' or its closing bracket), or, at depth 0,
 *               only whitespace up to the end of the input.
 * Invariant: frames[0..depth) are the open containers, innermost last, and
 * frames[i].tail is the last child attached to frames[i].v so far.
 *
 * Strings are decoded in two passes: the first finds the closing quote (so
 * the arena can reserve the raw length, an upper bound of the decoded
 * length), the second validates UTF-8 and control characters and decodes
 * escapes into the reservation; the unused tail is handed back.
 *
 * Nodes are 72 bytes (32-bit lengths and spans, which is why the input is
 * limited to JSON_MAX_TEXT_BYTES); a number's text takes its length plus
 * the NUL, so a one-digit number costs 80 bytes with alignment.
 *
 * Numbers. The raw text is copied (NUL-terminated) into the arena. The
 * double comes from the first of three paths that applies, each correctly
 * rounded (decimal_to_double): (1) Clinger's fast path, when the decimal
 * significand is at most 2^53 and the power of ten is an exact double (one
 * IEEE multiply or divide of two exact values); (2) exact 128-bit integer
 * arithmetic, when the significand has at most 19 digits and the exponent
 * at most 27 in magnitude (mul_pow10_exact); (3) strtod_l in the "C"
 * locale on the NUL-terminated copy. No allocation besides the arena.
 *
 * Float arrays (json_parse_ex). When a '[' is the value of the member the
 * options name, parse_float_array scans it in one tight loop: whitespace,
 * a number, whitespace, ',' or ']'. Each number goes straight to a float
 * (scan_float: the double of the same three paths, then one more rounding
 * that is exact unless the double sits on a float midpoint or below the
 * normal float range, where strtof_l rereads the text), into one arena
 * buffer. The first thing the loop does not expect (any non-number, a
 * grammar error, a value that is not a finite float32, a number of more
 * than FLOAT_TEXT_MAX bytes) makes it give the buffer back and rewind to
 * the '[': the ordinary parser then reads the array, so every error and
 * message is the one json_parse gives.
 *
 * Writer. Floats and doubles are written with the shortest "%.Ng" that
 * reads back to the same bits, formatted in the "C" locale (uselocale for
 * the calling thread only), so an application locale with a decimal comma
 * can never produce invalid JSON.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "util/json.h"

#include <assert.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* "C" locale for strtod_l / strtof_l / snprintf                       */

static locale_t g_c_locale;
static pthread_once_t g_c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void) { g_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

/* The "C" locale, or (locale_t)0 if it could not be created (then the
 * process locale is used: right unless the application changed it). */
static locale_t c_locale(void) {
    pthread_once(&g_c_locale_once, c_locale_init);
    return g_c_locale;
}

static double strtod_c(const char *s) {
    locale_t loc = c_locale();
    return loc ? strtod_l(s, NULL, loc) : strtod(s, NULL);
}

static float strtof_c(const char *s) {
    locale_t loc = c_locale();
    return loc ? strtof_l(s, NULL, loc) : strtof(s, NULL);
}

/* ------------------------------------------------------------------ */
/* Arena                                                               */

typedef struct arena_block arena_block;
struct arena_block {
    arena_block *next; /* older block */
    size_t cap;        /* bytes in data[] */
    size_t used;
    _Alignas(16) char data[];
};

struct json_doc {
    arena_block *head; /* newest block; the doc itself lives in the oldest */
    size_t next_cap;   /* size of the next block to allocate */
    json_value *root;
};

#define ARENA_MIN_BLOCK ((size_t)4096)
#define ARENA_MAX_FIRST ((size_t)64 << 20) /* first-block guess never exceeds this */

static arena_block *block_new(size_t cap) {
    if (cap > SIZE_MAX - sizeof(arena_block)) return NULL;
    arena_block *b = malloc(sizeof(arena_block) + cap);
    if (b == NULL) return NULL;
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

/* Slow path of arena_alloc: a new block big enough for size bytes. */
static void *arena_alloc_new_block(json_doc *d, size_t size) {
    size_t cap = d->next_cap;
    if (cap < size) cap = size;
    arena_block *b = block_new(cap);
    if (b == NULL && cap > size) b = block_new(size); /* try the exact size */
    if (b == NULL) return NULL;
    if (d->next_cap <= SIZE_MAX / 2) d->next_cap *= 2;
    b->next = d->head;
    d->head = b;
    b->used = size;
    return b->data;
}

/* size bytes aligned to `align` (a power of two, at most 16). */
static inline void *arena_alloc(json_doc *d, size_t size, size_t align) {
    arena_block *b = d->head;
    size_t off = (b->used + align - 1) & ~(align - 1);
    if (off <= b->cap && size <= b->cap - off) {
        b->used = off + size;
        return b->data + off;
    }
    return arena_alloc_new_block(d, size);
}

/* Grows the most recent allocation p from old_size to new_size bytes in
 * place if its block has room; false otherwise (p unchanged). */
static inline bool arena_grow_last(json_doc *d, void *p, size_t old_size, size_t new_size) {
    arena_block *b = d->head;
    size_t off = (size_t)((char *)p - b->data);
    if (off + old_size != b->used || new_size > b->cap - off) return false;
    b->used = off + new_size;
    return true;
}

/* Gives back the tail of the most recent allocation p, keeping `keep` bytes. */
static inline void arena_shrink_last(json_doc *d, void *p, size_t keep) {
    arena_block *b = d->head;
    b->used = (size_t)((char *)p - b->data) + keep;
}

static json_doc *doc_new(size_t text_len, bool float_arrays) {
    /* Guess: a few times the input covers number arrays as a tree (each
     * ~10-byte number becomes a 72-byte node plus its text); with float
     * arrays twice the input covers them (4 bytes for a number of at least
     * 2 bytes with its comma). More comes in doubling blocks. Untouched
     * pages of a large block cost no memory. */
    size_t factor = float_arrays ? 2 : 4;
    size_t cap = ARENA_MAX_FIRST;
    if (text_len < (ARENA_MAX_FIRST - ARENA_MIN_BLOCK) / 4) cap = text_len * factor + ARENA_MIN_BLOCK;
    cap += sizeof(json_doc);
    arena_block *b = block_new(cap);
    if (b == NULL) b = block_new(ARENA_MIN_BLOCK + sizeof(json_doc));
    if (b == NULL) return NULL;
    json_doc *d = (json_doc *)b->data;
    b->used = sizeof(json_doc);
    d->head = b;
    d->next_cap = b->cap * 2;
    d->root = NULL;
    return d;
}

void json_doc_free(json_doc *doc) {
    if (doc == NULL) return;
    /* The doc lives in the oldest block, the last one freed. */
    arena_block *b = doc->head;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
}

const json_value *json_root(const json_doc *doc) { return doc ? doc->root : NULL; }

/* ------------------------------------------------------------------ */
/* UTF-8                                                               */

/* Length (2..4) of the valid multi-byte UTF-8 sequence at p (p[0] >= 0x80),
 * or 0 if it is invalid: a stray continuation byte, an overlong form, a
 * surrogate (U+D800..DFFF), a code point above U+10FFFF, or truncated. */
static inline size_t utf8_seq_len(const unsigned char *p, size_t avail) {
    unsigned char c = p[0];
    if (c < 0xC2) return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) return (avail >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (avail < 3) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;      /* overlong below U+0800 */
        else if (c == 0xED) hi = 0x9F; /* surrogates U+D800..DFFF */
        if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80) return 0;
        return 3;
    }
    if (c > 0xF4 || avail < 4) return 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c == 0xF0) lo = 0x90;      /* overlong below U+10000 */
    else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    return 4;
}

static uint32_t utf8_decode(const unsigned char *p, size_t n) {
    switch (n) {
    case 2: return ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3: return ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    default:
        return ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
               ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    }
}

bool json_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        /* ASCII runs 8 bytes at a time. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= len) break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq_len(p + i, len - i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

static size_t utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------ */
/* Parser                                                              */

typedef struct parser {
    const char *text;
    size_t len;
    size_t pos;
    json_doc *doc;
    json_error *err;
    /* json_parse_options, checked once: float_key_len 0 means none. */
    const char *float_key;
    size_t float_key_len;
    uint32_t float_depths;
    size_t float_count_hint;
} parser;

typedef struct frame {
    json_value *v;    /* the open ARRAY or OBJECT */
    json_value *tail; /* its last child so far (NULL when none) */
} frame;

static inline bool is_ws(unsigned char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static inline void skip_ws(parser *p) {
    const char *t = p->text;
    size_t i = p->pos, n = p->len;
    while (i < n && is_ws((unsigned char)t[i])) i++;
    p->pos = i;
}

/* Describes the byte at off for an error message ("'x'", "end of input"). */
static void describe_at(const parser *p, size_t off, char *out, size_t out_size) {
    if (off >= p->len) {
        snprintf(out, out_size, "end of input");
        return;
    }
    const unsigned char *s = (const unsigned char *)p->text + off;
    if (s[0] >= 0x20 && s[0] < 0x7F) snprintf(out, out_size, "'%c'", s[0]);
    else if (s[0] < 0x80) snprintf(out, out_size, "control character 0x%02X", s[0]);
    else {
        size_t n = utf8_seq_len(s, p->len - off);
        if (n) snprintf(out, out_size, "U+%04X", (unsigned)utf8_decode(s, n));
        else snprintf(out, out_size, "invalid UTF-8 byte 0x%02X", s[0]);
    }
}

__attribute__((format(printf, 3, 4))) static int fail(parser *p, size_t off, const char *fmt, ...) {
    if (p->err) {
        p->err->offset = off;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err->message, sizeof p->err->message, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* "<what>, found <the byte at off>". */
static int fail_expected(parser *p, size_t off, const char *what) {
    char found[48];
    describe_at(p, off, found, sizeof found);
    return fail(p, off, "%s, found %s", what, found);
}

static int fail_oom(parser *p) { return fail(p, p->pos, "out of memory"); }

static json_value *new_value(parser *p, json_type type, size_t off) {
    json_value *v = arena_alloc(p->doc, sizeof(json_value), _Alignof(json_value));
    if (v == NULL) return NULL;
    /* Field by field: a memset of this size becomes `rep stos`, which
     * costs more than the rest of parsing a number. */
    v->type = (uint8_t)type;
    v->is_int = false;
    v->len = 0;
    v->key_len = 0;
    v->src_off = (uint32_t)off; /* the input is at most JSON_MAX_TEXT_BYTES */
    v->src_len = 0;
    v->str = NULL;
    v->num = 0;
    v->i64 = 0;
    v->child = NULL;
    v->next = NULL;
    v->key = NULL;
    return v;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Reads the 4 hex digits of a \u escape whose backslash is at off. */
static int read_u_escape(parser *p, size_t off, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)p->text;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++) {
        size_t i = off + 2 + k;
        int h = i < p->len ? hexval(s[i]) : -1;
        if (h < 0) return fail_expected(p, i, "expected 4 hex digits after \\u in string");
        v = (v << 4) | (uint32_t)h;
    }
    *cp = v;
    return 0;
}

/* Bytes that need no attention inside a string: ASCII 0x20..0x7F but '"'
 * and '\\'. */
static const unsigned char plain_char[256] = {
    ['\x20'] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2F, '"' = 0x22 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,            /* 0x50, '\\' = 0x5C */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x70 */
};

/* Parses the string whose opening quote is at p->pos into the arena;
 * leaves p->pos after the closing quote. */
static int parse_string(parser *p, const char **out, uint32_t *out_len) {
    const unsigned char *s = (const unsigned char *)p->text;
    size_t n = p->len, open = p->pos;

    /* Pass 1: the closing quote (or end of input) bounds the raw bytes. */
    size_t end = open + 1;
    while (end < n) {
        unsigned char c = s[end];
        if (c == '"') break;
        end += (c == '\\') ? 2 : 1;
    }
    if (end > n) end = n; /* a backslash was the last byte */
    size_t raw = end - (open + 1);

    char *dst = arena_alloc(p->doc, raw + 1, 1);
    if (dst == NULL) return fail_oom(p);

    /* Pass 2: validate and decode s[open+1 .. end) into dst. */
    size_t i = open + 1, o = 0;
    while (i < end) {
        unsigned char c = s[i];
        if (plain_char[c]) {
            size_t run = i + 1;
            while (run < end && plain_char[s[run]]) run++;
            memcpy(dst + o, s + i, run - i);
            o += run - i;
            i = run;
            continue;
        }
        if (c == '\\') {
            if (i + 1 >= n) return fail(p, i, "unterminated escape at end of input in string");
            unsigned char e = s[i + 1];
            char simple = 0;
            switch (e) {
            case '"': simple = '"'; break;
            case '\\': simple = '\\'; break;
            case '/': simple = '/'; break;
            case 'b': simple = '\b'; break;
            case 'f': simple = '\f'; break;
            case 'n': simple = '\n'; break;
            case 'r': simple = '\r'; break;
            case 't': simple = '\t'; break;
            case 'u': break;
            default: {
                char found[48];
                describe_at(p, i + 1, found, sizeof found);
                return fail(p, i,
                            "invalid escape in string: expected one of \\\" \\\\ \\/ \\b \\f \\n "
                            "\\r \\t \\uXXXX after '\\', found %s",
                            found);
            }
            }
            if (e != 'u') {
                dst[o++] = simple;
                i += 2;
                continue;
            }
            uint32_t cp;
            if (read_u_escape(p, i, &cp) < 0) return -1;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(p, i, "lone low surrogate \\u%04X in string (expected a high surrogate "
                                  "\\uD800-\\uDBFF before it)", (unsigned)cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                size_t j = i + 6;
                uint32_t lo = 0;
                if (j + 1 >= n || s[j] != '\\' || s[j + 1] != 'u')
                    return fail(p, i, "lone high surrogate \\u%04X in string (expected a low "
                                      "surrogate escape \\uDC00-\\uDFFF after it)", (unsigned)cp);
                if (read_u_escape(p, j, &lo) < 0) return -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, i, "high surrogate \\u%04X in string is followed by \\u%04X, "
                                      "expected a low surrogate \\uDC00-\\uDFFF",
                                (unsigned)cp, (unsigned)lo);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 12;
            } else {
                i += 6;
            }
            o += utf8_encode(cp, dst + o);
            continue;
        }
        if (c < 0x20)
            return fail(p, i, "control character 0x%02X must be escaped in a string (as \\u%04X)",
                        c, c);
        /* c >= 0x80 */
        size_t k = utf8_seq_len(s + i, end - i);
        if (k == 0) return fail(p, i, "invalid UTF-8 in string (byte 0x%02X)", c);
        memcpy(dst + o, s + i, k);
        o += k;
        i += k;
    }
    if (end >= n) return fail(p, n, "unterminated string: expected '\"' before end of input "
                                    "(string starts at offset %zu)", open);
    if (o > UINT32_MAX) return fail(p, open, "string longer than 4 GiB");
    dst[o] = '\0';
    arena_shrink_last(p->doc, dst, o + 1);
    p->pos = end + 1;
    *out = dst;
    *out_len = (uint32_t)o;
    return 0;
}

/* Exact powers of ten representable in a double (10^22 < 2^53 * 2^22...). */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
static const uint64_t pow10_u64[16] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull};

#define TWO_POW_53 (1ull << 53)

static inline bool is_digit(unsigned char c) { return (unsigned char)(c - '0') < 10; }

/* SWAR: are the 8 bytes of w (little-endian load) all ASCII digits? */
static inline bool eight_digits(uint64_t w) {
    return ((w & 0xF0F0F0F0F0F0F0F0ull) |
            (((w + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >> 4)) == 0x3333333333333333ull;
}

/* The value of 8 ASCII digits loaded little-endian (first digit lowest). */
static inline uint32_t eight_digits_value(uint64_t w) {
    w -= 0x3030303030303030ull;
    w = (w * 10) + (w >> 8); /* pairs: each 16-bit lane holds d0*10+d1 in its low byte */
    const uint64_t mask = 0x000000FF000000FFull;
    const uint64_t mul1 = 0x000F424000000064ull; /* 100 + (1000000 << 32) */
    const uint64_t mul2 = 0x0000271000000001ull; /* 1 + (10000 << 32) */
    return (uint32_t)((((w & mask) * mul1) + (((w >> 16) & mask) * mul2)) >> 32);
}

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 u128;

/* 5^0 .. 5^27: the largest powers of five below 2^64. */
static const uint64_t pow5_u64[28] = {
    1ull, 5ull, 25ull, 125ull, 625ull, 3125ull, 15625ull, 78125ull, 390625ull, 1953125ull,
    9765625ull, 48828125ull, 244140625ull, 1220703125ull, 6103515625ull, 30517578125ull,
    152587890625ull, 762939453125ull, 3814697265625ull, 19073486328125ull, 95367431640625ull,
    476837158203125ull, 2384185791015625ull, 11920928955078125ull, 59604644775390625ull,
    298023223876953125ull, 1490116119384765625ull, 7450580596923828125ull};

static inline int clz128(u128 x) {
    uint64_t hi = (uint64_t)(x >> 64), lo = (uint64_t)x;
    return hi ? __builtin_clzll(hi) : 64 + __builtin_clzll(lo);
}

/* mant * 10^e correctly rounded, for 0 < mant < 2^64 and |e| <= 27, in
 * exact integer arithmetic: 10^e = 5^e * 2^e, and 5^|e| fits 64 bits, so
 * the value is x * 2^bexp with x a 128-bit product, or (for e < 0) a
 * quotient of at least 65 bits plus a sticky remainder bit; rounding x to
 * 53 bits, half to even, is then exact. This is the path of the 17-digit
 * decimals clients write for float32 values widened to double
 * ("0.12345679104328156"), which Clinger's fast path cannot take.
 * Returns false (leave it to strtod) only if the result is not a normal
 * double, which these ranges never produce. */
static bool mul_pow10_exact(uint64_t mant, int e, double *out) {
    u128 x;
    int bexp;
    bool sticky = false;
    if (e >= 0) {
        x = (u128)mant * pow5_u64[e];
        bexp = e;
    } else {
        int shift = __builtin_clzll(mant) + 64; /* mant << shift has bit 127 set */
        u128 num = (u128)mant << shift;
        u128 d = pow5_u64[-e];
        x = num / d;
        sticky = num - x * d != 0; /* not num % d: one division call, not two */
        bexp = e - shift;
    }
    int bits = 128 - clz128(x);
    uint64_t m;
    if (bits <= 53) {
        m = (uint64_t)x << (53 - bits); /* exact */
        bexp -= 53 - bits;
    } else {
        int drop = bits - 53;
        m = (uint64_t)(x >> drop);
        u128 rem = x & (((u128)1 << drop) - 1), half = (u128)1 << (drop - 1);
        if (rem > half || (rem == half && (sticky || (m & 1)))) m++;
        if (m == (1ull << 53)) { /* rounding carried into a new bit */
            m >>= 1;
            drop++;
        }
        bexp += drop;
    }
    /* value = m * 2^bexp, 2^52 <= m < 2^53 */
    int biased = bexp + 52 + 1023;
    if (biased < 1 || biased > 2046) return false;
    uint64_t bits64 = ((uint64_t)biased << 52) | (m & ((1ull << 52) - 1));
    memcpy(out, &bits64, sizeof *out);
    return true;
}
#endif

/* mant * 10^e correctly rounded to a double, for mant < 10^19 (exact in
 * 64 bits), when one of the two exact paths applies; false when only
 * strtod can tell. */
static inline bool decimal_to_double(uint64_t mant, int64_t e, bool neg, double *out) {
    if (mant == 0) {
        *out = neg ? -0.0 : 0.0;
        return true;
    }
    if (mant <= TWO_POW_53) {
        /* Clinger's fast path: mant and 10^|e| are exact doubles, so one
         * IEEE multiply or divide rounds the exact quotient once. */
        double d = (double)mant;
        bool exact = false;
        if (e >= 0 && e <= 22) {
            d *= pow10_exact[e];
            exact = true;
        } else if (e < 0 && e >= -22) {
            d /= pow10_exact[-e];
            exact = true;
        } else if (e > 22 && e <= 22 + 15) {
            /* Move the excess power into the (still exact) integer. */
            uint64_t k = pow10_u64[e - 22];
            if (mant <= TWO_POW_53 / k) {
                d = (double)(mant * k) * 1e22;
                exact = true;
            }
        }
        if (exact) {
            *out = neg ? -d : d;
            return true;
        }
    }
#ifdef __SIZEOF_INT128__
    double d;
    if (e >= -27 && e <= 27 && mul_pow10_exact(mant, (int)e, &d)) {
        *out = neg ? -d : d;
        return true;
    }
#endif
    return false;
}

/* The decimal significand and exponent of a JSON number, as scanned. */
typedef struct number_scan {
    uint64_t mant;     /* every digit, mod 2^64 (exact when exact_mant) */
    int64_t exp10;     /* value = mant * 10^exp10 (when exact_mant) */
    bool neg;
    bool integral;     /* no fraction, no exponent */
    bool exact_mant;   /* at most 19 significant digits */
} number_scan;

/* Scans the number at s[start..) (its first byte is '-' or a digit) by the
 * grammar of RFC 8259 section 6. Returns the offset just past it, or
 * (size_t)-1 with *bad_off and *bad_what saying what is wrong (bad_what
 * NULL: a leading zero). Inlined into both callers: the float array loop
 * is mostly this. */
__attribute__((always_inline)) static inline size_t
scan_number(const unsigned char *s, size_t len, size_t start, number_scan *ns, size_t *bad_off,
            const char **bad_what) {
    const unsigned char *end = s + len;
    const unsigned char *q = s + start;
    bool neg = *q == '-';
    if (neg) q++;
    if (q >= end || !is_digit(*q)) {
        *bad_off = (size_t)(q - s);
        *bad_what = neg ? "expected a digit after '-'" : "expected a digit";
        return (size_t)-1;
    }
    uint64_t mant = 0;
    const unsigned char *int_start = q;
    bool int_zero = *q == '0';
    if (int_zero) {
        q++;
        if (q < end && is_digit(*q)) {
            *bad_off = (size_t)(q - 1 - s);
            *bad_what = NULL; /* leading zero */
            return (size_t)-1;
        }
    } else {
        while (q < end && is_digit(*q)) mant = mant * 10 + (uint64_t)(*q++ - '0');
    }
    /* "0" has no significant digit: mant stays exact for 19 more. */
    size_t int_digits = int_zero ? 0 : (size_t)(q - int_start);
    size_t frac_digits = 0, lead_zeros = 0;
    bool integral = true;
    if (q < end && *q == '.') {
        integral = false;
        q++;
        const unsigned char *frac_start = q;
        if (int_zero) /* "0.000123": leading zeros are not significant */
            while (q < end && *q == '0') q++;
        lead_zeros = (size_t)(q - frac_start);
        while (end - q >= 8) {
            uint64_t w;
            memcpy(&w, q, 8);
            if (!eight_digits(w)) break;
            mant = mant * 100000000u + eight_digits_value(w);
            q += 8;
        }
        while (q < end && is_digit(*q)) mant = mant * 10 + (uint64_t)(*q++ - '0');
        frac_digits = (size_t)(q - frac_start);
        if (frac_digits == 0) {
            *bad_off = (size_t)(q - s);
            *bad_what = "expected a digit after '.' in a number";
            return (size_t)-1;
        }
    }
    int64_t exp10 = 0;
    if (q < end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        bool eneg = false;
        if (q < end && (*q == '+' || *q == '-')) eneg = *q++ == '-';
        if (q >= end || !is_digit(*q)) {
            *bad_off = (size_t)(q - s);
            *bad_what = "expected a digit in the exponent of a number";
            return (size_t)-1;
        }
        while (q < end && is_digit(*q)) {
            if (exp10 < 1000000) exp10 = exp10 * 10 + (*q - '0'); /* saturates: inf or 0 anyway */
            q++;
        }
        if (eneg) exp10 = -exp10;
    }
    ns->mant = mant;
    ns->exp10 = exp10 - (int64_t)frac_digits;
    ns->neg = neg;
    ns->integral = integral;
    ns->exact_mant = int_digits + frac_digits - lead_zeros <= 19; /* < 10^19 < 2^64 */
    return (size_t)(q - s);
}

/* Parses the number at p->pos into v. */
static int parse_number(parser *p, json_value *v) {
    const unsigned char *s = (const unsigned char *)p->text;
    size_t start = p->pos;
    if (s[start] == '-' && start + 1 < p->len && s[start + 1] == 'I')
        return fail(p, start, "-Infinity is not valid JSON; expected a number");
    number_scan ns;
    size_t bad_off = 0;
    const char *bad_what = NULL;
    size_t stop = scan_number(s, p->len, start, &ns, &bad_off, &bad_what);
    if (stop == (size_t)-1) {
        if (bad_what == NULL) return fail(p, bad_off, "leading zeros are not allowed in a number");
        return fail_expected(p, bad_off, bad_what);
    }
    size_t raw = stop - start; /* < JSON_MAX_TEXT_BYTES */

    char *txt;
    if (raw < 16 && p->len - start >= 16) {
        /* Short number (the usual case): one fixed 16-byte copy instead of
         * a memcpy call, then the tail past the NUL is given back. */
        txt = arena_alloc(p->doc, 16, 1);
        if (txt == NULL) return fail_oom(p);
        memcpy(txt, s + start, 16);
        arena_shrink_last(p->doc, txt, raw + 1);
    } else {
        txt = arena_alloc(p->doc, raw + 1, 1);
        if (txt == NULL) return fail_oom(p);
        memcpy(txt, s + start, raw);
    }
    txt[raw] = '\0';
    v->str = txt;
    v->len = (uint32_t)raw;
    p->pos = stop;

    if (ns.integral && ns.exact_mant) {
        if (!ns.neg && ns.mant <= (uint64_t)INT64_MAX) {
            v->is_int = true;
            v->i64 = (int64_t)ns.mant;
        } else if (ns.neg && ns.mant <= (uint64_t)INT64_MAX + 1) {
            v->is_int = true;
            v->i64 = ns.mant == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)ns.mant;
        }
    }
    if (ns.exact_mant && decimal_to_double(ns.mant, ns.exp10, ns.neg, &v->num)) return 0;
    v->num = strtod_c(txt);
    return 0;
}

/* Longest number text scan_float rereads with strtof_l (from a stack
 * copy); a longer one sends its array to the ordinary parser. */
#define FLOAT_TEXT_MAX 63

/* d rounded to float, when d is the correctly rounded double of a decimal
 * x: rounding x to double and then to float rounds twice, which differs
 * from rounding x once only when d lands exactly on a midpoint between two
 * floats (x may have been slightly above or below it; the midpoints of
 * normal floats, FLT_MAX's upper one included, are exact doubles), or in
 * the float subnormal range (where the midpoints sit elsewhere). Returns
 * false for those rare cases: the caller rereads the text with strtof. */
static inline bool double_to_float_once(double d, float *out) {
    double a = fabs(d);
    if (a != 0) {
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        bool midpoint = (bits & ((1ull << 29) - 1)) == (1ull << 28);
        if (midpoint || a < 0x1p-126 || !isfinite(d)) return false;
    }
    *out = (float)d;
    return true;
}

/* The number at s[start..) as a finite float32 into *out; returns the
 * offset past it, or (size_t)-1 if the text is not a number this path
 * takes (bad grammar, beyond float32, longer than FLOAT_TEXT_MAX bytes
 * where the double is not enough). */
static inline size_t scan_float(const unsigned char *s, size_t len, size_t start, float *out) {
    number_scan ns;
    size_t bad_off;
    const char *bad_what;
    size_t stop = scan_number(s, len, start, &ns, &bad_off, &bad_what);
    if (stop == (size_t)-1) return stop;
    double d;
    float f;
    if (!(ns.exact_mant && decimal_to_double(ns.mant, ns.exp10, ns.neg, &d) && double_to_float_once(d, &f))) {
        size_t raw = stop - start;
        if (raw > FLOAT_TEXT_MAX) return (size_t)-1;
        char copy[FLOAT_TEXT_MAX + 1];
        memcpy(copy, s + start, raw);
        copy[raw] = '\0';
        f = strtof_c(copy);
    }
    if (!isfinite(f)) return (size_t)-1; /* the tree path reports it, with its text */
    *out = f;
    return stop;
}

/* Reads the array whose '[' is at p->pos into floats (see the file
 * comment). Returns 1 when v is now a float array and p->pos is past its
 * ']'; 0 when the array is not one for this path (p->pos unchanged, the
 * arena as before); -1 when out of memory. */
static int parse_float_array(parser *p, json_value *v) {
    const unsigned char *s = (const unsigned char *)p->text;
    size_t len = p->len, i = p->pos + 1;
    size_t cap = p->float_count_hint ? p->float_count_hint : 16, n = 0;
    float *out = arena_alloc(p->doc, cap * sizeof(float), _Alignof(float));
    if (out == NULL) return fail_oom(p);
    while (i < len && is_ws(s[i])) i++;
    if (i >= len || s[i] == ']') goto not_floats; /* [] is an ordinary array */
    /* Invariant: out[0..n) are the values before i, which starts a value. */
    for (;;) {
        if (n == cap) {
            /* Twice the room: in place when the block has it, else a new
             * buffer (the old one stays in the arena: at most as much
             * again as the final one). */
            if (!arena_grow_last(p->doc, out, cap * sizeof(float), 2 * cap * sizeof(float))) {
                float *bigger = arena_alloc(p->doc, 2 * cap * sizeof(float), _Alignof(float));
                if (bigger == NULL) return fail_oom(p);
                memcpy(bigger, out, n * sizeof(float));
                out = bigger;
            }
            cap *= 2;
        }
        if (s[i] != '-' && !is_digit(s[i])) goto not_floats;
        size_t stop = scan_float(s, len, i, &out[n]);
        if (stop == (size_t)-1) goto not_floats;
        n++;
        i = stop;
        while (i < len && is_ws(s[i])) i++;
        if (i >= len) goto not_floats;
        if (s[i] == ']') break;
        if (s[i] != ',') goto not_floats;
        i++;
        while (i < len && is_ws(s[i])) i++;
        if (i >= len) goto not_floats;
    }
    arena_shrink_last(p->doc, out, n * sizeof(float));
    v->type = JSON_ARRAY;
    v->len = (uint32_t)n; /* n < len / 2 <= JSON_MAX_TEXT_BYTES / 2 */
    v->floats = out;
    p->pos = i + 1;
    return 1;
not_floats:
    arena_shrink_last(p->doc, out, 0);
    return 0;
}

/* Parses true/false/null at p->pos (first byte already seen as t/f/n). */
static int parse_literal(parser *p, json_value *v) {
    static const struct {
        const char *word;
        size_t len;
        json_type type;
    } lits[3] = {{"true", 4, JSON_TRUE}, {"false", 5, JSON_FALSE}, {"null", 4, JSON_NULL}};
    char c = p->text[p->pos];
    int k = c == 't' ? 0 : c == 'f' ? 1 : 2;
    size_t left = p->len - p->pos;
    const char *w = lits[k].word;
    for (size_t j = 0; j < lits[k].len; j++) {
        if (j >= left || p->text[p->pos + j] != w[j]) {
            char what[64];
            snprintf(what, sizeof what, "expected '%s'", w);
            return fail_expected(p, p->pos + j, what);
        }
    }
    v->type = lits[k].type;
    p->pos += lits[k].len;
    return 0;
}

/* The error for a byte that cannot start a value, with hints for the usual
 * non-JSON suspects. */
static int fail_bad_value(parser *p, const char *what) {
    const char *t = p->text + p->pos;
    size_t left = p->len - p->pos;
    if (left >= 3 && memcmp(t, "NaN", 3) == 0) return fail(p, p->pos, "NaN is not valid JSON; %s", what);
    if (left >= 8 && memcmp(t, "Infinity", 8) == 0)
        return fail(p, p->pos, "Infinity is not valid JSON; %s", what);
    if (left >= 2 && t[0] == '/' && (t[1] == '/' || t[1] == '*'))
        return fail(p, p->pos, "comments are not allowed in JSON; %s", what);
    if (left >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0)
        return fail(p, p->pos, "a byte order mark is not allowed; %s", what);
    if (left >= 1 && t[0] == '\'')
        return fail(p, p->pos, "strings must use double quotes; %s", what);
    return fail_expected(p, p->pos, what);
}

#define EXPECT_VALUE "expected a value (object, array, string, number, true, false or null)"

/* Is v (just attached to frames[depth - 1]) the value of the member whose
 * arrays are read as floats? */
static inline bool wants_floats(const parser *p, const json_value *v, size_t depth) {
    return p->float_key_len != 0 && v->key != NULL && v->key_len == p->float_key_len && depth - 1 < 32 &&
           ((p->float_depths >> (depth - 1)) & 1) && memcmp(v->key, p->float_key, p->float_key_len) == 0;
}

int json_parse(const char *text, size_t len, json_doc **out, json_error *err) {
    return json_parse_ex(text, len, NULL, out, err);
}

int json_parse_ex(const char *text, size_t len, const json_parse_options *opts, json_doc **out,
                  json_error *err) {
    *out = NULL;
    if (err) {
        err->offset = 0;
        err->message[0] = '\0';
    }
    parser p = {text, len, 0, NULL, err, NULL, 0, 0, 0};
    if (opts && opts->float_key && opts->float_key[0] && opts->float_depths) {
        p.float_key = opts->float_key;
        p.float_key_len = strlen(opts->float_key);
        p.float_depths = opts->float_depths;
        p.float_count_hint = opts->float_count_hint;
    }
    if (len > JSON_MAX_TEXT_BYTES)
        return fail(&p, 0, "JSON text longer than %zu bytes", JSON_MAX_TEXT_BYTES);
    p.doc = doc_new(len, p.float_key_len != 0);
    if (p.doc == NULL) return fail_oom(&p);

    frame frames[JSON_MAX_DEPTH];
    size_t depth = 0;
    const char *key = NULL; /* key of the member whose value comes next */
    uint32_t key_len = 0;
    json_value *v;

value:
    skip_ws(&p);
    if (p.pos >= len) {
        fail_expected(&p, p.pos, EXPECT_VALUE);
        goto failed;
    }
    {
        unsigned char c = (unsigned char)text[p.pos];
        v = new_value(&p, JSON_NULL, p.pos);
        if (v == NULL) {
            fail_oom(&p);
            goto failed;
        }
        v->key = key;
        v->key_len = key_len;
        key = NULL;
        key_len = 0;
        if (depth == 0) {
            p.doc->root = v;
        } else {
            frame *f = &frames[depth - 1];
            if (f->v->len == UINT32_MAX) {
                fail(&p, p.pos, "more than 4294967295 elements in one array or object");
                goto failed;
            }
            if (f->tail) f->tail->next = v;
            else f->v->child = v;
            f->tail = v;
            f->v->len++;
        }
        switch (c) {
        case '[':
            if (depth > 0 && wants_floats(&p, v, depth)) {
                int r = parse_float_array(&p, v);
                if (r < 0) goto failed;
                if (r > 0) {
                    v->src_len = (uint32_t)(p.pos - v->src_off);
                    goto after_value;
                }
            }
            /* fall through */
        case '{':
            if (depth == JSON_MAX_DEPTH) {
                fail(&p, p.pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
                goto failed;
            }
            v->type = c == '{' ? JSON_OBJECT : JSON_ARRAY;
            frames[depth].v = v;
            frames[depth].tail = NULL;
            depth++;
            p.pos++;
            skip_ws(&p);
            if (p.pos < len && (unsigned char)text[p.pos] == (c == '{' ? '}' : ']')) {
                p.pos++;
                v->src_len = (uint32_t)(p.pos - v->src_off);
                depth--;
                goto after_value;
            }
            if (c == '{') goto member_key;
            goto value;
        case '"':
            v->type = JSON_STRING;
            if (parse_string(&p, &v->str, &v->len) < 0) goto failed;
            break;
        case '-':
        case '0': case '1': case '2': case '3': case '4':
        case '5': case '6': case '7': case '8': case '9':
            v->type = JSON_NUMBER;
            if (parse_number(&p, v) < 0) goto failed;
            break;
        case 't':
        case 'f':
        case 'n':
            if (parse_literal(&p, v) < 0) goto failed;
            break;
        default:
            fail_bad_value(&p, EXPECT_VALUE);
            goto failed;
        }
        v->src_len = (uint32_t)(p.pos - v->src_off);
        goto after_value;
    }

member_key:
    /* p.pos is past whitespace, inside an object. */
    if (p.pos >= len || text[p.pos] != '"') {
        fail_bad_value(&p, "expected '\"' to start an object key");
        goto failed;
    }
    if (parse_string(&p, &key, &key_len) < 0) goto failed;
    skip_ws(&p);
    if (p.pos >= len || text[p.pos] != ':') {
        fail_expected(&p, p.pos, "expected ':' after object key");
        goto failed;
    }
    p.pos++;
    goto value;

after_value:
    skip_ws(&p);
    if (depth == 0) {
        if (p.pos != len) {
            fail_bad_value(&p, "expected end of input after the JSON value");
            goto failed;
        }
        *out = p.doc;
        return 0;
    }
    {
        frame *f = &frames[depth - 1];
        bool is_obj = f->v->type == JSON_OBJECT;
        char close = is_obj ? '}' : ']';
        if (p.pos < len && text[p.pos] == ',') {
            size_t comma = p.pos;
            p.pos++;
            skip_ws(&p);
            if (p.pos < len && text[p.pos] == close) {
                fail(&p, comma, "trailing comma before '%c' is not allowed; expected %s after ','",
                     close, is_obj ? "an object member" : "a value");
                goto failed;
            }
            if (is_obj) goto member_key;
            goto value;
        }
        if (p.pos < len && text[p.pos] == close) {
            p.pos++;
            f->v->src_len = (uint32_t)(p.pos - f->v->src_off);
            depth--;
            goto after_value;
        }
        if (is_obj) fail_bad_value(&p, "expected ',' or '}' after object member");
        else fail_bad_value(&p, "expected ',' or ']' after array element");
        goto failed;
    }

failed:
    json_doc_free(p.doc);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */

const json_value *json_get(const json_value *obj, const char *key) {
    if (obj == NULL || obj->type != JSON_OBJECT || key == NULL) return NULL;
    size_t klen = strlen(key);
    const json_value *found = NULL;
    for (const json_value *m = obj->child; m; m = m->next)
        if (m->key_len == klen && m->key && memcmp(m->key, key, klen) == 0) found = m;
    return found;
}

float json_number_float(const json_value *v) {
    if (v == NULL || v->type != JSON_NUMBER) return NAN;
    float f;
    if (double_to_float_once(v->num, &f)) return f;
    if (!isfinite(v->num)) return (float)v->num; /* beyond any double: beyond float32 too */
    return v->str ? strtof_c(v->str) : (float)v->num; /* a value built by hand has no text */
}

const float *json_floats(const json_value *v) {
    return v != NULL && v->type == JSON_ARRAY ? v->floats : NULL;
}

int json_to_floats(const json_value *v, float *out, size_t n) {
    if (v == NULL || v->type != JSON_ARRAY || v->len != n) return -1;
    if (v->floats) {
        if (n) memcpy(out, v->floats, n * sizeof(float));
        return 0;
    }
    size_t i = 0;
    for (const json_value *e = v->child; e; e = e->next, i++) {
        if (e->type != JSON_NUMBER || i >= n) return -1;
        out[i] = json_number_float(e);
    }
    return i == n ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */

void json_write_string(buf *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    if (!buf_reserve(b, len + 2)) return;
    buf_putc(b, '"');
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (i > run) buf_append(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\t': esc[1] = 't'; break;
        case '\r': esc[1] = 'r'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        buf_append(b, esc, n);
    }
    if (len > run) buf_append(b, s + run, len - run);
    buf_putc(b, '"');
}

void json_write_value(buf *b, const json_value *v) {
    /* Recursion depth is the nesting depth: at most JSON_MAX_DEPTH for a
     * parsed document. */
    if (v == NULL) {
        buf_puts(b, "null");
        return;
    }
    switch (v->type) {
    case JSON_NULL: buf_puts(b, "null"); break;
    case JSON_FALSE: buf_puts(b, "false"); break;
    case JSON_TRUE: buf_puts(b, "true"); break;
    case JSON_NUMBER:
        if (v->str && v->len) buf_append(b, v->str, v->len);
        else json_write_double(b, v->num); /* a value built by hand */
        break;
    case JSON_STRING: json_write_string(b, v->str ? v->str : "", v->str ? v->len : 0); break;
    case JSON_ARRAY:
        buf_putc(b, '[');
        if (v->floats) {
            for (uint32_t i = 0; i < v->len; i++) {
                if (i) buf_putc(b, ',');
                json_write_float(b, v->floats[i]);
            }
        }
        for (const json_value *e = v->child; e; e = e->next) {
            if (e != v->child) buf_putc(b, ',');
            json_write_value(b, e);
        }
        buf_putc(b, ']');
        break;
    case JSON_OBJECT:
        buf_putc(b, '{');
        for (const json_value *m = v->child; m; m = m->next) {
            if (m != v->child) buf_putc(b, ',');
            json_write_string(b, m->key ? m->key : "", m->key ? m->key_len : 0);
            buf_putc(b, ':');
            json_write_value(b, m);
        }
        buf_putc(b, '}');
        break;
    }
}

/* Writes the shortest of "%.Ng", N = min_digits..max_digits, that reads
 * back to the same bits. The first N that round-trips has the fewest
 * digits; only when it came out in exponent form with a positive exponent
 * ("1.2345679e+08") can a larger N be shorter, in fixed form
 * ("123456792"), so only then are the larger N tried too. is_float: the
 * value is a float widened to double, compared as a float. */
static void write_shortest(buf *b, double d, bool is_float, int min_digits, int max_digits) {
    char best[48], tmp[48];
    int best_len = -1;
    locale_t loc = c_locale();
    locale_t old = loc ? uselocale(loc) : (locale_t)0; /* this thread only */
    for (int digits = min_digits; digits <= max_digits; digits++) {
        int n = snprintf(tmp, sizeof tmp, "%.*g", digits, d);
        if (n <= 0 || (size_t)n >= sizeof tmp) continue;
        bool same;
        if (is_float) {
            float back = strtof(tmp, NULL), f = (float)d;
            same = memcmp(&back, &f, sizeof f) == 0;
        } else {
            double back = strtod(tmp, NULL);
            same = memcmp(&back, &d, sizeof d) == 0;
        }
        if (!same && digits < max_digits) continue;
        if (best_len < 0 || n < best_len) {
            memcpy(best, tmp, (size_t)n + 1);
            best_len = n;
        }
        if (strstr(best, "e+") == NULL) break;
    }
    if (loc) uselocale(old);
    assert(best_len > 0); /* the last N is always taken; %.17g of a finite double fits */
    buf_append(b, best, (size_t)best_len);
}

void json_write_float(buf *b, float f) {
    if (!isfinite(f)) {
        buf_puts(b, "null"); /* JSON has no NaN or Infinity */
        return;
    }
    /* %.9g always round-trips a float (FLT_DECIMAL_DIG); below %.6g
     * (FLT_DIG) nothing shorter can exist that %g would not already give
     * by dropping trailing zeros. */
    write_shortest(b, (double)f, true, 6, 9);
}

void json_write_double(buf *b, double d) {
    if (!isfinite(d)) {
        buf_puts(b, "null");
        return;
    }
    write_shortest(b, d, false, 15, 17); /* DBL_DIG .. DBL_DECIMAL_DIG */
}
