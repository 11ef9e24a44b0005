/*
 * routes.c: the routing table of the HTTP API (docs/api.md), the checks
 * made before a body is read (key, Content-Type, size), and the handlers.
 * Layer: server.
 *
 * Handlers are thin: each parses what only HTTP carries (path segments,
 * query parameters), calls one tdb_* function and returns its JSON. All
 * validation of bodies (malformed JSON, dimensions, names, filters) is the
 * database's, so the HTTP API and the C API give the same answers.
 *
 * Order of the checks on a request (the first that fails answers):
 *   1. the path's percent-encoding               400 invalid_path
 *   2. the key, for /v1 routes when one is set   401 unauthorized
 *   3. the route: path, then method              404 not_found / 405 method_not_allowed
 *   4. the server's state (starting, stopping)   503
 *   5. the read-only key on a write route        403 forbidden
 *   6. Content-Type of JSON and NDJSON routes    415 unsupported_media_type
 *   7. Content-Length over the body limit        413 payload_too_large
 *      (not for the streamed import: its body is never held)
 * A key is checked before the route so that, without one, nothing about
 * the API (not even which routes exist) can be learnt.
 *
 * The import route streams (request.h): routes_stream_begin checks its
 * parameters and starts a tdb_import, each piece of body goes straight to
 * tdb_import_feed, and routes_stream_end answers with the import report.
 */
#include <ctype.h>
#include <stdint.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/request.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

/* GET .../documents page size when ?limit= is absent (API.md's example);
 * the database checks the range of a given one. */
#define LIST_DEFAULT_LIMIT 100

typedef int (*route_handler)(server_request *req, server_reply *rep, tdb_error *err);

enum {
    ROUTE_JSON = 1u << 0,       /* the body is JSON: Content-Type checked */
    ROUTE_WRITE = 1u << 1,      /* changes state: not for the read-only key */
    ROUTE_PUBLIC = 1u << 2,     /* needs no key (/health) */
    ROUTE_TEST_CLOCK = 1u << 3, /* exists only with --test-clock */
    ROUTE_ANY_STATE = 1u << 4,  /* answers while starting and stopping too */
    ROUTE_NDJSON = 1u << 5,     /* the body is NDJSON: Content-Type checked */
    ROUTE_STREAM = 1u << 6      /* the body streams through routes_stream_* (no handler) */
};

struct route {
    const char *method;
    const char *pattern;   /* '/'-separated; "{x}" matches one non-empty segment */
    unsigned flags;
    route_handler handler; /* NULL: in API.md, not served by this build (unless ROUTE_STREAM) */
};

/* Segment positions of the captures used by the handlers. */
#define SEG_NAME 2 /* /v1/collections/{name}/... */
#define SEG_ID 4   /* /v1/collections/{name}/documents/{id} */

static int h_health(server_request *, server_reply *, tdb_error *);
static int h_metrics(server_request *, server_reply *, tdb_error *);
static int h_collection_create(server_request *, server_reply *, tdb_error *);
static int h_collection_list(server_request *, server_reply *, tdb_error *);
static int h_collection_get(server_request *, server_reply *, tdb_error *);
static int h_collection_drop(server_request *, server_reply *, tdb_error *);
static int h_documents_upsert(server_request *, server_reply *, tdb_error *);
static int h_documents_list(server_request *, server_reply *, tdb_error *);
static int h_documents_delete(server_request *, server_reply *, tdb_error *);
static int h_document_get(server_request *, server_reply *, tdb_error *);
static int h_document_delete(server_request *, server_reply *, tdb_error *);
static int h_query(server_request *, server_reply *, tdb_error *);
static int h_debug_clock(server_request *, server_reply *, tdb_error *);
static int h_tier_get(server_request *, server_reply *, tdb_error *);
static int h_tier_pin(server_request *, server_reply *, tdb_error *);
static int h_tier_unpin(server_request *, server_reply *, tdb_error *);
static int h_tier_promote(server_request *, server_reply *, tdb_error *);
static int h_tier_demote(server_request *, server_reply *, tdb_error *);
static int h_tiering(server_request *, server_reply *, tdb_error *);
static int h_tiering_cycle(server_request *, server_reply *, tdb_error *);
static int h_snapshot_create(server_request *, server_reply *, tdb_error *);
static int h_snapshot_list(server_request *, server_reply *, tdb_error *);
static int h_snapshot_restore(server_request *, server_reply *, tdb_error *);
static int h_snapshot_delete(server_request *, server_reply *, tdb_error *);

/* Literal routes come before routes whose pattern captures the same
 * position, so "POST .../documents/delete" is the bulk delete while
 * "GET .../documents/delete" reads the document with id "delete". */
static const route routes[] = {
    {"GET", "/health", ROUTE_PUBLIC | ROUTE_ANY_STATE, h_health},
    {"GET", "/metrics", ROUTE_PUBLIC, h_metrics},
    {"POST", "/v1/collections", ROUTE_JSON | ROUTE_WRITE, h_collection_create},
    {"GET", "/v1/collections", 0, h_collection_list},
    {"GET", "/v1/collections/{name}", 0, h_collection_get},
    {"DELETE", "/v1/collections/{name}", ROUTE_WRITE, h_collection_drop},
    {"POST", "/v1/collections/{name}/documents", ROUTE_JSON | ROUTE_WRITE, h_documents_upsert},
    {"GET", "/v1/collections/{name}/documents", 0, h_documents_list},
    {"POST", "/v1/collections/{name}/documents/delete", ROUTE_JSON | ROUTE_WRITE, h_documents_delete},
    {"POST", "/v1/collections/{name}/documents/import", ROUTE_NDJSON | ROUTE_WRITE | ROUTE_STREAM, NULL},
    {"GET", "/v1/collections/{name}/documents/{id}", 0, h_document_get},
    {"DELETE", "/v1/collections/{name}/documents/{id}", ROUTE_WRITE, h_document_delete},
    {"POST", "/v1/collections/{name}/query", ROUTE_JSON, h_query},
    {"GET", "/v1/collections/{name}/tier", 0, h_tier_get},
    {"POST", "/v1/collections/{name}/tier/pin", ROUTE_WRITE, h_tier_pin},
    {"POST", "/v1/collections/{name}/tier/unpin", ROUTE_WRITE, h_tier_unpin},
    {"POST", "/v1/collections/{name}/tier/promote", ROUTE_JSON | ROUTE_WRITE, h_tier_promote},
    {"POST", "/v1/collections/{name}/tier/demote", ROUTE_JSON | ROUTE_WRITE, h_tier_demote},
    {"POST", "/v1/collections/{name}/snapshots", ROUTE_WRITE, h_snapshot_create},
    {"GET", "/v1/collections/{name}/snapshots", 0, h_snapshot_list},
    {"POST", "/v1/collections/{name}/snapshots/{snapshot}/restore", ROUTE_JSON | ROUTE_WRITE, h_snapshot_restore},
    {"DELETE", "/v1/collections/{name}/snapshots/{snapshot}", ROUTE_WRITE, h_snapshot_delete},
    {"GET", "/v1/tiering", 0, h_tiering},
    {"POST", "/v1/tiering/cycle", ROUTE_WRITE, h_tiering_cycle},
    {"POST", "/v1/debug/clock", ROUTE_JSON | ROUTE_WRITE | ROUTE_TEST_CLOCK, h_debug_clock},
};
#define ROUTE_COUNT (sizeof routes / sizeof routes[0])

const char *routes_pattern(const server_request *req) {
    return req->route ? req->route->pattern : "-";
}

size_t routes_count(void) { return ROUTE_COUNT; }
const char *routes_method_at(size_t i) { return routes[i].method; }
const char *routes_pattern_at(size_t i) { return routes[i].pattern; }
size_t routes_index(const server_request *req) {
    return req->route ? (size_t)(req->route - routes) : ROUTE_COUNT;
}

/* ---- path --------------------------------------------------------------- */

/* Splits the raw path of req->uri into decoded segments and finds the query.
 * Returns 0, -1 on a malformed escape, -2 when the path has more segments
 * than any route (it then matches nothing), TDB_ENOMEM. */
static int split_path(server_request *req) {
    const char *p = req->uri;
    /* An absolute-form target ("http://host/path", RFC 9112 3.2.2) is
     * legal; only its path matters here. */
    if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
        p = strchr(strchr(p, ':') + 3, '/');
        if (p == NULL) p = "/";
    }
    const char *q = strchr(p, '?');
    req->query = q ? q + 1 : NULL;
    size_t path_len = q ? (size_t)(q - p) : strlen(p);
    if (path_len == 0 || p[0] != '/') return -2;
    size_t i = 1;
    for (;;) {
        size_t start = i;
        while (i < path_len && p[i] != '/') i++;
        if (req->segment_count == SERVER_MAX_SEGMENTS) return -2;
        size_t k = req->segment_count;
        int rc = url_decode(p + start, i - start, &req->segments[k], &req->segment_lens[k]);
        if (rc != 0) return rc;
        req->segment_count++;
        if (i >= path_len) break;
        i++; /* skip '/' */
    }
    return 0;
}

/* Does route r's pattern match the request's segments? */
static bool pattern_match(const route *r, const server_request *req) {
    const char *p = r->pattern + 1;
    size_t k = 0;
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (k >= req->segment_count) return false;
        if (p[0] == '{') {
            if (req->segment_lens[k] == 0) return false;
        } else if (req->segment_lens[k] != len || memcmp(req->segments[k], p, len) != 0) {
            return false;
        }
        k++;
        p += len;
        if (*p == '/') p++;
    }
    return k == req->segment_count;
}

static bool method_match(const char *route_method, const char *method) {
    /* HEAD is GET without a body (libmicrohttpd drops the body). */
    return strcmp(route_method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

static bool route_exists(const server *srv, const route *r) {
    return !(r->flags & ROUTE_TEST_CLOCK) || srv->test_clock;
}

bool routes_listed(const server *srv, size_t i) { return i < ROUTE_COUNT && route_exists(srv, &routes[i]); }

/* ---- auth --------------------------------------------------------------- */

/* Compares a presented key with a configured one in time that depends only
 * on the configured key's length, so response times do not reveal how
 * many leading bytes of a guess were right. */
static bool key_equal(const char *given, size_t given_len, const char *key) {
    size_t key_len = strlen(key);
    unsigned char diff = given_len != key_len;
    for (size_t i = 0; i < key_len; i++) {
        unsigned char g = given_len ? (unsigned char)given[i % given_len] : 0;
        diff |= g ^ (unsigned char)key[i];
    }
    return diff == 0;
}

/* The role of the key in the Authorization header ("Bearer <key>"). */
static server_role authenticate(const server_request *req) {
    const server *srv = req->srv;
    if (srv->api_key == NULL) return ROLE_ADMIN;
    const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL) return ROLE_NONE;
    while (*h == ' ' || *h == '\t') h++;
    /* The scheme name is case-insensitive (RFC 9110 11.1). */
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) return ROLE_NONE;
    h += 7;
    while (*h == ' ' || *h == '\t') h++;
    size_t len = strlen(h);
    while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t')) len--;
    /* Both comparisons always run, so timing does not tell which key matched. */
    bool admin = key_equal(h, len, srv->api_key);
    bool ro = srv->readonly_api_key != NULL && key_equal(h, len, srv->readonly_api_key);
    if (admin) return ROLE_ADMIN;
    if (ro) return ROLE_READONLY;
    return ROLE_NONE;
}

/* ---- headers ------------------------------------------------------------ */

/* JSON routes accept "application/json", optionally with a UTF-8 charset
 * parameter, or no Content-Type at all (API.md says bodies are JSON, so a
 * client that sends none is taken at its word; curl -d and HTML forms send
 * application/x-www-form-urlencoded, which is refused). */
static bool media_params_ok(const char *p);

static bool content_type_ok(const char *ct) {
    if (ct == NULL) return true;
    while (*ct == ' ' || *ct == '\t') ct++;
    static const char want[] = "application/json";
    size_t n = sizeof want - 1;
    if (strncasecmp(ct, want, n) != 0) return false;
    return media_params_ok(ct + n);
}

/* NDJSON has no registered media type; application/x-ndjson is what
 * API.md names and what clients send, and the other common spellings of
 * "one JSON value per line" are accepted too. Unlike JSON routes, a
 * Content-Type is required: a client that sends none (or curl -d's form
 * type) is more likely sending something else by mistake. */
static bool ndjson_type_ok(const char *ct) {
    if (ct == NULL) return false;
    while (*ct == ' ' || *ct == '\t') ct++;
    static const char *const types[] = {"application/x-ndjson", "application/ndjson", "application/jsonl",
                                        "application/x-jsonlines", "application/jsonlines"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t n = strlen(types[i]);
        if (strncasecmp(ct, types[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t'))
            return media_params_ok(ct + n);
    }
    return false;
}

/* The parameters after a media type: only a UTF-8 charset is accepted. */
static bool media_params_ok(const char *p) {
    while (*p == ' ' || *p == '\t') p++;
    while (*p == ';') {
        p++;
        while (*p == ' ' || *p == '\t') p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';') p++;
        size_t name_len = (size_t)(p - name);
        while (name_len > 0 && (name[name_len - 1] == ' ' || name[name_len - 1] == '\t')) name_len--;
        if (*p == '=') {
            p++;
            const char *val = p;
            while (*p && *p != ';') p++;
            size_t val_len = (size_t)(p - val);
            while (val_len > 0 && (val[val_len - 1] == ' ' || val[val_len - 1] == '\t')) val_len--;
            if (val_len >= 2 && val[0] == '"' && val[val_len - 1] == '"') {
                val++;
                val_len -= 2;
            }
            if (name_len == 7 && strncasecmp(name, "charset", 7) == 0 &&
                !((val_len == 5 && strncasecmp(val, "utf-8", 5) == 0) ||
                  (val_len == 4 && strncasecmp(val, "utf8", 4) == 0)))
                return false;
        } else if (name_len > 0) {
            return false; /* a parameter without a value is malformed */
        }
    }
    return *p == '\0';
}

/* ---- prepare ------------------------------------------------------------ */

static void allow_add(char *allow, size_t cap, const char *method) {
    if (strstr(allow, method) != NULL) return;
    size_t len = strlen(allow);
    snprintf(allow + len, cap - len, "%s%s", len ? ", " : "", method);
}

int routes_prepare(server_request *req, server_reply *rep) {
    server *srv = req->srv;
    int rc = split_path(req);
    if (rc == TDB_ENOMEM) {
        reply_error(rep, 503, "out_of_memory", "the server is out of memory; retry later");
        return 1;
    }
    if (rc == -1) {
        reply_error(rep, 400, "invalid_path",
                    "the path has a malformed percent-escape: write '%%' as %%25 and other "
                    "bytes as %%XX with two hex digits");
        return 1;
    }
    bool is_v1 = req->segment_count > 0 && strcmp(req->segments[0], "v1") == 0;
    req->role = ROLE_NONE;
    if (is_v1) {
        req->role = authenticate(req);
        if (req->role == ROLE_NONE) {
            reply_error(rep, 401, "unauthorized",
                        "this route needs the header 'Authorization: Bearer <key>' with the "
                        "server's API key (TIERDB_API_KEY)");
            rep->www_authenticate = true;
            return 1;
        }
    }
    const route *found = NULL;
    bool path_known = false;
    rep->allow[0] = '\0';
    if (rc == 0) {
        for (size_t i = 0; i < ROUTE_COUNT; i++) {
            const route *r = &routes[i];
            if (!route_exists(srv, r) || !pattern_match(r, req)) continue;
            path_known = true;
            allow_add(rep->allow, sizeof rep->allow, r->method);
            if (strcmp(r->method, "GET") == 0) allow_add(rep->allow, sizeof rep->allow, "HEAD");
            if (found == NULL && method_match(r->method, req->method)) found = r;
        }
    }
    if (found == NULL) {
        if (path_known) {
            reply_error(rep, 405, "method_not_allowed", "%s is not allowed on this path; allowed: %s",
                        req->method, rep->allow);
            return 1;
        }
        rep->allow[0] = '\0';
        reply_error(rep, 404, "not_found",
                    "no route for this path; see docs/api.md for the routes (collection names "
                    "and document ids in paths are percent-encoded)");
        return 1;
    }
    rep->allow[0] = '\0';
    req->route = found;
    int state = atomic_load(&srv->state);
    if (state != SERVER_READY && !(found->flags & ROUTE_ANY_STATE)) {
        if (state == SERVER_STARTING)
            reply_error(rep, 503, "starting", "the server is starting; retry in a moment");
        else
            reply_error(rep, 503, "shutting_down", "the server is shutting down; retry on its successor");
        return 1;
    }
    if ((found->flags & ROUTE_WRITE) && req->role == ROLE_READONLY && srv->api_key != NULL) {
        reply_error(rep, 403, "forbidden",
                    "the read-only key may call GET routes and query only; use the API key to %s %s",
                    found->method, found->pattern);
        return 1;
    }
    if (found->handler == NULL && !(found->flags & ROUTE_STREAM)) {
        reply_error(rep, 404, "not_found", "%s %s is not available in this build of tierdb yet",
                    found->method, found->pattern);
        return 1;
    }
    for (size_t k = 0; k < req->segment_count; k++) {
        /* Names are C strings for the database: a NUL would cut them short
         * and address another collection. (Ids carry their length.) */
        if (k == SEG_NAME && memchr(req->segments[k], '\0', req->segment_lens[k]) != NULL) {
            reply_error(rep, 400, "invalid_name",
                        "collection names are [A-Za-z0-9_.-]{1,128}, not starting with '.'");
            return 1;
        }
    }
    if (found->flags & ROUTE_JSON) {
        const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!content_type_ok(ct)) {
            reply_error(rep, 415, "unsupported_media_type",
                        "this route takes a JSON body: send 'Content-Type: application/json' (got '%.100s')",
                        ct);
            return 1;
        }
    }
    if (found->flags & ROUTE_NDJSON) {
        const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!ndjson_type_ok(ct)) {
            reply_error(rep, 415, "unsupported_media_type",
                        "this route takes NDJSON, one document per line: send 'Content-Type: "
                        "application/x-ndjson' (got '%.100s')",
                        ct ? ct : "none");
            return 1;
        }
    }
    req->streaming = (found->flags & ROUTE_STREAM) != 0;
    const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && !req->streaming) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && n > srv->max_body_bytes) {
            reply_error(rep, 413, "payload_too_large",
                        "the body has %llu bytes, over the limit of %llu (TIERDB_MAX_BODY_BYTES); "
                        "split the request into smaller batches",
                        n, (unsigned long long)srv->max_body_bytes);
            return 1;
        }
    }
    return 0;
}

/* ---- run ---------------------------------------------------------------- */

void routes_run(server_request *req, server_reply *rep) {
    if (req->body_too_big) {
        reply_error(rep, 413, "payload_too_large",
                    "the body is over the limit of %llu bytes (TIERDB_MAX_BODY_BYTES); split the "
                    "request into smaller batches",
                    (unsigned long long)req->srv->max_body_bytes);
        return;
    }
    tdb_error err;
    tdb_err_clear(&err);
    int rc = req->route->handler(req, rep, &err);
    if (rc != 0) {
        char what[160];
        snprintf(what, sizeof what, "%s %s", req->route->method, req->route->pattern);
        reply_tdb_error(rep, what, &err);
    }
}

/* ---- parameters --------------------------------------------------------- */

static tdb_db *db_of(const server_request *req) { return atomic_load(&req->srv->db); }

static const char *body_of(const server_request *req) { return req->body.data ? req->body.data : ""; }

/* A query parameter as a NUL-free string (*value NULL when absent). */
static int param(const server_request *req, const char *key, char **value, tdb_error *err) {
    size_t len;
    int rc = url_query_get(req->query, key, value, &len);
    if (rc == TDB_ENOMEM) return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
    if (rc < 0)
        return tdb_err(err, TDB_EINVAL, "invalid_parameter",
                       "query parameter '%s' has a malformed percent-escape", key);
    if (*value != NULL && memchr(*value, '\0', len) != NULL) {
        free(*value);
        *value = NULL;
        return tdb_err(err, TDB_EINVAL, "invalid_parameter", "query parameter '%s' holds a NUL byte", key);
    }
    return 0;
}

static int param_bool(const server_request *req, const char *key, bool dflt, bool *out, tdb_error *err) {
    char *v = NULL;
    int rc = param(req, key, &v, err);
    if (rc != 0) return rc;
    *out = dflt;
    if (v != NULL) {
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) *out = true;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) *out = false;
        else rc = tdb_err(err, TDB_EINVAL, "invalid_parameter", "'%s' must be true or false", key);
    }
    free(v);
    return rc;
}

/* ---- handlers ----------------------------------------------------------- */

/* The tail of every handler that returns a tdb_*_json answer: on success
 * the JSON goes out with status; on failure rc reaches the error mapping. */
static int reply_out(server_reply *rep, int status, int rc, char *out) {
    if (rc != 0) return rc;
    reply_json(rep, status, out);
    return 0;
}

static int h_health(server_request *req, server_reply *rep, tdb_error *err) {
    (void)err;
    server *srv = req->srv;
    unsigned long long uptime_s = (clock_mono_ns() - srv->started_ns) / 1000000000ull;
    int state = atomic_load(&srv->state);
    if (state != SERVER_READY) {
        reply_jsonf(rep, 503, "{\"status\": \"%s\", \"version\": \"%s\", \"uptime_s\": %llu}",
                    state == SERVER_STARTING ? "starting" : "stopping", TDB_VERSION_STRING, uptime_s);
        rep->retry_after = true;
        return 0;
    }
    tdb_db *db = db_of(req);
    char *problems = NULL;
    tdb_error perr;
    if (tdb_problems_json(db, &problems, &perr) != 0) {
        /* Health must answer even when the problem list cannot be built. */
        log_msg(LOG_WARN, "/health: cannot list problems: %s", perr.message);
        problems = NULL;
    }
    reply_jsonf(rep, 200,
                "{\"status\": \"ok\", \"version\": \"%s\", \"uptime_s\": %llu, \"collections\": %zu, "
                "\"problems\": %s}",
                TDB_VERSION_STRING, uptime_s, tdb_collection_count(db), problems ? problems : "[]");
    tdb_free(problems);
    return 0;
}

static int h_collection_create(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_collection_create_json(db_of(req), body_of(req), req->body.len, &out, err);
    return reply_out(rep, 201, rc, out);
}

static int h_collection_list(server_request *req, server_reply *rep, tdb_error *err) {
    char *tier_name = NULL;
    int rc = param(req, "tier", &tier_name, err);
    if (rc != 0) return rc;
    int tier = -1;
    if (tier_name != NULL) {
        if (strcmp(tier_name, "hot") == 0) tier = TDB_TIER_HOT;
        else if (strcmp(tier_name, "warm") == 0) tier = TDB_TIER_WARM;
        else if (strcmp(tier_name, "cold") == 0) tier = TDB_TIER_COLD;
        else rc = tdb_err(err, TDB_EINVAL, "invalid_tier", "tier must be hot, warm or cold");
        free(tier_name);
        if (rc != 0) return rc;
    }
    char *out = NULL;
    rc = tdb_collection_list_json(db_of(req), tier, &out, err);
    return reply_out(rep, 200, rc, out);
}

static int h_collection_get(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_collection_get_json(db_of(req), req->segments[SEG_NAME], &out, err);
    return reply_out(rep, 200, rc, out);
}

static int h_collection_drop(server_request *req, server_reply *rep, tdb_error *err) {
    bool keep = false;
    int rc = param_bool(req, "keep_snapshots", false, &keep, err);
    if (rc != 0) return rc;
    rc = tdb_collection_drop(db_of(req), req->segments[SEG_NAME], keep, err);
    if (rc != 0) return rc;
    reply_jsonf(rep, 200, "{\"deleted\": true}");
    return 0;
}

static int h_documents_upsert(server_request *req, server_reply *rep, tdb_error *err) {
    size_t n = 0;
    int rc = tdb_upsert_json(db_of(req), req->segments[SEG_NAME], body_of(req), req->body.len, &n, err);
    if (rc != 0) return rc;
    reply_jsonf(rep, 200, "{\"upserted\": %zu}", n);
    return 0;
}

static int h_documents_list(server_request *req, server_reply *rep, tdb_error *err) {
    char *limit_text = NULL, *cursor = NULL;
    char *out = NULL;
    bool vectors = false;
    size_t limit = LIST_DEFAULT_LIMIT;
    int rc = param(req, "limit", &limit_text, err);
    if (rc != 0) goto done;
    if (limit_text != NULL) {
        char *end;
        /* Digits only (strtoull would take "-1" and " 5"); a value too big
         * for size_t saturates and the database refuses it. */
        unsigned long long n = strtoull(limit_text, &end, 10);
        if (!isdigit((unsigned char)limit_text[0]) || *end != '\0') {
            rc = tdb_err(err, TDB_EINVAL, "invalid_limit", "limit must be a positive integer (default %d)",
                         LIST_DEFAULT_LIMIT);
            goto done;
        }
        limit = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
    }
    rc = param(req, "cursor", &cursor, err);
    if (rc != 0) goto done;
    rc = param_bool(req, "include_vectors", false, &vectors, err);
    if (rc != 0) goto done;
    /* An empty cursor is the same as none (some clients send "cursor="). */
    rc = tdb_list_json(db_of(req), req->segments[SEG_NAME], limit, cursor && cursor[0] ? cursor : NULL,
                       vectors, &out, err);
    if (rc != 0) goto done;
    reply_json(rep, 200, out);
done:
    free(limit_text);
    free(cursor);
    return rc;
}

static int h_documents_delete(server_request *req, server_reply *rep, tdb_error *err) {
    size_t n = 0;
    int rc = tdb_delete_json(db_of(req), req->segments[SEG_NAME], body_of(req), req->body.len, &n, err);
    if (rc != 0) return rc;
    reply_jsonf(rep, 200, "{\"deleted\": %zu}", n);
    return 0;
}

static int h_document_get(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_get_json(db_of(req), req->segments[SEG_NAME], req->segments[SEG_ID],
                          req->segment_lens[SEG_ID], &out, err);
    return reply_out(rep, 200, rc, out);
}

static int h_document_delete(server_request *req, server_reply *rep, tdb_error *err) {
    size_t n = 0;
    int rc = tdb_delete(db_of(req), req->segments[SEG_NAME], req->segments[SEG_ID],
                        req->segment_lens[SEG_ID], &n, err);
    if (rc != 0) return rc;
    reply_jsonf(rep, 200, "{\"deleted\": %zu}", n);
    return 0;
}

static int h_query(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_query_json(db_of(req), req->segments[SEG_NAME], body_of(req), req->body.len, &out, err);
    return reply_out(rep, 200, rc, out);
}

/* POST /v1/debug/clock {"advance": "6h"} -> {"now": "..."}; an empty body
 * or {} only reads the clock. */
static int h_debug_clock(server_request *req, server_reply *rep, tdb_error *err) {
    json_doc *doc = NULL;
    int64_t delta_ms = 0, now_ms = 0;
    int rc = 0;
    if (req->body.len > 0) {
        json_error jerr;
        if (json_parse(req->body.data, req->body.len, &doc, &jerr) != 0) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_json", "malformed JSON at byte %zu: %s", jerr.offset,
                         jerr.message);
            goto done;
        }
        const json_value *root = json_root(doc);
        if (root->type != JSON_OBJECT) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_request", "the body must be an object {\"advance\": \"6h\"}");
            goto done;
        }
        const json_value *adv = json_get(root, "advance");
        if (adv != NULL) {
            if (adv->type != JSON_STRING || memchr(adv->str, '\0', adv->len) != NULL ||
                clock_parse_duration(adv->str, &delta_ms) != 0) {
                rc = tdb_err(err, TDB_EINVAL, "invalid_duration",
                             "\"advance\" must be a duration string such as \"300s\", \"5m\", \"6h\" or \"7d\"");
                goto done;
            }
        }
    }
    rc = tdb_clock_advance(db_of(req), delta_ms, &now_ms, err);
    if (rc != 0) goto done;
    char now[32];
    clock_format_rfc3339(now_ms, now);
    reply_jsonf(rep, 200, "{\"now\": \"%s\"}", now);
done:
    json_doc_free(doc);
    return rc;
}

/* ---- tiering ------------------------------------------------------------ */

static int h_tier_get(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_tier_get_json(db_of(req), req->segments[SEG_NAME], &out, err);
    return reply_out(rep, 200, rc, out);
}

static int tier_pin(server_request *req, server_reply *rep, bool pinned, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_tier_pin(db_of(req), req->segments[SEG_NAME], pinned, &out, err);
    return reply_out(rep, 200, rc, out);
}

static int h_tier_pin(server_request *req, server_reply *rep, tdb_error *err) {
    return tier_pin(req, rep, true, err);
}

static int h_tier_unpin(server_request *req, server_reply *rep, tdb_error *err) {
    return tier_pin(req, rep, false, err);
}

/* Body {"to": "hot"|"warm"|"cold"}, optional (an empty body or {} takes
 * the default target). */
static int tier_move(server_request *req, server_reply *rep, bool promote, tdb_error *err) {
    int to = -1, rc = 0;
    json_doc *doc = NULL;
    if (req->body.len > 0) {
        json_error jerr;
        if (json_parse(req->body.data, req->body.len, &doc, &jerr) != 0) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_json", "malformed JSON at byte %zu: %s", jerr.offset,
                         jerr.message);
            goto done;
        }
        const json_value *root = json_root(doc);
        const json_value *t = root->type == JSON_OBJECT ? json_get(root, "to") : NULL;
        if (root->type != JSON_OBJECT || (root->len > 0 && t == NULL) || root->len > 1) {
            rc = tdb_err(err, TDB_EINVAL, "invalid_request",
                         "the body must be {\"to\": \"hot\"|\"warm\"|\"cold\"} or empty");
            goto done;
        }
        if (t != NULL) {
            if (t->type == JSON_STRING && strcmp(t->str, "hot") == 0) to = TDB_TIER_HOT;
            else if (t->type == JSON_STRING && strcmp(t->str, "warm") == 0) to = TDB_TIER_WARM;
            else if (t->type == JSON_STRING && strcmp(t->str, "cold") == 0) to = TDB_TIER_COLD;
            else {
                rc = tdb_err(err, TDB_EINVAL, "invalid_tier", "\"to\" must be \"hot\", \"warm\" or \"cold\"");
                goto done;
            }
        }
    }
    char *out = NULL;
    rc = tdb_tier_move(db_of(req), req->segments[SEG_NAME], promote, to, &out, err);
    if (rc == 0) reply_json(rep, 200, out);
done:
    json_doc_free(doc);
    return rc;
}

static int h_tier_promote(server_request *req, server_reply *rep, tdb_error *err) {
    return tier_move(req, rep, true, err);
}

static int h_tier_demote(server_request *req, server_reply *rep, tdb_error *err) {
    return tier_move(req, rep, false, err);
}

static int h_tiering(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_tiering_json(db_of(req), &out, err);
    return reply_out(rep, 200, rc, out);
}

static int h_tiering_cycle(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_tiering_cycle_json(db_of(req), &out, err);
    return reply_out(rep, 200, rc, out);
}

/* ---- snapshots ---------------------------------------------------------- */

#define SEG_SNAPSHOT 4 /* /v1/collections/{name}/snapshots/{snapshot} */

static int h_snapshot_create(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_snapshot_create_json(db_of(req), req->segments[SEG_NAME], &out, err);
    return reply_out(rep, 201, rc, out);
}

static int h_snapshot_list(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_snapshot_list_json(db_of(req), req->segments[SEG_NAME], &out, err);
    return reply_out(rep, 200, rc, out);
}

static int h_snapshot_restore(server_request *req, server_reply *rep, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_snapshot_restore_json(db_of(req), req->segments[SEG_NAME], req->segments[SEG_SNAPSHOT],
                                       req->body.data, req->body.len, &out, err);
    return reply_out(rep, 200, rc, out);
}

static int h_snapshot_delete(server_request *req, server_reply *rep, tdb_error *err) {
    int rc = tdb_snapshot_delete(db_of(req), req->segments[SEG_NAME], req->segments[SEG_SNAPSHOT], err);
    if (rc != 0) return rc;
    reply_jsonf(rep, 200, "{\"deleted\": true}");
    return 0;
}

/* ---- metrics ------------------------------------------------------------ */

/* The Prometheus text format's media type (version 0.0.4). */
static const char media_prometheus[] = "text/plain; version=0.0.4; charset=utf-8";

static int h_metrics(server_request *req, server_reply *rep, tdb_error *err) {
    char *text = NULL;
    int rc = metrics_text(req->srv, db_of(req), &text, err);
    if (rc != 0) return rc;
    reply_json(rep, 200, text);
    rep->content_type = media_prometheus;
    return 0;
}

/* ---- import (streamed) -------------------------------------------------- */

int routes_stream_begin(server_request *req, server_reply *rep) {
    tdb_error err;
    tdb_err_clear(&err);
    char *on_error = NULL, *batch = NULL;
    tdb_import_options opts = {0};
    tdb_import *imp = NULL;
    int rc = param(req, "on_error", &on_error, &err);
    if (rc == 0 && on_error != NULL) {
        if (strcmp(on_error, "skip") == 0) opts.skip_errors = true;
        else if (strcmp(on_error, "abort") != 0)
            rc = tdb_err(&err, TDB_EINVAL, "invalid_parameter", "on_error must be abort (the default) or skip");
    }
    if (rc == 0) rc = param(req, "batch_size", &batch, &err);
    if (rc == 0 && batch != NULL) {
        char *end;
        unsigned long long n = strtoull(batch, &end, 10);
        if (!isdigit((unsigned char)batch[0]) || *end != '\0' || n < 1 || n > TDB_IMPORT_MAX_BATCH_DOCS)
            rc = tdb_err(&err, TDB_EINVAL, "invalid_parameter", "batch_size must be an integer in 1..%d (default %d)",
                         TDB_IMPORT_MAX_BATCH_DOCS, TDB_IMPORT_DEFAULT_BATCH_DOCS);
        else opts.batch_docs = (size_t)n;
    }
    /* A line may be as long as a whole upsert body may be. */
    opts.max_line_bytes = (size_t)req->srv->max_body_bytes;
    if (rc == 0) rc = tdb_import_begin(db_of(req), req->segments[SEG_NAME], &opts, &imp, &err);
    free(on_error);
    free(batch);
    if (rc != 0) {
        reply_tdb_error(rep, "POST /v1/collections/{name}/documents/import", &err);
        return 1;
    }
    req->stream = imp;
    return 0;
}

void routes_stream_data(server_request *req, const char *data, size_t len) {
    if (req->stream == NULL || req->stream_rc != 0) return;
    req->stream_rc = tdb_import_feed(req->stream, data, len, &req->stream_err);
}

void routes_stream_end(server_request *req, server_reply *rep) {
    const char *what = "POST /v1/collections/{name}/documents/import";
    tdb_import *imp = req->stream;
    req->stream = NULL;
    if (imp == NULL) {
        reply_error(rep, 500, "internal", "the import was not started");
        return;
    }
    tdb_error err;
    tdb_err_clear(&err);
    char *report = NULL;
    tdb_import_stats final = {0};
    int rc = tdb_import_end(imp, &final, &report, &err);
    server_metrics *m = &req->srv->metrics;
    atomic_fetch_add_explicit(&m->import_imported, final.imported, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->import_skipped, final.skipped, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->import_errors, final.errors, memory_order_relaxed);
    if (rc != 0) {
        reply_tdb_error(rep, what, &err);
        return;
    }
    log_msg(LOG_INFO, "import into %s: %llu lines, %llu imported, %llu skipped%s", req->segments[SEG_NAME],
            (unsigned long long)final.lines, (unsigned long long)final.imported, (unsigned long long)final.skipped,
            final.stopped ? ", stopped at a bad line" : "");
    /* API.md: an import that stopped at a bad line still answers with
     * its report (the committed lines are real), like a bulk API that
     * reports per-item errors in a 200. */
    reply_json(rep, 200, report);
}

void routes_stream_abandon(server_request *req) {
    if (req->stream == NULL) return;
    tdb_import_stats st;
    tdb_import_stats_get(req->stream, &st);
    log_msg(LOG_WARN, "import into %s abandoned by the client after %llu lines (%llu documents committed)",
            req->segments[SEG_NAME], (unsigned long long)st.lines, (unsigned long long)st.imported);
    tdb_import_free(req->stream);
    req->stream = NULL;
}
