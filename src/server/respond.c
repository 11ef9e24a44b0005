/*
 * respond.c: building replies: JSON bodies, the one error shape of the API
 * ({"error": {"code": "<snake_case>", "message": "..."}}), and the mapping
 * from TDB_E* codes to HTTP statuses.
 * Layer: server. A reply that cannot be allocated degrades to a static
 * 503 body (so an out-of-memory never turns into a dropped connection).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

static const char media_json[] = "application/json";
static const char oom_body[] =
    "{\"error\": {\"code\": \"out_of_memory\", \"message\": \"the server is out of memory; retry later\"}}";

static void reply_oom(server_reply *rep) {
    free(rep->body);
    rep->status = 503;
    rep->body = strdup(oom_body);
    rep->len = rep->body ? strlen(oom_body) : 0;
    rep->content_type = media_json;
    rep->retry_after = true;
}

void reply_json(server_reply *rep, int status, char *json) {
    free(rep->body);
    if (json == NULL) {
        rep->body = NULL;
        reply_oom(rep);
        return;
    }
    rep->status = status;
    rep->body = json;
    rep->len = strlen(json);
    rep->content_type = media_json;
}

void reply_jsonf(server_reply *rep, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    reply_json(rep, status, n < 0 ? NULL : text);
}

/* Messages may quote user input (an id, a name): bytes that are not UTF-8
 * would make the whole error body unreadable to a strict JSON parser, so
 * they are shown as '?'. */
static void write_message(buf *b, const char *msg) {
    size_t len = strlen(msg);
    if (json_utf8_valid(msg, len)) {
        json_write_string(b, msg, len);
        return;
    }
    char *clean = strdup(msg);
    if (clean == NULL) {
        json_write_string(b, "error", 5);
        return;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)clean[i] >= 0x80) clean[i] = '?';
    json_write_string(b, clean, len);
    free(clean);
}

static void reply_error_text(server_reply *rep, int status, const char *code, const char *msg) {
    buf b = BUF_INIT;
    buf_puts(&b, "{\"error\": {\"code\": ");
    json_write_string(&b, code, strlen(code));
    buf_puts(&b, ", \"message\": ");
    write_message(&b, msg[0] ? msg : "request failed");
    buf_puts(&b, "}}");
    if (buf_failed(&b)) {
        buf_free(&b);
        reply_oom(rep);
        return;
    }
    reply_json(rep, status, buf_steal(&b));
    if (status == 503) rep->retry_after = true;
}

void reply_error(server_reply *rep, int status, const char *code, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_error_text(rep, status, code, msg);
}

int reply_status_of(int code) {
    switch (code) {
    case TDB_EINVAL: return 400;
    case TDB_EUNSUPPORTED: return 400;
    case TDB_ENOTFOUND: return 404;
    case TDB_EEXIST: return 409;
    case TDB_ECONFLICT: return 409;
    case TDB_ETOOBIG: return 413;
    case TDB_EREADONLY:
    case TDB_EBUSY:
    case TDB_ESHUTDOWN:
    case TDB_ENOMEM: return 503;
    default: return 500;
    }
}

void reply_tdb_error(server_reply *rep, const char *what, const tdb_error *err) {
    int code = err->code != 0 ? err->code : TDB_EINTERNAL;
    int status = reply_status_of(code);
    const char *name = err->name[0] ? err->name : tdb_err_default_name(code);
    const char *msg = err->message[0] ? err->message : tdb_strerror(code);
    /* A 500 is our fault or the disk's: the operator needs the detail. */
    if (status == 500)
        log_msg(LOG_ERROR, "%s failed: %s (%s, code %d)", what, msg, name, code);
    else if (status == 503)
        log_msg(LOG_WARN, "%s refused: %s (%s)", what, msg, name);
    reply_error_text(rep, status, name, msg);
}

void reply_free(server_reply *rep) {
    free(rep->body);
    rep->body = NULL;
    rep->len = 0;
}
