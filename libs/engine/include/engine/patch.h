/* patch.h - incremental backups below chunk granularity: patch objects and block maps.
 *
 * A 1 MiB chunk in which a guest rewrote a few 4 KiB blocks is stored as a *patch* against
 * the chunk the parent restore point had at the same offset (its *base*), not as a new
 * chunk. To know which blocks changed without the parent's plaintext, every backup stores a
 * *block map* beside its manifest: per entry, one fingerprint per 4 KiB block
 * (engine_codec_fingerprints) and the set of blocks that differ from the entry's base.
 *
 * Patch object plaintext (sealed and stored like a chunk, id = HMAC of this plaintext):
 *   "CPT1" | u32 chunk length | u32 n | u32 block index[n] (strictly increasing) |
 *   the n blocks' bytes (ENGINE_BLOCK each; the chunk's last block may be shorter)
 * A patch always lists every block that differs from its base (not only those that changed
 * since the parent), so an entry is base + one patch, however many backups ran since.
 *
 * Block map object plaintext (one per group of map_group entries, stored like a chunk):
 *   "CBM1" | u32 n | n records: u8 has; if has: u32 nblocks | bitmap of blocks that differ
 *   from the base (ceil(nblocks/8) bytes) | nblocks fingerprints of ENGINE_FP_LEN bytes |
 *   for each block set in the bitmap, in order, the base's fingerprint of that block
 * (so a block written back to its base content leaves the patch, and a chunk written back
 * entirely becomes its base chunk again)
 * "has" = 0 for zero entries (their fingerprints are those of zeros) and wherever the map is
 * unknown (the next backup then stores that entry's chunk whole). */
#ifndef ENGINE_PATCH_H
#define ENGINE_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/chunk.h"

#define ENGINE_MAP_GROUP_DEFAULT 32 /* entries per block map object (32 MiB of disk) */

/** @brief Largest patch plaintext for a chunk of len bytes (every block listed). */
size_t engine_patch_bound(uint32_t len);

/** @brief Bytes of the blocks set in bitmap `set` (engine_blocks(len) bits) of a len-byte
 *  chunk, and how many there are (*n, may be NULL). */
size_t engine_patch_set_bytes(const uint8_t *set, uint32_t len, uint32_t *n);

/** @brief Write the patch of chunk[0..len) for the blocks set in `set` into out (capacity
 *  engine_patch_bound(len)). @returns the plaintext size. Borrows everything. */
size_t engine_patch_build(const uint8_t *chunk, uint32_t len, const uint8_t *set, uint8_t *out);

/** @brief Apply patch p[0..n) to buf[0..len), which holds the base bytes; buf = NULL only
 *  checks the patch. @returns STATUS_OK or STATUS_CORRUPT (malformed, or made for another
 *  length); buf is unspecified on error. */
enum status engine_patch_apply(uint8_t *buf, uint32_t len, const uint8_t *p, size_t n,
                               struct err *e) MUST_CHECK;

/* One entry's block map record. fps, patched and base_fps share one allocation (fps owns). */
struct engine_blockmap_rec {
	bool has;
	uint32_t nblocks;
	uint8_t *fps;      /* nblocks * ENGINE_FP_LEN: the entry's blocks; owned */
	uint8_t *patched;  /* ceil(nblocks/8) bytes: blocks that differ from the base */
	uint8_t *base_fps; /* the base's fingerprints of the patched blocks, in block order
	                      (room for nblocks) */
};

/** @brief Give rec storage for nblocks (fps and a cleared bitmap); has = true. */
void engine_blockmap_rec_alloc(struct engine_blockmap_rec *rec, uint32_t nblocks);
/** @brief Free rec's storage; rec becomes "has = false". NULL ok. */
void engine_blockmap_rec_cleanup(struct engine_blockmap_rec *rec);
/** @brief Deep copy of src into dst (dst must be empty). */
void engine_blockmap_rec_copy(struct engine_blockmap_rec *dst,
                              const struct engine_blockmap_rec *src);

/** @brief Largest block map plaintext for a group of `group` entries of chunk_size bytes. */
size_t engine_blockmap_plain_max(uint32_t chunk_size, uint32_t group);
/** @brief Serialize n records into a new buffer (caller frees); *len gets its size. */
uint8_t *engine_blockmap_encode(const struct engine_blockmap_rec *recs, size_t n, size_t *len);
/** @brief Parse a block map. *recs is a new array of *n records (free with
 *  engine_blockmap_free). @returns STATUS_OK or STATUS_CORRUPT. */
enum status engine_blockmap_decode(const uint8_t *p, size_t len, struct engine_blockmap_rec **recs,
                                   size_t *n, struct err *e) MUST_CHECK;
/** @brief Free an array of n records. NULL ok. */
void engine_blockmap_free(struct engine_blockmap_rec *recs, size_t n);

#endif
