/*
 * fileio.c: the file-system seam of the storage layers (fileio.h): thin
 * wrappers over POSIX calls that retry EINTR, loop over short writes,
 * return -errno, and pass through one fault-injection check.
 * Layer: util. Used by storage/ (WAL, segments, MANIFEST) and tier/.
 *
 * Fault injection (the test-VFS idea): every counted call takes a ticket
 * from an atomic counter; when a fault is armed at ticket N, ticket N (and,
 * when persistent, every later one) fails with -err before touching the
 * file system. Each wrapper counts once per call, however many system
 * calls it makes underneath (fio_write_all is one "write" even when it
 * loops), so a test's "fail the n-th call" does not depend on how the
 * kernel splits writes. Composite helpers (fio_write_file_atomic,
 * fio_mkdir_p, fio_rmtree, fio_mmap_file, fio_read_file) are built from
 * counted wrappers, so a fault can hit each of their steps.
 *
 * A crash armed at ticket N (fio_crash_set) kills the process with SIGKILL
 * when ticket N is taken, before its I/O: crash tests fork a child, arm
 * it there and examine the data directory the child left.
 *
 * Invariants:
 *   (1) an injected failure (or crash) happens before the real call, so it
 *       has no effect on disk (as an error returned by a refusing kernel would).
 *   (2) clean-up on a failure path (closing fds, removing a temp file) uses
 *       uncounted calls, so a persistent fault cannot leave litter behind.
 *
 * Concurrency: the counter and the armed fault are atomics; the functions
 * keep no other state and are safe from any thread. Arming a fault while
 * other threads do I/O is allowed but makes which call fails racy: tests
 * arm faults while they alone do I/O.
 */
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest single read/write handed to the kernel: Linux caps one call at
 * about 2 GiB anyway, and a bound keeps the ssize_t arithmetic obvious. */
#define FIO_MAX_IO_BYTES ((size_t)1 << 30)

/* fio_rmtree refuses to descend deeper than this: a bound on recursion
 * (our trees are 3 levels deep; a deeper one is not ours). */
#define FIO_RMTREE_MAX_DEPTH 64

static _Atomic uint64_t g_calls;       /* tickets handed out so far */
static _Atomic uint64_t g_fault_at;    /* ticket that fails; 0 = no fault armed */
static _Atomic int g_fault_errno;
static _Atomic bool g_fault_persistent;
static _Atomic uint64_t g_crash_at;    /* ticket that raises SIGKILL; 0 = none */

void fio_fault_set(uint64_t nth, int err_no, bool persistent) {
    /* Publish errno and mode before the ticket so a racing call that sees
     * the ticket also sees them (seq_cst atomics). */
    atomic_store(&g_fault_errno, err_no > 0 ? err_no : EIO);
    atomic_store(&g_fault_persistent, persistent);
    atomic_store(&g_fault_at, atomic_load(&g_calls) + (nth ? nth : 1));
}

void fio_fault_clear(void) { atomic_store(&g_fault_at, 0); }

uint64_t fio_calls(void) { return atomic_load(&g_calls); }

void fio_crash_set(uint64_t nth) {
    atomic_store(&g_crash_at, atomic_load(&g_calls) + (nth ? nth : 1));
}

void fio_crash_clear(void) { atomic_store(&g_crash_at, 0); }

/* Takes a ticket; returns 0 to proceed or -errno to fail this call (or,
 * at the armed crash ticket, does not return). */
static int fault_check(void) {
    uint64_t ticket = atomic_fetch_add(&g_calls, 1) + 1;
    if (ticket == atomic_load(&g_crash_at)) raise(SIGKILL); /* no I/O of this call happens */
    uint64_t at = atomic_load(&g_fault_at);
    if (at == 0 || ticket < at) return 0;
    if (ticket == at || atomic_load(&g_fault_persistent)) return -atomic_load(&g_fault_errno);
    return 0;
}

/* Last failure of this thread (fio_last_failure). Thread-local: a worker's
 * failure is never overwritten by another thread's I/O before the worker
 * classes it. */
static _Thread_local struct fio_failure t_last;

/* Records a failed call and returns err (a -errno) unchanged. path may be
 * NULL (fd calls); an overlong path is kept cut short, NUL-terminated. */
static int fail(const char *op, const char *path, int fd, int err) {
    t_last.op = op;
    t_last.err = err < 0 ? -err : err;
    t_last.fd = fd;
    t_last.seq++;
    if (path == NULL) {
        t_last.path[0] = '\0';
    } else {
        size_t n = strlen(path);
        if (n >= sizeof t_last.path) n = sizeof t_last.path - 1;
        memcpy(t_last.path, path, n);
        t_last.path[n] = '\0';
    }
    return err;
}

const struct fio_failure *fio_last_failure(void) { return &t_last; }

void fio_failure_clear(void) {
    uint64_t seq = t_last.seq;
    memset(&t_last, 0, sizeof t_last);
    t_last.seq = seq;
}

bool fio_failure_is_no_space(const struct fio_failure *f) {
    return f != NULL && f->op != NULL && (f->err == ENOSPC || f->err == EDQUOT || f->err == EFBIG);
}

bool fio_failure_is_fsync(const struct fio_failure *f) {
    return f != NULL && f->op != NULL && strncmp(f->op, "fsync", 5) == 0;
}

int fio_open(const char *path, int flags, int mode) {
    int rc = fault_check();
    if (rc < 0) return fail("open", path, -1, rc);
    int fd;
    do {
        fd = open(path, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? fail("open", path, -1, -errno) : fd;
}

int fio_close(int fd) {
    /* Never retry close on EINTR: on Linux the fd is gone either way. */
    return close(fd) < 0 ? fail("close", NULL, fd, -errno) : 0;
}

int fio_write_all(int fd, const void *data, size_t len) {
    int rc = fault_check();
    if (rc < 0) return fail("write", NULL, fd, rc);
    const char *p = data;
    while (len > 0) {
        size_t chunk = len < FIO_MAX_IO_BYTES ? len : FIO_MAX_IO_BYTES;
        ssize_t n = write(fd, p, chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("write", NULL, fd, -errno);
        }
        if (n == 0) return fail("write", NULL, fd, -EIO); /* a regular file never writes 0 bytes without an error */
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fio_pwrite_all(int fd, const void *data, size_t len, uint64_t offset) {
    int rc = fault_check();
    if (rc < 0) return fail("pwrite", NULL, fd, rc);
    const char *p = data;
    while (len > 0) {
        size_t chunk = len < FIO_MAX_IO_BYTES ? len : FIO_MAX_IO_BYTES;
        ssize_t n = pwrite(fd, p, chunk, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("pwrite", NULL, fd, -errno);
        }
        if (n == 0) return fail("pwrite", NULL, fd, -EIO);
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

ssize_t fio_pread(int fd, void *data, size_t len, uint64_t offset) {
    /* Loops until len bytes or end of file, so a short count means EOF. */
    char *p = data;
    size_t done = 0;
    while (done < len) {
        size_t chunk = len - done < FIO_MAX_IO_BYTES ? len - done : FIO_MAX_IO_BYTES;
        ssize_t n = pread(fd, p + done, chunk, (off_t)(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("pread", NULL, fd, -errno);
        }
        if (n == 0) break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int fio_fsync(int fd) {
    int rc = fault_check();
    if (rc < 0) return fail("fsync", NULL, fd, rc);
    /* No EINTR retry loop: fsync is not interrupted by signals on Linux,
     * and retrying after a real failure would hide lost pages. */
    return fsync(fd) < 0 ? fail("fsync", NULL, fd, -errno) : 0;
}

int fio_ftruncate(int fd, uint64_t len) {
    int rc = fault_check();
    if (rc < 0) return fail("ftruncate", NULL, fd, rc);
    int r;
    do {
        r = ftruncate(fd, (off_t)len);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? fail("ftruncate", NULL, fd, -errno) : 0;
}

int fio_rename(const char *from, const char *to) {
    int rc = fault_check();
    if (rc < 0) return fail("rename", to, -1, rc);
    return rename(from, to) < 0 ? fail("rename", to, -1, -errno) : 0;
}

int fio_unlink(const char *path) {
    int rc = fault_check();
    if (rc < 0) return fail("unlink", path, -1, rc);
    return unlink(path) < 0 ? fail("unlink", path, -1, -errno) : 0;
}

int fio_mkdir(const char *path, int mode) {
    int rc = fault_check();
    if (rc < 0) return fail("mkdir", path, -1, rc);
    if (mkdir(path, (mode_t)mode) == 0) return 0;
    if (errno != EEXIST) return fail("mkdir", path, -1, -errno);
    /* EEXIST is success only when what exists is a directory. */
    struct stat st;
    if (stat(path, &st) < 0) return fail("mkdir", path, -1, -errno);
    return S_ISDIR(st.st_mode) ? 0 : fail("mkdir", path, -1, -ENOTDIR);
}

int fio_mkdir_p(const char *path) {
    size_t len = strlen(path);
    if (len == 0) return -EINVAL;
    if (len >= PATH_MAX) return -ENAMETOOLONG;
    char tmp[PATH_MAX];
    memcpy(tmp, path, len + 1);
    /* Create each prefix ending before a '/', then the whole path; the
     * leading '/' of an absolute path is skipped (the root exists). */
    for (size_t i = 1; i < len; i++) {
        if (tmp[i] != '/' || tmp[i - 1] == '/') continue;
        tmp[i] = '\0';
        int rc = fio_mkdir(tmp, 0755);
        tmp[i] = '/';
        if (rc < 0) return rc;
    }
    return fio_mkdir(tmp, 0755);
}

int fio_fsync_dir(const char *dir) {
    /* Counted once, as an fsync: the open of the directory is part of it. */
    int rc = fault_check();
    if (rc < 0) return fail("fsync_dir", dir, -1, rc);
    int fd;
    do {
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return fail("fsync_dir", dir, -1, -errno);
    rc = fsync(fd) < 0 ? fail("fsync_dir", dir, -1, -errno) : 0;
    close(fd);
    return rc;
}

static int rmtree_at(const char *path, int depth) {
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode)) {
        int rc = fio_unlink(path);
        return rc == -ENOENT ? 0 : rc;
    }
    if (depth >= FIO_RMTREE_MAX_DEPTH) return -ELOOP;
    DIR *d = opendir(path);
    if (d == NULL) return errno == ENOENT ? 0 : -errno;
    int rc = 0;
    size_t plen = strlen(path);
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        size_t nlen = strlen(e->d_name);
        if (plen + 1 + nlen + 1 > PATH_MAX) {
            rc = -ENAMETOOLONG;
            break;
        }
        char child[PATH_MAX];
        memcpy(child, path, plen);
        child[plen] = '/';
        memcpy(child + plen + 1, e->d_name, nlen + 1);
        rc = rmtree_at(child, depth + 1);
    }
    if (rc == 0 && errno != 0) rc = -errno;
    closedir(d);
    if (rc < 0) return rc;
    /* rmdir is counted as an unlink: it removes a name. */
    rc = fault_check();
    if (rc < 0) return fail("rmdir", path, -1, rc);
    if (rmdir(path) < 0 && errno != ENOENT) return fail("rmdir", path, -1, -errno);
    return 0;
}

int fio_rmtree(const char *path) { return rmtree_at(path, 0); }

int64_t fio_file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) return -errno;
    return (int64_t)st.st_size;
}

bool fio_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The address handed out for an empty file: mmap refuses length 0, and
 * callers want a non-NULL pointer they can pass back to fio_munmap. */
static const char empty_map[1];

int fio_mmap_file(const char *path, const void **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    int fd = fio_open(path, O_RDONLY, 0);
    if (fd < 0) return fd;
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto done;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        rc = -EFBIG;
        goto done;
    }
    if (st.st_size == 0) {
        *out = empty_map;
        goto done;
    }
    rc = fault_check();
    if (rc < 0) {
        rc = fail("mmap", path, -1, rc);
        goto done;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = fail("mmap", path, -1, -errno);
        goto done;
    }
    *out = p;
    *out_len = (size_t)st.st_size;
done:
    close(fd); /* the mapping outlives the descriptor */
    return rc;
}

void fio_munmap(const void *addr, size_t len) {
    if (addr == NULL || addr == (const void *)empty_map || len == 0) return;
    munmap((void *)addr, len);
}

int fio_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd = fio_open(path, O_RDONLY, 0);
    if (fd < 0) return fd;
    int rc = 0;
    char *p = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto done;
    }
    if ((uint64_t)st.st_size >= SIZE_MAX) {
        rc = -EFBIG;
        goto done;
    }
    size_t size = (size_t)st.st_size;
    p = malloc(size + 1);
    if (p == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    ssize_t n = fio_pread(fd, p, size, 0);
    if (n < 0) {
        rc = (int)n;
        goto done;
    }
    /* A file that shrank under us gives what was there; callers check
     * their own framing. */
    p[n] = '\0';
    *data = p;
    *len = (size_t)n;
    p = NULL;
done:
    free(p);
    close(fd);
    return rc;
}

/* Directory part of path ("." when there is none), into out. */
static int dir_of(const char *path, char *out, size_t out_size) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(out, out_size, ".");
        return 0;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n + 1 > out_size) return -ENAMETOOLONG;
    memcpy(out, path, n);
    out[n] = '\0';
    return 0;
}

int fio_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[PATH_MAX];
    char dir[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -ENAMETOOLONG;
    int rc = dir_of(path, dir, sizeof dir);
    if (rc < 0) return rc;
    /* O_TRUNC: a .tmp left by an earlier crash is garbage; callers that
     * replace the same path serialize among themselves. */
    int fd = fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fd;
    bool renamed = false;
    rc = fio_write_all(fd, data, len);
    if (rc == 0) rc = fio_fsync(fd);
    int crc = close(fd);
    if (rc == 0 && crc < 0) rc = -errno;
    if (rc == 0) rc = fio_rename(tmp, path);
    if (rc == 0) renamed = true;
    /* Without this the rename itself may not survive a power loss. */
    if (rc == 0) rc = fio_fsync_dir(dir);
    if (!renamed) unlink(tmp); /* uncounted: invariant (2) */
    return rc;
}
