/* SPDX-License-Identifier: MIT */
/* sluice-impair: a seeded, one-way UDP impairment proxy for integration tests.
 *
 *   recvmmsg(--listen) → burst-drop → drop → truncate → corrupt → duplicate
 *                      → [reorder: hold until N more datagrams or 50 ms idle]
 *                      → sendmmsg(--to)
 *
 * Every impairment draws from its own xoshiro256** stream, seeded from --seed
 * with splitmix64, and draws for every datagram whether or not an earlier
 * stage already dropped it.  So datagram k's fate under one impairment depends
 * only on the seed and on k: adding --duplicate to a run does not change which
 * datagrams --drop removes, and two runs with the same seed and the same input
 * make the same decisions.
 *
 * Datagrams leave through a second, unbound socket that is never read: nothing
 * is ever sent back towards the source, as on a real data diode.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
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

#include "common/util.h"

#define EXIT_RUNTIME   1
#define EXIT_USAGE     2
#define BATCH          64          /* datagrams per recvmmsg/sendmmsg */
#define DGRAM_BUF      65536       /* larger than any UDP payload (65535 - 8 - IP header) */
#define OUTQ_LEN       (4 * BATCH) /* queued copies before a forced send */
#define SOCK_BUF_BYTES (32 << 20)  /* asked of SO_RCVBUFFORCE / SO_SNDBUFFORCE */
#define IDLE_FLUSH_MS  50          /* release held datagrams after this much quiet */
#define STATS_EVERY_MS 1000
#define SEND_RETRY_MS  2000 /* how long one datagram may wait for buffer space */
#define MAX_DEPTH      4096 /* bounds held memory to MAX_DEPTH * 64 KiB */
#define MAX_BURST_LEN  1000000

static const char *prog = "sluice-impair";

enum stream { RNG_BURST, RNG_DROP, RNG_TRUNCATE, RNG_CORRUPT, RNG_DUPLICATE, RNG_REORDER, RNG_N };

struct opts {
	const char *listen;
	const char *to;
	const char *stats_path;
	uint64_t seed;
	double drop, burst, reorder, duplicate, corrupt, truncate; /* percent, 0..100 */
	unsigned long burst_len;
	unsigned long depth;
	bool quiet;
};

struct counters {
	uint64_t received, forwarded, dropped, burst_dropped, reordered, duplicated, corrupted,
	    truncated, send_errors, kernel_dropped;
};

struct rng {
	uint64_t s[4];
};

/* A datagram held back for reordering; released when datagram number `due` has arrived. */
struct held {
	uint8_t *buf;
	size_t len;
	int copies;
	uint64_t due;
};

/* One copy queued for sendmmsg; `owned` (a released held buffer) is freed once sent. */
struct out {
	struct iovec iov;
	uint8_t *owned;
};

/* Room for one SO_RXQ_OVFL control message, aligned as cmsg(3) requires. */
struct rx_control {
	_Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(uint32_t))];
};

struct ctx {
	struct opts o;
	int in_fd, out_fd;
	struct sockaddr_storage to;
	socklen_t to_len;
	struct rng rng[RNG_N];
	struct counters n;
	uint64_t burst_left;

	uint8_t *rx_buf; /* BATCH * DGRAM_BUF */
	struct mmsghdr rx_msg[BATCH];
	struct iovec rx_iov[BATCH];
	struct rx_control rx_ctl[BATCH];

	struct held *hold; /* ring of hold_cap entries */
	size_t hold_cap, hold_head, hold_n;

	struct out outq[OUTQ_LEN];
	struct mmsghdr tx_msg[OUTQ_LEN];
	size_t out_n;

	int64_t last_rx_ms, next_stats_ms;
	bool warned_send, warned_stats, warned_hold;
};

static volatile sig_atomic_t stop_signal;

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: %s --listen ADDR:PORT --to ADDR:PORT [options]\n"
	    "Forward every UDP datagram received on --listen to --to, impaired, one way.\n"
	    "ADDR is an IPv4 or [IPv6] literal or a host name; a --listen port of 0 picks one.\n"
	    "  --seed N              PRNG seed (default 1); same seed + same input = same fate\n"
	    "  --drop PCT            drop each datagram with probability PCT%%\n"
	    "  --burst-drop PCT      with probability PCT%% start a burst that drops ...\n"
	    "  --burst-len N         ... this one and the next N-1 (needed by --burst-drop)\n"
	    "  --reorder PCT         hold a datagram back with probability PCT%% ...\n"
	    "  --reorder-depth N     ... until N more have arrived, or 50 ms idle (default 8)\n"
	    "  --duplicate PCT       send a datagram twice\n"
	    "  --corrupt PCT         flip one random bit\n"
	    "  --truncate PCT        cut to a random shorter length (possibly 0)\n"
	    "  --stats FILE          rewrite FILE with the counters every second and at exit\n"
	    "  --quiet               print neither the startup line nor the final counters\n"
	    "PCT is a decimal percentage, e.g. 5 or 0.5. SIGTERM or SIGINT flushes held\n"
	    "datagrams, prints the counters as key=value lines on stdout, and exits 0.\n",
	    prog);
}

static _Noreturn __attribute__((format(printf, 1, 2))) void usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
	exit(EXIT_USAGE);
}

/* ---- PRNG: xoshiro256** (Blackman & Vigna, 2018) seeded by splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Independent streams: stream i starts from splitmix64 of (seed, i). */
static void rng_seed_all(struct rng rng[RNG_N], uint64_t seed)
{
	for (int i = 0; i < RNG_N; i++) {
		uint64_t x = seed ^ ((uint64_t)(i + 1) << 56);

		for (int j = 0; j < 4; j++)
			rng[i].s[j] = splitmix64(&x);
	}
}

/* True with probability pct/100; draws once if pct > 0, never otherwise. */
static bool roll(struct rng *r, double pct)
{
	if (pct <= 0)
		return false;
	return (double)(rng_next(r) >> 11) * 0x1.0p-53 < pct / 100.0;
}

/* Scale a 64-bit draw to [0, n) for n < 2^32 (Lemire's multiply-shift on the top half). */
static size_t scale(uint64_t draw, size_t n)
{
	return (size_t)(((draw >> 32) * (uint64_t)n) >> 32);
}

/* ---- option parsing ---- */

static int parse_pct(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(v >= 0.0 && v <= 100.0))
		return -1;
	*out = v;
	return 0;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

enum {
	OPT_LISTEN = 256,
	OPT_TO,
	OPT_SEED,
	OPT_DROP,
	OPT_BURST,
	OPT_BURST_LEN,
	OPT_REORDER,
	OPT_DEPTH,
	OPT_DUPLICATE,
	OPT_CORRUPT,
	OPT_TRUNCATE,
	OPT_STATS,
	OPT_QUIET,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"to", required_argument, NULL, OPT_TO},
    {"seed", required_argument, NULL, OPT_SEED},
    {"drop", required_argument, NULL, OPT_DROP},
    {"burst-drop", required_argument, NULL, OPT_BURST},
    {"burst-len", required_argument, NULL, OPT_BURST_LEN},
    {"reorder", required_argument, NULL, OPT_REORDER},
    {"reorder-depth", required_argument, NULL, OPT_DEPTH},
    {"duplicate", required_argument, NULL, OPT_DUPLICATE},
    {"corrupt", required_argument, NULL, OPT_CORRUPT},
    {"truncate", required_argument, NULL, OPT_TRUNCATE},
    {"stats", required_argument, NULL, OPT_STATS},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The percentage option for `opt`, or NULL if `opt` is not one. */
static double *pct_field(struct opts *o, int opt)
{
	switch (opt) {
	case OPT_DROP:
		return &o->drop;
	case OPT_BURST:
		return &o->burst;
	case OPT_REORDER:
		return &o->reorder;
	case OPT_DUPLICATE:
		return &o->duplicate;
	case OPT_CORRUPT:
		return &o->corrupt;
	case OPT_TRUNCATE:
		return &o->truncate;
	default:
		return NULL;
	}
}

static void parse_one(struct opts *o, int opt, const char *arg)
{
	double *pct = pct_field(o, opt);
	uint64_t v;

	if (pct) {
		if (parse_pct(arg, pct) < 0)
			usage_error("a percentage must be a number from 0 to 100, not '%s'", arg);
		return;
	}
	switch (opt) {
	case OPT_LISTEN:
		o->listen = arg;
		break;
	case OPT_TO:
		o->to = arg;
		break;
	case OPT_STATS:
		if (*arg == '\0')
			usage_error("--stats needs a file name");
		o->stats_path = arg;
		break;
	case OPT_QUIET:
		o->quiet = true;
		break;
	case OPT_SEED:
		if (parse_u64(arg, 0, UINT64_MAX, &o->seed) < 0)
			usage_error("--seed must be an unsigned 64-bit decimal number, not '%s'",
			            arg);
		break;
	case OPT_BURST_LEN:
		if (parse_u64(arg, 1, MAX_BURST_LEN, &v) < 0)
			usage_error(
			    "--burst-len must be a whole number from 1 to 1000000, not '%s'", arg);
		o->burst_len = (unsigned long)v;
		break;
	case OPT_DEPTH:
		if (parse_u64(arg, 1, MAX_DEPTH, &v) < 0)
			usage_error(
			    "--reorder-depth must be a whole number from 1 to 4096, not '%s'", arg);
		o->depth = (unsigned long)v;
		break;
	}
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	int opt;

	*o = (struct opts){.seed = 1, .depth = 8};
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			exit(0);
		}
		if (opt == ':')
			usage_error("option '%s' needs a value", argv[optind - 1]);
		if (opt == '?')
			usage_error("unknown option '%s'", argv[optind - 1]);
		parse_one(o, opt, optarg);
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->listen)
		usage_error("--listen ADDR:PORT is required");
	if (!o->to)
		usage_error("--to ADDR:PORT is required");
	if (o->burst > 0 && o->burst_len == 0)
		usage_error("--burst-drop needs --burst-len N (how many datagrams a burst drops)");
}

/* ---- addresses and sockets ---- */

/* Split "host:port", "[v6]:port" or ":port"; returns an error sentence or NULL. */
static const char *split_hostport(const char *spec, char *host, size_t hostlen, const char **port)
{
	const char *colon, *h = spec;
	size_t n;

	if (*spec == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close[1] != ':')
			return "expected [IPv6-ADDRESS]:PORT";
		h = spec + 1;
		n = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			return "expected ADDR:PORT (the port is missing)";
		n = (size_t)(colon - spec);
		if (memchr(spec, ':', n))
			return "an IPv6 address needs brackets, e.g. [::1]:9000";
	}
	if (n >= hostlen)
		return "the host name is too long";
	memcpy(host, h, n);
	host[n] = '\0';
	*port = colon + 1;
	return NULL;
}

/* Resolve ADDR:PORT; prints its own error and returns -1 on failure. */
static int resolve(const char *opt, const char *spec, bool passive, struct sockaddr_storage *ss,
                   socklen_t *len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	char host[NI_MAXHOST];
	const char *port, *why = split_hostport(spec, host, sizeof host, &port);
	uint64_t portnum;
	int rc;

	if (!why && parse_u64(port, passive ? 0 : 1, 65535, &portnum) < 0)
		why = passive ? "the port must be a number from 0 to 65535"
		              : "the port must be a number from 1 to 65535";
	if (!why && !passive && host[0] == '\0')
		why = "a destination host is required";
	if (why) {
		fprintf(stderr, "%s: %s '%s': %s\n", prog, opt, spec, why);
		return -1;
	}
	if (passive)
		hints.ai_flags |= AI_PASSIVE;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "%s: %s '%s': cannot resolve '%s': %s\n", prog, opt, spec, host,
		        rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(out, outlen, "(unknown address)");
	else if (sa->sa_family == AF_INET6)
		snprintf(out, outlen, "[%s]:%s", host, serv);
	else
		snprintf(out, outlen, "%s:%s", host, serv);
}

/* Ask for a big buffer: the FORCE variant ignores rmem_max/wmem_max but needs
 * CAP_NET_ADMIN; without it the plain option is capped by the sysctl.  A small
 * buffer is not fatal, it only makes kernel drops under load more likely. */
static void grow_buffer(int fd, int force_opt, int opt)
{
	int bytes = SOCK_BUF_BYTES;

	if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0)
		return;
	(void)setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

static int open_listen(struct ctx *c)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd;

	if (resolve("--listen", c->o.listen, true, &ss, &len) < 0)
		return -EXIT_USAGE;
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot create a UDP socket: %s\n", prog, strerror(errno));
		return -EXIT_RUNTIME;
	}
	c->in_fd = fd;
	grow_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
	/* The kernel's count of datagrams it dropped on our socket (queue full)
	 * comes with each datagram, so tests can tell our drops from its drops. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "%s: cannot listen on %s: %s%s\n", prog, c->o.listen,
		        strerror(errno), bind_hint(errno));
		return -EXIT_RUNTIME;
	}
	return 0;
}

static int open_sender(struct ctx *c)
{
	int fd, tiny = 1;

	if (resolve("--to", c->o.to, false, &c->to, &c->to_len) < 0)
		return -EXIT_USAGE;
	fd = socket(c->to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot create a UDP socket: %s\n", prog, strerror(errno));
		return -EXIT_RUNTIME;
	}
	c->out_fd = fd;
	grow_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
	/* Never read: keep whatever the target might send back from piling up. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny);
	return 0;
}

static void announce(const struct ctx *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char from[NI_MAXHOST + NI_MAXSERV + 4], to[sizeof from];

	if (getsockname(c->in_fd, (struct sockaddr *)&ss, &len) < 0)
		snprintf(from, sizeof from, "%s", c->o.listen);
	else
		format_addr((struct sockaddr *)&ss, len, from, sizeof from);
	format_addr((const struct sockaddr *)&c->to, c->to_len, to, sizeof to);
	fprintf(stderr, "%s: listening on %s, forwarding to %s\n", prog, from, to);
}

/* ---- time ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- send path ---- */

/* Wait up to 10 ms for the send buffer to drain.  ENOBUFS (a full device or
 * qdisc queue) does not show up in poll, so that case just naps briefly. */
static void wait_writable(int fd, int err)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	struct timespec nap = {0, 200 * 1000};

	if (err == ENOBUFS)
		nanosleep(&nap, NULL);
	else
		(void)poll(&pfd, 1, 10);
}

static void send_failed(struct ctx *c, int err)
{
	c->n.send_errors++;
	if (!c->warned_send)
		fprintf(stderr, "%s: warning: a datagram could not be forwarded and was lost: %s\n",
		        prog, strerror(err));
	c->warned_send = true;
}

/* Send all queued copies, in order.  A full buffer is waited out rather than
 * counted as a drop (unintended drops make tests flaky); only a datagram that
 * still cannot go after SEND_RETRY_MS, or that the kernel refuses outright
 * (e.g. EMSGSIZE), is given up on. */
static void flush_out(struct ctx *c)
{
	size_t i = 0;
	int64_t stuck_since = -1;

	for (size_t k = 0; k < c->out_n; k++)
		c->tx_msg[k] = (struct mmsghdr){.msg_hdr = {.msg_name = &c->to,
		                                            .msg_namelen = c->to_len,
		                                            .msg_iov = &c->outq[k].iov,
		                                            .msg_iovlen = 1}};
	while (i < c->out_n) {
		int sent = sendmmsg(c->out_fd, &c->tx_msg[i], (unsigned)(c->out_n - i), 0);
		int err = errno;

		if (sent > 0) {
			c->n.forwarded += (uint64_t)sent;
			i += (size_t)sent;
			stuck_since = -1;
			continue;
		}
		if (err == EINTR)
			continue;
		if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
			if (stuck_since < 0)
				stuck_since = now_ms();
			if (now_ms() - stuck_since < SEND_RETRY_MS) {
				wait_writable(c->out_fd, err);
				continue;
			}
		}
		send_failed(c, err);
		i++;
		stuck_since = -1;
	}
	for (size_t k = 0; k < c->out_n; k++)
		free(c->outq[k].owned);
	c->out_n = 0;
}

/* Queue `copies` sends of buf; `owned` rides on the last copy so it outlives both. */
static void queue_out(struct ctx *c, uint8_t *buf, size_t len, int copies, uint8_t *owned)
{
	for (int k = 0; k < copies; k++) {
		if (c->out_n == OUTQ_LEN)
			flush_out(c);
		c->outq[c->out_n++] = (struct out){
		    .iov = {.iov_base = buf, .iov_len = len},
		    .owned = k == copies - 1 ? owned : NULL,
		};
	}
}

/* ---- reorder buffer ---- */

static void release_oldest(struct ctx *c)
{
	struct held *h = &c->hold[c->hold_head];

	queue_out(c, h->buf, h->len, h->copies, h->buf);
	*h = (struct held){0};
	c->hold_head = (c->hold_head + 1) % c->hold_cap;
	c->hold_n--;
}

/* Due times only grow, so the ring is also ordered by due time. */
static void release_due(struct ctx *c, uint64_t idx)
{
	while (c->hold_n > 0 && c->hold[c->hold_head].due <= idx)
		release_oldest(c);
}

static void release_all(struct ctx *c)
{
	while (c->hold_n > 0)
		release_oldest(c);
}

/* Copy a datagram aside; false if memory ran out (the caller sends it now). */
static bool hold_back(struct ctx *c, const uint8_t *buf, size_t len, int copies, uint64_t due)
{
	uint8_t *copy = malloc(len ? len : 1);

	if (!copy) {
		if (!c->warned_hold)
			fprintf(stderr, "%s: warning: out of memory, not reordering\n", prog);
		c->warned_hold = true;
		return false;
	}
	memcpy(copy, buf, len);
	if (c->hold_n == c->hold_cap)
		release_oldest(c);
	c->hold[(c->hold_head + c->hold_n) % c->hold_cap] =
	    (struct held){.buf = copy, .len = len, .copies = copies, .due = due};
	c->hold_n++;
	return true;
}

/* ---- the impairment pipeline ---- */

struct fate {
	bool burst, drop, truncate, corrupt, duplicate, hold;
	uint64_t cut_draw, bit_draw;
};

/* Every enabled stream draws for every datagram, so one impairment's decisions
 * never shift because another one is enabled or already dropped the datagram. */
static struct fate decide(struct ctx *c)
{
	struct fate f = {
	    .burst = roll(&c->rng[RNG_BURST], c->o.burst),
	    .drop = roll(&c->rng[RNG_DROP], c->o.drop),
	    .truncate = roll(&c->rng[RNG_TRUNCATE], c->o.truncate),
	    .corrupt = roll(&c->rng[RNG_CORRUPT], c->o.corrupt),
	    .duplicate = roll(&c->rng[RNG_DUPLICATE], c->o.duplicate),
	    .hold = roll(&c->rng[RNG_REORDER], c->o.reorder),
	};

	if (f.truncate)
		f.cut_draw = rng_next(&c->rng[RNG_TRUNCATE]);
	if (f.corrupt)
		f.bit_draw = rng_next(&c->rng[RNG_CORRUPT]);
	return f;
}

/* True if burst or plain loss takes datagram; counts it. */
static bool lost(struct ctx *c, const struct fate *f)
{
	if (c->burst_left > 0) {
		c->burst_left--;
		c->n.burst_dropped++;
		return true;
	}
	if (f->burst) {
		c->burst_left = c->o.burst_len - 1;
		c->n.burst_dropped++;
		return true;
	}
	if (f->drop) {
		c->n.dropped++;
		return true;
	}
	return false;
}

static void impair(struct ctx *c, uint8_t *buf, size_t len, uint64_t idx)
{
	struct fate f = decide(c);
	int copies = 1;

	if (lost(c, &f))
		return;
	if (f.truncate && len > 0) {
		len = scale(f.cut_draw, len);
		c->n.truncated++;
	}
	if (f.corrupt && len > 0) {
		size_t bit = scale(f.bit_draw, len * 8);

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		c->n.corrupted++;
	}
	if (f.duplicate) {
		copies = 2;
		c->n.duplicated++;
	}
	if (f.hold && hold_back(c, buf, len, copies, idx + c->o.depth)) {
		c->n.reordered++;
		return;
	}
	queue_out(c, buf, len, copies, NULL);
}

/* ---- receive path ---- */

static void note_kernel_drops(struct ctx *c, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
			uint32_t drops;

			memcpy(&drops, CMSG_DATA(cm), sizeof drops);
			c->n.kernel_dropped = drops; /* cumulative for the socket */
		}
	}
}

static void arm_rx(struct ctx *c)
{
	for (int i = 0; i < BATCH; i++) {
		c->rx_iov[i] = (struct iovec){c->rx_buf + (size_t)i * DGRAM_BUF, DGRAM_BUF};
		c->rx_msg[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &c->rx_iov[i],
		                                            .msg_iovlen = 1,
		                                            .msg_control = c->rx_ctl[i].buf,
		                                            .msg_controllen = sizeof c->rx_ctl[i]}};
	}
}

/* Drain up to 16 batches, then return so the timers get a turn. */
static int receive(struct ctx *c)
{
	for (int round = 0; round < 16; round++) {
		int n;

		arm_rx(c);
		n = recvmmsg(c->in_fd, c->rx_msg, BATCH, MSG_DONTWAIT, NULL);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0
			                                                                 : -errno;
		c->last_rx_ms = now_ms();
		for (int i = 0; i < n; i++) {
			uint64_t idx = c->n.received++;

			note_kernel_drops(c, &c->rx_msg[i].msg_hdr);
			impair(c, c->rx_iov[i].iov_base, c->rx_msg[i].msg_len, idx);
			release_due(c, idx);
		}
		/* The receive buffers are reused next round: send before that. */
		flush_out(c);
		if (n < BATCH)
			break;
	}
	return 0;
}

/* ---- counters ---- */

static int print_stats(const struct counters *n, FILE *f)
{
	static const char *const names[] = {
	    "received",   "forwarded", "dropped",   "burst_dropped", "reordered",
	    "duplicated", "corrupted", "truncated", "send_errors",   "kernel_dropped",
	};
	const uint64_t v[] = {
	    n->received,   n->forwarded, n->dropped,   n->burst_dropped, n->reordered,
	    n->duplicated, n->corrupted, n->truncated, n->send_errors,   n->kernel_dropped,
	};

	_Static_assert(sizeof names / sizeof names[0] == sizeof v / sizeof v[0],
	               "one name per counter");
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		fprintf(f, "%s=%" PRIu64 "\n", names[i], v[i]);
	return ferror(f) ? -EIO : 0;
}

/* Write FILE.tmp and rename it over FILE, so readers never see half a file. */
static int write_stats_file(const struct ctx *c)
{
	char tmp[PATH_MAX];
	FILE *f;
	int fd, rc;

	if (snprintf(tmp, sizeof tmp, "%s.tmp", c->o.stats_path) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = print_stats(&c->n, f);
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, c->o.stats_path) < 0)
		rc = -errno;
	return rc;
}

static void update_stats_file(struct ctx *c)
{
	int rc = write_stats_file(c);

	if (rc < 0 && !c->warned_stats)
		fprintf(stderr, "%s: warning: cannot write the stats file %s: %s\n", prog,
		        c->o.stats_path, strerror(-rc));
	c->warned_stats = c->warned_stats || rc < 0;
}

/* ---- main loop ---- */

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* Block SIGINT/SIGTERM except inside ppoll, so a signal can never slip in
 * between checking the flag and going to sleep. */
static int setup_signals(sigset_t *poll_mask)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t block;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigemptyset(&sa.sa_mask);
	if (sigprocmask(SIG_BLOCK, &block, poll_mask) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0)
		return -errno;
	sigdelset(poll_mask, SIGINT);
	sigdelset(poll_mask, SIGTERM);
	return 0;
}

/* Milliseconds until the next idle flush or stats write; -1 for none. */
static int64_t next_timeout(const struct ctx *c, int64_t now)
{
	int64_t t = INT64_MAX;

	if (c->hold_n > 0)
		t = c->last_rx_ms + IDLE_FLUSH_MS - now;
	if (c->o.stats_path && c->next_stats_ms - now < t)
		t = c->next_stats_ms - now;
	if (t == INT64_MAX)
		return -1;
	return t < 0 ? 0 : t;
}

static void run_timers(struct ctx *c)
{
	int64_t now = now_ms();

	if (c->hold_n > 0 && now - c->last_rx_ms >= IDLE_FLUSH_MS) {
		release_all(c);
		flush_out(c);
	}
	if (c->o.stats_path && now >= c->next_stats_ms) {
		update_stats_file(c);
		c->next_stats_ms += STATS_EVERY_MS;
		if (c->next_stats_ms <= now)
			c->next_stats_ms = now + STATS_EVERY_MS;
	}
}

static int run(struct ctx *c, const sigset_t *poll_mask)
{
	struct pollfd pfd = {.fd = c->in_fd, .events = POLLIN};

	c->next_stats_ms = now_ms() + STATS_EVERY_MS;
	while (!stop_signal) {
		int64_t t = next_timeout(c, now_ms());
		struct timespec ts = {(time_t)(t / 1000), (long)(t % 1000) * 1000000};
		int rc = ppoll(&pfd, 1, t < 0 ? NULL : &ts, poll_mask);

		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc > 0 && (pfd.revents & POLLIN)) {
			rc = receive(c);
			if (rc < 0)
				return rc;
		} else if (rc > 0 && (pfd.revents & POLLERR)) {
			int soerr;
			socklen_t l = sizeof soerr;

			/* Reading SO_ERROR clears it; otherwise ppoll would spin. */
			(void)getsockopt(c->in_fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
		}
		run_timers(c);
	}
	return 0;
}

static int setup(struct ctx *c)
{
	int rc;

	c->in_fd = c->out_fd = -1;
	rng_seed_all(c->rng, c->o.seed);
	c->hold_cap = c->o.depth + 1;
	c->hold = calloc(c->hold_cap, sizeof *c->hold);
	c->rx_buf = malloc((size_t)BATCH * DGRAM_BUF);
	if (!c->hold || !c->rx_buf) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -EXIT_RUNTIME;
	}
	rc = open_sender(c);
	if (rc == 0)
		rc = open_listen(c);
	return rc;
}

static void teardown(struct ctx *c)
{
	if (c->in_fd >= 0)
		close(c->in_fd);
	if (c->out_fd >= 0)
		close(c->out_fd);
	free(c->hold);
	free(c->rx_buf);
	free(c);
}

int main(int argc, char **argv)
{
	struct ctx *c = calloc(1, sizeof *c);
	sigset_t poll_mask;
	int rc;

	if (!c) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_RUNTIME;
	}
	parse_opts(argc, argv, &c->o);
	rc = setup(c);
	if (rc < 0) {
		teardown(c);
		return -rc;
	}
	if (setup_signals(&poll_mask) < 0) {
		fprintf(stderr, "%s: cannot install signal handlers: %s\n", prog, strerror(errno));
		teardown(c);
		return EXIT_RUNTIME;
	}
	if (!c->o.quiet)
		announce(c);
	rc = run(c, &poll_mask);
	if (rc < 0)
		fprintf(stderr, "%s: receiving failed: %s\n", prog, strerror(-rc));
	/* Nothing may be lost to reordering alone, not even at exit. */
	release_all(c);
	flush_out(c);
	if (c->o.stats_path)
		update_stats_file(c);
	if (!c->o.quiet) {
		print_stats(&c->n, stdout);
		fflush(stdout);
	}
	teardown(c);
	return rc < 0 ? EXIT_RUNTIME : 0;
}
