/*
 * config.c: the settings of `tierdb serve` from defaults, a config file,
 * the environment and flags (cli.h says in which order).
 * Layer: cli.
 *
 * One table lists every setting once, with its environment variable, its
 * place in the config file and its flag, the parser of its value and the
 * writer that shows it again; the three sources only find the row and
 * call the parser, so a value is checked the same way wherever it comes
 * from. Each row remembers which source set it last, for --print-config,
 * which writes the effective settings as a config file in this same TOML
 * subset (secrets masked), so its output can be read back.
 *
 * The config file is a small subset of TOML (https://toml.io), enough for
 * flat sections of scalars:
 *     # comment
 *     [server]
 *     listen = "127.0.0.1:7700"
 *     max_body_bytes = 67108864      # or "64M"
 *     [storage]
 *     fsync = 'always'
 *     [tiering]
 *     hot_ttl = "6h"
 * Supported: [section] headers, key = value lines, basic strings "..."
 * (escapes \" \\ \/ \b \f \n \r \t \uXXXX \UXXXXXXXX), literal strings
 * '...', integers (digits, optional sign, '_' between digits), true/false,
 * comments. Not supported (an error naming the line): arrays, inline
 * tables, dotted keys, multi-line strings, floats, dates. Unknown sections
 * and keys are errors, so a typo never goes unnoticed.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "util/clock.h"
#include "util/log.h"

/* Tuning values above these are certainly mistakes (and would overflow
 * the options' integer types). */
#define CLI_MAX_U32 4294967295ull
#define CLI_MAX_BYTES (1ull << 50)

typedef int (*setting_parse)(cli_settings *s, const char *value, char *why, size_t cap);
/* Writes the effective value as a TOML value ("\"always\"", "100000");
 * returns false when the setting is unset (nothing written). */
typedef bool (*setting_show)(const cli_settings *s, char *out, size_t cap);

typedef struct setting {
    const char *env;      /* environment variable, or NULL */
    const char *section;  /* config file section, or NULL */
    const char *key;      /* key in that section */
    const char *flag;     /* command-line flag, or NULL */
    setting_parse parse;
    setting_show show;
    bool secret;          /* shown masked */
    const char *unset;    /* what an unset value means, for --print-config */
} setting;

static void set_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static int replace_string(char **dst, const char *value, char *why, size_t cap) {
    char *copy = strdup(value);
    if (copy == NULL) {
        set_why(why, cap, "out of memory");
        return -1;
    }
    free(*dst);
    *dst = copy;
    return 0;
}

/* Unsigned decimal with optional '_' between digits (TOML's style). */
static int parse_u64(const char *v, uint64_t *out) {
    uint64_t n = 0;
    bool digit_before = false;
    if (*v == '+') v++;
    if (*v == '\0') return -1;
    for (; *v; v++) {
        if (*v == '_' && digit_before && isdigit((unsigned char)v[1])) continue;
        if (!isdigit((unsigned char)*v)) return -1;
        unsigned d = (unsigned)(*v - '0');
        if (n > (UINT64_MAX - d) / 10) return -1;
        n = n * 10 + d;
        digit_before = true;
    }
    *out = n;
    return 0;
}

/* Bytes: a number with an optional K, M or G suffix (powers of 1024). */
static int parse_size(const char *v, uint64_t *out) {
    size_t len = strlen(v);
    uint64_t mult = 1;
    char num[32];
    if (len == 0 || len >= sizeof num) return -1;
    memcpy(num, v, len + 1);
    switch (toupper((unsigned char)num[len - 1])) {
    case 'K': mult = 1ull << 10; break;
    case 'M': mult = 1ull << 20; break;
    case 'G': mult = 1ull << 30; break;
    default: break;
    }
    if (mult != 1) num[--len] = '\0';
    uint64_t n;
    if (parse_u64(num, &n) != 0 || n > CLI_MAX_BYTES / mult) return -1;
    *out = n * mult;
    return 0;
}

static int p_data(cli_settings *s, const char *v, char *why, size_t cap) {
    if (v[0] == '\0') {
        set_why(why, cap, "the data directory must not be empty");
        return -1;
    }
    return replace_string(&s->data_dir, v, why, cap);
}

/* "HOST:PORT" or "[IPV6]:PORT"; PORT 0 lets the kernel pick. */
static int p_listen(cli_settings *s, const char *v, char *why, size_t cap) {
    const char *host = v, *colon;
    size_t host_len;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':') goto bad;
        host = v + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL) goto bad;
        host_len = (size_t)(colon - v);
        if (memchr(v, ':', host_len) != NULL) goto bad; /* IPv6 needs brackets */
    }
    uint64_t port;
    if (host_len == 0 || parse_u64(colon + 1, &port) != 0 || port > 65535 || strchr(colon + 1, '_')) goto bad;
    char *h = strndup(host, host_len);
    if (h == NULL || replace_string(&s->listen, v, why, cap) != 0) {
        free(h);
        set_why(why, cap, "out of memory");
        return -1;
    }
    free(s->listen_host);
    s->listen_host = h;
    s->listen_port = (uint16_t)port;
    return 0;
bad:
    set_why(why, cap, "'%s' is not HOST:PORT (e.g. 127.0.0.1:7700, [::1]:7700; port 0 picks a free one)", v);
    return -1;
}

static int p_fsync(cli_settings *s, const char *v, char *why, size_t cap) {
    if (strcmp(v, "always") == 0) s->fsync = TDB_FSYNC_ALWAYS;
    else if (strcmp(v, "interval") == 0) s->fsync = TDB_FSYNC_INTERVAL;
    else if (strcmp(v, "none") == 0) s->fsync = TDB_FSYNC_NONE;
    else {
        set_why(why, cap, "'%s' is not one of always, interval, none", v);
        return -1;
    }
    return 0;
}

static int p_fsync_interval(cli_settings *s, const char *v, char *why, size_t cap) {
    int64_t ms;
    if (clock_parse_duration(v, &ms) != 0 || ms < 1 || (uint64_t)ms > CLI_MAX_U32) {
        set_why(why, cap, "'%s' is not a duration of at least 1ms (e.g. 100ms, 1s)", v);
        return -1;
    }
    s->fsync_interval_ms = (uint32_t)ms;
    return 0;
}

static int p_api_key(cli_settings *s, const char *v, char *why, size_t cap) {
    if (v[0] == '\0') { /* set but empty: auth stays off, as when unset */
        free(s->api_key);
        s->api_key = NULL;
        return 0;
    }
    return replace_string(&s->api_key, v, why, cap);
}

static int p_readonly_key(cli_settings *s, const char *v, char *why, size_t cap) {
    if (v[0] == '\0') {
        free(s->readonly_api_key);
        s->readonly_api_key = NULL;
        return 0;
    }
    return replace_string(&s->readonly_api_key, v, why, cap);
}

static int p_object_store(cli_settings *s, const char *v, char *why, size_t cap) {
    if (v[0] == '\0') {
        free(s->object_store);
        s->object_store = NULL;
        return 0;
    }
    if (!((strncmp(v, "file:///", 8) == 0 && v[8] != '\0') || (strncmp(v, "s3://", 5) == 0 && v[5] != '\0' && v[5] != '/'))) {
        set_why(why, cap, "'%s' is neither file:///PATH nor s3://BUCKET[/PREFIX]", v);
        return -1;
    }
    return replace_string(&s->object_store, v, why, cap);
}

static int p_log_level(cli_settings *s, const char *v, char *why, size_t cap) {
    int level = log_level_parse(v);
    if (level < 0) {
        set_why(why, cap, "'%s' is not one of error, warn, info, debug", v);
        return -1;
    }
    s->log_level = level;
    return 0;
}

static int parse_count(const char *v, uint64_t min, uint64_t max, uint64_t *out, char *why, size_t cap) {
    if (parse_u64(v, out) != 0 || *out < min || *out > max) {
        set_why(why, cap, "'%s' is not an integer from %llu to %llu", v, (unsigned long long)min,
                (unsigned long long)max);
        return -1;
    }
    return 0;
}

static int parse_bytes(const char *v, uint64_t min, uint64_t *out, char *why, size_t cap) {
    if (parse_size(v, out) != 0 || *out < min) {
        set_why(why, cap, "'%s' is not a size of at least %llu bytes (a number, optionally with K, M or G)", v,
                (unsigned long long)min);
        return -1;
    }
    return 0;
}

static int p_memtable_docs(cli_settings *s, const char *v, char *why, size_t cap) {
    uint64_t n;
    if (parse_count(v, 1, CLI_MAX_U32, &n, why, cap) != 0) return -1;
    s->memtable_max_docs = (uint32_t)n;
    return 0;
}

static int p_memtable_bytes(cli_settings *s, const char *v, char *why, size_t cap) {
    return parse_bytes(v, 1024, &s->memtable_max_bytes, why, cap);
}

static int p_compaction_min(cli_settings *s, const char *v, char *why, size_t cap) {
    uint64_t n;
    /* Merging needs at least two segments. */
    if (parse_count(v, 2, 1000000, &n, why, cap) != 0) return -1;
    s->compaction_min_segments = (uint32_t)n;
    return 0;
}

static int p_max_body(cli_settings *s, const char *v, char *why, size_t cap) {
    /* Below 1 KiB not even a small query fits. */
    return parse_bytes(v, 1024, &s->max_body_bytes, why, cap);
}

static int p_s3_endpoint(cli_settings *s, const char *v, char *why, size_t cap) {
    if (!(v[0] == '\0' || strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0)) {
        set_why(why, cap, "'%s' is not an http:// or https:// URL", v);
        return -1;
    }
    free(s->s3_endpoint);
    s->s3_endpoint = v[0] ? strdup(v) : NULL;
    return 0;
}

static int p_s3_path_style(cli_settings *s, const char *v, char *why, size_t cap) {
    if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) s->s3_path_style = false;
    else if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) s->s3_path_style = true;
    else {
        set_why(why, cap, "'%s' is not 0 or 1", v);
        return -1;
    }
    return 0;
}

static int p_hot_budget(cli_settings *s, const char *v, char *why, size_t cap) {
    return parse_bytes(v, 0, &s->hot_memory_budget, why, cap);
}

static int duration(const char *v, int64_t min_ms, int64_t *out, char *why, size_t cap) {
    int64_t ms;
    if (clock_parse_duration(v, &ms) != 0 || ms < min_ms) {
        set_why(why, cap, "'%s' is not a duration such as 300s, 5m, 6h or 7d%s", v,
                min_ms > 0 ? " (and above zero)" : "");
        return -1;
    }
    *out = ms;
    return 0;
}

static int p_idle_merge(cli_settings *s, const char *v, char *why, size_t cap) {
    return duration(v, 0, &s->compaction_idle_merge_ms, why, cap);
}

static int p_query_budget(cli_settings *s, const char *v, char *why, size_t cap) {
    if (strcmp(v, "0") == 0) {
        s->query_memory_budget = 0;
        return 0;
    }
    /* Below 1 MiB not even a small query's answer fits. */
    return parse_bytes(v, 1u << 20, &s->query_memory_budget, why, cap);
}

static int p_hot_ttl(cli_settings *s, const char *v, char *why, size_t cap) {
    return duration(v, 1, &s->hot_ttl_ms, why, cap);
}
static int p_warm_ttl(cli_settings *s, const char *v, char *why, size_t cap) {
    return duration(v, 1, &s->warm_ttl_ms, why, cap);
}
static int p_access_window(cli_settings *s, const char *v, char *why, size_t cap) {
    return duration(v, 1, &s->access_window_ms, why, cap);
}
/* 0 turns the background worker off (cycles only on request). */
static int p_worker_interval(cli_settings *s, const char *v, char *why, size_t cap) {
    return duration(v, 0, &s->worker_interval_ms, why, cap);
}

static int p_promotion_threshold(cli_settings *s, const char *v, char *why, size_t cap) {
    uint64_t n;
    if (parse_count(v, 1, CLI_MAX_U32, &n, why, cap) != 0) return -1;
    s->promotion_threshold = (uint32_t)n;
    return 0;
}

static int p_max_migrations(cli_settings *s, const char *v, char *why, size_t cap) {
    uint64_t n;
    if (parse_count(v, 1, CLI_MAX_U32, &n, why, cap) != 0) return -1;
    s->max_migrations_per_cycle = (uint32_t)n;
    return 0;
}

/* ---- showing values (--print-config) --------------------------------------- */

/* A TOML basic string: quotes, backslashes and control characters escaped. */
static void toml_string(const char *v, char *out, size_t cap) {
    size_t n = 0;
    if (cap < 3) {
        if (cap) out[0] = '\0';
        return;
    }
    out[n++] = '"';
    for (; *v && n + 8 < cap; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
}

/* Bytes with the largest suffix that divides them exactly ("64M"). */
static void show_size(uint64_t v, char *out, size_t cap) {
    if (v != 0 && v % (1ull << 30) == 0) snprintf(out, cap, "\"%lluG\"", (unsigned long long)(v >> 30));
    else if (v != 0 && v % (1ull << 20) == 0) snprintf(out, cap, "\"%lluM\"", (unsigned long long)(v >> 20));
    else if (v != 0 && v % (1ull << 10) == 0) snprintf(out, cap, "\"%lluK\"", (unsigned long long)(v >> 10));
    else snprintf(out, cap, "%llu", (unsigned long long)v);
}

/* A duration with the largest unit that divides it exactly ("6h"). */
static void show_duration(int64_t ms, char *out, size_t cap) {
    static const struct { int64_t ms; const char *unit; } units[] = {
        {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(out, cap, "\"%lld%s\"", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    snprintf(out, cap, "\"%lldms\"", (long long)ms);
}

static bool w_data(const cli_settings *s, char *out, size_t cap) {
    toml_string(s->data_dir, out, cap);
    return true;
}
static bool w_listen(const cli_settings *s, char *out, size_t cap) {
    toml_string(s->listen, out, cap);
    return true;
}
static bool w_fsync(const cli_settings *s, char *out, size_t cap) {
    snprintf(out, cap, "\"%s\"", s->fsync == TDB_FSYNC_ALWAYS ? "always" : s->fsync == TDB_FSYNC_INTERVAL ? "interval" : "none");
    return true;
}
static bool w_fsync_interval(const cli_settings *s, char *out, size_t cap) {
    show_duration(s->fsync_interval_ms, out, cap);
    return true;
}
static bool w_api_key(const cli_settings *s, char *out, size_t cap) {
    if (s->api_key == NULL) return false;
    toml_string(s->api_key, out, cap);
    return true;
}
static bool w_readonly_key(const cli_settings *s, char *out, size_t cap) {
    if (s->readonly_api_key == NULL) return false;
    toml_string(s->readonly_api_key, out, cap);
    return true;
}
static bool w_object_store(const cli_settings *s, char *out, size_t cap) {
    if (s->object_store == NULL) return false;
    toml_string(s->object_store, out, cap);
    return true;
}
static bool w_log_level(const cli_settings *s, char *out, size_t cap) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    int l = s->log_level;
    snprintf(out, cap, "\"%s\"", l >= 0 && l <= 3 ? names[l] : "info");
    return true;
}
static bool w_memtable_docs(const cli_settings *s, char *out, size_t cap) {
    snprintf(out, cap, "%u", s->memtable_max_docs);
    return true;
}
static bool w_memtable_bytes(const cli_settings *s, char *out, size_t cap) {
    show_size(s->memtable_max_bytes, out, cap);
    return true;
}
static bool w_compaction_min(const cli_settings *s, char *out, size_t cap) {
    snprintf(out, cap, "%u", s->compaction_min_segments);
    return true;
}
static bool w_idle_merge(const cli_settings *s, char *out, size_t cap) {
    if (s->compaction_idle_merge_ms == 0) snprintf(out, cap, "\"0s\"");
    else show_duration(s->compaction_idle_merge_ms, out, cap);
    return true;
}
static bool w_query_budget(const cli_settings *s, char *out, size_t cap) {
    show_size(s->query_memory_budget, out, cap);
    return true;
}
static bool w_max_body(const cli_settings *s, char *out, size_t cap) {
    show_size(s->max_body_bytes, out, cap);
    return true;
}
static bool w_s3_endpoint(const cli_settings *s, char *out, size_t cap) {
    if (s->s3_endpoint == NULL) return false;
    toml_string(s->s3_endpoint, out, cap);
    return true;
}
static bool w_s3_path_style(const cli_settings *s, char *out, size_t cap) {
    snprintf(out, cap, "%s", s->s3_path_style ? "true" : "false");
    return true;
}
static bool w_hot_budget(const cli_settings *s, char *out, size_t cap) {
    show_size(s->hot_memory_budget, out, cap);
    return true;
}
static bool w_hot_ttl(const cli_settings *s, char *out, size_t cap) {
    show_duration(s->hot_ttl_ms, out, cap);
    return true;
}
static bool w_warm_ttl(const cli_settings *s, char *out, size_t cap) {
    show_duration(s->warm_ttl_ms, out, cap);
    return true;
}
static bool w_access_window(const cli_settings *s, char *out, size_t cap) {
    show_duration(s->access_window_ms, out, cap);
    return true;
}
static bool w_worker_interval(const cli_settings *s, char *out, size_t cap) {
    if (s->worker_interval_ms == 0) snprintf(out, cap, "\"0s\"");
    else show_duration(s->worker_interval_ms, out, cap);
    return true;
}
static bool w_promotion_threshold(const cli_settings *s, char *out, size_t cap) {
    snprintf(out, cap, "%u", s->promotion_threshold);
    return true;
}
static bool w_max_migrations(const cli_settings *s, char *out, size_t cap) {
    snprintf(out, cap, "%u", s->max_migrations_per_cycle);
    return true;
}

static const setting settings[] = {
    {"TIERDB_DATA", "storage", "data", "--data", p_data, w_data, false, NULL},
    {"TIERDB_LISTEN", "server", "listen", "--listen", p_listen, w_listen, false, NULL},
    {"TIERDB_FSYNC", "storage", "fsync", NULL, p_fsync, w_fsync, false, NULL},
    {"TIERDB_FSYNC_INTERVAL", "storage", "fsync_interval", NULL, p_fsync_interval, w_fsync_interval, false, NULL},
    {"TIERDB_API_KEY", "server", "api_key", NULL, p_api_key, w_api_key, true, "auth off"},
    {"TIERDB_READONLY_API_KEY", "server", "readonly_api_key", NULL, p_readonly_key, w_readonly_key, true,
     "no read-only key"},
    {"TIERDB_OBJECT_STORE", "storage", "object_store", NULL, p_object_store, w_object_store, false,
     "file://DATA/objects"},
    {"TIERDB_LOG_LEVEL", "log", "level", NULL, p_log_level, w_log_level, false, NULL},
    {"TIERDB_MEMTABLE_MAX_DOCS", "storage", "memtable_max_docs", NULL, p_memtable_docs, w_memtable_docs, false, NULL},
    {"TIERDB_MEMTABLE_MAX_BYTES", "storage", "memtable_max_bytes", NULL, p_memtable_bytes, w_memtable_bytes, false,
     NULL},
    {"TIERDB_COMPACTION_MIN_SEGMENTS", "storage", "compaction_min_segments", NULL, p_compaction_min,
     w_compaction_min, false, NULL},
    {"TIERDB_COMPACTION_IDLE_MERGE", "storage", "compaction_idle_merge", NULL, p_idle_merge, w_idle_merge, false,
     NULL},
    {"TIERDB_QUERY_MEMORY_BUDGET", "server", "query_memory_budget", NULL, p_query_budget, w_query_budget, false,
     NULL},
    {"TIERDB_MAX_BODY_BYTES", "server", "max_body_bytes", NULL, p_max_body, w_max_body, false, NULL},
    {"TIERDB_S3_ENDPOINT", "s3", "endpoint", NULL, p_s3_endpoint, w_s3_endpoint, false, "AWS"},
    {"TIERDB_S3_PATH_STYLE", "s3", "path_style", NULL, p_s3_path_style, w_s3_path_style, false, NULL},
    {"TIERDB_HOT_MEMORY_BUDGET", "tiering", "hot_memory_budget", NULL, p_hot_budget, w_hot_budget, false, NULL},
    {"TIERDB_HOT_TTL", "tiering", "hot_ttl", NULL, p_hot_ttl, w_hot_ttl, false, NULL},
    {"TIERDB_WARM_TTL", "tiering", "warm_ttl", NULL, p_warm_ttl, w_warm_ttl, false, NULL},
    {"TIERDB_ACCESS_WINDOW", "tiering", "access_window", NULL, p_access_window, w_access_window, false, NULL},
    {"TIERDB_WORKER_INTERVAL", "tiering", "worker_interval", NULL, p_worker_interval, w_worker_interval, false, NULL},
    {"TIERDB_PROMOTION_THRESHOLD", "tiering", "promotion_threshold", NULL, p_promotion_threshold,
     w_promotion_threshold, false, NULL},
    {"TIERDB_MAX_MIGRATIONS_PER_CYCLE", "tiering", "max_migrations_per_cycle", NULL, p_max_migrations,
     w_max_migrations, false, NULL},
};
#define SETTING_COUNT (sizeof settings / sizeof settings[0])
_Static_assert(SETTING_COUNT <= CLI_MAX_SETTINGS, "cli_settings.source needs a slot per setting");

void cli_settings_init(cli_settings *s) {
    memset(s, 0, sizeof *s);
    tdb_options o;
    tdb_options_default(&o);
    s->data_dir = strdup(o.data_dir);
    s->listen = strdup("127.0.0.1:7700");
    s->listen_host = strdup("127.0.0.1");
    s->listen_port = 7700;
    s->fsync = o.fsync;
    s->fsync_interval_ms = o.fsync_interval_ms;
    s->log_level = LOG_INFO;
    s->memtable_max_docs = o.memtable_max_docs;
    s->memtable_max_bytes = o.memtable_max_bytes;
    s->compaction_min_segments = o.compaction_min_segments;
    s->compaction_idle_merge_ms = o.compaction_idle_merge_ms;
    s->query_memory_budget = o.query_memory_budget;
    s->max_body_bytes = 64ull << 20;
    s->hot_ttl_ms = CLI_DEFAULT_HOT_TTL_MS;
    s->warm_ttl_ms = CLI_DEFAULT_WARM_TTL_MS;
    s->access_window_ms = CLI_DEFAULT_ACCESS_WINDOW_MS;
    s->worker_interval_ms = CLI_DEFAULT_WORKER_INTERVAL_MS;
    s->promotion_threshold = CLI_DEFAULT_PROMOTION_THRESHOLD;
    s->max_migrations_per_cycle = CLI_DEFAULT_MAX_MIGRATIONS;
}

void cli_settings_free(cli_settings *s) {
    free(s->data_dir);
    free(s->listen);
    free(s->listen_host);
    free(s->api_key);
    free(s->readonly_api_key);
    free(s->object_store);
    free(s->config_path);
    free(s->s3_endpoint);
    memset(s, 0, sizeof *s);
}

int cli_settings_load_env(cli_settings *s, char *msg, size_t cap) {
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const setting *st = &settings[i];
        if (st->env == NULL) continue;
        const char *v = getenv(st->env);
        if (v == NULL) continue;
        char why[400];
        if (st->parse(s, v, why, sizeof why) != 0) {
            snprintf(msg, cap, "%s: %s", st->env, why);
            return -1;
        }
        s->source[i] = CLI_SRC_ENV;
    }
    return 0;
}

int cli_settings_set_flag(cli_settings *s, const char *flag, const char *value, char *msg, size_t cap) {
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const setting *st = &settings[i];
        if (st->flag == NULL || strcmp(st->flag, flag) != 0) continue;
        char why[400];
        if (st->parse(s, value, why, sizeof why) != 0) {
            snprintf(msg, cap, "%s: %s", flag, why);
            return -1;
        }
        s->source[i] = CLI_SRC_FLAG;
        return 0;
    }
    snprintf(msg, cap, "unknown flag %s", flag);
    return -1;
}

/* ---- config file -------------------------------------------------------- */

static void put_utf8(char *out, size_t *n, uint32_t cp) {
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* Parses the value at *p (a line, NUL-terminated) into out (at least
 * strlen(*p) + 1 bytes: a value never grows when decoded). Returns 0 and
 * leaves *p after the value, or -1 with why. */
static int toml_value(const char **p, char *out, char *why, size_t cap) {
    const char *v = *p;
    size_t n = 0;
    if (*v == '"') {
        if (v[1] == '"' && v[2] == '"') {
            set_why(why, cap, "multi-line strings are not supported");
            return -1;
        }
        for (v++; *v != '"'; v++) {
            if (*v == '\0') {
                set_why(why, cap, "unterminated string");
                return -1;
            }
            if ((unsigned char)*v < 0x20 && *v != '\t') {
                set_why(why, cap, "control character in a string");
                return -1;
            }
            if (*v != '\\') {
                out[n++] = *v;
                continue;
            }
            v++;
            switch (*v) {
            case '"': out[n++] = '"'; break;
            case '\\': out[n++] = '\\'; break;
            case '/': out[n++] = '/'; break;
            case 'b': out[n++] = '\b'; break;
            case 'f': out[n++] = '\f'; break;
            case 'n': out[n++] = '\n'; break;
            case 'r': out[n++] = '\r'; break;
            case 't': out[n++] = '\t'; break;
            case 'u':
            case 'U': {
                int digits = *v == 'u' ? 4 : 8;
                uint32_t cp = 0;
                for (int k = 1; k <= digits; k++) {
                    char c = v[k];
                    if (!isxdigit((unsigned char)c)) {
                        set_why(why, cap, "\\%c needs %d hex digits", *v, digits);
                        return -1;
                    }
                    cp = cp * 16 + (uint32_t)(isdigit((unsigned char)c) ? c - '0' : (tolower((unsigned char)c) - 'a' + 10));
                }
                if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                    set_why(why, cap, "\\%c escape is not a Unicode scalar value (or is NUL)", *v);
                    return -1;
                }
                /* \uXXXX is 6 source bytes for at most 3 of UTF-8, \U 10 for 4. */
                put_utf8(out, &n, cp);
                v += digits;
                break;
            }
            default:
                set_why(why, cap, "unknown escape \\%c", *v ? *v : '0');
                return -1;
            }
        }
        v++;
    } else if (*v == '\'') {
        if (v[1] == '\'' && v[2] == '\'') {
            set_why(why, cap, "multi-line strings are not supported");
            return -1;
        }
        for (v++; *v != '\''; v++) {
            if (*v == '\0') {
                set_why(why, cap, "unterminated string");
                return -1;
            }
            out[n++] = *v;
        }
        v++;
    } else if (*v == '[' || *v == '{') {
        set_why(why, cap, "arrays and inline tables are not supported");
        return -1;
    } else {
        /* A bare value: integer or boolean, up to a comment or the end. */
        while (*v && *v != '#' && *v != ' ' && *v != '\t') out[n++] = *v++;
        out[n] = '\0';
        uint64_t ignored;
        bool is_int = out[0] != '-' && parse_u64(out, &ignored) == 0;
        if (!is_int && strcmp(out, "true") != 0 && strcmp(out, "false") != 0) {
            set_why(why, cap, "'%s' is not a string, a non-negative integer or a boolean (quote strings)", out);
            return -1;
        }
    }
    out[n] = '\0';
    *p = v;
    return 0;
}

static bool is_bare_key_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-'; }

int cli_settings_load_file(cli_settings *s, const char *path, char *msg, size_t cap) {
    int rc = -1;
    char *text = NULL, *value = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(msg, cap, "--config %s: %s", path, strerror(errno));
        return -1;
    }
    text = malloc(CLI_CONFIG_MAX_BYTES + 1);
    value = malloc(CLI_CONFIG_MAX_BYTES + 1);
    if (text == NULL || value == NULL) {
        snprintf(msg, cap, "--config %s: out of memory", path);
        goto done;
    }
    size_t len = fread(text, 1, CLI_CONFIG_MAX_BYTES + 1, f);
    if (ferror(f)) {
        snprintf(msg, cap, "--config %s: read failed", path);
        goto done;
    }
    if (len > CLI_CONFIG_MAX_BYTES) {
        snprintf(msg, cap, "--config %s: larger than %u bytes", path, CLI_CONFIG_MAX_BYTES);
        goto done;
    }
    text[len] = '\0';
    if (memchr(text, '\0', len) != NULL) {
        snprintf(msg, cap, "--config %s: holds a NUL byte (not a text file?)", path);
        goto done;
    }
    char section[64] = "";
    int line_no = 0;
    char *line = text;
    while (line != NULL && *line != '\0') {
        line_no++;
        char *nl = strchr(line, '\n');
        char *next = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        size_t ll = strlen(line);
        if (ll > 0 && line[ll - 1] == '\r') line[--ll] = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        char why[400] = "";
        if (*p == '\0' || *p == '#') {
            line = next;
            continue;
        }
        if (*p == '[') {
            p++;
            while (*p == ' ' || *p == '\t') p++;
            size_t n = 0;
            while (is_bare_key_char(p[n])) n++;
            const char *q = p + n;
            while (*q == ' ' || *q == '\t') q++;
            if (n == 0 || n >= sizeof section || *q != ']') {
                snprintf(msg, cap, "%s:%d: a section header is [name] (nested and array tables are not supported)",
                         path, line_no);
                goto done;
            }
            memcpy(section, p, n);
            section[n] = '\0';
            bool known = false;
            for (size_t i = 0; i < SETTING_COUNT; i++)
                if (strcmp(settings[i].section, section) == 0) known = true;
            q++;
            while (*q == ' ' || *q == '\t') q++;
            if (!known) {
                snprintf(msg, cap, "%s:%d: unknown section [%s] (known: server, storage, log, tiering, s3)", path,
                         line_no, section);
                goto done;
            }
            if (*q != '\0' && *q != '#') {
                snprintf(msg, cap, "%s:%d: unexpected text after [%s]", path, line_no, section);
                goto done;
            }
            line = next;
            continue;
        }
        size_t kn = 0;
        while (is_bare_key_char(p[kn])) kn++;
        const char *q = p + kn;
        while (*q == ' ' || *q == '\t') q++;
        if (kn == 0 || *q != '=') {
            snprintf(msg, cap, "%s:%d: expected key = value (dotted and quoted keys are not supported)", path,
                     line_no);
            goto done;
        }
        char key[64];
        if (kn >= sizeof key) kn = sizeof key - 1;
        memcpy(key, p, kn);
        key[kn] = '\0';
        q++;
        while (*q == ' ' || *q == '\t') q++;
        if (toml_value(&q, value, why, sizeof why) != 0) {
            snprintf(msg, cap, "%s:%d: %s.%s: %s", path, line_no, section, key, why);
            goto done;
        }
        while (*q == ' ' || *q == '\t') q++;
        if (*q != '\0' && *q != '#') {
            snprintf(msg, cap, "%s:%d: unexpected text after the value of %s", path, line_no, key);
            goto done;
        }
        const setting *st = NULL;
        for (size_t i = 0; i < SETTING_COUNT; i++)
            if (strcmp(settings[i].section, section) == 0 && strcmp(settings[i].key, key) == 0) st = &settings[i];
        if (st == NULL) {
            snprintf(msg, cap, "%s:%d: unknown key '%s' in [%s] (docs/configuration.md lists them)", path, line_no,
                     key, section[0] ? section : "top level");
            goto done;
        }
        if (st->parse(s, value, why, sizeof why) != 0) {
            snprintf(msg, cap, "%s:%d: %s.%s: %s", path, line_no, section, key, why);
            goto done;
        }
        s->source[st - settings] = CLI_SRC_FILE;
        line = next;
    }
    rc = 0;
    free(s->config_path);
    s->config_path = strdup(path);
done:
    fclose(f);
    free(text);
    free(value);
    return rc;
}

/* ---- --print-config ------------------------------------------------------ */

/* Sections in the order they are printed. */
static const char *const print_sections[] = {"server", "storage", "log", "tiering", "s3"};

static void source_text(const cli_settings *s, size_t i, char *out, size_t cap) {
    switch ((cli_source)s->source[i]) {
    case CLI_SRC_FILE: snprintf(out, cap, "from %s", s->config_path ? s->config_path : "the config file"); break;
    case CLI_SRC_ENV: snprintf(out, cap, "from %s", settings[i].env); break;
    case CLI_SRC_FLAG: snprintf(out, cap, "from %s", settings[i].flag); break;
    default: snprintf(out, cap, "default"); break;
    }
}

void cli_settings_print(const cli_settings *s, FILE *out) {
    fprintf(out, "# tierdb %s serve: effective settings (defaults < config file < TIERDB_* environment < flags).\n"
                 "# A config file in the format --config reads; secrets are masked (as comments).\n",
            TDB_VERSION_STRING);
    /* Room for the longest string setting with every byte escaped (\u00XX:
     * 6 bytes each), so no value is ever cut short: the output must read
     * back to the same settings. */
    size_t longest = 0;
    const char *const strings[] = {s->data_dir, s->listen, s->api_key, s->readonly_api_key, s->object_store,
                                   s->s3_endpoint};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (strings[i] != NULL && strlen(strings[i]) > longest) longest = strlen(strings[i]);
    size_t value_cap = 6 * longest + 64, line_cap = value_cap + 128;
    char *value = malloc(value_cap), *line = malloc(line_cap);
    if (value == NULL || line == NULL) {
        fprintf(out, "# (out of memory: settings not shown)\n");
        free(value);
        free(line);
        return;
    }
    for (size_t k = 0; k < sizeof print_sections / sizeof print_sections[0]; k++) {
        fprintf(out, "\n[%s]\n", print_sections[k]);
        for (size_t i = 0; i < SETTING_COUNT; i++) {
            const setting *st = &settings[i];
            if (strcmp(st->section, print_sections[k]) != 0) continue;
            char from[300];
            source_text(s, i, from, sizeof from);
            bool set = st->show(s, value, value_cap);
            if (!set) snprintf(line, line_cap, "# %s unset (%s)", st->key, st->unset ? st->unset : "none");
            else if (st->secret) snprintf(line, line_cap, "# %s = (set, masked)", st->key);
            else snprintf(line, line_cap, "%s = %s", st->key, value);
            fprintf(out, "%-44s # %s\n", line, from);
        }
    }
    free(value);
    free(line);
    if (s->test_clock) fprintf(out, "\n# --test-clock: on (time moves only by POST /v1/debug/clock)\n");
    /* Read by the S3 backend itself, never from the config file. */
    const char *region = getenv("AWS_REGION");
    fprintf(out, "\n# S3 credentials come from the environment only:\n");
    fprintf(out, "#   AWS_ACCESS_KEY_ID %s\n", getenv("AWS_ACCESS_KEY_ID") ? "set (masked)" : "unset");
    fprintf(out, "#   AWS_SECRET_ACCESS_KEY %s\n", getenv("AWS_SECRET_ACCESS_KEY") ? "set (masked)" : "unset");
    fprintf(out, "#   AWS_REGION %s\n", region && region[0] ? region : "unset (us-east-1)");
}

/* TIERDB_* variables read elsewhere: by the client commands, and by
 * tools of the test suites. */
static const char *const client_env[] = {"TIERDB_URL", "TIERDB_UNICODE_DIR", "TIERDB_TEXT_KIT"};

void cli_settings_warn_unknown_env(void) {
    extern char **environ;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "TIERDB_", 7) != 0) continue;
        const char *eq = strchr(*e, '=');
        size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
        bool known = false;
        for (size_t i = 0; i < SETTING_COUNT && !known; i++)
            known = strlen(settings[i].env) == n && strncmp(settings[i].env, *e, n) == 0;
        for (size_t i = 0; i < sizeof client_env / sizeof client_env[0] && !known; i++)
            known = strlen(client_env[i]) == n && strncmp(client_env[i], *e, n) == 0;
        if (!known)
            fprintf(stderr, "tierdb: warning: the environment variable %.*s is not a setting (a typo? "
                            "docs/configuration.md lists them)\n", (int)n, *e);
    }
}
