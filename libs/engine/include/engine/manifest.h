/* manifest.h - restore point manifests: which chunk holds which bytes of each disk.
 *
 * Serialized in a compact little-endian binary form ("CMF1", format 2; format 1 without patch
 * entries and block maps is still read), then sealed like a chunk
 * (kind manifest, id = HMAC(id key, "cairn-manifest-v1:" || rp id)) so a manifest cannot be
 * swapped for another restore point's. Entries of a disk are contiguous from offset 0 and
 * cover exactly the disk size; the parser checks that. */
#ifndef ENGINE_MANIFEST_H
#define ENGINE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/chunk.h"
#include "engine/repo.h"

/* Entry kinds. A PATCH entry's bytes are its base chunk (a DATA chunk of an earlier restore
 * point, same offset and length) with the blocks listed in its patch object replaced; a ZPATCH
 * entry patches all-zero bytes. Patches are always relative to a full chunk (never to another
 * patch), so reading an entry takes at most two objects. See engine/patch.h. */
#define ENGINE_ENTRY_DATA 0
#define ENGINE_ENTRY_ZERO 1   /* all-zero bytes: nothing stored */
#define ENGINE_ENTRY_PATCH 2  /* base chunk `base` + patch object `id` */
#define ENGINE_ENTRY_ZPATCH 3 /* zeros + patch object `id` */

/* disk flags */
#define ENGINE_DISK_HAS_SHA256 0x1 /* sha256 is the SHA-256 of the whole image */
#define ENGINE_DISK_CDC 0x2        /* chunked with FastCDC (stream), not fixed-size */
#define ENGINE_DISK_HAS_MAPS 0x4   /* map_ids: block maps per group of map_group entries */
#define ENGINE_MAP_GROUP_MAX 1024  /* bound on map_group a manifest may claim */

struct engine_manifest_entry {
	uint64_t offset;
	uint32_t length;
	uint8_t kind;                /* ENGINE_ENTRY_* */
	uint8_t id[ENGINE_ID_LEN];   /* DATA: chunk; PATCH/ZPATCH: patch object */
	uint8_t base[ENGINE_ID_LEN]; /* PATCH: the base chunk */
};

struct engine_manifest_disk {
	char *name;
	uint64_t size;
	uint32_t chunk_size; /* fixed chunk size, or FastCDC average */
	uint32_t flags;
	uint8_t sha256[32];
	size_t n_entries;
	struct engine_manifest_entry *entries;
	/* ENGINE_DISK_HAS_MAPS: block map object g covers entries [g*map_group, (g+1)*map_group) */
	uint32_t map_group;
	size_t n_maps;
	uint8_t (*map_ids)[ENGINE_ID_LEN];
};

struct engine_manifest {
	char *rp_id;
	char *parent_id; /* "" if none */
	char *tenant;
	char *source;       /* free text given by the caller (e.g. VM name) */
	int64_t created;    /* unix seconds */
	uint64_t bytes_new; /* sealed bytes this run added to the repository */
	size_t n_disks;
	struct engine_manifest_disk *disks;
};

/** @brief Free everything a manifest owns and the struct itself. NULL ok. */
void engine_manifest_free(struct engine_manifest *m);

/** @brief Borrowed disk by name or NULL. */
const struct engine_manifest_disk *engine_manifest_disk_find(const struct engine_manifest *m,
                                                             const char *name);

/** @brief Serialize to a new buffer (caller frees). */
uint8_t *engine_manifest_encode(const struct engine_manifest *m, size_t *n);
/** @brief Parse and validate; @returns new manifest or NULL (STATUS_CORRUPT). */
struct engine_manifest *engine_manifest_decode(const uint8_t *p, size_t n, struct err *e);

/** @brief The manifest object id for rp_id (binds the sealed manifest to its name). */
void engine_manifest_object_id(struct engine_codec *c, const char *rp_id,
                               uint8_t id[ENGINE_ID_LEN]);

/** @brief Encode, seal and write atomically (never replacing). @returns STATUS_CONFLICT if the
 *  restore point exists. The caller must have made every chunk durable (engine_repo_sync). */
enum status engine_manifest_save(struct engine_repo *r, struct engine_codec *c,
                                 const struct engine_manifest *m, struct err *e) MUST_CHECK;

/** @brief Read, authenticate and parse a restore point's manifest. @returns new manifest in
 *  *out; STATUS_NOT_FOUND, STATUS_CORRUPT ("restore point X: manifest damaged ..."). */
enum status engine_manifest_load(struct engine_repo *r, struct engine_codec *c, const char *rp_id,
                                 struct engine_manifest **out, struct err *e) MUST_CHECK;

#endif
