/* SPDX-License-Identifier: MIT */
/* Frame AEAD, session-key sealing and object identity on libsodium; the
 * bulk AES-256-GCM of frames on libgcrypt, which is about twice as fast as
 * libsodium's on 1400-byte frames (tools/bench_aead, DECISIONS.md §15). */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <gcrypt.h>
#include <sodium.h>

#include "crypto.h"
#include "log.h"
#include "proto/bytes.h"

struct aead_ctx {
	/* First member: crypto_aead_aes256gcm_state needs 16-byte alignment,
	 * which sodium_malloc's page-end placement gives for this size. */
	crypto_aead_aes256gcm_state aes;
	/* libgcrypt's AES-256-GCM (key schedule and GHASH tables in its
	 * locked secure memory), or NULL: libsodium's state above is used. */
	gcry_cipher_hd_t gcm;
	enum aead_alg alg;
	uint8_t key[SESSION_KEY_LEN];
};

/* Bytes of libgcrypt secure memory one AES-256-GCM handle takes, with room
 * for the pool's own bookkeeping (measured: 32 handles fit in 64 KiB). */
#define GCM_HANDLE_BYTES 4096
#define SECMEM_MIN       (64 * 1024)

static enum aead_impl gcm_impl = AEAD_IMPL_LIBSODIUM;

/* libgcrypt mlocks its secure-memory pool, and where mlock fails it uses
 * the pool unlocked: key schedules could then be written to swap. Its own
 * warning names no cause or remedy, so it is switched off and this one,
 * from the same test, is given instead. */
static void warn_if_unlockable(size_t bytes)
{
	struct rlimit rl = {0};
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int locked;

	if (p == MAP_FAILED)
		return; /* libgcrypt will fail to allocate the pool, and say so */
	locked = mlock(p, bytes) == 0;
	if (locked)
		munlock(p, bytes);
	munmap(p, bytes);
	if (locked)
		return;
	getrlimit(RLIMIT_MEMLOCK, &rl);
	log_warn("cannot lock %zu KiB of memory for the AES-GCM session keys (locked-memory limit "
	         "%llu KiB): they may be swapped to disk. Raise the limit (ulimit -l, or "
	         "LimitMEMLOCK= in the systemd unit) or, on a receiver, lower --max-sessions",
	         bytes >> 10,
	         rl.rlim_cur == RLIM_INFINITY ? 0ull : (unsigned long long)rl.rlim_cur >> 10);
}

int crypto_setup_contexts(unsigned contexts)
{
	static int done;
	size_t pool = (size_t)contexts * GCM_HANDLE_BYTES;

	if (sodium_init() < 0)
		return -1;
	if (done)
		return 0;
	done = 1;
	/* The pool is mlocked once, here, before any sandbox: a receiver
	 * under seccomp never needs mlock again. A handle that does not fit
	 * fails aead_new rather than leaving a key schedule in swappable
	 * memory. Where libgcrypt is unusable (too old, or FIPS mode, which
	 * forbids a caller-chosen GCM nonce) libsodium does the same AEAD. */
	if (!gcry_check_version(GCRYPT_VERSION) || gcry_fips_mode_active())
		return 0;
	if (pool < SECMEM_MIN)
		pool = SECMEM_MIN;
	warn_if_unlockable(pool);
	gcry_control(GCRYCTL_DISABLE_SECMEM_WARN);
	if (gcry_control(GCRYCTL_INIT_SECMEM, pool, 0) != 0)
		return 0;
	gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
	gcm_impl = AEAD_IMPL_LIBGCRYPT;
	return 0;
}

int crypto_setup(void)
{
	return crypto_setup_contexts(32);
}

enum aead_impl aead_gcm_impl(void)
{
	return gcm_impl;
}

int aead_force_impl(enum aead_impl impl)
{
	if (impl == AEAD_IMPL_LIBGCRYPT && !gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P))
		return -ENOTSUP;
	gcm_impl = impl;
	return 0;
}

enum aead_alg aead_default(void)
{
	return crypto_aead_aes256gcm_is_available() ? AEAD_AES256GCM : AEAD_XCHACHA20POLY1305;
}

int aead_supported(enum aead_alg alg)
{
	return alg == AEAD_XCHACHA20POLY1305 ||
	       (alg == AEAD_AES256GCM && crypto_aead_aes256gcm_is_available());
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

	if (!aead_supported(alg))
		return NULL;
	/* sodium_malloc places the object at the end of a page; round the
	 * size to 16 so the AES state stays aligned. */
	c = sodium_malloc((sizeof(*c) + 15) & ~(size_t)15);
	if (!c)
		return NULL;
	c->alg = alg;
	c->gcm = NULL;
	memcpy(c->key, key, SESSION_KEY_LEN);
	if (alg != AEAD_AES256GCM)
		return c;
	if (gcm_impl == AEAD_IMPL_LIBSODIUM) {
		crypto_aead_aes256gcm_beforenm(&c->aes, key);
		return c;
	}
	if (gcry_cipher_open(&c->gcm, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_GCM,
	                     GCRY_CIPHER_SECURE) != 0) {
		c->gcm = NULL;
		aead_free(c);
		return NULL;
	}
	if (gcry_cipher_setkey(c->gcm, key, SESSION_KEY_LEN) != 0) {
		aead_free(c);
		return NULL;
	}
	return c;
}

void aead_free(struct aead_ctx *c)
{
	if (!c)
		return;
	if (c->gcm)
		gcry_cipher_close(c->gcm); /* wipes the handle */
	sodium_free(c);                    /* wipes before unmapping */
}

/* One GCM operation on libgcrypt: a 12-byte nonce, the header as
 * associated data, the payload, then the tag written (seal) or checked
 * (open). final marks the next encrypt or decrypt as the last one. */
static int gcm_start(gcry_cipher_hd_t h, const uint8_t nonce[static 12], const uint8_t *hdr,
                     int final)
{
	if (gcry_cipher_setiv(h, nonce, 12) != 0 ||
	    gcry_cipher_authenticate(h, hdr, PROTO_HEADER_LEN) != 0)
		return -EINVAL;
	if (final)
		gcry_cipher_final(h);
	return 0;
}

/* Plaintext bytes [0, head) are in the frame already, the rest (when head
 * < ptlen) is read from rest and encrypted straight into place. */
static int gcm_seal(gcry_cipher_hd_t h, const uint8_t nonce[static 12], uint8_t *frame,
                    size_t ptlen, size_t head, const uint8_t *rest)
{
	uint8_t *pt = frame + PROTO_HEADER_LEN;

	if (gcm_start(h, nonce, frame, head == ptlen) < 0 ||
	    gcry_cipher_encrypt(h, pt, head, NULL, 0) != 0)
		return -EINVAL;
	if (head < ptlen) {
		gcry_cipher_final(h);
		if (gcry_cipher_encrypt(h, pt + head, ptlen - head, rest, ptlen - head) != 0)
			return -EINVAL;
	}
	if (gcry_cipher_gettag(h, pt + ptlen, PROTO_TAG_LEN) != 0)
		return -EINVAL;
	return 0;
}

/* Ciphertext [0, head) is decrypted in place; pick (not called when head
 * is all of it) sees it and says where the rest goes (NULL: in place). */
static int gcm_open_to(gcry_cipher_hd_t h, const uint8_t nonce[static 12], uint8_t *frame,
                       size_t ctlen, size_t head, aead_pick_fn pick, void *arg, uint8_t **rest)
{
	uint8_t *ct = frame + PROTO_HEADER_LEN, *dst = NULL;

	if (gcm_start(h, nonce, frame, head == ctlen) < 0 ||
	    (head && gcry_cipher_decrypt(h, ct, head, NULL, 0) != 0))
		goto bad;
	if (head < ctlen) {
		dst = pick(arg, ct);
		gcry_cipher_final(h);
		if (dst ? gcry_cipher_decrypt(h, dst, ctlen - head, ct + head, ctlen - head)
		        : gcry_cipher_decrypt(h, ct + head, ctlen - head, NULL, 0))
			goto bad;
	}
	if (gcry_cipher_checktag(h, ct + ctlen, PROTO_TAG_LEN) != 0)
		goto bad;
	*rest = dst ? dst : ct + head;
	return 0;
bad:
	/* Both places may hold unauthenticated plaintext now: wipe them, as
	 * libsodium does, so nothing downstream can use it by mistake. */
	if (dst)
		sodium_memzero(dst, ctlen - head);
	sodium_memzero(ct, ctlen);
	return -EBADMSG;
}

static int gcm_open(gcry_cipher_hd_t h, const uint8_t nonce[static 12], uint8_t *frame,
                    size_t ctlen)
{
	uint8_t *rest;

	return gcm_open_to(h, nonce, frame, ctlen, ctlen, NULL, NULL, &rest);
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

/* Payload bytes of a len-byte frame (header and tag around them), when the
 * frame has room for both and head is a whole number of GCM blocks within
 * the payload; -EINVAL otherwise. */
static int payload_len(size_t len, size_t head, size_t *out)
{
	if (len < PROTO_HEADER_LEN + PROTO_TAG_LEN || head % 16 != 0 ||
	    head > len - PROTO_HEADER_LEN - PROTO_TAG_LEN)
		return -EINVAL;
	*out = len - PROTO_HEADER_LEN - PROTO_TAG_LEN;
	return 0;
}

int aead_seal_frame_from(struct aead_ctx *c, uint8_t *frame, size_t len, size_t head,
                         const uint8_t *rest)
{
	uint8_t nonce[24];
	size_t ptlen;

	if (payload_len(len, head, &ptlen) < 0)
		return -EINVAL;
	if (!c->gcm) { /* libsodium seals in place only */
		memcpy(frame + PROTO_HEADER_LEN + head, rest, ptlen - head);
		return aead_seal_frame(c, frame, len);
	}
	make_nonce(nonce, frame, c->alg);
	return gcm_seal(c->gcm, nonce, frame, ptlen, head, rest);
}

int aead_seal_frame(struct aead_ctx *c, uint8_t *frame, size_t len)
{
	uint8_t nonce[24];
	uint8_t *pt = frame + PROTO_HEADER_LEN;
	size_t ptlen;

	if (payload_len(len, 0, &ptlen) < 0)
		return -EINVAL;
	make_nonce(nonce, frame, c->alg);
	if (c->gcm)
		return gcm_seal(c->gcm, nonce, frame, ptlen, ptlen, NULL);
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
	size_t ctlen;
	int rc;

	if (payload_len(len, 0, &ctlen) < 0)
		return -EINVAL;
	make_nonce(nonce, frame, c->alg);
	if (c->gcm)
		return gcm_open(c->gcm, nonce, frame, ctlen);
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

int aead_open_frame_to(struct aead_ctx *c, uint8_t *frame, size_t len, size_t head,
                       aead_pick_fn pick, void *arg, uint8_t **rest)
{
	uint8_t nonce[24], *dst;
	size_t ctlen;
	int rc;

	if (payload_len(len, head, &ctlen) < 0)
		return -EINVAL;
	if (c->gcm) {
		make_nonce(nonce, frame, c->alg);
		return gcm_open_to(c->gcm, nonce, frame, ctlen, head, pick, arg, rest);
	}
	/* libsodium opens in place only: authenticate first, then copy. */
	rc = aead_open_frame(c, frame, len);
	if (rc < 0)
		return rc;
	*rest = frame + PROTO_HEADER_LEN + head;
	if (head < ctlen && (dst = pick(arg, frame + PROTO_HEADER_LEN)) != NULL) {
		memcpy(dst, *rest, ctlen - head);
		*rest = dst;
	}
	return 0;
}
