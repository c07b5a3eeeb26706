/* SPDX-License-Identifier: MIT */
/* bench_aead: frame seal and open throughput of common/crypto.c for each
 * AEAD implementation, measured in the same run, with libsodium's
 * AES-256-GCM as the baseline the ratios are taken against.
 *
 * Usage: bench_aead [DATAGRAM_BYTES ...]   (default 1472 8972: MTU 1500, 9000)
 *
 * Each line seals (or seals, then opens) whole datagrams in place through
 * aead_seal_frame / aead_open_frame, as sluice-send and sluice-recv do, for a
 * fixed time, so the run is bounded. Before timing, the two AES-256-GCM
 * implementations are checked to give the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/crypto.h"
#include "common/util.h"

#define PHASE_NS 400000000ull /* per timed loop */

struct impl {
	const char *name;
	enum aead_alg alg;
	enum aead_impl gcm;
};

static struct aead_ctx *make(const struct impl *im, const uint8_t key[static 32])
{
	if (im->alg == AEAD_AES256GCM && aead_force_impl(im->gcm) < 0)
		return NULL;
	return aead_new(im->alg, key);
}

/* GB/s of payload through seal (open = 0) or seal + open (open = 1), per
 * operation. The frame counter changes each time so no nonce repeats. */
static double run(struct aead_ctx *c, uint8_t *frame, size_t len, int open)
{
	uint64_t t0 = now_ns(), t, n = 0;

	do {
		for (int i = 0; i < 256; i++, n++) {
			memcpy(frame + 16, &n, sizeof(n));
			if (aead_seal_frame(c, frame, len) < 0 ||
			    (open && aead_open_frame(c, frame, len) < 0)) {
				fprintf(stderr, "bench_aead: frame did not round-trip\n");
				exit(1);
			}
		}
		t = now_ns() - t0;
	} while (t < PHASE_NS);
	return (double)n * (double)(len - 48) * (open ? 2 : 1) / (double)t;
}

static int same_bytes(const uint8_t key[static 32], size_t len)
{
	static const struct impl gs = {"", AEAD_AES256GCM, AEAD_IMPL_LIBSODIUM};
	static const struct impl gg = {"", AEAD_AES256GCM, AEAD_IMPL_LIBGCRYPT};
	struct aead_ctx *a = make(&gs, key), *b = make(&gg, key);
	uint8_t *x = malloc(len), *y = malloc(len);
	int ok = a && b && x && y;

	if (ok) {
		randombytes_buf(x, len);
		memcpy(y, x, len);
		ok = aead_seal_frame(a, x, len) == 0 && aead_seal_frame(b, y, len) == 0 &&
		     memcmp(x, y, len) == 0;
	}
	aead_free(a);
	aead_free(b);
	free(x);
	free(y);
	return ok;
}

int main(int argc, char **argv)
{
	static const struct impl impls[] = {
	    {"aes256gcm  libsodium", AEAD_AES256GCM, AEAD_IMPL_LIBSODIUM},
	    {"aes256gcm  libgcrypt", AEAD_AES256GCM, AEAD_IMPL_LIBGCRYPT},
	    {"xchacha20poly1305   ", AEAD_XCHACHA20POLY1305, AEAD_IMPL_LIBSODIUM},
	};
	size_t sizes[16] = {1472, 8972}, nsizes = 2;
	uint8_t key[32];

	if (crypto_setup() < 0)
		return 1;
	if (argc > 1) {
		nsizes = 0;
		for (int i = 1; i < argc && nsizes < 16; i++) {
			sizes[nsizes] = strtoul(argv[i], NULL, 10);
			if (sizes[nsizes] < 48 || sizes[nsizes] > 65507) {
				fprintf(stderr, "bench_aead: a datagram is 48 to 65507 bytes\n");
				return 2;
			}
			nsizes++;
		}
	}
	randombytes_buf(key, sizeof(key));
	printf("frame AEAD, payload GB/s per operation (one thread); ratio against "
	       "libsodium AES-256-GCM in this run\n");
	for (size_t s = 0; s < nsizes; s++) {
		size_t len = sizes[s];
		uint8_t *frame = calloc(1, len);
		double base[2] = {0, 0};

		if (!frame)
			return 1;
		if (!crypto_aead_aes256gcm_is_available() || aead_gcm_impl() != AEAD_IMPL_LIBGCRYPT)
			printf("%zu-byte datagrams: AES-NI or libgcrypt missing, AES-GCM rows "
			       "skipped\n",
			       len);
		else if (!same_bytes(key, len)) {
			fprintf(stderr, "bench_aead: libgcrypt and libsodium AES-GCM differ\n");
			return 1;
		}
		for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
			struct aead_ctx *c = make(&impls[i], key);
			double g[2];

			if (!c)
				continue;
			randombytes_buf(frame, len);
			g[0] = run(c, frame, len, 0);
			g[1] = run(c, frame, len, 1);
			aead_free(c);
			if (i == 0)
				memcpy(base, g, sizeof(base));
			printf("%5zu B  %s  seal %5.2f GB/s", len, impls[i].name, g[0]);
			if (base[0] > 0)
				printf(" (%.2fx)", g[0] / base[0]);
			printf("   seal+open %5.2f GB/s", g[1]);
			if (base[1] > 0)
				printf(" (%.2fx)", g[1] / base[1]);
			printf("\n");
		}
		free(frame);
	}
	/* leave the process default as crypto_setup() chose it */
	(void)!aead_force_impl(AEAD_IMPL_LIBGCRYPT);
	return 0;
}
