/* datastore.h - the platform connector interface and its first implementation, the
 * local datastore directory ("the tenants' cloud" for now). docs/datastore.md has the
 * on-disk layout, the vm.json schema, the snapshot semantics and the -ctk format.
 *
 * A connector is a `struct platform` whose first member points at a `struct platform_ops`
 * table; later connectors (libvirt, VMware Cloud Director) fill the same table. The
 * datastore also exposes path-based functions (datastore_*) that the write tool and the
 * tests use directly.
 */
#ifndef ENGINE_DATASTORE_H
#define ENGINE_DATASTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* ---- extents --------------------------------------------------------------------------- */

/* A byte range of a disk. */
struct extent {
	uint64_t off;
	uint64_t len;
};

/* A growable array of extents, sorted by offset and non-overlapping when produced by the
 * datastore. Caller-allocated; v is owned. */
struct extent_list {
	struct extent *v;
	size_t n;
	size_t cap;
};

/** @brief Initialise a caller-allocated list to empty. */
void extent_list_init(struct extent_list *l);
/** @brief Free the array of l (l itself is the caller's); l is empty afterwards. */
void extent_list_cleanup(struct extent_list *l);
/** @brief Append [off, off+len), merging with the last extent when they touch.
 *  Aborts on OOM. len 0 is ignored. */
void extent_list_append(struct extent_list *l, uint64_t off, uint64_t len);
/** @brief Sum of the lengths of l. */
uint64_t extent_list_bytes(const struct extent_list *l);

/* ---- inventory objects ------------------------------------------------------------------ */

struct platform_disk {
	char *id;   /* uuid */
	char *name; /* unique inside the VM, e.g. "disk0" */
	char *path; /* absolute path of the live image (datastore); NULL for remote connectors */
	uint64_t size;
};

/* Optional application inside the VM (application-aware processing). */
struct platform_app {
	char *type; /* "postgresql" */
	char *host;
	int port;
	char *user;       /* may be NULL */
	char **databases; /* may be empty: all databases */
	size_t n_databases;
};

struct platform_vm {
	char *id; /* uuid */
	char *name;
	char *guest_os;
	char *org, *org_id;
	char *vdc, *vdc_id;
	char *vapp, *vapp_id;
	char *locator; /* connector-specific; datastore: absolute VM directory */
	struct platform_disk *disks;
	size_t n_disks;
	struct platform_app *app; /* NULL when the VM names no application */
};

struct platform_inventory {
	struct platform_vm **vms; /* sorted by org, vdc, vapp, name */
	size_t n_vms;
};

/** @brief Free vm and everything it owns. NULL is fine. */
void platform_vm_free(struct platform_vm *vm);
/** @brief Free the VMs of inv (inv itself is the caller's); inv is empty afterwards. */
void platform_inventory_cleanup(struct platform_inventory *inv);
/** @brief Find a disk by name. @returns borrowed pointer into vm, or NULL. */
const struct platform_disk *platform_vm_disk(const struct platform_vm *vm, const char *name);
/** @brief The inventory as JSON text: {"vms":[{id,name,guest_os,org:{id,name},vdc:{..},
 *  vapp:{..},disks:[{id,name,size}],application:{..}}]}.
 *  @returns new string (caller frees); never NULL. */
char *platform_inventory_to_json(const struct platform_inventory *inv);
/** @brief One VM as JSON text (same shape as an element of "vms"), with "locator".
 *  @returns new string (caller frees); never NULL. */
char *platform_vm_to_json(const struct platform_vm *vm);

/* ---- snapshots -------------------------------------------------------------------------- */

struct platform_snapshot_disk {
	char *name;
	char *path; /* what to read: the reflink clone, or the live image held by a lock */
	uint64_t size;
	char *change_id; /* "<ctk-uuid>/<epoch>": pass to changed_extents on the next run */
};

struct platform_snapshot {
	char *id; /* uuid */
	char *vm_id;
	char *locator; /* datastore: VM directory */
	char *mode;    /* "reflink" or "lock" */
	char *created; /* RFC 3339 UTC */
	struct platform_snapshot_disk *disks;
	size_t n_disks;
};

/** @brief Free snap (the in-memory description only; does not release the snapshot).
 *  NULL is fine. */
void platform_snapshot_free(struct platform_snapshot *snap);
/** @brief Find a disk of a snapshot by name. @returns borrowed pointer, or NULL. */
const struct platform_snapshot_disk *platform_snapshot_disk(const struct platform_snapshot *snap,
                                                            const char *name);
/** @brief The snapshot as JSON text. @returns new string (caller frees); never NULL. */
char *platform_snapshot_to_json(const struct platform_snapshot *snap);

/* ---- the connector interface ------------------------------------------------------------ */

struct platform;
/* An open disk: base of every connector's handle. */
struct platform_disk_handle {
	struct platform *p;
	uint64_t size; /* bytes */
};

struct platform_ops {
	const char *name; /* "datastore" */
	/* Every VM the connector sees. Fills *inv (caller cleans up). */
	enum status (*inventory)(struct platform *p, struct platform_inventory *inv, struct err *e);
	/* One VM by id. *vm is new (caller frees with platform_vm_free). NOT_FOUND if unknown. */
	enum status (*vm_get)(struct platform *p, const char *vm_id, struct platform_vm **vm,
	                      struct err *e);
	/* Point-in-time snapshot of every disk of the VM. *snap is new (caller frees the
	 * description with platform_snapshot_free after snapshot_release). */
	enum status (*snapshot_create)(struct platform *p, const char *vm_id,
	                               struct platform_snapshot **snap, struct err *e);
	/* Release the snapshot (drop clones or locks). Idempotent. snap stays the caller's. */
	enum status (*snapshot_release)(struct platform *p, const struct platform_snapshot *snap,
	                                struct err *e);
	/* Open a disk: snap != NULL opens the snapshot's image read-only; snap == NULL opens the
	 * live disk of vm_id (writable: writes honour snapshot locks and update the -ctk).
	 * *h is new (close with disk_close). */
	enum status (*disk_open)(struct platform *p, const char *vm_id,
	                         const struct platform_snapshot *snap, const char *disk,
	                         bool writable, struct platform_disk_handle **h, struct err *e);
	/* Read exactly len bytes at off; off+len past the end is STATUS_INVALID. */
	enum status (*disk_read)(struct platform_disk_handle *h, void *buf, size_t len,
	                         uint64_t off, struct err *e);
	/* Write len bytes at off of a live disk opened writable. */
	enum status (*disk_write)(struct platform_disk_handle *h, const void *buf, size_t len,
	                          uint64_t off, struct err *e);
	/* Close h. NULL is fine. */
	void (*disk_close)(struct platform_disk_handle *h);
	/* Extents of disk changed since since_change_id (a change id an earlier snapshot of
	 * this disk returned), up to at least the snapshot snap. "*" means the whole disk.
	 * CONFLICT when the id belongs to another -ctk generation or a newer epoch (caller
	 * then reads everything). Appends to out (sorted, merged, clipped to the disk size). */
	enum status (*changed_extents)(struct platform *p, const struct platform_snapshot *snap,
	                               const char *disk, const char *since_change_id,
	                               struct extent_list *out, struct err *e);
	/* Free the connector. NULL is fine. */
	void (*close)(struct platform *p);
};

struct platform {
	const struct platform_ops *ops;
};

/* ---- the datastore connector ------------------------------------------------------------ */

enum datastore_snap_mode {
	DATASTORE_SNAP_AUTO = 0, /* reflink when the file system supports it, else lock */
	DATASTORE_SNAP_REFLINK,  /* reflink or fail */
	DATASTORE_SNAP_LOCK,     /* always the lock path */
};

#define DATASTORE_CTK_BLOCK 65536u            /* change-tracking granularity */
#define DATASTORE_WRITE_WAIT_MS_DEFAULT 60000 /* how long a write waits for a snapshot */

struct datastore_opts {
	enum datastore_snap_mode snap_mode;
	unsigned write_wait_ms; /* 0 = fail at once when a snapshot holds the disk */
};

/** @brief Defaults: AUTO, DATASTORE_WRITE_WAIT_MS_DEFAULT; then the environment may
 *  override: CAIRN_DATASTORE_SNAPSHOT=auto|reflink|lock, CAIRN_DATASTORE_WRITE_WAIT_MS=N.
 *  @returns STATUS_INVALID on a bad environment value. */
MUST_CHECK enum status datastore_opts_from_env(struct datastore_opts *o, struct err *e);

/** @brief Parse "auto|reflink|lock". @returns STATUS_INVALID if unknown. */
MUST_CHECK enum status datastore_snap_mode_parse(const char *s, enum datastore_snap_mode *m,
                                                 struct err *e);

/** @brief Open the datastore rooted at root (must be a directory) as a connector.
 *  opts NULL = datastore_opts_from_env(). @returns new connector (close with
 *  p->ops->close), or NULL with e filled. Thread-safety: the connector has no mutable state;
 *  calls from several threads are fine (the files are locked with flock). */
struct platform *datastore_open(const char *root, const struct datastore_opts *opts, struct err *e);

/** @brief List every VM under root (<root>/<org>/<vdc>/<vapp>/<vm>/vm.json). Directories
 *  without vm.json are skipped; a vm.json that does not parse is STATUS_CORRUPT.
 *  Fills *inv (caller cleans up). */
MUST_CHECK enum status datastore_inventory(const char *root, struct platform_inventory *inv,
                                           struct err *e);

/** @brief Load one VM from its directory (vm.json plus the ids of the parent levels).
 *  *vm is new (caller frees). NOT_FOUND without vm.json, CORRUPT when it does not parse. */
MUST_CHECK enum status datastore_vm_load(const char *vm_dir, struct platform_vm **vm,
                                         struct err *e);

/** @brief Find a VM by id under root. *vm is new. NOT_FOUND when absent. */
MUST_CHECK enum status datastore_vm_find(const char *root, const char *vm_id,
                                         struct platform_vm **vm, struct err *e);

/* One disk of a VM to create. */
struct datastore_disk_spec {
	const char *name;
	uint64_t size;           /* bytes; ignored for import_from */
	const char *from_dir;    /* ext4 made with mke2fs -d from_dir; NULL: empty ext4 */
	bool raw;                /* zero-filled raw disk (no file system); from_dir must be NULL */
	const char *import_from; /* copy this existing image instead */
};

struct datastore_vm_spec {
	const char *root, *org, *vdc, *vapp, *name;
	const char *guest_os;         /* NULL: "other_linux_64" */
	const char *application_json; /* NULL or a JSON object copied into vm.json */
	const struct datastore_disk_spec *disks;
	size_t n_disks;
};

/** @brief Create <root>/<org>/<vdc>/<vapp>/<name>/ with its disks (mke2fs -t ext4 [-d dir],
 *  no mount, no root; E2FSPROGS_FAKE_TIME is passed through), a fresh -ctk per disk and
 *  vm.json; creates org.json/vdc.json/vapp.json (ids) when missing. CONFLICT when the VM
 *  directory exists. On failure the VM directory is removed. *vm is new (caller frees);
 *  vm may be NULL. Not thread-safe against a concurrent create of the same VM. */
MUST_CHECK enum status datastore_vm_create(const struct datastore_vm_spec *spec,
                                           struct platform_vm **vm, struct err *e);

/** @brief Write len bytes at off into a live disk as a running guest would: pwrite, then
 *  mark the touched DATASTORE_CTK_BLOCK blocks in <disk>.ctk, under an flock of the -ctk.
 *  While a lock-mode snapshot holds the disk (<disk>.snaplock) the write waits up to
 *  wait_ms, then fails with STATUS_TIMEOUT naming the snapshot. INVALID past the end.
 *  Thread-safe (file locks). */
MUST_CHECK enum status datastore_disk_write(const struct platform_vm *vm, const char *disk,
                                            uint64_t off, const void *buf, size_t len,
                                            unsigned wait_ms, struct err *e);

/** @brief Deterministic pseudo-random bytes: byte i of the stream for seed is a function of
 *  (seed, i) only, so any range [stream_off, stream_off+len) can be generated alone (tests
 *  recompute what the write tool wrote). Not cryptographic. */
void datastore_random_fill(uint64_t seed, uint64_t stream_off, void *buf, size_t len);

/** @brief Write len bytes of datastore_random_fill(seed, 0, ...) at off, in 1 MiB guest
 *  writes through datastore_disk_write(). Errors as datastore_disk_write(). */
MUST_CHECK enum status datastore_disk_write_random(const struct platform_vm *vm, const char *disk,
                                                   uint64_t off, uint64_t len, uint64_t seed,
                                                   unsigned wait_ms, struct err *e);

/** @brief Write the contents of the file at path at off, in 1 MiB guest writes through
 *  datastore_disk_write(). NOT_FOUND when path cannot be opened. */
MUST_CHECK enum status datastore_disk_write_file(const struct platform_vm *vm, const char *disk,
                                                 uint64_t off, const char *path, unsigned wait_ms,
                                                 struct err *e);

/** @brief Parse a size with an optional binary suffix (K, M, G, T; "1G" = 2^30).
 *  @returns STATUS_INVALID on garbage or overflow. */
MUST_CHECK enum status datastore_size_parse(const char *s, uint64_t *out, struct err *e);

/** @brief Parse a --disk argument NAME=SIZE | NAME=SIZE:DIR | NAME=SIZE:raw | NAME=@IMAGE
 *  into *d; the strings of *d point into the new string *storage (caller frees it after d
 *  is no longer used). @returns STATUS_INVALID on a bad argument. */
MUST_CHECK enum status datastore_disk_spec_parse(const char *arg, struct datastore_disk_spec *d,
                                                 char **storage, struct err *e);

/** @brief Snapshot every disk of vm at one point in time: all -ctk locks are taken, then
 *  each disk is reflink-cloned (ioctl FICLONE) or held by a <disk>.snaplock record, the
 *  change epoch of each -ctk is bumped, and the locks are dropped. The description is
 *  stored as <vm>/.snapshots/<id>.json so another process can release it. CONFLICT when a
 *  lock-mode snapshot already holds a disk; UNAVAILABLE when REFLINK is forced but
 *  unsupported. *snap is new (caller frees). */
MUST_CHECK enum status datastore_snapshot_create(const struct platform_vm *vm,
                                                 enum datastore_snap_mode mode,
                                                 struct platform_snapshot **snap, struct err *e);

/** @brief Load a snapshot's description from <vm_dir>/.snapshots/<snap_id>.json.
 *  *snap is new. NOT_FOUND when absent. */
MUST_CHECK enum status datastore_snapshot_load(const char *vm_dir, const char *snap_id,
                                               struct platform_snapshot **snap, struct err *e);

/** @brief Release a snapshot: remove clones or the locks it holds, then its description.
 *  Idempotent (releasing twice is OK). */
MUST_CHECK enum status datastore_snapshot_release(const struct platform_snapshot *snap,
                                                  struct err *e);

/** @brief Changed extents of a live disk since since_change_id ("<uuid>/<epoch>" from a
 *  snapshot, or "*" for the whole disk): every DATASTORE_CTK_BLOCK block written with an
 *  epoch greater than the id's (writes after a reflink snapshot are included too, a safe
 *  superset). Appends to out, sorted and merged, the last block clipped to the disk size.
 *  CONFLICT when the id names another -ctk (uuid) or an epoch the -ctk never reached;
 *  INVALID when it does not parse; NOT_FOUND without a -ctk. */
MUST_CHECK enum status datastore_changed_extents(const struct platform_vm *vm, const char *disk,
                                                 const char *since_change_id,
                                                 struct extent_list *out, struct err *e);

#endif
