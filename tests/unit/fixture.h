/* SPDX-License-Identifier: MIT */
/* A real receiver over a fresh temporary directory, for the unit tests that
 * drive struct receiver directly (rcv_handle, rcv_tick):
 *
 *   DIR/inbox                  the inbox
 *   DIR/state                  staging and ledger
 *   DIR/state/receipts.jsonl   the receipt log
 *
 * with a receiver box key pair in cfg and one trusted sender signing key
 * (trusted.pk, sign_sk). rcv_fixture_open sets up everything but the
 * receiver itself, with the limits the tests share; the test adjusts cfg
 * and calls rcv_fixture_start. Include after <cmocka.h>. */
#ifndef SLUICE_TESTS_UNIT_FIXTURE_H
#define SLUICE_TESTS_UNIT_FIXTURE_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <sodium.h>

#include "common/keys.h"
#include "receiver/ledger.h"
#include "receiver/receipt.h"
#include "receiver/session.h"
#include "receiver/staging.h"

struct rcv_fixture {
	char dir[64], receipts[160];
	struct staging st;
	struct receipt_log *log;
	struct ledger ledger;
	struct rcv_config cfg;
	struct trusted_key trusted;
	uint8_t sign_sk[crypto_sign_SECRETKEYBYTES]; /* the trusted sender's */
	struct receiver r;
	int have_r; /* rcv_fixture_start succeeded */
};

static inline int rcv_fixture_rm_one(const char *p, const struct stat *sb, int flag,
                                     struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

/* tmpl: a mkdtemp template such as "/tmp/sluice-NAME.XXXXXX" */
static inline void rcv_fixture_open(struct rcv_fixture *x, const char *tmpl)
{
	char inbox[128], state[128], err[512];

	snprintf(x->dir, sizeof(x->dir), "%s", tmpl);
	assert_non_null(mkdtemp(x->dir));
	snprintf(inbox, sizeof(inbox), "%s/inbox", x->dir);
	snprintf(state, sizeof(state), "%s/state", x->dir);
	snprintf(x->receipts, sizeof(x->receipts), "%s/receipts.jsonl", state);
	assert_int_equal(mkdir(inbox, 0700), 0);
	if (staging_open(&x->st, inbox, state, err, sizeof(err)) < 0)
		fail_msg("staging_open: %s", err);
	if (receipt_open(&x->log, x->receipts, err, sizeof(err)) < 0)
		fail_msg("receipt_open: %s", err);
	assert_int_equal(ledger_open(&x->ledger, x->st.state_fd), 0);

	x->cfg.box_sk = sodium_malloc(32);
	assert_non_null(x->cfg.box_sk);
	crypto_box_keypair(x->cfg.box_pk, x->cfg.box_sk);
	key_id(x->cfg.my_id, x->cfg.box_pk);
	crypto_sign_keypair(x->trusted.pk, x->sign_sk);
	key_id(x->trusted.id, x->trusted.pk);
	x->cfg.trusted = &x->trusted;
	x->cfg.ntrusted = 1;
	x->cfg.max_sessions = 4;
	x->cfg.session_timeout_ns = 60ull * 1000000000u;
	x->cfg.end_grace_ns = 1000000000u;
}

static inline void rcv_fixture_start(struct rcv_fixture *x)
{
	assert_int_equal(rcv_init(&x->r, &x->cfg, &x->st, x->log, &x->ledger), 0);
	x->have_r = 1;
}

/* Frees everything rcv_fixture_open and _start made and removes DIR. */
static inline void rcv_fixture_close(struct rcv_fixture *x)
{
	if (x->have_r)
		rcv_free(&x->r);
	receipt_close(x->log);
	ledger_close(&x->ledger);
	staging_close(&x->st);
	sodium_free(x->cfg.box_sk);
	nftw(x->dir, rcv_fixture_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
