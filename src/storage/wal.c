/*
 * wal.c: per-collection write-ahead log: framed records in numbered files,
 * group commit, rotation, deletion before a checkpoint, and replay.
 * Layer: storage. Called by storage/collection.c; uses util/fileio (every
 * file-system call, so tests can inject faults), util/crc32c, util/log.
 * Never calls db/ or above. Constants: wal_format.h. Same text:
 * docs/formats/wal.md.
 *
 * ---------------------------------------------------------------------
 * FORMAT (all integers little-endian)
 *
 * DIR holds files named <first seqno, 20 decimal digits>.wal, e.g.
 * 00000000000000000001.wal. Name order is seqno order. Other names are
 * ignored (a file moved aside after corruption ends in .corrupt).
 *
 * File header, 20 bytes:
 *   offset size  field
 *        0    4  magic 0x4C415754 (the bytes "TWAL")
 *        4    4  format version (1)
 *        8    8  first seqno: the seqno of the file's first record, equal
 *                to the number in the file name
 *       16    4  CRC32C of bytes 0..15
 *
 * Then records, back to back, to the end of the file. Record:
 *   offset size  field
 *        0    4  length: payload bytes (0 .. WAL_MAX_RECORD_BYTES)
 *        4    4  CRC32C of  payload || bytes 0..3 || bytes 8..16
 *        8    8  seqno
 *       16    1  type (chosen by the caller; opaque to the WAL)
 *       17  len  payload
 *
 * The CRC covers the payload, the length, the seqno and the type: all of
 * the record except the CRC itself (so it is not masked, see crc32c.h).
 * The payload comes first in the CRC so a writer can checksum the large
 * part before it takes the log mutex and learns its seqno; covering the
 * length means a damaged length is caught by the CRC of the record it
 * frames, not only by the misframed records after it.
 *
 * A record is valid when: its 17-byte header lies inside the file; length
 * <= WAL_MAX_RECORD_BYTES; the payload lies inside the file; the CRC
 * matches; and its seqno is the file's first seqno (first record) or the
 * previous record's seqno + 1. Across files the first seqno of a file is
 * greater than the last seqno of the file before (gaps are allowed: a new
 * file starts wherever wal_open is told to start).
 *
 * Worked example. Three appends into a new file starting at seqno 7:
 * A = 5-byte payload "hello", B = empty payload, C = 1000-byte payload.
 *
 *   0      20         42        59                              1076
 *   | hdr  | A 17+5   | B 17+0  | C 17+1000                        |
 *   |  20  |   22     |   17    |   1017                           |
 *          seqno 7    seqno 8   seqno 9
 *
 * What replay finds after a crash at each point of appending C:
 *   - before C's first byte reached the file: size 59, A and B replayed.
 *   - part of C's header written (size 60..75): fewer than 17 bytes after
 *     B; a torn tail of 1..16 bytes, dropped. A and B replayed.
 *   - header whole, payload cut (size 76..1075): length 1000 runs past the
 *     end of the file; a torn tail, dropped.
 *   - size 1076 but some page of C never reached the disk (garbage or
 *     zeros): the CRC fails on a record that ends exactly at the end of the
 *     last file; a torn tail, dropped.
 *   - C whole: A, B, C replayed. Under fsync=always, C was acknowledged
 *     only after the fsync covering byte 1075 returned.
 * If instead a byte of B flips after C was written, B's CRC fails but B
 * does not end at the end of the file: that is corruption, not a torn
 * tail. Replay delivers A, stops, and reports file ...07.wal, offset 42,
 * 1034 bytes lost (to the end of the log, later files included).
 * A tail of nothing but zero bytes in the last file counts as torn too:
 * it is what a file system shows for an extension whose data never
 * reached the disk. Limit: a damaged length byte that makes a record of
 * the last file run past its end cannot be told from a cut-off record;
 * it is dropped as torn (torn_bytes shows how much), as LevelDB does.
 * A length over WAL_MAX_RECORD_BYTES is corruption wherever it is.
 *
 * Recovery (wal_open after wal_replay): a torn tail is cut off with
 * ftruncate + fsync; the file holding a bad record and every later file
 * are renamed <name>.corrupt (evidence is never deleted); a last file left
 * with no records is removed; appends go to a new file.
 *
 * fsync policies:
 *   always:   wal_append returns only after an fsync covering its record
 *             (group commit: one fsync covers every writer before it).
 *   interval: a background thread fsyncs every fsync_interval_ms; a power
 *             loss loses at most the last interval.
 *   none:     appends never fsync; wal_sync does. Rotation and file
 *             creation always fsync (a few per file_max_bytes) so that a
 *             closed file is whole before a later one exists.
 * ---------------------------------------------------------------------
 *
 * Invariants:
 *   (1) seqnos rise by one within a file and strictly across files.
 *   (2) under fsync=always no append returns 0 before the fsync covering
 *       its last byte returned 0; files other than the current one are
 *       fully synced (rotation syncs before switching).
 *   (3) once an fsync fails, `failed` stays set and no append succeeds:
 *       the kernel may have dropped the dirty pages, and fsyncing again
 *       would report success for data that is gone.
 *   (4) a file is deleted only when every record in it is <= the
 *       checkpoint, and never the current file.
 *   (5) the current file's size on disk equals files[last].size_bytes:
 *       a failed write is cut back off before the mutex is released (or
 *       the WAL fails), so records never follow garbage.
 *
 * Concurrency: `mu` guards the current fd, the file list, next_seqno,
 * written_pos, sync_active and the counters; writes happen under it so
 * file order is seqno order. Group commit: a writer that needs an fsync
 * and finds none running becomes the leader (sets sync_active), notes
 * written_pos and the fd, and fsyncs *without* mu, so others keep
 * appending meanwhile; writers that find a leader active wait on
 * sync_done. The leader broadcasts when done, so every writer it covered
 * wakes at once. (A mutex handed from writer to writer wakes them one by
 * one, and a leader returning fast re-takes it ahead of them: on a disk
 * with a 100 us fsync that degrades to one fsync per record.) Rotation
 * waits until no leader is active, so the fd a leader syncs stays open.
 * synced_pos and failed are atomics, read without locks for the fast
 * path. delete_mu serializes wal_delete_through callers (no I/O is done
 * under mu there).
 * Ownership: wal_open returns a wal freed by wal_close; wal_append copies
 * the payload; replay payloads live only during the callback.
 */
#include "storage/wal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/wal_format.h"
#include "util/buf.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/log.h"

/* Defaults for options left at 0 (tierdb.h documents the same values). */
#define WAL_DEFAULT_FILE_MAX_BYTES (64ull << 20)
#define WAL_DEFAULT_FSYNC_INTERVAL_MS 100u
/* Records up to this size are framed in a stack buffer: the common small
 * batch costs no allocation. */
#define WAL_STACK_RECORD_BYTES 1024

static const char WAL_READONLY_MSG[] =
    "the WAL fsync failed; the collection is read-only until restarted";

typedef struct wal_file {
    uint64_t first_seqno; /* from the name */
    uint64_t size_bytes;  /* on disk; for the current file, the append offset */
} wal_file;

struct wal {
    char *dir;
    wal_options opts;            /* immutable after open (defaults filled) */

    pthread_mutex_t mu;          /* guards everything down to `sync_done` */
    int fd;                      /* current file; replaced only when !sync_active */
    wal_file *files;             /* live files, oldest first; last = current */
    size_t file_count, file_cap;
    uint64_t next_seqno;
    uint64_t written_pos;        /* record bytes written since open (all files) */
    uint64_t bytes_written;
    uint64_t records;
    bool sync_active;            /* a group-commit leader is fsyncing fd without mu */
    pthread_cond_t sync_done;    /* broadcast when a leader finishes */

    _Atomic uint64_t synced_pos; /* written_pos covered by an fsync; rises only */
    _Atomic bool failed;         /* invariant (3) */
    _Atomic uint64_t fsyncs;

    pthread_mutex_t delete_mu;   /* serializes wal_delete_through */

    pthread_mutex_t stop_mu;     /* guards stop; the syncer waits on stop_cv */
    pthread_cond_t stop_cv;
    bool stop;
    bool syncer_started;         /* immutable after open */
    pthread_t syncer;
};

/* ---- names --------------------------------------------------------- */

static void wal_file_name(char out[WAL_FILE_NAME_BYTES + 1], uint64_t first_seqno) {
    snprintf(out, WAL_FILE_NAME_BYTES + 1, "%020" PRIu64 WAL_FILE_SUFFIX, first_seqno);
}

static int wal_file_path(const char *dir, uint64_t first_seqno, char *out, size_t out_size) {
    char name[WAL_FILE_NAME_BYTES + 1];
    wal_file_name(name, first_seqno);
    if (snprintf(out, out_size, "%s/%s", dir, name) >= (int)out_size) return -ENAMETOOLONG;
    return 0;
}

/* Parses "<20 digits>.wal"; false for any other name. */
static bool wal_file_name_parse(const char *name, uint64_t *first_seqno) {
    if (strlen(name) != WAL_FILE_NAME_BYTES) return false;
    if (strcmp(name + WAL_FILE_SEQNO_DIGITS, WAL_FILE_SUFFIX) != 0) return false;
    uint64_t v = 0;
    for (int i = 0; i < WAL_FILE_SEQNO_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *first_seqno = v;
    return true;
}

static int wal_file_cmp(const void *a, const void *b) {
    uint64_t x = ((const wal_file *)a)->first_seqno, y = ((const wal_file *)b)->first_seqno;
    return x < y ? -1 : x > y;
}

/* Lists DIR's log files sorted by first seqno into a malloc'd array the
 * caller frees. Returns 0 or -errno (-ENOENT when DIR is absent). */
static int wal_list_files(const char *dir, wal_file **out, size_t *out_count) {
    *out = NULL;
    *out_count = 0;
    DIR *d = opendir(dir);
    if (d == NULL) return -errno;
    wal_file *files = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((errno = 0, e = readdir(d)) != NULL) {
        uint64_t seqno;
        if (!wal_file_name_parse(e->d_name, &seqno)) continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
            rc = -ENAMETOOLONG;
            goto done;
        }
        int64_t size = fio_file_size(path);
        if (size < 0) {
            rc = (int)size;
            goto done;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            wal_file *n = realloc(files, ncap * sizeof *n);
            if (n == NULL) {
                rc = -ENOMEM;
                goto done;
            }
            files = n;
            cap = ncap;
        }
        files[count].first_seqno = seqno;
        files[count].size_bytes = (uint64_t)size;
        count++;
    }
    if (errno != 0) rc = -errno;
done:
    closedir(d);
    if (rc < 0) {
        free(files);
        return rc;
    }
    if (count > 1) qsort(files, count, sizeof *files, wal_file_cmp);
    *out = files;
    *out_count = count;
    return 0;
}

/* ---- encoding and decoding, side by side ---------------------------- */

static void wal_file_header_encode(uint8_t out[WAL_FILE_HEADER_BYTES], uint64_t first_seqno) {
    store_u32(out + WAL_FILE_MAGIC_OFFSET, WAL_FILE_MAGIC);
    store_u32(out + WAL_FILE_VERSION_OFFSET, WAL_FORMAT_VERSION);
    store_u64(out + WAL_FILE_FIRST_SEQNO_OFFSET, first_seqno);
    store_u32(out + WAL_FILE_CRC_OFFSET, crc32c(out, WAL_FILE_CRC_OFFSET));
}

/* Checks a file header. Returns NULL when valid (and sets *first_seqno),
 * else what is wrong with it. */
static const char *wal_file_header_decode(const uint8_t in[WAL_FILE_HEADER_BYTES],
                                          uint64_t *first_seqno) {
    if (load_u32(in + WAL_FILE_CRC_OFFSET) != crc32c(in, WAL_FILE_CRC_OFFSET))
        return "file header checksum mismatch";
    if (load_u32(in + WAL_FILE_MAGIC_OFFSET) != WAL_FILE_MAGIC) return "not a WAL file (bad magic)";
    uint32_t version = load_u32(in + WAL_FILE_VERSION_OFFSET);
    if (version != WAL_FORMAT_VERSION) return "unknown WAL format version (written by a newer tierdb?)";
    *first_seqno = load_u64(in + WAL_FILE_FIRST_SEQNO_OFFSET);
    return NULL;
}

/* The CRC of a record, given the CRC32C of its payload (computed first,
 * outside the log mutex) and its encoded header. */
static uint32_t wal_record_crc(uint32_t payload_crc, const uint8_t hdr[WAL_RECORD_HEADER_BYTES]) {
    uint32_t c = crc32c_extend(payload_crc, hdr + WAL_REC_LENGTH_OFFSET, 4);
    return crc32c_extend(c, hdr + WAL_REC_SEQNO_OFFSET,
                         WAL_RECORD_HEADER_BYTES - WAL_REC_SEQNO_OFFSET);
}

/* Fills a record header:
 *   hdr          OUT: the 17 header bytes
 *   length       payload bytes
 *   seqno, type  as stored
 *   payload_crc  crc32c(payload, length) */
static void wal_record_encode(uint8_t hdr[WAL_RECORD_HEADER_BYTES], uint32_t length, uint64_t seqno,
                              uint8_t type, uint32_t payload_crc) {
    store_u32(hdr + WAL_REC_LENGTH_OFFSET, length);
    store_u64(hdr + WAL_REC_SEQNO_OFFSET, seqno);
    hdr[WAL_REC_TYPE_OFFSET] = type;
    store_u32(hdr + WAL_REC_CRC_OFFSET, wal_record_crc(payload_crc, hdr));
}

typedef enum wal_decode_result {
    WAL_DEC_OK = 0,
    WAL_DEC_SHORT_HEADER,  /* fewer than 17 bytes left */
    WAL_DEC_BAD_LENGTH,    /* length > WAL_MAX_RECORD_BYTES */
    WAL_DEC_SHORT_PAYLOAD, /* payload runs past the end of the file */
    WAL_DEC_BAD_CRC
} wal_decode_result;

typedef struct wal_record {
    uint64_t seqno;
    uint8_t type;
    const uint8_t *payload; /* points into the caller's bytes */
    uint32_t length;
} wal_record;

/* Decodes the record at p, with avail bytes up to the end of the file:
 *   rec   OUT: the record (valid only for WAL_DEC_OK; length also for
 *         WAL_DEC_SHORT_PAYLOAD and WAL_DEC_BAD_CRC)
 * Seqno order is the caller's check: it needs the file's context. */
static wal_decode_result wal_record_decode(const uint8_t *p, uint64_t avail, wal_record *rec) {
    if (avail < WAL_RECORD_HEADER_BYTES) return WAL_DEC_SHORT_HEADER;
    rec->length = load_u32(p + WAL_REC_LENGTH_OFFSET);
    if (rec->length > WAL_MAX_RECORD_BYTES) return WAL_DEC_BAD_LENGTH;
    if (avail - WAL_RECORD_HEADER_BYTES < rec->length) return WAL_DEC_SHORT_PAYLOAD;
    rec->payload = p + WAL_RECORD_HEADER_BYTES;
    uint32_t crc = wal_record_crc(crc32c(rec->payload, rec->length), p);
    if (crc != load_u32(p + WAL_REC_CRC_OFFSET)) return WAL_DEC_BAD_CRC;
    rec->seqno = load_u64(p + WAL_REC_SEQNO_OFFSET);
    rec->type = p[WAL_REC_TYPE_OFFSET];
    return WAL_DEC_OK;
}

/* ---- replay -------------------------------------------------------- */

static bool all_zero(const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != 0) return false;
    return true;
}

typedef enum wal_scan_end { WAL_SCAN_DONE = 0, WAL_SCAN_TORN, WAL_SCAN_CORRUPT } wal_scan_end;

typedef struct wal_scan {
    /* in */
    uint64_t after_seqno;
    wal_replay_fn fn;
    void *ctx;
    wal_replay_report *rep; /* records and last_seqno counted as delivered */
    /* carried from file to file */
    bool have_prev;        /* a record (or a skipped file) came before */
    uint64_t prev_seqno;   /* last seqno seen (valid with have_prev) */
    /* out, per file */
    uint64_t stop_offset;  /* where a torn tail or bad record starts */
    const char *why;       /* what was wrong there */
} wal_scan;

/* Scans one mapped file. Returns 0 or a callback's non-zero code, and sets
 * *end to how the file ended. `last` is true for the log's last file,
 * where a cut-off record is a torn tail rather than corruption. */
static int wal_scan_file(wal_scan *s, const uint8_t *data, uint64_t size, uint64_t name_seqno,
                         bool last, wal_scan_end *end) {
    *end = WAL_SCAN_DONE;
    if (size == 0) return 0; /* created, header never written: no records */
    uint64_t first_seqno = 0;
    const char *why = NULL;
    if (size < WAL_FILE_HEADER_BYTES) why = "file shorter than its header";
    else why = wal_file_header_decode(data, &first_seqno);
    if (why == NULL && first_seqno != name_seqno) why = "first seqno differs from the file name";
    if (why == NULL && first_seqno == 0) why = "first seqno is 0 (never assigned)";
    if (why == NULL && s->have_prev && first_seqno <= s->prev_seqno)
        why = "first seqno not above the previous file's records";
    if (why != NULL) {
        s->stop_offset = 0;
        s->why = why;
        /* A header cut off (or never written whole) by a crash while the
         * file was being created is a torn tail like any other. */
        *end = last && size <= WAL_FILE_HEADER_BYTES ? WAL_SCAN_TORN : WAL_SCAN_CORRUPT;
        return 0;
    }

    uint64_t expected = first_seqno;
    uint64_t off = WAL_FILE_HEADER_BYTES;
    /* Invariant: [0, off) holds the header and valid records whose seqnos
     * run first_seqno .. expected - 1. */
    while (off < size) {
        wal_record rec;
        wal_decode_result r = wal_record_decode(data + off, size - off, &rec);
        why = NULL;
        bool tail_cut = false; /* the damage reaches exactly to EOF */
        switch (r) {
        case WAL_DEC_OK:
            if (rec.seqno != expected) why = "seqno out of order";
            break;
        case WAL_DEC_SHORT_HEADER: why = "record header cut off at end of file"; tail_cut = true; break;
        case WAL_DEC_SHORT_PAYLOAD: why = "record payload cut off at end of file"; tail_cut = true; break;
        case WAL_DEC_BAD_LENGTH: why = "record length over the maximum"; break;
        case WAL_DEC_BAD_CRC:
            why = "record checksum mismatch";
            tail_cut = off + WAL_RECORD_HEADER_BYTES + rec.length == size;
            break;
        }
        if (why != NULL) {
            s->stop_offset = off;
            s->why = why;
            bool torn = last && (tail_cut || all_zero(data + off, size - off));
            *end = torn ? WAL_SCAN_TORN : WAL_SCAN_CORRUPT;
            return 0;
        }
        s->have_prev = true;
        s->prev_seqno = rec.seqno;
        expected = rec.seqno + 1;
        off += WAL_RECORD_HEADER_BYTES + (uint64_t)rec.length;
        if (rec.seqno > s->after_seqno) {
            if (s->fn != NULL) {
                int rc = s->fn(s->ctx, rec.seqno, rec.type, rec.payload, rec.length);
                if (rc != 0) return rc;
            }
            s->rep->records++;
            s->rep->last_seqno = rec.seqno;
        }
    }
    return 0;
}

int wal_replay(const char *dir, uint64_t after_seqno, wal_replay_fn fn, void *ctx,
               wal_replay_report *rep, tdb_error *err) {
    wal_replay_report local;
    if (rep == NULL) rep = &local;
    memset(rep, 0, sizeof *rep);
    rep->last_seqno = after_seqno;

    wal_file *files = NULL;
    size_t count = 0;
    int rc = wal_list_files(dir, &files, &count);
    if (rc == -ENOENT) return 0; /* a collection that never wrote */
    if (rc < 0)
        return tdb_err(err, TDB_EIO, "io_error", "cannot list the WAL directory %s: %s", dir,
                       strerror(-rc));

    wal_scan s = {.after_seqno = after_seqno, .fn = fn, .ctx = ctx, .rep = rep};
    for (size_t i = 0; i < count; i++) {
        bool last = i + 1 == count;
        /* A file whose successor starts at or below after_seqno + 1 holds
         * only records <= after_seqno: nothing to deliver, not read. */
        if (!last && files[i + 1].first_seqno != 0 && files[i + 1].first_seqno - 1 <= after_seqno) {
            s.have_prev = false; /* its last seqno is unknown; names still order files */
            continue;
        }
        char path[PATH_MAX];
        if (wal_file_path(dir, files[i].first_seqno, path, sizeof path) < 0) {
            rc = tdb_err(err, TDB_EIO, "io_error", "WAL path too long in %s", dir);
            goto done;
        }
        const void *map = NULL;
        size_t map_len = 0;
        int mrc = fio_mmap_file(path, &map, &map_len);
        if (mrc < 0) {
            rc = tdb_err(err, TDB_EIO, "io_error", "cannot read WAL file %s: %s", path,
                         strerror(-mrc));
            goto done;
        }
        wal_scan_end end;
        rc = wal_scan_file(&s, map, map_len, files[i].first_seqno, last, &end);
        fio_munmap(map, map_len);
        if (rc != 0) goto done;
        if (end == WAL_SCAN_TORN) {
            rep->torn_bytes = map_len - s.stop_offset;
            log_msg(LOG_WARN, "WAL %s: dropping a torn tail of %" PRIu64 " bytes at offset %" PRIu64
                              " (%s); normal after a crash",
                    path, rep->torn_bytes, s.stop_offset, s.why);
            break;
        }
        if (end == WAL_SCAN_CORRUPT) {
            rep->corrupt = true;
            rep->corrupt_offset = s.stop_offset;
            rep->bytes_lost = map_len - s.stop_offset;
            for (size_t j = i + 1; j < count; j++) rep->bytes_lost += files[j].size_bytes;
            /* The full path when it fits, else the name alone: wal_open
             * finds the file by its name. */
            if (snprintf(rep->corrupt_file, sizeof rep->corrupt_file, "%s", path) >=
                (int)sizeof rep->corrupt_file)
                wal_file_name(rep->corrupt_file, files[i].first_seqno);
            log_msg(LOG_ERROR, "WAL %s: corrupt at offset %" PRIu64 " (%s); replay stops here, "
                               "%" PRIu64 " bytes to the end of the log are not replayed",
                    path, s.stop_offset, s.why, rep->bytes_lost);
            break;
        }
    }
    rc = 0;
done:
    free(files);
    return rc;
}

/* ---- writer -------------------------------------------------------- */

static int wal_readonly_err(tdb_error *err) {
    return tdb_err(err, TDB_EREADONLY, "read_only", "%s", WAL_READONLY_MSG);
}

/* Checks the writer's invariants; the caller holds mu. Used as
 * assert(wal_check_locked(w)) after every change of the writer state. */
static bool wal_check_locked(const wal *w) {
    if (w->file_count == 0 || w->file_count > w->file_cap) return false;
    for (size_t i = 1; i < w->file_count; i++) /* invariant (1): names rise */
        if (w->files[i].first_seqno <= w->files[i - 1].first_seqno) return false;
    const wal_file *cur = &w->files[w->file_count - 1];
    if (cur->size_bytes < WAL_FILE_HEADER_BYTES || w->next_seqno < cur->first_seqno) return false;
    /* every record in the current file takes at least a header */
    uint64_t cur_records = w->next_seqno - cur->first_seqno;
    if (cur->size_bytes - WAL_FILE_HEADER_BYTES < cur_records * WAL_RECORD_HEADER_BYTES)
        return false;
    if (atomic_load(&w->synced_pos) > w->written_pos) return false;
    return w->bytes_written == w->written_pos;
}

/* Marks the WAL failed for good (invariant 3) after an fsync error. */
static void wal_fail(wal *w, const char *what, int errno_neg) {
    if (!atomic_exchange(&w->failed, true))
        log_msg(LOG_ERROR, "WAL %s: %s failed: %s; %s", w->dir, what, strerror(-errno_neg),
                WAL_READONLY_MSG);
}

/* Creates DIR/<first_seqno>.wal with its header, fsynced, and fsyncs DIR
 * so the new name survives a power loss before any record in it is
 * acknowledged. Returns the fd, TDB_EIO (nothing left behind), or
 * TDB_EREADONLY when an fsync failed (the caller fails the WAL). */
static int wal_file_create(const char *dir, uint64_t first_seqno, tdb_error *err) {
    char path[PATH_MAX];
    if (wal_file_path(dir, first_seqno, path, sizeof path) < 0)
        return tdb_err(err, TDB_EIO, "io_error", "WAL path too long in %s", dir);
    int fd = fio_open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return tdb_err(err, TDB_EIO, "io_error", "cannot create WAL file %s: %s", path,
                       strerror(-fd));
    uint8_t hdr[WAL_FILE_HEADER_BYTES];
    wal_file_header_encode(hdr, first_seqno);
    int rc = fio_pwrite_all(fd, hdr, sizeof hdr, 0);
    if (rc < 0) {
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot write WAL file %s: %s", path,
                     strerror(-rc));
        goto fail;
    }
    rc = fio_fsync(fd);
    if (rc == 0) rc = fio_fsync_dir(dir);
    if (rc < 0) {
        log_msg(LOG_ERROR, "WAL %s: fsync failed: %s", path, strerror(-rc));
        rc = wal_readonly_err(err);
        goto fail;
    }
    return fd;
fail:
    fio_close(fd);
    /* Uncounted unlink(2), as fileio.c's own clean-up: a file left here
     * (say, by a persistent injected fault) would lie between two live
     * files once a later rotation succeeds, headerless, and replay would
     * take it for damage and stop there. */
    unlink(path);
    return rc;
}

/* Makes everything up to log position `end` durable (group commit, see
 * the file comment): one leader fsyncs for every byte written so far. */
static int wal_sync_to(wal *w, uint64_t end, tdb_error *err) {
    if (atomic_load(&w->synced_pos) >= end) return 0;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    /* Leaving the loop, `end` is synced or the WAL has failed. */
    while (atomic_load(&w->synced_pos) < end) {
        if (atomic_load(&w->failed)) {
            rc = wal_readonly_err(err);
            break;
        }
        if (w->sync_active) {
            pthread_cond_wait(&w->sync_done, &w->mu);
            continue;
        }
        w->sync_active = true;
        uint64_t target = w->written_pos; /* everything written so far, not just ours */
        int fd = w->fd;                   /* stays open: rotation waits for !sync_active */
        pthread_mutex_unlock(&w->mu);
        int frc = fio_fsync(fd);
        atomic_fetch_add(&w->fsyncs, 1);
        pthread_mutex_lock(&w->mu);
        w->sync_active = false;
        if (frc < 0) wal_fail(w, "fsync", frc);
        else atomic_store(&w->synced_pos, target);
        pthread_cond_broadcast(&w->sync_done);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Starts a new file at next_seqno. Caller holds mu. With
 * force false it rotates only if the current file is still over the size
 * limit (another writer may have rotated first). A current file without
 * records is kept: it already lies after every record. */
static int wal_rotate_locked(wal *w, bool force, tdb_error *err) {
    /* The leader's fsync runs without mu on the current fd: let it end
     * before that fd may be closed. */
    while (w->sync_active) pthread_cond_wait(&w->sync_done, &w->mu);
    if (atomic_load(&w->failed)) return wal_readonly_err(err);
    wal_file *cur = &w->files[w->file_count - 1];
    if (cur->size_bytes <= WAL_FILE_HEADER_BYTES) return 0;
    if (!force && cur->size_bytes < w->opts.file_max_bytes) return 0;
    if (w->file_count == w->file_cap) {
        size_t ncap = w->file_cap * 2;
        wal_file *n = realloc(w->files, ncap * sizeof *n);
        if (n == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory rotating the WAL");
        w->files = n;
        w->file_cap = ncap;
        cur = &w->files[w->file_count - 1];
    }
    /* Invariant (2): the old file is whole on disk before the new one
     * exists, whatever the policy. */
    int rc = fio_fsync(w->fd);
    atomic_fetch_add(&w->fsyncs, 1);
    if (rc < 0) {
        wal_fail(w, "fsync before rotation", rc);
        return wal_readonly_err(err);
    }
    atomic_store(&w->synced_pos, w->written_pos);
    pthread_cond_broadcast(&w->sync_done); /* writers waiting for a sync are covered */
    int fd = wal_file_create(w->dir, w->next_seqno, err);
    if (fd == TDB_EREADONLY) {
        wal_fail(w, "fsync of a new file", -EIO);
        return fd;
    }
    if (fd < 0) return fd; /* the old file stays current and usable */
    atomic_fetch_add(&w->fsyncs, 2);
    fio_close(w->fd);
    w->fd = fd;
    w->files[w->file_count].first_seqno = w->next_seqno;
    w->files[w->file_count].size_bytes = WAL_FILE_HEADER_BYTES;
    w->file_count++;
    assert(wal_check_locked(w));
    return 0;
}

int wal_append(wal *w, uint8_t type, const void *payload, size_t len, uint64_t *seqno_out,
               tdb_error *err) {
    if (len > WAL_MAX_RECORD_BYTES)
        return tdb_err(err, TDB_ETOOBIG, "payload_too_large",
                       "a WAL record of %zu bytes exceeds the limit of %u bytes", len,
                       WAL_MAX_RECORD_BYTES);
    if (atomic_load(&w->failed)) return wal_readonly_err(err);

    /* Frame the record outside the mutex; only the seqno (and the 13
     * header bytes of CRC that depend on it) wait for the lock. */
    size_t total = WAL_RECORD_HEADER_BYTES + len;
    uint8_t stack_rec[WAL_STACK_RECORD_BYTES];
    uint8_t *rec = total <= sizeof stack_rec ? stack_rec : malloc(total);
    if (rec == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory framing a WAL record");
    if (len > 0) memcpy(rec + WAL_RECORD_HEADER_BYTES, payload, len);
    uint32_t payload_crc = crc32c(rec + WAL_RECORD_HEADER_BYTES, len);

    int rc = 0;
    uint64_t seqno = 0, end = 0;
    bool need_rotate = false;
    pthread_mutex_lock(&w->mu);
    if (atomic_load(&w->failed)) {
        pthread_mutex_unlock(&w->mu);
        rc = wal_readonly_err(err);
        goto done;
    }
    wal_file *cur = &w->files[w->file_count - 1];
    seqno = w->next_seqno;
    wal_record_encode(rec, (uint32_t)len, seqno, type, payload_crc);
    int wrc = fio_pwrite_all(w->fd, rec, total, cur->size_bytes);
    if (wrc < 0) {
        /* Invariant (5): cut off whatever part did reach the file, or a
         * later record would follow garbage and read as corruption. */
        int trc = fio_ftruncate(w->fd, cur->size_bytes);
        if (trc < 0) wal_fail(w, "truncating a failed write", trc);
        pthread_mutex_unlock(&w->mu);
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot write to the WAL in %s: %s", w->dir,
                     strerror(-wrc));
        goto done;
    }
    cur->size_bytes += total;
    w->next_seqno++;
    w->written_pos += total;
    w->bytes_written += total;
    w->records++;
    end = w->written_pos;
    need_rotate = cur->size_bytes >= w->opts.file_max_bytes;
    assert(wal_check_locked(w));
    pthread_mutex_unlock(&w->mu);

    if (w->opts.fsync == TDB_FSYNC_ALWAYS) {
        rc = wal_sync_to(w, end, err);
        if (rc < 0) goto done;
    }
    if (need_rotate) {
        /* The record is written (and durable as promised): a failed
         * rotation must not fail this append, or the caller would drop a
         * record that replay later brings back. The next append retries. */
        tdb_error rerr;
        pthread_mutex_lock(&w->mu);
        int rrc = wal_rotate_locked(w, false, &rerr);
        pthread_mutex_unlock(&w->mu);
        if (rrc < 0) log_msg(LOG_WARN, "WAL %s: rotation failed: %s", w->dir, rerr.message);
    }
    if (seqno_out) *seqno_out = seqno;
done:
    if (rec != stack_rec) free(rec);
    return rc;
}

int wal_sync(wal *w, tdb_error *err) {
    pthread_mutex_lock(&w->mu);
    uint64_t end = w->written_pos;
    pthread_mutex_unlock(&w->mu);
    if (atomic_load(&w->failed)) return wal_readonly_err(err);
    return wal_sync_to(w, end, err);
}

int wal_rotate(wal *w, uint64_t *next_seqno, tdb_error *err) {
    pthread_mutex_lock(&w->mu);
    int rc = wal_rotate_locked(w, true, err);
    if (rc == 0 && next_seqno) *next_seqno = w->next_seqno;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int wal_delete_through(wal *w, uint64_t checkpoint, tdb_error *err) {
    pthread_mutex_lock(&w->delete_mu);
    /* Take the victims off the list under mu, delete them without it so
     * appenders do not wait on unlink. */
    pthread_mutex_lock(&w->mu);
    size_t victims = 0;
    /* File i holds seqnos below files[i + 1].first_seqno (invariant 1);
     * the current (last) file is never a victim (invariant 4). */
    while (victims + 1 < w->file_count && w->files[victims + 1].first_seqno - 1 <= checkpoint)
        victims++;
    wal_file *gone = NULL;
    if (victims > 0) {
        gone = malloc(victims * sizeof *gone);
        if (gone == NULL) {
            pthread_mutex_unlock(&w->mu);
            pthread_mutex_unlock(&w->delete_mu);
            return tdb_err(err, TDB_ENOMEM, NULL, "out of memory deleting WAL files");
        }
        memcpy(gone, w->files, victims * sizeof *gone);
        memmove(w->files, w->files + victims, (w->file_count - victims) * sizeof *w->files);
        w->file_count -= victims;
    }
    pthread_mutex_unlock(&w->mu);

    int rc = 0;
    size_t deleted = 0;
    for (; deleted < victims; deleted++) {
        char path[PATH_MAX];
        int urc = wal_file_path(w->dir, gone[deleted].first_seqno, path, sizeof path);
        if (urc == 0) urc = fio_unlink(path);
        if (urc < 0 && urc != -ENOENT) {
            rc = tdb_err(err, TDB_EIO, "io_error", "cannot delete WAL file %s: %s", path,
                         strerror(-urc));
            break;
        }
    }
    if (deleted < victims) {
        /* Put back the files still on disk: they are older than every
         * listed file, so they go in front, in order. */
        size_t left = victims - deleted;
        pthread_mutex_lock(&w->mu);
        if (w->file_count + left > w->file_cap) {
            wal_file *n = realloc(w->files, (w->file_count + left) * sizeof *n);
            if (n != NULL) {
                w->files = n;
                w->file_cap = w->file_count + left;
            }
        }
        if (w->file_count + left <= w->file_cap) {
            memmove(w->files + left, w->files, w->file_count * sizeof *w->files);
            memcpy(w->files, gone + deleted, left * sizeof *gone);
            w->file_count += left;
        } /* else: only the stats miss them; the next open lists them again */
        pthread_mutex_unlock(&w->mu);
    }
    if (deleted > 0) {
        /* A deleted file that comes back after a crash is harmless (its
         * records are <= the checkpoint), so this is about disk space, and
         * a failure here does not fail the WAL. */
        int frc = fio_fsync_dir(w->dir);
        if (frc < 0 && rc == 0)
            rc = tdb_err(err, TDB_EIO, "io_error", "cannot fsync the WAL directory %s: %s",
                         w->dir, strerror(-frc));
    }
    free(gone);
    pthread_mutex_unlock(&w->delete_mu);
    return rc;
}

uint64_t wal_next_seqno(wal *w) {
    pthread_mutex_lock(&w->mu);
    uint64_t n = w->next_seqno;
    pthread_mutex_unlock(&w->mu);
    return n;
}

bool wal_failed(wal *w) { return atomic_load(&w->failed); }

void wal_stats_get(wal *w, wal_stats *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&w->mu);
    out->bytes_written = w->bytes_written;
    out->records = w->records;
    out->files = w->file_count;
    for (size_t i = 0; i < w->file_count; i++) out->disk_bytes += w->files[i].size_bytes;
    pthread_mutex_unlock(&w->mu);
    out->fsyncs = atomic_load(&w->fsyncs);
}

/* The interval syncer: wakes every fsync_interval_ms (or when told to
 * stop) and fsyncs if anything was written since the last fsync. */
static void *wal_syncer_main(void *arg) {
    wal *w = arg;
    pthread_mutex_lock(&w->stop_mu);
    while (!w->stop) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        uint64_t ns = (uint64_t)deadline.tv_nsec + (uint64_t)w->opts.fsync_interval_ms * 1000000u;
        deadline.tv_sec += (time_t)(ns / 1000000000u);
        deadline.tv_nsec = (long)(ns % 1000000000u);
        while (!w->stop && pthread_cond_timedwait(&w->stop_cv, &w->stop_mu, &deadline) != ETIMEDOUT) {
        }
        if (w->stop) break;
        pthread_mutex_unlock(&w->stop_mu);
        if (!atomic_load(&w->failed)) {
            pthread_mutex_lock(&w->mu);
            uint64_t end = w->written_pos;
            pthread_mutex_unlock(&w->mu);
            (void)wal_sync_to(w, end, NULL); /* a failure marks the WAL failed */
        }
        pthread_mutex_lock(&w->stop_mu);
    }
    pthread_mutex_unlock(&w->stop_mu);
    return NULL;
}

/* ---- open and close ------------------------------------------------ */

/* Renames every file from the one named in rep->corrupt_file on to
 * <name>.corrupt (or .corrupt.<n> if that exists). */
static int wal_move_corrupt_aside(const char *dir, const wal_replay_report *rep, wal_file *files,
                                  size_t *count, tdb_error *err) {
    const char *slash = strrchr(rep->corrupt_file, '/');
    const char *name = slash ? slash + 1 : rep->corrupt_file;
    uint64_t bad_seqno;
    if (!wal_file_name_parse(name, &bad_seqno))
        return tdb_err(err, TDB_EINVAL, NULL, "replay report names no WAL file (\"%s\")",
                       rep->corrupt_file);
    size_t first_bad = *count;
    for (size_t i = 0; i < *count; i++)
        if (files[i].first_seqno == bad_seqno) {
            first_bad = i;
            break;
        }
    if (first_bad == *count)
        return tdb_err(err, TDB_EINVAL, NULL,
                       "the corrupt WAL file %s from the replay report is not in %s", name, dir);
    for (size_t i = first_bad; i < *count; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        if (wal_file_path(dir, files[i].first_seqno, from, sizeof from) < 0)
            return tdb_err(err, TDB_EIO, "io_error", "WAL path too long in %s", dir);
        if (snprintf(to, sizeof to, "%s%s", from, WAL_CORRUPT_SUFFIX) >= (int)sizeof to)
            return tdb_err(err, TDB_EIO, "io_error", "WAL path too long in %s", dir);
        for (int n = 1; fio_exists(to); n++) {
            if (snprintf(to, sizeof to, "%s%s.%d", from, WAL_CORRUPT_SUFFIX, n) >= (int)sizeof to)
                return tdb_err(err, TDB_EIO, "io_error", "WAL path too long in %s", dir);
        }
        int rc = fio_rename(from, to);
        if (rc < 0)
            return tdb_err(err, TDB_EIO, "io_error", "cannot move corrupt WAL file %s aside: %s",
                           from, strerror(-rc));
        log_msg(LOG_WARN, "WAL: moved %s aside to %s (kept for inspection)", from, to);
    }
    *count = first_bad;
    return 0;
}

/* Cuts the torn tail (rep->torn_bytes) off the last file and fsyncs it. */
static int wal_truncate_torn(const char *dir, const wal_replay_report *rep, wal_file *last,
                             tdb_error *err) {
    char path[PATH_MAX];
    if (wal_file_path(dir, last->first_seqno, path, sizeof path) < 0)
        return tdb_err(err, TDB_EIO, "io_error", "WAL path too long in %s", dir);
    if (rep->torn_bytes > last->size_bytes)
        return tdb_err(err, TDB_EINVAL, NULL,
                       "replay report's torn tail (%" PRIu64 " bytes) is longer than %s",
                       rep->torn_bytes, path);
    uint64_t keep = last->size_bytes - rep->torn_bytes;
    int fd = fio_open(path, O_WRONLY, 0);
    if (fd < 0)
        return tdb_err(err, TDB_EIO, "io_error", "cannot open %s: %s", path, strerror(-fd));
    int rc = fio_ftruncate(fd, keep);
    if (rc == 0) rc = fio_fsync(fd);
    fio_close(fd);
    if (rc < 0)
        return tdb_err(err, TDB_EIO, "io_error", "cannot truncate the torn tail of %s: %s", path,
                       strerror(-rc));
    last->size_bytes = keep;
    return 0;
}

int wal_open(const char *dir, const wal_options *opts, uint64_t next_seqno,
             const wal_replay_report *rep, wal **out, tdb_error *err) {
    *out = NULL;
    if (next_seqno == 0) return tdb_err(err, TDB_EINVAL, NULL, "WAL seqnos start at 1");
    if (opts->fsync != TDB_FSYNC_ALWAYS && opts->fsync != TDB_FSYNC_INTERVAL &&
        opts->fsync != TDB_FSYNC_NONE)
        return tdb_err(err, TDB_EINVAL, NULL, "unknown fsync policy %d", (int)opts->fsync);
    int rc = fio_mkdir_p(dir);
    if (rc < 0)
        return tdb_err(err, TDB_EIO, "io_error", "cannot create the WAL directory %s: %s", dir,
                       strerror(-rc));

    wal_replay_report scanned;
    if (rep == NULL) {
        rc = wal_replay(dir, 0, NULL, NULL, &scanned, err);
        if (rc < 0) return rc;
        rep = &scanned;
    }
    if (next_seqno <= rep->last_seqno)
        return tdb_err(err, TDB_EINVAL, NULL,
                       "WAL next seqno %" PRIu64 " is not after the last record %" PRIu64,
                       next_seqno, rep->last_seqno);

    wal *w = NULL;
    wal_file *files = NULL;
    size_t count = 0;
    int fd = -1;
    rc = wal_list_files(dir, &files, &count);
    if (rc < 0) {
        rc = tdb_err(err, TDB_EIO, "io_error", "cannot list the WAL directory %s: %s", dir,
                     strerror(-rc));
        goto fail;
    }
    bool dir_changed = false;
    if (rep->corrupt) {
        rc = wal_move_corrupt_aside(dir, rep, files, &count, err);
        if (rc < 0) goto fail;
        dir_changed = true;
    } else if (rep->torn_bytes > 0 && count > 0) {
        rc = wal_truncate_torn(dir, rep, &files[count - 1], err);
        if (rc < 0) goto fail;
    }
    /* A last file without records (header only, or cut before its header
     * was whole) is removed: the new file replaces it, and keeping it
     * would leave one empty file per open. */
    while (count > 0 && files[count - 1].size_bytes <= WAL_FILE_HEADER_BYTES) {
        char path[PATH_MAX];
        if (wal_file_path(dir, files[count - 1].first_seqno, path, sizeof path) == 0)
            rc = fio_unlink(path);
        else
            rc = -ENAMETOOLONG;
        if (rc < 0 && rc != -ENOENT) {
            rc = tdb_err(err, TDB_EIO, "io_error", "cannot remove empty WAL file %s: %s", path,
                         strerror(-rc));
            goto fail;
        }
        count--;
        dir_changed = true;
    }
    if (count > 0 && files[count - 1].first_seqno >= next_seqno) {
        rc = tdb_err(err, TDB_EINVAL, NULL,
                     "WAL next seqno %" PRIu64 " is not after file %020" PRIu64 ".wal in %s",
                     next_seqno, files[count - 1].first_seqno, dir);
        goto fail;
    }
    if (dir_changed) {
        rc = fio_fsync_dir(dir);
        if (rc < 0) {
            rc = tdb_err(err, TDB_EIO, "io_error", "cannot fsync the WAL directory %s: %s", dir,
                         strerror(-rc));
            goto fail;
        }
    }

    w = calloc(1, sizeof *w);
    size_t cap = count + 16;
    wal_file *nfiles = realloc(files, cap * sizeof *nfiles);
    if (w == NULL || nfiles == NULL || (w->dir = strdup(dir)) == NULL) {
        if (nfiles != NULL) files = nfiles;
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening the WAL");
        goto fail;
    }
    files = nfiles;
    fd = wal_file_create(dir, next_seqno, err);
    if (fd < 0) {
        rc = fd == TDB_EREADONLY ? TDB_EIO : fd; /* nothing acknowledged yet: a plain I/O error */
        if (err) err->code = rc;
        goto fail;
    }
    files[count].first_seqno = next_seqno;
    files[count].size_bytes = WAL_FILE_HEADER_BYTES;

    w->opts = *opts;
    if (w->opts.file_max_bytes == 0) w->opts.file_max_bytes = WAL_DEFAULT_FILE_MAX_BYTES;
    if (w->opts.fsync_interval_ms == 0) w->opts.fsync_interval_ms = WAL_DEFAULT_FSYNC_INTERVAL_MS;
    w->fd = fd;
    w->files = files;
    w->file_count = count + 1;
    w->file_cap = cap;
    w->next_seqno = next_seqno;
    atomic_init(&w->synced_pos, 0);
    atomic_init(&w->failed, false);
    atomic_init(&w->fsyncs, 2); /* the new file and the directory */
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->sync_done, NULL);
    pthread_mutex_init(&w->delete_mu, NULL);
    pthread_mutex_init(&w->stop_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (w->opts.fsync == TDB_FSYNC_INTERVAL) {
        if (pthread_create(&w->syncer, NULL, wal_syncer_main, w) != 0) {
            wal_close(w);
            return tdb_err(err, TDB_ENOMEM, NULL, "cannot start the WAL sync thread");
        }
        w->syncer_started = true;
    }
    assert(wal_check_locked(w));
    *out = w;
    return 0;

fail:
    if (w) free(w->dir);
    free(w);
    free(files);
    return rc;
}

void wal_close(wal *w) {
    if (w == NULL) return;
    if (w->syncer_started) {
        pthread_mutex_lock(&w->stop_mu);
        w->stop = true;
        pthread_cond_signal(&w->stop_cv);
        pthread_mutex_unlock(&w->stop_mu);
        pthread_join(w->syncer, NULL);
    }
    /* One last fsync so a clean close loses nothing, unless the policy
     * promised none or the WAL failed (invariant 3: never retry). */
    if (w->opts.fsync != TDB_FSYNC_NONE && !atomic_load(&w->failed)) {
        tdb_error e;
        if (wal_sync(w, &e) < 0) log_msg(LOG_ERROR, "WAL %s: final sync: %s", w->dir, e.message);
    }
    fio_close(w->fd);
    pthread_cond_destroy(&w->stop_cv);
    pthread_mutex_destroy(&w->stop_mu);
    pthread_mutex_destroy(&w->delete_mu);
    pthread_cond_destroy(&w->sync_done);
    pthread_mutex_destroy(&w->mu);
    free(w->files);
    free(w->dir);
    free(w);
}
