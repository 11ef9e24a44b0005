/*
 * analyzer.c: the default analyzer and the language analyzers (analyzer.h,
 * docs/text.md).
 * Layer: text.
 *
 * One pass over the bytes. Outside a run we skip separators; a code point
 * of kind START opens a run; inside a run START and MARK code points
 * continue it and anything else closes it. The run is cut into pieces where
 * the CJK bit changes, and each piece is written out as it is scanned:
 *   - a non-CJK piece: its folded UTF-8 is appended to the output; when the
 *     piece ends it becomes a token, unless it grew past
 *     TEXT_MAX_TOKEN_BYTES (then we stop copying and drop it);
 *   - a CJK piece: each code point after the first emits the bigram
 *     (previous, current); a piece that ends after one code point emits it
 *     alone.
 * ASCII has a fast path (A-Z a-z 0-9 are START, other ASCII separates, the
 * folding of ASCII is A-Z -> a-z; scripts/gen_unicode_tables.py asserts
 * that the tables agree). Every non-ASCII sequence is decoded with full
 * validation, so invalid UTF-8 anywhere in the input is reported, also
 * between tokens.
 *
 * Language analyzers post-process each finished token in place: stopword
 * lookup (a hash set built once per analyzer), then Snowball stemming with
 * the caller's stemmer (kept in text_tokens; libstemmer objects are not
 * thread-safe, analyzers are shared).
 */
#include "text/analyzer.h"

#include <libstemmer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/unicode.h"
#include "util/error.h"

struct text_analyzer {
    const char *language;   /* canonical name from sb_stemmer_list(), or NULL */
    bool stemming;
    bool stopwords;
    /* stopword hash set: open addressing, power-of-two slots, NULL = empty */
    const char **stop_slots;
    uint32_t *stop_lens;
    uint32_t stop_mask;
};

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static bool stop_contains(const text_analyzer *a, const char *s, size_t len) {
    for (uint32_t i = hash_bytes(s, len) & a->stop_mask;; i = (i + 1) & a->stop_mask) {
        const char *w = a->stop_slots[i];
        if (!w) return false;
        if (a->stop_lens[i] == len && memcmp(w, s, len) == 0) return true;
    }
}

void text_analyzer_config_default(text_analyzer_config *cfg) {
    cfg->language = NULL;
    cfg->stemming = false;
    cfg->stopwords = false;
}

void text_analyzer_config_language(text_analyzer_config *cfg, const char *language) {
    cfg->language = language;
    cfg->stemming = true;
    cfg->stopwords = false;
}

const char **text_languages(void) { return sb_stemmer_list(); }

const char *text_analyzer_language(const text_analyzer *a) { return a->language; }

int text_analyzer_new(const text_analyzer_config *cfg, text_analyzer **out, tdb_error *err) {
    *out = NULL;
    const char *lang = cfg->language;
    const char *canon = NULL;
    if (lang && lang[0] && strcmp(lang, "none") != 0) {
        for (const char **l = sb_stemmer_list(); *l; l++)
            if (strcmp(*l, lang) == 0) canon = *l;
        if (!canon) {
            char names[512] = "";
            size_t used = 0;
            for (const char **l = sb_stemmer_list(); *l && used + 24 < sizeof(names); l++)
                used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
                                         used ? ", " : "", *l);
            return tdb_err(err, TDB_EINVAL, "invalid_analyzer",
                           "unknown full_text language \"%.*s\"; use one of: none, %s",
                           TEXT_LANGUAGE_MAX_BYTES, lang, names);
        }
    }
    if (!canon && cfg->stemming)
        return tdb_err(err, TDB_EINVAL, "invalid_analyzer",
                       "full_text stemming needs a language (e.g. \"language\": \"english\")");
    if (!canon && cfg->stopwords)
        return tdb_err(err, TDB_EINVAL, "invalid_analyzer",
                       "full_text stopwords need a language (e.g. \"language\": \"english\")");
    size_t n_stop = 0;
    const char *const *words = NULL;
    if (cfg->stopwords) {
        words = text_stopwords(canon, &n_stop);
        if (!words)
            return tdb_err(err, TDB_EINVAL, "invalid_analyzer",
                           "no stopword list for language \"%s\"; lists exist for english, german, "
                           "french, spanish, italian, portuguese, dutch, swedish, norwegian, "
                           "danish, finnish, russian (set \"stopwords\": false otherwise)",
                           canon);
    }
    text_analyzer *a = calloc(1, sizeof(*a));
    if (!a) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory creating an analyzer");
    a->language = canon;
    a->stemming = cfg->stemming;
    a->stopwords = cfg->stopwords;
    if (a->stopwords) {
        uint32_t slots = 16;
        while (slots < 2 * n_stop) slots *= 2; /* load factor <= 1/2 */
        a->stop_slots = calloc(slots, sizeof(*a->stop_slots));
        a->stop_lens = calloc(slots, sizeof(*a->stop_lens));
        if (!a->stop_slots || !a->stop_lens) {
            text_analyzer_free(a);
            return tdb_err(err, TDB_ENOMEM, NULL, "out of memory creating an analyzer");
        }
        a->stop_mask = slots - 1;
        for (size_t w = 0; w < n_stop; w++) {
            size_t len = strlen(words[w]);
            uint32_t i = hash_bytes(words[w], len) & a->stop_mask;
            while (a->stop_slots[i]) i = (i + 1) & a->stop_mask;
            a->stop_slots[i] = words[w];
            a->stop_lens[i] = (uint32_t)len;
        }
    }
    *out = a;
    return 0;
}

void text_analyzer_free(text_analyzer *a) {
    if (!a) return;
    free(a->stop_slots);
    free(a->stop_lens);
    free(a);
}

void text_tokens_init(text_tokens *t) { memset(t, 0, sizeof(*t)); }

void text_tokens_free(text_tokens *t) {
    if (!t) return;
    free(t->bytes);
    free(t->tok);
    if (t->stemmer) sb_stemmer_delete(t->stemmer);
    memset(t, 0, sizeof(*t));
}

/* Room for `extra` more token bytes. */
static bool bytes_reserve(text_tokens *t, size_t extra) {
    if (t->bytes_len + extra <= t->bytes_cap) return true;
    size_t cap = t->bytes_cap ? t->bytes_cap : 256;
    while (cap < t->bytes_len + extra) cap *= 2;
    char *p = realloc(t->bytes, cap);
    if (!p) return false;
    t->bytes = p;
    t->bytes_cap = cap;
    return true;
}

static bool tok_push(text_tokens *t, size_t off, size_t len) {
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        text_token *p = realloc(t->tok, cap * sizeof(*p));
        if (!p) return false;
        t->tok = p;
        t->cap = cap;
    }
    t->tok[t->count].off = (uint32_t)off;
    t->tok[t->count].len = (uint32_t)len;
    t->count++;
    return true;
}

/* Appends the UTF-8 of cp (<= U+10FFFF, not a surrogate); room reserved. */
static inline size_t put_utf8(char *p, uint32_t cp) {
    if (cp < 0x80) {
        p[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (char)(0xC0 | (cp >> 6));
        p[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (char)(0xE0 | (cp >> 12));
        p[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        p[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    p[0] = (char)(0xF0 | (cp >> 18));
    p[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    p[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    p[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one non-ASCII sequence at p (p < end, *p >= 0x80) with full
 * validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
 * Returns its length, or 0 if invalid. */
static inline size_t get_utf8(const uint8_t *p, const uint8_t *end, uint32_t *cp) {
    uint8_t c = p[0];
    size_t left = (size_t)(end - p);
    if (c < 0xC2) return 0; /* continuation byte, or overlong 2-byte form */
    if (c < 0xE0) {
        if (left < 2 || (p[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return 3;
    }
    if (c < 0xF5) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
              ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        return 4;
    }
    return 0;
}

/* ASCII: 1 for [A-Za-z0-9], else 0 (a separator). */
static const uint8_t ascii_word[128] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* Class byte of one code point, ASCII inline. */
static inline uint32_t cp_class(uint32_t cp) {
    if (cp < 0x80) return ascii_word[cp] ? TEXT_UC_START : TEXT_UC_SEP;
    return text_uc_class(cp);
}

static inline uint32_t cp_fold(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return text_uc_fold(cp);
}

/* A token was written at t->bytes[start..bytes_len): apply the language
 * steps and record it (or drop it). Returns false on allocation failure. */
static bool token_finish(const text_analyzer *a, text_tokens *t, size_t start) {
    size_t len = t->bytes_len - start;
    if (len == 0 || len > TEXT_MAX_TOKEN_BYTES) {
        t->bytes_len = start;
        return true;
    }
    if (a->stopwords && stop_contains(a, t->bytes + start, len)) {
        t->bytes_len = start;
        return true;
    }
    if (a->stemming) {
        if (!t->stemmer || t->stemmer_language != a->language) {
            if (t->stemmer) sb_stemmer_delete(t->stemmer);
            t->stemmer = sb_stemmer_new(a->language, NULL);
            t->stemmer_language = t->stemmer ? a->language : NULL;
            if (!t->stemmer) return false; /* the name was checked: only OOM fails */
        }
        const sb_symbol *stem =
            sb_stemmer_stem(t->stemmer, (const sb_symbol *)(t->bytes + start), (int)len);
        if (!stem) return false;
        int stem_len = sb_stemmer_length(t->stemmer);
        t->bytes_len = start;
        if (stem_len <= 0 || stem_len > TEXT_MAX_TOKEN_BYTES) return true;
        if (!bytes_reserve(t, (size_t)stem_len)) return false;
        memcpy(t->bytes + start, stem, (size_t)stem_len);
        t->bytes_len = start + (size_t)stem_len;
        len = (size_t)stem_len;
    }
    return tok_push(t, start, len);
}

/* Bytes of the longest possible token piece we still copy: once a non-CJK
 * piece passes the limit we stop copying (it will be dropped), so the
 * output never needs more than this per piece. */
#define PIECE_COPY_LIMIT (TEXT_MAX_TOKEN_BYTES + 4)

int text_analyze(const text_analyzer *a, const char *text, size_t len, text_tokens *out,
                 tdb_error *err) {
    const uint8_t *p = (const uint8_t *)text;
    const uint8_t *end = p + len;
    out->bytes_len = 0;
    out->count = 0;
    if (len > TEXT_MAX_TEXT_BYTES)
        return tdb_err(err, TDB_ETOOBIG, NULL,
                       "text of %zu bytes is over the %u-byte limit of one field", len,
                       TEXT_MAX_TEXT_BYTES);

    /* Run state. piece_cjk: the current piece's CJK bit; piece_start: where
     * the current non-CJK piece's bytes begin in out->bytes; cjk_prev: the
     * previous code point of a CJK piece; cjk_n: code points in it so far. */
    bool in_run = false;
    bool piece_cjk = false;
    size_t piece_start = 0;
    uint32_t cjk_prev = 0;
    size_t cjk_n = 0;

    while (p < end) {
        uint32_t cp;
        size_t n;
        if (*p < 0x80) {
            /* ASCII fast path inside a non-CJK piece: copy a whole stretch. */
            if (in_run && !piece_cjk && ascii_word[*p]) {
                const uint8_t *q = p;
                while (q < end && *q < 0x80 && ascii_word[*q]) q++;
                size_t run = (size_t)(q - p);
                size_t have = out->bytes_len - piece_start;
                size_t copy = have >= PIECE_COPY_LIMIT ? 0
                              : (run < PIECE_COPY_LIMIT - have ? run : PIECE_COPY_LIMIT - have);
                if (copy) {
                    if (!bytes_reserve(out, copy)) goto nomem;
                    char *dst = out->bytes + out->bytes_len;
                    for (size_t i = 0; i < copy; i++) {
                        uint8_t c = p[i];
                        dst[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
                    }
                    out->bytes_len += copy;
                }
                p = q;
                continue;
            }
            cp = *p;
            n = 1;
        } else {
            n = get_utf8(p, end, &cp);
            if (n == 0) {
                out->bytes_len = 0;
                out->count = 0;
                return tdb_err(err, TDB_EINVAL, "invalid_utf8",
                               "text is not valid UTF-8 at byte offset %zu (byte 0x%02x); "
                               "send text as UTF-8",
                               (size_t)(p - (const uint8_t *)text), *p);
            }
        }
        uint32_t cls = cp_class(cp);
        uint32_t kind = cls & TEXT_UC_KIND_MASK;
        bool cjk = (cls & TEXT_UC_CJK) != 0;
        bool continues = in_run ? kind != TEXT_UC_SEP : kind == TEXT_UC_START;

        /* Close the current piece when the run ends or CJK-ness changes. */
        if (in_run && (!continues || cjk != piece_cjk)) {
            if (piece_cjk) {
                if (cjk_n == 1) {
                    size_t start = out->bytes_len;
                    if (!bytes_reserve(out, 4)) goto nomem;
                    out->bytes_len += put_utf8(out->bytes + start, cp_fold(cjk_prev));
                    if (!token_finish(a, out, start)) goto nomem;
                }
            } else {
                if (!token_finish(a, out, piece_start)) goto nomem;
            }
            if (!continues) in_run = false;
            else {
                /* new piece in the same run */
                piece_cjk = cjk;
                piece_start = out->bytes_len;
                cjk_n = 0;
            }
        }
        if (continues) {
            if (!in_run) {
                in_run = true;
                piece_cjk = cjk;
                piece_start = out->bytes_len;
                cjk_n = 0;
            }
            if (piece_cjk) {
                if (cjk_n >= 1) {
                    size_t start = out->bytes_len;
                    if (!bytes_reserve(out, 8)) goto nomem;
                    out->bytes_len += put_utf8(out->bytes + start, cp_fold(cjk_prev));
                    out->bytes_len += put_utf8(out->bytes + out->bytes_len, cp_fold(cp));
                    if (!token_finish(a, out, start)) goto nomem;
                }
                cjk_prev = cp;
                cjk_n++;
            } else if (out->bytes_len - piece_start < PIECE_COPY_LIMIT) {
                if (!bytes_reserve(out, 4)) goto nomem;
                out->bytes_len += put_utf8(out->bytes + out->bytes_len, cp_fold(cp));
            }
        }
        p += n;
    }
    if (in_run) {
        if (piece_cjk) {
            if (cjk_n == 1) {
                size_t start = out->bytes_len;
                if (!bytes_reserve(out, 4)) goto nomem;
                out->bytes_len += put_utf8(out->bytes + start, cp_fold(cjk_prev));
                if (!token_finish(a, out, start)) goto nomem;
            }
        } else if (!token_finish(a, out, piece_start)) {
            goto nomem;
        }
    }
    return 0;

nomem:
    out->bytes_len = 0;
    out->count = 0;
    return tdb_err(err, TDB_ENOMEM, NULL, "out of memory analyzing %zu bytes of text", len);
}

int text_tokens_dedup(text_tokens *t, tdb_error *err) {
    /* Queries are short: quadratic is cheaper than a hash set up to a few
     * dozen terms; beyond that sort a copy of the indexes. */
    size_t kept = 0;
    if (t->count <= 64) {
        for (size_t i = 0; i < t->count; i++) {
            bool dup = false;
            const char *s = t->bytes + t->tok[i].off;
            for (size_t j = 0; j < kept && !dup; j++)
                dup = t->tok[j].len == t->tok[i].len &&
                      memcmp(t->bytes + t->tok[j].off, s, t->tok[i].len) == 0;
            if (!dup) t->tok[kept++] = t->tok[i];
        }
        t->count = kept;
        return 0;
    }
    uint32_t slots = 64;
    while (slots < 2 * t->count) slots *= 2;
    uint32_t *table = malloc(slots * sizeof(*table)); /* token index + 1; 0 = empty */
    if (!table) return tdb_err(err, TDB_ENOMEM, NULL, "out of memory deduplicating query terms");
    memset(table, 0, slots * sizeof(*table));
    for (size_t i = 0; i < t->count; i++) {
        const char *s = t->bytes + t->tok[i].off;
        uint32_t len = t->tok[i].len;
        uint32_t h = hash_bytes(s, len) & (slots - 1);
        bool dup = false;
        for (; table[h]; h = (h + 1) & (slots - 1)) {
            const text_token *o = &t->tok[table[h] - 1];
            if (o->len == len && memcmp(t->bytes + o->off, s, len) == 0) {
                dup = true;
                break;
            }
        }
        if (!dup) {
            t->tok[kept] = t->tok[i];
            table[h] = (uint32_t)(kept + 1);
            kept++;
        }
    }
    free(table);
    t->count = kept;
    return 0;
}
