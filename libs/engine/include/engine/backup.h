/* backup.h - backup, restore and verify of disk images (the engine's entry points).
 *
 * Pipeline: one reader thread (pread in chunk-size pieces, whole-image SHA-256) -> bounded
 * queue -> N worker threads (zero check, HMAC id, existence check, zstd, AES-GCM, write-once
 * with fdatasync) -> bounded queue -> the calling thread (manifest entries, statistics,
 * progress about once a second). Input buffers come from a fixed pool, so memory is
 * bounded by (2N+2) chunk buffers plus two sealed buffers per worker.
 *
 * Every function here is safe to call from several threads at once on different restore
 * points; a struct engine_repo may be shared. */
#ifndef ENGINE_BACKUP_H
#define ENGINE_BACKUP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/extents.h"
#include "engine/keys.h"
#include "engine/repo.h"

#define ENGINE_CHUNK_SIZE_DEFAULT (2u << 20) /* chosen by measurement: docs/engine.md */
#define ENGINE_ZSTD_LEVEL_DEFAULT 1
#define ENGINE_RP_ID_MAX 101

struct engine_progress {
	uint64_t bytes_total;  /* sum of disk sizes */
	uint64_t bytes_done;   /* bytes of the disks accounted for (read, zero or reused) */
	uint64_t bytes_read;   /* bytes actually read from the source */
	uint64_t bytes_stored; /* sealed bytes newly written to the repository */
	uint64_t chunks_new;   /* entries stored anew: whole chunks plus patches */
	double percent;
	double speed; /* bytes_done per second since start */
	double elapsed;
};

/** Progress callback: called from the calling thread about once a second and once at the
 *  end. p is borrowed for the call. */
typedef void (*engine_progress_fn)(const struct engine_progress *p, void *ud);

struct engine_disk_source {
	const char *name; /* disk name in the manifest (1..4096 bytes) */
	const char *path; /* image file or block device, read with pread */
	/* Change tracking since the parent restore point: only chunks overlapping these extents
	 * are read, the others are copied from the parent's manifest. NULL = no change tracking
	 * (read and hash everything, store only unknown chunks). Must be normalized. */
	const struct engine_extents *changed;
};

struct engine_backup_opts {
	uint32_t chunk_size; /* 0 = the parent's chunk size (first fixed-size disk of the parent
	                        restore point), else ENGINE_CHUNK_SIZE_DEFAULT; multiple of 4096,
	                        <= 8 MiB */
	int zstd_level;      /* used when zstd_level_set; default ENGINE_ZSTD_LEVEL_DEFAULT */
	bool zstd_level_set;
	bool no_compress;     /* store encrypted but uncompressed */
	bool no_image_sha256; /* skip the whole-image SHA-256: saves a sequential hash pass; restore
	                       then relies on the per-chunk ids alone */
	bool cdc;             /* FastCDC (512K/1M/8M) instead of fixed chunks: for streams */
	unsigned threads;     /* workers; 0 = online CPUs + 1 (I/O overlaps CPU work) */
	const char *rp_id;    /* NULL = engine_rp_id_generate() */
	const char *parent_rp; /* previous restore point (incremental); NULL = none */
	const char *source;    /* free text stored in the manifest; may be NULL */
	engine_progress_fn progress;
	void *progress_ud;
	const atomic_bool *cancel; /* checked per chunk; the run stops within milliseconds */
	/* Test hook, NULL in normal use: called by the reader of fixed-size chunks before it
	 * handles chunk `chunk` of disk `disk` (index into the disks). Lets a test change the
	 * source at an exact point of the run. */
	void (*reader_hook)(size_t disk, uint64_t chunk, void *ud);
	void *reader_hook_ud;
};

/* Where a backup's time went (seconds of wall time per activity, summed over threads):
 * for profiling and the benchmark, not a stable interface. */
struct engine_backup_timing {
	double read;      /* reader: pread of the source */
	double read_wait; /* reader: waiting for a free buffer (the pipeline is full) */
	double image_sha; /* hasher: whole-image SHA-256 */
	double id;        /* workers: zero check + HMAC chunk ids + existence checks */
	double seal;      /* workers: zstd + AES-GCM */
	double stage;     /* workers: writing temp chunk files (incl. mkdir) */
	double durable;   /* collector: fdatasync + link + directory fsyncs of batches */
	double commit;    /* final directory fsyncs + manifest */
};

struct engine_backup_result {
	char rp_id[ENGINE_RP_ID_MAX];
	uint64_t bytes_total, bytes_read, bytes_stored;
	uint64_t chunks_total, chunks_zero, chunks_new, chunks_known, chunks_parent;
	uint64_t chunks_patch;    /* entries stored as a patch against the parent's chunk */
	uint64_t maps_new;        /* block map objects written */
	uint64_t maps_unreadable; /* parent block maps that could not be read (entries stored
	                             whole instead) */
	uint64_t chunks_id_fused; /* chunk ids computed by the hasher in the same pass as the
	                             image SHA-256 (engine/sha256.h); diagnostic */
	double seconds;
	bool cancelled; /* returned status is STATUS_UNAVAILABLE and nothing was committed */
	struct engine_backup_timing timing;
};

/** @brief Back up disks into a new restore point. With opts->parent_rp, chunks whose
 *  extents did not change (change tracking) are taken from the parent manifest. The manifest
 *  is committed only after every new chunk and its directory are durable; on any error or
 *  cancel no restore point becomes visible (already stored chunks stay, for reuse).
 *  @returns STATUS_OK; STATUS_INVALID (options); STATUS_NOT_FOUND (parent, source);
 *  STATUS_CONFLICT (rp id exists); STATUS_IO; STATUS_CORRUPT (parent damaged);
 *  STATUS_UNAVAILABLE with res->cancelled when cancelled. res is always filled. */
enum status engine_backup_run(struct engine_repo *repo, const struct engine_tenant_keys *keys,
                              const struct engine_disk_source *disks, size_t n_disks,
                              const struct engine_backup_opts *opts,
                              struct engine_backup_result *res, struct err *e) MUST_CHECK;

struct engine_restore_opts {
	unsigned threads;  /* 0 = online CPUs + 1 */
	bool no_fsync;     /* skip the final fsync of the output */
	bool no_direct_io; /* write the output through the page cache (default: aligned chunks
	                      with O_DIRECT where the file system allows it) */
	engine_progress_fn progress;
	void *progress_ud;
	const atomic_bool *cancel;
};

/* Where a restore's time went (seconds per activity, summed over threads; for profiling). */
struct engine_restore_timing {
	double fetch;     /* workers: read, decrypt, decompress, apply patches */
	double buf_wait;  /* dispatcher: waiting for a free buffer (the pipeline is full) */
	double image_sha; /* collector: whole-image SHA-256 */
	double write;     /* writer: writing the output */
};

struct engine_restore_result {
	uint64_t bytes_total, bytes_written;
	uint64_t chunks_total, chunks_zero;
	bool sha256_checked; /* the manifest had a whole-image SHA-256 and it matched */
	double seconds;
	bool cancelled;
	struct engine_restore_timing timing;
};

/** @brief Restore one disk of a restore point byte-exact to out_path. A regular file is
 *  written under a temporary name beside out_path (zero chunks left as holes), checked
 *  against the manifest's SHA-256 and renamed into place only when complete and correct; a
 *  device is written in place. @returns STATUS_OK; STATUS_NOT_FOUND (restore point, disk,
 *  or a missing chunk: e names chunk id and restore point); STATUS_CORRUPT (damaged chunk or
 *  manifest, SHA-256 mismatch); STATUS_IO; STATUS_UNAVAILABLE when cancelled. */
enum status engine_restore_disk(struct engine_repo *repo, const struct engine_tenant_keys *keys,
                                const char *rp_id, const char *disk, const char *out_path,
                                const struct engine_restore_opts *opts,
                                struct engine_restore_result *res, struct err *e) MUST_CHECK;

struct engine_verify_problem {
	char chunk_id[2 * 32 + 1];
	enum status kind; /* STATUS_NOT_FOUND (missing) or STATUS_CORRUPT */
	char detail[96];
};

struct engine_verify_report {
	uint64_t chunks_checked; /* distinct chunks */
	uint64_t chunks_missing, chunks_corrupt;
	uint64_t bytes_checked;
	size_t n_problems;                      /* at most ENGINE_VERIFY_MAX_PROBLEMS recorded */
	struct engine_verify_problem *problems; /* owned; engine_verify_report_cleanup */
	double seconds;
};
#define ENGINE_VERIFY_MAX_PROBLEMS 1000

/** @brief Re-read every distinct chunk of a restore point, authenticate (GCM tag), decompress
 *  and check its id. @returns STATUS_OK when all are good; STATUS_CORRUPT / STATUS_NOT_FOUND
 *  when any is bad (report lists them; e names the first chunk id and the restore point);
 *  STATUS_CORRUPT/NOT_FOUND for a damaged/missing manifest; STATUS_UNAVAILABLE if cancelled. */
enum status engine_verify_rp(struct engine_repo *repo, const struct engine_tenant_keys *keys,
                             const char *rp_id, const struct engine_restore_opts *opts,
                             struct engine_verify_report *rep, struct err *e) MUST_CHECK;

/** @brief Release the report's problem list. */
void engine_verify_report_cleanup(struct engine_verify_report *rep);

/** @brief Generate a restore point id "<yyyymmddThhmmss.uuuuuuZ>-<8 hex>" (UTC, sorts in
 *  creation order) into out (>= 33 bytes). */
void engine_rp_id_generate(char *out, size_t cap);

#endif
