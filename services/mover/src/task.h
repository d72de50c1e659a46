/* task.h - a backup task as the mover understands it: decoding and validating the
 * backup.task.requested event, and the JSON of the events the mover publishes.
 * Pure logic: no I/O, no globals. */
#ifndef MOVER_TASK_H
#define MOVER_TASK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define MOVER_ID_MAX 65 /* uuids and tenant ids (engine: 1..64 of [A-Za-z0-9_.-]) */

struct mover_task {
	char task_id[MOVER_ID_MAX];
	char session_id[MOVER_ID_MAX];
	char job_id[MOVER_ID_MAX]; /* "" when absent */
	char tenant_id[MOVER_ID_MAX];
	char vm_id[MOVER_ID_MAX];
	char repository_id[MOVER_ID_MAX];
	bool full; /* mode "full": ignore the previous restore point */
	bool index_files;
	int zstd_level;
};

/** @brief Decode and validate the data of a backup.task.requested event (or the same
 *  object as stored in catalog.tasks). data is borrowed.
 *  @returns STATUS_OK, or STATUS_INVALID with a message naming the field. */
MUST_CHECK enum status mover_task_parse(const json_t *data, struct mover_task *t, struct err *e);

/** @brief The options object stored with a task ({"index_files":..,"zstd_level":..}).
 *  @returns a new reference. */
json_t *mover_task_options_json(const struct mover_task *t);

/* Figures of a finished task. */
struct mover_figures {
	uint64_t bytes_total, bytes_read, bytes_stored;
	uint64_t chunks_total, chunks_new, chunks_reused;
	uint64_t files_indexed;
	uint64_t index_ms;         /* time spent listing guest files (0 when not indexed) */
	uint64_t files_per_second; /* files_indexed over that time (set with it) */
	uint64_t duration_ms;
};

/** @brief The figures object of backup.task.finished and of catalog.backup_tasks: byte and
 *  chunk counts, files indexed, index_ms and (when files were indexed) files_per_second.
 *  @returns a new reference. */
json_t *mover_figures_json(const struct mover_figures *f);

/** @brief The data of backup.task.finished. status is success|warning|failed|stopped;
 *  rp_id may be NULL; error_code/error_message may be NULL (success); warning may be NULL.
 *  @returns a new reference. */
json_t *mover_finished_json(const struct mover_task *t, const char *status,
                            const struct mover_figures *f, const char *rp_id,
                            const char *error_code, const char *error_message, const char *warning,
                            const char *finished_at);

/** @brief The data of backup.task.progress. phase is "backup" (bytes moving) or "index"
 *  (listing guest files after the backup: the byte figures are final, files_indexed grows).
 *  @returns a new reference. */
json_t *mover_progress_json(const struct mover_task *t, const char *phase, uint64_t bytes_read,
                            uint64_t bytes_stored, uint64_t bytes_total, double percent,
                            double speed_bps, uint64_t files_indexed);

/** @brief Whether a task's state name is final. */
bool mover_state_is_terminal(const char *state);

#endif
