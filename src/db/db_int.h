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
 * st, dropped and the lazy open; coll->refs is atomic. Requests hold a
 * reference (db_coll_get/db_coll_put) for their whole duration and use
 * coll->st under coll->rw in read mode; drop takes coll->rw in write mode,
 * so it waits for requests in flight.
 */
#ifndef TDB_DB_DB_INT_H
#define TDB_DB_DB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/catalog.h"
#include "storage/storage.h"
#include "tierdb.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/pool.h"

#define DB_MAX_NAME_BYTES 128
#define DB_DEFAULT_HNSW_M 16
#define DB_DEFAULT_EF_CONSTRUCTION 200
#define DB_MIN_HNSW_M 2
#define DB_MAX_HNSW_M 128         /* larger graphs cost memory without recall gains */
#define DB_MAX_EF_CONSTRUCTION 4096
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
    tdb_tier tier;
    bool pinned;
    _Atomic int refs;
    pthread_rwlock_t rw;         /* read: a request uses st; write: drop */
    pthread_mutex_t mu;          /* guards st, dropped, lazy open */
    st_collection *st;
    bool dropped;
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
};

/* Registry (db.c). db_coll_get returns a referenced collection or
 * TDB_ENOTFOUND; db_coll_put releases it. db_coll_storage opens st on
 * first use (coll->rw must be held in read mode). */
int db_coll_get(tdb_db *db, const char *name, db_coll **out, tdb_error *err);
void db_coll_put(db_coll *c);
int db_coll_storage(tdb_db *db, db_coll *c, st_collection **out, tdb_error *err);
/* Takes coll->rw for reading, checks it is not dropped and opens storage. */
int db_coll_begin(tdb_db *db, const char *name, db_coll **coll, st_collection **st,
                  tdb_error *err);
void db_coll_end(db_coll *c);

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
/* Deletes every live document matching a filter, in pages (query.c). */
int db_delete_by_filter(db_coll *c, st_collection *st, const json_value *filter, size_t *deleted,
                        tdb_error *err);
/* Writes the collection object. */
int db_write_collection(tdb_db *db, db_coll *c, buf *b, tdb_error *err);

#endif
