/*
 * buf.h: a growable byte buffer (for building JSON, WAL payloads, files).
 * Layer: util. On allocation failure the buffer becomes "failed" (len stops
 * growing, buf_failed() is true) so callers can append freely and check
 * once at the end.
 * Ownership: buf_free() frees data; buf_steal() hands it to the caller
 * (NUL-terminated, freed with free()).
 */
#ifndef TDB_UTIL_BUF_H
#define TDB_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data;  /* NUL-terminated after every append (when cap > 0) */
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; contents are incomplete */
} buf;

#define BUF_INIT {NULL, 0, 0, false}

bool buf_reserve(buf *b, size_t extra);
void buf_append(buf *b, const void *data, size_t len);
void buf_puts(buf *b, const char *s);
void buf_putc(buf *b, char c);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_put_u8(buf *b, uint8_t v);
void buf_put_u16(buf *b, uint16_t v); /* little-endian */
void buf_put_u32(buf *b, uint32_t v); /* little-endian */
void buf_put_u64(buf *b, uint64_t v); /* little-endian */
static inline bool buf_failed(const buf *b) { return b->failed; }
void buf_reset(buf *b); /* len = 0, keeps memory */
void buf_free(buf *b);
char *buf_steal(buf *b); /* returns data (never NULL unless failed), resets b */

/* Little-endian loads from possibly unaligned memory. */
static inline uint16_t load_u16(const void *p) {
    const uint8_t *b = p;
    return (uint16_t)(b[0] | (b[1] << 8));
}
static inline uint32_t load_u32(const void *p) {
    const uint8_t *b = p;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}
static inline uint64_t load_u64(const void *p) {
    return (uint64_t)load_u32(p) | ((uint64_t)load_u32((const uint8_t *)p + 4) << 32);
}
static inline void store_u32(void *p, uint32_t v) {
    uint8_t *b = p;
    b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); b[2] = (uint8_t)(v >> 16); b[3] = (uint8_t)(v >> 24);
}
static inline void store_u64(void *p, uint64_t v) {
    store_u32(p, (uint32_t)v);
    store_u32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

#endif
