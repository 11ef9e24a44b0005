/*
 * sha256.c: SHA-256 through libcrypto's EVP digest interface.
 * Layer: util. See sha256.h for why libcrypto.
 *
 * The SHA-256 implementation is looked up once per process
 * (EVP_MD_fetch), not at every init: an implicit fetch by name costs a
 * provider lookup per call, which is noticeable on the many small bodies
 * (list requests, multipart completions) S3 traffic is made of.
 * Invariant: ctx->md_ctx is non-NULL exactly between a successful init and
 * final/discard.
 */
#include "util/sha256.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#include "tierdb.h"

static pthread_once_t g_fetch_once = PTHREAD_ONCE_INIT;
static EVP_MD *g_sha256; /* never freed: lives as long as the process */

static void fetch_once(void) { g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); }

int sha256_init(sha256_ctx *ctx) {
    ctx->md_ctx = NULL;
    ctx->failed = false;
    pthread_once(&g_fetch_once, fetch_once);
    if (g_sha256 == NULL) return TDB_ENOMEM;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL) return TDB_ENOMEM;
    if (EVP_DigestInit_ex2(md, g_sha256, NULL) != 1) {
        EVP_MD_CTX_free(md);
        return TDB_ENOMEM;
    }
    ctx->md_ctx = md;
    return 0;
}

void sha256_update(sha256_ctx *ctx, const void *data, size_t len) {
    if (ctx->md_ctx == NULL || len == 0) return;
    if (EVP_DigestUpdate(ctx->md_ctx, data, len) != 1) ctx->failed = true;
}

int sha256_final(sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_BYTES]) {
    int rc = 0;
    unsigned int n = 0;
    if (ctx->md_ctx == NULL || ctx->failed ||
        EVP_DigestFinal_ex(ctx->md_ctx, out, &n) != 1 || n != SHA256_DIGEST_BYTES) {
        memset(out, 0, SHA256_DIGEST_BYTES);
        rc = TDB_ENOMEM;
    }
    sha256_discard(ctx);
    return rc;
}

void sha256_discard(sha256_ctx *ctx) {
    EVP_MD_CTX_free(ctx->md_ctx); /* NULL is a no-op */
    ctx->md_ctx = NULL;
}

void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_BYTES], char out[SHA256_HEX_BYTES]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_BYTES; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
}

int sha256_hex(const void *data, size_t len, char out[SHA256_HEX_BYTES]) {
    sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_BYTES];
    int rc = sha256_init(&ctx);
    if (rc == 0) {
        sha256_update(&ctx, data, len);
        rc = sha256_final(&ctx, digest);
    }
    if (rc) {
        out[0] = '\0';
        return rc;
    }
    sha256_to_hex(digest, out);
    return 0;
}
