/* patch.c - patch objects and block maps (see engine/patch.h). */
#include "engine/patch.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xalloc.h"

#include "engine_internal.h"

static const uint8_t PATCH_MAGIC[4] = { 'C', 'P', 'T', '1' };
static const uint8_t MAP_MAGIC[4] = { 'C', 'B', 'M', '1' };

static uint32_t block_len(uint32_t len, uint32_t i)
{
	uint64_t off = (uint64_t)i * ENGINE_BLOCK;

	return len - off < ENGINE_BLOCK ? (uint32_t)(len - off) : ENGINE_BLOCK;
}

static uint32_t popcount(const uint8_t *set, uint32_t nb)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < nb; i++)
		k += (set[i / 8] >> (i % 8)) & 1u;
	return k;
}

size_t engine_patch_bound(uint32_t len)
{
	return 12 + 4 * (size_t)engine_blocks(len) + len;
}

size_t engine_patch_set_bytes(const uint8_t *set, uint32_t len, uint32_t *n)
{
	uint32_t nb = engine_blocks(len), k = 0;
	size_t bytes = 0;

	for (uint32_t i = 0; i < nb; i++) {
		if (set[i / 8] & (1u << (i % 8))) {
			k++;
			bytes += block_len(len, i);
		}
	}
	if (n != NULL)
		*n = k;
	return bytes;
}

size_t engine_patch_build(const uint8_t *chunk, uint32_t len, const uint8_t *set, uint8_t *out)
{
	uint32_t nb = engine_blocks(len), n = 0;
	uint8_t *idx = out + 12, *data;

	engine_patch_set_bytes(set, len, &n);
	memcpy(out, PATCH_MAGIC, 4);
	engine_put_le32(out + 4, len);
	engine_put_le32(out + 8, n);
	data = idx + 4 * (size_t)n;
	for (uint32_t i = 0; i < nb; i++) {
		if (!(set[i / 8] & (1u << (i % 8))))
			continue;
		uint32_t bl = block_len(len, i);

		engine_put_le32(idx, i);
		idx += 4;
		memcpy(data, chunk + (size_t)i * ENGINE_BLOCK, bl);
		data += bl;
	}
	return (size_t)(data - out);
}

enum status engine_patch_apply(uint8_t *buf, uint32_t len, const uint8_t *p, size_t n,
                               struct err *e)
{
	uint32_t nb = engine_blocks(len), k;
	const uint8_t *idx, *data;
	size_t need;

	if (n < 12 || memcmp(p, PATCH_MAGIC, 4) != 0)
		return err_set(e, STATUS_CORRUPT, "patch: bad magic");
	if (engine_get_le32(p + 4) != len)
		return err_set(e, STATUS_CORRUPT, "patch: made for %u bytes, entry has %u",
		               engine_get_le32(p + 4), len);
	k = engine_get_le32(p + 8);
	if (k > nb || (n - 12) / 4 < k)
		return err_set(e, STATUS_CORRUPT, "patch: bad block count %u", k);
	idx = p + 12;
	data = idx + 4 * (size_t)k;
	need = 12 + 4 * (size_t)k;
	for (uint32_t j = 0; j < k; j++) {
		uint32_t i = engine_get_le32(idx + 4 * (size_t)j);

		if (i >= nb || (j > 0 && i <= engine_get_le32(idx + 4 * (size_t)(j - 1))))
			return err_set(e, STATUS_CORRUPT, "patch: bad block index %u", i);
		need += block_len(len, i);
	}
	if (need != n)
		return err_set(e, STATUS_CORRUPT, "patch: %zu bytes, expected %zu", n, need);
	for (uint32_t j = 0; buf != NULL && j < k; j++) {
		uint32_t i = engine_get_le32(idx + 4 * (size_t)j), bl = block_len(len, i);

		memcpy(buf + (size_t)i * ENGINE_BLOCK, data, bl);
		data += bl;
	}
	return STATUS_OK;
}

void engine_blockmap_rec_alloc(struct engine_blockmap_rec *rec, uint32_t nblocks)
{
	size_t fl = (size_t)nblocks * ENGINE_FP_LEN, bl = ((size_t)nblocks + 7) / 8;

	rec->has = true;
	rec->nblocks = nblocks;
	rec->fps = xmalloc(2 * fl + bl + 1);
	rec->patched = rec->fps + fl;
	rec->base_fps = rec->patched + bl;
	memset(rec->patched, 0, bl);
}

void engine_blockmap_rec_cleanup(struct engine_blockmap_rec *rec)
{
	if (rec == NULL)
		return;
	free(rec->fps);
	memset(rec, 0, sizeof(*rec));
}

void engine_blockmap_rec_copy(struct engine_blockmap_rec *dst,
                              const struct engine_blockmap_rec *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->has)
		return;
	engine_blockmap_rec_alloc(dst, src->nblocks);
	memcpy(dst->fps, src->fps, (size_t)src->nblocks * ENGINE_FP_LEN);
	memcpy(dst->patched, src->patched, ((size_t)src->nblocks + 7) / 8);
	memcpy(dst->base_fps, src->base_fps, (size_t)src->nblocks * ENGINE_FP_LEN);
}

size_t engine_blockmap_plain_max(uint32_t chunk_size, uint32_t group)
{
	size_t nb = engine_blocks(chunk_size);

	return 8 + (size_t)group * (5 + (nb + 7) / 8 + 2 * nb * ENGINE_FP_LEN);
}

uint8_t *engine_blockmap_encode(const struct engine_blockmap_rec *recs, size_t n, size_t *len)
{
	struct buf b;
	uint8_t t[5];

	buf_init(&b);
	buf_append(&b, MAP_MAGIC, 4);
	engine_put_le32(t, (uint32_t)n);
	buf_append(&b, t, 4);
	for (size_t i = 0; i < n; i++) {
		const struct engine_blockmap_rec *r = &recs[i];

		t[0] = r->has ? 1 : 0;
		buf_append(&b, t, 1);
		if (!r->has)
			continue;
		engine_put_le32(t, r->nblocks);
		buf_append(&b, t, 4);
		buf_append(&b, r->patched, ((size_t)r->nblocks + 7) / 8);
		buf_append(&b, r->fps, (size_t)r->nblocks * ENGINE_FP_LEN);
		buf_append(&b, r->base_fps,
		           (size_t)popcount(r->patched, r->nblocks) * ENGINE_FP_LEN);
	}
	*len = b.len;
	return (uint8_t *)buf_take(&b);
}

enum status engine_blockmap_decode(const uint8_t *p, size_t len, struct engine_blockmap_rec **recs,
                                   size_t *n, struct err *e)
{
	size_t off = 8, cnt;
	struct engine_blockmap_rec *v;

	*recs = NULL;
	*n = 0;
	if (len < 8 || memcmp(p, MAP_MAGIC, 4) != 0)
		return err_set(e, STATUS_CORRUPT, "block map: bad magic");
	cnt = engine_get_le32(p + 4);
	if (cnt > len - 8) /* every record takes at least one byte */
		return err_set(e, STATUS_CORRUPT, "block map: bad record count");
	v = xcalloc(cnt ? cnt : 1, sizeof(*v));
	for (size_t i = 0; i < cnt; i++) {
		uint32_t nb;
		size_t fl, bl;

		if (off >= len)
			goto bad;
		if (p[off] == 0) {
			off++;
			continue;
		}
		if (p[off] != 1 || len - off < 5)
			goto bad;
		nb = engine_get_le32(p + off + 1);
		off += 5;
		fl = (size_t)nb * ENGINE_FP_LEN;
		bl = ((size_t)nb + 7) / 8;
		if (nb == 0 || nb > engine_blocks(ENGINE_CHUNK_MAX) || len - off < fl + bl)
			goto bad;
		engine_blockmap_rec_alloc(&v[i], nb);
		memcpy(v[i].patched, p + off, bl);
		memcpy(v[i].fps, p + off + bl, fl);
		off += fl + bl;
		if (nb % 8 != 0 && (v[i].patched[bl - 1] >> (nb % 8)) != 0)
			goto bad; /* bits past the last block */
		size_t pl = (size_t)popcount(v[i].patched, nb) * ENGINE_FP_LEN;
		if (len - off < pl)
			goto bad;
		memcpy(v[i].base_fps, p + off, pl);
		off += pl;
	}
	if (off != len)
		goto bad;
	*recs = v;
	*n = cnt;
	return STATUS_OK;
bad:
	engine_blockmap_free(v, cnt);
	return err_set(e, STATUS_CORRUPT, "block map: malformed");
}

void engine_blockmap_free(struct engine_blockmap_rec *recs, size_t n)
{
	if (recs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		engine_blockmap_rec_cleanup(&recs[i]);
	free(recs);
}
