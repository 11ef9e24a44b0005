/*
 * client.c: the HTTP client of the CLI's client commands, their option
 * parsing, and the commands that are one request each: tierdb collections,
 * tierdb query, tierdb tier (client.h says how the server and key are
 * found). tierdb import streams and lives in import.c.
 * Layer: cli.
 *
 * Output: a short human-readable form by default; --json prints the
 * server's JSON answer as it came, for scripts (jq and friends). Errors go
 * to stderr as "tierdb: ..." with the exit statuses of cli.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "util/buf.h"

/* A request that gets no answer within this long has failed: long enough
 * for a promotion from cold storage or a slow cycle, short enough that a
 * script does not hang forever on a wedged server. */
#define CLI_REQUEST_TIMEOUT_S 600L
#define CLI_CONNECT_TIMEOUT_S 10L
/* Longest answer read into memory (a page of 10,000 documents with
 * vectors fits); a bigger one is an error rather than an OOM. */
#define CLI_MAX_RESPONSE_BYTES (512u << 20)

/* ---- options ------------------------------------------------------------ */

int cli_usage_error(const char *usage, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tierdb: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return CLI_EXIT_USAGE;
}

int cli_parse_options(int argc, char **argv, const cli_opt *opts, size_t nopts, const char **pos,
                      size_t max_pos, size_t *npos, const char *usage) {
    *npos = 0;
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(usage, stdout);
            return 1;
        }
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (*npos >= max_pos) {
                cli_usage_error(usage, "unexpected argument '%s'", a);
                return -1;
            }
            pos[(*npos)++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o = NULL;
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == name_len && strncmp(opts[k].name, a, name_len) == 0) o = &opts[k];
        if (o == NULL) {
            cli_usage_error(usage, "unknown flag %.*s", (int)name_len, a);
            return -1;
        }
        if (o->value == NULL) {
            if (eq) {
                cli_usage_error(usage, "%s takes no value", o->name);
                return -1;
            }
            *o->flag = true;
            continue;
        }
        if (eq) {
            *o->value = eq + 1;
        } else {
            if (i + 1 >= argc) {
                cli_usage_error(usage, "%s needs a value", o->name);
                return -1;
            }
            *o->value = argv[++i];
        }
    }
    return 0;
}

/* ---- HTTP --------------------------------------------------------------- */

int cli_client_open(cli_client *c, const char *url, const char *api_key, char *msg, size_t cap) {
    memset(c, 0, sizeof *c);
    if (url == NULL || url[0] == '\0') url = getenv("TIERDB_URL");
    if (url == NULL || url[0] == '\0') url = CLI_DEFAULT_URL;
    if (api_key == NULL) api_key = getenv("TIERDB_API_KEY");
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(msg, cap, "--url: '%s' is not an http:// or https:// URL (e.g. %s)", url, CLI_DEFAULT_URL);
        return -1;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') n--;
    c->base = strndup(url, n);
    c->curl = curl_easy_init();
    if (c->base == NULL || c->curl == NULL) {
        snprintf(msg, cap, "out of memory");
        cli_client_close(c);
        return -1;
    }
    if (api_key != NULL && api_key[0] != '\0') {
        char *h = NULL;
        if (asprintf(&h, "Authorization: Bearer %s", api_key) < 0 || (c->headers = curl_slist_append(NULL, h)) == NULL) {
            free(h);
            snprintf(msg, cap, "out of memory");
            cli_client_close(c);
            return -1;
        }
        free(h);
    }
    return 0;
}

void cli_client_close(cli_client *c) {
    if (c->curl) curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->base);
    memset(c, 0, sizeof *c);
}

char *cli_client_escape(cli_client *c, const char *segment) {
    char *e = curl_easy_escape(c->curl, segment, (int)strlen(segment));
    if (e == NULL) return NULL;
    char *copy = strdup(e);
    curl_free(e);
    return copy;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *userdata) {
    buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > CLI_MAX_RESPONSE_BYTES) return 0; /* curl reports a write error */
    buf_append(b, data, n);
    return buf_failed(b) ? 0 : n;
}

int cli_client_request(cli_client *c, const char *method, const char *path, const char *json_body,
                       cli_response *out, char *msg, size_t cap) {
    memset(out, 0, sizeof *out);
    char *url = NULL;
    if (asprintf(&url, "%s%s", c->base, path) < 0) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    buf body = BUF_INIT;
    struct curl_slist *headers = NULL;
    for (struct curl_slist *h = c->headers; h; h = h->next) headers = curl_slist_append(headers, h->data);
    /* Without a type curl would label a POST form data, which JSON routes
     * refuse; an empty POST body is fine as JSON routes read it. */
    if (json_body || strcmp(method, "POST") == 0) headers = curl_slist_append(headers, "Content-Type: application/json");
    CURL *curl = c->curl;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, c->curl_error);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, CLI_REQUEST_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CLI_CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (json_body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json_body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json_body));
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    c->curl_error[0] = '\0';
    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    free(url);
    if (rc != CURLE_OK) {
        snprintf(msg, cap, "%s", c->curl_error[0] ? c->curl_error : curl_easy_strerror(rc));
        buf_free(&body);
        return -1;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    out->len = body.len;
    out->body = body.data ? buf_steal(&body) : strdup("");
    json_error jerr;
    if (out->body && out->len > 0 && json_parse(out->body, out->len, &out->json, &jerr) != 0) out->json = NULL;
    return 0;
}

void cli_response_free(cli_response *r) {
    free(r->body);
    json_doc_free(r->json);
    memset(r, 0, sizeof *r);
}

/* A string member of an object, or NULL. */
static const char *str_of(const json_value *obj, const char *key) {
    const json_value *v = obj ? json_get(obj, key) : NULL;
    return v && v->type == JSON_STRING ? v->str : NULL;
}

int cli_report_http_error(const char *what, const cli_response *r) {
    const json_value *root = r->json ? json_root(r->json) : NULL;
    const json_value *e = root ? json_get(root, "error") : NULL;
    const char *code = str_of(e, "code"), *message = str_of(e, "message");
    if (code && message)
        fprintf(stderr, "tierdb: %s: %s: %s (HTTP %ld)\n", what, code, message, r->status);
    else
        fprintf(stderr, "tierdb: %s: HTTP %ld: %.300s\n", what, r->status, r->body ? r->body : "");
    return r->status >= 400 && r->status < 500 ? CLI_EXIT_REFUSED : CLI_EXIT_FAILURE;
}

int cli_report_unreachable(const cli_client *c, const char *msg) {
    fprintf(stderr, "tierdb: cannot reach the server at %s: %s (is `tierdb serve` running? see --url)\n", c->base,
            msg);
    return CLI_EXIT_FAILURE;
}

void cli_format_bytes(double bytes, char *out, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (bytes >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024;
        u++;
    }
    if (u == 0) snprintf(out, cap, "%.0f B", bytes);
    else snprintf(out, cap, "%.1f %s", bytes, units[u]);
}

/* Runs one request and prints the raw body (--json) or hands the parsed
 * answer to show. Returns the exit status. */
typedef void (*show_fn)(const json_value *root, void *ctx);

static int run_request(const char *url, const char *key, const char *method, const char *path_fmt,
                       const char *name, const char *body, const char *what, bool raw, show_fn show, void *ctx) {
    cli_client c;
    char msg[512];
    if (cli_client_open(&c, url, key, msg, sizeof msg) != 0) {
        fprintf(stderr, "tierdb: %s\n", msg);
        return CLI_EXIT_USAGE;
    }
    int rc = CLI_EXIT_OK;
    char *seg = NULL, *path = NULL;
    cli_response r = {0};
    if (name != NULL && (seg = cli_client_escape(&c, name)) == NULL) {
        fprintf(stderr, "tierdb: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    if (asprintf(&path, path_fmt, seg ? seg : "") < 0) {
        path = NULL;
        fprintf(stderr, "tierdb: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    if (cli_client_request(&c, method, path, body, &r, msg, sizeof msg) != 0) {
        rc = cli_report_unreachable(&c, msg);
        goto done;
    }
    if (r.status < 200 || r.status >= 300) {
        rc = cli_report_http_error(what, &r);
        goto done;
    }
    if (raw || r.json == NULL) {
        fputs(r.body, stdout);
        if (r.len == 0 || r.body[r.len - 1] != '\n') putchar('\n');
    } else {
        show(json_root(r.json), ctx);
    }
    if (fflush(stdout) != 0) rc = CLI_EXIT_FAILURE;
done:
    cli_response_free(&r);
    free(seg);
    free(path);
    cli_client_close(&c);
    return rc;
}

static double num_of(const json_value *obj, const char *key) {
    const json_value *v = obj ? json_get(obj, key) : NULL;
    return v && v->type == JSON_NUMBER ? v->num : 0;
}

static bool bool_of(const json_value *obj, const char *key) {
    const json_value *v = obj ? json_get(obj, key) : NULL;
    return v && v->type == JSON_TRUE;
}

/* ---- tierdb collections -------------------------------------------------- */

static const char collections_usage[] =
    "usage: tierdb collections [--tier hot|warm|cold] [--json] [--url URL] [--api-key KEY]\n"
    "\n"
    "Lists the collections of a running server: name, tier, documents,\n"
    "dimension, metric, disk and memory.\n"
    "\n"
    "options:\n"
    "  --tier T        only the collections in tier T\n"
    "  --json          print the server's JSON answer\n"
    "  --url URL       the server (env TIERDB_URL; default " CLI_DEFAULT_URL ")\n"
    "  --api-key KEY   the API key (env TIERDB_API_KEY)\n"
    "  -h, --help      this help\n";

static void show_collections(const json_value *root, void *ctx) {
    (void)ctx;
    const json_value *list = json_get(root, "collections");
    printf("%-32s %-5s %-6s %12s %12s %5s %-6s %10s %10s\n", "NAME", "TIER", "PINNED", "DOCUMENTS", "INDEXED", "DIM",
           "METRIC", "DISK", "MEMORY");
    size_t n = 0;
    for (const json_value *c = list && list->type == JSON_ARRAY ? list->child : NULL; c; c = c->next, n++) {
        char disk[32], mem[32];
        cli_format_bytes(num_of(c, "disk_bytes"), disk, sizeof disk);
        cli_format_bytes(num_of(c, "memory_bytes"), mem, sizeof mem);
        const char *name = str_of(c, "name"), *tier = str_of(c, "tier"), *metric = str_of(c, "metric");
        printf("%-32s %-5s %-6s %12.0f %12.0f %5.0f %-6s %10s %10s\n", name ? name : "?", tier ? tier : "?",
               bool_of(c, "pinned") ? "yes" : "no", num_of(c, "documents"), num_of(c, "indexed_documents"),
               num_of(c, "dimension"), metric ? metric : "?", disk, mem);
    }
    if (n == 0) printf("(no collections)\n");
}

int cli_collections(int argc, char **argv) {
    const char *url = NULL, *key = NULL, *tier = NULL;
    bool raw = false;
    const cli_opt opts[] = {{"--url", &url, NULL}, {"--api-key", &key, NULL}, {"--tier", &tier, NULL},
                            {"--json", NULL, &raw}};
    const char *pos[1];
    size_t npos;
    int p = cli_parse_options(argc, argv, opts, sizeof opts / sizeof opts[0], pos, 0, &npos, collections_usage);
    if (p != 0) return p > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (tier && strcmp(tier, "hot") != 0 && strcmp(tier, "warm") != 0 && strcmp(tier, "cold") != 0)
        return cli_usage_error(collections_usage, "--tier must be hot, warm or cold");
    char path[64];
    snprintf(path, sizeof path, "/v1/collections%s%s", tier ? "?tier=" : "", tier ? tier : "");
    return run_request(url, key, "GET", path, NULL, NULL, "list collections", raw, show_collections, NULL);
}

/* ---- tierdb query --------------------------------------------------------- */

static const char query_usage[] =
    "usage: tierdb query NAME [--vector JSON] [--text TEXT] [--filter JSON] [--top-k N]\n"
    "                    [--json] [--url URL] [--api-key KEY]\n"
    "\n"
    "Runs one query on collection NAME and prints the results, best first\n"
    "(docs/api.md \"Query\"): --vector alone finds nearest neighbours, --text\n"
    "alone ranks by BM25, both fuse the two, neither lists the documents the\n"
    "filter matches.\n"
    "\n"
    "options:\n"
    "  --vector JSON    the query vector, e.g. '[0.1, 0.2, 0.3]'\n"
    "  --text TEXT      full-text query over every full-text attribute\n"
    "  --filter JSON    e.g. '{\"year\": {\"$gte\": 2020}}'\n"
    "  --top-k N        results wanted (default 10, at most 10000)\n"
    "  --collection NAME  the collection (instead of the NAME argument)\n"
    "  --json           print the server's JSON answer\n"
    "  --url URL        the server (env TIERDB_URL; default " CLI_DEFAULT_URL ")\n"
    "  --api-key KEY    the API key (env TIERDB_API_KEY)\n"
    "  -h, --help       this help\n";

static void show_results(const json_value *root, void *ctx) {
    (void)ctx;
    const json_value *results = json_get(root, "results");
    size_t rank = 0;
    for (const json_value *r = results && results->type == JSON_ARRAY ? results->child : NULL; r; r = r->next) {
        rank++;
        const json_value *id = json_get(r, "id"), *d = json_get(r, "distance"), *s = json_get(r, "score");
        const json_value *attrs = json_get(r, "attributes");
        printf("%4zu  %-24s", rank, id && id->type == JSON_STRING ? id->str : "?");
        if (d && d->type == JSON_NUMBER) printf("  distance %.6g", d->num);
        if (s && s->type == JSON_NUMBER) printf("  score %.6g", s->num);
        if (attrs && attrs->type == JSON_OBJECT && attrs->len > 0) {
            buf b = BUF_INIT;
            json_write_value(&b, attrs);
            if (!buf_failed(&b)) printf("  %s", b.data);
            buf_free(&b);
        }
        putchar('\n');
    }
    const char *tier = str_of(root, "tier");
    printf("%zu result%s in %.3g ms (tier %s)\n", rank, rank == 1 ? "" : "s", num_of(root, "took_ms"),
           tier ? tier : "?");
}

/* Checks that text parses as JSON of the wanted type, for a clear usage
 * error before any request. */
static bool json_is(const char *text, json_type want) {
    json_doc *doc = NULL;
    json_error jerr;
    bool ok = json_parse(text, strlen(text), &doc, &jerr) == 0 && json_root(doc)->type == want;
    json_doc_free(doc);
    return ok;
}

int cli_query(int argc, char **argv) {
    const char *url = NULL, *key = NULL, *vector = NULL, *text = NULL, *filter = NULL, *top_k = NULL,
               *collection = NULL;
    bool raw = false;
    const cli_opt opts[] = {{"--url", &url, NULL},       {"--api-key", &key, NULL},  {"--vector", &vector, NULL},
                            {"--text", &text, NULL},     {"--filter", &filter, NULL}, {"--top-k", &top_k, NULL},
                            {"--collection", &collection, NULL}, {"--json", NULL, &raw}};
    const char *pos[1];
    size_t npos;
    int p = cli_parse_options(argc, argv, opts, sizeof opts / sizeof opts[0], pos, 1, &npos, query_usage);
    if (p != 0) return p > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    const char *name = collection ? collection : npos ? pos[0] : NULL;
    if (name == NULL) return cli_usage_error(query_usage, "which collection? (tierdb query NAME ...)");
    if (collection && npos) return cli_usage_error(query_usage, "give the collection once (NAME or --collection)");
    if (vector && !json_is(vector, JSON_ARRAY))
        return cli_usage_error(query_usage, "--vector must be a JSON array of numbers, e.g. '[0.1, 0.2]'");
    if (filter && !json_is(filter, JSON_OBJECT))
        return cli_usage_error(query_usage, "--filter must be a JSON object, e.g. '{\"year\": 2024}'");
    long k = 10;
    if (top_k) {
        char *end;
        errno = 0;
        k = strtol(top_k, &end, 10);
        if (errno || *end != '\0' || end == top_k || k < 1 || k > 10000)
            return cli_usage_error(query_usage, "--top-k must be an integer in 1..10000");
    }
    buf b = BUF_INIT;
    buf_printf(&b, "{\"top_k\":%ld", k);
    if (vector) buf_printf(&b, ",\"vector\":%s", vector);
    if (text) {
        buf_puts(&b, ",\"text\":");
        json_write_string(&b, text, strlen(text));
    }
    if (filter) buf_printf(&b, ",\"filter\":%s", filter);
    buf_puts(&b, ",\"include\":{\"attributes\":true}}");
    if (buf_failed(&b)) {
        buf_free(&b);
        fprintf(stderr, "tierdb: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    int rc = run_request(url, key, "POST", "/v1/collections/%s/query", name, b.data, "query", raw, show_results, NULL);
    buf_free(&b);
    return rc;
}

/* ---- tierdb tier ---------------------------------------------------------- */

static const char tier_usage[] =
    "usage: tierdb tier status|pin|unpin|promote|demote NAME [--to hot|warm|cold]\n"
    "                   [--json] [--url URL] [--api-key KEY]\n"
    "\n"
    "Shows or changes the tier of collection NAME (docs/api.md \"Tiering\"):\n"
    "  status    the tier object (reading it is no access)\n"
    "  pin       never demote automatically; unpin undoes it\n"
    "  promote   move up now (default: to hot); waits until the move is done\n"
    "  demote    move down now (default: one step; a pinned collection: refused)\n"
    "\n"
    "options:\n"
    "  --to T          target tier of promote or demote\n"
    "  --json          print the server's JSON answer\n"
    "  --url URL       the server (env TIERDB_URL; default " CLI_DEFAULT_URL ")\n"
    "  --api-key KEY   the API key (env TIERDB_API_KEY)\n"
    "  -h, --help      this help\n";

static void show_tier(const json_value *root, void *ctx) {
    const char *name = ctx;
    char mem[32], disk[32], obj[32];
    cli_format_bytes(num_of(root, "memory_bytes"), mem, sizeof mem);
    cli_format_bytes(num_of(root, "disk_bytes"), disk, sizeof disk);
    cli_format_bytes(num_of(root, "object_bytes"), obj, sizeof obj);
    const char *tier = str_of(root, "tier"), *last = str_of(root, "last_accessed_at");
    const char *snap = str_of(root, "snapshot_id"), *updated = str_of(root, "updated_at");
    printf("collection    %s\n", name);
    printf("tier          %s%s\n", tier ? tier : "?", bool_of(root, "pinned") ? " (pinned)" : "");
    printf("accesses      %.0f, last at %s\n", num_of(root, "access_count"), last ? last : "never");
    printf("memory        %s\ndisk          %s\nobject store  %s%s%s\n", mem, disk, obj, snap ? ", copy " : "",
           snap ? snap : "");
    if (updated) printf("updated at    %s\n", updated);
}

int cli_tier(int argc, char **argv) {
    const char *url = NULL, *key = NULL, *to = NULL;
    bool raw = false;
    const cli_opt opts[] = {{"--url", &url, NULL}, {"--api-key", &key, NULL}, {"--to", &to, NULL},
                            {"--json", NULL, &raw}};
    const char *pos[2];
    size_t npos;
    int p = cli_parse_options(argc, argv, opts, sizeof opts / sizeof opts[0], pos, 2, &npos, tier_usage);
    if (p != 0) return p > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (npos < 1) return cli_usage_error(tier_usage, "which action? status, pin, unpin, promote or demote");
    if (npos < 2) return cli_usage_error(tier_usage, "which collection? (tierdb tier %s NAME)", pos[0]);
    const char *action = pos[0], *name = pos[1];
    bool move = strcmp(action, "promote") == 0 || strcmp(action, "demote") == 0;
    if (to && !move) return cli_usage_error(tier_usage, "--to goes with promote or demote");
    if (to && strcmp(to, "hot") != 0 && strcmp(to, "warm") != 0 && strcmp(to, "cold") != 0)
        return cli_usage_error(tier_usage, "--to must be hot, warm or cold");
    char body[32];
    snprintf(body, sizeof body, "{\"to\":\"%s\"}", to ? to : "");
    if (strcmp(action, "status") == 0)
        return run_request(url, key, "GET", "/v1/collections/%s/tier", name, NULL, "tier status", raw, show_tier,
                           (void *)name);
    if (strcmp(action, "pin") == 0)
        return run_request(url, key, "POST", "/v1/collections/%s/tier/pin", name, NULL, "tier pin", raw, show_tier,
                           (void *)name);
    if (strcmp(action, "unpin") == 0)
        return run_request(url, key, "POST", "/v1/collections/%s/tier/unpin", name, NULL, "tier unpin", raw,
                           show_tier, (void *)name);
    if (strcmp(action, "promote") == 0)
        return run_request(url, key, "POST", "/v1/collections/%s/tier/promote", name, to ? body : NULL,
                           "tier promote", raw, show_tier, (void *)name);
    if (strcmp(action, "demote") == 0)
        return run_request(url, key, "POST", "/v1/collections/%s/tier/demote", name, to ? body : NULL,
                           "tier demote", raw, show_tier, (void *)name);
    return cli_usage_error(tier_usage, "unknown action '%s' (status, pin, unpin, promote, demote)", action);
}
