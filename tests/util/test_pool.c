/*
 * test_pool.c: the bounded worker pool: every job runs, FIFO order,
 * never more than `threads` at once, destroy drains the queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "util/pool.h"

#define DEADLINE_NS (10ull * 1000000000ull)

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void count_job(void *arg) { atomic_fetch_add((_Atomic int *)arg, 1); }

static void pool_runs_every_job_before_destroy_returns(void **state) {
    (void)state;
    _Atomic int done = 0;
    pool *p = pool_create(4);
    assert_non_null(p);
    for (int i = 0; i < 1000; i++) assert_int_equal(pool_submit(p, count_job, &done), 0);
    pool_destroy(p); /* drains the queue */
    assert_int_equal(atomic_load(&done), 1000);
}

typedef struct order_ctx {
    pthread_mutex_t mu;
    int seen[200];
    int n;
} order_ctx;

typedef struct order_job {
    order_ctx *ctx;
    int index;
} order_job;

static void order_fn(void *arg) {
    order_job *j = arg;
    pthread_mutex_lock(&j->ctx->mu);
    j->ctx->seen[j->ctx->n++] = j->index;
    pthread_mutex_unlock(&j->ctx->mu);
}

static void pool_single_thread_runs_jobs_in_submission_order(void **state) {
    (void)state;
    order_ctx ctx = {.mu = PTHREAD_MUTEX_INITIALIZER};
    order_job jobs[200];
    pool *p = pool_create(1);
    assert_non_null(p);
    for (int i = 0; i < 200; i++) {
        jobs[i] = (order_job){&ctx, i};
        assert_int_equal(pool_submit(p, order_fn, &jobs[i]), 0);
    }
    pool_destroy(p);
    assert_int_equal(ctx.n, 200);
    for (int i = 0; i < 200; i++) assert_int_equal(ctx.seen[i], i);
}

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int running;
    int max_running;
    int finished;
} gate;

static void gated_job(void *arg) {
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->running++;
    if (g->running > g->max_running) g->max_running = g->running;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    g->running--;
    g->finished++;
    pthread_mutex_unlock(&g->mu);
}

static void pool_never_runs_more_jobs_than_threads(void **state) {
    (void)state;
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pool *p = pool_create(3);
    assert_non_null(p);
    for (int i = 0; i < 10; i++) assert_int_equal(pool_submit(p, gated_job, &g), 0);
    /* Wait (with a deadline) until three jobs are inside the gate. */
    pthread_mutex_lock(&g.mu);
    uint64_t deadline = now_ns() + DEADLINE_NS;
    while (g.running < 3 && now_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&g.cv, &g.mu, &ts);
    }
    assert_int_equal(g.running, 3);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pool_destroy(p);
    assert_int_equal(g.finished, 10);
    assert_int_equal(g.max_running, 3);
}

typedef struct resubmit_ctx {
    pool *p;
    _Atomic int done;
} resubmit_ctx;

static void leaf_job(void *arg) { atomic_fetch_add(&((resubmit_ctx *)arg)->done, 1); }

static void parent_job(void *arg) {
    resubmit_ctx *c = arg;
    /* May fail only if destroy already began; here it has not (see test). */
    if (pool_submit(c->p, leaf_job, c) == 0) atomic_fetch_add(&c->done, 10);
}

static void pool_job_may_submit_another_job(void **state) {
    (void)state;
    resubmit_ctx c = {.p = pool_create(2)};
    assert_non_null(c.p);
    assert_int_equal(pool_submit(c.p, parent_job, &c), 0);
    uint64_t deadline = now_ns() + DEADLINE_NS;
    while (atomic_load(&c.done) != 11 && now_ns() < deadline) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL); /* polling with a deadline, not a sync sleep */
    }
    pool_destroy(c.p);
    assert_int_equal(atomic_load(&c.done), 11);
}

static void pool_create_rejects_zero_threads_and_destroy_null_is_noop(void **state) {
    (void)state;
    assert_null(pool_create(0));
    pool_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pool_runs_every_job_before_destroy_returns),
        cmocka_unit_test(pool_single_thread_runs_jobs_in_submission_order),
        cmocka_unit_test(pool_never_runs_more_jobs_than_threads),
        cmocka_unit_test(pool_job_may_submit_another_job),
        cmocka_unit_test(pool_create_rejects_zero_threads_and_destroy_null_is_noop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
