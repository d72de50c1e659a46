/* events.h - the mover service's application context and its Kafka event handlers. */
#ifndef MOVER_EVENTS_H
#define MOVER_EVENTS_H

#include "common/svc.h"

/* The service's context: built in main.c, filled by mover_setup(). */
struct mover_app {
	struct svc *svc; /* borrowed runtime; valid during svc_main() */
};

/** @brief Register the service's routes and workers (svc_def.setup). app is a
 *  struct mover_app. @returns STATUS_OK or the failure in *e. */
enum status mover_setup(struct svc *s, void *app, struct err *e);

/** @brief Apply one consumed event inside the consumer's transaction (kafka_handler_fn).
 *  Events of types this service does not handle are acknowledged and ignored. */
enum status mover_handle_event(struct db_conn *dbc, const struct event *ev, void *user,
                               struct err *e);

#endif
