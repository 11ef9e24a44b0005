/*
 * sha256_speed.c: SHA-256 throughput of util/sha256 (libcrypto's EVP
 * interface) against the portable FIPS 180-4 implementation it replaced
 * (kept below as the baseline), in one run, on the same buffers. Both
 * digests are compared on every buffer, so a wrong result fails the bench.
 * Prints MB/s of each and the ratio, for a large buffer (an upload part)
 * and for 4 KiB bodies (list and multipart-complete requests).
 *
 * Build and run from the repository root:
 *   cc -O2 -std=c17 -D_GNU_SOURCE -Iinclude -Isrc bench/sha256_speed.c src/util/sha256.c \
 *      -lcrypto -lpthread -o build-bench/sha256_speed && build-bench/sha256_speed
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/sha256.h"

/* ---- baseline: the portable implementation, as it was -------------- */

typedef struct base_ctx {
    uint32_t state[8];
    uint64_t total_bytes;
    uint8_t block[64];
    size_t block_len;
} base_ctx;

/* First 32 bits of the fractional parts of the cube roots of the first 64
 * primes (FIPS 180-4, 4.2.2). */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void compress(uint32_t state[8], const uint8_t block[64]) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++) {
        const uint8_t *p = block + 4 * t; /* big-endian words */
        w[t] = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    }
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + big_s1 + ch + K[t] + w[t];
        uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = big_s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

static void base_init(base_ctx *ctx) {
    /* First 32 bits of the fractional parts of the square roots of the
     * first 8 primes (FIPS 180-4, 5.3.3). */
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->state, h0, sizeof h0);
    ctx->total_bytes = 0;
    ctx->block_len = 0;
}

static void base_update(base_ctx *ctx, const void *data, size_t len) {
    const uint8_t *p = data;
    ctx->total_bytes += len;
    if (ctx->block_len > 0) {
        size_t take = 64 - ctx->block_len;
        if (take > len) take = len;
        memcpy(ctx->block + ctx->block_len, p, take);
        ctx->block_len += take;
        p += take;
        len -= take;
        if (ctx->block_len < 64) return;
        compress(ctx->state, ctx->block);
        ctx->block_len = 0;
    }
    while (len >= 64) {
        compress(ctx->state, p);
        p += 64;
        len -= 64;
    }
    if (len > 0) {
        memcpy(ctx->block, p, len);
        ctx->block_len = len;
    }
}

static void base_final(base_ctx *ctx, uint8_t out[32]) {
    /* Padding (5.1.1): a 1 bit, zeros up to 56 mod 64, then the message
     * length in bits as a 64-bit big-endian number. */
    uint64_t bit_len = ctx->total_bytes * 8;
    uint8_t pad[72] = {0x80};
    size_t pad_len = ctx->block_len < 56 ? 56 - ctx->block_len : 120 - ctx->block_len;
    for (int i = 0; i < 8; i++) pad[pad_len + (size_t)i] = (uint8_t)(bit_len >> (56 - 8 * i));
    uint64_t total = ctx->total_bytes;
    base_update(ctx, pad, pad_len + 8);
    ctx->total_bytes = total;
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(ctx->state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
        out[4 * i + 3] = (uint8_t)ctx->state[i];
    }
}


/* ---- the bench ----------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void base_digest(const uint8_t *p, size_t n, uint8_t out[32]) {
    base_ctx c;
    base_init(&c);
    base_update(&c, p, n);
    base_final(&c, out);
}

static int evp_digest(const uint8_t *p, size_t n, uint8_t out[32]) {
    sha256_ctx c;
    if (sha256_init(&c) != 0) return -1;
    sha256_update(&c, p, n);
    return sha256_final(&c, out);
}

/* Hashes `buf` in pieces of `piece` bytes, `rounds` times, with each
 * implementation; returns 1 on a digest mismatch. */
static int run(const uint8_t *buf, size_t total, size_t piece, int rounds, const char *what) {
    uint8_t a[32], b[32];
    double best_base = 1e30, best_evp = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        for (size_t off = 0; off < total; off += piece) base_digest(buf + off, piece, a);
        double t1 = now_s();
        for (size_t off = 0; off < total; off += piece)
            if (evp_digest(buf + off, piece, b) != 0) return 1;
        double t2 = now_s();
        if (memcmp(a, b, 32) != 0) {
            fprintf(stderr, "sha256_speed: digests differ (%s)\n", what);
            return 1;
        }
        if (t1 - t0 < best_base) best_base = t1 - t0;
        if (t2 - t1 < best_evp) best_evp = t2 - t1;
    }
    double mb = (double)total / 1e6;
    printf("%-22s portable %8.1f MB/s   libcrypto %8.1f MB/s   ratio %.2fx\n", what,
           mb / best_base, mb / best_evp, best_base / best_evp);
    return 0;
}

int main(void) {
    size_t total = (size_t)64 << 20;
    uint8_t *buf = malloc(total);
    if (buf == NULL) return 1;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    int bad = run(buf, total, (size_t)16 << 20, 3, "16 MiB parts");
    bad |= run(buf, (size_t)16 << 20, 4096, 3, "4 KiB bodies");
    free(buf);
    return bad;
}
