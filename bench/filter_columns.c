/*
 * filter_columns.c: filter-only and filtered vector queries on 200k docs,
 * filters answered from typed columns vs from JSON (TDB_FILTER_JSON=1),
 * alternated in the same run. Prints median ms per query for each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tierdb.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(getenv("BENCH_WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
static void check(int rc, const tdb_error *err, const char *what) {
    if (rc) { fprintf(stderr, "%s: %s\n", what, err->message); exit(1); }
}
static uint64_t rng = 12345;
static uint64_t nxt(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define DIM 32
int main(int argc, char **argv) {
    int docs = argc > 1 ? atoi(argv[1]) : 200000;
    const char *dir = argc > 2 ? argv[2] : "/tmp/tdb-filter-bench";
    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = dir;
    o.fsync = TDB_FSYNC_NONE;
    o.worker_interval_ms = 0;
    tdb_db *db;
    tdb_error err;
    check(tdb_open(&o, &db, &err), &err, "open");
    const char *create = "{\"name\":\"b\",\"dimension\":32,\"metric\":\"l2\",\"attributes\":{"
                         "\"cat\":{\"type\":\"string\"},\"price\":{\"type\":\"float\"},"
                         "\"year\":{\"type\":\"int\"},\"tags\":{\"type\":\"string[]\"}}}";
    char *out = NULL;
    int rc = tdb_collection_create_json(db, create, strlen(create), &out, &err);
    tdb_free(out);
    if (rc == 0) {
        double t0 = now_s();
        size_t cap = 1 << 20;
        char *body = malloc(cap * 4);
        for (int base = 0; base < docs; base += 1000) {
            size_t len = 0;
            len += sprintf(body + len, "{\"documents\":[");
            for (int i = base; i < base + 1000 && i < docs; i++) {
                if (i > base) body[len++] = ',';
                len += sprintf(body + len, "{\"id\":\"d%07d\",\"vector\":[", i);
                for (int d = 0; d < DIM; d++)
                    len += sprintf(body + len, "%s%.4f", d ? "," : "", (double)(nxt() % 10000) / 10000.0);
                len += sprintf(body + len,
                               "],\"attributes\":{\"cat\":\"c%d\",\"price\":%.2f,\"year\":%d,"
                               "\"tags\":[\"t%d\",\"t%d\"],\"note\":\"n%d\"}}",
                               (int)(nxt() % 20), (double)(nxt() % 10000) / 100.0,
                               1990 + (int)(nxt() % 35), (int)(nxt() % 50), (int)(nxt() % 50),
                               (int)(nxt() % 20));
            }
            len += sprintf(body + len, "]}");
            size_t up;
            check(tdb_upsert_json(db, "b", body, len, &up, &err), &err, "upsert");
        }
        check(tdb_flush_all(db, &err), &err, "flush");
        free(body);
        fprintf(stderr, "loaded %d docs in %.1f s\n", docs, now_s() - t0);
    }
    tdb_collection_get_json(db, "b", &out, &err);
    printf("# %s\n", out);
    tdb_free(out);
    static const struct { const char *name; const char *filter; bool vec; int top_k; } Q[] = {
        {"filter-only, 0.7% match, top 10", "{\"cat\":\"c7\",\"year\":{\"$gte\":2020}}", false, 10},
        {"filter-only, 0.03% match, top 100", "{\"cat\":\"c3\",\"year\":2001,\"tags\":{\"$contains\":\"t7\"}}", false, 100},
        {"filter-only, 71% match, top 10", "{\"year\":{\"$gte\":2000}}", false, 10},
        {"filter-only, undeclared-style mixed, top 10", "{\"cat\":{\"$in\":[\"c1\",\"c2\"]},\"note\":\"n3\"}", false, 10},
        {"vector, 5% match, top 10", "{\"cat\":\"c7\"}", true, 10},
        {"vector, 0.7% match, top 10", "{\"cat\":\"c3\",\"year\":{\"$lt\":1995}}", true, 10},
        {"vector, 80% match, top 10", "{\"price\":{\"$lt\":80}}", true, 10},
        {"vector, no filter, top 10", NULL, true, 10},
    };
    enum { REPS = 31 };
    const char *only = getenv("BENCH_ONLY");
    for (size_t k = 0; k < sizeof Q / sizeof Q[0]; k++) {
        if (only && atoi(only) != (int)k) continue;
        double t[2][REPS];
        char first[2][256];
        for (int r = 0; r < REPS; r++) {
            for (int step = 0; step < 2; step++) {
                int mode = (r % 2) ? 1 - step : step; /* alternate which runs first */
                const char *bm = getenv("BENCH_MODE");
                if (bm && atoi(bm) != mode) continue;
                setenv("TDB_FILTER_JSON", mode ? "1" : "0", 1);
                char body[2048];
                size_t len = 0;
                len += sprintf(body + len, "{\"top_k\":%d,\"include\":{\"attributes\":false}", Q[k].top_k);
                if (Q[k].filter) len += sprintf(body + len, ",\"filter\":%s", Q[k].filter);
                if (Q[k].vec) {
                    uint64_t save = rng;
                    rng = 777 + (uint64_t)r;
                    len += sprintf(body + len, ",\"vector\":[");
                    for (int d = 0; d < DIM; d++)
                        len += sprintf(body + len, "%s%.4f", d ? "," : "", (double)(nxt() % 10000) / 10000.0);
                    len += sprintf(body + len, "]");
                    rng = save;
                }
                len += sprintf(body + len, "}");
                double t0 = now_s();
                check(tdb_query_json(db, "b", body, len, &out, &err), &err, "query");
                t[mode][r] = (now_s() - t0) * 1e3;
                if (r == 0) {
                    char *res = strstr(out, "\"results\"");
                    snprintf(first[mode], sizeof first[mode], "%.200s", res ? res : out);
                    char *tk = strstr(first[mode], "took_ms");
                    if (tk) *tk = 0;
                }
                tdb_free(out);
            }
        }
        if (!getenv("BENCH_MODE") && strcmp(first[0], first[1]) != 0) {
            fprintf(stderr, "MISMATCH in %s\n%s\n%s\n", Q[k].name, first[0], first[1]);
            return 1;
        }
        qsort(t[0], REPS, sizeof(double), cmpd);
        qsort(t[1], REPS, sizeof(double), cmpd);
        printf("%-45s columns %8.3f ms   json %8.3f ms   json/columns %6.1fx\n", Q[k].name,
               t[0][REPS / 2], t[1][REPS / 2], t[1][REPS / 2] / t[0][REPS / 2]);
    }
    tdb_close(db);
    return 0;
}
