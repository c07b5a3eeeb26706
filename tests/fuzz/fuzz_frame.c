/* SPDX-License-Identifier: MIT */
/* libFuzzer target: every frame decoder on arbitrary datagrams. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_header h;
	struct announce a;
	struct symhdr s;
	struct status st;
	struct beacon b;

	int ok = 0;

	if (proto_decode_header(data, size, &h) != PROTO_OK)
		return 0;
	/* The decoders must be total: any input, a defined answer. At most
	 * one of the two typed decoders can accept a datagram. */
	ok += proto_decode_announce(data, size, &a) == PROTO_OK;
	ok += proto_decode_beacon(data, size, &b) == PROTO_OK;
	if (ok > 1)
		abort();
	/* A symbol frame's symbol size is whatever its length implies. */
	if (size > PROTO_SYMBOL_OVERHEAD && size - PROTO_SYMBOL_OVERHEAD <= PROTO_MAX_SYMBOL)
		if (proto_decode_symhdr(data + PROTO_HEADER_LEN,
		                        (uint16_t)(size - PROTO_SYMBOL_OVERHEAD), &s) == PROTO_OK &&
		    (s.k == 0 || s.stored_len > (uint32_t)s.k * (size - PROTO_SYMBOL_OVERHEAD)))
			abort(); /* an accepted symbol header is in range */
	if (size >= PROTO_HEADER_LEN + PROTO_STATUS_LEN)
		if (proto_decode_status(data + PROTO_HEADER_LEN, &st) == PROTO_OK &&
		    (st.pass == 0 || st.pass > st.passes))
			abort(); /* an accepted status frame has 1 <= pass <= passes */
	return 0;
}
