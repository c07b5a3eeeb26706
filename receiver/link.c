/* SPDX-License-Identifier: MIT */
/* Links: beacons, link up/down, exact loss per hour. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "common/crypto.h"
#include "common/log.h"
#include "common/util.h"
#include "link.h"
#include "proto/frame.h"
#include "receipt.h"
#include "session.h"

#define VERIFY_BURST   20.0
#define VERIFY_PER_SEC 10.0

static uint64_t unix_hour(void)
{
	return wall_ns() / 1000000000u / 3600u;
}

static const char *kid(const struct receiver *r, unsigned k, char out[2 * PROTO_KEYID_LEN + 1])
{
	hex_encode(out, r->cfg->trusted[k].id, PROTO_KEYID_LEN);
	return out;
}

static struct receipt_rec *begin(struct receiver *r, const char *event, unsigned k,
                                 const struct link *l)
{
	struct receipt_rec *rec = receipt_begin(r->log, event);
	char id[2 * PROTO_KEYID_LEN + 1];

	receipt_str(rec, "sender", kid(r, k, id));
	receipt_hex(rec, "link", (const uint8_t *)&l->link_id, sizeof(l->link_id));
	return rec;
}

static void hourly(struct receiver *r, unsigned k, struct link *l)
{
	struct receipt_rec *rec;
	char hour[32];
	time_t t = (time_t)(l->hour * 3600u);
	struct tm tm;

	if (l->hour_sent == 0 && l->hour_received == 0)
		return;
	uint64_t lost = l->hour_sent > l->hour_received ? l->hour_sent - l->hour_received : 0;
	gmtime_r(&t, &tm);
	strftime(hour, sizeof(hour), "%Y-%m-%dT%H:00Z", &tm);
	rec = begin(r, "hourly", k, l);
	receipt_str(rec, "hour", hour);
	receipt_u64(rec, "datagrams_sent", l->hour_sent);
	receipt_u64(rec, "datagrams_received", l->hour_received);
	receipt_u64(rec, "datagrams_lost", lost);
	receipt_double(rec, "loss_pct",
	               l->hour_sent ? 100.0 * (double)lost / (double)l->hour_sent : 0.0);
	receipt_u64(rec, "beacons_lost", l->hour_beacons_lost);
	receipt_write(rec);
	l->hour_sent = l->hour_received = l->hour_beacons_lost = 0;
}

static void link_down(struct receiver *r, unsigned k, struct link *l, const char *reason)
{
	struct receipt_rec *rec = begin(r, "link-down", k, l);
	char id[2 * PROTO_KEYID_LEN + 1];

	receipt_str(rec, "reason", reason);
	receipt_write(rec);
	log_warn("link from sender %s down: %s", kid(r, k, id), reason);
	l->up = 0;
}

void link_beacon(struct receiver *r, const uint8_t *buf, size_t len, uint64_t now)
{
	struct beacon b;
	struct link *l;
	unsigned k;
	char id[2 * PROTO_KEYID_LEN + 1];

	if (proto_decode_beacon(buf, len, &b) != PROTO_OK ||
	    sodium_memcmp(b.receiver_id, r->cfg->my_id, PROTO_KEYID_LEN) != 0) {
		r->stats.beacon_bad++;
		return;
	}
	for (k = 0; k < r->cfg->ntrusted; k++)
		if (sodium_memcmp(r->cfg->trusted[k].id, b.sender_id, PROTO_KEYID_LEN) == 0)
			break;
	if (k == r->cfg->ntrusted) {
		r->stats.beacon_bad++;
		return;
	}
	l = &r->links[k];
	/* Cheap before costly: a replay of the current link's beacons is
	 * caught by the counter without a signature check. */
	if (b.hdr.session_id == l->link_id && b.hdr.counter <= l->last_counter) {
		r->stats.beacon_stale++;
		return;
	}
	if (!tbucket_take(&l->verify, now, VERIFY_BURST, VERIFY_PER_SEC)) {
		r->stats.beacon_rate_limited++;
		return;
	}
	if (crypto_sign_verify_detached(buf + PROTO_BEACON_SIGNED_LEN, buf, PROTO_BEACON_SIGNED_LEN,
	                                r->cfg->trusted[k].pk) != 0) {
		r->stats.beacon_bad_signature++;
		return;
	}
	/* Signed, but maybe recorded earlier: the sender's clock must move on. */
	if (b.clock_ns <= l->last_clock_ns) {
		r->stats.beacon_stale++;
		return;
	}
	r->stats.beacon_ok++;
	l->last_clock_ns = b.clock_ns;
	l->last_seen = now;
	l->interval_ms = b.interval_ms;
	if (b.hdr.session_id == l->link_id) {
		l->hour_sent += b.datagrams_sent - l->sent_at_beacon;
		l->hour_received += l->recv_since;
		l->hour_beacons_lost += b.hdr.counter - l->last_counter - 1;
	} else if (l->link_id != 0) {
		log_info("sender %s restarted (new link id)", kid(r, k, id));
		l->up = 0; /* a new link: announce it below */
	}
	l->link_id = b.hdr.session_id;
	l->last_counter = b.hdr.counter;
	l->sent_at_beacon = b.datagrams_sent;
	l->recv_since = 1;
	if (!l->hour)
		l->hour = unix_hour();
	if (!l->up && b.state == BEACON_RUNNING) {
		struct receipt_rec *rec = begin(r, "link-up", k, l);
		receipt_u64(rec, "interval_ms", b.interval_ms);
		receipt_u64(rec, "objects_sent", b.objects_sent);
		receipt_write(rec);
		log_info("link from sender %s up", kid(r, k, id));
		l->up = 1;
	} else if (l->up && b.state == BEACON_STOPPING) {
		link_down(r, k, l, "the sender stopped");
	}
}

void link_frame(struct receiver *r, unsigned k, uint64_t now)
{
	struct link *l = &r->links[k];

	if (l->link_id) {
		l->recv_since++;
		l->last_seen = now;
	}
}

void link_tick(struct receiver *r, uint64_t now)
{
	uint64_t hour = unix_hour();

	for (unsigned k = 0; k < r->cfg->ntrusted; k++) {
		struct link *l = &r->links[k];
		uint64_t silent_limit = 3ull * l->interval_ms * 1000000u;
		if (!l->link_id)
			continue;
		if (silent_limit < r->cfg->link_timeout_ns)
			silent_limit = r->cfg->link_timeout_ns;
		if (l->up && now - l->last_seen > silent_limit) {
			char why[80];
			snprintf(why, sizeof(why), "nothing authenticated for %" PRIu64 " s",
			         (now - l->last_seen) / 1000000000u);
			link_down(r, k, l, why);
		}
		if (hour != l->hour) {
			hourly(r, k, l);
			l->hour = hour;
		}
	}
}

void link_pause(struct receiver *r, uint64_t ns, uint64_t now)
{
	for (unsigned k = 0; k < r->cfg->ntrusted; k++) {
		struct link *l = &r->links[k];
		if (l->link_id)
			l->last_seen = later_by(l->last_seen, ns, now);
	}
}

void link_flush(struct receiver *r)
{
	for (unsigned k = 0; k < r->cfg->ntrusted; k++)
		if (r->links[k].link_id)
			hourly(r, k, &r->links[k]);
}
