/*
 * preload.c: bringing a collection's segment files into memory when it is
 * promoted to hot, so that its first queries do not pay for page faults
 * that read from disk.
 * Layer: storage.
 *
 * The segments are mapped read-only and shared (segment.c), so the page
 * cache is what holds them: posix_fadvise(POSIX_FADV_WILLNEED) on each file
 * starts the kernel's readahead of the whole file and returns without
 * waiting for the reads. Releasing on demotion needs nothing here: a warm
 * collection's storage is closed, which unmaps every file, and the kernel
 * reclaims the clean pages under memory pressure.
 */
#include <fcntl.h>
#include <unistd.h>

#include "storage/collection_int.h"
#include "storage/storage.h"

int st_preload(st_collection *c, uint64_t *bytes) {
    uint64_t snapshot, total = 0;
    int failed = 0;
    st_view *v = st_view_acquire(c, &snapshot);
    for (size_t i = 0; i < v->nsegs; i++) {
        st_seg *s = v->segs[i];
        int fd = open(s->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            failed++;
            continue;
        }
        if (posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED) == 0) total += seg_file_bytes(s->seg);
        else failed++;
        close(fd);
    }
    st_view_release(v);
    if (bytes) *bytes = total;
    return failed;
}
