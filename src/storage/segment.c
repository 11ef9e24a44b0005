/*
 * segment.c: writer and reader of immutable segment files (segment.h).
 * Layer: storage. Written by flush and compaction, read in place through
 * mmap by every query. The same format is described for users in
 * docs/formats/segment.md; keep the two in step.
 *
 * A segment holds the rows of one flush or compaction, sorted by id, in
 * sections that a reader uses without copying or decoding: ids and
 * attributes as offset tables into byte blobs, vectors as one row-major
 * float32 array aligned for SIMD loads.
 *
 * File layout (all integers little-endian):
 *
 *   [header, 64 bytes][pad][section][pad][section]...[pad][footer][trailer]
 *
 * Header (offset 0):
 *   offset size meaning
 *   0      8    magic "TDB_SEG\n"
 *   8      4    format version (SEG_FORMAT_VERSION)
 *   12     4    dimension (0: no vectors)
 *   16     4    metric (tdb_metric: 0 cosine, 1 l2, 2 dot)
 *   20     4    flags (written 0; readers of version 1 ignore them)
 *   24     8    row count
 *   32     28   reserved (written 0)
 *   60     4    CRC32C of header bytes 0..59
 *
 * Sections: each starts at a multiple of 64 (zero padding before it, not
 * covered by any CRC); they follow one another in the order of the table.
 *   kind 1 IDS      u64 offsets[rows + 1], then the id bytes; id i is
 *                   bytes[offsets[i] .. offsets[i+1]).
 *   kind 2 SEQNOS   u64 seqno[rows].
 *   kind 3 VECTORS  float32[rows * dimension], row-major (only if dim > 0).
 *   kind 4 NORMS    float32[rows], the Euclidean norm of each vector
 *                   (only if dim > 0).
 *   kind 5 ATTRS    u64 offsets[rows + 1], then the JSON bytes (a row
 *                   without attributes has an empty range).
 *   kind 6 ATTRCOLS typed attribute columns (attrcol.c has the layout),
 *                   flagged optional; present when some attribute fits a
 *                   column. Files without it (written before it existed)
 *                   are read as before, their filters evaluated on JSON.
 *   kind >= 1000    extras of higher layers (seg_extra), always optional.
 *
 * Footer (at footer_offset, a multiple of 64):
 *   offset    size   meaning
 *   0         4      section count N
 *   4         4      reserved (written 0)
 *   8 + 32*i  32     section entry i:
 *                      +0  4  kind
 *                      +4  4  flags (bit 0: optional, a reader that does
 *                                not know the kind may skip it)
 *                      +8  8  offset of the section from the file start
 *                      +16 8  length in bytes (padding excluded)
 *                      +24 4  CRC32C of the section's bytes
 *                      +28 4  reserved (written 0)
 *   8 + 32*N  4      CRC32C of footer bytes 0 .. 8+32*N-1
 *
 * Trailer (the last 16 bytes of the file, right after the footer CRC):
 *   0  8  footer offset
 *   8  8  end magic "TDB_END\n"
 *
 * Rules a reader checks (seg_open; any failure is TDB_ECORRUPT naming the
 * file, the offset and, for a section, its name):
 *   (1) both magics, a known version, header CRC, footer CRC;
 *   (2) footer_offset + 12 + 32*N + 16 == file size exactly;
 *   (3) every section is 64-aligned, inside [64, footer_offset), after the
 *       previous one, of a distinct kind, and its CRC32C matches;
 *   (4) a kind this build does not know is skipped only when optional;
 *   (5) IDS, SEQNOS, ATTRS are present; VECTORS and NORMS are present iff
 *       the dimension is > 0, and the dimension equals the caller's;
 *   (6) every length matches the row count; each offset table starts at
 *       0, never decreases, and ends exactly at the end of its blob;
 *   (7) ids are strictly increasing in seg_id_cmp order.
 * After these checks every accessor is O(1) (find and bounds O(log rows))
 * and cannot read outside the mapping.
 *
 * Writing: seg_write streams the file to path.tmp through a write buffer,
 * computing each section's CRC as its bytes pass, then fsyncs, renames
 * over path and fsyncs the directory. The input is validated before the
 * temporary file is created; any later failure unlinks it.
 *
 * Concurrency: a segment is immutable after seg_open (every field of the
 * struct below is set once there); any number of threads may read it.
 * Ownership: seg_open returns a segment the caller frees with seg_close,
 * which unmaps the file; pointers returned by accessors live until then.
 */
#include "storage/segment.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/attrcol.h"
#include "storage/storage.h"
#include "util/buf.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/fileio.h"
#include "vec/vec.h"

/* Vectors, norms and offset tables are used in place: the file's byte
 * order must be the host's. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "segment files are used in place through mmap and require a little-endian host"
#endif

/*
 * Format version history:
 *   1  header, footer with section table, sections IDS, SEQNOS, VECTORS,
 *      NORMS, ATTRS, plus optional extras (kind >= SEG_KIND_EXTRA_BASE).
 * A reader refuses versions newer than SEG_FORMAT_VERSION; bump it on any
 * change a version-1 reader would misread.
 */
#define SEG_FORMAT_VERSION 1u

#define SEG_MAGIC "TDB_SEG\n"
#define SEG_END_MAGIC "TDB_END\n"
#define SEG_MAGIC_BYTES 8

#define SEG_HEADER_BYTES 64
#define SEG_HEADER_CRC_AT 60
#define SEG_ALIGN 64 /* section alignment: one cache line, an AVX-512 load */

#define SEG_FOOTER_FIXED_BYTES 8  /* count + reserved */
#define SEG_ENTRY_BYTES 32
#define SEG_FOOTER_CRC_BYTES 4
#define SEG_TRAILER_BYTES (8 + SEG_MAGIC_BYTES)
_Static_assert(SEG_TRAILER_BYTES == 16, "trailer is footer offset u64 + end magic");
_Static_assert(SEG_HEADER_CRC_AT + 4 == SEG_HEADER_BYTES, "header CRC ends the header");

#define SEG_FLAG_OPTIONAL 1u

enum {
    SEG_KIND_IDS = 1,
    SEG_KIND_SEQNOS = 2,
    SEG_KIND_VECTORS = 3,
    SEG_KIND_NORMS = 4,
    SEG_KIND_ATTRS = 5,
    SEG_KIND_ATTRCOLS = 6, /* optional: a reader that does not know it skips it */
};

/* Five known sections plus extras; a file listing more than this many is
 * refused so that a corrupt count cannot make us allocate without bound
 * (the count is also bounded by the file size). */
#define SEG_MAX_SECTIONS 4096u

/* Write buffer: large enough that writes are few, small enough not to
 * matter beside a memtable. */
#define SEG_WRITE_BUF_BYTES (1u << 20)

/* One section as found at open. */
typedef struct seg_section {
    uint32_t kind;
    uint32_t flags;
    const uint8_t *data; /* inside the mapping */
    uint64_t len;
} seg_section;

struct segment {
    const uint8_t *base;      /* the mapping (immutable after open) */
    size_t file_len;
    uint64_t rows;
    uint32_t dimension;
    tdb_metric metric;
    /* IDS: offsets[rows + 1] then bytes; ids_end bounds the blob. */
    const uint8_t *id_offsets;
    const char *id_bytes;
    const char *id_end;
    const uint8_t *seqnos;    /* u64[rows] */
    const float *vectors;     /* NULL when dimension is 0 */
    const float *norms;       /* NULL when dimension is 0 */
    const uint8_t *attr_offsets;
    const char *attr_bytes;
    const char *attr_end;
    seg_section *sections;    /* every section of the table, file order */
    uint32_t n_sections;
    attrcol *cols;            /* typed attribute columns, or NULL */
    uint64_t serial;          /* seg_serial */
    bool registered;          /* listed for seg_locate */
};

static const char *kind_name(uint32_t kind, char *tmp, size_t tmp_len) {
    switch (kind) {
    case SEG_KIND_IDS: return "ids";
    case SEG_KIND_SEQNOS: return "seqnos";
    case SEG_KIND_VECTORS: return "vectors";
    case SEG_KIND_NORMS: return "norms";
    case SEG_KIND_ATTRS: return "attrs";
    case SEG_KIND_ATTRCOLS: return "attrcols";
    default:
        if (kind >= SEG_KIND_EXTRA_BASE) snprintf(tmp, tmp_len, "extra %u", kind);
        else snprintf(tmp, tmp_len, "unknown kind %u", kind);
        return tmp;
    }
}

static uint64_t align_up(uint64_t x) { return (x + SEG_ALIGN - 1) & ~(uint64_t)(SEG_ALIGN - 1); }

/* ---- Writing ---------------------------------------------------------- */

/* A buffered writer. After the first failure rc is set and every later
 * call does nothing, so the writing code checks once per phase. */
typedef struct seg_writer {
    int fd;
    uint8_t *buf;
    size_t used;
    uint64_t pos;          /* file offset of the next byte */
    uint32_t crc;          /* CRC of the current section so far */
    int rc;                /* 0 or -errno of the first failure */
} seg_writer;

typedef struct seg_entry {
    uint32_t kind;
    uint32_t flags;
    uint64_t offset;
    uint64_t len;
    uint32_t crc;
} seg_entry;

static void w_flush(seg_writer *w) {
    if (w->rc == 0 && w->used > 0) {
        int rc = fio_write_all(w->fd, w->buf, w->used);
        if (rc < 0) w->rc = rc;
    }
    w->used = 0;
}

/* Appends raw bytes, extending the running section CRC. */
static void w_put(seg_writer *w, const void *data, size_t len) {
    const uint8_t *p = data;
    if (w->rc != 0 || len == 0) return;
    w->crc = crc32c_extend(w->crc, p, len);
    w->pos += len;
    while (len > 0) {
        size_t room = SEG_WRITE_BUF_BYTES - w->used;
        size_t take = len < room ? len : room;
        memcpy(w->buf + w->used, p, take);
        w->used += take;
        p += take;
        len -= take;
        if (w->used == SEG_WRITE_BUF_BYTES) w_flush(w);
    }
}

static void w_put_u64(seg_writer *w, uint64_t v) {
    uint8_t b[8];
    store_u64(b, v);
    w_put(w, b, sizeof b);
}

static void w_put_u32(seg_writer *w, uint32_t v) {
    uint8_t b[4];
    store_u32(b, v);
    w_put(w, b, sizeof b);
}

/* Zero padding up to the next multiple of SEG_ALIGN. */
static void w_pad(seg_writer *w) {
    static const uint8_t zeros[SEG_ALIGN];
    w_put(w, zeros, (size_t)(align_up(w->pos) - w->pos));
}

static void w_section_begin(seg_writer *w, seg_entry *e, uint32_t kind, uint32_t flags) {
    w_pad(w);
    e->kind = kind;
    e->flags = flags;
    e->offset = w->pos;
    w->crc = 0;
}

static void w_section_end(seg_writer *w, seg_entry *e) {
    e->len = w->pos - e->offset;
    e->crc = w->crc;
}

/* An offset table and blob (IDS or ATTRS) from rows' (ptr, len) fields. */
static void w_blob_section(seg_writer *w, const seg_row *rows, size_t n, bool ids) {
    uint64_t off = 0;
    w_put_u64(w, 0);
    for (size_t i = 0; i < n; i++) {
        off += ids ? rows[i].id_len : rows[i].attrs_len;
        w_put_u64(w, off);
    }
    for (size_t i = 0; i < n; i++) {
        if (ids) w_put(w, rows[i].id, rows[i].id_len);
        else w_put(w, rows[i].attrs, rows[i].attrs_len);
    }
}

static int check_input(const char *path, uint32_t dimension, tdb_metric metric,
                       const seg_row *rows, size_t n, const seg_extra *extras, size_t n_extras,
                       tdb_error *err) {
    if (path == NULL || (n > 0 && rows == NULL) || (n_extras > 0 && extras == NULL))
        return tdb_err(err, TDB_EINVAL, NULL, "seg_write: missing path, rows or extras");
    if (dimension > ST_MAX_DIMENSION)
        return tdb_err(err, TDB_EINVAL, NULL, "seg_write %s: dimension %u exceeds the maximum %u",
                       path, dimension, ST_MAX_DIMENSION);
    if ((unsigned)metric > TDB_METRIC_DOT)
        return tdb_err(err, TDB_EINVAL, NULL, "seg_write %s: unknown metric %d", path,
                       (int)metric);
    if (n_extras > SEG_MAX_SECTIONS - SEG_KIND_ATTRCOLS)
        return tdb_err(err, TDB_EINVAL, NULL, "seg_write %s: %zu extra sections, at most %u",
                       path, n_extras, SEG_MAX_SECTIONS - SEG_KIND_ATTRCOLS);
    for (size_t i = 0; i < n; i++) {
        const seg_row *r = &rows[i];
        if ((r->id == NULL && r->id_len > 0) || (r->attrs == NULL && r->attrs_len > 0) ||
            (dimension > 0 && r->vector == NULL))
            return tdb_err(err, TDB_EINVAL, NULL, "seg_write %s: row %zu lacks its id, vector "
                           "or attributes", path, i);
        if (i > 0 && seg_id_cmp(rows[i - 1].id, rows[i - 1].id_len, r->id, r->id_len) >= 0)
            return tdb_err(err, TDB_EINVAL, NULL, "seg_write %s: row %zu: ids are not strictly "
                           "increasing", path, i);
    }
    for (size_t i = 0; i < n_extras; i++) {
        if (extras[i].kind < SEG_KIND_EXTRA_BASE || (extras[i].data == NULL && extras[i].len > 0))
            return tdb_err(err, TDB_EINVAL, NULL, "seg_write %s: extra %zu: kind %u is below %u "
                           "or data is missing", path, i, extras[i].kind, SEG_KIND_EXTRA_BASE);
        for (size_t j = 0; j < i; j++)
            if (extras[j].kind == extras[i].kind)
                return tdb_err(err, TDB_EINVAL, NULL, "seg_write %s: extra kind %u given twice",
                               path, extras[i].kind);
    }
    return 0;
}

/* The directory part of path ("." when it has none); malloc'd. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int seg_write(const char *path, uint32_t dimension, tdb_metric metric, const seg_row *rows,
              size_t n, const seg_extra *extras, size_t n_extras, tdb_error *err) {
    int rc = check_input(path, dimension, metric, rows, n, extras, n_extras, err);
    if (rc < 0) return rc;

    seg_writer w = {.fd = -1};
    seg_entry *entries = NULL, *e = NULL;
    uint32_t n_entries = 0;
    uint8_t header[SEG_HEADER_BYTES] = {0};
    uint64_t footer_offset = 0;
    char *tmp = NULL, *dir = NULL;
    bool tmp_exists = false, renamed = false;
    const char *step = "allocating";
    void *cols = NULL;
    size_t cols_len = 0;

    /* Typed columns of the attributes, from the rows' JSON. */
    rc = attrcol_build(rows, n, &cols, &cols_len, err);
    if (rc < 0) return rc;

    size_t path_len = strlen(path);
    tmp = malloc(path_len + sizeof ".tmp");
    dir = dir_of(path);
    w.buf = malloc(SEG_WRITE_BUF_BYTES);
    entries = calloc(SEG_KIND_ATTRCOLS + n_extras, sizeof *entries);
    if (tmp == NULL || dir == NULL || w.buf == NULL || entries == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "seg_write %s: out of memory", path);
        goto done;
    }
    memcpy(tmp, path, path_len);
    memcpy(tmp + path_len, ".tmp", sizeof ".tmp");

    step = "creating";
    w.fd = fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        w.rc = w.fd;
        goto io_failed;
    }
    tmp_exists = true;

    /* Header. */
    step = "writing";
    memcpy(header, SEG_MAGIC, SEG_MAGIC_BYTES);
    store_u32(header + 8, SEG_FORMAT_VERSION);
    store_u32(header + 12, dimension);
    store_u32(header + 16, (uint32_t)metric);
    store_u64(header + 24, (uint64_t)n);
    store_u32(header + SEG_HEADER_CRC_AT, crc32c(header, SEG_HEADER_CRC_AT));
    w_put(&w, header, sizeof header);

    e = &entries[n_entries++];
    w_section_begin(&w, e, SEG_KIND_IDS, 0);
    w_blob_section(&w, rows, n, true);
    w_section_end(&w, e);

    e = &entries[n_entries++];
    w_section_begin(&w, e, SEG_KIND_SEQNOS, 0);
    for (size_t i = 0; i < n; i++) w_put_u64(&w, rows[i].seqno);
    w_section_end(&w, e);

    if (dimension > 0) {
        e = &entries[n_entries++];
        w_section_begin(&w, e, SEG_KIND_VECTORS, 0);
        for (size_t i = 0; i < n; i++) w_put(&w, rows[i].vector, (size_t)dimension * sizeof(float));
        w_section_end(&w, e);

        e = &entries[n_entries++];
        w_section_begin(&w, e, SEG_KIND_NORMS, 0);
        for (size_t i = 0; i < n; i++) {
            float norm = vec_norm(rows[i].vector, dimension);
            w_put(&w, &norm, sizeof norm);
        }
        w_section_end(&w, e);
    }

    e = &entries[n_entries++];
    w_section_begin(&w, e, SEG_KIND_ATTRS, 0);
    w_blob_section(&w, rows, n, false);
    w_section_end(&w, e);

    if (cols_len > 0) {
        e = &entries[n_entries++];
        w_section_begin(&w, e, SEG_KIND_ATTRCOLS, SEG_FLAG_OPTIONAL);
        w_put(&w, cols, cols_len);
        w_section_end(&w, e);
    }

    for (size_t i = 0; i < n_extras; i++) {
        e = &entries[n_entries++];
        w_section_begin(&w, e, extras[i].kind, SEG_FLAG_OPTIONAL);
        w_put(&w, extras[i].data, extras[i].len);
        w_section_end(&w, e);
    }

    /* Footer: its CRC is computed by the same running CRC. */
    w_pad(&w);
    footer_offset = w.pos;
    w.crc = 0;
    w_put_u32(&w, n_entries);
    w_put_u32(&w, 0);
    for (uint32_t i = 0; i < n_entries; i++) {
        w_put_u32(&w, entries[i].kind);
        w_put_u32(&w, entries[i].flags);
        w_put_u64(&w, entries[i].offset);
        w_put_u64(&w, entries[i].len);
        w_put_u32(&w, entries[i].crc);
        w_put_u32(&w, 0);
    }
    w_put_u32(&w, w.crc);
    w_put_u64(&w, footer_offset);
    w_put(&w, SEG_END_MAGIC, SEG_MAGIC_BYTES);
    w_flush(&w);
    if (w.rc < 0) goto io_failed;

    step = "syncing";
    w.rc = fio_fsync(w.fd);
    if (w.rc < 0) goto io_failed;
    step = "closing";
    w.rc = fio_close(w.fd);
    w.fd = -1;
    if (w.rc < 0) goto io_failed;
    step = "renaming";
    w.rc = fio_rename(tmp, path);
    if (w.rc < 0) goto io_failed;
    tmp_exists = false;
    renamed = true;
    step = "syncing the directory of";
    w.rc = fio_fsync_dir(dir);
    if (w.rc < 0) goto io_failed;
    rc = 0;
    goto done;

io_failed:
    rc = tdb_err(err, TDB_EIO, NULL, "seg_write: %s %s failed: %s", step,
                 renamed ? path : tmp, strerror(-w.rc));
done:
    if (w.fd >= 0) fio_close(w.fd);
    /* Clean-up uses uncounted unlink(2), as fileio.c's own clean-up does,
     * so that a persistent injected fault cannot leave a file behind. */
    if (rc < 0 && tmp_exists) unlink(tmp);
    /* The rename may or may not be durable; the caller was told the write
     * failed, so the file must not appear as a finished segment. */
    if (rc < 0 && renamed) unlink(path);
    free(w.buf);
    free(entries);
    free(tmp);
    free(dir);
    free(cols);
    return rc;
}

/* ---- Reading ---------------------------------------------------------- */

static const seg_section *find_section(const segment *s, uint32_t kind) {
    for (uint32_t i = 0; i < s->n_sections; i++)
        if (s->sections[i].kind == kind) return &s->sections[i];
    return NULL;
}

/* Checks an offset table of rows+1 u64 followed by its blob (rule 6) and,
 * for ids, their order (rule 7). */
static int check_blob_section(const char *path, const segment *s, const seg_section *sec,
                              bool ids, const uint8_t **offsets, const char **bytes,
                              const char **end, tdb_error *err) {
    const char *name = ids ? "ids" : "attrs";
    uint64_t sec_off = (uint64_t)(sec->data - s->base);
    /* rows + 1 entries must fit: compare by division to avoid overflow. */
    if (sec->len / 8 < 1 || sec->len / 8 - 1 < s->rows)
        return TDB_CORRUPT(err, path, sec_off, "section %s: %llu bytes cannot hold %llu+1 "
                           "offsets", name, (unsigned long long)sec->len,
                           (unsigned long long)s->rows);
    uint64_t table_len = (s->rows + 1) * 8;
    uint64_t blob_len = sec->len - table_len;
    const uint8_t *tab = sec->data;
    const char *blob = (const char *)sec->data + table_len;
    if (load_u64(tab) != 0)
        return TDB_CORRUPT(err, path, sec_off, "section %s: offset table does not start at 0",
                           name);
    uint64_t prev = 0;
    const char *prev_id = NULL;
    uint32_t prev_len = 0;
    /* Invariant: entries 0..i are monotonic and <= blob_len; prev = entry i. */
    for (uint64_t i = 0; i < s->rows; i++) {
        uint64_t next = load_u64(tab + (i + 1) * 8);
        if (next < prev || next > blob_len || next - prev > UINT32_MAX)
            return TDB_CORRUPT(err, path, sec_off + (i + 1) * 8, "section %s: offset %llu of "
                               "row %llu is out of order or outside the blob", name,
                               (unsigned long long)next, (unsigned long long)i);
        if (ids) {
            const char *id = blob + prev;
            uint32_t len = (uint32_t)(next - prev);
            if (i > 0 && seg_id_cmp(prev_id, prev_len, id, len) >= 0)
                return TDB_CORRUPT(err, path, sec_off + table_len + prev, "section ids: id of "
                                   "row %llu is not greater than the previous one",
                                   (unsigned long long)i);
            prev_id = id;
            prev_len = len;
        }
        prev = next;
    }
    if (prev != blob_len)
        return TDB_CORRUPT(err, path, sec_off + s->rows * 8, "section %s: offset table ends "
                           "at %llu but the blob has %llu bytes", name, (unsigned long long)prev,
                           (unsigned long long)blob_len);
    *offsets = tab;
    *bytes = blob;
    *end = blob + blob_len;
    return 0;
}

/* Checks a fixed-width section: exactly rows * width bytes. */
static int check_fixed_section(const char *path, const segment *s, const seg_section *sec,
                               const char *name, uint64_t width, tdb_error *err) {
    uint64_t want;
    if (__builtin_mul_overflow(s->rows, width, &want) || sec->len != want)
        return TDB_CORRUPT(err, path, (uint64_t)(sec->data - s->base), "section %s: %llu bytes, "
                           "expected %llu rows x %llu", name, (unsigned long long)sec->len,
                           (unsigned long long)s->rows, (unsigned long long)width);
    return 0;
}

/* Validates the mapped file per rules (1)-(7) and fills s. */
static int seg_validate(const char *path, uint32_t dimension, segment *s, tdb_error *err) {
    const uint8_t *base = s->base;
    const uint64_t size = s->file_len;
    const uint8_t *file_end = base + size;
    char tmp[32];

    if (size < SEG_HEADER_BYTES + SEG_FOOTER_FIXED_BYTES + SEG_FOOTER_CRC_BYTES +
                   SEG_TRAILER_BYTES)
        return TDB_CORRUPT(err, path, 0, "file of %llu bytes is too short to be a segment",
                           (unsigned long long)size);
    if (memcmp(base, SEG_MAGIC, SEG_MAGIC_BYTES) != 0)
        return TDB_CORRUPT(err, path, 0, "not a segment file (bad magic)");
    uint32_t version = load_u32(base + 8);
    if (version > SEG_FORMAT_VERSION)
        return TDB_CORRUPT(err, path, 8, "segment format version %u is newer than this build "
                           "supports (%u)", version, SEG_FORMAT_VERSION);
    if (version == 0)
        return TDB_CORRUPT(err, path, 8, "segment format version 0 is not valid");
    if (load_u32(base + SEG_HEADER_CRC_AT) != crc32c(base, SEG_HEADER_CRC_AT))
        return TDB_CORRUPT(err, path, SEG_HEADER_CRC_AT, "header checksum mismatch");
    s->dimension = load_u32(base + 12);
    uint32_t metric = load_u32(base + 16);
    s->rows = load_u64(base + 24);
    if (s->dimension != dimension)
        return TDB_CORRUPT(err, path, 12, "segment has dimension %u but the collection has %u",
                           s->dimension, dimension);
    if (metric > TDB_METRIC_DOT)
        return TDB_CORRUPT(err, path, 16, "unknown metric %u", metric);
    s->metric = (tdb_metric)metric;

    /* Trailer and footer (rules 1, 2). */
    const uint8_t *trailer = file_end - SEG_TRAILER_BYTES;
    if (memcmp(trailer + 8, SEG_END_MAGIC, SEG_MAGIC_BYTES) != 0)
        return TDB_CORRUPT(err, path, size - SEG_MAGIC_BYTES, "end magic missing (truncated "
                           "or incomplete file)");
    uint64_t footer_offset = load_u64(trailer);
    uint64_t footer_room = size - SEG_TRAILER_BYTES; /* footer must end exactly here */
    if (footer_offset < SEG_HEADER_BYTES || footer_offset % SEG_ALIGN != 0 ||
        footer_offset > footer_room - SEG_FOOTER_FIXED_BYTES - SEG_FOOTER_CRC_BYTES)
        return TDB_CORRUPT(err, path, size - SEG_TRAILER_BYTES, "footer offset %llu is outside "
                           "the file", (unsigned long long)footer_offset);
    const uint8_t *footer = base + footer_offset;
    uint32_t n = load_u32(footer);
    uint64_t entries_room = footer_room - footer_offset - SEG_FOOTER_FIXED_BYTES -
                            SEG_FOOTER_CRC_BYTES;
    if (n > SEG_MAX_SECTIONS || (uint64_t)n * SEG_ENTRY_BYTES != entries_room)
        return TDB_CORRUPT(err, path, footer_offset, "footer lists %u sections but has room "
                           "for %llu bytes of entries", n, (unsigned long long)entries_room);
    uint64_t footer_body = SEG_FOOTER_FIXED_BYTES + (uint64_t)n * SEG_ENTRY_BYTES;
    if (load_u32(footer + footer_body) != crc32c(footer, footer_body))
        return TDB_CORRUPT(err, path, footer_offset + footer_body, "footer checksum mismatch");

    s->sections = calloc(n ? n : 1, sizeof *s->sections);
    if (s->sections == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "seg_open %s: out of memory",
                                            path);

    /* Section table (rules 3, 4). */
    uint64_t prev_end = SEG_HEADER_BYTES;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *ent = footer + SEG_FOOTER_FIXED_BYTES + (uint64_t)i * SEG_ENTRY_BYTES;
        uint64_t ent_off = footer_offset + SEG_FOOTER_FIXED_BYTES + (uint64_t)i * SEG_ENTRY_BYTES;
        uint32_t kind = load_u32(ent);
        uint32_t flags = load_u32(ent + 4);
        uint64_t off = load_u64(ent + 8);
        uint64_t len = load_u64(ent + 16);
        uint32_t crc = load_u32(ent + 24);
        const char *name = kind_name(kind, tmp, sizeof tmp);
        if (off % SEG_ALIGN != 0 || off < prev_end || off > footer_offset ||
            len > footer_offset - off)
            return TDB_CORRUPT(err, path, ent_off, "section %s: range [%llu, +%llu) is "
                               "misaligned, overlapping or outside the file", name,
                               (unsigned long long)off, (unsigned long long)len);
        for (uint32_t j = 0; j < i; j++)
            if (s->sections[j].kind == kind)
                return TDB_CORRUPT(err, path, ent_off, "section %s is listed twice", name);
        bool known = kind >= SEG_KIND_IDS && kind <= SEG_KIND_ATTRCOLS;
        if (!known && !(flags & SEG_FLAG_OPTIONAL))
            return TDB_CORRUPT(err, path, ent_off, "section %s is required but not known to "
                               "this build", name);
        if (crc32c(base + off, len) != crc)
            return TDB_CORRUPT(err, path, off, "section %s: checksum mismatch", name);
        s->sections[i] = (seg_section){kind, flags, base + off, len};
        s->n_sections = i + 1;
        prev_end = off + len;
    }

    /* Known sections (rules 5-7). */
    const seg_section *ids = find_section(s, SEG_KIND_IDS);
    const seg_section *seqnos = find_section(s, SEG_KIND_SEQNOS);
    const seg_section *vectors = find_section(s, SEG_KIND_VECTORS);
    const seg_section *norms = find_section(s, SEG_KIND_NORMS);
    const seg_section *attrs = find_section(s, SEG_KIND_ATTRS);
    if (ids == NULL || seqnos == NULL || attrs == NULL)
        return TDB_CORRUPT(err, path, footer_offset, "section %s is missing",
                           ids == NULL ? "ids" : seqnos == NULL ? "seqnos" : "attrs");
    if ((vectors != NULL) != (s->dimension > 0) || (norms != NULL) != (s->dimension > 0))
        return TDB_CORRUPT(err, path, footer_offset, "sections vectors/norms %s with "
                           "dimension %u", s->dimension > 0 ? "missing" : "present",
                           s->dimension);
    int rc = check_fixed_section(path, s, seqnos, "seqnos", 8, err);
    if (rc < 0) return rc;
    if (s->dimension > 0) {
        rc = check_fixed_section(path, s, vectors, "vectors", (uint64_t)s->dimension * 4, err);
        if (rc < 0) return rc;
        rc = check_fixed_section(path, s, norms, "norms", 4, err);
        if (rc < 0) return rc;
        s->vectors = (const float *)(const void *)vectors->data;
        s->norms = (const float *)(const void *)norms->data;
    }
    s->seqnos = seqnos->data;
    rc = check_blob_section(path, s, ids, true, &s->id_offsets, &s->id_bytes, &s->id_end, err);
    if (rc < 0) return rc;
    rc = check_blob_section(path, s, attrs, false, &s->attr_offsets, &s->attr_bytes,
                            &s->attr_end, err);
    if (rc < 0) return rc;
    const seg_section *cols = find_section(s, SEG_KIND_ATTRCOLS);
    if (cols != NULL) {
        char why[160];
        rc = attrcol_open(cols->data, cols->len, s->rows, &s->cols, why, sizeof why);
        if (rc == TDB_ENOMEM)
            return tdb_err(err, TDB_ENOMEM, NULL, "seg_open %s: out of memory", path);
        if (rc < 0)
            return TDB_CORRUPT(err, path, (uint64_t)(cols->data - base), "section attrcols: %s",
                               why);
    }
    return 0;
}

/* ---- Locating a segment from an id pointer ------------------------------ */

/* The open segments with columns, sorted by the address of their id bytes,
 * so that a filter callback handed a row's id pointer can find the row's
 * segment (seg_locate). Mappings never overlap, so neither do the ranges.
 * registry_lock guards registry, registry_n and registry_cap. */
typedef struct registry_entry {
    uintptr_t lo, hi; /* [id_bytes, id_end) */
    const segment *s;
} registry_entry;

static pthread_rwlock_t registry_lock = PTHREAD_RWLOCK_INITIALIZER;
static registry_entry *registry;
static size_t registry_n, registry_cap;
static _Atomic uint64_t next_serial = 1;
/* Bumped on every change of the registry (after it, under the lock): a
 * caller that saw the same generation before and after knows no segment
 * was listed or unlisted in between. */
static _Atomic uint64_t registry_generation = 1;

/* Without room the segment stays unlisted: its filters use the JSON. */
static void registry_add(segment *s) {
    if (s->cols == NULL || s->rows == 0) return;
    registry_entry ent = {(uintptr_t)s->id_bytes, (uintptr_t)s->id_end, s};
    pthread_rwlock_wrlock(&registry_lock);
    if (registry_n == registry_cap) {
        size_t cap = registry_cap ? registry_cap * 2 : 64;
        registry_entry *g = realloc(registry, cap * sizeof *g);
        if (g == NULL) {
            pthread_rwlock_unlock(&registry_lock);
            return;
        }
        registry = g;
        registry_cap = cap;
    }
    size_t at = registry_n;
    while (at > 0 && registry[at - 1].lo > ent.lo) {
        registry[at] = registry[at - 1];
        at--;
    }
    registry[at] = ent;
    registry_n++;
    atomic_fetch_add(&registry_generation, 1);
    s->registered = true;
    pthread_rwlock_unlock(&registry_lock);
}

static void registry_remove(segment *s) {
    if (!s->registered) return;
    pthread_rwlock_wrlock(&registry_lock);
    for (size_t i = 0; i < registry_n; i++)
        if (registry[i].s == s) {
            memmove(&registry[i], &registry[i + 1], (registry_n - i - 1) * sizeof *registry);
            registry_n--;
            atomic_fetch_add(&registry_generation, 1);
            break;
        }
    if (registry_n == 0) {
        free(registry);
        registry = NULL;
        registry_cap = 0;
    }
    pthread_rwlock_unlock(&registry_lock);
    s->registered = false;
}

const char *seg_id_blob(const segment *s, size_t *len) {
    *len = (size_t)(s->id_end - s->id_bytes);
    return s->id_bytes;
}

uint64_t seg_registry_generation(void) { return atomic_load(&registry_generation); }

bool seg_row_of_id(const segment *s, const char *id, uint64_t hint, uint64_t *row) {
    if (id < s->id_bytes || id >= s->id_end) return false;
    uint64_t off = (uint64_t)(id - s->id_bytes);
    /* Scans visit rows in order: try the hint first. */
    uint64_t a;
    if (hint < s->rows && load_u64(s->id_offsets + hint * 8) == off) {
        a = hint;
    } else {
        /* The first row whose id starts at or after off. */
        uint64_t b = s->rows;
        a = 0;
        while (a < b) {
            uint64_t mid = a + (b - a) / 2;
            if (load_u64(s->id_offsets + mid * 8) < off) a = mid + 1;
            else b = mid;
        }
        if (a >= s->rows || load_u64(s->id_offsets + a * 8) != off) return false;
    }
    /* An empty id would share its offset with the next row, making the
     * row ambiguous; tierdb never writes one, and such a row is refused. */
    if (load_u64(s->id_offsets + a * 8 + 8) == off) return false;
    *row = a;
    return true;
}

const segment *seg_locate(const char *id, uint64_t *row) {
    uintptr_t p = (uintptr_t)id;
    const segment *found = NULL;
    pthread_rwlock_rdlock(&registry_lock);
    size_t lo = 0, hi = registry_n;
    /* Invariant: entries < lo start at or below p, entries >= hi above it. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (registry[mid].lo <= p) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0 && p < registry[lo - 1].hi) found = registry[lo - 1].s;
    pthread_rwlock_unlock(&registry_lock);
    if (found == NULL || !seg_row_of_id(found, id, UINT64_MAX, row)) return NULL;
    return found;
}

const struct attrcol *seg_attrcols(const segment *s) { return s->cols; }
uint64_t seg_serial(const segment *s) { return s->serial; }

int seg_open(const char *path, uint32_t dimension, segment **out, tdb_error *err) {
    *out = NULL;
    segment *s = calloc(1, sizeof *s);
    if (s == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "seg_open %s: out of memory", path);
    const void *map = NULL;
    size_t len = 0;
    int rc = fio_mmap_file(path, &map, &len);
    if (rc < 0) {
        free(s);
        return tdb_err(err, rc == -ENOENT ? TDB_ENOTFOUND : TDB_EIO, NULL,
                       "seg_open: cannot map %s: %s", path, strerror(-rc));
    }
    s->base = map;
    s->file_len = len;
    rc = seg_validate(path, dimension, s, err);
    if (rc < 0) {
        seg_close(s);
        return rc;
    }
    s->serial = atomic_fetch_add(&next_serial, 1);
    registry_add(s);
    *out = s;
    return 0;
}

void seg_close(segment *s) {
    if (s == NULL) return;
    registry_remove(s);
    attrcol_free(s->cols);
    if (s->base != NULL) fio_munmap(s->base, s->file_len);
    free(s->sections);
    free(s);
}

uint64_t seg_rows(const segment *s) { return s->rows; }
uint64_t seg_file_bytes(const segment *s) { return s->file_len; }

const char *seg_id(const segment *s, uint64_t row, uint32_t *len) {
    assert(row < s->rows);
    uint64_t a = load_u64(s->id_offsets + row * 8), b = load_u64(s->id_offsets + row * 8 + 8);
    assert(a <= b && s->id_bytes + b <= s->id_end);
    *len = (uint32_t)(b - a);
    return s->id_bytes + a;
}

uint64_t seg_seqno(const segment *s, uint64_t row) {
    assert(row < s->rows);
    return load_u64(s->seqnos + row * 8);
}

const float *seg_vector(const segment *s, uint64_t row) {
    assert(row < s->rows);
    return s->vectors ? s->vectors + row * s->dimension : NULL;
}

const float *seg_vectors(const segment *s) { return s->vectors; }
const float *seg_norms(const segment *s) { return s->norms; }

const char *seg_attrs(const segment *s, uint64_t row, uint32_t *len) {
    assert(row < s->rows);
    uint64_t a = load_u64(s->attr_offsets + row * 8), b = load_u64(s->attr_offsets + row * 8 + 8);
    assert(a <= b && s->attr_bytes + b <= s->attr_end);
    *len = (uint32_t)(b - a);
    return s->attr_bytes + a;
}

/* First row whose id compares >= id (strict: > id). */
static uint64_t bound(const segment *s, const char *id, uint32_t len, bool strict) {
    uint64_t lo = 0, hi = s->rows;
    /* Invariant: rows < lo are before the bound, rows >= hi are at or after it. */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint32_t mlen;
        const char *mid_id = seg_id(s, mid, &mlen);
        int c = seg_id_cmp(mid_id, mlen, id, len);
        if (c < 0 || (strict && c == 0)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

uint64_t seg_lower_bound(const segment *s, const char *id, uint32_t len) {
    return bound(s, id, len, false);
}

uint64_t seg_upper_bound(const segment *s, const char *id, uint32_t len) {
    return bound(s, id, len, true);
}

int64_t seg_find(const segment *s, const char *id, uint32_t len) {
    uint64_t row = bound(s, id, len, false);
    if (row == s->rows) return -1;
    uint32_t rlen;
    const char *rid = seg_id(s, row, &rlen);
    return seg_id_cmp(rid, rlen, id, len) == 0 ? (int64_t)row : -1;
}

int seg_extra_get(const segment *s, uint32_t kind, const void **data, size_t *len) {
    const seg_section *sec = kind >= SEG_KIND_EXTRA_BASE ? find_section(s, kind) : NULL;
    if (sec == NULL) return TDB_ENOTFOUND;
    *data = sec->data;
    *len = (size_t)sec->len;
    return 0;
}
