/*
 * fuzz_s3_xml.c: libFuzzer target for the S3 replies: objstore/s3_xml.c
 * (the bounded XML walker) and the reply handlers of objstore/s3.c that
 * consume its events and the response headers: the ListObjectsV2 reader
 * (on_list_xml), the <Error> reader and the error it becomes
 * (parse_error_body, http_error), the CreateMultipartUpload UploadId
 * reader (on_initiate_xml), the CompleteMultipartUpload reply (a 200 that
 * may carry an <Error>), and the header and body callbacks libcurl calls
 * (on_header, on_body).
 *
 * The handlers are static in s3.c, so this file includes s3.c itself: the
 * target runs the very code the server runs, with no network. libFuzzer's
 * main replaces nothing of s3.c; the library archive's copy of s3.o is not
 * linked because every symbol it would provide is defined here.
 *
 * Input: an HTTP response as an S3 server would send it:
 *   byte 0     bits 0-3: the status (200, 400, 403, 404, 500, 503, 301,
 *              204, 429, 408, 206 or another); bits 4-5: the store prefix
 *              ("", "p/", "tierdb/data/", a 1 KiB prefix);
 *   byte 1..   header lines ("Name: value\r\n" each), an empty line
 *              ("\r\n\r\n"), then the body (XML). Without the empty line
 *              the whole rest is the body.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - the walker reports paths shorter than S3_XML_MAX_PATH and text of at
 *     most S3_XML_MAX_TEXT bytes, a C string of exactly its length; element
 *     ends balance: a document read whole (result 0) closed every element
 *     it opened, and a walk is deterministic (same events twice);
 *   - a listing's keys are non-empty and at most OBJSTORE_MAX_KEY_BYTES
 *     long (the store prefix removed); objstore_page_free empties the page;
 *   - err_code, err_message, err_region, the ETag and an UploadId are
 *     NUL-terminated inside their buffers; http_error gives a negative code
 *     and a non-empty message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "objstore/s3.c"

/* ---- the walker alone --------------------------------------------------- */

typedef struct walk_log {
    uint64_t hash; /* of every event, in order */
    size_t events, texts, ends;
} walk_log;

static int on_any(void *ctx, const char *path, const char *text, size_t len) {
    walk_log *w = ctx;
    size_t plen = strlen(path);
    FUZZ_CHECK(plen > 0 && plen < S3_XML_MAX_PATH, "path of %zu bytes", plen);
    if (text != NULL) {
        FUZZ_CHECK(len <= S3_XML_MAX_TEXT, "text of %zu bytes", len);
        FUZZ_CHECK(text[len] == '\0' && strlen(text) == len, "text not a C string of its length");
        fuzz_touch(text, len);
        w->texts++;
    } else {
        FUZZ_CHECK(len == 0, "end event with length %zu", len);
        w->ends++;
    }
    uint64_t h = w->hash ^ (text ? len + 1 : 0);
    for (size_t i = 0; i < plen; i++) h = (h ^ (uint8_t)path[i]) * 0x100000001b3ull;
    for (size_t i = 0; text && i < len; i++) h = (h ^ (uint8_t)text[i]) * 0x100000001b3ull;
    w->hash = h;
    w->events++;
    return 0;
}

/* Stops the walk at the Nth event: the callback's result must come back. */
static int stop_at(void *ctx, const char *path, const char *text, size_t len) {
    (void)path;
    (void)text;
    (void)len;
    size_t *left = ctx;
    return (*left)-- == 0 ? 7 : 0;
}

static void check_walker(const char *xml, size_t len) {
    walk_log a = {0}, b = {0};
    int ra = s3_xml_walk(xml, len, on_any, &a);
    int rb = s3_xml_walk(xml, len, on_any, &b);
    FUZZ_CHECK(ra == 0 || ra == S3_XML_MALFORMED, "walk returned %d", ra);
    FUZZ_CHECK(ra == rb && a.hash == b.hash && a.events == b.events, "walk not deterministic");
    if (ra == 0) FUZZ_CHECK(a.ends > 0, "a whole document without an element");
    if (a.events > 0) {
        size_t left = a.events / 2;
        int rs = s3_xml_walk(xml, len, stop_at, &left);
        FUZZ_CHECK(rs == 7, "stopped walk returned %d", rs);
    }
}

/* ---- the handlers of s3.c ------------------------------------------------ */

static const long statuses[16] = {200, 400, 403, 404, 500, 503, 301, 204,
                                  429, 408, 206, 200, 500, 404, 302, 599};

static void check_cstr(const char *s, size_t cap, const char *what) {
    FUZZ_CHECK(memchr(s, '\0', cap) != NULL, "%s not NUL-terminated", what);
    fuzz_touch(s, strlen(s));
}

/* Feeds the header block to on_header one line at a time, each line in a
 * buffer of its exact size (libcurl does not NUL-terminate them). */
static void feed_headers(s3_req *r, const char *h, size_t len) {
    const char *p = h, *end = h + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        char *line = malloc(n ? n : 1);
        if (line == NULL) fuzz_die("malloc");
        memcpy(line, p, n);
        size_t took = on_header(line, 1, n, r);
        FUZZ_CHECK(took == n, "on_header took %zu of %zu", took, n);
        free(line);
        p += n;
    }
}

/* Feeds the body to on_body in pieces, like libcurl. */
static void feed_body(s3_req *r, const char *body, size_t len) {
    size_t piece = 1 + len / 3;
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        char *copy = malloc(n);
        if (copy == NULL) fuzz_die("malloc");
        memcpy(copy, body + off, n);
        size_t took = on_body(copy, 1, n, r);
        free(copy);
        if (took != n) break; /* too big: s3_do reports it */
    }
}

static void check_list(s3_store *st, const char *xml, size_t len) {
    objstore_page page = {0};
    tdb_error err;
    tdb_err_clear(&err);
    list_xml_ctx c = {.st = st, .page = &page, .err = &err};
    int x = s3_xml_walk(xml, len, on_list_xml, &c);
    FUZZ_CHECK(x == 0 || x == S3_XML_MALFORMED || x == TDB_ENOMEM || x == TDB_EINVAL || x == TDB_ECORRUPT ||
                   x == TDB_EIO,
               "list walk returned %d", x);
    for (size_t i = 0; i < page.count; i++) {
        const char *k = page.entries[i].key;
        FUZZ_CHECK(k != NULL, "entry %zu without a key", i);
        size_t kl = strlen(k);
        FUZZ_CHECK(kl > 0 && kl <= OBJSTORE_MAX_KEY_BYTES, "key %zu of %zu bytes", i, kl);
        fuzz_touch(&page.entries[i], sizeof page.entries[i]);
    }
    if (x == 0 && !c.is_error && c.truncated && page.count > 0) {
        /* as s3_list does */
        page.next = strdup(page.entries[page.count - 1].key);
        FUZZ_CHECK(page.next != NULL, "strdup");
    }
    objstore_page_free(&page);
    FUZZ_CHECK(page.count == 0 && page.entries == NULL && page.next == NULL, "page not emptied");
}

static void check_reply(s3_store *st, long status, const char *headers, size_t hlen, const char *body,
                        size_t blen) {
    /* An error reply (or a CompleteMultipartUpload 200 that may carry one). */
    for (int complete = 0; complete < 2; complete++) {
        s3_req r = {.method = complete ? "POST" : "GET", .key = complete ? "tierdb/x.parquet" : NULL,
                    .error_in_200 = complete != 0, .reply = BUF_INIT};
        r.etag[0] = r.err_code[0] = r.err_message[0] = r.err_region[0] = '\0';
        r.status = status;
        feed_headers(&r, headers, hlen);
        if (r.status == 0) r.status = status;
        check_cstr(r.etag, sizeof r.etag, "etag");
        feed_body(&r, body, blen);
        if (r.status < 200 || r.status >= 300 || r.error_in_200) parse_error_body(&r);
        if (r.status == 200 && r.error_in_200 && r.err_code[0]) r.status = 500;
        check_cstr(r.err_code, sizeof r.err_code, "err_code");
        check_cstr(r.err_message, sizeof r.err_message, "err_message");
        check_cstr(r.err_region, sizeof r.err_region, "err_region");
        (void)retryable_status(&r);
        if (r.status != 200 && r.status != 204) {
            tdb_error err;
            tdb_err_clear(&err);
            r.attempts = 1;
            int rc = http_error(st, &r, &err);
            FUZZ_CHECK(rc < 0, "http_error returned %d", rc);
            FUZZ_CHECK(err.message[0] != '\0', "http_error without a message");
        }
        req_free(&r);
    }
    /* CreateMultipartUpload's reply. */
    upload_id_ctx up = {.found = false};
    int x = s3_xml_walk(body, blen, on_initiate_xml, &up);
    FUZZ_CHECK(x == 0 || x == S3_XML_MALFORMED, "initiate walk returned %d", x);
    if (up.found) {
        size_t n = strnlen(up.id, sizeof up.id);
        FUZZ_CHECK(n > 0 && n < sizeof up.id, "upload id of %zu bytes", n);
        buf q = BUF_INIT;
        buf_puts(&q, "uploadId=");
        uri_encode(&q, up.id, false);
        FUZZ_CHECK(buf_failed(&q) || q.len >= n + 9, "encoded upload id shorter than the id");
        buf_free(&q);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    static char long_prefix[1025];
    if (!init) {
        fuzz_quiet_log();
        memset(long_prefix, 'k', 1022);
        memcpy(long_prefix + 1022, "/", 2);
        init = true;
    }
    if (size < 1) return 0;
    long status = statuses[data[0] & 15];
    static const char *const prefixes[4] = {"", "p/", "tierdb/data/", NULL};
    const char *prefix = prefixes[(data[0] >> 4) & 3];
    if (prefix == NULL) prefix = long_prefix;

    /* Exact-size copies: a read past either part is an ASan report. */
    const char *rest = (const char *)data + 1;
    size_t rlen = size - 1;
    const char *sep = memmem(rest, rlen, "\r\n\r\n", 4);
    size_t hlen = sep ? (size_t)(sep - rest) + 2 : 0;
    const char *bstart = sep ? sep + 4 : rest;
    size_t blen = rlen - (size_t)(bstart - rest);
    char *headers = (char *)fuzz_dup((const uint8_t *)rest, hlen);
    char *body = (char *)fuzz_dup((const uint8_t *)bstart, blen);

    s3_store st = {0};
    st.bucket = (char *)"bucket";
    st.prefix = (char *)prefix;
    st.scheme = (char *)"http";
    st.host = (char *)"127.0.0.1:9000";
    st.endpoint = (char *)"http://127.0.0.1:9000";
    st.region = (char *)"us-east-1";
    st.access_key = (char *)"AKIDEXAMPLE";

    check_walker(body, blen);
    check_list(&st, body, blen);
    check_reply(&st, status, headers, hlen, body, blen);

    free(headers);
    free(body);
    return 0;
}
