/* SPDX-License-Identifier: MIT */
/* The paced transmit path (sender/udp.c) over loopback, on each of its three
 * ways out: GSO through io_uring, GSO with plain sendmsg, and sendmmsg.
 * Every frame arrives once, whole and in order; GSO batches are counted as
 * one submission each; the token bucket never lets a transfer finish sooner
 * than its rate allows (a lower bound only: an upper bound would be a timed
 * test on a shared machine); a refused send is reported once, then
 * forgotten. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "sender/udp.h"

#define FRAME   1400u
#define FRAMES  2000u
#define PER_RUN 37u /* frames per udp_tx_send, under one GSO batch's 46 */
#define BATCHES ((FRAMES + PER_RUN - 1) / PER_RUN)

struct sink {
	int fd;
	struct sockaddr_storage addr;
	socklen_t len;
};

static void sink_open(struct sink *s)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&s->addr;
	int buf = 64 << 20;
	struct timeval tv = {.tv_sec = 10};

	s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
		(void)setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	assert_int_equal(setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	memset(&s->addr, 0, sizeof(s->addr));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->len = sizeof(*in);
	assert_int_equal(bind(s->fd, (struct sockaddr *)in, s->len), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)in, &s->len), 0);
}

static void fill(uint8_t *f, uint32_t i)
{
	for (unsigned k = 0; k < FRAME; k++)
		f[k] = (uint8_t)(i * 131u + k * 7u);
	memcpy(f, &i, sizeof(i));
}

/* The sink drains the socket while the sender sends, so that no socket
 * buffer limit (an unprivileged test gets no SO_RCVBUFFORCE) drops frames. */
struct check {
	struct sink *s;
	uint32_t received;
	int error; /* 0, or what went wrong first: 1 size, 2 content, 3 timeout */
};

static void *drain(void *arg)
{
	static uint8_t got[FRAME + 1], want[FRAME];
	struct check *c = arg;

	while (c->received < FRAMES && !c->error) {
		ssize_t r = recv(c->s->fd, got, sizeof(got), 0);
		if (r < 0) {
			c->error = 3;
			break;
		}
		fill(want, c->received);
		if (r != FRAME)
			c->error = 1; /* one frame per datagram, never merged */
		else if (memcmp(got, want, FRAME) != 0)
			c->error = 2; /* in order, intact */
		else
			c->received++;
	}
	return NULL;
}

/* Send FRAMES numbered frames at rate, through the way `flags` selects,
 * and check what the sink receives. Returns the send's duration in ns. */
static uint64_t run(unsigned flags, uint64_t rate, struct udp_tx *tx)
{
	static uint8_t frames[PER_RUN][FRAME], extra[FRAME + 1];
	uint8_t *ptr[PER_RUN];
	struct sink s;
	struct check c = {.s = &s};
	pthread_t th;
	char err[256];
	uint64_t t0;

	sink_open(&s);
	assert_int_equal(pthread_create(&th, NULL, drain, &c), 0);
	assert_int_equal(udp_tx_open(tx, &s.addr, s.len, rate, flags, err, sizeof(err)), 0);
	t0 = now_ns();
	for (uint32_t i = 0; i < FRAMES; i += PER_RUN) {
		unsigned n = FRAMES - i < PER_RUN ? FRAMES - i : PER_RUN;
		for (unsigned k = 0; k < n; k++) {
			fill(frames[k], i + k);
			ptr[k] = frames[k];
		}
		assert_int_equal(udp_tx_send(tx, ptr, n, FRAME), 0);
	}
	assert_int_equal(udp_tx_flush(tx), 0);
	t0 = now_ns() - t0;
	pthread_join(th, NULL);
	assert_int_equal(c.error, 0);
	assert_int_equal(c.received, FRAMES);
	assert_int_equal(recv(s.fd, extra, sizeof(extra), MSG_DONTWAIT), -1); /* no duplicate */
	assert_int_equal(tx->datagrams, FRAMES);
	close(s.fd);
	return t0;
}

static void test_gso_uring(void **state)
{
	struct udp_tx tx;

	(void)state;
	run(UDP_TX_GSO | UDP_TX_URING, 2000000000ull, &tx);
	/* io_uring works here (kernel 5.6+, no seccomp in the test), so the
	 * sends went through it: one io_uring_enter per batch, and each
	 * udp_tx_send of PER_RUN frames is one batch (a retried send adds
	 * one plain sendmsg). */
	assert_true(tx.use_uring);
	assert_true(tx.use_gso);
	assert_true(tx.syscalls >= BATCHES);
	assert_true(tx.syscalls <= 2 * BATCHES);
	udp_tx_close(&tx);
}

static void test_gso_plain(void **state)
{
	struct udp_tx tx;

	(void)state;
	run(UDP_TX_GSO, 2000000000ull, &tx);
	assert_false(tx.use_uring);
	assert_true(tx.use_gso);
	udp_tx_close(&tx);
}

static void test_sendmmsg(void **state)
{
	struct udp_tx tx;

	(void)state;
	run(UDP_TX_URING, 2000000000ull, &tx); /* io_uring is for GSO only */
	assert_false(tx.use_gso);
	udp_tx_close(&tx);
}

/* 2000 frames of 1428 wire bytes at 200 Mb/s take at least 114 ms, less
 * the 2 ms the bucket may bank; both ways of sleeping honour it. */
static void test_pacing_floor(void **state)
{
	const uint64_t rate = 200000000ull;
	const uint64_t floor_ns = (uint64_t)FRAMES * (FRAME + 28) * 8 * 1000000000ull / rate;
	struct udp_tx tx;

	(void)state;
	assert_true(run(UDP_TX_GSO | UDP_TX_URING, rate, &tx) + 3000000 >= floor_ns);
	assert_true(tx.use_uring);
	udp_tx_close(&tx);
	assert_true(run(UDP_TX_GSO, rate, &tx) + 3000000 >= floor_ns);
	udp_tx_close(&tx);
}

/* A send the kernel refuses (broadcast without SO_BROADCAST: EACCES, not a
 * transient "queue full") is reported by the next flush and then
 * forgotten, so a later transfer on the same socket tries afresh; until
 * the flush every queueing call returns it. On each way out. */
static void test_error_cleared_by_flush(void **state)
{
	static const unsigned ways[] = {UDP_TX_GSO | UDP_TX_URING, UDP_TX_GSO, 0};
	struct sockaddr_in bc = {.sin_family = AF_INET, .sin_port = htons(9)};
	uint8_t frame[FRAME] = {0}, *ptr[2] = {frame, frame};
	struct udp_tx tx;
	char err[256];
	int rc = 0, e;

	(void)state;
	bc.sin_addr.s_addr = htonl(INADDR_BROADCAST);
	for (unsigned w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
		assert_int_equal(udp_tx_open(&tx, (struct sockaddr_storage *)&bc, sizeof(bc),
		                             1000000000ull, ways[w], err, sizeof(err)),
		                 0);
		assert_int_equal(udp_tx_send(&tx, ptr, 2, FRAME), 0);
		e = udp_tx_flush(&tx);
		/* EACCES; ENETUNREACH where no interface takes a broadcast */
		assert_true(e == -EACCES || e == -ENETUNREACH);
		assert_int_equal(udp_tx_flush(&tx), 0); /* forgotten */
		assert_int_equal(udp_tx_send(&tx, ptr, 2, FRAME), 0);
		/* the transmit thread fails it; queueing sees that, sticky */
		for (int i = 0; i < 1000 && rc == 0; i++) {
			usleep(1000);
			rc = udp_tx_send(&tx, ptr, 1, FRAME);
		}
		assert_int_equal(rc, e);
		assert_int_equal(udp_tx_send(&tx, ptr, 1, FRAME), e);
		assert_int_equal(udp_tx_flush(&tx), e);
		assert_int_equal(udp_tx_send(&tx, ptr, 1, FRAME), 0);
		rc = 0;
		udp_tx_close(&tx); /* with that send's error pending: no hang */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gso_uring),
	    cmocka_unit_test(test_gso_plain),
	    cmocka_unit_test(test_sendmmsg),
	    cmocka_unit_test(test_pacing_floor),
	    cmocka_unit_test(test_error_cleared_by_flush),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
