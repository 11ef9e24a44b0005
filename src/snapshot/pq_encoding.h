/*
 * pq_encoding.h: Parquet's value and level encodings, the page checksum
 * and the page compression codecs, shared by the writer and the reader.
 * Layer: snapshot.
 *
 * RLE/bit-packed hybrid (levels, dictionary indices, RLE booleans): a
 * sequence of runs, each starting with a ULEB128 header h:
 *   h & 1 == 0: RLE run of (h >> 1) copies of one value, stored in
 *               ceil(bit_width / 8) bytes little-endian;
 *   h & 1 == 1: (h >> 1) groups of 8 values bit-packed, bit_width bits
 *               each, least significant bit first.
 * The decoder knows how many values it wants; padding values in the last
 * bit-packed group are ignored.
 *
 * DELTA_BINARY_PACKED (INT32/INT64, and the lengths inside the two delta
 * byte-array encodings): header <block size> <miniblocks per block>
 * <total count> <first value, zigzag>, then blocks of <min delta, zigzag>
 * <one bit-width byte per miniblock> <miniblocks bit-packed LSB first>.
 * All arithmetic wraps (unsigned), as the format says.
 *
 * Decoders never read outside [p, end) and never produce more values than
 * asked for; every failure is -1 and the caller reports TDB_ECORRUPT.
 */
#ifndef TDB_SNAPSHOT_PQ_ENCODING_H
#define TDB_SNAPSHOT_PQ_ENCODING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Bits needed for values 0..max_value (0 for 0). */
int pq_bit_width(uint64_t max_value);

void pq_put_uvarint(buf *b, uint64_t v);
/* Reads a ULEB128 varint from *p (advancing it); -1 if it runs past end
 * or overflows 64 bits. */
int pq_get_uvarint(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* Appends the hybrid encoding of n values (each elem_size bytes: 1 or 4,
 * read as unsigned) with the given bit width (0..32). */
void pq_rle_encode(buf *b, const void *values, size_t elem_size, size_t n, int bit_width);

/* Decodes exactly n values of bit_width (0..32) from [p, end) into out
 * (elem_size 1 or 4 bytes each). Values above max_value are an error.
 * *used (optional) gets the bytes consumed. */
int pq_rle_decode(const uint8_t *p, const uint8_t *end, int bit_width, uint32_t max_value,
                  void *out, size_t elem_size, size_t n, size_t *used);

/* DELTA_BINARY_PACKED: decodes the whole stream at *p into out[0..cap),
 * setting *count to the stream's total count (an error when it exceeds
 * cap) and advancing *p past the stream. */
int pq_delta_decode(const uint8_t **p, const uint8_t *end, uint64_t *out, size_t cap, size_t *count);

/* CRC-32 (the gzip/zlib polynomial) that Parquet's page headers carry. */
uint32_t pq_crc32(const void *data, size_t len);

/* Codecs (PQZ_* of pq_format.h). pq_compress appends to out; returns 0,
 * or -1 on failure (out of memory or a library error). */
bool pq_codec_supported(int codec);
const char *pq_codec_name(int codec);
int pq_compress(int codec, int zstd_level, const void *src, size_t len, buf *out);
/* Decompresses exactly dst_len bytes; -1 if the input is malformed or
 * does not decompress to exactly dst_len bytes. */
int pq_decompress(int codec, const void *src, size_t len, void *dst, size_t dst_len);

#endif
