/* evroute.h - route a consumed CloudEvent to its handler by ce_type. */
#ifndef COMMON_EVROUTE_H
#define COMMON_EVROUTE_H

#include <stddef.h>

#include "common/kafka.h"

struct evroute {
	const char *type; /* exact ce_type, or "*" for every type (checked last) */
	kafka_handler_fn fn;
};

/** @brief Call the handler for ev->type from routes (n entries; routes may be NULL when n
 *  is 0), inside the consumer's transaction. An event of a type the service does not
 *  handle is acknowledged and ignored (consumers tolerate new event types).
 *  All arguments are borrowed. @returns the handler's status, or STATUS_OK when ignored. */
MUST_CHECK enum status evroute_dispatch(const struct evroute *routes, size_t n, struct db_conn *dbc,
                                        const struct event *ev, void *user, struct err *e);

#endif
