/*
 * s3_xml.c: the bounded XML reader of s3_xml.h.
 * Layer: objstore, used by s3.c.
 *
 * One pass over the bytes. State: a stack of open element names (as
 * offsets into one path buffer), the text gathered since the last tag,
 * and whether the current element has had child elements (only leaf text
 * is reported; whitespace between elements is not).
 *
 * Invariants:
 *   (1) no read past xml + len: every scan is bounded by `end`.
 *   (2) path[0..path_len) is the '/'-joined names of the open elements;
 *       depth <= S3_XML_MAX_DEPTH and path_len < S3_XML_MAX_PATH.
 *   (3) text_len <= S3_XML_MAX_TEXT, text NUL-terminated when reported
 *       and free of other NULs (a document holding a NUL byte is refused).
 */
#include "objstore/s3_xml.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef struct xml_state {
    char path[S3_XML_MAX_PATH];
    size_t path_len;
    size_t starts[S3_XML_MAX_DEPTH]; /* path offset where each open name begins */
    int depth;
    bool had_child[S3_XML_MAX_DEPTH];
    char text[S3_XML_MAX_TEXT + 1];
    size_t text_len;
} xml_state;

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':' || (unsigned char)c >= 0x80;
}

static bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Finds needle in [p, end); NULL when absent. */
static const char *find(const char *p, const char *end, const char *needle) {
    size_t n = strlen(needle);
    while ((size_t)(end - p) >= n) {
        if (memcmp(p, needle, n) == 0) return p;
        p++;
    }
    return NULL;
}

/* Appends one UTF-8 encoded code point. */
static bool put_codepoint(xml_state *s, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    if (cp < 0x80) { b[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = (char)(0xC0 | (cp >> 6)); b[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12)); b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18)); b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    if (s->text_len + n > S3_XML_MAX_TEXT) return false;
    memcpy(s->text + s->text_len, b, n);
    s->text_len += n;
    return true;
}

static bool put_bytes(xml_state *s, const char *p, size_t n) {
    if (s->text_len + n > S3_XML_MAX_TEXT) return false;
    memcpy(s->text + s->text_len, p, n);
    s->text_len += n;
    return true;
}

/* Decodes character data [p, end) (entities included) into the text. */
static bool add_text(xml_state *s, const char *p, const char *end) {
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL) return put_bytes(s, p, (size_t)(end - p));
        if (!put_bytes(s, p, (size_t)(amp - p))) return false;
        const char *semi = memchr(amp, ';', (size_t)(end - amp));
        if (semi == NULL || semi - amp > 12) return false;
        const char *name = amp + 1;
        size_t n = (size_t)(semi - name);
        char c = 0;
        if (n == 3 && memcmp(name, "amp", 3) == 0) c = '&';
        else if (n == 2 && memcmp(name, "lt", 2) == 0) c = '<';
        else if (n == 2 && memcmp(name, "gt", 2) == 0) c = '>';
        else if (n == 4 && memcmp(name, "quot", 4) == 0) c = '"';
        else if (n == 4 && memcmp(name, "apos", 4) == 0) c = '\'';
        if (c) {
            if (!put_bytes(s, &c, 1)) return false;
        } else if (n >= 2 && name[0] == '#') {
            bool hex = name[1] == 'x' || name[1] == 'X';
            uint32_t cp = 0;
            size_t i = hex ? 2 : 1;
            if (i >= n) return false;
            for (; i < n; i++) {
                char d = name[i];
                uint32_t v;
                if (d >= '0' && d <= '9') v = (uint32_t)(d - '0');
                else if (hex && d >= 'a' && d <= 'f') v = (uint32_t)(d - 'a' + 10);
                else if (hex && d >= 'A' && d <= 'F') v = (uint32_t)(d - 'A' + 10);
                else return false;
                cp = cp * (hex ? 16 : 10) + v;
                if (cp > 0x10FFFF) return false;
            }
            if (!put_codepoint(s, cp)) return false;
        } else {
            return false; /* unknown entity: we expand no DTD */
        }
        p = semi + 1;
    }
    return true;
}

static bool all_space(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!space(p[i])) return false;
    return true;
}

int s3_xml_walk(const char *xml, size_t len, s3_xml_fn fn, void *ctx) {
    xml_state state; /* ~8.5 KiB of stack */
    xml_state *s = &state;
    s->path_len = 0;
    s->path[0] = '\0';
    s->depth = 0;
    s->text_len = 0;
    bool seen_root = false;
    /* XML has no U+0000 (not even as &#0;); one in a reply would cut the
     * text a callback reads as a C string (an UploadId, a key). */
    if (memchr(xml, '\0', len) != NULL) return S3_XML_MALFORMED;
    const char *p = xml, *end = xml + len;
    while (p < end) {
        if (*p != '<') {
            const char *lt = memchr(p, '<', (size_t)(end - p));
            const char *stop = lt ? lt : end;
            if (s->depth == 0) {
                if (!all_space(p, (size_t)(stop - p))) return S3_XML_MALFORMED;
            } else if (!add_text(s, p, stop)) {
                return S3_XML_MALFORMED;
            }
            p = stop;
            continue;
        }
        /* p at '<' */
        if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
            const char *q = find(p + 4, end, "-->");
            if (q == NULL) return S3_XML_MALFORMED;
            p = q + 3;
            continue;
        }
        if (end - p >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
            const char *q = find(p + 9, end, "]]>");
            if (q == NULL || s->depth == 0) return S3_XML_MALFORMED;
            if (!put_bytes(s, p + 9, (size_t)(q - p - 9))) return S3_XML_MALFORMED;
            p = q + 3;
            continue;
        }
        if (end - p >= 2 && p[1] == '?') { /* declaration or processing instruction */
            const char *q = find(p + 2, end, "?>");
            if (q == NULL) return S3_XML_MALFORMED;
            p = q + 2;
            continue;
        }
        if (end - p >= 2 && p[1] == '!') return S3_XML_MALFORMED; /* DOCTYPE and kin */
        bool closing = end - p >= 2 && p[1] == '/';
        const char *name = p + (closing ? 2 : 1);
        const char *q = name;
        while (q < end && name_char(*q)) q++;
        if (q == name) return S3_XML_MALFORMED;
        /* Drop a namespace prefix: only local names matter to us. */
        const char *colon = memchr(name, ':', (size_t)(q - name));
        const char *local = colon ? colon + 1 : name;
        size_t local_len = (size_t)(q - local);
        if (local_len == 0) return S3_XML_MALFORMED;
        /* Find the tag's end, skipping attribute values in quotes. */
        char quote = 0;
        while (q < end && (quote || *q != '>')) {
            if (quote) {
                if (*q == quote) quote = 0;
            } else if (*q == '"' || *q == '\'') {
                quote = *q;
            } else if (*q == '<') {
                return S3_XML_MALFORMED;
            }
            q++;
        }
        if (q >= end) return S3_XML_MALFORMED;
        bool self_closing = !closing && q[-1] == '/';
        p = q + 1;
        if (closing) {
            if (s->depth == 0) return S3_XML_MALFORMED;
            size_t start = s->starts[s->depth - 1];
            size_t open_len = s->path_len - start;
            if (open_len != local_len || memcmp(s->path + start, local, local_len) != 0)
                return S3_XML_MALFORMED; /* mismatched end tag */
            int rc;
            if (!s->had_child[s->depth - 1]) {
                s->text[s->text_len] = '\0';
                rc = fn(ctx, s->path, s->text, s->text_len);
                if (rc) return rc;
            }
            rc = fn(ctx, s->path, NULL, 0);
            if (rc) return rc;
            s->depth--;
            s->path_len = start ? start - 1 : 0; /* drop "/name" (or "name" at the root) */
            s->path[s->path_len] = '\0';
            s->text_len = 0;
            continue;
        }
        /* An opening tag. */
        if (s->depth == 0 && seen_root) return S3_XML_MALFORMED; /* a second root */
        if (s->depth > 0) s->had_child[s->depth - 1] = true;
        if (s->depth >= S3_XML_MAX_DEPTH) return S3_XML_MALFORMED;
        size_t sep = s->depth > 0 ? 1 : 0;
        if (s->path_len + sep + local_len >= S3_XML_MAX_PATH) return S3_XML_MALFORMED;
        if (sep) s->path[s->path_len++] = '/';
        s->starts[s->depth] = s->path_len;
        memcpy(s->path + s->path_len, local, local_len);
        s->path_len += local_len;
        s->path[s->path_len] = '\0';
        s->had_child[s->depth] = false;
        s->depth++;
        seen_root = true;
        s->text_len = 0;
        if (self_closing) { /* <A/>: empty text, then the end */
            size_t start = s->starts[s->depth - 1];
            s->text[0] = '\0';
            int rc = fn(ctx, s->path, s->text, 0);
            if (rc) return rc;
            rc = fn(ctx, s->path, NULL, 0);
            if (rc) return rc;
            s->depth--;
            s->path_len = start ? start - 1 : 0;
            s->path[s->path_len] = '\0';
        }
    }
    return s->depth == 0 && seen_root ? 0 : S3_XML_MALFORMED;
}
