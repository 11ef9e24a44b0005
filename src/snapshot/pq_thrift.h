/*
 * pq_thrift.h: the Thrift compact protocol, as much as Parquet's footer and
 * page headers need: a writer into a buf and a bounded reader.
 * Layer: snapshot.
 *
 * Encoding (Thrift compact protocol):
 *   - A struct is a sequence of fields ended by a 0 byte. A field header
 *     is one byte: high nibble = id delta from the previous field of the
 *     same struct (1..15), low nibble = type; a delta of 0 means the type
 *     byte is followed by the id as a zigzag varint (i16).
 *   - Types: 1 bool true, 2 bool false (the value lives in the type nibble
 *     of a field; inside a list a bool is one byte, 1 = true), 3 i8 (one
 *     byte), 4 i16, 5 i32, 6 i64 (zigzag ULEB128 varints), 7 double (8
 *     bytes little-endian), 8 binary (ULEB128 length + bytes), 9 list,
 *     10 set, 11 map, 12 struct.
 *   - A list/set header is one byte (size << 4 | element type) when the
 *     size is below 15, else (0xF0 | element type) and the size as ULEB128.
 *   - A map is ULEB128 size, then (when size > 0) one byte (key type << 4 |
 *     value type), then the entries.
 *
 * Reader: every read is bounded by the buffer end; counts are checked
 * against the bytes left (every element takes at least one byte, except
 * bools, which we also count as one); nesting is bounded by
 * PQ_MAX_THRIFT_DEPTH. The first violation makes the reader "bad": it
 * remembers the offset, and every later read returns zero/stop, so parsers
 * can be written straight through and check pq_tr_bad() once.
 */
#ifndef TDB_SNAPSHOT_PQ_THRIFT_H
#define TDB_SNAPSHOT_PQ_THRIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum {
    PQ_TT_STOP = 0,
    PQ_TT_TRUE = 1,
    PQ_TT_FALSE = 2,
    PQ_TT_I8 = 3,
    PQ_TT_I16 = 4,
    PQ_TT_I32 = 5,
    PQ_TT_I64 = 6,
    PQ_TT_DOUBLE = 7,
    PQ_TT_BINARY = 8,
    PQ_TT_LIST = 9,
    PQ_TT_SET = 10,
    PQ_TT_MAP = 11,
    PQ_TT_STRUCT = 12
};

/* ---- writer ---------------------------------------------------------- */

#define PQ_TW_MAX_DEPTH 16 /* our structs nest 5 deep */

typedef struct pq_tw {
    buf *out;
    int depth;                         /* open structs */
    int16_t last_id[PQ_TW_MAX_DEPTH];  /* previous field id per open struct */
} pq_tw;

void pq_tw_init(pq_tw *w, buf *out);
/* Fields of the current struct (ids must increase). */
void pq_tw_i32(pq_tw *w, int16_t id, int32_t v);
void pq_tw_i64(pq_tw *w, int16_t id, int64_t v);
void pq_tw_i8(pq_tw *w, int16_t id, int8_t v);
void pq_tw_bool(pq_tw *w, int16_t id, bool v);
void pq_tw_binary(pq_tw *w, int16_t id, const void *data, size_t len);
void pq_tw_string(pq_tw *w, int16_t id, const char *s); /* NUL-terminated */
void pq_tw_struct_begin(pq_tw *w, int16_t id);          /* a struct-valued field */
void pq_tw_list_begin(pq_tw *w, int16_t id, int elem_type, size_t count);
/* Elements of a list (no field header). */
void pq_tw_elem_i32(pq_tw *w, int32_t v);
void pq_tw_elem_binary(pq_tw *w, const void *data, size_t len);
void pq_tw_elem_struct_begin(pq_tw *w);
/* Ends the innermost struct (writes the stop byte). Also ends the
 * top-level struct the writer starts in. */
void pq_tw_struct_end(pq_tw *w);

/* ---- reader ---------------------------------------------------------- */

typedef struct pq_tr {
    const uint8_t *start, *p, *end;
    uint64_t base;      /* file offset of start, for error messages */
    int depth;          /* open structs (bounded) */
    bool bad;
    uint64_t bad_at;    /* file offset of the first violation */
    const char *why;    /* what it was */
} pq_tr;

void pq_tr_init(pq_tr *r, const void *data, size_t len, uint64_t file_offset);
static inline bool pq_tr_bad(const pq_tr *r) { return r->bad; }
static inline size_t pq_tr_left(const pq_tr *r) { return (size_t)(r->end - r->p); }
/* Marks the reader bad (first reason wins). */
void pq_tr_fail(pq_tr *r, const char *why);

/* Struct iteration: call pq_tr_struct_begin, then pq_tr_field until it
 * returns false (stop byte, or the reader went bad), then
 * pq_tr_struct_end. *last must start at 0 for each struct. */
void pq_tr_struct_begin(pq_tr *r);
bool pq_tr_field(pq_tr *r, int16_t *last, int16_t *id, int *type);
void pq_tr_struct_end(pq_tr *r);

/* Values; `type` is the field's (or list element's) wire type, checked
 * against what is expected (a mismatch makes the reader bad). */
int64_t pq_tr_int(pq_tr *r, int type);           /* i8, i16, i32 or i64 */
int32_t pq_tr_i32(pq_tr *r, int type);           /* any int that fits i32 */
bool pq_tr_bool(pq_tr *r, int type, bool in_list);
/* Binary: points into the buffer (not NUL-terminated). */
const uint8_t *pq_tr_binary(pq_tr *r, int type, size_t *len);
/* List header: returns the element count (bounded by the bytes left) and
 * the element type. */
size_t pq_tr_list(pq_tr *r, int type, int *elem_type);
/* Skips one value of the given type (recursively, depth-bounded). */
void pq_tr_skip(pq_tr *r, int type, bool in_list);

#endif
