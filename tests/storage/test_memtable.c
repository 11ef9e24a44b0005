/*
 * test_memtable.c: the memtable (storage/memtable.h): versions per id,
 * snapshots, tombstones, ordered iteration, memory accounting, and
 * lock-free readers running beside a writer.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/memtable.h"
#include "storage/segment.h"
#include "vec/vec.h"

#define DIM 4

static mt_entry *entry(const char *id, float x, uint64_t seqno) {
    float v[DIM] = {x, x + 1, x + 2, x + 3};
    char attrs[32];
    snprintf(attrs, sizeof attrs, "{\"x\":%g}", (double)x);
    mt_entry *e = mt_entry_new(id, (uint32_t)strlen(id), v, DIM, attrs, (uint32_t)strlen(attrs),
                               false);
    assert_non_null(e);
    e->seqno = seqno;
    return e;
}

static mt_entry *tombstone(const char *id, uint64_t seqno) {
    mt_entry *e = mt_entry_new(id, (uint32_t)strlen(id), NULL, DIM, NULL, 0, true);
    assert_non_null(e);
    e->seqno = seqno;
    return e;
}

static void memtable_get_finds_inserted_entry_with_its_bytes(void **state) {
    (void)state;
    memtable *m = mt_new(DIM);
    assert_non_null(m);
    mt_insert(m, entry("alpha", 1.5f, 1));
    const mt_entry *e = mt_get(m, "alpha", 5, UINT64_MAX);
    assert_non_null(e);
    assert_string_equal(e->id, "alpha");
    assert_int_equal(e->id_len, 5);
    assert_float_equal(e->vector[0], 1.5f, 0);
    assert_float_equal(e->vector[3], 4.5f, 0);
    float v[DIM] = {1.5f, 2.5f, 3.5f, 4.5f};
    assert_float_equal(e->norm, vec_norm(v, DIM), 0);
    assert_string_equal(e->attrs, "{\"x\":1.5}");
    assert_false(e->tombstone);
    assert_null(mt_get(m, "alph", 4, UINT64_MAX));
    assert_null(mt_get(m, "alphab", 6, UINT64_MAX));
    assert_true(mt_check(m));
    mt_unref(m);
}

static void memtable_newest_version_at_or_below_snapshot_wins(void **state) {
    (void)state;
    memtable *m = mt_new(DIM);
    mt_insert(m, entry("k", 1, 3));
    mt_insert(m, entry("k", 2, 7));
    mt_insert(m, entry("k", 3, 5)); /* out of order insertion of versions */
    assert_float_equal(mt_get(m, "k", 1, UINT64_MAX)->vector[0], 2, 0);
    assert_float_equal(mt_get(m, "k", 1, 6)->vector[0], 3, 0);
    assert_float_equal(mt_get(m, "k", 1, 5)->vector[0], 3, 0);
    assert_float_equal(mt_get(m, "k", 1, 4)->vector[0], 1, 0);
    assert_null(mt_get(m, "k", 1, 2));
    assert_int_equal(mt_count(m), 3);
    assert_true(mt_check(m));
    mt_unref(m);
}

static void memtable_tombstone_shadows_older_versions(void **state) {
    (void)state;
    memtable *m = mt_new(DIM);
    mt_insert(m, entry("k", 1, 1));
    mt_insert(m, tombstone("k", 2));
    const mt_entry *e = mt_get(m, "k", 1, UINT64_MAX);
    assert_non_null(e);
    assert_true(e->tombstone);
    assert_null(e->vector);
    assert_false(mt_get(m, "k", 1, 1)->tombstone);
    /* The iterator yields the tombstone (callers skip it) exactly once. */
    mt_iter it;
    mt_iter_seek(&it, m, UINT64_MAX, NULL, 0, false);
    assert_non_null(it.cur);
    assert_true(it.cur->tombstone);
    mt_iter_next(&it);
    assert_null(it.cur);
    mt_unref(m);
}

static int cmp_str(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    return seg_id_cmp(x, (uint32_t)strlen(x), y, (uint32_t)strlen(y));
}

static void memtable_iterates_ids_in_byte_order_once_each(void **state) {
    (void)state;
    enum { N = 2000 };
    memtable *m = mt_new(DIM);
    char *ids[N];
    uint64_t seqno = 1;
    srand(7);
    for (int i = 0; i < N; i++) {
        char buf[32];
        /* Mixed lengths and a shared prefix: "b" < "ba" < "bb". */
        snprintf(buf, sizeof buf, "%c%d", 'a' + rand() % 5, i * 7919 % 10007);
        ids[i] = strdup(buf);
        int versions = 1 + rand() % 3;
        for (int v = 0; v < versions; v++) mt_insert(m, entry(ids[i], (float)v, seqno++));
    }
    qsort(ids, N, sizeof *ids, cmp_str);
    assert_true(mt_check(m));
    mt_iter it;
    int i = 0;
    for (mt_iter_seek(&it, m, UINT64_MAX, NULL, 0, false); it.cur; mt_iter_next(&it), i++) {
        assert_true(i < N);
        assert_string_equal(it.cur->id, ids[i]);
        /* Newest version: no later entry of the same id has a higher seqno. */
        assert_ptr_equal(it.cur, mt_get(m, ids[i], it.cur->id_len, UINT64_MAX));
    }
    assert_int_equal(i, N);
    /* Seek after / at a key. */
    mt_iter_seek(&it, m, UINT64_MAX, ids[100], (uint32_t)strlen(ids[100]), true);
    assert_string_equal(it.cur->id, ids[101]);
    mt_iter_seek(&it, m, UINT64_MAX, ids[100], (uint32_t)strlen(ids[100]), false);
    assert_string_equal(it.cur->id, ids[100]);
    mt_iter_seek(&it, m, UINT64_MAX, ids[N - 1], (uint32_t)strlen(ids[N - 1]), true);
    assert_null(it.cur);
    for (int k = 0; k < N; k++) free(ids[k]);
    mt_unref(m);
}

static void memtable_iterator_hides_versions_above_snapshot(void **state) {
    (void)state;
    memtable *m = mt_new(DIM);
    mt_insert(m, entry("a", 1, 1));
    mt_insert(m, entry("b", 1, 2));
    mt_insert(m, entry("a", 2, 3));
    mt_insert(m, entry("c", 1, 4));
    mt_iter it;
    mt_iter_seek(&it, m, 2, NULL, 0, false);
    assert_string_equal(it.cur->id, "a");
    assert_int_equal(it.cur->seqno, 1);
    mt_iter_next(&it);
    assert_string_equal(it.cur->id, "b");
    mt_iter_next(&it);
    assert_null(it.cur); /* "c" is at seqno 4 */
    mt_unref(m);
}

static void memtable_accounts_every_entry_byte(void **state) {
    (void)state;
    memtable *m = mt_new(DIM);
    assert_int_equal(mt_bytes(m), 0);
    uint64_t expect = 0;
    for (int i = 0; i < 100; i++) {
        char id[16];
        snprintf(id, sizeof id, "id%03d", i);
        mt_entry *e = entry(id, (float)i, (uint64_t)i + 1);
        /* At least the vector, id and attributes are in the block. */
        assert_true(e->alloc_bytes >= DIM * sizeof(float) + strlen(id) + strlen(e->attrs));
        expect += e->alloc_bytes;
        mt_insert(m, e);
    }
    assert_int_equal(mt_bytes(m), expect);
    assert_int_equal(mt_count(m), 100);
    assert_true(mt_check(m));
    mt_unref(m);
}

static void memtable_copies_vectors_from_unaligned_bytes(void **state) {
    (void)state;
    float v[DIM] = {0.25f, -1, 3, 8};
    unsigned char raw[DIM * sizeof(float) + 1];
    memcpy(raw + 1, v, sizeof v);
    mt_entry *e = mt_entry_new("u", 1, raw + 1, DIM, NULL, 0, false);
    assert_non_null(e);
    assert_memory_equal(e->vector, v, sizeof v);
    assert_null(e->attrs);
    assert_int_equal(e->attrs_len, 0);
    assert_int_equal((uintptr_t)e->vector % 16, 0);
    mt_entry_free(e);
}

/* One writer inserts while readers walk: every walk must see strictly
 * increasing ids and only fully written entries. */
typedef struct race {
    memtable *m;
    _Atomic int done;
    _Atomic uint64_t visible; /* highest seqno the writer has finished */
} race;

static void *race_reader(void *arg) {
    race *r = arg;
    while (!atomic_load(&r->done)) {
        uint64_t snap = atomic_load(&r->visible);
        mt_iter it;
        const mt_entry *prev = NULL;
        uint64_t seen = 0;
        for (mt_iter_seek(&it, r->m, snap, NULL, 0, false); it.cur; mt_iter_next(&it)) {
            if (prev && seg_id_cmp(prev->id, prev->id_len, it.cur->id, it.cur->id_len) >= 0)
                return (void *)1;
            if (it.cur->vector[0] != (float)atoi(it.cur->id + 1)) return (void *)2;
            prev = it.cur;
            seen++;
        }
        /* Every id of seqno <= snap is visible (one id per seqno here). */
        if (seen < snap) return (void *)3;
    }
    return NULL;
}

static void memtable_readers_run_beside_a_writer(void **state) {
    (void)state;
    race r = {.m = mt_new(DIM)};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, race_reader, &r), 0);
    for (int i = 0; i < 20000; i++) {
        char id[16];
        snprintf(id, sizeof id, "k%d", (i * 7919) % 20000);
        float x = (float)((i * 7919) % 20000);
        mt_insert(r.m, entry(id, x, (uint64_t)i + 1));
        atomic_store(&r.visible, (uint64_t)i + 1);
    }
    atomic_store(&r.done, 1);
    for (int i = 0; i < 2; i++) {
        void *res;
        pthread_join(th[i], &res);
        assert_null(res);
    }
    assert_true(mt_check(r.m));
    mt_unref(r.m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memtable_get_finds_inserted_entry_with_its_bytes),
        cmocka_unit_test(memtable_newest_version_at_or_below_snapshot_wins),
        cmocka_unit_test(memtable_tombstone_shadows_older_versions),
        cmocka_unit_test(memtable_iterates_ids_in_byte_order_once_each),
        cmocka_unit_test(memtable_iterator_hides_versions_above_snapshot),
        cmocka_unit_test(memtable_accounts_every_entry_byte),
        cmocka_unit_test(memtable_copies_vectors_from_unaligned_bytes),
        cmocka_unit_test(memtable_readers_run_beside_a_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
