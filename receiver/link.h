/* SPDX-License-Identifier: MIT */
/* Links: what the receiver knows of each long-running sender from its signed
 * BEACON frames (proto/frame.h). A beacon carries the sender's count of
 * datagrams sent on the link, so the receiver computes exact loss between
 * two beacons: datagrams sent in between minus datagrams it accepted from
 * that sender key in between. It records link-up (first beacon, or the first
 * after a silence or a sender restart), link-down (a "stopping" beacon, or
 * nothing authenticated for --link-timeout) and, every hour with traffic,
 * an "hourly" record with that hour's loss. Senders that never beacon
 * (one-shot cron runs) are not tracked as links. */
#ifndef SLUICE_RECEIVER_LINK_H
#define SLUICE_RECEIVER_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

struct receiver;
struct trusted_key;

struct link {
	uint64_t link_id;       /* 0: never beaconed */
	uint64_t last_counter;  /* beacon number */
	uint64_t last_clock_ns; /* newest signed sender clock: older beacons are replays */
	uint64_t last_seen;     /* CLOCK_MONOTONIC of the last authenticated frame */
	uint32_t interval_ms;
	int up;
	uint64_t sent_at_beacon; /* the last beacon's datagrams_sent */
	uint64_t recv_since;     /* accepted from this key since that beacon, it included */
	/* this hour */
	uint64_t hour; /* unix hour (s / 3600) being counted */
	uint64_t hour_sent, hour_received, hour_beacons_lost;
	/* signature checks allowed (token bucket): beacons are plaintext */
	struct tbucket verify;
};

/* A BEACON datagram (header already decoded as one). */
void link_beacon(struct receiver *r, const uint8_t *buf, size_t len, uint64_t now);
/* An authenticated frame of a session of trusted key index k. */
void link_frame(struct receiver *r, unsigned k, uint64_t now);
/* Timers: link-down on silence, hourly records. */
void link_tick(struct receiver *r, uint64_t now);
/* rcv_pause for the links: their silence stops counting for ns. */
void link_pause(struct receiver *r, uint64_t ns, uint64_t now);
/* Shutdown: the current hour's record for every link with traffic. */
void link_flush(struct receiver *r);

#endif
