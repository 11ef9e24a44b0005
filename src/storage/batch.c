/*
 * batch.c: encoding and decoding of WAL batch payloads, side by side.
 * Layer: storage. Interface: batch.h. Same text: docs/storage.md.
 *
 * Format (little-endian; the WAL record around it carries length, seqno,
 * type and CRC32C):
 *
 *   upsert (record type 1)
 *     u8   version (1)
 *     u32  dimension            must equal the collection's
 *     u32  count
 *     count times:
 *       u32  id_len             1 .. ST_MAX_ID_BYTES
 *       id_len bytes            the id
 *       u32  attrs_len          0 = no attributes
 *       attrs_len bytes         attribute JSON text, verbatim
 *       dimension x f32         the vector
 *
 *   delete (record type 2)
 *     u8   version (1)
 *     u32  count
 *     count times: u32 id_len (1 .. ST_MAX_ID_BYTES), id_len bytes
 *
 * A payload must be consumed exactly: trailing bytes are corruption.
 * Duplicate ids inside one batch are legal (the later one wins); the
 * engine resolves them when applying, so replay resolves them the same.
 *
 * Version history: 1 - first version.
 */
#include "storage/batch.h"

#include <stdlib.h>
#include <string.h>

#include "storage/wal.h"
#include "util/error.h"

#define BATCH_UPSERT_HEADER_BYTES (1 + 4 + 4)
#define BATCH_DELETE_HEADER_BYTES (1 + 4)
#define BATCH_LEN_BYTES 4

int batch_encode_upsert(buf *out, uint32_t dimension, const st_doc *docs, size_t n,
                        tdb_error *err) {
    /* Size first: one reservation, and the record limit checked before
     * any copying. */
    uint64_t total = BATCH_UPSERT_HEADER_BYTES;
    for (size_t i = 0; i < n; i++)
        total += 2 * BATCH_LEN_BYTES + (uint64_t)docs[i].id_len + docs[i].attrs_len +
                 (uint64_t)dimension * sizeof(float);
    if (total > WAL_MAX_RECORD_BYTES || n > UINT32_MAX)
        return tdb_err(err, TDB_ETOOBIG, "batch_too_large",
                       "the batch encodes to %llu bytes, over the %u-byte limit of one write; "
                       "split it into smaller requests",
                       (unsigned long long)total, (unsigned)WAL_MAX_RECORD_BYTES);
    if (!buf_reserve(out, (size_t)total))
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory encoding a batch of %zu documents", n);
    buf_put_u8(out, BATCH_FORMAT_VERSION);
    buf_put_u32(out, dimension);
    buf_put_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        buf_put_u32(out, docs[i].id_len);
        buf_append(out, docs[i].id, docs[i].id_len);
        uint32_t alen = docs[i].attrs ? docs[i].attrs_len : 0;
        buf_put_u32(out, alen);
        buf_append(out, docs[i].attrs, alen);
        if (dimension) buf_append(out, docs[i].vector, (size_t)dimension * sizeof(float));
    }
    if (buf_failed(out)) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory encoding a batch");
    return 0;
}

int batch_encode_delete(buf *out, const st_key *ids, size_t n, tdb_error *err) {
    uint64_t total = BATCH_DELETE_HEADER_BYTES;
    for (size_t i = 0; i < n; i++) total += BATCH_LEN_BYTES + (uint64_t)ids[i].id_len;
    if (total > WAL_MAX_RECORD_BYTES || n > UINT32_MAX)
        return tdb_err(err, TDB_ETOOBIG, "batch_too_large",
                       "the delete batch encodes to %llu bytes, over the %u-byte limit of one "
                       "write; split it into smaller requests",
                       (unsigned long long)total, (unsigned)WAL_MAX_RECORD_BYTES);
    if (!buf_reserve(out, (size_t)total))
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory encoding a batch of %zu ids", n);
    buf_put_u8(out, BATCH_FORMAT_VERSION);
    buf_put_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        buf_put_u32(out, ids[i].id_len);
        buf_append(out, ids[i].id, ids[i].id_len);
    }
    if (buf_failed(out)) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory encoding a batch");
    return 0;
}

/* A bounds-checked reader over a payload: every take fails once the bytes
 * run out, so a decoder checks once per field. */
typedef struct reader {
    const uint8_t *p;
    size_t len;
    size_t off;
} reader;

static bool take_u32(reader *r, uint32_t *v) {
    if (r->len - r->off < 4) return false;
    *v = load_u32(r->p + r->off);
    r->off += 4;
    return true;
}

static bool take_bytes(reader *r, size_t n, const uint8_t **out) {
    if (r->len - r->off < n) return false;
    *out = r->p + r->off;
    r->off += n;
    return true;
}

static int bad(tdb_error *err, const reader *r, const char *what) {
    return tdb_err(err, TDB_ECORRUPT, "corrupt_data", "bad batch payload at byte %zu of %zu: %s",
                   r->off, r->len, what);
}

static int take_version(reader *r, tdb_error *err) {
    if (r->len < 1) return bad(err, r, "empty payload");
    uint8_t version = r->p[r->off++];
    if (version != BATCH_FORMAT_VERSION)
        return bad(err, r, "unknown batch format version (written by a newer tierdb?)");
    return 0;
}

static int take_id(reader *r, const char **id, uint32_t *id_len, tdb_error *err) {
    const uint8_t *bytes;
    if (!take_u32(r, id_len)) return bad(err, r, "id length cut off");
    if (*id_len == 0 || *id_len > ST_MAX_ID_BYTES) return bad(err, r, "id length out of range");
    if (!take_bytes(r, *id_len, &bytes)) return bad(err, r, "id cut off");
    *id = (const char *)bytes;
    return 0;
}

int batch_decode_upsert(const uint8_t *p, size_t len, uint32_t dimension, batch_doc **docs,
                        size_t *n, tdb_error *err) {
    *docs = NULL;
    *n = 0;
    reader r = {p, len, 0};
    uint32_t count, file_dim;
    size_t vec_bytes = (size_t)dimension * sizeof(float);
    /* The smallest document: a garbage count cannot ask for more items
     * than the payload could hold, so it cannot ask for a huge array. */
    size_t min_item = 2 * BATCH_LEN_BYTES + 1 + vec_bytes;
    int rc = take_version(&r, err);
    if (rc < 0) return rc;
    if (!take_u32(&r, &file_dim) || !take_u32(&r, &count)) return bad(err, &r, "header cut off");
    if (file_dim != dimension) return bad(err, &r, "dimension differs from the collection's");
    if (count > (r.len - r.off) / min_item) return bad(err, &r, "count larger than the payload");
    batch_doc *out = NULL;
    if (count > 0) {
        out = calloc(count, sizeof *out);
        if (out == NULL)
            return tdb_err(err, TDB_ENOMEM, NULL, "out of memory decoding a batch of %u", count);
    }
    for (uint32_t i = 0; i < count; i++) {
        batch_doc *d = &out[i];
        rc = take_id(&r, &d->id, &d->id_len, err);
        if (rc < 0) goto fail;
        const uint8_t *bytes;
        if (!take_u32(&r, &d->attrs_len)) {
            rc = bad(err, &r, "attributes length cut off");
            goto fail;
        }
        if (!take_bytes(&r, d->attrs_len, &bytes)) {
            rc = bad(err, &r, "attributes cut off");
            goto fail;
        }
        d->attrs = d->attrs_len ? (const char *)bytes : NULL;
        if (!take_bytes(&r, vec_bytes, &bytes)) {
            rc = bad(err, &r, "vector cut off");
            goto fail;
        }
        d->vector = dimension ? bytes : NULL;
    }
    if (r.off != r.len) {
        rc = bad(err, &r, "trailing bytes after the last document");
        goto fail;
    }
    *docs = out;
    *n = count;
    return 0;
fail:
    free(out);
    return rc;
}

int batch_decode_delete(const uint8_t *p, size_t len, st_key **ids, size_t *n, tdb_error *err) {
    *ids = NULL;
    *n = 0;
    reader r = {p, len, 0};
    uint32_t count;
    size_t min_item = BATCH_LEN_BYTES + 1;
    int rc = take_version(&r, err);
    if (rc < 0) return rc;
    if (!take_u32(&r, &count)) return bad(err, &r, "header cut off");
    if (count > (r.len - r.off) / min_item) return bad(err, &r, "count larger than the payload");
    st_key *out = NULL;
    if (count > 0) {
        out = calloc(count, sizeof *out);
        if (out == NULL)
            return tdb_err(err, TDB_ENOMEM, NULL, "out of memory decoding a batch of %u", count);
    }
    for (uint32_t i = 0; i < count; i++) {
        rc = take_id(&r, &out[i].id, &out[i].id_len, err);
        if (rc < 0) goto fail;
    }
    if (r.off != r.len) {
        rc = bad(err, &r, "trailing bytes after the last id");
        goto fail;
    }
    *ids = out;
    *n = count;
    return 0;
fail:
    free(out);
    return rc;
}
