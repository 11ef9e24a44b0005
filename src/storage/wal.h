/*
 * wal.h: per-collection write-ahead log: numbered files of framed records
 * with CRC32C, group commit, rotation and truncation before a checkpoint.
 * Layer: storage. Used by storage/collection.c. Format: wal.c and
 * docs/formats/wal.md.
 *
 * Files: DIR/<first-seqno, 20 digits>.wal. Records carry strictly rising
 * sequence numbers across files. A record is an opaque payload with a
 * one-byte type chosen by the caller (the engine's batch encoding).
 *
 * Threading: wal_append may be called from many threads at once; writers
 * that arrive while an fsync runs share the next one (group commit).
 * Once an fsync fails the WAL is failed for good: every later append
 * returns TDB_EREADONLY (a failed fsync may have dropped dirty pages; we
 * never retry and pretend, as PostgreSQL learned in 2018).
 */
#ifndef TDB_STORAGE_WAL_H
#define TDB_STORAGE_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"

/* Largest payload of one record: one request's batch must fit (the HTTP
 * body limit is 64 MiB by default; binary batches are smaller than JSON). */
#define WAL_MAX_RECORD_BYTES (256u << 20)

typedef struct wal wal;

typedef struct wal_options {
    tdb_fsync_policy fsync;
    uint32_t fsync_interval_ms;  /* TDB_FSYNC_INTERVAL: background fsync period */
    uint64_t file_max_bytes;     /* rotate after a file grows past this */
} wal_options;

/* What replay found. */
typedef struct wal_replay_report {
    uint64_t records;          /* records delivered to the callback */
    uint64_t last_seqno;       /* last seqno delivered (or after_seqno if none) */
    uint64_t torn_bytes;       /* bytes of an incomplete tail record dropped */
    bool corrupt;              /* a bad record before the end of the log */
    char corrupt_file[256];    /* where it was */
    uint64_t corrupt_offset;
    uint64_t bytes_lost;       /* bytes from the bad record to the end of the log */
} wal_replay_report;

/* Called once per valid record with seqno > after_seqno, in order. payload
 * lives only during the call. Returning non-zero stops replay with that
 * code. */
typedef int (*wal_replay_fn)(void *ctx, uint64_t seqno, uint8_t type, const uint8_t *payload,
                             size_t len);

/* Replays DIR (which may be absent or empty). A torn tail (a record cut off
 * at the end of the last file) is dropped and counted. A bad record
 * anywhere else is reported in rep (file, offset, bytes lost) and replay
 * stops there, delivering everything before it; that is not an error
 * return. Returns 0, a callback's code, or TDB_EIO. */
int wal_replay(const char *dir, uint64_t after_seqno, wal_replay_fn fn, void *ctx,
               wal_replay_report *rep, tdb_error *err);

/* Opens DIR for appending after replay: truncates a torn tail, moves files
 * at and after a corrupt record aside (renamed *.corrupt, never deleted),
 * and starts a new file whose first record will have seqno next_seqno.
 * Call wal_replay first; pass the report it filled (or NULL if DIR is new).
 * The caller must make the replayed prefix durable elsewhere (a flush)
 * before calling this when rep->corrupt is set, since the bad files stop
 * being replayed. */
int wal_open(const char *dir, const wal_options *opts, uint64_t next_seqno,
             const wal_replay_report *rep, wal **out, tdb_error *err);

/* Appends one record; assigns its seqno (*seqno_out) and returns once it is
 * durable per the fsync policy. Thread-safe. */
int wal_append(wal *w, uint8_t type, const void *payload, size_t len, uint64_t *seqno_out,
               tdb_error *err);

/* fsyncs everything appended so far (any policy). */
int wal_sync(wal *w, tdb_error *err);

/* Closes the current file and starts a new one, so every record appended
 * so far lies in files before the new one. Returns the seqno the new file
 * starts at (the next seqno to be assigned). */
int wal_rotate(wal *w, uint64_t *next_seqno, tdb_error *err);

/* Deletes every file all of whose records have seqno <= checkpoint (never
 * the file being appended to). */
int wal_delete_through(wal *w, uint64_t checkpoint, tdb_error *err);

/* The seqno the next append will get. */
uint64_t wal_next_seqno(wal *w);
bool wal_failed(wal *w);

typedef struct wal_stats {
    uint64_t bytes_written;
    uint64_t records;
    uint64_t fsyncs;
    uint64_t files;        /* live files */
    uint64_t disk_bytes;   /* their total size */
} wal_stats;
void wal_stats_get(wal *w, wal_stats *out);

/* Closes files, stops the interval syncer (after one last fsync unless the
 * WAL failed), frees w. NULL is a no-op. */
void wal_close(wal *w);

#endif
