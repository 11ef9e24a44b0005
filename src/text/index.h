/*
 * index.h: inverted indexes of one full-text field: the mutable in-memory
 * index of a memtable (text_memindex) and the immutable serialized form a
 * segment stores (text_segindex, one byte blob per field).
 * Layer: text. Search over either is in bm25.h; docs/text.md describes the
 * blob format for users of the files.
 *
 * Rows: both indexes key documents by a row id (uint32) chosen by the
 * storage layer: memtable row ids while in memory, segment row ids (rows
 * sorted by document id) once flushed. text_memindex_serialize maps the
 * first to the second.
 *
 * Statistics for BM25 come from outside (bm25.h): each index reports its
 * local doc_count (rows holding the field), total_length (sum of field
 * lengths) and df(term); the caller sums them over the memtable and every
 * segment, so a score never depends on how documents are split.
 *
 * Blob format (version 1), little-endian, offsets from the blob start,
 * every section starting at a multiple of 8 (zero padding between):
 *   header, 64 bytes:
 *     0  u32 magic TEXT_SEG_MAGIC ("TXI1")
 *     4  u16 version (1)           6  u16 header bytes (64)
 *     8  u32 block size (128)     12  u32 row_count (rows of the segment)
 *    16  u32 doc_count            20  u32 term_count
 *    24  u64 total_length         32  u64 posting_count (sum of df)
 *    40  u64 term_bytes_len       48  u64 postings_len
 *    56  u32 block_count          60  u32 reserved (0)
 *   lengths:      u32 x row_count; field length (tokens) per row, 0 when
 *                 the row has no value for the field
 *   term offsets: u32 x (term_count + 1) into term bytes; starts at 0,
 *                 ends at term_bytes_len; each term 1..255 bytes
 *   term bytes:   the terms, strictly increasing in byte order (memcmp,
 *                 then shorter first), so lookups binary-search
 *   term entries: 8 bytes per term: u32 df, u32 first block; the term's
 *                 ceil(df / 128) blocks are consecutive in the block table
 *   block table:  48 bytes per block:
 *                  0 u32 last row      4 u32 data offset in postings
 *                  8 u16 postings (128, fewer only in a term's last block)
 *                 10 u8 doc bits      11 u8 tf bits
 *                 12 u8 impacts (1..4) 13..15 zero
 *                 16 4 x (u32 tf, u32 field length): impacts, see below
 *   postings:     per block: row gaps bit-packed (doc bits each, LSB first,
 *                 padded to a byte), then tf - 1 bit-packed (tf bits each,
 *                 padded). Gap = row - previous row - 1; the previous row of
 *                 a term's first block is -1, of a later block the last row
 *                 of the block before. A block's bytes end where the next
 *                 block's begin (the last one at postings_len).
 * Impacts (for block-max WAND): pairs (tf, dl) such that every posting of
 * the block is dominated by one (posting tf <= tf and posting dl >= dl).
 * BM25 grows with tf and shrinks with dl for any avgdl, so the best score
 * over the pairs bounds every score in the block whatever the corpus-wide
 * statistics are at query time; keeping up to 4 pairs (the Pareto frontier,
 * merged down) keeps that bound tight without fixing avgdl at flush time.
 *
 * text_segindex_open checks, without copying: magic, version, sizes (the
 * blob must be exactly as long as the counts say), monotonic offsets, term
 * order, df sums, each block's postings count, bit widths, data length and
 * last row (strictly increasing, < row_count). Block contents are checked
 * when decoded (the decoded last row must equal the table's). Violations
 * are TDB_ECORRUPT. The storage layer's section CRC32C covers bit flips.
 *
 * Concurrency: a text_segindex is immutable and thread-safe. A
 * text_memindex is not: callers serialize writers against readers (the
 * memtable's lock). Ownership: *_free releases the index; a segindex
 * borrows the blob, which must outlive it.
 */
#ifndef TDB_TEXT_INDEX_H
#define TDB_TEXT_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/analyzer.h"
#include "tierdb.h"
#include "util/buf.h"

#define TEXT_SEG_MAGIC 0x31495854u /* "TXI1" little-endian */
#define TEXT_SEG_VERSION 1u
#define TEXT_SEG_HEADER_BYTES 64u
/* Postings per block: a block is the unit of skipping and of max-score
 * bounds; 128 gaps fit a cache-friendly decode buffer. */
#define TEXT_BLOCK_SIZE 128u
#define TEXT_BLOCK_ENTRY_BYTES 48u
#define TEXT_TERM_ENTRY_BYTES 8u
/* Impact pairs kept per block (see above). */
#define TEXT_MAX_IMPACTS 4u
/* Row ids are < TEXT_MAX_ROWS (UINT32_MAX marks "none"). */
#define TEXT_MAX_ROWS 0xFFFFFFF0u
#define TEXT_ROW_NONE 0xFFFFFFFFu

/* Local statistics of one index (summed by the caller over all sources). */
typedef struct text_index_stats {
    uint64_t doc_count;     /* rows holding the field */
    uint64_t total_length;  /* sum of their field lengths (tokens) */
    uint64_t term_count;    /* distinct live terms */
    uint64_t posting_count; /* sum of df */
} text_index_stats;

/* ---- in-memory index (memtable) ------------------------------------- */

typedef struct text_memindex text_memindex;

int text_memindex_new(text_memindex **out, tdb_error *err);
void text_memindex_free(text_memindex *m); /* NULL is a no-op */

/* Indexes the field value of `row` given as analyzed tokens (duplicates
 * count as term frequency; the token count is the field length). A row
 * may be added once; adding it again without removing it first is
 * TDB_EINVAL. Rows are cheapest when added in increasing order.
 * TDB_ENOMEM leaves the index as it was. */
int text_memindex_add(text_memindex *m, uint32_t row, const text_tokens *tokens, tdb_error *err);
/* Removes a row's postings and its share of the statistics. Returns 1 if
 * the row was indexed, 0 if not. */
int text_memindex_remove(text_memindex *m, uint32_t row);
bool text_memindex_has(const text_memindex *m, uint32_t row);
/* Field length of a row (0 if not indexed). */
uint32_t text_memindex_length(const text_memindex *m, uint32_t row);
void text_memindex_stats(const text_memindex *m, text_index_stats *out);
/* Live document frequency of a term (0 if absent). */
uint32_t text_memindex_df(const text_memindex *m, const char *term, uint32_t len);
/* Checks every invariant of memindex.c's overview (for asserts and
 * tests); false when one fails. Linear in the index size. */
bool text_memindex_check(const text_memindex *m);
/* Heap bytes held (for memtable accounting). */
size_t text_memindex_memory_bytes(const text_memindex *m);

/* Serializes the index as a segment blob (format above), appended to out.
 * row_map[r] is the segment row of memtable row r, or TEXT_ROW_NONE to
 * leave it out (deleted or superseded); row_map_len covers every memtable
 * row (missing entries mean TEXT_ROW_NONE). row_map NULL: identity.
 * row_count: rows of the segment (every mapped row must be < row_count).
 * Returns 0, TDB_EINVAL (a mapped row out of range or mapped twice),
 * TDB_ENOMEM. */
int text_memindex_serialize(const text_memindex *m, const uint32_t *row_map, size_t row_map_len,
                            uint32_t row_count, buf *out, tdb_error *err);

/* ---- immutable serialized index (segment) --------------------------- */

typedef struct text_segindex text_segindex;

/* Opens a blob in place (no copy; the blob must outlive the index and stay
 * unchanged). TDB_ECORRUPT (message says what is wrong; `name` names the
 * blob in it, e.g. the segment path and field) or TDB_ENOMEM. */
int text_segindex_open(const void *blob, size_t len, const char *name, text_segindex **out,
                       tdb_error *err);
void text_segindex_free(text_segindex *s); /* NULL is a no-op; the blob is not touched */
void text_segindex_stats(const text_segindex *s, text_index_stats *out);
uint32_t text_segindex_row_count(const text_segindex *s);
uint32_t text_segindex_df(const text_segindex *s, const char *term, uint32_t len);
uint32_t text_segindex_length(const text_segindex *s, uint32_t row);
/* Decodes every block (open checks only the tables): TDB_ECORRUPT on the
 * first bad block. For tests and integrity checks. */
int text_segindex_verify(const text_segindex *s, tdb_error *err);

#endif
