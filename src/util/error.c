/*
 * error.c: tdb_error helpers and tdb_strerror.
 * Layer: util.
 */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

const char *tdb_strerror(int code) {
    switch (code) {
    case TDB_OK: return "ok";
    case TDB_EINVAL: return "invalid input";
    case TDB_ENOTFOUND: return "not found";
    case TDB_EEXIST: return "already exists";
    case TDB_ECONFLICT: return "conflicting state";
    case TDB_ETOOBIG: return "too large";
    case TDB_EIO: return "I/O error";
    case TDB_ECORRUPT: return "corrupt file";
    case TDB_ENOMEM: return "out of memory";
    case TDB_EREADONLY: return "read-only after a failed fsync";
    case TDB_EBUSY: return "busy";
    case TDB_ESHUTDOWN: return "shutting down";
    case TDB_EINTERNAL: return "internal error";
    case TDB_EUNSUPPORTED: return "not supported";
    default: return "unknown error";
    }
}

const char *tdb_err_default_name(int code) {
    switch (code) {
    case TDB_EINVAL: return "invalid_request";
    case TDB_ENOTFOUND: return "not_found";
    case TDB_EEXIST: return "already_exists";
    case TDB_ECONFLICT: return "conflict";
    case TDB_ETOOBIG: return "payload_too_large";
    case TDB_EIO: return "io_error";
    case TDB_ECORRUPT: return "corrupt_data";
    case TDB_ENOMEM: return "out_of_memory";
    case TDB_EREADONLY: return "read_only";
    case TDB_EBUSY: return "overloaded";
    case TDB_ESHUTDOWN: return "shutting_down";
    case TDB_EUNSUPPORTED: return "unsupported";
    default: return "internal_error";
    }
}

void tdb_free(void *ptr) { free(ptr); }

void tdb_err_clear(tdb_error *err) {
    if (err == NULL) return;
    err->code = TDB_OK;
    err->name[0] = '\0';
    err->message[0] = '\0';
}

static int err_vset(tdb_error *err, int code, const char *name, const char *fmt, va_list ap) {
    if (err == NULL) return code;
    err->code = code;
    snprintf(err->name, sizeof err->name, "%s", name ? name : tdb_err_default_name(code));
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return code;
}

int tdb_err(tdb_error *err, int code, const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, name, fmt, ap);
    va_end(ap);
    return code;
}

int tdb_err_corrupt(tdb_error *err, const char *path, uint64_t offset, const char *src_file,
                    int src_line, const char *fmt, ...) {
    char detail[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    log_msg(LOG_ERROR, "corruption in %s at offset %llu: %s (detected at %s:%d)", path,
            (unsigned long long)offset, detail, src_file, src_line);
    return tdb_err(err, TDB_ECORRUPT, "corrupt_data", "%s at offset %llu: %s", path,
                   (unsigned long long)offset, detail);
}
