/*
 * test_util.c: unit tests for the small util modules: buf.c, crc32c.c,
 * clock.c, error.c and log.c.
 *
 * crc32c.c is included here (under another name for its one public
 * function) so the test can call both of its private paths, the SSE4.2
 * instruction and the table, and check they agree; the library's own
 * crc32c_extend is tested as well, through its declaration below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

#define crc32c_extend crc32c_extend_private_copy
#include "util/crc32c.c"
#undef crc32c_extend
/* The library's function (crc32c.h was included above under the macro). */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t len);

static uint64_t rng_state = 0x0123456789ABCDEFull;
static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* ------------------------------------------------------------------ */
/* buf                                                                 */

static void buf_appends_and_stays_nul_terminated(void **state) {
    (void)state;
    buf b = BUF_INIT;
    buf_append(&b, "abc", 3);
    buf_putc(&b, 'd');
    buf_puts(&b, "ef");
    buf_append(&b, NULL, 0);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "abcdef");
    assert_true(b.cap > b.len);
    assert_false(buf_failed(&b));
    /* Growth well past the first block keeps every byte. */
    for (int i = 0; i < 100000; i++) buf_putc(&b, (char)('a' + i % 26));
    assert_int_equal(b.len, 100006);
    assert_int_equal(b.data[b.len], '\0');
    for (int i = 0; i < 100000; i++) assert_int_equal(b.data[6 + i], 'a' + i % 26);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    buf_free(&b); /* twice is fine */
}

static void buf_printf_short_and_long(void **state) {
    (void)state;
    buf b = BUF_INIT;
    buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data, "42-x");
    /* Outputs around the 256-byte stack buffer inside buf_printf. */
    for (int n = 250; n <= 260; n++) {
        buf_reset(&b);
        buf_puts(&b, "<");
        buf_printf(&b, "%*s|", n - 1, "z");
        assert_int_equal(b.len, (size_t)n + 1);
        assert_int_equal(b.data[0], '<');
        assert_int_equal(b.data[n - 1], 'z');
        assert_int_equal(b.data[n], '|');
        assert_int_equal(b.data[n + 1], '\0');
    }
    char big[5000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_reset(&b);
    buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, sizeof big + 1);
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(strlen(b.data), b.len);
    buf_free(&b);
}

static void buf_little_endian_puts_and_loads(void **state) {
    (void)state;
    buf b = BUF_INIT;
    buf_put_u8(&b, 0xAB);
    buf_put_u16(&b, 0x1234);
    buf_put_u32(&b, 0xDEADBEEFu);
    buf_put_u64(&b, 0x0102030405060708ull);
    const uint8_t want[] = {0xAB, 0x34, 0x12, 0xEF, 0xBE, 0xAD, 0xDE, 8, 7, 6, 5, 4, 3, 2, 1};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    assert_int_equal(load_u16(b.data + 1), 0x1234);
    assert_int_equal(load_u32(b.data + 3), 0xDEADBEEFu); /* unaligned */
    assert_true(load_u64(b.data + 7) == 0x0102030405060708ull);
    uint8_t t[9];
    store_u32(t + 1, 0x89ABCDEFu);
    assert_int_equal(t[1], 0xEF);
    assert_int_equal(t[4], 0x89);
    assert_int_equal(load_u32(t + 1), 0x89ABCDEFu);
    store_u64(t + 1, 0xFFEEDDCCBBAA9988ull);
    assert_int_equal(t[1], 0x88);
    assert_int_equal(t[8], 0xFF);
    assert_true(load_u64(t + 1) == 0xFFEEDDCCBBAA9988ull);
    buf_free(&b);
}

static void buf_reset_keeps_memory(void **state) {
    (void)state;
    buf b = BUF_INIT;
    buf_reset(&b); /* on an empty buffer: no-op */
    buf_puts(&b, "hello");
    char *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");
    buf_puts(&b, "x");
    assert_string_equal(b.data, "x");
    buf_free(&b);
}

static void buf_steal_hands_over_data(void **state) {
    (void)state;
    buf b = BUF_INIT;
    buf_puts(&b, "owned");
    char *s = buf_steal(&b);
    assert_string_equal(s, "owned");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);
    /* A buffer nothing was appended to steals as "" (it used to hand back
     * uninitialized memory). */
    s = buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void buf_reserve_keeps_fresh_buffer_terminated(void **state) {
    (void)state;
    buf b = BUF_INIT;
    assert_true(buf_reserve(&b, 1000));
    assert_true(b.cap >= 1001);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_free(&b);
}

static void buf_failure_is_sticky(void **state) {
    (void)state;
    buf b = BUF_INIT;
    buf_puts(&b, "abc");
    assert_false(buf_reserve(&b, SIZE_MAX - 1)); /* len + extra + 1 would wrap */
    assert_true(buf_failed(&b));
    assert_false(buf_reserve(&b, SIZE_MAX / 2 + 7)); /* sticky */
    buf_puts(&b, "more");
    buf_printf(&b, "%d", 5);
    assert_int_equal(b.len, 3);
    assert_null(buf_steal(&b));
    assert_false(buf_failed(&b)); /* steal released and reset it */
    buf_puts(&b, "ok");
    assert_string_equal(b.data, "ok");
    buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* crc32c                                                              */

/* Bit-at-a-time reference, straight from the definition. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static void crc32c_known_vectors(void **state) {
    (void)state;
    /* Through the library's crc32c_extend (crc32c() here would be the copy). */
    assert_int_equal(crc32c_extend(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_extend(0, "", 0), 0);
    assert_int_equal(crc32c_extend(0, NULL, 0), 0);
    /* RFC 3720 (iSCSI) appendix B.4 vectors. */
    uint8_t v[32];
    memset(v, 0, sizeof v);
    assert_int_equal(crc32c_extend(0, v, 32), 0x8A9136AAu);
    memset(v, 0xFF, sizeof v);
    assert_int_equal(crc32c_extend(0, v, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) v[i] = (uint8_t)i;
    assert_int_equal(crc32c_extend(0, v, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) v[i] = (uint8_t)(31 - i);
    assert_int_equal(crc32c_extend(0, v, 32), 0x113FDB5Cu);
    assert_int_equal(crc32c_extend(0, "a", 1), 0xC1D04330u);
    assert_int_equal(crc_bitwise(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
}

static void crc32c_extend_equals_whole(void **state) {
    (void)state;
    uint8_t data[1000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)rng_next();
    uint32_t whole = crc32c_extend(0, data, sizeof data);
    for (size_t cut = 0; cut <= sizeof data; cut += 37) {
        uint32_t c = crc32c_extend(0, data, cut);
        c = crc32c_extend(c, data + cut, sizeof data - cut);
        assert_int_equal(c, whole);
    }
    /* Byte at a time. */
    uint32_t c = 0;
    for (size_t i = 0; i < sizeof data; i++) c = crc32c_extend(c, data + i, 1);
    assert_int_equal(c, whole);
}

static void crc32c_hardware_and_table_paths_agree(void **state) {
    (void)state;
    pthread_once(&init_once, crc32c_init);
    uint8_t *data = malloc(1000 + 16);
    assert_non_null(data);
    for (size_t len = 0; len <= 1000; len++) {
        size_t skew = len % 16; /* unaligned starts too */
        for (size_t i = 0; i < len; i++) data[skew + i] = (uint8_t)rng_next();
        const uint8_t *p = data + skew;
        uint32_t ref = crc_bitwise(0, p, len);
        uint32_t table_path = ~crc_table(~0u, p, len);
        assert_int_equal(table_path, ref);
#if defined(__x86_64__)
        if (have_sse42) {
            uint32_t hw_path = ~crc_hw(~0u, p, len);
            assert_int_equal(hw_path, ref);
        }
#endif
        assert_int_equal(crc32c_extend(0, p, len), ref);          /* the library */
        assert_int_equal(crc32c_extend_private_copy(0, p, len), ref);
        uint32_t seed = (uint32_t)rng_next();                     /* extending, too */
        assert_int_equal(crc32c_extend(seed, p, len), crc_bitwise(seed, p, len));
    }
    free(data);
#if defined(__x86_64__)
    if (!have_sse42) print_message("note: no SSE4.2 here, only the table path was checked\n");
#endif
}

/* ------------------------------------------------------------------ */
/* clock                                                               */

static void assert_duration(const char *text, int64_t want) {
    int64_t ms = -12345;
    if (clock_parse_duration(text, &ms) != 0) print_error("rejected \"%s\"\n", text);
    assert_int_equal(clock_parse_duration(text, &ms), 0);
    assert_int_equal(ms, want);
}

static void assert_bad_duration(const char *text) {
    int64_t ms = -12345;
    if (clock_parse_duration(text, &ms) == 0) print_error("accepted \"%s\"\n", text ? text : "NULL");
    assert_int_equal(clock_parse_duration(text, &ms), -1);
    assert_int_equal(ms, -12345); /* untouched */
}

static void clock_parses_durations(void **state) {
    (void)state;
    assert_duration("300s", 300000);
    assert_duration("5m", 300000);
    assert_duration("6h", 21600000);
    assert_duration("7d", 604800000);
    assert_duration("250ms", 250);
    assert_duration("10", 10000); /* a bare number is seconds */
    assert_duration("0", 0);
    assert_duration("0s", 0);
    assert_duration("1.5h", 5400000);
    assert_duration("2.5d", 216000000);
    assert_duration("0.001s", 1);
    assert_duration("0.29s", 290); /* exact: no binary-fraction rounding down to 289 */
    assert_duration("0.0001s", 0);
    assert_duration("1.0000000000001s", 1000);
    assert_duration("007s", 7000);
    assert_duration("106751991167d", 106751991167LL * 86400000LL);
    assert_duration("9223372036854775807ms", INT64_MAX);
}

static void clock_rejects_bad_durations(void **state) {
    (void)state;
    const char *bad[] = {"", "s", "ms", "5x", "5 s", " 5s", "5s ", "-5s", "+5s", "5S", "5sec",
                         "5mm", "5hs", "nan", "inf", "infinity", "0x10", "0x10s", "1e3", "1e3s",
                         ".5s", "5.s", "5..5s", "5.5.5s", "1,5h", "5m\n",
                         "106751991168d", "99999999999999999999", "9223372036854775808ms",
                         "9223372036854775807s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_bad_duration(bad[i]);
    assert_bad_duration(NULL);
}

static void assert_rfc3339(int64_t ms, const char *want) {
    char out[32];
    memset(out, 'X', sizeof out);
    clock_format_rfc3339(ms, out);
    if (strcmp(out, want) != 0) print_error("%lld: got %s want %s\n", (long long)ms, out, want);
    assert_string_equal(out, want);
}

static void clock_formats_rfc3339(void **state) {
    (void)state;
    assert_rfc3339(0, "1970-01-01T00:00:00.000Z");
    assert_rfc3339(1, "1970-01-01T00:00:00.001Z");
    assert_rfc3339(1700000000123LL, "2023-11-14T22:13:20.123Z");
    assert_rfc3339(951782400000LL, "2000-02-29T00:00:00.000Z"); /* leap day */
    assert_rfc3339(951868799999LL, "2000-02-29T23:59:59.999Z");
    assert_rfc3339(4102444800000LL, "2100-01-01T00:00:00.000Z");
    assert_rfc3339(253402300799999LL, "9999-12-31T23:59:59.999Z");
    /* Before the epoch: floor, not truncation toward zero. */
    assert_rfc3339(-1, "1969-12-31T23:59:59.999Z");
    assert_rfc3339(-999, "1969-12-31T23:59:59.001Z");
    assert_rfc3339(-1000, "1969-12-31T23:59:59.000Z");
    assert_rfc3339(-1001, "1969-12-31T23:59:58.999Z");
    /* Five-digit years are written in full, not cut off. */
    assert_rfc3339(253402300800000LL, "10000-01-01T00:00:00.000Z");
    /* Extremes do not overflow the 32-byte buffer. */
    char out[32];
    clock_format_rfc3339(INT64_MAX, out);
    assert_true(strlen(out) < sizeof out);
    clock_format_rfc3339(INT64_MIN, out);
    assert_true(strlen(out) < sizeof out);
}

static void clock_test_mode_moves_only_when_advanced(void **state) {
    (void)state;
    assert_false(clock_is_test());
    int64_t wall = (int64_t)time(NULL) * 1000;
    int64_t now = clock_now_ms();
    assert_true(now >= wall - 5000 && now <= wall + 5000);
    /* Without test mode, advancing does nothing to the clock. */
    int64_t r = clock_advance_ms(86400000);
    assert_true(r < wall + 3600000);

    clock_use_test(true);
    assert_true(clock_is_test());
    int64_t t0 = clock_now_ms();
    assert_int_equal(clock_now_ms(), t0);
    assert_int_equal(clock_advance_ms(7LL * 86400000), t0 + 7LL * 86400000);
    assert_int_equal(clock_now_ms(), t0 + 7LL * 86400000);
    assert_int_equal(clock_advance_ms(1), t0 + 7LL * 86400000 + 1);
    clock_use_test(false);
    assert_false(clock_is_test());
    now = clock_now_ms();
    assert_true(now < t0 + 86400000);

    uint64_t a = clock_mono_ns(), b = clock_mono_ns();
    assert_true(b >= a);
    assert_true(a > 0);
}

/* ------------------------------------------------------------------ */
/* error and log                                                       */

/* Runs fn with stderr sent to /dev/null (log output is not the test's). */
static void quietly(void (*fn)(void *), void *arg) {
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && devnull >= 0);
    dup2(devnull, STDERR_FILENO);
    fn(arg);
    dup2(saved, STDERR_FILENO);
    close(devnull);
    close(saved);
}

static void error_tdb_err_fills_and_returns_code(void **state) {
    (void)state;
    tdb_error err;
    memset(&err, 0x55, sizeof err);
    assert_int_equal(tdb_err(&err, TDB_EINVAL, "dimension_mismatch", "want %d, got %d", 3, 4),
                     TDB_EINVAL);
    assert_int_equal(err.code, TDB_EINVAL);
    assert_string_equal(err.name, "dimension_mismatch");
    assert_string_equal(err.message, "want 3, got 4");
    /* No name: the code's default. */
    assert_int_equal(tdb_err(&err, TDB_ENOTFOUND, NULL, "no such collection"), TDB_ENOTFOUND);
    assert_string_equal(err.name, "not_found");
    /* NULL err: just the code. */
    assert_int_equal(tdb_err(NULL, TDB_EIO, NULL, "x"), TDB_EIO);
    /* Long messages and names are cut, never overflow. */
    char longmsg[2000];
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    tdb_err(&err, TDB_EINVAL, longmsg, "%s", longmsg);
    assert_int_equal(strlen(err.message), sizeof err.message - 1);
    assert_int_equal(strlen(err.name), sizeof err.name - 1);
    tdb_err_clear(&err);
    assert_int_equal(err.code, TDB_OK);
    assert_string_equal(err.name, "");
    assert_string_equal(err.message, "");
    tdb_err_clear(NULL);
}

static void error_codes_have_names_and_strings(void **state) {
    (void)state;
    struct {
        int code;
        const char *name;
    } names[] = {
        {TDB_EINVAL, "invalid_request"},   {TDB_ENOTFOUND, "not_found"},
        {TDB_EEXIST, "already_exists"},    {TDB_ECONFLICT, "conflict"},
        {TDB_ETOOBIG, "payload_too_large"}, {TDB_EIO, "io_error"},
        {TDB_ECORRUPT, "corrupt_data"},    {TDB_ENOMEM, "out_of_memory"},
        {TDB_EREADONLY, "read_only"},      {TDB_EBUSY, "overloaded"},
        {TDB_ESHUTDOWN, "shutting_down"},  {TDB_EINTERNAL, "internal_error"},
        {TDB_EUNSUPPORTED, "unsupported"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_string_equal(tdb_err_default_name(names[i].code), names[i].name);
        const char *s = tdb_strerror(names[i].code);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
    }
    assert_string_equal(tdb_strerror(TDB_OK), "ok");
    assert_string_equal(tdb_strerror(-999), "unknown error");
    assert_string_equal(tdb_err_default_name(-999), "internal_error");
    tdb_free(NULL);
    tdb_free(malloc(8));
}

static void corrupt_fn(void *arg) {
    tdb_error *err = arg;
    int rc = TDB_CORRUPT(err, "/data/c1/seg-000001.tdb", 4096, "section %d crc %08x", 3, 0xabcdu);
    assert_int_equal(rc, TDB_ECORRUPT);
}

static void error_corrupt_names_file_and_offset(void **state) {
    (void)state;
    tdb_error err;
    quietly(corrupt_fn, &err);
    assert_int_equal(err.code, TDB_ECORRUPT);
    assert_string_equal(err.name, "corrupt_data");
    assert_non_null(strstr(err.message, "/data/c1/seg-000001.tdb"));
    assert_non_null(strstr(err.message, "4096"));
    assert_non_null(strstr(err.message, "section 3 crc 0000abcd"));
}

static void long_log_fn(void *arg) {
    (void)arg;
    char big[5000];
    memset(big, 'L', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_msg(LOG_ERROR, "%s", big);
    log_msg(LOG_DEBUG, "filtered %d", 1);
}

static void log_levels_parse_and_filter(void **state) {
    (void)state;
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("warn"), LOG_WARN);
    assert_int_equal(log_level_parse("info"), LOG_INFO);
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("verbose"), -1);
    assert_int_equal(log_level_parse(""), -1);
    log_level old = log_get_level();
    log_set_level(LOG_WARN);
    assert_int_equal(log_get_level(), LOG_WARN);
    quietly(long_log_fn, NULL); /* a line longer than the buffer is cut, not overflowed */
    log_set_level(old);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_appends_and_stays_nul_terminated),
        cmocka_unit_test(buf_printf_short_and_long),
        cmocka_unit_test(buf_little_endian_puts_and_loads),
        cmocka_unit_test(buf_reset_keeps_memory),
        cmocka_unit_test(buf_steal_hands_over_data),
        cmocka_unit_test(buf_reserve_keeps_fresh_buffer_terminated),
        cmocka_unit_test(buf_failure_is_sticky),
        cmocka_unit_test(crc32c_known_vectors),
        cmocka_unit_test(crc32c_extend_equals_whole),
        cmocka_unit_test(crc32c_hardware_and_table_paths_agree),
        cmocka_unit_test(clock_parses_durations),
        cmocka_unit_test(clock_rejects_bad_durations),
        cmocka_unit_test(clock_formats_rfc3339),
        cmocka_unit_test(clock_test_mode_moves_only_when_advanced),
        cmocka_unit_test(error_tdb_err_fills_and_returns_code),
        cmocka_unit_test(error_codes_have_names_and_strings),
        cmocka_unit_test(error_corrupt_names_file_and_offset),
        cmocka_unit_test(log_levels_parse_and_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
