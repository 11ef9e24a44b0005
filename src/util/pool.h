/*
 * pool.h: a small bounded pool of worker threads for background work
 * (flush, compaction, tier moves). Jobs run in submission order, at most
 * `threads` at once. Layer: util.
 * Ownership: pool_destroy waits for queued and running jobs, then frees.
 */
#ifndef TDB_UTIL_POOL_H
#define TDB_UTIL_POOL_H

#include <stddef.h>

typedef struct pool pool;
typedef void (*pool_fn)(void *arg);

pool *pool_create(size_t threads);      /* NULL on failure */
int pool_submit(pool *p, pool_fn fn, void *arg); /* 0, or -1 when stopping / out of memory */
void pool_destroy(pool *p);             /* NULL is a no-op */

#endif
