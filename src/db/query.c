/*
 * query.c: the query route: vector search, filter-only listing, and (as
 * the text layer lands) text and hybrid search.
 * Layer: db. The whole body is validated before any search runs; the
 * storage view a search reads is released before the response is built
 * (st_search copies results out).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "filter/filter.h"
#include "util/clock.h"
#include "util/error.h"

typedef struct query_req {
    const json_value *vector;
    const json_value *text;
    const json_value *filter;
    size_t top_k;
    int ef;
    bool exact;
    bool include_vector;
    bool include_attrs;
    const json_value *attr_list; /* include.attributes as a list of names, or NULL */
} query_req;

static int parse_query(const json_value *root, query_req *q, tdb_error *err) {
    memset(q, 0, sizeof *q);
    q->top_k = DB_DEFAULT_TOP_K;
    q->include_attrs = true;
    if (root->type != JSON_OBJECT)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "the query body must be a JSON object");
    for (const json_value *f = root->child; f; f = f->next) {
        const char *k = f->key;
        if (strcmp(k, "vector") == 0) {
            q->vector = f->type == JSON_NULL ? NULL : f;
        } else if (strcmp(k, "text") == 0) {
            q->text = f->type == JSON_NULL ? NULL : f;
        } else if (strcmp(k, "filter") == 0) {
            q->filter = f->type == JSON_NULL ? NULL : f;
        } else if (strcmp(k, "top_k") == 0) {
            if (f->type != JSON_NUMBER || !f->is_int || f->i64 < 1 || f->i64 > DB_MAX_TOP_K)
                return tdb_err(err, TDB_EINVAL, "invalid_top_k", "top_k must be an integer in 1..%d",
                               DB_MAX_TOP_K);
            q->top_k = (size_t)f->i64;
        } else if (strcmp(k, "ef") == 0) {
            if (f->type != JSON_NUMBER || !f->is_int || f->i64 < 1 || f->i64 > 100000)
                return tdb_err(err, TDB_EINVAL, "invalid_ef", "ef must be an integer in 1..100000");
            q->ef = (int)f->i64;
        } else if (strcmp(k, "exact") == 0) {
            if (f->type != JSON_TRUE && f->type != JSON_FALSE)
                return tdb_err(err, TDB_EINVAL, "invalid_request", "exact must be a boolean");
            q->exact = f->type == JSON_TRUE;
        } else if (strcmp(k, "include") == 0) {
            if (f->type != JSON_OBJECT)
                return tdb_err(err, TDB_EINVAL, "invalid_request",
                               "include must be an object {\"attributes\": true|false|[names], "
                               "\"vector\": true|false}");
            for (const json_value *g = f->child; g; g = g->next) {
                if (strcmp(g->key, "vector") == 0 && (g->type == JSON_TRUE || g->type == JSON_FALSE)) {
                    q->include_vector = g->type == JSON_TRUE;
                } else if (strcmp(g->key, "attributes") == 0 &&
                           (g->type == JSON_TRUE || g->type == JSON_FALSE)) {
                    q->include_attrs = g->type == JSON_TRUE;
                } else if (strcmp(g->key, "attributes") == 0 && g->type == JSON_ARRAY) {
                    for (const json_value *e = g->child; e; e = e->next)
                        if (e->type != JSON_STRING)
                            return tdb_err(err, TDB_EINVAL, "invalid_request",
                                           "include.attributes must list attribute names (strings)");
                    q->include_attrs = true;
                    q->attr_list = g;
                } else {
                    return tdb_err(err, TDB_EINVAL, "invalid_request",
                                   "include.%s is not valid: use {\"attributes\": true|false|[names], "
                                   "\"vector\": true|false}",
                                   g->key);
                }
            }
        } else if (strcmp(k, "hybrid") == 0) {
            if (f->type != JSON_OBJECT)
                return tdb_err(err, TDB_EINVAL, "invalid_request", "hybrid must be an object");
        } else {
            return tdb_err(err, TDB_EINVAL, "invalid_request",
                           "unknown query field \"%s\" (expected vector, text, filter, top_k, ef, "
                           "exact, include, hybrid)",
                           k);
        }
    }
    return 0;
}

/* Writes the attributes of a result, all or only the listed names. */
static void write_attrs(buf *b, const st_record *r, const query_req *q) {
    if (!q->include_attrs) return;
    buf_puts(b, ",\"attributes\":");
    if (q->attr_list == NULL) {
        if (r->attrs && r->attrs_len) buf_append(b, r->attrs, r->attrs_len);
        else buf_puts(b, "{}");
        return;
    }
    json_doc *d = NULL;
    json_error je;
    buf_putc(b, '{');
    if (r->attrs && json_parse(r->attrs, r->attrs_len, &d, &je) == 0) {
        bool first = true;
        for (const json_value *want = q->attr_list->child; want; want = want->next) {
            const json_value *v = json_get(json_root(d), want->str);
            if (v == NULL || v->key_len != want->len) continue;
            if (!first) buf_putc(b, ',');
            first = false;
            json_write_string(b, want->str, want->len);
            buf_putc(b, ':');
            json_write_value(b, v);
        }
    }
    buf_putc(b, '}');
    json_doc_free(d);
}

static void write_vector(buf *b, const st_record *r, uint32_t dim, const query_req *q) {
    if (!q->include_vector || dim == 0 || r->vector == NULL) return;
    buf_puts(b, ",\"vector\":[");
    for (uint32_t i = 0; i < dim; i++) {
        if (i) buf_putc(b, ',');
        json_write_float(b, r->vector[i]);
    }
    buf_putc(b, ']');
}

int tdb_query_json(tdb_db *db, const char *name, const char *body, size_t body_len,
                   char **out_json, tdb_error *err) {
    uint64_t t0 = clock_mono_ns();
    *out_json = NULL;
    db_coll *c = NULL;
    st_collection *st;
    json_doc *doc = NULL;
    float *qvec = NULL;
    filter_expr *filter = NULL;
    st_hit *hits = NULL;
    st_record *recs = NULL;
    size_t n = 0;
    buf b = BUF_INIT;
    query_req q;
    int rc = db_coll_begin(db, name, &c, &st, err);
    if (rc) return rc;
    if ((rc = db_parse_body(body, body_len, &doc, err)) != 0) goto done;
    if ((rc = parse_query(json_root(doc), &q, err)) != 0) goto done;
    if (q.filter && (rc = filter_compile(q.filter, &filter, err)) != 0) goto done;
    if (q.text) {
        rc = tdb_err(err, TDB_EUNSUPPORTED, "unsupported",
                     "full-text queries are not available in this build yet; query by vector or "
                     "filter");
        goto done;
    }
    if (q.vector) {
        if (c->dimension == 0) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_vector",
                         "collection \"%s\" has dimension 0 and holds no vectors", name);
            goto done;
        }
        qvec = malloc(c->dimension * sizeof *qvec);
        if (qvec == NULL) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
            goto done;
        }
        if ((rc = db_read_vector(q.vector, c->dimension, c->metric, qvec, "query", err)) != 0)
            goto done;
        rc = st_search(st, qvec, q.top_k, filter ? filter_match_cb : NULL, filter, q.include_vector,
                       &hits, &n, err);
        if (rc) goto done;
        buf_puts(&b, "{\"results\":[");
        for (size_t i = 0; i < n; i++) {
            if (i) buf_putc(&b, ',');
            buf_puts(&b, "{\"id\":");
            json_write_string(&b, hits[i].rec.id, hits[i].rec.id_len);
            buf_puts(&b, ",\"distance\":");
            json_write_float(&b, hits[i].distance);
            write_attrs(&b, &hits[i].rec, &q);
            write_vector(&b, &hits[i].rec, c->dimension, &q);
            buf_putc(&b, '}');
        }
    } else {
        /* Filter-only (or empty) query: matching documents in id order. */
        rc = st_scan(st, NULL, 0, q.top_k, q.include_vector, filter ? filter_match_cb : NULL, filter,
                     &recs, &n, err);
        if (rc) goto done;
        buf_puts(&b, "{\"results\":[");
        for (size_t i = 0; i < n; i++) {
            if (i) buf_putc(&b, ',');
            buf_puts(&b, "{\"id\":");
            json_write_string(&b, recs[i].id, recs[i].id_len);
            write_attrs(&b, &recs[i], &q);
            write_vector(&b, &recs[i], c->dimension, &q);
            buf_putc(&b, '}');
        }
    }
    buf_puts(&b, "],\"took_ms\":");
    json_write_double(&b, (double)(clock_mono_ns() - t0) / 1e6);
    buf_printf(&b, ",\"tier\":\"%s\"}", tier_name(c->tier));
    if (buf_failed(&b)) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    *out_json = buf_steal(&b);
done:
    st_hits_free(hits, hits ? n : 0);
    st_records_free(recs, recs ? n : 0);
    buf_free(&b);
    free(qvec);
    filter_free(filter);
    json_doc_free(doc);
    db_coll_end(c);
    return rc;
}

#define DB_DELETE_PAGE 4096 /* ids deleted per WAL record in a delete by filter */

int db_delete_by_filter(db_coll *c, st_collection *st, const json_value *fv, size_t *deleted,
                        tdb_error *err) {
    (void)c;
    filter_expr *filter = NULL;
    int rc = filter_compile(fv, &filter, err);
    if (rc) return rc;
    *deleted = 0;
    /* Page through matches in id order, each page one atomic delete; the
     * cursor (the last id seen) guarantees progress. */
    char after[ST_MAX_ID_BYTES];
    uint32_t after_len = 0;
    bool first = true;
    for (;;) {
        st_record *recs = NULL;
        size_t n = 0;
        rc = st_scan(st, first ? NULL : after, after_len, DB_DELETE_PAGE, false, filter_match_cb,
                     filter, &recs, &n, err);
        first = false;
        if (rc || n == 0) {
            st_records_free(recs, n);
            break;
        }
        st_key *keys = malloc(n * sizeof *keys);
        if (keys == NULL) {
            st_records_free(recs, n);
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
            break;
        }
        for (size_t i = 0; i < n; i++) keys[i] = (st_key){recs[i].id, recs[i].id_len};
        size_t d = 0;
        rc = st_delete(st, keys, n, &d, err);
        memcpy(after, recs[n - 1].id, recs[n - 1].id_len);
        after_len = recs[n - 1].id_len;
        free(keys);
        st_records_free(recs, n);
        *deleted += d;
        if (rc || n < DB_DELETE_PAGE) break;
    }
    filter_free(filter);
    return rc;
}
