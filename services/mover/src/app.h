/* app.h - the mover's context, settings and entry points for the runtime (svc.h). */
#ifndef MOVER_APP_H
#define MOVER_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "common/svc.h"
#include "engine/keys.h"

/* The mover's own settings (CAIRN_MOVER_<KEY>, see services/mover/README.md). */
struct mover_cfg {
	char *datastore_root;
	char *master_key_file;
	long long workers;
	long long per_tenant;
	long long lease_seconds;
	char *snapshot_mode;
	long long engine_threads;
	long long chunk_size;
	bool direct_io;
};

extern const struct cfg_key mover_cfg_keys[];
extern const size_t mover_cfg_nkeys;

struct mover_worker;

/* Built in main.c, filled by mover_setup(), torn down by mover_teardown(). */
struct mover_app {
	struct svc *svc; /* borrowed runtime */
	struct mover_cfg cfg;
	struct engine_master_key mk;
	char owner[128]; /* this process in catalog.tasks.owner: host/pid/random */
	struct mover_worker *workers;
	size_t n_workers;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* signalled when a task is enqueued */
	atomic_bool stop;
	struct metrics_gauge *m_running;
	struct metrics_counter *m_tasks;
	struct metrics_counter *m_bytes;
	struct metrics_counter *m_files;
};

/** @brief svc_def.setup: load the master key, start the workers. app is a mover_app. */
enum status mover_setup(struct svc *s, void *app, struct err *e);
/** @brief svc_def.teardown: stop the workers (running tasks are cancelled and left for a
 *  retry by this or another mover after their lease expires). */
void mover_teardown(struct svc *s, void *app);
/** @brief svc_def.handler: backup.task.requested, backup.task.stop.requested. */
enum status mover_handle_event(struct db_conn *dbc, const struct event *ev, void *user,
                               struct err *e);
/** @brief Wake idle workers (after a task was enqueued). Thread-safe. */
void mover_wake(struct mover_app *a);

#endif
