/*
 * import.c: streaming NDJSON import (tdb_import_*; API.md "Documents",
 * import): lines in, batches of validated documents out to the storage
 * engine, and the report.
 * Layer: db.
 *
 * The pipeline of one import:
 *
 *   bytes ──tdb_import_feed──> lines ──import_line──> batch ──batch_commit──> st_upsert
 *            (split on '\n',     (parse, validate;     (ids, vectors,     (one WAL record,
 *             partial line kept)  bad lines reported)   attributes)        durable, atomic)
 *
 * Invariants:
 *   (1) memory is bounded by one batch (batch_docs documents and at most
 *       IMPORT_MAX_BATCH_BYTES of payload, or one document bigger than
 *       that) plus one line of at most max_line_bytes, whatever the input
 *       size;
 *   (2) documents reach the engine in input order, a batch at a time, so
 *       the committed documents are always those of a prefix of the good
 *       lines (a later duplicate id wins, as within one upsert);
 *   (3) on a bad line under abort, the pending batch (the good lines
 *       before it) is committed first, then nothing more is read;
 *   (4) between calls no lock is held and no reference to storage is
 *       kept: each commit looks the collection up again (db_coll_begin,
 *       which also brings a cold collection back and records an access),
 *       so a stalled client never blocks a drop or a tier move. The
 *       db_coll reference held for the whole import only pins the
 *       collection's immutable definition (dimension, metric, schema)
 *       used to validate lines; a commit that finds another db_coll under
 *       the name (dropped and created again) fails.
 *
 * Per-document validation is the upsert's (docs.c), restated here for one
 * document per line with line-oriented messages: id a string or integer
 * of 1..512 bytes, vector of the collection's dimension with finite values
 * (non-zero for cosine), attributes a JSON object whose declared
 * attributes have their declared types.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "util/error.h"

/* A commit is forced above this much payload even if the batch has room
 * for more documents: it bounds the memory of one import and keeps WAL
 * records well under WAL_MAX_RECORD_BYTES (256 MiB). */
#define IMPORT_MAX_BATCH_BYTES (32u << 20)
/* Default longest line: the HTTP body limit's default, so a line that
 * would fit in an upsert request fits in an import. */
#define IMPORT_DEFAULT_MAX_LINE_BYTES (64u << 20)
/* After a line longer than this the line buffer is released rather than
 * kept at its peak size for the rest of the import. */
#define IMPORT_KEEP_LINE_BUFFER_BYTES (1u << 20)

/* A batch under construction. Pointers into the bufs move when they grow,
 * so documents record offsets and get pointers only at commit time. */
typedef struct import_slot {
    size_t id_off;
    uint32_t id_len;
    size_t vec_off;        /* byte offset into vectors */
    size_t attr_off;
    uint32_t attr_len;
} import_slot;

struct tdb_import {
    tdb_db *db;
    char name[DB_MAX_NAME_BYTES + 1];
    db_coll *coll;          /* referenced: the definition lines are validated against */
    bool skip_errors;
    size_t batch_docs;
    size_t max_line_bytes;
    /* Line assembly. */
    buf partial;            /* bytes of the line not yet ended by '\n' */
    bool partial_too_long;  /* the current line passed max_line_bytes: discarding it */
    uint64_t lines;         /* complete lines seen */
    /* The batch. */
    import_slot *slots;     /* batch_docs entries */
    size_t pending;
    buf ids, vectors, attrs;
    st_doc *docs;           /* batch_docs entries, filled at commit */
    float *scratch;         /* one vector, validated before it joins the batch */
    /* Outcome. */
    uint64_t imported, skipped, errors;
    bool stopped;           /* abort: a bad line ended the import */
    int failed;             /* 0, or the TDB_E* code of a failure that ended it */
    tdb_error failure;
    buf report_errors;      /* up to TDB_IMPORT_MAX_ERRORS {"line","message"} elements */
};

static int import_fail(tdb_import *imp, int code, const tdb_error *cause, tdb_error *err) {
    if (!imp->failed) {
        imp->failed = code;
        if (cause) imp->failure = *cause;
        else tdb_err(&imp->failure, code, NULL, "%s", tdb_strerror(code));
        imp->stopped = true;
    }
    if (err) {
        *err = imp->failure;
        /* Precision bounds the copy: the prefix plus the cause fit. */
        snprintf(err->message, sizeof err->message,
                 "the import stopped after %llu documents were committed: %.400s",
                 (unsigned long long)imp->imported, imp->failure.message);
    }
    return imp->failed;
}

void tdb_import_free(tdb_import *imp) {
    if (imp == NULL) return;
    db_coll_put(imp->coll);
    buf_free(&imp->partial);
    buf_free(&imp->ids);
    buf_free(&imp->vectors);
    buf_free(&imp->attrs);
    buf_free(&imp->report_errors);
    free(imp->slots);
    free(imp->docs);
    free(imp->scratch);
    free(imp);
}

int tdb_import_begin(tdb_db *db, const char *name, const tdb_import_options *opts,
                     tdb_import **out, tdb_error *err) {
    *out = NULL;
    tdb_import_options o = {0};
    if (opts) o = *opts;
    if (o.batch_docs == 0) o.batch_docs = TDB_IMPORT_DEFAULT_BATCH_DOCS;
    if (o.batch_docs > TDB_IMPORT_MAX_BATCH_DOCS)
        return tdb_err(err, TDB_EINVAL, "invalid_batch_size", "the batch size must be 1..%d documents",
                       TDB_IMPORT_MAX_BATCH_DOCS);
    if (o.max_line_bytes == 0) o.max_line_bytes = IMPORT_DEFAULT_MAX_LINE_BYTES;
    if (strlen(name) > DB_MAX_NAME_BYTES)
        return tdb_err(err, TDB_ENOTFOUND, "collection_not_found", "collection \"%.128s...\" does not exist",
                       name);
    tdb_import *imp = calloc(1, sizeof *imp);
    if (imp == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    int rc = db_coll_get(db, name, &imp->coll, err);
    if (rc) {
        free(imp);
        return rc;
    }
    imp->db = db;
    snprintf(imp->name, sizeof imp->name, "%s", name);
    imp->skip_errors = o.skip_errors;
    imp->batch_docs = o.batch_docs;
    imp->max_line_bytes = o.max_line_bytes;
    imp->slots = calloc(o.batch_docs, sizeof *imp->slots);
    imp->docs = calloc(o.batch_docs, sizeof *imp->docs);
    imp->scratch = malloc((imp->coll->dimension ? imp->coll->dimension : 1) * sizeof(float));
    if (!imp->slots || !imp->docs || !imp->scratch) {
        tdb_import_free(imp);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    }
    *out = imp;
    return 0;
}

bool tdb_import_stopped(const tdb_import *imp) { return imp->stopped; }

void tdb_import_stats_get(const tdb_import *imp, tdb_import_stats *out) {
    out->lines = imp->lines;
    out->imported = imp->imported;
    out->pending = imp->pending;
    out->skipped = imp->skipped;
    out->errors = imp->errors;
    out->stopped = imp->stopped && !imp->failed;
}

/* ---- the batch ---------------------------------------------------------- */

static size_t batch_bytes(const tdb_import *imp) {
    return imp->ids.len + imp->vectors.len + imp->attrs.len;
}

static void batch_reset(tdb_import *imp) {
    imp->pending = 0;
    buf_reset(&imp->ids);
    buf_reset(&imp->vectors);
    buf_reset(&imp->attrs);
}

/* Writes the pending documents as one atomic upsert (invariant 4). */
static int batch_commit(tdb_import *imp, tdb_error *err) {
    if (imp->pending == 0) return 0;
    if (buf_failed(&imp->ids) || buf_failed(&imp->vectors) || buf_failed(&imp->attrs))
        return import_fail(imp, TDB_ENOMEM, NULL, err);
    uint32_t dim = imp->coll->dimension;
    for (size_t i = 0; i < imp->pending; i++) {
        const import_slot *s = &imp->slots[i];
        imp->docs[i] = (st_doc){
            .id = imp->ids.data + s->id_off,
            .id_len = s->id_len,
            .vector = dim ? (const float *)(const void *)(imp->vectors.data + s->vec_off) : NULL,
            .attrs = imp->attrs.data + s->attr_off,
            .attrs_len = s->attr_len,
        };
    }
    db_coll *c = NULL;
    st_collection *st = NULL;
    tdb_error cause;
    int rc = db_coll_begin(imp->db, imp->name, &c, &st, &cause);
    if (rc == 0 && c != imp->coll)
        rc = tdb_err(&cause, TDB_ENOTFOUND, "collection_not_found",
                     "collection \"%s\" was deleted (and created again) during the import", imp->name);
    if (rc == TDB_ENOTFOUND && c == NULL)
        rc = tdb_err(&cause, TDB_ENOTFOUND, "collection_not_found",
                     "collection \"%s\" was deleted during the import", imp->name);
    if (rc == 0) rc = st_upsert(st, imp->docs, imp->pending, &cause);
    db_coll_end(c);
    if (rc) return import_fail(imp, rc, &cause, err);
    imp->imported += imp->pending;
    batch_reset(imp);
    return 0;
}

/* ---- one document ------------------------------------------------------- */

static const char *json_kind(const json_value *v) {
    switch (v->type) {
    case JSON_NULL: return "null";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NUMBER: return v->is_int ? "an integer" : "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    default: return "an object";
    }
}

static const char *attr_type_text(attr_type t) {
    switch (t) {
    case ATTR_STRING: return "string";
    case ATTR_INT: return "int";
    case ATTR_FLOAT: return "float";
    case ATTR_BOOL: return "bool";
    case ATTR_STRING_ARRAY: return "string[]";
    default: return "int[]";
    }
}

/* Does v have the declared type of a? null fits every type (an attribute
 * may be absent or null), as for upserts. */
static bool attr_accepts(const attr_decl *a, const json_value *v) {
    if (v->type == JSON_NULL) return true;
    bool scalar_int = v->type == JSON_NUMBER && v->is_int;
    switch (a->type) {
    case ATTR_STRING: return v->type == JSON_STRING;
    case ATTR_INT: return scalar_int;
    case ATTR_FLOAT: return v->type == JSON_NUMBER;
    case ATTR_BOOL: return v->type == JSON_TRUE || v->type == JSON_FALSE;
    case ATTR_STRING_ARRAY:
    case ATTR_INT_ARRAY: {
        if (v->type != JSON_ARRAY) return false;
        bool want_string = a->type == ATTR_STRING_ARRAY;
        for (const json_value *e = v->child; e; e = e->next) {
            bool ok = want_string ? e->type == JSON_STRING : (e->type == JSON_NUMBER && e->is_int);
            if (!ok) return false;
        }
        return true;
    }
    }
    return false;
}

static bool member_is(const json_value *m, const char *key, size_t key_len) {
    return m->key_len == key_len && memcmp(m->key, key, key_len) == 0;
}

/* Validates the document of one line (its parsed root) against the
 * collection's definition and appends it to the batch. Returns 0;
 * TDB_EINVAL with lerr saying what is wrong with the line; TDB_ENOMEM. */
static int import_read_document(tdb_import *imp, const json_value *root, const char *what,
                                tdb_error *lerr) {
    const db_coll *c = imp->coll;
    if (root->type != JSON_OBJECT)
        return tdb_err(lerr, TDB_EINVAL, "invalid_document",
                       "%s: a line must be a JSON object {\"id\": .., \"vector\": [..], \"attributes\": {..}}, "
                       "not %s",
                       what, json_kind(root));
    const json_value *id = NULL, *vec = NULL, *attrs = NULL;
    for (const json_value *m = root->child; m; m = m->next) {
        if (member_is(m, "id", 2)) id = m;
        else if (member_is(m, "vector", 6)) vec = m;
        else if (member_is(m, "attributes", 10)) attrs = m;
        else
            return tdb_err(lerr, TDB_EINVAL, "invalid_document",
                           "%s: unknown field \"%.100s\" (a document has id, vector and attributes)", what, m->key);
    }
    /* id: a string, or an integer stored as its decimal text. */
    if (id == NULL) return tdb_err(lerr, TDB_EINVAL, "invalid_id", "%s: \"id\" is required", what);
    if (!(id->type == JSON_STRING || (id->type == JSON_NUMBER && id->is_int)))
        return tdb_err(lerr, TDB_EINVAL, "invalid_id", "%s: \"id\" must be a string or an integer, not %s", what,
                       json_kind(id));
    if (id->len < 1 || id->len > ST_MAX_ID_BYTES)
        return tdb_err(lerr, TDB_EINVAL, "invalid_id", "%s: ids are 1..%d bytes of UTF-8 (this one has %u)", what,
                       ST_MAX_ID_BYTES, id->len);
    /* vector */
    if (c->dimension > 0) {
        if (vec == NULL)
            return tdb_err(lerr, TDB_EINVAL, "invalid_vector", "%s: \"vector\" is required (dimension %u)", what,
                           c->dimension);
        int rc = db_read_vector(vec, c->dimension, c->metric, imp->scratch, what, lerr);
        if (rc) return rc;
    } else if (vec != NULL && vec->type != JSON_NULL && !(vec->type == JSON_ARRAY && vec->len == 0)) {
        return tdb_err(lerr, TDB_EINVAL, "dimension_mismatch",
                       "%s: this collection has dimension 0 and takes no vector", what);
    }
    /* attributes */
    if (attrs != NULL && attrs->type != JSON_NULL) {
        if (attrs->type != JSON_OBJECT)
            return tdb_err(lerr, TDB_EINVAL, "invalid_attributes", "%s: \"attributes\" must be a JSON object, not %s",
                           what, json_kind(attrs));
        for (const json_value *a = attrs->child; a; a = a->next) {
            const attr_decl *decl = schema_find_attr(&c->schema, a->key, a->key_len);
            if (decl && !attr_accepts(decl, a))
                return tdb_err(lerr, TDB_EINVAL, "attribute_type_mismatch",
                               "%s: attribute \"%s\" is declared %s but the value is %s", what, decl->name,
                               attr_type_text(decl->type), json_kind(a));
        }
    }
    /* Valid: join the batch. */
    import_slot *s = &imp->slots[imp->pending];
    s->id_off = imp->ids.len;
    s->id_len = id->len;
    buf_append(&imp->ids, id->str, id->len);
    s->vec_off = imp->vectors.len;
    if (c->dimension > 0) buf_append(&imp->vectors, imp->scratch, (size_t)c->dimension * sizeof(float));
    s->attr_off = imp->attrs.len;
    if (attrs == NULL || attrs->type == JSON_NULL) buf_puts(&imp->attrs, "{}");
    else json_write_value(&imp->attrs, attrs);
    s->attr_len = (uint32_t)(imp->attrs.len - s->attr_off);
    if (buf_failed(&imp->ids) || buf_failed(&imp->vectors) || buf_failed(&imp->attrs))
        return tdb_err(lerr, TDB_ENOMEM, NULL, "out of memory");
    imp->pending++;
    return 0;
}

/* ---- lines -------------------------------------------------------------- */

/* Adds {"line": n, "message": ...} to the report (the first
 * TDB_IMPORT_MAX_ERRORS only; every error is counted). */
static void report_error(tdb_import *imp, uint64_t line, const char *message) {
    imp->errors++;
    if (imp->errors > TDB_IMPORT_MAX_ERRORS) return;
    buf *b = &imp->report_errors;
    if (b->len) buf_putc(b, ',');
    buf_printf(b, "{\"line\":%llu,\"message\":", (unsigned long long)line);
    size_t len = strlen(message);
    if (json_utf8_valid(message, len)) {
        json_write_string(b, message, len);
    } else {
        /* A message quoting bytes that are not UTF-8 would make the whole
         * report unreadable: show them as '?'. */
        char clean[sizeof ((tdb_error *)0)->message];
        size_t n = len < sizeof clean ? len : sizeof clean - 1;
        for (size_t i = 0; i < n; i++) clean[i] = (unsigned char)message[i] >= 0x80 ? '?' : message[i];
        json_write_string(b, clean, n);
    }
    buf_putc(b, '}');
}

/* A bad line: reported; skipped, or (abort) the lines before it are
 * committed and the import stops (invariant 3). */
static int line_rejected(tdb_import *imp, const char *message, tdb_error *err) {
    report_error(imp, imp->lines, message);
    if (imp->skip_errors) {
        imp->skipped++;
        return 0;
    }
    int rc = batch_commit(imp, err);
    imp->stopped = true;
    return rc;
}

static bool blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* One complete line (without its '\n'). */
static int import_line(tdb_import *imp, const char *line, size_t len, tdb_error *err) {
    imp->lines++;
    if (len > 0 && line[len - 1] == '\r') len--; /* CRLF files */
    if (imp->lines == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3; /* a UTF-8 byte order mark some editors write */
        len -= 3;
    }
    if (blank(line, len)) return 0;
    if (len > imp->max_line_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "the line is longer than %zu bytes (the limit for one document; "
                 "TIERDB_MAX_BODY_BYTES)", imp->max_line_bytes);
        return line_rejected(imp, msg, err);
    }
    json_doc *doc = NULL;
    json_error jerr;
    tdb_error lerr;
    tdb_err_clear(&lerr);
    char what[32];
    snprintf(what, sizeof what, "line %llu", (unsigned long long)imp->lines);
    int rc;
    /* The vector (a member of the line's object) is read straight into
     * floats; see docs.c. */
    json_parse_options opts = {.float_key = "vector", .float_depths = 1u << 0,
                               .float_count_hint = imp->coll->dimension};
    if (json_parse_ex(line, len, &opts, &doc, &jerr) != 0) {
        tdb_err(&lerr, TDB_EINVAL, "invalid_json", "%s: malformed JSON at byte %zu: %s", what, jerr.offset,
                jerr.message);
        rc = TDB_EINVAL;
    } else {
        rc = import_read_document(imp, json_root(doc), what, &lerr);
    }
    json_doc_free(doc);
    if (rc == TDB_ENOMEM) return import_fail(imp, rc, &lerr, err);
    if (rc) return line_rejected(imp, lerr.message, err);
    if (imp->pending >= imp->batch_docs || batch_bytes(imp) >= IMPORT_MAX_BATCH_BYTES)
        return batch_commit(imp, err);
    return 0;
}

/* Ends the line collected in imp->partial. */
static int partial_done(tdb_import *imp, tdb_error *err) {
    int rc;
    if (imp->partial_too_long) {
        imp->partial_too_long = false;
        imp->lines++;
        char msg[160];
        snprintf(msg, sizeof msg, "the line is longer than %zu bytes (the limit for one document; "
                 "TIERDB_MAX_BODY_BYTES)", imp->max_line_bytes);
        rc = line_rejected(imp, msg, err);
    } else if (buf_failed(&imp->partial)) {
        rc = import_fail(imp, TDB_ENOMEM, NULL, err);
    } else {
        rc = import_line(imp, imp->partial.data ? imp->partial.data : "", imp->partial.len, err);
    }
    if (imp->partial.cap > IMPORT_KEEP_LINE_BUFFER_BYTES) buf_free(&imp->partial);
    else buf_reset(&imp->partial);
    return rc;
}

int tdb_import_feed(tdb_import *imp, const char *data, size_t len, tdb_error *err) {
    if (imp->failed) return import_fail(imp, imp->failed, NULL, err);
    const char *p = data, *end = data + len;
    /* Invariant of the loop: [data, p) is consumed; imp->partial holds the
     * bytes of the current line that came before p (unless the line is
     * already over the limit, when they were dropped). */
    while (p < end && !imp->stopped) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        int rc = 0;
        if (imp->partial_too_long) {
            /* still discarding the rest of an over-long line */
        } else if (imp->partial.len + n > imp->max_line_bytes) {
            imp->partial_too_long = true;
            buf_reset(&imp->partial);
        } else if (nl && imp->partial.len == 0) {
            /* The whole line is in this piece: no copy. */
            rc = import_line(imp, p, n, err);
            if (rc) return rc;
            p = nl + 1;
            continue;
        } else {
            buf_append(&imp->partial, p, n);
        }
        if (nl) rc = partial_done(imp, err);
        if (rc) return rc;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

int tdb_import_line(tdb_import *imp, const char *line, size_t len, tdb_error *err) {
    if (imp->failed) return import_fail(imp, imp->failed, NULL, err);
    if (imp->stopped) return 0;
    return import_line(imp, line, len, err);
}

int tdb_import_end(tdb_import *imp, tdb_import_stats *final, char **out_json, tdb_error *err) {
    *out_json = NULL;
    int rc = imp->failed ? import_fail(imp, imp->failed, NULL, err) : 0;
    /* The last line needs no '\n'. */
    if (rc == 0 && !imp->stopped && (imp->partial.len > 0 || imp->partial_too_long))
        rc = partial_done(imp, err);
    if (rc == 0 && !imp->stopped) rc = batch_commit(imp, err);
    if (rc == 0) {
        buf b = BUF_INIT;
        buf_printf(&b, "{\"imported\":%llu,\"skipped\":%llu,\"errors\":[", (unsigned long long)imp->imported,
                   (unsigned long long)imp->skipped);
        if (imp->report_errors.len) buf_append(&b, imp->report_errors.data, imp->report_errors.len);
        buf_puts(&b, "]}");
        if (buf_failed(&b) || buf_failed(&imp->report_errors)) {
            buf_free(&b);
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory writing the import report (%llu documents "
                         "were imported)", (unsigned long long)imp->imported);
        } else {
            *out_json = buf_steal(&b);
        }
    }
    if (final) tdb_import_stats_get(imp, final);
    tdb_import_free(imp);
    return rc;
}
