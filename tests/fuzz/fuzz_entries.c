/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the bundle entry walker (proto_entry_next) and the
 * manifest's entry-list check, on arbitrary entry bytes.
 *
 * Input: entry count (4, LE) ‖ object size (4, LE, low 20 bits) ‖ entries. The walker runs
 * on the entries alone (every entry it returns must be in bounds, valid and
 * re-encode to exactly its input bytes); then the entries are wrapped in an
 * otherwise valid bundle manifest and proto_manifest_decode must accept it
 * exactly when an independent walk says the list is well-formed, holds
 * `entry count` entries and its file sizes add up to the object size. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/bytes.h"
#include "proto/manifest.h"

#define S 968u
#define K 4u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m = {0}, out;
	struct manifest_entry e;
	uint8_t re[MANIFEST_ENTRY_FIXED + MANIFEST_MAX_PATH];
	uint32_t off = 0, n = 0, count;
	uint64_t total = 0, osize;
	int rc, overflow = 0;

	if (size < 8 || size > (1u << 20))
		return 0;
	count = get_le32(data);
	/* at most 1 MiB: the manifest below then has at most 271 block hashes */
	osize = get_le32(data + 4) & 0xfffffu;
	m.entries = data + 8;
	m.entries_len = (uint32_t)(size - 8);

	while ((rc = proto_entry_next(&m, &off, &e)) == 1) {
		size_t elen = MANIFEST_ENTRY_FIXED + (size_t)e.path_len;
		const uint8_t *start = e.path - MANIFEST_ENTRY_FIXED;
		if (start < m.entries || e.path + e.path_len > m.entries + m.entries_len)
			__builtin_trap();
		if (m.entries + off != start + elen)
			__builtin_trap(); /* offset must advance by exactly one entry */
		if (!proto_path_valid(e.path, e.path_len) || e.mode > ENTRY_MODE_MAX ||
		    (e.mode == ENTRY_DIR && e.size != 0))
			__builtin_trap();
		if (proto_entry_encode(re, sizeof(re), &e) != elen || memcmp(re, start, elen) != 0)
			__builtin_trap(); /* one canonical encoding per entry */
		n++;
		if (e.size > UINT64_MAX - total)
			overflow = 1;
		total += e.size;
	}
	if (rc != 0 && rc != PROTO_ERR_LENGTH && rc != PROTO_ERR_RESERVED && rc != PROTO_ERR_FIELD)
		__builtin_trap();
	if (rc == 0 && off != m.entries_len)
		__builtin_trap();
	/* Past the end: an error, never a read. */
	uint32_t past = m.entries_len + 1;
	if (proto_entry_next(&m, &past, &e) >= 0)
		__builtin_trap();

	/* The same entries inside a bundle manifest. */
	uint32_t blocks = (uint32_t)((osize + K * S - 1) / (K * S));
	size_t len = proto_manifest_len(1, m.entries_len, blocks);
	if (len == 0)
		return 0;
	uint8_t *buf = calloc(1, len);
	if (!buf)
		abort();
	m.kind = MANIFEST_KIND_BUNDLE;
	m.object_size = osize;
	m.chunk_size = K * S;
	m.symbol_size = S;
	m.k = K;
	m.block_count = blocks;
	m.name = (const uint8_t *)"b";
	m.name_len = 1;
	m.entry_count = count;
	m.block_hashes = NULL;
	uint8_t *hashes = calloc(blocks ? blocks : 1, PROTO_HASH_LEN);
	if (!hashes)
		abort();
	m.block_hashes = hashes;
	if (proto_manifest_encode(buf, len, &m) != len)
		__builtin_trap();
	int want = rc == 0 && !overflow && n == count && count >= 1 &&
	           count <= MANIFEST_MAX_ENTRIES && total == osize;
	int got = proto_manifest_decode(buf, len, &out) == PROTO_OK;
	if (want != got)
		__builtin_trap();
	free(hashes);
	free(buf);
	return 0;
}
