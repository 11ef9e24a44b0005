/*
 * fuzz_batch.c: libFuzzer target for storage/batch.c (decoding WAL
 * payloads: batch_decode_upsert, batch_decode_delete).
 *
 * Input:
 *   byte 0   bit 0: 0 upsert, 1 delete; bits 1-3 pick the collection's
 *            dimension for an upsert (0, 1, 2, 3, 4, 8, 16, 768).
 *   byte 1.. the payload (what a WAL record of that type carries).
 *
 * Properties checked on a payload that decodes:
 *   - every id is 1..ST_MAX_ID_BYTES bytes, and every id, attribute text
 *     and vector lies inside the payload;
 *   - encoding the decoded batch gives back exactly the payload (a payload
 *     is consumed exactly, so its encoding is unique).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "storage/batch.h"

static const uint32_t dimensions[8] = {0, 1, 2, 3, 4, 8, 16, 768};

static void check_inside(const void *p, size_t n, const uint8_t *base, size_t len) {
    if (n == 0) return;
    const uint8_t *q = p;
    FUZZ_CHECK(q >= base && n <= len && (size_t)(q - base) <= len - n, "range outside payload");
    fuzz_touch(p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool is_delete = data[0] & 1;
    uint32_t dimension = dimensions[(data[0] >> 1) & 7];
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    /* An exact-size copy: ASan then sees a read one byte past the end. */
    uint8_t *payload = fuzz_dup(p, len);
    tdb_error err;
    buf out = BUF_INIT;

    if (is_delete) {
        st_key *keys = NULL;
        size_t n = 0;
        int rc = batch_decode_delete(payload, len, &keys, &n, &err);
        if (rc != 0) {
            FUZZ_CHECK(keys == NULL && n == 0, "output left on failure");
            FUZZ_CHECK(rc == TDB_ECORRUPT || rc == TDB_ENOMEM, "unexpected code %d", rc);
        } else {
            for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(keys[i].id_len >= 1 && keys[i].id_len <= ST_MAX_ID_BYTES, "id length");
                check_inside(keys[i].id, keys[i].id_len, payload, len);
            }
            rc = batch_encode_delete(&out, keys, n, &err);
            FUZZ_CHECK(rc == 0, "re-encoding failed: %d", rc);
            FUZZ_CHECK(out.len == len && memcmp(out.data, payload, len) == 0,
                       "encode(decode(x)) != x");
        }
        free(keys);
    } else {
        batch_doc *docs = NULL;
        size_t n = 0;
        int rc = batch_decode_upsert(payload, len, dimension, &docs, &n, &err);
        if (rc != 0) {
            FUZZ_CHECK(docs == NULL && n == 0, "output left on failure");
            FUZZ_CHECK(rc == TDB_ECORRUPT || rc == TDB_ENOMEM, "unexpected code %d", rc);
        } else {
            st_doc *in = calloc(n ? n : 1, sizeof *in);
            float *vecs = calloc(n * dimension + 1, sizeof *vecs);
            FUZZ_CHECK(in != NULL && vecs != NULL, "out of memory");
            for (size_t i = 0; i < n; i++) {
                const batch_doc *d = &docs[i];
                FUZZ_CHECK(d->id_len >= 1 && d->id_len <= ST_MAX_ID_BYTES, "id length");
                check_inside(d->id, d->id_len, payload, len);
                FUZZ_CHECK((d->attrs == NULL) == (d->attrs_len == 0), "attrs pointer vs length");
                check_inside(d->attrs, d->attrs_len, payload, len);
                FUZZ_CHECK((d->vector == NULL) == (dimension == 0), "vector presence");
                check_inside(d->vector, dimension * sizeof(float), payload, len);
                if (dimension) memcpy(vecs + i * dimension, d->vector, dimension * sizeof(float));
                in[i] = (st_doc){d->id, d->id_len, dimension ? vecs + i * dimension : NULL, d->attrs,
                                 d->attrs_len};
            }
            rc = batch_encode_upsert(&out, dimension, in, n, &err);
            FUZZ_CHECK(rc == 0, "re-encoding failed: %d", rc);
            FUZZ_CHECK(out.len == len && memcmp(out.data, payload, len) == 0,
                       "encode(decode(x)) != x");
            free(in);
            free(vecs);
        }
        free(docs);
    }
    buf_free(&out);
    free(payload);
    return 0;
}
