/* Unit tests for the http server: a real server on 127.0.0.1 (ephemeral port) driven with
 * libcurl. Routing, params, 404/405, body limit, JSON errors, request ids, health,
 * readiness, metrics, before hook, concurrency and graceful stop. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/buf.h"
#include "common/http.h"
#include "common/jsonh.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <cmocka.h>

struct fixture {
	struct http_server *srv;
	atomic_int db_ok; /* readiness check state */
	char logpath[64]; /* the server's log lines go here */
	int logfd;
	char base[64];
};

struct resp {
	long code;
	struct buf body;
	struct buf hdrs;
	json_t *json; /* parsed body when it is JSON */
};

/* ---------------------------------------------------------------- handlers */

static void h_job(struct http_req *req, void *ud)
{
	http_reply_json(req, 200,
	                json_pack("{s:s,s:s}", "id", http_req_param(req, "id"), "route",
	                          http_req_route(req)));
}

static void h_run(struct http_req *req, void *ud)
{
	http_reply_json(req, 200,
	                json_pack("{s:s,s:s,s:s*}", "id", http_req_param(req, "id"), "run",
	                          http_req_param(req, "run"), "nope", http_req_param(req, "nope")));
}

static void h_search(struct http_req *req, void *ud)
{
	http_reply_json(req, 200, json_pack("{s:b}", "search", 1));
}

static void h_create(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "name", "size", NULL };
	struct err e;
	json_t *root = NULL;
	const char *name = NULL;
	enum status st;

	st = http_req_json(req, &root, &e);
	if (st == STATUS_OK)
		st = jsonh_check_fields(root, allowed, &e);
	if (st == STATUS_OK)
		st = jsonh_get_str(root, "name", JSONH_REQUIRED | JSONH_NONEMPTY, 64, &name, &e);
	if (st != STATUS_OK) {
		json_decref(root);
		http_reply_status(req, st, &e);
		return;
	}
	http_reply_header(req, "Location", "/api/v1/jobs/1");
	http_reply_json(req, 201, json_pack("{s:s}", "name", name));
	json_decref(root);
}

static void h_echo(struct http_req *req, void *ud)
{
	size_t len;
	const void *body = http_req_body(req, &len);

	http_reply_raw(req, 200, "application/octet-stream", body, len);
}

static void h_query(struct http_req *req, void *ud)
{
	http_reply_json(req, 200,
	                json_pack("{s:s*,s:s*,s:s,s:s,s:s}", "q", http_req_query(req, "q"), "hdr",
	                          http_req_header(req, "x-test"), "method", http_req_method(req),
	                          "path", http_req_path(req), "remote", http_req_remote(req)));
}

static void h_fail(struct http_req *req, void *ud)
{
	struct err e;

	err_set(&e, STATUS_DB, "SQLSTATE 42P01 relation secret_table does not exist");
	http_reply_status(req, e.code, &e);
}

static void h_conflict(struct http_req *req, void *ud)
{
	struct err e;

	err_set(&e, STATUS_CONFLICT, "job name already used");
	http_reply_status(req, e.code, &e);
}

static void h_noreply(struct http_req *req, void *ud)
{
}

static void h_csv(struct http_req *req, void *ud)
{
	http_reply_header(req, "Content-Disposition", "attachment; filename=\"x.csv\"");
	http_reply_raw(req, 200, "text/csv", "a,b\n1,2\n", 8);
}

static void h_private(struct http_req *req, void *ud)
{
	http_reply_json(req, 200, json_pack("{s:s}", "user", (const char *)http_req_ctx(req)));
}

static int before(struct http_req *req, void *ud)
{
	const char *auth = http_req_header(req, "Authorization");

	if (auth == NULL) {
		http_reply_header(req, "WWW-Authenticate", "Bearer");
		http_reply_error(req, 401, "unauthorized", "missing bearer token");
		return 1;
	}
	if (strcmp(auth, "Bearer good") != 0)
		return 1; /* no reply: the server answers 403 */
	http_req_set_ctx(req, xstrdup("alice"), free);
	return 0;
}

static enum status check_db(void *ud, struct err *e)
{
	struct fixture *f = ud;

	if (atomic_load(&f->db_ok))
		return STATUS_OK;
	return err_set(e, STATUS_UNAVAILABLE, "connection refused");
}

static enum status check_kafka(void *ud, struct err *e)
{
	return STATUS_OK;
}

/* ---------------------------------------------------------------- client */

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	buf_append(ud, p, size * n);
	return size * n;
}

struct upload {
	size_t left;
};

static size_t feed(char *p, size_t size, size_t n, void *ud)
{
	struct upload *u = ud;
	size_t k = size * n < u->left ? size * n : u->left;

	memset(p, 'x', k);
	u->left -= k;
	return k;
}

static void resp_cleanup(struct resp *r)
{
	buf_cleanup(&r->body);
	buf_cleanup(&r->hdrs);
	json_decref(r->json);
	r->json = NULL;
}

/* Value of response header name (case-insensitive) copied to out, or "" if absent. */
static const char *header(const struct resp *r, const char *name, char *out, size_t cap)
{
	const char *p = r->hdrs.data;
	size_t n = strlen(name);

	out[0] = '\0';
	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (len > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1;

			while (*v == ' ')
				v++;
			snprintf(out, cap, "%.*s", (int)(len - (size_t)(v - p)), v);
			return out;
		}
		p = eol ? eol + 2 : p + len;
	}
	return out;
}

/* One request. upload_len > 0 with body == NULL streams that many bytes (chunked when
 * chunked is set). */
static void call(CURL *c, const char *base, const char *method, const char *path, const char *body,
                 size_t len, struct curl_slist *hdrs, struct resp *r)
{
	char url[512];
	struct upload up = { len };
	CURLcode cc;
	struct curl_slist *own = NULL;

	memset(r, 0, sizeof(*r));
	buf_init(&r->body);
	buf_init(&r->hdrs);
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->hdrs);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	} else if (len > 0) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
		curl_easy_setopt(c, CURLOPT_READDATA, &up);
		if (hdrs == NULL) {
			own = curl_slist_append(NULL, "Transfer-Encoding: chunked");
			hdrs = own;
		}
	}
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
	if (r->body.len)
		r->json = json_loadb(r->body.data, r->body.len, 0, NULL);
	curl_slist_free_all(own);
}

static const char *jstr(const struct resp *r, const char *path1, const char *path2)
{
	json_t *v = json_object_get(r->json, path1);

	if (path2)
		v = json_object_get(v, path2);
	return json_string_value(v);
}

/* ---------------------------------------------------------------- fixture */

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct http_config cfg = { .port = 0, .threads = 4, .trust_proxy = true };
	struct err e;
	enum status st = STATUS_OK;

	snprintf(f->logpath, sizeof(f->logpath), "/tmp/test_http_log.XXXXXX");
	f->logfd = mkstemp(f->logpath);
	assert_true(f->logfd >= 0);
	log_set_fd(f->logfd);
	log_init("test_http", LOGL_INFO);
	atomic_init(&f->db_ok, 0);
	f->srv = http_server_new(&cfg, &e);
	assert_non_null(f->srv);
#define ROUTE(m, p, fn, fl)                                                                        \
	if (st == STATUS_OK)                                                                       \
	st = http_server_route(f->srv, m, p, fn, f, fl, &e)
	ROUTE("GET", "/api/v1/jobs/{id}", h_job, HTTP_ROUTE_PUBLIC);
	ROUTE("GET", "/api/v1/jobs/search", h_search, HTTP_ROUTE_PUBLIC);
	ROUTE("GET", "/api/v1/jobs/{id}/runs/{run}", h_run, HTTP_ROUTE_PUBLIC);
	ROUTE("POST", "/api/v1/jobs", h_create, HTTP_ROUTE_PUBLIC);
	ROUTE("POST", "/echo", h_echo, HTTP_ROUTE_PUBLIC);
	ROUTE("GET", "/q", h_query, HTTP_ROUTE_PUBLIC);
	ROUTE("GET", "/fail", h_fail, HTTP_ROUTE_PUBLIC);
	ROUTE("GET", "/conflict", h_conflict, HTTP_ROUTE_PUBLIC);
	ROUTE("GET", "/noreply", h_noreply, HTTP_ROUTE_PUBLIC);
	ROUTE("GET", "/csv", h_csv, HTTP_ROUTE_PUBLIC);
	ROUTE("GET", "/private", h_private, 0);
#undef ROUTE
	assert_int_equal(st, STATUS_OK);
	http_server_set_before(f->srv, before, NULL);
	http_server_add_ready_check(f->srv, "db", check_db, f);
	http_server_add_ready_check(f->srv, "kafka", check_kafka, f);
	assert_int_equal(http_server_port(f->srv), 0);
	assert_int_equal(http_server_start(f->srv, &e), STATUS_OK);
	assert_int_not_equal(http_server_port(f->srv), 0);
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", http_server_port(f->srv));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	http_server_stop(f->srv);
	http_server_stop(f->srv); /* idempotent */
	http_server_free(f->srv);
	log_set_fd(1);
	close(f->logfd);
	unlink(f->logpath);
	free(f);
	return 0;
}

/* ---------------------------------------------------------------- tests */

static void test_routing_params(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	struct curl_slist *xh = curl_slist_append(NULL, "X-Test: yes");
	struct curl_slist *realip = curl_slist_append(NULL, "X-Real-IP: 2001:db8::7");
	struct curl_slist *junkip = curl_slist_append(NULL, "X-Real-IP: 10.0.0.1, 10.0.0.2");
	long nconn = -1;
	struct resp r;
	char h[128];

	call(c, f->base, "GET", "/api/v1/jobs/42", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(jstr(&r, "id", NULL), "42");
	assert_string_equal(jstr(&r, "route", NULL), "/api/v1/jobs/{id}");
	assert_string_equal(header(&r, "Content-Type", h, sizeof(h)), "application/json");
	resp_cleanup(&r);

	call(c, f->base, "GET", "/api/v1/jobs/search", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 200);
	/* answered on the second call, so the connection was kept alive and reused */
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nconn);
	assert_int_equal(nconn, 0);
	assert_true(json_is_true(json_object_get(r.json, "search")));
	resp_cleanup(&r);

	call(c, f->base, "GET", "/api/v1/jobs/j%2D1/runs/r7?x=1", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(jstr(&r, "id", NULL), "j-1");
	assert_string_equal(jstr(&r, "run", NULL), "r7");
	assert_null(json_object_get(r.json, "nope"));
	resp_cleanup(&r);

	call(c, f->base, "GET", "/q?q=hello%20world&empty", NULL, 0, xh, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(jstr(&r, "q", NULL), "hello world");
	assert_string_equal(jstr(&r, "hdr", NULL), "yes");
	assert_string_equal(jstr(&r, "method", NULL), "GET");
	assert_string_equal(jstr(&r, "path", NULL), "/q");
	assert_string_equal(jstr(&r, "remote", NULL), "127.0.0.1");
	resp_cleanup(&r);

	/* trust_proxy: X-Real-IP from a loopback peer (nginx) is the remote, if it parses */
	call(c, f->base, "GET", "/q", NULL, 0, realip, &r);
	assert_string_equal(jstr(&r, "remote", NULL), "2001:db8::7");
	resp_cleanup(&r);
	call(c, f->base, "GET", "/q", NULL, 0, junkip, &r);
	assert_string_equal(jstr(&r, "remote", NULL), "127.0.0.1");
	resp_cleanup(&r);

	call(c, f->base, "GET", "/csv", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(r.body.data, "a,b\n1,2\n");
	assert_string_equal(header(&r, "Content-Type", h, sizeof(h)), "text/csv");
	assert_string_equal(header(&r, "Content-Disposition", h, sizeof(h)),
	                    "attachment; filename=\"x.csv\"");
	resp_cleanup(&r);

	call(c, f->base, "HEAD", "/livez", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.body.len, 0);
	resp_cleanup(&r);
	curl_slist_free_all(xh);
	curl_slist_free_all(realip);
	curl_slist_free_all(junkip);
	curl_easy_cleanup(c);
}

static void test_404_405(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	struct resp r;
	char h[128];

	call(c, f->base, "GET", "/nope", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 404);
	assert_string_equal(jstr(&r, "error", "code"), "not_found");
	assert_non_null(jstr(&r, "error", "request_id"));
	resp_cleanup(&r);

	call(c, f->base, "GET", "/api/v1/jobs/", NULL, 0, NULL, &r); /* empty param */
	assert_int_equal(r.code, 404);
	resp_cleanup(&r);

	call(c, f->base, "GET", "/livez/", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 404);
	resp_cleanup(&r);

	call(c, f->base, "DELETE", "/api/v1/jobs/7", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 405);
	assert_string_equal(jstr(&r, "error", "code"), "method_not_allowed");
	assert_string_equal(header(&r, "Allow", h, sizeof(h)), "GET, HEAD");
	resp_cleanup(&r);

	call(c, f->base, "GET", "/api/v1/jobs", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 405);
	assert_string_equal(header(&r, "Allow", h, sizeof(h)), "POST");
	resp_cleanup(&r);
	curl_easy_cleanup(c);
}

static void test_json_body(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	struct curl_slist *ct = curl_slist_append(NULL, "Content-Type: application/json");
	struct resp r;
	char h[128];
	static const struct {
		const char *body;
		const char *msg_prefix;
	} bad[] = {
		{ "{bad", "invalid JSON at line 1" },
		{ "{\"name\":\"\xff\"}", "request body is not valid UTF-8" },
		{ "{\"name\":\"\xc0\xaf\"}", "request body is not valid UTF-8" },
		{ "[1,2]", "request body must be a JSON object" },
		{ "", "request body is empty" },
		{ "{\"name\":\"a\",\"name\":\"b\"}", "invalid JSON" },
		{ "{\"name\":\"a\"} trailing", "invalid JSON" },
		{ "{\"name\":\"a\",\"colour\":1}", "unknown field 'colour'" },
		{ "{\"name\":7}", "field 'name' must be a string" },
		{ "{\"size\":1}", "field 'name' is required" },
	};

	call(c, f->base, "POST", "/api/v1/jobs", "{\"name\":\"nightly\"}", 18, ct, &r);
	assert_int_equal(r.code, 201);
	assert_string_equal(jstr(&r, "name", NULL), "nightly");
	assert_string_equal(header(&r, "Location", h, sizeof(h)), "/api/v1/jobs/1");
	resp_cleanup(&r);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *msg;

		call(c, f->base, "POST", "/api/v1/jobs", bad[i].body, strlen(bad[i].body), ct, &r);
		if (r.code != 400)
			fail_msg("case %zu: status %ld", i, r.code);
		assert_string_equal(jstr(&r, "error", "code"), "invalid");
		msg = jstr(&r, "error", "message");
		assert_non_null(msg);
		if (strncmp(msg, bad[i].msg_prefix, strlen(bad[i].msg_prefix)) != 0)
			fail_msg("case %zu: message '%s'", i, msg);
		resp_cleanup(&r);
	}
	curl_slist_free_all(ct);
	curl_easy_cleanup(c);
}

static void test_status_mapping(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	struct resp r;

	call(c, f->base, "GET", "/fail", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 500);
	assert_string_equal(jstr(&r, "error", "code"), "internal");
	assert_string_equal(jstr(&r, "error", "message"), "internal error");
	assert_null(strstr(r.body.data, "secret"));
	resp_cleanup(&r);

	call(c, f->base, "GET", "/conflict", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 409);
	assert_string_equal(jstr(&r, "error", "code"), "conflict");
	assert_string_equal(jstr(&r, "error", "message"), "job name already used");
	resp_cleanup(&r);

	call(c, f->base, "GET", "/noreply", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 500);
	resp_cleanup(&r);
	curl_easy_cleanup(c);

	assert_int_equal(http_status_for(STATUS_OK), 200);
	assert_int_equal(http_status_for(STATUS_INVALID), 400);
	assert_int_equal(http_status_for(STATUS_UNAUTHORIZED), 401);
	assert_int_equal(http_status_for(STATUS_FORBIDDEN), 403);
	assert_int_equal(http_status_for(STATUS_NOT_FOUND), 404);
	assert_int_equal(http_status_for(STATUS_CONFLICT), 409);
	assert_int_equal(http_status_for(STATUS_TOO_LARGE), 413);
	assert_int_equal(http_status_for(STATUS_UNAVAILABLE), 503);
	assert_int_equal(http_status_for(STATUS_TIMEOUT), 504);
	assert_int_equal(http_status_for(STATUS_DB), 500);
	assert_int_equal(http_status_for(STATUS_NOMEM), 500);
	assert_int_equal(http_status_for((enum status)999), 500);
}

static void test_body_limit(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	size_t big = 2u << 20;
	char *data = xmalloc(big);
	struct resp r;

	memset(data, 'a', big);
	/* Content-Length above the limit: refused before the body is read. */
	call(c, f->base, "POST", "/echo", data, big, NULL, &r);
	assert_int_equal(r.code, 413);
	assert_string_equal(jstr(&r, "error", "code"), "too_large");
	resp_cleanup(&r);

	/* Chunked, no Content-Length: read, discarded past the limit, then 413. */
	call(c, f->base, "POST", "/echo", NULL, big, NULL, &r);
	assert_int_equal(r.code, 413);
	assert_string_equal(jstr(&r, "error", "code"), "too_large");
	resp_cleanup(&r);

	/* Exactly the limit is fine. */
	call(c, f->base, "POST", "/echo", data, HTTP_DEFAULT_MAX_BODY, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.body.len, HTTP_DEFAULT_MAX_BODY);
	resp_cleanup(&r);

	call(c, f->base, "POST", "/echo", NULL, HTTP_DEFAULT_MAX_BODY + 1, NULL, &r);
	assert_int_equal(r.code, 413);
	resp_cleanup(&r);
	free(data);
	curl_easy_cleanup(c);
}

static void test_request_id(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	struct resp r;
	char h[128];
	char h2[128];
	struct curl_slist *good = curl_slist_append(NULL, "X-Request-Id: abc.DEF_1-2");
	struct curl_slist *bad = curl_slist_append(NULL, "X-Request-Id: has space/slash");
	char longid[100] = "X-Request-Id: ";
	struct curl_slist *lng;

	memset(longid + strlen(longid), 'a', 65);
	lng = curl_slist_append(NULL, longid);

	call(c, f->base, "GET", "/nope", NULL, 0, good, &r);
	assert_string_equal(header(&r, "X-Request-Id", h, sizeof(h)), "abc.DEF_1-2");
	assert_string_equal(jstr(&r, "error", "request_id"), "abc.DEF_1-2");
	resp_cleanup(&r);

	call(c, f->base, "GET", "/livez", NULL, 0, bad, &r);
	header(&r, "X-Request-Id", h, sizeof(h));
	assert_int_equal(strlen(h), 32);
	assert_int_equal(strspn(h, "0123456789abcdef"), 32);
	resp_cleanup(&r);

	call(c, f->base, "GET", "/livez", NULL, 0, lng, &r);
	header(&r, "X-Request-Id", h2, sizeof(h2));
	assert_int_equal(strlen(h2), 32);
	assert_string_not_equal(h, h2);
	resp_cleanup(&r);

	curl_slist_free_all(good);
	curl_slist_free_all(bad);
	curl_slist_free_all(lng);
	curl_easy_cleanup(c);
}

static void test_health(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	struct resp r;

	call(c, f->base, "GET", "/livez", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(r.body.data, "{\"status\":\"ok\"}");
	resp_cleanup(&r);

	atomic_store(&f->db_ok, 0);
	call(c, f->base, "GET", "/readyz", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 503);
	assert_string_equal(jstr(&r, "status", NULL), "not_ready");
	assert_string_equal(jstr(&r, "checks", "db"), "fail");
	assert_string_equal(jstr(&r, "checks", "kafka"), "ok");
	assert_null(strstr(r.body.data, "refused"));
	resp_cleanup(&r);

	atomic_store(&f->db_ok, 1);
	call(c, f->base, "GET", "/readyz", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(r.body.data,
	                    "{\"status\":\"ready\",\"checks\":{\"db\":\"ok\",\"kafka\":\"ok\"}}");
	resp_cleanup(&r);
	curl_easy_cleanup(c);
}

static void test_before_hook(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	struct resp r;
	char h[64];
	struct curl_slist *good = curl_slist_append(NULL, "Authorization: Bearer good");
	struct curl_slist *bad = curl_slist_append(NULL, "Authorization: Bearer bad");

	call(c, f->base, "GET", "/private", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 401);
	assert_string_equal(header(&r, "WWW-Authenticate", h, sizeof(h)), "Bearer");
	assert_string_equal(jstr(&r, "error", "code"), "unauthorized");
	resp_cleanup(&r);

	call(c, f->base, "GET", "/private", NULL, 0, bad, &r);
	assert_int_equal(r.code, 403);
	resp_cleanup(&r);

	call(c, f->base, "GET", "/private", NULL, 0, good, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(jstr(&r, "user", NULL), "alice");
	resp_cleanup(&r);

	/* public routes skip the hook */
	call(c, f->base, "GET", "/livez", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 200);
	resp_cleanup(&r);
	curl_slist_free_all(good);
	curl_slist_free_all(bad);
	curl_easy_cleanup(c);
}

static void test_metrics_endpoint(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	struct resp r;
	char h[128];

	call(c, f->base, "GET", "/api/v1/jobs/1", NULL, 0, NULL, &r);
	resp_cleanup(&r);
	call(c, f->base, "GET", "/api/v1/jobs/2", NULL, 0, NULL, &r);
	resp_cleanup(&r);
	call(c, f->base, "GET", "/metrics", NULL, 0, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(header(&r, "Content-Type", h, sizeof(h)), HTTP_CT_METRICS);
	assert_non_null(strstr(r.body.data, "# TYPE http_requests_total counter\n"));
	assert_non_null(strstr(r.body.data, "# TYPE http_request_duration_seconds histogram\n"));
	/* route is the pattern, not the raw path */
	assert_non_null(strstr(r.body.data, "http_requests_total{route=\"/api/v1/jobs/{id}\","
	                                    "method=\"GET\",code=\"200\"}"));
	assert_null(strstr(r.body.data, "route=\"/api/v1/jobs/1\""));
	assert_non_null(strstr(r.body.data, "http_request_duration_seconds_bucket{route=\"/api/v1/"
	                                    "jobs/{id}\",method=\"GET\",le=\"+Inf\"}"));
	assert_non_null(strstr(r.body.data, "route=\"unmatched\""));
	resp_cleanup(&r);
	assert_true(metrics_counter_get(NULL, NULL) == 0);
	curl_easy_cleanup(c);
}

static char *read_log(const struct fixture *f)
{
	struct buf b;
	char tmp[4096];
	ssize_t n;
	int fd = open(f->logpath, O_RDONLY);

	assert_true(fd >= 0);
	buf_init(&b);
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_append(&b, tmp, (size_t)n);
	close(fd);
	return buf_take(&b);
}

static void test_access_log(void **state)
{
	struct fixture *f = *state;
	CURL *c = curl_easy_init();
	struct curl_slist *id1 = curl_slist_append(NULL, "X-Request-Id: access-log-1");
	struct curl_slist *id2 = curl_slist_append(NULL, "X-Request-Id: quiet-probe-1");
	struct resp r;
	char *log;
	const char *line;

	call(c, f->base, "GET", "/api/v1/jobs/9", NULL, 0, id1, &r);
	resp_cleanup(&r);
	call(c, f->base, "GET", "/livez", NULL, 0, id2, &r);
	resp_cleanup(&r);
	log = read_log(f);
	line = strstr(log, "\"msg\":\"http GET /api/v1/jobs/9 route=/api/v1/jobs/{id} status=200 "
	                   "duration_ms=");
	assert_non_null(line);
	assert_non_null(strstr(line, "remote=127.0.0.1\",\"request_id\":\"access-log-1\"}\n"));
	/* probes are logged at debug level only */
	assert_null(strstr(log, "quiet-probe-1"));
	free(log);
	curl_slist_free_all(id1);
	curl_slist_free_all(id2);
	curl_easy_cleanup(c);
}

struct worker {
	const char *base;
	int ok;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	CURL *c = curl_easy_init();

	for (int i = 0; i < 200; i++) {
		struct resp r;
		char path[64];

		snprintf(path, sizeof(path), "/api/v1/jobs/%d/runs/%d", i, i * 2);
		call(c, w->base, "GET", path, NULL, 0, NULL, &r);
		if (r.code == 200 && jstr(&r, "id", NULL) &&
		    strtol(jstr(&r, "id", NULL), NULL, 10) == i)
			w->ok++;
		resp_cleanup(&r);
	}
	curl_easy_cleanup(c);
	return NULL;
}

static void test_concurrency(void **state)
{
	struct fixture *f = *state;
	pthread_t t[8];
	struct worker w[8];
	struct metrics *m = http_server_metrics(f->srv);
	struct metrics_counter *dummy;
	struct err e;
	int total = 0;

	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){ .base = f->base };
		pthread_create(&t[i], NULL, worker_run, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		total += w[i].ok;
	}
	assert_int_equal(total, 1600);
	/* the registry is shared: a second http_requests_total is refused */
	dummy = metrics_counter_new(m, "http_requests_total", "", NULL, &e);
	assert_null(dummy);
	assert_int_equal(e.code, STATUS_CONFLICT);
}

/* ---------------------------------------------------------------- lifecycle */

static atomic_int slow_entered;

static void h_slow(struct http_req *req, void *ud)
{
	struct timespec nap = { 0, 300000000L };

	atomic_store(&slow_entered, 1);
	nanosleep(&nap, NULL);
	http_reply_json(req, 200, json_pack("{s:b}", "slow", 1));
}

struct slow_client {
	char base[64];
	long code;
};

static void *slow_run(void *arg)
{
	struct slow_client *sc = arg;
	CURL *c = curl_easy_init();
	struct resp r;

	call(c, sc->base, "GET", "/slow", NULL, 0, NULL, &r);
	sc->code = r.code;
	resp_cleanup(&r);
	curl_easy_cleanup(c);
	return NULL;
}

static void test_lifecycle(void **state)
{
	struct metrics *shared = metrics_new();
	struct http_config cfg = { .bind_addr = "127.0.0.1", .threads = 2, .metrics = shared };
	struct http_config badcfg = { .bind_addr = "localhost" };
	struct http_server *srv;
	struct http_server *other;
	struct slow_client sc = { .code = 0 };
	struct err e;
	pthread_t t;
	CURL *c;
	CURLcode cc;
	char url[96];

	assert_null(http_server_new(&badcfg, &e));
	assert_int_equal(e.code, STATUS_INVALID);
	srv = http_server_new(&cfg, &e);
	assert_non_null(srv);
	assert_ptr_equal(http_server_metrics(srv), shared);
	/* the same registry cannot host a second server's metrics */
	assert_null(http_server_new(&cfg, &e));

	assert_int_equal(http_server_route(srv, "GET", "/slow", h_slow, NULL, 0, &e), STATUS_OK);
	assert_int_equal(http_server_route(srv, "GET", "/a/{x}", h_slow, NULL, 0, &e), STATUS_OK);
	assert_int_equal(http_server_route(srv, "GET", "/a/{y}", h_slow, NULL, 0, &e),
	                 STATUS_CONFLICT);
	assert_int_equal(http_server_route(srv, "POST", "/a/{y}", h_slow, NULL, 0, &e), STATUS_OK);
	assert_int_equal(http_server_route(srv, "GET", "/livez", h_slow, NULL, 0, &e),
	                 STATUS_CONFLICT);
	assert_int_equal(http_server_route(srv, "get", "/b", h_slow, NULL, 0, &e), STATUS_INVALID);
	assert_int_equal(http_server_route(srv, "GET", "b", h_slow, NULL, 0, &e), STATUS_INVALID);
	assert_int_equal(http_server_route(srv, "GET", "/b//c", h_slow, NULL, 0, &e),
	                 STATUS_INVALID);
	assert_int_equal(http_server_route(srv, "GET", "/b/{}", h_slow, NULL, 0, &e),
	                 STATUS_INVALID);
	assert_int_equal(http_server_route(srv, "GET", "/b/x{y}", h_slow, NULL, 0, &e),
	                 STATUS_INVALID);
	assert_int_equal(http_server_route(srv, "GET", "/b", NULL, NULL, 0, &e), STATUS_INVALID);
	assert_int_equal(http_server_route(srv, "GET", "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17",
	                                   h_slow, NULL, 0, &e),
	                 STATUS_INVALID);

	assert_int_equal(http_server_start(srv, &e), STATUS_OK);
	assert_int_equal(http_server_start(srv, &e), STATUS_INVALID);
	assert_int_equal(http_server_route(srv, "GET", "/late", h_slow, NULL, 0, &e),
	                 STATUS_INVALID);

	/* a second server on the same port cannot bind */
	cfg.metrics = NULL;
	cfg.port = http_server_port(srv);
	other = http_server_new(&cfg, &e);
	assert_non_null(other);
	assert_int_equal(http_server_start(other, &e), STATUS_IO);
	http_server_free(other);

	/* graceful stop: the in-flight request is still answered */
	snprintf(sc.base, sizeof(sc.base), "http://127.0.0.1:%u", http_server_port(srv));
	atomic_store(&slow_entered, 0);
	pthread_create(&t, NULL, slow_run, &sc);
	while (!atomic_load(&slow_entered)) {
		struct timespec nap = { 0, 1000000L };

		nanosleep(&nap, NULL);
	}
	http_server_stop(srv);
	pthread_join(t, NULL);
	assert_int_equal(sc.code, 200);
	assert_int_equal(http_server_port(srv), 0);

	/* nothing listens any more */
	c = curl_easy_init();
	snprintf(url, sizeof(url), "%s/livez", sc.base);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 2L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(c);
	assert_int_equal(cc, CURLE_COULDNT_CONNECT);
	curl_easy_cleanup(c);

	http_server_free(srv);
	http_server_free(NULL);
	metrics_free(shared);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing_params),   cmocka_unit_test(test_404_405),
		cmocka_unit_test(test_json_body),        cmocka_unit_test(test_status_mapping),
		cmocka_unit_test(test_body_limit),       cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_health),           cmocka_unit_test(test_before_hook),
		cmocka_unit_test(test_metrics_endpoint), cmocka_unit_test(test_access_log),
		cmocka_unit_test(test_concurrency),      cmocka_unit_test(test_lifecycle),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
