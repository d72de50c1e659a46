#include "app.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/backup.h"
#include "engine/datastore.h"

#include "worker.h"

const struct cfg_key mover_cfg_keys[] = {
	CFG_STR("datastore_root", struct mover_cfg, datastore_root, "var/datastore", false,
	        "root of the local datastore (one folder per org/vDC/vApp/VM)"),
	CFG_STR("master_key_file", struct mover_cfg, master_key_file, NULL, true,
	        "file holding the provider master key (32 bytes or 64 hex digits)"),
	CFG_INT_SVC("workers", struct mover_cfg, workers, "2", 1, 64,
	            "backup tasks run at once by this mover"),
	CFG_INT_SVC("per_tenant", struct mover_cfg, per_tenant, "1", 1, 64,
	            "backup tasks of one tenant running at once across all movers"),
	CFG_INT_SVC("lease_seconds", struct mover_cfg, lease_seconds, "15", 2, 3600,
	            "a running task's lease; a task whose mover died is resumed after it"),
	CFG_STR("snapshot_mode", struct mover_cfg, snapshot_mode, "auto", false,
	        "datastore snapshots: auto, reflink or lock"),
	CFG_INT_SVC("engine_threads", struct mover_cfg, engine_threads, "0", 0, 64,
	            "hash/compress/encrypt threads per task (0 = CPUs + 1)"),
	CFG_INT_SVC("chunk_size", struct mover_cfg, chunk_size, "0", 0, 8388608,
	            "disk chunk size in bytes, a multiple of 4096 (0 = engine default)"),
	CFG_KEY_("direct_io", CFG_T_BOOL, struct mover_cfg, direct_io, "true", 0, 1,
	         "write chunk files with O_DIRECT where the repository's file system allows it",
	         false, true),
};
const size_t mover_cfg_nkeys = sizeof(mover_cfg_keys) / sizeof(mover_cfg_keys[0]);

void mover_wake(struct mover_app *a)
{
	pthread_mutex_lock(&a->lock);
	pthread_cond_broadcast(&a->wake);
	pthread_mutex_unlock(&a->lock);
}

enum status mover_setup(struct svc *s, void *app, struct err *e)
{
	struct mover_app *a = app;
	struct metrics *m = svc_get_metrics(s);
	enum datastore_snap_mode mode;
	char host[64] = "host";
	struct err ke;
	enum status st;

	a->svc = s;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	atomic_init(&a->stop, false);
	if (datastore_snap_mode_parse(a->cfg.snapshot_mode, &mode, NULL) != STATUS_OK)
		return err_set(
		        e, STATUS_INVALID,
		        "CAIRN_MOVER_SNAPSHOT_MODE: invalid value '%s': expected auto, reflink "
		        "or lock",
		        a->cfg.snapshot_mode);
	if (a->cfg.chunk_size % 4096 != 0)
		return err_set(e, STATUS_INVALID,
		               "CAIRN_MOVER_CHUNK_SIZE: %lld is not a multiple of 4096",
		               a->cfg.chunk_size);
	st = engine_master_key_load(&a->mk, a->cfg.master_key_file, &ke);
	if (st != STATUS_OK)
		return err_set(e, st, "CAIRN_MASTER_KEY_FILE (%s): %s", a->cfg.master_key_file,
		               ke.msg);
	gethostname(host, sizeof(host) - 1);
	{
		char id[EVENT_ID_LEN];

		if (event_uuid_v4(id, e) != STATUS_OK)
			return e->code;
		snprintf(a->owner, sizeof(a->owner), "%s/%ld/%.8s", host, (long)getpid(), id);
	}
	a->m_running = metrics_gauge_new(m, "cairn_mover_tasks_running",
	                                 "backup tasks running in this mover", NULL, e);
	a->m_tasks = metrics_counter_new(m, "cairn_mover_tasks_total",
	                                 "backup tasks finished, by status", "status", e);
	a->m_bytes = metrics_counter_new(m, "cairn_mover_bytes_stored_total",
	                                 "bytes written to repositories (sealed)", NULL, e);
	a->m_files = metrics_counter_new(m, "cairn_mover_files_indexed_total",
	                                 "guest files indexed", NULL, e);
	if (!a->m_running || !a->m_tasks || !a->m_bytes || !a->m_files)
		return e->code;
	log_info("mover %s: %lld workers, %lld per tenant, lease %lld s, datastore %s", a->owner,
	         a->cfg.workers, a->cfg.per_tenant, a->cfg.lease_seconds, a->cfg.datastore_root);
	return mover_workers_start(a, e);
}

void mover_teardown(struct svc *s, void *app)
{
	struct mover_app *a = app;

	mover_workers_stop(a);
	engine_key_wipe(&a->mk, sizeof(a->mk));
}
