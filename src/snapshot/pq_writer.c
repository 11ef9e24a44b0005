/*
 * pq_writer.c: the streaming Parquet writer of snapshots (parquet.h holds
 * the contract: columns, types, metadata keys).
 * Layer: snapshot.
 *
 * How a file is produced:
 *   - pq_writer_open creates path.tmp and writes the magic "PAR1".
 *   - Each added row is appended to per-column buffers of the current row
 *     group: PLAIN-encoded values (strings as u32 length + bytes, ints and
 *     doubles as 8 bytes, floats as 4, booleans one byte each until the
 *     page packs them into bits) plus one byte per definition and
 *     repetition level entry (only when the column's max level is > 0).
 *   - When the row group reaches row_group_max_rows or
 *     row_group_max_bytes of buffered bytes, every column chunk is written
 *     out: string chunks get a dictionary page when their distinct values
 *     make the chunk smaller, then data pages (v1) cut at row boundaries
 *     once page_max_bytes of values are reached. Each page body is
 *     compressed on its own and its header carries the CRC-32 of the
 *     compressed body. The buffers are then reused, so memory stays at one
 *     row group whatever the number of rows.
 *   - pq_writer_close writes the last row group, the FileMetaData footer
 *     (Thrift compact), its length and the closing magic, then makes the
 *     file durable: fsync, rename over path, fsync the directory.
 *
 * Errors: invalid rows are refused (TDB_EINVAL) before anything is
 * buffered, so the writer stays usable; an I/O or allocation failure
 * makes the writer "broken" and only pq_writer_abort/close (which then
 * fails and removes path.tmp) remain.
 */
#include "snapshot/parquet.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot/pq_encoding.h"
#include "snapshot/pq_format.h"
#include "snapshot/pq_thrift.h"
#include "util/error.h"
#include "util/fileio.h"

/* A single string value (id, attributes, one attribute) is bounded so
 * that every page stays well under the reader's PQ_MAX_PAGE_BYTES. */
#define PQ_MAX_VALUE_BYTES ((size_t)64 << 20)

/* Elements of one array value: a row's entries must fit in one page
 * (PQ_MAX_PAGE_ENTRIES) with room to spare. */
#define PQ_MAX_ARRAY_ELEMENTS ((size_t)1 << 20)

/* Dictionary pages: at most this many entries (16-bit indices) and bytes;
 * beyond either, PLAIN is used for the chunk. */
#define PQ_DICT_MAX_ENTRIES 65536
#define PQ_DICT_MAX_BYTES ((size_t)1 << 20)

/* The file is written through a buffer of this size. */
#define PQ_WRITE_BUFFER_BYTES ((size_t)1 << 20)

typedef enum wkind { WK_ID, WK_VECTOR, WK_ATTR, WK_ATTRIBUTES } wkind;

/* Where one column chunk of one row group went (for the footer). */
typedef struct wchunk {
    uint64_t start;             /* first page (dictionary or data) */
    uint64_t data_page_offset;
    uint64_t dict_page_offset;  /* 0: no dictionary */
    uint64_t num_values;        /* level entries */
    uint64_t uncompressed_bytes; /* page headers included */
    uint64_t compressed_bytes;
    uint32_t encodings;          /* bit per PQE_* used in the chunk */
} wchunk;

typedef struct wgroup {
    uint64_t rows;
    wchunk *chunks; /* one per column */
} wgroup;

typedef struct wcol {
    char *name;     /* top-level field name */
    wkind kind;
    size_t attr;    /* WK_ATTR: index in the schema's attributes */
    int phys;       /* PQT_* of the leaf */
    bool is_list;
    bool optional;  /* top-level field nullable */
    int max_def, max_rep;
    /* the current row group */
    buf values; /* PLAIN values (booleans: one byte each) */
    buf def;    /* one byte per entry, when max_def > 0 */
    buf rep;    /* one byte per entry, when max_rep > 0 */
    uint64_t n_entries, n_values;
} wcol;

struct pq_writer {
    char *path, *tmp_path;
    int fd;
    pq_writer_options opts;
    int codec; /* PQZ_* */
    uint32_t dimension;
    char *collection, *metric, *config_json;
    size_t attr_count;
    pq_attr_def *attrs;  /* copies (names owned) */
    int *attr_column;    /* per attribute: column index or -1 */
    wcol *cols;
    size_t ncols;
    uint64_t rows, group_rows, group_bytes;
    uint64_t offset;     /* bytes of the file so far (flushed + buffered) */
    buf out;             /* write buffer */
    wgroup *groups;
    size_t ngroups, groups_cap;
    bool broken;
    /* scratch, reused across pages and chunks */
    buf page, comp, hdr;
    uint32_t *dict_index; /* per value of a chunk: dictionary index */
    size_t dict_index_cap;
    uint32_t *dict_slots; /* hash table of value offsets + 1 (0: empty) */
    size_t dict_slots_cap;
    uint64_t *dict_offs;  /* distinct values: offset in col->values */
    size_t dict_offs_cap;
    /* pq_writer_add_doc */
    pq_value *doc_values;
    pq_bytes *doc_strs;
    int64_t *doc_ints;
    size_t doc_strs_cap, doc_ints_cap;
};

/* ---- small helpers ---------------------------------------------------- */

static const char *const g_type_names[] = {"string", "int", "float", "bool", "string[]", "int[]"};

const char *pq_attr_type_name(pq_attr_type type) {
    if ((unsigned)type >= sizeof g_type_names / sizeof g_type_names[0]) return "unknown";
    return g_type_names[type];
}

int pq_attr_type_parse(const char *name, pq_attr_type *out) {
    for (size_t i = 0; i < sizeof g_type_names / sizeof g_type_names[0]; i++) {
        if (strcmp(name, g_type_names[i]) == 0) {
            *out = (pq_attr_type)i;
            return 0;
        }
    }
    return -1;
}

void pq_writer_options_default(pq_writer_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->codec = PQ_CODEC_ZSTD;
    opts->zstd_level = 1;
    opts->row_group_max_rows = 65536;
    opts->row_group_max_bytes = (uint64_t)64 << 20;
    opts->page_max_bytes = 1u << 20;
    opts->dictionary = true;
    opts->fsync = true;
    opts->page_checksums = true;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

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

static int fail_nomem(pq_writer *w, tdb_error *err) {
    w->broken = true;
    return tdb_err(err, TDB_ENOMEM, NULL, "out of memory writing snapshot %s", w->path);
}

static int fail_io(pq_writer *w, tdb_error *err, const char *what, int rc) {
    w->broken = true;
    return tdb_err(err, TDB_EIO, NULL, "%s %s: %s", what, w->tmp_path, strerror(-rc));
}

/* Hands the write buffer to the file. */
static int flush_out(pq_writer *w, tdb_error *err) {
    if (buf_failed(&w->out)) return fail_nomem(w, err);
    if (w->out.len == 0) return 0;
    int rc = fio_write_all(w->fd, w->out.data, w->out.len);
    if (rc < 0) return fail_io(w, err, "cannot write", rc);
    buf_reset(&w->out);
    return 0;
}

static int emit(pq_writer *w, const void *data, size_t len, tdb_error *err) {
    buf_append(&w->out, data, len);
    w->offset += len;
    if (buf_failed(&w->out)) return fail_nomem(w, err);
    if (w->out.len >= PQ_WRITE_BUFFER_BYTES) return flush_out(w, err);
    return 0;
}

/* ---- open ------------------------------------------------------------- */

static void col_free(wcol *c) {
    free(c->name);
    buf_free(&c->values);
    buf_free(&c->def);
    buf_free(&c->rep);
}

static void writer_free(pq_writer *w) {
    if (w == NULL) return;
    if (w->fd >= 0) fio_close(w->fd);
    free(w->path);
    free(w->tmp_path);
    free(w->collection);
    free(w->metric);
    free(w->config_json);
    for (size_t i = 0; i < w->attr_count; i++) free((char *)w->attrs[i].name);
    free(w->attrs);
    free(w->attr_column);
    for (size_t i = 0; i < w->ncols; i++) col_free(&w->cols[i]);
    free(w->cols);
    for (size_t i = 0; i < w->ngroups; i++) free(w->groups[i].chunks);
    free(w->groups);
    buf_free(&w->out);
    buf_free(&w->page);
    buf_free(&w->comp);
    buf_free(&w->hdr);
    free(w->dict_index);
    free(w->dict_slots);
    free(w->dict_offs);
    free(w->doc_values);
    free(w->doc_strs);
    free(w->doc_ints);
    free(w);
}

static bool reserved_name(const char *name) {
    return strcmp(name, "id") == 0 || strcmp(name, "vector") == 0 || strcmp(name, "attributes") == 0;
}

static void col_init(wcol *c, const char *name, wkind kind, int phys, bool is_list, bool optional) {
    memset(c, 0, sizeof *c);
    c->name = strdup(name);
    c->kind = kind;
    c->phys = phys;
    c->is_list = is_list;
    c->optional = optional;
    /* Lists: the repeated group adds a definition and a repetition level;
     * elements are required. */
    c->max_def = (optional ? 1 : 0) + (is_list ? 1 : 0);
    c->max_rep = is_list ? 1 : 0;
}

int pq_writer_open(const char *path, const pq_schema *schema, const pq_writer_options *opts,
                   pq_writer **out, tdb_error *err) {
    *out = NULL;
    pq_writer_options o;
    if (opts) o = *opts;
    else pq_writer_options_default(&o);
    if (o.row_group_max_rows == 0 || o.row_group_max_bytes == 0 || o.page_max_bytes == 0)
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot writer: row group and page limits must be > 0");
    if (o.page_max_bytes > PQ_MAX_VALUE_BYTES)
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot writer: page_max_bytes must be at most %zu",
                       PQ_MAX_VALUE_BYTES);
    if (o.codec != PQ_CODEC_ZSTD && o.codec != PQ_CODEC_SNAPPY && o.codec != PQ_CODEC_NONE)
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot writer: unknown codec %d", (int)o.codec);
    if (o.codec == PQ_CODEC_ZSTD && (o.zstd_level < 1 || o.zstd_level > 22))
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot writer: zstd_level must be 1..22, not %d", o.zstd_level);
    if (schema->dimension > PQ_MAX_DIMENSION)
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot writer: dimension %u exceeds %d", schema->dimension,
                       PQ_MAX_DIMENSION);
    if (schema->attr_count > 0 && schema->attrs == NULL)
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot writer: attributes missing");
    for (size_t i = 0; i < schema->attr_count; i++) {
        const char *n = schema->attrs[i].name;
        if (n == NULL || n[0] == '\0' || !json_utf8_valid(n, strlen(n)))
            return tdb_err(err, TDB_EINVAL, NULL, "snapshot writer: attribute %zu has no valid UTF-8 name", i);
        if ((unsigned)schema->attrs[i].type > PQ_ATTR_INT_ARRAY)
            return tdb_err(err, TDB_EINVAL, NULL, "snapshot writer: attribute '%s' has an unknown type", n);
    }

    pq_writer *w = calloc(1, sizeof *w);
    if (w == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    w->fd = -1;
    w->opts = o;
    w->codec = o.codec == PQ_CODEC_ZSTD ? PQZ_ZSTD : o.codec == PQ_CODEC_SNAPPY ? PQZ_SNAPPY : PQZ_UNCOMPRESSED;
    w->dimension = schema->dimension;
    w->path = strdup(path);
    size_t plen = strlen(path);
    w->tmp_path = malloc(plen + 5);
    w->collection = dup_or_null(schema->collection);
    w->metric = dup_or_null(schema->metric);
    w->config_json = dup_or_null(schema->config_json);
    w->attr_count = schema->attr_count;
    w->attrs = calloc(schema->attr_count + 1, sizeof *w->attrs);
    w->attr_column = calloc(schema->attr_count + 1, sizeof *w->attr_column);
    w->cols = calloc(schema->attr_count + 3, sizeof *w->cols);
    w->doc_values = calloc(schema->attr_count + 1, sizeof *w->doc_values);
    bool ok = w->path && w->tmp_path && w->attrs && w->attr_column && w->cols && w->doc_values &&
              (!schema->collection || w->collection) && (!schema->metric || w->metric) &&
              (!schema->config_json || w->config_json);
    if (!ok) goto nomem;
    memcpy(w->tmp_path, path, plen);
    memcpy(w->tmp_path + plen, ".tmp", 5);

    col_init(&w->cols[w->ncols++], "id", WK_ID, PQT_BYTE_ARRAY, false, false);
    col_init(&w->cols[w->ncols++], "vector", WK_VECTOR, PQT_FLOAT, true, false);
    for (size_t i = 0; i < schema->attr_count; i++) {
        const pq_attr_def *a = &schema->attrs[i];
        w->attrs[i].name = strdup(a->name);
        w->attrs[i].type = a->type;
        if (w->attrs[i].name == NULL) goto nomem;
        w->attr_column[i] = -1;
        bool taken = reserved_name(a->name);
        for (size_t j = 0; j < i && !taken; j++) taken = strcmp(a->name, schema->attrs[j].name) == 0;
        if (taken) continue; /* parquet.h: no column, the value lives in `attributes` */
        static const int phys_of[] = {PQT_BYTE_ARRAY, PQT_INT64, PQT_DOUBLE, PQT_BOOLEAN, PQT_BYTE_ARRAY, PQT_INT64};
        bool is_list = a->type == PQ_ATTR_STRING_ARRAY || a->type == PQ_ATTR_INT_ARRAY;
        w->attr_column[i] = (int)w->ncols;
        wcol *c = &w->cols[w->ncols++];
        col_init(c, a->name, WK_ATTR, phys_of[a->type], is_list, true);
        c->attr = i;
    }
    col_init(&w->cols[w->ncols++], "attributes", WK_ATTRIBUTES, PQT_BYTE_ARRAY, false, false);
    for (size_t i = 0; i < w->ncols; i++)
        if (w->cols[i].name == NULL) goto nomem;

    int fd = fio_open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        int rc = tdb_err(err, TDB_EIO, NULL, "cannot create %s: %s", w->tmp_path, strerror(-fd));
        writer_free(w);
        return rc;
    }
    w->fd = fd;
    int rc = emit(w, PQ_MAGIC, 4, err);
    if (rc < 0) {
        pq_writer_abort(w);
        return rc;
    }
    *out = w;
    return 0;

nomem:
    writer_free(w);
    return tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening snapshot writer");
}

/* ---- buffering rows ---------------------------------------------------- */

static int check_string(const pq_writer *w, const char *what, pq_bytes s, tdb_error *err) {
    if (s.len > 0 && s.data == NULL) return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: %s has no data", what);
    if (s.len > PQ_MAX_VALUE_BYTES)
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: %s is %zu bytes, more than %zu", what, s.len,
                       PQ_MAX_VALUE_BYTES);
    if (!json_utf8_valid(s.data ? s.data : "", s.len))
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: %s is not valid UTF-8 (writing %s)", what, w->path);
    return 0;
}

static int validate_row(const pq_writer *w, const pq_row *row, tdb_error *err) {
    if (row->id.len == 0) return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: empty id");
    int rc = check_string(w, "id", row->id, err);
    if (rc < 0) return rc;
    if (row->vector_len != w->dimension)
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: vector has %u floats, the dimension is %u",
                       row->vector_len, w->dimension);
    if (w->dimension > 0 && row->vector == NULL)
        return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: vector missing");
    if ((rc = check_string(w, "attributes", row->attributes, err)) < 0) return rc;
    if (row->values == NULL) return 0;
    for (size_t i = 0; i < w->attr_count; i++) {
        if (w->attr_column[i] < 0) continue;
        const pq_value *v = &row->values[i];
        if (v->is_null) continue;
        switch (w->attrs[i].type) {
        case PQ_ATTR_STRING:
            if ((rc = check_string(w, w->attrs[i].name, v->str, err)) < 0) return rc;
            break;
        case PQ_ATTR_STRING_ARRAY: {
            if (v->count > 0 && v->strs == NULL)
                return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: %s has no elements", w->attrs[i].name);
            if (v->count > PQ_MAX_ARRAY_ELEMENTS)
                return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: %s has too many elements", w->attrs[i].name);
            size_t total = 0;
            for (size_t k = 0; k < v->count; k++) {
                if ((rc = check_string(w, w->attrs[i].name, v->strs[k], err)) < 0) return rc;
                total += v->strs[k].len;
                if (total > PQ_MAX_VALUE_BYTES)
                    return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: %s holds more than %zu bytes",
                                   w->attrs[i].name, PQ_MAX_VALUE_BYTES);
            }
            break;
        }
        case PQ_ATTR_INT_ARRAY:
            if (v->count > 0 && v->ints == NULL)
                return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: %s has no elements", w->attrs[i].name);
            if (v->count > PQ_MAX_ARRAY_ELEMENTS)
                return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: %s has too many elements", w->attrs[i].name);
            break;
        default: break;
        }
    }
    return 0;
}

static void put_string(wcol *c, const char *data, size_t len) {
    buf_put_u32(&c->values, (uint32_t)len);
    buf_append(&c->values, data, len);
    c->n_values++;
}

static void put_u64_value(wcol *c, uint64_t v) {
    buf_put_u64(&c->values, v);
    c->n_values++;
}

static void put_level(buf *b, int level) { buf_put_u8(b, (uint8_t)level); }

/* One entry of a scalar column: present (max_def) or null (0). */
static void put_scalar_levels(wcol *c, bool present) {
    if (c->max_def > 0) put_level(&c->def, present ? c->max_def : 0);
    c->n_entries++;
}

/* The entries of one list cell: null (def 0, optional lists only), empty
 * (def = max_def - 1) or `count` elements (def = max_def, rep 0 then 1). */
static void put_list_levels(wcol *c, bool is_null, size_t count) {
    if (is_null || count == 0) {
        put_level(&c->def, is_null ? 0 : c->max_def - 1);
        put_level(&c->rep, 0);
        c->n_entries++;
        return;
    }
    if (buf_reserve(&c->def, count) && buf_reserve(&c->rep, count)) {
        memset(c->def.data + c->def.len, c->max_def, count);
        memset(c->rep.data + c->rep.len, 1, count);
        c->rep.data[c->rep.len] = 0;
        c->def.len += count;
        c->rep.len += count;
        c->def.data[c->def.len] = '\0';
        c->rep.data[c->rep.len] = '\0';
    }
    c->n_entries += count;
}

static void put_floats(wcol *c, const float *v, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    buf_append(&c->values, v, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        buf_put_u32(&c->values, bits);
    }
#endif
    c->n_values += n;
}

static void put_value(wcol *c, pq_attr_type type, const pq_value *v) {
    bool null = v == NULL || v->is_null;
    switch (type) {
    case PQ_ATTR_STRING:
        put_scalar_levels(c, !null);
        if (!null) put_string(c, v->str.data ? v->str.data : "", v->str.len);
        break;
    case PQ_ATTR_INT:
        put_scalar_levels(c, !null);
        if (!null) put_u64_value(c, (uint64_t)v->i64);
        break;
    case PQ_ATTR_FLOAT: {
        put_scalar_levels(c, !null);
        if (!null) {
            uint64_t bits;
            memcpy(&bits, &v->f64, 8);
            put_u64_value(c, bits);
        }
        break;
    }
    case PQ_ATTR_BOOL:
        put_scalar_levels(c, !null);
        if (!null) {
            buf_put_u8(&c->values, v->boolean ? 1 : 0);
            c->n_values++;
        }
        break;
    case PQ_ATTR_STRING_ARRAY:
        put_list_levels(c, null, null ? 0 : v->count);
        for (size_t k = 0; !null && k < v->count; k++)
            put_string(c, v->strs[k].data ? v->strs[k].data : "", v->strs[k].len);
        break;
    case PQ_ATTR_INT_ARRAY:
        put_list_levels(c, null, null ? 0 : v->count);
        for (size_t k = 0; !null && k < v->count; k++) put_u64_value(c, (uint64_t)v->ints[k]);
        break;
    }
}

static int flush_group(pq_writer *w, tdb_error *err);

int pq_writer_add_row(pq_writer *w, const pq_row *row, tdb_error *err) {
    if (w->broken) return tdb_err(err, TDB_EINTERNAL, NULL, "snapshot writer for %s failed earlier", w->path);
    int rc = validate_row(w, row, err);
    if (rc < 0) return rc;
    uint64_t before = 0, after = 0;
    for (size_t i = 0; i < w->ncols; i++) before += w->cols[i].values.len + w->cols[i].def.len + w->cols[i].rep.len;
    for (size_t i = 0; i < w->ncols; i++) {
        wcol *c = &w->cols[i];
        switch (c->kind) {
        case WK_ID:
            put_scalar_levels(c, true);
            put_string(c, row->id.data, row->id.len);
            break;
        case WK_VECTOR:
            put_list_levels(c, false, row->vector_len);
            put_floats(c, row->vector, row->vector_len);
            break;
        case WK_ATTR:
            put_value(c, w->attrs[c->attr].type, row->values ? &row->values[c->attr] : NULL);
            break;
        case WK_ATTRIBUTES:
            put_scalar_levels(c, true);
            if (row->attributes.len == 0) put_string(c, "{}", 2);
            else put_string(c, row->attributes.data, row->attributes.len);
            break;
        }
    }
    for (size_t i = 0; i < w->ncols; i++) {
        wcol *c = &w->cols[i];
        if (buf_failed(&c->values) || buf_failed(&c->def) || buf_failed(&c->rep)) return fail_nomem(w, err);
        after += c->values.len + c->def.len + c->rep.len;
    }
    w->group_bytes += after - before;
    w->rows++;
    w->group_rows++;
    if (w->group_rows >= w->opts.row_group_max_rows || w->group_bytes >= w->opts.row_group_max_bytes)
        return flush_group(w, err);
    return 0;
}

uint64_t pq_writer_rows(const pq_writer *w) { return w->rows; }

/* ---- pq_writer_add_doc: attributes JSON -> declared columns ---------- */

/* Converts v to the column type; sets out->is_null when it does not fit.
 * Array elements go to the writer's scratch arrays, whose positions are
 * recorded as offsets first and turned into pointers by the caller once
 * every attribute has been converted (the scratch may move). */
static int convert_value(pq_writer *w, const json_value *v, pq_attr_type type, pq_value *out,
                         size_t *strs_used, size_t *ints_used) {
    memset(out, 0, sizeof *out);
    out->is_null = true;
    if (v == NULL) return 0;
    switch (type) {
    case PQ_ATTR_STRING:
        if (v->type == JSON_STRING) {
            out->is_null = false;
            out->str.data = v->str;
            out->str.len = v->len;
        }
        return 0;
    case PQ_ATTR_INT:
        if (v->type == JSON_NUMBER && v->is_int) {
            out->is_null = false;
            out->i64 = v->i64;
        }
        return 0;
    case PQ_ATTR_FLOAT:
        if (v->type == JSON_NUMBER && isfinite(v->num)) {
            out->is_null = false;
            out->f64 = v->num;
        }
        return 0;
    case PQ_ATTR_BOOL:
        if (v->type == JSON_TRUE || v->type == JSON_FALSE) {
            out->is_null = false;
            out->boolean = v->type == JSON_TRUE;
        }
        return 0;
    case PQ_ATTR_STRING_ARRAY: {
        if (v->type != JSON_ARRAY) return 0;
        for (const json_value *e = v->child; e; e = e->next)
            if (e->type != JSON_STRING) return 0;
        if (!grow((void **)&w->doc_strs, &w->doc_strs_cap, *strs_used + v->len + 1, sizeof *w->doc_strs)) return -1;
        size_t k = *strs_used;
        for (const json_value *e = v->child; e; e = e->next) w->doc_strs[k++] = (pq_bytes){e->str, e->len};
        out->is_null = false;
        out->count = k - *strs_used;
        out->strs = (const pq_bytes *)(uintptr_t)*strs_used; /* offset, fixed up by the caller */
        *strs_used = k;
        return 0;
    }
    case PQ_ATTR_INT_ARRAY: {
        if (v->type != JSON_ARRAY) return 0;
        for (const json_value *e = v->child; e; e = e->next)
            if (e->type != JSON_NUMBER || !e->is_int) return 0;
        if (!grow((void **)&w->doc_ints, &w->doc_ints_cap, *ints_used + v->len + 1, sizeof *w->doc_ints)) return -1;
        size_t k = *ints_used;
        for (const json_value *e = v->child; e; e = e->next) w->doc_ints[k++] = e->i64;
        out->is_null = false;
        out->count = k - *ints_used;
        out->ints = (const int64_t *)(uintptr_t)*ints_used;
        *ints_used = k;
        return 0;
    }
    }
    return 0;
}

int pq_writer_add_doc(pq_writer *w, pq_bytes id, const float *vector, uint32_t vector_len, pq_bytes attributes,
                      const json_value *parsed, tdb_error *err) {
    if (w->broken) return tdb_err(err, TDB_EINTERNAL, NULL, "snapshot writer for %s failed earlier", w->path);
    if (attributes.data == NULL || attributes.len == 0) attributes = (pq_bytes){"{}", 2};
    json_doc *doc = NULL;
    if (parsed == NULL) {
        json_error jerr;
        if (json_parse(attributes.data, attributes.len, &doc, &jerr) < 0)
            return tdb_err(err, TDB_EINVAL, NULL, "snapshot row: attributes are not valid JSON (at byte %zu: %s)",
                           jerr.offset, jerr.message);
        parsed = json_root(doc);
    }
    int rc = 0;
    if (parsed->type != JSON_OBJECT) {
        rc = tdb_err(err, TDB_EINVAL, NULL, "snapshot row: attributes must be a JSON object");
        goto done;
    }
    size_t strs_used = 0, ints_used = 0;
    for (size_t i = 0; i < w->attr_count; i++) {
        const json_value *v = w->attr_column[i] >= 0 ? json_get(parsed, w->attrs[i].name) : NULL;
        if (convert_value(w, v, w->attrs[i].type, &w->doc_values[i], &strs_used, &ints_used) < 0) {
            rc = fail_nomem(w, err);
            goto done;
        }
    }
    for (size_t i = 0; i < w->attr_count; i++) {
        pq_value *v = &w->doc_values[i];
        if (v->is_null) continue;
        if (w->attrs[i].type == PQ_ATTR_STRING_ARRAY) v->strs = w->doc_strs + (uintptr_t)v->strs;
        if (w->attrs[i].type == PQ_ATTR_INT_ARRAY) v->ints = w->doc_ints + (uintptr_t)v->ints;
    }
    pq_row row = {.id = id, .vector = vector, .vector_len = vector_len, .values = w->doc_values,
                  .attributes = attributes};
    rc = pq_writer_add_row(w, &row, err);
done:
    json_doc_free(doc);
    return rc;
}

/* ---- writing column chunks -------------------------------------------- */

static size_t value_size(const wcol *c, size_t voff) {
    switch (c->phys) {
    case PQT_BYTE_ARRAY: return 4 + load_u32(c->values.data + voff);
    case PQT_INT64:
    case PQT_DOUBLE: return 8;
    case PQT_FLOAT: return 4;
    default: return 1; /* BOOLEAN, one byte per value while buffered */
    }
}

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Decides whether the chunk of string column c is dictionary-encoded:
 * fills w->dict_index (one index per value) and w->dict_offs (the
 * distinct values' offsets) and returns the distinct count, or 0 for
 * PLAIN (too many distinct values, too large, or no gain), or -1 when
 * out of memory. */
static long build_dictionary(pq_writer *w, const wcol *c) {
    if (!w->opts.dictionary || c->phys != PQT_BYTE_ARRAY || c->n_values < 2) return 0;
    size_t n = (size_t)c->n_values;
    /* A dictionary cannot pay when most values are distinct: give up once
     * more than half are (ids, attribute JSON). */
    size_t limit = n / 2 < PQ_DICT_MAX_ENTRIES ? n / 2 : PQ_DICT_MAX_ENTRIES;
    if (limit == 0) return 0;
    size_t slots = 16;
    while (slots < limit * 2) slots *= 2;
    if (!grow((void **)&w->dict_slots, &w->dict_slots_cap, slots, sizeof *w->dict_slots) ||
        !grow((void **)&w->dict_index, &w->dict_index_cap, n, sizeof *w->dict_index) ||
        !grow((void **)&w->dict_offs, &w->dict_offs_cap, limit + 1, sizeof *w->dict_offs))
        return -1;
    memset(w->dict_slots, 0, slots * sizeof *w->dict_slots);
    size_t distinct = 0, dict_bytes = 0, voff = 0;
    const char *base = c->values.data;
    for (size_t i = 0; i < n; i++) {
        uint32_t len = load_u32(base + voff);
        const char *s = base + voff + 4;
        size_t slot = (size_t)hash_bytes(s, len) & (slots - 1);
        for (;;) {
            uint32_t e = w->dict_slots[slot];
            if (e == 0) {
                if (distinct >= limit) return 0;
                dict_bytes += 4 + (size_t)len;
                if (dict_bytes > PQ_DICT_MAX_BYTES) return 0;
                w->dict_offs[distinct] = voff;
                w->dict_slots[slot] = (uint32_t)distinct + 1;
                w->dict_index[i] = (uint32_t)distinct++;
                break;
            }
            uint64_t eo = w->dict_offs[e - 1];
            if (load_u32(base + eo) == len && memcmp(base + eo + 4, s, len) == 0) {
                w->dict_index[i] = e - 1;
                break;
            }
            slot = (slot + 1) & (slots - 1);
        }
        voff += 4 + (size_t)len;
    }
    int bw = pq_bit_width(distinct - 1);
    if (bw == 0) bw = 1;
    /* Worth it when the dictionary plus the indices take at most 3/4 of
     * the PLAIN values (compression narrows the gap; a margin avoids
     * dictionary pages that barely pay). */
    uint64_t dict_total = dict_bytes + ((uint64_t)n * (uint64_t)bw + 7) / 8;
    if (dict_total * 4 > (uint64_t)c->values.len * 3) return 0;
    return (long)distinct;
}

/* What write_page needs besides the body in w->page. */
typedef struct page_desc {
    int type;          /* PQP_* */
    int32_t num_values;
    int encoding;      /* of the values */
    /* data page v2: the body starts with rep_len + def_len bytes of
     * levels, which stay uncompressed */
    int32_t num_nulls, num_rows;
    size_t rep_len, def_len;
} page_desc;

/* Compresses w->page (v2: its values part) and writes [header][body].
 * Adds to the chunk's sizes. */
static int write_page(pq_writer *w, wchunk *ch, const page_desc *pd, tdb_error *err) {
    if (buf_failed(&w->page)) return fail_nomem(w, err);
    if (w->page.len > PQ_MAX_PAGE_BYTES)
        return tdb_err(err, TDB_EINTERNAL, NULL, "snapshot page of %zu bytes exceeds the limit", w->page.len);
    const char *body = w->page.data ? w->page.data : "";
    size_t levels = pd->rep_len + pd->def_len;
    buf_reset(&w->comp);
    buf_append(&w->comp, body, levels);
    if (pq_compress(w->codec, w->opts.zstd_level, body + levels, w->page.len - levels, &w->comp) < 0)
        return buf_failed(&w->comp) ? fail_nomem(w, err)
                                     : tdb_err(err, TDB_EINTERNAL, NULL, "compressing a snapshot page failed");
    buf_reset(&w->hdr);
    pq_tw t;
    pq_tw_init(&t, &w->hdr);
    pq_tw_i32(&t, 1, pd->type);
    pq_tw_i32(&t, 2, (int32_t)w->page.len);
    pq_tw_i32(&t, 3, (int32_t)w->comp.len);
    if (w->opts.page_checksums) pq_tw_i32(&t, 4, (int32_t)pq_crc32(w->comp.data ? w->comp.data : "", w->comp.len));
    if (pd->type == PQP_DICTIONARY_PAGE) {
        pq_tw_struct_begin(&t, 7);
        pq_tw_i32(&t, 1, pd->num_values);
        pq_tw_i32(&t, 2, PQE_PLAIN);
        pq_tw_struct_end(&t);
    } else if (pd->type == PQP_DATA_PAGE_V2) {
        pq_tw_struct_begin(&t, 8);
        pq_tw_i32(&t, 1, pd->num_values);
        pq_tw_i32(&t, 2, pd->num_nulls);
        pq_tw_i32(&t, 3, pd->num_rows);
        pq_tw_i32(&t, 4, pd->encoding);
        pq_tw_i32(&t, 5, (int32_t)pd->def_len);
        pq_tw_i32(&t, 6, (int32_t)pd->rep_len);
        pq_tw_bool(&t, 7, w->codec != PQZ_UNCOMPRESSED);
        pq_tw_struct_end(&t);
    } else {
        pq_tw_struct_begin(&t, 5);
        pq_tw_i32(&t, 1, pd->num_values);
        pq_tw_i32(&t, 2, pd->encoding);
        pq_tw_i32(&t, 3, PQE_RLE);
        pq_tw_i32(&t, 4, PQE_RLE);
        pq_tw_struct_end(&t);
    }
    pq_tw_struct_end(&t);
    if (buf_failed(&w->hdr) || buf_failed(&w->comp)) return fail_nomem(w, err);
    int rc = emit(w, w->hdr.data, w->hdr.len, err);
    if (rc == 0) rc = emit(w, w->comp.data ? w->comp.data : "", w->comp.len, err);
    ch->uncompressed_bytes += w->hdr.len + w->page.len;
    ch->compressed_bytes += w->hdr.len + w->comp.len;
    ch->encodings |= 1u << pd->encoding;
    if (pd->type != PQP_DICTIONARY_PAGE && (pd->rep_len || pd->def_len || pd->type == PQP_DATA_PAGE))
        ch->encodings |= 1u << PQE_RLE; /* levels (v1 pages declare RLE levels even without any) */
    return rc;
}

/* Appends the hybrid encoding of levels[from..to) to w->page, after a u32
 * length (data page v1) or without (v2). Returns the bytes appended. */
static size_t put_levels(pq_writer *w, const buf *levels, size_t from, size_t to, int max_level, bool v2) {
    size_t at = w->page.len;
    if (!v2) buf_put_u32(&w->page, 0);
    pq_rle_encode(&w->page, levels->data + from, 1, to - from, pq_bit_width((uint64_t)max_level));
    if (!v2 && !buf_failed(&w->page)) store_u32(w->page.data + at, (uint32_t)(w->page.len - at - 4));
    return w->page.len - at;
}

static int write_chunk(pq_writer *w, wcol *c, wchunk *ch, tdb_error *err) {
    memset(ch, 0, sizeof *ch);
    ch->start = w->offset;
    ch->num_values = c->n_entries;
    long distinct = build_dictionary(w, c);
    if (distinct < 0) return fail_nomem(w, err);
    int rc;
    int dict_bw = 0;
    if (distinct > 0) {
        ch->dict_page_offset = w->offset;
        buf_reset(&w->page);
        for (long k = 0; k < distinct; k++) {
            uint64_t off = w->dict_offs[k];
            buf_append(&w->page, c->values.data + off, 4 + (size_t)load_u32(c->values.data + off));
        }
        page_desc pd = {.type = PQP_DICTIONARY_PAGE, .num_values = (int32_t)distinct, .encoding = PQE_PLAIN};
        if ((rc = write_page(w, ch, &pd, err)) < 0) return rc;
        dict_bw = pq_bit_width((uint64_t)distinct - 1);
        if (dict_bw == 0) dict_bw = 1;
    }
    ch->data_page_offset = w->offset;

    const uint8_t *def = (const uint8_t *)c->def.data, *rep = (const uint8_t *)c->rep.data;
    size_t n = (size_t)c->n_entries;
    size_t e = 0, v = 0, voff = 0;
    /* Invariant: entries [0, e) and values [0, v) (bytes [0, voff)) are in
     * written pages; e is at a row start. */
    while (e < n) {
        size_t e0 = e, v0 = v, voff0 = voff;
        size_t bytes = 0;
        do {
            do { /* one row: its first entry and those that continue it */
                if (c->max_def == 0 || def[e] == c->max_def) {
                    size_t sz = value_size(c, voff);
                    voff += sz;
                    bytes += sz;
                    v++;
                }
                e++;
            } while (e < n && c->max_rep > 0 && rep[e] > 0);
            bytes += 1; /* levels, roughly: keeps level-only pages bounded */
        } while (e < n && bytes < w->opts.page_max_bytes && e - e0 < PQ_MAX_PAGE_ENTRIES / 2);

        bool v2 = w->opts.data_page_v2;
        page_desc pd = {.type = v2 ? PQP_DATA_PAGE_V2 : PQP_DATA_PAGE, .num_values = (int32_t)(e - e0),
                        .encoding = PQE_PLAIN};
        buf_reset(&w->page);
        size_t rl = 0, dl = 0;
        if (c->max_rep > 0) rl = put_levels(w, &c->rep, e0, e, c->max_rep, v2);
        if (c->max_def > 0) dl = put_levels(w, &c->def, e0, e, c->max_def, v2);
        if (v2) {
            pd.rep_len = rl;
            pd.def_len = dl;
            pd.num_nulls = (int32_t)((e - e0) - (v - v0));
            pd.num_rows = (int32_t)(e - e0);
            if (c->max_rep > 0) {
                pd.num_rows = 0;
                for (size_t k = e0; k < e; k++) pd.num_rows += rep[k] == 0;
            }
        }
        if (distinct > 0) {
            pd.encoding = PQE_RLE_DICTIONARY;
            buf_put_u8(&w->page, (uint8_t)dict_bw);
            pq_rle_encode(&w->page, w->dict_index + v0, 4, v - v0, dict_bw);
        } else if (c->phys == PQT_BOOLEAN && v2) {
            /* RLE booleans: u32 length, then the hybrid with bit width 1 */
            pd.encoding = PQE_RLE;
            size_t at = w->page.len;
            buf_put_u32(&w->page, 0);
            pq_rle_encode(&w->page, c->values.data + v0, 1, v - v0, 1);
            if (!buf_failed(&w->page)) store_u32(w->page.data + at, (uint32_t)(w->page.len - at - 4));
        } else if (c->phys == PQT_BOOLEAN) {
            size_t nb = (v - v0 + 7) / 8;
            if (buf_reserve(&w->page, nb)) {
                uint8_t *o = (uint8_t *)w->page.data + w->page.len;
                memset(o, 0, nb);
                for (size_t k = 0; k < v - v0; k++)
                    if (c->values.data[v0 + k]) o[k >> 3] |= (uint8_t)(1u << (k & 7));
                w->page.len += nb;
                w->page.data[w->page.len] = '\0';
            }
        } else {
            buf_append(&w->page, c->values.data + voff0, voff - voff0);
        }
        if ((rc = write_page(w, ch, &pd, err)) < 0) return rc;
    }
    return 0;
}

static int flush_group(pq_writer *w, tdb_error *err) {
    if (w->group_rows == 0) return 0;
    if (!grow((void **)&w->groups, &w->groups_cap, w->ngroups + 1, sizeof *w->groups)) return fail_nomem(w, err);
    wgroup *g = &w->groups[w->ngroups];
    g->rows = w->group_rows;
    g->chunks = calloc(w->ncols, sizeof *g->chunks);
    if (g->chunks == NULL) return fail_nomem(w, err);
    w->ngroups++;
    for (size_t i = 0; i < w->ncols; i++) {
        int rc = write_chunk(w, &w->cols[i], &g->chunks[i], err);
        if (rc < 0) return rc;
    }
    for (size_t i = 0; i < w->ncols; i++) {
        wcol *c = &w->cols[i];
        buf_reset(&c->values);
        buf_reset(&c->def);
        buf_reset(&c->rep);
        c->n_entries = c->n_values = 0;
    }
    w->group_rows = 0;
    w->group_bytes = 0;
    return 0;
}

/* ---- footer ------------------------------------------------------------ */

static void write_schema_element(pq_tw *t, int type, int repetition, const char *name, int num_children,
                                 int converted, int logical) {
    pq_tw_elem_struct_begin(t);
    if (type >= 0) pq_tw_i32(t, 1, type);
    if (repetition >= 0) pq_tw_i32(t, 3, repetition);
    pq_tw_string(t, 4, name);
    if (num_children >= 0) pq_tw_i32(t, 5, num_children);
    if (converted != PQC_NONE) pq_tw_i32(t, 6, converted);
    if (logical != PQL_NONE) {
        pq_tw_struct_begin(t, 10);
        pq_tw_struct_begin(t, (int16_t)logical); /* StringType / ListType: empty structs */
        pq_tw_struct_end(t);
        pq_tw_struct_end(t);
    }
    pq_tw_struct_end(t);
}

static size_t schema_element_count(const pq_writer *w) {
    size_t n = 1;
    for (size_t i = 0; i < w->ncols; i++) n += w->cols[i].is_list ? 3 : 1;
    return n;
}

static void write_schema(pq_tw *t, const pq_writer *w) {
    pq_tw_list_begin(t, 2, PQ_TT_STRUCT, schema_element_count(w));
    write_schema_element(t, -1, -1, "schema", (int)w->ncols, PQC_NONE, PQL_NONE);
    for (size_t i = 0; i < w->ncols; i++) {
        const wcol *c = &w->cols[i];
        int rep = c->optional ? PQR_OPTIONAL : PQR_REQUIRED;
        bool is_string = c->phys == PQT_BYTE_ARRAY;
        if (c->is_list) {
            write_schema_element(t, -1, rep, c->name, 1, PQC_LIST, PQL_LIST);
            write_schema_element(t, -1, PQR_REPEATED, "list", 1, PQC_NONE, PQL_NONE);
            write_schema_element(t, c->phys, PQR_REQUIRED, "element", -1, is_string ? PQC_UTF8 : PQC_NONE,
                                 is_string ? PQL_STRING : PQL_NONE);
        } else {
            write_schema_element(t, c->phys, rep, c->name, -1, is_string ? PQC_UTF8 : PQC_NONE,
                                 is_string ? PQL_STRING : PQL_NONE);
        }
    }
}

static void write_column_chunk(pq_tw *t, const wcol *c, const wchunk *ch, int codec) {
    pq_tw_elem_struct_begin(t);
    pq_tw_i64(t, 2, (int64_t)ch->start);
    pq_tw_struct_begin(t, 3); /* ColumnMetaData */
    pq_tw_i32(t, 1, c->phys);
    bool dict = ch->dict_page_offset != 0;
    size_t nenc = 0;
    for (int e = 0; e < 32; e++) nenc += (ch->encodings >> e) & 1;
    pq_tw_list_begin(t, 2, PQ_TT_I32, nenc);
    for (int e = 0; e < 32; e++)
        if ((ch->encodings >> e) & 1) pq_tw_elem_i32(t, e);
    pq_tw_list_begin(t, 3, PQ_TT_BINARY, c->is_list ? 3 : 1);
    pq_tw_elem_binary(t, c->name, strlen(c->name));
    if (c->is_list) {
        pq_tw_elem_binary(t, "list", 4);
        pq_tw_elem_binary(t, "element", 7);
    }
    pq_tw_i32(t, 4, codec);
    pq_tw_i64(t, 5, (int64_t)ch->num_values);
    pq_tw_i64(t, 6, (int64_t)ch->uncompressed_bytes);
    pq_tw_i64(t, 7, (int64_t)ch->compressed_bytes);
    pq_tw_i64(t, 9, (int64_t)ch->data_page_offset);
    if (dict) pq_tw_i64(t, 11, (int64_t)ch->dict_page_offset);
    pq_tw_struct_end(t);
    pq_tw_struct_end(t);
}

static void write_kv(pq_tw *t, const char *key, const char *value) {
    pq_tw_elem_struct_begin(t);
    pq_tw_string(t, 1, key);
    pq_tw_string(t, 2, value);
    pq_tw_struct_end(t);
}

static void write_footer(const pq_writer *w, buf *out) {
    pq_tw t;
    pq_tw_init(&t, out);
    pq_tw_i32(&t, 1, 1);
    write_schema(&t, w);
    pq_tw_i64(&t, 3, (int64_t)w->rows);
    pq_tw_list_begin(&t, 4, PQ_TT_STRUCT, w->ngroups);
    for (size_t g = 0; g < w->ngroups; g++) {
        const wgroup *grp = &w->groups[g];
        uint64_t unc = 0, comp = 0;
        for (size_t i = 0; i < w->ncols; i++) {
            unc += grp->chunks[i].uncompressed_bytes;
            comp += grp->chunks[i].compressed_bytes;
        }
        pq_tw_elem_struct_begin(&t);
        pq_tw_list_begin(&t, 1, PQ_TT_STRUCT, w->ncols);
        for (size_t i = 0; i < w->ncols; i++) write_column_chunk(&t, &w->cols[i], &grp->chunks[i], w->codec);
        pq_tw_i64(&t, 2, (int64_t)unc);
        pq_tw_i64(&t, 3, (int64_t)grp->rows);
        pq_tw_i64(&t, 5, (int64_t)grp->chunks[0].start);
        pq_tw_i64(&t, 6, (int64_t)comp);
        pq_tw_struct_end(&t);
    }
    char dim[16], format[16];
    snprintf(dim, sizeof dim, "%u", w->dimension);
    snprintf(format, sizeof format, "%d", PQ_SNAPSHOT_FORMAT);
    size_t nkv = 3 + (w->collection != NULL) + (w->metric != NULL) + (w->config_json != NULL);
    pq_tw_list_begin(&t, 5, PQ_TT_STRUCT, nkv);
    write_kv(&t, "tierdb.format", format);
    write_kv(&t, "tierdb.version", TDB_VERSION_STRING);
    if (w->collection) write_kv(&t, "tierdb.collection", w->collection);
    write_kv(&t, "tierdb.dimension", dim);
    if (w->metric) write_kv(&t, "tierdb.metric", w->metric);
    if (w->config_json) write_kv(&t, "tierdb.config", w->config_json);
    pq_tw_string(&t, 6, "tierdb version " TDB_VERSION_STRING);
    pq_tw_struct_end(&t);
}

/* ---- close / abort ----------------------------------------------------- */

static void dir_of(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, cap, ".");
    } else if (slash == path) {
        snprintf(dir, cap, "/");
    } else {
        snprintf(dir, cap, "%.*s", (int)(slash - path), path);
    }
}

void pq_writer_abort(pq_writer *w) {
    if (w == NULL) return;
    if (w->fd >= 0) {
        fio_close(w->fd);
        w->fd = -1;
    }
    unlink(w->tmp_path); /* uncounted: clean-up must not consume injected faults */
    writer_free(w);
}

int pq_writer_close(pq_writer *w, uint64_t *size_bytes, tdb_error *err) {
    if (w->broken) {
        int rc = tdb_err(err, TDB_EINTERNAL, NULL, "snapshot writer for %s failed earlier", w->path);
        pq_writer_abort(w);
        return rc;
    }
    int rc = flush_group(w, err);
    buf footer = BUF_INIT;
    if (rc == 0) {
        write_footer(w, &footer);
        if (buf_failed(&footer)) rc = fail_nomem(w, err);
    }
    if (rc == 0 && footer.len > UINT32_MAX) rc = tdb_err(err, TDB_EINTERNAL, NULL, "snapshot footer too large");
    size_t footer_len = footer.len;
    if (rc == 0) rc = emit(w, footer.data, footer.len, err);
    buf_free(&footer);
    if (rc == 0) {
        uint8_t tail[8];
        store_u32(tail, (uint32_t)footer_len);
        memcpy(tail + 4, PQ_MAGIC, 4);
        rc = emit(w, tail, 8, err);
    }
    if (rc == 0) rc = flush_out(w, err);
    if (rc == 0 && w->opts.fsync) {
        int frc = fio_fsync(w->fd);
        if (frc < 0) rc = fail_io(w, err, "cannot fsync", frc);
    }
    if (rc == 0) {
        int crc = fio_close(w->fd);
        w->fd = -1;
        if (crc < 0) rc = fail_io(w, err, "cannot close", crc);
    }
    if (rc == 0) {
        int rrc = fio_rename(w->tmp_path, w->path);
        if (rrc < 0) rc = fail_io(w, err, "cannot rename", rrc);
    }
    if (rc == 0 && w->opts.fsync) {
        char dir[4096];
        dir_of(w->path, dir, sizeof dir);
        int drc = fio_fsync_dir(dir);
        if (drc < 0) {
            /* The file is in place; only its directory entry may not be
             * durable yet. Report it: the caller asked for durability. */
            rc = tdb_err(err, TDB_EIO, NULL, "cannot fsync directory %s: %s", dir, strerror(-drc));
            if (size_bytes) *size_bytes = w->offset;
            writer_free(w);
            return rc;
        }
    }
    if (rc < 0) {
        pq_writer_abort(w);
        return rc;
    }
    if (size_bytes) *size_bytes = w->offset;
    writer_free(w);
    return 0;
}
