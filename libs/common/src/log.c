#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Process-wide logger settings: written once by log_init() before threads start. */
static char service_name[64] = "cairn";
static enum log_level min_level = LOGL_INFO;
static int out_fd = 1;

static const char *const level_names[] = { "debug", "info", "warn", "error", "fatal" };

void log_init(const char *service, enum log_level min)
{
	snprintf(service_name, sizeof(service_name), "%s", service ? service : "cairn");
	min_level = min;
}

void log_set_fd(int fd)
{
	out_fd = fd;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOGL_ERROR; i++) {
		if (s && strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

size_t log_json_escape(char *out, size_t cap, const char *s)
{
	size_t n = 0;

	if (cap == 0)
		return 0;
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[8];
		const char *rep = NULL;
		size_t rl;

		if (c == '"')
			rep = "\\\"";
		else if (c == '\\')
			rep = "\\\\";
		else if (c == '\n')
			rep = "\\n";
		else if (c == '\r')
			rep = "\\r";
		else if (c == '\t')
			rep = "\\t";
		else if (c < 0x20) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", c);
			rep = tmp;
		}
		if (rep == NULL) {
			tmp[0] = (char)c;
			tmp[1] = '\0';
			rep = tmp;
		}
		rl = strlen(rep);
		if (n + rl >= cap)
			break;
		memcpy(out + n, rep, rl);
		n += rl;
	}
	out[n] = '\0';
	return n;
}

static size_t add_field(char *line, size_t n, size_t cap, const char *key, const char *val)
{
	int w;

	if (val == NULL || n >= cap)
		return n;
	w = snprintf(line + n, cap - n, ",\"%s\":\"", key);
	if (w < 0 || (size_t)w >= cap - n)
		return n;
	n += (size_t)w;
	n += log_json_escape(line + n, cap - n, val);
	if (n + 1 < cap)
		line[n++] = '"';
	return n;
}

void log_vwrite(enum log_level lvl, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
	char msg[2048];
	char line[4096];
	char ts[40];
	struct timespec now;
	struct tm tm;
	size_t n;
	int w;

	if (lvl < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(msg, sizeof(msg), fmt, ap);

	w = snprintf(line, sizeof(line),
	             "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"service\":\"%s\"", ts,
	             now.tv_nsec / 1000000, level_names[lvl], service_name);
	n = (w > 0 && (size_t)w < sizeof(line)) ? (size_t)w : 0;
	n = add_field(line, n, sizeof(line) - 2, "msg", msg);
	if (ctx) {
		n = add_field(line, n, sizeof(line) - 2, "request_id", ctx->request_id);
		n = add_field(line, n, sizeof(line) - 2, "event_id", ctx->event_id);
		n = add_field(line, n, sizeof(line) - 2, "tenant_id", ctx->tenant_id);
		n = add_field(line, n, sizeof(line) - 2, "topic", ctx->topic);
		if (ctx->topic && ctx->partition >= 0 && n < sizeof(line) - 2) {
			w = snprintf(line + n, sizeof(line) - 2 - n,
			             ",\"partition\":%d,\"offset\":%lld", ctx->partition,
			             ctx->offset);
			if (w > 0 && (size_t)w < sizeof(line) - 2 - n)
				n += (size_t)w;
		}
	}
	line[n++] = '}';
	line[n++] = '\n';
	/* One write(2) per line keeps lines whole across threads. */
	if (write(out_fd, line, n) < 0)
		return;
}

void log_write(enum log_level lvl, const struct log_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(lvl, ctx, fmt, ap);
	va_end(ap);
}
