/*
 * fuzz_parquet.c: libFuzzer target for snapshot/pq_reader.c: the whole
 * input is a Parquet file; pq_reader_open reads its footer and schema,
 * then pq_reader_next reads every row (every page type, encoding, codec
 * and level decoder the file reaches) until the end or an error.
 *
 * Input: the file's bytes, as they are (no flags byte). The seeds are
 * written with page checksums off (so mutations of page bytes reach the
 * decoders rather than stop at the CRC-32) and some with them on (the
 * check itself); see gen_seeds.c and docs/fuzzing.md.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - a failed open returns no reader and one of the documented codes
 *     (TDB_ECORRUPT, TDB_EUNSUPPORTED, TDB_EIO, TDB_ENOMEM);
 *   - the schema's strings (collection, metric, config, attribute names)
 *     are NUL-terminated and readable; pq_reader_metadata's values too;
 *   - pq_reader_next returns 1, 0 or a documented negative code; after 0
 *     the rows read equal pq_reader_row_count; it never returns more rows
 *     than that;
 *   - every row's id is non-empty, its id, attributes, vector and every
 *     attribute value can be read in full (ASan catches a pointer into
 *     freed or foreign memory), the vector length is the same in every
 *     row and equals pq_reader_dimension.
 * Rows are read up to FUZZ_PQ_MAX_ROWS: a few hundred bytes of RLE can
 * describe millions of rows, which is valid but would only slow the
 * fuzzer down.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "snapshot/parquet.h"

#define FUZZ_PQ_MAX_ROWS 200000

static bool open_code_ok(int rc) {
    return rc == TDB_ECORRUPT || rc == TDB_EUNSUPPORTED || rc == TDB_EIO || rc == TDB_ENOMEM;
}

static void touch_str(const char *s) {
    if (s != NULL) fuzz_touch(s, strlen(s) + 1);
}

static void touch_row(const pq_schema *sc, const pq_row *row) {
    FUZZ_CHECK(row->id.len > 0 && row->id.data != NULL, "empty id");
    fuzz_touch(row->id.data, row->id.len);
    FUZZ_CHECK(row->attributes.data != NULL, "no attributes");
    fuzz_touch(row->attributes.data, row->attributes.len);
    if (row->vector_len > 0) {
        FUZZ_CHECK(row->vector != NULL, "vector of %u floats without data", row->vector_len);
        fuzz_touch(row->vector, (size_t)row->vector_len * sizeof(float));
    }
    FUZZ_CHECK(sc->attr_count == 0 || row->values != NULL, "no values for %zu attributes", sc->attr_count);
    for (size_t i = 0; i < sc->attr_count; i++) {
        const pq_value *v = &row->values[i];
        if (v->is_null) continue;
        switch (sc->attrs[i].type) {
        case PQ_ATTR_STRING:
            if (v->str.len) fuzz_touch(v->str.data, v->str.len);
            break;
        case PQ_ATTR_STRING_ARRAY:
            FUZZ_CHECK(v->count == 0 || v->strs != NULL, "string[] of %zu without data", v->count);
            for (size_t k = 0; k < v->count; k++)
                if (v->strs[k].len) fuzz_touch(v->strs[k].data, v->strs[k].len);
            break;
        case PQ_ATTR_INT_ARRAY:
            FUZZ_CHECK(v->count == 0 || v->ints != NULL, "int[] of %zu without data", v->count);
            if (v->count) fuzz_touch(v->ints, v->count * sizeof(int64_t));
            break;
        case PQ_ATTR_INT:
        case PQ_ATTR_FLOAT:
        case PQ_ATTR_BOOL:
            fuzz_touch(v, sizeof *v);
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    if (!init) {
        fuzz_quiet_log();
        init = true;
    }
    char path[700];
    snprintf(path, sizeof path, "%s/fuzz.parquet", fuzz_root());
    fuzz_write_file(path, data, size);

    pq_reader *r = (pq_reader *)0x1;
    tdb_error err;
    int rc = pq_reader_open(path, &r, &err);
    if (rc != 0) {
        FUZZ_CHECK(r == NULL, "reader returned on failure");
        FUZZ_CHECK(open_code_ok(rc), "unexpected code %d: %s", rc, err.message);
        return 0;
    }
    FUZZ_CHECK(r != NULL, "no reader on success");
    const pq_schema *sc = pq_reader_schema(r);
    touch_str(sc->collection);
    touch_str(sc->metric);
    touch_str(sc->config_json);
    FUZZ_CHECK(sc->attr_count == 0 || sc->attrs != NULL, "%zu attributes without defs", sc->attr_count);
    for (size_t i = 0; i < sc->attr_count; i++) {
        touch_str(sc->attrs[i].name);
        FUZZ_CHECK(pq_attr_type_name(sc->attrs[i].type) != NULL, "attribute %zu: type %d", i,
                   (int)sc->attrs[i].type);
    }
    static const char *const keys[] = {"tierdb.format", "tierdb.version", "tierdb.collection",
                                       "tierdb.dimension", "tierdb.metric", "tierdb.config", "", "ARROW:schema"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        size_t len = 0;
        const char *v = pq_reader_metadata(r, keys[i], &len);
        if (v != NULL) {
            fuzz_touch(v, len);
            FUZZ_CHECK(v[len] == '\0', "metadata %s not NUL-terminated", keys[i]);
        }
    }
    uint64_t rows = pq_reader_row_count(r);
    (void)pq_reader_row_group_count(r);
    int64_t dim0 = pq_reader_dimension(r);
    FUZZ_CHECK(dim0 >= -1 && dim0 <= PQ_MAX_DIMENSION, "dimension %lld", (long long)dim0);

    uint64_t n = 0;
    for (;;) {
        if (n >= FUZZ_PQ_MAX_ROWS) break;
        pq_row row;
        rc = pq_reader_next(r, &row, &err);
        if (rc == 0) {
            FUZZ_CHECK(n == rows, "end after %llu of %llu rows", (unsigned long long)n, (unsigned long long)rows);
            break;
        }
        if (rc < 0) {
            FUZZ_CHECK(rc == TDB_ECORRUPT || rc == TDB_EUNSUPPORTED || rc == TDB_EIO || rc == TDB_ENOMEM,
                       "unexpected code %d: %s", rc, err.message);
            break;
        }
        FUZZ_CHECK(rc == 1, "next returned %d", rc);
        n++;
        FUZZ_CHECK(n <= rows, "row %llu beyond the footer's %llu", (unsigned long long)n, (unsigned long long)rows);
        touch_row(sc, &row);
        int64_t dim = pq_reader_dimension(r);
        FUZZ_CHECK(dim == (int64_t)row.vector_len, "row %llu: vector of %u, dimension %lld",
                   (unsigned long long)n, row.vector_len, (long long)dim);
    }
    pq_reader_stats st;
    pq_reader_get_stats(r, &st);
    pq_reader_close(r);
    return 0;
}
