/*
 * test_parquet.c: the snapshot Parquet writer and reader: round trips
 * (no rows, one row, 100k x 128-d across row groups, dimension 0, every
 * attribute type with nulls, unicode, U+0000, +-2^53, int64 extremes),
 * the three codecs, dictionary pages, page and row group limits, JSON
 * conversion of declared attributes, durable close under injected I/O
 * faults, and hostile files (truncated, flipped bytes in the footer and
 * the pages, absurd counts, deep Thrift nesting) that must fail with
 * TDB_ECORRUPT (or TDB_EUNSUPPORTED), never crash.
 * The independent check against DuckDB is test_parquet_duckdb.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/parquet.h"
#include "snapshot/pq_encoding.h"
#include "snapshot/pq_format.h"
#include "snapshot/pq_thrift.h"
#include "util/buf.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/log.h"

#include "pq_testdata.h"

/* ---- helpers ------------------------------------------------------- */

static char g_dir[1024];

static void tmp_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", g_dir, name); }

static int64_t file_size(const char *path) { return fio_file_size(path); }

static char *slurp(const char *path, size_t *len) {
    char *data;
    assert_int_equal(fio_read_file(path, &data, len), 0);
    return data;
}

static void spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Corruption is logged at error level (the lowest): the hostile-file
 * tests silence stderr around each read, so that a failure's message
 * (printed after quiet_end) stays readable. */
static int g_saved_stderr = -1;
static void quiet_begin(void) {
    if (getenv("TDB_TEST_VERBOSE")) return;
    fflush(stderr);
    g_saved_stderr = dup(2);
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
}
static void quiet_end(void) {
    if (g_saved_stderr < 0) return;
    fflush(stderr);
    dup2(g_saved_stderr, 2);
    close(g_saved_stderr);
    g_saved_stderr = -1;
}

/* Opens and reads every row; returns 0, or the first error code. */
static int read_all(const char *path, uint64_t *rows_out) {
    pq_reader *r;
    tdb_error err;
    quiet_begin();
    int rc = pq_reader_open(path, &r, &err);
    if (rc < 0) {
        quiet_end();
        return rc;
    }
    pq_row row;
    uint64_t n = 0;
    while ((rc = pq_reader_next(r, &row, &err)) == 1) n++;
    pq_reader_close(r);
    quiet_end();
    if (rows_out) *rows_out = n;
    return rc;
}

static void write_rows(const char *path, const trow *rows, size_t n, uint32_t dim, const pq_writer_options *opts) {
    pq_schema schema = {.dimension = dim, .collection = "things", .metric = "l2",
                        .config_json = "{\"name\":\"things\"}", .attr_count = ALL_ATTRS, .attrs = g_all_attrs};
    pq_writer *w;
    tdb_error err;
    pq_writer_options o;
    if (opts) {
        o = *opts;
    } else {
        pq_writer_options_default(&o);
    }
    /* fsync is slow on shared test disks; durability has its own test */
    o.fsync = false;
    assert_int_equal(pq_writer_open(path, &schema, &o, &w, &err), 0);
    for (size_t i = 0; i < n; i++) {
        pq_row row = {.id = {rows[i].id, rows[i].id_len}, .vector = rows[i].vec, .vector_len = dim,
                      .values = rows[i].vals, .attributes = {rows[i].attrs_json, rows[i].attrs_len}};
        int rc = pq_writer_add_row(w, &row, &err);
        if (rc) fprintf(stderr, "add_row: %s\n", err.message);
        assert_int_equal(rc, 0);
    }
    assert_int_equal(pq_writer_rows(w), n);
    uint64_t size = 0;
    assert_int_equal(pq_writer_close(w, &size, &err), 0);
    assert_int_equal((int64_t)size, file_size(path));
}

static void check_rows(const char *path, const trow *rows, size_t n, uint32_t dim) {
    pq_reader *r;
    tdb_error err;
    int rc = pq_reader_open(path, &r, &err);
    if (rc) fprintf(stderr, "open: %s\n", err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(pq_reader_row_count(r), n);
    const pq_schema *s = pq_reader_schema(r);
    assert_int_equal(s->dimension, dim);
    assert_int_equal(pq_reader_dimension(r), dim);
    assert_string_equal(s->collection, "things");
    assert_string_equal(s->metric, "l2");
    assert_string_equal(s->config_json, "{\"name\":\"things\"}");
    assert_string_equal(pq_reader_metadata(r, "tierdb.version", NULL), TDB_VERSION_STRING);
    assert_int_equal(s->attr_count, ALL_ATTRS);
    for (size_t a = 0; a < ALL_ATTRS; a++) {
        assert_string_equal(s->attrs[a].name, g_all_attrs[a].name);
        assert_int_equal(s->attrs[a].type, g_all_attrs[a].type);
    }
    pq_row row;
    for (size_t i = 0; i < n; i++) {
        rc = pq_reader_next(r, &row, &err);
        if (rc != 1) fprintf(stderr, "row %zu: %s\n", i, err.message);
        assert_int_equal(rc, 1);
        assert_bytes_equal(row.id, (pq_bytes){rows[i].id, rows[i].id_len});
        assert_int_equal(row.id.data[row.id.len], '\0');
        assert_int_equal(row.vector_len, dim);
        if (dim) assert_memory_equal(row.vector, rows[i].vec, dim * sizeof(float));
        assert_bytes_equal(row.attributes, (pq_bytes){rows[i].attrs_json, rows[i].attrs_len});
        for (size_t a = 0; a < ALL_ATTRS; a++)
            assert_value_equal(g_all_attrs[a].type, &rows[i].vals[a], &row.values[a]);
    }
    assert_int_equal(pq_reader_next(r, &row, &err), 0);
    assert_int_equal(pq_reader_next(r, &row, &err), 0); /* stays at the end */
    pq_reader_close(r);
}

static void roundtrip(const char *name, size_t n, uint32_t dim, const pq_writer_options *opts) {
    char path[1200];
    tmp_path(path, sizeof path, name);
    trow *rows = calloc(n + 1, sizeof *rows);
    assert_non_null(rows);
    make_rows(rows, n, dim);
    write_rows(path, rows, n, dim, opts);
    check_rows(path, rows, n, dim);
    free_rows(rows, n);
    free(rows);
}

/* ---- round trips ------------------------------------------------------- */

static void pq_roundtrip_zero_rows(void **state) {
    (void)state;
    roundtrip("zero.parquet", 0, 8, NULL);
    char path[1200];
    tmp_path(path, sizeof path, "zero.parquet");
    pq_reader *r;
    assert_int_equal(pq_reader_open(path, &r, NULL), 0);
    assert_int_equal(pq_reader_row_group_count(r), 0);
    assert_int_equal(pq_reader_row_count(r), 0);
    pq_reader_close(r);
}

static void pq_roundtrip_one_row(void **state) {
    (void)state;
    roundtrip("one.parquet", 1, 8, NULL);
}

static void pq_roundtrip_every_attribute_type_with_nulls(void **state) {
    (void)state;
    pq_writer_options o;
    pq_writer_options_default(&o);
    o.row_group_max_rows = 97; /* several row groups, odd sizes */
    roundtrip("types.parquet", 1000, 8, &o);
}

static void pq_roundtrip_small_pages_split_at_row_boundaries(void **state) {
    (void)state;
    pq_writer_options o;
    pq_writer_options_default(&o);
    o.page_max_bytes = 64; /* a page per row or two, lists included */
    o.row_group_max_rows = 400;
    roundtrip("pages.parquet", 1000, 8, &o);
}

static void pq_roundtrip_dimension_zero(void **state) {
    (void)state;
    roundtrip("dim0.parquet", 300, 0, NULL);
}

static void pq_roundtrip_each_codec(void **state) {
    (void)state;
    static const pq_codec codecs[] = {PQ_CODEC_ZSTD, PQ_CODEC_SNAPPY, PQ_CODEC_NONE};
    static const char *const names[] = {"zstd.parquet", "snappy.parquet", "none.parquet"};
    int64_t sizes[3];
    for (int c = 0; c < 3; c++) {
        pq_writer_options o;
        pq_writer_options_default(&o);
        o.codec = codecs[c];
        o.row_group_max_rows = 300;
        roundtrip(names[c], 1000, 8, &o);
        char path[1200];
        tmp_path(path, sizeof path, names[c]);
        sizes[c] = file_size(path);
    }
    /* compression happened (the data is repetitive enough) */
    assert_true(sizes[0] < sizes[2]);
    assert_true(sizes[1] < sizes[2]);
}

/* DATA_PAGE_V2 pages (levels outside the compressed part, RLE booleans),
 * with each codec and small pages. */
static void pq_roundtrip_data_page_v2(void **state) {
    (void)state;
    static const pq_codec codecs[] = {PQ_CODEC_ZSTD, PQ_CODEC_SNAPPY, PQ_CODEC_NONE};
    for (int c = 0; c < 3; c++) {
        pq_writer_options o;
        pq_writer_options_default(&o);
        o.codec = codecs[c];
        o.data_page_v2 = true;
        o.row_group_max_rows = 300;
        o.page_max_bytes = c == 1 ? 200 : o.page_max_bytes;
        roundtrip("v2.parquet", 1000, 8, &o);
    }
}

/* 100k rows x 128 floats over 4 row groups: bit-identical vectors, and the
 * writer's memory is one row group (checked by the group count). */
static void pq_roundtrip_100k_rows_128d_several_row_groups(void **state) {
    (void)state;
    const uint64_t n = 100000;
    const uint32_t dim = 128;
    char path[1200];
    tmp_path(path, sizeof path, "big.parquet");
    pq_schema schema = {.dimension = dim, .metric = "cosine"};
    pq_writer_options o;
    pq_writer_options_default(&o);
    o.row_group_max_rows = 30000;
    o.fsync = false;
    pq_writer *w;
    tdb_error err;
    assert_int_equal(pq_writer_open(path, &schema, &o, &w, &err), 0);
    float *vec = malloc(dim * sizeof *vec);
    char id[32], attrs[64];
    for (uint64_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < dim; j++) vec[j] = vec_value(i, j);
        int idl = snprintf(id, sizeof id, "id-%07llu", (unsigned long long)i);
        int al = snprintf(attrs, sizeof attrs, "{\"i\":%llu}", (unsigned long long)i);
        pq_row row = {.id = {id, (size_t)idl}, .vector = vec, .vector_len = dim, .attributes = {attrs, (size_t)al}};
        assert_int_equal(pq_writer_add_row(w, &row, &err), 0);
    }
    assert_int_equal(pq_writer_close(w, NULL, &err), 0);

    pq_reader *r;
    assert_int_equal(pq_reader_open(path, &r, &err), 0);
    assert_int_equal(pq_reader_row_count(r), n);
    assert_int_equal(pq_reader_row_group_count(r), 4);
    assert_null(pq_reader_schema(r)->collection);
    pq_row row;
    for (uint64_t i = 0; i < n; i++) {
        int rc = pq_reader_next(r, &row, &err);
        if (rc != 1) fprintf(stderr, "row %llu: %s\n", (unsigned long long)i, err.message);
        assert_int_equal(rc, 1);
        int idl = snprintf(id, sizeof id, "id-%07llu", (unsigned long long)i);
        int al = snprintf(attrs, sizeof attrs, "{\"i\":%llu}", (unsigned long long)i);
        assert_bytes_equal(row.id, (pq_bytes){id, (size_t)idl});
        assert_bytes_equal(row.attributes, (pq_bytes){attrs, (size_t)al});
        for (uint32_t j = 0; j < dim; j++) vec[j] = vec_value(i, j);
        assert_int_equal(row.vector_len, dim);
        assert_memory_equal(row.vector, vec, dim * sizeof *vec);
    }
    assert_int_equal(pq_reader_next(r, &row, &err), 0);
    pq_reader_close(r);
    free(vec);
    unlink(path);
}

static void pq_row_group_byte_limit_bounds_groups(void **state) {
    (void)state;
    char path[1200];
    tmp_path(path, sizeof path, "bytes.parquet");
    pq_schema schema = {.dimension = 128};
    pq_writer_options o;
    pq_writer_options_default(&o);
    o.row_group_max_bytes = 100000; /* ~190 rows of 128 floats */
    o.fsync = false;
    pq_writer *w;
    tdb_error err;
    assert_int_equal(pq_writer_open(path, &schema, &o, &w, &err), 0);
    float vec[128];
    for (int i = 0; i < 2000; i++) {
        for (int j = 0; j < 128; j++) vec[j] = vec_value((uint64_t)i, (uint32_t)j);
        char id[16];
        int idl = snprintf(id, sizeof id, "%d", i);
        pq_row row = {.id = {id, (size_t)idl}, .vector = vec, .vector_len = 128};
        assert_int_equal(pq_writer_add_row(w, &row, &err), 0);
    }
    assert_int_equal(pq_writer_close(w, NULL, &err), 0);
    pq_reader *r;
    assert_int_equal(pq_reader_open(path, &r, &err), 0);
    /* a row buffers ~780 bytes (floats, two level bytes per float, id) */
    assert_true(pq_reader_row_group_count(r) >= 12);
    assert_true(pq_reader_row_group_count(r) <= 20);
    pq_row row;
    int n = 0;
    while (pq_reader_next(r, &row, &err) == 1) {
        assert_string_equal(row.attributes.data, "{}"); /* empty attributes are written as {} */
        n++;
    }
    assert_int_equal(n, 2000);
    pq_reader_close(r);
}

/* Repetitive strings get a dictionary page: the file is much smaller than
 * with dictionaries off (no compression, so only encoding differs). */
static void pq_dictionary_shrinks_repetitive_string_chunks(void **state) {
    (void)state;
    int64_t sizes[2];
    for (int dict = 0; dict < 2; dict++) {
        char path[1200];
        tmp_path(path, sizeof path, dict ? "dict1.parquet" : "dict0.parquet");
        static const pq_attr_def attrs[] = {{"color", PQ_ATTR_STRING}, {"tags", PQ_ATTR_STRING_ARRAY}};
        pq_schema schema = {.dimension = 0, .attr_count = 2, .attrs = attrs};
        pq_writer_options o;
        pq_writer_options_default(&o);
        o.codec = PQ_CODEC_NONE;
        o.dictionary = dict;
        o.fsync = false;
        pq_writer *w;
        tdb_error err;
        assert_int_equal(pq_writer_open(path, &schema, &o, &w, &err), 0);
        static const char *const colors[] = {"crimson red", "forest green", "ocean blue", NULL};
        for (int i = 0; i < 5000; i++) {
            char id[16];
            int idl = snprintf(id, sizeof id, "%d", i);
            pq_bytes tags[2] = {{"sale-of-the-century", 19}, {colors[i % 3], strlen(colors[i % 3])}};
            pq_value vals[2] = {
                {.is_null = colors[i % 4] == NULL, .str = {colors[i % 4], colors[i % 4] ? strlen(colors[i % 4]) : 0}},
                {.count = 2, .strs = tags}};
            pq_row row = {.id = {id, (size_t)idl}, .values = vals};
            assert_int_equal(pq_writer_add_row(w, &row, &err), 0);
        }
        assert_int_equal(pq_writer_close(w, NULL, &err), 0);
        sizes[dict] = file_size(path);
        pq_reader *r;
        assert_int_equal(pq_reader_open(path, &r, &err), 0);
        pq_row row;
        for (int i = 0; i < 5000; i++) {
            assert_int_equal(pq_reader_next(r, &row, &err), 1);
            if (colors[i % 4] == NULL) {
                assert_true(row.values[0].is_null);
            } else {
                assert_false(row.values[0].is_null);
                assert_string_equal(row.values[0].str.data, colors[i % 4]);
            }
            assert_int_equal(row.values[1].count, 2);
            assert_string_equal(row.values[1].strs[1].data, colors[i % 3]);
        }
        pq_reader_close(r);
    }
    assert_true(sizes[1] * 2 < sizes[0]);
}

/* pq_writer_add_doc: declared columns come from the attributes JSON;
 * wrong types and absent values become null; the text is kept verbatim. */
static void pq_add_doc_converts_declared_attributes(void **state) {
    (void)state;
    char path[1200];
    tmp_path(path, sizeof path, "doc.parquet");
    static const pq_attr_def attrs[] = {
        {"title", PQ_ATTR_STRING}, {"year", PQ_ATTR_INT}, {"price", PQ_ATTR_FLOAT}, {"ok", PQ_ATTR_BOOL},
        {"tags", PQ_ATTR_STRING_ARRAY}, {"nums", PQ_ATTR_INT_ARRAY}, {"id", PQ_ATTR_STRING}, {"year", PQ_ATTR_FLOAT},
    };
    pq_schema schema = {.dimension = 2, .attr_count = 8, .attrs = attrs};
    pq_writer *w;
    tdb_error err;
    assert_int_equal(pq_writer_open(path, &schema, NULL, &w, &err), 0);
    static const char *const docs[] = {
        "{\"title\":\"T\\u0000x\",\"year\":9007199254740993,\"price\":2,\"ok\":true,\"tags\":[\"a\","
        "\"\\ud83d\\ude00\"],"
        "\"nums\":[-9007199254740992,1],\"id\":\"shadow\"}",
        "{\"title\":5,\"year\":1.5,\"price\":\"x\",\"ok\":null,\"tags\":[\"a\",1],\"nums\":[1,2.5]}",
        "{}",
        "",
        "{\"year\":-9223372036854775808,\"price\":-0.0,\"ok\":false,\"tags\":[],\"nums\":[]}",
    };
    float vec[2] = {1.0f, -2.0f};
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "d%d", i);
        assert_int_equal(
            pq_writer_add_doc(w, (pq_bytes){id, 2}, vec, 2, (pq_bytes){docs[i], strlen(docs[i])}, NULL, &err), 0);
    }
    /* a pre-parsed document */
    json_doc *doc;
    json_error jerr;
    const char *text = "{\"ok\":true}";
    assert_int_equal(json_parse(text, strlen(text), &doc, &jerr), 0);
    assert_int_equal(
        pq_writer_add_doc(w, (pq_bytes){"d5", 2}, vec, 2, (pq_bytes){text, strlen(text)}, json_root(doc), &err), 0);
    json_doc_free(doc);
    /* not an object / not JSON: refused, writer still usable */
    assert_int_equal(pq_writer_add_doc(w, (pq_bytes){"bad", 3}, vec, 2, (pq_bytes){"[1]", 3}, NULL, &err),
                     TDB_EINVAL);
    assert_int_equal(pq_writer_add_doc(w, (pq_bytes){"bad", 3}, vec, 2, (pq_bytes){"{", 1}, NULL, &err), TDB_EINVAL);
    assert_int_equal(pq_writer_close(w, NULL, &err), 0);

    pq_reader *r;
    assert_int_equal(pq_reader_open(path, &r, &err), 0);
    const pq_schema *s = pq_reader_schema(r);
    assert_int_equal(s->attr_count, 6); /* "id" and the second "year" have no column */
    pq_row row;
    assert_int_equal(pq_reader_next(r, &row, &err), 1);
    assert_bytes_equal(row.attributes, (pq_bytes){docs[0], strlen(docs[0])});
    assert_bytes_equal(row.values[0].str, (pq_bytes){"T\0x", 3});
    assert_true(row.values[1].i64 == 9007199254740993LL);
    assert_true(row.values[2].f64 == 2.0);
    assert_true(row.values[3].boolean);
    assert_int_equal(row.values[4].count, 2);
    assert_string_equal(row.values[4].strs[1].data, "\xf0\x9f\x98\x80");
    assert_true(row.values[5].ints[0] == -9007199254740992LL);
    assert_int_equal(pq_reader_next(r, &row, &err), 1);
    for (int a = 0; a < 6; a++) assert_true(row.values[a].is_null);
    assert_int_equal(pq_reader_next(r, &row, &err), 1);
    for (int a = 0; a < 6; a++) assert_true(row.values[a].is_null);
    assert_int_equal(pq_reader_next(r, &row, &err), 1);
    assert_bytes_equal(row.attributes, (pq_bytes){"{}", 2});
    assert_int_equal(pq_reader_next(r, &row, &err), 1);
    assert_true(row.values[1].i64 == INT64_MIN);
    assert_true(signbit(row.values[2].f64));
    assert_false(row.values[3].is_null);
    assert_false(row.values[3].boolean);
    assert_false(row.values[4].is_null);
    assert_int_equal(row.values[4].count, 0);
    assert_false(row.values[5].is_null);
    assert_int_equal(row.values[5].count, 0);
    assert_int_equal(pq_reader_next(r, &row, &err), 1);
    assert_true(row.values[3].boolean);
    assert_int_equal(pq_reader_next(r, &row, &err), 0);
    pq_reader_close(r);
}

static void pq_writer_refuses_invalid_rows_and_stays_usable(void **state) {
    (void)state;
    char path[1200];
    tmp_path(path, sizeof path, "invalid.parquet");
    static const pq_attr_def attrs[] = {{"t", PQ_ATTR_STRING}};
    pq_schema schema = {.dimension = 2, .attr_count = 1, .attrs = attrs};
    pq_writer *w;
    tdb_error err;
    assert_int_equal(pq_writer_open(path, &schema, NULL, &w, &err), 0);
    float vec[3] = {1, 2, 3};
    pq_value v = {.str = {"\xff", 1}};
    pq_row bad[] = {
        {.id = {"", 0}, .vector = vec, .vector_len = 2},
        {.id = {"\xc3", 1}, .vector = vec, .vector_len = 2},
        {.id = {"a", 1}, .vector = vec, .vector_len = 3},
        {.id = {"a", 1}, .vector = NULL, .vector_len = 2},
        {.id = {"a", 1}, .vector = vec, .vector_len = 2, .attributes = {"{\"\xed\xa0\x80\":1}", 8}},
        {.id = {"a", 1}, .vector = vec, .vector_len = 2, .values = &v},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pq_writer_add_row(w, &bad[i], &err), TDB_EINVAL);
        assert_int_equal(err.code, TDB_EINVAL);
    }
    pq_row good = {.id = {"a", 1}, .vector = vec, .vector_len = 2};
    assert_int_equal(pq_writer_add_row(w, &good, &err), 0);
    assert_false(fio_exists(path)); /* nothing at path before close */
    assert_int_equal(pq_writer_close(w, NULL, &err), 0);
    uint64_t rows;
    assert_int_equal(read_all(path, &rows), 0);
    assert_int_equal(rows, 1);

    /* bad options and schemas */
    pq_writer_options o;
    pq_writer_options_default(&o);
    o.row_group_max_rows = 0;
    assert_int_equal(pq_writer_open(path, &schema, &o, &w, &err), TDB_EINVAL);
    pq_attr_def noname = {"", PQ_ATTR_INT};
    pq_schema s2 = {.attr_count = 1, .attrs = &noname};
    assert_int_equal(pq_writer_open(path, &s2, NULL, &w, &err), TDB_EINVAL);
    pq_schema s3 = {.dimension = PQ_MAX_DIMENSION + 1};
    assert_int_equal(pq_writer_open(path, &s3, NULL, &w, &err), TDB_EINVAL);
}

/* Every counted I/O call of a write fails in turn: the writer reports the
 * error, leaves no temporary file, and path holds the old file or a
 * complete new one, never a partial one. */
static void pq_writer_close_is_durable_under_io_faults(void **state) {
    (void)state;
    char path[1200], tmp[1300];
    tmp_path(path, sizeof path, "faults.parquet");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    trow *rows = calloc(50, sizeof *rows);
    make_rows(rows, 50, 8);
    pq_schema schema = {.dimension = 8, .collection = "things", .metric = "l2",
                        .config_json = "{\"name\":\"things\"}", .attr_count = ALL_ATTRS, .attrs = g_all_attrs};
    bool done = false;
    for (uint64_t nth = 1; !done && nth < 100; nth++) {
        unlink(path);
        fio_fault_set(nth, EIO, false);
        pq_writer *w;
        tdb_error err;
        int rc = pq_writer_open(path, &schema, NULL, &w, &err);
        for (size_t i = 0; rc == 0 && i < 50; i++) {
            pq_row row = {.id = {rows[i].id, rows[i].id_len}, .vector = rows[i].vec, .vector_len = 8,
                          .values = rows[i].vals, .attributes = {rows[i].attrs_json, rows[i].attrs_len}};
            rc = pq_writer_add_row(w, &row, &err);
            if (rc) pq_writer_abort(w);
        }
        if (rc == 0) rc = pq_writer_close(w, NULL, &err);
        fio_fault_clear();
        assert_false(fio_exists(tmp));
        if (rc == 0) {
            done = true;
        } else {
            assert_int_equal(rc, TDB_EIO);
            if (fio_exists(path)) check_rows(path, rows, 50, 8); /* failed after the rename: complete */
        }
    }
    assert_true(done);
    check_rows(path, rows, 50, 8);
    free_rows(rows, 50);
    free(rows);
}

/* ---- encodings -------------------------------------------------------- */

static void pq_rle_hybrid_roundtrips_random_runs(void **state) {
    (void)state;
    g_rng = 7;
    uint32_t *vals = malloc(5000 * sizeof *vals), *back = malloc(5000 * sizeof *back);
    for (int bw = 0; bw <= 32; bw++) {
        for (int trial = 0; trial < 4; trial++) {
            size_t n = (size_t)(rnd() % 5000);
            uint64_t mask = bw == 32 ? 0xFFFFFFFFull : ((1ull << bw) - 1);
            for (size_t i = 0; i < n;) { /* runs of random length */
                uint32_t v = (uint32_t)(rnd() & mask);
                size_t run = trial == 0 ? 1 : (size_t)(rnd() % 20) + 1;
                for (size_t k = 0; k < run && i < n; k++) vals[i++] = trial == 3 ? (uint32_t)(rnd() & mask) : v;
            }
            buf b = BUF_INIT;
            pq_rle_encode(&b, vals, 4, n, bw);
            size_t used = 0;
            assert_int_equal(pq_rle_decode((const uint8_t *)b.data, (const uint8_t *)b.data + b.len, bw,
                                           (uint32_t)mask, back, 4, n, &used), 0);
            assert_int_equal(used, b.len);
            if (n) assert_memory_equal(vals, back, n * sizeof *vals);
            /* every truncation fails cleanly (or still decodes all n) */
            for (size_t cut = 0; cut < b.len && cut < 64; cut++)
                (void)pq_rle_decode((const uint8_t *)b.data, (const uint8_t *)b.data + cut, bw, (uint32_t)mask,
                                    back, 4, n, NULL);
            buf_free(&b);
        }
    }
    /* a value above the maximum is an error */
    uint8_t run[] = {2 << 1, 3}; /* RLE run of 2 copies of 3 */
    uint8_t out8[4];
    assert_int_equal(pq_rle_decode(run, run + 2, 2, 2, out8, 1, 2, NULL), -1);
    assert_int_equal(pq_rle_decode(run, run + 2, 2, 3, out8, 1, 2, NULL), 0);
    free(vals);
    free(back);
}

/* A DELTA_BINARY_PACKED stream built by hand (block 128, 4 miniblocks of
 * 32) decodes to the values, including wrapping deltas. */
static void put_uvar(buf *b, uint64_t v) { pq_put_uvarint(b, v); }
static uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

/* Appends want[0..n) as DELTA_BINARY_PACKED (block 128, 4 miniblocks). */
static void delta_encode(buf *b, const int64_t *want, int n) {
    put_uvar(b, 128);
    put_uvar(b, 4);
    put_uvar(b, (uint64_t)n);
    put_uvar(b, zz(n ? want[0] : 0));
    for (int start = 1; start < n; start += 128) {
        uint64_t deltas[128] = {0};
        int cnt = n - start < 128 ? n - start : 128;
        uint64_t min = UINT64_MAX;
        int64_t min_signed = INT64_MAX;
        for (int k = 0; k < cnt; k++) {
            int64_t d = (int64_t)((uint64_t)want[start + k] - (uint64_t)want[start + k - 1]);
            if (d < min_signed) min_signed = d;
        }
        min = (uint64_t)min_signed;
        for (int k = 0; k < cnt; k++) deltas[k] = (uint64_t)want[start + k] - (uint64_t)want[start + k - 1] - min;
        put_uvar(b, zz(min_signed));
        uint8_t widths[4];
        for (int m = 0; m < 4; m++) {
            uint64_t mx = 0;
            for (int k = m * 32; k < m * 32 + 32; k++) mx |= deltas[k];
            widths[m] = (uint8_t)pq_bit_width(mx);
        }
        buf_append(b, widths, 4);
        for (int m = 0; m < 4 && m * 32 < cnt; m++) {
            int bw = widths[m];
            uint8_t packed[32 * 8] = {0};
            for (int k = 0; k < 32; k++)
                for (int bit = 0; bit < bw; bit++)
                    if ((deltas[m * 32 + k] >> bit) & 1)
                        packed[(k * bw + bit) / 8] |= (uint8_t)(1u << ((k * bw + bit) % 8));
            buf_append(b, packed, (size_t)(32 * bw / 8));
        }
    }
}

static void pq_delta_binary_packed_decodes(void **state) {
    (void)state;
    int64_t want[300];
    g_rng = 9;
    for (int i = 0; i < 300; i++) want[i] = i % 7 == 0 ? INT64_MIN + (int64_t)i : (int64_t)(rnd() % 1000) - 500;
    buf b = BUF_INIT;
    delta_encode(&b, want, 300);
    uint64_t got[300];
    size_t count;
    const uint8_t *p = (const uint8_t *)b.data;
    assert_int_equal(pq_delta_decode(&p, p + b.len, got, 300, &count), 0);
    assert_int_equal(count, 300);
    assert_ptr_equal(p, (const uint8_t *)b.data + b.len);
    for (int i = 0; i < 300; i++) assert_true((int64_t)got[i] == want[i]);
    /* capacity too small, truncations: errors, no overreads */
    p = (const uint8_t *)b.data;
    assert_int_equal(pq_delta_decode(&p, p + b.len, got, 299, &count), -1);
    for (size_t cut = 0; cut < b.len; cut++) {
        p = (const uint8_t *)b.data;
        assert_int_equal(pq_delta_decode(&p, p + cut, got, 300, &count), -1);
    }
    buf_free(&b);
}

static void pq_crc32_matches_known_value(void **state) {
    (void)state;
    assert_int_equal(pq_crc32("123456789", 9), 0xCBF43926u);
    assert_int_equal(pq_crc32("", 0), 0);
}

/* ---- hostile files ------------------------------------------------------- */

static bool is_clean_failure(int rc) { return rc == TDB_ECORRUPT || rc == TDB_EUNSUPPORTED; }

static void pq_truncated_files_are_corrupt(void **state) {
    (void)state;
    char path[1200], cut[1200];
    tmp_path(path, sizeof path, "trunc.parquet");
    tmp_path(cut, sizeof cut, "trunc-cut.parquet");
    trow *rows = calloc(30, sizeof *rows);
    make_rows(rows, 30, 4);
    write_rows(path, rows, 30, 4, NULL);
    size_t len;
    char *data = slurp(path, &len);
    spit(cut, data, len);
    /* shrinking one file in place: far fewer disk operations than
     * writing a new file per length */
    for (size_t n = len; n-- > 0;) {
        assert_int_equal(truncate(cut, (off_t)n), 0);
        int rc = read_all(cut, NULL);
        if (rc != TDB_ECORRUPT) fprintf(stderr, "truncated to %zu: rc %d\n", n, rc);
        assert_int_equal(rc, TDB_ECORRUPT);
    }
    free(data);
    free_rows(rows, 30);
    free(rows);
}

/* Flips every byte (three patterns) of a region of a small file. The
 * footer has no checksum in Parquet, so a flip there may go unnoticed when
 * it hits a metadata string; but nothing may crash, every failure is
 * TDB_ECORRUPT or TDB_EUNSUPPORTED, and a read that succeeds returns the
 * original ids, vectors and attributes. */
static void flip_and_check(const char *path, const char *scratch, const trow *rows, size_t nrows, uint32_t dim,
                           size_t from, size_t to, bool must_fail, int *failures) {
    size_t len;
    char *data = slurp(path, &len);
    spit(scratch, data, len);
    int fd = open(scratch, O_RDWR);
    assert_true(fd >= 0);
    static const uint8_t patterns[] = {0x01, 0x80, 0xFF};
    for (size_t i = from; i < to && i < len; i++) {
        for (size_t pi = 0; pi < sizeof patterns; pi++) {
            /* one byte rewritten in place, then restored */
            char flipped = (char)(data[i] ^ (char)patterns[pi]);
            assert_int_equal(pwrite(fd, &flipped, 1, (off_t)i), 1);
            pq_reader *r;
            tdb_error err;
            quiet_begin();
            int rc = pq_reader_open(scratch, &r, &err);
            bool same = true;
            if (rc == 0) {
                pq_row row;
                size_t n = 0;
                while ((rc = pq_reader_next(r, &row, &err)) == 1) {
                    if (n >= nrows || row.id.len != rows[n].id_len || memcmp(row.id.data, rows[n].id, row.id.len) ||
                        row.vector_len != dim || (dim && memcmp(row.vector, rows[n].vec, dim * 4)) ||
                        row.attributes.len != rows[n].attrs_len ||
                        memcmp(row.attributes.data, rows[n].attrs_json, row.attributes.len))
                        same = false;
                    n++;
                }
                if (n != nrows) same = false;
                pq_reader_close(r);
            }
            quiet_end();
            if (rc < 0) {
                if (!is_clean_failure(rc)) fprintf(stderr, "flip at %zu: rc %d (%s)\n", i, rc, err.message);
                assert_true(is_clean_failure(rc));
                (*failures)++;
            } else {
                /* Undetected: only bytes that change nothing we read (a
                 * metadata string, an unused field). Page bodies carry a
                 * CRC-32 and column paths are checked, so ids, vectors and
                 * attributes come back intact. */
                if (must_fail || !same)
                    fprintf(stderr, "flip at %zu (pattern %x) not detected\n", i, (unsigned)patterns[pi]);
                assert_false(must_fail);
                assert_true(same);
            }
            assert_int_equal(pwrite(fd, &data[i], 1, (off_t)i), 1);
        }
    }
    close(fd);
    free(data);
}

static void pq_flipped_bytes_fail_cleanly(void **state) {
    (void)state;
    char path[1200], scratch[1200];
    tmp_path(path, sizeof path, "flip.parquet");
    tmp_path(scratch, sizeof scratch, "flip-scratch.parquet");
    trow *rows = calloc(20, sizeof *rows);
    make_rows(rows, 20, 4);
    pq_writer_options o;
    pq_writer_options_default(&o);
    o.fsync = false;
    o.codec = PQ_CODEC_SNAPPY;
    write_rows(path, rows, 20, 4, &o);
    size_t len;
    char *data = slurp(path, &len);
    uint32_t footer_len = load_u32(data + len - 8);
    size_t footer_off = len - 8 - footer_len;
    free(data);
    int failures = 0;
    /* the whole footer and trailer */
    flip_and_check(path, scratch, rows, 20, 4, footer_off, len, false, &failures);
    assert_true(failures > (int)(len - footer_off)); /* most flips are caught */
    /* the first column chunk: page header + body of `id` */
    failures = 0;
    flip_and_check(path, scratch, rows, 20, 4, 4, footer_off < 400 ? footer_off : 400, false, &failures);
    assert_true(failures > 0);
    free_rows(rows, 20);
    free(rows);
}

/* Random multi-byte mutations of files without page checksums (so that
 * they reach the level and value decoders): v1 and v2 pages, with and
 * without compression. Every outcome is a success or a clean
 * TDB_ECORRUPT / TDB_EUNSUPPORTED; the sanitizer build catches any
 * out-of-bounds access. */
static void pq_random_mutations_fail_cleanly(void **state) {
    (void)state;
    char path[1200], scratch[1200];
    tmp_path(path, sizeof path, "mut.parquet");
    tmp_path(scratch, sizeof scratch, "mut-scratch.parquet");
    trow *rows = calloc(60, sizeof *rows);
    make_rows(rows, 60, 8);
    for (int variant = 0; variant < 4; variant++) {
        pq_writer_options o;
        pq_writer_options_default(&o);
        o.page_checksums = false;
        o.codec = variant < 2 ? PQ_CODEC_NONE : variant == 2 ? PQ_CODEC_ZSTD : PQ_CODEC_SNAPPY;
        o.data_page_v2 = variant & 1;
        o.row_group_max_rows = 25;
        o.page_max_bytes = 200;
        write_rows(path, rows, 60, 8, &o);
        size_t len;
        char *data = slurp(path, &len);
        spit(scratch, data, len);
        int fd = open(scratch, O_RDWR);
        assert_true(fd >= 0);
        g_rng = 1000 + (uint64_t)variant;
        for (int it = 0; it < 400; it++) {
            size_t pos[4];
            int k = 1 + (int)(rnd() % 4);
            for (int j = 0; j < k; j++) {
                pos[j] = (size_t)(rnd() % len);
                char b = data[pos[j]];
                switch (rnd() % 4) {
                case 0: b ^= (char)(1u << (rnd() % 8)); break;
                case 1: b = (char)rnd(); break;
                case 2: b = 0; break;
                default: b = (char)0xFF; break;
                }
                assert_int_equal(pwrite(fd, &b, 1, (off_t)pos[j]), 1);
            }
            int rc = read_all(scratch, NULL);
            if (rc < 0 && !is_clean_failure(rc)) fprintf(stderr, "variant %d iteration %d: rc %d\n", variant, it, rc);
            assert_true(rc == 0 || is_clean_failure(rc));
            for (int j = 0; j < k; j++) assert_int_equal(pwrite(fd, &data[pos[j]], 1, (off_t)pos[j]), 1);
        }
        close(fd);
        free(data);
    }
    free_rows(rows, 60);
    free(rows);
}

/* A page body with a flipped byte fails its CRC, whatever the byte. */
static void pq_page_body_flips_fail_crc(void **state) {
    (void)state;
    char path[1200], scratch[1200];
    tmp_path(path, sizeof path, "crc.parquet");
    tmp_path(scratch, sizeof scratch, "crc-scratch.parquet");
    pq_schema schema = {.dimension = 0};
    pq_writer_options o;
    pq_writer_options_default(&o);
    o.codec = PQ_CODEC_NONE;
    o.fsync = false;
    pq_writer *w;
    tdb_error err;
    assert_int_equal(pq_writer_open(path, &schema, &o, &w, &err), 0);
    pq_row row = {.id = {"0123456789abcdef0123456789abcdef", 32}};
    assert_int_equal(pq_writer_add_row(w, &row, &err), 0);
    assert_int_equal(pq_writer_close(w, NULL, &err), 0);
    size_t len;
    char *data = slurp(path, &len);
    char *body = memmem(data, len, "0123456789abcdef", 16);
    assert_non_null(body);
    for (size_t k = 0; k < 32; k++) {
        body[k] ^= 0x20;
        spit(scratch, data, len);
        body[k] ^= 0x20;
        /* (32 small files: cheap enough) */
        int rc = read_all(scratch, NULL);
        assert_int_equal(rc, TDB_ECORRUPT);
    }
    free(data);
}

/* Hand-made files: a minimal valid one (two required string columns, one
 * row), then the same with one absurd field each. */
typedef struct craft {
    int64_t footer_rows, group_rows, meta_num_values, data_offset_shift;
    int32_t page_values, page_uncompressed, page_compressed_extra;
    int32_t root_children;
    bool huge_schema_list;
    bool drop_attributes;
    bool deep_nesting;
    bool bad_dictionary_index;
    uint32_t footer_len_override;
    const char *format;
    size_t nrows;           /* PLAIN values written per page */
    const buf *id_body;     /* replaces the id data page's body */
    int id_encoding;
} craft;

static void craft_defaults(craft *c) {
    memset(c, 0, sizeof *c);
    c->footer_rows = c->group_rows = c->meta_num_values = 1;
    c->page_values = 1;
    c->page_uncompressed = -1;
    c->root_children = 2;
    c->nrows = 1;
}

static void craft_rows(craft *c, size_t n) {
    c->nrows = n;
    c->footer_rows = c->group_rows = c->meta_num_values = (int64_t)n;
    c->page_values = (int32_t)n;
}

static void craft_page(buf *f, const craft *c, const char *value, bool use_dict, uint64_t *dict_off,
                       uint64_t *data_off) {
    size_t vlen = strlen(value);
    buf body = BUF_INIT, hdr = BUF_INIT;
    pq_tw t;
    if (use_dict) { /* dictionary page: one entry; data page: index 5 */
        *dict_off = f->len;
        buf_put_u32(&body, (uint32_t)vlen);
        buf_append(&body, value, vlen);
        pq_tw_init(&t, &hdr);
        pq_tw_i32(&t, 1, PQP_DICTIONARY_PAGE);
        pq_tw_i32(&t, 2, (int32_t)body.len);
        pq_tw_i32(&t, 3, (int32_t)body.len);
        pq_tw_struct_begin(&t, 7);
        pq_tw_i32(&t, 1, 1);
        pq_tw_i32(&t, 2, PQE_PLAIN);
        pq_tw_struct_end(&t);
        pq_tw_struct_end(&t);
        buf_append(f, hdr.data, hdr.len);
        buf_append(f, body.data, body.len);
        buf_reset(&body);
        buf_reset(&hdr);
        uint8_t idx[] = {3, 2 << 1, 5}; /* bit width 3, RLE run of 2 x index 5 */
        buf_append(&body, idx, sizeof idx);
    } else if (c->id_body && value[0] == 'a') {
        if (dict_off) *dict_off = 0;
        buf_append(&body, c->id_body->data, c->id_body->len);
    } else {
        if (dict_off) *dict_off = 0;
        for (size_t k = 0; k < c->nrows; k++) {
            buf_put_u32(&body, (uint32_t)vlen);
            buf_append(&body, value, vlen);
        }
    }
    *data_off = f->len;
    pq_tw_init(&t, &hdr);
    pq_tw_i32(&t, 1, PQP_DATA_PAGE);
    pq_tw_i32(&t, 2, c->page_uncompressed >= 0 ? c->page_uncompressed : (int32_t)body.len);
    pq_tw_i32(&t, 3, (int32_t)body.len + c->page_compressed_extra);
    pq_tw_struct_begin(&t, 5);
    pq_tw_i32(&t, 1, c->page_values);
    pq_tw_i32(&t, 2, use_dict ? PQE_RLE_DICTIONARY : c->id_body && value[0] == 'a' ? c->id_encoding : PQE_PLAIN);
    pq_tw_i32(&t, 3, PQE_RLE);
    pq_tw_i32(&t, 4, PQE_RLE);
    pq_tw_struct_end(&t);
    pq_tw_struct_end(&t);
    buf_append(f, hdr.data, hdr.len);
    buf_append(f, body.data, body.len);
    buf_free(&body);
    buf_free(&hdr);
}

static void craft_column_chunk(pq_tw *t, const craft *c, const char *name, uint64_t start, uint64_t end,
                               uint64_t dict_off, uint64_t data_off) {
    pq_tw_elem_struct_begin(t);
    pq_tw_i64(t, 2, (int64_t)start);
    pq_tw_struct_begin(t, 3);
    pq_tw_i32(t, 1, PQT_BYTE_ARRAY);
    pq_tw_list_begin(t, 2, PQ_TT_I32, 1);
    pq_tw_elem_i32(t, PQE_PLAIN);
    pq_tw_list_begin(t, 3, PQ_TT_BINARY, 1);
    pq_tw_elem_binary(t, name, strlen(name));
    pq_tw_i32(t, 4, PQZ_UNCOMPRESSED);
    pq_tw_i64(t, 5, c->meta_num_values);
    pq_tw_i64(t, 6, (int64_t)(end - start));
    pq_tw_i64(t, 7, (int64_t)(end - start));
    pq_tw_i64(t, 9, (int64_t)data_off + c->data_offset_shift);
    if (dict_off) pq_tw_i64(t, 11, (int64_t)dict_off);
    pq_tw_struct_end(t);
    pq_tw_struct_end(t);
}

static int craft_read(const craft *c, const char *name) {
    char path[1200];
    tmp_path(path, sizeof path, name);
    buf f = BUF_INIT;
    buf_append(&f, PQ_MAGIC, 4);
    uint64_t id_start = f.len, dict_off = 0, id_data = 0, at_data = 0;
    craft_page(&f, c, "a", c->bad_dictionary_index, &dict_off, &id_data);
    uint64_t id_end = f.len;
    uint64_t at_start = f.len;
    craft defaults;
    craft_defaults(&defaults);
    craft_rows(&defaults, c->nrows);
    craft_page(&f, &defaults, "{}", false, NULL, &at_data);
    uint64_t at_end = f.len;

    buf footer = BUF_INIT;
    pq_tw t;
    pq_tw_init(&t, &footer);
    pq_tw_i32(&t, 1, 1);
    size_t nschema = c->drop_attributes ? 2 : 3;
    if (c->huge_schema_list) {
        pq_tw_list_begin(&t, 2, PQ_TT_STRUCT, (size_t)1 << 40);
    } else {
        pq_tw_list_begin(&t, 2, PQ_TT_STRUCT, nschema);
    }
    pq_tw_elem_struct_begin(&t);
    pq_tw_string(&t, 4, "schema");
    pq_tw_i32(&t, 5, c->drop_attributes ? 1 : c->root_children);
    pq_tw_struct_end(&t);
    for (size_t k = 1; k < nschema; k++) {
        pq_tw_elem_struct_begin(&t);
        pq_tw_i32(&t, 1, PQT_BYTE_ARRAY);
        pq_tw_i32(&t, 3, PQR_REQUIRED);
        pq_tw_string(&t, 4, k == 1 ? "id" : "attributes");
        pq_tw_struct_end(&t);
    }
    pq_tw_i64(&t, 3, c->footer_rows);
    pq_tw_list_begin(&t, 4, PQ_TT_STRUCT, 1);
    pq_tw_elem_struct_begin(&t);
    pq_tw_list_begin(&t, 1, PQ_TT_STRUCT, nschema - 1);
    /* the dictionary case: the chunk starts at the dictionary page */
    craft_column_chunk(&t, c, "id", id_start, id_end, dict_off, id_data);
    if (!c->drop_attributes) {
        craft defaults2;
        craft_defaults(&defaults2);
        craft_rows(&defaults2, c->nrows);
        craft_column_chunk(&t, &defaults2, "attributes", at_start, at_end, 0, at_data);
    }
    pq_tw_i64(&t, 2, 100);
    pq_tw_i64(&t, 3, c->group_rows);
    pq_tw_struct_end(&t);
    if (c->format) {
        pq_tw_list_begin(&t, 5, PQ_TT_STRUCT, 1);
        pq_tw_elem_struct_begin(&t);
        pq_tw_string(&t, 1, "tierdb.format");
        pq_tw_string(&t, 2, c->format);
        pq_tw_struct_end(&t);
    }
    if (c->deep_nesting) { /* an unknown field: 100000 nested structs */
        buf_put_u8(&footer, (uint8_t)((3 << 4) | PQ_TT_STRUCT)); /* field id: the previous + 3 */
        for (int k = 0; k < 100000; k++) buf_put_u8(&footer, (uint8_t)((1 << 4) | PQ_TT_STRUCT));
        for (int k = 0; k < 100001; k++) buf_put_u8(&footer, 0);
    }
    pq_tw_struct_end(&t);
    buf_append(&f, footer.data, footer.len);
    buf_put_u32(&f, c->footer_len_override ? c->footer_len_override : (uint32_t)footer.len);
    buf_append(&f, PQ_MAGIC, 4);
    assert_false(buf_failed(&f));
    spit(path, f.data, f.len);
    buf_free(&f);
    buf_free(&footer);
    uint64_t rows = 0;
    int rc = read_all(path, &rows);
    if (rc == 0) assert_int_equal(rows, c->nrows);
    return rc;
}

static void pq_absurd_counts_are_corrupt(void **state) {
    (void)state;
    craft c;
    craft_defaults(&c);
    assert_int_equal(craft_read(&c, "craft-ok.parquet"), 0); /* the helper makes valid files */

    struct {
        const char *what;
        void (*tweak)(craft *);
    } cases[] = {
        {"footer rows", NULL}, {"group rows", NULL}, {"page values huge", NULL}, {"page values 3", NULL},
        {"uncompressed huge", NULL}, {"compressed past chunk", NULL}, {"root children", NULL},
        {"schema list 2^40", NULL}, {"negative num_values", NULL}, {"data offset outside", NULL},
        {"footer length", NULL}, {"no attributes column", NULL}, {"deep nesting", NULL},
        {"dictionary index out of range", NULL}, {"format garbage", NULL},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        craft_defaults(&c);
        switch (k) {
        case 0: c.footer_rows = (int64_t)1 << 40; break;
        case 1: c.footer_rows = c.group_rows = (int64_t)1 << 40; break;
        case 2: c.page_values = INT32_MAX; c.meta_num_values = INT32_MAX; break;
        case 3: c.page_values = 3; c.meta_num_values = 3; break;
        case 4: c.page_uncompressed = INT32_MAX; break;
        case 5: c.page_compressed_extra = 1 << 30; break;
        case 6: c.root_children = 1000; break;
        case 7: c.huge_schema_list = true; break;
        case 8: c.meta_num_values = -5; break;
        case 9: c.data_offset_shift = (int64_t)1 << 40; break;
        case 10: c.footer_len_override = 0xFFFFFFFFu; break;
        case 11: c.drop_attributes = true; break;
        case 12: c.deep_nesting = true; break;
        case 13: c.bad_dictionary_index = true; c.page_values = 2; c.meta_num_values = 2; break;
        case 14: c.format = "one"; break;
        }
        int rc = craft_read(&c, "craft.parquet");
        if (rc != TDB_ECORRUPT) fprintf(stderr, "case '%s': rc %d\n", cases[k].what, rc);
        assert_int_equal(rc, TDB_ECORRUPT);
    }
    craft_defaults(&c);
    c.format = "2"; /* a newer snapshot layout */
    assert_int_equal(craft_read(&c, "craft.parquet"), TDB_EUNSUPPORTED);
    c.format = "1";
    assert_int_equal(craft_read(&c, "craft.parquet"), 0);
}

/* DELTA_BYTE_ARRAY (prefix lengths, then suffixes as
 * DELTA_LENGTH_BYTE_ARRAY): no writer we test against produces it, so a
 * page is built by hand; a prefix longer than the previous value is
 * corrupt. */
static void pq_delta_byte_array_page_decodes(void **state) {
    (void)state;
    static const char *const want[] = {"apple", "applesauce", "apply", "banana", "band"};
    const int64_t prefixes[] = {0, 5, 4, 0, 3}, suffix_lens[] = {5, 5, 1, 6, 1};
    buf body = BUF_INIT;
    delta_encode(&body, prefixes, 5);
    delta_encode(&body, suffix_lens, 5);
    buf_puts(&body, "applesauceybananad");
    craft c;
    craft_defaults(&c);
    craft_rows(&c, 5);
    c.id_body = &body;
    c.id_encoding = PQE_DELTA_BYTE_ARRAY;
    assert_int_equal(craft_read(&c, "dba.parquet"), 0);
    char path[1200];
    tmp_path(path, sizeof path, "dba.parquet");
    pq_reader *r;
    tdb_error err;
    assert_int_equal(pq_reader_open(path, &r, &err), 0);
    pq_row row;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pq_reader_next(r, &row, &err), 1);
        assert_bytes_equal(row.id, (pq_bytes){want[i], strlen(want[i])});
    }
    assert_int_equal(pq_reader_next(r, &row, &err), 0);
    pq_reader_close(r);

    /* the same strings as DELTA_LENGTH_BYTE_ARRAY */
    buf_reset(&body);
    const int64_t lens[] = {5, 10, 5, 6, 4};
    delta_encode(&body, lens, 5);
    buf_puts(&body, "appleapplesauceapplybananaband");
    c.id_encoding = PQE_DELTA_LENGTH_BYTE_ARRAY;
    assert_int_equal(craft_read(&c, "dlba.parquet"), 0);

    /* a prefix longer than the previous value */
    buf_reset(&body);
    const int64_t bad_prefixes[] = {0, 6, 4, 0, 3};
    delta_encode(&body, bad_prefixes, 5);
    delta_encode(&body, suffix_lens, 5);
    buf_puts(&body, "applesauceybananad");
    c.id_encoding = PQE_DELTA_BYTE_ARRAY;
    assert_int_equal(craft_read(&c, "dba-bad.parquet"), TDB_ECORRUPT);
    /* suffixes longer than the page */
    buf_reset(&body);
    delta_encode(&body, prefixes, 5);
    delta_encode(&body, suffix_lens, 5);
    buf_puts(&body, "applesauce");
    assert_int_equal(craft_read(&c, "dba-short.parquet"), TDB_ECORRUPT);
    buf_free(&body);
}

static void pq_reader_missing_file_is_not_found(void **state) {
    (void)state;
    char path[1200];
    tmp_path(path, sizeof path, "does-not-exist.parquet");
    pq_reader *r;
    tdb_error err;
    assert_int_equal(pq_reader_open(path, &r, &err), TDB_ENOTFOUND);
    assert_null(r);
    tmp_path(path, sizeof path, "no-such-dir/x.parquet");
    pq_schema schema = {.dimension = 1};
    pq_writer *w;
    assert_int_equal(pq_writer_open(path, &schema, NULL, &w, &err), TDB_EIO);
    assert_null(w);
    pq_reader_close(NULL);
    pq_writer_abort(NULL);
}

static void pq_attr_type_names_roundtrip(void **state) {
    (void)state;
    for (int t = PQ_ATTR_STRING; t <= PQ_ATTR_INT_ARRAY; t++) {
        pq_attr_type back;
        assert_int_equal(pq_attr_type_parse(pq_attr_type_name((pq_attr_type)t), &back), 0);
        assert_int_equal(back, t);
    }
    pq_attr_type x;
    assert_int_equal(pq_attr_type_parse("date", &x), -1);
}

static int setup(void **state) {
    (void)state;
    const char *base = getenv("TDB_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/parquet-%d", base && *base ? base : "/tmp", (int)getpid());
    assert_int_equal(fio_mkdir_p(g_dir), 0);
    log_set_level(LOG_ERROR);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fio_rmtree(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pq_roundtrip_zero_rows),
        cmocka_unit_test(pq_roundtrip_one_row),
        cmocka_unit_test(pq_roundtrip_every_attribute_type_with_nulls),
        cmocka_unit_test(pq_roundtrip_small_pages_split_at_row_boundaries),
        cmocka_unit_test(pq_roundtrip_dimension_zero),
        cmocka_unit_test(pq_roundtrip_each_codec),
        cmocka_unit_test(pq_roundtrip_data_page_v2),
        cmocka_unit_test(pq_roundtrip_100k_rows_128d_several_row_groups),
        cmocka_unit_test(pq_row_group_byte_limit_bounds_groups),
        cmocka_unit_test(pq_dictionary_shrinks_repetitive_string_chunks),
        cmocka_unit_test(pq_add_doc_converts_declared_attributes),
        cmocka_unit_test(pq_writer_refuses_invalid_rows_and_stays_usable),
        cmocka_unit_test(pq_writer_close_is_durable_under_io_faults),
        cmocka_unit_test(pq_rle_hybrid_roundtrips_random_runs),
        cmocka_unit_test(pq_delta_binary_packed_decodes),
        cmocka_unit_test(pq_crc32_matches_known_value),
        cmocka_unit_test(pq_truncated_files_are_corrupt),
        cmocka_unit_test(pq_flipped_bytes_fail_cleanly),
        cmocka_unit_test(pq_page_body_flips_fail_crc),
        cmocka_unit_test(pq_random_mutations_fail_cleanly),
        cmocka_unit_test(pq_absurd_counts_are_corrupt),
        cmocka_unit_test(pq_delta_byte_array_page_decodes),
        cmocka_unit_test(pq_reader_missing_file_is_not_found),
        cmocka_unit_test(pq_attr_type_names_roundtrip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
