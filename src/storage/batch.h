/*
 * batch.h: the payload of the engine's WAL records: one upsert batch or
 * one delete batch per record (one record per st_upsert / st_delete call,
 * which is what makes a call all or nothing).
 * Layer: storage. Encoded by collection.c before wal_append, decoded by
 * recovery.c during wal_replay. Format: batch.c and docs/storage.md.
 *
 * Decoding reads bytes from disk: every count and length is checked
 * against the payload's size (a CRC-valid record can still come from a
 * newer or buggy writer), failures are TDB_ECORRUPT, never a crash.
 * Ownership: decoded docs/keys point into the payload (valid as long as it
 * is); the arrays themselves are malloc'd and freed by the caller with
 * free().
 */
#ifndef TDB_STORAGE_BATCH_H
#define TDB_STORAGE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"
#include "util/buf.h"

/* WAL record types (the one-byte type of wal_append). */
#define BATCH_TYPE_UPSERT 1u
#define BATCH_TYPE_DELETE 2u

/* Payload format version, first byte of every payload. */
#define BATCH_FORMAT_VERSION 1u

/* One document of a batch, as the memtable takes it. vector points at
 * dimension little-endian float32 values that may be unaligned (inside a
 * payload); NULL when the dimension is 0. */
typedef struct batch_doc {
    const char *id;
    uint32_t id_len;
    const void *vector;
    const char *attrs;    /* NULL when attrs_len is 0 */
    uint32_t attrs_len;
} batch_doc;

/* Appends the upsert payload for docs to out (which the caller resets and
 * frees). Returns 0, TDB_ETOOBIG when it would exceed one WAL record, or
 * TDB_ENOMEM. */
int batch_encode_upsert(buf *out, uint32_t dimension, const st_doc *docs, size_t n,
                        tdb_error *err);
int batch_encode_delete(buf *out, const st_key *ids, size_t n, tdb_error *err);

/* Decodes an upsert payload written for this dimension. On success *docs
 * (malloc'd, NULL when *n is 0) points into p. TDB_ECORRUPT (message
 * saying what is wrong) or TDB_ENOMEM. */
int batch_decode_upsert(const uint8_t *p, size_t len, uint32_t dimension, batch_doc **docs,
                        size_t *n, tdb_error *err);
int batch_decode_delete(const uint8_t *p, size_t len, st_key **ids, size_t *n, tdb_error *err);

#endif
