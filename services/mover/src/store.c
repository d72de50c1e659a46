#include "store.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/xalloc.h"
#include "engine/hex.h"

enum status mover_store_scope_tenant(struct db_conn *dbc, const char *tenant, struct err *e)
{
	const char *p[] = { tenant };

	return db_exec(dbc, "SELECT set_config('app.tenant_id', $1, false)", 1, p, e);
}

enum status mover_store_task_enqueue(struct db_conn *dbc, const struct mover_task *t,
                                     bool *inserted, struct err *e)
{
	static const char sql[] =
	        "INSERT INTO catalog.tasks (task_id, session_id, job_id, tenant_id, vm_id, "
	        "repository_id, mode, options) VALUES ($1, $2, nullif($3, '')::uuid, $4, $5, $6, "
	        "$7, $8::jsonb) ON CONFLICT (task_id) DO NOTHING RETURNING 1";
	json_t *opts = mover_task_options_json(t);
	char *opts_s = json_dumps(opts, JSON_COMPACT);
	const char *p[] = { t->task_id,
		            t->session_id,
		            t->job_id,
		            t->tenant_id,
		            t->vm_id,
		            t->repository_id,
		            t->full ? "full" : "incremental",
		            opts_s };
	PGresult *res = NULL;
	enum status st;

	st = db_query(dbc, sql, 8, p, &res, e);
	if (st == STATUS_OK && inserted)
		*inserted = PQntuples(res) == 1;
	PQclear(res);
	free(opts_s);
	json_decref(opts);
	return st;
}

enum status mover_store_task_request_stop(struct db_conn *dbc, const char *task_id,
                                          const char *tenant_id, struct err *e)
{
	static const char sql[] = "UPDATE catalog.tasks SET stop_requested = true "
	                          "WHERE task_id = $1 AND tenant_id = $2 "
	                          "AND state IN ('queued', 'running')";
	const char *p[] = { task_id, tenant_id };

	return db_exec(dbc, sql, 2, p, e);
}

static void copy_field(char *dst, size_t cap, PGresult *res, int col)
{
	snprintf(dst, cap, "%s", PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col));
}

enum status mover_store_task_claim(struct db_conn *dbc, const char *owner, int lease_s,
                                   int per_tenant, struct mover_claim *c, struct err *e)
{
	static const char sql[] =
	        "WITH pick AS ("
	        " SELECT task_id FROM catalog.tasks k"
	        " WHERE (k.state = 'queued' OR (k.state = 'running' AND k.lease_until < now()))"
	        " AND (SELECT count(*) FROM catalog.tasks r WHERE r.tenant_id = k.tenant_id"
	        "      AND r.state = 'running' AND r.lease_until >= now()) < $3::int"
	        " ORDER BY received_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
	        " UPDATE catalog.tasks t SET state = 'running', owner = $1,"
	        " lease_until = now() + make_interval(secs => $2::int), attempts = attempts + 1,"
	        " started_at = coalesce(started_at, now())"
	        " FROM pick WHERE t.task_id = pick.task_id"
	        " RETURNING t.task_id, t.session_id, coalesce(t.job_id::text, ''), t.tenant_id,"
	        " t.vm_id, t.repository_id, t.mode, t.options::text, t.stop_requested,"
	        " t.attempts, coalesce(t.snapshot_id, ''), coalesce(t.snapshot_locator, '')";
	char lease[16], cap[16];
	const char *p[] = { owner, lease, cap };
	PGresult *res = NULL;
	json_t *opts;
	enum status st;

	snprintf(lease, sizeof(lease), "%d", lease_s);
	snprintf(cap, sizeof(cap), "%d", per_tenant);
	memset(c, 0, sizeof(*c));
	st = db_tx_begin(dbc, e);
	if (st != STATUS_OK)
		return st;
	/* The claim looks across tenants: the only statement that may (app.system). */
	st = db_exec(dbc,
	             "SELECT pg_advisory_xact_lock(hashtext('cairn.mover.claim')), "
	             "set_config('app.system', 'on', true)",
	             0, NULL, e);
	if (st == STATUS_OK)
		st = db_query(dbc, sql, 3, p, &res, e);
	if (st != STATUS_OK)
		goto out_rollback;
	if (PQntuples(res) == 0) {
		st = STATUS_NOT_FOUND;
		goto out_rollback;
	}
	copy_field(c->task.task_id, sizeof(c->task.task_id), res, 0);
	copy_field(c->task.session_id, sizeof(c->task.session_id), res, 1);
	copy_field(c->task.job_id, sizeof(c->task.job_id), res, 2);
	copy_field(c->task.tenant_id, sizeof(c->task.tenant_id), res, 3);
	copy_field(c->task.vm_id, sizeof(c->task.vm_id), res, 4);
	copy_field(c->task.repository_id, sizeof(c->task.repository_id), res, 5);
	c->task.full = strcmp(PQgetvalue(res, 0, 6), "full") == 0;
	opts = json_loads(PQgetvalue(res, 0, 7), 0, NULL);
	c->task.index_files = json_is_true(json_object_get(opts, "index_files"));
	c->task.zstd_level = (int)json_integer_value(json_object_get(opts, "zstd_level"));
	json_decref(opts);
	c->stop_requested = strcmp(PQgetvalue(res, 0, 8), "t") == 0;
	c->attempts = (int)strtol(PQgetvalue(res, 0, 9), NULL, 10);
	copy_field(c->snapshot_id, sizeof(c->snapshot_id), res, 10);
	copy_field(c->snapshot_loc, sizeof(c->snapshot_loc), res, 11);
	PQclear(res);
	return db_tx_commit(dbc, e);
out_rollback:
	PQclear(res);
	db_tx_rollback(dbc);
	return st;
}

enum status mover_store_task_heartbeat(struct db_conn *dbc, const char *task_id, const char *owner,
                                       int lease_s, bool *stop, struct err *e)
{
	static const char sql[] =
	        "UPDATE catalog.tasks SET lease_until = now() + make_interval(secs => $3::int)"
	        " WHERE task_id = $1 AND owner = $2 AND state = 'running' RETURNING stop_requested";
	char lease[16];
	const char *p[] = { task_id, owner, lease };
	PGresult *res = NULL;
	enum status st;

	snprintf(lease, sizeof(lease), "%d", lease_s);
	st = db_query(dbc, sql, 3, p, &res, e);
	if (st == STATUS_OK && PQntuples(res) == 0)
		st = err_set(e, STATUS_NOT_FOUND, "task %s is no longer owned by %s", task_id,
		             owner);
	else if (st == STATUS_OK)
		*stop = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return st;
}

enum status mover_store_task_set_snapshot(struct db_conn *dbc, const char *task_id,
                                          const char *snap_id, const char *locator, struct err *e)
{
	static const char sql[] = "UPDATE catalog.tasks SET snapshot_id = nullif($2, ''),"
	                          " snapshot_locator = nullif($3, '') WHERE task_id = $1";
	const char *p[] = { task_id, snap_id ? snap_id : "", locator ? locator : "" };

	return db_exec(dbc, sql, 3, p, e);
}

enum status mover_store_repository_path(struct db_conn *dbc, const char *repo_id, char **path,
                                        struct err *e)
{
	static const char sql[] = "SELECT path FROM catalog.repositories WHERE id = $1";
	const char *p[] = { repo_id };
	PGresult *res = NULL;
	enum status st = db_query(dbc, sql, 1, p, &res, e);

	if (st == STATUS_OK && PQntuples(res) == 0)
		st = err_set(e, STATUS_NOT_FOUND, "repository %s is not defined", repo_id);
	else if (st == STATUS_OK)
		*path = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return st;
}

enum status mover_store_parent(struct db_conn *dbc, const char *tenant_id, const char *vm_id,
                               const char *repo_id, struct mover_parent *pp, struct err *e)
{
	static const char sql[] =
	        "SELECT r.id, d.disk_name, coalesce(d.change_id, ''), d.size_bytes"
	        " FROM (SELECT id FROM catalog.restore_points WHERE tenant_id = $1 AND vm_id = $2"
	        "       AND repository_id = $3 ORDER BY created_at DESC, id DESC LIMIT 1) r"
	        " JOIN catalog.restore_point_disks d ON d.restore_point_id = r.id"
	        " ORDER BY d.disk_name";
	const char *p[] = { tenant_id, vm_id, repo_id };
	PGresult *res = NULL;
	enum status st = db_query(dbc, sql, 3, p, &res, e);
	int n;

	memset(pp, 0, sizeof(*pp));
	if (st != STATUS_OK)
		return st;
	n = PQntuples(res);
	if (n == 0) {
		PQclear(res);
		return STATUS_NOT_FOUND;
	}
	snprintf(pp->rp_id, sizeof(pp->rp_id), "%s", PQgetvalue(res, 0, 0));
	for (int i = 0; i < n && pp->n_disks < sizeof(pp->disks) / sizeof(pp->disks[0]); i++) {
		snprintf(pp->disks[pp->n_disks].name, sizeof(pp->disks[0].name), "%s",
		         PQgetvalue(res, i, 1));
		snprintf(pp->disks[pp->n_disks].change_id, sizeof(pp->disks[0].change_id), "%s",
		         PQgetvalue(res, i, 2));
		pp->disks[pp->n_disks].size = strtoull(PQgetvalue(res, i, 3), NULL, 10);
		pp->n_disks++;
	}
	PQclear(res);
	return STATUS_OK;
}

static enum status copy_file_index(struct db_conn *dbc, FILE *f, struct err *e)
{
	PGconn *pg = db_conn_get_pg(dbc);
	PGresult *res;
	char buf[65536];
	size_t n;
	enum status st = STATUS_OK;

	/* COPY cannot target a table under row-level security: stream into a temporary
	 * staging table, then move the rows with one INSERT .. SELECT that the policy checks. */
	st = db_exec(dbc,
	             "CREATE TEMP TABLE IF NOT EXISTS file_index_stage "
	             "(LIKE catalog.file_index) ON COMMIT DELETE ROWS",
	             0, NULL, e);
	if (st != STATUS_OK)
		return st;
	res = PQexec(pg, "COPY file_index_stage (restore_point_id, tenant_id, disk_name, "
	                 "partition, path, size, mtime, type, inode) FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		st = err_set(e, STATUS_DB, "COPY file_index: %s", PQerrorMessage(pg));
		PQclear(res);
		return st;
	}
	PQclear(res);
	rewind(f);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (PQputCopyData(pg, buf, (int)n) != 1) {
			st = err_set(e, STATUS_DB, "COPY file_index: %s", PQerrorMessage(pg));
			break;
		}
	}
	if (PQputCopyEnd(pg, st == STATUS_OK ? NULL : "aborted") != 1 && st == STATUS_OK)
		st = err_set(e, STATUS_DB, "COPY file_index: %s", PQerrorMessage(pg));
	while ((res = PQgetResult(pg)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && st == STATUS_OK) {
			/* primary message and SQLSTATE only: the full message's CONTEXT quotes the
			 * failing row, i.e. a guest path, and this text reaches logs and events */
			const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			st = err_set(e, STATUS_DB, "COPY file_index: %s (SQLSTATE %s)", m ? m : "?",
			             sqlstate ? sqlstate : "?");
		}
		PQclear(res);
	}
	if (st == STATUS_OK)
		st = db_exec(dbc, "INSERT INTO catalog.file_index SELECT * FROM file_index_stage",
		             0, NULL, e);
	return st;
}

enum status mover_store_rp_commit(struct db_conn *dbc, const struct mover_task *t,
                                  const char *owner, const struct mover_rp_row *rp,
                                  const char *status, struct err *e)
{
	static const char sql_rp[] =
	        "INSERT INTO catalog.restore_points (id, tenant_id, repository_id, vm_id, vm_name,"
	        " task_id, parent_id, mode, bytes_total, bytes_read, bytes_stored, chunks_total,"
	        " chunks_new, indexed, files_indexed) VALUES ($1, $2, $3, $4, $5, $6,"
	        " nullif($7, ''), $8, $9, $10, $11, $12, $13, $14, $15)";
	static const char sql_disk[] =
	        "INSERT INTO catalog.restore_point_disks (restore_point_id, disk_name, size_bytes,"
	        " change_id, tenant_id) VALUES ($1, $2, $3, $4, $5)";
	static const char sql_task[] =
	        "UPDATE catalog.tasks SET state = $2, restore_point_id = $3, finished_at = now(),"
	        " figures = $4::jsonb, lease_until = NULL, snapshot_id = NULL,"
	        " snapshot_locator = NULL WHERE task_id = $1 AND owner = $5 AND state = 'running'"
	        " RETURNING 1";
	char n[7][24];
	const struct mover_figures *f = rp->fig;
	enum status st;

	snprintf(n[0], sizeof(n[0]), "%llu", (unsigned long long)f->bytes_total);
	snprintf(n[1], sizeof(n[1]), "%llu", (unsigned long long)f->bytes_read);
	snprintf(n[2], sizeof(n[2]), "%llu", (unsigned long long)f->bytes_stored);
	snprintf(n[3], sizeof(n[3]), "%llu", (unsigned long long)f->chunks_total);
	snprintf(n[4], sizeof(n[4]), "%llu", (unsigned long long)f->chunks_new);
	snprintf(n[5], sizeof(n[5]), "%llu", (unsigned long long)f->files_indexed);
	{
		const char *p[] = { rp->rp_id,
			            t->tenant_id,
			            t->repository_id,
			            t->vm_id,
			            rp->vm_name,
			            t->task_id,
			            rp->parent_id ? rp->parent_id : "",
			            rp->full ? "full" : "incremental",
			            n[0],
			            n[1],
			            n[2],
			            n[3],
			            n[4],
			            rp->indexed ? "true" : "false",
			            n[5] };

		st = db_exec(dbc, sql_rp, 15, p, e);
	}
	for (size_t i = 0; st == STATUS_OK && i < rp->n_disks; i++) {
		const char *p[] = { rp->rp_id, rp->disk_names[i], n[6], rp->change_ids[i],
			            t->tenant_id };

		snprintf(n[6], sizeof(n[6]), "%llu", (unsigned long long)rp->disk_sizes[i]);
		st = db_exec(dbc, sql_disk, 5, p, e);
	}
	if (st == STATUS_OK && rp->file_index)
		st = copy_file_index(dbc, rp->file_index, e);
	if (st == STATUS_OK) {
		json_t *fj = mover_figures_json(f);
		char *fs = json_dumps(fj, JSON_COMPACT);
		const char *p[] = { t->task_id, status, rp->rp_id, fs, owner };
		PGresult *res = NULL;

		st = db_query(dbc, sql_task, 5, p, &res, e);
		if (st == STATUS_OK && PQntuples(res) == 0)
			st = err_set(e, STATUS_NOT_FOUND, "task %s is no longer owned by %s",
			             t->task_id, owner);
		PQclear(res);
		free(fs);
		json_decref(fj);
	}
	return st;
}

enum status mover_store_task_finish(struct db_conn *dbc, const struct mover_task *t,
                                    const char *owner, const char *status, const char *error_code,
                                    const char *error_message, const struct mover_figures *fig,
                                    struct err *e)
{
	static const char sql[] =
	        "UPDATE catalog.tasks SET state = $2, error_code = $3, error_message = $4,"
	        " finished_at = now(), lease_until = NULL, snapshot_id = NULL,"
	        " snapshot_locator = NULL, figures = jsonb_build_object('bytes_read', $5::bigint,"
	        " 'bytes_stored', $6::bigint, 'duration_ms', $7::bigint) WHERE task_id = $1"
	        " AND owner = $8 AND state = 'running' RETURNING 1";
	char n[3][24];
	const char *p[] = {
		t->task_id, status, error_code, error_message, n[0], n[1], n[2], owner
	};
	PGresult *res = NULL;
	enum status st;

	snprintf(n[0], sizeof(n[0]), "%llu", (unsigned long long)fig->bytes_read);
	snprintf(n[1], sizeof(n[1]), "%llu", (unsigned long long)fig->bytes_stored);
	snprintf(n[2], sizeof(n[2]), "%llu", (unsigned long long)fig->duration_ms);
	st = db_query(dbc, sql, 8, p, &res, e);
	if (st == STATUS_OK && PQntuples(res) == 0)
		st = err_set(e, STATUS_NOT_FOUND, "task %s is no longer owned by %s", t->task_id,
		             owner);
	PQclear(res);
	return st;
}

enum status mover_store_key_load(struct db_conn *dbc, const char *tenant, uint8_t **blob,
                                 size_t *len, struct err *e)
{
	static const char sql[] =
	        "SELECT encode(wrapped, 'hex') FROM catalog.tenant_keys WHERE tenant_id = $1";
	const char *p[] = { tenant };
	PGresult *res = NULL;
	enum status st = db_query(dbc, sql, 1, p, &res, e);
	const char *hex;
	size_t n;

	if (st != STATUS_OK)
		return st;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return err_set(e, STATUS_NOT_FOUND, "no keys for tenant");
	}
	hex = PQgetvalue(res, 0, 0);
	n = strlen(hex) / 2;
	*blob = xmalloc(n ? n : 1);
	if (!engine_hex_decode(hex, *blob, n)) {
		free(*blob);
		*blob = NULL;
		PQclear(res);
		return err_set(e, STATUS_CORRUPT, "tenant key blob is not hex");
	}
	*len = n;
	PQclear(res);
	return STATUS_OK;
}

enum status mover_store_key_store(struct db_conn *dbc, const char *tenant, const uint8_t *blob,
                                  size_t len, struct err *e)
{
	static const char sql[] = "INSERT INTO catalog.tenant_keys (tenant_id, wrapped)"
	                          " VALUES ($1, decode($2, 'hex'))";
	char *hex = xmalloc(len * 2 + 1);
	const char *p[] = { tenant, hex };
	enum status st;

	engine_hex_encode(blob, len, hex);
	st = db_exec(dbc, sql, 2, p, e);
	free(hex);
	return st;
}
