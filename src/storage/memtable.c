/*
 * memtable.c: the memtable as a skiplist of versions ordered by
 * (id ascending, seqno descending), with lock-free readers.
 * Layer: storage. Interface and threading rules: memtable.h.
 *
 * Why a skiplist and not a hash map: scans page through ids in order
 * ("id > cursor, limit n") and flush writes rows sorted by id; a hash map
 * would sort the whole table for every page. A skiplist seeks in O(log n)
 * and, with a single writer, can be read with no lock at all (a writer
 * only ever adds links, publishing each with a release store), so queries
 * never wait for writers.
 *
 * Invariants:
 *   (1) level 0 holds every entry in strict (id asc, seqno desc) order;
 *       level i > 0 holds a subsequence of level i - 1 (mt_check).
 *   (2) entries are never unlinked or freed before the memtable itself:
 *       a reader holding a reference may keep entry pointers.
 *   (3) count and bytes are the number and the block sizes of the
 *       entries linked (plus nothing else), updated by the writer after
 *       linking.
 *
 * Concurrency: mt_insert is called by one thread at a time; next[] links
 * are atomics written with release and read with acquire, `height` is a
 * relaxed hint (a reader seeing a level before its first link just finds
 * NULL there and goes down). No locks.
 */
#include "storage/memtable.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "storage/segment.h"
#include "vec/vec.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vectors are copied from little-endian WAL payloads as they are"
#endif

/* Branching factor 4 (a level holds ~1/4 of the one below): fewer levels
 * than 1/2 for the same search cost, as LevelDB found. */
#define MT_BRANCH_BITS 2
#define MT_BRANCH_MASK ((1u << MT_BRANCH_BITS) - 1)
/* Vectors start on this boundary inside an entry so SIMD loads of the
 * first lanes never split a cache line needlessly. */
#define MT_VECTOR_ALIGN 16u

struct memtable {
    _Atomic uint32_t refs;
    uint32_t dimension;
    _Atomic int height;        /* levels in use, 1..MT_MAX_HEIGHT */
    _Atomic uint64_t count;
    _Atomic uint64_t bytes;
    _Atomic uint64_t aux_bytes; /* mt_set_aux_bytes: not part of invariant (3) */
    mt_entry *head;            /* sentinel with MT_MAX_HEIGHT links; no key */
    void *aux;                 /* side index of the collection, or NULL */
    void (*aux_free)(void *);
};

/* A process-wide counter mixed by splitmix64 picks tower heights: lock-free
 * for concurrent allocators and the same sequence on every run. */
static _Atomic uint64_t mt_height_counter;

static uint8_t mt_random_height(void) {
    uint64_t z = atomic_fetch_add_explicit(&mt_height_counter, 1, memory_order_relaxed);
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    uint8_t h = 1;
    while (h < MT_MAX_HEIGHT && (z & MT_BRANCH_MASK) == 0) {
        h++;
        z >>= MT_BRANCH_BITS;
    }
    return h;
}

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

mt_entry *mt_entry_new(const char *id, uint32_t id_len, const void *vector, uint32_t dimension,
                       const char *attrs, uint32_t attrs_len, bool tombstone) {
    uint8_t height = mt_random_height();
    bool has_vector = !tombstone && dimension > 0 && vector != NULL;
    if (tombstone) attrs_len = 0;
    size_t links_end = sizeof(mt_entry) + (size_t)height * sizeof(_Atomic(mt_entry *));
    size_t vec_off = align_up(links_end, MT_VECTOR_ALIGN);
    size_t id_off = vec_off + (has_vector ? (size_t)dimension * sizeof(float) : 0);
    size_t attrs_off = id_off + id_len + 1;
    size_t total = attrs_off + (attrs_len ? attrs_len + 1 : 0);
    if (total > UINT32_MAX) return NULL;
    /* aligned_alloc keeps the vector's 16-byte alignment meaningful. */
    mt_entry *e = aligned_alloc(MT_VECTOR_ALIGN, align_up(total, MT_VECTOR_ALIGN));
    if (e == NULL) return NULL;
    char *base = (char *)e;
    memset(e, 0, links_end);
    e->height = height;
    e->tombstone = tombstone;
    e->alloc_bytes = (uint32_t)total;
    e->id_len = id_len;
    char *idp = base + id_off;
    if (id_len) memcpy(idp, id, id_len);
    idp[id_len] = '\0';
    e->id = idp;
    if (has_vector) {
        float *v = (float *)(base + vec_off);
        memcpy(v, vector, (size_t)dimension * sizeof(float));
        e->vector = v;
        e->norm = vec_norm(v, dimension);
    }
    if (attrs_len) {
        char *ap = base + attrs_off;
        memcpy(ap, attrs, attrs_len);
        ap[attrs_len] = '\0';
        e->attrs = ap;
        e->attrs_len = attrs_len;
    }
    return e;
}

void mt_entry_free(mt_entry *e) { free(e); }

memtable *mt_new(uint32_t dimension) {
    memtable *m = calloc(1, sizeof *m);
    if (m == NULL) return NULL;
    size_t head_bytes = sizeof(mt_entry) + MT_MAX_HEIGHT * sizeof(_Atomic(mt_entry *));
    m->head = calloc(1, head_bytes);
    if (m->head == NULL) {
        free(m);
        return NULL;
    }
    m->head->height = MT_MAX_HEIGHT;
    for (int i = 0; i < MT_MAX_HEIGHT; i++) atomic_init(&m->head->next[i], NULL);
    atomic_init(&m->refs, 1);
    atomic_init(&m->height, 1);
    atomic_init(&m->count, 0);
    atomic_init(&m->bytes, 0);
    atomic_init(&m->aux_bytes, 0);
    m->dimension = dimension;
    return m;
}

void mt_ref(memtable *m) { atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); }

void mt_unref(memtable *m) {
    if (m == NULL) return;
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
    mt_entry *e = atomic_load_explicit(&m->head->next[0], memory_order_relaxed);
    while (e != NULL) {
        mt_entry *next = atomic_load_explicit(&e->next[0], memory_order_relaxed);
        free(e);
        e = next;
    }
    if (m->aux_free) m->aux_free(m->aux);
    free(m->head);
    free(m);
}

void mt_set_aux(memtable *m, void *aux, void (*aux_free)(void *)) {
    m->aux = aux;
    m->aux_free = aux_free;
}

void *mt_aux(const memtable *m) { return m->aux; }

/* Entry e sorts before the key (id, seqno): smaller id, or the same id and
 * a newer (greater) seqno, since versions run newest first. */
static inline bool entry_before(const mt_entry *e, const char *id, uint32_t id_len,
                                uint64_t seqno) {
    int c = seg_id_cmp(e->id, e->id_len, id, id_len);
    return c < 0 || (c == 0 && e->seqno > seqno);
}

static inline bool same_key(const mt_entry *a, const mt_entry *b) {
    return a != NULL && a->seqno == b->seqno && seg_id_cmp(a->id, a->id_len, b->id, b->id_len) == 0;
}

static inline mt_entry *link_acquire(const mt_entry *e, int level) {
    return atomic_load_explicit(&((mt_entry *)e)->next[level], memory_order_acquire);
}

/* The first entry whose key is >= (id, seqno), or NULL. With seqno 0 this
 * is the first entry with a greater id (every inserted seqno is >= 1). */
static const mt_entry *mt_seek(const memtable *m, const char *id, uint32_t id_len,
                               uint64_t seqno) {
    const mt_entry *x = m->head;
    int level = atomic_load_explicit(&((memtable *)m)->height, memory_order_relaxed) - 1;
    for (;;) {
        const mt_entry *nx = link_acquire(x, level);
        if (nx != NULL && entry_before(nx, id, id_len, seqno)) {
            x = nx;
        } else if (level == 0) {
            return nx;
        } else {
            level--;
        }
    }
}

void mt_insert(memtable *m, mt_entry *e) {
    assert(e->seqno > 0);
    /* Set before the entry is published: readers may use it at once. */
    e->row = (uint32_t)atomic_load_explicit(&m->count, memory_order_relaxed);
    assert(e->height >= 1 && e->height <= MT_MAX_HEIGHT);
    mt_entry *prev[MT_MAX_HEIGHT];
    int height = atomic_load_explicit(&m->height, memory_order_relaxed);
    mt_entry *x = m->head;
    for (int level = height - 1; level >= 0; level--) {
        mt_entry *nx;
        while ((nx = atomic_load_explicit(&x->next[level], memory_order_relaxed)) != NULL &&
               entry_before(nx, e->id, e->id_len, e->seqno))
            x = nx;
        prev[level] = x;
    }
    /* One version per id per seqno: the caller deduplicates a batch. */
    assert(!same_key(atomic_load_explicit(&prev[0]->next[0], memory_order_relaxed), e));
    if (e->height > height) {
        for (int level = height; level < e->height; level++) prev[level] = m->head;
        atomic_store_explicit(&m->height, e->height, memory_order_relaxed);
    }
    /* Bottom-up with release stores: once a reader can reach e at any
     * level, e's bytes and its lower links are visible to it. */
    for (int level = 0; level < e->height; level++) {
        atomic_store_explicit(&e->next[level],
                              atomic_load_explicit(&prev[level]->next[level], memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&prev[level]->next[level], e, memory_order_release);
    }
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->bytes, e->alloc_bytes, memory_order_relaxed);
}

const mt_entry *mt_get(const memtable *m, const char *id, uint32_t id_len, uint64_t snapshot) {
    const mt_entry *e = mt_seek(m, id, id_len, snapshot);
    if (e != NULL && seg_id_cmp(e->id, e->id_len, id, id_len) == 0) return e;
    return NULL;
}

/* From e onwards, the first entry visible at the snapshot: versions run
 * newest first, so the first visible one of an id is its newest. */
static const mt_entry *first_visible(const mt_entry *e, uint64_t snapshot) {
    while (e != NULL && e->seqno > snapshot) e = link_acquire(e, 0);
    return e;
}

void mt_iter_seek(mt_iter *it, const memtable *m, uint64_t snapshot, const char *key,
                  uint32_t key_len, bool after) {
    it->m = m;
    it->snapshot = snapshot;
    const mt_entry *e;
    if (key == NULL) e = link_acquire(m->head, 0);
    else e = mt_seek(m, key, key_len, after ? 0 : UINT64_MAX);
    it->cur = first_visible(e, snapshot);
}

void mt_iter_next(mt_iter *it) {
    const mt_entry *cur = it->cur;
    if (cur == NULL) return;
    const mt_entry *e = link_acquire(cur, 0);
    /* Skip the older versions of the id just yielded. */
    while (e != NULL && seg_id_cmp(e->id, e->id_len, cur->id, cur->id_len) == 0)
        e = link_acquire(e, 0);
    it->cur = first_visible(e, it->snapshot);
}

uint64_t mt_count(const memtable *m) {
    return atomic_load_explicit(&((memtable *)m)->count, memory_order_relaxed);
}

uint64_t mt_bytes(const memtable *m) {
    return atomic_load_explicit(&((memtable *)m)->bytes, memory_order_relaxed);
}

uint64_t mt_memory_bytes(const memtable *m) { return mt_bytes(m) + mt_aux_bytes(m); }

void mt_set_aux_bytes(memtable *m, uint64_t bytes) {
    atomic_store_explicit(&m->aux_bytes, bytes, memory_order_relaxed);
}

uint64_t mt_aux_bytes(const memtable *m) {
    return atomic_load_explicit(&((memtable *)m)->aux_bytes, memory_order_relaxed);
}

uint32_t mt_dimension(const memtable *m) { return m->dimension; }

bool mt_check(const memtable *m) {
    uint64_t count = 0, bytes = 0;
    int height = atomic_load_explicit(&((memtable *)m)->height, memory_order_relaxed);
    if (height < 1 || height > MT_MAX_HEIGHT) return false;
    for (int level = MT_MAX_HEIGHT - 1; level >= 0; level--) {
        const mt_entry *prev = NULL;
        const mt_entry *below = link_acquire(m->head, level > 0 ? level - 1 : 0);
        for (const mt_entry *e = link_acquire(m->head, level); e != NULL;
             e = link_acquire(e, level)) {
            if (level >= height || e->height <= level || e->seqno == 0) return false;
            if (prev != NULL && !entry_before(prev, e->id, e->id_len, e->seqno)) return false;
            if (level > 0) {
                /* e must appear on the level below, at or after `below`. */
                while (below != NULL && below != e) below = link_acquire(below, level - 1);
                if (below == NULL) return false;
            } else {
                count++;
                bytes += e->alloc_bytes;
            }
            prev = e;
        }
    }
    return count == mt_count(m) && bytes == mt_bytes(m);
}
