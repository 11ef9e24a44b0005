/*
 * collection_int.h: the state of one open collection, shared by the files
 * that implement storage.h: collection.c (write path, reads, views),
 * flush.c (memtable -> segment, manifest commits), compaction.c (segment
 * merges) and recovery.c (st_open: manifest, segments, WAL replay).
 * Layer: storage. Not included outside src/storage/. Overview of the whole
 * engine, with the same numbered invariants: docs/storage.md.
 *
 * Model. A collection is a log of writes numbered by seqno. What a reader
 * sees is a "view" (the active memtable, the frozen memtable being
 * flushed, the list of segments) plus a snapshot seqno: it sees exactly
 * the writes <= snapshot. Memtables keep every version with its seqno;
 * segment rows carry their seqno, and a per-row deletion mark holds the
 * seqno of the write that deleted or superseded the row (0 = live), so a
 * reader ignores marks above its snapshot. Nothing a reader looks at is
 * ever changed in a way its snapshot can see.
 *
 * Invariants (numbers used in comments and docs/storage.md):
 *   (I1) writes are applied in seqno order with no gaps: a write is applied
 *        only when applied_seqno == its seqno - 1 (replay applies the WAL
 *        in its own order); applied_seqno rises only.
 *   (I2) every applied write is in the active or frozen memtable, or in a
 *        segment, or (a delete of a row only in segments) in that row's
 *        mark; the frozen memtable holds exactly the writes in
 *        (previous checkpoint, frozen_checkpoint].
 *   (I3) at every snapshot, each id has at most one visible version across
 *        the segments, and a visible memtable version of an id shadows
 *        every segment row of it: applying a version of X marks X's live
 *        segment rows, and installing a flushed segment marks its rows
 *        superseded by the active memtable.
 *   (I4) a segment row's mark, once non-zero, never changes; a segment
 *        file is never modified; memtable entries are never freed before
 *        their memtable.
 *   (I5) live_docs == number of ids whose newest version is not a
 *        tombstone; seg_live_rows == rows with mark 0 over all segments.
 *   (I6) the MANIFEST lists exactly the segments of the current view (or
 *        of the one about to be installed while manifest_mu is held), its
 *        delete lists hold only marks of durable writes, and its
 *        checkpoint is the frozen_checkpoint of the last flush committed.
 *   (I7) a segment file is unlinked only after the MANIFEST stopped
 *        listing it and the last reference to it was dropped.
 *
 * Concurrency. Lock order: flush_mu / compact_mu -> manifest_mu ->
 * write_mu -> view_mu.
 *   flush_mu      one flush at a time (the background job, st_flush, or a
 *                 writer that found the memtable over its hard cap); held
 *                 across its I/O.
 *   compact_mu    one compaction at a time; held across its I/O.
 *   manifest_mu   building, storing and installing a manifest change (the
 *                 commit of a flush or compaction); guards checkpoint_seqno,
 *                 manifest_generation, manifest_bytes.
 *   write_mu      applying writes (short, in memory, cannot fail), swapping
 *                 views; guards the fields marked [W]. apply_cv signals
 *                 applied_seqno moving; flush_cv a frozen memtable dropped
 *                 or the collection turning read-only; job_cv jobs ending.
 *   view_mu       publishing `view`; readers hold it only to take a
 *                 reference and the snapshot seqno, never across a search.
 * Readers never take write_mu, so queries never wait for writers, flushes
 * or compactions; memtables are read lock-free (memtable.h).
 */
#ifndef TDB_STORAGE_COLLECTION_INT_H
#define TDB_STORAGE_COLLECTION_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/batch.h"
#include "storage/memtable.h"
#include "storage/segment.h"
#include "storage/storage.h"
#include "storage/wal.h"

/* Defaults for st_options fields left at 0 (tierdb.h documents them). */
#define ST_DEFAULT_MEMTABLE_MAX_BYTES (64ull << 20)
#define ST_DEFAULT_MEMTABLE_MAX_DOCS 100000u
#define ST_DEFAULT_COMPACTION_MIN_SEGMENTS 4u
/* A second memtable filling while the first is still being flushed makes
 * writers wait once it is this many times over the limit: memory stays
 * bounded, and writers never wait while the memtable is below it. */
#define ST_MEMTABLE_HARD_CAP_FACTOR 2u

/* Row marks: 0 = live, else the seqno of the write that deleted or
 * superseded the row. Rows deleted before this open (the MANIFEST's
 * delete lists) get ST_MARK_BEFORE_OPEN, below every snapshot a reader of
 * this open can hold (segments exist only after a write with seqno >= 1). */
#define ST_MARK_LIVE 0u
#define ST_MARK_BEFORE_OPEN 1u

#define ST_DIR_SEGMENTS "segments"
#define ST_DIR_WAL "wal"
#define ST_SEG_SUFFIX ".seg"

/* An open segment file with its in-memory deletion marks. Immutable but
 * for the marks (atomics, I4) and the refcount. */
typedef struct st_seg {
    _Atomic uint32_t refs;
    uint64_t id;                /* file segments/<id, 20 digits>.seg */
    segment *seg;
    uint64_t rows;
    _Atomic uint64_t *marks;    /* rows entries (zeroed pages cost nothing until touched) */
    _Atomic bool obsolete;      /* replaced by compaction: unlink at the last unref (I7) */
    char *path;
} st_seg;

/* What a reader holds: immutable once published. */
typedef struct st_view {
    _Atomic uint32_t refs;
    memtable *mem;              /* active: writers insert here */
    memtable *frozen;           /* being flushed, or NULL */
    size_t nsegs;
    st_seg *segs[];             /* oldest first */
} st_view;

struct st_collection {
    char *dir;
    char *wal_dir;
    char *seg_dir;
    uint32_t dimension;
    tdb_metric metric;
    st_options opts;            /* defaults filled in */
    wal *wal;                   /* NULL during recovery */

    pthread_mutex_t flush_mu;
    pthread_mutex_t compact_mu;

    pthread_mutex_t manifest_mu;
    _Atomic uint64_t checkpoint_seqno; /* written under manifest_mu; read by flush's freeze */
    uint64_t manifest_generation;
    _Atomic uint64_t manifest_bytes;
    _Atomic uint64_t next_segment_id;

    pthread_mutex_t write_mu;
    pthread_cond_t apply_cv;
    pthread_cond_t flush_cv;
    pthread_cond_t job_cv;
    _Atomic uint64_t applied_seqno; /* written under write_mu (I1), read anywhere */
    uint64_t live_docs;             /* [W] (I5) */
    uint64_t seg_live_rows;         /* [W] (I5) */
    /* [W] rows marked since the last freeze: deletes of rows only in
     * segments add no memtable entry, yet their WAL records wait for a
     * flush to be truncated, so they count towards the flush trigger. */
    uint64_t marks_since_freeze;
    uint64_t frozen_checkpoint;     /* [W] applied_seqno when `frozen` was frozen */
    bool flush_scheduled;           /* [W] a background flush job is queued or running */
    bool compaction_scheduled;      /* [W] */
    uint32_t jobs_pending;          /* [W] background jobs not finished */
    bool closing;                   /* [W] st_close started: schedule nothing new */
    _Atomic bool read_only;         /* set once under write_mu, read anywhere */
    char read_only_reason[256];     /* [W] why (set with read_only) */

    pthread_mutex_t view_mu;
    st_view *view;                  /* [W] to replace; view_mu to replace or reference */

    _Atomic uint64_t flushes;
    _Atomic uint64_t compactions;
    st_recovery recovery;           /* filled by st_open, then immutable */
};

/* ---- collection.c: views, segments, the apply path ------------------ */

st_view *st_view_new(size_t nsegs); /* refs 1, fields zeroed; NULL when out of memory */
/* Takes a reference to the current view and the snapshot seqno that goes
 * with it. Never blocks on writers. */
st_view *st_view_acquire(st_collection *c, uint64_t *snapshot);
void st_view_release(st_view *v); /* NULL is a no-op */
/* Publishes nv as the current view (caller holds write_mu) and returns the
 * old one, whose reference the caller drops after unlocking. */
st_view *st_view_swap_locked(st_collection *c, st_view *nv);

void st_seg_ref(st_seg *s);
void st_seg_unref(st_seg *s); /* closes, and unlinks when obsolete (I7) */
/* Opens segments/<id>.seg with zeroed marks. */
int st_seg_open(st_collection *c, uint64_t id, st_seg **out, tdb_error *err);
int st_seg_path(const st_collection *c, uint64_t id, char **out);
static inline bool st_row_visible(const st_seg *s, uint64_t row, uint64_t snapshot) {
    uint64_t m = atomic_load_explicit(&s->marks[row], memory_order_relaxed);
    return m == ST_MARK_LIVE || m > snapshot;
}

/* Builds one memtable entry per distinct id of docs (a later duplicate
 * wins), before any lock is taken, so applying cannot fail. *out is
 * malloc'd; free it and any entries not applied with st_entries_free. */
int st_entries_prepare(st_collection *c, const batch_doc *docs, size_t n, bool tombstones,
                       mt_entry ***out, size_t *out_n, tdb_error *err);
void st_entries_free(mt_entry **entries, size_t n);
/* Applies one write (I1..I5) and takes ownership of the entries; returns
 * how many ids were live before (for deletes). With replay, does not wait
 * for its turn: recovery applies in WAL order on one thread. Returns true
 * when the active memtable crossed its limit and a flush should start. */
bool st_apply(st_collection *c, uint64_t seqno, mt_entry **entries, size_t n, bool replay,
              size_t *was_live);

/* Marks the collection read-only (first reason wins) and wakes writers. */
void st_set_read_only(st_collection *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool st_memtable_over_limit(const st_collection *c, const memtable *m);
/* The active memtable (or the marks since the last freeze) call for a
 * flush. Caller holds write_mu. */
bool st_flush_due_locked(const st_collection *c);

/* ---- flush.c -------------------------------------------------------- */

/* Freezes the active memtable (or takes the frozen one a failed flush left)
 * and writes it to a segment; the caller holds flush_mu. */
int st_flush_locked(st_collection *c, tdb_error *err);
/* Queues a background flush (or runs it here without a pool). */
void st_schedule_flush(st_collection *c);

/* A change of the segment list to commit to the MANIFEST. */
typedef struct st_commit {
    st_seg *const *remove;      /* compaction inputs (must be in the current view) */
    size_t n_remove;
    st_seg *add;                /* the new segment, or NULL */
    size_t add_at;              /* its position in the new list (clamped to the end) */
    /* The mark of row `row` of `add` as of now, for rows whose history
     * lives in other segments (compaction); NULL: none. */
    uint64_t (*add_mark)(void *ctx, uint64_t row);
    void *add_ctx;
    uint64_t checkpoint;        /* the checkpoint to store */
    /* Writes up to here must be durable for the change to be safe (a
     * compaction drops rows deleted up to its snapshot). When the WAL
     * cannot be synced, only writes <= checkpoint count as durable. */
    uint64_t min_durable;
} st_commit;

/* Makes every applied write durable (wal_sync unless fsync=always),
 * then stores the MANIFEST for the current view changed by cm, with the
 * delete lists of all marks of durable writes (I6). The caller holds
 * manifest_mu and installs the matching view before releasing it. */
int st_manifest_commit(st_collection *c, const st_commit *cm, tdb_error *err);

/* ---- compaction.c --------------------------------------------------- */

/* Merges segments (all of them, or the ones the size policy picks) into
 * one, dropping deleted rows; the caller holds compact_mu. *merged tells
 * whether there was anything to do. */
int st_compact_locked(st_collection *c, bool all, bool *merged, tdb_error *err);
/* Queues a background compaction when the segment count calls for one. */
void st_schedule_compaction(st_collection *c);
/* Tests only (NULL otherwise): called by a compaction after its output is
 * written and before it commits, so a test can write in that window. */
extern void (*st_test_compaction_hook)(st_collection *c);

/* ---- recovery.c ----------------------------------------------------- */

/* Loads the MANIFEST, opens its segments, removes unlisted files, replays
 * the WAL and opens it for appending. c has its paths and options set. */
int st_recover(st_collection *c, tdb_error *err);

/* Checks I5 and the view's shape; only while no write or job runs
 * (tests). */
bool st_check(st_collection *c);

#endif
