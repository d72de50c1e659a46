#include "common/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/xalloc.h"

void event_init(struct event *ev)
{
	memset(ev, 0, sizeof(*ev));
}

/* Release the fields of a non-NULL event. */
static void release(struct event *ev)
{
	free(ev->type);
	free(ev->source);
	free(ev->subject);
	free(ev->tenant_id);
	json_decref(ev->data);
	event_init(ev);
}

void event_cleanup(struct event *ev)
{
	if (ev != NULL)
		release(ev);
}

enum status event_uuid_v4(char out[EVENT_ID_LEN], struct err *e)
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1) {
		out[0] = '\0';
		return err_set(e, STATUS_INTERNAL, "RAND_bytes failed");
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, EVENT_ID_LEN,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
	return STATUS_OK;
}

void event_time_now(char out[EVENT_TIME_LEN])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, EVENT_TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, EVENT_TIME_LEN - n, ".%03dZ", (int)(ts.tv_nsec / 1000000L) % 1000);
}

bool event_id_is_valid(const char *s)
{
	static const int dash[] = { 8, 13, 18, 23 };
	size_t n;

	if (s == NULL)
		return false;
	n = strlen(s);
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool want_dash = false;

		for (size_t d = 0; d < sizeof(dash) / sizeof(dash[0]); d++)
			if ((int)i == dash[d])
				want_dash = true;
		if (want_dash) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		             (s[i] >= 'A' && s[i] <= 'F'))) {
			return false;
		}
	}
	return true;
}

enum status event_make(struct event *ev, const char *type, const char *source, const char *subject,
                       const char *tenant_id, json_t *data, struct err *e)
{
	enum status st;

	release(ev);
	if (type == NULL || type[0] == '\0' || source == NULL || source[0] == '\0') {
		json_decref(data);
		return err_set(e, STATUS_INVALID, "event type and source are required");
	}
	st = event_uuid_v4(ev->id, e);
	if (st != STATUS_OK) {
		json_decref(data);
		return st;
	}
	event_time_now(ev->time);
	ev->type = xstrdup(type);
	ev->source = xstrdup(source);
	ev->subject = subject != NULL ? xstrdup(subject) : NULL;
	ev->tenant_id = tenant_id != NULL ? xstrdup(tenant_id) : NULL;
	ev->data = data;
	return STATUS_OK;
}

static void hdr_add(rd_kafka_headers_t *h, const char *name, const char *value)
{
	if (value != NULL)
		rd_kafka_header_add(h, name, -1, value, (ssize_t)strlen(value));
}

enum status event_encode(const struct event *ev, rd_kafka_headers_t **hdrs_out, char **value_out,
                         size_t *len_out, struct err *e)
{
	rd_kafka_headers_t *h;
	char *value;

	*hdrs_out = NULL;
	*value_out = NULL;
	*len_out = 0;
	if (!event_id_is_valid(ev->id))
		return err_set(e, STATUS_INVALID, "event id is not a UUID");
	if (ev->type == NULL || ev->type[0] == '\0' || ev->source == NULL ||
	    ev->source[0] == '\0' || ev->time[0] == '\0')
		return err_set(e, STATUS_INVALID, "event %s lacks type, source or time", ev->id);
	if (ev->data != NULL)
		value = json_dumps(ev->data, JSON_COMPACT | JSON_ENCODE_ANY);
	else
		value = xstrdup("null");
	if (value == NULL)
		return err_set(e, STATUS_INVALID, "event %s data cannot be serialised", ev->id);

	h = rd_kafka_headers_new(8);
	hdr_add(h, "ce_id", ev->id);
	hdr_add(h, "ce_type", ev->type);
	hdr_add(h, "ce_source", ev->source);
	hdr_add(h, "ce_specversion", "1.0");
	hdr_add(h, "ce_time", ev->time);
	hdr_add(h, "ce_subject", ev->subject);
	hdr_add(h, "ce_tenantid", ev->tenant_id);
	hdr_add(h, "content-type", "application/json");
	*hdrs_out = h;
	*value_out = value;
	*len_out = strlen(value);
	return STATUS_OK;
}

/* Returns a new NUL-terminated copy of the last header called name, or NULL if absent. */
static char *hdr_dup(const rd_kafka_headers_t *h, const char *name)
{
	const void *v = NULL;
	size_t n = 0;

	if (h == NULL || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	if (v == NULL)
		return xstrdup("");
	return xstrndup(v, n);
}

static enum status require(const rd_kafka_headers_t *h, const char *name, char **out, struct err *e)
{
	*out = hdr_dup(h, name);
	if (*out != NULL && (*out)[0] != '\0')
		return STATUS_OK;
	free(*out);
	*out = NULL;
	err_set(e, STATUS_INVALID, "missing required header %s", name);
	return STATUS_INVALID;
}

enum status event_decode(const rd_kafka_headers_t *hdrs, const void *value, size_t len,
                         struct event *ev, struct err *e)
{
	char *id = NULL, *spec = NULL, *tm = NULL;
	json_error_t jerr;
	enum status st;

	release(ev);
	st = require(hdrs, "ce_id", &id, e);
	if (st != STATUS_OK)
		goto out;
	if (!event_id_is_valid(id)) {
		st = err_set(e, STATUS_INVALID, "ce_id is not a UUID");
		goto out;
	}
	st = require(hdrs, "ce_specversion", &spec, e);
	if (st != STATUS_OK)
		goto out;
	if (strcmp(spec, "1.0") != 0) {
		st = err_set(e, STATUS_INVALID, "unsupported ce_specversion %.32s", spec);
		goto out;
	}
	st = require(hdrs, "ce_type", &ev->type, e);
	if (st != STATUS_OK)
		goto out;
	st = require(hdrs, "ce_source", &ev->source, e);
	if (st != STATUS_OK)
		goto out;
	st = require(hdrs, "ce_time", &tm, e);
	if (st != STATUS_OK)
		goto out;
	if (strlen(tm) >= EVENT_TIME_LEN) {
		st = err_set(e, STATUS_INVALID, "ce_time too long");
		goto out;
	}
	ev->subject = hdr_dup(hdrs, "ce_subject");
	ev->tenant_id = hdr_dup(hdrs, "ce_tenantid");
	if (value == NULL || len == 0) {
		st = err_set(e, STATUS_INVALID, "empty value (data must be JSON)");
		goto out;
	}
	ev->data = json_loadb(value, len, JSON_DECODE_ANY, &jerr);
	if (ev->data == NULL) {
		st = err_set(e, STATUS_INVALID, "value is not JSON: %s (at %d:%d)", jerr.text,
		             jerr.line, jerr.column);
		goto out;
	}
	snprintf(ev->id, sizeof(ev->id), "%s", id);
	snprintf(ev->time, sizeof(ev->time), "%s", tm);
out:
	if (st != STATUS_OK)
		release(ev);
	free(id);
	free(spec);
	free(tm);
	return st;
}
