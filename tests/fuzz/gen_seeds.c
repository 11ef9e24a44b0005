/*
 * gen_seeds.c: writes the seed corpora of tests/fuzz/ (run once, outputs
 * committed): binary seeds are real files made by tierdb's own writers
 * (wal_append, seg_write, manifest_store, batch_encode_*), so the fuzzers
 * start from inputs that pass every check; text seeds are request bodies
 * and filters from the API contract.
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
    return 0;
}
