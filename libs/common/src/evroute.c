#include "common/evroute.h"

#include <string.h>

#include "common/log.h"

enum status evroute_dispatch(const struct evroute *routes, size_t n, struct db_conn *dbc,
                             const struct event *ev, void *user, struct err *e)
{
	const struct evroute *any = NULL;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(routes[i].type, "*") == 0)
			any = &routes[i];
		else if (strcmp(routes[i].type, ev->type) == 0)
			return routes[i].fn(dbc, ev, user, e);
	}
	if (any)
		return any->fn(dbc, ev, user, e);
	{
		struct log_ctx ctx = { .event_id = ev->id, .partition = -1 };

		log_ctx_debug(&ctx, "ignoring event type %s", ev->type);
	}
	return STATUS_OK;
}
