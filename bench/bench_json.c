/*
 * bench_json.c: parse speed of an upsert body, 1000 documents x 128 floats
 * (API.md "Documents"), through json_parse + json_get + json_to_floats,
 * as the server does it. Not built by CMake, not a test. Build and run:
 *
 *   cmake -S . -B build-json -DCMAKE_BUILD_TYPE=Release && cmake --build build-json --target tdb_util
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -Isrc -Iinclude bench/bench_json.c \
 *       build-json/libtdb_util.a -lm -lpthread -o build-json/bench_json
 *   ./build-json/bench_json [docs] [dim] [rounds] [shortest|double17|fixed6]
 *
 * Three spellings of the same float32 vectors, because clients differ:
 *   shortest  what json_write_float writes ("0.12345679", ~10 chars);
 *             decimals of <= 9 digits take the exact fast path
 *   double17  what Python's json.dumps writes for numpy float32 .tolist()
 *             ("0.12345679104328156", 17 digits): too many digits for the
 *             fast path, so every number goes through strtod_l
 *   fixed6    "%.6f" ("0.123457"), as hand-written clients often send
 * Reported: input MB/s and floats/s for the median and for the fastest of
 * `rounds` parses, timed in thread CPU time (the fastest is the steadier
 * figure on a busy machine).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/json.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* Thread CPU time, not wall time: on a shared machine the time spent
 * descheduled would otherwise dominate the figure. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum spelling { SHORTEST, DOUBLE17, FIXED6 };

static void make_body(buf *b, size_t docs, size_t dim, enum spelling sp) {
    rng_state = 0x9E3779B97F4A7C15ull;
    buf_puts(b, "{\"documents\": [");
    for (size_t d = 0; d < docs; d++) {
        buf_printf(b, "%s{\"id\": \"doc-%zu\", \"vector\": [", d ? ", " : "", d);
        for (size_t i = 0; i < dim; i++) {
            /* Roughly normal-ish embedding values in (-1, 1). */
            float f = (float)(((double)(rng_next() >> 11) / 9007199254740992.0 - 0.5) * 0.6);
            if (i) buf_puts(b, ", ");
            switch (sp) {
            case SHORTEST: json_write_float(b, f); break;
            case DOUBLE17: buf_printf(b, "%.17g", (double)f); break;
            case FIXED6: buf_printf(b, "%.6f", (double)f); break;
            }
        }
        buf_printf(b, "], \"attributes\": {\"title\": \"Document number %zu\", \"year\": %zu}}", d,
                   2000 + d % 25);
    }
    buf_puts(b, "]}");
}

/* One request as the server handles it; returns floats read (or 0). */
static size_t parse_body(const buf *body, size_t dim, float *vec) {
    json_doc *doc;
    json_error err;
    if (json_parse(body->data, body->len, &doc, &err) != 0) {
        fprintf(stderr, "parse failed at %zu: %s\n", err.offset, err.message);
        exit(1);
    }
    size_t n = 0;
    const json_value *docs = json_get(json_root(doc), "documents");
    for (const json_value *d = docs ? docs->child : NULL; d; d = d->next) {
        if (json_to_floats(json_get(d, "vector"), vec, dim) != 0) {
            fprintf(stderr, "bad vector\n");
            exit(1);
        }
        n += dim;
    }
    json_doc_free(doc);
    return n;
}

int main(int argc, char **argv) {
    size_t docs = argc > 1 ? (size_t)atol(argv[1]) : 1000;
    size_t dim = argc > 2 ? (size_t)atol(argv[2]) : 128;
    int rounds = argc > 3 ? atoi(argv[3]) : 31;
    const char *only = argc > 4 ? argv[4] : NULL;
    if (docs == 0 || dim == 0 || rounds <= 0) {
        fprintf(stderr, "usage: %s [docs] [dim] [rounds] [shortest|double17|fixed6]\n", argv[0]);
        return 2;
    }
    float *vec = malloc(dim * sizeof *vec);
    double *times = malloc((size_t)rounds * sizeof *times);
    const char *names[] = {"shortest", "double17", "fixed6"};
    printf("%zu documents x %zu floats, %d timed parses each\n", docs, dim, rounds);
    for (int sp = SHORTEST; sp <= FIXED6; sp++) {
        if (only && strcmp(only, names[sp]) != 0) continue;
        buf body = BUF_INIT;
        make_body(&body, docs, dim, (enum spelling)sp);
        size_t floats = parse_body(&body, dim, vec); /* warm-up */
        for (int r = 0; r < rounds; r++) {
            double t0 = now_s();
            parse_body(&body, dim, vec);
            times[r] = now_s() - t0;
        }
        qsort(times, (size_t)rounds, sizeof *times, cmp_double);
        double med = times[rounds / 2], best = times[0];
        printf("%-9s body %5.2f MB  median %6.2f ms %6.1f MB/s %5.1f M floats/s | "
               "best %6.2f ms %6.1f MB/s %5.1f M floats/s\n",
               names[sp], (double)body.len / 1e6, med * 1e3, (double)body.len / 1e6 / med,
               (double)floats / 1e6 / med, best * 1e3, (double)body.len / 1e6 / best,
               (double)floats / 1e6 / best);
        buf_free(&body);
    }
    free(vec);
    free(times);
    return 0;
}
