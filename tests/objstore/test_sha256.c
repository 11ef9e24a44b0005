/*
 * test_sha256.c: util/sha256 (libcrypto's SHA-256, used for S3 payload
 * hashes) against the published FIPS 180-4 / NIST example vectors (the
 * 56-byte one ends exactly where padding needs a second block),
 * incremental hashing split at every offset, and the context's ownership
 * (discard frees an abandoned context; ASan's leak check runs this too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tierdb.h"
#include "util/sha256.h"

static void sha256_matches_nist_vectors(void **state) {
    (void)state;
    char hex[SHA256_HEX_BYTES];
    assert_int_equal(sha256_hex("", 0, hex), 0);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *four = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                       "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    sha256_hex(four, strlen(four), hex);
    assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void sha256_of_a_million_a(void **state) {
    (void)state;
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    char hex[SHA256_HEX_BYTES];
    assert_int_equal(sha256_hex(a, n, hex), 0);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

static void sha256_incremental_equals_one_shot_at_every_split(void **state) {
    (void)state;
    uint8_t data[300];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + 3);
    char want[SHA256_HEX_BYTES], got[SHA256_HEX_BYTES];
    sha256_hex(data, sizeof data, want);
    for (size_t split = 0; split <= sizeof data; split++) {
        sha256_ctx ctx;
        uint8_t d[SHA256_DIGEST_BYTES];
        assert_int_equal(sha256_init(&ctx), 0);
        sha256_update(&ctx, data, split);
        sha256_update(&ctx, data + split, sizeof data - split);
        assert_int_equal(sha256_final(&ctx, d), 0);
        sha256_to_hex(d, got);
        assert_string_equal(got, want);
    }
}

static void sha256_discard_and_final_free_the_context(void **state) {
    (void)state;
    sha256_ctx ctx;
    assert_int_equal(sha256_init(&ctx), 0);
    sha256_update(&ctx, "abc", 3);
    sha256_discard(&ctx);
    sha256_discard(&ctx); /* twice: a no-op */
    uint8_t d[SHA256_DIGEST_BYTES];
    /* final after discard reports the misuse instead of crashing */
    assert_int_equal(sha256_final(&ctx, d), TDB_ENOMEM);
    for (size_t i = 0; i < sizeof d; i++) assert_int_equal(d[i], 0);
    /* a fresh init after all that works */
    assert_int_equal(sha256_init(&ctx), 0);
    sha256_update(&ctx, "abc", 3);
    assert_int_equal(sha256_final(&ctx, d), 0);
    char hex[SHA256_HEX_BYTES];
    sha256_to_hex(d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_matches_nist_vectors),
        cmocka_unit_test(sha256_of_a_million_a),
        cmocka_unit_test(sha256_incremental_equals_one_shot_at_every_split),
        cmocka_unit_test(sha256_discard_and_final_free_the_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
