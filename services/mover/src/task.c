#include "task.h"

#include <stdio.h>
#include <string.h>

#include "common/jsonh.h"
#include "engine/backup.h"

static enum status copy_id(const json_t *data, const char *key, unsigned flags, bool uuid,
                           char out[MOVER_ID_MAX], struct err *e)
{
	const char *s = NULL;
	enum status st;

	if (uuid)
		st = jsonh_get_uuid(data, key, flags, &s, e);
	else
		st = jsonh_get_str(data, key, flags | JSONH_NONEMPTY, MOVER_ID_MAX - 1, &s, e);
	if (st != STATUS_OK)
		return st;
	snprintf(out, MOVER_ID_MAX, "%s", s ? s : "");
	return STATUS_OK;
}

enum status mover_task_parse(const json_t *data, struct mover_task *t, struct err *e)
{
	const char *mode = NULL;
	json_t *opts = NULL;
	int64_t level =
	        ENGINE_ZSTD_LEVEL_DEFAULT; /* tasks may ask for 1..22 (the schema's range) */
	bool index = false;
	enum status st;

	memset(t, 0, sizeof(*t));
	if (!json_is_object(data))
		return err_set(e, STATUS_INVALID, "task: data is not a JSON object");
	st = copy_id(data, "task_id", JSONH_REQUIRED, true, t->task_id, e);
	if (st == STATUS_OK)
		st = copy_id(data, "session_id", JSONH_REQUIRED, true, t->session_id, e);
	if (st == STATUS_OK)
		st = copy_id(data, "job_id", JSONH_OPTIONAL, true, t->job_id, e);
	if (st == STATUS_OK)
		st = copy_id(data, "tenant_id", JSONH_REQUIRED, false, t->tenant_id, e);
	if (st == STATUS_OK)
		st = copy_id(data, "vm_id", JSONH_REQUIRED, false, t->vm_id, e);
	if (st == STATUS_OK)
		st = copy_id(data, "repository_id", JSONH_REQUIRED, true, t->repository_id, e);
	if (st == STATUS_OK)
		st = jsonh_get_str(data, "mode", JSONH_REQUIRED, 16, &mode, e);
	if (st != STATUS_OK)
		return st;
	if (strcmp(mode, "full") == 0)
		t->full = true;
	else if (strcmp(mode, "incremental") != 0)
		return err_set(e, STATUS_INVALID, "mode: must be \"incremental\" or \"full\"");
	st = jsonh_get_obj(data, "options", JSONH_REQUIRED, &opts, e);
	if (st == STATUS_OK)
		st = jsonh_get_bool(opts, "index_files", JSONH_OPTIONAL, &index, e);
	if (st == STATUS_OK)
		st = jsonh_get_int(opts, "zstd_level", JSONH_OPTIONAL, 1, 22, &level, e);
	if (st != STATUS_OK)
		return st;
	t->index_files = index;
	t->zstd_level = (int)level;
	return STATUS_OK;
}

json_t *mover_task_options_json(const struct mover_task *t)
{
	return json_pack("{s:b, s:i}", "index_files", t->index_files, "zstd_level", t->zstd_level);
}

json_t *mover_figures_json(const struct mover_figures *f)
{
	json_t *o =
	        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "bytes_total",
	                  (json_int_t)f->bytes_total, "bytes_read", (json_int_t)f->bytes_read,
	                  "bytes_stored", (json_int_t)f->bytes_stored, "chunks_new",
	                  (json_int_t)f->chunks_new, "chunks_reused", (json_int_t)f->chunks_reused,
	                  "files_indexed", (json_int_t)f->files_indexed, "index_ms",
	                  (json_int_t)f->index_ms, "duration_ms", (json_int_t)f->duration_ms);

	if (o != NULL && f->files_indexed > 0)
		json_object_set_new(o, "files_per_second",
		                    json_integer((json_int_t)f->files_per_second));
	return o;
}

json_t *mover_finished_json(const struct mover_task *t, const char *status,
                            const struct mover_figures *f, const char *rp_id,
                            const char *error_code, const char *error_message, const char *warning,
                            const char *finished_at)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s?, s:s}", "task_id", t->task_id,
	                      "session_id", t->session_id, "tenant_id", t->tenant_id, "vm_id",
	                      t->vm_id, "status", status, "figures", mover_figures_json(f),
	                      "restore_point_id", rp_id, "finished_at", finished_at);

	if (o == NULL)
		return NULL;
	if (rp_id == NULL)
		json_object_set_new(o, "restore_point_id", json_null());
	if (t->job_id[0])
		json_object_set_new(o, "job_id", json_string(t->job_id));
	if (error_code)
		json_object_set_new(o, "error",
		                    json_pack("{s:s, s:s}", "code", error_code, "message",
		                              error_message ? error_message : error_code));
	if (warning)
		json_object_set_new(o, "warnings", json_pack("[s]", warning));
	return o;
}

json_t *mover_progress_json(const struct mover_task *t, const char *phase, uint64_t bytes_read,
                            uint64_t bytes_stored, uint64_t bytes_total, double percent,
                            double speed_bps, uint64_t files_indexed)
{
	if (percent < 0)
		percent = 0;
	if (percent > 100)
		percent = 100;
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:I}", "task_id",
	                 t->task_id, "session_id", t->session_id, "tenant_id", t->tenant_id,
	                 "vm_id", t->vm_id, "phase", phase, "bytes_read", (json_int_t)bytes_read,
	                 "bytes_stored", (json_int_t)bytes_stored, "bytes_total",
	                 (json_int_t)bytes_total, "percent", percent, "speed_bps",
	                 speed_bps < 0 ? 0.0 : speed_bps, "files_indexed",
	                 (json_int_t)files_indexed);
}

bool mover_state_is_terminal(const char *state)
{
	static const char *const done[] = { "success", "warning", "failed", "stopped" };

	for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++) {
		if (strcmp(state, done[i]) == 0)
			return true;
	}
	return false;
}
