/*
 * hnsw_int.h: what the hnsw*.c files share: the graph as searches see it
 * (a read-only blob view or the mutable index), per-thread scratch, the
 * per-query context, and SEARCH-LAYER (Algorithm 2) as one inline
 * function that each caller specializes by a constant mode.
 * Layer: vec, internal to hnsw*.c (plan.c also reads struct hnsw_view to
 * scan a view's vectors exactly).
 *
 * Link lists: level 0 is one array of rows x (1 + m0) uint32 (count, then
 * up to m0 row ids), the same bytes in the blob and in the mutable index;
 * a level l >= 1 list is (1 + m) uint32 at offset (l - 1)(1 + m) of the
 * row's upper block (blob: upper + upper_off[row]; mutable: upper_ptr[row]).
 *
 * Concurrency: a view is immutable and searched without locks
 * (HNSW_MODE_FLOAT/SQ8/RABITQ). The mutable index guards each row's lists
 * (every level) with locks[row], a spin lock held only to copy or rewrite
 * the lists; searches on it (HNSW_MODE_LOCKED) copy a list under its lock
 * before reading it.
 */
#ifndef TDB_VEC_HNSW_INT_H
#define TDB_VEC_HNSW_INT_H

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "vec/hnsw.h"
#include "vec/rabitq.h"
#include "vec/sq8.h"

/* A (distance, row) pair of the candidate and result heaps. */
typedef struct hnsw_cand {
    float d;
    uint32_t id;
} hnsw_cand;

typedef struct hnsw_graph {
    uint32_t rows;             /* rows (view) or capacity (mutable) */
    uint32_t dim;
    uint32_t m, m0;            /* max links on levels >= 1, on level 0 */
    tdb_metric metric;
    const uint32_t *level0;    /* rows x (1 + m0) */
    const uint8_t *levels;     /* top level of each row */
    const uint32_t *upper_off; /* view: word offset of each row's upper block */
    const uint32_t *upper;     /* view: all upper blocks */
    uint32_t *const *upper_ptr; /* mutable: each row's upper block, or NULL */
    const float *vectors;      /* rows x dim */
    const float *norms;        /* cosine, not normalized: |v| per row or NULL */
    bool normalized;           /* cosine on unit-length copies */
    atomic_uchar *locks;       /* mutable: one spin lock per row; NULL for views */
} hnsw_graph;

static inline const uint32_t *hnsw_links(const hnsw_graph *g, uint32_t row, uint32_t level) {
    if (level == 0) return g->level0 + (size_t)row * (1 + g->m0);
    if (g->upper_ptr) return g->upper_ptr[row] + (size_t)(level - 1) * (1 + g->m);
    return g->upper + g->upper_off[row] + (size_t)(level - 1) * (1 + g->m);
}

static inline void hnsw_lock(const hnsw_graph *g, uint32_t row) {
    while (atomic_exchange_explicit(&g->locks[row], 1, memory_order_acquire)) {
        while (atomic_load_explicit(&g->locks[row], memory_order_relaxed)) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
}
static inline void hnsw_unlock(const hnsw_graph *g, uint32_t row) {
    atomic_store_explicit(&g->locks[row], 0, memory_order_release);
}

/* ---- Per-thread scratch -------------------------------------------------- */

struct hnsw_scratch {
    uint16_t *tags;       /* visited: tags[row] == epoch */
    uint32_t tags_cap;
    uint16_t epoch;
    hnsw_cand *cand;      /* min-heap: closest first (C of Algorithm 2) */
    size_t cand_n, cand_cap;
    hnsw_cand *res;       /* max-heap: farthest first (W of Algorithm 2) */
    size_t res_n, res_cap;
    hnsw_cand *sorted;    /* W drained in ascending order, or re-ranked */
    size_t sorted_cap;
    float *fbuf;          /* query-side floats (unit query, SQ8/RaBitQ query) */
    size_t fbuf_cap;
    uint64_t *wbuf;       /* RaBitQ bit planes */
    size_t wbuf_cap;
    uint32_t list[1 + 2 * HNSW_M_MAX]; /* a link list copied under its lock */
    uint32_t pend[1 + 2 * HNSW_M_MAX]; /* unvisited neighbours of a node */
    float pend_d[1 + 2 * HNSW_M_MAX];
    hnsw_cand sel[1 + 2 * HNSW_M_MAX]; /* neighbour selection output */
    bool oom;             /* an allocation failed during the search */
};

/* Makes tags cover rows and starts a new visited epoch; res and cand are
 * emptied. Returns false when out of memory. */
bool hnsw_scratch_begin(hnsw_scratch *s, uint32_t rows, size_t ef);
bool hnsw_scratch_floats(hnsw_scratch *s, size_t n);
bool hnsw_scratch_words(hnsw_scratch *s, size_t n);
bool hnsw_scratch_sorted(hnsw_scratch *s, size_t n);
bool hnsw_cand_grow(hnsw_scratch *s);

static inline bool hnsw_visited(hnsw_scratch *s, uint32_t row) { return s->tags[row] == s->epoch; }
static inline void hnsw_visit(hnsw_scratch *s, uint32_t row) { s->tags[row] = s->epoch; }

/* a is worse than b: farther, or as far with a larger row. */
static inline bool hnsw_worse(hnsw_cand a, hnsw_cand b) {
    return a.d > b.d || (a.d == b.d && a.id > b.id);
}

static inline void hnsw_cand_push(hnsw_scratch *s, hnsw_cand c) {
    if (s->cand_n == s->cand_cap && !hnsw_cand_grow(s)) {
        s->oom = true;
        return;
    }
    size_t i = s->cand_n++;
    hnsw_cand *h = s->cand;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hnsw_worse(h[p], c)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static inline hnsw_cand hnsw_cand_pop(hnsw_scratch *s) {
    hnsw_cand *h = s->cand;
    hnsw_cand top = h[0], last = h[--s->cand_n];
    size_t n = s->cand_n, i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t b = l + 1 < n && hnsw_worse(h[l], h[l + 1]) ? l + 1 : l;
        if (!hnsw_worse(last, h[b])) break;
        h[i] = h[b];
        i = b;
    }
    if (n) h[i] = last;
    return top;
}

/* Pushes c into the max-heap W (capacity ef + 1, reserved by begin). */
static inline void hnsw_res_push(hnsw_scratch *s, hnsw_cand c) {
    size_t i = s->res_n++;
    hnsw_cand *h = s->res;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hnsw_worse(c, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static inline void hnsw_res_pop(hnsw_scratch *s) {
    hnsw_cand *h = s->res;
    hnsw_cand last = h[--s->res_n];
    size_t n = s->res_n, i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t b = l + 1 < n && hnsw_worse(h[l + 1], h[l]) ? l + 1 : l;
        if (!hnsw_worse(h[b], last)) break;
        h[i] = h[b];
        i = b;
    }
    if (n) h[i] = last;
}

/* Drains W into s->sorted, nearest first; returns the count. */
size_t hnsw_res_drain(hnsw_scratch *s);

/* ---- Per-query context --------------------------------------------------- */

enum {
    HNSW_MODE_FLOAT = 0, /* view, exact float distances */
    HNSW_MODE_LOCKED,    /* mutable index: exact distances, lists copied under lock */
    HNSW_MODE_SQ8,       /* view, SQ8 distances (re-ranked by the caller) */
    HNSW_MODE_RABITQ     /* view, exact distances gated by RaBitQ lower bounds */
};

typedef struct hnsw_qctx {
    const hnsw_graph *g;
    const vec_kernels *k;
    const float *q;         /* the query; unit length for cosine */
    hnsw_scratch *s;
    const vec_filter *filter;
    const sq8_view *sq8;
    sq8_query sq8q;
    const rabitq_view *rq;
    rabitq_query rqq;
    uint64_t n_dist, n_code, n_visited;
} hnsw_qctx;

/* Exact internal distance from the query to a row. */
static inline float hnsw_dist_exact(hnsw_qctx *c, uint32_t row) {
    const hnsw_graph *g = c->g;
    const float *v = g->vectors + (size_t)row * g->dim;
    c->n_dist++;
    switch (g->metric) {
    case TDB_METRIC_L2: return c->k->l2sq(c->q, v, g->dim);
    case TDB_METRIC_DOT: return -c->k->dot(c->q, v, g->dim);
    default: {
        float ip = c->k->dot(c->q, v, g->dim);
        if (g->normalized) return 1.0f - ip;
        float n = g->norms ? g->norms[row] : sqrtf(c->k->dot(v, v, g->dim));
        return n > 0 ? 1.0f - ip / n : 1.0f;
    }
    }
}

/* Internal distance between two rows of g (neighbour selection). */
static inline float hnsw_dist_rows(const hnsw_graph *g, const vec_kernels *k, uint32_t a,
                                   uint32_t b) {
    const float *va = g->vectors + (size_t)a * g->dim, *vb = g->vectors + (size_t)b * g->dim;
    switch (g->metric) {
    case TDB_METRIC_L2: return k->l2sq(va, vb, g->dim);
    case TDB_METRIC_DOT: return -k->dot(va, vb, g->dim);
    default: {
        float ip = k->dot(va, vb, g->dim);
        if (g->normalized) return 1.0f - ip;
        float na = g->norms ? g->norms[a] : sqrtf(k->dot(va, va, g->dim));
        float nb = g->norms ? g->norms[b] : sqrtf(k->dot(vb, vb, g->dim));
        return na > 0 && nb > 0 ? 1.0f - ip / (na * nb) : 1.0f;
    }
    }
}

/* Distance in the mode's space: SQ8 estimates for SQ8, exact otherwise. */
static inline __attribute__((always_inline)) float hnsw_dist_mode(hnsw_qctx *c, uint32_t row,
                                                                  int mode) {
    if (mode == HNSW_MODE_SQ8) {
        c->n_code++;
        return sq8_distance(c->sq8, c->k, &c->sq8q, row);
    }
    return hnsw_dist_exact(c, row);
}

/* Cache lines of a row's data to prefetch before its distance: enough to
 * start the stream; the hardware prefetcher follows a sequential run. */
#define HNSW_PREFETCH_LINES 8u
/* Code rows are short (dim bytes for SQ8): prefetch them whole. */
#define HNSW_PREFETCH_CODE_LINES 64u

static inline __attribute__((always_inline)) void hnsw_prefetch(hnsw_qctx *c, uint32_t row,
                                                                int mode) {
    const char *p;
    size_t bytes;
    if (mode == HNSW_MODE_SQ8) {
        p = (const char *)sq8_row(c->sq8, row);
        bytes = c->sq8->stride;
    } else if (mode == HNSW_MODE_RABITQ) {
        p = (const char *)rabitq_row(c->rq, row);
        bytes = c->rq->stride;
    } else {
        p = (const char *)(c->g->vectors + (size_t)row * c->g->dim);
        bytes = (size_t)c->g->dim * sizeof(float);
    }
    size_t lines = (bytes + 63) / 64;
    if (lines > HNSW_PREFETCH_CODE_LINES) lines = HNSW_PREFETCH_CODE_LINES;
    for (size_t i = 0; i < lines; i++) __builtin_prefetch(p + 64 * i, 0, 3);
}

static inline __attribute__((always_inline)) void hnsw_prefetch_vector(hnsw_qctx *c, uint32_t row) {
    const char *p = (const char *)(c->g->vectors + (size_t)row * c->g->dim);
    size_t lines = ((size_t)c->g->dim * sizeof(float) + 63) / 64;
    if (lines > HNSW_PREFETCH_LINES) lines = HNSW_PREFETCH_LINES;
    for (size_t i = 0; i < lines; i++) __builtin_prefetch(p + 64 * i, 0, 3);
}

/* A row that enters C will probably be expanded soon: start loading its
 * link list now (the lists live apart from the vectors, so reading the
 * vector did not bring them in). */
static inline __attribute__((always_inline)) void hnsw_prefetch_links(hnsw_qctx *c, uint32_t row,
                                                                      uint32_t level) {
    const char *l = (const char *)hnsw_links(c->g, row, level);
    __builtin_prefetch(l, 0, 3);
    __builtin_prefetch(l + 64, 0, 3);
}

/* The link list of row at level as a pointer to (count, ids...): in place
 * for views, copied into s->list under the row's lock for the mutable
 * index. */
static inline __attribute__((always_inline)) const uint32_t *
hnsw_links_read(hnsw_qctx *c, uint32_t row, uint32_t level, int mode) {
    const uint32_t *l = hnsw_links(c->g, row, level);
    if (mode != HNSW_MODE_LOCKED) return l;
    hnsw_lock(c->g, row);
    uint32_t n = l[0];
    c->s->list[0] = n;
    for (uint32_t i = 0; i < n; i++) c->s->list[1 + i] = l[1 + i];
    hnsw_unlock(c->g, row);
    return c->s->list;
}

/* Greedy descent (SEARCH-LAYER with ef = 1, Algorithm 2, as Algorithm 5
 * uses it on the upper levels) from (*ep, *ep_d) down to level `to` + 1.
 * RaBitQ mode descends on exact distances: there are few of them. */
static inline __attribute__((always_inline)) void
hnsw_descend(hnsw_qctx *c, uint32_t *ep, float *ep_d, uint32_t from, uint32_t to, int mode) {
    int dmode = mode == HNSW_MODE_SQ8 ? HNSW_MODE_SQ8 : HNSW_MODE_FLOAT;
    for (uint32_t level = from; level > to; level--) {
        bool changed = true;
        while (changed) {
            changed = false;
            const uint32_t *l = hnsw_links_read(c, *ep, level, mode);
            uint32_t n = l[0];
            c->n_visited++;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t nb = l[1 + i];
                float d = hnsw_dist_mode(c, nb, dmode);
                if (d < *ep_d) {
                    *ep_d = d;
                    *ep = nb;
                    changed = true;
                }
            }
        }
    }
}

/* SEARCH-LAYER (Algorithm 2) at one level from one entry point: leaves
 * the ef nearest found in W (s->res, a max-heap). With a filter, rows the
 * filter rejects still enter C (the walk goes through them) but never W,
 * so W holds only accepted rows and the walk goes on until W has ef of
 * them or C is exhausted.
 * Invariant of the loop: every row in C or W is visited (tagged); W holds
 * at most ef rows; the walk stops when the closest row left in C is
 * farther than the farthest of a full W (no closer row can be reached
 * through it, as in the paper).
 * RaBitQ mode: once W is full, a neighbour whose estimated lower bound is
 * not below W's farthest is skipped without its exact distance (it would
 * be rejected by the same test on the exact distance, unless the bound
 * failed, which the paper's EPS0 makes rare). */
static inline __attribute__((always_inline)) void
hnsw_search_level(hnsw_qctx *c, uint32_t level, size_t ef, uint32_t ep, float ep_d, int mode,
                  bool filtered) {
    hnsw_scratch *s = c->s;
    s->cand_n = 0;
    s->res_n = 0;
    hnsw_visit(s, ep);
    hnsw_cand_push(s, (hnsw_cand){ep_d, ep});
    if (!filtered || vec_filter_pass(c->filter, ep)) hnsw_res_push(s, (hnsw_cand){ep_d, ep});
    while (s->cand_n > 0) {
        hnsw_cand cur = hnsw_cand_pop(s);
        if (s->res_n >= ef && cur.d > s->res[0].d) break;
        const uint32_t *l = hnsw_links_read(c, cur.id, level, mode);
        uint32_t n = l[0], np = 0;
        c->n_visited++;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t nb = l[1 + i];
            if (hnsw_visited(s, nb)) continue;
            hnsw_visit(s, nb);
            s->pend[np++] = nb;
        }
        if (np == 0) continue;
        if (mode == HNSW_MODE_RABITQ && s->res_n >= ef) {
            /* First pass on codes: keep the neighbours that may enter W. */
            uint32_t keep = 0;
            float bound = s->res[0].d;
            hnsw_prefetch(c, s->pend[0], mode);
            for (uint32_t j = 0; j < np; j++) {
                if (j + 1 < np) hnsw_prefetch(c, s->pend[j + 1], mode);
                float lower;
                c->n_code++;
                (void)rabitq_estimate(c->rq, c->k, &c->rqq, s->pend[j], &lower);
                if (lower < bound) s->pend[keep++] = s->pend[j];
            }
            np = keep;
            if (np == 0) continue;
            hnsw_prefetch_vector(c, s->pend[0]);
            for (uint32_t j = 0; j < np; j++) {
                if (j + 1 < np) hnsw_prefetch_vector(c, s->pend[j + 1]);
                uint32_t nb = s->pend[j];
                float d = hnsw_dist_exact(c, nb);
                if (s->res_n < ef || d < s->res[0].d) {
                    hnsw_prefetch_links(c, nb, level);
                    hnsw_cand_push(s, (hnsw_cand){d, nb});
                    if (!filtered || vec_filter_pass(c->filter, nb)) {
                        hnsw_res_push(s, (hnsw_cand){d, nb});
                        if (s->res_n > ef) hnsw_res_pop(s);
                    }
                }
            }
            continue;
        }
        int dmode = mode == HNSW_MODE_RABITQ ? HNSW_MODE_FLOAT : mode;
        if (dmode == HNSW_MODE_SQ8)
            hnsw_prefetch(c, s->pend[0], dmode);
        else
            hnsw_prefetch_vector(c, s->pend[0]);
        for (uint32_t j = 0; j < np; j++) {
            if (j + 1 < np) {
                if (dmode == HNSW_MODE_SQ8)
                    hnsw_prefetch(c, s->pend[j + 1], dmode);
                else
                    hnsw_prefetch_vector(c, s->pend[j + 1]);
            }
            uint32_t nb = s->pend[j];
            float d = hnsw_dist_mode(c, nb, dmode);
            if (s->res_n < ef || d < s->res[0].d) {
                hnsw_prefetch_links(c, nb, level);
                hnsw_cand_push(s, (hnsw_cand){d, nb});
                if (!filtered || vec_filter_pass(c->filter, nb)) {
                    hnsw_res_push(s, (hnsw_cand){d, nb});
                    if (s->res_n > ef) hnsw_res_pop(s);
                }
            }
        }
    }
}

/* SELECT-NEIGHBORS-HEURISTIC (Algorithm 4) without extendCandidates and
 * keepPrunedConnections: walks cands (nearest first, distances to the
 * base) and keeps a candidate only when it is closer to the base than to
 * every candidate kept so far. Writes at most max picks to out; returns
 * their count. */
size_t hnsw_select_neighbors(const hnsw_graph *g, const vec_kernels *k, const hnsw_cand *cands,
                             size_t n, uint32_t max, hnsw_cand *out);

/* Level drawn for a row: floor(-ln(U) * mL), U uniform in (0, 1] from a
 * hash of (seed, row), capped at HNSW_MAX_LEVEL. */
uint32_t hnsw_draw_level(uint64_t seed, uint32_t row, double ml);

/* Prepares c->q (unit copy for cosine in s->fbuf) and codes' query state.
 * Returns false when out of memory. */
bool hnsw_qctx_prepare(hnsw_qctx *c, const float *query, int mode);

/* Finishes a search whose level-0 walk left W in s->res: re-ranks SQ8
 * estimates by exact distance, completes with an exact pass over the
 * unvisited rows when fewer than k were found (present, when not NULL,
 * says which rows exist), converts to API distances. */
int hnsw_finish(hnsw_qctx *c, uint32_t k, int mode, const atomic_uchar *present, vec_hit *out,
                uint32_t *n_out, hnsw_stats *stats, tdb_error *err);

/* ---- Blob writer (hnsw.c), used by hnsw_build.c ----------------------------- */

int hnsw_serialize(const hnsw_graph *g, uint32_t entry, uint32_t max_level,
                   uint32_t ef_construction, void **blob_out, size_t *len_out, tdb_error *err);

/* The graph inside a view, for searches (hnsw_search.c). */
struct hnsw_view {
    hnsw_graph g;
    uint32_t entry;       /* HNSW_NONE when rows == 0 */
    uint32_t max_level;
    uint32_t ef_construction;
    uint64_t links;
    const sq8_view *sq8;
    const rabitq_view *rq;
};

/* The mutable graph (hnsw_insert.c); the build fills one then serializes. */
struct hnsw_index {
    hnsw_graph g;            /* the searchable face; pointers below */
    uint32_t *level0;        /* capacity x (1 + m0), owned */
    uint8_t *levels;         /* owned */
    uint32_t **upper;        /* each row's block, NULL for level-0 rows */
    uint32_t *upper_block;   /* build: all blocks in one allocation (else each owned) */
    float *vectors_owned;    /* the copy searched (mutable index, cosine build) or NULL */
    atomic_uchar *locks;     /* one per row: guards the row's lists at every level */
    atomic_uchar *present;   /* mutable index: row inserted (NULL for the build) */
    atomic_uint count;       /* rows inserted */
    hnsw_params p;
    double ml;               /* 1 / ln(m) */
    /* mu guards entry and max_level. An insert that raises max_level holds
     * it for its whole insertion (rare: about rows / m times), every other
     * insert and search only to read the pair. */
    pthread_mutex_t mu;
    uint32_t entry;
    uint32_t max_level;
};

/* INSERT (Algorithm 1) of a row whose vector and level are already set. */
int hnsw_index_insert_row(hnsw_index *ix, hnsw_scratch *s, uint32_t row);
/* Allocates the structure; vectors borrowed when not NULL (build), else an
 * owned copy of capacity x dim floats is made (memtable). */
int hnsw_index_alloc(uint32_t capacity, uint32_t dim, tdb_metric metric, const hnsw_params *p,
                     const float *borrowed, bool normalized, hnsw_index **out, tdb_error *err);

#endif
