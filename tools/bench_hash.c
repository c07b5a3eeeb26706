/* SPDX-License-Identifier: MIT */
/* bench_hash: throughput of the content stream's hashing, as sender/plan.c
 * and receiver/writer.c do it, with libsodium's BLAKE2b as the baseline the
 * ratios are taken against, and the alternatives measured in the same run.
 *
 * Usage: bench_hash [MIB [BLOCK_BYTES]]   (default 256 MiB, 181248-byte
 *                                          blocks: k = 128 symbols of 1416)
 *
 * The content stream is one BLAKE2b-256 over the object, finished on a copy
 * of its state at every block end (PROTOCOL.md §8.1). The same stream is run
 * on libgcrypt's BLAKE2b-256 and checked to give the same prefix hashes, so
 * the comparison is of two implementations of one function. SHA-256 and
 * SHA-512 (libgcrypt, plain streams, no prefix hashes) show what another
 * hash function would cost on this CPU; they are not what the protocol uses.
 * Each line runs three times and reports the best.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gcrypt.h>
#include <sodium.h>

#include "common/util.h"

#define HASH_LEN 32
#define ROUNDS   3

/* The prefix hashes of every block, on libsodium, as the protocol does. */
static void stream_sodium(const uint8_t *data, size_t size, size_t block, uint8_t *out)
{
	crypto_generichash_state whole, snap;

	crypto_generichash_init(&whole, NULL, 0, HASH_LEN);
	for (size_t off = 0, b = 0; off < size; off += block, b++) {
		size_t n = size - off < block ? size - off : block;
		crypto_generichash_update(&whole, data + off, n);
		snap = whole;
		crypto_generichash_final(&snap, out + b * HASH_LEN, HASH_LEN);
	}
}

/* The same stream on libgcrypt: gcry_md_copy is its state snapshot. */
static int stream_gcrypt(const uint8_t *data, size_t size, size_t block, uint8_t *out)
{
	gcry_md_hd_t whole, snap;

	if (gcry_md_open(&whole, GCRY_MD_BLAKE2B_256, 0) != 0)
		return -1;
	for (size_t off = 0, b = 0; off < size; off += block, b++) {
		size_t n = size - off < block ? size - off : block;
		gcry_md_write(whole, data + off, n);
		if (gcry_md_copy(&snap, whole) != 0) {
			gcry_md_close(whole);
			return -1;
		}
		memcpy(out + b * HASH_LEN, gcry_md_read(snap, 0), HASH_LEN);
		gcry_md_close(snap);
	}
	gcry_md_close(whole);
	return 0;
}

/* One plain stream of another function, for its speed alone. */
static int plain_gcrypt(int algo, const uint8_t *data, size_t size, size_t block, uint8_t *out)
{
	gcry_md_hd_t h;

	if (gcry_md_open(&h, algo, 0) != 0)
		return -1;
	for (size_t off = 0; off < size; off += block)
		gcry_md_write(h, data + off, size - off < block ? size - off : block);
	memcpy(out, gcry_md_read(h, 0), HASH_LEN);
	gcry_md_close(h);
	return 0;
}

enum which { SODIUM, GCRYPT_B2, SHA256, SHA512 };

static double best_gbps(enum which w, const uint8_t *data, size_t size, size_t block, uint8_t *out)
{
	double best = 0;

	for (int r = 0; r < ROUNDS; r++) {
		uint64_t t0 = now_ns();
		int rc = 0;

		switch (w) {
		case SODIUM:
			stream_sodium(data, size, block, out);
			break;
		case GCRYPT_B2:
			rc = stream_gcrypt(data, size, block, out);
			break;
		case SHA256:
			rc = plain_gcrypt(GCRY_MD_SHA256, data, size, block, out);
			break;
		case SHA512:
			rc = plain_gcrypt(GCRY_MD_SHA512, data, size, block, out);
			break;
		}
		if (rc < 0) {
			fprintf(stderr, "bench_hash: libgcrypt refused the hash\n");
			exit(1);
		}
		double gbps = (double)size / (double)(now_ns() - t0);
		if (gbps > best)
			best = gbps;
	}
	return best;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	size_t block = argc > 2 ? strtoul(argv[2], NULL, 10) : 181248;

	if (argc > 3 || mib == 0 || mib > 65536 || block < 64 || block > (64u << 20)) {
		fprintf(stderr, "usage: bench_hash [MIB (1-65536) [BLOCK_BYTES (64-67108864)]]\n");
		return 2;
	}
	if (sodium_init() < 0 || !gcry_check_version(GCRYPT_VERSION)) {
		fprintf(stderr, "bench_hash: cannot initialise libsodium or libgcrypt\n");
		return 1;
	}
	gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
	gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);

	size_t size = mib << 20, blocks = (size + block - 1) / block;
	uint8_t *data = malloc(size);
	uint8_t *a = malloc(blocks * HASH_LEN), *b = malloc(blocks * HASH_LEN);
	if (!data || !a || !b) {
		fprintf(stderr, "bench_hash: not enough memory for %zu MiB\n", mib);
		return 1;
	}
	randombytes_buf(data, size);

	stream_sodium(data, size, block, a);
	if (stream_gcrypt(data, size, block, b) < 0 || memcmp(a, b, blocks * HASH_LEN) != 0) {
		fprintf(stderr, "bench_hash: libgcrypt's BLAKE2b-256 prefix hashes differ from "
		                "libsodium's\n");
		return 1;
	}

	printf("%zu MiB in %zu-byte blocks (%zu prefix hashes), best of %d, one thread\n", mib,
	       block, blocks, ROUNDS);
	double base = best_gbps(SODIUM, data, size, block, a);
	printf("  BLAKE2b-256 stream, libsodium (baseline)  %6.2f GB/s\n", base);
	static const struct {
		enum which w;
		const char *name;
	} others[] = {
	    {GCRYPT_B2, "BLAKE2b-256 stream, libgcrypt          "},
	    {SHA256, "SHA-256 plain stream, libgcrypt        "},
	    {SHA512, "SHA-512 plain stream, libgcrypt        "},
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		double g = best_gbps(others[i].w, data, size, block, b);
		printf("  %s   %6.2f GB/s  %5.2fx\n", others[i].name, g, g / base);
	}
	free(data);
	free(a);
	free(b);
	return 0;
}
