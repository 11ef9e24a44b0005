/*
 * snapshot.c: snapshots of a collection as Parquet files in the object
 * store (API.md "Snapshots"): create, list, restore (in place or into a
 * new collection), delete.
 * Layer: db. Uses snapshot/ (Parquet), objstore/, storage/ and the catalog.
 *
 * Create: every live document, paged in id order (so writes go on; a
 * document changed during the snapshot appears once, in one of its
 * versions), is written to DATA/tmp/<id>.parquet, uploaded to
 * snapshots/<collection>/<id>.parquet, and only then recorded in the
 * catalog: a snapshot listed is always complete.
 *
 * Restore in place builds the restored contents in a new directory
 * (collections/<id>.restore), then swaps it in under the collection's
 * write lock: rename <id> -> <id>.old, rename <id>.restore -> <id>, remove
 * <id>.old. A crash between the two renames leaves <id> missing and
 * <id>.old present; tdb_open renames it back (db.c remove_orphans), so the
 * collection holds its old or its new contents, never neither. Restoring
 * from Parquet alone rebuilds every index: the build's flush writes the
 * text indexes and codes, the HNSW graphs are built by the storage layer
 * after the swap (restore_in_place). A restore into a new name creates
 * the collection empty and restores it in place the same way. An in-place
 * restore of a snapshot whose dimension or metric differ from the
 * collection's (dropped with keep_snapshots and created again) is refused
 * with TDB_ECONFLICT before anything is downloaded.
 *
 * Snapshots outlive their collection when it is dropped with
 * keep_snapshots: they are still listed under its name and restore
 * recreates it.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "snapshot/parquet.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/log.h"

#define SNAP_PAGE_DOCS 1000    /* documents read per scan page while writing */
#define SNAP_RESTORE_BATCH 1000 /* documents per WAL record while restoring */

char *db_tmp_path(tdb_db *db, const char *file) {
    size_t n = strlen(db->data_dir) + strlen(file) + 8;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/tmp/%s", db->data_dir, file);
    return p;
}

static void write_snapshot(buf *b, const catalog_snapshot *s) {
    char created[32];
    clock_format_rfc3339(s->created_at_ms, created);
    buf_puts(b, "{\"snapshot_id\":");
    json_write_string(b, s->id, strlen(s->id));
    buf_printf(b, ",\"created_at\":\"%s\",\"documents\":%lld,\"size_bytes\":%lld,"
                  "\"format\":\"parquet\",\"location\":",
               created, (long long)s->documents, (long long)s->size_bytes);
    json_write_string(b, s->location, strlen(s->location));
    buf_puts(b, ",\"collection\":");
    json_write_string(b, s->collection, strlen(s->collection));
    buf_putc(b, '}');
}

static int finish(buf *b, char **out_json, tdb_error *err) {
    if (buf_failed(b)) {
        buf_free(b);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    }
    *out_json = buf_steal(b);
    return 0;
}

/* Writes every live document of st to a Parquet file at path, with the
 * writer options po. */
static int write_parquet(db_coll *c, st_collection *st, const char *path,
                         const pq_writer_options *po, uint64_t *docs, uint64_t *size,
                         tdb_error *err) {
    pq_attr_def *defs = calloc(c->schema.attr_count ? c->schema.attr_count : 1, sizeof *defs);
    if (defs == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < c->schema.attr_count; i++)
        defs[i] = (pq_attr_def){c->schema.attrs[i].name, (pq_attr_type)c->schema.attrs[i].type};
    buf cfg = BUF_INIT;
    schema_write_config(&cfg, &c->schema);
    pq_schema ps = {c->dimension, c->name, metric_name(c->metric), cfg.data, c->schema.attr_count,
                    defs};
    pq_writer *w = NULL;
    int rc = pq_writer_open(path, &ps, po, &w, err);
    free(defs);
    buf_free(&cfg);
    if (rc) return rc;
    *docs = 0;
    char after[ST_MAX_ID_BYTES];
    uint32_t after_len = 0;
    bool first = true;
    for (;;) {
        st_record *recs = NULL;
        size_t n = 0;
        rc = st_scan(st, first ? NULL : after, after_len, SNAP_PAGE_DOCS, true, NULL, NULL, &recs,
                     &n, err);
        first = false;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = pq_writer_add_doc(w, (pq_bytes){recs[i].id, recs[i].id_len}, recs[i].vector,
                                   c->dimension, (pq_bytes){recs[i].attrs, recs[i].attrs_len}, NULL,
                                   err);
            (*docs)++;
        }
        if (n) {
            memcpy(after, recs[n - 1].id, recs[n - 1].id_len);
            after_len = recs[n - 1].id_len;
        }
        st_records_free(recs, n);
        if (rc || n < SNAP_PAGE_DOCS) break;
    }
    if (rc) {
        pq_writer_abort(w);
        return rc;
    }
    return pq_writer_close(w, size, err);
}

/* Temporary Parquet files (DATA/tmp, unlinked once uploaded: the store's
 * put makes its copy durable) are not fsynced: that would only add a
 * flush of every byte to the disk. */
static void tmp_file_options(pq_writer_options *po) {
    pq_writer_options_default(po);
    po->fsync = false;
}

/* Writes every live document of st to a Parquet file at path (the writer's
 * default encoding: the cold tier's copies). */
int db_write_parquet(db_coll *c, st_collection *st, const char *path, uint64_t *docs,
                     uint64_t *size, tdb_error *err) {
    pq_writer_options po;
    tmp_file_options(&po);
    return write_parquet(c, st, path, &po, docs, size, err);
}

int tdb_snapshot_create_json(tdb_db *db, const char *name, char **out_json, tdb_error *err) {
    *out_json = NULL;
    db_coll *c = NULL;
    st_collection *st;
    int rc = db_coll_begin(db, name, &c, &st, err);
    if (rc) return rc;
    int64_t now = clock_now_ms();
    char id[64], file[96], key[OBJSTORE_MAX_KEY_BYTES + 1];
    char stamp[32];
    clock_format_rfc3339(now, stamp);
    /* 2026-11-22T04:31:20.357Z -> 20261122T043120357Z-<6 hex> */
    size_t k = 0;
    for (const char *p = stamp; *p && k < 24; p++)
        if (*p != '-' && *p != ':' && *p != '.') id[k++] = *p;
    snprintf(id + k, sizeof id - k, "-%06llx", (unsigned long long)(clock_mono_ns() & 0xffffff));
    snprintf(file, sizeof file, "%s.parquet", id);
    snprintf(key, sizeof key, "snapshots/%s/%s.parquet", c->name, id);
    char *path = db_tmp_path(db, file);
    char *tmpdir = db_tmp_path(db, "");
    uint64_t docs = 0, size = 0;
    buf b = BUF_INIT, cfg = BUF_INIT;
    if (!path || !tmpdir || fio_mkdir_p(tmpdir) != 0) {
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot create %s", tmpdir ? tmpdir : "tmp");
        db_coll_end(c);
        goto done;
    }
    /* SNAPPY rather than the writer's default ZSTD: float32 vectors, most
     * of a snapshot, compress little, so ZSTD's CPU buys little size (on
     * bench/snapshot_bench.py's 10,000 x 512: a file 9 % larger for a
     * third less CPU), and every reader API.md names reads SNAPPY (Spark's
     * and pyarrow's default). */
    pq_writer_options po;
    tmp_file_options(&po);
    po.codec = PQ_CODEC_SNAPPY;
    rc = write_parquet(c, st, path, &po, &docs, &size, err);
    db_coll_end(c); /* no lock across the upload */
    c = NULL;
    if (rc) goto done;
    if ((rc = objstore_put_file(db->store, key, path, err)) != 0) {
        objstore_delete(db->store, key, NULL); /* a put may fail after its rename */
        goto done;
    }
    db_coll *cc;
    if ((rc = db_coll_get(db, name, &cc, err)) != 0) {
        objstore_delete(db->store, key, NULL); /* dropped during the upload: nothing lists it */
        goto done;
    }
    schema_write_config(&cfg, &cc->schema);
    size_t loc_len = strlen(objstore_url(db->store)) + strlen(key) + 2;
    char *location = malloc(loc_len);
    if (location) snprintf(location, loc_len, "%s/%s", objstore_url(db->store), key);
    catalog_snapshot s = {id, cc->name, now, (int64_t)docs, (int64_t)size, key, location,
                          cfg.data ? cfg.data : "{}", cc->dimension, cc->metric};
    rc = location ? catalog_snapshot_insert(db->cat, &s, err)
                  : tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    db_coll_put(cc);
    if (rc == 0) {
        write_snapshot(&b, &s);
        rc = finish(&b, out_json, err);
        log_msg(LOG_INFO, "collection %s: snapshot %s (%llu documents, %llu bytes)", name, id,
                (unsigned long long)docs, (unsigned long long)size);
    } else {
        objstore_delete(db->store, key, NULL);
    }
    free(location);
done:
    if (path) fio_unlink(path);
    free(path);
    free(tmpdir);
    buf_free(&b);
    buf_free(&cfg);
    return rc;
}

int tdb_snapshot_list_json(tdb_db *db, const char *name, char **out_json, tdb_error *err) {
    *out_json = NULL;
    db_coll *c;
    tdb_error gerr;
    int grc = db_coll_get(db, name, &c, &gerr);
    if (grc == 0) db_coll_put(c);
    if (grc != 0 && grc != TDB_ENOTFOUND) {
        if (err) *err = gerr;
        return grc;
    }
    catalog_snapshot *s = NULL;
    size_t n = 0;
    int rc = catalog_snapshot_list(db->cat, name, NULL, &s, &n, err);
    if (rc) return rc;
    /* A collection dropped with keep_snapshots still lists its snapshots
     * (how else would anyone find the ids to restore it from); a name
     * with neither a collection nor a snapshot is unknown. */
    if (n == 0 && grc == TDB_ENOTFOUND) {
        if (err) *err = gerr;
        return grc;
    }
    buf b = BUF_INIT;
    buf_puts(&b, "{\"snapshots\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) buf_putc(&b, ',');
        write_snapshot(&b, &s[i]);
    }
    buf_puts(&b, "]}");
    catalog_snapshots_free(s, n);
    return finish(&b, out_json, err);
}

/* Loads every row of the Parquet file at path into st, in batches. */
int db_load_parquet(const char *path, uint32_t dim, st_collection *st, tdb_error *err) {
    pq_reader *r = NULL;
    int rc = pq_reader_open(path, &r, err);
    if (rc) return rc;
    st_doc *docs = calloc(SNAP_RESTORE_BATCH, sizeof *docs);
    size_t *offs = calloc(SNAP_RESTORE_BATCH, sizeof *offs * 3);
    float *vecs = malloc((size_t)SNAP_RESTORE_BATCH * (dim ? dim : 1) * sizeof *vecs);
    buf text = BUF_INIT;
    if (!docs || !offs || !vecs) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    size_t n = 0;
    for (;;) {
        pq_row row;
        int got = pq_reader_next(r, &row, err);
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 1) {
            if (row.vector_len != dim || row.id.len < 1 || row.id.len > ST_MAX_ID_BYTES) {
                rc = tdb_err(err, TDB_ECORRUPT, "corrupt_data",
                             "snapshot row %zu has a vector of %u values (dimension %u) or a bad id",
                             n, row.vector_len, dim);
                break;
            }
            offs[3 * n] = text.len;
            buf_append(&text, row.id.data, row.id.len);
            offs[3 * n + 1] = text.len;
            if (row.attributes.len) buf_append(&text, row.attributes.data, row.attributes.len);
            else buf_puts(&text, "{}");
            offs[3 * n + 2] = text.len;
            if (dim) memcpy(vecs + n * dim, row.vector, dim * sizeof *vecs);
            n++;
        }
        if (n == SNAP_RESTORE_BATCH || (got == 0 && n > 0)) {
            if (buf_failed(&text)) {
                rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
                break;
            }
            for (size_t i = 0; i < n; i++)
                docs[i] = (st_doc){text.data + offs[3 * i],
                                   (uint32_t)(offs[3 * i + 1] - offs[3 * i]),
                                   dim ? vecs + i * dim : NULL, text.data + offs[3 * i + 1],
                                   (uint32_t)(offs[3 * i + 2] - offs[3 * i + 1])};
            if ((rc = st_upsert(st, docs, n, err)) != 0) break;
            n = 0;
            buf_reset(&text);
        }
        if (got == 0) break;
    }
done:
    buf_free(&text);
    free(docs);
    free(offs);
    free(vecs);
    pq_reader_close(r);
    return rc;
}

/* Fetches the snapshot's Parquet file into DATA/tmp; *path is malloc'd. */
static int fetch(tdb_db *db, const catalog_snapshot *s, char **path, tdb_error *err) {
    /* Unique per call: two restores of one snapshot at once must not
     * unlink each other's download. */
    static _Atomic unsigned long seq;
    char file[128];
    snprintf(file, sizeof file, "restore-%.60s-%lu.parquet", s->id, atomic_fetch_add(&seq, 1));
    char *tmpdir = db_tmp_path(db, "");
    *path = db_tmp_path(db, file);
    int rc = 0;
    if (!tmpdir || !*path || fio_mkdir_p(tmpdir) != 0)
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot create the temporary directory");
    else
        rc = objstore_get_file(db->store, s->object_key, *path, err);
    free(tmpdir);
    return rc;
}

static int restore_in_place(tdb_db *db, db_coll *c, const char *path, bool fresh_coll,
                            tdb_error *err);

/* Restores into a new collection `into` with the snapshot's config. */
static int restore_into(tdb_db *db, const catalog_snapshot *s, const char *path, const char *into,
                        char **out_json, tdb_error *err) {
    buf body = BUF_INIT;
    buf_puts(&body, "{\"name\":");
    json_write_string(&body, into, strlen(into));
    buf_printf(&body, ",\"dimension\":%u,\"metric\":\"%s\",", s->dimension, metric_name(s->metric));
    /* The stored config is {"attributes":..,"index":..}: splice its members. */
    buf_append(&body, s->config + 1, strlen(s->config) - 1);
    char *created = NULL;
    int rc = buf_failed(&body) ? tdb_err(err, TDB_ENOMEM, NULL, "out of memory")
                               : tdb_collection_create_json(db, body.data, body.len, &created, err);
    buf_free(&body);
    tdb_free(created);
    if (rc) return rc;
    /* Built beside the new (empty) collection and swapped in, as a restore
     * in place is: the same fast load, and a failure drops it whole. */
    db_coll *c = NULL;
    rc = db_coll_get(db, into, &c, err);
    if (rc == 0) {
        rc = restore_in_place(db, c, path, true, err);
        db_coll_put(c);
    }
    /* The reply opens the restored storage: if even that fails, the
     * restore is reported failed, so it leaves nothing either. */
    if (rc == 0) rc = tdb_collection_get_json(db, into, out_json, err);
    if (rc) {
        tdb_collection_drop(db, into, true, NULL); /* a failed restore leaves nothing */
        return rc;
    }
    return 0;
}

/* Restores in place: build in <dir>.restore, then swap (see the top).
 * fresh_coll: c was just created for this restore and its directory holds
 * nothing to keep, so it is removed rather than set aside as <dir>.old
 * (which tdb_open would move back even once the collection is dropped). */
static int restore_in_place(tdb_db *db, db_coll *c, const char *path, bool fresh_coll,
                            tdb_error *err) {
    char *dir = db_coll_dir(db, c);
    size_t n = dir ? strlen(dir) + 16 : 0;
    char *fresh = dir ? malloc(n) : NULL, *old = dir ? malloc(n) : NULL;
    int rc = 0;
    if (!dir || !fresh || !old) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    snprintf(fresh, n, "%s.restore", dir);
    snprintf(old, n, "%s.old", dir);
    pthread_mutex_lock(&c->move_mu);
    if ((rc = db_tier_promote_cold(db, c, err)) != 0) goto unlock;
    fio_rmtree(fresh);
    st_options so;
    st_text_field *tf = NULL;
    if ((rc = db_storage_options(db, c, &so, &tf, err)) != 0) goto unlock;
    /* The build directory is not live until the swap: a crash before it
     * leaves a directory that is removed, never opened (db.c). So its WAL
     * is never fsynced batch by batch; st_flush makes the result durable
     * (each segment and the MANIFEST are fsynced before it returns, and
     * the WAL once before the MANIFEST names the checkpoint), before the
     * rename publishes it. The HNSW graph is not built here: the segments
     * are written without one (searched exactly, and given their graph by
     * the storage layer once open under the collection's own index
     * options), so the restore costs what loading the rows costs. */
    so.fsync = TDB_FSYNC_NONE;
    so.vector_index.m = 0;
    st_collection *st = NULL;
    rc = st_open(fresh, c->dimension, c->metric, &so, &st, err);
    free(tf);
    if (rc == 0) rc = db_load_parquet(path, c->dimension, st, err);
    if (rc == 0) rc = st_flush(st, err);
    st_close(st);
    if (rc) {
        fio_rmtree(fresh);
        goto unlock;
    }
    pthread_rwlock_wrlock(&c->rw);
    pthread_mutex_lock(&c->mu);
    if (c->st) {
        st_close(c->st);
        c->st = NULL;
    }
    c->cached_valid = false;
    pthread_mutex_unlock(&c->mu);
    int e = !fio_exists(dir) ? 0 : fresh_coll ? fio_rmtree(dir) : fio_rename(dir, old);
    if (e == 0) e = fio_rename(fresh, dir);
    bool swapped = e == 0;
    if (!swapped) {
        /* Put the old contents back if they were moved; if even that fails,
         * <dir>.old stays and tdb_open renames it back (never delete it). */
        if (!fio_exists(dir) && fio_exists(old)) fio_rename(old, dir);
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot swap in the restored collection: %s",
                     strerror(-e));
    }
    pthread_rwlock_unlock(&c->rw);
    if (swapped) fio_rmtree(old);
    else if (fio_exists(dir)) fio_rmtree(fresh);
unlock:
    pthread_mutex_unlock(&c->move_mu);
done:
    free(dir);
    free(fresh);
    free(old);
    return rc;
}

int tdb_snapshot_restore_json(tdb_db *db, const char *name, const char *snapshot_id,
                              const char *body, size_t body_len, char **out_json, tdb_error *err) {
    *out_json = NULL;
    json_doc *doc = NULL;
    const char *into = NULL;
    char into_buf[DB_MAX_NAME_BYTES + 1];
    int rc = 0;
    if (body && body_len) {
        if ((rc = db_parse_body(body, body_len, &doc, err)) != 0) return rc;
        const json_value *root = json_root(doc);
        const json_value *iv = root->type == JSON_OBJECT ? json_get(root, "into") : NULL;
        if (root->type != JSON_OBJECT || root->len > (iv ? 1u : 0u) ||
            (iv && iv->type != JSON_STRING && iv->type != JSON_NULL)) {
            json_doc_free(doc);
            return tdb_err(err, TDB_EINVAL, "invalid_request",
                           "the body must be {} or {\"into\": \"new_collection_name\"}");
        }
        if (iv && iv->type == JSON_STRING) {
            if (!schema_name_valid(iv->str, iv->len)) {
                json_doc_free(doc);
                return tdb_err(err, TDB_EINVAL, "invalid_name",
                               "\"into\": collection names are 1..128 characters of A-Z a-z 0-9 _ "
                               ". - and do not start with '.'");
            }
            memcpy(into_buf, iv->str, iv->len + 1);
            into = into_buf;
        }
        json_doc_free(doc);
    }
    catalog_snapshot *s = NULL;
    size_t n = 0;
    db_coll *c = NULL;
    char *path = NULL;
    bool exists = db_coll_get(db, name, &c, NULL) == 0;
    if (!exists && into == NULL) into = name; /* dropped with keep_snapshots: recreate it */
    if ((rc = catalog_snapshot_list(db->cat, name, snapshot_id, &s, &n, err)) != 0) goto done;
    if (into) {
        db_coll *other;
        if (db_coll_get(db, into, &other, NULL) == 0) {
            db_coll_put(other);
            rc = tdb_err(err, TDB_EEXIST, "collection_exists",
                         "collection \"%s\" already exists: restore into a new name, or restore "
                         "in place without \"into\"",
                         into);
            goto done;
        }
    }
    if (!into && (s[0].dimension != c->dimension || s[0].metric != c->metric)) {
        /* The collection was dropped and created again with another shape:
         * its rows cannot go in, restore them beside it instead. */
        rc = tdb_err(err, TDB_ECONFLICT, "snapshot_incompatible",
                     "snapshot %s holds %u-dimensional %s vectors but collection \"%s\" is "
                     "%u-dimensional %s: restore it into a new name ({\"into\": \"...\"})",
                     snapshot_id, s[0].dimension, metric_name(s[0].metric), name, c->dimension,
                     metric_name(c->metric));
        goto done;
    }
    if ((rc = fetch(db, &s[0], &path, err)) != 0) goto done;
    if (into) {
        rc = restore_into(db, &s[0], path, into, out_json, err);
    } else {
        rc = restore_in_place(db, c, path, false, err);
        if (rc == 0) rc = tdb_collection_get_json(db, name, out_json, err);
    }
    if (rc == TDB_EREADONLY) {
        /* The storage that failed was the one being restored into, not a
         * live collection: report an I/O error, not a read-only state. */
        rc = tdb_err(err, TDB_EIO, "restore_failed", "restoring snapshot %s failed: %s", snapshot_id,
                     err ? err->message : "I/O error");
    }
    if (rc == 0) log_msg(LOG_INFO, "collection %s: restored snapshot %s%s%s", name, snapshot_id,
                         into ? " into " : "", into ? into : "");
done:
    if (path) fio_unlink(path);
    free(path);
    catalog_snapshots_free(s, n);
    db_coll_put(c);
    return rc;
}

int tdb_snapshot_delete(tdb_db *db, const char *name, const char *snapshot_id, tdb_error *err) {
    catalog_snapshot *s = NULL;
    size_t n = 0;
    int rc = catalog_snapshot_list(db->cat, name, snapshot_id, &s, &n, err);
    if (rc) return rc;
    /* Catalog first: a snapshot that is listed always has its object. */
    rc = catalog_snapshot_delete(db->cat, snapshot_id, err);
    if (rc == 0) {
        tdb_error oerr;
        if (objstore_delete(db->store, s[0].object_key, &oerr) != 0)
            log_msg(LOG_WARN, "snapshot %s: deleting %s: %s", snapshot_id, s[0].object_key,
                    oerr.message);
    }
    catalog_snapshots_free(s, n);
    return rc;
}

/* Removes the snapshots of a dropped collection (db.c). */
void db_snapshots_drop(tdb_db *db, const char *name) {
    catalog_snapshot *s = NULL;
    size_t n = 0;
    if (catalog_snapshot_list(db->cat, name, NULL, &s, &n, NULL) != 0) return;
    for (size_t i = 0; i < n; i++) tdb_snapshot_delete(db, name, s[i].id, NULL);
    catalog_snapshots_free(s, n);
}

/* Deletes objects under snapshots/ that no catalog row lists: what a
 * snapshot create left when it failed after its upload and could not
 * delete the object then (e.g. the disk kept failing). Run at open. */
void db_snapshots_gc(tdb_db *db) {
    char *after = NULL;
    for (;;) {
        objstore_page page = {0};
        if (objstore_list(db->store, "snapshots/", after, 0, &page, NULL) != 0) {
            objstore_page_free(&page);
            break;
        }
        free(after);
        after = page.next ? strdup(page.next) : NULL;
        for (size_t i = 0; i < page.count; i++) {
            /* snapshots/<collection>/<id>.parquet */
            const char *key = page.entries[i].key;
            const char *coll = key + strlen("snapshots/");
            const char *slash = strchr(coll, '/');
            const char *dot = slash ? strstr(slash, ".parquet") : NULL;
            if (!slash || !dot || (size_t)(slash - coll) > DB_MAX_NAME_BYTES || dot - slash > 80) continue;
            char name[DB_MAX_NAME_BYTES + 1], id[96];
            snprintf(name, sizeof name, "%.*s", (int)(slash - coll), coll);
            snprintf(id, sizeof id, "%.*s", (int)(dot - slash - 1), slash + 1);
            catalog_snapshot *s = NULL;
            size_t n = 0;
            int rc = catalog_snapshot_list(db->cat, name, id, &s, &n, NULL);
            catalog_snapshots_free(s, n);
            if (rc == TDB_ENOTFOUND) {
                log_msg(LOG_INFO, "removing %s: no snapshot lists it", key);
                objstore_delete(db->store, key, NULL);
            }
        }
        objstore_page_free(&page);
        if (after == NULL) break;
    }
    free(after);
}
