/*
 * flush.c: writing a frozen memtable to a segment, and committing segment
 * list changes (flush and compaction) to the MANIFEST.
 * Layer: storage. Runs on the background pool (st_options.background) or
 * in the caller of st_flush; during recovery with no WAL open. Shared
 * state: collection_int.h; the whole picture: docs/storage.md.
 *
 * A flush, step by step (invariant numbers from collection_int.h):
 *   1. under write_mu: the active memtable becomes the frozen one (still
 *      read by queries) and a new empty one takes writes; the checkpoint is
 *      applied_seqno at that instant, so the frozen memtable holds exactly
 *      the writes in (previous checkpoint, checkpoint] (I2). A frozen
 *      memtable left by a failed flush is retried instead.
 *   2. wal_rotate, so the records <= checkpoint lie in closed files that
 *      step 6 can delete.
 *   3. without locks: its newest version per id, tombstones left out, is
 *      written to segments/<id>.seg (seg_write: temp file, fsync, rename)
 *      with the indexes as extra sections (st_extras_build: one text
 *      index per full-text field; the HNSW graph and codes only below
 *      ST_INDEX_INLINE_MAX_ROWS rows, else the background index job of
 *      compaction.c rewrites the segment with them later).
 *      A tombstone needs no row: the rows it shadows in older segments
 *      were marked when it was applied.
 *   4. under manifest_mu: the MANIFEST with the new segment, the delete
 *      lists and the checkpoint is stored (the commit point, I6).
 *   5. under write_mu (and text_mu): the segment's rows superseded by
 *      writes applied since the freeze are marked (I3), the view gets the
 *      segment and drops the frozen memtable.
 *   6. wal_delete_through(checkpoint).
 * A crash before 4 leaves the old MANIFEST (the WAL still has everything;
 * recovery removes the orphan file); after 4, replay starts past the
 * checkpoint.
 *
 * Failures. A failure before 4 keeps the frozen memtable readable and
 * loses nothing: the WAL holds it all. What follows depends on the step
 * (st_failure_of, st_manifest_failure in collection.c):
 *   - an fsync failed, or the MANIFEST store failed in a way that may have
 *     renamed it into place or may have been its fsync: the collection
 *     becomes read-only until reopened (PostgreSQL's lesson: an fsync is
 *     never retried and pretended good);
 *   - creating, writing, closing, renaming or mapping the segment file
 *     failed (ENOSPC, EDQUOT, EIO on a write...), or the MANIFEST store
 *     ran out of space with the old MANIFEST still in place, or memory ran
 *     out: the attempt's files are removed and nothing durable changed.
 *     The frozen memtable stays (readers see it, the next flush retries
 *     it), the failure is logged and counted (flush_failures, reported by
 *     st_write_problem), and a retry follows after a backoff of 1 s
 *     doubling to 30 s, queued by the retry timer (collection.c), which
 *     after a lack of space also retries as soon as the file system has
 *     room for the memtable again. Writes go on into the active memtable
 *     until its hard cap; past it they are refused (TDB_EBUSY, disk_full)
 *     and change nothing. The first flush that succeeds clears it all.
 *
 * Durable marks (I6): the MANIFEST's delete lists may only record marks
 * of writes that are durable, or a crash could persist the effect of a
 * write the log lost. With fsync=always every applied write is durable;
 * otherwise the commit syncs the WAL first.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/collection_int.h"
#include "storage/manifest.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/log.h"

#define ST_MANIFEST_NAME "MANIFEST"

/* Fills ms->deleted with the rows of s (or, through add_mark, of a new
 * segment whose marks live in other segments) marked by durable writes. */
static int collect_deleted(const st_seg *s, uint64_t (*mark_of)(void *, uint64_t), void *ctx,
                           uint64_t durable, manifest_segment *ms) {
    uint32_t count = 0;
    for (uint64_t row = 0; row < s->rows; row++) {
        uint64_t m = mark_of ? mark_of(ctx, row) : atomic_load(&s->marks[row]);
        if (m != ST_MARK_LIVE && m <= durable) count++;
    }
    ms->deleted_count = 0;
    ms->deleted = NULL;
    if (count == 0) return 0;
    ms->deleted = malloc((size_t)count * sizeof *ms->deleted);
    if (ms->deleted == NULL) return TDB_ENOMEM;
    /* A mark may be set by a writer between the two passes: take only as
     * many as were counted (the next commit records the rest). */
    for (uint64_t row = 0; row < s->rows && ms->deleted_count < count; row++) {
        uint64_t m = mark_of ? mark_of(ctx, row) : atomic_load(&s->marks[row]);
        if (m != ST_MARK_LIVE && m <= durable) ms->deleted[ms->deleted_count++] = (uint32_t)row;
    }
    return 0;
}

int st_manifest_commit(st_collection *c, const st_commit *cm, st_failure *how, tdb_error *err) {
    int rc = 0;
    st_failure fail = ST_FAILURE_FATAL; /* unless the failure is known to be harmless */
    manifest m = {0};
    uint64_t snap;
    st_view *v = st_view_acquire(c, &snap);
    uint64_t durable = snap;
    if (c->wal != NULL && c->opts.fsync != TDB_FSYNC_ALWAYS) {
        tdb_error serr;
        if (wal_sync(c->wal, &serr) < 0) {
            durable = cm->checkpoint;
            st_set_read_only(c, "the WAL fsync failed: %s", serr.message);
        }
    }
    if (durable < cm->min_durable) {
        rc = tdb_err(err, TDB_EREADONLY, "read_only",
                     "cannot commit: the WAL could not be synced, so the deletes this change "
                     "relies on are not durable");
        goto done;
    }

    size_t total = v->nsegs - cm->n_remove + (cm->add ? 1 : 0);
    m.generation = c->manifest_generation + 1;
    m.checkpoint_seqno = cm->checkpoint;
    m.next_segment_id = atomic_load(&c->next_segment_id);
    m.segments = calloc(total ? total : 1, sizeof *m.segments);
    if (m.segments == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory building the MANIFEST");
        goto done;
    }
    size_t add_at = cm->add_at > v->nsegs ? v->nsegs : cm->add_at;
    size_t kept = 0;
    for (size_t i = 0; i <= v->nsegs; i++) {
        if (i == add_at && cm->add != NULL) {
            manifest_segment *ms = &m.segments[m.segment_count++];
            ms->id = cm->add->id;
            ms->rows = cm->add->rows;
            ms->size_bytes = seg_file_bytes(cm->add->seg);
            if (cm->add_mark != NULL &&
                collect_deleted(cm->add, cm->add_mark, cm->add_ctx, durable, ms) < 0) {
                rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory building the MANIFEST");
                goto done;
            }
        }
        if (i == v->nsegs) break;
        bool removed = false;
        for (size_t j = 0; j < cm->n_remove; j++) removed |= cm->remove[j] == v->segs[i];
        if (removed) continue;
        kept++;
        manifest_segment *ms = &m.segments[m.segment_count++];
        ms->id = v->segs[i]->id;
        ms->rows = v->segs[i]->rows;
        ms->size_bytes = seg_file_bytes(v->segs[i]->seg);
        if (collect_deleted(v->segs[i], NULL, NULL, durable, ms) < 0) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory building the MANIFEST");
            goto done;
        }
    }
    if (kept + cm->n_remove != v->nsegs) {
        rc = tdb_err(err, TDB_EINTERNAL, NULL, "a segment to replace is not in the current view");
        goto done;
    }
    fio_failure_clear(); /* st_manifest_failure reads which call failed */
    rc = manifest_store(c->dir, &m, err);
    if (rc < 0) {
        fail = st_manifest_failure(c, m.generation, rc, err);
        goto done;
    }
    c->manifest_generation = m.generation;
    atomic_store(&c->checkpoint_seqno, cm->checkpoint);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", c->dir, ST_MANIFEST_NAME);
    int64_t size = fio_file_size(path);
    if (size >= 0) atomic_store(&c->manifest_bytes, (uint64_t)size);
done:
    if (rc < 0 && how != NULL) *how = rc == TDB_ENOMEM ? ST_FAILURE_RETRY : fail;
    manifest_clear(&m);
    st_view_release(v);
    return rc;
}

/* Marks the rows of a just-flushed segment whose ids the active memtable
 * has newer versions of (I3): one merge of two sorted sequences. Caller
 * holds write_mu. Returns how many rows it marked. */
static uint64_t mark_superseded(st_seg *s, const memtable *mem) {
    uint64_t marked = 0, row = 0;
    mt_iter it;
    mt_iter_seek(&it, mem, UINT64_MAX, NULL, 0, false);
    while (it.cur != NULL && row < s->rows) {
        uint32_t len;
        const char *id = seg_id(s->seg, row, &len);
        int cmp = seg_id_cmp(it.cur->id, it.cur->id_len, id, len);
        if (cmp < 0) {
            mt_iter_next(&it);
        } else if (cmp > 0) {
            row++;
        } else {
            st_mark_row(s, row, it.cur->seqno);
            marked++;
            row++;
            mt_iter_next(&it);
        }
    }
    return marked;
}

int st_flush_locked(st_collection *c, tdb_error *err) {
    tdb_error local;
    tdb_error *e = err ? err : &local;
    int rc = 0;
    bool commit_failed = false;
    st_failure how = ST_FAILURE_FATAL; /* of a failed commit */
    bool keep_file = false; /* the MANIFEST may list it: never unlink */
    memtable *fresh = st_memtable_new(c);
    st_extras extras = {0};
    memtable *frozen = NULL;
    st_view *old = NULL, *nv = NULL;
    seg_row *rows = NULL;
    st_seg *ns = NULL;
    char *path = NULL;
    uint64_t checkpoint;

    /* 1. Freeze. */
    pthread_mutex_lock(&c->write_mu);
    st_view *v = c->view;
    if (v->frozen == NULL) {
        /* Nothing since the checkpoint: nothing to do. An empty memtable
         * with writes after the checkpoint (deletes that only marked
         * segment rows) still commits, so their marks reach the MANIFEST
         * and their WAL records can go. */
        if (mt_count(v->mem) == 0 &&
            atomic_load(&c->applied_seqno) == atomic_load(&c->checkpoint_seqno)) {
            pthread_mutex_unlock(&c->write_mu);
            goto done;
        }
        nv = fresh ? st_view_new(v->nsegs) : NULL;
        if (nv == NULL) {
            pthread_mutex_unlock(&c->write_mu);
            rc = tdb_err(e, TDB_ENOMEM, NULL, "out of memory starting a flush");
            goto done;
        }
        nv->mem = fresh;
        fresh = NULL;
        nv->frozen = v->mem;
        mt_ref(v->mem);
        for (size_t i = 0; i < v->nsegs; i++) {
            nv->segs[i] = v->segs[i];
            st_seg_ref(v->segs[i]);
        }
        c->frozen_checkpoint = atomic_load(&c->applied_seqno);
        c->marks_since_freeze = 0;
        old = st_view_swap_locked(c, nv);
        nv = NULL;
    }
    frozen = c->view->frozen;
    mt_ref(frozen);
    checkpoint = c->frozen_checkpoint;
    pthread_mutex_unlock(&c->write_mu);
    st_view_release(old);
    old = NULL;

    /* 2. Rotate: a failure only delays WAL truncation. */
    if (c->wal != NULL) {
        tdb_error rerr;
        if (wal_rotate(c->wal, NULL, &rerr) < 0)
            log_msg(LOG_WARN, "collection %s: WAL rotation before a flush failed: %s", c->dir,
                    rerr.message);
    }

    /* 3. Write the segment. */
    size_t n = 0, cap = (size_t)mt_count(frozen);
    rows = malloc((cap ? cap : 1) * sizeof *rows);
    if (rows == NULL) {
        rc = tdb_err(e, TDB_ENOMEM, NULL, "out of memory flushing %zu entries", cap);
        goto done;
    }
    mt_iter it;
    for (mt_iter_seek(&it, frozen, UINT64_MAX, NULL, 0, false); it.cur; mt_iter_next(&it)) {
        const mt_entry *x = it.cur;
        if (x->tombstone) continue;
        rows[n++] = (seg_row){x->id, x->id_len, x->seqno, x->vector, x->attrs, x->attrs_len};
    }
    if (n > 0) {
        uint64_t id = atomic_fetch_add(&c->next_segment_id, 1);
        if (st_seg_path(c, id, &path) < 0) {
            rc = tdb_err(e, TDB_ENOMEM, NULL, "out of memory flushing");
            goto done;
        }
        /* The indexes are built here, off every lock, and stored in the
         * file: an open later maps them in place. The graph only for a
         * small segment: a larger one is installed without it (searched
         * exactly meanwhile) and the index job adds it, so writers never
         * wait on a graph build (compaction.c, "The index job"). */
        rc = st_extras_build(c, rows, n, n < st_index_inline_rows(), false, &extras, e);
        if (rc < 0) goto done;
        rc = seg_write(path, c->dimension, c->metric, rows, n, extras.list, extras.n, e);
        st_extras_free(&extras);
        if (rc < 0) goto done; /* seg_write removed its files */
        rc = st_seg_open(c, id, &ns, e);
        if (rc < 0) {
            fio_unlink(path);
            goto done;
        }
    }

    /* 4. Commit, 5. install: both under manifest_mu so the MANIFEST and
     * the view list the same segments (I6). */
    pthread_mutex_lock(&c->manifest_mu);
    nv = st_view_new(c->view->nsegs + (ns ? 1 : 0)); /* the list is stable under manifest_mu */
    if (nv == NULL) {
        pthread_mutex_unlock(&c->manifest_mu);
        rc = tdb_err(e, TDB_ENOMEM, NULL, "out of memory installing a flushed segment");
        goto done;
    }
    st_commit cm = {.add = ns, .add_at = SIZE_MAX, .checkpoint = checkpoint,
                    .min_durable = checkpoint};
    rc = st_manifest_commit(c, &cm, &how, e);
    if (rc < 0) {
        pthread_mutex_unlock(&c->manifest_mu);
        commit_failed = true;
        /* A failed store may have renamed the new MANIFEST into place
         * (then the collection turns read-only, and the next open keeps
         * or removes the file, whichever MANIFEST it finds); when the old
         * one is known to be in place, the file goes now. */
        keep_file = how == ST_FAILURE_FATAL;
        goto done;
    }
    pthread_mutex_lock(&c->write_mu);
    /* Marks and the new segment list reach text searches together. */
    st_text_write_lock(c);
    v = c->view;
    nv->mem = v->mem;
    mt_ref(v->mem);
    for (size_t i = 0; i < v->nsegs; i++) {
        nv->segs[i] = v->segs[i];
        st_seg_ref(v->segs[i]);
    }
    if (ns != NULL) {
        uint64_t marked = mark_superseded(ns, v->mem);
        c->seg_live_rows += ns->rows - marked;
        nv->segs[v->nsegs] = ns; /* the view takes our reference */
        ns = NULL;
    }
    old = st_view_swap_locked(c, nv);
    nv = NULL;
    st_text_write_unlock(c);
    pthread_cond_broadcast(&c->flush_cv);
    pthread_mutex_unlock(&c->write_mu);
    pthread_mutex_unlock(&c->manifest_mu);
    atomic_fetch_add(&c->flushes, 1);

    /* 6. Truncate the WAL. */
    if (c->wal != NULL) {
        tdb_error derr;
        if (wal_delete_through(c->wal, checkpoint, &derr) < 0)
            log_msg(LOG_WARN, "collection %s: deleting old WAL files failed: %s", c->dir,
                    derr.message);
    }
done:
    if (ns != NULL) {
        /* Written but not committed: the file must not outlive us (I7). */
        if (!keep_file) atomic_store(&ns->obsolete, true);
        st_seg_unref(ns);
    }
    /* Files of a failed attempt are gone (seg_write's, or ns above):
     * read-only, or a retry later (the "Failures" comment above). */
    st_flush_outcome(c, rc, commit_failed ? how : st_failure_of(rc, e), rc < 0 ? e : NULL);
    st_view_release(nv);
    st_view_release(old);
    mt_unref(frozen);
    mt_unref(fresh);
    st_extras_free(&extras);
    free(rows);
    free(path);
    return rc;
}

int st_flush(st_collection *c, tdb_error *err) {
    pthread_mutex_lock(&c->flush_mu);
    int rc = st_flush_locked(c, err);
    pthread_mutex_unlock(&c->flush_mu);
    if (rc == 0) st_schedule_compaction(c);
    if (rc < 0) rc = st_flush_error(c, rc, err); /* a full disk: 503 disk_full */
    return rc;
}

/* Background flush: flush until the active memtable is under its limit
 * (writes keep coming while one runs), then maybe compact. The last
 * check and clearing flush_scheduled happen under one lock, so a writer
 * crossing the limit meanwhile is never left without a flush. */
static void flush_job(void *arg) {
    st_collection *c = arg;
    for (;;) {
        tdb_error err;
        pthread_mutex_lock(&c->flush_mu);
        int rc = st_flush_locked(c, &err);
        pthread_mutex_unlock(&c->flush_mu);
        /* A failure was logged and handled by st_flush_outcome. */
        /* Scheduled before this job counts as finished, so st_close cannot
         * free c under it. */
        if (rc == 0) st_schedule_compaction(c);
        pthread_mutex_lock(&c->write_mu);
        if (rc == 0 && !c->closing && st_flush_due_locked(c)) {
            pthread_mutex_unlock(&c->write_mu);
            continue;
        }
        c->flush_scheduled = false;
        c->jobs_pending--;
        pthread_cond_broadcast(&c->job_cv);
        pthread_mutex_unlock(&c->write_mu);
        return;
    }
}

void st_schedule_flush(st_collection *c) {
    pthread_mutex_lock(&c->write_mu);
    /* While flushes fail, the retry timer queues the next attempt once its
     * backoff ran out (writers crossing the limit meanwhile do not). */
    if (c->flush_scheduled || c->closing || atomic_load(&c->read_only) ||
        !st_flush_retry_due_locked(c)) {
        pthread_mutex_unlock(&c->write_mu);
        return;
    }
    c->flush_scheduled = true;
    c->jobs_pending++;
    pthread_mutex_unlock(&c->write_mu);
    /* Without a pool (or when it refuses), the writer that crossed the
     * limit flushes before it returns. */
    if (c->opts.background == NULL || pool_submit(c->opts.background, flush_job, c) != 0)
        flush_job(c);
}
