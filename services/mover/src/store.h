/* store.h - every SQL statement of the mover (schema catalog). Each function takes the
 * calling thread's own connection (libpq connections are never shared). Functions marked
 * "in the caller's transaction" expect an open transaction; the others run on their own. */
#ifndef MOVER_STORE_H
#define MOVER_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/db.h"
#include "common/err.h"
#include "common/event.h"

#include "task.h"

/** @brief Limit the connection's session to tenant's rows (app.tenant_id, row-level
 *  security) until changed; "" shows no tenant rows. */
MUST_CHECK enum status mover_store_scope_tenant(struct db_conn *dbc, const char *tenant,
                                                struct err *e);

/** @brief Record a requested task (state queued), in the caller's transaction. A task id
 *  already known is left as it is (the same task delivered twice is one task).
 *  @param inserted receives whether a row was added; may be NULL. */
MUST_CHECK enum status mover_store_task_enqueue(struct db_conn *dbc, const struct mover_task *t,
                                                bool *inserted, struct err *e);

/** @brief Mark a queued or running task of tenant as stop-requested, in the caller's
 *  transaction. Unknown or finished tasks are ignored (@returns STATUS_OK). */
MUST_CHECK enum status mover_store_task_request_stop(struct db_conn *dbc, const char *task_id,
                                                     const char *tenant_id, struct err *e);

/* A task a worker claimed. */
struct mover_claim {
	struct mover_task task;
	bool stop_requested;
	int attempts;            /* including this one */
	char snapshot_id[80];    /* from an earlier attempt that died, else "" */
	char snapshot_loc[4096]; /* its connector locator (datastore: VM directory) */
};

/** @brief Claim the oldest task that is queued, or running with an expired lease (its mover
 *  died), whose tenant has fewer than per_tenant running tasks; mark it running for owner
 *  with a lease of lease_s seconds. Claims are serialised by an advisory lock so the
 *  per-tenant cap holds across workers and movers.
 *  @returns STATUS_OK, STATUS_NOT_FOUND when nothing is claimable, or a database error. */
MUST_CHECK enum status mover_store_task_claim(struct db_conn *dbc, const char *owner, int lease_s,
                                              int per_tenant, struct mover_claim *c, struct err *e);

/** @brief Renew the lease of a running task owned by owner and read its stop flag.
 *  @returns STATUS_OK; STATUS_NOT_FOUND when the task is no longer ours (lease lost). */
MUST_CHECK enum status mover_store_task_heartbeat(struct db_conn *dbc, const char *task_id,
                                                  const char *owner, int lease_s, bool *stop,
                                                  struct err *e);

/** @brief Remember the snapshot a running task holds (so a retry can release it). */
MUST_CHECK enum status mover_store_task_set_snapshot(struct db_conn *dbc, const char *task_id,
                                                     const char *snap_id, const char *locator,
                                                     struct err *e);

/** @brief The path of a local repository. *path is new (caller frees).
 *  @returns STATUS_NOT_FOUND for an unknown repository. */
MUST_CHECK enum status mover_store_repository_path(struct db_conn *dbc, const char *repo_id,
                                                   char **path, struct err *e);

/* The previous restore point of a VM, for an incremental run. */
struct mover_parent {
	char rp_id[MOVER_ID_MAX * 2];
	size_t n_disks;
	struct {
		char name[256];
		char change_id[128];
		uint64_t size;
	} disks[16];
};

/** @brief The newest restore point of tenant's VM in repository. @returns STATUS_OK,
 *  STATUS_NOT_FOUND when none. */
MUST_CHECK enum status mover_store_parent(struct db_conn *dbc, const char *tenant_id,
                                          const char *vm_id, const char *repo_id,
                                          struct mover_parent *p, struct err *e);

/* Everything the final transaction of a successful task writes. */
struct mover_rp_row {
	const char *rp_id;
	const char *parent_id; /* may be NULL */
	const char *vm_name;
	bool full;
	const struct mover_figures *fig;
	size_t n_disks;
	const char *const *disk_names;
	const uint64_t *disk_sizes;
	const char *const *change_ids; /* entries may be NULL */
	FILE *file_index;              /* COPY text rows (tenant filled in), or NULL */
	bool indexed;
};

/** @brief Make the restore point visible, in the caller's transaction: insert it and its
 *  disks, COPY the file index, and mark the task finished with status (success|warning).
 *  @returns STATUS_OK, STATUS_NOT_FOUND when owner no longer holds the running task (its
 *  lease expired and another mover took it: roll back), or a database error. */
MUST_CHECK enum status mover_store_rp_commit(struct db_conn *dbc, const struct mover_task *t,
                                             const char *owner, const struct mover_rp_row *rp,
                                             const char *status, struct err *e);

/** @brief Mark a task that owner runs finished without a restore point (failed|stopped), in
 *  the caller's transaction. @returns STATUS_NOT_FOUND when owner no longer holds it. */
MUST_CHECK enum status mover_store_task_finish(struct db_conn *dbc, const struct mover_task *t,
                                               const char *owner, const char *status,
                                               const char *error_code, const char *error_message,
                                               const struct mover_figures *fig, struct err *e);

/** @brief The wrapped key blob of tenant. *blob is new (free()).
 *  @returns STATUS_NOT_FOUND when the tenant has none yet. */
MUST_CHECK enum status mover_store_key_load(struct db_conn *dbc, const char *tenant, uint8_t **blob,
                                            size_t *len, struct err *e);

/** @brief Store tenant's wrapped key blob. @returns STATUS_CONFLICT if one exists. */
MUST_CHECK enum status mover_store_key_store(struct db_conn *dbc, const char *tenant,
                                             const uint8_t *blob, size_t len, struct err *e);

#endif
