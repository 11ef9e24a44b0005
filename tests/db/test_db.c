/*
 * test_db.c: the public API end to end through the library (no HTTP):
 * catalog persistence, create validation, upsert/get/delete/list, query,
 * drop. Each test opens a fresh data directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tierdb.h"
#include "util/fileio.h"

static char *make_dir(void) {
    const char *base = getenv("TDB_TEST_TMP");
    char tmpl[512];
    if (base) {
        fio_mkdir_p(base);
        snprintf(tmpl, sizeof tmpl, "%s/dbtest-XXXXXX", base);
    } else {
        snprintf(tmpl, sizeof tmpl, "/tmp/dbtest-XXXXXX");
    }
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static tdb_db *open_db(const char *dir) {
    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = dir;
    tdb_db *db = NULL;
    tdb_error err;
    int rc = tdb_open(&o, &db, &err);
    if (rc) fail_msg("tdb_open: %s", err.message);
    return db;
}

static int create(tdb_db *db, const char *body, tdb_error *err) {
    char *out = NULL;
    int rc = tdb_collection_create_json(db, body, strlen(body), &out, err);
    tdb_free(out);
    return rc;
}

static void db_collection_survives_reopen(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    tdb_error err;
    assert_int_equal(create(db, "{\"name\":\"docs\",\"dimension\":3,\"metric\":\"l2\","
                                "\"attributes\":{\"title\":{\"type\":\"string\",\"full_text\":true}}}",
                            &err),
                     0);
    size_t n;
    const char *up = "{\"documents\":[{\"id\":\"a\",\"vector\":[1,2,3],\"attributes\":{\"title\":"
                     "\"h\\u00e9llo\",\"n\":9007199254740993}}]}";
    assert_int_equal(tdb_upsert_json(db, "docs", up, strlen(up), &n, &err), 0);
    assert_int_equal(n, 1);
    tdb_close(db);
    db = open_db(dir);
    assert_int_equal(tdb_collection_count(db), 1);
    char *out = NULL;
    assert_int_equal(tdb_collection_get_json(db, "docs", &out, &err), 0);
    assert_non_null(strstr(out, "\"metric\":\"l2\""));
    assert_non_null(strstr(out, "\"dimension\":3"));
    assert_non_null(strstr(out, "\"documents\":1"));
    assert_non_null(strstr(out, "\"full_text\":{"));
    tdb_free(out);
    assert_int_equal(tdb_get_json(db, "docs", "a", 1, &out, &err), 0);
    assert_string_equal(out, "{\"id\":\"a\",\"vector\":[1,2,3],\"attributes\":{\"title\":\"h\xc3\xa9llo\","
                             "\"n\":9007199254740993}}");
    tdb_free(out);
    tdb_close(db);
    fio_rmtree(dir);
    free(dir);
}

static void db_create_rejects_invalid_and_creates_nothing(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    tdb_error err;
    const char *bad[] = {
        "{\"name\":\".hidden\",\"dimension\":3}",
        "{\"name\":\"a/b\",\"dimension\":3}",
        "{\"name\":\"\",\"dimension\":3}",
        "{\"name\":\"ok\",\"dimension\":-1}",
        "{\"name\":\"ok\",\"dimension\":4097}",
        "{\"name\":\"ok\",\"dimension\":1.5}",
        "{\"name\":\"ok\",\"dimension\":3,\"metric\":\"hamming\"}",
        "{\"name\":\"ok\",\"dimension\":3,\"attributes\":{\"x\":{\"type\":\"date\"}}}",
        "{\"name\":\"ok\",\"dimension\":3,\"index\":{\"quantization\":\"pq\"}}",
        "{\"name\":\"ok\",\"dimensions\":3}",
        "{\"name\":\"ok\",\"dimension\":3",
        "[1,2]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(create(db, bad[i], &err), TDB_EINVAL);
        assert_true(err.message[0] != '\0');
    }
    assert_int_equal(tdb_collection_count(db), 0);
    assert_int_equal(create(db, "{\"name\":\"ok\",\"dimension\":0}", &err), 0);
    assert_int_equal(create(db, "{\"name\":\"ok\",\"dimension\":4}", &err), TDB_EEXIST);
    assert_string_equal(err.name, "collection_exists");
    tdb_close(db);
    fio_rmtree(dir);
    free(dir);
}

static void db_upsert_rejects_bad_batch_atomically(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    tdb_error err;
    assert_int_equal(create(db, "{\"name\":\"c\",\"dimension\":2,\"metric\":\"cosine\","
                                "\"attributes\":{\"year\":{\"type\":\"int\"}}}",
                            &err),
                     0);
    size_t n;
    const char *bad[] = {
        "{\"documents\":[{\"id\":\"a\",\"vector\":[1,0]},{\"id\":\"b\",\"vector\":[1]}]}",
        "{\"documents\":[{\"id\":\"a\",\"vector\":[1,0]},{\"id\":\"b\",\"vector\":[0,0]}]}",
        "{\"documents\":[{\"id\":\"a\",\"vector\":[1,0]},{\"id\":\"b\",\"vector\":[1e999,0]}]}",
        "{\"documents\":[{\"id\":\"a\",\"vector\":[1,0]},{\"id\":\"b\",\"vector\":[1,0],"
        "\"attributes\":{\"year\":\"2020\"}}]}",
        "{\"documents\":[{\"id\":\"a\",\"vector\":[1,0]},{\"id\":\"\",\"vector\":[1,0]}]}",
        "{\"documents\":[{\"id\":\"a\",\"vector\":[1,0]},{\"id\":1.5,\"vector\":[1,0]}]}",
        "{\"documents\":[{\"id\":\"a\",\"vector\":[1,0],\"attributes\":[1]}]}",
        "{\"docs\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(tdb_upsert_json(db, "c", bad[i], strlen(bad[i]), &n, &err), TDB_EINVAL);
    char *out = NULL;
    assert_int_equal(tdb_get_json(db, "c", "a", 1, &out, &err), TDB_ENOTFOUND);
    assert_int_equal(tdb_upsert_json(db, "nope", bad[0], strlen(bad[0]), &n, &err), TDB_ENOTFOUND);
    assert_string_equal(err.name, "collection_not_found");
    tdb_close(db);
    fio_rmtree(dir);
    free(dir);
}

static void db_list_pages_every_document_once_in_id_order(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    tdb_error err;
    assert_int_equal(create(db, "{\"name\":\"c\",\"dimension\":1,\"metric\":\"l2\"}", &err), 0);
    size_t n;
    for (int i = 0; i < 50; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"documents\":[{\"id\":%d,\"vector\":[%d]}]}", i, i);
        assert_int_equal(tdb_upsert_json(db, "c", body, strlen(body), &n, &err), 0);
    }
    char *cursor = NULL;
    int seen = 0;
    char last[16] = "";
    for (;;) {
        char *out = NULL;
        assert_int_equal(tdb_list_json(db, "c", 7, cursor, false, &out, &err), 0);
        free(cursor);
        cursor = NULL;
        for (char *p = strstr(out, "{\"id\":\""); p; p = strstr(p + 1, "{\"id\":\"")) {
            char id[16];
            sscanf(p + 7, "%15[^\"]", id);
            assert_true(strcmp(id, last) > 0);
            strcpy(last, id);
            seen++;
        }
        char *nc = strstr(out, "\"next_cursor\":\"");
        if (nc) {
            cursor = strdup(nc + 15);
            *strchr(cursor, '"') = '\0';
        }
        tdb_free(out);
        if (cursor == NULL) break;
    }
    assert_int_equal(seen, 50);
    char *out = NULL;
    assert_int_equal(tdb_list_json(db, "c", 7, "zz", false, &out, &err), TDB_EINVAL);
    tdb_close(db);
    fio_rmtree(dir);
    free(dir);
}

static void db_query_exact_l2_and_filter(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    tdb_error err;
    assert_int_equal(create(db, "{\"name\":\"c\",\"dimension\":2,\"metric\":\"l2\"}", &err), 0);
    size_t n;
    const char *up = "{\"documents\":[{\"id\":\"a\",\"vector\":[0,0],\"attributes\":{\"k\":1}},"
                     "{\"id\":\"b\",\"vector\":[3,4],\"attributes\":{\"k\":2}},"
                     "{\"id\":\"c\",\"vector\":[1,0],\"attributes\":{\"k\":2}}]}";
    assert_int_equal(tdb_upsert_json(db, "c", up, strlen(up), &n, &err), 0);
    char *out = NULL;
    const char *q = "{\"vector\":[0,0],\"top_k\":2}";
    assert_int_equal(tdb_query_json(db, "c", q, strlen(q), &out, &err), 0);
    assert_non_null(strstr(out, "\"results\":[{\"id\":\"a\",\"distance\":0,"));
    assert_non_null(strstr(out, "{\"id\":\"c\",\"distance\":1,"));
    assert_null(strstr(out, "\"id\":\"b\""));
    tdb_free(out);
    q = "{\"vector\":[0,0],\"filter\":{\"k\":2},\"include\":{\"attributes\":false}}";
    assert_int_equal(tdb_query_json(db, "c", q, strlen(q), &out, &err), 0);
    assert_non_null(strstr(out, "\"results\":[{\"id\":\"c\",\"distance\":1},{\"id\":\"b\",\"distance\":5}]"));
    tdb_free(out);
    q = "{\"vector\":[0,0],\"top_k\":0}";
    assert_int_equal(tdb_query_json(db, "c", q, strlen(q), &out, &err), TDB_EINVAL);
    q = "{\"vector\":[0,0],\"filter\":{\"k\":{\"$bad\":1}}}";
    assert_int_equal(tdb_query_json(db, "c", q, strlen(q), &out, &err), TDB_EINVAL);
    const char *del = "{\"filter\":{\"k\":2}}";
    assert_int_equal(tdb_delete_json(db, "c", del, strlen(del), &n, &err), 0);
    assert_int_equal(n, 2);
    tdb_close(db);
    fio_rmtree(dir);
    free(dir);
}

static void db_drop_removes_collection_and_files(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    tdb_error err;
    assert_int_equal(create(db, "{\"name\":\"c\",\"dimension\":1}", &err), 0);
    size_t n;
    const char *up = "{\"documents\":[{\"id\":\"a\",\"vector\":[1]}]}";
    assert_int_equal(tdb_upsert_json(db, "c", up, strlen(up), &n, &err), 0);
    assert_int_equal(tdb_collection_drop(db, "c", false, &err), 0);
    assert_int_equal(tdb_collection_drop(db, "c", false, &err), TDB_ENOTFOUND);
    assert_int_equal(tdb_collection_count(db), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/collections/1", dir);
    assert_false(fio_exists(path));
    /* A new collection of the same name starts empty. */
    assert_int_equal(create(db, "{\"name\":\"c\",\"dimension\":1}", &err), 0);
    char *out = NULL;
    assert_int_equal(tdb_get_json(db, "c", "a", 1, &out, &err), TDB_ENOTFOUND);
    tdb_close(db);
    db = open_db(dir);
    assert_int_equal(tdb_collection_count(db), 1);
    tdb_close(db);
    fio_rmtree(dir);
    free(dir);
}

static void db_second_open_of_same_dir_is_refused(void **state) {
    (void)state;
    char *dir = make_dir();
    tdb_db *db = open_db(dir);
    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = dir;
    tdb_db *db2 = NULL;
    tdb_error err;
    assert_int_equal(tdb_open(&o, &db2, &err), TDB_EBUSY);
    assert_null(db2);
    tdb_close(db);
    fio_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(db_collection_survives_reopen),
        cmocka_unit_test(db_create_rejects_invalid_and_creates_nothing),
        cmocka_unit_test(db_upsert_rejects_bad_batch_atomically),
        cmocka_unit_test(db_list_pages_every_document_once_in_id_order),
        cmocka_unit_test(db_query_exact_l2_and_filter),
        cmocka_unit_test(db_drop_removes_collection_and_files),
        cmocka_unit_test(db_second_open_of_same_dir_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
