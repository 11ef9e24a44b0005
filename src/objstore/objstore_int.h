/*
 * objstore_int.h: what the generic front (objstore.c) and the backends
 * (local.c, s3.c) share: the backend function table, the store struct,
 * and the two byte streams every transfer goes through: a source (what a
 * put reads) and a sink (where a get writes).
 * Layer: objstore, internal; callers outside the layer include objstore.h.
 *
 * Contract of a backend (each function of objstore_backend):
 *   - keys it receives are already validated (objstore.h rules) and do not
 *     include the store's prefix; the backend adds it.
 *   - it fills err with a message naming the cause and returns a TDB_E*
 *     code, as objstore.h lists; it never verifies CRC32Cs of whole-object
 *     gets itself: it reports the recorded one and the front compares.
 *   - put keeps guarantee (1) of objstore.h: nothing partial is visible.
 *   - it is safe from many threads at once and holds no lock across I/O.
 */
#ifndef TDB_OBJSTORE_INT_H
#define TDB_OBJSTORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "objstore/objstore.h"

/* Bytes of the recorded checksum: 8 lowercase hex digits and a NUL. */
#define OSTORE_CRC_HEX_BYTES 9
/* Name of the extended attribute holding a file:// object's CRC32C. */
#define OSTORE_XATTR_CRC "user.tierdb.crc32c"
/* Chunk in which files are streamed (reads, writes, checksums): large
 * enough to amortize system calls, small enough for any stack of callers
 * (it is heap-allocated anyway). */
#define OSTORE_IO_CHUNK_BYTES ((size_t)1 << 20)

/* ---- sources: what a put uploads ------------------------------------- */

typedef enum { OSTORE_SRC_MEM, OSTORE_SRC_FILE } ostore_src_kind;

typedef struct ostore_source {
    ostore_src_kind kind;
    const uint8_t *data; /* MEM: the bytes (not owned) */
    int fd;              /* FILE: open for reading (not owned) */
    const char *path;    /* FILE: for messages */
    uint64_t size_bytes;
} ostore_source;

/* Copies up to len bytes at offset into out: returns the count (short
 * only at the end) or -errno. */
ssize_t ostore_source_read(const ostore_source *src, uint64_t offset, void *out, size_t len);
/* CRC32C of the whole source (a pass over a file). 0 or -errno. */
int ostore_source_crc(const ostore_source *src, uint32_t *crc);

/* ---- sinks: where a get writes --------------------------------------- */

typedef enum { OSTORE_SINK_MEM, OSTORE_SINK_FILE } ostore_sink_kind;

typedef struct ostore_sink {
    ostore_sink_kind kind;
    uint32_t crc;        /* CRC32C of everything written since the last reset */
    uint64_t written;    /* bytes written since the last reset */
    char *mem;           /* MEM: malloc'd, cap bytes, NUL-terminated after writes */
    size_t mem_cap;
    int fd;              /* FILE: the temporary file, -1 when none */
    char *tmp_path;      /* FILE: malloc'd */
    const char *path;    /* FILE: the final name */
    int error;           /* first failure of a write (-errno or TDB_ENOMEM), 0 if none */
} ostore_sink;

/* Writes data; on failure returns and remembers the error. Backends stop
 * the transfer on a negative return. */
int ostore_sink_write(ostore_sink *sink, const void *data, size_t len);
/* Forgets everything written (a retried download starts over). */
int ostore_sink_reset(ostore_sink *sink);
/* A hint that size_bytes will follow (preallocates memory). */
void ostore_sink_expect(ostore_sink *sink, uint64_t size_bytes);

/* ---- checksums as text ------------------------------------------------ */

void ostore_crc_format(uint32_t crc, char out[OSTORE_CRC_HEX_BYTES]);
/* Parses exactly 8 hex digits (either case); false otherwise. */
bool ostore_crc_parse(const char *text, size_t len, uint32_t *crc);

/* ---- the backend table ------------------------------------------------ */

typedef struct objstore_backend {
    const char *scheme; /* "file" or "s3" */
    /* location: what follows "scheme://". Sets store->impl. */
    int (*open)(objstore *store, const char *location, const objstore_options *opts,
                tdb_error *err);
    void (*close)(objstore *store); /* frees store->impl */
    int (*check)(objstore *store, tdb_error *err);
    int (*put)(objstore *store, const char *key, const ostore_source *src, tdb_error *err);
    /* Writes the whole object into sink and fills *recorded with its size
     * and recorded checksum (has_crc32c false when it has none). */
    int (*get)(objstore *store, const char *key, ostore_sink *sink, objstore_info *recorded,
               tdb_error *err);
    int (*get_range)(objstore *store, const char *key, uint64_t offset, size_t len, void *out,
                     size_t *got, tdb_error *err);
    int (*head)(objstore *store, const char *key, objstore_info *info, tdb_error *err);
    int (*del)(objstore *store, const char *key, tdb_error *err);
    /* prefix is never NULL; max_keys is within 1..OBJSTORE_MAX_LIST_KEYS. */
    int (*list)(objstore *store, const char *prefix, const char *after, uint32_t max_keys,
                objstore_page *page, tdb_error *err);
} objstore_backend;

extern const objstore_backend ostore_local_backend;
extern const objstore_backend ostore_s3_backend;

/* The counters behind objstore_stats (see objstore.h), updated with
 * relaxed atomic additions from any thread. */
typedef struct ostore_counters {
    _Atomic uint64_t calls[OBJSTORE_OP_COUNT][OBJSTORE_OUTCOME_COUNT];
    _Atomic uint64_t errors[OBJSTORE_CAUSE_COUNT];
    _Atomic uint64_t retries[OBJSTORE_RETRY_COUNT];
    _Atomic uint64_t http_requests;
    _Atomic uint64_t uploaded_bytes;
    _Atomic uint64_t downloaded_bytes;
    _Atomic uint64_t latency_buckets[OBJSTORE_OP_COUNT][OBJSTORE_LATENCY_BUCKETS + 1];
    _Atomic uint64_t latency_us_sum[OBJSTORE_OP_COUNT];
} ostore_counters;

/* Adds one to a counter (relaxed: counters order nothing). */
#define OSTORE_COUNT(counter, n) atomic_fetch_add_explicit(&(counter), (n), memory_order_relaxed)

struct objstore {
    const objstore_backend *backend;
    void *impl; /* the backend's state, owned by it */
    char *url;  /* as given to objstore_open */
    bool fsync; /* objstore_options.fsync */
    ostore_counters counters; /* the front counts calls; s3.c retries and HTTP requests */
};

/* Appends one entry (key copied) to a page being built. 0 or TDB_ENOMEM. */
int ostore_page_add(objstore_page *page, size_t *cap, const char *key, size_t key_len,
                    uint64_t size_bytes, tdb_error *err);

#endif
