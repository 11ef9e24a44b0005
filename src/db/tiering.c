/*
 * tiering.c: tier moves, the policy cycle and its background worker, and
 * the tiering routes of the public API.
 * Layer: db. Uses tier/ for decisions and object-store copies, storage/
 * for flush and close, the catalog for the commit point of every move.
 *
 * A move, in states (docs/tiering.md has the same picture):
 *
 *   hot --flush, close files--> warm --upload copy, verify, commit,
 *    ^                          |  ^   delete local files-------> cold
 *    +----open, commit----------+  +--download to .incoming, verify,
 *                                     rename, commit, delete copy--+
 *
 * Invariants:
 *   (1) The catalog row is the truth: a move changes it in one
 *       transaction, after the new copy is complete and verified and before
 *       the old copy is deleted. A crash at any step leaves the collection
 *       readable in the tier the catalog names; tdb_open removes what the
 *       interrupted move left behind (a local directory of a cold
 *       collection, an .incoming download, and in the object store every
 *       cold copy the catalog does not name: remove_stale_copies).
 *   (2) No lock is held across object-store I/O: uploads run while requests
 *       continue; the commit step takes the collection's rw lock in write
 *       mode and aborts the move if the collection changed meanwhile
 *       (a write, flush or compaction), to be retried by a later cycle.
 *   (3) move_mu serializes the moves of one collection; cycles run one at a
 *       time (cycle_mu).
 *
 * Threading: the worker thread wakes every worker_interval_ms (real time)
 * and runs a cycle; decisions use the database clock, so tests that
 * advance the test clock see them at their next (or a manual) cycle.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db_int.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/log.h"

#define DB_DEFAULT_HOT_TTL_MS (6LL * 3600 * 1000)
#define DB_DEFAULT_WARM_TTL_MS (7LL * 86400 * 1000)
#define DB_DEFAULT_PROMOTION_THRESHOLD 10
#define DB_DEFAULT_ACCESS_WINDOW_MS (3600LL * 1000)
#define DB_DEFAULT_WORKER_INTERVAL_MS (300LL * 1000)
#define DB_DEFAULT_MAX_MIGRATIONS 16
#define DB_MAX_REPORT_ERRORS 20 /* a cycle report stays small */

void db_tier_row(const db_coll *c, catalog_row *row) {
    row->id = c->id;
    row->tier = c->tier;
    row->pinned = c->pinned;
    row->last_accessed_at_ms = c->access.last_access_ms;
    row->access_count = (int64_t)c->access.access_count;
    row->access_window_start_ms = c->access.window_start_ms;
    row->window_count = c->access.window_count;
    row->snapshot_id = c->snapshot_id;
    row->object_bytes = c->object_bytes;
    row->cold_documents = c->cold_documents;
    row->cold_since_ms = c->cold_since_ms;
    row->updated_at_ms = c->updated_at_ms;
}

void db_tier_touch(tdb_db *db, db_coll *c) {
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&c->state_mu);
    tier_access_record(&c->access, now, db->policy.access_window_ms);
    c->dirty = true;
    pthread_mutex_unlock(&c->state_mu);
}

/* Commits c's tier state to the catalog (the commit point of a move).
 * Caller holds move_mu; takes state_mu itself. */
static int commit_state(tdb_db *db, db_coll *c, tdb_error *err) {
    catalog_row row = {0};
    pthread_mutex_lock(&c->state_mu);
    c->updated_at_ms = clock_now_ms();
    db_tier_row(c, &row);
    char *snap = row.snapshot_id ? strdup(row.snapshot_id) : NULL;
    row.snapshot_id = snap;
    c->dirty = false;
    pthread_mutex_unlock(&c->state_mu);
    int rc = catalog_update_state(db->cat, &row, 1, err);
    free(snap);
    return rc;
}

static tdb_tier tier_of(db_coll *c) {
    pthread_mutex_lock(&c->state_mu);
    tdb_tier t = c->tier;
    pthread_mutex_unlock(&c->state_mu);
    return t;
}

/* Closes c's storage, keeping its stats for metadata reads. Caller holds
 * rw in write mode. */
static void close_storage(db_coll *c) {
    pthread_mutex_lock(&c->mu);
    if (c->st) {
        st_stats_get(c->st, &c->cached);
        c->cached_valid = true;
        st_close(c->st);
        c->st = NULL;
    }
    pthread_mutex_unlock(&c->mu);
}

static void set_tier(db_coll *c, tdb_tier t) {
    pthread_mutex_lock(&c->state_mu);
    c->tier = t;
    pthread_mutex_unlock(&c->state_mu);
}

/* hot -> warm: flush the memtable, release RAM, keep the files. */
static int move_hot_to_warm(tdb_db *db, db_coll *c, tdb_error *err) {
    int rc = 0;
    pthread_mutex_lock(&c->move_mu);
    if (tier_of(c) != TDB_TIER_HOT) goto done;
    pthread_rwlock_rdlock(&c->rw);
    pthread_mutex_lock(&c->mu);
    st_collection *st = c->dropped ? NULL : c->st;
    pthread_mutex_unlock(&c->mu);
    if (st) rc = st_flush(st, err); /* requests go on meanwhile */
    pthread_rwlock_unlock(&c->rw);
    if (rc) goto done;
    pthread_rwlock_wrlock(&c->rw);
    close_storage(c);
    set_tier(c, TDB_TIER_WARM);
    rc = commit_state(db, c, err);
    if (rc) set_tier(c, TDB_TIER_HOT); /* files are intact either way */
    pthread_rwlock_unlock(&c->rw);
done:
    pthread_mutex_unlock(&c->move_mu);
    return rc;
}

/* warm -> hot: open the storage (segments mapped, memtable ready) and
 * start reading its segment files into memory (st_preload: readahead in
 * the kernel, the move does not wait for it). */
static int move_warm_to_hot(tdb_db *db, db_coll *c, tdb_error *err) {
    int rc = 0;
    pthread_mutex_lock(&c->move_mu);
    if (tier_of(c) != TDB_TIER_WARM) goto done;
    pthread_rwlock_rdlock(&c->rw);
    st_collection *st;
    rc = db_coll_storage(db, c, &st, err);
    if (rc == 0 && st_preload(st, NULL) != 0)
        log_msg(LOG_WARN, "tiering: collection %lld: some segment files could not be preloaded",
                (long long)c->id);
    pthread_rwlock_unlock(&c->rw);
    if (rc) goto done;
    set_tier(c, TDB_TIER_HOT);
    rc = commit_state(db, c, err);
    if (rc) set_tier(c, TDB_TIER_WARM);
done:
    pthread_mutex_unlock(&c->move_mu);
    return rc;
}

typedef struct change_mark {
    st_collection *st;
    uint64_t wal_bytes, flushes, compactions;
} change_mark;

static change_mark mark_of(db_coll *c) {
    change_mark m = {0};
    pthread_mutex_lock(&c->mu);
    m.st = c->st;
    if (c->st) {
        st_stats s;
        st_stats_get(c->st, &s);
        m.wal_bytes = s.wal_bytes_written;
        m.flushes = s.flushes;
        m.compactions = s.compactions;
    }
    pthread_mutex_unlock(&c->mu);
    return m;
}

/* Writes the collection as Parquet to DATA/tmp and uploads it as
 * prefix/data.parquet. Holds the read lock only while reading local data. */
static int upload_parquet(tdb_db *db, db_coll *c, const char *prefix, uint64_t *bytes,
                          tdb_error *err) {
    char file[64], key[OBJSTORE_MAX_KEY_BYTES + 1];
    snprintf(file, sizeof file, "cold-%lld.parquet", (long long)c->id);
    snprintf(key, sizeof key, "%s/data.parquet", prefix);
    char *tmpdir = db_tmp_path(db, "");
    char *path = db_tmp_path(db, file);
    int rc = 0;
    if (!tmpdir || !path || fio_mkdir_p(tmpdir) != 0) {
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot create the temporary directory");
        goto done;
    }
    uint64_t docs = 0;
    pthread_rwlock_rdlock(&c->rw);
    st_collection *st;
    rc = db_coll_storage(db, c, &st, err);
    if (rc == 0) rc = db_write_parquet(c, st, path, &docs, bytes, err);
    pthread_rwlock_unlock(&c->rw);
    if (rc == 0) rc = objstore_put_file(db->store, key, path, err);
done:
    if (path) fio_unlink(path);
    free(path);
    free(tmpdir);
    return rc;
}

/* cold -> warm from the Parquet copy alone: rebuilds segments and indexes
 * in dir (which must not exist) through dir.incoming. */
static int download_parquet(tdb_db *db, db_coll *c, const char *prefix, const char *dir,
                            tdb_error *err) {
    char file[64], key[OBJSTORE_MAX_KEY_BYTES + 1];
    snprintf(file, sizeof file, "warm-%lld.parquet", (long long)c->id);
    snprintf(key, sizeof key, "%s/data.parquet", prefix);
    char *tmpdir = db_tmp_path(db, "");
    char *path = db_tmp_path(db, file);
    size_t n = strlen(dir) + 16;
    char *incoming = malloc(n);
    int rc = 0;
    if (!tmpdir || !path || !incoming || fio_mkdir_p(tmpdir) != 0) {
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot create the temporary directory");
        goto done;
    }
    snprintf(incoming, n, "%s.incoming", dir);
    fio_rmtree(incoming);
    if ((rc = objstore_get_file(db->store, key, path, err)) != 0) goto done;
    st_options so;
    st_text_field *tf = NULL;
    if ((rc = db_storage_options(db, c, &so, &tf, err)) != 0) goto done;
    st_collection *st = NULL;
    rc = st_open(incoming, c->dimension, c->metric, &so, &st, err);
    free(tf);
    if (rc == 0) rc = db_load_parquet(path, c->dimension, st, err);
    if (rc == 0) rc = st_flush(st, err);
    st_close(st);
    int e = rc == 0 ? fio_rename(incoming, dir) : 0;
    if (e != 0) rc = tdb_err(err, TDB_EIO, "io_error", "cannot move %s into place: %s", incoming,
                             strerror(-e));
    if (rc) fio_rmtree(incoming);
done:
    if (path) fio_unlink(path);
    free(path);
    free(tmpdir);
    free(incoming);
    return rc;
}

/* warm -> cold: upload a verified copy, commit, then delete local files. */
static int move_warm_to_cold(tdb_db *db, db_coll *c, tdb_error *err) {
    int rc = 0;
    char *dir = NULL;
    char prefix[96] = "";
    bool uploaded = false;
    pthread_mutex_lock(&c->move_mu);
    if (tier_of(c) != TDB_TIER_WARM) goto done;
    dir = db_coll_dir(db, c);
    if (dir == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    /* Everything into segments first, so the copy is MANIFEST + segments. */
    pthread_rwlock_rdlock(&c->rw);
    st_collection *st;
    rc = db_coll_storage(db, c, &st, err);
    if (rc == 0) rc = st_flush(st, err);
    change_mark before = mark_of(c);
    st_stats stats;
    db_coll_stats(c, &stats);
    pthread_rwlock_unlock(&c->rw);
    if (rc) goto done;
    snprintf(prefix, sizeof prefix, "collections/%lld/%lld-%llu", (long long)c->id,
             (long long)clock_now_ms(), (unsigned long long)(clock_mono_ns() % 1000000));
    tier_copy_info info;
    uint64_t t0 = clock_mono_ns();
    uploaded = true;
    /* The portable copy first (DESIGN.md: Parquet is the open copy; it is
     * also what cold -> warm falls back to if the segment copy is unusable). */
    uint64_t pq_bytes = 0;
    if ((rc = upload_parquet(db, c, prefix, &pq_bytes, err)) != 0) goto done;
    rc = tier_copy_upload(db->store, dir, prefix, &info, err); /* invariant 2: no lock */
    if (rc) goto done;
    info.bytes += pq_bytes;
    pthread_rwlock_wrlock(&c->rw);
    /* Writers are excluded now: flush what they applied after the upload's
     * flush (local I/O only); if that or a compaction changed the MANIFEST,
     * the copy is stale and the move is retried later. Without this, writes
     * acknowledged during the upload would be lost with the local files. */
    pthread_mutex_lock(&c->mu);
    st_collection *live = c->st;
    pthread_mutex_unlock(&c->mu);
    int frc = live ? st_flush(live, err) : 0;
    change_mark after = mark_of(c);
    if (frc != 0 || !tier_copy_current(dir, &info) ||
        before.st != after.st || before.compactions != after.compactions) {
        pthread_rwlock_unlock(&c->rw);
        rc = tdb_err(err, TDB_EBUSY, "collection_changed",
                     "collection \"%s\" changed while its cold copy was uploaded; the move will be "
                     "retried",
                     c->name);
        goto done;
    }
    close_storage(c);
    pthread_mutex_lock(&c->state_mu);
    char *old_snapshot = c->snapshot_id;
    c->snapshot_id = strdup(prefix);
    c->tier = TDB_TIER_COLD;
    c->object_bytes = (int64_t)info.bytes;
    c->cold_documents = (int64_t)stats.documents;
    c->cold_since_ms = clock_now_ms();
    pthread_mutex_unlock(&c->state_mu);
    rc = commit_state(db, c, err);
    if (rc) {
        pthread_mutex_lock(&c->state_mu);
        free(c->snapshot_id);
        c->snapshot_id = old_snapshot;
        c->tier = TDB_TIER_WARM;
        c->object_bytes = 0;
        c->cold_since_ms = 0;
        pthread_mutex_unlock(&c->state_mu);
        pthread_rwlock_unlock(&c->rw);
        goto done;
    }
    free(old_snapshot);
    uploaded = false; /* the copy is now the collection */
    int e = fio_rmtree(dir);
    pthread_rwlock_unlock(&c->rw);
    if (e != 0) log_msg(LOG_WARN, "collection %s: removing %s after the move: %s", c->name, dir,
                        strerror(-e)); /* removed at the next open (invariant 1) */
    log_msg(LOG_INFO, "collection %s: warm -> cold (%llu files, %llu bytes, %.1f ms)", c->name,
            (unsigned long long)info.files, (unsigned long long)info.bytes,
            (double)(clock_mono_ns() - t0) / 1e6);
done:
    if (rc && uploaded && prefix[0]) tier_copy_delete(db->store, prefix, NULL);
    pthread_mutex_unlock(&c->move_mu);
    free(dir);
    return rc;
}

/* cold -> warm: download and verify into place, commit, delete the copy. */
static int move_cold_to_warm(tdb_db *db, db_coll *c, tdb_error *err) {
    int rc = 0;
    char *dir = NULL;
    pthread_mutex_lock(&c->move_mu);
    pthread_mutex_lock(&c->state_mu);
    bool cold = c->tier == TDB_TIER_COLD;
    char *prefix = cold && c->snapshot_id ? strdup(c->snapshot_id) : NULL;
    pthread_mutex_unlock(&c->state_mu);
    if (!cold) goto done;
    dir = db_coll_dir(db, c);
    if (prefix == NULL || dir == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    uint64_t t0 = clock_mono_ns();
    fio_rmtree(dir); /* a leftover of an interrupted move (invariant 1) */
    rc = tier_copy_download(db->store, prefix, dir, err);
    if (rc == TDB_ECORRUPT || rc == TDB_ENOTFOUND) {
        /* The segment copy is unusable (damaged, or written by an
         * incompatible build): rebuild from the portable Parquet copy. */
        log_msg(LOG_WARN, "collection %s: segment copy unusable (%s); restoring from Parquet",
                c->name, err ? err->message : tdb_strerror(rc));
        rc = download_parquet(db, c, prefix, dir, err);
    }
    if (rc) goto done;
    pthread_rwlock_wrlock(&c->rw);
    pthread_mutex_lock(&c->state_mu);
    char *old = c->snapshot_id;
    c->snapshot_id = NULL;
    c->tier = TDB_TIER_WARM;
    c->object_bytes = 0;
    c->cold_since_ms = 0;
    pthread_mutex_unlock(&c->state_mu);
    pthread_mutex_lock(&c->mu);
    c->cached_valid = false;
    pthread_mutex_unlock(&c->mu);
    rc = commit_state(db, c, err);
    if (rc) {
        pthread_mutex_lock(&c->state_mu);
        c->snapshot_id = old;
        c->tier = TDB_TIER_COLD;
        pthread_mutex_unlock(&c->state_mu);
        fio_rmtree(dir);
        pthread_rwlock_unlock(&c->rw);
        goto done;
    }
    free(old);
    pthread_rwlock_unlock(&c->rw);
    tdb_error derr;
    if (tier_copy_delete(db->store, prefix, &derr) != 0)
        log_msg(LOG_WARN, "collection %s: deleting the old cold copy %s: %s", c->name, prefix,
                derr.message);
    log_msg(LOG_INFO, "collection %s: cold -> warm (%.1f ms)", c->name,
            (double)(clock_mono_ns() - t0) / 1e6);
done:
    pthread_mutex_unlock(&c->move_mu);
    free(prefix);
    free(dir);
    return rc;
}

static int run_move(tdb_db *db, db_coll *c, tier_move m, tdb_error *err) {
    uint64_t t0 = clock_mono_ns();
    int rc;
    switch (m) {
    case TIER_MOVE_HOT_TO_WARM: rc = move_hot_to_warm(db, c, err); break;
    case TIER_MOVE_WARM_TO_COLD: rc = move_warm_to_cold(db, c, err); break;
    case TIER_MOVE_WARM_TO_HOT: rc = move_warm_to_hot(db, c, err); break;
    case TIER_MOVE_COLD_TO_WARM: rc = move_cold_to_warm(db, c, err); break;
    default: return 0;
    }
    if (rc != 0) atomic_fetch_add(&db->move_failures[m], 1);
    if (rc == 0) {
        atomic_fetch_add(&db->moves[m], 1);
        atomic_fetch_add(&db->move_us[m], (clock_mono_ns() - t0) / 1000);
        log_msg(LOG_DEBUG, "collection %s: %s in %.1f ms", c->name, tier_move_name(m),
                (double)(clock_mono_ns() - t0) / 1e6);
    }
    return rc;
}

int db_tier_promote_cold(tdb_db *db, db_coll *c, tdb_error *err) {
    if (tier_of(c) != TDB_TIER_COLD) return 0;
    return run_move(db, c, TIER_MOVE_COLD_TO_WARM, err);
}

/* ---- the tier object and manual moves -------------------------------- */

static void write_time(buf *b, int64_t ms) {
    if (ms <= 0) {
        buf_puts(b, "null");
        return;
    }
    char t[32];
    clock_format_rfc3339(ms, t);
    buf_printf(b, "\"%s\"", t);
}

static int write_tier_object(db_coll *c, char **out_json, tdb_error *err) {
    st_stats s;
    db_coll_stats(c, &s);
    buf b = BUF_INIT;
    pthread_mutex_lock(&c->state_mu);
    bool cold = c->tier == TDB_TIER_COLD;
    buf_printf(&b, "{\"tier\":\"%s\",\"pinned\":%s,\"last_accessed_at\":", tier_name(c->tier),
               c->pinned ? "true" : "false");
    write_time(&b, c->access.last_access_ms);
    buf_printf(&b, ",\"access_count\":%llu,\"access_window_start\":",
               (unsigned long long)c->access.access_count);
    write_time(&b, c->access.window_start_ms);
    buf_puts(&b, ",\"snapshot_id\":");
    if (c->snapshot_id) json_write_string(&b, c->snapshot_id, strlen(c->snapshot_id));
    else buf_puts(&b, "null");
    buf_printf(&b, ",\"memory_bytes\":%llu,\"disk_bytes\":%llu,\"object_bytes\":%lld,\"updated_at\":",
               cold ? 0ull : (unsigned long long)s.memory_bytes,
               cold ? 0ull : (unsigned long long)s.disk_bytes, (long long)c->object_bytes);
    write_time(&b, c->updated_at_ms);
    buf_putc(&b, '}');
    pthread_mutex_unlock(&c->state_mu);
    if (buf_failed(&b)) {
        buf_free(&b);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    }
    *out_json = buf_steal(&b);
    return 0;
}

int tdb_tier_get_json(tdb_db *db, const char *name, char **out_json, tdb_error *err) {
    *out_json = NULL;
    db_coll *c;
    int rc = db_coll_get(db, name, &c, err);
    if (rc) return rc;
    rc = write_tier_object(c, out_json, err);
    db_coll_put(c);
    return rc;
}

int tdb_tier_pin(tdb_db *db, const char *name, bool pinned, char **out_json, tdb_error *err) {
    *out_json = NULL;
    db_coll *c;
    int rc = db_coll_get(db, name, &c, err);
    if (rc) return rc;
    pthread_mutex_lock(&c->move_mu);
    pthread_mutex_lock(&c->state_mu);
    bool was = c->pinned;
    c->pinned = pinned;
    pthread_mutex_unlock(&c->state_mu);
    rc = commit_state(db, c, err);
    if (rc) {
        pthread_mutex_lock(&c->state_mu);
        c->pinned = was;
        pthread_mutex_unlock(&c->state_mu);
    }
    pthread_mutex_unlock(&c->move_mu);
    if (rc == 0) rc = write_tier_object(c, out_json, err);
    db_coll_put(c);
    return rc;
}

int tdb_tier_move(tdb_db *db, const char *name, bool promote, int to, char **out_json,
                  tdb_error *err) {
    *out_json = NULL;
    db_coll *c;
    int rc = db_coll_get(db, name, &c, err);
    if (rc) return rc;
    pthread_mutex_lock(&c->state_mu);
    tdb_tier cur = c->tier;
    bool pinned = c->pinned;
    pthread_mutex_unlock(&c->state_mu);
    if (promote) {
        if (to < 0) to = TDB_TIER_HOT;
        if (to > TDB_TIER_COLD || to >= (int)cur) {
            rc = tdb_err(err, TDB_ECONFLICT, "tier_conflict",
                         "collection \"%s\" is %s: promoting it to %s is not a promotion", name,
                         tier_name(cur), tier_name((tdb_tier)(to > 2 ? 2 : to)));
            goto done;
        }
        if (cur == TDB_TIER_COLD && (rc = run_move(db, c, TIER_MOVE_COLD_TO_WARM, err)) != 0) goto done;
        if (to == TDB_TIER_HOT && (rc = run_move(db, c, TIER_MOVE_WARM_TO_HOT, err)) != 0) goto done;
    } else {
        if (pinned) {
            rc = tdb_err(err, TDB_ECONFLICT, "collection_pinned",
                         "collection \"%s\" is pinned; unpin it before demoting it", name);
            goto done;
        }
        if (to < 0) to = cur == TDB_TIER_COLD ? TDB_TIER_COLD + 1 : (int)cur + 1;
        if (to > TDB_TIER_COLD || to <= (int)cur) {
            rc = tdb_err(err, TDB_ECONFLICT, "tier_conflict",
                         "collection \"%s\" is %s: it cannot be demoted to %s", name,
                         tier_name(cur), to > TDB_TIER_COLD ? "a lower tier" : tier_name((tdb_tier)to));
            goto done;
        }
        if (cur == TDB_TIER_HOT && (rc = run_move(db, c, TIER_MOVE_HOT_TO_WARM, err)) != 0) goto done;
        if (to == TDB_TIER_COLD && (rc = run_move(db, c, TIER_MOVE_WARM_TO_COLD, err)) != 0) goto done;
    }
    rc = write_tier_object(c, out_json, err);
done:
    db_coll_put(c);
    return rc;
}

/* ---- the policy cycle ------------------------------------------------- */

/* Flushes and closes the storage of an idle warm collection. */
static void close_idle_warm(db_coll *c) {
    if (pthread_mutex_trylock(&c->move_mu) != 0) return; /* a move is running */
    pthread_mutex_lock(&c->mu);
    st_collection *st = c->st;
    pthread_mutex_unlock(&c->mu);
    if (st && tier_of(c) == TDB_TIER_WARM) {
        tdb_error err;
        pthread_rwlock_rdlock(&c->rw);
        int rc = st_flush(st, &err);
        pthread_rwlock_unlock(&c->rw);
        if (rc == 0) {
            pthread_rwlock_wrlock(&c->rw);
            close_storage(c);
            pthread_rwlock_unlock(&c->rw);
        }
    }
    pthread_mutex_unlock(&c->move_mu);
}

typedef struct planned {
    db_coll *c;
    tier_move move;
    int64_t last_access_ms;
    uint64_t hot_bytes;
} planned;

static int by_last_access(const void *a, const void *b) {
    const planned *x = a, *y = b;
    return x->last_access_ms < y->last_access_ms ? -1 : x->last_access_ms > y->last_access_ms;
}

/* Memory a hot collection holds: heap (memtables) plus its segments, which
 * a hot collection keeps resident. */
static uint64_t hot_bytes_of(db_coll *c) {
    st_stats s;
    db_coll_stats(c, &s);
    return s.memory_bytes + s.disk_bytes;
}

static uint64_t hot_memory_total(tdb_db *db, size_t *hot, size_t *warm, size_t *cold) {
    uint64_t total = 0;
    *hot = *warm = *cold = 0;
    size_t n = 0;
    db_coll **all = db_colls_ref(db, &n);
    for (size_t i = 0; i < n; i++) {
        tdb_tier t = tier_of(all[i]);
        if (t == TDB_TIER_HOT) {
            (*hot)++;
            total += hot_bytes_of(all[i]);
        } else if (t == TDB_TIER_WARM) {
            (*warm)++;
        } else {
            (*cold)++;
        }
        db_coll_put(all[i]);
    }
    free(all);
    return total;
}

/* Writes every collection's pending access state in one transaction (the
 * narrow access table only: tier fields are written by each move). */
static void persist_access(tdb_db *db, db_coll **all, size_t n) {
    catalog_row *rows = calloc(n ? n : 1, sizeof *rows);
    if (rows == NULL) return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&all[i]->state_mu);
        if (all[i]->dirty) {
            db_tier_row(all[i], &rows[k]);
            rows[k].snapshot_id = NULL; /* not written; not owned */
            all[i]->dirty = false;
            k++;
        }
        pthread_mutex_unlock(&all[i]->state_mu);
    }
    tdb_error err;
    if (k && catalog_update_access(db->cat, rows, k, &err) != 0)
        log_msg(LOG_WARN, "tiering: writing access state: %s", err.message);
    free(rows);
}

static void run_cycle(tdb_db *db, buf *report) {
    uint64_t t0 = clock_mono_ns();
    int64_t now = clock_now_ms();
    size_t n = 0;
    db_coll **all = db_colls_ref(db, &n);
    planned *plan = calloc(n ? n : 1, sizeof *plan);
    size_t counts[5] = {0};
    size_t deferred = 0;
    buf errors = BUF_INIT;
    size_t nerrors = 0;
    if (all == NULL || plan == NULL) {
        buf_puts(&errors, "\"out of memory\"");
        nerrors = 1;
        goto report;
    }
    /* Decide from a snapshot of each state; budget check over hot ones. */
    uint64_t hot_total = 0;
    for (size_t i = 0; i < n; i++) {
        db_coll *c = all[i];
        pthread_mutex_lock(&c->state_mu);
        tier_move m = tier_policy_decide(&db->policy, c->tier, c->pinned, &c->access,
                                         c->cold_since_ms, now);
        bool hot_unpinned = c->tier == TDB_TIER_HOT && !c->pinned;
        bool hot = c->tier == TDB_TIER_HOT;
        plan[i] = (planned){c, m, c->access.last_access_ms, 0};
        pthread_mutex_unlock(&c->state_mu);
        if (hot) {
            plan[i].hot_bytes = hot_bytes_of(c);
            hot_total += plan[i].hot_bytes;
        }
        if (!hot_unpinned) plan[i].hot_bytes = hot ? 0 : plan[i].hot_bytes;
    }
    if (db->hot_memory_budget && hot_total > db->hot_memory_budget) {
        /* Over budget: least recently used unpinned hot collections go warm
         * until the rest fit. */
        qsort(plan, n, sizeof *plan, by_last_access);
        for (size_t i = 0; i < n && hot_total > db->hot_memory_budget; i++) {
            if (tier_of(plan[i].c) != TDB_TIER_HOT || plan[i].hot_bytes == 0) continue;
            if (plan[i].move != TIER_MOVE_HOT_TO_WARM) plan[i].move = TIER_MOVE_HOT_TO_WARM;
            hot_total -= plan[i].hot_bytes;
        }
    }
    size_t done_moves = 0;
    for (size_t i = 0; i < n; i++) {
        if (plan[i].move == TIER_MOVE_NONE) {
            /* DESIGN.md: an idle warm collection closes its files after a
             * while (here: idle for one access window), so idle
             * collections cost no descriptors or mappings. */
            if (tier_of(plan[i].c) == TDB_TIER_WARM &&
                now - plan[i].last_access_ms >= db->policy.access_window_ms)
                close_idle_warm(plan[i].c);
            continue;
        }
        if (done_moves >= db->opts.max_migrations_per_cycle) break;
        tdb_error err;
        int rc = run_move(db, plan[i].c, plan[i].move, &err);
        done_moves++;
        if (rc == 0) {
            counts[plan[i].move]++;
        } else if (rc == TDB_EBUSY && strcmp(err.name, "collection_changed") == 0) {
            /* The collection changed during the move (a write, a flush, a
             * compaction): nothing failed; a later cycle moves it. */
            deferred++;
            log_msg(LOG_INFO, "tiering: %s %s deferred: %s", plan[i].c->name,
                    tier_move_name(plan[i].move), err.message);
        } else if (nerrors < DB_MAX_REPORT_ERRORS) {
            if (nerrors++) buf_putc(&errors, ',');
            buf_puts(&errors, "{\"collection\":");
            json_write_string(&errors, plan[i].c->name, strlen(plan[i].c->name));
            buf_printf(&errors, ",\"move\":\"%s\",\"message\":", tier_move_name(plan[i].move));
            json_write_string(&errors, err.message, strlen(err.message));
            buf_putc(&errors, '}');
            log_msg(LOG_WARN, "tiering: %s %s: %s", plan[i].c->name, tier_move_name(plan[i].move),
                    err.message);
        }
    }
    persist_access(db, all, n);
report:
    buf_printf(report,
               "{\"hot_to_warm\":%zu,\"warm_to_cold\":%zu,\"warm_to_hot\":%zu,\"cold_to_warm\":%zu,"
               "\"deferred\":%zu,\"errors\":[%s],\"took_ms\":",
               counts[TIER_MOVE_HOT_TO_WARM], counts[TIER_MOVE_WARM_TO_COLD],
               counts[TIER_MOVE_WARM_TO_HOT], counts[TIER_MOVE_COLD_TO_WARM], deferred,
               errors.data ? errors.data : "");
    json_write_double(report, (double)(clock_mono_ns() - t0) / 1e6);
    char at[32];
    clock_format_rfc3339(now, at);
    buf_printf(report, ",\"at\":\"%s\"}", at);
    buf_free(&errors);
    for (size_t i = 0; i < n; i++) db_coll_put(all[i]);
    free(all);
    free(plan);
}

static int cycle(tdb_db *db, char **out_json, tdb_error *err) {
    buf report = BUF_INIT;
    pthread_mutex_lock(&db->cycle_mu);
    run_cycle(db, &report);
    if (!buf_failed(&report)) {
        buf_reset(&db->last_cycle);
        buf_append(&db->last_cycle, report.data, report.len);
    }
    pthread_mutex_unlock(&db->cycle_mu);
    if (buf_failed(&report)) {
        buf_free(&report);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    }
    if (out_json) *out_json = buf_steal(&report);
    else buf_free(&report);
    return 0;
}

int tdb_tiering_cycle_json(tdb_db *db, char **out_json, tdb_error *err) {
    *out_json = NULL;
    return cycle(db, out_json, err);
}

static void write_duration(buf *b, int64_t ms) {
    if (ms % 86400000 == 0) buf_printf(b, "\"%lldd\"", (long long)(ms / 86400000));
    else if (ms % 3600000 == 0) buf_printf(b, "\"%lldh\"", (long long)(ms / 3600000));
    else if (ms % 60000 == 0) buf_printf(b, "\"%lldm\"", (long long)(ms / 60000));
    else if (ms % 1000 == 0) buf_printf(b, "\"%llds\"", (long long)(ms / 1000));
    else buf_printf(b, "\"%lldms\"", (long long)ms);
}

int tdb_tiering_json(tdb_db *db, char **out_json, tdb_error *err) {
    *out_json = NULL;
    size_t hot, warm, cold;
    uint64_t hot_bytes = hot_memory_total(db, &hot, &warm, &cold);
    buf b = BUF_INIT;
    buf_puts(&b, "{\"policy\":{\"hot_ttl\":");
    write_duration(&b, db->policy.hot_ttl_ms);
    buf_puts(&b, ",\"warm_ttl\":");
    write_duration(&b, db->policy.warm_ttl_ms);
    buf_printf(&b, ",\"promotion_threshold\":%u,\"access_window\":", db->policy.promotion_threshold);
    write_duration(&b, db->policy.access_window_ms);
    buf_puts(&b, ",\"worker_interval\":");
    write_duration(&b, db->opts.worker_interval_ms);
    buf_printf(&b,
               ",\"hot_memory_budget\":%llu,\"max_migrations_per_cycle\":%u},"
               "\"distribution\":{\"hot\":%zu,\"warm\":%zu,\"cold\":%zu},"
               "\"memory_budget_bytes\":%llu,\"hot_memory_bytes\":%llu,\"moves\":{",
               (unsigned long long)db->hot_memory_budget, db->opts.max_migrations_per_cycle, hot,
               warm, cold, (unsigned long long)db->hot_memory_budget, (unsigned long long)hot_bytes);
    for (int m = TIER_MOVE_HOT_TO_WARM; m <= TIER_MOVE_COLD_TO_WARM; m++)
        buf_printf(&b, "%s\"%s\":%llu", m > 1 ? "," : "", tier_move_name((tier_move)m),
                   (unsigned long long)atomic_load(&db->moves[m]));
    buf_puts(&b, "},\"last_cycle\":");
    pthread_mutex_lock(&db->cycle_mu);
    if (db->last_cycle.len) buf_append(&b, db->last_cycle.data, db->last_cycle.len);
    else buf_puts(&b, "null");
    pthread_mutex_unlock(&db->cycle_mu);
    buf_putc(&b, '}');
    if (buf_failed(&b)) {
        buf_free(&b);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    }
    *out_json = buf_steal(&b);
    return 0;
}

/* ---- worker and lifecycle --------------------------------------------- */

static void *worker_main(void *arg) {
    tdb_db *db = arg;
    pthread_mutex_lock(&db->worker_mu);
    while (!db->worker_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (db->opts.worker_interval_ms % 1000) * 1000000;
        ts.tv_sec += db->opts.worker_interval_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&db->worker_cv, &db->worker_mu, &ts);
        if (db->worker_stop) break;
        pthread_mutex_unlock(&db->worker_mu);
        tdb_error err;
        if (cycle(db, NULL, &err) != 0) log_msg(LOG_WARN, "tiering cycle: %s", err.message);
        pthread_mutex_lock(&db->worker_mu);
    }
    pthread_mutex_unlock(&db->worker_mu);
    return NULL;
}

int db_tiering_open(tdb_db *db, tdb_error *err) {
    tdb_options *o = &db->opts;
    if (o->hot_ttl_ms <= 0) o->hot_ttl_ms = DB_DEFAULT_HOT_TTL_MS;
    if (o->warm_ttl_ms <= 0) o->warm_ttl_ms = DB_DEFAULT_WARM_TTL_MS;
    if (o->promotion_threshold == 0) o->promotion_threshold = DB_DEFAULT_PROMOTION_THRESHOLD;
    if (o->access_window_ms <= 0) o->access_window_ms = DB_DEFAULT_ACCESS_WINDOW_MS;
    if (o->worker_interval_ms < 0) o->worker_interval_ms = DB_DEFAULT_WORKER_INTERVAL_MS;
    if (o->max_migrations_per_cycle == 0) o->max_migrations_per_cycle = DB_DEFAULT_MAX_MIGRATIONS;
    db->policy = (tier_policy){o->hot_ttl_ms, o->warm_ttl_ms, o->access_window_ms,
                               o->promotion_threshold};
    db->hot_memory_budget = o->hot_memory_budget;
    if (db->hot_memory_budget == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0) db->hot_memory_budget = (uint64_t)pages * (uint64_t)page / 2;
    }
    pthread_mutex_init(&db->cycle_mu, NULL);
    pthread_mutex_init(&db->worker_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->worker_cv, &ca);
    pthread_condattr_destroy(&ca);
    objstore_options so;
    objstore_options_default(&so);
    so.endpoint = o->s3_endpoint;
    so.path_style = o->s3_path_style;
    so.fsync = o->fsync != TDB_FSYNC_NONE; /* local copies as durable as the WAL */
    int rc = objstore_open(db->object_store, &so, &db->store, err);
    if (rc) return rc;
    return objstore_check(db->store, err);
}

static int by_id(const void *a, const void *b) {
    int64_t x = (*(db_coll *const *)a)->id, y = (*(db_coll *const *)b)->id;
    return x < y ? -1 : x > y;
}

/* Invariant (1), object-store side: deletes the objects of every cold copy
 * the catalog does not name (collections/<id>/<gen>/ whose collection is
 * gone, is not cold, or names another generation). A crash leaves them
 * when it stops warm -> cold after uploading but before the commit, cold
 * -> warm after the commit but before deleting the copy, or a drop half
 * way. Runs at open, before any move or request can start one. */
static void remove_stale_copies(tdb_db *db) {
    size_t n = 0;
    db_coll **all = db_colls_ref(db, &n);
    if (all == NULL) return;
    qsort(all, n, sizeof *all, by_id);
    char *after = NULL;
    char stale[OBJSTORE_MAX_KEY_BYTES + 1] = ""; /* the generation last reported */
    for (;;) {
        objstore_page page = {0};
        tdb_error err;
        if (objstore_list(db->store, "collections/", after, 0, &page, &err) != 0) {
            log_msg(LOG_WARN, "tiering: listing cold copies: %s", err.message);
            objstore_page_free(&page);
            break;
        }
        free(after);
        after = page.next ? strdup(page.next) : NULL;
        for (size_t i = 0; i < page.count; i++) {
            /* collections/<id>/<gen>/<file> */
            const char *key = page.entries[i].key;
            const char *idp = key + strlen("collections/");
            char *end;
            long long id = strtoll(idp, &end, 10);
            const char *gen_end = *end == '/' ? strchr(end + 1, '/') : NULL;
            if (end == idp || gen_end == NULL) continue; /* not a copy's object: not ours */
            size_t plen = (size_t)(gen_end - key);
            db_coll key_coll = {.id = id}, *kp = &key_coll;
            db_coll **found = bsearch(&kp, all, n, sizeof *all, by_id);
            bool live = false;
            if (found) {
                pthread_mutex_lock(&(*found)->state_mu);
                const char *snap = (*found)->snapshot_id;
                live = (*found)->tier == TDB_TIER_COLD && snap && strlen(snap) == plen &&
                       memcmp(snap, key, plen) == 0;
                pthread_mutex_unlock(&(*found)->state_mu);
            }
            if (live) continue;
            if (strlen(stale) != plen || memcmp(stale, key, plen) != 0) {
                snprintf(stale, sizeof stale, "%.*s", (int)plen, key);
                log_msg(LOG_INFO, "removing %s/: no collection's catalog row names this cold copy",
                        stale);
            }
            objstore_delete(db->store, key, NULL);
        }
        objstore_page_free(&page);
        if (after == NULL) break;
    }
    free(after);
    for (size_t i = 0; i < n; i++) db_coll_put(all[i]);
    free(all);
}

int db_tiering_start(tdb_db *db, tdb_error *err) {
    remove_stale_copies(db);
    if (db->opts.worker_interval_ms == 0) return 0;
    if (pthread_create(&db->worker, NULL, worker_main, db) != 0)
        return tdb_err(err, TDB_ENOMEM, NULL, "cannot start the tiering worker");
    db->worker_running = true;
    return 0;
}

void db_tiering_close(tdb_db *db) {
    if (db->worker_running) {
        pthread_mutex_lock(&db->worker_mu);
        db->worker_stop = true;
        pthread_cond_signal(&db->worker_cv);
        pthread_mutex_unlock(&db->worker_mu);
        pthread_join(db->worker, NULL);
        db->worker_running = false;
    }
    if (db->cat == NULL) return;
    size_t n = 0;
    db_coll **all = db_colls_ref(db, &n);
    if (all) {
        persist_access(db, all, n);
        for (size_t i = 0; i < n; i++) db_coll_put(all[i]);
        free(all);
    }
}
