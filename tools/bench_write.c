/* SPDX-License-Identifier: MIT */
/* bench_write: the staging write of sluice-recv, pwrite of one block after
 * another (receiver/writer.c), against the same writes through io_uring, in
 * the same run. It answers whether io_uring would lower the writer's CPU
 * (DECISIONS.md §17).
 *
 * Usage: bench_write DIR [MIB [BLOCK_BYTES [ROUNDS]]]
 *        (default 1024 MiB in blocks of 181248 bytes, the receiver's block
 *        at MTU 1500, and 3 rounds)
 *
 * Each round writes a fresh file in DIR (reserved with fallocate, as staging
 * does) by each method in turn, then fdatasyncs and deletes it. CPU is the
 * process's user + system time (io_uring's worker threads included), so the
 * kernel's page-cache copy counts on both sides; writeback that the kernel
 * does in its own threads counts on neither.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

struct result {
	double cpu_s, wall_s;
};

struct range {
	struct result lo, hi;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int write_pwrite(int fd, uint8_t *const *bufs, unsigned nbufs, size_t block, uint64_t blocks)
{
	for (uint64_t b = 0; b < blocks; b++) {
		const uint8_t *p = bufs[b % nbufs];
		size_t done = 0;
		while (done < block) {
			ssize_t w = pwrite(fd, p + done, block - done, (off_t)(b * block + done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
			done += (size_t)w;
		}
	}
	return 0;
}

/* depth writes in flight, each from its own buffer; a short write is an
 * error here (it does not happen on a local file system with the space
 * reserved). */
static int write_uring(int fd, uint8_t *const *bufs, unsigned depth, size_t block, uint64_t blocks)
{
	struct io_uring ring;
	uint64_t next = 0, done = 0;
	int rc = 0;

	if (io_uring_queue_init(depth, &ring, 0) < 0)
		return -1;
	while (done < blocks && rc == 0) {
		while (next < blocks && next - done < depth) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_write(sqe, fd, bufs[next % depth], (unsigned)block,
			                    next * block);
			next++;
		}
		struct io_uring_cqe *cqe;
		if (io_uring_submit_and_wait(&ring, 1) < 0 || io_uring_wait_cqe(&ring, &cqe) < 0)
			rc = -1;
		else {
			if (cqe->res != (int)block)
				rc = -1;
			io_uring_cqe_seen(&ring, cqe);
			done++;
		}
	}
	io_uring_queue_exit(&ring);
	return rc;
}

static int run(const char *dir, int method, uint8_t *const *bufs, size_t block, uint64_t blocks,
               struct result *r)
{
	char path[4096];
	int fd, rc;
	double c0, t0;

	snprintf(path, sizeof(path), "%s/bench_write.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "bench_write: cannot create a file in %s: %s\n", dir,
		        strerror(errno));
		return -1;
	}
	unlink(path);
	if (fallocate(fd, 0, 0, (off_t)(blocks * block)) < 0) {
		fprintf(stderr, "bench_write: cannot reserve %llu MiB in %s: %s\n",
		        (unsigned long long)(blocks * block >> 20), dir, strerror(errno));
		close(fd);
		return -1;
	}
	c0 = cpu_s();
	t0 = now_s();
	rc = method == 0 ? write_pwrite(fd, bufs, 4, block, blocks)
	                 : write_uring(fd, bufs, (unsigned)method, block, blocks);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -1;
	r->cpu_s = cpu_s() - c0;
	r->wall_s = now_s() - t0;
	close(fd);
	if (rc < 0)
		fprintf(stderr, "bench_write: writing failed: %s\n", strerror(errno));
	return rc;
}

int main(int argc, char **argv)
{
	static const char *names[] = {"pwrite", "io_uring, 1 in flight", "", "",
	                              "io_uring, 4 in flight"};
	static const int methods[] = {0, 1, 4};
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 1024;
	size_t block = argc > 3 ? strtoul(argv[3], NULL, 10) : 181248;
	unsigned rounds = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 3;
	uint8_t *bufs[4];
	uint64_t blocks;
	struct range rg[3];

	if (argc < 2 || mib == 0 || block == 0 || rounds == 0) {
		fprintf(stderr, "usage: bench_write DIR [MIB [BLOCK_BYTES [ROUNDS]]]\n");
		return 2;
	}
	blocks = (mib << 20) / block;
	for (unsigned i = 0; i < 4; i++) {
		bufs[i] = malloc(block);
		if (!bufs[i])
			return 1;
		for (size_t j = 0; j < block; j++)
			bufs[i][j] = (uint8_t)(rand() >> 7);
	}
	for (unsigned m = 0; m < 3; m++)
		rg[m] = (struct range){{1e9, 1e9}, {0, 0}};
	printf("staging writes: %llu blocks of %zu bytes (%llu MiB) into %s, %u rounds; "
	       "lowest and highest round of each\n",
	       (unsigned long long)blocks, block, (unsigned long long)(blocks * block >> 20),
	       argv[1], rounds);
	for (unsigned r = 0; r < rounds; r++)
		for (unsigned m = 0; m < 3; m++) {
			struct result x;
			if (run(argv[1], methods[m], bufs, block, blocks, &x) < 0)
				return 1;
			if (x.cpu_s < rg[m].lo.cpu_s)
				rg[m].lo.cpu_s = x.cpu_s;
			if (x.cpu_s > rg[m].hi.cpu_s)
				rg[m].hi.cpu_s = x.cpu_s;
			if (x.wall_s < rg[m].lo.wall_s)
				rg[m].lo.wall_s = x.wall_s;
			if (x.wall_s > rg[m].hi.wall_s)
				rg[m].hi.wall_s = x.wall_s;
		}
	for (unsigned m = 0; m < 3; m++)
		printf("  %-22s CPU %.3f-%.3f s (lowest %.2fx pwrite's)   wall %.3f-%.3f s\n",
		       names[methods[m]], rg[m].lo.cpu_s, rg[m].hi.cpu_s,
		       rg[m].lo.cpu_s / rg[0].lo.cpu_s, rg[m].lo.wall_s, rg[m].hi.wall_s);
	for (unsigned i = 0; i < 4; i++)
		free(bufs[i]);
	return 0;
}
