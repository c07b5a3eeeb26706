/* SPDX-License-Identifier: MIT */
/* Sequential chunked file reading with io_uring, pread as fallback. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#include "uring_read.h"
#include "util.h"

struct slot {
	uint8_t *buf;
	uint64_t index; /* chunk number this slot holds or is reading */
	size_t want;    /* bytes the chunk has */
	size_t got;     /* bytes read so far */
	int busy;       /* a read is queued for this slot */
	int err;
};

struct ureader {
	struct io_uring ring;
	int use_uring;
	int fd;
	uint64_t size;
	uint32_t chunk;
	unsigned depth;
	uint64_t nchunks;
	uint64_t next_submit; /* next chunk index to queue */
	uint64_t next_out;    /* next chunk index to hand out */
	struct slot *slots;
	/* ureader_open_files: the files, and the one being read */
	int dirfd;
	const char *const *paths;
	const uint64_t *sizes;
	size_t nfiles, cur;
	int cur_fd;
	uint64_t cur_off;
};

static size_t chunk_len(const struct ureader *r, uint64_t idx)
{
	uint64_t off = idx * r->chunk;
	uint64_t left = r->size - off;

	return left < r->chunk ? (size_t)left : r->chunk;
}

static int queue_read(struct ureader *r, struct slot *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, r->fd, s->buf + s->got, (unsigned)(s->want - s->got),
	                   s->index * r->chunk + s->got);
	io_uring_sqe_set_data(sqe, s);
	s->busy = 1;
	return 0;
}

static int fill_pipeline(struct ureader *r)
{
	int queued = 0, rc;

	while (r->next_submit < r->nchunks && r->next_submit < r->next_out + r->depth) {
		struct slot *s = &r->slots[r->next_submit % r->depth];
		s->index = r->next_submit++;
		s->want = chunk_len(r, s->index);
		s->got = 0;
		s->err = 0;
		rc = queue_read(r, s);
		if (rc)
			return rc;
		queued++;
	}
	if (queued) {
		rc = io_uring_submit(&r->ring);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int open_common(struct ureader **out, int fd, uint64_t size, uint32_t chunk, unsigned depth,
                       int try_uring)
{
	struct ureader *r = calloc(1, sizeof(*r));

	if (!r || chunk == 0 || depth == 0) {
		free(r);
		return r ? -EINVAL : -ENOMEM;
	}
	r->fd = fd;
	r->cur_fd = -1;
	r->size = size;
	r->chunk = chunk;
	r->depth = depth;
	r->nchunks = size / chunk + (size % chunk != 0);
	r->slots = calloc(depth, sizeof(*r->slots));
	if (!r->slots)
		goto nomem;
	for (unsigned i = 0; i < depth; i++) {
		r->slots[i].buf = aligned_alloc(4096, ((size_t)chunk + 4095) & ~(size_t)4095);
		if (!r->slots[i].buf)
			goto nomem;
	}
	r->use_uring = try_uring && io_uring_queue_init(depth * 2, &r->ring, 0) == 0;
	*out = r;
	return 0;
nomem:
	ureader_close(r);
	return -ENOMEM;
}

int ureader_open(struct ureader **out, int fd, uint64_t size, uint32_t chunk, unsigned depth)
{
	return open_common(out, fd, size, chunk, depth, 1);
}

int ureader_open_files(struct ureader **out, int dirfd, const char *const *paths,
                       const uint64_t *sizes, size_t n, uint32_t chunk)
{
	uint64_t total = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		total += sizes[i];
	rc = open_common(out, -1, total, chunk, 1, 0);
	if (rc == 0) {
		(*out)->dirfd = dirfd;
		(*out)->paths = paths;
		(*out)->sizes = sizes;
		(*out)->nfiles = n;
	}
	return rc;
}

const char *ureader_failed_path(const struct ureader *r)
{
	return r->cur < r->nfiles ? r->paths[r->cur] : NULL;
}

/* Open the current file and check it is still what was scanned. */
static int files_open_current(struct ureader *r)
{
	struct stat st;
	int fd = open_beneath(r->dirfd, r->paths[r->cur], O_RDONLY | O_NOFOLLOW, 0);

	if (fd < 0)
		return fd == -ENOENT || fd == -ELOOP || fd == -EXDEV ? -EIO : fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != r->sizes[r->cur]) {
		close(fd);
		return -EIO;
	}
	r->cur_fd = fd;
	r->cur_off = 0;
	return 0;
}

/* Fill buf with the next want bytes of the concatenation. */
static int files_read(struct ureader *r, uint8_t *buf, size_t want)
{
	size_t got = 0;
	int rc;

	while (got < want) {
		if (r->cur >= r->nfiles)
			return -EIO;
		if (r->cur_fd < 0) {
			rc = files_open_current(r);
			if (rc < 0)
				return rc;
		}
		uint64_t left = r->sizes[r->cur] - r->cur_off;
		size_t n = left < want - got ? (size_t)left : want - got;
		rc = pread_full(r->cur_fd, buf + got, n, (off_t)r->cur_off);
		if (rc < 0)
			return rc;
		got += n;
		r->cur_off += n;
		if (r->cur_off == r->sizes[r->cur]) {
			uint8_t extra;
			ssize_t more = pread(r->cur_fd, &extra, 1, (off_t)r->cur_off);
			if (more != 0)
				return -EIO; /* it grew */
			close(r->cur_fd);
			r->cur_fd = -1;
			r->cur++;
		}
	}
	return 0;
}

static int wait_slot(struct ureader *r, struct slot *want)
{
	struct io_uring_cqe *cqe;
	int rc;

	while (want->busy) {
		rc = io_uring_wait_cqe(&r->ring, &cqe);
		if (rc == -EINTR)
			continue;
		if (rc < 0)
			return rc;
		struct slot *s = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&r->ring, cqe);
		s->busy = 0;
		if (res < 0) {
			s->err = res;
		} else if (res == 0) {
			s->err = -EIO; /* file shrank under us */
		} else {
			s->got += (size_t)res;
			if (s->got < s->want) { /* short read: ask for the rest */
				rc = queue_read(r, s);
				if (rc == 0)
					rc = io_uring_submit(&r->ring);
				if (rc < 0)
					return rc;
			}
		}
	}
	return want->err;
}

int ureader_next(struct ureader *r, const uint8_t **data, size_t *len, uint64_t *index)
{
	struct slot *s;
	int rc;

	if (r->next_out >= r->nchunks)
		return 0;
	s = &r->slots[r->next_out % r->depth];
	if (r->use_uring) {
		/* The slot handed out last time is free again now. */
		rc = fill_pipeline(r);
		if (rc < 0)
			return rc;
		rc = wait_slot(r, s);
		if (rc < 0)
			return rc;
	} else {
		s->index = r->next_out;
		s->want = chunk_len(r, s->index);
		if (r->paths)
			rc = files_read(r, s->buf, s->want);
		else
			rc = pread_full(r->fd, s->buf, s->want, (off_t)(s->index * r->chunk));
		if (rc < 0)
			return rc;
	}
	*data = s->buf;
	*len = s->want;
	*index = r->next_out++;
	return 1;
}

int ureader_uses_uring(const struct ureader *r)
{
	return r->use_uring;
}

void ureader_close(struct ureader *r)
{
	if (!r)
		return;
	if (r->use_uring) {
		/* Drain reads still in flight before their buffers go away. */
		for (unsigned i = 0; i < r->depth; i++)
			while (r->slots[i].busy && wait_slot(r, &r->slots[i]) == -EINTR)
				;
		io_uring_queue_exit(&r->ring);
	}
	if (r->cur_fd >= 0)
		close(r->cur_fd);
	if (r->slots)
		for (unsigned i = 0; i < r->depth; i++)
			free(r->slots[i].buf);
	free(r->slots);
	free(r);
}
