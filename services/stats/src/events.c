#include "events.h"

#include <stddef.h>

#include "common/evroute.h"

#include "store.h"

enum status stats_setup(struct svc *s, void *app, struct err *e)
{
	struct stats_app *a = app;

	a->svc = s;
	return STATUS_OK;
}

static enum status count_event(struct db_conn *dbc, const struct event *ev, void *user,
                               struct err *e)
{
	return stats_store_count_event(dbc, ev->time, ev->tenant_id, ev->type, e);
}

enum status stats_handle_event(struct db_conn *dbc, const struct event *ev, void *user,
                               struct err *e)
{
	static const struct evroute routes[] = {
		{ "*", count_event },
	};

	return evroute_dispatch(routes, sizeof(routes) / sizeof(routes[0]), dbc, ev, user, e);
}
