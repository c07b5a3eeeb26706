/* SPDX-License-Identifier: MIT */
/* sluice-recv: the high side's door.
 *
 *   recvmmsg → header/length → session → anti-replay → AEAD open
 *     → collect symbols → RS decode → zstd (bounded) → BLAKE2b vs manifest
 *     → staging pwrite → verify content hash → renameat2(NOREPLACE) → receipt
 *
 * Nothing is ever sent back. What arrived, and what did not, is told only
 * by the receipt log.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/config.h"
#include "common/crypto.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "ledger.h"
#include "sandbox.h"
#include "net.h"
#include "receipt.h"
#include "session.h"
#include "staging.h"

enum exit_code { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_KEYS = 3 };

#define MAX_TRUST 64

struct options {
	const char *listen, *inbox, *key, *state, *receipts, *stats, *metrics;
	const char *user, *selftest, *log_key;
	int no_sandbox;
	const char *trust[MAX_TRUST];
	unsigned ntrust;
	int once, quiet, verbose;
	int rcvbuf;
	size_t ring_bytes;
	unsigned file_mode;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: sluice-recv --listen ADDR:PORT --inbox DIR --key RECEIVER.key\n"
	        "                   --trust SENDER.pub [--trust ...] [options]\n"
	        "\n"
	        "  --listen ADDR:PORT     where the diode delivers, e.g. 0.0.0.0:7000\n"
	        "  --inbox DIR            verified objects appear here, never partial\n"
	        "  --key FILE             receiver key (sluice-keygen receiver)\n"
	        "  --trust FILE           a sender public key to accept (repeatable)\n"
	        "  --state DIR            staging and receipts; same filesystem as the inbox\n"
	        "                         (default INBOX/.sluice)\n"
	        "  --receipts FILE        receipt log (default STATE/receipts.jsonl)\n"
	        "  --log-key FILE         signs receipt-log checkpoints (default: log.key\n"
	        "                         next to --key, when it exists)\n"
	        "  --session-timeout SEC  give up on a silent transfer after SEC (default 60)\n"
	        "  --end-grace SEC        after the sender's END, wait SEC for late frames (2)\n"
	        "  --keep-partial HOURS   keep the verified blocks of an incomplete object this\n"
	        "                         long, so a resend of it completes it (default 72;\n"
	        "                         0 = never)\n"
	        "  --link-timeout SEC     a beaconing sender silent this long is logged\n"
	        "                         link-down (default 10, or 3 beacon intervals)\n"
	        "  --max-sessions N       transfers in progress at once (default 16)\n"
	        "  --memory MIB           memory for blocks in flight and queued for the disk\n"
	        "                         (default 160)\n"
	        "  --max-object-size N    refuse larger objects, suffix k/m/g/t (default 1t)\n"
	        "  --rcvbuf BYTES         socket receive buffer to ask for (default 64m)\n"
	        "  --ring MIB             receive thread's buffer (default 64)\n"
	        "  --file-mode OCTAL      mode of published files (default 0644)\n"
	        "  --stats FILE           write frame counters (key=value) to FILE on exit\n"
	        "  --metrics FILE         Prometheus textfile metrics, every 10 s and on exit\n"
	        "  --once                 exit after the first object: 0 published, 1 not\n"
	        "  --user NAME            run as this user after opening everything (when root)\n"
	        "  --no-sandbox           skip Landlock and seccomp (debugging only)\n"
	        "  --sandbox-selftest DIR sandbox, then try to break out (read /etc/shadow,\n"
	        "                         create a file in DIR, open a socket, exec); exit 0\n"
	        "                         if everything was refused\n"
	        "  -q, --quiet / -v, --verbose\n"
	        "\n"
	        "exit status: 0 ok, 1 failure, 2 usage error, 3 key problem\n");
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "sluice-recv: %s '%s'\nTry 'sluice-recv --help'.\n", what, arg);
	return -1;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v, mul = 1;

	if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.'))
		return -EINVAL; /* no sign, space or empty string */
	v = strtod(s, &end);

	switch (*end) {
	case 'k':
	case 'K':
		mul = 1024.0;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1048576.0;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1073741824.0;
		end++;
		break;
	case 't':
	case 'T':
		mul = 1099511627776.0;
		end++;
		break;
	default:
		break;
	}
	if (end == s || *end || !(v >= 0) || v * mul > 1.8e19)
		return -EINVAL;
	*out = (uint64_t)(v * mul);
	return 0;
}

static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"inbox", required_argument, NULL, 'i'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"trust", required_argument, NULL, 't'},
                                         {"state", required_argument, NULL, 's'},
                                         {"receipts", required_argument, NULL, 'r'},
                                         {"log-key", required_argument, NULL, 'L'},
                                         {"session-timeout", required_argument, NULL, 'T'},
                                         {"end-grace", required_argument, NULL, 'g'},
                                         {"max-sessions", required_argument, NULL, 'S'},
                                         {"keep-partial", required_argument, NULL, 'K'},
                                         {"link-timeout", required_argument, NULL, 'O'},
                                         {"memory", required_argument, NULL, 'M'},
                                         {"max-object-size", required_argument, NULL, 'X'},
                                         {"rcvbuf", required_argument, NULL, 'B'},
                                         {"ring", required_argument, NULL, 'R'},
                                         {"file-mode", required_argument, NULL, 'F'},
                                         {"stats", required_argument, NULL, 'x'},
                                         {"metrics", required_argument, NULL, 'P'},
                                         {"user", required_argument, NULL, 'U'},
                                         {"no-sandbox", no_argument, NULL, 'N'},
                                         {"sandbox-selftest", required_argument, NULL, 'Z'},
                                         {"once", no_argument, NULL, '1'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};

static int parse_args(int argc, char **argv, struct options *o, struct rcv_config *cfg)
{
	char cerr[600];
	uint64_t v;
	double d;
	int c;

	if (config_apply(argc, argv, longopts, &argc, &argv, cerr, sizeof(cerr)) < 0) {
		fprintf(stderr, "sluice-recv: %s\n", cerr);
		return -1;
	}
	*o =
	    (struct options){.rcvbuf = 64 << 20, .ring_bytes = (size_t)64 << 20, .file_mode = 0644};
	cfg->max_sessions = 16;
	cfg->session_timeout_ns = 60ull * 1000000000u;
	cfg->end_grace_ns = 2ull * 1000000000u;
	/* With the 64 MiB ring: a receiver under 256 MiB of RSS (issue 3) */
	cfg->memory_budget = (size_t)160 << 20;
	cfg->max_object_size = 1ull << 40;
	cfg->partial_keep_s = 72ull * 3600;
	cfg->link_timeout_ns = 10ull * 1000000000u;
	while ((c = getopt_long(argc, argv, "qvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			o->listen = optarg;
			break;
		case 'i':
			o->inbox = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 's':
			o->state = optarg;
			break;
		case 'r':
			o->receipts = optarg;
			break;
		case 'L':
			o->log_key = optarg;
			break;
		case 'x':
			o->stats = optarg;
			break;
		case 'P':
			o->metrics = optarg;
			break;
		case 'U':
			o->user = optarg;
			break;
		case 'N':
			o->no_sandbox = 1;
			break;
		case 'Z':
			o->selftest = optarg;
			break;
		case '1':
			o->once = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 't':
			if (o->ntrust == MAX_TRUST)
				return bad("too many --trust keys, the limit is 64:", optarg);
			o->trust[o->ntrust++] = optarg;
			break;
		case 'T':
		case 'g':
		case 'O':
			if (parse_decimal(optarg, &d) < 0 || !(d > 0) || d > 86400 * 7)
				return bad(
				    c == 'T'   ? "--session-timeout takes seconds, more than 0 "
				                 "and up to 604800, not"
				    : c == 'g' ? "--end-grace takes seconds, more than 0 and up "
				                 "to 604800, not"
				               : "--link-timeout takes seconds, more than 0 and "
				                 "up to 604800, not",
				    optarg);
			*(c == 'T'   ? &cfg->session_timeout_ns
			  : c == 'g' ? &cfg->end_grace_ns
			             : &cfg->link_timeout_ns) = (uint64_t)(d * 1e9);
			break;
		case 'S':
			if (parse_uint(optarg, 10, 4096, &v) < 0 || v < 1)
				return bad("--max-sessions must be 1 to 4096, not", optarg);
			cfg->max_sessions = (unsigned)v;
			break;
		case 'K':
			if (parse_decimal(optarg, &d) < 0 || d > 24 * 365)
				return bad("--keep-partial takes hours from 0 to 8760, not",
				           optarg);
			cfg->partial_keep_s = (uint64_t)(d * 3600);
			break;
		case 'M':
			if (parse_size(optarg, &v) < 0 || v < 8 || v > 65536)
				return bad("--memory takes MiB from 8 to 65536, not", optarg);
			cfg->memory_budget = (size_t)v << 20;
			break;
		case 'X':
			if (parse_size(optarg, &cfg->max_object_size) < 0)
				return bad("--max-object-size is not a size:", optarg);
			break;
		case 'B':
			if (parse_size(optarg, &v) < 0 || v < 65536 || v > INT_MAX)
				return bad("--rcvbuf is not a usable size:", optarg);
			o->rcvbuf = (int)v;
			break;
		case 'R':
			if (parse_size(optarg, &v) < 0 || v < 2 || v > 4096)
				return bad("--ring takes MiB from 2 to 4096, not", optarg);
			o->ring_bytes = (size_t)v << 20;
			break;
		case 'F':
			if (parse_uint(optarg, 8, 0777, &v) < 0)
				return bad(
				    "--file-mode must be octal permission bits like 0640, not",
				    optarg);
			o->file_mode = (unsigned)v;
			break;
		case 'c': /* read by config_apply before parsing */
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default:
			return bad("invalid option", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return bad("unexpected argument", argv[optind]);
	if (!o->listen || !o->inbox || !o->key || o->ntrust == 0)
		return bad("missing a required option:",
		           "--listen, --inbox, --key and at least one --trust");
	return 0;
}

static int load_keys(const struct options *o, struct rcv_config *cfg)
{
	char err[512];
	uint8_t *pair = sodium_malloc(64); /* sk || pk */
	int rc = -1;

	cfg->box_sk = sodium_malloc(32);
	cfg->trusted = calloc(o->ntrust, sizeof(*cfg->trusted));
	if (!pair || !cfg->box_sk || !cfg->trusted) {
		log_err("out of memory loading the keys");
		rc = -2;
		goto out;
	}
	if (keyfile_read(o->key, KEY_BOX_SECRET, pair, cfg->my_id, err, sizeof(err)) < 0)
		goto fail;
	memcpy(cfg->box_sk, pair, 32);
	memcpy(cfg->box_pk, pair + 32, 32);
	for (unsigned i = 0; i < o->ntrust; i++)
		if (keyfile_read(o->trust[i], KEY_SIGN_PUBLIC, cfg->trusted[i].pk,
		                 cfg->trusted[i].id, err, sizeof(err)) < 0)
			goto fail;
	cfg->ntrusted = o->ntrust;
	rc = 0;
	goto out;
fail:
	log_err("%s", err);
out:
	sodium_free(pair);
	return rc;
}

/* The receipt log's checkpoint key: --log-key, else log.key beside --key if
 * it exists (sluice-keygen receiver writes both). Without one the log is
 * still hash-chained, but nothing in it is signed. */
static int setup_log_key(const struct options *o, struct receipt_log *log)
{
	char def[PATH_MAX + 16], err[512], idhex[2 * KEYID_LEN + 1];
	const char *path = o->log_key, *slash = strrchr(o->key, '/');
	uint8_t *sk = NULL, id[KEYID_LEN];
	struct stat sb;
	int rc = -1;

	if (!path) {
		snprintf(def, sizeof(def), "%.*s%slog.key", slash ? (int)(slash - o->key) : 0,
		         o->key, slash ? "/" : "");
		if (lstat(def, &sb) < 0 && errno == ENOENT) {
			log_warn("no receipt-log key at %s: checkpoints will not be signed; pass "
			         "--log-key FILE (sluice-keygen receiver writes log.key)",
			         def);
			return 0;
		}
		path = def;
	}
	sk = sodium_malloc(64); /* seed || pk */
	if (!sk) {
		log_err("out of memory");
		return -1;
	}
	if (keyfile_read(path, KEY_LOG_SECRET, sk, id, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	if (receipt_set_signing_key(log, sk, sk + 32) < 0) {
		log_err("cannot use the receipt-log key %s (out of memory?)", path);
		goto out;
	}
	key_id_hex(idhex, id);
	log_info("receipt-log checkpoints signed with log key %s", idhex);
	rc = 0;
out:
	sodium_free(sk);
	return rc;
}

static void checkpoint_failed(int rc)
{
	log_err("cannot append a signed checkpoint to the receipt log: %s; the records since the "
	        "last one are not covered by a signature until one is written",
	        strerror(-rc));
}

struct metric {
	const char *name;
	uint64_t value;
	int gauge;
};

#define MAX_METRICS 40

/* Every counter the receiver keeps, for --stats and --metrics. */
static size_t collect(const struct receiver *r, const struct net_rx *n, struct metric *m)
{
	const struct rcv_stats *s = &r->stats;
	size_t i = 0;

#define C(x) m[i++] = (struct metric){#x, s->x, 0}
	C(datagrams);
	C(accepted);
	C(bad_header);
	C(bad_length);
	C(unknown_session);
	C(finished_session);
	C(late_status);
	C(replayed);
	C(bad_tag);
	C(bad_symbol);
	C(duplicate);
	C(announce_repeat);
	C(announce_bad);
	C(announce_not_for_us);
	C(announce_untrusted);
	C(announce_bad_signature);
	C(announce_refused);
	C(sessions_evicted);
	C(beacon_ok);
	C(beacon_bad);
	C(beacon_bad_signature);
	C(beacon_stale);
	C(beacon_rate_limited);
	C(published);
	C(failed);
	C(duplicates);
	C(replays);
#undef C
	m[i++] = (struct metric){"oversized", n->truncated, 0};
	m[i++] = (struct metric){"evicted_groups", r->pool.evicted, 0};
	m[i++] = (struct metric){"ring_dropped", r->ring_dropped, 0};
	m[i++] = (struct metric){"socket_drops", r->socket_drops, 0};
	m[i++] = (struct metric){"sessions_active", r->nsessions, 1};
	m[i++] = (struct metric){"inflight_bytes", r->pool.bytes, 1};
	return i;
}

static void write_stats(const char *path, const struct metric *m, size_t count)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		log_warn("cannot write stats to %s: %s", path, strerror(errno));
		return;
	}
	for (size_t i = 0; i < count; i++)
		fprintf(f, "%s=%" PRIu64 "\n", m[i].name, m[i].value);
	fclose(f);
}

/* Prometheus textfile collector format, replaced atomically (write a
 * temporary file, rename) so the collector never reads half a file. */
static void write_metrics(const char *path, const struct metric *m, size_t count)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f) {
		log_warn("cannot write metrics to %s: %s", tmp, strerror(errno));
		return;
	}
	for (size_t i = 0; i < count; i++) {
		const char *suffix = m[i].gauge ? "" : "_total";
		fprintf(f, "# TYPE sluice_recv_%s%s %s\nsluice_recv_%s%s %" PRIu64 "\n", m[i].name,
		        suffix, m[i].gauge ? "gauge" : "counter", m[i].name, suffix, m[i].value);
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		log_warn("cannot write metrics to %s: %s", path, strerror(errno));
}

static void export_counters(const struct options *o, const struct receiver *r,
                            const struct net_rx *n, int final)
{
	struct metric m[MAX_METRICS];
	size_t count = collect(r, n, m);

	if (o->metrics)
		write_metrics(o->metrics, m, count);
	if (final && o->stats)
		write_stats(o->stats, m, count);
}

static void lifecycle_receipt(struct receipt_log *log, const char *event, const struct receiver *r,
                              int stale, const char *reason)
{
	struct receipt_rec *rec = receipt_begin(log, event);

	if (reason)
		receipt_str(rec, "reason", reason);
	if (stale >= 0)
		receipt_u64(rec, "stale_staging_removed", (uint64_t)stale);
	if (r) {
		receipt_u64(rec, "published", r->stats.published);
		receipt_u64(rec, "failed", r->stats.failed);
		receipt_u64(rec, "datagrams", r->stats.datagrams);
		receipt_u64(rec, "rejected_frames",
		            r->stats.datagrams - r->stats.accepted - r->stats.announce_repeat -
		                r->stats.late_status - r->stats.beacon_ok);
	}
	int rc = receipt_commit(rec);
	if (rc < 0)
		log_err("cannot append to the receipt log: %s", strerror(-rc));
}

/* Landlock allows writes only beneath these: the inbox, the state
 * directory, and the directories of files we write by name later. */
static void allow_dir(struct sandbox_cfg *c, const char *path, int parent_of)
{
	char buf[PATH_MAX];
	char *slash;
	int fd;

	if (!path || c->ndirs == SANDBOX_MAX_DIRS)
		return;
	snprintf(buf, sizeof(buf), "%s", path);
	if (parent_of) {
		slash = strrchr(buf, '/');
		if (slash == buf)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		else
			snprintf(buf, sizeof(buf), ".");
	}
	fd = open(buf, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		c->dirs[c->ndirs++] = fd;
}

static uid_t chown_uid;
static gid_t chown_gid;

static int chown_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return lchown(path, chown_uid, chown_gid) < 0 ? -1 : 0;
}

/* Started as root with --user: the state tree (staging, sequence floor,
 * published objects) and the receipt log must belong to that user, or it
 * could not write them after the drop. Symlinks are not followed. */
static int hand_over(const char *state, const char *receipts, uid_t uid, gid_t gid)
{
	chown_uid = uid;
	chown_gid = gid;
	if (nftw(state, chown_one, 16, FTW_PHYS) != 0 || lchown(receipts, uid, gid) < 0) {
		log_err("cannot hand %s to the --user account: %s", state, strerror(errno));
		return -1;
	}
	return 0;
}

/* uid and gid: the --user account's, looked up by main. */
static int confine(const struct options *o, uid_t uid, gid_t gid, const char *state,
                   const char *receipts)
{
	struct sandbox_cfg c = {.uid = uid, .gid = gid};
	struct sandbox_result res;
	char err[300];
	int rc;

	if (o->user) {
		c.have_user = getuid() == 0;
		if (c.have_user && hand_over(state, receipts, c.uid, c.gid) < 0)
			return -1;
	} else if (getuid() == 0) {
		log_warn("running as root: pass --user to drop privileges after start-up");
	}
	if (o->no_sandbox) {
		log_warn("sandbox disabled (--no-sandbox)");
		c.no_confine = 1;
	} else if (!sandbox_supported()) {
		log_warn("sandbox not applied: this is a sanitizer build");
		c.no_confine = 1;
	}
	allow_dir(&c, o->inbox, 0);
	allow_dir(&c, state, 0);
	allow_dir(&c, receipts, 1);
	allow_dir(&c, o->metrics, 1);
	allow_dir(&c, o->stats, 1);
	rc = sandbox_apply(&c, &res, err, sizeof(err));
	for (unsigned i = 0; i < c.ndirs; i++)
		close(c.dirs[i]);
	if (rc < 0) {
		log_err("%s", err);
		return -1;
	}
	if (c.no_confine)
		return 0;
	if (res.landlock_abi)
		log_debug("sandbox: uid %u, Landlock ABI %d, seccomp on", (unsigned)res.uid,
		          res.landlock_abi);
	else
		log_warn("Landlock is not available in this kernel: filesystem confinement is "
		         "off, seccomp and no_new_privs still apply");
	return 0;
}

/* Publication renames into the inbox. Find out now, as the account and
 * inside the sandbox the receiver runs in, whether it can, rather than
 * failing every object. The probe is a dot-name, which no published name
 * can be and which consumers skip (docs/OPERATIONS.md). */
static int inbox_writable(const struct options *o, int inbox_fd)
{
	static const char probe[] = ".sluice-write-check";

	if ((mkdirat(inbox_fd, probe, 0700) == 0 || errno == EEXIST) &&
	    unlinkat(inbox_fd, probe, AT_REMOVEDIR) == 0)
		return 0;
	log_err("cannot create files in the inbox %s as %s: %s; publication needs write access "
	        "to it: chown or chmod the directory%s",
	        o->inbox, o->user ? o->user : "this user", strerror(errno),
	        errno == EROFS ? " (it is on a read-only filesystem)" : "");
	return -1;
}

#define METRICS_NS 10000000000ull
/* A gap between two reads of the ring longer than this is the loop's own
 * work, not waiting (rcv_pause). */
#define STALL_NS 250000000ull

/* What the receive side dropped itself (full ring, full socket buffer), for
 * the receipts of the transfers it hit and for the counters. */
static void note_own_drops(struct receiver *r, const struct net_rx *n, const struct net_ring *ring)
{
	r->ring_dropped = net_ring_dropped(ring);
	r->socket_drops = atomic_load(&n->sock_dropped);
}

static int serve(const struct options *o, struct receiver *r, struct net_rx *n,
                 struct net_ring *ring)
{
	uint64_t last_tick = 0, last_export = 0, now = 0;
	uint8_t *data;
	size_t len;

	while (!stop_requested) {
		int got = net_ring_next(ring, &data, &len, 50);
		/* one clock read per received buffer, not per datagram: a GRO
		 * buffer's datagrams arrived together (the read was 0.8% of the
		 * receiver in PERFORMANCE.md run 20) */
		if (got != 2) {
			uint64_t t = now_ns();
			/* This loop was busy since the last read (waits in
			 * net_ring_next are at most 50 ms): waiting for room in
			 * the writer's queue on a slow disk, or making a large
			 * file durable, say. What arrived meanwhile is in the
			 * ring, so the senders were not silent. */
			if (now && t - now > STALL_NS)
				rcv_pause(r, t - now, t);
			now = t;
		}
		if (got) {
			r->ring_dropped_before = net_ring_dropped_before(ring);
			rcv_handle(r, data, len, now);
			net_ring_release(ring);
		}
		if (now - last_tick >= 50000000u) {
			int cp;

			note_own_drops(r, n, ring);
			rcv_tick(r, now);
			cp = receipt_tick(r->log, now);
			if (cp < 0)
				checkpoint_failed(cp);
			last_tick = now;
		}
		if (o->metrics && now - last_export >= METRICS_NS) {
			note_own_drops(r, n, ring);
			export_counters(o, r, n, 0);
			last_export = now;
		}
		if (o->once && r->stats.published + r->stats.failed > 0)
			return r->stats.published ? EXIT_OK : EXIT_FAILED;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct options o;
	struct rcv_config cfg = {0};
	struct staging st = {.inbox_fd = -1, .dir_fd = -1};
	struct net_rx net = {.fd = -1};
	struct receiver r;
	struct receipt_log *log = NULL;
	struct ledger ledger = {.senders_fd = -1, .objects_fd = -1};
	struct sockaddr_storage addr;
	socklen_t alen;
	char err[600], state[PATH_MAX], receipts[PATH_MAX + 32];
	struct net_ring *ring = NULL;
	int rc = EXIT_FAILED, stale, have_r = 0, stop_rc, cp;
	int started = 0;        /* "start" is logged: a "stop" record is owed */
	const char *why = NULL; /* its reason, when start-up failed after "start" */
	uid_t uid = 0;
	gid_t gid = 0;

	/* Blocks in flight are allocated and freed all the time (a row is up
	 * to 254 symbols). glibc would hand each one to mmap, or give the
	 * heap's top back to the kernel, so every new group faulted in and
	 * zeroed fresh pages (6% of the decode thread). Keep freed memory
	 * for reuse: peak RSS is bounded by --memory and --ring anyway. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	if (parse_args(argc, argv, &o, &cfg) < 0)
		return EXIT_USAGE;
	log_setup("sluice-recv", o.quiet ? LOG_WARN : o.verbose ? LOG_DEBUG : LOG_INFO);
	/* an unknown --user is a configuration error: found before anything is opened */
	if (o.user && sandbox_user(o.user, &uid, &gid, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return EXIT_USAGE;
	}
	/* One AES-GCM context per session in the table, a few spare for
	 * sessions being replaced, and those of finished sessions kept for
	 * their late END frames (RCV_TOMBS). */
	if (crypto_setup_contexts(cfg.max_sessions + 4 + RCV_TOMBS) < 0) {
		log_err("libsodium failed to initialise");
		return EXIT_FAILED;
	}
	if (parse_hostport(o.listen, 1, &addr, &alen, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return EXIT_USAGE;
	}
	rc = load_keys(&o, &cfg);
	if (rc < 0) {
		rc = rc == -2 ? EXIT_FAILED : EXIT_KEYS;
		goto out;
	}
	rc = EXIT_FAILED;
	snprintf(state, sizeof(state), "%s", o.state ? o.state : o.inbox);
	if (!o.state)
		strncat(state, "/.sluice", sizeof(state) - strlen(state) - 1);
	snprintf(receipts, sizeof(receipts), "%s", o.receipts ? o.receipts : state);
	if (!o.receipts)
		strncat(receipts, "/receipts.jsonl", sizeof(receipts) - strlen(receipts) - 1);
	if (staging_open(&st, o.inbox, state, err, sizeof(err)) < 0 ||
	    receipt_open(&log, receipts, err, sizeof(err)) < 0 ||
	    net_open(&net, &addr, alen, o.rcvbuf, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	if (setup_log_key(&o, log) < 0) {
		rc = EXIT_KEYS;
		goto out;
	}
	if (ledger_open(&ledger, st.state_fd) < 0) {
		log_err("cannot open the sequence and object records in %s: %s", state,
		        strerror(errno));
		goto out;
	}
	st.file_mode = (mode_t)o.file_mode;
	/* getsockopt reports twice the usable size (kernel bookkeeping). */
	if (net.rcvbuf / 2 < o.rcvbuf)
		log_warn("socket receive buffer is %d bytes, asked for %d: run as root or raise "
		         "net.core.rmem_max (docs/OPERATIONS.md), or expect loss at high rates",
		         net.rcvbuf / 2, o.rcvbuf);
	stale = staging_clean(&st);
	lifecycle_receipt(log, "start", NULL, stale, NULL);
	/* From here every exit writes a "stop" record (saying why when
	 * start-up failed), so the log never shows a start without a stop
	 * unless the receiver was killed. */
	started = 1;
	why = "out of memory";
	if (rcv_init(&r, &cfg, &st, log, &ledger) < 0) {
		log_err("out of memory");
		goto out;
	}
	have_r = 1;
	why = "cannot finish the last run's publications";
	if (rcv_recover(&r) < 0)
		goto out;
	if (ledger_intent_prepare(&ledger) < 0)
		log_warn("cannot allocate the publication journal in %s; objects are still "
		         "published, but one published just before a crash may lack its receipt",
		         state);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	why = "cannot set up the sandbox";
	if (confine(&o, uid, gid, state, receipts) < 0)
		goto out;
	why = "cannot create files in the inbox";
	if (inbox_writable(&o, st.inbox_fd) < 0)
		goto out;
	log_info("listening on %s, inbox %s, receipts %s", o.listen, o.inbox, receipts);
	if (o.selftest) {
		/* 77: "skipped" for test runners, in builds without a sandbox */
		rc = sandbox_supported() && !o.no_sandbox ? sandbox_selftest(o.selftest) : 77;
		why = "sandbox self-test done";
		goto out;
	}
	why = "cannot start the receive thread";
	if (net_ring_start(&ring, &net, o.ring_bytes) < 0) {
		log_err("cannot start the receive thread (out of memory?)");
		goto out;
	}
	rc = serve(&o, &r, &net, ring);
	note_own_drops(&r, &net, ring); /* the ring is gone after net_ring_stop */
	stop_rc = net_ring_stop(ring);
	if (stop_rc < 0) {
		log_err("receiving failed: %s", strerror(-stop_rc));
		rc = EXIT_FAILED;
	}
	rcv_abandon_all(&r, "receiver stopped");
	why = NULL;
	export_counters(&o, &r, &net, 1);
out:
	if (started) {
		lifecycle_receipt(log, "stop", have_r ? &r : NULL, -1, why);
		cp = receipt_checkpoint(log); /* covers this run up to "stop" */
		if (cp < 0 && cp != -ENOKEY)
			checkpoint_failed(cp);
	}
	if (have_r)
		rcv_free(&r);
	net_close(&net);
	receipt_close(log);
	ledger_close(&ledger);
	staging_close(&st);
	sodium_free(cfg.box_sk);
	free(cfg.trusted);
	return rc;
}
