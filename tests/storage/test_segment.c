/*
 * test_segment.c: segment files (storage/segment.h): round trips, id
 * lookups, and that every kind of damage to a file is refused with
 * TDB_ECORRUPT rather than read.
 *
 * The corruption tests parse the file with their own reading of the
 * layout of docs/formats/segment.md (footer at the offset in the trailer,
 * 32-byte section entries), so they also pin the documented format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <math.h>

#include <cmocka.h>

#include "storage/segment.h"
#include "util/buf.h"
#include "util/crc32c.h"
#include "util/fileio.h"

/* Layout constants as docs/formats/segment.md states them. */
#define T_HEADER_BYTES 64
#define T_TRAILER_BYTES 16
#define T_ENTRY_BYTES 32
#define T_FOOTER_FIXED 8
#define T_FLAG_OPTIONAL 1u

/* ---- Fixtures ---------------------------------------------------------- */

typedef struct fixture {
    char dir[512];
    char path[600];
    char tmp_path[610];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    const char *base = getenv("TDB_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    if (fio_mkdir_p(base) < 0) return -1;
    snprintf(f->dir, sizeof f->dir, "%s/segtest-XXXXXX", base);
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof f->path, "%s/000001.seg", f->dir);
    snprintf(f->tmp_path, sizeof f->tmp_path, "%s.tmp", f->path);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    fio_fault_clear();
    fio_rmtree(f->dir);
    free(f);
    return 0;
}

/* Deterministic rows: ids "k%08zu" * stride, a vector from an LCG, attrs
 * empty on every third row. Everything lives in one struct freed at once. */
typedef struct rowset {
    size_t n;
    uint32_t dim;
    seg_row *rows;
    char *ids;        /* n * 16 bytes */
    float *vectors;   /* n * dim */
    char *attrs;      /* n * 32 bytes */
} rowset;

static uint32_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static void rowset_make(rowset *rs, size_t n, uint32_t dim, uint64_t seed) {
    rs->n = n;
    rs->dim = dim;
    rs->rows = calloc(n ? n : 1, sizeof *rs->rows);
    rs->ids = calloc(n ? n : 1, 16);
    rs->vectors = calloc(n > 0 && dim > 0 ? n * dim : 1, sizeof(float));
    rs->attrs = calloc(n ? n : 1, 32);
    assert_non_null(rs->rows);
    assert_non_null(rs->ids);
    assert_non_null(rs->vectors);
    assert_non_null(rs->attrs);
    for (size_t i = 0; i < n; i++) {
        seg_row *r = &rs->rows[i];
        char *id = rs->ids + i * 16;
        r->id_len = (uint32_t)snprintf(id, 16, "k%08zu", i * 3);
        r->id = id;
        r->seqno = 1000 + i * 7;
        for (uint32_t d = 0; d < dim; d++)
            rs->vectors[i * dim + d] = (float)((int32_t)(lcg(&seed) % 2001) - 1000) / 100.0f;
        r->vector = dim ? rs->vectors + i * dim : NULL;
        if (i % 3 != 0) {
            char *a = rs->attrs + i * 32;
            r->attrs_len = (uint32_t)snprintf(a, 32, "{\"n\":%zu}", i);
            r->attrs = a;
        }
    }
}

static void rowset_free(rowset *rs) {
    free(rs->rows);
    free(rs->ids);
    free(rs->vectors);
    free(rs->attrs);
}

/* Checks every accessor of s against the rows it was written from. */
static void check_rows(const segment *s, const seg_row *rows, size_t n, uint32_t dim) {
    assert_int_equal(seg_rows(s), n);
    const float *norms = seg_norms(s);
    if (dim == 0) {
        assert_null(seg_vectors(s));
        assert_null(norms);
    } else {
        assert_non_null(seg_vectors(s));
        assert_int_equal((uintptr_t)seg_vectors(s) % 64, 0);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t len;
        const char *id = seg_id(s, i, &len);
        assert_int_equal(len, rows[i].id_len);
        if (len) assert_memory_equal(id, rows[i].id, len);
        assert_int_equal(seg_seqno(s, i), rows[i].seqno);
        const char *a = seg_attrs(s, i, &len);
        assert_int_equal(len, rows[i].attrs_len);
        assert_non_null(a);
        if (len) assert_memory_equal(a, rows[i].attrs, len);
        if (dim == 0) {
            assert_null(seg_vector(s, i));
        } else {
            const float *v = seg_vector(s, i);
            assert_ptr_equal(v, seg_vectors(s) + i * dim);
            assert_memory_equal(v, rows[i].vector, dim * sizeof(float));
            double sq = 0;
            for (uint32_t d = 0; d < dim; d++) sq += (double)v[d] * v[d];
            assert_true(fabs(norms[i] - sqrt(sq)) <= 1e-4 * (1 + sqrt(sq)));
        }
        assert_int_equal(seg_find(s, rows[i].id, rows[i].id_len), (int64_t)i);
    }
}

static void write_ok(const fixture *f, uint32_t dim, const seg_row *rows, size_t n,
                     const seg_extra *extras, size_t n_extras) {
    tdb_error err = {0};
    int rc = seg_write(f->path, dim, TDB_METRIC_COSINE, rows, n, extras, n_extras, &err);
    if (rc != 0) fail_msg("seg_write: %d %s", rc, err.message);
}

static segment *open_ok(const fixture *f, uint32_t dim) {
    tdb_error err = {0};
    segment *s = NULL;
    int rc = seg_open(f->path, dim, &s, &err);
    if (rc != 0) fail_msg("seg_open: %d %s", rc, err.message);
    assert_non_null(s);
    return s;
}

/* Opens expecting TDB_ECORRUPT with `needle` in the message. */
static void expect_corrupt(const fixture *f, uint32_t dim, const char *needle) {
    tdb_error err = {0};
    segment *s = (segment *)(uintptr_t)1;
    int rc = seg_open(f->path, dim, &s, &err);
    if (rc != TDB_ECORRUPT)
        fail_msg("expected TDB_ECORRUPT (%s), got %d: %s", needle, rc, err.message);
    assert_null(s);
    assert_int_equal(err.code, TDB_ECORRUPT);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
    assert_non_null(strstr(err.message, f->path));
}

/* ---- Raw file surgery ---------------------------------------------------- */

static void file_load(const char *path, uint8_t **data, size_t *len) {
    char *d;
    assert_int_equal(fio_read_file(path, &d, len), 0);
    *data = (uint8_t *)d;
}

static void file_store(const char *path, const uint8_t *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

typedef struct t_entry {
    uint32_t kind, flags;
    uint64_t offset, len;
    uint32_t crc;
    size_t at; /* file offset of the entry */
} t_entry;

/* Reads the section table of a well-formed file; returns the count. */
static uint32_t parse_table(const uint8_t *d, size_t len, t_entry *out, uint32_t max,
                            uint64_t *footer_offset) {
    *footer_offset = load_u64(d + len - T_TRAILER_BYTES);
    uint32_t n = load_u32(d + *footer_offset);
    assert_true(n <= max);
    for (uint32_t i = 0; i < n; i++) {
        size_t at = *footer_offset + T_FOOTER_FIXED + (size_t)i * T_ENTRY_BYTES;
        out[i] = (t_entry){load_u32(d + at), load_u32(d + at + 4), load_u64(d + at + 8),
                           load_u64(d + at + 16), load_u32(d + at + 24), at};
    }
    return n;
}

/* Recomputes the footer CRC after the table was edited. */
static void fix_footer_crc(uint8_t *d, size_t len) {
    uint64_t fo = load_u64(d + len - T_TRAILER_BYTES);
    uint32_t n = load_u32(d + fo);
    size_t body = T_FOOTER_FIXED + (size_t)n * T_ENTRY_BYTES;
    store_u32(d + fo + body, crc32c(d + fo, body));
}

/* Recomputes the CRC of section entry e after its bytes were edited. */
static void fix_section_crc(uint8_t *d, size_t len, const t_entry *e) {
    store_u32(d + e->at + 24, crc32c(d + e->offset, e->len));
    fix_footer_crc(d, len);
}

static void fix_header_crc(uint8_t *d) { store_u32(d + 60, crc32c(d, 60)); }

/* ---- Round trips ------------------------------------------------------- */

static void seg_round_trip_ids_with_nul_bytes_and_empty_attrs(void **state) {
    fixture *f = *state;
    /* Strictly increasing in seg_id_cmp order: a prefix sorts first, bytes
     * compare unsigned. */
    static const struct { const char *id; uint32_t len; const char *attrs; } in[] = {
        {"\0", 1, "{}"},           {"\0\0", 2, NULL},      {"a", 1, "{\"x\":\"\\u0000\"}"},
        {"a\0b", 3, NULL},         {"ab", 2, "{\"k\":1}"}, {"\x7f", 1, ""},
        {"\xc3\xa9t\xc3\xa9", 6, "{\"t\":\"\xc3\xa9\"}"},  {"\xff\xff", 2, NULL},
    };
    enum { N = sizeof in / sizeof in[0], DIM = 3 };
    seg_row rows[N];
    float vec[N][DIM];
    for (size_t i = 0; i < N; i++) {
        for (int d = 0; d < DIM; d++) vec[i][d] = (float)i - (float)d * 0.5f;
        rows[i] = (seg_row){in[i].id, in[i].len, 10 + i, vec[i], in[i].attrs,
                            in[i].attrs ? (uint32_t)strlen(in[i].attrs) : 0};
    }
    write_ok(f, DIM, rows, N, NULL, 0);
    assert_false(fio_exists(f->tmp_path));
    segment *s = open_ok(f, DIM);
    check_rows(s, rows, N, DIM);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(seg_file_bytes(s), (uint64_t)st.st_size);
    assert_int_equal(seg_find(s, "a\0", 2), -1);
    assert_int_equal(seg_find(s, "", 0), -1);
    seg_close(s);
    seg_close(NULL);
}

static void seg_round_trip_dimension_zero_has_no_vectors(void **state) {
    fixture *f = *state;
    rowset rs;
    rowset_make(&rs, 50, 0, 1);
    write_ok(f, 0, rs.rows, rs.n, NULL, 0);
    segment *s = open_ok(f, 0);
    check_rows(s, rs.rows, rs.n, 0);
    seg_close(s);
    rowset_free(&rs);
}

static void seg_round_trip_dimension_4096(void **state) {
    fixture *f = *state;
    rowset rs;
    rowset_make(&rs, 40, 4096, 2);
    write_ok(f, 4096, rs.rows, rs.n, NULL, 0);
    segment *s = open_ok(f, 4096);
    check_rows(s, rs.rows, rs.n, 4096);
    seg_close(s);
    rowset_free(&rs);
}

static void seg_round_trip_zero_rows(void **state) {
    fixture *f = *state;
    for (uint32_t dim = 0; dim <= 8; dim += 8) {
        unlink(f->path);
        write_ok(f, dim, NULL, 0, NULL, 0);
        segment *s = open_ok(f, dim);
        assert_int_equal(seg_rows(s), 0);
        assert_int_equal(seg_find(s, "a", 1), -1);
        assert_int_equal(seg_lower_bound(s, "a", 1), 0);
        assert_int_equal(seg_upper_bound(s, "", 0), 0);
        if (dim) assert_non_null(seg_vectors(s));
        else assert_null(seg_vectors(s));
        seg_close(s);
    }
}

static void seg_round_trip_100k_rows(void **state) {
    fixture *f = *state;
    rowset rs;
    rowset_make(&rs, 100000, 8, 3);
    write_ok(f, 8, rs.rows, rs.n, NULL, 0);
    segment *s = open_ok(f, 8);
    check_rows(s, rs.rows, rs.n, 8);
    /* Ids are k%08zu of multiples of 3: ids in between are absent. */
    assert_int_equal(seg_find(s, "k00000001", 9), -1);
    assert_int_equal(seg_lower_bound(s, "k00000001", 9), 1);
    seg_close(s);
    rowset_free(&rs);
}

/* ---- Lookups ------------------------------------------------------------ */

static void seg_find_and_bounds_at_edges(void **state) {
    fixture *f = *state;
    seg_row rows[3] = {{"b", 1, 1, NULL, NULL, 0}, {"d", 1, 2, NULL, NULL, 0},
                       {"f", 1, 3, NULL, NULL, 0}};
    write_ok(f, 0, rows, 3, NULL, 0);
    segment *s = open_ok(f, 0);
    static const struct { const char *id; uint32_t len; int64_t find; uint64_t lo, up; } q[] = {
        {"", 0, -1, 0, 0},     {"a", 1, -1, 0, 0},    {"b", 1, 0, 0, 1},
        {"b\0", 2, -1, 1, 1},  {"c", 1, -1, 1, 1},    {"d", 1, 1, 1, 2},
        {"f", 1, 2, 2, 3},     {"f\0", 2, -1, 3, 3},  {"g", 1, -1, 3, 3},
        {"\xff", 1, -1, 3, 3},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        assert_int_equal(seg_find(s, q[i].id, q[i].len), q[i].find);
        assert_int_equal(seg_lower_bound(s, q[i].id, q[i].len), q[i].lo);
        assert_int_equal(seg_upper_bound(s, q[i].id, q[i].len), q[i].up);
    }
    seg_close(s);
}

/* ---- Corruption ---------------------------------------------------------- */

static const char *t_kind_name(uint32_t kind, char *tmp, size_t len) {
    switch (kind) {
    case 1: return "section ids";
    case 2: return "section seqnos";
    case 3: return "section vectors";
    case 4: return "section norms";
    case 5: return "section attrs";
    case 6: return "section attrcols";
    default: snprintf(tmp, len, "section extra %u", kind); return tmp;
    }
}

static void write_sample(const fixture *f, rowset *rs) {
    static const char graph[] = "graph\0bytes";
    seg_extra extra = {1000, graph, sizeof graph};
    rowset_make(rs, 200, 4, 4);
    write_ok(f, 4, rs->rows, rs->n, &extra, 1);
}

static void seg_flipped_byte_in_each_section_is_corrupt(void **state) {
    fixture *f = *state;
    rowset rs;
    write_sample(f, &rs);
    uint8_t *orig, *d;
    size_t len;
    file_load(f->path, &orig, &len);
    d = malloc(len);
    assert_non_null(d);
    t_entry e[16];
    uint64_t fo;
    uint32_t n = parse_table(orig, len, e, 16, &fo);
    assert_int_equal(n, 7); /* ids seqnos vectors norms attrs attrcols extra */
    for (uint32_t i = 0; i < n; i++) {
        char tmp[48];
        assert_true(e[i].len > 0);
        assert_int_equal(e[i].offset % 64, 0);
        /* First, middle and last byte of the section. */
        uint64_t at[3] = {e[i].offset, e[i].offset + e[i].len / 2, e[i].offset + e[i].len - 1};
        for (int k = 0; k < 3; k++) {
            memcpy(d, orig, len);
            d[at[k]] ^= 0x20;
            file_store(f->path, d, len);
            expect_corrupt(f, 4, t_kind_name(e[i].kind, tmp, sizeof tmp));
        }
    }
    /* Header, footer and trailer. */
    /* Header, footer and trailer; a negative position counts from the end. */
    static const struct { int64_t at; const char *needle; } other[] = {
        {24, "header checksum"},   {9, "newer than this build"}, {0, "bad magic"},
        {-1, "end magic"},         {-16, "footer offset"},       {-20, "footer checksum"},
    };
    for (size_t k = 0; k < sizeof other / sizeof other[0]; k++) {
        size_t at = other[k].at >= 0 ? (size_t)other[k].at : len - (size_t)(-other[k].at);
        memcpy(d, orig, len);
        d[at] ^= 0x01;
        file_store(f->path, d, len);
        expect_corrupt(f, 4, other[k].needle);
    }
    /* A table entry (ids' CRC field) and the footer count. */
    memcpy(d, orig, len);
    d[e[0].at + 24] ^= 0x01;
    file_store(f->path, d, len);
    expect_corrupt(f, 4, "footer checksum");
    memcpy(d, orig, len);
    d[fo] ^= 0x01;
    file_store(f->path, d, len);
    expect_corrupt(f, 4, "footer lists");
    /* The untouched file still opens. */
    file_store(f->path, orig, len);
    segment *s = open_ok(f, 4);
    seg_close(s);
    free(d);
    free(orig);
    rowset_free(&rs);
}

static void seg_truncated_file_is_corrupt(void **state) {
    fixture *f = *state;
    rowset rs;
    write_sample(f, &rs);
    uint8_t *orig;
    size_t len;
    file_load(f->path, &orig, &len);
    size_t cuts[] = {0, 1, 8, 63, 64, 100, 128, len / 2, len - 100, len - 17, len - 16,
                     len - 8, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        file_store(f->path, orig, cuts[i]);
        expect_corrupt(f, 4, "");
    }
    /* Appended garbage moves the trailer: also refused. */
    uint8_t *longer = calloc(1, len + 64);
    assert_non_null(longer);
    memcpy(longer, orig, len);
    file_store(f->path, longer, len + 64);
    expect_corrupt(f, 4, "end magic");
    free(longer);
    free(orig);
    rowset_free(&rs);
}

static void seg_newer_format_version_is_refused(void **state) {
    fixture *f = *state;
    rowset rs;
    write_sample(f, &rs);
    uint8_t *d;
    size_t len;
    file_load(f->path, &d, &len);
    store_u32(d + 8, 2);
    fix_header_crc(d);
    file_store(f->path, d, len);
    expect_corrupt(f, 4, "segment format version 2 is newer than this build supports");
    store_u32(d + 8, 0);
    fix_header_crc(d);
    file_store(f->path, d, len);
    expect_corrupt(f, 4, "version 0");
    free(d);
    rowset_free(&rs);
}

static void seg_open_with_wrong_dimension_is_refused(void **state) {
    fixture *f = *state;
    rowset rs;
    write_sample(f, &rs);
    expect_corrupt(f, 8, "dimension 4");
    expect_corrupt(f, 0, "dimension 4");
    rowset_free(&rs);
}

static void seg_open_missing_file_is_not_found(void **state) {
    fixture *f = *state;
    tdb_error err = {0};
    segment *s = NULL;
    assert_int_equal(seg_open(f->path, 4, &s, &err), TDB_ENOTFOUND);
    assert_null(s);
}

/* Damage that keeps every CRC valid must still be caught by the
 * structural checks (rules 6 and 7 of segment.c). */
static void seg_structural_damage_with_valid_crcs_is_corrupt(void **state) {
    fixture *f = *state;
    seg_row rows[3] = {{"aa", 2, 1, NULL, "{}", 2}, {"ab", 2, 2, NULL, NULL, 0},
                       {"ac", 2, 3, NULL, "{}", 2}};
    write_ok(f, 0, rows, 3, NULL, 0);
    uint8_t *orig, *d;
    size_t len;
    file_load(f->path, &orig, &len);
    d = malloc(len);
    assert_non_null(d);
    t_entry e[8];
    uint64_t fo;
    uint32_t n = parse_table(orig, len, e, 8, &fo);
    assert_int_equal(n, 3); /* ids seqnos attrs */
    assert_int_equal(e[0].kind, 1);
    assert_int_equal(e[2].kind, 5);
    size_t ids_blob = e[0].offset + 4 * 8;

    /* Ids out of order: "ab" and "aa" swapped. */
    memcpy(d, orig, len);
    d[ids_blob + 1] = 'b';
    d[ids_blob + 3] = 'a';
    fix_section_crc(d, len, &e[0]);
    file_store(f->path, d, len);
    expect_corrupt(f, 0, "not greater");

    /* Duplicate ids. */
    memcpy(d, orig, len);
    d[ids_blob + 3] = 'a';
    fix_section_crc(d, len, &e[0]);
    file_store(f->path, d, len);
    expect_corrupt(f, 0, "not greater");

    /* An attrs offset going backwards. */
    memcpy(d, orig, len);
    store_u64(d + e[2].offset + 8, 3);
    store_u64(d + e[2].offset + 16, 1);
    fix_section_crc(d, len, &e[2]);
    file_store(f->path, d, len);
    expect_corrupt(f, 0, "section attrs");

    /* A row count that disagrees with the sections. */
    memcpy(d, orig, len);
    store_u64(d + 24, 4);
    fix_header_crc(d);
    file_store(f->path, d, len);
    expect_corrupt(f, 0, "section");

    /* A section reaching into the footer. */
    memcpy(d, orig, len);
    store_u64(d + e[2].at + 16, fo - e[2].offset + 1);
    fix_footer_crc(d, len);
    file_store(f->path, d, len);
    expect_corrupt(f, 0, "section attrs");

    /* A section table listing ids twice. */
    memcpy(d, orig, len);
    store_u32(d + e[1].at, 1);
    fix_footer_crc(d, len);
    file_store(f->path, d, len);
    expect_corrupt(f, 0, "listed twice");

    free(d);
    free(orig);
}

/* ---- Writer input checks and I/O faults ----------------------------------- */

static void seg_write_rejects_unsorted_or_duplicate_ids(void **state) {
    fixture *f = *state;
    seg_row unsorted[3] = {{"a", 1, 1, NULL, NULL, 0}, {"c", 1, 2, NULL, NULL, 0},
                           {"b", 1, 3, NULL, NULL, 0}};
    seg_row dup[2] = {{"a", 1, 1, NULL, NULL, 0}, {"a", 1, 2, NULL, NULL, 0}};
    seg_row prefix[2] = {{"ab", 2, 1, NULL, NULL, 0}, {"a", 1, 2, NULL, NULL, 0}};
    tdb_error err = {0};
    assert_int_equal(seg_write(f->path, 0, TDB_METRIC_L2, unsorted, 3, NULL, 0, &err),
                     TDB_EINVAL);
    assert_non_null(strstr(err.message, "row 2"));
    assert_int_equal(seg_write(f->path, 0, TDB_METRIC_L2, dup, 2, NULL, 0, &err), TDB_EINVAL);
    assert_int_equal(seg_write(f->path, 0, TDB_METRIC_L2, prefix, 2, NULL, 0, &err), TDB_EINVAL);
    /* A missing vector when the dimension is > 0. */
    assert_int_equal(seg_write(f->path, 2, TDB_METRIC_L2, dup, 1, NULL, 0, &err), TDB_EINVAL);
    assert_false(fio_exists(f->path));
    assert_false(fio_exists(f->tmp_path));
}

static void seg_write_rejects_bad_extras(void **state) {
    fixture *f = *state;
    seg_row row = {"a", 1, 1, NULL, NULL, 0};
    seg_extra low = {5, "x", 1};
    seg_extra twice[2] = {{1000, "x", 1}, {1000, "y", 1}};
    tdb_error err = {0};
    assert_int_equal(seg_write(f->path, 0, TDB_METRIC_DOT, &row, 1, &low, 1, &err), TDB_EINVAL);
    assert_int_equal(seg_write(f->path, 0, TDB_METRIC_DOT, &row, 1, twice, 2, &err), TDB_EINVAL);
    assert_false(fio_exists(f->path));
}

/* Fails each counted I/O call of seg_write in turn (once, then for good)
 * until a write gets through; after every failure neither the segment nor
 * its temporary file may exist. */
static void seg_write_io_failure_at_each_step_leaves_no_file(void **state) {
    fixture *f = *state;
    rowset rs;
    rowset_make(&rs, 3000, 128, 5); /* ~1.5 MiB of vectors: several buffered writes */
    for (int persistent = 0; persistent <= 1; persistent++) {
        unlink(f->path);
        uint64_t nth;
        int rc = -1;
        for (nth = 1; nth < 100; nth++) {
            tdb_error err = {0};
            fio_fault_set(nth, EIO, persistent);
            rc = seg_write(f->path, 128, TDB_METRIC_L2, rs.rows, rs.n, NULL, 0, &err);
            fio_fault_clear();
            if (rc == 0) break;
            assert_int_equal(rc, TDB_EIO);
            assert_int_equal(err.code, TDB_EIO);
            assert_false(fio_exists(f->path));
            assert_false(fio_exists(f->tmp_path));
        }
        assert_int_equal(rc, 0);
        /* open, >= 2 writes, fsync, rename, fsync dir. */
        assert_true(nth > 6);
        segment *s = open_ok(f, 128);
        check_rows(s, rs.rows, rs.n, 128);
        seg_close(s);
    }
    rowset_free(&rs);
}

static void seg_open_mmap_failure_is_io_error(void **state) {
    fixture *f = *state;
    rowset rs;
    write_sample(f, &rs);
    tdb_error err = {0};
    segment *s = NULL;
    fio_fault_set(1, EIO, true);
    int rc = seg_open(f->path, 4, &s, &err);
    fio_fault_clear();
    assert_int_equal(rc, TDB_EIO);
    assert_null(s);
    rowset_free(&rs);
}

/* ---- Extras ----------------------------------------------------------------- */

static void seg_extras_round_trip(void **state) {
    fixture *f = *state;
    rowset rs;
    rowset_make(&rs, 10, 4, 6);
    size_t big_len = 100003;
    uint8_t *big = malloc(big_len);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++) big[i] = (uint8_t)(i * 31 + 7);
    static const char small[] = "\0graph\0";
    seg_extra extras[3] = {{1000, small, sizeof small}, {1001, NULL, 0}, {4242, big, big_len}};
    write_ok(f, 4, rs.rows, rs.n, extras, 3);
    segment *s = open_ok(f, 4);
    check_rows(s, rs.rows, rs.n, 4);
    for (int i = 0; i < 3; i++) {
        const void *data = NULL;
        size_t len = 99;
        assert_int_equal(seg_extra_get(s, extras[i].kind, &data, &len), 0);
        assert_int_equal(len, extras[i].len);
        assert_non_null(data);
        assert_int_equal((uintptr_t)data % 64, 0);
        if (len) assert_memory_equal(data, extras[i].data, len);
    }
    const void *data;
    size_t len;
    assert_int_equal(seg_extra_get(s, 1002, &data, &len), TDB_ENOTFOUND);
    assert_int_equal(seg_extra_get(s, 1, &data, &len), TDB_ENOTFOUND); /* ids: not an extra */
    seg_close(s);
    free(big);
    rowset_free(&rs);
}

/* A section kind this build does not know is skipped when flagged optional
 * and refused when not. */
static void seg_unknown_optional_section_is_ignored(void **state) {
    fixture *f = *state;
    rowset rs;
    write_sample(f, &rs);
    uint8_t *d;
    size_t len;
    file_load(f->path, &d, &len);
    t_entry e[8];
    uint64_t fo;
    uint32_t n = parse_table(d, len, e, 8, &fo);
    assert_int_equal(e[n - 1].kind, 1000);
    assert_int_equal(e[n - 1].flags, T_FLAG_OPTIONAL);
    store_u32(d + e[n - 1].at, 77);
    fix_footer_crc(d, len);
    file_store(f->path, d, len);
    segment *s = open_ok(f, 4);
    check_rows(s, rs.rows, rs.n, 4);
    const void *data;
    size_t elen;
    assert_int_equal(seg_extra_get(s, 77, &data, &elen), TDB_ENOTFOUND);
    assert_int_equal(seg_extra_get(s, 1000, &data, &elen), TDB_ENOTFOUND);
    seg_close(s);

    store_u32(d + e[n - 1].at + 4, 0); /* no longer optional */
    fix_footer_crc(d, len);
    file_store(f->path, d, len);
    expect_corrupt(f, 4, "unknown kind 77 is required");
    free(d);
    rowset_free(&rs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(seg_round_trip_ids_with_nul_bytes_and_empty_attrs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(seg_round_trip_dimension_zero_has_no_vectors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(seg_round_trip_dimension_4096, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_round_trip_zero_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_round_trip_100k_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_find_and_bounds_at_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_flipped_byte_in_each_section_is_corrupt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(seg_truncated_file_is_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_newer_format_version_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_open_with_wrong_dimension_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(seg_open_missing_file_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_structural_damage_with_valid_crcs_is_corrupt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(seg_write_rejects_unsorted_or_duplicate_ids, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(seg_write_rejects_bad_extras, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_write_io_failure_at_each_step_leaves_no_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(seg_open_mmap_failure_is_io_error, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_extras_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(seg_unknown_optional_section_is_ignored, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
