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
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    /* strftime cannot overflow here: the year of any int64 ms fits. */
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03dZ", date, (int)(((ms % 1000) + 1000) % 1000));
}

int clock_parse_duration(const char *text, int64_t *ms) {
    if (text == NULL || *text == '\0') return -1;
    char *end;
    double v = strtod(text, &end);
    if (end == text || v < 0) return -1;
    double mult;
    if (*end == '\0' || strcmp(end, "s") == 0) mult = 1000;
    else if (strcmp(end, "ms") == 0) mult = 1;
    else if (strcmp(end, "m") == 0) mult = 60e3;
    else if (strcmp(end, "h") == 0) mult = 3600e3;
    else if (strcmp(end, "d") == 0) mult = 86400e3;
    else return -1;
    double r = v * mult;
    if (r > 9.0e18) return -1;
    *ms = (int64_t)r;
    return 0;
}
