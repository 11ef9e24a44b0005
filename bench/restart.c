/*
 * restart.c: time from tdb_open to the first answered query after a
 * restart, with a big collection in segments and a big unflushed WAL tail.
 * Not built by CMake, not a test. Build (or `make -f bench/Makefile
 * restart`), after building the libraries into build-bench:
 *
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -Iinclude bench/restart.c \
 *       build-bench/libtdb_db.a build-bench/libtdb_tier.a build-bench/libtdb_snapshot.a \
 *       build-bench/libtdb_objstore.a build-bench/libtdb_storage.a build-bench/libtdb_filter.a \
 *       build-bench/libtdb_text.a build-bench/libtdb_vec.a build-bench/libtdb_util.a \
 *       -lsqlite3 -lcurl -lzstd -lsnappy -lroaring -lstemmer -lutf8proc -lm -lpthread \
 *       -o build-bench/restart
 *
 *   restart [--dir DIR] [--docs 1000000] [--wal-docs 100000] [--dim 128]
 *           [--reps 3] [--keep] [--measure-only]
 *
 * Fill (skipped with --measure-only, which reuses DIR as a previous --keep
 * run left it): a collection "bench" (cosine) gets --docs random vectors
 * through tdb_upsert in batches of 1000, tdb_flush_all after every 100,000
 * (so they are in segments; background compaction merges some, as it
 * would in production), then --wal-docs more that are never flushed:
 * memtable_max_docs and memtable_max_bytes are set far above them, so they
 * exist only in the WAL once the database is closed (tdb_close flushes
 * nothing).
 *
 * Measure, --reps times, each in two page-cache states:
 *   warm  the files as the previous close left them in the page cache (a
 *         process restart on the same machine);
 *   cold  every file under DIR evicted first with posix_fadvise
 *         (POSIX_FADV_DONTNEED, only our own files: other processes keep
 *         their cache), so segment pages and the WAL come from the disk
 *         (a restart after a reboot, as far as one process can fake it).
 * Each rep: tdb_open (opens the catalog, no collection: collections open
 * lazily), the first query (opens the collection: MANIFEST, segments
 * mmapped, WAL replayed into the memtable, then an exhaustive top-10 over
 * every document), a second identical query (the search alone, so first -
 * second is the open + replay), tdb_close. "ready" = open + first query.
 * The median of the reps is printed last. The memtable limits stay the
 * same while measuring, so replay never flushes and every rep replays the
 * same WAL.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tierdb.h"

#define BATCH_DOCS 1000
#define FLUSH_EVERY_DOCS 100000
#define MAX_REPS 32

typedef struct cfg {
    const char *dir;
    long docs;
    long wal_docs;
    int dim;
    int reps;
    int keep;
    int measure_only;
} cfg;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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
    fprintf(stderr, "restart: %s: %s (%s)\n", what, err->message, err->name);
    exit(1);
}

static void set_options(tdb_options *o, const cfg *c) {
    tdb_options_default(o);
    o->data_dir = c->dir;
    /* Far above the WAL tail, so neither the fill nor a replay flushes it. */
    o->memtable_max_docs = (uint32_t)(c->wal_docs * 4 + FLUSH_EVERY_DOCS * 2);
    o->memtable_max_bytes = (uint64_t)(c->wal_docs * 4 + FLUSH_EVERY_DOCS * 2) *
                            ((uint64_t)c->dim * 4 + 256);
    o->worker_interval_ms = 0; /* no tiering cycle during the benchmark */
}

static void upsert_range(tdb_db *db, const cfg *c, long first, long count) {
    tdb_doc docs[BATCH_DOCS];
    char ids[BATCH_DOCS][24];
    float *vecs = malloc((size_t)BATCH_DOCS * (size_t)c->dim * sizeof *vecs);
    if (!vecs) exit(1);
    tdb_error err;
    for (long done = 0; done < count;) {
        int n = count - done < BATCH_DOCS ? (int)(count - done) : BATCH_DOCS;
        for (int i = 0; i < n; i++) {
            float *v = vecs + (size_t)i * (size_t)c->dim;
            for (int d = 0; d < c->dim; d++) v[d] = rng_float();
            int len = snprintf(ids[i], sizeof ids[i], "doc-%09ld", first + done + i);
            docs[i] = (tdb_doc){ids[i], (size_t)len, v, NULL, 0};
        }
        check(tdb_upsert(db, "bench", docs, (size_t)n, &err), &err, "tdb_upsert");
        done += n;
    }
    free(vecs);
}

static void fill(const cfg *c) {
    tdb_options o;
    set_options(&o, c);
    tdb_db *db;
    tdb_error err;
    double t0 = now_s();
    check(tdb_open(&o, &db, &err), &err, "tdb_open");
    char body[128];
    int len = snprintf(body, sizeof body, "{\"name\":\"bench\",\"dimension\":%d,\"metric\":\"cosine\"}",
                       c->dim);
    char *out = NULL;
    check(tdb_collection_create_json(db, body, (size_t)len, &out, &err), &err, "create");
    tdb_free(out);
    for (long done = 0; done < c->docs;) {
        long n = c->docs - done < FLUSH_EVERY_DOCS ? c->docs - done : FLUSH_EVERY_DOCS;
        upsert_range(db, c, done, n);
        check(tdb_flush_all(db, &err), &err, "tdb_flush_all");
        done += n;
    }
    double t1 = now_s();
    upsert_range(db, c, c->docs, c->wal_docs);
    double t2 = now_s();
    check(tdb_collection_get_json(db, "bench", &out, &err), &err, "collection get");
    printf("# filled in %.1f s (%ld docs in segments %.1f s, %ld in the WAL %.1f s): %s\n", t2 - t0,
           c->docs, t1 - t0, c->wal_docs, t2 - t1, out);
    tdb_free(out);
    tdb_close(db);
}

/* Evicts DIR's files from the page cache (only clean pages can go; every
 * file here was fsynced or closed after writing, and we sync first). */
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

static double du_mb(const char *dir, const char *sub) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *d = opendir(path);
    double bytes = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[8192];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (e->d_name[0] != '.' && stat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                bytes += du_mb(path, e->d_name) * 1e6;
            else
                bytes += (double)st.st_size;
        }
    }
    closedir(d);
    return bytes / 1e6;
}

typedef struct rep_times {
    double open_ms, first_ms, second_ms, ready_ms;
} rep_times;

static void measure_one(const cfg *c, const char *query, size_t query_len, rep_times *t,
                        int verbose) {
    tdb_options o;
    set_options(&o, c);
    tdb_db *db;
    tdb_error err;
    char *out = NULL;
    double t0 = now_s();
    check(tdb_open(&o, &db, &err), &err, "tdb_open");
    double t1 = now_s();
    check(tdb_query_json(db, "bench", query, query_len, &out, &err), &err, "first query");
    double t2 = now_s();
    if (!strstr(out, "\"results\":[{")) {
        fprintf(stderr, "restart: the first query found nothing: %s\n", out);
        exit(1);
    }
    tdb_free(out);
    check(tdb_query_json(db, "bench", query, query_len, &out, &err), &err, "second query");
    double t3 = now_s();
    tdb_free(out);
    if (verbose) {
        check(tdb_collection_get_json(db, "bench", &out, &err), &err, "collection get");
        printf("# after open: %s\n", out);
        tdb_free(out);
    }
    tdb_close(db);
    t->open_ms = (t1 - t0) * 1e3;
    t->first_ms = (t2 - t1) * 1e3;
    t->second_ms = (t3 - t2) * 1e3;
    t->ready_ms = (t2 - t0) * 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(n - 1) / 2];
}

static void usage(void) {
    fprintf(stderr, "usage: restart [--dir DIR] [--docs 1000000] [--wal-docs 100000] [--dim 128] "
                    "[--reps 3] [--keep] [--measure-only]\n");
    exit(2);
}

int main(int argc, char **argv) {
    cfg c = {NULL, 1000000, 100000, 128, 3, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--keep")) { c.keep = 1; continue; }
        if (!strcmp(a, "--measure-only")) { c.measure_only = 1; c.keep = 1; continue; }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--dir")) c.dir = v;
        else if (!strcmp(a, "--docs")) c.docs = atol(v);
        else if (!strcmp(a, "--wal-docs")) c.wal_docs = atol(v);
        else if (!strcmp(a, "--dim")) c.dim = atoi(v);
        else if (!strcmp(a, "--reps")) c.reps = atoi(v);
        else usage();
    }
    if (c.docs < 0 || c.wal_docs < 0 || c.dim < 1 || c.reps < 1 || c.reps > MAX_REPS) usage();
    char tmpl[4096];
    if (!c.dir) {
        if (c.measure_only) usage();
        snprintf(tmpl, sizeof tmpl, "%s/tierdb-bench-restart.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        c.dir = tmpl;
    }
    if (!c.measure_only) fill(&c);
    printf("# data %s: %.0f MB in collections (wal and segments)\n", c.dir,
           du_mb(c.dir, "collections"));

    /* One fixed query vector: the ids it finds do not matter, the work
     * (every row scanned) is the same for any vector. */
    char query[16384];
    size_t ql = (size_t)snprintf(query, sizeof query, "{\"top_k\":10,\"vector\":[");
    for (int d = 0; d < c.dim && ql + 32 < sizeof query; d++)
        ql += (size_t)snprintf(query + ql, sizeof query - ql, "%s%.6f", d ? "," : "",
                               (double)rng_float());
    ql += (size_t)snprintf(query + ql, sizeof query - ql, "]}");

    const char *states[2] = {"warm", "cold"};
    for (int s = 0; s < 2; s++) {
        double open_ms[MAX_REPS], first_ms[MAX_REPS], second_ms[MAX_REPS], ready_ms[MAX_REPS];
        for (int r = 0; r < c.reps; r++) {
            long evicted = s == 1 ? evict_dir(c.dir) : 0;
            rep_times t;
            measure_one(&c, query, ql, &t, s == 0 && r == 0);
            open_ms[r] = t.open_ms;
            first_ms[r] = t.first_ms;
            second_ms[r] = t.second_ms;
            ready_ms[r] = t.ready_ms;
            printf("cache=%s rep=%d open_ms=%.1f first_query_ms=%.1f second_query_ms=%.1f "
                   "ready_ms=%.1f evicted_mb=%.0f\n",
                   states[s], r + 1, t.open_ms, t.first_ms, t.second_ms, t.ready_ms,
                   (double)evicted / 1e6);
        }
        printf("median cache=%s open_ms=%.1f first_query_ms=%.1f second_query_ms=%.1f "
               "ready_ms=%.1f\n",
               states[s], median(open_ms, c.reps), median(first_ms, c.reps),
               median(second_ms, c.reps), median(ready_ms, c.reps));
    }
    if (!c.keep) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", c.dir);
        if (system(cmd) != 0) fprintf(stderr, "restart: could not remove %s\n", c.dir);
    } else {
        printf("# kept %s\n", c.dir);
    }
    return 0;
}
