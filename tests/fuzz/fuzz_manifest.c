/* SPDX-License-Identifier: MIT */
/* libFuzzer target: manifest decoder and entry-list walker. */
#include <stddef.h>
#include <stdint.h>

#include "proto/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m;
	struct manifest_entry e;
	uint32_t off = 0;

	if (proto_manifest_decode(data, size, &m) != PROTO_OK)
		return 0;
	while (proto_entry_next(&m, &off, &e) == 1)
		(void)proto_path_valid(e.path, e.path_len);
	/* every block hash must be inside the buffer */
	volatile uint8_t x = 0;
	for (uint32_t b = 0; b < m.block_count; b++)
		x ^= m.block_hashes[(size_t)b * 32 + 31];
	(void)x;
	return 0;
}
