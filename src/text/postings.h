/*
 * postings.h: internals shared by the text layer's index and search code:
 * the in-memory and mapped index structures, the bit-packing codec of
 * posting blocks, and the posting cursor that block-max WAND drives.
 * Layer: text (internal; other layers use index.h and bm25.h).
 *
 * A cursor walks one term's postings in one field of one index, block by
 * block. For a segment a block is decoded into the cursor's buffers; for a
 * memtable a block is a 128-entry slice of the term's posting arrays, used
 * in place. Either way the search loop sees the same arrays (rows, tfs),
 * a block's last row (for shallow skips) and its score bound.
 */
#ifndef TDB_TEXT_POSTINGS_H
#define TDB_TEXT_POSTINGS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "text/index.h"

/* ---- memtable index internals ---------------------------------------- */

/* One term's postings, sorted by row. A removed row keeps its entry with
 * tf 0 (a tombstone) until the index is freed or serialized: removal costs
 * a binary search instead of a memmove of a long array. */
typedef struct mem_term {
    uint32_t bytes_off;  /* term bytes in text_memindex.arena */
    uint32_t len;
    uint32_t hash;
    uint32_t n;          /* entries, tombstones included */
    uint32_t cap;
    uint32_t df;         /* live entries */
    uint32_t max_tf;     /* >= every live tf (never lowered: a bound) */
    uint32_t min_dl;     /* <= every live row's length (never raised) */
    uint32_t *rows;
    uint32_t *tfs;       /* 0 = tombstone */
} mem_term;

/* Per memtable row: where its distinct term ids sit in `fwd` (so removal
 * can find its postings without the text). */
typedef struct mem_row {
    uint32_t fwd_off;
    uint32_t n_terms;    /* distinct terms */
    uint32_t length;     /* field length */
    uint32_t present;    /* 1 while indexed */
} mem_row;

struct text_memindex {
    mem_term *terms;     /* by term id */
    uint32_t term_count;
    uint32_t term_cap;
    uint32_t live_terms; /* terms with df > 0 */
    uint64_t *slots;     /* hash table: hash << 32 | (term id + 1), 0 = empty */
    uint32_t slot_mask;
    char *arena;         /* term bytes, back to back */
    size_t arena_len, arena_cap;
    mem_row *rows;       /* by row id, grown to the largest row + 1 */
    uint32_t rows_cap;
    uint32_t *fwd;       /* distinct term ids of rows, appended */
    size_t fwd_len, fwd_cap;
    size_t fwd_dead;     /* entries of removed rows still in fwd */
    uint32_t max_row_added; /* largest row ever added + 1 (0: none) */
    uint64_t doc_count;
    uint64_t total_length;
    uint64_t posting_count;
    /* scratch for add (term ids of the document) */
    uint32_t *scratch;
    size_t scratch_cap;
};

/* Term id of a term, or -1. */
int64_t mem_term_find(const text_memindex *m, const char *term, uint32_t len);

/* ---- segment index internals ----------------------------------------- */

struct text_segindex {
    const uint8_t *blob;
    size_t len;
    uint32_t row_count;
    uint32_t doc_count;
    uint32_t term_count;
    uint32_t block_count;
    uint64_t total_length;
    uint64_t posting_count;
    const uint8_t *lengths;      /* u32 x row_count */
    const uint8_t *term_offs;    /* u32 x (term_count + 1) */
    const uint8_t *term_bytes;
    const uint8_t *term_entries; /* TEXT_TERM_ENTRY_BYTES x term_count */
    const uint8_t *blocks;       /* TEXT_BLOCK_ENTRY_BYTES x block_count */
    const uint8_t *postings;
    uint64_t postings_len;
    char name[128];              /* for messages */
};

/* Term index of a term, or -1. */
int64_t seg_term_find(const text_segindex *s, const char *term, uint32_t len);

/* Block table entry fields. */
static inline uint32_t seg_block_last(const uint8_t *e) { return load_u32(e); }
static inline uint32_t seg_block_off(const uint8_t *e) { return load_u32(e + 4); }
static inline uint32_t seg_block_n(const uint8_t *e) { return load_u16(e + 8); }
static inline uint32_t seg_block_doc_bits(const uint8_t *e) { return e[10]; }
static inline uint32_t seg_block_tf_bits(const uint8_t *e) { return e[11]; }
static inline uint32_t seg_block_impacts(const uint8_t *e) { return e[12]; }
static inline uint32_t seg_block_impact_tf(const uint8_t *e, uint32_t i) {
    return load_u32(e + 16 + 8 * i);
}
static inline uint32_t seg_block_impact_dl(const uint8_t *e, uint32_t i) {
    return load_u32(e + 20 + 8 * i);
}

/* Bytes of a block's data: gaps then tfs, each padded to a byte. */
static inline uint64_t seg_block_data_bytes(uint32_t n, uint32_t doc_bits, uint32_t tf_bits) {
    return ((uint64_t)n * doc_bits + 7) / 8 + ((uint64_t)n * tf_bits + 7) / 8;
}

/* Decodes one block (n entries, data of exactly seg_block_data_bytes) into
 * rows/tfs. prev_row: the row before the block (-1 as int64 for the first).
 * Returns false when the decoded last row differs from `last` (corrupt). */
bool seg_block_decode(const uint8_t *data, uint32_t n, uint32_t doc_bits, uint32_t tf_bits,
                      int64_t prev_row, uint32_t last, uint32_t *rows, uint32_t *tfs);

/* ---- bit packing ------------------------------------------------------ */

/* Bits needed for v (0 for 0). */
static inline uint32_t bits_for(uint32_t v) { return v ? 32u - (uint32_t)__builtin_clz(v) : 0u; }

/* ---- cursor ----------------------------------------------------------- */

#define TEXT_ROW_END 0xFFFFFFFFu

/* Okapi BM25 term weight (S. Robertson and H. Zaragoza, "The Probabilistic
 * Relevance Framework: BM25 and Beyond", 2009) of one posting:
 * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)), times the
 * field weight, in the reference's operation order so scores match it to
 * the last bit. */
typedef struct bm25_term {
    double idf;
    double weight;
    double avgdl;
} bm25_term;

#define BM25_K1 1.2
#define BM25_B 0.75

static inline double bm25_posting(const bm25_term *t, uint32_t tf, uint32_t dl) {
    double ftf = (double)tf;
    double norm = BM25_K1 * (1.0 - BM25_B + BM25_B * ((double)dl / t->avgdl));
    return t->weight * (t->idf * ftf * (BM25_K1 + 1.0) / (ftf + norm));
}

typedef struct text_cursor {
    /* position */
    uint32_t row;          /* current row, TEXT_ROW_END when exhausted */
    uint32_t tf;           /* its tf */
    uint32_t pos;          /* index in the current block */
    uint32_t n;            /* entries in the current block */
    const uint32_t *rows;  /* current block (decoded or in place) */
    const uint32_t *tfs;
    uint32_t blk;          /* current block, relative to the term */
    uint32_t n_blocks;
    uint32_t blk_last;     /* last row of block blk */
    bool decoded;          /* rows/tfs hold block blk */
    bool corrupt;          /* a block failed to decode: stop, report */
    double blk_max;        /* bound of block blk; < 0 = not computed */
    double max_score;      /* bound of the whole term */
    /* scoring */
    bm25_term score;
    uint32_t term_index;   /* position in the query (canonical sum order) */
    /* source: segment */
    const text_segindex *seg;
    const uint8_t *seg_blocks; /* this term's block entries */
    /* source: memtable */
    const text_memindex *mem;
    const mem_term *mt;
    uint32_t buf_rows[TEXT_BLOCK_SIZE];
    uint32_t buf_tfs[TEXT_BLOCK_SIZE];
} text_cursor;

#endif
