/*
 * s3.c: the s3:// backend of the object store: S3-compatible HTTP
 * storage (AWS S3, MinIO, Ceph RGW, ...) through libcurl.
 * Layer: objstore; behind the table of objstore_int.h, called only by
 * objstore.c. Uses libcurl, util/sha256 (payload hashes), util/crc32c,
 * s3_xml.c (replies), util/fileio (reading files to upload).
 *
 * Wire format (AWS S3 REST API):
 *   - Signing: SigV4 by libcurl (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3").
 *     libcurl 7.88 neither hashes the body nor sorts or encodes the query,
 *     so every request carries x-amz-content-sha256 (SHA-256 of the body
 *     in hex) among its signed headers, and every query string is built
 *     here already canonical: parameters sorted by name, names and values
 *     percent-encoded (RFC 3986 unreserved kept), "name=" for an empty value.
 *   - Addressing: path style ENDPOINT/bucket/key, or virtual-host style
 *     SCHEME://bucket.HOST/key (AWS's default; needs DNS for bucket.HOST).
 *   - Checksums: the object's CRC32C travels as x-amz-meta-crc32c (8 hex
 *     digits) on PUT and on CreateMultipartUpload, and comes back on GET
 *     and HEAD.
 *   - Replies: XML (ListObjectsV2, Error, InitiateMultipartUpload,
 *     CompleteMultipartUpload), read by the bounded s3_xml.c; bodies other
 *     than object data are capped at S3_MAX_REPLY_BYTES.
 *
 * Invariants:
 *   (1) every request is retried on transient failures (HTTP 5xx, 429,
 *       400 RequestTimeout, timeouts, refused, reset or dropped
 *       connections) at most max_retries times, sleeping a random
 *       duration in [0, min(max_delay, base * 2^attempt)] ("full jitter",
 *       so many clients do not retry in step); each retry starts the
 *       request over (uploads re-read their source, downloads reset
 *       their sink).
 *   (2) multipart: after CreateMultipartUpload succeeds, the upload is
 *       either completed or aborted before put returns, so no half-written
 *       object ever becomes visible (S3 shows an object only once
 *       CompleteMultipartUpload succeeds). A CompleteMultipartUpload
 *       retried after a lost reply may find the upload already completed
 *       (NoSuchUpload); the object is then checked by HEAD (size and
 *       CRC32C ours) before success is reported; on success there is
 *       nothing left to abort.
 *   (3) memory per transfer is bounded by part_concurrency parts
 *       (multipart: that many parts are in flight, each from its own
 *       buffer and thread) or one I/O chunk (single PUT from a file,
 *       downloads to a file), plus capped reply bodies.
 *
 * Counting: every HTTP request sent (retries included) and every retry,
 * by reason, go to the store's counters (objstore_stats); the front counts
 * the calls themselves.
 *
 * Concurrency: any number of threads may call in at once. Each request
 * takes a CURL easy handle from a small pool (pool_mu guards the pool
 * array only and is never held during a transfer) and returns it after,
 * so connections are reused across requests. DNS and TLS sessions are
 * shared between handles through a CURLSH with one mutex per data kind.
 * (libcurl's shared connection cache is documented as unsafe between
 * concurrent threads, so connections stay with their handle.)
 * Ownership: the store owns its pool, share and strings; every request's
 * buffers are freed before the call returns.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "objstore/objstore_int.h"
#include "objstore/s3_xml.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sha256.h"

/* Easy handles kept for reuse: more than the background workers that talk
 * to the store at once; a burst beyond it uses handles that are freed. */
#define S3_POOL_MAX 16
/* Largest reply body we keep that is not object data (XML). A full list
 * page of 1000 keys of 1024 bytes is about 1.3 MB. */
#define S3_MAX_REPLY_BYTES ((size_t)8 << 20)
/* Longest ETag we accept for a part (S3's are 34 bytes, quotes included). */
#define S3_MAX_ETAG_BYTES 128
/* Longest UploadId we accept (AWS's are about 100 bytes). */
#define S3_MAX_UPLOAD_ID_BYTES 1024
/* Part sizes are rounded up to whole MiB when a large object forces them
 * above the configured size (OBJSTORE_MAX_PARTS). */
#define S3_PART_ROUND_BYTES ((uint64_t)1 << 20)
/* SHA-256 of the empty string: the payload hash of bodiless requests. */
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_USER_AGENT "tierdb/" TDB_VERSION_STRING

typedef struct s3_store {
    char *bucket;
    char *prefix;   /* "" or "a/b/" (with the trailing '/') */
    char *scheme;   /* "http" or "https" */
    char *host;     /* host[:port] of the endpoint */
    char *endpoint; /* for messages: scheme://host */
    bool path_style;
    char *region;
    char *access_key;
    char *secret_key;
    char *session_token; /* NULL when unset */
    char *sigv4;         /* "aws:amz:REGION:s3" */
    uint64_t multipart_threshold;
    uint64_t part_size;
    uint32_t part_concurrency; /* parts of one multipart upload in flight */
    uint32_t max_retries;
    uint32_t retry_base_ms;
    uint32_t retry_max_ms;
    uint32_t connect_timeout_ms;
    uint32_t stall_timeout_ms;
    uint32_t request_timeout_ms;

    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST]; /* one per kind of shared data */
    pthread_mutex_t pool_mu; /* guards pool[] and pool_count, never held during I/O */
    CURL *pool[S3_POOL_MAX];
    size_t pool_count;
    ostore_counters *counters; /* the store's (objstore_int.h): HTTP requests, retries */
    _Atomic uint64_t rng; /* jitter state (splitmix64 steps) */
    _Atomic uint64_t probe_seq;
} s3_store;

static s3_store *impl(objstore *s) { return s->impl; }

/* ---- global init ------------------------------------------------------ */

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc;

static void curl_init_once(void) { g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *user) {
    (void)h;
    (void)access;
    s3_store *st = user;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_lock(&st->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *user) {
    (void)h;
    s3_store *st = user;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_unlock(&st->share_mu[data]);
}

/* ---- small helpers ------------------------------------------------------ */

/* Appends s percent-encoded: RFC 3986 unreserved bytes stay, and '/' too
 * when keep_slash (paths); everything else becomes %XX (upper case), as
 * SigV4's canonical form wants. */
static void uri_encode(buf *b, const char *s, bool keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        if (plain) {
            buf_putc(b, (char)c);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
    }
}

static uint64_t next_random(s3_store *st) {
    /* splitmix64: one atomic add per draw, good enough spread for jitter. */
    uint64_t z = atomic_fetch_add(&st->rng, 0x9E3779B97F4A7C15ull) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Invariant (1): full jitter over an exponentially growing window. */
static void backoff(s3_store *st, uint32_t attempt) {
    uint64_t window = st->retry_base_ms;
    for (uint32_t i = 0; i < attempt && window < st->retry_max_ms; i++) window *= 2;
    if (window > st->retry_max_ms) window = st->retry_max_ms;
    if (window == 0) return;
    sleep_ms(next_random(st) % (window + 1));
}

static char *str_or_env(const char *value, const char *env) {
    if (value == NULL || value[0] == '\0') value = getenv(env);
    return value && value[0] ? strdup(value) : NULL;
}

/* ---- requests ------------------------------------------------------------ */

typedef struct s3_req {
    /* what to send */
    const char *method; /* GET, HEAD, PUT, POST, DELETE */
    const char *key;    /* full key (prefix included); NULL: the bucket itself */
    const char *query;  /* canonical query string, NULL: none */
    const ostore_source *body; /* NULL: no body */
    uint64_t body_off, body_len;
    char body_sha256[SHA256_HEX_BYTES];
    const char *content_type;
    const char *meta_crc;  /* x-amz-meta-crc32c to send, NULL: none */
    bool has_range;
    uint64_t range_start;
    size_t range_len;
    ostore_sink *sink;     /* 2xx body of a GET: here; NULL: into reply */
    uint8_t *range_out;    /* ranged GET: here (range_len bytes of room) */
    bool error_in_200;     /* CompleteMultipartUpload: a 200 may carry an <Error> */

    /* state of one attempt */
    uint64_t body_pos;
    uint64_t range_skip;   /* a 200 to a ranged GET: bytes to drop first */
    size_t range_got;
    bool range_full;
    uint64_t progress_bytes;
    uint64_t progress_ns;
    bool stalled;
    int sink_error;        /* reply too big, out of memory, or writing the sink failed */
    int source_error;      /* reading the body to upload failed (-errno) */

    /* what came back (of the last attempt) */
    long status;
    buf reply;             /* bodies other than object data, capped */
    bool has_length;
    uint64_t content_length;
    bool has_crc;
    uint32_t crc;
    char etag[S3_MAX_ETAG_BYTES];
    char err_code[64];
    char err_message[256];
    char err_region[64];
    uint32_t attempts;
} s3_req;

static size_t on_header(char *data, size_t size, size_t nitems, void *user) {
    s3_req *r = user;
    size_t len = size * nitems;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (also after a 100 Continue): forget the old one. */
        /* The line is not NUL-terminated (libcurl's contract): the
         * status is read within len, never with strtol. */
        const char *sp = memchr(data, ' ', len), *end = data + len;
        long status = 0;
        for (const char *d = sp ? sp + 1 : end; d < end && *d >= '0' && *d <= '9' && status < 1000; d++)
            status = status * 10 + (*d - '0');
        r->status = status;
        r->has_length = r->has_crc = false;
        /* A 200 to a ranged GET: the server ignored the range and sends
         * the whole object; on_body skips to the range. */
        r->range_skip = r->range_out && r->status == 200 ? r->range_start : 0;
        r->range_got = 0;
        r->etag[0] = '\0';
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (colon == NULL) return len;
    size_t name_len = (size_t)(colon - data);
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    size_t vlen = (size_t)(end - v);
    if (name_len == 14 && strncasecmp(data, "content-length", 14) == 0) {
        char tmp[32];
        if (vlen > 0 && vlen < sizeof tmp) {
            memcpy(tmp, v, vlen);
            tmp[vlen] = '\0';
            char *stop;
            unsigned long long n = strtoull(tmp, &stop, 10);
            if (*stop == '\0') {
                r->has_length = true;
                r->content_length = n;
            }
        }
    } else if (name_len == 17 && strncasecmp(data, "x-amz-meta-crc32c", 17) == 0) {
        r->has_crc = ostore_crc_parse(v, vlen, &r->crc);
    } else if (name_len == 4 && strncasecmp(data, "etag", 4) == 0) {
        if (vlen < sizeof r->etag) {
            memcpy(r->etag, v, vlen);
            r->etag[vlen] = '\0';
        }
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    s3_req *r = user;
    size_t len = size * nmemb;
    bool ok_status = r->status >= 200 && r->status < 300;
    if (ok_status && r->range_out) {
        size_t skip = r->range_skip < len ? (size_t)r->range_skip : len;
        r->range_skip -= skip;
        size_t room = r->range_len - r->range_got;
        size_t take = len - skip < room ? len - skip : room;
        memcpy(r->range_out + r->range_got, data + skip, take);
        r->range_got += take;
        if (r->range_got == r->range_len && r->status == 200) {
            r->range_full = true; /* the server sent the whole object: stop early */
            return 0;
        }
        return len;
    }
    if (ok_status && r->sink) {
        if (r->sink->written == 0 && r->has_length) ostore_sink_expect(r->sink, r->content_length);
        int rc = ostore_sink_write(r->sink, data, len);
        if (rc < 0) {
            r->sink_error = rc;
            return 0; /* CURLE_WRITE_ERROR */
        }
        return len;
    }
    if (r->reply.len + len > S3_MAX_REPLY_BYTES) {
        r->sink_error = TDB_ETOOBIG;
        return 0;
    }
    buf_append(&r->reply, data, len);
    if (buf_failed(&r->reply)) {
        r->sink_error = TDB_ENOMEM;
        return 0;
    }
    return len;
}

static size_t on_read(char *out, size_t size, size_t nitems, void *user) {
    s3_req *r = user;
    size_t room = size * nitems;
    uint64_t left = r->body_len - r->body_pos;
    if (left < room) room = (size_t)left;
    if (room == 0) return 0;
    ssize_t n = ostore_source_read(r->body, r->body_off + r->body_pos, out, room);
    if (n <= 0) {
        r->source_error = n < 0 ? (int)n : -EIO; /* a file that shrank under us */
        return CURL_READFUNC_ABORT;
    }
    r->body_pos += (uint64_t)n;
    return (size_t)n;
}

/* libcurl rewinds the body when it resends on a fresh connection. */
static int on_seek(void *user, curl_off_t offset, int origin) {
    s3_req *r = user;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->body_len) return CURL_SEEKFUNC_FAIL;
    r->body_pos = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* The stall timeout: a transfer that moves no byte for stall_timeout_ms
 * is abandoned (and retried). libcurl calls this at least once a second. */
typedef struct s3_xfer {
    s3_req *req;
    uint32_t stall_timeout_ms;
} s3_xfer;

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal;
    (void)ultotal;
    s3_xfer *x = user;
    s3_req *r = x->req;
    uint64_t moved = (uint64_t)dlnow + (uint64_t)ulnow;
    uint64_t now = clock_mono_ns();
    if (moved != r->progress_bytes || r->progress_ns == 0) {
        r->progress_bytes = moved;
        r->progress_ns = now;
        return 0;
    }
    if (x->stall_timeout_ms && now - r->progress_ns > (uint64_t)x->stall_timeout_ms * 1000000u) {
        r->stalled = true;
        return 1; /* CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

static CURL *handle_take(s3_store *st) {
    CURL *h = NULL;
    pthread_mutex_lock(&st->pool_mu);
    if (st->pool_count > 0) h = st->pool[--st->pool_count];
    pthread_mutex_unlock(&st->pool_mu);
    return h ? h : curl_easy_init();
}

static void handle_give(s3_store *st, CURL *h) {
    if (h == NULL) return;
    pthread_mutex_lock(&st->pool_mu);
    if (st->pool_count < S3_POOL_MAX) {
        st->pool[st->pool_count++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&st->pool_mu);
    if (h) curl_easy_cleanup(h);
}

static void build_url(s3_store *st, const s3_req *r, buf *url) {
    buf_printf(url, "%s://", st->scheme);
    if (!st->path_style) buf_printf(url, "%s.", st->bucket);
    buf_puts(url, st->host);
    buf_putc(url, '/');
    if (st->path_style) {
        buf_puts(url, st->bucket);
        if (r->key) buf_putc(url, '/');
    }
    if (r->key) uri_encode(url, r->key, true);
    if (r->query) {
        buf_putc(url, '?');
        buf_puts(url, r->query);
    }
}

/* One attempt. Returns the libcurl result; r->status is the HTTP status. */
static CURLcode perform_once(s3_store *st, CURL *h, s3_req *r, char *curl_err) {
    CURLcode cc = CURLE_OUT_OF_MEMORY;
    buf url = BUF_INIT;
    struct curl_slist *headers = NULL, *more;
    char line[256];
    build_url(st, r, &url);
    if (buf_failed(&url)) goto done;

#define ADD_HEADER(...)                                        \
    do {                                                       \
        snprintf(line, sizeof line, __VA_ARGS__);              \
        more = curl_slist_append(headers, line);               \
        if (more == NULL) goto done;                           \
        headers = more;                                        \
    } while (0)

    ADD_HEADER("x-amz-content-sha256: %s", r->body ? r->body_sha256 : S3_EMPTY_SHA256);
    /* Not "Expect:" to drop 100-continue: libcurl 7.88 would still sign the
     * removed header, and every upload would fail its signature check. */
    if (r->meta_crc) ADD_HEADER("x-amz-meta-crc32c: %s", r->meta_crc);
    if (r->content_type) ADD_HEADER("Content-Type: %s", r->content_type);
    if (r->has_range)
        ADD_HEADER("Range: bytes=%llu-%llu", (unsigned long long)r->range_start,
                   (unsigned long long)(r->range_start + r->range_len - 1));
    if (st->session_token) {
        /* Too long for `line`: built on the heap. */
        size_t n = strlen(st->session_token) + 32;
        char *tok = malloc(n);
        if (tok == NULL) goto done;
        snprintf(tok, n, "x-amz-security-token: %s", st->session_token);
        more = curl_slist_append(headers, tok);
        free(tok);
        if (more == NULL) goto done;
        headers = more;
    }
#undef ADD_HEADER

    s3_xfer xfer = {.req = r, .stall_timeout_ms = st->stall_timeout_ms};
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_SHARE, st->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, S3_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, st->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, st->access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, st->secret_key);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)st->connect_timeout_ms);
    if (st->request_timeout_ms) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)st->request_timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &xfer);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
    if (r->body || strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
    }
    curl_err[0] = '\0';
    cc = curl_easy_perform(h);
    long code = 0;
    if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code) r->status = code;
    /* The handle must not keep pointers into this stack frame. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
done:
    curl_slist_free_all(headers);
    buf_free(&url);
    return cc;
}

static int on_error_xml(void *ctx, const char *path, const char *text, size_t len) {
    s3_req *r = ctx;
    if (text == NULL) return 0;
    char *dst = NULL;
    size_t cap = 0;
    if (strcmp(path, "Error/Code") == 0) dst = r->err_code, cap = sizeof r->err_code;
    else if (strcmp(path, "Error/Message") == 0) dst = r->err_message, cap = sizeof r->err_message;
    else if (strcmp(path, "Error/Region") == 0) dst = r->err_region, cap = sizeof r->err_region;
    if (dst) snprintf(dst, cap, "%.*s", (int)(len < cap ? len : cap - 1), text);
    return 0;
}

static void parse_error_body(s3_req *r) {
    r->err_code[0] = r->err_message[0] = r->err_region[0] = '\0';
    if (r->reply.len == 0) return;
    (void)s3_xml_walk(r->reply.data, r->reply.len, on_error_xml, r);
}

static bool retryable_status(const s3_req *r) {
    long s = r->status;
    if (s == 500 || s == 502 || s == 503 || s == 504 || s == 429 || s == 408) return true;
    return s == 400 && strcmp(r->err_code, "RequestTimeout") == 0;
}

static bool retryable_curl(CURLcode cc) {
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_ABORTED_BY_CALLBACK: /* our stall timeout */
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Describes what the request was about, for messages: "PUT 'k'". */
static void describe(const s3_req *r, char *out, size_t cap) {
    if (r->key) snprintf(out, cap, "%s '%.300s'", r->method, r->key);
    else snprintf(out, cap, "%s of bucket listing", r->method);
}

static int transport_error(s3_store *st, const s3_req *r, CURLcode cc, const char *curl_err,
                           tdb_error *err) {
    char what[400];
    describe(r, what, sizeof what);
    const char *detail = curl_err[0] ? curl_err : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        return tdb_err(err, TDB_EIO, "object_store_unreachable",
                       "object store endpoint %s is unreachable (%s) after %u attempts of %s: "
                       "check the endpoint (TIERDB_S3_ENDPOINT) and that the server is running",
                       st->endpoint, detail, r->attempts, what);
    case CURLE_COULDNT_RESOLVE_HOST:
        return tdb_err(err, TDB_EIO, "object_store_unreachable",
                       "cannot resolve the host of object store endpoint %s%s (%s) after %u "
                       "attempts: check the endpoint, the bucket name, and DNS",
                       st->path_style ? "" : "with the bucket as subdomain ", st->endpoint, detail,
                       r->attempts);
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_ABORTED_BY_CALLBACK:
        return tdb_err(err, TDB_EIO, "object_store_timeout",
                       "object store %s timed out %u times in a row on %s (%s): the server or "
                       "network is too slow or down",
                       st->endpoint, r->attempts, what,
                       r->stalled ? "no byte moved for the stall timeout" : detail);
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
        return tdb_err(err, TDB_EIO, "object_store_unreachable",
                       "object store %s dropped the connection %u times in a row on %s (%s)",
                       st->endpoint, r->attempts, what, detail);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
        return tdb_err(err, TDB_EIO, "object_store_tls",
                       "TLS with object store %s failed on %s (%s): check the endpoint's "
                       "certificate and the system's CA certificates",
                       st->endpoint, what, detail);
    default:
        return tdb_err(err, TDB_EIO, "object_store_error", "object store %s: %s failed: %s",
                       st->endpoint, what, detail);
    }
}

/* Turns an HTTP answer that is not success into an error naming the cause. */
static int http_error(s3_store *st, const s3_req *r, tdb_error *err) {
    char what[400];
    describe(r, what, sizeof what);
    const char *code = r->err_code;
    const char *msg = r->err_message[0] ? r->err_message : "no message";
    long s = r->status;
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return tdb_err(err, TDB_EIO, "object_store_auth",
                       "object store %s refused %s: the secret access key is wrong for access key "
                       "id '%s' (SignatureDoesNotMatch): check AWS_SECRET_ACCESS_KEY or the "
                       "configured secret",
                       st->endpoint, what, st->access_key);
    if (strcmp(code, "InvalidAccessKeyId") == 0)
        return tdb_err(err, TDB_EIO, "object_store_auth",
                       "object store %s does not know access key id '%s' (InvalidAccessKeyId): "
                       "check AWS_ACCESS_KEY_ID or the configured access key",
                       st->endpoint, st->access_key);
    if (strcmp(code, "RequestTimeTooSkewed") == 0)
        return tdb_err(err, TDB_EIO, "object_store_auth",
                       "object store %s refused %s: this machine's clock is too far from the "
                       "server's (RequestTimeTooSkewed): fix the system time",
                       st->endpoint, what);
    if (strcmp(code, "AuthorizationHeaderMalformed") == 0 || strcmp(code, "PermanentRedirect") == 0 ||
        s == 301)
        return tdb_err(err, TDB_EIO, "object_store_region",
                       "bucket '%s' is not in region '%s'%s%s%s (%s): set AWS_REGION or the "
                       "endpoint to the bucket's region",
                       st->bucket, st->region, r->err_region[0] ? " but in '" : "", r->err_region,
                       r->err_region[0] ? "'" : "", code[0] ? code : "HTTP 301");
    if (strcmp(code, "NoSuchBucket") == 0)
        return tdb_err(err, TDB_EIO, "object_store_bucket_missing",
                       "bucket '%s' does not exist at %s (NoSuchBucket): create it, or fix the "
                       "bucket in the object store URL",
                       st->bucket, st->endpoint);
    if (strcmp(code, "NoSuchKey") == 0 || (s == 404 && code[0] == '\0'))
        return tdb_err(err, TDB_ENOTFOUND, "object_not_found",
                       "no object '%.300s' in bucket '%s' at %s%s", r->key ? r->key : "",
                       st->bucket, st->endpoint,
                       code[0] ? "" : " (or the bucket itself does not exist)");
    if (strcmp(code, "AccessDenied") == 0 || (s == 403 && code[0] == '\0'))
        return tdb_err(err, TDB_EIO, "object_store_auth",
                       "object store %s denied %s in bucket '%s' (%s: %s): the access key or "
                       "secret is wrong, or the credentials lack permission for this operation",
                       st->endpoint, what, st->bucket, code[0] ? code : "HTTP 403", msg);
    if (retryable_status(r))
        return tdb_err(err, s == 503 || s == 429 ? TDB_EBUSY : TDB_EIO,
                       s == 503 || s == 429 ? "object_store_busy" : "object_store_error",
                       "object store %s kept failing %s: HTTP %ld%s%s after %u attempts (%s)",
                       st->endpoint, what, s, code[0] ? " " : "", code, r->attempts, msg);
    return tdb_err(err, TDB_EIO, "object_store_error",
                   "object store %s answered %s with HTTP %ld%s%s (%s)", st->endpoint, what, s,
                   code[0] ? " " : "", code, msg);
}

/* Runs a request with retries (invariant (1)). Returns 0 when an HTTP
 * answer arrived that is not worth retrying (r->status tells which,
 * r->err_code/err_message are parsed when it is not 2xx), or an error
 * (transport failures, retries exhausted, local sink/source failures). */
static int s3_do(s3_store *st, s3_req *r, tdb_error *err) {
    char curl_err[CURL_ERROR_SIZE];
    CURL *h = handle_take(st);
    if (h == NULL) return tdb_err(err, TDB_ENOMEM, "out_of_memory", "cannot create an HTTP handle");
    int rc = 0;
    for (uint32_t attempt = 0;; attempt++) {
        r->attempts = attempt + 1;
        r->status = 0;
        r->body_pos = 0;
        r->range_got = 0;
        r->range_skip = 0;
        r->range_full = false;
        r->progress_bytes = 0;
        r->progress_ns = 0;
        r->stalled = false;
        r->sink_error = 0;
        r->source_error = 0;
        r->has_length = r->has_crc = false;
        r->etag[0] = r->err_code[0] = r->err_message[0] = r->err_region[0] = '\0';
        buf_reset(&r->reply);
        if (r->sink && attempt > 0 && ostore_sink_reset(r->sink) < 0) {
            rc = tdb_err(err, TDB_EIO, "object_store_io", "cannot restart the download of '%.300s': %s",
                         r->key ? r->key : "", strerror(-r->sink->error));
            break;
        }
        OSTORE_COUNT(st->counters->http_requests, 1);
        CURLcode cc = perform_once(st, h, r, curl_err);
        if (r->range_full && cc == CURLE_WRITE_ERROR) cc = CURLE_OK;
        /* Failures on our side are not retried: the next attempt would
         * meet the same full disk or unreadable file. */
        if (r->sink_error == TDB_ENOMEM) {
            rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory receiving '%.300s'",
                         r->key ? r->key : "");
            break;
        }
        if (r->sink_error == TDB_ETOOBIG) {
            rc = tdb_err(err, TDB_EIO, "object_store_error",
                         "object store %s sent a reply larger than %zu bytes to %s %s",
                         st->endpoint, S3_MAX_REPLY_BYTES, r->method, r->key ? r->key : "");
            break;
        }
        if (r->sink_error < 0) {
            rc = tdb_err(err, TDB_EIO, "object_store_io", "cannot write the download of '%.300s': %s",
                         r->key ? r->key : "", strerror(-r->sink_error));
            break;
        }
        if (r->source_error < 0) {
            rc = tdb_err(err, TDB_EIO, "object_store_io",
                         "cannot read the data to upload as '%.300s': %s",
                         r->key ? r->key : "", strerror(-r->source_error));
            break;
        }
        if (cc == CURLE_OUT_OF_MEMORY) {
            rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory talking to the object store");
            break;
        }
        if (cc == CURLE_OK) {
            if (r->status < 200 || r->status >= 300 || r->error_in_200) parse_error_body(r);
            /* CompleteMultipartUpload can fail after its 200 header was
             * sent: the body is then an <Error>. */
            if (r->status == 200 && r->error_in_200 && r->err_code[0]) r->status = 500;
            if (!retryable_status(r)) break;
            if (attempt >= st->max_retries) {
                rc = http_error(st, r, err);
                break;
            }
            OSTORE_COUNT(st->counters->retries[r->status == 503 || r->status == 429
                                                   ? OBJSTORE_RETRY_THROTTLED
                                                   : OBJSTORE_RETRY_SERVER_ERROR],
                         1);
            log_msg(LOG_DEBUG, "object store %s: %s %s: HTTP %ld %s, retrying", st->endpoint,
                    r->method, r->key ? r->key : "(bucket)", r->status, r->err_code);
        } else {
            if (!retryable_curl(cc) || attempt >= st->max_retries) {
                rc = transport_error(st, r, cc, curl_err, err);
                break;
            }
            OSTORE_COUNT(st->counters->retries[cc == CURLE_OPERATION_TIMEDOUT ||
                                                       cc == CURLE_ABORTED_BY_CALLBACK
                                                   ? OBJSTORE_RETRY_TIMEOUT
                                                   : OBJSTORE_RETRY_CONNECTION],
                         1);
            log_msg(LOG_DEBUG, "object store %s: %s %s: %s, retrying", st->endpoint, r->method,
                    r->key ? r->key : "(bucket)", curl_err[0] ? curl_err : curl_easy_strerror(cc));
        }
        backoff(st, attempt);
    }
    handle_give(st, h);
    return rc;
}

static void req_free(s3_req *r) { buf_free(&r->reply); }

/* Full key = store prefix + key, into a buf. */
static int full_key(s3_store *st, const char *key, buf *out, tdb_error *err) {
    buf_puts(out, st->prefix);
    buf_puts(out, key);
    if (buf_failed(out)) return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
    if (out->len > OBJSTORE_MAX_KEY_BYTES)
        return tdb_err(err, TDB_EINVAL, "invalid_object_key",
                       "object key '%.200s' with the store prefix is longer than %d bytes", key,
                       OBJSTORE_MAX_KEY_BYTES);
    return 0;
}

/* SHA-256 (hex) and CRC32C of src[off, off+len) in one pass. */
static int hash_range(const ostore_source *src, uint64_t off, uint64_t len, char sha[SHA256_HEX_BYTES],
                      uint32_t *crc) {
    sha256_ctx ctx;
    if (sha256_init(&ctx) != 0) return -ENOMEM;
    uint32_t c = 0;
    if (src->kind == OSTORE_SRC_MEM) {
        sha256_update(&ctx, src->data + off, (size_t)len);
        c = crc32c(src->data + off, (size_t)len);
    } else {
        char *chunk = malloc(OSTORE_IO_CHUNK_BYTES);
        if (chunk == NULL) {
            sha256_discard(&ctx);
            return -ENOMEM;
        }
        for (uint64_t done = 0; done < len;) {
            size_t want = OSTORE_IO_CHUNK_BYTES;
            if (len - done < want) want = (size_t)(len - done);
            ssize_t n = ostore_source_read(src, off + done, chunk, want);
            if (n <= 0) {
                free(chunk);
                sha256_discard(&ctx);
                return n < 0 ? (int)n : -EIO;
            }
            sha256_update(&ctx, chunk, (size_t)n);
            c = crc32c_extend(c, chunk, (size_t)n);
            done += (uint64_t)n;
        }
        free(chunk);
    }
    uint8_t digest[SHA256_DIGEST_BYTES];
    if (sha256_final(&ctx, digest) != 0) return -ENOMEM;
    sha256_to_hex(digest, sha);
    if (crc) *crc = c;
    return 0;
}

static int source_error(const ostore_source *src, int rc, const char *key, tdb_error *err) {
    if (rc == -ENOMEM)
        return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory uploading '%.300s'", key);
    return tdb_err(err, TDB_EIO, "object_store_io", "cannot read '%.300s' to upload it as '%.300s': %s",
                   src->path ? src->path : "(memory)", key, strerror(-rc));
}

/* ---- open / close ------------------------------------------------------ */

static bool bucket_name_ok(const char *b, size_t n) {
    if (n < 3 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
    }
    return b[0] != '-' && b[0] != '.' && b[n - 1] != '-' && b[n - 1] != '.';
}

static void s3_free(s3_store *st) {
    if (st == NULL) return;
    for (size_t i = 0; i < st->pool_count; i++) curl_easy_cleanup(st->pool[i]);
    if (st->share) curl_share_cleanup(st->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_destroy(&st->share_mu[i]);
    pthread_mutex_destroy(&st->pool_mu);
    free(st->bucket);
    free(st->prefix);
    free(st->scheme);
    free(st->host);
    free(st->endpoint);
    free(st->region);
    free(st->access_key);
    free(st->secret_key);
    free(st->session_token);
    free(st->sigv4);
    free(st);
}

static int parse_endpoint(s3_store *st, const char *endpoint, tdb_error *err) {
    const char *rest;
    if (strncmp(endpoint, "http://", 7) == 0) {
        st->scheme = strdup("http");
        rest = endpoint + 7;
    } else if (strncmp(endpoint, "https://", 8) == 0) {
        st->scheme = strdup("https");
        rest = endpoint + 8;
    } else {
        return tdb_err(err, TDB_EINVAL, "invalid_object_store",
                       "S3 endpoint '%.200s' must start with http:// or https://", endpoint);
    }
    size_t n = strcspn(rest, "/?#");
    if (n == 0)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store", "S3 endpoint '%.200s' has no host",
                       endpoint);
    const char *after = rest + n;
    while (*after == '/') after++;
    if (*after != '\0')
        return tdb_err(err, TDB_EINVAL, "invalid_object_store",
                       "S3 endpoint '%.200s' has a path or query: give only scheme://host[:port]",
                       endpoint);
    if (memchr(rest, '@', n))
        return tdb_err(err, TDB_EINVAL, "invalid_object_store",
                       "S3 endpoint '%.200s' must not embed credentials: use the access key options",
                       endpoint);
    st->host = strndup(rest, n);
    if (st->scheme == NULL || st->host == NULL)
        return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
    return 0;
}

static int s3_open(objstore *s, const char *location, const objstore_options *o, tdb_error *err) {
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init_rc != CURLE_OK)
        return tdb_err(err, TDB_EIO, "object_store_error", "cannot initialize libcurl: %s",
                       curl_easy_strerror(g_curl_init_rc));
    s3_store *st = calloc(1, sizeof *st);
    if (st == NULL) return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&st->share_mu[i], NULL);
    pthread_mutex_init(&st->pool_mu, NULL);
    int rc = 0;
    buf tmp = BUF_INIT;

    size_t bn = strcspn(location, "/");
    if (!bucket_name_ok(location, bn)) {
        rc = tdb_err(err, TDB_EINVAL, "invalid_object_store",
                     "'%.*s' in s3://%.200s is not a valid bucket name (3 to 63 of a-z 0-9 . -)",
                     (int)(bn < 100 ? bn : 100), location, location);
        goto done;
    }
    st->bucket = strndup(location, bn);
    const char *pfx = location + bn;
    while (*pfx == '/') pfx++;
    size_t pn = strlen(pfx);
    while (pn > 0 && pfx[pn - 1] == '/') pn--;
    for (size_t i = 0; i < pn; i++) {
        unsigned char c = (unsigned char)pfx[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("!-_.*'()=/", c) != NULL;
        bool starts = i == 0 || pfx[i - 1] == '/';
        if (!ok || c == '\0' || (starts && (c == '/' || c == '.'))) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_object_store",
                         "prefix '%.*s' in s3://%.200s breaks the key rules (characters "
                         "[A-Za-z0-9!-_.*'()=/], no empty or dot-led components)",
                         (int)pn, pfx, location);
            goto done;
        }
    }
    st->prefix = malloc(pn + 2);
    if (st->prefix) {
        memcpy(st->prefix, pfx, pn);
        if (pn) st->prefix[pn++] = '/';
        st->prefix[pn] = '\0';
    }

    st->region = str_or_env(o->region, "AWS_REGION");
    if (st->region == NULL) st->region = strdup("us-east-1");
    st->access_key = str_or_env(o->access_key, "AWS_ACCESS_KEY_ID");
    st->secret_key = str_or_env(o->secret_key, "AWS_SECRET_ACCESS_KEY");
    st->session_token = str_or_env(o->session_token, "AWS_SESSION_TOKEN");
    if (st->bucket == NULL || st->prefix == NULL || st->region == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    if (st->access_key == NULL || st->secret_key == NULL) {
        rc = tdb_err(err, TDB_EINVAL, "object_store_auth",
                     "no S3 credentials for s3://%.200s: set AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY (or the access and secret key options)",
                     location);
        goto done;
    }
    for (const char *p = st->region; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_object_store",
                         "S3 region '%.64s' is not a region name such as us-east-1", st->region);
            goto done;
        }
    }
    if (o->endpoint && o->endpoint[0]) {
        rc = parse_endpoint(st, o->endpoint, err);
    } else {
        buf_printf(&tmp, "https://s3.%s.amazonaws.com", st->region);
        rc = buf_failed(&tmp) ? tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory")
                              : parse_endpoint(st, tmp.data, err);
    }
    if (rc < 0) goto done;
    buf_reset(&tmp);
    buf_printf(&tmp, "%s://%s", st->scheme, st->host);
    st->endpoint = buf_steal(&tmp);
    buf_printf(&tmp, "aws:amz:%s:s3", st->region);
    st->sigv4 = buf_steal(&tmp);
    if (st->endpoint == NULL || st->sigv4 == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    st->path_style = o->path_style;
    st->multipart_threshold = o->multipart_threshold_bytes;
    st->part_size = o->part_size_bytes;
    st->part_concurrency = o->part_concurrency == 0 ? OBJSTORE_DEFAULT_PART_CONCURRENCY
                           : o->part_concurrency > OBJSTORE_MAX_PART_CONCURRENCY
                               ? OBJSTORE_MAX_PART_CONCURRENCY
                               : o->part_concurrency;
    st->max_retries = o->max_retries;
    st->retry_base_ms = o->retry_base_delay_ms;
    st->retry_max_ms = o->retry_max_delay_ms;
    st->connect_timeout_ms = o->connect_timeout_ms;
    st->stall_timeout_ms = o->stall_timeout_ms;
    st->request_timeout_ms = o->request_timeout_ms;
    st->counters = &s->counters;
    atomic_store(&st->rng, clock_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)st);

    st->share = curl_share_init();
    if (st->share == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "cannot create the libcurl share");
        goto done;
    }
    curl_share_setopt(st->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(st->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(st->share, CURLSHOPT_USERDATA, st);
    curl_share_setopt(st->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(st->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
done:
    buf_free(&tmp);
    if (rc < 0) {
        s3_free(st);
        return rc;
    }
    s->impl = st;
    return 0;
}

static void s3_close(objstore *s) { s3_free(impl(s)); }

/* ---- put ------------------------------------------------------------------ */

static int put_single(s3_store *st, const char *fkey, const ostore_source *src, tdb_error *err) {
    s3_req r = {.method = "PUT", .key = fkey, .body = src, .body_len = src->size_bytes,
                .content_type = "application/octet-stream", .reply = BUF_INIT};
    uint32_t crc;
    int rc = hash_range(src, 0, src->size_bytes, r.body_sha256, &crc);
    if (rc < 0) return source_error(src, rc, fkey, err);
    char hex[OSTORE_CRC_HEX_BYTES];
    ostore_crc_format(crc, hex);
    r.meta_crc = hex;
    rc = s3_do(st, &r, err);
    if (rc == 0 && r.status != 200) rc = http_error(st, &r, err);
    req_free(&r);
    return rc;
}

typedef struct upload_id_ctx {
    char id[S3_MAX_UPLOAD_ID_BYTES];
    bool found;
} upload_id_ctx;

static int on_initiate_xml(void *ctx, const char *path, const char *text, size_t len) {
    upload_id_ctx *u = ctx;
    if (text && strcmp(path, "InitiateMultipartUploadResult/UploadId") == 0 && len > 0 &&
        len < sizeof u->id) {
        memcpy(u->id, text, len + 1);
        u->found = true;
    }
    return 0;
}

/* Aborts an upload; best effort (invariant (2): what we can do, we do). */
static void abort_upload(s3_store *st, const char *fkey, const char *query) {
    s3_req r = {.method = "DELETE", .key = fkey, .query = query, .reply = BUF_INIT};
    tdb_error e;
    tdb_err_clear(&e);
    int rc = s3_do(st, &r, &e);
    if (rc == 0 && r.status != 204 && r.status != 200 && r.status != 404)
        rc = http_error(st, &r, &e);
    if (rc < 0)
        log_msg(LOG_WARN,
                "object store: could not abort the multipart upload of '%s' (%s); its parts are "
                "invisible but stored until a lifecycle rule for incomplete uploads removes them",
                fkey, e.message);
    req_free(&r);
}

/* The parts of one multipart upload (invariant (3)): sent by up to
 * part_concurrency threads (the caller's among them), each taking the
 * next part number and holding one part in memory at a time. Each part's
 * request retries on its own (invariant (1)); the first part that fails
 * for good stops the others from starting new parts, and put_multipart
 * then aborts the upload (invariant (2)). */
typedef struct mp_job {
    s3_store *st;
    const char *fkey;
    const ostore_source *src;
    const char *upload_q;              /* "uploadId=..." (query-encoded) */
    uint64_t size, part;
    uint32_t parts;
    char (*etags)[S3_MAX_ETAG_BYTES];  /* one per part, filled as they are accepted */
    pthread_mutex_t mu;                /* guards next, rc, err */
    uint32_t next;                     /* next part index to send */
    int rc;                            /* the first failure, 0 if none */
    tdb_error err;                     /* its description */
} mp_job;

/* Sends part i (0-based); part_buf holds a part when the source is a file. */
static int send_part(mp_job *j, uint32_t i, uint8_t *part_buf, buf *q, tdb_error *err) {
    s3_store *st = j->st;
    uint64_t off = (uint64_t)i * j->part;
    uint64_t len = j->size - off < j->part ? j->size - off : j->part;
    ostore_source view = {.kind = OSTORE_SRC_MEM, .fd = -1, .size_bytes = len};
    if (j->src->kind == OSTORE_SRC_MEM) {
        view.data = j->src->data + off;
    } else {
        ssize_t n = ostore_source_read(j->src, off, part_buf, (size_t)len);
        if (n != (ssize_t)len) return source_error(j->src, n < 0 ? (int)n : -EIO, j->fkey, err);
        view.data = part_buf;
    }
    buf_reset(q);
    buf_printf(q, "partNumber=%u&%s", i + 1, j->upload_q);
    if (buf_failed(q)) return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
    s3_req pr = {.method = "PUT", .key = j->fkey, .query = q->data, .body = &view, .body_len = len,
                 .reply = BUF_INIT};
    int rc = hash_range(&view, 0, len, pr.body_sha256, NULL); /* memory: only ENOMEM */
    rc = rc < 0 ? source_error(&view, rc, j->fkey, err) : s3_do(st, &pr, err);
    if (rc == 0 && pr.status != 200) rc = http_error(st, &pr, err);
    if (rc == 0 && pr.etag[0] == '\0')
        rc = tdb_err(err, TDB_EIO, "object_store_error",
                     "object store %s accepted part %u of '%.300s' without an ETag", st->endpoint,
                     i + 1, j->fkey);
    if (rc == 0) snprintf(j->etags[i], S3_MAX_ETAG_BYTES, "%s", pr.etag);
    req_free(&pr);
    return rc;
}

static void part_failed(mp_job *j, int rc, const tdb_error *e) {
    pthread_mutex_lock(&j->mu);
    if (j->rc == 0) {
        j->rc = rc;
        j->err = *e;
    }
    pthread_mutex_unlock(&j->mu);
}

static void *part_worker(void *arg) {
    mp_job *j = arg;
    tdb_error e;
    tdb_err_clear(&e);
    uint8_t *part_buf = NULL;
    if (j->src->kind == OSTORE_SRC_FILE) {
        part_buf = malloc((size_t)(j->part < j->size ? j->part : j->size));
        if (part_buf == NULL) {
            part_failed(j, tdb_err(&e, TDB_ENOMEM, "out_of_memory", "out of memory uploading '%.300s'",
                                   j->fkey), &e);
            return NULL;
        }
    }
    buf q = BUF_INIT;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        bool go = j->rc == 0 && j->next < j->parts;
        uint32_t i = go ? j->next++ : 0;
        pthread_mutex_unlock(&j->mu);
        if (!go) break;
        int rc = send_part(j, i, part_buf, &q, &e);
        if (rc < 0) {
            part_failed(j, rc, &e);
            break;
        }
    }
    buf_free(&q);
    free(part_buf);
    return NULL;
}

/* Sends every part of j; 0, or the first part's failure in err. */
static int send_parts(mp_job *j, tdb_error *err) {
    uint32_t want = j->st->part_concurrency < j->parts ? j->st->part_concurrency : j->parts;
    pthread_t tids[OBJSTORE_MAX_PART_CONCURRENCY];
    uint32_t started = 0;
    pthread_mutex_init(&j->mu, NULL);
    tdb_err_clear(&j->err);
    /* Threads beyond the caller's; if one cannot start, fewer parts fly. */
    while (started + 1 < want && pthread_create(&tids[started], NULL, part_worker, j) == 0) started++;
    part_worker(j);
    for (uint32_t t = 0; t < started; t++) pthread_join(tids[t], NULL);
    pthread_mutex_destroy(&j->mu);
    if (j->rc < 0 && err) *err = j->err;
    return j->rc;
}

static int put_multipart(s3_store *st, const char *fkey, const ostore_source *src, tdb_error *err) {
    uint64_t size = src->size_bytes;
    uint64_t part = st->part_size;
    if ((size + part - 1) / part > OBJSTORE_MAX_PARTS) {
        part = (size + OBJSTORE_MAX_PARTS - 1) / OBJSTORE_MAX_PARTS;
        part = (part + S3_PART_ROUND_BYTES - 1) / S3_PART_ROUND_BYTES * S3_PART_ROUND_BYTES;
    }
    if (part > OBJSTORE_MAX_PART_BYTES)
        return tdb_err(err, TDB_ETOOBIG, "object_too_large",
                       "'%.300s' of %llu bytes is larger than S3 accepts (10000 parts of 5 GiB)",
                       fkey, (unsigned long long)size);
    uint32_t parts = (uint32_t)((size + part - 1) / part);
    uint32_t crc;
    int rc = ostore_source_crc(src, &crc);
    if (rc < 0) return source_error(src, rc, fkey, err);
    char hex[OSTORE_CRC_HEX_BYTES];
    ostore_crc_format(crc, hex);

    buf xml = BUF_INIT, abort_q = BUF_INIT;
    char (*etags)[S3_MAX_ETAG_BYTES] = NULL;
    bool started = false, completed = false;
    upload_id_ctx up = {.found = false};

    /* 1. CreateMultipartUpload; the checksum travels now. */
    s3_req init = {.method = "POST", .key = fkey, .query = "uploads=", .meta_crc = hex,
                   .content_type = "application/octet-stream", .reply = BUF_INIT};
    rc = s3_do(st, &init, err);
    if (rc == 0 && init.status != 200) rc = http_error(st, &init, err);
    if (rc == 0 && (s3_xml_walk(init.reply.data ? init.reply.data : "", init.reply.len,
                                on_initiate_xml, &up) != 0 || !up.found))
        rc = tdb_err(err, TDB_EIO, "object_store_error",
                     "object store %s started a multipart upload of '%.300s' without a readable "
                     "UploadId in its reply",
                     st->endpoint, fkey);
    req_free(&init);
    if (rc < 0) goto done;
    started = true;
    buf_puts(&abort_q, "uploadId=");
    uri_encode(&abort_q, up.id, false);

    etags = calloc(parts, sizeof *etags);
    if (etags == NULL || buf_failed(&abort_q)) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory uploading '%.300s'", fkey);
        goto done;
    }

    /* 2. UploadPart, up to part_concurrency at once. */
    mp_job job = {.st = st, .fkey = fkey, .src = src, .upload_q = abort_q.data, .size = size,
                  .part = part, .parts = parts, .etags = etags};
    rc = send_parts(&job, err);
    if (rc < 0) goto done;

    /* 3. CompleteMultipartUpload. */
    buf_puts(&xml, "<CompleteMultipartUpload>");
    for (uint32_t i = 0; i < parts; i++) {
        buf_printf(&xml, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
        for (const char *p = etags[i]; *p; p++) { /* ETags are quoted: escape for XML */
            if (*p == '"') buf_puts(&xml, "&quot;");
            else if (*p == '&') buf_puts(&xml, "&amp;");
            else if (*p == '<') buf_puts(&xml, "&lt;");
            else buf_putc(&xml, *p);
        }
        buf_puts(&xml, "</ETag></Part>");
    }
    buf_puts(&xml, "</CompleteMultipartUpload>");
    if (buf_failed(&xml)) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    ostore_source body = {.kind = OSTORE_SRC_MEM, .data = (const uint8_t *)xml.data, .fd = -1,
                          .size_bytes = xml.len};
    s3_req cr = {.method = "POST", .key = fkey, .query = abort_q.data, .body = &body,
                 .body_len = xml.len, .content_type = "application/xml", .error_in_200 = true,
                 .reply = BUF_INIT};
    rc = hash_range(&body, 0, xml.len, cr.body_sha256, NULL);
    rc = rc < 0 ? source_error(&body, rc, fkey, err) : s3_do(st, &cr, err);
    if (rc == 0 && cr.status != 200) rc = http_error(st, &cr, err);
    if (rc < 0 && cr.attempts > 1) {
        /* Invariant (2): an earlier attempt whose reply was lost may have
         * completed the upload; the retries then fail (AWS: NoSuchUpload;
         * some servers: 500). The object, with our size and checksum,
         * tells. */
        s3_req hr = {.method = "HEAD", .key = fkey, .reply = BUF_INIT};
        tdb_error e;
        if (s3_do(st, &hr, &e) == 0 && hr.status == 200 && hr.has_crc && hr.crc == crc &&
            hr.has_length && hr.content_length == size) {
            log_msg(LOG_INFO, "object store: multipart upload of '%s' had completed before its "
                    "reply was lost; the object is in place", fkey);
            tdb_err_clear(err);
            rc = 0;
        }
        req_free(&hr);
    }
    if (rc == 0) completed = true;
    req_free(&cr);
done:
    /* Never without the uploadId: a bare DELETE would remove the object. */
    if (started && !completed && abort_q.data && !buf_failed(&abort_q))
        abort_upload(st, fkey, abort_q.data);
    free(etags);
    buf_free(&xml);
    buf_free(&abort_q);
    return rc;
}

static int s3_put(objstore *s, const char *key, const ostore_source *src, tdb_error *err) {
    s3_store *st = impl(s);
    buf fk = BUF_INIT;
    int rc = full_key(st, key, &fk, err);
    if (rc == 0) {
        if (src->size_bytes > 0 && src->size_bytes >= st->multipart_threshold)
            rc = put_multipart(st, fk.data, src, err);
        else
            rc = put_single(st, fk.data, src, err);
    }
    buf_free(&fk);
    return rc;
}

/* ---- get / head / range -------------------------------------------------- */

static int s3_get(objstore *s, const char *key, ostore_sink *sink, objstore_info *recorded,
                  tdb_error *err) {
    s3_store *st = impl(s);
    buf fk = BUF_INIT;
    int rc = full_key(st, key, &fk, err);
    if (rc < 0) goto done;
    s3_req r = {.method = "GET", .key = fk.data, .sink = sink, .reply = BUF_INIT};
    rc = s3_do(st, &r, err);
    if (rc == 0 && r.status != 200) rc = http_error(st, &r, err);
    if (rc == 0) {
        recorded->size_bytes = r.has_length ? r.content_length : sink->written;
        recorded->has_crc32c = r.has_crc;
        recorded->crc32c = r.crc;
    }
    req_free(&r);
done:
    buf_free(&fk);
    return rc;
}

static int s3_get_range(objstore *s, const char *key, uint64_t offset, size_t len, void *out,
                        size_t *got, tdb_error *err) {
    s3_store *st = impl(s);
    buf fk = BUF_INIT;
    int rc = full_key(st, key, &fk, err);
    if (rc < 0) goto done;
    s3_req r = {.method = "GET", .key = fk.data, .has_range = true, .range_start = offset,
                .range_len = len, .range_out = out, .reply = BUF_INIT};
    rc = s3_do(st, &r, err);
    /* A 200 means the server ignored the range: on_body skipped to it. */
    if (rc == 0 && r.status == 416) {
        *got = 0; /* the range starts at or past the end */
    } else if (rc == 0 && (r.status == 206 || r.status == 200)) {
        *got = r.range_got;
    } else if (rc == 0) {
        rc = http_error(st, &r, err);
    }
    req_free(&r);
done:
    buf_free(&fk);
    return rc;
}

static int s3_head(objstore *s, const char *key, objstore_info *info, tdb_error *err) {
    s3_store *st = impl(s);
    buf fk = BUF_INIT;
    int rc = full_key(st, key, &fk, err);
    if (rc < 0) goto done;
    s3_req r = {.method = "HEAD", .key = fk.data, .reply = BUF_INIT};
    rc = s3_do(st, &r, err);
    if (rc == 0 && r.status != 200) rc = http_error(st, &r, err);
    if (rc == 0) {
        info->size_bytes = r.has_length ? r.content_length : 0;
        info->has_crc32c = r.has_crc;
        info->crc32c = r.crc;
    }
    req_free(&r);
done:
    buf_free(&fk);
    return rc;
}

static int s3_del(objstore *s, const char *key, tdb_error *err) {
    s3_store *st = impl(s);
    buf fk = BUF_INIT;
    int rc = full_key(st, key, &fk, err);
    if (rc < 0) goto done;
    s3_req r = {.method = "DELETE", .key = fk.data, .reply = BUF_INIT};
    rc = s3_do(st, &r, err);
    if (rc == 0 && r.status != 204 && r.status != 200 &&
        !(r.status == 404 && strcmp(r.err_code, "NoSuchKey") == 0))
        rc = http_error(st, &r, err);
    req_free(&r);
done:
    buf_free(&fk);
    return rc;
}

/* ---- list ------------------------------------------------------------------- */

typedef struct list_xml_ctx {
    s3_store *st;
    objstore_page *page;
    size_t cap;
    char key[OBJSTORE_MAX_KEY_BYTES + 1];
    bool has_key;
    uint64_t size;
    bool truncated;
    bool is_error;
    tdb_error *err;
} list_xml_ctx;

static int on_list_xml(void *ctx, const char *path, const char *text, size_t len) {
    list_xml_ctx *c = ctx;
    if (strncmp(path, "ListBucketResult", 16) != 0) {
        c->is_error = true;
        return 0;
    }
    if (text == NULL) {
        if (strcmp(path, "ListBucketResult/Contents") != 0) return 0;
        /* One entry complete. Keys outside our prefix cannot be listed
         * for it, but a server that sends them anyway is not trusted. */
        size_t plen = strlen(c->st->prefix);
        if (c->has_key && strncmp(c->key, c->st->prefix, plen) == 0 && c->key[plen] != '\0') {
            int rc = ostore_page_add(c->page, &c->cap, c->key + plen, strlen(c->key) - plen,
                                     c->size, c->err);
            if (rc < 0) return rc;
        }
        c->has_key = false;
        c->size = 0;
        return 0;
    }
    if (strcmp(path, "ListBucketResult/Contents/Key") == 0) {
        if (len > OBJSTORE_MAX_KEY_BYTES) return 0; /* not one of ours */
        memcpy(c->key, text, len + 1);
        c->has_key = true;
    } else if (strcmp(path, "ListBucketResult/Contents/Size") == 0) {
        c->size = strtoull(text, NULL, 10);
    } else if (strcmp(path, "ListBucketResult/IsTruncated") == 0) {
        c->truncated = strcmp(text, "true") == 0;
    }
    return 0;
}

static int s3_list(objstore *s, const char *prefix, const char *after, uint32_t max_keys,
                   objstore_page *page, tdb_error *err) {
    s3_store *st = impl(s);
    buf q = BUF_INIT, tmp = BUF_INIT;
    int rc = 0;
    /* Parameters in canonical (sorted) order. */
    buf_printf(&q, "list-type=2&max-keys=%u&prefix=", max_keys);
    buf_puts(&tmp, st->prefix);
    buf_puts(&tmp, prefix);
    uri_encode(&q, tmp.data ? tmp.data : "", false);
    if (after) {
        buf_reset(&tmp);
        buf_puts(&tmp, st->prefix);
        buf_puts(&tmp, after);
        buf_puts(&q, "&start-after=");
        uri_encode(&q, tmp.data, false);
    }
    if (buf_failed(&q) || buf_failed(&tmp)) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    s3_req r = {.method = "GET", .query = q.data, .reply = BUF_INIT};
    rc = s3_do(st, &r, err);
    if (rc == 0 && r.status != 200) rc = http_error(st, &r, err);
    if (rc == 0) {
        list_xml_ctx c = {.st = st, .page = page, .err = err};
        int x = s3_xml_walk(r.reply.data ? r.reply.data : "", r.reply.len, on_list_xml, &c);
        if (x < 0 && x != S3_XML_MALFORMED) {
            rc = x;
        } else if (x == S3_XML_MALFORMED || c.is_error) {
            rc = tdb_err(err, TDB_EIO, "object_store_error",
                         "object store %s sent a list reply that is not a ListBucketResult",
                         st->endpoint);
        } else if (c.truncated && page->count > 0) {
            page->next = strdup(page->entries[page->count - 1].key);
            if (page->next == NULL) rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
        }
    }
    req_free(&r);
done:
    buf_free(&q);
    buf_free(&tmp);
    return rc;
}

/* ---- check ----------------------------------------------------------------- */

static int s3_check(objstore *s, tdb_error *err) {
    s3_store *st = impl(s);
    /* 1. A one-key listing: reachability, credentials, bucket, read right. */
    objstore_page page = {0};
    int rc = s3_list(s, "", NULL, 1, &page, err);
    objstore_page_free(&page);
    if (rc < 0) return rc;
    /* 2. A probe object written and deleted: the write right. Its name
     * starts with '.', so it is never a key of ours. */
    buf key = BUF_INIT;
    buf_printf(&key, "%s.tierdb-check-%ld-%llu", st->prefix, (long)getpid(),
               (unsigned long long)atomic_fetch_add(&st->probe_seq, 1));
    if (buf_failed(&key)) return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
    ostore_source probe = {.kind = OSTORE_SRC_MEM, .data = (const uint8_t *)"ok", .fd = -1,
                           .size_bytes = 2};
    rc = put_single(st, key.data, &probe, err);
    if (rc == 0) {
        s3_req r = {.method = "DELETE", .key = key.data, .reply = BUF_INIT};
        rc = s3_do(st, &r, err);
        if (rc == 0 && r.status != 204 && r.status != 200) rc = http_error(st, &r, err);
        req_free(&r);
    }
    buf_free(&key);
    return rc;
}

const objstore_backend ostore_s3_backend = {
    .scheme = "s3",
    .open = s3_open,
    .close = s3_close,
    .check = s3_check,
    .put = s3_put,
    .get = s3_get,
    .get_range = s3_get_range,
    .head = s3_head,
    .del = s3_del,
    .list = s3_list,
};
