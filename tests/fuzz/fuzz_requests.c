/*
 * fuzz_requests.c: libFuzzer target for the request bodies of the JSON
 * API (the db layer, src/db/, called through include/tierdb.h):
 * collection create, upsert, query, delete, and the other strings a
 * client controls (list cursors, document ids).
 *
 * One database per process, opened in a scratch directory on the first
 * input, with two collections:
 *   "vecs"  dimension 3, cosine, declared attributes (one full-text);
 *   "texts" dimension 0 (text only), a full-text field with a language.
 * Input:
 *   byte 0   bits 0-2 the route: 0 create (the body is a collection
 *            config; a collection it creates is dropped again at once),
 *            1 upsert, 2 query, 3 delete by body, 4 list (the body is the
 *            cursor), 5 get (the body is the id), 6 delete one id (the
 *            body), 7 query again (queries are the largest surface);
 *            bit 3 the collection ("texts" when set).
 *   byte 1.. the body.
 *
 * Memtables hold 8 documents, so writes flush segments (and compact)
 * in the background and later requests read them.
 * State stays bounded: a collection is dropped and made anew after
 * FUZZ_RESET_WRITES successful writes, so the store never grows with the
 * run and inputs stay (nearly) independent of each other.
 *
 * Properties checked: every answer is either 0 with a response that
 * parses as JSON, or a TDB_E* code with a snake_case name and a message;
 * a 500-class code (TDB_EINTERNAL, TDB_ECORRUPT, TDB_EIO) on a request is
 * a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tierdb.h"
#include "util/json.h"

#define FUZZ_RESET_WRITES 64

static tdb_db *db;
static char data_dir[700];
static unsigned writes[2];

static const char *const names[2] = {"vecs", "texts"};
static const char *const configs[2] = {
    "{\"name\":\"vecs\",\"dimension\":3,\"metric\":\"cosine\","
    "\"attributes\":{\"title\":{\"type\":\"string\",\"full_text\":true},"
    "\"year\":{\"type\":\"int\"},\"price\":{\"type\":\"float\"},"
    "\"tags\":{\"type\":\"string[]\"},\"ok\":{\"type\":\"bool\"}}}",
    "{\"name\":\"texts\",\"dimension\":0,\"metric\":\"l2\","
    "\"attributes\":{\"body\":{\"type\":\"string\",\"full_text\":{\"language\":\"english\","
    "\"stemming\":true,\"stopwords\":true}},\"n\":{\"type\":\"int[]\"}}}",
};
/* A few documents so queries, deletes and lists meet data. */
static const char *const starters[2] = {
    "{\"documents\":[{\"id\":\"a1\",\"vector\":[0.1,0.2,0.3],"
    "\"attributes\":{\"title\":\"Hello red shoes\",\"year\":2024,\"tags\":[\"sale\"]}},"
    "{\"id\":\"a2\",\"vector\":[0.3,-0.4,1],\"attributes\":{\"title\":\"blue\",\"year\":2019}},"
    "{\"id\":7,\"vector\":[1,0,0]}]}",
    "{\"documents\":[{\"id\":\"t1\",\"attributes\":{\"body\":\"The running dogs\",\"n\":[1,2]}},"
    "{\"id\":\"t2\",\"attributes\":{\"body\":\"a cat runs\"}}]}",
};

static void db_close_at_exit(void) {
    tdb_close(db);
    db = NULL;
}

static void fresh_collection(int which) {
    tdb_error err;
    char *out = NULL;
    int rc = tdb_collection_drop(db, names[which], false, &err);
    FUZZ_CHECK(rc == 0 || rc == TDB_ENOTFOUND, "drop %s: %d %s", names[which], rc, err.message);
    rc = tdb_collection_create_json(db, configs[which], strlen(configs[which]), &out, &err);
    FUZZ_CHECK(rc == 0, "create %s: %d %s", names[which], rc, err.message);
    tdb_free(out);
    size_t n = 0;
    rc = tdb_upsert_json(db, names[which], starters[which], strlen(starters[which]), &n, &err);
    FUZZ_CHECK(rc == 0, "starter upsert into %s: %d %s", names[which], rc, err.message);
    writes[which] = 0;
}

static void db_init(void) {
    fuzz_quiet_log();
    snprintf(data_dir, sizeof data_dir, "%s/db", fuzz_root());
    tdb_options o;
    tdb_options_default(&o);
    o.data_dir = data_dir;
    o.fsync = TDB_FSYNC_NONE;
    o.background_threads = 1;
    o.worker_interval_ms = 0; /* no tiering cycles behind the fuzzer's back */
    o.test_clock = true;
    /* Small memtables: upserts then flush to segments (and compact) in the
     * background, so queries and deletes also meet segment files. */
    o.memtable_max_docs = 8;
    o.compaction_min_segments = 2;
    tdb_error err;
    int rc = tdb_open(&o, &db, &err);
    FUZZ_CHECK(rc == 0, "tdb_open %s: %d %s", data_dir, rc, err.message);
    /* Registered after fuzz_root's cleanup, so it runs first. */
    atexit(db_close_at_exit);
    fresh_collection(0);
    fresh_collection(1);
}

static void check_answer(const char *route, int rc, const tdb_error *err, char *out) {
    static int debug = -1;
    if (debug < 0) debug = getenv("FUZZ_DEBUG") != NULL;
    if (debug)
        fprintf(stderr, "%s: %d %s %.200s\n", route, rc, rc ? err->name : "",
                rc ? err->message : out ? out : "");
    if (rc == 0) {
        if (out != NULL) {
            json_doc *doc = NULL;
            json_error jerr;
            int prc = json_parse(out, strlen(out), &doc, &jerr);
            FUZZ_CHECK(prc == 0, "%s: response is not JSON (%s at %zu): %.300s", route,
                       jerr.message, jerr.offset, out);
            json_doc_free(doc);
        }
    } else {
        FUZZ_CHECK(out == NULL, "%s: response left on failure", route);
        FUZZ_CHECK(rc < 0 && rc >= TDB_EUNSUPPORTED, "%s: code %d", route, rc);
        FUZZ_CHECK(err->name[0] != '\0' && memchr(err->name, '\0', sizeof err->name) != NULL,
                   "%s: code %d without a name", route, rc);
        FUZZ_CHECK(memchr(err->message, '\0', sizeof err->message) != NULL, "%s: message", route);
        FUZZ_CHECK(rc != TDB_EINTERNAL && rc != TDB_ECORRUPT && rc != TDB_EIO,
                   "%s: server-side error %d (%s): %s", route, rc, err->name, err->message);
    }
    tdb_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (db == NULL) db_init();
    if (size < 1) return 0;
    unsigned route = data[0] & 7;
    int which = (data[0] >> 3) & 1;
    const char *name = names[which];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    tdb_error err;
    memset(&err, 0, sizeof err);
    char *out = NULL;
    size_t count = 0;
    int rc;

    switch (route) {
    case 0: {
        rc = tdb_collection_create_json(db, body, len, &out, &err);
        check_answer("create", rc, &err, out);
        if (rc == 0) {
            /* Drop what was made, by the name it reports. */
            char *info = NULL;
            json_doc *doc = NULL;
            json_error jerr;
            /* The name is in the body (create succeeded, so it parses). */
            FUZZ_CHECK(json_parse(body, len, &doc, &jerr) == 0, "created from a body that is not JSON");
            const json_value *n = json_get(json_root(doc), "name");
            FUZZ_CHECK(n != NULL && n->type == JSON_STRING, "created without a string name");
            rc = tdb_collection_get_json(db, n->str, &info, &err);
            check_answer("get collection", rc, &err, info);
            rc = tdb_collection_drop(db, n->str, false, &err);
            FUZZ_CHECK(rc == 0, "drop of a created collection: %d %s", rc, err.message);
            json_doc_free(doc);
        }
        break;
    }
    case 1:
        rc = tdb_upsert_json(db, name, body, len, &count, &err);
        check_answer("upsert", rc, &err, NULL);
        if (rc == 0 && ++writes[which] >= FUZZ_RESET_WRITES) fresh_collection(which);
        break;
    case 3:
        rc = tdb_delete_json(db, name, body, len, &count, &err);
        check_answer("delete", rc, &err, NULL);
        if (rc == 0 && count > 0) fresh_collection(which); /* keep the starter documents */
        break;
    case 4: {
        char *cursor = strndup(body, len);
        FUZZ_CHECK(cursor != NULL, "out of memory");
        rc = tdb_list_json(db, name, 2, cursor, true, &out, &err);
        check_answer("list", rc, &err, out);
        free(cursor);
        break;
    }
    case 5:
        rc = tdb_get_json(db, name, body, len, &out, &err);
        if (rc != TDB_ENOTFOUND) check_answer("get", rc, &err, out);
        break;
    case 6:
        rc = tdb_delete(db, name, body, len, &count, &err);
        check_answer("delete one", rc, &err, NULL);
        if (rc == 0 && count > 0) fresh_collection(which);
        break;
    default:
        rc = tdb_query_json(db, name, body, len, &out, &err);
        check_answer("query", rc, &err, out);
        break;
    }
    return 0;
}
