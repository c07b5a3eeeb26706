/* SPDX-License-Identifier: MIT */
/* Frame AEAD, session-key sealing and object identity on libsodium. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "proto/bytes.h"

struct aead_ctx {
	/* First member: crypto_aead_aes256gcm_state needs 16-byte alignment,
	 * which sodium_malloc's page-end placement gives for this size. */
	crypto_aead_aes256gcm_state aes;
	enum aead_alg alg;
	uint8_t key[SESSION_KEY_LEN];
};

int crypto_setup(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

enum aead_alg aead_default(void)
{
	return crypto_aead_aes256gcm_is_available() ? AEAD_AES256GCM : AEAD_XCHACHA20POLY1305;
}

const char *aead_name(enum aead_alg alg)
{
	switch (alg) {
	case AEAD_AES256GCM:
		return "aes256gcm";
	case AEAD_XCHACHA20POLY1305:
		return "xchacha20poly1305";
	case AEAD_INVALID:
		break;
	}
	return "invalid";
}

enum aead_alg aead_parse(const char *s)
{
	if (strcmp(s, "auto") == 0)
		return aead_default();
	if (strcmp(s, "aes256gcm") == 0)
		return AEAD_AES256GCM;
	if (strcmp(s, "xchacha20poly1305") == 0)
		return AEAD_XCHACHA20POLY1305;
	return AEAD_INVALID;
}

struct aead_ctx *aead_new(enum aead_alg alg, const uint8_t key[static SESSION_KEY_LEN])
{
	struct aead_ctx *c;

	if (alg != AEAD_AES256GCM && alg != AEAD_XCHACHA20POLY1305)
		return NULL;
	if (alg == AEAD_AES256GCM && !crypto_aead_aes256gcm_is_available())
		return NULL;
	/* sodium_malloc places the object at the end of a page; round the
	 * size to 16 so the AES state stays aligned. */
	c = sodium_malloc((sizeof(*c) + 15) & ~(size_t)15);
	if (!c)
		return NULL;
	c->alg = alg;
	memcpy(c->key, key, SESSION_KEY_LEN);
	if (alg == AEAD_AES256GCM)
		crypto_aead_aes256gcm_beforenm(&c->aes, key);
	return c;
}

void aead_free(struct aead_ctx *c)
{
	sodium_free(c); /* wipes before unmapping */
}

/* Nonce = session id || counter (|| zeros). The session key is fresh for
 * every session and the sender never reuses a counter within a session, so
 * no nonce repeats under one key. */
static void make_nonce(uint8_t nonce[static 24], const uint8_t *hdr, enum aead_alg alg)
{
	memset(nonce, 0, 24);
	if (alg == AEAD_AES256GCM) {
		memcpy(nonce, hdr + 16, 8); /* counter */
		memcpy(nonce + 8, hdr + 8, 4);
	} else {
		memcpy(nonce, hdr + 8, 16); /* session id, counter */
	}
}

int aead_seal_frame(struct aead_ctx *c, uint8_t *frame, size_t len)
{
	uint8_t nonce[24];
	uint8_t *pt = frame + PROTO_HEADER_LEN;
	unsigned long long ptlen;

	if (len < PROTO_HEADER_LEN + PROTO_TAG_LEN)
		return -EINVAL;
	ptlen = len - PROTO_HEADER_LEN - PROTO_TAG_LEN;
	make_nonce(nonce, frame, c->alg);
	if (c->alg == AEAD_AES256GCM)
		crypto_aead_aes256gcm_encrypt_detached_afternm(
		    pt, pt + ptlen, NULL, pt, ptlen, frame, PROTO_HEADER_LEN, NULL, nonce, &c->aes);
	else
		crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
		    pt, pt + ptlen, NULL, pt, ptlen, frame, PROTO_HEADER_LEN, NULL, nonce, c->key);
	return 0;
}

int aead_open_frame(struct aead_ctx *c, uint8_t *frame, size_t len)
{
	uint8_t nonce[24];
	uint8_t *ct = frame + PROTO_HEADER_LEN;
	unsigned long long ctlen;
	int rc;

	if (len < PROTO_HEADER_LEN + PROTO_TAG_LEN)
		return -EINVAL;
	ctlen = len - PROTO_HEADER_LEN - PROTO_TAG_LEN;
	make_nonce(nonce, frame, c->alg);
	if (c->alg == AEAD_AES256GCM)
		rc = crypto_aead_aes256gcm_decrypt_detached_afternm(
		    ct, NULL, ct, ctlen, ct + ctlen, frame, PROTO_HEADER_LEN, nonce, &c->aes);
	else
		rc = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
		    ct, NULL, ct, ctlen, ct + ctlen, frame, PROTO_HEADER_LEN, nonce, c->key);
	return rc == 0 ? 0 : -EBADMSG;
}

void object_id_compute(const struct manifest *m, uint8_t out[static PROTO_HASH_LEN])
{
	static const char domain[] = "sluice-object-v1";
	crypto_generichash_state st;
	uint8_t fixed[32];

	fixed[0] = m->kind;
	fixed[1] = m->k;
	put_le16(fixed + 2, m->symbol_size);
	put_le32(fixed + 4, m->chunk_size);
	put_le64(fixed + 8, m->object_size);
	put_le32(fixed + 16, m->block_count);
	put_le32(fixed + 20, m->entry_count);
	put_le32(fixed + 24, m->entries_len);
	put_le16(fixed + 28, m->name_len);
	put_le16(fixed + 30, 0);
	crypto_generichash_init(&st, NULL, 0, PROTO_HASH_LEN);
	crypto_generichash_update(&st, (const uint8_t *)domain, sizeof(domain) - 1);
	crypto_generichash_update(&st, fixed, sizeof(fixed));
	crypto_generichash_update(&st, m->content_hash, PROTO_HASH_LEN);
	crypto_generichash_update(&st, m->name, m->name_len);
	if (m->entries_len)
		crypto_generichash_update(&st, m->entries, m->entries_len);
	if (m->block_count)
		crypto_generichash_update(&st, m->block_hashes,
		                          (unsigned long long)m->block_count * PROTO_HASH_LEN);
	crypto_generichash_final(&st, out, PROTO_HASH_LEN);
}

void hex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}
