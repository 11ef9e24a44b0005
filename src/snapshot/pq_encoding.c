/*
 * pq_encoding.c: RLE/bit-packed hybrid, DELTA_BINARY_PACKED, CRC-32 and
 * the page codecs (pq_encoding.h describes the encodings).
 * Layer: snapshot.
 *
 * Every decoder checks each byte count against `end` before reading and
 * each value count against what the caller asked for, so hostile input
 * can only make it fail, never read out of bounds or allocate.
 */
#include "snapshot/pq_encoding.h"

#include <limits.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "snapshot/pq_format.h"

int pq_bit_width(uint64_t max_value) {
    int w = 0;
    while (max_value) {
        w++;
        max_value >>= 1;
    }
    return w;
}

void pq_put_uvarint(buf *b, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    buf_append(b, tmp, n);
}

int pq_get_uvarint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t out = 0;
    const uint8_t *q = *p;
    for (int shift = 0; shift < 64; shift += 7) {
        if (q >= end) return -1;
        uint8_t byte = *q++;
        if (shift == 63 && byte > 1) return -1;
        out |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *p = q;
            *v = out;
            return 0;
        }
    }
    return -1;
}

static inline uint32_t load_elem(const void *values, size_t elem_size, size_t i) {
    return elem_size == 1 ? ((const uint8_t *)values)[i] : ((const uint32_t *)values)[i];
}

static inline void store_elem(void *out, size_t elem_size, size_t i, uint32_t v) {
    if (elem_size == 1) ((uint8_t *)out)[i] = (uint8_t)v;
    else ((uint32_t *)out)[i] = v;
}

/* ---- RLE/bit-packed hybrid: encoder --------------------------------- */

static void emit_rle_run(buf *b, size_t count, uint32_t value, int bit_width) {
    pq_put_uvarint(b, (uint64_t)count << 1);
    uint8_t bytes[4];
    int nbytes = (bit_width + 7) / 8;
    for (int k = 0; k < nbytes; k++) bytes[k] = (uint8_t)(value >> (8 * k));
    buf_append(b, bytes, (size_t)nbytes);
}

/* Bit-packs values[start .. start + groups*8), reading 0 past n. */
static void emit_packed_run(buf *b, const void *values, size_t elem_size, size_t n, size_t start,
                            size_t groups, int bit_width) {
    pq_put_uvarint(b, ((uint64_t)groups << 1) | 1);
    if (bit_width == 0) return;
    if (!buf_reserve(b, groups * (size_t)bit_width)) return;
    uint8_t *o = (uint8_t *)b->data + b->len;
    uint64_t acc = 0; /* pending bits, fewer than 8 before each value */
    int nbits = 0;
    for (size_t i = start; i < start + groups * 8; i++) {
        uint64_t v = i < n ? load_elem(values, elem_size, i) : 0;
        acc |= v << nbits;
        nbits += bit_width;
        while (nbits >= 8) {
            *o++ = (uint8_t)acc;
            acc >>= 8;
            nbits -= 8;
        }
    }
    /* groups * 8 * bit_width is a multiple of 8 bits: nothing is left. */
    b->len = (size_t)((char *)o - b->data);
    b->data[b->len] = '\0';
}

/* Length of the run of equal values starting at i, looking at most
 * `limit` values ahead. */
static size_t run_length(const void *values, size_t elem_size, size_t n, size_t i, size_t limit) {
    uint32_t v = load_elem(values, elem_size, i);
    size_t r = 1;
    while (i + r < n && r < limit && load_elem(values, elem_size, i + r) == v) r++;
    return r;
}

void pq_rle_encode(buf *b, const void *values, size_t elem_size, size_t n, int bit_width) {
    size_t i = 0;
    /* Invariant: values[0..i) are encoded; a bit-packed run always starts
     * where no run of 8 equal values starts, and ends at a group
     * boundary before one (or at the end). */
    while (i < n) {
        size_t run = run_length(values, elem_size, n, i, SIZE_MAX);
        if (run >= 8) {
            emit_rle_run(b, run, load_elem(values, elem_size, i), bit_width);
            i += run;
            continue;
        }
        size_t start = i;
        while (i < n) {
            if (i > start && run_length(values, elem_size, n, i, 8) >= 8) break;
            i += 8;
        }
        if (i > n) i = n;
        emit_packed_run(b, values, elem_size, n, start, (i - start + 7) / 8, bit_width);
    }
}

/* ---- bit reading ----------------------------------------------------- */

/* Reads bit_width (0..64) bits at bit offset `bit` of p, LSB first. The
 * caller has checked that the bytes exist. */
static uint64_t read_bits(const uint8_t *p, uint64_t bit, int bit_width) {
    uint64_t v = 0;
    int got = 0;
    while (got < bit_width) {
        unsigned off = (unsigned)(bit & 7);
        int take = 8 - (int)off;
        if (take > bit_width - got) take = bit_width - got;
        uint64_t byte = p[bit >> 3];
        v |= ((byte >> off) & ((1u << take) - 1)) << got;
        got += take;
        bit += (uint64_t)take;
    }
    return v;
}

/* ---- RLE/bit-packed hybrid: decoder --------------------------------- */

int pq_rle_decode(const uint8_t *p, const uint8_t *end, int bit_width, uint32_t max_value,
                  void *out, size_t elem_size, size_t n, size_t *used) {
    if (bit_width < 0 || bit_width > 32) return -1;
    const uint8_t *q = p;
    size_t vbytes = (size_t)(bit_width + 7) / 8;
    size_t got = 0;
    while (got < n) {
        uint64_t h;
        if (pq_get_uvarint(&q, end, &h) < 0) return -1;
        if (h & 1) {
            uint64_t groups = h >> 1;
            if (bit_width > 0 && groups > (uint64_t)(end - q) / (uint64_t)bit_width) return -1;
            size_t bytes = (size_t)groups * (size_t)bit_width;
            /* With bit_width > 0, groups is bounded by the bytes left. */
            uint64_t avail = groups > UINT64_MAX / 8 ? UINT64_MAX : groups * 8;
            size_t take = avail < n - got ? (size_t)avail : n - got;
            for (size_t k = 0; k < take; k++) {
                uint64_t v = read_bits(q, (uint64_t)k * (uint64_t)bit_width, bit_width);
                if (v > max_value) return -1;
                store_elem(out, elem_size, got + k, (uint32_t)v);
            }
            got += take;
            q += bytes;
        } else {
            uint64_t count = h >> 1;
            if ((size_t)(end - q) < vbytes) return -1;
            uint32_t v = 0;
            for (size_t k = 0; k < vbytes; k++) v |= (uint32_t)q[k] << (8 * k);
            q += vbytes;
            if (v > max_value) return -1;
            size_t take = count < n - got ? (size_t)count : n - got;
            if (elem_size == 1) {
                memset((uint8_t *)out + got, (int)v, take);
            } else {
                for (size_t k = 0; k < take; k++) ((uint32_t *)out)[got + k] = v;
            }
            got += take;
        }
    }
    if (used) *used = (size_t)(q - p);
    return 0;
}

/* ---- DELTA_BINARY_PACKED --------------------------------------------- */

/* A block larger than this is refused: real writers use 128 or 256. */
#define PQ_DELTA_MAX_BLOCK_VALUES ((uint64_t)1 << 16)

static uint64_t unzigzag64(uint64_t v) { return (v >> 1) ^ (0 - (v & 1)); }

int pq_delta_decode(const uint8_t **pp, const uint8_t *end, uint64_t *out, size_t cap, size_t *count) {
    const uint8_t *p = *pp;
    uint64_t block_size, mb_count, total, first;
    if (pq_get_uvarint(&p, end, &block_size) < 0 || pq_get_uvarint(&p, end, &mb_count) < 0 ||
        pq_get_uvarint(&p, end, &total) < 0 || pq_get_uvarint(&p, end, &first) < 0)
        return -1;
    if (block_size == 0 || block_size % 128 != 0 || block_size > PQ_DELTA_MAX_BLOCK_VALUES) return -1;
    if (mb_count == 0 || mb_count > block_size || block_size % mb_count != 0) return -1;
    uint64_t per_mb = block_size / mb_count;
    if (per_mb % 32 != 0) return -1;
    if (total > cap) return -1;
    if (total > 0) out[0] = unzigzag64(first);
    size_t got = total > 0 ? 1 : 0;
    while (got < total) {
        uint64_t min_delta_zz;
        if (pq_get_uvarint(&p, end, &min_delta_zz) < 0) return -1;
        uint64_t min_delta = unzigzag64(min_delta_zz);
        if ((uint64_t)(end - p) < mb_count) return -1;
        const uint8_t *widths = p;
        p += mb_count;
        for (uint64_t m = 0; m < mb_count && got < total; m++) {
            int bw = widths[m];
            if (bw > 64) return -1;
            uint64_t bytes = per_mb * (uint64_t)bw / 8; /* per_mb is a multiple of 32 */
            if ((uint64_t)(end - p) < bytes) return -1;
            for (uint64_t k = 0; k < per_mb && got < total; k++) {
                uint64_t delta = read_bits(p, k * (uint64_t)bw, bw) + min_delta;
                out[got] = out[got - 1] + delta; /* wraps, as the format says */
                got++;
            }
            p += bytes;
        }
    }
    *count = (size_t)total;
    *pp = p;
    return 0;
}

/* ---- CRC-32 ----------------------------------------------------------- */

/* Parquet's page CRC is the standard CRC-32 (zlib's polynomial): zlib's
 * table-braided implementation runs several times faster than a byte loop,
 * which mattered when a cold copy of 200 MB of floats is written. */
uint32_t pq_crc32(const void *data, size_t len) {
    uLong c = crc32(0L, Z_NULL, 0);
    const Bytef *p = data;
    while (len > 0) { /* zlib takes uInt lengths */
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

/* ---- codecs ----------------------------------------------------------- */

bool pq_codec_supported(int codec) {
    return codec == PQZ_UNCOMPRESSED || codec == PQZ_SNAPPY || codec == PQZ_ZSTD;
}

const char *pq_codec_name(int codec) {
    switch (codec) {
    case PQZ_UNCOMPRESSED: return "UNCOMPRESSED";
    case PQZ_SNAPPY: return "SNAPPY";
    case PQZ_GZIP: return "GZIP";
    case PQZ_LZO: return "LZO";
    case PQZ_BROTLI: return "BROTLI";
    case PQZ_LZ4: return "LZ4";
    case PQZ_ZSTD: return "ZSTD";
    case PQZ_LZ4_RAW: return "LZ4_RAW";
    default: return "unknown";
    }
}

int pq_compress(int codec, int zstd_level, const void *src, size_t len, buf *out) {
    switch (codec) {
    case PQZ_UNCOMPRESSED:
        buf_append(out, src, len);
        return buf_failed(out) ? -1 : 0;
    case PQZ_SNAPPY: {
        size_t cap = snappy_max_compressed_length(len);
        if (!buf_reserve(out, cap)) return -1;
        size_t n = cap;
        if (snappy_compress(src, len, out->data + out->len, &n) != SNAPPY_OK) return -1;
        out->len += n;
        out->data[out->len] = '\0';
        return 0;
    }
    case PQZ_ZSTD: {
        size_t cap = ZSTD_compressBound(len);
        if (!buf_reserve(out, cap)) return -1;
        size_t n = ZSTD_compress(out->data + out->len, cap, src, len, zstd_level);
        if (ZSTD_isError(n)) return -1;
        out->len += n;
        out->data[out->len] = '\0';
        return 0;
    }
    default: return -1;
    }
}

int pq_decompress(int codec, const void *src, size_t len, void *dst, size_t dst_len) {
    switch (codec) {
    case PQZ_UNCOMPRESSED:
        if (len != dst_len) return -1;
        if (len) memcpy(dst, src, len);
        return 0;
    case PQZ_SNAPPY: {
        size_t n;
        if (snappy_uncompressed_length(src, len, &n) != SNAPPY_OK || n != dst_len) return -1;
        if (dst_len == 0) return 0;
        if (snappy_uncompress(src, len, dst, &n) != SNAPPY_OK || n != dst_len) return -1;
        return 0;
    }
    case PQZ_ZSTD: {
        if (dst_len == 0 && len == 0) return 0;
        unsigned long long declared = ZSTD_getFrameContentSize(src, len);
        if (declared == ZSTD_CONTENTSIZE_ERROR) return -1;
        if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != dst_len) return -1;
        uint8_t dummy;
        size_t n = ZSTD_decompress(dst_len ? dst : &dummy, dst_len, src, len);
        if (ZSTD_isError(n) || n != dst_len) return -1;
        return 0;
    }
    default: return -1;
    }
}
