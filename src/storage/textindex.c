/*
 * textindex.c: full-text search inside the storage engine: the analyzers
 * of a collection's full-text fields, the text index of every memtable,
 * the text extras of segment files, the statistics of deleted segment
 * rows, and st_search_text (BM25 over memtables + segments).
 * Layer: storage. Uses text/ (analyzer.h, index.h, bm25.h). Shared state
 * and lock order: collection_int.h (text_mu); the picture: docs/storage.md
 * and docs/text.md ("Wiring").
 *
 * Which rows hold a field. st_text_analyze_doc decides, from a version's
 * attribute JSON, whether it holds each full-text field (a string value,
 * or an array with at least one string) and its tokens (an array's
 * strings analyzed one by one and concatenated). Memtables, flushes,
 * compactions, rebuilt indexes and the statistics of deleted rows all call
 * it, so a row counts in N, avgdl and df exactly once while it is live and
 * never after.
 *
 * Memtables: one text_memindex per field, keyed by the entry's memtable
 * row (mt_entry.row), plus the entry of each indexed row. A version is
 * added when it is applied and removed when a newer version of its id (or
 * a delete) is applied, in the same text_mu write section, so the indexes
 * hold exactly the live memtable versions at every snapshot a text search
 * can take.
 *
 * Segments. Flush and compaction analyze the rows they write (st_text_
 * build_extras) into one blob per field (text/index.h, format version 1)
 * plus a directory. The directory (kind ST_EXTRA_TEXT_DIR), little-endian:
 *   0  u32 magic "STXD"   4 u32 version (1)   8 u32 fields   12 u32 0
 *   per field: u32 kind (of its blob), u32 name bytes, u32 signature bytes,
 *              the name, the signature, zero padding to a multiple of 4
 * The signature names the analyzer ("lang=english;stem=1;stop=0"); a blob
 * whose field or analyzer does not match the collection's configuration is
 * not used. Opening a segment opens each blob in place (no copy). A segment
 * without a usable blob for a field (written before the field had an index,
 * or unreadable) gets one rebuilt in memory from its attributes: logged,
 * correct, slower to open.
 *
 * Deleted segment rows. A blob counts every row of its segment. Rows marked
 * since (deleted or superseded) must leave N, avgdl and df: each segment
 * keeps, per field, a text_memindex of its marked rows (st_seg_dead), built
 * lazily by the first text search after marks change (re-analyzing those
 * rows' attributes), and a search subtracts its statistics. It is brought
 * up to date under text_mu held for reading, when the marks are exactly
 * those of the search's snapshot (all <= it), so the subtraction is exact.
 * Compaction drops marked rows, and with them this cost.
 *
 * Search (st_search_text): analyze the query per field; under text_mu
 * (read): take the view and snapshot, sum the statistics of every source,
 * search the memtables; then, without the lock, each segment (rows hidden
 * at the snapshot and rows the filter refuses never appear); merge the
 * per-source top-k by (score desc, id asc), each source searched with the
 * current k-th score as its floor.
 *
 * Ownership: the collection owns its analyzers; a memtable owns its
 * st_memtext (mt_set_aux); a segment owns its indexes, rebuilt blobs and
 * st_seg_dead.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/collection_int.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#define ST_TEXT_DIR_MAGIC 0x44585453u /* "STXD" little-endian */
#define ST_TEXT_DIR_VERSION 1u
#define ST_TEXT_DIR_HEADER_BYTES 16u
#define ST_TEXT_DIR_ENTRY_FIXED_BYTES 12u
/* First room for the row -> entry table of a memtable (doubled as needed). */
#define ST_MEMTEXT_INITIAL_ROWS 1024u

/* ---- configuration ---------------------------------------------------- */

int st_text_setup(st_collection *c, const st_options *opts, tdb_error *err) {
    size_t n = opts->n_text_fields;
    if (n == 0) return 0;
    if (opts->text_fields == NULL || n > ST_MAX_TEXT_FIELDS)
        return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                       "%zu full-text fields: at most %d are supported", n, ST_MAX_TEXT_FIELDS);
    c->text = calloc(n, sizeof *c->text);
    if (c->text == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening %s", c->dir);
    c->n_text = n;
    for (size_t i = 0; i < n; i++) {
        const st_text_field *f = &opts->text_fields[i];
        if (f->name == NULL || f->name[0] == '\0')
            return tdb_err(err, TDB_EINVAL, "invalid_attributes", "full-text field %zu has no name", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->text[j].name, f->name) == 0)
                return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                               "full-text field \"%s\" is listed twice", f->name);
        c->text[i].name = strdup(f->name);
        if (c->text[i].name == NULL)
            return tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening %s", c->dir);
        tdb_error aerr;
        int rc = text_analyzer_new(&f->analyzer, &c->text[i].analyzer, &aerr);
        if (rc < 0)
            return tdb_err(err, rc, aerr.name[0] ? aerr.name : "invalid_analyzer",
                           "full-text field \"%s\": %s", f->name, aerr.message);
        const char *lang = text_analyzer_language(c->text[i].analyzer);
        snprintf(c->text[i].signature, sizeof c->text[i].signature, "lang=%s;stem=%d;stop=%d",
                 lang ? lang : "none", lang && f->analyzer.stemming ? 1 : 0,
                 lang && f->analyzer.stopwords ? 1 : 0);
    }
    return 0;
}

void st_text_teardown(st_collection *c) {
    for (size_t i = 0; c->text && i < c->n_text; i++) {
        free(c->text[i].name);
        text_analyzer_free(c->text[i].analyzer);
    }
    free(c->text);
    c->text = NULL;
    c->n_text = 0;
}

void st_text_write_lock(st_collection *c) {
    if (c->n_text > 0) pthread_rwlock_wrlock(&c->text_mu);
}

void st_text_write_unlock(st_collection *c) {
    if (c->n_text > 0) pthread_rwlock_unlock(&c->text_mu);
}

size_t st_text_field_count(const st_collection *c) { return c->n_text; }

const char *st_text_field_name(const st_collection *c, size_t field) {
    return field < c->n_text ? c->text[field].name : NULL;
}

int st_text_field_find(const st_collection *c, const char *name, size_t len) {
    for (size_t i = 0; i < c->n_text; i++)
        if (strlen(c->text[i].name) == len && memcmp(c->text[i].name, name, len) == 0) return (int)i;
    return -1;
}

/* ---- analysis of one document ----------------------------------------- */

/* Appends src's tokens to dst (dst owns plain buffers, no stemmer). */
static int tokens_append(text_tokens *dst, const text_tokens *src) {
    if (src->count == 0) return 0;
    if (dst->bytes_len + src->bytes_len > dst->bytes_cap) {
        size_t cap = dst->bytes_cap ? dst->bytes_cap : 64;
        while (cap < dst->bytes_len + src->bytes_len) cap *= 2;
        char *b = realloc(dst->bytes, cap);
        if (b == NULL) return TDB_ENOMEM;
        dst->bytes = b;
        dst->bytes_cap = cap;
    }
    if (dst->count + src->count > dst->cap) {
        size_t cap = dst->cap ? dst->cap : 16;
        while (cap < dst->count + src->count) cap *= 2;
        text_token *t = realloc(dst->tok, cap * sizeof *t);
        if (t == NULL) return TDB_ENOMEM;
        dst->tok = t;
        dst->cap = cap;
    }
    memcpy(dst->bytes + dst->bytes_len, src->bytes, src->bytes_len);
    for (size_t i = 0; i < src->count; i++)
        dst->tok[dst->count + i] =
            (text_token){src->tok[i].off + (uint32_t)dst->bytes_len, src->tok[i].len};
    dst->bytes_len += src->bytes_len;
    dst->count += src->count;
    return 0;
}

/* Analyzes one string value and appends its tokens. A value the analyzer
 * refuses (not UTF-8: never in attributes tierdb stored) adds nothing. */
static int analyze_value(const st_collection *c, size_t f, const char *s, size_t len,
                         text_tokens *out, text_tokens *scratch) {
    tdb_error aerr;
    int rc = text_analyze(c->text[f].analyzer, s, len, scratch, &aerr);
    if (rc == TDB_ENOMEM) return rc;
    if (rc < 0) {
        log_msg(LOG_WARN, "collection %s: field %s: text not indexed: %s", c->dir, c->text[f].name,
                aerr.message);
        return 0;
    }
    return tokens_append(out, scratch);
}

int st_text_analyze_doc(const st_collection *c, const char *attrs, uint32_t attrs_len,
                        text_tokens *tokens, uint8_t *present, text_tokens *scratch) {
    for (size_t f = 0; f < c->n_text; f++) {
        present[f] = 0;
        tokens[f].count = 0;
        tokens[f].bytes_len = 0;
    }
    if (attrs == NULL || attrs_len == 0) return 0;
    json_doc *d = NULL;
    json_error je;
    /* Attributes tierdb stored always parse; anything else holds no text. */
    if (json_parse(attrs, attrs_len, &d, &je) != 0) return 0;
    const json_value *root = json_root(d);
    int rc = 0;
    for (size_t f = 0; f < c->n_text && rc == 0 && root->type == JSON_OBJECT; f++) {
        const json_value *v = json_get(root, c->text[f].name);
        if (v == NULL) continue;
        if (v->type == JSON_STRING) {
            present[f] = 1;
            rc = analyze_value(c, f, v->str, v->len, &tokens[f], scratch);
        } else if (v->type == JSON_ARRAY) {
            for (const json_value *e = v->child; e && rc == 0; e = e->next) {
                if (e->type != JSON_STRING) continue;
                present[f] = 1;
                rc = analyze_value(c, f, e->str, e->len, &tokens[f], scratch);
            }
        }
    }
    json_doc_free(d);
    return rc;
}

/* Analyzes rows [0, n) of a row source into one index per field, rows
 * numbered as given. `fields` selects which (NULL: all). */
typedef struct row_text {
    const char *attrs;
    uint32_t attrs_len;
} row_text;

typedef row_text (*row_text_fn)(const void *src, size_t i);

static int index_rows(const st_collection *c, row_text_fn get, const void *src, size_t n,
                      const bool *fields, text_memindex **idx, tdb_error *err) {
    int rc = 0;
    text_tokens scratch;
    text_tokens_init(&scratch);
    text_tokens *tok = calloc(c->n_text, sizeof *tok);
    uint8_t *present = calloc(c->n_text, 1);
    if (tok == NULL || present == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory indexing text");
        goto done;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        row_text r = get(src, i);
        rc = st_text_analyze_doc(c, r.attrs, r.attrs_len, tok, present, &scratch);
        if (rc < 0) {
            rc = tdb_err(err, rc, NULL, "out of memory indexing text");
            break;
        }
        for (size_t f = 0; f < c->n_text && rc == 0; f++)
            if (present[f] && (fields == NULL || fields[f]))
                rc = text_memindex_add(idx[f], (uint32_t)i, &tok[f], err);
    }
done:
    for (size_t f = 0; tok && f < c->n_text; f++) text_tokens_free(&tok[f]);
    free(tok);
    free(present);
    text_tokens_free(&scratch);
    return rc;
}

/* ---- memtables ---------------------------------------------------------- */

typedef struct st_memtext {
    size_t n_fields;
    text_memindex **idx;        /* per field */
    const mt_entry **rows;      /* by memtable row: the entry indexed there */
    size_t rows_cap;
} st_memtext;

void *st_memtext_new(const st_collection *c) {
    st_memtext *m = calloc(1, sizeof *m);
    if (m == NULL) return NULL;
    m->n_fields = c->n_text;
    m->idx = calloc(c->n_text, sizeof *m->idx);
    if (m->idx == NULL) goto fail;
    for (size_t f = 0; f < c->n_text; f++)
        if (text_memindex_new(&m->idx[f], NULL) < 0) goto fail;
    return m;
fail:
    st_memtext_free(m);
    return NULL;
}

void st_memtext_free(void *p) {
    st_memtext *m = p;
    if (m == NULL) return;
    for (size_t f = 0; m->idx && f < m->n_fields; f++) text_memindex_free(m->idx[f]);
    free(m->idx);
    free(m->rows);
    free(m);
}

int st_memtext_add(const st_collection *c, memtable *mem, const mt_entry *e,
                   const text_tokens *tokens, const uint8_t *present) {
    st_memtext *m = mt_aux(mem);
    if (m == NULL) return 0;
    if (e->row >= m->rows_cap) {
        size_t cap = m->rows_cap ? m->rows_cap : ST_MEMTEXT_INITIAL_ROWS;
        while (cap <= e->row) cap *= 2;
        const mt_entry **r = realloc(m->rows, cap * sizeof *r);
        if (r == NULL) return TDB_ENOMEM;
        memset(r + m->rows_cap, 0, (cap - m->rows_cap) * sizeof *r);
        m->rows = r;
        m->rows_cap = cap;
    }
    m->rows[e->row] = e;
    for (size_t f = 0; f < c->n_text; f++) {
        if (!present[f]) continue;
        int rc = text_memindex_add(m->idx[f], e->row, &tokens[f], NULL);
        if (rc < 0) return rc;
    }
    return 0;
}

void st_memtext_remove(const st_collection *c, memtable *mem, const mt_entry *e) {
    st_memtext *m = mt_aux(mem);
    if (m == NULL) return;
    for (size_t f = 0; f < c->n_text; f++) text_memindex_remove(m->idx[f], e->row);
}

size_t st_memtext_memory_bytes(st_collection *c, const memtable *mem) {
    const st_memtext *m = mt_aux(mem);
    if (m == NULL || c->n_text == 0) return 0;
    pthread_rwlock_rdlock(&c->text_mu);
    size_t bytes = sizeof *m + m->rows_cap * sizeof *m->rows;
    for (size_t f = 0; f < m->n_fields; f++) bytes += text_memindex_memory_bytes(m->idx[f]);
    pthread_rwlock_unlock(&c->text_mu);
    return bytes;
}

/* ---- segment extras ------------------------------------------------------ */

static int extras_add(st_extras *ex, uint32_t kind, void *data, size_t len) {
    seg_extra *l = realloc(ex->list, (ex->n + 1) * sizeof *l);
    if (l == NULL) return TDB_ENOMEM;
    ex->list = l;
    void **o = realloc(ex->owned, (ex->n_owned + 1) * sizeof *o);
    if (o == NULL) return TDB_ENOMEM;
    ex->owned = o;
    ex->owned[ex->n_owned++] = data;
    ex->list[ex->n++] = (seg_extra){kind, data, len};
    return 0;
}

void st_extras_free(st_extras *ex) {
    for (size_t i = 0; i < ex->n_owned; i++) free(ex->owned[i]);
    free(ex->owned);
    free(ex->list);
    memset(ex, 0, sizeof *ex);
}

static row_text row_of_seg_rows(const void *src, size_t i) {
    const seg_row *r = (const seg_row *)src + i;
    return (row_text){r->attrs, r->attrs_len};
}

int st_text_build_extras(const st_collection *c, const seg_row *rows, size_t n, st_extras *ex,
                         tdb_error *err) {
    if (c->n_text == 0 || n == 0) return 0;
    if (n >= TEXT_MAX_ROWS)
        return tdb_err(err, TDB_ETOOBIG, NULL, "%zu rows are too many for one text index", n);
    int rc = 0;
    buf dir = BUF_INIT;
    text_memindex **idx = calloc(c->n_text, sizeof *idx);
    if (idx == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory indexing text");
        goto done;
    }
    for (size_t f = 0; f < c->n_text && rc == 0; f++) rc = text_memindex_new(&idx[f], err);
    if (rc < 0) goto done;
    rc = index_rows(c, row_of_seg_rows, rows, n, NULL, idx, err);
    if (rc < 0) goto done;
    buf_put_u32(&dir, ST_TEXT_DIR_MAGIC);
    buf_put_u32(&dir, ST_TEXT_DIR_VERSION);
    buf_put_u32(&dir, (uint32_t)c->n_text);
    buf_put_u32(&dir, 0);
    for (size_t f = 0; f < c->n_text; f++) {
        buf blob = BUF_INIT;
        rc = text_memindex_serialize(idx[f], NULL, 0, (uint32_t)n, &blob, err);
        if (rc == 0 && buf_failed(&blob))
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory serializing a text index");
        if (rc < 0) {
            buf_free(&blob);
            goto done;
        }
        uint32_t kind = ST_EXTRA_TEXT_FIRST + (uint32_t)f;
        size_t len = blob.len;
        void *data = buf_steal(&blob);
        if (extras_add(ex, kind, data, len) < 0) {
            free(data);
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory serializing a text index");
            goto done;
        }
        const char *name = c->text[f].name, *sig = c->text[f].signature;
        size_t nl = strlen(name), sl = strlen(sig);
        buf_put_u32(&dir, kind);
        buf_put_u32(&dir, (uint32_t)nl);
        buf_put_u32(&dir, (uint32_t)sl);
        buf_append(&dir, name, nl);
        buf_append(&dir, sig, sl);
        while (dir.len % 4) buf_put_u8(&dir, 0);
    }
    if (buf_failed(&dir)) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory serializing a text index");
        goto done;
    }
    size_t dlen = dir.len;
    void *ddata = buf_steal(&dir);
    if (extras_add(ex, ST_EXTRA_TEXT_DIR, ddata, dlen) < 0) {
        free(ddata);
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory serializing a text index");
    }
done:
    for (size_t f = 0; idx && f < c->n_text; f++) text_memindex_free(idx[f]);
    free(idx);
    buf_free(&dir);
    return rc;
}

/* ---- segments: open, rebuild ---------------------------------------------- */

struct st_seg_dead {
    pthread_mutex_t mu;
    uint64_t synced;            /* dead_rows when last brought up to date */
    uint64_t *done;             /* bitset: rows whose text is in idx */
    text_memindex **idx;        /* per field: the text of marked rows */
};

/* The blob kind of field f in the directory, or 0 (absent or another
 * analyzer). A malformed directory yields 0 for every field. */
static uint32_t dir_lookup(const uint8_t *d, size_t len, const char *name, const char *sig) {
    if (len < ST_TEXT_DIR_HEADER_BYTES || load_u32(d) != ST_TEXT_DIR_MAGIC ||
        load_u32(d + 4) != ST_TEXT_DIR_VERSION)
        return 0;
    uint32_t count = load_u32(d + 8);
    size_t off = ST_TEXT_DIR_HEADER_BYTES;
    size_t nl = strlen(name), sl = strlen(sig);
    for (uint32_t i = 0; i < count; i++) {
        if (len - off < ST_TEXT_DIR_ENTRY_FIXED_BYTES) return 0;
        uint32_t kind = load_u32(d + off);
        uint64_t elen = load_u32(d + off + 4), esig = load_u32(d + off + 8);
        off += ST_TEXT_DIR_ENTRY_FIXED_BYTES;
        if (elen + esig > len - off) return 0;
        if (elen == nl && esig == sl && memcmp(d + off, name, nl) == 0 &&
            memcmp(d + off + nl, sig, sl) == 0)
            return kind;
        off += elen + esig;
        off = (off + 3) & ~(size_t)3;
        if (off > len) return 0;
    }
    return 0;
}

static row_text row_of_segment(const void *src, size_t i) {
    row_text r;
    r.attrs = seg_attrs((const segment *)src, i, &r.attrs_len);
    return r;
}

/* Rebuilds the fields marked in `missing` from the segment's attributes
 * into heap blobs. */
static int rebuild_fields(const st_collection *c, st_seg *s, const bool *missing, tdb_error *err) {
    if (s->rows >= TEXT_MAX_ROWS)
        return tdb_err(err, TDB_ETOOBIG, NULL, "segment %s has too many rows for a text index",
                       s->path);
    int rc = 0;
    text_memindex **idx = calloc(c->n_text, sizeof *idx);
    if (idx == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory indexing text");
    for (size_t f = 0; f < c->n_text && rc == 0; f++)
        if (missing[f]) rc = text_memindex_new(&idx[f], err);
    if (rc == 0) rc = index_rows(c, row_of_segment, s->seg, (size_t)s->rows, missing, idx, err);
    for (size_t f = 0; f < c->n_text && rc == 0; f++) {
        if (!missing[f]) continue;
        buf blob = BUF_INIT;
        rc = text_memindex_serialize(idx[f], NULL, 0, (uint32_t)s->rows, &blob, err);
        if (rc == 0 && buf_failed(&blob))
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory rebuilding a text index");
        if (rc < 0) {
            buf_free(&blob);
            break;
        }
        size_t len = blob.len;
        s->text_heap[f] = buf_steal(&blob);
        rc = text_segindex_open(s->text_heap[f], len, s->path, &s->text[f], err);
    }
    for (size_t f = 0; f < c->n_text; f++) text_memindex_free(idx[f]);
    free(idx);
    return rc;
}

int st_text_seg_open(const st_collection *c, st_seg *s, tdb_error *err) {
    if (c->n_text == 0) return 0;
    s->text = calloc(c->n_text, sizeof *s->text);
    s->text_heap = calloc(c->n_text, sizeof *s->text_heap);
    s->dead = calloc(1, sizeof *s->dead);
    bool *missing = calloc(c->n_text, sizeof *missing);
    int rc = 0;
    if (s->text == NULL || s->text_heap == NULL || s->dead == NULL || missing == NULL) {
        free(missing);
        free(s->text);
        free(s->text_heap);
        free(s->dead);
        s->text = NULL;
        s->text_heap = NULL;
        s->dead = NULL;
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening %s", s->path);
    }
    pthread_mutex_init(&s->dead->mu, NULL);
    s->n_text = c->n_text;
    const void *dir = NULL;
    size_t dir_len = 0;
    if (seg_extra_get(s->seg, ST_EXTRA_TEXT_DIR, &dir, &dir_len) < 0) dir_len = 0;
    bool any_missing = false;
    for (size_t f = 0; f < c->n_text; f++) {
        uint32_t kind = dir_len ? dir_lookup(dir, dir_len, c->text[f].name, c->text[f].signature) : 0;
        const void *blob;
        size_t len;
        if (kind >= ST_EXTRA_TEXT_FIRST && seg_extra_get(s->seg, kind, &blob, &len) == 0) {
            char name[200];
            snprintf(name, sizeof name, "%s field %s", s->path, c->text[f].name);
            tdb_error oerr;
            text_segindex *ix = NULL;
            int orc = text_segindex_open(blob, len, name, &ix, &oerr);
            if (orc == TDB_ENOMEM) {
                rc = tdb_err(err, orc, NULL, "%s", oerr.message);
                goto done;
            }
            if (orc == 0 && text_segindex_row_count(ix) == s->rows) {
                s->text[f] = ix;
                continue;
            }
            text_segindex_free(ix);
            /* The section passed its checksum: a blob we cannot use is a
             * format this build does not read. Rebuilding costs time only. */
            log_msg(LOG_WARN, "collection %s: %s: unusable text index (%s); rebuilding it", c->dir,
                    name, orc < 0 ? oerr.message : "row count differs");
        }
        missing[f] = true;
        any_missing = true;
    }
    if (any_missing) {
        log_msg(LOG_INFO, "collection %s: segment %s has no index for some full-text fields; "
                          "building them in memory",
                c->dir, s->path);
        rc = rebuild_fields(c, s, missing, err);
        s->text_rebuilt = true;
    }
done:
    free(missing);
    return rc;
}

void st_text_seg_close(st_seg *s) {
    if (s->n_text == 0) return;
    for (size_t f = 0; f < s->n_text; f++) {
        text_segindex_free(s->text[f]);
        free(s->text_heap[f]);
        if (s->dead->idx) text_memindex_free(s->dead->idx[f]);
    }
    pthread_mutex_destroy(&s->dead->mu);
    free(s->dead->idx);
    free(s->dead->done);
    free(s->dead);
    free(s->text);
    free(s->text_heap);
    s->text = NULL;
    s->text_heap = NULL;
    s->dead = NULL;
    s->n_text = 0;
}

/* ---- statistics of marked segment rows ----------------------------------- */

/* Brings s->dead up to date with the marks: every marked row's text is in
 * dead->idx. Caller holds text_mu for reading (marks stable) and dead->mu. */
static int dead_sync(const st_collection *c, st_seg *s, tdb_error *err) {
    st_seg_dead *d = s->dead;
    uint64_t marked = atomic_load_explicit(&s->dead_rows, memory_order_relaxed);
    if (marked == d->synced) return 0;
    int rc = 0;
    if (d->idx == NULL) {
        d->idx = calloc(c->n_text, sizeof *d->idx);
        d->done = calloc(s->rows / 64 + 1, sizeof *d->done);
        if (d->idx == NULL || d->done == NULL) {
            free(d->idx);
            free(d->done);
            d->idx = NULL;
            d->done = NULL;
            return tdb_err(err, TDB_ENOMEM, NULL, "out of memory for deleted rows' statistics");
        }
        for (size_t f = 0; f < c->n_text && rc == 0; f++) rc = text_memindex_new(&d->idx[f], err);
        if (rc < 0) return rc;
    }
    text_tokens scratch;
    text_tokens_init(&scratch);
    text_tokens *tok = calloc(c->n_text, sizeof *tok);
    uint8_t *present = calloc(c->n_text, 1);
    if (tok == NULL || present == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory for deleted rows' statistics");
        goto done;
    }
    for (uint64_t row = 0; row < s->rows && rc == 0; row++) {
        if (atomic_load_explicit(&s->marks[row], memory_order_relaxed) == ST_MARK_LIVE) continue;
        if (d->done[row / 64] >> (row % 64) & 1) continue;
        uint32_t alen;
        const char *attrs = seg_attrs(s->seg, row, &alen);
        rc = st_text_analyze_doc(c, attrs, alen, tok, present, &scratch);
        if (rc < 0) {
            rc = tdb_err(err, rc, NULL, "out of memory for deleted rows' statistics");
            break;
        }
        for (size_t f = 0; f < c->n_text && rc == 0; f++)
            if (present[f]) rc = text_memindex_add(d->idx[f], (uint32_t)row, &tok[f], err);
        /* Marked done even when an add failed (out of memory: the only
         * failure), so a retry never adds a row twice; such a row may then
         * be missing from some fields' statistics, never counted twice. */
        d->done[row / 64] |= 1ull << (row % 64);
    }
    if (rc == 0) d->synced = marked;
done:
    for (size_t f = 0; tok && f < c->n_text; f++) text_tokens_free(&tok[f]);
    free(tok);
    free(present);
    text_tokens_free(&scratch);
    return rc;
}

/* ---- search ---------------------------------------------------------------- */

/* A candidate: a pointer into the view plus its score. */
typedef struct tcand {
    double score;
    st_doc_ref d;
} tcand;

/* Min-heap of the k best (root: the one a newcomer must beat). Worse =
 * lower score, or the same score and a larger id (ties go by id). */
typedef struct tcand_heap {
    tcand *a;
    size_t n, k;
} tcand_heap;

static bool tcand_worse(const tcand *x, const tcand *y) {
    if (x->score != y->score) return x->score < y->score;
    return seg_id_cmp(x->d.id, x->d.id_len, y->d.id, y->d.id_len) > 0;
}

static void tcand_sift_down(tcand_heap *h, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && tcand_worse(&h->a[l], &h->a[m])) m = l;
        if (r < h->n && tcand_worse(&h->a[r], &h->a[m])) m = r;
        if (m == i) return;
        tcand t = h->a[i];
        h->a[i] = h->a[m];
        h->a[m] = t;
        i = m;
    }
}

static void tcand_push(tcand_heap *h, const tcand *x) {
    if (h->n < h->k) {
        size_t i = h->n++;
        h->a[i] = *x;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!tcand_worse(&h->a[i], &h->a[p])) break;
            tcand t = h->a[i];
            h->a[i] = h->a[p];
            h->a[p] = t;
            i = p;
        }
        return;
    }
    if (!tcand_worse(&h->a[0], x)) return;
    h->a[0] = *x;
    tcand_sift_down(h, 0);
}

/* The floor for the next source: rows must score above it. Equal scores
 * still pass (a smaller id wins the tie). */
static double tcand_floor(const tcand_heap *h) {
    if (h->n < h->k) return 0.0;
    return nextafter(h->a[0].score, -INFINITY);
}

typedef struct mem_accept {
    const st_memtext *mt;
    st_filter_fn filter;
    void *filter_ctx;
} mem_accept;

static bool mem_accept_row(void *ctx, uint32_t row) {
    const mem_accept *a = ctx;
    if (row >= a->mt->rows_cap || a->mt->rows[row] == NULL) return false;
    if (a->filter == NULL) return true;
    st_doc_ref d = st_ref_from_entry(a->mt->rows[row]);
    return st_ref_passes(&d, a->filter, a->filter_ctx);
}

typedef struct seg_accept {
    const st_seg *seg;
    uint64_t snap;
    st_filter_fn filter;
    void *filter_ctx;
} seg_accept;

static bool seg_accept_row(void *ctx, uint32_t row) {
    const seg_accept *a = ctx;
    if (!st_row_visible(a->seg, row, a->snap)) return false;
    if (a->filter == NULL) return true;
    st_doc_ref d = st_ref_from_row(a->seg, row);
    return st_ref_passes(&d, a->filter, a->filter_ctx);
}

/* One query, prepared: the fields searched and the terms per field. */
typedef struct text_plan {
    uint32_t nf;
    uint32_t *field;            /* collection field of query field j */
    double *weight;
    text_tokens *tok;           /* per query field: its distinct terms */
    text_query_term *terms;
    uint32_t n_terms;
    uint64_t *doc_count;        /* per query field, corpus-wide */
    uint64_t *total_length;
} text_plan;

static void plan_free(text_plan *p) {
    for (uint32_t j = 0; p->tok && j < p->nf; j++) text_tokens_free(&p->tok[j]);
    free(p->tok);
    free(p->field);
    free(p->weight);
    free(p->terms);
    free(p->doc_count);
    free(p->total_length);
}

static int plan_query(const st_collection *c, const st_text_query *q, text_plan *p,
                      tdb_error *err) {
    memset(p, 0, sizeof *p);
    uint32_t nf = q->fields ? q->n_fields : (uint32_t)c->n_text;
    if (nf == 0 || nf > c->n_text)
        return tdb_err(err, TDB_EINVAL, "invalid_text", "a text query needs 1 to %zu fields",
                       c->n_text);
    p->nf = nf;
    p->field = calloc(nf, sizeof *p->field);
    p->weight = calloc(nf, sizeof *p->weight);
    p->tok = calloc(nf, sizeof *p->tok);
    p->doc_count = calloc(nf, sizeof *p->doc_count);
    p->total_length = calloc(nf, sizeof *p->total_length);
    if (!p->field || !p->weight || !p->tok || !p->doc_count || !p->total_length)
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory planning a text query");
    for (uint32_t j = 0; j < nf; j++) {
        uint32_t f = q->fields ? q->fields[j] : j;
        if (f >= c->n_text)
            return tdb_err(err, TDB_EINVAL, "invalid_text", "full-text field %u does not exist", f);
        for (uint32_t i = 0; i < j; i++)
            if (p->field[i] == f)
                return tdb_err(err, TDB_EINVAL, "invalid_text", "field \"%s\" is listed twice",
                               c->text[f].name);
        double w = q->weights ? q->weights[j] : 1.0;
        if (!(w >= 0.0) || isinf(w))
            return tdb_err(err, TDB_EINVAL, "invalid_text",
                           "the weight of field \"%s\" must be a finite number >= 0",
                           c->text[f].name);
        p->field[j] = f;
        p->weight[j] = w;
    }
    size_t total = 0, longest = 0;
    for (uint32_t j = 0; j < nf; j++) {
        int rc = text_analyze(c->text[p->field[j]].analyzer, q->text ? q->text : "",
                              q->text ? q->text_len : 0, &p->tok[j], err);
        if (rc == 0) rc = text_tokens_dedup(&p->tok[j], err);
        if (rc < 0) return rc;
        total += p->tok[j].count;
        if (p->tok[j].count > longest) longest = p->tok[j].count;
    }
    if (total > TEXT_MAX_QUERY_TERMS)
        return tdb_err(err, TDB_EINVAL, "invalid_text",
                       "the query has %zu (field, term) pairs; at most %u are allowed", total,
                       TEXT_MAX_QUERY_TERMS);
    p->terms = calloc(total ? total : 1, sizeof *p->terms);
    if (p->terms == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory planning a text query");
    /* Term-major (each query position, then the fields in order): with one
     * field this is the order of first occurrence, the order the reference
     * sums in (bm25.h). */
    for (size_t pos = 0; pos < longest; pos++)
        for (uint32_t j = 0; j < nf; j++) {
            if (pos >= p->tok[j].count) continue;
            const text_token *t = &p->tok[j].tok[pos];
            p->terms[p->n_terms++] =
                (text_query_term){j, p->tok[j].bytes + t->off, t->len, 0};
        }
    return 0;
}

/* Adds one source's statistics (memtable: index; segment: blob less its
 * marked rows) to the plan. */
static void add_mem_stats(text_plan *p, const st_memtext *mt) {
    for (uint32_t j = 0; j < p->nf; j++) {
        text_index_stats st;
        text_memindex_stats(mt->idx[p->field[j]], &st);
        p->doc_count[j] += st.doc_count;
        p->total_length[j] += st.total_length;
    }
    for (uint32_t t = 0; t < p->n_terms; t++) {
        const text_query_term *qt = &p->terms[t];
        p->terms[t].df += text_memindex_df(mt->idx[p->field[qt->field]], qt->bytes, qt->len);
    }
}

static void add_seg_stats(text_plan *p, const st_seg *s) {
    const st_seg_dead *d = s->dead;
    for (uint32_t j = 0; j < p->nf; j++) {
        text_index_stats st, dst = {0};
        text_segindex_stats(s->text[p->field[j]], &st);
        if (d->idx) text_memindex_stats(d->idx[p->field[j]], &dst);
        p->doc_count[j] += st.doc_count - dst.doc_count;
        p->total_length[j] += st.total_length - dst.total_length;
    }
    for (uint32_t t = 0; t < p->n_terms; t++) {
        const text_query_term *qt = &p->terms[t];
        uint32_t f = p->field[qt->field];
        uint64_t df = text_segindex_df(s->text[f], qt->bytes, qt->len);
        if (d->idx) df -= text_memindex_df(d->idx[f], qt->bytes, qt->len);
        p->terms[t].df += df;
    }
}

/* Searches one source (fields filled with its indexes) and pushes its hits. */
typedef struct src_hits {
    text_hit *hits;
    uint32_t k;
} src_hits;

static int search_source(const text_plan *p, text_field_source *fs, bool exhaustive,
                         bool (*accept)(void *, uint32_t), void *ctx, src_hits *sh,
                         tcand_heap *heap, st_doc_ref (*ref)(const void *, uint32_t),
                         const void *src, tdb_error *err) {
    text_search_opts so = {.k = sh->k, .min_score = tcand_floor(heap), .accept = accept,
                           .accept_ctx = ctx};
    uint32_t got = 0;
    int rc = exhaustive ? text_search_exhaustive(fs, p->nf, p->terms, p->n_terms, &so, sh->hits,
                                                 &got, err)
                        : text_search(fs, p->nf, p->terms, p->n_terms, &so, sh->hits, &got, NULL,
                                      err);
    if (rc < 0) return rc;
    for (uint32_t i = 0; i < got; i++) {
        tcand x = {sh->hits[i].score, ref(src, sh->hits[i].row)};
        tcand_push(heap, &x);
    }
    return 0;
}

static st_doc_ref ref_of_mem(const void *src, uint32_t row) {
    return st_ref_from_entry(((const st_memtext *)src)->rows[row]);
}

static st_doc_ref ref_of_seg(const void *src, uint32_t row) {
    return st_ref_from_row((const st_seg *)src, row);
}

int st_search_text(st_collection *c, const st_text_query *q, size_t k, st_filter_fn filter,
                   void *filter_ctx, bool with_vectors, st_hit **out, size_t *n, tdb_error *err) {
    *out = NULL;
    *n = 0;
    if (c->n_text == 0)
        return tdb_err(err, TDB_EINVAL, "invalid_text",
                       "this collection has no full-text fields: declare an attribute with "
                       "\"full_text\" to search text");
    if (q == NULL) return tdb_err(err, TDB_EINVAL, NULL, "a text query is required");
    if (k > TEXT_MAX_K)
        return tdb_err(err, TDB_EINVAL, "invalid_top_k", "k must be at most %u", TEXT_MAX_K);
    text_plan p;
    int rc = plan_query(c, q, &p, err);
    if (rc < 0 || k == 0 || p.n_terms == 0) {
        plan_free(&p);
        return rc;
    }
    tcand_heap heap = {calloc(k, sizeof(tcand)), 0, k};
    src_hits sh = {calloc(k, sizeof(text_hit)), (uint32_t)k};
    text_field_source *fs = calloc(p.nf, sizeof *fs);
    st_hit *hits = NULL;
    size_t filled = 0;
    uint64_t snap = 0;
    st_view *v = NULL;
    bool locked = false;
    if (heap.a == NULL || sh.hits == NULL || fs == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory for a top-%zu text search", k);
        goto done;
    }

    /* Statistics and memtables at one snapshot (collection_int.h, text_mu). */
    pthread_rwlock_rdlock(&c->text_mu);
    locked = true;
    v = st_view_acquire(c, &snap);
    memtable *mems[2] = {v->mem, v->frozen};
    for (int i = 0; i < 2; i++)
        if (mems[i]) add_mem_stats(&p, mt_aux(mems[i]));
    for (size_t i = 0; i < v->nsegs; i++) {
        st_seg *s = v->segs[i];
        pthread_mutex_lock(&s->dead->mu);
        rc = dead_sync(c, s, err);
        if (rc == 0) add_seg_stats(&p, s);
        pthread_mutex_unlock(&s->dead->mu);
        if (rc < 0) goto done;
    }
    for (uint32_t j = 0; j < p.nf; j++) {
        fs[j].weight = p.weight[j];
        fs[j].doc_count = p.doc_count[j];
        fs[j].avg_length = p.doc_count[j] ? (double)p.total_length[j] / (double)p.doc_count[j] : 0.0;
    }
    for (int i = 0; i < 2; i++) {
        if (mems[i] == NULL) continue;
        const st_memtext *mt = mt_aux(mems[i]);
        for (uint32_t j = 0; j < p.nf; j++) {
            fs[j].mem = mt->idx[p.field[j]];
            fs[j].seg = NULL;
        }
        mem_accept acc = {mt, filter, filter_ctx};
        rc = search_source(&p, fs, q->exhaustive, mem_accept_row, &acc, &sh, &heap, ref_of_mem, mt,
                           err);
        if (rc < 0) goto done;
    }
    pthread_rwlock_unlock(&c->text_mu);
    locked = false;

    /* Segments: immutable indexes, rows hidden by marks of this snapshot. */
    for (size_t i = 0; i < v->nsegs; i++) {
        const st_seg *s = v->segs[i];
        for (uint32_t j = 0; j < p.nf; j++) {
            fs[j].mem = NULL;
            fs[j].seg = s->text[p.field[j]];
        }
        seg_accept acc = {s, snap, filter, filter_ctx};
        rc = search_source(&p, fs, q->exhaustive, seg_accept_row, &acc, &sh, &heap, ref_of_seg, s,
                           err);
        if (rc < 0) goto done;
    }

    /* Best first: repeatedly move the worst to the end. */
    size_t kept = heap.n;
    while (heap.n > 1) {
        tcand t = heap.a[0];
        heap.a[0] = heap.a[heap.n - 1];
        heap.a[heap.n - 1] = t;
        heap.n--;
        tcand_sift_down(&heap, 0);
    }
    if (kept == 0) goto done;
    hits = calloc(kept, sizeof *hits);
    if (hits == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory copying search results");
        goto done;
    }
    for (; filled < kept; filled++) {
        if (st_record_fill(&hits[filled].rec, &heap.a[filled].d, c->dimension, with_vectors) < 0) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory copying search results");
            goto done;
        }
        hits[filled].score = heap.a[filled].score;
    }
done:
    if (locked) pthread_rwlock_unlock(&c->text_mu);
    st_view_release(v);
    free(heap.a);
    free(sh.hits);
    free(fs);
    plan_free(&p);
    if (rc < 0) {
        st_hits_free(hits, filled);
        return rc;
    }
    *out = hits;
    *n = filled;
    return 0;
}
