/* worker.c - the mover's worker threads: claim a task, snapshot the VM, back its disks up
 * into the tenant's repository, index its guest files, make the restore point visible and
 * publish the outcome. Each worker has its own PostgreSQL connection. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonh.h"
#include "common/log.h"
#include "common/outbox.h"
#include "common/xalloc.h"
#include "engine/backup.h"
#include "engine/datastore.h"
#include "engine/ext4index.h"
#include "engine/repo.h"

#include "store.h"

#define SOURCE "/cairn/mover"
#define TOPIC "cairn.backup"          /* task events, keyed by vm_id */
#define TOPIC_REPO "cairn.repository" /* chunk.stored, keyed by repository_id */

struct mover_worker {
	struct mover_app *app;
	pthread_t thread;
	bool started;
	unsigned index;
	struct db_conn *dbc;
};

/* Everything one run of a task needs; lives on the worker's stack. */
struct run {
	struct mover_worker *w;
	struct mover_claim *c;
	const struct mover_task *t;
	struct log_ctx ctx;
	atomic_bool cancel;
	bool stop_requested;
	bool lease_lost;
	struct timespec started;
	struct timespec last_beat;
	struct timespec last_progress; /* of the last index-phase progress event */
	uint64_t last_stored;
	uint64_t last_chunks;
	struct mover_figures fig;
};

static double now_s(const struct timespec *since)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - since->tv_sec) + (double)(t.tv_nsec - since->tv_nsec) / 1e9;
}

/* Produce an informational event directly (not through the outbox). Takes data. */
static void send_event(struct mover_app *a, const struct mover_task *t, const char *topic,
                       const char *key, const char *type, json_t *data)
{
	struct event ev;
	struct err e;

	event_init(&ev);
	if (event_make(&ev, type, SOURCE, t->task_id, t->tenant_id, data, &e) != STATUS_OK ||
	    kafka_producer_send(svc_get_producer(a->svc), topic, key, &ev, NULL, &e) != STATUS_OK)
		log_warn("task %s: %s not sent: %s", t->task_id, type, e.msg);
	event_cleanup(&ev);
}

/* Write an event through the outbox in the caller's open transaction. Takes data. */
static enum status outbox_event(struct run *r, const char *type, json_t *data, struct err *e)
{
	struct event ev;
	enum status st;

	event_init(&ev);
	st = event_make(&ev, type, SOURCE, r->t->task_id, r->t->tenant_id, data, e);
	if (st == STATUS_OK)
		st = outbox_add(r->w->dbc, "catalog", &ev, TOPIC, r->t->vm_id, e);
	event_cleanup(&ev);
	return st;
}

/* ---- tenant keys in PostgreSQL (the engine's keystore interface) ---- */

static enum status ks_load(void *ud, const char *tenant, uint8_t **blob, size_t *len, struct err *e)
{
	return mover_store_key_load(ud, tenant, blob, len, e);
}

static enum status ks_store(void *ud, const char *tenant, const uint8_t *blob, size_t len,
                            struct err *e)
{
	return mover_store_key_store(ud, tenant, blob, len, e);
}

static const struct engine_keystore_ops pg_keystore_ops = { ks_load, ks_store, NULL };

/* ---- progress, lease and stop ---- */

/* Renew the lease and read the stop flag; at most once a second. */
static void heartbeat(struct run *r, bool force)
{
	struct mover_app *a = r->w->app;
	struct err e;
	bool stop = false;

	if (!force && now_s(&r->last_beat) < 1.0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &r->last_beat);
	if (mover_store_task_heartbeat(r->w->dbc, r->t->task_id, a->owner,
	                               (int)a->cfg.lease_seconds, &stop, &e) == STATUS_NOT_FOUND) {
		log_ctx_warn(&r->ctx, "task %s: lease lost, abandoning this attempt",
		             r->t->task_id);
		r->lease_lost = true;
		atomic_store(&r->cancel, true);
		return;
	}
	if (stop && !r->stop_requested) {
		log_ctx_info(&r->ctx, "task %s: stop requested", r->t->task_id);
		r->stop_requested = true;
		atomic_store(&r->cancel, true);
	}
	if (atomic_load(&r->w->app->stop))
		atomic_store(&r->cancel, true);
}

static void on_progress(const struct engine_progress *p, void *ud)
{
	struct run *r = ud;
	struct mover_app *a = r->w->app;

	heartbeat(r, false);
	send_event(a, r->t, TOPIC, r->t->vm_id, "backup.task.progress",
	           mover_progress_json(r->t, "backup", p->bytes_read, p->bytes_stored,
	                               p->bytes_total, p->percent, p->speed, 0));
	if (p->bytes_stored > r->last_stored) {
		json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "task_id", r->t->task_id,
		                      "tenant_id", r->t->tenant_id, "repository_id",
		                      r->t->repository_id, "vm_id", r->t->vm_id, "count",
		                      (json_int_t)(p->chunks_new - r->last_chunks), "bytes",
		                      (json_int_t)(p->bytes_stored - r->last_stored));

		send_event(a, r->t, TOPIC_REPO, r->t->repository_id, "chunk.stored", d);
		metrics_counter_add(a->m_bytes, NULL, (double)(p->bytes_stored - r->last_stored));
		r->last_stored = p->bytes_stored;
		r->last_chunks = p->chunks_new;
	}
}

/* ---- guest file index into a COPY file ---- */

struct index_sink {
	FILE *f;
	const char *rp_id;
	const char *tenant;
	const char *disk;
	struct run *r;
	uint64_t rows;
};

static void copy_escape(FILE *f, const char *s, size_t n)
{
	bool utf8 = jsonh_utf8_valid(s, n);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\')
			fputs("\\\\", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c < 0x20 || c == 0x7f || (!utf8 && c >= 0x80))
			fputc('?', f); /* not representable in a UTF-8 text column */
		else
			fputc(c, f);
	}
}

static enum status index_row(void *arg, const struct ext4index_row *row, struct err *e)
{
	struct index_sink *s = arg;
	struct tm tm;
	time_t mt = (time_t)row->mtime;
	char ts[40];

	if (gmtime_r(&mt, &tm) == NULL)
		snprintf(ts, sizeof(ts), "\\N");
	else
		strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S+00", &tm);
	copy_escape(s->f, s->rp_id, strlen(s->rp_id));
	fputc('\t', s->f);
	copy_escape(s->f, s->tenant, strlen(s->tenant));
	fputc('\t', s->f);
	copy_escape(s->f, s->disk, strlen(s->disk));
	fprintf(s->f, "\t%d\t", row->fs->partition);
	copy_escape(s->f, row->path, row->path_len);
	fprintf(s->f, "\t%llu\t%s\t%s\t%u\n", (unsigned long long)row->size, ts,
	        ext4index_type_str(row->type), row->ino);
	if (ferror(s->f))
		return err_set(e, STATUS_IO, "file index spool: %s", strerror(errno));
	s->rows++;
	if ((s->rows & 0xfff) == 0) {
		struct run *r = s->r;

		heartbeat(r, false);
		if (atomic_load(&r->cancel))
			return err_set(e, STATUS_UNAVAILABLE, "cancelled");
		/* a file system with millions of files takes a while: progress once a second */
		if (now_s(&r->last_progress) >= 1.0) {
			clock_gettime(CLOCK_MONOTONIC, &r->last_progress);
			send_event(r->w->app, r->t, TOPIC, r->t->vm_id, "backup.task.progress",
			           mover_progress_json(r->t, "index", r->fig.bytes_read,
			                               r->fig.bytes_stored, r->fig.bytes_total,
			                               100.0, 0.0, r->fig.files_indexed + s->rows));
		}
	}
	return STATUS_OK;
}

/* Index every disk of the snapshot into a spool file. Problems are warnings: the restore
 * point is still good without its index. @returns the spool (rewound by the COPY), or NULL
 * with *warning set. */
/* Append one problem to the task's warning text ("; " between several). */
static void add_warning(char *warning, size_t wcap, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void add_warning(char *warning, size_t wcap, const char *fmt, ...)
{
	size_t n = strlen(warning);
	va_list ap;

	if (n > 0 && n + 2 < wcap) {
		memcpy(warning + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(warning + n, wcap - n, fmt, ap);
	va_end(ap);
}

/* Index every disk of the snapshot into a spool file. Problems are warnings: the restore
 * point is still good without its index. A disk that fails midway contributes no rows (the
 * spool is cut back), so the index never looks complete when it is not. *complete tells
 * whether every disk with a file system was indexed without error. @returns the spool
 * (rewound by the COPY), or NULL with a warning added. */
static FILE *index_disks(struct run *r, const struct platform_snapshot *snap, const char *rp_id,
                         char *warning, size_t wcap, bool *complete)
{
	FILE *f = tmpfile();
	double t0 = now_s(&r->started);

	*complete = false;
	if (f == NULL) {
		add_warning(warning, wcap, "file index skipped: no spool file: %s",
		            strerror(errno));
		return NULL;
	}
	*complete = true;
	for (size_t i = 0; i < snap->n_disks && !atomic_load(&r->cancel); i++) {
		struct index_sink sink = { f, rp_id, r->t->tenant_id, snap->disks[i].name, r, 0 };
		struct ext4index_source src;
		struct ext4index_stats stats;
		struct err e;
		enum status st;
		long pos = ftell(f);
		int fd = open(snap->disks[i].path, O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			add_warning(warning, wcap, "disk %s not indexed: %s", snap->disks[i].name,
			            strerror(errno));
			*complete = false;
			continue;
		}
		memset(&stats, 0, sizeof(stats));
		st = ext4index_source_fd(fd, &src, &e);
		if (st == STATUS_OK)
			st = ext4index_disk(&src, index_row, &sink, &stats, &e);
		close(fd);
		if (st == STATUS_NOT_FOUND) {
			add_warning(warning, wcap, "disk %s holds no ext2/3/4 file system to index",
			            snap->disks[i].name);
			continue;
		}
		if (st != STATUS_OK) {
			add_warning(warning, wcap, "disk %s not indexed: %s", snap->disks[i].name,
			            e.msg);
			*complete = false;
			/* drop this disk's partial rows */
			if (fflush(f) != 0 || pos < 0 || ftruncate(fileno(f), pos) != 0 ||
			    fseek(f, pos, SEEK_SET) != 0) {
				add_warning(warning, wcap, "file index spool: %s", strerror(errno));
				fclose(f);
				return NULL;
			}
			continue;
		}
		if (stats.warning[0]) {
			add_warning(warning, wcap, "disk %s: %s", snap->disks[i].name,
			            stats.warning);
			*complete = false;
		}
		r->fig.files_indexed += sink.rows;
	}
	if (atomic_load(&r->cancel))
		*complete = false;
	if (r->fig.files_indexed > 0) {
		double dt = now_s(&r->started) - t0;

		r->fig.index_ms = (uint64_t)(dt * 1000.0);
		r->fig.files_per_second = dt > 0 ? (uint64_t)((double)r->fig.files_indexed / dt)
		                                 : r->fig.files_indexed;
		log_ctx_info(&r->ctx, "task %s: indexed %llu files in %.2f s (%llu files/s)",
		             r->t->task_id, (unsigned long long)r->fig.files_indexed, dt,
		             (unsigned long long)r->fig.files_per_second);
		metrics_counter_add(r->w->app->m_files, NULL, (double)r->fig.files_indexed);
	}
	return f;
}

/* ---- finishing ---- */

static void finish_task(struct run *r, const char *status, const char *code, const char *msg)
{
	struct mover_app *a = r->w->app;
	char ts[JSONH_TIME_LEN];
	struct timespec now;
	struct err e;
	enum status st;
	const char *labels[] = { status };

	clock_gettime(CLOCK_REALTIME, &now);
	jsonh_time_format(&now, ts);
	r->fig.duration_ms = (uint64_t)(now_s(&r->started) * 1000.0);
	st = db_tx_begin(r->w->dbc, &e);
	if (st == STATUS_OK)
		st = mover_store_task_finish(r->w->dbc, r->t, a->owner, status, code, msg, &r->fig,
		                             &e);
	if (st == STATUS_OK)
		st = outbox_event(
		        r, "backup.task.finished",
		        mover_finished_json(r->t, status, &r->fig, NULL, code, msg, NULL, ts), &e);
	if (st == STATUS_OK)
		st = db_tx_commit(r->w->dbc, &e);
	if (st != STATUS_OK) {
		db_tx_rollback(r->w->dbc);
		log_ctx_error(&r->ctx, "task %s: recording %s failed: %s (lease will expire)",
		              r->t->task_id, status, e.msg);
		return;
	}
	svc_kick_outbox(a->svc);
	metrics_counter_inc(a->m_tasks, labels);
	log_ctx_info(&r->ctx, "task %s %s%s%s", r->t->task_id, status, msg ? ": " : "",
	             msg ? msg : "");
}

static const char *code_for(enum status st)
{
	switch (st) {
	case STATUS_NOT_FOUND:
		return "not_found";
	case STATUS_CORRUPT:
		return "corrupt";
	case STATUS_IO:
		return "io_error";
	case STATUS_INVALID:
		return "invalid";
	default:
		return status_str(st);
	}
}

/* ---- one task ---- */

/* Fill the change-tracked extents of each disk since the parent, or leave the disk
 * untracked (read everything, store only unknown chunks) when tracking cannot say. */
static void changed_since_parent(struct run *r, const struct platform_vm *vm,
                                 const struct mover_parent *parent,
                                 const struct platform_snapshot *snap, struct engine_extents *ext,
                                 bool *tracked)
{
	for (size_t i = 0; i < snap->n_disks; i++) {
		const char *since = NULL;
		struct extent_list l;
		struct err e;

		tracked[i] = false;
		for (size_t j = 0; j < parent->n_disks; j++) {
			if (strcmp(parent->disks[j].name, snap->disks[i].name) == 0 &&
			    parent->disks[j].size == snap->disks[i].size &&
			    parent->disks[j].change_id[0])
				since = parent->disks[j].change_id;
		}
		if (since == NULL)
			continue;
		extent_list_init(&l);
		if (datastore_changed_extents(vm, snap->disks[i].name, since, &l, &e) ==
		    STATUS_OK) {
			for (size_t k = 0; k < l.n; k++)
				engine_extents_add(&ext[i], l.v[k].off, l.v[k].len);
			engine_extents_normalize(&ext[i]);
			tracked[i] = true;
		} else {
			log_ctx_info(&r->ctx,
			             "disk %s: change tracking unavailable (%s), reading all",
			             snap->disks[i].name, e.msg);
		}
		extent_list_cleanup(&l);
	}
}

static void release_old_snapshot(struct run *r)
{
	struct platform_snapshot *old = NULL;
	struct err e;

	if (r->c->snapshot_id[0] == '\0')
		return;
	if (datastore_snapshot_load(r->c->snapshot_loc, r->c->snapshot_id, &old, &e) == STATUS_OK) {
		if (datastore_snapshot_release(old, &e) != STATUS_OK)
			log_ctx_warn(&r->ctx, "releasing snapshot %s of an earlier attempt: %s",
			             r->c->snapshot_id, e.msg);
		else
			log_ctx_info(&r->ctx, "released snapshot %s left by an earlier attempt",
			             r->c->snapshot_id);
	}
	platform_snapshot_free(old);
}

static enum status take_snapshot(struct run *r, const struct platform_vm *vm,
                                 struct platform_snapshot **snap, struct err *e)
{
	enum datastore_snap_mode mode;
	json_t *disks, *data;
	char ts[JSONH_TIME_LEN];
	struct timespec now;
	enum status st;

	st = datastore_snap_mode_parse(r->w->app->cfg.snapshot_mode, &mode, e);
	if (st == STATUS_OK)
		st = datastore_snapshot_create(vm, mode, snap, e);
	if (st != STATUS_OK)
		return st;
	clock_gettime(CLOCK_REALTIME, &now);
	jsonh_time_format(&now, ts);
	disks = json_array();
	for (size_t i = 0; i < (*snap)->n_disks; i++)
		json_array_append_new(disks,
		                      json_pack("{s:s, s:I}", "disk_id", (*snap)->disks[i].name,
		                                "size_bytes", (json_int_t)(*snap)->disks[i].size));
	data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "task_id", r->t->task_id,
	                 "tenant_id", r->t->tenant_id, "vm_id", r->t->vm_id, "snapshot_id",
	                 (*snap)->id, "consistency", "crash", "disks", disks, "taken_at", ts);
	/* Record the snapshot (so a retry can release it) and announce it in one commit. */
	st = db_tx_begin(r->w->dbc, e);
	if (st == STATUS_OK)
		st = mover_store_task_set_snapshot(r->w->dbc, r->t->task_id, (*snap)->id,
		                                   (*snap)->locator, e);
	if (st == STATUS_OK)
		st = outbox_event(r, "snapshot.taken", data, e);
	else
		json_decref(data);
	if (st == STATUS_OK)
		st = db_tx_commit(r->w->dbc, e);
	if (st != STATUS_OK) {
		struct err re;

		db_tx_rollback(r->w->dbc);
		/* Unrecorded, no retry could release it: a lock would block the VM's backups. */
		if (datastore_snapshot_release(*snap, &re) != STATUS_OK)
			log_ctx_warn(&r->ctx, "releasing unrecorded snapshot %s: %s", (*snap)->id,
			             re.msg);
		platform_snapshot_free(*snap);
		*snap = NULL;
		return st;
	}
	svc_kick_outbox(r->w->app->svc);
	return st;
}

static void on_verify_progress(const struct engine_progress *p, void *ud)
{
	heartbeat(ud, false);
}

/* The restore point already exists in the repository: an earlier attempt died between
 * writing its manifest and committing the catalog row. Verify it and adopt it. */
static enum status adopt_existing(struct run *r, struct engine_repo *repo,
                                  const struct engine_tenant_keys *keys, struct err *e)
{
	struct engine_verify_report rep;
	struct engine_restore_opts o = { .cancel = &r->cancel,
		                         .progress = on_verify_progress,
		                         .progress_ud = r };
	enum status st;

	memset(&rep, 0, sizeof(rep));
	st = engine_verify_rp(repo, keys, r->t->task_id, &o, &rep, e);
	if (st == STATUS_OK)
		log_ctx_info(&r->ctx,
		             "task %s: adopting restore point of an earlier attempt "
		             "(%llu chunks verified)",
		             r->t->task_id, (unsigned long long)rep.chunks_checked);
	engine_verify_report_cleanup(&rep);
	return st;
}

static void run_task(struct mover_worker *w, struct mover_claim *c)
{
	struct mover_app *a = w->app;
	struct run r;
	struct platform_vm *vm = NULL;
	struct platform_snapshot *snap = NULL;
	struct engine_repo *repo = NULL;
	struct engine_tenant_keys keys;
	struct engine_keystore ks = { &pg_keystore_ops, w->dbc };
	struct mover_parent parent;
	bool have_parent = false;
	bool adopted = false;
	bool index_complete = false;
	char *repo_path = NULL;
	struct engine_extents *ext = NULL;
	bool *tracked = NULL;
	struct engine_disk_source *src = NULL;
	struct engine_backup_result res;
	char warning[512] = "";
	FILE *index = NULL;
	struct err e;
	enum status st;

	memset(&r, 0, sizeof(r));
	memset(&res, 0, sizeof(res));
	r.w = w;
	r.c = c;
	r.t = &c->task;
	r.ctx.tenant_id = c->task.tenant_id;
	r.ctx.partition = -1;
	atomic_init(&r.cancel, false);
	clock_gettime(CLOCK_MONOTONIC, &r.started);
	r.last_beat = r.started;
	r.last_progress = r.started;
	metrics_gauge_add(a->m_running, NULL, 1);
	/* Every statement of this task sees this tenant's rows only (row-level security). */
	if (mover_store_scope_tenant(w->dbc, r.t->tenant_id, &e) != STATUS_OK) {
		log_ctx_error(&r.ctx, "task %s: %s (lease will expire)", r.t->task_id, e.msg);
		goto out;
	}
	log_ctx_info(&r.ctx, "task %s: attempt %d (vm %s, %s)", r.t->task_id, c->attempts,
	             r.t->vm_id, r.t->full ? "full" : "incremental");

	release_old_snapshot(&r);
	if (c->stop_requested) {
		finish_task(&r, "stopped", NULL, "stopped before it started");
		goto out;
	}
	if (c->attempts > 3) {
		finish_task(&r, "failed", "too_many_attempts",
		            "the task was interrupted 3 times; giving up");
		goto out;
	}
	st = datastore_vm_find(a->cfg.datastore_root, r.t->vm_id, &vm, &e);
	if (st == STATUS_OK)
		st = mover_store_repository_path(w->dbc, r.t->repository_id, &repo_path, &e);
	if (st == STATUS_OK)
		st = engine_tenant_keys_get(&ks, &a->mk, r.t->tenant_id, true, &keys, &e);
	if (st == STATUS_OK) {
		repo = engine_repo_open(repo_path, r.t->tenant_id, true, &e);
		if (repo != NULL)
			engine_repo_set_direct_io(repo, a->cfg.direct_io);
		st = repo ? STATUS_OK : e.code;
	}
	if (st == STATUS_OK) {
		/* Temporary files of writers that died (an hour is far beyond any live one). */
		size_t swept = 0;
		struct err se;

		if (engine_repo_sweep_temps(repo, 3600, &swept, &se) == STATUS_OK && swept > 0)
			log_ctx_info(&r.ctx,
			             "removed %zu temporary files left by interrupted writes",
			             swept);
	}
	if (st == STATUS_OK)
		st = take_snapshot(&r, vm, &snap, &e);
	if (st != STATUS_OK) {
		finish_task(&r, "failed", code_for(st), e.msg);
		goto out;
	}
	heartbeat(&r, true);

	ext = xcalloc(snap->n_disks, sizeof(*ext));
	tracked = xcalloc(snap->n_disks, sizeof(*tracked));
	src = xcalloc(snap->n_disks, sizeof(*src));
	for (size_t i = 0; i < snap->n_disks; i++)
		engine_extents_init(&ext[i]);
	if (!r.t->full) {
		st = mover_store_parent(w->dbc, r.t->tenant_id, r.t->vm_id, r.t->repository_id,
		                        &parent, &e);
		have_parent = st == STATUS_OK;
		if (have_parent)
			changed_since_parent(&r, vm, &parent, snap, ext, tracked);
	}
	for (size_t i = 0; i < snap->n_disks; i++) {
		src[i].name = snap->disks[i].name;
		src[i].path = snap->disks[i].path;
		src[i].changed = tracked[i] ? &ext[i] : NULL;
	}
	{
		struct engine_backup_opts o = {
			.chunk_size = (uint32_t)a->cfg.chunk_size,
			.zstd_level = r.t->zstd_level,
			.zstd_level_set = true,
			.threads = (unsigned)a->cfg.engine_threads,
			.rp_id = r.t->task_id,
			.parent_rp = have_parent ? parent.rp_id : NULL,
			.source = vm->name,
			.progress = on_progress,
			.progress_ud = &r,
			.cancel = &r.cancel,
		};

		st = engine_backup_run(repo, &keys, src, snap->n_disks, &o, &res, &e);
	}
	r.fig.bytes_total = res.bytes_total;
	r.fig.bytes_read = res.bytes_read;
	r.fig.bytes_stored = res.bytes_stored;
	r.fig.chunks_total = res.chunks_total;
	r.fig.chunks_new = res.chunks_new + res.chunks_patch; /* patches store new data too */
	r.fig.chunks_reused = res.chunks_known + res.chunks_parent;
	if (st == STATUS_CONFLICT) {
		st = adopt_existing(&r, repo, &keys, &e);
		/* Its data is from the earlier attempt's snapshot, not this one: record no change
		 * ids, so the next run reads everything instead of trusting tracking since now. */
		adopted = st == STATUS_OK;
	}
	if (r.lease_lost)
		goto out_release; /* another mover owns the task now */
	if (st != STATUS_OK) {
		if (res.cancelled || atomic_load(&r.cancel)) {
			if (r.stop_requested)
				finish_task(&r, "stopped", NULL, "stopped on request");
			else
				log_ctx_info(&r.ctx,
				             "task %s interrupted by shutdown; it will be "
				             "resumed when its lease expires",
				             r.t->task_id);
		} else {
			finish_task(&r, "failed", code_for(st), e.msg);
		}
		goto out_release;
	}
	if (r.t->index_files)
		index = index_disks(&r, snap, r.t->task_id, warning, sizeof(warning),
		                    &index_complete);
	if (r.lease_lost)
		goto out_release;
	if (atomic_load(&r.cancel) && r.stop_requested) {
		finish_task(&r, "stopped", NULL, "stopped on request");
		goto out_release;
	}
	{
		const char **names = xcalloc(snap->n_disks, sizeof(*names));
		const char **changes = xcalloc(snap->n_disks, sizeof(*changes));
		uint64_t *sizes = xcalloc(snap->n_disks, sizeof(*sizes));
		const char *status = warning[0] ? "warning" : "success";
		char ts[JSONH_TIME_LEN];
		struct timespec now;
		const char *labels[] = { status };
		struct mover_rp_row row = {
			.rp_id = r.t->task_id,
			.parent_id = have_parent ? parent.rp_id : NULL,
			.vm_name = vm->name,
			.full = r.t->full || !have_parent,
			.fig = &r.fig,
			.n_disks = snap->n_disks,
			.disk_names = names,
			.disk_sizes = sizes,
			.change_ids = changes,
			.file_index = index,
			.indexed = index != NULL && index_complete,
		};

		for (size_t i = 0; i < snap->n_disks; i++) {
			names[i] = snap->disks[i].name;
			sizes[i] = snap->disks[i].size;
			changes[i] = adopted ? NULL : snap->disks[i].change_id;
		}
		clock_gettime(CLOCK_REALTIME, &now);
		jsonh_time_format(&now, ts);
		r.fig.duration_ms = (uint64_t)(now_s(&r.started) * 1000.0);
		st = db_tx_begin(w->dbc, &e);
		if (st == STATUS_OK)
			st = mover_store_rp_commit(w->dbc, r.t, a->owner, &row, status, &e);
		if (st == STATUS_OK)
			st = outbox_event(&r, "backup.task.finished",
			                  mover_finished_json(r.t, status, &r.fig, r.t->task_id,
			                                      NULL, NULL,
			                                      warning[0] ? warning : NULL, ts),
			                  &e);
		if (st == STATUS_OK)
			st = db_tx_commit(w->dbc, &e);
		free(names);
		free(changes);
		free(sizes);
		if (st == STATUS_NOT_FOUND) {
			/* Our lease expired and another mover took the task over: leave it to it.
			 */
			db_tx_rollback(w->dbc);
			log_ctx_warn(&r.ctx, "task %s: %s; not committing", r.t->task_id, e.msg);
			r.lease_lost = true;
			goto out_release;
		}
		if (st != STATUS_OK) {
			db_tx_rollback(w->dbc);
			finish_task(&r, "failed", "catalog", e.msg);
			goto out_release;
		}
		svc_kick_outbox(a->svc);
		metrics_counter_inc(a->m_tasks, labels);
		log_ctx_info(&r.ctx,
		             "task %s %s: restore point %s, read %llu of %llu bytes, stored %llu "
		             "bytes, %llu new chunks, %llu files indexed, %.1f s%s%s",
		             r.t->task_id, status, r.t->task_id,
		             (unsigned long long)r.fig.bytes_read,
		             (unsigned long long)r.fig.bytes_total,
		             (unsigned long long)r.fig.bytes_stored,
		             (unsigned long long)r.fig.chunks_new,
		             (unsigned long long)r.fig.files_indexed,
		             (double)r.fig.duration_ms / 1000.0, warning[0] ? "; " : "", warning);
	}
out_release:
	if (snap && !r.lease_lost) {
		if (datastore_snapshot_release(snap, &e) != STATUS_OK)
			log_ctx_warn(&r.ctx, "task %s: releasing snapshot %s: %s", r.t->task_id,
			             snap->id, e.msg);
	}
out:
	if (index)
		fclose(index);
	for (size_t i = 0; ext && snap && i < snap->n_disks; i++)
		engine_extents_cleanup(&ext[i]);
	free(ext);
	free(tracked);
	free(src);
	engine_key_wipe(&keys, sizeof(keys));
	engine_repo_free(repo);
	free(repo_path);
	platform_snapshot_free(snap);
	platform_vm_free(vm);
	if (mover_store_scope_tenant(w->dbc, "", &e) != STATUS_OK)
		log_warn("worker %u: %s", w->index, e.msg);
	metrics_gauge_add(a->m_running, NULL, -1);
}

/* ---- the worker threads ---- */

static void *worker_main(void *arg)
{
	struct mover_worker *w = arg;
	struct mover_app *a = w->app;
	struct err e;

	while (!atomic_load(&a->stop)) {
		struct mover_claim c;
		enum status st;

		if (w->dbc == NULL) {
			w->dbc = svc_db_conn_new(a->svc, &e);
			if (w->dbc == NULL) {
				log_warn("worker %u: database: %s (retrying)", w->index, e.msg);
				sleep(1);
				continue;
			}
		}
		st = mover_store_task_claim(w->dbc, a->owner, (int)a->cfg.lease_seconds,
		                            (int)a->cfg.per_tenant, &c, &e);
		if (st == STATUS_OK) {
			run_task(w, &c);
			continue;
		}
		if (st != STATUS_NOT_FOUND)
			log_warn("worker %u: claiming a task: %s", w->index, e.msg);
		pthread_mutex_lock(&a->lock);
		if (!atomic_load(&a->stop)) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			pthread_cond_timedwait(&a->wake, &a->lock, &until);
		}
		pthread_mutex_unlock(&a->lock);
	}
	db_conn_free(w->dbc);
	w->dbc = NULL;
	return NULL;
}

enum status mover_workers_start(struct mover_app *a, struct err *e)
{
	a->n_workers = (size_t)a->cfg.workers;
	a->workers = xcalloc(a->n_workers, sizeof(*a->workers));
	for (size_t i = 0; i < a->n_workers; i++) {
		a->workers[i].app = a;
		a->workers[i].index = (unsigned)i;
		if (pthread_create(&a->workers[i].thread, NULL, worker_main, &a->workers[i]) != 0) {
			mover_workers_stop(a);
			return err_set(e, STATUS_INTERNAL, "cannot start worker %zu", i);
		}
		a->workers[i].started = true;
	}
	return STATUS_OK;
}

void mover_workers_stop(struct mover_app *a)
{
	atomic_store(&a->stop, true);
	pthread_mutex_lock(&a->lock);
	pthread_cond_broadcast(&a->wake);
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; i < a->n_workers; i++) {
		if (a->workers[i].started)
			pthread_join(a->workers[i].thread, NULL);
	}
	free(a->workers);
	a->workers = NULL;
	a->n_workers = 0;
}
