/*
 * exact_search.c: single-threaded exact top-10 search speed, against the
 * memory read bandwidth of the same machine measured in the same run.
 * Not built by CMake, not a test. Build (or `make -f bench/Makefile
 * exact_search`), after building the libraries into build-bench:
 *
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -Iinclude -Isrc bench/exact_search.c \
 *       build-bench/libtdb_db.a build-bench/libtdb_tier.a build-bench/libtdb_snapshot.a \
 *       build-bench/libtdb_objstore.a build-bench/libtdb_storage.a build-bench/libtdb_filter.a \
 *       build-bench/libtdb_text.a build-bench/libtdb_vec.a build-bench/libtdb_util.a \
 *       -lsqlite3 -lcurl -lzstd -lsnappy -lroaring -lstemmer -lutf8proc -lm -lpthread \
 *       -o build-bench/exact_search
 *
 *   exact_search [--docs 100000] [--dim 128] [--queries 200] [--reps 3]
 *                [--metric cosine|l2|dot] [--stream-mib 1024] [--dir DIR]
 *
 * Setup: a collection of --docs random vectors in a temp dir, upserted in
 * batches of 1000 and flushed into segments (tdb_flush_all), so queries
 * read the mmapped segment vectors, as a warm or hot collection does.
 *
 * Measured, each --reps times (the median is reported), --queries random
 * query vectors per rep, one thread:
 *   api     tdb_query_json with {"vector": [...], "top_k": 10, "exact": true}:
 *           JSON parse, collection lookup, the storage scan, the response;
 *   direct  vec_search_exact over the same vectors in one malloc'd array
 *           (norms precomputed, as segments store them): the kernel and the
 *           top-k heap with no JSON, no ids and no visibility checks, so
 *           api / direct is what everything around the scan costs;
 *   stream  a sum of every 64-bit word of a --stream-mib MiB buffer (well
 *           beyond any cache: DRAM read bandwidth of one core), and the same
 *           over a buffer the size of the vectors (docs x dim x 4 bytes,
 *           which may fit in a large L3: the bandwidth a scan of that size
 *           can hope for on this machine).
 * A query scans docs x dim x 4 bytes, so its implied bandwidth is that
 * times QPS; the ratios to both stream figures are printed. The buffers
 * are touched before timing so page faults are not counted.
 *
 * Every figure is given twice: by the wall clock, and by the thread's CPU
 * time (suffix _cpu), which leaves out the time the core was lent to other
 * processes. On a busy machine the _cpu figures are the ones to compare,
 * and the ratios are computed from them (both sides timed the same way).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tierdb.h"
#include "vec/vec.h"

#define BATCH_DOCS 1000
#define MAX_REPS 32
#define TOP_K 10

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: on a shared, busy machine the wall clock also
 * counts the time other processes held the core; the thread's CPU time
 * is what one core running only this would take (the steadier figure). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float rng_float(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (float)((rng_state * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1u << 23) - 1.0f;
}

static void check(int rc, const tdb_error *err, const char *what) {
    if (rc == 0) return;
    fprintf(stderr, "exact_search: %s: %s (%s)\n", what, err->message, err->name);
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(n - 1) / 2];
}

typedef struct rate {
    double wall, cpu; /* per second, by each clock */
} rate;

/* Sums every 64-bit word `passes` times; four accumulators so the adds
 * never limit the loads. Returns bytes/s. The sum goes to *sink so the
 * loop is not optimized away. */
static rate stream_sum(const uint64_t *buf, size_t words, int passes, uint64_t *sink) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    double t0 = now_s(), c0 = cpu_s();
    for (int p = 0; p < passes; p++) {
        for (size_t i = 0; i + 4 <= words; i += 4) {
            a += buf[i];
            b += buf[i + 1];
            c += buf[i + 2];
            d += buf[i + 3];
        }
        __asm__ volatile("" ::: "memory"); /* each pass re-reads memory */
    }
    double t = now_s() - t0, ct = cpu_s() - c0;
    *sink += a + b + c + d;
    double bytes = (double)words * 8.0 * passes;
    return (rate){bytes / t, bytes / ct};
}

/* Median of `reps` stream measurements over a fresh buffer of `bytes`,
 * repeated so each measurement reads at least 1 GiB. */
static rate stream_bandwidth(size_t bytes, int reps, uint64_t *sink) {
    size_t words = bytes / 8;
    uint64_t *buf = aligned_alloc(64, words * 8);
    if (!buf) {
        fprintf(stderr, "exact_search: cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    for (size_t i = 0; i < words; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    int passes = (int)((1ull << 30) / bytes);
    if (passes < 1) passes = 1;
    double wall[MAX_REPS], cpu[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        rate x = stream_sum(buf, words, passes, sink);
        wall[r] = x.wall;
        cpu[r] = x.cpu;
    }
    free(buf);
    return (rate){median(wall, reps), median(cpu, reps)};
}

static void usage(void) {
    fprintf(stderr, "usage: exact_search [--docs 100000] [--dim 128] [--queries 200] [--reps 3]\n"
                    "                    [--metric cosine|l2|dot] [--stream-mib 1024] [--dir DIR]\n");
    exit(2);
}

int main(int argc, char **argv) {
    long docs = 100000;
    int dim = 128, queries = 200, reps = 3;
    long stream_mib = 1024;
    const char *metric_name = "cosine";
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--docs")) docs = atol(v);
        else if (!strcmp(a, "--dim")) dim = atoi(v);
        else if (!strcmp(a, "--queries")) queries = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--metric")) metric_name = v;
        else if (!strcmp(a, "--stream-mib")) stream_mib = atol(v);
        else if (!strcmp(a, "--dir")) dir = v;
        else usage();
    }
    tdb_metric metric = !strcmp(metric_name, "l2")    ? TDB_METRIC_L2
                        : !strcmp(metric_name, "dot") ? TDB_METRIC_DOT
                                                      : TDB_METRIC_COSINE;
    if (docs < 1 || dim < 1 || dim > 4096 || queries < 1 || reps < 1 || reps > MAX_REPS ||
        stream_mib < 1)
        usage();
    char tmpl[4096];
    if (!dir) {
        snprintf(tmpl, sizeof tmpl, "%s/tierdb-bench-exact.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        dir = tmpl;
    }

    /* ---- Setup: the same vectors in the database and in one array. */
    size_t n_floats = (size_t)docs * (size_t)dim;
    float *vectors = aligned_alloc(64, (n_floats * sizeof(float) + 63) / 64 * 64);
    float *norms = malloc((size_t)docs * sizeof *norms);
    if (!vectors || !norms) return 1;
    for (size_t i = 0; i < n_floats; i++) vectors[i] = rng_float();
    for (long r = 0; r < docs; r++) norms[r] = vec_norm(vectors + (size_t)r * dim, (size_t)dim);

    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = dir;
    o.fsync = TDB_FSYNC_NONE; /* setup speed only: nothing here is about durability */
    o.worker_interval_ms = 0;
    tdb_db *db;
    tdb_error err;
    check(tdb_open(&o, &db, &err), &err, "tdb_open");
    char body[256];
    int len = snprintf(body, sizeof body, "{\"name\":\"bench\",\"dimension\":%d,\"metric\":\"%s\"}",
                       dim, metric_name);
    char *out = NULL;
    check(tdb_collection_create_json(db, body, (size_t)len, &out, &err), &err, "create");
    tdb_free(out);
    {
        tdb_doc batch[BATCH_DOCS];
        char ids[BATCH_DOCS][24];
        for (long done = 0; done < docs;) {
            int n = docs - done < BATCH_DOCS ? (int)(docs - done) : BATCH_DOCS;
            for (int i = 0; i < n; i++) {
                int l = snprintf(ids[i], sizeof ids[i], "doc-%09ld", done + i);
                batch[i] = (tdb_doc){ids[i], (size_t)l, vectors + (size_t)(done + i) * dim, NULL, 0};
            }
            check(tdb_upsert(db, "bench", batch, (size_t)n, &err), &err, "tdb_upsert");
            done += n;
        }
    }
    check(tdb_flush_all(db, &err), &err, "tdb_flush_all");
    check(tdb_collection_get_json(db, "bench", &out, &err), &err, "collection get");
    printf("# %s\n", out);
    tdb_free(out);

    /* Query vectors and their JSON bodies, made before any timing. */
    float *qv = malloc((size_t)queries * (size_t)dim * sizeof *qv);
    char **qbody = malloc((size_t)queries * sizeof *qbody);
    size_t *qlen = malloc((size_t)queries * sizeof *qlen);
    if (!qv || !qbody || !qlen) return 1;
    for (int q = 0; q < queries; q++) {
        size_t cap = (size_t)dim * 16 + 64, l = 0;
        qbody[q] = malloc(cap);
        if (!qbody[q]) return 1;
        l += (size_t)snprintf(qbody[q] + l, cap - l, "{\"top_k\":%d,\"exact\":true,\"vector\":[", TOP_K);
        for (int d = 0; d < dim; d++) {
            /* Printed with 9 significant digits, so the float parsed back is
             * this exact float: both paths search the same query. */
            float x = rng_float();
            qv[(size_t)q * dim + d] = x;
            l += (size_t)snprintf(qbody[q] + l, cap - l, "%s%.9g", d ? "," : "", (double)x);
        }
        l += (size_t)snprintf(qbody[q] + l, cap - l, "]}");
        qlen[q] = l;
    }

    /* Warm-up: one query each way (faults in the mmapped segment pages). */
    check(tdb_query_json(db, "bench", qbody[0], qlen[0], &out, &err), &err, "query");
    tdb_free(out);
    vec_hit hits[TOP_K];
    uint32_t n_hits;
    check(vec_search_exact(metric, qv, vectors, norms, (uint32_t)docs, (uint32_t)dim, NULL, TOP_K,
                           hits, &n_hits, &err),
          &err, "vec_search_exact");

    double bytes_per_query = (double)docs * dim * sizeof(float);
    double api_qps[MAX_REPS], direct_qps[MAX_REPS], api_cpu[MAX_REPS], direct_cpu[MAX_REPS];
    int agree = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s(), c0 = cpu_s();
        for (int q = 0; q < queries; q++) {
            check(tdb_query_json(db, "bench", qbody[q], qlen[q], &out, &err), &err, "query");
            if (r == 0 && q == 0) {
                /* Both paths must find the same best document. */
                check(vec_search_exact(metric, qv, vectors, norms, (uint32_t)docs, (uint32_t)dim,
                                       NULL, TOP_K, hits, &n_hits, &err),
                      &err, "vec_search_exact");
                char want[48];
                snprintf(want, sizeof want, "\"id\":\"doc-%09u\"", hits[0].row);
                agree = strstr(out, want) != NULL && strstr(out, want) == strstr(out, "\"id\":");
            }
            tdb_free(out);
        }
        double t1 = now_s(), c1 = cpu_s();
        for (int q = 0; q < queries; q++)
            check(vec_search_exact(metric, qv + (size_t)q * dim, vectors, norms, (uint32_t)docs,
                                   (uint32_t)dim, NULL, TOP_K, hits, &n_hits, &err),
                  &err, "vec_search_exact");
        double t2 = now_s(), c2 = cpu_s();
        api_qps[r] = queries / (t1 - t0);
        direct_qps[r] = queries / (t2 - t1);
        api_cpu[r] = queries / (c1 - c0);
        direct_cpu[r] = queries / (c2 - c1);
        printf("rep=%d api_qps=%.1f direct_qps=%.1f api_qps_cpu=%.1f direct_qps_cpu=%.1f\n", r + 1,
               api_qps[r], direct_qps[r], api_cpu[r], direct_cpu[r]);
    }
    if (!agree) {
        fprintf(stderr, "exact_search: the API and the direct loop disagree on the best document\n");
        return 1;
    }
    tdb_close(db);
    free(vectors); /* before the stream buffers, so they do not add up */

    uint64_t sink = 0;
    rate bw_dram = stream_bandwidth((size_t)stream_mib << 20, reps, &sink);
    rate bw_same = stream_bandwidth((size_t)bytes_per_query, reps, &sink);
    double api = median(api_qps, reps), direct = median(direct_qps, reps);
    double api_c = median(api_cpu, reps), direct_c = median(direct_cpu, reps);
    double gb = bytes_per_query / 1e9;
    printf("# %ld x %d-d %s, top-%d, %d queries x %d reps, one thread; %.1f MB scanned per query "
           "(sink %llu)\n",
           docs, dim, metric_name, TOP_K, queries, reps, bytes_per_query / 1e6,
           (unsigned long long)(sink & 1));
    printf("median wall api_qps=%.1f api_gbps=%.2f direct_qps=%.1f direct_gbps=%.2f "
           "stream_%ldmib_gbps=%.2f stream_%.0fmb_gbps=%.2f\n",
           api, api * gb, direct, direct * gb, stream_mib, bw_dram.wall / 1e9,
           bytes_per_query / 1e6, bw_same.wall / 1e9);
    printf("median cpu  api_qps=%.1f api_ms=%.3f api_gbps=%.2f direct_qps=%.1f direct_ms=%.3f "
           "direct_gbps=%.2f stream_%ldmib_gbps=%.2f stream_%.0fmb_gbps=%.2f\n",
           api_c, 1e3 / api_c, api_c * gb, direct_c, 1e3 / direct_c, direct_c * gb, stream_mib,
           bw_dram.cpu / 1e9, bytes_per_query / 1e6, bw_same.cpu / 1e9);
    printf("ratios (cpu) direct_over_api=%.3f api_vs_stream=%.2f direct_vs_stream=%.2f "
           "api_vs_same_size=%.2f direct_vs_same_size=%.2f\n",
           direct_c / api_c, api_c * bytes_per_query / bw_dram.cpu,
           direct_c * bytes_per_query / bw_dram.cpu, api_c * bytes_per_query / bw_same.cpu,
           direct_c * bytes_per_query / bw_same.cpu);

    if (dir == tmpl) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "exact_search: could not remove %s\n", dir);
    }
    return 0;
}
