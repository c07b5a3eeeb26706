/* SPDX-License-Identifier: MIT */
/* Pass one: block hashes, content hash, signed manifest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/crypto.h"
#include "common/uring_read.h"
#include "common/util.h"
#include "plan.h"

static int hash_blocks(struct plan *p, int fd, char *err, size_t errlen)
{
	crypto_generichash_state whole;
	struct ureader *r;
	const uint8_t *data;
	size_t len;
	uint64_t idx;
	int rc;

	rc = ureader_open(&r, fd, p->size, p->chunk, 4);
	if (rc < 0) {
		snprintf(err, errlen, "cannot set up file reading: %s", strerror(-rc));
		return rc;
	}
	crypto_generichash_init(&whole, NULL, 0, PROTO_HASH_LEN);
	while ((rc = ureader_next(r, &data, &len, &idx)) == 1) {
		crypto_generichash(p->block_hashes + idx * PROTO_HASH_LEN, PROTO_HASH_LEN, data,
		                   len, NULL, 0);
		crypto_generichash_update(&whole, data, len);
	}
	ureader_close(r);
	if (rc < 0) {
		snprintf(err, errlen, "reading the file failed: %s%s", strerror(-rc),
		         rc == -EIO ? " (did it shrink while being sent?)" : "");
		return rc;
	}
	crypto_generichash_final(&whole, p->content_hash, PROTO_HASH_LEN);
	return 0;
}

static int build_manifest(struct plan *p, const struct plan_args *a)
{
	struct manifest m = {
	    .kind = MANIFEST_KIND_FILE,
	    .sequence = a->sequence,
	    .created_ns = 0,
	    .expires = a->expires,
	    .object_size = p->size,
	    .chunk_size = p->chunk,
	    .symbol_size = p->S,
	    .k = p->k,
	    .block_count = p->blocks,
	    .name = (const uint8_t *)a->name,
	    .name_len = (uint16_t)strlen(a->name),
	    .block_hashes = p->block_hashes,
	};
	m.created_ns = wall_ns();
	memcpy(m.sender_id, a->sender_id, PROTO_KEYID_LEN);
	memcpy(m.content_hash, p->content_hash, PROTO_HASH_LEN);
	object_id_compute(&m, m.object_id);
	memcpy(p->object_id, m.object_id, PROTO_HASH_LEN);

	p->manifest_len = proto_manifest_len(m.name_len, 0, p->blocks);
	if (p->manifest_len == 0)
		return -EFBIG;
	p->manifest = malloc(p->manifest_len);
	if (!p->manifest)
		return -ENOMEM;
	if (proto_manifest_encode(p->manifest, p->manifest_len, &m) != p->manifest_len)
		return -EINVAL;
	crypto_sign_detached(p->manifest + p->manifest_len - MANIFEST_SIGNATURE_LEN, NULL,
	                     p->manifest, p->manifest_len - MANIFEST_SIGNATURE_LEN, a->sign_sk);
	crypto_generichash(p->manifest_hash, PROTO_HASH_LEN, p->manifest, p->manifest_len, NULL, 0);
	return 0;
}

int plan_file(struct plan *p, int fd, uint64_t size, const struct plan_args *a, char *err,
              size_t errlen)
{
	uint64_t blocks;
	int rc;

	memset(p, 0, sizeof(*p));
	if (!proto_name_valid((const uint8_t *)a->name, strlen(a->name))) {
		snprintf(err, errlen,
		         "'%s' cannot be published under that name: names are 1-255 bytes, "
		         "without '/', control characters or a leading '.'; use --name",
		         a->name);
		return -EINVAL;
	}
	p->size = size;
	p->S = a->symbol_size;
	p->k = a->k;
	p->chunk = (uint32_t)a->k * a->symbol_size;
	blocks = proto_block_count(size, p->chunk);
	if (blocks > UINT32_MAX ||
	    proto_manifest_len((uint16_t)strlen(a->name), 0, (uint32_t)blocks) == 0) {
		snprintf(err, errlen,
		         "the file is too large for one object at this block size; "
		         "use a larger --mtu");
		return -EFBIG;
	}
	p->blocks = (uint32_t)blocks;
	p->block_hashes = malloc(blocks ? blocks * PROTO_HASH_LEN : 1);
	if (!p->block_hashes)
		return -ENOMEM;
	rc = hash_blocks(p, fd, err, errlen);
	if (rc < 0)
		return rc;
	rc = build_manifest(p, a);
	if (rc < 0)
		snprintf(err, errlen, "cannot build the manifest: %s", strerror(-rc));
	return rc;
}

void plan_free(struct plan *p)
{
	free(p->block_hashes);
	free(p->manifest);
	memset(p, 0, sizeof(*p));
}
