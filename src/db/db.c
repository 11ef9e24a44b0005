/*
 * db.c: the database handle: opening a data directory, the registry of
 * collections, and the collection routes of the public API.
 * Layer: db. Ties catalog.c (what exists) to storage/ (the data of each
 * collection). See db_int.h for the invariants and locking.
 *
 * Data directory (docs/storage.md):
 *   DATA/LOCK                 flock'd while a process has it open
 *   DATA/catalog.db           SQLite catalog (+ -wal, -shm)
 *   DATA/collections/<id>/    one collection's storage (storage.h)
 *   DATA/objects/             the default local object store
 *
 * Create is catalog insert, then directory; drop is rename of the
 * directory to <id>.dropped, catalog delete, then removal. A crash between
 * the steps leaves either a catalog row whose directory is created empty on
 * first use, or a directory without a row, removed at the next open.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "db/db_int.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/log.h"

#define DB_DEFAULT_MEMTABLE_MAX_BYTES (64ull << 20)
#define DB_DEFAULT_MEMTABLE_MAX_DOCS 100000u
#define DB_DEFAULT_COMPACTION_MIN_SEGMENTS 4u
#define DB_DEFAULT_COMPACTION_IDLE_MERGE_MS 60000 /* docs/storage.md "Idle merge" */
#define DB_DEFAULT_BACKGROUND_THREADS 2u
#define DB_DEFAULT_WAL_FILE_MAX_BYTES (64ull << 20)
#define DB_DEFAULT_FSYNC_INTERVAL_MS 100u
#define DB_MAX_PROBLEMS_BYTES (64u << 10) /* /health stays small */

void tdb_options_default(tdb_options *o) {
    memset(o, 0, sizeof *o);
    o->data_dir = "./data";
    o->object_store = NULL;
    o->fsync = TDB_FSYNC_ALWAYS;
    o->fsync_interval_ms = DB_DEFAULT_FSYNC_INTERVAL_MS;
    o->memtable_max_bytes = DB_DEFAULT_MEMTABLE_MAX_BYTES;
    o->memtable_max_docs = DB_DEFAULT_MEMTABLE_MAX_DOCS;
    o->compaction_min_segments = DB_DEFAULT_COMPACTION_MIN_SEGMENTS;
    o->compaction_idle_merge_ms = DB_DEFAULT_COMPACTION_IDLE_MERGE_MS;
    o->background_threads = DB_DEFAULT_BACKGROUND_THREADS;
    o->wal_file_max_bytes = DB_DEFAULT_WAL_FILE_MAX_BYTES;
    o->test_clock = false;
    o->worker_interval_ms = -1; /* default (5m); 0 turns the worker off */
}

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* FNV-1a: the registry is keyed by collection name. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Caller holds db->mu. */
static int registry_add(tdb_db *db, db_coll *c) {
    if (db->coll_count + 1 > db->map_size) {
        size_t ns = db->map_size ? db->map_size * 2 : 64;
        db_coll **nm = calloc(ns, sizeof *nm);
        if (nm == NULL) return TDB_ENOMEM;
        for (size_t i = 0; i < db->map_size; i++) {
            db_coll *e = db->map[i];
            while (e) {
                db_coll *next = e->next;
                size_t b = name_hash(e->name) & (ns - 1);
                e->next = nm[b];
                nm[b] = e;
                e = next;
            }
        }
        free(db->map);
        db->map = nm;
        db->map_size = ns;
    }
    size_t b = name_hash(c->name) & (db->map_size - 1);
    c->next = db->map[b];
    db->map[b] = c;
    db->coll_count++;
    return 0;
}

/* Caller holds db->mu. */
static db_coll *registry_find(tdb_db *db, const char *name) {
    if (db->map_size == 0) return NULL;
    for (db_coll *e = db->map[name_hash(name) & (db->map_size - 1)]; e; e = e->next)
        if (strcmp(e->name, name) == 0) return e;
    return NULL;
}

/* Caller holds db->mu. */
static void registry_remove(tdb_db *db, db_coll *c) {
    db_coll **pp = &db->map[name_hash(c->name) & (db->map_size - 1)];
    while (*pp && *pp != c) pp = &(*pp)->next;
    if (*pp) {
        *pp = c->next;
        db->coll_count--;
    }
}

static db_coll *coll_new(int64_t id, const char *name, uint32_t dim, tdb_metric metric,
                         coll_schema *schema, int64_t created_at_ms) {
    db_coll *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->id = id;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->dimension = dim;
    c->metric = metric;
    c->schema = *schema;
    c->created_at_ms = created_at_ms;
    c->tier = TDB_TIER_HOT;
    c->updated_at_ms = created_at_ms;
    c->access.last_access_ms = created_at_ms;
    atomic_init(&c->refs, 1);
    pthread_rwlock_init(&c->rw, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->state_mu, NULL);
    pthread_mutex_init(&c->move_mu, NULL);
    return c;
}

static void coll_free(db_coll *c) {
    st_close(c->st);
    schema_free(&c->schema);
    free(c->snapshot_id);
    pthread_rwlock_destroy(&c->rw);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->state_mu);
    pthread_mutex_destroy(&c->move_mu);
    free(c);
}

void db_coll_put(db_coll *c) {
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) coll_free(c);
}

int db_coll_get(tdb_db *db, const char *name, db_coll **out, tdb_error *err) {
    pthread_mutex_lock(&db->mu);
    db_coll *c = registry_find(db, name);
    if (c) atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&db->mu);
    *out = c;
    if (c == NULL)
        return tdb_err(err, TDB_ENOTFOUND, "collection_not_found", "collection \"%s\" does not exist",
                       name);
    return 0;
}

db_coll **db_colls_ref(tdb_db *db, size_t *n) {
    pthread_mutex_lock(&db->mu);
    db_coll **all = malloc((db->coll_count ? db->coll_count : 1) * sizeof *all);
    *n = 0;
    if (all)
        for (size_t i = 0; i < db->map_size; i++)
            for (db_coll *e = db->map[i]; e; e = e->next) {
                atomic_fetch_add(&e->refs, 1);
                all[(*n)++] = e;
            }
    pthread_mutex_unlock(&db->mu);
    return all;
}

static void problem_add(tdb_db *db, const char *coll, const char *kind, const char *msg) {
    pthread_mutex_lock(&db->mu);
    if (db->problems.len < DB_MAX_PROBLEMS_BYTES) {
        if (db->problems.len) buf_putc(&db->problems, ',');
        buf_puts(&db->problems, "{\"collection\":");
        json_write_string(&db->problems, coll, strlen(coll));
        buf_printf(&db->problems, ",\"kind\":\"%s\",\"message\":", kind);
        json_write_string(&db->problems, msg, strlen(msg));
        buf_putc(&db->problems, '}');
    }
    pthread_mutex_unlock(&db->mu);
}

int db_storage_options(tdb_db *db, const db_coll *c, st_options *so, st_text_field **tf_out,
                       tdb_error *err) {
    *so = (st_options){
        .fsync = db->opts.fsync,
        .fsync_interval_ms = db->opts.fsync_interval_ms,
        .wal_file_max_bytes = db->opts.wal_file_max_bytes,
        .memtable_max_bytes = db->opts.memtable_max_bytes,
        .memtable_max_docs = db->opts.memtable_max_docs,
        .compaction_min_segments = db->opts.compaction_min_segments,
        .compaction_idle_merge_ms = db->opts.compaction_idle_merge_ms > 0
                                        ? (uint64_t)db->opts.compaction_idle_merge_ms : 0,
        .background = db->background,
    };
    /* Index configuration from the schema: full-text fields in declaration
     * order (st_text_field_find maps names back), and the per-segment HNSW
     * graph with its codes. st_open copies it all. */
    const coll_schema *sc = &c->schema;
    st_text_field *tf = calloc(sc->attr_count ? sc->attr_count : 1, sizeof *tf);
    if (tf == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < sc->attr_count; i++) {
        const attr_decl *a = &sc->attrs[i];
        if (!a->full_text) continue;
        st_text_field *f = &tf[so->n_text_fields++];
        f->name = a->name;
        f->analyzer.language = a->language;
        /* Stemming and stopwords mean nothing without a language. */
        f->analyzer.stemming = a->language != NULL && a->stemming;
        f->analyzer.stopwords = a->language != NULL && a->stopwords;
    }
    so->text_fields = tf;
    if (c->dimension > 0) {
        so->vector_index.m = (uint32_t)(sc->hnsw_m > 0 ? sc->hnsw_m : DB_DEFAULT_HNSW_M);
        so->vector_index.ef_construction =
            (uint32_t)(sc->ef_construction > 0 ? sc->ef_construction : DB_DEFAULT_EF_CONSTRUCTION);
        so->vector_index.quantization = strcmp(sc->quantization, "sq8") == 0      ? ST_QUANT_SQ8
                                        : strcmp(sc->quantization, "rabitq") == 0 ? ST_QUANT_RABITQ
                                                                                  : ST_QUANT_NONE;
        so->vector_index.build_threads = ST_DEFAULT_BUILD_THREADS;
    }
    *tf_out = tf;
    return 0;
}

int db_coll_storage(tdb_db *db, db_coll *c, st_collection **out, tdb_error *err) {
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (c->dropped) {
        rc = tdb_err(err, TDB_ENOTFOUND, "collection_not_found", "collection \"%s\" does not exist",
                     c->name);
        goto done;
    }
    if (c->st == NULL) {
        pthread_mutex_lock(&c->state_mu);
        bool cold = c->tier == TDB_TIER_COLD;
        pthread_mutex_unlock(&c->state_mu);
        if (cold) {
            /* Callers promote first (db_coll_begin); a cold collection's
             * directory must not be recreated empty. */
            rc = tdb_err(err, TDB_EBUSY, "collection_moving",
                         "collection \"%s\" is being moved between tiers; retry", c->name);
            goto done;
        }
        char *dir = db_coll_dir(db, c);
        if (dir == NULL) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
            goto done;
        }
        st_options so;
        st_text_field *tf = NULL;
        if ((rc = db_storage_options(db, c, &so, &tf, err)) != 0) {
            free(dir);
            goto done;
        }
        /* An in-place restore that failed between its renames leaves the
         * contents in <dir>.old (snapshot.c): take them back rather than
         * open an empty directory over them. */
        size_t old_len = strlen(dir) + 8;
        char *old = malloc(old_len);
        if (old) snprintf(old, old_len, "%s.old", dir);
        if (old && !fio_exists(dir) && fio_exists(old) && fio_rename(old, dir) != 0) {
            rc = tdb_err(err, TDB_EIO, "io_error",
                         "collection \"%s\": cannot move its data back from %s", c->name, old);
            free(old);
            free(tf);
            free(dir);
            goto done;
        }
        free(old);
        rc = st_open(dir, c->dimension, c->metric, &so, &c->st, err);
        free(tf);
        free(dir);
        if (rc != 0) {
            log_msg(LOG_ERROR, "collection %s: cannot open storage: %s", c->name,
                    err ? err->message : tdb_strerror(rc));
            goto done;
        }
        const st_recovery *rec = st_recovery_get(c->st);
        if (rec && rec->corrupt) problem_add(db, c->name, "wal_corruption", rec->message);
    }
    *out = c->st;
done:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

char *db_coll_dir(tdb_db *db, const db_coll *c) {
    char sub[32];
    snprintf(sub, sizeof sub, "%lld", (long long)c->id);
    return path_join(db->collections_dir, sub);
}

void db_coll_stats(db_coll *c, st_stats *out) {
    pthread_mutex_lock(&c->mu);
    if (c->st) st_stats_get(c->st, out);
    else if (c->cached_valid) *out = c->cached;
    else memset(out, 0, sizeof *out);
    pthread_mutex_unlock(&c->mu);
}

/* A demotion may slip in between promoting a cold collection and taking
 * the read lock; a few retries cover it (each needs a whole move). */
#define DB_BEGIN_RETRIES 4

int db_coll_begin(tdb_db *db, const char *name, db_coll **coll, st_collection **st,
                  tdb_error *err) {
    *coll = NULL;
    db_coll *c;
    int rc = db_coll_get(db, name, &c, err);
    if (rc) return rc;
    for (int attempt = 0;; attempt++) {
        /* API.md: an access to a cold collection brings it back first. */
        if ((rc = db_tier_promote_cold(db, c, err)) != 0) break;
        pthread_rwlock_rdlock(&c->rw);
        pthread_mutex_lock(&c->state_mu);
        bool cold = c->tier == TDB_TIER_COLD;
        pthread_mutex_unlock(&c->state_mu);
        if (cold && attempt < DB_BEGIN_RETRIES) {
            pthread_rwlock_unlock(&c->rw);
            continue;
        }
        rc = db_coll_storage(db, c, st, err);
        if (rc) pthread_rwlock_unlock(&c->rw);
        break;
    }
    if (rc) {
        db_coll_put(c);
        return rc;
    }
    db_tier_touch(db, c);
    *coll = c;
    return 0;
}

void db_coll_end(db_coll *c) {
    if (c == NULL) return;
    pthread_rwlock_unlock(&c->rw);
    db_coll_put(c);
}

/* Removes directories under collections/ that no catalog row owns
 * (leftovers of a drop interrupted by a crash). */
static void remove_orphans(tdb_db *db, const catalog_row *rows, size_t n) {
    DIR *d = opendir(db->collections_dir);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *end;
        long long id = strtoll(e->d_name, &end, 10);
        if (strcmp(end, ".old") == 0) {
            /* An in-place restore stopped between its two renames
             * (snapshot.c): the old contents go back. */
            char live[32];
            snprintf(live, sizeof live, "%lld", id);
            char *from = path_join(db->collections_dir, e->d_name);
            char *to = path_join(db->collections_dir, live);
            if (from && to && !fio_exists(to)) {
                log_msg(LOG_WARN, "restoring %s to %s after an interrupted restore", from, to);
                fio_rename(from, to);
            }
            free(from);
            free(to);
        }
        bool owned = false;
        /* A cold collection has no local directory (a leftover is from a
         * move that committed before it could delete it); an .incoming
         * directory is an interrupted download (tier/copy.c invariant 2). */
        if (*end == '\0')
            for (size_t i = 0; i < n; i++)
                if (rows[i].id == id && rows[i].tier != TDB_TIER_COLD) owned = true;
        if (!owned) {
            char *p = path_join(db->collections_dir, e->d_name);
            if (p) {
                log_msg(LOG_INFO, "removing %s: no collection owns it", p);
                fio_rmtree(p);
                free(p);
            }
        }
    }
    closedir(d);
}

int tdb_open(const tdb_options *opts, tdb_db **out, tdb_error *err) {
    *out = NULL;
    tdb_db *db = calloc(1, sizeof *db);
    if (db == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    db->lock_fd = -1;
    pthread_mutex_init(&db->mu, NULL);
    db->opts = *opts;
    /* The query memory budget is process-wide (docs/reliability.md); the
     * last tdb_open sets it. */
    db_query_memory_set(opts->query_memory_budget, 0);
    int rc = 0;
    catalog_row *rows = NULL;
    size_t nrows = 0;
    db->data_dir = strdup(opts->data_dir ? opts->data_dir : "./data");
    db->collections_dir = path_join(db->data_dir, "collections");
    if (!db->data_dir || !db->collections_dir) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    int e;
    if ((e = fio_mkdir_p(db->collections_dir)) != 0) {
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot create data directory %s: %s",
                     db->collections_dir, strerror(-e));
        goto fail;
    }
    if (opts->object_store) {
        db->object_store = strdup(opts->object_store);
    } else {
        /* Absolute, so snapshot locations name a file anyone can open. */
        char *abs = realpath(db->data_dir, NULL);
        char *objects = path_join(abs ? abs : db->data_dir, "objects");
        free(abs);
        size_t n = strlen(objects ? objects : "") + 8;
        db->object_store = malloc(n);
        if (db->object_store && objects) snprintf(db->object_store, n, "file://%s", objects);
        free(objects);
    }
    db->opts.data_dir = db->data_dir;
    db->opts.object_store = db->object_store;
    if (db->opts.memtable_max_docs == 0) db->opts.memtable_max_docs = DB_DEFAULT_MEMTABLE_MAX_DOCS;
    if (db->opts.background_threads == 0) db->opts.background_threads = 1;
    clock_use_test(opts->test_clock);

    char *lock_path = path_join(db->data_dir, "LOCK");
    db->lock_fd = lock_path ? open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
    free(lock_path);
    if (db->lock_fd < 0 || flock(db->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = tdb_err(err, TDB_EBUSY, "data_dir_locked",
                     "data directory %s is in use by another process (or not writable)",
                     db->data_dir);
        goto fail;
    }
    char *cat_path = path_join(db->data_dir, "catalog.db");
    rc = cat_path ? catalog_open(cat_path, &db->cat, err)
                  : tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    free(cat_path);
    if (rc) goto fail;
    if ((rc = db_tiering_open(db, err)) != 0) goto fail;
    db->background = pool_create(db->opts.background_threads);
    if (db->background == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "cannot start background workers");
        goto fail;
    }
    if ((rc = catalog_list(db->cat, &rows, &nrows, err)) != 0) goto fail;
    for (size_t i = 0; i < nrows; i++) {
        coll_schema schema;
        if ((rc = schema_parse_config(rows[i].config, &schema, err)) != 0) goto fail;
        db_coll *c = coll_new(rows[i].id, rows[i].name, rows[i].dimension, rows[i].metric, &schema,
                              rows[i].created_at_ms);
        if (c == NULL) {
            schema_free(&schema);
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
            goto fail;
        }
        c->tier = rows[i].tier;
        c->pinned = rows[i].pinned;
        c->access.last_access_ms = rows[i].last_accessed_at_ms;
        c->access.access_count = (uint64_t)rows[i].access_count;
        c->access.window_start_ms = rows[i].access_window_start_ms;
        c->access.window_count = (uint32_t)rows[i].window_count;
        c->snapshot_id = rows[i].snapshot_id ? strdup(rows[i].snapshot_id) : NULL;
        c->object_bytes = rows[i].object_bytes;
        c->cold_documents = rows[i].cold_documents;
        c->cold_since_ms = rows[i].cold_since_ms;
        c->updated_at_ms = rows[i].updated_at_ms;
        if (registry_add(db, c) != 0) {
            coll_free(c);
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
            goto fail;
        }
    }
    remove_orphans(db, rows, nrows);
    char *tmp = path_join(db->data_dir, "tmp"); /* snapshot files in flight */
    if (tmp) fio_rmtree(tmp);
    free(tmp);
    catalog_rows_free(rows, nrows);
    rows = NULL;
    nrows = 0;
    db_snapshots_gc(db);
    if ((rc = db_tiering_start(db, err)) != 0) goto fail;
    log_msg(LOG_INFO, "opened %s: %zu collections", db->data_dir, db->coll_count);
    *out = db;
    return 0;
fail:
    catalog_rows_free(rows, nrows);
    tdb_close(db);
    return rc;
}

void tdb_close(tdb_db *db) {
    if (db == NULL) return;
    db_tiering_close(db);
    /* Collections first (their background jobs run on db->background). */
    for (size_t i = 0; i < db->map_size; i++) {
        db_coll *e = db->map[i];
        while (e) {
            db_coll *next = e->next;
            pthread_mutex_lock(&e->mu);
            st_close(e->st);
            e->st = NULL;
            e->dropped = true;
            pthread_mutex_unlock(&e->mu);
            db_coll_put(e);
            e = next;
        }
    }
    free(db->map);
    pool_destroy(db->background);
    catalog_close(db->cat);
    objstore_close(db->store);
    buf_free(&db->last_cycle);
    if (db->lock_fd >= 0) close(db->lock_fd);
    buf_free(&db->problems);
    free(db->data_dir);
    free(db->collections_dir);
    free(db->object_store);
    pthread_mutex_destroy(&db->mu);
    free(db);
}

int db_write_collection(tdb_db *db, db_coll *c, buf *b, tdb_error *err) {
    /* Reading metadata is no access (API.md): a warm collection whose files
     * are closed and a cold one report what was recorded when they closed. */
    pthread_mutex_lock(&c->state_mu);
    tdb_tier tier = c->tier;
    bool pinned = c->pinned;
    int64_t cold_docs = c->cold_documents;
    pthread_mutex_unlock(&c->state_mu);
    pthread_mutex_lock(&c->mu);
    bool need_open = c->st == NULL && !c->cached_valid && tier != TDB_TIER_COLD;
    pthread_mutex_unlock(&c->mu);
    if (need_open) {
        st_collection *st = NULL;
        int rc = db_coll_storage(db, c, &st, err);
        if (rc) return rc;
    }
    st_stats s;
    db_coll_stats(c, &s);
    if (tier == TDB_TIER_COLD) {
        memset(&s, 0, sizeof s);
        s.documents = s.indexed_documents = (uint64_t)cold_docs;
    }
    char created[32];
    clock_format_rfc3339(c->created_at_ms, created);
    buf_puts(b, "{\"name\":");
    json_write_string(b, c->name, strlen(c->name));
    buf_printf(b, ",\"dimension\":%u,\"metric\":\"%s\",\"attributes\":", c->dimension,
               metric_name(c->metric));
    schema_write_attributes(b, &c->schema);
    buf_puts(b, ",\"index\":");
    schema_write_index(b, &c->schema);
    buf_printf(b,
               ",\"created_at\":\"%s\",\"documents\":%llu,\"indexed_documents\":%llu,"
               "\"segments\":%u,\"disk_bytes\":%llu,\"memory_bytes\":%llu,\"tier\":\"%s\","
               "\"pinned\":%s}",
               created, (unsigned long long)s.documents, (unsigned long long)s.indexed_documents,
               s.segments, (unsigned long long)s.disk_bytes, (unsigned long long)s.memory_bytes,
               tier_name(tier), pinned ? "true" : "false");
    return 0;
}

static int finish_json(buf *b, char **out_json, tdb_error *err) {
    if (buf_failed(b)) {
        buf_free(b);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory building the response");
    }
    *out_json = buf_steal(b);
    return 0;
}

int tdb_collection_create_json(tdb_db *db, const char *body, size_t body_len, char **out_json,
                               tdb_error *err) {
    *out_json = NULL;
    json_doc *doc = NULL;
    coll_schema schema = {0};
    char name[DB_MAX_NAME_BYTES + 1];
    uint32_t dim;
    tdb_metric metric;
    buf cfg = BUF_INIT, b = BUF_INIT;
    db_coll *c = NULL;
    int rc = db_parse_body(body, body_len, &doc, err);
    if (rc) goto done;
    if ((rc = schema_parse_create(json_root(doc), name, &dim, &metric, &schema, err)) != 0) goto done;
    schema_write_config(&cfg, &schema);
    if (buf_failed(&cfg)) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    int64_t now = clock_now_ms();
    catalog_row row = {.name = name, .config = cfg.data, .dimension = dim, .metric = metric,
                       .created_at_ms = now, .updated_at_ms = now, .tier = TDB_TIER_HOT,
                       .last_accessed_at_ms = now, .access_window_start_ms = now};
    /* db->mu held across the insert: the registry and the catalog agree on
     * which names exist (invariant 1). */
    pthread_mutex_lock(&db->mu);
    if (registry_find(db, name)) {
        pthread_mutex_unlock(&db->mu);
        rc = tdb_err(err, TDB_EEXIST, "collection_exists", "collection \"%s\" already exists", name);
        goto done;
    }
    rc = catalog_insert(db->cat, &row, err);
    if (rc == 0) {
        c = coll_new(row.id, name, dim, metric, &schema, now);
        if (c == NULL || registry_add(db, c) != 0) {
            /* Undo the insert so the catalog and the registry agree. */
            catalog_delete(db->cat, row.id, NULL);
            if (c) {
                memset(&c->schema, 0, sizeof c->schema);
                coll_free(c);
                c = NULL;
            }
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        } else {
            memset(&schema, 0, sizeof schema); /* now owned by c */
            atomic_fetch_add(&c->refs, 1);
        }
    }
    pthread_mutex_unlock(&db->mu);
    if (rc) goto done;
    log_msg(LOG_INFO, "created collection %s (id %lld, dimension %u, %s)", name, (long long)row.id,
            dim, metric_name(metric));
    if ((rc = db_write_collection(db, c, &b, err)) != 0) {
        /* Its storage could not be created: a failed create leaves no
         * collection behind (a leftover directory is an orphan that the
         * next open removes). */
        tdb_collection_drop(db, name, false, NULL);
        goto done;
    }
    rc = finish_json(&b, out_json, err);
done:
    db_coll_put(c);
    buf_free(&cfg);
    buf_free(&b);
    schema_free(&schema);
    json_doc_free(doc);
    return rc;
}

int tdb_collection_get_json(tdb_db *db, const char *name, char **out_json, tdb_error *err) {
    *out_json = NULL;
    db_coll *c;
    int rc = db_coll_get(db, name, &c, err);
    if (rc) return rc;
    buf b = BUF_INIT;
    pthread_rwlock_rdlock(&c->rw);
    rc = db_write_collection(db, c, &b, err);
    pthread_rwlock_unlock(&c->rw);
    db_coll_put(c);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    return finish_json(&b, out_json, err);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp((*(db_coll *const *)a)->name, (*(db_coll *const *)b)->name);
}

int tdb_collection_list_json(tdb_db *db, int tier, char **out_json, tdb_error *err) {
    *out_json = NULL;
    pthread_mutex_lock(&db->mu);
    db_coll **all = malloc((db->coll_count ? db->coll_count : 1) * sizeof *all);
    size_t n = 0;
    if (all)
        for (size_t i = 0; i < db->map_size; i++)
            for (db_coll *e = db->map[i]; e; e = e->next) {
                pthread_mutex_lock(&e->state_mu);
                int t = (int)e->tier;
                pthread_mutex_unlock(&e->state_mu);
                if (tier >= 0 && t != tier) continue;
                atomic_fetch_add(&e->refs, 1);
                all[n++] = e;
            }
    pthread_mutex_unlock(&db->mu);
    if (all == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    qsort(all, n, sizeof *all, name_cmp);
    buf b = BUF_INIT;
    int rc = 0;
    buf_puts(&b, "{\"collections\":[");
    size_t written = 0;
    for (size_t i = 0; i < n; i++) {
        size_t mark = b.len;
        if (written) buf_putc(&b, ',');
        pthread_rwlock_rdlock(&all[i]->rw);
        tdb_error e2;
        int r = db_write_collection(db, all[i], &b, &e2);
        pthread_rwlock_unlock(&all[i]->rw);
        if (r == TDB_ENOTFOUND) { /* dropped meanwhile */
            b.len = mark;
            continue;
        }
        if (r != 0 && rc == 0) {
            rc = r;
            if (err) *err = e2;
        }
        written++;
    }
    buf_puts(&b, "]}");
    for (size_t i = 0; i < n; i++) db_coll_put(all[i]);
    free(all);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    return finish_json(&b, out_json, err);
}

int tdb_collection_drop(tdb_db *db, const char *name, bool keep_snapshots, tdb_error *err) {
    db_coll *c;
    int rc = db_coll_get(db, name, &c, err);
    if (rc) return rc;
    /* Write mode: waits for requests in flight on this collection. */
    pthread_rwlock_wrlock(&c->rw);
    pthread_mutex_lock(&c->mu);
    if (c->dropped) {
        rc = tdb_err(err, TDB_ENOTFOUND, "collection_not_found", "collection \"%s\" does not exist",
                     name);
        goto unlock;
    }
    char sub[48], gone[48];
    snprintf(sub, sizeof sub, "%lld", (long long)c->id);
    snprintf(gone, sizeof gone, "%lld.dropped", (long long)c->id);
    char *dir = path_join(db->collections_dir, sub);
    char *trash = path_join(db->collections_dir, gone);
    if ((rc = catalog_delete(db->cat, c->id, err)) != 0) goto free_paths;
    if (!keep_snapshots) db_snapshots_drop(db, name);
    st_close(c->st);
    c->st = NULL;
    c->dropped = true;
    if (dir && trash && fio_exists(dir)) {
        int e = fio_rename(dir, trash);
        if (e == 0) e = fio_rmtree(trash);
        /* The catalog row is gone: a leftover directory is an orphan that
         * the next open removes, so this is logged, not returned. */
        if (e != 0) log_msg(LOG_WARN, "collection %s: removing %s: %s", name, dir, strerror(-e));
    }
    /* Cold copies: every object under collections/<id>/. */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "collections/%lld", (long long)c->id);
    tdb_error oerr;
    if (tier_copy_delete(db->store, prefix, &oerr) != 0)
        log_msg(LOG_WARN, "collection %s: removing its object-store copies: %s", name, oerr.message);
    pthread_mutex_lock(&db->mu);
    registry_remove(db, c);
    pthread_mutex_unlock(&db->mu);
    db_coll_put(c); /* the registry's reference */
    log_msg(LOG_INFO, "dropped collection %s", name);
free_paths:
    free(dir);
    free(trash);
unlock:
    pthread_mutex_unlock(&c->mu);
    pthread_rwlock_unlock(&c->rw);
    db_coll_put(c);
    return rc;
}

size_t tdb_collection_count(tdb_db *db) {
    pthread_mutex_lock(&db->mu);
    size_t n = db->coll_count;
    pthread_mutex_unlock(&db->mu);
    return n;
}

int tdb_problems_json(tdb_db *db, char **out_json, tdb_error *err) {
    buf b = BUF_INIT;
    buf_putc(&b, '[');
    pthread_mutex_lock(&db->mu);
    if (db->problems.len) buf_append(&b, db->problems.data, db->problems.len);
    /* Collections refusing writes after a failed fsync (PostgreSQL's
     * lesson: report, never retry and pretend), and those whose flushes or
     * compactions fail and are being retried. Referenced under db->mu,
     * inspected after it: db_coll_storage takes c->mu before db->mu. */
    pthread_mutex_unlock(&db->mu);
    size_t n = 0;
    db_coll **all = db_colls_ref(db, &n);
    for (size_t i = 0; i < n; i++) {
        db_coll *e = all[i];
        pthread_mutex_lock(&e->mu);
        st_stats s;
        bool ro = false;
        char msg[512] = "";
        const char *kind = NULL;
        if (e->st) {
            st_stats_get(e->st, &s);
            ro = s.read_only;
            if (!ro) kind = st_write_problem(e->st, msg, sizeof msg);
        }
        pthread_mutex_unlock(&e->mu);
        if (ro) {
            if (b.len > 1) buf_putc(&b, ',');
            buf_puts(&b, "{\"collection\":");
            json_write_string(&b, e->name, strlen(e->name));
            buf_puts(&b, ",\"kind\":\"read_only\",\"message\":\"writes are refused after a failed "
                         "fsync; the data on disk is intact up to the last acknowledged "
                         "write; fix the disk and restart to recover\"}");
        } else if (kind) {
            /* Retried by the storage layer (a full disk, a failing flush or
             * compaction): writes resume by themselves once it succeeds. */
            if (b.len > 1) buf_putc(&b, ',');
            buf_puts(&b, "{\"collection\":");
            json_write_string(&b, e->name, strlen(e->name));
            buf_printf(&b, ",\"kind\":\"%s\",\"message\":", kind);
            json_write_string(&b, msg, strlen(msg));
            buf_putc(&b, '}');
        }
        db_coll_put(e);
    }
    free(all);
    buf_putc(&b, ']');
    return finish_json(&b, out_json, err);
}

int tdb_flush_all(tdb_db *db, tdb_error *err) {
    size_t n = 0;
    db_coll **all = db_colls_ref(db, &n);
    if (all == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_rwlock_rdlock(&all[i]->rw);
        pthread_mutex_lock(&all[i]->mu);
        st_collection *st = all[i]->dropped ? NULL : all[i]->st;
        pthread_mutex_unlock(&all[i]->mu);
        if (st && rc == 0) rc = st_flush(st, err);
        pthread_rwlock_unlock(&all[i]->rw);
        db_coll_put(all[i]);
    }
    free(all);
    return rc;
}

int tdb_clock_advance(tdb_db *db, int64_t delta_ms, int64_t *now_ms, tdb_error *err) {
    if (!db->opts.test_clock)
        return tdb_err(err, TDB_ENOTFOUND, "not_found",
                       "the test clock is off: start the server with --test-clock");
    if (delta_ms < 0)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "the clock only moves forward");
    *now_ms = clock_advance_ms(delta_ms);
    return 0;
}
