/*
 * fuzz_segment.c: libFuzzer target for storage/segment.c: seg_open on a
 * hostile file, then every accessor over every row.
 *
 * Input:
 *   byte 0   flags: bit 0 FUZZ_FLAG_FIX_CRC (recompute the header CRC,
 *            each section CRC the footer table names, and the footer
 *            CRC); bit 1 open with a dimension other than the header's
 *            (exercises the mismatch check); else the header's own.
 *   byte 1.. the segment file.
 *
 * Properties checked on a segment that opens (segment.h's invariants):
 *   - ids are strictly increasing in seg_id_cmp order, so seg_find,
 *     seg_lower_bound and seg_upper_bound find each row's own id;
 *   - every id, attribute range, seqno, vector and norm can be read in
 *     full (ASan catches a read outside the mapping);
 *   - extras are inside the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "storage/segment.h"
#include "util/crc32c.h"

#define SEG_HEADER_BYTES 64
#define SEG_HEADER_CRC_AT 60
#define SEG_DIM_AT 12
#define SEG_TRAILER_BYTES 16
#define SEG_FOOTER_FIXED 8
#define SEG_ENTRY_BYTES 32

/* Layout from segment.c's overview (docs/formats/segment.md). */
static void fix_crcs(uint8_t *p, size_t len) {
    if (len >= SEG_HEADER_BYTES) fuzz_put_le32(p + SEG_HEADER_CRC_AT, crc32c(p, SEG_HEADER_CRC_AT));
    if (len < SEG_TRAILER_BYTES) return;
    size_t limit = len - SEG_TRAILER_BYTES;
    uint64_t footer = fuzz_le64(p + limit);
    if (footer > limit || limit - footer < SEG_FOOTER_FIXED) return;
    uint64_t n = fuzz_le32(p + footer);
    uint64_t i;
    for (i = 0; i < n; i++) {
        uint64_t e = footer + SEG_FOOTER_FIXED + SEG_ENTRY_BYTES * i;
        if (e + SEG_ENTRY_BYTES > limit) break;
        uint64_t off = fuzz_le64(p + e + 8), slen = fuzz_le64(p + e + 16);
        if (off <= len && slen <= len - off) fuzz_put_le32(p + e + 24, crc32c(p + off, slen));
    }
    uint64_t body = SEG_FOOTER_FIXED + SEG_ENTRY_BYTES * n;
    if (i == n && footer + body + 4 <= limit) fuzz_put_le32(p + footer + body, crc32c(p + footer, body));
}

static void probe(const segment *s, const char *id, uint32_t len) {
    uint64_t rows = seg_rows(s);
    int64_t r = seg_find(s, id, len);
    uint64_t lo = seg_lower_bound(s, id, len), hi = seg_upper_bound(s, id, len);
    FUZZ_CHECK(lo <= hi && hi <= rows && hi - lo <= 1, "bounds %llu..%llu of %llu",
               (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)rows);
    FUZZ_CHECK(r == -1 ? lo == hi : (uint64_t)r == lo && hi == lo + 1, "find %lld vs bounds",
               (long long)r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    if (!init) {
        fuzz_quiet_log();
        init = true;
    }
    if (size < 1) return 0;
    uint8_t flags = data[0];
    size_t len = size - 1;
    uint8_t *bytes = fuzz_dup(data + 1, len);
    if (flags & FUZZ_FLAG_FIX_CRC) fix_crcs(bytes, len);
    uint32_t dimension = len >= SEG_DIM_AT + 4 ? fuzz_le32(bytes + SEG_DIM_AT) : 0;
    if (flags & 2) dimension = dimension ? dimension - 1 : 3;

    char path[700];
    snprintf(path, sizeof path, "%s/fuzz.seg", fuzz_root());
    fuzz_write_file(path, bytes, len);
    free(bytes);

    segment *s = NULL;
    tdb_error err;
    int rc = seg_open(path, dimension, &s, &err);
    if (rc != 0) {
        FUZZ_CHECK(s == NULL, "segment returned on failure");
        FUZZ_CHECK(rc == TDB_ECORRUPT || rc == TDB_EINVAL || rc == TDB_EIO || rc == TDB_ENOMEM,
                   "unexpected code %d: %s", rc, err.message);
        return 0;
    }
    FUZZ_CHECK(seg_file_bytes(s) == len, "file bytes %llu vs %zu",
               (unsigned long long)seg_file_bytes(s), len);
    uint64_t rows = seg_rows(s);
    const float *vectors = seg_vectors(s), *norms = seg_norms(s);
    if (dimension > 0) {
        FUZZ_CHECK(vectors != NULL && norms != NULL, "dimension %u without vectors", dimension);
        fuzz_touch(vectors, rows * dimension * sizeof(float));
        fuzz_touch(norms, rows * sizeof(float));
    }
    const char *prev = NULL;
    uint32_t prev_len = 0;
    for (uint64_t r = 0; r < rows; r++) {
        uint32_t id_len = 0, attrs_len = 0;
        const char *id = seg_id(s, r, &id_len);
        FUZZ_CHECK(id != NULL || id_len == 0, "row %llu: no id", (unsigned long long)r);
        fuzz_touch(id, id_len);
        if (r > 0)
            FUZZ_CHECK(seg_id_cmp(prev, prev_len, id, id_len) < 0, "row %llu: ids not increasing",
                       (unsigned long long)r);
        prev = id;
        prev_len = id_len;
        (void)seg_seqno(s, r);
        const float *v = seg_vector(s, r);
        if (dimension > 0) {
            FUZZ_CHECK(v != NULL, "row %llu: no vector", (unsigned long long)r);
            fuzz_touch(v, dimension * sizeof(float));
        }
        const char *attrs = seg_attrs(s, r, &attrs_len);
        if (attrs_len) fuzz_touch(attrs, attrs_len);
        /* Finding every row is O(rows log rows): enough for fuzz-sized files. */
        int64_t found = seg_find(s, id, id_len);
        FUZZ_CHECK(found == (int64_t)r, "row %llu: seg_find gives %lld", (unsigned long long)r,
                   (long long)found);
        FUZZ_CHECK(seg_lower_bound(s, id, id_len) == r && seg_upper_bound(s, id, id_len) == r + 1,
                   "row %llu: bounds", (unsigned long long)r);
    }
    probe(s, "", 0);
    probe(s, "a", 1);
    probe(s, "doc-1", 5);
    probe(s, "\xff\xff\xff\xff", 4);
    static const uint32_t kinds[] = {0, 1, 5, 999, SEG_KIND_EXTRA_BASE, SEG_KIND_EXTRA_BASE + 1,
                                     SEG_KIND_EXTRA_BASE + 2, UINT32_MAX};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        const void *xd = NULL;
        size_t xl = 0;
        if (seg_extra_get(s, kinds[i], &xd, &xl) == 0) fuzz_touch(xd, xl);
    }
    seg_close(s);
    return 0;
}
