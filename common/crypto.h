/* SPDX-License-Identifier: MIT */
/* Frame AEAD, session-key sealing and object identity (libsodium, libgcrypt). */
#ifndef SLUICE_COMMON_CRYPTO_H
#define SLUICE_COMMON_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"
#include "proto/manifest.h"

#define SESSION_KEY_LEN 32

struct aead_ctx;

/* sodium_init(), and libgcrypt with a locked secure-memory pool for this
 * many AES-256-GCM contexts at once (only the first call sets the pool
 * size). -1 if libsodium cannot initialise; without a usable libgcrypt the
 * frame AES-GCM falls back to libsodium's. Call before any sandbox. */
__attribute__((warn_unused_result)) int crypto_setup_contexts(unsigned contexts);
/* crypto_setup_contexts(32). */
__attribute__((warn_unused_result)) int crypto_setup(void);

/* Which library computes AES-256-GCM for aead_new() contexts. Both give the
 * same bytes (tests/unit/test_manifest.c checks it); the choice is speed. */
enum aead_impl { AEAD_IMPL_LIBSODIUM, AEAD_IMPL_LIBGCRYPT };
enum aead_impl aead_gcm_impl(void);
/* For tests and tools/bench_aead: choose the implementation of contexts
 * made from now on; -ENOTSUP if libgcrypt was not set up. */
__attribute__((warn_unused_result)) int aead_force_impl(enum aead_impl impl);

/* AES-256-GCM where the CPU has AES-NI and PCLMUL, XChaCha20-Poly1305
 * otherwise. */
enum aead_alg aead_default(void);
/* 1 when contexts of alg can be made on this CPU (AES-256-GCM needs AES-NI
 * and PCLMUL), else 0. aead_new failing for a supported alg means memory. */
int aead_supported(enum aead_alg alg);
const char *aead_name(enum aead_alg alg);
/* Parse "aes256gcm" / "xchacha20poly1305" / "auto"; AEAD_INVALID if unknown. */
enum aead_alg aead_parse(const char *s);

/* Context in sodium_malloc'd (locked, guarded) memory holding a copy of key
 * (and, for AES-256-GCM on libgcrypt, a handle in its secure memory).
 * NULL when alg is unknown or not available on this CPU, or out of memory
 * (including the secure-memory pool that crypto_setup_contexts sized). */
struct aead_ctx *aead_new(enum aead_alg alg, const uint8_t key[static SESSION_KEY_LEN]);
void aead_free(struct aead_ctx *c);

/* Data frames are sealed and opened in two parts: the first AEAD_SPLIT
 * payload bytes (one GCM block: the symbol header and the symbol's first
 * AEAD_SPLIT_DATA bytes) in the frame, the rest straight from or into where
 * the symbol is kept (aead_seal_frame_from, aead_open_frame_to). */
#define AEAD_SPLIT      16
#define AEAD_SPLIT_DATA (AEAD_SPLIT - PROTO_SYMHDR_LEN)
_Static_assert(PROTO_SYMHDR_LEN < AEAD_SPLIT, "symbol header fits in one GCM block");

/* Seal a frame in place: bytes [0, 32) are the header (associated data and
 * nonce source: session id and counter), [32, len - 16) the plaintext, and
 * the tag is written to the last 16 bytes. Returns 0 or -EINVAL. */
__attribute__((warn_unused_result)) int aead_seal_frame(struct aead_ctx *c, uint8_t *frame,
                                                        size_t len);
/* The same bytes as copying rest into frame[32 + head, len - 16) and
 * aead_seal_frame, without the copy where the implementation can encrypt
 * out of place (libgcrypt): plaintext [32, 32 + head) is in the frame
 * already. head is a multiple of 16 (GCM blocks). 0 or -EINVAL. */
__attribute__((warn_unused_result)) int aead_seal_frame_from(struct aead_ctx *c, uint8_t *frame,
                                                             size_t len, size_t head,
                                                             const uint8_t *rest);
/* Open in place; -EBADMSG when the tag does not verify (plaintext then
 * undefined and must not be used). */
__attribute__((warn_unused_result)) int aead_open_frame(struct aead_ctx *c, uint8_t *frame,
                                                        size_t len);
/* Open a frame whose plaintext after its first head bytes (a multiple of
 * 16) belongs elsewhere, decrypted straight there where the implementation
 * can (libgcrypt), otherwise opened in place and copied. pick(arg, pt) is
 * given plaintext [32, 32 + head) and returns where the remaining
 * len - 48 - head bytes go, or NULL to leave them in the frame. On the
 * libgcrypt path pick runs BEFORE the tag is checked: it may only choose
 * a place, and the place it returns is wiped if the tag then fails, so it
 * must hold nothing of value. On success *rest points at those bytes;
 * -EBADMSG (nothing usable anywhere) or -EINVAL otherwise. */
typedef uint8_t *(*aead_pick_fn)(void *arg, const uint8_t *pt);
__attribute__((warn_unused_result)) int aead_open_frame_to(struct aead_ctx *c, uint8_t *frame,
                                                           size_t len, size_t head,
                                                           aead_pick_fn pick, void *arg,
                                                           uint8_t **rest);

/* Object id: BLAKE2b-256 over a domain string and every manifest field that
 * describes the content (kind, size, layout, name, entries, content and
 * block hashes), but not who sent it when: the same content sent again gets
 * the same id. */
void object_id_compute(const struct manifest *m, uint8_t out[static PROTO_HASH_LEN]);

/* Hex encode n bytes into out (2n+1 bytes). */
void hex_encode(char *out, const uint8_t *in, size_t n);

#endif
