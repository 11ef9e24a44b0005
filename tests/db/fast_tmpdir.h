/*
 * fast_tmpdir.h: a fresh directory for tests that run thousands of
 * fsyncs (fault and crash loops): on a disk that is minutes, in memory
 * under a second, and their faults are injected above the file system
 * anyway. So /dev/shm when it is writable, else TDB_TEST_TMP, else /tmp;
 * the environment variable named by override_env (if set) wins over all.
 */
#ifndef TDB_TESTS_FAST_TMPDIR_H
#define TDB_TESTS_FAST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"

static char *fast_tmpdir(const char *override_env, const char *prefix) {
    const char *base = getenv(override_env);
    struct stat sb;
    if (base == NULL && stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) &&
        access("/dev/shm", W_OK) == 0)
        base = "/dev/shm";
    if (base == NULL) base = getenv("TDB_TEST_TMP");
    if (base == NULL) base = "/tmp";
    fio_mkdir_p(base);
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/%s-XXXXXX", base, prefix);
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

#endif
