/*
 * buf.c: growable byte buffer.
 * Layer: util.
 */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool buf_reserve(buf *b, size_t extra) {
    if (b->failed) return false;
    if (extra >= SIZE_MAX - b->len) { /* len + extra + 1 would wrap */
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0'; /* keeps "NUL-terminated when cap > 0" for a fresh buffer */
    return true;
}

void buf_append(buf *b, const void *data, size_t len) {
    if (!buf_reserve(b, len)) return;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_puts(buf *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_putc(buf *b, char c) {
    if (!buf_reserve(b, 1)) return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        buf_append(b, tmp, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_put_u8(buf *b, uint8_t v) { buf_append(b, &v, 1); }
void buf_put_u16(buf *b, uint16_t v) {
    uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_append(b, t, 2);
}
void buf_put_u32(buf *b, uint32_t v) {
    uint8_t t[4];
    store_u32(t, v);
    buf_append(b, t, 4);
}
void buf_put_u64(buf *b, uint64_t v) {
    uint8_t t[8];
    store_u64(t, v);
    buf_append(b, t, 8);
}

void buf_reset(buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void buf_free(buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

char *buf_steal(buf *b) {
    if (b->failed) {
        buf_free(b);
        return NULL;
    }
    if (b->data == NULL) buf_reserve(b, 0);
    char *d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}
