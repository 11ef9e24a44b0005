/*
 * main.c: the `tierdb` command: dispatch to the subcommands, help texts,
 * flag parsing.
 * Layer: cli.
 *
 * Exit statuses (cli.h): 0 success, 1 failure to start or run (client
 * commands: server unreachable or 5xx), 2 a usage error (unknown command or
 * flag, a bad setting), 3 the server refused a client command (4xx), 4 an
 * import with bad lines. Help goes to stdout when asked for and to stderr
 * after a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char main_usage[] =
    "usage: tierdb <command> [options]\n"
    "\n"
    "A tiered vector and full-text search database.\n"
    "\n"
    "commands:\n"
    "  serve        run the HTTP server (tierdb serve --help)\n"
    "  import       stream an NDJSON file into a collection of a running server\n"
    "  collections  list the collections of a running server\n"
    "  query        run a quick query (vector, text, filter)\n"
    "  tier         show or change a collection's tier: status, pin, unpin, promote, demote\n"
    "  bench        built-in benchmarks: bench ann, bench text (tierdb bench --help)\n"
    "  version      print the version\n"
    "\n"
    "Each command has --help. Client commands (import, collections, query, tier)\n"
    "reach the server at --url (env TIERDB_URL, default http://127.0.0.1:7700)\n"
    "with --api-key (env TIERDB_API_KEY).\n"
    "\n"
    "exit statuses: 0 ok, 1 failure (server unreachable, 5xx, unreadable file),\n"
    "2 usage error, 3 request refused by the server (4xx), 4 import with bad lines\n"
    "\n"
    "options:\n"
    "  -h, --help     this help\n"
    "  --version      print the version\n";

static const char serve_usage[] =
    "usage: tierdb serve [--config FILE] [--data DIR] [--listen HOST:PORT] [--test-clock]\n"
    "                    [--print-config]\n"
    "\n"
    "Runs the HTTP API (docs/api.md) on a data directory. Prints\n"
    "'listening on http://HOST:PORT' once ready; stops gracefully on SIGTERM\n"
    "or SIGINT (a second signal exits at once).\n"
    "\n"
    "options:\n"
    "  --config FILE       read settings from a TOML file (docs/configuration.md)\n"
    "  --data DIR          data directory (env TIERDB_DATA; default ./data)\n"
    "  --listen HOST:PORT  address to listen on (env TIERDB_LISTEN; default\n"
    "                      127.0.0.1:7700; port 0 picks a free port)\n"
    "  --test-clock        time moves only by POST /v1/debug/clock (for tests)\n"
    "  --print-config      print the effective settings (secrets masked) and exit\n"
    "  -h, --help          this help\n"
    "\n"
    "Settings are taken from defaults, then the config file, then TIERDB_*\n"
    "environment variables, then flags; docs/configuration.md lists them all.\n";

static const char bench_usage[] =
    "usage: tierdb bench ann --base B.fvecs --queries Q.fvecs --truth T.ivecs --metric l2|cosine|dot [...]\n"
    "       tierdb bench text --corpus C.ndjson --field F --queries Q.txt [...]\n"
    "\n"
    "In-process benchmarks (no HTTP); each prints one JSON object per line.\n"
    "tierdb bench ann --help and tierdb bench text --help list their options.\n";

static const char version_usage[] =
    "usage: tierdb version\n"
    "\n"
    "Prints 'tierdb VERSION'.\n";

static int usage_error(const char *usage, const char *fmt, const char *arg) {
    fprintf(stderr, "tierdb: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return CLI_EXIT_USAGE;
}

static bool is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

static int cmd_bench(int argc, char **argv) {
    if (argc == 0) {
        fputs(bench_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (is_help(argv[0])) {
        fputs(bench_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[0], "ann") == 0) return cli_bench_ann(argc, argv);
    if (strcmp(argv[0], "text") == 0) return cli_bench_text(argc, argv);
    return usage_error(bench_usage, "unknown benchmark '%s'", argv[0]);
}

static int cmd_version(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(version_usage, stdout);
            return CLI_EXIT_OK;
        }
        return usage_error(version_usage, "version takes no argument '%s'", argv[i]);
    }
    printf("tierdb %s\n", TDB_VERSION_STRING);
    return CLI_EXIT_OK;
}

/* Flags taking a value, as "--flag VALUE" or "--flag=VALUE". */
static const char *const serve_value_flags[] = {"--config", "--data", "--listen"};

static int cmd_serve(int argc, char **argv) {
    cli_settings s;
    char msg[768];
    int rc = CLI_EXIT_USAGE;
    /* Flags are read twice: first to find --help and --config (the file is
     * the lowest source but its name is a flag), then applied last, over
     * the file and the environment. */
    const char *flag_names[64];
    const char *flag_values[64];
    int nflags = 0;
    bool test_clock = false, print_config = false;
    const char *config_path = NULL;
    cli_settings_init(&s);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(serve_usage, stdout);
            rc = CLI_EXIT_OK;
            goto done;
        }
        if (strcmp(a, "--test-clock") == 0) {
            test_clock = true;
            continue;
        }
        if (strcmp(a, "--print-config") == 0) {
            print_config = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        const char *flag = NULL;
        for (size_t k = 0; k < sizeof serve_value_flags / sizeof serve_value_flags[0]; k++)
            if (strlen(serve_value_flags[k]) == name_len && strncmp(a, serve_value_flags[k], name_len) == 0)
                flag = serve_value_flags[k];
        if (flag == NULL) {
            rc = usage_error(serve_usage, a[0] == '-' ? "unknown flag %s" : "unexpected argument '%s'", a);
            goto done;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc) {
                rc = usage_error(serve_usage, "%s needs a value", flag);
                goto done;
            }
            value = argv[++i];
        }
        if (nflags == (int)(sizeof flag_names / sizeof flag_names[0])) {
            rc = usage_error(serve_usage, "too many flags (from %s on)", flag);
            goto done;
        }
        if (strcmp(flag, "--config") == 0) {
            config_path = value;
            continue;
        }
        flag_names[nflags] = flag;
        flag_values[nflags] = value;
        nflags++;
    }
    if (config_path != NULL && cli_settings_load_file(&s, config_path, msg, sizeof msg) != 0) {
        fprintf(stderr, "tierdb: %s\n", msg);
        goto done;
    }
    if (cli_settings_load_env(&s, msg, sizeof msg) != 0) {
        fprintf(stderr, "tierdb: %s\n", msg);
        goto done;
    }
    for (int k = 0; k < nflags; k++) {
        if (cli_settings_set_flag(&s, flag_names[k], flag_values[k], msg, sizeof msg) != 0) {
            fprintf(stderr, "tierdb: %s\n", msg);
            goto done;
        }
    }
    if (test_clock) s.test_clock = true;
    if (s.data_dir == NULL || s.listen_host == NULL) {
        fprintf(stderr, "tierdb: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    cli_settings_warn_unknown_env();
    if (print_config) {
        cli_settings_print(&s, stdout);
        rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
        goto done;
    }
    rc = cli_serve(&s);
done:
    cli_settings_free(&s);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(main_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (is_help(cmd) || strcmp(cmd, "help") == 0) {
        fputs(main_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) return cmd_version(0, NULL);
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0) return cmd_version(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "import") == 0) return cli_import(argc - 2, argv + 2);
    if (strcmp(cmd, "collections") == 0) return cli_collections(argc - 2, argv + 2);
    if (strcmp(cmd, "query") == 0) return cli_query(argc - 2, argv + 2);
    if (strcmp(cmd, "tier") == 0) return cli_tier(argc - 2, argv + 2);
    return usage_error(main_usage, cmd[0] == '-' ? "unknown flag %s" : "unknown command '%s'", cmd);
}
