/*
 * copy.c: cold copies of a collection directory in the object store.
 * Layer: tier. See tier.h for the object layout.
 *
 * Invariants:
 *   (1) FILES is written only after every file it lists was uploaded and
 *       its size and CRC32C were checked with a HEAD; a copy without FILES
 *       is never downloaded.
 *   (2) A download never writes into the destination directory: it fills
 *       dir.incoming and renames it into place when every file verified,
 *       so a crash leaves either no directory or a complete one (plus an
 *       .incoming leftover that the db layer removes at open).
 * The caller guarantees that no one else writes dir during an upload or
 * creates it during a download (db/tiering.c holds the collection's move
 * lock and checks afterwards that the collection did not change).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/manifest.h"
#include "tier/tier.h"
#include "util/buf.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"

#define TIER_FILES_FORMAT 1
#define TIER_MAX_PATH 4096

/* snprintf that reports truncation instead of silently cutting a path. */
__attribute__((format(printf, 3, 4))) static bool pathf(char *out, size_t cap, const char *fmt,
                                                         ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

/* Name of segment n as the storage layer writes it (segments/<20 digits>.seg). */
static void segment_name(uint64_t id, char out[64]) {
    snprintf(out, 64, "segments/%020llu.seg", (unsigned long long)id);
}

static int upload_one(objstore *store, const char *dir, const char *prefix, const char *name,
                      buf *index, tier_copy_info *info, tdb_error *err) {
    char path[TIER_MAX_PATH], key[OBJSTORE_MAX_KEY_BYTES + 1];
    if (!pathf(path, sizeof path, "%s/%s", dir, name) ||
        !pathf(key, sizeof key, "%s/%s", prefix, name))
        return tdb_err(err, TDB_EINVAL, "tier_move_failed", "path too long: %s/%s", dir, name);
    int64_t size = fio_file_size(path);
    if (size == -ENOENT)
        return tdb_err(err, TDB_EBUSY, "collection_changed",
                       "%s was replaced (compaction) while the cold copy was made; retry", path);
    if (size < 0)
        return tdb_err(err, TDB_EIO, "tier_move_failed", "cannot read %s for the cold copy: %s", path,
                       strerror((int)-size));
    int rc = objstore_put_file(store, key, path, err);
    if (rc && !fio_exists(path))
        return tdb_err(err, TDB_EBUSY, "collection_changed",
                       "%s was replaced (compaction) while the cold copy was made; retry", path);
    if (rc) return rc;
    objstore_info oi;
    if ((rc = objstore_head(store, key, &oi, err)) != 0) return rc;
    if (oi.size_bytes != (uint64_t)size || !oi.has_crc32c)
        return tdb_err(err, TDB_EIO, "tier_move_failed",
                       "cold copy of %s is %llu bytes in the object store, %lld locally", name,
                       (unsigned long long)oi.size_bytes, (long long)size);
    /* The file may have changed between put and now only if our caller's
     * guarantee broke; comparing the local CRC closes that gap. */
    const void *map;
    size_t len;
    int e = fio_mmap_file(path, &map, &len);
    if (e == -ENOENT)
        return tdb_err(err, TDB_EBUSY, "collection_changed",
                       "%s was replaced (compaction) while the cold copy was made; retry", path);
    if (e != 0)
        return tdb_err(err, TDB_EIO, "tier_move_failed", "cannot map %s: %s", path, strerror(-e));
    uint32_t local_crc = crc32c(map, len);
    fio_munmap(map, len);
    if (len != (size_t)size || local_crc != oi.crc32c)
        return tdb_err(err, TDB_EIO, "tier_move_failed",
                       "%s changed while it was copied to the object store", path);
    if (index->len > 0 && index->data[index->len - 1] != '[') buf_putc(index, ',');
    buf_puts(index, "{\"name\":");
    json_write_string(index, name, strlen(name));
    buf_printf(index, ",\"size\":%llu,\"crc32c\":%u}", (unsigned long long)size, oi.crc32c);
    info->files++;
    info->bytes += (uint64_t)size;
    return 0;
}

/* Reads dir/MANIFEST into *data (malloc'd) and loads the manifest from
 * those same bytes' file; the caller compares the bytes again later. */
static int read_manifest(const char *dir, char **data, size_t *len, tdb_error *err) {
    char path[TIER_MAX_PATH];
    if (!pathf(path, sizeof path, "%s/MANIFEST", dir))
        return tdb_err(err, TDB_EINVAL, "tier_move_failed", "path too long: %s", dir);
    int e = fio_read_file(path, data, len);
    if (e == -ENOENT) { /* nothing flushed yet: an empty collection */
        *data = NULL;
        *len = 0;
        return 0;
    }
    if (e != 0)
        return tdb_err(err, TDB_EIO, "tier_move_failed", "cannot read %s: %s", path, strerror(-e));
    return 0;
}

int tier_copy_upload(objstore *store, const char *dir, const char *prefix, tier_copy_info *out,
                     tdb_error *err) {
    memset(out, 0, sizeof *out);
    /* The MANIFEST is the copy's commit point, so the bytes uploaded are the
     * bytes whose segment list is copied: read once, load, read again
     * (a compaction may replace it at any moment), and compare once more
     * after the segments are up. Any difference aborts the copy. */
    char *before = NULL, *again = NULL, *after = NULL;
    size_t before_len = 0, again_len = 0, after_len = 0;
    manifest m = {0};
    buf index = BUF_INIT;
    int rc = read_manifest(dir, &before, &before_len, err);
    if (rc) return rc;
    if ((rc = manifest_load(dir, &m, err)) != 0) goto done;
    if ((rc = read_manifest(dir, &again, &again_len, err)) != 0) goto done;
    if (again_len != before_len || (before_len && memcmp(again, before, before_len) != 0)) {
        rc = tdb_err(err, TDB_EBUSY, "collection_changed",
                     "%s/MANIFEST changed while it was read; the copy will be retried", dir);
        goto done;
    }
    buf_printf(&index, "{\"format\":%d,\"files\":[", TIER_FILES_FORMAT);
    for (size_t i = 0; i < m.segment_count; i++) {
        char name[64];
        segment_name(m.segments[i].id, name);
        if ((rc = upload_one(store, dir, prefix, name, &index, out, err)) != 0) goto done;
    }
    if ((rc = read_manifest(dir, &after, &after_len, err)) != 0) goto done;
    if (after_len != before_len || (before_len && memcmp(after, before, before_len) != 0)) {
        rc = tdb_err(err, TDB_EBUSY, "collection_changed",
                     "%s/MANIFEST changed while the copy was uploaded; it will be retried", dir);
        goto done;
    }
    char key[OBJSTORE_MAX_KEY_BYTES + 1];
    if (before_len > 0) {
        if (!pathf(key, sizeof key, "%s/MANIFEST", prefix)) {
            rc = tdb_err(err, TDB_EINVAL, "tier_move_failed", "key too long: %s", prefix);
            goto done;
        }
        if ((rc = objstore_put(store, key, before, before_len, err)) != 0) goto done;
        objstore_info oi;
        if ((rc = objstore_head(store, key, &oi, err)) != 0) goto done;
        if (oi.size_bytes != before_len || !oi.has_crc32c ||
            oi.crc32c != crc32c(before, before_len)) {
            rc = tdb_err(err, TDB_EIO, "tier_move_failed", "the cold copy of MANIFEST did not verify");
            goto done;
        }
        if (index.len > 0 && index.data[index.len - 1] != '[') buf_putc(&index, ',');
        buf_printf(&index, "{\"name\":\"MANIFEST\",\"size\":%zu,\"crc32c\":%u}", before_len,
                   oi.crc32c);
        out->files++;
        out->bytes += before_len;
        out->manifest_len = before_len;
        out->manifest_crc = oi.crc32c;
    }
    buf_puts(&index, "]}");
    if (buf_failed(&index)) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    if (!pathf(key, sizeof key, "%s/FILES", prefix)) {
        rc = tdb_err(err, TDB_EINVAL, "tier_move_failed", "key too long: %s", prefix);
        goto done;
    }
    rc = objstore_put(store, key, index.data, index.len, err); /* invariant 1: last */
    if (rc == 0) out->bytes += index.len;
done:
    buf_free(&index);
    manifest_clear(&m);
    free(before);
    free(again);
    free(after);
    return rc;
}

/* A file name from FILES: only names this module writes are accepted, so a
 * tampered index cannot write outside the directory. */
static bool name_ok(const char *name, size_t len) {
    if (len == 8 && memcmp(name, "MANIFEST", 8) == 0) return true;
    if (len != 33 || memcmp(name, "segments/", 9) != 0 || memcmp(name + 29, ".seg", 4) != 0)
        return false;
    for (size_t i = 9; i < 29; i++)
        if (name[i] < '0' || name[i] > '9') return false;
    return true;
}

int tier_copy_download(objstore *store, const char *prefix, const char *dir, tdb_error *err) {
    char key[OBJSTORE_MAX_KEY_BYTES + 1], incoming[TIER_MAX_PATH], path[TIER_MAX_PATH];
    if (!pathf(key, sizeof key, "%s/FILES", prefix) ||
        !pathf(incoming, sizeof incoming, "%s.incoming", dir))
        return tdb_err(err, TDB_EINVAL, "tier_move_failed", "path too long: %s", dir);
    void *data = NULL;
    size_t len = 0;
    json_doc *doc = NULL;
    int rc = objstore_get(store, key, &data, &len, err);
    if (rc) return rc;
    json_error je;
    if (json_parse(data, len, &doc, &je) != 0) {
        rc = tdb_err(err, TDB_ECORRUPT, "corrupt_data", "cold copy index %s is not JSON: %s", key,
                     je.message);
        goto done;
    }
    const json_value *files = json_get(json_root(doc), "files");
    if (files == NULL || files->type != JSON_ARRAY) {
        rc = tdb_err(err, TDB_ECORRUPT, "corrupt_data", "cold copy index %s has no file list", key);
        goto done;
    }
    fio_rmtree(incoming);
    pathf(path, sizeof path, "%s/segments", incoming);
    int e = fio_mkdir_p(path);
    if (e != 0) {
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot create %s: %s", path, strerror(-e));
        goto done;
    }
    for (const json_value *f = files->child; f; f = f->next) {
        const json_value *name = json_get(f, "name"), *size = json_get(f, "size"),
                         *crc = json_get(f, "crc32c");
        if (!name || name->type != JSON_STRING || !name_ok(name->str, name->len) || !size ||
            !size->is_int || !crc || !crc->is_int) {
            rc = tdb_err(err, TDB_ECORRUPT, "corrupt_data", "cold copy index %s: bad entry", key);
            goto done;
        }
        if (!pathf(key, sizeof key, "%s/%s", prefix, name->str) ||
            !pathf(path, sizeof path, "%s/%s", incoming, name->str)) {
            rc = tdb_err(err, TDB_EINVAL, "tier_move_failed", "path too long: %s", incoming);
            goto done;
        }
        objstore_info oi;
        if ((rc = objstore_head(store, key, &oi, err)) != 0) goto done;
        if (oi.size_bytes != (uint64_t)size->i64 || oi.crc32c != (uint32_t)crc->i64) {
            rc = tdb_err(err, TDB_ECORRUPT, "corrupt_data",
                         "object %s does not match the cold copy index", key);
            goto done;
        }
        /* objstore_get_file verifies the content's CRC32C and fsyncs. */
        if ((rc = objstore_get_file(store, key, path, err)) != 0) goto done;
    }
    pathf(path, sizeof path, "%s/segments", incoming);
    if ((e = fio_fsync_dir(path)) != 0 || (e = fio_fsync_dir(incoming)) != 0 ||
        (e = fio_rename(incoming, dir)) != 0) {
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot move %s into place: %s", incoming,
                     strerror(-e));
        goto done;
    }
    /* Make the rename durable: fsync the parent directory. */
    pathf(path, sizeof path, "%s", dir);
    char *slash = strrchr(path, '/');
    if (slash) *slash = '\0';
    if ((e = fio_fsync_dir(slash ? path : ".")) != 0)
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot fsync %s: %s", path, strerror(-e));
done:
    if (rc) fio_rmtree(incoming);
    json_doc_free(doc);
    free(data);
    return rc;
}

int tier_copy_delete(objstore *store, const char *prefix, tdb_error *err) {
    char *after = NULL;
    int rc = 0;
    char pfx[OBJSTORE_MAX_KEY_BYTES + 2];
    if (!pathf(pfx, sizeof pfx, "%s/", prefix))
        return tdb_err(err, TDB_EINVAL, "tier_move_failed", "key too long: %s", prefix);
    for (;;) {
        objstore_page page = {0};
        rc = objstore_list(store, pfx, after, 0, &page, err);
        free(after);
        after = NULL;
        if (rc) {
            objstore_page_free(&page);
            break;
        }
        for (size_t i = 0; i < page.count && rc == 0; i++)
            rc = objstore_delete(store, page.entries[i].key, err);
        if (page.next) after = strdup(page.next);
        objstore_page_free(&page);
        if (rc || after == NULL) break;
    }
    free(after);
    return rc;
}

bool tier_copy_current(const char *dir, const tier_copy_info *info) {
    char *data = NULL;
    size_t len = 0;
    if (read_manifest(dir, &data, &len, NULL) != 0) return false;
    bool same = len == info->manifest_len && (len == 0 || crc32c(data, len) == info->manifest_crc);
    free(data);
    return same;
}
