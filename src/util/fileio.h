/*
 * fileio.h: every file-system call of the storage layers goes through
 * here: the one seam where tests inject I/O faults (SQLite's test_vfs
 * method) and where durable-replace lives.
 * Layer: util.
 *
 * Every function returns 0 (or a non-negative fd / byte count) on success
 * and -errno on failure; none sets a tdb_error (callers add context).
 *
 * Fault injection: fio_fault_set(n, e, persistent) makes the n-th counted
 * call from now (1 = the next one) fail with -e, once or (persistent) for
 * every counted call after it too. Counted calls: open, write, pwrite,
 * fsync, rename, unlink, mkdir, ftruncate, mmap. Reads are not counted.
 * fio_fault_clear() stops injecting; fio_calls() tells how many counted
 * calls happened (tests loop n = 1, 2, ... until an operation completes).
 *
 * Crash injection: fio_crash_set(n) makes the n-th counted call from now
 * raise SIGKILL before it touches the file system, as a `kill -9` at that
 * step would (what earlier calls wrote stays in the page cache, as it does
 * after a real kill). Tests arm it in a forked child and check what the
 * parent finds afterwards; fio_crash_clear() disarms it.
 *
 * Failure record: every failing call (injected or real) also records, per
 * thread, which call failed, on which path (empty for calls on an fd) and
 * with which errno: fio_last_failure(). Callers class a failure exactly
 * from it (no space vs I/O error vs a failed fsync) and name the call in
 * logs. Successful calls leave the record alone; fio_failure_clear()
 * empties it before an operation whose failures the caller will class.
 */
#ifndef TDB_UTIL_FILEIO_H
#define TDB_UTIL_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int fio_open(const char *path, int flags, int mode);       /* fd or -errno */
int fio_close(int fd);
int fio_write_all(int fd, const void *data, size_t len);    /* loops over short writes */
int fio_pwrite_all(int fd, const void *data, size_t len, uint64_t offset);
ssize_t fio_pread(int fd, void *data, size_t len, uint64_t offset); /* bytes read or -errno */
int fio_fsync(int fd);                                      /* fdatasync is not enough for new files */
int fio_ftruncate(int fd, uint64_t len);
int fio_rename(const char *from, const char *to);
int fio_unlink(const char *path);
int fio_mkdir(const char *path, int mode);                  /* EEXIST is success */
int fio_mkdir_p(const char *path);                          /* like mkdir -p */
int fio_fsync_dir(const char *dir);
int fio_rmtree(const char *path);                           /* rm -rf; missing is success */
int64_t fio_file_size(const char *path);                    /* bytes or -errno */
bool fio_exists(const char *path);

/* Maps a whole file read-only. *out_len is its size; an empty file maps to
 * a non-NULL dummy of length 0. Unmap with fio_munmap. */
int fio_mmap_file(const char *path, const void **out, size_t *out_len);
void fio_munmap(const void *addr, size_t len);

/* Reads a whole file into a malloc'd buffer (NUL-terminated, *len without
 * the NUL). The caller frees *data. */
int fio_read_file(const char *path, char **data, size_t *len);

/* Durable replace: writes path.tmp, fsyncs it, renames it over path and
 * fsyncs the directory. A crash leaves either the old or the new file. */
int fio_write_file_atomic(const char *path, const void *data, size_t len);

/* Last failed call of this thread. op is a static string ("open", "write",
 * "pwrite", "pread", "fsync", "fsync_dir", "ftruncate", "rename" (path is
 * the target), "unlink", "mkdir", "rmdir", "mmap", "close") or NULL when
 * nothing failed since the thread started or fio_failure_clear(); seq
 * counts this thread's failures (it survives clearing), so a caller can
 * tell whether its own operation failed. */
#define FIO_FAILURE_PATH_MAX 256
struct fio_failure {
    const char *op;
    int err;                          /* positive errno */
    int fd;                           /* the fd of fd calls, else -1 */
    uint64_t seq;
    char path[FIO_FAILURE_PATH_MAX];  /* cut short when longer */
};
const struct fio_failure *fio_last_failure(void);
void fio_failure_clear(void);
/* ENOSPC, EDQUOT or EFBIG: the disk (or quota) is full, not broken. */
bool fio_failure_is_no_space(const struct fio_failure *f);
/* The failed call was an fsync (file or directory): data may be lost, the
 * caller must not retry and pretend (a read-only state). */
bool fio_failure_is_fsync(const struct fio_failure *f);

/* Fault injection (tests only; a no-op cost of one atomic load otherwise). */
void fio_fault_set(uint64_t nth, int err_no, bool persistent);
void fio_fault_clear(void);
uint64_t fio_calls(void);
void fio_crash_set(uint64_t nth);
void fio_crash_clear(void);

#endif
