/*
 * url.c: percent-decoding of path segments and query strings.
 * Layer: server. libmicrohttpd's own unescaping is switched off (http.c)
 * because it decodes the whole path at once: an id holding "%2F" would turn
 * into a '/' and split into two segments. Here the path is split on the raw
 * '/' first and each segment is decoded alone, so ids may hold any byte.
 */
#include <stdlib.h>
#include <string.h>

#include "server/request.h"

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int url_decode(const char *s, size_t len, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    /* Decoding never lengthens the text. */
    char *d = malloc(len + 1);
    if (d == NULL) return TDB_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            d[n++] = s[i];
            continue;
        }
        /* A '%' needs two hex digits after it. */
        if (len - i < 3) {
            free(d);
            return -1;
        }
        int h = hex_value(s[i + 1]), l = hex_value(s[i + 2]);
        if (h < 0 || l < 0) {
            free(d);
            return -1;
        }
        d[n++] = (char)(h << 4 | l);
        i += 2;
    }
    d[n] = '\0';
    *out = d;
    *out_len = n;
    return 0;
}

int url_query_get(const char *query, const char *key, char **value, size_t *value_len) {
    *value = NULL;
    *value_len = 0;
    if (query == NULL) return 0;
    size_t key_len = strlen(key);
    int found = 0;
    const char *p = query;
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        if (end == NULL) end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *name_end = eq ? eq : end;
        /* Parameter names are ASCII words, so they are compared raw. */
        if ((size_t)(name_end - p) == key_len && memcmp(p, key, key_len) == 0) {
            char *v;
            size_t vlen;
            const char *vstart = eq ? eq + 1 : end;
            int rc = url_decode(vstart, (size_t)(end - vstart), &v, &vlen);
            if (rc != 0) {
                free(*value);
                *value = NULL;
                return rc;
            }
            free(*value); /* the last occurrence wins */
            *value = v;
            *value_len = vlen;
            found = 1;
        }
        p = *end ? end + 1 : end;
    }
    return found;
}
