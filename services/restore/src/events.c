#include "events.h"

#include "common/evroute.h"

enum status restore_setup(struct svc *s, void *app, struct err *e)
{
	struct restore_app *a = app;

	a->svc = s;
	return STATUS_OK;
}

enum status restore_handle_event(struct db_conn *dbc, const struct event *ev, void *user,
                                 struct err *e)
{
	/* The foundation consumes and acknowledges; the domain handlers join this table as
	 * their issues land. */
	return evroute_dispatch(NULL, 0, dbc, ev, user, e);
}
