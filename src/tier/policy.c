/*
 * policy.c: access tracking and the tiering policy's decisions.
 * Layer: tier. Pure functions of (state, policy, now): the db layer calls
 * them with the collection's own mutex held (tier_access_record) or on a
 * snapshot of the state (tier_policy_decide), so nothing here locks.
 */
#include "tier/tier.h"

void tier_access_record(tier_access *a, int64_t now_ms, int64_t window_ms) {
    if (a->window_start_ms == 0 || now_ms - a->window_start_ms >= window_ms ||
        now_ms < a->window_start_ms) {
        a->window_start_ms = now_ms;
        a->window_count = 0;
    }
    a->window_count++;
    a->access_count++;
    if (now_ms > a->last_access_ms) a->last_access_ms = now_ms;
}

tier_move tier_policy_decide(const tier_policy *p, tdb_tier tier, bool pinned,
                             const tier_access *a, int64_t cold_since_ms, int64_t now_ms) {
    int64_t idle_ms = now_ms - a->last_access_ms;
    bool window_live = now_ms - a->window_start_ms < p->access_window_ms;
    bool busy = window_live && a->window_count >= p->promotion_threshold;
    switch (tier) {
    case TDB_TIER_HOT:
        if (!pinned && idle_ms >= p->hot_ttl_ms) return TIER_MOVE_HOT_TO_WARM;
        return TIER_MOVE_NONE;
    case TDB_TIER_WARM:
        if (busy) return TIER_MOVE_WARM_TO_HOT;
        if (!pinned && idle_ms >= p->warm_ttl_ms) return TIER_MOVE_WARM_TO_COLD;
        return TIER_MOVE_NONE;
    case TDB_TIER_COLD:
        /* A busy collection never stays cold (API.md): any access since
         * it went cold brings it back to warm, the next cycle on to hot. */
        if (a->last_access_ms > cold_since_ms) return TIER_MOVE_COLD_TO_WARM;
        return TIER_MOVE_NONE;
    }
    return TIER_MOVE_NONE;
}

const char *tier_move_name(tier_move m) {
    switch (m) {
    case TIER_MOVE_HOT_TO_WARM: return "hot_to_warm";
    case TIER_MOVE_WARM_TO_COLD: return "warm_to_cold";
    case TIER_MOVE_WARM_TO_HOT: return "warm_to_hot";
    case TIER_MOVE_COLD_TO_WARM: return "cold_to_warm";
    default: return "none";
    }
}
