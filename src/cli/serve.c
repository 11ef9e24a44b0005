/*
 * serve.c: `tierdb serve`: open the database, serve HTTP until signalled,
 * stop gracefully.
 * Layer: cli.
 *
 * Start-up order: bind the socket first (a bad or busy address fails in
 * milliseconds, before any data is touched; /health says "starting"
 * meanwhile), then tdb_open, then print `listening on http://HOST:PORT` —
 * the line scripts wait for (API.md "Starting the server"), so it appears
 * only once every route answers.
 *
 * Signals: the handler only writes one byte to a pipe (a self-pipe: the
 * handler may run on any thread, and almost nothing is safe inside it);
 * the main thread sleeps on the pipe and does the stopping. The first
 * SIGTERM or SIGINT stops gracefully: no new connections, running requests
 * finish (up to SERVE_DRAIN_TIMEOUT_MS), the daemon stops, tdb_close, exit
 * 0. A second signal during that exits at once with _exit (the WAL keeps
 * every acknowledged write, as after a kill).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "server/server.h"
#include "util/log.h"

/* How long a graceful stop waits for running requests: long enough for a
 * big query or upsert, short enough that supervisors (which usually wait
 * 20-30 s before SIGKILL) see a clean exit. */
#define SERVE_DRAIN_TIMEOUT_MS 10000

static int g_signal_pipe[2] = {-1, -1};
static atomic_int g_signals;

static void on_signal(int signo) {
    if (atomic_fetch_add(&g_signals, 1) > 0) _exit(128 + signo);
    int saved = errno;
    char c = (char)signo;
    ssize_t w = write(g_signal_pipe[1], &c, 1);
    (void)w;
    errno = saved;
}

static int install_signals(char *msg, size_t cap) {
    if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) {
        snprintf(msg, cap, "cannot create the signal pipe: %s", strerror(errno));
        return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* A client that hangs up mid-response must not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int wait_for_signal(void) {
    char c = 0;
    for (;;) {
        ssize_t n = read(g_signal_pipe[0], &c, 1);
        if (n == 1) return c;
        if (n < 0 && errno == EINTR) continue;
        return 0;
    }
}

static const char *fsync_name(tdb_fsync_policy p) {
    return p == TDB_FSYNC_ALWAYS ? "always" : p == TDB_FSYNC_INTERVAL ? "interval" : "none";
}

int cli_serve(const cli_settings *s) {
    char msg[512];
    log_set_level((log_level)s->log_level);
    if (install_signals(msg, sizeof msg) != 0) {
        fprintf(stderr, "tierdb: %s\n", msg);
        return CLI_EXIT_FAILURE;
    }

    server_config cfg = {
        .host = s->listen_host,
        .port = s->listen_port,
        .max_body_bytes = s->max_body_bytes,
        .api_key = s->api_key,
        .readonly_api_key = s->readonly_api_key,
        .test_clock = s->test_clock,
    };
    server *srv = NULL;
    tdb_error err;
    if (server_start(&cfg, &srv, &err) != 0) {
        fprintf(stderr, "tierdb: --listen %s: %s\n", s->listen, err.message);
        return CLI_EXIT_FAILURE;
    }

    tdb_options opts;
    tdb_options_default(&opts);
    opts.data_dir = s->data_dir;
    opts.object_store = s->object_store;
    opts.fsync = s->fsync;
    opts.fsync_interval_ms = s->fsync_interval_ms;
    opts.memtable_max_docs = s->memtable_max_docs;
    opts.memtable_max_bytes = s->memtable_max_bytes;
    opts.compaction_min_segments = s->compaction_min_segments;
    opts.compaction_idle_merge_ms = s->compaction_idle_merge_ms;
    opts.query_memory_budget = s->query_memory_budget;
    opts.test_clock = s->test_clock;
    opts.s3_endpoint = s->s3_endpoint;
    opts.s3_path_style = s->s3_path_style;
    opts.hot_memory_budget = s->hot_memory_budget;
    opts.hot_ttl_ms = s->hot_ttl_ms;
    opts.warm_ttl_ms = s->warm_ttl_ms;
    opts.access_window_ms = s->access_window_ms;
    opts.worker_interval_ms = s->worker_interval_ms;
    opts.promotion_threshold = s->promotion_threshold;
    opts.max_migrations_per_cycle = s->max_migrations_per_cycle;
    tdb_db *db = NULL;
    if (tdb_open(&opts, &db, &err) != 0) {
        fprintf(stderr, "tierdb: cannot open the data directory %s: %s (%s)\n", s->data_dir, err.message, err.name);
        server_destroy(srv);
        return CLI_EXIT_FAILURE;
    }
    server_attach_db(srv, db);

    /* The host as the user wrote it (with brackets for IPv6), the port as
     * bound. */
    bool v6 = strchr(s->listen_host, ':') != NULL;
    printf("listening on http://%s%s%s:%u\n", v6 ? "[" : "", s->listen_host, v6 ? "]" : "",
           (unsigned)server_port(srv));
    fflush(stdout);
    log_msg(LOG_INFO, "tierdb %s serving data %s on port %u (fsync %s, auth %s%s)", TDB_VERSION_STRING,
            s->data_dir, (unsigned)server_port(srv), fsync_name(s->fsync), s->api_key ? "on" : "off",
            s->test_clock ? ", test clock" : "");

    int signo = wait_for_signal();
    log_msg(LOG_INFO, "signal %d: stopping (new connections refused, waiting for running requests)", signo);
    server_quiesce(srv);
    if (!server_wait_idle(srv, SERVE_DRAIN_TIMEOUT_MS))
        log_msg(LOG_WARN, "requests still running after %d ms; stopping anyway", SERVE_DRAIN_TIMEOUT_MS);
    server_destroy(srv);
    tdb_close(db);
    log_msg(LOG_INFO, "stopped");
    return CLI_EXIT_OK;
}
