/*
 * pq_thrift.c: Thrift compact protocol writer and bounded reader
 * (pq_thrift.h describes the encoding and the reader's guarantees).
 * Layer: snapshot.
 */
#include "snapshot/pq_thrift.h"

#include <assert.h>
#include <string.h>

#include "snapshot/pq_format.h"

/* ---- writer ---------------------------------------------------------- */

static void put_uvarint(buf *b, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    buf_append(b, tmp, n);
}

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

void pq_tw_init(pq_tw *w, buf *out) {
    memset(w, 0, sizeof *w);
    w->out = out;
    w->depth = 1; /* the top-level struct */
}

static void field_header(pq_tw *w, int16_t id, int type) {
    assert(w->depth > 0 && w->depth <= PQ_TW_MAX_DEPTH);
    int16_t *last = &w->last_id[w->depth - 1];
    int delta = id - *last;
    if (delta > 0 && delta <= 15) {
        buf_put_u8(w->out, (uint8_t)((delta << 4) | type));
    } else {
        buf_put_u8(w->out, (uint8_t)type);
        put_uvarint(w->out, zigzag(id));
    }
    *last = id;
}

void pq_tw_i32(pq_tw *w, int16_t id, int32_t v) {
    field_header(w, id, PQ_TT_I32);
    put_uvarint(w->out, zigzag(v));
}

void pq_tw_i64(pq_tw *w, int16_t id, int64_t v) {
    field_header(w, id, PQ_TT_I64);
    put_uvarint(w->out, zigzag(v));
}

void pq_tw_i8(pq_tw *w, int16_t id, int8_t v) {
    field_header(w, id, PQ_TT_I8);
    buf_put_u8(w->out, (uint8_t)v);
}

void pq_tw_bool(pq_tw *w, int16_t id, bool v) { field_header(w, id, v ? PQ_TT_TRUE : PQ_TT_FALSE); }

void pq_tw_binary(pq_tw *w, int16_t id, const void *data, size_t len) {
    field_header(w, id, PQ_TT_BINARY);
    put_uvarint(w->out, len);
    buf_append(w->out, data, len);
}

void pq_tw_string(pq_tw *w, int16_t id, const char *s) { pq_tw_binary(w, id, s, strlen(s)); }

static void push(pq_tw *w) {
    assert(w->depth < PQ_TW_MAX_DEPTH);
    w->last_id[w->depth++] = 0;
}

void pq_tw_struct_begin(pq_tw *w, int16_t id) {
    field_header(w, id, PQ_TT_STRUCT);
    push(w);
}

void pq_tw_list_begin(pq_tw *w, int16_t id, int elem_type, size_t count) {
    field_header(w, id, PQ_TT_LIST);
    if (count < 15) {
        buf_put_u8(w->out, (uint8_t)((count << 4) | (size_t)elem_type));
    } else {
        buf_put_u8(w->out, (uint8_t)(0xF0 | elem_type));
        put_uvarint(w->out, count);
    }
}

void pq_tw_elem_i32(pq_tw *w, int32_t v) { put_uvarint(w->out, zigzag(v)); }

void pq_tw_elem_binary(pq_tw *w, const void *data, size_t len) {
    put_uvarint(w->out, len);
    buf_append(w->out, data, len);
}

void pq_tw_elem_struct_begin(pq_tw *w) { push(w); }

void pq_tw_struct_end(pq_tw *w) {
    assert(w->depth > 0);
    buf_put_u8(w->out, 0);
    w->depth--;
}

/* ---- reader ---------------------------------------------------------- */

void pq_tr_init(pq_tr *r, const void *data, size_t len, uint64_t file_offset) {
    memset(r, 0, sizeof *r);
    r->start = r->p = data;
    r->end = r->start + len;
    r->base = file_offset;
}

void pq_tr_fail(pq_tr *r, const char *why) {
    if (r->bad) return;
    r->bad = true;
    r->bad_at = r->base + (uint64_t)(r->p - r->start);
    r->why = why;
    r->p = r->end; /* nothing more is read */
}

static uint64_t get_uvarint(pq_tr *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            pq_tr_fail(r, "truncated varint");
            return 0;
        }
        uint8_t byte = *r->p++;
        /* The 10th byte may only carry the top bit of a 64-bit value. */
        if (shift == 63 && byte > 1) {
            pq_tr_fail(r, "varint overflows 64 bits");
            return 0;
        }
        v |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) return v;
    }
    pq_tr_fail(r, "varint longer than 10 bytes");
    return 0;
}

static int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

void pq_tr_struct_begin(pq_tr *r) {
    if (r->bad) return;
    if (++r->depth > PQ_MAX_THRIFT_DEPTH) pq_tr_fail(r, "structs nested too deeply");
}

void pq_tr_struct_end(pq_tr *r) {
    if (r->depth > 0) r->depth--;
}

bool pq_tr_field(pq_tr *r, int16_t *last, int16_t *id, int *type) {
    if (r->bad) return false;
    if (r->p >= r->end) {
        pq_tr_fail(r, "struct not terminated");
        return false;
    }
    uint8_t byte = *r->p++;
    if (byte == 0) return false;
    int t = byte & 0x0F;
    int delta = byte >> 4;
    int64_t fid;
    if (delta != 0) {
        fid = (int64_t)*last + delta;
    } else {
        fid = unzigzag(get_uvarint(r));
    }
    if (t < PQ_TT_TRUE || t > PQ_TT_STRUCT) {
        pq_tr_fail(r, "unknown field type");
        return false;
    }
    if (fid < INT16_MIN || fid > INT16_MAX) {
        pq_tr_fail(r, "field id out of range");
        return false;
    }
    if (r->bad) return false;
    *last = (int16_t)fid;
    *id = (int16_t)fid;
    *type = t;
    return true;
}

int64_t pq_tr_int(pq_tr *r, int type) {
    if (r->bad) return 0;
    switch (type) {
    case PQ_TT_I8:
        if (r->p >= r->end) {
            pq_tr_fail(r, "truncated i8");
            return 0;
        }
        return (int8_t)*r->p++;
    case PQ_TT_I16:
    case PQ_TT_I32:
    case PQ_TT_I64: {
        int64_t v = unzigzag(get_uvarint(r));
        if (type == PQ_TT_I16 && (v < INT16_MIN || v > INT16_MAX)) pq_tr_fail(r, "i16 out of range");
        if (type == PQ_TT_I32 && (v < INT32_MIN || v > INT32_MAX)) pq_tr_fail(r, "i32 out of range");
        return r->bad ? 0 : v;
    }
    default:
        pq_tr_fail(r, "expected an integer field");
        return 0;
    }
}

int32_t pq_tr_i32(pq_tr *r, int type) {
    int64_t v = pq_tr_int(r, type);
    if (v < INT32_MIN || v > INT32_MAX) {
        pq_tr_fail(r, "integer does not fit i32");
        return 0;
    }
    return (int32_t)v;
}

bool pq_tr_bool(pq_tr *r, int type, bool in_list) {
    if (r->bad) return false;
    if (type != PQ_TT_TRUE && type != PQ_TT_FALSE) {
        pq_tr_fail(r, "expected a bool field");
        return false;
    }
    if (!in_list) return type == PQ_TT_TRUE;
    if (r->p >= r->end) {
        pq_tr_fail(r, "truncated bool");
        return false;
    }
    return *r->p++ == 1;
}

const uint8_t *pq_tr_binary(pq_tr *r, int type, size_t *len) {
    *len = 0;
    if (r->bad) return NULL;
    if (type != PQ_TT_BINARY) {
        pq_tr_fail(r, "expected a binary field");
        return NULL;
    }
    uint64_t n = get_uvarint(r);
    if (r->bad) return NULL;
    if (n > pq_tr_left(r)) {
        pq_tr_fail(r, "binary longer than the bytes left");
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    *len = (size_t)n;
    return p;
}

size_t pq_tr_list(pq_tr *r, int type, int *elem_type) {
    *elem_type = PQ_TT_STOP;
    if (r->bad) return 0;
    if (type != PQ_TT_LIST && type != PQ_TT_SET) {
        pq_tr_fail(r, "expected a list field");
        return 0;
    }
    if (r->p >= r->end) {
        pq_tr_fail(r, "truncated list header");
        return 0;
    }
    uint8_t byte = *r->p++;
    uint64_t n = byte >> 4;
    int et = byte & 0x0F;
    if (n == 15) n = get_uvarint(r);
    if (r->bad) return 0;
    if (et < PQ_TT_TRUE || et > PQ_TT_STRUCT) {
        pq_tr_fail(r, "unknown list element type");
        return 0;
    }
    /* Every element takes at least one byte (bools in lists are a byte;
     * an empty struct is its stop byte). */
    if (n > pq_tr_left(r)) {
        pq_tr_fail(r, "list count exceeds the bytes left");
        return 0;
    }
    *elem_type = et;
    return (size_t)n;
}

void pq_tr_skip(pq_tr *r, int type, bool in_list) {
    if (r->bad) return;
    switch (type) {
    case PQ_TT_TRUE:
    case PQ_TT_FALSE: (void)pq_tr_bool(r, type, in_list); break;
    case PQ_TT_I8:
    case PQ_TT_I16:
    case PQ_TT_I32:
    case PQ_TT_I64: (void)pq_tr_int(r, type); break;
    case PQ_TT_DOUBLE:
        if (pq_tr_left(r) < 8) pq_tr_fail(r, "truncated double");
        else r->p += 8;
        break;
    case PQ_TT_BINARY: {
        size_t len;
        (void)pq_tr_binary(r, type, &len);
        break;
    }
    case PQ_TT_LIST:
    case PQ_TT_SET: {
        int et;
        size_t n = pq_tr_list(r, type, &et);
        pq_tr_struct_begin(r); /* counts toward the nesting bound */
        for (size_t i = 0; i < n && !r->bad; i++) pq_tr_skip(r, et, true);
        pq_tr_struct_end(r);
        break;
    }
    case PQ_TT_MAP: {
        uint64_t n = get_uvarint(r);
        if (r->bad || n == 0) break;
        if (r->p >= r->end) {
            pq_tr_fail(r, "truncated map header");
            break;
        }
        uint8_t kv = *r->p++;
        int kt = kv >> 4, vt = kv & 0x0F;
        if (kt < PQ_TT_TRUE || kt > PQ_TT_STRUCT || vt < PQ_TT_TRUE || vt > PQ_TT_STRUCT) {
            pq_tr_fail(r, "unknown map element type");
            break;
        }
        if (n > pq_tr_left(r) / 2) {
            pq_tr_fail(r, "map count exceeds the bytes left");
            break;
        }
        pq_tr_struct_begin(r);
        for (uint64_t i = 0; i < n && !r->bad; i++) {
            pq_tr_skip(r, kt, true);
            pq_tr_skip(r, vt, true);
        }
        pq_tr_struct_end(r);
        break;
    }
    case PQ_TT_STRUCT: {
        pq_tr_struct_begin(r);
        int16_t last = 0, id;
        int t;
        while (pq_tr_field(r, &last, &id, &t)) pq_tr_skip(r, t, false);
        pq_tr_struct_end(r);
        break;
    }
    default: pq_tr_fail(r, "unknown type"); break;
    }
}
