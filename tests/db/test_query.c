/*
 * test_query.c: the query route through the library (db/query.c): text
 * queries (shorthand, fields, weights) and their errors, hybrid search
 * fused by RRF against a fusion computed by hand, weighted fusion's shape
 * and normalization, filters on both sides, approximate vector search
 * reporting distances, and indexed_documents after a flush.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tierdb.h"
#include "util/fileio.h"
#include "util/json.h"

static char *make_dir(void) {
    const char *base = getenv("TDB_TEST_TMP");
    char tmpl[512];
    if (base) {
        fio_mkdir_p(base);
        snprintf(tmpl, sizeof tmpl, "%s/querytest-XXXXXX", base);
    } else {
        snprintf(tmpl, sizeof tmpl, "/tmp/querytest-XXXXXX");
    }
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

typedef struct qfix {
    char *dir;
    tdb_db *db;
} qfix;

static void setup_db(qfix *f) {
    f->dir = make_dir();
    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = f->dir;
    tdb_error err;
    if (tdb_open(&o, &f->db, &err)) fail_msg("tdb_open: %s", err.message);
}

static void teardown_db(qfix *f) {
    tdb_close(f->db);
    fio_rmtree(f->dir);
    free(f->dir);
}

static void create(qfix *f, const char *body) {
    char *out = NULL;
    tdb_error err;
    if (tdb_collection_create_json(f->db, body, strlen(body), &out, &err))
        fail_msg("create: %s", err.message);
    tdb_free(out);
}

static void upsert(qfix *f, const char *name, const char *body) {
    size_t n;
    tdb_error err;
    if (tdb_upsert_json(f->db, name, body, strlen(body), &n, &err)) fail_msg("upsert: %s", err.message);
}

/* Runs a query; returns the parsed response (caller frees) or NULL with
 * *rc and err set. */
static json_doc *query(qfix *f, const char *name, const char *body, int *rc, tdb_error *err) {
    char *out = NULL;
    *rc = tdb_query_json(f->db, name, body, strlen(body), &out, err);
    if (*rc) return NULL;
    json_doc *d = NULL;
    json_error je;
    assert_int_equal(json_parse(out, strlen(out), &d, &je), 0);
    tdb_free(out);
    return d;
}

static json_doc *query_ok(qfix *f, const char *name, const char *body) {
    int rc;
    tdb_error err;
    json_doc *d = query(f, name, body, &rc, &err);
    if (rc) fail_msg("query %s: %s", body, err.message);
    return d;
}

static void expect_error(qfix *f, const char *name, const char *body, const char *code_name) {
    int rc;
    tdb_error err;
    json_doc *d = query(f, name, body, &rc, &err);
    if (d) fail_msg("query %s succeeded", body);
    assert_int_equal(rc, TDB_EINVAL);
    if (strcmp(err.name, code_name) != 0)
        fail_msg("query %s: error %s (%s), expected %s", body, err.name, err.message, code_name);
    assert_true(strlen(err.message) > 0);
}

/* The i-th result's id and a numeric member. */
static const json_value *result(const json_doc *d, size_t i) {
    const json_value *r = json_get(json_root(d), "results");
    assert_non_null(r);
    const json_value *e = r->child;
    while (e && i--) e = e->next;
    return e;
}

static size_t result_count(const json_doc *d) { return json_get(json_root(d), "results")->len; }

static const char *rid(const json_doc *d, size_t i) { return json_get(result(d, i), "id")->str; }

static double rnum(const json_doc *d, size_t i, const char *key) {
    const json_value *v = json_get(result(d, i), key);
    if (v == NULL || v->type != JSON_NUMBER) fail_msg("result %zu has no numeric %s", i, key);
    return v->num;
}

/* The hybrid test collection: five documents on a line, so the vector
 * ranking from [0, 0] is a b c d e, and text "red" ranks c a e (c: tf 2,
 * dl 2; a: tf 1, dl 1; e: tf 1, dl 2). */
static void load_line(qfix *f) {
    create(f, "{\"name\":\"h\",\"dimension\":2,\"metric\":\"l2\",\"attributes\":{"
              "\"body\":{\"type\":\"string\",\"full_text\":true},"
              "\"title\":{\"type\":\"string\",\"full_text\":{\"language\":\"english\"}},"
              "\"year\":{\"type\":\"int\"}}}");
    upsert(f, "h",
           "{\"documents\":["
           "{\"id\":\"a\",\"vector\":[0,0],\"attributes\":{\"body\":\"red\",\"title\":\"Running\",\"year\":1}},"
           "{\"id\":\"b\",\"vector\":[1,0],\"attributes\":{\"body\":\"blue\",\"title\":\"x\",\"year\":2}},"
           "{\"id\":\"c\",\"vector\":[2,0],\"attributes\":{\"body\":\"red red\",\"title\":\"x\",\"year\":3}},"
           "{\"id\":\"d\",\"vector\":[3,0],\"attributes\":{\"body\":\"green\",\"title\":\"runs\",\"year\":4}},"
           "{\"id\":\"e\",\"vector\":[4,0],\"attributes\":{\"body\":\"red blue\",\"title\":\"x\",\"year\":5}}]}");
}

static void query_text_shorthand_fields_and_weights(void **state) {
    (void)state;
    qfix f;
    setup_db(&f);
    load_line(&f);
    json_doc *d = query_ok(&f, "h", "{\"text\":\"red\"}");
    assert_int_equal(result_count(d), 3);
    assert_string_equal(rid(d, 0), "c");
    assert_string_equal(rid(d, 1), "a");
    assert_string_equal(rid(d, 2), "e");
    for (size_t i = 0; i < 3; i++) assert_null(json_get(result(d, i), "distance"));
    /* BM25 by hand: N 5, avgdl 7/5, df 3. */
    double idf = log(1.0 + (5 - 3 + 0.5) / (3 + 0.5)), avgdl = 7.0 / 5.0;
    double sc = idf * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 2 / avgdl));
    double sa = idf * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 1 / avgdl));
    assert_true(fabs(rnum(d, 0, "score") - sc) < 1e-12);
    assert_true(fabs(rnum(d, 1, "score") - sa) < 1e-12);
    json_doc_free(d);
    /* The object form, one field, a filter. */
    d = query_ok(&f, "h", "{\"text\":{\"query\":\"red\",\"fields\":[\"body\"]},"
                          "\"filter\":{\"year\":{\"$gte\":2}},\"top_k\":1}");
    assert_int_equal(result_count(d), 1);
    assert_string_equal(rid(d, 0), "c");
    assert_true(fabs(rnum(d, 0, "score") - sc) < 1e-12); /* statistics stay collection-wide */
    json_doc_free(d);
    /* The english field stems: run matches Running and runs. */
    d = query_ok(&f, "h", "{\"text\":{\"query\":\"run\",\"fields\":[\"title\"]}}");
    assert_int_equal(result_count(d), 2);
    json_doc_free(d);
    /* Weights scale a field's share. */
    json_doc *w1 = query_ok(&f, "h", "{\"text\":{\"query\":\"red\",\"fields\":[\"body\",\"title\"]}}");
    json_doc *w3 = query_ok(&f, "h", "{\"text\":{\"query\":\"red\",\"fields\":[\"body\",\"title\"],"
                                     "\"weights\":{\"body\":3}}}");
    assert_int_equal(result_count(w3), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(rid(w1, i), rid(w3, i));
        assert_true(fabs(rnum(w3, i, "score") - 3 * rnum(w1, i, "score")) < 1e-12);
    }
    json_doc_free(w1);
    json_doc_free(w3);
    /* No token: no results. */
    d = query_ok(&f, "h", "{\"text\":\" ;; \"}");
    assert_int_equal(result_count(d), 0);
    json_doc_free(d);
    teardown_db(&f);
}

static void query_text_errors(void **state) {
    (void)state;
    qfix f;
    setup_db(&f);
    load_line(&f);
    expect_error(&f, "h", "{\"text\":{\"query\":\"red\",\"fields\":[\"nope\"]}}", "invalid_text_field");
    expect_error(&f, "h", "{\"text\":{\"query\":\"red\",\"fields\":[\"year\"]}}", "invalid_text_field");
    expect_error(&f, "h", "{\"text\":{\"query\":\"red\",\"fields\":[\"body\"],\"weights\":{\"title\":2}}}",
                 "invalid_text");
    expect_error(&f, "h", "{\"text\":{\"query\":\"red\",\"weights\":{\"body\":-1}}}", "invalid_text");
    expect_error(&f, "h", "{\"text\":{\"query\":\"red\",\"weights\":{\"nope\":1}}}", "invalid_text_field");
    expect_error(&f, "h", "{\"text\":{\"query\":\"red\",\"fields\":[]}}", "invalid_text");
    expect_error(&f, "h", "{\"text\":{\"fields\":[\"body\"]}}", "invalid_text");
    expect_error(&f, "h", "{\"text\":{\"query\":\"red\",\"boost\":1}}", "invalid_text");
    expect_error(&f, "h", "{\"text\":42}", "invalid_text");
    expect_error(&f, "h", "{\"text\":\"red\",\"hybrid\":{\"method\":\"rrf\"}}", "invalid_hybrid");
    expect_error(&f, "h", "{\"vector\":[0,0],\"text\":\"red\",\"hybrid\":{\"method\":\"max\"}}",
                 "invalid_hybrid");
    expect_error(&f, "h", "{\"vector\":[0,0],\"text\":\"red\",\"hybrid\":{\"method\":\"rrf\",\"k\":-1}}",
                 "invalid_hybrid");
    expect_error(&f, "h",
                 "{\"vector\":[0,0],\"text\":\"red\",\"hybrid\":{\"method\":\"weighted\",\"vector_weight\":2}}",
                 "invalid_hybrid");
    expect_error(&f, "h",
                 "{\"vector\":[0,0],\"text\":\"red\",\"hybrid\":{\"method\":\"rrf\",\"vector_weight\":0.5}}",
                 "invalid_hybrid");
    create(&f, "{\"name\":\"plain\",\"dimension\":2,\"metric\":\"l2\"}");
    expect_error(&f, "plain", "{\"text\":\"red\"}", "invalid_text");
    teardown_db(&f);
}

/* RRF by hand from the rankings load_line documents. */
static void query_hybrid_rrf_equals_hand_computed_fusion(void **state) {
    (void)state;
    qfix f;
    setup_db(&f);
    load_line(&f);
    const char *want_ids[] = {"a", "c", "e", "b", "d"};
    /* vector ranks a1 b2 c3 d4 e5, text ranks c1 a2 e3 */
    double want60[] = {1.0 / 61 + 1.0 / 62, 1.0 / 63 + 1.0 / 61, 1.0 / 65 + 1.0 / 63, 1.0 / 62,
                       1.0 / 64};
    for (int round = 0; round < 2; round++) {
        json_doc *d = query_ok(&f, "h", "{\"vector\":[0,0],\"text\":\"red\",\"top_k\":5}");
        assert_int_equal(result_count(d), 5);
        for (size_t i = 0; i < 5; i++) {
            assert_string_equal(rid(d, i), want_ids[i]);
            assert_true(fabs(rnum(d, i, "score") - want60[i]) < 1e-15);
        }
        json_doc_free(d);
        /* k = 1: a 1/2+1/3, c 1/4+1/2, e 1/6+1/4, b 1/3, d 1/5. */
        d = query_ok(&f, "h", "{\"vector\":[0,0],\"text\":\"red\",\"top_k\":3,"
                              "\"hybrid\":{\"method\":\"rrf\",\"k\":1}}");
        assert_int_equal(result_count(d), 3);
        assert_string_equal(rid(d, 0), "a");
        assert_true(fabs(rnum(d, 0, "score") - (0.5 + 1.0 / 3)) < 1e-15);
        assert_string_equal(rid(d, 1), "c");
        assert_true(fabs(rnum(d, 1, "score") - 0.75) < 1e-15);
        assert_string_equal(rid(d, 2), "e");
        json_doc_free(d);
        /* A filter applies to both lists: vector b1 c2 d3 e4, text c1 e2. */
        d = query_ok(&f, "h", "{\"vector\":[0,0],\"text\":\"red\",\"filter\":{\"id\":{\"$ne\":\"a\"}},"
                              "\"hybrid\":{\"method\":\"rrf\",\"k\":60}}");
        const char *fid[] = {"c", "e", "b", "d"};
        double fsc[] = {1.0 / 62 + 1.0 / 61, 1.0 / 64 + 1.0 / 62, 1.0 / 61, 1.0 / 63};
        assert_int_equal(result_count(d), 4);
        for (size_t i = 0; i < 4; i++) {
            assert_string_equal(rid(d, i), fid[i]);
            assert_true(fabs(rnum(d, i, "score") - fsc[i]) < 1e-15);
        }
        json_doc_free(d);
        /* The same from a segment. */
        tdb_error err;
        assert_int_equal(tdb_flush_all(f.db, &err), 0);
    }
    teardown_db(&f);
}

static void query_hybrid_weighted_normalizes_each_list(void **state) {
    (void)state;
    qfix f;
    setup_db(&f);
    load_line(&f);
    json_doc *t = query_ok(&f, "h", "{\"text\":\"red\"}");
    double sc = rnum(t, 0, "score"), sa = rnum(t, 1, "score"), se = rnum(t, 2, "score");
    json_doc_free(t);
    json_doc *d = query_ok(&f, "h", "{\"vector\":[0,0],\"text\":\"red\",\"top_k\":5,"
                                    "\"hybrid\":{\"method\":\"weighted\",\"vector_weight\":0.7}}");
    /* v: distances 0..4 min-max -> a 1, b .75, c .5, d .25, e 0;
     * t: c 1, a (sa - se) / (sc - se), e 0, b and d absent (0). */
    double ta = (sa - se) / (sc - se);
    const char *ids[] = {"a", "c", "b", "d", "e"};
    double want[] = {0.7 + 0.3 * ta, 0.7 * 0.5 + 0.3, 0.7 * 0.75, 0.7 * 0.25, 0.0};
    assert_int_equal(result_count(d), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(rid(d, i), ids[i]);
        assert_true(fabs(rnum(d, i, "score") - want[i]) < 1e-6);
    }
    json_doc_free(d);
    /* Default weight 0.7. */
    d = query_ok(&f, "h", "{\"vector\":[0,0],\"text\":\"red\",\"top_k\":1,"
                          "\"hybrid\":{\"method\":\"weighted\"}}");
    assert_true(fabs(rnum(d, 0, "score") - want[0]) < 1e-6);
    json_doc_free(d);
    teardown_db(&f);
}

static void query_vector_reports_distances_and_indexed_documents(void **state) {
    (void)state;
    qfix f;
    setup_db(&f);
    create(&f, "{\"name\":\"v\",\"dimension\":4,\"metric\":\"cosine\","
               "\"index\":{\"m\":8,\"ef_construction\":50,\"quantization\":\"sq8\"}}");
    char body[128 * 1024];
    size_t len = (size_t)snprintf(body, sizeof body, "{\"documents\":[");
    for (int i = 0; i < 600; i++)
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "%s{\"id\":\"p%03d\",\"vector\":[%d,%d,%d,1]}", i ? "," : "", i,
                                i % 7, i % 11, i % 13);
    snprintf(body + len, sizeof body - len, "]}");
    upsert(&f, "v", body);
    tdb_error err;
    assert_int_equal(tdb_flush_all(f.db, &err), 0);
    char *out = NULL;
    assert_int_equal(tdb_collection_get_json(f.db, "v", &out, &err), 0);
    assert_non_null(strstr(out, "\"documents\":600"));
    assert_non_null(strstr(out, "\"indexed_documents\":600"));
    tdb_free(out);
    /* p020 is [6, 9, 7, 1]; no other row is a multiple of it. */
    json_doc *d = query_ok(&f, "v", "{\"vector\":[6,9,7,1],\"top_k\":3,\"ef\":32}");
    assert_int_equal(result_count(d), 3);
    assert_string_equal(rid(d, 0), "p020");
    assert_true(rnum(d, 0, "distance") < 1e-6);
    assert_true(rnum(d, 0, "distance") <= rnum(d, 1, "distance"));
    assert_null(json_get(result(d, 0), "score"));
    json_doc_free(d);
    teardown_db(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(query_text_shorthand_fields_and_weights),
        cmocka_unit_test(query_text_errors),
        cmocka_unit_test(query_hybrid_rrf_equals_hand_computed_fusion),
        cmocka_unit_test(query_hybrid_weighted_normalizes_each_list),
        cmocka_unit_test(query_vector_reports_distances_and_indexed_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
