/*
 * bm25.c: BM25 top-k over one source (a segment's or a memtable's field
 * indexes) by block-max WAND, and an exhaustive scorer (bm25.h).
 * Layer: text.
 *
 * Block-max WAND (S. Ding and T. Suel, "Faster top-k document retrieval
 * using block-max indexes", SIGIR 2011), one cursor per (field, term):
 *   theta = the k-th best score so far (min_score until k rows are held).
 *   1. Order cursors by current row. Walk them adding each term's global
 *      bound until the sum exceeds theta: that cursor's row is the pivot
 *      (cursors on the same row join it). No pivot: no row can enter; done.
 *      Rows before the pivot hold only terms whose bounds sum to <= theta,
 *      so they are skipped without a look.
 *   2. Move the pivot terms' block pointers to the blocks holding the pivot
 *      (no decoding) and add their block bounds. If that sum is <= theta,
 *      no row up to the end of the nearest block (or the next cursor's
 *      row) can enter: advance the pivot terms past it.
 *   3. Otherwise, if every pivot term sits on the pivot, score it exactly;
 *      else advance the lagging terms to the pivot and repeat.
 * Bounds are the per-block impacts (index.h) evaluated with the query's
 * corpus-wide idf and avgdl, inflated by BOUND_SLACK so float rounding can
 * never make a bound fall below the exact score it bounds.
 *
 * Exactness: a scored row sums its contributions in the caller's term
 * order, like the exhaustive scorer, so both give bit-identical scores;
 * WAND only decides which rows get scored.
 * Deviation from the paper: rows are admitted only when strictly above
 * theta; since rows come in increasing order, a tie with the k-th score
 * loses to the row already held, which is the row-ascending tie order.
 */
#include "text/bm25.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "text/postings.h"
#include "util/error.h"

/* Relative slack added to every score bound (see above). */
#define BOUND_SLACK 1e-9

/* BM25's idf with the +1 inside the logarithm (as Lucene has it since
 * version 8), which keeps idf positive for terms in over half the documents. */
double text_bm25_idf(uint64_t doc_count, uint64_t df) {
    if (df > doc_count) df = doc_count;
    double n = (double)doc_count, d = (double)df;
    return log(1.0 + (n - d + 0.5) / (d + 0.5));
}

/* ---- cursors ------------------------------------------------------------ */

static inline uint32_t cur_length(const text_cursor *c, uint32_t row) {
    return c->seg ? load_u32(c->seg->lengths + 4ull * row) : c->mem->rows[row].length;
}

static inline double cur_score(const text_cursor *c) {
    return bm25_posting(&c->score, c->tf, cur_length(c, c->row));
}

static inline uint32_t cur_block_last_of(const text_cursor *c, uint32_t blk) {
    if (c->seg) return seg_block_last(c->seg_blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * blk);
    uint64_t end = ((uint64_t)blk + 1) * TEXT_BLOCK_SIZE;
    if (end > c->mt->n) end = c->mt->n;
    return c->mt->rows[end - 1];
}

static double seg_block_bound(const text_cursor *c, uint32_t blk) {
    const uint8_t *be = c->seg_blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * blk;
    double best = 0;
    for (uint32_t i = 0, n = seg_block_impacts(be); i < n; i++) {
        double s = bm25_posting(&c->score, seg_block_impact_tf(be, i), seg_block_impact_dl(be, i));
        if (s > best) best = s;
    }
    return best * (1.0 + BOUND_SLACK);
}

static inline double cur_block_max(text_cursor *c) {
    if (c->blk >= c->n_blocks) return 0; /* exhausted by a shallow move */
    if (c->blk_max < 0) c->blk_max = c->seg ? seg_block_bound(c, c->blk) : c->max_score;
    return c->blk_max;
}

static inline void cur_set_block(text_cursor *c, uint32_t blk) {
    c->blk = blk;
    c->decoded = false;
    c->blk_max = -1;
    if (blk < c->n_blocks) {
        c->blk_last = cur_block_last_of(c, blk);
    } else {
        c->blk_last = TEXT_ROW_END;
        c->row = TEXT_ROW_END;
    }
}

/* Decodes (or points at) block blk; false when it is corrupt. */
static bool cur_load(text_cursor *c, text_search_stats *st) {
    if (c->seg) {
        const uint8_t *be = c->seg_blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * c->blk;
        int64_t prev = c->blk ? (int64_t)seg_block_last(be - TEXT_BLOCK_ENTRY_BYTES) : -1;
        c->n = seg_block_n(be);
        if (!seg_block_decode(c->seg->postings + seg_block_off(be), c->n, seg_block_doc_bits(be),
                              seg_block_tf_bits(be), prev, c->blk_last, c->buf_rows, c->buf_tfs)) {
            c->corrupt = true;
            c->row = TEXT_ROW_END;
            c->blk = c->n_blocks;
            return false;
        }
        c->rows = c->buf_rows;
        c->tfs = c->buf_tfs;
        if (st) st->blocks_decoded++;
    } else {
        uint64_t start = (uint64_t)c->blk * TEXT_BLOCK_SIZE;
        uint64_t n = c->mt->n - start;
        c->n = (uint32_t)(n < TEXT_BLOCK_SIZE ? n : TEXT_BLOCK_SIZE);
        c->rows = c->mt->rows + start;
        c->tfs = c->mt->tfs + start;
    }
    c->decoded = true;
    c->pos = 0;
    return true;
}

/* Settles on the first live posting at or after pos, crossing blocks. */
static void cur_settle(text_cursor *c, text_search_stats *st) {
    for (;;) {
        while (c->pos < c->n && c->tfs[c->pos] == 0) c->pos++; /* memtable tombstones */
        if (c->pos < c->n) {
            c->row = c->rows[c->pos];
            c->tf = c->tfs[c->pos];
            return;
        }
        cur_set_block(c, c->blk + 1);
        if (c->blk >= c->n_blocks || !cur_load(c, st)) return;
    }
}

static void cur_next(text_cursor *c, text_search_stats *st) {
    c->pos++;
    cur_settle(c, st);
}

/* Moves the block pointer to the first block whose last row >= target,
 * without decoding. The cursor's row is stale afterwards until
 * cur_advance (it stays a lower bound of the true position). */
static void cur_shallow(text_cursor *c, uint32_t target) {
    if (c->blk_last >= target) return;
    uint32_t b = c->blk + 1;
    while (b < c->n_blocks && cur_block_last_of(c, b) < target) b++;
    cur_set_block(c, b);
}

/* Moves to the first live posting with row >= target. */
static void cur_advance(text_cursor *c, uint32_t target, text_search_stats *st) {
    if (c->row >= target && c->decoded) return;
    cur_shallow(c, target);
    if (c->blk >= c->n_blocks) {
        c->row = TEXT_ROW_END;
        return;
    }
    if (!c->decoded && !cur_load(c, st)) return;
    /* The block's rows rise; a short scan beats a search for 128 entries. */
    while (c->pos < c->n && c->rows[c->pos] < target) c->pos++;
    cur_settle(c, st);
}

/* Global bound of the cursor's term. */
static double cur_term_bound(const text_cursor *c) {
    if (!c->seg) {
        const mem_term *t = c->mt;
        return bm25_posting(&c->score, t->max_tf, t->min_dl) * (1.0 + BOUND_SLACK);
    }
    double best = 0;
    for (uint32_t b = 0; b < c->n_blocks; b++) {
        double s = seg_block_bound(c, b);
        if (s > best) best = s;
    }
    return best;
}

/* ---- top-k heap (root = worst: lowest score, then highest row) ---------- */

static inline bool hit_worse(const text_hit *a, const text_hit *b) {
    return a->score < b->score || (a->score == b->score && a->row > b->row);
}

static void heap_sift_down(text_hit *h, uint32_t n, uint32_t i) {
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && hit_worse(&h[l], &h[w])) w = l;
        if (r < n && hit_worse(&h[r], &h[w])) w = r;
        if (w == i) return;
        text_hit t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void heap_push(text_hit *h, uint32_t *n, uint32_t k, text_hit x) {
    if (*n < k) {
        uint32_t i = (*n)++;
        h[i] = x;
        while (i > 0) {
            uint32_t p = (i - 1) / 2;
            if (!hit_worse(&h[i], &h[p])) break;
            text_hit t = h[i];
            h[i] = h[p];
            h[p] = t;
            i = p;
        }
    } else {
        h[0] = x;
        heap_sift_down(h, *n, 0);
    }
}

static int cmp_hits_best_first(const void *a, const void *b) {
    const text_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static inline bool row_deleted(const text_search_opts *o, uint32_t row) {
    return o->deleted && row < o->deleted_rows && (o->deleted[row >> 6] >> (row & 63)) & 1;
}

static inline bool row_allowed(const text_search_opts *o, uint32_t row) {
    if (row_deleted(o, row)) return false;
    return !o->accept || o->accept(o->accept_ctx, row);
}

/* ---- setup shared by both searches ------------------------------------- */

static int check_args(const text_field_source *fields, uint32_t n_fields,
                      const text_query_term *terms, uint32_t n_terms,
                      const text_search_opts *opts, tdb_error *err) {
    if (opts->k == 0 || opts->k > TEXT_MAX_K)
        return tdb_err(err, TDB_EINVAL, NULL, "top_k must be 1..%u, got %u", TEXT_MAX_K, opts->k);
    if (n_terms > TEXT_MAX_QUERY_TERMS)
        return tdb_err(err, TDB_EINVAL, NULL, "text query has %u terms; at most %u are allowed",
                       n_terms, TEXT_MAX_QUERY_TERMS);
    for (uint32_t f = 0; f < n_fields; f++)
        if (!(fields[f].weight >= 0) || !isfinite(fields[f].weight))
            return tdb_err(err, TDB_EINVAL, NULL,
                           "text field weight must be a finite number >= 0");
    for (uint32_t t = 0; t < n_terms; t++)
        if (terms[t].field >= n_fields)
            return tdb_err(err, TDB_EINVAL, NULL, "query term %u names field %u of %u", t,
                           terms[t].field, n_fields);
    return 0;
}

/* Scoring constants of one (field, term). */
static void term_scoring(const text_field_source *f, const text_query_term *t, bm25_term *out) {
    out->idf = text_bm25_idf(f->doc_count, t->df);
    out->weight = f->weight;
    /* avgdl 0 only happens with no tokens at all (then nothing matches);
     * keep the division finite for inconsistent statistics. */
    out->avgdl = f->avg_length > 0 && isfinite(f->avg_length) ? f->avg_length : 1.0;
}

/* Opens a cursor on (field, term) if the source holds the term; false if
 * there is nothing to walk. */
static bool cur_open(text_cursor *c, const text_field_source *f, const text_query_term *t,
                     uint32_t term_index, text_search_stats *st) {
    memset(c, 0, offsetof(text_cursor, buf_rows));
    term_scoring(f, t, &c->score);
    c->term_index = term_index;
    if (f->weight == 0) return false;
    if (f->seg) {
        int64_t ti = seg_term_find(f->seg, t->bytes, t->len);
        if (ti < 0) return false;
        const uint8_t *e = f->seg->term_entries + (uint64_t)TEXT_TERM_ENTRY_BYTES * ti;
        uint32_t df = load_u32(e), first = load_u32(e + 4);
        c->seg = f->seg;
        c->seg_blocks = f->seg->blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * first;
        c->n_blocks = (df + TEXT_BLOCK_SIZE - 1) / TEXT_BLOCK_SIZE;
        if (st) st->postings += df;
    } else if (f->mem) {
        int64_t ti = mem_term_find(f->mem, t->bytes, t->len);
        if (ti < 0 || f->mem->terms[ti].df == 0) return false;
        c->mem = f->mem;
        c->mt = &f->mem->terms[ti];
        c->n_blocks = (c->mt->n + TEXT_BLOCK_SIZE - 1) / TEXT_BLOCK_SIZE;
        if (st) st->postings += c->mt->df;
    } else {
        return false;
    }
    c->max_score = cur_term_bound(c);
    cur_set_block(c, 0);
    if (!cur_load(c, st)) return true; /* corrupt: reported by the caller */
    cur_settle(c, st);
    return true;
}

/* ---- block-max WAND -------------------------------------------------------- */

int text_search(const text_field_source *fields, uint32_t n_fields, const text_query_term *terms,
                uint32_t n_terms, const text_search_opts *opts, text_hit *hits, uint32_t *n_hits,
                text_search_stats *stats, tdb_error *err) {
    *n_hits = 0;
    int rc = check_args(fields, n_fields, terms, n_terms, opts, err);
    if (rc) return rc;
    if (n_terms == 0) return 0;
    text_search_stats local_stats = {0, 0, 0};
    text_search_stats *st = stats ? stats : &local_stats;
    memset(st, 0, sizeof(*st));

    text_cursor *all = malloc((size_t)n_terms * sizeof(*all));
    text_cursor **cur = malloc((size_t)n_terms * sizeof(*cur));
    if (!all || !cur) {
        free(all);
        free(cur);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory for a text query");
    }
    uint32_t m = 0;
    bool corrupt = false;
    for (uint32_t t = 0; t < n_terms; t++) {
        text_cursor *c = &all[m];
        if (!cur_open(c, &fields[terms[t].field], &terms[t], t, st)) continue;
        corrupt |= c->corrupt;
        if (c->row != TEXT_ROW_END) cur[m++] = c;
    }

    uint32_t k = opts->k, held = 0;
    double theta = opts->min_score;
    struct {
        uint32_t term_index;
        double contrib;
    } parts[TEXT_MAX_QUERY_TERMS];

    while (m > 0 && !corrupt) {
        /* 1. order by row (few cursors move per step: insertion sort),
         * dropping exhausted ones. */
        for (uint32_t i = 1; i < m; i++) {
            text_cursor *x = cur[i];
            uint32_t j = i;
            while (j > 0 && cur[j - 1]->row > x->row) {
                cur[j] = cur[j - 1];
                j--;
            }
            cur[j] = x;
        }
        while (m > 0 && cur[m - 1]->row == TEXT_ROW_END) m--;
        if (m == 0) break;
        double acc = 0;
        int64_t p = -1;
        for (uint32_t i = 0; i < m; i++) {
            acc += cur[i]->max_score;
            if (acc > theta) {
                p = i;
                break;
            }
        }
        if (p < 0) break;
        uint32_t pivot = cur[p]->row;
        while ((uint32_t)p + 1 < m && cur[p + 1]->row == pivot) p++;

        /* 2. block bounds at the pivot */
        double bsum = 0;
        for (uint32_t i = 0; i <= (uint32_t)p; i++) {
            cur_shallow(cur[i], pivot);
            bsum += cur_block_max(cur[i]);
        }
        if (bsum <= theta) {
            uint64_t next = (uint32_t)p + 1 < m ? cur[p + 1]->row : TEXT_ROW_END;
            for (uint32_t i = 0; i <= (uint32_t)p; i++)
                if ((uint64_t)cur[i]->blk_last + 1 < next) next = (uint64_t)cur[i]->blk_last + 1;
            for (uint32_t i = 0; i <= (uint32_t)p; i++) {
                cur_advance(cur[i], next >= TEXT_ROW_END ? TEXT_ROW_END : (uint32_t)next, st);
                corrupt |= cur[i]->corrupt;
            }
            continue;
        }
        /* 3. score the pivot, or bring the lagging terms up to it */
        if (cur[0]->row != pivot) {
            for (uint32_t i = 0; i < (uint32_t)p; i++) {
                if (cur[i]->row >= pivot) continue;
                cur_advance(cur[i], pivot, st);
                corrupt |= cur[i]->corrupt;
            }
            continue;
        }
        uint32_t np = 0;
        for (uint32_t i = 0; i <= (uint32_t)p; i++) {
            uint32_t j = np++;
            uint32_t ti = cur[i]->term_index;
            double c = cur_score(cur[i]);
            while (j > 0 && parts[j - 1].term_index > ti) {
                parts[j] = parts[j - 1];
                j--;
            }
            parts[j].term_index = ti;
            parts[j].contrib = c;
        }
        double score = 0.0;
        for (uint32_t i = 0; i < np; i++) score += parts[i].contrib;
        st->scored++;
        if (score > theta && row_allowed(opts, pivot)) {
            text_hit h = {pivot, score};
            heap_push(hits, &held, k, h);
            if (held == k && hits[0].score > theta) theta = hits[0].score;
        }
        for (uint32_t i = 0; i <= (uint32_t)p; i++) {
            cur_next(cur[i], st);
            corrupt |= cur[i]->corrupt;
        }
    }
    free(all);
    free(cur);
    if (corrupt) {
        const char *name = "text index";
        for (uint32_t f = 0; f < n_fields; f++)
            if (fields[f].seg) name = fields[f].seg->name;
        return TDB_CORRUPT(err, name, 0, "a text index posting block failed to decode");
    }
    qsort(hits, held, sizeof(*hits), cmp_hits_best_first);
    *n_hits = held;
    return 0;
}

/* ---- exhaustive --------------------------------------------------------- */

int text_search_exhaustive(const text_field_source *fields, uint32_t n_fields,
                           const text_query_term *terms, uint32_t n_terms,
                           const text_search_opts *opts, text_hit *hits, uint32_t *n_hits,
                           tdb_error *err) {
    *n_hits = 0;
    int rc = check_args(fields, n_fields, terms, n_terms, opts, err);
    if (rc) return rc;
    uint64_t rows = 0;
    for (uint32_t f = 0; f < n_fields; f++) {
        uint64_t r = fields[f].seg ? fields[f].seg->row_count
                     : fields[f].mem ? fields[f].mem->max_row_added : 0;
        if (r > rows) rows = r;
    }
    if (rows == 0 || n_terms == 0) return 0;
    double *acc = calloc(rows, sizeof(*acc));
    uint8_t *hit = calloc(rows, 1);
    text_cursor *c = malloc(sizeof(*c));
    if (!acc || !hit || !c) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory for an exact text query");
        goto done;
    }
    /* Term at a time, in term order: each row's sum is built in the same
     * order as text_search builds it. */
    for (uint32_t t = 0; t < n_terms; t++) {
        if (!cur_open(c, &fields[terms[t].field], &terms[t], t, NULL)) continue;
        for (; c->row != TEXT_ROW_END; cur_next(c, NULL)) {
            acc[c->row] += cur_score(c);
            hit[c->row] = 1;
        }
        if (c->corrupt) {
            rc = TDB_CORRUPT(err, c->seg->name, 0, "a text index posting block failed to decode");
            goto done;
        }
    }
    uint32_t held = 0;
    for (uint64_t r = 0; r < rows; r++) {
        if (!hit[r] || !(acc[r] > opts->min_score)) continue;
        text_hit h = {(uint32_t)r, acc[r]};
        if (held == opts->k && !hit_worse(&hits[0], &h)) continue;
        if (!row_allowed(opts, (uint32_t)r)) continue;
        heap_push(hits, &held, opts->k, h);
    }
    qsort(hits, held, sizeof(*hits), cmp_hits_best_first);
    *n_hits = held;
done:
    free(acc);
    free(hit);
    free(c);
    return rc;
}
