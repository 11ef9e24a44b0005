/*
 * catalog.c: the SQLite catalog (DATA/catalog.db).
 * Layer: db. Schema version 2:
 *
 *   meta(key TEXT PRIMARY KEY, value TEXT)        -- schema_version
 *   collections(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE,
 *               config TEXT, dimension INTEGER, metric INTEGER,
 *               created_at INTEGER, updated_at INTEGER, tier INTEGER,
 *               pinned INTEGER, last_accessed_at INTEGER,
 *               access_count INTEGER, access_window_start INTEGER,
 *               window_count INTEGER, snapshot_id TEXT, object_bytes INTEGER,
 *               cold_documents INTEGER, cold_since INTEGER)
 *   snapshots(id TEXT PRIMARY KEY, collection TEXT, created_at INTEGER,
 *             documents INTEGER, size_bytes INTEGER, object_key TEXT,
 *             location TEXT, config TEXT, dimension INTEGER, metric INTEGER)
 *   access_state(id INTEGER PRIMARY KEY, last_accessed_at INTEGER,
 *                access_count INTEGER, access_window_start INTEGER,
 *                window_count INTEGER)
 *
 * access_state holds the access tracking fields (version 2). They are
 * rewritten for every accessed collection each policy cycle, so they live
 * in a narrow table of five integers rather than in the wide collections
 * row (config JSON and all): the batched write touches a few pages instead
 * of the whole collections table. The same-named columns of collections
 * are kept from version 1 but no longer read once a row of access_state
 * exists. Version 1 catalogs are migrated on open, in one transaction that
 * copies the access fields across.
 *
 * Times are ms since the epoch. AUTOINCREMENT so that an id (and so a
 * directory name) is never reused after a drop: a half-removed directory of
 * a dropped collection can never be mistaken for a new one's.
 * Journal: WAL mode with synchronous=FULL, so a returned insert or delete
 * is durable.
 */
#include "db/catalog.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define CATALOG_SCHEMA_VERSION 2
#define CATALOG_BUSY_TIMEOUT_MS 5000

struct catalog {
    pthread_mutex_t mu; /* guards db and every statement on it */
    sqlite3 *db;
    char *path;
};

static int sql_err(catalog *c, tdb_error *err, const char *what) {
    return tdb_err(err, TDB_EIO, "catalog_error", "catalog %s: %s (%s)", what,
                   c->db ? sqlite3_errmsg(c->db) : "cannot open", c->path);
}

static int exec(catalog *c, const char *sql, tdb_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = tdb_err(err, TDB_EIO, "catalog_error", "catalog: %s (%s)", msg ? msg : "?", c->path);
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

/* Version 1 -> 2: the access state moves to its own narrow table. One
 * transaction: a crash leaves version 1 intact, and the next open retries. */
static int migrate(catalog *c, tdb_error *err) {
    int rc = exec(c, "BEGIN IMMEDIATE", err);
    if (rc) return rc;
    if ((rc = exec(c,
                   "CREATE TABLE IF NOT EXISTS access_state("
                   " id INTEGER PRIMARY KEY, last_accessed_at INTEGER NOT NULL,"
                   " access_count INTEGER NOT NULL, access_window_start INTEGER NOT NULL,"
                   " window_count INTEGER NOT NULL);"
                   "INSERT OR IGNORE INTO access_state(id, last_accessed_at, access_count,"
                   " access_window_start, window_count)"
                   " SELECT id, last_accessed_at, access_count, access_window_start, window_count"
                   " FROM collections"
                   " WHERE (SELECT value FROM meta WHERE key='schema_version')='1';"
                   "UPDATE meta SET value='2' WHERE key='schema_version' AND value='1';"
                   "COMMIT;",
                   err)) != 0)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int catalog_open(const char *path, catalog **out, tdb_error *err) {
    *out = NULL;
    catalog *c = calloc(1, sizeof *c);
    if (c == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    c->path = strdup(path);
    int rc;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = sql_err(c, err, "open");
        goto fail;
    }
    sqlite3_busy_timeout(c->db, CATALOG_BUSY_TIMEOUT_MS);
    if ((rc = exec(c,
                   "PRAGMA journal_mode=WAL;"
                   "PRAGMA synchronous=FULL;"
                   "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
                   "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '1');"
                   "CREATE TABLE IF NOT EXISTS collections("
                   " id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
                   " config TEXT NOT NULL, dimension INTEGER NOT NULL, metric INTEGER NOT NULL,"
                   " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
                   " tier INTEGER NOT NULL DEFAULT 0, pinned INTEGER NOT NULL DEFAULT 0,"
                   " last_accessed_at INTEGER NOT NULL DEFAULT 0,"
                   " access_count INTEGER NOT NULL DEFAULT 0,"
                   " access_window_start INTEGER NOT NULL DEFAULT 0,"
                   " window_count INTEGER NOT NULL DEFAULT 0, snapshot_id TEXT,"
                   " object_bytes INTEGER NOT NULL DEFAULT 0,"
                   " cold_documents INTEGER NOT NULL DEFAULT 0,"
                   " cold_since INTEGER NOT NULL DEFAULT 0);"
                   "CREATE TABLE IF NOT EXISTS snapshots("
                   " id TEXT PRIMARY KEY, collection TEXT NOT NULL, created_at INTEGER NOT NULL,"
                   " documents INTEGER NOT NULL, size_bytes INTEGER NOT NULL,"
                   " object_key TEXT NOT NULL, location TEXT NOT NULL, config TEXT NOT NULL,"
                   " dimension INTEGER NOT NULL, metric INTEGER NOT NULL);",
                   err)) != 0)
        goto fail;
    if ((rc = migrate(c, err)) != 0) goto fail;
    /* Refuse a catalog written by a newer build rather than misread it. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE key='schema_version'", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = sql_err(c, err, "read schema version");
        goto fail;
    }
    int version = 0;
    if (sqlite3_step(st) == SQLITE_ROW) version = atoi((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (version != CATALOG_SCHEMA_VERSION) {
        rc = tdb_err(err, TDB_ECORRUPT, "catalog_error",
                     "catalog %s has schema version %d; this build reads version %d", path, version,
                     CATALOG_SCHEMA_VERSION);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    catalog_close(c);
    return rc;
}

void catalog_close(catalog *c) {
    if (c == NULL) return;
    if (c->db) sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    free(c->path);
    free(c);
}

int catalog_insert(catalog *c, catalog_row *row, tdb_error *err) {
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT INTO collections(name, config, dimension, metric, created_at,"
                           " updated_at, tier, pinned, last_accessed_at, access_count,"
                           " access_window_start) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_err(c, err, "prepare insert");
        goto done;
    }
    sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, row->config, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, row->dimension);
    sqlite3_bind_int64(st, 4, row->metric);
    sqlite3_bind_int64(st, 5, row->created_at_ms);
    sqlite3_bind_int64(st, 6, row->updated_at_ms);
    sqlite3_bind_int64(st, 7, row->tier);
    sqlite3_bind_int64(st, 8, row->pinned);
    sqlite3_bind_int64(st, 9, row->last_accessed_at_ms);
    sqlite3_bind_int64(st, 10, row->access_count);
    sqlite3_bind_int64(st, 11, row->access_window_start_ms);
    int s = sqlite3_step(st);
    if (s == SQLITE_CONSTRAINT) {
        rc = tdb_err(err, TDB_EEXIST, "collection_exists", "collection \"%s\" already exists",
                     row->name);
        goto done;
    }
    if (s != SQLITE_DONE) {
        rc = sql_err(c, err, "insert");
        goto done;
    }
    row->id = sqlite3_last_insert_rowid(c->db);
    /* No access_state row yet: catalog_list falls back to the columns
     * just written until the first access write creates it. */
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int catalog_delete(catalog *c, int64_t id, tdb_error *err) {
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if ((rc = exec(c, "BEGIN IMMEDIATE", err)) != 0) goto done;
    static const char *const sqls[] = {"DELETE FROM access_state WHERE id=?",
                                       "DELETE FROM collections WHERE id=?"};
    for (size_t i = 0; i < 2; i++) {
        if (sqlite3_prepare_v2(c->db, sqls[i], -1, &st, NULL) != SQLITE_OK) {
            rc = sql_err(c, err, "prepare delete");
            break;
        }
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) != SQLITE_DONE) rc = sql_err(c, err, "delete");
        sqlite3_finalize(st);
        st = NULL;
        if (rc) break;
    }
    if (rc == 0) rc = exec(c, "COMMIT", err);
    if (rc) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static char *col_strdup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

int catalog_list(catalog *c, catalog_row **rows_out, size_t *n_out, tdb_error *err) {
    *rows_out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = NULL;
    catalog_row *rows = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT c.id, name, config, dimension, metric, created_at, updated_at,"
                           " tier, pinned, COALESCE(a.last_accessed_at, c.last_accessed_at),"
                           " COALESCE(a.access_count, c.access_count),"
                           " COALESCE(a.access_window_start, c.access_window_start),"
                           " COALESCE(a.window_count, c.window_count), snapshot_id, object_bytes,"
                           " cold_documents, cold_since"
                           " FROM collections c LEFT JOIN access_state a ON a.id = c.id"
                           " ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_err(c, err, "prepare list");
        goto done;
    }
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            catalog_row *r = realloc(rows, cap * sizeof *rows);
            if (r == NULL) {
                rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
                goto done;
            }
            rows = r;
        }
        catalog_row *r = &rows[n++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(st, 0);
        r->name = col_strdup(st, 1);
        r->config = col_strdup(st, 2);
        r->dimension = (uint32_t)sqlite3_column_int64(st, 3);
        r->metric = (tdb_metric)sqlite3_column_int64(st, 4);
        r->created_at_ms = sqlite3_column_int64(st, 5);
        r->updated_at_ms = sqlite3_column_int64(st, 6);
        r->tier = (tdb_tier)sqlite3_column_int64(st, 7);
        r->pinned = sqlite3_column_int64(st, 8) != 0;
        r->last_accessed_at_ms = sqlite3_column_int64(st, 9);
        r->access_count = sqlite3_column_int64(st, 10);
        r->access_window_start_ms = sqlite3_column_int64(st, 11);
        r->window_count = sqlite3_column_int64(st, 12);
        if (sqlite3_column_type(st, 13) != SQLITE_NULL) r->snapshot_id = col_strdup(st, 13);
        r->object_bytes = sqlite3_column_int64(st, 14);
        r->cold_documents = sqlite3_column_int64(st, 15);
        r->cold_since_ms = sqlite3_column_int64(st, 16);
        if (r->name == NULL || r->config == NULL) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
            goto done;
        }
    }
    if (s != SQLITE_DONE) rc = sql_err(c, err, "list");
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) {
        catalog_rows_free(rows, n);
        return rc;
    }
    *rows_out = rows;
    *n_out = n;
    return 0;
}

void catalog_rows_free(catalog_row *rows, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].config);
        free(rows[i].snapshot_id);
    }
    free(rows);
}

/* Upserts the access fields of rows into access_state: one prepared
 * statement, inside the caller's transaction. Caller holds c->mu. */
static int write_access(catalog *c, const catalog_row *rows, size_t n, tdb_error *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT OR REPLACE INTO access_state(id, last_accessed_at, access_count,"
                           " access_window_start, window_count) VALUES(?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(c, err, "prepare access update");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const catalog_row *r = &rows[i];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, r->id);
        sqlite3_bind_int64(st, 2, r->last_accessed_at_ms);
        sqlite3_bind_int64(st, 3, r->access_count);
        sqlite3_bind_int64(st, 4, r->access_window_start_ms);
        sqlite3_bind_int64(st, 5, r->window_count);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = sql_err(c, err, "access update");
            break;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_update_access(catalog *c, const catalog_row *rows, size_t n, tdb_error *err) {
    pthread_mutex_lock(&c->mu);
    int rc = exec(c, "BEGIN IMMEDIATE", err);
    if (rc == 0) {
        rc = write_access(c, rows, n, err);
        if (rc == 0) rc = exec(c, "COMMIT", err);
        if (rc) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int catalog_update_state(catalog *c, const catalog_row *rows, size_t n, tdb_error *err) {
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = NULL;
    int rc = exec(c, "BEGIN IMMEDIATE", err);
    if (rc) goto done;
    if (sqlite3_prepare_v2(c->db,
                           "UPDATE collections SET tier=?, pinned=?, snapshot_id=?,"
                           " object_bytes=?, cold_documents=?, cold_since=?, updated_at=?"
                           " WHERE id=?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_err(c, err, "prepare update");
        goto rollback;
    }
    for (size_t i = 0; i < n; i++) {
        const catalog_row *r = &rows[i];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, r->tier);
        sqlite3_bind_int64(st, 2, r->pinned);
        if (r->snapshot_id) sqlite3_bind_text(st, 3, r->snapshot_id, -1, SQLITE_STATIC);
        else sqlite3_bind_null(st, 3);
        sqlite3_bind_int64(st, 4, r->object_bytes);
        sqlite3_bind_int64(st, 5, r->cold_documents);
        sqlite3_bind_int64(st, 6, r->cold_since_ms);
        sqlite3_bind_int64(st, 7, r->updated_at_ms);
        sqlite3_bind_int64(st, 8, r->id);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = sql_err(c, err, "update");
            goto rollback;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = write_access(c, rows, n, err)) != 0) goto rollback;
    rc = exec(c, "COMMIT", err);
    if (rc == 0) goto done;
rollback:
    sqlite3_finalize(st);
    st = NULL;
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
done:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int catalog_snapshot_insert(catalog *c, const catalog_snapshot *s, tdb_error *err) {
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT INTO snapshots(id, collection, created_at, documents, size_bytes,"
                           " object_key, location, config, dimension, metric)"
                           " VALUES(?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_err(c, err, "prepare snapshot insert");
        goto done;
    }
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->collection, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, s->created_at_ms);
    sqlite3_bind_int64(st, 4, s->documents);
    sqlite3_bind_int64(st, 5, s->size_bytes);
    sqlite3_bind_text(st, 6, s->object_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, s->location, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, s->config, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, s->dimension);
    sqlite3_bind_int64(st, 10, s->metric);
    if (sqlite3_step(st) != SQLITE_DONE) rc = sql_err(c, err, "snapshot insert");
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int catalog_snapshot_list(catalog *c, const char *collection, const char *id,
                          catalog_snapshot **out, size_t *n_out, tdb_error *err) {
    *out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = NULL;
    catalog_snapshot *rows = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT id, collection, created_at, documents, size_bytes, object_key,"
                           " location, config, dimension, metric FROM snapshots"
                           " WHERE collection=? AND (?2 IS NULL OR id=?2) ORDER BY created_at, id",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_err(c, err, "prepare snapshot list");
        goto done;
    }
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    if (id) sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 2);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            catalog_snapshot *r = realloc(rows, cap * sizeof *rows);
            if (r == NULL) {
                rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
                goto done;
            }
            rows = r;
        }
        catalog_snapshot *r = &rows[n++];
        memset(r, 0, sizeof *r);
        r->id = col_strdup(st, 0);
        r->collection = col_strdup(st, 1);
        r->created_at_ms = sqlite3_column_int64(st, 2);
        r->documents = sqlite3_column_int64(st, 3);
        r->size_bytes = sqlite3_column_int64(st, 4);
        r->object_key = col_strdup(st, 5);
        r->location = col_strdup(st, 6);
        r->config = col_strdup(st, 7);
        r->dimension = (uint32_t)sqlite3_column_int64(st, 8);
        r->metric = (tdb_metric)sqlite3_column_int64(st, 9);
        if (!r->id || !r->collection || !r->object_key || !r->location || !r->config) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
            goto done;
        }
    }
    if (s != SQLITE_DONE) rc = sql_err(c, err, "snapshot list");
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&c->mu);
    if (rc == 0 && id && n == 0)
        rc = tdb_err(err, TDB_ENOTFOUND, "snapshot_not_found",
                     "snapshot \"%s\" of collection \"%s\" does not exist", id, collection);
    if (rc) {
        catalog_snapshots_free(rows, n);
        return rc;
    }
    *out = rows;
    *n_out = n;
    return 0;
}

int catalog_snapshot_delete(catalog *c, const char *id, tdb_error *err) {
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(c->db, "DELETE FROM snapshots WHERE id=?", -1, &st, NULL) != SQLITE_OK) {
        rc = sql_err(c, err, "prepare snapshot delete");
        goto done;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = sql_err(c, err, "snapshot delete");
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void catalog_snapshots_free(catalog_snapshot *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(s[i].id);
        free(s[i].collection);
        free(s[i].object_key);
        free(s[i].location);
        free(s[i].config);
    }
    free(s);
}
