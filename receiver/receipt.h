/* SPDX-License-Identifier: MIT */
/* The receiver's receipt log: append-only JSON Lines in which every record
 * carries the BLAKE2b-256 of the line before it, so that editing, removing or
 * reordering a record breaks the chain (DESIGN.md, "Receipt log").
 *
 * A line looks like
 *   {"n":7,"time":"2026-11-23T09:14:02.137Z","event":"published",...,"prev":"<64 hex>"}
 * n counts from 1; "prev" of the first line is 64 zeros. The log is pure
 * printable ASCII: every other byte of a string is written as \u00XX (the
 * byte maps to the code point of the same value), so a name from the wire
 * can neither break the line nor the JSON.
 *
 * Damage. The log is never rewritten. When the tail cannot be trusted (a
 * crash left a line without its newline, a line does not parse, a write was
 * short or its fdatasync failed), the next record appended is an extra one:
 *   {"n":..,"time":..,"event":"log-damaged","offset":O,"bytes":B,"prev":..}
 * chained to the last good line. The bytes [O, O+B) are not part of the
 * chain and the "log-damaged" line itself starts at byte O+B (B includes the
 * '\n' the receiver appends to end a partial line). A verifier skips exactly
 * those bytes and checks "prev" against the line that ends just before O. */
#ifndef SLUICE_RECEIVER_RECEIPT_H
#define SLUICE_RECEIVER_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

/* Longest record, its newline included. */
#define RECEIPT_LINE_MAX (64u * 1024)
#define RECEIPT_HASH_LEN 32

struct receipt_log;
struct receipt_rec;

/* Open (create 0640 if missing, O_APPEND|O_NOFOLLOW|O_CLOEXEC) the log at
 * path and recover the chain from its last good line. The log is locked
 * (flock) for as long as it is open: a second writer would fork the chain,
 * so it gets -EBUSY. Returns 0 or -errno, with a message in err. */
__attribute__((warn_unused_result)) int receipt_open(struct receipt_log **out, const char *path,
                                                     char *err, size_t errlen);
void receipt_close(struct receipt_log *log);

/* Record builder: begin, add fields, commit. Fields keep insertion order.
 * Keys "n", "time", "event" and "prev" are reserved, and so are the events
 * "checkpoint" and "log-damaged" that only the log itself writes (commit
 * fails with -EINVAL). receipt_begin returns NULL when out of memory; the adders accept
 * NULL and receipt_commit(NULL) returns -ENOMEM, so callers need one check. */
struct receipt_rec *receipt_begin(struct receipt_log *log, const char *event);
/* A C string; NULL is written as null. Escaped like receipt_strn. */
void receipt_str(struct receipt_rec *r, const char *key, const char *val);
/* Bytes from the wire: every byte outside printable ASCII (NUL included) is
 * written as \u00XX, so the log stays valid JSON and one line. */
void receipt_strn(struct receipt_rec *r, const char *key, const uint8_t *val, size_t len);
void receipt_u64(struct receipt_rec *r, const char *key, uint64_t val);
/* Lower-case hex in a string. */
void receipt_hex(struct receipt_rec *r, const char *key, const uint8_t *bytes, size_t n);
/* "%.4f"; NaN and infinities are written as null. */
void receipt_double(struct receipt_rec *r, const char *key, double v);

/* Append the record as one line with a single write(2), then fdatasync.
 * Returns 0 or -errno (-E2BIG for a line over RECEIPT_LINE_MAX). On failure
 * the record is not written as far as the chain goes (n does not advance).
 * With a signing key, a checkpoint follows when the record-count trigger is
 * due (its failure is retried later and does not fail this record).
 * Frees r in all cases. Safe to call from several threads. */
__attribute__((warn_unused_result)) int receipt_commit(struct receipt_rec *r);

/* n and BLAKE2b-256 of the last line committed (or recovered on open);
 * 0 and zeros for an empty log. */
void receipt_head(const struct receipt_log *log, uint64_t *n, uint8_t hash[32]);

/* ---- signed checkpoints --------------------------------------------------
 * With a log key set, the log appends from time to time a record
 *   {"n":N,"time":T,"event":"checkpoint","records":N-1,"head":"<64 hex>",
 *    "key":"<16 hex>","sig":"<128 hex>","prev":"<64 hex>"}
 * in exactly that field order, nothing else in it. "head" is the BLAKE2b-256
 * of line N-1 (so it equals "prev"): through the chain it commits to every
 * line before it. "key" is the log key's id (common/keys.h) and "sig" the
 * Ed25519 signature of these RECEIPT_CP_MSG_LEN bytes (integers little-endian):
 *
 *   offset len
 *        0  29  "sluice-receipt-checkpoint-v1" and a NUL (domain separation)
 *       29   8  records: n of the last line covered (N-1)
 *       37  32  head: BLAKE2b-256 of that line as stored, without its '\n'
 *       69  24  time: the checkpoint's own "time" string, ASCII, no quotes
 *       93   8  key id of the signing key
 *
 * Every field of the checkpoint line is therefore either signed (time,
 * records, head, key), fixed by the signed ones (n, prev) or the signature
 * itself: a verifier that checks them all knows the checkpoint line is
 * exactly the one the receiver wrote. docs/RECEIPTS.md has the full format. */
#define RECEIPT_CP_DOMAIN  "sluice-receipt-checkpoint-v1"
#define RECEIPT_CP_MSG_LEN 101
#define RECEIPT_TIME_LEN   24 /* 2026-11-23T09:14:02.137Z */
#define RECEIPT_KEYID_LEN  8
#define RECEIPT_SIG_LEN    64

/* Defaults: a checkpoint after this many records since the last one, or
 * this long after the first record not yet covered, or when the log has
 * been idle this long after a record. */
#define RECEIPT_CP_EVERY_RECORDS 100
#define RECEIPT_CP_INTERVAL_NS   (600ull * 1000000000ull)
#define RECEIPT_CP_IDLE_NS       (30ull * 1000000000ull)

/* Sign checkpoints with this Ed25519 key pair (libsodium layout: sk is
 * seed||pk). The key is copied into sodium_malloc'd memory and wiped by
 * receipt_close; the caller wipes its own copy. Returns 0, -EINVAL when pk
 * is not sk's public half, or -ENOMEM. */
__attribute__((warn_unused_result)) int receipt_set_signing_key(struct receipt_log *log,
                                                                const uint8_t sk[static 64],
                                                                const uint8_t pk[static 32]);

/* When to checkpoint: every_records records since the last checkpoint
 * (checked on each commit), interval_ns after the first uncovered record
 * was seen by receipt_tick, idle_ns after the last record seen by
 * receipt_tick. 0 turns a trigger off. */
void receipt_set_checkpoint_policy(struct receipt_log *log, uint64_t every_records,
                                   uint64_t interval_ns, uint64_t idle_ns);

/* Append a checkpoint now if any record was written since the last one
 * (clean shutdown). Returns 1 when one was written, 0 when there was
 * nothing to cover, -ENOKEY without a signing key, or -errno. */
__attribute__((warn_unused_result)) int receipt_checkpoint(struct receipt_log *log);

/* Call periodically with CLOCK_MONOTONIC nanoseconds; appends a checkpoint
 * when the interval or idle trigger is due. Returns like receipt_checkpoint
 * (0 without a key). After a failure it waits a whole idle period (or
 * interval) before trying again. */
__attribute__((warn_unused_result)) int receipt_tick(struct receipt_log *log, uint64_t now_ns);

struct receipt_checkpoint {
	uint64_t n;                      /* of the checkpoint line */
	char time[RECEIPT_TIME_LEN + 1]; /* NUL-terminated */
	uint64_t records;                /* n of the last line covered */
	uint8_t head[RECEIPT_HASH_LEN];  /* hash of that line */
	uint8_t key[RECEIPT_KEYID_LEN];  /* signing key id */
	uint8_t sig[RECEIPT_SIG_LEN];    /* Ed25519 */
	uint8_t prev[RECEIPT_HASH_LEN];  /* the chain field */
};

/* Parse a checkpoint line (without its newline). Stricter than
 * receipt_parse_line: exactly the fields above in that order, lower-case
 * hex of exact lengths. Returns 0 or -EINVAL. Never reads past len. */
__attribute__((warn_unused_result)) int receipt_parse_checkpoint(const char *line, size_t len,
                                                                 struct receipt_checkpoint *cp);

/* The bytes a checkpoint's signature covers (table above). */
void receipt_checkpoint_message(uint8_t out[static RECEIPT_CP_MSG_LEN],
                                const struct receipt_checkpoint *cp);

/* Check a parsed checkpoint against a log public key: records is n-1, head
 * equals prev, the key id is pk's (checked before the signature, like
 * signify) and the signature verifies. Returns 0, -EINVAL (inconsistent
 * fields), -EKEYREJECTED (signed by another key) or -EBADMSG (signature
 * does not verify). The caller still checks that prev is the hash of the
 * line before. */
__attribute__((warn_unused_result)) int
receipt_checkpoint_verify(const struct receipt_checkpoint *cp, const uint8_t pk[static 32]);

/* ---- reading fields ------------------------------------------------------
 * For a line receipt_parse_line accepts (anything else is -EINVAL): the
 * value of key, which must occur exactly once (twice is -EINVAL: two readers
 * could pick different ones). -ENOENT when absent, -ENODATA when null,
 * -EINVAL when of another type. */

/* A string, unescaped into out (NUL-terminated; the value may itself hold
 * NUL bytes, *outlen tells its length and may be NULL). -E2BIG when it does
 * not fit in cap-1 bytes. */
__attribute__((warn_unused_result)) int receipt_get_str(const char *line, size_t len,
                                                        const char *key, char *out, size_t cap,
                                                        size_t *outlen);
/* A non-negative integer that fits in 64 bits, written without fraction or
 * exponent. */
__attribute__((warn_unused_result)) int receipt_get_u64(const char *line, size_t len,
                                                        const char *key, uint64_t *val);
/* A number as receipt_double writes it ("%.4f", or an integer). */
__attribute__((warn_unused_result)) int receipt_get_double(const char *line, size_t len,
                                                           const char *key, double *val);

/* Parse one receipt line (without its newline) just enough to extract "n",
 * "event" and "prev". Strict: one JSON object, no whitespace, printable ASCII
 * only, first keys n, time, event in that order, last key prev (64 lower-case
 * hex), reserved keys not repeated, other values scalars. Any output may be
 * NULL. event receives the unescaped name and must hold it and its NUL.
 * Returns 0 or -EINVAL. Never reads past len. */
__attribute__((warn_unused_result)) int receipt_parse_line(const char *line, size_t len,
                                                           uint64_t *n, char *event,
                                                           size_t eventlen, uint8_t prev[32]);

#endif
