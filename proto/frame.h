/* SPDX-License-Identifier: MIT */
/* Wire format of sluice UDP datagrams: constants, layouts, encode and decode.
 *
 * All integers are little-endian. Every datagram starts with the same
 * 32-byte header; docs/PROTOCOL.md is the prose version of this file.
 *
 * Common header (all frame types):
 *
 *   0       4       8              16             24       28   30   32
 *   +-------+-+-+---+--------------+--------------+--------+----+----+
 *   | magic |v|t|flg|  session id  |   counter    | block  |sym |rsv |
 *   +-------+-+-+---+--------------+--------------+--------+----+----+
 *   magic "SLCE", v = version (1), t = frame_type, flg = flags (0),
 *   counter = per-session frame number (AEAD nonce; 0 for ANNOUNCE),
 *   block/sym = block number and symbol index (0 when unused), rsv = 0.
 *
 * ANNOUNCE (plaintext, Ed25519-signed, exactly 296 bytes):
 *
 *   32 sender key id (8)      40 receiver key id (8)
 *   48 aead alg (1)           49 k: source symbols per data block (1)
 *   50 symbol size S (2)      52 chunk size R (4): raw bytes per data block
 *   56 object size (8)        64 data block count (4)
 *   68 manifest length (4)    72 object id (32)
 *  104 manifest BLAKE2b-256 (32)
 *  136 session key sealed to the receiver, crypto_box_seal (80)
 *  216 created, unix ns (8)
 *  224 G: data blocks per outer-code group (1)   225 P: outer parity rows (1)
 *  226 reserved, zero (6)
 *  232 Ed25519 signature over bytes 0..231 (64)
 *
 * Blocks are grouped: data blocks g*G .. g*G+G-1 form group g, protected by
 * P outer parity rows (Reed-Solomon across the group, symbol position by
 * symbol position: a product code). Parity row j of group g travels as
 * block number block_count + g*P + j; its k is the largest k among the
 * group's data rows (positions beyond it are zero in every row).
 *
 * SYMBOL frames, MANIFEST and DATA (AEAD, exactly 32 + 8 + S + 16 bytes):
 *
 *   32 +----+----+----+------------+---------------------+--------+
 *      | k  |flg |rsv | stored len |  symbol (S bytes)   |  tag   |
 *      +----+----+----+------------+---------------------+--------+
 *       1    1    2    4            S                     16
 *   Bytes 32.. are encrypted; the 32-byte header is the associated data.
 *   k = source symbols of this block, flg bit 0 = block is zstd-compressed,
 *   stored len = bytes of the block before zero padding to k * S.
 *
 * HEARTBEAT and END (AEAD, exactly 32 + 32 + 16 bytes):
 *
 *   32 frames sent so far in this session (8)   40 pass (4)  44 passes (4)
 *   48 sender clock, unix ns (8)                56 reserved, zero (8)
 *
 * BEACON (plaintext, Ed25519-signed, exactly 160 bytes): a long-running
 * sender's sign of life, sent every interval whether or not it is sending
 * an object. session id = link id (random per sender process, non-zero),
 * counter = beacon number on this link (from 1), block = symbol = 0.
 *
 *   32 sender key id (8)      40 receiver key id (8)
 *   48 sender clock, unix ns (8)
 *   56 datagrams sent on this link before this beacon (8)
 *   64 objects sent on this link (8)
 *   72 interval, ms (4)       76 state (1): 1 running, 2 stopping
 *   77 reserved, zero (19)
 *   96 Ed25519 signature over bytes 0..95 (64)
 */
#ifndef SLUICE_PROTO_FRAME_H
#define SLUICE_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC   "SLCE"
#define PROTO_VERSION 1

enum frame_type {
	FRAME_INVALID = 0,
	FRAME_ANNOUNCE = 1,
	FRAME_MANIFEST = 2,
	FRAME_DATA = 3,
	FRAME_HEARTBEAT = 4,
	FRAME_END = 5,
	FRAME_BEACON = 6,
	FRAME_TYPE_MAX = FRAME_BEACON,
};

enum aead_alg {
	AEAD_INVALID = 0,
	AEAD_XCHACHA20POLY1305 = 1,
	AEAD_AES256GCM = 2,
};

#define PROTO_HEADER_LEN          32
#define PROTO_TAG_LEN             16
#define PROTO_KEYID_LEN           8
#define PROTO_HASH_LEN            32
#define PROTO_SIG_LEN             64
#define PROTO_SEALED_LEN          80 /* crypto_box_SEALBYTES + 32-byte key */
#define PROTO_SYMHDR_LEN          8
#define PROTO_STATUS_LEN          32
#define PROTO_ANNOUNCE_LEN        296
#define PROTO_ANNOUNCE_SIGNED_LEN (PROTO_ANNOUNCE_LEN - PROTO_SIG_LEN)
#define PROTO_BEACON_LEN          160
#define PROTO_BEACON_SIGNED_LEN   (PROTO_BEACON_LEN - PROTO_SIG_LEN)
#define PROTO_BEACON_MIN_MS       100
#define PROTO_BEACON_MAX_MS       3600000u
#define PROTO_STATUS_FRAME_LEN    (PROTO_HEADER_LEN + PROTO_STATUS_LEN + PROTO_TAG_LEN)
#define PROTO_SYMBOL_OVERHEAD     (PROTO_HEADER_LEN + PROTO_SYMHDR_LEN + PROTO_TAG_LEN)

/* UDP payload limits: IPv4 1500-byte MTU gives 1472, jumbo 9000 gives 8972. */
#define PROTO_MIN_DATAGRAM 1024
#define PROTO_MAX_DATAGRAM 65507
#define PROTO_MIN_SYMBOL   (PROTO_MIN_DATAGRAM - PROTO_SYMBOL_OVERHEAD)
#define PROTO_MAX_SYMBOL   (PROTO_MAX_DATAGRAM - PROTO_SYMBOL_OVERHEAD)
#define PROTO_MAX_K        254
#define PROTO_MAX_SYMBOLS  255
#define PROTO_SYMFLAG_ZSTD 0x01u

/* Upper bounds the receiver enforces on what a signed announcement may ask
 * for; they bound memory, not the size of objects. */
#define PROTO_MAX_MANIFEST (64u << 20)

_Static_assert(PROTO_ANNOUNCE_LEN == 232 + PROTO_SIG_LEN, "announce layout");
_Static_assert(PROTO_BEACON_LEN == 96 + PROTO_SIG_LEN, "beacon layout");
_Static_assert(PROTO_SEALED_LEN == 48 + 32, "crypto_box_SEALBYTES is 48");
_Static_assert(PROTO_STATUS_FRAME_LEN == 80, "status frame layout");
_Static_assert(PROTO_MAX_SYMBOL <= 0xffff, "symbol size fits its u16 field");

struct frame_header {
	uint8_t version;
	uint8_t type; /* enum frame_type */
	uint16_t flags;
	uint64_t session_id;
	uint64_t counter;
	uint32_t block;
	uint16_t symbol;
};

struct announce {
	struct frame_header hdr;
	uint8_t sender_id[PROTO_KEYID_LEN];
	uint8_t receiver_id[PROTO_KEYID_LEN];
	uint8_t aead;
	uint8_t k;
	uint16_t symbol_size;
	uint32_t chunk_size;
	uint64_t object_size;
	uint32_t block_count;
	uint32_t manifest_len;
	uint8_t object_id[PROTO_HASH_LEN];
	uint8_t manifest_hash[PROTO_HASH_LEN];
	uint8_t sealed_key[PROTO_SEALED_LEN];
	uint64_t created_ns;
	uint8_t group;  /* G */
	uint8_t parity; /* P */
	uint8_t signature[PROTO_SIG_LEN];
};

enum beacon_state {
	BEACON_RUNNING = 1,
	BEACON_STOPPING = 2,
};

struct beacon {
	struct frame_header hdr; /* session_id = link id, counter = beacon number */
	uint8_t sender_id[PROTO_KEYID_LEN];
	uint8_t receiver_id[PROTO_KEYID_LEN];
	uint64_t clock_ns;
	uint64_t datagrams_sent;
	uint64_t objects_sent;
	uint32_t interval_ms;
	uint8_t state; /* enum beacon_state */
};

struct symhdr {
	uint8_t k;
	uint8_t flags;
	uint32_t stored_len;
};

struct status {
	uint64_t frames_sent;
	uint32_t pass;
	uint32_t passes;
	uint64_t clock_ns;
};

enum proto_err {
	PROTO_OK = 0,
	PROTO_ERR_SHORT = -1,    /* shorter than a header */
	PROTO_ERR_MAGIC = -2,    /* not a sluice datagram */
	PROTO_ERR_VERSION = -3,  /* unknown protocol version */
	PROTO_ERR_TYPE = -4,     /* unknown frame type */
	PROTO_ERR_LENGTH = -5,   /* wrong length for this frame type */
	PROTO_ERR_RESERVED = -6, /* reserved bits or bytes not zero */
	PROTO_ERR_FIELD = -7,    /* a field is out of its allowed range */
};

const char *proto_strerror(int err);

/* Header: decode checks magic, version, type, flags and reserved bytes, and
 * that len is at least the header; the per-type length check follows. */
__attribute__((warn_unused_result)) int proto_decode_header(const uint8_t *buf, size_t len,
                                                            struct frame_header *out);
void proto_encode_header(uint8_t out[static PROTO_HEADER_LEN], const struct frame_header *h);

/* Exact datagram length for a frame type given the session symbol size. */
size_t proto_frame_len(enum frame_type type, uint16_t symbol_size);

/* ANNOUNCE: encode writes all 296 bytes including hdr and signature field
 * as given in a (sign bytes 0..231 afterwards). decode validates every
 * field's range and consistency (block count vs size and chunk). */
void proto_encode_announce(uint8_t out[static PROTO_ANNOUNCE_LEN], const struct announce *a);
__attribute__((warn_unused_result)) int proto_decode_announce(const uint8_t *buf, size_t len,
                                                              struct announce *out);

/* BEACON: encode writes bytes 0..95 (sign them, then put the signature at
 * 96); decode checks the length, every field's range and reserved bytes,
 * not the signature. */
void proto_encode_beacon(uint8_t out[static PROTO_BEACON_LEN], const struct beacon *b);
__attribute__((warn_unused_result)) int proto_decode_beacon(const uint8_t *buf, size_t len,
                                                            struct beacon *out);

/* Layout rule shared by both sides: chunk size R = k * S. */
uint64_t proto_block_count(uint64_t object_size, uint32_t chunk_size);
/* Blocks on the wire including outer parity rows: block_count +
 * ceil(block_count / G) * P. */
uint64_t proto_wire_blocks(uint32_t block_count, uint8_t group, uint8_t parity);

void proto_encode_symhdr(uint8_t out[static PROTO_SYMHDR_LEN], const struct symhdr *s);
/* Validates k in 1..PROTO_MAX_K, known flags, reserved bytes and
 * (k-1)*S < stored_len <= k*S. */
__attribute__((warn_unused_result)) int
proto_decode_symhdr(const uint8_t *buf, uint16_t symbol_size, struct symhdr *out);

void proto_encode_status(uint8_t out[static PROTO_STATUS_LEN], const struct status *s);
__attribute__((warn_unused_result)) int proto_decode_status(const uint8_t *buf, struct status *out);

#endif
