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
 *                 applied_seqno moving; flush_cv a frozen memtable dropped,
 *                 a flush failing or the collection turning read-only;
 *                 job_cv jobs ending; retry_cv the retry timer's wake-up.
 *   view_mu       publishing `view`; readers hold it only to take a
 *                 reference and the snapshot seqno, never across a search.
 * Readers never take write_mu, so queries never wait for writers, flushes
 * or compactions; memtables are read lock-free (memtable.h).
 *   text_mu       (rwlock; only in collections with full-text fields; taken
 *                 inside write_mu) the memtables' text indexes and every
 *                 change of row marks or of the view's segment list: a
 *                 writer holds it in write mode while it applies (memtable
 *                 text indexes, marks, applied_seqno), a flush or a
 *                 compaction while it installs. A text search holds it in
 *                 read mode while it takes its view and snapshot, sums the
 *                 BM25 statistics and searches the memtables, so those
 *                 statistics are exactly those of its snapshot (every mark
 *                 is <= it and the memtable indexes hold exactly the live
 *                 versions); it then searches the segments without it.
 *                 This is the one place a reader can make a writer wait:
 *                 for the length of a memtable search, plus the analysis
 *                 of rows marked since the previous text search.
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
#include "text/bm25.h"
#include "text/index.h"
#include "vec/hnsw.h"
#include "vec/rabitq.h"
#include "vec/sq8.h"

/* Defaults for st_options fields left at 0 (tierdb.h documents them). */
#define ST_DEFAULT_MEMTABLE_MAX_BYTES (64ull << 20)
#define ST_DEFAULT_MEMTABLE_MAX_DOCS 100000u
#define ST_DEFAULT_COMPACTION_MIN_SEGMENTS 4u
/* Flushed segments with fewer rows than this get their graph inline (an
 * exact scan of them costs about what a graph walk does, and building it
 * takes milliseconds); larger ones are installed without it and the index
 * job (compaction.c) adds it in the background. */
#define ST_INDEX_INLINE_MAX_ROWS 4096u
/* A second memtable filling while the first is still being flushed makes
 * writers wait once it is this many times over the limit: memory stays
 * bounded, and writers never wait while the memtable is below it. */
#define ST_MEMTABLE_HARD_CAP_FACTOR 2u
/* The text indexes of the active memtable are measured again (an O(terms)
 * walk) once it has grown by this many entries, or by 1/16 of its size
 * if more: the flush trigger sees them at most that far behind. */
#define ST_TEXT_BYTES_REMEASURE_ENTRIES 64u

/* Retrying a flush that failed without touching durable state (flush.c,
 * "Failures"): the first retry after ST_FLUSH_RETRY_FIRST_MS, doubling up
 * to ST_FLUSH_RETRY_MAX_MS (each attempt rebuilds the segment's indexes,
 * so a short period would burn CPU on a full disk). After a lack of space
 * the free space of the segment directory is also probed every
 * ST_FLUSH_PROBE_MS, so writes resume soon after space is freed rather
 * than at the end of a long backoff. */
#define ST_FLUSH_RETRY_FIRST_MS 1000u
#define ST_FLUSH_RETRY_MAX_MS 30000u
#define ST_FLUSH_PROBE_MS 1000u
/* The probe retries early once free space grew by the memtable's size
 * (at least this much) since the failure. */
#define ST_FLUSH_SPACE_MIN_BYTES (1ull << 20)

/* Row marks: 0 = live, else the seqno of the write that deleted or
 * superseded the row. Rows deleted before this open (the MANIFEST's
 * delete lists) get ST_MARK_BEFORE_OPEN, below every snapshot a reader of
 * this open can hold (segments exist only after a write with seqno >= 1). */
#define ST_MARK_LIVE 0u
#define ST_MARK_BEFORE_OPEN 1u

/* Segment extra kinds (segment.h: >= SEG_KIND_EXTRA_BASE). The text
 * directory maps full-text field names to the kinds of their index blobs
 * (ST_EXTRA_TEXT_FIRST + i); textindex.c describes its format. */
#define ST_EXTRA_HNSW (SEG_KIND_EXTRA_BASE + 0u)
#define ST_EXTRA_SQ8 (SEG_KIND_EXTRA_BASE + 1u)
#define ST_EXTRA_RABITQ (SEG_KIND_EXTRA_BASE + 2u)
#define ST_EXTRA_TEXT_DIR (SEG_KIND_EXTRA_BASE + 100u)
#define ST_EXTRA_TEXT_FIRST (SEG_KIND_EXTRA_BASE + 101u)

#define ST_DIR_SEGMENTS "segments"
#define ST_DIR_WAL "wal"
#define ST_SEG_SUFFIX ".seg"

typedef struct st_seg_dead st_seg_dead; /* textindex.c */

/* An open segment file with its in-memory deletion marks and its indexes.
 * Immutable but for the marks (atomics, I4), dead_rows, the refcount and
 * the deleted rows' text statistics (`dead`, own lock). */
typedef struct st_seg {
    _Atomic uint32_t refs;
    uint64_t id;                /* file segments/<id, 20 digits>.seg */
    segment *seg;
    uint64_t rows;
    _Atomic uint64_t *marks;    /* rows entries (zeroed pages cost nothing until touched) */
    _Atomic uint64_t dead_rows; /* marks set (non-zero), whatever their seqno */
    _Atomic bool obsolete;      /* replaced by compaction: unlink at the last unref (I7) */
    char *path;
    /* Vector index (vecindex.c): views on the mapped extras, or NULL when
     * the segment has none (searched exactly). */
    hnsw_view *hnsw;
    sq8_view *sq8;
    rabitq_view *rabitq;
    /* Text indexes (textindex.c), one per configured field, never NULL
     * when the collection has full-text fields: on the mapped extra, or on
     * text_heap[i] when rebuilt at open. */
    size_t n_text;              /* entries of text and text_heap (0: none) */
    text_segindex **text;
    void **text_heap;
    st_seg_dead *dead;          /* statistics of marked rows, built lazily */
    bool text_rebuilt;          /* some text index was rebuilt at open */
} st_seg;

/* A full-text field of the collection (st_options.text_fields, copied). */
typedef struct st_text_rt {
    char *name;
    text_analyzer *analyzer;
    char signature[96];         /* analyzer identity stored beside each blob */
} st_text_rt;

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
    st_options opts;            /* defaults filled in; text_fields cleared (see text) */
    size_t n_text;              /* full-text fields */
    st_text_rt *text;           /* n_text entries */
    pthread_rwlock_t text_mu;   /* see "Concurrency" */
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
    bool index_scheduled;           /* [W] an index job is queued or running */
    /* [W] The idle-merge timer thread runs (counted in jobs_pending, not
     * in st_wait_background); idle_merged: the merge for the current idle
     * period ran (cleared by the next flush). */
    bool idle_timer;
    bool idle_merged;
    _Atomic uint64_t last_write_ns; /* clock_mono_ns of the last write applied */
    _Atomic bool cancel;            /* st_close started: graph builds give up */
    uint32_t jobs_pending;          /* [W] background jobs not finished */
    bool closing;                   /* [W] st_close started: schedule nothing new */
    _Atomic bool read_only;         /* set once under write_mu, read anywhere */
    char read_only_reason[256];     /* [W] why (set with read_only) */
    /* [W] Retryable failures (flush.c, "Failures"): a flush or compaction
     * that failed for lack of space, or on a write that was not an fsync,
     * left nothing durable behind; the memtable stays and is retried. */
    uint32_t flush_failures;        /* consecutive failed flushes; 0: flushing works */
    bool flush_failure_space;       /* the last one lacked space (ENOSPC, EDQUOT) */
    uint64_t flush_retry_at_ns;     /* clock_mono_ns of the next attempt */
    uint64_t flush_failure_free;    /* free bytes of seg_dir just after it (space probe) */
    char flush_problem[544];        /* what failed, for writers refused and the report */
    uint32_t compaction_failures;   /* the same for background compactions */
    uint64_t compaction_retry_at_ns;
    char compaction_problem[544];
    bool retry_timer;               /* the retry timer thread runs (counted in jobs_pending) */
    pthread_cond_t retry_cv;        /* (CLOCK_MONOTONIC) wakes it: closing, flushing works */
    /* [W] The active memtable whose text indexes were measured last, and
     * its entry count then (ST_TEXT_BYTES_REMEASURE_ENTRIES). */
    const memtable *text_measured_mem;
    uint64_t text_measured_count;

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

/* Sets a live row's mark (I4: only from 0). Caller holds write_mu (and
 * text_mu for writing), or runs recovery. */
static inline void st_mark_row(st_seg *s, uint64_t row, uint64_t seqno) {
    atomic_store_explicit(&s->marks[row], seqno, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->dead_rows, 1, memory_order_relaxed);
}

void st_seg_ref(st_seg *s);
void st_seg_unref(st_seg *s); /* closes, and unlinks when obsolete (I7) */
/* Opens segments/<id>.seg with zeroed marks. */
int st_seg_open(st_collection *c, uint64_t id, st_seg **out, tdb_error *err);
int st_seg_path(const st_collection *c, uint64_t id, char **out);
static inline bool st_row_visible(const st_seg *s, uint64_t row, uint64_t snapshot) {
    uint64_t m = atomic_load_explicit(&s->marks[row], memory_order_relaxed);
    return m == ST_MARK_LIVE || m > snapshot;
}

/* A write made ready to apply: its memtable entries and the analyzed text
 * of their full-text fields. */
typedef struct st_prep {
    mt_entry **entries;         /* n; set to NULL once applied (owned by a memtable or freed) */
    size_t n;
    text_tokens *tokens;        /* n x n_text, or NULL (no text fields, tombstones) */
    size_t n_slots;             /* entries of tokens */
    uint8_t *present;           /* n x n_text: the entry holds the field */
} st_prep;

/* Builds one memtable entry per distinct id of docs (a later duplicate
 * wins) and analyzes its text, before any lock is taken, so applying
 * cannot fail (but for memory, see st_apply). Free with st_prep_free. */
int st_entries_prepare(st_collection *c, const batch_doc *docs, size_t n, bool tombstones,
                       st_prep *out, tdb_error *err);
void st_prep_free(st_prep *p); /* frees entries not applied, tokens, arrays */
/* Applies one write (I1..I5), taking the entries; returns how many ids
 * were live before (for deletes). With replay, does not wait for its turn:
 * recovery applies in WAL order on one thread. Returns true when the
 * active memtable crossed its limit and a flush should start. Running out
 * of memory while indexing text makes the collection read-only (the write
 * itself is durable and applied; reopening rebuilds everything). */
bool st_apply(st_collection *c, uint64_t seqno, st_prep *p, bool replay, size_t *was_live);
/* A new memtable with its text indexes attached (NULL: out of memory). */
memtable *st_memtable_new(st_collection *c);

/* Marks the collection read-only (first reason wins) and wakes writers. */
void st_set_read_only(st_collection *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool st_memtable_over_limit(const st_collection *c, const memtable *m);
/* The active memtable (or the marks since the last freeze) call for a
 * flush. Caller holds write_mu. */
bool st_flush_due_locked(const st_collection *c);

/* A live version wherever it lives: pointers into a memtable entry or a
 * segment mapping, valid while the view is held. */
typedef struct st_doc_ref {
    const char *id;
    uint32_t id_len;
    const float *vector;
    const char *attrs;
    uint32_t attrs_len;
} st_doc_ref;

st_doc_ref st_ref_from_entry(const mt_entry *e);
st_doc_ref st_ref_from_row(const st_seg *s, uint64_t row);
/* Copies a version out (storage.h: records are malloc'd copies). */
int st_record_fill(st_record *out, const st_doc_ref *d, uint32_t dimension, bool with_vector);
/* The filter on a version ("{}" for one without attributes). */
bool st_ref_passes(const st_doc_ref *d, st_filter_fn filter, void *ctx);

/* ---- flush.c -------------------------------------------------------- */

/* Freezes the active memtable (or takes the frozen one a failed flush left)
 * and writes it to a segment; the caller holds flush_mu. A failure either
 * makes the collection read-only (an fsync failed, or the outcome on disk
 * is unknown) or leaves flush_failures set and a retry on the way. */
int st_flush_locked(st_collection *c, tdb_error *err);
/* Queues a background flush (or runs it here without a pool). While
 * flushes fail, only once the retry is due (the retry timer queues it). */
void st_schedule_flush(st_collection *c);
/* Whether the next retry of a failed flush may run now: its backoff ran
 * out. Caller holds write_mu. (Always true when no flush failed.) */
bool st_flush_retry_due_locked(const st_collection *c);
/* Starts fn(arg) on a detached thread (the timers); 0 or pthread's error. */
int st_thread_start_detached(void *(*fn)(void *), void *arg);
/* Starts the retry timer when a retryable failure needs one (no-op
 * during recovery, while closing, or when it runs). */
void st_retry_timer_start(st_collection *c);
/* Tests only (0 otherwise): every retry backoff is this many ms, and free
 * space is not probed, so a test decides when a retry may run. */
extern uint64_t st_test_flush_retry_ms;

/* How a failed flush or compaction step leaves things. */
typedef enum st_failure {
    ST_FAILURE_RETRY,       /* nothing durable changed: retry later */
    ST_FAILURE_RETRY_SPACE, /* the same, for lack of space (ENOSPC, EDQUOT) */
    ST_FAILURE_FATAL        /* an fsync failed, or the state on disk is unknown: read-only */
} st_failure;
/* Classifies a failure of st_extras_build, seg_write or st_seg_open (the
 * steps before a MANIFEST commit, whose files are removed on failure). */
st_failure st_failure_of(int rc, const tdb_error *e);
/* Classifies a failed manifest_store of a MANIFEST of this generation
 * (reads the MANIFEST back to see which one is in place). */
st_failure st_manifest_failure(st_collection *c, uint64_t generation, int rc, const tdb_error *e);
/* Records how a flush (or a compaction) ended: rc 0 clears the failure
 * state; a fatal failure makes the collection read-only; a retryable one
 * is logged, counted, given its backoff and (flushes) the retry timer.
 * Called without locks but flush_mu / compact_mu. */
void st_flush_outcome(st_collection *c, int rc, st_failure how, const tdb_error *e);
/* What st_flush returns for a failed flush: a lack of space that will be
 * retried becomes TDB_EBUSY "disk_full" (the caller may try again later);
 * anything else is left as it is. */
int st_flush_error(st_collection *c, int rc, tdb_error *err);
void st_compaction_outcome(st_collection *c, int rc, st_failure how, const tdb_error *e);

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
 * manifest_mu and installs the matching view before releasing it. On
 * failure *how (NULL allowed) tells whether the old MANIFEST is known to
 * be the one on disk and nothing was fsynced in vain (a retry is safe). */
int st_manifest_commit(st_collection *c, const st_commit *cm, st_failure *how, tdb_error *err);

/* ---- compaction.c --------------------------------------------------- */

/* Merges segments (all of them, or the ones the size policy picks) into
 * one, dropping deleted rows; the caller holds compact_mu. *merged tells
 * whether there was anything to do. */
typedef enum st_compact_pick {
    ST_PICK_POLICY, /* the size-tiered rule (background) */
    ST_PICK_ALL,    /* every segment (st_compact, idle merge) */
    ST_PICK_INDEX   /* the oldest segment needing its graph (index job) */
} st_compact_pick;
int st_compact_locked(st_collection *c, st_compact_pick pick, bool *merged, tdb_error *err);
/* Queues a background compaction when the segment count calls for one,
 * the index job when a segment lacks its graph, and arms the idle merge. */
void st_schedule_compaction(st_collection *c);
/* The segment is larger than ST_INDEX_INLINE_MAX_ROWS and lacks its graph
 * (the index job gives it one). */
bool st_seg_needs_graph(const st_collection *c, const st_seg *s);
/* ST_INDEX_INLINE_MAX_ROWS, or st_test_index_inline_rows when set (tests
 * only: small collections exercise the index job). */
extern uint32_t st_test_index_inline_rows;
uint32_t st_index_inline_rows(void);
/* Queues the index job when a segment needs its graph. */
void st_schedule_index(st_collection *c);
/* Tests only (NULL otherwise): called by a compaction after its output is
 * written and before it commits, so a test can write in that window. */
extern void (*st_test_compaction_hook)(st_collection *c);

/* ---- textindex.c: full-text fields ---------------------------------- */

/* Copies opts->text_fields into c->text and builds the analyzers. */
int st_text_setup(st_collection *c, const st_options *opts, tdb_error *err);
void st_text_teardown(st_collection *c);
/* Write lock of text_mu around an apply or an install (no-op without
 * full-text fields). */
void st_text_write_lock(st_collection *c);
void st_text_write_unlock(st_collection *c);
/* Analyzes the full-text fields of one document's attribute JSON into
 * tokens[0..n_text) (cleared first) and present[0..n_text); scratch holds
 * the stemmers (one per thread). Values that are not strings (or arrays
 * holding strings) leave a field absent; so does text the analyzer
 * refuses (logged). The same function decides for memtables, flushes,
 * compactions and deleted rows, so they always agree. */
int st_text_analyze_doc(const st_collection *c, const char *attrs, uint32_t attrs_len,
                        text_tokens *tokens, uint8_t *present, text_tokens *scratch);
/* The memtable side index (attached with mt_set_aux). */
void *st_memtext_new(const st_collection *c);
void st_memtext_free(void *mt);
/* Indexes entry e (just inserted into m) from its prepared tokens.
 * Caller holds text_mu for writing. TDB_ENOMEM leaves e unindexed. */
int st_memtext_add(const st_collection *c, memtable *m, const mt_entry *e,
                   const text_tokens *tokens, const uint8_t *present);
/* Drops a superseded or deleted version from m's text indexes. */
void st_memtext_remove(const st_collection *c, memtable *m, const mt_entry *e);
/* Heap held by m's text indexes (takes text_mu for reading). */
size_t st_memtext_memory_bytes(st_collection *c, const memtable *m);
/* Extras of a new segment: the text directory and one blob per field,
 * analyzed from the rows' attributes. */
typedef struct st_extras {
    seg_extra *list;
    size_t n;
    void **owned;               /* blobs to free */
    size_t n_owned;
} st_extras;
int st_text_build_extras(const st_collection *c, const seg_row *rows, size_t n, st_extras *ex,
                         tdb_error *err);
void st_extras_free(st_extras *ex);
/* Opens (or rebuilds) the text indexes of s; frees them. */
int st_text_seg_open(const st_collection *c, st_seg *s, tdb_error *err);
void st_text_seg_close(st_seg *s);

/* ---- vecindex.c: the vector index ----------------------------------- */

/* Adds the HNSW graph (and codes, per the configuration) of rows to ex. */
int st_vec_build_extras(const st_collection *c, const seg_row *rows, size_t n, bool cancellable,
                        st_extras *ex, tdb_error *err);
/* Opens the views on s's extras (none: s->hnsw stays NULL); closes them. */
int st_vec_seg_open(const st_collection *c, st_seg *s, tdb_error *err);
void st_vec_seg_close(st_seg *s);
/* Every index the configuration asks for is built for s. */
bool st_seg_fully_indexed(const st_collection *c, const st_seg *s);
/* All extras of a new segment (text, then vectors unless !with_vec). A
 * graph build gives up (TDB_ESHUTDOWN) once c->cancel is set when
 * cancellable. */
int st_extras_build(const st_collection *c, const seg_row *rows, size_t n, bool with_vec,
                    bool cancellable, st_extras *ex, tdb_error *err);

/* ---- recovery.c ----------------------------------------------------- */

/* Loads the MANIFEST, opens its segments, removes unlisted files, replays
 * the WAL and opens it for appending. c has its paths and options set. */
int st_recover(st_collection *c, tdb_error *err);

/* Checks I5 and the view's shape; only while no write or job runs
 * (tests). */
bool st_check(st_collection *c);

#endif
