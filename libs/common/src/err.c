#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

static enum status vset(struct err *e, enum status code, bool retriable, const char *fmt,
                        va_list ap)
{
	if (e == NULL)
		return code;
	e->code = code;
	e->retriable = retriable;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	return code;
}

enum status err_set(struct err *e, enum status code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(e, code, false, fmt, ap);
	va_end(ap);
	return code;
}

enum status err_set_retriable(struct err *e, enum status code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(e, code, true, fmt, ap);
	va_end(ap);
	return code;
}

void err_clear(struct err *e)
{
	if (e == NULL)
		return;
	e->code = STATUS_OK;
	e->retriable = false;
	e->msg[0] = '\0';
}

const char *status_str(enum status s)
{
	static const char *const names[STATUS__COUNT] = {
		[STATUS_OK] = "ok",
		[STATUS_NOMEM] = "no_memory",
		[STATUS_INVALID] = "invalid",
		[STATUS_NOT_FOUND] = "not_found",
		[STATUS_CONFLICT] = "conflict",
		[STATUS_UNAUTHORIZED] = "unauthorized",
		[STATUS_FORBIDDEN] = "forbidden",
		[STATUS_TOO_LARGE] = "too_large",
		[STATUS_IO] = "io_error",
		[STATUS_DB] = "database_error",
		[STATUS_KAFKA] = "kafka_error",
		[STATUS_TIMEOUT] = "timeout",
		[STATUS_UNAVAILABLE] = "unavailable",
		[STATUS_CORRUPT] = "corrupt",
		[STATUS_INTERNAL] = "internal",
	};

	if ((unsigned)s >= STATUS__COUNT)
		return "unknown";
	return names[s];
}
