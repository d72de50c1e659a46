/* repo.h - a tenant's repository on the local file system.
 *
 * Layout: <root>/CAIRN-REPO (marker: "cairn repository v2"), <root>/<tenant>/chunks/ab/<64
 * hex id> (v1 repositories, still read and written: chunks/ab/cd/<64 hex id>),
 * <root>/<tenant>/manifests/<rp id>.mf, temp files beside their target (".tmp-*").
 * Objects are written once: temp name, fdatasync, link() (fails if the name exists, so an
 * existing chunk is never rewritten), unlink temp. Directories that received new entries
 * are fsynced by engine_repo_sync() before a manifest is committed, and the manifests
 * directory right after it. Only sealed (encrypted) bytes are ever written here. */
#ifndef ENGINE_REPO_H
#define ENGINE_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/chunk.h"

struct engine_repo;

/** @brief Open the tenant's part of the repository at root. create=true makes root (a new
 *  root gets the v2 layout) and the tenant's directories if missing. @returns new repo
 *  (engine_repo_free) or NULL with e set (STATUS_INVALID bad tenant id or unknown repository
 *  version, STATUS_NOT_FOUND, STATUS_IO). */
struct engine_repo *engine_repo_open(const char *root, const char *tenant, bool create,
                                     struct err *e);
/** @brief Close. NULL ok. */
void engine_repo_free(struct engine_repo *r);

/** @brief Borrowed tenant id / root path, valid until engine_repo_free. */
const char *engine_repo_tenant(const struct engine_repo *r);
const char *engine_repo_root(const struct engine_repo *r);

/** @brief Direct I/O for chunk writes (on by default; see engine_repo_chunk_stage). Turn it
 *  off where O_DIRECT is slow or unsupported (some network file systems). Not thread-safe
 *  against writers running at the same time: set it right after opening. */
void engine_repo_set_direct_io(struct engine_repo *r, bool on);

/** @brief Path of a chunk's file: new string (caller frees). */
char *engine_repo_chunk_path(const struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN]);

/** @brief true if the chunk file exists. Thread-safe. */
bool engine_repo_chunk_exists(struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN]);

/** @brief Store a sealed chunk once. *stored = false if it already existed (nothing written).
 *  Thread-safe. @returns STATUS_IO on failure. */
enum status engine_repo_chunk_put(struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN],
                                  const void *sealed, size_t n, bool *stored,
                                  struct err *e) MUST_CHECK;

/* A chunk written under a temporary name, not yet durable nor visible (two-phase put, so a
 * caller can make many chunks durable together before publishing them). */
struct engine_staged_chunk {
	int fd;    /* open temp file; -1 when none */
	char *tmp; /* owned temp path */
	uint8_t id[ENGINE_ID_LEN];
	size_t len;
};

/** @brief Write sealed bytes to a temp file beside the chunk's final name (no fsync).
 *  Thread-safe. On success sc owns an fd and a path: finish with _publish or _discard. */
enum status engine_repo_chunk_stage(struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN],
                                    const void *sealed, size_t n, struct engine_staged_chunk *sc,
                                    struct err *e) MUST_CHECK;
/** @brief Make a staged chunk durable (fdatasync unless already_synced) and visible under its
 *  final name with link(), which never replaces an existing chunk (*stored = false then).
 *  Always releases sc. Thread-safe. */
enum status engine_repo_chunk_publish(struct engine_repo *r, struct engine_staged_chunk *sc,
                                      bool already_synced, bool *stored, struct err *e) MUST_CHECK;
/** @brief Drop a staged chunk (close, unlink temp). NULL-safe on an empty sc. */
void engine_repo_chunk_discard(struct engine_staged_chunk *sc);

/** @brief Read a sealed chunk into buf (capacity cap). @returns STATUS_NOT_FOUND,
 *  STATUS_CORRUPT if larger than cap (cannot be a valid chunk), STATUS_IO. Thread-safe. */
enum status engine_repo_chunk_read(struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN],
                                   void *buf, size_t cap, size_t *n, struct err *e) MUST_CHECK;

/** @brief fsync every directory that received a new chunk since the last call.
 *  Call before committing a manifest. */
enum status engine_repo_sync(struct engine_repo *r, struct err *e) MUST_CHECK;

/** @brief Write a sealed manifest once (fsync, link, fsync dir). @returns STATUS_CONFLICT if
 *  a restore point with this id exists. */
enum status engine_repo_manifest_put(struct engine_repo *r, const char *rp_id, const void *sealed,
                                     size_t n, struct err *e) MUST_CHECK;
/** @brief Read a sealed manifest (new buffer in *out, caller frees). STATUS_NOT_FOUND. */
enum status engine_repo_manifest_read(struct engine_repo *r, const char *rp_id, uint8_t **out,
                                      size_t *n, struct err *e) MUST_CHECK;
/** @brief Restore point ids in commit order (manifest file mtime, then name): the last is
 *  the newest. *ids is a new array of new strings; free with engine_repo_ids_free. */
enum status engine_repo_manifest_list(struct engine_repo *r, char ***ids, size_t *n,
                                      struct err *e) MUST_CHECK;
void engine_repo_ids_free(char **ids, size_t n);

/** @brief true if s is a valid restore point id: 1..100 of [A-Za-z0-9_.-], no leading '.'. */
bool engine_rp_id_valid(const char *s);

/** @brief Remove temporary files (".tmp-*") older than max_age_s from the tenant's chunk and
 *  manifest directories: what a writer killed mid-write (SIGKILL, power loss) left behind.
 *  Published chunks and manifests are never touched. Temporary files live for seconds, so
 *  an age of an hour or more is safe while other writers are active.
 *  @param removed receives how many files were removed; may be NULL.
 *  @returns STATUS_OK (unreadable directories are skipped) or STATUS_INVALID. */
enum status engine_repo_sweep_temps(struct engine_repo *r, unsigned max_age_s, size_t *removed,
                                    struct err *e) MUST_CHECK;

#endif
