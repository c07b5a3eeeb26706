/* SPDX-License-Identifier: MIT */
/* libFuzzer target: every frame decoder on arbitrary datagrams. */
#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_header h;
	struct announce a;
	struct symhdr s;
	struct status st;
	struct beacon b;

	if (proto_decode_header(data, size, &h) != PROTO_OK)
		return 0;
	(void)proto_decode_announce(data, size, &a);
	(void)proto_decode_beacon(data, size, &b);
	/* A symbol frame's symbol size is whatever its length implies. */
	if (size > PROTO_SYMBOL_OVERHEAD && size - PROTO_SYMBOL_OVERHEAD <= PROTO_MAX_SYMBOL)
		(void)proto_decode_symhdr(data + PROTO_HEADER_LEN,
		                          (uint16_t)(size - PROTO_SYMBOL_OVERHEAD), &s);
	if (size >= PROTO_HEADER_LEN + PROTO_STATUS_LEN)
		(void)proto_decode_status(data + PROTO_HEADER_LEN, &st);
	return 0;
}
