#include "common/http.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/jsonh.h"
#include "common/log.h"
#include "common/xalloc.h"

#define ROUTE_UNMATCHED "unmatched"

struct route {
	char *method;
	char *pattern;
	char *segs[HTTP_MAX_SEGMENTS]; /* literal text, or the parameter name */
	unsigned parammask;            /* bit i set: segs[i] is a parameter */
	size_t nsegs;
	http_handler_fn fn;
	void *ud;
	unsigned flags;
};

struct ready_check {
	char *name;
	http_ready_fn fn;
	void *ud;
	atomic_int last; /* -1 never run, 0 failing, 1 ok: log only on flips */
};

struct http_server {
	char *bind_addr;
	uint16_t port_cfg;
	unsigned threads;
	size_t max_body;
	unsigned conn_timeout_s;
	unsigned drain_ms;
	bool trust_proxy;

	/* Configuration: written before start, read-only while MHD runs. */
	struct route *routes;
	size_t nroutes;
	struct ready_check *checks;
	size_t nchecks;
	http_before_fn before;
	void *before_ud;

	struct metrics *metrics;
	bool own_metrics;
	struct metrics_counter *m_requests;
	struct metrics_histogram *m_duration;

	struct MHD_Daemon *mhd;
	uint16_t port;
	atomic_long inflight; /* requests begun and not yet completed */
};

struct hdr {
	char *name;
	char *value;
};

struct http_req {
	struct http_server *srv;
	struct MHD_Connection *conn;
	char *method;
	char *path;
	struct timespec start;
	char id[65];
	char remote[INET6_ADDRSTRLEN];

	/* routing */
	const struct route *route;
	bool path_known; /* some route matches the path (405 rather than 404) */
	char *segbuf;    /* split copy of path; params point into it */
	const char *pnames[HTTP_MAX_PARAMS];
	const char *pvals[HTTP_MAX_PARAMS];
	size_t nparams;

	/* body */
	struct buf body;
	bool too_large;

	/* response */
	bool replied;
	bool queued;
	unsigned status;
	char *ctype;
	struct buf out;
	struct hdr *hdrs;
	size_t nhdrs;

	void *ctx;
	void (*ctx_free)(void *);
};

/* ---------------------------------------------------------------- status table */

unsigned http_status_for(enum status st)
{
	switch (st) {
	case STATUS_OK:
		return 200;
	case STATUS_INVALID:
		return 400;
	case STATUS_UNAUTHORIZED:
		return 401;
	case STATUS_FORBIDDEN:
		return 403;
	case STATUS_NOT_FOUND:
		return 404;
	case STATUS_CONFLICT:
		return 409;
	case STATUS_TOO_LARGE:
		return 413;
	case STATUS_UNAVAILABLE:
		return 503;
	case STATUS_TIMEOUT:
		return 504;
	default:
		return 500;
	}
}

/* ---------------------------------------------------------------- helpers */

static double elapsed_s(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static bool request_id_sane(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return false;
	for (; s[n]; n++) {
		char c = s[n];

		if (n >= 64)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return n > 0;
}

static void request_id_generate(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[16];
	struct timespec ts;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		/* Never expected on Linux >= 3.17; ids need to be unique, not secret. */
		clock_gettime(CLOCK_REALTIME, &ts);
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)(((uint64_t)ts.tv_nsec * 2654435761u +
			                          (uint64_t)(uintptr_t)out) >>
			                         (i % 8 * 8));
	}
	for (size_t i = 0; i < sizeof(rnd); i++) {
		out[2 * i] = hex[rnd[i] >> 4];
		out[2 * i + 1] = hex[rnd[i] & 15];
	}
	out[32] = '\0';
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

static void remote_address(struct http_req *req)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	const char *real;
	unsigned char tmp[sizeof(struct in6_addr)];

	snprintf(req->remote, sizeof(req->remote), "unknown");
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		          req->remote, sizeof(req->remote));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          req->remote, sizeof(req->remote));
	if (!req->srv->trust_proxy || !is_loopback(sa))
		return;
	real = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Real-IP");
	if (real && strlen(real) < sizeof(req->remote) &&
	    (inet_pton(AF_INET, real, tmp) == 1 || inet_pton(AF_INET6, real, tmp) == 1))
		snprintf(req->remote, sizeof(req->remote), "%s", real);
}

static const char *method_label(const char *m)
{
	static const char *const known[] = { "GET",   "HEAD",   "POST",   "PUT",
		                             "PATCH", "DELETE", "OPTIONS" };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (strcmp(m, known[i]) == 0)
			return known[i];
	}
	return "OTHER";
}

/* Replace bytes that are not valid UTF-8 so jansson accepts the string. */
static void utf8_scrub(char *s)
{
	size_t n = strlen(s);

	if (jsonh_utf8_valid(s, n))
		return;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] >= 0x80)
			s[i] = '?';
	}
}

/* ---------------------------------------------------------------- routing */

/* Split "/a/b/c" (s points after the leading '/') in place. @returns the segment count,
 * or HTTP_MAX_SEGMENTS + 1 when there are too many. "/" has zero segments. */
static size_t split_path(char *s, char **segs)
{
	size_t n = 0;

	if (*s == '\0')
		return 0;
	for (;;) {
		char *slash = strchr(s, '/');

		if (n == HTTP_MAX_SEGMENTS)
			return HTTP_MAX_SEGMENTS + 1;
		segs[n++] = s;
		if (slash == NULL)
			break;
		*slash = '\0';
		s = slash + 1;
	}
	return n;
}

static bool method_matches(const struct route *r, const char *m)
{
	return strcmp(r->method, m) == 0 ||
	       (strcmp(m, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

/* @returns true when r matches; *score ranks literal segments (earlier ones first). */
static bool route_matches(const struct route *r, char *const *segs, size_t n, unsigned *score)
{
	if (r->nsegs != n)
		return false;
	*score = 0;
	for (size_t i = 0; i < n; i++) {
		if (r->parammask & (1u << i)) {
			if (segs[i][0] == '\0')
				return false;
		} else {
			if (strcmp(r->segs[i], segs[i]) != 0)
				return false;
			*score |= 1u << (31 - i);
		}
	}
	return true;
}

static void route_lookup(struct http_req *req)
{
	const struct http_server *srv = req->srv;
	char *segs[HTTP_MAX_SEGMENTS];
	const struct route *best = NULL;
	unsigned best_score = 0;
	size_t n;

	if (req->path[0] != '/')
		return;
	req->segbuf = xstrdup(req->path + 1);
	n = split_path(req->segbuf, segs);
	if (n > HTTP_MAX_SEGMENTS)
		return;
	for (size_t i = 0; i < srv->nroutes; i++) {
		const struct route *r = &srv->routes[i];
		unsigned score;

		if (!route_matches(r, segs, n, &score))
			continue;
		req->path_known = true;
		if (!method_matches(r, req->method))
			continue;
		if (best == NULL || score > best_score) {
			best = r;
			best_score = score;
		}
	}
	if (best == NULL)
		return;
	req->route = best;
	for (size_t i = 0; i < n; i++) {
		if (best->parammask & (1u << i)) {
			req->pnames[req->nparams] = best->segs[i];
			req->pvals[req->nparams] = segs[i];
			req->nparams++;
		}
	}
}

/* "GET, HEAD, POST": the methods of every route matching the request path. */
static char *allow_header(const struct http_req *req)
{
	struct buf b;
	char *segs[HTTP_MAX_SEGMENTS];
	char *copy = xstrdup(req->path + 1);
	size_t n = split_path(copy, segs);
	const char *seen[64];
	size_t nseen = 0;

	buf_init(&b);
	for (size_t i = 0; i < req->srv->nroutes && n <= HTTP_MAX_SEGMENTS; i++) {
		const struct route *r = &req->srv->routes[i];
		const char *ms[2] = { r->method, strcmp(r->method, "GET") == 0 ? "HEAD" : NULL };
		unsigned score;

		if (!route_matches(r, segs, n, &score))
			continue;
		for (size_t k = 0; k < 2 && ms[k]; k++) {
			size_t j;

			for (j = 0; j < nseen; j++) {
				if (strcmp(seen[j], ms[k]) == 0)
					break;
			}
			if (j < nseen || nseen == sizeof(seen) / sizeof(seen[0]))
				continue;
			seen[nseen++] = ms[k];
			buf_printf(&b, "%s%s", b.len ? ", " : "", ms[k]);
		}
	}
	free(copy);
	return buf_take(&b);
}

/* ---------------------------------------------------------------- request accessors */

const char *http_req_method(const struct http_req *req)
{
	return req->method;
}

const char *http_req_path(const struct http_req *req)
{
	return req->path;
}

const char *http_req_route(const struct http_req *req)
{
	return req->route ? req->route->pattern : NULL;
}

unsigned http_req_route_flags(const struct http_req *req)
{
	return req->route ? req->route->flags : 0;
}

const char *http_req_param(const struct http_req *req, const char *name)
{
	for (size_t i = 0; i < req->nparams; i++) {
		if (strcmp(req->pnames[i], name) == 0)
			return req->pvals[i];
	}
	return NULL;
}

const char *http_req_query(const struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_header(const struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const void *http_req_body(const struct http_req *req, size_t *len)
{
	*len = req->body.len;
	return req->body.data;
}

const char *http_req_id(const struct http_req *req)
{
	return req->id;
}

const char *http_req_remote(const struct http_req *req)
{
	return req->remote;
}

enum status http_req_json(struct http_req *req, json_t **root, struct err *e)
{
	json_error_t jerr;
	json_t *j;

	if (req->body.len == 0)
		return err_set(e, STATUS_INVALID, "request body is empty");
	if (!jsonh_utf8_valid(req->body.data, req->body.len))
		return err_set(e, STATUS_INVALID, "request body is not valid UTF-8");
	j = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return err_set(e, STATUS_INVALID, "invalid JSON at line %d, column %d: %s",
		               jerr.line, jerr.column, jerr.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, STATUS_INVALID, "request body must be a JSON object");
	}
	*root = j;
	return STATUS_OK;
}

void http_req_set_ctx(struct http_req *req, void *ctx, void (*free_fn)(void *))
{
	if (req->ctx_free && req->ctx != ctx)
		req->ctx_free(req->ctx);
	req->ctx = ctx;
	req->ctx_free = free_fn;
}

void *http_req_ctx(const struct http_req *req)
{
	return req->ctx;
}

/* ---------------------------------------------------------------- replies */

void http_reply_header(struct http_req *req, const char *name, const char *value)
{
	req->hdrs = xrealloc(req->hdrs, (req->nhdrs + 1) * sizeof(*req->hdrs));
	req->hdrs[req->nhdrs].name = xstrdup(name);
	req->hdrs[req->nhdrs].value = xstrdup(value);
	req->nhdrs++;
}

/* Claims the reply slot. @returns false (and logs) when the request was answered already. */
static bool reply_begin(struct http_req *req, unsigned status, const char *ctype)
{
	if (NEVER(req->replied)) {
		struct log_ctx lc = { .request_id = req->id, .partition = -1 };

		log_ctx_warn(&lc, "http: second reply (%u) to %s %s ignored", status, req->method,
		             req->path);
		return false;
	}
	req->replied = true;
	req->status = status;
	req->ctype = xstrdup(ctype ? ctype : "application/octet-stream");
	return true;
}

void http_reply_raw(struct http_req *req, unsigned status, const char *content_type,
                    const void *data, size_t len)
{
	if (!reply_begin(req, status, content_type))
		return;
	if (len)
		buf_append(&req->out, data, len);
}

void http_reply_buf(struct http_req *req, unsigned status, const char *content_type, struct buf *b)
{
	if (!reply_begin(req, status, content_type)) {
		buf_cleanup(b);
		return;
	}
	buf_cleanup(&req->out);
	req->out = *b;
	buf_init(b);
}

static int dump_cb(const char *p, size_t n, void *ud)
{
	buf_append(ud, p, n);
	return 0;
}

void http_reply_json(struct http_req *req, unsigned status, json_t *body)
{
	struct buf b;

	buf_init(&b);
	if (body == NULL ||
	    json_dump_callback(body, dump_cb, &b, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
		struct log_ctx lc = { .request_id = req->id, .partition = -1 };

		json_decref(body);
		buf_cleanup(&b);
		log_ctx_error(&lc, "http: %s %s: JSON reply body could not be built", req->method,
		              req->path);
		http_reply_error(req, 500, "internal", "internal error");
		return;
	}
	json_decref(body);
	http_reply_buf(req, status, HTTP_CT_JSON, &b);
}

void http_reply_error(struct http_req *req, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *inner;
	json_t *body;
	struct buf b;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_scrub(msg);
	inner = json_object();
	if (inner == NULL)
		goto fallback;
	if (json_object_set_new(inner, "code", json_string(code ? code : "error")) != 0 ||
	    json_object_set_new(inner, "message", json_string(msg)) != 0 ||
	    json_object_set_new(inner, "request_id", json_string(req->id)) != 0) {
		json_decref(inner);
		goto fallback;
	}
	body = json_pack("{s:o}", "error", inner); /* "o" steals inner, also on failure */
	if (body == NULL)
		goto fallback;
	buf_init(&b);
	if (json_dump_callback(body, dump_cb, &b, JSON_COMPACT) != 0) {
		buf_cleanup(&b);
		json_decref(body);
		goto fallback;
	}
	json_decref(body);
	http_reply_buf(req, status, HTTP_CT_JSON, &b);
	return;

fallback:
	buf_init(&b);
	buf_printf(&b,
	           "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\","
	           "\"request_id\":\"%s\"}}",
	           req->id);
	http_reply_buf(req, 500, HTTP_CT_JSON, &b);
}

void http_reply_status(struct http_req *req, enum status st, const struct err *e)
{
	unsigned code = http_status_for(st);
	const char *msg = e && e->msg[0] ? e->msg : NULL;

	if (st == STATUS_OK) {
		http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	if (code >= 500) {
		struct log_ctx lc = { .request_id = req->id, .partition = -1 };

		/* The boundary logs once; the client gets no internal detail. */
		log_ctx_error(&lc, "http: %s %s failed: %s: %s", req->method, req->path,
		              status_str(st), msg ? msg : "(no detail)");
		if (code == 503)
			http_reply_error(req, code, "unavailable",
			                 "service temporarily unavailable");
		else if (code == 504)
			http_reply_error(req, code, "timeout", "the operation timed out");
		else
			http_reply_error(req, code, "internal", "internal error");
		return;
	}
	http_reply_error(req, code, status_str(st), "%s", msg ? msg : status_str(st));
}

/* ---------------------------------------------------------------- built-in routes */

static void builtin_livez(struct http_req *req, void *ud)
{
	http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void builtin_readyz(struct http_req *req, void *ud)
{
	struct http_server *srv = ud;
	json_t *checks = json_object();
	bool ready = true;

	for (size_t i = 0; i < srv->nchecks; i++) {
		struct ready_check *c = &srv->checks[i];
		struct err e;
		bool ok;
		int was;

		err_clear(&e);
		ok = c->fn(c->ud, &e) == STATUS_OK;
		ready = ready && ok;
		json_object_set_new(checks, c->name, json_string(ok ? "ok" : "fail"));
		was = atomic_exchange(&c->last, ok ? 1 : 0);
		if (was != (ok ? 1 : 0)) {
			if (ok)
				log_info("readiness check %s: ok", c->name);
			else
				log_warn("readiness check %s: failing: %s", c->name,
				         e.msg[0] ? e.msg : status_str(e.code));
		}
	}
	http_reply_json(
	        req, ready ? 200 : 503,
	        json_pack("{s:s,s:o}", "status", ready ? "ready" : "not_ready", "checks", checks));
}

static void builtin_metrics(struct http_req *req, void *ud)
{
	struct http_server *srv = ud;
	struct buf b;

	buf_init(&b);
	metrics_render(srv->metrics, &b);
	http_reply_buf(req, 200, HTTP_CT_METRICS, &b);
}

/* ---------------------------------------------------------------- MHD glue */

static void req_free(struct http_req *req)
{
	if (req->ctx_free)
		req->ctx_free(req->ctx);
	for (size_t i = 0; i < req->nhdrs; i++) {
		free(req->hdrs[i].name);
		free(req->hdrs[i].value);
	}
	free(req->hdrs);
	free(req->ctype);
	buf_cleanup(&req->out);
	buf_cleanup(&req->body);
	free(req->segbuf);
	free(req->path);
	free(req->method);
	free(req);
}

static struct http_req *req_new(struct http_server *srv, struct MHD_Connection *conn,
                                const char *url, const char *method)
{
	struct http_req *req = xcalloc(1, sizeof(*req));
	const char *rid;

	clock_gettime(CLOCK_MONOTONIC, &req->start);
	req->srv = srv;
	req->conn = conn;
	req->method = xstrdup(method);
	req->path = xstrdup(url);
	buf_init(&req->body);
	buf_init(&req->out);
	rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
	if (request_id_sane(rid))
		snprintf(req->id, sizeof(req->id), "%s", rid);
	else
		request_id_generate(req->id);
	remote_address(req);
	route_lookup(req);
	atomic_fetch_add(&srv->inflight, 1);
	return req;
}

/* Queue the reply, record metrics, write the access log line. */
static enum MHD_Result finish(struct http_req *req)
{
	struct http_server *srv = req->srv;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *route = req->route ? req->route->pattern : ROUTE_UNMATCHED;
	const char *mlabel = method_label(req->method);
	char code[8];
	double secs;
	struct log_ctx lc = { .request_id = req->id, .partition = -1 };

	if (!req->replied) {
		log_ctx_error(&lc, "http: handler for %s %s returned without replying", req->method,
		              route);
		http_reply_error(req, 500, "internal", "internal error");
	}
	resp = MHD_create_response_from_buffer(req->out.len, req->out.data, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL)
		return MHD_NO;
	buf_init(&req->out); /* MHD frees the memory now */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->ctype);
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	for (size_t i = 0; i < req->nhdrs; i++)
		MHD_add_response_header(resp, req->hdrs[i].name, req->hdrs[i].value);
	ret = MHD_queue_response(req->conn, req->status, resp);
	MHD_destroy_response(resp);
	req->queued = true;

	secs = elapsed_s(&req->start);
	snprintf(code, sizeof(code), "%u", req->status);
	metrics_counter_inc(srv->m_requests, (const char *const[]){ route, mlabel, code });
	metrics_histogram_observe(srv->m_duration, (const char *const[]){ route, mlabel }, secs);
	log_write(req->route && (req->route->flags & HTTP_ROUTE_QUIET) ? LOGL_DEBUG : LOGL_INFO,
	          &lc, "http %s %s route=%s status=%u duration_ms=%.3f remote=%s", req->method,
	          req->path, route, req->status, secs * 1000.0, req->remote);
	return ret;
}

static void dispatch(struct http_req *req)
{
	struct http_server *srv = req->srv;
	const struct route *r = req->route;

	if (r == NULL) {
		if (req->path_known) {
			char *allow = allow_header(req);

			http_reply_header(req, "Allow", allow);
			http_reply_error(req, 405, "method_not_allowed",
			                 "method %s is not allowed here (allowed: %s)",
			                 method_label(req->method), allow);
			free(allow);
		} else {
			http_reply_error(req, 404, "not_found", "no such resource");
		}
		return;
	}
	if (req->too_large) {
		http_reply_error(req, 413, "too_large", "request body exceeds %zu bytes",
		                 srv->max_body);
		return;
	}
	if (!(r->flags & HTTP_ROUTE_PUBLIC) && srv->before &&
	    srv->before(req, srv->before_ud) != 0) {
		if (!req->replied)
			http_reply_error(req, 403, "forbidden", "forbidden");
		return;
	}
	r->fn(req, r->ud);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_req *req = *con_cls;

	if (req == NULL) {
		const char *cl;

		req = req_new(srv, conn, url, method);
		*con_cls = req;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > srv->max_body) {
			/* Refuse before reading (and before 100-continue); MHD then closes the
			 * connection, which is what an oversized upload deserves. */
			req->too_large = true;
			http_reply_error(req, 413, "too_large", "request body exceeds %zu bytes",
			                 srv->max_body);
			return finish(req);
		}
		/* Answer on a later call: replying now would close the connection. */
		return MHD_YES;
	}
	if (req->queued) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		if (!req->too_large && n > srv->max_body - req->body.len) {
			req->too_large = true;
			buf_cleanup(&req->body);
		}
		if (!req->too_large)
			buf_append(&req->body, upload_data, n);
		*upload_data_size = 0;
		return MHD_YES;
	}
	dispatch(req);
	return finish(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct http_req *req = *con_cls;

	if (req == NULL)
		return;
	*con_cls = NULL;
	req_free(req);
	atomic_fetch_sub(&srv->inflight, 1);
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	log_vwrite(LOGL_WARN, NULL, fmt, ap);
}

/* ---------------------------------------------------------------- server */

static void route_free(struct route *r)
{
	for (size_t i = 0; i < r->nsegs; i++)
		free(r->segs[i]);
	free(r->method);
	free(r->pattern);
}

static bool token_valid(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 15)
		return false;
	for (; *s; s++) {
		if (!(*s >= 'A' && *s <= 'Z'))
			return false;
	}
	return true;
}

static bool param_name_valid(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		      (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

enum status http_server_route(struct http_server *srv, const char *method, const char *pattern,
                              http_handler_fn fn, void *ud, unsigned flags, struct err *e)
{
	struct route r = { 0 };
	char *copy;
	char *segs[HTTP_MAX_SEGMENTS];
	size_t n, nparams = 0;
	enum status st = STATUS_OK;

	if (srv->mhd)
		return err_set(e, STATUS_INVALID, "routes must be added before the server starts");
	if (!token_valid(method) || fn == NULL)
		return err_set(e, STATUS_INVALID, "route: invalid method or handler");
	if (pattern == NULL || pattern[0] != '/')
		return err_set(e, STATUS_INVALID, "route pattern must start with '/'");
	copy = xstrdup(pattern + 1);
	n = split_path(copy, segs);
	if (n > HTTP_MAX_SEGMENTS) {
		st = err_set(e, STATUS_INVALID, "route %s: more than %d segments", pattern,
		             HTTP_MAX_SEGMENTS);
		goto out_free_copy;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(segs[i]);

		if (len == 0) {
			st = err_set(e, STATUS_INVALID, "route %s: empty segment", pattern);
			goto out_free_route;
		}
		if (segs[i][0] == '{' && segs[i][len - 1] == '}') {
			if (!param_name_valid(segs[i] + 1, len - 2) || nparams == HTTP_MAX_PARAMS) {
				st = err_set(e, STATUS_INVALID, "route %s: bad parameter '%s'",
				             pattern, segs[i]);
				goto out_free_route;
			}
			r.segs[r.nsegs++] = xstrndup(segs[i] + 1, len - 2);
			r.parammask |= 1u << i;
			nparams++;
		} else if (strchr(segs[i], '{') || strchr(segs[i], '}')) {
			st = err_set(e, STATUS_INVALID,
			             "route %s: braces must enclose a whole segment", pattern);
			goto out_free_route;
		} else {
			r.segs[r.nsegs++] = xstrdup(segs[i]);
		}
	}
	for (size_t i = 0; i < srv->nroutes; i++) {
		const struct route *o = &srv->routes[i];
		bool same = o->nsegs == r.nsegs && o->parammask == r.parammask &&
		            strcmp(o->method, method) == 0;

		for (size_t k = 0; same && k < r.nsegs; k++) {
			if (!(r.parammask & (1u << k)) && strcmp(o->segs[k], r.segs[k]) != 0)
				same = false;
		}
		if (same) {
			st = err_set(e, STATUS_CONFLICT, "route %s %s conflicts with %s", method,
			             pattern, o->pattern);
			goto out_free_route;
		}
	}
	r.method = xstrdup(method);
	r.pattern = xstrdup(pattern);
	r.fn = fn;
	r.ud = ud;
	r.flags = flags;
	srv->routes = xrealloc(srv->routes, (srv->nroutes + 1) * sizeof(*srv->routes));
	srv->routes[srv->nroutes++] = r;
	goto out_free_copy;

out_free_route:
	route_free(&r);
out_free_copy:
	free(copy);
	return st;
}

void http_server_set_before(struct http_server *srv, http_before_fn fn, void *ud)
{
	srv->before = fn;
	srv->before_ud = ud;
}

void http_server_add_ready_check(struct http_server *srv, const char *name, http_ready_fn fn,
                                 void *ud)
{
	struct ready_check *c;

	if (NEVER(srv->mhd != NULL))
		return;
	srv->checks = xrealloc(srv->checks, (srv->nchecks + 1) * sizeof(*srv->checks));
	c = &srv->checks[srv->nchecks++];
	c->name = xstrdup(name);
	c->fn = fn;
	c->ud = ud;
	atomic_init(&c->last, -1);
}

struct metrics *http_server_metrics(struct http_server *srv)
{
	return srv->metrics;
}

struct http_server *http_server_new(const struct http_config *cfg, struct err *e)
{
	static const struct http_config defaults = { 0 };
	struct http_server *srv;
	unsigned char tmp[sizeof(struct in6_addr)];
	const char *bind_addr;
	enum status st;

	if (cfg == NULL)
		cfg = &defaults;
	bind_addr = cfg->bind_addr ? cfg->bind_addr : "127.0.0.1";
	if (inet_pton(AF_INET, bind_addr, tmp) != 1 && inet_pton(AF_INET6, bind_addr, tmp) != 1) {
		err_set(e, STATUS_INVALID, "http: bind address '%s' is not an IP literal",
		        bind_addr);
		return NULL;
	}
	srv = xcalloc(1, sizeof(*srv));
	srv->bind_addr = xstrdup(bind_addr);
	srv->port_cfg = cfg->port;
	srv->threads = cfg->threads ? cfg->threads : 4;
	srv->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
	srv->conn_timeout_s = cfg->conn_timeout_s ? cfg->conn_timeout_s : 30;
	srv->drain_ms = cfg->drain_ms ? cfg->drain_ms : 5000;
	srv->trust_proxy = cfg->trust_proxy;
	atomic_init(&srv->inflight, 0);
	if (cfg->metrics) {
		srv->metrics = cfg->metrics;
	} else {
		srv->metrics = metrics_new();
		srv->own_metrics = true;
	}
	srv->m_requests = metrics_counter_new(srv->metrics, "http_requests_total",
	                                      "HTTP requests answered, by route pattern.",
	                                      "route,method,code", e);
	if (srv->m_requests == NULL)
		goto fail;
	srv->m_duration = metrics_histogram_new(
	        srv->metrics, "http_request_duration_seconds",
	        "Time from request headers to response queued, by route pattern.", "route,method",
	        (const double[]){ METRICS_BUCKETS_LATENCY }, METRICS_BUCKETS_LATENCY_N, e);
	if (srv->m_duration == NULL)
		goto fail;
	st = http_server_route(srv, "GET", "/livez", builtin_livez, srv,
	                       HTTP_ROUTE_PUBLIC | HTTP_ROUTE_QUIET, e);
	if (st == STATUS_OK)
		st = http_server_route(srv, "GET", "/readyz", builtin_readyz, srv,
		                       HTTP_ROUTE_PUBLIC | HTTP_ROUTE_QUIET, e);
	if (st == STATUS_OK)
		st = http_server_route(srv, "GET", "/metrics", builtin_metrics, srv,
		                       HTTP_ROUTE_PUBLIC | HTTP_ROUTE_QUIET, e);
	if (st != STATUS_OK)
		goto fail;
	return srv;

fail:
	http_server_free(srv);
	return NULL;
}

enum status http_server_start(struct http_server *srv, struct err *e)
{
	struct sockaddr_storage ss = { 0 };
	unsigned flags =
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;

	if (srv->mhd)
		return err_set(e, STATUS_INVALID, "http: server already started");
	if (inet_pton(AF_INET, srv->bind_addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(srv->port_cfg);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET6, srv->bind_addr, &in6->sin6_addr) != 1)
			return err_set(e, STATUS_INVALID, "http: bad bind address");
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(srv->port_cfg);
		flags |= MHD_USE_IPv6;
	}
	srv->mhd = MHD_start_daemon(
	        flags, srv->port_cfg, NULL, NULL, on_access, srv, MHD_OPTION_SOCK_ADDR,
	        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)srv->threads,
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)srv->conn_timeout_s,
	        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_EXTERNAL_LOGGER,
	        on_mhd_log, srv, MHD_OPTION_END);
	if (srv->mhd == NULL)
		return err_set(e, STATUS_IO, "http: cannot listen on %s port %u", srv->bind_addr,
		               (unsigned)srv->port_cfg);
	info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : srv->port_cfg;
	return STATUS_OK;
}

uint16_t http_server_port(const struct http_server *srv)
{
	return srv->mhd ? srv->port : 0;
}

void http_server_stop(struct http_server *srv)
{
	MHD_socket fd;
	struct timespec start;

	if (srv == NULL || srv->mhd == NULL)
		return;
	fd = MHD_quiesce_daemon(srv->mhd);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (atomic_load(&srv->inflight) > 0 && elapsed_s(&start) * 1000.0 < srv->drain_ms) {
		struct timespec nap = { 0, 5000000L };

		nanosleep(&nap, NULL);
	}
	MHD_stop_daemon(srv->mhd);
	srv->mhd = NULL;
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

void http_server_free(struct http_server *srv)
{
	if (srv == NULL)
		return;
	http_server_stop(srv);
	for (size_t i = 0; i < srv->nroutes; i++)
		route_free(&srv->routes[i]);
	free(srv->routes);
	for (size_t i = 0; i < srv->nchecks; i++)
		free(srv->checks[i].name);
	free(srv->checks);
	if (srv->own_metrics)
		metrics_free(srv->metrics);
	free(srv->bind_addr);
	free(srv);
}
