/* SPDX-License-Identifier: MIT */
/* Beacons and links: the BEACON frame round-trips and every malformed one
 * is refused; the receiver accepts a signed beacon once, refuses replays
 * (same counter, or an older sender clock under a new link id), forgeries
 * and untrusted keys, records link-up / link-down (stopping beacon, and
 * silence) and computes the loss between beacons exactly. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/keys.h"
#include "proto/frame.h"
#include "receiver/ledger.h"
#include "receiver/receipt.h"
#include "receiver/session.h"
#include "receiver/staging.h"

#include "fixture.h"

#define NS 1000000000ull

static struct rcv_fixture *fx_new(void)
{
	struct rcv_fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	rcv_fixture_open(f, "/tmp/sluice-link.XXXXXX");
	f->cfg.max_object_size = 1u << 20;
	f->cfg.memory_budget = 8u << 20;
	f->cfg.link_timeout_ns = 5 * NS;
	rcv_fixture_start(f);
	return f;
}

static void fx_free(struct rcv_fixture *f)
{
	rcv_fixture_close(f);
	free(f);
}

/* A signed beacon from f's trusted key (or, with other_sk, another key). */
static void make(struct rcv_fixture *f, uint8_t out[PROTO_BEACON_LEN], uint64_t link,
                 uint64_t counter, uint64_t clock, uint64_t sent, uint8_t state,
                 const uint8_t *other_sk)
{
	struct beacon b = {.hdr = {.version = PROTO_VERSION,
	                           .type = FRAME_BEACON,
	                           .session_id = link,
	                           .counter = counter},
	                   .clock_ns = clock,
	                   .datagrams_sent = sent,
	                   .objects_sent = 0,
	                   .interval_ms = 1000,
	                   .state = state};

	memcpy(b.sender_id, f->trusted.id, PROTO_KEYID_LEN);
	memcpy(b.receiver_id, f->cfg.my_id, PROTO_KEYID_LEN);
	proto_encode_beacon(out, &b);
	crypto_sign_detached(out + PROTO_BEACON_SIGNED_LEN, NULL, out, PROTO_BEACON_SIGNED_LEN,
	                     other_sk ? other_sk : f->sign_sk);
}

static void feed(struct rcv_fixture *f, const uint8_t *frame, uint64_t now)
{
	uint8_t copy[PROTO_BEACON_LEN];

	memcpy(copy, frame, sizeof(copy));
	rcv_handle(&f->r, copy, sizeof(copy), now);
}

static int log_has(struct rcv_fixture *f, const char *needle)
{
	char buf[1 << 16];
	FILE *fp = fopen(f->receipts, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static void beacon_round_trip_and_malformed(void **state)
{
	struct rcv_fixture *f = fx_new();
	uint8_t fr[PROTO_BEACON_LEN], m[PROTO_BEACON_LEN];
	struct beacon b;

	(void)state;
	make(f, fr, 77, 3, 123456789, 1000, BEACON_RUNNING, NULL);
	assert_int_equal(proto_decode_beacon(fr, sizeof(fr), &b), PROTO_OK);
	assert_int_equal(b.hdr.session_id, 77);
	assert_int_equal(b.hdr.counter, 3);
	assert_int_equal(b.clock_ns, 123456789);
	assert_int_equal(b.datagrams_sent, 1000);
	assert_int_equal(b.interval_ms, 1000);
	assert_int_equal(b.state, BEACON_RUNNING);
	assert_int_equal(proto_decode_beacon(fr, sizeof(fr) - 1, &b), PROTO_ERR_LENGTH);
	for (unsigned i = 77; i < PROTO_BEACON_SIGNED_LEN; i++) {
		memcpy(m, fr, sizeof(m));
		m[i] = 1;
		assert_int_equal(proto_decode_beacon(m, sizeof(m), &b), PROTO_ERR_RESERVED);
	}
	memcpy(m, fr, sizeof(m));
	m[76] = 3; /* state */
	assert_int_equal(proto_decode_beacon(m, sizeof(m), &b), PROTO_ERR_FIELD);
	memcpy(m, fr, sizeof(m));
	memset(m + 72, 0, 4); /* interval 0 */
	assert_int_equal(proto_decode_beacon(m, sizeof(m), &b), PROTO_ERR_FIELD);
	memcpy(m, fr, sizeof(m));
	memset(m + 8, 0, 8); /* link id 0 */
	assert_int_equal(proto_decode_beacon(m, sizeof(m), &b), PROTO_ERR_FIELD);
	memcpy(m, fr, sizeof(m));
	m[24] = 1; /* block */
	assert_int_equal(proto_decode_beacon(m, sizeof(m), &b), PROTO_ERR_FIELD);
	fx_free(f);
}

static void receiver_accepts_once_and_refuses_replays(void **state)
{
	struct rcv_fixture *f = fx_new();
	uint8_t fr[PROTO_BEACON_LEN], other_pk[32], other_sk[64];
	uint64_t t = 100 * NS;

	(void)state;
	make(f, fr, 5, 1, 1000, 0, BEACON_RUNNING, NULL);
	feed(f, fr, t);
	assert_int_equal(f->r.stats.beacon_ok, 1);
	assert_true(log_has(f, "\"event\":\"link-up\""));
	feed(f, fr, t + 1); /* the same beacon again */
	assert_int_equal(f->r.stats.beacon_stale, 1);
	make(f, fr, 6, 1, 999, 0, BEACON_RUNNING, NULL); /* recorded earlier, other link */
	feed(f, fr, t + 2);
	assert_int_equal(f->r.stats.beacon_stale, 2);
	make(f, fr, 5, 2, 2000, 10, BEACON_RUNNING, NULL);
	fr[100] ^= 1; /* signature */
	feed(f, fr, t + 3);
	assert_int_equal(f->r.stats.beacon_bad_signature, 1);
	crypto_sign_keypair(other_pk, other_sk);
	make(f, fr, 5, 2, 2000, 10, BEACON_RUNNING, other_sk); /* right id, wrong key */
	feed(f, fr, t + 4);
	assert_int_equal(f->r.stats.beacon_bad_signature, 2);
	make(f, fr, 5, 2, 2000, 10, BEACON_RUNNING, NULL);
	fr[32] ^= 1; /* sender id of no trusted key */
	feed(f, fr, t + 5);
	assert_int_equal(f->r.stats.beacon_bad, 1);
	assert_int_equal(f->r.stats.beacon_ok, 1);
	fx_free(f);
}

static void link_down_and_exact_loss(void **state)
{
	struct rcv_fixture *f = fx_new();
	uint8_t fr[PROTO_BEACON_LEN];
	uint64_t t = 100 * NS;

	(void)state;
	make(f, fr, 9, 1, 1000, 0, BEACON_RUNNING, NULL);
	feed(f, fr, t);
	/* the sender sent 10 datagrams after beacon 1 (beacon 1 included),
	 * beacon 2 was lost, then beacon 3 with 25 sent before it */
	make(f, fr, 9, 3, 3000, 25, BEACON_RUNNING, NULL);
	feed(f, fr, t + 2 * NS);
	/* received: beacon 1 only; sent 25: 24 lost, one of them a beacon */
	rcv_tick(&f->r, t + 3 * NS);
	make(f, fr, 9, 4, 4000, 26, BEACON_STOPPING, NULL);
	feed(f, fr, t + 4 * NS);
	assert_true(log_has(f, "\"event\":\"link-down\""));
	assert_true(log_has(f, "the sender stopped"));
	rcv_abandon_all(&f->r, "test over"); /* writes the hour's record */
	assert_true(log_has(f, "\"datagrams_sent\":26,\"datagrams_received\":2,"
	                       "\"datagrams_lost\":24"));
	assert_true(log_has(f, "\"beacons_lost\":1"));

	/* a new link that goes silent */
	make(f, fr, 10, 1, 5000, 0, BEACON_RUNNING, NULL);
	feed(f, fr, t + 5 * NS);
	rcv_tick(&f->r, t + 9 * NS);
	assert_false(log_has(f, "nothing authenticated"));
	rcv_tick(&f->r, t + 11 * NS);
	assert_true(log_has(f, "nothing authenticated for 6 s"));
	fx_free(f);
}

/* The receiver's own stall (its loop held up for 20 s, beacons
 * waiting in the ring) is not the link's silence: after rcv_pause no
 * link-down, the backlog's beacon keeps the link up, and real silence
 * afterwards is still caught. */
static void own_stall_is_not_silence(void **state)
{
	struct rcv_fixture *f = fx_new();
	uint8_t fr[PROTO_BEACON_LEN];
	uint64_t t = 100 * NS;

	(void)state;
	make(f, fr, 9, 1, 1000, 0, BEACON_RUNNING, NULL);
	feed(f, fr, t);
	rcv_pause(&f->r, 20 * NS, t + 20 * NS);
	rcv_tick(&f->r, t + 20 * NS);
	assert_false(log_has(f, "\"event\":\"link-down\""));
	make(f, fr, 9, 2, 2000, 1, BEACON_RUNNING, NULL); /* from the backlog */
	feed(f, fr, t + 20 * NS);
	rcv_tick(&f->r, t + 24 * NS);
	assert_false(log_has(f, "\"event\":\"link-down\""));
	rcv_tick(&f->r, t + 26 * NS);
	assert_true(log_has(f, "nothing authenticated for 6 s"));
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(beacon_round_trip_and_malformed),
	    cmocka_unit_test(receiver_accepts_once_and_refuses_replays),
	    cmocka_unit_test(link_down_and_exact_loss),
	    cmocka_unit_test(own_stall_is_not_silence),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
