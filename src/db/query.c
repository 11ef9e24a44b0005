/*
 * query.c: the query route: vector search (approximate, or exact on
 * request), BM25 full-text search, hybrid vector + text fused by
 * reciprocal rank fusion or by a weighted sum, and filter-only listing.
 * Layer: db. The whole body is validated before any search runs; the
 * storage view a search reads is released before the response is built
 * (st_search_ex / st_search_text copy results out). docs/api.md, "Query".
 *
 * Hybrid. Each side is searched alone, with the filter, to a depth of
 * DB_HYBRID_DEPTH(top_k, k) documents, then fused:
 *   rrf:      score = sum over the lists holding the document of
 *             1 / (k + rank), ranks from 1 (k default 60);
 *   weighted: score = w * v + (1 - w) * t, where v and t are the document's
 *             vector and text scores min-max normalized over the fetched
 *             list (v = (d_max - d) / (d_max - d_min) on distances, t =
 *             (s - s_min) / (s_max - s_min) on BM25 scores; a list whose
 *             values are all equal gives 1), 0 for a list that lacks the
 *             document; w = vector_weight (default 0.7).
 * Ties go by id. Why the RRF depth is enough: a document outside the top
 * D of both lists scores under 2 / (k + D + 1), while top_k documents each
 * score at least 1 / (k + top_k) from one list alone; D = 2 top_k + k
 * makes the first smaller, so the fused top_k holds exactly the documents
 * it would with unbounded lists (a document seen in one list only may be
 * missing the other list's small share, under 1 / (k + D)).
 *
 * Filters reach storage as attrcol_filter_cb: rows of segments with typed
 * attribute columns are answered from the columns (the filter is evaluated
 * once per segment and query), every other row from its JSON; the answers
 * are the same either way (storage/attrcol.h, docs/filter.md).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db_int.h"
#include "filter/filter.h"
#include "storage/attrcol.h"
#include "util/clock.h"
#include "util/error.h"

/* RRF's k when the query gives none (the RRF paper's and Elasticsearch's). */
#define DB_RRF_DEFAULT_K 60.0
/* Largest RRF k accepted: beyond it every rank scores the same. */
#define DB_RRF_MAX_K 1e6
#define DB_DEFAULT_VECTOR_WEIGHT 0.7
/* Each side of a hybrid query fetches at least this many documents, so
 * small top_k still fuse over a meaningful part of both rankings. */
#define DB_HYBRID_MIN_DEPTH 100u

typedef enum fusion { FUSION_RRF = 0, FUSION_WEIGHTED } fusion;

typedef struct query_req {
    const json_value *vector;
    const json_value *text;
    const json_value *filter;
    const json_value *hybrid;
    size_t top_k;
    int ef;
    bool exact;
    bool include_vector;
    bool include_attrs;
    const json_value *attr_list; /* include.attributes as a list of names, or NULL */
    fusion method;
    double rrf_k;
    double vector_weight;
} query_req;

/* The "hybrid" object: {"method": "rrf", "k": 60} or {"method":
 * "weighted", "vector_weight": 0.7}. Only meaningful with both a vector
 * and a text. */
static int parse_hybrid(query_req *q, tdb_error *err) {
    if (q->hybrid == NULL) return 0;
    if (q->vector == NULL || q->text == NULL)
        return tdb_err(err, TDB_EINVAL, "invalid_hybrid",
                       "hybrid fuses a vector search with a text search: give both \"vector\" and "
                       "\"text\"");
    const json_value *method = json_get(q->hybrid, "method");
    if (method != NULL) {
        if (method->type == JSON_STRING && strcmp(method->str, "rrf") == 0) q->method = FUSION_RRF;
        else if (method->type == JSON_STRING && strcmp(method->str, "weighted") == 0)
            q->method = FUSION_WEIGHTED;
        else
            return tdb_err(err, TDB_EINVAL, "invalid_hybrid",
                           "hybrid.method must be \"rrf\" or \"weighted\"");
    }
    for (const json_value *f = q->hybrid->child; f; f = f->next) {
        if (strcmp(f->key, "method") == 0) continue;
        if (strcmp(f->key, "k") == 0 && q->method == FUSION_RRF) {
            if (f->type != JSON_NUMBER || !(f->num >= 0) || f->num > DB_RRF_MAX_K)
                return tdb_err(err, TDB_EINVAL, "invalid_hybrid",
                               "hybrid.k must be a number in 0..%g (default 60)", DB_RRF_MAX_K);
            q->rrf_k = f->num;
        } else if (strcmp(f->key, "vector_weight") == 0 && q->method == FUSION_WEIGHTED) {
            if (f->type != JSON_NUMBER || !(f->num >= 0 && f->num <= 1))
                return tdb_err(err, TDB_EINVAL, "invalid_hybrid",
                               "hybrid.vector_weight must be a number in 0..1 (default 0.7)");
            q->vector_weight = f->num;
        } else {
            return tdb_err(err, TDB_EINVAL, "invalid_hybrid",
                           "hybrid.%s is not valid here: rrf takes \"k\", weighted takes "
                           "\"vector_weight\"",
                           f->key);
        }
    }
    return 0;
}

static int parse_query(const json_value *root, query_req *q, tdb_error *err) {
    memset(q, 0, sizeof *q);
    q->top_k = DB_DEFAULT_TOP_K;
    q->include_attrs = true;
    q->method = FUSION_RRF;
    q->rrf_k = DB_RRF_DEFAULT_K;
    q->vector_weight = DB_DEFAULT_VECTOR_WEIGHT;
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
            if (f->type != JSON_OBJECT && f->type != JSON_NULL)
                return tdb_err(err, TDB_EINVAL, "invalid_hybrid",
                               "hybrid must be an object such as {\"method\": \"rrf\", \"k\": 60} "
                               "or {\"method\": \"weighted\", \"vector_weight\": 0.7}");
            q->hybrid = f->type == JSON_NULL ? NULL : f;
        } else {
            return tdb_err(err, TDB_EINVAL, "invalid_request",
                           "unknown query field \"%s\" (expected vector, text, filter, top_k, ef, "
                           "exact, include, hybrid)",
                           k);
        }
    }
    return parse_hybrid(q, err);
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

/* A parsed "text": the query string and the fields (st indexes) with
 * their weights. Arrays hold one entry per full-text field at most. */
typedef struct text_req {
    st_text_query q;
    uint32_t *fields;
    double *weights;
} text_req;

static void text_req_free(text_req *t) {
    free(t->fields);
    free(t->weights);
}

/* The storage index of full-text field `name`, or a 400 naming the
 * problem: unknown, not full-text. */
static int text_field_index(const db_coll *c, st_collection *st, const char *name, size_t len,
                            uint32_t *out, tdb_error *err) {
    int i = st_text_field_find(st, name, len);
    if (i >= 0) {
        *out = (uint32_t)i;
        return 0;
    }
    const attr_decl *a = schema_find_attr(&c->schema, name, len);
    if (a != NULL)
        return tdb_err(err, TDB_EINVAL, "invalid_text_field",
                       "attribute \"%.*s\" is not full-text indexed: declare it with "
                       "\"full_text\" to search it",
                       (int)(len > 128 ? 128 : len), name);
    return tdb_err(err, TDB_EINVAL, "invalid_text_field",
                   "text.fields: \"%.*s\" is not an attribute of collection \"%s\"",
                   (int)(len > 128 ? 128 : len), name, c->name);
}

/* Parses "text": a string (every full-text field) or {"query", "fields",
 * "weights"}. */
static int parse_text(const db_coll *c, st_collection *st, const json_value *v, bool exact,
                      text_req *t, tdb_error *err) {
    memset(t, 0, sizeof *t);
    size_t nf = st_text_field_count(st);
    if (nf == 0)
        return tdb_err(err, TDB_EINVAL, "invalid_text",
                       "collection \"%s\" has no full-text attributes: declare one with "
                       "\"full_text\": true to search text",
                       c->name);
    t->fields = calloc(nf, sizeof *t->fields);
    t->weights = calloc(nf, sizeof *t->weights);
    if (t->fields == NULL || t->weights == NULL)
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    t->q.exhaustive = exact;
    if (v->type == JSON_STRING) {
        t->q.text = v->str;
        t->q.text_len = v->len;
        return 0; /* fields NULL: all, weights 1 */
    }
    if (v->type != JSON_OBJECT)
        return tdb_err(err, TDB_EINVAL, "invalid_text",
                       "text must be a string or {\"query\": \"...\", \"fields\": [...], "
                       "\"weights\": {\"field\": 2.0}}");
    const json_value *query = NULL, *fields = NULL, *weights = NULL;
    for (const json_value *f = v->child; f; f = f->next) {
        if (strcmp(f->key, "query") == 0) query = f;
        else if (strcmp(f->key, "fields") == 0) fields = f;
        else if (strcmp(f->key, "weights") == 0) weights = f;
        else
            return tdb_err(err, TDB_EINVAL, "invalid_text",
                           "unknown text field \"%s\" (expected query, fields, weights)", f->key);
    }
    if (query == NULL || query->type != JSON_STRING)
        return tdb_err(err, TDB_EINVAL, "invalid_text", "text.query must be a string");
    t->q.text = query->str;
    t->q.text_len = query->len;
    uint32_t n = 0;
    if (fields != NULL && fields->type != JSON_NULL) {
        if (fields->type != JSON_ARRAY || fields->child == NULL)
            return tdb_err(err, TDB_EINVAL, "invalid_text",
                           "text.fields must be a non-empty list of full-text attribute names");
        for (const json_value *e = fields->child; e; e = e->next) {
            if (e->type != JSON_STRING)
                return tdb_err(err, TDB_EINVAL, "invalid_text",
                               "text.fields must list attribute names (strings)");
            uint32_t idx;
            int rc = text_field_index(c, st, e->str, e->len, &idx, err);
            if (rc) return rc;
            bool dup = false;
            for (uint32_t i = 0; i < n; i++) dup |= t->fields[i] == idx;
            if (dup) continue; /* listing a field twice searches it once */
            t->fields[n] = idx;
            t->weights[n] = 1.0;
            n++;
        }
    } else {
        for (uint32_t i = 0; i < nf; i++) {
            t->fields[i] = i;
            t->weights[i] = 1.0;
        }
        n = (uint32_t)nf;
    }
    if (weights != NULL && weights->type != JSON_NULL) {
        if (weights->type != JSON_OBJECT)
            return tdb_err(err, TDB_EINVAL, "invalid_text",
                           "text.weights must be an object {\"field\": weight}");
        for (const json_value *w = weights->child; w; w = w->next) {
            uint32_t idx;
            int rc = text_field_index(c, st, w->key, w->key_len, &idx, err);
            if (rc) return rc;
            if (w->type != JSON_NUMBER || !(w->num >= 0) || isinf(w->num))
                return tdb_err(err, TDB_EINVAL, "invalid_text",
                               "text.weights.%s must be a finite number >= 0", w->key);
            uint32_t i = 0;
            while (i < n && t->fields[i] != idx) i++;
            if (i == n)
                return tdb_err(err, TDB_EINVAL, "invalid_text",
                               "text.weights.%s: that field is not among text.fields", w->key);
            t->weights[i] = w->num;
        }
    }
    t->q.fields = t->fields;
    t->q.weights = t->weights;
    t->q.n_fields = n;
    return 0;
}

/* One document of a hybrid fusion. */
typedef struct fused {
    const st_hit *hit;     /* its record (from either list) */
    uint32_t vrank, trank; /* 1-based ranks; 0 = not in that list */
    float distance;
    double text_score;
    double score;
} fused;

static int fused_by_id(const void *a, const void *b) {
    const st_record *x = &((const fused *)a)->hit->rec, *y = &((const fused *)b)->hit->rec;
    uint32_t m = x->id_len < y->id_len ? x->id_len : y->id_len;
    int c = memcmp(x->id, y->id, m);
    if (c) return c;
    return x->id_len < y->id_len ? -1 : x->id_len > y->id_len;
}

static int fused_by_score(const void *a, const void *b) {
    const fused *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return fused_by_id(a, b);
}

/* Fuses the two ranked lists into *out (malloc'd, sorted best first). */
static int fuse(const query_req *q, const st_hit *vh, size_t nv, const st_hit *th, size_t nt,
                fused **out, size_t *n_out, tdb_error *err) {
    *out = NULL;
    *n_out = 0;
    size_t total = nv + nt;
    if (total == 0) return 0;
    fused *all = calloc(total, sizeof *all);
    if (all == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory fusing results");
    for (size_t i = 0; i < nv; i++)
        all[i] = (fused){&vh[i], (uint32_t)i + 1, 0, vh[i].distance, 0, 0};
    for (size_t i = 0; i < nt; i++)
        all[nv + i] = (fused){&th[i], 0, (uint32_t)i + 1, 0, th[i].score, 0};
    /* Merge the two entries of a document found by both searches. */
    qsort(all, total, sizeof *all, fused_by_id);
    size_t n = 0;
    for (size_t i = 0; i < total; i++) {
        if (n > 0 && fused_by_id(&all[n - 1], &all[i]) == 0) {
            fused *d = &all[n - 1];
            if (all[i].vrank) {
                d->vrank = all[i].vrank;
                d->distance = all[i].distance;
                d->hit = all[i].hit; /* the vector side's record carries the vector */
            }
            if (all[i].trank) {
                d->trank = all[i].trank;
                d->text_score = all[i].text_score;
            }
            continue;
        }
        all[n++] = all[i];
    }
    float dmin = nv ? vh[0].distance : 0, dmax = nv ? vh[nv - 1].distance : 0;
    double smin = nt ? th[nt - 1].score : 0, smax = nt ? th[0].score : 0;
    for (size_t i = 0; i < n; i++) {
        fused *d = &all[i];
        if (q->method == FUSION_RRF) {
            d->score = 0;
            if (d->vrank) d->score += 1.0 / (q->rrf_k + (double)d->vrank);
            if (d->trank) d->score += 1.0 / (q->rrf_k + (double)d->trank);
        } else {
            double v = 0, t = 0;
            if (d->vrank) v = dmax > dmin ? (double)(dmax - d->distance) / (double)(dmax - dmin) : 1.0;
            if (d->trank) t = smax > smin ? (d->text_score - smin) / (smax - smin) : 1.0;
            d->score = q->vector_weight * v + (1.0 - q->vector_weight) * t;
        }
    }
    qsort(all, n, sizeof *all, fused_by_score);
    *out = all;
    *n_out = n;
    return 0;
}

/* Documents each side of a hybrid query fetches. */
static size_t hybrid_depth(const query_req *q) {
    double d = 2.0 * (double)q->top_k + (q->method == FUSION_RRF ? q->rrf_k : 0.0);
    if (d < DB_HYBRID_MIN_DEPTH) d = DB_HYBRID_MIN_DEPTH;
    if (d > DB_MAX_TOP_K) d = DB_MAX_TOP_K;
    return (size_t)ceil(d);
}

static void write_result_open(buf *b, const st_record *r, bool *first) {
    if (!*first) buf_putc(b, ',');
    *first = false;
    buf_puts(b, "{\"id\":");
    json_write_string(b, r->id, r->id_len);
}

/* ---- query memory budget -------------------------------------------- */

/* Every query charges its estimated peak memory (db_query_estimate)
 * against one server-wide budget before it runs and gives it back when its
 * answer is built. A query whose estimate alone is over the per-query cap
 * is refused (400 query_too_large: it could never run); one that does not
 * fit in what remains waits up to DB_QUERY_MEM_WAIT_MS for running queries
 * to finish, then gets 503 overloaded. So many concurrent large queries
 * keep the heap bounded instead of the process being killed. */
#define DB_QUERY_MEM_WAIT_MS 2000

static pthread_mutex_t qmem_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qmem_cv = PTHREAD_COND_INITIALIZER;
static uint64_t qmem_budget;   /* 0 until first use or db_query_memory_set */
static uint64_t qmem_cap;
static uint64_t qmem_used;
static _Atomic uint64_t qmem_refused;

/* The default budget: a quarter of physical memory, at most 1 GiB and at
 * least 64 MiB; the per-query cap is a quarter of the budget. */
static void qmem_defaults_locked(void) {
    if (qmem_budget != 0) return;
    uint64_t budget = DB_QUERY_MEM_DEFAULT;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0) {
        uint64_t quarter = (uint64_t)pages * (uint64_t)psize / 4;
        if (quarter < budget) budget = quarter;
    }
    if (budget < DB_QUERY_MEM_MIN) budget = DB_QUERY_MEM_MIN;
    qmem_budget = budget;
    qmem_cap = budget / 4;
}

void db_query_memory_set(uint64_t budget, uint64_t per_query) {
    pthread_mutex_lock(&qmem_mu);
    qmem_budget = 0;
    qmem_defaults_locked();
    if (budget != 0) qmem_budget = budget;
    qmem_cap = per_query != 0 ? per_query : qmem_budget / 4;
    if (qmem_cap > qmem_budget) qmem_cap = qmem_budget;
    pthread_cond_broadcast(&qmem_cv);
    pthread_mutex_unlock(&qmem_mu);
}

void db_query_memory_get(db_query_memory *out) {
    pthread_mutex_lock(&qmem_mu);
    qmem_defaults_locked();
    out->budget = qmem_budget;
    out->per_query = qmem_cap;
    out->used = qmem_used;
    pthread_mutex_unlock(&qmem_mu);
    out->refused = atomic_load(&qmem_refused);
}

/* Saturating arithmetic: an estimate never wraps to something small. */
static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
static uint64_t sat_mul(uint64_t a, uint64_t b) {
    return a != 0 && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

uint64_t db_query_estimate(const db_query_shape *q) {
    /* No list and no answer is longer than the collection. */
    uint64_t top_k = q->top_k < q->documents ? q->top_k : q->documents;
    uint64_t depth = q->depth < q->documents ? q->depth : q->documents;
    uint64_t vec_bytes = q->include_vector ? sat_mul(q->dimension, sizeof(float)) : 0;
    /* One candidate in memory: the hit with its id, attributes and (when
     * asked) its vector. */
    uint64_t per_hit = sat_add(DB_QEST_HIT_BYTES, vec_bytes);
    if (q->include_attrs) per_hit = sat_add(per_hit, DB_QEST_ATTR_BYTES);
    /* Each list holds up to depth hits gathered from every segment (and
     * the memtable) before they are merged. */
    uint64_t lists = (q->vector ? 1u : 0u) + (q->text ? 1u : 0u);
    if (lists == 0) lists = 1; /* a filter-only scan */
    uint64_t sources = (uint64_t)q->segments + 1;
    uint64_t held = sat_mul(sat_mul(sat_mul(depth, per_hit), sources), lists);
    /* Search frontiers: ef (or depth) candidates per segment. */
    uint64_t ef = q->ef > depth ? q->ef : depth;
    held = sat_add(held, sat_mul(sat_mul(ef, DB_QEST_CAND_BYTES), sources));
    /* The JSON answer: top_k results, each float of a vector up to 16
     * characters of text. */
    uint64_t per_result = DB_QEST_RESULT_BYTES;
    if (q->include_vector) per_result = sat_add(per_result, sat_mul(q->dimension, 16));
    if (q->include_attrs) per_result = sat_add(per_result, DB_QEST_ATTR_BYTES);
    /* The buffer grows by doubling: up to twice what it holds. */
    uint64_t answer = sat_mul(sat_mul(top_k, per_result), 2);
    return sat_add(held, answer);
}

int db_query_memory_acquire(uint64_t bytes, tdb_error *err) {
    pthread_mutex_lock(&qmem_mu);
    qmem_defaults_locked();
    if (bytes > qmem_cap) {
        uint64_t cap = qmem_cap;
        pthread_mutex_unlock(&qmem_mu);
        atomic_fetch_add(&qmem_refused, 1);
        return tdb_err(err, TDB_EINVAL, "query_too_large",
                       "this query would need about %llu MiB, over the per-query limit of %llu MiB: "
                       "lower top_k, or leave out include.vector or include.attributes",
                       (unsigned long long)(bytes >> 20), (unsigned long long)(cap >> 20));
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DB_QUERY_MEM_WAIT_MS / 1000;
    until.tv_nsec += (long)(DB_QUERY_MEM_WAIT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (qmem_used + bytes > qmem_budget) {
        if (pthread_cond_timedwait(&qmem_cv, &qmem_mu, &until) != 0 &&
            qmem_used + bytes > qmem_budget) {
            pthread_mutex_unlock(&qmem_mu);
            atomic_fetch_add(&qmem_refused, 1);
            return tdb_err(err, TDB_EBUSY, "overloaded",
                           "the server's query memory is in use by other queries; retry in a "
                           "moment");
        }
    }
    qmem_used += bytes;
    pthread_mutex_unlock(&qmem_mu);
    return 0;
}

void db_query_memory_release(uint64_t bytes) {
    pthread_mutex_lock(&qmem_mu);
    qmem_used = bytes > qmem_used ? 0 : qmem_used - bytes;
    pthread_cond_broadcast(&qmem_cv);
    pthread_mutex_unlock(&qmem_mu);
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
    attrcol_filter fstate;
    bool fstate_live = false;
    st_hit *vhits = NULL, *thits = NULL;
    size_t nv = 0, nt = 0;
    st_record *recs = NULL;
    size_t n = 0;
    fused *fz = NULL;
    size_t nf = 0;
    text_req treq = {0};
    buf b = BUF_INIT;
    query_req q;
    bool first = true;
    uint64_t charged = 0;
    int rc = db_coll_begin(db, name, &c, &st, err);
    if (rc) return rc;
    if ((rc = db_parse_body(body, body_len, &doc, err)) != 0) goto done;
    if ((rc = parse_query(json_root(doc), &q, err)) != 0) goto done;
    if (q.filter && (rc = filter_compile(q.filter, &filter, err)) != 0) goto done;
    if (q.text && (rc = parse_text(c, st, q.text, q.exact, &treq, err)) != 0) goto done;
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
    }
    st_filter_fn fcb = NULL;
    void *fctx = NULL;
    if (filter) {
        attrcol_filter_init(&fstate, filter, false);
        fstate_live = true;
        fcb = attrcol_filter_cb;
        fctx = &fstate;
    }
    bool hybrid = q.vector && q.text;
    size_t depth = hybrid ? hybrid_depth(&q) : q.top_k;
    {
        st_stats sst;
        st_stats_get(st, &sst);
        db_query_shape shape = {.top_k = q.top_k, .depth = depth, .dimension = c->dimension,
                                .ef = q.ef > 0 ? (uint64_t)q.ef : 0, .segments = sst.segments,
                                .documents = sst.documents,
                                .vector = q.vector != NULL, .text = q.text != NULL,
                                .include_vector = q.include_vector,
                                .include_attrs = q.include_attrs || q.attr_list != NULL};
        uint64_t need = db_query_estimate(&shape);
        if ((rc = db_query_memory_acquire(need, err)) != 0) goto done;
        charged = need;
    }
    if (q.vector) {
        st_search_opts so = {.exact = q.exact, .ef = q.ef > 0 ? (uint32_t)q.ef : 0};
        rc = st_search_ex(st, qvec, depth, fcb, fctx, q.include_vector, &so, &vhits, &nv, err);
        if (rc) goto done;
    }
    if (q.text) {
        rc = st_search_text(st, &treq.q, depth, fcb, fctx, q.include_vector, &thits, &nt, err);
        if (rc) goto done;
    }
    buf_puts(&b, "{\"results\":[");
    if (hybrid) {
        if ((rc = fuse(&q, vhits, nv, thits, nt, &fz, &nf, err)) != 0) goto done;
        for (size_t i = 0; i < nf && i < q.top_k; i++) {
            write_result_open(&b, &fz[i].hit->rec, &first);
            buf_puts(&b, ",\"score\":");
            json_write_double(&b, fz[i].score);
            write_attrs(&b, &fz[i].hit->rec, &q);
            write_vector(&b, &fz[i].hit->rec, c->dimension, &q);
            buf_putc(&b, '}');
        }
    } else if (q.vector || q.text) {
        const st_hit *h = q.vector ? vhits : thits;
        size_t nh = q.vector ? nv : nt;
        for (size_t i = 0; i < nh; i++) {
            write_result_open(&b, &h[i].rec, &first);
            if (q.vector) {
                buf_puts(&b, ",\"distance\":");
                json_write_float(&b, h[i].distance);
            } else {
                buf_puts(&b, ",\"score\":");
                json_write_double(&b, h[i].score);
            }
            write_attrs(&b, &h[i].rec, &q);
            write_vector(&b, &h[i].rec, c->dimension, &q);
            buf_putc(&b, '}');
        }
    } else {
        /* Filter-only (or empty) query: matching documents in id order. */
        rc = st_scan(st, NULL, 0, q.top_k, q.include_vector, fcb, fctx, &recs, &n, err);
        if (rc) goto done;
        for (size_t i = 0; i < n; i++) {
            write_result_open(&b, &recs[i], &first);
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
    free(fz);
    if (charged) db_query_memory_release(charged);
    st_hits_free(vhits, vhits ? nv : 0);
    st_hits_free(thits, thits ? nt : 0);
    st_records_free(recs, recs ? n : 0);
    text_req_free(&treq);
    buf_free(&b);
    free(qvec);
    if (fstate_live) attrcol_filter_done(&fstate);
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
    /* One filter state for every page: segments are told apart by
     * seg_serial, so one that compaction replaces between pages is never
     * answered from another's columns. */
    attrcol_filter fstate;
    attrcol_filter_init(&fstate, filter, false);
    /* Page through matches in id order, each page one atomic delete; the
     * cursor (the last id seen) guarantees progress. */
    char after[ST_MAX_ID_BYTES];
    uint32_t after_len = 0;
    bool first = true;
    for (;;) {
        st_record *recs = NULL;
        size_t n = 0;
        rc = st_scan(st, first ? NULL : after, after_len, DB_DELETE_PAGE, false, attrcol_filter_cb,
                     &fstate, &recs, &n, err);
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
    attrcol_filter_done(&fstate);
    filter_free(filter);
    return rc;
}
