/*
 * test_parquet_duckdb.c: DuckDB as the independent implementation of
 * Parquet. Both directions, through tests/snapshot/duckdb_check.mjs:
 *   - DuckDB reads the files our writer makes (every codec, dictionary
 *     pages, several row groups and pages, every attribute type with
 *     nulls and odd values): same row count, bit-identical vectors, the
 *     same ids, attributes JSON and typed columns, the expected DuckDB
 *     types (vector is FLOAT[]) and our key-value metadata;
 *   - our reader reads the files DuckDB writes for the same columns with
 *     its defaults and its options (SNAPPY/ZSTD/UNCOMPRESSED, PARQUET_VERSION
 *     V1 and V2, so dictionary pages, data pages v2, DELTA_BINARY_PACKED,
 *     DELTA_LENGTH_BYTE_ARRAY and BYTE_STREAM_SPLIT) and gets the source
 *     rows back exactly.
 * Needs node (or $TDB_NODE) and @duckdb/node-api (scripts/test-peers.sh
 * installs it in $TDB_NODE_PEERS, default <repo>/build-peers; the repo is
 * found from __FILE__ or $TDB_SOURCE_DIR). When either is missing
 * every test FAILS with a message saying how to install it: CI installs
 * them, and a silent skip would hide a broken compatibility check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapshot/parquet.h"
#include "snapshot/pq_format.h"
#include "util/buf.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/log.h"

#include "pq_testdata.h"

static char g_dir[1024];
static char g_repo[PATH_MAX];
static char g_script[PATH_MAX + 64];
static char g_peers[PATH_MAX + 64];
static const char *g_node = "node";

static void tmp_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", g_dir, name); }

/* Appends s to b in single quotes for sh. */
static void shell_quote(buf *b, const char *s) {
    buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'') buf_puts(b, "'\\''");
        else buf_putc(b, *s);
    }
    buf_putc(b, '\'');
}

/* Runs node on the script with args; stdout goes to out (NUL-terminated,
 * caller frees). Returns the exit status (-1: could not run). On failure,
 * stderr of the script is printed. */
static int run_script(const char *const *args, size_t nargs, char **out, size_t *out_len) {
    char out_path[1200], err_path[1200];
    tmp_path(out_path, sizeof out_path, "node.out");
    tmp_path(err_path, sizeof err_path, "node.err");
    buf cmd = BUF_INIT;
    buf_puts(&cmd, "TDB_NODE_PEERS=");
    shell_quote(&cmd, g_peers);
    buf_putc(&cmd, ' ');
    shell_quote(&cmd, g_node);
    buf_putc(&cmd, ' ');
    shell_quote(&cmd, g_script);
    for (size_t i = 0; i < nargs; i++) {
        buf_putc(&cmd, ' ');
        shell_quote(&cmd, args[i]);
    }
    buf_puts(&cmd, " >");
    shell_quote(&cmd, out_path);
    buf_puts(&cmd, " 2>");
    shell_quote(&cmd, err_path);
    int status = system(cmd.data);
    buf_free(&cmd);
    int rc = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (rc != 0) {
        char *e = NULL;
        size_t elen = 0;
        if (fio_read_file(err_path, &e, &elen) == 0) {
            fprintf(stderr, "duckdb_check.mjs %s failed (exit %d):\n%s\n", nargs ? args[0] : "", rc, e);
            free(e);
        }
    }
    if (out && fio_read_file(out_path, out, out_len) != 0) {
        *out = NULL;
        *out_len = 0;
    }
    return rc;
}

/* Fails the test, with what to do, unless node and the module are there. */
static void require_peers(void) {
    buf cmd = BUF_INIT;
    shell_quote(&cmd, g_node);
    buf_puts(&cmd, " --version >/dev/null 2>&1");
    int status = system(cmd.data);
    buf_free(&cmd);
    if (status != 0)
        fail_msg("node (Node.js) is not on PATH (or TDB_NODE is wrong): this test needs it to run DuckDB. "
                 "Install it (Debian: apt-get install nodejs npm), then run scripts/test-peers.sh");
    char pj[PATH_MAX + 128];
    snprintf(pj, sizeof pj, "%s/node_modules/@duckdb/node-api/package.json", g_peers);
    if (!fio_exists(pj))
        fail_msg("@duckdb/node-api is not installed in %s (set TDB_NODE_PEERS to where it is): "
                 "run scripts/test-peers.sh",
                 g_peers);
    if (!fio_exists(g_script)) fail_msg("the DuckDB helper script %s is missing", g_script);
}

/* ---- exact forms shared with duckdb_check.mjs --------------------------- */

static void hex_floats(buf *b, const float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        buf_printf(b, "%08x", bits);
    }
}

static void hex_double(char out[17], double d) {
    uint64_t bits;
    memcpy(&bits, &d, 8);
    snprintf(out, 17, "%016llx", (unsigned long long)bits);
}

static bool json_str_is(const json_value *v, const char *s, size_t len) {
    return v && v->type == JSON_STRING && v->len == len && memcmp(v->str, s, len) == 0;
}

static void assert_json_str(const json_value *v, const char *s, size_t len, const char *what, size_t row) {
    if (!json_str_is(v, s, len))
        fail_msg("row %zu: %s differs: DuckDB has %.*s", row, what, v && v->str ? (int)v->len : 6,
                 v && v->str ? v->str : "(none)");
}

/* Splits out into lines and parses each (the docs are owned by docs[]). */
static size_t parse_lines(char *out, size_t len, json_doc **docs, size_t cap) {
    size_t n = 0;
    char *p = out, *end = out + len;
    while (p < end && n < cap) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (l > 0) {
            json_error jerr;
            if (json_parse(p, l, &docs[n], &jerr) != 0)
                fail_msg("line %zu of DuckDB's output is not JSON: %s", n + 1, jerr.message);
            n++;
        }
        p += l + 1;
    }
    return n;
}

/* ---- DuckDB reads what we write ------------------------------------------- */

static void write_ours(const char *path, const trow *rows, size_t n, uint32_t dim, pq_codec codec,
                       uint64_t group_rows, uint32_t page_bytes, bool v2) {
    pq_schema schema = {.dimension = dim, .collection = "things", .metric = "dot",
                        .config_json = "{\"name\":\"things\",\"dimension\":8}", .attr_count = ALL_ATTRS,
                        .attrs = g_all_attrs};
    pq_writer_options o;
    pq_writer_options_default(&o);
    o.codec = codec;
    o.row_group_max_rows = group_rows;
    if (page_bytes) o.page_max_bytes = page_bytes;
    o.data_page_v2 = v2;
    o.fsync = false;
    pq_writer *w;
    tdb_error err;
    assert_int_equal(pq_writer_open(path, &schema, &o, &w, &err), 0);
    for (size_t i = 0; i < n; i++) {
        pq_row row = {.id = {rows[i].id, rows[i].id_len}, .vector = rows[i].vec, .vector_len = dim,
                      .values = rows[i].vals, .attributes = {rows[i].attrs_json, rows[i].attrs_len}};
        assert_int_equal(pq_writer_add_row(w, &row, &err), 0);
    }
    assert_int_equal(pq_writer_close(w, NULL, &err), 0);
}

static void check_duckdb_column(const json_value *v, pq_attr_type t, const pq_value *want, size_t row,
                                const char *name) {
    if (want->is_null) {
        if (!v || v->type != JSON_NULL) fail_msg("row %zu: %s should be NULL in DuckDB", row, name);
        return;
    }
    char tmp[32];
    switch (t) {
    case PQ_ATTR_STRING: assert_json_str(v, want->str.data, want->str.len, name, row); break;
    case PQ_ATTR_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)want->i64);
        assert_json_str(v, tmp, strlen(tmp), name, row);
        break;
    case PQ_ATTR_FLOAT:
        hex_double(tmp, want->f64);
        assert_json_str(v, tmp, 16, name, row);
        break;
    case PQ_ATTR_BOOL:
        if (!v || v->type != (want->boolean ? JSON_TRUE : JSON_FALSE)) fail_msg("row %zu: %s differs", row, name);
        break;
    case PQ_ATTR_STRING_ARRAY:
    case PQ_ATTR_INT_ARRAY: {
        if (!v || v->type != JSON_ARRAY || v->len != want->count) fail_msg("row %zu: %s length differs", row, name);
        size_t k = 0;
        for (const json_value *e = v->child; e; e = e->next, k++) {
            if (t == PQ_ATTR_STRING_ARRAY) {
                assert_json_str(e, want->strs[k].data, want->strs[k].len, name, row);
            } else {
                snprintf(tmp, sizeof tmp, "%lld", (long long)want->ints[k]);
                assert_json_str(e, tmp, strlen(tmp), name, row);
            }
        }
        break;
    }
    }
}

/* Writes rows with our writer, has DuckDB read them, compares. */
static void duckdb_reads_ours(const char *name, size_t n, uint32_t dim, pq_codec codec, const char *codec_name,
                              uint64_t group_rows, uint32_t page_bytes, int expect_dictionary, bool v2) {
    require_peers();
    char path[1200];
    tmp_path(path, sizeof path, name);
    trow *rows = calloc(n + 1, sizeof *rows);
    assert_non_null(rows);
    make_rows(rows, n, dim);
    write_ours(path, rows, n, dim, codec, group_rows, page_bytes, v2);

    const char *args[] = {"read", path};
    char *out;
    size_t out_len;
    if (run_script(args, 2, &out, &out_len) != 0) fail_msg("DuckDB could not read our file %s", path);
    json_doc **docs = calloc(n + 2, sizeof *docs);
    size_t lines = parse_lines(out, out_len, docs, n + 2);
    assert_int_equal(lines, n + 1);

    /* header: row count, column types, metadata, encodings */
    const json_value *h = json_root(docs[0]);
    const json_value *rows_v = json_get(h, "rows");
    assert_non_null(rows_v);
    assert_true(rows_v->is_int && rows_v->i64 == (int64_t)n);
    static const char *const names[] = {"id", "vector", "title", "year", "price", "ok", "tags", "nums", "attributes"};
    static const char *const types[] = {"VARCHAR", "FLOAT[]", "VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN",
                                        "VARCHAR[]", "BIGINT[]", "VARCHAR"};
    const json_value *cols = json_get(h, "columns");
    assert_non_null(cols);
    assert_int_equal(cols->len, 9);
    size_t k = 0;
    for (const json_value *c = cols->child; c; c = c->next, k++) {
        assert_true(json_str_is(json_get(c, "name"), names[k], strlen(names[k])));
        if (!json_str_is(json_get(c, "type"), types[k], strlen(types[k])))
            fail_msg("DuckDB reads column %s as %s, expected %s", names[k], json_get(c, "type")->str, types[k]);
    }
    const json_value *kv = json_get(h, "kv");
    char dimtxt[16];
    snprintf(dimtxt, sizeof dimtxt, "%u", dim);
    assert_true(json_str_is(json_get(kv, "tierdb.dimension"), dimtxt, strlen(dimtxt)));
    assert_true(json_str_is(json_get(kv, "tierdb.format"), "1", 1));
    assert_true(json_str_is(json_get(kv, "tierdb.collection"), "things", 6));
    assert_true(json_str_is(json_get(kv, "tierdb.metric"), "dot", 3));
    assert_true(json_str_is(json_get(kv, "tierdb.version"), TDB_VERSION_STRING, strlen(TDB_VERSION_STRING)));
    bool saw_dictionary = false;
    size_t nchunks = 0;
    for (const json_value *c = json_get(h, "chunks")->child; c; c = c->next, nchunks++) {
        const json_value *comp = json_get(c, "compression");
        if (!json_str_is(comp, codec_name, strlen(codec_name)))
            fail_msg("DuckDB sees compression %s, expected %s", comp ? comp->str : "?", codec_name);
        const json_value *enc = json_get(c, "encodings");
        if (enc && enc->type == JSON_STRING && strstr(enc->str, "DICTIONARY")) saw_dictionary = true;
    }
    assert_int_equal(nchunks, 9 * ((n + group_rows - 1) / group_rows));
    if (expect_dictionary >= 0) assert_int_equal(saw_dictionary, expect_dictionary);

    /* rows */
    buf hex = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const json_value *r = json_root(docs[i + 1]);
        assert_json_str(json_get(r, "id"), rows[i].id, rows[i].id_len, "id", i);
        buf_reset(&hex);
        hex_floats(&hex, rows[i].vec, dim);
        assert_json_str(json_get(r, "vector"), hex.data ? hex.data : "", hex.len, "vector", i);
        assert_json_str(json_get(r, "attributes"), rows[i].attrs_json, rows[i].attrs_len, "attributes", i);
        const json_value *c = json_get(r, "cols");
        for (size_t a = 0; a < ALL_ATTRS; a++)
            check_duckdb_column(json_get(c, g_all_attrs[a].name), g_all_attrs[a].type, &rows[i].vals[a], i,
                                g_all_attrs[a].name);
    }
    buf_free(&hex);
    for (size_t i = 0; i < lines; i++) json_doc_free(docs[i]);
    free(docs);
    free(out);
    free_rows(rows, n);
    free(rows);
}

static void duckdb_reads_our_zstd_file(void **state) {
    (void)state;
    duckdb_reads_ours("ours-zstd.parquet", 700, 8, PQ_CODEC_ZSTD, "ZSTD", 256, 0, true, false);
}

static void duckdb_reads_our_snappy_file_with_small_pages(void **state) {
    (void)state;
    duckdb_reads_ours("ours-snappy.parquet", 500, 8, PQ_CODEC_SNAPPY, "SNAPPY", 200, 100, true, false);
}

static void duckdb_reads_our_uncompressed_128d_file(void **state) {
    (void)state;
    duckdb_reads_ours("ours-none.parquet", 3000, 128, PQ_CODEC_NONE, "UNCOMPRESSED", 1000, 0, true, false);
}

static void duckdb_reads_our_dimension_zero_file(void **state) {
    (void)state;
    duckdb_reads_ours("ours-dim0.parquet", 50, 0, PQ_CODEC_ZSTD, "ZSTD", 1000, 0, -1, false);
}

/* Our optional DATA_PAGE_V2 mode, which DuckDB itself never writes. */
static void duckdb_reads_our_data_page_v2_files(void **state) {
    (void)state;
    duckdb_reads_ours("ours-v2-zstd.parquet", 700, 8, PQ_CODEC_ZSTD, "ZSTD", 256, 150, true, true);
    duckdb_reads_ours("ours-v2-none.parquet", 300, 8, PQ_CODEC_NONE, "UNCOMPRESSED", 1000, 0, true, true);
}

/* ---- we read what DuckDB writes ---------------------------------------- */

static void json_field_str(buf *b, const char *key, pq_bytes s) {
    buf_printf(b, ",\"%s\":", key);
    json_write_string(b, s.data ? s.data : "", s.len);
}

static void write_jsonl(const char *path, const trow *rows, size_t n, uint32_t dim) {
    buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const trow *t = &rows[i];
        buf_puts(&b, "{\"id\":");
        json_write_string(&b, t->id, t->id_len);
        buf_puts(&b, ",\"vector\":\"");
        hex_floats(&b, t->vec, dim);
        buf_putc(&b, '"');
        json_field_str(&b, "attributes", (pq_bytes){t->attrs_json, t->attrs_len});
        const pq_value *v = t->vals;
        if (v[0].is_null) buf_puts(&b, ",\"title\":null");
        else json_field_str(&b, "title", v[0].str);
        if (v[1].is_null) buf_puts(&b, ",\"year\":null");
        else buf_printf(&b, ",\"year\":\"%lld\"", (long long)v[1].i64);
        char hx[17];
        hex_double(hx, v[2].f64);
        if (v[2].is_null) buf_puts(&b, ",\"price\":null");
        else buf_printf(&b, ",\"price\":\"%s\"", hx);
        if (v[3].is_null) buf_puts(&b, ",\"ok\":null");
        else buf_printf(&b, ",\"ok\":%s", v[3].boolean ? "true" : "false");
        if (v[4].is_null) {
            buf_puts(&b, ",\"tags\":null");
        } else {
            buf_puts(&b, ",\"tags\":[");
            for (size_t k = 0; k < v[4].count; k++) {
                if (k) buf_putc(&b, ',');
                json_write_string(&b, v[4].strs[k].data, v[4].strs[k].len);
            }
            buf_putc(&b, ']');
        }
        if (v[5].is_null) {
            buf_puts(&b, ",\"nums\":null");
        } else {
            buf_puts(&b, ",\"nums\":[");
            for (size_t k = 0; k < v[5].count; k++)
                buf_printf(&b, "%s\"%lld\"", k ? "," : "", (long long)v[5].ints[k]);
            buf_putc(&b, ']');
        }
        buf_puts(&b, "}\n");
    }
    assert_false(buf_failed(&b));
    assert_int_equal(fio_write_file_atomic(path, b.data, b.len), 0);
    buf_free(&b);
}

static void we_read_duckdb(const char *name, size_t n, uint32_t dim, const char *compression, const char *version,
                           const char *group_rows, uint32_t min_groups) {
    require_peers();
    char in[1200], path[1200];
    tmp_path(in, sizeof in, "rows.jsonl");
    tmp_path(path, sizeof path, name);
    trow *rows = calloc(n + 1, sizeof *rows);
    assert_non_null(rows);
    make_rows(rows, n, dim);
    /* DuckDB's dictionary encoder merges doubles that compare equal, so a
     * column holding both 0.0 and -0.0 comes back with one of them
     * (DuckDB reads its own file that way too): keep one zero here. */
    for (size_t i = 0; i < n; i++)
        if (rows[i].vals[2].f64 == 0.0) rows[i].vals[2].f64 = 0.0;
    write_jsonl(in, rows, n, dim);
    const char *args[] = {"write", in, path, compression, version, group_rows};
    char *out;
    size_t out_len;
    if (run_script(args, group_rows ? 6 : 5, &out, &out_len) != 0)
        fail_msg("DuckDB could not write %s", path);
    free(out);

    pq_reader *r;
    tdb_error err;
    int rc = pq_reader_open(path, &r, &err);
    if (rc) fail_msg("our reader refuses DuckDB's %s %s file: %s", compression, version, err.message);
    assert_int_equal(pq_reader_row_count(r), n);
    assert_int_equal(pq_reader_dimension(r), -1); /* DuckDB records no tierdb metadata */
    const pq_schema *s = pq_reader_schema(r);
    assert_int_equal(s->attr_count, ALL_ATTRS);
    for (size_t a = 0; a < ALL_ATTRS; a++) {
        assert_string_equal(s->attrs[a].name, g_all_attrs[a].name);
        assert_int_equal(s->attrs[a].type, g_all_attrs[a].type);
    }
    pq_row row;
    for (size_t i = 0; i < n; i++) {
        rc = pq_reader_next(r, &row, &err);
        if (rc != 1) fail_msg("row %zu of DuckDB's %s %s file: %s", i, compression, version, err.message);
        assert_bytes_equal(row.id, (pq_bytes){rows[i].id, rows[i].id_len});
        assert_int_equal(row.vector_len, dim);
        if (dim) assert_memory_equal(row.vector, rows[i].vec, dim * sizeof(float));
        assert_bytes_equal(row.attributes, (pq_bytes){rows[i].attrs_json, rows[i].attrs_len});
        for (size_t a = 0; a < ALL_ATTRS; a++)
            assert_value_equal(g_all_attrs[a].type, &rows[i].vals[a], &row.values[a]);
    }
    assert_int_equal(pq_reader_next(r, &row, &err), 0);
    assert_int_equal(pq_reader_dimension(r), dim);
    pq_reader_stats st;
    pq_reader_get_stats(r, &st);
    if (getenv("TDB_TEST_VERBOSE")) {
        fprintf(stderr, "%s: pages v1 %llu dict %llu v2 %llu; encodings:", name,
                (unsigned long long)st.pages_by_type[0], (unsigned long long)st.pages_by_type[2],
                (unsigned long long)st.pages_by_type[3]);
        for (int e = 0; e < 10; e++) fprintf(stderr, " %d:%llu", e, (unsigned long long)st.data_pages_by_encoding[e]);
        fprintf(stderr, " row groups %u\n", pq_reader_row_group_count(r));
    }
    /* the encodings DuckDB chose were really exercised */
    assert_true(st.pages_by_type[PQP_DICTIONARY_PAGE] > 0);
    if (strcmp(version, "V2") == 0) {
        assert_true(st.data_pages_by_encoding[PQE_DELTA_BINARY_PACKED] > 0);
        assert_true(st.data_pages_by_encoding[PQE_DELTA_LENGTH_BYTE_ARRAY] +
                        st.data_pages_by_encoding[PQE_DELTA_BYTE_ARRAY] > 0);
        assert_true(st.data_pages_by_encoding[PQE_BYTE_STREAM_SPLIT] > 0);
        assert_true(st.data_pages_by_encoding[PQE_RLE_DICTIONARY] > 0);
    } else {
        assert_true(st.data_pages_by_encoding[PQE_PLAIN_DICTIONARY] + st.data_pages_by_encoding[PQE_RLE_DICTIONARY] >
                    0);
    }
    assert_true(pq_reader_row_group_count(r) >= min_groups);
    pq_reader_close(r);
    free_rows(rows, n);
    free(rows);
}

static void we_read_duckdb_defaults_snappy_v1(void **state) {
    (void)state;
    we_read_duckdb("duck-default.parquet", 700, 8, "snappy", "V1", NULL, 1);
}

static void we_read_duckdb_zstd_v2_several_row_groups(void **state) {
    (void)state;
    we_read_duckdb("duck-zstd-v2.parquet", 5000, 8, "zstd", "V2", "2048", 3);
}

static void we_read_duckdb_uncompressed_v1(void **state) {
    (void)state;
    we_read_duckdb("duck-none-v1.parquet", 300, 8, "uncompressed", "V1", NULL, 1);
}

static void we_read_duckdb_snappy_v2_128d(void **state) {
    (void)state;
    we_read_duckdb("duck-snappy-v2.parquet", 5000, 128, "snappy", "V2", NULL, 1);
}

static void we_read_duckdb_zstd_v1_128d_several_row_groups(void **state) {
    (void)state;
    we_read_duckdb("duck-zstd-v1.parquet", 5000, 128, "zstd", "V1", "2048", 3);
}

/* ---- setup ------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    const char *base = getenv("TDB_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/parquet-duckdb-%d", base && *base ? base : "/tmp", (int)getpid());
    assert_int_equal(fio_mkdir_p(g_dir), 0);
    /* the repository: TDB_SOURCE_DIR, else from this file's path,
     * <repo>/tests/snapshot/test_parquet_duckdb.c (CMake compiles it by
     * its absolute path) */
    const char *src = getenv("TDB_SOURCE_DIR");
    if (src && *src) {
        snprintf(g_repo, sizeof g_repo, "%s", src);
    } else {
        snprintf(g_repo, sizeof g_repo, "%s", __FILE__);
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(g_repo, '/');
            if (slash == NULL) {
                snprintf(g_repo, sizeof g_repo, ".");
                break;
            }
            *slash = '\0';
        }
    }
    snprintf(g_script, sizeof g_script, "%s/tests/snapshot/duckdb_check.mjs", g_repo);
    const char *peers = getenv("TDB_NODE_PEERS");
    if (peers && *peers) snprintf(g_peers, sizeof g_peers, "%s", peers);
    else snprintf(g_peers, sizeof g_peers, "%s/build-peers", g_repo);
    const char *node = getenv("TDB_NODE");
    if (node && *node) g_node = node;
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
        cmocka_unit_test(duckdb_reads_our_zstd_file),
        cmocka_unit_test(duckdb_reads_our_snappy_file_with_small_pages),
        cmocka_unit_test(duckdb_reads_our_uncompressed_128d_file),
        cmocka_unit_test(duckdb_reads_our_dimension_zero_file),
        cmocka_unit_test(duckdb_reads_our_data_page_v2_files),
        cmocka_unit_test(we_read_duckdb_defaults_snappy_v1),
        cmocka_unit_test(we_read_duckdb_zstd_v2_several_row_groups),
        cmocka_unit_test(we_read_duckdb_uncompressed_v1),
        cmocka_unit_test(we_read_duckdb_snappy_v2_128d),
        cmocka_unit_test(we_read_duckdb_zstd_v1_128d_several_row_groups),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
