/*
 * pool.c: a bounded pool of worker threads running jobs in FIFO order
 * (pool.h). Layer: util. Used by storage/ (flush, compaction) and tier/.
 *
 * Invariants:
 *   (1) jobs start in submission order; at most `threads` run at once.
 *   (2) once pool_destroy has begun, pool_submit refuses new jobs, but
 *       every job accepted before runs to completion before destroy
 *       returns (callers rely on this to free what their jobs touch).
 *
 * Concurrency: `mu` guards the queue, `stopping` and `running`; workers
 * wait on `has_work`. A job runs without the lock, so a job may itself
 * call pool_submit (never pool_destroy: that would wait for itself).
 * Ownership: the pool owns its queue nodes; job arguments belong to the
 * job.
 */
#include "util/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

/* A pool larger than this is a configuration mistake, not a request we
 * should try to honour with thousands of threads. */
#define POOL_MAX_THREADS 256

typedef struct pool_job {
    pool_fn fn;
    void *arg;
    struct pool_job *next;
} pool_job;

struct pool {
    pthread_mutex_t mu;       /* guards everything below except threads */
    pthread_cond_t has_work;  /* signalled on submit and on stop */
    pool_job *head, *tail;    /* FIFO of jobs not yet started */
    bool stopping;            /* set by pool_destroy */
    size_t thread_count;      /* immutable after create */
    pthread_t *threads;       /* immutable after create */
};

static void *pool_worker(void *arg) {
    pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stopping) pthread_cond_wait(&p->has_work, &p->mu);
        /* Drain the queue even when stopping: invariant (2). */
        if (p->head == NULL) break;
        pool_job *j = p->head;
        p->head = j->next;
        if (p->head == NULL) p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

pool *pool_create(size_t threads) {
    if (threads == 0 || threads > POOL_MAX_THREADS) return NULL;
    pool *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->threads = calloc(threads, sizeof *p->threads);
    if (p->threads == NULL) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->has_work, NULL);
    for (size_t i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_worker, p) != 0) {
            /* Tear down the workers already started. */
            p->thread_count = i;
            pool_destroy(p);
            return NULL;
        }
    }
    p->thread_count = threads;
    return p;
}

int pool_submit(pool *p, pool_fn fn, void *arg) {
    pool_job *j = malloc(sizeof *j);
    if (j == NULL) return -1;
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return -1;
    }
    if (p->tail) p->tail->next = j;
    else p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void pool_destroy(pool *p) {
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->thread_count; i++) pthread_join(p->threads[i], NULL);
    /* Workers drained the queue; with no workers at all (a failed create)
     * nothing was ever submitted. */
    pthread_cond_destroy(&p->has_work);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
