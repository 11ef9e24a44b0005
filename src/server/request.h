/*
 * request.h: what the files of the server share: the server object, one
 * HTTP request as it moves through the server, and the reply a handler
 * builds. Layer: server (internal; the CLI includes only server.h).
 *
 * A request goes through three steps, each in its own file:
 *   1. http.c receives it from libmicrohttpd; on the first call (headers
 *      only) it asks routes_prepare to decide everything that does not need
 *      the body: the route, the key, the Content-Type, the Content-Length.
 *      Any refusal is answered at once, before a byte of body is read.
 *   2. http.c collects the body (bounded by max_body_bytes).
 *   3. routes_run calls the route's handler, which calls one tdb_* function
 *      and turns its answer (or its tdb_error) into a server_reply, built
 *      with the helpers of respond.c.
 * A streamed route (the NDJSON import) replaces steps 2 and 3: its body is
 * never collected; routes_stream_begin starts the work once the headers
 * are checked, routes_stream_data takes each piece of body as it arrives,
 * and routes_stream_end builds the reply (routes_stream_abandon when the
 * client goes away first). The body limit does not apply to it.
 * When a request completes, http.c counts it in metrics.c's per-route
 * counters and latency histogram (lock-free: atomic adds only).
 */
#ifndef TDB_SERVER_REQUEST_H
#define TDB_SERVER_REQUEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/server.h"
#include "tierdb.h"
#include "util/buf.h"

/* Path segments a route can have; deeper paths match no route. The longest
 * route (/v1/collections/{name}/snapshots/{id}/restore) has 6. */
#define SERVER_MAX_SEGMENTS 8

typedef enum server_state { SERVER_STARTING = 0, SERVER_READY, SERVER_STOPPING } server_state;

/* Request metrics (metrics.c). Statuses are counted in fixed slots, one
 * per status the API uses and one for any other; latencies in fixed
 * buckets (upper bounds in seconds, the last +Inf). Non-cumulative counts:
 * the exposition sums them, so a scrape racing a request still writes
 * cumulative buckets whose +Inf equals _count. */
#define METRICS_STATUS_SLOTS 17
#define METRICS_BUCKETS 18

typedef struct route_metrics {
    _Atomic uint64_t by_status[METRICS_STATUS_SLOTS];
    _Atomic uint64_t buckets[METRICS_BUCKETS];
    _Atomic uint64_t sum_ns;
} route_metrics;

typedef struct server_metrics {
    route_metrics *routes;        /* routes_count() + 1 entries; the last: no route matched */
    size_t route_count;
    _Atomic uint64_t bytes_in;    /* request body bytes */
    _Atomic uint64_t bytes_out;   /* response body bytes */
    _Atomic uint64_t import_imported; /* documents committed by finished imports */
    _Atomic uint64_t import_skipped;  /* lines skipped by finished imports */
    _Atomic uint64_t import_errors;   /* bad lines reported by finished imports */
} server_metrics;

/* Which key a request presented (decided once per request). */
typedef enum server_role {
    ROLE_NONE = 0, /* no key configured, or a route that needs none */
    ROLE_ADMIN,    /* the API key (or auth is off): every route */
    ROLE_READONLY  /* the read-only key: GET routes and query only */
} server_role;

struct server {
    struct MHD_Daemon *daemon;
    int quiesced_fd;            /* listen socket handed back by MHD_quiesce_daemon, or -1 */
    uint16_t port;
    _Atomic int state;          /* server_state */
    tdb_db *_Atomic db;         /* set once by server_attach_db before state becomes READY */
    uint64_t started_ns;        /* clock_mono_ns at server_start, for uptime_s */
    /* Immutable after server_start: */
    uint64_t max_body_bytes;
    char *api_key;              /* NULL: auth off */
    char *readonly_api_key;     /* NULL: no read-only key */
    bool test_clock;
    /* idle_lock protects in_flight (requests between their first handler
     * call and their completion); idle_cond is signalled when it drops to 0. */
    pthread_mutex_t idle_lock;
    pthread_cond_t idle_cond;
    size_t in_flight;
    server_metrics metrics;
};

typedef struct route route;

/* A reply under construction. body is malloc'd and owned by the reply
 * until http.c hands it to libmicrohttpd. */
typedef struct server_reply {
    int status;
    char *body;
    size_t len;
    const char *content_type;   /* static string */
    char allow[48];             /* the Allow header of a 405, "" when none */
    bool retry_after;           /* 503: add "Retry-After: 1" */
    bool www_authenticate;      /* 401: add "WWW-Authenticate: Bearer" */
    bool close;                 /* add "Connection: close" */
} server_reply;

typedef struct server_request {
    server *srv;
    struct MHD_Connection *conn;
    const char *method;         /* libmicrohttpd's string, valid for the request */
    char *uri;                  /* raw request-target as sent (percent-encoded), owned */
    const char *query;          /* into uri: text after '?', or NULL */
    uint64_t start_ns;
    bool headers_done;          /* routes_prepare ran */
    bool replied;               /* a reply was queued */
    bool in_flight;             /* counted in srv->in_flight */
    bool has_early;             /* early holds a refusal to queue on the next call */
    /* Decided by routes_prepare: */
    const route *route;         /* NULL when no route matched */
    server_role role;
    char *segments[SERVER_MAX_SEGMENTS]; /* decoded path segments, owned */
    size_t segment_lens[SERVER_MAX_SEGMENTS];
    size_t segment_count;
    /* Body, collected by http.c: */
    buf body;
    uint64_t body_bytes;        /* bytes received, including discarded ones */
    bool body_too_big;          /* over max_body_bytes: discarded, answered 413 */
    server_reply early;         /* see has_early */
    /* A streamed route (routes_stream_*): */
    bool streaming;             /* the route streams: no body is collected */
    void *stream;               /* the route's state (a tdb_import), owned */
    int stream_rc;              /* 0, or the TDB_E* code that ended the stream early */
    tdb_error stream_err;       /* with stream_rc */
    /* For the access log: */
    int status;
    size_t bytes_out;
} server_request;


/* ---- routes.c ----------------------------------------------------------- */

/* First call, headers only: parses the path, picks the route, checks the
 * key, the Content-Type and the Content-Length. Returns 0 when the request
 * may go on (its body is then collected), or 1 with rep filled with the
 * refusal to send now. */
int routes_prepare(server_request *req, server_reply *rep);
/* Body complete: runs the handler and fills rep. */
void routes_run(server_request *req, server_reply *rep);
/* The pattern of the route for logs ("/v1/collections/{name}"), or "-". */
const char *routes_pattern(const server_request *req);
/* Streamed routes (see above). begin returns 0 to go on, or 1 with rep
 * filled with the refusal to send now. data never fails: a failure is kept
 * in req->stream_rc and answered by end. abandon frees the state without
 * replying (NULL state is a no-op). */
int routes_stream_begin(server_request *req, server_reply *rep);
void routes_stream_data(server_request *req, const char *data, size_t len);
void routes_stream_end(server_request *req, server_reply *rep);
void routes_stream_abandon(server_request *req);
/* The routing table, for metrics: its size, and the method and pattern
 * of entry i. routes_index is the request's entry, or routes_count() when
 * no route matched. routes_listed says whether entry i exists on this
 * server (the test-clock route only with --test-clock). */
size_t routes_count(void);
const char *routes_method_at(size_t i);
const char *routes_pattern_at(size_t i);
size_t routes_index(const server_request *req);
bool routes_listed(const server *srv, size_t i);

/* ---- metrics.c ---------------------------------------------------------- */

/* Allocates the counters (server_start). Returns 0 or TDB_ENOMEM. */
int metrics_init(server *srv);
void metrics_free(server *srv);
/* Counts one finished request: its routing-table entry, status (0: no
 * reply was sent) and duration. Lock-free. */
void metrics_record(server *srv, size_t route_index, int status, uint64_t duration_ns, uint64_t bytes_in,
                    uint64_t bytes_out);
/* The server's series, then the database's (tdb_metrics_text), as the
 * body of GET /metrics. */
int metrics_text(server *srv, tdb_db *db, char **out, tdb_error *err);

/* ---- respond.c ---------------------------------------------------------- */

/* Takes ownership of json (malloc'd, NUL-terminated). */
void reply_json(server_reply *rep, int status, char *json);
/* Copies a printf-formatted JSON body. */
void reply_jsonf(server_reply *rep, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"error": {"code": code, "message": message}} with status. */
void reply_error(server_reply *rep, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The error reply for a failed tdb_* call: status from err->code (400,
 * 404, 409, 413, 503 or 500; 500s are logged with their detail). */
void reply_tdb_error(server_reply *rep, const char *what, const tdb_error *err);
/* HTTP status of a TDB_E* code. */
int reply_status_of(int code);
void reply_free(server_reply *rep);

/* ---- url.c -------------------------------------------------------------- */

/* Percent-decodes s[0..len) into a new NUL-terminated string (the result
 * may contain NUL bytes; *out_len is its length). '+' stays '+' (RFC 3986:
 * only form encoding gives it a meaning). Returns 0, -1 on a malformed
 * escape ("%4" or "%zz"), TDB_ENOMEM on allocation failure. */
int url_decode(const char *s, size_t len, char **out, size_t *out_len);
/* Looks up key in a raw query string ("a=1&b=x%20y"). Returns 1 and a
 * decoded malloc'd *value (caller frees) when present (the last one wins),
 * 0 when absent, -1 on a malformed escape, TDB_ENOMEM. */
int url_query_get(const char *query, const char *key, char **value, size_t *value_len);

#endif
