/* store.h - every SQL statement of the stats service. */
#ifndef STATS_STORE_H
#define STATS_STORE_H

#include "common/db.h"
#include "common/err.h"

/** @brief Count one event in stats.event_counts for the UTC day of `time` (RFC 3339),
 *  its tenant (may be NULL) and type, inside the caller's open transaction.
 *  All arguments are borrowed. @returns STATUS_OK or the mapped database error. */
MUST_CHECK enum status stats_store_count_event(struct db_conn *dbc, const char *time,
                                               const char *tenant_id, const char *type,
                                               struct err *e);

#endif
