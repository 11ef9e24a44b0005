/*
 * test_wal.c: the write-ahead log: round trips, torn tails at every byte,
 * corruption mid-log, rotation and deletion, replay across files and
 * after a seqno, group commit from many threads, sticky fsync failure,
 * and reopening after a torn tail or after corruption.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "storage/wal.h"
#include "storage/wal_format.h"
#include "util/buf.h"
#include "util/crc32c.h"
#include "util/fileio.h"

/* ---- helpers ------------------------------------------------------- */

/* This executable's own fsync overrides the C library's for every call in
 * it (fileio.c included), so a test can hold a group-commit leader inside
 * its fsync while other writers arrive: group commit becomes
 * deterministic instead of depending on how slow the disk is. */
static pthread_mutex_t g_fs_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_fs_cv = PTHREAD_COND_INITIALIZER;
static bool g_fs_armed;  /* the next fsync blocks until g_fs_open */
static bool g_fs_inside; /* a blocked fsync has started */
static bool g_fs_open;

int fsync(int fd) {
    pthread_mutex_lock(&g_fs_mu);
    if (g_fs_armed) {
        g_fs_armed = false;
        g_fs_inside = true;
        pthread_cond_broadcast(&g_fs_cv);
        while (!g_fs_open) pthread_cond_wait(&g_fs_cv, &g_fs_mu);
    }
    pthread_mutex_unlock(&g_fs_mu);
    return (int)syscall(SYS_fsync, fd);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define POLL_DEADLINE_NS (10ull * 1000000000ull)

static char g_dir[PATH_MAX];

static void pathf(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && n < PATH_MAX);
}

static int setup(void **state) {
    (void)state;
    const char *base = getenv("TDB_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    if (fio_mkdir_p(base) < 0) return -1;
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%.200s/wal-XXXXXX", base);
    if (mkdtemp(tmpl) == NULL) return -1;
    /* The log goes in a subdirectory wal_open creates (as the engine's). */
    snprintf(g_dir, sizeof g_dir, "%.300s/wal", tmpl);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fio_fault_clear();
    char *slash = strrchr(g_dir, '/');
    *slash = '\0';
    return fio_rmtree(g_dir) == 0 ? 0 : -1;
}

typedef struct rec {
    uint64_t seqno;
    uint8_t type;
    uint8_t *payload;
    size_t len;
} rec;

typedef struct collected {
    rec *recs;
    size_t n, cap;
    int fail_at;       /* when > 0, the fail_at-th call returns -42 */
} collected;

static int collect_fn(void *ctx, uint64_t seqno, uint8_t type, const uint8_t *payload, size_t len) {
    collected *c = ctx;
    if (c->fail_at > 0 && (int)c->n + 1 == c->fail_at) return -42;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->recs = realloc(c->recs, c->cap * sizeof *c->recs);
        assert_non_null(c->recs);
    }
    rec *r = &c->recs[c->n++];
    r->seqno = seqno;
    r->type = type;
    r->len = len;
    r->payload = malloc(len ? len : 1);
    assert_non_null(r->payload);
    if (len) memcpy(r->payload, payload, len);
    return 0;
}

static void collected_free(collected *c) {
    for (size_t i = 0; i < c->n; i++) free(c->recs[i].payload);
    free(c->recs);
    memset(c, 0, sizeof *c);
}

static void replay_all(uint64_t after, collected *c, wal_replay_report *rep) {
    memset(c, 0, sizeof *c);
    tdb_error err;
    assert_int_equal(wal_replay(g_dir, after, collect_fn, c, rep, &err), 0);
    assert_int_equal(rep->records, c->n);
}

static wal *open_wal(tdb_fsync_policy policy, uint64_t file_max, uint64_t next,
                     const wal_replay_report *rep) {
    wal_options o = {.fsync = policy, .fsync_interval_ms = 10, .file_max_bytes = file_max};
    wal *w = NULL;
    tdb_error err = {0};
    int rc = wal_open(g_dir, &o, next, rep, &w, &err);
    if (rc != 0) fail_msg("wal_open: %d %s", rc, err.message);
    return w;
}

/* Deterministic payload i of length len. */
static void fill_payload(uint8_t *p, size_t len, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static uint64_t append_n(wal *w, size_t len, uint64_t seed) {
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    fill_payload(p, len, seed);
    uint64_t seqno = 0;
    tdb_error err;
    int rc = wal_append(w, (uint8_t)(seed & 0xff), p, len, &seqno, &err);
    if (rc != 0) fail_msg("wal_append: %d %s", rc, err.message);
    free(p);
    return seqno;
}

static void check_payload(const rec *r, size_t len, uint64_t seed) {
    assert_int_equal(r->len, len);
    assert_int_equal(r->type, (uint8_t)(seed & 0xff));
    uint8_t *p = malloc(len ? len : 1);
    fill_payload(p, len, seed);
    assert_memory_equal(r->payload, p, len);
    free(p);
}

static void file_path(char *out, uint64_t first_seqno) {
    pathf(out, "%s/%020llu.wal", g_dir, (unsigned long long)first_seqno);
}

static uint8_t *read_whole(const char *path, size_t *len) {
    char *data;
    assert_int_equal(fio_read_file(path, &data, len), 0);
    return (uint8_t *)data;
}

static void write_whole(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Names in g_dir ending in suffix, counted. */
static int count_files(const char *suffix) {
    DIR *d = opendir(g_dir);
    if (d == NULL) return 0;
    int n = 0;
    size_t sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0) n++;
    }
    closedir(d);
    return n;
}

/* Offsets of records in a new single-file log, for sizes[]. */
static uint64_t record_offset(const size_t *sizes, size_t i) {
    uint64_t off = WAL_FILE_HEADER_BYTES;
    for (size_t k = 0; k < i; k++) off += WAL_RECORD_HEADER_BYTES + sizes[k];
    return off;
}

/* ---- tests --------------------------------------------------------- */

static void wal_append_replay_round_trip(void **state) {
    (void)state;
    static const size_t sizes[] = {0, 1, 100, 5000, 17, 3};
    wal *w = open_wal(TDB_FSYNC_ALWAYS, 0, 1, NULL);
    for (size_t i = 0; i < 6; i++) assert_int_equal(append_n(w, sizes[i], i), i + 1);
    assert_int_equal(wal_next_seqno(w), 7);
    wal_stats st;
    wal_stats_get(w, &st);
    assert_int_equal(st.records, 6);
    assert_int_equal(st.files, 1);
    assert_int_equal(st.bytes_written, record_offset(sizes, 6) - WAL_FILE_HEADER_BYTES);
    assert_int_equal(st.disk_bytes, record_offset(sizes, 6));
    assert_false(wal_failed(w));
    wal_close(w);

    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(c.recs[i].seqno, i + 1);
        check_payload(&c.recs[i], sizes[i], i);
    }
    assert_int_equal(rep.last_seqno, 6);
    assert_int_equal(rep.torn_bytes, 0);
    assert_false(rep.corrupt);
    collected_free(&c);
    char p[PATH_MAX];
    file_path(p, 1);
    assert_int_equal(fio_file_size(p), (int64_t)record_offset(sizes, 6));
}

static void wal_empty_and_huge_records_round_trip(void **state) {
    (void)state;
    const size_t huge = 8u << 20;
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 100, NULL);
    assert_int_equal(append_n(w, 0, 1), 100);
    assert_int_equal(append_n(w, huge, 2), 101);
    assert_int_equal(append_n(w, 0, 3), 102);
    wal_close(w);
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 3);
    check_payload(&c.recs[0], 0, 1);
    check_payload(&c.recs[1], huge, 2);
    check_payload(&c.recs[2], 0, 3);
    assert_int_equal(c.recs[1].seqno, 101);
    collected_free(&c);
}

static void wal_append_rejects_record_over_limit(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 1, NULL);
    uint8_t b = 0;
    tdb_error err;
    /* The size check comes before the payload is read. */
    assert_int_equal(wal_append(w, 1, &b, (size_t)WAL_MAX_RECORD_BYTES + 1, NULL, &err),
                     TDB_ETOOBIG);
    assert_int_equal(err.code, TDB_ETOOBIG);
    assert_int_equal(wal_next_seqno(w), 1);
    wal_close(w);
}

static void wal_replay_missing_or_empty_dir_is_empty_log(void **state) {
    (void)state;
    collected c;
    wal_replay_report rep;
    replay_all(5, &c, &rep); /* g_dir does not exist yet */
    assert_int_equal(c.n, 0);
    assert_int_equal(rep.last_seqno, 5);
    assert_int_equal(fio_mkdir_p(g_dir), 0);
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 0);
    /* An empty file (created, header never written) holds no records. */
    char p[PATH_MAX];
    file_path(p, 1);
    write_whole(p, "", 0);
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 0);
    assert_false(rep.corrupt);
    assert_int_equal(rep.torn_bytes, 0);
}

/* Writes three records, then cuts the file at every byte inside the last
 * one: every cut is a torn tail, dropped, and both earlier records stay. */
static void wal_replay_drops_torn_tail_at_every_byte(void **state) {
    (void)state;
    static const size_t sizes[] = {10, 0, 60};
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 1, NULL);
    for (size_t i = 0; i < 3; i++) append_n(w, sizes[i], i);
    wal_close(w);
    char p[PATH_MAX];
    file_path(p, 1);
    size_t len;
    uint8_t *orig = read_whole(p, &len);
    uint64_t last_start = record_offset(sizes, 2);
    assert_int_equal(len, record_offset(sizes, 3));

    for (uint64_t cut = last_start; cut < len; cut++) {
        write_whole(p, orig, cut);
        collected c;
        wal_replay_report rep;
        replay_all(0, &c, &rep);
        assert_int_equal(c.n, 2);
        check_payload(&c.recs[0], sizes[0], 0);
        check_payload(&c.recs[1], sizes[1], 1);
        assert_int_equal(rep.torn_bytes, cut - last_start);
        assert_false(rep.corrupt);
        assert_int_equal(rep.last_seqno, 2);
        collected_free(&c);
    }

    /* Whole length, a damaged byte in the last record: it ends exactly at
     * the end of the log, so it is a torn write too. */
    for (uint64_t at = last_start; at < len; at += 7) {
        orig[at] ^= 0x20;
        write_whole(p, orig, len);
        orig[at] ^= 0x20;
        collected c;
        wal_replay_report rep;
        replay_all(0, &c, &rep);
        /* A flipped length byte may make the record look longer than the
         * file (torn) or shorter (bad CRC not at EOF: corrupt); every
         * other byte gives a torn tail of the whole record. */
        bool in_length = at < last_start + 4;
        if (!in_length) {
            assert_false(rep.corrupt);
            assert_int_equal(rep.torn_bytes, len - last_start);
        }
        assert_int_equal(c.n, 2);
        collected_free(&c);
    }
    free(orig);
}

static void wal_replay_zero_filled_tail_is_torn(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 1, NULL);
    append_n(w, 30, 1);
    append_n(w, 30, 2);
    wal_close(w);
    char p[PATH_MAX];
    file_path(p, 1);
    size_t len;
    uint8_t *orig = read_whole(p, &len);
    uint8_t *ext = calloc(1, len + 100);
    memcpy(ext, orig, len);
    write_whole(p, ext, len + 100);
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 2);
    assert_false(rep.corrupt);
    assert_int_equal(rep.torn_bytes, 100);
    collected_free(&c);
    free(ext);
    free(orig);
}

/* A flipped byte in a middle record is corruption: the records before it
 * are delivered, the rest are not, and file, offset and loss reported. */
static void wal_replay_reports_flipped_byte_mid_log(void **state) {
    (void)state;
    static const size_t sizes[] = {40, 41, 42, 43, 44};
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 1, NULL);
    for (size_t i = 0; i < 5; i++) append_n(w, sizes[i], i);
    wal_close(w);
    char p[PATH_MAX];
    file_path(p, 1);
    size_t len;
    uint8_t *orig = read_whole(p, &len);
    uint64_t bad = record_offset(sizes, 2);

    /* Every byte of record 3: header fields and payload. */
    for (uint64_t at = bad; at < bad + WAL_RECORD_HEADER_BYTES + sizes[2]; at++) {
        orig[at] ^= 0x01;
        write_whole(p, orig, len);
        orig[at] ^= 0x01;
        collected c;
        wal_replay_report rep;
        replay_all(0, &c, &rep);
        assert_int_equal(c.n, 2);
        check_payload(&c.recs[0], sizes[0], 0);
        check_payload(&c.recs[1], sizes[1], 1);
        assert_int_equal(rep.last_seqno, 2);
        /* A damaged high byte of the length points past the end of the
         * last file: indistinguishable from a cut-off record, so it is
         * dropped as torn (documented limit). Every other byte: corrupt. */
        if (at > bad && at < bad + 4 && !rep.corrupt) {
            assert_int_equal(rep.torn_bytes, len - bad);
            collected_free(&c);
            continue;
        }
        assert_true(rep.corrupt);
        assert_int_equal(rep.corrupt_offset, bad);
        assert_int_equal(rep.bytes_lost, len - bad);
        assert_int_equal(rep.torn_bytes, 0);
        assert_non_null(strstr(rep.corrupt_file, "00000000000000000001.wal"));
        collected_free(&c);
    }
    free(orig);
}

static void wal_replay_bad_length_in_last_record_is_corrupt(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 1, NULL);
    append_n(w, 5, 1);
    append_n(w, 5, 2);
    wal_close(w);
    char p[PATH_MAX];
    file_path(p, 1);
    size_t len;
    uint8_t *b = read_whole(p, &len);
    uint64_t last = WAL_FILE_HEADER_BYTES + WAL_RECORD_HEADER_BYTES + 5;
    store_u32(b + last + WAL_REC_LENGTH_OFFSET, WAL_MAX_RECORD_BYTES + 1);
    write_whole(p, b, len);
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 1);
    assert_true(rep.corrupt);
    assert_int_equal(rep.corrupt_offset, last);
    collected_free(&c);
    free(b);
}

/* Crafted with the format constants: a seqno that skips within a file
 * is corruption even though every CRC is right. */
static void put_record(buf *b, uint64_t seqno, uint8_t type, const char *payload) {
    uint8_t hdr[WAL_RECORD_HEADER_BYTES];
    uint32_t len = (uint32_t)strlen(payload);
    store_u32(hdr + WAL_REC_LENGTH_OFFSET, len);
    store_u64(hdr + WAL_REC_SEQNO_OFFSET, seqno);
    hdr[WAL_REC_TYPE_OFFSET] = type;
    uint32_t crc = crc32c(payload, len);
    crc = crc32c_extend(crc, hdr, 4);
    crc = crc32c_extend(crc, hdr + WAL_REC_SEQNO_OFFSET, 9);
    store_u32(hdr + WAL_REC_CRC_OFFSET, crc);
    buf_append(b, hdr, sizeof hdr);
    buf_append(b, payload, len);
}

static void put_file_header(buf *b, uint64_t first) {
    uint8_t h[WAL_FILE_HEADER_BYTES];
    store_u32(h + WAL_FILE_MAGIC_OFFSET, WAL_FILE_MAGIC);
    store_u32(h + WAL_FILE_VERSION_OFFSET, WAL_FORMAT_VERSION);
    store_u64(h + WAL_FILE_FIRST_SEQNO_OFFSET, first);
    store_u32(h + WAL_FILE_CRC_OFFSET, crc32c(h, WAL_FILE_CRC_OFFSET));
    buf_append(b, h, sizeof h);
}

static void wal_replay_seqno_gap_is_corrupt(void **state) {
    (void)state;
    assert_int_equal(fio_mkdir_p(g_dir), 0);
    buf b = BUF_INIT;
    put_file_header(&b, 10);
    put_record(&b, 10, 1, "ten");
    put_record(&b, 12, 1, "twelve");
    put_record(&b, 13, 1, "thirteen");
    char p[PATH_MAX];
    file_path(p, 10);
    write_whole(p, b.data, b.len);
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 1);
    assert_memory_equal(c.recs[0].payload, "ten", 3);
    assert_true(rep.corrupt);
    assert_int_equal(rep.corrupt_offset, WAL_FILE_HEADER_BYTES + WAL_RECORD_HEADER_BYTES + 3);
    collected_free(&c);

    /* A file whose header disagrees with its name is corrupt too. */
    buf_reset(&b);
    put_file_header(&b, 11);
    put_record(&b, 11, 1, "x");
    write_whole(p, b.data, b.len);
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 0);
    assert_true(rep.corrupt);
    assert_int_equal(rep.corrupt_offset, 0);

    /* An unknown format version is refused, not guessed at. */
    buf_reset(&b);
    put_file_header(&b, 10);
    store_u32(b.data + WAL_FILE_VERSION_OFFSET, WAL_FORMAT_VERSION + 1);
    store_u32(b.data + WAL_FILE_CRC_OFFSET, crc32c(b.data, WAL_FILE_CRC_OFFSET));
    put_record(&b, 10, 1, "x");
    write_whole(p, b.data, b.len);
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 0);
    assert_true(rep.corrupt);
    buf_free(&b);
}

static void wal_replay_callback_error_stops_replay(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 1, NULL);
    for (int i = 0; i < 5; i++) append_n(w, 8, (uint64_t)i);
    wal_close(w);
    collected c = {.fail_at = 3};
    wal_replay_report rep;
    assert_int_equal(wal_replay(g_dir, 0, collect_fn, &c, &rep, NULL), -42);
    assert_int_equal(c.n, 2);
    assert_int_equal(rep.records, 2);
    collected_free(&c);
}

/* Small files force a rotation after every few records. */
static void wal_rotation_replay_across_files_and_delete_through(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_ALWAYS, 200, 1, NULL);
    for (uint64_t i = 1; i <= 20; i++) assert_int_equal(append_n(w, 50, i), i);
    wal_stats st;
    wal_stats_get(w, &st);
    /* 67 bytes a record, rotate once a file reaches 200 bytes: 3 records
     * per file (20 + 3 * 67 = 221), so files start at 1, 4, 7, ..., 19;
     * the last holds 19 and 20. */
    assert_int_equal(st.files, 7);
    assert_int_equal(count_files(".wal"), 7);
    char p[PATH_MAX];
    file_path(p, 19);
    assert_true(fio_exists(p));
    uint64_t total = 0;
    for (uint64_t f = 1; f <= 19; f += 3) {
        file_path(p, f);
        total += (uint64_t)fio_file_size(p);
    }
    assert_int_equal(st.disk_bytes, total);

    /* Replay across every file, and after a seqno. */
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 20);
    for (size_t i = 0; i < 20; i++) {
        assert_int_equal(c.recs[i].seqno, i + 1);
        check_payload(&c.recs[i], 50, i + 1);
    }
    collected_free(&c);
    replay_all(8, &c, &rep);
    assert_int_equal(c.n, 12);
    assert_int_equal(c.recs[0].seqno, 9);
    assert_int_equal(rep.last_seqno, 20);
    collected_free(&c);
    replay_all(20, &c, &rep);
    assert_int_equal(c.n, 0);
    assert_int_equal(rep.last_seqno, 20);
    collected_free(&c);

    /* Checkpoint 8: files 1..3 and 4..6 are wholly covered; 7..9 is not. */
    tdb_error err;
    assert_int_equal(wal_delete_through(w, 8, &err), 0);
    file_path(p, 4);
    assert_false(fio_exists(p));
    file_path(p, 7);
    assert_true(fio_exists(p));
    wal_stats_get(w, &st);
    assert_int_equal(st.files, 5);
    /* Exactly at a file's end: 9 covers 7..9. */
    assert_int_equal(wal_delete_through(w, 9, &err), 0);
    file_path(p, 7);
    assert_false(fio_exists(p));
    replay_all(9, &c, &rep);
    assert_int_equal(c.n, 11);
    assert_int_equal(c.recs[0].seqno, 10);
    assert_false(rep.corrupt);
    collected_free(&c);

    /* wal_rotate with records in the current file (19..21, under the size
     * limit) starts a new one; then
     * everything up to the checkpoint goes, except the current file. */
    assert_int_equal(append_n(w, 5, 21), 21);
    uint64_t next = 0;
    assert_int_equal(wal_rotate(w, &next, &err), 0);
    assert_int_equal(next, 22);
    assert_int_equal(wal_rotate(w, &next, &err), 0); /* current file empty: no-op */
    assert_int_equal(next, 22);
    assert_int_equal(wal_delete_through(w, UINT64_MAX, &err), 0);
    assert_int_equal(count_files(".wal"), 1);
    file_path(p, 22);
    assert_true(fio_exists(p));
    wal_stats_get(w, &st);
    assert_int_equal(st.files, 1);
    assert_int_equal(append_n(w, 5, 22), 22);
    wal_close(w);
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.recs[0].seqno, 22);
    collected_free(&c);
}

typedef struct writer_arg {
    wal *w;
    int id;
    uint64_t seqnos[200];
} writer_arg;

#define WRITERS 8
#define PER_WRITER 200

static void *writer_main(void *arg) {
    writer_arg *a = arg;
    for (int i = 0; i < PER_WRITER; i++) {
        uint8_t payload[16];
        store_u32(payload, (uint32_t)a->id);
        store_u32(payload + 4, (uint32_t)i);
        memset(payload + 8, a->id, 8);
        tdb_error err;
        if (wal_append(a->w, (uint8_t)a->id, payload, sizeof payload, &a->seqnos[i], &err) != 0)
            a->seqnos[i] = 0;
    }
    return NULL;
}

static void wal_concurrent_appenders_share_fsyncs(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_ALWAYS, 8 << 10, 1, NULL); /* rotates too */
    wal_stats before;
    wal_stats_get(w, &before);
    static writer_arg args[WRITERS];
    pthread_t th[WRITERS];
    for (int t = 0; t < WRITERS; t++) {
        args[t].w = w;
        args[t].id = t;
        assert_int_equal(pthread_create(&th[t], NULL, writer_main, &args[t]), 0);
    }
    for (int t = 0; t < WRITERS; t++) pthread_join(th[t], NULL);
    wal_stats st;
    wal_stats_get(w, &st);
    wal_close(w);

    /* Each writer saw strictly rising seqnos; together exactly 1..N. */
    static uint8_t seen[WRITERS * PER_WRITER + 1];
    memset(seen, 0, sizeof seen);
    for (int t = 0; t < WRITERS; t++)
        for (int i = 0; i < PER_WRITER; i++) {
            uint64_t s = args[t].seqnos[i];
            assert_true(s >= 1 && s <= WRITERS * PER_WRITER);
            if (i > 0) assert_true(s > args[t].seqnos[i - 1]);
            assert_int_equal(seen[s], 0);
            seen[s] = 1;
        }
    assert_int_equal(st.records, WRITERS * PER_WRITER);
    /* Group commit: writers that arrive during an fsync share the next.
     * Each rotation adds three fsyncs (old file, new file, directory). */
    assert_true(st.files > 1);
    assert_true(st.fsyncs - before.fsyncs - 3 * (st.files - 1) < st.records);
    print_message("%llu records, %llu fsyncs\n", (unsigned long long)st.records,
                  (unsigned long long)(st.fsyncs - before.fsyncs));

    /* Replay agrees with what each writer was told. */
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, WRITERS * PER_WRITER);
    for (size_t k = 0; k < c.n; k++) {
        assert_int_equal(c.recs[k].seqno, k + 1);
        uint32_t id = load_u32(c.recs[k].payload), i = load_u32(c.recs[k].payload + 4);
        assert_true(id < WRITERS && i < PER_WRITER);
        assert_int_equal(args[id].seqnos[i], k + 1);
        assert_int_equal(c.recs[k].type, id);
    }
    collected_free(&c);
}

typedef struct one_append {
    wal *w;
    uint64_t seqno;
    int rc;
} one_append;

static void *one_append_main(void *arg) {
    one_append *a = arg;
    tdb_error err;
    a->rc = wal_append(a->w, 7, "group", 5, &a->seqno, &err);
    return NULL;
}

/* Writer 0 becomes the leader and is held inside its fsync; seven more
 * writers append meanwhile and queue for the sync. When the leader is let
 * go, one more fsync covers all seven: 2 fsyncs for 8 records. */
static void wal_group_commit_one_fsync_covers_waiting_writers(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_ALWAYS, 0, 1, NULL);
    wal_stats before, st;
    wal_stats_get(w, &before);
    one_append a[8];
    pthread_t th[8];
    pthread_mutex_lock(&g_fs_mu);
    g_fs_armed = true;
    g_fs_inside = g_fs_open = false;
    pthread_mutex_unlock(&g_fs_mu);

    a[0] = (one_append){.w = w};
    assert_int_equal(pthread_create(&th[0], NULL, one_append_main, &a[0]), 0);
    pthread_mutex_lock(&g_fs_mu);
    while (!g_fs_inside) pthread_cond_wait(&g_fs_cv, &g_fs_mu);
    pthread_mutex_unlock(&g_fs_mu);

    for (int i = 1; i < 8; i++) {
        a[i] = (one_append){.w = w};
        assert_int_equal(pthread_create(&th[i], NULL, one_append_main, &a[i]), 0);
    }
    /* All eight records written (the seven wait for the sync). */
    uint64_t deadline = now_ns() + POLL_DEADLINE_NS;
    do {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        wal_stats_get(w, &st);
    } while (st.records < 8 && now_ns() < deadline);
    assert_int_equal(st.records, 8);
    assert_int_equal(st.fsyncs, before.fsyncs); /* the held one is counted when it returns */

    pthread_mutex_lock(&g_fs_mu);
    g_fs_open = true;
    pthread_cond_broadcast(&g_fs_cv);
    pthread_mutex_unlock(&g_fs_mu);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);

    wal_stats_get(w, &st);
    assert_int_equal(st.fsyncs - before.fsyncs, 2);
    assert_int_equal(a[0].seqno, 1);
    uint8_t seen[9] = {0};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(a[i].rc, 0);
        assert_true(a[i].seqno >= 1 && a[i].seqno <= 8);
        assert_int_equal(seen[a[i].seqno]++, 0);
    }
    wal_close(w);
}

static void wal_append_fsync_fails_is_sticky_readonly(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_ALWAYS, 0, 1, NULL);
    uint64_t before = fio_calls();
    append_n(w, 10, 1);
    uint64_t per_append = fio_calls() - before; /* the write, then the fsync */
    assert_int_equal(per_append, 2);
    fio_fault_set(per_append, EIO, false); /* the next append's fsync */
    tdb_error err;
    uint8_t b[4] = {1, 2, 3, 4};
    assert_int_equal(wal_append(w, 1, b, 4, NULL, &err), TDB_EREADONLY);
    assert_non_null(strstr(err.message, "read-only until restarted"));
    fio_fault_clear();
    assert_true(wal_failed(w));
    /* Sticky: no later call succeeds, and nothing retries the fsync. */
    uint64_t calls = fio_calls();
    assert_int_equal(wal_append(w, 1, b, 4, NULL, &err), TDB_EREADONLY);
    assert_int_equal(wal_sync(w, &err), TDB_EREADONLY);
    uint64_t next = 0;
    assert_int_equal(wal_rotate(w, &next, &err), TDB_EREADONLY);
    assert_int_equal(fio_calls(), calls);
    wal_stats st;
    wal_stats_get(w, &st);
    assert_int_equal(st.records, 2);
    wal_close(w);
}

static void wal_interval_sync_failure_fails_later_appends(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_INTERVAL, 0, 1, NULL);
    fio_fault_set(2, EIO, true); /* the write passes, the background fsync fails */
    append_n(w, 10, 1);
    struct timespec ts = {0, 2000000};
    for (int i = 0; i < 5000 && !wal_failed(w); i++) nanosleep(&ts, NULL); /* poll, deadline 10 s */
    fio_fault_clear();
    assert_true(wal_failed(w));
    tdb_error err;
    assert_int_equal(wal_append(w, 1, "x", 1, NULL, &err), TDB_EREADONLY);
    wal_close(w);
}

static void wal_interval_policy_fsyncs_in_background(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_INTERVAL, 0, 1, NULL);
    wal_stats st0, st;
    wal_stats_get(w, &st0);
    append_n(w, 10, 1);
    wal_stats_get(w, &st);
    struct timespec ts = {0, 2000000};
    for (int i = 0; i < 5000 && st.fsyncs == st0.fsyncs; i++) {
        nanosleep(&ts, NULL); /* polling with a 10 s deadline */
        wal_stats_get(w, &st);
    }
    assert_true(st.fsyncs > st0.fsyncs);
    wal_close(w);
}

static void wal_none_policy_fsyncs_only_on_request(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 1, NULL);
    wal_stats st0, st;
    wal_stats_get(w, &st0);
    for (int i = 0; i < 10; i++) append_n(w, 10, (uint64_t)i);
    wal_stats_get(w, &st);
    assert_int_equal(st.fsyncs, st0.fsyncs);
    tdb_error err;
    assert_int_equal(wal_sync(w, &err), 0);
    wal_stats_get(w, &st);
    assert_int_equal(st.fsyncs, st0.fsyncs + 1);
    assert_int_equal(wal_sync(w, &err), 0); /* nothing new: no fsync */
    wal_stats_get(w, &st);
    assert_int_equal(st.fsyncs, st0.fsyncs + 1);
    wal_close(w);
}

/* A failed write is cut back off; the WAL stays usable and the seqno is
 * not consumed. */
static void wal_append_write_failure_is_eio_and_wal_continues(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_ALWAYS, 0, 1, NULL);
    assert_int_equal(append_n(w, 10, 1), 1);
    fio_fault_set(1, ENOSPC, false);
    tdb_error err;
    assert_int_equal(wal_append(w, 1, "abc", 3, NULL, &err), TDB_EIO);
    assert_false(wal_failed(w));
    assert_int_equal(append_n(w, 10, 2), 2);
    wal_close(w);
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 2);
    assert_false(rep.corrupt);
    assert_int_equal(rep.torn_bytes, 0);
    collected_free(&c);
}

static void wal_reopen_after_torn_tail_truncates_and_appends_continue(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_ALWAYS, 0, 1, NULL);
    for (uint64_t i = 1; i <= 3; i++) append_n(w, 20, i);
    wal_close(w);
    char p[PATH_MAX];
    file_path(p, 1);
    size_t len;
    uint8_t *b = read_whole(p, &len);
    write_whole(p, b, len - 5); /* the last record loses its tail */
    free(b);

    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 2);
    assert_int_equal(rep.torn_bytes, WAL_RECORD_HEADER_BYTES + 20 - 5);
    collected_free(&c);

    w = open_wal(TDB_FSYNC_ALWAYS, 0, rep.last_seqno + 1, &rep);
    assert_int_equal(fio_file_size(p), WAL_FILE_HEADER_BYTES + 2 * (WAL_RECORD_HEADER_BYTES + 20));
    assert_int_equal(append_n(w, 20, 4), 3);
    assert_int_equal(append_n(w, 20, 5), 4);
    wal_close(w);

    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 4);
    assert_int_equal(rep.torn_bytes, 0);
    assert_false(rep.corrupt);
    for (size_t i = 0; i < 4; i++) assert_int_equal(c.recs[i].seqno, i + 1);
    check_payload(&c.recs[2], 20, 4);
    collected_free(&c);
    assert_int_equal(count_files(".wal"), 2);
}

static void wal_reopen_after_torn_header_removes_empty_file(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 1, NULL);
    append_n(w, 20, 1);
    wal_close(w);
    /* A crash while creating the next file left half a header. */
    char p[PATH_MAX];
    file_path(p, 2);
    write_whole(p, "TWAL\1\0", 6);
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 1);
    assert_int_equal(rep.torn_bytes, 6);
    assert_false(rep.corrupt);
    collected_free(&c);
    w = open_wal(TDB_FSYNC_NONE, 0, 2, &rep);
    assert_int_equal(fio_file_size(p), WAL_FILE_HEADER_BYTES); /* recreated, whole */
    assert_int_equal(append_n(w, 20, 2), 2);
    wal_close(w);
    replay_all(0, &c, &rep);
    assert_int_equal(c.n, 2);
    assert_int_equal(rep.torn_bytes, 0);
    collected_free(&c);
}

static void wal_reopen_after_corruption_moves_files_aside(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_NONE, 200, 1, NULL);
    for (uint64_t i = 1; i <= 12; i++) append_n(w, 50, i); /* files 1, 4, 7, 10, 13 */
    wal_close(w);
    /* Damage record 5 (second record of file 4). */
    char p[PATH_MAX];
    file_path(p, 4);
    size_t len;
    uint8_t *b = read_whole(p, &len);
    uint64_t off = WAL_FILE_HEADER_BYTES + WAL_RECORD_HEADER_BYTES + 50;
    b[off + WAL_RECORD_HEADER_BYTES + 10] ^= 0xff;
    write_whole(p, b, len);
    free(b);

    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_true(rep.corrupt);
    assert_int_equal(c.n, 4); /* 1..3 and 4 */
    assert_int_equal(rep.last_seqno, 4);
    assert_int_equal(rep.corrupt_offset, off);
    /* Lost: the rest of file 4, files 7 and 10 (3 records each) and the
     * header-only file 13. */
    uint64_t rec_bytes = WAL_RECORD_HEADER_BYTES + 50;
    assert_int_equal(rep.bytes_lost, (len - off) + 2 * (WAL_FILE_HEADER_BYTES + 3 * rec_bytes) +
                                         WAL_FILE_HEADER_BYTES);
    collected_free(&c);

    /* (The engine flushes records 1..4 before this; the test only checks
     * the files.) */
    w = open_wal(TDB_FSYNC_NONE, 200, rep.last_seqno + 1, &rep);
    assert_int_equal(count_files(".corrupt"), 4);
    pathf(p, "%s/%020llu.wal.corrupt", g_dir, 4ull);
    assert_true(fio_exists(p));
    assert_int_equal(append_n(w, 50, 100), 5);
    wal_close(w);

    replay_all(0, &c, &rep);
    assert_false(rep.corrupt);
    assert_int_equal(rep.torn_bytes, 0);
    assert_int_equal(c.n, 4); /* file 1 (1..3) and the new file (5) */
    assert_int_equal(c.recs[2].seqno, 3);
    assert_int_equal(c.recs[3].seqno, 5);
    check_payload(&c.recs[3], 50, 100);
    collected_free(&c);
}

static void wal_replay_cut_record_in_non_last_file_is_corrupt(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_NONE, 200, 1, NULL);
    for (uint64_t i = 1; i <= 5; i++) append_n(w, 50, i); /* files 1 (1..3), 4 (4, 5) */
    wal_close(w);
    char p[PATH_MAX];
    file_path(p, 1);
    size_t len;
    uint8_t *b = read_whole(p, &len);
    write_whole(p, b, len - 3);
    free(b);
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    assert_true(rep.corrupt);
    assert_int_equal(rep.torn_bytes, 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(rep.corrupt_offset, WAL_FILE_HEADER_BYTES + 2 * (WAL_RECORD_HEADER_BYTES + 50));
    collected_free(&c);
}

static void wal_open_rejects_next_seqno_not_after_log(void **state) {
    (void)state;
    wal *w = open_wal(TDB_FSYNC_NONE, 0, 1, NULL);
    append_n(w, 5, 1);
    append_n(w, 5, 2);
    wal_close(w);
    collected c;
    wal_replay_report rep;
    replay_all(0, &c, &rep);
    collected_free(&c);
    wal_options o = {.fsync = TDB_FSYNC_NONE};
    tdb_error err;
    assert_int_equal(wal_open(g_dir, &o, 2, &rep, &w, &err), TDB_EINVAL);
    assert_null(w);
    assert_int_equal(wal_open(g_dir, &o, 1, NULL, &w, &err), TDB_EINVAL);
    assert_int_equal(wal_open(g_dir, &o, 0, NULL, &w, &err), TDB_EINVAL);
    /* A reopen without a report scans by itself. */
    assert_int_equal(wal_open(g_dir, &o, 3, NULL, &w, &err), 0);
    assert_int_equal(append_n(w, 5, 3), 3);
    wal_close(w);
    wal_close(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(wal_append_replay_round_trip),
        T(wal_empty_and_huge_records_round_trip),
        T(wal_append_rejects_record_over_limit),
        T(wal_replay_missing_or_empty_dir_is_empty_log),
        T(wal_replay_drops_torn_tail_at_every_byte),
        T(wal_replay_zero_filled_tail_is_torn),
        T(wal_replay_reports_flipped_byte_mid_log),
        T(wal_replay_bad_length_in_last_record_is_corrupt),
        T(wal_replay_seqno_gap_is_corrupt),
        T(wal_replay_callback_error_stops_replay),
        T(wal_rotation_replay_across_files_and_delete_through),
        T(wal_concurrent_appenders_share_fsyncs),
        T(wal_group_commit_one_fsync_covers_waiting_writers),
        T(wal_append_fsync_fails_is_sticky_readonly),
        T(wal_interval_sync_failure_fails_later_appends),
        T(wal_interval_policy_fsyncs_in_background),
        T(wal_none_policy_fsyncs_only_on_request),
        T(wal_append_write_failure_is_eio_and_wal_continues),
        T(wal_reopen_after_torn_tail_truncates_and_appends_continue),
        T(wal_reopen_after_torn_header_removes_empty_file),
        T(wal_reopen_after_corruption_moves_files_aside),
        T(wal_replay_cut_record_in_non_last_file_is_corrupt),
        T(wal_open_rejects_next_seqno_not_after_log),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
