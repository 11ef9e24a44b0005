/*
 * fuzz_config.c: libFuzzer target for the config file parser of
 * `tierdb serve --config` (cli/config.c: the TOML subset, every setting's
 * value parser), and for --print-config, whose output is a config file.
 *
 * Input: the config file's bytes, as they are.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - cli_settings_load_file returns 0, or -1 with a non-empty message
 *     that is NUL-terminated inside its buffer; a file the parser refuses
 *     leaves the settings freeable;
 *   - a file it accepts round-trips: with sources and secrets cleared (the
 *     printer masks secrets and names sources in comments), load(print(s))
 *     has every setting equal to s's, and print(load(print(s))) == print(s):
 *     --print-config writes a file that reads back to the same settings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "fuzz_common.h"

/* Prints s with every source "default" and secrets unset; malloc'd text. */
static char *print_plain(cli_settings *s, size_t *len) {
    memset(s->source, 0, sizeof s->source);
    free(s->api_key);
    free(s->readonly_api_key);
    s->api_key = s->readonly_api_key = NULL;
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (f == NULL) fuzz_die("open_memstream");
    cli_settings_print(s, f);
    if (fclose(f) != 0) fuzz_die("fclose");
    return text;
}

static bool str_eq(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Every setting the file can set (secrets are cleared before printing). */
static void check_same(const cli_settings *a, const cli_settings *b) {
    FUZZ_CHECK(str_eq(a->data_dir, b->data_dir), "data dir: '%.80s' vs '%.80s'", a->data_dir, b->data_dir);
    FUZZ_CHECK(str_eq(a->listen, b->listen) && str_eq(a->listen_host, b->listen_host) &&
                   a->listen_port == b->listen_port,
               "listen: '%.80s' vs '%.80s'", a->listen, b->listen);
    FUZZ_CHECK(str_eq(a->object_store, b->object_store), "object store differs");
    FUZZ_CHECK(str_eq(a->s3_endpoint, b->s3_endpoint), "s3 endpoint differs");
    FUZZ_CHECK(a->fsync == b->fsync && a->fsync_interval_ms == b->fsync_interval_ms, "fsync differs");
    FUZZ_CHECK(a->log_level == b->log_level, "log level differs");
    FUZZ_CHECK(a->memtable_max_docs == b->memtable_max_docs && a->memtable_max_bytes == b->memtable_max_bytes &&
                   a->compaction_min_segments == b->compaction_min_segments && a->max_body_bytes == b->max_body_bytes,
               "storage numbers differ");
    FUZZ_CHECK(a->s3_path_style == b->s3_path_style && a->hot_memory_budget == b->hot_memory_budget,
               "s3 path style or hot budget differs");
    FUZZ_CHECK(a->hot_ttl_ms == b->hot_ttl_ms && a->warm_ttl_ms == b->warm_ttl_ms &&
                   a->access_window_ms == b->access_window_ms && a->worker_interval_ms == b->worker_interval_ms &&
                   a->promotion_threshold == b->promotion_threshold &&
                   a->max_migrations_per_cycle == b->max_migrations_per_cycle,
               "tiering settings differ");
}

static void check_msg(int rc, const char *msg, size_t cap) {
    FUZZ_CHECK(rc == 0 || rc == -1, "load returned %d", rc);
    if (rc == 0) return;
    size_t n = strnlen(msg, cap);
    FUZZ_CHECK(n > 0 && n < cap, "message of %zu bytes", n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    if (!init) {
        fuzz_quiet_log();
        /* The printer shows these; keep them out of the round trip. */
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        unsetenv("AWS_REGION");
        init = true;
    }
    char path[700];
    snprintf(path, sizeof path, "%s/fuzz.toml", fuzz_root());
    fuzz_write_file(path, data, size);

    cli_settings s;
    cli_settings_init(&s);
    char msg[1024];
    memset(msg, 0x55, sizeof msg);
    int rc = cli_settings_load_file(&s, path, msg, sizeof msg);
    check_msg(rc, msg, sizeof msg);
    if (rc != 0) {
        cli_settings_free(&s);
        return 0;
    }
    size_t len1 = 0, len2 = 0;
    char *first = print_plain(&s, &len1);

    fuzz_write_file(path, first, len1);
    cli_settings t;
    cli_settings_init(&t);
    memset(msg, 0x55, sizeof msg);
    rc = cli_settings_load_file(&t, path, msg, sizeof msg);
    check_msg(rc, msg, sizeof msg);
    FUZZ_CHECK(rc == 0, "--print-config output does not load: %s", msg);
    check_same(&s, &t);
    cli_settings_free(&s);
    char *second = print_plain(&t, &len2);
    cli_settings_free(&t);
    FUZZ_CHECK(len1 == len2 && memcmp(first, second, len1) == 0, "print/load/print differs:\n%s\n---\n%s",
               first, second);
    free(first);
    free(second);
    return 0;
}
