/*
 * manifest.c: reads and durably replaces DIR/MANIFEST (manifest.h): the
 * list of live segment files with their delete lists, the checkpoint
 * seqno and the next segment id.
 * Layer: storage. Called by storage/collection.c (open, flush,
 * compaction); uses util/fileio for the durable replace. Same text:
 * docs/formats/manifest.md.
 *
 * Format (little-endian), one file, no padding:
 *   offset size  field
 *        0    4  magic 0x4E414D54 (the bytes "TMAN")
 *        4    4  format version (1)
 *        8    8  generation: rises by one per store
 *       16    8  checkpoint seqno: every WAL record <= it is in a live
 *                segment or superseded
 *       24    8  next segment id: larger than every id listed
 *       32    4  segment count S
 *       36       S segment entries, oldest first, each:
 *                  8  id (file segments/<id, 20 digits>.seg)
 *                  8  rows in the file (live or deleted)
 *                  8  size_bytes of the file
 *                  4  deleted count D
 *                4*D  deleted row numbers u32, strictly rising, each < rows
 *     end-4    4  CRC32C of every byte before it
 * Worked example: no segments is 36 + 4 = 40 bytes; one segment with two
 * deleted rows is 36 + (28 + 8) + 4 = 76 bytes.
 *
 * Invariants:
 *   (1) the rename of MANIFEST is the single commit point of a flush or a
 *       compaction: fio_write_file_atomic writes MANIFEST.tmp, fsyncs it,
 *       renames it over MANIFEST and fsyncs DIR, so a crash leaves the old
 *       or the new file whole, never a mix.
 *   (2) every file in segments/ is listed here or is garbage that
 *       collection open removes (a crash between writing a segment and
 *       this rename leaves such garbage).
 *   (3) segment ids are unique and below next_segment_id; ids start at 1
 *       (an absent MANIFEST says next_segment_id = 1).
 *   (4) the loader trusts no count: every count is checked against the
 *       bytes present before anything is allocated or read, so a hostile
 *       or damaged file costs at most its own size in memory.
 *
 * Concurrency: none inside; the engine serializes stores of one
 * collection (two concurrent stores would share MANIFEST.tmp).
 * Ownership: manifest_load fills a caller-owned struct whose arrays the
 * caller frees with manifest_clear; manifest_store only reads m.
 */
#include "storage/manifest.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/fileio.h"

#define MANIFEST_FILE_NAME "MANIFEST"
#define MANIFEST_MAGIC 0x4E414D54u /* "TMAN" little-endian */
/* Version history:
 *   1: first format (this one). */
#define MANIFEST_FORMAT_VERSION 1u

#define MANIFEST_MAGIC_OFFSET 0
#define MANIFEST_VERSION_OFFSET 4
#define MANIFEST_GENERATION_OFFSET 8
#define MANIFEST_CHECKPOINT_OFFSET 16
#define MANIFEST_NEXT_ID_OFFSET 24
#define MANIFEST_SEGMENT_COUNT_OFFSET 32
#define MANIFEST_HEADER_BYTES (4 + 4 + 8 + 8 + 8 + 4)
_Static_assert(MANIFEST_HEADER_BYTES == MANIFEST_SEGMENT_COUNT_OFFSET + 4,
               "the segment count ends the header");
/* Fixed part of a segment entry: id, rows, size_bytes, deleted count. */
#define MANIFEST_SEGMENT_BYTES (8 + 8 + 8 + 4)
#define MANIFEST_DELETED_ROW_BYTES 4
#define MANIFEST_CRC_BYTES 4
/* Smallest valid file: a header, no segments, the CRC. */
#define MANIFEST_MIN_BYTES (MANIFEST_HEADER_BYTES + MANIFEST_CRC_BYTES)

void manifest_clear(manifest *m) {
    if (m == NULL) return;
    for (size_t i = 0; i < m->segment_count; i++) free(m->segments[i].deleted);
    free(m->segments);
    memset(m, 0, sizeof *m);
}

static int manifest_path(const char *dir, char *out, size_t out_size, tdb_error *err) {
    if (snprintf(out, out_size, "%s/%s", dir, MANIFEST_FILE_NAME) >= (int)out_size)
        return tdb_err(err, TDB_EINVAL, NULL, "collection path too long: %s", dir);
    return 0;
}

static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Invariant (3): ids unique and below next_segment_id. Returns the index
 * of an offending segment, or -1 when all is well; *why says what. */
static long manifest_check_ids(const manifest *m, const char **why, bool *oom) {
    *oom = false;
    for (size_t i = 0; i < m->segment_count; i++)
        if (m->segments[i].id >= m->next_segment_id) {
            *why = "segment id not below next_segment_id";
            return (long)i;
        }
    if (m->segment_count < 2) return -1;
    uint64_t *ids = malloc(m->segment_count * sizeof *ids);
    if (ids == NULL) {
        *oom = true;
        return -1;
    }
    for (size_t i = 0; i < m->segment_count; i++) ids[i] = m->segments[i].id;
    qsort(ids, m->segment_count, sizeof *ids, u64_cmp);
    long bad = -1;
    for (size_t i = 1; i < m->segment_count; i++)
        if (ids[i] == ids[i - 1]) {
            for (size_t k = 0; k < m->segment_count; k++)
                if (m->segments[k].id == ids[i]) bad = (long)k;
            *why = "segment id listed twice";
            break;
        }
    free(ids);
    return bad;
}

/* Deleted rows strictly rising and below rows. */
static bool manifest_deleted_ok(const manifest_segment *s) {
    for (uint32_t k = 0; k < s->deleted_count; k++) {
        if (s->deleted[k] >= s->rows) return false;
        if (k > 0 && s->deleted[k] <= s->deleted[k - 1]) return false;
    }
    return true;
}

int manifest_load(const char *dir, manifest *out, tdb_error *err) {
    memset(out, 0, sizeof *out);
    char path[PATH_MAX];
    int rc = manifest_path(dir, path, sizeof path, err);
    if (rc < 0) return rc;
    char *data = NULL;
    size_t len = 0;
    int frc = fio_read_file(path, &data, &len);
    if (frc == -ENOENT) {
        out->next_segment_id = 1; /* invariant (3) */
        return 0;
    }
    if (frc < 0)
        return tdb_err(err, TDB_EIO, "io_error", "cannot read %s: %s", path, strerror(-frc));
    const uint8_t *p = (const uint8_t *)data;

    if (len < MANIFEST_MIN_BYTES) {
        rc = TDB_CORRUPT(err, path, len, "file of %zu bytes is shorter than the smallest MANIFEST (%d)",
                         len, MANIFEST_MIN_BYTES);
        goto done;
    }
    if (load_u32(p + MANIFEST_MAGIC_OFFSET) != MANIFEST_MAGIC) {
        rc = TDB_CORRUPT(err, path, 0, "not a MANIFEST (bad magic)");
        goto done;
    }
    uint32_t version = load_u32(p + MANIFEST_VERSION_OFFSET);
    if (version != MANIFEST_FORMAT_VERSION) {
        rc = TDB_CORRUPT(err, path, MANIFEST_VERSION_OFFSET,
                         "MANIFEST format version %u is not known to this build (it reads %u)",
                         version, MANIFEST_FORMAT_VERSION);
        goto done;
    }
    size_t body = len - MANIFEST_CRC_BYTES;
    if (crc32c(p, body) != load_u32(p + body)) {
        rc = TDB_CORRUPT(err, path, body, "MANIFEST checksum mismatch");
        goto done;
    }

    out->generation = load_u64(p + MANIFEST_GENERATION_OFFSET);
    out->checkpoint_seqno = load_u64(p + MANIFEST_CHECKPOINT_OFFSET);
    out->next_segment_id = load_u64(p + MANIFEST_NEXT_ID_OFFSET);
    uint32_t count = load_u32(p + MANIFEST_SEGMENT_COUNT_OFFSET);
    size_t off = MANIFEST_HEADER_BYTES;
    /* Invariant (4): bound the count by the bytes present before calloc. */
    if ((uint64_t)count * MANIFEST_SEGMENT_BYTES > body - off) {
        rc = TDB_CORRUPT(err, path, MANIFEST_SEGMENT_COUNT_OFFSET,
                         "segment count %u does not fit in %zu bytes", count, body - off);
        goto done;
    }
    if (count > 0) {
        out->segments = calloc(count, sizeof *out->segments);
        if (out->segments == NULL) {
            rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory loading %s", path);
            goto done;
        }
    }
    /* Invariant: [0, off) parsed; segments [0, segment_count) filled. */
    for (uint32_t i = 0; i < count; i++) {
        if (body - off < MANIFEST_SEGMENT_BYTES) {
            rc = TDB_CORRUPT(err, path, off, "segment entry %u cut off", i);
            goto done;
        }
        manifest_segment *s = &out->segments[i];
        s->id = load_u64(p + off);
        s->rows = load_u64(p + off + 8);
        s->size_bytes = load_u64(p + off + 16);
        uint32_t deleted = load_u32(p + off + 24);
        size_t entry = off;
        off += MANIFEST_SEGMENT_BYTES;
        if ((uint64_t)deleted * MANIFEST_DELETED_ROW_BYTES > body - off) {
            rc = TDB_CORRUPT(err, path, entry + 24,
                             "deleted count %u of segment %llu does not fit in %zu bytes", deleted,
                             (unsigned long long)s->id, body - off);
            goto done;
        }
        out->segment_count = i + 1; /* s is owned by out from here on */
        if (deleted > 0) {
            s->deleted = malloc((size_t)deleted * sizeof *s->deleted);
            if (s->deleted == NULL) {
                rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory loading %s", path);
                goto done;
            }
            for (uint32_t k = 0; k < deleted; k++)
                s->deleted[k] = load_u32(p + off + (size_t)k * MANIFEST_DELETED_ROW_BYTES);
            s->deleted_count = deleted;
            off += (size_t)deleted * MANIFEST_DELETED_ROW_BYTES;
        }
        if (!manifest_deleted_ok(s)) {
            rc = TDB_CORRUPT(err, path, entry,
                             "deleted rows of segment %llu are not strictly rising below %llu",
                             (unsigned long long)s->id, (unsigned long long)s->rows);
            goto done;
        }
    }
    if (off != body) {
        rc = TDB_CORRUPT(err, path, off, "%zu unexpected bytes after the last segment", body - off);
        goto done;
    }
    const char *why = NULL;
    bool oom;
    long bad = manifest_check_ids(out, &why, &oom);
    if (oom) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory loading %s", path);
        goto done;
    }
    if (bad >= 0) {
        rc = TDB_CORRUPT(err, path, MANIFEST_HEADER_BYTES, "%s (segment %llu)", why,
                         (unsigned long long)out->segments[bad].id);
        goto done;
    }
    rc = 0;
done:
    if (rc < 0) manifest_clear(out);
    free(data);
    return rc;
}

int manifest_store(const char *dir, const manifest *m, tdb_error *err) {
    char path[PATH_MAX];
    int rc = manifest_path(dir, path, sizeof path, err);
    if (rc < 0) return rc;
    /* The engine built m; a bad m is our bug, refused before it can reach
     * the disk and be found "corrupt" at the next open. */
    if (m->segment_count > UINT32_MAX)
        return tdb_err(err, TDB_EINTERNAL, NULL, "%zu segments do not fit a MANIFEST",
                       m->segment_count);
    for (size_t i = 0; i < m->segment_count; i++)
        if (!manifest_deleted_ok(&m->segments[i]) ||
            (m->segments[i].deleted_count > 0 && m->segments[i].deleted == NULL))
            return tdb_err(err, TDB_EINTERNAL, NULL,
                           "deleted rows of segment %llu are not strictly rising below its rows",
                           (unsigned long long)m->segments[i].id);
    const char *why = NULL;
    bool oom;
    long bad = manifest_check_ids(m, &why, &oom);
    if (oom) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory storing %s", path);
    if (bad >= 0)
        return tdb_err(err, TDB_EINTERNAL, NULL, "refusing to store %s: %s (segment %llu)", path,
                       why, (unsigned long long)m->segments[bad].id);

    buf b = BUF_INIT;
    buf_put_u32(&b, MANIFEST_MAGIC);
    buf_put_u32(&b, MANIFEST_FORMAT_VERSION);
    buf_put_u64(&b, m->generation);
    buf_put_u64(&b, m->checkpoint_seqno);
    buf_put_u64(&b, m->next_segment_id);
    buf_put_u32(&b, (uint32_t)m->segment_count);
    for (size_t i = 0; i < m->segment_count; i++) {
        const manifest_segment *s = &m->segments[i];
        buf_put_u64(&b, s->id);
        buf_put_u64(&b, s->rows);
        buf_put_u64(&b, s->size_bytes);
        buf_put_u32(&b, s->deleted_count);
        for (uint32_t k = 0; k < s->deleted_count; k++) buf_put_u32(&b, s->deleted[k]);
    }
    if (!buf_failed(&b)) buf_put_u32(&b, crc32c(b.data, b.len));
    if (buf_failed(&b)) {
        buf_free(&b);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory storing %s", path);
    }
    int frc = fio_write_file_atomic(path, b.data, b.len);
    buf_free(&b);
    if (frc < 0)
    {
        const struct fio_failure *f = fio_last_failure();
        return tdb_err(err, TDB_EIO, "io_error", "cannot store %s: %s failed: %s", path,
                       f->op ? f->op : "a file call", strerror(-frc));
    }
    return 0;
}
