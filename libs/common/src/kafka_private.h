/* kafka_private.h - shared between kafka.c and kafka_consumer.c; not installed. */
#ifndef COMMON_KAFKA_PRIVATE_H
#define COMMON_KAFKA_PRIVATE_H

#include <librdkafka/rdkafka.h>

/** @brief A new conf with the log and error callbacks routed into common/log.h.
 *  @returns a new conf (rd_kafka_conf_destroy, or consumed by a successful rd_kafka_new). */
rd_kafka_conf_t *kafka_conf_base(void);

#endif
