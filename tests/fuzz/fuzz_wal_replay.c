/*
 * fuzz_wal_replay.c: libFuzzer target for storage/wal.c: wal_replay over
 * a directory of hostile .wal files, then wal_open for append on what is
 * left, as collection recovery (storage/recovery.c) does.
 *
 * Input:
 *   byte 0   flags: bit 0 FUZZ_FLAG_FIX_CRC (recompute the file header's
 *            and every whole record's CRC32C); bit 1 name the files
 *            1.wal, 2.wal, ... by position instead of by the first seqno
 *            in their header; bits 2-3 pick after_seqno (0, 1, 3, 7), the
 *            checkpoint replay starts after.
 *   byte 1.. the WAL files, back to back, separated by the marker
 *            "WAL|" (at most FUZZ_WAL_MAX_FILES files).
 *
 * Properties checked (as recovery relies on them):
 *   - records reach the callback with seqnos above after_seqno, strictly
 *     rising; the report's count and last seqno agree with the callback;
 *   - wal_open with next seqno = last delivered + 1 succeeds on whatever
 *     replay reported (moving corrupt files aside, cutting a torn tail);
 *   - after one append, a second replay (from the checkpoint recovery
 *     would have by then) finds no damage and ends at the appended record.
 * Every upsert/delete payload is also decoded as recovery does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "storage/batch.h"
#include "storage/wal.h"
#include "storage/wal_format.h"
#include "util/crc32c.h"

#define FUZZ_WAL_MAX_FILES 8
#define FUZZ_WAL_MARKER "WAL|"
#define FUZZ_WAL_MARKER_LEN 4
#define FUZZ_WAL_DIMENSION 2

static void fix_crcs(uint8_t *p, size_t len) {
    if (len < WAL_FILE_HEADER_BYTES) return;
    fuzz_put_le32(p + WAL_FILE_CRC_OFFSET, crc32c(p, WAL_FILE_CRC_OFFSET));
    size_t off = WAL_FILE_HEADER_BYTES;
    while (len - off >= WAL_RECORD_HEADER_BYTES) {
        uint8_t *h = p + off;
        uint32_t plen = fuzz_le32(h + WAL_REC_LENGTH_OFFSET);
        if (plen > len - off - WAL_RECORD_HEADER_BYTES) break;
        uint32_t c = crc32c(h + WAL_RECORD_HEADER_BYTES, plen);
        c = crc32c_extend(c, h + WAL_REC_LENGTH_OFFSET, 4);
        c = crc32c_extend(c, h + WAL_REC_SEQNO_OFFSET, WAL_RECORD_HEADER_BYTES - WAL_REC_SEQNO_OFFSET);
        fuzz_put_le32(h + WAL_REC_CRC_OFFSET, c);
        off += WAL_RECORD_HEADER_BYTES + plen;
    }
}

typedef struct replay_state {
    uint64_t after;
    uint64_t count;
    uint64_t last;
    unsigned sum;
} replay_state;

static int on_record(void *ctx, uint64_t seqno, uint8_t type, const uint8_t *payload, size_t len) {
    replay_state *s = ctx;
    FUZZ_CHECK(seqno > s->after, "seqno %llu not after %llu", (unsigned long long)seqno,
               (unsigned long long)s->after);
    FUZZ_CHECK(s->count == 0 || seqno > s->last, "seqno %llu after %llu",
               (unsigned long long)seqno, (unsigned long long)s->last);
    s->count++;
    s->last = seqno;
    s->sum += fuzz_touch(payload, len);
    tdb_error err;
    if (type == BATCH_TYPE_UPSERT) {
        batch_doc *docs = NULL;
        size_t n = 0;
        if (batch_decode_upsert(payload, len, FUZZ_WAL_DIMENSION, &docs, &n, &err) == 0) {
            for (size_t i = 0; i < n; i++) {
                s->sum += fuzz_touch(docs[i].id, docs[i].id_len);
                s->sum += fuzz_touch(docs[i].attrs, docs[i].attrs_len);
                s->sum += fuzz_touch(docs[i].vector, FUZZ_WAL_DIMENSION * sizeof(float));
            }
        }
        free(docs);
    } else if (type == BATCH_TYPE_DELETE) {
        st_key *keys = NULL;
        size_t n = 0;
        if (batch_decode_delete(payload, len, &keys, &n, &err) == 0)
            for (size_t i = 0; i < n; i++) s->sum += fuzz_touch(keys[i].id, keys[i].id_len);
        free(keys);
    }
    return 0;
}

static const uint8_t *find_marker(const uint8_t *p, const uint8_t *end) {
    if (end - p < FUZZ_WAL_MARKER_LEN) return NULL;
    return memmem(p, (size_t)(end - p), FUZZ_WAL_MARKER, FUZZ_WAL_MARKER_LEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    if (!init) {
        fuzz_quiet_log();
        init = true;
    }
    if (size < 1) return 0;
    uint8_t flags = data[0];
    static const uint64_t afters[4] = {0, 1, 3, 7};
    uint64_t after = afters[(flags >> 2) & 3];

    char dir[600];
    fuzz_fresh_dir(dir, sizeof dir, "wal");

    const uint8_t *p = data + 1, *end = data + size;
    for (unsigned i = 0; i < FUZZ_WAL_MAX_FILES && p != NULL; i++) {
        const uint8_t *m = find_marker(p, end);
        const uint8_t *chunk_end = m ? m : end;
        size_t len = (size_t)(chunk_end - p);
        uint8_t *bytes = fuzz_dup(p, len);
        if (flags & FUZZ_FLAG_FIX_CRC) fix_crcs(bytes, len);
        uint64_t name_seqno = i + 1;
        if (!(flags & 2) && len >= WAL_FILE_FIRST_SEQNO_OFFSET + 8)
            name_seqno = fuzz_le64(bytes + WAL_FILE_FIRST_SEQNO_OFFSET);
        char path[700];
        snprintf(path, sizeof path, "%s/%020llu.wal", dir, (unsigned long long)name_seqno);
        if (access(path, F_OK) != 0) fuzz_write_file(path, bytes, len);
        free(bytes);
        p = m ? m + FUZZ_WAL_MARKER_LEN : NULL;
    }

    replay_state st = {.after = after};
    wal_replay_report rep;
    tdb_error err;
    int rc = wal_replay(dir, after, on_record, &st, &rep, &err);
    FUZZ_CHECK(rc == 0, "replay failed: %d %s", rc, err.message);
    FUZZ_CHECK(rep.records == st.count, "report %llu records, callback saw %llu",
               (unsigned long long)rep.records, (unsigned long long)st.count);
    FUZZ_CHECK(rep.last_seqno == (st.count ? st.last : after), "report last seqno %llu",
               (unsigned long long)rep.last_seqno);
    FUZZ_CHECK(memchr(rep.corrupt_file, '\0', sizeof rep.corrupt_file) != NULL, "unterminated");

    /* Recovery's next step: append after the last applied record. */
    uint64_t next = rep.last_seqno + 1;
    if (next == 0) return 0; /* seqno 2^64-1 was used: nothing can follow */
    wal_options wo = {.fsync = TDB_FSYNC_NONE, .fsync_interval_ms = 0, .file_max_bytes = 0};
    wal *w = NULL;
    rc = wal_open(dir, &wo, next, &rep, &w, &err);
    FUZZ_CHECK(rc == 0, "wal_open after replay failed: %d %s", rc, err.message);
    uint64_t seqno = 0;
    rc = wal_append(w, BATCH_TYPE_DELETE, "\x01\x00\x00\x00\x00", 5, &seqno, &err);
    FUZZ_CHECK(rc == 0 && seqno == next, "append: %d seqno %llu", rc, (unsigned long long)seqno);
    wal_close(w);

    /* The next recovery's checkpoint: recovery flushes the replayed
     * prefix before wal_open moves corrupt files aside (recovery.c step
     * 5), so after corruption it starts after the last replayed record. */
    uint64_t after2 = rep.corrupt ? rep.last_seqno : after;
    replay_state st2 = {.after = after2};
    rc = wal_replay(dir, after2, on_record, &st2, &rep, &err);
    FUZZ_CHECK(rc == 0, "second replay failed: %d %s", rc, err.message);
    FUZZ_CHECK(!rep.corrupt && rep.torn_bytes == 0,
               "damage left after wal_open: corrupt %d at %s:%llu, torn %llu", rep.corrupt,
               rep.corrupt_file, (unsigned long long)rep.corrupt_offset,
               (unsigned long long)rep.torn_bytes);
    FUZZ_CHECK(rep.last_seqno == next, "second replay ends at %llu, appended %llu",
               (unsigned long long)rep.last_seqno, (unsigned long long)next);
    return 0;
}
