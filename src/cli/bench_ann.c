/*
 * bench_ann.c: `tierdb bench ann`, the built-in approximate-search
 * benchmark (API.md "Built-in benchmarks").
 * Layer: cli. Runs in-process through the vec layer (no HTTP): builds the
 * graph (and codes) as a segment flush would, with every core, opens views
 * on the blobs as a segment open would, then measures recall@k and
 * queries per second for each ef.
 *
 *   tierdb bench ann --base B.fvecs --queries Q.fvecs --truth T.ivecs
 *       --metric l2|cosine|dot [--m 16] [--ef-construction 200]
 *       [--quantization none|sq8|rabitq] [--ef 10,16,32,64,128,256]
 *       [--k 10] [--threads 1] [--filter-selectivity p]
 *
 * Output, one JSON object per line on stdout:
 *   {"build_s": .., "index_bytes": .., "vector_bytes": ..}
 *   {"ef": 64, "recall": 0.97, "qps": 5123.4}          (one per ef)
 * index_bytes: the graph blob plus the code blob (what the index adds to
 * the segment); vector_bytes: the float vectors (rows x dim x 4).
 * recall: mean over queries of |returned ∩ truth| / |truth|, truth being
 * T's first k ids, or with --filter-selectivity p the exact top-k among
 * the rows that carry the filter's attribute value (each row does with
 * probability p, fixed seed), computed here by exact search.
 * qps: queries / wall time of one pass over all queries with --threads
 * threads (each its own scratch), median of 3 passes after a warm-up of
 * 500 queries, as the hnswlib baseline script measures.
 * Files are TEXMEX fvecs/ivecs (little-endian int32 dimension before each
 * row). Calling convention: argv[0] is the command word ("ann"), options
 * follow. Returns the exit status: 0, 1 on a failure (message on stderr),
 * 2 on bad arguments.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/clock.h"
#include "vec/hnsw.h"
#include "vec/plan.h"
#include "vec/rabitq.h"
#include "vec/sq8.h"

int cli_bench_ann(int argc, char **argv);

#define BENCH_PASSES 3
#define BENCH_WARMUP_QUERIES 500
#define BENCH_MAX_EFS 64
#define BENCH_FILTER_SEED 0x5eed5eedull
#define BENCH_ROTATION_SEED 0x0dd5eedull

typedef struct vecs {
    uint32_t n, dim;
    void *data; /* n x dim 4-byte values */
} vecs;

static int read_vecs(const char *path, vecs *out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench ann: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    int32_t d = 0;
    if (fseek(f, 0, SEEK_END) != 0) goto done;
    long size = ftell(f);
    rewind(f);
    if (size < 4 || fread(&d, 4, 1, f) != 1 || d <= 0 || d > (int32_t)VEC_MAX_DIM * 16) {
        fprintf(stderr, "bench ann: %s is not an fvecs/ivecs file\n", path);
        goto done;
    }
    size_t row_bytes = 4 * ((size_t)d + 1);
    if ((size_t)size % row_bytes != 0) {
        fprintf(stderr, "bench ann: %s: size %ld is not a multiple of the %zu-byte row\n", path, size, row_bytes);
        goto done;
    }
    size_t n = (size_t)size / row_bytes;
    if (n > HNSW_MAX_ROWS) {
        fprintf(stderr, "bench ann: %s has too many rows\n", path);
        goto done;
    }
    rewind(f);
    /* 64-byte aligned, as a segment's vectors section is. */
    void *data = NULL;
    if (posix_memalign(&data, 64, n * (size_t)d * 4 + 64) != 0) goto done;
    for (size_t r = 0; r < n; r++) {
        int32_t rd;
        if (fread(&rd, 4, 1, f) != 1 || rd != d ||
            fread((char *)data + r * (size_t)d * 4, 4, (size_t)d, f) != (size_t)d) {
            fprintf(stderr, "bench ann: %s: bad row %zu\n", path, r);
            free(data);
            goto done;
        }
    }
    out->n = (uint32_t)n;
    out->dim = (uint32_t)d;
    out->data = data;
    rc = 0;
done:
    fclose(f);
    return rc;
}

typedef struct bench {
    const hnsw_view *view;
    const float *queries;
    uint32_t nq, dim, k, ef;
    double selectivity;
    const vec_filter *filter;
    uint32_t *result_rows; /* nq x k */
    uint32_t *result_n;    /* nq */
    int rc;
} bench;

typedef struct worker {
    bench *b;
    uint32_t from, to;
    hnsw_scratch *scratch;
    vec_hit *hits;
    int rc;
} worker;

static void *run_queries(void *arg) {
    worker *w = arg;
    bench *b = w->b;
    for (uint32_t i = w->from; i < w->to && w->rc == 0; i++) {
        hnsw_query q = {.vector = b->queries + (size_t)i * b->dim, .k = b->k, .ef = b->ef, .filter = b->filter};
        uint32_t n;
        tdb_error err;
        w->rc = vec_ann_search(b->view, &q, b->selectivity, w->scratch, w->hits, &n, NULL, &err);
        if (w->rc) {
            fprintf(stderr, "bench ann: search failed: %s\n", err.message);
            break;
        }
        for (uint32_t j = 0; j < n; j++) b->result_rows[(size_t)i * b->k + j] = w->hits[j].row;
        b->result_n[i] = n;
    }
    return NULL;
}

/* One pass over queries [0, nq) split across the workers; seconds. */
static double run_pass(bench *b, worker *w, uint32_t threads, uint32_t nq) {
    pthread_t tid[HNSW_THREADS_MAX];
    uint64_t t0 = clock_mono_ns();
    for (uint32_t t = 0; t < threads; t++) {
        w[t].b = b;
        w[t].from = (uint32_t)((uint64_t)nq * t / threads);
        w[t].to = (uint32_t)((uint64_t)nq * (t + 1) / threads);
        w[t].rc = 0;
    }
    uint32_t started = 0;
    for (uint32_t t = 1; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, run_queries, &w[t]) != 0) {
            w[t].rc = -1;
            break;
        }
        started++;
    }
    run_queries(&w[0]);
    for (uint32_t t = 1; t <= started; t++) pthread_join(tid[t], NULL);
    double s = (double)(clock_mono_ns() - t0) / 1e9;
    b->rc = 0;
    for (uint32_t t = 0; t < threads; t++)
        if (w[t].rc) b->rc = w[t].rc;
    if (started + 1 < threads) b->rc = -1;
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int usage(void) {
    fprintf(stderr,
            "usage: tierdb bench ann --base B.fvecs --queries Q.fvecs --truth T.ivecs --metric l2|cosine|dot\n"
            "         [--m 16] [--ef-construction 200] [--quantization none|sq8|rabitq]\n"
            "         [--ef 10,16,32,64,128,256] [--k 10] [--threads 1] [--filter-selectivity p]\n");
    return 2;
}

static bool parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = (uint32_t)v;
    return true;
}

typedef struct truth_ctx {
    const float *base, *queries, *norms;
    uint32_t rows, dim, k, nq;
    tdb_metric metric;
    const vec_filter *filter;
    uint32_t *rows_out; /* nq x k */
    uint32_t *n_out;
    uint32_t from, to;
} truth_ctx;

static void *exact_truth(void *arg) {
    truth_ctx *t = arg;
    vec_hit *hits = malloc(t->k * sizeof *hits);
    if (!hits) return NULL;
    for (uint32_t i = t->from; i < t->to; i++) {
        uint32_t n = 0;
        vec_search_exact(t->metric, t->queries + (size_t)i * t->dim, t->base, t->norms, t->rows, t->dim,
                         t->filter, t->k, hits, &n, NULL);
        for (uint32_t j = 0; j < n; j++) t->rows_out[(size_t)i * t->k + j] = hits[j].row;
        t->n_out[i] = n;
    }
    free(hits);
    return NULL;
}

int cli_bench_ann(int argc, char **argv) {
    const char *base_path = NULL, *query_path = NULL, *truth_path = NULL, *metric_name = NULL;
    const char *quant = "none", *ef_list = "10,16,32,64,128,256";
    hnsw_params p;
    hnsw_params_default(&p);
    uint32_t k = 10, threads = 1;
    double selectivity = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--base")) base_path = v;
        else if (!strcmp(a, "--queries")) query_path = v;
        else if (!strcmp(a, "--truth")) truth_path = v;
        else if (!strcmp(a, "--metric")) metric_name = v;
        else if (!strcmp(a, "--quantization")) quant = v;
        else if (!strcmp(a, "--ef")) ef_list = v;
        else if (!strcmp(a, "--m")) {
            if (!parse_u32(v, HNSW_M_MIN, HNSW_M_MAX, &p.m)) return usage();
        } else if (!strcmp(a, "--ef-construction")) {
            if (!parse_u32(v, HNSW_EF_CONSTRUCTION_MIN, HNSW_EF_CONSTRUCTION_MAX, &p.ef_construction)) return usage();
        } else if (!strcmp(a, "--k")) {
            if (!parse_u32(v, 1, HNSW_EF_MAX, &k)) return usage();
        } else if (!strcmp(a, "--threads")) {
            if (!parse_u32(v, 1, HNSW_THREADS_MAX, &threads)) return usage();
        } else if (!strcmp(a, "--filter-selectivity")) {
            char *end;
            selectivity = strtod(v, &end);
            if (end == v || *end || !(selectivity > 0 && selectivity <= 1)) return usage();
        } else {
            fprintf(stderr, "bench ann: unknown option %s\n", a);
            return usage();
        }
    }
    if (!base_path || !query_path || !truth_path || !metric_name) return usage();
    tdb_metric metric;
    if (!strcmp(metric_name, "l2")) metric = TDB_METRIC_L2;
    else if (!strcmp(metric_name, "cosine")) metric = TDB_METRIC_COSINE;
    else if (!strcmp(metric_name, "dot")) metric = TDB_METRIC_DOT;
    else return usage();
    if (strcmp(quant, "none") && strcmp(quant, "sq8") && strcmp(quant, "rabitq")) return usage();
    uint32_t efs[BENCH_MAX_EFS], n_efs = 0;
    {
        char *list = strdup(ef_list), *save = NULL;
        if (!list) return 1;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (n_efs == BENCH_MAX_EFS || !parse_u32(tok, HNSW_EF_MIN, HNSW_EF_MAX, &efs[n_efs])) {
                free(list);
                return usage();
            }
            n_efs++;
        }
        free(list);
        if (n_efs == 0) return usage();
    }

    int rc = 1;
    vecs base = {0}, queries = {0}, truth = {0};
    void *graph = NULL, *codes = NULL;
    size_t graph_len = 0, codes_len = 0;
    hnsw_view *view = NULL;
    sq8_view *sq8 = NULL;
    rabitq_view *rq = NULL;
    float *norms = NULL;
    uint64_t *bits = NULL;
    uint32_t *truth_rows = NULL, *truth_n = NULL, *res_rows = NULL, *res_n = NULL;
    worker *w = NULL;
    tdb_error err = {0};

    if (read_vecs(base_path, &base) || read_vecs(query_path, &queries) || read_vecs(truth_path, &truth)) goto done;
    if (queries.dim != base.dim) {
        fprintf(stderr, "bench ann: queries have dimension %u, base %u\n", queries.dim, base.dim);
        goto done;
    }
    if (base.dim > VEC_MAX_DIM) {
        fprintf(stderr, "bench ann: dimension %u is above %u\n", base.dim, VEC_MAX_DIM);
        goto done;
    }
    if (selectivity < 0 && (truth.n < queries.n || truth.dim < k)) {
        fprintf(stderr, "bench ann: truth has %u rows of %u ids, need %u of >= %u\n", truth.n, truth.dim, queries.n, k);
        goto done;
    }
    const float *bv = base.data, *qv = queries.data;
    uint32_t rows = base.n, dim = base.dim, nq = queries.n;

    /* Build as a flush does: graph with every core, codes, views. */
    uint64_t t0 = clock_mono_ns();
    p.threads = 0;
    if (hnsw_build(bv, rows, dim, metric, &p, &graph, &graph_len, &err)) goto fail;
    if (!strcmp(quant, "sq8") && sq8_encode(bv, rows, dim, metric, &codes, &codes_len, &err)) goto fail;
    if (!strcmp(quant, "rabitq") &&
        rabitq_encode(bv, rows, dim, metric, BENCH_ROTATION_SEED, &codes, &codes_len, &err))
        goto fail;
    if (metric == TDB_METRIC_COSINE) { /* the segment stores norms beside the vectors */
        norms = malloc((size_t)rows * sizeof *norms);
        if (!norms) goto done;
        for (uint32_t r = 0; r < rows; r++) norms[r] = vec_norm(bv + (size_t)r * dim, dim);
    }
    if (hnsw_view_open(graph, graph_len, rows, dim, metric, bv, norms, &view, &err)) goto fail;
    if (codes && !strcmp(quant, "sq8")) {
        if (sq8_view_open(codes, codes_len, rows, dim, metric, &sq8, &err)) goto fail;
        hnsw_view_use_sq8(view, sq8);
    } else if (codes) {
        if (rabitq_view_open(codes, codes_len, rows, dim, metric, &rq, &err)) goto fail;
        hnsw_view_use_rabitq(view, rq);
    }
    double build_s = (double)(clock_mono_ns() - t0) / 1e9;
    printf("{\"build_s\": %.3f, \"index_bytes\": %zu, \"vector_bytes\": %zu}\n", build_s,
           graph_len + codes_len, (size_t)rows * dim * sizeof(float));
    fflush(stdout);

    /* Ground truth: T's first k ids, or exact filtered answers. */
    truth_rows = malloc((size_t)nq * k * sizeof *truth_rows);
    truth_n = malloc((size_t)nq * sizeof *truth_n);
    res_rows = malloc((size_t)nq * k * sizeof *res_rows);
    res_n = malloc((size_t)nq * sizeof *res_n);
    w = calloc(threads, sizeof *w);
    if (!truth_rows || !truth_n || !res_rows || !res_n || !w) goto done;
    vec_filter filter = {0};
    if (selectivity > 0) {
        bits = calloc(((size_t)rows + 63) / 64, sizeof *bits);
        if (!bits) goto done;
        uint64_t state = BENCH_FILTER_SEED;
        uint64_t cut = selectivity >= 1 ? UINT64_MAX : (uint64_t)(selectivity * 18446744073709551616.0);
        for (uint32_t r = 0; r < rows; r++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t x = state ^ (state >> 29);
            x *= 0xbf58476d1ce4e5b9ull;
            x ^= x >> 32;
            if (x < cut || selectivity >= 1) bits[r >> 6] |= 1ull << (r & 63);
        }
        filter.bitset = bits;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        uint32_t tt = cores < 1 ? 1 : cores > 64 ? 64 : (uint32_t)cores;
        truth_ctx tc[64];
        pthread_t tid[64];
        for (uint32_t t = 0; t < tt; t++) {
            tc[t] = (truth_ctx){bv, qv, norms, rows, dim, k, nq, metric, &filter, truth_rows, truth_n,
                                (uint32_t)((uint64_t)nq * t / tt), (uint32_t)((uint64_t)nq * (t + 1) / tt)};
            if (t && pthread_create(&tid[t], NULL, exact_truth, &tc[t]) != 0) goto done;
        }
        exact_truth(&tc[0]);
        for (uint32_t t = 1; t < tt; t++) pthread_join(tid[t], NULL);
    } else {
        const int32_t *tv = truth.data;
        for (uint32_t i = 0; i < nq; i++) {
            for (uint32_t j = 0; j < k; j++) truth_rows[(size_t)i * k + j] = (uint32_t)tv[(size_t)i * truth.dim + j];
            truth_n[i] = k < rows ? k : rows;
        }
    }

    for (uint32_t t = 0; t < threads; t++) {
        w[t].scratch = hnsw_scratch_new();
        w[t].hits = malloc(k * sizeof *w[t].hits);
        if (!w[t].scratch || !w[t].hits) goto done;
    }
    for (uint32_t e = 0; e < n_efs; e++) {
        bench b = {view, qv, nq, dim, k, efs[e], selectivity, selectivity > 0 ? &filter : NULL,
                   res_rows, res_n, 0};
        run_pass(&b, w, threads, nq < BENCH_WARMUP_QUERIES ? nq : BENCH_WARMUP_QUERIES);
        double times[BENCH_PASSES];
        for (int pass = 0; pass < BENCH_PASSES; pass++) {
            times[pass] = run_pass(&b, w, threads, nq);
            if (b.rc) goto done;
        }
        qsort(times, BENCH_PASSES, sizeof times[0], cmp_double);
        double hit = 0;
        for (uint32_t i = 0; i < nq; i++) {
            uint32_t want = truth_n[i];
            if (want == 0) {
                hit += 1; /* nothing to find, nothing returned */
                continue;
            }
            uint32_t found = 0;
            for (uint32_t j = 0; j < res_n[i]; j++)
                for (uint32_t t = 0; t < want; t++)
                    if (res_rows[(size_t)i * k + j] == truth_rows[(size_t)i * k + t]) {
                        found++;
                        break;
                    }
            hit += (double)found / want;
        }
        printf("{\"ef\": %u, \"recall\": %.5f, \"qps\": %.1f}\n", efs[e], hit / nq,
               nq / times[BENCH_PASSES / 2]);
        fflush(stdout);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench ann: %s\n", err.message);
done:
    if (w)
        for (uint32_t t = 0; t < threads; t++) {
            hnsw_scratch_free(w[t].scratch);
            free(w[t].hits);
        }
    free(w);
    free(truth_rows);
    free(truth_n);
    free(res_rows);
    free(res_n);
    free(bits);
    hnsw_view_close(view);
    sq8_view_close(sq8);
    rabitq_view_close(rq);
    free(norms);
    free(graph);
    free(codes);
    free(base.data);
    free(queries.data);
    free(truth.data);
    return rc;
}
