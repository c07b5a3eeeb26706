/* SPDX-License-Identifier: MIT */
/* The signed manifest: what an object is, how it is cut into blocks, and the
 * hash of every block. It travels as its own small FEC-protected object
 * (MANIFEST frames) and is checked against the announcement's manifest hash
 * and its own Ed25519 signature before anything in it is used.
 *
 * Layout (little-endian):
 *
 *    0 magic "SLMF" (4)        4 version (1)        5 kind (1)   6 flags (2)
 *    8 sender key id (8)      16 sequence (8)      24 created, unix ns (8)
 *   32 expires, unix s, 0 = never (8)              40 object size (8)
 *   48 chunk size R (4)       52 symbol size S (2) 54 k (1)     55 reserved (1)
 *   56 block count (4)        60 name length (2)   62 reserved (2)
 *   64 entry count (4)        68 entries length in bytes (4)
 *   72 content BLAKE2b-256 (32)                    104 object id (32)
 *  136 name (name length bytes)
 *      entries (entries length bytes), each:
 *        path length (2) | mode class (1) | reserved (1) | size (8) |
 *        mtime, unix s (8) | BLAKE2b-256 (32) | path (path length bytes)
 *      block hashes: block count x 32, hash b = BLAKE2b-256 of the raw
 *        bytes from 0 to the end of block b (a prefix: the last one equals
 *        the content hash; version 1 hashed each block alone)
 *      Ed25519 signature over everything before it (64)
 */
#ifndef SLUICE_PROTO_MANIFEST_H
#define SLUICE_PROTO_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define MANIFEST_MAGIC         "SLMF"
#define MANIFEST_VERSION       2
#define MANIFEST_FIXED_LEN     136
#define MANIFEST_ENTRY_FIXED   52
#define MANIFEST_MAX_NAME      255
#define MANIFEST_MAX_PATH      4095
#define MANIFEST_MAX_ENTRIES   1000000u
#define MANIFEST_SIGNATURE_LEN PROTO_SIG_LEN

enum manifest_kind {
	MANIFEST_KIND_INVALID = 0,
	MANIFEST_KIND_FILE = 1,
	MANIFEST_KIND_BUNDLE = 2,
};

enum entry_mode {
	ENTRY_FILE = 0,
	ENTRY_EXEC = 1, /* regular file the receiver may make executable */
	ENTRY_DIR = 2,
	ENTRY_MODE_MAX = ENTRY_DIR,
};

struct manifest_entry {
	const uint8_t *path;
	uint16_t path_len;
	uint8_t mode;
	uint64_t size;
	uint64_t mtime;
	const uint8_t *hash;
};

/* After a successful decode, pointers refer into the decoded buffer. For
 * encoding, the caller fills every field and the three pointers. */
struct manifest {
	uint8_t kind;
	uint8_t sender_id[PROTO_KEYID_LEN];
	uint64_t sequence;
	uint64_t created_ns;
	uint64_t expires;
	uint64_t object_size;
	uint32_t chunk_size;
	uint16_t symbol_size;
	uint8_t k;
	uint32_t block_count;
	uint8_t content_hash[PROTO_HASH_LEN];
	uint8_t object_id[PROTO_HASH_LEN];
	const uint8_t *name;
	uint16_t name_len;
	uint32_t entry_count;
	const uint8_t *entries;
	uint32_t entries_len;
	const uint8_t *block_hashes;
	const uint8_t *signature; /* decode only */
	size_t signed_len;        /* decode only: bytes covered by the signature */
};

/* Total encoded length (signature included), or 0 if it would not fit the
 * limits. */
size_t proto_manifest_len(uint16_t name_len, uint32_t entries_len, uint32_t block_count);

/* Encode everything except the signature, which the caller writes into the
 * last 64 bytes after signing out[0 .. len-64). Returns the encoded length,
 * or 0 if len is not exactly proto_manifest_len(...). */
size_t proto_manifest_encode(uint8_t *out, size_t len, const struct manifest *m);

/* Validating decode: every length bounded by len, every field range and
 * reserved byte checked, names and entry paths validated. Does NOT check the
 * signature or the object id (that needs keys and hashing: common/). */
__attribute__((warn_unused_result)) int proto_manifest_decode(const uint8_t *buf, size_t len,
                                                              struct manifest *out);

/* Append one entry to an entries buffer. Returns bytes written or 0 when it
 * does not fit in cap or the entry is invalid. */
size_t proto_entry_encode(uint8_t *out, size_t cap, const struct manifest_entry *e);

/* Iterate the entries of a decoded manifest: *off starts at 0. Returns 1 and
 * fills e, 0 at the end, a PROTO_ERR_* on malformed input. */
__attribute__((warn_unused_result)) int proto_entry_next(const struct manifest *m, uint32_t *off,
                                                         struct manifest_entry *e);

/* A published top-level name: 1..255 bytes, no '/', no NUL or control
 * characters, and no leading '.' (so it can never be ".", "..", or hidden
 * next to the receiver's own dot-directories). */
int proto_name_valid(const uint8_t *name, size_t len);

/* A relative path inside a bundle: components separated by single '/',
 * none empty, ".", "..", and no NUL or control characters; at most 4095
 * bytes. */
int proto_path_valid(const uint8_t *path, size_t len);

#endif
