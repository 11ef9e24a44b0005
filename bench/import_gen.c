/*
 * import_gen.c: writes NDJSON documents for `tierdb import` benchmarks to
 * stdout, fast enough that it is never what a benchmark measures (a few
 * hundred MB/s). Not built by CMake, not a test. Build:
 *
 *   cc -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra bench/import_gen.c -o build-bench/import_gen
 *
 * Run: import_gen --count N [--dim 128] [--seed 1] [--start 0] [--prefix doc] [--pad BYTES]
 *
 * Line i (from --start) is
 *   {"id":"doc00000042","vector":[...dim floats in [-1,1), 6 decimals...],
 *    "attributes":{"n":42,"tag":"t10"}}
 * The vector is a function of (seed, i) alone, so a run with --start k
 * writes exactly the lines k.. of a run from 0, and any line can be
 * regenerated to check what a server stored. --count 0 writes forever (for
 * streams longer than any file: `import_gen --count 0 | head -c 2G`).
 * --pad BYTES adds an attribute "pad" of that many 'x' (big documents:
 * many bytes for few documents).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output is assembled in a buffer of this size and written in one call. */
#define GEN_BUFFER_BYTES (1u << 20)

/* splitmix64: a tiny, good, seekable generator (one state per line). */
static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Writes "-0.123456" style text of a value in [-1, 1) with 6 decimals:
 * integer arithmetic, no printf in the inner loop. */
static char *put_value(char *p, uint64_t r) {
    long v = (long)(r % 2000000) - 1000000; /* millionths */
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    *p++ = (char)('0' + v / 1000000);
    *p++ = '.';
    long frac = v % 1000000;
    for (long div = 100000; div > 0; div /= 10) *p++ = (char)('0' + (frac / div) % 10);
    return p;
}

int main(int argc, char **argv) {
    unsigned long long count = 0, start = 0, seed = 1;
    long dim = 128, pad = 0;
    const char *prefix = "doc";
    int have_count = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) goto usage;
        if (strcmp(a, "--count") == 0) count = strtoull(v, NULL, 10), have_count = 1;
        else if (strcmp(a, "--dim") == 0) dim = strtol(v, NULL, 10);
        else if (strcmp(a, "--seed") == 0) seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--start") == 0) start = strtoull(v, NULL, 10);
        else if (strcmp(a, "--prefix") == 0) prefix = v;
        else if (strcmp(a, "--pad") == 0) pad = strtol(v, NULL, 10);
        else goto usage;
        i++;
    }
    if (!have_count || dim < 0 || dim > 4096 || strlen(prefix) > 64 || pad < 0 || pad > (1 << 20)) goto usage;
    char *buf = malloc(GEN_BUFFER_BYTES);
    if (buf == NULL) return 1;
    size_t max_line = 160 + strlen(prefix) + (size_t)dim * 10 + (size_t)pad;
    char *p = buf;
    for (unsigned long long i = start; count == 0 || i < start + count; i++) {
        if ((size_t)(p - buf) + max_line > GEN_BUFFER_BYTES) {
            if (fwrite(buf, 1, (size_t)(p - buf), stdout) != (size_t)(p - buf)) return 1;
            p = buf;
        }
        p += sprintf(p, "{\"id\":\"%s%08llu\"", prefix, i);
        if (dim > 0) {
            memcpy(p, ",\"vector\":[", 11);
            p += 11;
            uint64_t s = seed * 0x100000001b3ull ^ i;
            for (long k = 0; k < dim; k++) {
                if (k) *p++ = ',';
                p = put_value(p, mix(&s));
            }
            *p++ = ']';
        }
        p += sprintf(p, ",\"attributes\":{\"n\":%llu,\"tag\":\"t%llu\"", i, i % 16);
        if (pad > 0) {
            memcpy(p, ",\"pad\":\"", 8);
            p += 8;
            memset(p, 'x', (size_t)pad);
            p += pad;
            *p++ = '"';
        }
        memcpy(p, "}}\n", 3);
        p += 3;
    }
    if (p > buf && fwrite(buf, 1, (size_t)(p - buf), stdout) != (size_t)(p - buf)) return 1;
    free(buf);
    return fflush(stdout) == 0 ? 0 : 1;
usage:
    fprintf(stderr, "usage: import_gen --count N [--dim 128] [--seed 1] [--start 0] [--prefix doc] [--pad BYTES]\n");
    return 2;
}
