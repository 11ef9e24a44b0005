/*
 * cli.h: the `tierdb` command line: settings and their sources, and the
 * commands. Layer: cli (on top of the server and tierdb.h).
 *
 * Settings come from four places, each overriding the one before
 * (API.md "Starting the server"): built-in defaults, the config file
 * (--config), environment variables (TIERDB_*), then flags. Every value is
 * checked where it is read; a bad one stops start-up with a message naming
 * the setting as the user wrote it (TIERDB_FSYNC, --listen, or
 * FILE:LINE storage.fsync) and exit status 2. docs/configuration.md lists
 * them all.
 */
#ifndef TDB_CLI_CLI_H
#define TDB_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tierdb.h"

/* Exit statuses of the CLI (docs/configuration.md "Exit statuses"; shell
 * scripts rely on them, so they never change meaning). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1  /* could not start or run (port in use, data dir unusable); client
                               commands: the server could not be reached, answered 5xx, or a
                               local file could not be read */
#define CLI_EXIT_USAGE 2    /* bad flags, settings or config file */
#define CLI_EXIT_REFUSED 3  /* client commands: the server refused the request (4xx: unknown
                               collection, invalid input, bad key, conflict) */
#define CLI_EXIT_PARTIAL 4  /* tierdb import: some lines were bad (skipped, or the import
                               stopped at one); the good lines before were committed */

/* Defaults of the tiering policy (API.md "Tiering"), shown by
 * --print-config and handed to the database as given. */
#define CLI_DEFAULT_HOT_TTL_MS (6LL * 3600 * 1000)
#define CLI_DEFAULT_WARM_TTL_MS (7LL * 86400 * 1000)
#define CLI_DEFAULT_ACCESS_WINDOW_MS (3600LL * 1000)
#define CLI_DEFAULT_WORKER_INTERVAL_MS (300LL * 1000)
#define CLI_DEFAULT_PROMOTION_THRESHOLD 10u
#define CLI_DEFAULT_MAX_MIGRATIONS 16u

/* Room for the source of each setting (config.c's table has fewer rows). */
#define CLI_MAX_SETTINGS 32

/* Where a setting's value came from (the last source that set it). */
typedef enum cli_source { CLI_SRC_DEFAULT = 0, CLI_SRC_FILE, CLI_SRC_ENV, CLI_SRC_FLAG } cli_source;

/* Longest accepted config file: it holds a dozen keys; anything bigger is
 * the wrong file. */
#define CLI_CONFIG_MAX_BYTES (1u << 20)

typedef struct cli_settings {
    char *data_dir;               /* owned */
    char *listen;                 /* "HOST:PORT" as given, owned */
    char *listen_host;            /* parsed from listen, brackets of IPv6 removed, owned */
    uint16_t listen_port;
    tdb_fsync_policy fsync;
    uint32_t fsync_interval_ms;
    char *api_key;                /* owned, NULL: auth off */
    char *readonly_api_key;       /* owned, NULL: none */
    char *object_store;           /* owned, NULL: file://DATA/objects */
    int log_level;                /* log_level of util/log.h */
    uint32_t memtable_max_docs;
    uint64_t memtable_max_bytes;
    uint32_t compaction_min_segments;
    int64_t compaction_idle_merge_ms; /* 0: off */
    uint64_t query_memory_budget;     /* 0: a quarter of RAM, at most 1 GiB */
    uint64_t max_body_bytes;
    bool test_clock;
    char *config_path;            /* owned, NULL: no file */
    char *s3_endpoint;            /* owned, NULL: AWS */
    bool s3_path_style;
    uint64_t hot_memory_budget;   /* 0: 50% of RAM */
    int64_t hot_ttl_ms, warm_ttl_ms, access_window_ms, worker_interval_ms; /* 0/-1: defaults */
    uint32_t promotion_threshold, max_migrations_per_cycle;                /* 0: defaults */
    unsigned char source[CLI_MAX_SETTINGS]; /* cli_source of each row of config.c's table */
} cli_settings;

/* Fills s with the built-in defaults. */
void cli_settings_init(cli_settings *s);
void cli_settings_free(cli_settings *s);

/* Each returns 0, or -1 with msg (cap bytes) saying which setting was bad
 * and why. */
int cli_settings_load_file(cli_settings *s, const char *path, char *msg, size_t cap);
int cli_settings_load_env(cli_settings *s, char *msg, size_t cap);
/* Sets one setting by its flag name ("--data"), for the flag parser. */
int cli_settings_set_flag(cli_settings *s, const char *flag, const char *value, char *msg, size_t cap);
/* Writes the effective settings as a config file (the TOML subset that
 * --config reads), each with a comment naming its source; secrets are
 * masked (written as comments, so reading the output back leaves them
 * unset). */
void cli_settings_print(const cli_settings *s, FILE *out);
/* Warns on stderr about TIERDB_* environment variables that no setting
 * reads (a typo would otherwise go unnoticed). */
void cli_settings_warn_unknown_env(void);

/* Commands: each returns the process exit status. */
int cli_serve(const cli_settings *s);
/* `tierdb bench ann|text ...` (bench_ann.c, bench_text.c): argv[0] is the
 * subcommand word ("ann"), options follow. */
int cli_bench_ann(int argc, char **argv);
int cli_bench_text(int argc, char **argv);
/* Client commands (client.c, import.c): talk to a running server over
 * HTTP; argv holds the options after the command word. */
int cli_import(int argc, char **argv);
int cli_collections(int argc, char **argv);
int cli_query(int argc, char **argv);
int cli_tier(int argc, char **argv);

#endif
