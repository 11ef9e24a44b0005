/*
 * test_query_memory.c: the query memory estimator and budget (query.c):
 * estimates grow with what a query keeps and answers, never wrap, are
 * bounded by the collection's size; a query over the per-query cap is
 * refused, one over what remains waits and then gets overloaded, and
 * releasing lets the next one in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "db/db_int.h"
#include "util/error.h"

static db_query_shape vector_query(uint64_t top_k, uint64_t dim, bool vectors) {
    return (db_query_shape){.top_k = top_k, .depth = top_k, .dimension = dim, .segments = 0,
                            .documents = 1000000, .vector = true, .include_vector = vectors};
}

static void estimate_grows_with_what_a_query_holds(void **state) {
    (void)state;
    db_query_shape small = vector_query(10, 128, false);
    db_query_shape q = small;
    uint64_t base = db_query_estimate(&small);
    assert_true(base > 0);
    assert_true(base < (1u << 20)); /* a default query is cheap */
    q.include_vector = true;
    uint64_t with_vectors = db_query_estimate(&q);
    assert_true(with_vectors > base);
    q.top_k = q.depth = 10000;
    uint64_t big = db_query_estimate(&q);
    /* 10,000 answers of 128 floats as text: at least 10,000 x 128 x 4 bytes. */
    assert_true(big > 10000ull * 128 * 4);
    q.dimension = 4096;
    uint64_t bigger = db_query_estimate(&q);
    assert_true(bigger > 10000ull * 4096 * 4 * 2);
    /* More segments keep more candidates. */
    q.segments = 8;
    assert_true(db_query_estimate(&q) > bigger);
    /* A hybrid query keeps two lists. */
    db_query_shape h = small;
    h.text = true;
    assert_true(db_query_estimate(&h) > base);
    /* Attributes cost. */
    db_query_shape a = small;
    a.include_attrs = true;
    assert_true(db_query_estimate(&a) > base);
    /* A large ef costs frontier entries. */
    db_query_shape e = small;
    e.ef = 100000;
    assert_true(db_query_estimate(&e) > base);
}

static void estimate_is_bounded_by_the_collection_and_never_wraps(void **state) {
    (void)state;
    db_query_shape q = vector_query(10000, 4096, true);
    q.documents = 5;
    db_query_shape five = vector_query(5, 4096, true);
    assert_int_equal(db_query_estimate(&q), db_query_estimate(&five));
    q.documents = 0;
    assert_true(db_query_estimate(&q) < (1u << 20));
    db_query_shape huge = vector_query(UINT64_MAX, UINT64_MAX, true);
    huge.documents = UINT64_MAX;
    huge.segments = UINT64_MAX;
    huge.ef = UINT64_MAX;
    huge.text = true;
    huge.include_attrs = true;
    assert_true(db_query_estimate(&huge) == UINT64_MAX);
}

static void budget_refuses_over_cap_and_waits_for_room(void **state) {
    (void)state;
    db_query_memory_set(100u << 20, 40u << 20);
    db_query_memory m;
    db_query_memory_get(&m);
    assert_true(m.budget == 100u << 20 && m.per_query == 40u << 20 && m.used == 0);
    uint64_t refused0 = m.refused;
    tdb_error err;
    /* Over the per-query cap: refused at once, nothing charged. */
    assert_int_equal(db_query_memory_acquire(41u << 20, &err), TDB_EINVAL);
    assert_string_equal(err.name, "query_too_large");
    db_query_memory_get(&m);
    assert_true(m.used == 0 && m.refused == refused0 + 1);
    /* Up to the budget: charged. */
    assert_int_equal(db_query_memory_acquire(40u << 20, &err), 0);
    assert_int_equal(db_query_memory_acquire(40u << 20, &err), 0);
    db_query_memory_get(&m);
    assert_true(m.used == 80u << 20);
    /* Over what remains: waits, then overloaded (nothing charged). */
    assert_int_equal(db_query_memory_acquire(30u << 20, &err), TDB_EBUSY);
    assert_string_equal(err.name, "overloaded");
    db_query_memory_get(&m);
    assert_true(m.used == 80u << 20);
    /* Releasing makes room. */
    db_query_memory_release(40u << 20);
    assert_int_equal(db_query_memory_acquire(30u << 20, &err), 0);
    db_query_memory_release(30u << 20);
    db_query_memory_release(40u << 20);
    db_query_memory_get(&m);
    assert_true(m.used == 0);
    db_query_memory_set(0, 0); /* back to the defaults */
    db_query_memory_get(&m);
    assert_true(m.budget >= DB_QUERY_MEM_MIN && m.budget <= DB_QUERY_MEM_DEFAULT && m.per_query == m.budget / 4);
}

static void *release_later(void *arg) {
    usleep(100 * 1000);
    db_query_memory_release(*(uint64_t *)arg);
    return NULL;
}

static void a_waiting_query_runs_when_another_finishes(void **state) {
    (void)state;
    db_query_memory_set(100u << 20, 60u << 20);
    tdb_error err;
    uint64_t first = 60u << 20;
    assert_int_equal(db_query_memory_acquire(first, &err), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_later, &first), 0);
    /* Does not fit until the other thread releases (well inside the wait). */
    assert_int_equal(db_query_memory_acquire(50u << 20, &err), 0);
    pthread_join(t, NULL);
    db_query_memory_release(50u << 20);
    db_query_memory m;
    db_query_memory_get(&m);
    assert_true(m.used == 0);
    db_query_memory_set(0, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(estimate_grows_with_what_a_query_holds),
        cmocka_unit_test(estimate_is_bounded_by_the_collection_and_never_wraps),
        cmocka_unit_test(budget_refuses_over_cap_and_waits_for_room),
        cmocka_unit_test(a_waiting_query_runs_when_another_finishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
