/*
 * catalog.h: the catalog, DATA/catalog.db (SQLite, WAL mode): one row per
 * collection with its configuration and tier state. Collections and their
 * configuration survive restarts because they live here.
 * Layer: db. Used by db.c only.
 *
 * Concurrency: one SQLite connection guarded by cat->mu; every call is
 * short (catalog writes are rare: create, drop, batched tier updates).
 * Ownership: rows returned by catalog_list are malloc'd; free with
 * catalog_rows_free.
 */
#ifndef TDB_DB_CATALOG_H
#define TDB_DB_CATALOG_H

#include <stdbool.h>
#include <stdint.h>

#include "tierdb.h"

typedef struct catalog catalog;

typedef struct catalog_row {
    int64_t id;                /* directory DATA/collections/<id> */
    char *name;
    char *config;              /* canonical config JSON (attributes, index) */
    uint32_t dimension;
    tdb_metric metric;
    int64_t created_at_ms;
    int64_t updated_at_ms;
    tdb_tier tier;
    bool pinned;
    int64_t last_accessed_at_ms;
    int64_t access_count;
    int64_t access_window_start_ms;
    int64_t window_count;        /* accesses in the current window */
    char *snapshot_id;           /* cold copy id (object prefix), NULL when none */
    int64_t object_bytes;        /* bytes of the cold copy in the object store */
    int64_t cold_documents;      /* live documents when it went cold */
    int64_t cold_since_ms;       /* when it went cold (0 otherwise) */
} catalog_row;

/* A snapshot (API.md "Snapshots"): keyed by the collection's name, so
 * snapshots kept when a collection is dropped can restore it later. */
typedef struct catalog_snapshot {
    char *id;
    char *collection;
    int64_t created_at_ms;
    int64_t documents;
    int64_t size_bytes;
    char *object_key;
    char *location;
    char *config;          /* the collection's canonical config when taken */
    uint32_t dimension;
    tdb_metric metric;
} catalog_snapshot;

int catalog_snapshot_insert(catalog *c, const catalog_snapshot *s, tdb_error *err);
/* Snapshots of a collection (by name), oldest first; id NULL: all of them,
 * else only that one (TDB_ENOTFOUND when absent). */
int catalog_snapshot_list(catalog *c, const char *collection, const char *id,
                          catalog_snapshot **out, size_t *n, tdb_error *err);
int catalog_snapshot_delete(catalog *c, const char *id, tdb_error *err);
void catalog_snapshots_free(catalog_snapshot *s, size_t n);

int catalog_open(const char *path, catalog **out, tdb_error *err);
void catalog_close(catalog *c);
/* Inserts a collection; TDB_EEXIST when the name is taken. Sets row->id. */
int catalog_insert(catalog *c, catalog_row *row, tdb_error *err);
int catalog_delete(catalog *c, int64_t id, tdb_error *err);
/* Writes the tier state of rows (tier, pinned, access fields, snapshot_id,
 * object_bytes, cold_documents, cold_since, updated_at) in one
 * transaction: the batched write of access tracking and each move's
 * commit point. */
int catalog_update_state(catalog *c, const catalog_row *rows, size_t n, tdb_error *err);
/* Writes only the access fields of rows (id, last_accessed_at,
 * access_count, access_window_start, window_count) in one transaction:
 * the batched write of access tracking. */
int catalog_update_access(catalog *c, const catalog_row *rows, size_t n, tdb_error *err);
/* Every row, in name order. */
int catalog_list(catalog *c, catalog_row **rows, size_t *n, tdb_error *err);
void catalog_rows_free(catalog_row *rows, size_t n);

#endif
