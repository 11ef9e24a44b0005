/*
 * fuzz_analyzer.c: libFuzzer target for text/analyzer.c (text_analyze on
 * hostile text; text_analyzer_new on hostile language names).
 *
 * Input:
 *   byte 0   selector: 0 the default analyzer; 1 english (stemming and
 *            stopwords); 2 german (stemming and stopwords); 3 russian
 *            (stemming); 4 english (stopwords, no stemming); 5 build an
 *            analyzer whose language name is the rest of the input
 *            (bit 3: stemming, bit 4: stopwords) and free it. Only the low
 *            three bits choose; 6 and 7 are the default analyzer again.
 *   byte 1.. the text.
 *
 * Properties checked:
 *   - text_analyze succeeds exactly when the text is valid UTF-8 (as
 *     json_utf8_valid decides; analyzer.h names the same rules);
 *   - every token lies inside the token bytes, is 1..TEXT_MAX_TOKEN_BYTES
 *     bytes and is valid UTF-8; no tokens are left after a failure;
 *   - analyzing again into the same (reused) text_tokens gives the same
 *     tokens;
 *   - text_tokens_dedup keeps the first occurrence of each token, in order.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "text/analyzer.h"
#include "util/json.h"

#define N_ANALYZERS 5
static text_analyzer *analyzers[N_ANALYZERS];

static void analyzers_free(void) {
    for (int i = 0; i < N_ANALYZERS; i++) text_analyzer_free(analyzers[i]);
}

static void analyzers_init(void) {
    static const struct {
        const char *language;
        bool stemming, stopwords;
    } cfgs[N_ANALYZERS] = {
        {NULL, false, false},
        {"english", true, true},
        {"german", true, true},
        {"russian", true, false},
        {"english", false, true},
    };
    for (int i = 0; i < N_ANALYZERS; i++) {
        text_analyzer_config c;
        text_analyzer_config_default(&c);
        c.language = cfgs[i].language;
        c.stemming = cfgs[i].stemming;
        c.stopwords = cfgs[i].stopwords;
        tdb_error err;
        if (text_analyzer_new(&c, &analyzers[i], &err) != 0) {
            fprintf(stderr, "fuzz_analyzer: analyzer %d not available: %s\n", i, err.message);
            analyzers[i] = NULL;
        }
    }
    atexit(analyzers_free);
}

static bool tok_eq(const text_tokens *a, size_t i, const text_tokens *b, size_t j) {
    return a->tok[i].len == b->tok[j].len &&
           memcmp(a->bytes + a->tok[i].off, b->bytes + b->tok[j].off, a->tok[i].len) == 0;
}

static void check_tokens(const text_tokens *t) {
    for (size_t i = 0; i < t->count; i++) {
        const text_token *k = &t->tok[i];
        FUZZ_CHECK(k->len >= 1 && k->len <= TEXT_MAX_TOKEN_BYTES, "token %zu of %u bytes", i, k->len);
        FUZZ_CHECK(k->off <= t->bytes_len && k->len <= t->bytes_len - k->off, "token %zu outside", i);
        FUZZ_CHECK(json_utf8_valid(t->bytes + k->off, k->len), "token %zu is not UTF-8", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    if (!init) {
        fuzz_quiet_log();
        analyzers_init();
        init = true;
    }
    if (size < 1) return 0;
    unsigned sel = data[0] & 7;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    tdb_error err;

    if (sel == 5) {
        char name[96];
        size_t n = len < sizeof name - 1 ? len : sizeof name - 1;
        memcpy(name, text, n);
        name[n] = '\0';
        text_analyzer_config c;
        text_analyzer_config_default(&c);
        c.language = name;
        c.stemming = data[0] & 8;
        c.stopwords = data[0] & 16;
        text_analyzer *a = NULL;
        if (text_analyzer_new(&c, &a, &err) == 0) {
            FUZZ_CHECK(a != NULL, "no analyzer");
            const char *canon = text_analyzer_language(a);
            if (canon) fuzz_touch(canon, strlen(canon));
        } else {
            FUZZ_CHECK(err.code == TDB_EINVAL || err.code == TDB_ENOMEM, "code %d", err.code);
            FUZZ_CHECK(memchr(err.message, '\0', sizeof err.message) != NULL, "unterminated");
        }
        text_analyzer_free(a);
        return 0;
    }
    const text_analyzer *a = analyzers[sel < N_ANALYZERS ? sel : 0];
    if (a == NULL) return 0;

    text_tokens t;
    text_tokens_init(&t);
    int rc = text_analyze(a, text, len, &t, &err);
    bool valid = json_utf8_valid(text, len);
    FUZZ_CHECK((rc == 0) == valid, "analyze returned %d on %s UTF-8", rc, valid ? "valid" : "invalid");
    if (rc != 0) {
        FUZZ_CHECK(rc == TDB_EINVAL || rc == TDB_ENOMEM, "code %d", rc);
        FUZZ_CHECK(t.count == 0, "%zu tokens left after a failure", t.count);
        text_tokens_free(&t);
        return 0;
    }
    check_tokens(&t);

    text_tokens again;
    text_tokens_init(&again);
    FUZZ_CHECK(text_analyze(a, text, len, &again, &err) == 0, "second analyze failed");
    FUZZ_CHECK(text_analyze(a, text, len, &again, &err) == 0, "reused analyze failed");
    FUZZ_CHECK(again.count == t.count, "reused tokens: %zu vs %zu", again.count, t.count);
    for (size_t i = 0; i < t.count; i++) FUZZ_CHECK(tok_eq(&t, i, &again, i), "token %zu differs", i);

    FUZZ_CHECK(text_tokens_dedup(&again, &err) == 0, "dedup failed");
    check_tokens(&again);
    size_t j = 0;
    /* The reference check is quadratic: only for modest token counts. */
    size_t check_n = t.count <= 512 ? t.count : 0;
    if (check_n == 0) j = again.count;
    for (size_t i = 0; i < check_n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++) seen = tok_eq(&t, k, &t, i);
        if (seen) continue;
        FUZZ_CHECK(j < again.count && tok_eq(&t, i, &again, j), "dedup lost token %zu", i);
        j++;
    }
    FUZZ_CHECK(j == again.count, "dedup kept %zu tokens, expected %zu", again.count, j);
    text_tokens_free(&again);
    text_tokens_free(&t);
    return 0;
}
