/* SPDX-License-Identifier: MIT */
/* sluice-send: push one file, or one directory as a bundle, through a
 * one-way link.
 *
 *   read (io_uring) → hash → sign manifest      (pass one, plan.c)
 *   read (io_uring) → zstd → split → RS FEC → seal (AEAD) → interleave
 *        → pace → UDP GSO / sendmmsg             (each pass, transfer.c)
 *
 * Nothing ever comes back: success means every frame was handed to the
 * kernel at the requested rate, not that the receiver got it. The receipt
 * log on the high side is the only proof of arrival.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/config.h"
#include "common/crypto.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "encode.h"
#include "seqstate.h"
#include "spool.h"
#include "transfer.h"
#include "udp.h"

enum exit_code { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_KEYS = 3 };

struct options {
	const char *to, *key, *recipient, *name, *state_dir, *path;
	const char *watch, *sent_dir;
	int delete_sent;
	unsigned retry;
	double beacon; /* seconds between beacons in spool mode; 0 = none */
	uint64_t rate;
	double fec;
	unsigned mtu, repeat;
	int compress, gso, uring_send, quiet, verbose, progress;
	enum aead_alg aead;
	uint64_t ttl;
	uint64_t sequence; /* tests only: 0 = take the next from the state dir */
};

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: sluice-send --to HOST:PORT --rate RATE --key SENDER.key\n"
	       "                   --recipient RECEIVER.pub [options] FILE|DIR\n"
	       "       sluice-send ... --watch OUTBOX [--sent-dir DIR | --delete-sent]\n"
	       "\n"
	       "A directory is sent as one bundle: the receiver publishes the whole tree at\n"
	       "once, after every file in it verified. Only regular files and directories.\n"
	       "\n"
	       "  --to HOST:PORT       receiver address (the diode's far side)\n"
	       "  --rate RATE          send rate in bit/s, e.g. 900m, 9.5g (required: the\n"
	       "                       link gives no feedback, the rate is the only loss control)\n"
	       "  --key FILE           sender signing key (sluice-keygen sender)\n"
	       "  --recipient FILE     receiver public key (receiver.pub)\n"
	       "  --fec PCT            repair symbols per data symbol (default 10%%)\n"
	       "  --mtu N              link MTU, 1500 (default) or up to 9000 for jumbo frames\n"
	       "  --name NAME          name to publish under (default: the file's name)\n"
	       "  --repeat N           send N passes, each with fresh repair symbols (default 1)\n"
	       "  --no-compress        do not try zstd on blocks\n"
	       "  --aead ALG           auto (default), aes256gcm or xchacha20poly1305\n"
	       "  --expires SECONDS    receiver refuses the manifest after this many seconds\n"
	       "  --state-dir DIR      where the sequence counter lives\n"
	       "                       (default $XDG_STATE_HOME/sluice or ~/.local/state/sluice)\n"
	       "  --no-gso             use sendmmsg instead of UDP GSO\n"
	       "  --uring-send         send through io_uring instead of sendmsg (slower\n"
	       "                       here: docs/DECISIONS.md section 17)\n"
	       "  --watch OUTBOX       spool mode: send each file or directory that is closed\n"
	       "                       after writing or moved into OUTBOX, until SIGTERM\n"
	       "  --sent-dir DIR       where sent entries go (default OUTBOX/sent)\n"
	       "  --delete-sent        delete sent entries instead\n"
	       "  --retry SECONDS      wait before sending a failed entry again (default 60)\n"
	       "  --beacon SECONDS     spool mode: signed beacon with the link's counters this\n"
	       "                       often, so the receiver logs link up/down and loss\n"
	       "                       (default 1; 0 = none)\n"
	       "  --progress / --no-progress   progress bar (default: when stderr is a terminal)\n"
	       "  -q, --quiet          print nothing on success (for cron)\n"
	       "  -v, --verbose        more detail\n"
	       "\n"
	       "exit status: 0 sent, 1 transfer failed, 2 usage error, 3 key problem\n");
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "sluice-send: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'sluice-send --help'.\n");
	return -1;
}

static const struct option longopts[] = {
    {"to", required_argument, NULL, 't'},
    {"rate", required_argument, NULL, 'r'},
    {"key", required_argument, NULL, 'k'},
    {"recipient", required_argument, NULL, 'R'},
    {"fec", required_argument, NULL, 'f'},
    {"mtu", required_argument, NULL, 'm'},
    {"name", required_argument, NULL, 'n'},
    {"repeat", required_argument, NULL, 'N'},
    {"no-compress", no_argument, NULL, 'C'},
    {"aead", required_argument, NULL, 'a'},
    {"expires", required_argument, NULL, 'e'},
    {"state-dir", required_argument, NULL, 's'},
    {"no-gso", no_argument, NULL, 'G'},
    {"uring-send", no_argument, NULL, 'U'},
    {"progress", no_argument, NULL, 'p'},
    {"no-progress", no_argument, NULL, 'P'},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"sequence", required_argument, NULL, 'Q'},
    {"watch", required_argument, NULL, 'W'},
    {"sent-dir", required_argument, NULL, 'D'},
    {"delete-sent", no_argument, NULL, 'X'},
    {"retry", required_argument, NULL, 'Y'},
    {"beacon", required_argument, NULL, 'B'},
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_args(int argc, char **argv, struct options *o)
{
	char cerr[600];
	uint64_t u;
	int c;

	if (config_apply(argc, argv, longopts, &argc, &argv, cerr, sizeof(cerr)) < 0) {
		fprintf(stderr, "sluice-send: %s\n", cerr);
		return -1;
	}
	*o = (struct options){.fec = 10,
	                      .mtu = 1500,
	                      .repeat = 1,
	                      .compress = 1,
	                      .gso = 1,
	                      .progress = -1,
	                      .retry = 60,
	                      .beacon = 1,
	                      .aead = AEAD_INVALID /* auto, after init */};
	while ((c = getopt_long(argc, argv, "qvh", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->to = optarg;
			break;
		case 'r':
			if (parse_rate(optarg, &o->rate) < 0)
				return bad("--rate '%s' is not a rate: use e.g. 800k, 900m, 9.5g",
				           optarg);
			break;
		case 'k':
			o->key = optarg;
			break;
		case 'R':
			o->recipient = optarg;
			break;
		case 'f':
			if (parse_percent(optarg, &o->fec) < 0 || enc_pick_k(o->fec) == 0)
				return bad("--fec '%s' is not a usable percentage (0%% to 1000%%)",
				           optarg);
			break;
		case 'm':
			if (parse_uint(optarg, 10, 9000, &u) < 0 || u < 1100)
				return bad("--mtu '%s' must be between 1100 and 9000", optarg);
			o->mtu = (unsigned)u;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'N':
			if (parse_uint(optarg, 10, 100, &u) < 0 || u < 1)
				return bad("--repeat '%s' must be between 1 and 100", optarg);
			o->repeat = (unsigned)u;
			break;
		case 'C':
			o->compress = 0;
			break;
		case 'a':
			o->aead = strcmp(optarg, "auto") == 0 ? AEAD_INVALID : aead_parse(optarg);
			if (o->aead == AEAD_INVALID && strcmp(optarg, "auto") != 0)
				return bad("--aead '%s' is unknown: use auto, aes256gcm or "
				           "xchacha20poly1305",
				           optarg);
			break;
		case 'e':
			/* at most ten years: the expiry time must not wrap round */
			if (parse_uint(optarg, 10, 10ull * 366 * 86400, &o->ttl) < 0 || o->ttl == 0)
				return bad(
				    "--expires '%s' must be 1 to 316224000 seconds (ten years)",
				    optarg);
			break;
		case 's':
			o->state_dir = optarg;
			break;
		case 'Q': /* for rollback tests; the receiver decides what it accepts */
			if (parse_uint(optarg, 10, INT64_MAX, &o->sequence) < 0 || o->sequence == 0)
				return bad("--sequence '%s' must be a positive number", optarg);
			break;
		case 'G':
			o->gso = 0;
			break;
		case 'U':
			o->uring_send = 1;
			break;
		case 'W':
			o->watch = optarg;
			break;
		case 'D':
			o->sent_dir = optarg;
			break;
		case 'X':
			o->delete_sent = 1;
			break;
		case 'B':
			if (parse_decimal(optarg, &o->beacon) < 0 ||
			    !(o->beacon == 0 || (o->beacon >= 0.1 && o->beacon <= 3600)))
				return bad("--beacon '%s' must be 0 or 0.1 to 3600 seconds",
				           optarg);
			break;
		case 'Y':
			if (parse_uint(optarg, 10, 86400, &u) < 0 || u < 1)
				return bad("--retry '%s' must be 1 to 86400 seconds", optarg);
			o->retry = (unsigned)u;
			break;
		case 'p':
			o->progress = 1;
			break;
		case 'P':
			o->progress = 0;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'c': /* read by config_apply before parsing */
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default:
			return bad("%s", "invalid option");
		}
	}
	if (o->watch) {
		if (optind != argc)
			return bad("%s", "--watch sends what appears in OUTBOX: give no FILE");
		if (o->name || o->sequence)
			return bad("%s", "--name and --sequence cannot be used with --watch");
		if (o->sent_dir && o->delete_sent)
			return bad("%s", "choose --sent-dir or --delete-sent, not both");
	} else {
		if (optind != argc - 1)
			return bad("%s",
			           "give exactly one FILE or DIR to send (or --watch OUTBOX)");
		if (o->sent_dir || o->delete_sent)
			return bad("%s", "--sent-dir and --delete-sent go with --watch");
		o->path = argv[optind];
	}
	if (!o->to)
		return bad("%s", "--to HOST:PORT is required");
	if (!o->rate)
		return bad("%s",
		           "--rate is required: a one-way link cannot tell the sender its "
		           "speed; use a little under the link rate, e.g. --rate 900m for 1 Gb/s");
	if (!o->key || !o->recipient)
		return bad("%s", "--key SENDER.key and --recipient RECEIVER.pub are required");
	return 0;
}

/* Symbol size from the MTU: IP + UDP headers, then our framing overhead. */
static uint16_t symbol_size_for(unsigned mtu, int family)
{
	unsigned datagram = mtu - (family == AF_INET6 ? 48 : 28);

	return (uint16_t)(datagram - PROTO_SYMBOL_OVERHEAD);
}

/* wire_bytes and datagrams: this transfer's share of the socket's counters */
static void summary(const struct options *o, const struct transfer_args *ta,
                    const struct transfer_result *r, const struct udp_tx *tx, uint64_t wire_bytes,
                    uint64_t datagrams)
{
	char id[2 * PROTO_HASH_LEN + 1], sz[32];
	double s = (double)r->seconds_ns / 1e9;

	if (o->quiet)
		return;
	hex_encode(id, r->object_id, PROTO_HASH_LEN);
	if (r->bundle)
		printf("bundle of %" PRIu64 " file%s, ", r->files, r->files == 1 ? "" : "s");
	printf("sent %s: %s in %.2f s, %.0f Mb/s on the wire, %" PRIu64 " frames, "
	       "FEC %.0f%%, %u pass%s, %s, %s\n",
	       ta->name, fmt_bytes(sz, sizeof(sz), (double)r->size), s,
	       s > 0 ? (double)wire_bytes * 8 / s / 1e6 : 0.0, datagrams, o->fec, o->repeat,
	       o->repeat == 1 ? "" : "es", aead_name(o->aead),
	       !tx->use_gso    ? "sendmmsg"
	       : tx->use_uring ? "UDP GSO via io_uring"
	                       : "UDP GSO");
	printf("object %.16s  stored %.1f%% of raw  blake2b-256 ", id,
	       r->size ? 100.0 * (double)r->stored_bytes / (double)r->size : 100.0);
	hex_encode(id, r->content_hash, PROTO_HASH_LEN);
	printf("%s\n", id);
}

static int load_keys(const struct options *o, uint8_t *sk, uint8_t sid[KEYID_LEN], uint8_t rpk[32],
                     uint8_t rid[KEYID_LEN])
{
	char err[512];

	if (keyfile_read(o->key, KEY_SIGN_SECRET, sk, sid, err, sizeof(err)) < 0 ||
	    keyfile_read(o->recipient, KEY_BOX_PUBLIC, rpk, rid, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return -1;
	}
	return 0;
}

/* What every send of this run shares. */
struct run {
	const struct options *o;
	struct udp_tx *tx;
	const uint8_t *sk;
	uint8_t sid[KEYID_LEN], rid[KEYID_LEN], rpk[32];
	char sidhex[2 * KEYID_LEN + 1];
	char sdir[PATH_MAX];
	/* beacons (spool mode) */
	uint64_t link_id, beacons, objects, next_beacon, beacon_ns;
	int beacons_failing; /* the last idle beacon could not be sent */
};

static void beacon(struct run *run, enum beacon_state state)
{
	uint8_t frame[PROTO_BEACON_LEN], *f = frame;
	struct beacon b = {.hdr = {.version = PROTO_VERSION,
	                           .type = FRAME_BEACON,
	                           .session_id = run->link_id,
	                           .counter = ++run->beacons},
	                   .clock_ns = wall_ns(),
	                   .datagrams_sent = run->tx->datagrams,
	                   .objects_sent = run->objects,
	                   .interval_ms = (uint32_t)(run->beacon_ns / 1000000u),
	                   .state = (uint8_t)state};

	memcpy(b.sender_id, run->sid, KEYID_LEN);
	memcpy(b.receiver_id, run->rid, KEYID_LEN);
	proto_encode_beacon(frame, &b);
	crypto_sign_detached(frame + PROTO_BEACON_SIGNED_LEN, NULL, frame, PROTO_BEACON_SIGNED_LEN,
	                     run->sk);
	if (udp_tx_send(run->tx, &f, 1, sizeof(frame)) < 0)
		log_warn("cannot send a beacon");
	run->next_beacon = now_ns() + run->beacon_ns;
}

/* Between groups of a transfer and while the spool is idle. */
static int beacon_tick(void *ctx)
{
	struct run *run = ctx;

	if (run->beacon_ns && now_ns() >= run->next_beacon)
		beacon(run, BEACON_RUNNING);
	return 0;
}

/* While the spool is idle: a beacon when one is due, and whether it left,
 * said once when beacons stop leaving (the link is down, say) and once
 * when they leave again. */
static int beacon_idle(void *ctx)
{
	struct run *run = ctx;
	uint64_t before = run->beacons;

	beacon_tick(ctx);
	if (run->beacons == before)
		return 0;
	int rc = udp_tx_flush(run->tx);
	if (rc < 0 && !run->beacons_failing)
		log_warn("cannot send beacons: %s; check the route to --to; still trying",
		         strerror(-rc));
	else if (rc == 0 && run->beacons_failing)
		log_info("beacons are leaving again");
	run->beacons_failing = rc < 0;
	return 0;
}

/* Send one file or directory under name, with the next sequence number. */
static int send_entry(void *ctx, const char *path, const char *name)
{
	struct run *run = ctx;
	const struct options *o = run->o;
	struct transfer_result res = {0};
	struct transfer_args ta = {0};
	char err[512] = "out of memory";
	uint64_t seq = o->sequence, bytes0 = run->tx->wire_bytes, dgrams0 = run->tx->datagrams;

	if (!seq && seq_next(o->state_dir ? o->state_dir : run->sdir, run->sidhex, &seq, err,
	                     sizeof(err)) < 0) {
		log_err("%s", err);
		return -1;
	}
	ta = (struct transfer_args){.path = path,
	                            .name = name,
	                            .tx = run->tx,
	                            .symbol_size = symbol_size_for(o->mtu, run->tx->dst.ss_family),
	                            .fec_pct = o->fec,
	                            .compress = o->compress,
	                            .passes = o->repeat,
	                            .aead = o->aead,
	                            .sequence = seq,
	                            .expires = o->ttl ? wall_ns() / 1000000000u + o->ttl : 0,
	                            .sign_sk = run->sk,
	                            .sender_id = run->sid,
	                            .receiver_pk = run->rpk,
	                            .receiver_id = run->rid,
	                            .progress =
	                                o->progress < 0 ? !o->quiet && isatty(2) : o->progress,
	                            .tick = run->beacon_ns ? beacon_tick : NULL,
	                            .plan_tick = run->beacon_ns ? beacon_idle : NULL,
	                            .tick_ctx = run};
	if (transfer_file(&ta, &res, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return -1;
	}
	summary(o, &ta, &res, run->tx, run->tx->wire_bytes - bytes0, run->tx->datagrams - dgrams0);
	run->objects++;
	fflush(stdout);
	return 0;
}

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int watch(struct run *run)
{
	const struct options *o = run->o;
	struct spool_opts so = {.outbox = o->watch,
	                        .sent_dir = o->sent_dir,
	                        .delete_sent = o->delete_sent,
	                        .retry_s = o->retry,
	                        .settle_s = 2};
	struct sigaction sa = {.sa_handler = on_stop};
	char err[512];

	/* A send in progress finishes first; whatever is left in the
	 * outbox is sent at the next start. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (o->beacon > 0) {
		run->beacon_ns = (uint64_t)(o->beacon * 1e9);
		randombytes_buf(&run->link_id, sizeof(run->link_id));
		run->link_id |= 1; /* never 0 */
		so.idle_ns = run->beacon_ns < 1000000000u ? run->beacon_ns : 1000000000u;
	}
	if (spool_run(&so, send_entry, run->beacon_ns ? beacon_idle : NULL, run, &stop_requested,
	              err, sizeof(err)) < 0) {
		log_err("%s", err);
		return EXIT_FAILED;
	}
	if (run->beacon_ns) {
		beacon(run, BEACON_STOPPING);
		int rc = udp_tx_flush(run->tx);
		if (rc < 0)
			log_warn("cannot send the last beacon (stopping): %s", strerror(-rc));
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct options o;
	struct udp_tx tx = {.fd = -1};
	struct sockaddr_storage dst;
	socklen_t dlen;
	struct run run = {.o = &o, .tx = &tx};
	uint8_t *sk = NULL;
	char err[512], *pathcopy = NULL;
	int rc = EXIT_FAILED;

	if (parse_args(argc, argv, &o) < 0)
		return EXIT_USAGE;
	log_setup("sluice-send", o.quiet ? LOG_ERROR : o.verbose ? LOG_DEBUG : LOG_INFO);
	if (crypto_setup() < 0) {
		log_err("libsodium failed to initialise");
		return EXIT_FAILED;
	}
	if (o.aead == AEAD_INVALID)
		o.aead = aead_default(); /* needs sodium_init() for the CPU check */
	if (!aead_supported(o.aead)) {
		fprintf(stderr,
		        "sluice-send: --aead aes256gcm needs a CPU with AES-NI and this one "
		        "has none; use --aead auto or --aead xchacha20poly1305\n");
		return EXIT_USAGE;
	}
	if (parse_hostport(o.to, 0, &dst, &dlen, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return EXIT_USAGE;
	}
	sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (!sk) {
		log_err("out of memory for the signing key");
		goto out;
	}
	if (load_keys(&o, sk, run.sid, run.rpk, run.rid) < 0) {
		rc = EXIT_KEYS;
		goto out;
	}
	run.sk = sk;
	key_id_hex(run.sidhex, run.sid);
	if (!o.state_dir)
		seq_default_dir(run.sdir, sizeof(run.sdir));
	if (udp_tx_open(&tx, &dst, dlen, o.rate,
	                (o.gso ? UDP_TX_GSO : 0) | (o.uring_send ? UDP_TX_URING : 0), err,
	                sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	if (o.watch) {
		rc = watch(&run);
		goto out;
	}
	pathcopy = strdup(o.path);
	if (!pathcopy)
		log_err("out of memory");
	else if (send_entry(&run, o.path, o.name ? o.name : basename(pathcopy)) == 0)
		rc = EXIT_OK;
out:
	udp_tx_close(&tx);
	sodium_free(sk);
	free(pathcopy);
	return rc;
}
