/* SPDX-License-Identifier: MIT */
/* udp_blast: the traffic source and sink for the UDP integration tests.
 *
 *   send: number → fill → sendmmsg (paced to --rate)        prints sent=N
 *   sink: recvmmsg → classify → count / record → idle stop   prints received=N distinct=M ...
 *
 * The sink prints one line, "received=N distinct=M corrupted=C onebit=B
 * truncated=T duplicates=D out_of_order=O kernel_dropped=K": corrupted counts
 * full-length datagrams whose bytes differ (onebit of them by exactly one bit),
 * truncated those shorter than sent, and distinct, duplicates and out_of_order
 * count intact datagrams only.
 *
 * Each datagram is self-checking, so the sink can tell intact, corrupted and
 * truncated datagrams apart without knowing what was sent (little-endian):
 *
 *    0               8       12      16                       size
 *   +---------------+-------+-------+------------------------+
 *   | seq (u64)     | size  | check | pattern(seq, offset)... |
 *   +---------------+-------+-------+------------------------+
 *
 * check = low 32 bits of mix64(seq, size).  A datagram with one flipped bit is
 * recognised as such even when the bit is in the header: the sink tries each
 * of the 128 header bits and accepts a repair only if the payload then matches.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define BATCH      64
#define HDR_LEN    16
#define MAX_SIZE   65507 /* largest IPv4 UDP payload */
#define DGRAM_BUF  65536
#define MAX_SEQ    (1u << 28) /* bounds the sink's seen-bitmap to 32 MiB */
#define SOCK_BUF   (32 << 20)

static const char *prog = "udp_blast";
static volatile sig_atomic_t stop_signal;

static _Noreturn __attribute__((format(printf, 1, 2))) void die_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr,
	        "\nusage: %s send --to ADDR:PORT --count N --size L [--rate PPS]\n"
	        "       %s sink --listen ADDR:PORT [--idle MS] [--wait MS] [--record FILE]\n",
	        prog, prog);
	exit(EXIT_USAGE);
}

static _Noreturn __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- datagram format ---- */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t check_of(uint64_t seq, uint32_t size)
{
	return (uint32_t)mix64(seq ^ mix64((uint64_t)size ^ 0x736c75696365u));
}

static uint8_t pattern(uint64_t key, size_t i)
{
	return (uint8_t)(key >> (8 * (i & 7))) ^ (uint8_t)(i >> 3);
}

static void fill(uint8_t *b, uint64_t seq, size_t size)
{
	uint64_t key = mix64(seq + 1);

	put_le(b, seq, 8);
	put_le(b + 8, size, 4);
	put_le(b + 12, check_of(seq, (uint32_t)size), 4);
	for (size_t i = HDR_LEN; i < size; i++)
		b[i] = pattern(key, i);
}

/* Bits by which the payload differs from seq's pattern, counted up to 2. */
static int payload_diff(const uint8_t *b, size_t n, uint64_t seq)
{
	uint64_t key = mix64(seq + 1);
	int bits = 0;

	for (size_t i = HDR_LEN; i < n && bits < 2; i++)
		bits += __builtin_popcount((unsigned)(b[i] ^ pattern(key, i)));
	return bits;
}

static bool header_ok(const uint8_t *h)
{
	return get_le(h + 12, 4) == check_of(get_le(h, 8), (uint32_t)get_le(h + 8, 4));
}

enum verdict { V_INTACT, V_ONEBIT, V_CORRUPT, V_TRUNCATED };

/* A corrupt header with an intact payload: is it exactly one bit away from valid? */
static bool header_one_bit_off(const uint8_t *b, size_t n)
{
	uint8_t h[HDR_LEN];

	memcpy(h, b, HDR_LEN);
	for (int bit = 0; bit < 8 * HDR_LEN; bit++) {
		h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (header_ok(h) && get_le(h + 8, 4) == n && payload_diff(b, n, get_le(h, 8)) == 0)
			return true;
		h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	return false;
}

static enum verdict classify(const uint8_t *b, size_t n, uint64_t *seq)
{
	uint64_t size;

	if (n < HDR_LEN)
		return V_TRUNCATED;
	if (!header_ok(b))
		return header_one_bit_off(b, n) ? V_ONEBIT : V_CORRUPT;
	size = get_le(b + 8, 4);
	if (size > n)
		return V_TRUNCATED;
	if (size < n)
		return V_CORRUPT;
	*seq = get_le(b, 8);
	switch (payload_diff(b, n, *seq)) {
	case 0:
		return V_INTACT;
	case 1:
		return V_ONEBIT;
	default:
		return V_CORRUPT;
	}
}

/* ---- common ---- */

static uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end = NULL;
	unsigned long long v = 0;

	errno = 0;
	if (*s >= '0' && *s <= '9')
		v = strtoull(s, &end, 10);
	if (!end || *end != '\0' || errno != 0 || v < min || v > max)
		die_usage("%s must be a whole number from %" PRIu64 " to %" PRIu64 ", not '%s'",
		          opt, min, max, s);
	return v;
}

static int resolve(const char *spec, bool passive, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	char host[NI_MAXHOST];
	const char *colon, *h = spec;
	size_t n;
	int rc;

	if (*spec == '[') {
		colon = strchr(spec, ']');
		h = spec + 1;
		n = colon ? (size_t)(colon - h) : 0;
		colon = colon && colon[1] == ':' ? colon + 1 : NULL;
	} else {
		colon = strrchr(spec, ':');
		n = colon ? (size_t)(colon - spec) : 0;
	}
	if (!colon || colon[1] == '\0' || n >= sizeof host)
		die_usage("bad address '%s': expected ADDR:PORT or [IPv6]:PORT", spec);
	memcpy(host, h, n);
	host[n] = '\0';
	hints.ai_flags |= passive ? AI_PASSIVE : 0;
	rc = getaddrinfo(n ? host : NULL, colon + 1, &hints, &res);
	if (rc != 0)
		die_usage("cannot resolve '%s': %s", spec, gai_strerror(rc));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- send ---- */

struct send_opts {
	const char *to;
	uint64_t count, size, rate;
};

/* Send msgs[0..n) in full; a full buffer is waited out, not skipped. */
static void send_all(int fd, struct mmsghdr *msgs, unsigned n)
{
	unsigned done = 0;

	while (done < n) {
		int rc = sendmmsg(fd, msgs + done, n - done, 0);

		if (rc > 0) {
			done += (unsigned)rc;
		} else if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
			struct timespec nap = {0, 100 * 1000};

			nanosleep(&nap, NULL);
		} else {
			die("cannot send: %s", strerror(errno));
		}
	}
}

/* Pace by sending however many datagrams are due by now, up to BATCH at once. */
static void blast(int fd, struct sockaddr_storage *ss, socklen_t len, const struct send_opts *o)
{
	static struct mmsghdr msgs[BATCH];
	static struct iovec iov[BATCH];
	uint8_t *bufs = malloc(BATCH * (size_t)o->size);
	double start = now_s();
	uint64_t sent = 0;

	if (!bufs)
		die("out of memory");
	while (sent < o->count) {
		uint64_t due =
		    o->rate ? (uint64_t)((now_s() - start) * (double)o->rate) + 1 : o->count;
		unsigned n;

		due = due > o->count ? o->count : due;
		if (due <= sent) {
			struct timespec nap = {0, 50 * 1000};

			nanosleep(&nap, NULL);
			continue;
		}
		n = due - sent > BATCH ? BATCH : (unsigned)(due - sent);
		for (unsigned i = 0; i < n; i++) {
			iov[i] = (struct iovec){bufs + i * o->size, o->size};
			fill(iov[i].iov_base, sent + i, o->size);
			msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_name = ss,
			                                       .msg_namelen = len,
			                                       .msg_iov = &iov[i],
			                                       .msg_iovlen = 1}};
		}
		send_all(fd, msgs, n);
		sent += n;
	}
	free(bufs);
	printf("sent=%" PRIu64 "\n", sent);
}

static int cmd_send(int argc, char **argv)
{
	static const struct option lo[] = {{"to", required_argument, NULL, 't'},
	                                   {"count", required_argument, NULL, 'n'},
	                                   {"size", required_argument, NULL, 's'},
	                                   {"rate", required_argument, NULL, 'r'},
	                                   {NULL, 0, NULL, 0}};
	struct send_opts o = {.size = 512};
	struct sockaddr_storage ss;
	socklen_t len;
	int opt, fd, bytes = SOCK_BUF;

	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (opt == 't')
			o.to = optarg;
		else if (opt == 'n')
			o.count = parse_num("--count", optarg, 0, MAX_SEQ);
		else if (opt == 's')
			o.size = parse_num("--size", optarg, HDR_LEN, MAX_SIZE);
		else if (opt == 'r')
			o.rate = parse_num("--rate", optarg, 0, 100000000);
		else
			die_usage("bad option for send");
	}
	if (!o.to || optind != argc)
		die_usage("send needs --to ADDR:PORT and no other arguments");
	fd = resolve(o.to, false, &ss, &len);
	if (fd < 0)
		die("cannot create a UDP socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
	blast(fd, &ss, len, &o);
	close(fd);
	return 0;
}

/* ---- sink ---- */

struct tally {
	uint64_t received, distinct, corrupted, onebit, truncated, duplicates, out_of_order;
	uint64_t kernel_dropped; /* by the kernel on our socket, as SO_RXQ_OVFL reports it */
	uint64_t max_seq;
	bool any;
	uint8_t *seen; /* MAX_SEQ bits, allocated lazily by calloc */
	FILE *record;
};

static void count(struct tally *t, const uint8_t *b, size_t n)
{
	uint64_t seq = 0;
	enum verdict v = classify(b, n, &seq);

	t->received++;
	t->corrupted += v == V_CORRUPT || v == V_ONEBIT;
	t->onebit += v == V_ONEBIT;
	t->truncated += v == V_TRUNCATED;
	if (v != V_INTACT)
		return;
	if (t->record)
		fprintf(t->record, "%" PRIu64 "\n", seq);
	if (t->any && seq < t->max_seq)
		t->out_of_order++;
	if (!t->any || seq > t->max_seq)
		t->max_seq = seq;
	t->any = true;
	if (seq >= MAX_SEQ || (t->seen[seq / 8] & (1u << (seq % 8)))) {
		t->duplicates++;
		return;
	}
	t->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
	t->distinct++;
}

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void announce(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		die("cannot read back the bound address: %s", strerror(errno));
	if (ss.ss_family == AF_INET6)
		fprintf(stderr, "%s: listening on [%s]:%s\n", prog, host, serv);
	else
		fprintf(stderr, "%s: listening on %s:%s\n", prog, host, serv);
}

/* Room for one SO_RXQ_OVFL control message, aligned as cmsg(3) requires. */
struct rx_control {
	_Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(uint32_t))];
};

static void arm_rx(struct mmsghdr *msgs, struct iovec *iov, struct rx_control *ctl, uint8_t *bufs)
{
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){bufs + (size_t)i * DGRAM_BUF, DGRAM_BUF};
		msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i],
		                                       .msg_iovlen = 1,
		                                       .msg_control = ctl[i].buf,
		                                       .msg_controllen = sizeof ctl[i]}};
	}
}

/* The test retries a run the kernel dropped datagrams in, so report them. */
static void note_kernel_drops(struct tally *t, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
			uint32_t drops;

			memcpy(&drops, CMSG_DATA(cm), sizeof drops);
			t->kernel_dropped = drops;
		}
	}
}

/* Receive until idle_ms of quiet after the first datagram (wait_ms before it). */
static void drain(int fd, struct tally *t, int idle_ms, int wait_ms)
{
	static struct mmsghdr msgs[BATCH];
	static struct iovec iov[BATCH];
	static struct rx_control ctl[BATCH];
	uint8_t *bufs = malloc((size_t)BATCH * DGRAM_BUF);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	double last = now_s();

	if (!bufs)
		die("out of memory");
	while (!stop_signal) {
		int limit = t->received ? idle_ms : wait_ms;
		int left = limit - (int)((now_s() - last) * 1000);
		int n;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, left > 100 ? 100 : left) <= 0)
			continue;
		arm_rx(msgs, iov, ctl, bufs);
		n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			die("cannot receive: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			note_kernel_drops(t, &msgs[i].msg_hdr);
			count(t, iov[i].iov_base, msgs[i].msg_len);
		}
		if (n > 0)
			last = now_s();
	}
	free(bufs);
}

static int cmd_sink(int argc, char **argv)
{
	static const struct option lo[] = {{"listen", required_argument, NULL, 'l'},
	                                   {"idle", required_argument, NULL, 'i'},
	                                   {"wait", required_argument, NULL, 'w'},
	                                   {"record", required_argument, NULL, 'r'},
	                                   {NULL, 0, NULL, 0}};
	const char *listen = NULL, *record = NULL;
	int idle = 500, wait = 10000, opt, fd, bytes = SOCK_BUF, one = 1;
	struct tally t = {0};
	struct sockaddr_storage ss;
	socklen_t len;
	struct sigaction sa = {.sa_handler = on_signal};

	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (opt == 'l')
			listen = optarg;
		else if (opt == 'i')
			idle = (int)parse_num("--idle", optarg, 1, 600000);
		else if (opt == 'w')
			wait = (int)parse_num("--wait", optarg, 1, 600000);
		else if (opt == 'r')
			record = optarg;
		else
			die_usage("bad option for sink");
	}
	if (!listen || optind != argc)
		die_usage("sink needs --listen ADDR:PORT and no other arguments");
	t.seen = calloc(MAX_SEQ / 8, 1);
	if (!t.seen)
		die("out of memory");
	if (record && !(t.record = fopen(record, "w")))
		die("cannot create %s: %s", record, strerror(errno));
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fd = resolve(listen, true, &ss, &len);
	if (fd < 0)
		die("cannot create a UDP socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
	(void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		die("cannot listen on %s: %s", listen, strerror(errno));
	announce(fd);
	drain(fd, &t, idle, wait);
	if (t.record && fclose(t.record) != 0)
		die("cannot write %s: %s", record, strerror(errno));
	printf("received=%" PRIu64 " distinct=%" PRIu64 " corrupted=%" PRIu64 " onebit=%" PRIu64
	       " truncated=%" PRIu64 " duplicates=%" PRIu64 " out_of_order=%" PRIu64
	       " kernel_dropped=%" PRIu64 "\n",
	       t.received, t.distinct, t.corrupted, t.onebit, t.truncated, t.duplicates,
	       t.out_of_order, t.kernel_dropped);
	free(t.seen);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die_usage("a mode is required");
	if (strcmp(argv[1], "send") == 0)
		return cmd_send(argc - 1, argv + 1);
	if (strcmp(argv[1], "sink") == 0)
		return cmd_sink(argc - 1, argv + 1);
	die_usage("unknown mode '%s'", argv[1]);
}
