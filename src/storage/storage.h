/*
 * storage.h: the storage engine of one collection, as the db layer sees it:
 * durable upsert/delete (WAL + memtable), background flush to immutable
 * segment files with their indexes built, compaction, recovery, point
 * reads, ordered scans, vector search (exact, or HNSW per segment) and
 * BM25 full-text search over everything live.
 * Layer: storage. Called by db/. Uses util/, vec/, text/. Never calls db/.
 *
 * Directory of one collection (docs/formats.md):
 *   DIR/wal/<seqno>.wal   write-ahead log files (wal.h)
 *   DIR/segments/<id>.seg immutable segment files (segment.h), with index
 *                         extras: HNSW graph, SQ8/RaBitQ codes, one text
 *                         index per full-text field (docs/storage.md)
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
 *   - Index configuration (st_options.text_fields, .vector_index) is fixed
 *     for the collection's life; the caller passes the same at every open.
 *     A segment written without an index (older files, or an index this
 *     build cannot read) stays readable: its text index is rebuilt in
 *     memory at open, its vectors are searched exactly.
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

#include "text/analyzer.h"
#include "tierdb.h"
#include "util/pool.h"

/* Limits from API.md. */
#define ST_MAX_ID_BYTES 512
#define ST_MAX_DIMENSION 4096

/* Full-text fields: at most this many per collection (each costs an index
 * per memtable and segment, and a section per segment file). */
#define ST_MAX_TEXT_FIELDS 64
/* Graph build threads when st_vector_index.build_threads is 0 (a flush
 * shares the machine with queries and other collections' work). */
#define ST_DEFAULT_BUILD_THREADS 2u
/* Search breadth when the query gives none: max(k, this). */
#define ST_DEFAULT_EF 64u

/* A full-text field: a top-level attribute whose string (or array of
 * strings) values are analyzed and indexed for BM25. */
typedef struct st_text_field {
    const char *name;               /* attribute name (copied by st_open) */
    text_analyzer_config analyzer;  /* language copied by st_open */
} st_text_field;

typedef enum st_quantization {
    ST_QUANT_NONE = 0,
    ST_QUANT_SQ8 = 1,
    ST_QUANT_RABITQ = 2
} st_quantization;

/* The per-segment vector index built at flush and compaction. */
typedef struct st_vector_index {
    uint32_t m;                 /* HNSW links per node; 0 = no graph (exact search only) */
    uint32_t ef_construction;   /* 0 = the HNSW default */
    st_quantization quantization;
    uint32_t build_threads;     /* 0 = ST_DEFAULT_BUILD_THREADS */
} st_vector_index;

typedef struct st_options {
    tdb_fsync_policy fsync;
    uint32_t fsync_interval_ms;
    uint64_t wal_file_max_bytes;
    uint64_t memtable_max_bytes;    /* freeze + background flush above this */
    uint32_t memtable_max_docs;     /* ... or above this many entries */
    uint32_t compaction_min_segments; /* background merge when this many segments */
    /* After a flush, once no write came for this long, merge every
     * segment into one (once per idle period); 0: never. */
    uint32_t compaction_idle_merge_ms;
    pool *background;               /* shared workers for flush/compaction (not owned) */
    const st_text_field *text_fields; /* full-text fields (copied), or NULL */
    size_t n_text_fields;           /* 0..ST_MAX_TEXT_FIELDS */
    st_vector_index vector_index;   /* all zero: no graph */
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
    float distance;          /* vector searches: API.md's cosine 1-cos, l2 Euclidean, dot -<q,v> */
    double score;            /* text searches: BM25 (higher is better) */
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
    uint64_t indexed_documents;  /* live documents in segments whose indexes are all built */
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
/* Starts reading every segment file of c into the page cache (readahead,
 * returns without waiting for it); the promotion to hot calls it. *bytes
 * (may be NULL): the bytes asked for. Returns the number of files that
 * could not be advised (0 on success); a failure costs only speed. */
int st_preload(st_collection *c, uint64_t *bytes);

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
 * broken by id). The same as st_search_ex with exact = true. */
int st_search(st_collection *c, const float *query, size_t k, st_filter_fn filter,
              void *filter_ctx, bool with_vectors, st_hit **out, size_t *n, tdb_error *err);

/* What a vector search did (for tests, benchmarks and the log). */
typedef struct st_search_info {
    uint32_t graph_segments;    /* segments searched through their HNSW graph */
    uint32_t exact_segments;    /* segments scanned exactly (no graph, exact, or the planner) */
} st_search_info;

/* How a segment with a graph is searched (not exact): as the planner
 * decides, or always through the graph (tests and benchmarks). */
typedef enum st_plan {
    ST_PLAN_AUTO = 0,
    ST_PLAN_GRAPH = 1
} st_plan;

typedef struct st_search_opts {
    bool exact;                 /* exhaustive over everything */
    uint32_t ef;                /* graph search breadth; 0 = max(k, ST_DEFAULT_EF) */
    st_plan plan;
    st_search_info *info;       /* filled when not NULL */
} st_search_opts;

/* Top-k by vector, best first (ties by id). Not exact: the memtables are
 * scanned exactly, each segment with a graph is searched through it with
 * breadth ef (rows deleted, superseded or refused by the filter are
 * stepped over during the walk, never filtered out of a fixed candidate
 * list), and a filter that keeps few rows of a segment makes the planner
 * scan that segment's matching rows exactly instead; either way each
 * segment contributes min(k, its matches), so the answer holds
 * min(k, matches) documents. o NULL: exact. */
int st_search_ex(st_collection *c, const float *query, size_t k, st_filter_fn filter,
                 void *filter_ctx, bool with_vectors, const st_search_opts *o, st_hit **out,
                 size_t *n, tdb_error *err);

/* Full-text fields as configured: count, names, lookup (index or -1). */
size_t st_text_field_count(const st_collection *c);
const char *st_text_field_name(const st_collection *c, size_t field);
int st_text_field_find(const st_collection *c, const char *name, size_t len);

/* A BM25 query (docs/text.md): the text is analyzed with each field's own
 * analyzer; query terms are its distinct tokens in order of first
 * occurrence, ORed. */
typedef struct st_text_query {
    const char *text;
    size_t text_len;
    const uint32_t *fields;     /* field indexes (distinct); NULL = every full-text field */
    const double *weights;      /* one per searched field (same order); NULL = 1.0 each */
    uint32_t n_fields;          /* entries of fields (ignored when fields is NULL) */
    bool exhaustive;            /* score every posting instead of block-max WAND */
} st_text_query;

/* Top-k live documents by BM25 score (score > 0; best first, ties by id),
 * passing filter. N, avgdl and df are collection-wide over the live
 * documents holding each field (memtables and every segment, deleted and
 * superseded rows excluded), whatever the filter, so a document scores the
 * same wherever it is stored. *n may be 0 (no token in the query, or no
 * match). TDB_EINVAL: no full-text field, a bad field index, or a query
 * over TEXT_MAX_QUERY_TERMS terms; TDB_ECORRUPT: a damaged index block. */
int st_search_text(st_collection *c, const st_text_query *q, size_t k, st_filter_fn filter,
                   void *filter_ctx, bool with_vectors, st_hit **out, size_t *n, tdb_error *err);

/* Freezes the memtable and writes it to a segment; returns when done. */
int st_flush(st_collection *c, tdb_error *err);
/* Merges every segment into one, dropping deleted rows; returns when done. */
int st_compact(st_collection *c, tdb_error *err);
/* Waits until no flush, compaction or index job of c is queued or
 * running (the idle-merge timer itself is not waited for). */
void st_wait_background(st_collection *c);

void st_stats_get(st_collection *c, st_stats *out);
/* The current write problem, if any: its kind ("disk_full" when flushes
 * fail for lack of space, "flush_failing" for other retried flush
 * failures, "compaction_failing"), with a message for /health in out
 * (size n); NULL (and out empty) when there is none. */
const char *st_write_problem(st_collection *c, char *out, size_t n);
const st_recovery *st_recovery_get(st_collection *c);

void st_record_free(st_record *r);          /* frees the fields, not r */
void st_records_free(st_record *r, size_t n);
void st_hits_free(st_hit *h, size_t n);

#endif
