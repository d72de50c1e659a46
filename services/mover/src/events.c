#include <string.h>

#include "common/evroute.h"
#include "common/log.h"

#include "app.h"
#include "store.h"
#include "task.h"

static enum status on_task_requested(struct db_conn *dbc, const struct event *ev, void *user,
                                     struct err *e)
{
	struct mover_app *a = user;
	struct mover_task t;
	bool inserted = false;
	enum status st;

	/* A task that cannot be decoded is not retriable: it goes to the DLQ with the reason. */
	st = mover_task_parse(ev->data, &t, e);
	if (st != STATUS_OK)
		return st;
	st = db_tx_set_local(dbc, "app.tenant_id", t.tenant_id, e);
	if (st == STATUS_OK)
		st = mover_store_task_enqueue(dbc, &t, &inserted, e);
	if (st == STATUS_OK && inserted) {
		struct log_ctx ctx = { .event_id = ev->id,
			               .tenant_id = t.tenant_id,
			               .partition = -1 };

		log_ctx_info(&ctx, "task %s queued (vm %s, %s)", t.task_id, t.vm_id,
		             t.full ? "full" : "incremental");
		mover_wake(a);
	}
	return st;
}

static enum status on_stop_requested(struct db_conn *dbc, const struct event *ev, void *user,
                                     struct err *e)
{
	const char *task_id = json_string_value(json_object_get(ev->data, "task_id"));
	const char *tenant = json_string_value(json_object_get(ev->data, "tenant_id"));

	if (task_id == NULL || tenant == NULL)
		return err_set(e, STATUS_INVALID, "stop request without task_id or tenant_id");
	if (db_tx_set_local(dbc, "app.tenant_id", tenant, e) != STATUS_OK)
		return e->code;
	return mover_store_task_request_stop(dbc, task_id, tenant, e);
}

enum status mover_handle_event(struct db_conn *dbc, const struct event *ev, void *user,
                               struct err *e)
{
	static const struct evroute routes[] = {
		{ "backup.task.requested", on_task_requested },
		{ "backup.task.stop.requested", on_stop_requested },
	};

	return evroute_dispatch(routes, sizeof(routes) / sizeof(routes[0]), dbc, ev, user, e);
}
