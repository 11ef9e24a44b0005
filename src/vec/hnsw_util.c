/*
 * hnsw_util.c: what building, inserting and searching share: parameters,
 * per-thread scratch, level draws, neighbour selection (Algorithm 4), the
 * per-query preparation and the end of every search (re-ranking, the
 * exact completion pass, API distances).
 * Layer: vec. SEARCH-LAYER itself (Algorithm 2) is inline in hnsw_int.h so
 * each caller gets a copy specialized for its mode.
 * Ownership: hnsw_scratch_free frees what hnsw_scratch_new returns.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "vec/hnsw_int.h"

void hnsw_params_default(hnsw_params *p) {
    p->m = HNSW_M_DEFAULT;
    p->ef_construction = HNSW_EF_CONSTRUCTION_DEFAULT;
    p->threads = 0;
    p->seed = 0x9e3779b97f4a7c15ull;
}

int hnsw_params_check(const hnsw_params *p, tdb_error *err) {
    if (p->m < HNSW_M_MIN || p->m > HNSW_M_MAX)
        return tdb_err(err, TDB_EINVAL, "invalid_index", "index.m must be %u..%u, got %u",
                       HNSW_M_MIN, HNSW_M_MAX, p->m);
    if (p->ef_construction < HNSW_EF_CONSTRUCTION_MIN || p->ef_construction > HNSW_EF_CONSTRUCTION_MAX)
        return tdb_err(err, TDB_EINVAL, "invalid_index", "index.ef_construction must be %u..%u, got %u",
                       HNSW_EF_CONSTRUCTION_MIN, HNSW_EF_CONSTRUCTION_MAX, p->ef_construction);
    if (p->threads > HNSW_THREADS_MAX)
        return tdb_err(err, TDB_EINVAL, "invalid_index", "build threads must be 0..%u, got %u",
                       HNSW_THREADS_MAX, p->threads);
    return 0;
}

/* ---- Scratch ------------------------------------------------------------- */

hnsw_scratch *hnsw_scratch_new(void) { return calloc(1, sizeof(hnsw_scratch)); }

void hnsw_scratch_free(hnsw_scratch *s) {
    if (!s) return;
    free(s->tags);
    free(s->cand);
    free(s->res);
    free(s->sorted);
    free(s->fbuf);
    free(s->wbuf);
    free(s);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (*cap >= need) return true;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

bool hnsw_scratch_begin(hnsw_scratch *s, uint32_t rows, size_t ef) {
    s->oom = false;
    s->cand_n = s->res_n = 0;
    if (!grow((void **)&s->res, &s->res_cap, ef + 2, sizeof *s->res)) return false;
    if (!grow((void **)&s->cand, &s->cand_cap, ef + 2, sizeof *s->cand)) return false;
    if (s->tags_cap < rows) {
        /* New tags start at 0 and the epoch restarts at 1, so no row is
         * visited yet. */
        uint16_t *t = calloc(rows, sizeof *t);
        if (!t) return false;
        free(s->tags);
        s->tags = t;
        s->tags_cap = rows;
        s->epoch = 0;
    }
    if (++s->epoch == 0) { /* wrapped: clear, so old tags cannot match */
        memset(s->tags, 0, (size_t)s->tags_cap * sizeof *s->tags);
        s->epoch = 1;
    }
    return true;
}

bool hnsw_scratch_floats(hnsw_scratch *s, size_t n) {
    return grow((void **)&s->fbuf, &s->fbuf_cap, n, sizeof *s->fbuf);
}
bool hnsw_scratch_words(hnsw_scratch *s, size_t n) {
    return grow((void **)&s->wbuf, &s->wbuf_cap, n, sizeof *s->wbuf);
}
bool hnsw_scratch_sorted(hnsw_scratch *s, size_t n) {
    return grow((void **)&s->sorted, &s->sorted_cap, n, sizeof *s->sorted);
}
bool hnsw_cand_grow(hnsw_scratch *s) {
    return grow((void **)&s->cand, &s->cand_cap, s->cand_n + 1, sizeof *s->cand);
}

size_t hnsw_res_drain(hnsw_scratch *s) {
    size_t n = s->res_n;
    if (!hnsw_scratch_sorted(s, n + 1)) {
        s->oom = true;
        s->res_n = 0;
        return 0;
    }
    /* Popping the max-heap yields farthest first: fill from the back. */
    for (size_t i = n; i > 0; i--) {
        s->sorted[i - 1] = s->res[0];
        hnsw_res_pop(s);
    }
    return n;
}

/* ---- Levels and neighbour selection ---------------------------------------- */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint32_t hnsw_draw_level(uint64_t seed, uint32_t row, double ml) {
    uint64_t x = splitmix64(seed ^ splitmix64(row));
    double u = ((double)(x >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double l = floor(-log(u) * ml);
    return l >= HNSW_MAX_LEVEL ? HNSW_MAX_LEVEL : (uint32_t)l;
}

size_t hnsw_select_neighbors(const hnsw_graph *g, const vec_kernels *k, const hnsw_cand *cands,
                             size_t n, uint32_t max, hnsw_cand *out) {
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < max; i++) {
        hnsw_cand e = cands[i];
        bool good = true;
        for (size_t j = 0; j < kept; j++) {
            if (hnsw_dist_rows(g, k, e.id, out[j].id) < e.d) {
                good = false;
                break;
            }
        }
        if (good) out[kept++] = e;
    }
    return kept;
}

/* ---- Query preparation and the end of a search ------------------------------ */

bool hnsw_qctx_prepare(hnsw_qctx *c, const float *query, int mode) {
    const hnsw_graph *g = c->g;
    size_t dim = g->dim;
    size_t need = 2 * dim + (mode == HNSW_MODE_RABITQ ? rabitq_query_floats(c->rq) : 0);
    if (!hnsw_scratch_floats(c->s, need)) return false;
    c->k = vec_kernels_get();
    c->q = query;
    if (g->metric == TDB_METRIC_COSINE) {
        float n = sqrtf(c->k->dot(query, query, dim));
        float inv = n > 0 ? 1.0f / n : 0.0f;
        for (size_t i = 0; i < dim; i++) c->s->fbuf[i] = query[i] * inv;
        c->q = c->s->fbuf;
    }
    if (mode == HNSW_MODE_SQ8) {
        /* the int16 query lives in the word buffer (4 per u64) */
        if (!hnsw_scratch_words(c->s, dim / 4 + 1)) return false;
        c->sq8q.qi = (int16_t *)(void *)c->s->wbuf;
        sq8_query_prepare(c->sq8, c->q, &c->sq8q, c->s->fbuf + dim);
    } else if (mode == HNSW_MODE_RABITQ) {
        if (!hnsw_scratch_words(c->s, 4 * (size_t)c->rq->words)) return false;
        c->rqq.planes = c->s->wbuf;
        rabitq_query_prepare(c->rq, c->q, &c->rqq, c->s->fbuf + 2 * dim);
    }
    return true;
}

static int cmp_cand(const void *a, const void *b) {
    const hnsw_cand *x = a, *y = b;
    return hnsw_worse(*x, *y) ? 1 : (hnsw_worse(*y, *x) ? -1 : 0);
}

int hnsw_finish(hnsw_qctx *c, uint32_t k, int mode, const atomic_uchar *present, vec_hit *out,
                uint32_t *n_out, hnsw_stats *stats, tdb_error *err) {
    hnsw_scratch *s = c->s;
    const hnsw_graph *g = c->g;
    size_t n = hnsw_res_drain(s);
    if (s->oom) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory in vector search");
    if (mode == HNSW_MODE_SQ8) {
        /* Re-rank the ef best by exact float distance. */
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < n) hnsw_prefetch_vector(c, s->sorted[i + 1].id);
            s->sorted[i].d = hnsw_dist_exact(c, s->sorted[i].id);
        }
        qsort(s->sorted, n, sizeof *s->sorted, cmp_cand);
    }
    bool completed = false;
    if (n < k) {
        /* The walk ran out of reachable rows before finding k that pass
         * the filter (a filter cut the graph, or a tiny or disconnected
         * graph): every unvisited row gets an exact look, so the answer
         * still holds min(k, matches) rows. */
        vec_topk top;
        if (vec_topk_init(&top, k) != 0) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        for (size_t i = 0; i < n; i++) vec_topk_push(&top, s->sorted[i].d, s->sorted[i].id);
        const uint64_t *bits = c->filter ? c->filter->bitset : NULL;
        for (uint32_t r = 0; r < g->rows; r++) {
            if (bits && (r & 63) == 0 && bits[r >> 6] == 0) {
                r += 63;
                continue;
            }
            if (hnsw_visited(s, r)) continue;
            if (present && atomic_load_explicit(&present[r], memory_order_acquire) != 2) continue;
            if (!vec_filter_pass(c->filter, r)) continue;
            vec_topk_push(&top, hnsw_dist_exact(c, r), r);
        }
        vec_topk_sort(&top);
        if (!hnsw_scratch_sorted(s, top.n + 1)) {
            vec_topk_free(&top);
            return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        }
        for (size_t i = 0; i < top.n; i++) s->sorted[i] = (hnsw_cand){top.dist[i], (uint32_t)top.ids[i]};
        n = top.n;
        vec_topk_free(&top);
        completed = true;
    }
    if (n > k) n = k;
    for (size_t i = 0; i < n; i++) {
        float d = s->sorted[i].d;
        if (g->metric == TDB_METRIC_L2) d = sqrtf(d > 0 ? d : 0);
        out[i].row = s->sorted[i].id;
        out[i].distance = d;
    }
    *n_out = (uint32_t)n;
    if (stats) {
        stats->distances = c->n_dist;
        stats->code_distances = c->n_code;
        stats->visited = c->n_visited;
        stats->completed = completed;
    }
    return 0;
}
