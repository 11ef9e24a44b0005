/*
 * filter.c: compiling and matching filters (API.md "Filter language",
 * docs/filter.md).
 * Layer: filter.
 *
 * Compilation turns the filter JSON into a tree of fnodes, once per query:
 *
 *   AND / OR   kids[0..nkids): a filter object with several keys, $and, $or,
 *              and a field with several operators (all ANDed)
 *   NOT        kids[0]: $not, and the negative operators, compiled as
 *              $ne v = NOT($eq v), $nin L = NOT($in L),
 *              {"$exists": false} = NOT(exists)
 *   LEAF       one positive operator on one field: EXISTS EQ CONTAINS
 *              GT GTE LT LTE PREFIX IN
 *
 * With the negative operators rewritten, one rule covers every leaf: a
 * missing attribute makes it false, except EXISTS, which is exactly
 * "present". So $ne and $nin hold for a missing attribute, for a value of
 * another type and for an array without a matching element, as API.md
 * requires, with no special case anywhere.
 *
 * Invariants of a compiled filter (all established by compile_*):
 *   1. Nesting depth <= FILTER_MAX_DEPTH and leaves <= FILTER_MAX_CONDITIONS,
 *      so match_node's recursion and per-row work are bounded.
 *   2. Every operand is a copy in the filter's arena (fvalue); nothing
 *      points into the caller's JSON.
 *   3. An IN leaf's numbers are sorted by num_cmp and its strings by
 *      bytes_cmp (both total orders), so lookups bisect.
 *   4. The tree is never modified after filter_compile returns, which is
 *      what makes concurrent matching safe.
 *
 * Errors name the path of the offending value in the filter JSON
 * ("filter.$and[1].year"), rendered only when an error happens: the path is
 * a chain of stack frames (fpath) that costs nothing on success.
 */
#include "filter/filter.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* ---- arena: every allocation of one compiled filter ------------------ */

/* Blocks of at least this size; a filter is usually far smaller, large
 * $in lists get a block of their own. */
#define ARENA_BLOCK_BYTES 4096

typedef struct arena_block {
    struct arena_block *next;
    size_t used;
    size_t cap;
    max_align_t data[]; /* cap bytes */
} arena_block;

static void *arena_alloc(arena_block **head, size_t size) {
    const size_t align = alignof(max_align_t);
    size = (size + align - 1) / align * align;
    if (size == 0) size = align;
    arena_block *b = *head;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = size > ARENA_BLOCK_BYTES ? size : ARENA_BLOCK_BYTES;
        b = malloc(sizeof(arena_block) + cap);
        if (b == NULL) return NULL;
        b->next = *head;
        b->used = 0;
        b->cap = cap;
        *head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    return p;
}

static void arena_free(arena_block *b) {
    while (b != NULL) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
}

/* ---- compiled values and nodes ---------------------------------------- */

typedef enum fv_type { FV_NULL, FV_BOOL, FV_NUMBER, FV_STRING, FV_ARRAY, FV_OBJECT } fv_type;

/* A JSON value copied out of the filter (invariant 2). */
typedef struct fvalue fvalue;
struct fvalue {
    fv_type type;
    bool boolean;      /* BOOL */
    bool is_int;       /* NUMBER: exact in i64 */
    int64_t i64;       /* NUMBER, when is_int */
    double num;        /* NUMBER */
    const char *str;   /* STRING: bytes (may hold NUL) */
    uint32_t len;      /* STRING: bytes; ARRAY/OBJECT: items */
    fvalue *items;     /* ARRAY: elements; OBJECT: member values, in order */
    const char *key;   /* member of an OBJECT: its key */
    uint32_t key_len;
};

/* The list of one $in / $nin, split by type (invariant 3). */
typedef struct in_set {
    fvalue *nums;      /* sorted by num_cmp */
    uint32_t n_nums;
    fvalue *strs;      /* sorted by bytes_cmp */
    uint32_t n_strs;
    fvalue *others;    /* arrays and objects, compared one by one */
    uint32_t n_others;
    bool has_true, has_false, has_null;
} in_set;

typedef enum fnode_kind { FN_AND, FN_OR, FN_NOT, FN_LEAF } fnode_kind;

typedef enum leaf_op {
    LEAF_EXISTS,
    LEAF_EQ,
    LEAF_CONTAINS,
    LEAF_GT,
    LEAF_GTE,
    LEAF_LT,
    LEAF_LTE,
    LEAF_PREFIX,
    LEAF_IN
} leaf_op;

typedef struct fnode fnode;
struct fnode {
    fnode_kind kind;
    uint32_t nkids;     /* AND/OR: kids; NOT: 1 */
    fnode *kids;
    /* LEAF only: */
    leaf_op op;
    bool is_id;         /* the field is the document id */
    const char *field;  /* attribute name (may hold NUL) */
    uint32_t field_len;
    fvalue val;         /* EQ CONTAINS GT GTE LT LTE PREFIX */
    in_set *set;        /* IN */
};

struct filter_expr {
    arena_block *arena; /* owns every node, value and string below */
    fnode root;
    bool needs_attrs;   /* some leaf names an attribute other than id */
    uint32_t conditions;
};

/* ---- comparisons (shared by sorting and matching) --------------------- */

static int bytes_cmp(const char *a, uint32_t a_len, const char *b, uint32_t b_len) {
    uint32_t common = a_len < b_len ? a_len : b_len;
    int c = common ? memcmp(a, b, common) : 0;
    if (c != 0) return c < 0 ? -1 : 1;
    return (a_len > b_len) - (a_len < b_len);
}

/* Exact comparison of an int64 with a double (never NaN: JSON has none).
 * Converting the int to double would round above 2^53 and call
 * 9007199254740993 equal to 9007199254740992.0. */
static int cmp_i64_double(int64_t i, double d) {
    if (d >= 9223372036854775808.0) return -1;   /* >= 2^63, also +inf */
    if (d < -9223372036854775808.0) return 1;    /* < -2^63, also -inf */
    int64_t t = (int64_t)d; /* exact: |d| < 2^63, truncated toward zero */
    if (i != t) return i < t ? -1 : 1;
    double frac = d - (double)t; /* exact: t is d's integer part */
    return frac > 0 ? -1 : (frac < 0 ? 1 : 0);
}

/* Numbers as numbers: ints exactly against ints and against floats. */
static int num_cmp(bool a_int, int64_t a_i64, double a_num, bool b_int, int64_t b_i64,
                   double b_num) {
    if (a_int && b_int) return (a_i64 > b_i64) - (a_i64 < b_i64);
    if (a_int) return cmp_i64_double(a_i64, b_num);
    if (b_int) return -cmp_i64_double(b_i64, a_num);
    return (a_num > b_num) - (a_num < b_num);
}

static int num_cmp_jf(const json_value *a, const fvalue *x) {
    return num_cmp(a->is_int, a->i64, a->num, x->is_int, x->i64, x->num);
}

static int fv_num_qsort(const void *pa, const void *pb) {
    const fvalue *a = pa, *b = pb;
    return num_cmp(a->is_int, a->i64, a->num, b->is_int, b->i64, b->num);
}

static int fv_str_qsort(const void *pa, const void *pb) {
    const fvalue *a = pa, *b = pb;
    return bytes_cmp(a->str, a->len, b->str, b->len);
}

/* The last member of an OBJECT named (key, len), or NULL; duplicate keys
 * resolve as in json_get. */
static const json_value *member_last(const json_value *obj, const char *key, uint32_t len) {
    const json_value *found = NULL;
    for (const json_value *c = obj->child; c != NULL; c = c->next)
        if (c->key_len == len && (len == 0 || memcmp(c->key, key, len) == 0)) found = c;
    return found;
}

/* API.md equality: numbers as numbers, strings byte for byte, booleans and
 * null only with their own kind; arrays element by element, in order;
 * objects as sets of members, in any order (JSON objects are unordered).
 * Compiled objects have unique keys (compile rejects duplicates), so equal
 * counts plus every compiled member found equal means equal key sets; an
 * attribute object with duplicate keys is therefore never equal to one. */
static bool value_eq(const json_value *a, const fvalue *x) {
    switch (a->type) {
    case JSON_NULL: return x->type == FV_NULL;
    case JSON_FALSE: return x->type == FV_BOOL && !x->boolean;
    case JSON_TRUE: return x->type == FV_BOOL && x->boolean;
    case JSON_NUMBER: return x->type == FV_NUMBER && num_cmp_jf(a, x) == 0;
    case JSON_STRING:
        return x->type == FV_STRING && a->len == x->len &&
               (a->len == 0 || memcmp(a->str, x->str, a->len) == 0);
    case JSON_ARRAY: {
        if (x->type != FV_ARRAY || a->len != x->len) return false;
        uint32_t i = 0;
        for (const json_value *c = a->child; c != NULL; c = c->next, i++)
            if (i >= x->len || !value_eq(c, &x->items[i])) return false;
        return i == x->len;
    }
    case JSON_OBJECT: {
        if (x->type != FV_OBJECT || a->len != x->len) return false;
        for (uint32_t i = 0; i < x->len; i++) {
            const fvalue *m = &x->items[i];
            const json_value *c = member_last(a, m->key, m->key_len);
            if (c == NULL || !value_eq(c, m)) return false;
        }
        return true;
    }
    }
    return false;
}

/* $eq on a present value: on an array, the whole array or any element. */
static bool eq_or_any(const json_value *v, const fvalue *x) {
    if (value_eq(v, x)) return true;
    if (v->type != JSON_ARRAY) return false;
    for (const json_value *c = v->child; c != NULL; c = c->next)
        if (value_eq(c, x)) return true;
    return false;
}

static bool order_holds(leaf_op op, const json_value *a, const fvalue *x) {
    int c;
    if (a->type == JSON_NUMBER && x->type == FV_NUMBER)
        c = num_cmp_jf(a, x);
    else if (a->type == JSON_STRING && x->type == FV_STRING)
        c = bytes_cmp(a->str, a->len, x->str, x->len);
    else
        return false; /* other types, booleans and null are not ordered */
    switch (op) {
    case LEAF_GT: return c > 0;
    case LEAF_GTE: return c >= 0;
    case LEAF_LT: return c < 0;
    case LEAF_LTE: return c <= 0;
    default: assert(!"not an ordering operator"); return false;
    }
}

static bool prefix_holds(const json_value *a, const fvalue *x) {
    return a->type == JSON_STRING && a->len >= x->len &&
           (x->len == 0 || memcmp(a->str, x->str, x->len) == 0);
}

/* One value (a scalar, an element, or a whole array) against an $in list. */
static bool in_set_has(const in_set *s, const json_value *v) {
    switch (v->type) {
    case JSON_NULL: return s->has_null;
    case JSON_FALSE: return s->has_false;
    case JSON_TRUE: return s->has_true;
    case JSON_NUMBER: {
        uint32_t lo = 0, hi = s->n_nums; /* the answer, if any, is in [lo, hi) */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            int c = num_cmp_jf(v, &s->nums[mid]);
            if (c == 0) return true;
            if (c < 0) hi = mid; else lo = mid + 1;
        }
        return false;
    }
    case JSON_STRING: {
        uint32_t lo = 0, hi = s->n_strs;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            int c = bytes_cmp(v->str, v->len, s->strs[mid].str, s->strs[mid].len);
            if (c == 0) return true;
            if (c < 0) hi = mid; else lo = mid + 1;
        }
        return false;
    }
    case JSON_ARRAY:
    case JSON_OBJECT:
        for (uint32_t i = 0; i < s->n_others; i++)
            if (value_eq(v, &s->others[i])) return true;
        return false;
    }
    return false;
}

/* ---- matching ---------------------------------------------------------- */

/* The attribute named (key, len), or NULL. The last of duplicate keys wins,
 * as in json_get. */
static const json_value *attr_lookup(const json_value *attrs, const char *key, uint32_t len) {
    if (attrs == NULL || attrs->type != JSON_OBJECT) return NULL;
    return member_last(attrs, key, len);
}

static bool match_leaf(const fnode *n, const json_value *v) {
    if (v == NULL) return false; /* missing: every positive operator fails */
    switch (n->op) {
    case LEAF_EXISTS: return true;
    case LEAF_EQ: return eq_or_any(v, &n->val);
    case LEAF_CONTAINS: return v->type == JSON_ARRAY && eq_or_any(v, &n->val);
    case LEAF_IN:
        if (in_set_has(n->set, v)) return true; /* also a whole array in the list */
        if (v->type != JSON_ARRAY) return false;
        for (const json_value *c = v->child; c != NULL; c = c->next)
            if (in_set_has(n->set, c)) return true;
        return false;
    case LEAF_PREFIX:
        if (v->type != JSON_ARRAY) return prefix_holds(v, &n->val);
        for (const json_value *c = v->child; c != NULL; c = c->next)
            if (prefix_holds(c, &n->val)) return true;
        return false;
    case LEAF_GT:
    case LEAF_GTE:
    case LEAF_LT:
    case LEAF_LTE:
        if (v->type != JSON_ARRAY) return order_holds(n->op, v, &n->val);
        for (const json_value *c = v->child; c != NULL; c = c->next)
            if (order_holds(n->op, c, &n->val)) return true;
        return false;
    }
    return false;
}

/* Recursion depth is bounded by FILTER_MAX_DEPTH (invariant 1). */
static bool match_node(const fnode *n, const json_value *id, const json_value *attrs) {
    switch (n->kind) {
    case FN_AND:
        for (uint32_t i = 0; i < n->nkids; i++)
            if (!match_node(&n->kids[i], id, attrs)) return false;
        return true;
    case FN_OR:
        for (uint32_t i = 0; i < n->nkids; i++)
            if (match_node(&n->kids[i], id, attrs)) return true;
        return false;
    case FN_NOT:
        return !match_node(&n->kids[0], id, attrs);
    case FN_LEAF:
        return match_leaf(n, n->is_id ? id : attr_lookup(attrs, n->field, n->field_len));
    }
    return false;
}

bool filter_match(const filter_expr *e, const char *id, uint32_t id_len, const json_value *attrs) {
    /* The id as a JSON string, so leaves on it follow the same rules. */
    json_value idv;
    memset(&idv, 0, sizeof idv);
    idv.type = JSON_STRING;
    idv.str = id != NULL ? id : "";
    idv.len = id != NULL ? id_len : 0;
    return match_node(&e->root, &idv, attrs);
}

bool filter_match_text(const filter_expr *e, const char *id, uint32_t id_len,
                       const char *attrs_json, uint32_t len) {
    if (!e->needs_attrs || attrs_json == NULL || len == 0)
        return filter_match(e, id, id_len, NULL);
    json_doc *doc = NULL;
    json_error jerr;
    if (json_parse(attrs_json, len, &doc, &jerr) != 0) return false;
    bool ok = filter_match(e, id, id_len, json_root(doc));
    json_doc_free(doc);
    return ok;
}

bool filter_match_cb(void *ctx, const char *id, uint32_t id_len, const char *attrs_json,
                     uint32_t len) {
    return filter_match_text((const filter_expr *)ctx, id, id_len, attrs_json, len);
}

bool filter_needs_attrs(const filter_expr *e) { return e->needs_attrs; }

/* ---- error paths -------------------------------------------------------- */

/* One step of the path from the filter's root to a value: a member key, or
 * an array index when key is NULL. Lives on the compiler's stack. */
typedef struct fpath {
    const struct fpath *up;
    const char *key;
    uint32_t key_len;
    uint32_t index;
} fpath;

/* Longest key shown in a path or message before it is cut with "...". */
#define PATH_KEY_SHOW_BYTES 48
/* Longest path shown: deeper ones keep their tail (the part that locates
 * the problem) after a leading "...". */
#define PATH_SHOW_BYTES 200

typedef struct sbuf {
    char data[1024];
    size_t len; /* < sizeof data; data is NUL-terminated */
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    size_t room = sizeof b->data - 1 - b->len;
    if (n > room) n = room;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

/* Bytes of s[0..len) to show: at most PATH_KEY_SHOW_BYTES, never cutting a
 * UTF-8 sequence in two. */
static uint32_t show_len(const char *s, uint32_t len) {
    if (len <= PATH_KEY_SHOW_BYTES) return len;
    uint32_t n = PATH_KEY_SHOW_BYTES;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

/* Writes a key as a JSON string body: quotes, backslashes and control
 * characters escaped, long keys cut with "...". */
static void sb_put_key_quoted(sbuf *b, const char *s, uint32_t len) {
    uint32_t n = show_len(s, len);
    sb_putn(b, "\"", 1);
    for (uint32_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            sb_putn(b, esc, 2);
        } else if (ch < 0x20 || ch == 0x7F) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            sb_puts(b, esc);
        } else {
            sb_putn(b, (const char *)&s[i], 1);
        }
    }
    if (n < len) sb_puts(b, "...");
    sb_putn(b, "\"", 1);
}

/* A key that reads unambiguously after a dot: letters, digits, _ $ - and
 * non-ASCII UTF-8. Anything else is shown as ["key"]. */
static bool key_is_plain(const char *s, uint32_t len) {
    if (len == 0 || len > PATH_KEY_SHOW_BYTES) return false;
    for (uint32_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '$' || ch == '-' || ch >= 0x80;
        if (!ok) return false;
    }
    return true;
}

static void path_render(sbuf *b, const fpath *p) {
    if (p->up == NULL) { /* the root: its name as is ("filter") */
        sb_putn(b, p->key, p->key_len);
        return;
    }
    path_render(b, p->up);
    if (p->key == NULL) {
        char idx[16];
        snprintf(idx, sizeof idx, "[%" PRIu32 "]", p->index);
        sb_puts(b, idx);
    } else if (key_is_plain(p->key, p->key_len)) {
        sb_putn(b, ".", 1);
        sb_putn(b, p->key, p->key_len);
    } else {
        sb_putn(b, "[", 1);
        sb_put_key_quoted(b, p->key, p->key_len);
        sb_putn(b, "]", 1);
    }
}

static const char *type_name(json_type t) {
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_FALSE:
    case JSON_TRUE: return "a boolean";
    case JSON_NUMBER: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
    }
    return "a value";
}

/* ---- compiler ----------------------------------------------------------- */

typedef struct compiler {
    filter_expr *e;
    tdb_error *err;
    int rc; /* first error (0 while none) */
} compiler;

/* Fills err with "<path>: <message>" (TDB_EINVAL, invalid_filter). */
__attribute__((format(printf, 3, 4))) static int fail(compiler *c, const fpath *p,
                                                      const char *fmt, ...) {
    sbuf path = {.len = 0};
    path.data[0] = '\0';
    path_render(&path, p);
    const char *shown = path.data;
    char tail[PATH_SHOW_BYTES + 8];
    if (path.len > PATH_SHOW_BYTES) {
        size_t start = path.len - PATH_SHOW_BYTES;
        while (start < path.len && ((unsigned char)path.data[start] & 0xC0) == 0x80) start++;
        snprintf(tail, sizeof tail, "...%s", path.data + start);
        shown = tail;
    }
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->rc = tdb_err(c->err, TDB_EINVAL, FILTER_ERROR_NAME, "%s: %s", shown, msg);
    return c->rc;
}

static int oom(compiler *c) {
    c->rc = tdb_err(c->err, TDB_ENOMEM, NULL, "out of memory compiling the filter");
    return c->rc;
}

static void *c_alloc(compiler *c, size_t size) { return arena_alloc(&c->e->arena, size); }

/* A key, quoted for a message (PATH_KEY_SHOW_BYTES at most). */
static const char *quote_key(sbuf *b, const char *key, uint32_t len) {
    b->len = 0;
    b->data[0] = '\0';
    sb_put_key_quoted(b, key, len);
    return b->data;
}

static bool key_is(const json_value *m, const char *name) {
    size_t n = strlen(name);
    return m->key_len == n && memcmp(m->key, name, n) == 0;
}

static bool key_is_operator(const json_value *m) { return m->key_len > 0 && m->key[0] == '$'; }

/* Rejects an object with two equal keys: JSON parsers disagree on which
 * one counts, so a filter must not depend on it. Returns 0 or the error. */
static int check_unique_keys(compiler *c, const json_value *obj, const fpath *p) {
    if (obj->len < 2) return 0;
    if (obj->len <= 8) { /* the usual case: no allocation */
        for (const json_value *a = obj->child; a != NULL; a = a->next)
            for (const json_value *b = a->next; b != NULL; b = b->next)
                if (bytes_cmp(a->key, a->key_len, b->key, b->key_len) == 0) {
                    sbuf q;
                    return fail(c, p, "duplicate key %s: give each key once",
                                quote_key(&q, a->key, a->key_len));
                }
        return 0;
    }
    /* Larger objects: sort copies of the keys and compare neighbours. */
    fvalue *keys = malloc(sizeof(fvalue) * obj->len);
    if (keys == NULL) return oom(c);
    uint32_t n = 0;
    for (const json_value *a = obj->child; a != NULL; a = a->next, n++) {
        keys[n].str = a->key;
        keys[n].len = a->key_len;
    }
    qsort(keys, n, sizeof(fvalue), fv_str_qsort);
    int rc = 0;
    for (uint32_t i = 1; i < n && rc == 0; i++)
        if (bytes_cmp(keys[i - 1].str, keys[i - 1].len, keys[i].str, keys[i].len) == 0) {
            sbuf q;
            rc = fail(c, p, "duplicate key %s: give each key once",
                      quote_key(&q, keys[i].str, keys[i].len));
        }
    free(keys);
    return rc;
}

/* Deep copy of v (at path p) into the arena (invariant 2). Objects must
 * have unique keys (value_eq relies on it). Recursion is bounded by
 * JSON_MAX_DEPTH, the parser's limit. */
static int copy_value(compiler *c, const json_value *v, const fpath *p, fvalue *out) {
    memset(out, 0, sizeof *out);
    switch (v->type) {
    case JSON_NULL: out->type = FV_NULL; return 0;
    case JSON_FALSE:
    case JSON_TRUE:
        out->type = FV_BOOL;
        out->boolean = v->type == JSON_TRUE;
        return 0;
    case JSON_NUMBER:
        out->type = FV_NUMBER;
        out->is_int = v->is_int;
        out->i64 = v->i64;
        out->num = v->num;
        return 0;
    case JSON_STRING: {
        out->type = FV_STRING;
        char *s = c_alloc(c, (size_t)v->len + 1);
        if (s == NULL) return oom(c);
        if (v->len) memcpy(s, v->str, v->len);
        s[v->len] = '\0';
        out->str = s;
        out->len = v->len;
        return 0;
    }
    case JSON_ARRAY:
    case JSON_OBJECT: {
        out->type = v->type == JSON_ARRAY ? FV_ARRAY : FV_OBJECT;
        out->len = v->len;
        if (v->len == 0) return 0;
        if (out->type == FV_OBJECT) {
            int rc = check_unique_keys(c, v, p);
            if (rc) return rc;
        }
        out->items = c_alloc(c, sizeof(fvalue) * v->len);
        if (out->items == NULL) return oom(c);
        uint32_t i = 0;
        for (const json_value *k = v->child; k != NULL; k = k->next, i++) {
            assert(i < v->len);
            const fpath kp = {p, out->type == FV_OBJECT ? k->key : NULL, k->key_len, i};
            int rc = copy_value(c, k, &kp, &out->items[i]);
            if (rc) return rc;
            if (out->type == FV_OBJECT) {
                char *key = c_alloc(c, (size_t)k->key_len + 1);
                if (key == NULL) return oom(c);
                if (k->key_len) memcpy(key, k->key, k->key_len);
                key[k->key_len] = '\0';
                out->items[i].key = key;
                out->items[i].key_len = k->key_len;
            }
        }
        return 0;
    }
    }
    return 0;
}

/* An operand of a leaf on `id`: ids are strings, and an integer written in
 * JSON denotes the id that is its decimal string (API.md, Documents), so
 * {"id": 5} is {"id": "5"}, as ids are accepted at upsert. */
static int copy_operand(compiler *c, const json_value *v, bool is_id, const fpath *p,
                        fvalue *out) {
    if (!(is_id && v->type == JSON_NUMBER && v->is_int)) return copy_value(c, v, p, out);
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%" PRId64, v->i64);
    char *s = c_alloc(c, (size_t)n + 1);
    if (s == NULL) return oom(c);
    memcpy(s, digits, (size_t)n + 1);
    memset(out, 0, sizeof *out);
    out->type = FV_STRING;
    out->str = s;
    out->len = (uint32_t)n;
    return 0;
}

static int new_leaf(compiler *c, const fpath *field_path, const char *field, uint32_t field_len,
                    bool is_id, leaf_op op, fnode *out) {
    if (++c->e->conditions > FILTER_MAX_CONDITIONS)
        return fail(c, field_path, "the filter has more than %d conditions; split the query",
                    FILTER_MAX_CONDITIONS);
    memset(out, 0, sizeof *out);
    out->kind = FN_LEAF;
    out->op = op;
    out->is_id = is_id;
    out->field = field;
    out->field_len = field_len;
    if (!is_id) c->e->needs_attrs = true;
    return 0;
}

/* Makes *out a NOT node and returns its child, for the caller to fill. */
static fnode *make_not(compiler *c, fnode *out) {
    fnode *kid = c_alloc(c, sizeof(fnode));
    if (kid == NULL) return NULL;
    memset(out, 0, sizeof *out);
    out->kind = FN_NOT;
    out->nkids = 1;
    out->kids = kid;
    return kid;
}

static int build_in_set(compiler *c, const json_value *list, bool is_id, const fpath *p,
                        in_set **out) {
    in_set *s = c_alloc(c, sizeof(in_set));
    if (s == NULL) return oom(c);
    memset(s, 0, sizeof *s);
    uint32_t n_nums = 0, n_strs = 0, n_others = 0;
    for (const json_value *v = list->child; v != NULL; v = v->next) {
        if (v->type == JSON_NUMBER && !(is_id && v->is_int)) n_nums++;
        else if (v->type == JSON_STRING || v->type == JSON_NUMBER) n_strs++;
        else if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) n_others++;
    }
    if ((n_nums && !(s->nums = c_alloc(c, sizeof(fvalue) * n_nums))) ||
        (n_strs && !(s->strs = c_alloc(c, sizeof(fvalue) * n_strs))) ||
        (n_others && !(s->others = c_alloc(c, sizeof(fvalue) * n_others))))
        return oom(c);
    uint32_t i = 0;
    for (const json_value *v = list->child; v != NULL; v = v->next, i++) {
        const fpath vp = {p, NULL, 0, i};
        fvalue tmp;
        int rc = copy_operand(c, v, is_id, &vp, &tmp);
        if (rc) return rc;
        switch (tmp.type) {
        case FV_NULL: s->has_null = true; break;
        case FV_BOOL: if (tmp.boolean) s->has_true = true; else s->has_false = true; break;
        case FV_NUMBER: s->nums[s->n_nums++] = tmp; break;
        case FV_STRING: s->strs[s->n_strs++] = tmp; break;
        case FV_ARRAY:
        case FV_OBJECT: s->others[s->n_others++] = tmp; break;
        }
    }
    assert(s->n_nums == n_nums && s->n_strs == n_strs && s->n_others == n_others);
    if (s->n_nums > 1) qsort(s->nums, s->n_nums, sizeof(fvalue), fv_num_qsort);
    if (s->n_strs > 1) qsort(s->strs, s->n_strs, sizeof(fvalue), fv_str_qsort);
    *out = s;
    return 0;
}

static int compile_filter(compiler *c, const json_value *obj, const fpath *p, uint32_t depth,
                          fnode *out);
static int compile_ops(compiler *c, const char *field, uint32_t field_len, bool is_id,
                       const json_value *ops, const fpath *fp, uint32_t depth, fnode *out);

#define OPERATOR_LIST "$eq $ne $gt $gte $lt $lte $in $nin $exists $contains $prefix $not"

/* One operator of a field: `m` is the member {"$op": operand} of the
 * field's operator object, fp the field's path. */
static int compile_op(compiler *c, const char *field, uint32_t field_len, bool is_id,
                      const json_value *m, const fpath *fp, uint32_t depth, fnode *out) {
    const fpath op_path = {fp, m->key, m->key_len, 0};
    static const struct { const char *name; leaf_op op; bool negate; } simple[] = {
        {"$eq", LEAF_EQ, false},   {"$ne", LEAF_EQ, true},     {"$gt", LEAF_GT, false},
        {"$gte", LEAF_GTE, false}, {"$lt", LEAF_LT, false},    {"$lte", LEAF_LTE, false},
        {"$contains", LEAF_CONTAINS, false},
    };
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
        if (!key_is(m, simple[i].name)) continue;
        fnode *leaf = out;
        if (simple[i].negate && (leaf = make_not(c, out)) == NULL) return oom(c);
        int rc = new_leaf(c, fp, field, field_len, is_id, simple[i].op, leaf);
        return rc ? rc : copy_operand(c, m, is_id, &op_path, &leaf->val);
    }
    if (key_is(m, "$in") || key_is(m, "$nin")) {
        const char *name = key_is(m, "$in") ? "$in" : "$nin";
        if (m->type != JSON_ARRAY)
            return fail(c, &op_path, "%s takes an array of values, got %s", name,
                        type_name(m->type));
        if (m->len > FILTER_MAX_IN_VALUES)
            return fail(c, &op_path, "%s takes at most %d values, got %" PRIu32, name,
                        FILTER_MAX_IN_VALUES, m->len);
        fnode *leaf = out;
        if (name[1] == 'n' && (leaf = make_not(c, out)) == NULL) return oom(c);
        int rc = new_leaf(c, fp, field, field_len, is_id, LEAF_IN, leaf);
        return rc ? rc : build_in_set(c, m, is_id, &op_path, &leaf->set);
    }
    if (key_is(m, "$exists")) {
        if (m->type != JSON_TRUE && m->type != JSON_FALSE)
            return fail(c, &op_path, "$exists takes true or false, got %s", type_name(m->type));
        fnode *leaf = out;
        if (m->type == JSON_FALSE && (leaf = make_not(c, out)) == NULL) return oom(c);
        return new_leaf(c, fp, field, field_len, is_id, LEAF_EXISTS, leaf);
    }
    if (key_is(m, "$prefix")) {
        if (m->type != JSON_STRING)
            return fail(c, &op_path, "$prefix takes a string, got %s", type_name(m->type));
        int rc = new_leaf(c, fp, field, field_len, is_id, LEAF_PREFIX, out);
        return rc ? rc : copy_value(c, m, &op_path, &out->val);
    }
    if (key_is(m, "$not")) {
        /* A field's $not negates an object of operators on that field:
         * {"year": {"$not": {"$gt": 5}}} = NOT(year > 5). */
        if (m->type != JSON_OBJECT)
            return fail(c, &op_path,
                        "$not on a field takes an object of operators such as {\"$gt\": 5}, "
                        "got %s",
                        type_name(m->type));
        if (m->len == 0)
            return fail(c, &op_path, "$not on a field needs at least one operator");
        for (const json_value *k = m->child; k != NULL; k = k->next)
            if (!key_is_operator(k)) {
                sbuf q;
                return fail(c, &op_path,
                            "$not on a field takes operators, not the plain key %s; "
                            "to negate an equality use $ne",
                            quote_key(&q, k->key, k->key_len));
            }
        if (depth + 1 > FILTER_MAX_DEPTH)
            return fail(c, &op_path, "the filter nests deeper than %d levels", FILTER_MAX_DEPTH);
        fnode *kid = make_not(c, out);
        if (kid == NULL) return oom(c);
        return compile_ops(c, field, field_len, is_id, m, &op_path, depth + 1, kid);
    }
    sbuf q;
    if (key_is(m, "$and") || key_is(m, "$or"))
        return fail(c, fp,
                    "%s combines filters and goes outside a field: "
                    "{\"%s\": [{\"field\": ...}, ...]}",
                    m->key, m->key);
    return fail(c, fp, "unknown operator %s (operators: " OPERATOR_LIST ")",
                quote_key(&q, m->key, m->key_len));
}

/* A field's operator object {"$op": x, ...} (every key an operator; the
 * caller checked): one leaf, or an AND of one per operator. */
static int compile_ops(compiler *c, const char *field, uint32_t field_len, bool is_id,
                       const json_value *ops, const fpath *fp, uint32_t depth, fnode *out) {
    int rc = check_unique_keys(c, ops, fp);
    if (rc) return rc;
    if (ops->len == 1) return compile_op(c, field, field_len, is_id, ops->child, fp, depth, out);
    memset(out, 0, sizeof *out);
    out->kind = FN_AND;
    out->kids = c_alloc(c, sizeof(fnode) * ops->len);
    if (out->kids == NULL) return oom(c);
    out->nkids = ops->len;
    uint32_t i = 0;
    for (const json_value *m = ops->child; m != NULL; m = m->next, i++) {
        rc = compile_op(c, field, field_len, is_id, m, fp, depth, &out->kids[i]);
        if (rc) return rc;
    }
    return 0;
}

/* One member of a filter object: a combinator or a field condition. p is
 * the path of the object holding it. */
static int compile_member(compiler *c, const json_value *m, const fpath *p, uint32_t depth,
                          fnode *out) {
    const fpath mp = {p, m->key, m->key_len, 0};
    bool is_and = key_is(m, "$and");
    if (is_and || key_is(m, "$or")) {
        const char *name = is_and ? "$and" : "$or";
        if (m->type != JSON_ARRAY)
            return fail(c, &mp, "%s takes an array of filter objects, got %s", name,
                        type_name(m->type));
        memset(out, 0, sizeof *out);
        out->kind = is_and ? FN_AND : FN_OR;
        if (m->len > 0 && (out->kids = c_alloc(c, sizeof(fnode) * m->len)) == NULL) return oom(c);
        out->nkids = m->len;
        uint32_t i = 0;
        for (const json_value *k = m->child; k != NULL; k = k->next, i++) {
            const fpath ip = {&mp, NULL, 0, i};
            int rc = compile_filter(c, k, &ip, depth + 1, &out->kids[i]);
            if (rc) return rc;
        }
        return 0;
    }
    if (key_is(m, "$not")) {
        if (m->type != JSON_OBJECT)
            return fail(c, &mp, "$not takes a filter object, got %s", type_name(m->type));
        fnode *kid = make_not(c, out);
        if (kid == NULL) return oom(c);
        return compile_filter(c, m, &mp, depth + 1, kid);
    }
    if (key_is_operator(m)) {
        sbuf q;
        return fail(c, p,
                    "unknown combinator %s (combinators: $and $or $not; operators go inside a "
                    "field, as in {\"year\": {\"$gt\": 2000}})",
                    quote_key(&q, m->key, m->key_len));
    }
    /* A field. "id" is the document id, whatever the attributes hold. */
    bool is_id = key_is(m, "id");
    const char *field = NULL;
    if (!is_id) {
        char *copy = c_alloc(c, (size_t)m->key_len + 1);
        if (copy == NULL) return oom(c);
        if (m->key_len) memcpy(copy, m->key, m->key_len);
        copy[m->key_len] = '\0';
        field = copy;
    }
    bool has_op = false, has_plain = false;
    const json_value *an_op = NULL, *a_plain = NULL;
    if (m->type == JSON_OBJECT)
        for (const json_value *k = m->child; k != NULL; k = k->next) {
            if (key_is_operator(k)) { has_op = true; if (!an_op) an_op = k; }
            else { has_plain = true; if (!a_plain) a_plain = k; }
        }
    if (has_op && has_plain) {
        sbuf q1, q2;
        return fail(c, &mp,
                    "mixes operators (%s) with plain keys (%s); to match an object value "
                    "write {\"$eq\": {...}}",
                    quote_key(&q1, an_op->key, an_op->key_len),
                    quote_key(&q2, a_plain->key, a_plain->key_len));
    }
    if (has_op) return compile_ops(c, field, m->key_len, is_id, m, &mp, depth, out);
    /* {"field": value}: $eq (also for an object without operators). */
    int rc = new_leaf(c, &mp, field, m->key_len, is_id, LEAF_EQ, out);
    return rc ? rc : copy_operand(c, m, is_id, &mp, &out->val);
}

/* A filter object at path p: an AND of its members (true when empty). */
static int compile_filter(compiler *c, const json_value *obj, const fpath *p, uint32_t depth,
                          fnode *out) {
    if (obj->type != JSON_OBJECT)
        return fail(c, p, "a filter must be a JSON object such as {\"year\": 2024}, got %s",
                    type_name(obj->type));
    if (depth > FILTER_MAX_DEPTH)
        return fail(c, p, "the filter nests deeper than %d levels", FILTER_MAX_DEPTH);
    int rc = check_unique_keys(c, obj, p);
    if (rc) return rc;
    if (obj->len == 1) return compile_member(c, obj->child, p, depth, out);
    memset(out, 0, sizeof *out);
    out->kind = FN_AND;
    if (obj->len > 0 && (out->kids = c_alloc(c, sizeof(fnode) * obj->len)) == NULL) return oom(c);
    out->nkids = obj->len;
    uint32_t i = 0;
    for (const json_value *m = obj->child; m != NULL; m = m->next, i++) {
        rc = compile_member(c, m, p, depth, &out->kids[i]);
        if (rc) return rc;
    }
    return 0;
}

int filter_compile(const json_value *filter, filter_expr **out, tdb_error *err) {
    *out = NULL;
    static const fpath root = {NULL, "filter", 6, 0};
    if (filter == NULL)
        return tdb_err(err, TDB_EINVAL, FILTER_ERROR_NAME, "filter: missing (give a JSON object)");
    filter_expr *e = calloc(1, sizeof *e);
    if (e == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory compiling the filter");
    compiler c = {e, err, 0};
    int rc = compile_filter(&c, filter, &root, 1, &e->root);
    if (rc) {
        filter_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

int filter_compile_text(const char *json, size_t len, filter_expr **out, tdb_error *err) {
    *out = NULL;
    json_doc *doc = NULL;
    json_error jerr;
    if (json_parse(json, len, &doc, &jerr) != 0)
        return tdb_err(err, TDB_EINVAL, FILTER_ERROR_NAME, "filter: not valid JSON at byte %zu: %s",
                       jerr.offset, jerr.message);
    int rc = filter_compile(json_root(doc), out, err);
    json_doc_free(doc);
    return rc;
}

void filter_free(filter_expr *e) {
    if (e == NULL) return;
    arena_free(e->arena);
    free(e);
}

/* ---- evaluation from typed columns ------------------------------------ */

/*
 * filter_columns_eval answers a whole segment at once. Every node yields
 * two row sets, yes (rows that certainly match) and may (rows that might:
 * yes plus the undecided ones), with yes a subset of may:
 *   leaf on a column  from the column: yes = the rows it decides true,
 *                     may = yes + the rows it cannot decide
 *   leaf on id        from the sorted ids: row ranges, exact
 *   other leaves      yes = {}, may = every row
 *   AND / OR          yes and may intersected / united over the kids
 *   NOT               yes = all - kid.may, may = all - kid.yes
 * This is three-valued logic (true, false, unknown), so a row in yes
 * matches, a row outside may does not, and only the rows in between need
 * filter_match on their JSON. A column leaf reuses the very comparisons
 * of filter_match: each dictionary entry is turned into the json_value it
 * stands for and tested with the leaf's predicate, and a row holds if one
 * of its atoms does (a scalar is a row with one atom), which is match_leaf
 * on a value reduced to atoms. What atoms cannot say, whether a whole array
 * equals an array operand, is left undecided.
 */

/* Batch of rows handed to roaring_bitmap_add_many at once. */
#define COLS_BATCH_ROWS 1024

/* A column leaf is answered from the postings of its true entries when
 * they list at most this fraction of the rows; beyond, one scan of the
 * codes is cheaper than merging many lists. */
#define COLS_POSTINGS_MAX_FRACTION 4

int filter_num_cmp(bool a_is_int, int64_t a_i64, double a_num, bool b_is_int, int64_t b_i64,
                   double b_num) {
    return num_cmp(a_is_int, a_i64, a_num, b_is_int, b_i64, b_num);
}

/* roaring_bitmap_free, also of NULL (not a no-op in every CRoaring). */
static void bm_free(roaring_bitmap_t *bm) {
    if (bm != NULL) roaring_bitmap_free(bm);
}

typedef struct row_batch {
    roaring_bitmap_t *bm;
    uint32_t rows[COLS_BATCH_ROWS];
    uint32_t n;
} row_batch;

static void batch_add(row_batch *b, uint32_t row) {
    b->rows[b->n++] = row;
    if (b->n == COLS_BATCH_ROWS) {
        roaring_bitmap_add_many(b->bm, b->n, b->rows);
        b->n = 0;
    }
}

static void batch_flush(row_batch *b) {
    if (b->n) roaring_bitmap_add_many(b->bm, b->n, b->rows);
    b->n = 0;
}

/* Dictionary entry `code` as the JSON value it stands for. */
static void atom_value(const filter_column *col, uint32_t code, json_value *v) {
    memset(v, 0, sizeof *v);
    switch (col->kind) {
    case FILTER_ATOM_NUM:
        v->type = JSON_NUMBER;
        v->is_int = col->num_is_int[code] != 0;
        v->i64 = col->num_i64[code];
        v->num = v->is_int ? (double)v->i64 : col->num_f64[code];
        break;
    case FILTER_ATOM_STR:
        v->type = JSON_STRING;
        v->str = col->str_bytes + col->str_offsets[code];
        v->len = (uint32_t)(col->str_offsets[code + 1] - col->str_offsets[code]);
        break;
    case FILTER_ATOM_BOOL:
        v->type = code ? JSON_TRUE : JSON_FALSE;
        break;
    }
}

/* The leaf's test of one scalar value (an atom, alone or in an array):
 * match_leaf without its array handling. */
static bool atom_holds(const fnode *n, const json_value *v) {
    switch (n->op) {
    case LEAF_EXISTS: return true;
    case LEAF_EQ:
    case LEAF_CONTAINS: return value_eq(v, &n->val);
    case LEAF_IN: return in_set_has(n->set, v);
    case LEAF_PREFIX: return prefix_holds(v, &n->val);
    case LEAF_GT:
    case LEAF_GTE:
    case LEAF_LT:
    case LEAF_LTE: return order_holds(n->op, v, &n->val);
    }
    return false;
}

typedef struct cols_eval {
    const filter_columns *cols;
    const roaring_bitmap_t *all; /* rows 0..rows-1 */
    tdb_error *err;
} cols_eval;

static int cols_oom(cols_eval *ce) {
    return tdb_err(ce->err, TDB_ENOMEM, NULL, "out of memory evaluating a filter on columns");
}

/* A leaf on an attribute that has a column. */
static int leaf_on_column(cols_eval *ce, const fnode *n, const filter_column *col,
                          roaring_bitmap_t **yes, roaring_bitmap_t **may) {
    const uint32_t rows = col->rows, dict = col->dict_count;
    row_batch *yb = calloc(1, sizeof *yb), *ub = calloc(1, sizeof *ub);
    bool *hit = calloc(dict ? dict : 1, sizeof *hit);
    int rc = 0;
    if (yb == NULL || ub == NULL || hit == NULL) goto oom;
    yb->n = ub->n = 0;
    yb->bm = roaring_bitmap_create();
    ub->bm = roaring_bitmap_create();
    if (yb->bm == NULL || ub->bm == NULL) goto oom;

    /* A null row is answered by match_leaf on null itself. */
    json_value nullv;
    memset(&nullv, 0, sizeof nullv);
    nullv.type = JSON_NULL;
    const bool exists = n->op == LEAF_EXISTS;
    const bool null_holds = match_leaf(n, &nullv);
    /* Whole-array comparisons atoms cannot decide: an array operand of
     * $eq / $contains, arrays or objects in an $in list. */
    const bool whole = ((n->op == LEAF_EQ || n->op == LEAF_CONTAINS) && n->val.type == FV_ARRAY) ||
                       (n->op == LEAF_IN && n->set->n_others > 0);
    uint64_t posted = 0;
    for (uint32_t c = 0; c < dict && !exists; c++) {
        json_value v;
        atom_value(col, c, &v);
        hit[c] = atom_holds(n, &v);
        if (hit[c] && col->post_offsets != NULL) posted += col->post_offsets[c + 1] - col->post_offsets[c];
    }
    bool by_postings = col->post_offsets != NULL && !exists && !null_holds && !whole &&
                       n->op != LEAF_CONTAINS && posted <= rows / COLS_POSTINGS_MAX_FRACTION;
    if (by_postings) {
        /* Postings hold a row once per entry it has, scalar or element:
         * exactly "some atom of the row holds". */
        for (uint32_t c = 0; c < dict; c++)
            if (hit[c] && col->post_offsets[c + 1] > col->post_offsets[c])
                roaring_bitmap_add_many(yb->bm, col->post_offsets[c + 1] - col->post_offsets[c],
                                        col->post_rows + col->post_offsets[c]);
    } else {
        for (uint32_t r = 0; r < rows; r++) {
            switch ((filter_col_tag)col->tags[r]) {
            case FILTER_TAG_MISSING: break;
            case FILTER_TAG_NULL:
                if (null_holds) batch_add(yb, r);
                break;
            case FILTER_TAG_SCALAR:
                if (exists) {
                    batch_add(yb, r);
                } else if (n->op != LEAF_CONTAINS) {
                    uint32_t code = col->codes[col->first[r]];
                    if (code < dict && hit[code]) batch_add(yb, r);
                }
                break;
            case FILTER_TAG_ARRAY: {
                bool any = exists;
                for (uint32_t i = col->first[r]; i < col->first[r + 1] && !any; i++)
                    any = col->codes[i] < dict && hit[col->codes[i]];
                if (any) batch_add(yb, r);
                else if (whole) batch_add(ub, r);
                break;
            }
            }
        }
        batch_flush(yb);
        batch_flush(ub);
    }
    roaring_bitmap_or_inplace(ub->bm, yb->bm);
    *yes = yb->bm;
    *may = ub->bm;
    goto done;
oom:
    if (yb != NULL) bm_free(yb->bm);
    if (ub != NULL) bm_free(ub->bm);
    rc = cols_oom(ce);
done:
    free(yb);
    free(ub);
    free(hit);
    return rc;
}

/* Rows [lo, hi) into bm. */
static void add_rows(roaring_bitmap_t *bm, uint32_t lo, uint32_t hi) {
    if (lo < hi) roaring_bitmap_add_range_closed(bm, lo, hi - 1);
}

/* The first row past every id that starts with (p, len) into *end; false
 * when out of memory (the caller then leaves the leaf undecided). */
static bool prefix_end(const filter_columns *cols, const char *p, uint32_t len, uint32_t *end) {
    while (len > 0 && (unsigned char)p[len - 1] == 0xFF) len--;
    if (len == 0) {
        *end = cols->rows;
        return true;
    }
    /* The smallest string above every string with the prefix: the prefix
     * without its trailing 0xFF bytes, last byte plus one. */
    char small[256];
    char *succ = len <= sizeof small ? small : malloc(len);
    if (succ == NULL) return false;
    memcpy(succ, p, len);
    succ[len - 1] = (char)((unsigned char)succ[len - 1] + 1);
    *end = cols->id_bound(cols->ctx, succ, len, false);
    if (succ != small) free(succ);
    return true;
}

/* A leaf on the id, exactly, from the sorted ids. Ids are strings, so
 * only string operands can match (an integer operand was turned into its
 * decimal string when compiled). */
static int leaf_on_id(cols_eval *ce, const fnode *n, roaring_bitmap_t **yes,
                      roaring_bitmap_t **may) {
    const filter_columns *cols = ce->cols;
    roaring_bitmap_t *bm = roaring_bitmap_create();
    if (bm == NULL) return cols_oom(ce);
    const fvalue *x = &n->val;
    bool str = x->type == FV_STRING;
    switch (n->op) {
    case LEAF_EXISTS: add_rows(bm, 0, cols->rows); break;
    case LEAF_EQ:
        if (str)
            add_rows(bm, cols->id_bound(cols->ctx, x->str, x->len, false),
                     cols->id_bound(cols->ctx, x->str, x->len, true));
        break;
    case LEAF_IN:
        for (uint32_t i = 0; i < n->set->n_strs; i++) {
            const fvalue *s = &n->set->strs[i];
            add_rows(bm, cols->id_bound(cols->ctx, s->str, s->len, false),
                     cols->id_bound(cols->ctx, s->str, s->len, true));
        }
        break;
    case LEAF_GT:
        if (str) add_rows(bm, cols->id_bound(cols->ctx, x->str, x->len, true), cols->rows);
        break;
    case LEAF_GTE:
        if (str) add_rows(bm, cols->id_bound(cols->ctx, x->str, x->len, false), cols->rows);
        break;
    case LEAF_LT:
        if (str) add_rows(bm, 0, cols->id_bound(cols->ctx, x->str, x->len, false));
        break;
    case LEAF_LTE:
        if (str) add_rows(bm, 0, cols->id_bound(cols->ctx, x->str, x->len, true));
        break;
    case LEAF_PREFIX: {
        uint32_t end;
        if (!prefix_end(cols, x->str, x->len, &end)) {
            /* Undecided: nothing certain, every row possible. */
            *may = roaring_bitmap_create();
            if (*may == NULL) {
                bm_free(bm);
                return cols_oom(ce);
            }
            add_rows(*may, 0, cols->rows);
            *yes = bm;
            return 0;
        }
        add_rows(bm, cols->id_bound(cols->ctx, x->str, x->len, false), end);
        break;
    }
    case LEAF_CONTAINS: break; /* an id is never an array */
    }
    *may = roaring_bitmap_copy(bm);
    if (*may == NULL) {
        bm_free(bm);
        return cols_oom(ce);
    }
    *yes = bm;
    return 0;
}

/* Recursion depth is bounded by FILTER_MAX_DEPTH (invariant 1). */
static int eval_cols(cols_eval *ce, const fnode *n, roaring_bitmap_t **yes,
                     roaring_bitmap_t **may) {
    *yes = *may = NULL;
    switch (n->kind) {
    case FN_LEAF: {
        filter_column col;
        if (n->is_id && ce->cols->id_bound != NULL) return leaf_on_id(ce, n, yes, may);
        if (!n->is_id && ce->cols->find(ce->cols->ctx, n->field, n->field_len, &col) &&
            col.rows == ce->cols->rows)
            return leaf_on_column(ce, n, &col, yes, may);
        *yes = roaring_bitmap_create();
        *may = roaring_bitmap_copy(ce->all);
        break;
    }
    case FN_AND:
    case FN_OR: {
        bool is_and = n->kind == FN_AND;
        *yes = is_and ? roaring_bitmap_copy(ce->all) : roaring_bitmap_create();
        *may = is_and ? roaring_bitmap_copy(ce->all) : roaring_bitmap_create();
        for (uint32_t i = 0; i < n->nkids && *yes != NULL && *may != NULL; i++) {
            roaring_bitmap_t *ky, *km;
            int rc = eval_cols(ce, &n->kids[i], &ky, &km);
            if (rc) {
                bm_free(*yes);
                bm_free(*may);
                *yes = *may = NULL;
                return rc;
            }
            if (is_and) {
                roaring_bitmap_and_inplace(*yes, ky);
                roaring_bitmap_and_inplace(*may, km);
            } else {
                roaring_bitmap_or_inplace(*yes, ky);
                roaring_bitmap_or_inplace(*may, km);
            }
            bm_free(ky);
            bm_free(km);
            /* Nothing can change an AND that is false everywhere. */
            if (is_and && roaring_bitmap_is_empty(*may)) break;
        }
        break;
    }
    case FN_NOT: {
        roaring_bitmap_t *ky, *km;
        int rc = eval_cols(ce, &n->kids[0], &ky, &km);
        if (rc) return rc;
        *yes = roaring_bitmap_andnot(ce->all, km);
        *may = roaring_bitmap_andnot(ce->all, ky);
        bm_free(ky);
        bm_free(km);
        break;
    }
    }
    if (*yes == NULL || *may == NULL) {
        bm_free(*yes);
        bm_free(*may);
        *yes = *may = NULL;
        return cols_oom(ce);
    }
    return 0;
}

int filter_columns_eval(const filter_expr *e, const filter_columns *cols,
                        roaring_bitmap_t **matched, roaring_bitmap_t **undecided, tdb_error *err) {
    *matched = *undecided = NULL;
    roaring_bitmap_t *all = roaring_bitmap_create();
    if (all == NULL)
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory evaluating a filter on columns");
    add_rows(all, 0, cols->rows);
    cols_eval ce = {cols, all, err};
    roaring_bitmap_t *yes, *may;
    int rc = eval_cols(&ce, &e->root, &yes, &may);
    bm_free(all);
    if (rc) return rc;
    roaring_bitmap_andnot_inplace(may, yes);
    roaring_bitmap_run_optimize(yes);
    roaring_bitmap_run_optimize(may);
    *matched = yes;
    *undecided = may;
    return 0;
}
