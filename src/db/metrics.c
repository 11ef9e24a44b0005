/*
 * metrics.c: the database's series for GET /metrics (tdb_metrics_text), in
 * the Prometheus text exposition format 0.0.4.
 * Layer: db. Reads the registry and each collection's state through the
 * accessors and locks of db_int.h; writes nothing and opens nothing.
 *
 * What a scrape costs: one pass over the registry (a reference to every
 * collection is taken under db->mu, then each is read under its own short
 * locks: state_mu for the tier state, mu for the storage statistics), so
 * a scrape never waits for I/O and never delays a request for longer than
 * those locks are held. With a million collections a scrape is one pass
 * over a million small structs.
 *
 * Sources, and what their numbers mean:
 *   - per tier (label tier="hot|warm|cold"): collections, live documents,
 *     indexed documents, segments, local disk bytes, memory bytes, object
 *     bytes of cold copies. A cold collection counts the documents of its
 *     cold copy; a warm one whose files are closed, those it had when
 *     they closed.
 *   - tier moves by kind (db->moves, counted by tiering.c).
 *   - WAL bytes and fsyncs, flushes, compactions: sums over collections of
 *     the engine's counters. They are counters of the collections that
 *     exist: dropping a collection removes its share (Prometheus' rate()
 *     treats the drop as a counter reset).
 *   - problems (the length of tdb_problems_json) and read-only collections
 *     (after an fsync failure).
 *   - the object store's counters (objstore_stats_get: atomics, no lock):
 *     calls by operation and outcome, failures by cause, retries by
 *     reason, HTTP requests, bytes up and down, and a latency histogram
 *     per operation. There is no cache to report hits and misses of: warm
 *     data is read through the kernel's page cache, cold data is
 *     downloaded whole when promoted.
 * Every family is written in one block, HELP then TYPE then its samples,
 * so a strict parser accepts it; each name starts with "tierdb_".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "util/error.h"

#define TIER_COUNT 3

typedef struct tier_totals {
    uint64_t collections;
    uint64_t pinned;
    uint64_t open;              /* storage open (files and memory held) */
    uint64_t documents;
    uint64_t indexed_documents;
    uint64_t segments;
    uint64_t disk_bytes;
    uint64_t memory_bytes;
    uint64_t object_bytes;
} tier_totals;

typedef struct db_totals {
    tier_totals tier[TIER_COUNT];
    uint64_t wal_bytes;
    uint64_t wal_fsyncs;
    uint64_t flushes;
    uint64_t compactions;
    uint64_t read_only;
} db_totals;

static const char *const tier_label[TIER_COUNT] = {"hot", "warm", "cold"};

/* Adds one collection to the totals (its locks are taken one at a time,
 * never nested: state_mu, then mu). */
static void add_collection(db_coll *c, db_totals *t) {
    pthread_mutex_lock(&c->state_mu);
    tdb_tier tier = c->tier;
    bool pinned = c->pinned;
    int64_t cold_documents = c->cold_documents;
    int64_t object_bytes = c->object_bytes;
    pthread_mutex_unlock(&c->state_mu);
    pthread_mutex_lock(&c->mu);
    bool open = c->st != NULL && !c->dropped;
    pthread_mutex_unlock(&c->mu);
    st_stats s;
    db_coll_stats(c, &s);
    if ((int)tier < 0 || (int)tier >= TIER_COUNT) tier = TDB_TIER_HOT;
    tier_totals *tt = &t->tier[tier];
    tt->collections++;
    tt->pinned += pinned;
    tt->open += open;
    if (tier == TDB_TIER_COLD) {
        /* Its local files are gone; the cold copy is what it holds. */
        tt->documents += cold_documents > 0 ? (uint64_t)cold_documents : 0;
        tt->indexed_documents += cold_documents > 0 ? (uint64_t)cold_documents : 0;
    } else {
        tt->documents += s.documents;
        tt->indexed_documents += s.indexed_documents;
        tt->segments += s.segments;
        tt->disk_bytes += s.disk_bytes;
        tt->memory_bytes += s.memory_bytes;
    }
    tt->object_bytes += object_bytes > 0 ? (uint64_t)object_bytes : 0;
    t->wal_bytes += s.wal_bytes_written;
    t->wal_fsyncs += s.wal_fsyncs;
    t->flushes += s.flushes;
    t->compactions += s.compactions;
    t->read_only += s.read_only;
}

static int gather(tdb_db *db, db_totals *t, tdb_error *err) {
    memset(t, 0, sizeof *t);
    size_t n = 0;
    db_coll **all = db_colls_ref(db, &n);
    if (all == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        add_collection(all[i], t);
        db_coll_put(all[i]);
    }
    free(all);
    return 0;
}

/* Number of entries in the problem list. */
static uint64_t problem_count(tdb_db *db) {
    char *text = NULL;
    uint64_t n = 0;
    if (tdb_problems_json(db, &text, NULL) != 0) return 0;
    json_doc *doc = NULL;
    json_error jerr;
    if (json_parse(text, strlen(text), &doc, &jerr) == 0 && json_root(doc)->type == JSON_ARRAY)
        n = json_root(doc)->len;
    json_doc_free(doc);
    tdb_free(text);
    return n;
}

static void family(buf *b, const char *name, const char *type, const char *help) {
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One family with a sample per tier; field is the offset of a uint64_t
 * in tier_totals. */
static void per_tier(buf *b, const db_totals *t, const char *name, const char *help, size_t field) {
    family(b, name, "gauge", help);
    for (int k = 0; k < TIER_COUNT; k++) {
        uint64_t v;
        memcpy(&v, (const char *)&t->tier[k] + field, sizeof v);
        buf_printf(b, "%s{tier=\"%s\"} %llu\n", name, tier_label[k], (unsigned long long)v);
    }
}

static void scalar(buf *b, const char *name, const char *type, const char *help, uint64_t v) {
    family(b, name, type, help);
    buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* The object store's series (docs/operations.md "Object-store series"). */
static void object_store_series(buf *b, const objstore *store) {
    objstore_stats st;
    objstore_stats_get(store, &st);
    const char *url = store ? objstore_url(store) : "";
    family(b, "tierdb_object_store_info", "gauge", "The object store in use (scheme file or s3); always 1.");
    buf_printf(b, "tierdb_object_store_info{scheme=\"%s\"} 1\n",
               strncmp(url, "s3://", 5) == 0 ? "s3" : "file");
    family(b, "tierdb_object_store_requests_total", "counter",
           "Object-store calls by operation and outcome (ok, not_found, error), retries included "
           "in one call.");
    for (int op = 0; op < OBJSTORE_OP_COUNT; op++)
        for (int o = 0; o < OBJSTORE_OUTCOME_COUNT; o++)
            buf_printf(b, "tierdb_object_store_requests_total{operation=\"%s\",outcome=\"%s\"} %llu\n",
                       objstore_op_name((objstore_op)op), objstore_outcome_name((objstore_outcome)o),
                       (unsigned long long)st.calls[op][o]);
    family(b, "tierdb_object_store_errors_total", "counter",
           "Object-store calls that failed (outcome error) by cause.");
    for (int c = 0; c < OBJSTORE_CAUSE_COUNT; c++)
        buf_printf(b, "tierdb_object_store_errors_total{cause=\"%s\"} %llu\n",
                   objstore_cause_name((objstore_cause)c), (unsigned long long)st.errors[c]);
    family(b, "tierdb_object_store_retries_total", "counter",
           "Object-store HTTP requests sent again after a transient failure, by reason.");
    for (int r = 0; r < OBJSTORE_RETRY_COUNT; r++)
        buf_printf(b, "tierdb_object_store_retries_total{reason=\"%s\"} %llu\n",
                   objstore_retry_reason_name((objstore_retry_reason)r),
                   (unsigned long long)st.retries[r]);
    scalar(b, "tierdb_object_store_http_requests_total", "counter",
           "HTTP requests sent to an S3 object store (retries and multipart parts included).",
           st.http_requests);
    scalar(b, "tierdb_object_store_uploaded_bytes_total", "counter",
           "Object bytes stored by successful puts.", st.uploaded_bytes);
    scalar(b, "tierdb_object_store_downloaded_bytes_total", "counter",
           "Object bytes read by successful gets and ranged gets.", st.downloaded_bytes);
    const char *h = "tierdb_object_store_request_duration_seconds";
    family(b, h, "histogram", "Duration of object-store calls by operation, retries included.");
    for (int op = 0; op < OBJSTORE_OP_COUNT; op++) {
        const char *name = objstore_op_name((objstore_op)op);
        uint64_t cum = 0;
        for (int k = 0; k < OBJSTORE_LATENCY_BUCKETS; k++) {
            cum += st.latency_buckets[op][k];
            buf_printf(b, "%s_bucket{operation=\"%s\",le=\"%g\"} %llu\n", h, name,
                       objstore_latency_bounds_s[k], (unsigned long long)cum);
        }
        cum += st.latency_buckets[op][OBJSTORE_LATENCY_BUCKETS];
        buf_printf(b, "%s_bucket{operation=\"%s\",le=\"+Inf\"} %llu\n", h, name,
                   (unsigned long long)cum);
        buf_printf(b, "%s_sum{operation=\"%s\"} %.6f\n", h, name,
                   (double)st.latency_us_sum[op] / 1e6);
        buf_printf(b, "%s_count{operation=\"%s\"} %llu\n", h, name, (unsigned long long)cum);
    }
}

int tdb_metrics_text(tdb_db *db, char **out, tdb_error *err) {
    *out = NULL;
    db_totals t;
    int rc = gather(db, &t, err);
    if (rc) return rc;
    buf b = BUF_INIT;
    per_tier(&b, &t, "tierdb_collections", "Collections by tier.", offsetof(tier_totals, collections));
    per_tier(&b, &t, "tierdb_collections_pinned", "Pinned collections (never demoted automatically) by tier.",
             offsetof(tier_totals, pinned));
    per_tier(&b, &t, "tierdb_collections_open",
             "Collections whose storage is open (files and memory held) by tier.", offsetof(tier_totals, open));
    per_tier(&b, &t, "tierdb_documents", "Live documents by tier (cold: those of the cold copy).",
             offsetof(tier_totals, documents));
    per_tier(&b, &t, "tierdb_indexed_documents", "Live documents in built indexes by tier.",
             offsetof(tier_totals, indexed_documents));
    per_tier(&b, &t, "tierdb_segments", "Segment files by tier.", offsetof(tier_totals, segments));
    per_tier(&b, &t, "tierdb_disk_bytes", "Local disk bytes (segments, WAL, manifest) by tier.",
             offsetof(tier_totals, disk_bytes));
    per_tier(&b, &t, "tierdb_memory_bytes", "Heap bytes held by collections (memtables, indexes) by tier.",
             offsetof(tier_totals, memory_bytes));
    per_tier(&b, &t, "tierdb_object_bytes", "Object-store bytes of cold copies by tier.",
             offsetof(tier_totals, object_bytes));
    family(&b, "tierdb_tier_moves_total", "counter", "Completed tier moves by kind.");
    for (int m = TIER_MOVE_HOT_TO_WARM; m <= TIER_MOVE_COLD_TO_WARM; m++)
        buf_printf(&b, "tierdb_tier_moves_total{kind=\"%s\"} %llu\n", tier_move_name((tier_move)m),
                   (unsigned long long)atomic_load(&db->moves[m]));
    family(&b, "tierdb_tier_move_failures_total", "counter",
           "Tier moves that did not complete by kind (failures, and moves deferred because the "
           "collection changed during the upload).");
    for (int m = TIER_MOVE_HOT_TO_WARM; m <= TIER_MOVE_COLD_TO_WARM; m++)
        buf_printf(&b, "tierdb_tier_move_failures_total{kind=\"%s\"} %llu\n",
                   tier_move_name((tier_move)m), (unsigned long long)atomic_load(&db->move_failures[m]));
    family(&b, "tierdb_tier_move_seconds_total", "counter",
           "Time spent in completed tier moves by kind (divide by tierdb_tier_moves_total for the "
           "mean move latency).");
    for (int m = TIER_MOVE_HOT_TO_WARM; m <= TIER_MOVE_COLD_TO_WARM; m++)
        buf_printf(&b, "tierdb_tier_move_seconds_total{kind=\"%s\"} %.6f\n",
                   tier_move_name((tier_move)m), (double)atomic_load(&db->move_us[m]) / 1e6);
    scalar(&b, "tierdb_hot_memory_budget_bytes", "gauge",
           "Memory budget of the hot tier; over it the least recently used hot collections are demoted.",
           db->hot_memory_budget);
    scalar(&b, "tierdb_wal_written_bytes_total", "counter",
           "Bytes appended to write-ahead logs (collections that exist).", t.wal_bytes);
    scalar(&b, "tierdb_wal_fsyncs_total", "counter", "fsync calls on write-ahead logs (collections that exist).",
           t.wal_fsyncs);
    scalar(&b, "tierdb_flushes_total", "counter", "Memtables flushed to segments (collections that exist).",
           t.flushes);
    scalar(&b, "tierdb_compactions_total", "counter", "Compactions run (collections that exist).",
           t.compactions);
    scalar(&b, "tierdb_read_only_collections", "gauge",
           "Collections refusing writes after an fsync failure (reopen to recover).", t.read_only);
    scalar(&b, "tierdb_problems", "gauge", "Problems listed by /health (e.g. a corrupt WAL record skipped).",
           problem_count(db));
    object_store_series(&b, db->store);
    if (buf_failed(&b)) {
        buf_free(&b);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory writing metrics");
    }
    *out = buf_steal(&b);
    return 0;
}
