/* chunk.c - chunk ids (HMAC-SHA-256), zstd, AES-256-GCM sealing with a versioned header. */
#include "engine/chunk.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "common/xalloc.h"

#include "engine_internal.h"

static const uint8_t MAGIC[4] = { 'C', 'R', 'N', 'K' };

struct engine_codec {
	struct engine_tenant_keys keys;
	int level;
	bool compress;
	bool check_ids;
	EVP_MAC *mac;
	EVP_MAC_CTX *mctx;
	EVP_MAC *fmac; /* Poly1305 for block fingerprints */
	EVP_MAC_CTX *fmctx;
	uint8_t fp_key[32]; /* HMAC(id key, "cairn-block-fingerprint-v1") */
	EVP_CIPHER_CTX *cctx;
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
	uint8_t *scratch; /* compressed plaintext / decrypted stored bytes */
	size_t scratch_cap;
};

struct engine_codec *engine_codec_new(const struct engine_tenant_keys *tk, int zstd_level,
                                      bool compress)
{
	struct engine_codec *c = xcalloc(1, sizeof(*c));
	OSSL_PARAM params[2];

	c->keys = *tk;
	c->level = zstd_level;
	c->compress = compress;
	c->check_ids = true;
	c->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	c->mctx = c->mac ? EVP_MAC_CTX_new(c->mac) : NULL;
	c->fmac = EVP_MAC_fetch(NULL, "POLY1305", NULL);
	c->fmctx = c->fmac ? EVP_MAC_CTX_new(c->fmac) : NULL;
	c->cctx = EVP_CIPHER_CTX_new();
	c->zc = ZSTD_createCCtx();
	c->zd = ZSTD_createDCtx();
	if (c->mctx == NULL || c->fmctx == NULL || c->cctx == NULL || c->zc == NULL ||
	    c->zd == NULL)
		abort(); /* allocation failure inside a library: treat as OOM */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(c->mctx, c->keys.id_key, ENGINE_KEY_LEN, params) != 1)
		abort();
	{
		static const char label[] = "cairn-block-fingerprint-v1";
		size_t outl = 0;

		if (EVP_MAC_update(c->mctx, (const uint8_t *)label, sizeof(label) - 1) != 1 ||
		    EVP_MAC_final(c->mctx, c->fp_key, &outl, sizeof(c->fp_key)) != 1 ||
		    outl != sizeof(c->fp_key))
			abort();
	}
	ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, zstd_level);
	if (zstd_level >= 12) { /* these levels default to tables of 2^22 or more: never raises */
		ZSTD_CCtx_setParameter(c->zc, ZSTD_c_hashLog, ENGINE_ZSTD_TABLELOG_MAX);
		ZSTD_CCtx_setParameter(c->zc, ZSTD_c_chainLog, ENGINE_ZSTD_TABLELOG_MAX);
	}
	ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 0);
	ZSTD_DCtx_setParameter(c->zd, ZSTD_d_windowLogMax, ENGINE_ZSTD_WINDOWLOG_MAX);
	return c;
}

void engine_codec_free(struct engine_codec *c)
{
	if (c == NULL)
		return;
	engine_key_wipe(&c->keys, sizeof(c->keys));
	engine_key_wipe(c->fp_key, sizeof(c->fp_key));
	EVP_MAC_CTX_free(c->mctx);
	EVP_MAC_free(c->mac);
	EVP_MAC_CTX_free(c->fmctx);
	EVP_MAC_free(c->fmac);
	EVP_CIPHER_CTX_free(c->cctx);
	ZSTD_freeCCtx(c->zc);
	ZSTD_freeDCtx(c->zd);
	if (c->scratch)
		engine_key_wipe(c->scratch, c->scratch_cap); /* may hold plaintext */
	free(c->scratch);
	free(c);
}

static uint8_t *scratch(struct engine_codec *c, size_t n)
{
	if (c->scratch_cap < n) {
		free(c->scratch);
		c->scratch = xmalloc(n);
		c->scratch_cap = n;
	}
	return c->scratch;
}

void engine_codec_id(struct engine_codec *c, const void *p, size_t n, uint8_t id[ENGINE_ID_LEN])
{
	size_t outl = 0;

	/* Re-init with NULL key keeps the key and resets the state. */
	if (EVP_MAC_init(c->mctx, NULL, 0, NULL) != 1 || EVP_MAC_update(c->mctx, p, n) != 1 ||
	    EVP_MAC_final(c->mctx, id, &outl, ENGINE_ID_LEN) != 1 || outl != ENGINE_ID_LEN)
		abort();
}

void engine_codec_fingerprints(struct engine_codec *c, const void *p, size_t n, uint8_t *fps)
{
	const uint8_t *b = p;

	for (size_t off = 0; off < n; off += ENGINE_BLOCK, fps += ENGINE_FP_LEN) {
		size_t len = n - off < ENGINE_BLOCK ? n - off : ENGINE_BLOCK;
		size_t outl = 0;

		/* Poly1305 takes its key per message: init with the key every block. */
		if (EVP_MAC_init(c->fmctx, c->fp_key, sizeof(c->fp_key), NULL) != 1 ||
		    EVP_MAC_update(c->fmctx, b + off, len) != 1 ||
		    EVP_MAC_final(c->fmctx, fps, &outl, ENGINE_FP_LEN) != 1 ||
		    outl != ENGINE_FP_LEN)
			abort();
	}
}

void engine_codec_check_ids(struct engine_codec *c, bool check)
{
	c->check_ids = check;
}

size_t engine_sealed_bound(size_t n)
{
	return ENGINE_CHUNK_HDR_LEN + ZSTD_compressBound(n) + 16;
}

static void aad_build(uint8_t aad[28 + ENGINE_ID_LEN], const uint8_t *hdr, const uint8_t *id)
{
	memcpy(aad, hdr, 28);
	memcpy(aad + 28, id, ENGINE_ID_LEN);
}

enum status engine_codec_seal(struct engine_codec *c, uint8_t kind, const uint8_t id[ENGINE_ID_LEN],
                              const void *plain, size_t n, uint8_t *out, size_t *out_len,
                              struct err *e)
{
	const uint8_t *src = plain;
	size_t stored = n;
	uint8_t flags = 0;
	uint8_t aad[28 + ENGINE_ID_LEN];
	int len;

	if (n > UINT32_MAX / 2)
		return err_set(e, STATUS_TOO_LARGE, "object of %zu bytes too large", n);
	if (c->compress && n > 0) {
		size_t cap = ZSTD_compressBound(n);
		uint8_t *z = scratch(c, cap);
		size_t r = ZSTD_compress2(c->zc, z, cap, plain, n);

		if (ZSTD_isError(r))
			return err_set(e, STATUS_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
		if (r < n) { /* store raw when compression does not shrink */
			src = z;
			stored = r;
			flags |= ENGINE_FLAG_ZSTD;
		}
	}
	memcpy(out, MAGIC, 4);
	out[4] = ENGINE_CHUNK_VERSION;
	out[5] = kind;
	out[6] = flags;
	out[7] = 0;
	engine_put_le32(out + 8, (uint32_t)n);
	engine_put_le32(out + 12, (uint32_t)stored);
	if (RAND_bytes(out + 16, 12) != 1)
		return err_set(e, STATUS_INTERNAL, "RAND_bytes failed");
	aad_build(aad, out, id);
	if (EVP_EncryptInit_ex(c->cctx, EVP_aes_256_gcm(), NULL, c->keys.data_key, out + 16) != 1 ||
	    EVP_EncryptUpdate(c->cctx, NULL, &len, aad, sizeof(aad)) != 1 ||
	    EVP_EncryptUpdate(c->cctx, out + ENGINE_CHUNK_HDR_LEN, &len, src, (int)stored) != 1 ||
	    EVP_EncryptFinal_ex(c->cctx, out + ENGINE_CHUNK_HDR_LEN + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c->cctx, EVP_CTRL_GCM_GET_TAG, 16, out + 28) != 1)
		return err_set(e, STATUS_INTERNAL, "AES-GCM encryption failed");
	*out_len = ENGINE_CHUNK_HDR_LEN + stored;
	return STATUS_OK;
}

enum status engine_chunk_header_parse(const uint8_t *in, size_t in_len, size_t max_plain,
                                      struct engine_chunk_header *h, struct err *e)
{
	if (in_len < ENGINE_CHUNK_HDR_LEN)
		return err_set(e, STATUS_CORRUPT, "truncated header (%zu bytes)", in_len);
	if (memcmp(in, MAGIC, 4) != 0)
		return err_set(e, STATUS_CORRUPT, "bad magic");
	h->version = in[4];
	h->kind = in[5];
	h->flags = in[6];
	h->plain_len = engine_get_le32(in + 8);
	h->stored_len = engine_get_le32(in + 12);
	memcpy(h->nonce, in + 16, 12);
	memcpy(h->tag, in + 28, 16);
	if (h->version != ENGINE_CHUNK_VERSION)
		return err_set(e, STATUS_CORRUPT, "unsupported version %u", h->version);
	if ((h->flags & ~ENGINE_FLAG_ZSTD) != 0 || in[7] != 0)
		return err_set(e, STATUS_CORRUPT, "unknown flags");
	if (h->plain_len > max_plain)
		return err_set(e, STATUS_CORRUPT, "plaintext length %u exceeds limit %zu",
		               h->plain_len, max_plain);
	if ((uint64_t)h->stored_len + ENGINE_CHUNK_HDR_LEN != in_len)
		return err_set(e, STATUS_CORRUPT, "stored length %u does not match size %zu",
		               h->stored_len, in_len);
	if (!(h->flags & ENGINE_FLAG_ZSTD) && h->stored_len != h->plain_len)
		return err_set(e, STATUS_CORRUPT, "raw object with mismatched lengths");
	if ((h->flags & ENGINE_FLAG_ZSTD) && h->stored_len > ZSTD_compressBound(h->plain_len))
		return err_set(e, STATUS_CORRUPT, "compressed length out of bounds");
	return STATUS_OK;
}

enum status engine_codec_open(struct engine_codec *c, uint8_t kind, const uint8_t id[ENGINE_ID_LEN],
                              const uint8_t *in, size_t in_len, void *out, size_t out_cap,
                              size_t *out_len, struct err *e)
{
	struct engine_chunk_header h = { 0 };
	uint8_t aad[28 + ENGINE_ID_LEN];
	uint8_t *dst;
	int len;
	enum status st = engine_chunk_header_parse(in, in_len, out_cap, &h, e);

	if (st != STATUS_OK)
		return st;
	if (h.kind != kind)
		return err_set(e, STATUS_CORRUPT, "object kind %u, expected %u", h.kind, kind);
	dst = (h.flags & ENGINE_FLAG_ZSTD) ? scratch(c, h.stored_len ? h.stored_len : 1) : out;
	aad_build(aad, in, id);
	if (EVP_DecryptInit_ex(c->cctx, EVP_aes_256_gcm(), NULL, c->keys.data_key, h.nonce) != 1 ||
	    EVP_DecryptUpdate(c->cctx, NULL, &len, aad, sizeof(aad)) != 1 ||
	    EVP_DecryptUpdate(c->cctx, dst, &len, in + ENGINE_CHUNK_HDR_LEN, (int)h.stored_len) !=
	            1 ||
	    EVP_CIPHER_CTX_ctrl(c->cctx, EVP_CTRL_GCM_SET_TAG, 16, h.tag) != 1 ||
	    EVP_DecryptFinal_ex(c->cctx, dst + len, &len) != 1) {
		/* Do not leave unauthenticated plaintext in the caller's buffer. */
		memset(dst, 0, h.stored_len);
		return err_set(e, STATUS_CORRUPT, "authentication failed (wrong key or tampered)");
	}
	if (h.flags & ENGINE_FLAG_ZSTD) {
		size_t r;

		ZSTD_DCtx_reset(c->zd, ZSTD_reset_session_only);
		r = ZSTD_decompressDCtx(c->zd, out, h.plain_len, dst, h.stored_len);
		if (ZSTD_isError(r) || r != h.plain_len)
			return err_set(e, STATUS_CORRUPT, "decompression failed: %s",
			               ZSTD_isError(r) ? ZSTD_getErrorName(r) : "length mismatch");
	}
	if (kind == ENGINE_KIND_CHUNK && c->check_ids) {
		uint8_t got[ENGINE_ID_LEN];

		engine_codec_id(c, out, h.plain_len, got);
		if (memcmp(got, id, ENGINE_ID_LEN) != 0) {
			memset(out, 0, h.plain_len);
			return err_set(e, STATUS_CORRUPT, "content does not match chunk id");
		}
	}
	*out_len = h.plain_len;
	return STATUS_OK;
}
