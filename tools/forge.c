/* SPDX-License-Identifier: MIT */
/* sluice-forge: a TEST tool that plays the attacker on the low side of the
 * diode, for the resource-exhaustion tests (tests/integration/
 * test_resources.sh). It uses the real wire encoders, so what it sends gets
 * exactly as far into sluice-recv as its keys allow.
 *
 *   announce  N announcements, each with a fresh random session id and
 *             session key, signed with --key (a sender key the receiver may
 *             or may not trust) and sealed to --recipient; the layout says
 *             --size bytes. --save FILE also writes the 296-byte frames
 *             there, back to back, to be replayed later.
 *   replay    resend the announcements saved in FILE, --count rounds,
 *             --interval ms apart: an attacker who recorded genuine traffic
 *             and plays it back (no key needed).
 *   garbage   N datagrams of three kinds in turn: random bytes of random
 *             length; a valid header with a random session id and type and
 *             a random body of the right length; a 296-byte announcement
 *             with random fields.
 *
 * Everything is sent to --to, paced at --pps datagrams per second (0: as
 * fast as the socket takes them). Prints what it sent on stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "common/crypto.h"
#include "common/keys.h"
#include "common/util.h"
#include "proto/bytes.h"
#include "proto/frame.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2
#define FORGE_S      1416 /* symbol size of a 1500-byte MTU over IPv4 */
#define FORGE_K      128

struct forge {
	int fd;
	uint64_t pps, sent, t0;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: sluice-forge announce --to H:P --key SENDER.key --recipient RECEIVER.pub\n"
	        "                             [--count N] [--size BYTES] [--save FILE]\n"
	        "       sluice-forge replay   --to H:P --file FILE [--count ROUNDS]\n"
	        "                             [--interval MS]\n"
	        "       sluice-forge garbage  --to H:P [--count N]\n"
	        "  common: [--pps N] (datagrams per second, 0 = unpaced)\n"
	        "TEST TOOL: crafts hostile traffic for sluice-recv's resource tests.\n");
}

static int send_dgram(struct forge *f, const uint8_t *buf, size_t len)
{
	if (f->pps) {
		/* Sleep until this datagram's slot: sent / pps seconds in. */
		uint64_t due = f->t0 + f->sent * 1000000000ull / f->pps;
		sleep_until_ns(due);
	}
	f->sent++;
	/* A full socket buffer or an ICMP error from a dead port is part of
	 * the game: count the attempt and go on. */
	(void)send(f->fd, buf, len, 0);
	return 0;
}

/* One announcement: fresh session id and key, signed, sealed. */
static int make_announce(uint8_t out[static PROTO_ANNOUNCE_LEN], const uint8_t *sk,
                         const uint8_t sid[static PROTO_KEYID_LEN], const uint8_t *rpk,
                         const uint8_t rid[static PROTO_KEYID_LEN], uint64_t size)
{
	uint8_t key[SESSION_KEY_LEN];
	struct announce an = {.hdr = {.version = PROTO_VERSION, .type = FRAME_ANNOUNCE},
	                      .aead = AEAD_XCHACHA20POLY1305,
	                      .k = FORGE_K,
	                      .symbol_size = FORGE_S,
	                      .chunk_size = FORGE_K * FORGE_S,
	                      .object_size = size,
	                      .created_ns = wall_ns(),
	                      .group = 32,
	                      .parity = 2};
	uint64_t blocks = proto_block_count(size, an.chunk_size);
	int rc = 0;

	if (blocks > UINT32_MAX)
		return -EINVAL;
	an.block_count = (uint32_t)blocks;
	/* A manifest length that fits the block count (136 + name + hashes +
	 * signature), so nothing but the signature can give the forgery away. */
	uint64_t mlen = 136 + 8 + 32 * blocks + 64;
	an.manifest_len = mlen > PROTO_MAX_MANIFEST ? PROTO_MAX_MANIFEST : (uint32_t)mlen;
	randombytes_buf(&an.hdr.session_id, sizeof(an.hdr.session_id));
	memcpy(an.sender_id, sid, PROTO_KEYID_LEN);
	memcpy(an.receiver_id, rid, PROTO_KEYID_LEN);
	randombytes_buf(an.object_id, sizeof(an.object_id));
	randombytes_buf(an.manifest_hash, sizeof(an.manifest_hash));
	randombytes_buf(key, sizeof(key));
	if (crypto_box_seal(an.sealed_key, key, sizeof(key), rpk) != 0)
		rc = -EINVAL;
	proto_encode_announce(out, &an);
	crypto_sign_detached(out + PROTO_ANNOUNCE_SIGNED_LEN, NULL, out, PROTO_ANNOUNCE_SIGNED_LEN,
	                     sk);
	sodium_memzero(key, sizeof(key));
	return rc;
}

static int cmd_announce(struct forge *f, const char *keyp, const char *recp, uint64_t count,
                        uint64_t size, const char *save)
{
	uint8_t *sk = sodium_malloc(64);
	uint8_t rpk[32], sid[KEYID_LEN], rid[KEYID_LEN], buf[PROTO_ANNOUNCE_LEN];
	char err[512];
	FILE *out = NULL;
	int rc = EXIT_RUNTIME;

	if (!sk)
		return EXIT_RUNTIME;
	if (keyfile_read(keyp, KEY_SIGN_SECRET, sk, sid, err, sizeof(err)) < 0 ||
	    keyfile_read(recp, KEY_BOX_PUBLIC, rpk, rid, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-forge: %s\n", err);
		goto out;
	}
	if (save && !(out = fopen(save, "wb"))) {
		fprintf(stderr, "sluice-forge: cannot write %s: %s\n", save, strerror(errno));
		goto out;
	}
	for (uint64_t i = 0; i < count; i++) {
		if (make_announce(buf, sk, sid, rpk, rid, size) < 0) {
			fprintf(stderr,
			        "sluice-forge: cannot build an announcement of %" PRIu64 " bytes\n",
			        size);
			goto out;
		}
		if (out && fwrite(buf, sizeof(buf), 1, out) != 1)
			goto out;
		send_dgram(f, buf, sizeof(buf));
	}
	printf("announcements sent: %" PRIu64 "\n", f->sent);
	rc = 0;
out:
	if (out && fclose(out) != 0)
		rc = EXIT_RUNTIME;
	sodium_free(sk);
	return rc;
}

static int cmd_replay(struct forge *f, const char *file, uint64_t rounds, uint64_t interval_ms)
{
	uint8_t *all = NULL;
	size_t n = 0, cap = 0;
	uint8_t buf[PROTO_ANNOUNCE_LEN];
	FILE *in = fopen(file, "rb");

	if (!in) {
		fprintf(stderr, "sluice-forge: cannot read %s: %s\n", file, strerror(errno));
		return EXIT_RUNTIME;
	}
	while (fread(buf, sizeof(buf), 1, in) == 1) {
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			uint8_t *p = realloc(all, cap * sizeof(buf));
			if (!p) {
				free(all);
				fclose(in);
				return EXIT_RUNTIME;
			}
			all = p;
		}
		memcpy(all + n * sizeof(buf), buf, sizeof(buf));
		n++;
	}
	fclose(in);
	for (uint64_t r = 0; r < rounds; r++) {
		uint64_t next = now_ns() + interval_ms * 1000000ull;
		for (size_t i = 0; i < n; i++)
			send_dgram(f, all + i * sizeof(buf), sizeof(buf));
		if (r + 1 < rounds)
			sleep_until_ns(next);
	}
	free(all);
	printf("replayed: %" PRIu64 " datagrams (%zu announcements)\n", f->sent, n);
	return 0;
}

static int cmd_garbage(struct forge *f, uint64_t count)
{
	static const uint8_t types[] = {FRAME_MANIFEST, FRAME_DATA, FRAME_HEARTBEAT, FRAME_END};
	uint8_t buf[2048];

	for (uint64_t i = 0; i < count; i++) {
		size_t len;
		switch (i % 3) {
		case 0: /* noise */
			len = randombytes_uniform(1500);
			randombytes_buf(buf, len);
			break;
		case 1: { /* well-formed header, session nobody announced */
			uint8_t t = types[randombytes_uniform(sizeof(types))];
			struct frame_header h = {.version = PROTO_VERSION, .type = t};
			randombytes_buf(&h.session_id, sizeof(h.session_id));
			h.counter = 1 + randombytes_uniform(1u << 30);
			if (t == FRAME_MANIFEST || t == FRAME_DATA) {
				h.block = randombytes_uniform(1000);
				h.symbol = (uint16_t)randombytes_uniform(PROTO_MAX_SYMBOLS);
			}
			len = proto_frame_len(t, FORGE_S);
			randombytes_buf(buf, len);
			proto_encode_header(buf, &h);
			break;
		}
		default: /* announcement-shaped, random fields */
			len = PROTO_ANNOUNCE_LEN;
			randombytes_buf(buf, len);
			proto_encode_header(buf, &(struct frame_header){.version = PROTO_VERSION,
			                                                .type = FRAME_ANNOUNCE});
			break;
		}
		send_dgram(f, buf, len);
	}
	printf("garbage sent: %" PRIu64 "\n", f->sent);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"to", required_argument, NULL, 't'},
	                                         {"key", required_argument, NULL, 'k'},
	                                         {"recipient", required_argument, NULL, 'r'},
	                                         {"count", required_argument, NULL, 'n'},
	                                         {"size", required_argument, NULL, 's'},
	                                         {"save", required_argument, NULL, 'S'},
	                                         {"file", required_argument, NULL, 'f'},
	                                         {"interval", required_argument, NULL, 'i'},
	                                         {"pps", required_argument, NULL, 'p'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	const char *to = NULL, *key = NULL, *rec = NULL, *save = NULL, *file = NULL, *cmd;
	uint64_t count = 1000, size = 1 << 20, interval = 100;
	struct forge f = {.fd = -1};
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[256], *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			to = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'r':
			rec = optarg;
			break;
		case 'S':
			save = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'n':
		case 's':
		case 'i':
		case 'p': {
			uint64_t v = strtoull(optarg, &end, 10);
			if (*end || end == optarg) {
				fprintf(stderr, "sluice-forge: not a number: '%s'\n", optarg);
				return EXIT_USAGE;
			}
			*(c == 'n' ? &count : c == 's' ? &size : c == 'i' ? &interval : &f.pps) = v;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || !to) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	if (crypto_setup() < 0)
		return EXIT_RUNTIME;
	if (parse_hostport(to, 0, &ss, &sl, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-forge: %s\n", err);
		return EXIT_USAGE;
	}
	f.fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (f.fd < 0 || connect(f.fd, (struct sockaddr *)&ss, sl) < 0) {
		fprintf(stderr, "sluice-forge: socket: %s\n", strerror(errno));
		return EXIT_RUNTIME;
	}
	f.t0 = now_ns();
	if (strcmp(cmd, "announce") == 0 && key && rec)
		c = cmd_announce(&f, key, rec, count, size, save);
	else if (strcmp(cmd, "replay") == 0 && file)
		c = cmd_replay(&f, file, count, interval);
	else if (strcmp(cmd, "garbage") == 0)
		c = cmd_garbage(&f, count);
	else {
		usage(stderr);
		c = EXIT_USAGE;
	}
	close(f.fd);
	return c;
}
