/*
 * fuzz_manifest.c: libFuzzer target for storage/manifest.c (manifest_load
 * of a hostile DIR/MANIFEST).
 *
 * Input:
 *   byte 0   flags: bit 0 FUZZ_FLAG_FIX_CRC (recompute the trailing
 *            CRC32C over every byte before it).
 *   byte 1.. the MANIFEST file.
 *
 * Properties checked on a manifest that loads (manifest.h, invariants (3)
 * and (4) of manifest.c):
 *   - every segment id is below next_segment_id and listed once; deleted
 *     rows are strictly rising and below the segment's rows;
 *   - manifest_store of the loaded manifest writes back exactly the input
 *     bytes (the format has one encoding per manifest), and it loads again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "storage/manifest.h"
#include "util/crc32c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    if (!init) {
        fuzz_quiet_log();
        init = true;
    }
    if (size < 1) return 0;
    size_t len = size - 1;
    uint8_t *bytes = fuzz_dup(data + 1, len);
    if ((data[0] & FUZZ_FLAG_FIX_CRC) && len >= 4)
        fuzz_put_le32(bytes + len - 4, crc32c(bytes, len - 4));

    char dir[600], path[700];
    fuzz_fresh_dir(dir, sizeof dir, "manifest");
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    fuzz_write_file(path, bytes, len);

    manifest m;
    tdb_error err;
    int rc = manifest_load(dir, &m, &err);
    if (rc != 0) {
        FUZZ_CHECK(rc == TDB_ECORRUPT || rc == TDB_ENOMEM || rc == TDB_EIO, "unexpected code %d", rc);
        FUZZ_CHECK(m.segments == NULL && m.segment_count == 0, "segments left on failure");
        free(bytes);
        return 0;
    }
    for (size_t i = 0; i < m.segment_count; i++) {
        const manifest_segment *s = &m.segments[i];
        FUZZ_CHECK(s->id < m.next_segment_id, "segment %zu id not below next id", i);
        for (size_t j = 0; j < i; j++) FUZZ_CHECK(m.segments[j].id != s->id, "id listed twice");
        for (uint32_t k = 0; k < s->deleted_count; k++) {
            FUZZ_CHECK(s->deleted[k] < s->rows, "deleted row past rows");
            FUZZ_CHECK(k == 0 || s->deleted[k] > s->deleted[k - 1], "deleted rows not rising");
        }
    }

    char dir2[600];
    fuzz_fresh_dir(dir2, sizeof dir2, "manifest2");
    rc = manifest_store(dir2, &m, &err);
    FUZZ_CHECK(rc == 0, "storing a loaded manifest failed: %d %s", rc, err.message);
    char *back = NULL;
    size_t back_len = 0;
    snprintf(path, sizeof path, "%s/MANIFEST", dir2);
    FUZZ_CHECK(fio_read_file(path, &back, &back_len) == 0, "cannot read the stored MANIFEST");
    FUZZ_CHECK(back_len == len && memcmp(back, bytes, len) == 0,
               "store(load(x)) != x: %zu vs %zu bytes", back_len, len);
    free(back);
    manifest m2;
    rc = manifest_load(dir2, &m2, &err);
    FUZZ_CHECK(rc == 0 && m2.segment_count == m.segment_count, "reload failed: %d", rc);
    manifest_clear(&m2);
    manifest_clear(&m);
    free(bytes);
    return 0;
}
