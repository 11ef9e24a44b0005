/*
 * local.c: the file:// backend of the object store: objects are files
 * under a root directory (the default store, DATA/objects).
 * Layer: objstore; behind the table of objstore_int.h, called only by
 * objstore.c. Every file-system call that changes something goes through
 * util/fileio, so tests inject faults into each step.
 *
 * Layout: key "a/b/c" is the file ROOT/a/b/c. Its CRC32C is the extended
 * attribute user.tierdb.crc32c (8 lowercase hex digits), set on the file
 * before it gets its name, so content and checksum appear together.
 * (A sidecar file would need a second rename, and a crash between the two
 * would leave a checksum that belongs to other bytes.) The filesystem must
 * support user extended attributes (ext4, xfs, btrfs, tmpfs since Linux
 * 6.6 do); objstore_check says so plainly when it does not.
 * A put writes ROOT/<dir>/.tmp-<pid>-<n> and renames it; names starting
 * with '.' are never keys (objstore.h), so temporaries, including those an
 * interrupted process left behind (safe to delete), are never listed.
 *
 * Invariants:
 *   (1) a file under a key's name is complete and carries its checksum:
 *       write temp, set xattr, fsync, rename, fsync directory (the fsyncs
 *       are skipped when the store was opened with fsync off).
 *   (2) a failed put leaves no temporary behind (clean-up uses uncounted
 *       calls, as fileio's own helpers do).
 *   (3) delete removes directories it leaves empty, up to the root, so a
 *       tree of deleted collections does not linger as empty folders.
 *   (4) open removes the temporaries of processes that no longer run (a
 *       put interrupted by a kill), and the directories only they kept.
 *
 * Concurrency: no shared mutable state; a put racing a delete that prunes
 * its directory re-creates it (ENOENT from mkdir or the temporary's open).
 * Listing walks the tree per call: O(objects under the prefix) per page,
 * fine for the per-collection listings tierdb does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "objstore/objstore_int.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/fileio.h"

/* Deepest directory nesting the listing descends: every level of a key
 * takes at least two bytes ("a/"), so no valid key is deeper. */
#define LIST_MAX_DEPTH (OBJSTORE_MAX_KEY_BYTES / 2)
/* Rounds of mkdir + open a put tries when concurrent deletes keep pruning
 * its directories (see local_put). */
#define PUT_DIR_RACE_RETRIES 8

typedef struct local_store {
    char *root; /* without a trailing '/'; never "/" itself */
} local_store;

static local_store *impl(objstore *s) { return s->impl; }

static int io_err(tdb_error *err, int neg_errno, const char *what, const char *path) {
    int code = neg_errno == -ENOMEM ? TDB_ENOMEM : TDB_EIO;
    const char *hint = "";
    if (neg_errno == -ENOSPC) hint = " (the disk is full)";
    else if (neg_errno == -EACCES || neg_errno == -EPERM)
        hint = " (no permission: check the owner of the object store directory)";
    else if (neg_errno == -EROFS) hint = " (the filesystem is read-only)";
    else if (neg_errno == -ENOTSUP)
        hint = " (the filesystem does not support user extended attributes, which hold the "
               "checksums: use ext4, xfs or btrfs)";
    return tdb_err(err, code, "object_store_io", "%s '%.300s': %s%s", what, path,
                   strerror(-neg_errno), hint);
}

static int object_path(local_store *ls, const char *key, char out[PATH_MAX], tdb_error *err) {
    for (const char *c = key; *c;) { /* each component becomes a file name */
        size_t n = strcspn(c, "/");
        if (n > NAME_MAX)
            return tdb_err(err, TDB_EINVAL, "invalid_object_key",
                           "object key '%.200s...' has a component of %zu bytes: a file:// store "
                           "keeps each in a file name of at most %d bytes",
                           key, n, NAME_MAX);
        c += n;
        if (*c == '/') c++;
    }
    int n = snprintf(out, PATH_MAX, "%s/%s", ls->root, key);
    if (n < 0 || n >= PATH_MAX)
        return tdb_err(err, TDB_EINVAL, "invalid_object_key",
                       "object key '%.200s' makes a path longer than PATH_MAX under %.200s", key,
                       ls->root);
    return 0;
}

static void parent_of(const char *path, char out[PATH_MAX]) {
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (slash == path ? 1 : (size_t)(slash - path));
    if (n == 0) {
        snprintf(out, PATH_MAX, ".");
        return;
    }
    memcpy(out, path, n);
    out[n] = '\0';
}

/* ---- open / close / check -------------------------------------------- */

/* Removes the temporaries of processes that no longer run (a put that a
 * kill interrupted) and the directories that only they kept alive. Our own
 * and a live process's temporaries stay (a second process may share the
 * store). Best effort: failures leave files for the next open.
 * Returns true when dir is now empty. */
static bool sweep_temps(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (d == NULL) return false;
    bool empty = true;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n < 0 || n >= (int)sizeof path) {
            empty = false;
            continue;
        }
        struct stat st;
        if (lstat(path, &st) < 0) {
            empty = false;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth < 32 && sweep_temps(path, depth + 1) && rmdir(path) == 0) continue;
            empty = false;
            continue;
        }
        long pid;
        if (sscanf(e->d_name, ".tmp-%ld-", &pid) == 1 && pid > 0 && pid != (long)getpid() &&
            kill((pid_t)pid, 0) < 0 && errno == ESRCH && unlink(path) == 0)
            continue;
        empty = false;
    }
    closedir(d);
    return empty;
}

static int local_open(objstore *s, const char *location, const objstore_options *opts,
                      tdb_error *err) {
    (void)opts;
    /* file://localhost/abs names the same path as file:///abs (RFC 8089). */
    if (strncmp(location, "localhost/", 10) == 0) location += 9;
    size_t len = strlen(location);
    while (len > 1 && location[len - 1] == '/') len--;
    if (len == 0)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store",
                       "object store URL file:// names no directory: use file:///absolute/path");
    if (len == 1 && location[0] == '/')
        return tdb_err(err, TDB_EINVAL, "invalid_object_store",
                       "refusing the root directory as the object store: name a directory of its own");
    if (len >= PATH_MAX - OBJSTORE_MAX_KEY_BYTES - 2)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store",
                       "object store directory path is too long (%zu bytes)", len);
    local_store *ls = calloc(1, sizeof *ls);
    if (ls == NULL || (ls->root = strndup(location, len)) == NULL) {
        free(ls);
        return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory opening the object store");
    }
    int rc = fio_mkdir_p(ls->root);
    if (rc < 0) {
        rc = io_err(err, rc, "cannot create the object store directory", ls->root);
        free(ls->root);
        free(ls);
        return rc;
    }
    sweep_temps(ls->root, 0);
    s->impl = ls;
    return 0;
}

static void local_close(objstore *s) {
    local_store *ls = impl(s);
    free(ls->root);
    free(ls);
}

static _Atomic unsigned long g_temp_seq;

static int temp_path_in(const char *dir, char out[PATH_MAX]) {
    unsigned long n = atomic_fetch_add(&g_temp_seq, 1);
    int len = snprintf(out, PATH_MAX, "%s/.tmp-%ld-%lu", dir, (long)getpid(), n);
    return len < 0 || len >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int local_check(objstore *s, tdb_error *err) {
    local_store *ls = impl(s);
    struct stat st;
    if (stat(ls->root, &st) < 0)
        return io_err(err, -errno, "the object store directory is not usable", ls->root);
    if (!S_ISDIR(st.st_mode))
        return tdb_err(err, TDB_EIO, "object_store_io",
                       "object store path '%.300s' is not a directory", ls->root);
    /* The probe does what a put does, short of the rename: create, write,
     * set the checksum attribute, fsync. */
    char tmp[PATH_MAX];
    if (temp_path_in(ls->root, tmp) < 0)
        return tdb_err(err, TDB_EINVAL, "invalid_object_store", "object store path too long");
    int fd = fio_open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return io_err(err, fd, "cannot write in the object store directory", ls->root);
    int rc = fio_write_all(fd, "x", 1);
    if (rc == 0 && fsetxattr(fd, OSTORE_XATTR_CRC, "00000000", 8, 0) < 0) rc = -errno;
    if (rc == 0) rc = fio_fsync(fd);
    fio_close(fd);
    unlink(tmp);
    if (rc < 0) return io_err(err, rc, "cannot write in the object store directory", ls->root);
    return 0;
}

/* ---- put -------------------------------------------------------------- */

/* Copies src into fd, computing its CRC32C on the way. 0 or -errno;
 * *read_failed tells a failure to read the source from one to write. */
static int copy_source(const ostore_source *src, int fd, uint32_t *crc, bool *read_failed) {
    *read_failed = false;
    if (src->kind == OSTORE_SRC_MEM) {
        *crc = crc32c(src->data, (size_t)src->size_bytes);
        return src->size_bytes ? fio_write_all(fd, src->data, (size_t)src->size_bytes) : 0;
    }
    char *chunk = malloc(OSTORE_IO_CHUNK_BYTES);
    if (chunk == NULL) return -ENOMEM;
    uint32_t c = 0;
    uint64_t off = 0;
    int rc = 0;
    while (off < src->size_bytes) {
        ssize_t n = ostore_source_read(src, off, chunk, OSTORE_IO_CHUNK_BYTES);
        if (n <= 0) {
            rc = n < 0 ? (int)n : -EIO; /* 0: the file shrank while we read it */
            *read_failed = true;
            break;
        }
        c = crc32c_extend(c, chunk, (size_t)n);
        rc = fio_write_all(fd, chunk, (size_t)n);
        if (rc < 0) break;
        off += (uint64_t)n;
    }
    free(chunk);
    *crc = c;
    return rc;
}

/* fsyncs dir and each of its ancestors up to and including the root: after
 * mkdir -p created some of them, their own entries must be durable too. */
static int fsync_up_to_root(local_store *ls, const char *dir) {
    char cur[PATH_MAX];
    snprintf(cur, sizeof cur, "%s", dir);
    size_t root_len = strlen(ls->root);
    for (;;) {
        int rc = fio_fsync_dir(cur);
        if (rc < 0) return rc;
        if (strlen(cur) <= root_len) return 0;
        char up[PATH_MAX];
        parent_of(cur, up);
        memcpy(cur, up, strlen(up) + 1);
    }
}

static int local_put(objstore *s, const char *key, const ostore_source *src, tdb_error *err) {
    local_store *ls = impl(s);
    char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
    int rc = object_path(ls, key, path, err);
    if (rc < 0) return rc;
    parent_of(path, dir);
    if (temp_path_in(dir, tmp) < 0)
        return tdb_err(err, TDB_EINVAL, "invalid_object_key", "object key '%.200s' is too long", key);
    bool dir_created = !fio_exists(dir);
    int fd = -1;
    bool renamed = false, read_failed = false;
    const char *step = "cannot create the directory for";
    /* ENOENT from mkdir or open: a concurrent delete removed an (empty)
     * directory of the path between our steps; make it again. Bounded:
     * each round needs another delete to land in a window of microseconds. */
    for (int attempt = 0; attempt < PUT_DIR_RACE_RETRIES; attempt++) {
        step = "cannot create the directory for";
        rc = fio_mkdir_p(dir);
        if (rc == -ENOENT) continue;
        if (rc < 0) goto done;
        step = "cannot create a temporary file for";
        fd = fio_open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd != -ENOENT) break;
        dir_created = true;
    }
    if (rc < 0) goto done;
    if (fd < 0) {
        rc = fd;
        goto done;
    }
    uint32_t crc = 0;
    step = "cannot write";
    rc = copy_source(src, fd, &crc, &read_failed);
    if (rc < 0) goto done;
    char hex[OSTORE_CRC_HEX_BYTES];
    ostore_crc_format(crc, hex);
    step = "cannot record the checksum of";
    if (fsetxattr(fd, OSTORE_XATTR_CRC, hex, 8, 0) < 0) {
        rc = -errno;
        goto done;
    }
    step = "cannot fsync";
    rc = s->fsync ? fio_fsync(fd) : 0;
    if (rc < 0) goto done;
    rc = fio_close(fd);
    fd = -1;
    if (rc < 0) goto done;
    step = "cannot rename the temporary file into";
    rc = fio_rename(tmp, path);
    if (rc < 0) goto done;
    renamed = true;
    /* Without these the new name may not survive a power loss. */
    step = "cannot fsync the directory of";
    if (s->fsync) rc = dir_created ? fsync_up_to_root(ls, dir) : fio_fsync_dir(dir);
done:
    if (fd >= 0) fio_close(fd);
    if (!renamed) unlink(tmp); /* uncounted: invariant (2) */
    if (rc < 0 && read_failed)
        return tdb_err(err, TDB_EIO, "object_store_io",
                       "cannot read '%.300s' to store it as '%.200s': %s", src->path, key,
                       strerror(-rc));
    if (rc < 0) return io_err(err, rc, step, path);
    return 0;
}

/* ---- get / head / range ----------------------------------------------- */

/* Reads the recorded checksum of an open object. */
static void read_crc(int fd, objstore_info *info) {
    char hex[16];
    ssize_t n = fgetxattr(fd, OSTORE_XATTR_CRC, hex, sizeof hex);
    info->has_crc32c = n > 0 && ostore_crc_parse(hex, (size_t)n, &info->crc32c);
}

static int open_object(objstore *s, const char *key, char path[PATH_MAX], objstore_info *info,
                       tdb_error *err) {
    local_store *ls = impl(s);
    int rc = object_path(ls, key, path, err);
    if (rc < 0) return rc;
    int fd = fio_open(path, O_RDONLY, 0);
    if (fd == -ENOENT || fd == -ENOTDIR)
        return tdb_err(err, TDB_ENOTFOUND, "object_not_found", "no object '%.300s' in %.200s", key,
                       s->url);
    if (fd < 0) return io_err(err, fd, "cannot open", path);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fio_close(fd);
        return tdb_err(err, TDB_ENOTFOUND, "object_not_found",
                       "'%.300s' in %.200s is not an object (a directory?)", key, s->url);
    }
    info->size_bytes = (uint64_t)st.st_size;
    read_crc(fd, info);
    return fd;
}

static int local_get(objstore *s, const char *key, ostore_sink *sink, objstore_info *recorded,
                     tdb_error *err) {
    char path[PATH_MAX];
    int fd = open_object(s, key, path, recorded, err);
    if (fd < 0) return fd;
    ostore_sink_expect(sink, recorded->size_bytes);
    char *chunk = malloc(OSTORE_IO_CHUNK_BYTES);
    int rc = 0;
    if (chunk == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory reading '%.300s'", key);
        goto done;
    }
    /* Read to the end of the file (not just the size seen at open), so a
     * file that changed shows up as a checksum or size mismatch. */
    for (uint64_t off = 0;;) {
        ssize_t n = fio_pread(fd, chunk, OSTORE_IO_CHUNK_BYTES, off);
        if (n < 0) {
            rc = io_err(err, (int)n, "cannot read", path);
            goto done;
        }
        if (n == 0) break;
        int w = ostore_sink_write(sink, chunk, (size_t)n);
        if (w < 0) {
            if (w == TDB_ENOMEM)
                rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory reading '%.300s'", key);
            else
                rc = io_err(err, w, "cannot write the download of", sink->path ? sink->path : key);
            goto done;
        }
        off += (uint64_t)n;
    }
done:
    free(chunk);
    fio_close(fd);
    return rc;
}

static int local_head(objstore *s, const char *key, objstore_info *info, tdb_error *err) {
    char path[PATH_MAX];
    int fd = open_object(s, key, path, info, err);
    if (fd < 0) return fd;
    fio_close(fd);
    return 0;
}

static int local_get_range(objstore *s, const char *key, uint64_t offset, size_t len, void *out,
                           size_t *got, tdb_error *err) {
    char path[PATH_MAX];
    objstore_info info = {0};
    int fd = open_object(s, key, path, &info, err);
    if (fd < 0) return fd;
    int rc = 0;
    ssize_t n = fio_pread(fd, out, len, offset);
    if (n < 0) rc = io_err(err, (int)n, "cannot read", path);
    else *got = (size_t)n;
    fio_close(fd);
    return rc;
}

/* ---- delete ----------------------------------------------------------- */

static int local_del(objstore *s, const char *key, tdb_error *err) {
    local_store *ls = impl(s);
    char path[PATH_MAX];
    int rc = object_path(ls, key, path, err);
    if (rc < 0) return rc;
    rc = fio_unlink(path);
    if (rc == -ENOENT || rc == -ENOTDIR) return 0;
    if (rc == -EISDIR) return 0; /* a directory is no object: nothing to delete */
    if (rc < 0) return io_err(err, rc, "cannot delete", path);
    /* Invariant (3): rmdir fails on a non-empty directory, which is where
     * we stop. Uncounted and best effort: a leftover empty directory is
     * harmless, so no error is reported for it. */
    char dir[PATH_MAX];
    parent_of(path, dir);
    size_t root_len = strlen(ls->root);
    while (strlen(dir) > root_len && rmdir(dir) == 0) {
        char up[PATH_MAX];
        parent_of(dir, up);
        memcpy(dir, up, strlen(up) + 1);
    }
    return 0;
}

/* ---- list ------------------------------------------------------------- */

typedef struct list_ctx {
    const char *prefix;
    size_t prefix_len;
    const char *after; /* NULL: from the start */
    uint32_t max_keys;
    objstore_page cand; /* candidates, trimmed to max_keys now and then */
    size_t cand_cap;
    bool dropped;       /* candidates beyond max_keys were dropped: more keys exist */
    char path[PATH_MAX];
    size_t root_len;    /* path[0..root_len) is the root; keys start after the '/' */
    tdb_error *err;
} list_ctx;

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const objstore_entry *)a)->key, ((const objstore_entry *)b)->key);
}

/* Sorts the candidates and keeps the first max_keys. */
static void trim_candidates(list_ctx *c) {
    if (c->cand.count > 1) qsort(c->cand.entries, c->cand.count, sizeof *c->cand.entries, cmp_entry);
    while (c->cand.count > c->max_keys) {
        c->cand.count--;
        free(c->cand.entries[c->cand.count].key);
        c->dropped = true;
    }
}

/* Whether the subtree whose keys all start with p (p_len bytes) may hold
 * a key that is listed: it must agree with the prefix and not lie wholly
 * at or before `after`. */
static bool subtree_may_match(const list_ctx *c, const char *p, size_t p_len) {
    size_t n = p_len < c->prefix_len ? p_len : c->prefix_len;
    if (memcmp(p, c->prefix, n) != 0) return false;
    if (c->after) {
        size_t a_len = strlen(c->after);
        int cmp = memcmp(p, c->after, p_len < a_len ? p_len : a_len);
        if (cmp < 0) return false; /* every key here sorts before after */
    }
    return true;
}

static int walk(list_ctx *c, size_t path_len, int depth) {
    if (depth > LIST_MAX_DEPTH) return 0;
    DIR *d = opendir(c->path);
    if (d == NULL) {
        if (errno == ENOENT || errno == ENOTDIR) return 0; /* removed while we walked */
        return io_err(c->err, -errno, "cannot list", c->path);
    }
    int rc = 0;
    struct dirent *e;
    while ((errno = 0, e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ".", "..", temporaries: never keys */
        size_t name_len = strlen(e->d_name);
        if (path_len + 1 + name_len + 1 >= sizeof c->path) continue;
        c->path[path_len] = '/';
        memcpy(c->path + path_len + 1, e->d_name, name_len + 1);
        size_t new_len = path_len + 1 + name_len;
        const char *key = c->path + c->root_len + 1;
        size_t key_len = new_len - c->root_len - 1;
        unsigned char type = e->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;
            if (lstat(c->path, &st) < 0) continue;
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        if (type == DT_DIR) {
            if (key_len + 1 >= OBJSTORE_MAX_KEY_BYTES) continue;
            c->path[new_len] = '/'; /* the subtree's keys start with "key/" */
            bool may = subtree_may_match(c, key, key_len + 1);
            c->path[new_len] = '\0';
            if (may) rc = walk(c, new_len, depth + 1);
        } else if (type == DT_REG) {
            if (key_len > OBJSTORE_MAX_KEY_BYTES) continue;
            if (key_len < c->prefix_len || memcmp(key, c->prefix, c->prefix_len) != 0) continue;
            if (c->after && strcmp(key, c->after) <= 0) continue;
            struct stat st;
            if (stat(c->path, &st) < 0) continue; /* deleted while we walked */
            rc = ostore_page_add(&c->cand, &c->cand_cap, key, key_len, (uint64_t)st.st_size, c->err);
            /* Bound memory by about twice the page, whatever the tree. */
            if (rc == 0 && c->cand.count >= 2 * (size_t)c->max_keys + 64) trim_candidates(c);
        }
        c->path[path_len] = '\0';
        if (rc < 0) break;
    }
    if (rc == 0 && e == NULL && errno != 0) rc = io_err(c->err, -errno, "cannot list", c->path);
    closedir(d);
    return rc;
}

static int local_list(objstore *s, const char *prefix, const char *after, uint32_t max_keys,
                      objstore_page *page, tdb_error *err) {
    local_store *ls = impl(s);
    list_ctx c = {.prefix = prefix, .prefix_len = strlen(prefix), .after = after,
                  .max_keys = max_keys, .err = err};
    c.root_len = strlen(ls->root);
    memcpy(c.path, ls->root, c.root_len);
    c.path[c.root_len] = '\0';
    int rc = walk(&c, c.root_len, 0);
    if (rc == 0) {
        trim_candidates(&c);
        if (c.dropped && c.cand.count > 0) {
            c.cand.next = strdup(c.cand.entries[c.cand.count - 1].key);
            if (c.cand.next == NULL)
                rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory listing objects");
        }
    }
    if (rc < 0) {
        objstore_page_free(&c.cand);
        return rc;
    }
    *page = c.cand;
    return 0;
}

const objstore_backend ostore_local_backend = {
    .scheme = "file",
    .open = local_open,
    .close = local_close,
    .check = local_check,
    .put = local_put,
    .get = local_get,
    .get_range = local_get_range,
    .head = local_head,
    .del = local_del,
    .list = local_list,
};
