/* log.h - JSON-lines logging on stdout: one compact object per line with ts, level,
 * service, msg, and where known request_id / event_id / tenant_id (STYLE.md 3.5).
 * Thread-safe: each line is written with a single write(2). Never log secrets. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOGL_DEBUG = 0, LOGL_INFO, LOGL_WARN, LOGL_ERROR, LOGL_FATAL };

/* Context fields added to a line; any member may be NULL. Borrowed for the call. */
struct log_ctx {
	const char *request_id;
	const char *event_id;
	const char *tenant_id;
	const char *topic; /* with partition/offset when >= 0 */
	int partition;
	long long offset;
};

/** @brief Set the service name written on every line (copied) and the minimum level.
 *  Call once from main before threads start. */
void log_init(const char *service, enum log_level min);

/** @brief Parse "debug|info|warn|error". @returns 0 and sets *out, or -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);

/** @brief Redirect output to fd (default 1). For tests. */
void log_set_fd(int fd);

void log_write(enum log_level lvl, const struct log_ctx *ctx, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void log_vwrite(enum log_level lvl, const struct log_ctx *ctx, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

#define log_debug(...) log_write(LOGL_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_write(LOGL_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_write(LOGL_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_write(LOGL_ERROR, NULL, __VA_ARGS__)
#define log_ctx_debug(ctx, ...) log_write(LOGL_DEBUG, (ctx), __VA_ARGS__)
#define log_ctx_info(ctx, ...) log_write(LOGL_INFO, (ctx), __VA_ARGS__)
#define log_ctx_warn(ctx, ...) log_write(LOGL_WARN, (ctx), __VA_ARGS__)
#define log_ctx_error(ctx, ...) log_write(LOGL_ERROR, (ctx), __VA_ARGS__)

/** @brief Append s to out as a JSON string body (no quotes), escaping as needed.
 *  Writes at most cap-1 bytes plus NUL. @returns bytes written (excluding NUL). */
size_t log_json_escape(char *out, size_t cap, const char *s);

#endif
