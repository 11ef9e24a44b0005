/*
 * http.c: the libmicrohttpd glue: daemon start and stop, one request's
 * life (context, body collection, reply), the access log, and the count of
 * requests in flight that a graceful stop waits for.
 * Layer: server.
 *
 * Threading model: one thread per connection (MHD_USE_THREAD_PER_CONNECTION
 * with an internal listening thread). Every handler calls into the
 * database and may block there: a write waits for its group-commit fsync,
 * a query may read segments from disk or the object store. With a pool of
 * N polling threads, one blocked handler stalls every connection served by
 * its thread; with a thread per connection a slow request holds only its
 * own connection, and concurrent writers reach the WAL together, which is
 * what lets group commit share one fsync among them. The cost, one thread
 * per open connection, is bounded by the connection limit, and idle
 * connections are closed after SERVER_IDLE_TIMEOUT_S.
 *
 * Hostile clients (docs/fuzzing.md "Hostile requests"):
 *   - Idle connections (a slowloris): an idle thread costs a stack mapping
 *     and a few KiB of RSS, so the limit is high (SERVER_MAX_CONNECTIONS,
 *     lowered to what RLIMIT_NOFILE leaves after SERVER_RESERVED_FDS for
 *     the database's files; the soft fd limit is first raised to the hard
 *     one). A thousand idle connections leave room for everyone else, and
 *     each is closed after SERVER_IDLE_TIMEOUT_S without a byte.
 *   - Memory: request bodies being collected and replies waiting to be
 *     sent are counted against one budget (srv_budget_bytes: 16 x the body
 *     limit); handlers running at once are capped (SERVER_MAX_RUNNING).
 *     A request that arrives while either is exhausted is answered
 *     503 overloaded with Retry-After: 1 before its body is read (one
 *     request is always admitted when nothing is held, so a body of the
 *     full limit still fits). /health and /metrics are exempt. So many
 *     concurrent large queries, or clients that do not read their
 *     answers, make others wait and retry rather than grow the process.
 *
 * A request's life in libmicrohttpd's access-handler protocol:
 *   1. uri_logger: the raw request-target arrives; the context is made.
 *   2. first on_request call (headers only): routes_prepare decides; a
 *      refusal is queued at once, so a 65 MiB body with a bad key or size
 *      is answered without being read (libmicrohttpd then closes the
 *      connection rather than read the rest).
 *   3. calls with upload data: appended to req->body, or counted and
 *      dropped once over the limit (a chunked body has no Content-Length
 *      to refuse it by up front). A streamed route (the import) gets each
 *      piece at once instead (routes_stream_data) and no limit applies:
 *      libmicrohttpd hands over at most a connection buffer at a time and
 *      reads no more until the piece is consumed, so a slow database
 *      slows the client down (TCP flow control) rather than filling RAM.
 *   4. last call (no more data): routes_run (or routes_stream_end), then
 *      the reply is queued.
 *   5. on_completed: the access log line and the request metrics; a
 *      stream the client abandoned is freed; the context is freed.
 * Percent-decoding is done by url.c, per path segment; libmicrohttpd's own
 * unescaping is replaced by a no-op so the path reaches us as sent.
 */
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/request.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

/* Open connections at once: each holds a thread (mostly an untouched stack
 * mapping while idle); beyond this libmicrohttpd refuses new ones until
 * some close. Lowered when file descriptors are scarcer (see above). */
#define SERVER_MAX_CONNECTIONS 4096
/* File descriptors kept for the database (WAL, segments, object store
 * connections) when sizing the connection limit from RLIMIT_NOFILE. */
#define SERVER_RESERVED_FDS 512
/* Handlers running at once (a query, an upsert...); more get 503. High
 * enough for many writers waiting together on one group-commit fsync. */
#define SERVER_MAX_RUNNING 256
/* Budget of held request bodies and unsent replies: this many times the
 * body limit (1 GiB with the default 64 MiB; a body's buffer may take up
 * to twice its size, so a few bodies of the full limit still fit). */
#define SERVER_BUDGET_BODIES 16
/* A kept-alive connection idle this long is closed, freeing its thread. */
#define SERVER_IDLE_TIMEOUT_S 120
/* Per-connection memory for the request line and headers. Ids of 512
 * bytes percent-encoded take up to 1.5 KB of URL; 64 KiB leaves room for
 * long header sets. */
#define SERVER_CONNECTION_MEMORY_BYTES (64u << 10)

/* Bytes held by request bodies and unsent replies, and handlers running:
 * process-wide, like the memory they stand for. */
static _Atomic int64_t held_bytes;
static _Atomic int running_handlers;

static uint64_t srv_budget_bytes(const server *srv) { return srv->max_body_bytes * SERVER_BUDGET_BODIES; }

static void held_add(int64_t delta) {
    if (delta != 0) atomic_fetch_add(&held_bytes, delta);
}

/* buf_reserve on the body (room for `extra` more bytes), keeping
 * held_bytes in step with its capacity. */
static bool body_reserve(server_request *req, size_t extra) {
    size_t before = req->body.cap;
    bool ok = buf_reserve(&req->body, extra);
    held_add((int64_t)req->body.cap - (int64_t)before);
    return ok;
}

static void body_release(server_request *req) {
    held_add(-(int64_t)req->body.cap);
    buf_free(&req->body);
}

static server_request *request_new(server *srv, const char *uri) {
    server_request *req = calloc(1, sizeof *req);
    if (req == NULL) return NULL;
    req->srv = srv;
    req->start_ns = clock_mono_ns();
    req->uri = strdup(uri ? uri : "/");
    if (req->uri == NULL) {
        free(req);
        return NULL;
    }
    return req;
}

static void request_free(server_request *req) {
    if (req == NULL) return;
    routes_stream_abandon(req); /* first: its log line names the collection segment */
    free(req->uri);
    for (size_t i = 0; i < req->segment_count; i++) free(req->segments[i]);
    body_release(req);
    reply_free(&req->early);
    free(req);
}

/* MHD_OPTION_URI_LOG_CALLBACK: called with the raw request-target before
 * libmicrohttpd parses it; its result becomes the request context. */
static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn) {
    (void)conn;
    return request_new(cls, uri);
}

/* MHD_OPTION_UNESCAPE_CALLBACK: leave the text as sent (see url.c). */
static size_t unescape_none(void *cls, struct MHD_Connection *conn, char *s) {
    (void)cls;
    (void)conn;
    return strlen(s);
}

/* libmicrohttpd closes a connection idle for longer than its timeout, and
 * a handler blocked in the database (an import batch waiting for a flush,
 * a slow query) looks idle: the connection would be dropped the moment
 * the handler returns. So the timeout is off while our code runs, and set
 * again after, which (libmicrohttpd's rule when it goes from 0 to a value)
 * also counts as activity. A client that stops sending still times out:
 * the timeout is on while we wait for its bytes. */
static void busy_begin(struct MHD_Connection *conn) {
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
}

static void busy_end(struct MHD_Connection *conn) {
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)SERVER_IDLE_TIMEOUT_S);
}

static void in_flight_add(server *srv, int delta) {
    pthread_mutex_lock(&srv->idle_lock);
    if (delta > 0) srv->in_flight++;
    else srv->in_flight--;
    if (srv->in_flight == 0) pthread_cond_broadcast(&srv->idle_cond);
    pthread_mutex_unlock(&srv->idle_lock);
}

/* A reply body handed to libmicrohttpd, counted in held_bytes until it
 * has been sent and libmicrohttpd frees it. */
typedef struct held_reply {
    char *body;
    size_t bytes;
} held_reply;

static void held_reply_free(void *cls) {
    held_reply *h = cls;
    held_add(-(int64_t)h->bytes);
    free(h->body);
    free(h);
}

static enum MHD_Result queue_reply(server_request *req, server_reply *rep) {
    req->replied = true;
    req->status = rep->status;
    req->bytes_out = rep->len;
    struct MHD_Response *resp;
    held_reply *h = rep->body ? malloc(sizeof *h) : NULL;
    if (h != NULL) {
        h->body = rep->body;
        h->bytes = rep->len;
        held_add((int64_t)h->bytes);
        resp = MHD_create_response_from_buffer_with_free_callback_cls(rep->len, rep->body, held_reply_free, h);
        if (resp == NULL) {
            held_add(-(int64_t)h->bytes);
            free(h);
        }
    } else {
        resp = MHD_create_response_from_buffer_with_free_callback(rep->len, rep->body ? rep->body : (char *)"",
                                                                  rep->body ? free : NULL);
    }
    if (resp == NULL) {
        reply_free(rep);
        return MHD_NO; /* drops the connection: nothing better can be done without memory */
    }
    rep->body = NULL; /* now owned by resp */
    enum MHD_Result ok = MHD_YES;
    if (rep->content_type) ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
    if (rep->allow[0]) ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (rep->retry_after) ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (rep->www_authenticate) ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    /* While stopping, kept-alive clients should go and find the successor. */
    if (rep->close || atomic_load(&req->srv->state) == SERVER_STOPPING)
        ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (ok != MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    enum MHD_Result r = MHD_queue_response(req->conn, (unsigned int)rep->status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Appends one piece of body, or only counts it once over the limit. */
static void body_take(server_request *req, const char *data, size_t len) {
    req->body_bytes += len;
    if (req->body_too_big) return;
    if (req->body_bytes > req->srv->max_body_bytes) {
        req->body_too_big = true;
        body_release(req);
        return;
    }
    if (!body_reserve(req, len)) return; /* buf_failed: answered 503 at the end */
    buf_append(&req->body, data, len);
}

/* /health and /metrics answer whatever the load: they are how an operator
 * sees it. */
static bool exempt_from_budget(const server_request *req) {
    const char *pattern = routes_pattern(req);
    return pattern != NULL && (strcmp(pattern, "/health") == 0 || strcmp(pattern, "/metrics") == 0);
}

/* Admission of a request whose body (`body_len` bytes announced, 0 when
 * unknown) is about to be collected: 0, or 503 overloaded in rep. */
static int admit(server_request *req, unsigned long long body_len, server_reply *rep) {
    if (exempt_from_budget(req)) return 0;
    uint64_t budget = srv_budget_bytes(req->srv);
    int64_t held = atomic_load(&held_bytes);
    if (atomic_load(&running_handlers) >= SERVER_MAX_RUNNING ||
        (held > 0 && (uint64_t)held + body_len > budget)) {
        reply_error(rep, 503, "overloaded",
                    "the server is busy (%d requests running, %lld bytes of bodies and answers held, budget "
                    "%llu); retry later",
                    atomic_load(&running_handlers), (long long)held, (unsigned long long)budget);
        rep->retry_after = true;
        return -1;
    }
    return 0;
}

static void run_begin(struct MHD_Connection *conn) {
    atomic_fetch_add(&running_handlers, 1);
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
}

static void run_end(struct MHD_Connection *conn) {
    atomic_fetch_sub(&running_handlers, 1);
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)SERVER_IDLE_TIMEOUT_S);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    server *srv = cls;
    server_request *req = *con_cls;
    if (req == NULL) {
        /* The URI callback failed to allocate; try once more. */
        req = request_new(srv, url);
        if (req == NULL) return MHD_NO;
        *con_cls = req;
    }
    if (!req->headers_done) {
        req->headers_done = true;
        req->conn = conn;
        req->method = method;
        req->in_flight = true;
        in_flight_add(srv, +1);
        server_reply rep = {0};
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        bool body_coming = (cl != NULL && strtoull(cl, NULL, 10) > 0) ||
                           MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
        int refused = routes_prepare(req, &rep);
        if (refused == 0 && !req->streaming)
            refused = admit(req, cl != NULL ? strtoull(cl, NULL, 10) : 0, &rep);
        if (refused == 0 && req->streaming) refused = routes_stream_begin(req, &rep);
        if (refused != 0) {
            if (body_coming) {
                /* Refused before the body: answer now, without reading
                 * it; libmicrohttpd then closes the connection. */
                rep.close = true;
                return queue_reply(req, &rep);
            }
            /* No body: answering on the next call (the request is then
             * complete) keeps the connection alive. */
            req->early = rep;
            req->has_early = true;
            return MHD_YES;
        }
        if (cl != NULL && !req->streaming) {
            /* Size the buffer once: doubling growth would need twice the
             * memory of a big body. routes_prepare bounded the value. */
            unsigned long long n = strtoull(cl, NULL, 10);
            if (n > 0 && !body_reserve(req, (size_t)n + 1)) {
                server_reply oom = {0};
                reply_error(&oom, 503, "out_of_memory", "no memory for a body of %llu bytes; retry later", n);
                oom.close = true;
                return queue_reply(req, &oom);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (req->replied || req->has_early) {
            /* refused: the body is dropped */
        } else if (req->streaming) {
            req->body_bytes += *upload_data_size;
            busy_begin(conn);
            routes_stream_data(req, upload_data, *upload_data_size);
            busy_end(conn);
        } else {
            body_take(req, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->replied) return MHD_YES;
    if (req->has_early) {
        req->has_early = false;
        return queue_reply(req, &req->early);
    }
    server_reply rep = {0};
    if (req->streaming) {
        busy_begin(conn);
        routes_stream_end(req, &rep);
        busy_end(conn);
        return queue_reply(req, &rep);
    }
    if (buf_failed(&req->body)) {
        reply_error(&rep, 503, "out_of_memory", "no memory for the request body; retry later");
        return queue_reply(req, &rep);
    }
    run_begin(conn);
    routes_run(req, &rep);
    run_end(conn);
    /* The body is no longer needed; the reply is counted instead. */
    body_release(req);
    return queue_reply(req, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    server *srv = cls;
    server_request *req = *con_cls;
    *con_cls = NULL;
    if (req == NULL) return;
    if (req->headers_done) {
        uint64_t ns = clock_mono_ns() - req->start_ns;
        double ms = (double)ns / 1e6;
        metrics_record(srv, routes_index(req), req->replied ? req->status : 0, ns, req->body_bytes,
                       req->replied ? req->bytes_out : 0);
        /* The route's pattern, never the raw path: ids and names may be
         * private, and a pattern groups requests for reading the log. */
        log_msg(LOG_INFO, "http method=%s route=%s status=%d ms=%.2f in=%llu out=%zu%s", req->method,
                routes_pattern(req), req->replied ? req->status : 0, ms,
                (unsigned long long)req->body_bytes, req->bytes_out,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    }
    if (req->in_flight) in_flight_add(srv, -1);
    request_free(req);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    log_msg(LOG_DEBUG, "http: %s", line);
}

/* Raises the soft RLIMIT_NOFILE to the hard one (the common soft default
 * of 1024 would otherwise be used up by idle connections, and the database
 * could no longer open its files), then sizes the connection limit to
 * leave SERVER_RESERVED_FDS for the database. */
static unsigned int connection_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return SERVER_MAX_CONNECTIONS;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl.rlim_cur = rl.rlim_max;
    }
    rlim_t fds = rl.rlim_cur;
    unsigned int limit = SERVER_MAX_CONNECTIONS;
    if (fds != RLIM_INFINITY && fds < (rlim_t)SERVER_MAX_CONNECTIONS + SERVER_RESERVED_FDS)
        limit = fds > (rlim_t)2 * SERVER_RESERVED_FDS ? (unsigned int)(fds - SERVER_RESERVED_FDS) : (unsigned int)(fds / 2);
    if (limit < SERVER_MAX_CONNECTIONS)
        log_msg(LOG_WARN, "http: the file descriptor limit (%llu) allows %u connections at once, not %u; raise "
                          "`ulimit -n` for more",
                (unsigned long long)fds, limit, (unsigned)SERVER_MAX_CONNECTIONS);
    return limit;
}

int server_start(const server_config *cfg, server **out, tdb_error *err) {
    *out = NULL;
    int rc = 0;
    struct addrinfo *ai = NULL;
    server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
    srv->quiesced_fd = -1;
    srv->started_ns = clock_mono_ns();
    srv->max_body_bytes = cfg->max_body_bytes ? cfg->max_body_bytes : SERVER_DEFAULT_MAX_BODY_BYTES;
    srv->test_clock = cfg->test_clock;
    atomic_store(&srv->state, SERVER_STARTING);
    pthread_mutex_init(&srv->idle_lock, NULL);
    pthread_cond_init(&srv->idle_cond, NULL);
    if (metrics_init(srv) != 0) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    if (cfg->api_key && cfg->api_key[0] && (srv->api_key = strdup(cfg->api_key)) == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    if (cfg->readonly_api_key && cfg->readonly_api_key[0] &&
        (srv->readonly_api_key = strdup(cfg->readonly_api_key)) == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }

    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%u", (unsigned)cfg->port);
    int gai = getaddrinfo(cfg->host, port_text, &hints, &ai);
    if (gai != 0) {
        rc = tdb_err(err, TDB_EINVAL, "invalid_listen", "cannot resolve listen host '%s': %s", cfg->host,
                     gai_strerror(gai));
        goto done;
    }
    unsigned int max_connections = connection_limit();
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                         MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, on_request, srv,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_URI_LOG_CALLBACK, uri_logger, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_LIMIT, max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)SERVER_IDLE_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVER_CONNECTION_MEMORY_BYTES,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv,
        MHD_OPTION_END);
    if (srv->daemon == NULL) {
        rc = tdb_err(err, TDB_EIO, "listen_failed",
                     "cannot listen on %s port %u (address in use, or not an address of this host?)",
                     cfg->host, (unsigned)cfg->port);
        goto done;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
done:
    if (ai) freeaddrinfo(ai);
    if (rc != 0) {
        server_destroy(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

uint16_t server_port(const server *srv) { return srv->port; }

void server_attach_db(server *srv, tdb_db *db) {
    atomic_store(&srv->db, db);
    atomic_store(&srv->state, SERVER_READY);
}

void server_quiesce(server *srv) {
    atomic_store(&srv->state, SERVER_STOPPING);
    if (srv->daemon != NULL && srv->quiesced_fd < 0) {
        MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
        srv->quiesced_fd = fd == MHD_INVALID_SOCKET ? -1 : fd;
    }
}

bool server_wait_idle(server *srv, uint64_t timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv->idle_lock);
    while (srv->in_flight > 0) {
        if (pthread_cond_timedwait(&srv->idle_cond, &srv->idle_lock, &deadline) != 0) break;
    }
    bool idle = srv->in_flight == 0;
    pthread_mutex_unlock(&srv->idle_lock);
    return idle;
}

void server_destroy(server *srv) {
    if (srv == NULL) return;
    if (srv->daemon != NULL) MHD_stop_daemon(srv->daemon);
    /* Only after MHD_stop_daemon: its threads may still use the socket. */
    if (srv->quiesced_fd >= 0) close(srv->quiesced_fd);
    pthread_cond_destroy(&srv->idle_cond);
    pthread_mutex_destroy(&srv->idle_lock);
    metrics_free(srv);
    free(srv->api_key);
    free(srv->readonly_api_key);
    free(srv);
}
