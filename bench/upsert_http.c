/*
 * upsert_http.c: HTTP upsert load generator for a running `tierdb serve`.
 * Not built by CMake, not a test. Build (or `make -f bench/Makefile
 * upsert_http`):
 *
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra bench/upsert_http.c \
 *       -lpthread -o build-bench/upsert_http
 *
 * Run (bench/run_upsert.sh starts the server, creates the collection and
 * calls this for each setting):
 *
 *   upsert_http --host 127.0.0.1 --port P --collection C [--threads 4]
 *               [--seconds 20] [--warmup 2] [--batch 1000] [--dim 128]
 *               [--label TEXT]
 *
 * What it does: each of --threads client threads holds one keep-alive HTTP
 * connection and POSTs /v1/collections/C/documents as fast as the server
 * answers, each body a batch of --batch documents {"id", "vector"} of --dim
 * random floats in [-1, 1), written with 8 significant digits (what a
 * client printing float32 in shortest form sends, about 11 bytes a float).
 *
 * The client must not be the bottleneck, so bodies are serialized before
 * the clock starts: each thread owns BODIES_PER_THREAD bodies with
 * different vectors, and per request only the ids are patched in place:
 * every id is a fixed-width decimal "t<thread>-<counter>", so a request
 * rewrites 1000 x 12 digits (microseconds) and every document written is
 * new (an upsert that only replaced the same ids would keep the memtable
 * small and flatter the server). The send is one writev of header + body.
 *
 * Reported (one line of `key=value` pairs, easy to grep and to average):
 * requests, docs/s, MB/s of request bodies, and the p50/p99/max latency of
 * a request (from the first byte sent to the whole response read), over the
 * requests that started after --warmup seconds and ended within --seconds
 * after that. Any non-200 answer stops the run with the response printed.
 * Also docs_total (every document acknowledged, warm-up included: what
 * the server did while bench/run_upsert.sh measured its CPU time) and
 * client_cpu_s (this process's CPU time while sending, to show the client
 * is not what limits the run). With --server-pid PID (same machine), the
 * server's CPU time (all threads, flush and compaction included) over the
 * measured window: server_cores (CPU-seconds per second: how much of the
 * machine it got) and docs_per_server_cpu_s (what one core fully given to
 * the server would ingest, the figure that survives a busy machine).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Distinct vector sets per thread: enough that the server cannot benefit
 * from seeing the same bytes twice in a row, few enough to stay small
 * (8 x 1.4 MB per thread). */
#define BODIES_PER_THREAD 8
/* Digits of the per-thread document counter in an id: 10^10 documents per
 * thread is more than any run writes. */
#define ID_COUNTER_DIGITS 10
/* Latency samples kept per thread: a 1000-doc request takes >= ~5 ms, so
 * this covers runs of many minutes. */
#define MAX_SAMPLES_PER_THREAD (1u << 20)

typedef struct settings {
    const char *host;
    int port;
    const char *collection;
    int threads;
    double seconds;
    double warmup;
    int batch;
    int dim;
    const char *label;
    int server_pid; /* 0: do not measure the server's CPU time */
} settings;

typedef struct body {
    char *text;
    size_t len;
    size_t *id_digit_offsets; /* batch offsets of the ID_COUNTER_DIGITS digits */
} body;

typedef struct worker {
    const settings *cfg;
    int index;
    pthread_t thread;
    body bodies[BODIES_PER_THREAD];
    uint64_t next_doc;
    /* Results of the measured window. */
    double *lat_ms;
    size_t n_lat;
    uint64_t docs;
    uint64_t bytes;
    uint64_t docs_total; /* every acknowledged document, warm-up included */
    int failed;
} worker;

static double g_t_start;   /* measurement window start (monotonic seconds) */
static double g_t_end;     /* window end */
static atomic_int g_stop;  /* set by any failing worker */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: deterministic per thread, fast enough to fill 1.4 MB
 * bodies quickly. */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

/* utime + stime of a process, all threads, in seconds; -1 if unreadable. */
static double proc_cpu_s(int pid) {
    char path[64], line[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    /* Fields after the command name, which is in parentheses and may hold
     * spaces: state is field 3, utime 14, stime 15. */
    char *p = strrchr(line, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void die(const char *what) {
    fprintf(stderr, "upsert_http: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Appends with amortized growth; the buffers are built once, before the
 * clock starts, so simplicity wins over speed here. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 16;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) die("realloc");
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void build_body(body *bd, const settings *cfg, int thread, uint64_t *rng) {
    sbuf b = {0};
    char tmp[64];
    bd->id_digit_offsets = malloc((size_t)cfg->batch * sizeof *bd->id_digit_offsets);
    if (!bd->id_digit_offsets) die("malloc");
    sb_add(&b, "{\"documents\":[", 14);
    for (int i = 0; i < cfg->batch; i++) {
        int n = snprintf(tmp, sizeof tmp, "%s{\"id\":\"t%02d-", i ? "," : "", thread);
        sb_add(&b, tmp, (size_t)n);
        bd->id_digit_offsets[i] = b.len;
        sb_add(&b, "0000000000", ID_COUNTER_DIGITS);
        sb_add(&b, "\",\"vector\":[", 12);
        for (int d = 0; d < cfg->dim; d++) {
            /* 24 random bits -> [-1, 1), printed with 8 significant digits. */
            double x = (double)(rng_next(rng) >> 40) / (double)(1u << 23) - 1.0;
            n = snprintf(tmp, sizeof tmp, "%s%.8g", d ? "," : "", x);
            sb_add(&b, tmp, (size_t)n);
        }
        sb_add(&b, "]}", 2);
    }
    sb_add(&b, "]}", 2);
    bd->text = b.p;
    bd->len = b.len;
}

/* Writes doc numbers first..first+batch-1 into the body's ids. */
static void patch_ids(body *bd, int batch, uint64_t first) {
    for (int i = 0; i < batch; i++) {
        uint64_t v = first + (uint64_t)i;
        char *p = bd->text + bd->id_digit_offsets[i];
        for (int k = ID_COUNTER_DIGITS - 1; k >= 0; k--) {
            p[k] = (char)('0' + v % 10);
            v /= 10;
        }
    }
}

static int connect_to(const settings *cfg) {
    struct addrinfo hints = {0}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(cfg->host, port, &hints, &ai) != 0 || !ai) {
        fprintf(stderr, "upsert_http: cannot resolve %s\n", cfg->host);
        exit(2);
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) die("connect");
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static bool send_all(int fd, struct iovec *iov, int iovcnt) {
    while (iovcnt > 0) {
        ssize_t n = writev(fd, iov, iovcnt);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return true;
}

/* Reads one HTTP/1.1 response (headers + Content-Length body) into buf.
 * Returns the status code, or -1 on a closed/broken connection. *keep is
 * false when the server said Connection: close. */
static int read_response(int fd, char *buf, size_t cap, bool *keep) {
    size_t have = 0;
    char *hdr_end = NULL;
    while (!hdr_end) {
        if (have + 1 >= cap) return -1;
        ssize_t n = read(fd, buf + have, cap - 1 - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        have += (size_t)n;
        buf[have] = 0;
        hdr_end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -1;
    size_t body_len = 0;
    *keep = true;
    for (char *line = strstr(buf, "\r\n") + 2; line < hdr_end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "Content-Length:", 15) == 0) body_len = strtoul(line + 15, NULL, 10);
        if (strncasecmp(line, "Connection:", 11) == 0 && strstr(line, "close") &&
            strstr(line, "close") < strstr(line, "\r\n"))
            *keep = false;
    }
    size_t total = (size_t)(hdr_end + 4 - buf) + body_len;
    if (total + 1 > cap) return -1;
    while (have < total) {
        ssize_t n = read(fd, buf + have, total - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        have += (size_t)n;
    }
    buf[have] = 0;
    return status;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    const settings *cfg = w->cfg;
    char header[512];
    char resp[16384];
    int fd = connect_to(cfg);
    w->lat_ms = malloc(MAX_SAMPLES_PER_THREAD * sizeof *w->lat_ms);
    if (!w->lat_ms) die("malloc");
    for (uint64_t i = 0; !atomic_load(&g_stop); i++) {
        body *bd = &w->bodies[i % BODIES_PER_THREAD];
        patch_ids(bd, cfg->batch, w->next_doc);
        w->next_doc += (uint64_t)cfg->batch;
        int hl = snprintf(header, sizeof header,
                          "POST /v1/collections/%s/documents HTTP/1.1\r\n"
                          "Host: %s:%d\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          cfg->collection, cfg->host, cfg->port, bd->len);
        struct iovec iov[2] = {{header, (size_t)hl}, {bd->text, bd->len}};
        double t0 = now_s();
        if (t0 >= g_t_end) break;
        bool keep = true;
        int status = send_all(fd, iov, 2) ? read_response(fd, resp, sizeof resp, &keep) : -1;
        double t1 = now_s();
        if (status != 200) {
            if (status < 0)
                fprintf(stderr, "upsert_http: thread %d: connection lost\n", w->index);
            else
                fprintf(stderr, "upsert_http: thread %d: HTTP %d:\n%s\n", w->index, status, resp);
            w->failed = 1;
            atomic_store(&g_stop, 1);
            break;
        }
        w->docs_total += (uint64_t)cfg->batch;
        if (t0 >= g_t_start && t1 <= g_t_end) {
            if (w->n_lat < MAX_SAMPLES_PER_THREAD) w->lat_ms[w->n_lat++] = (t1 - t0) * 1e3;
            w->docs += (uint64_t)cfg->batch;
            w->bytes += bd->len;
        }
        if (!keep) {
            close(fd);
            fd = connect_to(cfg);
        }
    }
    close(fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void usage(void) {
    fprintf(stderr,
            "usage: upsert_http --port P --collection C [--host 127.0.0.1] [--threads 4]\n"
            "                   [--seconds 20] [--warmup 2] [--batch 1000] [--dim 128] [--label TEXT]\n"
            "                   [--server-pid PID]\n");
    exit(2);
}

int main(int argc, char **argv) {
    settings cfg = {"127.0.0.1", 0, NULL, 4, 20, 2, 1000, 128, "", 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) cfg.host = v;
        else if (!strcmp(a, "--port")) cfg.port = atoi(v);
        else if (!strcmp(a, "--collection")) cfg.collection = v;
        else if (!strcmp(a, "--threads")) cfg.threads = atoi(v);
        else if (!strcmp(a, "--seconds")) cfg.seconds = atof(v);
        else if (!strcmp(a, "--warmup")) cfg.warmup = atof(v);
        else if (!strcmp(a, "--batch")) cfg.batch = atoi(v);
        else if (!strcmp(a, "--dim")) cfg.dim = atoi(v);
        else if (!strcmp(a, "--label")) cfg.label = v;
        else if (!strcmp(a, "--server-pid")) cfg.server_pid = atoi(v);
        else usage();
    }
    if (cfg.port <= 0 || !cfg.collection || cfg.threads < 1 || cfg.batch < 1 || cfg.dim < 1 ||
        cfg.seconds <= 0 || cfg.warmup < 0)
        usage();

    worker *ws = calloc((size_t)cfg.threads, sizeof *ws);
    if (!ws) die("calloc");
    for (int t = 0; t < cfg.threads; t++) {
        uint64_t rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(t + 1) * 0xD1B54A32D192ED03ull);
        ws[t].cfg = &cfg;
        ws[t].index = t;
        for (int b = 0; b < BODIES_PER_THREAD; b++) build_body(&ws[t].bodies[b], &cfg, t, &rng);
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t = now_s();
    g_t_start = t + cfg.warmup;
    g_t_end = g_t_start + cfg.seconds;
    for (int i = 0; i < cfg.threads; i++)
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) die("pthread_create");
    /* The server's CPU time at both ends of the measured window. */
    double srv_cpu0 = -1, srv_cpu1 = -1;
    if (cfg.server_pid > 0) {
        struct timespec ts = {(time_t)cfg.warmup, (long)((cfg.warmup - (double)(time_t)cfg.warmup) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        srv_cpu0 = proc_cpu_s(cfg.server_pid);
        ts = (struct timespec){(time_t)cfg.seconds, (long)((cfg.seconds - (double)(time_t)cfg.seconds) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        srv_cpu1 = proc_cpu_s(cfg.server_pid);
    }

    size_t n_lat = 0;
    uint64_t docs = 0, bytes = 0, docs_total = 0;
    int failed = 0;
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(ws[i].thread, NULL);
        n_lat += ws[i].n_lat;
        docs += ws[i].docs;
        docs_total += ws[i].docs_total;
        bytes += ws[i].bytes;
        failed |= ws[i].failed;
    }
    getrusage(RUSAGE_SELF, &ru1);
    double client_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                        (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                        (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1e-6 +
                        (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e-6;
    double *lat = malloc((n_lat ? n_lat : 1) * sizeof *lat);
    if (!lat) die("malloc");
    size_t k = 0;
    for (int i = 0; i < cfg.threads; i++) {
        memcpy(lat + k, ws[i].lat_ms, ws[i].n_lat * sizeof *lat);
        k += ws[i].n_lat;
    }
    qsort(lat, n_lat, sizeof *lat, cmp_double);
    printf("%s%sthreads=%d batch=%d dim=%d seconds=%.1f requests=%zu docs=%llu docs_per_s=%.0f "
           "mb_per_s=%.1f body_kb=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f docs_total=%llu "
           "client_cpu_s=%.2f%s",
           cfg.label, *cfg.label ? " " : "", cfg.threads, cfg.batch, cfg.dim, cfg.seconds, n_lat,
           (unsigned long long)docs, (double)docs / cfg.seconds, (double)bytes / cfg.seconds / 1e6,
           (double)ws[0].bodies[0].len / 1024.0, percentile(lat, n_lat, 0.50),
           percentile(lat, n_lat, 0.99), n_lat ? lat[n_lat - 1] : 0.0,
           (unsigned long long)docs_total, client_cpu, "");
    if (srv_cpu0 >= 0 && srv_cpu1 >= srv_cpu0) {
        double c = srv_cpu1 - srv_cpu0;
        printf(" server_cpu_s=%.1f server_cores=%.2f docs_per_server_cpu_s=%.0f", c, c / cfg.seconds,
               c > 0 ? (double)docs / c : 0.0);
    }
    printf("%s\n", failed ? " FAILED" : "");
    return failed ? 1 : 0;
}
