/*
 * tier.h: the tier layer: access tracking, the policy that decides moves,
 * and the copies a move makes between a collection directory and the
 * object store.
 * Layer: tier. Uses objstore/ and util/ (and storage/manifest.h to know
 * which files make up a collection); knows nothing of db/. The db layer
 * (db/tiering.c) owns the state machine of a move, the locks and the
 * catalog commit; this layer supplies the pieces that do not need them.
 *
 * Object layout of a cold copy (docs/tiering.md):
 *   collections/<id>/<gen>/MANIFEST
 *   collections/<id>/<gen>/segments/<n>.seg
 *   collections/<id>/<gen>/FILES      written last: a JSON index
 *        {"format": 1, "files": [{"name", "size", "crc32c"}, ...]}
 * A copy whose FILES object is missing is incomplete and never read.
 */
#ifndef TDB_TIER_TIER_H
#define TDB_TIER_TIER_H

#include <stdbool.h>
#include <stdint.h>

#include "objstore/objstore.h"
#include "tierdb.h"

/* ---- Access tracking and policy ------------------------------------- */

typedef struct tier_policy {
    int64_t hot_ttl_ms;
    int64_t warm_ttl_ms;
    int64_t access_window_ms;
    uint32_t promotion_threshold;
} tier_policy;

/* Accesses of one collection. Updated under the collection's own mutex
 * (never a global lock): O(1) per access. */
typedef struct tier_access {
    int64_t last_access_ms;   /* last query, get or write */
    int64_t window_start_ms;  /* start of the current access window */
    uint32_t window_count;    /* accesses since window_start_ms */
    uint64_t access_count;    /* accesses ever */
} tier_access;

/* Records one access at now: a window older than window_ms restarts. */
void tier_access_record(tier_access *a, int64_t now_ms, int64_t window_ms);

typedef enum tier_move {
    TIER_MOVE_NONE = 0,
    TIER_MOVE_HOT_TO_WARM,
    TIER_MOVE_WARM_TO_COLD,
    TIER_MOVE_WARM_TO_HOT,
    TIER_MOVE_COLD_TO_WARM
} tier_move;

/* What the policy wants for a collection now (API.md "Tiering"): idle hot
 * -> warm after hot_ttl; idle warm -> cold after warm_ttl; warm with
 * promotion_threshold accesses in the current window -> hot; a cold
 * collection accessed since it went cold -> warm. Pinned collections are
 * never demoted. cold_since_ms is when a cold collection went cold. */
tier_move tier_policy_decide(const tier_policy *p, tdb_tier tier, bool pinned,
                             const tier_access *a, int64_t cold_since_ms, int64_t now_ms);

const char *tier_move_name(tier_move m);

/* ---- Copies between a directory and the object store ----------------- */

typedef struct tier_copy_info {
    uint64_t files;
    uint64_t bytes;         /* total object bytes of the copy */
    uint64_t manifest_len;  /* the MANIFEST bytes copied (0: none) ... */
    uint32_t manifest_crc;  /* ... and their CRC32C, to check at commit */
} tier_copy_info;

/* True when dir/MANIFEST still holds exactly the bytes info copied. */
bool tier_copy_current(const char *dir, const tier_copy_info *info);

/* Uploads the collection in dir (its MANIFEST and the segment files it
 * lists) under prefix ("collections/<id>/<gen>"), verifies each object's
 * size and CRC32C with a HEAD, then writes prefix/FILES. Fails (leaving
 * an incomplete copy that tier_copy_delete removes) if a file changes or
 * disappears meanwhile. */
int tier_copy_upload(objstore *store, const char *dir, const char *prefix, tier_copy_info *out,
                     tdb_error *err);

/* Downloads the copy under prefix into dir, which must not exist: files go
 * to dir.incoming/ (each verified against FILES and its CRC32C, fsync'd),
 * then dir.incoming is renamed to dir and the parent fsync'd. */
int tier_copy_download(objstore *store, const char *prefix, const char *dir, tdb_error *err);

/* Deletes every object under prefix. */
int tier_copy_delete(objstore *store, const char *prefix, tdb_error *err);

#endif
