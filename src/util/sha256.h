/*
 * sha256.h: SHA-256 (FIPS 180-4), incremental, for the x-amz-content-sha256
 * header that S3 requires on every signed request (libcurl signs the
 * request but does not hash the body for us).
 * Layer: util. Used by objstore/s3.c.
 *
 * Why our own: it is about 150 lines against a published standard with
 * published test vectors (tests/objstore/test_sha256.c checks them), and
 * it spares the build a libcrypto dependency used for nothing else.
 * Throughput (a few hundred MB/s) is well above what an upload to an
 * object store moves.
 */
#ifndef TDB_UTIL_SHA256_H
#define TDB_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_BYTES 32
#define SHA256_HEX_BYTES 65 /* 64 hex digits and a NUL */

typedef struct sha256_ctx {
    uint32_t state[8];
    uint64_t total_bytes; /* message length so far */
    uint8_t block[64];    /* pending input, block_len bytes of it */
    size_t block_len;
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const void *data, size_t len);
/* Writes the digest; ctx must be re-initialized before reuse. */
void sha256_final(sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_BYTES]);

/* One-shot digest of data as lowercase hex (the form S3 wants). */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_BYTES]);
/* Lowercase hex of a digest. */
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_BYTES], char out[SHA256_HEX_BYTES]);

#endif
