/*
 * bench_text.c: `tierdb bench text`, the built-in full-text benchmark
 * (API.md "Built-in benchmarks").
 * Layer: cli. Unlike the other commands it works in-process on the text
 * layer (text/analyzer.h, text/index.h, text/bm25.h) rather than through
 * tierdb.h: it measures the text engine alone, without HTTP or storage.
 *
 *   tierdb bench text --corpus C.ndjson --field F --queries Q.txt
 *                     [--k 10] [--threads 1] [--results OUT]
 *
 * 1. Reads the corpus (one JSON object per line with "id" and field F, a
 *    string; a line without F is a document without the field) and the
 *    queries (one per line; blank lines skipped). Parsing is not timed.
 * 2. Timed as index_s, the work of a memtable plus its flush: analyze each
 *    document's field with the default analyzer into a text_memindex (rows
 *    in corpus order, as a memtable assigns them), serialize it into the
 *    segment blob with rows in id order (the row map a flush builds), and
 *    open the blob in place.
 * 3. Queries, one thread or --threads T (queries dealt round-robin): each
 *    query is analyzed, its distinct terms looked up for df (the corpus-wide
 *    statistics of this single segment), and the top k found by block-max
 *    WAND. One untimed warm-up pass, then PASSES timed passes; qps is
 *    queries / median pass time (the same protocol as the kit's FTS5
 *    baseline, so the two compare side by side).
 * Output (stdout), one JSON object per line, exactly:
 *   {"index_s": .., "documents": ..}
 *   {"queries": .., "qps": ..}
 * A line of details (blob bytes, terms, per-pass times, postings scored)
 * goes to stderr. --results OUT writes {"query", "ids", "scores"} per
 * query, best first (scores as shortest round-trip doubles).
 * Exit status: 0, 1 on a failure (unreadable file, bad corpus line), 2 on
 * a usage error.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "text/analyzer.h"
#include "text/bm25.h"
#include "text/index.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/json.h"

#define PASSES 3
#define MAX_THREADS 256

static const char bench_text_usage[] =
    "usage: tierdb bench text --corpus C.ndjson --field F --queries Q.txt\n"
    "                         [--k 10] [--threads 1] [--results OUT]\n"
    "\n"
    "Indexes field F of every corpus line (JSON objects with \"id\") with the\n"
    "default analyzer into a segment's full-text index, in-process, then runs\n"
    "each query of Q.txt (one per line) as a BM25 top-k query. Prints\n"
    "{\"index_s\", \"documents\"} and {\"queries\", \"qps\"} as JSON lines; with\n"
    "--results, writes each query's {\"query\", \"ids\", \"scores\"} to OUT.\n";

typedef struct bench_doc {
    char *id;
    uint32_t id_len;
    char *text;       /* NULL: the line has no such string field */
    uint32_t text_len;
    uint32_t line;
} bench_doc;

typedef struct bench_ctx {
    const text_analyzer *analyzer;
    const text_segindex *seg;
    const bench_doc *docs;    /* by segment row */
    text_index_stats stats;
    char **queries;
    size_t n_queries;
    uint32_t k;
    uint32_t threads;
    text_hit *hits;           /* n_queries x k */
    uint32_t *n_hits;
    uint64_t scored;          /* rows fully scored, summed over the last pass */
    uint64_t postings;        /* postings of the query terms, same */
    int failed;
    char error[512];
} bench_ctx;

typedef struct bench_worker {
    bench_ctx *ctx;
    uint32_t index;
    uint64_t scored;
    uint64_t postings;
    int rc;
    tdb_error err;
} bench_worker;

static int fail(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "tierdb bench text: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return CLI_EXIT_FAILURE;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf b = BUF_INIT;
    char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) buf_append(&b, chunk, n);
    bool bad = ferror(f) || buf_failed(&b);
    fclose(f);
    if (bad) {
        buf_free(&b);
        return NULL;
    }
    *len = b.len;
    char *data = buf_steal(&b);
    if (!data) data = calloc(1, 1);
    return data;
}

static int cmp_docs_by_id(const void *a, const void *b) {
    const bench_doc *x = a, *y = b;
    uint32_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
    int c = memcmp(x->id, y->id, n);
    if (c) return c;
    if (x->id_len != y->id_len) return x->id_len < y->id_len ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line; /* later line wins below */
}

static char *dup_bytes(const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = 0;
    }
    return p;
}

/* One query: analyze, look up df, search. */
static int run_query(bench_worker *w, text_tokens *tok, text_query_term *terms, size_t qi) {
    bench_ctx *c = w->ctx;
    const char *q = c->queries[qi];
    int rc = text_analyze(c->analyzer, q, strlen(q), tok, &w->err);
    if (!rc) rc = text_tokens_dedup(tok, &w->err);
    if (rc) return rc;
    uint32_t n = (uint32_t)(tok->count < TEXT_MAX_QUERY_TERMS ? tok->count : TEXT_MAX_QUERY_TERMS);
    for (uint32_t i = 0; i < n; i++) {
        terms[i].field = 0;
        terms[i].bytes = tok->bytes + tok->tok[i].off;
        terms[i].len = tok->tok[i].len;
        terms[i].df = text_segindex_df(c->seg, terms[i].bytes, terms[i].len);
    }
    text_field_source field = {NULL, c->seg, 1.0, c->stats.doc_count,
                               c->stats.doc_count ? (double)c->stats.total_length /
                                                        (double)c->stats.doc_count
                                                  : 1.0};
    text_search_opts opts = {c->k, 0.0, NULL, 0, NULL, NULL};
    text_search_stats st;
    rc = text_search(&field, 1, terms, n, &opts, c->hits + qi * c->k, &c->n_hits[qi], &st, &w->err);
    w->scored += st.scored;
    w->postings += st.postings;
    return rc;
}

static void *worker_main(void *arg) {
    bench_worker *w = arg;
    text_tokens tok;
    text_tokens_init(&tok);
    text_query_term *terms = malloc(TEXT_MAX_QUERY_TERMS * sizeof(*terms));
    if (!terms) {
        w->rc = TDB_ENOMEM;
        snprintf(w->err.message, sizeof(w->err.message), "out of memory");
        return NULL;
    }
    for (size_t qi = w->index; qi < w->ctx->n_queries && !w->rc; qi += w->ctx->threads)
        w->rc = run_query(w, &tok, terms, qi);
    free(terms);
    text_tokens_free(&tok);
    return NULL;
}

/* One pass over every query; returns seconds, or < 0 on failure. */
static double run_pass(bench_ctx *c) {
    bench_worker workers[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    uint64_t t0 = clock_mono_ns();
    for (uint32_t i = 0; i < c->threads; i++) {
        memset(&workers[i], 0, sizeof(workers[i]));
        workers[i].ctx = c;
        workers[i].index = i;
    }
    if (c->threads == 1) {
        worker_main(&workers[0]);
    } else {
        for (uint32_t i = 0; i < c->threads; i++)
            if (pthread_create(&tids[i], NULL, worker_main, &workers[i]) != 0) {
                for (uint32_t j = 0; j < i; j++) pthread_join(tids[j], NULL);
                snprintf(c->error, sizeof(c->error), "cannot start a thread");
                return -1;
            }
        for (uint32_t i = 0; i < c->threads; i++) pthread_join(tids[i], NULL);
    }
    double s = (double)(clock_mono_ns() - t0) / 1e9;
    c->scored = 0;
    c->postings = 0;
    for (uint32_t i = 0; i < c->threads; i++) {
        c->scored += workers[i].scored;
        c->postings += workers[i].postings;
        if (workers[i].rc) {
            snprintf(c->error, sizeof(c->error), "%s", workers[i].err.message);
            return -1;
        }
    }
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bool parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi || s[0] == '-') return false;
    *out = (uint32_t)v;
    return true;
}

int cli_bench_text(int argc, char **argv) {
    const char *corpus = NULL, *field = NULL, *queries_path = NULL, *results = NULL;
    uint32_t k = 10, threads = 1;
    int i = 0;
    /* Skip the command words when the caller passes them along. */
    while (i < argc && (strcmp(argv[i], "bench") == 0 || strcmp(argv[i], "text") == 0)) i++;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(bench_text_usage, stdout);
            return CLI_EXIT_OK;
        }
        const char *v = NULL;
        const char *eq = strchr(a, '=');
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        static const char *const flags[] = {"--corpus", "--field", "--queries", "--k", "--threads",
                                            "--results"};
        int which = -1;
        for (int f = 0; f < 6; f++)
            if (strlen(flags[f]) == name_len && strncmp(a, flags[f], name_len) == 0) which = f;
        if (which < 0) {
            fprintf(stderr, "tierdb bench text: unknown option '%s'\n\n%s", a, bench_text_usage);
            return CLI_EXIT_USAGE;
        }
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else {
            fprintf(stderr, "tierdb bench text: %s needs a value\n\n%s", a, bench_text_usage);
            return CLI_EXIT_USAGE;
        }
        switch (which) {
        case 0: corpus = v; break;
        case 1: field = v; break;
        case 2: queries_path = v; break;
        case 3:
            if (!parse_u32(v, 1, TEXT_MAX_K, &k)) {
                fprintf(stderr, "tierdb bench text: --k must be 1..%u, got '%s'\n", TEXT_MAX_K, v);
                return CLI_EXIT_USAGE;
            }
            break;
        case 4:
            if (!parse_u32(v, 1, MAX_THREADS, &threads)) {
                fprintf(stderr, "tierdb bench text: --threads must be 1..%u, got '%s'\n",
                        MAX_THREADS, v);
                return CLI_EXIT_USAGE;
            }
            break;
        default: results = v; break;
        }
    }
    if (!corpus || !field || !queries_path) {
        fprintf(stderr, "tierdb bench text: --corpus, --field and --queries are required\n\n%s",
                bench_text_usage);
        return CLI_EXIT_USAGE;
    }

    int rc = CLI_EXIT_FAILURE;
    char *corpus_text = NULL, *query_text = NULL;
    bench_doc *docs = NULL;
    size_t n_docs = 0, cap_docs = 0;
    text_analyzer *analyzer = NULL;
    text_memindex *mem = NULL;
    text_segindex *seg = NULL;
    uint32_t *row_map = NULL;
    buf blob = BUF_INIT;
    bench_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    text_tokens tok;
    text_tokens_init(&tok);
    tdb_error err;

    /* 1. read and parse (untimed) */
    size_t corpus_len, query_len;
    corpus_text = slurp(corpus, &corpus_len);
    if (!corpus_text) {
        rc = fail("cannot read corpus %s: %s", corpus, strerror(errno));
        goto done;
    }
    size_t line_no = 0;
    for (char *p = corpus_text, *end = corpus_text + corpus_len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line_no++;
        size_t ll = (size_t)(le - p);
        if (ll && p[ll - 1] == '\r') ll--;
        bool blank = true;
        for (size_t j = 0; j < ll && blank; j++) blank = p[j] == ' ' || p[j] == '\t';
        if (!blank) {
            json_doc *jd = NULL;
            json_error je;
            if (json_parse(p, ll, &jd, &je) != 0) {
                char where[64];
                snprintf(where, sizeof(where), "%zu", line_no);
                fprintf(stderr, "tierdb bench text: %s line %s: %s\n", corpus, where, je.message);
                goto done;
            }
            const json_value *root = json_root(jd);
            const json_value *id = json_get(root, "id");
            const json_value *fv = json_get(root, field);
            if (!id || (id->type != JSON_STRING && id->type != JSON_NUMBER)) {
                json_doc_free(jd);
                char where[64];
                snprintf(where, sizeof(where), "%zu", line_no);
                rc = fail("%s line %s has no \"id\" string", corpus, where);
                goto done;
            }
            if (n_docs == cap_docs) {
                cap_docs = cap_docs ? cap_docs * 2 : 4096;
                bench_doc *nd = realloc(docs, cap_docs * sizeof(*nd));
                if (!nd) {
                    json_doc_free(jd);
                    rc = fail("out of memory%s%s", "", "");
                    goto done;
                }
                docs = nd;
            }
            bench_doc *d = &docs[n_docs++];
            memset(d, 0, sizeof(*d));
            d->line = (uint32_t)line_no;
            d->id_len = id->len;
            d->id = dup_bytes(id->str, id->len);
            bool has_text = fv && fv->type == JSON_STRING;
            if (has_text) {
                d->text_len = fv->len;
                d->text = dup_bytes(fv->str, fv->len);
            }
            json_doc_free(jd);
            if (!d->id || (has_text && !d->text)) {
                rc = fail("out of memory%s%s", "", "");
                goto done;
            }
        }
        p = le + 1;
    }
    query_text = slurp(queries_path, &query_len);
    if (!query_text) {
        rc = fail("cannot read queries %s: %s", queries_path, strerror(errno));
        goto done;
    }
    for (char *p = query_text, *end = query_text + query_len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        *le = 0;
        bool blank = true;
        for (char *c = p; *c && blank; c++) blank = *c == ' ' || *c == '\t' || *c == '\r';
        if (!blank) {
            if (ctx.n_queries % 1024 == 0) {
                char **nq = realloc(ctx.queries, (ctx.n_queries + 1024) * sizeof(*nq));
                if (!nq) {
                    rc = fail("out of memory%s%s", "", "");
                    goto done;
                }
                ctx.queries = nq;
            }
            ctx.queries[ctx.n_queries++] = p;
        }
        p = le + 1;
    }

    text_analyzer_config cfg;
    text_analyzer_config_default(&cfg);
    if (text_analyzer_new(&cfg, &analyzer, &err) || text_memindex_new(&mem, &err)) {
        rc = fail("%s%s", err.message, "");
        goto done;
    }

    /* 2. index (timed): memtable rows in corpus order, segment rows in id
     * order; a later line with the same id replaces the earlier one. */
    uint64_t t0 = clock_mono_ns();
    for (size_t d = 0; d < n_docs; d++) {
        if (!docs[d].text) continue;
        if (text_analyze(analyzer, docs[d].text, docs[d].text_len, &tok, &err) ||
            text_memindex_add(mem, (uint32_t)d, &tok, &err)) {
            char where[64];
            snprintf(where, sizeof(where), "%u", docs[d].line);
            fprintf(stderr, "tierdb bench text: %s line %s: %s\n", corpus, where, err.message);
            goto done;
        }
    }
    /* The flush: sort by id, build the row map (memtable row -> segment row). */
    bench_doc *sorted = malloc((n_docs ? n_docs : 1) * sizeof(*sorted));
    row_map = malloc((n_docs ? n_docs : 1) * sizeof(*row_map));
    if (!sorted || !row_map) {
        free(sorted);
        rc = fail("out of memory%s%s", "", "");
        goto done;
    }
    memcpy(sorted, docs, n_docs * sizeof(*sorted));
    qsort(sorted, n_docs, sizeof(*sorted), cmp_docs_by_id);
    uint32_t seg_rows = 0;
    for (size_t d = 0; d < n_docs; d++) {
        bool superseded = d + 1 < n_docs && sorted[d + 1].id_len == sorted[d].id_len &&
                          memcmp(sorted[d + 1].id, sorted[d].id, sorted[d].id_len) == 0;
        if (!superseded) sorted[seg_rows++] = sorted[d];
    }
    /* docs[] index = memtable row; find each doc's segment row. */
    for (size_t d = 0; d < n_docs; d++) row_map[d] = TEXT_ROW_NONE;
    {
        /* line numbers are unique and increasing in docs[]: binary search */
        for (uint32_t r = 0; r < seg_rows; r++) {
            size_t lo = 0, hi = n_docs;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (docs[mid].line < sorted[r].line) lo = mid + 1;
                else hi = mid;
            }
            row_map[lo] = r;
        }
    }
    if (text_memindex_serialize(mem, row_map, n_docs, seg_rows, &blob, &err) ||
        text_segindex_open(blob.data, blob.len, "bench", &seg, &err)) {
        free(sorted);
        rc = fail("%s%s", err.message, "");
        goto done;
    }
    double index_s = (double)(clock_mono_ns() - t0) / 1e9;
    text_memindex_free(mem);
    mem = NULL;
    text_segindex_stats(seg, &ctx.stats);
    printf("{\"index_s\": %.3f, \"documents\": %u}\n", index_s, seg_rows);
    fflush(stdout);

    /* 3. queries */
    ctx.analyzer = analyzer;
    ctx.seg = seg;
    ctx.docs = sorted;
    ctx.k = k;
    ctx.threads = threads;
    ctx.hits = malloc((ctx.n_queries ? ctx.n_queries : 1) * k * sizeof(*ctx.hits));
    ctx.n_hits = calloc(ctx.n_queries ? ctx.n_queries : 1, sizeof(*ctx.n_hits));
    if (!ctx.hits || !ctx.n_hits) {
        free(sorted);
        rc = fail("out of memory%s%s", "", "");
        goto done;
    }
    double times[PASSES];
    for (int pass = -1; pass < PASSES; pass++) {
        double s = run_pass(&ctx);
        if (s < 0) {
            free(sorted);
            rc = fail("query failed: %s%s", ctx.error, "");
            goto done;
        }
        if (pass >= 0) times[pass] = s;
    }
    double sorted_times[PASSES];
    memcpy(sorted_times, times, sizeof(times));
    qsort(sorted_times, PASSES, sizeof(double), cmp_double);
    double median = sorted_times[PASSES / 2];
    printf("{\"queries\": %zu, \"qps\": %.1f}\n", ctx.n_queries,
           median > 0 ? (double)ctx.n_queries / median : 0.0);
    fflush(stdout);
    fprintf(stderr,
            "{\"blob_bytes\": %zu, \"terms\": %llu, \"postings\": %llu, \"k\": %u, "
            "\"threads\": %u, \"pass_s\": [%.4f, %.4f, %.4f], \"scored_per_query\": %.1f, "
            "\"postings_per_query\": %.1f}\n",
            blob.len, (unsigned long long)ctx.stats.term_count,
            (unsigned long long)ctx.stats.posting_count, k, threads, times[0], times[1], times[2],
            ctx.n_queries ? (double)ctx.scored / (double)ctx.n_queries : 0.0,
            ctx.n_queries ? (double)ctx.postings / (double)ctx.n_queries : 0.0);

    if (results) {
        buf out = BUF_INIT;
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", results);
        FILE *f = fopen(tmp, "wb");
        if (!f) {
            free(sorted);
            rc = fail("cannot write %s: %s", tmp, strerror(errno));
            goto done;
        }
        bool bad = false;
        for (size_t q = 0; q < ctx.n_queries && !bad; q++) {
            buf_reset(&out);
            buf_puts(&out, "{\"query\": ");
            json_write_string(&out, ctx.queries[q], strlen(ctx.queries[q]));
            buf_puts(&out, ", \"ids\": [");
            const text_hit *h = ctx.hits + q * k;
            for (uint32_t j = 0; j < ctx.n_hits[q]; j++) {
                if (j) buf_puts(&out, ", ");
                json_write_string(&out, sorted[h[j].row].id, sorted[h[j].row].id_len);
            }
            buf_puts(&out, "], \"scores\": [");
            for (uint32_t j = 0; j < ctx.n_hits[q]; j++) {
                if (j) buf_puts(&out, ", ");
                json_write_double(&out, h[j].score);
            }
            buf_puts(&out, "]}\n");
            bad = buf_failed(&out) || fwrite(out.data, 1, out.len, f) != out.len;
        }
        buf_free(&out);
        if (fclose(f) != 0) bad = true;
        if (bad || rename(tmp, results) != 0) {
            free(sorted);
            remove(tmp);
            rc = fail("cannot write %s: %s", results, strerror(errno));
            goto done;
        }
    }
    free(sorted);
    rc = CLI_EXIT_OK;
done:
    text_tokens_free(&tok);
    text_segindex_free(seg);
    text_memindex_free(mem);
    text_analyzer_free(analyzer);
    buf_free(&blob);
    for (size_t d = 0; d < n_docs; d++) {
        free(docs[d].id);
        free(docs[d].text);
    }
    free(docs);
    free(row_map);
    free(ctx.queries);
    free(ctx.hits);
    free(ctx.n_hits);
    free(corpus_text);
    free(query_text);
    return rc;
}
