/*
 * bench_json.c: parse speed and memory of an upsert body, 1000 documents x
 * 128 floats (API.md "Documents"). Not built by CMake, not a test. Build
 * and run:
 *
 *   cmake -S . -B build-json -DCMAKE_BUILD_TYPE=Release && cmake --build build-json --target tdb_util
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -Isrc -Iinclude bench/bench_json.c \
 *       build-json/libtdb_util.a -lm -lpthread -o build-json/bench_json
 *   ./build-json/bench_json [docs] [dim] [rounds] [shortest|double17|fixed6|eight]
 *
 * The same file builds against an older src/util/json.h (one without
 * json_parse_ex): it then measures the tree path only, so two builds of it
 * compare a baseline with the current parser in the same run.
 *
 * Spellings of the same float32 vectors, because clients differ:
 *   shortest  what json_write_float writes ("0.12345679", ~10 chars);
 *             decimals of <= 9 digits take the exact fast path
 *   double17  what Python's json.dumps writes for numpy float32 .tolist()
 *             ("0.12345679104328156", 17 digits): too many digits for
 *             Clinger's path, so every number takes the 128-bit one
 *   fixed6    "%.6f" ("0.123457"), as hand-written clients often send
 *   eight     "%.8g" of values in [-1, 1), what bench/upsert_http sends
 * Two paths:
 *   tree      json_parse + json_get + json_to_floats: a node per number
 *   floats    json_parse_ex reading each "vector" straight into floats, as
 *             the server's upsert does (json_floats)
 * Reported: input MB/s and floats/s for the median and for the fastest of
 * `rounds` parses, timed in thread CPU time (the fastest is the steadier
 * figure on a busy machine), and the memory one parse touches (resident
 * bytes the parse added: arena blocks are fresh mmaps here, so untouched
 * pages do not count), per request and per number. A last line measures
 * the worst case for memory: a body of one-digit numbers, "[1,1,...]".
 */
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* Resident bytes of this process. */
static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

#ifdef JSON_MAX_TEXT_BYTES
#define HAVE_FLOAT_ARRAYS 1
#else
#define HAVE_FLOAT_ARRAYS 0
#endif

enum spelling { SHORTEST, DOUBLE17, FIXED6, EIGHT };
enum path { TREE, FLOATS };

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
            case EIGHT: buf_printf(b, "%.8g", (double)f * 3.3); break;
            }
        }
        buf_printf(b, "], \"attributes\": {\"title\": \"Document number %zu\", \"year\": %zu}}", d,
                   2000 + d % 25);
    }
    buf_puts(b, "]}");
}

static json_doc *parse(const char *text, size_t len, enum path path, unsigned depths, size_t hint) {
    json_doc *doc = NULL;
    json_error err;
    int rc;
#if HAVE_FLOAT_ARRAYS
    /* The server passes the collection's dimension as the hint. */
    json_parse_options opts = {.float_key = "vector", .float_depths = depths, .float_count_hint = (uint32_t)hint};
    rc = path == FLOATS ? json_parse_ex(text, len, &opts, &doc, &err) : json_parse(text, len, &doc, &err);
#else
    (void)path;
    (void)depths;
    (void)hint;
    rc = json_parse(text, len, &doc, &err);
#endif
    if (rc != 0) {
        fprintf(stderr, "parse failed at %zu: %s\n", err.offset, err.message);
        exit(1);
    }
    return doc;
}

/* One request as the server handles it; returns floats read. With
 * mem_bytes, also the resident memory the parsed doc holds. */
static size_t parse_body(const buf *body, size_t dim, float *vec, enum path path, size_t *mem_bytes) {
    size_t rss0 = mem_bytes ? rss_bytes() : 0;
    json_doc *doc = parse(body->data, body->len, path, 1u << 2, dim);
    if (mem_bytes) *mem_bytes = rss_bytes() - rss0;
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
        fprintf(stderr, "usage: %s [docs] [dim] [rounds] [shortest|double17|fixed6|eight]\n", argv[0]);
        return 2;
    }
    /* Every block of 64 KiB or more is a fresh mmap, so the resident
     * growth of one parse is what it touched (no reuse of freed heap). */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    float *vec = malloc(dim * sizeof *vec);
    double *times = malloc((size_t)rounds * sizeof *times);
    const char *names[] = {"shortest", "double17", "fixed6", "eight"};
    const char *path_names[] = {"tree", "floats"};
    printf("%zu documents x %zu floats, %d timed parses each%s\n", docs, dim, rounds,
           HAVE_FLOAT_ARRAYS ? "" : " (json.h without float arrays: tree only)");
    for (int sp = SHORTEST; sp <= EIGHT; sp++) {
        if (only && strcmp(only, names[sp]) != 0) continue;
        buf body = BUF_INIT;
        make_body(&body, docs, dim, (enum spelling)sp);
        for (int path = TREE; path <= (HAVE_FLOAT_ARRAYS ? FLOATS : TREE); path++) {
            size_t mem = 0;
            size_t floats = parse_body(&body, dim, vec, (enum path)path, &mem); /* warm-up */
            for (int r = 0; r < rounds; r++) {
                double t0 = now_s();
                parse_body(&body, dim, vec, (enum path)path, NULL);
                times[r] = now_s() - t0;
            }
            qsort(times, (size_t)rounds, sizeof *times, cmp_double);
            double med = times[rounds / 2], best = times[0];
            printf("%-9s %-6s body %5.2f MB  median %6.2f ms %6.1f MB/s %5.1f M floats/s | "
                   "best %6.2f ms %6.1f MB/s %5.1f M floats/s | memory %6.2f MB %5.1f B/float\n",
                   names[sp], path_names[path], (double)body.len / 1e6, med * 1e3,
                   (double)body.len / 1e6 / med, (double)floats / 1e6 / med, best * 1e3,
                   (double)body.len / 1e6 / best, (double)floats / 1e6 / best, (double)mem / 1e6,
                   (double)mem / (double)floats);
        }
        buf_free(&body);
    }
    if (!only || strcmp(only, "ones") == 0) {
        /* Worst case for memory: 8 M one-digit numbers (16 MB), as a tree
         * ("[1,1,...]") and as a document vector ({"vector": [1,1,...]}). */
        size_t count = 8u << 20;
        for (int path = TREE; path <= (HAVE_FLOAT_ARRAYS ? FLOATS : TREE); path++) {
            buf body = BUF_INIT;
            buf_puts(&body, path == FLOATS ? "{\"vector\":[" : "[");
            for (size_t i = 0; i < count; i++) buf_puts(&body, i ? ",1" : "1");
            buf_puts(&body, path == FLOATS ? "]}" : "]");
            double t0 = now_s();
            size_t rss0 = rss_bytes();
            json_doc *doc = parse(body.data, body.len, (enum path)path, 1u << 0, 0);
            size_t mem = rss_bytes() - rss0;
            double t = now_s() - t0;
            printf("ones      %-6s body %5.2f MB  %zu one-digit numbers: memory %7.1f MB = %5.1f B/number "
                   "(%4.1f x the body), %6.1f ms\n",
                   path_names[path], (double)body.len / 1e6, count, (double)mem / 1e6,
                   (double)mem / (double)count, (double)mem / (double)body.len, t * 1e3);
            json_doc_free(doc);
            buf_free(&body);
        }
    }
    free(vec);
    free(times);
    return 0;
}
