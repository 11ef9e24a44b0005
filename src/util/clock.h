/*
 * clock.h: the database clock. Wall time in ms since the epoch, or, in
 * test-clock mode, a time that only moves when tests advance it (API.md
 * "Test clock"), so tests can pass days in milliseconds. Monotonic time
 * for measuring durations is separate (clock_mono_ns) and never faked.
 * Layer: util.
 */
#ifndef TDB_UTIL_CLOCK_H
#define TDB_UTIL_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Turns test-clock mode on, starting at the current wall time. */
void clock_use_test(bool on);
bool clock_is_test(void);
/* Database time in ms since the epoch. */
int64_t clock_now_ms(void);
/* Advances the test clock (no-op without test mode); returns the new time. */
int64_t clock_advance_ms(int64_t delta_ms);
/* Monotonic nanoseconds, for latencies. */
uint64_t clock_mono_ns(void);
/* Formats ms since the epoch as RFC 3339 UTC with milliseconds
 * ("2026-11-22T03:47:51.123Z"); out needs 32 bytes. */
void clock_format_rfc3339(int64_t ms, char out[32]);
/* Parses "300s", "5m", "6h", "7d" (also "ms"; a bare number is seconds).
 * Returns 0 and sets *ms, or -1. */
int clock_parse_duration(const char *text, int64_t *ms);

#endif
