/*
 * filter.h: the filter language of API.md ("Filter language"): compile a
 * Mongo-style JSON filter once per query into an immutable expression tree,
 * then match it against documents, build bitmaps of matching rows and
 * estimate its selectivity for the query planner.
 * Layer: filter. Uses util/ (json, errors) and CRoaring. Knows nothing of
 * storage or db: rows reach it through callbacks (filter_row_fn) and
 * documents as (id, attributes) pairs.
 *
 * The language in one paragraph (docs/filter.md has the full text):
 * {"field": value} is {"field": {"$eq": value}}; operators $eq $ne $gt $gte
 * $lt $lte $in $nin $exists $contains $prefix, and on a field also $not
 * (an object of operators, negated); combinators $and / $or (arrays of
 * filters) and $not (a filter); several keys in one object are ANDed; the
 * field "id" is the document id. Ints and floats compare as numbers
 * (exactly, also beyond 2^53), strings by their UTF-8 bytes, booleans only
 * equal booleans, null only equals null, any other mix is false. On an
 * array attribute an operator holds if any element satisfies it; $ne and
 * $nin are exactly NOT $eq and NOT $in; a missing attribute makes every
 * other operator false except {"$exists": false}. Choices API.md leaves
 * open (docs/filter.md): {} matches everything; an array operand of
 * $eq also matches an equal array as a whole (MongoDB); object operands
 * equal objects with the same members in any order; an integer written
 * for "id" means its decimal string; a key given twice in one object is
 * an error.
 *
 * How the db and storage layers call it, per query:
 *   1. filter_compile(request's "filter" value) -> filter_expr (a 400 with
 *      err->name "invalid_filter" on a bad filter). The JSON may be freed.
 *   2. Scans and exact searches: pass filter_match_cb as the st_filter_fn
 *      and the filter_expr as its ctx (it has the same signature).
 *   3. Planning a vector search over a segment: filter_selectivity_estimate
 *      (a sample of rows) decides between pre-filtering (build the bitmap
 *      with filter_bitmap_build, then search only its rows) and
 *      post-filtering (search the index, test candidates with filter_match).
 *      Once a bitmap is built, filter_selectivity_from_bitmap is exact.
 *   4. filter_free at the end of the query.
 *
 * Threading: a compiled filter_expr is immutable; any number of threads may
 * match, build bitmaps and estimate with it at once. Nothing here keeps
 * global or per-thread state.
 * Ownership: filter_compile copies every value it keeps; the filter_expr
 * owns all of its memory and filter_free releases it.
 */
#ifndef TDB_FILTER_FILTER_H
#define TDB_FILTER_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <roaring/roaring.h>

#include "tierdb.h"
#include "util/json.h"

/* Nesting of filter objects ($and/$or/$not and a field's $not), counting
 * the top object as 1. Matching recurses once per level for every row, so
 * this bounds stack use on hostile input; hand-written and generated
 * filters stay far below it (each level costs the JSON two nesting levels
 * of JSON_MAX_DEPTH anyway). */
#define FILTER_MAX_DEPTH 64

/* Values in one $in / $nin list. Lists are sorted at compile time and
 * searched by bisection, so matching stays O(log n) per value; the bound
 * keeps one query's compile cost and memory small while still admitting a
 * list of ids as long as the largest top_k (10000). */
#define FILTER_MAX_IN_VALUES 10000

/* Operator conditions (leaves) in one filter. Every candidate row may
 * evaluate each of them, so this bounds per-row work; a generated filter
 * of a few thousand "$or" branches still fits. */
#define FILTER_MAX_CONDITIONS 4096

/* Rows evaluated by filter_selectivity_estimate when the caller passes 0:
 * the standard error of a sampled fraction is at most 1/(2*sqrt(n)), about
 * 1.6% here, enough to tell a selective filter (pre-filter) from a broad
 * one (post-filter) for a few milliseconds of matching. */
#define FILTER_DEFAULT_SAMPLE_ROWS 1024

/* The API code name of every compile error (HTTP 400). */
#define FILTER_ERROR_NAME "invalid_filter"

typedef struct filter_expr filter_expr;

/* Compiles a filter (the parsed JSON value of a request's "filter"). On
 * success returns 0 and *out (freed with filter_free). On a malformed filter
 * returns TDB_EINVAL, err->name "invalid_filter" and a message that starts
 * with the path of the offending value, e.g.
 *   filter.$and[1].year: unknown operator "$gtx" (...)
 * TDB_ENOMEM when memory runs out. *out is NULL on failure. */
int filter_compile(const json_value *filter, filter_expr **out, tdb_error *err);

/* The same from JSON text (the CLI, tools, tests). A text that is not JSON
 * is TDB_EINVAL "invalid_filter" too. */
int filter_compile_text(const char *json, size_t len, filter_expr **out, tdb_error *err);

/* Frees everything the filter owns. NULL is a no-op. */
void filter_free(filter_expr *e);

/* True if document (id, attrs) matches. attrs is the document's attributes
 * object (NULL or a non-object: no attributes). id need not be
 * NUL-terminated. */
bool filter_match(const filter_expr *e, const char *id, uint32_t id_len, const json_value *attrs);

/* The same, from the attributes' JSON text (NULL or len 0: no attributes).
 * Parses the text only when the filter names an attribute other than id.
 * Text that does not parse (never written by tierdb) matches nothing. */
bool filter_match_text(const filter_expr *e, const char *id, uint32_t id_len,
                       const char *attrs_json, uint32_t len);

/* filter_match_text with the signature of storage's st_filter_fn: ctx is
 * the const filter_expr *. */
bool filter_match_cb(void *ctx, const char *id, uint32_t id_len, const char *attrs_json,
                     uint32_t len);

/* False when the filter reads only the document id (the attributes need not
 * be loaded or parsed to match it). */
bool filter_needs_attrs(const filter_expr *e);

/* ---- rows, bitmaps and selectivity ---------------------------------- */

/* One row as a visitor hands it over. The pointers need only stay valid
 * until the visitor is called again (or the calling function returns). */
typedef struct filter_row {
    const char *id;
    uint32_t id_len;
    const json_value *attrs;  /* parsed attributes, when the caller has them */
    const char *attrs_json;   /* else their JSON text (NULL/0: no attributes) */
    uint32_t attrs_len;
} filter_row;

/* The visitor's answer for a row that exists but must not be counted
 * (deleted, superseded): it is neither matched nor sampled. */
#define FILTER_ROW_SKIP 1

/* Fills *out with row number `row`. Returns 0, FILTER_ROW_SKIP, or a
 * negative TDB_E* code (filling err) to stop the walk with that error. */
typedef int (*filter_row_fn)(void *ctx, uint32_t row, filter_row *out, tdb_error *err);

/* Where rows come from: a segment's rows 0..row_count-1, or only the rows
 * of `candidates` (e.g. the live rows of a segment) when it is not NULL. */
typedef struct filter_rows {
    uint32_t row_count;                 /* rows are numbered 0..row_count-1 */
    const roaring_bitmap_t *candidates; /* NULL: every row; else only these */
    filter_row_fn get;
    void *ctx;
} filter_rows;

/* Visits every row of `rows` once, in increasing row order, and returns in
 * *out a new bitmap of the row numbers that match (freed by the caller with
 * roaring_bitmap_free). Returns 0, the visitor's error, or TDB_ENOMEM;
 * *out is NULL on failure. */
int filter_bitmap_build(const filter_expr *e, const filter_rows *rows, roaring_bitmap_t **out,
                        tdb_error *err);

/* A selectivity estimate: the fraction of rows that match. */
typedef struct filter_estimate {
    double selectivity; /* matched / evaluated: the point estimate, 0..1 */
    double upper95;     /* 95% upper confidence bound (Wilson score); equals
                           selectivity when exact */
    uint64_t evaluated; /* rows matched against the filter (skips excluded) */
    uint64_t matched;
    bool exact;         /* every row was evaluated */
} filter_estimate;

/* Estimates the fraction of rows of `rows` that match e.
 * Method: when there are at most sample_rows rows (0 means
 * FILTER_DEFAULT_SAMPLE_ROWS), every row is evaluated and the answer is
 * exact. Otherwise sample_rows row positions are drawn uniformly at random
 * with replacement (a splitmix64 stream from `seed`, so the answer is
 * reproducible) among the rows (or the candidates' ranks) and matched; rows
 * the visitor skips are not counted. The point estimate is the matched
 * fraction, with a Wilson 95% upper bound so a planner can be cautious when
 * few rows matched. When every row is evaluated but none counts (no rows,
 * or all skipped) the exact answer is 0; when every sampled row was skipped
 * the estimate is 0 with upper95 1 (nothing is known). Returns 0 or the
 * visitor's error (out is then zeroed). */
int filter_selectivity_estimate(const filter_expr *e, const filter_rows *rows, uint32_t sample_rows,
                                uint64_t seed, filter_estimate *out, tdb_error *err);

/* The exact estimate once the bitmap of matches is known: |matches| out of
 * total_rows (the rows the bitmap was built over, e.g. the live rows). */
void filter_selectivity_from_bitmap(const roaring_bitmap_t *matches, uint64_t total_rows,
                                    filter_estimate *out);

/* ---- typed attribute columns ----------------------------------------- */

/* A segment may hold, for some top-level attributes, a typed column
 * (storage/attrcol.h builds and validates them): each row's value reduced
 * to a tag and a list of atoms, the atoms numbered by a per-segment
 * dictionary, with the rows of every dictionary entry (postings).
 * filter_columns_eval answers a filter for every row of such a segment
 * from its columns (and its sorted ids), deciding each row as matching,
 * not matching, or undecided; only undecided rows need their JSON. */

/* A column's atoms are all of one kind. */
typedef enum filter_atom_kind {
    FILTER_ATOM_NUM = 0,  /* JSON numbers: (is_int, i64) or a double */
    FILTER_ATOM_STR = 1,  /* JSON strings, as bytes */
    FILTER_ATOM_BOOL = 2  /* false (code 0) and true (code 1) */
} filter_atom_kind;

/* What a row holds for the attribute. */
typedef enum filter_col_tag {
    FILTER_TAG_MISSING = 0, /* absent: no atoms */
    FILTER_TAG_NULL = 1,    /* null: no atoms */
    FILTER_TAG_SCALAR = 2,  /* one atom */
    FILTER_TAG_ARRAY = 3    /* an array of any number of atoms (no nested
                               arrays, objects or nulls inside) */
} filter_col_tag;

/* One column as the evaluator reads it (views into a mapping; nothing is
 * owned). Row r's atoms are codes[first[r] .. first[r+1]), each a
 * dictionary index. The evaluator needs no order in the dictionary: it
 * tests every entry with the same comparisons as filter_match, then maps
 * entries to rows, so a column gives exactly filter_match's answers as
 * long as it describes the rows' JSON. Codes >= dict_count are ignored. */
typedef struct filter_column {
    filter_atom_kind kind;
    uint32_t rows;
    const uint8_t *tags;          /* rows entries (filter_col_tag) */
    const uint32_t *first;        /* rows + 1 entries, non-decreasing */
    const uint32_t *codes;        /* first[rows] entries */
    uint32_t dict_count;
    const int64_t *num_i64;       /* NUM: the value when num_is_int[c] */
    const double *num_f64;        /* NUM: the value otherwise */
    const uint8_t *num_is_int;
    const uint64_t *str_offsets;  /* STR: entry c is str_bytes[off[c] .. off[c+1]) */
    const char *str_bytes;
    /* Postings (NULL when absent): the rows holding entry c, increasing,
     * are post_rows[post_offsets[c] .. post_offsets[c+1]). */
    const uint32_t *post_offsets;
    const uint32_t *post_rows;
} filter_column;

/* The columns of one segment of `rows` rows. */
typedef struct filter_columns {
    uint32_t rows;
    /* The column of attribute (name, len): true and *out filled, or false
     * when the attribute has none (its leaves are then undecided). */
    bool (*find)(const void *ctx, const char *name, uint32_t len, filter_column *out);
    /* Optional (NULL: leaves on id are undecided): the segment's ids are
     * sorted by byte order; returns the first row whose id is >= (strict:
     * >) the given bytes. */
    uint32_t (*id_bound)(const void *ctx, const char *id, uint32_t len, bool strict);
    const void *ctx;
} filter_columns;

/* Evaluates e on every row 0..rows-1 from the columns: *matched gets the
 * rows that certainly match, *undecided the rows the columns cannot decide
 * (leaves on attributes without a column, whole-array comparisons); every
 * other row certainly does not match. Both are new bitmaps the caller
 * frees with roaring_bitmap_free. Returns 0 or TDB_ENOMEM (both NULL). */
int filter_columns_eval(const filter_expr *e, const filter_columns *cols,
                        roaring_bitmap_t **matched, roaring_bitmap_t **undecided, tdb_error *err);

/* The filter language's order of numbers (exact between ints and floats):
 * -1, 0 or 1. Writers of columns use it to merge equal numbers. */
int filter_num_cmp(bool a_is_int, int64_t a_i64, double a_num, bool b_is_int, int64_t b_i64,
                   double b_num);

#endif
