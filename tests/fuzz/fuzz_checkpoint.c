/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the checkpoint parser and the field getters that
 * sluice-receipts runs on lines an attacker may have edited. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "receiver/receipt.h"

static const char *const keys[] = {"n",    "time", "event",  "prev",  "name", "size",
                                   "head", "sig",  "offset", "bytes", "",     "records"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct receipt_checkpoint cp;
	uint8_t msg[RECEIPT_CP_MSG_LEN], pk[32] = {0};
	char out[80], tiny[1];
	size_t len;
	uint64_t v;

	/* libFuzzer's buffer is exactly size bytes: ASan catches any over-read */
	if (receipt_parse_checkpoint(line, size, &cp) == 0) {
		/* a checkpoint is a receipt line, and its fields read back the same */
		if (receipt_parse_line(line, size, NULL, NULL, 0, NULL) != 0)
			__builtin_trap();
		if (receipt_get_u64(line, size, "records", &v) != 0 || v != cp.records)
			__builtin_trap();
		if (receipt_get_str(line, size, "time", out, sizeof(out), &len) != 0 ||
		    len != RECEIPT_TIME_LEN || memcmp(out, cp.time, len) != 0)
			__builtin_trap();
		receipt_checkpoint_message(msg, &cp);
		(void)!receipt_checkpoint_verify(&cp, pk);
	}
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		int rc = receipt_get_str(line, size, keys[k], out, sizeof(out), &len);

		if (rc == 0 && (len >= sizeof(out) || out[len] != '\0'))
			__builtin_trap();
		/* too small a buffer fails cleanly, never overflows */
		rc = receipt_get_str(line, size, keys[k], tiny, sizeof(tiny), NULL);
		if (rc == 0 && tiny[0] != '\0')
			__builtin_trap();
		(void)!receipt_get_u64(line, size, keys[k], &v);
	}
	return 0;
}
