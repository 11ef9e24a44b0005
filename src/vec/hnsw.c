/*
 * hnsw.c: the HNSW graph as one byte blob: its format, the writer used by
 * the build, and the validating reader that opens a view on it in place.
 * Layer: vec. The storage layer keeps the blob as an extra section of a
 * segment file (its CRC32C is the section's) and hands it back mmap'd;
 * hnsw_view_open checks it once, then searches read it directly.
 *
 * Where we depart from the paper (Malkov & Yashunin 2018), and why:
 *   1. Immutable graphs. A segment's graph is built once (flush,
 *      compaction) and never edited: deletes are rows of the segment's
 *      delete bitmap, passed to searches as a filter, and compaction
 *      rebuilds without them. No relinking code to get wrong, and the
 *      blob can be searched from a read-only mmap.
 *   2. Filtered search inside the walk. Rows a filter rejects are walked
 *      through but never enter the result list, and the walk only stops
 *      once ef accepted rows are found (or nothing is left); when it ends
 *      short of k, an exact pass over the unvisited rows completes the
 *      answer, so a filtered query returns min(k, matches) rows. Very
 *      selective filters are not sent here at all: plan.c scans their
 *      matches exactly.
 *   3. Quantized walks with re-ranking. With SQ8 codes the walk runs on
 *      code distances and the ef best are re-ranked by exact float
 *      distance; with RaBitQ codes the walk uses exact distances but
 *      computes one only when the code's lower bound says the row could
 *      enter the results (the paper's error bound, section 3.2 of RaBitQ).
 *   4. Deterministic levels. A row's level is a hash of (seed, row), not a
 *      draw from a shared generator, so parallel builds give every row the
 *      level a serial build would.
 *   5. Level-0 lists in one fixed-stride array, the same bytes in memory
 *      and on disk, so a view needs no pointer fix-ups.
 *
 * Blob format, version 1 (little-endian; all offsets from the blob start;
 * sections start on 64-byte boundaries, zero padding between them):
 *
 *   offset size  field
 *   0      4     magic "HNSW" (0x57534e48)
 *   4      4     version (1)
 *   8      4     header bytes (64)
 *   12     4     metric (tdb_metric)
 *   16     4     rows
 *   20     4     dim
 *   24     4     m
 *   28     4     m0 (= 2 m)
 *   32     4     ef_construction (informational)
 *   36     4     max_level
 *   40     4     entry row (0xffffffff when rows = 0)
 *   44     4     flags (0; readers refuse others)
 *   48     8     upper_words: uint32 words in the upper section
 *   56     8     links: total links at all levels (a cross-check)
 *   64           levels: rows x u8
 *   ...          upper_off: rows x u32, word offset of each row's block
 *   ...          upper: upper_words x u32; a row of level L has L lists of
 *                (1 + m) words (count, then links), level 1 first
 *   ...          level0: rows x (1 + m0) u32 (count, then links)
 *   end          (the blob ends exactly after level0)
 *
 * Rules the reader enforces (anything else is TDB_ECORRUPT): magic,
 * version, header size and flags known; rows, dim, metric equal the
 * segment's; m within HNSW_M_MIN..MAX and m0 = 2m; every level <=
 * max_level <= HNSW_MAX_LEVEL and some row (the entry) at max_level;
 * upper_off is the running sum of level x (1 + m) (so blocks neither
 * overlap nor leave the section); every count <= m or m0; every link <
 * rows, not the row itself, not repeated in its list, and at level l
 * only to rows whose level >= l; the link total matches; the length is
 * exact.
 *
 * Version history:
 *   1  first version.
 */
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/error.h"
#include "vec/hnsw_int.h"

#define HNSW_MAGIC 0x57534e48u
#define HNSW_VERSION 1u
#define HNSW_HEADER_BYTES 64u
#define HNSW_ALIGN 64u

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hnsw blobs are read in place as little-endian uint32 arrays"
#endif

static size_t align_up(size_t x) { return (x + HNSW_ALIGN - 1) & ~(size_t)(HNSW_ALIGN - 1); }

typedef struct layout {
    size_t levels, upper_off, upper, level0, end;
} layout;

/* Section offsets for a blob of these counts; false on size overflow. */
static bool blob_layout(uint64_t rows, uint64_t m0, uint64_t upper_words, layout *l) {
    if (rows > HNSW_MAX_ROWS || upper_words > (SIZE_MAX / 8) || m0 > 2 * HNSW_M_MAX) return false;
    l->levels = HNSW_HEADER_BYTES;
    l->upper_off = align_up(l->levels + rows);
    l->upper = align_up(l->upper_off + rows * 4);
    l->level0 = align_up(l->upper + upper_words * 4);
    l->end = l->level0 + rows * (1 + m0) * 4;
    return true;
}

int hnsw_serialize(const hnsw_graph *g, uint32_t entry, uint32_t max_level,
                   uint32_t ef_construction, void **blob_out, size_t *len_out, tdb_error *err) {
    uint32_t rows = g->rows, m = g->m;
    size_t upper_words = 0;
    uint64_t links = 0;
    for (uint32_t r = 0; r < rows; r++) {
        upper_words += (size_t)g->levels[r] * (1 + m);
        for (uint32_t l = 0; l <= g->levels[r]; l++) links += hnsw_links(g, r, l)[0];
    }
    layout lay;
    if (!blob_layout(rows, g->m0, upper_words, &lay))
        return tdb_err(err, TDB_EINVAL, "invalid_request", "graph too large to serialize");
    uint8_t *b = calloc(1, lay.end);
    if (!b) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory for a %zu-byte graph", lay.end);
    store_u32(b + 0, HNSW_MAGIC);
    store_u32(b + 4, HNSW_VERSION);
    store_u32(b + 8, HNSW_HEADER_BYTES);
    store_u32(b + 12, (uint32_t)g->metric);
    store_u32(b + 16, rows);
    store_u32(b + 20, g->dim);
    store_u32(b + 24, m);
    store_u32(b + 28, g->m0);
    store_u32(b + 32, ef_construction);
    store_u32(b + 36, rows ? max_level : 0);
    store_u32(b + 40, rows ? entry : HNSW_NONE);
    store_u32(b + 44, 0);
    store_u64(b + 48, upper_words);
    store_u64(b + 56, links);
    size_t off = 0;
    for (uint32_t r = 0; r < rows; r++) {
        uint32_t level = g->levels[r];
        b[lay.levels + r] = (uint8_t)level;
        store_u32(b + lay.upper_off + (size_t)r * 4, (uint32_t)off);
        if (level) memcpy(b + lay.upper + off * 4, hnsw_links(g, r, 1), (size_t)level * (1 + m) * 4);
        off += (size_t)level * (1 + m);
    }
    if (rows) memcpy(b + lay.level0, g->level0, (size_t)rows * (1 + g->m0) * 4);
    *blob_out = b;
    *len_out = lay.end;
    return 0;
}

#define CORRUPT(...) TDB_CORRUPT(err, "hnsw graph", 0, __VA_ARGS__)

/* Checks one list: count, range, self, level, duplicates (tags[] holds the
 * serial of the list that last saw each row). */
static int check_list(const uint32_t *l, uint32_t row, uint32_t level, uint32_t max, uint32_t rows,
                      const uint8_t *levels, uint32_t *tags, uint32_t serial, uint64_t *links,
                      tdb_error *err) {
    uint32_t n = l[0];
    if (n > max) return CORRUPT("row %u level %u: %u links, at most %u allowed", row, level, n, max);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t nb = l[1 + i];
        if (nb >= rows) return CORRUPT("row %u level %u: link to row %u of %u", row, level, nb, rows);
        if (nb == row) return CORRUPT("row %u level %u: links to itself", row, level);
        if (levels[nb] < level)
            return CORRUPT("row %u level %u: link to row %u of level %u", row, level, nb, levels[nb]);
        if (tags[nb] == serial) return CORRUPT("row %u level %u: row %u linked twice", row, level, nb);
        tags[nb] = serial;
    }
    *links += n;
    return 0;
}

int hnsw_view_open(const void *blob, size_t len, uint32_t rows, uint32_t dim, tdb_metric metric,
                   const float *vectors, const float *norms, hnsw_view **out, tdb_error *err) {
    *out = NULL;
    const uint8_t *b = blob;
    if (!b || ((uintptr_t)b & 3) != 0)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "graph blob must be 4-byte aligned");
    if (rows && !vectors) return tdb_err(err, TDB_EINVAL, "invalid_request", "graph view needs vectors");
    if (len < HNSW_HEADER_BYTES) return CORRUPT("graph blob of %zu bytes is shorter than its header", len);
    if (load_u32(b) != HNSW_MAGIC) return CORRUPT("graph blob has a bad magic");
    if (load_u32(b + 4) != HNSW_VERSION)
        return CORRUPT("graph blob version %u is not supported (this build reads %u)", load_u32(b + 4),
                       HNSW_VERSION);
    if (load_u32(b + 8) != HNSW_HEADER_BYTES || load_u32(b + 44) != 0)
        return CORRUPT("graph blob header size or flags unknown");
    uint32_t b_metric = load_u32(b + 12), b_rows = load_u32(b + 16), b_dim = load_u32(b + 20);
    uint32_t m = load_u32(b + 24), m0 = load_u32(b + 28), max_level = load_u32(b + 36);
    uint32_t entry = load_u32(b + 40);
    uint64_t upper_words = load_u64(b + 48), links_want = load_u64(b + 56);
    if (b_metric != (uint32_t)metric || b_rows != rows || b_dim != dim)
        return CORRUPT("graph blob is for %u rows of dim %u (metric %u), segment has %u of dim %u (%u)",
                       b_rows, b_dim, b_metric, rows, dim, (uint32_t)metric);
    if (m < HNSW_M_MIN || m > HNSW_M_MAX || m0 != 2 * m) return CORRUPT("graph blob m %u / m0 %u out of range", m, m0);
    if (max_level > HNSW_MAX_LEVEL) return CORRUPT("graph blob max level %u out of range", max_level);
    if (rows == 0 ? (entry != HNSW_NONE || max_level != 0) : entry >= rows)
        return CORRUPT("graph blob entry row %u out of range", entry);
    layout lay;
    if (!blob_layout(rows, m0, upper_words, &lay) || lay.end != len)
        return CORRUPT("graph blob is %zu bytes, its counts need %zu", len, lay.end);

    const uint8_t *levels = b + lay.levels;
    const uint32_t *upper_off = (const uint32_t *)(const void *)(b + lay.upper_off);
    const uint32_t *upper = (const uint32_t *)(const void *)(b + lay.upper);
    const uint32_t *level0 = (const uint32_t *)(const void *)(b + lay.level0);
    if (rows && levels[entry] != max_level)
        return CORRUPT("graph blob entry row %u has level %u, not the top level %u", entry, levels[entry], max_level);
    uint64_t off = 0;
    for (uint32_t r = 0; r < rows; r++) {
        if (levels[r] > max_level) return CORRUPT("row %u has level %u above the top %u", r, levels[r], max_level);
        if (upper_off[r] != off) return CORRUPT("row %u upper block at word %u, expected %llu", r, upper_off[r], (unsigned long long)off);
        off += (uint64_t)levels[r] * (1 + m);
    }
    if (off != upper_words) return CORRUPT("upper blocks need %llu words, header says %llu", (unsigned long long)off, (unsigned long long)upper_words);

    uint32_t *tags = calloc(rows ? rows : 1, sizeof *tags);
    if (!tags) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    uint32_t serial = 0;
    uint64_t links = 0;
    int rc = 0;
    for (uint32_t r = 0; r < rows && rc == 0; r++) {
        for (uint32_t l = 0; l <= levels[r] && rc == 0; l++) {
            if (++serial == 0) { /* wrapped: forget old tags */
                memset(tags, 0, (size_t)rows * sizeof *tags);
                serial = 1;
            }
            const uint32_t *list = l == 0 ? level0 + (size_t)r * (1 + m0)
                                          : upper + upper_off[r] + (size_t)(l - 1) * (1 + m);
            rc = check_list(list, r, l, l ? m : m0, rows, levels, tags, serial, &links, err);
        }
    }
    free(tags);
    if (rc) return rc;
    if (links != links_want) return CORRUPT("graph blob holds %llu links, header says %llu", (unsigned long long)links, (unsigned long long)links_want);

    hnsw_view *v = calloc(1, sizeof *v);
    if (!v) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    v->g.rows = rows;
    v->g.dim = dim;
    v->g.m = m;
    v->g.m0 = m0;
    v->g.metric = metric;
    v->g.level0 = level0;
    v->g.levels = levels;
    v->g.upper_off = upper_off;
    v->g.upper = upper;
    v->g.vectors = vectors;
    v->g.norms = norms;
    v->entry = entry;
    v->max_level = max_level;
    v->ef_construction = load_u32(b + 32);
    v->links = links;
    *out = v;
    return 0;
}

void hnsw_view_close(hnsw_view *v) { free(v); }

void hnsw_view_use_sq8(hnsw_view *v, const sq8_view *codes) {
    v->sq8 = codes;
    if (codes) v->rq = NULL;
}

void hnsw_view_use_rabitq(hnsw_view *v, const rabitq_view *codes) {
    v->rq = codes;
    if (codes) v->sq8 = NULL;
}

uint32_t hnsw_view_rows(const hnsw_view *v) { return v->g.rows; }
uint32_t hnsw_view_m(const hnsw_view *v) { return v->g.m; }
uint32_t hnsw_view_max_level(const hnsw_view *v) { return v->max_level; }
uint64_t hnsw_view_links(const hnsw_view *v) { return v->links; }

bool hnsw_view_check(const hnsw_view *v) {
    const hnsw_graph *g = &v->g;
    if (g->rows == 0) return v->entry == HNSW_NONE;
    if (v->entry >= g->rows || g->levels[v->entry] != v->max_level) return false;
    if (v->sq8 && (v->sq8->rows != g->rows || v->sq8->dim != g->dim)) return false;
    if (v->rq && (v->rq->rows != g->rows || v->rq->dim != g->dim)) return false;
    uint64_t links = 0;
    for (uint32_t r = 0; r < g->rows; r++)
        for (uint32_t l = 0; l <= g->levels[r]; l++) {
            const uint32_t *list = hnsw_links(g, r, l);
            if (list[0] > (l ? g->m : g->m0)) return false;
            for (uint32_t i = 0; i < list[0]; i++)
                if (list[1 + i] >= g->rows || list[1 + i] == r || g->levels[list[1 + i]] < l) return false;
            links += list[0];
        }
    return links == v->links;
}
