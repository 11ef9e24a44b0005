/*
 * vecindex.c: the vector index of a segment: an HNSW graph over its rows
 * (and SQ8 or RaBitQ codes the walk uses, per st_vector_index) built at
 * by the index job (compaction.c; inline at flush below
 * ST_INDEX_INLINE_MAX_ROWS rows) and at compaction, stored as segment
 * extras, then searched in place through views on the mapped sections.
 * Layer: storage. Uses vec/ (hnsw.h, sq8.h, rabitq.h). The search itself
 * (graph or exact per segment, planner, merge) is st_search_ex in
 * collection.c; docs/vector.md ("Search across segments").
 *
 * Extras (collection_int.h): ST_EXTRA_HNSW (hnsw_build's blob, format in
 * vec/hnsw.c), ST_EXTRA_SQ8, ST_EXTRA_RABITQ (vec/sq8.c, vec/rabitq.c).
 * Row r of each is row r of the segment; the graph's vectors and norms are
 * the segment's own sections, borrowed by the view.
 *
 * A segment without a graph (just flushed and waiting for the index job,
 * written before indexes existed, or with a graph this build cannot read)
 * is scanned exactly: open logs and goes on,
 * since the rows themselves passed their checksums.
 *
 * Building: the rows' vectors are gathered into one array in row order
 * (the graph builder wants them contiguous; for cosine it normalizes a
 * copy anyway), with build_threads threads and a fixed seed, so a segment
 * built twice from the same rows on one thread gets the same graph.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "storage/collection_int.h"
#include "util/error.h"
#include "util/log.h"

/* Seeds of the level draws and of the RaBitQ rotation: fixed, so builds
 * are reproducible. */
#define ST_HNSW_SEED 0x7469657264620001ull
#define ST_RABITQ_SEED 0x7469657264620002ull

static int extras_push(st_extras *ex, uint32_t kind, void *data, size_t len) {
    seg_extra *l = realloc(ex->list, (ex->n + 1) * sizeof *l);
    if (l == NULL) return TDB_ENOMEM;
    ex->list = l;
    void **o = realloc(ex->owned, (ex->n_owned + 1) * sizeof *o);
    if (o == NULL) return TDB_ENOMEM;
    ex->owned = o;
    ex->owned[ex->n_owned++] = data;
    ex->list[ex->n++] = (seg_extra){kind, data, len};
    return 0;
}

int st_vec_build_extras(const st_collection *c, const seg_row *rows, size_t n, bool cancellable,
                        st_extras *ex, tdb_error *err) {
    const st_vector_index *vi = &c->opts.vector_index;
    if (c->dimension == 0 || vi->m == 0 || n == 0) return 0;
    if (n > HNSW_MAX_ROWS)
        return tdb_err(err, TDB_ETOOBIG, NULL, "%zu rows are too many for one graph", n);
    size_t dim = c->dimension;
    float *vectors = malloc(n * dim * sizeof *vectors);
    if (vectors == NULL)
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory gathering %zu vectors", n);
    for (size_t i = 0; i < n; i++) memcpy(vectors + i * dim, rows[i].vector, dim * sizeof(float));
    hnsw_params p;
    hnsw_params_default(&p);
    p.m = vi->m;
    if (vi->ef_construction) p.ef_construction = vi->ef_construction;
    p.threads = vi->build_threads ? vi->build_threads : ST_DEFAULT_BUILD_THREADS;
    p.seed = ST_HNSW_SEED;
    void *blob = NULL;
    size_t len = 0;
    int rc = hnsw_build_cancellable(vectors, (uint32_t)n, (uint32_t)dim, c->metric, &p,
                                    cancellable ? &c->cancel : NULL, &blob, &len, err);
    if (rc == 0 && (rc = extras_push(ex, ST_EXTRA_HNSW, blob, len)) < 0) {
        free(blob);
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory storing a graph");
    }
    if (rc == 0 && vi->quantization == ST_QUANT_SQ8) {
        rc = sq8_encode(vectors, (uint32_t)n, (uint32_t)dim, c->metric, &blob, &len, err);
        if (rc == 0 && (rc = extras_push(ex, ST_EXTRA_SQ8, blob, len)) < 0) {
            free(blob);
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory storing codes");
        }
    } else if (rc == 0 && vi->quantization == ST_QUANT_RABITQ) {
        rc = rabitq_encode(vectors, (uint32_t)n, (uint32_t)dim, c->metric, ST_RABITQ_SEED, &blob,
                           &len, err);
        if (rc == 0 && (rc = extras_push(ex, ST_EXTRA_RABITQ, blob, len)) < 0) {
            free(blob);
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory storing codes");
        }
    }
    free(vectors);
    return rc;
}

int st_extras_build(const st_collection *c, const seg_row *rows, size_t n, bool with_vec,
                    bool cancellable, st_extras *ex, tdb_error *err) {
    int rc = st_text_build_extras(c, rows, n, ex, err);
    if (rc == 0 && with_vec) rc = st_vec_build_extras(c, rows, n, cancellable, ex, err);
    if (rc < 0) st_extras_free(ex);
    return rc;
}

/* Opens one optional view; a blob this build cannot read is logged and
 * skipped (the caller falls back), running out of memory is an error. */
static int soft_open(const st_collection *c, const st_seg *s, const char *what, int rc,
                     const tdb_error *oerr, tdb_error *err) {
    if (rc == 0) return 0;
    if (rc == TDB_ENOMEM) return tdb_err(err, rc, NULL, "%s", oerr->message);
    log_msg(LOG_WARN, "collection %s: segment %s: %s not used (%s); searching it %s", c->dir,
            s->path, what, oerr->message, strcmp(what, "graph") == 0 ? "exactly" : "on floats");
    return 1;
}

int st_vec_seg_open(const st_collection *c, st_seg *s, tdb_error *err) {
    if (c->dimension == 0 || s->rows == 0 || s->rows > HNSW_MAX_ROWS) return 0;
    const void *blob;
    size_t len;
    if (seg_extra_get(s->seg, ST_EXTRA_HNSW, &blob, &len) < 0) return 0;
    tdb_error oerr;
    uint32_t rows = (uint32_t)s->rows;
    int rc = hnsw_view_open(blob, len, rows, c->dimension, c->metric, seg_vectors(s->seg),
                            seg_norms(s->seg), &s->hnsw, &oerr);
    rc = soft_open(c, s, "graph", rc, &oerr, err);
    if (rc != 0) {
        s->hnsw = NULL;
        return rc < 0 ? rc : 0;
    }
    if (seg_extra_get(s->seg, ST_EXTRA_SQ8, &blob, &len) == 0) {
        rc = sq8_view_open(blob, len, rows, c->dimension, c->metric, &s->sq8, &oerr);
        rc = soft_open(c, s, "SQ8 codes", rc, &oerr, err);
        if (rc < 0) return rc;
        if (rc == 0) hnsw_view_use_sq8(s->hnsw, s->sq8);
        else s->sq8 = NULL;
    } else if (seg_extra_get(s->seg, ST_EXTRA_RABITQ, &blob, &len) == 0) {
        rc = rabitq_view_open(blob, len, rows, c->dimension, c->metric, &s->rabitq, &oerr);
        rc = soft_open(c, s, "RaBitQ codes", rc, &oerr, err);
        if (rc < 0) return rc;
        if (rc == 0) hnsw_view_use_rabitq(s->hnsw, s->rabitq);
        else s->rabitq = NULL;
    }
    return 0;
}

void st_vec_seg_close(st_seg *s) {
    hnsw_view_close(s->hnsw);
    sq8_view_close(s->sq8);
    rabitq_view_close(s->rabitq);
    s->hnsw = NULL;
    s->sq8 = NULL;
    s->rabitq = NULL;
}

uint32_t st_test_index_inline_rows;

/* TDB_INDEX_INLINE_ROWS=N (testing: the soak sets it so that its small
 * flushes go through the index job) replaces ST_INDEX_INLINE_MAX_ROWS;
 * read once. */
static uint32_t env_inline_rows(void) {
    static _Atomic uint32_t cached = UINT32_MAX;
    uint32_t v = atomic_load(&cached);
    if (v == UINT32_MAX) {
        const char *env = getenv("TDB_INDEX_INLINE_ROWS");
        char *end = NULL;
        unsigned long n = env ? strtoul(env, &end, 10) : 0;
        v = env && *env && end && *end == '\0' && n >= 1 && n < UINT32_MAX ? (uint32_t)n : 0;
        atomic_store(&cached, v);
    }
    return v;
}

uint32_t st_index_inline_rows(void) {
    if (st_test_index_inline_rows) return st_test_index_inline_rows;
    uint32_t env = env_inline_rows();
    return env ? env : ST_INDEX_INLINE_MAX_ROWS;
}

bool st_seg_needs_graph(const st_collection *c, const st_seg *s) {
    return c->dimension > 0 && c->opts.vector_index.m > 0 && s->hnsw == NULL &&
           s->rows >= st_index_inline_rows() && s->rows <= HNSW_MAX_ROWS;
}

bool st_seg_fully_indexed(const st_collection *c, const st_seg *s) {
    if (c->dimension > 0 && c->opts.vector_index.m > 0 && s->hnsw == NULL) return false;
    return true;
}
