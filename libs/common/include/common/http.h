/* http.h - the REST server of every service: libmicrohttpd 0.9.75 (internal thread pool,
 * epoll) plus a small router, JSON request/response helpers, a body-size limit, request
 * ids, an access log, per-request metrics and the built-in /livez, /readyz and /metrics.
 *
 * Lifecycle: http_server_new() -> http_server_route()/_set_before()/_add_ready_check()
 * (configuration; not thread-safe, only before start) -> http_server_start() ->
 * http_server_stop() -> http_server_free().
 *
 * Threads: handlers, the before hook and ready checks run on any of the server's MHD
 * threads, concurrently with each other, so whatever user data they share must be
 * immutable or locked. A struct http_req belongs to the one thread running its handler
 * and is valid only during the handler call; never keep it. The route table is immutable
 * once the server is started.
 *
 * Replies: a handler (or the before hook) calls exactly one http_reply_*() function; a
 * handler that returns without replying gets a 500. Every response carries
 * X-Request-Id and Content-Type. Error bodies look like
 * {"error":{"code":"not_found","message":"...","request_id":"..."}}.
 */
#ifndef COMMON_HTTP_H
#define COMMON_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/metrics.h"

/* Route flags. Bits from HTTP_ROUTE_USER_SHIFT upward are free for the application (e.g.
 * a required-role mask read by the before hook through http_req_route_flags()). */
#define HTTP_ROUTE_PUBLIC (1u << 0) /* the before hook is not called (health, login) */
#define HTTP_ROUTE_QUIET (1u << 1)  /* access log at debug level (probes, scrapes) */
#define HTTP_ROUTE_USER_SHIFT 16

#define HTTP_MAX_PARAMS 8 /* path parameters per pattern */
#define HTTP_MAX_SEGMENTS 16

#define HTTP_DEFAULT_MAX_BODY ((size_t)1 << 20)
#define HTTP_CT_JSON "application/json"
#define HTTP_CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct http_server;
struct http_req;

/* Settings of http_server_new(); zero means the default. Copied by http_server_new(). */
struct http_config {
	const char *bind_addr;   /* IPv4 or IPv6 literal; NULL = "127.0.0.1" */
	uint16_t port;           /* 0 = an ephemeral port, see http_server_port() */
	unsigned threads;        /* MHD thread pool size; 0 = 4 */
	size_t max_body;         /* request body limit in bytes (413 beyond); 0 = 1 MiB */
	unsigned conn_timeout_s; /* idle connection timeout; 0 = 30 */
	unsigned drain_ms;       /* http_server_stop() waits this long for in-flight; 0 = 5000 */
	bool trust_proxy;        /* take X-Real-IP as the remote address when the peer is a
	                          * loopback address (nginx in front) */
	struct metrics *metrics; /* borrowed registry for http_* metrics and /metrics; NULL =
	                          * the server creates and owns one (http_server_metrics()) */
};

/** @brief A route handler. Must reply with one http_reply_*() call before returning.
 *  req is valid only during the call. */
typedef void (*http_handler_fn)(struct http_req *req, void *ud);

/** @brief The before hook, called after routing and before the handler of every route
 *  without HTTP_ROUTE_PUBLIC (the place for authentication and authorisation).
 *  @returns 0 to let the request through; non-zero to stop it, after replying (e.g.
 *  401/403/404 through http_reply_error()). If it stops without replying the client gets
 *  403. */
typedef int (*http_before_fn)(struct http_req *req, void *ud);

/** @brief A readiness check run by GET /readyz. Must be quick and thread-safe.
 *  @returns STATUS_OK when the dependency answers; anything else marks the service not
 *  ready (the message in *e is logged when the check flips, never sent to the client). */
typedef enum status (*http_ready_fn)(void *ud, struct err *e);

/** @brief Create a server (not yet listening) with the built-in routes /livez, /readyz
 *  and /metrics, and the http_requests_total / http_request_duration_seconds metrics.
 *  @param cfg copied; may be NULL for all defaults.
 *  @returns a new server (free with http_server_free()) or NULL with STATUS_INVALID in *e
 *  (bad bind address, or the metric names already exist in cfg->metrics). */
struct http_server *http_server_new(const struct http_config *cfg, struct err *e);

/** @brief Register a route. Only before http_server_start().
 *  @param method "GET", "POST", ... (copied). A GET route also answers HEAD.
 *  @param pattern "/api/v1/jobs/{id}/runs/{run}" (copied): literal segments and whole
 *  segments "{name}" that match any non-empty segment; a literal beats a parameter at
 *  the same position. At most HTTP_MAX_SEGMENTS segments, HTTP_MAX_PARAMS parameters.
 *  @param ud borrowed; passed to fn; must outlive the server.
 *  @param flags HTTP_ROUTE_* plus application bits.
 *  @returns STATUS_OK; STATUS_INVALID (bad pattern or method, server started) or
 *  STATUS_CONFLICT (same method and pattern shape registered) in *e. */
MUST_CHECK enum status http_server_route(struct http_server *srv, const char *method,
                                         const char *pattern, http_handler_fn fn, void *ud,
                                         unsigned flags, struct err *e);

/** @brief Install the before hook (replacing any previous one). Only before start.
 *  ud is borrowed and must outlive the server. */
void http_server_set_before(struct http_server *srv, http_before_fn fn, void *ud);

/** @brief Add a readiness check shown as checks.<name> by /readyz. Only before start.
 *  name is copied; ud is borrowed and must outlive the server. */
void http_server_add_ready_check(struct http_server *srv, const char *name, http_ready_fn fn,
                                 void *ud);

/** @brief The registry the server records into and /metrics renders. Borrowed: valid until
 *  http_server_free() (or owned by the caller if it passed cfg->metrics). Thread-safe. */
struct metrics *http_server_metrics(struct http_server *srv);

/** @brief Bind and start serving.
 *  @returns STATUS_OK, STATUS_INVALID if already started, or STATUS_IO (bind failed, port
 *  in use) in *e. */
MUST_CHECK enum status http_server_start(struct http_server *srv, struct err *e);

/** @brief The port the server listens on (the real one when cfg.port was 0); 0 if not
 *  started. */
uint16_t http_server_port(const struct http_server *srv);

/** @brief Graceful stop: stop accepting (MHD_quiesce_daemon), wait up to cfg.drain_ms for
 *  in-flight requests to be answered, then MHD_stop_daemon and close the listen socket.
 *  Idempotent; a no-op on a server that was never started. Call from one thread, not from
 *  a handler. */
void http_server_stop(struct http_server *srv);

/** @brief Stop (if running) and free the server, its routes and its own registry.
 *  Accepts NULL. */
void http_server_free(struct http_server *srv);

/* ---- request accessors: all borrowed, valid during the handler call only ---- */

/** @brief Request method as sent ("GET"). */
const char *http_req_method(const struct http_req *req);
/** @brief Request path, percent-decoded, without the query string. */
const char *http_req_path(const struct http_req *req);
/** @brief The matched route pattern ("/api/v1/jobs/{id}"), or NULL when none matched. */
const char *http_req_route(const struct http_req *req);
/** @brief The flags the matched route was registered with (0 when none matched). */
unsigned http_req_route_flags(const struct http_req *req);
/** @brief Path parameter by name ("id" for "{id}"), or NULL if the route has none. */
const char *http_req_param(const struct http_req *req, const char *name);
/** @brief Query parameter (decoded) by name, or NULL. An empty "?a" gives NULL. */
const char *http_req_query(const struct http_req *req, const char *name);
/** @brief Request header by name (case-insensitive), or NULL. */
const char *http_req_header(const struct http_req *req, const char *name);
/** @brief The request body (not NUL-terminated, *len may be 0 and the pointer NULL). */
const void *http_req_body(const struct http_req *req, size_t *len);
/** @brief The request id: the client's X-Request-Id if it matches [A-Za-z0-9._-]{1,64},
 *  else 32 random hex digits. Also sent back as X-Request-Id. */
const char *http_req_id(const struct http_req *req);
/** @brief The client's address as a numeric string ("127.0.0.1", "::1"). */
const char *http_req_remote(const struct http_req *req);

/** @brief Parse the body as a JSON object.
 *  @param root receives a new reference (caller json_decref()s) on success.
 *  @returns STATUS_OK, or STATUS_INVALID with a client-facing reason (empty body, not
 *  UTF-8, invalid JSON with line/column, duplicate keys, not an object) in *e, ready for
 *  http_reply_status() (400). */
MUST_CHECK enum status http_req_json(struct http_req *req, json_t **root, struct err *e);

/** @brief Attach per-request data (e.g. the authenticated principal set by the before
 *  hook). free_fn (may be NULL) is called on ctx when the request ends or when replaced. */
void http_req_set_ctx(struct http_req *req, void *ctx, void (*free_fn)(void *));
/** @brief The data attached with http_req_set_ctx(), or NULL. Borrowed. */
void *http_req_ctx(const struct http_req *req);

/* ---- replies: exactly one per request ---- */

/** @brief Add a response header (copied), e.g. Location or WWW-Authenticate. Call before
 *  the http_reply_*() call. Content-Type and X-Request-Id are set by the server. */
void http_reply_header(struct http_req *req, const char *name, const char *value);

/** @brief Reply with status and body serialised compactly as application/json.
 *  Takes ownership of body (also on failure); NULL body gives a 500. */
void http_reply_json(struct http_req *req, unsigned status, json_t *body);

/** @brief Reply with {"error":{"code":code,"message":<fmt>,"request_id":...}}. The message
 *  is sent to the client as is: never put internal details in it. */
void http_reply_error(struct http_req *req, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/** @brief Reply with the HTTP status mapped from st (http_status_for()). For 4xx the
 *  message of e (may be NULL) is sent; for 5xx a generic message is sent and the real one
 *  is logged at error level with the request id. */
void http_reply_status(struct http_req *req, enum status st, const struct err *e);

/** @brief Reply with raw bytes (copied) and the given content type (copied), e.g. CSV or
 *  HTTP_CT_METRICS. data may be NULL when len is 0. */
void http_reply_raw(struct http_req *req, unsigned status, const char *content_type,
                    const void *data, size_t len);

/** @brief Like http_reply_raw() but takes the buffer's memory (b is empty afterwards). */
void http_reply_buf(struct http_req *req, unsigned status, const char *content_type, struct buf *b);

/** @brief The one status -> HTTP table: OK 200, INVALID 400, UNAUTHORIZED 401,
 *  FORBIDDEN 403, NOT_FOUND 404, CONFLICT 409, TOO_LARGE 413, UNAVAILABLE 503,
 *  TIMEOUT 504, everything else 500. */
unsigned http_status_for(enum status st);

#endif
