/*
 * test_local.c: the object store on file:// (objstore.c + local.c): every
 * operation, pagination over more than 1,000 objects, key and URL rules,
 * CRC32C mismatches after tampering, and fault injection through the
 * fileio seam (no partial object, no temporary left behind), and the
 * counters behind /metrics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "objstore/objstore.h"
#include "util/crc32c.h"
#include "util/fileio.h"

static char g_dir[PATH_MAX];   /* scratch directory of this run */
static char g_root[PATH_MAX];  /* the store's directory */
static char g_url[PATH_MAX + 8];

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
    snprintf(g_dir, sizeof g_dir, "%.200s/objstore-local-XXXXXX", base);
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    fio_fault_clear();
    return fio_rmtree(g_dir) == 0 ? 0 : -1;
}

/* A fresh store per test, in its own directory. */
static objstore *open_store_opts(const char *name, bool fsync) {
    pathf(g_root, "%s/%s", g_dir, name);
    snprintf(g_url, sizeof g_url, "file://%s", g_root);
    objstore *s = NULL;
    tdb_error err;
    objstore_options o;
    objstore_options_default(&o);
    o.fsync = fsync;
    int rc = objstore_open(g_url, &o, &s, &err);
    if (rc != 0) fail_msg("objstore_open(%s): %s", g_url, err.message);
    assert_int_equal(objstore_check(s, &err), 0);
    return s;
}

static objstore *open_store(const char *name) { return open_store_opts(name, true); }

static void fill(uint8_t *p, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void assert_object_is(objstore *s, const char *key, const void *data, size_t len) {
    void *got = NULL;
    size_t got_len = 0;
    tdb_error err;
    int rc = objstore_get(s, key, &got, &got_len, &err);
    if (rc != 0) fail_msg("get %s: %s", key, err.message);
    assert_int_equal(got_len, len);
    if (len) assert_memory_equal(got, data, len);
    assert_int_equal(((char *)got)[len], '\0');
    free(got);
}

/* Counts files whose name starts with ".tmp-" anywhere under dir. */
static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[PATH_MAX];
        pathf(p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) n += count_temps(p);
        else if (strncmp(e->d_name, ".tmp-", 5) == 0) n++;
    }
    closedir(d);
    return n;
}

static void local_put_get_head_delete_roundtrip(void **state) {
    (void)state;
    objstore *s = open_store("roundtrip");
    tdb_error err;
    uint8_t data[5000];
    fill(data, sizeof data, 1);
    assert_int_equal(objstore_put(s, "coll/seg/000001.seg", data, sizeof data, &err), 0);
    assert_object_is(s, "coll/seg/000001.seg", data, sizeof data);

    objstore_info info;
    assert_int_equal(objstore_head(s, "coll/seg/000001.seg", &info, &err), 0);
    assert_int_equal(info.size_bytes, sizeof data);
    assert_true(info.has_crc32c);
    assert_int_equal(info.crc32c, crc32c(data, sizeof data));

    /* Replacing keeps one whole object, the new one. */
    assert_int_equal(objstore_put(s, "coll/seg/000001.seg", "short", 5, &err), 0);
    assert_object_is(s, "coll/seg/000001.seg", "short", 5);

    /* The empty object exists and reads back empty. */
    assert_int_equal(objstore_put(s, "empty", NULL, 0, &err), 0);
    assert_object_is(s, "empty", "", 0);
    assert_int_equal(objstore_head(s, "empty", &info, &err), 0);
    assert_int_equal(info.size_bytes, 0);

    assert_int_equal(objstore_delete(s, "coll/seg/000001.seg", &err), 0);
    assert_int_equal(objstore_head(s, "coll/seg/000001.seg", &info, &err), TDB_ENOTFOUND);
    assert_string_equal(err.name, "object_not_found");
    /* Deleting removed the now empty directories, not the root. */
    char p[PATH_MAX];
    pathf(p, "%s/coll", g_root);
    assert_false(fio_exists(p));
    assert_true(fio_exists(g_root));
    /* Deleting an absent key succeeds (retried deletes are harmless). */
    assert_int_equal(objstore_delete(s, "coll/seg/000001.seg", &err), 0);
    assert_int_equal(count_temps(g_root), 0);
    objstore_close(s);
}

static void local_missing_object_is_not_found(void **state) {
    (void)state;
    objstore *s = open_store("missing");
    tdb_error err;
    void *data = (void *)1;
    size_t len = 7;
    assert_int_equal(objstore_get(s, "nope/x", &data, &len, &err), TDB_ENOTFOUND);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err.message, "nope/x"));
    objstore_info info;
    assert_int_equal(objstore_head(s, "nope", &info, &err), TDB_ENOTFOUND);
    char buf[4];
    size_t got = 9;
    assert_int_equal(objstore_get_range(s, "nope", 0, 4, buf, &got, &err), TDB_ENOTFOUND);
    assert_int_equal(got, 0);
    /* A directory is not an object. */
    assert_int_equal(objstore_put(s, "d/x", "1", 1, &err), 0);
    assert_int_equal(objstore_head(s, "d", &info, &err), TDB_ENOTFOUND);
    assert_int_equal(objstore_get(s, "d/x/y", &data, &len, &err), TDB_ENOTFOUND);
    objstore_close(s);
}

static void local_put_file_and_get_file_stream(void **state) {
    (void)state;
    objstore *s = open_store("files");
    tdb_error err;
    size_t n = (3u << 20) + 12345; /* several I/O chunks and a partial one */
    uint8_t *data = malloc(n);
    assert_non_null(data);
    fill(data, n, 2);
    char src[PATH_MAX], dst[PATH_MAX];
    pathf(src, "%s/upload.bin", g_dir);
    pathf(dst, "%s/download.bin", g_dir);
    assert_int_equal(fio_write_file_atomic(src, data, n), 0);
    assert_int_equal(objstore_put_file(s, "big/file.bin", src, &err), 0);
    assert_int_equal(objstore_get_file(s, "big/file.bin", dst, &err), 0);
    char *back;
    size_t back_len;
    assert_int_equal(fio_read_file(dst, &back, &back_len), 0);
    assert_int_equal(back_len, n);
    assert_memory_equal(back, data, n);
    free(back);
    /* No temporary beside the download, none in the store. */
    assert_int_equal(count_temps(g_root), 0);
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) assert_null(strstr(e->d_name, ".tmp-"));
    closedir(d);
    /* A missing source file is reported as such. */
    char none[PATH_MAX];
    pathf(none, "%s/no-such-file", g_dir);
    assert_int_equal(objstore_put_file(s, "x", none, &err), TDB_EIO);
    assert_non_null(strstr(err.message, "no-such-file"));
    free(data);
    objstore_close(s);
}

static void local_get_range_reads_parts(void **state) {
    (void)state;
    objstore *s = open_store("range");
    tdb_error err;
    uint8_t data[1000];
    fill(data, sizeof data, 3);
    assert_int_equal(objstore_put(s, "r", data, sizeof data, &err), 0);
    uint8_t out[300];
    size_t got;
    assert_int_equal(objstore_get_range(s, "r", 100, 300, out, &got, &err), 0);
    assert_int_equal(got, 300);
    assert_memory_equal(out, data + 100, 300);
    assert_int_equal(objstore_get_range(s, "r", 900, 300, out, &got, &err), 0);
    assert_int_equal(got, 100); /* short at the end */
    assert_memory_equal(out, data + 900, 100);
    assert_int_equal(objstore_get_range(s, "r", 1000, 10, out, &got, &err), 0);
    assert_int_equal(got, 0);
    assert_int_equal(objstore_get_range(s, "r", 5000, 10, out, &got, &err), 0);
    assert_int_equal(got, 0);
    assert_int_equal(objstore_get_range(s, "r", 0, 0, out, &got, &err), 0);
    assert_int_equal(got, 0);
    objstore_close(s);
}

static void local_list_paginates_over_1000_objects(void **state) {
    (void)state;
    objstore *s = open_store_opts("list", false); /* 1,200 fsyncs would be most of the run */
    tdb_error err;
    const int total = 1234;
    char key[64];
    for (int i = 0; i < total; i++) {
        snprintf(key, sizeof key, "c1/obj-%05d", i);
        assert_int_equal(objstore_put(s, key, key, strlen(key), &err), 0);
    }
    /* Neighbours that must not show up under the prefix "c1/". */
    assert_int_equal(objstore_put(s, "c10/x", "x", 1, &err), 0);
    assert_int_equal(objstore_put(s, "c2/y", "y", 1, &err), 0);
    /* Byte order, not directory order: "c1/obj-" < "c1/obj/" < "c1/objz". */
    assert_int_equal(objstore_put(s, "c1/obj/nested", "n", 1, &err), 0);
    assert_int_equal(objstore_put(s, "c1/objz", "z", 1, &err), 0);

    char *after = NULL;
    int seen = 0, pages = 0;
    char last[128] = "";
    for (;;) {
        objstore_page page;
        int rc = objstore_list(s, "c1/", after, 0, &page, &err);
        if (rc != 0) fail_msg("list: %s", err.message);
        pages++;
        assert_true(page.count <= OBJSTORE_MAX_LIST_KEYS);
        for (size_t i = 0; i < page.count; i++) {
            const char *k = page.entries[i].key;
            assert_true(strncmp(k, "c1/", 3) == 0);
            assert_true(strcmp(k, last) > 0); /* ascending, no repeats across pages */
            if (strncmp(k, "c1/obj-", 7) == 0) assert_int_equal(page.entries[i].size_bytes, strlen(k));
            snprintf(last, sizeof last, "%s", k);
            seen++;
        }
        free(after);
        after = page.next ? strdup(page.next) : NULL;
        objstore_page_free(&page);
        if (after == NULL) break;
    }
    assert_int_equal(seen, total + 2);
    assert_int_equal(pages, 2);
    assert_string_equal(last, "c1/objz");

    /* Small pages, a start key that is not an object, and max_keys. */
    objstore_page page;
    assert_int_equal(objstore_list(s, "c1/obj-0", "c1/obj-00009x", 3, &page, &err), 0);
    assert_int_equal(page.count, 3);
    assert_string_equal(page.entries[0].key, "c1/obj-00010");
    assert_string_equal(page.entries[2].key, "c1/obj-00012");
    assert_string_equal(page.next, "c1/obj-00012");
    objstore_page_free(&page);
    assert_int_equal(objstore_list(s, "c1/obj/", NULL, 10, &page, &err), 0);
    assert_int_equal(page.count, 1);
    assert_string_equal(page.entries[0].key, "c1/obj/nested");
    assert_null(page.next);
    objstore_page_free(&page);
    /* Everything: prefix NULL. */
    assert_int_equal(objstore_list(s, NULL, "c1/objz", 10, &page, &err), 0);
    assert_int_equal(page.count, 2);
    assert_string_equal(page.entries[0].key, "c10/x");
    assert_string_equal(page.entries[1].key, "c2/y");
    objstore_page_free(&page);
    assert_int_equal(objstore_list(s, "nothing/", NULL, 10, &page, &err), 0);
    assert_int_equal(page.count, 0);
    assert_null(page.next);
    objstore_page_free(&page);
    objstore_close(s);
}

static void local_crc_mismatch_detected_after_tampering(void **state) {
    (void)state;
    objstore *s = open_store("tamper");
    tdb_error err;
    uint8_t data[4096];
    fill(data, sizeof data, 4);
    assert_int_equal(objstore_put(s, "t/obj", data, sizeof data, &err), 0);
    char p[PATH_MAX];
    pathf(p, "%s/t/obj", g_root);

    /* One flipped bit in the middle of the file. */
    int fd = open(p, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t b = data[2000] ^ 0x10;
    assert_int_equal(pwrite(fd, &b, 1, 2000), 1);
    close(fd);
    void *got = NULL;
    size_t len = 0;
    assert_int_equal(objstore_get(s, "t/obj", &got, &len, &err), TDB_ECORRUPT);
    assert_null(got);
    assert_string_equal(err.name, "object_corrupt");
    assert_non_null(strstr(err.message, "t/obj"));

    /* get_file leaves an existing destination as it was. */
    char dst[PATH_MAX];
    pathf(dst, "%s/tamper-dst", g_dir);
    assert_int_equal(fio_write_file_atomic(dst, "old", 3), 0);
    assert_int_equal(objstore_get_file(s, "t/obj", dst, &err), TDB_ECORRUPT);
    char *back;
    size_t back_len;
    assert_int_equal(fio_read_file(dst, &back, &back_len), 0);
    assert_string_equal(back, "old");
    free(back);

    /* A truncated file is caught too. */
    assert_int_equal(objstore_put(s, "t/obj", data, sizeof data, &err), 0);
    assert_int_equal(truncate(p, 100), 0);
    assert_int_equal(objstore_get(s, "t/obj", &got, &len, &err), TDB_ECORRUPT);

    /* An object without a recorded checksum is not trusted. */
    assert_int_equal(objstore_put(s, "t/obj", data, sizeof data, &err), 0);
    assert_int_equal(removexattr(p, "user.tierdb.crc32c"), 0);
    assert_int_equal(objstore_get(s, "t/obj", &got, &len, &err), TDB_ECORRUPT);
    assert_non_null(strstr(err.message, "no recorded CRC32C"));
    objstore_info info;
    assert_int_equal(objstore_head(s, "t/obj", &info, &err), 0);
    assert_false(info.has_crc32c);
    objstore_close(s);
}

/* Runs op with the n-th counted fileio call failing (n = 1, 2, ...) until
 * it succeeds; after every failure, check(). Returns how many failed. */
static int fail_each_step(int (*op)(objstore *, tdb_error *), void (*check)(objstore *),
                          objstore *s, bool persistent) {
    for (int n = 1; n < 100; n++) {
        tdb_error err;
        fio_fault_set((uint64_t)n, EIO, persistent);
        int rc = op(s, &err);
        fio_fault_clear();
        if (rc == 0) return n - 1;
        assert_int_equal(rc, TDB_EIO);
        assert_non_null(strstr(err.message, "Input/output error"));
        check(s);
        assert_int_equal(count_temps(g_root), 0);
    }
    fail_msg("the operation never succeeded");
    return -1;
}

static uint8_t g_new[200000], g_old[1000];

static int put_new(objstore *s, tdb_error *err) {
    return objstore_put(s, "f/g/obj", g_new, sizeof g_new, err);
}

/* After a failed put the key holds nothing or the old object, whole, or
 * (when only the final directory fsync failed) the new one, whole. */
static void old_or_new_never_partial(objstore *s) {
    void *got = NULL;
    size_t len = 0;
    tdb_error err;
    int rc = objstore_get(s, "f/g/obj", &got, &len, &err);
    if (rc == TDB_ENOTFOUND) return;
    if (rc != 0) fail_msg("get after a failed put: %s", err.message);
    assert_true((len == sizeof g_old && memcmp(got, g_old, len) == 0) ||
                (len == sizeof g_new && memcmp(got, g_new, len) == 0));
    free(got);
}

static void local_fault_injection_leaves_no_partial_object(void **state) {
    (void)state;
    objstore *s = open_store("faults");
    tdb_error err;
    fill(g_new, sizeof g_new, 5);
    fill(g_old, sizeof g_old, 6);
    /* Into a fresh tree (mkdir steps fail too), then over an old object. */
    int failures = fail_each_step(put_new, old_or_new_never_partial, s, false);
    assert_true(failures >= 5); /* mkdir(s), open, write, fsync, rename, fsync dir */
    assert_object_is(s, "f/g/obj", g_new, sizeof g_new);
    assert_int_equal(objstore_put(s, "f/g/obj", g_old, sizeof g_old, &err), 0);
    assert_true(fail_each_step(put_new, old_or_new_never_partial, s, true) >= 4);
    assert_object_is(s, "f/g/obj", g_new, sizeof g_new);
    objstore_close(s);
}

static char g_fault_dst[PATH_MAX];

static int get_file_op(objstore *s, tdb_error *err) {
    return objstore_get_file(s, "f/obj", g_fault_dst, err);
}

/* After a failed get_file the destination holds its old content or (when
 * only the final directory fsync failed) the whole verified object. */
static void destination_old_or_whole(objstore *s) {
    (void)s;
    char *back;
    size_t len;
    assert_int_equal(fio_read_file(g_fault_dst, &back, &len), 0);
    assert_true(strcmp(back, "previous") == 0 ||
                (len == sizeof g_new && memcmp(back, g_new, len) == 0));
    free(back);
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) assert_null(strstr(e->d_name, "dst.tmp-"));
    closedir(d);
}

static void local_get_file_fault_keeps_destination(void **state) {
    (void)state;
    objstore *s = open_store("getfaults");
    tdb_error err;
    fill(g_new, sizeof g_new, 7);
    assert_int_equal(objstore_put(s, "f/obj", g_new, sizeof g_new, &err), 0);
    pathf(g_fault_dst, "%s/dst", g_dir);
    assert_int_equal(fio_write_file_atomic(g_fault_dst, "previous", 8), 0);
    int failures = fail_each_step(get_file_op, destination_old_or_whole, s, false);
    assert_true(failures >= 4); /* open src, open tmp, write, fsync, rename (, fsync dir) */
    char *back;
    size_t len;
    assert_int_equal(fio_read_file(g_fault_dst, &back, &len), 0);
    assert_int_equal(len, sizeof g_new);
    assert_memory_equal(back, g_new, len);
    free(back);
    objstore_close(s);
}

static void local_rejects_bad_keys_urls_and_options(void **state) {
    (void)state;
    objstore *s = open_store("rules");
    tdb_error err;
    const char *bad[] = {"", "/a", "a/", "a//b", "../x", "a/../b", "a/./b", ".hidden", "a/.tmp-1",
                         "a b", "a\\b", "é", "a?b", "a#b", "a%20b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (objstore_put(s, bad[i], "x", 1, &err) != TDB_EINVAL) fail_msg("accepted key '%s'", bad[i]);
        assert_string_equal(err.name, "invalid_object_key");
    }
    /* Length: 1024 bytes pass, 1025 do not; a file:// store also needs
     * each component to fit a file name (255 bytes). */
    char longkey[OBJSTORE_MAX_KEY_BYTES + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    for (size_t i = 200; i < sizeof longkey - 1; i += 200) longkey[i] = '/';
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(objstore_put(s, longkey, "x", 1, &err), TDB_EINVAL);
    longkey[OBJSTORE_MAX_KEY_BYTES] = '\0';
    assert_int_equal(objstore_put(s, longkey, "x", 1, &err), 0);
    memset(longkey, 'k', 300);
    longkey[300] = '\0';
    assert_int_equal(objstore_put(s, longkey, "x", 1, &err), TDB_EINVAL);
    assert_non_null(strstr(err.message, "file name"));
    assert_int_equal(objstore_put(s, "ok/A-z_0.9!*'()=x", "x", 1, &err), 0);
    objstore_close(s);

    objstore *t = NULL;
    const char *bad_urls[] = {"ftp://x", "file://", "s3://", "s3://Upper/x", "s3://ab", "/plain/path",
                              "file:///"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        if (objstore_open(bad_urls[i], NULL, &t, &err) != TDB_EINVAL)
            fail_msg("accepted URL '%s'", bad_urls[i]);
        assert_null(t);
    }
    objstore_options o;
    objstore_options_default(&o);
    o.part_size_bytes = (4u << 20);
    assert_int_equal(objstore_open(g_url, &o, &t, &err), TDB_EINVAL);
    assert_non_null(strstr(err.message, "5 MiB"));
}

static void local_check_names_an_unusable_directory(void **state) {
    (void)state;
    /* The store's directory is a file: open cannot create it. */
    char p[PATH_MAX], url[PATH_MAX + 16];
    pathf(p, "%s/plainfile", g_dir);
    assert_int_equal(fio_write_file_atomic(p, "x", 1), 0);
    snprintf(url, sizeof url, "file://%s/sub", p);
    objstore *s = NULL;
    tdb_error err;
    assert_int_equal(objstore_open(url, NULL, &s, &err), TDB_EIO);
    assert_non_null(strstr(err.message, "cannot create the object store directory"));
    /* Removed after open: check says so. */
    objstore *t = open_store("vanishing");
    assert_int_equal(fio_rmtree(g_root), 0);
    assert_int_equal(objstore_check(t, &err), TDB_EIO);
    assert_non_null(strstr(err.message, "not usable"));
    objstore_close(t);
}

typedef struct worker_arg {
    objstore *s;
    int id;
    int failures;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    char key[64];
    uint8_t data[3000], *got;
    size_t len;
    tdb_error err;
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, i % 2 ? "w/%d/o%d" : "w/%d/d/o%d", a->id, i % 5);
        fill(data, sizeof data, (uint32_t)(a->id * 1000 + i));
        if (objstore_put(a->s, key, data, sizeof data, &err) != 0) a->failures++;
        if (objstore_get(a->s, key, (void **)&got, &len, &err) != 0 || len != sizeof data ||
            memcmp(got, data, len) != 0)
            a->failures++;
        if (i % 7 == 0 && objstore_delete(a->s, key, &err) != 0) a->failures++;
        free(got);
    }
    return NULL;
}

static void local_concurrent_puts_gets_and_deletes(void **state) {
    (void)state;
    objstore *s = open_store("threads");
    pthread_t th[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){.s = s, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    /* Deletes prune directories the other threads are putting into. */
    for (int i = 0; i < 4; i++) assert_int_equal(args[i].failures, 0);
    assert_int_equal(count_temps(g_root), 0);
    objstore_close(s);
}

/* Every call is counted once, by operation and outcome; failures by
 * cause; bytes of successful transfers; a latency sample per call. */
static void local_counters_count_each_call_once(void **state) {
    (void)state;
    objstore *s = open_store("counters");
    objstore_stats st;
    objstore_stats_get(s, &st);
    assert_int_equal(st.calls[OBJSTORE_OP_CHECK][OBJSTORE_OUTCOME_OK], 1); /* open_store's check */
    tdb_error err;
    uint8_t data[3000];
    fill(data, sizeof data, 9);
    assert_int_equal(objstore_put(s, "c/a", data, sizeof data, &err), 0);
    assert_int_equal(objstore_put(s, "c/b", data, 1000, NULL), 0); /* no err given: still counted */
    void *got = NULL;
    size_t len = 0;
    assert_int_equal(objstore_get(s, "c/a", &got, &len, &err), 0);
    free(got);
    uint8_t part[100];
    size_t n = 0;
    assert_int_equal(objstore_get_range(s, "c/a", 2950, sizeof part, part, &n, &err), 0);
    assert_int_equal(n, 50);
    objstore_info info;
    assert_int_equal(objstore_head(s, "c/none", &info, NULL), TDB_ENOTFOUND);
    assert_int_equal(objstore_get(s, "../x", &got, &len, NULL), TDB_EINVAL);
    char dst[PATH_MAX];
    pathf(dst, "%s/counters-dst", g_dir);
    assert_int_equal(objstore_get_file(s, "c/b", dst, &err), 0);
    objstore_page page;
    assert_int_equal(objstore_list(s, "c/", NULL, 0, &page, &err), 0);
    assert_int_equal(page.count, 2);
    objstore_page_free(&page);
    assert_int_equal(objstore_delete(s, "c/a", &err), 0);
    /* Tamper with c/b: its get is an error of cause corrupt. */
    char p[PATH_MAX];
    pathf(p, "%s/c/b", g_root);
    int fd = open(p, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "\xff", 1, 10), 1);
    close(fd);
    assert_int_equal(objstore_get(s, "c/b", &got, &len, NULL), TDB_ECORRUPT);

    objstore_stats_get(s, &st);
    assert_int_equal(st.calls[OBJSTORE_OP_PUT][OBJSTORE_OUTCOME_OK], 2);
    assert_int_equal(st.calls[OBJSTORE_OP_GET][OBJSTORE_OUTCOME_OK], 2); /* get + get_file */
    assert_int_equal(st.calls[OBJSTORE_OP_GET][OBJSTORE_OUTCOME_ERROR], 2);
    assert_int_equal(st.calls[OBJSTORE_OP_GET_RANGE][OBJSTORE_OUTCOME_OK], 1);
    assert_int_equal(st.calls[OBJSTORE_OP_HEAD][OBJSTORE_OUTCOME_NOT_FOUND], 1);
    assert_int_equal(st.calls[OBJSTORE_OP_LIST][OBJSTORE_OUTCOME_OK], 1);
    assert_int_equal(st.calls[OBJSTORE_OP_DELETE][OBJSTORE_OUTCOME_OK], 1);
    assert_int_equal(st.errors[OBJSTORE_CAUSE_INVALID], 1);
    assert_int_equal(st.errors[OBJSTORE_CAUSE_CORRUPT], 1);
    uint64_t errors = 0;
    for (int c = 0; c < OBJSTORE_CAUSE_COUNT; c++) errors += st.errors[c];
    assert_int_equal(errors, 2); /* not_found is an answer, not an error */
    assert_int_equal(st.uploaded_bytes, 3000 + 1000);
    assert_int_equal(st.downloaded_bytes, 3000 + 50 + 1000);
    assert_int_equal(st.http_requests, 0);
    for (int op = 0; op < OBJSTORE_OP_COUNT; op++) {
        uint64_t calls = 0, samples = 0;
        for (int o = 0; o < OBJSTORE_OUTCOME_COUNT; o++) calls += st.calls[op][o];
        for (int b = 0; b <= OBJSTORE_LATENCY_BUCKETS; b++) samples += st.latency_buckets[op][b];
        assert_int_equal(samples, calls);
    }
    assert_string_equal(objstore_op_name(OBJSTORE_OP_GET_RANGE), "get_range");
    assert_string_equal(objstore_outcome_name(OBJSTORE_OUTCOME_NOT_FOUND), "not_found");
    assert_string_equal(objstore_cause_name(OBJSTORE_CAUSE_BUCKET_MISSING), "bucket_missing");
    assert_string_equal(objstore_retry_reason_name(OBJSTORE_RETRY_THROTTLED), "throttled");
    objstore_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(local_put_get_head_delete_roundtrip),
        cmocka_unit_test(local_missing_object_is_not_found),
        cmocka_unit_test(local_put_file_and_get_file_stream),
        cmocka_unit_test(local_get_range_reads_parts),
        cmocka_unit_test(local_list_paginates_over_1000_objects),
        cmocka_unit_test(local_crc_mismatch_detected_after_tampering),
        cmocka_unit_test(local_fault_injection_leaves_no_partial_object),
        cmocka_unit_test(local_get_file_fault_keeps_destination),
        cmocka_unit_test(local_rejects_bad_keys_urls_and_options),
        cmocka_unit_test(local_check_names_an_unusable_directory),
        cmocka_unit_test(local_concurrent_puts_gets_and_deletes),
        cmocka_unit_test(local_counters_count_each_call_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
