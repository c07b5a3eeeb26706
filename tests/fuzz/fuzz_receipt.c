/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the receipt-log line parser the verifier runs on lines
 * an attacker may have edited. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "receiver/receipt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t prev[32];
	char event[64], tiny[2];
	uint64_t n;

	/* libFuzzer's buffer is exactly size bytes: ASan catches any over-read */
	if (receipt_parse_line((const char *)data, size, &n, event, sizeof(event), prev) == 0) {
		/* the event came back NUL-terminated and without a NUL inside */
		if (strnlen(event, sizeof(event)) >= sizeof(event))
			__builtin_trap();
		/* the same line without outputs is judged the same */
		if (receipt_parse_line((const char *)data, size, NULL, NULL, 0, NULL) != 0)
			__builtin_trap();
	}
	/* an event buffer too small must fail cleanly, never overflow */
	(void)!receipt_parse_line((const char *)data, size, &n, tiny, sizeof(tiny), prev);
	return 0;
}
