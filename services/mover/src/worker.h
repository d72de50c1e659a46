/* worker.h - the mover's worker threads (see worker.c). */
#ifndef MOVER_WORKER_H
#define MOVER_WORKER_H

#include "app.h"

/** @brief Start cfg.workers threads that claim and run tasks until mover_workers_stop().
 *  @returns STATUS_OK or STATUS_INTERNAL (thread creation failed; call stop anyway). */
MUST_CHECK enum status mover_workers_start(struct mover_app *a, struct err *e);

/** @brief Ask every worker to stop (a running task is cancelled within milliseconds and
 *  left to be resumed after its lease expires) and join them. */
void mover_workers_stop(struct mover_app *a);

#endif
