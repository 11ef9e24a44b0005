/*
 * recovery.c: opening a collection: directories, MANIFEST, segments, WAL
 * replay, and the WAL opened for appending (st_open).
 * Layer: storage. Shared state: collection_int.h; docs/storage.md.
 *
 * Steps:
 *   1. mkdir -p DIR, DIR/segments, DIR/wal.
 *   2. manifest_load (absent: empty). Files in segments/ that it does not
 *      list are leftovers of a flush or compaction that never committed,
 *      or of a replaced segment whose unlink was cut short (I7): removed,
 *      as are *.tmp files.
 *   3. seg_open each listed segment; its size and row count must match
 *      the MANIFEST (else TDB_ECORRUPT); its delete list becomes marks.
 *   4. wal_replay after the checkpoint through the same apply code as
 *      live writes (I1..I5 hold the same way). If the memtable fills up
 *      during a long replay, it is flushed (with no WAL open, the flush
 *      just writes a segment and a MANIFEST). A flush that fails without
 *      harm (a full disk: flush.c, "Failures") leaves the rest of the
 *      replay in memory, and the retry timer starts once the WAL is open.
 *   5. A torn tail is normal after a crash and only counted. A corrupt
 *      record mid-log stops replay there: the collection still opens with
 *      everything before it, the damage is logged and reported by
 *      st_recovery_get, and the replayed prefix is flushed to a segment
 *      BEFORE wal_open moves the damaged files aside, or it would exist
 *      nowhere durable.
 *   6. wal_open with next seqno = applied_seqno + 1.
 * A CRC-valid record the engine cannot decode is not damage the WAL can
 * see: open fails with TDB_ECORRUPT rather than skip it, since every later
 * record would be replayed past a hole.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/collection_int.h"
#include "storage/manifest.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/log.h"

#define ST_TMP_SUFFIX ".tmp"
#define ST_SEG_NAME_DIGITS 20

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Parses "<20 digits>.seg". */
static bool seg_name_parse(const char *name, uint64_t *id) {
    if (strlen(name) != ST_SEG_NAME_DIGITS + strlen(ST_SEG_SUFFIX)) return false;
    if (strcmp(name + ST_SEG_NAME_DIGITS, ST_SEG_SUFFIX) != 0) return false;
    uint64_t v = 0;
    for (int i = 0; i < ST_SEG_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *id = v;
    return true;
}

/* Step 2: removes segment files the MANIFEST does not list. */
static int remove_unlisted(st_collection *c, const manifest *m, tdb_error *err) {
    DIR *d = opendir(c->seg_dir);
    if (d == NULL)
        return tdb_err(err, TDB_EIO, "io_error", "cannot list %s: %s", c->seg_dir, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        uint64_t id;
        bool garbage = false;
        if (ends_with(name, ST_TMP_SUFFIX)) {
            garbage = true;
        } else if (seg_name_parse(name, &id)) {
            garbage = true;
            for (size_t i = 0; i < m->segment_count; i++)
                if (m->segments[i].id == id) garbage = false;
        }
        if (!garbage) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", c->seg_dir, name);
        log_msg(LOG_INFO, "collection %s: removing %s (not in the MANIFEST)", c->dir, path);
        int urc = fio_unlink(path);
        if (urc < 0 && urc != -ENOENT) {
            rc = tdb_err(err, TDB_EIO, "io_error", "cannot remove stale segment file %s: %s", path,
                         strerror(-urc));
            break;
        }
    }
    closedir(d);
    return rc;
}

/* Step 3. */
static int open_segments(st_collection *c, const manifest *m, tdb_error *err) {
    st_view *v = st_view_new(m->segment_count);
    memtable *mem = st_memtable_new(c);
    if (v == NULL || mem == NULL) {
        free(v);
        mt_unref(mem);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening %s", c->dir);
    }
    v->mem = mem;
    v->nsegs = 0;
    c->view = v; /* st_close releases whatever was opened so far */
    uint64_t live = 0;
    for (size_t i = 0; i < m->segment_count; i++) {
        const manifest_segment *ms = &m->segments[i];
        st_seg *s;
        int rc = st_seg_open(c, ms->id, &s, err);
        if (rc < 0) return rc;
        v->segs[v->nsegs++] = s;
        if (seg_file_bytes(s->seg) != ms->size_bytes || s->rows != ms->rows)
            return TDB_CORRUPT(err, s->path, 0,
                               "segment has %" PRIu64 " bytes and %" PRIu64 " rows, the MANIFEST "
                               "says %" PRIu64 " bytes and %" PRIu64 " rows",
                               seg_file_bytes(s->seg), s->rows, ms->size_bytes, ms->rows);
        uint64_t deleted = 0;
        for (uint32_t j = 0; j < ms->deleted_count; j++) {
            uint32_t row = ms->deleted[j];
            if (row >= s->rows)
                return TDB_CORRUPT(err, s->path, 0,
                                   "the MANIFEST deletes row %u of a %" PRIu64 "-row segment", row,
                                   s->rows);
            if (atomic_load(&s->marks[row]) != ST_MARK_LIVE) continue; /* listed twice */
            deleted++;
            st_mark_row(s, row, ST_MARK_BEFORE_OPEN);
        }
        live += s->rows - deleted;
    }
    c->live_docs = live;
    c->seg_live_rows = live;
    return 0;
}

/* Step 4: one WAL record. */
typedef struct replay_ctx {
    st_collection *c;
    uint64_t records;
    tdb_error *err;
} replay_ctx;

static int replay_record(void *arg, uint64_t seqno, uint8_t type, const uint8_t *payload,
                         size_t len) {
    replay_ctx *rx = arg;
    st_collection *c = rx->c;
    tdb_error *err = rx->err;
    batch_doc *docs = NULL;
    st_key *keys = NULL;
    size_t n = 0;
    int rc;
    if (seqno <= atomic_load(&c->applied_seqno))
        return tdb_err(err, TDB_ECORRUPT, "corrupt_data",
                       "WAL of %s: record %" PRIu64 " replayed after %" PRIu64, c->dir, seqno,
                       atomic_load(&c->applied_seqno));
    if (type == BATCH_TYPE_UPSERT) {
        rc = batch_decode_upsert(payload, len, c->dimension, &docs, &n, err);
    } else if (type == BATCH_TYPE_DELETE) {
        rc = batch_decode_delete(payload, len, &keys, &n, err);
        if (rc == 0 && n > 0) {
            docs = calloc(n, sizeof *docs);
            if (docs == NULL) rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory replaying");
            for (size_t i = 0; docs && i < n; i++) {
                docs[i].id = keys[i].id;
                docs[i].id_len = keys[i].id_len;
            }
        }
    } else {
        rc = tdb_err(err, TDB_ECORRUPT, "corrupt_data", "unknown record type %u", type);
    }
    st_prep prep = {0};
    if (rc == 0) rc = st_entries_prepare(c, docs, n, type == BATCH_TYPE_DELETE, &prep, err);
    if (rc < 0) {
        /* Name the record: the message goes to the log and to the caller. */
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err ? err->message : "");
        rc = tdb_err(err, rc, NULL, "WAL of %s, record %" PRIu64 ": %s", c->dir, seqno, msg);
        goto done;
    }
    bool over = st_apply(c, seqno, &prep, true, NULL);
    st_prep_free(&prep);
    rx->records++;
    if (over && c->flush_failures == 0) {
        /* Bounded memory for long logs: no WAL is open, so this writes a
         * segment and a MANIFEST whose checkpoint is this record. */
        pthread_mutex_lock(&c->flush_mu);
        rc = st_flush_locked(c, err);
        pthread_mutex_unlock(&c->flush_mu);
        /* A retryable failure (a full disk, say) keeps the memtables: the
         * replay goes on in memory, as the writes did before the restart,
         * and the retry timer takes over once the collection is open. */
        if (rc < 0 && !atomic_load(&c->read_only) && c->flush_failures > 0) rc = 0;
    }
done:
    free(docs);
    free(keys);
    return rc;
}

int st_recover(st_collection *c, tdb_error *err) {
    manifest m = {0};
    int rc;
    const char *dirs[] = {c->dir, c->seg_dir, c->wal_dir};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        rc = fio_mkdir_p(dirs[i]);
        if (rc < 0)
            return tdb_err(err, TDB_EIO, "io_error", "cannot create directory %s: %s", dirs[i],
                           strerror(-rc));
    }
    rc = manifest_load(c->dir, &m, err);
    if (rc < 0) goto done;
    atomic_store(&c->checkpoint_seqno, m.checkpoint_seqno);
    c->manifest_generation = m.generation;
    uint64_t next_id = m.next_segment_id ? m.next_segment_id : 1;
    for (size_t i = 0; i < m.segment_count; i++)
        if (m.segments[i].id >= next_id) next_id = m.segments[i].id + 1;
    atomic_store(&c->next_segment_id, next_id);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/MANIFEST", c->dir);
    int64_t msize = fio_file_size(path);
    atomic_store(&c->manifest_bytes, msize > 0 ? (uint64_t)msize : 0);

    rc = remove_unlisted(c, &m, err);
    if (rc < 0) goto done;
    rc = open_segments(c, &m, err);
    if (rc < 0) goto done;
    atomic_store(&c->applied_seqno, m.checkpoint_seqno);

    wal_replay_report rep;
    replay_ctx ctx = {c, 0, err};
    rc = wal_replay(c->wal_dir, m.checkpoint_seqno, replay_record, &ctx, &rep, err);
    if (rc < 0) goto done;

    st_recovery *r = &c->recovery;
    r->records_replayed = ctx.records;
    r->torn_bytes = rep.torn_bytes;
    r->corrupt = rep.corrupt;
    r->bytes_lost = rep.bytes_lost;
    if (rep.corrupt) {
        /* Bounded to fit st_recovery.message; the log line carries the
         * full path. */
        snprintf(r->message, sizeof r->message,
                 "WAL %.150s corrupt at offset %" PRIu64 ": replay stopped, %" PRIu64
                 " bytes not applied (kept as *.corrupt); %" PRIu64 " records recovered",
                 rep.corrupt_file, rep.corrupt_offset, rep.bytes_lost, ctx.records);
        log_msg(LOG_ERROR, "collection %s: WAL file %s corrupt at offset %" PRIu64
                           ": replay stopped, %" PRIu64 " bytes lost",
                c->dir, rep.corrupt_file, rep.corrupt_offset, rep.bytes_lost);
        /* Step 5: make the prefix durable before its files move aside. A
         * frozen memtable left by a failed replay flush goes first, then
         * the rest. */
        pthread_mutex_lock(&c->flush_mu);
        rc = st_flush_locked(c, err);
        if (rc == 0 && atomic_load(&c->checkpoint_seqno) != atomic_load(&c->applied_seqno))
            rc = st_flush_locked(c, err);
        pthread_mutex_unlock(&c->flush_mu);
        if (rc < 0) goto done;
    } else if (rep.torn_bytes > 0) {
        snprintf(r->message, sizeof r->message,
                 "dropped an incomplete last WAL record (%" PRIu64 " bytes), normal after a "
                 "crash; %" PRIu64 " records replayed",
                 rep.torn_bytes, ctx.records);
    } else {
        snprintf(r->message, sizeof r->message, "%" PRIu64 " WAL records replayed", ctx.records);
    }

    wal_options wo = {c->opts.fsync, c->opts.fsync_interval_ms, c->opts.wal_file_max_bytes};
    rc = wal_open(c->wal_dir, &wo, atomic_load(&c->applied_seqno) + 1, &rep, &c->wal, err);
done:
    manifest_clear(&m);
    return rc;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int st_open(const char *dir, uint32_t dimension, tdb_metric metric, const st_options *opts,
            st_collection **out, tdb_error *err) {
    *out = NULL;
    if (dir == NULL || dir[0] == '\0')
        return tdb_err(err, TDB_EINVAL, NULL, "a collection directory is required");
    if (dimension > ST_MAX_DIMENSION)
        return tdb_err(err, TDB_EINVAL, "invalid_dimension", "dimension %u is over the maximum %d",
                       dimension, ST_MAX_DIMENSION);
    if (metric != TDB_METRIC_COSINE && metric != TDB_METRIC_L2 && metric != TDB_METRIC_DOT)
        return tdb_err(err, TDB_EINVAL, "invalid_metric", "unknown metric %d", (int)metric);
    st_collection *c = calloc(1, sizeof *c);
    if (c == NULL) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening %s", dir);
    pthread_mutex_init(&c->flush_mu, NULL);
    pthread_mutex_init(&c->compact_mu, NULL);
    pthread_mutex_init(&c->manifest_mu, NULL);
    pthread_mutex_init(&c->write_mu, NULL);
    pthread_mutex_init(&c->view_mu, NULL);
    pthread_cond_init(&c->apply_cv, NULL);
    pthread_cond_init(&c->flush_cv, NULL);
    pthread_cond_init(&c->job_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* retry_timer_main's timed waits */
    pthread_cond_init(&c->retry_cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Writers first: a steady stream of text searches must not hold off
     * the apply of a write (collection_int.h, text_mu). */
    pthread_rwlockattr_t rwa;
    pthread_rwlockattr_init(&rwa);
    pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->text_mu, &rwa);
    pthread_rwlockattr_destroy(&rwa);
    c->dimension = dimension;
    c->metric = metric;
    if (opts) c->opts = *opts;
    else c->opts.fsync = TDB_FSYNC_ALWAYS;
    if (c->opts.memtable_max_bytes == 0) c->opts.memtable_max_bytes = ST_DEFAULT_MEMTABLE_MAX_BYTES;
    if (c->opts.memtable_max_docs == 0) c->opts.memtable_max_docs = ST_DEFAULT_MEMTABLE_MAX_DOCS;
    if (c->opts.compaction_min_segments == 0)
        c->opts.compaction_min_segments = ST_DEFAULT_COMPACTION_MIN_SEGMENTS;
    /* Graph parameters within the builder's bounds (vec/hnsw.h). */
    st_vector_index *vi = &c->opts.vector_index;
    if (vi->m > 0 && vi->m < HNSW_M_MIN) vi->m = HNSW_M_MIN;
    if (vi->m > HNSW_M_MAX) vi->m = HNSW_M_MAX;
    if (vi->ef_construction > 0 && vi->ef_construction < HNSW_EF_CONSTRUCTION_MIN)
        vi->ef_construction = HNSW_EF_CONSTRUCTION_MIN;
    if (vi->ef_construction > HNSW_EF_CONSTRUCTION_MAX)
        vi->ef_construction = HNSW_EF_CONSTRUCTION_MAX;
    if (vi->build_threads > HNSW_THREADS_MAX) vi->build_threads = HNSW_THREADS_MAX;
    if (vi->quantization != ST_QUANT_SQ8 && vi->quantization != ST_QUANT_RABITQ)
        vi->quantization = ST_QUANT_NONE;
    /* text_fields point into the caller's memory: copied here, and the
     * copy is what everything else reads. */
    c->opts.text_fields = NULL;
    c->opts.n_text_fields = 0;
    c->dir = strdup(dir);
    c->seg_dir = path_join(dir, ST_DIR_SEGMENTS);
    c->wal_dir = path_join(dir, ST_DIR_WAL);
    int rc;
    if (c->dir == NULL || c->seg_dir == NULL || c->wal_dir == NULL) {
        rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory opening %s", dir);
        goto fail;
    }
    if (opts) {
        rc = st_text_setup(c, opts, err);
        if (rc < 0) goto fail;
    }
    rc = st_recover(c, err);
    if (rc < 0) goto fail;
    *out = c;
    /* A replay may leave the memtable over its limit. */
    pthread_mutex_lock(&c->write_mu);
    bool due = st_flush_due_locked(c);
    pthread_mutex_unlock(&c->write_mu);
    if (due) st_schedule_flush(c);
    st_retry_timer_start(c); /* a flush failed during the replay */
    /* Segments without their graph (a crash before the index job ended,
     * a restore that wrote them): the index job, in the background. */
    atomic_store(&c->last_write_ns, clock_mono_ns());
    st_schedule_index(c);
    return 0;
fail:
    st_close(c);
    return rc;
}
