/*
 * test_s3.c: the object store on s3:// (objstore.c + s3.c) against real
 * peers this test starts itself on free loopback ports:
 *   s3rver (npm, installed by scripts/test-peers.sh into $TDB_NODE_PEERS,
 *   default <repo>/build-peers), behind tests/objstore/s3proxy.py, which
 *   checks the SigV4 signature of every request with botocore (s3rver does
 *   not) and injects faults on command.
 * Covers every operation, multipart uploads, pagination over more than
 * 1,000 objects, virtual-host addressing, credentials from the
 * environment, the causes the start-up check must name (wrong secret,
 * unknown key, missing bucket, unreachable endpoint), retries through
 * injected 5xx/429, dropped, truncated and slow replies, failures that
 * outlast the retries (no object left visible), corrupted downloads, and
 * the counters behind /metrics (requests, retries by reason, failures).
 * Missing node, s3rver or botocore is a FAILURE with a message saying what
 * to install: CI installs them, and a silent skip would hide a hole.
 * Both peers die with this process (PR_SET_PDEATHSIG, and the proxy also
 * watches its stdin), and teardown stops them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "objstore/objstore.h"
#include "util/clock.h"
#include "util/crc32c.h"
#include "util/fileio.h"

#define BUCKET "tdb-test"
/* How long a peer may take to print its "listening" line (node starts in
 * about a second here; CI machines are slower and shared). */
#define PEER_START_TIMEOUT_MS 30000
#define MIB ((size_t)1 << 20)

typedef struct peer {
    pid_t pid;
    int stdin_fd; /* kept open: the proxy exits when it closes */
    int stdout_fd;
} peer;

static char g_repo[PATH_MAX];
static char g_dir[PATH_MAX];
static peer g_s3rver = {-1, -1, -1}, g_proxy = {-1, -1, -1};
static int g_proxy_port;
static char g_endpoint[64];
static char g_vhost_endpoint[64];

/* ---- peers ---------------------------------------------------------------- */

static void stop_peer(peer *p) {
    if (p->pid <= 0) return;
    if (p->stdin_fd >= 0) close(p->stdin_fd);
    kill(p->pid, SIGTERM);
    int status;
    uint64_t deadline = clock_mono_ns() + 5000000000ull;
    while (waitpid(p->pid, &status, WNOHANG) == 0) {
        if (clock_mono_ns() > deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            break;
        }
        usleep(10000);
    }
    if (p->stdout_fd >= 0) close(p->stdout_fd);
    *p = (peer){-1, -1, -1};
}

/* Starts argv, waits for a stdout line containing `want` and returns the
 * number at its end (the port), or -1 with a message on stderr. */
static int start_peer(char *const argv[], const char *want, peer *p) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no stray peer if the test dies */
        if (getppid() != parent) _exit(1);
        dup2(in[0], 0);
        dup2(out[1], 1);
        execvp(argv[0], argv);
        fprintf(stderr, "test_s3: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *p = (peer){pid, in[1], out[0]};
    char line[512];
    size_t len = 0;
    uint64_t deadline = clock_mono_ns() + (uint64_t)PEER_START_TIMEOUT_MS * 1000000u;
    while (clock_mono_ns() < deadline) {
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0) continue;
        ssize_t n = read(out[0], line + len, sizeof line - 1 - len);
        if (n <= 0) break; /* it exited */
        len += (size_t)n;
        line[len] = '\0';
        char *hit = strstr(line, want);
        char *eol = hit ? strchr(hit, '\n') : NULL;
        if (eol) {
            while (eol > hit && (eol[-1] < '0' || eol[-1] > '9')) eol--;
            char *num = eol;
            while (num > hit && num[-1] >= '0' && num[-1] <= '9') num--;
            return atoi(num);
        }
        if (len == sizeof line - 1) len = 0; /* unrelated chatter: drop it */
    }
    fprintf(stderr, "test_s3: %s did not report '%s' (see its messages above)\n", argv[0], want);
    stop_peer(p);
    return -1;
}

static bool file_exists(const char *path) { return access(path, F_OK) == 0; }

/* out = g_dir/name (PATH_MAX bytes), failing the test if it does not fit. */
static void scratch_path(char *out, const char *name) {
    size_t a = strlen(g_dir), b = strlen(name);
    assert_true(a + 1 + b < PATH_MAX);
    memcpy(out, g_dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
}

static int start_peers(void) {
    /* The repository: this file is <repo>/tests/objstore/test_s3.c. */
    snprintf(g_repo, sizeof g_repo, "%s", __FILE__);
    char *cut = strstr(g_repo, "/tests/objstore/test_s3.c");
    if (cut == NULL) {
        fprintf(stderr, "test_s3: cannot find the repository from %s\n", __FILE__);
        return -1;
    }
    *cut = '\0';
    const char *base = getenv("TDB_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    if (fio_mkdir_p(base) < 0) return -1;
    snprintf(g_dir, sizeof g_dir, "%.200s/objstore-s3-XXXXXX", base);
    if (mkdtemp(g_dir) == NULL) return -1;

    char peers[PATH_MAX], s3rver[PATH_MAX + 64], data[PATH_MAX + 8], proxy[PATH_MAX + 64];
    const char *env = getenv("TDB_NODE_PEERS");
    snprintf(peers, sizeof peers, "%s", env && env[0] ? env : "");
    if (peers[0] == '\0') snprintf(peers, sizeof peers, "%.3000s/build-peers", g_repo);
    snprintf(s3rver, sizeof s3rver, "%s/node_modules/s3rver/bin/s3rver.js", peers);
    if (!file_exists(s3rver)) {
        fprintf(stderr,
                "test_s3: FAILED: s3rver is not installed (no %s). Run scripts/test-peers.sh "
                "(make test does), with Node.js and npm installed; TDB_NODE_PEERS names another "
                "install directory.\n",
                s3rver);
        return -1;
    }
    snprintf(data, sizeof data, "%s/data", g_dir);
    if (fio_mkdir_p(data) < 0) return -1;
    /* s3rver 3.7.1 encrypts list continuation tokens with DES, which the
     * OpenSSL 3 inside Node >= 17 offers only through its legacy provider:
     * without it, every truncated listing is a 500. */
    char *s3rver_argv[] = {"node", "--openssl-legacy-provider", s3rver, "-d", data,
                           "-a", "127.0.0.1", "-p", "0",
                           "--service-endpoint", "localhost", "--configure-bucket", BUCKET,
                           "--silent", NULL};
    int s3_port = start_peer(s3rver_argv, "listening on", &g_s3rver);
    if (s3_port <= 0) {
        fprintf(stderr, "test_s3: FAILED: s3rver did not start: is Node.js (node) installed?\n");
        return -1;
    }
    snprintf(proxy, sizeof proxy, "%s/tests/objstore/s3proxy.py", g_repo);
    char upstream[16];
    snprintf(upstream, sizeof upstream, "%d", s3_port);
    /* Debian's python3-botocore installs for the system interpreter. */
    const char *python = getenv("TDB_PYTHON");
    if (python == NULL || python[0] == '\0')
        python = file_exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    char *proxy_argv[] = {(char *)python, proxy, "--upstream", upstream, NULL};
    g_proxy_port = start_peer(proxy_argv, "listening on", &g_proxy);
    if (g_proxy_port <= 0) {
        fprintf(stderr, "test_s3: FAILED: the signature-checking proxy did not start (needs "
                        "python3 with botocore: apt-get install python3-botocore)\n");
        stop_peer(&g_s3rver);
        return -1;
    }
    snprintf(g_endpoint, sizeof g_endpoint, "http://127.0.0.1:%d", g_proxy_port);
    /* *.localhost resolves to loopback in libcurl; s3rver, told its service
     * endpoint is "localhost", reads the bucket from the host name. */
    snprintf(g_vhost_endpoint, sizeof g_vhost_endpoint, "http://s3.localhost:%d", g_proxy_port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int setup(void **state) {
    (void)state;
    g_dir[0] = '\0';
    if (start_peers() == 0) return 0;
    if (g_dir[0]) fio_rmtree(g_dir); /* no scratch left behind by a failed start */
    return -1;
}

static int teardown(void **state) {
    (void)state;
    stop_peer(&g_proxy);
    stop_peer(&g_s3rver);
    fio_rmtree(g_dir);
    return 0;
}

/* ---- the proxy's control channel ------------------------------------------- */

typedef struct reply {
    char *data;
    size_t len;
} reply;

static size_t collect(char *p, size_t size, size_t n, void *user) {
    reply *r = user;
    char *d = realloc(r->data, r->len + size * n + 1);
    if (d == NULL) return 0;
    memcpy(d + r->len, p, size * n);
    r->data = d;
    r->len += size * n;
    r->data[r->len] = '\0';
    return size * n;
}

/* GET /__proxy/<what>; returns the body (caller frees). */
static char *ctl(const char *what) {
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/__proxy/%s", g_proxy_port, what);
    CURL *h = curl_easy_init();
    reply r = {NULL, 0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode cc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (cc != CURLE_OK || code != 200)
        fail_msg("proxy control %s failed: %s", what, curl_easy_strerror(cc));
    return r.data;
}

static void ctl_do(const char *what) { free(ctl(what)); }

static long stat_of(const char *stats, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\": ", name);
    const char *p = strstr(stats, key);
    assert_non_null(p);
    return strtol(p + strlen(key), NULL, 10);
}

static int count_in(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* Every request since the last reset reached the proxy signed right. */
static void assert_all_signed(void) {
    char *s = ctl("stats");
    if (stat_of(s, "sig_failures") != 0) fail_msg("requests with bad signatures: %.2000s", s);
    assert_true(stat_of(s, "verified") > 0);
    free(s);
}

/* ---- stores ------------------------------------------------------------------- */

static void test_options(objstore_options *o) {
    objstore_options_default(o);
    o->endpoint = g_endpoint;
    o->path_style = true;
    o->region = "us-east-1";
    o->access_key = "S3RVER";
    o->secret_key = "S3RVER";
    o->max_retries = 4;
    o->retry_base_delay_ms = 2; /* real backoff, in test-sized steps */
    o->retry_max_delay_ms = 20;
    o->connect_timeout_ms = 2000;
    o->stall_timeout_ms = 5000;
    o->multipart_threshold_bytes = 5 * MIB;
    o->part_size_bytes = 5 * MIB;
}

static objstore *open_with(const char *url, const objstore_options *o) {
    objstore *s = NULL;
    tdb_error err;
    int rc = objstore_open(url, o, &s, &err);
    if (rc != 0) fail_msg("objstore_open(%s): %s", url, err.message);
    return s;
}

static objstore *open_prefix(const char *prefix) {
    objstore_options o;
    test_options(&o);
    char url[256];
    snprintf(url, sizeof url, "s3://" BUCKET "/%s", prefix);
    return open_with(url, &o);
}

static void fill(uint8_t *p, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void assert_object_is(objstore *s, const char *key, const void *data, size_t len) {
    void *got = NULL;
    size_t got_len = 0;
    tdb_error err;
    int rc = objstore_get(s, key, &got, &got_len, &err);
    if (rc != 0) fail_msg("get %s: %s", key, err.message);
    assert_int_equal(got_len, len);
    if (len) assert_memory_equal(got, data, len);
    free(got);
}

static void assert_absent(objstore *s, const char *key) {
    objstore_info info;
    tdb_error err;
    assert_int_equal(objstore_head(s, key, &info, &err), TDB_ENOTFOUND);
}

/* ---- every operation ------------------------------------------------------------- */

static void s3_check_passes_on_a_good_store(void **state) {
    (void)state;
    ctl_do("reset");
    objstore *s = open_prefix("check");
    tdb_error err;
    int rc = objstore_check(s, &err);
    if (rc != 0) fail_msg("check: %s", err.message);
    /* The probe object is gone again. */
    objstore_page page;
    assert_int_equal(objstore_list(s, "", NULL, 0, &page, &err), 0);
    assert_int_equal(page.count, 0);
    objstore_page_free(&page);
    objstore_close(s);
    assert_all_signed();
}

static void s3_put_get_head_range_delete_roundtrip(void **state) {
    (void)state;
    ctl_do("reset");
    objstore *s = open_prefix("ops/p1");
    tdb_error err;
    uint8_t data[70000];
    fill(data, sizeof data, 1);
    const char *key = "coll-1/segments/000001.seg";
    assert_int_equal(objstore_put(s, key, data, sizeof data, &err), 0);
    assert_object_is(s, key, data, sizeof data);

    objstore_info info;
    assert_int_equal(objstore_head(s, key, &info, &err), 0);
    assert_int_equal(info.size_bytes, sizeof data);
    assert_true(info.has_crc32c);
    assert_int_equal(info.crc32c, crc32c(data, sizeof data));

    uint8_t part[1000];
    size_t got = 0;
    assert_int_equal(objstore_get_range(s, key, 12345, sizeof part, part, &got, &err), 0);
    assert_int_equal(got, sizeof part);
    assert_memory_equal(part, data + 12345, sizeof part);
    assert_int_equal(objstore_get_range(s, key, sizeof data - 10, sizeof part, part, &got, &err), 0);
    assert_int_equal(got, 10);
    assert_memory_equal(part, data + sizeof data - 10, 10);
    assert_int_equal(objstore_get_range(s, key, sizeof data, 10, part, &got, &err), 0);
    assert_int_equal(got, 0);

    /* Keys with every allowed punctuation mark survive the URL encoding
     * and the signature. */
    const char *odd = "odd/A-z_0.9!*'()=x";
    assert_int_equal(objstore_put(s, odd, "odd", 3, &err), 0);
    assert_object_is(s, odd, "odd", 3);

    /* Empty object; replacing an object. */
    assert_int_equal(objstore_put(s, "empty", "", 0, &err), 0);
    assert_object_is(s, "empty", "", 0);
    assert_int_equal(objstore_put(s, key, "v2", 2, &err), 0);
    assert_object_is(s, key, "v2", 2);

    assert_int_equal(objstore_delete(s, key, &err), 0);
    assert_absent(s, key);
    assert_int_equal(objstore_delete(s, key, &err), 0); /* absent: still fine */
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(objstore_get(s, key, &buf, &len, &err), TDB_ENOTFOUND);
    assert_string_equal(err.name, "object_not_found");
    assert_int_equal(objstore_get_range(s, key, 0, 10, part, &got, &err), TDB_ENOTFOUND);

    /* One thread, one pooled handle: its connection is reused (the
     * control requests of this test add their own connections). */
    char *st = ctl("stats");
    long requests = stat_of(st, "requests"), conns = stat_of(st, "connections");
    free(st);
    if (!(requests >= 15 && conns <= 4)) fail_msg("%ld connections for %ld requests", conns, requests);

    /* The prefix keeps stores apart. */
    objstore *other = open_prefix("ops/p2");
    assert_absent(other, odd);
    objstore_close(other);
    objstore_close(s);
    assert_all_signed();
}

static void s3_put_file_and_get_file_stream(void **state) {
    (void)state;
    ctl_do("reset");
    objstore *s = open_prefix("files");
    tdb_error err;
    size_t n = 2 * MIB + 777; /* below the multipart threshold: one streamed PUT */
    uint8_t *data = malloc(n);
    assert_non_null(data);
    fill(data, n, 2);
    char src[PATH_MAX], dst[PATH_MAX];
    scratch_path(src, "up.bin");
    scratch_path(dst, "down.bin");
    assert_int_equal(fio_write_file_atomic(src, data, n), 0);
    int rc = objstore_put_file(s, "f/up.bin", src, &err);
    if (rc != 0) fail_msg("put_file: %s", err.message);
    rc = objstore_get_file(s, "f/up.bin", dst, &err);
    if (rc != 0) fail_msg("get_file: %s", err.message);
    char *back;
    size_t back_len;
    assert_int_equal(fio_read_file(dst, &back, &back_len), 0);
    assert_int_equal(back_len, n);
    assert_memory_equal(back, data, n);
    free(back);
    char *st = ctl("stats");
    assert_int_equal(count_in(st, "uploads="), 0);
    free(st);
    free(data);
    objstore_close(s);
    assert_all_signed();
}

static void s3_multipart_upload_above_threshold(void **state) {
    (void)state;
    ctl_do("reset");
    objstore *s = open_prefix("multi");
    tdb_error err;
    size_t n = 11 * MIB + 4321; /* three parts of 5 MiB, 5 MiB, 1 MiB + */
    uint8_t *data = malloc(n);
    assert_non_null(data);
    fill(data, n, 3);
    char src[PATH_MAX], dst[PATH_MAX];
    scratch_path(src, "multi.bin");
    scratch_path(dst, "multi-back.bin");
    assert_int_equal(fio_write_file_atomic(src, data, n), 0);
    int rc = objstore_put_file(s, "big/file.bin", src, &err);
    if (rc != 0) fail_msg("multipart put_file: %s", err.message);

    char *st = ctl("stats");
    assert_int_equal(count_in(st, "POST /" BUCKET "/multi/big/file.bin?uploads= -> 200"), 1);
    assert_int_equal(count_in(st, "?partNumber="), 3);
    assert_int_equal(count_in(st, "POST /" BUCKET "/multi/big/file.bin?uploadId="), 1);
    free(st);

    objstore_info info;
    assert_int_equal(objstore_head(s, "big/file.bin", &info, &err), 0);
    assert_int_equal(info.size_bytes, n);
    assert_true(info.has_crc32c);
    assert_int_equal(info.crc32c, crc32c(data, n));
    rc = objstore_get_file(s, "big/file.bin", dst, &err);
    if (rc != 0) fail_msg("get_file: %s", err.message);
    char *back;
    size_t back_len;
    assert_int_equal(fio_read_file(dst, &back, &back_len), 0);
    assert_int_equal(back_len, n);
    assert_memory_equal(back, data, n);
    free(back);

    /* From memory, exactly two parts. */
    assert_int_equal(objstore_put(s, "big/mem.bin", data, 10 * MIB, &err), 0);
    assert_object_is(s, "big/mem.bin", data, 10 * MIB);
    st = ctl("stats");
    assert_int_equal(count_in(st, "/multi/big/mem.bin?partNumber="), 2);
    free(st);
    free(data);
    objstore_close(s);
    assert_all_signed();
}

typedef struct put_range {
    objstore *s;
    int from, to;
    int failures;
    char message[512];
} put_range;

static void *put_many(void *p) {
    put_range *r = p;
    char key[64];
    tdb_error err;
    for (int i = r->from; i < r->to; i++) {
        snprintf(key, sizeof key, "o-%05d", i);
        if (objstore_put(r->s, key, key, strlen(key), &err) != 0) {
            r->failures++;
            snprintf(r->message, sizeof r->message, "%s", err.message);
        }
    }
    return NULL;
}

static void s3_list_paginates_over_1000_objects(void **state) {
    (void)state;
    ctl_do("reset");
    objstore *s = open_prefix("listing");
    tdb_error err;
    const int total = 1050;
    /* Four threads share the store (and its handle pool) to fill it. */
    pthread_t th[4];
    put_range pr[4];
    for (int t = 0; t < 4; t++) {
        pr[t] = (put_range){.s = s, .from = total * t / 4, .to = total * (t + 1) / 4};
        assert_int_equal(pthread_create(&th[t], NULL, put_many, &pr[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        if (pr[t].failures) fail_msg("%d puts failed: %s", pr[t].failures, pr[t].message);
    }
    assert_int_equal(objstore_put(s, "zz/after", "z", 1, &err), 0);

    char *after = NULL;
    int seen = 0, pages = 0;
    char last[64] = "";
    for (;;) {
        objstore_page page;
        int rc = objstore_list(s, "o-", after, 0, &page, &err);
        if (rc != 0) fail_msg("list: %s", err.message);
        pages++;
        for (size_t i = 0; i < page.count; i++) {
            char want[64];
            snprintf(want, sizeof want, "o-%05d", seen);
            assert_string_equal(page.entries[i].key, want);
            assert_int_equal(page.entries[i].size_bytes, strlen(want));
            assert_true(strcmp(page.entries[i].key, last) > 0);
            snprintf(last, sizeof last, "%s", want);
            seen++;
        }
        free(after);
        after = page.next ? strdup(page.next) : NULL;
        objstore_page_free(&page);
        if (after == NULL) break;
    }
    assert_int_equal(seen, total);
    assert_int_equal(pages, 2); /* 1000 + 50 */

    objstore_page page;
    assert_int_equal(objstore_list(s, "", "o-01045", 3, &page, &err), 0);
    assert_int_equal(page.count, 3);
    assert_string_equal(page.entries[0].key, "o-01046");
    assert_string_equal(page.next, "o-01048");
    objstore_page_free(&page);
    assert_int_equal(objstore_list(s, "", "o-01048", 10, &page, &err), 0);
    assert_int_equal(page.count, 2);
    assert_string_equal(page.entries[1].key, "zz/after");
    assert_null(page.next);
    objstore_page_free(&page);
    objstore_close(s);
    assert_all_signed();
}

static void s3_virtual_host_addressing(void **state) {
    (void)state;
    ctl_do("reset");
    objstore_options o;
    test_options(&o);
    o.endpoint = g_vhost_endpoint;
    o.path_style = false;
    objstore *s = open_with("s3://" BUCKET "/vhost", &o);
    tdb_error err;
    int rc = objstore_put(s, "a/b", "vhost!", 6, &err);
    if (rc != 0) fail_msg("vhost put: %s", err.message);
    assert_object_is(s, "a/b", "vhost!", 6);
    objstore_page page;
    assert_int_equal(objstore_list(s, "a/", NULL, 0, &page, &err), 0);
    assert_int_equal(page.count, 1);
    objstore_page_free(&page);
    assert_int_equal(objstore_check(s, &err), 0);
    objstore_close(s);
    /* The same object through path-style addressing. */
    objstore *p = open_prefix("vhost");
    assert_object_is(p, "a/b", "vhost!", 6);
    objstore_close(p);
    char *st = ctl("stats");
    assert_true(count_in(st, "PUT /a/b") + count_in(st, "PUT /vhost/a/b") == 1);
    free(st);
    assert_all_signed();
}

static void s3_credentials_from_the_environment(void **state) {
    (void)state;
    ctl_do("reset");
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    objstore_options o;
    test_options(&o);
    o.access_key = o.secret_key = o.region = NULL;
    objstore *s = open_with("s3://" BUCKET "/env", &o);
    tdb_error err;
    int rc = objstore_check(s, &err);
    if (rc != 0) fail_msg("check with env credentials: %s", err.message);
    objstore_close(s);
    /* Without any credentials, open says what to set. */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_REGION");
    assert_int_equal(objstore_open("s3://" BUCKET "/env", &o, &s, &err), TDB_EINVAL);
    assert_non_null(strstr(err.message, "AWS_ACCESS_KEY_ID"));
    assert_all_signed();
}

/* ---- causes named ------------------------------------------------------------- */

static void s3_wrong_secret_fails_naming_the_cause(void **state) {
    (void)state;
    ctl_do("reset");
    objstore_options o;
    test_options(&o);
    o.secret_key = "not-the-secret";
    objstore *s = open_with("s3://" BUCKET "/auth", &o);
    tdb_error err;
    assert_int_equal(objstore_check(s, &err), TDB_EIO);
    assert_string_equal(err.name, "object_store_auth");
    assert_non_null(strstr(err.message, "secret access key is wrong"));
    assert_int_equal(objstore_put(s, "x", "x", 1, &err), TDB_EIO);
    assert_non_null(strstr(err.message, "SignatureDoesNotMatch"));
    objstore_info info;
    assert_int_equal(objstore_head(s, "x", &info, &err), TDB_EIO); /* HEAD: 403 without a body */
    objstore_close(s);
    char *st = ctl("stats");
    assert_true(stat_of(st, "sig_failures") >= 3);
    assert_int_equal(stat_of(st, "faults"), 0);
    free(st);
    /* Nothing was written. */
    objstore *good = open_prefix("auth");
    assert_absent(good, "x");
    objstore_close(good);
}

static void s3_unknown_access_key_fails_naming_the_cause(void **state) {
    (void)state;
    ctl_do("reset");
    objstore_options o;
    test_options(&o);
    o.access_key = "NOBODY";
    objstore *s = open_with("s3://" BUCKET "/auth", &o);
    tdb_error err;
    assert_int_equal(objstore_check(s, &err), TDB_EIO);
    assert_string_equal(err.name, "object_store_auth");
    assert_non_null(strstr(err.message, "does not know access key id 'NOBODY'"));
    objstore_close(s);
}

static void s3_missing_bucket_fails_naming_the_cause(void **state) {
    (void)state;
    ctl_do("reset");
    objstore_options o;
    test_options(&o);
    objstore *s = open_with("s3://no-such-bucket/x", &o);
    tdb_error err;
    assert_int_equal(objstore_check(s, &err), TDB_EIO);
    assert_string_equal(err.name, "object_store_bucket_missing");
    assert_non_null(strstr(err.message, "bucket 'no-such-bucket' does not exist"));
    assert_int_equal(objstore_put(s, "k", "v", 1, &err), TDB_EIO);
    assert_string_equal(err.name, "object_store_bucket_missing");
    objstore_close(s);
    assert_all_signed();
}

static void s3_unreachable_endpoint_fails_naming_the_cause(void **state) {
    (void)state;
    /* A loopback port nobody listens on: bind one, note it, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", ntohs(a.sin_port));
    objstore_options o;
    test_options(&o);
    o.endpoint = endpoint;
    objstore *s = open_with("s3://" BUCKET "/x", &o);
    tdb_error err;
    uint64_t t0 = clock_mono_ns();
    assert_int_equal(objstore_check(s, &err), TDB_EIO);
    assert_string_equal(err.name, "object_store_unreachable");
    assert_non_null(strstr(err.message, "is unreachable"));
    assert_non_null(strstr(err.message, endpoint));
    assert_non_null(strstr(err.message, "5 attempts")); /* 1 + max_retries */
    assert_true(clock_mono_ns() - t0 < 5000000000ull);
    objstore_close(s);
}

static void s3_https_to_a_plain_http_server_fails_naming_tls(void **state) {
    (void)state;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "https://127.0.0.1:%d", g_proxy_port);
    objstore_options o;
    test_options(&o);
    o.endpoint = endpoint;
    o.max_retries = 1;
    objstore *s = open_with("s3://" BUCKET "/tls", &o);
    tdb_error err;
    assert_int_equal(objstore_check(s, &err), TDB_EIO);
    assert_string_equal(err.name, "object_store_tls");
    assert_non_null(strstr(err.message, "TLS"));
    objstore_close(s);
}

/* ---- faults ---------------------------------------------------------------------- */

/* Every operation once; all must succeed through the injected faults. */
static void all_operations(objstore *s, const char *tag) {
    tdb_error err;
    uint8_t data[30000];
    fill(data, sizeof data, 9);
    char key[64];
    snprintf(key, sizeof key, "%s/obj", tag);
    int rc = objstore_put(s, key, data, sizeof data, &err);
    if (rc != 0) fail_msg("put through faults: %s", err.message);
    assert_object_is(s, key, data, sizeof data);
    objstore_info info;
    rc = objstore_head(s, key, &info, &err);
    if (rc != 0) fail_msg("head through faults: %s", err.message);
    assert_int_equal(info.size_bytes, sizeof data);
    uint8_t part[100];
    size_t got;
    rc = objstore_get_range(s, key, 500, sizeof part, part, &got, &err);
    if (rc != 0) fail_msg("range through faults: %s", err.message);
    assert_int_equal(got, sizeof part);
    assert_memory_equal(part, data + 500, sizeof part);
    objstore_page page;
    rc = objstore_list(s, tag, NULL, 0, &page, &err);
    if (rc != 0) fail_msg("list through faults: %s", err.message);
    assert_int_equal(page.count, 1);
    objstore_page_free(&page);
    rc = objstore_delete(s, key, &err);
    if (rc != 0) fail_msg("delete through faults: %s", err.message);
    rc = objstore_check(s, &err);
    if (rc != 0) fail_msg("check through faults: %s", err.message);
}

static void s3_retries_through_5xx_429_and_dropped_connections(void **state) {
    (void)state;
    objstore *s = open_prefix("faults");
    const char *rules[] = {"fault?mode=status&code=503&every=2", "fault?mode=status&code=500&every=2",
                           "fault?mode=status&code=429&every=3", "fault?mode=drop&every=2",
                           "fault?mode=truncate&method=GET&every=2",
                           "fault?mode=drop_after&method=PUT&every=2"};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        ctl_do("reset");
        ctl_do(rules[i]);
        char tag[16];
        snprintf(tag, sizeof tag, "r%zu", i);
        all_operations(s, tag);
        char *st = ctl("stats");
        if (stat_of(st, "faults") < 2) fail_msg("rule %s injected too little: %s", rules[i], st);
        free(st);
        assert_all_signed();
    }
    ctl_do("reset");
    objstore_close(s);
}

static void s3_multipart_retries_part_and_complete_failures(void **state) {
    (void)state;
    ctl_do("reset");
    objstore *s = open_prefix("mpfaults");
    tdb_error err;
    size_t n = 10 * MIB + 1;
    uint8_t *data = malloc(n);
    assert_non_null(data);
    fill(data, n, 4);
    /* Every other part upload fails once. */
    ctl_do("fault?mode=status&code=500&every=2&match=partNumber");
    int rc = objstore_put(s, "a.bin", data, n, &err);
    if (rc != 0) fail_msg("multipart through part faults: %s", err.message);
    /* The reply to CompleteMultipartUpload is lost once: the retry meets
     * an upload that is already complete and must still succeed. */
    ctl_do("reset");
    ctl_do("fault?mode=drop_after&method=POST&match=uploadId=&limit=1");
    rc = objstore_put(s, "b.bin", data, n, &err);
    if (rc != 0) fail_msg("multipart with a lost completion reply: %s", err.message);
    char *st = ctl("stats");
    assert_int_equal(stat_of(st, "faults"), 1);
    free(st);
    ctl_do("reset");
    assert_object_is(s, "a.bin", data, n);
    assert_object_is(s, "b.bin", data, n);
    free(data);
    objstore_close(s);
}

/* Parts in flight at once: part_concurrency 1 sends them over one
 * connection, one after another; with 4, parts held back by the proxy
 * (each waits 400 ms before it is forwarded) are sent over several
 * connections at once. The object is whole either way. A part that keeps
 * failing stops the upload: no completion is sent, the upload is aborted
 * once, and nothing is visible. */
static void s3_multipart_sends_parts_in_parallel_and_aborts_on_a_failing_part(void **state) {
    (void)state;
    size_t n = 20 * MIB + 77; /* five parts: 4 x 5 MiB + 77 bytes */
    uint8_t *data = malloc(n);
    assert_non_null(data);
    fill(data, n, 6);
    tdb_error err;
    objstore_options o;
    test_options(&o);

    o.part_concurrency = 1;
    objstore *one = open_with("s3://" BUCKET "/par1", &o);
    ctl_do("reset");
    if (objstore_put(one, "x.bin", data, n, &err) != 0) fail_msg("one part at a time: %s", err.message);
    char *st = ctl("stats");
    assert_int_equal(count_in(st, "/par1/x.bin?partNumber="), 5);
    long serial = stat_of(st, "connections"); /* the store's one, and this stats request's */
    assert_true(serial <= 2);
    free(st);
    assert_object_is(one, "x.bin", data, n);
    objstore_close(one);

    o.part_concurrency = 4;
    objstore *s = open_with("s3://" BUCKET "/par4", &o);
    ctl_do("reset");
    ctl_do("fault?mode=slow&delay_ms=400&match=partNumber=");
    if (objstore_put(s, "x.bin", data, n, &err) != 0) fail_msg("parts in parallel: %s", err.message);
    st = ctl("stats");
    assert_int_equal(count_in(st, "/par4/x.bin?partNumber="), 5);
    assert_int_equal(stat_of(st, "faults"), 5);
    if (stat_of(st, "connections") <= serial) fail_msg("parts were not sent in parallel: %.2000s", st);
    assert_int_equal(count_in(st, "POST /" BUCKET "/par4/x.bin?uploadId="), 1); /* completed */
    free(st);
    ctl_do("reset");
    assert_object_is(s, "x.bin", data, n);

    /* Part 3 fails on every attempt while the others go through. */
    ctl_do("fault?mode=status&code=500&match=partNumber=3&");
    assert_int_equal(objstore_put(s, "y.bin", data, n, &err), TDB_EIO);
    assert_non_null(strstr(err.message, "kept failing"));
    st = ctl("stats");
    assert_int_equal(stat_of(st, "faults"), 5); /* 1 + max_retries attempts of part 3 */
    assert_int_equal(count_in(st, "POST /" BUCKET "/par4/y.bin?uploadId="), 0); /* no completion */
    assert_int_equal(count_in(st, "DELETE /" BUCKET "/par4/y.bin?uploadId="), 1); /* aborted */
    free(st);
    ctl_do("reset");
    assert_absent(s, "y.bin");
    free(data);
    objstore_close(s);
    assert_all_signed();
}

static void s3_slow_reply_hits_the_stall_timeout_and_is_retried(void **state) {
    (void)state;
    ctl_do("reset");
    objstore_options o;
    test_options(&o);
    o.stall_timeout_ms = 300;
    objstore *s = open_with("s3://" BUCKET "/slow", &o);
    tdb_error err;
    assert_int_equal(objstore_put(s, "k", "slow", 4, &err), 0);
    ctl_do("fault?mode=slow&delay_ms=2500&method=GET&limit=1");
    uint64_t t0 = clock_mono_ns();
    assert_object_is(s, "k", "slow", 4);
    uint64_t took_ms = (clock_mono_ns() - t0) / 1000000u;
    assert_true(took_ms >= 300);  /* it did wait for the stall timeout */
    assert_true(took_ms < 2400);  /* and did not wait for the slow reply */
    char *st = ctl("stats");
    assert_int_equal(stat_of(st, "faults"), 1);
    free(st);
    /* Slow on every attempt: a timeout error naming the cause. */
    o.max_retries = 1;
    objstore *t = open_with("s3://" BUCKET "/slow", &o);
    ctl_do("reset");
    ctl_do("fault?mode=slow&delay_ms=1500&method=GET");
    void *buf;
    size_t len;
    assert_int_equal(objstore_get(t, "k", &buf, &len, &err), TDB_EIO);
    assert_string_equal(err.name, "object_store_timeout");
    assert_non_null(strstr(err.message, "timed out 2 times"));
    ctl_do("reset");
    objstore_close(t);
    objstore_close(s);
}

static void s3_failure_outlasting_retries_leaves_no_object(void **state) {
    (void)state;
    ctl_do("reset");
    objstore *s = open_prefix("nothing");
    tdb_error err;
    size_t n = 10 * MIB + 3;
    uint8_t *data = malloc(n);
    assert_non_null(data);
    fill(data, n, 5);

    /* Multipart: the second part never gets through. */
    ctl_do("fault?mode=status&code=500&match=partNumber=2&");
    uint64_t t0 = clock_mono_ns();
    assert_int_equal(objstore_put(s, "mp.bin", data, n, &err), TDB_EIO);
    assert_true(clock_mono_ns() - t0 < 10000000000ull);
    assert_non_null(strstr(err.message, "kept failing"));
    assert_non_null(strstr(err.message, "5 attempts"));
    char *st = ctl("stats");
    assert_int_equal(stat_of(st, "faults"), 5);
    assert_int_equal(count_in(st, "DELETE /" BUCKET "/nothing/mp.bin?uploadId="), 1); /* aborted */
    free(st);
    ctl_do("reset");
    assert_absent(s, "mp.bin");

    /* Single PUT: throttled throughout; reported as busy. */
    ctl_do("fault?mode=status&code=503&method=PUT");
    assert_int_equal(objstore_put(s, "one.bin", data, 1000, &err), TDB_EBUSY);
    assert_string_equal(err.name, "object_store_busy");
    ctl_do("reset");
    assert_absent(s, "one.bin");

    /* Connections dropped throughout. */
    ctl_do("fault?mode=drop&method=PUT");
    assert_int_equal(objstore_put(s, "two.bin", data, 1000, &err), TDB_EIO);
    assert_string_equal(err.name, "object_store_unreachable");
    assert_non_null(strstr(err.message, "dropped the connection"));
    ctl_do("reset");
    assert_absent(s, "two.bin");

    objstore_page page;
    assert_int_equal(objstore_list(s, "", NULL, 0, &page, &err), 0);
    assert_int_equal(page.count, 0);
    objstore_page_free(&page);
    free(data);
    objstore_close(s);
    assert_all_signed();
}

/* The counters behind /metrics: calls by outcome, failures by cause,
 * every HTTP request the proxy saw, retries by reason, bytes. */
static void s3_counters_count_requests_retries_and_failures(void **state) {
    (void)state;
    ctl_do("reset");
    objstore *s = open_prefix("counters");
    tdb_error err;
    objstore_stats st;
    uint8_t data[1000];
    fill(data, sizeof data, 12);

    ctl_do("fault?mode=status&code=503&method=PUT&limit=1");
    assert_int_equal(objstore_put(s, "a", data, sizeof data, &err), 0);
    ctl_do("fault?mode=status&code=500&method=GET&limit=1");
    assert_object_is(s, "a", data, sizeof data);
    ctl_do("fault?mode=status&method=NONE"); /* no faults; the proxy keeps counting */
    objstore_info info;
    assert_int_equal(objstore_head(s, "absent", &info, &err), TDB_ENOTFOUND);
    ctl_do("fault?mode=status&code=503&method=PUT");
    assert_int_equal(objstore_put(s, "b", data, sizeof data, &err), TDB_EBUSY);
    char *px = ctl("stats");
    long proxy_requests = stat_of(px, "requests");
    free(px);
    assert_all_signed();
    ctl_do("reset");

    objstore_stats_get(s, &st);
    assert_int_equal(st.calls[OBJSTORE_OP_PUT][OBJSTORE_OUTCOME_OK], 1);
    assert_int_equal(st.calls[OBJSTORE_OP_PUT][OBJSTORE_OUTCOME_ERROR], 1);
    assert_int_equal(st.calls[OBJSTORE_OP_GET][OBJSTORE_OUTCOME_OK], 1);
    assert_int_equal(st.calls[OBJSTORE_OP_HEAD][OBJSTORE_OUTCOME_NOT_FOUND], 1);
    assert_int_equal(st.errors[OBJSTORE_CAUSE_BUSY], 1);
    /* one 503 on the first put, all 4 retries of the second; one 500 */
    assert_int_equal(st.retries[OBJSTORE_RETRY_THROTTLED], 1 + 4);
    assert_int_equal(st.retries[OBJSTORE_RETRY_SERVER_ERROR], 1);
    assert_int_equal(st.retries[OBJSTORE_RETRY_TIMEOUT] + st.retries[OBJSTORE_RETRY_CONNECTION], 0);
    /* 2 + 2 + 1 + 5 requests, each seen by the proxy */
    assert_int_equal(st.http_requests, 10);
    assert_int_equal(st.http_requests, (uint64_t)proxy_requests);
    assert_int_equal(st.uploaded_bytes, sizeof data);
    assert_int_equal(st.downloaded_bytes, sizeof data);
    assert_true(st.latency_us_sum[OBJSTORE_OP_PUT] > 0);
    objstore_close(s);
}

static void s3_corrupted_download_is_detected(void **state) {
    (void)state;
    ctl_do("reset");
    objstore *s = open_prefix("corrupt");
    tdb_error err;
    uint8_t data[5000];
    fill(data, sizeof data, 6);
    assert_int_equal(objstore_put(s, "c", data, sizeof data, &err), 0);
    ctl_do("fault?mode=corrupt&method=GET");
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(objstore_get(s, "c", &buf, &len, &err), TDB_ECORRUPT);
    assert_null(buf);
    assert_string_equal(err.name, "object_corrupt");
    char dst[PATH_MAX];
    scratch_path(dst, "corrupt-dst");
    assert_int_equal(fio_write_file_atomic(dst, "before", 6), 0);
    assert_int_equal(objstore_get_file(s, "c", dst, &err), TDB_ECORRUPT);
    char *back;
    size_t back_len;
    assert_int_equal(fio_read_file(dst, &back, &back_len), 0);
    assert_string_equal(back, "before");
    free(back);
    ctl_do("reset");
    assert_object_is(s, "c", data, sizeof data);
    objstore_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(s3_check_passes_on_a_good_store),
        cmocka_unit_test(s3_put_get_head_range_delete_roundtrip),
        cmocka_unit_test(s3_put_file_and_get_file_stream),
        cmocka_unit_test(s3_multipart_upload_above_threshold),
        cmocka_unit_test(s3_list_paginates_over_1000_objects),
        cmocka_unit_test(s3_virtual_host_addressing),
        cmocka_unit_test(s3_credentials_from_the_environment),
        cmocka_unit_test(s3_wrong_secret_fails_naming_the_cause),
        cmocka_unit_test(s3_unknown_access_key_fails_naming_the_cause),
        cmocka_unit_test(s3_missing_bucket_fails_naming_the_cause),
        cmocka_unit_test(s3_unreachable_endpoint_fails_naming_the_cause),
        cmocka_unit_test(s3_https_to_a_plain_http_server_fails_naming_tls),
        cmocka_unit_test(s3_retries_through_5xx_429_and_dropped_connections),
        cmocka_unit_test(s3_multipart_retries_part_and_complete_failures),
        cmocka_unit_test(s3_multipart_sends_parts_in_parallel_and_aborts_on_a_failing_part),
        cmocka_unit_test(s3_slow_reply_hits_the_stall_timeout_and_is_retried),
        cmocka_unit_test(s3_failure_outlasting_retries_leaves_no_object),
        cmocka_unit_test(s3_corrupted_download_is_detected),
        cmocka_unit_test(s3_counters_count_requests_retries_and_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
