/*
 * mixed_load.c: a mixed query/upsert HTTP load generator for a running
 * `tierdb serve`. Not built by CMake, not a test. Build:
 *
 *   cc -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra bench/mixed_load.c -lpthread -lm \
 *      -o build-bench/mixed_load
 *
 * bench/mixed_load.sh starts a server, loads the collection and runs this;
 * alone:
 *
 *   mixed_load --port P --collection C [--host 127.0.0.1] [--connections 16]
 *              [--seconds 60] [--warmup 5] [--dim 128] [--ids 100000]
 *              [--write-ratio 0.10] [--top-k 10] [--seed 1] [--server-pid PID]
 *
 * What it does: --connections threads, each with one keep-alive HTTP/1.1
 * connection, send requests back to back (a closed loop: the next request
 * leaves when the answer to the previous one is read). Each request is an
 * upsert with probability --write-ratio, else a query:
 *   - query: POST /v1/collections/C/query {"vector": [dim random floats],
 *     "top_k": K} (attributes are returned, as clients usually ask);
 *   - upsert: POST /v1/collections/C/documents with one document whose id
 *     is drawn from the --ids existing ids (so the collection keeps its
 *     size and writes replace documents, as in a live system) and a random
 *     vector.
 * Bodies are serialized before the clock starts (a pool per thread), so
 * the client spends its time on the socket, not on printing floats.
 *
 * Reported after the run, one `key=value` line per operation kind and one
 * for all: requests, errors (non-200 answers and failed connections, which
 * are reconnected), throughput (requests/s over the measured window),
 * latency p50/p90/p99/max in ms, from the request's first byte to its
 * answer's last byte, over requests that started after --warmup seconds.
 * With --server-pid, the server's CPU time over the window (server_cores:
 * CPU-seconds per second), and client_cpu_s (this process), because on a
 * shared machine the throughput means little without them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
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
#include <time.h>
#include <unistd.h>

#define BODIES_PER_THREAD 256   /* distinct query and upsert bodies each thread cycles through */
#define RESPONSE_MAX_BYTES (4u << 20)
#define MAX_CONNECTIONS 1024
#define OP_QUERY 0
#define OP_UPSERT 1
#define OP_KINDS 2

typedef struct options {
    const char *host;
    int port;
    const char *collection;
    int connections;
    double seconds, warmup;
    int dim;
    long ids;
    double write_ratio;
    int top_k;
    unsigned long long seed;
    long server_pid;
} options;

typedef struct samples {
    double *ms;
    size_t n, cap;
    uint64_t errors;
} samples;

typedef struct worker {
    const options *o;
    int index;
    char *query_bodies[BODIES_PER_THREAD];
    char *upsert_bodies[BODIES_PER_THREAD];
    samples kind[OP_KINDS];
    uint64_t reconnects;
    char first_error[256];
} worker;

static struct sockaddr_storage g_addr;
static socklen_t g_addr_len;
static double g_start, g_measure_from, g_stop_at;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd_unit(uint64_t *s) { return (double)(rnd_next(s) >> 11) / 9007199254740992.0; }

static char *vector_text(uint64_t *s, int dim, size_t *len) {
    size_t cap = (size_t)dim * 12 + 4;
    char *b = malloc(cap), *p = b;
    *p++ = '[';
    for (int k = 0; k < dim; k++) p += sprintf(p, "%s%.6f", k ? "," : "", rnd_unit(s) * 2 - 1);
    *p++ = ']';
    *p = '\0';
    *len = (size_t)(p - b);
    return b;
}

static void samples_add(samples *s, double ms) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->ms = realloc(s->ms, s->cap * sizeof *s->ms);
        if (s->ms == NULL) {
            fprintf(stderr, "mixed_load: out of memory\n");
            exit(1);
        }
    }
    s->ms[s->n++] = ms;
}

static int connect_server(void) {
    int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&g_addr, g_addr_len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads one response (status line, headers, Content-Length body). Returns
 * the status, or -1 when the connection failed. */
static int read_response(int fd, char *buf, size_t cap, bool *keep_alive) {
    size_t have = 0;
    char *head_end = NULL;
    while (head_end == NULL) {
        if (have == cap) return -1;
        ssize_t r = recv(fd, buf + have, cap - have, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        have += (size_t)r;
        buf[have < cap ? have : cap - 1] = '\0';
        head_end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -1;
    size_t head_len = (size_t)(head_end - buf) + 4;
    size_t body_len = 0;
    *keep_alive = true;
    for (char *line = strstr(buf, "\r\n") + 2; line < head_end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "Content-Length:", 15) == 0) body_len = strtoull(line + 15, NULL, 10);
        if (strncasecmp(line, "Connection:", 11) == 0 && strstr(line, "close") && strstr(line, "close") < strstr(line, "\r\n"))
            *keep_alive = false;
    }
    size_t total = head_len + body_len;
    if (total > cap) return -1;
    while (have < total) {
        ssize_t r = recv(fd, buf + have, total - have, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        have += (size_t)r;
    }
    return status;
}

static void *work(void *arg) {
    worker *w = arg;
    const options *o = w->o;
    uint64_t rs = o->seed * 1000003ull + (uint64_t)w->index;
    char *resp = malloc(RESPONSE_MAX_BYTES);
    int fd = -1;
    size_t k = 0;
    while (now_s() < g_stop_at) {
        int op = rnd_unit(&rs) < o->write_ratio ? OP_UPSERT : OP_QUERY;
        const char *req = op == OP_UPSERT ? w->upsert_bodies[k % BODIES_PER_THREAD] : w->query_bodies[k % BODIES_PER_THREAD];
        k++;
        if (fd < 0) {
            fd = connect_server();
            w->reconnects++;
            if (fd < 0) {
                w->kind[op].errors++;
                usleep(10000);
                continue;
            }
        }
        double t0 = now_s();
        bool keep = true;
        int status = send_all(fd, req, strlen(req)) ? read_response(fd, resp, RESPONSE_MAX_BYTES, &keep) : -1;
        double t1 = now_s();
        if (status != 200) {
            if (t0 >= g_measure_from) w->kind[op].errors++;
            if (w->first_error[0] == '\0')
                snprintf(w->first_error, sizeof w->first_error, "%s -> %s%d%.160s", op ? "upsert" : "query",
                         status < 0 ? "connection failed " : "HTTP ", status, status > 0 ? strstr(resp, "\r\n\r\n") : "");
        } else if (t0 >= g_measure_from && t1 <= g_stop_at) {
            samples_add(&w->kind[op], (t1 - t0) * 1e3);
        }
        if (status < 0 || !keep) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) close(fd);
    free(resp);
    return NULL;
}

static char *make_request(const options *o, const char *path, const char *body) {
    size_t n = strlen(body) + strlen(path) + strlen(o->collection) + 256;
    char *r = malloc(n);
    snprintf(r, n,
             "POST /v1/collections/%s/%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             o->collection, path, o->host, o->port, strlen(body), body);
    return r;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const samples *s, double p) {
    if (s->n == 0) return NAN;
    size_t i = (size_t)ceil(p / 100.0 * (double)s->n);
    if (i > 0) i--;
    if (i >= s->n) i = s->n - 1;
    return s->ms[i];
}

static double cpu_of_pid(long pid) {
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return NAN;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    char *p = strrchr(line, ')');
    if (p == NULL) return NAN;
    unsigned long long ut = 0, st = 0;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return NAN;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void report(const char *label, const samples *s, double window) {
    printf("%s requests=%zu errors=%llu rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", label, s->n,
           (unsigned long long)s->errors, (double)s->n / window, pct(s, 50), pct(s, 90), pct(s, 99),
           s->n ? s->ms[s->n - 1] : NAN);
}

static int usage(void) {
    fprintf(stderr, "usage: mixed_load --port P --collection C [--host H] [--connections 16] [--seconds 60]\n"
                    "                  [--warmup 5] [--dim 128] [--ids 100000] [--write-ratio 0.1] [--top-k 10]\n"
                    "                  [--seed 1] [--server-pid PID]\n");
    return 2;
}

int main(int argc, char **argv) {
    options o = {.host = "127.0.0.1", .connections = 16, .seconds = 60, .warmup = 5, .dim = 128,
                 .ids = 100000, .write_ratio = 0.10, .top_k = 10, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) return usage();
        if (strcmp(a, "--host") == 0) o.host = v;
        else if (strcmp(a, "--port") == 0) o.port = atoi(v);
        else if (strcmp(a, "--collection") == 0) o.collection = v;
        else if (strcmp(a, "--connections") == 0) o.connections = atoi(v);
        else if (strcmp(a, "--seconds") == 0) o.seconds = atof(v);
        else if (strcmp(a, "--warmup") == 0) o.warmup = atof(v);
        else if (strcmp(a, "--dim") == 0) o.dim = atoi(v);
        else if (strcmp(a, "--ids") == 0) o.ids = atol(v);
        else if (strcmp(a, "--write-ratio") == 0) o.write_ratio = atof(v);
        else if (strcmp(a, "--top-k") == 0) o.top_k = atoi(v);
        else if (strcmp(a, "--seed") == 0) o.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--server-pid") == 0) o.server_pid = atol(v);
        else return usage();
        i++;
    }
    if (o.port <= 0 || o.collection == NULL || o.connections < 1 || o.connections > MAX_CONNECTIONS || o.dim < 1 ||
        o.ids < 1 || o.seconds <= 0)
        return usage();
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", o.port);
    if (getaddrinfo(o.host, port, &hints, &ai) != 0) {
        fprintf(stderr, "mixed_load: cannot resolve %s\n", o.host);
        return 1;
    }
    memcpy(&g_addr, ai->ai_addr, ai->ai_addrlen);
    g_addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);

    worker *ws = calloc((size_t)o.connections, sizeof *ws);
    for (int t = 0; t < o.connections; t++) {
        worker *w = &ws[t];
        w->o = &o;
        w->index = t;
        uint64_t s = o.seed * 7919ull + (uint64_t)t * 104729ull;
        for (int b = 0; b < BODIES_PER_THREAD; b++) {
            size_t vl;
            char *vec = vector_text(&s, o.dim, &vl);
            char *body = malloc(vl + 128);
            snprintf(body, vl + 128, "{\"vector\":%s,\"top_k\":%d}", vec, o.top_k);
            w->query_bodies[b] = make_request(&o, "query", body);
            free(body);
            free(vec);
            vec = vector_text(&s, o.dim, &vl);
            body = malloc(vl + 160);
            long id = (long)(rnd_next(&s) % (uint64_t)o.ids);
            snprintf(body, vl + 160, "{\"documents\":[{\"id\":\"doc%08ld\",\"vector\":%s,\"attributes\":{\"n\":%ld,\"w\":1}}]}",
                     id, vec, id);
            w->upsert_bodies[b] = make_request(&o, "documents", body);
            free(body);
            free(vec);
        }
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    g_start = now_s();
    g_measure_from = g_start + o.warmup;
    g_stop_at = g_measure_from + o.seconds;
    pthread_t *th = calloc((size_t)o.connections, sizeof *th);
    for (int t = 0; t < o.connections; t++) pthread_create(&th[t], NULL, work, &ws[t]);
    double cpu0 = NAN;
    if (o.server_pid > 0) {
        while (now_s() < g_measure_from) usleep(10000);
        cpu0 = cpu_of_pid(o.server_pid);
    }
    for (int t = 0; t < o.connections; t++) pthread_join(th[t], NULL);
    double cpu1 = o.server_pid > 0 ? cpu_of_pid(o.server_pid) : NAN;
    getrusage(RUSAGE_SELF, &ru1);

    samples all = {0}, kinds[OP_KINDS] = {{0}};
    const char *first_error = NULL;
    uint64_t reconnects = 0;
    for (int t = 0; t < o.connections; t++) {
        for (int k = 0; k < OP_KINDS; k++) {
            for (size_t i = 0; i < ws[t].kind[k].n; i++) {
                samples_add(&kinds[k], ws[t].kind[k].ms[i]);
                samples_add(&all, ws[t].kind[k].ms[i]);
            }
            kinds[k].errors += ws[t].kind[k].errors;
            all.errors += ws[t].kind[k].errors;
        }
        reconnects += ws[t].reconnects - 1;
        if (first_error == NULL && ws[t].first_error[0]) first_error = ws[t].first_error;
    }
    qsort(all.ms, all.n, sizeof *all.ms, cmp_double);
    for (int k = 0; k < OP_KINDS; k++) qsort(kinds[k].ms, kinds[k].n, sizeof *kinds[k].ms, cmp_double);
    printf("mixed_load connections=%d seconds=%.0f warmup=%.0f dim=%d ids=%ld write_ratio=%.2f top_k=%d\n",
           o.connections, o.seconds, o.warmup, o.dim, o.ids, o.write_ratio, o.top_k);
    report("all", &all, o.seconds);
    report("query", &kinds[OP_QUERY], o.seconds);
    report("upsert", &kinds[OP_UPSERT], o.seconds);
    double client_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                        (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("client_cpu_s=%.2f reconnects=%llu", client_cpu, (unsigned long long)reconnects);
    if (o.server_pid > 0) printf(" server_cpu_s=%.2f server_cores=%.2f", cpu1 - cpu0, (cpu1 - cpu0) / o.seconds);
    printf("\n");
    if (first_error) printf("first_error: %s\n", first_error);
    return all.errors ? 3 : 0;
}
