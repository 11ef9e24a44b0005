/*
 * test_manifest.c: MANIFEST round trips, absent and empty manifests,
 * damage (flipped bytes, truncation, hostile counts) found as corruption,
 * and a failed replace keeping the old MANIFEST intact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/manifest.h"
#include "util/buf.h"
#include "util/crc32c.h"
#include "util/fileio.h"

static char g_dir[PATH_MAX];
static char g_path[PATH_MAX];

static int setup(void **state) {
    (void)state;
    const char *base = getenv("TDB_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    if (fio_mkdir_p(base) < 0) return -1;
    snprintf(g_dir, sizeof g_dir, "%.200s/manifest-XXXXXX", base);
    if (mkdtemp(g_dir) == NULL) return -1;
    snprintf(g_path, sizeof g_path, "%.300s/MANIFEST", g_dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fio_fault_clear();
    return fio_rmtree(g_dir) == 0 ? 0 : -1;
}

/* A sample manifest: three segments, the middle one without deletes. */
static uint32_t del_a[] = {0, 5, 99};
static uint32_t del_c[] = {7};

static manifest sample(uint64_t generation) {
    static manifest_segment segs[3];
    segs[0] = (manifest_segment){.id = 3, .rows = 100, .size_bytes = 4096, .deleted = del_a,
                                 .deleted_count = 3};
    segs[1] = (manifest_segment){.id = 9, .rows = 1, .size_bytes = 128};
    segs[2] = (manifest_segment){.id = 4, .rows = 8, .size_bytes = 1u << 20, .deleted = del_c,
                                 .deleted_count = 1};
    return (manifest){.generation = generation, .checkpoint_seqno = 12345,
                      .next_segment_id = 10, .segments = segs, .segment_count = 3};
}

static void assert_manifest_equal(const manifest *a, const manifest *b) {
    assert_int_equal(a->generation, b->generation);
    assert_int_equal(a->checkpoint_seqno, b->checkpoint_seqno);
    assert_int_equal(a->next_segment_id, b->next_segment_id);
    assert_int_equal(a->segment_count, b->segment_count);
    for (size_t i = 0; i < a->segment_count; i++) {
        const manifest_segment *x = &a->segments[i], *y = &b->segments[i];
        assert_int_equal(x->id, y->id);
        assert_int_equal(x->rows, y->rows);
        assert_int_equal(x->size_bytes, y->size_bytes);
        assert_int_equal(x->deleted_count, y->deleted_count);
        if (x->deleted_count) assert_memory_equal(x->deleted, y->deleted, x->deleted_count * 4);
    }
}

static uint8_t *read_whole(size_t *len) {
    char *d;
    assert_int_equal(fio_read_file(g_path, &d, len), 0);
    return (uint8_t *)d;
}

static void write_whole(const void *data, size_t len) {
    FILE *f = fopen(g_path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void expect_corrupt(void) {
    manifest m;
    tdb_error err = {0};
    assert_int_equal(manifest_load(g_dir, &m, &err), TDB_ECORRUPT);
    assert_int_equal(err.code, TDB_ECORRUPT);
    assert_non_null(strstr(err.message, "MANIFEST"));
    /* Nothing handed out on failure. */
    assert_int_equal(m.segment_count, 0);
    assert_null(m.segments);
}

static void manifest_round_trip(void **state) {
    (void)state;
    manifest in = sample(7), out;
    tdb_error err;
    assert_int_equal(manifest_store(g_dir, &in, &err), 0);
    assert_int_equal(manifest_load(g_dir, &out, &err), 0);
    assert_manifest_equal(&in, &out);
    manifest_clear(&out);
    assert_int_equal(out.segment_count, 0);
    manifest_clear(&out); /* twice is harmless */
    manifest_clear(NULL);
    /* 36 header + 3 * 28 + 4 deleted rows * 4 + 4 CRC */
    assert_int_equal(fio_file_size(g_path), 36 + 3 * 28 + 4 * 4 + 4);
}

static void manifest_absent_is_empty(void **state) {
    (void)state;
    manifest m;
    tdb_error err;
    assert_int_equal(manifest_load(g_dir, &m, &err), 0);
    assert_int_equal(m.segment_count, 0);
    assert_null(m.segments);
    assert_int_equal(m.generation, 0);
    assert_int_equal(m.checkpoint_seqno, 0);
    assert_int_equal(m.next_segment_id, 1);
    char missing[PATH_MAX];
    snprintf(missing, sizeof missing, "%.300s/nope", g_dir);
    assert_int_equal(manifest_load(missing, &m, &err), 0);
    assert_int_equal(m.segment_count, 0);
}

static void manifest_without_segments_round_trips(void **state) {
    (void)state;
    manifest in = {.generation = 1, .checkpoint_seqno = 0, .next_segment_id = 1}, out;
    tdb_error err;
    assert_int_equal(manifest_store(g_dir, &in, &err), 0);
    assert_int_equal(fio_file_size(g_path), 40);
    assert_int_equal(manifest_load(g_dir, &out, &err), 0);
    assert_manifest_equal(&in, &out);
    assert_null(out.segments);
    manifest_clear(&out);
}

static void manifest_flipped_byte_is_corrupt(void **state) {
    (void)state;
    manifest in = sample(2);
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    size_t len;
    uint8_t *orig = read_whole(&len);
    for (size_t at = 0; at < len; at++) {
        for (int bit = 0; bit < 8; bit += 3) {
            orig[at] ^= (uint8_t)(1u << bit);
            write_whole(orig, len);
            orig[at] ^= (uint8_t)(1u << bit);
            expect_corrupt();
        }
    }
    free(orig);
}

static void manifest_truncated_is_corrupt(void **state) {
    (void)state;
    manifest in = sample(3);
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    size_t len;
    uint8_t *orig = read_whole(&len);
    for (size_t cut = 0; cut < len; cut++) {
        write_whole(orig, cut);
        expect_corrupt();
    }
    /* A byte too many is as wrong as one too few. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, orig, len);
    longer[len] = 0;
    write_whole(longer, len + 1);
    expect_corrupt();
    free(longer);
    free(orig);
}

/* Rewrites the stored file with field patched at off and a fresh CRC, as
 * a hostile (or buggy) writer would: the checksum alone cannot save us. */
static void patch_u32_and_reseal(size_t off, uint32_t v) {
    size_t len;
    uint8_t *b = read_whole(&len);
    store_u32(b + off, v);
    store_u32(b + len - 4, crc32c(b, len - 4));
    write_whole(b, len);
    free(b);
}

static void patch_u64_and_reseal(size_t off, uint64_t v) {
    size_t len;
    uint8_t *b = read_whole(&len);
    store_u64(b + off, v);
    store_u32(b + len - 4, crc32c(b, len - 4));
    write_whole(b, len);
    free(b);
}

static void manifest_hostile_counts_are_corrupt_not_allocated(void **state) {
    (void)state;
    manifest in = sample(4);
    tdb_error err;
    /* Segment count far beyond the bytes present. */
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    patch_u32_and_reseal(32, 0xFFFFFFFFu);
    expect_corrupt();
    /* A deleted count beyond the bytes present. */
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    patch_u32_and_reseal(36 + 24, 0x40000000u);
    expect_corrupt();
    /* Fewer segments than entries present: trailing bytes. */
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    patch_u32_and_reseal(32, 2);
    expect_corrupt();
    /* A deleted row at or past rows. */
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    patch_u32_and_reseal(36 + 28 + 8, 100);
    expect_corrupt();
    /* Deleted rows not rising. */
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    patch_u32_and_reseal(36 + 28 + 4, 0); /* equal to the first */
    expect_corrupt();
    /* Duplicate segment id. */
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    patch_u64_and_reseal(36 + 28 + 12, 3);
    expect_corrupt();
    /* Segment id not below next_segment_id. */
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    patch_u64_and_reseal(24, 9);
    expect_corrupt();
    /* An unknown version is refused with a message saying so. */
    assert_int_equal(manifest_store(g_dir, &in, NULL), 0);
    patch_u32_and_reseal(4, 2);
    manifest m;
    assert_int_equal(manifest_load(g_dir, &m, &err), TDB_ECORRUPT);
    assert_non_null(strstr(err.message, "version 2"));
}

static void manifest_store_refuses_inconsistent_manifest(void **state) {
    (void)state;
    manifest in = sample(5);
    tdb_error err;
    in.next_segment_id = 9; /* segment 9 is listed */
    assert_int_equal(manifest_store(g_dir, &in, &err), TDB_EINTERNAL);
    in = sample(5);
    in.segments[1].id = 3; /* duplicate */
    assert_int_equal(manifest_store(g_dir, &in, &err), TDB_EINTERNAL);
    in = sample(5);
    uint32_t unsorted[] = {5, 2};
    in.segments[0].deleted = unsorted;
    in.segments[0].deleted_count = 2;
    assert_int_equal(manifest_store(g_dir, &in, &err), TDB_EINTERNAL);
    assert_false(fio_exists(g_path));
}

/* The rename is the commit point: when it fails, the old MANIFEST is
 * what a reader (or the next open) sees, whole. */
static void manifest_rename_failure_keeps_old(void **state) {
    (void)state;
    manifest old = sample(10), neu = sample(11), got;
    neu.checkpoint_seqno = 99999;
    tdb_error err;
    assert_int_equal(manifest_store(g_dir, &old, &err), 0);
    uint64_t before = fio_calls();
    assert_int_equal(manifest_store(g_dir, &old, &err), 0);
    /* open, write, fsync, rename, directory fsync */
    assert_int_equal(fio_calls() - before, 5);

    fio_fault_set(4, EXDEV, false);
    assert_int_equal(manifest_store(g_dir, &neu, &err), TDB_EIO);
    fio_fault_clear();
    assert_non_null(strstr(err.message, "MANIFEST"));
    assert_int_equal(manifest_load(g_dir, &got, &err), 0);
    assert_manifest_equal(&old, &got);
    manifest_clear(&got);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%.300s/MANIFEST.tmp", g_dir);
    assert_false(fio_exists(tmp));

    /* Every other step too: old or new, whole, never a mix. */
    for (uint64_t n = 1; n <= 5; n++) {
        assert_int_equal(manifest_store(g_dir, &old, &err), 0);
        fio_fault_set(n, EIO, false);
        assert_int_equal(manifest_store(g_dir, &neu, &err), TDB_EIO);
        fio_fault_clear();
        assert_int_equal(manifest_load(g_dir, &got, &err), 0);
        assert_manifest_equal(n < 5 ? &old : &neu, &got); /* 5: renamed, dir fsync failed */
        manifest_clear(&got);
    }
    assert_int_equal(manifest_store(g_dir, &neu, &err), 0);
    assert_int_equal(manifest_load(g_dir, &got, &err), 0);
    assert_manifest_equal(&neu, &got);
    manifest_clear(&got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(manifest_round_trip),
        T(manifest_absent_is_empty),
        T(manifest_without_segments_round_trips),
        T(manifest_flipped_byte_is_corrupt),
        T(manifest_truncated_is_corrupt),
        T(manifest_hostile_counts_are_corrupt_not_allocated),
        T(manifest_store_refuses_inconsistent_manifest),
        T(manifest_rename_failure_keeps_old),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
