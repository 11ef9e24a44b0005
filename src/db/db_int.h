/*
 * db_int.h: internals shared by the files of the db layer: the database
 * handle, the in-memory collection registry, and collection schemas.
 * Layer: db (the only layer that includes several others).
 *
 * Invariants:
 *   (1) every catalog row has exactly one db_coll in the registry while
 *       the database is open, and vice versa;
 *   (2) a db_coll's storage (st) is opened lazily on first use and stays
 *       open until the collection is dropped or the database closes;
 *   (3) a dropped db_coll is out of the registry; requests that still hold
 *       a reference see `dropped` and answer 404.
 * Concurrency: db->mu guards the registry (map, count); coll->mu guards
 * st, dropped, cached and the lazy open; coll->state_mu guards the tier
 * state (tier, pinned, access, cold copy, dirty) and is only ever held for
 * a few instructions, so recording an access never waits on I/O;
 * coll->move_mu serializes tier moves of one collection; coll->refs is
 * atomic. Requests hold a reference (db_coll_get/db_coll_put) for their
 * whole duration and use coll->st under coll->rw in read mode; drop and
 * the short commit step of a tier move take coll->rw in write mode, so
 * they wait for requests in flight. Lock order: move_mu, rw, mu, state_mu.
 */
#ifndef TDB_DB_DB_INT_H
#define TDB_DB_DB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/catalog.h"
#include "objstore/objstore.h"
#include "tier/tier.h"
#include "storage/storage.h"
#include "tierdb.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/pool.h"

#define DB_MAX_NAME_BYTES 128
#define DB_DEFAULT_HNSW_M 16
#define DB_DEFAULT_EF_CONSTRUCTION 200
#define DB_MIN_HNSW_M 2
#define DB_MAX_HNSW_M 100         /* the graph builder's bound (vec/hnsw.h) */
#define DB_MAX_EF_CONSTRUCTION 2000 /* the graph builder's bound (vec/hnsw.h) */
#define DB_MAX_TOP_K 10000        /* API.md */
#define DB_DEFAULT_TOP_K 10
#define DB_DEFAULT_LIST_LIMIT 100
#define DB_MAX_LIST_LIMIT 10000   /* one page stays a bounded response */
#define DB_MAX_ATTRIBUTES 1024    /* declared attributes per collection */

typedef enum attr_type {
    ATTR_STRING = 0,
    ATTR_INT,
    ATTR_FLOAT,
    ATTR_BOOL,
    ATTR_STRING_ARRAY,
    ATTR_INT_ARRAY
} attr_type;

typedef struct attr_decl {
    char *name;
    attr_type type;
    bool full_text;
    char *language;   /* NULL: the default analyzer */
    bool stemming;
    bool stopwords;
} attr_decl;

typedef struct coll_schema {
    attr_decl *attrs;
    size_t attr_count;
    int hnsw_m;
    int ef_construction;
    char quantization[8]; /* "none" | "sq8" | "rabitq" */
} coll_schema;

typedef struct db_coll {
    int64_t id;                  /* catalog id = directory name */
    char name[DB_MAX_NAME_BYTES + 1];
    uint32_t dimension;
    tdb_metric metric;
    coll_schema schema;
    int64_t created_at_ms;
    /* Tier state (state_mu). */
    pthread_mutex_t state_mu;
    tdb_tier tier;
    bool pinned;
    tier_access access;
    char *snapshot_id;           /* cold copy prefix, NULL unless cold */
    int64_t object_bytes;
    int64_t cold_documents;
    int64_t cold_since_ms;
    int64_t updated_at_ms;
    bool dirty;                  /* access state not yet in the catalog */
    pthread_mutex_t move_mu;     /* one tier move at a time */
    _Atomic int refs;
    pthread_rwlock_t rw;         /* read: a request uses st; write: drop */
    pthread_mutex_t mu;          /* guards st, dropped, lazy open */
    st_collection *st;
    bool dropped;
    st_stats cached;             /* stats when st was last closed (mu) */
    bool cached_valid;
    struct db_coll *next;        /* registry hash chain (db->mu) */
} db_coll;

struct tdb_db {
    tdb_options opts;            /* strings point into owned copies below */
    char *data_dir;
    char *collections_dir;
    char *object_store;
    int lock_fd;                 /* flock on DATA/LOCK: one process per directory */
    catalog *cat;
    pool *background;
    pthread_mutex_t mu;          /* guards map, map_size, coll_count, problems */
    db_coll **map;
    size_t map_size;
    size_t coll_count;
    buf problems;                /* JSON array elements, comma-separated */
    objstore *store;             /* cold copies */
    tier_policy policy;
    uint64_t hot_memory_budget;
    pthread_mutex_t cycle_mu;    /* one policy cycle at a time; guards last_cycle */
    buf last_cycle;              /* JSON of the last cycle report */
    pthread_t worker;
    bool worker_running;
    pthread_mutex_t worker_mu;   /* guards worker_stop */
    pthread_cond_t worker_cv;
    bool worker_stop;
    _Atomic uint64_t moves[5];   /* completed moves by tier_move */
    _Atomic uint64_t move_failures[5]; /* failed moves by tier_move */
    _Atomic uint64_t move_us[5]; /* total time of completed moves, microseconds */
};

/* Registry (db.c). db_coll_get returns a referenced collection or
 * TDB_ENOTFOUND; db_coll_put releases it. db_coll_storage opens st on
 * first use (coll->rw must be held in read mode). */
int db_coll_get(tdb_db *db, const char *name, db_coll **out, tdb_error *err);
void db_coll_put(db_coll *c);
/* Every registered collection, each referenced (release each with
 * db_coll_put, then free the array); *n is 0 and NULL is returned when out
 * of memory. Takes db->mu briefly; never call it holding a collection lock
 * that db->mu may wait for. */
db_coll **db_colls_ref(tdb_db *db, size_t *n);
int db_coll_storage(tdb_db *db, db_coll *c, st_collection **out, tdb_error *err);
/* Takes coll->rw for reading, checks it is not dropped and opens storage. */
int db_coll_begin(tdb_db *db, const char *name, db_coll **coll, st_collection **st,
                  tdb_error *err);
void db_coll_end(db_coll *c);

/* Tiering (tiering.c). */
/* Brings a cold collection back to warm (no-op otherwise). */
int db_tier_promote_cold(tdb_db *db, db_coll *c, tdb_error *err);
/* Records an access (O(1), collection-local lock). */
void db_tier_touch(tdb_db *db, db_coll *c);
/* Startup: fills tiering fields of db from opts, opens the object store. */
int db_tiering_open(tdb_db *db, tdb_error *err);
/* Stops the worker and writes pending access state to the catalog. */
void db_tiering_close(tdb_db *db);
/* Starts the background worker (after the registry is loaded). */
int db_tiering_start(tdb_db *db, tdb_error *err);
/* Fills a catalog row's tier fields from c (state_mu held by caller). */
void db_tier_row(const db_coll *c, catalog_row *row);
/* Path of a collection's directory (malloc'd). */
char *db_coll_dir(tdb_db *db, const db_coll *c);
/* Current stats: from st when open, else the cached ones (or zeros). */
void db_coll_stats(db_coll *c, st_stats *out);

/* Snapshots (snapshot.c): deletes every snapshot of a collection. */
void db_snapshots_drop(tdb_db *db, const char *name);
/* Removes snapshot objects no catalog row lists (at open). */
void db_snapshots_gc(tdb_db *db);
/* Writes every live document of st as a Parquet snapshot file at path. */
int db_write_parquet(db_coll *c, st_collection *st, const char *path, uint64_t *docs,
                     uint64_t *size, tdb_error *err);
/* Upserts every row of the Parquet file at path into st. */
int db_load_parquet(const char *path, uint32_t dim, st_collection *st, tdb_error *err);
/* DATA/tmp/<file> (malloc'd); the directory is emptied at open. */
char *db_tmp_path(tdb_db *db, const char *file);
/* Storage options for collection c (index configuration from its schema);
 * *tf is the text-field array so points to: free it after st_open. */
int db_storage_options(tdb_db *db, const db_coll *c, st_options *so, st_text_field **tf,
                       tdb_error *err);

/* Schemas (schema.c). */
bool schema_name_valid(const char *name, size_t len);
/* Parses a create body; fills name/dimension/metric/schema. */
int schema_parse_create(const json_value *root, char name[DB_MAX_NAME_BYTES + 1],
                        uint32_t *dimension, tdb_metric *metric, coll_schema *schema,
                        tdb_error *err);
/* Parses the catalog's config text ({"attributes":..,"index":..}). */
int schema_parse_config(const char *config, coll_schema *schema, tdb_error *err);
void schema_write_config(buf *b, const coll_schema *schema);
void schema_write_attributes(buf *b, const coll_schema *schema);
void schema_write_index(buf *b, const coll_schema *schema);
void schema_free(coll_schema *schema);
const attr_decl *schema_find_attr(const coll_schema *schema, const char *name, size_t len);
const char *metric_name(tdb_metric m);
const char *tier_name(tdb_tier t);

/* JSON helpers (docs.c): parse a request body, with TDB_EINVAL "invalid_json". */
int db_parse_body(const char *body, size_t len, json_doc **out, tdb_error *err);
/* Writes a document object {"id","vector"?,"attributes"}. */
void db_write_doc(buf *b, const st_record *r, uint32_t dimension, bool with_vector);
/* Validates a query/upsert vector: array of dimension finite numbers
 * (non-zero for cosine) into out. what names it in messages. */
int db_read_vector(const json_value *v, uint32_t dimension, tdb_metric metric, float *out,
                   const char *what, tdb_error *err);
/* Query memory budget (query.c): a query's estimated peak memory is
 * charged against a server-wide budget before it runs. */
#define DB_QUERY_MEM_DEFAULT ((uint64_t)1 << 30) /* at most a quarter of RAM */
#define DB_QUERY_MEM_MIN ((uint64_t)64 << 20)
#define DB_QEST_HIT_BYTES 640u    /* a hit: record, id (<= 512 bytes), bookkeeping */
#define DB_QEST_ATTR_BYTES 1024u  /* attributes of one document, a typical bound */
#define DB_QEST_CAND_BYTES 16u    /* one search-frontier entry */
#define DB_QEST_RESULT_BYTES 600u /* one result's JSON without vector/attributes */
typedef struct db_query_shape {
    uint64_t top_k, depth, dimension, ef, segments, documents;
    bool vector, text, include_vector, include_attrs;
} db_query_shape;
typedef struct db_query_memory {
    uint64_t budget, per_query, used, refused;
} db_query_memory;
uint64_t db_query_estimate(const db_query_shape *q);
/* 0 = charged; TDB_EINVAL query_too_large (over the per-query cap) or,
 * after a short wait, TDB_EBUSY overloaded. */
int db_query_memory_acquire(uint64_t bytes, tdb_error *err);
void db_query_memory_release(uint64_t bytes);
/* 0 keeps the default (budget: min(1 GiB, RAM / 4); per query: budget / 4). */
void db_query_memory_set(uint64_t budget, uint64_t per_query);
void db_query_memory_get(db_query_memory *out);

/* Deletes every live document matching a filter, in pages (query.c). */
int db_delete_by_filter(db_coll *c, st_collection *st, const json_value *filter, size_t *deleted,
                        tdb_error *err);
/* Writes the collection object. */
int db_write_collection(tdb_db *db, db_coll *c, buf *b, tdb_error *err);

#endif
