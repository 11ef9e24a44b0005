/*
 * segindex.c: the immutable, serialized inverted index of one field of a
 * segment (format in index.h and docs/text.md), opened in place.
 * Layer: text. The storage layer keeps the blob as a segment extra section
 * and hands us a read-only pointer into its mmap; we never copy it.
 *
 * Every count and offset is checked at open against the blob's length, in
 * time linear in terms + blocks + rows (no posting is decoded): a hostile
 * or damaged blob gives TDB_ECORRUPT, never a read outside the blob. Block
 * payloads are validated when decoded (the last decoded row must equal the
 * block table's, rows rise strictly by construction).
 * Concurrency: immutable after open; thread-safe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/postings.h"
#include "util/error.h"

/* Header field offsets (index.h). */
#define H_MAGIC 0
#define H_VERSION 4
#define H_HEADER_BYTES 6
#define H_BLOCK_SIZE 8
#define H_ROW_COUNT 12
#define H_DOC_COUNT 16
#define H_TERM_COUNT 20
#define H_TOTAL_LENGTH 24
#define H_POSTING_COUNT 32
#define H_TERM_BYTES 40
#define H_POSTINGS_LEN 48
#define H_BLOCK_COUNT 56
#define H_RESERVED 60

/* Widest allowed fields: gaps fit 32 bits; tf - 1 fits 31 so tf never
 * wraps when we add 1. */
#define MAX_DOC_BITS 32u
#define MAX_TF_BITS 31u

static uint64_t align8(uint64_t v) { return (v + 7) & ~(uint64_t)7; }

#define CORRUPT(off, ...) TDB_CORRUPT(err, name, (uint64_t)(off), __VA_ARGS__)

int text_segindex_open(const void *blob, size_t len, const char *name, text_segindex **out,
                       tdb_error *err) {
    *out = NULL;
    const uint8_t *b = blob;
    if (!name) name = "text index";
    if (len < TEXT_SEG_HEADER_BYTES)
        return CORRUPT(0, "text index blob of %zu bytes is shorter than its header", len);
    if (load_u32(b + H_MAGIC) != TEXT_SEG_MAGIC)
        return CORRUPT(0, "bad text index magic 0x%08x", load_u32(b));
    if (load_u16(b + H_VERSION) != TEXT_SEG_VERSION)
        return CORRUPT(H_VERSION,
                       "text index format version %u is not supported (this build reads %u)",
                       load_u16(b + H_VERSION), TEXT_SEG_VERSION);
    if (load_u16(b + H_HEADER_BYTES) != TEXT_SEG_HEADER_BYTES ||
        load_u32(b + H_BLOCK_SIZE) != TEXT_BLOCK_SIZE || load_u32(b + H_RESERVED) != 0)
        return CORRUPT(H_HEADER_BYTES,
                       "text index header has unknown header size, block size or flags");
    uint32_t row_count = load_u32(b + H_ROW_COUNT);
    uint32_t doc_count = load_u32(b + H_DOC_COUNT);
    uint32_t term_count = load_u32(b + H_TERM_COUNT);
    uint64_t total_length = load_u64(b + H_TOTAL_LENGTH);
    uint64_t posting_count = load_u64(b + H_POSTING_COUNT);
    uint64_t term_bytes_len = load_u64(b + H_TERM_BYTES);
    uint64_t postings_len = load_u64(b + H_POSTINGS_LEN);
    uint32_t block_count = load_u32(b + H_BLOCK_COUNT);
    if (row_count > TEXT_MAX_ROWS || doc_count > row_count)
        return CORRUPT(H_ROW_COUNT, "text index counts %u documents in %u rows", doc_count,
                       row_count);
    /* Each bound keeps the sums below far from overflow: every section
     * must fit in len (< 2^63). */
    if (term_bytes_len > len || postings_len > len || (uint64_t)term_count > len ||
        (uint64_t)block_count * TEXT_BLOCK_ENTRY_BYTES > len)
        return CORRUPT(H_TERM_COUNT, "text index section sizes exceed the blob (%zu bytes)", len);
    uint64_t off_lengths = TEXT_SEG_HEADER_BYTES;
    uint64_t off_term_offs = align8(off_lengths + 4ull * row_count);
    uint64_t off_term_bytes = align8(off_term_offs + 4ull * (term_count + 1ull));
    uint64_t off_entries = align8(off_term_bytes + term_bytes_len);
    uint64_t off_blocks = align8(off_entries + (uint64_t)TEXT_TERM_ENTRY_BYTES * term_count);
    uint64_t off_postings = align8(off_blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * block_count);
    uint64_t end = align8(off_postings + postings_len);
    if (end != len)
        return CORRUPT(0, "text index blob is %zu bytes but its header describes %llu", len,
                       (unsigned long long)end);

    text_segindex *s = calloc(1, sizeof(*s));
    if (!s) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening a text index");
    s->blob = b;
    s->len = len;
    s->row_count = row_count;
    s->doc_count = doc_count;
    s->term_count = term_count;
    s->block_count = block_count;
    s->total_length = total_length;
    s->posting_count = posting_count;
    s->lengths = b + off_lengths;
    s->term_offs = b + off_term_offs;
    s->term_bytes = b + off_term_bytes;
    s->term_entries = b + off_entries;
    s->blocks = b + off_blocks;
    s->postings = b + off_postings;
    s->postings_len = postings_len;
    snprintf(s->name, sizeof(s->name), "%s", name);
    int rc = 0;

    /* Field lengths: the sum must match the header. */
    uint64_t sum_len = 0, nonzero = 0;
    for (uint32_t r = 0; r < row_count; r++) {
        uint32_t dl = load_u32(s->lengths + 4ull * r);
        sum_len += dl;
        nonzero += dl != 0;
    }
    if (sum_len != total_length || nonzero > doc_count) {
        rc = CORRUPT(off_lengths, "text index field lengths sum to %llu, header says %llu",
                     (unsigned long long)sum_len, (unsigned long long)total_length);
        goto fail;
    }
    /* Terms: offsets rise, each term 1..255 bytes, strictly increasing. */
    if (load_u32(s->term_offs) != 0 ||
        load_u32(s->term_offs + 4ull * term_count) != term_bytes_len) {
        rc = CORRUPT(off_term_offs, "text index term offsets do not span the term bytes");
        goto fail;
    }
    uint64_t sum_df = 0;
    uint32_t next_block = 0;
    for (uint32_t t = 0; t < term_count; t++) {
        uint32_t a = load_u32(s->term_offs + 4ull * t), z = load_u32(s->term_offs + 4ull * t + 4);
        if (z <= a || z - a > TEXT_MAX_TOKEN_BYTES || z > term_bytes_len) {
            rc = CORRUPT(off_term_offs + 4ull * t, "text index term %u has a bad offset or length",
                         t);
            goto fail;
        }
        if (t > 0) {
            uint32_t pa = load_u32(s->term_offs + 4ull * (t - 1));
            uint32_t plen = a - pa, clen = z - a, m = plen < clen ? plen : clen;
            int c = memcmp(s->term_bytes + pa, s->term_bytes + a, m);
            if (c > 0 || (c == 0 && plen >= clen)) {
                rc = CORRUPT(off_term_bytes + a,
                             "text index terms are not in strictly increasing order at term %u", t);
                goto fail;
            }
        }
        const uint8_t *e = s->term_entries + (uint64_t)TEXT_TERM_ENTRY_BYTES * t;
        uint32_t df = load_u32(e), first = load_u32(e + 4);
        uint32_t nb = (uint32_t)(((uint64_t)df + TEXT_BLOCK_SIZE - 1) / TEXT_BLOCK_SIZE);
        if (df == 0 || df > doc_count || first != next_block ||
            (uint64_t)first + nb > block_count) {
            rc = CORRUPT(off_entries + (uint64_t)TEXT_TERM_ENTRY_BYTES * t,
                         "text index term %u has df %u and first block %u (expected %u of %u)", t,
                         df, first, next_block, block_count);
            goto fail;
        }
        sum_df += df;
        /* Its blocks: counts, widths, lengths, rising last rows. */
        int64_t prev_last = -1;
        for (uint32_t k = 0; k < nb; k++) {
            uint32_t bi = first + k;
            const uint8_t *be = s->blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * bi;
            uint32_t n = seg_block_n(be),
                     want_n = k + 1 < nb ? TEXT_BLOCK_SIZE : df - k * TEXT_BLOCK_SIZE;
            uint32_t last = seg_block_last(be), db = seg_block_doc_bits(be),
                     tb = seg_block_tf_bits(be);
            uint32_t ni = seg_block_impacts(be);
            uint64_t data_off = seg_block_off(be);
            uint64_t data_end =
                bi + 1 < block_count ? seg_block_off(be + TEXT_BLOCK_ENTRY_BYTES) : postings_len;
            if (n != want_n || db > MAX_DOC_BITS || tb > MAX_TF_BITS || ni == 0 ||
                ni > TEXT_MAX_IMPACTS || (int64_t)last <= prev_last || last >= row_count ||
                (int64_t)last - prev_last < n || data_end < data_off || data_end > postings_len ||
                data_end - data_off != seg_block_data_bytes(n, db, tb) ||
                (bi == 0 && data_off != 0)) {
                rc = CORRUPT(off_blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * bi,
                             "text index block %u (term %u) is inconsistent", bi, t);
                goto fail;
            }
            prev_last = last;
        }
        next_block = first + nb;
    }
    if (next_block != block_count || sum_df != posting_count) {
        rc = CORRUPT(
            H_BLOCK_COUNT, "text index holds %u blocks and %llu postings, header says %u and %llu",
            next_block, (unsigned long long)sum_df, block_count, (unsigned long long)posting_count);
        goto fail;
    }
    if (block_count == 0 && postings_len != 0) {
        rc = CORRUPT(H_POSTINGS_LEN, "text index has postings bytes but no blocks");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    free(s);
    return rc;
}

void text_segindex_free(text_segindex *s) { free(s); }

void text_segindex_stats(const text_segindex *s, text_index_stats *out) {
    out->doc_count = s->doc_count;
    out->total_length = s->total_length;
    out->term_count = s->term_count;
    out->posting_count = s->posting_count;
}

uint32_t text_segindex_row_count(const text_segindex *s) { return s->row_count; }

uint32_t text_segindex_length(const text_segindex *s, uint32_t row) {
    return row < s->row_count ? load_u32(s->lengths + 4ull * row) : 0;
}

int64_t seg_term_find(const text_segindex *s, const char *term, uint32_t len) {
    uint32_t lo = 0, hi = s->term_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t a = load_u32(s->term_offs + 4ull * mid),
                 z = load_u32(s->term_offs + 4ull * mid + 4);
        uint32_t tl = z - a, m = tl < len ? tl : len;
        int c = memcmp(s->term_bytes + a, term, m);
        if (c == 0) c = tl < len ? -1 : (tl > len ? 1 : 0);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

uint32_t text_segindex_df(const text_segindex *s, const char *term, uint32_t len) {
    int64_t t = seg_term_find(s, term, len);
    return t < 0 ? 0 : load_u32(s->term_entries + (uint64_t)TEXT_TERM_ENTRY_BYTES * t);
}

/* Unpacks n values of `bits` bits (LSB first) from exactly
 * ceil(n * bits / 8) bytes at p. */
static const uint8_t *unpack_bits(const uint8_t *p, uint32_t n, uint32_t bits, uint32_t *v) {
    if (bits == 0) {
        memset(v, 0, n * sizeof(*v));
        return p;
    }
    const uint8_t *end = p + ((uint64_t)n * bits + 7) / 8;
    uint64_t mask = bits == 32 ? 0xFFFFFFFFull : ((1ull << bits) - 1);
    uint64_t acc = 0;
    uint32_t have = 0;
    uint32_t i = 0;
    /* Fast part: refill 32 bits at a time while 4 whole bytes remain. */
    while (i < n && p + 4 <= end) {
        if (have < bits) {
            acc |= (uint64_t)load_u32(p) << have;
            p += 4;
            have += 32;
        }
        v[i++] = (uint32_t)(acc & mask);
        acc >>= bits;
        have -= bits;
    }
    while (i < n) {
        while (have < bits) {
            acc |= (uint64_t)*p++ << have;
            have += 8;
        }
        v[i++] = (uint32_t)(acc & mask);
        acc >>= bits;
        have -= bits;
    }
    return p;
}

bool seg_block_decode(const uint8_t *data, uint32_t n, uint32_t doc_bits, uint32_t tf_bits,
                      int64_t prev_row, uint32_t last, uint32_t *rows, uint32_t *tfs) {
    const uint8_t *p = unpack_bits(data, n, doc_bits, rows);
    unpack_bits(p, n, tf_bits, tfs);
    uint64_t r = (uint64_t)(prev_row + 1);
    for (uint32_t i = 0; i < n; i++) {
        r += rows[i];
        rows[i] = (uint32_t)r; /* r <= last is checked below; a larger r fails that check */
        r++;
        tfs[i]++;
    }
    return n > 0 && r - 1 == last;
}

int text_segindex_verify(const text_segindex *s, tdb_error *err) {
    uint32_t rows[TEXT_BLOCK_SIZE], tfs[TEXT_BLOCK_SIZE];
    const char *name = s->name;
    for (uint32_t t = 0; t < s->term_count; t++) {
        const uint8_t *e = s->term_entries + (uint64_t)TEXT_TERM_ENTRY_BYTES * t;
        uint32_t df = load_u32(e), first = load_u32(e + 4);
        uint32_t nb = (df + TEXT_BLOCK_SIZE - 1) / TEXT_BLOCK_SIZE;
        int64_t prev = -1;
        for (uint32_t k = 0; k < nb; k++) {
            const uint8_t *be = s->blocks + (uint64_t)TEXT_BLOCK_ENTRY_BYTES * (first + k);
            uint32_t n = seg_block_n(be), last = seg_block_last(be);
            if (!seg_block_decode(s->postings + seg_block_off(be), n, seg_block_doc_bits(be),
                                  seg_block_tf_bits(be), prev, last, rows, tfs))
                return CORRUPT(
                    (uint64_t)(s->postings - s->blob) + seg_block_off(be),
                    "text index block %u of term %u decodes to rows that do not end at %u",
                    first + k, t, last);
            for (uint32_t i = 0; i < n; i++) {
                uint32_t dl = load_u32(s->lengths + 4ull * rows[i]);
                if (dl < tfs[i])
                    return CORRUPT((uint64_t)(s->postings - s->blob) + seg_block_off(be),
                                   "text index row %u has tf %u above its field length %u", rows[i],
                                   tfs[i], dl);
            }
            prev = last;
        }
    }
    return 0;
}
