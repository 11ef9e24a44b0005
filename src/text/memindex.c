/*
 * memindex.c: the in-memory inverted index of one field of a memtable
 * (index.h), and its serialization into the segment blob.
 * Layer: text.
 *
 * Structure: a hash table maps term bytes to a term id; each term holds
 * its postings as two parallel arrays (rows ascending, tfs) so a search
 * cursor reads 128-entry slices in place. Each row remembers its distinct
 * term ids (the forward list) and field length, so removal needs no text.
 *
 * Adding a document: when its row is larger than every row added before
 * (the memtable appends rows), each token is counted straight into the
 * term's last posting (a new posting when the last one is another row), no
 * sorting needed. Otherwise the document's term ids are sorted and counted,
 * and each posting is inserted at its place.
 * Removing: each posting of the row becomes a tombstone (tf 0, found by
 * binary search), df and the statistics drop at once. Tombstones are
 * skipped by cursors and left out by serialization.
 *
 * Invariants (text_memindex_check in tests): for every term, rows strictly
 * increase; df = entries with tf > 0; for every present row, each of its
 * forward terms has a live posting for it; doc_count, total_length and
 * posting_count equal the sums over present rows.
 * Concurrency: none inside; the memtable's lock serializes writers and
 * readers. Ownership: text_memindex_free frees everything.
 */
#include <stdlib.h>
#include <string.h>

#include "text/postings.h"
#include "util/error.h"

#define INITIAL_SLOTS 1024u

static uint32_t hash_term(const char *s, uint32_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int text_memindex_new(text_memindex **out, tdb_error *err) {
    *out = NULL;
    text_memindex *m = calloc(1, sizeof(*m));
    if (!m) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory creating a text index");
    m->slots = calloc(INITIAL_SLOTS, sizeof(*m->slots));
    if (!m->slots) {
        free(m);
        return tdb_err(err, TDB_ENOMEM, NULL, "out of memory creating a text index");
    }
    m->slot_mask = INITIAL_SLOTS - 1;
    *out = m;
    return 0;
}

void text_memindex_free(text_memindex *m) {
    if (!m) return;
    for (uint32_t i = 0; i < m->term_count; i++) {
        free(m->terms[i].rows);
        free(m->terms[i].tfs);
    }
    free(m->terms);
    free(m->slots);
    free(m->arena);
    free(m->rows);
    free(m->fwd);
    free(m->scratch);
    free(m);
}

int64_t mem_term_find(const text_memindex *m, const char *term, uint32_t len) {
    uint32_t h = hash_term(term, len);
    for (uint32_t i = h & m->slot_mask;; i = (i + 1) & m->slot_mask) {
        uint64_t s = m->slots[i];
        if (!s) return -1;
        if ((uint32_t)(s >> 32) != h) continue;
        const mem_term *t = &m->terms[(uint32_t)s - 1];
        if (t->len == len && memcmp(m->arena + t->bytes_off, term, len) == 0)
            return (uint32_t)s - 1;
    }
}

static bool slots_grow(text_memindex *m) {
    uint32_t n = (m->slot_mask + 1) * 2;
    uint64_t *slots = calloc(n, sizeof(*slots));
    if (!slots) return false;
    for (uint32_t id = 0; id < m->term_count; id++) {
        uint32_t i = m->terms[id].hash & (n - 1);
        while (slots[i]) i = (i + 1) & (n - 1);
        slots[i] = (uint64_t)m->terms[id].hash << 32 | (id + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->slot_mask = n - 1;
    return true;
}

/* Term id of term, created when absent; -1 on allocation failure. New
 * terms have no postings; an unused term costs its bytes only. */
static int64_t term_intern(text_memindex *m, const char *term, uint32_t len) {
    uint32_t h = hash_term(term, len);
    uint32_t i = h & m->slot_mask;
    for (;; i = (i + 1) & m->slot_mask) {
        uint64_t s = m->slots[i];
        if (!s) break;
        if ((uint32_t)(s >> 32) != h) continue;
        const mem_term *t = &m->terms[(uint32_t)s - 1];
        if (t->len == len && memcmp(m->arena + t->bytes_off, term, len) == 0)
            return (uint32_t)s - 1;
    }
    if ((uint64_t)(m->term_count + 1) * 2 > m->slot_mask + 1u) { /* load factor <= 1/2 */
        if (!slots_grow(m)) return -1;
        i = h & m->slot_mask;
        while (m->slots[i]) i = (i + 1) & m->slot_mask;
    }
    if (m->term_count == m->term_cap) {
        uint32_t cap = m->term_cap ? m->term_cap * 2 : 1024;
        mem_term *p = realloc(m->terms, cap * sizeof(*p));
        if (!p) return -1;
        m->terms = p;
        m->term_cap = cap;
    }
    if (m->arena_len + len > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap * 2 : 65536;
        while (cap < m->arena_len + len) cap *= 2;
        if (cap > UINT32_MAX) return -1;
        char *p = realloc(m->arena, cap);
        if (!p) return -1;
        m->arena = p;
        m->arena_cap = cap;
    }
    mem_term *t = &m->terms[m->term_count];
    memset(t, 0, sizeof(*t));
    t->bytes_off = (uint32_t)m->arena_len;
    t->len = len;
    t->hash = h;
    t->min_dl = UINT32_MAX;
    memcpy(m->arena + m->arena_len, term, len);
    m->arena_len += len;
    m->slots[i] = (uint64_t)h << 32 | (m->term_count + 1);
    return m->term_count++;
}

static bool postings_reserve(mem_term *t, uint32_t extra) {
    if (t->n + extra <= t->cap) return true;
    uint32_t cap = t->cap ? t->cap * 2 : 4;
    while (cap < t->n + extra) cap *= 2;
    uint32_t *r = realloc(t->rows, cap * sizeof(*r));
    if (!r) return false;
    t->rows = r;
    uint32_t *f = realloc(t->tfs, cap * sizeof(*f));
    if (!f) return false; /* rows grew; harmless */
    t->tfs = f;
    t->cap = cap;
    return true;
}

/* Index of the first entry with rows[i] >= row. */
static uint32_t postings_lower(const mem_term *t, uint32_t row) {
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->rows[mid] < row) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static bool rows_reserve(text_memindex *m, uint32_t row) {
    if (row < m->rows_cap) return true;
    uint64_t cap = m->rows_cap ? m->rows_cap : 1024;
    while (cap <= row) cap *= 2;
    if (cap > (uint64_t)TEXT_MAX_ROWS + 1) cap = (uint64_t)TEXT_MAX_ROWS + 1;
    mem_row *p = realloc(m->rows, cap * sizeof(*p));
    if (!p) return false;
    memset(p + m->rows_cap, 0, (cap - m->rows_cap) * sizeof(*p));
    m->rows = p;
    m->rows_cap = (uint32_t)cap;
    return true;
}

static bool fwd_reserve(text_memindex *m, size_t extra) {
    if (m->fwd_len + extra <= m->fwd_cap) return true;
    size_t cap = m->fwd_cap ? m->fwd_cap * 2 : 4096;
    while (cap < m->fwd_len + extra) cap *= 2;
    if (cap > UINT32_MAX) return false;
    uint32_t *p = realloc(m->fwd, cap * sizeof(*p));
    if (!p) return false;
    m->fwd = p;
    m->fwd_cap = cap;
    return true;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int text_memindex_add(text_memindex *m, uint32_t row, const text_tokens *tokens, tdb_error *err) {
    if (row >= TEXT_MAX_ROWS)
        return tdb_err(err, TDB_EINVAL, NULL, "text index row %u out of range", row);
    if (row < m->rows_cap && m->rows[row].present)
        return tdb_err(err, TDB_EINVAL, NULL, "text index row %u is already indexed", row);
    if (tokens->count > UINT32_MAX)
        return tdb_err(err, TDB_ETOOBIG, NULL, "text field has too many tokens");
    size_t n_tok = tokens->count;
    /* Allocate everything that can fail before changing postings, so a
     * failure leaves the index as it was (new, still unused terms may stay;
     * they are invisible: df 0). */
    if (!rows_reserve(m, row) || !fwd_reserve(m, n_tok)) goto nomem;
    if (m->scratch_cap < n_tok) {
        uint32_t *p = realloc(m->scratch, n_tok * sizeof(*p));
        if (!p) goto nomem;
        m->scratch = p;
        m->scratch_cap = n_tok;
    }
    for (size_t i = 0; i < n_tok; i++) {
        int64_t id = term_intern(m, tokens->bytes + tokens->tok[i].off, tokens->tok[i].len);
        if (id < 0) goto nomem;
        m->scratch[i] = (uint32_t)id;
    }
    uint32_t dl = (uint32_t)n_tok;
    bool append = row >= m->max_row_added;
    /* Distinct term ids with their tf: in append mode collected by marking
     * each term's last posting; otherwise by sorting. Reserve posting room
     * first (one entry per distinct term at most). */
    if (!append) qsort(m->scratch, n_tok, sizeof(uint32_t), cmp_u32);
    for (size_t i = 0; i < n_tok; i++)
        if (!postings_reserve(&m->terms[m->scratch[i]], 1)) goto nomem;

    size_t fwd_start = m->fwd_len;
    if (append) {
        for (size_t i = 0; i < n_tok; i++) {
            mem_term *t = &m->terms[m->scratch[i]];
            if (t->n && t->rows[t->n - 1] == row) {
                t->tfs[t->n - 1]++;
            } else {
                t->rows[t->n] = row;
                t->tfs[t->n] = 1;
                t->n++;
                t->df++;
                if (t->df == 1) m->live_terms++;
                m->fwd[m->fwd_len++] = m->scratch[i];
            }
        }
    } else {
        for (size_t i = 0; i < n_tok;) {
            size_t j = i;
            while (j < n_tok && m->scratch[j] == m->scratch[i]) j++;
            mem_term *t = &m->terms[m->scratch[i]];
            uint32_t tf = (uint32_t)(j - i);
            uint32_t at = postings_lower(t, row);
            if (at < t->n && t->rows[at] == row) {
                t->tfs[at] = tf; /* reuse this row's tombstone */
            } else {
                memmove(t->rows + at + 1, t->rows + at, (t->n - at) * sizeof(uint32_t));
                memmove(t->tfs + at + 1, t->tfs + at, (t->n - at) * sizeof(uint32_t));
                t->rows[at] = row;
                t->tfs[at] = tf;
                t->n++;
            }
            t->df++;
            if (t->df == 1) m->live_terms++;
            m->fwd[m->fwd_len++] = m->scratch[i];
            i = j;
        }
    }
    /* Bounds for the memtable cursors' max score. */
    for (size_t f = fwd_start; f < m->fwd_len; f++) {
        mem_term *t = &m->terms[m->fwd[f]];
        if (dl < t->min_dl) t->min_dl = dl;
    }
    if (append) {
        for (size_t f = fwd_start; f < m->fwd_len; f++) {
            mem_term *t = &m->terms[m->fwd[f]];
            if (t->tfs[t->n - 1] > t->max_tf) t->max_tf = t->tfs[t->n - 1];
        }
    } else {
        for (size_t i = 0; i < n_tok;) {
            size_t j = i;
            while (j < n_tok && m->scratch[j] == m->scratch[i]) j++;
            mem_term *t = &m->terms[m->scratch[i]];
            if (j - i > t->max_tf) t->max_tf = (uint32_t)(j - i);
            i = j;
        }
    }
    mem_row *r = &m->rows[row];
    r->fwd_off = (uint32_t)fwd_start;
    r->n_terms = (uint32_t)(m->fwd_len - fwd_start);
    r->length = dl;
    r->present = 1;
    if (row >= m->max_row_added) m->max_row_added = row + 1;
    m->doc_count++;
    m->total_length += dl;
    m->posting_count += r->n_terms;
    return 0;
nomem:
    return tdb_err(err, TDB_ENOMEM, NULL, "out of memory indexing text of row %u", row);
}

int text_memindex_remove(text_memindex *m, uint32_t row) {
    if (row >= m->rows_cap || !m->rows[row].present) return 0;
    mem_row *r = &m->rows[row];
    for (uint32_t f = 0; f < r->n_terms; f++) {
        mem_term *t = &m->terms[m->fwd[r->fwd_off + f]];
        uint32_t at = postings_lower(t, row);
        if (at < t->n && t->rows[at] == row && t->tfs[at]) {
            t->tfs[at] = 0;
            t->df--;
            if (t->df == 0) m->live_terms--;
        }
    }
    m->fwd_dead += r->n_terms;
    m->doc_count--;
    m->total_length -= r->length;
    m->posting_count -= r->n_terms;
    r->present = 0;
    r->n_terms = 0;
    r->length = 0;
    return 1;
}

bool text_memindex_has(const text_memindex *m, uint32_t row) {
    return row < m->rows_cap && m->rows[row].present;
}

uint32_t text_memindex_length(const text_memindex *m, uint32_t row) {
    return row < m->rows_cap ? m->rows[row].length : 0;
}

void text_memindex_stats(const text_memindex *m, text_index_stats *out) {
    out->doc_count = m->doc_count;
    out->total_length = m->total_length;
    out->term_count = m->live_terms;
    out->posting_count = m->posting_count;
}

uint32_t text_memindex_df(const text_memindex *m, const char *term, uint32_t len) {
    int64_t id = mem_term_find(m, term, len);
    return id < 0 ? 0 : m->terms[id].df;
}

size_t text_memindex_memory_bytes(const text_memindex *m) {
    size_t bytes = sizeof(*m) + (size_t)m->term_cap * sizeof(mem_term) +
                   ((size_t)m->slot_mask + 1) * sizeof(uint64_t) + m->arena_cap +
                   (size_t)m->rows_cap * sizeof(mem_row) + m->fwd_cap * sizeof(uint32_t) +
                   m->scratch_cap * sizeof(uint32_t);
    for (uint32_t i = 0; i < m->term_count; i++) bytes += (size_t)m->terms[i].cap * 8;
    return bytes;
}

bool text_memindex_check(const text_memindex *m) {
    uint64_t postings = 0;
    uint32_t live = 0;
    for (uint32_t id = 0; id < m->term_count; id++) {
        const mem_term *t = &m->terms[id];
        uint32_t df = 0;
        for (uint32_t i = 0; i < t->n; i++) {
            if (i && t->rows[i] <= t->rows[i - 1]) return false;
            if (!t->tfs[i]) continue;
            df++;
            uint32_t r = t->rows[i];
            if (r >= m->rows_cap || !m->rows[r].present) return false;
            if (t->tfs[i] > t->max_tf || m->rows[r].length < t->min_dl) return false;
        }
        if (df != t->df) return false;
        postings += df;
        live += df > 0;
        if (mem_term_find(m, m->arena + t->bytes_off, t->len) != id) return false;
    }
    if (postings != m->posting_count || live != m->live_terms) return false;
    uint64_t docs = 0, length = 0, fwd = 0;
    for (uint32_t r = 0; r < m->rows_cap; r++) {
        const mem_row *row = &m->rows[r];
        if (!row->present) continue;
        if (r >= m->max_row_added) return false;
        docs++;
        length += row->length;
        fwd += row->n_terms;
        uint64_t tf_sum = 0;
        for (uint32_t f = 0; f < row->n_terms; f++) {
            const mem_term *t = &m->terms[m->fwd[row->fwd_off + f]];
            uint32_t lo = 0, hi = t->n;
            while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (t->rows[mid] < r) lo = mid + 1;
                else hi = mid;
            }
            if (lo >= t->n || t->rows[lo] != r || !t->tfs[lo]) return false;
            tf_sum += t->tfs[lo];
        }
        if (tf_sum != row->length) return false;
    }
    return docs == m->doc_count && length == m->total_length && fwd == postings &&
           fwd + m->fwd_dead == m->fwd_len;
}

/* ---- serialization ------------------------------------------------------ */

/* Term order of the blob: bytes, then shorter first (qsort_r context: the
 * index, so concurrent flushes do not share state). */
static int cmp_term_ids(const void *a, const void *b, void *ctx) {
    const text_memindex *m = ctx;
    const mem_term *x = &m->terms[*(const uint32_t *)a];
    const mem_term *y = &m->terms[*(const uint32_t *)b];
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(m->arena + x->bytes_off, m->arena + y->bytes_off, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int cmp_pairs(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Packs n values of `bits` bits each, LSB first, padded to a byte. */
static void pack_bits(buf *out, const uint32_t *v, uint32_t n, uint32_t bits) {
    if (bits == 0) return;
    size_t bytes = ((size_t)n * bits + 7) / 8;
    if (!buf_reserve(out, bytes)) return;
    uint8_t *p = (uint8_t *)out->data + out->len;
    uint64_t acc = 0;
    uint32_t have = 0;
    for (uint32_t i = 0; i < n; i++) {
        acc |= (uint64_t)v[i] << have;
        have += bits;
        while (have >= 8) {
            *p++ = (uint8_t)acc;
            acc >>= 8;
            have -= 8;
        }
    }
    if (have) *p++ = (uint8_t)acc;
    out->len += bytes;
    out->data[out->len] = 0;
}

/* Upper-bound impacts of a block: the Pareto frontier of (tf, dl) merged
 * down to TEXT_MAX_IMPACTS pairs. Merging two neighbours (tf1 < tf2,
 * dl1 < dl2) into (tf2, dl1) still dominates both; we merge the neighbours
 * whose merged bound grows least at avgdl_hint (the local average length,
 * a good guess of the corpus-wide one). */
#define SMALL_TF 64u
static uint32_t block_impacts(const uint32_t *tfs, const uint32_t *dls, uint32_t n,
                              double avgdl_hint, uint32_t *imp_tf, uint32_t *imp_dl) {
    uint32_t ftf[TEXT_BLOCK_SIZE], fdl[TEXT_BLOCK_SIZE], k = 0;
    uint32_t max_tf = 0;
    for (uint32_t i = 0; i < n; i++)
        if (tfs[i] > max_tf) max_tf = tfs[i];
    if (max_tf <= SMALL_TF) {
        /* Smallest dl per tf, then from the largest tf down keep each tf
         * whose smallest dl beats every larger tf's: the frontier, built
         * in descending order and reversed. No sort needed. */
        uint32_t min_dl[SMALL_TF + 1];
        for (uint32_t t = 0; t <= max_tf; t++) min_dl[t] = UINT32_MAX;
        for (uint32_t i = 0; i < n; i++)
            if (dls[i] < min_dl[tfs[i]]) min_dl[tfs[i]] = dls[i];
        uint32_t best = UINT32_MAX;
        uint32_t rtf[SMALL_TF + 1], rdl[SMALL_TF + 1], r = 0;
        for (uint32_t t = max_tf; t >= 1; t--) {
            if (min_dl[t] < best) {
                best = min_dl[t];
                rtf[r] = t;
                rdl[r] = best;
                r++;
            }
        }
        for (uint32_t i = 0; i < r; i++) {
            ftf[i] = rtf[r - 1 - i];
            fdl[i] = rdl[r - 1 - i];
        }
        k = r;
    } else {
        uint64_t pairs[TEXT_BLOCK_SIZE]; /* dl << 32 | (UINT32_MAX - tf): dl asc, tf desc */
        for (uint32_t i = 0; i < n; i++)
            pairs[i] = ((uint64_t)dls[i] << 32) | (uint64_t)(UINT32_MAX - tfs[i]);
        qsort(pairs, n, sizeof(pairs[0]), cmp_pairs);
        /* By dl ascending, keep a pair when its tf beats every pair with a
         * smaller or equal dl: the frontier, tf and dl both rising. */
        for (uint32_t i = 0; i < n; i++) {
            uint32_t tf = UINT32_MAX - (uint32_t)pairs[i], dl = (uint32_t)(pairs[i] >> 32);
            if (k == 0 || tf > ftf[k - 1]) {
                ftf[k] = tf;
                fdl[k] = dl;
                k++;
            }
        }
    }
    bm25_term hint = {1.0, 1.0, avgdl_hint > 0 ? avgdl_hint : 1.0};
    while (k > TEXT_MAX_IMPACTS) {
        uint32_t best = 0;
        double best_cost = 0;
        for (uint32_t i = 0; i + 1 < k; i++) {
            double merged = bm25_posting(&hint, ftf[i + 1], fdl[i]);
            double cur = bm25_posting(&hint, ftf[i + 1], fdl[i + 1]);
            double c0 = bm25_posting(&hint, ftf[i], fdl[i]);
            double cost = merged - (cur > c0 ? cur : c0);
            if (i == 0 || cost < best_cost) {
                best = i;
                best_cost = cost;
            }
        }
        ftf[best] = ftf[best + 1]; /* (tf2, dl1) */
        memmove(ftf + best + 1, ftf + best + 2, (k - best - 2) * sizeof(uint32_t));
        memmove(fdl + best + 1, fdl + best + 2, (k - best - 2) * sizeof(uint32_t));
        k--;
    }
    memcpy(imp_tf, ftf, k * sizeof(uint32_t));
    memcpy(imp_dl, fdl, k * sizeof(uint32_t));
    return k;
}

int text_memindex_serialize(const text_memindex *m, const uint32_t *row_map, size_t row_map_len,
                            uint32_t row_count, buf *out, tdb_error *err) {
    int rc = 0;
    uint32_t *order = NULL, *new_len = NULL;
    uint64_t *pairs = NULL;
    uint8_t *seen = NULL;
    buf offs = BUF_INIT, bytes = BUF_INIT, entries = BUF_INIT, blocks = BUF_INIT,
        posts = BUF_INIT;
    if (row_count > TEXT_MAX_ROWS)
        return tdb_err(err, TDB_EINVAL, NULL, "segment row count %u out of range", row_count);

#define MAP(r) (row_map ? ((r) < row_map_len ? row_map[r] : TEXT_ROW_NONE) : (r))
    /* Field lengths by segment row; check the map. */
    new_len = calloc(row_count ? row_count : 1, sizeof(*new_len));
    seen = calloc(row_count ? row_count : 1, 1);
    order = malloc((m->term_count ? m->term_count : 1) * sizeof(*order));
    if (!new_len || !seen || !order) goto nomem;
    uint64_t doc_count = 0, total_length = 0;
    for (uint32_t r = 0; r < m->max_row_added; r++) {
        if (!m->rows[r].present) continue;
        uint32_t s = MAP(r);
        if (s == TEXT_ROW_NONE) continue;
        if (s >= row_count) {
            rc = tdb_err(err, TDB_EINVAL, NULL,
                         "memtable row %u maps to segment row %u, past the %u rows", r, s,
                         row_count);
            goto done;
        }
        if (seen[s]) {
            rc = tdb_err(err, TDB_EINVAL, NULL, "two memtable rows map to segment row %u", s);
            goto done;
        }
        seen[s] = 1;
        new_len[s] = m->rows[r].length;
        doc_count++;
        total_length += m->rows[r].length;
    }
    double avgdl_hint = doc_count ? (double)total_length / (double)doc_count : 1.0;

    uint32_t n_order = 0;
    for (uint32_t i = 0; i < m->term_count; i++)
        if (m->terms[i].df) order[n_order++] = i;
    qsort_r(order, n_order, sizeof(*order), cmp_term_ids, (void *)m);

    size_t pairs_cap = 0;
    uint32_t term_count = 0, block_count = 0;
    uint64_t posting_count = 0;
    for (uint32_t oi = 0; oi < n_order; oi++) {
        const mem_term *t = &m->terms[order[oi]];
        if (pairs_cap < t->n) {
            free(pairs);
            pairs_cap = t->n;
            pairs = malloc(pairs_cap * sizeof(*pairs));
            if (!pairs) goto nomem;
        }
        /* Live, mapped postings as (segment row << 32 | tf), sorted by row:
         * the map need not keep memtable order. */
        uint32_t np = 0;
        bool sorted = true;
        for (uint32_t i = 0; i < t->n; i++) {
            if (!t->tfs[i]) continue;
            uint32_t s = MAP(t->rows[i]);
            if (s == TEXT_ROW_NONE) continue;
            pairs[np] = ((uint64_t)s << 32) | t->tfs[i];
            if (np && pairs[np] < pairs[np - 1]) sorted = false;
            np++;
        }
        if (!np) continue;
        if (!sorted) qsort(pairs, np, sizeof(*pairs), cmp_pairs);
        buf_put_u32(&offs, (uint32_t)bytes.len);
        buf_append(&bytes, m->arena + t->bytes_off, t->len);
        buf_put_u32(&entries, np);
        buf_put_u32(&entries, block_count);
        int64_t prev = -1;
        for (uint32_t b0 = 0; b0 < np; b0 += TEXT_BLOCK_SIZE) {
            uint32_t n = np - b0 < TEXT_BLOCK_SIZE ? np - b0 : TEXT_BLOCK_SIZE;
            uint32_t gaps[TEXT_BLOCK_SIZE], tfm1[TEXT_BLOCK_SIZE], tfs[TEXT_BLOCK_SIZE],
                dls[TEXT_BLOCK_SIZE], gap_or = 0, tf_or = 0;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t row = (uint32_t)(pairs[b0 + i] >> 32);
                tfs[i] = (uint32_t)pairs[b0 + i];
                gaps[i] = (uint32_t)((int64_t)row - prev - 1);
                tfm1[i] = tfs[i] - 1;
                dls[i] = new_len[row];
                gap_or |= gaps[i];
                tf_or |= tfm1[i];
                prev = row;
            }
            if (tf_or >> 31) { /* the format keeps tf - 1 in at most 31 bits */
                rc = tdb_err(err, TDB_ETOOBIG, NULL, "a term occurs 2^31 times in one field");
                goto done;
            }
            uint32_t imp_tf[TEXT_MAX_IMPACTS], imp_dl[TEXT_MAX_IMPACTS];
            uint32_t n_imp = block_impacts(tfs, dls, n, avgdl_hint, imp_tf, imp_dl);
            buf_put_u32(&blocks, (uint32_t)prev);
            buf_put_u32(&blocks, (uint32_t)posts.len);
            buf_put_u16(&blocks, (uint16_t)n);
            buf_put_u8(&blocks, (uint8_t)bits_for(gap_or));
            buf_put_u8(&blocks, (uint8_t)bits_for(tf_or));
            buf_put_u8(&blocks, (uint8_t)n_imp);
            buf_put_u8(&blocks, 0);
            buf_put_u16(&blocks, 0);
            for (uint32_t i = 0; i < TEXT_MAX_IMPACTS; i++) {
                buf_put_u32(&blocks, i < n_imp ? imp_tf[i] : 0);
                buf_put_u32(&blocks, i < n_imp ? imp_dl[i] : 0);
            }
            pack_bits(&posts, gaps, n, bits_for(gap_or));
            pack_bits(&posts, tfm1, n, bits_for(tf_or));
            block_count++;
        }
        if (posts.len > UINT32_MAX) {
            rc = tdb_err(err, TDB_ETOOBIG, NULL, "text index postings exceed 4 GiB");
            goto done;
        }
        term_count++;
        posting_count += np;
    }
    buf_put_u32(&offs, (uint32_t)bytes.len);
#undef MAP
    if (buf_failed(&offs) || buf_failed(&bytes) || buf_failed(&entries) || buf_failed(&blocks) ||
        buf_failed(&posts))
        goto nomem;
    if (bytes.len > UINT32_MAX) {
        rc = tdb_err(err, TDB_ETOOBIG, NULL, "text index terms exceed 4 GiB");
        goto done;
    }

    size_t base = out->len;
    buf_put_u32(out, TEXT_SEG_MAGIC);
    buf_put_u16(out, TEXT_SEG_VERSION);
    buf_put_u16(out, TEXT_SEG_HEADER_BYTES);
    buf_put_u32(out, TEXT_BLOCK_SIZE);
    buf_put_u32(out, row_count);
    buf_put_u32(out, (uint32_t)doc_count);
    buf_put_u32(out, term_count);
    buf_put_u64(out, total_length);
    buf_put_u64(out, posting_count);
    buf_put_u64(out, bytes.len);
    buf_put_u64(out, posts.len);
    buf_put_u32(out, block_count);
    buf_put_u32(out, 0);
    for (uint32_t r = 0; r < row_count; r++) buf_put_u32(out, new_len[r]);
    /* sections are aligned relative to the blob start */
    while ((out->len - base) % 8) buf_put_u8(out, 0);
    buf_append(out, offs.data, offs.len);
    while ((out->len - base) % 8) buf_put_u8(out, 0);
    buf_append(out, bytes.data, bytes.len);
    while ((out->len - base) % 8) buf_put_u8(out, 0);
    buf_append(out, entries.data, entries.len);
    while ((out->len - base) % 8) buf_put_u8(out, 0);
    buf_append(out, blocks.data, blocks.len);
    while ((out->len - base) % 8) buf_put_u8(out, 0);
    buf_append(out, posts.data, posts.len);
    while ((out->len - base) % 8) buf_put_u8(out, 0);
    if (buf_failed(out)) goto nomem;
    goto done;
nomem:
    rc = tdb_err(err, TDB_ENOMEM, NULL, "out of memory serializing a text index");
done:
    free(order);
    free(new_len);
    free(pairs);
    free(seen);
    buf_free(&offs);
    buf_free(&bytes);
    buf_free(&entries);
    buf_free(&blocks);
    buf_free(&posts);
    return rc;
}
