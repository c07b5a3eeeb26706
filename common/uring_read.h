/* SPDX-License-Identifier: MIT */
/* Sequential chunked file reading with io_uring: keeps `depth` reads of
 * `chunk` bytes in flight and hands chunks back in file order. Falls back to
 * pread when io_uring is unavailable (old kernel, seccomp). */
#ifndef SLUICE_COMMON_URING_READ_H
#define SLUICE_COMMON_URING_READ_H

#include <stddef.h>
#include <stdint.h>

struct ureader;

/* Read [0, size) of fd in chunks of `chunk` bytes. Returns 0 or -errno. */
__attribute__((warn_unused_result)) int ureader_open(struct ureader **out, int fd, uint64_t size,
                                                     uint32_t chunk, unsigned depth);
/* Read the concatenation of n regular files (paths relative to dirfd, each
 * opened beneath it without following symlinks, one at a time, with pread)
 * in chunks of `chunk` bytes: a directory bundle. The arrays must outlive the
 * reader. A file that is missing, not regular, or not exactly sizes[i] bytes
 * is -EIO: it changed since it was scanned; ureader_failed_path names it. */
__attribute__((warn_unused_result)) int ureader_open_files(struct ureader **out, int dirfd,
                                                           const char *const *paths,
                                                           const uint64_t *sizes, size_t n,
                                                           uint32_t chunk);
const char *ureader_failed_path(const struct ureader *r);
/* Next chunk in order: 1 with data, len and index set (valid until the next
 * call), 0 at the end, -errno on a read error (-EIO if the file shrank). */
__attribute__((warn_unused_result)) int ureader_next(struct ureader *r, const uint8_t **data,
                                                     size_t *len, uint64_t *index);
/* Non-zero when reads go through io_uring (for the summary line). */
int ureader_uses_uring(const struct ureader *r);
void ureader_close(struct ureader *r);

#endif
