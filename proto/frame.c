/* SPDX-License-Identifier: MIT */
/* Encode and validating decode of sluice frame headers and fixed bodies. */
#include <string.h>

#include "bytes.h"
#include "frame.h"

const char *proto_strerror(int err)
{
	switch (err) {
	case PROTO_OK:
		return "ok";
	case PROTO_ERR_SHORT:
		return "datagram shorter than a frame header";
	case PROTO_ERR_MAGIC:
		return "not a sluice datagram (bad magic)";
	case PROTO_ERR_VERSION:
		return "unsupported protocol version";
	case PROTO_ERR_TYPE:
		return "unknown frame type";
	case PROTO_ERR_LENGTH:
		return "wrong datagram length for its frame type";
	case PROTO_ERR_RESERVED:
		return "reserved field not zero";
	case PROTO_ERR_FIELD:
		return "field out of range";
	}
	return "unknown error";
}

void proto_encode_header(uint8_t out[static PROTO_HEADER_LEN], const struct frame_header *h)
{
	memcpy(out, PROTO_MAGIC, 4);
	out[4] = h->version;
	out[5] = h->type;
	put_le16(out + 6, h->flags);
	put_le64(out + 8, h->session_id);
	put_le64(out + 16, h->counter);
	put_le32(out + 24, h->block);
	put_le16(out + 28, h->symbol);
	put_le16(out + 30, 0);
}

int proto_decode_header(const uint8_t *buf, size_t len, struct frame_header *out)
{
	if (len < PROTO_HEADER_LEN)
		return PROTO_ERR_SHORT;
	if (memcmp(buf, PROTO_MAGIC, 4) != 0)
		return PROTO_ERR_MAGIC;
	if (buf[4] != PROTO_VERSION)
		return PROTO_ERR_VERSION;
	if (buf[5] == FRAME_INVALID || buf[5] > FRAME_TYPE_MAX)
		return PROTO_ERR_TYPE;
	if (get_le16(buf + 6) != 0 || get_le16(buf + 30) != 0)
		return PROTO_ERR_RESERVED;
	out->version = buf[4];
	out->type = buf[5];
	out->flags = 0;
	out->session_id = get_le64(buf + 8);
	out->counter = get_le64(buf + 16);
	out->block = get_le32(buf + 24);
	out->symbol = get_le16(buf + 28);
	if (out->symbol >= PROTO_MAX_SYMBOLS)
		return PROTO_ERR_FIELD;
	switch (out->type) {
	case FRAME_ANNOUNCE:
		/* Announcements are repeated byte-identical: no counter, no
		 * block; anything else would be an unsigned degree of freedom. */
		if (out->counter != 0 || out->block != 0 || out->symbol != 0)
			return PROTO_ERR_FIELD;
		break;
	case FRAME_HEARTBEAT:
	case FRAME_END:
	case FRAME_BEACON:
		if (out->block != 0 || out->symbol != 0)
			return PROTO_ERR_FIELD;
		if (out->type == FRAME_BEACON && out->session_id == 0)
			return PROTO_ERR_FIELD;
		/* fall through */
	default:
		/* Counter 0 is reserved for the announcement's nonce space. */
		if (out->counter == 0)
			return PROTO_ERR_FIELD;
	}
	return PROTO_OK;
}

size_t proto_frame_len(enum frame_type type, uint16_t symbol_size)
{
	switch (type) {
	case FRAME_ANNOUNCE:
		return PROTO_ANNOUNCE_LEN;
	case FRAME_MANIFEST:
	case FRAME_DATA:
		return (size_t)PROTO_SYMBOL_OVERHEAD + symbol_size;
	case FRAME_HEARTBEAT:
	case FRAME_END:
		return PROTO_STATUS_FRAME_LEN;
	case FRAME_BEACON:
		return PROTO_BEACON_LEN;
	case FRAME_INVALID:
		break;
	}
	return 0;
}

uint64_t proto_block_count(uint64_t object_size, uint32_t chunk_size)
{
	if (chunk_size == 0)
		return 0;
	return object_size / chunk_size + (object_size % chunk_size != 0);
}

uint64_t proto_wire_blocks(uint32_t block_count, uint8_t group, uint8_t parity)
{
	uint64_t groups = group ? ((uint64_t)block_count + group - 1) / group : 0;

	return block_count + groups * parity;
}

void proto_encode_announce(uint8_t out[static PROTO_ANNOUNCE_LEN], const struct announce *a)
{
	proto_encode_header(out, &a->hdr);
	memcpy(out + 32, a->sender_id, PROTO_KEYID_LEN);
	memcpy(out + 40, a->receiver_id, PROTO_KEYID_LEN);
	out[48] = a->aead;
	out[49] = a->k;
	put_le16(out + 50, a->symbol_size);
	put_le32(out + 52, a->chunk_size);
	put_le64(out + 56, a->object_size);
	put_le32(out + 64, a->block_count);
	put_le32(out + 68, a->manifest_len);
	memcpy(out + 72, a->object_id, PROTO_HASH_LEN);
	memcpy(out + 104, a->manifest_hash, PROTO_HASH_LEN);
	memcpy(out + 136, a->sealed_key, PROTO_SEALED_LEN);
	put_le64(out + 216, a->created_ns);
	out[224] = a->group;
	out[225] = a->parity;
	memset(out + 226, 0, 6);
	memcpy(out + 232, a->signature, PROTO_SIG_LEN);
}

static int check_layout(uint8_t k, uint16_t symbol_size, uint32_t chunk_size)
{
	if (k == 0 || k > PROTO_MAX_K)
		return PROTO_ERR_FIELD;
	if (symbol_size < PROTO_MIN_SYMBOL || symbol_size > PROTO_MAX_SYMBOL)
		return PROTO_ERR_FIELD;
	if (chunk_size != (uint32_t)k * symbol_size)
		return PROTO_ERR_FIELD;
	return PROTO_OK;
}

/* The frames of one fixed length (announcement, beacon): header, then
 * type, then exact length, in the rejection order of PROTOCOL.md. */
static int decode_fixed(const uint8_t *buf, size_t len, struct frame_header *hdr,
                        enum frame_type type, size_t want)
{
	int rc = proto_decode_header(buf, len, hdr);

	if (rc != PROTO_OK)
		return rc;
	if (hdr->type != type)
		return PROTO_ERR_TYPE;
	if (len != want)
		return PROTO_ERR_LENGTH;
	return PROTO_OK;
}

int proto_decode_announce(const uint8_t *buf, size_t len, struct announce *out)
{
	int rc = decode_fixed(buf, len, &out->hdr, FRAME_ANNOUNCE, PROTO_ANNOUNCE_LEN);

	if (rc != PROTO_OK)
		return rc;
	memcpy(out->sender_id, buf + 32, PROTO_KEYID_LEN);
	memcpy(out->receiver_id, buf + 40, PROTO_KEYID_LEN);
	out->aead = buf[48];
	out->k = buf[49];
	out->symbol_size = get_le16(buf + 50);
	out->chunk_size = get_le32(buf + 52);
	out->object_size = get_le64(buf + 56);
	out->block_count = get_le32(buf + 64);
	out->manifest_len = get_le32(buf + 68);
	memcpy(out->object_id, buf + 72, PROTO_HASH_LEN);
	memcpy(out->manifest_hash, buf + 104, PROTO_HASH_LEN);
	memcpy(out->sealed_key, buf + 136, PROTO_SEALED_LEN);
	out->created_ns = get_le64(buf + 216);
	out->group = buf[224];
	out->parity = buf[225];
	memcpy(out->signature, buf + 232, PROTO_SIG_LEN);
	if (get_le16(buf + 226) != 0 || get_le32(buf + 228) != 0)
		return PROTO_ERR_RESERVED;

	if (out->aead != AEAD_XCHACHA20POLY1305 && out->aead != AEAD_AES256GCM)
		return PROTO_ERR_FIELD;
	rc = check_layout(out->k, out->symbol_size, out->chunk_size);
	if (rc != PROTO_OK)
		return rc;
	if (proto_block_count(out->object_size, out->chunk_size) != out->block_count)
		return PROTO_ERR_FIELD;
	if (out->manifest_len == 0 || out->manifest_len > PROTO_MAX_MANIFEST)
		return PROTO_ERR_FIELD;
	/* The outer code is RS over G + P rows: G >= 1, G + P <= 255. */
	if (out->group == 0 || out->group + out->parity > PROTO_MAX_SYMBOLS)
		return PROTO_ERR_FIELD;
	if (proto_wire_blocks(out->block_count, out->group, out->parity) > UINT32_MAX)
		return PROTO_ERR_FIELD;
	return PROTO_OK;
}

void proto_encode_beacon(uint8_t out[static PROTO_BEACON_LEN], const struct beacon *b)
{
	memset(out, 0, PROTO_BEACON_LEN);
	proto_encode_header(out, &b->hdr);
	memcpy(out + 32, b->sender_id, PROTO_KEYID_LEN);
	memcpy(out + 40, b->receiver_id, PROTO_KEYID_LEN);
	put_le64(out + 48, b->clock_ns);
	put_le64(out + 56, b->datagrams_sent);
	put_le64(out + 64, b->objects_sent);
	put_le32(out + 72, b->interval_ms);
	out[76] = b->state;
}

int proto_decode_beacon(const uint8_t *buf, size_t len, struct beacon *out)
{
	int rc = decode_fixed(buf, len, &out->hdr, FRAME_BEACON, PROTO_BEACON_LEN);

	if (rc != PROTO_OK)
		return rc;
	memcpy(out->sender_id, buf + 32, PROTO_KEYID_LEN);
	memcpy(out->receiver_id, buf + 40, PROTO_KEYID_LEN);
	out->clock_ns = get_le64(buf + 48);
	out->datagrams_sent = get_le64(buf + 56);
	out->objects_sent = get_le64(buf + 64);
	out->interval_ms = get_le32(buf + 72);
	out->state = buf[76];
	for (unsigned i = 77; i < PROTO_BEACON_SIGNED_LEN; i++)
		if (buf[i] != 0)
			return PROTO_ERR_RESERVED;
	if (out->state != BEACON_RUNNING && out->state != BEACON_STOPPING)
		return PROTO_ERR_FIELD;
	if (out->interval_ms < PROTO_BEACON_MIN_MS || out->interval_ms > PROTO_BEACON_MAX_MS)
		return PROTO_ERR_FIELD;
	return PROTO_OK;
}

void proto_encode_symhdr(uint8_t out[static PROTO_SYMHDR_LEN], const struct symhdr *s)
{
	out[0] = s->k;
	out[1] = s->flags;
	put_le16(out + 2, 0);
	put_le32(out + 4, s->stored_len);
}

int proto_decode_symhdr(const uint8_t *buf, uint16_t symbol_size, struct symhdr *out)
{
	out->k = buf[0];
	out->flags = buf[1];
	out->stored_len = get_le32(buf + 4);
	if (get_le16(buf + 2) != 0 || (out->flags & ~PROTO_SYMFLAG_ZSTD) != 0)
		return PROTO_ERR_RESERVED;
	if (out->k == 0 || out->k > PROTO_MAX_K)
		return PROTO_ERR_FIELD;
	if (out->stored_len <= (uint32_t)(out->k - 1) * symbol_size ||
	    out->stored_len > (uint32_t)out->k * symbol_size)
		return PROTO_ERR_FIELD;
	return PROTO_OK;
}

void proto_encode_status(uint8_t out[static PROTO_STATUS_LEN], const struct status *s)
{
	put_le64(out, s->frames_sent);
	put_le32(out + 8, s->pass);
	put_le32(out + 12, s->passes);
	put_le64(out + 16, s->clock_ns);
	put_le64(out + 24, 0);
}

int proto_decode_status(const uint8_t *buf, struct status *out)
{
	out->frames_sent = get_le64(buf);
	out->pass = get_le32(buf + 8);
	out->passes = get_le32(buf + 12);
	out->clock_ns = get_le64(buf + 16);
	if (get_le64(buf + 24) != 0)
		return PROTO_ERR_RESERVED;
	if (out->passes == 0 || out->pass == 0 || out->pass > out->passes)
		return PROTO_ERR_FIELD;
	return PROTO_OK;
}
