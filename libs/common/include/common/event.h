/* event.h - CloudEvents 1.0 in Kafka binary mode (DESIGN.md "Events").
 *
 * Attributes travel as headers ce_id ce_type ce_source ce_specversion ce_time ce_subject
 * ce_tenantid plus content-type: application/json; the value is the JSON `data`.
 * See docs/kafka.md. Pure functions: no I/O, thread-safe on distinct objects.
 */
#ifndef COMMON_EVENT_H
#define COMMON_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "common/err.h"

/* A UUID in text form is 36 characters. */
#define EVENT_ID_LEN 37
/* RFC 3339 UTC timestamp with milliseconds: 2024-05-01T12:00:00.123Z */
#define EVENT_TIME_LEN 32

struct event {
	char id[EVENT_ID_LEN];     /* ce_id: a UUID (required) */
	char *type;                /* ce_type, e.g. "cairn.job.requested" (required, owned) */
	char *source;              /* ce_source, e.g. "/cairn/scheduler" (required, owned) */
	char *subject;             /* ce_subject (optional, owned, may be NULL) */
	char *tenant_id;           /* ce_tenantid (optional, owned, may be NULL) */
	char time[EVENT_TIME_LEN]; /* ce_time RFC 3339 (required on the wire) */
	json_t *data;              /* owned reference; NULL encodes as JSON null */
};

/** @brief Initialise a caller-allocated event to empty (no id, no fields). */
void event_init(struct event *ev);

/** @brief Release every field of ev (ev itself is the caller's); ev is empty afterwards. */
void event_cleanup(struct event *ev);

/** @brief Fill ev with a new id (UUIDv4), the current time and copies of the strings.
 *  @param ev    initialised or zeroed event; previous contents are released.
 *  @param data  takes ownership of this reference (also on failure); may be NULL.
 *  subject and tenant_id may be NULL.
 *  @returns STATUS_OK, STATUS_INVALID (type/source empty) or STATUS_INTERNAL (no randomness). */
MUST_CHECK enum status event_make(struct event *ev, const char *type, const char *source,
                                  const char *subject, const char *tenant_id, json_t *data,
                                  struct err *e);

/** @brief Write a random (version 4) UUID in lower-case text form into out (37 bytes)
 *  using OpenSSL RAND_bytes. @returns STATUS_OK or STATUS_INTERNAL. Thread-safe. */
MUST_CHECK enum status event_uuid_v4(char out[EVENT_ID_LEN], struct err *e);

/** @brief Format the current UTC time as RFC 3339 with milliseconds into out. */
void event_time_now(char out[EVENT_TIME_LEN]);

/** @brief Encode ev for Kafka binary mode.
 *  @param hdrs_out  receives new headers (caller frees with rd_kafka_headers_destroy or hands
 *                   them to a produce call that takes them).
 *  @param value_out receives a new JSON string (caller frees with free()); *len_out its size.
 *  @returns STATUS_OK, or STATUS_INVALID if a required attribute is missing. */
MUST_CHECK enum status event_encode(const struct event *ev, rd_kafka_headers_t **hdrs_out,
                                    char **value_out, size_t *len_out, struct err *e);

/** @brief Decode and validate a binary-mode CloudEvent.
 *  @param hdrs  borrowed; may be NULL (then every required header is missing).
 *  @param value borrowed message payload (len bytes, not NUL-terminated).
 *  @param ev    initialised event; receives owned copies (released first).
 *  @returns STATUS_OK, or STATUS_INVALID with the reason in e->msg: missing required header,
 *  bad ce_specversion, bad ce_id, non-JSON value. */
MUST_CHECK enum status event_decode(const rd_kafka_headers_t *hdrs, const void *value, size_t len,
                                    struct event *ev, struct err *e);

/** @brief True when s looks like a UUID in text form (8-4-4-4-12 hex). */
bool event_id_is_valid(const char *s);

#endif
