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
 * Keys "n", "time", "event" and "prev" are reserved (commit fails with
 * -EINVAL). receipt_begin returns NULL when out of memory; the adders accept
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
 * Frees r in all cases. Safe to call from several threads. */
__attribute__((warn_unused_result)) int receipt_commit(struct receipt_rec *r);

/* n and BLAKE2b-256 of the last line committed (or recovered on open);
 * 0 and zeros for an empty log. */
void receipt_head(const struct receipt_log *log, uint64_t *n, uint8_t hash[32]);

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
