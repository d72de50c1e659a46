/* authn.c - JWT (ES256) verification against a JWKS, epoch table, freshness.
 * The Kafka listener lives in authn_listen.c, base64url in authn_b64.c. */
#include "common/authn.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "common/buf.h"
#include "common/xalloc.h"

#define TOKEN_MAX 8192
#define JWKS_MAX ((size_t)64 * 1024)
#define KEYS_MAX 16
#define PARTS_MAX 256

/* ---- a small string -> (value, stamp) map with expiry ---- */

struct smap_ent {
	char *key; /* NULL = empty slot */
	int64_t val;
	int64_t expires; /* unix seconds */
};

struct smap {
	struct smap_ent *ents;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static struct smap_ent *smap_slot(struct smap *m, const char *key)
{
	size_t i = hash_str(key) & (m->cap - 1);

	while (m->ents[i].key && strcmp(m->ents[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return &m->ents[i];
}

static void smap_cleanup(struct smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->ents[i].key);
	free(m->ents);
	m->ents = NULL;
	m->cap = m->n = 0;
}

/* Rebuild into a table of newcap slots, dropping entries expired at now. */
static void smap_rehash(struct smap *m, size_t newcap, int64_t now)
{
	struct smap old = *m;

	m->ents = xcalloc(newcap, sizeof(*m->ents));
	m->cap = newcap;
	m->n = 0;
	for (size_t i = 0; i < old.cap; i++) {
		struct smap_ent *o = &old.ents[i];
		struct smap_ent *s;

		if (!o->key)
			continue;
		if (o->expires < now) {
			free(o->key);
			continue;
		}
		s = smap_slot(m, o->key);
		*s = *o;
		m->n++;
	}
	free(old.ents);
}

static struct smap_ent *smap_get(struct smap *m, const char *key)
{
	struct smap_ent *s;

	if (!m->cap)
		return NULL;
	s = smap_slot(m, key);
	return s->key ? s : NULL;
}

/* Insert or find key; a new entry has val 0, expires 0. */
static struct smap_ent *smap_put(struct smap *m, const char *key, int64_t now)
{
	struct smap_ent *s;

	if (!m->cap)
		smap_rehash(m, 64, now);
	if ((m->n + 1) * 2 > m->cap) {
		smap_rehash(m, m->cap, now); /* drop expired first */
		if ((m->n + 1) * 2 > m->cap)
			smap_rehash(m, m->cap * 2, now);
	}
	s = smap_slot(m, key);
	if (!s->key) {
		s->key = xstrdup(key);
		s->val = 0;
		s->expires = 0;
		m->n++;
	}
	return s;
}

/* ---- the verifier ---- */

struct jwk {
	char *kid;
	EVP_PKEY *pkey;
};

struct authn_verifier {
	char *issuer, *audience, *jwks_url;
	int leeway_s, min_refetch_ms, fetch_timeout_ms, stale_ms, max_ttl_s;
	bool require_fresh;

	pthread_mutex_t mu; /* guards everything below */
	struct jwk keys[KEYS_MAX];
	int nkeys;
	int64_t last_fetch_ms; /* monotonic */
	bool fetching;
	struct smap users, tenants, sessions;
	int nparts;
	int64_t heard_ms[PARTS_MAX];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct authn_verifier *authn_verifier_new(const struct authn_config *cfg, struct err *e)
{
	struct authn_verifier *v;

	if (!cfg || !cfg->issuer || !*cfg->issuer || !cfg->audience || !*cfg->audience) {
		err_set(e, STATUS_INVALID, "authn: issuer and audience are required");
		return NULL;
	}
	v = xcalloc(1, sizeof(*v));
	v->issuer = xstrdup(cfg->issuer);
	v->audience = xstrdup(cfg->audience);
	v->jwks_url = cfg->jwks_url && *cfg->jwks_url ? xstrdup(cfg->jwks_url) : NULL;
	v->leeway_s = cfg->leeway_s > 0 ? cfg->leeway_s : 30;
	v->min_refetch_ms = cfg->min_refetch_ms > 0 ? cfg->min_refetch_ms : 2000;
	v->fetch_timeout_ms = cfg->fetch_timeout_ms > 0 ? cfg->fetch_timeout_ms : 2000;
	v->stale_ms = cfg->stale_ms > 0 ? cfg->stale_ms : 3000;
	v->max_ttl_s = cfg->max_token_ttl_s > 0 ? cfg->max_token_ttl_s : 1200;
	v->require_fresh = cfg->require_fresh;
	v->last_fetch_ms = INT64_MIN / 2;
	v->nparts = 1;
	for (int i = 0; i < PARTS_MAX; i++)
		v->heard_ms[i] = INT64_MIN;
	pthread_mutex_init(&v->mu, NULL);
	if (v->jwks_url)
		curl_global_init(CURL_GLOBAL_DEFAULT);
	return v;
}

static void keys_clear(struct jwk *keys, int n)
{
	for (int i = 0; i < n; i++) {
		free(keys[i].kid);
		EVP_PKEY_free(keys[i].pkey);
	}
}

void authn_verifier_free(struct authn_verifier *v)
{
	if (!v)
		return;
	keys_clear(v->keys, v->nkeys);
	smap_cleanup(&v->users);
	smap_cleanup(&v->tenants);
	smap_cleanup(&v->sessions);
	pthread_mutex_destroy(&v->mu);
	if (v->jwks_url)
		curl_global_cleanup();
	free(v->issuer);
	free(v->audience);
	free(v->jwks_url);
	free(v);
}

/* ---- roles ---- */

static const char *const role_names[] = {
	"provider-admin", "tenant-admin", "backup-operator", "restore-operator", "viewer",
};

const char *authn_role_name(unsigned role)
{
	for (unsigned i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (role == (1u << i))
			return role_names[i];
	return NULL;
}

unsigned authn_role_parse(const char *name)
{
	if (!name)
		return 0;
	for (unsigned i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (strcmp(name, role_names[i]) == 0)
			return 1u << i;
	return 0;
}

bool authn_principal_has_role(const struct authn_principal *p, unsigned roles)
{
	return p && (p->roles & roles) != 0;
}

const char *authn_principal_tenant(const struct authn_principal *p)
{
	return p->is_provider_admin ? NULL : p->tenant_id;
}

/* ---- JWKS ---- */

static EVP_PKEY *ec_key_from_xy(const unsigned char *x, const unsigned char *y)
{
	unsigned char pub[65];
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	EVP_PKEY *pkey = NULL;

	pub[0] = 0x04;
	memcpy(pub + 1, x, 32);
	memcpy(pub + 33, y, 32);
	bld = OSSL_PARAM_BLD_new();
	if (!bld)
		goto out;
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	/* Refuse points not on the curve (invalid-curve attacks). */
	chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!chk || EVP_PKEY_public_check(chk) <= 0) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Parse one JWK; @returns true and fills *k when usable. */
static bool jwk_parse(json_t *jk, struct jwk *k)
{
	const char *kty = jstr(jk, "kty"), *crv = jstr(jk, "crv"), *kid = jstr(jk, "kid");
	const char *alg = jstr(jk, "alg"), *use = jstr(jk, "use");
	const char *xs = jstr(jk, "x"), *ys = jstr(jk, "y");
	unsigned char *x = NULL, *y = NULL;
	size_t xn = 0, yn = 0;
	bool ok = false;

	if (!kty || strcmp(kty, "EC") != 0 || !crv || strcmp(crv, "P-256") != 0 || !kid || !*kid ||
	    strlen(kid) >= AUTHN_ID_MAX || !xs || !ys)
		return false;
	if ((json_object_get(jk, "alg") && (!alg || strcmp(alg, "ES256") != 0)) ||
	    (json_object_get(jk, "use") && (!use || strcmp(use, "sig") != 0)))
		return false;
	if (json_object_get(jk, "d")) /* a private key has no business in a JWKS */
		return false;
	x = authn_b64url_decode(xs, strlen(xs), &xn);
	y = authn_b64url_decode(ys, strlen(ys), &yn);
	if (!x || !y || xn != 32 || yn != 32)
		goto out;
	k->pkey = ec_key_from_xy(x, y);
	if (!k->pkey)
		goto out;
	k->kid = xstrdup(kid);
	ok = true;
out:
	free(x);
	free(y);
	return ok;
}

enum status authn_verifier_set_jwks(struct authn_verifier *v, const char *jwks, struct err *e)
{
	json_error_t jerr;
	json_t *root, *arr, *jk;
	struct jwk keys[KEYS_MAX], old[KEYS_MAX];
	int n = 0, nold;
	size_t i;

	if (!jwks)
		return err_set(e, STATUS_INVALID, "jwks: empty");
	root = json_loads(jwks, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return err_set(e, STATUS_INVALID, "jwks: %s", jerr.text);
	arr = json_object_get(root, "keys");
	if (!json_is_array(arr)) {
		json_decref(root);
		return err_set(e, STATUS_INVALID, "jwks: no keys array");
	}
	json_array_foreach(arr, i, jk)
	{
		if (n < KEYS_MAX && json_is_object(jk) && jwk_parse(jk, &keys[n]))
			n++;
	}
	json_decref(root);
	if (n == 0)
		return err_set(e, STATUS_INVALID, "jwks: no usable ES256 P-256 key");
	pthread_mutex_lock(&v->mu);
	nold = v->nkeys;
	memcpy(old, v->keys, sizeof(old[0]) * (size_t)nold);
	memcpy(v->keys, keys, sizeof(keys[0]) * (size_t)n);
	v->nkeys = n;
	pthread_mutex_unlock(&v->mu);
	keys_clear(old, nold);
	return STATUS_OK;
}

static size_t curl_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;

	if (b->len + n > JWKS_MAX)
		return 0;
	buf_append(b, ptr, n);
	return n;
}

enum status authn_verifier_fetch_jwks(struct authn_verifier *v, struct err *e)
{
	CURL *c;
	CURLcode rc;
	long code = 0;
	struct buf b;
	enum status st;

	if (!v->jwks_url)
		return err_set(e, STATUS_INVALID, "jwks: no url configured");
	pthread_mutex_lock(&v->mu);
	v->last_fetch_ms = mono_ms();
	pthread_mutex_unlock(&v->mu);
	c = curl_easy_init();
	if (!c)
		return err_set_retriable(e, STATUS_UNAVAILABLE, "jwks: curl_easy_init failed");
	buf_init(&b);
	curl_easy_setopt(c, CURLOPT_URL, v->jwks_url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)v->fetch_timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		st = err_set_retriable(e, STATUS_UNAVAILABLE, "jwks: fetch %s: %s", v->jwks_url,
		                       curl_easy_strerror(rc));
		goto out;
	}
	if (code != 200) {
		st = err_set_retriable(e, STATUS_UNAVAILABLE, "jwks: fetch %s: HTTP %ld",
		                       v->jwks_url, code);
		goto out;
	}
	st = authn_verifier_set_jwks(v, b.data ? b.data : "", e);
out:
	buf_cleanup(&b);
	return st;
}

/* @returns a new reference to the key for kid, or NULL. */
static EVP_PKEY *key_get(struct authn_verifier *v, const char *kid)
{
	EVP_PKEY *k = NULL;

	pthread_mutex_lock(&v->mu);
	for (int i = 0; i < v->nkeys; i++) {
		if (strcmp(v->keys[i].kid, kid) == 0) {
			k = v->keys[i].pkey;
			EVP_PKEY_up_ref(k);
			break;
		}
	}
	pthread_mutex_unlock(&v->mu);
	return k;
}

/* Refetch on an unknown kid, at most once per min_refetch_ms and one fetch at a time. */
static void maybe_refetch(struct authn_verifier *v)
{
	bool go = false;
	struct err e;

	if (!v->jwks_url)
		return;
	pthread_mutex_lock(&v->mu);
	if (!v->fetching && mono_ms() - v->last_fetch_ms >= v->min_refetch_ms) {
		v->fetching = true;
		go = true;
	}
	pthread_mutex_unlock(&v->mu);
	if (!go)
		return;
	/* On failure the previous keys stay in place; the caller sees "unknown kid". */
	if (authn_verifier_fetch_jwks(v, &e) != STATUS_OK)
		e.code = STATUS_OK;
	pthread_mutex_lock(&v->mu);
	v->fetching = false;
	pthread_mutex_unlock(&v->mu);
}

/* ---- signature ---- */

static bool es256_verify(EVP_PKEY *pkey, const char *msg, size_t msglen, const unsigned char *sig,
                         size_t siglen)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int derlen;
	EVP_MD_CTX *md = NULL;
	bool ok = false;

	if (siglen != 64)
		return false;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	s = BN_bin2bn(sig + 32, 32, NULL);
	if (!es || !r || !s || BN_is_zero(r) || BN_is_zero(s))
		goto out;
	if (!ECDSA_SIG_set0(es, r, s))
		goto out;
	r = s = NULL; /* owned by es now */
	derlen = i2d_ECDSA_SIG(es, &der);
	if (derlen <= 0)
		goto out;
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1)
		goto out;
	ok = EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)msg, msglen) == 1;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return ok;
}

/* ---- claims ---- */

static json_t *decode_json_part(const char *s, size_t n)
{
	unsigned char *raw;
	size_t rawn;
	json_t *j;
	json_error_t jerr;

	raw = authn_b64url_decode(s, n, &rawn);
	if (!raw)
		return NULL;
	j = json_loadb((const char *)raw, rawn, JSON_REJECT_DUPLICATES, &jerr);
	free(raw);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static bool get_int(json_t *o, const char *k, int64_t *out)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v))
		return false;
	*out = (int64_t)json_integer_value(v);
	return true;
}

static bool copy_id(char *dst, const char *src)
{
	size_t n;

	if (!src)
		return false;
	n = strlen(src);
	if (n == 0 || n >= AUTHN_ID_MAX)
		return false;
	memcpy(dst, src, n + 1);
	return true;
}

static bool aud_matches(json_t *aud, const char *want)
{
	size_t i;
	json_t *a;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, a)
	{
		if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
			return true;
	}
	return false;
}

static enum status check_claims(struct authn_verifier *v, json_t *pl, int64_t now,
                                struct authn_principal *p, struct err *e)
{
	const char *iss = jstr(pl, "iss");
	json_t *roles = json_object_get(pl, "roles"), *r, *tid = json_object_get(pl, "tid");
	json_t *sid = json_object_get(pl, "sid");
	int64_t exp, iat, nbf;
	size_t i;

	if (!iss || strcmp(iss, v->issuer) != 0)
		return err_set(e, STATUS_UNAUTHORIZED, "token: wrong issuer");
	if (!aud_matches(json_object_get(pl, "aud"), v->audience))
		return err_set(e, STATUS_UNAUTHORIZED, "token: wrong audience");
	if (!get_int(pl, "exp", &exp) || !get_int(pl, "iat", &iat))
		return err_set(e, STATUS_UNAUTHORIZED, "token: exp/iat missing");
	if (now >= exp + v->leeway_s)
		return err_set(e, STATUS_UNAUTHORIZED, "token: expired");
	if (iat > now + v->leeway_s)
		return err_set(e, STATUS_UNAUTHORIZED, "token: issued in the future");
	if (json_object_get(pl, "nbf")) {
		if (!get_int(pl, "nbf", &nbf))
			return err_set(e, STATUS_UNAUTHORIZED, "token: nbf not an integer");
		if (now + v->leeway_s < nbf)
			return err_set(e, STATUS_UNAUTHORIZED, "token: not yet valid");
	}
	if (exp - iat > v->max_ttl_s)
		return err_set(e, STATUS_UNAUTHORIZED, "token: lifetime too long");
	if (!copy_id(p->user_id, jstr(pl, "sub")))
		return err_set(e, STATUS_UNAUTHORIZED, "token: bad sub");
	if (!copy_id(p->token_id, jstr(pl, "jti")))
		return err_set(e, STATUS_UNAUTHORIZED, "token: bad jti");
	if (sid && !copy_id(p->session_id, json_string_value(sid)))
		return err_set(e, STATUS_UNAUTHORIZED, "token: bad sid");
	if (!get_int(pl, "epoch", &p->epoch))
		return err_set(e, STATUS_UNAUTHORIZED, "token: epoch missing");
	if (!json_is_array(roles))
		return err_set(e, STATUS_UNAUTHORIZED, "token: roles missing");
	json_array_foreach(roles, i, r)
	{
		unsigned bit = authn_role_parse(json_string_value(r));

		if (!bit)
			return err_set(e, STATUS_UNAUTHORIZED, "token: unknown role");
		p->roles |= bit;
	}
	if (!p->roles)
		return err_set(e, STATUS_UNAUTHORIZED, "token: no role");
	p->is_provider_admin = (p->roles & AUTHN_ROLE_PROVIDER_ADMIN) != 0;
	if (p->is_provider_admin) {
		/* A provider-admin belongs to no tenant and holds no tenant role. */
		if (tid || p->roles != AUTHN_ROLE_PROVIDER_ADMIN)
			return err_set(e, STATUS_UNAUTHORIZED, "token: provider-admin with tenant");
	} else {
		if (!tid || !copy_id(p->tenant_id, json_string_value(tid)))
			return err_set(e, STATUS_UNAUTHORIZED, "token: tenant missing");
		if (!get_int(pl, "tepoch", &p->tenant_epoch))
			return err_set(e, STATUS_UNAUTHORIZED, "token: tepoch missing");
	}
	p->expires_at = exp;
	return STATUS_OK;
}

static enum status check_revocation(struct authn_verifier *v, const struct authn_principal *p,
                                    int64_t now, struct err *e)
{
	struct smap_ent *ent;
	enum status st = STATUS_OK;

	pthread_mutex_lock(&v->mu);
	ent = smap_get(&v->users, p->user_id);
	if (ent && p->epoch < ent->val) {
		st = err_set(e, STATUS_UNAUTHORIZED, "token: user epoch revoked");
		goto out;
	}
	if (p->tenant_id[0]) {
		ent = smap_get(&v->tenants, p->tenant_id);
		if (ent && p->tenant_epoch < ent->val) {
			st = err_set(e, STATUS_UNAUTHORIZED, "token: tenant epoch revoked");
			goto out;
		}
	}
	if (p->session_id[0]) {
		ent = smap_get(&v->sessions, p->session_id);
		if (ent && ent->expires >= now) {
			st = err_set(e, STATUS_UNAUTHORIZED, "token: session revoked");
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&v->mu);
	return st;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum status authn_verify(struct authn_verifier *v, const char *token, int64_t now_s,
                         struct authn_principal *out, struct err *e)
{
	const char *d1, *d2, *alg, *typ, *kid;
	size_t len;
	json_t *hdr = NULL, *pl = NULL;
	unsigned char *sig = NULL;
	size_t siglen;
	EVP_PKEY *pkey = NULL;
	enum status st;
	struct authn_principal p;

	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	if (!token)
		return err_set(e, STATUS_UNAUTHORIZED, "token: missing");
	len = strnlen(token, TOKEN_MAX + 1);
	if (len == 0 || len > TOKEN_MAX)
		return err_set(e, STATUS_UNAUTHORIZED, "token: empty or too long");
	d1 = strchr(token, '.');
	d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return err_set(e, STATUS_UNAUTHORIZED, "token: not a compact JWS");
	hdr = decode_json_part(token, (size_t)(d1 - token));
	if (!hdr) {
		st = err_set(e, STATUS_UNAUTHORIZED, "token: bad header");
		goto out;
	}
	alg = jstr(hdr, "alg");
	typ = jstr(hdr, "typ");
	kid = jstr(hdr, "kid");
	/* The algorithm is pinned: whatever else the header says, only ES256 is checked. */
	if (!alg || strcmp(alg, "ES256") != 0) {
		st = err_set(e, STATUS_UNAUTHORIZED, "token: algorithm not ES256");
		goto out;
	}
	if ((json_object_get(hdr, "typ") && (!typ || strcmp(typ, "JWT") != 0)) ||
	    json_object_get(hdr, "crit")) {
		st = err_set(e, STATUS_UNAUTHORIZED, "token: unsupported header");
		goto out;
	}
	if (!kid || !*kid) {
		st = err_set(e, STATUS_UNAUTHORIZED, "token: kid missing");
		goto out;
	}
	sig = authn_b64url_decode(d2 + 1, strlen(d2 + 1), &siglen);
	if (!sig || siglen != 64) {
		st = err_set(e, STATUS_UNAUTHORIZED, "token: bad signature encoding");
		goto out;
	}
	pkey = key_get(v, kid);
	if (!pkey) {
		maybe_refetch(v);
		pkey = key_get(v, kid);
	}
	if (!pkey) {
		st = err_set(e, STATUS_UNAUTHORIZED, "token: unknown kid");
		goto out;
	}
	if (!es256_verify(pkey, token, (size_t)(d2 - token), sig, siglen)) {
		st = err_set(e, STATUS_UNAUTHORIZED, "token: bad signature");
		goto out;
	}
	pl = decode_json_part(d1 + 1, (size_t)(d2 - d1 - 1));
	if (!pl) {
		st = err_set(e, STATUS_UNAUTHORIZED, "token: bad payload");
		goto out;
	}
	st = check_claims(v, pl, now_s, &p, e);
	if (st != STATUS_OK)
		goto out;
	if (v->require_fresh && authn_staleness_ms(v, wall_ms()) > v->stale_ms) {
		st = err_set_retriable(e, STATUS_UNAVAILABLE, "identity stream stale");
		goto out;
	}
	st = check_revocation(v, &p, now_s, e);
	if (st != STATUS_OK)
		goto out;
	*out = p;
out:
	EVP_PKEY_free(pkey);
	free(sig);
	json_decref(pl);
	json_decref(hdr);
	return st;
}

enum status authn_verify_header(struct authn_verifier *v, const char *authorization, int64_t now_s,
                                struct authn_principal *out, struct err *e)
{
	const char *t;

	memset(out, 0, sizeof(*out));
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return err_set(e, STATUS_UNAUTHORIZED, "token: no bearer credentials");
	t = authorization + 7;
	while (*t == ' ')
		t++;
	return authn_verify(v, t, now_s, out, e);
}

/* ---- epochs, sessions, freshness ---- */

void authn_epoch_user_set(struct authn_verifier *v, const char *user_id, int64_t epoch,
                          int64_t now_s)
{
	struct smap_ent *ent;

	pthread_mutex_lock(&v->mu);
	ent = smap_put(&v->users, user_id, now_s);
	if (epoch > ent->val)
		ent->val = epoch;
	ent->expires = now_s + v->max_ttl_s + v->leeway_s;
	pthread_mutex_unlock(&v->mu);
}

void authn_epoch_tenant_set(struct authn_verifier *v, const char *tenant_id, int64_t epoch,
                            int64_t now_s)
{
	struct smap_ent *ent;

	pthread_mutex_lock(&v->mu);
	ent = smap_put(&v->tenants, tenant_id, now_s);
	if (epoch > ent->val)
		ent->val = epoch;
	ent->expires = now_s + v->max_ttl_s + v->leeway_s;
	pthread_mutex_unlock(&v->mu);
}

void authn_session_revoke(struct authn_verifier *v, const char *session_id, int64_t until_s)
{
	struct smap_ent *ent;
	int64_t now = (int64_t)time(NULL);

	pthread_mutex_lock(&v->mu);
	ent = smap_put(&v->sessions, session_id, now);
	if (until_s + v->leeway_s > ent->expires)
		ent->expires = until_s + v->leeway_s;
	pthread_mutex_unlock(&v->mu);
}

void authn_verifier_set_partitions(struct authn_verifier *v, int n)
{
	if (n < 1)
		n = 1;
	if (n > PARTS_MAX)
		n = PARTS_MAX;
	pthread_mutex_lock(&v->mu);
	v->nparts = n;
	for (int i = 0; i < PARTS_MAX; i++)
		v->heard_ms[i] = INT64_MIN;
	pthread_mutex_unlock(&v->mu);
}

void authn_heard(struct authn_verifier *v, int partition, int64_t at_ms)
{
	if (partition < 0 || partition >= PARTS_MAX)
		return;
	pthread_mutex_lock(&v->mu);
	if (at_ms > v->heard_ms[partition])
		v->heard_ms[partition] = at_ms;
	pthread_mutex_unlock(&v->mu);
}

int64_t authn_staleness_ms(struct authn_verifier *v, int64_t now_ms)
{
	int64_t oldest = INT64_MAX;

	pthread_mutex_lock(&v->mu);
	for (int i = 0; i < v->nparts; i++)
		if (v->heard_ms[i] < oldest)
			oldest = v->heard_ms[i];
	pthread_mutex_unlock(&v->mu);
	if (oldest == INT64_MIN)
		return INT64_MAX;
	return now_ms > oldest ? now_ms - oldest : 0;
}

enum status authn_apply_event(struct authn_verifier *v, const char *type, const char *data,
                              size_t len, int partition, int64_t now_s, struct err *e)
{
	json_t *j;
	json_error_t jerr;
	int64_t n;
	const char *id;
	enum status st = STATUS_OK;

	if (!type)
		return STATUS_OK;
	if (strcmp(type, AUTHN_EVENT_USER_CHANGED) != 0 &&
	    strcmp(type, AUTHN_EVENT_TENANT_CHANGED) != 0 &&
	    strcmp(type, AUTHN_EVENT_SESSION_REVOKED) != 0 &&
	    strcmp(type, AUTHN_EVENT_HEARTBEAT) != 0)
		return STATUS_OK;
	j = json_loadb(data ? data : "", data ? len : 0, 0, &jerr);
	if (!json_is_object(j)) {
		st = err_set(e, STATUS_INVALID, "%s: payload is not a JSON object", type);
		goto out;
	}
	if (strcmp(type, AUTHN_EVENT_HEARTBEAT) == 0) {
		if (!get_int(j, "at_ms", &n)) {
			st = err_set(e, STATUS_INVALID, "%s: at_ms missing", type);
			goto out;
		}
		authn_heard(v, partition, n);
	} else if (strcmp(type, AUTHN_EVENT_SESSION_REVOKED) == 0) {
		id = jstr(j, "session_id");
		if (!id || !*id || strlen(id) >= AUTHN_ID_MAX || !get_int(j, "until", &n)) {
			st = err_set(e, STATUS_INVALID, "%s: session_id/until missing", type);
			goto out;
		}
		authn_session_revoke(v, id, n);
	} else {
		bool user = strcmp(type, AUTHN_EVENT_USER_CHANGED) == 0;

		id = jstr(j, user ? "user_id" : "tenant_id");
		if (!id || !*id || strlen(id) >= AUTHN_ID_MAX || !get_int(j, "epoch", &n)) {
			st = err_set(e, STATUS_INVALID, "%s: id/epoch missing", type);
			goto out;
		}
		if (user)
			authn_epoch_user_set(v, id, n, now_s);
		else
			authn_epoch_tenant_set(v, id, n, now_s);
	}
out:
	json_decref(j);
	return st;
}
