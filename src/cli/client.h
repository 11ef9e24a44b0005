/*
 * client.h: what the client commands of the CLI share (tierdb import,
 * collections, query, tier): an HTTP client for the API of a running
 * server (libcurl), option parsing, and turning answers into output and
 * exit statuses.
 * Layer: cli. The client speaks only HTTP to the server (docs/api.md),
 * exactly as any other client would; it never opens a data directory.
 *
 * Where the server is: --url, else TIERDB_URL, else http://127.0.0.1:7700
 * (API.md's default address). The key: --api-key, else TIERDB_API_KEY (the
 * variable the server reads its key from, so one environment serves both).
 * Exit statuses are cli.h's: 1 the server could not be reached or failed
 * (5xx), 3 it refused the request (4xx), with its error message printed.
 */
#ifndef TDB_CLI_CLIENT_H
#define TDB_CLI_CLIENT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/json.h"

#define CLI_DEFAULT_URL "http://127.0.0.1:7700"

typedef struct cli_client {
    CURL *curl;
    char *base;                 /* server URL without a trailing '/', owned */
    struct curl_slist *headers; /* Authorization (when a key is set), owned */
    char curl_error[CURL_ERROR_SIZE];
} cli_client;

/* One answer: status and body (NUL-terminated, owned), parsed when it is
 * JSON (json NULL otherwise). */
typedef struct cli_response {
    long status;
    char *body;
    size_t len;
    json_doc *json;
} cli_response;

/* Options of a client command. A value option stores its text in *value;
 * a switch sets *flag. */
typedef struct cli_opt {
    const char *name;   /* "--url" */
    const char **value; /* NULL for a switch */
    bool *flag;
} cli_opt;

/* Parses argv against opts ("--name VALUE", "--name=VALUE", switches) and
 * collects up to max_pos positional arguments. Returns 0; 1 when --help
 * was asked (usage printed to stdout); -1 on a usage error (message and
 * usage printed to stderr). */
int cli_parse_options(int argc, char **argv, const cli_opt *opts, size_t nopts, const char **pos,
                      size_t max_pos, size_t *npos, const char *usage);
/* Prints "tierdb: MESSAGE" and the usage to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* url/api_key: the options' values (NULL: environment, then default).
 * Returns 0, or -1 with msg. */
int cli_client_open(cli_client *c, const char *url, const char *api_key, char *msg, size_t cap);
void cli_client_close(cli_client *c);
/* A percent-encoded path segment (malloc'd; NULL when out of memory). */
char *cli_client_escape(cli_client *c, const char *segment);
/* Sends METHOD base+path with an optional JSON body. Returns 0 when an
 * answer came (any status), or -1 with msg when none did (connection
 * refused, timeout). */
int cli_client_request(cli_client *c, const char *method, const char *path, const char *json_body,
                       cli_response *out, char *msg, size_t cap);
void cli_response_free(cli_response *r);
/* For a response that is not 2xx: prints "tierdb: WHAT: CODE: MESSAGE
 * (HTTP STATUS)" to stderr and returns the exit status (3 for 4xx, 1
 * otherwise). */
int cli_report_http_error(const char *what, const cli_response *r);
/* A transport failure: prints it and returns CLI_EXIT_FAILURE. */
int cli_report_unreachable(const cli_client *c, const char *msg);

/* Human-readable byte count ("1.5 MiB") into out. */
void cli_format_bytes(double bytes, char *out, size_t cap);

#endif
