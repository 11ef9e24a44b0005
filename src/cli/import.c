/*
 * import.c: `tierdb import FILE --collection NAME`: streams an NDJSON file
 * (one document per line, docs/api.md "Documents") to a running server's
 * import route, showing progress, and prints the server's report.
 * Layer: cli.
 *
 * The file is never loaded: libcurl pulls it through import_read a buffer
 * at a time, as one request (Content-Length from the file's size, or
 * chunked transfer encoding for a pipe or stdin). The server validates and
 * commits lines as they arrive and stops reading while it writes, so the
 * client is paced by the database (TCP flow control) and memory stays flat
 * on both sides whatever the file size.
 *
 * Progress, on stderr: on a terminal, a bar redrawn in place with lines
 * sent, documents/s, MB/s and (for a file of known size) an ETA; otherwise
 * (a log, a CI job) a plain line every CLI_IMPORT_LOG_INTERVAL_S. The
 * rates count lines as they are sent; the server's report at the end says
 * what was committed.
 *
 * Exit statuses (cli.h): 0 every line imported; 4 some lines were bad
 * (skipped with --on-error skip, or the import stopped at one: the lines
 * before it are committed, the report names it); 3 the server refused the
 * import (unknown collection, bad key, ...); 1 the file could not be read
 * or the server could not be reached or failed; 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "util/buf.h"
#include "util/clock.h"

/* Plain progress lines (not a terminal) this far apart. */
#define CLI_IMPORT_LOG_INTERVAL_S 5.0
/* The bar is redrawn at most this often (a terminal is slow to draw). */
#define CLI_IMPORT_BAR_INTERVAL_S 0.2
#define CLI_IMPORT_BAR_WIDTH 24
/* An upload that moves no byte for this long has stalled: give up. */
#define CLI_IMPORT_STALL_S 600L
/* Errors printed from the report (it lists at most 100). */
#define CLI_IMPORT_SHOWN_ERRORS 20

static const char import_usage[] =
    "usage: tierdb import FILE --collection NAME [--create --dimension N [--metric M]]\n"
    "                     [--on-error abort|skip] [--batch N] [--json] [--quiet]\n"
    "                     [--url URL] [--api-key KEY]\n"
    "\n"
    "Streams FILE (NDJSON: one {\"id\", \"vector\", \"attributes\"} per line; '-'\n"
    "reads stdin) into collection NAME of a running server. Documents are\n"
    "upserted; the file is never held in memory, on either side.\n"
    "\n"
    "options:\n"
    "  --collection NAME   the collection to import into\n"
    "  --create            create the collection first (an existing one with the\n"
    "                      same dimension is used as it is)\n"
    "  --dimension N       its dimension, with --create (0: text only)\n"
    "  --metric M          cosine, l2 or dot, with --create (default cosine)\n"
    "  --on-error MODE     abort (default): stop at the first bad line, keeping\n"
    "                      the lines before it; skip: skip bad lines, go on\n"
    "  --batch N           documents per atomic write on the server (default 1000)\n"
    "  --json              print the server's report as JSON on stdout\n"
    "  --quiet             no progress\n"
    "  --url URL           the server (env TIERDB_URL; default " CLI_DEFAULT_URL ")\n"
    "  --api-key KEY       the API key (env TIERDB_API_KEY)\n"
    "  -h, --help          this help\n"
    "\n"
    "exit status: 0 all lines imported, 4 some lines were bad, 3 the server\n"
    "refused the import, 1 unreadable file or unreachable server, 2 usage.\n";

typedef struct import_progress {
    FILE *file;
    int read_errno;         /* non-zero: reading the file failed */
    uint64_t bytes;         /* sent so far */
    uint64_t lines;         /* '\n' sent so far */
    int64_t size;           /* -1: unknown (a pipe) */
    uint64_t start_ns;
    uint64_t last_draw_ns;
    bool tty, quiet, drawn;
} import_progress;

static size_t import_read(char *out, size_t size, size_t nitems, void *userdata) {
    import_progress *p = userdata;
    size_t n = fread(out, 1, size * nitems, p->file);
    if (n == 0 && ferror(p->file)) {
        p->read_errno = errno ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    for (const char *c = out, *end = out + n; (c = memchr(c, '\n', (size_t)(end - c))) != NULL; c++) p->lines++;
    p->bytes += n;
    return n;
}

static void draw(import_progress *p, bool final) {
    uint64_t now = clock_mono_ns();
    double secs = (double)(now - p->start_ns) / 1e9;
    double rate_docs = secs > 0 ? (double)p->lines / secs : 0;
    double rate_mb = secs > 0 ? (double)p->bytes / 1e6 / secs : 0;
    if (p->tty) {
        char bar[CLI_IMPORT_BAR_WIDTH + 1];
        double frac = p->size > 0 ? (double)p->bytes / (double)p->size : 0;
        if (frac > 1) frac = 1;
        int filled = (int)(frac * CLI_IMPORT_BAR_WIDTH);
        for (int i = 0; i < CLI_IMPORT_BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
        bar[CLI_IMPORT_BAR_WIDTH] = '\0';
        char eta[32] = "";
        if (p->size > 0 && rate_mb > 0 && !final) {
            double left = ((double)p->size - (double)p->bytes) / 1e6 / rate_mb;
            snprintf(eta, sizeof eta, "  ETA %.0fs", left > 0 ? left : 0);
        }
        if (p->size > 0)
            fprintf(stderr, "\r[%s] %3.0f%%  %llu lines  %.0f docs/s  %.1f MB/s%s\033[K", bar, frac * 100,
                    (unsigned long long)p->lines, rate_docs, rate_mb, eta);
        else
            fprintf(stderr, "\r%llu lines  %.0f docs/s  %.1f MB/s\033[K", (unsigned long long)p->lines, rate_docs,
                    rate_mb);
        if (final) fputc('\n', stderr);
    } else {
        if (p->size > 0)
            fprintf(stderr, "tierdb import: %llu lines sent (%.0f%%), %.0f docs/s, %.1f MB/s, %.1fs\n",
                    (unsigned long long)p->lines, 100.0 * (double)p->bytes / (double)p->size, rate_docs, rate_mb, secs);
        else
            fprintf(stderr, "tierdb import: %llu lines sent, %.0f docs/s, %.1f MB/s, %.1fs\n",
                    (unsigned long long)p->lines, rate_docs, rate_mb, secs);
    }
    fflush(stderr);
    p->last_draw_ns = now;
    p->drawn = true;
}

static int import_xferinfo(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                           curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    import_progress *p = userdata;
    if (p->quiet) return 0;
    double since = (double)(clock_mono_ns() - (p->drawn ? p->last_draw_ns : p->start_ns)) / 1e9;
    if (since >= (p->tty ? CLI_IMPORT_BAR_INTERVAL_S : CLI_IMPORT_LOG_INTERVAL_S)) draw(p, false);
    return 0;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *userdata) {
    buf_append(userdata, data, size * nmemb);
    return buf_failed(userdata) ? 0 : size * nmemb;
}

/* --create: creates the collection, or accepts an existing one whose
 * dimension (and metric, when given) match. Returns an exit status. */
static int ensure_collection(cli_client *c, const char *name, const char *seg, long dimension, const char *metric,
                             bool quiet) {
    buf body = BUF_INIT;
    buf_puts(&body, "{\"name\":");
    json_write_string(&body, name, strlen(name));
    buf_printf(&body, ",\"dimension\":%ld,\"metric\":\"%s\"}", dimension, metric ? metric : "cosine");
    if (buf_failed(&body)) {
        buf_free(&body);
        fprintf(stderr, "tierdb: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    char msg[512];
    cli_response r;
    int rc = CLI_EXIT_OK;
    if (cli_client_request(c, "POST", "/v1/collections", body.data, &r, msg, sizeof msg) != 0) {
        buf_free(&body);
        return cli_report_unreachable(c, msg);
    }
    buf_free(&body);
    if (r.status == 201) {
        if (!quiet) fprintf(stderr, "tierdb import: created collection %s (dimension %ld)\n", name, dimension);
    } else if (r.status == 409) {
        cli_response g;
        char *path = NULL;
        if (asprintf(&path, "/v1/collections/%s", seg) < 0) path = NULL;
        if (path == NULL || cli_client_request(c, "GET", path, NULL, &g, msg, sizeof msg) != 0) {
            free(path);
            cli_response_free(&r);
            return cli_report_unreachable(c, path ? msg : "out of memory");
        }
        free(path);
        const json_value *root = g.json ? json_root(g.json) : NULL;
        const json_value *dim = root ? json_get(root, "dimension") : NULL;
        const json_value *met = root ? json_get(root, "metric") : NULL;
        if (g.status != 200) {
            rc = cli_report_http_error("read the existing collection", &g);
        } else if (dim == NULL || dim->type != JSON_NUMBER || (long)dim->num != dimension) {
            fprintf(stderr, "tierdb: collection %s exists with dimension %.0f, not %ld\n", name,
                    dim && dim->type == JSON_NUMBER ? dim->num : -1.0, dimension);
            rc = CLI_EXIT_REFUSED;
        } else if (metric && (met == NULL || met->type != JSON_STRING || strcmp(met->str, metric) != 0)) {
            fprintf(stderr, "tierdb: collection %s exists with metric %s, not %s\n", name,
                    met && met->type == JSON_STRING ? met->str : "?", metric);
            rc = CLI_EXIT_REFUSED;
        } else if (!quiet) {
            fprintf(stderr, "tierdb import: collection %s exists; importing into it\n", name);
        }
        cli_response_free(&g);
    } else {
        rc = cli_report_http_error("create the collection", &r);
    }
    cli_response_free(&r);
    return rc;
}

/* Prints the report; returns the exit status it calls for. */
static int show_report(const cli_response *r, import_progress *p, bool raw) {
    const json_value *root = r->json ? json_root(r->json) : NULL;
    const json_value *imported = root ? json_get(root, "imported") : NULL;
    const json_value *skipped = root ? json_get(root, "skipped") : NULL;
    const json_value *errors = root ? json_get(root, "errors") : NULL;
    if (imported == NULL || imported->type != JSON_NUMBER || skipped == NULL || errors == NULL ||
        errors->type != JSON_ARRAY) {
        fprintf(stderr, "tierdb: the server's answer is not an import report: %.300s\n", r->body);
        return CLI_EXIT_FAILURE;
    }
    double secs = (double)(clock_mono_ns() - p->start_ns) / 1e9;
    if (raw) {
        fputs(r->body, stdout);
        if (r->len == 0 || r->body[r->len - 1] != '\n') putchar('\n');
    } else {
        printf("imported %.0f documents, skipped %.0f lines in %.1fs (%.0f docs/s, %.1f MB/s)\n", imported->num,
               skipped->num, secs, secs > 0 ? imported->num / secs : 0, secs > 0 ? (double)p->bytes / 1e6 / secs : 0);
    }
    size_t shown = 0;
    for (const json_value *e = errors->child; e; e = e->next) {
        if (shown++ == CLI_IMPORT_SHOWN_ERRORS) {
            fprintf(stderr, "tierdb import: ... (%u errors listed in all; --json shows them)\n", errors->len);
            break;
        }
        const json_value *line = json_get(e, "line"), *message = json_get(e, "message");
        const char *text = message && message->type == JSON_STRING ? message->str : "?";
        /* The server's messages name the line already ("line 7: ..."). */
        if (strncmp(text, "line ", 5) == 0)
            fprintf(stderr, "tierdb import: %s\n", text);
        else
            fprintf(stderr, "tierdb import: line %.0f: %s\n", line && line->type == JSON_NUMBER ? line->num : 0, text);
    }
    return errors->len > 0 || (skipped->type == JSON_NUMBER && skipped->num > 0) ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
}

int cli_import(int argc, char **argv) {
    const char *url = NULL, *key = NULL, *collection = NULL, *dimension = NULL, *metric = NULL, *on_error = NULL,
               *batch = NULL;
    bool create = false, raw = false, quiet = false;
    const cli_opt opts[] = {
        {"--url", &url, NULL},           {"--api-key", &key, NULL},   {"--collection", &collection, NULL},
        {"--dimension", &dimension, NULL}, {"--metric", &metric, NULL}, {"--on-error", &on_error, NULL},
        {"--batch", &batch, NULL},       {"--create", NULL, &create}, {"--json", NULL, &raw},
        {"--quiet", NULL, &quiet}};
    const char *pos[1];
    size_t npos;
    int p = cli_parse_options(argc, argv, opts, sizeof opts / sizeof opts[0], pos, 1, &npos, import_usage);
    if (p != 0) return p > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (npos != 1) return cli_usage_error(import_usage, "which file? (tierdb import FILE --collection NAME; '-' is stdin)");
    if (collection == NULL || collection[0] == '\0') return cli_usage_error(import_usage, "--collection NAME is required");
    if (on_error && strcmp(on_error, "abort") != 0 && strcmp(on_error, "skip") != 0)
        return cli_usage_error(import_usage, "--on-error must be abort or skip");
    long dim = -1;
    if (dimension) {
        char *end;
        errno = 0;
        dim = strtol(dimension, &end, 10);
        if (errno || end == dimension || *end != '\0' || dim < 0 || dim > 4096)
            return cli_usage_error(import_usage, "--dimension must be an integer in 0..4096");
    }
    if (metric && strcmp(metric, "cosine") != 0 && strcmp(metric, "l2") != 0 && strcmp(metric, "dot") != 0)
        return cli_usage_error(import_usage, "--metric must be cosine, l2 or dot");
    if (create && dim < 0) return cli_usage_error(import_usage, "--create needs --dimension N");
    if (!create && (dimension || metric)) return cli_usage_error(import_usage, "--dimension and --metric go with --create");
    long batch_docs = 0;
    if (batch) {
        char *end;
        errno = 0;
        batch_docs = strtol(batch, &end, 10);
        if (errno || end == batch || *end != '\0' || batch_docs < 1 || batch_docs > TDB_IMPORT_MAX_BATCH_DOCS)
            return cli_usage_error(import_usage, "--batch must be an integer in 1..%d", TDB_IMPORT_MAX_BATCH_DOCS);
    }

    import_progress prog = {0};
    const char *file = pos[0];
    bool is_stdin = strcmp(file, "-") == 0;
    prog.file = is_stdin ? stdin : fopen(file, "rb");
    if (prog.file == NULL) {
        fprintf(stderr, "tierdb: cannot open %s: %s\n", file, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    struct stat sb;
    prog.size = fstat(fileno(prog.file), &sb) == 0 && S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : -1;
    prog.tty = isatty(STDERR_FILENO);
    prog.quiet = quiet;

    cli_client c;
    char msg[512];
    int rc = CLI_EXIT_OK;
    char *seg = NULL, *path = NULL;
    buf answer = BUF_INIT;
    struct curl_slist *headers = NULL;
    cli_response r = {0};
    if (cli_client_open(&c, url, key, msg, sizeof msg) != 0) {
        fprintf(stderr, "tierdb: %s\n", msg);
        if (!is_stdin) fclose(prog.file);
        return CLI_EXIT_USAGE;
    }
    if ((seg = cli_client_escape(&c, collection)) == NULL) {
        fprintf(stderr, "tierdb: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    if (create && (rc = ensure_collection(&c, collection, seg, dim, metric, quiet)) != CLI_EXIT_OK) goto done;
    char query[96];
    snprintf(query, sizeof query, "?on_error=%s", on_error ? on_error : "abort");
    if (batch_docs > 0) snprintf(query + strlen(query), sizeof query - strlen(query), "&batch_size=%ld", batch_docs);
    if (asprintf(&path, "%s/v1/collections/%s/documents/import%s", c.base, seg, query) < 0) {
        path = NULL;
        fprintf(stderr, "tierdb: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    for (struct curl_slist *h = c.headers; h; h = h->next) headers = curl_slist_append(headers, h->data);
    headers = curl_slist_append(headers, "Content-Type: application/x-ndjson");
    if (prog.size < 0) headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    CURL *curl = c.curl;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, path);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, import_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &prog);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)prog.size);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, import_xferinfo);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &prog);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, c.curl_error);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, CLI_IMPORT_STALL_S);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    /* A bigger upload buffer: fewer read calls and send calls per MB. */
    curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    prog.start_ns = clock_mono_ns();
    c.curl_error[0] = '\0';
    CURLcode cc = curl_easy_perform(curl);
    if (!quiet && (prog.drawn || prog.tty)) draw(&prog, true);
    if (prog.read_errno) {
        fprintf(stderr, "tierdb: reading %s: %s (lines sent before were imported as the server's log shows)\n", file,
                strerror(prog.read_errno));
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    if (cc != CURLE_OK) {
        rc = cli_report_unreachable(&c, c.curl_error[0] ? c.curl_error : curl_easy_strerror(cc));
        goto done;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    r.len = answer.len;
    r.body = answer.data ? buf_steal(&answer) : strdup("");
    json_error jerr;
    if (r.body && r.len > 0 && json_parse(r.body, r.len, &r.json, &jerr) != 0) r.json = NULL;
    if (r.status != 200) {
        rc = cli_report_http_error("import", &r);
        if (r.status == 404 && !create)
            fprintf(stderr, "tierdb: (to create the collection: --create --dimension N [--metric M])\n");
        goto done;
    }
    rc = show_report(&r, &prog, raw);
    if (fflush(stdout) != 0) rc = CLI_EXIT_FAILURE;
done:
    cli_response_free(&r);
    buf_free(&answer);
    curl_slist_free_all(headers);
    free(path);
    free(seg);
    cli_client_close(&c);
    if (!is_stdin) fclose(prog.file);
    return rc;
}
