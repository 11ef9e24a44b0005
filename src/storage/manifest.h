/*
 * manifest.h: the MANIFEST file of a collection: which segment files are
 * live, their delete lists, and the checkpoint seqno (every WAL record at
 * or below it is in a live segment or superseded).
 * Layer: storage. Format: manifest.c and docs/formats/manifest.md.
 *
 * The rename of MANIFEST is the single commit point of a flush or a
 * compaction: before it the old state holds, after it the new one.
 * Invariant: every file in segments/ is listed in MANIFEST or is garbage
 * that collection open removes.
 */
#ifndef TDB_STORAGE_MANIFEST_H
#define TDB_STORAGE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"

typedef struct manifest_segment {
    uint64_t id;            /* file segments/<id, 20 digits>.seg */
    uint64_t rows;          /* rows in the file (live or deleted) */
    uint64_t size_bytes;    /* file size, checked at open */
    uint32_t *deleted;      /* sorted row numbers deleted since the file was written */
    uint32_t deleted_count;
} manifest_segment;

typedef struct manifest {
    uint64_t generation;        /* rises by one per store */
    uint64_t checkpoint_seqno;
    uint64_t next_segment_id;
    manifest_segment *segments; /* oldest first */
    size_t segment_count;
} manifest;

/* Loads DIR/MANIFEST. An absent file gives an empty manifest (returns 0).
 * A bad magic, version or checksum is TDB_ECORRUPT. On success the caller
 * owns *out and frees it with manifest_clear. */
int manifest_load(const char *dir, manifest *out, tdb_error *err);
/* Durably replaces DIR/MANIFEST with m (generation is stored as given). */
int manifest_store(const char *dir, const manifest *m, tdb_error *err);
void manifest_clear(manifest *m);

#endif
