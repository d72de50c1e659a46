/* chunk.h - chunk ids and the sealed chunk format.
 *
 * chunk id = HMAC-SHA-256(tenant id key, plaintext). A sealed object (chunk or manifest) is
 *   header (44 bytes, little endian):
 *     0  magic "CRNK"           4  version (1)     5  kind (1 chunk, 2 manifest)
 *     6  flags (bit0 = zstd)    7  reserved (0)    8  plaintext length u32
 *     12 stored length u32      16 nonce[12]       28 tag[16]
 *   followed by stored-length bytes of AES-256-GCM ciphertext of the (compressed or raw)
 *   plaintext. AAD = header bytes 0..27 || id (32 bytes), so the id, kind, flags and lengths
 *   are authenticated and a chunk cannot be served under another id.
 * Decoding is bounded: plaintext length above the caller's limit is rejected before any
 * allocation, zstd runs with ZSTD_d_windowLogMax and an output buffer of exactly the header's
 * plaintext length, and the id is recomputed from the plaintext. */
#ifndef ENGINE_CHUNK_H
#define ENGINE_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/keys.h"

#define ENGINE_ID_LEN 32
#define ENGINE_CHUNK_HDR_LEN 44
#define ENGINE_CHUNK_VERSION 1
#define ENGINE_CHUNK_MAX (8u << 20) /* largest chunk plaintext (FastCDC max) */
#define ENGINE_KIND_CHUNK 1
#define ENGINE_KIND_MANIFEST 2
#define ENGINE_FLAG_ZSTD 0x01
/* Bound of the compressor's hash and chain tables (log2 entries) at levels >= 12: zstd sizes
 * them from the input, 129 MiB per codec at level 22 with 8 MiB chunks; 22 keeps a codec at
 * <= ~34 MiB for <= 1% more output there and changes nothing for chunks up to 2 MiB. */
#define ENGINE_ZSTD_TABLELOG_MAX 22
#define ENGINE_ZSTD_WINDOWLOG_MAX 24

struct engine_chunk_header {
	uint8_t version, kind, flags;
	uint32_t plain_len, stored_len;
	uint8_t nonce[12];
	uint8_t tag[16];
};

/* A codec holds per-thread OpenSSL and zstd contexts plus scratch space. Not thread-safe:
 * use one per thread. The keys are copied. */
struct engine_codec;

/** @brief New codec. zstd_level is any zstd level (negative = faster); compress=false stores
 *  plaintext uncompressed (still encrypted). @returns new codec (engine_codec_free). */
struct engine_codec *engine_codec_new(const struct engine_tenant_keys *tk, int zstd_level,
                                      bool compress);
/** @brief Free a codec and wipe its keys. NULL ok. */
void engine_codec_free(struct engine_codec *c);

/** @brief id = HMAC-SHA-256(id key, p[0..n)). */
void engine_codec_id(struct engine_codec *c, const void *p, size_t n, uint8_t id[ENGINE_ID_LEN]);

/* Block fingerprints: one ENGINE_FP_LEN-byte Poly1305 tag per ENGINE_BLOCK bytes of a chunk
 * (the last block may be shorter), under a key derived from the tenant's id key
 * (HMAC(id key, "cairn-block-fingerprint-v1")). Poly1305 is a universal hash: without the key
 * nobody can make two blocks collide, and the tags are only ever stored encrypted (block
 * maps), so reusing the key across blocks is safe. They let an incremental backup find the
 * 4 KiB blocks that changed inside a chunk without the parent's plaintext. */
#define ENGINE_BLOCK 4096u
#define ENGINE_FP_LEN 16

/** @brief Number of ENGINE_BLOCK blocks in n bytes (the last one may be partial). */
static inline uint32_t engine_blocks(size_t n)
{
	return (uint32_t)((n + ENGINE_BLOCK - 1) / ENGINE_BLOCK);
}

/** @brief Fingerprints of p[0..n): engine_blocks(n) tags of ENGINE_FP_LEN bytes into fps. */
void engine_codec_fingerprints(struct engine_codec *c, const void *p, size_t n, uint8_t *fps);

/** @brief With check=false, engine_codec_open does not recompute the HMAC id of a chunk's
 *  plaintext. The GCM tag still authenticates the ciphertext *and* the id (the id is in the
 *  AAD), so a damaged or swapped chunk is still rejected; only a chunk sealed under a wrong id
 *  by a holder of the tenant's data key would pass. Restore turns the check off when the
 *  whole-image SHA-256 will check the assembled bytes anyway; verify keeps it on. */
void engine_codec_check_ids(struct engine_codec *c, bool check);

/** @brief Upper bound of a sealed object's size for n plaintext bytes. */
size_t engine_sealed_bound(size_t n);

/** @brief Compress (if it shrinks) and encrypt plain under the data key with a random nonce,
 *  binding id and kind. out must hold engine_sealed_bound(n) bytes; *out_len gets the size.
 *  @returns STATUS_OK or STATUS_INTERNAL (OpenSSL/zstd failure) / STATUS_TOO_LARGE (n>4GiB). */
enum status engine_codec_seal(struct engine_codec *c, uint8_t kind, const uint8_t id[ENGINE_ID_LEN],
                              const void *plain, size_t n, uint8_t *out, size_t *out_len,
                              struct err *e) MUST_CHECK;

/** @brief Parse and bound-check a header against the object's total size and max_plain.
 *  @returns STATUS_CORRUPT on any inconsistency (bad magic/version/lengths). */
enum status engine_chunk_header_parse(const uint8_t *in, size_t in_len, size_t max_plain,
                                      struct engine_chunk_header *h, struct err *e) MUST_CHECK;

/** @brief Decrypt, decompress and (kind chunk) verify the id of a sealed object.
 *  out must hold out_cap bytes; a header claiming more than out_cap is rejected
 *  (STATUS_CORRUPT) before any allocation. @returns STATUS_OK, STATUS_CORRUPT (bad header,
 *  GCM tag failure = wrong tenant or tampering, zstd error, id mismatch). */
enum status engine_codec_open(struct engine_codec *c, uint8_t kind, const uint8_t id[ENGINE_ID_LEN],
                              const uint8_t *in, size_t in_len, void *out, size_t out_cap,
                              size_t *out_len, struct err *e) MUST_CHECK;

#endif
