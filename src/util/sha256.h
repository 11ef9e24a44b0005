/*
 * sha256.h: SHA-256 (FIPS 180-4), incremental, for the x-amz-content-sha256
 * header that S3 requires on every signed request (libcurl signs the
 * request but does not hash the body for us).
 * Layer: util. Used by objstore/s3.c.
 *
 * Computed by libcrypto (OpenSSL's EVP interface, Debian libssl-dev), which
 * picks SHA-NI or SIMD code for the CPU it runs on: about 7x the
 * throughput of the portable implementation this replaced (1120 against
 * 160 MB/s on 16 MiB parts; bench/sha256_speed.c measures both in one
 * run). Every upload hashes its whole body before sending it, so this is
 * on the path of every demote and snapshot to S3.
 *
 * Ownership: a context holds a libcrypto object from sha256_init until
 * sha256_final or sha256_discard (exactly one of them must follow a
 * successful init); both are no-ops on a context whose init failed.
 */
#ifndef TDB_UTIL_SHA256_H
#define TDB_UTIL_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_BYTES 32
#define SHA256_HEX_BYTES 65 /* 64 hex digits and a NUL */

typedef struct sha256_ctx {
    void *md_ctx; /* EVP_MD_CTX *, NULL when init failed or after final/discard */
    bool failed;  /* an update failed: final reports it */
} sha256_ctx;

/* 0, or TDB_ENOMEM when libcrypto cannot allocate or set up the digest. */
int sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const void *data, size_t len);
/* Writes the digest and frees the context's state: 0, or TDB_ENOMEM when
 * init or an update failed (out is then zeroed). ctx must be initialized
 * again before reuse. */
int sha256_final(sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_BYTES]);
/* Frees the state of a context abandoned before final. */
void sha256_discard(sha256_ctx *ctx);

/* One-shot digest of data as lowercase hex (the form S3 wants): 0 or
 * TDB_ENOMEM (out is then the empty string). */
int sha256_hex(const void *data, size_t len, char out[SHA256_HEX_BYTES]);
/* Lowercase hex of a digest. */
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_BYTES], char out[SHA256_HEX_BYTES]);

#endif
