/*
 * parquet.h: streaming writer and reader of tierdb snapshot files, which
 * are Apache Parquet files that DuckDB, pandas/pyarrow or Spark read.
 * Layer: snapshot. Used by the snapshot and tier code (cold copies,
 * snapshots, restore). docs/formats/parquet.md is the user-facing version
 * of this contract; keep the two in step.
 *
 * Columns of a snapshot, in this order:
 *   id          required BYTE_ARRAY, STRING (UTF8)        the document id
 *   vector      required LIST of required FLOAT           3-level list:
 *                 required group vector (LIST) {
 *                   repeated group list { required float element; } }
 *               (DuckDB reads it as FLOAT[]; always present, empty lists
 *               when the dimension is 0)
 *   <attr>...   one per declared attribute, in declaration order:
 *                 string   optional BYTE_ARRAY, STRING
 *                 int      optional INT64
 *                 float    optional DOUBLE
 *                 bool     optional BOOLEAN
 *                 string[] optional LIST of required BYTE_ARRAY STRING
 *                 int[]    optional LIST of required INT64
 *               null where the document lacks the attribute or holds a
 *               value of another type. An attribute named id, vector or
 *               attributes, or repeating an earlier name, gets no column
 *               (its values are in `attributes`).
 *   attributes  required BYTE_ARRAY, STRING                the document's
 *               whole attributes object as JSON text ("{}" when none);
 *               the authoritative copy (declared columns are derived).
 *
 * Footer key-value metadata:
 *   tierdb.format      "1": the version of this layout (readers refuse
 *                      other values)
 *   tierdb.version     the tierdb version that wrote the file
 *   tierdb.collection  collection name            (when given)
 *   tierdb.dimension   decimal vector dimension
 *   tierdb.metric      "cosine" | "l2" | "dot"    (when given)
 *   tierdb.config      the collection config JSON (when given)
 *
 * Encodings written: data pages v1 (v2 on request); PLAIN values (RLE
 * booleans in v2 pages); RLE/bit-packed hybrid levels; dictionary (PLAIN
 * dictionary page + RLE_DICTIONARY indices) for a string column chunk
 * when its distinct values make it smaller; a CRC-32 in every page
 * header (unless disabled); pages cut at row boundaries near
 * page_max_bytes; ZSTD (default), SNAPPY or no compression.
 *
 * The reader reads those files and the same columns written by other
 * tools (checked against DuckDB's defaults and its V2 option): data pages
 * v1 and v2, dictionary pages, PLAIN, PLAIN_DICTIONARY/RLE_DICTIONARY,
 * RLE booleans, DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY,
 * DELTA_BYTE_ARRAY, BYTE_STREAM_SPLIT; UNCOMPRESSED, SNAPPY and ZSTD
 * (other codecs: TDB_EUNSUPPORTED); optional or required columns and
 * list elements; 3-level and 2-level lists. Columns of other types are
 * ignored. Every byte read from the file is validated: a malformed file
 * is TDB_ECORRUPT (naming the file and offset), never a crash.
 *
 * Memory: the writer holds one row group (bounded by row_group_max_rows
 * and row_group_max_bytes); the reader holds one decompressed page per
 * column and one row.
 *
 * Threads: a writer or reader is used by one thread at a time.
 */
#ifndef TDB_SNAPSHOT_PARQUET_H
#define TDB_SNAPSHOT_PARQUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"
#include "util/json.h"

/* Version of the snapshot layout above (metadata key tierdb.format). */
#define PQ_SNAPSHOT_FORMAT 1

/* Largest vector dimension the reader accepts (API.md: 1..4096, with
 * headroom for files of other tools). */
#define PQ_MAX_DIMENSION 65536

typedef enum pq_attr_type {
    PQ_ATTR_STRING = 0,
    PQ_ATTR_INT,
    PQ_ATTR_FLOAT,
    PQ_ATTR_BOOL,
    PQ_ATTR_STRING_ARRAY,
    PQ_ATTR_INT_ARRAY
} pq_attr_type;

/* "string" "int" "float" "bool" "string[]" "int[]" (API.md). */
const char *pq_attr_type_name(pq_attr_type type);
/* Parses one of the names above; -1 if it is none of them. */
int pq_attr_type_parse(const char *name, pq_attr_type *out);

typedef struct pq_attr_def {
    const char *name; /* UTF-8, NUL-terminated */
    pq_attr_type type;
} pq_attr_def;

/* What a snapshot holds besides its rows. The writer copies everything it
 * needs in pq_writer_open. */
typedef struct pq_schema {
    uint32_t dimension;      /* floats per vector; 0: no vectors */
    const char *collection;  /* NULL: not recorded */
    const char *metric;      /* NULL: not recorded */
    const char *config_json; /* NULL: not recorded */
    size_t attr_count;
    const pq_attr_def *attrs;
} pq_schema;

typedef struct pq_bytes {
    const char *data;
    size_t len;
} pq_bytes;

/* One declared attribute's value in a row. Which member holds it depends
 * on the attribute's type. */
typedef struct pq_value {
    bool is_null;
    int64_t i64;          /* PQ_ATTR_INT */
    double f64;           /* PQ_ATTR_FLOAT */
    bool boolean;         /* PQ_ATTR_BOOL */
    pq_bytes str;         /* PQ_ATTR_STRING */
    size_t count;         /* arrays: number of elements */
    const pq_bytes *strs; /* PQ_ATTR_STRING_ARRAY: count elements */
    const int64_t *ints;  /* PQ_ATTR_INT_ARRAY: count elements */
} pq_value;

/* One document. */
typedef struct pq_row {
    pq_bytes id;            /* UTF-8, 1 or more bytes */
    const float *vector;    /* vector_len floats (may be NULL when 0) */
    uint32_t vector_len;    /* writer: must equal the schema dimension */
    const pq_value *values; /* one per schema attribute, in order */
    pq_bytes attributes;    /* JSON object text; empty: "{}" */
} pq_row;

/* ---- writer ----------------------------------------------------------- */

typedef enum pq_codec { PQ_CODEC_ZSTD = 0, PQ_CODEC_SNAPPY, PQ_CODEC_NONE } pq_codec;

typedef struct pq_writer_options {
    pq_codec codec;               /* default PQ_CODEC_ZSTD */
    int zstd_level;               /* default 1: float32 vectors, most of a file, compress
                                     little at any level, so higher levels cost CPU (the
                                     cold copy's write time) for a few % of size */
    uint64_t row_group_max_rows;  /* default 65536 */
    uint64_t row_group_max_bytes; /* encoded bytes buffered before a row group is written; default 64 MiB */
    uint32_t page_max_bytes;      /* default 1 MiB (a page holds at least one row) */
    bool dictionary;              /* default true: dictionary-encode string chunks where it pays */
    bool fsync;                   /* default true: close makes the file durable */
    bool data_page_v2;            /* default false: DATA_PAGE_V2 pages (and RLE booleans); v1 is
                                     the most widely read, v2 is there for compatibility tests */
    bool page_checksums;          /* default true: CRC-32 in every page header */
} pq_writer_options;

void pq_writer_options_default(pq_writer_options *opts);

typedef struct pq_writer pq_writer;

/* Starts writing `path` (through path.tmp; nothing appears at path until
 * pq_writer_close). opts NULL: defaults. The schema is copied.
 * Errors: TDB_EINVAL (bad schema or options), TDB_EIO (including a
 * missing directory), TDB_ENOMEM. */
int pq_writer_open(const char *path, const pq_schema *schema, const pq_writer_options *opts,
                   pq_writer **out, tdb_error *err);

/* Adds one row. row->values holds one value per schema attribute (NULL:
 * every declared column null). Strings must be valid UTF-8 and shorter
 * than 2 GiB; the id must not be empty; vector_len must equal the
 * dimension. The row is copied. On TDB_EINVAL the row was not added and
 * the writer is still usable; after any other error the writer only
 * accepts pq_writer_abort. */
int pq_writer_add_row(pq_writer *w, const pq_row *row, tdb_error *err);

/* Adds one document whose declared columns are derived from its
 * attributes: `attributes` is the JSON object text ("" or NULL: "{}") and
 * `parsed` (optional) its parsed root, saving a parse. Each declared
 * attribute's value is converted to its column type; absent, null or of
 * another type (an int column given 1.5, an int[] holding a string)
 * becomes null. A float column takes any number. Errors as
 * pq_writer_add_row; attributes that are not a JSON object: TDB_EINVAL. */
int pq_writer_add_doc(pq_writer *w, pq_bytes id, const float *vector, uint32_t vector_len,
                      pq_bytes attributes, const json_value *parsed, tdb_error *err);

uint64_t pq_writer_rows(const pq_writer *w);

/* Writes the last row group and the footer, fsyncs (unless disabled),
 * renames path.tmp over path and fsyncs the directory. Frees w whatever
 * happens. On failure path.tmp is removed and path is untouched, except
 * when only the final directory fsync fails (TDB_EIO): then path is the
 * complete new file, whose directory entry may not be durable yet.
 * *size_bytes (optional) gets the file's size. */
int pq_writer_close(pq_writer *w, uint64_t *size_bytes, tdb_error *err);

/* Discards the file being written and frees w. NULL is a no-op. */
void pq_writer_abort(pq_writer *w);

/* ---- reader ----------------------------------------------------------- */

typedef struct pq_reader pq_reader;

/* Opens a Parquet file and validates its footer and schema: it needs a
 * BYTE_ARRAY column `id` and a BYTE_ARRAY column `attributes`; `vector`
 * (a list of FLOAT) may be absent only when no dimension is recorded or
 * it is 0. Errors: TDB_ENOTFOUND (no such file), TDB_EIO, TDB_ECORRUPT,
 * TDB_EUNSUPPORTED (encrypted file, unsupported codec or encoding, or a
 * newer tierdb.format), TDB_ENOMEM. */
int pq_reader_open(const char *path, pq_reader **out, tdb_error *err);

/* The file's schema: attrs are the columns besides id, vector and
 * attributes whose types map to an attribute type (INT32 reads as int,
 * FLOAT as float); dimension is tierdb.dimension, or 0 when not recorded
 * (see pq_reader_dimension); collection, metric and config_json come from
 * the metadata (NULL when absent). Valid until pq_reader_close. */
const pq_schema *pq_reader_schema(const pq_reader *r);

/* Rows in the file (from its footer, checked against the row groups). */
uint64_t pq_reader_row_count(const pq_reader *r);
uint32_t pq_reader_row_group_count(const pq_reader *r);

/* The vector dimension: tierdb.dimension when recorded, else the first
 * row's vector length once it has been read, else -1. Every row's vector
 * must have this length (else TDB_ECORRUPT). */
int64_t pq_reader_dimension(const pq_reader *r);

/* A footer key-value pair's value (NUL-terminated; NULL when absent). */
const char *pq_reader_metadata(const pq_reader *r, const char *key, size_t *len);

/* Pages read so far, for tests and diagnostics: by Parquet page type
 * (0 data v1, 1 index, 2 dictionary, 3 data v2) and, for data pages, by
 * value encoding (the Parquet Encoding number, 0..9). */
typedef struct pq_reader_stats {
    uint64_t pages_by_type[4];
    uint64_t data_pages_by_encoding[10];
} pq_reader_stats;
void pq_reader_get_stats(const pq_reader *r, pq_reader_stats *out);

/* Reads the next row: returns 1 and fills *row, 0 at the end, or a
 * negative TDB_E* code. Every pointer in *row (values included) stays
 * valid until the next call or pq_reader_close. A null `attributes` cell
 * (other tools) reads as "{}". After an error only pq_reader_close is
 * allowed. */
int pq_reader_next(pq_reader *r, pq_row *row, tdb_error *err);

/* NULL is a no-op. */
void pq_reader_close(pq_reader *r);

#endif
