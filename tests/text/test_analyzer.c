/*
 * test_analyzer.c: the default analyzer against the reference analyzer's
 * recorded output, language analyzers (stopwords, Snowball stemming),
 * CJK bigrams, mixed scripts, invalid UTF-8 and configuration errors.
 *
 * tests/text/data/analyzer_input.txt holds 2362 samples (made by
 * make_analyzer_samples.py beside it) and analyzer_expected.txt the
 * reference's tokens for each line (analyzer.py --tokens), both committed:
 * no Python runs here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text/analyzer.h"

static char *data_path(const char *name) {
    const char *src = __FILE__;
    const char *slash = strrchr(src, '/');
    size_t dir = slash ? (size_t)(slash - src) : 0;
    char *p = malloc(dir + strlen(name) + 16);
    assert_non_null(p);
    sprintf(p, "%.*s%sdata/%s", (int)dir, src, dir ? "/" : "", name);
    return p;
}

static char *read_file(const char *name, size_t *len) {
    char *path = data_path(name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    free(path);
    *len = (size_t)n;
    return buf;
}

/* Tokens joined by single spaces (the reference's --tokens format). */
static char *joined(const text_tokens *t) {
    char *s = malloc(t->bytes_len + t->count + 1);
    assert_non_null(s);
    size_t o = 0;
    for (size_t i = 0; i < t->count; i++) {
        if (i) s[o++] = ' ';
        memcpy(s + o, t->bytes + t->tok[i].off, t->tok[i].len);
        o += t->tok[i].len;
    }
    s[o] = 0;
    return s;
}

static text_analyzer *make(const char *lang, bool stem, bool stop) {
    text_analyzer_config cfg = {lang, stem, stop};
    text_analyzer *a = NULL;
    tdb_error err;
    int rc = text_analyzer_new(&cfg, &a, &err);
    if (rc) fail_msg("analyzer %s: %s", lang ? lang : "default", err.message);
    return a;
}

static void expect_tokens(const text_analyzer *a, const char *text, const char *want) {
    text_tokens t;
    text_tokens_init(&t);
    tdb_error err;
    int rc = text_analyze(a, text, strlen(text), &t, &err);
    if (rc) fail_msg("analyze \"%s\": %s", text, err.message);
    char *got = joined(&t);
    if (strcmp(got, want) != 0) fail_msg("\"%s\": got \"%s\", want \"%s\"", text, got, want);
    free(got);
    text_tokens_free(&t);
}

static void default_analyzer_matches_reference_samples(void **state) {
    (void)state;
    size_t in_len, ex_len;
    char *in = read_file("analyzer_input.txt", &in_len);
    char *ex = read_file("analyzer_expected.txt", &ex_len);
    text_analyzer *a = make(NULL, false, false);
    text_tokens t;
    text_tokens_init(&t);
    char *ip = in, *ep = ex;
    size_t lines = 0, failures = 0;
    while (ip < in + in_len) {
        char *inl = memchr(ip, '\n', (size_t)(in + in_len - ip));
        char *exl = memchr(ep, '\n', (size_t)(ex + ex_len - ep));
        assert_non_null(inl);
        assert_non_null(exl);
        tdb_error err;
        assert_int_equal(text_analyze(a, ip, (size_t)(inl - ip), &t, &err), 0);
        char *got = joined(&t);
        size_t want_len = (size_t)(exl - ep);
        if (strlen(got) != want_len || memcmp(got, ep, want_len) != 0) {
            if (failures < 5)
                print_error("line %zu: got \"%s\", want \"%.*s\"\n", lines + 1, got, (int)want_len, ep);
            failures++;
        }
        free(got);
        lines++;
        ip = inl + 1;
        ep = exl + 1;
    }
    assert_true(ep == ex + ex_len);
    assert_int_equal(lines, 2362);
    assert_int_equal(failures, 0);
    text_tokens_free(&t);
    text_analyzer_free(a);
    free(in);
    free(ex);
}

static void default_analyzer_reference_examples(void **state) {
    (void)state;
    text_analyzer *a = make(NULL, false, false);
    expect_tokens(a, "Hello World 42 x86_64 v2.0", "hello world 42 x86 64 v2 0");
    expect_tokens(a, "don't", "don t");
    expect_tokens(a, "STRA\xE1\xBA\x9E" "E", "stra\xC3\x9F" "e");        /* capital sharp s -> sharp s */
    expect_tokens(a, "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3 \xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82", /* ΟΔΟΣ οδος */
                  "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x83 \xCE\xBF\xCE\xB4\xCE\xBF\xCF\x83");
    expect_tokens(a, "\xC4\xB0stanbul", "\xC4\xB0stanbul");             /* U+0130 stays */
    expect_tokens(a, "Cafe\xCC\x81", "cafe\xCC\x81");                    /* not normalized */
    expect_tokens(a, "\xE2\x84\xAA", "k");                                /* Kelvin sign */
    expect_tokens(a, "a\nb\tc\xC2\xA0" "d", "a b c d");
    expect_tokens(a, "a \xCC\x81 b", "a b");                              /* lone mark */
    expect_tokens(a, "\xE2\x9D\xA4\xEF\xB8\x8Fok", "ok");                  /* emoji + FE0F */
    expect_tokens(a, "1\xCC\x81x", "1\xCC\x81x");
    expect_tokens(a, "x\xC2\xB2y \xD9\xA4\xD9\xA2", "x y \xD9\xA4\xD9\xA2"); /* No separates, Nd not */
    expect_tokens(a, "", "");
    text_analyzer_free(a);
}

static void cjk_runs_become_overlapping_bigrams(void **state) {
    (void)state;
    text_analyzer *a = make(NULL, false, false);
    /* 日本語テキスト */
    expect_tokens(a, "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88",
                  "\xE6\x97\xA5\xE6\x9C\xAC \xE6\x9C\xAC\xE8\xAA\x9E \xE8\xAA\x9E\xE3\x83\x86 "
                  "\xE3\x83\x86\xE3\x82\xAD \xE3\x82\xAD\xE3\x82\xB9 \xE3\x82\xB9\xE3\x83\x88");
    expect_tokens(a, "\xE6\x97\xA5", "\xE6\x97\xA5");                     /* single: itself */
    expect_tokens(a, "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",               /* 한국어 */
                  "\xED\x95\x9C\xEA\xB5\xAD \xEA\xB5\xAD\xEC\x96\xB4");
    expect_tokens(a, "\xE6\x97\xA5\xE6\x9C\xAC\xE3\x80\x82\xE4\xB8\xAD\xE5\x9B\xBD", /* 日本。中国 */
                  "\xE6\x97\xA5\xE6\x9C\xAC \xE4\xB8\xAD\xE5\x9B\xBD");
    text_analyzer_free(a);
}

static void mixed_scripts_split_where_cjk_changes(void **state) {
    (void)state;
    text_analyzer *a = make(NULL, false, false);
    expect_tokens(a, "abc\xE6\x97\xA5\xE6\x9C\xAC", "abc \xE6\x97\xA5\xE6\x9C\xAC");
    expect_tokens(a, "\xE6\x97\xA5\xE6\x9C\xAC" "abc\xE8\xAA\x9E", "\xE6\x97\xA5\xE6\x9C\xAC abc \xE8\xAA\x9E");
    /* Cyrillic + Latin + Greek in one run stay one token */
    expect_tokens(a, "\xD0\x9F\xD1\x80\xD0\xB8" "ABC\xCE\xA3", "\xD0\xBF\xD1\x80\xD0\xB8" "abc\xCF\x83");
    /* fullwidth Latin is not CJK: one token, folded */
    expect_tokens(a, "\xEF\xBC\xA1\xEF\xBC\xA2", "\xEF\xBD\x81\xEF\xBD\x82");
    /* a mark after a CJK code point starts a non-CJK piece of its own */
    expect_tokens(a, "\xE6\x97\xA5\xCC\x81", "\xE6\x97\xA5 \xCC\x81");
    text_analyzer_free(a);
}

static void tokens_over_255_bytes_are_dropped(void **state) {
    (void)state;
    text_analyzer *a = make(NULL, false, false);
    char buf[700];
    memset(buf, 'A', 255);
    buf[255] = 0;
    text_tokens t;
    text_tokens_init(&t);
    assert_int_equal(text_analyze(a, buf, 255, &t, NULL), 0);
    assert_int_equal(t.count, 1);
    assert_int_equal(t.tok[0].len, 255);
    assert_int_equal(t.bytes[0], 'a');
    memcpy(buf, "x ", 2);
    memset(buf + 2, 'b', 256);
    memcpy(buf + 258, " y", 3);
    assert_int_equal(text_analyze(a, buf, strlen(buf), &t, NULL), 0);
    assert_int_equal(t.count, 2);
    /* 128 x U+00E9 = 256 bytes: dropped; 600 bytes of it too */
    for (int i = 0; i < 300; i++) memcpy(buf + 2 * i, "\xC3\xA9", 2);
    assert_int_equal(text_analyze(a, buf, 256, &t, NULL), 0);
    assert_int_equal(t.count, 0);
    assert_int_equal(text_analyze(a, buf, 600, &t, NULL), 0);
    assert_int_equal(t.count, 0);
    assert_int_equal(text_analyze(a, buf, 254, &t, NULL), 0);
    assert_int_equal(t.count, 1);
    text_tokens_free(&t);
    text_analyzer_free(a);
}

static void invalid_utf8_is_rejected(void **state) {
    (void)state;
    text_analyzer *a = make(NULL, false, false);
    static const struct {
        const char *bytes;
        size_t len;
        size_t offset;
    } bad[] = {
        {"ok \xC0\xAF", 5, 3},              /* overlong '/' */
        {"\xE0\x80\xAF", 3, 0},             /* overlong 3-byte */
        {"ab \xED\xA0\x80", 6, 3},          /* surrogate U+D800 */
        {"\xF4\x90\x80\x80", 4, 0},         /* U+110000 */
        {"abc \xE6\x97", 6, 4},             /* truncated at the end */
        {"\x80" "abc", 4, 0},               /* lone continuation */
        {"word\xFF", 5, 4},                 /* never valid */
        {"\xF5\x80\x80\x80", 4, 0},
        {"x \xC3(", 4, 2},                  /* bad continuation */
        {"\xF0\x8F\xBF\xBF", 4, 0},         /* overlong 4-byte */
    };
    text_tokens t;
    text_tokens_init(&t);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tdb_error err;
        int rc = text_analyze(a, bad[i].bytes, bad[i].len, &t, &err);
        assert_int_equal(rc, TDB_EINVAL);
        assert_int_equal(err.code, TDB_EINVAL);
        assert_string_equal(err.name, "invalid_utf8");
        char want[64];
        snprintf(want, sizeof(want), "byte offset %zu ", bad[i].offset);
        if (!strstr(err.message, want)) fail_msg("case %zu: message \"%s\"", i, err.message);
        assert_int_equal(t.count, 0);
    }
    /* over the size limit: refused before a byte is read */
    assert_int_equal(text_analyze(a, "abc", (size_t)TEXT_MAX_TEXT_BYTES + 1, &t, NULL), TDB_ETOOBIG);
    /* the largest code point and a 4-byte letter are fine */
    assert_int_equal(text_analyze(a, "\xF4\x8F\xBF\xBF \xF0\xA0\x80\x80", 9, &t, NULL), 0);
    assert_int_equal(t.count, 1); /* U+10FFFF is unassigned; U+20000 is a CJK token */
    text_tokens_free(&t);
    text_analyzer_free(a);
}

static void english_stemming_running_to_run(void **state) {
    (void)state;
    text_analyzer *a = make("english", true, false);
    expect_tokens(a, "Running runs RUN ran", "run run run ran");
    expect_tokens(a, "connections connected connecting", "connect connect connect");
    expect_tokens(a, "The quick foxes", "the quick fox");
    text_analyzer_free(a);
}

static void english_stopwords_are_removed_before_stemming(void **state) {
    (void)state;
    text_analyzer *a = make("english", true, true);
    expect_tokens(a, "The dogs were running in the park", "dog run park");
    expect_tokens(a, "THE AND OF", "");
    text_analyzer_free(a);
    /* stopwords without stemming */
    a = make("english", false, true);
    expect_tokens(a, "The dogs were running", "dogs running");
    text_analyzer_free(a);
}

static void german_french_russian_samples(void **state) {
    (void)state;
    text_analyzer *de = make("german", true, true);
    /* Die Häuser und die Straße waren schöner als früher */
    expect_tokens(de, "Die H\xC3\xA4user und die Stra\xC3\x9F" "e waren sch\xC3\xB6ner als fr\xC3\xBCher",
                  "haus strass schon fruh");
    text_analyzer_free(de);
    text_analyzer *fr = make("french", true, true);
    /* Les chaussures rouges étaient continuellement magnifiques */
    expect_tokens(fr, "Les chaussures rouges \xC3\xA9taient continuellement magnifiques",
                  "chaussur roug continuel magnif");
    expect_tokens(fr, "l'arbre", "arbre"); /* elided article is a stopword */
    text_analyzer_free(fr);
    text_analyzer *ru = make("russian", true, true);
    /* Книги ЛЕЖАЛИ на столе, и мы читали книгами */
    expect_tokens(ru,
                  "\xD0\x9A\xD0\xBD\xD0\xB8\xD0\xB3\xD0\xB8 \xD0\x9B\xD0\x95\xD0\x96\xD0\x90\xD0\x9B\xD0\x98 "
                  "\xD0\xBD\xD0\xB0 \xD1\x81\xD1\x82\xD0\xBE\xD0\xBB\xD0\xB5, \xD0\xB8 \xD0\xBC\xD1\x8B "
                  "\xD1\x87\xD0\xB8\xD1\x82\xD0\xB0\xD0\xBB\xD0\xB8 \xD0\xBA\xD0\xBD\xD0\xB8\xD0\xB3\xD0\xB0\xD0\xBC\xD0\xB8",
                  "\xD0\xBA\xD0\xBD\xD0\xB8\xD0\xB3 \xD0\xBB\xD0\xB5\xD0\xB6\xD0\xB0 \xD1\x81\xD1\x82\xD0\xBE\xD0\xBB "
                  "\xD1\x87\xD0\xB8\xD1\x82\xD0\xB0 \xD0\xBA\xD0\xBD\xD0\xB8\xD0\xB3");
    text_analyzer_free(ru);
}

static void every_snowball_language_builds_and_stems(void **state) {
    (void)state;
    size_t n = 0;
    for (const char **l = text_languages(); *l; l++, n++) {
        text_analyzer *a = make(*l, true, false);
        text_tokens t;
        text_tokens_init(&t);
        const char *text = "Running words \xC3\xA9t\xC3\xA9 \xD0\xBA\xD0\xBD\xD0\xB8\xD0\xB3\xD0\xB8";
        assert_int_equal(text_analyze(a, text, strlen(text), &t, NULL), 0);
        assert_true(t.count >= 3);
        text_tokens_free(&t);
        text_analyzer_free(a);
        size_t words = 0;
        if (text_stopwords(*l, &words)) {
            a = make(*l, true, true);
            text_analyzer_free(a);
            assert_true(words > 20);
        }
    }
    assert_true(n >= 20);
}

static void analyzer_config_errors_are_clear(void **state) {
    (void)state;
    text_analyzer *a = NULL;
    tdb_error err;
    text_analyzer_config cfg = {"klingon", true, false};
    assert_int_equal(text_analyzer_new(&cfg, &a, &err), TDB_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err.message, "klingon"));
    assert_non_null(strstr(err.message, "english"));
    text_analyzer_config nolang = {NULL, true, false};
    assert_int_equal(text_analyzer_new(&nolang, &a, &err), TDB_EINVAL);
    text_analyzer_config stop_nolang = {"none", false, true};
    assert_int_equal(text_analyzer_new(&stop_nolang, &a, &err), TDB_EINVAL);
    text_analyzer_config turkish_stop = {"turkish", true, true};
    assert_int_equal(text_analyzer_new(&turkish_stop, &a, &err), TDB_EINVAL);
    assert_non_null(strstr(err.message, "turkish"));
    text_analyzer_config none = {"none", false, false};
    assert_int_equal(text_analyzer_new(&none, &a, &err), 0);
    assert_null(text_analyzer_language(a));
    expect_tokens(a, "Running", "running");
    text_analyzer_free(a);
    text_analyzer_config_language(&cfg, "turkish");
    assert_true(cfg.stemming);
    assert_false(cfg.stopwords);
    assert_int_equal(text_analyzer_new(&cfg, &a, &err), 0);
    assert_string_equal(text_analyzer_language(a), "turkish");
    text_analyzer_free(a);
    text_analyzer_free(NULL);
}

static void dedup_keeps_first_occurrences_in_order(void **state) {
    (void)state;
    text_analyzer *a = make(NULL, false, false);
    text_tokens t;
    text_tokens_init(&t);
    assert_int_equal(text_analyze(a, "b a b c a d", 11, &t, NULL), 0);
    assert_int_equal(text_tokens_dedup(&t, NULL), 0);
    char *s = joined(&t);
    assert_string_equal(s, "b a c d");
    free(s);
    /* the hashed path (more than 64 tokens) */
    char text[2000];
    size_t o = 0;
    for (int i = 0; i < 300; i++) o += (size_t)sprintf(text + o, "w%d ", (i * 7) % 50);
    assert_int_equal(text_analyze(a, text, o, &t, NULL), 0);
    assert_int_equal(t.count, 300);
    assert_int_equal(text_tokens_dedup(&t, NULL), 0);
    assert_int_equal(t.count, 50);
    assert_int_equal(t.tok[1].len, 2);
    assert_memory_equal(t.bytes + t.tok[1].off, "w7", 2);
    text_tokens_free(&t);
    text_analyzer_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_analyzer_matches_reference_samples),
        cmocka_unit_test(default_analyzer_reference_examples),
        cmocka_unit_test(cjk_runs_become_overlapping_bigrams),
        cmocka_unit_test(mixed_scripts_split_where_cjk_changes),
        cmocka_unit_test(tokens_over_255_bytes_are_dropped),
        cmocka_unit_test(invalid_utf8_is_rejected),
        cmocka_unit_test(english_stemming_running_to_run),
        cmocka_unit_test(english_stopwords_are_removed_before_stemming),
        cmocka_unit_test(german_french_russian_samples),
        cmocka_unit_test(every_snowball_language_builds_and_stems),
        cmocka_unit_test(analyzer_config_errors_are_clear),
        cmocka_unit_test(dedup_keeps_first_occurrences_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
