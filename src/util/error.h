/*
 * error.h: filling tdb_error and reporting corruption.
 * Layer: util. Every layer reports failures through these helpers so that
 * the code (TDB_E*), the API code name and the message travel together.
 */
#ifndef TDB_UTIL_ERROR_H
#define TDB_UTIL_ERROR_H

#include "tierdb.h"

/* Sets err (when not NULL) and returns code, so callers can write
 * `return tdb_err(err, TDB_EINVAL, "bad_name", "...", ...);`. */
int tdb_err(tdb_error *err, int code, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Corruption found in a file: logs file, offset and our source line, fills
 * err with TDB_ECORRUPT. Never an assert: bytes from disk are input. */
#define TDB_CORRUPT(err, path, offset, ...) \
    tdb_err_corrupt((err), (path), (offset), __FILE__, __LINE__, __VA_ARGS__)
int tdb_err_corrupt(tdb_error *err, const char *path, uint64_t offset, const char *src_file,
                    int src_line, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Default API code name for a TDB_E* code ("invalid_request", ...). */
const char *tdb_err_default_name(int code);

/* Clears err to "no error". */
void tdb_err_clear(tdb_error *err);

#endif
