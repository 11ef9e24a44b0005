/*
 * tiering.c: the costs of tiering (issue 7's goals): access tracking per
 * request, one policy cycle over many collections, and the moves and
 * queries of one big collection in every tier.
 * Not built by CMake, not a test. Build with `make -f bench/Makefile
 * tiering` after building the libraries into build-bench (it also makes
 * tiering_notouch, the same program with access tracking compiled out);
 * bench/run_tiering.sh runs everything. docs/benchmarks.md has what each
 * figure means and the results.
 *
 *   tiering track [--ops 2000000] [--gets 100000] [--reps 5]
 *   tiering cycle [--collections 10000] [--reps 5]
 *   tiering moves [--docs 100000] [--dim 512] [--queries 1000] [--reps 3]
 *                 [--tail 10000] [--tail-reps 1] [--fill-only | --no-fill]
 *                 [--compact]
 *   (every mode: [--dir DIR] a fresh directory to use, removed at the end
 *   unless --keep)
 *
 * track   Per-request access tracking, through the library's internal
 *         entry point (db_tier_touch: the database clock, the collection's
 *         state_mu, tier_access_record), in ns per call by the thread's CPU
 *         time and by the wall clock: the pure record on a local struct;
 *         db_tier_touch with 1 thread, 2 threads on one collection (the
 *         worst case: both contend for one mutex and cache line) and 2
 *         threads on two collections; then tdb_get_json of an existing
 *         document of a hot collection (16-d, 10,000 documents flushed to
 *         a segment) with 1 and 2 threads. tiering_notouch runs only the
 *         gets, with db_tier_touch replaced by an empty function, so the
 *         difference of the two programs' get figures is what tracking
 *         adds to a get.
 * cycle   Creates --collections collections (8-d, empty) with
 *         tdb_collection_create_json, timing each, then times
 *         tdb_tiering_cycle_json (the whole call; the report's took_ms is
 *         printed too) in these states, --reps times each:
 *           idle     every collection hot, storage open, accessed less than
 *                    hot_ttl ago: every decision is "none", nothing is
 *                    written to the catalog;
 *           touched  the same, but each collection had one access (a get
 *                    of a missing id) since the last cycle: the cycle also
 *                    writes 10,000 access states in one catalog
 *                    transaction (the touches are not timed);
 *           due      the test clock advanced by hot_ttl, so every hot
 *                    collection is due hot -> warm, with
 *                    max_migrations_per_cycle = 1: all decisions are made,
 *                    one move runs; the time of that move (the library's
 *                    own move timer) is subtracted;
 *           reopened after tdb_close + tdb_open (timed too): hot in the
 *                    catalog, storage not open (opened lazily), as after a
 *                    restart.
 * moves   Fills a cosine collection with --docs random unit vectors
 *         (Gaussian, normalized; fixed seed) of --dim, through tdb_upsert in
 *         batches of 1,000 with the default options (the memtable freezes
 *         at 64 MiB; background flushes build each segment's HNSW graph;
 *         background compaction merges segments), then tdb_flush_all and a
 *         close + reopen, which waits for background compaction: the
 *         state after a normal ingest, memtable empty, every index built.
 *         Then --reps times, each move with tdb_tier_move and explicit
 *         targets, timed around the call:
 *           hot queries   --queries top-10 queries (random unit vectors,
 *                         default ANN settings, attributes returned), the
 *                         storage open and its pages cached; also printed:
 *                         the share of the batch's wall time the thread
 *                         spent runnable but waiting for a CPU (schedstat);
 *           hot -> warm   the memtable is empty: flush (nothing), close
 *                         the storage, commit the catalog;
 *           warm queries  the first query (opens the files: MANIFEST,
 *                         segments mapped and checksummed) apart, then
 *                         --queries more; page cache warm;
 *           warm -> cold  after a close + reopen of the database, so the
 *                         files are closed as the policy would find them
 *                         after days idle (page cache still warm): open,
 *                         flush (nothing), write and upload the Parquet
 *                         copy, upload MANIFEST + segments, verify each
 *                         object, write FILES, commit, delete the local
 *                         directory;
 *           cold query    the first query on the cold collection, object
 *                         files evicted from the page cache first
 *                         (posix_fadvise, our files only): download and
 *                         verify into .incoming, rename, commit, delete the
 *                         copy, open, answer. Then again to cold and a
 *                         first query with the objects still cached;
 *           warm -> hot   tdb_tier_move promote (opens the storage).
 *         Last, hot -> warm with a memtable of --tail unflushed documents
 *         (the flush writes a segment and builds its graph), on a fresh
 *         collection "tail" of its own, --tail-reps times (the flush
 *         builds a graph: tens of seconds on a busy machine).
 *         --fill-only fills --dir and keeps it; --no-fill reuses a --dir
 *         filled before (the fill takes minutes: every graph is built).
 *         --compact merges the segments into one first (st_compact: one
 *         graph over every document), to compare query costs.
 * Every figure is printed per rep and as the median of the reps.
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db/db_int.h"
#include "tierdb.h"
#include "util/log.h"

#define MAX_REPS 32
#define BATCH_DOCS 1000
#define TOP_K 10

#ifdef TIERBENCH_NO_TOUCH
/* Replaces the library's access tracking (linked with
 * --allow-multiple-definition, this object first): the A/B baseline. */
void db_tier_touch(tdb_db *db, db_coll *c) {
    (void)db;
    (void)c;
}
#endif

typedef struct cfg {
    const char *mode;
    const char *dir;
    int keep;
    long ops, gets;
    long collections;
    long docs;
    int dim;
    int queries;
    int reps;
    long tail;
    int no_fill, fill_only;
    int tail_reps;
    int compact;
} cfg;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rng_unit(void) { /* (0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) + 0.5) / 9007199254740992.0;
}

/* A random unit vector: Gaussian coordinates (Box-Muller), normalized. */
static void unit_vector(float *v, int dim) {
    double norm = 0;
    for (int d = 0; d < dim; d += 2) {
        double r = sqrt(-2.0 * log(rng_unit())), t = 2.0 * M_PI * rng_unit();
        v[d] = (float)(r * cos(t));
        if (d + 1 < dim) v[d + 1] = (float)(r * sin(t));
    }
    for (int d = 0; d < dim; d++) norm += (double)v[d] * v[d];
    norm = sqrt(norm);
    for (int d = 0; d < dim; d++) v[d] = (float)(v[d] / norm);
}

static void check(int rc, const tdb_error *err, const char *what) {
    if (rc == 0) return;
    fprintf(stderr, "tiering: %s: %s (%s)\n", what, err->message, err->name);
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double t[MAX_REPS];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[(n - 1) / 2];
}

/* Nearest-rank percentile of v (sorted in place). */
static double percentile(double *v, size_t n, double p) {
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return v[i ? i - 1 : 0];
}

static void load(const char *when) {
    double l[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) != 3) l[0] = -1;
        fclose(f);
    }
    printf("# load %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
    fflush(stdout);
}

static void open_db(const cfg *c, bool test_clock, uint32_t max_migrations, tdb_db **db) {
    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = c->dir;
    o.worker_interval_ms = 0; /* cycles only when the benchmark asks */
    o.test_clock = test_clock;
    o.max_migrations_per_cycle = max_migrations;
    tdb_error err;
    check(tdb_open(&o, db, &err), &err, "tdb_open");
}

static void create(tdb_db *db, const char *name, int dim) {
    char body[256];
    int len = snprintf(body, sizeof body, "{\"name\":\"%s\",\"dimension\":%d,\"metric\":\"cosine\"}",
                       name, dim);
    char *out = NULL;
    tdb_error err;
    check(tdb_collection_create_json(db, body, (size_t)len, &out, &err), &err, "create");
    tdb_free(out);
}

static void upsert_random(tdb_db *db, const char *name, int dim, long first, long count) {
    tdb_doc docs[BATCH_DOCS];
    char ids[BATCH_DOCS][24];
    float *vecs = malloc((size_t)BATCH_DOCS * (size_t)dim * sizeof *vecs);
    if (!vecs) exit(1);
    tdb_error err;
    for (long done = 0; done < count;) {
        int n = count - done < BATCH_DOCS ? (int)(count - done) : BATCH_DOCS;
        for (int i = 0; i < n; i++) {
            float *v = vecs + (size_t)i * (size_t)dim;
            unit_vector(v, dim);
            int len = snprintf(ids[i], sizeof ids[i], "doc-%09ld", first + done + i);
            docs[i] = (tdb_doc){ids[i], (size_t)len, v, NULL, 0};
        }
        check(tdb_upsert(db, name, docs, (size_t)n, &err), &err, "tdb_upsert");
        done += n;
    }
    free(vecs);
}

/* ---- track ------------------------------------------------------------ */

typedef struct touch_job {
    tdb_db *db;
    db_coll *coll;
    long ops;
    int kind; /* 0: tier_access_record, 1: db_tier_touch, 2: tdb_get_json */
    double wall_ns, cpu_ns; /* per call */
    pthread_barrier_t *start;
} touch_job;

static void *touch_main(void *arg) {
    touch_job *j = arg;
    tier_access local = {0};
    char id[24];
    if (j->start) pthread_barrier_wait(j->start);
    double w0 = now_s(), c0 = cpu_s();
    switch (j->kind) {
    case 0:
        for (long i = 0; i < j->ops; i++) {
            tier_access_record(&local, 1700000000000 + i / 1000, 3600000);
            __asm__ volatile("" : : "r"(&local) : "memory");
        }
        break;
    case 1:
        for (long i = 0; i < j->ops; i++) db_tier_touch(j->db, j->coll);
        break;
    default:
        for (long i = 0; i < j->ops; i++) {
            int len = snprintf(id, sizeof id, "doc-%09ld", (i * 7919) % 10000);
            char *out = NULL;
            tdb_error err;
            check(tdb_get_json(j->db, j->coll->name, id, (size_t)len, &out, &err), &err, "get");
            tdb_free(out);
        }
    }
    j->wall_ns = (now_s() - w0) * 1e9 / (double)j->ops;
    j->cpu_ns = (cpu_s() - c0) * 1e9 / (double)j->ops;
    return NULL;
}

/* Runs kind in nthreads threads (on coll[t] each) reps times; prints the
 * per-call medians (a 2-thread figure is the mean of the two threads). */
static void touch_measure(const cfg *c, tdb_db *db, db_coll **coll, int nthreads, int kind,
                          long ops, const char *label) {
    double wall[MAX_REPS], cpu[MAX_REPS];
    for (int r = 0; r < c->reps; r++) {
        touch_job j[2];
        pthread_t th[2];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)nthreads);
        for (int t = 0; t < nthreads; t++) {
            j[t] = (touch_job){db, coll[t], ops, kind, 0, 0, &start};
            pthread_create(&th[t], NULL, touch_main, &j[t]);
        }
        wall[r] = cpu[r] = 0;
        for (int t = 0; t < nthreads; t++) {
            pthread_join(th[t], NULL);
            wall[r] += j[t].wall_ns / nthreads;
            cpu[r] += j[t].cpu_ns / nthreads;
        }
        pthread_barrier_destroy(&start);
        printf("track %s rep=%d ns_per_call_cpu=%.1f ns_per_call_wall=%.1f\n", label, r + 1, cpu[r],
               wall[r]);
    }
    printf("median track %s ns_per_call_cpu=%.1f ns_per_call_wall=%.1f\n", label,
           median(cpu, c->reps), median(wall, c->reps));
    fflush(stdout);
}

static void run_track(const cfg *c) {
    tdb_db *db;
    tdb_error err;
    open_db(c, false, 0, &db);
    create(db, "t0", 16);
    create(db, "t1", 16);
    upsert_random(db, "t0", 16, 0, 10000);
    upsert_random(db, "t1", 16, 0, 10000);
    check(tdb_flush_all(db, &err), &err, "flush");
    db_coll *coll[2];
    check(db_coll_get(db, "t0", &coll[0], &err), &err, "db_coll_get");
    check(db_coll_get(db, "t1", &coll[1], &err), &err, "db_coll_get");
    db_coll *same[2] = {coll[0], coll[0]};
    load("before track");
#ifndef TIERBENCH_NO_TOUCH
    touch_measure(c, db, coll, 1, 0, c->ops, "tier_access_record threads=1");
    touch_measure(c, db, coll, 1, 1, c->ops, "db_tier_touch threads=1");
    touch_measure(c, db, same, 2, 1, c->ops, "db_tier_touch threads=2 one_collection");
    touch_measure(c, db, coll, 2, 1, c->ops, "db_tier_touch threads=2 two_collections");
    const char *tr = "on";
#else
    const char *tr = "off";
#endif
    char label[96];
    snprintf(label, sizeof label, "get tracking=%s threads=1", tr);
    touch_measure(c, db, coll, 1, 2, c->gets, label);
    snprintf(label, sizeof label, "get tracking=%s threads=2 one_collection", tr);
    touch_measure(c, db, same, 2, 2, c->gets, label);
    load("after track");
    db_coll_put(coll[0]);
    db_coll_put(coll[1]);
    tdb_close(db);
}

/* ---- cycle ------------------------------------------------------------ */

static void cycle_once(tdb_db *db, const char *state, int rep, double *wall_ms, double *took_ms,
                       double *moved_ms) {
    char *out = NULL;
    tdb_error err;
    uint64_t moves0 = 0, us0 = 0;
    for (int m = 0; m < 5; m++) {
        moves0 += atomic_load(&db->moves[m]);
        us0 += atomic_load(&db->move_us[m]);
    }
    double t0 = now_s();
    check(tdb_tiering_cycle_json(db, &out, &err), &err, "cycle");
    double t1 = now_s();
    uint64_t moves1 = 0, us1 = 0;
    for (int m = 0; m < 5; m++) {
        moves1 += atomic_load(&db->moves[m]);
        us1 += atomic_load(&db->move_us[m]);
    }
    const char *tk = strstr(out, "\"took_ms\":");
    *took_ms = tk ? atof(tk + 10) : -1;
    *moved_ms = (double)(us1 - us0) / 1e3;
    *wall_ms = (t1 - t0) * 1e3 - *moved_ms;
    printf("cycle state=%s rep=%d ms=%.2f report_took_ms=%.2f moves=%llu move_ms_excluded=%.2f "
           "report=%s\n",
           state, rep, *wall_ms, *took_ms, (unsigned long long)(moves1 - moves0), *moved_ms, out);
    tdb_free(out);
    fflush(stdout);
}

static void cycle_state(const cfg *c, tdb_db *db, const char *state, bool touch) {
    double wall[MAX_REPS], took[MAX_REPS], moved[MAX_REPS];
    tdb_error err;
    for (int r = 0; r < c->reps; r++) {
        if (touch) {
            for (long i = 0; i < c->collections; i++) {
                char name[32], *out = NULL;
                snprintf(name, sizeof name, "c%06ld", i);
                int rc = tdb_get_json(db, name, "none", 4, &out, &err);
                if (rc != TDB_ENOTFOUND) check(rc ? rc : TDB_EINTERNAL, &err, "touch get");
            }
        }
        cycle_once(db, state, r + 1, &wall[r], &took[r], &moved[r]);
    }
    printf("median cycle state=%s collections=%ld ms=%.2f report_took_ms=%.2f\n", state,
           c->collections, median(wall, c->reps), median(took, c->reps));
    fflush(stdout);
}

static void run_cycle(const cfg *c) {
    tdb_db *db;
    open_db(c, true, 1, &db);
    load("before create");
    double *lat = malloc((size_t)c->collections * sizeof *lat);
    if (!lat) exit(1);
    double t0 = now_s();
    for (long i = 0; i < c->collections; i++) {
        char name[32];
        snprintf(name, sizeof name, "c%06ld", i);
        double a = now_s();
        create(db, name, 8);
        lat[i] = (now_s() - a) * 1e3;
        if ((i + 1) % 2000 == 0) {
            printf("# created %ld in %.1f s\n", i + 1, now_s() - t0);
            fflush(stdout);
        }
    }
    double total = now_s() - t0;
    double p50 = percentile(lat, (size_t)c->collections, 50);
    double p99 = percentile(lat, (size_t)c->collections, 99);
    printf("create collections=%ld total_s=%.2f per_create_ms_mean=%.3f p50_ms=%.3f p99_ms=%.3f "
           "max_ms=%.3f\n",
           c->collections, total, total * 1e3 / (double)c->collections, p50, p99,
           lat[c->collections - 1]);
    free(lat);
    load("after create");
    cycle_state(c, db, "idle", false);
    cycle_state(c, db, "touched", true);
    tdb_close(db);
    double a = now_s();
    open_db(c, true, 1, &db);
    printf("reopen collections=%ld tdb_open_ms=%.1f\n", c->collections, (now_s() - a) * 1e3);
    cycle_state(c, db, "reopened", false);
    int64_t now;
    tdb_error err;
    check(tdb_clock_advance(db, 6LL * 3600 * 1000 + 1000, &now, &err), &err, "clock");
    cycle_state(c, db, "due", false);
    load("after cycles");
    tdb_close(db);
}

/* ---- moves ------------------------------------------------------------ */

static long evict_dir(const char *dir) {
    long bytes = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            bytes += evict_dir(path);
        } else if (S_ISREG(st.st_mode)) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            fdatasync(fd);
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
            bytes += st.st_size;
        }
    }
    closedir(d);
    return bytes;
}

typedef struct queries {
    char **body;
    size_t *len;
    int n;
} queries;

static void make_queries(queries *q, int n, int dim) {
    q->n = n;
    q->body = calloc((size_t)n, sizeof *q->body);
    q->len = calloc((size_t)n, sizeof *q->len);
    float *v = malloc((size_t)dim * sizeof *v);
    size_t cap = (size_t)dim * 16 + 64;
    if (!q->body || !q->len || !v) exit(1);
    for (int i = 0; i < n; i++) {
        unit_vector(v, dim);
        char *b = malloc(cap);
        if (!b) exit(1);
        size_t l = (size_t)snprintf(b, cap, "{\"top_k\":%d,\"vector\":[", TOP_K);
        for (int d = 0; d < dim; d++)
            l += (size_t)snprintf(b + l, cap - l, "%s%.7g", d ? "," : "", (double)v[d]);
        l += (size_t)snprintf(b + l, cap - l, "]}");
        q->body[i] = b;
        q->len[i] = l;
    }
    free(v);
}

static double query_one(tdb_db *db, const char *body, size_t len, const char *want_tier,
                        double *cpu_ms) {
    char *out = NULL;
    tdb_error err;
    double c0 = cpu_s(), t0 = now_s();
    check(tdb_query_json(db, "bench", body, len, &out, &err), &err, "query");
    double ms = (now_s() - t0) * 1e3;
    if (cpu_ms) *cpu_ms = (cpu_s() - c0) * 1e3;
    size_t hits = 0;
    for (const char *p = out; (p = strstr(p, "\"id\":")) != NULL; p++) hits++;
    char tier[32];
    snprintf(tier, sizeof tier, "\"tier\":\"%s\"", want_tier);
    if (hits != TOP_K || !strstr(out, tier)) {
        fprintf(stderr, "tiering: unexpected query answer (want %d hits, tier %s): %.300s\n", TOP_K,
                want_tier, out);
        exit(1);
    }
    tdb_free(out);
    return ms;
}

/* Time this thread has spent runnable but waiting for a CPU, ns (the
 * scheduler's run delay, /proc/thread-self/schedstat field 2); 0 when
 * the kernel does not report it. */
static double run_wait_ns(void) {
    double cpu = 0, wait = 0;
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    if (f) {
        if (fscanf(f, "%lf %lf", &cpu, &wait) != 2) wait = 0;
        fclose(f);
    }
    return wait;
}

/* Runs every query once; p50/p95/p99 by wall clock and p95 by CPU time. */
static void query_batch(tdb_db *db, const queries *q, const char *tier, int rep, double *p95,
                        double *p95_cpu) {
    double *w = malloc((size_t)q->n * sizeof *w), *cpu = malloc((size_t)q->n * sizeof *cpu);
    if (!w || !cpu) exit(1);
    double t0 = now_s(), wait0 = run_wait_ns();
    for (int i = 0; i < q->n; i++) w[i] = query_one(db, q->body[i], q->len[i], tier, &cpu[i]);
    double total = now_s() - t0, waited = (run_wait_ns() - wait0) / 1e9;
    double p50 = percentile(w, (size_t)q->n, 50);
    *p95 = percentile(w, (size_t)q->n, 95);
    double p99 = percentile(w, (size_t)q->n, 99);
    *p95_cpu = percentile(cpu, (size_t)q->n, 95);
    printf("queries tier=%s rep=%d n=%d p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f max_ms=%.3f "
           "p95_cpu_ms=%.3f qps=%.0f waiting_for_cpu=%.0f%%\n",
           tier, rep, q->n, p50, *p95, p99, w[q->n - 1], *p95_cpu, q->n / total,
           100.0 * waited / total);
    fflush(stdout);
    free(w);
    free(cpu);
}

static double move(tdb_db *db, bool promote, tdb_tier to, const char *what, int rep) {
    char *out = NULL;
    tdb_error err;
    double t0 = now_s();
    check(tdb_tier_move(db, "bench", promote, (int)to, &out, &err), &err, what);
    double ms = (now_s() - t0) * 1e3;
    printf("move %s rep=%d ms=%.1f tier_object=%s\n", what, rep, ms, out);
    fflush(stdout);
    tdb_free(out);
    return ms;
}

static void print_collection(tdb_db *db, const char *when) {
    char *out = NULL;
    tdb_error err;
    check(tdb_collection_get_json(db, "bench", &out, &err), &err, "collection get");
    printf("# collection %s: %s\n", when, out);
    tdb_free(out);
}

static void run_moves(const cfg *c) {
    tdb_db *db;
    tdb_error err;
    char objects[4096];
    snprintf(objects, sizeof objects, "%s/objects", c->dir);
    open_db(c, false, 0, &db);
    if (!c->no_fill) {
        load("before fill");
        double t0 = now_s();
        create(db, "bench", c->dim);
        upsert_random(db, "bench", c->dim, 0, c->docs);
        double t1 = now_s();
        check(tdb_flush_all(db, &err), &err, "flush");
        double t2 = now_s();
        tdb_close(db); /* waits for background compaction */
        double t3 = now_s();
        open_db(c, false, 0, &db);
        printf("fill docs=%ld dim=%d upsert_s=%.1f flush_s=%.1f close_s=%.1f total_s=%.1f\n",
               c->docs, c->dim, t1 - t0, t2 - t1, t3 - t2, t3 - t0);
        fflush(stdout);
    } else {
        /* A directory an earlier run filled (and kept): back to hot. */
        char *out = NULL;
        check(tdb_tier_get_json(db, "bench", &out, &err), &err, "tier get");
        bool hot = strstr(out, "\"tier\":\"hot\"") != NULL;
        tdb_free(out);
        if (!hot) move(db, true, TDB_TIER_HOT, "setup_to_hot", 0);
    }
    if (c->compact) {
        /* Every segment merged into one (one graph over all documents):
         * what the queries cost once compaction has caught up. */
        db_coll *bc;
        st_collection *st;
        double t0 = now_s();
        check(db_coll_begin(db, "bench", &bc, &st, &err), &err, "db_coll_begin");
        check(st_compact(st, &err), &err, "st_compact");
        db_coll_end(bc);
        printf("compact s=%.1f\n", now_s() - t0);
        fflush(stdout);
    }
    rng_state = 0x51A7E5EEDull; /* the same queries whether filled now or before */
    queries q;
    make_queries(&q, c->queries, c->dim);
    query_one(db, q.body[0], q.len[0], "hot", NULL); /* opens the storage */
    print_collection(db, "before the moves (hot)");
    if (c->fill_only) goto out;
    load("before moves");

    double hot_p95[MAX_REPS], hot_p95c[MAX_REPS], h2w[MAX_REPS], warm_first[MAX_REPS],
        warm_p95[MAX_REPS], warm_p95c[MAX_REPS], w2c[MAX_REPS], cold_q[MAX_REPS],
        w2c_b[MAX_REPS], cold_q_cached[MAX_REPS], w2h[MAX_REPS];
    for (int r = 0; r < c->reps; r++) {
        int rep = r + 1;
        query_batch(db, &q, "hot", rep, &hot_p95[r], &hot_p95c[r]);
        h2w[r] = move(db, false, TDB_TIER_WARM, "hot_to_warm", rep);
        warm_first[r] = query_one(db, q.body[0], q.len[0], "warm", NULL);
        printf("query warm_first rep=%d ms=%.1f\n", rep, warm_first[r]);
        query_batch(db, &q, "warm", rep, &warm_p95[r], &warm_p95c[r]);
        /* The files closed, as the policy leaves an idle warm collection. */
        tdb_close(db);
        open_db(c, false, 0, &db);
        w2c[r] = move(db, false, TDB_TIER_COLD, "warm_to_cold", rep);
        long ev = evict_dir(objects);
        cold_q[r] = query_one(db, q.body[1], q.len[1], "warm", NULL);
        printf("query cold_first objects=evicted evicted_mb=%.0f rep=%d ms=%.1f\n", (double)ev / 1e6,
               rep, cold_q[r]);
        fflush(stdout);
        tdb_close(db);
        open_db(c, false, 0, &db);
        w2c_b[r] = move(db, false, TDB_TIER_COLD, "warm_to_cold", rep);
        cold_q_cached[r] = query_one(db, q.body[2], q.len[2], "warm", NULL);
        printf("query cold_first objects=cached rep=%d ms=%.1f\n", rep, cold_q_cached[r]);
        w2h[r] = move(db, true, TDB_TIER_HOT, "warm_to_hot", rep);
        query_one(db, q.body[0], q.len[0], "hot", NULL);
        load("after rep");
    }
    double all_w2c[2 * MAX_REPS];
    memcpy(all_w2c, w2c, (size_t)c->reps * sizeof *w2c);
    memcpy(all_w2c + c->reps, w2c_b, (size_t)c->reps * sizeof *w2c);
    qsort(all_w2c, (size_t)(2 * c->reps), sizeof *all_w2c, cmp_double);
    printf("median moves docs=%ld dim=%d reps=%d hot_p95_ms=%.3f hot_p95_cpu_ms=%.3f "
           "hot_to_warm_ms=%.1f warm_first_query_ms=%.1f warm_p95_ms=%.3f warm_p95_cpu_ms=%.3f "
           "warm_to_cold_ms=%.1f warm_to_cold_all_ms=%.1f cold_first_query_evicted_ms=%.1f "
           "cold_first_query_cached_ms=%.1f warm_to_hot_ms=%.1f\n",
           c->docs, c->dim, c->reps, median(hot_p95, c->reps), median(hot_p95c, c->reps),
           median(h2w, c->reps), median(warm_first, c->reps), median(warm_p95, c->reps),
           median(warm_p95c, c->reps), median(w2c, c->reps), all_w2c[(2 * c->reps - 1) / 2],
           median(cold_q, c->reps), median(cold_q_cached, c->reps), median(w2h, c->reps));
    fflush(stdout);
    if (c->tail > 0) {
        /* A memtable that is not empty: hot -> warm then flushes it to a
         * segment (building its graph) before closing. Measured on a
         * collection of its own, so a kept directory stays as filled; the
         * flush writes only the memtable whatever the segments hold (no
         * compaction follows below 4 segments). */
        double ms[MAX_REPS];
        tdb_collection_drop(db, "tail", false, NULL); /* left by an interrupted run */
        for (int r = 0; r < c->tail_reps; r++) {
            create(db, "tail", c->dim);
            upsert_random(db, "tail", c->dim, 0, c->tail);
            char *out = NULL;
            double t0 = now_s();
            check(tdb_tier_move(db, "tail", false, TDB_TIER_WARM, &out, &err), &err, "tail move");
            ms[r] = (now_s() - t0) * 1e3;
            tdb_free(out);
            printf("move hot_to_warm memtable_docs=%ld rep=%d ms=%.1f\n", c->tail, r + 1, ms[r]);
            fflush(stdout);
            check(tdb_collection_drop(db, "tail", false, &err), &err, "drop tail");
        }
        printf("median move hot_to_warm memtable_docs=%ld ms=%.1f\n", c->tail,
               median(ms, c->tail_reps));
    }
out:
    for (int i = 0; i < q.n; i++) free(q.body[i]);
    free(q.body);
    free(q.len);
    load("after moves");
    tdb_close(db);
}

static void usage(void) {
    fprintf(stderr,
            "usage: tiering track|cycle|moves [--dir DIR] [--keep] [--reps N] [--ops N] [--gets N]\n"
            "                 [--collections N] [--docs N] [--dim N] [--queries N] [--tail N]\n"
            "                 [--tail-reps N] [--compact]\n"
            "                 [--fill-only | --no-fill]   (moves: fill DIR and keep it | reuse it)\n");
    exit(2);
}

int main(int argc, char **argv) {
    cfg c = {NULL, NULL, 0, 2000000, 100000, 10000, 100000, 512, 1000, 0, 10000, 0, 0, 1, 0};
    if (argc < 2) usage();
    c.mode = argv[1];
    bool reps_set = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--keep")) { c.keep = 1; continue; }
        if (!strcmp(a, "--no-fill")) { c.no_fill = 1; c.keep = 1; continue; }
        if (!strcmp(a, "--fill-only")) { c.fill_only = 1; c.keep = 1; continue; }
        if (!strcmp(a, "--compact")) { c.compact = 1; continue; }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--dir")) c.dir = v;
        else if (!strcmp(a, "--reps")) { c.reps = atoi(v); reps_set = true; }
        else if (!strcmp(a, "--ops")) c.ops = atol(v);
        else if (!strcmp(a, "--gets")) c.gets = atol(v);
        else if (!strcmp(a, "--collections")) c.collections = atol(v);
        else if (!strcmp(a, "--docs")) c.docs = atol(v);
        else if (!strcmp(a, "--dim")) c.dim = atoi(v);
        else if (!strcmp(a, "--queries")) c.queries = atoi(v);
        else if (!strcmp(a, "--tail")) c.tail = atol(v);
        else if (!strcmp(a, "--tail-reps")) c.tail_reps = atoi(v);
        else usage();
    }
    bool moves = !strcmp(c.mode, "moves");
    if (!reps_set) c.reps = moves ? 3 : 5;
    /* The library logs every create and move at info: keep the output to
     * figures (TIERDB_LOG_LEVEL=info shows them). */
    const char *lvl = getenv("TIERDB_LOG_LEVEL");
    int level = lvl ? log_level_parse(lvl) : -1;
    log_set_level(level >= 0 ? (log_level)level : LOG_WARN);
    if (c.reps < 1 || c.reps > MAX_REPS || c.ops < 1 || c.gets < 1 || c.collections < 1 ||
        c.docs < 1 || c.dim < 2 || c.dim > 4096 || c.queries < 3 || c.tail < 0 ||
        c.tail_reps < 1 || c.tail_reps > MAX_REPS)
        usage();
    char tmpl[4096];
    if (!c.dir) {
        if (c.no_fill) usage();
        snprintf(tmpl, sizeof tmpl, "%s/tierdb-bench-tiering.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        c.dir = tmpl;
    }
    if (!strcmp(c.mode, "track")) run_track(&c);
    else if (!strcmp(c.mode, "cycle")) run_cycle(&c);
    else if (moves) run_moves(&c);
    else usage();
    if (!c.keep) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", c.dir);
        if (system(cmd) != 0) fprintf(stderr, "tiering: could not remove %s\n", c.dir);
    }
    return 0;
}
