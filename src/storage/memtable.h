/*
 * memtable.h: the in-memory table of a collection's newest writes: every
 * version of every id written since the last flush, ordered by id, readable
 * by any number of threads without a lock while one writer inserts.
 * Layer: storage. Used by collection.c (apply, get, scan, search),
 * flush.c (writes a frozen memtable to a segment) and recovery.c (replay).
 *
 * Versions, not values: an overwrite or a delete inserts a new entry (a
 * tombstone for a delete) with a higher seqno and leaves the old one in
 * place until the whole memtable is freed. A reader therefore sees a
 * consistent snapshot by ignoring entries above its snapshot seqno, and a
 * pointer to an entry stays valid for as long as the reader holds a
 * reference to the memtable. (Overwritten versions count in mt_bytes, so
 * they push the table towards its flush like any other write.)
 *
 * Threading: one writer at a time (the caller serializes mt_insert; the
 * collection does it under its write lock) and any number of concurrent
 * readers without locks. Entries are published with release stores
 * bottom-up, so a reader that sees an entry sees all of its bytes.
 * Ownership: mt_entry_new allocates one block per entry (header, skiplist
 * links, vector, id and attributes); after mt_insert the memtable owns it.
 * mt_new returns one reference; mt_unref of the last frees every entry.
 */
#ifndef TDB_STORAGE_MEMTABLE_H
#define TDB_STORAGE_MEMTABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tallest skiplist tower. With a branching factor of 4, 12 levels index
 * 4^12 (16M) entries in O(log n); a memtable is flushed long before. */
#define MT_MAX_HEIGHT 12

typedef struct mt_entry {
    uint64_t seqno;       /* set by the writer before mt_insert */
    float norm;           /* |vector|, for cosine (0 for tombstones) */
    uint32_t id_len;
    uint32_t attrs_len;   /* 0 when the document has no attributes */
    uint32_t alloc_bytes; /* the whole block, for memory accounting */
    uint32_t row;         /* insertion number in its memtable (set by mt_insert) */
    bool tombstone;
    uint8_t height;       /* links in next[] */
    const char *id;       /* NUL-terminated, inside the block */
    const char *attrs;    /* NUL-terminated, inside the block; NULL when attrs_len is 0 */
    const float *vector;  /* dimension floats inside the block; NULL for tombstones / dim 0 */
    _Atomic(struct mt_entry *) next[]; /* height links, level 0 first */
} mt_entry;

typedef struct memtable memtable;

/* Allocates an entry (seqno 0; the writer sets it). vector points at
 * dimension little-endian float32 values, possibly unaligned (it may come
 * straight from a WAL payload); NULL for tombstones. attrs may be NULL.
 * Returns NULL when out of memory. */
mt_entry *mt_entry_new(const char *id, uint32_t id_len, const void *vector, uint32_t dimension,
                       const char *attrs, uint32_t attrs_len, bool tombstone);
/* Frees an entry that was never inserted. NULL is a no-op. */
void mt_entry_free(mt_entry *e);

/* A new empty memtable holding one reference; NULL when out of memory. */
memtable *mt_new(uint32_t dimension);
void mt_ref(memtable *m);
void mt_unref(memtable *m); /* NULL is a no-op */

/* A side structure that lives as long as the memtable (the collection's
 * text indexes of its rows): mt_unref of the last reference calls
 * aux_free(aux). Set once, right after mt_new. */
void mt_set_aux(memtable *m, void *aux, void (*aux_free)(void *));
void *mt_aux(const memtable *m);
/* Heap held by the side structure, as last measured by its owner (the
 * collection measures its text indexes as they grow): counted by
 * mt_memory_bytes, so memory the entries do not hold still pushes the
 * table towards its flush. Any thread may set it; readers see a value a
 * moment old at worst. */
void mt_set_aux_bytes(memtable *m, uint64_t bytes);
uint64_t mt_aux_bytes(const memtable *m);

/* Inserts e (the caller serializes writers) and numbers it: e->row is the
 * count of entries inserted before it, so rows run 0, 1, 2, ... No entry
 * with the same id and seqno may be present (one version per id per
 * write). Cannot fail. */
void mt_insert(memtable *m, mt_entry *e);

/* The newest version of id with seqno <= snapshot (possibly a tombstone),
 * or NULL. Lock-free; valid while the caller holds a reference to m. */
const mt_entry *mt_get(const memtable *m, const char *id, uint32_t id_len, uint64_t snapshot);

/* Walks ids in order, yielding for each id its newest version with seqno
 * <= snapshot (tombstones included; ids with no such version skipped). */
typedef struct mt_iter {
    const memtable *m;
    uint64_t snapshot;
    const mt_entry *cur; /* the version yielded, or NULL at the end */
} mt_iter;

/* Positions at the first id that is > key (after = true) or >= key
 * (after = false); key NULL means the first id. */
void mt_iter_seek(mt_iter *it, const memtable *m, uint64_t snapshot, const char *key,
                  uint32_t key_len, bool after);
void mt_iter_next(mt_iter *it);

/* Entries (all versions) and bytes held; read without locks, so a value
 * may be a moment old. mt_bytes counts the entries' blocks only;
 * mt_memory_bytes adds the side structure's (mt_set_aux_bytes) and is
 * what the flush trigger reads. */
uint64_t mt_count(const memtable *m);
uint64_t mt_bytes(const memtable *m);
uint64_t mt_memory_bytes(const memtable *m);
uint32_t mt_dimension(const memtable *m);

/* Checks the skiplist invariants: every level in (id ascending, seqno
 * descending) order, each level a subsequence of the one below, and the
 * count and bytes equal to what the entries add up to. Only while no
 * writer runs. */
bool mt_check(const memtable *m);

#endif
