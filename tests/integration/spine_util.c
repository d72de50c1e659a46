#include "spine_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

const char *spine_require_env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL || v[0] == '\0') {
		fprintf(stderr,
		        "FAIL: %s is not set. The integration tests need a running stack "
		        "(scripts/stack up, then source its env file); they fail rather than "
		        "skip without one.\n",
		        name);
		exit(1);
	}
	return v;
}

long spine_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void spine_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

enum status spine_query_long(struct db_conn *dbc, const char *sql, long *out, struct err *e)
{
	PGresult *res;
	enum status st = db_query(dbc, sql, 0, NULL, &res, e);

	if (st != STATUS_OK)
		return st;
	if (PQntuples(res) != 1 || PQnfields(res) < 1) {
		PQclear(res);
		return err_set(e, STATUS_INTERNAL, "expected one row: %s", sql);
	}
	*out = PQgetisnull(res, 0, 0) ? 0 : strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return STATUS_OK;
}

void spine_die(const char *fmt, ...)
{
	va_list ap;

	fputs("FAIL: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void spine_check(bool cond, const char *fmt, ...)
{
	va_list ap;

	fputs(cond ? "ok: " : "FAIL: ", cond ? stdout : stderr);
	va_start(ap, fmt);
	vfprintf(cond ? stdout : stderr, fmt, ap);
	va_end(ap);
	fputc('\n', cond ? stdout : stderr);
	fflush(stdout);
	if (!cond)
		exit(1);
}
