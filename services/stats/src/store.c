#include "store.h"

enum status stats_store_count_event(struct db_conn *dbc, const char *time, const char *tenant_id,
                                    const char *type, struct err *e)
{
	static const char sql[] =
	        "INSERT INTO stats.event_counts (day, tenant_id, type, count, last_event_at) "
	        "VALUES (($1::timestamptz AT TIME ZONE 'UTC')::date, coalesce($2, ''), $3, 1, "
	        "$1::timestamptz) "
	        "ON CONFLICT (day, tenant_id, type) DO UPDATE SET count = event_counts.count + 1, "
	        "last_event_at = greatest(event_counts.last_event_at, excluded.last_event_at)";
	const char *params[] = { time, tenant_id, type };
	enum status st;

	/* Row-level security: the count belongs to the event's tenant. */
	st = db_tx_set_local(dbc, "app.tenant_id", tenant_id ? tenant_id : "", e);
	if (st != STATUS_OK)
		return st;
	return db_exec(dbc, sql, 3, params, e);
}
