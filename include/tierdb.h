/*
 * tierdb.h: the public C API of libtierdb, a tiered vector and full-text
 * search database.
 *
 * A database is one data directory (tdb_db, opened by tdb_open) holding
 * named collections of documents. A document is an id (1..512 bytes of
 * UTF-8), a float32 vector of the collection's dimension, and a JSON
 * object of attributes kept verbatim.
 *
 * The API has two faces:
 *   - JSON in, JSON out (tdb_*_json): the exact request and response bodies
 *     of the HTTP API (docs/api.md). The HTTP server is a thin layer over
 *     these, and embedders get the same validation and the same answers.
 *   - Typed calls (tdb_upsert, tdb_get) for embedders that hold documents
 *     in C structures.
 *
 * Durability: a write is durable when its call returns 0, as the configured
 * fsync policy promises (TDB_FSYNC_ALWAYS, the default, survives a process
 * kill and a power loss; INTERVAL loses at most the last interval on a
 * power loss; NONE leaves it to the OS).
 *
 * Errors: every call that can fail returns 0 or a negative TDB_E* code and,
 * when given a tdb_error, fills it with a snake_case code name and a message
 * a user can act on. A call that fails changed nothing.
 *
 * Ownership: every char * returned through an out-parameter is allocated by
 * the library, NUL-terminated, and freed by the caller with tdb_free().
 * Input buffers are only read during the call and may be freed after it.
 *
 * Caveats:
 *   - One process per data directory (tdb_open takes an exclusive lock).
 *   - A long query pins the segments it reads; files replaced by compaction
 *     are deleted only when the last reader lets go.
 *   - All functions are thread-safe on one tdb_db.
 */
#ifndef TIERDB_H
#define TIERDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TDB_VERSION_MAJOR 0
#define TDB_VERSION_MINOR 1
#define TDB_VERSION_PATCH 0
#define TDB_VERSION_STRING "0.1.0"

/* Error codes: one block, one line each (tdb_strerror gives the text). */
#define TDB_OK 0
#define TDB_EINVAL (-1)       /* invalid input: malformed or out of range (HTTP 400) */
#define TDB_ENOTFOUND (-2)    /* unknown collection, document or snapshot (404) */
#define TDB_EEXIST (-3)       /* the name already exists (409) */
#define TDB_ECONFLICT (-4)    /* conflicting state, e.g. demoting a pinned collection (409) */
#define TDB_ETOOBIG (-5)      /* input larger than a configured limit (413) */
#define TDB_EIO (-6)          /* an I/O call failed (500) */
#define TDB_ECORRUPT (-7)     /* a file failed its checksum or format checks (500) */
#define TDB_ENOMEM (-8)       /* out of memory (503) */
#define TDB_EREADONLY (-9)    /* writes refused after an fsync failure (503) */
#define TDB_EBUSY (-10)       /* overloaded, try again later (503) */
#define TDB_ESHUTDOWN (-11)   /* the database is closing (503) */
#define TDB_EINTERNAL (-12)   /* a bug: an invariant of our own failed (500) */
#define TDB_EUNSUPPORTED (-13) /* valid but not implemented in this build (400) */

/* Filled by failing calls. `code` is one of TDB_E*; `name` a snake_case
 * code for the API ("dimension_mismatch"); `message` says what was wrong
 * and how to fix it. */
typedef struct tdb_error {
    int code;
    char name[48];
    char message[512];
} tdb_error;

const char *tdb_strerror(int code);
/* Frees memory returned by the library; NULL is a no-op. */
void tdb_free(void *ptr);

typedef enum tdb_fsync_policy {
    TDB_FSYNC_ALWAYS = 0, /* fsync before each write is acknowledged (group commit) */
    TDB_FSYNC_INTERVAL,   /* fsync every fsync_interval_ms in the background */
    TDB_FSYNC_NONE        /* never fsync the WAL; the OS writes it back */
} tdb_fsync_policy;

typedef enum tdb_metric {
    TDB_METRIC_COSINE = 0, /* distance 1 - cos(q, v) */
    TDB_METRIC_L2,         /* distance |q - v| (Euclidean) */
    TDB_METRIC_DOT         /* distance -<q, v> */
} tdb_metric;

typedef enum tdb_tier { TDB_TIER_HOT = 0, TDB_TIER_WARM, TDB_TIER_COLD } tdb_tier;

/* Options for tdb_open. Fill with tdb_options_default, then change fields.
 * Strings are copied by tdb_open. */
typedef struct tdb_options {
    const char *data_dir;          /* default "./data" */
    const char *object_store;      /* "file:///path" or "s3://bucket/prefix"; NULL: file://DATA/objects */
    const char *s3_endpoint;       /* e.g. "http://127.0.0.1:9000"; NULL: AWS */
    bool s3_path_style;            /* path-style addressing (MinIO, s3rver) */
    tdb_fsync_policy fsync;        /* default TDB_FSYNC_ALWAYS */
    uint32_t fsync_interval_ms;    /* for TDB_FSYNC_INTERVAL; default 100 */
    uint64_t memtable_max_bytes;   /* freeze and flush above this; default 64 MiB */
    uint32_t memtable_max_docs;    /* ... or above this many entries; default 100000 */
    uint32_t compaction_min_segments; /* merge when a collection has this many small segments; default 4 */
    int64_t compaction_idle_merge_ms; /* merge all segments of a collection idle this long; default 60 s; 0: off */
    uint64_t query_memory_budget;  /* bytes all running queries may hold; 0: a quarter of RAM, at most 1 GiB */
    uint32_t background_threads;   /* flush/compaction workers; default 2 */
    uint64_t wal_file_max_bytes;   /* rotate WAL files above this; default 64 MiB */
    bool test_clock;               /* time only moves by tdb_clock_advance */
    /* Tiering policy (API.md "Tiering"; docs/tiering.md). */
    int64_t hot_ttl_ms;            /* idle hot -> warm after this; default 6h */
    int64_t warm_ttl_ms;           /* idle warm -> cold after this; default 7d */
    uint32_t promotion_threshold;  /* accesses within access_window_ms: warm -> hot; default 10 */
    int64_t access_window_ms;      /* default 1h */
    int64_t worker_interval_ms;    /* policy cycle period; default 5m; 0: no background cycles */
    uint64_t hot_memory_budget;    /* bytes; over it, LRU hot collections are demoted; 0: 50% of RAM */
    uint32_t max_migrations_per_cycle; /* default 16 */
} tdb_options;

void tdb_options_default(tdb_options *opts);

typedef struct tdb_db tdb_db;

/* Opens (creating when absent) the data directory. Collections are opened
 * lazily on first use. On failure *out is NULL. Close with tdb_close. */
int tdb_open(const tdb_options *opts, tdb_db **out, tdb_error *err);
/* Stops background work, flushes nothing it need not (the WAL protects
 * unflushed data), closes every file and frees db. NULL is a no-op. */
void tdb_close(tdb_db *db);

/* ---- Collections (bodies as in docs/api.md) ------------------------- */

/* Creates a collection from a JSON config
 * {"name", "dimension", "metric", "attributes", "index"}. *out_json: the
 * collection object. */
int tdb_collection_create_json(tdb_db *db, const char *body, size_t body_len,
                               char **out_json, tdb_error *err);
/* The collection object of `name`. */
int tdb_collection_get_json(tdb_db *db, const char *name, char **out_json, tdb_error *err);
/* {"collections": [...]}, every collection or (tier >= 0) those in one tier. */
int tdb_collection_list_json(tdb_db *db, int tier, char **out_json, tdb_error *err);
/* Deletes the collection, its files and (unless keep_snapshots) its
 * snapshots. */
int tdb_collection_drop(tdb_db *db, const char *name, bool keep_snapshots, tdb_error *err);

/* ---- Documents ------------------------------------------------------ */

/* Upserts {"documents": [...]} atomically; *upserted is the count. */
int tdb_upsert_json(tdb_db *db, const char *name, const char *body, size_t body_len,
                    size_t *upserted, tdb_error *err);
/* {"id", "vector", "attributes"} of one document; TDB_ENOTFOUND if absent. */
int tdb_get_json(tdb_db *db, const char *name, const char *id, size_t id_len,
                 char **out_json, tdb_error *err);
/* Deletes one id; *deleted is 1 or 0. */
int tdb_delete(tdb_db *db, const char *name, const char *id, size_t id_len, size_t *deleted,
               tdb_error *err);
/* Deletes by {"ids": [...]} or {"filter": {...}}; *deleted is the count. */
int tdb_delete_json(tdb_db *db, const char *name, const char *body, size_t body_len,
                    size_t *deleted, tdb_error *err);
/* One page of every live document in id order: {"documents": [...],
 * "next_cursor": "..."|null}. cursor is NULL or a value returned before. */
int tdb_list_json(tdb_db *db, const char *name, size_t limit, const char *cursor,
                  bool include_vectors, char **out_json, tdb_error *err);

/* Typed upsert for embedders: attributes_json is a JSON object or NULL. */
typedef struct tdb_doc {
    const char *id;
    size_t id_len;
    const float *vector;          /* dimension floats (NULL for dimension 0) */
    const char *attributes_json;
    size_t attributes_len;
} tdb_doc;
int tdb_upsert(tdb_db *db, const char *name, const tdb_doc *docs, size_t count, tdb_error *err);

/* ---- Query ---------------------------------------------------------- */

/* Runs a query body (docs/api.md "Query"); *out_json is the response
 * {"results": [...], "took_ms": .., "tier": ..}. */
int tdb_query_json(tdb_db *db, const char *name, const char *body, size_t body_len,
                   char **out_json, tdb_error *err);

/* ---- Tiering (API.md "Tiering") ------------------------------------ */

/* The tier object {"tier", "pinned", "last_accessed_at", ...}. Reading it
 * is not an access. */
int tdb_tier_get_json(tdb_db *db, const char *name, char **out_json, tdb_error *err);
/* Pins or unpins; *out_json is the tier object. */
int tdb_tier_pin(tdb_db *db, const char *name, bool pinned, char **out_json, tdb_error *err);
/* Moves a collection now and returns the tier object once the move has
 * finished. promote: to is TDB_TIER_* above the current tier (or -1 for
 * hot); demote: below it (or -1 for one step down). A move in the wrong
 * direction, or a demotion of a pinned collection, is TDB_ECONFLICT. */
int tdb_tier_move(tdb_db *db, const char *name, bool promote, int to, char **out_json,
                  tdb_error *err);
/* {"policy", "distribution", "memory_budget_bytes", "hot_memory_bytes",
 * "last_cycle"}. */
int tdb_tiering_json(tdb_db *db, char **out_json, tdb_error *err);
/* Runs one policy cycle now; *out_json is its report. */
int tdb_tiering_cycle_json(tdb_db *db, char **out_json, tdb_error *err);

/* ---- Snapshots (API.md "Snapshots") ---------------------------------- */

/* Writes a Parquet snapshot of the collection to the object store without
 * blocking writes; *out_json: {"snapshot_id", "created_at", "documents",
 * "size_bytes", "format", "location"}. */
int tdb_snapshot_create_json(tdb_db *db, const char *name, char **out_json, tdb_error *err);
/* {"snapshots": [...]}, oldest first. */
int tdb_snapshot_list_json(tdb_db *db, const char *name, char **out_json, tdb_error *err);
/* Restores snapshot_id into the collection (body NULL or {}: replaces its
 * contents) or into a new collection ({"into": "other"}; TDB_EEXIST if it
 * exists). *out_json: the restored collection object. */
int tdb_snapshot_restore_json(tdb_db *db, const char *name, const char *snapshot_id,
                              const char *body, size_t body_len, char **out_json, tdb_error *err);
int tdb_snapshot_delete(tdb_db *db, const char *name, const char *snapshot_id, tdb_error *err);

/* ---- Bulk import and metrics ------------------------------------------ */

/* Streaming NDJSON import (API.md "Documents", import). Each line is one
 * document {"id", "vector", "attributes"}, validated exactly as an upsert
 * validates it. The input is fed in pieces of any size as it arrives
 * (tdb_import_feed splits lines; a piece may end mid-line), so nothing
 * holds the whole input: memory stays flat at one batch plus the longest
 * line. Good lines are grouped into batches of batch_docs documents and
 * each batch is one atomic, durable write (one WAL record), committed as
 * soon as it is full; a reader sees a prefix of the file, batch by batch.
 *
 * A bad line (malformed JSON, wrong dimension, a declared-type mismatch,
 * a line longer than max_line_bytes) is not a failed call: it goes into
 * the report. With skip_errors it is skipped and the import goes on;
 * without, the lines before it are committed, nothing after it is read
 * (tdb_import_stopped becomes true; later input is ignored), and the
 * report names it. Lines count from 1, blank lines included (and
 * ignored). Calls fail (negative TDB_E*) only when the import cannot go
 * on at all: the write failed (I/O, read-only after an fsync error), the
 * collection was dropped meanwhile, the database is closing, no memory.
 * After such a failure every call returns the same error; the batches
 * committed before it stay.
 *
 * One tdb_import is used by one thread at a time. */

#define TDB_IMPORT_DEFAULT_BATCH_DOCS 1000  /* per WAL record: amortizes the fsync, bounds memory */
#define TDB_IMPORT_MAX_BATCH_DOCS 100000    /* a batch is held in memory until committed */
#define TDB_IMPORT_MAX_ERRORS 100           /* errors listed in a report; all are counted */

typedef struct tdb_import_options {
    bool skip_errors;        /* true: skip bad lines (on_error=skip); false: stop at the first (abort) */
    size_t batch_docs;       /* documents per atomic write, 1..TDB_IMPORT_MAX_BATCH_DOCS; 0: default */
    size_t max_line_bytes;   /* a longer line is an error for that line; 0: 64 MiB */
} tdb_import_options;

typedef struct tdb_import tdb_import;

/* Counts so far (for progress reports). */
typedef struct tdb_import_stats {
    uint64_t lines;          /* complete lines seen, blank ones included */
    uint64_t imported;       /* documents committed */
    uint64_t pending;        /* valid documents waiting for their batch to fill */
    uint64_t skipped;        /* bad lines skipped (skip_errors) */
    uint64_t errors;         /* bad lines, skipped or the one that stopped the import */
    bool stopped;            /* a bad line stopped the import (abort) */
} tdb_import_stats;

/* Starts an import into collection `name` (TDB_ENOTFOUND when absent;
 * TDB_EINVAL for bad options). opts NULL: the defaults (abort on the first
 * bad line). The import holds no lock between calls: the collection can
 * be read, written and moved between tiers meanwhile. Finish with
 * tdb_import_end, or give up with tdb_import_free. */
int tdb_import_begin(tdb_db *db, const char *name, const tdb_import_options *opts,
                     tdb_import **out, tdb_error *err);
/* Feeds the next len bytes of NDJSON (any split: lines may span calls).
 * Complete lines are validated at once; full batches are committed before
 * it returns. */
int tdb_import_feed(tdb_import *imp, const char *data, size_t len, tdb_error *err);
/* Feeds one whole line (without its '\n'), for callers that split lines
 * themselves. Do not mix with a partial line left by tdb_import_feed. */
int tdb_import_line(tdb_import *imp, const char *line, size_t len, tdb_error *err);
/* True once a bad line stopped the import (abort) or a call failed: later
 * input is ignored, so a caller may stop reading it. */
bool tdb_import_stopped(const tdb_import *imp);
void tdb_import_stats_get(const tdb_import *imp, tdb_import_stats *out);
/* Treats what is left of a partial line as the last line, commits the
 * pending batch and writes the report {"imported", "skipped", "errors":
 * [{"line", "message"}]} (at most TDB_IMPORT_MAX_ERRORS errors) to
 * *out_json; final (optional) gets the final counts. Frees imp whatever
 * happens. Fails as the calls above fail; the message then says how many
 * documents were committed before. */
int tdb_import_end(tdb_import *imp, tdb_import_stats *final, char **out_json, tdb_error *err);
/* Frees an import without committing its pending batch (the client went
 * away); batches committed before stay. NULL is a no-op. */
void tdb_import_free(tdb_import *imp);

/* The database's series in the Prometheus text format 0.0.4 (docs/
 * operations.md lists them): collections, documents, bytes and segments
 * per tier, tier moves by kind, WAL bytes and fsyncs, flushes and
 * compactions, problems. Every family has HELP and TYPE lines and the
 * prefix "tierdb_"; a caller appending its own families must use other
 * names. Reading it is no access to any collection and opens nothing.
 * *out is freed with tdb_free. */
int tdb_metrics_text(tdb_db *db, char **out, tdb_error *err);

/* ---- Operations ----------------------------------------------------- */

/* Number of collections in the catalog. */
size_t tdb_collection_count(tdb_db *db);
/* A JSON array of problems found (e.g. a corrupt WAL record skipped at
 * recovery), each {"collection", "kind", "message"}; "[]" when none. */
int tdb_problems_json(tdb_db *db, char **out_json, tdb_error *err);
/* Flushes every open collection's memtable to segments and waits. */
int tdb_flush_all(tdb_db *db, tdb_error *err);
/* Test clock: advances the database clock (only with opts.test_clock);
 * *now_ms is the new time in ms since the epoch. */
int tdb_clock_advance(tdb_db *db, int64_t delta_ms, int64_t *now_ms, tdb_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TIERDB_H */
