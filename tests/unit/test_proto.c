/* SPDX-License-Identifier: MIT */
/* Wire format: round trips, known bytes, and rejection of every malformed
 * header, announcement, symbol header and status body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/bytes.h"
#include "proto/frame.h"

static const struct frame_header H = {.version = PROTO_VERSION,
                                      .type = FRAME_DATA,
                                      .session_id = 0x1122334455667788ull,
                                      .counter = 42,
                                      .block = 7,
                                      .symbol = 130};

static void test_header_known_bytes(void **state)
{
	static const uint8_t want[PROTO_HEADER_LEN] = {
	    'S', 'L', 'C', 'E', 1, 3, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
	    42,  0,   0,   0,   0, 0, 0, 0, 7,    0,    0,    0,    130,  0,    0,    0};
	uint8_t buf[PROTO_HEADER_LEN];
	struct frame_header h;

	(void)state;
	proto_encode_header(buf, &H);
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(proto_decode_header(buf, sizeof(buf), &h), PROTO_OK);
	assert_int_equal(h.type, FRAME_DATA);
	assert_true(h.session_id == H.session_id);
	assert_true(h.counter == 42);
	assert_int_equal(h.block, 7);
	assert_int_equal(h.symbol, 130);
}

struct bad_header {
	const char *what;
	size_t len;
	unsigned off;
	uint8_t val;
	int want;
};

static void test_header_rejects(void **state)
{
	static const struct bad_header cases[] = {
	    {"empty", 0, 0, 0, PROTO_ERR_SHORT},
	    {"one byte short", PROTO_HEADER_LEN - 1, 0, 0, PROTO_ERR_SHORT},
	    {"magic 0", PROTO_HEADER_LEN, 0, 'X', PROTO_ERR_MAGIC},
	    {"magic 3", PROTO_HEADER_LEN, 3, 'e', PROTO_ERR_MAGIC},
	    {"version 0", PROTO_HEADER_LEN, 4, 0, PROTO_ERR_VERSION},
	    {"version 2", PROTO_HEADER_LEN, 4, 2, PROTO_ERR_VERSION},
	    {"type invalid", PROTO_HEADER_LEN, 5, FRAME_INVALID, PROTO_ERR_TYPE},
	    {"type 7", PROTO_HEADER_LEN, 5, 7, PROTO_ERR_TYPE},
	    {"type 255", PROTO_HEADER_LEN, 5, 255, PROTO_ERR_TYPE},
	    {"flags lo", PROTO_HEADER_LEN, 6, 1, PROTO_ERR_RESERVED},
	    {"flags hi", PROTO_HEADER_LEN, 7, 0x80, PROTO_ERR_RESERVED},
	    {"reserved lo", PROTO_HEADER_LEN, 30, 1, PROTO_ERR_RESERVED},
	    {"reserved hi", PROTO_HEADER_LEN, 31, 1, PROTO_ERR_RESERVED},
	    {"symbol 255", PROTO_HEADER_LEN, 28, 255, PROTO_ERR_FIELD},
	    {"symbol high byte", PROTO_HEADER_LEN, 29, 1, PROTO_ERR_FIELD},
	};
	uint8_t buf[PROTO_HEADER_LEN];
	struct frame_header h;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		proto_encode_header(buf, &H);
		if (cases[i].len == PROTO_HEADER_LEN)
			buf[cases[i].off] = cases[i].val;
		int rc = proto_decode_header(buf, cases[i].len, &h);
		if (rc != cases[i].want)
			fail_msg("%s: got %d want %d", cases[i].what, rc, cases[i].want);
	}
}

static void test_header_counter_rules(void **state)
{
	uint8_t buf[PROTO_HEADER_LEN];
	struct frame_header h = H, out;

	(void)state;
	h.counter = 0; /* data frames never use counter 0 */
	proto_encode_header(buf, &h);
	assert_int_equal(proto_decode_header(buf, sizeof(buf), &out), PROTO_ERR_FIELD);
	h = H;
	h.type = FRAME_ANNOUNCE; /* announcements must have counter 0 */
	proto_encode_header(buf, &h);
	assert_int_equal(proto_decode_header(buf, sizeof(buf), &out), PROTO_ERR_FIELD);
	h.counter = 0, h.block = 0, h.symbol = 0;
	proto_encode_header(buf, &h);
	assert_int_equal(proto_decode_header(buf, sizeof(buf), &out), PROTO_OK);
	h = H;
	h.type = FRAME_END; /* status frames carry no block */
	proto_encode_header(buf, &h);
	assert_int_equal(proto_decode_header(buf, sizeof(buf), &out), PROTO_ERR_FIELD);
}

static struct announce sample_announce(void)
{
	struct announce a = {
	    .hdr = {.version = PROTO_VERSION, .type = FRAME_ANNOUNCE, .session_id = 99},
	    .aead = AEAD_XCHACHA20POLY1305,
	    .k = 128,
	    .symbol_size = 1416,
	    .chunk_size = 128 * 1416,
	    .object_size = 5ull << 30, /* > 4 GiB */
	    .manifest_len = 1000,
	    .group = 32,
	    .parity = 2,
	    .created_ns = 1234567890123ull};
	a.block_count = (uint32_t)proto_block_count(a.object_size, a.chunk_size);
	for (int i = 0; i < 8; i++)
		a.sender_id[i] = (uint8_t)i, a.receiver_id[i] = (uint8_t)(0x80 + i);
	memset(a.object_id, 0xab, sizeof(a.object_id));
	memset(a.manifest_hash, 0xcd, sizeof(a.manifest_hash));
	memset(a.sealed_key, 0xef, sizeof(a.sealed_key));
	memset(a.signature, 0x5a, sizeof(a.signature));
	return a;
}

static void test_announce_roundtrip(void **state)
{
	struct announce a = sample_announce(), b;
	uint8_t buf[PROTO_ANNOUNCE_LEN];

	(void)state;
	proto_encode_announce(buf, &a);
	assert_int_equal(proto_decode_announce(buf, sizeof(buf), &b), PROTO_OK);
	assert_true(b.object_size == a.object_size);
	assert_int_equal(b.block_count, a.block_count);
	assert_memory_equal(b.sealed_key, a.sealed_key, PROTO_SEALED_LEN);
	assert_memory_equal(b.signature, a.signature, PROTO_SIG_LEN);
	assert_true(b.created_ns == a.created_ns);
	assert_int_equal(get_le64(buf + 56), a.object_size);
	/* wrong lengths */
	assert_int_equal(proto_decode_announce(buf, sizeof(buf) - 1, &b), PROTO_ERR_LENGTH);
	assert_int_equal(proto_decode_announce(buf, sizeof(buf) + 1, &b), PROTO_ERR_LENGTH);
}

static void test_announce_rejects(void **state)
{
	struct announce b;
	uint8_t buf[PROTO_ANNOUNCE_LEN];
	struct {
		const char *what;
		unsigned off;
		uint8_t val;
	} cases[] = {
	    {"aead 0", 48, 0},         {"aead 3", 48, 3},          {"k 0", 49, 0},
	    {"k 255", 49, 255},        {"symbol size", 50, 7},     {"chunk", 52, 1},
	    {"object size", 60, 0x55}, {"block count", 64, 9},     {"manifest too big", 71, 0x10},
	    {"group 0", 224, 0},       {"group+parity", 225, 250}, {"reserved", 227, 1},
	    {"reserved 2", 231, 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct announce a = sample_announce();
		proto_encode_announce(buf, &a);
		buf[cases[i].off] = cases[i].val;
		if (proto_decode_announce(buf, sizeof(buf), &b) == PROTO_OK)
			fail_msg("accepted: %s", cases[i].what);
	}
	struct announce a = sample_announce();
	a.manifest_len = 0;
	proto_encode_announce(buf, &a);
	assert_int_equal(proto_decode_announce(buf, sizeof(buf), &b), PROTO_ERR_FIELD);
}

static void test_symhdr(void **state)
{
	uint8_t buf[PROTO_SYMHDR_LEN];
	struct symhdr s = {.k = 10, .flags = PROTO_SYMFLAG_ZSTD, .stored_len = 9 * 1416 + 1}, o;

	(void)state;
	proto_encode_symhdr(buf, &s);
	assert_int_equal(proto_decode_symhdr(buf, 1416, &o), PROTO_OK);
	assert_int_equal(o.k, 10);
	assert_int_equal(o.stored_len, s.stored_len);
	s.stored_len = 9 * 1416; /* fits in 9 symbols: k is wrong */
	proto_encode_symhdr(buf, &s);
	assert_int_equal(proto_decode_symhdr(buf, 1416, &o), PROTO_ERR_FIELD);
	s.stored_len = 10 * 1416 + 1; /* more than k symbols hold */
	proto_encode_symhdr(buf, &s);
	assert_int_equal(proto_decode_symhdr(buf, 1416, &o), PROTO_ERR_FIELD);
	s.stored_len = 10 * 1416;
	s.k = 0;
	proto_encode_symhdr(buf, &s);
	assert_int_equal(proto_decode_symhdr(buf, 1416, &o), PROTO_ERR_FIELD);
	s.k = 10;
	s.flags = 2; /* unknown flag */
	proto_encode_symhdr(buf, &s);
	assert_int_equal(proto_decode_symhdr(buf, 1416, &o), PROTO_ERR_RESERVED);
	s.flags = 0;
	proto_encode_symhdr(buf, &s);
	buf[2] = 1; /* reserved */
	assert_int_equal(proto_decode_symhdr(buf, 1416, &o), PROTO_ERR_RESERVED);
}

static void test_status(void **state)
{
	uint8_t buf[PROTO_STATUS_LEN];
	struct status s = {.frames_sent = 1ull << 40, .pass = 2, .passes = 3, .clock_ns = 77}, o;

	(void)state;
	proto_encode_status(buf, &s);
	assert_int_equal(proto_decode_status(buf, &o), PROTO_OK);
	assert_true(o.frames_sent == s.frames_sent);
	assert_int_equal(o.pass, 2);
	s.pass = 4; /* beyond passes */
	proto_encode_status(buf, &s);
	assert_int_equal(proto_decode_status(buf, &o), PROTO_ERR_FIELD);
	s.pass = 0;
	proto_encode_status(buf, &s);
	assert_int_equal(proto_decode_status(buf, &o), PROTO_ERR_FIELD);
	s.pass = 1;
	proto_encode_status(buf, &s);
	buf[31] = 1;
	assert_int_equal(proto_decode_status(buf, &o), PROTO_ERR_RESERVED);
}

static void test_frame_lengths(void **state)
{
	(void)state;
	/* 1500-byte MTU: 1472-byte datagrams carry 1416-byte symbols. */
	assert_int_equal(proto_frame_len(FRAME_DATA, 1416), 1472);
	assert_int_equal(proto_frame_len(FRAME_MANIFEST, 8916), 8972);
	assert_int_equal(proto_frame_len(FRAME_ANNOUNCE, 1416), 296);
	assert_true(proto_wire_blocks(64, 32, 2) == 68);
	assert_true(proto_wire_blocks(65, 32, 2) == 71);
	assert_true(proto_wire_blocks(0, 32, 2) == 0);
	assert_int_equal(proto_frame_len(FRAME_END, 1416), 80);
	assert_int_equal(proto_frame_len(FRAME_INVALID, 1416), 0);
	assert_true(proto_block_count(0, 100) == 0);
	assert_true(proto_block_count(100, 100) == 1);
	assert_true(proto_block_count(101, 100) == 2);
	assert_true(proto_block_count(5ull << 30, 181248) == 29621);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_known_bytes),
	    cmocka_unit_test(test_header_rejects),
	    cmocka_unit_test(test_header_counter_rules),
	    cmocka_unit_test(test_announce_roundtrip),
	    cmocka_unit_test(test_announce_rejects),
	    cmocka_unit_test(test_symhdr),
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_frame_lengths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
