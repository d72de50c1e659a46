/* itest_auth: the auth service against the real stack (PostgreSQL, Kafka, HTTP).
 *
 * Starts its own cairn-auth (argv[1]) on a free port with the stack's environment, runs
 * `cairn-auth bootstrap` with credentials from the environment, then checks: row-level
 * security and the runtime role, the JWT negative corpus (401 each), login throttling
 * (429 + Retry-After), refresh rotation and reuse detection, API tokens, the role matrix,
 * the cross-tenant matrix (404 identical to a missing id, no side effect), bad input on
 * every route (400/413 with a JSON reason, nothing written), and revocation through the
 * real identity stream (outbox -> Kafka -> authn listener) within 1 s.
 *
 * Needs CAIRN_DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS (scripts/test exports them); FAILS
 * without them. */
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "common/authn.h"
#include "common/buf.h"
#include "common/db.h"
#include "common/xalloc.h"

#include "tokens.h"

static char base[128];
static pid_t auth_pid;
static int failures;
static char run_id[16];

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (cond) {                                                                        \
			printf("ok: ");                                                            \
		} else {                                                                           \
			failures++;                                                                \
			printf("FAIL: ");                                                          \
		}                                                                                  \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		fflush(stdout);                                                                    \
	} while (0)

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	if (auth_pid > 0) /* never leave the service under test behind */
		kill(auth_pid, SIGTERM);
	exit(1);
}

static const char *need_env(const char *n)
{
	const char *v = getenv(n);

	if (!v || !*v)
		die("%s is not set: run through scripts/test (needs the stack)", n);
	return v;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- HTTP ---- */

struct resp {
	long code;
	char *body;
	char retry_after[32];
	json_t *json;
};

static size_t on_body(char *p, size_t s, size_t n, void *ud)
{
	buf_append(ud, p, s * n);
	return s * n;
}

static size_t on_header(char *p, size_t s, size_t n, void *ud)
{
	struct resp *r = ud;
	size_t len = s * n;

	if (len > 13 && strncasecmp(p, "Retry-After:", 12) == 0) {
		size_t k = len - 12 > sizeof(r->retry_after) - 1 ? sizeof(r->retry_after) - 1
		                                                 : len - 12;

		memcpy(r->retry_after, p + 12, k);
		r->retry_after[k] = '\0';
		r->retry_after[strcspn(r->retry_after, "\r\n")] = '\0';
	}
	return len;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static struct resp req_raw(const char *method, const char *path, const char *auth, const char *body,
                           size_t len)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct resp r;
	struct buf b;
	char url[512], hdr[4200];
	json_error_t jerr;

	memset(&r, 0, sizeof(r));
	buf_init(&b);
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (auth) {
		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", auth);
		h = curl_slist_append(h, hdr);
	}
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (curl_easy_perform(c) != CURLE_OK)
		r.code = -1;
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	r.body = b.data ? buf_take(&b) : xstrdup("");
	r.json = json_loads(r.body, 0, &jerr);
	return r;
}

static struct resp req(const char *method, const char *path, const char *auth, const char *body)
{
	return req_raw(method, path, auth, body, body ? strlen(body) : 0);
}

static const char *jget(const struct resp *r, const char *k)
{
	return json_string_value(json_object_get(r->json, k));
}

/* The body of an error with the request id removed, to compare bytes. */
static char *error_sans_id(const struct resp *r)
{
	json_t *j = json_deep_copy(r->json);
	char *s;

	json_object_del(json_object_get(j, "error"), "request_id");
	s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(j);
	return s ? s : xstrdup("");
}

static bool is_json_error(const struct resp *r)
{
	json_t *err = json_object_get(r->json, "error");

	return json_is_object(err) && json_is_string(json_object_get(err, "message")) &&
	       json_is_string(json_object_get(err, "code"));
}

/* ---- the service under test ---- */

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		die("free port");
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void auth_start(const char *bin, int port)
{
	char p[16];

	snprintf(p, sizeof(p), "%d", port);
	auth_pid = fork();
	if (auth_pid < 0)
		die("fork");
	if (auth_pid == 0) {
		setenv("CAIRN_AUTH_HTTP_PORT", p, 1);
		setenv("CAIRN_AUTH_LOGIN_ACCOUNT_MAX", "3", 1);
		setenv("CAIRN_AUTH_LOGIN_ADDRESS_MAX", "8", 1);
		setenv("CAIRN_AUTH_REQUIRE_RUNTIME_ROLE", "true", 1);
		setenv("CAIRN_AUTH_KEY_CHECK_S", "1", 1);
		if (!freopen("auth-itest.log", "w", stdout))
			_exit(127);
		execl(bin, bin, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		struct resp r = req("GET", "/readyz", NULL, NULL);
		long code = r.code;

		resp_free(&r);
		if (code == 200)
			return;
		usleep(100 * 1000);
	}
	die("cairn-auth did not become ready (see auth-itest.log)");
}

static void auth_stop(void)
{
	int st;

	if (auth_pid > 0) {
		kill(auth_pid, SIGTERM);
		waitpid(auth_pid, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "cairn-auth stopped cleanly on SIGTERM (status %d; sanitizers quiet)", st);
		auth_pid = 0;
	}
}

static int run_bootstrap(const char *bin, const char *user, const char *pw)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		setenv("CAIRN_BOOTSTRAP_USERNAME", user, 1);
		setenv("CAIRN_BOOTSTRAP_PASSWORD", pw, 1);
		if (!freopen("/dev/null", "r", stdin))
			_exit(127);
		execl(bin, bin, "bootstrap", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- fixtures ---- */

struct who {
	char name[64];
	char token[2048];
	char refresh[128];
	char id[40];
	unsigned role;
};

static bool login(const char *tenant, const char *user, const char *pw, struct who *w)
{
	char body[512];
	struct resp r;
	bool ok;

	snprintf(body, sizeof(body), "{%s%s%s\"username\":\"%s\",\"password\":\"%s\"}",
	         tenant ? "\"tenant\":\"" : "", tenant ? tenant : "", tenant ? "\"," : "", user,
	         pw);
	r = req("POST", "/api/v1/auth/login", NULL, body);
	ok = r.code == 200 && jget(&r, "access_token");
	if (ok && w) {
		snprintf(w->token, sizeof(w->token), "%s", jget(&r, "access_token"));
		snprintf(w->refresh, sizeof(w->refresh), "%s", jget(&r, "refresh_token"));
		snprintf(w->name, sizeof(w->name), "%s", user);
	}
	resp_free(&r);
	return ok;
}

static void must_login(const char *tenant, const char *user, const char *pw, struct who *w)
{
	if (!login(tenant, user, pw, w))
		die("login %s/%s failed", tenant ? tenant : "-", user);
}

static void me(struct who *w)
{
	struct resp r = req("GET", "/api/v1/auth/me", w->token, NULL);

	if (r.code != 200)
		die("me: %ld %s", r.code, r.body);
	snprintf(w->id, sizeof(w->id), "%s", jget(&r, "id"));
	resp_free(&r);
}

static char *create_tenant(struct who *pa, const char *name)
{
	char body[256];
	struct resp r;
	char *id;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"display_name\":\"Tenant %s\"}", name,
	         name);
	r = req("POST", "/api/v1/tenants", pa->token, body);
	if (r.code != 201)
		die("create tenant %s: %ld %s", name, r.code, r.body);
	id = xstrdup(jget(&r, "id"));
	resp_free(&r);
	return id;
}

static char *create_user(struct who *by, const char *tid, const char *user, const char *role,
                         const char *pw)
{
	char body[512];
	struct resp r;
	char *id;

	snprintf(body, sizeof(body),
	         "{\"tenant_id\":\"%s\",\"username\":\"%s\",\"role\":\"%s\",\"password\":\"%s\"}",
	         tid, user, role, pw);
	r = req("POST", "/api/v1/users", by->token, body);
	if (r.code != 201)
		die("create user %s: %ld %s", user, r.code, r.body);
	id = xstrdup(jget(&r, "id"));
	resp_free(&r);
	return id;
}

static long count(struct db_conn *dbc, const char *sql)
{
	PGresult *res = NULL;
	struct err e;
	long n;

	if (db_query(dbc, sql, 0, NULL, &res, &e) != STATUS_OK)
		die("query %s: %s", sql, e.msg);
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

/* ---- tests ---- */

static void test_rls(struct db_conn *dbc)
{
	const char *tables[] = { "tenants", "users", "api_tokens", "refresh_sessions",
		                 "audit_log" };
	char sql[512];

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM pg_class WHERE oid = 'identity.%s'::regclass AND "
		         "relrowsecurity AND relforcerowsecurity",
		         tables[i]);
		CHECK(count(dbc, sql) == 1, "FORCE ROW LEVEL SECURITY on identity.%s", tables[i]);
	}
	CHECK(count(dbc, "SELECT count(*) FROM pg_roles WHERE rolname = 'cairn_auth_rt' AND NOT "
	                 "rolsuper AND NOT rolbypassrls") == 1,
	      "cairn_auth_rt is neither superuser nor BYPASSRLS");
	CHECK(count(dbc, "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
	                 "WHERE c.relnamespace = 'identity'::regnamespace AND r.rolname = "
	                 "'cairn_auth_rt'") == 0,
	      "cairn_auth_rt owns nothing in identity");
	/* Without a tenant context, the runtime role sees no row at all. */
	CHECK(db_exec(dbc, "BEGIN", 0, NULL, NULL) == STATUS_OK &&
	              db_exec(dbc, "SET LOCAL ROLE cairn_auth_rt", 0, NULL, NULL) == STATUS_OK &&
	              count(dbc, "SELECT count(*) FROM identity.users") == 0 &&
	              count(dbc, "SELECT count(*) FROM identity.tenants") == 0,
	      "no context = no rows for cairn_auth_rt");
	db_tx_rollback(dbc);
	if (db_exec(dbc, "ROLLBACK", 0, NULL, NULL) != STATUS_OK)
		printf("(rollback)\n");
}

/* Sign a token with the service's real key (read from the database) and custom claims. */
static char *sign_with_service_key(struct db_conn *dbc, const char *claims_json, bool with_kid)
{
	PGresult *res = NULL;
	struct err e;
	char *pem = NULL, *out = NULL, *h, *p, *in, *s64;
	struct auth_key *k;
	EVP_MD_CTX *md;
	unsigned char der[128], raw[64];
	size_t dl = sizeof(der);
	const unsigned char *dp = der;
	ECDSA_SIG *es;
	const BIGNUM *r, *s;
	char hdr[256];
	BIO *bio;
	EVP_PKEY *pkey;

	if (db_query(dbc,
	             "SELECT kid, wrapped_key FROM identity.signing_keys WHERE retired_at IS NULL "
	             "ORDER BY created_at DESC LIMIT 1",
	             0, NULL, &res, &e) != STATUS_OK ||
	    PQntuples(res) != 1)
		die("signing key: %s", e.msg);
	if (auth_key_unwrap(NULL, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), &pem, &e) !=
	    STATUS_OK)
		die("the test stack stores keys unwrapped (no KEK): %s", e.msg);
	k = auth_key_from_pem(PQgetvalue(res, 0, 0), pem, &e);
	if (!k)
		die("key: %s", e.msg);
	if (with_kid)
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		         auth_key_kid(k));
	else
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"JWT\"}");
	h = authn_b64url_encode(hdr, strlen(hdr));
	p = authn_b64url_encode(claims_json, strlen(claims_json));
	in = xasprintf("%s.%s", h, p);
	bio = BIO_new_mem_buf(pem, -1);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	md = EVP_MD_CTX_new();
	if (!pkey || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(md, der, &dl, (unsigned char *)in, strlen(in)) != 1)
		die("sign");
	es = d2i_ECDSA_SIG(NULL, &dp, (long)dl);
	ECDSA_SIG_get0(es, &r, &s);
	BN_bn2binpad(r, raw, 32);
	BN_bn2binpad(s, raw + 32, 32);
	s64 = authn_b64url_encode(raw, 64);
	out = xasprintf("%s.%s", in, s64);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	auth_key_free(k);
	free(pem);
	free(h);
	free(p);
	free(in);
	free(s64);
	PQclear(res);
	return out;
}

static char *b64(const char *s)
{
	return authn_b64url_encode(s, strlen(s));
}

static void test_jwt_corpus(struct db_conn *dbc, struct who *pa)
{
	struct resp r = req("GET", "/api/v1/auth/jwks", NULL, NULL);
	const char *jwks = r.body;
	long long now = (long long)time(NULL);
	char claims[1024], *t, *h, *p, *tok;
	const char *parts[3];
	struct {
		const char *what;
		char *tok;
	} corpus[16];
	int n = 0;
	unsigned char mac[32];
	unsigned int ml;
	char *sig;

	CHECK(r.code == 200 && strstr(jwks, "\"ES256\""), "JWKS published");
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"%s\",\"roles\":"
	         "[\"provider-admin\"],\"epoch\":1,\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,\"jti\":"
	         "\"x\"}",
	         pa->id, now, now, now + 600);
	/* sanity: a token we sign like the service passes */
	t = sign_with_service_key(dbc, claims, true);
	{
		struct resp ok = req("GET", "/api/v1/auth/me", t, NULL);

		CHECK(ok.code == 200,
		      "a well-formed token signed with the service key passes (%ld)", ok.code);
		resp_free(&ok);
	}
	/* alg none */
	h = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}");
	p = b64(claims);
	corpus[n].what = "alg none";
	corpus[n++].tok = xasprintf("%s.%s.", h, p);
	free(h);
	/* HS256 with the public key (the JWKS text) as the secret */
	h = b64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
	tok = xasprintf("%s.%s", h, p);
	HMAC(EVP_sha256(), jwks, (int)strlen(jwks), (unsigned char *)tok, strlen(tok), mac, &ml);
	sig = authn_b64url_encode(mac, ml);
	corpus[n].what = "HS256 keyed with the public JWKS";
	corpus[n++].tok = xasprintf("%s.%s", tok, sig);
	free(sig);
	free(tok);
	free(h);
	free(p);
	/* expired, not yet valid, wrong iss, wrong aud, unknown kid (none), tampered */
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"%s\",\"roles\":"
	         "[\"provider-admin\"],\"epoch\":1,\"iat\":%lld,\"exp\":%lld,\"jti\":\"x\"}",
	         pa->id, now - 2000, now - 1000);
	corpus[n].what = "expired";
	corpus[n++].tok = sign_with_service_key(dbc, claims, true);
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"%s\",\"roles\":"
	         "[\"provider-admin\"],\"epoch\":1,\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,"
	         "\"jti\":\"x\"}",
	         pa->id, now, now + 300, now + 900);
	corpus[n].what = "not yet valid";
	corpus[n++].tok = sign_with_service_key(dbc, claims, true);
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"evil\",\"aud\":\"cairn\",\"sub\":\"%s\",\"roles\":"
	         "[\"provider-admin\"],\"epoch\":1,\"iat\":%lld,\"exp\":%lld,\"jti\":\"x\"}",
	         pa->id, now, now + 600);
	corpus[n].what = "wrong issuer";
	corpus[n++].tok = sign_with_service_key(dbc, claims, true);
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"cairn-auth\",\"aud\":\"other\",\"sub\":\"%s\",\"roles\":"
	         "[\"provider-admin\"],\"epoch\":1,\"iat\":%lld,\"exp\":%lld,\"jti\":\"x\"}",
	         pa->id, now, now + 600);
	corpus[n].what = "wrong audience";
	corpus[n++].tok = sign_with_service_key(dbc, claims, true);
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"%s\",\"roles\":"
	         "[\"provider-admin\"],\"epoch\":1,\"iat\":%lld,\"exp\":%lld,\"jti\":\"x\"}",
	         pa->id, now, now + 600);
	corpus[n].what = "no kid";
	corpus[n++].tok = sign_with_service_key(dbc, claims, false);
	{
		char *good = sign_with_service_key(dbc, claims, true);
		char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
		char *hh = xstrndup(good, (size_t)(d1 - good));
		char *evil = xstrdup(claims), *pe;

		/* unknown kid */
		h = b64("{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"no-such-kid\"}");
		corpus[n].what = "unknown kid";
		corpus[n++].tok = xasprintf("%s%s", h, d1);
		free(h);
		/* tampered payload: another subject */
		evil[strlen("{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"") + 2] ^= 1;
		pe = b64(evil);
		corpus[n].what = "tampered payload";
		corpus[n++].tok = xasprintf("%s.%s%s", hh, pe, d2);
		/* tampered signature */
		corpus[n].what = "tampered signature";
		corpus[n].tok = xstrdup(good);
		corpus[n].tok[strlen(good) - 10] =
		        corpus[n].tok[strlen(good) - 10] == 'A' ? 'B' : 'A';
		n++;
		corpus[n].what = "malformed base64";
		corpus[n++].tok = xasprintf("%s=", good);
		corpus[n].what = "garbage";
		corpus[n++].tok = xstrdup("not.a.jwt");
		free(pe);
		free(evil);
		free(hh);
		free(good);
	}
	(void)parts;
	for (int i = 0; i < n; i++) {
		struct resp x = req("GET", "/api/v1/auth/me", corpus[i].tok, NULL);

		CHECK(x.code == 401 && is_json_error(&x), "JWT corpus: %s -> %ld", corpus[i].what,
		      x.code);
		resp_free(&x);
		free(corpus[i].tok);
	}
	free(t);
	resp_free(&r);
}

static void test_throttle(const char *tenant)
{
	struct resp r;
	char body[256];
	bool saw429 = false;
	int i;

	/* account window: 3 failures, the 4th attempt is refused even with any password */
	for (i = 0; i < 3; i++) {
		snprintf(body, sizeof(body),
		         "{\"tenant\":\"%s\",\"username\":\"victim\",\"password\":\"wrong-%d-"
		         "xxxxxx\"}",
		         tenant, i);
		r = req("POST", "/api/v1/auth/login", NULL, body);
		CHECK(r.code == 401 && strstr(r.body, "invalid tenant, username or password"),
		      "failed login %d -> 401 generic", i + 1);
		resp_free(&r);
	}
	r = req("POST", "/api/v1/auth/login", NULL, body);
	CHECK(r.code == 429 && strtol(r.retry_after, NULL, 10) > 0,
	      "N+1th failed login in the window -> 429, Retry-After %s", r.retry_after);
	resp_free(&r);
	/* address window: 8 failures from this address across accounts */
	for (i = 0; i < 8 && !saw429; i++) {
		snprintf(body, sizeof(body),
		         "{\"tenant\":\"%s\",\"username\":\"nobody%d\",\"password\":\"wrong-pass-"
		         "xx\"}",
		         tenant, i);
		r = req("POST", "/api/v1/auth/login", NULL, body);
		saw429 = r.code == 429;
		resp_free(&r);
	}
	CHECK(saw429, "address window -> 429 after %d more failures", i);
}

static void test_refresh_and_logout(const char *tenant, const char *user, const char *pw)
{
	struct who w;
	char body[256], rt1[128];
	struct resp r;

	must_login(tenant, user, pw, &w);
	snprintf(rt1, sizeof(rt1), "%s", w.refresh);
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", rt1);
	r = req("POST", "/api/v1/auth/refresh", NULL, body);
	CHECK(r.code == 200 && jget(&r, "refresh_token") &&
	              strcmp(jget(&r, "refresh_token"), rt1) != 0,
	      "refresh rotates the refresh token");
	{
		char rt2[128], at2[2048], b2[256];
		struct resp r2, r3, r4;

		snprintf(rt2, sizeof(rt2), "%s", jget(&r, "refresh_token"));
		snprintf(at2, sizeof(at2), "%s", jget(&r, "access_token"));
		/* reuse of the first token: refused and the whole family is revoked */
		r2 = req("POST", "/api/v1/auth/refresh", NULL, body);
		CHECK(r2.code == 401, "reused refresh token -> 401");
		snprintf(b2, sizeof(b2), "{\"refresh_token\":\"%s\"}", rt2);
		r3 = req("POST", "/api/v1/auth/refresh", NULL, b2);
		CHECK(r3.code == 401, "reuse revoked the family: the newer token is dead too");
		r4 = req("GET", "/api/v1/auth/me", at2, NULL);
		CHECK(r4.code == 401, "and so is the access token of that family (at auth)");
		resp_free(&r2);
		resp_free(&r3);
		resp_free(&r4);
	}
	resp_free(&r);
	/* logout */
	must_login(tenant, user, pw, &w);
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", w.refresh);
	r = req("POST", "/api/v1/auth/logout", NULL, body);
	CHECK(r.code == 204, "logout -> 204");
	resp_free(&r);
	r = req("POST", "/api/v1/auth/refresh", NULL, body);
	CHECK(r.code == 401, "refresh after logout -> 401");
	resp_free(&r);
	r = req("GET", "/api/v1/auth/me", w.token, NULL);
	CHECK(r.code == 401, "access token of a logged-out session -> 401 at auth");
	resp_free(&r);
}

static void test_api_tokens(struct who *viewer, struct who *op)
{
	struct resp r, x;
	char body[256], tok[128], id[40], at[2048];

	r = req("POST", "/api/v1/auth/tokens", viewer->token,
	        "{\"name\":\"ci\",\"role\":\"tenant-admin\"}");
	CHECK(r.code == 403, "a viewer cannot mint a tenant-admin API token");
	resp_free(&r);
	r = req("POST", "/api/v1/auth/tokens", op->token,
	        "{\"name\":\"ci\",\"role\":\"viewer\",\"expires_in_days\":7}");
	CHECK(r.code == 201 && jget(&r, "token") && strncmp(jget(&r, "token"), "cairn_at_", 9) == 0,
	      "API token created, shown once with prefix");
	if (r.code != 201)
		die("api token: %s", r.body);
	snprintf(tok, sizeof(tok), "%s", jget(&r, "token"));
	snprintf(id, sizeof(id), "%s", jget(&r, "id"));
	resp_free(&r);
	r = req("GET", "/api/v1/auth/tokens", op->token, NULL);
	CHECK(r.code == 200 && strstr(r.body, id) && !strstr(r.body, tok) &&
	              !strstr(r.body, "token_hash"),
	      "list shows the token but never its secret or hash");
	resp_free(&r);
	snprintf(body, sizeof(body), "{\"api_token\":\"%s\"}", tok);
	r = req("POST", "/api/v1/auth/token", NULL, body);
	CHECK(r.code == 200 && jget(&r, "access_token"), "API token exchanged for a JWT");
	snprintf(at, sizeof(at), "%s", r.code == 200 ? jget(&r, "access_token") : "x");
	resp_free(&r);
	x = req("GET", "/api/v1/auth/me", at, NULL);
	CHECK(x.code == 200, "the minted JWT works");
	resp_free(&x);
	x = req("GET", "/api/v1/users", at, NULL);
	CHECK(x.code == 403, "with the API token's (viewer) role, not its owner's");
	resp_free(&x);
	{
		char path[128];

		snprintf(path, sizeof(path), "/api/v1/auth/tokens/%s", id);
		x = req("DELETE", path, op->token, NULL);
		CHECK(x.code == 204, "API token revoked");
		resp_free(&x);
	}
	r = req("POST", "/api/v1/auth/token", NULL, body);
	CHECK(r.code == 401, "revoked API token cannot be exchanged");
	resp_free(&r);
	x = req("GET", "/api/v1/auth/me", at, NULL);
	CHECK(x.code == 401, "JWT minted from a revoked API token -> 401");
	resp_free(&x);
}

/* Role matrix: route x role -> expected status, on objects of the caller's own tenant. */
static void test_role_matrix(struct who roles[5], const char *own_tid, const char *own_uid)
{
	/* roles[]: 0 provider-admin, 1 tenant-admin, 2 backup-op, 3 restore-op, 4 viewer */
	struct {
		const char *method, *path_fmt, *body;
		int want[5]; /* 0 = allowed (2xx or 4xx other than 401/403), 403 = forbidden */
	} m[] = {
		{ "GET", "/api/v1/auth/me", NULL, { 0, 0, 0, 0, 0 } },
		{ "GET", "/api/v1/auth/tokens", NULL, { 0, 0, 0, 0, 0 } },
		{ "GET", "/api/v1/auth/audit", NULL, { 0, 0, 403, 403, 403 } },
		{ "GET", "/api/v1/tenants", NULL, { 0, 403, 403, 403, 403 } },
		{ "POST", "/api/v1/tenants", "{}", { 0, 403, 403, 403, 403 } },
		{ "GET", "/api/v1/tenants/%s", NULL, { 0, 403, 403, 403, 403 } },
		{ "PATCH", "/api/v1/tenants/%s", "{}", { 0, 403, 403, 403, 403 } },
		{ "POST", "/api/v1/tenants/%s/enable", NULL, { 0, 403, 403, 403, 403 } },
		{ "GET", "/api/v1/users", NULL, { 0, 0, 403, 403, 403 } },
		{ "POST", "/api/v1/users", "{}", { 0, 0, 403, 403, 403 } },
		{ "GET", "/api/v1/users/%u", NULL, { 0, 0, 403, 403, 403 } },
		{ "PATCH", "/api/v1/users/%u", "{}", { 0, 0, 403, 403, 403 } },
		{ "POST", "/api/v1/users/%u/enable", NULL, { 0, 0, 403, 403, 403 } },
		{ "POST", "/api/v1/users/%u/password", "{}", { 0, 0, 403, 403, 403 } },
	};
	char path[256];

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		const char *pf = m[i].path_fmt;
		const char *pct = strchr(pf, '%');

		if (pct)
			snprintf(path, sizeof(path), "%.*s%s%s", (int)(pct - pf), pf,
			         pct[1] == 's' ? own_tid : own_uid, pct + 2);
		else
			snprintf(path, sizeof(path), "%s", pf);
		for (int k = 0; k < 5; k++) {
			struct resp r = req(m[i].method, path, roles[k].token, m[i].body);
			bool ok = m[i].want[k] == 403
			                  ? r.code == 403
			                  : (r.code != 401 && r.code != 403 && r.code > 0);

			CHECK(ok, "role matrix %s %s as %s -> %ld", m[i].method, m[i].path_fmt,
			      authn_role_name(1u << k), r.code);
			resp_free(&r);
		}
	}
}

/* out = fmt with its one "%s" replaced by val. */
static void subst(char *out, size_t cap, const char *fmt, const char *val)
{
	const char *p = strstr(fmt, "%s");

	snprintf(out, cap, "%.*s%s%s", (int)(p - fmt), fmt, val, p + 2);
}

/* Tenant A's admin against tenant B's objects: 404 with the same bytes as a missing id,
 * and nothing changes. */
/* Tenant A's credentials (every tenant role) against tenant B's objects: 404, exactly the
 * reply for a missing id (status and body, request id aside), and nothing of B changes.
 * Roles that may not use a route get 403 only for objects of their own tenant (role
 * matrix); for B's objects they learn nothing either. */
static void test_cross_tenant(struct db_conn *dbc, struct who *a_admin, bool admin,
                              const char *b_uid, const char *b_tid)
{
	const char *missing = "00000000-0000-4000-8000-000000000000";
	struct {
		const char *method, *fmt, *body;
	} routes[] = {
		{ "GET", "/api/v1/users/%s", NULL },
		{ "PATCH", "/api/v1/users/%s", "{\"display_name\":\"pwned\"}" },
		{ "DELETE", "/api/v1/users/%s", NULL },
		{ "POST", "/api/v1/users/%s/disable", NULL },
		{ "POST", "/api/v1/users/%s/enable", NULL },
		{ "POST", "/api/v1/users/%s/password", "{\"password\":\"a brand new password\"}" },
		{ "DELETE", "/api/v1/auth/tokens/%s", NULL },
	};
	char sql[256], path_b[256], path_m[256], *before, *after;
	PGresult *res = NULL;
	struct err e;

	snprintf(sql, sizeof(sql), "SELECT row(u.*)::text FROM identity.users u WHERE id = '%s'",
	         b_uid);
	if (db_query(dbc, sql, 0, NULL, &res, &e) != STATUS_OK || PQntuples(res) != 1)
		die("user B row: %s", e.msg);
	before = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		struct resp rb, rm;
		char *sb, *sm;

		subst(path_b, sizeof(path_b), routes[i].fmt, b_uid);
		subst(path_m, sizeof(path_m), routes[i].fmt, missing);
		rb = req(routes[i].method, path_b, a_admin->token, routes[i].body);
		rm = req(routes[i].method, path_m, a_admin->token, routes[i].body);
		sb = error_sans_id(&rb);
		sm = error_sans_id(&rm);
		CHECK(rb.code == 404 && rb.code == rm.code && strcmp(sb, sm) == 0,
		      "cross-tenant as %s: %s %s -> %ld, missing -> %ld, same body", a_admin->name,
		      routes[i].method, routes[i].fmt, rb.code, rm.code);
		free(sb);
		free(sm);
		resp_free(&rb);
		resp_free(&rm);
	}
	/* tenant routes (provider-admin only): B's tenant is as unknown as a missing one */
	{
		static const char *const tfmt[][2] = {
			{ "GET", "/api/v1/tenants/%s" },
			{ "PATCH", "/api/v1/tenants/%s" },
			{ "DELETE", "/api/v1/tenants/%s" },
			{ "POST", "/api/v1/tenants/%s/enable" },
			{ "POST", "/api/v1/tenants/%s/disable" },
		};

		for (size_t i = 0; i < sizeof(tfmt) / sizeof(tfmt[0]); i++) {
			const char *body = strcmp(tfmt[i][0], "PATCH") == 0
			                           ? "{\"display_name\":\"x\"}"
			                           : NULL;
			struct resp rb, rm;
			char *sb, *sm;

			subst(path_b, sizeof(path_b), tfmt[i][1], b_tid);
			subst(path_m, sizeof(path_m), tfmt[i][1], missing);
			rb = req(tfmt[i][0], path_b, a_admin->token, body);
			rm = req(tfmt[i][0], path_m, a_admin->token, body);
			sb = error_sans_id(&rb);
			sm = error_sans_id(&rm);
			CHECK(rb.code == 404 && rm.code == 404 && strcmp(sb, sm) == 0,
			      "cross-tenant as %s: %s %s -> %ld, missing -> %ld, same body",
			      a_admin->name, tfmt[i][0], tfmt[i][1], rb.code, rm.code);
			free(sb);
			free(sm);
			resp_free(&rb);
			resp_free(&rm);
		}
	}
	/* creating a user in tenant B */
	if (admin) {
		char body[512];
		struct resp r;

		snprintf(body, sizeof(body),
		         "{\"tenant_id\":\"%s\",\"username\":\"intruder\",\"role\":\"viewer\","
		         "\"password\":\"a long enough pass\"}",
		         b_tid);
		r = req("POST", "/api/v1/users", a_admin->token, body);
		CHECK(r.code == 404, "tenant-admin of A creating a user in B -> 404 (%ld)", r.code);
		resp_free(&r);
	}
	/* listing users of B gives nothing of B */
	if (admin) {
		char path[256];
		struct resp r;

		snprintf(path, sizeof(path), "/api/v1/users?tenant_id=%s", b_tid);
		r = req("GET", path, a_admin->token, NULL);
		CHECK(r.code == 200 && !strstr(r.body, b_uid),
		      "listing B's users from A shows none");
		resp_free(&r);
	}
	if (db_query(dbc, sql, 0, NULL, &res, &e) != STATUS_OK || PQntuples(res) != 1)
		die("user B row after: %s", e.msg);
	after = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	CHECK(strcmp(before, after) == 0, "no side effect on tenant B's user");
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM identity.users WHERE username = 'intruder'");
	CHECK(count(dbc, sql) == 0, "no intruder user written");
	free(before);
	free(after);
}

static void test_bad_input(struct db_conn *dbc, struct who *pa, const char *tid, const char *uid)
{
	char path[256];
	struct {
		const char *method, *fmt, *body;
	} cases[] = {
		{ "POST", "/api/v1/auth/login", "{\"username\":1,\"password\":\"x\"}" },
		{ "POST", "/api/v1/auth/login", "{\"password\":\"xxxxxxxxxxxxx\"}" },
		{ "POST", "/api/v1/auth/login", "{\"username\":\"a\",\"password\":\"b\",\"x\":1}" },
		{ "POST", "/api/v1/auth/login", "[1,2]" },
		{ "POST", "/api/v1/auth/login", "{\"username\":\"a\",\"password\":" },
		{ "POST", "/api/v1/auth/refresh", "{\"refresh_token\":5}" },
		{ "POST", "/api/v1/auth/logout", "{}" },
		{ "POST", "/api/v1/auth/token", "{\"api_token\":[]}" },
		{ "POST", "/api/v1/auth/password", "{\"new_password\":\"x\"}" },
		{ "POST", "/api/v1/auth/tokens", "{\"name\":\"n\",\"role\":\"god\"}" },
		{ "POST", "/api/v1/auth/tokens",
		  "{\"name\":\"n\",\"role\":\"viewer\",\"expires_in_days\":\"7\"}" },
		{ "POST", "/api/v1/tenants", "{\"name\":\"Bad Name\",\"display_name\":\"x\"}" },
		{ "POST", "/api/v1/tenants",
		  "{\"name\":\"ok\",\"display_name\":\"x\",\"evil\":true}" },
		{ "POST", "/api/v1/tenants", "{\"display_name\":\"x\"}" },
		{ "POST", "/api/v1/tenants",
		  "{\"name\":\"okname\",\"display_name\":\"x\",\"lease_expires_at\":"
		  "\"tomorrow\"}" },
		{ "PATCH", "/api/v1/tenants/%t", "{\"display_name\":42}" },
		{ "POST", "/api/v1/users", "{\"username\":\"u\",\"role\":\"viewer\"}" },
		{ "POST", "/api/v1/users",
		  "{\"tenant_id\":\"%t\",\"username\":\"bad "
		  "user\",\"role\":\"viewer\",\"password\":\"long enough password\"}" },
		{ "POST", "/api/v1/users",
		  "{\"tenant_id\":\"%t\",\"username\":\"shorty\",\"role\":\"viewer\",\"password\":"
		  "\"short\"}" },
		{ "POST", "/api/v1/users",
		  "{\"tenant_id\":\"not-a-uuid\",\"username\":\"u2\",\"role\":\"viewer\","
		  "\"password\":\"long enough password\"}" },
		{ "PATCH", "/api/v1/users/%u", "{\"role\":\"emperor\"}" },
		{ "PATCH", "/api/v1/users/%u", "{\"enabled\":false}" },
		{ "POST", "/api/v1/users/%u/password", "{\"password\":true}" },
		{ "GET", "/api/v1/auth/audit?limit=abc", NULL },
		{ "GET", "/api/v1/auth/audit?from=yesterday", NULL },
	};
	long users0 = count(dbc, "SELECT count(*) FROM identity.users");
	long tenants0 = count(dbc, "SELECT count(*) FROM identity.tenants");

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[1024];
		const char *b = cases[i].body;
		struct resp r;
		char *o = body;

		/* expand %t / %u in path and body */
		snprintf(path, sizeof(path), "%s", cases[i].fmt);
		if (strstr(path, "%t")) {
			char tmp[256];

			snprintf(tmp, sizeof(tmp), "%.*s%s%s", (int)(strstr(path, "%t") - path),
			         path, tid, strstr(path, "%t") + 2);
			snprintf(path, sizeof(path), "%s", tmp);
		}
		if (strstr(path, "%u")) {
			char tmp[256];

			snprintf(tmp, sizeof(tmp), "%.*s%s%s", (int)(strstr(path, "%u") - path),
			         path, uid, strstr(path, "%u") + 2);
			snprintf(path, sizeof(path), "%s", tmp);
		}
		body[0] = '\0';
		if (b) {
			const char *t = strstr(b, "%t");

			if (t)
				snprintf(o, sizeof(body), "%.*s%s%s", (int)(t - b), b, tid, t + 2);
			else
				snprintf(o, sizeof(body), "%s", b);
		}
		r = req(cases[i].method, path, pa->token, b ? body : NULL);
		CHECK(r.code == 400 && is_json_error(&r), "bad input %s %s %s -> %ld",
		      cases[i].method, cases[i].fmt, b ? b : "", r.code);
		resp_free(&r);
	}
	/* invalid UTF-8 and a huge body */
	{
		const char bad_utf8[] =
		        "{\"username\":\"\xc3\x28\",\"password\":\"xxxxxxxxxxxxxx\"}";
		size_t big = 2u << 20;
		char *huge = xmalloc(big + 1);
		struct resp r;

		r = req_raw("POST", "/api/v1/auth/login", NULL, bad_utf8, sizeof(bad_utf8) - 1);
		CHECK(r.code == 400 && is_json_error(&r), "invalid UTF-8 -> 400 (%ld)", r.code);
		resp_free(&r);
		memset(huge, ' ', big);
		huge[0] = '{';
		huge[big - 1] = '}';
		huge[big] = '\0';
		r = req_raw("POST", "/api/v1/tenants", pa->token, huge, big);
		CHECK(r.code == 413 && is_json_error(&r), "huge body -> 413 (%ld)", r.code);
		resp_free(&r);
		free(huge);
	}
	CHECK(count(dbc, "SELECT count(*) FROM identity.users") == users0 &&
	              count(dbc, "SELECT count(*) FROM identity.tenants") == tenants0,
	      "bad input wrote nothing");
}

/* Revocation through the identity stream: a verifier fed by a real listener refuses the old
 * token within 1 s of the change, worst of `trials`. */
static void test_revocation(struct who *pa, const char *tenant, const char *uid, const char *user,
                            int trials)
{
	struct authn_config ac = { .issuer = "cairn-auth",
		                   .audience = "cairn",
		                   .require_fresh = true };
	struct authn_verifier *v;
	struct authn_listener *l;
	struct authn_principal p;
	struct err e;
	char url[256], pw[64], path[256], body[256];
	int64_t worst = 0, t0;
	struct resp r;
	struct who w;

	snprintf(url, sizeof(url), "%s/api/v1/auth/jwks", base);
	ac.jwks_url = url;
	v = authn_verifier_new(&ac, &e);
	if (!v || authn_verifier_fetch_jwks(v, &e) != STATUS_OK)
		die("verifier: %s", e.msg);
	l = authn_listener_start(v, need_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, &e);
	if (!l)
		die("listener: %s", e.msg);
	snprintf(pw, sizeof(pw), "changed passphrase %d xx", 0);
	must_login(tenant, user, "opening passphrase xx", &w);
	/* wait until the listener has caught up (fresh) */
	t0 = mono_ms();
	while (authn_verify(v, w.token, (int64_t)time(NULL), &p, &e) == STATUS_UNAVAILABLE &&
	       mono_ms() - t0 < 30000)
		usleep(50 * 1000);
	CHECK(authn_verify(v, w.token, (int64_t)time(NULL), &p, &e) == STATUS_OK,
	      "listener caught up; token valid (%s)", e.msg);
	for (int i = 0; i < trials; i++) {
		int64_t dt;
		enum status st;

		snprintf(pw, sizeof(pw), "changed passphrase %d xx", i);
		snprintf(path, sizeof(path), "/api/v1/users/%s/password", uid);
		snprintf(body, sizeof(body), "{\"password\":\"%s\"}", pw);
		r = req("POST", path, pa->token, body);
		t0 = mono_ms();
		if (r.code != 204)
			die("password reset: %ld %s", r.code, r.body);
		resp_free(&r);
		do {
			st = authn_verify(v, w.token, (int64_t)time(NULL), &p, &e);
			if (st == STATUS_OK)
				usleep(2000);
		} while (st == STATUS_OK && mono_ms() - t0 < 5000);
		dt = mono_ms() - t0;
		if (st != STATUS_UNAUTHORIZED)
			printf("trial %d: %s (%s)\n", i, status_str(st), e.msg);
		if (dt > worst)
			worst = dt;
		must_login(tenant, user, pw, &w);
		/* the new token must become valid for the next trial (fresh + new epoch) */
		t0 = mono_ms();
		while (authn_verify(v, w.token, (int64_t)time(NULL), &p, &e) != STATUS_OK &&
		       mono_ms() - t0 < 5000)
			usleep(10 * 1000);
	}
	CHECK(worst <= 1000,
	      "password change: old token refused via the identity stream within "
	      "%lld ms (worst of %d)",
	      (long long)worst, trials);
	/* disable the user */
	snprintf(path, sizeof(path), "/api/v1/users/%s/disable", uid);
	r = req("POST", path, pa->token, NULL);
	t0 = mono_ms();
	resp_free(&r);
	while (authn_verify(v, w.token, (int64_t)time(NULL), &p, &e) == STATUS_OK &&
	       mono_ms() - t0 < 5000)
		usleep(2000);
	CHECK(mono_ms() - t0 <= 1000, "disabled user: refused within %lld ms",
	      (long long)(mono_ms() - t0));
	r = req("GET", "/api/v1/auth/me", w.token, NULL);
	CHECK(r.code == 401, "disabled user's token refused by auth");
	resp_free(&r);
	CHECK(!login(tenant, user, pw, NULL), "disabled user cannot log in");
	snprintf(path, sizeof(path), "/api/v1/users/%s/enable", uid);
	r = req("POST", path, pa->token, NULL);
	resp_free(&r);
	authn_listener_stop(l);
	/* stale stream: without a listener nothing is heard; the verifier fails closed */
	sleep(4);
	must_login(tenant, user, pw, &w);
	CHECK(authn_verify(v, w.token, (int64_t)time(NULL), &p, &e) == STATUS_UNAVAILABLE,
	      "no identity stream for >3 s -> fail closed (503)");
	authn_verifier_free(v);
}

static void test_tenant_disable(struct who *pa, const char *tenant, const char *tid,
                                const char *user, const char *pw)
{
	struct authn_config ac = { .issuer = "cairn-auth",
		                   .audience = "cairn",
		                   .require_fresh = true };
	struct authn_verifier *v;
	struct authn_listener *l;
	struct authn_principal p;
	struct err e;
	char url[256], path[256];
	struct who w;
	struct resp r;
	int64_t t0;

	snprintf(url, sizeof(url), "%s/api/v1/auth/jwks", base);
	ac.jwks_url = url;
	v = authn_verifier_new(&ac, &e);
	if (!v || authn_verifier_fetch_jwks(v, &e) != STATUS_OK)
		die("verifier: %s", e.msg);
	l = authn_listener_start(v, need_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, &e);
	must_login(tenant, user, pw, &w);
	t0 = mono_ms();
	while (authn_verify(v, w.token, (int64_t)time(NULL), &p, &e) != STATUS_OK &&
	       mono_ms() - t0 < 30000)
		usleep(50 * 1000);
	snprintf(path, sizeof(path), "/api/v1/tenants/%s/disable", tid);
	r = req("POST", path, pa->token, NULL);
	t0 = mono_ms();
	CHECK(r.code == 200, "tenant disabled");
	resp_free(&r);
	while (authn_verify(v, w.token, (int64_t)time(NULL), &p, &e) == STATUS_OK &&
	       mono_ms() - t0 < 5000)
		usleep(2000);
	CHECK(mono_ms() - t0 <= 1000, "disabled tenant: its user's token refused within %lld ms",
	      (long long)(mono_ms() - t0));
	CHECK(!login(tenant, user, pw, NULL), "users of a disabled tenant cannot log in");
	snprintf(path, sizeof(path), "/api/v1/tenants/%s/enable", tid);
	r = req("POST", path, pa->token, NULL);
	resp_free(&r);
	authn_listener_stop(l);
	authn_verifier_free(v);
}

static int run_cmd(const char *bin, const char *arg)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		execl(bin, bin, arg, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Key rotation: a new key signs, the previous one stays published, old tokens still pass. */
static void test_rotation(const char *bin, struct who *pa, const char *pa_user, const char *pw)
{
	struct resp r, j;
	struct who fresh;
	int64_t t0;
	json_t *keys;

	CHECK(run_cmd(bin, "rotate-key") == 0, "cairn-auth rotate-key");
	t0 = mono_ms();
	do {
		usleep(200 * 1000);
		j = req("GET", "/api/v1/auth/jwks", NULL, NULL);
		keys = json_object_get(j.json, "keys");
		if (json_array_size(keys) == 2)
			break;
		resp_free(&j);
	} while (mono_ms() - t0 < 10000);
	CHECK(json_array_size(keys) == 2, "JWKS publishes the new and the previous key");
	must_login(NULL, pa_user, pw, &fresh);
	{
		char *d = strchr(fresh.token, '.');
		char *h = xstrndup(fresh.token, (size_t)(d - fresh.token));
		size_t n;
		unsigned char *hdr = authn_b64url_decode(h, strlen(h), &n);
		const char *newkid =
		        json_string_value(json_object_get(json_array_get(keys, 0), "kid"));

		CHECK(hdr && newkid && strstr((char *)hdr, newkid), "new tokens carry the new kid");
		free(hdr);
		free(h);
	}
	resp_free(&j);
	r = req("GET", "/api/v1/auth/me", pa->token, NULL);
	CHECK(r.code == 200, "a token of the previous key still passes");
	resp_free(&r);
	r = req("GET", "/api/v1/auth/me", fresh.token, NULL);
	CHECK(r.code == 200, "a token of the new key passes");
	resp_free(&r);
}

static void test_audit(struct who *pa, struct who *a_admin, const char *tid_b)
{
	struct resp r;
	char path[256];

	r = req("GET", "/api/v1/auth/audit?action=user.create&limit=50", pa->token, NULL);
	CHECK(r.code == 200 && strstr(r.body, "\"user.create\""), "audit: filter by action");
	resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/auth/audit?tenant_id=%s", tid_b);
	r = req("GET", path, a_admin->token, NULL);
	CHECK(r.code == 200 && !strstr(r.body, tid_b),
	      "audit: a tenant-admin sees no other tenant");
	resp_free(&r);
	r = req("GET", "/api/v1/auth/audit?format=csv&limit=5", pa->token, NULL);
	CHECK(r.code == 200 && strncmp(r.body, "id,at,tenant_id,", 16) == 0, "audit: CSV export");
	resp_free(&r);
}

int main(int argc, char **argv)
{
	struct err e;
	struct db_conn *dbc;
	int port;
	char pa_user[64], ta[32], tb[32], *tid_a, *tid_b, *uid_b, *uid_rev;
	const char *pa_pw = "provider admin passphrase";
	struct who pa, roles[5], b_admin;
	const char *rnames[5] = { "provider-admin", "tenant-admin", "backup-operator",
		                  "restore-operator", "viewer" };
	char *uids[5] = { 0 };

	if (argc != 2)
		die("usage: itest_auth <path to cairn-auth>");
	need_env("KAFKA_BOOTSTRAP_SERVERS");
	dbc = db_conn_new(need_env("CAIRN_DATABASE_URL"), &e);
	if (!dbc)
		die("database: %s", e.msg);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(run_id, sizeof(run_id), "%x", (unsigned)(time(NULL) ^ getpid()) & 0xfffffu);
	port = free_port();
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);

	/* The stack's bootstrap creates cairn_auth_rt (docs/auth.md); make sure, as the
	 * PostgreSQL superuser of the stack, that it is there. */
	if (getenv("CAIRN_PG_ADMIN_URL")) {
		struct db_conn *adm = db_conn_new(getenv("CAIRN_PG_ADMIN_URL"), &e);

		if (!adm ||
		    db_exec_script(
		            adm,
		            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
		            "'cairn_auth_rt') THEN CREATE ROLE cairn_auth_rt NOLOGIN "
		            "NOSUPERUSER NOBYPASSRLS NOINHERIT; GRANT cairn_auth_rt TO cairn; "
		            "END IF; END $$;",
		            &e) != STATUS_OK)
			printf("note: could not ensure role cairn_auth_rt: %s\n", e.msg);
		db_conn_free(adm);
	}
	/* bootstrap (credentials from the environment, never argv) */
	snprintf(pa_user, sizeof(pa_user), "padmin-%s", run_id);
	CHECK(run_bootstrap(argv[1], pa_user, "short") == 2, "bootstrap refuses a weak password");
	CHECK(run_bootstrap(argv[1], pa_user, pa_pw) == 0, "bootstrap creates the provider-admin");
	CHECK(run_bootstrap(argv[1], pa_user, pa_pw) == 3, "bootstrap twice: already exists");
	auth_start(argv[1], port);
	test_rls(dbc);
	/* the test's own reads see every tenant (the owner is bound by FORCE RLS too) */
	if (db_exec(dbc, "SELECT set_config('app.provider_admin', 'on', false)", 0, NULL, &e) !=
	    STATUS_OK)
		die("set_config: %s", e.msg);

	must_login(NULL, pa_user, pa_pw, &pa);
	me(&pa);
	roles[0] = pa;
	snprintf(ta, sizeof(ta), "ta-%s", run_id);
	snprintf(tb, sizeof(tb), "tb-%s", run_id);
	tid_a = create_tenant(&pa, ta);
	tid_b = create_tenant(&pa, tb);
	for (int k = 1; k < 5; k++) {
		char u[64];

		snprintf(u, sizeof(u), "%s-user", rnames[k]);
		uids[k] = create_user(&pa, tid_a, u, rnames[k], "correct horse battery staple");
		must_login(ta, u, "correct horse battery staple", &roles[k]);
		me(&roles[k]);
	}
	uid_b = create_user(&pa, tid_b, "admin-b", "tenant-admin", "correct horse battery staple");
	must_login(tb, "admin-b", "correct horse battery staple", &b_admin);
	uid_rev = create_user(&roles[1], tid_a, "rev", "viewer", "opening passphrase xx");

	test_jwt_corpus(dbc, &pa);
	test_refresh_and_logout(ta, "viewer-user", "correct horse battery staple");
	test_api_tokens(&roles[4], &roles[2]);
	test_role_matrix(roles, tid_a, uids[4]);
	for (int k = 1; k < 5; k++)
		test_cross_tenant(dbc, &roles[k], k == 1, uid_b, tid_b);
	test_bad_input(dbc, &pa, tid_a, uids[4]);
	test_audit(&pa, &roles[1], tid_b);
	test_revocation(&pa, ta, uid_rev, "rev", 100);
	test_rotation(argv[1], &pa, pa_user, pa_pw);
	test_tenant_disable(&pa, tb, tid_b, "admin-b", "correct horse battery staple");
	/* last: it blocks this address */
	test_throttle(ta);

	auth_stop();
	for (int k = 0; k < 5; k++)
		free(uids[k]);
	free(tid_a);
	free(tid_b);
	free(uid_b);
	free(uid_rev);
	db_conn_free(dbc);
	curl_global_cleanup();
	printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
	return failures ? 1 : 0;
}
