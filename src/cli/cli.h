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

#include "tierdb.h"

/* Exit statuses of the CLI. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1 /* could not start or run (port in use, data dir unusable) */
#define CLI_EXIT_USAGE 2   /* bad flags, settings or config file */

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
    uint64_t max_body_bytes;
    bool test_clock;
    char *config_path;            /* owned, NULL: no file */
    char *s3_endpoint;            /* owned, NULL: AWS */
    bool s3_path_style;
    uint64_t hot_memory_budget;   /* 0: 50% of RAM */
    int64_t hot_ttl_ms, warm_ttl_ms, access_window_ms, worker_interval_ms; /* 0/-1: defaults */
    uint32_t promotion_threshold, max_migrations_per_cycle;                /* 0: defaults */
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

/* Commands: each returns the process exit status. */
int cli_serve(const cli_settings *s);
/* `tierdb bench ann|text ...` (bench_ann.c, bench_text.c): argv[0] is the
 * subcommand word ("ann"), options follow. */
int cli_bench_ann(int argc, char **argv);
int cli_bench_text(int argc, char **argv);

#endif
