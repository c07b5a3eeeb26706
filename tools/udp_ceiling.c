/* SPDX-License-Identifier: MIT */
/* udp_ceiling: the raw UDP ceiling of a path, for tools/bench.sh. No FEC, no
 * crypto, no file: how many datagrams of a given size one core can push with
 * UDP GSO and another core can take with recvmmsg.
 *
 *   send: fill once → [pace] → sendmsg(UDP_SEGMENT, 64 KB) → repeat   prints sent line
 *   sink: recvmmsg(64) → count → idle stop                            prints received line
 *   sink --record FILE: the same, keeping every datagram in FILE
 *   replay: FILE → [pace] → sendmsg(UDP_SEGMENT over runs of equal size)   prints sent line
 *
 * record + replay let bench.sh measure sluice-recv alone: a real sluice-send
 * run is recorded once at a rate the pair sustains, then played back to a
 * fresh receiver at higher rates by a sender that costs almost nothing.
 *
 * Both print one key=value line. The sink times from its first datagram to
 * its last, so it also measures the wire rate of any other sender (bench.sh
 * points sluice-send at it to check pacing). "wire" counts IP + UDP headers
 * (28 bytes for IPv4, 48 for IPv6) as sluice-send's token bucket does.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define EXIT_USAGE  2
#define BATCH       64
#define MAX_PAYLOAD 65507
#define GSO_BYTES   65000   /* one GSO super-datagram must fit a UDP length */
#define SINK_BUF    65536   /* room for a GRO-coalesced datagram */
#define PACE_SLACK  2000000 /* ns of credit the bucket may bank, as sender/udp.c */

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = {.tv_sec = (time_t)(t / 1000000000u),
	                      .tv_nsec = (long)(t % 1000000000u)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stopping)
		;
}

static _Noreturn void usage(int status)
{
	fprintf(
	    status ? stderr : stdout,
	    "usage: udp_ceiling send --to HOST:PORT [--size N] [--seconds S | --bytes N]\n"
	    "                        [--rate RATE] [--no-gso]\n"
	    "       udp_ceiling sink --listen HOST:PORT [--idle-ms MS] [--max-seconds S]\n"
	    "                        [--rcvbuf BYTES] [--gro] [--record FILE] [--min-size N]\n"
	    "       udp_ceiling replay --to HOST:PORT --file FILE [--rate RATE] [--cut BACK:N]\n"
	    "\n"
	    "  --size N        UDP payload bytes per datagram (default 1472, MTU 1500)\n"
	    "  --rate RATE     wire bit/s incl. IP+UDP headers, e.g. 900m, 3g (default: unpaced)\n"
	    "  --no-gso        one sendmmsg of 64 datagrams instead of UDP_SEGMENT batches\n"
	    "  --idle-ms MS    sink stops MS after its last datagram (default 1000)\n"
	    "  --gro           sink enables UDP_GRO (coalesced receive)\n"
	    "  --record FILE   sink writes each datagram to FILE (4-byte length, bytes)\n"
	    "  --min-size N    sink leaves datagrams under N bytes out of its counts and its\n"
	    "                  time window (sluice's END frames, which trail the data)\n"
	    "  --file FILE     replay sends the datagrams of a --record file, in order\n"
	    "  --cut BACK:N    replay leaves out N datagrams from BACK before the end\n");
	exit(status);
}

/* "900m", "2.5g", "64m" (sizes with --bytes/--rcvbuf are decimal too). */
static int parse_num(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	switch (*end) {
	case 'k':
	case 'K':
		v *= 1e3;
		end++;
		break;
	case 'm':
	case 'M':
		v *= 1e6;
		end++;
		break;
	case 'g':
	case 'G':
		v *= 1e9;
		end++;
		break;
	default:
		break;
	}
	if (end == s || *end || v < 0)
		return -1;
	*out = v;
	return 0;
}

static int resolve(const char *hostport, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai;
	size_t hl;

	if (!colon || colon == hostport || (hl = (size_t)(colon - hostport)) >= sizeof(host))
		return -1;
	memcpy(host, hostport, hl);
	host[hl] = 0;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

struct opts {
	const char *addr;
	const char *file; /* sink: record to; replay: play from */
	size_t size;
	double seconds, bytes, rate, rcvbuf;
	int idle_ms, gso, gro;
	size_t min_size;        /* sink: datagrams shorter than this are not counted */
	size_t cut_back, cut_n; /* replay: leave out cut_n datagrams from cut_back before the end */
};

static void print_rate(const char *what, uint64_t n, uint64_t bytes, unsigned hdr, double secs,
                       const char *extra)
{
	double s = secs > 0 ? secs : 1e-9;

	printf("%s=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f pps=%.0f gbps=%.4f "
	       "wire_gbps=%.4f%s\n",
	       what, n, bytes, secs, (double)n / s, (double)bytes * 8 / s / 1e9,
	       (double)(bytes + n * hdr) * 8 / s / 1e9, extra);
}

/* Ask the kernel to cut msg's payload into datagrams of seg bytes. */
static void set_gso(struct msghdr *msg, char *control, size_t len, uint16_t seg)
{
	msg->msg_control = control;
	msg->msg_controllen = len;
	struct cmsghdr *cm = CMSG_FIRSTHDR(msg);
	cm->cmsg_level = SOL_UDP;
	cm->cmsg_type = UDP_SEGMENT;
	cm->cmsg_len = CMSG_LEN(sizeof(seg));
	memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
}

/* Token bucket: wait until `bits` more may go at `rate` bit/s. */
static void pace(uint64_t *t_next, double rate, double bits)
{
	uint64_t now = now_ns();

	if (*t_next + PACE_SLACK < now)
		*t_next = now - PACE_SLACK;
	if (*t_next > now)
		sleep_until(*t_next);
	*t_next += (uint64_t)(bits * 1e9 / rate);
}

static int do_send(const struct opts *o)
{
	struct sockaddr_storage dst;
	socklen_t dlen;
	int sndbuf = 8 << 20;
	unsigned hdr, per;
	uint8_t *buf;
	uint64_t sent = 0, bytes = 0, calls = 0, t0, t_next, deadline = UINT64_MAX;
	char extra[64];

	if (resolve(o->addr, &dst, &dlen) < 0) {
		fprintf(stderr, "udp_ceiling: cannot resolve %s\n", o->addr);
		return EXIT_USAGE;
	}
	hdr = dst.ss_family == AF_INET6 ? 48 : 28;
	int fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("udp_ceiling: socket");
		return 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	per = o->gso ? (unsigned)(GSO_BYTES / o->size) : BATCH;
	if (per < 1)
		per = 1;
	if (per > BATCH)
		per = BATCH;
	buf = calloc(BATCH, o->size);
	if (!buf) {
		perror("udp_ceiling");
		close(fd);
		return 1;
	}
	for (size_t i = 0; i < BATCH * o->size; i++)
		buf[i] = (uint8_t)(i * 131 + 7); /* not all zero; content is irrelevant */

	struct iovec iov[BATCH];
	struct mmsghdr mm[BATCH];
	char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
	struct msghdr msg = {
	    .msg_name = &dst, .msg_namelen = dlen, .msg_iov = iov, .msg_iovlen = 1};

	for (unsigned i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){.iov_base = buf + i * o->size, .iov_len = o->size};
		mm[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &dst,
		                                     .msg_namelen = dlen,
		                                     .msg_iov = &iov[i],
		                                     .msg_iovlen = 1}};
	}
	if (o->gso) {
		/* One iovec over `per` contiguous datagrams, cut by the kernel. */
		iov[0].iov_len = per * o->size;
		set_gso(&msg, control, sizeof(control), (uint16_t)o->size);
	}

	t0 = t_next = now_ns();
	if (o->seconds > 0)
		deadline = t0 + (uint64_t)(o->seconds * 1e9);
	while (!stopping) {
		uint64_t now = now_ns();
		if (now >= deadline || (o->bytes > 0 && (double)bytes >= o->bytes))
			break;
		if (o->rate > 0)
			pace(&t_next, o->rate, (double)(per * (o->size + hdr)) * 8);
		ssize_t rc;
		if (o->gso) {
			rc = sendmsg(fd, &msg, 0);
			if (rc >= 0)
				rc = per;
		} else {
			rc = sendmmsg(fd, mm, per, 0);
		}
		if (rc < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR ||
			    errno == ECONNREFUSED)
				continue;
			perror("udp_ceiling: send");
			break;
		}
		calls++;
		sent += (uint64_t)rc;
		bytes += (uint64_t)rc * o->size;
	}
	snprintf(extra, sizeof(extra), " syscalls=%" PRIu64 " gso=%d", calls, o->gso);
	print_rate("sent", sent, bytes, hdr, (double)(now_ns() - t0) / 1e9, extra);
	free(buf);
	close(fd);
	return 0;
}

static int do_sink(const struct opts *o)
{
	struct sockaddr_storage addr;
	socklen_t alen;
	int rcvbuf = (int)o->rcvbuf, on = 1;
	unsigned hdr;
	uint8_t *buf;
	uint64_t n = 0, bytes = 0, first = 0, last = 0, last_any = 0, start = now_ns();
	struct iovec iov[BATCH];
	struct mmsghdr mm[BATCH];
	char ctl[BATCH][CMSG_SPACE(sizeof(int))];

	if (resolve(o->addr, &addr, &alen) < 0) {
		fprintf(stderr, "udp_ceiling: cannot resolve %s\n", o->addr);
		return EXIT_USAGE;
	}
	hdr = addr.ss_family == AF_INET6 ? 48 : 28;
	int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		perror("udp_ceiling: socket");
		return 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (o->gro && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof(on)) < 0)
		perror("udp_ceiling: UDP_GRO (continuing without)");
	if (bind(fd, (struct sockaddr *)&addr, alen) < 0) {
		perror("udp_ceiling: bind");
		close(fd);
		return 1;
	}
	buf = malloc((size_t)BATCH * SINK_BUF);
	if (!buf) {
		perror("udp_ceiling");
		close(fd);
		return 1;
	}
	FILE *rec = NULL;
	if (o->file && !(rec = fopen(o->file, "wb"))) {
		perror("udp_ceiling: --record");
		free(buf);
		close(fd);
		return 1;
	}
	if (rec)
		setvbuf(rec, NULL, _IOFBF, 4 << 20);
	/* Tell bench.sh we are bound: it waits for this line. */
	fprintf(stderr, "udp_ceiling: listening on %s\n", o->addr);

	while (!stopping) {
		for (unsigned i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){.iov_base = buf + (size_t)i * SINK_BUF,
			                        .iov_len = SINK_BUF};
			mm[i] = (struct mmsghdr){
			    .msg_hdr = {.msg_iov = &iov[i],
			                .msg_iovlen = 1,
			                .msg_control = o->gro ? ctl[i] : NULL,
			                .msg_controllen = o->gro ? sizeof(ctl[i]) : 0}};
		}
		int rc = recvmmsg(fd, mm, BATCH, MSG_DONTWAIT, NULL);
		uint64_t now = now_ns();
		if (rc < 0 && (errno == EAGAIN || errno == EINTR)) {
			int wait_ms = o->idle_ms;
			if (last_any && now - last_any >= (uint64_t)o->idle_ms * 1000000u)
				break;
			if (!n && o->seconds > 0 && now - start > (uint64_t)(o->seconds * 1e9))
				break;
			if (last_any)
				wait_ms = o->idle_ms - (int)((now - last_any) / 1000000u);
			struct pollfd p = {.fd = fd, .events = POLLIN};
			(void)poll(&p, 1, wait_ms > 0 ? wait_ms : 1);
			continue;
		}
		if (rc < 0) {
			perror("udp_ceiling: recvmmsg");
			break;
		}
		last_any = now;
		for (int i = 0; i < rc; i++) {
			uint64_t len = mm[i].msg_len, segs = 1, seglen = len;
			if (o->gro) {
				struct msghdr *h = &mm[i].msg_hdr;
				for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
					if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
						int gs;
						memcpy(&gs, CMSG_DATA(c), sizeof(gs));
						if (gs > 0) {
							segs =
							    (len + (uint64_t)gs - 1) / (uint64_t)gs;
							seglen = (uint64_t)gs;
						}
					}
			}
			for (uint64_t off = 0; rec && off < len; off += seglen) {
				uint32_t l = (uint32_t)(len - off < seglen ? len - off : seglen);
				if (fwrite(&l, sizeof(l), 1, rec) != 1 ||
				    fwrite(buf + (size_t)i * SINK_BUF + off, l, 1, rec) != 1) {
					perror("udp_ceiling: --record");
					stopping = 1;
					break;
				}
			}
			if (seglen < o->min_size)
				continue;
			if (!n)
				first = now;
			last = now;
			n += segs;
			bytes += len;
		}
		if (n && o->seconds > 0 && now - first > (uint64_t)(o->seconds * 1e9))
			break;
	}
	print_rate("received", n, bytes, hdr, (double)(last - first) / 1e9, "");
	if (rec && fclose(rec) != 0) {
		perror("udp_ceiling: --record");
		free(buf);
		close(fd);
		return 1;
	}
	free(buf);
	close(fd);
	return 0;
}

/* Remove n datagrams of a recording, starting back datagrams before its
 * end: a loss burst at a chosen place (tests/integration/test_tailburst.sh).
 * Returns the new length. */
static size_t cut_datagrams(uint8_t *data, size_t len, size_t back, size_t n)
{
	size_t total = 0, i = 0, p = 0, from = 0, to = 0;
	uint32_t l;

	for (p = 0; p + 4 <= len; p += 4 + l, total++)
		memcpy(&l, data + p, sizeof(l));
	if (back > total)
		back = total;
	for (p = 0; p + 4 <= len; p += 4 + l, i++) {
		memcpy(&l, data + p, sizeof(l));
		if (i == total - back)
			from = p;
		if (i == total - back + n)
			to = p;
	}
	if (total - back + n >= total)
		to = len;
	if (to <= from)
		return len;
	memmove(data + from, data + to, len - to);
	fprintf(stderr, "udp_ceiling: left out %zu datagrams from %zu before the end\n", n, back);
	return len - (to - from);
}

/* Play back a --record file: runs of equal-sized datagrams (at most one
 * GSO super-datagram) in one sendmsg, paced like do_send. */
static int do_replay(const struct opts *o)
{
	struct sockaddr_storage dst;
	socklen_t dlen;
	int sndbuf = 8 << 20;
	unsigned hdr;
	uint8_t *data = NULL;
	size_t cap = 0, len = 0, pos = 0;
	uint64_t sent = 0, bytes = 0, calls = 0, t0, t_next;
	FILE *f;
	char extra[64];

	if (resolve(o->addr, &dst, &dlen) < 0) {
		fprintf(stderr, "udp_ceiling: cannot resolve %s\n", o->addr);
		return EXIT_USAGE;
	}
	if (!(f = fopen(o->file, "rb"))) {
		perror("udp_ceiling: --file");
		return 1;
	}
	for (;;) { /* the whole recording in memory, so disk reads cost nothing */
		if (len == cap) {
			uint8_t *p = realloc(data, cap = cap ? cap * 2 : 64u << 20);
			if (!p) {
				perror("udp_ceiling");
				free(data);
				fclose(f);
				return 1;
			}
			data = p;
		}
		size_t got = fread(data + len, 1, cap - len, f);
		if (got == 0)
			break;
		len += got;
	}
	fclose(f);
	if (o->cut_n)
		len = cut_datagrams(data, len, o->cut_back, o->cut_n);
	hdr = dst.ss_family == AF_INET6 ? 48 : 28;
	int fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("udp_ceiling: socket");
		free(data);
		return 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

	t0 = t_next = now_ns();
	while (!stopping && pos + 4 <= len) {
		struct iovec iov[BATCH];
		char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
		struct msghdr msg = {.msg_name = &dst, .msg_namelen = dlen, .msg_iov = iov};
		uint32_t l0, l;
		unsigned n = 0;
		size_t p = pos;

		memcpy(&l0, data + p, sizeof(l0));
		while (n < BATCH && p + 4 <= len && (n + 1) * (size_t)l0 <= GSO_BYTES) {
			memcpy(&l, data + p, sizeof(l));
			if (l != l0 || p + 4 + l > len)
				break;
			iov[n++] = (struct iovec){.iov_base = data + p + 4, .iov_len = l};
			p += 4 + l;
		}
		if (n == 0) {
			fprintf(stderr, "udp_ceiling: %s is damaged at byte %zu\n", o->file, pos);
			break;
		}
		msg.msg_iovlen = n;
		if (n > 1)
			set_gso(&msg, control, sizeof(control), (uint16_t)l0);
		if (o->rate > 0)
			pace(&t_next, o->rate, (double)(n * ((uint64_t)l0 + hdr)) * 8);
		if (sendmsg(fd, &msg, 0) < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR ||
			    errno == ECONNREFUSED)
				continue; /* the same run again */
			perror("udp_ceiling: send");
			break;
		}
		calls++;
		sent += n;
		bytes += (uint64_t)n * l0;
		pos = p;
	}
	snprintf(extra, sizeof(extra), " syscalls=%" PRIu64 " gso=1", calls);
	print_rate("sent", sent, bytes, hdr, (double)(now_ns() - t0) / 1e9, extra);
	free(data);
	close(fd);
	return pos == len ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"to", required_argument, NULL, 't'},
	                                         {"listen", required_argument, NULL, 'l'},
	                                         {"size", required_argument, NULL, 's'},
	                                         {"seconds", required_argument, NULL, 'S'},
	                                         {"bytes", required_argument, NULL, 'b'},
	                                         {"rate", required_argument, NULL, 'r'},
	                                         {"no-gso", no_argument, NULL, 'G'},
	                                         {"gro", no_argument, NULL, 'g'},
	                                         {"idle-ms", required_argument, NULL, 'i'},
	                                         {"max-seconds", required_argument, NULL, 'S'},
	                                         {"rcvbuf", required_argument, NULL, 'B'},
	                                         {"record", required_argument, NULL, 'R'},
	                                         {"min-size", required_argument, NULL, 'm'},
	                                         {"file", required_argument, NULL, 'F'},
	                                         {"cut", required_argument, NULL, 'C'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	struct opts o = {.size = 1472, .idle_ms = 1000, .gso = 1, .rcvbuf = 64 << 20};
	double v;
	int c, send, replay;

	if (argc < 2)
		usage(EXIT_USAGE);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		usage(0);
	if (strcmp(argv[1], "send") && strcmp(argv[1], "sink") && strcmp(argv[1], "replay"))
		usage(EXIT_USAGE);
	send = !strcmp(argv[1], "send");
	replay = !strcmp(argv[1], "replay");
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
		case 'l':
			o.addr = optarg;
			break;
		case 's':
			if (parse_num(optarg, &v) < 0 || v < 1 || v > MAX_PAYLOAD)
				usage(EXIT_USAGE);
			o.size = (size_t)v;
			break;
		case 'S':
			if (parse_num(optarg, &o.seconds) < 0)
				usage(EXIT_USAGE);
			break;
		case 'b':
			if (parse_num(optarg, &o.bytes) < 0)
				usage(EXIT_USAGE);
			break;
		case 'r':
			if (parse_num(optarg, &o.rate) < 0)
				usage(EXIT_USAGE);
			break;
		case 'B':
			if (parse_num(optarg, &o.rcvbuf) < 0 || o.rcvbuf > 1 << 30)
				usage(EXIT_USAGE);
			break;
		case 'i':
			if (parse_num(optarg, &v) < 0 || v < 1 || v > 3600000)
				usage(EXIT_USAGE);
			o.idle_ms = (int)v;
			break;
		case 'G':
			o.gso = 0;
			break;
		case 'm':
			if (parse_num(optarg, &v) < 0 || v < 0 || v > MAX_PAYLOAD)
				usage(EXIT_USAGE);
			o.min_size = (size_t)v;
			break;
		case 'R':
		case 'F':
			o.file = optarg;
			break;
		case 'g':
			o.gro = 1;
			break;
		case 'C': {
			char *end;
			unsigned long long back = strtoull(optarg, &end, 10), n;
			if (end == optarg || *end != ':')
				usage(EXIT_USAGE);
			n = strtoull(end + 1, &end, 10);
			if (*end || n == 0 || n > back)
				usage(EXIT_USAGE);
			o.cut_back = (size_t)back;
			o.cut_n = (size_t)n;
			break;
		}
		case 'h':
			usage(0);
		default:
			usage(EXIT_USAGE);
		}
	}
	if (!o.addr || optind != argc || (send && o.seconds <= 0 && o.bytes <= 0) ||
	    (replay && !o.file) || (send && o.file) || (!replay && o.cut_n))
		usage(EXIT_USAGE);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return replay ? do_replay(&o) : send ? do_send(&o) : do_sink(&o);
}
