/*
 * log.h: leveled logging to stderr, one line per message with an RFC 3339
 * timestamp and the level. Thread-safe (one write(2) per line).
 * Layer: util.
 */
#ifndef TDB_UTIL_LOG_H
#define TDB_UTIL_LOG_H

typedef enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 when unknown. */
int log_level_parse(const char *name);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
