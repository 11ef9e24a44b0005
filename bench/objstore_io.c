/*
 * objstore_io.c: one object-store transfer through tierdb's objstore
 * layer, timed: `put` uploads a local file (objstore_put_file: CRC32C and
 * SHA-256 passes, then one PUT or a multipart upload), `get` downloads it
 * (objstore_get_file: streamed to a temporary file, CRC32C verified,
 * fsync'd, renamed). Prints "SECONDS BYTES". bench/s3_throughput.py runs it
 * against s3rver beside plain curl PUT/GET of the same bytes.
 *
 * Usage: objstore_io put|get URL KEY FILE
 *   URL: file:///dir or s3://bucket[/prefix] (endpoint, path style and
 *   credentials from TIERDB_S3_ENDPOINT, TIERDB_S3_PATH_STYLE, AWS_*;
 *   TDB_BENCH_MULTIPART_MIB overrides the multipart threshold).
 *
 * Build from the repository root after building the layer libraries:
 *   cc -O2 -std=c17 -D_GNU_SOURCE -Iinclude -Isrc bench/objstore_io.c \
 *      build-bench/libtdb_objstore.a build-bench/libtdb_util.a -lcurl -lcrypto -lpthread -lm \
 *      -o build-bench/objstore_io
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "objstore/objstore.h"
#include "util/clock.h"

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[1], "put") != 0 && strcmp(argv[1], "get") != 0)) {
        fprintf(stderr, "usage: objstore_io put|get URL KEY FILE\n");
        return 2;
    }
    objstore_options o;
    objstore_options_default(&o);
    o.endpoint = getenv("TIERDB_S3_ENDPOINT");
    const char *ps = getenv("TIERDB_S3_PATH_STYLE");
    o.path_style = ps && strcmp(ps, "1") == 0;
    const char *mp = getenv("TDB_BENCH_MULTIPART_MIB"); /* override the multipart threshold */
    if (mp && atoi(mp) > 0) o.multipart_threshold_bytes = (uint64_t)atoi(mp) << 20;
    objstore *s = NULL;
    tdb_error err;
    if (objstore_open(argv[2], &o, &s, &err) != 0) {
        fprintf(stderr, "objstore_io: %s\n", err.message);
        return 1;
    }
    uint64_t t0 = clock_mono_ns();
    int rc = strcmp(argv[1], "put") == 0 ? objstore_put_file(s, argv[3], argv[4], &err)
                                         : objstore_get_file(s, argv[3], argv[4], &err);
    uint64_t t1 = clock_mono_ns();
    objstore_close(s);
    if (rc != 0) {
        fprintf(stderr, "objstore_io: %s\n", err.message);
        return 1;
    }
    struct stat st;
    if (stat(argv[4], &st) != 0) return 1;
    printf("%.6f %lld\n", (double)(t1 - t0) / 1e9, (long long)st.st_size);
    return 0;
}
