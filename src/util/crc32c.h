/*
 * crc32c.h: CRC-32C (Castagnoli), hardware-accelerated when the CPU has
 * SSE4.2, with a table-driven fallback.
 * Layer: util.
 *
 * Stored CRCs are NOT masked: every checksum we store covers bytes that
 * contain no CRC of their own (WAL: seqno..payload; segment: one section;
 * manifest: the body before the trailing CRC), so the problem masking
 * solves (a CRC computed over data embedding CRCs) does not arise.
 */
#ifndef TDB_UTIL_CRC32C_H
#define TDB_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over data. */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t len);
static inline uint32_t crc32c(const void *data, size_t len) { return crc32c_extend(0, data, len); }

#endif
