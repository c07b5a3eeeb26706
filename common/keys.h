/* SPDX-License-Identifier: MIT */
/* Key files: reading, writing and identifying sluice keys.
 *
 * A key file is two lines of text:
 *     sluice <kind> v1 keyid=<16 hex digits>
 *     <base64 (sodium_base64_VARIANT_ORIGINAL) of the raw key bytes>
 * Secret key files are created O_EXCL|O_NOFOLLOW with mode 0600 and refused
 * when group- or world-accessible (like signify and ssh).
 */
#ifndef SLUICE_COMMON_KEYS_H
#define SLUICE_COMMON_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEYID_LEN 8

enum key_kind {
	KEY_INVALID = 0,
	KEY_SIGN_SECRET, /* "sign-secret": Ed25519 sk, 64 bytes (sender) */
	KEY_SIGN_PUBLIC, /* "sign-public": Ed25519 pk, 32 bytes */
	KEY_BOX_SECRET,  /* "box-secret": X25519 sk||pk, 64 bytes (receiver) */
	KEY_BOX_PUBLIC,  /* "box-public": X25519 pk, 32 bytes */
	KEY_LOG_SECRET,  /* "log-secret": Ed25519 sk, 64 bytes (receipt log) */
	KEY_LOG_PUBLIC,  /* "log-public": Ed25519 pk, 32 bytes */
};

/* Raw length in bytes of a key of this kind, 0 for KEY_INVALID. */
size_t key_len(enum key_kind kind);
const char *key_kind_name(enum key_kind kind);
int key_is_secret(enum key_kind kind);

/* Key id: the first 8 bytes of BLAKE2b-256("sluice-keyid-v1" || pk). */
void key_id(uint8_t out[static KEYID_LEN], const uint8_t pk[static 32]);
/* 16 lowercase hex digits + NUL. */
void key_id_hex(char out[static 2 * KEYID_LEN + 1], const uint8_t id[static KEYID_LEN]);

/* Write a key file. Secret kinds: mode 0600; public: 0644. Never overwrites
 * (O_EXCL). id is the key id of the matching public key.
 * Returns 0 or -errno (-EEXIST when the file exists). */
__attribute__((warn_unused_result)) int keyfile_write(const char *path, enum key_kind kind,
                                                      const uint8_t *key,
                                                      const uint8_t id[static KEYID_LEN]);

/* Read a key file of the expected kind into out (key_len(kind) bytes; use
 * sodium_malloc'd memory for secrets) and its id into id (may be NULL).
 * On failure returns -errno or -EINVAL/-EPERM and writes a user-facing
 * message (what happened, what to do) into err. Secret keys whose file
 * mode has any group/other bit set are refused with -EPERM. Files are opened
 * with O_NOFOLLOW. Any intermediate buffers holding secret bytes are wiped. */
__attribute__((warn_unused_result)) int keyfile_read(const char *path, enum key_kind kind,
                                                     uint8_t *out, uint8_t id[KEYID_LEN], char *err,
                                                     size_t errlen);

/* The kind named in a key file's header (for tools that accept any key file,
 * like "sluice-keygen id"). Only the header is checked; call keyfile_read
 * with the returned kind to load and verify the key. Returns 0 or -errno with
 * a user-facing message in err, like keyfile_read. */
__attribute__((warn_unused_result)) int keyfile_kind(const char *path, enum key_kind *kind,
                                                     char *err, size_t errlen);

#endif
