/*
 * fuzz_common.h: helpers shared by the libFuzzer targets in tests/fuzz/:
 * a per-process scratch directory, writing input bytes to files, CRC
 * fix-ups, and a quiet log.
 *
 * Why CRC fix-ups: every on-disk format of tierdb checksums its blocks,
 * so almost every mutation of a real file dies at the first CRC check and
 * the parser behind it is never reached. Targets of checksummed formats
 * therefore take a flags byte first; with FUZZ_FLAG_FIX_CRC set they
 * recompute every checksum they can find before handing the bytes over,
 * so the fuzzer explores the structure, while inputs without the flag
 * still exercise the checksum checks themselves.
 *
 * Every helper here aborts on a failure of the harness itself (cannot
 * create a temp dir): that is not a finding, and must not pass silently.
 */
#ifndef TDB_FUZZ_COMMON_H
#define TDB_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sanitizer/common_interface_defs.h>

#include "util/fileio.h"
#include "util/log.h"

#define FUZZ_FLAG_FIX_CRC 0x01u

static inline void fuzz_die(const char *what) {
    char msg[256];
    snprintf(msg, sizeof msg, "fuzz harness: %s: %s", what, strerror(errno));
    __sanitizer_report_error_summary(msg);
    abort();
}

/* The library logs every corrupt file it meets at LOG_ERROR, thousands
 * of lines a second under a fuzzer; the levels below it are silenced here
 * (FUZZ_VERBOSE=1 keeps them) and run.sh drops the rest of the library's
 * stderr with libFuzzer's -close_fd_mask=2. */
static inline void fuzz_quiet_log(void) {
    const char *v = getenv("FUZZ_VERBOSE");
    if (v == NULL || v[0] == '\0' || v[0] == '0') log_set_level(LOG_ERROR);
}

/* A fresh scratch directory for this process (tmpfs when there is one),
 * removed at exit. Returns a static path. */
static char fuzz_root_dir[512];

static void fuzz_root_cleanup(void) {
    if (fuzz_root_dir[0] != '\0') fio_rmtree(fuzz_root_dir);
}

static inline const char *fuzz_root(void) {
    if (fuzz_root_dir[0] != '\0') return fuzz_root_dir;
    const char *base = getenv("FUZZ_TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        if (base == NULL || base[0] == '\0') base = "/tmp";
    }
    snprintf(fuzz_root_dir, sizeof fuzz_root_dir, "%s/tdbfuzz.XXXXXX", base);
    if (mkdtemp(fuzz_root_dir) == NULL) fuzz_die("mkdtemp");
    atexit(fuzz_root_cleanup);
    return fuzz_root_dir;
}

/* path = root/name, emptied (a directory) and recreated. */
static inline void fuzz_fresh_dir(char *path, size_t cap, const char *name) {
    snprintf(path, cap, "%s/%s", fuzz_root(), name);
    if (fio_rmtree(path) < 0) fuzz_die("rmtree");
    if (mkdir(path, 0700) < 0) fuzz_die("mkdir");
}

static inline void fuzz_write_file(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) fuzz_die("open for writing");
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            fuzz_die("write");
        }
        p += w;
        len -= (size_t)w;
    }
    close(fd);
}

static inline uint32_t fuzz_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t fuzz_le64(const uint8_t *p) {
    return (uint64_t)fuzz_le32(p) | ((uint64_t)fuzz_le32(p + 4) << 32);
}
static inline void fuzz_put_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A malloc'd copy (libFuzzer's buffer is read-only; fix-ups write). */
static inline uint8_t *fuzz_dup(const uint8_t *data, size_t len) {
    uint8_t *p = malloc(len ? len : 1);
    if (p == NULL) fuzz_die("malloc");
    if (len) memcpy(p, data, len);
    return p;
}

/* Consumes every byte so a read of freed or unmapped memory is caught even
 * where the parser only hands out pointers. */
static inline unsigned fuzz_touch(const void *p, size_t len) {
    const volatile uint8_t *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < len; i++) s += b[i];
    return s;
}

/* An assertion of a property the harness checks (not an invariant of the
 * library's own code): reports what failed and aborts, which libFuzzer
 * records as a crash with its input. The message goes through the
 * sanitizer's report channel, which survives libFuzzer's -close_fd_mask=2
 * (run.sh uses it to keep the library's stderr log out of the output). */
static inline void fuzz_check_failed(const char *file, int line, const char *cond,
                                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static inline void fuzz_check_failed(const char *file, int line, const char *cond,
                                      const char *fmt, ...) {
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "fuzz property failed at %s:%d: %s: ", file, line, cond);
    if (n < 0 || (size_t)n >= sizeof msg) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    __sanitizer_report_error_summary(msg);
    abort();
}
#define FUZZ_CHECK(cond, ...) \
    do { \
        if (!(cond)) fuzz_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__); \
    } while (0)

#endif
