/*
 * compaction.c: merging segments into one and dropping deleted rows, in
 * the background, never blocking readers.
 * Layer: storage. Runs on the background pool after a flush (when the
 * segment count reaches compaction_min_segments) or in the caller of
 * st_compact. Shared state: collection_int.h; docs/storage.md.
 *
 * A compaction, step by step (invariant numbers from collection_int.h):
 *   1. under write_mu: take a reference to the view, note the snapshot
 *      S = applied_seqno and pick the inputs. Rows whose mark is <= S are
 *      dead to every reader of any later view, so the output drops them.
 *   2. without locks: a k-way merge of the inputs' other rows in id order
 *      into a new segment file, remembering for each output row the input
 *      row it came from (rows stay in the mappings of the held inputs).
 *      Its indexes are built from scratch over the merged rows: the HNSW
 *      graph from the vectors, the text indexes by analyzing the stored
 *      attributes again (simplest correct choice: the text blob has no
 *      merge path, and re-analysis is cheap beside the graph build).
 *   3. under manifest_mu: the MANIFEST with the inputs replaced by the
 *      output is stored (after a WAL sync unless fsync=always, since
 *      dropping a row makes its delete permanent: I6).
 *   4. under write_mu and text_mu: marks set on the inputs since S are
 *      copied to the output rows (their seqnos too, so older snapshots
 *      still read right), the view swaps the inputs for the output, and
 *      the inputs become obsolete: each file is unlinked when its last
 *      reader lets go (I7).
 * Writes continue throughout (they mark input rows, which step 4 carries
 * over); reads continue on whichever view they took.
 *
 * The index job. A flush installs a segment of ST_INDEX_INLINE_MAX_ROWS
 * rows or more without its graph (flush.c), so writers never wait on a
 * graph build; readers scan it exactly meanwhile. The index job then
 * rewrites it as a one-input compaction (ST_PICK_INDEX): the same steps
 * 1-4, so the output has the graph and codes, drops rows dead at its
 * snapshot, gets the marks set since then, replaces the input in the
 * MANIFEST and the view, and the input file goes with its last reader.
 * A crash before step 3 leaves the old MANIFEST (recovery removes the
 * unlisted output); after it, the new one. An open that finds graph-less
 * segments (a crash before the job ended, a restore that wrote them)
 * queues the job; opening never builds a graph. A compaction that merges
 * a graph-less segment first builds its output's graph as always, and the
 * job then finds nothing to do.
 *
 * Cancel. st_close sets c->cancel: a graph build in progress (index job,
 * compaction, idle merge) gives up within one row insert per build
 * thread (hnsw_build_cancellable), before its output file was created,
 * so the inputs stay as they are and nothing is left half-written.
 *
 * The idle merge. Once a collection has taken no write for
 * compaction_idle_merge_ms after a flush and holds more than one segment,
 * every segment is merged into one in the background (ST_PICK_ALL), so
 * an idle collection answers from one graph. Once per idle period: the
 * timer ends after queuing the merge, and only a flush arms it again.
 *
 * Which segments (background): the size-tiered rule of LSM stores, so
 * each row is rewritten O(log n) times rather than on every merge: among
 * the segments sorted by rows, the first run of compaction_min_segments
 * neighbours whose largest is at most ST_COMPACTION_SIZE_RATIO times the
 * smallest; failing that, once there are twice as many segments as the
 * threshold, the smallest ones anyway (bounds the count, and so the cost
 * of every point read). st_compact merges everything.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/collection_int.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/log.h"

/* Segments whose sizes are within this factor count as one size tier. */
#define ST_COMPACTION_SIZE_RATIO 4u
/* Merges one background job may run back to back before yielding its
 * worker to other collections. */
#define ST_COMPACTION_MAX_ROUNDS 4

void (*st_test_compaction_hook)(st_collection *c);

/* For qsort by rows: (rows, index) pairs. */
typedef struct seg_size {
    uint64_t rows;
    size_t index;
} seg_size;

static int seg_size_cmp(const void *a, const void *b) {
    const seg_size *x = a, *y = b;
    if (x->rows != y->rows) return x->rows < y->rows ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

static int index_cmp(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : (x > y);
}

static bool has_marks(const st_seg *s) {
    for (uint64_t row = 0; row < s->rows; row++)
        if (atomic_load_explicit(&s->marks[row], memory_order_relaxed) != ST_MARK_LIVE) return true;
    return false;
}

/* Fills idx (ascending positions in v->segs) with the inputs; returns how
 * many (0: nothing worth merging). */
static size_t pick_inputs(const st_collection *c, const st_view *v, st_compact_pick pick,
                          size_t *idx) {
    size_t n = v->nsegs;
    if (pick == ST_PICK_INDEX) {
        for (size_t i = 0; i < n; i++)
            if (st_seg_needs_graph(c, v->segs[i])) {
                idx[0] = i;
                return 1;
            }
        return 0;
    }
    if (pick == ST_PICK_ALL) {
        if (n == 0 || (n == 1 && !has_marks(v->segs[0]))) return 0;
        for (size_t i = 0; i < n; i++) idx[i] = i;
        return n;
    }
    size_t want = c->opts.compaction_min_segments;
    if (want < 2) want = 2;
    if (n < want) return 0;
    seg_size *sizes = malloc(n * sizeof *sizes);
    if (sizes == NULL) return 0;
    for (size_t i = 0; i < n; i++) sizes[i] = (seg_size){v->segs[i]->rows, i};
    qsort(sizes, n, sizeof *sizes, seg_size_cmp);
    size_t start = SIZE_MAX;
    for (size_t i = 0; i + want <= n && start == SIZE_MAX; i++) {
        uint64_t lo = sizes[i].rows ? sizes[i].rows : 1;
        if (sizes[i + want - 1].rows <= lo * ST_COMPACTION_SIZE_RATIO) start = i;
    }
    if (start == SIZE_MAX && n >= 2 * want) start = 0;
    size_t count = 0;
    if (start != SIZE_MAX) {
        for (size_t i = 0; i < want; i++) idx[count++] = sizes[start + i].index;
        qsort(idx, count, sizeof *idx, index_cmp);
    }
    free(sizes);
    return count;
}

typedef struct merge_out {
    st_seg **inputs;
    uint32_t *src_input; /* per output row: which input */
    uint64_t *src_row;   /* ... and which row of it */
} merge_out;

static uint64_t output_mark(void *ctx, uint64_t row) {
    const merge_out *m = ctx;
    const st_seg *in = m->inputs[m->src_input[row]];
    return atomic_load_explicit(&in->marks[m->src_row[row]], memory_order_relaxed);
}

/* Skips rows dead at snapshot s (marked at or before it). */
static void skip_dead(const st_seg *in, uint64_t *row, uint64_t s) {
    while (*row < in->rows) {
        uint64_t m = atomic_load_explicit(&in->marks[*row], memory_order_relaxed);
        if (m == ST_MARK_LIVE || m > s) return;
        (*row)++;
    }
}

int st_compact_locked(st_collection *c, st_compact_pick pick, bool *merged, tdb_error *err) {
    tdb_error local;
    tdb_error *e = err ? err : &local;
    *merged = false;
    int rc = 0;
    size_t k = 0;
    size_t *idx = NULL;
    uint64_t *cursor = NULL;
    seg_row *rows = NULL;
    merge_out mo = {0};
    st_seg *out = NULL;
    st_view *nv = NULL, *old = NULL;
    char *path = NULL;
    bool keep_file = false; /* the MANIFEST may list the output: never unlink */
    bool commit_failed = false;
    st_failure how = ST_FAILURE_FATAL; /* of a failed commit */

    /* 1. Inputs and snapshot. */
    uint64_t snap;
    st_view *v = st_view_acquire(c, &snap);
    idx = malloc((v->nsegs ? v->nsegs : 1) * sizeof *idx);
    if (idx == NULL) {
        rc = tdb_err(e, TDB_ENOMEM, NULL, "out of memory planning a compaction");
        goto done;
    }
    k = pick_inputs(c, v, pick, idx);
    if (k == 0) goto done;
    mo.inputs = malloc(k * sizeof *mo.inputs);
    cursor = calloc(k, sizeof *cursor);
    uint64_t total = 0;
    for (size_t i = 0; i < k && mo.inputs; i++) {
        mo.inputs[i] = v->segs[idx[i]];
        total += mo.inputs[i]->rows;
    }
    rows = malloc((total ? total : 1) * sizeof *rows);
    mo.src_input = malloc((total ? total : 1) * sizeof *mo.src_input);
    mo.src_row = malloc((total ? total : 1) * sizeof *mo.src_row);
    if (!mo.inputs || !cursor || !rows || !mo.src_input || !mo.src_row) {
        rc = tdb_err(e, TDB_ENOMEM, NULL, "out of memory merging %" PRIu64 " rows", total);
        goto done;
    }

    /* 2. Merge. Invariant: each cursor is on its input's first row that is
     * alive at snap and has an id above every row emitted so far. */
    size_t n = 0;
    for (size_t i = 0; i < k; i++) skip_dead(mo.inputs[i], &cursor[i], snap);
    for (;;) {
        size_t best = SIZE_MAX;
        const char *best_id = NULL;
        uint32_t best_len = 0;
        for (size_t i = 0; i < k; i++) {
            if (cursor[i] >= mo.inputs[i]->rows) continue;
            uint32_t len;
            const char *id = seg_id(mo.inputs[i]->seg, cursor[i], &len);
            int cmp = best == SIZE_MAX ? -1 : seg_id_cmp(id, len, best_id, best_len);
            /* An id alive in two inputs would break I3; should it happen,
             * the newest version wins, as everywhere. */
            if (cmp < 0 || (cmp == 0 && seg_seqno(mo.inputs[i]->seg, cursor[i]) >
                                            seg_seqno(mo.inputs[best]->seg, cursor[best]))) {
                best = i;
                best_id = id;
                best_len = len;
            }
        }
        if (best == SIZE_MAX) break;
        const st_seg *in = mo.inputs[best];
        uint64_t r = cursor[best];
        rows[n] = (seg_row){best_id, best_len, seg_seqno(in->seg, r), seg_vector(in->seg, r),
                            NULL, 0};
        rows[n].attrs = seg_attrs(in->seg, r, &rows[n].attrs_len);
        mo.src_input[n] = (uint32_t)best;
        mo.src_row[n] = r;
        n++;
        for (size_t i = 0; i < k; i++) {
            if (cursor[i] >= mo.inputs[i]->rows) continue;
            uint32_t len;
            const char *id = seg_id(mo.inputs[i]->seg, cursor[i], &len);
            if (seg_id_cmp(id, len, best_id, best_len) != 0) continue;
            if (i != best)
                log_msg(LOG_ERROR, "collection %s: id alive in two segments; keeping the newest",
                        c->dir);
            cursor[i]++;
            skip_dead(mo.inputs[i], &cursor[i], snap);
        }
    }

    /* Write the output (none when every row was dead). */
    if (n > 0) {
        uint64_t id = atomic_fetch_add(&c->next_segment_id, 1);
        if (st_seg_path(c, id, &path) < 0) {
            rc = tdb_err(e, TDB_ENOMEM, NULL, "out of memory compacting");
            goto done;
        }
        /* Indexes are rebuilt from the merged rows: the text ones by
         * analyzing the stored attributes again (the text index format has
         * no merge), the graph from the vectors. */
        st_extras extras = {0};
        rc = st_extras_build(c, rows, n, true, true, &extras, e);
        if (rc == 0)
            rc = seg_write(path, c->dimension, c->metric, rows, n, extras.list, extras.n, e);
        st_extras_free(&extras);
        if (rc < 0) goto done;
        rc = st_seg_open(c, id, &out, e);
        if (rc < 0) {
            fio_unlink(path);
            goto done;
        }
    }

    if (st_test_compaction_hook != NULL) st_test_compaction_hook(c);

    /* 3. Commit, 4. install. A flush may have added segments since v was
     * taken; under manifest_mu the list holds still (only flush and
     * compaction change it, both under manifest_mu), and the inputs are
     * still in it (only compaction removes segments). */
    pthread_mutex_lock(&c->manifest_mu);
    uint64_t now_snap;
    st_view *now = st_view_acquire(c, &now_snap);
    size_t nsegs_now = now->nsegs, add_at = 0;
    while (add_at < nsegs_now && now->segs[add_at] != mo.inputs[0]) add_at++;
    st_view_release(now);
    nv = st_view_new(nsegs_now - k + (out ? 1 : 0));
    if (nv == NULL) {
        pthread_mutex_unlock(&c->manifest_mu);
        rc = tdb_err(e, TDB_ENOMEM, NULL, "out of memory installing a compaction");
        goto done;
    }
    st_commit cm = {.remove = mo.inputs, .n_remove = k, .add = out, .add_at = add_at,
                    .add_mark = output_mark, .add_ctx = &mo,
                    .checkpoint = atomic_load(&c->checkpoint_seqno), .min_durable = snap};
    rc = st_manifest_commit(c, &cm, &how, e);
    if (rc < 0) {
        pthread_mutex_unlock(&c->manifest_mu);
        /* The store may have renamed the new MANIFEST into place: keep the
         * output and the inputs (the collection turns read-only below);
         * the next open removes whichever is not listed. When the old
         * MANIFEST is known to be in place, the output goes now. */
        commit_failed = true;
        keep_file = how == ST_FAILURE_FATAL;
        goto done;
    }
    pthread_mutex_lock(&c->write_mu);
    st_text_write_lock(c);
    st_view *cur = c->view;
    assert(cur->nsegs == nsegs_now);
    uint64_t live_in = 0, live_out = 0;
    for (size_t i = 0; i < k; i++)
        for (uint64_t r = 0; r < mo.inputs[i]->rows; r++)
            live_in += atomic_load_explicit(&mo.inputs[i]->marks[r], memory_order_relaxed) ==
                       ST_MARK_LIVE;
    if (out != NULL) {
        for (uint64_t r = 0; r < out->rows; r++) {
            uint64_t m = output_mark(&mo, r);
            if (m != ST_MARK_LIVE) st_mark_row(out, r, m);
            else live_out++;
        }
    }
    /* Equal unless I3 was broken; kept exact either way (I5). */
    c->seg_live_rows = c->seg_live_rows - live_in + live_out;
    nv->mem = cur->mem;
    mt_ref(cur->mem);
    nv->frozen = cur->frozen;
    if (cur->frozen) mt_ref(cur->frozen);
    size_t j = 0;
    for (size_t i = 0; i < cur->nsegs; i++) {
        bool input = false;
        for (size_t x = 0; x < k; x++) input |= cur->segs[i] == mo.inputs[x];
        if (input) {
            if (i == add_at && out != NULL) nv->segs[j++] = out;
            atomic_store(&cur->segs[i]->obsolete, true);
            continue;
        }
        nv->segs[j++] = cur->segs[i];
        st_seg_ref(cur->segs[i]);
    }
    assert(j == nv->nsegs);
    out = NULL; /* the view took our reference */
    old = st_view_swap_locked(c, nv);
    nv = NULL;
    st_text_write_unlock(c);
    pthread_mutex_unlock(&c->write_mu);
    pthread_mutex_unlock(&c->manifest_mu);
    atomic_fetch_add(&c->compactions, 1);
    *merged = true;
done:
    if (out != NULL) {
        if (!keep_file) atomic_store(&out->obsolete, true);
        st_seg_unref(out);
    }
    /* Read-only after an fsync failure (or an unknown MANIFEST), else a
     * later retry (flush.c, "Failures"); its files are gone by now. */
    if (rc == TDB_ESHUTDOWN) {
        /* Cancelled by st_close: nothing was written, the inputs stay. */
        log_msg(LOG_INFO, "collection %s: a segment rewrite was cancelled by the close", c->dir);
    } else if (rc < 0 || *merged)
        st_compaction_outcome(c, rc, commit_failed ? how : st_failure_of(rc, e), rc < 0 ? e : NULL);
    st_view_release(nv);
    st_view_release(old);
    st_view_release(v);
    free(idx);
    free(cursor);
    free(rows);
    free(mo.inputs);
    free(mo.src_input);
    free(mo.src_row);
    free(path);
    return rc;
}

int st_compact(st_collection *c, tdb_error *err) {
    bool merged;
    pthread_mutex_lock(&c->compact_mu);
    int rc = st_compact_locked(c, ST_PICK_ALL, &merged, err);
    pthread_mutex_unlock(&c->compact_mu);
    return rc;
}

static void compaction_job(void *arg) {
    st_collection *c = arg;
    for (int round = 0; round < ST_COMPACTION_MAX_ROUNDS; round++) {
        tdb_error err;
        bool merged = false;
        pthread_mutex_lock(&c->compact_mu);
        int rc = st_compact_locked(c, ST_PICK_POLICY, &merged, &err);
        pthread_mutex_unlock(&c->compact_mu);
        (void)err; /* a failure was logged and handled by st_compaction_outcome */
        pthread_mutex_lock(&c->write_mu);
        bool stop = rc < 0 || !merged || c->closing;
        pthread_mutex_unlock(&c->write_mu);
        if (stop) break;
    }
    pthread_mutex_lock(&c->write_mu);
    c->compaction_scheduled = false;
    c->jobs_pending--;
    pthread_cond_broadcast(&c->job_cv);
    pthread_mutex_unlock(&c->write_mu);
}

/* The index job: one-input compactions of the segments flushed without
 * their graph, oldest first, until none is left (or the close). */
static void index_job(void *arg) {
    st_collection *c = arg;
    for (;;) {
        tdb_error err;
        bool merged = false;
        pthread_mutex_lock(&c->compact_mu);
        int rc = st_compact_locked(c, ST_PICK_INDEX, &merged, &err);
        pthread_mutex_unlock(&c->compact_mu);
        (void)err; /* logged and handled by st_compaction_outcome */
        pthread_mutex_lock(&c->write_mu);
        bool stop = rc < 0 || !merged || c->closing;
        pthread_mutex_unlock(&c->write_mu);
        if (stop) break;
    }
    pthread_mutex_lock(&c->write_mu);
    c->index_scheduled = false;
    c->jobs_pending--;
    pthread_cond_broadcast(&c->job_cv);
    pthread_mutex_unlock(&c->write_mu);
}

static void schedule_index(st_collection *c) {
    pthread_mutex_lock(&c->write_mu);
    bool need = false;
    for (size_t i = 0; i < c->view->nsegs && !need; i++)
        need = st_seg_needs_graph(c, c->view->segs[i]);
    if (!need || c->index_scheduled || c->closing || c->wal == NULL ||
        (c->compaction_failures > 0 && clock_mono_ns() < c->compaction_retry_at_ns)) {
        pthread_mutex_unlock(&c->write_mu);
        return;
    }
    c->index_scheduled = true;
    c->jobs_pending++;
    pthread_mutex_unlock(&c->write_mu);
    if (c->opts.background == NULL || pool_submit(c->opts.background, index_job, c) != 0)
        index_job(c);
}

/* The idle merge: one st_compact-like merge of every segment. */
static void idle_merge_job(void *arg) {
    st_collection *c = arg;
    tdb_error err;
    bool merged = false;
    pthread_mutex_lock(&c->compact_mu);
    (void)st_compact_locked(c, ST_PICK_ALL, &merged, &err);
    pthread_mutex_unlock(&c->compact_mu);
    if (merged)
        log_msg(LOG_INFO, "collection %s: idle for %u ms; merged its segments into one", c->dir,
                c->opts.compaction_idle_merge_ms);
    pthread_mutex_lock(&c->write_mu);
    c->jobs_pending--;
    pthread_cond_broadcast(&c->job_cv);
    pthread_mutex_unlock(&c->write_mu);
}

/* The idle-merge timer: sleeps until no write was applied for
 * compaction_idle_merge_ms, then queues one merge of all segments (when
 * there are several) and ends; the next flush arms it again, so each idle
 * period gets at most one merge and a collection nobody writes to (cold,
 * or just opened) gets none. A thread rather than a pool job, like the
 * flush retry timer: it mostly sleeps. Closing wakes it (retry_cv). */
static void *idle_timer_main(void *arg) {
    st_collection *c = arg;
    uint64_t idle_ns = (uint64_t)c->opts.compaction_idle_merge_ms * 1000000ull;
    pthread_mutex_lock(&c->write_mu);
    for (;;) {
        if (c->closing || atomic_load(&c->read_only)) break;
        uint64_t now = clock_mono_ns();
        uint64_t due = atomic_load(&c->last_write_ns) + idle_ns;
        if (now < due) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (due - now);
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_timedwait(&c->retry_cv, &c->write_mu, &ts);
            continue;
        }
        /* Idle: a flush still running counts as activity. */
        if (c->flush_scheduled || c->view->frozen != NULL) {
            atomic_store(&c->last_write_ns, now);
            continue;
        }
        c->idle_merged = true;
        if (c->view->nsegs > 1) {
            c->jobs_pending++;
            pthread_mutex_unlock(&c->write_mu);
            if (c->opts.background == NULL ||
                pool_submit(c->opts.background, idle_merge_job, c) != 0)
                idle_merge_job(c);
            pthread_mutex_lock(&c->write_mu);
        }
        break;
    }
    c->idle_timer = false;
    c->jobs_pending--;
    pthread_cond_broadcast(&c->job_cv);
    pthread_mutex_unlock(&c->write_mu);
    return NULL;
}

static void arm_idle_merge(st_collection *c) {
    pthread_mutex_lock(&c->write_mu);
    /* A flush happened: a new idle period may begin. */
    c->idle_merged = false;
    if (c->opts.compaction_idle_merge_ms == 0 || c->idle_timer || c->closing ||
        c->wal == NULL || c->view->nsegs < 2 || atomic_load(&c->read_only)) {
        pthread_mutex_unlock(&c->write_mu);
        return;
    }
    c->idle_timer = true;
    c->jobs_pending++;
    pthread_mutex_unlock(&c->write_mu);
    int rc = st_thread_start_detached(idle_timer_main, c);
    if (rc != 0) {
        log_msg(LOG_WARN, "collection %s: cannot start the idle-merge timer: %s", c->dir,
                strerror(rc));
        pthread_mutex_lock(&c->write_mu);
        c->idle_timer = false;
        c->jobs_pending--;
        pthread_cond_broadcast(&c->job_cv);
        pthread_mutex_unlock(&c->write_mu);
    }
}

void st_schedule_index(st_collection *c) {
    schedule_index(c);
}

void st_schedule_compaction(st_collection *c) {
    schedule_index(c);
    arm_idle_merge(c);
    pthread_mutex_lock(&c->write_mu);
    /* After a failure (a full disk, say), not before its backoff ran out. */
    if (c->compaction_scheduled || c->closing || c->view->nsegs < c->opts.compaction_min_segments ||
        (c->compaction_failures > 0 && clock_mono_ns() < c->compaction_retry_at_ns)) {
        pthread_mutex_unlock(&c->write_mu);
        return;
    }
    c->compaction_scheduled = true;
    c->jobs_pending++;
    pthread_mutex_unlock(&c->write_mu);
    if (c->opts.background == NULL || pool_submit(c->opts.background, compaction_job, c) != 0)
        compaction_job(c);
}
