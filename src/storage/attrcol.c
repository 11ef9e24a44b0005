/*
 * attrcol.c: typed attribute columns of segment files (attrcol.h): the
 * builder seg_write calls, the validating reader seg_open calls, and the
 * filter callback queries use.
 * Layer: storage. The same format is described for users in
 * docs/formats/segment.md (section ATTRCOLS); keep the two in step.
 *
 * Section ATTRCOLS (kind 6, flagged optional; all integers little-endian,
 * every part starts at a multiple of 8 from the section start, which is
 * itself 64-aligned, so arrays are used in place):
 *
 *   0   4   format version of the section (ATTRCOL_VERSION)
 *   4   4   column count C (<= ATTRCOL_MAX_COLUMNS)
 *   8   8   row count (equals the segment's)
 *   16  40*C  directory, one entry per column:
 *             +0  8  offset of the column body from the section start
 *             +8  8  body length
 *             +16 4  name length
 *             +20 4  atom kind: 0 number, 1 string, 2 boolean
 *             +24 4  dictionary entries D (2 for booleans)
 *             +28 4  atoms A (codes, over all rows)
 *             +32 4  postings P (distinct (row, entry) pairs)
 *             +36 4  reserved, 0
 *   column body, parts in this order, each padded with zeros to 8 bytes:
 *     name         the attribute name's bytes
 *     tags         u8[rows]: 0 missing, 1 null, 2 scalar, 3 array
 *     first        u32[rows + 1]: row r's atoms are codes[first[r] .. first[r+1])
 *     codes        u32[A]: dictionary entries
 *     post_offsets u32[D + 1]: entry c's rows are post_rows[off[c] .. off[c+1])
 *     post_rows    u32[P]: increasing within each entry
 *     dictionary   number: i64[D], f64[D], u8 is_int[D] (the value is the
 *                  i64 when is_int, else the f64);
 *                  string: u64 offsets[D + 1], then the bytes (to the end
 *                  of the body); boolean: nothing (entry 0 false, 1 true)
 *
 * Invariants the writer keeps: a scalar row has exactly one atom, a null or
 * missing row none; the dictionary is sorted and holds each value once
 * (numbers equal under the filter language, like 5 and 5.0, are one
 * entry). The reader checks everything an out-of-bounds read could follow
 * from (lengths, tags, offsets, codes, posting rows); the filter evaluator
 * needs no order in the dictionary, so a reader does not check it.
 */
#include "storage/attrcol.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/error.h"
#include "util/json.h"

#define ATTRCOL_VERSION 1u
#define ATTRCOL_HEADER_BYTES 16u
#define ATTRCOL_ENTRY_BYTES 40u

/* ---- building ------------------------------------------------------------ */

typedef struct atom {
    int64_t i64;
    double f64;
    const char *str; /* string: its bytes, in the row's JSON text when it has
                        no escapes (no copy), else a malloc'd copy (owned) */
    uint32_t len;    /* string: length */
    uint8_t is_int;  /* number: the value is i64; boolean: the value */
    uint8_t owned;   /* string: str is a copy this builder frees */
} atom;

/* One attribute's column while rows are read. Only rows holding the
 * attribute are recorded, so memory follows the values, not the rows. */
typedef struct col_builder {
    char *name;
    uint32_t name_len;
    bool dead;           /* the attribute does not fit a column */
    int kind;            /* filter_atom_kind, or -1 before the first atom */
    uint32_t last_row;   /* the row last recorded (a second key in it kills) */
    bool any_row;
    buf rows;            /* u32 row of each present value */
    buf tags;            /* u8 tag of each present value */
    buf counts;          /* u32 atoms of each present value */
    buf atoms;           /* atom[] in row order */
} col_builder;

static void free_atoms(col_builder *b) {
    const atom *a = (const atom *)(const void *)b->atoms.data;
    for (size_t i = 0; i < b->atoms.len / sizeof(atom); i++)
        if (a[i].owned) free((void *)a[i].str);
    buf_free(&b->atoms);
}

static void builder_kill(col_builder *b) {
    b->dead = true;
    buf_free(&b->rows);
    buf_free(&b->tags);
    buf_free(&b->counts);
    free_atoms(b);
}

static void builder_free(col_builder *b) {
    builder_kill(b);
    free(b->name);
}

static int atom_kind_of(const json_value *v) {
    switch (v->type) {
    case JSON_NUMBER: return FILTER_ATOM_NUM;
    case JSON_STRING: return FILTER_ATOM_STR;
    case JSON_TRUE:
    case JSON_FALSE: return FILTER_ATOM_BOOL;
    default: return -1;
    }
}

/* Records atom v of a row whose JSON text is src. A string without
 * escapes is its own source bytes (its span is the decoded length plus the
 * two quotes: every escape is longer than what it decodes to), so it is
 * not copied; the rows outlive the build. */
static void put_atom(col_builder *b, const json_value *v, const char *src) {
    atom a;
    memset(&a, 0, sizeof a);
    switch (v->type) {
    case JSON_NUMBER:
        a.is_int = v->is_int;
        a.i64 = v->is_int ? v->i64 : 0;
        a.f64 = v->is_int ? (double)v->i64 : v->num;
        break;
    case JSON_STRING:
        a.len = v->len;
        if ((uint64_t)v->src_len == (uint64_t)v->len + 2) {
            a.str = src + v->src_off + 1;
        } else {
            char *copy = malloc(v->len ? v->len : 1);
            if (copy == NULL) {
                b->atoms.failed = true;
                return;
            }
            if (v->len) memcpy(copy, v->str, v->len);
            a.str = copy;
            a.owned = 1;
        }
        break;
    default: a.is_int = v->type == JSON_TRUE; break;
    }
    buf_append(&b->atoms, &a, sizeof a);
    if (buf_failed(&b->atoms) && a.owned) free((void *)a.str);
}

/* Records row's value v of the builder's attribute. */
static void builder_add(col_builder *b, uint32_t row, const json_value *v, const char *src) {
    if (b->dead) return;
    if (b->any_row && b->last_row == row) { /* the key twice in one object */
        builder_kill(b);
        return;
    }
    b->any_row = true;
    b->last_row = row;
    uint8_t tag;
    uint32_t count = 0;
    if (v->type == JSON_NULL) {
        tag = FILTER_TAG_NULL;
    } else if (v->type == JSON_ARRAY) {
        tag = FILTER_TAG_ARRAY;
        for (const json_value *e = v->child; e != NULL; e = e->next) {
            int k = atom_kind_of(e);
            if (k < 0 || (b->kind >= 0 && k != b->kind)) {
                builder_kill(b);
                return;
            }
            b->kind = k;
            count++;
        }
        for (const json_value *e = v->child; e != NULL; e = e->next) put_atom(b, e, src);
    } else {
        int k = atom_kind_of(v);
        if (k < 0 || (b->kind >= 0 && k != b->kind)) {
            builder_kill(b);
            return;
        }
        b->kind = k;
        tag = FILTER_TAG_SCALAR;
        count = 1;
        put_atom(b, v, src);
    }
    buf_append(&b->rows, &row, sizeof row);
    buf_put_u8(&b->tags, tag);
    buf_append(&b->counts, &count, sizeof count);
}

typedef struct sort_ctx {
    const col_builder *b;
    const atom *atoms;
} sort_ctx;

static int atom_cmp(const atom *x, const atom *y, const sort_ctx *s) {
    switch (s->b->kind) {
    case FILTER_ATOM_NUM: return filter_num_cmp(x->is_int, x->i64, x->f64, y->is_int, y->i64, y->f64);
    case FILTER_ATOM_STR: {
        uint32_t m = x->len < y->len ? x->len : y->len;
        int c = m ? memcmp(x->str, y->str, m) : 0;
        if (c != 0) return c < 0 ? -1 : 1;
        return (x->len > y->len) - (x->len < y->len);
    }
    default: return (x->is_int > y->is_int) - (x->is_int < y->is_int);
    }
}

typedef struct sort_ctx2 {
    const sort_ctx *sc;
    const uint32_t *slot_atom; /* slot -> an atom with that value */
} sort_ctx2;

static int slot_cmp(const void *a, const void *b, void *ctx) {
    const sort_ctx2 *s = ctx;
    return atom_cmp(&s->sc->atoms[s->slot_atom[*(const uint32_t *)a]],
                    &s->sc->atoms[s->slot_atom[*(const uint32_t *)b]], s->sc);
}

/* A hash of an atom's value, equal for atoms the filter language calls
 * equal: a number that is an integer (5, 5.0, -0.0) hashes as that integer. */
static uint64_t atom_hash(const col_builder *b, const atom *a) {
    uint64_t h;
    if (b->kind == FILTER_ATOM_STR) {
        h = 1469598103934665603ULL; /* FNV-1a */
        const unsigned char *p = (const unsigned char *)a->str;
        for (uint32_t i = 0; i < a->len; i++) h = (h ^ p[i]) * 1099511628211ULL;
    } else if (a->is_int) {
        h = (uint64_t)a->i64;
    } else if (a->f64 >= -9223372036854775808.0 && a->f64 < 9223372036854775808.0 &&
               a->f64 == (double)(int64_t)a->f64) {
        h = (uint64_t)(int64_t)a->f64;
    } else {
        memcpy(&h, &a->f64, sizeof h);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* Merges equal atoms: slot_atom[0..*distinct) gets one atom per distinct
 * value, slot[i] the slot of atom i. TDB_ENOMEM or 0. */
static int dedupe(const col_builder *b, const atom *atoms, uint32_t n, uint32_t *slot,
                  uint32_t *slot_atom, uint32_t *distinct) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) cap *= 2;
    uint32_t *table = malloc(cap * sizeof *table); /* slot + 1, 0 = empty */
    if (table == NULL) return TDB_ENOMEM;
    memset(table, 0, cap * sizeof *table);
    sort_ctx sc = {b, atoms};
    uint32_t d = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t at = atom_hash(b, &atoms[i]) & (cap - 1);
        /* Linear probing; the table is at most half full. */
        while (table[at] != 0 && atom_cmp(&atoms[slot_atom[table[at] - 1]], &atoms[i], &sc) != 0)
            at = (at + 1) & (cap - 1);
        if (table[at] == 0) {
            slot_atom[d] = i;
            table[at] = ++d;
        }
        slot[i] = table[at] - 1;
    }
    free(table);
    *distinct = d;
    return 0;
}

static void put_pad8(buf *b) {
    static const uint8_t zeros[8];
    buf_append(b, zeros, (8 - b->len % 8) % 8);
}

/* Appends the builder's column body to sec and fills its directory entry
 * fields. Returns 1 when the column is left out (too long strings), 0 when
 * written, TDB_ENOMEM. */
static int builder_finish(const col_builder *b, uint32_t rows, buf *sec, uint8_t entry[40]) {
    const uint32_t present = (uint32_t)(b->rows.len / sizeof(uint32_t));
    const uint64_t n_atoms = b->atoms.len / sizeof(atom);
    if (n_atoms > UINT32_MAX - 1) return 1;
    const uint32_t A = (uint32_t)n_atoms;
    const atom *atoms = (const atom *)(const void *)b->atoms.data;
    const uint32_t *prow = (const uint32_t *)(const void *)b->rows.data;
    const uint32_t *pcount = (const uint32_t *)(const void *)b->counts.data;
    const int kind = b->kind < 0 ? FILTER_ATOM_NUM : b->kind;
    int rc = 1;

    uint32_t *idx = malloc((size_t)(A ? A : 1) * sizeof *idx);
    uint32_t *code = malloc((size_t)(A ? A : 1) * sizeof *code);
    uint32_t *dict_atom = malloc((size_t)(A ? A : 1) * sizeof *dict_atom); /* entry -> an atom */
    uint32_t *first = calloc((size_t)rows + 1, sizeof *first);
    uint8_t *tags = calloc(rows ? rows : 1, 1);
    uint32_t *post_off = NULL, *post_rows = NULL, *post_last = NULL;
    if (!idx || !code || !dict_atom || !first || !tags) goto oom;

    /* Dictionary: the distinct values (a hash set merges equal atoms, so
     * only distinct values are sorted), sorted, then every atom's code. */
    uint32_t D = 0;
    if (kind == FILTER_ATOM_BOOL) {
        D = 2;
        for (uint32_t i = 0; i < A; i++) code[i] = atoms[i].is_int;
    } else {
        sort_ctx sc = {b, atoms};
        uint32_t distinct = 0;
        if (dedupe(b, atoms, A, code, idx, &distinct) != 0) goto oom;
        /* idx[0..distinct) holds one atom per distinct value, code[i] its
         * position there; sort those and renumber. */
        uint32_t *order = dict_atom; /* reused: sorted position -> idx slot */
        for (uint32_t k = 0; k < distinct; k++) order[k] = k;
        sort_ctx2 sc2 = {&sc, idx};
        if (distinct > 1) qsort_r(order, distinct, sizeof *order, slot_cmp, &sc2);
        uint32_t *rank = post_last = malloc((size_t)(distinct ? distinct : 1) * sizeof *rank);
        if (rank == NULL) goto oom;
        for (uint32_t k = 0; k < distinct; k++) rank[order[k]] = k;
        for (uint32_t k = 0; k < distinct; k++) order[k] = idx[order[k]]; /* entry -> an atom */
        for (uint32_t i = 0; i < A; i++) code[i] = rank[code[i]];
        free(post_last);
        post_last = NULL;
        D = distinct;
    }
    uint64_t dict_bytes = 0;
    if (kind == FILTER_ATOM_STR) {
        for (uint32_t c = 0; c < D; c++) dict_bytes += atoms[dict_atom[c]].len;
        if (D > 0 && dict_bytes / D > ATTRCOL_MAX_AVG_STRING_BYTES) goto done; /* left out */
    }

    /* Per-row tags and atom ranges. */
    {
        uint32_t p = 0, at = 0;
        for (uint32_t r = 0; r < rows; r++) {
            first[r] = at;
            if (p < present && prow[p] == r) {
                tags[r] = (uint8_t)b->tags.data[p];
                at += pcount[p];
                p++;
            }
        }
        first[rows] = at;
    }

    /* Postings: each row once per distinct entry it holds, in row order. */
    post_off = calloc((size_t)D + 1, sizeof *post_off);
    post_last = malloc((size_t)(D ? D : 1) * sizeof *post_last);
    if (!post_off || !post_last) goto oom;
    for (uint32_t c = 0; c < D; c++) post_last[c] = UINT32_MAX;
    uint32_t P = 0;
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t i = first[r]; i < first[r + 1]; i++)
            if (post_last[code[i]] != r) {
                post_last[code[i]] = r;
                post_off[code[i] + 1]++;
                P++;
            }
    for (uint32_t c = 0; c < D; c++) post_off[c + 1] += post_off[c];
    post_rows = malloc((size_t)(P ? P : 1) * sizeof *post_rows);
    if (!post_rows) goto oom;
    {
        uint32_t *fill = post_last; /* reused: next free slot of each entry */
        for (uint32_t c = 0; c < D; c++) fill[c] = post_off[c];
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t i = first[r]; i < first[r + 1]; i++) {
                uint32_t c = code[i];
                if (fill[c] > post_off[c] && post_rows[fill[c] - 1] == r) continue;
                post_rows[fill[c]++] = r;
            }
    }

    /* The body. */
    uint64_t body_at = sec->len;
    buf_append(sec, b->name, b->name_len);
    put_pad8(sec);
    buf_append(sec, tags, rows);
    put_pad8(sec);
    buf_append(sec, first, ((size_t)rows + 1) * sizeof *first);
    put_pad8(sec);
    {
        /* codes in row order: the atoms were recorded in row order */
        buf_append(sec, code, (size_t)A * sizeof *code);
        put_pad8(sec);
    }
    buf_append(sec, post_off, ((size_t)D + 1) * sizeof *post_off);
    put_pad8(sec);
    buf_append(sec, post_rows, (size_t)P * sizeof *post_rows);
    put_pad8(sec);
    if (kind == FILTER_ATOM_NUM) {
        for (uint32_t c = 0; c < D; c++) buf_append(sec, &atoms[dict_atom[c]].i64, 8);
        for (uint32_t c = 0; c < D; c++) buf_append(sec, &atoms[dict_atom[c]].f64, 8);
        for (uint32_t c = 0; c < D; c++) buf_put_u8(sec, atoms[dict_atom[c]].is_int);
        put_pad8(sec);
    } else if (kind == FILTER_ATOM_STR) {
        uint64_t off = 0;
        buf_append(sec, &off, 8);
        for (uint32_t c = 0; c < D; c++) {
            off += atoms[dict_atom[c]].len;
            buf_append(sec, &off, 8);
        }
        for (uint32_t c = 0; c < D; c++)
            buf_append(sec, atoms[dict_atom[c]].str, atoms[dict_atom[c]].len);
    }
    if (buf_failed(sec)) goto oom;
    store_u64(entry, body_at);
    store_u64(entry + 8, sec->len - body_at);
    store_u32(entry + 16, b->name_len);
    store_u32(entry + 20, (uint32_t)kind);
    store_u32(entry + 24, D);
    store_u32(entry + 28, A);
    store_u32(entry + 32, P);
    store_u32(entry + 36, 0);
    put_pad8(sec);
    rc = 0;
    goto done;
oom:
    rc = TDB_ENOMEM;
done:
    free(idx);
    free(code);
    free(dict_atom);
    free(first);
    free(tags);
    free(post_off);
    free(post_rows);
    free(post_last);
    return rc;
}

static col_builder *builder_get(col_builder *bs, uint32_t *n, const char *key, uint32_t len) {
    for (uint32_t i = 0; i < *n; i++)
        if (bs[i].name_len == len && memcmp(bs[i].name, key, len) == 0) return &bs[i];
    if (*n == ATTRCOL_MAX_COLUMNS) return NULL;
    col_builder *b = &bs[*n];
    memset(b, 0, sizeof *b);
    b->name = malloc(len ? len : 1);
    if (b->name == NULL) return NULL;
    memcpy(b->name, key, len);
    b->name_len = len;
    b->kind = -1;
    (*n)++;
    return b;
}

int attrcol_build(const seg_row *rows, size_t n, void **out, size_t *len, tdb_error *err) {
    *out = NULL;
    *len = 0;
    if (n == 0 || n >= UINT32_MAX) return 0; /* row numbers are u32 in bitmaps */
    col_builder *bs = calloc(ATTRCOL_MAX_COLUMNS, sizeof *bs);
    if (bs == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory building columns");
    uint32_t nb = 0;
    buf sec = BUF_INIT;
    int rc = 0;
    for (size_t r = 0; r < n; r++) {
        if (rows[r].attrs == NULL || rows[r].attrs_len == 0) continue;
        json_doc *d = NULL;
        json_error je;
        if (json_parse(rows[r].attrs, rows[r].attrs_len, &d, &je) != 0) {
            /* Never written by tierdb: no column can describe this row, so
             * every attribute is left to the JSON path. */
            for (uint32_t i = 0; i < nb; i++) builder_kill(&bs[i]);
            goto write;
        }
        const json_value *root = json_root(d);
        if (root->type == JSON_OBJECT)
            for (const json_value *m = root->child; m != NULL; m = m->next) {
                col_builder *b = builder_get(bs, &nb, m->key, m->key_len);
                if (b != NULL) builder_add(b, (uint32_t)r, m, rows[r].attrs);
            }
        json_doc_free(d);
        for (uint32_t i = 0; i < nb; i++)
            if (!bs[i].dead && (buf_failed(&bs[i].rows) || buf_failed(&bs[i].tags) ||
                                buf_failed(&bs[i].counts) || buf_failed(&bs[i].atoms))) {
                rc = TDB_ENOMEM;
                goto done;
            }
    }
write:;
    uint32_t live = 0;
    for (uint32_t i = 0; i < nb; i++) live += !bs[i].dead;
    if (live == 0) goto done;
    uint8_t *dir = calloc(live, ATTRCOL_ENTRY_BYTES);
    if (dir == NULL) {
        rc = TDB_ENOMEM;
        goto done;
    }
    /* Header and a directory to fill in once the bodies are placed. */
    uint8_t head[ATTRCOL_HEADER_BYTES] = {0};
    buf_append(&sec, head, sizeof head);
    buf_append(&sec, dir, (size_t)live * ATTRCOL_ENTRY_BYTES);
    put_pad8(&sec);
    uint32_t written = 0;
    for (uint32_t i = 0; i < nb && rc == 0; i++) {
        if (bs[i].dead) continue;
        int w = builder_finish(&bs[i], (uint32_t)n, &sec, dir + (size_t)written * ATTRCOL_ENTRY_BYTES);
        if (w < 0) rc = w;
        else if (w == 0) written++;
    }
    if (rc == 0 && written > 0 && !buf_failed(&sec)) {
        store_u32(sec.data, ATTRCOL_VERSION);
        store_u32(sec.data + 4, written);
        store_u64(sec.data + 8, (uint64_t)n);
        memcpy(sec.data + ATTRCOL_HEADER_BYTES, dir, (size_t)written * ATTRCOL_ENTRY_BYTES);
        /* Entries not written leave zeros between the directory and the
         * first body; the reader only follows the C entries it is told of. */
        *len = sec.len;
        *out = buf_steal(&sec);
    } else if (buf_failed(&sec)) {
        rc = TDB_ENOMEM;
    }
    free(dir);
done:
    for (uint32_t i = 0; i < nb; i++) builder_free(&bs[i]);
    free(bs);
    buf_free(&sec);
    if (rc == TDB_ENOMEM) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory building columns");
    return rc;
}

/* ---- reading --------------------------------------------------------------- */

typedef struct attrcol_col {
    const char *name;
    uint32_t name_len;
    filter_column col;
} attrcol_col;

struct attrcol {
    uint32_t n;
    attrcol_col cols[];
};

static uint64_t pad8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

/* Checks one column body [body, body + len) and fills c. */
static int open_column(const uint8_t *body, uint64_t len, uint64_t rows, uint32_t name_len,
                       uint32_t kind, uint32_t D, uint32_t A, uint32_t P, attrcol_col *c,
                       char *why, size_t why_len) {
#define BAD(...) (snprintf(why, why_len, __VA_ARGS__), TDB_ECORRUPT)
    if (kind > FILTER_ATOM_BOOL) return BAD("unknown atom kind %u", kind);
    if (kind == FILTER_ATOM_BOOL && D != 2) return BAD("a boolean column has %u entries", D);
    /* Every part's end, each bounded by len before the next is computed
     * (all terms are below 2^35, so no sum overflows). */
    uint64_t at = 0, tags_at, first_at, codes_at, poff_at, prows_at, dict_at;
    at = pad8(at + name_len);
    tags_at = at;
    at = pad8(at + rows);
    first_at = at;
    at = pad8(at + (rows + 1) * 4);
    codes_at = at;
    at = pad8(at + (uint64_t)A * 4);
    poff_at = at;
    at = pad8(at + ((uint64_t)D + 1) * 4);
    prows_at = at;
    at = pad8(at + (uint64_t)P * 4);
    dict_at = at;
    if (kind == FILTER_ATOM_NUM) at = pad8(at + (uint64_t)D * 17);
    else if (kind == FILTER_ATOM_STR) at += ((uint64_t)D + 1) * 8;
    if (at > len || (kind != FILTER_ATOM_STR && at != len))
        return BAD("column of %llu bytes does not match its counts (needs %llu)",
                   (unsigned long long)len, (unsigned long long)at);
    memset(c, 0, sizeof *c);
    c->name = (const char *)body;
    c->name_len = name_len;
    filter_column *f = &c->col;
    f->kind = (filter_atom_kind)kind;
    f->rows = (uint32_t)rows;
    f->tags = body + tags_at;
    f->first = (const uint32_t *)(const void *)(body + first_at);
    f->codes = (const uint32_t *)(const void *)(body + codes_at);
    f->dict_count = D;
    f->post_offsets = (const uint32_t *)(const void *)(body + poff_at);
    f->post_rows = (const uint32_t *)(const void *)(body + prows_at);
    if (f->first[0] != 0 || f->first[rows] != A) return BAD("atom table does not span the codes");
    for (uint64_t r = 0; r < rows; r++) {
        uint8_t tag = f->tags[r];
        if (f->first[r + 1] < f->first[r] || f->first[r + 1] > A)
            return BAD("atoms of row %llu are out of order", (unsigned long long)r);
        uint32_t cnt = f->first[r + 1] - f->first[r];
        if (tag > FILTER_TAG_ARRAY || (tag == FILTER_TAG_SCALAR && cnt != 1) ||
            (tag < FILTER_TAG_SCALAR && cnt != 0))
            return BAD("row %llu: tag %u with %u atoms", (unsigned long long)r, tag, cnt);
    }
    for (uint32_t i = 0; i < A; i++)
        if (f->codes[i] >= D) return BAD("code %u outside the dictionary of %u", f->codes[i], D);
    if (f->post_offsets[0] != 0 || f->post_offsets[D] != P) return BAD("postings do not span");
    for (uint32_t e = 0; e < D; e++) {
        if (f->post_offsets[e + 1] < f->post_offsets[e]) return BAD("postings out of order");
        for (uint32_t i = f->post_offsets[e]; i < f->post_offsets[e + 1]; i++)
            if (f->post_rows[i] >= rows || (i > f->post_offsets[e] && f->post_rows[i] <= f->post_rows[i - 1]))
                return BAD("posting of entry %u is out of order or past the rows", e);
    }
    if (kind == FILTER_ATOM_NUM) {
        f->num_i64 = (const int64_t *)(const void *)(body + dict_at);
        f->num_f64 = (const double *)(const void *)(body + dict_at + (uint64_t)D * 8);
        f->num_is_int = body + dict_at + (uint64_t)D * 16;
    } else if (kind == FILTER_ATOM_STR) {
        f->str_offsets = (const uint64_t *)(const void *)(body + dict_at);
        f->str_bytes = (const char *)body + at;
        uint64_t bytes = len - at;
        if (f->str_offsets[0] != 0 || f->str_offsets[D] != bytes)
            return BAD("string dictionary does not span its bytes");
        for (uint32_t e = 0; e < D; e++)
            if (f->str_offsets[e + 1] < f->str_offsets[e] ||
                f->str_offsets[e + 1] - f->str_offsets[e] > UINT32_MAX)
                return BAD("string dictionary offsets out of order");
    }
    return 0;
#undef BAD
}

int attrcol_open(const void *data, size_t len, uint64_t rows, attrcol **out, char *why,
                 size_t why_len) {
    *out = NULL;
    const uint8_t *p = data;
    if (len < ATTRCOL_HEADER_BYTES) {
        snprintf(why, why_len, "%zu bytes is too short", len);
        return TDB_ECORRUPT;
    }
    uint32_t version = load_u32(p), n = load_u32(p + 4);
    if (version != ATTRCOL_VERSION) {
        snprintf(why, why_len, "column format version %u is not known to this build", version);
        return TDB_ECORRUPT;
    }
    if (n > ATTRCOL_MAX_COLUMNS || load_u64(p + 8) != rows || rows >= UINT32_MAX ||
        ATTRCOL_HEADER_BYTES + (uint64_t)n * ATTRCOL_ENTRY_BYTES > len) {
        snprintf(why, why_len, "header lists %u columns of %llu rows (segment: %llu rows)", n,
                 (unsigned long long)load_u64(p + 8), (unsigned long long)rows);
        return TDB_ECORRUPT;
    }
    attrcol *a = calloc(1, sizeof *a + (size_t)n * sizeof(attrcol_col));
    if (a == NULL) {
        snprintf(why, why_len, "out of memory");
        return TDB_ENOMEM;
    }
    uint64_t prev_end = ATTRCOL_HEADER_BYTES + (uint64_t)n * ATTRCOL_ENTRY_BYTES;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = p + ATTRCOL_HEADER_BYTES + (uint64_t)i * ATTRCOL_ENTRY_BYTES;
        uint64_t off = load_u64(e), blen = load_u64(e + 8);
        if (off % 8 != 0 || off < prev_end || off > len || blen > len - off) {
            snprintf(why, why_len, "column %u: body [%llu, +%llu) is misplaced", i,
                     (unsigned long long)off, (unsigned long long)blen);
            free(a);
            return TDB_ECORRUPT;
        }
        int rc = open_column(p + off, blen, rows, load_u32(e + 16), load_u32(e + 20),
                             load_u32(e + 24), load_u32(e + 28), load_u32(e + 32), &a->cols[i], why,
                             why_len);
        if (rc) {
            free(a);
            return rc;
        }
        for (uint32_t j = 0; j < i; j++)
            if (a->cols[j].name_len == a->cols[i].name_len &&
                memcmp(a->cols[j].name, a->cols[i].name, a->cols[i].name_len) == 0) {
                snprintf(why, why_len, "column %u: attribute listed twice", i);
                free(a);
                return TDB_ECORRUPT;
            }
        prev_end = off + blen;
    }
    a->n = n;
    *out = a;
    return 0;
}

void attrcol_free(attrcol *a) { free(a); }

uint32_t attrcol_count(const attrcol *a) { return a ? a->n : 0; }

bool attrcol_find(const attrcol *a, const char *name, uint32_t len, filter_column *out) {
    if (a == NULL) return false;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->cols[i].name_len == len && (len == 0 || memcmp(a->cols[i].name, name, len) == 0)) {
            *out = a->cols[i].col;
            return true;
        }
    return false;
}

const char *attrcol_name(const attrcol *a, uint32_t i, uint32_t *len, filter_column *out) {
    if (out != NULL) *out = a->cols[i].col;
    *len = a->cols[i].name_len;
    return a->cols[i].name;
}

static bool seg_find_column(const void *ctx, const char *name, uint32_t len, filter_column *out) {
    return attrcol_find(seg_attrcols((const segment *)ctx), name, len, out);
}

static uint32_t seg_id_bound(const void *ctx, const char *id, uint32_t len, bool strict) {
    const segment *s = ctx;
    return (uint32_t)(strict ? seg_upper_bound(s, id, len) : seg_lower_bound(s, id, len));
}

bool attrcol_segment_columns(const segment *s, filter_columns *out) {
    const attrcol *a = seg_attrcols(s);
    if (a == NULL) return false;
    *out = (filter_columns){(uint32_t)seg_rows(s), seg_find_column, seg_id_bound, s};
    return true;
}

/* ---- the filter callback ---------------------------------------------------- */

/*
 * Per query and segment, the callback first answers rows from their JSON
 * and counts them; once the query has asked for enough rows of a segment
 * (lazy_done: lazy_rows(segment), counting rows that matched as an eighth
 * of a row), the filter is evaluated on the whole segment from
 * its columns (filter_columns_eval) and every later row of it is answered
 * from two bitsets (matched, undecided), the undecided ones from JSON. A
 * query that needs only a few rows of a segment (top 10 under a broad
 * filter, a graph search whose candidates mostly pass) thus never pays for
 * a whole-segment evaluation, and one that walks many rows pays for it once.
 *
 * Finding a row's segment: seg_locate takes a lock and a binary search, too
 * much per row, so each thread remembers the segment it last saw for this
 * filter (thread_cache), valid while seg_registry_generation is unchanged
 * (no segment opened or closed since), and the row after the last one, which
 * is the next row of an in-order scan.
 */

/* A segment's rows answered from JSON before its columns are used: a
 * whole-segment evaluation costs a pass over the rows, about as much as
 * parsing rows / ATTRCOL_LAZY_DIVISOR documents (measured on 100k rows). */
#define ATTRCOL_LAZY_MIN_ROWS 64u
#define ATTRCOL_LAZY_DIVISOR 256u

static uint64_t lazy_rows(const segment *s) {
    return ATTRCOL_LAZY_MIN_ROWS + seg_rows(s) / ATTRCOL_LAZY_DIVISOR;
}

static _Atomic uint64_t next_filter_id = 1;

void attrcol_filter_init(attrcol_filter *f, const filter_expr *expr, bool json_only) {
    memset(f, 0, sizeof *f);
    f->expr = expr;
    f->id = atomic_fetch_add(&next_filter_id, 1);
    const char *env = getenv("TDB_FILTER_JSON");
    f->json_only = json_only || (env != NULL && strcmp(env, "1") == 0);
    f->lazy = true;
    pthread_mutex_init(&f->mu, NULL);
}

void attrcol_filter_done(attrcol_filter *f) {
    for (size_t i = 0; i < f->n_segs; i++) {
        free(f->segs[i]->matched);
        free(f->segs[i]->undecided);
        free(f->segs[i]);
    }
    free(f->segs);
    pthread_mutex_destroy(&f->mu);
    f->segs = NULL;
    f->n_segs = f->cap_segs = 0;
}

/* A bitset of rows bits from a bitmap (malloc'd; NULL when out of memory). */
static uint64_t *to_bits(const roaring_bitmap_t *bm, uint64_t rows) {
    uint64_t *bits = calloc((size_t)(rows + 63) / 64 + 1, sizeof *bits);
    if (bits == NULL) return NULL;
    roaring_uint32_iterator_t *it = roaring_create_iterator(bm);
    if (it == NULL) {
        free(bits);
        return NULL;
    }
    for (; it->has_value; roaring_advance_uint32_iterator(it))
        if (it->current_value < rows) bits[it->current_value / 64] |= 1ull << (it->current_value % 64);
    roaring_free_uint32_iterator(it);
    return bits;
}

static bool bit_has(const uint64_t *bits, uint64_t row) { return (bits[row / 64] >> (row % 64)) & 1; }

/* The state of segment s for this query: found or added (f->mu held).
 * States are allocated one by one, so pointers to them stay valid until
 * attrcol_filter_done. NULL when out of memory (JSON answers). */
static attrcol_seg_state *state_of(attrcol_filter *f, const segment *s) {
    uint64_t serial = seg_serial(s);
    for (size_t i = 0; i < f->n_segs; i++)
        if (f->segs[i]->serial == serial) return f->segs[i];
    if (f->n_segs == f->cap_segs) {
        size_t cap = f->cap_segs ? f->cap_segs * 2 : 8;
        attrcol_seg_state **g = realloc(f->segs, cap * sizeof *g);
        if (g == NULL) return NULL;
        f->segs = g;
        f->cap_segs = cap;
    }
    attrcol_seg_state *st = calloc(1, sizeof *st);
    if (st == NULL) return NULL;
    st->serial = serial;
    f->segs[f->n_segs++] = st;
    return st;
}

/* Evaluates the filter on s from its columns into st (f->mu held), then
 * publishes it (built, with release order: readers that see built see the
 * bitsets). On failure the bitsets stay NULL and JSON answers every row. */
static void state_build(attrcol_filter *f, const segment *s, attrcol_seg_state *st) {
    filter_columns cols;
    tdb_error err;
    roaring_bitmap_t *yes = NULL, *und = NULL;
    if (attrcol_segment_columns(s, &cols) &&
        filter_columns_eval(f->expr, &cols, &yes, &und, &err) == 0) {
        st->matched = to_bits(yes, seg_rows(s));
        st->undecided = to_bits(und, seg_rows(s));
        if (st->matched == NULL || st->undecided == NULL) {
            free(st->matched);
            free(st->undecided);
            st->matched = st->undecided = NULL;
        }
        roaring_bitmap_free(yes);
        roaring_bitmap_free(und);
    }
    atomic_store_explicit(&st->built, true, memory_order_release);
}

/* What one thread last saw: for filter `filter_id`, while the registry is
 * at `generation`, ids in [lo, hi) belong to `seg`, whose state is `st`
 * (owned by the filter, which outlives every call made with it; filter ids
 * are never reused, so a state is never looked at after its filter). */
typedef struct thread_cache {
    uint64_t filter_id;
    uint64_t generation;
    uintptr_t lo, hi;
    const segment *seg;
    attrcol_seg_state *st;
    uint64_t next_row;
} thread_cache;

static _Thread_local thread_cache cache;

/* Whether the lazy phase of st is over: enough rows were asked for that
 * the columns pay off. Rows that did not match count fully (the columns
 * would have skipped them without a parse); rows that matched count an
 * eighth, because a consumer that finds matches quickly (top k under a
 * broad filter) is about to stop. */
static bool lazy_done(const attrcol_filter *f, uint64_t calls, uint64_t matches,
                      const segment *s) {
    if (!f->lazy) return true;
    return (calls - matches) + matches / 8 > lazy_rows(s);
}

/* The answer for a row that lives in a segment with columns (ids in the
 * thread cache, or found by seg_locate): 1 match, 0 no match, *json set
 * when the row's JSON was matched; -1 when the row is not in such a
 * segment. */
static int answer(attrcol_filter *f, const char *id, uint32_t id_len, const char *attrs,
                  uint32_t attrs_len, bool *json) {
    uint64_t gen = seg_registry_generation();
    uintptr_t p = (uintptr_t)id;
    uint64_t row;
    *json = false;
    if (!(cache.filter_id == f->id && cache.generation == gen && p >= cache.lo && p < cache.hi)) {
        const segment *s = seg_locate(id, &row);
        if (s == NULL) return -1;
        pthread_mutex_lock(&f->mu);
        attrcol_seg_state *st = state_of(f, s);
        if (st != NULL && !atomic_load(&st->built) && !f->lazy) state_build(f, s, st);
        pthread_mutex_unlock(&f->mu);
        if (st == NULL) return -1;
        size_t len;
        const char *blob = seg_id_blob(s, &len);
        cache = (thread_cache){f->id, gen, (uintptr_t)blob, (uintptr_t)blob + len, s, st, row};
    }
    attrcol_seg_state *st = cache.st;
    if (!atomic_load_explicit(&st->built, memory_order_acquire)) {
        /* Lazy phase: the JSON answers, and the row is counted. */
        *json = true;
        bool m = filter_match_text(f->expr, id, id_len, attrs, attrs_len);
        uint64_t calls = atomic_fetch_add(&st->calls, 1) + 1;
        uint64_t matches = atomic_fetch_add(&st->matches, m) + m;
        if (lazy_done(f, calls, matches, cache.seg)) {
            pthread_mutex_lock(&f->mu);
            if (!atomic_load(&st->built)) state_build(f, cache.seg, st);
            pthread_mutex_unlock(&f->mu);
        }
        return m;
    }
    if (st->matched == NULL || !seg_row_of_id(cache.seg, id, cache.next_row, &row)) return -1;
    cache.next_row = row + 1;
    if (bit_has(st->matched, row)) return 1;
    if (!bit_has(st->undecided, row)) return 0;
    *json = true;
    return filter_match_text(f->expr, id, id_len, attrs, attrs_len);
}

bool attrcol_filter_cb(void *ctx, const char *id, uint32_t id_len, const char *attrs,
                       uint32_t attrs_len) {
    attrcol_filter *f = ctx;
    if (!f->json_only && filter_needs_attrs(f->expr)) {
        bool json;
        int r = answer(f, id, id_len, attrs, attrs_len, &json);
        if (r >= 0) {
            atomic_fetch_add_explicit(json ? &f->json_rows : &f->column_rows, 1,
                                      memory_order_relaxed);
            return r == 1;
        }
    }
    atomic_fetch_add_explicit(&f->json_rows, 1, memory_order_relaxed);
    return filter_match_text(f->expr, id, id_len, attrs, attrs_len);
}
