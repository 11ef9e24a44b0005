/*
 * collection.c: the storage engine of one collection: the write path
 * (encode, WAL, apply in seqno order), views and snapshots, point reads,
 * ordered scans, exact vector search, stats and close.
 * Layer: storage. Implements storage.h with flush.c, compaction.c and
 * recovery.c (st_open); shared state and invariants (I1..I7):
 * collection_int.h; the whole picture: docs/storage.md.
 *
 * Write path: validate cheaply -> wait if the memtable is over its hard
 * cap -> build memtable entries (all allocation happens here) -> encode
 * the batch -> wal_append (durable per policy; gives the seqno) -> wait
 * for applied_seqno == seqno - 1 -> apply under write_mu (cannot fail) ->
 * applied_seqno = seqno, wake the next writer. Because every writer that
 * got a seqno applies it, and wal_append consumes a seqno only when the
 * record reached the file (a failed fsync fails every later append too),
 * the chain never waits on a seqno that will not come (I1).
 *
 * Read path: st_view_acquire (view_mu for a pointer copy and a refcount)
 * gives a view and a snapshot; the read then runs without any lock and
 * sees exactly the writes <= snapshot: memtable versions above it are
 * skipped, row marks above it are ignored (I3, I4). Results are copied out
 * before the view is released.
 *
 * Concurrency and ownership: see collection_int.h and storage.h.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/statvfs.h>
#include <time.h>

#include "storage/collection_int.h"
#include "storage/manifest.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/log.h"
#include "vec/plan.h"
#include "vec/vec.h"

/* Attributes of a document written without any, as readers get them. */
static const char ST_EMPTY_ATTRS[] = "{}";
#define ST_EMPTY_ATTRS_LEN 2u
/* First allocation of a scan's result array (grown by doubling). */
#define ST_SCAN_INITIAL_CAP 16u

/* ---- views and segments --------------------------------------------- */

st_view *st_view_new(size_t nsegs) {
    st_view *v = calloc(1, sizeof *v + nsegs * sizeof(st_seg *));
    if (v == NULL) return NULL;
    atomic_init(&v->refs, 1);
    v->nsegs = nsegs;
    return v;
}

memtable *st_memtable_new(st_collection *c) {
    memtable *m = mt_new(c->dimension);
    if (m == NULL || c->n_text == 0) return m;
    void *aux = st_memtext_new(c);
    if (aux == NULL) {
        mt_unref(m);
        return NULL;
    }
    mt_set_aux(m, aux, st_memtext_free);
    return m;
}

st_view *st_view_acquire(st_collection *c, uint64_t *snapshot) {
    pthread_mutex_lock(&c->view_mu);
    st_view *v = c->view;
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    /* Read under view_mu: a view swap also needs view_mu, so every write
     * <= this snapshot went into this view's memtables or segments. */
    *snapshot = atomic_load_explicit(&c->applied_seqno, memory_order_acquire);
    pthread_mutex_unlock(&c->view_mu);
    return v;
}

void st_view_release(st_view *v) {
    if (v == NULL) return;
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) return;
    mt_unref(v->mem);
    mt_unref(v->frozen);
    for (size_t i = 0; i < v->nsegs; i++) st_seg_unref(v->segs[i]);
    free(v);
}

st_view *st_view_swap_locked(st_collection *c, st_view *nv) {
    pthread_mutex_lock(&c->view_mu);
    st_view *old = c->view;
    c->view = nv;
    pthread_mutex_unlock(&c->view_mu);
    return old;
}

void st_seg_ref(st_seg *s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

void st_seg_unref(st_seg *s) {
    if (s == NULL) return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    st_vec_seg_close(s);
    st_text_seg_close(s);
    seg_close(s->seg);
    if (atomic_load(&s->obsolete)) {
        /* I7: the MANIFEST no longer lists it and nobody reads it. A file
         * left behind by a failure here is removed by the next open. */
        int rc = fio_unlink(s->path);
        if (rc < 0 && rc != -ENOENT)
            log_msg(LOG_WARN, "cannot remove replaced segment %s: %s", s->path, strerror(-rc));
    }
    free((void *)s->marks);
    free(s->path);
    free(s);
}

int st_seg_path(const st_collection *c, uint64_t id, char **out) {
    size_t n = strlen(c->seg_dir) + 1 + 20 + sizeof ST_SEG_SUFFIX;
    char *p = malloc(n);
    if (p == NULL) return TDB_ENOMEM;
    snprintf(p, n, "%s/%020" PRIu64 ST_SEG_SUFFIX, c->seg_dir, id);
    *out = p;
    return 0;
}

int st_seg_open(st_collection *c, uint64_t id, st_seg **out, tdb_error *err) {
    *out = NULL;
    st_seg *s = calloc(1, sizeof *s);
    if (s == NULL || st_seg_path(c, id, &s->path) < 0) {
        free(s);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening segment %" PRIu64, id);
    }
    atomic_init(&s->refs, 1);
    atomic_init(&s->obsolete, false);
    atomic_init(&s->dead_rows, 0);
    int rc = seg_open(s->path, c->dimension, &s->seg, err);
    if (rc < 0) {
        free(s->path);
        free(s);
        return rc;
    }
    s->id = id;
    s->rows = seg_rows(s->seg);
    /* calloc: large zeroed blocks come from fresh pages, so marks cost
     * memory only where rows actually get deleted. */
    s->marks = calloc(s->rows ? s->rows : 1, sizeof *s->marks);
    if (s->marks == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL,
                     "out of memory for the delete marks of segment %" PRIu64, id);
        goto fail;
    }
    /* The indexes are views on the mapped extras: nothing is rebuilt
     * unless the file lacks one (then see st_text_seg_open). */
    rc = st_vec_seg_open(c, s, err);
    if (rc < 0) goto fail;
    rc = st_text_seg_open(c, s, err);
    if (rc < 0) goto fail;
    *out = s;
    return 0;
fail:
    st_vec_seg_close(s);
    st_text_seg_close(s);
    seg_close(s->seg);
    free((void *)s->marks);
    free(s->path);
    free(s);
    return rc;
}

/* ---- read-only state ------------------------------------------------ */

void st_set_read_only(st_collection *c, const char *fmt, ...) {
    pthread_mutex_lock(&c->write_mu);
    if (!atomic_load(&c->read_only)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->read_only_reason, sizeof c->read_only_reason, fmt, ap);
        va_end(ap);
        atomic_store(&c->read_only, true);
        log_msg(LOG_ERROR, "collection %s is now read-only: %s", c->dir, c->read_only_reason);
    }
    pthread_cond_broadcast(&c->apply_cv);
    pthread_cond_broadcast(&c->flush_cv);
    pthread_mutex_unlock(&c->write_mu);
}

static int read_only_err(st_collection *c, tdb_error *err) {
    char reason[sizeof c->read_only_reason];
    pthread_mutex_lock(&c->write_mu);
    memcpy(reason, c->read_only_reason, sizeof reason);
    pthread_mutex_unlock(&c->write_mu);
    return tdb_err(err, TDB_EREADONLY, "read_only",
                   "the collection is read-only (%s); reads still work; reopen it (restart the "
                   "server) after fixing the cause",
                   reason);
}

/* ---- flush and compaction failures ---------------------------------- */

/* Whether msg ends with the text of errno e, as the I/O layers write
 * it ("...: No space left on device"): the errno is not kept otherwise. */
static bool names_errno(const char *msg, int e) {
    const char *text = strerror(e);
    size_t n = strlen(msg), k = strlen(text);
    return n >= k && strcmp(msg + n - k, text) == 0;
}

static bool names_lack_of_space(const tdb_error *e) {
    return e != NULL && (names_errno(e->message, ENOSPC) || names_errno(e->message, EDQUOT));
}

st_failure st_failure_of(int rc, const tdb_error *e) {
    /* Out of memory: nothing reached the disk. */
    if (rc == TDB_ENOMEM) return ST_FAILURE_RETRY;
    if (rc != TDB_EIO || e == NULL) return ST_FAILURE_FATAL;
    /* seg_write names the step that failed; "syncing" is the file's fsync
     * or its directory's. An fsync failure is never retried (PostgreSQL's
     * lesson: the kernel may have dropped pages it will not report
     * twice), whatever its errno. */
    if (strstr(e->message, "seg_write: syncing") != NULL) return ST_FAILURE_FATAL;
    /* Creating, writing, closing, renaming or mapping a file that is then
     * removed: nothing durable changed. */
    return names_lack_of_space(e) ? ST_FAILURE_RETRY_SPACE : ST_FAILURE_RETRY;
}

/* A failed manifest_store: safe to retry only when the old MANIFEST is
 * still the one in place (the rename did not happen) and the failure was
 * a lack of space outside an fsync. The file I/O layer records which call
 * failed on this thread (fio_last_failure; flush.c clears it before the
 * store), so an fsync failure is told apart whatever its errno. */
st_failure st_manifest_failure(st_collection *c, uint64_t generation, int rc, const tdb_error *e) {
    (void)e;
    if (rc == TDB_ENOMEM) return ST_FAILURE_RETRY;
    const struct fio_failure *f = fio_last_failure();
    if (rc != TDB_EIO || f->op == NULL || fio_failure_is_fsync(f) || !fio_failure_is_no_space(f))
        return ST_FAILURE_FATAL;
    manifest m = {0};
    tdb_error lerr;
    int lrc = manifest_load(c->dir, &m, &lerr);
    bool old_in_place = lrc == 0 && m.generation < generation;
    manifest_clear(&m);
    return old_in_place ? ST_FAILURE_RETRY_SPACE : ST_FAILURE_FATAL;
}

/* Free bytes for an unprivileged writer on the file system of dir, or 0
 * when unknown. statvfs changes nothing, so it is not a counted call of
 * util/fileio.h. */
static uint64_t free_bytes_of(const char *dir) {
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0) return 0;
    return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

uint64_t st_test_flush_retry_ms;

static uint64_t backoff_ns(uint32_t failures) {
    if (st_test_flush_retry_ms > 0) return st_test_flush_retry_ms * 1000000ull;
    uint64_t ms = ST_FLUSH_RETRY_FIRST_MS;
    for (uint32_t i = 1; i < failures && ms < ST_FLUSH_RETRY_MAX_MS; i++) ms *= 2;
    if (ms > ST_FLUSH_RETRY_MAX_MS) ms = ST_FLUSH_RETRY_MAX_MS;
    return ms * 1000000ull;
}

void st_flush_outcome(st_collection *c, int rc, st_failure how, const tdb_error *e) {
    if (rc < 0 && how == ST_FAILURE_FATAL) {
        st_set_read_only(c, "a flush to %s failed: %s", c->seg_dir, e ? e->message : "");
        return;
    }
    /* Measured off write_mu: the failed attempt's files are gone by now. */
    uint64_t free_now = rc < 0 && how == ST_FAILURE_RETRY_SPACE ? free_bytes_of(c->seg_dir) : 0;
    pthread_mutex_lock(&c->write_mu);
    if (rc == 0) {
        if (c->flush_failures > 0)
            log_msg(LOG_WARN, "collection %s: flushing works again after %u failed attempts",
                    c->dir, c->flush_failures);
        c->flush_failures = 0;
        c->flush_problem[0] = '\0';
        pthread_cond_broadcast(&c->retry_cv);
        pthread_mutex_unlock(&c->write_mu);
        return;
    }
    c->flush_failures++;
    c->flush_failure_space = how == ST_FAILURE_RETRY_SPACE;
    c->flush_failure_free = free_now;
    uint64_t wait_ns = backoff_ns(c->flush_failures);
    c->flush_retry_at_ns = clock_mono_ns() + wait_ns;
    snprintf(c->flush_problem, sizeof c->flush_problem, "%s", e ? e->message : "flush failed");
    log_msg(LOG_ERROR,
            "collection %s: flush failed (attempt %u): %s; nothing is lost (the memtable and the "
            "WAL hold every write), writes go on while the memtable has room; retrying in %" PRIu64
            " ms%s",
            c->dir, c->flush_failures, e ? e->message : "", wait_ns / 1000000u,
            c->flush_failure_space ? " or as soon as space is freed" : "");
    /* Writers waiting for this flush decide again (write_gate). */
    pthread_cond_broadcast(&c->flush_cv);
    pthread_mutex_unlock(&c->write_mu);
    st_retry_timer_start(c);
}

int st_flush_error(st_collection *c, int rc, tdb_error *err) {
    if (atomic_load(&c->read_only)) return rc;
    pthread_mutex_lock(&c->write_mu);
    bool space = c->flush_failures > 0 && c->flush_failure_space;
    pthread_mutex_unlock(&c->write_mu);
    if (!space) return rc;
    char cause[sizeof err->message];
    snprintf(cause, sizeof cause, "%s", err ? err->message : "");
    return tdb_err(err, TDB_EBUSY, "disk_full",
                   "disk full: the memtable could not be flushed (%s); nothing is lost, and the "
                   "flush is retried by itself once space is freed",
                   cause);
}

void st_compaction_outcome(st_collection *c, int rc, st_failure how, const tdb_error *e) {
    if (rc < 0 && how == ST_FAILURE_FATAL) {
        st_set_read_only(c, "a compaction failed: %s", e ? e->message : "");
        return;
    }
    pthread_mutex_lock(&c->write_mu);
    if (rc == 0) {
        if (c->compaction_failures > 0)
            log_msg(LOG_WARN, "collection %s: compaction works again after %u failed attempts",
                    c->dir, c->compaction_failures);
        c->compaction_failures = 0;
        c->compaction_problem[0] = '\0';
    } else {
        c->compaction_failures++;
        uint64_t wait_ns = backoff_ns(c->compaction_failures);
        c->compaction_retry_at_ns = clock_mono_ns() + wait_ns;
        snprintf(c->compaction_problem, sizeof c->compaction_problem, "%s%s",
                 how == ST_FAILURE_RETRY_SPACE ? "disk full: " : "", e ? e->message : "");
        log_msg(LOG_ERROR,
                "collection %s: compaction failed (attempt %u): %s; its output was removed and "
                "the segments are unchanged; the next one runs after a flush, %" PRIu64
                " ms from now at the earliest",
                c->dir, c->compaction_failures, e ? e->message : "", wait_ns / 1000000u);
    }
    pthread_mutex_unlock(&c->write_mu);
}

bool st_flush_retry_due_locked(const st_collection *c) {
    return c->flush_failures == 0 || clock_mono_ns() >= c->flush_retry_at_ns;
}

const char *st_write_problem(st_collection *c, char *out, size_t n) {
    const char *kind = NULL;
    pthread_mutex_lock(&c->write_mu);
    if (c->flush_failures > 0) {
        kind = c->flush_failure_space ? "disk_full" : "flush_failing";
        snprintf(out, n,
                 "%sflushing the memtable failed %u times in a row (%s); nothing is lost; writes "
                 "are taken until the memtable reaches twice its limit, and the flush is retried",
                 c->flush_failure_space ? "disk full: " : "", c->flush_failures, c->flush_problem);
    } else if (c->compaction_failures > 0) {
        kind = "compaction_failing";
        snprintf(out, n, "compaction failed %u times in a row (%s); the segments are unchanged and "
                         "it is retried",
                 c->compaction_failures, c->compaction_problem);
    } else if (n > 0) {
        out[0] = '\0';
    }
    pthread_mutex_unlock(&c->write_mu);
    return kind;
}

/* The retry timer: a thread that lives while flushes fail, sleeps until
 * the next retry is due (or, after a lack of space, until the segment
 * directory's file system has gained room for the memtable), queues the
 * flush and waits for its outcome. A thread rather than a pool job: it
 * mostly sleeps, and a pool worker asleep would hold up other
 * collections' flushes. Counted in jobs_pending, so st_close waits for it
 * (closing wakes it through retry_cv). */
static void *retry_timer_main(void *arg) {
    st_collection *c = arg;
    pthread_mutex_lock(&c->write_mu);
    while (!c->closing && !atomic_load(&c->read_only) && c->flush_failures > 0) {
        if (c->flush_scheduled) {
            /* A flush is queued or running: its outcome decides. */
            pthread_cond_wait(&c->job_cv, &c->write_mu);
            continue;
        }
        uint64_t now = clock_mono_ns();
        if (now < c->flush_retry_at_ns) {
            if (c->flush_failure_space && st_test_flush_retry_ms == 0) {
                const memtable *m = c->view->frozen ? c->view->frozen : c->view->mem;
                uint64_t need = mt_memory_bytes(m);
                if (need < ST_FLUSH_SPACE_MIN_BYTES) need = ST_FLUSH_SPACE_MIN_BYTES;
                uint64_t had = c->flush_failure_free;
                uint32_t failures = c->flush_failures;
                pthread_mutex_unlock(&c->write_mu);
                uint64_t free_now = free_bytes_of(c->seg_dir);
                pthread_mutex_lock(&c->write_mu);
                if (free_now >= had + need && c->flush_failures == failures) {
                    log_msg(LOG_INFO, "collection %s: %" PRIu64 " bytes free again; retrying the "
                                      "flush now", c->dir, free_now);
                    c->flush_retry_at_ns = now;
                    continue;
                }
            }
            uint64_t until = c->flush_retry_at_ns;
            if (c->flush_failure_space && st_test_flush_retry_ms == 0 &&
                until > now + ST_FLUSH_PROBE_MS * 1000000ull)
                until = now + ST_FLUSH_PROBE_MS * 1000000ull;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (until - now);
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_timedwait(&c->retry_cv, &c->write_mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&c->write_mu);
        st_schedule_flush(c);
        pthread_mutex_lock(&c->write_mu);
    }
    c->retry_timer = false;
    c->jobs_pending--;
    pthread_cond_broadcast(&c->job_cv);
    pthread_mutex_unlock(&c->write_mu);
    return NULL;
}

int st_thread_start_detached(void *(*fn)(void *), void *arg) {
    pthread_attr_t attr;
    pthread_t t;
    int rc = pthread_attr_init(&attr);
    if (rc != 0) return rc;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}

void st_retry_timer_start(st_collection *c) {
    pthread_mutex_lock(&c->write_mu);
    /* During recovery (no WAL yet) st_open starts it at the end. */
    if (c->retry_timer || c->closing || c->wal == NULL || c->flush_failures == 0 ||
        atomic_load(&c->read_only)) {
        pthread_mutex_unlock(&c->write_mu);
        return;
    }
    c->retry_timer = true;
    c->jobs_pending++;
    pthread_mutex_unlock(&c->write_mu);
    int rc = st_thread_start_detached(retry_timer_main, c);
    if (rc != 0) {
        /* Writers still retry (st_schedule_flush once the backoff ran out). */
        log_msg(LOG_WARN, "collection %s: cannot start the flush retry timer: %s", c->dir,
                strerror(rc));
        pthread_mutex_lock(&c->write_mu);
        c->retry_timer = false;
        c->jobs_pending--;
        pthread_cond_broadcast(&c->job_cv);
        pthread_mutex_unlock(&c->write_mu);
    }
}

bool st_memtable_over_limit(const st_collection *c, const memtable *m) {
    return mt_memory_bytes(m) >= c->opts.memtable_max_bytes ||
           mt_count(m) >= c->opts.memtable_max_docs;
}

bool st_flush_due_locked(const st_collection *c) {
    return st_memtable_over_limit(c, c->view->mem) ||
           mt_count(c->view->mem) + c->marks_since_freeze >= c->opts.memtable_max_docs;
}

static bool memtable_over_hard_cap(const st_collection *c, const memtable *m) {
    return mt_memory_bytes(m) >= ST_MEMTABLE_HARD_CAP_FACTOR * c->opts.memtable_max_bytes ||
           mt_count(m) >= (uint64_t)ST_MEMTABLE_HARD_CAP_FACTOR * c->opts.memtable_max_docs;
}

/* The refusal of a write while the memtable is at its hard cap and cannot
 * be flushed. Caller holds write_mu. */
static int flush_blocked_err(const st_collection *c, tdb_error *err) {
    uint64_t now = clock_mono_ns();
    uint64_t wait_ms = c->flush_retry_at_ns > now ? (c->flush_retry_at_ns - now) / 1000000u : 0;
    if (c->flush_failure_space)
        return tdb_err(err, TDB_EBUSY, "disk_full",
                       "disk full: the memtable is full and cannot be flushed (%s); this write "
                       "changed nothing; writes resume by themselves once space is freed (next "
                       "flush attempt within %" PRIu64 " ms)",
                       c->flush_problem, wait_ms);
    return tdb_err(err, TDB_EBUSY, "flush_failed",
                   "the memtable is full and flushing it failed (%s); this write changed nothing; "
                   "try again later (next flush attempt within %" PRIu64 " ms)",
                   c->flush_problem, wait_ms);
}

/* Refuses writes on a read-only collection and bounds the memtable: a
 * writer that finds it over its hard cap waits for the running flush, or,
 * when none runs (the pool may be busy with other collections' work),
 * flushes itself. While flushes fail (flush.c, "Failures") it is refused
 * until the retry is due, and then retries like any writer at the cap.
 * Holds no seqno meanwhile, so it never stalls the apply chain, and a
 * refused write changed nothing. */
static int write_gate(st_collection *c, tdb_error *err) {
    if (atomic_load(&c->read_only)) return read_only_err(c, err);
    pthread_mutex_lock(&c->write_mu);
    while (!atomic_load(&c->read_only) && !c->closing &&
           memtable_over_hard_cap(c, c->view->mem)) {
        bool failing = c->flush_failures > 0;
        /* A frozen memtable is being flushed, or (after a failure) a retry
         * of it is queued: its end (success or failure) broadcasts. */
        bool on_the_way = c->view->frozen != NULL && (!failing || c->flush_scheduled);
        if (failing && !on_the_way && !st_flush_retry_due_locked(c)) {
            int rc = flush_blocked_err(c, err);
            pthread_mutex_unlock(&c->write_mu);
            return rc;
        }
        if (on_the_way) {
            pthread_cond_wait(&c->flush_cv, &c->write_mu);
            continue;
        }
        pthread_mutex_unlock(&c->write_mu);
        pthread_mutex_lock(&c->flush_mu);
        /* Another writer may have flushed while this one waited. A frozen
         * memtable here was left by a failed flush: this retries it. */
        pthread_mutex_lock(&c->write_mu);
        failing = c->flush_failures > 0;
        bool still = (c->view->frozen == NULL || failing) && st_flush_retry_due_locked(c) &&
                     memtable_over_hard_cap(c, c->view->mem);
        pthread_mutex_unlock(&c->write_mu);
        tdb_error ferr;
        int rc = still ? st_flush_locked(c, &ferr) : 0;
        pthread_mutex_unlock(&c->flush_mu);
        if (still && rc == 0) st_schedule_compaction(c);
        pthread_mutex_lock(&c->write_mu);
        if (rc < 0 && !atomic_load(&c->read_only)) {
            rc = c->flush_failures > 0 ? flush_blocked_err(c, err)
                                       : tdb_err(err, rc, NULL, "%s", ferr.message);
            pthread_mutex_unlock(&c->write_mu);
            return rc;
        }
    }
    pthread_mutex_unlock(&c->write_mu);
    if (atomic_load(&c->read_only)) return read_only_err(c, err);
    return 0;
}

/* ---- the apply path -------------------------------------------------- */

/* qsort has no context argument in C17: sort (index) pairs through a
 * thread-local pointer to the batch. */
static _Thread_local const batch_doc *prep_docs;

static int prep_cmp(const void *a, const void *b) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = seg_id_cmp(prep_docs[i].id, prep_docs[i].id_len, prep_docs[j].id, prep_docs[j].id_len);
    if (c != 0) return c;
    return i < j ? -1 : (i > j);
}

int st_entries_prepare(st_collection *c, const batch_doc *docs, size_t n, bool tombstones,
                       st_prep *out, tdb_error *err) {
    memset(out, 0, sizeof *out);
    if (n == 0) return 0;
    size_t *order = malloc(n * sizeof *order);
    mt_entry **entries = calloc(n, sizeof *entries);
    size_t kept = 0;
    int rc = 0;
    if (order == NULL || entries == NULL) {
        free(order);
        free(entries);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory preparing a batch of %zu", n);
    }
    out->entries = entries;
    for (size_t i = 0; i < n; i++) order[i] = i;
    prep_docs = docs;
    qsort(order, n, sizeof *order, prep_cmp);
    prep_docs = NULL;
    for (size_t k = 0; k < n; k++) {
        const batch_doc *d = &docs[order[k]];
        /* Within a batch a later duplicate wins: keep the last of a run. */
        if (k + 1 < n) {
            const batch_doc *nx = &docs[order[k + 1]];
            if (seg_id_cmp(d->id, d->id_len, nx->id, nx->id_len) == 0) continue;
        }
        mt_entry *e = mt_entry_new(d->id, d->id_len, tombstones ? NULL : d->vector, c->dimension,
                                   d->attrs, d->attrs_len, tombstones);
        if (e == NULL) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory preparing a batch of %zu", n);
            goto done;
        }
        entries[kept++] = e;
        out->n = kept;
    }
    /* Text is analyzed here, outside every lock, so the apply only links
     * ready tokens into the memtable's indexes. */
    if (c->n_text > 0 && !tombstones && kept > 0) {
        out->tokens = calloc(kept * c->n_text, sizeof *out->tokens);
        out->present = calloc(kept * c->n_text, 1);
        if (out->tokens == NULL || out->present == NULL) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory analyzing a batch of %zu", n);
            goto done;
        }
        out->n_slots = kept * c->n_text;
        text_tokens scratch;
        text_tokens_init(&scratch);
        for (size_t i = 0; i < kept && rc == 0; i++)
            rc = st_text_analyze_doc(c, entries[i]->attrs, entries[i]->attrs_len,
                                     &out->tokens[i * c->n_text], &out->present[i * c->n_text],
                                     &scratch);
        text_tokens_free(&scratch);
        if (rc < 0) rc = tdb_err(err, rc, NULL, "out of memory analyzing a batch of %zu", n);
    }
done:
    free(order);
    if (rc < 0) st_prep_free(out);
    return rc;
}

void st_prep_free(st_prep *p) {
    if (p == NULL) return;
    for (size_t i = 0; p->entries && i < p->n; i++) mt_entry_free(p->entries[i]);
    free(p->entries);
    if (p->tokens) {
        for (size_t i = 0; i < p->n_slots; i++) text_tokens_free(&p->tokens[i]);
    }
    free(p->tokens);
    free(p->present);
    memset(p, 0, sizeof *p);
}

/* Marks the live segment rows of id as superseded at seqno (I3). Returns
 * whether one was live. Caller holds write_mu. */
static bool mark_segment_rows(st_collection *c, const st_view *v, const char *id, uint32_t id_len,
                              uint64_t seqno) {
    bool live = false;
    for (size_t i = v->nsegs; i-- > 0;) {
        st_seg *s = v->segs[i];
        int64_t row = seg_find(s->seg, id, id_len);
        if (row < 0) continue;
        if (atomic_load_explicit(&s->marks[row], memory_order_relaxed) != ST_MARK_LIVE) continue;
        st_mark_row(s, (uint64_t)row, seqno);
        c->seg_live_rows--;
        c->marks_since_freeze++;
        live = true;
    }
    return live;
}

/* Keeps mem's aux bytes (what the flush trigger adds to its entries) at
 * the heap of its text indexes: measured again once it has grown by
 * ST_TEXT_BYTES_REMEASURE_ENTRIES entries or 1/16, whichever is more, so
 * the O(terms) walk costs O(1) per entry on average. Caller holds write_mu
 * (not text_mu: the measure takes it for reading). */
static void measure_text_bytes(st_collection *c, memtable *mem) {
    uint64_t count = mt_count(mem);
    /* A smaller count: a new memtable at the address of a freed one. */
    if (mem == c->text_measured_mem && count >= c->text_measured_count) {
        uint64_t step = c->text_measured_count / 16;
        if (step < ST_TEXT_BYTES_REMEASURE_ENTRIES) step = ST_TEXT_BYTES_REMEASURE_ENTRIES;
        if (count < c->text_measured_count + step) return;
    }
    mt_set_aux_bytes(mem, st_memtext_memory_bytes(c, mem));
    c->text_measured_mem = mem;
    c->text_measured_count = count;
}

bool st_apply(st_collection *c, uint64_t seqno, st_prep *p, bool replay, size_t *was_live) {
    size_t live_before = 0;
    bool text_failed = false;
    pthread_mutex_lock(&c->write_mu);
    if (!replay) {
        /* I1: wait for every earlier write to be applied. */
        while (atomic_load_explicit(&c->applied_seqno, memory_order_relaxed) + 1 != seqno)
            pthread_cond_wait(&c->apply_cv, &c->write_mu);
        atomic_store_explicit(&c->last_write_ns, clock_mono_ns(), memory_order_relaxed);
    }
    assert(atomic_load(&c->applied_seqno) < seqno);
    /* Text searches see the memtable indexes, the marks and applied_seqno
     * change together (collection_int.h, text_mu). */
    st_text_write_lock(c);
    st_view *v = c->view;
    for (size_t i = 0; i < p->n; i++) {
        mt_entry *e = p->entries[i];
        p->entries[i] = NULL; /* ours now: inserted or freed below */
        e->seqno = seqno;
        /* The newest version so far decides liveness. If a memtable holds
         * one, X's segment rows were marked when it was applied (or will be
         * when the frozen memtable's segment is installed), so only an id
         * absent from both memtables needs the segment lookups. */
        memtable *prev_mem = v->mem;
        const mt_entry *prev = mt_get(v->mem, e->id, e->id_len, UINT64_MAX);
        if (prev == NULL && v->frozen != NULL) {
            prev_mem = v->frozen;
            prev = mt_get(v->frozen, e->id, e->id_len, UINT64_MAX);
        }
        bool live = prev != NULL ? !prev->tombstone : mark_segment_rows(c, v, e->id, e->id_len, seqno);
        if (live) live_before++;
        /* The superseded memtable version leaves the text statistics. */
        if (prev != NULL && live && c->n_text > 0) st_memtext_remove(c, prev_mem, prev);
        if (e->tombstone) {
            if (live) c->live_docs--;
            /* A tombstone is needed only to shadow a live memtable version;
             * a row only in segments is deleted by its mark alone. */
            if (!live || prev == NULL) {
                mt_entry_free(e);
                continue;
            }
        } else if (!live) {
            c->live_docs++;
        }
        mt_insert(v->mem, e);
        if (c->n_text > 0 && !e->tombstone && p->tokens != NULL &&
            st_memtext_add(c, v->mem, e, &p->tokens[i * c->n_text], &p->present[i * c->n_text]) < 0)
            text_failed = true;
    }
    atomic_store_explicit(&c->applied_seqno, seqno, memory_order_release);
    st_text_write_unlock(c);
    pthread_cond_broadcast(&c->apply_cv);
    if (c->n_text > 0) measure_text_bytes(c, v->mem);
    bool over = st_flush_due_locked(c);
    pthread_mutex_unlock(&c->write_mu);
    if (was_live) *was_live = live_before;
    if (text_failed)
        st_set_read_only(c, "out of memory indexing the text of write %" PRIu64
                            "; it is durable, and reopening the collection indexes it",
                         seqno);
    return over;
}

/* The part of st_upsert / st_delete after validation: entries, record,
 * WAL, apply. */
static int write_batch(st_collection *c, uint8_t type, const batch_doc *bdocs, size_t n,
                       const buf *payload, size_t *was_live, tdb_error *err) {
    st_prep prep;
    int rc = st_entries_prepare(c, bdocs, n, type == BATCH_TYPE_DELETE, &prep, err);
    if (rc < 0) return rc;
    uint64_t seqno = 0;
    tdb_error werr;
    rc = wal_append(c->wal, type, payload->data, payload->len, &seqno, &werr);
    if (rc < 0) {
        st_prep_free(&prep);
        if (wal_failed(c->wal)) {
            st_set_read_only(c, "the write-ahead log failed: %s", werr.message);
            return read_only_err(c, err);
        }
        /* The WAL cut the failed record off again: nothing changed. A
         * full disk is the operator's to fix, not our bug: 503, named. */
        if (rc == TDB_EIO && names_lack_of_space(&werr))
            return tdb_err(err, TDB_EBUSY, "disk_full",
                           "disk full: %s; this write changed nothing; writes are taken again as "
                           "soon as space is freed",
                           werr.message);
        if (err) *err = werr;
        return rc;
    }
    bool over = st_apply(c, seqno, &prep, false, was_live);
    st_prep_free(&prep);
    if (over) st_schedule_flush(c);
    return 0;
}

static int check_id(const char *id, uint32_t id_len, size_t i, tdb_error *err) {
    if (id == NULL || id_len == 0 || id_len > ST_MAX_ID_BYTES)
        return tdb_err(err, TDB_EINVAL, "invalid_id",
                       "document %zu: an id must be 1 to %d bytes, got %u", i, ST_MAX_ID_BYTES,
                       (unsigned)id_len);
    return 0;
}

int st_upsert(st_collection *c, const st_doc *docs, size_t n, tdb_error *err) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        int rc = check_id(docs[i].id, docs[i].id_len, i, err);
        if (rc < 0) return rc;
        if (c->dimension > 0 && docs[i].vector == NULL)
            return tdb_err(err, TDB_EINVAL, "dimension_mismatch",
                           "document %zu has no vector; this collection needs %u floats", i,
                           c->dimension);
        if (docs[i].attrs_len > 0 && docs[i].attrs == NULL)
            return tdb_err(err, TDB_EINVAL, NULL, "document %zu: attributes length without text", i);
    }
    int rc = write_gate(c, err);
    if (rc < 0) return rc;
    buf payload = BUF_INIT;
    batch_doc *bdocs = malloc(n * sizeof *bdocs);
    if (bdocs == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory for a batch of %zu documents", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        bdocs[i] = (batch_doc){docs[i].id, docs[i].id_len, c->dimension ? docs[i].vector : NULL,
                               docs[i].attrs_len ? docs[i].attrs : NULL, docs[i].attrs_len};
    }
    rc = batch_encode_upsert(&payload, c->dimension, docs, n, err);
    if (rc < 0) goto done;
    rc = write_batch(c, BATCH_TYPE_UPSERT, bdocs, n, &payload, NULL, err);
done:
    free(bdocs);
    buf_free(&payload);
    return rc;
}

int st_delete(st_collection *c, const st_key *ids, size_t n, size_t *deleted, tdb_error *err) {
    if (deleted) *deleted = 0;
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        int rc = check_id(ids[i].id, ids[i].id_len, i, err);
        if (rc < 0) return rc;
    }
    int rc = write_gate(c, err);
    if (rc < 0) return rc;
    buf payload = BUF_INIT;
    batch_doc *bdocs = calloc(n, sizeof *bdocs);
    if (bdocs == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory for a batch of %zu ids", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        bdocs[i].id = ids[i].id;
        bdocs[i].id_len = ids[i].id_len;
    }
    rc = batch_encode_delete(&payload, ids, n, err);
    if (rc < 0) goto done;
    size_t was_live = 0;
    rc = write_batch(c, BATCH_TYPE_DELETE, bdocs, n, &payload, &was_live, err);
    if (rc == 0 && deleted) *deleted = was_live;
done:
    free(bdocs);
    buf_free(&payload);
    return rc;
}

/* ---- records --------------------------------------------------------- */

void st_record_free(st_record *r) {
    if (r == NULL) return;
    free(r->id);
    free(r->vector);
    free(r->attrs);
    memset(r, 0, sizeof *r);
}

void st_records_free(st_record *r, size_t n) {
    if (r == NULL) return;
    for (size_t i = 0; i < n; i++) st_record_free(&r[i]);
    free(r);
}

void st_hits_free(st_hit *h, size_t n) {
    if (h == NULL) return;
    for (size_t i = 0; i < n; i++) st_record_free(&h[i].rec);
    free(h);
}

st_doc_ref st_ref_from_entry(const mt_entry *e) {
    return (st_doc_ref){e->id, e->id_len, e->vector, e->attrs, e->attrs_len};
}

st_doc_ref st_ref_from_row(const st_seg *s, uint64_t row) {
    st_doc_ref r;
    r.id = seg_id(s->seg, row, &r.id_len);
    r.vector = seg_vector(s->seg, row);
    r.attrs = seg_attrs(s->seg, row, &r.attrs_len);
    if (r.attrs_len == 0) r.attrs = NULL;
    return r;
}

int st_record_fill(st_record *out, const st_doc_ref *d, uint32_t dimension, bool with_vector) {
    memset(out, 0, sizeof *out);
    const char *attrs = d->attrs_len ? d->attrs : ST_EMPTY_ATTRS;
    uint32_t attrs_len = d->attrs_len ? d->attrs_len : ST_EMPTY_ATTRS_LEN;
    out->id = malloc((size_t)d->id_len + 1);
    out->attrs = malloc((size_t)attrs_len + 1);
    if (with_vector && dimension > 0 && d->vector != NULL)
        out->vector = malloc((size_t)dimension * sizeof(float));
    if (out->id == NULL || out->attrs == NULL ||
        (with_vector && dimension > 0 && d->vector != NULL && out->vector == NULL)) {
        st_record_free(out);
        return TDB_ENOMEM;
    }
    memcpy(out->id, d->id, d->id_len);
    out->id[d->id_len] = '\0';
    out->id_len = d->id_len;
    memcpy(out->attrs, attrs, attrs_len);
    out->attrs[attrs_len] = '\0';
    out->attrs_len = attrs_len;
    if (out->vector) memcpy(out->vector, d->vector, (size_t)dimension * sizeof(float));
    return 0;
}

bool st_ref_passes(const st_doc_ref *d, st_filter_fn filter, void *ctx) {
    if (filter == NULL) return true;
    if (d->attrs_len == 0) return filter(ctx, d->id, d->id_len, ST_EMPTY_ATTRS, ST_EMPTY_ATTRS_LEN);
    return filter(ctx, d->id, d->id_len, d->attrs, d->attrs_len);
}

/* ---- get -------------------------------------------------------------- */

int st_get(st_collection *c, const char *id, uint32_t id_len, bool with_vector, st_record *out,
           tdb_error *err) {
    memset(out, 0, sizeof *out);
    if (id == NULL || id_len == 0 || id_len > ST_MAX_ID_BYTES)
        return tdb_err(err, TDB_ENOTFOUND, "document_not_found", "no document with that id");
    uint64_t snap;
    st_view *v = st_view_acquire(c, &snap);
    int rc = TDB_ENOTFOUND;
    st_doc_ref d = {0};
    bool found = false;
    const mt_entry *e = mt_get(v->mem, id, id_len, snap);
    if (e == NULL && v->frozen != NULL) e = mt_get(v->frozen, id, id_len, snap);
    if (e != NULL) {
        found = !e->tombstone;
        d = st_ref_from_entry(e);
    } else {
        /* I3: at most one visible row of an id over all segments. */
        for (size_t i = v->nsegs; i-- > 0 && !found;) {
            int64_t row = seg_find(v->segs[i]->seg, id, id_len);
            if (row >= 0 && st_row_visible(v->segs[i], (uint64_t)row, snap)) {
                d = st_ref_from_row(v->segs[i], (uint64_t)row);
                found = true;
            }
        }
    }
    if (found) {
        rc = st_record_fill(out, &d, c->dimension, with_vector);
        if (rc < 0) rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory copying a document");
    } else {
        tdb_err(err, TDB_ENOTFOUND, "document_not_found", "no document with id '%.*s'",
                (int)(id_len > 64 ? 64 : id_len), id);
    }
    st_view_release(v);
    return rc;
}

/* ---- scan ------------------------------------------------------------ */

/* A position in one segment, always on a row visible at the snapshot (or
 * at the end). */
typedef struct seg_cursor {
    const st_seg *s;
    uint64_t row;
} seg_cursor;

static void seg_cursor_settle(seg_cursor *cur, uint64_t snap) {
    while (cur->row < cur->s->rows && !st_row_visible(cur->s, cur->row, snap)) cur->row++;
}

static void scan_take_min(const char **min_id, uint32_t *min_len, const char *id, uint32_t len) {
    if (*min_id == NULL || seg_id_cmp(id, len, *min_id, *min_len) < 0) {
        *min_id = id;
        *min_len = len;
    }
}

int st_scan(st_collection *c, const char *after, uint32_t after_len, size_t limit,
            bool with_vectors, st_filter_fn filter, void *filter_ctx, st_record **out, size_t *n,
            tdb_error *err) {
    *out = NULL;
    *n = 0;
    if (limit == 0) return 0;
    uint64_t snap;
    st_view *v = st_view_acquire(c, &snap);
    int rc = 0;
    st_record *recs = NULL;
    size_t count = 0, cap = 0;
    seg_cursor *cursors = v->nsegs ? malloc(v->nsegs * sizeof *cursors) : NULL;
    if (v->nsegs && cursors == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory starting a scan");
        goto done;
    }
    mt_iter mi, fi = {0};
    mt_iter_seek(&mi, v->mem, snap, after, after_len, true);
    if (v->frozen) mt_iter_seek(&fi, v->frozen, snap, after, after_len, true);
    for (size_t i = 0; i < v->nsegs; i++) {
        cursors[i].s = v->segs[i];
        cursors[i].row = after ? seg_upper_bound(v->segs[i]->seg, after, after_len) : 0;
        seg_cursor_settle(&cursors[i], snap);
    }
    /* Merge of the sorted sources. Invariant: every source is positioned
     * on its first visible version with id > the last id considered, so
     * the smallest head is the next id, and its newest version is the
     * active memtable's, else the frozen one's, else a segment's (I3). */
    while (count < limit) {
        const char *min_id = NULL;
        uint32_t min_len = 0;
        if (mi.cur) scan_take_min(&min_id, &min_len, mi.cur->id, mi.cur->id_len);
        if (fi.cur) scan_take_min(&min_id, &min_len, fi.cur->id, fi.cur->id_len);
        for (size_t i = 0; i < v->nsegs; i++) {
            if (cursors[i].row >= cursors[i].s->rows) continue;
            uint32_t len;
            const char *id = seg_id(cursors[i].s->seg, cursors[i].row, &len);
            scan_take_min(&min_id, &min_len, id, len);
        }
        if (min_id == NULL) break;
        bool have = false, tomb = false;
        st_doc_ref d = {0};
        if (mi.cur && seg_id_cmp(mi.cur->id, mi.cur->id_len, min_id, min_len) == 0) {
            have = true;
            tomb = mi.cur->tombstone;
            d = st_ref_from_entry(mi.cur);
            mt_iter_next(&mi);
        }
        if (fi.cur && seg_id_cmp(fi.cur->id, fi.cur->id_len, min_id, min_len) == 0) {
            if (!have) {
                have = true;
                tomb = fi.cur->tombstone;
                d = st_ref_from_entry(fi.cur);
            }
            mt_iter_next(&fi);
        }
        for (size_t i = 0; i < v->nsegs; i++) {
            seg_cursor *cur = &cursors[i];
            if (cur->row >= cur->s->rows) continue;
            uint32_t len;
            const char *id = seg_id(cur->s->seg, cur->row, &len);
            if (seg_id_cmp(id, len, min_id, min_len) != 0) continue;
            if (!have) {
                have = true;
                d = st_ref_from_row(cur->s, cur->row);
            }
            cur->row++;
            seg_cursor_settle(cur, snap);
        }
        if (tomb || !st_ref_passes(&d, filter, filter_ctx)) continue;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : ST_SCAN_INITIAL_CAP;
            if (ncap > limit) ncap = limit;
            st_record *nr = realloc(recs, ncap * sizeof *nr);
            if (nr == NULL) {
                rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory collecting a scan");
                goto done;
            }
            recs = nr;
            cap = ncap;
        }
        if (st_record_fill(&recs[count], &d, c->dimension, with_vectors) < 0) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory copying a document");
            goto done;
        }
        count++;
    }
done:
    free(cursors);
    st_view_release(v);
    if (rc < 0) {
        st_records_free(recs, count);
        return rc;
    }
    if (count == 0) {
        free(recs);
        recs = NULL;
    }
    *out = recs;
    *n = count;
    return 0;
}

/* ---- search ---------------------------------------------------------- */

/* A candidate of the top-k: pointers into the view, copied at the end. */
typedef struct cand {
    float dist;
    uint32_t id_len;
    const char *id;
    const float *vector;
    const char *attrs;
    uint32_t attrs_len;
} cand;

/* Max-heap on (distance, id) of the k best so far: the root is the worst
 * kept, the one a newcomer must beat. Ties on distance go to the smaller
 * id (storage.h), which the heap in vec/ cannot order since it keys ties
 * on integers. */
typedef struct cand_heap {
    cand *a;
    size_t n, k;
} cand_heap;

static inline bool cand_worse(const cand *x, const cand *y) {
    return x->dist > y->dist ||
           (x->dist == y->dist && seg_id_cmp(x->id, x->id_len, y->id, y->id_len) > 0);
}

static void heap_sift_down(cand_heap *h, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && cand_worse(&h->a[l], &h->a[m])) m = l;
        if (r < h->n && cand_worse(&h->a[r], &h->a[m])) m = r;
        if (m == i) return;
        cand t = h->a[i];
        h->a[i] = h->a[m];
        h->a[m] = t;
        i = m;
    }
}

static void heap_push(cand_heap *h, const cand *x) {
    if (h->n < h->k) {
        size_t i = h->n++;
        h->a[i] = *x;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!cand_worse(&h->a[i], &h->a[p])) break;
            cand t = h->a[i];
            h->a[i] = h->a[p];
            h->a[p] = t;
            i = p;
        }
        return;
    }
    h->a[0] = *x;
    heap_sift_down(h, 0);
}

/* Would x enter the heap? Cheap distance test first: ids are compared only
 * on an exact tie with the current worst. */
static inline bool heap_wants(const cand_heap *h, float dist, const char *id, uint32_t id_len) {
    if (h->n < h->k) return true;
    const cand *top = &h->a[0];
    if (dist != top->dist) return dist < top->dist;
    return seg_id_cmp(id, id_len, top->id, top->id_len) < 0;
}

typedef struct search_ctx {
    tdb_metric metric;
    const float *query;
    float query_norm;
    size_t dim;
    vec_kernel_fn dot;
    vec_kernel_fn l2sq;
    st_filter_fn filter;
    void *filter_ctx;
    cand_heap heap;
} search_ctx;

/* Same formulas as vec_distance (API.md), inlined so the per-row loop has
 * no call through the metric switch; always_inline lets the compiler
 * specialize each segment loop below for a constant metric. */
static inline __attribute__((always_inline)) float row_distance(const search_ctx *s,
                                                                tdb_metric metric,
                                                                const float *v, float v_norm) {
    switch (metric) {
    case TDB_METRIC_L2: return sqrtf(s->l2sq(s->query, v, s->dim));
    case TDB_METRIC_DOT: return -s->dot(s->query, v, s->dim);
    case TDB_METRIC_COSINE:
    default: {
        float denom = s->query_norm * v_norm;
        if (denom == 0) return 1.0f;
        return 1.0f - s->dot(s->query, v, s->dim) / denom;
    }
    }
}

static void consider(search_ctx *s, float dist, const st_doc_ref *d) {
    if (!heap_wants(&s->heap, dist, d->id, d->id_len)) return;
    if (!st_ref_passes(d, s->filter, s->filter_ctx)) return;
    cand x = {dist, d->id_len, d->id, d->vector, d->attrs, d->attrs_len};
    heap_push(&s->heap, &x);
}

static inline __attribute__((always_inline)) void search_rows(search_ctx *s, tdb_metric metric,
                                                               const st_seg *seg, uint64_t snap) {
    const float *vectors = seg_vectors(seg->seg);
    const float *norms = seg_norms(seg->seg);
    const size_t dim = s->dim;
    for (uint64_t row = 0; row < seg->rows; row++) {
        if (!st_row_visible(seg, row, snap)) continue;
        float dist = row_distance(s, metric, vectors + row * dim, norms[row]);
        /* Most rows lose to the current k-th best here, before any id or
         * attribute is touched. */
        if (s->heap.n == s->heap.k && dist > s->heap.a[0].dist) continue;
        st_doc_ref d = st_ref_from_row(seg, row);
        consider(s, dist, &d);
    }
}

static void search_segment(search_ctx *s, const st_seg *seg, uint64_t snap) {
    switch (s->metric) {
    case TDB_METRIC_L2: search_rows(s, TDB_METRIC_L2, seg, snap); break;
    case TDB_METRIC_DOT: search_rows(s, TDB_METRIC_DOT, seg, snap); break;
    case TDB_METRIC_COSINE:
    default: search_rows(s, TDB_METRIC_COSINE, seg, snap); break;
    }
}

/* Both memtables in one merged walk, so a frozen version shadowed by an
 * active one (which marked nothing in the frozen table) is skipped. */
static void search_memtables(search_ctx *s, const st_view *v, uint64_t snap) {
    mt_iter mi, fi = {0};
    mt_iter_seek(&mi, v->mem, snap, NULL, 0, false);
    if (v->frozen) mt_iter_seek(&fi, v->frozen, snap, NULL, 0, false);
    while (mi.cur || fi.cur) {
        const mt_entry *e;
        int cmp = !fi.cur ? -1 : !mi.cur ? 1
                                         : seg_id_cmp(mi.cur->id, mi.cur->id_len, fi.cur->id,
                                                      fi.cur->id_len);
        if (cmp <= 0) {
            e = mi.cur;
            mt_iter_next(&mi);
            if (cmp == 0) mt_iter_next(&fi);
        } else {
            e = fi.cur;
            mt_iter_next(&fi);
        }
        if (e->tombstone) continue;
        float dist = row_distance(s, s->metric, e->vector, e->norm);
        st_doc_ref d = st_ref_from_entry(e);
        consider(s, dist, &d);
    }
}

/* ---- approximate search: HNSW per segment --------------------------- */

/* Rows sampled per query to estimate how many rows a filter keeps (the
 * planner's input): evenly spaced, so the answer is deterministic; the
 * standard error of the fraction is at most 1/(2 sqrt(n)), about 3%,
 * enough to tell a filter that keeps 1% of rows from one that keeps 30%
 * for a few hundred filter calls. */
#define ST_PLAN_SAMPLE_ROWS 256u
/* A segment no larger than this many times the search breadth is scanned
 * exactly: a graph walk of breadth ef computes some 20 x ef distances
 * (vec/plan.c), so on a small segment it saves nothing. */
#define ST_GRAPH_MIN_ROWS_PER_EF 4u

/* What the graph walk asks of a row: visible at the snapshot, passing the
 * query's filter. */
typedef struct ann_accept {
    const st_seg *seg;
    uint64_t snap;
    st_filter_fn filter;
    void *filter_ctx;
} ann_accept;

static bool ann_accept_row(void *ctx, uint32_t row) {
    const ann_accept *a = ctx;
    if (!st_row_visible(a->seg, row, a->snap)) return false;
    if (a->filter == NULL) return true;
    st_doc_ref d = st_ref_from_row(a->seg, row);
    return st_ref_passes(&d, a->filter, a->filter_ctx);
}

/* The fraction of the segment's rows that are live (exact up to marks
 * newer than the snapshot). */
static double live_fraction(const st_seg *seg) {
    if (seg->rows == 0) return 0.0;
    uint64_t dead = atomic_load_explicit(&seg->dead_rows, memory_order_relaxed);
    return dead >= seg->rows ? 0.0 : (double)(seg->rows - dead) / (double)seg->rows;
}

/* The share of live rows the filter keeps, from ST_PLAN_SAMPLE_ROWS rows
 * spread evenly over the segments with a graph (one sample per query:
 * evaluating a filter means parsing a row's attributes, so a sample per
 * segment would cost as much as scanning small segments). */
static double filter_selectivity(const st_view *v, uint64_t snap, st_filter_fn filter,
                                 void *filter_ctx) {
    uint64_t total = 0;
    for (size_t i = 0; i < v->nsegs; i++)
        if (v->segs[i]->hnsw) total += v->segs[i]->rows;
    if (total == 0) return 1.0;
    uint64_t n = total < ST_PLAN_SAMPLE_ROWS ? total : ST_PLAN_SAMPLE_ROWS;
    uint64_t visible = 0, kept = 0;
    size_t seg = 0;
    uint64_t seg_start = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t pos = i * total / n;
        /* Positions rise, so the segment holding pos is found by walking on. */
        while (!v->segs[seg]->hnsw || pos >= seg_start + v->segs[seg]->rows) {
            if (v->segs[seg]->hnsw) seg_start += v->segs[seg]->rows;
            seg++;
        }
        const st_seg *s = v->segs[seg];
        uint64_t row = pos - seg_start;
        if (!st_row_visible(s, row, snap)) continue;
        visible++;
        st_doc_ref d = st_ref_from_row(s, row);
        kept += st_ref_passes(&d, filter, filter_ctx);
    }
    return visible ? (double)kept / (double)visible : 0.0;
}

/* One segment through its graph: min(k, matches) rows, pushed into the
 * shared top-k. */
static int search_segment_graph(search_ctx *s, const st_seg *seg, const ann_accept *acc,
                                bool filtered, uint32_t k, uint32_t ef, hnsw_scratch *scratch,
                                vec_hit *buf, tdb_error *err) {
    vec_filter vf = {NULL, ann_accept_row, (void *)acc};
    hnsw_query q = {s->query, k, ef, filtered ? &vf : NULL};
    uint32_t got = 0;
    int rc = hnsw_search(seg->hnsw, &q, scratch, buf, &got, NULL, err);
    if (rc < 0) return rc;
    for (uint32_t i = 0; i < got; i++) {
        st_doc_ref d = st_ref_from_row(seg, buf[i].row);
        if (!heap_wants(&s->heap, buf[i].distance, d.id, d.id_len)) continue;
        cand x = {buf[i].distance, d.id_len, d.id, d.vector, d.attrs, d.attrs_len};
        heap_push(&s->heap, &x);
    }
    return 0;
}

int st_search(st_collection *c, const float *query, size_t k, st_filter_fn filter,
              void *filter_ctx, bool with_vectors, st_hit **out, size_t *n, tdb_error *err) {
    return st_search_ex(c, query, k, filter, filter_ctx, with_vectors, NULL, out, n, err);
}

int st_search_ex(st_collection *c, const float *query, size_t k, st_filter_fn filter,
                 void *filter_ctx, bool with_vectors, const st_search_opts *o, st_hit **out,
                 size_t *n, tdb_error *err) {
    *out = NULL;
    *n = 0;
    if (o && o->info) *o->info = (st_search_info){0};
    if (c->dimension == 0)
        return tdb_err(err, TDB_EINVAL, "no_vectors",
                       "this collection has dimension 0: it stores no vectors to search");
    if (query == NULL) return tdb_err(err, TDB_EINVAL, NULL, "a query vector is required");
    if (k == 0) return 0;
    bool exact = o == NULL || o->exact;
    const vec_kernels *kern = vec_kernels_get();
    search_ctx s = {
        .metric = c->metric,
        .query = query,
        .query_norm = vec_norm(query, c->dimension),
        .dim = c->dimension,
        .dot = kern->dot,
        .l2sq = kern->l2sq,
        .filter = filter,
        .filter_ctx = filter_ctx,
    };
    uint64_t snap;
    st_view *v = st_view_acquire(c, &snap);
    int rc = 0;
    st_hit *hits = NULL;
    size_t filled = 0;
    hnsw_scratch *scratch = NULL;
    vec_hit *graph_hits = NULL;
    /* k may be large (API: up to 10000) but never more than the rows. */
    size_t cap = k;
    uint64_t total = mt_count(v->mem) + (v->frozen ? mt_count(v->frozen) : 0);
    for (size_t i = 0; i < v->nsegs; i++) total += v->segs[i]->rows;
    if (cap > total) cap = (size_t)total;
    s.heap.k = cap;
    if (cap == 0) goto done;
    s.heap.a = malloc(cap * sizeof *s.heap.a);
    if (s.heap.a == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory for a top-%zu search", k);
        goto done;
    }
    search_memtables(&s, v, snap);
    uint32_t graph_k = cap > HNSW_EF_MAX ? HNSW_EF_MAX : (uint32_t)cap;
    uint32_t ef = o && o->ef ? o->ef : ST_DEFAULT_EF;
    if (ef < graph_k) ef = graph_k;
    if (ef > HNSW_EF_MAX) ef = HNSW_EF_MAX;
    double filter_sel = -1.0; /* not sampled yet */
    for (size_t i = 0; i < v->nsegs; i++) {
        const st_seg *seg = v->segs[i];
        bool forced = o && o->plan == ST_PLAN_GRAPH;
        bool graph = !exact && seg->hnsw != NULL &&
                     (forced || seg->rows > (uint64_t)ef * ST_GRAPH_MIN_ROWS_PER_EF);
        ann_accept acc = {seg, snap, filter, filter_ctx};
        bool filtered = filter != NULL || atomic_load(&seg->dead_rows) > 0;
        if (graph && filtered && !forced) {
            /* Selective filters (or a mostly deleted segment): scanning the
             * matching rows beats a walk that must step over the rest. */
            if (filter != NULL && filter_sel < 0)
                filter_sel = filter_selectivity(v, snap, filter, filter_ctx);
            double sel = live_fraction(seg) * (filter != NULL ? filter_sel : 1.0);
            graph = vec_plan_filtered((uint32_t)seg->rows, sel, ef, graph_k) == VEC_PLAN_GRAPH;
        }
        if (!graph) {
            search_segment(&s, seg, snap);
            if (o && o->info) o->info->exact_segments++;
            continue;
        }
        if (scratch == NULL) {
            scratch = hnsw_scratch_new();
            graph_hits = malloc((size_t)graph_k * sizeof *graph_hits);
            if (scratch == NULL || graph_hits == NULL) {
                rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory for a graph search");
                goto done;
            }
        }
        rc = search_segment_graph(&s, seg, &acc, filtered, graph_k, ef, scratch, graph_hits, err);
        if (rc < 0) goto done;
        if (o && o->info) o->info->graph_segments++;
    }
    if (s.heap.n == 0) goto done;
    /* Heap-sort in place: repeatedly move the worst to the end. */
    size_t kept = s.heap.n;
    while (s.heap.n > 1) {
        cand t = s.heap.a[0];
        s.heap.a[0] = s.heap.a[s.heap.n - 1];
        s.heap.a[s.heap.n - 1] = t;
        s.heap.n--;
        heap_sift_down(&s.heap, 0);
    }
    hits = calloc(kept, sizeof *hits);
    if (hits == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory copying search results");
        goto done;
    }
    for (; filled < kept; filled++) {
        const cand *x = &s.heap.a[filled];
        st_doc_ref d = {x->id, x->id_len, x->vector, x->attrs, x->attrs_len};
        if (st_record_fill(&hits[filled].rec, &d, c->dimension, with_vectors) < 0) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory copying search results");
            goto done;
        }
        hits[filled].distance = x->dist;
    }
done:
    hnsw_scratch_free(scratch);
    free(graph_hits);
    free(s.heap.a);
    st_view_release(v);
    if (rc < 0) {
        st_hits_free(hits, filled);
        return rc;
    }
    *out = hits;
    *n = filled;
    return 0;
}

/* ---- stats, checks, close -------------------------------------------- */

void st_stats_get(st_collection *c, st_stats *out) {
    memset(out, 0, sizeof *out);
    uint64_t snap;
    st_view *v = st_view_acquire(c, &snap);
    pthread_mutex_lock(&c->write_mu);
    out->documents = c->live_docs;
    pthread_mutex_unlock(&c->write_mu);
    /* Live rows of the segments whose indexes are all built; the rest
     * (memtables, segments written without an index) are searched
     * exhaustively. */
    for (size_t i = 0; i < v->nsegs; i++) {
        const st_seg *sg = v->segs[i];
        uint64_t dead = atomic_load_explicit(&sg->dead_rows, memory_order_relaxed);
        if (st_seg_fully_indexed(c, sg) && dead < sg->rows) out->indexed_documents += sg->rows - dead;
    }
    /* A WAL that failed outside a write (rotation, interval sync) makes
     * every later append fail: report it before the first write finds out. */
    out->read_only = atomic_load(&c->read_only) || (c->wal != NULL && wal_failed(c->wal));
    out->segments = (uint32_t)v->nsegs;
    out->memory_bytes = mt_bytes(v->mem) + (v->frozen ? mt_bytes(v->frozen) : 0) +
                        st_memtext_memory_bytes(c, v->mem) +
                        (v->frozen ? st_memtext_memory_bytes(c, v->frozen) : 0);
    out->disk_bytes = atomic_load(&c->manifest_bytes);
    for (size_t i = 0; i < v->nsegs; i++) {
        out->disk_bytes += seg_file_bytes(v->segs[i]->seg);
        out->memory_bytes += v->segs[i]->rows * sizeof(uint64_t) + sizeof(st_seg);
    }
    if (c->wal) {
        wal_stats ws;
        wal_stats_get(c->wal, &ws);
        out->disk_bytes += ws.disk_bytes;
        out->wal_bytes_written = ws.bytes_written;
        out->wal_fsyncs = ws.fsyncs;
    }
    out->flushes = atomic_load(&c->flushes);
    out->compactions = atomic_load(&c->compactions);
    st_view_release(v);
}

const st_recovery *st_recovery_get(st_collection *c) { return &c->recovery; }

bool st_check(st_collection *c) {
    bool ok = true;
    pthread_mutex_lock(&c->write_mu);
    st_view *v = c->view;
    if (!mt_check(v->mem) || (v->frozen && !mt_check(v->frozen))) ok = false;
    uint64_t seg_live = 0, mem_live = 0;
    for (size_t i = 0; ok && i < v->nsegs; i++) {
        const st_seg *s = v->segs[i];
        for (uint64_t row = 0; row < s->rows; row++) {
            if (atomic_load(&s->marks[row]) != ST_MARK_LIVE) continue;
            seg_live++;
            uint32_t len;
            const char *id = seg_id(s->seg, row, &len);
            /* I3: a live row has no memtable version and no live twin. */
            if (mt_get(v->mem, id, len, UINT64_MAX) ||
                (v->frozen && mt_get(v->frozen, id, len, UINT64_MAX)))
                ok = false;
            for (size_t j = 0; j < v->nsegs; j++) {
                if (j == i) continue;
                int64_t r = seg_find(v->segs[j]->seg, id, len);
                if (r >= 0 && atomic_load(&v->segs[j]->marks[r]) == ST_MARK_LIVE) ok = false;
            }
        }
    }
    mt_iter mi, fi = {0};
    mt_iter_seek(&mi, v->mem, UINT64_MAX, NULL, 0, false);
    if (v->frozen) mt_iter_seek(&fi, v->frozen, UINT64_MAX, NULL, 0, false);
    while (mi.cur || fi.cur) {
        int cmp = !fi.cur ? -1 : !mi.cur ? 1
                                         : seg_id_cmp(mi.cur->id, mi.cur->id_len, fi.cur->id,
                                                      fi.cur->id_len);
        const mt_entry *e = cmp <= 0 ? mi.cur : fi.cur;
        if (!e->tombstone) mem_live++;
        if (cmp <= 0) mt_iter_next(&mi);
        if (cmp >= 0) mt_iter_next(&fi);
    }
    if (seg_live != c->seg_live_rows || seg_live + mem_live != c->live_docs) ok = false;
    pthread_mutex_unlock(&c->write_mu);
    return ok;
}

void st_wait_background(st_collection *c) {
    pthread_mutex_lock(&c->write_mu);
    while (c->jobs_pending > (c->idle_timer ? 1u : 0u))
        pthread_cond_wait(&c->job_cv, &c->write_mu);
    pthread_mutex_unlock(&c->write_mu);
}

void st_close(st_collection *c) {
    if (c == NULL) return;
    pthread_mutex_lock(&c->write_mu);
    c->closing = true;
    atomic_store(&c->cancel, true); /* graph builds in progress give up */
    pthread_cond_broadcast(&c->flush_cv);
    pthread_cond_broadcast(&c->retry_cv);
    while (c->jobs_pending > 0) pthread_cond_wait(&c->job_cv, &c->write_mu);
    pthread_mutex_unlock(&c->write_mu);
    wal_close(c->wal);
    st_view_release(c->view);
    pthread_mutex_destroy(&c->flush_mu);
    pthread_mutex_destroy(&c->compact_mu);
    pthread_mutex_destroy(&c->manifest_mu);
    pthread_mutex_destroy(&c->write_mu);
    pthread_mutex_destroy(&c->view_mu);
    pthread_cond_destroy(&c->apply_cv);
    pthread_cond_destroy(&c->flush_cv);
    pthread_cond_destroy(&c->job_cv);
    pthread_cond_destroy(&c->retry_cv);
    pthread_rwlock_destroy(&c->text_mu);
    st_text_teardown(c);
    free(c->dir);
    free(c->wal_dir);
    free(c->seg_dir);
    free(c);
}
