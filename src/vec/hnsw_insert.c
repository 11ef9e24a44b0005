/*
 * hnsw_insert.c: the mutable HNSW graph and INSERT (Algorithm 1).
 * Layer: vec. Two users: hnsw_build.c fills one from many threads and
 * serializes it (flush, compaction), and the memtable keeps one per
 * collection so fresh rows are searched through a graph too
 * (hnsw_index_new / _insert / _search).
 *
 * Layout: level-0 lists are one array of capacity x (1 + m0) uint32, the
 * very bytes the blob stores; upper levels are one block per row of
 * level x (1 + m) uint32 (count, links), allocated before the row is
 * linked anywhere.
 *
 * Invariants (hnsw_index_check):
 *   (1) a row's lists hold only rows of at least that level, never the
 *       row itself, never twice the same row, at most m0 (level 0) or m;
 *   (2) a row is reachable from the entry point only after its vector,
 *       level and upper block are written (they are written before the
 *       first lock that publishes a link to it);
 *   (3) entry has level max_level (both under mu).
 * Concurrency: locks[row] (a spin lock) guards row's lists at every level;
 * a thread holds at most one row lock at a time and never takes mu while
 * holding one, so there is no lock-order cycle. mu guards entry and
 * max_level; an insert that raises max_level holds mu throughout (as the
 * reference implementation does), other inserts only to read them.
 * present[row] (mutable index) goes 0 -> 1 (claimed by an insert) -> 2
 * (fully linked); searches' exact completion pass reads only rows at 2.
 * Ownership: hnsw_index_free frees everything, including the vector copy.
 */
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "vec/hnsw_int.h"

int hnsw_index_alloc(uint32_t capacity, uint32_t dim, tdb_metric metric, const hnsw_params *p,
                     const float *borrowed, bool normalized, hnsw_index **out, tdb_error *err) {
    *out = NULL;
    int rc = hnsw_params_check(p, err);
    if (rc) return rc;
    if (dim == 0 || dim > VEC_MAX_DIM)
        return tdb_err(err, TDB_EINVAL, "invalid_dimension", "dimension must be 1..%u, got %u",
                       VEC_MAX_DIM, dim);
    if (capacity > HNSW_MAX_ROWS)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "an index holds at most %u rows",
                       HNSW_MAX_ROWS);
    hnsw_index *ix = calloc(1, sizeof *ix);
    if (!ix) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    size_t cap = capacity ? capacity : 1;
    ix->p = *p;
    ix->ml = 1.0 / log((double)p->m);
    uint32_t m0 = 2 * p->m;
    ix->level0 = calloc(cap * (1 + (size_t)m0), sizeof *ix->level0);
    ix->levels = calloc(cap, 1);
    ix->upper = calloc(cap, sizeof *ix->upper);
    ix->locks = calloc(cap, sizeof *ix->locks);
    if (!borrowed) {
        ix->vectors_owned = malloc(cap * dim * sizeof(float));
        ix->present = calloc(cap, sizeof *ix->present);
    }
    pthread_mutex_init(&ix->mu, NULL);
    ix->entry = HNSW_NONE;
    if (!ix->level0 || !ix->levels || !ix->upper || !ix->locks ||
        (!borrowed && (!ix->vectors_owned || !ix->present))) {
        hnsw_index_free(ix);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory for an index of %u rows", capacity);
    }
    hnsw_graph *g = &ix->g;
    g->rows = capacity;
    g->dim = dim;
    g->m = p->m;
    g->m0 = m0;
    g->metric = metric;
    g->level0 = ix->level0;
    g->levels = ix->levels;
    g->upper_ptr = ix->upper;
    g->vectors = borrowed ? borrowed : ix->vectors_owned;
    g->normalized = normalized;
    g->locks = ix->locks;
    *out = ix;
    return 0;
}

void hnsw_index_free(hnsw_index *ix) {
    if (!ix) return;
    if (ix->upper) {
        if (ix->upper_block)
            free(ix->upper_block);
        else
            for (uint32_t r = 0; r < ix->g.rows; r++) free(ix->upper[r]);
    }
    free(ix->upper);
    free(ix->level0);
    free(ix->levels);
    free(ix->locks);
    free(ix->present);
    free(ix->vectors_owned);
    pthread_mutex_destroy(&ix->mu);
    free(ix);
}

static uint32_t *links_mut(hnsw_index *ix, uint32_t row, uint32_t level) {
    return (uint32_t *)hnsw_links(&ix->g, row, level);
}

static void sort_cands(hnsw_cand *a, size_t n) {
    for (size_t i = 1; i < n; i++) { /* n <= 2m + 1: insertion sort */
        hnsw_cand x = a[i];
        size_t j = i;
        while (j > 0 && hnsw_worse(a[j - 1], x)) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* Adds the link e -> q (d: their distance) at level, shrinking e's list
 * with the heuristic when it is full (Algorithm 1, lines 11-16). */
static void connect(hnsw_index *ix, const vec_kernels *k, uint32_t e, uint32_t q, float d,
                    uint32_t level) {
    const hnsw_graph *g = &ix->g;
    uint32_t max = level ? g->m : g->m0;
    uint32_t *l = links_mut(ix, e, level);
    hnsw_cand c[1 + 2 * HNSW_M_MAX], sel[2 * HNSW_M_MAX];
    hnsw_lock(g, e);
    uint32_t n = l[0];
    if (n < max) {
        l[1 + n] = q;
        l[0] = n + 1;
        hnsw_unlock(g, e);
        return;
    }
    for (uint32_t i = 0; i < n; i++) c[i] = (hnsw_cand){hnsw_dist_rows(g, k, e, l[1 + i]), l[1 + i]};
    c[n] = (hnsw_cand){d, q};
    sort_cands(c, n + 1);
    size_t kept = hnsw_select_neighbors(g, k, c, n + 1, max, sel);
    for (size_t i = 0; i < kept; i++) l[1 + i] = sel[i].id;
    l[0] = (uint32_t)kept;
    hnsw_unlock(g, e);
}

int hnsw_index_insert_row(hnsw_index *ix, hnsw_scratch *s, uint32_t row) {
    const hnsw_graph *g = &ix->g;
    uint32_t level = ix->levels[row];
    size_t efc = ix->p.ef_construction;
    if (!hnsw_scratch_begin(s, g->rows, efc)) return TDB_ENOMEM;
    pthread_mutex_lock(&ix->mu);
    uint32_t ep = ix->entry, top = ix->max_level;
    if (ep == HNSW_NONE) {
        ix->entry = row;
        ix->max_level = level;
        pthread_mutex_unlock(&ix->mu);
        return 0;
    }
    bool hold = level > top;
    if (!hold) pthread_mutex_unlock(&ix->mu);

    hnsw_qctx c = {.g = g, .k = vec_kernels_get(), .q = g->vectors + (size_t)row * g->dim, .s = s};
    float ep_d = hnsw_dist_exact(&c, ep);
    if (top > level) hnsw_descend(&c, &ep, &ep_d, top, level, HNSW_MODE_LOCKED);
    int rc = 0;
    for (uint32_t lc = level < top ? level : top;; lc--) {
        if (!hnsw_scratch_begin(s, g->rows, efc)) {
            rc = TDB_ENOMEM;
            break;
        }
        hnsw_search_level(&c, lc, efc, ep, ep_d, HNSW_MODE_LOCKED, false);
        size_t n = hnsw_res_drain(s);
        if (s->oom) {
            rc = TDB_ENOMEM;
            break;
        }
        /* Never link to itself (cannot be reached before it is linked, but
         * a list with a self-link would be corrupt). */
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            if (s->sorted[i].id != row) s->sorted[w++] = s->sorted[i];
        n = w;
        size_t kept = hnsw_select_neighbors(g, c.k, s->sorted, n, g->m, s->sel);
        uint32_t *mine = links_mut(ix, row, lc);
        hnsw_lock(g, row);
        for (size_t i = 0; i < kept; i++) mine[1 + i] = s->sel[i].id;
        mine[0] = (uint32_t)kept;
        hnsw_unlock(g, row);
        for (size_t i = 0; i < kept; i++) connect(ix, c.k, s->sel[i].id, row, s->sel[i].d, lc);
        if (n) {
            ep = s->sorted[0].id;
            ep_d = s->sorted[0].d;
        }
        if (lc == 0) break;
    }
    if (hold) {
        if (rc == 0 && level > ix->max_level) {
            ix->entry = row;
            ix->max_level = level;
        }
        pthread_mutex_unlock(&ix->mu);
    }
    return rc;
}

/* ---- The memtable's index -------------------------------------------------- */

int hnsw_index_new(uint32_t capacity, uint32_t dim, tdb_metric metric, const hnsw_params *p,
                   hnsw_index **out, tdb_error *err) {
    return hnsw_index_alloc(capacity, dim, metric, p, NULL, metric == TDB_METRIC_COSINE, out, err);
}

uint32_t hnsw_index_count(const hnsw_index *ix) {
    return atomic_load_explicit(&((hnsw_index *)ix)->count, memory_order_acquire);
}

int hnsw_index_insert(hnsw_index *ix, uint32_t row, const float *vector, tdb_error *err) {
    hnsw_graph *g = &ix->g;
    if (row >= g->rows || !vector)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "row %u is outside the index (capacity %u)",
                       row, g->rows);
    unsigned char expect = 0;
    if (!atomic_compare_exchange_strong(&ix->present[row], &expect, 1))
        return tdb_err(err, TDB_EINVAL, "invalid_request", "row %u was inserted already", row);
    float *v = ix->vectors_owned + (size_t)row * g->dim;
    memcpy(v, vector, (size_t)g->dim * sizeof *v);
    if (g->normalized) {
        float n = vec_norm(v, g->dim);
        if (n > 0)
            for (uint32_t i = 0; i < g->dim; i++) v[i] /= n;
    }
    uint32_t level = hnsw_draw_level(ix->p.seed, row, ix->ml);
    ix->levels[row] = (uint8_t)level;
    if (level) {
        ix->upper[row] = calloc((size_t)level * (1 + g->m), sizeof(uint32_t));
        if (!ix->upper[row]) {
            atomic_store(&ix->present[row], 0);
            return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        }
    }
    hnsw_scratch *s = hnsw_scratch_new();
    int rc = s ? hnsw_index_insert_row(ix, s, row) : TDB_ENOMEM;
    hnsw_scratch_free(s);
    if (rc) {
        /* The row may be linked already on upper levels: it stays claimed
         * (1) so it is never inserted twice, and searches that reach it
         * still find a valid vector. */
        return tdb_err(err, rc, NULL, "out of memory while inserting row %u", row);
    }
    atomic_store_explicit(&ix->present[row], 2, memory_order_release);
    atomic_fetch_add_explicit(&ix->count, 1, memory_order_release);
    return 0;
}

static __attribute__((noinline)) int index_search_locked(const hnsw_index *ix, hnsw_qctx *c,
                                                         const hnsw_query *q, size_t ef,
                                                         vec_hit *out, uint32_t *n_out,
                                                         hnsw_stats *stats, tdb_error *err) {
    pthread_mutex_t *mu = (pthread_mutex_t *)&ix->mu;
    pthread_mutex_lock(mu);
    uint32_t ep = ix->entry, top = ix->max_level;
    pthread_mutex_unlock(mu);
    if (ep != HNSW_NONE) {
        float ep_d = hnsw_dist_exact(c, ep);
        hnsw_descend(c, &ep, &ep_d, top, 0, HNSW_MODE_LOCKED);
        hnsw_search_level(c, 0, ef, ep, ep_d, HNSW_MODE_LOCKED, q->filter != NULL);
    }
    return hnsw_finish(c, q->k, HNSW_MODE_LOCKED, ix->present, out, n_out, stats, err);
}

int hnsw_index_search(const hnsw_index *ix, const hnsw_query *q, hnsw_scratch *scratch,
                      vec_hit *out, uint32_t *n_out, hnsw_stats *stats, tdb_error *err) {
    *n_out = 0;
    if (!q || !q->vector || q->k == 0 || q->k > HNSW_EF_MAX)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "a search needs a vector and k in 1..%u",
                       HNSW_EF_MAX);
    size_t ef = q->ef ? q->ef : HNSW_EF_DEFAULT;
    if (ef < q->k) ef = q->k;
    if (ef > HNSW_EF_MAX) ef = HNSW_EF_MAX;
    hnsw_scratch *s = scratch ? scratch : hnsw_scratch_new();
    if (!s) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    hnsw_qctx c = {.g = &ix->g, .s = s, .filter = q->filter};
    int rc;
    if (!hnsw_scratch_begin(s, ix->g.rows, ef) || !hnsw_qctx_prepare(&c, q->vector, HNSW_MODE_LOCKED))
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    else
        rc = index_search_locked(ix, &c, q, ef, out, n_out, stats, err);
    if (!scratch) hnsw_scratch_free(s);
    return rc;
}

bool hnsw_index_check(const hnsw_index *ix) {
    const hnsw_graph *g = &ix->g;
    for (uint32_t r = 0; r < g->rows; r++) {
        if (ix->present && atomic_load(&ix->present[r]) != 2) continue;
        for (uint32_t l = 0; l <= ix->levels[r]; l++) {
            const uint32_t *links = hnsw_links(g, r, l);
            if (links[0] > (l ? g->m : g->m0)) return false;
            for (uint32_t i = 0; i < links[0]; i++) {
                uint32_t nb = links[1 + i];
                if (nb >= g->rows || nb == r || ix->levels[nb] < l) return false;
                for (uint32_t j = 0; j < i; j++)
                    if (links[1 + j] == nb) return false;
            }
        }
    }
    return ix->entry == HNSW_NONE || ix->levels[ix->entry] == ix->max_level;
}
