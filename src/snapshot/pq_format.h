/*
 * pq_format.h: the numbers of the Parquet format that our writer and
 * reader share (the values of parquet-format's Thrift enums and the field
 * ids of its structs), plus the limits the reader enforces.
 * Layer: snapshot. Only pq_*.c include this; everyone else uses parquet.h.
 *
 * A Parquet file, as far as we use it (all integers little-endian):
 *
 *   "PAR1"                       4 bytes, magic
 *   column chunk 0 of group 0    pages: [page header][page body]...
 *   column chunk 1 of group 0
 *   ...                          (row groups one after another)
 *   FileMetaData                 Thrift compact protocol (pq_thrift.h)
 *   footer length                4 bytes: bytes of FileMetaData
 *   "PAR1"                       4 bytes, magic
 *
 * A column chunk is an optional dictionary page followed by data pages.
 * Each page is a PageHeader (Thrift compact) followed by
 * compressed_page_size bytes of body. A data page v1 body, after
 * decompression, is
 *   [u32 length][repetition levels, RLE/bit-packed hybrid]  (if max rep > 0)
 *   [u32 length][definition levels, RLE/bit-packed hybrid]  (if max def > 0)
 *   [values in the page's encoding]
 * A data page v2 keeps the two level streams uncompressed, without length
 * prefixes (their lengths are in the header), and compresses only the
 * values. The tierdb columns, their types and the metadata keys are
 * described in parquet.h and docs/formats/parquet.md.
 */
#ifndef TDB_SNAPSHOT_PQ_FORMAT_H
#define TDB_SNAPSHOT_PQ_FORMAT_H

#define PQ_MAGIC "PAR1"
#define PQ_MAGIC_ENCRYPTED "PARE" /* encrypted footer: refused */

/* Physical types (enum Type). */
enum {
    PQT_BOOLEAN = 0,
    PQT_INT32 = 1,
    PQT_INT64 = 2,
    PQT_INT96 = 3,
    PQT_FLOAT = 4,
    PQT_DOUBLE = 5,
    PQT_BYTE_ARRAY = 6,
    PQT_FIXED_LEN_BYTE_ARRAY = 7
};

/* enum FieldRepetitionType. */
enum { PQR_REQUIRED = 0, PQR_OPTIONAL = 1, PQR_REPEATED = 2 };

/* enum ConvertedType (the ones we write or look at). */
enum {
    PQC_UTF8 = 0,
    PQC_MAP = 1,
    PQC_MAP_KEY_VALUE = 2,
    PQC_LIST = 3,
    PQC_ENUM = 4,
    PQC_DECIMAL = 5,
    PQC_INT_8 = 15,
    PQC_INT_16 = 16,
    PQC_INT_32 = 17,
    PQC_INT_64 = 18,
    PQC_JSON = 19,
    PQC_NONE = -1 /* ours: field absent */
};

/* Field ids of union LogicalType (the ones we write or look at). */
enum {
    PQL_STRING = 1,
    PQL_MAP = 2,
    PQL_LIST = 3,
    PQL_ENUM = 4,
    PQL_INTEGER = 10,
    PQL_JSON = 12,
    PQL_NONE = 0 /* ours: field absent */
};

/* enum Encoding. */
enum {
    PQE_PLAIN = 0,
    PQE_PLAIN_DICTIONARY = 2,
    PQE_RLE = 3,
    PQE_BIT_PACKED = 4,
    PQE_DELTA_BINARY_PACKED = 5,
    PQE_DELTA_LENGTH_BYTE_ARRAY = 6,
    PQE_DELTA_BYTE_ARRAY = 7,
    PQE_RLE_DICTIONARY = 8,
    PQE_BYTE_STREAM_SPLIT = 9
};

/* enum CompressionCodec. */
enum {
    PQZ_UNCOMPRESSED = 0,
    PQZ_SNAPPY = 1,
    PQZ_GZIP = 2,
    PQZ_LZO = 3,
    PQZ_BROTLI = 4,
    PQZ_LZ4 = 5,
    PQZ_ZSTD = 6,
    PQZ_LZ4_RAW = 7
};

/* enum PageType. */
enum { PQP_DATA_PAGE = 0, PQP_INDEX_PAGE = 1, PQP_DICTIONARY_PAGE = 2, PQP_DATA_PAGE_V2 = 3 };

/* ---- limits the reader enforces (the reader is a fuzz target) ------- */

/* One page, decompressed: larger pages are refused. Writers cut pages at
 * about 1 MiB; 256 MiB leaves room for a single huge attributes value
 * while keeping what one hostile header can make us allocate bounded. */
#define PQ_MAX_PAGE_BYTES ((size_t)256 << 20)

/* Level entries (values, nulls and list slots) in one page. A run-length
 * encoded page can claim billions of entries in a few bytes; every real
 * writer stays far below this (DuckDB and Arrow cut pages at ~1 MiB). */
#define PQ_MAX_PAGE_ENTRIES ((size_t)1 << 22)

/* Bytes of strings a DELTA_BYTE_ARRAY page may expand to (prefixes let
 * a tiny page describe huge strings). */
#define PQ_MAX_PAGE_STRING_BYTES ((size_t)256 << 20)

/* Footer (FileMetaData) size. Ours are a few KiB per row group. */
#define PQ_MAX_FOOTER_BYTES ((size_t)256 << 20)

/* Schema nesting depth and elements; ours are 3 deep. */
#define PQ_MAX_SCHEMA_DEPTH 32
#define PQ_MAX_SCHEMA_ELEMENTS 100000

/* Thrift struct nesting while skipping unknown fields. */
#define PQ_MAX_THRIFT_DEPTH 64

#endif
