/*
 * objstore.c: the generic front of the object store: the one entry point
 * every caller uses (objstore.h). It parses the URL, picks the backend,
 * validates options and keys, opens local files for put_file / get_file,
 * and verifies the CRC32C of every whole-object get; the backends
 * (local.c, s3.c, behind objstore_int.h) only move bytes.
 * Layer: objstore. Uses util/fileio (local files), util/crc32c, util/error.
 *
 * Invariants:
 *   (1) a get succeeds only when the CRC32C of the bytes received equals
 *       the one recorded at put; otherwise TDB_ECORRUPT, and get_file then
 *       leaves its destination untouched (the temporary file is removed).
 *   (2) keys reaching a backend satisfy the rules of objstore.h.
 *   (3) every public call is counted exactly once, when it returns
 *       (outcome, cause of a failure, bytes moved, duration): the public
 *       functions are thin wrappers around the static ones that do the
 *       work, and count what those return.
 * Concurrency: no state of its own beyond the store, which is read-only
 * after open (its counters are atomics); each call owns its source or sink.
 */
#include "objstore/objstore_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/fileio.h"

/* Defaults (objstore.h says what each means). */
#define DEFAULT_MULTIPART_THRESHOLD ((uint64_t)64 << 20) /* below it one PUT is cheaper */
#define DEFAULT_PART_SIZE ((uint64_t)16 << 20)           /* bounds memory per upload */
#define DEFAULT_MAX_RETRIES 5           /* ~ 6 s of backoff at the defaults before giving up */
#define DEFAULT_RETRY_BASE_MS 200
#define DEFAULT_RETRY_MAX_MS 10000
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_STALL_TIMEOUT_MS 30000 /* S3 itself drops idle connections after ~20 s */
/* Upper bounds that catch a unit mistake (seconds given as ms ... x1000). */
#define MAX_RETRIES_LIMIT 100
#define MAX_DELAY_MS_LIMIT (3600u * 1000u)
/* Bytes preallocated for a memory get from a size the server announced:
 * beyond this the buffer grows as bytes really arrive, so a wrong
 * Content-Length cannot make us reserve gigabytes up front. */
#define SINK_PREALLOC_MAX_BYTES ((uint64_t)64 << 20)

void objstore_options_default(objstore_options *o) {
    memset(o, 0, sizeof *o);
    o->path_style = false;
    o->multipart_threshold_bytes = DEFAULT_MULTIPART_THRESHOLD;
    o->part_size_bytes = DEFAULT_PART_SIZE;
    o->max_retries = DEFAULT_MAX_RETRIES;
    o->retry_base_delay_ms = DEFAULT_RETRY_BASE_MS;
    o->retry_max_delay_ms = DEFAULT_RETRY_MAX_MS;
    o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    o->stall_timeout_ms = DEFAULT_STALL_TIMEOUT_MS;
    o->request_timeout_ms = 0;
    o->fsync = true;
}

static int check_options(const objstore_options *o, tdb_error *err) {
    if (o->part_size_bytes < OBJSTORE_MIN_PART_BYTES || o->part_size_bytes > OBJSTORE_MAX_PART_BYTES)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store_options",
                       "object store part size %llu bytes is out of range: S3 accepts parts of "
                       "5 MiB to 5 GiB",
                       (unsigned long long)o->part_size_bytes);
    if (o->multipart_threshold_bytes == 0)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store_options",
                       "object store multipart threshold must be at least 1 byte");
    if (o->max_retries > MAX_RETRIES_LIMIT)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store_options",
                       "object store max retries %u is above the limit of %u", o->max_retries,
                       MAX_RETRIES_LIMIT);
    if (o->retry_base_delay_ms > MAX_DELAY_MS_LIMIT || o->retry_max_delay_ms > MAX_DELAY_MS_LIMIT ||
        o->connect_timeout_ms > MAX_DELAY_MS_LIMIT || o->stall_timeout_ms > MAX_DELAY_MS_LIMIT)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store_options",
                       "an object store delay or timeout is above one hour: are seconds given "
                       "where milliseconds are expected?");
    return 0;
}

/* ---- keys ------------------------------------------------------------ */

static bool key_char_ok(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c != '\0' && strchr("!-_.*'()=/", c) != NULL;
}

static int check_key(const char *key, tdb_error *err) {
    if (key == NULL || key[0] == '\0')
        return tdb_err(err, TDB_EINVAL, "invalid_object_key", "object key is empty");
    size_t len = strlen(key);
    if (len > OBJSTORE_MAX_KEY_BYTES)
        return tdb_err(err, TDB_EINVAL, "invalid_object_key",
                       "object key of %zu bytes is longer than the limit of %d", len,
                       OBJSTORE_MAX_KEY_BYTES);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (!key_char_ok(c))
            return tdb_err(err, TDB_EINVAL, "invalid_object_key",
                           "object key '%.200s' has a character (byte 0x%02x at %zu) outside "
                           "[A-Za-z0-9!-_.*'()=/]",
                           key, c, i);
        bool starts_component = i == 0 || key[i - 1] == '/';
        if (starts_component && (c == '/' || c == '.'))
            return tdb_err(err, TDB_EINVAL, "invalid_object_key",
                           "object key '%.200s' has an empty component or one starting with '.'",
                           key);
    }
    if (key[len - 1] == '/')
        return tdb_err(err, TDB_EINVAL, "invalid_object_key",
                       "object key '%.200s' ends with '/'", key);
    return 0;
}

/* ---- checksums as text ----------------------------------------------- */

void ostore_crc_format(uint32_t crc, char out[OSTORE_CRC_HEX_BYTES]) {
    snprintf(out, OSTORE_CRC_HEX_BYTES, "%08x", crc);
}

bool ostore_crc_parse(const char *text, size_t len, uint32_t *crc) {
    if (len != 8) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < 8; i++) {
        char c = text[i];
        uint32_t d;
        if (c >= '0' && c <= '9') d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (uint32_t)(c - 'A' + 10);
        else return false;
        v = (v << 4) | d;
    }
    *crc = v;
    return true;
}

/* ---- sources ---------------------------------------------------------- */

ssize_t ostore_source_read(const ostore_source *src, uint64_t offset, void *out, size_t len) {
    if (offset >= src->size_bytes) return 0;
    if (len > src->size_bytes - offset) len = (size_t)(src->size_bytes - offset);
    if (src->kind == OSTORE_SRC_MEM) {
        memcpy(out, src->data + offset, len);
        return (ssize_t)len;
    }
    return fio_pread(src->fd, out, len, offset);
}

int ostore_source_crc(const ostore_source *src, uint32_t *crc) {
    if (src->kind == OSTORE_SRC_MEM) {
        *crc = crc32c(src->data, (size_t)src->size_bytes);
        return 0;
    }
    char *chunk = malloc(OSTORE_IO_CHUNK_BYTES);
    if (chunk == NULL) return -ENOMEM;
    uint32_t c = 0;
    uint64_t off = 0;
    int rc = 0;
    while (off < src->size_bytes) {
        ssize_t n = ostore_source_read(src, off, chunk, OSTORE_IO_CHUNK_BYTES);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0) { /* the file shrank under us */
            rc = -EIO;
            break;
        }
        c = crc32c_extend(c, chunk, (size_t)n);
        off += (uint64_t)n;
    }
    free(chunk);
    if (rc == 0) *crc = c;
    return rc;
}

/* ---- sinks ------------------------------------------------------------ */

int ostore_sink_write(ostore_sink *sink, const void *data, size_t len) {
    if (sink->error) return sink->error;
    if (sink->kind == OSTORE_SINK_MEM) {
        size_t need = (size_t)sink->written + len + 1;
        if (need < len) return sink->error = TDB_ENOMEM; /* overflow */
        if (need > sink->mem_cap) {
            size_t cap = sink->mem_cap ? sink->mem_cap : 4096;
            while (cap < need) cap = cap * 2 > cap ? cap * 2 : need;
            char *p = realloc(sink->mem, cap);
            if (p == NULL) return sink->error = TDB_ENOMEM;
            sink->mem = p;
            sink->mem_cap = cap;
        }
        memcpy(sink->mem + sink->written, data, len);
        sink->mem[sink->written + len] = '\0';
    } else {
        int rc = fio_pwrite_all(sink->fd, data, len, sink->written);
        if (rc < 0) return sink->error = rc;
    }
    sink->crc = crc32c_extend(sink->crc, data, len);
    sink->written += len;
    return 0;
}

int ostore_sink_reset(ostore_sink *sink) {
    sink->crc = 0;
    sink->written = 0;
    sink->error = 0;
    if (sink->kind == OSTORE_SINK_FILE && sink->fd >= 0) {
        int rc = fio_ftruncate(sink->fd, 0);
        if (rc < 0) return sink->error = rc;
    }
    return 0;
}

void ostore_sink_expect(ostore_sink *sink, uint64_t size_bytes) {
    if (sink->kind != OSTORE_SINK_MEM) return;
    if (size_bytes > SINK_PREALLOC_MAX_BYTES) size_bytes = SINK_PREALLOC_MAX_BYTES;
    size_t need = (size_t)size_bytes + 1;
    if (need <= sink->mem_cap) return;
    char *p = realloc(sink->mem, need);
    if (p == NULL) return; /* a hint only: writes will grow it or fail */
    sink->mem = p;
    sink->mem_cap = need;
}

/* ---- pages ------------------------------------------------------------ */

int ostore_page_add(objstore_page *page, size_t *cap, const char *key, size_t key_len,
                    uint64_t size_bytes, tdb_error *err) {
    if (page->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        objstore_entry *e = realloc(page->entries, ncap * sizeof *e);
        if (e == NULL) return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory listing objects");
        page->entries = e;
        *cap = ncap;
    }
    char *k = malloc(key_len + 1);
    if (k == NULL) return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory listing objects");
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    page->entries[page->count].key = k;
    page->entries[page->count].size_bytes = size_bytes;
    page->count++;
    return 0;
}

void objstore_page_free(objstore_page *page) {
    if (page == NULL) return;
    for (size_t i = 0; i < page->count; i++) free(page->entries[i].key);
    free(page->entries);
    free(page->next);
    page->entries = NULL;
    page->count = 0;
    page->next = NULL;
}

/* ---- counters --------------------------------------------------------- */

/* Bucket bounds: a local put of a small object takes well under 5 ms, an
 * S3 request tens of ms, a multipart upload of a large segment seconds. */
const double objstore_latency_bounds_s[OBJSTORE_LATENCY_BUCKETS] = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60};

const char *objstore_op_name(objstore_op op) {
    static const char *const names[OBJSTORE_OP_COUNT] = {"put",    "get",  "get_range", "head",
                                                         "delete", "list", "check"};
    return (unsigned)op < OBJSTORE_OP_COUNT ? names[op] : "unknown";
}

const char *objstore_outcome_name(objstore_outcome outcome) {
    static const char *const names[OBJSTORE_OUTCOME_COUNT] = {"ok", "not_found", "error"};
    return (unsigned)outcome < OBJSTORE_OUTCOME_COUNT ? names[outcome] : "unknown";
}

const char *objstore_retry_reason_name(objstore_retry_reason reason) {
    static const char *const names[OBJSTORE_RETRY_COUNT] = {"throttled", "server_error", "timeout",
                                                            "connection"};
    return (unsigned)reason < OBJSTORE_RETRY_COUNT ? names[reason] : "unknown";
}

/* tdb_error names (docs/object-storage.md "Errors") -> causes. */
static const struct {
    const char *error_name;
    const char *label;
} g_causes[OBJSTORE_CAUSE_COUNT] = {
    [OBJSTORE_CAUSE_UNREACHABLE] = {"object_store_unreachable", "unreachable"},
    [OBJSTORE_CAUSE_TIMEOUT] = {"object_store_timeout", "timeout"},
    [OBJSTORE_CAUSE_TLS] = {"object_store_tls", "tls"},
    [OBJSTORE_CAUSE_AUTH] = {"object_store_auth", "auth"},
    [OBJSTORE_CAUSE_REGION] = {"object_store_region", "region"},
    [OBJSTORE_CAUSE_BUCKET_MISSING] = {"object_store_bucket_missing", "bucket_missing"},
    [OBJSTORE_CAUSE_BUSY] = {"object_store_busy", "busy"},
    [OBJSTORE_CAUSE_CORRUPT] = {"object_corrupt", "corrupt"},
    [OBJSTORE_CAUSE_IO] = {"object_store_io", "io"},
    [OBJSTORE_CAUSE_INVALID] = {NULL, "invalid"}, /* every invalid_* name, by prefix */
    [OBJSTORE_CAUSE_OUT_OF_MEMORY] = {"out_of_memory", "out_of_memory"},
    [OBJSTORE_CAUSE_OTHER] = {NULL, "other"},
};

const char *objstore_cause_name(objstore_cause cause) {
    return (unsigned)cause < OBJSTORE_CAUSE_COUNT ? g_causes[cause].label : "unknown";
}

static objstore_cause cause_of(int rc, const tdb_error *err) {
    if (rc == TDB_ENOMEM) return OBJSTORE_CAUSE_OUT_OF_MEMORY;
    for (int i = 0; i < OBJSTORE_CAUSE_COUNT; i++)
        if (g_causes[i].error_name && strcmp(err->name, g_causes[i].error_name) == 0)
            return (objstore_cause)i;
    if (rc == TDB_EINVAL || strncmp(err->name, "invalid_", 8) == 0) return OBJSTORE_CAUSE_INVALID;
    if (rc == TDB_ECORRUPT) return OBJSTORE_CAUSE_CORRUPT;
    return OBJSTORE_CAUSE_OTHER;
}

/* Counts one finished call (invariant (3)) and returns rc. bytes: object
 * bytes moved when it succeeded. err is never NULL here (the wrappers
 * substitute a local one) so the cause can be read. */
static int counted(objstore *store, objstore_op op, uint64_t t0_ns, int rc, uint64_t bytes,
                   const tdb_error *err) {
    ostore_counters *k = &store->counters;
    uint64_t us = (clock_mono_ns() - t0_ns) / 1000;
    objstore_outcome outcome = rc == 0                ? OBJSTORE_OUTCOME_OK
                               : rc == TDB_ENOTFOUND ? OBJSTORE_OUTCOME_NOT_FOUND
                                                     : OBJSTORE_OUTCOME_ERROR;
    OSTORE_COUNT(k->calls[op][outcome], 1);
    if (outcome == OBJSTORE_OUTCOME_ERROR) OSTORE_COUNT(k->errors[cause_of(rc, err)], 1);
    if (rc == 0 && bytes) {
        if (op == OBJSTORE_OP_PUT) OSTORE_COUNT(k->uploaded_bytes, bytes);
        else OSTORE_COUNT(k->downloaded_bytes, bytes);
    }
    int b = 0;
    while (b < OBJSTORE_LATENCY_BUCKETS && (double)us > objstore_latency_bounds_s[b] * 1e6) b++;
    OSTORE_COUNT(k->latency_buckets[op][b], 1);
    OSTORE_COUNT(k->latency_us_sum[op], us);
    return rc;
}

void objstore_stats_get(const objstore *store, objstore_stats *out) {
    memset(out, 0, sizeof *out);
    if (store == NULL) return;
    const ostore_counters *k = &store->counters;
#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
    for (int op = 0; op < OBJSTORE_OP_COUNT; op++) {
        for (int o = 0; o < OBJSTORE_OUTCOME_COUNT; o++) out->calls[op][o] = LOAD(k->calls[op][o]);
        for (int b = 0; b <= OBJSTORE_LATENCY_BUCKETS; b++)
            out->latency_buckets[op][b] = LOAD(k->latency_buckets[op][b]);
        out->latency_us_sum[op] = LOAD(k->latency_us_sum[op]);
    }
    for (int c = 0; c < OBJSTORE_CAUSE_COUNT; c++) out->errors[c] = LOAD(k->errors[c]);
    for (int r = 0; r < OBJSTORE_RETRY_COUNT; r++) out->retries[r] = LOAD(k->retries[r]);
    out->http_requests = LOAD(k->http_requests);
    out->uploaded_bytes = LOAD(k->uploaded_bytes);
    out->downloaded_bytes = LOAD(k->downloaded_bytes);
#undef LOAD
}

/* ---- open / close ----------------------------------------------------- */

int objstore_open(const char *url, const objstore_options *opts, objstore **out, tdb_error *err) {
    *out = NULL;
    objstore_options defaults;
    if (opts == NULL) {
        objstore_options_default(&defaults);
        opts = &defaults;
    }
    int rc = check_options(opts, err);
    if (rc < 0) return rc;
    if (url == NULL)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store", "object store URL is missing");
    const objstore_backend *backend = NULL;
    const char *location = NULL;
    static const objstore_backend *const backends[] = {&ostore_local_backend, &ostore_s3_backend};
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        size_t n = strlen(backends[i]->scheme);
        if (strncmp(url, backends[i]->scheme, n) == 0 && strncmp(url + n, "://", 3) == 0) {
            backend = backends[i];
            location = url + n + 3;
        }
    }
    if (backend == NULL)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store",
                       "object store URL '%.200s' is neither file:///path nor s3://bucket/prefix",
                       url);
    objstore *s = calloc(1, sizeof *s);
    if (s == NULL)
        return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory opening the object store");
    s->backend = backend;
    s->fsync = opts->fsync;
    s->url = strdup(url);
    if (s->url == NULL) {
        free(s);
        return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory opening the object store");
    }
    rc = backend->open(s, location, opts, err);
    if (rc < 0) {
        free(s->url);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void objstore_close(objstore *store) {
    if (store == NULL) return;
    store->backend->close(store);
    free(store->url);
    free(store);
}

const char *objstore_url(const objstore *store) { return store->url; }

int objstore_check(objstore *store, tdb_error *err) {
    tdb_error local = {0};
    if (err == NULL) err = &local;
    uint64_t t0 = clock_mono_ns();
    return counted(store, OBJSTORE_OP_CHECK, t0, store->backend->check(store, err), 0, err);
}

/* ---- operations ------------------------------------------------------- */

static int do_put(objstore *store, const char *key, const void *data, size_t len, tdb_error *err) {
    int rc = check_key(key, err);
    if (rc < 0) return rc;
    if (data == NULL && len > 0)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "objstore_put: data is NULL");
    if (data == NULL) data = ""; /* backends may do pointer arithmetic on it */
    ostore_source src = {.kind = OSTORE_SRC_MEM, .data = data, .fd = -1, .size_bytes = len};
    return store->backend->put(store, key, &src, err);
}

static int do_put_file(objstore *store, const char *key, const char *path, uint64_t *size,
                       tdb_error *err) {
    int rc = check_key(key, err);
    if (rc < 0) return rc;
    int fd = fio_open(path, O_RDONLY, 0);
    if (fd < 0)
        return tdb_err(err, TDB_EIO, "object_store_io",
                       "cannot open '%.300s' to upload it: %s", path, strerror(-fd));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = tdb_err(err, TDB_EINVAL, "invalid_request", "'%.300s' is not a regular file", path);
        goto done;
    }
    ostore_source src = {.kind = OSTORE_SRC_FILE, .fd = fd, .path = path,
                         .size_bytes = (uint64_t)st.st_size};
    rc = store->backend->put(store, key, &src, err);
    if (rc == 0) *size = src.size_bytes;
done:
    fio_close(fd);
    return rc;
}

static int verify(objstore *store, const char *key, const ostore_sink *sink,
                  const objstore_info *recorded, tdb_error *err) {
    if (!recorded->has_crc32c)
        return tdb_err(err, TDB_ECORRUPT, "object_corrupt",
                       "object '%.300s' in %.200s has no recorded CRC32C: it was not written by "
                       "tierdb, or its checksum was stripped; refusing to trust it",
                       key, store->url);
    if (recorded->crc32c != sink->crc || recorded->size_bytes != sink->written)
        return tdb_err(err, TDB_ECORRUPT, "object_corrupt",
                       "object '%.300s' in %.200s is corrupt: %llu bytes with CRC32C %08x "
                       "received, %llu bytes with CRC32C %08x recorded at upload",
                       key, store->url, (unsigned long long)sink->written, sink->crc,
                       (unsigned long long)recorded->size_bytes, recorded->crc32c);
    return 0;
}

static int do_get(objstore *store, const char *key, void **data, size_t *len, tdb_error *err) {
    *data = NULL;
    *len = 0;
    int rc = check_key(key, err);
    if (rc < 0) return rc;
    ostore_sink sink = {.kind = OSTORE_SINK_MEM, .fd = -1};
    objstore_info recorded = {0};
    rc = store->backend->get(store, key, &sink, &recorded, err);
    if (rc == 0) rc = verify(store, key, &sink, &recorded, err);
    if (rc == 0 && sink.mem == NULL) { /* an empty object still gets a buffer */
        sink.mem = calloc(1, 1);
        if (sink.mem == NULL) rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
    }
    if (rc == 0) sink.mem[sink.written] = '\0'; /* room is kept for it (even when nothing came) */
    if (rc < 0) {
        free(sink.mem);
        return rc;
    }
    *data = sink.mem;
    *len = (size_t)sink.written;
    return 0;
}

/* Names the temporary file of a get_file: unique per process and call so
 * concurrent downloads to one path do not collide. */
static int temp_name_for(const char *path, char **out) {
    static _Atomic unsigned long seq;
    unsigned long n = atomic_fetch_add(&seq, 1);
    size_t cap = strlen(path) + 64;
    char *p = malloc(cap);
    if (p == NULL) return -ENOMEM;
    snprintf(p, cap, "%s.tmp-%ld-%lu", path, (long)getpid(), n);
    *out = p;
    return 0;
}

static void dir_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(out, cap, ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= cap) n = cap - 1;
        memcpy(out, path, n);
        out[n] = '\0';
    }
}

static int do_get_file(objstore *store, const char *key, const char *path, uint64_t *size,
                       tdb_error *err) {
    int rc = check_key(key, err);
    if (rc < 0) return rc;
    ostore_sink sink = {.kind = OSTORE_SINK_FILE, .fd = -1, .path = path};
    objstore_info recorded = {0};
    bool renamed = false;
    if (temp_name_for(path, &sink.tmp_path) < 0)
        return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
    sink.fd = fio_open(sink.tmp_path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (sink.fd < 0) {
        rc = tdb_err(err, TDB_EIO, "object_store_io", "cannot create '%.300s' to download into: %s",
                     sink.tmp_path, strerror(-sink.fd));
        goto done;
    }
    rc = store->backend->get(store, key, &sink, &recorded, err);
    if (rc == 0) rc = verify(store, key, &sink, &recorded, err);
    if (rc < 0) goto done;
    int io = store->fsync ? fio_fsync(sink.fd) : 0;
    if (io == 0) io = fio_close(sink.fd);
    else fio_close(sink.fd);
    sink.fd = -1;
    if (io == 0) io = fio_rename(sink.tmp_path, path);
    if (io == 0) {
        renamed = true;
        char dir[PATH_MAX];
        dir_of(path, dir, sizeof dir);
        if (store->fsync) io = fio_fsync_dir(dir);
    }
    if (io < 0)
        rc = tdb_err(err, TDB_EIO, "object_store_io", "cannot store the download of '%.300s' as "
                     "'%.300s': %s", key, path, strerror(-io));
    if (rc == 0) *size = sink.written;
done:
    if (sink.fd >= 0) fio_close(sink.fd);
    if (!renamed && sink.tmp_path) unlink(sink.tmp_path); /* uncounted, as fileio's own clean-up */
    free(sink.tmp_path);
    return rc;
}

static int do_get_range(objstore *store, const char *key, uint64_t offset, size_t len, void *out,
                       size_t *got, tdb_error *err) {
    *got = 0;
    int rc = check_key(key, err);
    if (rc < 0) return rc;
    if (len == 0) return 0;
    if (offset > UINT64_MAX - len)
        return tdb_err(err, TDB_EINVAL, "invalid_request", "range at %llu of %zu bytes overflows",
                       (unsigned long long)offset, len);
    return store->backend->get_range(store, key, offset, len, out, got, err);
}

static int do_head(objstore *store, const char *key, objstore_info *info, tdb_error *err) {
    memset(info, 0, sizeof *info);
    int rc = check_key(key, err);
    if (rc < 0) return rc;
    return store->backend->head(store, key, info, err);
}

static int do_delete(objstore *store, const char *key, tdb_error *err) {
    int rc = check_key(key, err);
    if (rc < 0) return rc;
    return store->backend->del(store, key, err);
}

static int do_list(objstore *store, const char *prefix, const char *after, uint32_t max_keys,
                  objstore_page *page, tdb_error *err) {
    memset(page, 0, sizeof *page);
    if (prefix == NULL) prefix = "";
    if (strlen(prefix) > OBJSTORE_MAX_KEY_BYTES || (after && strlen(after) > OBJSTORE_MAX_KEY_BYTES))
        return tdb_err(err, TDB_EINVAL, "invalid_request",
                       "list prefix or start key is longer than %d bytes", OBJSTORE_MAX_KEY_BYTES);
    if (after && after[0] == '\0') after = NULL;
    if (max_keys == 0 || max_keys > OBJSTORE_MAX_LIST_KEYS) max_keys = OBJSTORE_MAX_LIST_KEYS;
    int rc = store->backend->list(store, prefix, after, max_keys, page, err);
    if (rc < 0) objstore_page_free(page);
    return rc;
}

/* ---- the public calls: counted wrappers (invariant (3)) --------------- */

int objstore_put(objstore *store, const char *key, const void *data, size_t len, tdb_error *err) {
    tdb_error local = {0};
    if (err == NULL) err = &local;
    uint64_t t0 = clock_mono_ns();
    return counted(store, OBJSTORE_OP_PUT, t0, do_put(store, key, data, len, err), len, err);
}

int objstore_put_file(objstore *store, const char *key, const char *path, tdb_error *err) {
    tdb_error local = {0};
    if (err == NULL) err = &local;
    uint64_t t0 = clock_mono_ns(), size = 0;
    int rc = do_put_file(store, key, path, &size, err);
    return counted(store, OBJSTORE_OP_PUT, t0, rc, size, err);
}

int objstore_get(objstore *store, const char *key, void **data, size_t *len, tdb_error *err) {
    tdb_error local = {0};
    if (err == NULL) err = &local;
    uint64_t t0 = clock_mono_ns();
    int rc = do_get(store, key, data, len, err);
    return counted(store, OBJSTORE_OP_GET, t0, rc, rc == 0 ? *len : 0, err);
}

int objstore_get_file(objstore *store, const char *key, const char *path, tdb_error *err) {
    tdb_error local = {0};
    if (err == NULL) err = &local;
    uint64_t t0 = clock_mono_ns(), size = 0;
    int rc = do_get_file(store, key, path, &size, err);
    return counted(store, OBJSTORE_OP_GET, t0, rc, size, err);
}

int objstore_get_range(objstore *store, const char *key, uint64_t offset, size_t len, void *out,
                       size_t *got, tdb_error *err) {
    tdb_error local = {0};
    if (err == NULL) err = &local;
    uint64_t t0 = clock_mono_ns();
    int rc = do_get_range(store, key, offset, len, out, got, err);
    return counted(store, OBJSTORE_OP_GET_RANGE, t0, rc, rc == 0 ? *got : 0, err);
}

int objstore_head(objstore *store, const char *key, objstore_info *info, tdb_error *err) {
    tdb_error local = {0};
    if (err == NULL) err = &local;
    uint64_t t0 = clock_mono_ns();
    return counted(store, OBJSTORE_OP_HEAD, t0, do_head(store, key, info, err), 0, err);
}

int objstore_delete(objstore *store, const char *key, tdb_error *err) {
    tdb_error local = {0};
    if (err == NULL) err = &local;
    uint64_t t0 = clock_mono_ns();
    return counted(store, OBJSTORE_OP_DELETE, t0, do_delete(store, key, err), 0, err);
}

int objstore_list(objstore *store, const char *prefix, const char *after, uint32_t max_keys,
                  objstore_page *page, tdb_error *err) {
    tdb_error local = {0};
    if (err == NULL) err = &local;
    uint64_t t0 = clock_mono_ns();
    int rc = do_list(store, prefix, after, max_keys, page, err);
    return counted(store, OBJSTORE_OP_LIST, t0, rc, 0, err);
}
