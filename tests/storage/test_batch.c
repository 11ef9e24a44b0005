/*
 * test_batch.c: WAL batch payloads (storage/batch.h): round trips, and
 * damaged payloads rejected with TDB_ECORRUPT rather than read out of
 * bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/batch.h"

#define DIM 3

static const float VECS[3][DIM] = {{1, 2, 3}, {-0.5f, 0, 1e-3f}, {7, 8, 9}};

static size_t encode_sample(buf *b) {
    st_doc docs[3] = {
        {"a1", 2, VECS[0], "{\"t\":\"x\"}", 9},
        {"long-id-\xc3\xa9", 10, VECS[1], NULL, 0},
        {"a1", 2, VECS[2], "{}", 2},
    };
    assert_int_equal(batch_encode_upsert(b, DIM, docs, 3, NULL), 0);
    return 3;
}

static void batch_upsert_round_trips_ids_attrs_and_vectors(void **state) {
    (void)state;
    buf b = BUF_INIT;
    encode_sample(&b);
    batch_doc *docs;
    size_t n;
    assert_int_equal(batch_decode_upsert((const uint8_t *)b.data, b.len, DIM, &docs, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_int_equal(docs[0].id_len, 2);
    assert_memory_equal(docs[0].id, "a1", 2);
    assert_int_equal(docs[0].attrs_len, 9);
    assert_memory_equal(docs[0].attrs, "{\"t\":\"x\"}", 9);
    assert_memory_equal(docs[0].vector, VECS[0], sizeof VECS[0]);
    assert_int_equal(docs[1].id_len, 10);
    assert_memory_equal(docs[1].id, "long-id-\xc3\xa9", 10);
    assert_null(docs[1].attrs);
    assert_int_equal(docs[1].attrs_len, 0);
    assert_memory_equal(docs[1].vector, VECS[1], sizeof VECS[1]);
    /* Duplicates are kept in order; the engine resolves them. */
    assert_memory_equal(docs[2].id, "a1", 2);
    assert_memory_equal(docs[2].vector, VECS[2], sizeof VECS[2]);
    free(docs);
    buf_free(&b);
}

static void batch_upsert_without_vectors_round_trips(void **state) {
    (void)state;
    buf b = BUF_INIT;
    st_doc d = {"t", 1, NULL, "{\"a\":1}", 7};
    assert_int_equal(batch_encode_upsert(&b, 0, &d, 1, NULL), 0);
    batch_doc *docs;
    size_t n;
    assert_int_equal(batch_decode_upsert((const uint8_t *)b.data, b.len, 0, &docs, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_null(docs[0].vector);
    free(docs);
    buf_free(&b);
}

static void batch_delete_round_trips(void **state) {
    (void)state;
    buf b = BUF_INIT;
    st_key keys[2] = {{"x", 1}, {"yz", 2}};
    assert_int_equal(batch_encode_delete(&b, keys, 2, NULL), 0);
    st_key *out;
    size_t n;
    assert_int_equal(batch_decode_delete((const uint8_t *)b.data, b.len, &out, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(out[1].id, "yz", 2);
    assert_int_equal(out[1].id_len, 2);
    free(out);
    buf_free(&b);
}

static void batch_empty_batch_decodes_to_nothing(void **state) {
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(batch_encode_delete(&b, NULL, 0, NULL), 0);
    st_key *out;
    size_t n;
    assert_int_equal(batch_decode_delete((const uint8_t *)b.data, b.len, &out, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_null(out);
    buf_free(&b);
}

static void batch_every_truncation_is_rejected(void **state) {
    (void)state;
    buf b = BUF_INIT;
    encode_sample(&b);
    for (size_t len = 0; len < b.len; len++) {
        /* A fresh copy of exactly len bytes, so ASan sees any overread. */
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, b.data, len);
        batch_doc *docs = (batch_doc *)1;
        size_t n = 99;
        tdb_error err;
        assert_int_equal(batch_decode_upsert(p, len, DIM, &docs, &n, &err), TDB_ECORRUPT);
        assert_null(docs);
        assert_int_equal(n, 0);
        assert_true(strlen(err.message) > 0);
        free(p);
    }
    buf_free(&b);
}

static void batch_trailing_bytes_are_rejected(void **state) {
    (void)state;
    buf b = BUF_INIT;
    encode_sample(&b);
    buf_put_u8(&b, 0);
    batch_doc *docs;
    size_t n;
    assert_int_equal(batch_decode_upsert((const uint8_t *)b.data, b.len, DIM, &docs, &n, NULL),
                     TDB_ECORRUPT);
    buf_free(&b);
}

static void batch_wrong_dimension_version_and_lengths_are_rejected(void **state) {
    (void)state;
    buf b = BUF_INIT;
    encode_sample(&b);
    batch_doc *docs;
    size_t n;
    tdb_error err;
    assert_int_equal(batch_decode_upsert((const uint8_t *)b.data, b.len, DIM + 1, &docs, &n, &err),
                     TDB_ECORRUPT);
    assert_non_null(strstr(err.message, "dimension"));
    b.data[0] = 9; /* version */
    assert_int_equal(batch_decode_upsert((const uint8_t *)b.data, b.len, DIM, &docs, &n, &err),
                     TDB_ECORRUPT);
    assert_non_null(strstr(err.message, "version"));
    b.data[0] = BATCH_FORMAT_VERSION;
    store_u32(b.data + 5, 0xFFFFFFFFu); /* count far beyond the payload */
    assert_int_equal(batch_decode_upsert((const uint8_t *)b.data, b.len, DIM, &docs, &n, &err),
                     TDB_ECORRUPT);
    store_u32(b.data + 5, 3);
    store_u32(b.data + 9, 0); /* id length 0 */
    assert_int_equal(batch_decode_upsert((const uint8_t *)b.data, b.len, DIM, &docs, &n, &err),
                     TDB_ECORRUPT);
    store_u32(b.data + 9, ST_MAX_ID_BYTES + 1);
    assert_int_equal(batch_decode_upsert((const uint8_t *)b.data, b.len, DIM, &docs, &n, &err),
                     TDB_ECORRUPT);
    buf_free(&b);
}

static void batch_random_garbage_never_crashes(void **state) {
    (void)state;
    srand(42);
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand() % 96);
        uint8_t *p = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) p[i] = (uint8_t)rand();
        /* Plausible headers half the time, so decoding gets past them. */
        if (len > 0 && round % 2) p[0] = BATCH_FORMAT_VERSION;
        if (len >= 9 && round % 4 == 1) {
            store_u32(p + 1, DIM);
            store_u32(p + 5, (uint32_t)(rand() % 4));
        }
        batch_doc *docs = NULL;
        st_key *keys = NULL;
        size_t n = 0;
        int rc = batch_decode_upsert(p, len, DIM, &docs, &n, NULL);
        assert_true(rc == 0 || rc == TDB_ECORRUPT);
        free(docs);
        rc = batch_decode_delete(p, len, &keys, &n, NULL);
        assert_true(rc == 0 || rc == TDB_ECORRUPT);
        free(keys);
        free(p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_upsert_round_trips_ids_attrs_and_vectors),
        cmocka_unit_test(batch_upsert_without_vectors_round_trips),
        cmocka_unit_test(batch_delete_round_trips),
        cmocka_unit_test(batch_empty_batch_decodes_to_nothing),
        cmocka_unit_test(batch_every_truncation_is_rejected),
        cmocka_unit_test(batch_trailing_bytes_are_rejected),
        cmocka_unit_test(batch_wrong_dimension_version_and_lengths_are_rejected),
        cmocka_unit_test(batch_random_garbage_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
