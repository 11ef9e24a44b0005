/*
 * test_fileio.c: the file-system seam: durable replace, fault injection
 * (once and persistent), mkdir -p, rm -rf, mmap and whole-file reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"

static char g_dir[PATH_MAX];

static int setup(void **state) {
    (void)state;
    const char *base = getenv("TDB_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    if (fio_mkdir_p(base) < 0) return -1;
    snprintf(g_dir, sizeof g_dir, "%.200s/fileio-XXXXXX", base);
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    fio_fault_clear();
    return fio_rmtree(g_dir) == 0 ? 0 : -1;
}

/* snprintf into a PATH_MAX buffer, failing the test on truncation (and,
 * through va_list, without compile-time truncation guesses). */
static void pathf(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && n < PATH_MAX);
}

static void path_in(char *out, const char *name) { pathf(out, "%s/%s", g_dir, name); }

static void assert_file_is(const char *path, const char *text) {
    char *data;
    size_t len;
    assert_int_equal(fio_read_file(path, &data, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(data, text, len);
    assert_int_equal(data[len], '\0');
    free(data);
}

static void fio_write_file_atomic_replaces_content(void **state) {
    (void)state;
    char p[PATH_MAX], tmp[PATH_MAX];
    path_in(p, "f");
    assert_int_equal(fio_write_file_atomic(p, "first", 5), 0);
    assert_file_is(p, "first");
    assert_int_equal(fio_write_file_atomic(p, "second!", 7), 0);
    assert_file_is(p, "second!");
    pathf(tmp, "%s.tmp", p);
    assert_false(fio_exists(tmp));
    assert_int_equal(fio_file_size(p), 7);
}

static void fio_fault_once_fails_only_the_nth_call(void **state) {
    (void)state;
    char p[PATH_MAX];
    path_in(p, "once");
    uint64_t before = fio_calls();
    fio_fault_set(2, ENOSPC, false);
    int fd = fio_open(p, O_WRONLY | O_CREAT, 0644); /* call 1: fine */
    assert_true(fd >= 0);
    assert_int_equal(fio_write_all(fd, "abc", 3), -ENOSPC); /* call 2: fails */
    assert_int_equal(fio_write_all(fd, "abc", 3), 0);       /* call 3: fine again */
    assert_int_equal(fio_fsync(fd), 0);
    assert_int_equal(fio_calls() - before, 4);
    fio_close(fd);
    /* The failed write had no effect: invariant (1). */
    assert_int_equal(fio_file_size(p), 3);
}

static void fio_fault_persistent_fails_every_later_call(void **state) {
    (void)state;
    char p[PATH_MAX], q[PATH_MAX];
    path_in(p, "persist");
    path_in(q, "persist2");
    fio_fault_set(1, EIO, true);
    assert_int_equal(fio_open(p, O_WRONLY | O_CREAT, 0644), -EIO);
    assert_int_equal(fio_mkdir(q, 0755), -EIO);
    assert_int_equal(fio_rename(p, q), -EIO);
    assert_false(fio_exists(p));
    assert_false(fio_exists(q));
    fio_fault_clear();
    int fd = fio_open(p, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    fio_close(fd);
}

static void fio_reads_are_not_counted(void **state) {
    (void)state;
    char p[PATH_MAX];
    path_in(p, "r");
    assert_int_equal(fio_write_file_atomic(p, "hello", 5), 0);
    int fd = fio_open(p, O_RDONLY, 0);
    assert_true(fd >= 0);
    uint64_t before = fio_calls();
    char b[16];
    assert_int_equal(fio_pread(fd, b, sizeof b, 0), 5); /* short read = EOF */
    assert_int_equal(fio_pread(fd, b, 2, 3), 2);
    assert_memory_equal(b, "lo", 2);
    assert_int_equal(fio_file_size(p), 5);
    assert_true(fio_exists(p));
    assert_int_equal(fio_calls(), before);
    fio_close(fd);
}

/* Each step of a durable replace can fail; until the rename, the old
 * content stays; afterwards (the directory fsync) the new one is there.
 * Never a mix, never a leftover temp file. */
static void fio_write_file_atomic_fault_at_each_step_keeps_old_or_new(void **state) {
    (void)state;
    char p[PATH_MAX], tmp[PATH_MAX];
    path_in(p, "manifestish");
    pathf(tmp, "%s.tmp", p);
    int failures = 0;
    for (uint64_t n = 1;; n++) {
        assert_true(n < 20);
        assert_int_equal(fio_write_file_atomic(p, "old", 3), 0);
        fio_fault_set(n, EIO, false);
        int rc = fio_write_file_atomic(p, "new content", 11);
        fio_fault_clear();
        assert_false(fio_exists(tmp));
        char *data;
        size_t len;
        assert_int_equal(fio_read_file(p, &data, &len), 0);
        bool is_old = len == 3 && memcmp(data, "old", 3) == 0;
        bool is_new = len == 11 && memcmp(data, "new content", 11) == 0;
        free(data);
        assert_true(is_old || is_new);
        if (rc == 0) {
            assert_true(is_new);
            break;
        }
        assert_int_equal(rc, -EIO);
        failures++;
    }
    /* open, write, fsync, rename, directory fsync */
    assert_int_equal(failures, 5);
}

static void fio_write_file_atomic_persistent_fault_leaves_no_temp(void **state) {
    (void)state;
    char p[PATH_MAX], tmp[PATH_MAX];
    path_in(p, "persistent_atomic");
    pathf(tmp, "%s.tmp", p);
    assert_int_equal(fio_write_file_atomic(p, "old", 3), 0);
    fio_fault_set(2, EIO, true); /* the write and everything after */
    assert_int_equal(fio_write_file_atomic(p, "new", 3), -EIO);
    fio_fault_clear();
    assert_false(fio_exists(tmp));
    assert_file_is(p, "old");
}

static void write_small(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void fio_rmtree_removes_nested_and_not_symlink_targets(void **state) {
    (void)state;
    char root[PATH_MAX], p[PATH_MAX], outside[PATH_MAX], link[PATH_MAX];
    path_in(root, "tree");
    pathf(p, "%s/a/b/c", root);
    assert_int_equal(fio_mkdir_p(p), 0);
    pathf(p, "%s/a/b/c/file", root);
    write_small(p, "x");
    pathf(p, "%s/a/top", root);
    write_small(p, "y");
    path_in(outside, "outside");
    assert_int_equal(fio_mkdir(outside, 0755), 0);
    pathf(p, "%s/keep", outside);
    write_small(p, "z");
    pathf(link, "%s/a/link", root);
    assert_int_equal(symlink(outside, link), 0);

    assert_int_equal(fio_rmtree(root), 0);
    assert_false(fio_exists(root));
    assert_true(fio_exists(p)); /* the symlink was removed, not followed */
    assert_int_equal(fio_rmtree(root), 0); /* missing is success */
    assert_int_equal(fio_rmtree(p), 0);    /* a plain file */
    assert_false(fio_exists(p));
}

static void fio_rmtree_reports_injected_failure(void **state) {
    (void)state;
    char root[PATH_MAX], p[PATH_MAX];
    path_in(root, "tree2");
    pathf(p, "%s/d", root);
    assert_int_equal(fio_mkdir_p(p), 0);
    pathf(p, "%s/d/f", root);
    write_small(p, "x");
    fio_fault_set(1, EACCES, false);
    assert_int_equal(fio_rmtree(root), -EACCES);
    assert_true(fio_exists(p));
    assert_int_equal(fio_rmtree(root), 0);
    assert_false(fio_exists(root));
}

static void fio_mkdir_p_creates_nested_and_accepts_existing(void **state) {
    (void)state;
    char p[PATH_MAX], f[PATH_MAX];
    pathf(p, "%s/x//y/z/", g_dir);
    assert_int_equal(fio_mkdir_p(p), 0);
    assert_int_equal(fio_mkdir_p(p), 0);
    struct stat st;
    pathf(p, "%s/x/y/z", g_dir);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    path_in(f, "plainfile");
    write_small(f, "x");
    assert_int_equal(fio_mkdir(f, 0755), -ENOTDIR);
    pathf(p, "%s/sub", f);
    assert_true(fio_mkdir_p(p) < 0);
}

static void fio_mmap_file_maps_content_and_empty_files(void **state) {
    (void)state;
    char p[PATH_MAX], e[PATH_MAX];
    path_in(p, "m");
    path_in(e, "empty");
    assert_int_equal(fio_write_file_atomic(p, "mapped bytes", 12), 0);
    assert_int_equal(fio_write_file_atomic(e, "", 0), 0);
    const void *map;
    size_t len;
    assert_int_equal(fio_mmap_file(p, &map, &len), 0);
    assert_int_equal(len, 12);
    assert_memory_equal(map, "mapped bytes", 12);
    fio_munmap(map, len);
    assert_int_equal(fio_mmap_file(e, &map, &len), 0);
    assert_non_null(map);
    assert_int_equal(len, 0);
    fio_munmap(map, len);
    path_in(p, "absent");
    assert_int_equal(fio_mmap_file(p, &map, &len), -ENOENT);
    assert_null(map);
}

static void fio_read_file_missing_is_enoent(void **state) {
    (void)state;
    char p[PATH_MAX];
    path_in(p, "nope");
    char *data = (char *)1;
    size_t len = 7;
    assert_int_equal(fio_read_file(p, &data, &len), -ENOENT);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_true(fio_file_size(p) == -ENOENT);
    assert_false(fio_exists(p));
}

static void fio_pwrite_and_ftruncate(void **state) {
    (void)state;
    char p[PATH_MAX];
    path_in(p, "pw");
    int fd = fio_open(p, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fio_pwrite_all(fd, "abcdef", 6, 0), 0);
    assert_int_equal(fio_pwrite_all(fd, "XY", 2, 2), 0);
    assert_int_equal(fio_ftruncate(fd, 5), 0);
    fio_close(fd);
    assert_file_is(p, "abXYe");
    assert_int_equal(fio_unlink(p), 0);
    assert_int_equal(fio_unlink(p), -ENOENT);
    assert_int_equal(fio_fsync_dir(g_dir), 0);
}

/* Each step of a durable replace, failed in turn, is named exactly in the
 * failure record, with the injected errno; a real failure records the
 * kernel's errno and the path. */
static void fio_failure_record_names_the_failed_call(void **state) {
    (void)state;
    char path[PATH_MAX];
    path_in(path, "rec");
    static const char *const steps[] = {"open", "write", "fsync", "rename", "fsync_dir"};
    for (uint64_t n = 1; n <= 5; n++) {
        fio_failure_clear();
        uint64_t seq = fio_last_failure()->seq;
        int e = n % 2 ? ENOSPC : EIO;
        fio_fault_set(n, e, false);
        int rc = fio_write_file_atomic(path, "x", 1);
        fio_fault_clear();
        assert_int_equal(rc, -e);
        const struct fio_failure *f = fio_last_failure();
        assert_non_null(f->op);
        assert_string_equal(f->op, steps[n - 1]);
        assert_int_equal(f->err, e);
        assert_true(f->seq == seq + 1);
        assert_int_equal(fio_failure_is_no_space(f), e == ENOSPC);
        assert_int_equal(fio_failure_is_fsync(f), n == 3 || n == 5);
        if (n == 1) assert_non_null(strstr(f->path, "rec.tmp"));
        if (n == 4) assert_string_equal(f->path, path); /* rename names its target */
    }
    /* A success leaves the record alone; clearing empties it. */
    assert_int_equal(fio_write_file_atomic(path, "y", 1), 0);
    assert_string_equal(fio_last_failure()->op, "fsync_dir");
    fio_failure_clear();
    assert_null(fio_last_failure()->op);
    assert_false(fio_failure_is_no_space(fio_last_failure()));
    assert_false(fio_failure_is_fsync(fio_last_failure()));
    /* A real failure. */
    char missing[PATH_MAX];
    path_in(missing, "no/such/file");
    assert_int_equal(fio_open(missing, O_RDONLY, 0), -ENOENT);
    assert_string_equal(fio_last_failure()->op, "open");
    assert_int_equal(fio_last_failure()->err, ENOENT);
    assert_string_equal(fio_last_failure()->path, missing);
    assert_int_equal(fio_last_failure()->fd, -1);
    /* An overlong path is kept cut short and terminated. */
    char longp[PATH_MAX];
    memset(longp, 'a', 1000);
    longp[0] = '/';
    longp[1000] = '\0';
    assert_true(fio_unlink(longp) < 0);
    assert_string_equal(fio_last_failure()->op, "unlink");
    assert_int_equal(strlen(fio_last_failure()->path), FIO_FAILURE_PATH_MAX - 1);
    fio_failure_clear();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fio_write_file_atomic_replaces_content, setup, teardown),
        cmocka_unit_test_setup_teardown(fio_fault_once_fails_only_the_nth_call, setup, teardown),
        cmocka_unit_test_setup_teardown(fio_fault_persistent_fails_every_later_call, setup, teardown),
        cmocka_unit_test_setup_teardown(fio_reads_are_not_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(fio_write_file_atomic_fault_at_each_step_keeps_old_or_new,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(fio_write_file_atomic_persistent_fault_leaves_no_temp, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(fio_rmtree_removes_nested_and_not_symlink_targets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(fio_rmtree_reports_injected_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(fio_mkdir_p_creates_nested_and_accepts_existing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(fio_mmap_file_maps_content_and_empty_files, setup, teardown),
        cmocka_unit_test_setup_teardown(fio_read_file_missing_is_enoent, setup, teardown),
        cmocka_unit_test_setup_teardown(fio_pwrite_and_ftruncate, setup, teardown),
        cmocka_unit_test_setup_teardown(fio_failure_record_names_the_failed_call, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
