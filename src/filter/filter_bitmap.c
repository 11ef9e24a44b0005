/*
 * filter_bitmap.c: bitmaps of matching rows and selectivity estimates.
 * Layer: filter. Rows come from the caller through filter_rows (a visitor
 * that hands over one row's id and attributes by row number), so this file
 * knows nothing of segment or memtable layouts.
 *
 * Estimation method (filter.h has the contract): exact when the rows are
 * few (at most the sample size), else uniform sampling with replacement
 * from a seeded splitmix64 stream, reported with a Wilson score upper
 * bound. Sampling with replacement keeps the draws independent, so the
 * binomial bound is right, and needs no memory; a repeated row costs one
 * extra match. Rows the visitor skips (deleted) are drawn again, up to
 * SAMPLE_DRAW_FACTOR times the sample size in all, so a segment that is
 * mostly deleted still yields a useful sample without an unbounded walk.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter.h"
#include "util/error.h"

/* Matches collected before one roaring_bitmap_add_many call. */
#define BITMAP_BATCH_ROWS 1024

/* Draws per wanted sample row at most (see the file comment). */
#define SAMPLE_DRAW_FACTOR 4

/* z of a two-sided 95% interval, whose upper end is reported. */
#define WILSON_Z 1.959963984540054

static bool row_matches(const filter_expr *e, const filter_row *r) {
    if (r->attrs != NULL || !filter_needs_attrs(e)) return filter_match(e, r->id, r->id_len, r->attrs);
    return filter_match_text(e, r->id, r->id_len, r->attrs_json, r->attrs_len);
}

/* visit_row's answer for a skipped row (1 is a match, 0 no match). */
#define ROW_SKIPPED 2

/* Calls the visitor for `row`: 1 match, 0 no match, ROW_SKIPPED, or the
 * visitor's negative error. */
static int visit_row(const filter_expr *e, const filter_rows *rows, uint32_t row, tdb_error *err) {
    filter_row r;
    memset(&r, 0, sizeof r);
    int rc = rows->get(rows->ctx, row, &r, err);
    if (rc < 0) return rc;
    if (rc == FILTER_ROW_SKIP) return ROW_SKIPPED;
    return row_matches(e, &r) ? 1 : 0;
}

/* A walk over every row of `rows` in increasing order: on_row(w, row,
 * matched) is called for each row not skipped; rc keeps the visitor's
 * error, which stops the walk. */
typedef struct walk {
    const filter_expr *e;
    const filter_rows *rows;
    tdb_error *err;
    int rc;
    void (*on_row)(struct walk *w, uint32_t row, bool matched);
    /* bitmap build */
    roaring_bitmap_t *bitmap;
    uint32_t batch[BITMAP_BATCH_ROWS];
    uint32_t batch_len;
    /* counting */
    uint64_t evaluated, matched;
} walk;

static bool walk_one(uint32_t row, void *ctx) {
    walk *w = ctx;
    if (row >= w->rows->row_count) return false; /* candidates are sorted: the rest are too */
    int rc = visit_row(w->e, w->rows, row, w->err);
    if (rc < 0) {
        w->rc = rc;
        return false;
    }
    if (rc != ROW_SKIPPED) w->on_row(w, row, rc == 1);
    return true;
}

static int walk_all(walk *w) {
    if (w->rows->candidates != NULL) {
        roaring_iterate(w->rows->candidates, walk_one, w);
        return w->rc;
    }
    for (uint32_t row = 0; row < w->rows->row_count; row++)
        if (!walk_one(row, w)) break;
    return w->rc;
}

static void flush_batch(walk *w) {
    if (w->batch_len == 0) return;
    roaring_bitmap_add_many(w->bitmap, w->batch_len, w->batch);
    w->batch_len = 0;
}

static void on_row_bitmap(walk *w, uint32_t row, bool matched) {
    if (!matched) return;
    w->batch[w->batch_len++] = row;
    if (w->batch_len == BITMAP_BATCH_ROWS) flush_batch(w);
}

static void on_row_count(walk *w, uint32_t row, bool matched) {
    (void)row;
    w->evaluated++;
    if (matched) w->matched++;
}

int filter_bitmap_build(const filter_expr *e, const filter_rows *rows, roaring_bitmap_t **out,
                        tdb_error *err) {
    *out = NULL;
    walk *w = calloc(1, sizeof *w); /* the batch is too large for some stacks */
    if (w == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory building a filter bitmap");
    w->e = e;
    w->rows = rows;
    w->err = err;
    w->on_row = on_row_bitmap;
    w->bitmap = roaring_bitmap_create();
    if (w->bitmap == NULL) {
        free(w);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory building a filter bitmap");
    }
    int rc = walk_all(w);
    flush_batch(w);
    if (rc < 0) {
        roaring_bitmap_free(w->bitmap);
    } else {
        roaring_bitmap_run_optimize(w->bitmap);
        *out = w->bitmap;
    }
    free(w);
    return rc;
}

/* Wilson score interval's upper end for m successes in n trials. */
static double wilson_upper(uint64_t m, uint64_t n) {
    if (n == 0) return 1.0;
    double nn = (double)n, p = (double)m / nn, z2 = WILSON_Z * WILSON_Z;
    double centre = p + z2 / (2 * nn);
    double spread = WILSON_Z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    double upper = (centre + spread) / (1 + z2 / nn);
    return upper > 1.0 ? 1.0 : upper;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Rows a walk would visit: candidates below row_count, or row_count. */
static uint64_t population(const filter_rows *rows) {
    if (rows->candidates == NULL) return rows->row_count;
    if (rows->row_count == 0) return 0;
    return roaring_bitmap_rank(rows->candidates, rows->row_count - 1);
}

int filter_selectivity_estimate(const filter_expr *e, const filter_rows *rows, uint32_t sample_rows,
                                uint64_t seed, filter_estimate *out, tdb_error *err) {
    memset(out, 0, sizeof *out);
    if (sample_rows == 0) sample_rows = FILTER_DEFAULT_SAMPLE_ROWS;
    uint64_t n = population(rows);
    walk w;
    memset(&w, 0, sizeof w);
    w.e = e;
    w.rows = rows;
    w.err = err;
    w.on_row = on_row_count;
    if (n <= sample_rows) {
        int rc = walk_all(&w);
        if (rc < 0) return rc;
        out->exact = true;
        out->evaluated = w.evaluated;
        out->matched = w.matched;
        out->selectivity = w.evaluated ? (double)w.matched / (double)w.evaluated : 0.0;
        out->upper95 = out->selectivity;
        return 0;
    }
    uint64_t state = seed;
    uint64_t draws_left = (uint64_t)sample_rows * SAMPLE_DRAW_FACTOR;
    while (w.evaluated < sample_rows && draws_left-- > 0) {
        /* n < 2^32: the modulo's bias is below 2^-32, far under the
         * sampling error. */
        uint32_t rank = (uint32_t)(splitmix64(&state) % n), row = rank;
        if (rows->candidates != NULL && !roaring_bitmap_select(rows->candidates, rank, &row))
            continue; /* cannot happen: rank < cardinality */
        int rc = visit_row(e, rows, row, err);
        if (rc < 0) return rc;
        if (rc != ROW_SKIPPED) on_row_count(&w, row, rc == 1);
    }
    out->evaluated = w.evaluated;
    out->matched = w.matched;
    out->selectivity = w.evaluated ? (double)w.matched / (double)w.evaluated : 0.0;
    out->upper95 = wilson_upper(w.matched, w.evaluated);
    return 0;
}

void filter_selectivity_from_bitmap(const roaring_bitmap_t *matches, uint64_t total_rows,
                                    filter_estimate *out) {
    memset(out, 0, sizeof *out);
    out->exact = true;
    out->evaluated = total_rows;
    out->matched = matches != NULL ? roaring_bitmap_get_cardinality(matches) : 0;
    if (out->matched > total_rows) out->matched = total_rows; /* a caller's miscount */
    out->selectivity = total_rows ? (double)out->matched / (double)total_rows : 0.0;
    out->upper95 = out->selectivity;
}
