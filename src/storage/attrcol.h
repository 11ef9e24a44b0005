/*
 * attrcol.h: typed attribute columns of a segment file (section ATTRCOLS,
 * kind 6): per top-level attribute whose values in the segment fit one
 * type, each row's value as a tag plus dictionary codes, the dictionary
 * (numbers, strings or booleans) and the rows of every dictionary entry
 * (postings). The filter layer evaluates filters on them
 * (filter_columns_eval) instead of parsing every row's JSON.
 * Layer: storage. Built by seg_write from the rows it writes, validated and
 * used in place by seg_open. Format: attrcol.c and docs/formats/segment.md.
 *
 * Which attributes get a column: every top-level attribute whose values in
 * the segment are all numbers, all strings or all booleans, alone or in
 * arrays (arrays hold only such values, no null, nested array or object
 * inside), or null. A declared attribute always qualifies (the schema
 * enforces its type); an undeclared one qualifies when its values happen
 * to. Left out (evaluated from the JSON): attributes holding objects or
 * mixed types, a key given twice in one document, string columns whose
 * distinct values average more than ATTRCOL_MAX_AVG_STRING_BYTES (long
 * text, rarely filtered by value), and keys beyond ATTRCOL_MAX_COLUMNS.
 *
 * Also here: attrcol_filter, the st_filter_fn a query passes to storage. It
 * recognises rows that live in a segment with columns (by the address of
 * their id, seg_locate); once a query has asked for more than a few rows of
 * such a segment, it evaluates the filter on the whole segment from its
 * columns, once, and answers each later row from the result. Rows the
 * columns cannot decide, the first few rows of each segment, and rows
 * elsewhere (memtables, segments written without columns) are matched on
 * their JSON; the answers are the same either way.
 */
#ifndef TDB_STORAGE_ATTRCOL_H
#define TDB_STORAGE_ATTRCOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filter/filter.h"
#include "storage/segment.h"
#include "tierdb.h"

/* Columns per segment at most: each costs a builder at write time
 * (memory proportional to its values) and a linear name lookup per leaf. */
#define ATTRCOL_MAX_COLUMNS 64u
/* A string column whose distinct values average more bytes than this is
 * not built: long text would be stored a second time for filters that
 * rarely compare it by value. */
#define ATTRCOL_MAX_AVG_STRING_BYTES 128u

typedef struct attrcol attrcol;

/* Builds the ATTRCOLS section for rows (their attribute JSON). On success
 * *out is a malloc'd section the caller frees, or NULL with *len 0 when
 * no attribute qualifies (or there are no rows). TDB_ENOMEM on failure. */
int attrcol_build(const seg_row *rows, size_t n, void **out, size_t *len, tdb_error *err);

/* Validates a section of a segment of `rows` rows and returns a reader
 * over it (pointers into data, which must outlive it). On a malformed
 * section returns TDB_ECORRUPT with `why` describing the problem (the
 * caller adds the file and offset), or TDB_ENOMEM. */
int attrcol_open(const void *data, size_t len, uint64_t rows, attrcol **out, char *why,
                 size_t why_len);
void attrcol_free(attrcol *a); /* NULL is a no-op */

uint32_t attrcol_count(const attrcol *a);
/* The column of attribute (name, len): true and *out filled, or false. */
bool attrcol_find(const attrcol *a, const char *name, uint32_t len, filter_column *out);
/* Column i's attribute name (not NUL-terminated) and column. */
const char *attrcol_name(const attrcol *a, uint32_t i, uint32_t *len, filter_column *out);

/* The filter_columns of an opened segment (false when it has none). */
bool attrcol_segment_columns(const segment *s, filter_columns *out);

/* ---- a filter callback that uses the columns ---------------------------- */

/* One query's filter state: per segment, the rows the columns decided.
 * Initialise with attrcol_filter_init, pass attrcol_filter_cb as the
 * st_filter_fn and the attrcol_filter as its ctx, then attrcol_filter_done
 * (after the last call). Thread-safe: any number of threads may call the
 * callback at once. A segment's columns are used once the query has asked
 * for more than a few of its rows (attrcol.c says how many); before, and
 * for rows the columns cannot decide, the row's JSON answers. */
typedef struct attrcol_seg_state {
    uint64_t serial;              /* seg_serial of the segment */
    _Atomic uint64_t calls;       /* rows answered from JSON before the columns */
    _Atomic uint64_t matches;     /* ... and how many of them matched */
    _Atomic bool built;           /* evaluated (matched NULL: failed, use JSON) */
    uint64_t *matched;            /* bitset of the rows that match */
    uint64_t *undecided;          /* bitset of the rows to match on their JSON */
} attrcol_seg_state;

typedef struct attrcol_filter {
    const filter_expr *expr;
    uint64_t id;                  /* unique in the process (per-thread caches) */
    bool json_only;               /* never use columns (benchmarks, tests) */
    bool lazy;                    /* wait for a few rows before using columns
                                     (default; tests turn it off) */
    pthread_mutex_t mu;           /* guards segs, n_segs, cap_segs, evaluations */
    attrcol_seg_state **segs;     /* each allocated alone: pointers are stable */
    size_t n_segs, cap_segs;
    /* Rows answered from columns / from JSON (statistics for tests). */
    _Atomic uint64_t column_rows, json_rows;
} attrcol_filter;

/* json_only: match every row on its JSON, as before columns existed; the
 * environment variable TDB_FILTER_JSON=1 forces it for every query. */
void attrcol_filter_init(attrcol_filter *f, const filter_expr *expr, bool json_only);
void attrcol_filter_done(attrcol_filter *f);
/* st_filter_fn: ctx is the attrcol_filter. */
bool attrcol_filter_cb(void *ctx, const char *id, uint32_t id_len, const char *attrs,
                       uint32_t attrs_len);

#endif
