/* SPDX-License-Identifier: MIT */
/* Encode and validating decode of the signed manifest and its entry list. */
#include <string.h>

#include "bytes.h"
#include "manifest.h"

_Static_assert(MANIFEST_FIXED_LEN == 104 + PROTO_HASH_LEN, "manifest fixed part");
_Static_assert(MANIFEST_ENTRY_FIXED == 20 + PROTO_HASH_LEN, "entry fixed part");

size_t proto_manifest_len(uint16_t name_len, uint32_t entries_len, uint32_t block_count)
{
	uint64_t n = (uint64_t)MANIFEST_FIXED_LEN + name_len + entries_len +
	             (uint64_t)block_count * PROTO_HASH_LEN + MANIFEST_SIGNATURE_LEN;

	return n > PROTO_MAX_MANIFEST ? 0 : (size_t)n;
}

size_t proto_manifest_encode(uint8_t *out, size_t len, const struct manifest *m)
{
	size_t need = proto_manifest_len(m->name_len, m->entries_len, m->block_count);
	uint8_t *p;

	if (need == 0 || need != len)
		return 0;
	memset(out, 0, len);
	memcpy(out, MANIFEST_MAGIC, 4);
	out[4] = MANIFEST_VERSION;
	out[5] = m->kind;
	memcpy(out + 8, m->sender_id, PROTO_KEYID_LEN);
	put_le64(out + 16, m->sequence);
	put_le64(out + 24, m->created_ns);
	put_le64(out + 32, m->expires);
	put_le64(out + 40, m->object_size);
	put_le32(out + 48, m->chunk_size);
	put_le16(out + 52, m->symbol_size);
	out[54] = m->k;
	put_le32(out + 56, m->block_count);
	put_le16(out + 60, m->name_len);
	put_le32(out + 64, m->entry_count);
	put_le32(out + 68, m->entries_len);
	memcpy(out + 72, m->content_hash, PROTO_HASH_LEN);
	memcpy(out + 104, m->object_id, PROTO_HASH_LEN);
	p = out + MANIFEST_FIXED_LEN;
	memcpy(p, m->name, m->name_len);
	p += m->name_len;
	if (m->entries_len)
		memcpy(p, m->entries, m->entries_len);
	p += m->entries_len;
	if (m->block_count)
		memcpy(p, m->block_hashes, (size_t)m->block_count * PROTO_HASH_LEN);
	return len;
}

static int is_bad_char(uint8_t c)
{
	return c < 0x20 || c == 0x7f;
}

int proto_name_valid(const uint8_t *name, size_t len)
{
	if (len == 0 || len > MANIFEST_MAX_NAME || name[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++)
		if (is_bad_char(name[i]) || name[i] == '/')
			return 0;
	return 1;
}

int proto_path_valid(const uint8_t *path, size_t len)
{
	size_t start = 0;

	if (len == 0 || len > MANIFEST_MAX_PATH)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] != '/') {
			if (is_bad_char(path[i]))
				return 0;
			continue;
		}
		size_t clen = i - start;
		if (clen == 0 || (clen == 1 && path[start] == '.') ||
		    (clen == 2 && path[start] == '.' && path[start + 1] == '.'))
			return 0;
		start = i + 1;
	}
	return 1;
}

size_t proto_entry_encode(uint8_t *out, size_t cap, const struct manifest_entry *e)
{
	size_t need = (size_t)MANIFEST_ENTRY_FIXED + e->path_len;

	if (need > cap || e->mode > ENTRY_MODE_MAX || !proto_path_valid(e->path, e->path_len))
		return 0;
	put_le16(out, e->path_len);
	out[2] = e->mode;
	out[3] = 0;
	put_le64(out + 4, e->size);
	put_le64(out + 12, e->mtime);
	memcpy(out + 20, e->hash, PROTO_HASH_LEN);
	memcpy(out + MANIFEST_ENTRY_FIXED, e->path, e->path_len);
	return need;
}

int proto_entry_next(const struct manifest *m, uint32_t *off, struct manifest_entry *e)
{
	const uint8_t *p;
	uint32_t left;

	if (*off > m->entries_len)
		return PROTO_ERR_LENGTH;
	p = m->entries + *off;
	left = m->entries_len - *off;
	if (left == 0)
		return 0;
	if (left < MANIFEST_ENTRY_FIXED)
		return PROTO_ERR_LENGTH;
	e->path_len = get_le16(p);
	e->mode = p[2];
	e->size = get_le64(p + 4);
	e->mtime = get_le64(p + 12);
	e->hash = p + 20;
	e->path = p + MANIFEST_ENTRY_FIXED;
	if (p[3] != 0)
		return PROTO_ERR_RESERVED;
	if (e->path_len > left - MANIFEST_ENTRY_FIXED)
		return PROTO_ERR_LENGTH;
	if (e->mode > ENTRY_MODE_MAX || !proto_path_valid(e->path, e->path_len))
		return PROTO_ERR_FIELD;
	if (e->mode == ENTRY_DIR && e->size != 0)
		return PROTO_ERR_FIELD;
	*off += MANIFEST_ENTRY_FIXED + e->path_len;
	return 1;
}

static int decode_fixed(const uint8_t *buf, struct manifest *m)
{
	if (memcmp(buf, MANIFEST_MAGIC, 4) != 0)
		return PROTO_ERR_MAGIC;
	if (buf[4] != MANIFEST_VERSION)
		return PROTO_ERR_VERSION;
	m->kind = buf[5];
	memcpy(m->sender_id, buf + 8, PROTO_KEYID_LEN);
	m->sequence = get_le64(buf + 16);
	m->created_ns = get_le64(buf + 24);
	m->expires = get_le64(buf + 32);
	m->object_size = get_le64(buf + 40);
	m->chunk_size = get_le32(buf + 48);
	m->symbol_size = get_le16(buf + 52);
	m->k = buf[54];
	m->block_count = get_le32(buf + 56);
	m->name_len = get_le16(buf + 60);
	m->entry_count = get_le32(buf + 64);
	m->entries_len = get_le32(buf + 68);
	memcpy(m->content_hash, buf + 72, PROTO_HASH_LEN);
	memcpy(m->object_id, buf + 104, PROTO_HASH_LEN);
	if (get_le16(buf + 6) != 0 || buf[55] != 0 || get_le16(buf + 62) != 0)
		return PROTO_ERR_RESERVED;
	if (m->kind != MANIFEST_KIND_FILE && m->kind != MANIFEST_KIND_BUNDLE)
		return PROTO_ERR_FIELD;
	if (m->k == 0 || m->k > PROTO_MAX_K || m->symbol_size < PROTO_MIN_SYMBOL ||
	    m->symbol_size > PROTO_MAX_SYMBOL || m->chunk_size != (uint32_t)m->k * m->symbol_size)
		return PROTO_ERR_FIELD;
	if (proto_block_count(m->object_size, m->chunk_size) != m->block_count)
		return PROTO_ERR_FIELD;
	return PROTO_OK;
}

/* Walk the entry list once: every entry valid, the count and the byte length
 * agree, and for a bundle the file sizes add up to the object size. */
static int check_entries(const struct manifest *m)
{
	uint32_t off = 0, n = 0;
	uint64_t total = 0;
	struct manifest_entry e;
	int rc;

	if (m->kind == MANIFEST_KIND_FILE)
		return m->entry_count == 0 && m->entries_len == 0 ? PROTO_OK : PROTO_ERR_FIELD;
	if (m->entry_count == 0 || m->entry_count > MANIFEST_MAX_ENTRIES)
		return PROTO_ERR_FIELD;
	while ((rc = proto_entry_next(m, &off, &e)) == 1) {
		if (++n > m->entry_count || e.size > m->object_size - total)
			return PROTO_ERR_FIELD;
		total += e.size;
	}
	if (rc < 0)
		return rc;
	return n == m->entry_count && total == m->object_size ? PROTO_OK : PROTO_ERR_FIELD;
}

int proto_manifest_decode(const uint8_t *buf, size_t len, struct manifest *out)
{
	size_t need;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len < MANIFEST_FIXED_LEN + MANIFEST_SIGNATURE_LEN)
		return PROTO_ERR_SHORT;
	if (len > PROTO_MAX_MANIFEST)
		return PROTO_ERR_LENGTH;
	rc = decode_fixed(buf, out);
	if (rc != PROTO_OK)
		return rc;
	need = proto_manifest_len(out->name_len, out->entries_len, out->block_count);
	if (need == 0 || need != len)
		return PROTO_ERR_LENGTH;
	out->name = buf + MANIFEST_FIXED_LEN;
	out->entries = out->name + out->name_len;
	out->block_hashes = out->entries + out->entries_len;
	out->signed_len = len - MANIFEST_SIGNATURE_LEN;
	out->signature = buf + out->signed_len;
	if (!proto_name_valid(out->name, out->name_len))
		return PROTO_ERR_FIELD;
	return check_entries(out);
}
