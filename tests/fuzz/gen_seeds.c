/*
 * gen_seeds.c: writes the seed corpora of tests/fuzz/ (run once, outputs
 * committed): binary seeds are real files made by tierdb's own writers
 * (wal_append, seg_write, manifest_store, batch_encode_*, pq_writer_*), so
 * the fuzzers start from inputs that pass every check; text seeds are
 * request bodies and filters from the API contract, S3 replies as S3
 * documents them, and config files.
 *
 *   gen_seeds CORPUS_DIR     (tests/fuzz/corpus)
 *
 * Each seed is CORPUS_DIR/<target>/seed-<name>, in the input layout the
 * target's header comment describes (most binary targets take a flags
 * byte first). Re-running overwrites the seeds with identical bytes
 * (nothing depends on time or randomness) except where a writer records
 * time, which none of these do.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "snapshot/parquet.h"
#include "storage/batch.h"
#include "storage/manifest.h"
#include "storage/segment.h"
#include "storage/wal.h"
#include "util/buf.h"

static const char *corpus;

static void die_rc(const char *what, int rc, const tdb_error *err) {
    fprintf(stderr, "gen_seeds: %s: %d %s\n", what, rc, err ? err->message : "");
    exit(1);
}

static void seed(const char *target, const char *name, const void *data, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", corpus, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/seed-%s", corpus, target, name);
    fuzz_write_file(path, data, len);
}

/* flags byte + bytes */
static void seed_flagged(const char *target, const char *name, uint8_t flags, const void *data,
                         size_t len) {
    buf b = BUF_INIT;
    buf_put_u8(&b, flags);
    buf_append(&b, data, len);
    seed(target, name, b.data, b.len);
    buf_free(&b);
}

static void seed_text(const char *target, const char *name, uint8_t prefix, bool use_prefix,
                      const char *text) {
    if (use_prefix) seed_flagged(target, name, prefix, text, strlen(text));
    else seed(target, name, text, strlen(text));
}

static void read_file(const char *path, buf *out) {
    char *d = NULL;
    size_t n = 0;
    if (fio_read_file(path, &d, &n) != 0) die_rc(path, -1, NULL);
    buf_append(out, d, n);
    free(d);
}

/* ---- batches and WAL ------------------------------------------------- */

static const float vec_a[2] = {0.25f, -1.5f}, vec_b[2] = {3.0f, 0.0f};

static void make_upsert(buf *out, uint32_t dimension) {
    st_doc docs[2] = {
        {"a1", 2, dimension ? vec_a : NULL, "{\"title\":\"Hello\",\"year\":2024}", 30},
        {"b", 1, dimension ? vec_b : NULL, NULL, 0},
    };
    tdb_error err;
    int rc = batch_encode_upsert(out, dimension, docs, 2, &err);
    if (rc) die_rc("batch_encode_upsert", rc, &err);
}

static void make_delete(buf *out) {
    st_key keys[2] = {{"a1", 2}, {"zz", 2}};
    tdb_error err;
    int rc = batch_encode_delete(out, keys, 2, &err);
    if (rc) die_rc("batch_encode_delete", rc, &err);
}

static void gen_batch(void) {
    buf b = BUF_INIT;
    make_upsert(&b, 2);
    seed_flagged("fuzz_batch", "upsert-dim2", 2 << 1, b.data, b.len); /* dimension index 2 */
    buf_reset(&b);
    make_upsert(&b, 0);
    seed_flagged("fuzz_batch", "upsert-dim0", 0, b.data, b.len);
    buf_reset(&b);
    make_delete(&b);
    seed_flagged("fuzz_batch", "delete", 1, b.data, b.len);
    buf_free(&b);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Concatenates DIR's .wal files in name order with the target's marker. */
static void wal_dir_input(const char *dir, buf *out) {
    DIR *d = opendir(dir);
    if (!d) die_rc(dir, -1, NULL);
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64)
        if (strstr(e->d_name, ".wal")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (i) buf_append(out, "WAL|", 4);
        read_file(path, out);
        free(names[i]);
    }
}

static void gen_wal(void) {
    char dir[600];
    fuzz_fresh_dir(dir, sizeof dir, "genwal");
    wal_options wo = {.fsync = TDB_FSYNC_NONE};
    wal *w = NULL;
    tdb_error err;
    int rc = wal_open(dir, &wo, 1, NULL, &w, &err);
    if (rc) die_rc("wal_open", rc, &err);
    buf up = BUF_INIT, del = BUF_INIT;
    make_upsert(&up, 2);
    make_delete(&del);
    uint64_t seqno, next;
    if ((rc = wal_append(w, BATCH_TYPE_UPSERT, up.data, up.len, &seqno, &err)) != 0 ||
        (rc = wal_append(w, BATCH_TYPE_DELETE, del.data, del.len, &seqno, &err)) != 0 ||
        (rc = wal_rotate(w, &next, &err)) != 0 ||
        (rc = wal_append(w, BATCH_TYPE_UPSERT, up.data, up.len, &seqno, &err)) != 0 ||
        (rc = wal_append(w, 7, "x", 1, &seqno, &err)) != 0)
        die_rc("wal append", rc, &err);
    wal_close(w);

    buf in = BUF_INIT;
    wal_dir_input(dir, &in);
    /* As written: valid with or without the CRC fix-up. */
    seed_flagged("fuzz_wal_replay", "two-files", FUZZ_FLAG_FIX_CRC, in.data, in.len);
    seed_flagged("fuzz_wal_replay", "two-files-nofix", 0, in.data, in.len);
    seed_flagged("fuzz_wal_replay", "two-files-after3", FUZZ_FLAG_FIX_CRC | (2 << 2), in.data,
                 in.len);
    /* The last record cut in half: a torn tail. */
    seed_flagged("fuzz_wal_replay", "torn-tail", FUZZ_FLAG_FIX_CRC, in.data, in.len - 9);
    /* The first file alone. */
    const char *m = memmem(in.data, in.len, "WAL|", 4);
    size_t first = m ? (size_t)(m - in.data) : in.len;
    seed_flagged("fuzz_wal_replay", "one-file", FUZZ_FLAG_FIX_CRC, in.data, first);
    buf_free(&in);
    buf_free(&up);
    buf_free(&del);
    fio_rmtree(dir);
}

/* ---- segments ------------------------------------------------------- */

static void gen_segment(void) {
    char dir[600], path[700];
    fuzz_fresh_dir(dir, sizeof dir, "genseg");
    snprintf(path, sizeof path, "%s/1.seg", dir);
    const float v[3][2] = {{1, 0}, {0.5f, 0.5f}, {-2, 4}};
    seg_row rows[3] = {
        {"a1", 2, 5, v[0], "{\"title\":\"Hello\",\"year\":2024}", 30},
        {"a2", 2, 9, v[1], NULL, 0},
        {"b", 1, 7, v[2], "{\"tags\":[\"sale\"]}", 17},
    };
    seg_extra extra = {SEG_KIND_EXTRA_BASE, "graph bytes", 11};
    tdb_error err;
    int rc = seg_write(path, 2, TDB_METRIC_COSINE, rows, 3, &extra, 1, &err);
    if (rc) die_rc("seg_write", rc, &err);
    buf b = BUF_INIT;
    read_file(path, &b);
    seed_flagged("fuzz_segment", "dim2", FUZZ_FLAG_FIX_CRC, b.data, b.len);
    seed_flagged("fuzz_segment", "dim2-nofix", 0, b.data, b.len);
    buf_reset(&b);

    snprintf(path, sizeof path, "%s/2.seg", dir);
    rc = seg_write(path, 0, TDB_METRIC_L2, rows, 2, NULL, 0, &err);
    if (rc) die_rc("seg_write dim 0", rc, &err);
    read_file(path, &b);
    seed_flagged("fuzz_segment", "dim0", FUZZ_FLAG_FIX_CRC, b.data, b.len);
    buf_reset(&b);

    snprintf(path, sizeof path, "%s/3.seg", dir);
    rc = seg_write(path, 4, TDB_METRIC_DOT, NULL, 0, NULL, 0, &err);
    if (rc) die_rc("seg_write empty", rc, &err);
    read_file(path, &b);
    seed_flagged("fuzz_segment", "empty", FUZZ_FLAG_FIX_CRC, b.data, b.len);
    buf_free(&b);
    fio_rmtree(dir);
}

/* ---- manifest ------------------------------------------------------- */

static void gen_manifest(void) {
    char dir[600], path[700];
    fuzz_fresh_dir(dir, sizeof dir, "genman");
    uint32_t del[2] = {1, 4};
    manifest_segment segs[2] = {
        {.id = 1, .rows = 10, .size_bytes = 4096, .deleted = del, .deleted_count = 2},
        {.id = 3, .rows = 2, .size_bytes = 512, .deleted = NULL, .deleted_count = 0},
    };
    manifest m = {.generation = 5, .checkpoint_seqno = 42, .next_segment_id = 4, .segments = segs,
                  .segment_count = 2};
    tdb_error err;
    int rc = manifest_store(dir, &m, &err);
    if (rc) die_rc("manifest_store", rc, &err);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    buf b = BUF_INIT;
    read_file(path, &b);
    seed_flagged("fuzz_manifest", "two-segments", FUZZ_FLAG_FIX_CRC, b.data, b.len);
    seed_flagged("fuzz_manifest", "two-segments-nofix", 0, b.data, b.len);
    buf_reset(&b);
    manifest empty = {.generation = 1, .next_segment_id = 1};
    if ((rc = manifest_store(dir, &empty, &err)) != 0) die_rc("manifest_store empty", rc, &err);
    read_file(path, &b);
    seed_flagged("fuzz_manifest", "empty", FUZZ_FLAG_FIX_CRC, b.data, b.len);
    buf_free(&b);
    fio_rmtree(dir);
}

/* ---- Parquet snapshots ---------------------------------------------- */

static const pq_attr_def pq_attrs[] = {
    {"title", PQ_ATTR_STRING}, {"year", PQ_ATTR_INT},          {"price", PQ_ATTR_FLOAT},
    {"ok", PQ_ATTR_BOOL},      {"tags", PQ_ATTR_STRING_ARRAY}, {"nums", PQ_ATTR_INT_ARRAY},
};

/* Rows with every attribute type, nulls, empty lists and repeated
 * strings (so string chunks get a dictionary). */
static const char *const pq_docs[] = {
    "{\"title\":\"red shoes\",\"year\":2024,\"price\":9.5,\"ok\":true,\"tags\":[\"sale\",\"new\"],"
    "\"nums\":[1,-2,3]}",
    "{\"title\":\"red shoes\",\"year\":-1,\"ok\":false,\"tags\":[],\"nums\":[]}",
    "{}",
    "{\"title\":\"h\\u00e9llo \\u65e5\\u672c\",\"price\":-0.0,\"tags\":[\"sale\"],\"nums\":[9007199254740993],"
    "\"extra\":{\"a\":[1,null]}}",
    "{\"title\":\"red shoes\",\"year\":\"not an int\",\"price\":1e308,\"ok\":null,\"tags\":[\"new\"]}",
};

static void write_pq(const char *name, uint32_t dimension, const pq_attr_def *attrs, size_t nattrs,
                     const pq_writer_options *o) {
    char dir[600], path[700];
    fuzz_fresh_dir(dir, sizeof dir, "genpq");
    snprintf(path, sizeof path, "%s/s.parquet", dir);
    pq_schema sc = {.dimension = dimension, .collection = "docs", .metric = dimension ? "cosine" : NULL,
                    .config_json = "{\"name\":\"docs\"}", .attr_count = nattrs, .attrs = attrs};
    pq_writer *w = NULL;
    tdb_error err;
    int rc = pq_writer_open(path, &sc, o, &w, &err);
    if (rc) die_rc("pq_writer_open", rc, &err);
    for (size_t i = 0; i < sizeof pq_docs / sizeof *pq_docs; i++) {
        char id[16];
        snprintf(id, sizeof id, "doc-%zu", i);
        float v[3] = {(float)i, 0.5f, -1.0f - (float)i};
        pq_bytes attrs_json = {pq_docs[i], strlen(pq_docs[i])};
        rc = pq_writer_add_doc(w, (pq_bytes){id, strlen(id)}, dimension ? v : NULL, dimension, attrs_json,
                               NULL, &err);
        if (rc) die_rc("pq_writer_add_doc", rc, &err);
    }
    if ((rc = pq_writer_close(w, NULL, &err)) != 0) die_rc("pq_writer_close", rc, &err);
    buf b = BUF_INIT;
    read_file(path, &b);
    seed("fuzz_parquet", name, b.data, b.len);
    buf_free(&b);
    fio_rmtree(dir);
}

static void gen_parquet(void) {
    pq_writer_options o;
    pq_writer_options_default(&o);
    o.fsync = false;
    /* Uncompressed, no page CRCs: mutations reach the decoders. Two row
     * groups, several pages per chunk. */
    o.codec = PQ_CODEC_NONE;
    o.page_checksums = false;
    o.row_group_max_rows = 3;
    o.page_max_bytes = 64;
    write_pq("plain-v1", 3, pq_attrs, 6, &o);
    o.data_page_v2 = true;
    write_pq("plain-v2", 3, pq_attrs, 6, &o);
    o.data_page_v2 = false;
    o.dictionary = false;
    o.page_max_bytes = 1 << 20;
    o.row_group_max_rows = 65536;
    write_pq("plain-nodict", 3, pq_attrs, 6, &o);
    write_pq("text-only", 0, pq_attrs, 1, &o);
    write_pq("no-attrs", 2, NULL, 0, &o);
    /* As snapshots are written: checksums, compression. */
    pq_writer_options_default(&o);
    o.fsync = false;
    write_pq("zstd-crc", 3, pq_attrs, 6, &o);
    o.codec = PQ_CODEC_SNAPPY;
    o.data_page_v2 = true;
    write_pq("snappy-v2-crc", 3, pq_attrs, 6, &o);
}

/* ---- S3 replies ----------------------------------------------------- */

/* Byte 0 of fuzz_s3_xml: bits 0-3 the status index, bits 4-5 the prefix. */
#define S3_200 0
#define S3_400 1
#define S3_403 2
#define S3_404 3
#define S3_500 4
#define S3_503 5
#define S3_301 6
#define S3_PREFIX_P (1 << 4)
#define S3_PREFIX_TIERDB (2 << 4)

static const char s3_headers[] =
    "HTTP/1.1 200 OK\r\nx-amz-request-id: 4442587FB7D0A2F9\r\nContent-Type: application/xml\r\n"
    "Content-Length: 512\r\nETag: \"9b2cf535f27731c974343645a3985328\"\r\n"
    "x-amz-meta-crc32c: 1f2e3d4c\r\n\r\n";

static const char s3_list[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "  <Name>bucket</Name>\n  <Prefix>tierdb/data/</Prefix>\n  <KeyCount>3</KeyCount>\n"
    "  <MaxKeys>1000</MaxKeys>\n  <IsTruncated>true</IsTruncated>\n"
    "  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\n"
    "  <Contents>\n    <Key>tierdb/data/docs/seg-000001.parquet</Key>\n"
    "    <LastModified>2026-01-01T12:00:00.000Z</LastModified>\n"
    "    <ETag>&quot;599bab3ed2c697f1d26842727561fd94&quot;</ETag>\n    <Size>857</Size>\n"
    "    <StorageClass>STANDARD</StorageClass>\n  </Contents>\n"
    "  <Contents><Key>tierdb/data/docs/a&amp;b &lt;&#x65E5;&#26412;&gt;</Key><Size>0</Size></Contents>\n"
    "  <Contents><Key><![CDATA[tierdb/data/snap/x]]></Key><Size>18446744073709551615</Size>"
    "<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>"
    "<DisplayName>m</DisplayName></Owner></Contents>\n"
    "  <CommonPrefixes><Prefix>tierdb/data/docs/</Prefix></CommonPrefixes>\n"
    "  <!-- a comment -->\n"
    "</ListBucketResult>\n";
static const char s3_list_empty[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/"
    "2006-03-01/\"><Name>bucket</Name><Prefix>p/</Prefix><KeyCount>0</KeyCount><MaxKeys>1</MaxKeys>"
    "<IsTruncated>false</IsTruncated></ListBucketResult>";
static const char s3_error[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>NoSuchKey</Code>\n"
    "  <Message>The resource you requested does not exist</Message>\n"
    "  <Resource>/bucket/tierdb/x</Resource>\n  <RequestId>4442587FB7D0A2F9</RequestId>\n</Error>";
static const char s3_error_region[] =
    "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; "
    "expecting 'eu-west-1'</Message><Region>eu-west-1</Region><RequestId>A1</RequestId>"
    "<HostId>Zm9v</HostId></Error>";
static const char s3_error_slowdown[] =
    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
static const char s3_initiate[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult "
    "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n  <Bucket>bucket</Bucket>\n"
    "  <Key>tierdb/snapshots/docs/1.parquet</Key>\n"
    "  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>\n"
    "</InitiateMultipartUploadResult>";
static const char s3_complete[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult "
    "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "  <Location>http://bucket.s3.amazonaws.com/tierdb/snapshots/docs/1.parquet</Location>\n"
    "  <Bucket>bucket</Bucket>\n  <Key>tierdb/snapshots/docs/1.parquet</Key>\n"
    "  <ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>\n</CompleteMultipartUploadResult>";
static const char s3_complete_error[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>InternalError</Code>"
    "<Message>We encountered an internal error. Please try again.</Message>"
    "<RequestId>656c76696e6727732072657175657374</RequestId>"
    "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>";

static void seed_s3(const char *name, uint8_t sel, bool headers, const char *body) {
    buf b = BUF_INIT;
    buf_put_u8(&b, sel);
    if (headers) buf_puts(&b, s3_headers);
    buf_puts(&b, body);
    seed("fuzz_s3_xml", name, b.data, b.len);
    buf_free(&b);
}

static void gen_s3(void) {
    seed_s3("list", S3_200 | S3_PREFIX_TIERDB, true, s3_list);
    seed_s3("list-noheaders", S3_200 | S3_PREFIX_P, false, s3_list);
    seed_s3("list-empty", S3_200 | S3_PREFIX_P, false, s3_list_empty);
    seed_s3("error-404", S3_404, true, s3_error);
    seed_s3("error-region", S3_301 | S3_PREFIX_P, false, s3_error_region);
    seed_s3("error-slowdown", S3_503, false, s3_error_slowdown);
    seed_s3("initiate", S3_200, true, s3_initiate);
    seed_s3("complete", S3_200, true, s3_complete);
    seed_s3("complete-error", S3_200, false, s3_complete_error);
    seed_s3("error-403-empty", S3_403, true, "");
}

/* ---- config files ---------------------------------------------------- */

/* Every key of docs/configuration.md, in every value form the parser
 * takes (basic and literal strings, escapes, sizes, durations, '_'). */
static const char config_all[] =
    "# tierdb serve --config: every setting\n"
    "[server]\n"
    "listen = \"127.0.0.1:7700\"          # HOST:PORT\n"
    "api_key = \"s3cr\\u00e9t\\\"key\"\n"
    "readonly_api_key = 'read-only'\n"
    "max_body_bytes = \"64M\"\n"
    "\n"
    "[storage]\n"
    "data = \"/var/lib/tierdb\"\n"
    "fsync = 'always'\n"
    "fsync_interval = \"100ms\"\n"
    "object_store = \"file:///var/lib/tierdb/objects\"\n"
    "memtable_max_docs = 100_000\n"
    "memtable_max_bytes = 67108864\n"
    "compaction_min_segments = 4\n"
    "\n"
    "[log]\n"
    "level = \"debug\"\n"
    "\n"
    "[tiering]\n"
    "hot_memory_budget = \"2G\"\n"
    "hot_ttl = \"6h\"\n"
    "warm_ttl = \"7d\"\n"
    "access_window = \"1h\"\n"
    "worker_interval = \"300s\"\n"
    "promotion_threshold = 10\n"
    "max_migrations_per_cycle = 16\n"
    "\n"
    "[s3]\n"
    "endpoint = \"http://127.0.0.1:9000\"\n"
    "path_style = true\n";
static const char config_small[] =
    "\xef\xbb\xbf[server]\r\n  listen = \"[::1]:0\"\r\n[ storage ]\r\nfsync='none'\r\n"
    "object_store = \"s3://bucket/prefix\\tx\"\r\n[s3]\r\npath_style = false";
static const char config_bad[] =
    "[server]\nlisten = \"127.0.0.1:7700\"\nmax_body_bytes = 12.5\n";

static void gen_config(void) {
    seed("fuzz_config", "all-keys", config_all, sizeof config_all - 1);
    seed("fuzz_config", "small-crlf", config_small, sizeof config_small - 1);
    seed("fuzz_config", "bad-float", config_bad, sizeof config_bad - 1);
}

/* ---- text seeds ----------------------------------------------------- */

static const char create_docs[] =
    "{\"name\": \"docs\", \"dimension\": 768, \"metric\": \"cosine\",\n"
    " \"attributes\": {\"title\": {\"type\": \"string\", \"full_text\": {\"language\": \"english\", "
    "\"stemming\": true, \"stopwords\": true}},\n"
    "                \"body\":  {\"type\": \"string\", \"full_text\": true},\n"
    "                \"year\":  {\"type\": \"int\"}, \"price\": {\"type\": \"float\"}, \"tags\": "
    "{\"type\": \"string[]\"}},\n"
    " \"index\": {\"type\": \"hnsw\", \"m\": 16, \"ef_construction\": 200, \"quantization\": "
    "\"none\"}}";
static const char create_small[] =
    "{\"name\":\"c.x-1\",\"dimension\":2,\"metric\":\"l2\",\"index\":{\"quantization\":\"sq8\"},"
    "\"attributes\":{\"n\":{\"type\":\"int[]\"},\"ok\":{\"type\":\"bool\"}}}";
static const char upsert_vecs[] =
    "{\"documents\": [{\"id\": \"a1\", \"vector\": [0.1, 0.2, 0.3], \"attributes\": {\"title\": "
    "\"Hello\", \"year\": 2024}},\n"
    "               {\"id\": \"a2\", \"vector\": [0.3, 0.4, 0.5]}, {\"id\": 12, \"vector\": [1e-3, "
    "-2, 3.5e2], \"attributes\": {\"tags\": [\"sale\", \"new\"], \"price\": 9.5, \"ok\": true, "
    "\"nested\": {\"a\": [1, null]}}}]}";
static const char upsert_texts[] =
    "{\"documents\":[{\"id\":\"t9\",\"attributes\":{\"body\":\"Running faster than the "
    "\\u00e9l\\u00e8ves \\u4e2d\\u6587\\u5b57 r\\u00e9sum\\u00e9\",\"n\":[3]}}]}";
static const char query_full[] =
    "{\"vector\": [0.1, 0.2, 0.3],\n"
    " \"text\": {\"query\": \"red shoes\", \"fields\": [\"title\"], \"weights\": {\"title\": "
    "2.0}},\n"
    " \"filter\": {\"year\": {\"$gte\": 2020}, \"tags\": {\"$in\": [\"sale\"]}},\n"
    " \"top_k\": 10, \"ef\": 64,\n"
    " \"hybrid\": {\"method\": \"rrf\", \"k\": 60},\n"
    " \"include\": {\"attributes\": true, \"vector\": false}}";
static const char query_vector[] =
    "{\"vector\":[1,0,0],\"top_k\":2,\"exact\":true,\"include\":{\"attributes\":[\"title\"],"
    "\"vector\":true}}";
static const char query_weighted[] =
    "{\"vector\":[0,1,0],\"text\":\"hello shoes\",\"hybrid\":{\"method\":\"weighted\","
    "\"vector_weight\":0.7}}";
static const char query_text[] = "{\"text\":{\"query\":\"dogs running\"},\"top_k\":5}";
static const char query_filter[] =
    "{\"filter\":{\"$or\":[{\"id\":{\"$prefix\":\"a\"}},{\"$not\":{\"year\":{\"$lt\":2020}}}]}}";
static const char delete_ids[] = "{\"ids\": [\"a1\", 7, \"nope\"]}";
static const char delete_filter[] = "{\"filter\": {\"year\": {\"$lt\": 2020}}}";

static const char *const filters[] = {
    "{\"year\": {\"$gte\": 2020}, \"tags\": {\"$in\": [\"sale\"]}}",
    "{\"$and\":[{\"title\":{\"$prefix\":\"He\"}},{\"price\":{\"$gt\":1,\"$lte\":9.5}}],"
    "\"flag\":true}",
    "{\"$or\":[{\"id\":\"a0\"},{\"id\":{\"$in\":[3,\"a6\"]}},{\"big\":{\"$gt\":9007199254740992}}]}",
    "{\"$not\":{\"n\":{\"$exists\":false}},\"tags\":{\"$contains\":\"new\"},\"nums\":{\"$not\":{"
    "\"$eq\":[1,2]}}}",
    "{\"nested\":{\"b\":[1,2],\"a\":1},\"v\":[],\"year\":{\"$ne\":\"2024\",\"$nin\":[null,false]}}",
    "{}",
};

static const char *const jsons[] = {
    "{\"a\":[1,-0.0,1e999,9007199254740993,\"\\ud83d\\ude00\\u0000\",true,false,null,{}]}",
    "[[[[[]]]],{\"\":{\"k\":\"v\",\"k\":1}},-1.5E-7,\"tab\\t\\\"q\\\\\"]",
    "  \"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"  ",
};

static const char *const analyzer_texts[] = {
    "The quick brown FOXES were running \xc3\x9f\xc3\x9f and stra\xc3\x9f" "e 123abc",
    "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 mixed\xe3\x81\x8b\xe3\x81\xaa kana \xea\xb0\x80\xeb\x82\x98",
    "\xce\xa3\xce\xaf\xcf\x83\xcf\x85\xcf\x86\xce\xbf\xcf\x82 e\xcc\x81t\xc3\xa9 "
    "\xd0\xb1\xd0\xb5\xd0\xb3\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb5",
};

static void gen_text(void) {
    for (size_t i = 0; i < sizeof jsons / sizeof *jsons; i++) {
        char name[32];
        snprintf(name, sizeof name, "json-%zu", i);
        seed_text("fuzz_json", name, 0, false, jsons[i]);
    }
    seed_text("fuzz_json", "create", 0, false, create_docs);
    seed_text("fuzz_json", "upsert", 0, false, upsert_vecs);
    seed_text("fuzz_json", "query", 0, false, query_full);

    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
        char name[32];
        snprintf(name, sizeof name, "filter-%zu", i);
        seed_text("fuzz_filter", name, 0, false, filters[i]);
    }
    /* A filter, then two documents of its own (NUL-separated). */
    static const char with_docs[] = "{\"x\":{\"$gte\":\"b\"}}\0{\"x\":\"c\"}\0{\"x\":[\"a\",\"bb\"]}";
    seed("fuzz_filter", "filter-docs", with_docs, sizeof with_docs - 1);

    /* Route byte: bits 0-2 route, bit 3 the "texts" collection. */
    seed_text("fuzz_requests", "create-docs", 0, true, create_docs);
    seed_text("fuzz_requests", "create-small", 0, true, create_small);
    seed_text("fuzz_requests", "upsert-vecs", 1, true, upsert_vecs);
    seed_text("fuzz_requests", "upsert-texts", 1 | 8, true, upsert_texts);
    seed_text("fuzz_requests", "query-full", 2, true, query_full);
    seed_text("fuzz_requests", "query-vector", 7, true, query_vector);
    seed_text("fuzz_requests", "query-weighted", 2, true, query_weighted);
    seed_text("fuzz_requests", "query-text", 2 | 8, true, query_text);
    seed_text("fuzz_requests", "query-filter", 7, true, query_filter);
    seed_text("fuzz_requests", "delete-ids", 3, true, delete_ids);
    seed_text("fuzz_requests", "delete-filter", 3, true, delete_filter);
    seed_text("fuzz_requests", "list-cursor", 4, true, "6131");
    seed_text("fuzz_requests", "get", 5, true, "a1");
    seed_text("fuzz_requests", "delete-one", 6 | 8, true, "t1");

    for (size_t i = 0; i < sizeof analyzer_texts / sizeof *analyzer_texts; i++) {
        for (uint8_t sel = 0; sel < 4; sel++) {
            char name[32];
            snprintf(name, sizeof name, "text-%zu-%u", i, sel);
            seed_text("fuzz_analyzer", name, sel, true, analyzer_texts[i]);
        }
    }
    seed_text("fuzz_analyzer", "language", 5 | 8, true, "english");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    corpus = argv[1];
    mkdir(corpus, 0755);
    fuzz_quiet_log();
    gen_batch();
    gen_wal();
    gen_segment();
    gen_manifest();
    gen_text();
    gen_parquet();
    gen_s3();
    gen_config();
    return 0;
}
