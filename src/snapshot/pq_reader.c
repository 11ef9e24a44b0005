/*
 * pq_reader.c: the streaming Parquet reader of snapshots (parquet.h holds
 * the contract and what is supported).
 * Layer: snapshot. A fuzz target: every byte of the file is input.
 *
 * Opening reads the last 8 bytes (footer length, "PAR1"), the footer
 * (FileMetaData, Thrift compact) and checks it whole before any row is
 * read:
 *   (1) magics at both ends; footer length inside the file and bounded;
 *   (2) the schema is a tree (each num_children fits the elements left,
 *       depth bounded); leaves are numbered in depth-first order, and
 *       each leaf's max definition/repetition levels follow from the path;
 *   (3) id and attributes are top-level BYTE_ARRAY columns that are not
 *       repeated; vector, when present, is a list of FLOAT; other top-level
 *       fields are read when their type maps to an attribute type, else
 *       ignored;
 *   (4) every row group has one column chunk per leaf; a chunk we read has
 *       its metadata inline, the leaf's physical type and path, a codec we
 *       support, and pages that lie between the magic and the footer;
 *       row counts are >= 0 and add up to the footer's num_rows;
 *   (5) tierdb.format, when present, is one we know; tierdb.dimension,
 *       when present, is a number in 0..PQ_MAX_DIMENSION.
 *
 * Rows are then assembled column by column. Each column we read has a
 * cursor over its chunk in the current row group: it holds the chunk's
 * dictionary (if any) and one decoded page (levels + non-null values);
 * it reads the next page header with pread when the page is used up.
 * A cell is one level entry (scalar columns) or the entries from one with
 * repetition level 0 up to the next (lists), possibly across pages. Cell
 * bytes are copied into a per-row arena, so a row never points into a page
 * that the next page read frees. At the end of a row group every cursor
 * must have consumed exactly its chunk's num_values entries.
 *
 * Bounds (pq_format.h): a page's decompressed size, its entry count and
 * a DELTA_BYTE_ARRAY page's expanded strings are capped, so no header can
 * make us allocate more than a few hundred MiB; every count read from a
 * page is checked against the bytes and entries present.
 */
#include "snapshot/parquet.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/pq_encoding.h"
#include "snapshot/pq_format.h"
#include "snapshot/pq_thrift.h"
#include "util/error.h"
#include "util/fileio.h"

/* A page header is read in a first slice of this size, grown up to the
 * cap when it does not fit (statistics may carry long min/max values). */
#define PQ_HEADER_FIRST_READ ((size_t)64 << 10)
#define PQ_MAX_PAGE_HEADER_BYTES ((size_t)16 << 20)

/* Row group count sanity bound (each takes at least a few footer bytes,
 * so the footer size bounds it too). */
#define PQ_MAX_ROW_GROUPS ((size_t)1 << 24)

/* ---- schema ------------------------------------------------------------ */

typedef struct snode {
    char *name;
    int type;          /* PQT_*, -1: group */
    int repetition;    /* PQR_*, -1: absent (root) */
    int num_children;
    int converted;     /* PQC_*, PQC_NONE: absent */
    int logical;       /* PQL_* field id, PQL_NONE: absent */
    int int_bits;      /* logical INTEGER */
    bool int_signed;
    size_t first_child, parent;
    size_t leaf;       /* leaves: column index */
    int def, rep;      /* levels at this node (counting it) */
} snode;

typedef enum role { ROLE_ID, ROLE_VECTOR, ROLE_ATTRIBUTES, ROLE_ATTR } role;
typedef enum okind { OK_STR, OK_I64, OK_F64, OK_F32, OK_BOOL } okind; /* decoded value kind */

/* A column chunk of one row group, as the footer describes it. */
typedef struct rchunk {
    uint64_t start, end;  /* pages: [start, end) */
    int codec;
    int64_t num_values;
} rchunk;

/* Decoded values of a page or dictionary. */
typedef struct rvals {
    pq_bytes *s;
    int64_t *i;
    double *d;
    float *f;
    uint8_t *b;
    size_t cap;
} rvals;

typedef struct rcursor {
    rchunk chunk;
    uint64_t pos;            /* next page header */
    int64_t entries_seen;    /* level entries of data pages read so far */
    bool data_seen;          /* a data page was read (no dictionary after it) */
    /* dictionary */
    bool has_dict;
    uint8_t *dict_buf;
    size_t dict_cap;
    rvals dict;
    size_t dict_n;
    /* current page */
    uint8_t *raw;            /* compressed bytes */
    size_t raw_cap;
    uint8_t *page;           /* decompressed */
    size_t page_cap;
    uint8_t *defs, *reps;
    size_t defs_cap, reps_cap;
    size_t n_entries, entry;
    rvals vals;
    size_t n_vals, val;
    char *strs;              /* DELTA_BYTE_ARRAY values */
    size_t strs_cap;
    uint64_t *u64;           /* delta-decoding scratch */
    size_t u64_cap;
    uint32_t *idx;           /* dictionary indices */
    size_t idx_cap;
    uint8_t *hdr;            /* page header bytes */
    size_t hdr_cap;
} rcursor;

typedef struct rfield {
    role role;
    size_t leaf;
    const char *name;
    int phys;
    okind kind;
    bool is_list;
    int max_def, max_rep;
    int list_def;   /* lists: def >= list_def: the list is not null */
    int elem_def;   /* lists: def >= elem_def: an element slot exists */
    pq_attr_type attr_type;
    size_t attr_index;
    rcursor cur;
    /* the current row's list elements */
    float *fout;
    int64_t *iout;
    pq_bytes *sout;
    size_t out_cap;
} rfield;

typedef struct rgroup {
    int64_t rows;
    rchunk *chunks; /* one per rfield */
} rgroup;

typedef struct kv {
    char *key, *value;
    size_t value_len;
} kv;

struct pq_reader {
    char *path;
    int fd;
    uint64_t file_size, data_end; /* data_end: start of the footer */
    snode *nodes;
    size_t nnodes, nleaves;
    rfield *fields;
    size_t nfields;
    rgroup *groups;
    size_t ngroups;
    uint64_t row_count;
    kv *kvs;
    size_t nkvs;
    pq_schema schema;
    pq_attr_def *attrs;
    int64_t dimension; /* -1 unknown */
    /* iteration */
    size_t group;        /* current row group + 1 (0: none started) */
    int64_t group_left;  /* rows left in the current group */
    uint64_t rows_read;
    bool failed;
    pq_reader_stats stats;
    buf arena;
    pq_value *values;
};

/* ---- error helpers ------------------------------------------------------ */

static int corrupt_tr(pq_reader *r, const pq_tr *t, const char *what, tdb_error *err) {
    r->failed = true;
    return TDB_CORRUPT(err, r->path, t->bad_at, "%s: %s", what, t->why ? t->why : "malformed");
}

#define CORRUPT(r, off, ...) ((r)->failed = true, TDB_CORRUPT(err, (r)->path, (off), __VA_ARGS__))

static int nomem(pq_reader *r, tdb_error *err) {
    r->failed = true;
    return tdb_err(err, TDB_ENOMEM, NULL, "out of memory reading %s", r->path);
}

static int unsupported(pq_reader *r, tdb_error *err, const char *fmt, const char *detail) {
    r->failed = true;
    char msg[256];
    snprintf(msg, sizeof msg, fmt, detail);
    return tdb_err(err, TDB_EUNSUPPORTED, "unsupported_parquet", "%s: %s", r->path, msg);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem) return false;
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (q == NULL) return false;
    *p = q;
    *cap = n;
    return true;
}

/* Reads exactly len bytes at off (the caller checked they are in the
 * file; a short read means the file shrank: I/O error). */
static int read_at(pq_reader *r, void *dst, size_t len, uint64_t off, tdb_error *err) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = fio_pread(r->fd, (uint8_t *)dst + done, len - done, off + done);
        if (n < 0) {
            r->failed = true;
            return tdb_err(err, TDB_EIO, NULL, "cannot read %s: %s", r->path, strerror((int)-n));
        }
        if (n == 0) return CORRUPT(r, off + done, "file ends early (did it shrink while being read?)");
        done += (size_t)n;
    }
    return 0;
}

static char *dup_bytes(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        if (n) memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* ---- footer: schema ------------------------------------------------------ */

static void parse_logical(pq_tr *t, snode *n) {
    pq_tr_struct_begin(t);
    int16_t last = 0, id;
    int type;
    while (pq_tr_field(t, &last, &id, &type)) {
        if (type != PQ_TT_STRUCT) {
            pq_tr_skip(t, type, false);
            continue;
        }
        n->logical = id;
        if (id == PQL_INTEGER) {
            pq_tr_struct_begin(t);
            int16_t l2 = 0, id2;
            int t2;
            while (pq_tr_field(t, &l2, &id2, &t2)) {
                if (id2 == 1) n->int_bits = (int)pq_tr_int(t, t2);
                else if (id2 == 2) n->int_signed = pq_tr_bool(t, t2, false);
                else pq_tr_skip(t, t2, false);
            }
            pq_tr_struct_end(t);
        } else {
            pq_tr_skip(t, type, false);
        }
    }
    pq_tr_struct_end(t);
}

static int parse_schema_element(pq_tr *t, snode *n) {
    memset(n, 0, sizeof *n);
    n->type = -1;
    n->repetition = -1;
    n->converted = PQC_NONE;
    n->logical = PQL_NONE;
    pq_tr_struct_begin(t);
    int16_t last = 0, id;
    int type;
    bool have_name = false;
    while (pq_tr_field(t, &last, &id, &type)) {
        switch (id) {
        case 1: n->type = pq_tr_i32(t, type); break;
        case 3: n->repetition = pq_tr_i32(t, type); break;
        case 4: {
            size_t len;
            const uint8_t *s = pq_tr_binary(t, type, &len);
            if (s && !have_name) {
                n->name = dup_bytes(s, len);
                if (n->name == NULL) return -1;
                have_name = true;
            }
            break;
        }
        case 5: n->num_children = pq_tr_i32(t, type); break;
        case 6: n->converted = pq_tr_i32(t, type); break;
        case 10:
            if (type == PQ_TT_STRUCT) parse_logical(t, n);
            else pq_tr_skip(t, type, false);
            break;
        default: pq_tr_skip(t, type, false); break;
        }
    }
    pq_tr_struct_end(t);
    if (!have_name) pq_tr_fail(t, "schema element without a name");
    if (n->num_children < 0) pq_tr_fail(t, "negative num_children");
    if (n->type > PQT_FIXED_LEN_BYTE_ARRAY || (n->type < 0 && n->type != -1)) pq_tr_fail(t, "unknown physical type");
    if (n->repetition > PQR_REPEATED || n->repetition < -1) pq_tr_fail(t, "unknown repetition type");
    return 0;
}

/* Links children to parents in depth-first order and computes levels.
 * Iterative, with an explicit stack bounded by PQ_MAX_SCHEMA_DEPTH. */
static int build_tree(pq_reader *r, tdb_error *err, uint64_t footer_off) {
    snode *nodes = r->nodes;
    if (r->nnodes == 0 || nodes[0].num_children == 0 || nodes[0].type != -1)
        return CORRUPT(r, footer_off, "schema has no root group with columns");
    struct frame {
        size_t node;
        int left;
    } stack[PQ_MAX_SCHEMA_DEPTH];
    int depth = 0;
    stack[depth++] = (struct frame){0, nodes[0].num_children};
    nodes[0].first_child = 1;
    nodes[0].def = nodes[0].rep = 0;
    size_t next = 1;
    while (depth > 0) {
        struct frame *f = &stack[depth - 1];
        if (f->left == 0) {
            depth--;
            continue;
        }
        if (next >= r->nnodes)
            return CORRUPT(r, footer_off, "schema element %zu declares more children than there are elements",
                           f->node);
        f->left--;
        snode *n = &nodes[next];
        snode *p = &nodes[f->node];
        n->parent = f->node;
        if (n->repetition < 0) return CORRUPT(r, footer_off, "schema element '%s' has no repetition type", n->name);
        n->def = p->def + (n->repetition != PQR_REQUIRED);
        n->rep = p->rep + (n->repetition == PQR_REPEATED);
        size_t self = next++;
        if (n->num_children > 0) {
            if (n->type != -1) return CORRUPT(r, footer_off, "schema element '%s' has a type and children", n->name);
            if (depth >= PQ_MAX_SCHEMA_DEPTH) return CORRUPT(r, footer_off, "schema nested too deeply");
            n->first_child = next;
            stack[depth++] = (struct frame){self, n->num_children};
        } else {
            if (n->type < 0) return CORRUPT(r, footer_off, "schema element '%s' is an empty group", n->name);
            n->leaf = r->nleaves++;
        }
    }
    if (next != r->nnodes)
        return CORRUPT(r, footer_off, "schema has %zu elements outside the tree", r->nnodes - next);
    return 0;
}

/* Next sibling of node i (the element after its whole subtree). */
static size_t subtree_end(const pq_reader *r, size_t i) {
    size_t end = i + 1;
    /* children follow in order; skip every descendant */
    int pending = r->nodes[i].num_children;
    while (pending > 0 && end < r->nnodes) {
        pending += r->nodes[end].num_children - 1;
        end++;
    }
    return end;
}

static bool is_string_leaf(const snode *n) {
    if (n->type != PQT_BYTE_ARRAY) return false;
    bool conv_ok = n->converted == PQC_NONE || n->converted == PQC_UTF8 || n->converted == PQC_ENUM ||
                   n->converted == PQC_JSON;
    bool logical_ok = n->logical == PQL_NONE || n->logical == PQL_STRING || n->logical == PQL_ENUM ||
                      n->logical == PQL_JSON;
    return conv_ok && logical_ok;
}

static bool is_int_leaf(const snode *n) {
    if (n->type != PQT_INT64 && n->type != PQT_INT32) return false;
    if (n->logical == PQL_INTEGER) return n->int_signed;
    if (n->logical != PQL_NONE) return false;
    return n->converted == PQC_NONE || n->converted == PQC_INT_8 || n->converted == PQC_INT_16 ||
           n->converted == PQC_INT_32 || n->converted == PQC_INT_64;
}

static bool is_float_leaf(const snode *n) {
    return (n->type == PQT_DOUBLE || n->type == PQT_FLOAT) && n->converted == PQC_NONE && n->logical == PQL_NONE;
}

/* Classifies top-level field i. Returns false when it is not a shape we
 * read (a struct, a map, nested lists, or a list whose element is a
 * group); else fills leaf node, list flags and thresholds. */
static bool classify(const pq_reader *r, size_t i, size_t *leaf_node, bool *is_list, int *list_def, int *elem_def) {
    const snode *n = &r->nodes[i];
    if (n->num_children == 0) {
        *leaf_node = i;
        if (n->repetition == PQR_REPEATED) { /* bare repeated field: a required list of required elements */
            *is_list = true;
            *list_def = 0;
            *elem_def = n->def;
        } else {
            *is_list = false;
        }
        return true;
    }
    if (n->repetition == PQR_REPEATED || n->num_children != 1) return false;
    if (n->converted == PQC_MAP || n->converted == PQC_MAP_KEY_VALUE || n->logical == PQL_MAP) return false;
    const snode *mid = &r->nodes[n->first_child];
    if (mid->repetition != PQR_REPEATED) return false;
    *is_list = true;
    *list_def = n->def;
    *elem_def = mid->def;
    if (mid->num_children == 0) { /* 2-level list: repeated primitive, required elements */
        *leaf_node = n->first_child;
        return true;
    }
    if (mid->num_children != 1) return false;
    const snode *el = &r->nodes[mid->first_child];
    if (el->num_children != 0 || el->repetition == PQR_REPEATED) return false;
    if (strcmp(mid->name, "array") == 0) return false; /* legacy: the group is the element */
    size_t nlen = strlen(n->name);
    if (strlen(mid->name) == nlen + 6 && strncmp(mid->name, n->name, nlen) == 0 &&
        strcmp(mid->name + nlen, "_tuple") == 0)
        return false;
    *leaf_node = mid->first_child;
    return true;
}

static int setup_fields(pq_reader *r, tdb_error *err, uint64_t footer_off) {
    size_t top = 0;
    for (size_t i = 1; i < r->nnodes; i = subtree_end(r, i)) top++;
    r->fields = calloc(top + 1, sizeof *r->fields);
    r->attrs = calloc(top + 1, sizeof *r->attrs);
    if (r->fields == NULL || r->attrs == NULL) return nomem(r, err);
    bool have_id = false, have_attributes = false, have_vector = false;
    for (size_t i = 1; i < r->nnodes; i = subtree_end(r, i)) {
        const snode *n = &r->nodes[i];
        size_t leaf_node = 0;
        bool is_list = false;
        int list_def = 0, elem_def = 0;
        bool shaped = classify(r, i, &leaf_node, &is_list, &list_def, &elem_def);
        const snode *leaf = &r->nodes[leaf_node];
        rfield f;
        memset(&f, 0, sizeof f);
        f.name = n->name;
        if (shaped) {
            f.leaf = leaf->leaf;
            f.phys = leaf->type;
            f.is_list = is_list;
            f.max_def = leaf->def;
            f.max_rep = leaf->rep;
            f.list_def = list_def;
            f.elem_def = elem_def;
        }
        if (strcmp(n->name, "id") == 0 || strcmp(n->name, "attributes") == 0) {
            bool is_id = n->name[0] == 'i';
            if (!shaped || is_list || leaf->type != PQT_BYTE_ARRAY)
                return CORRUPT(r, footer_off, "column '%s' must be a string column", n->name);
            if ((is_id && have_id) || (!is_id && have_attributes))
                return CORRUPT(r, footer_off, "column '%s' appears twice", n->name);
            f.role = is_id ? ROLE_ID : ROLE_ATTRIBUTES;
            f.kind = OK_STR;
            if (is_id) have_id = true;
            else have_attributes = true;
        } else if (strcmp(n->name, "vector") == 0) {
            if (!shaped || !is_list || leaf->type != PQT_FLOAT)
                return CORRUPT(r, footer_off, "column 'vector' must be a list of FLOAT");
            if (have_vector) return CORRUPT(r, footer_off, "column 'vector' appears twice");
            f.role = ROLE_VECTOR;
            f.kind = OK_F32;
            have_vector = true;
        } else {
            if (!shaped) continue;
            pq_attr_type at;
            if (!is_list && is_string_leaf(leaf)) at = PQ_ATTR_STRING;
            else if (!is_list && is_int_leaf(leaf)) at = PQ_ATTR_INT;
            else if (!is_list && is_float_leaf(leaf)) at = PQ_ATTR_FLOAT;
            else if (!is_list && leaf->type == PQT_BOOLEAN) at = PQ_ATTR_BOOL;
            else if (is_list && is_string_leaf(leaf)) at = PQ_ATTR_STRING_ARRAY;
            else if (is_list && is_int_leaf(leaf)) at = PQ_ATTR_INT_ARRAY;
            else continue; /* a type we do not map: ignored */
            f.role = ROLE_ATTR;
            f.attr_type = at;
            f.attr_index = r->schema.attr_count;
            f.kind = at == PQ_ATTR_STRING || at == PQ_ATTR_STRING_ARRAY ? OK_STR
                     : at == PQ_ATTR_FLOAT                              ? OK_F64
                     : at == PQ_ATTR_BOOL                               ? OK_BOOL
                                                                        : OK_I64;
            r->attrs[r->schema.attr_count].name = n->name;
            r->attrs[r->schema.attr_count].type = at;
            r->schema.attr_count++;
        }
        /* One repetition level at most (checked here so that classify's
         * shapes cannot hide a repeated ancestor). */
        if (f.max_rep > (f.is_list ? 1 : 0))
            return CORRUPT(r, footer_off, "column '%s' is nested deeper than we read", n->name);
        if (f.max_def > 255) return CORRUPT(r, footer_off, "column '%s' has too many levels", n->name);
        r->fields[r->nfields++] = f;
    }
    if (!have_id) return CORRUPT(r, footer_off, "not a tierdb snapshot: no column 'id'");
    if (!have_attributes) return CORRUPT(r, footer_off, "not a tierdb snapshot: no column 'attributes'");
    r->schema.attrs = r->attrs;
    r->values = calloc(r->schema.attr_count + 1, sizeof *r->values);
    if (r->values == NULL) return nomem(r, err);
    return 0;
}

/* ---- footer: row groups -------------------------------------------------- */

typedef struct colmeta {
    int type, codec;
    int64_t num_values, total_compressed, data_page_offset, dict_page_offset;
    bool have_type, have_codec, have_num_values, have_total, have_data_offset;
    bool path_ok;
} colmeta;

static void parse_column_meta(pq_tr *t, colmeta *m, const pq_reader *r, size_t leaf_node) {
    pq_tr_struct_begin(t);
    int16_t last = 0, id;
    int type;
    while (pq_tr_field(t, &last, &id, &type)) {
        switch (id) {
        case 1: m->type = pq_tr_i32(t, type); m->have_type = true; break;
        case 3: {
            /* path_in_schema: must name the leaf's ancestors, root excluded. */
            int et;
            size_t n = pq_tr_list(t, type, &et);
            size_t depth = 0;
            for (size_t k = leaf_node; k != 0; k = r->nodes[k].parent) depth++;
            bool ok = n == depth && (n == 0 || et == PQ_TT_BINARY);
            for (size_t k = 0; k < n && !pq_tr_bad(t); k++) {
                size_t len;
                const uint8_t *s = pq_tr_binary(t, et, &len);
                if (!ok) continue;
                /* element k of the path is the ancestor at depth k + 1 */
                size_t node = leaf_node;
                for (size_t up = depth - 1 - k; up > 0; up--) node = r->nodes[node].parent;
                const char *name = r->nodes[node].name;
                if (strlen(name) != len || memcmp(name, s, len) != 0) ok = false;
            }
            m->path_ok = ok;
            break;
        }
        case 4: m->codec = pq_tr_i32(t, type); m->have_codec = true; break;
        case 5: m->num_values = pq_tr_int(t, type); m->have_num_values = true; break;
        case 7: m->total_compressed = pq_tr_int(t, type); m->have_total = true; break;
        case 9: m->data_page_offset = pq_tr_int(t, type); m->have_data_offset = true; break;
        case 11: m->dict_page_offset = pq_tr_int(t, type); break;
        default: pq_tr_skip(t, type, false); break;
        }
    }
    pq_tr_struct_end(t);
}

/* The schema node of each leaf (for path checks). */
static int leaf_nodes(pq_reader *r, size_t **out) {
    size_t *ln = calloc(r->nleaves + 1, sizeof *ln);
    if (ln == NULL) return -1;
    for (size_t i = 0; i < r->nnodes; i++)
        if (i > 0 && r->nodes[i].num_children == 0) ln[r->nodes[i].leaf] = i;
    *out = ln;
    return 0;
}

static int parse_row_groups(pq_reader *r, const uint8_t *p, size_t len, uint64_t off, int64_t num_rows,
                            tdb_error *err) {
    pq_tr t;
    pq_tr_init(&t, p, len, off);
    int et;
    size_t n = pq_tr_list(&t, PQ_TT_LIST, &et);
    if (pq_tr_bad(&t)) return corrupt_tr(r, &t, "row group list", err);
    if (n > 0 && et != PQ_TT_STRUCT) return CORRUPT(r, off, "row groups are not structs");
    if (n > PQ_MAX_ROW_GROUPS) return CORRUPT(r, off, "%zu row groups", n);
    r->groups = calloc(n + 1, sizeof *r->groups);
    size_t *leaf_node = NULL;
    if (r->groups == NULL || leaf_nodes(r, &leaf_node) < 0) {
        free(leaf_node);
        return nomem(r, err);
    }
    /* which field reads which leaf */
    int rc = 0;
    uint64_t total_rows = 0;
    for (size_t g = 0; g < n && rc == 0; g++) {
        rgroup *grp = &r->groups[r->ngroups++];
        grp->rows = -1;
        grp->chunks = calloc(r->nfields + 1, sizeof *grp->chunks);
        if (grp->chunks == NULL) {
            rc = nomem(r, err);
            break;
        }
        uint64_t group_off = off + (uint64_t)(t.p - t.start);
        pq_tr_struct_begin(&t);
        int16_t last = 0, id;
        int type;
        bool have_columns = false;
        while (rc == 0 && pq_tr_field(&t, &last, &id, &type)) {
            if (id == 3) {
                grp->rows = pq_tr_int(&t, type);
                continue;
            }
            if (id != 1) {
                pq_tr_skip(&t, type, false);
                continue;
            }
            have_columns = true;
            int cet;
            size_t ncols = pq_tr_list(&t, type, &cet);
            if (pq_tr_bad(&t)) break;
            if (ncols != r->nleaves || (ncols > 0 && cet != PQ_TT_STRUCT)) {
                rc = CORRUPT(r, group_off, "row group %zu has %zu column chunks, the schema %zu leaves", g, ncols,
                             r->nleaves);
                break;
            }
            for (size_t c = 0; c < ncols && !pq_tr_bad(&t) && rc == 0; c++) {
                uint64_t chunk_off = off + (uint64_t)(t.p - t.start);
                colmeta m;
                memset(&m, 0, sizeof m);
                bool have_meta = false, external = false, encrypted = false;
                pq_tr_struct_begin(&t);
                int16_t l2 = 0, id2;
                int t2;
                while (pq_tr_field(&t, &l2, &id2, &t2)) {
                    if (id2 == 1) {
                        external = true;
                        pq_tr_skip(&t, t2, false);
                    } else if (id2 == 3 && t2 == PQ_TT_STRUCT) {
                        have_meta = true;
                        parse_column_meta(&t, &m, r, leaf_node[c]);
                    } else {
                        if (id2 == 8 || id2 == 9) encrypted = true;
                        pq_tr_skip(&t, t2, false);
                    }
                }
                pq_tr_struct_end(&t);
                if (pq_tr_bad(&t)) break;
                /* find the field reading this leaf */
                rfield *f = NULL;
                size_t fi = 0;
                for (size_t k = 0; k < r->nfields; k++)
                    if (r->fields[k].leaf == c) {
                        f = &r->fields[k];
                        fi = k;
                    }
                if (f == NULL) continue; /* a column we ignore */
                if (encrypted) {
                    rc = unsupported(r, err, "column '%s' is encrypted", f->name);
                    break;
                }
                if (external) {
                    rc = unsupported(r, err, "column '%s' lives in another file", f->name);
                    break;
                }
                if (!have_meta || !m.have_type || !m.have_codec || !m.have_num_values || !m.have_total ||
                    !m.have_data_offset) {
                    rc = CORRUPT(r, chunk_off, "column '%s' of row group %zu lacks required metadata", f->name, g);
                    break;
                }
                if (m.type != f->phys || !m.path_ok) {
                    rc = CORRUPT(r, chunk_off, "column chunk %zu of row group %zu does not match column '%s'", c, g,
                                 f->name);
                    break;
                }
                if (!pq_codec_supported(m.codec)) {
                    rc = unsupported(r, err, "compression codec %s is not supported (use ZSTD, SNAPPY or none)",
                                     pq_codec_name(m.codec));
                    break;
                }
                int64_t start = m.dict_page_offset > 0 ? m.dict_page_offset : m.data_page_offset;
                if (m.dict_page_offset > 0 && m.dict_page_offset > m.data_page_offset) start = m.data_page_offset;
                if (m.num_values < 0 || m.total_compressed < 0 || start < 4 || (uint64_t)start > r->data_end ||
                    (uint64_t)m.total_compressed > r->data_end - (uint64_t)start) {
                    rc = CORRUPT(r, chunk_off, "column '%s' of row group %zu has pages outside the data area",
                                 f->name, g);
                    break;
                }
                grp->chunks[fi] = (rchunk){(uint64_t)start, (uint64_t)start + (uint64_t)m.total_compressed, m.codec,
                                           m.num_values};
            }
        }
        pq_tr_struct_end(&t);
        if (rc) break;
        if (pq_tr_bad(&t)) break;
        if (!have_columns || grp->rows < 0) {
            rc = CORRUPT(r, group_off, "row group %zu lacks columns or a row count", g);
            break;
        }
        total_rows += (uint64_t)grp->rows;
        if (total_rows > (uint64_t)INT64_MAX) {
            rc = CORRUPT(r, group_off, "row counts overflow");
            break;
        }
    }
    free(leaf_node);
    if (rc) return rc;
    if (pq_tr_bad(&t)) return corrupt_tr(r, &t, "row groups", err);
    if (num_rows < 0 || total_rows != (uint64_t)num_rows)
        return CORRUPT(r, off, "footer says %lld rows, its row groups %llu", (long long)num_rows,
                       (unsigned long long)total_rows);
    r->row_count = total_rows;
    return 0;
}

/* ---- footer: key-value metadata ------------------------------------------ */

static int parse_kvs(pq_reader *r, const uint8_t *p, size_t len, uint64_t off, tdb_error *err) {
    pq_tr t;
    pq_tr_init(&t, p, len, off);
    int et;
    size_t n = pq_tr_list(&t, PQ_TT_LIST, &et);
    if (n > 0 && et != PQ_TT_STRUCT) pq_tr_fail(&t, "key-value entries are not structs");
    if (pq_tr_bad(&t)) return corrupt_tr(r, &t, "key-value metadata", err);
    r->kvs = calloc(n + 1, sizeof *r->kvs);
    if (r->kvs == NULL) return nomem(r, err);
    for (size_t i = 0; i < n && !pq_tr_bad(&t); i++) {
        kv *e = &r->kvs[r->nkvs++];
        pq_tr_struct_begin(&t);
        int16_t last = 0, id;
        int type;
        while (pq_tr_field(&t, &last, &id, &type)) {
            size_t l;
            const uint8_t *s;
            if ((id == 1 || id == 2) && (s = pq_tr_binary(&t, type, &l)) != NULL) {
                char *copy = dup_bytes(s, l);
                if (copy == NULL) return nomem(r, err);
                if (id == 1) {
                    free(e->key);
                    e->key = copy;
                } else {
                    free(e->value);
                    e->value = copy;
                    e->value_len = l;
                }
            } else if (id != 1 && id != 2) {
                pq_tr_skip(&t, type, false);
            }
        }
        pq_tr_struct_end(&t);
        if (e->key == NULL) pq_tr_fail(&t, "key-value entry without a key");
    }
    if (pq_tr_bad(&t)) return corrupt_tr(r, &t, "key-value metadata", err);
    return 0;
}

const char *pq_reader_metadata(const pq_reader *r, const char *key, size_t *len) {
    /* the last entry wins, as with JSON objects */
    for (size_t i = r->nkvs; i-- > 0;) {
        if (r->kvs[i].key && strcmp(r->kvs[i].key, key) == 0) {
            if (len) *len = r->kvs[i].value_len;
            return r->kvs[i].value;
        }
    }
    if (len) *len = 0;
    return NULL;
}

/* Parses a decimal in 0..max; -1 when it is not one. */
static int64_t parse_decimal(const char *s, int64_t max) {
    if (s == NULL || *s == '\0') return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
        if (v > max) return -1;
    }
    return v;
}

static int check_metadata(pq_reader *r, tdb_error *err, uint64_t footer_off) {
    const char *format = pq_reader_metadata(r, "tierdb.format", NULL);
    if (format) {
        int64_t f = parse_decimal(format, 1000000);
        if (f < 1) return CORRUPT(r, footer_off, "tierdb.format '%s' is not a version number", format);
        if (f > PQ_SNAPSHOT_FORMAT) {
            r->failed = true;
            return tdb_err(err, TDB_EUNSUPPORTED, "unsupported_snapshot",
                           "%s: snapshot format %lld is newer than this tierdb reads (%d); upgrade tierdb", r->path,
                           (long long)f, PQ_SNAPSHOT_FORMAT);
        }
    }
    const char *dim = pq_reader_metadata(r, "tierdb.dimension", NULL);
    r->dimension = -1;
    if (dim) {
        int64_t d = parse_decimal(dim, PQ_MAX_DIMENSION);
        if (d < 0) return CORRUPT(r, footer_off, "tierdb.dimension '%s' is not a dimension", dim);
        r->dimension = d;
        r->schema.dimension = (uint32_t)d;
    }
    bool have_vector = false;
    for (size_t i = 0; i < r->nfields; i++) have_vector |= r->fields[i].role == ROLE_VECTOR;
    if (!have_vector && r->dimension > 0)
        return CORRUPT(r, footer_off, "tierdb.dimension is %lld but there is no column 'vector'",
                       (long long)r->dimension);
    r->schema.collection = pq_reader_metadata(r, "tierdb.collection", NULL);
    r->schema.metric = pq_reader_metadata(r, "tierdb.metric", NULL);
    r->schema.config_json = pq_reader_metadata(r, "tierdb.config", NULL);
    return 0;
}

/* ---- footer: FileMetaData ------------------------------------------------ */

static int parse_footer(pq_reader *r, const uint8_t *p, size_t len, uint64_t off, tdb_error *err) {
    pq_tr t;
    pq_tr_init(&t, p, len, off);
    const uint8_t *schema_at = NULL, *groups_at = NULL, *kv_at = NULL;
    size_t schema_len = 0, groups_len = 0, kv_len = 0;
    int64_t num_rows = -1;
    bool encrypted = false;
    pq_tr_struct_begin(&t);
    int16_t last = 0, id;
    int type;
    /* First pass: find the parts (Thrift does not promise field order). */
    while (pq_tr_field(&t, &last, &id, &type)) {
        const uint8_t *at = t.p;
        switch (id) {
        case 2:
        case 4:
        case 5:
            if (type != PQ_TT_LIST) pq_tr_fail(&t, "expected a list");
            pq_tr_skip(&t, type, false);
            if (id == 2) schema_at = at, schema_len = (size_t)(t.p - at);
            if (id == 4) groups_at = at, groups_len = (size_t)(t.p - at);
            if (id == 5) kv_at = at, kv_len = (size_t)(t.p - at);
            break;
        case 3: num_rows = pq_tr_int(&t, type); break;
        case 8:
            encrypted = true;
            pq_tr_skip(&t, type, false);
            break;
        default: pq_tr_skip(&t, type, false); break;
        }
    }
    pq_tr_struct_end(&t);
    if (pq_tr_bad(&t)) return corrupt_tr(r, &t, "footer", err);
    if (encrypted) return unsupported(r, err, "%s", "encrypted Parquet files are not supported");
    if (schema_at == NULL || groups_at == NULL || num_rows < 0)
        return CORRUPT(r, off, "footer lacks its schema, row groups or row count");

    /* schema */
    pq_tr s;
    pq_tr_init(&s, schema_at, schema_len, off + (uint64_t)(schema_at - p));
    int et;
    size_t n = pq_tr_list(&s, PQ_TT_LIST, &et);
    if (n > 0 && et != PQ_TT_STRUCT) pq_tr_fail(&s, "schema elements are not structs");
    if (n > PQ_MAX_SCHEMA_ELEMENTS) pq_tr_fail(&s, "too many schema elements");
    if (pq_tr_bad(&s)) return corrupt_tr(r, &s, "schema", err);
    r->nodes = calloc(n + 1, sizeof *r->nodes);
    if (r->nodes == NULL) return nomem(r, err);
    for (size_t i = 0; i < n && !pq_tr_bad(&s); i++) {
        if (parse_schema_element(&s, &r->nodes[i]) < 0) return nomem(r, err);
        r->nnodes++;
    }
    if (pq_tr_bad(&s)) return corrupt_tr(r, &s, "schema", err);
    int rc = build_tree(r, err, s.base);
    if (rc == 0) rc = setup_fields(r, err, s.base);
    if (rc == 0 && kv_at) rc = parse_kvs(r, kv_at, kv_len, off + (uint64_t)(kv_at - p), err);
    if (rc == 0) rc = check_metadata(r, err, off);
    if (rc == 0) rc = parse_row_groups(r, groups_at, groups_len, off + (uint64_t)(groups_at - p), num_rows, err);
    return rc;
}

/* ---- open / close ------------------------------------------------------- */

static void rvals_free(rvals *v) {
    free(v->s);
    free(v->i);
    free(v->d);
    free(v->f);
    free(v->b);
}

static void cursor_free(rcursor *c) {
    free(c->dict_buf);
    rvals_free(&c->dict);
    free(c->raw);
    free(c->page);
    free(c->defs);
    free(c->reps);
    rvals_free(&c->vals);
    free(c->strs);
    free(c->u64);
    free(c->idx);
    free(c->hdr);
}

void pq_reader_close(pq_reader *r) {
    if (r == NULL) return;
    if (r->fd >= 0) fio_close(r->fd);
    for (size_t i = 0; i < r->nnodes; i++) free(r->nodes[i].name);
    free(r->nodes);
    for (size_t i = 0; i < r->nfields; i++) {
        cursor_free(&r->fields[i].cur);
        free(r->fields[i].fout);
        free(r->fields[i].iout);
        free(r->fields[i].sout);
    }
    free(r->fields);
    for (size_t g = 0; g < r->ngroups; g++) free(r->groups[g].chunks);
    free(r->groups);
    for (size_t i = 0; i < r->nkvs; i++) {
        free(r->kvs[i].key);
        free(r->kvs[i].value);
    }
    free(r->kvs);
    free(r->attrs);
    free(r->values);
    buf_free(&r->arena);
    free(r->path);
    free(r);
}

int pq_reader_open(const char *path, pq_reader **out, tdb_error *err) {
    *out = NULL;
    pq_reader *r = calloc(1, sizeof *r);
    if (r == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    r->fd = -1;
    r->dimension = -1;
    r->path = strdup(path);
    if (r->path == NULL) {
        free(r);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    }
    int rc = 0;
    uint8_t *footer = NULL;
    int fd = fio_open(path, O_RDONLY, 0);
    if (fd < 0) {
        rc = tdb_err(err, fd == -ENOENT ? TDB_ENOTFOUND : TDB_EIO, NULL, "cannot open %s: %s", path, strerror(-fd));
        goto done;
    }
    r->fd = fd;
    int64_t size = fio_file_size(path);
    if (size < 0) {
        rc = tdb_err(err, TDB_EIO, NULL, "cannot stat %s: %s", path, strerror((int)-size));
        goto done;
    }
    r->file_size = (uint64_t)size;
    if (r->file_size < 12) {
        rc = CORRUPT(r, 0, "%llu bytes is too short for a Parquet file", (unsigned long long)r->file_size);
        goto done;
    }
    uint8_t head[4], tail[8];
    if ((rc = read_at(r, head, 4, 0, err)) < 0 || (rc = read_at(r, tail, 8, r->file_size - 8, err)) < 0) goto done;
    if (memcmp(tail + 4, PQ_MAGIC_ENCRYPTED, 4) == 0) {
        rc = unsupported(r, err, "%s", "encrypted Parquet files are not supported");
        goto done;
    }
    if (memcmp(head, PQ_MAGIC, 4) != 0) {
        rc = CORRUPT(r, 0, "no Parquet magic at the start");
        goto done;
    }
    if (memcmp(tail + 4, PQ_MAGIC, 4) != 0) {
        rc = CORRUPT(r, r->file_size - 4, "no Parquet magic at the end (truncated file?)");
        goto done;
    }
    uint32_t footer_len = load_u32(tail);
    if (footer_len == 0 || footer_len > r->file_size - 12 || footer_len > PQ_MAX_FOOTER_BYTES) {
        rc = CORRUPT(r, r->file_size - 8, "footer length %u does not fit the file of %llu bytes", footer_len,
                     (unsigned long long)r->file_size);
        goto done;
    }
    uint64_t footer_off = r->file_size - 8 - footer_len;
    r->data_end = footer_off;
    footer = malloc(footer_len);
    if (footer == NULL) {
        rc = nomem(r, err);
        goto done;
    }
    if ((rc = read_at(r, footer, footer_len, footer_off, err)) < 0) goto done;
    rc = parse_footer(r, footer, footer_len, footer_off, err);
done:
    free(footer);
    if (rc < 0) {
        pq_reader_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

const pq_schema *pq_reader_schema(const pq_reader *r) { return &r->schema; }
uint64_t pq_reader_row_count(const pq_reader *r) { return r->row_count; }
uint32_t pq_reader_row_group_count(const pq_reader *r) { return (uint32_t)r->ngroups; }
int64_t pq_reader_dimension(const pq_reader *r) { return r->dimension; }
void pq_reader_get_stats(const pq_reader *r, pq_reader_stats *out) { *out = r->stats; }

/* ---- pages ----------------------------------------------------------------- */

typedef struct page_header {
    int type;
    int64_t uncompressed, compressed;
    bool have_crc;
    uint32_t crc;
    /* data page v1 / v2 / dictionary */
    bool have_sub;
    int64_t num_values, num_nulls, num_rows;
    int encoding, def_encoding, rep_encoding;
    int64_t def_len, rep_len;
    bool is_compressed;
} page_header;

static void parse_sub_header(pq_tr *t, page_header *h, int which) {
    pq_tr_struct_begin(t);
    int16_t last = 0, id;
    int type;
    bool nv = false, enc = false, dl = false, rl = false, nn = false, nr = false;
    while (pq_tr_field(t, &last, &id, &type)) {
        if (id == 1) h->num_values = pq_tr_i32(t, type), nv = true;
        else if (which == 5 && id == 2) h->encoding = pq_tr_i32(t, type), enc = true;
        else if (which == 5 && id == 3) h->def_encoding = pq_tr_i32(t, type), dl = true;
        else if (which == 5 && id == 4) h->rep_encoding = pq_tr_i32(t, type), rl = true;
        else if (which == 7 && id == 2) h->encoding = pq_tr_i32(t, type), enc = true;
        else if (which == 8 && id == 2) h->num_nulls = pq_tr_i32(t, type), nn = true;
        else if (which == 8 && id == 3) h->num_rows = pq_tr_i32(t, type), nr = true;
        else if (which == 8 && id == 4) h->encoding = pq_tr_i32(t, type), enc = true;
        else if (which == 8 && id == 5) h->def_len = pq_tr_i32(t, type), dl = true;
        else if (which == 8 && id == 6) h->rep_len = pq_tr_i32(t, type), rl = true;
        else if (which == 8 && id == 7) h->is_compressed = pq_tr_bool(t, type, false);
        else pq_tr_skip(t, type, false);
    }
    pq_tr_struct_end(t);
    bool ok = nv && enc;
    if (which == 5) ok = ok && dl && rl;
    if (which == 8) ok = ok && nn && nr && dl && rl;
    if (!ok) pq_tr_fail(t, "page header lacks required fields");
    if (h->num_values < 0 || h->num_nulls < 0 || h->def_len < 0 || h->rep_len < 0)
        pq_tr_fail(t, "negative count in page header");
    h->have_sub = true;
}

static void parse_page_header(pq_tr *t, page_header *h) {
    memset(h, 0, sizeof *h);
    h->type = -1;
    h->is_compressed = true;
    bool have_type = false, have_u = false, have_c = false;
    pq_tr_struct_begin(t);
    int16_t last = 0, id;
    int type;
    while (pq_tr_field(t, &last, &id, &type)) {
        switch (id) {
        case 1: h->type = pq_tr_i32(t, type), have_type = true; break;
        case 2: h->uncompressed = pq_tr_i32(t, type), have_u = true; break;
        case 3: h->compressed = pq_tr_i32(t, type), have_c = true; break;
        case 4:
            h->crc = (uint32_t)pq_tr_i32(t, type);
            h->have_crc = true;
            break;
        case 5:
        case 7:
        case 8:
            if (type == PQ_TT_STRUCT && !h->have_sub &&
                ((id == 5 && h->type == PQP_DATA_PAGE) || (id == 7 && h->type == PQP_DICTIONARY_PAGE) ||
                 (id == 8 && h->type == PQP_DATA_PAGE_V2))) {
                parse_sub_header(t, h, id);
            } else {
                pq_tr_skip(t, type, false);
            }
            break;
        default: pq_tr_skip(t, type, false); break;
        }
    }
    pq_tr_struct_end(t);
    if (!have_type || !have_u || !have_c) pq_tr_fail(t, "page header lacks type or sizes");
    if (h->uncompressed < 0 || h->compressed < 0) pq_tr_fail(t, "negative page size");
}

/* Reads the page header at c->pos: fills *h and *hdr_len. */
static int read_page_header(pq_reader *r, rfield *f, page_header *h, size_t *hdr_len, tdb_error *err) {
    rcursor *c = &f->cur;
    uint64_t avail = c->chunk.end - c->pos;
    size_t want = avail < PQ_HEADER_FIRST_READ ? (size_t)avail : PQ_HEADER_FIRST_READ;
    for (;;) {
        if (!grow((void **)&c->hdr, &c->hdr_cap, want, 1)) return nomem(r, err);
        int rc = read_at(r, c->hdr, want, c->pos, err);
        if (rc < 0) return rc;
        pq_tr t;
        pq_tr_init(&t, c->hdr, want, c->pos);
        parse_page_header(&t, h);
        if (!pq_tr_bad(&t)) {
            *hdr_len = (size_t)(t.p - t.start);
            return 0;
        }
        /* Maybe it just did not fit in what we read: try more. */
        if (want == avail || want >= PQ_MAX_PAGE_HEADER_BYTES)
            return corrupt_tr(r, &t, "page header", err);
        want = want * 4 < avail ? want * 4 : (size_t)avail;
        if (want > PQ_MAX_PAGE_HEADER_BYTES) want = PQ_MAX_PAGE_HEADER_BYTES;
    }
}

static bool rvals_reserve(rvals *v, okind kind, size_t n) {
    if (n <= v->cap && ((kind == OK_STR && v->s) || (kind == OK_I64 && v->i) || (kind == OK_F64 && v->d) ||
                        (kind == OK_F32 && v->f) || (kind == OK_BOOL && v->b)))
        return true;
    size_t cap = n > v->cap ? n : v->cap;
    if (cap < 64) cap = 64;
    void *p;
    switch (kind) {
    case OK_STR: p = realloc(v->s, cap * sizeof *v->s); if (p) v->s = p; break;
    case OK_I64: p = realloc(v->i, cap * sizeof *v->i); if (p) v->i = p; break;
    case OK_F64: p = realloc(v->d, cap * sizeof *v->d); if (p) v->d = p; break;
    case OK_F32: p = realloc(v->f, cap * sizeof *v->f); if (p) v->f = p; break;
    default: p = realloc(v->b, cap * sizeof *v->b); if (p) v->b = p; break;
    }
    if (p == NULL) return false;
    v->cap = cap;
    return true;
}

/* Stores value k of a decoded numeric stream into out[k] as the field's
 * kind. */
static void put_int(rvals *out, okind kind, size_t k, int64_t v) {
    if (kind == OK_I64) out->i[k] = v;
}

static double float_from_bits32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void put_f32_bits(rvals *out, okind kind, size_t k, uint32_t bits) {
    if (kind == OK_F32) memcpy(&out->f[k], &bits, 4);
    else if (kind == OK_F64) out->d[k] = float_from_bits32(bits);
}

static void put_f64_bits(rvals *out, okind kind, size_t k, uint64_t bits) {
    if (kind == OK_F64) memcpy(&out->d[k], &bits, 8);
}

/* Decodes n PLAIN values of f's physical type from [p, end) into out.
 * *used gets the bytes consumed. */
static int decode_plain(const rfield *f, const uint8_t *p, const uint8_t *end, size_t n, rvals *out, size_t *used) {
    size_t avail = (size_t)(end - p);
    switch (f->phys) {
    case PQT_BOOLEAN:
        if (avail < (n + 7) / 8) return -1;
        for (size_t k = 0; k < n; k++) out->b[k] = (p[k >> 3] >> (k & 7)) & 1;
        *used = (n + 7) / 8;
        return 0;
    case PQT_INT32:
        if (avail / 4 < n) return -1;
        for (size_t k = 0; k < n; k++) put_int(out, f->kind, k, (int32_t)load_u32(p + 4 * k));
        *used = 4 * n;
        return 0;
    case PQT_INT64:
        if (avail / 8 < n) return -1;
        for (size_t k = 0; k < n; k++) put_int(out, f->kind, k, (int64_t)load_u64(p + 8 * k));
        *used = 8 * n;
        return 0;
    case PQT_FLOAT:
        if (avail / 4 < n) return -1;
        for (size_t k = 0; k < n; k++) put_f32_bits(out, f->kind, k, load_u32(p + 4 * k));
        *used = 4 * n;
        return 0;
    case PQT_DOUBLE:
        if (avail / 8 < n) return -1;
        for (size_t k = 0; k < n; k++) put_f64_bits(out, f->kind, k, load_u64(p + 8 * k));
        *used = 8 * n;
        return 0;
    case PQT_BYTE_ARRAY: {
        const uint8_t *q = p;
        for (size_t k = 0; k < n; k++) {
            if ((size_t)(end - q) < 4) return -1;
            uint32_t len = load_u32(q);
            q += 4;
            if ((size_t)(end - q) < len) return -1;
            out->s[k] = (pq_bytes){(const char *)q, len};
            q += len;
        }
        *used = (size_t)(q - p);
        return 0;
    }
    default: return -1;
    }
}

/* Loads the chunk's dictionary page body (decompressed) into c->dict. */
static int load_dictionary(pq_reader *r, rfield *f, const page_header *h, uint64_t body_off, tdb_error *err) {
    rcursor *c = &f->cur;
    if (c->has_dict || c->data_seen) return CORRUPT(r, body_off, "column '%s': unexpected dictionary page", f->name);
    if (h->encoding != PQE_PLAIN && h->encoding != PQE_PLAIN_DICTIONARY)
        return CORRUPT(r, body_off, "column '%s': dictionary page encoding %d", f->name, h->encoding);
    if ((size_t)h->num_values > PQ_MAX_PAGE_ENTRIES)
        return CORRUPT(r, body_off, "column '%s': dictionary of %lld values", f->name, (long long)h->num_values);
    size_t n = (size_t)h->num_values;
    /* the page body is in c->page; keep it as the dictionary's storage */
    uint8_t *tmp = c->dict_buf;
    size_t tcap = c->dict_cap;
    c->dict_buf = c->page;
    c->dict_cap = c->page_cap;
    c->page = tmp;
    c->page_cap = tcap;
    if (!rvals_reserve(&c->dict, f->kind, n + 1)) return nomem(r, err);
    size_t used;
    if (decode_plain(f, c->dict_buf, c->dict_buf + h->uncompressed, n, &c->dict, &used) < 0)
        return CORRUPT(r, body_off, "column '%s': dictionary page shorter than its %zu values", f->name, n);
    c->dict_n = n;
    c->has_dict = true;
    return 0;
}

/* Decodes the non-null values of a data page: n of them, from [p, end),
 * in the given encoding, into c->vals. */
static int decode_values(pq_reader *r, rfield *f, int encoding, const uint8_t *p, const uint8_t *end, size_t n,
                         uint64_t off, tdb_error *err) {
    rcursor *c = &f->cur;
    if (!rvals_reserve(&c->vals, f->kind, n + 1)) return nomem(r, err);
    if (n == 0) return 0;
    size_t used;
    switch (encoding) {
    case PQE_PLAIN:
        if (decode_plain(f, p, end, n, &c->vals, &used) < 0)
            return CORRUPT(r, off, "column '%s': page holds fewer than its %zu values", f->name, n);
        return 0;
    case PQE_PLAIN_DICTIONARY:
    case PQE_RLE_DICTIONARY: {
        if (!c->has_dict || c->dict_n == 0)
            return CORRUPT(r, off, "column '%s': dictionary-encoded page without a dictionary", f->name);
        if (p >= end) return CORRUPT(r, off, "column '%s': empty dictionary-encoded page", f->name);
        int bw = *p++;
        if (bw > 32) return CORRUPT(r, off, "column '%s': index bit width %d", f->name, bw);
        if (!grow((void **)&c->idx, &c->idx_cap, n, sizeof *c->idx)) return nomem(r, err);
        if (pq_rle_decode(p, end, bw, (uint32_t)(c->dict_n - 1), c->idx, 4, n, NULL) < 0)
            return CORRUPT(r, off, "column '%s': malformed dictionary indices", f->name);
        for (size_t k = 0; k < n; k++) {
            uint32_t i = c->idx[k];
            switch (f->kind) {
            case OK_STR: c->vals.s[k] = c->dict.s[i]; break;
            case OK_I64: c->vals.i[k] = c->dict.i[i]; break;
            case OK_F64: c->vals.d[k] = c->dict.d[i]; break;
            case OK_F32: c->vals.f[k] = c->dict.f[i]; break;
            case OK_BOOL: c->vals.b[k] = c->dict.b[i]; break;
            }
        }
        return 0;
    }
    case PQE_RLE: {
        if (f->phys != PQT_BOOLEAN) break;
        if ((size_t)(end - p) < 4) return CORRUPT(r, off, "column '%s': truncated RLE booleans", f->name);
        uint32_t len = load_u32(p);
        p += 4;
        if ((size_t)(end - p) < len) return CORRUPT(r, off, "column '%s': RLE booleans past the page", f->name);
        if (pq_rle_decode(p, p + len, 1, 1, c->vals.b, 1, n, NULL) < 0)
            return CORRUPT(r, off, "column '%s': malformed RLE booleans", f->name);
        return 0;
    }
    case PQE_DELTA_BINARY_PACKED: {
        if (f->phys != PQT_INT32 && f->phys != PQT_INT64) break;
        if (!grow((void **)&c->u64, &c->u64_cap, n, sizeof *c->u64)) return nomem(r, err);
        size_t count;
        if (pq_delta_decode(&p, end, c->u64, n, &count) < 0 || count != n)
            return CORRUPT(r, off, "column '%s': malformed DELTA_BINARY_PACKED values", f->name);
        for (size_t k = 0; k < n; k++)
            put_int(&c->vals, f->kind, k,
                    f->phys == PQT_INT32 ? (int64_t)(int32_t)(uint32_t)c->u64[k] : (int64_t)c->u64[k]);
        return 0;
    }
    case PQE_DELTA_LENGTH_BYTE_ARRAY:
    case PQE_DELTA_BYTE_ARRAY: {
        if (f->phys != PQT_BYTE_ARRAY) break;
        /* needs 2n scratch for prefix and suffix lengths */
        if (n > SIZE_MAX / 2 || !grow((void **)&c->u64, &c->u64_cap, 2 * n, sizeof *c->u64)) return nomem(r, err);
        uint64_t *prefix = c->u64, *lens = c->u64 + n;
        size_t count;
        if (encoding == PQE_DELTA_BYTE_ARRAY) {
            if (pq_delta_decode(&p, end, prefix, n, &count) < 0 || count != n)
                return CORRUPT(r, off, "column '%s': malformed DELTA_BYTE_ARRAY prefixes", f->name);
        }
        if (pq_delta_decode(&p, end, lens, n, &count) < 0 || count != n)
            return CORRUPT(r, off, "column '%s': malformed byte-array lengths", f->name);
        if (encoding == PQE_DELTA_LENGTH_BYTE_ARRAY) {
            for (size_t k = 0; k < n; k++) {
                if (lens[k] > (uint64_t)(end - p))
                    return CORRUPT(r, off, "column '%s': byte-array value past the page", f->name);
                c->vals.s[k] = (pq_bytes){(const char *)p, (size_t)lens[k]};
                p += lens[k];
            }
            return 0;
        }
        /* DELTA_BYTE_ARRAY: value k = prefix of value k-1 + suffix k. */
        uint64_t total = 0, suffix_left = (uint64_t)(end - p);
        for (size_t k = 0; k < n; k++) {
            uint64_t prev_len = k ? prefix[k - 1] + lens[k - 1] : 0;
            if (lens[k] > suffix_left || prefix[k] > prev_len)
                return CORRUPT(r, off, "column '%s': malformed DELTA_BYTE_ARRAY value %zu", f->name, k);
            suffix_left -= lens[k];
            total += prefix[k] + lens[k];
            if (total > PQ_MAX_PAGE_STRING_BYTES)
                return CORRUPT(r, off, "column '%s': DELTA_BYTE_ARRAY page expands past the limit", f->name);
        }
        if (!grow((void **)&c->strs, &c->strs_cap, (size_t)total + 1, 1)) return nomem(r, err);
        size_t at = 0, prev_at = 0;
        const uint8_t *suffix = p;
        /* Invariant: values [0, k) are in strs[0, at); the previous one
         * starts at prev_at, and prefix[k] <= its length (checked above),
         * so the copied prefix never overlaps its destination. */
        for (size_t k = 0; k < n; k++) {
            size_t pl = (size_t)prefix[k], sl = (size_t)lens[k];
            if (pl) memcpy(c->strs + at, c->strs + prev_at, pl);
            if (sl) memcpy(c->strs + at + pl, suffix, sl);
            suffix += sl;
            prev_at = at;
            at += pl + sl;
            lens[k] = pl + sl; /* the full length, for the pointers below */
        }
        at = 0;
        for (size_t k = 0; k < n; k++) {
            c->vals.s[k] = (pq_bytes){c->strs + at, (size_t)lens[k]};
            at += (size_t)lens[k];
        }
        return 0;
    }
    case PQE_BYTE_STREAM_SPLIT: {
        size_t width = f->phys == PQT_FLOAT || f->phys == PQT_INT32    ? 4
                       : f->phys == PQT_DOUBLE || f->phys == PQT_INT64 ? 8
                                                                       : 0;
        if (width == 0) break;
        if ((size_t)(end - p) / width < n || (size_t)(end - p) != width * n)
            return CORRUPT(r, off, "column '%s': BYTE_STREAM_SPLIT data is not %zu x %zu bytes", f->name, width, n);
        for (size_t k = 0; k < n; k++) {
            uint64_t bits = 0;
            for (size_t b = 0; b < width; b++) bits |= (uint64_t)p[b * n + k] << (8 * b);
            if (f->phys == PQT_FLOAT) put_f32_bits(&c->vals, f->kind, k, (uint32_t)bits);
            else if (f->phys == PQT_DOUBLE) put_f64_bits(&c->vals, f->kind, k, bits);
            else if (f->phys == PQT_INT32) put_int(&c->vals, f->kind, k, (int32_t)(uint32_t)bits);
            else put_int(&c->vals, f->kind, k, (int64_t)bits);
        }
        return 0;
    }
    default: break;
    }
    char what[64];
    snprintf(what, sizeof what, "encoding %d of column '%s'", encoding, f->name);
    return unsupported(r, err, "%s is not supported", what);
}

/* Decodes a level stream of n entries (hybrid, bit width from max). */
static int decode_levels(pq_reader *r, rfield *f, const uint8_t *p, const uint8_t *end, int max, uint8_t *out,
                         size_t n, uint64_t off, tdb_error *err) {
    if (pq_rle_decode(p, end, pq_bit_width((uint64_t)max), (uint32_t)max, out, 1, n, NULL) < 0)
        return CORRUPT(r, off, "column '%s': malformed levels", f->name);
    return 0;
}

/* Reads the next page of f's chunk. *got_data: a data page was loaded
 * (false at the end of the chunk). */
static int next_page(pq_reader *r, rfield *f, bool *got_data, tdb_error *err) {
    rcursor *c = &f->cur;
    *got_data = false;
    while (c->pos < c->chunk.end) {
        page_header h;
        size_t hdr_len = 0;
        int rc = read_page_header(r, f, &h, &hdr_len, err);
        if (rc < 0) return rc;
        uint64_t body_off = c->pos + hdr_len;
        if ((uint64_t)h.compressed > c->chunk.end - body_off)
            return CORRUPT(r, c->pos, "column '%s': page of %lld bytes runs past its column chunk", f->name,
                           (long long)h.compressed);
        if ((size_t)h.uncompressed > PQ_MAX_PAGE_BYTES)
            return CORRUPT(r, c->pos, "column '%s': page of %lld bytes exceeds the limit", f->name,
                           (long long)h.uncompressed);
        uint64_t page_off = c->pos;
        c->pos = body_off + (uint64_t)h.compressed;
        if (h.type >= 0 && h.type < 4) r->stats.pages_by_type[h.type]++;
        if (h.type == PQP_INDEX_PAGE) continue;
        if (h.type != PQP_DATA_PAGE && h.type != PQP_DATA_PAGE_V2 && h.type != PQP_DICTIONARY_PAGE)
            return CORRUPT(r, page_off, "column '%s': unknown page type %d", f->name, h.type);
        if (!h.have_sub) return CORRUPT(r, page_off, "column '%s': page header lacks its type's part", f->name);
        size_t clen = (size_t)h.compressed, ulen = (size_t)h.uncompressed;
        if (!grow((void **)&c->raw, &c->raw_cap, clen + 1, 1) || !grow((void **)&c->page, &c->page_cap, ulen + 1, 1))
            return nomem(r, err);
        if ((rc = read_at(r, c->raw, clen, body_off, err)) < 0) return rc;
        if (h.have_crc && pq_crc32(c->raw, clen) != h.crc)
            return CORRUPT(r, body_off, "column '%s': page checksum mismatch", f->name);

        if (h.type == PQP_DICTIONARY_PAGE) {
            if (pq_decompress(c->chunk.codec, c->raw, clen, c->page, ulen) < 0)
                return CORRUPT(r, body_off, "column '%s': dictionary page does not decompress", f->name);
            if ((rc = load_dictionary(r, f, &h, body_off, err)) < 0) return rc;
            continue;
        }

        /* data page */
        c->data_seen = true;
        size_t n = (size_t)h.num_values;
        if (n > PQ_MAX_PAGE_ENTRIES)
            return CORRUPT(r, page_off, "column '%s': page claims %zu values, more than the limit", f->name, n);
        if ((int64_t)n > c->chunk.num_values - c->entries_seen)
            return CORRUPT(r, page_off, "column '%s': pages hold more values than the chunk's %lld", f->name,
                           (long long)c->chunk.num_values);
        c->entries_seen += (int64_t)n;
        if (!grow((void **)&c->defs, &c->defs_cap, n + 1, 1) || !grow((void **)&c->reps, &c->reps_cap, n + 1, 1))
            return nomem(r, err);
        const uint8_t *p, *end;
        if (h.type == PQP_DATA_PAGE) {
            if (pq_decompress(c->chunk.codec, c->raw, clen, c->page, ulen) < 0)
                return CORRUPT(r, body_off, "column '%s': page does not decompress", f->name);
            p = c->page;
            end = c->page + ulen;
            for (int which = 0; which < 2; which++) {
                int max = which == 0 ? f->max_rep : f->max_def;
                uint8_t *out = which == 0 ? c->reps : c->defs;
                if (max == 0) {
                    memset(out, which == 0 ? 0 : f->max_def, n);
                    continue;
                }
                int enc = which == 0 ? h.rep_encoding : h.def_encoding;
                if (enc != PQE_RLE) {
                    char what[80];
                    snprintf(what, sizeof what, "level encoding %d of column '%s'", enc, f->name);
                    return unsupported(r, err, "%s is not supported", what);
                }
                if ((size_t)(end - p) < 4) return CORRUPT(r, body_off, "column '%s': truncated levels", f->name);
                uint32_t len = load_u32(p);
                p += 4;
                if ((size_t)(end - p) < len)
                    return CORRUPT(r, body_off, "column '%s': levels past the page", f->name);
                if ((rc = decode_levels(r, f, p, p + len, max, out, n, body_off, err)) < 0) return rc;
                p += len;
            }
        } else {
            size_t rl = (size_t)h.rep_len, dl = (size_t)h.def_len;
            if (rl > clen || dl > clen - rl || rl + dl > ulen)
                return CORRUPT(r, page_off, "column '%s': v2 level lengths exceed the page", f->name);
            if ((f->max_rep == 0 && rl != 0) || (f->max_def == 0 && dl != 0))
                return CORRUPT(r, page_off, "column '%s': levels where the schema has none", f->name);
            memcpy(c->page, c->raw, rl + dl);
            bool compressed = h.is_compressed && c->chunk.codec != PQZ_UNCOMPRESSED;
            if (compressed) {
                if (pq_decompress(c->chunk.codec, c->raw + rl + dl, clen - rl - dl, c->page + rl + dl,
                                  ulen - rl - dl) < 0)
                    return CORRUPT(r, body_off, "column '%s': page does not decompress", f->name);
            } else {
                if (clen != ulen) return CORRUPT(r, page_off, "column '%s': uncompressed page sizes differ", f->name);
                memcpy(c->page + rl + dl, c->raw + rl + dl, clen - rl - dl);
            }
            if (f->max_rep == 0) memset(c->reps, 0, n);
            else if ((rc = decode_levels(r, f, c->page, c->page + rl, f->max_rep, c->reps, n, body_off, err)) < 0)
                return rc;
            if (f->max_def == 0) memset(c->defs, f->max_def, n);
            else if ((rc = decode_levels(r, f, c->page + rl, c->page + rl + dl, f->max_def, c->defs, n, body_off,
                                         err)) < 0)
                return rc;
            p = c->page + rl + dl;
            end = c->page + ulen;
        }
        size_t nn = 0;
        for (size_t k = 0; k < n; k++) nn += c->defs[k] == f->max_def;
        if (h.encoding >= 0 && h.encoding < 10) r->stats.data_pages_by_encoding[h.encoding]++;
        if ((rc = decode_values(r, f, h.encoding, p, end, nn, body_off, err)) < 0) return rc;
        c->n_entries = n;
        c->entry = 0;
        c->n_vals = nn;
        c->val = 0;
        if (n > 0) {
            *got_data = true;
            return 0;
        }
    }
    return 0;
}

/* Makes an entry available; *have = false at the end of the chunk. */
static int ensure_entry(pq_reader *r, rfield *f, bool *have, tdb_error *err) {
    rcursor *c = &f->cur;
    if (c->entry < c->n_entries) {
        *have = true;
        return 0;
    }
    int rc = next_page(r, f, have, err);
    return rc;
}

/* ---- rows ----------------------------------------------------------------- */

static void cursor_start(rfield *f, const rchunk *ch) {
    rcursor *c = &f->cur;
    c->chunk = *ch;
    c->pos = ch->start;
    c->entries_seen = 0;
    c->data_seen = false;
    c->has_dict = false;
    c->dict_n = 0;
    c->n_entries = c->entry = 0;
    c->n_vals = c->val = 0;
}

static int start_group(pq_reader *r, tdb_error *err) {
    (void)err;
    rgroup *g = &r->groups[r->group];
    r->group++;
    r->group_left = g->rows;
    for (size_t i = 0; i < r->nfields; i++) cursor_start(&r->fields[i], &g->chunks[i]);
    return 0;
}

/* At the end of a row group, every cursor must be at the end of its
 * chunk's values. */
static int finish_group(pq_reader *r, tdb_error *err) {
    for (size_t i = 0; i < r->nfields; i++) {
        rfield *f = &r->fields[i];
        rcursor *c = &f->cur;
        bool more = c->entry < c->n_entries;
        if (!more && c->entries_seen < c->chunk.num_values) {
            int rc = next_page(r, f, &more, err);
            if (rc < 0) return rc;
        }
        if (more || c->entries_seen != c->chunk.num_values)
            return CORRUPT(r, c->chunk.start, "column '%s' of row group %zu: values do not match its %lld rows",
                           f->name, r->group - 1, (long long)r->groups[r->group - 1].rows);
    }
    return 0;
}

/* Copies s into the arena (NUL-terminated) and returns its offset. */
static size_t arena_put(pq_reader *r, pq_bytes s) {
    size_t at = r->arena.len;
    buf_append(&r->arena, s.data, s.len);
    buf_putc(&r->arena, '\0');
    return at;
}

static bool out_reserve(rfield *f, size_t n) {
    if (n <= f->out_cap) return true;
    size_t cap = f->out_cap ? f->out_cap : 16;
    while (cap < n) cap *= 2;
    if (f->kind == OK_F32) {
        float *p = realloc(f->fout, cap * sizeof *p);
        if (!p) return false;
        f->fout = p;
    } else if (f->kind == OK_I64) {
        int64_t *p = realloc(f->iout, cap * sizeof *p);
        if (!p) return false;
        f->iout = p;
    } else {
        pq_bytes *p = realloc(f->sout, cap * sizeof *p);
        if (!p) return false;
        f->sout = p;
    }
    f->out_cap = cap;
    return true;
}

/* Reads one cell of f. For scalars: *is_null and the value index in
 * c->vals (*vi); for lists: elements go to f->fout/iout/sout (strings as
 * arena offsets in .data), *count of them; *null_elem when an element
 * was null. */
typedef struct cell {
    bool is_null;
    bool null_elem;
    size_t count;
    size_t vi;
} cell;

static int read_cell(pq_reader *r, rfield *f, cell *out, tdb_error *err) {
    rcursor *c = &f->cur;
    memset(out, 0, sizeof *out);
    bool have;
    int rc = ensure_entry(r, f, &have, err);
    if (rc < 0) return rc;
    if (!have)
        return CORRUPT(r, c->chunk.start, "column '%s' of row group %zu ends before its %lld rows", f->name,
                       r->group - 1, (long long)r->groups[r->group - 1].rows);
    if (c->reps[c->entry] != 0)
        return CORRUPT(r, c->chunk.start, "column '%s': a row does not start at repetition level 0", f->name);
    if (!f->is_list) {
        bool present = c->defs[c->entry] == f->max_def;
        c->entry++;
        out->is_null = !present;
        if (present) out->vi = c->val++;
        return 0;
    }
    int d = c->defs[c->entry];
    if (d < f->list_def) {
        c->entry++;
        out->is_null = true;
        return 0;
    }
    if (d < f->elem_def) {
        c->entry++;
        return 0; /* empty list */
    }
    /* Invariant: entries from the row's first up to c->entry are consumed;
     * every element slot is appended to the field's output. */
    for (bool first = true;; first = false) {
        if (!first) {
            rc = ensure_entry(r, f, &have, err);
            if (rc < 0) return rc;
            if (!have || c->reps[c->entry] == 0) break;
            d = c->defs[c->entry];
            if (d < f->elem_def)
                return CORRUPT(r, c->chunk.start, "column '%s': list continues with an empty slot", f->name);
        }
        c->entry++;
        if (d < f->max_def) {
            out->null_elem = true;
            continue;
        }
        if (c->val >= c->n_vals) return CORRUPT(r, c->chunk.start, "column '%s': values run out", f->name);
        size_t vi = c->val++;
        if (!out_reserve(f, out->count + 1)) return nomem(r, err);
        switch (f->kind) {
        case OK_F32: f->fout[out->count] = c->vals.f[vi]; break;
        case OK_I64: f->iout[out->count] = c->vals.i[vi]; break;
        case OK_STR:
            f->sout[out->count] = (pq_bytes){(const char *)(uintptr_t)arena_put(r, c->vals.s[vi]), c->vals.s[vi].len};
            break;
        default: break;
        }
        out->count++;
        if (f->kind == OK_F32) {
            /* Vectors: the rest of the row's run of present elements in
             * this page is taken in one copy, as the steps above would
             * take it one by one (a slot that is null, a new row or the
             * page's end leaves it to them). */
            size_t n = 0, room = c->n_vals - c->val;
            while (n < room && c->entry + n < c->n_entries && c->reps[c->entry + n] != 0 &&
                   c->defs[c->entry + n] == f->max_def)
                n++;
            if (n) {
                if (!out_reserve(f, out->count + n)) return nomem(r, err);
                memcpy(f->fout + out->count, c->vals.f + c->val, n * sizeof *f->fout);
                out->count += n;
                c->entry += n;
                c->val += n;
            }
        }
    }
    return 0;
}

static int check_utf8(pq_reader *r, rfield *f, pq_bytes s, tdb_error *err) {
    if (!json_utf8_valid(s.data, s.len))
        return CORRUPT(r, f->cur.chunk.start, "column '%s' of row %llu is not valid UTF-8", f->name,
                       (unsigned long long)r->rows_read);
    return 0;
}

int pq_reader_next(pq_reader *r, pq_row *row, tdb_error *err) {
    if (r->failed) return tdb_err(err, TDB_EINTERNAL, NULL, "reader of %s failed earlier", r->path);
    memset(row, 0, sizeof *row);
    int rc;
    while (r->group == 0 || r->group_left == 0) {
        if (r->group > 0 && (rc = finish_group(r, err)) < 0) return rc;
        if (r->group >= r->ngroups) return 0;
        if ((rc = start_group(r, err)) < 0) return rc;
    }
    buf_reset(&r->arena);
    size_t id_off = 0, attrs_off = 0, vec_count = 0;
    bool have_attrs = false;
    pq_bytes id = {0}, attrs = {0};
    for (size_t i = 0; i < r->nfields; i++) {
        rfield *f = &r->fields[i];
        cell cl;
        if ((rc = read_cell(r, f, &cl, err)) < 0) return rc;
        switch (f->role) {
        case ROLE_ID:
            if (cl.is_null)
                return CORRUPT(r, f->cur.chunk.start, "null id in row %llu", (unsigned long long)r->rows_read);
            id = f->cur.vals.s[cl.vi];
            if (id.len == 0)
                return CORRUPT(r, f->cur.chunk.start, "empty id in row %llu", (unsigned long long)r->rows_read);
            if ((rc = check_utf8(r, f, id, err)) < 0) return rc;
            id_off = arena_put(r, id);
            break;
        case ROLE_ATTRIBUTES:
            if (!cl.is_null) {
                attrs = f->cur.vals.s[cl.vi];
                if ((rc = check_utf8(r, f, attrs, err)) < 0) return rc;
                attrs_off = arena_put(r, attrs);
                have_attrs = true;
            }
            break;
        case ROLE_VECTOR:
            if (cl.null_elem)
                return CORRUPT(r, f->cur.chunk.start, "null inside the vector of row %llu",
                               (unsigned long long)r->rows_read);
            vec_count = cl.count;
            break;
        case ROLE_ATTR: {
            pq_value *v = &r->values[f->attr_index];
            memset(v, 0, sizeof *v);
            v->is_null = cl.is_null || cl.null_elem;
            if (v->is_null) break;
            switch (f->attr_type) {
            case PQ_ATTR_STRING: {
                pq_bytes s = f->cur.vals.s[cl.vi];
                if ((rc = check_utf8(r, f, s, err)) < 0) return rc;
                v->str = (pq_bytes){(const char *)(uintptr_t)arena_put(r, s), s.len};
                break;
            }
            case PQ_ATTR_INT: v->i64 = f->cur.vals.i[cl.vi]; break;
            case PQ_ATTR_FLOAT: v->f64 = f->cur.vals.d[cl.vi]; break;
            case PQ_ATTR_BOOL: v->boolean = f->cur.vals.b[cl.vi] != 0; break;
            case PQ_ATTR_STRING_ARRAY:
                v->count = cl.count;
                v->strs = f->sout;
                break;
            case PQ_ATTR_INT_ARRAY:
                v->count = cl.count;
                v->ints = f->iout;
                break;
            }
            break;
        }
        }
    }
    if (buf_failed(&r->arena)) return nomem(r, err);
    if (r->dimension < 0) r->dimension = (int64_t)vec_count;
    if ((int64_t)vec_count != r->dimension)
        return CORRUPT(r, r->data_end, "row %llu has a vector of %zu floats, the dimension is %lld",
                       (unsigned long long)r->rows_read, vec_count, (long long)r->dimension);
    /* The arena no longer moves: turn offsets into pointers. */
    const char *base = r->arena.data;
    row->id = (pq_bytes){base + id_off, id.len};
    row->attributes = have_attrs ? (pq_bytes){base + attrs_off, attrs.len} : (pq_bytes){"{}", 2};
    for (size_t i = 0; i < r->nfields; i++) {
        rfield *f = &r->fields[i];
        if (f->role == ROLE_VECTOR) {
            row->vector = vec_count ? f->fout : NULL;
            row->vector_len = (uint32_t)vec_count;
        }
        if (f->role != ROLE_ATTR) continue;
        pq_value *v = &r->values[f->attr_index];
        if (v->is_null) continue;
        if (f->attr_type == PQ_ATTR_STRING) v->str.data = base + (uintptr_t)v->str.data;
        if (f->attr_type == PQ_ATTR_STRING_ARRAY) {
            for (size_t k = 0; k < v->count; k++) {
                f->sout[k].data = base + (uintptr_t)f->sout[k].data;
                if ((rc = check_utf8(r, f, f->sout[k], err)) < 0) return rc;
            }
        }
    }
    row->values = r->values;
    r->group_left--;
    r->rows_read++;
    return 1;
}
