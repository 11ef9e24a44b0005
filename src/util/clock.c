/*
 * clock.c: wall/test clock and duration parsing.
 * Layer: util. The test clock is one atomic offset added to wall time at
 * the moment test mode started, so reads are lock-free.
 */
#include "util/clock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic bool g_test;
static _Atomic int64_t g_test_now_ms;

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_use_test(bool on) {
    atomic_store(&g_test_now_ms, wall_ms());
    atomic_store(&g_test, on);
}

bool clock_is_test(void) { return atomic_load(&g_test); }

int64_t clock_now_ms(void) {
    return atomic_load(&g_test) ? atomic_load(&g_test_now_ms) : wall_ms();
}

int64_t clock_advance_ms(int64_t delta_ms) {
    if (!atomic_load(&g_test)) return wall_ms();
    return atomic_fetch_add(&g_test_now_ms, delta_ms) + delta_ms;
}

uint64_t clock_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void clock_format_rfc3339(int64_t ms, char out[32]) {
    /* Floor division: -1 ms is 1969-12-31T23:59:59.999Z, not 00:00:00.999. */
    int64_t s = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        s -= 1;
        frac += 1000;
    }
    time_t t = (time_t)s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) memset(&tm, 0, sizeof tm); /* not for any int64 ms */
    /* snprintf, not strftime into a fixed field: years past 9999 print in
     * full instead of being cut off. The longest, year 292278994, needs 30 bytes; tmp only
     * keeps the compiler from warning about fields it cannot bound. */
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    snprintf(out, 32, "%.31s", tmp);
}

/* Grammar: digits ["." digits] [unit], unit one of ms s m h d (none = s).
 * Parsed by hand rather than with strtod, which would also accept leading
 * spaces, signs, hex, "nan" and "inf", and depends on the locale. The
 * fraction is exact to the millisecond (digits past the 9th are ignored). */
int clock_parse_duration(const char *text, int64_t *ms) {
    if (text == NULL) return -1;
    const char *p = text;
    if (*p < '0' || *p > '9') return -1;
    int64_t whole = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (whole > (INT64_MAX - (*p - '0')) / 10) return -1;
        whole = whole * 10 + (*p - '0');
    }
    int64_t frac = 0, frac_scale = 1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (frac_scale < 1000000000) {
                frac = frac * 10 + (*p - '0');
                frac_scale *= 10;
            }
        }
    }
    int64_t mult;
    if (*p == '\0' || strcmp(p, "s") == 0) mult = 1000;
    else if (strcmp(p, "ms") == 0) mult = 1;
    else if (strcmp(p, "m") == 0) mult = 60 * 1000;
    else if (strcmp(p, "h") == 0) mult = 3600 * 1000;
    else if (strcmp(p, "d") == 0) mult = 86400 * 1000;
    else return -1;
    int64_t frac_ms = frac * mult / frac_scale; /* < 1e9 * 8.64e7: fits */
    if (whole > (INT64_MAX - frac_ms) / mult) return -1;
    *ms = whole * mult + frac_ms;
    return 0;
}
