/*
 * bm25.h: BM25 ranking over the text indexes of one segment or memtable,
 * with corpus-wide statistics from outside, top-k by block-max WAND.
 * Layer: text. Definition and examples: docs/text.md.
 *
 * Score of a row for query terms t (distinct, in query order) over fields f:
 *   score = sum over (f, t) with tf > 0 of
 *           w_f * idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl_f))
 *   idf(t) = ln(1 + (N_f - df_f(t) + 0.5) / (df_f(t) + 0.5)), k1 = 1.2, b = 0.75
 * tf and dl are the row's own; N_f (documents with the field), avgdl_f and
 * df_f(t) are corpus-wide: the caller sums text_index_stats and df over the
 * memtable and every segment (and decides whether deleted rows count), so
 * a row scores the same whichever segment holds it. Contributions are
 * summed in the order of `terms`, so the float result does not depend on
 * the search path either.
 *
 * Results: rows with score > min_score (0 by default: every row matching a
 * term), best first, ties by row ascending (segment rows are in id order,
 * so ties go by id). Deleted rows (bitset) and rows the accept callback
 * refuses never appear; they are checked only for rows that would enter
 * the top k, so a costly callback runs rarely.
 *
 * Concurrency: text_search only reads its sources; segment sources may be
 * shared by any number of threads, memtable sources need the memtable's
 * read lock held for the call.
 */
#ifndef TDB_TEXT_BM25_H
#define TDB_TEXT_BM25_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/index.h"
#include "tierdb.h"

/* Most (field, term) pairs one query may hold: bounds per-query work and
 * stack buffers; a longer query is TDB_EINVAL. */
#define TEXT_MAX_QUERY_TERMS 1024u
/* Largest k (API.md top_k). */
#define TEXT_MAX_K 10000u

/* One field of the searched source, with its corpus-wide statistics. */
typedef struct text_field_source {
    const text_memindex *mem; /* the field's index in this source: mem or seg, */
    const text_segindex *seg; /* or neither when the source lacks the field */
    double weight;            /* per-field weight (1.0 = plain BM25) */
    uint64_t doc_count;       /* N: documents with the field, corpus-wide */
    double avg_length;        /* avgdl: their total length / N, corpus-wide */
} text_field_source;

typedef struct text_query_term {
    uint32_t field;           /* index into the fields array */
    const char *bytes;        /* analyzed term (the field's analyzer) */
    uint32_t len;
    uint64_t df;              /* corpus-wide document frequency in that field */
} text_query_term;

typedef struct text_search_opts {
    uint32_t k;               /* 1..TEXT_MAX_K */
    double min_score;         /* only rows scoring above it (0: all matches) */
    const uint64_t *deleted;  /* bitset over rows (bit r % 64 of word r / 64), or NULL */
    uint64_t deleted_rows;    /* rows the bitset covers; rows past it are live */
    bool (*accept)(void *ctx, uint32_t row); /* optional filter */
    void *accept_ctx;
} text_search_opts;

typedef struct text_hit {
    uint32_t row;
    double score;
} text_hit;

/* Search counters (optional), to see how much block-max WAND skipped. */
typedef struct text_search_stats {
    uint64_t scored;          /* rows fully scored */
    uint64_t blocks_decoded;
    uint64_t postings;        /* postings in the query's terms */
} text_search_stats;

/* idf as defined above (df clamped to N). */
double text_bm25_idf(uint64_t doc_count, uint64_t df);

/* Top-k by block-max WAND (Ding & Suel 2011). hits has room for opts->k;
 * *n_hits is set. TDB_EINVAL for bad arguments, TDB_ECORRUPT when a
 * segment block fails to decode, TDB_ENOMEM. stats may be NULL. */
int text_search(const text_field_source *fields, uint32_t n_fields, const text_query_term *terms,
                uint32_t n_terms, const text_search_opts *opts, text_hit *hits, uint32_t *n_hits,
                text_search_stats *stats, tdb_error *err);

/* The same answer by scoring every posting (for `exact` queries and as the
 * reference in tests). Memory: one double per row of the source. */
int text_search_exhaustive(const text_field_source *fields, uint32_t n_fields,
                           const text_query_term *terms, uint32_t n_terms,
                           const text_search_opts *opts, text_hit *hits, uint32_t *n_hits,
                           tdb_error *err);

#endif
