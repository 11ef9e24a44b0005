/*
 * metrics.c: the HTTP server's own metrics (requests per route and status,
 * latency histograms per route, bytes, imports) and the body of GET
 * /metrics, which appends the database's series (tdb_metrics_text).
 * Layer: server. docs/operations.md lists every series.
 *
 * Counting is lock-free: each finished request adds to a few atomic
 * counters of its route (relaxed order: counts need no ordering with
 * anything else). A scrape reads them one by one, so it may see a request
 * in one counter and not yet in another; the histogram is written from one
 * read of each bucket, so its buckets are cumulative and its +Inf bucket
 * equals its _count even then. Routes are labelled by method and pattern
 * ("/v1/collections/{name}"), never by raw path: a bounded label set, and
 * no names or ids in the metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/error.h"

/* Statuses the API answers with (API.md Conventions), then "other". Slot
 * 0 is a request that got no reply (the client went away first). */
static const int status_codes[METRICS_STATUS_SLOTS - 2] = {200, 201, 400, 401, 403, 404, 405, 409,
                                                           413, 415, 429, 500, 503, 100, 204};
#define SLOT_NONE 0
#define SLOT_OTHER (METRICS_STATUS_SLOTS - 1)

/* Latency bucket upper bounds, in seconds as written in the "le" label:
 * from 100 us (a point read of a hot collection) to 30 s (a big import
 * batch, a cold promotion); the last is +Inf. */
static const char *const bucket_le[METRICS_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "30",    "+Inf"};
static const uint64_t bucket_ns[METRICS_BUCKETS - 1] = {
    100000ull,    250000ull,    500000ull,     1000000ull,    2500000ull,    5000000ull,
    10000000ull,  25000000ull,  50000000ull,   100000000ull,  250000000ull,  500000000ull,
    1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull, 30000000000ull};

int metrics_init(server *srv) {
    server_metrics *m = &srv->metrics;
    m->route_count = routes_count() + 1;
    m->routes = calloc(m->route_count, sizeof *m->routes);
    return m->routes ? 0 : TDB_ENOMEM;
}

void metrics_free(server *srv) {
    free(srv->metrics.routes);
    srv->metrics.routes = NULL;
}

static size_t status_slot(int status) {
    if (status == 0) return SLOT_NONE;
    for (size_t i = 0; i < sizeof status_codes / sizeof status_codes[0]; i++)
        if (status_codes[i] == status) return i + 1;
    return SLOT_OTHER;
}

void metrics_record(server *srv, size_t route_index, int status, uint64_t duration_ns, uint64_t bytes_in,
                    uint64_t bytes_out) {
    server_metrics *m = &srv->metrics;
    if (m->routes == NULL) return;
    if (route_index >= m->route_count) route_index = m->route_count - 1;
    route_metrics *r = &m->routes[route_index];
    atomic_fetch_add_explicit(&r->by_status[status_slot(status)], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < METRICS_BUCKETS - 1 && duration_ns > bucket_ns[b]) b++;
    atomic_fetch_add_explicit(&r->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_ns, duration_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->bytes_in, bytes_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->bytes_out, bytes_out, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }

static void family(buf *b, const char *name, const char *type, const char *help) {
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The labels of routing-table entry i (patterns hold no '"', '\\' or
 * newline, so they need no escaping). */
static void route_labels(buf *b, size_t i) {
    if (i >= routes_count()) buf_puts(b, "method=\"\",route=\"none\"");
    else buf_printf(b, "method=\"%s\",route=\"%s\"", routes_method_at(i), routes_pattern_at(i));
}

static bool route_shown(const server *srv, size_t i) {
    return i >= routes_count() || routes_listed(srv, i);
}

static void write_requests(buf *b, server *srv) {
    server_metrics *m = &srv->metrics;
    family(b, "tierdb_http_requests_total", "counter",
           "HTTP requests finished, by route and status (status \"none\": the client left before the reply).");
    for (size_t i = 0; i < m->route_count; i++) {
        if (!route_shown(srv, i)) continue;
        for (size_t s = 0; s < METRICS_STATUS_SLOTS; s++) {
            uint64_t n = load(&m->routes[i].by_status[s]);
            if (n == 0) continue; /* only statuses that happened: the label set stays small */
            buf_puts(b, "tierdb_http_requests_total{");
            route_labels(b, i);
            if (s == SLOT_NONE) buf_puts(b, ",status=\"none\"");
            else if (s == SLOT_OTHER) buf_puts(b, ",status=\"other\"");
            else buf_printf(b, ",status=\"%d\"", status_codes[s - 1]);
            buf_printf(b, "} %llu\n", (unsigned long long)n);
        }
    }
    family(b, "tierdb_http_request_duration_seconds", "histogram",
           "Time from a request's first byte to its completion, by route (an import: its whole upload).");
    for (size_t i = 0; i < m->route_count; i++) {
        if (!route_shown(srv, i)) continue;
        route_metrics *r = &m->routes[i];
        uint64_t counts[METRICS_BUCKETS];
        for (size_t k = 0; k < METRICS_BUCKETS; k++) counts[k] = load(&r->buckets[k]);
        uint64_t cumulative = 0;
        for (size_t k = 0; k < METRICS_BUCKETS; k++) {
            cumulative += counts[k];
            buf_puts(b, "tierdb_http_request_duration_seconds_bucket{");
            route_labels(b, i);
            buf_printf(b, ",le=\"%s\"} %llu\n", bucket_le[k], (unsigned long long)cumulative);
        }
        buf_puts(b, "tierdb_http_request_duration_seconds_sum{");
        route_labels(b, i);
        buf_printf(b, "} %.9f\n", (double)load(&r->sum_ns) / 1e9);
        buf_puts(b, "tierdb_http_request_duration_seconds_count{");
        route_labels(b, i);
        buf_printf(b, "} %llu\n", (unsigned long long)cumulative);
    }
}

int metrics_text(server *srv, tdb_db *db, char **out, tdb_error *err) {
    *out = NULL;
    server_metrics *m = &srv->metrics;
    buf b = BUF_INIT;
    family(&b, "tierdb_build_info", "gauge", "Always 1; the label says which version runs.");
    buf_printf(&b, "tierdb_build_info{version=\"%s\"} 1\n", TDB_VERSION_STRING);
    family(&b, "tierdb_uptime_seconds", "gauge", "Seconds since the server started.");
    buf_printf(&b, "tierdb_uptime_seconds %.3f\n", (double)(clock_mono_ns() - srv->started_ns) / 1e9);
    pthread_mutex_lock(&srv->idle_lock);
    size_t in_flight = srv->in_flight;
    pthread_mutex_unlock(&srv->idle_lock);
    family(&b, "tierdb_http_requests_in_flight", "gauge", "HTTP requests being served (this scrape included).");
    buf_printf(&b, "tierdb_http_requests_in_flight %zu\n", in_flight);
    if (m->routes) write_requests(&b, srv);
    family(&b, "tierdb_http_received_bytes_total", "counter", "Request body bytes received.");
    buf_printf(&b, "tierdb_http_received_bytes_total %llu\n", (unsigned long long)load(&m->bytes_in));
    family(&b, "tierdb_http_sent_bytes_total", "counter", "Response body bytes sent.");
    buf_printf(&b, "tierdb_http_sent_bytes_total %llu\n", (unsigned long long)load(&m->bytes_out));
    family(&b, "tierdb_import_lines_total", "counter",
           "Lines of finished NDJSON imports by result: imported (committed), skipped, error (every bad line).");
    buf_printf(&b, "tierdb_import_lines_total{result=\"imported\"} %llu\n",
               (unsigned long long)load(&m->import_imported));
    buf_printf(&b, "tierdb_import_lines_total{result=\"skipped\"} %llu\n",
               (unsigned long long)load(&m->import_skipped));
    buf_printf(&b, "tierdb_import_lines_total{result=\"error\"} %llu\n",
               (unsigned long long)load(&m->import_errors));
    if (db != NULL) {
        char *dbtext = NULL;
        int rc = tdb_metrics_text(db, &dbtext, err);
        if (rc != 0) {
            buf_free(&b);
            return rc;
        }
        buf_puts(&b, dbtext);
        tdb_free(dbtext);
    }
    if (buf_failed(&b)) {
        buf_free(&b);
        return tdb_err(err, TDB_ENOMEM, "out_of_memory", "out of memory writing metrics");
    }
    *out = buf_steal(&b);
    return 0;
}
