/*
 * storage.h: the storage engine of one collection, as the db layer sees it:
 * durable upsert/delete (WAL + memtable), background flush to immutable
 * segment files, compaction, recovery, point reads, ordered scans and
 * exact vector search over everything live.
 * Layer: storage. Called by db/. Uses util/ and vec/. Never calls db/.
 *
 * Directory of one collection (docs/formats.md):
 *   DIR/wal/<seqno>.wal   write-ahead log files (wal.h)
 *   DIR/segments/<id>.seg immutable segment files (segment.h)
 *   DIR/MANIFEST          live segments, delete lists, checkpoint (manifest.h)
 *
 * Semantics:
 *   - Every write gets a sequence number; the newest version of an id wins.
 *   - st_upsert/st_delete of one call are one WAL record: all or nothing.
 *   - Writes become visible to readers in seqno order, and only after they
 *     are durable per the fsync policy; a reader sees a prefix of the log.
 *   - Readers never wait for flush or compaction; segments are immutable
 *     and reference-counted, so a file replaced by compaction is unlinked
 *     when its last reader lets go.
 *   - After an fsync failure the collection is read-only (TDB_EREADONLY on
 *     every write, reported by st_stats_get) until it is reopened.
 *
 * Threading: every function is thread-safe on one st_collection.
 * Ownership: records and hits returned are malloc'd copies the caller
 * frees with st_records_free / st_hits_free; inputs are copied.
 */
#ifndef TDB_STORAGE_STORAGE_H
#define TDB_STORAGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"
#include "util/pool.h"

/* Limits from API.md. */
#define ST_MAX_ID_BYTES 512
#define ST_MAX_DIMENSION 4096

typedef struct st_options {
    tdb_fsync_policy fsync;
    uint32_t fsync_interval_ms;
    uint64_t wal_file_max_bytes;
    uint64_t memtable_max_bytes;    /* freeze + background flush above this */
    uint32_t memtable_max_docs;     /* ... or above this many entries */
    uint32_t compaction_min_segments; /* background merge when this many segments */
    pool *background;               /* shared workers for flush/compaction (not owned) */
} st_options;

typedef struct st_collection st_collection;

/* A document as given to st_upsert (nothing is owned; all is copied). */
typedef struct st_doc {
    const char *id;
    uint32_t id_len;
    const float *vector;     /* dimension floats; NULL when dimension is 0 */
    const char *attrs;       /* canonical JSON object text, or NULL/0 for none */
    uint32_t attrs_len;
} st_doc;

typedef struct st_key {
    const char *id;
    uint32_t id_len;
} st_key;

/* A document as returned (malloc'd copies). */
typedef struct st_record {
    char *id;                /* NUL-terminated, id_len bytes */
    uint32_t id_len;
    float *vector;           /* NULL unless asked for (or dimension 0) */
    char *attrs;             /* NUL-terminated JSON object text ("{}" if none) */
    uint32_t attrs_len;
} st_record;

typedef struct st_hit {
    st_record rec;
    float distance;          /* API.md: cosine 1-cos, l2 Euclidean, dot -<q,v> */
} st_hit;

/* Predicate over a live document for filtered scans and searches. Must be
 * thread-safe and must not call back into the collection. */
typedef bool (*st_filter_fn)(void *ctx, const char *id, uint32_t id_len, const char *attrs,
                             uint32_t attrs_len);

/* What recovery found when the collection was opened. */
typedef struct st_recovery {
    uint64_t records_replayed;
    uint64_t torn_bytes;       /* incomplete tail dropped (normal after a kill) */
    bool corrupt;              /* a bad record mid-log: replay stopped there */
    uint64_t bytes_lost;
    char message[320];         /* human-readable, for the log and /health */
} st_recovery;

typedef struct st_stats {
    uint64_t documents;          /* live documents */
    uint64_t indexed_documents;  /* live documents in segments */
    uint32_t segments;
    uint64_t disk_bytes;         /* segments + WAL + MANIFEST */
    uint64_t memory_bytes;       /* memtables and other heap held */
    uint64_t wal_bytes_written;
    uint64_t wal_fsyncs;
    uint64_t flushes;
    uint64_t compactions;
    bool read_only;              /* after an fsync failure */
} st_stats;

/* Opens DIR (creating it when absent), loads the manifest, opens the
 * segments (mmap, no index rebuild) and replays the WAL. dimension and
 * metric come from the catalog and are fixed for the collection's life. */
int st_open(const char *dir, uint32_t dimension, tdb_metric metric, const st_options *opts,
            st_collection **out, tdb_error *err);
/* Waits for this collection's background jobs, closes files, frees c.
 * Unflushed data stays in the WAL. NULL is a no-op. */
void st_close(st_collection *c);

/* Upserts n documents as one atomic, durable batch. Inputs must already be
 * validated (ids 1..512 bytes, vectors finite and of the dimension). Within
 * one batch a later duplicate id wins. */
int st_upsert(st_collection *c, const st_doc *docs, size_t n, tdb_error *err);
/* Deletes ids as one atomic batch; *deleted counts those that were live. */
int st_delete(st_collection *c, const st_key *ids, size_t n, size_t *deleted, tdb_error *err);

/* Newest live version of id: 0 and *out filled, or TDB_ENOTFOUND. */
int st_get(st_collection *c, const char *id, uint32_t id_len, bool with_vector, st_record *out,
           tdb_error *err);

/* Up to limit live documents with id > after (byte order; after NULL = from
 * the start) that pass filter (NULL = all), in id order. *out is NULL when
 * *n is 0. */
int st_scan(st_collection *c, const char *after, uint32_t after_len, size_t limit,
            bool with_vectors, st_filter_fn filter, void *filter_ctx, st_record **out, size_t *n,
            tdb_error *err);

/* Exact top-k over every live document passing filter, best first (ties
 * broken by id). */
int st_search(st_collection *c, const float *query, size_t k, st_filter_fn filter,
              void *filter_ctx, bool with_vectors, st_hit **out, size_t *n, tdb_error *err);

/* Freezes the memtable and writes it to a segment; returns when done. */
int st_flush(st_collection *c, tdb_error *err);
/* Merges every segment into one, dropping deleted rows; returns when done. */
int st_compact(st_collection *c, tdb_error *err);

void st_stats_get(st_collection *c, st_stats *out);
const st_recovery *st_recovery_get(st_collection *c);

void st_record_free(st_record *r);          /* frees the fields, not r */
void st_records_free(st_record *r, size_t n);
void st_hits_free(st_hit *h, size_t n);

#endif
