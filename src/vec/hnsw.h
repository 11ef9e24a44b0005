/*
 * hnsw.h: hierarchical navigable small-world graphs (Malkov & Yashunin,
 * "Efficient and robust approximate nearest neighbor search using HNSW
 * graphs", TPAMI 2018) over a segment's float vectors, optionally walked
 * on SQ8 or RaBitQ codes.
 * Layer: vec. Callers: storage (builds a blob at flush and compaction and
 * stores it as a segment section; opens a view on the mmap'd section),
 * the memtable (mutable index, hnsw_insert.c), db's query path
 * (hnsw_search, or vec_ann_search in plan.c which also chooses between
 * the graph and an exact scan for filtered queries). No storage or db
 * includes here.
 *
 * Files: hnsw.c (deviations from the paper, the blob format, view open and
 * validation), hnsw_build.c (parallel bulk build into a blob),
 * hnsw_insert.c (the mutable graph and INSERT, Algorithm 1, used by the
 * build and the memtable), hnsw_search.c (K-NN-SEARCH, Algorithm 5, on a
 * view, with filters and codes), hnsw_util.c (SEARCH-LAYER, Algorithm 2,
 * neighbour selection, Algorithm 4, distances, heaps, visited sets).
 *
 * Rows are uint32 (a segment holds fewer than 2^32 - 1 rows; UINT32_MAX is
 * the "no node" sentinel). Vectors are row-major, dim floats per row, with
 * no padding between rows (the segment's vectors section).
 *
 * Distances inside the graph ("internal") are monotonic in the API's:
 * l2 uses the squared distance, dot -<q,v>, cosine 1 - <q,v>/(|q||v|).
 * Results carry API distances (vec_hit.distance, API.md "Query").
 */
#ifndef TDB_VEC_HNSW_H
#define TDB_VEC_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"
#include "vec/vec.h"

/* ---- Parameters: DEFAULT / MIN / MAX (docs/vector.md) ----------------- */

/* m: links per node on levels >= 1; level 0 keeps 2 m (the paper's
 * M_max0 = 2M recommendation). Below 2 the graph is a list; above 100 the
 * lists cost more to scan than they save and the blob grows 8 bytes per
 * link per row. */
#define HNSW_M_DEFAULT 16u
#define HNSW_M_MIN 2u
#define HNSW_M_MAX 100u
/* ef_construction: breadth of the insertion search. It must reach m to
 * have m candidates to choose from; past 2000 build time grows with no
 * measurable recall left to gain. */
#define HNSW_EF_CONSTRUCTION_DEFAULT 200u
#define HNSW_EF_CONSTRUCTION_MIN 4u
#define HNSW_EF_CONSTRUCTION_MAX 2000u
/* ef: breadth of a query's search; raised to k when smaller. The maximum
 * equals API.md's top_k maximum so any top_k can be served. */
#define HNSW_EF_DEFAULT 64u
#define HNSW_EF_MIN 1u
#define HNSW_EF_MAX 10000u
/* Levels are drawn as floor(-ln(U) / ln(m)); U is a 53-bit uniform, so the
 * draw never exceeds 53 ln 2 / ln 2 = 53 even at m = 2; 60 bounds every
 * blob's level count (a byte per row holds it). */
#define HNSW_MAX_LEVEL 60u
/* The largest row count: row ids are uint32 and UINT32_MAX means none. */
#define HNSW_MAX_ROWS (UINT32_MAX - 1u)
#define HNSW_NONE UINT32_MAX
/* Build threads: 0 means every online core (a flush uses them all). */
#define HNSW_THREADS_MAX 256u

typedef struct hnsw_params {
    uint32_t m;               /* HNSW_M_* */
    uint32_t ef_construction; /* HNSW_EF_CONSTRUCTION_* */
    uint32_t threads;         /* build threads; 0 = online cores */
    uint64_t seed;            /* level draws; same seed + 1 thread = same graph */
} hnsw_params;

void hnsw_params_default(hnsw_params *p);
/* TDB_EINVAL with a message naming the field when out of range. */
int hnsw_params_check(const hnsw_params *p, tdb_error *err);

/* ---- Bulk build (hnsw_build.c) ---------------------------------------- */

/* Builds the graph of rows vectors (row-major, dim floats each; read only
 * during the call) with p->threads threads and returns it serialized:
 * *blob_out is malloc'ed (free() it), *len_out its length. rows may be 0.
 * For cosine the graph is built on unit-length copies (zero vectors stay
 * zero). Returns 0, TDB_EINVAL (parameters, dim, rows), TDB_ENOMEM. */
int hnsw_build(const float *vectors, uint32_t rows, uint32_t dim, tdb_metric metric,
               const hnsw_params *p, void **blob_out, size_t *len_out, tdb_error *err);
/* hnsw_build that gives up when *cancel (NULL: never) reads true: every
 * build thread checks it before each row. Returns TDB_ESHUTDOWN then,
 * with nothing allocated. */
int hnsw_build_cancellable(const float *vectors, uint32_t rows, uint32_t dim, tdb_metric metric,
                           const hnsw_params *p, const _Atomic bool *cancel, void **blob_out,
                           size_t *len_out, tdb_error *err);

/* ---- Read-only view on a blob (hnsw.c) ---------------------------------- */

typedef struct hnsw_view hnsw_view;
typedef struct sq8_view sq8_view;       /* vec/sq8.h */
typedef struct rabitq_view rabitq_view; /* vec/rabitq.h */

/* Validates blob (len bytes, 4-byte aligned, e.g. an mmap'd segment
 * section) once against the segment it belongs to (rows, dim, metric) and
 * returns a view searching it in place: no copy, no rebuild. vectors are
 * the segment's rows x dim floats; norms (|v| per row) are read for cosine
 * and may be NULL (then computed per distance). blob, vectors and norms are
 * borrowed: they must outlive the view. Returns 0, TDB_ECORRUPT (any bad
 * magic, version, count, offset, level, self-link, duplicate or
 * out-of-range link, or length), TDB_EINVAL (misaligned or mismatched
 * arguments), TDB_ENOMEM. Close with hnsw_view_close (NULL is a no-op). */
int hnsw_view_open(const void *blob, size_t len, uint32_t rows, uint32_t dim, tdb_metric metric,
                   const float *vectors, const float *norms, hnsw_view **out, tdb_error *err);
void hnsw_view_close(hnsw_view *v);

/* Makes searches walk the graph on codes (both borrowed, built over the
 * same rows; NULL detaches): SQ8 walks on SQ8 distances and re-ranks the
 * ef best by exact float distance; RaBitQ computes an exact distance only
 * for neighbours whose estimated lower bound could still enter the result
 * list. At most one kind is attached at a time. */
void hnsw_view_use_sq8(hnsw_view *v, const sq8_view *codes);
void hnsw_view_use_rabitq(hnsw_view *v, const rabitq_view *codes);

uint32_t hnsw_view_rows(const hnsw_view *v);
uint32_t hnsw_view_m(const hnsw_view *v);
uint32_t hnsw_view_ef_construction(const hnsw_view *v);
uint32_t hnsw_view_max_level(const hnsw_view *v);
/* Links stored in the blob (all levels): for stats and tests. */
uint64_t hnsw_view_links(const hnsw_view *v);
/* Debug check of the view's invariants (for assert and tests): true when
 * every invariant hnsw_view_open established still holds. */
bool hnsw_view_check(const hnsw_view *v);

/* ---- Search (hnsw_search.c) --------------------------------------------- */

/* Per-thread search state (visited tags, heaps), reused across queries to
 * avoid per-query allocation. Not thread-safe: one per searching thread.
 * hnsw_scratch_free(NULL) is a no-op. */
typedef struct hnsw_scratch hnsw_scratch;
hnsw_scratch *hnsw_scratch_new(void);
void hnsw_scratch_free(hnsw_scratch *s);

/* Counters of one search, for planners and benchmarks. */
typedef struct hnsw_stats {
    uint64_t distances;      /* float distances computed */
    uint64_t code_distances; /* distances on codes */
    uint64_t visited;        /* nodes whose links were read */
    bool completed;          /* the exact completion pass ran (see below) */
} hnsw_stats;

typedef struct hnsw_query {
    const float *vector;      /* dim floats */
    uint32_t k;               /* results wanted, >= 1 */
    uint32_t ef;              /* 0 = HNSW_EF_DEFAULT; raised to k */
    const vec_filter *filter; /* NULL = every row */
} hnsw_query;

/* K-NN-SEARCH (Algorithm 5) on a view. Writes up to k hits to out, best
 * first (ties by smaller row), *n_out = their count. With a filter the
 * walk still steps through rows the filter rejects (they keep the graph
 * connected) but only accepted rows enter the results, and when the walk
 * ends with fewer than k results while unvisited rows remain, an exact
 * pass over them completes the answer, so *n_out is min(k, matches).
 * scratch may be NULL (allocated for the call); stats may be NULL.
 * Returns 0, TDB_EINVAL, TDB_ENOMEM. Any number of threads may search one
 * view at once, each with its own scratch. */
int hnsw_search(const hnsw_view *v, const hnsw_query *q, hnsw_scratch *scratch, vec_hit *out,
                uint32_t *n_out, hnsw_stats *stats, tdb_error *err);

/* ---- Mutable index for the memtable (hnsw_insert.c) ---------------------- */

/* A growing graph with a fixed row capacity (the memtable's maximum
 * document count): rows are inserted in any order by row id, each once,
 * while other threads search. The index copies every inserted vector. */
typedef struct hnsw_index hnsw_index;

/* Returns 0, TDB_EINVAL, TDB_ENOMEM; free with hnsw_index_free (NULL is a
 * no-op; no search or insert may be running). */
int hnsw_index_new(uint32_t capacity, uint32_t dim, tdb_metric metric, const hnsw_params *p,
                   hnsw_index **out, tdb_error *err);
void hnsw_index_free(hnsw_index *ix);
/* Inserts row (< capacity, not inserted before) with vector (copied).
 * Thread-safe against other inserts and searches. Returns 0, TDB_EINVAL
 * (row out of range or already inserted), TDB_ENOMEM (the row then stays
 * claimed and is never inserted). */
int hnsw_index_insert(hnsw_index *ix, uint32_t row, const float *vector, tdb_error *err);
/* Rows inserted so far. */
uint32_t hnsw_index_count(const hnsw_index *ix);
/* As hnsw_search, on the rows inserted so far (codes are not used). */
int hnsw_index_search(const hnsw_index *ix, const hnsw_query *q, hnsw_scratch *scratch,
                      vec_hit *out, uint32_t *n_out, hnsw_stats *stats, tdb_error *err);
/* Debug check of the graph's invariants (no search or insert running):
 * links in range, no self-links, counts within m / 2m, levels consistent. */
bool hnsw_index_check(const hnsw_index *ix);

#endif
