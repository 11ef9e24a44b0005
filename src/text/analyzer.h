/*
 * analyzer.h: text analyzers: UTF-8 text -> tokens (terms) for indexing and
 * for queries.
 * Layer: text. Specification: docs/text.md; the default analyzer is exactly
 * the reference analyzer of the text bench kit (analyzer.py).
 *
 * Default analyzer (text_analyzer_config with no language):
 *   1. A run starts with a letter (Lu Ll Lt Lm Lo) or decimal digit (Nd)
 *      and continues, as long as possible, over letters, digits and marks
 *      (Mn Mc Me). Every other code point separates.
 *   2. A run is split where CJK-ness changes (ranges in unicode_tables.c);
 *      a non-CJK piece is one token, a CJK piece of n >= 2 code points gives
 *      its n-1 overlapping bigrams, a CJK piece of 1 gives itself.
 *   3. Every code point is replaced by its simple case folding.
 *   4. Tokens over TEXT_MAX_TOKEN_BYTES bytes (after folding) are dropped.
 *   No normalization, no accent folding. Unicode 15.0.0 (pinned tables).
 * Language analyzers: the same steps, then (optionally) stopwords removed,
 * then (optionally) Snowball stemming (libstemmer, every algorithm of
 * sb_stemmer_list()). A stemmed token that is empty or over the limit is
 * dropped too.
 *
 * Concurrency: a text_analyzer is immutable after text_analyzer_new and may
 * be shared by any number of threads. A text_tokens is one caller's output
 * and scratch (it owns the Snowball stemmer, which is not thread-safe):
 * use one per thread.
 * Ownership: text_analyzer_free and text_tokens_free release everything;
 * token bytes live in the text_tokens until the next analyze or free.
 */
#ifndef TDB_TEXT_ANALYZER_H
#define TDB_TEXT_ANALYZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"

/* Longest token kept, in UTF-8 bytes after folding (and stemming): longer
 * ones are junk (base64, hashes) and would bloat the term dictionary. */
#define TEXT_MAX_TOKEN_BYTES 255
/* Largest text analyzed in one call: token offsets are 32-bit and CJK
 * bigrams can double the bytes, so 1 GiB of input always fits. */
#define TEXT_MAX_TEXT_BYTES (1u << 30)
/* Longest language name accepted (the Snowball names are short). */
#define TEXT_LANGUAGE_MAX_BYTES 32

typedef struct text_analyzer_config {
    const char *language; /* NULL, "" or "none": no language; else a Snowball name ("english") */
    bool stemming;        /* Snowball stemming (needs a language) */
    bool stopwords;       /* drop the language's stopwords (needs a language with a list) */
} text_analyzer_config;

/* The default analyzer's config (no language, no stemming, no stopwords). */
void text_analyzer_config_default(text_analyzer_config *cfg);
/* A language's API defaults: stemming on, stopwords off. */
void text_analyzer_config_language(text_analyzer_config *cfg, const char *language);

typedef struct text_analyzer text_analyzer;

/* Validates cfg and builds an analyzer. TDB_EINVAL for an unknown language
 * (the message lists the known ones), stemming or stopwords without a
 * language, or stopwords for a language without a list. */
int text_analyzer_new(const text_analyzer_config *cfg, text_analyzer **out, tdb_error *err);
void text_analyzer_free(text_analyzer *a); /* NULL is a no-op */
/* Canonical language name, or NULL for the default analyzer. */
const char *text_analyzer_language(const text_analyzer *a);

/* One token: bytes at tokens->bytes + off, len bytes (not NUL-terminated). */
typedef struct text_token {
    uint32_t off;
    uint32_t len;
} text_token;

typedef struct text_tokens {
    char *bytes;          /* token bytes, back to back */
    size_t bytes_len;
    size_t bytes_cap;
    text_token *tok;      /* tokens in text order (duplicates kept) */
    size_t count;
    size_t cap;
    /* scratch owned by this struct */
    struct sb_stemmer *stemmer;     /* for stemmer_language */
    const char *stemmer_language;   /* canonical name the stemmer was made for */
} text_tokens;

void text_tokens_init(text_tokens *t);
/* Frees the buffers and the stemmer; t may be reused after text_tokens_init. */
void text_tokens_free(text_tokens *t);

/* Analyzes text[0..len) into out (cleared first). TDB_EINVAL when text is
 * not valid UTF-8 (overlong forms, surrogates, > U+10FFFF, truncated
 * sequences; the message gives the byte offset); TDB_ETOOBIG over
 * TEXT_MAX_TEXT_BYTES; TDB_ENOMEM. On failure out holds no tokens. */
int text_analyze(const text_analyzer *a, const char *text, size_t len, text_tokens *out,
                 tdb_error *err);

/* Keeps the first occurrence of each distinct token, in order (query terms
 * are the distinct tokens of the query in order of first occurrence). */
int text_tokens_dedup(text_tokens *t, tdb_error *err);

/* Snowball algorithm names (NULL-terminated, static). */
const char **text_languages(void);
/* The stopword list of a canonical language name, or NULL (sets *n). The
 * words are folded (lower case) UTF-8, static. */
const char *const *text_stopwords(const char *language, size_t *n);

#endif
