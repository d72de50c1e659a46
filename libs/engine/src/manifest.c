/* manifest.c - binary manifest encoding, sealing, loading. */
#include "engine/manifest.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xalloc.h"

static const uint8_t MAGIC[4] = { 'C', 'M', 'F', '1' };
#define MANIFEST_PLAIN_MAX (1u << 30)

void engine_manifest_free(struct engine_manifest *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_disks; i++) {
		free(m->disks[i].name);
		free(m->disks[i].entries);
		free(m->disks[i].map_ids);
	}
	free(m->disks);
	free(m->rp_id);
	free(m->parent_id);
	free(m->tenant);
	free(m->source);
	free(m);
}

const struct engine_manifest_disk *engine_manifest_disk_find(const struct engine_manifest *m,
                                                             const char *name)
{
	for (size_t i = 0; i < m->n_disks; i++)
		if (strcmp(m->disks[i].name, name) == 0)
			return &m->disks[i];
	return NULL;
}

static void put_u(struct buf *b, uint64_t v, int bytes)
{
	uint8_t t[8];

	for (int i = 0; i < bytes; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	buf_append(b, t, (size_t)bytes);
}

static void put_str(struct buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	put_u(b, n, 4);
	if (n)
		buf_append(b, s, n);
}

uint8_t *engine_manifest_encode(const struct engine_manifest *m, size_t *n)
{
	struct buf b;

	buf_init(&b);
	buf_append(&b, MAGIC, 4);
	put_u(&b, 2, 4);
	put_str(&b, m->rp_id);
	put_str(&b, m->parent_id);
	put_str(&b, m->tenant);
	put_str(&b, m->source);
	put_u(&b, (uint64_t)m->created, 8);
	put_u(&b, m->bytes_new, 8);
	put_u(&b, m->n_disks, 4);
	for (size_t i = 0; i < m->n_disks; i++) {
		const struct engine_manifest_disk *d = &m->disks[i];

		put_str(&b, d->name);
		put_u(&b, d->size, 8);
		put_u(&b, d->chunk_size, 4);
		put_u(&b, d->flags, 4);
		buf_append(&b, d->sha256, 32);
		put_u(&b, d->n_entries, 8);
		for (size_t j = 0; j < d->n_entries; j++) {
			const struct engine_manifest_entry *en = &d->entries[j];

			put_u(&b, en->offset, 8);
			put_u(&b, en->length, 4);
			put_u(&b, en->kind, 1);
			if (en->kind != ENGINE_ENTRY_ZERO)
				buf_append(&b, en->id, ENGINE_ID_LEN);
			if (en->kind == ENGINE_ENTRY_PATCH)
				buf_append(&b, en->base, ENGINE_ID_LEN);
		}
		if (d->flags & ENGINE_DISK_HAS_MAPS) {
			put_u(&b, d->map_group, 4);
			put_u(&b, d->n_maps, 8);
			for (size_t j = 0; j < d->n_maps; j++)
				buf_append(&b, d->map_ids[j], ENGINE_ID_LEN);
		}
	}
	*n = b.len;
	return (uint8_t *)buf_take(&b);
}

struct rd {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

static uint64_t get_u(struct rd *r, int bytes)
{
	uint64_t v = 0;

	if (r->bad || r->n - r->off < (size_t)bytes) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
	r->off += (size_t)bytes;
	return v;
}

static char *get_str(struct rd *r)
{
	uint64_t len = get_u(r, 4);

	if (r->bad || len > 4096 || r->n - r->off < len) {
		r->bad = true;
		return xstrdup("");
	}
	char *s = xstrndup((const char *)r->p + r->off, (size_t)len);
	if (strlen(s) != len)
		r->bad = true; /* embedded NUL */
	r->off += (size_t)len;
	return s;
}

static void get_bytes(struct rd *r, void *out, size_t len)
{
	if (r->bad || r->n - r->off < len) {
		r->bad = true;
		memset(out, 0, len);
		return;
	}
	memcpy(out, r->p + r->off, len);
	r->off += len;
}

struct engine_manifest *engine_manifest_decode(const uint8_t *p, size_t n, struct err *e)
{
	struct rd r = { .p = p, .n = n };
	struct engine_manifest *m;
	uint8_t magic[4];

	uint64_t version;

	get_bytes(&r, magic, 4);
	version = get_u(&r, 4);
	if (r.bad || memcmp(magic, MAGIC, 4) != 0 || (version != 1 && version != 2)) {
		err_set(e, STATUS_CORRUPT, "manifest: bad magic or version");
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->rp_id = get_str(&r);
	m->parent_id = get_str(&r);
	m->tenant = get_str(&r);
	m->source = get_str(&r);
	m->created = (int64_t)get_u(&r, 8);
	m->bytes_new = get_u(&r, 8);
	uint64_t nd = get_u(&r, 4);
	if (r.bad || nd > 256)
		goto bad;
	m->disks = xcalloc(nd ? nd : 1, sizeof(*m->disks));
	for (size_t i = 0; i < nd; i++) {
		struct engine_manifest_disk *d = &m->disks[i];
		uint64_t ne, pos = 0;

		m->n_disks = i + 1;
		d->name = get_str(&r);
		d->size = get_u(&r, 8);
		d->chunk_size = (uint32_t)get_u(&r, 4);
		d->flags = (uint32_t)get_u(&r, 4);
		get_bytes(&r, d->sha256, 32);
		ne = get_u(&r, 8);
		/* each entry takes at least 13 bytes: bound the allocation by the input */
		if (r.bad || ne > (r.n - r.off) / 13 || d->name[0] == '\0')
			goto bad;
		d->entries = xcalloc(ne ? ne : 1, sizeof(*d->entries));
		d->n_entries = ne;
		for (size_t j = 0; j < ne; j++) {
			struct engine_manifest_entry *en = &d->entries[j];

			en->offset = get_u(&r, 8);
			en->length = (uint32_t)get_u(&r, 4);
			en->kind = (uint8_t)get_u(&r, 1);
			if (en->kind == ENGINE_ENTRY_DATA ||
			    (version >= 2 &&
			     (en->kind == ENGINE_ENTRY_PATCH || en->kind == ENGINE_ENTRY_ZPATCH)))
				get_bytes(&r, en->id, ENGINE_ID_LEN);
			else if (en->kind != ENGINE_ENTRY_ZERO)
				goto bad;
			if (en->kind == ENGINE_ENTRY_PATCH)
				get_bytes(&r, en->base, ENGINE_ID_LEN);
			if (r.bad || en->offset != pos || en->length == 0 ||
			    en->length > ENGINE_CHUNK_MAX)
				goto bad;
			pos += en->length;
		}
		if (pos != d->size)
			goto bad;
		if (version < 2 && (d->flags & ENGINE_DISK_HAS_MAPS))
			goto bad;
		if (d->flags & ENGINE_DISK_HAS_MAPS) {
			uint64_t g = get_u(&r, 4), nm = get_u(&r, 8);

			if (r.bad || g == 0 || g > ENGINE_MAP_GROUP_MAX ||
			    (d->flags & ENGINE_DISK_CDC) || d->chunk_size == 0 ||
			    d->chunk_size > ENGINE_CHUNK_MAX || nm != (ne + g - 1) / g ||
			    nm > (r.n - r.off) / ENGINE_ID_LEN)
				goto bad;
			d->map_group = (uint32_t)g;
			d->n_maps = nm;
			d->map_ids = xcalloc(nm ? nm : 1, ENGINE_ID_LEN);
			for (size_t j = 0; j < nm; j++)
				get_bytes(&r, d->map_ids[j], ENGINE_ID_LEN);
		}
	}
	if (r.bad || r.off != r.n)
		goto bad;
	return m;
bad:
	err_set(e, STATUS_CORRUPT, "manifest: malformed content");
	engine_manifest_free(m);
	return NULL;
}

void engine_manifest_object_id(struct engine_codec *c, const char *rp_id, uint8_t id[ENGINE_ID_LEN])
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "cairn-manifest-v1:%s", rp_id);
	engine_codec_id(c, b.data, b.len, id);
	buf_cleanup(&b);
}

enum status engine_manifest_save(struct engine_repo *r, struct engine_codec *c,
                                 const struct engine_manifest *m, struct err *e)
{
	size_t n, sealed_len;
	uint8_t *plain = engine_manifest_encode(m, &n);
	uint8_t id[ENGINE_ID_LEN];
	uint8_t *sealed;
	enum status st;

	if (n > MANIFEST_PLAIN_MAX) {
		free(plain);
		return err_set(e, STATUS_TOO_LARGE, "manifest of %zu bytes too large", n);
	}
	sealed = xmalloc(engine_sealed_bound(n));
	engine_manifest_object_id(c, m->rp_id, id);
	st = engine_codec_seal(c, ENGINE_KIND_MANIFEST, id, plain, n, sealed, &sealed_len, e);
	if (st == STATUS_OK)
		st = engine_repo_manifest_put(r, m->rp_id, sealed, sealed_len, e);
	free(sealed);
	free(plain);
	return st;
}

enum status engine_manifest_load(struct engine_repo *r, struct engine_codec *c, const char *rp_id,
                                 struct engine_manifest **out, struct err *e)
{
	uint8_t *sealed = NULL, *plain = NULL;
	size_t n = 0, plen = 0;
	struct engine_chunk_header h;
	uint8_t id[ENGINE_ID_LEN];
	enum status st;

	*out = NULL;
	st = engine_repo_manifest_read(r, rp_id, &sealed, &n, e);
	if (st != STATUS_OK)
		return st;
	st = engine_chunk_header_parse(sealed, n, MANIFEST_PLAIN_MAX, &h, e);
	if (st != STATUS_OK)
		goto damaged;
	plain = xmalloc(h.plain_len ? h.plain_len : 1);
	engine_manifest_object_id(c, rp_id, id);
	st = engine_codec_open(c, ENGINE_KIND_MANIFEST, id, sealed, n, plain, h.plain_len, &plen,
	                       e);
	if (st != STATUS_OK)
		goto damaged;
	*out = engine_manifest_decode(plain, plen, e);
	if (*out == NULL)
		goto damaged;
	if (strcmp((*out)->rp_id, rp_id) != 0 ||
	    strcmp((*out)->tenant, engine_repo_tenant(r)) != 0) {
		engine_manifest_free(*out);
		*out = NULL;
		err_set(e, STATUS_CORRUPT, "identity mismatch");
		goto damaged;
	}
	goto out;
damaged:
	if (e != NULL) {
		char why[sizeof(e->msg)];

		memcpy(why, e->msg, sizeof(why));
		why[sizeof(why) - 1] = '\0';
		err_set(e, STATUS_CORRUPT, "restore point %s: manifest damaged (%.150s)", rp_id,
		        why);
	}
	st = STATUS_CORRUPT;
out:
	free(plain);
	free(sealed);
	return st;
}
