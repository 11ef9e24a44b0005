/*
 * test_policy.c: the tiering policy's decisions and access tracking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tier/tier.h"

#define H (3600LL * 1000)
#define D (24 * H)

static const tier_policy policy = {6 * H, 7 * D, 1 * H, 10};

static tier_access accessed_at(int64_t t) {
    tier_access a = {0};
    tier_access_record(&a, t, policy.access_window_ms);
    return a;
}

static void policy_idle_hot_goes_warm_after_hot_ttl_not_before(void **state) {
    (void)state;
    tier_access a = accessed_at(1000);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_HOT, false, &a, 0, 1000 + 5 * H),
                     TIER_MOVE_NONE);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_HOT, false, &a, 0, 1000 + 6 * H),
                     TIER_MOVE_HOT_TO_WARM);
}

static void policy_pinned_is_never_demoted(void **state) {
    (void)state;
    tier_access a = accessed_at(1000);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_HOT, true, &a, 0, 1000 + 30 * D),
                     TIER_MOVE_NONE);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_WARM, true, &a, 0, 1000 + 30 * D),
                     TIER_MOVE_NONE);
}

static void policy_idle_warm_goes_cold_after_warm_ttl(void **state) {
    (void)state;
    tier_access a = accessed_at(1000);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_WARM, false, &a, 0, 1000 + 6 * D + 7 * H),
                     TIER_MOVE_NONE);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_WARM, false, &a, 0, 1000 + 7 * D),
                     TIER_MOVE_WARM_TO_COLD);
}

static void policy_busy_warm_goes_hot_within_the_window_only(void **state) {
    (void)state;
    tier_access a = {0};
    for (int i = 0; i < 9; i++) tier_access_record(&a, 1000 + i * 60000, policy.access_window_ms);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_WARM, false, &a, 0, 1000 + 10 * 60000),
                     TIER_MOVE_NONE);
    tier_access_record(&a, 1000 + 9 * 60000, policy.access_window_ms);
    assert_int_equal(a.window_count, 10);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_WARM, false, &a, 0, 1000 + 10 * 60000),
                     TIER_MOVE_WARM_TO_HOT);
    /* The window has passed: the burst no longer counts. */
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_WARM, false, &a, 0, 1000 + 2 * H),
                     TIER_MOVE_NONE);
    /* An access after the window restarts it. */
    tier_access_record(&a, 1000 + 2 * H, policy.access_window_ms);
    assert_int_equal(a.window_count, 1);
    assert_int_equal(a.access_count, 11);
}

static void policy_cold_accessed_since_it_went_cold_comes_back(void **state) {
    (void)state;
    tier_access a = accessed_at(1000);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_COLD, false, &a, 2000, 3000),
                     TIER_MOVE_NONE);
    tier_access_record(&a, 2500, policy.access_window_ms);
    assert_int_equal(tier_policy_decide(&policy, TDB_TIER_COLD, false, &a, 2000, 3000),
                     TIER_MOVE_COLD_TO_WARM);
    assert_string_equal(tier_move_name(TIER_MOVE_COLD_TO_WARM), "cold_to_warm");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(policy_idle_hot_goes_warm_after_hot_ttl_not_before),
        cmocka_unit_test(policy_pinned_is_never_demoted),
        cmocka_unit_test(policy_idle_warm_goes_cold_after_warm_ttl),
        cmocka_unit_test(policy_busy_warm_goes_hot_within_the_window_only),
        cmocka_unit_test(policy_cold_accessed_since_it_went_cold_comes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
