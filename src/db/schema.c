/*
 * schema.c: collection definitions: validating a create request, the
 * canonical config stored in the catalog, and writing it back out.
 * Layer: db.
 *
 * The canonical config is {"attributes": {...}, "index": {...}} with every
 * default filled in, so what GET returns never depends on what a client
 * left out. Unknown fields are rejected rather than ignored: a typo such
 * as "dimensions" must not silently create a collection the user did not
 * ask for.
 */
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "text/analyzer.h"
#include "util/error.h"

static const char *const attr_type_names[] = {"string", "int", "float", "bool", "string[]", "int[]"};

const char *metric_name(tdb_metric m) {
    switch (m) {
    case TDB_METRIC_L2: return "l2";
    case TDB_METRIC_DOT: return "dot";
    default: return "cosine";
    }
}

const char *tier_name(tdb_tier t) {
    switch (t) {
    case TDB_TIER_WARM: return "warm";
    case TDB_TIER_COLD: return "cold";
    default: return "hot";
    }
}

bool schema_name_valid(const char *name, size_t len) {
    if (len < 1 || len > DB_MAX_NAME_BYTES || name[0] == '.') return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '.' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

static bool key_is(const json_value *m, const char *k) {
    return m->key_len == strlen(k) && memcmp(m->key, k, m->key_len) == 0;
}

static int parse_full_text(const json_value *v, attr_decl *a, tdb_error *err) {
    a->full_text = false;
    a->stemming = false;
    a->stopwords = false;
    if (v->type == JSON_FALSE || v->type == JSON_NULL) return 0;
    if (v->type == JSON_TRUE) {
        a->full_text = true;
        return 0;
    }
    if (v->type != JSON_OBJECT)
        return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                       "attribute \"%s\": full_text must be true, false or an object", a->name);
    a->full_text = true;
    bool stemming_set = false;
    for (const json_value *m = v->child; m; m = m->next) {
        if (key_is(m, "language")) {
            if (m->type == JSON_NULL) continue;
            if (m->type != JSON_STRING || m->len == 0 || m->len > 64 || memchr(m->str, 0, m->len))
                return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                               "attribute \"%s\": full_text.language must be a language name such "
                               "as \"english\"",
                               a->name);
            free(a->language);
            a->language = strdup(m->str);
        } else if (key_is(m, "stemming") || key_is(m, "stopwords")) {
            if (m->type != JSON_TRUE && m->type != JSON_FALSE)
                return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                               "attribute \"%s\": full_text.%s must be a boolean", a->name, m->key);
            if (key_is(m, "stemming")) {
                a->stemming = m->type == JSON_TRUE;
                stemming_set = true;
            } else {
                a->stopwords = m->type == JSON_TRUE;
            }
        } else {
            return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                           "attribute \"%s\": unknown full_text field \"%s\" (expected language, "
                           "stemming, stopwords)",
                           a->name, m->key);
        }
    }
    /* API.md: stemming defaults to true when a language is set. */
    if (!stemming_set) a->stemming = a->language != NULL;
    /* Refuse now what the analyzer would refuse on every later request. */
    text_analyzer_config cfg = {a->language, a->language != NULL && a->stemming,
                                a->language != NULL && a->stopwords};
    text_analyzer *an = NULL;
    tdb_error aerr;
    if (text_analyzer_new(&cfg, &an, &aerr) != 0)
        return tdb_err(err, TDB_EINVAL, "invalid_attributes", "attribute \"%s\": %s", a->name,
                       aerr.message);
    text_analyzer_free(an);
    return 0;
}

static int parse_attributes(const json_value *v, coll_schema *s, tdb_error *err) {
    if (v->type == JSON_NULL) return 0;
    if (v->type != JSON_OBJECT)
        return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                       "\"attributes\" must be an object of name -> {\"type\": ...}");
    if (v->len > DB_MAX_ATTRIBUTES)
        return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                       "at most %d attributes can be declared", DB_MAX_ATTRIBUTES);
    s->attrs = calloc(v->len ? v->len : 1, sizeof *s->attrs);
    if (s->attrs == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    for (const json_value *m = v->child; m; m = m->next) {
        if (m->key_len == 0 || memchr(m->key, 0, m->key_len))
            return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                           "attribute names must be non-empty strings without U+0000");
        if (schema_find_attr(s, m->key, m->key_len))
            return tdb_err(err, TDB_EINVAL, "invalid_attributes", "attribute \"%s\" declared twice",
                           m->key);
        attr_decl *a = &s->attrs[s->attr_count++];
        a->name = strdup(m->key);
        if (a->name == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        if (m->type != JSON_OBJECT)
            return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                           "attribute \"%s\" must be an object such as {\"type\": \"string\"}",
                           a->name);
        const json_value *type = json_get(m, "type");
        if (type == NULL || type->type != JSON_STRING)
            return tdb_err(err, TDB_EINVAL, "invalid_attribute_type",
                           "attribute \"%s\" needs a \"type\": one of string, int, float, bool, "
                           "string[], int[]",
                           a->name);
        int t = -1;
        for (int i = 0; i < 6; i++)
            if (strcmp(type->str, attr_type_names[i]) == 0) t = i;
        if (t < 0 || strlen(type->str) != type->len)
            return tdb_err(err, TDB_EINVAL, "invalid_attribute_type",
                           "attribute \"%s\": unknown type \"%s\" (expected string, int, float, "
                           "bool, string[] or int[])",
                           a->name, type->str);
        a->type = (attr_type)t;
        for (const json_value *f = m->child; f; f = f->next) {
            if (key_is(f, "type")) continue;
            if (key_is(f, "full_text")) {
                int rc = parse_full_text(f, a, err);
                if (rc) return rc;
                if (a->full_text && a->type != ATTR_STRING && a->type != ATTR_STRING_ARRAY)
                    return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                                   "attribute \"%s\": full_text needs type string or string[]",
                                   a->name);
                continue;
            }
            return tdb_err(err, TDB_EINVAL, "invalid_attributes",
                           "attribute \"%s\": unknown field \"%s\" (expected type, full_text)",
                           a->name, f->key);
        }
    }
    return 0;
}

static int parse_int_field(const json_value *f, int lo, int hi, int *out, tdb_error *err) {
    if (f->type != JSON_NUMBER || !f->is_int || f->i64 < lo || f->i64 > hi)
        return tdb_err(err, TDB_EINVAL, "invalid_index", "index.%s must be an integer in %d..%d",
                       f->key, lo, hi);
    *out = (int)f->i64;
    return 0;
}

static int parse_index(const json_value *v, coll_schema *s, tdb_error *err) {
    if (v->type == JSON_NULL) return 0;
    if (v->type != JSON_OBJECT)
        return tdb_err(err, TDB_EINVAL, "invalid_index", "\"index\" must be an object");
    for (const json_value *f = v->child; f; f = f->next) {
        int rc = 0;
        if (key_is(f, "type")) {
            if (f->type != JSON_STRING || strcmp(f->str, "hnsw") != 0)
                return tdb_err(err, TDB_EINVAL, "invalid_index",
                               "index.type must be \"hnsw\" (the only index type)");
        } else if (key_is(f, "m")) {
            rc = parse_int_field(f, DB_MIN_HNSW_M, DB_MAX_HNSW_M, &s->hnsw_m, err);
        } else if (key_is(f, "ef_construction")) {
            rc = parse_int_field(f, 1, DB_MAX_EF_CONSTRUCTION, &s->ef_construction, err);
        } else if (key_is(f, "quantization")) {
            if (f->type != JSON_STRING ||
                (strcmp(f->str, "none") && strcmp(f->str, "sq8") && strcmp(f->str, "rabitq")) ||
                strlen(f->str) != f->len)
                return tdb_err(err, TDB_EINVAL, "invalid_quantization",
                               "index.quantization must be \"none\", \"sq8\" or \"rabitq\"");
            strcpy(s->quantization, f->str);
        } else {
            return tdb_err(err, TDB_EINVAL, "invalid_index",
                           "unknown index field \"%s\" (expected type, m, ef_construction, "
                           "quantization)",
                           f->key);
        }
        if (rc) return rc;
    }
    return 0;
}

static void schema_defaults(coll_schema *s) {
    memset(s, 0, sizeof *s);
    s->hnsw_m = DB_DEFAULT_HNSW_M;
    s->ef_construction = DB_DEFAULT_EF_CONSTRUCTION;
    strcpy(s->quantization, "none");
}

int schema_parse_create(const json_value *root, char name[DB_MAX_NAME_BYTES + 1],
                        uint32_t *dimension, tdb_metric *metric, coll_schema *s, tdb_error *err) {
    schema_defaults(s);
    int rc;
    if (root->type != JSON_OBJECT)
        return tdb_err(err, TDB_EINVAL, "invalid_request",
                       "the body must be a JSON object {\"name\", \"dimension\", \"metric\", ...}");
    const json_value *n = json_get(root, "name");
    if (n == NULL || n->type != JSON_STRING)
        return tdb_err(err, TDB_EINVAL, "invalid_name", "\"name\" is required and must be a string");
    if (!schema_name_valid(n->str, n->len))
        return tdb_err(err, TDB_EINVAL, "invalid_name",
                       "collection names are 1..128 characters of A-Z a-z 0-9 _ . - and do not "
                       "start with '.'");
    memcpy(name, n->str, n->len);
    name[n->len] = '\0';
    const json_value *d = json_get(root, "dimension");
    if (d == NULL || d->type != JSON_NUMBER || !d->is_int || d->i64 < 0 ||
        d->i64 > ST_MAX_DIMENSION)
        return tdb_err(err, TDB_EINVAL, "invalid_dimension",
                       "\"dimension\" must be an integer in 0..%d (0 for a text-only collection)",
                       ST_MAX_DIMENSION);
    *dimension = (uint32_t)d->i64;
    *metric = TDB_METRIC_COSINE;
    const json_value *m = json_get(root, "metric");
    if (m != NULL) {
        if (m->type != JSON_STRING)
            return tdb_err(err, TDB_EINVAL, "invalid_metric",
                           "\"metric\" must be \"cosine\", \"l2\" or \"dot\"");
        if (strcmp(m->str, "cosine") == 0) *metric = TDB_METRIC_COSINE;
        else if (strcmp(m->str, "l2") == 0) *metric = TDB_METRIC_L2;
        else if (strcmp(m->str, "dot") == 0) *metric = TDB_METRIC_DOT;
        else
            return tdb_err(err, TDB_EINVAL, "invalid_metric",
                           "unknown metric \"%s\": use \"cosine\", \"l2\" or \"dot\"", m->str);
    }
    for (const json_value *f = root->child; f; f = f->next) {
        if (key_is(f, "name") || key_is(f, "dimension") || key_is(f, "metric")) continue;
        if (key_is(f, "attributes")) {
            if ((rc = parse_attributes(f, s, err)) != 0) return rc;
        } else if (key_is(f, "index")) {
            if ((rc = parse_index(f, s, err)) != 0) return rc;
        } else {
            return tdb_err(err, TDB_EINVAL, "invalid_request",
                           "unknown field \"%s\" (expected name, dimension, metric, attributes, "
                           "index)",
                           f->key);
        }
    }
    return 0;
}

int schema_parse_config(const char *config, coll_schema *s, tdb_error *err) {
    schema_defaults(s);
    json_doc *doc = NULL;
    json_error jerr;
    if (json_parse(config, strlen(config), &doc, &jerr) != 0)
        return tdb_err(err, TDB_ECORRUPT, "catalog_error", "catalog config is not JSON: %s",
                       jerr.message);
    const json_value *root = json_root(doc);
    int rc = 0;
    const json_value *a = json_get(root, "attributes");
    const json_value *i = json_get(root, "index");
    if (a && (rc = parse_attributes(a, s, err)) != 0) goto done;
    if (i && (rc = parse_index(i, s, err)) != 0) goto done;
done:
    json_doc_free(doc);
    return rc;
}

void schema_write_attributes(buf *b, const coll_schema *s) {
    buf_putc(b, '{');
    for (size_t i = 0; i < s->attr_count; i++) {
        const attr_decl *a = &s->attrs[i];
        if (i) buf_putc(b, ',');
        json_write_string(b, a->name, strlen(a->name));
        buf_printf(b, ":{\"type\":\"%s\"", attr_type_names[a->type]);
        if (a->full_text) {
            buf_puts(b, ",\"full_text\":{\"language\":");
            if (a->language) json_write_string(b, a->language, strlen(a->language));
            else buf_puts(b, "null");
            buf_printf(b, ",\"stemming\":%s,\"stopwords\":%s}", a->stemming ? "true" : "false",
                       a->stopwords ? "true" : "false");
        }
        buf_putc(b, '}');
    }
    buf_putc(b, '}');
}

void schema_write_index(buf *b, const coll_schema *s) {
    buf_printf(b, "{\"type\":\"hnsw\",\"m\":%d,\"ef_construction\":%d,\"quantization\":\"%s\"}",
               s->hnsw_m, s->ef_construction, s->quantization);
}

void schema_write_config(buf *b, const coll_schema *s) {
    buf_puts(b, "{\"attributes\":");
    schema_write_attributes(b, s);
    buf_puts(b, ",\"index\":");
    schema_write_index(b, s);
    buf_putc(b, '}');
}

void schema_free(coll_schema *s) {
    for (size_t i = 0; i < s->attr_count; i++) {
        free(s->attrs[i].name);
        free(s->attrs[i].language);
    }
    free(s->attrs);
    s->attrs = NULL;
    s->attr_count = 0;
}

const attr_decl *schema_find_attr(const coll_schema *s, const char *name, size_t len) {
    for (size_t i = 0; i < s->attr_count; i++)
        if (s->attrs[i].name && strlen(s->attrs[i].name) == len &&
            memcmp(s->attrs[i].name, name, len) == 0)
            return &s->attrs[i];
    return NULL;
}
