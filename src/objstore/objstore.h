/*
 * objstore.h: the object store: one interface over a local directory
 * (file:///path, the default) and S3-compatible storage (s3://bucket/prefix).
 * Layer: objstore. Called by tier/ (cold copies), snapshot/ and db/
 * (start-up check); uses util/ only. objstore.c is the generic front every
 * caller uses; each backend is one file behind the function table of
 * objstore_int.h (local.c, s3.c). User documentation: docs/object-storage.md.
 *
 * Objects are immutable blobs named by keys. A key is 1..OBJSTORE_MAX_KEY_BYTES
 * bytes of [A-Za-z0-9] and "!-_.*'()=/", made of '/'-separated components
 * that are neither empty nor start with '.' (so no "..", no leading or
 * trailing '/'). The same rule on every backend keeps a bucket and a
 * directory interchangeable; a bad key is TDB_EINVAL.
 *
 * Guarantees:
 *   (1) A put is all or nothing: until it returns 0 no reader sees the new
 *       content; after a failure (including a multipart upload that ran
 *       out of retries) no partial object is visible, and an object that
 *       existed before keeps its old content or is wholly replaced.
 *   (2) Every object carries the CRC32C of its content, recorded by us at
 *       put (S3: user metadata x-amz-meta-crc32c; file://: the extended
 *       attribute user.tierdb.crc32c), both as 8 lowercase hex digits.
 *       Whole-object gets verify it: a mismatch, or an object without one,
 *       is TDB_ECORRUPT. Ranged gets cannot verify it (callers' formats
 *       carry their own checksums per section).
 *   (3) Transient failures (HTTP 5xx and 429, timeouts, refused or dropped
 *       connections) are retried up to max_retries times with jittered
 *       exponential backoff; what outlasts them is reported, naming the
 *       cause (wrong credentials, missing bucket, unreachable endpoint).
 *
 * Errors (besides the cause-specific message in tdb_error):
 *   TDB_EINVAL     bad URL, options or key
 *   TDB_ENOTFOUND  no object under the key (get, get_range, head)
 *   TDB_ECORRUPT   content does not match its recorded CRC32C, or the
 *                  object has none (not written through this interface)
 *   TDB_EBUSY      the store kept throttling (429/503 SlowDown) past the retries
 *   TDB_EIO        anything else: unreachable endpoint, rejected credentials,
 *                  missing bucket, local I/O errors (tdb_error.name tells which)
 *   TDB_ENOMEM     out of memory
 *
 * Concurrency: a store is safe to use from any number of threads at once;
 * it holds no lock across network or disk I/O.
 * Ownership: objstore_close() frees what objstore_open() returns. Buffers
 * returned by objstore_get and pages by objstore_list belong to the caller
 * (free() and objstore_page_free()); on failure they are NULL / empty.
 */
#ifndef TDB_OBJSTORE_H
#define TDB_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"

/* Longest key, prefix included: S3's own limit. */
#define OBJSTORE_MAX_KEY_BYTES 1024
/* S3 refuses parts smaller than this (all but the last). */
#define OBJSTORE_MIN_PART_BYTES ((uint64_t)5 << 20)
/* S3 refuses parts larger than this. */
#define OBJSTORE_MAX_PART_BYTES ((uint64_t)5 << 30)
/* S3 allows at most this many parts; the part size grows to stay below. */
#define OBJSTORE_MAX_PARTS 10000
/* Parts of one multipart upload in flight at once: the default, the cap. */
#define OBJSTORE_DEFAULT_PART_CONCURRENCY 4u
#define OBJSTORE_MAX_PART_CONCURRENCY 16u
/* S3 returns at most this many keys per list page. */
#define OBJSTORE_MAX_LIST_KEYS 1000

typedef struct objstore objstore;

/* Options for objstore_open. Fill with objstore_options_default, then
 * change fields. Strings are copied by objstore_open. Fields that only
 * concern S3 are ignored for file://. */
typedef struct objstore_options {
    const char *endpoint;   /* "http[s]://host[:port]"; NULL: AWS, https://s3.REGION.amazonaws.com */
    const char *region;     /* NULL: $AWS_REGION, else "us-east-1" */
    bool path_style;        /* true: ENDPOINT/bucket/key; false: bucket.HOST/key (AWS's default) */
    const char *access_key; /* NULL: $AWS_ACCESS_KEY_ID */
    const char *secret_key; /* NULL: $AWS_SECRET_ACCESS_KEY */
    const char *session_token; /* NULL: $AWS_SESSION_TOKEN (temporary credentials), may stay unset */
    uint64_t multipart_threshold_bytes; /* multipart upload at or above this size; default 64 MiB */
    uint64_t part_size_bytes;           /* >= OBJSTORE_MIN_PART_BYTES; default 16 MiB */
    uint32_t part_concurrency; /* parts of one multipart upload sent at once (memory: this many
                                * parts); 0 = OBJSTORE_DEFAULT_PART_CONCURRENCY, at most
                                * OBJSTORE_MAX_PART_CONCURRENCY */
    uint32_t max_retries;         /* retries after the first attempt; default 5 */
    uint32_t retry_base_delay_ms; /* backoff before retry n is random in [0, base * 2^n]; default 200 */
    uint32_t retry_max_delay_ms;  /* ... capped at this; default 10000 */
    uint32_t connect_timeout_ms;  /* TCP + TLS connect; default 10000 */
    uint32_t stall_timeout_ms;    /* abort an attempt that moves no byte for this long; default 30000 */
    uint32_t request_timeout_ms;  /* whole attempt, 0 = no limit (large objects); default 0 */
    bool fsync; /* local writes (file:// puts, get_file's destination) are fsync'd before
                 * returning; false skips the fsyncs (fsync policy "none", tests). Default true */
} objstore_options;

void objstore_options_default(objstore_options *opts);

/* Opens a store: "file:///abs/path" (a relative "file://dir" is taken
 * relative to the working directory; the directory is created) or
 * "s3://bucket[/prefix]" (keys live under prefix/). No network I/O here:
 * call objstore_check to find out whether the store is usable. opts may be
 * NULL (defaults). On failure *out is NULL. */
int objstore_open(const char *url, const objstore_options *opts, objstore **out, tdb_error *err);
/* Frees the store and its connections. NULL is a no-op. Operations still
 * running on other threads must have returned. */
void objstore_close(objstore *store);
/* The URL the store was opened with. Valid until objstore_close. */
const char *objstore_url(const objstore *store);

/* Start-up check: the store is reachable, the bucket (directory) exists
 * and the credentials may list and write it. The message names the cause:
 * unreachable endpoint, wrong access key or secret, missing bucket, no
 * permission. Writes and deletes one small probe object. */
int objstore_check(objstore *store, tdb_error *err);

/* Stores len bytes under key (replacing any object there). Multipart
 * above the threshold. data is only read during the call. */
int objstore_put(objstore *store, const char *key, const void *data, size_t len, tdb_error *err);
/* Stores the content of the local file at path, streaming it (memory use
 * is bounded by the part size, not the file size). The file must not
 * change during the call (it is read twice: checksums, then upload). */
int objstore_put_file(objstore *store, const char *key, const char *path, tdb_error *err);

/* Reads a whole object into a malloc'd buffer (*data, *len; NUL-terminated
 * for convenience, the NUL not counted) after verifying its CRC32C. The
 * caller frees *data with free(). */
int objstore_get(objstore *store, const char *key, void **data, size_t *len, tdb_error *err);
/* Downloads a whole object into the local file at path: written to a
 * temporary file beside it, verified, fsync'd and renamed over path, so
 * path holds either its old content or the verified object. */
int objstore_get_file(objstore *store, const char *key, const char *path, tdb_error *err);
/* Reads up to len bytes at offset into out; *got is how many (fewer only
 * at the end of the object, 0 at or past it). Not checksummed (see (2)). */
int objstore_get_range(objstore *store, const char *key, uint64_t offset, size_t len, void *out,
                       size_t *got, tdb_error *err);

typedef struct objstore_info {
    uint64_t size_bytes;
    uint32_t crc32c;  /* valid when has_crc32c */
    bool has_crc32c;  /* false: not written through this interface */
} objstore_info;

/* Size and recorded CRC32C of an object; TDB_ENOTFOUND when absent. */
int objstore_head(objstore *store, const char *key, objstore_info *info, tdb_error *err);

/* Removes an object. Removing an absent key succeeds (as on S3), so a
 * retried delete is harmless. */
int objstore_delete(objstore *store, const char *key, tdb_error *err);

typedef struct objstore_entry {
    char *key;          /* without the store's prefix */
    uint64_t size_bytes;
} objstore_entry;

typedef struct objstore_page {
    objstore_entry *entries; /* in ascending byte order of key */
    size_t count;
    char *next; /* NULL when the listing is complete; else pass as `after` for the next page */
} objstore_page;

/* Lists keys that start with prefix ("" or NULL: all) and sort after
 * `after` (NULL: from the start; a page's `next`, or any key: S3's
 * start-after), at most max_keys of them (0 or above
 * OBJSTORE_MAX_LIST_KEYS: OBJSTORE_MAX_LIST_KEYS). Free the page with
 * objstore_page_free, also after a failure (it is then empty). */
int objstore_list(objstore *store, const char *prefix, const char *after, uint32_t max_keys,
                  objstore_page *page, tdb_error *err);
/* Frees the entries and `next`; leaves *page empty. NULL is a no-op. */
void objstore_page_free(objstore_page *page);

/* ---- counters (GET /metrics; docs/operations.md names the series) ----
 * Every call through this interface is counted once, when it returns, by
 * operation and outcome, with its duration (all retries included) in a
 * histogram. Counting is a few relaxed atomic additions: no lock. */

typedef enum objstore_op {
    OBJSTORE_OP_PUT = 0, /* objstore_put and objstore_put_file */
    OBJSTORE_OP_GET,     /* objstore_get and objstore_get_file */
    OBJSTORE_OP_GET_RANGE,
    OBJSTORE_OP_HEAD,
    OBJSTORE_OP_DELETE,
    OBJSTORE_OP_LIST,
    OBJSTORE_OP_CHECK,
    OBJSTORE_OP_COUNT
} objstore_op;

typedef enum objstore_outcome {
    OBJSTORE_OUTCOME_OK = 0,
    OBJSTORE_OUTCOME_NOT_FOUND, /* TDB_ENOTFOUND: an answer, not a failure of the store */
    OBJSTORE_OUTCOME_ERROR,     /* any other failure; its cause is counted in errors[] */
    OBJSTORE_OUTCOME_COUNT
} objstore_outcome;

/* Causes of failed calls: the tdb_error names of docs/object-storage.md,
 * grouped (objstore_cause_name gives the label). */
typedef enum objstore_cause {
    OBJSTORE_CAUSE_UNREACHABLE = 0, /* object_store_unreachable */
    OBJSTORE_CAUSE_TIMEOUT,         /* object_store_timeout */
    OBJSTORE_CAUSE_TLS,             /* object_store_tls */
    OBJSTORE_CAUSE_AUTH,            /* object_store_auth */
    OBJSTORE_CAUSE_REGION,          /* object_store_region */
    OBJSTORE_CAUSE_BUCKET_MISSING,  /* object_store_bucket_missing */
    OBJSTORE_CAUSE_BUSY,            /* object_store_busy */
    OBJSTORE_CAUSE_CORRUPT,         /* object_corrupt */
    OBJSTORE_CAUSE_IO,              /* object_store_io (local files) */
    OBJSTORE_CAUSE_INVALID,         /* invalid_object_key, invalid_request, ... */
    OBJSTORE_CAUSE_OUT_OF_MEMORY,
    OBJSTORE_CAUSE_OTHER,           /* object_store_error and the rest */
    OBJSTORE_CAUSE_COUNT
} objstore_cause;

/* Why a request was sent again (S3 only; file:// never retries). */
typedef enum objstore_retry_reason {
    OBJSTORE_RETRY_THROTTLED = 0, /* HTTP 503 or 429 */
    OBJSTORE_RETRY_SERVER_ERROR,  /* other HTTP 5xx, 408, 400 RequestTimeout */
    OBJSTORE_RETRY_TIMEOUT,       /* a timeout or the stall timeout */
    OBJSTORE_RETRY_CONNECTION,    /* refused, reset, dropped, DNS or TLS failure */
    OBJSTORE_RETRY_COUNT
} objstore_retry_reason;

/* Upper bounds (seconds) of the latency histogram's buckets; a last,
 * implicit bucket is +Inf. */
#define OBJSTORE_LATENCY_BUCKETS 12
extern const double objstore_latency_bounds_s[OBJSTORE_LATENCY_BUCKETS];

typedef struct objstore_stats {
    uint64_t calls[OBJSTORE_OP_COUNT][OBJSTORE_OUTCOME_COUNT];
    uint64_t errors[OBJSTORE_CAUSE_COUNT];       /* calls with outcome error, by cause */
    uint64_t retries[OBJSTORE_RETRY_COUNT];      /* requests sent again, by reason */
    uint64_t http_requests;                      /* HTTP requests sent (S3; retries included) */
    uint64_t uploaded_bytes;   /* object bytes of successful puts */
    uint64_t downloaded_bytes; /* object bytes of successful gets and ranged gets */
    /* latency: per operation, NON-cumulative bucket counts (the last one
     * is +Inf) and the sum of durations in microseconds */
    uint64_t latency_buckets[OBJSTORE_OP_COUNT][OBJSTORE_LATENCY_BUCKETS + 1];
    uint64_t latency_us_sum[OBJSTORE_OP_COUNT];
} objstore_stats;

/* A copy of the store's counters since objstore_open. Each counter is read
 * atomically, the set not as one snapshot (a call finishing meanwhile may
 * show in one counter and not yet in another). */
void objstore_stats_get(const objstore *store, objstore_stats *out);
/* Label values: "put", "get", "get_range", "head", "delete", "list",
 * "check"; "ok", "not_found", "error"; "unreachable", ..., "other";
 * "throttled", "server_error", "timeout", "connection". */
const char *objstore_op_name(objstore_op op);
const char *objstore_outcome_name(objstore_outcome outcome);
const char *objstore_cause_name(objstore_cause cause);
const char *objstore_retry_reason_name(objstore_retry_reason reason);

#endif
