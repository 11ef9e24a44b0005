/*
 * docs.c: the document routes of the public API: upsert, get, delete and
 * paging, with the validation API.md asks for.
 * Layer: db. Validation happens in full before anything is written, so a
 * rejected request changes nothing; the storage engine then applies the
 * batch atomically.
 *
 * Vectors are read straight into floats by the parser (json_parse_ex, the
 * "vector" member of each document, and of a query body through
 * db_parse_body): a request of 1,000 x 128-d documents then holds 0.5 MB of
 * floats instead of 128,000 tree nodes. A vector the parser could not read
 * that way (a string element, NaN, a number beyond float32...) is an
 * ordinary array, checked element by element here with the same messages.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "util/error.h"

/* Where a document's vector sits in an upsert body: {"documents": [{"vector": ..}]}
 * (root object at depth 0, the array 1, each document 2). */
#define UPSERT_VECTOR_DEPTHS (1u << 2)
/* In a query body and an import line the vector is a member of the root. */
#define ROOT_VECTOR_DEPTHS (1u << 0)

static int parse_body(const char *body, size_t len, const json_parse_options *opts, json_doc **out,
                      tdb_error *err) {
    json_error jerr;
    if (body == NULL || len == 0)
        return tdb_err(err, TDB_EINVAL, "invalid_json", "the request body is empty; send a JSON object");
    if (json_parse_ex(body, len, opts, out, &jerr) != 0)
        return tdb_err(err, TDB_EINVAL, "invalid_json", "malformed JSON at byte %zu: %s", jerr.offset,
                       jerr.message);
    return 0;
}

/* Every body parsed here reads a root "vector" member as floats: a query's
 * vector; in the other bodies (collection, delete, restore) such a member
 * is an unknown field, refused by its name. */
int db_parse_body(const char *body, size_t len, json_doc **out, tdb_error *err) {
    json_parse_options opts = {.float_key = "vector", .float_depths = ROOT_VECTOR_DEPTHS};
    return parse_body(body, len, &opts, out, err);
}

int db_read_vector(const json_value *v, uint32_t dim, tdb_metric metric, float *out,
                   const char *what, tdb_error *err) {
    if (v == NULL || v->type != JSON_ARRAY)
        return tdb_err(err, TDB_EINVAL, "invalid_vector", "%s: \"vector\" must be an array of %u numbers",
                       what, dim);
    if (v->len != dim)
        return tdb_err(err, TDB_EINVAL, "dimension_mismatch",
                       "%s: the vector has %u values but the collection's dimension is %u", what,
                       v->len, dim);
    double norm = 0;
    const float *floats = json_floats(v);
    if (floats) {
        /* Read by the parser: finite float32 values, correctly rounded. */
        for (uint32_t i = 0; i < dim; i++) {
            float f = floats[i];
            out[i] = f;
            norm += (double)f * f;
        }
    }
    size_t i = 0;
    for (const json_value *e = floats ? NULL : v->child; e; e = e->next, i++) {
        if (e->type != JSON_NUMBER)
            return tdb_err(err, TDB_EINVAL, "invalid_vector", "%s: vector[%zu] is not a number", what, i);
        float f = json_number_float(e);
        if (!isfinite(f))
            return tdb_err(err, TDB_EINVAL, "invalid_vector",
                           "%s: vector[%zu] = %s is not a finite float32 (NaN and infinities are "
                           "rejected)",
                           what, i, e->str);
        out[i] = f;
        norm += (double)f * f;
    }
    if (metric == TDB_METRIC_COSINE && dim > 0 && norm == 0)
        return tdb_err(err, TDB_EINVAL, "zero_vector",
                       "%s: a zero vector has no direction, so cosine distance is undefined", what);
    return 0;
}

static const char *json_type_name(json_type t) {
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    default: return "object";
    }
}

static bool value_fits(const attr_decl *a, const json_value *v) {
    if (v->type == JSON_NULL) return true;
    switch (a->type) {
    case ATTR_STRING: return v->type == JSON_STRING;
    case ATTR_INT: return v->type == JSON_NUMBER && v->is_int;
    case ATTR_FLOAT: return v->type == JSON_NUMBER;
    case ATTR_BOOL: return v->type == JSON_TRUE || v->type == JSON_FALSE;
    case ATTR_STRING_ARRAY:
    case ATTR_INT_ARRAY:
        if (v->type != JSON_ARRAY) return false;
        for (const json_value *e = v->child; e; e = e->next) {
            if (a->type == ATTR_STRING_ARRAY && e->type != JSON_STRING) return false;
            if (a->type == ATTR_INT_ARRAY && !(e->type == JSON_NUMBER && e->is_int)) return false;
        }
        return true;
    }
    return false;
}

static const char *const attr_type_label[] = {"string", "int", "float", "bool", "string[]", "int[]"};

/* Reads the id of documents[i] (string or integer). */
static int read_id(const json_value *v, size_t i, const char **id, uint32_t *len, tdb_error *err) {
    if (v == NULL)
        return tdb_err(err, TDB_EINVAL, "invalid_id", "documents[%zu]: \"id\" is required", i);
    if (v->type == JSON_STRING) {
        *id = v->str;
        *len = v->len;
    } else if (v->type == JSON_NUMBER && v->is_int) {
        *id = v->str; /* the raw decimal text */
        *len = v->len;
    } else {
        return tdb_err(err, TDB_EINVAL, "invalid_id",
                       "documents[%zu]: \"id\" must be a string or an integer", i);
    }
    if (*len < 1 || *len > ST_MAX_ID_BYTES)
        return tdb_err(err, TDB_EINVAL, "invalid_id",
                       "documents[%zu]: ids are 1..%d bytes of UTF-8 (this one has %u)", i,
                       ST_MAX_ID_BYTES, *len);
    return 0;
}

/* Validates documents[] of an upsert into docs/vectors/attrs (attribute
 * text is written into attr_text; docs[i].attrs point into it after). */
static int read_documents(db_coll *c, const json_value *arr, st_doc *docs, float *vectors,
                          buf *attr_text, size_t *attr_offsets, tdb_error *err) {
    size_t i = 0;
    char what[48];
    for (const json_value *d = arr->child; d; d = d->next, i++) {
        if (d->type != JSON_OBJECT)
            return tdb_err(err, TDB_EINVAL, "invalid_document", "documents[%zu] must be an object", i);
        const json_value *idv = NULL, *vec = NULL, *attrs = NULL;
        for (const json_value *f = d->child; f; f = f->next) {
            if (strcmp(f->key, "id") == 0 && f->key_len == 2) idv = f;
            else if (strcmp(f->key, "vector") == 0 && f->key_len == 6) vec = f;
            else if (strcmp(f->key, "attributes") == 0 && f->key_len == 10) attrs = f;
            else
                return tdb_err(err, TDB_EINVAL, "invalid_document",
                               "documents[%zu]: unknown field \"%s\" (expected id, vector, "
                               "attributes)",
                               i, f->key);
        }
        int rc = read_id(idv, i, &docs[i].id, &docs[i].id_len, err);
        if (rc) return rc;
        snprintf(what, sizeof what, "documents[%zu]", i);
        if (c->dimension > 0) {
            if (vec == NULL)
                return tdb_err(err, TDB_EINVAL, "invalid_vector",
                               "documents[%zu]: \"vector\" is required (dimension %u)", i,
                               c->dimension);
            float *out = vectors + i * (size_t)c->dimension;
            if ((rc = db_read_vector(vec, c->dimension, c->metric, out, what, err)) != 0) return rc;
            docs[i].vector = out;
        } else if (vec != NULL && !(vec->type == JSON_NULL ||
                                    (vec->type == JSON_ARRAY && vec->len == 0))) {
            return tdb_err(err, TDB_EINVAL, "dimension_mismatch",
                           "documents[%zu]: this collection has dimension 0 and takes no vector", i);
        }
        attr_offsets[i] = attr_text->len;
        if (attrs == NULL || attrs->type == JSON_NULL) {
            buf_puts(attr_text, "{}");
        } else {
            if (attrs->type != JSON_OBJECT)
                return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                               "documents[%zu]: \"attributes\" must be a JSON object", i);
            for (const json_value *a = attrs->child; a; a = a->next) {
                const attr_decl *decl = schema_find_attr(&c->schema, a->key, a->key_len);
                if (decl && !value_fits(decl, a))
                    return tdb_err(err, TDB_EINVAL, "attribute_type_mismatch",
                                   "documents[%zu]: attribute \"%s\" is declared %s but the value "
                                   "is a %s",
                                   i, a->key, attr_type_label[decl->type], json_type_name(a->type));
            }
            json_write_value(attr_text, attrs);
        }
        docs[i].attrs_len = (uint32_t)(attr_text->len - attr_offsets[i]);
    }
    return 0;
}

int tdb_upsert_json(tdb_db *db, const char *name, const char *body, size_t body_len,
                    size_t *upserted, tdb_error *err) {
    *upserted = 0;
    db_coll *c = NULL;
    st_collection *st;
    json_doc *doc = NULL;
    st_doc *docs = NULL;
    float *vectors = NULL;
    size_t *offsets = NULL;
    buf attr_text = BUF_INIT;
    int rc = db_coll_begin(db, name, &c, &st, err);
    if (rc) return rc;
    json_parse_options opts = {.float_key = "vector", .float_depths = UPSERT_VECTOR_DEPTHS,
                               .float_count_hint = c->dimension};
    if ((rc = parse_body(body, body_len, &opts, &doc, err)) != 0) goto done;
    const json_value *root = json_root(doc);
    const json_value *arr = root->type == JSON_OBJECT ? json_get(root, "documents") : NULL;
    if (arr == NULL || arr->type != JSON_ARRAY) {
        rc = tdb_err(err, TDB_EINVAL, "invalid_request",
                     "the body must be {\"documents\": [{\"id\": .., \"vector\": [..], "
                     "\"attributes\": {..}}, ..]}");
        goto done;
    }
    for (const json_value *f = root->child; f; f = f->next)
        if (!(f->key_len == 9 && memcmp(f->key, "documents", 9) == 0)) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_request", "unknown field \"%s\" (expected documents)",
                         f->key);
            goto done;
        }
    size_t n = arr->len;
    if (n == 0) goto done;
    docs = calloc(n, sizeof *docs);
    offsets = calloc(n, sizeof *offsets);
    vectors = malloc((size_t)n * (c->dimension ? c->dimension : 1) * sizeof(float));
    if (!docs || !offsets || !vectors) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    if ((rc = read_documents(c, arr, docs, vectors, &attr_text, offsets, err)) != 0) goto done;
    if (buf_failed(&attr_text)) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) docs[i].attrs = attr_text.data + offsets[i];
    if ((rc = st_upsert(st, docs, n, err)) != 0) goto done;
    *upserted = n;
done:
    buf_free(&attr_text);
    free(docs);
    free(offsets);
    free(vectors);
    json_doc_free(doc);
    db_coll_end(c);
    return rc;
}

int tdb_upsert(tdb_db *db, const char *name, const tdb_doc *in, size_t count, tdb_error *err) {
    db_coll *c = NULL;
    st_collection *st;
    int rc = db_coll_begin(db, name, &c, &st, err);
    if (rc) return rc;
    st_doc *docs = calloc(count ? count : 1, sizeof *docs);
    if (docs == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        if (in[i].id_len < 1 || in[i].id_len > ST_MAX_ID_BYTES || !json_utf8_valid(in[i].id, in[i].id_len)) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_id", "docs[%zu]: ids are 1..%d bytes of UTF-8", i,
                         ST_MAX_ID_BYTES);
            goto done;
        }
        if (c->dimension > 0) {
            if (in[i].vector == NULL) {
                rc = tdb_err(err, TDB_EINVAL, "invalid_vector", "docs[%zu]: a vector is required", i);
                goto done;
            }
            double norm = 0;
            for (uint32_t k = 0; k < c->dimension; k++) {
                if (!isfinite(in[i].vector[k])) {
                    rc = tdb_err(err, TDB_EINVAL, "invalid_vector", "docs[%zu]: vector[%u] is not finite",
                                 i, k);
                    goto done;
                }
                norm += (double)in[i].vector[k] * in[i].vector[k];
            }
            if (c->metric == TDB_METRIC_COSINE && norm == 0) {
                rc = tdb_err(err, TDB_EINVAL, "zero_vector", "docs[%zu]: zero vector with cosine", i);
                goto done;
            }
        }
        if (in[i].attributes_json) {
            json_doc *d = NULL;
            json_error je;
            if (json_parse(in[i].attributes_json, in[i].attributes_len, &d, &je) != 0 ||
                json_root(d)->type != JSON_OBJECT) {
                json_doc_free(d);
                rc = tdb_err(err, TDB_EINVAL, "invalid_attributes",
                             "docs[%zu]: attributes must be a JSON object", i);
                goto done;
            }
            json_doc_free(d);
        }
        docs[i] = (st_doc){in[i].id, (uint32_t)in[i].id_len, c->dimension ? in[i].vector : NULL,
                           in[i].attributes_json, (uint32_t)in[i].attributes_len};
    }
    rc = st_upsert(st, docs, count, err);
done:
    free(docs);
    db_coll_end(c);
    return rc;
}

void db_write_doc(buf *b, const st_record *r, uint32_t dim, bool with_vector) {
    buf_puts(b, "{\"id\":");
    json_write_string(b, r->id, r->id_len);
    if (with_vector && dim > 0 && r->vector) {
        buf_puts(b, ",\"vector\":[");
        for (uint32_t i = 0; i < dim; i++) {
            if (i) buf_putc(b, ',');
            json_write_float(b, r->vector[i]);
        }
        buf_putc(b, ']');
    }
    buf_puts(b, ",\"attributes\":");
    if (r->attrs && r->attrs_len) buf_append(b, r->attrs, r->attrs_len);
    else buf_puts(b, "{}");
    buf_putc(b, '}');
}

int tdb_get_json(tdb_db *db, const char *name, const char *id, size_t id_len, char **out_json,
                 tdb_error *err) {
    *out_json = NULL;
    db_coll *c = NULL;
    st_collection *st;
    int rc = db_coll_begin(db, name, &c, &st, err);
    if (rc) return rc;
    st_record r = {0};
    buf b = BUF_INIT;
    if (id_len < 1 || id_len > ST_MAX_ID_BYTES) {
        rc = tdb_err(err, TDB_ENOTFOUND, "document_not_found", "document not found (ids are 1..%d bytes)",
                     ST_MAX_ID_BYTES);
        goto done;
    }
    rc = st_get(st, id, (uint32_t)id_len, true, &r, err);
    if (rc == TDB_ENOTFOUND) {
        rc = tdb_err(err, TDB_ENOTFOUND, "document_not_found",
                     "document \"%.*s\" does not exist in collection \"%s\"",
                     (int)(id_len > 128 ? 128 : id_len), id, name);
        goto done;
    }
    if (rc) goto done;
    db_write_doc(&b, &r, c->dimension, true);
    if (buf_failed(&b)) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    *out_json = buf_steal(&b);
done:
    st_record_free(&r);
    buf_free(&b);
    db_coll_end(c);
    return rc;
}

int tdb_delete(tdb_db *db, const char *name, const char *id, size_t id_len, size_t *deleted,
               tdb_error *err) {
    *deleted = 0;
    db_coll *c = NULL;
    st_collection *st;
    int rc = db_coll_begin(db, name, &c, &st, err);
    if (rc) return rc;
    if (id_len >= 1 && id_len <= ST_MAX_ID_BYTES) {
        st_key k = {id, (uint32_t)id_len};
        rc = st_delete(st, &k, 1, deleted, err);
    }
    db_coll_end(c);
    return rc;
}

int tdb_delete_json(tdb_db *db, const char *name, const char *body, size_t body_len,
                    size_t *deleted, tdb_error *err) {
    *deleted = 0;
    db_coll *c = NULL;
    st_collection *st;
    json_doc *doc = NULL;
    st_key *keys = NULL;
    int rc = db_coll_begin(db, name, &c, &st, err);
    if (rc) return rc;
    if ((rc = db_parse_body(body, body_len, &doc, err)) != 0) goto done;
    const json_value *root = json_root(doc);
    const json_value *ids = root->type == JSON_OBJECT ? json_get(root, "ids") : NULL;
    const json_value *filter = root->type == JSON_OBJECT ? json_get(root, "filter") : NULL;
    if ((ids == NULL) == (filter == NULL) || root->len != 1) {
        rc = tdb_err(err, TDB_EINVAL, "invalid_request",
                     "the body must be {\"ids\": [..]} or {\"filter\": {..}}");
        goto done;
    }
    if (filter) {
        rc = db_delete_by_filter(c, st, filter, deleted, err);
        goto done;
    }
    if (ids->type != JSON_ARRAY) {
        rc = tdb_err(err, TDB_EINVAL, "invalid_request", "\"ids\" must be an array of ids");
        goto done;
    }
    keys = calloc(ids->len ? ids->len : 1, sizeof *keys);
    if (keys == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    size_t i = 0;
    for (const json_value *v = ids->child; v; v = v->next, i++) {
        const char *id;
        uint32_t len;
        if ((rc = read_id(v, i, &id, &len, err)) != 0) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_id", "ids[%zu] must be a string or integer of 1..%d bytes",
                         i, ST_MAX_ID_BYTES);
            goto done;
        }
        keys[i] = (st_key){id, len};
    }
    if (i > 0) rc = st_delete(st, keys, i, deleted, err);
done:
    free(keys);
    json_doc_free(doc);
    db_coll_end(c);
    return rc;
}

/* Cursor: the hex of the last id returned (opaque to clients). */
static void cursor_write(buf *b, const char *id, uint32_t len) {
    static const char hex[] = "0123456789abcdef";
    buf_putc(b, '"');
    for (uint32_t i = 0; i < len; i++) {
        buf_putc(b, hex[(uint8_t)id[i] >> 4]);
        buf_putc(b, hex[(uint8_t)id[i] & 15]);
    }
    buf_putc(b, '"');
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

static int cursor_read(const char *cursor, char *out, uint32_t *len, tdb_error *err) {
    size_t n = strlen(cursor);
    if (n == 0 || n % 2 || n / 2 > ST_MAX_ID_BYTES)
        return tdb_err(err, TDB_EINVAL, "invalid_cursor",
                       "the cursor is not one this server returned; start again without a cursor");
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(cursor[i]), lo = hexval(cursor[i + 1]);
        if (hi < 0 || lo < 0)
            return tdb_err(err, TDB_EINVAL, "invalid_cursor",
                           "the cursor is not one this server returned; start again without a cursor");
        out[i / 2] = (char)(hi << 4 | lo);
    }
    *len = (uint32_t)(n / 2);
    return 0;
}

int tdb_list_json(tdb_db *db, const char *name, size_t limit, const char *cursor,
                  bool include_vectors, char **out_json, tdb_error *err) {
    *out_json = NULL;
    if (limit < 1 || limit > DB_MAX_LIST_LIMIT)
        return tdb_err(err, TDB_EINVAL, "invalid_limit", "limit must be in 1..%d", DB_MAX_LIST_LIMIT);
    char after[ST_MAX_ID_BYTES];
    uint32_t after_len = 0;
    if (cursor && *cursor) {
        int rc = cursor_read(cursor, after, &after_len, err);
        if (rc) return rc;
    }
    db_coll *c = NULL;
    st_collection *st;
    int rc = db_coll_begin(db, name, &c, &st, err);
    if (rc) return rc;
    st_record *recs = NULL;
    size_t n = 0;
    buf b = BUF_INIT;
    /* One more than asked tells whether another page exists. */
    rc = st_scan(st, cursor && *cursor ? after : NULL, after_len, limit + 1, include_vectors, NULL,
                 NULL, &recs, &n, err);
    if (rc) goto done;
    size_t shown = n > limit ? limit : n;
    buf_puts(&b, "{\"documents\":[");
    for (size_t i = 0; i < shown; i++) {
        if (i) buf_putc(&b, ',');
        db_write_doc(&b, &recs[i], c->dimension, include_vectors);
    }
    buf_puts(&b, "],\"next_cursor\":");
    if (n > limit) cursor_write(&b, recs[shown - 1].id, recs[shown - 1].id_len);
    else buf_puts(&b, "null");
    buf_putc(&b, '}');
    if (buf_failed(&b)) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    *out_json = buf_steal(&b);
done:
    st_records_free(recs, n);
    buf_free(&b);
    db_coll_end(c);
    return rc;
}
