/*
 * segment.h: immutable segment files: rows sorted by id, each with its
 * seqno, vector and attribute JSON, in checksummed sections used in place
 * through mmap.
 * Layer: storage. Written by flush and compaction (storage/collection.c),
 * read by every query. Format: segment.c and docs/formats/segment.md.
 *
 * Layout (little-endian): a header (magic, format version, dimension,
 * metric, row count), then sections, each 64-byte aligned, then a footer
 * holding the section table (kind, offset, length, CRC32C per section),
 * its own CRC32C, and a trailer (footer offset, magic) at the very end.
 * Section kinds known now: ids (offsets + bytes), seqnos, vectors (rows x
 * dimension float32, 64-byte aligned), norms (float32 per row), attrs
 * (offsets + bytes), and the optional attrcols (typed attribute columns,
 * built by seg_write from the rows' JSON: storage/attrcol.h). Later layers add kinds (graph, codes, postings,
 * attribute columns) through seg_extra; a reader ignores kinds it does not
 * know only when they are marked optional.
 *
 * Invariants of an opened segment (checked by seg_open, else TDB_ECORRUPT):
 *   (1) every section lies inside the file and its CRC32C matches;
 *   (2) ids are strictly increasing in byte order (memcmp, then length);
 *   (3) every offset table is monotonic and ends inside its blob.
 * Concurrency: a segment is immutable after seg_open; any number of
 * threads may read it. Ownership: seg_close unmaps and frees.
 */
#ifndef TDB_STORAGE_SEGMENT_H
#define TDB_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"

/* One row given to seg_write; pointers are only read during the call. */
typedef struct seg_row {
    const char *id;
    uint32_t id_len;
    uint64_t seqno;
    const float *vector;  /* dimension floats (ignored when dimension is 0) */
    const char *attrs;    /* JSON object text; NULL/0 for none */
    uint32_t attrs_len;
} seg_row;

/* An extra section supplied by a higher layer (e.g. an HNSW graph). */
typedef struct seg_extra {
    uint32_t kind;        /* >= SEG_KIND_EXTRA_BASE */
    const void *data;
    size_t len;
} seg_extra;

#define SEG_KIND_EXTRA_BASE 1000u

typedef struct segment segment;

/* Writes rows (strictly increasing ids) to path durably: path.tmp, fsync,
 * rename, fsync the directory. On failure nothing is left at path. */
int seg_write(const char *path, uint32_t dimension, tdb_metric metric, const seg_row *rows,
              size_t n, const seg_extra *extras, size_t n_extras, tdb_error *err);

/* Maps and verifies a segment. dimension must match the file's. */
int seg_open(const char *path, uint32_t dimension, segment **out, tdb_error *err);
void seg_close(segment *s); /* NULL is a no-op */

uint64_t seg_rows(const segment *s);
uint64_t seg_file_bytes(const segment *s);
const char *seg_id(const segment *s, uint64_t row, uint32_t *len);
uint64_t seg_seqno(const segment *s, uint64_t row);
const float *seg_vector(const segment *s, uint64_t row);  /* NULL when dimension is 0 */
const float *seg_vectors(const segment *s);               /* row-major, 64-byte aligned */
const float *seg_norms(const segment *s);                 /* |v| per row */
const char *seg_attrs(const segment *s, uint64_t row, uint32_t *len);
/* Row of id, or -1. */
int64_t seg_find(const segment *s, const char *id, uint32_t len);
/* First row whose id is > id (upper) or >= id (lower); seg_rows() if none. */
uint64_t seg_lower_bound(const segment *s, const char *id, uint32_t len);
uint64_t seg_upper_bound(const segment *s, const char *id, uint32_t len);
/* An extra section by kind: 0 and data/len, or TDB_ENOTFOUND. */
int seg_extra_get(const segment *s, uint32_t kind, const void **data, size_t *len);

/* Typed attribute columns (section ATTRCOLS, storage/attrcol.h): NULL when
 * the file has none (written before columns existed, or no attribute fits
 * one). Lives until seg_close. */
struct attrcol;
const struct attrcol *seg_attrcols(const segment *s);
/* A number no other segment opened by this process has had: tells apart a
 * segment from one opened later at the same address. */
uint64_t seg_serial(const segment *s);
/* The open segment with columns whose id bytes hold `id` (a pointer that
 * seg_id returned) and its row, or NULL when id points elsewhere (a
 * memtable, a copy, a segment without columns). The caller must hold what
 * keeps that segment open (a view of the collection). */
const segment *seg_locate(const char *id, uint64_t *row);
/* The row of s whose id bytes start at `id` (trying row `hint` first), or
 * false when id does not point at the start of one of s's ids. */
bool seg_row_of_id(const segment *s, const char *id, uint64_t hint, uint64_t *row);
/* The bytes of every id, back to back (what seg_id points into). */
const char *seg_id_blob(const segment *s, size_t *len);
/* Changes whenever a segment with columns is opened or closed: a result of
 * seg_locate cached under one generation stays right while it is current. */
uint64_t seg_registry_generation(void);

/* Id order used everywhere: memcmp over the common prefix, then shorter
 * first (the byte order of UTF-8 ids). */
static inline int seg_id_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen) {
    uint32_t m = alen < blen ? alen : blen;
    int c = m ? __builtin_memcmp(a, b, m) : 0;
    if (c != 0) return c;
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

#endif
