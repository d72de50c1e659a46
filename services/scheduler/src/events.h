/* events.h - the scheduler service's application context and its Kafka event handlers. */
#ifndef SCHEDULER_EVENTS_H
#define SCHEDULER_EVENTS_H

#include "common/svc.h"

/* The service's context: built in main.c, filled by scheduler_setup(). */
struct scheduler_app {
	struct svc *svc; /* borrowed runtime; valid during svc_main() */
};

/** @brief Register the service's routes and workers (svc_def.setup). app is a
 *  struct scheduler_app. @returns STATUS_OK or the failure in *e. */
enum status scheduler_setup(struct svc *s, void *app, struct err *e);

/** @brief Apply one consumed event inside the consumer's transaction (kafka_handler_fn).
 *  Events of types this service does not handle are acknowledged and ignored. */
enum status scheduler_handle_event(struct db_conn *dbc, const struct event *ev, void *user,
                                   struct err *e);

#endif
