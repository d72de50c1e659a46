/* Unit tests for the token verifier (authn): the JWT negative corpus, epochs, freshness.
 * Tokens are made here with OpenSSL directly, so the verifier is checked against an
 * independent signer; no network. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "common/authn.h"
#include "common/buf.h"
#include "common/xalloc.h"

#include <cmocka.h>

#define ISS "cairn-auth"
#define AUD "cairn"
#define UID "11111111-1111-4111-8111-111111111111"
#define TID "22222222-2222-4222-8222-222222222222"

static int64_t now;

struct fx {
	EVP_PKEY *key, *other;
	char *jwks;
	struct authn_verifier *v;
};

static EVP_PKEY *gen_ec(void)
{
	return EVP_EC_gen("P-256");
}

static char *jwk_of(EVP_PKEY *k, const char *kid)
{
	BIGNUM *x = NULL, *y = NULL;
	unsigned char xb[32], yb[32];
	char *xs, *ys, *out;

	assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
	assert_int_equal(BN_bn2binpad(x, xb, 32), 32);
	assert_int_equal(BN_bn2binpad(y, yb, 32), 32);
	xs = authn_b64url_encode(xb, 32);
	ys = authn_b64url_encode(yb, 32);
	out = xasprintf("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"alg\":\"ES256\","
	                "\"use\":\"sig\",\"x\":\"%s\",\"y\":\"%s\"}",
	                kid, xs, ys);
	free(xs);
	free(ys);
	BN_free(x);
	BN_free(y);
	return out;
}

static char *b64s(const char *s)
{
	return authn_b64url_encode(s, strlen(s));
}

/* header.payload signed with ES256 by k; raw r||s. */
static char *sign_es256(EVP_PKEY *k, const char *hdr, const char *pl)
{
	char *h = b64s(hdr), *p = b64s(pl), *input, *sig64, *out;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[128], raw[64];
	const unsigned char *dp = der;
	size_t dl = sizeof(der);
	ECDSA_SIG *es;
	const BIGNUM *r, *s;

	input = xasprintf("%s.%s", h, p);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(md, der, &dl, (const unsigned char *)input, strlen(input)),
	                 1);
	es = d2i_ECDSA_SIG(NULL, &dp, (long)dl);
	assert_non_null(es);
	ECDSA_SIG_get0(es, &r, &s);
	BN_bn2binpad(r, raw, 32);
	BN_bn2binpad(s, raw + 32, 32);
	sig64 = authn_b64url_encode(raw, 64);
	out = xasprintf("%s.%s", input, sig64);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	free(h);
	free(p);
	free(input);
	free(sig64);
	return out;
}

static char *sign_hs256(const char *secret, size_t slen, const char *hdr, const char *pl)
{
	char *h = b64s(hdr), *p = b64s(pl), *input, *sig64, *out;
	unsigned char mac[32];
	unsigned int ml = sizeof(mac);

	input = xasprintf("%s.%s", h, p);
	HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)input, strlen(input), mac,
	     &ml);
	sig64 = authn_b64url_encode(mac, ml);
	out = xasprintf("%s.%s", input, sig64);
	free(h);
	free(p);
	free(input);
	free(sig64);
	return out;
}

static char *sign_rs256(const char *hdr, const char *pl)
{
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	char *h = b64s(hdr), *p = b64s(pl), *input, *sig64, *out;
	unsigned char sig[512];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	input = xasprintf("%s.%s", h, p);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, rsa), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &sl, (const unsigned char *)input, strlen(input)),
	                 1);
	sig64 = authn_b64url_encode(sig, sl);
	out = xasprintf("%s.%s", input, sig64);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(rsa);
	free(h);
	free(p);
	free(input);
	free(sig64);
	return out;
}

#define HDR "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"k1\"}"

static char *payload(const char *extra_override)
{
	if (extra_override)
		return xstrdup(extra_override);
	return xasprintf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"" UID
	                 "\",\"tid\":\"" TID "\",\"roles\":[\"backup-operator\"],"
	                 "\"epoch\":3,\"tepoch\":5,\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,"
	                 "\"jti\":\"j1\",\"sid\":\"s1\"}",
	                 (long long)now, (long long)now, (long long)now + 900);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct authn_config cfg = { .issuer = ISS, .audience = AUD };
	struct err e;
	char *jwk;

	now = (int64_t)time(NULL);
	f->key = gen_ec();
	f->other = gen_ec();
	jwk = jwk_of(f->key, "k1");
	f->jwks = xasprintf("{\"keys\":[%s]}", jwk);
	free(jwk);
	f->v = authn_verifier_new(&cfg, &e);
	assert_non_null(f->v);
	assert_int_equal(authn_verifier_set_jwks(f->v, f->jwks, &e), STATUS_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	authn_verifier_free(f->v);
	EVP_PKEY_free(f->key);
	EVP_PKEY_free(f->other);
	free(f->jwks);
	free(f);
	return 0;
}

static enum status verify(struct fx *f, const char *tok, struct authn_principal *p)
{
	struct err e;
	struct authn_principal tmp;

	return authn_verify(f->v, tok, now, p ? p : &tmp, &e);
}

static void expect_401_pl(struct fx *f, const char *hdr, const char *pl)
{
	char *t = sign_es256(f->key, hdr, pl);

	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
}

static void test_valid_token(void **state)
{
	struct fx *f = *state;
	char *pl = payload(NULL), *t = sign_es256(f->key, HDR, pl);
	struct authn_principal p;
	char *hdr;
	struct err e;

	assert_int_equal(verify(f, t, &p), STATUS_OK);
	assert_string_equal(p.user_id, UID);
	assert_string_equal(p.tenant_id, TID);
	assert_string_equal(p.session_id, "s1");
	assert_int_equal(p.roles, AUTHN_ROLE_BACKUP_OPERATOR);
	assert_false(p.is_provider_admin);
	assert_int_equal(p.epoch, 3);
	assert_int_equal(p.tenant_epoch, 5);
	assert_true(authn_principal_has_role(&p, AUTHN_ROLE_BACKUP_OPERATOR | AUTHN_ROLE_VIEWER));
	assert_false(authn_principal_has_role(&p, AUTHN_ROLES_ADMIN));
	assert_string_equal(authn_principal_tenant(&p), TID);
	hdr = xasprintf("bearer  %s", t);
	assert_int_equal(authn_verify_header(f->v, hdr, now, &p, &e), STATUS_OK);
	assert_int_equal(authn_verify_header(f->v, t, now, &p, &e), STATUS_UNAUTHORIZED);
	assert_int_equal(authn_verify_header(f->v, NULL, now, &p, &e), STATUS_UNAUTHORIZED);
	free(hdr);
	hdr = xasprintf("Basic %s", t);
	assert_int_equal(authn_verify_header(f->v, hdr, now, &p, &e), STATUS_UNAUTHORIZED);
	free(hdr);
	free(t);
	free(pl);
}

static void test_provider_admin(void **state)
{
	struct fx *f = *state;
	char *pl = xasprintf("{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD "\"],\"sub\":\"" UID
	                     "\",\"roles\":[\"provider-admin\"],\"epoch\":1,\"iat\":%lld,"
	                     "\"exp\":%lld,\"jti\":\"j2\"}",
	                     (long long)now, (long long)now + 900);
	char *t = sign_es256(f->key, HDR, pl);
	struct authn_principal p;

	assert_int_equal(verify(f, t, &p), STATUS_OK);
	assert_true(p.is_provider_admin);
	assert_null(authn_principal_tenant(&p));
	free(t);
	free(pl);
	/* provider-admin with a tenant, or mixed with tenant roles: refused */
	pl = xasprintf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"" UID "\",\"tid\":\"" TID
	               "\",\"tepoch\":1,\"roles\":[\"provider-admin\"],"
	               "\"epoch\":1,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j2\"}",
	               (long long)now, (long long)now + 900);
	expect_401_pl(f, HDR, pl);
	free(pl);
	pl = xasprintf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"" UID
	               "\",\"roles\":[\"provider-admin\",\"viewer\"],"
	               "\"epoch\":1,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j2\"}",
	               (long long)now, (long long)now + 900);
	expect_401_pl(f, HDR, pl);
	free(pl);
}

static void test_alg_none_and_others(void **state)
{
	struct fx *f = *state;
	char *pl = payload(NULL), *h, *p, *t;
	const char *hdrs[] = {
		"{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
		"{\"alg\":\"None\",\"kid\":\"k1\"}",
		"{\"alg\":\"es256\",\"kid\":\"k1\"}",
		"{\"alg\":\"ES384\",\"kid\":\"k1\"}",
		"{\"alg\":\"HS256\",\"kid\":\"k1\"}",
		"{\"kid\":\"k1\"}",
		"{\"alg\":[\"ES256\"],\"kid\":\"k1\"}",
	};

	/* "none": empty signature, and with a (valid ES256) signature too */
	h = b64s(hdrs[0]);
	p = b64s(pl);
	t = xasprintf("%s.%s.", h, p);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	t = xasprintf("%s.%s", h, p);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	free(h);
	free(p);
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
		expect_401_pl(f, hdrs[i], pl);
	free(pl);
}

static void test_hs256_with_public_key(void **state)
{
	struct fx *f = *state;
	char *pl = payload(NULL), *t, *pem;
	BIO *b = BIO_new(BIO_s_mem());
	long n;
	const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}";

	PEM_write_bio_PUBKEY(b, f->key);
	n = BIO_get_mem_data(b, &pem);
	t = sign_hs256(pem, (size_t)n, hdr, pl);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	/* and with the JWKS text as the secret */
	t = sign_hs256(f->jwks, strlen(f->jwks), hdr, pl);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	/* an HMAC of the right length under an ES256 header: still a bad signature */
	t = sign_hs256(pem, (size_t)n, HDR, pl);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	BIO_free(b);
	free(pl);
}

static void test_rs256(void **state)
{
	struct fx *f = *state;
	char *pl = payload(NULL);
	char *t = sign_rs256("{\"alg\":\"RS256\",\"kid\":\"k1\"}", pl);

	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	t = sign_rs256(HDR, pl);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	free(pl);
}

static char *pl_times(long long iat, long long nbf, long long exp)
{
	return xasprintf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"" UID
	                 "\",\"tid\":\"" TID "\",\"roles\":[\"viewer\"],\"epoch\":0,"
	                 "\"tepoch\":0,\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
	                 iat, nbf, exp);
}

static void test_times(void **state)
{
	struct fx *f = *state;
	char *pl, *t;
	struct {
		long long iat, nbf, exp;
		enum status want;
	} cases[] = {
		{ now - 1000, now - 1000, now - 100, STATUS_UNAUTHORIZED }, /* expired */
		{ now - 900, now - 900, now - 31, STATUS_UNAUTHORIZED },    /* beyond leeway */
		{ now - 900, now - 900, now - 10, STATUS_OK },              /* within leeway */
		{ now, now + 120, now + 900, STATUS_UNAUTHORIZED },         /* not yet valid */
		{ now, now + 10, now + 900, STATUS_OK },                    /* leeway */
		{ now + 300, now, now + 900, STATUS_UNAUTHORIZED },         /* iat in future */
		{ now, now, now + 86400, STATUS_UNAUTHORIZED },             /* lifetime too long */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pl = pl_times(cases[i].iat, cases[i].nbf, cases[i].exp);
		t = sign_es256(f->key, HDR, pl);
		assert_int_equal(verify(f, t, NULL), cases[i].want);
		free(t);
		free(pl);
	}
}

static void test_claims(void **state)
{
	struct fx *f = *state;
	char *pl;
	long long a = now, b = now + 900;
	const char *fmts[] = {
		/* wrong issuer */
		"{\"iss\":\"evil\",\"aud\":\"cairn\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":["
		"\"viewer\"],"
		"\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
		/* wrong audience */
		"{\"iss\":\"cairn-auth\",\"aud\":\"other\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":["
		"\"viewer\"],\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
		/* no audience */
		"{\"iss\":\"cairn-auth\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":["
		"\"viewer\"],\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
		/* no exp (exp given as string) */
		"{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":["
		"\"viewer\"],\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":\"%lld\",\"jti\":\"j\"}",
		/* no epoch */
		"{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":["
		"\"viewer\"],\"tepoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
		/* tenant role without tid */
		"{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"u\",\"roles\":["
		"\"viewer\"],\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
		/* no tepoch */
		"{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":["
		"\"viewer\"],\"epoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
		/* unknown role */
		"{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":["
		"\"root\"],\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
		/* empty roles */
		"{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":[]"
		","
		"\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
		/* no sub */
		"{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"tid\":\"t\",\"roles\":[\"viewer\"],"
		"\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\"}",
		/* no jti */
		"{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":["
		"\"viewer\"],\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":%lld}",
		/* duplicate claim */
		"{\"iss\":\"cairn-auth\",\"aud\":\"cairn\",\"sub\":\"u\",\"tid\":\"t\",\"roles\":["
		"\"viewer\"],\"epoch\":0,\"tepoch\":0,\"iat\":%lld,\"exp\":%lld,\"jti\":\"j\","
		"\"iss\":\"x\"}",
	};

	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		pl = xasprintf(fmts[i], a, b);
#pragma GCC diagnostic pop
		expect_401_pl(f, HDR, pl);
		free(pl);
	}
	expect_401_pl(f, HDR, "[1,2]");
	expect_401_pl(f, HDR, "not json");
	expect_401_pl(f, "{\"alg\":\"ES256\",\"kid\":\"k1\",\"crit\":[\"x\"]}", "{}");
	expect_401_pl(f, "{\"alg\":\"ES256\",\"kid\":\"k1\",\"alg\":\"ES256\"}", "{}");
}

static void test_kid_and_keys(void **state)
{
	struct fx *f = *state;
	char *pl = payload(NULL), *t;

	/* unknown kid */
	t = sign_es256(f->key, "{\"alg\":\"ES256\",\"kid\":\"nope\"}", pl);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	/* no kid */
	t = sign_es256(f->key, "{\"alg\":\"ES256\"}", pl);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	/* right kid, other key */
	t = sign_es256(f->other, HDR, pl);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	free(pl);
}

static void test_rotation(void **state)
{
	struct fx *f = *state;
	char *pl = payload(NULL), *t1, *t2, *j1, *j2, *jwks;
	struct err e;

	t1 = sign_es256(f->key, HDR, pl);
	t2 = sign_es256(f->other, "{\"alg\":\"ES256\",\"kid\":\"k2\"}", pl);
	assert_int_equal(verify(f, t2, NULL), STATUS_UNAUTHORIZED);
	j1 = jwk_of(f->key, "k1");
	j2 = jwk_of(f->other, "k2");
	jwks = xasprintf("{\"keys\":[%s,%s]}", j2, j1);
	assert_int_equal(authn_verifier_set_jwks(f->v, jwks, &e), STATUS_OK);
	assert_int_equal(verify(f, t1, NULL), STATUS_OK);
	assert_int_equal(verify(f, t2, NULL), STATUS_OK);
	free(jwks);
	/* k1 retired */
	jwks = xasprintf("{\"keys\":[%s]}", j2);
	assert_int_equal(authn_verifier_set_jwks(f->v, jwks, &e), STATUS_OK);
	assert_int_equal(verify(f, t1, NULL), STATUS_UNAUTHORIZED);
	assert_int_equal(verify(f, t2, NULL), STATUS_OK);
	free(jwks);
	/* a bad document keeps the previous keys */
	assert_int_equal(authn_verifier_set_jwks(f->v, "{\"keys\":[]}", &e), STATUS_INVALID);
	assert_int_equal(authn_verifier_set_jwks(f->v, "nonsense", &e), STATUS_INVALID);
	assert_int_equal(verify(f, t2, NULL), STATUS_OK);
	free(j1);
	free(j2);
	free(t1);
	free(t2);
	free(pl);
}

static void test_bad_jwks(void **state)
{
	struct fx *f = *state;
	struct err e;
	char *jwk = jwk_of(f->key, "k1"), *doc;
	const char *bad[] = {
		/* RSA */
		"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
		/* point not on the curve */
		"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\","
		"\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
		"\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
		/* wrong curve */
		"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"k\",\"x\":\"AA\",\"y\":"
		"\"AA\"}]}",
		/* oct key (HMAC) */
		"{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"k\":\"c2VjcmV0\"}]}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(authn_verifier_set_jwks(f->v, bad[i], &e), STATUS_INVALID);
	/* a key announced for another alg is skipped */
	doc = xasprintf("{\"keys\":[%.*s,\"alg\":\"HS256\"}]}", (int)strlen(jwk) - 1, jwk);
	/* duplicate "alg" member -> parse error -> invalid */
	assert_int_equal(authn_verifier_set_jwks(f->v, doc, &e), STATUS_INVALID);
	free(doc);
	free(jwk);
}

static void test_tampering(void **state)
{
	struct fx *f = *state;
	char *pl = payload(NULL), *t = sign_es256(f->key, HDR, pl), *t2, *p2, *h;
	char *dot1 = strchr(t, '.'), *dot2 = strrchr(t, '.');
	char *evil = xstrdup(pl);
	char *epoch = strstr(evil, "\"epoch\":3");

	/* payload with a raised epoch, original signature */
	epoch[8] = '9';
	h = xstrndup(t, (size_t)(dot1 - t));
	p2 = b64s(evil);
	t2 = xasprintf("%s.%s%s", h, p2, dot2);
	assert_int_equal(verify(f, t2, NULL), STATUS_UNAUTHORIZED);
	free(t2);
	/* flipped signature bits at several places */
	for (size_t off = 1; off < strlen(dot2); off += 7) {
		t2 = xstrdup(t);
		char *c = t2 + (dot2 - t) + off;

		*c = *c == 'A' ? 'B' : 'A';
		assert_int_equal(verify(f, t2, NULL), STATUS_UNAUTHORIZED);
		free(t2);
	}
	/* truncated signature, signature with padding, standard alphabet */
	t2 = xstrndup(t, strlen(t) - 4);
	assert_int_equal(verify(f, t2, NULL), STATUS_UNAUTHORIZED);
	free(t2);
	t2 = xasprintf("%s=", t);
	assert_int_equal(verify(f, t2, NULL), STATUS_UNAUTHORIZED);
	free(t2);
	t2 = xstrdup(t);
	t2[strlen(t2) - 3] = '+';
	assert_int_equal(verify(f, t2, NULL), STATUS_UNAUTHORIZED);
	free(t2);
	/* structure */
	assert_int_equal(verify(f, "", NULL), STATUS_UNAUTHORIZED);
	assert_int_equal(verify(f, NULL, NULL), STATUS_UNAUTHORIZED);
	assert_int_equal(verify(f, "a.b", NULL), STATUS_UNAUTHORIZED);
	assert_int_equal(verify(f, "a.b.c.d", NULL), STATUS_UNAUTHORIZED);
	assert_int_equal(verify(f, "..", NULL), STATUS_UNAUTHORIZED);
	assert_int_equal(verify(f, "!!.??.**", NULL), STATUS_UNAUTHORIZED);
	t2 = xasprintf("%s.%s", t, "x");
	assert_int_equal(verify(f, t2, NULL), STATUS_UNAUTHORIZED);
	free(t2);
	/* a JWE-like five part token */
	t2 = xasprintf("%s.a.b", t);
	assert_int_equal(verify(f, t2, NULL), STATUS_UNAUTHORIZED);
	free(t2);
	/* the valid token still passes */
	assert_int_equal(verify(f, t, NULL), STATUS_OK);
	free(h);
	free(p2);
	free(evil);
	free(t);
	free(pl);
}

static void test_epochs_and_sessions(void **state)
{
	struct fx *f = *state;
	char *pl = payload(NULL), *t = sign_es256(f->key, HDR, pl);
	struct err e;
	const char *ev;

	assert_int_equal(verify(f, t, NULL), STATUS_OK);
	authn_epoch_user_set(f->v, UID, 3, now);
	assert_int_equal(verify(f, t, NULL), STATUS_OK);
	/* epochs never go down */
	ev = "{\"user_id\":\"" UID "\",\"tenant_id\":\"" TID "\",\"epoch\":4}";
	assert_int_equal(authn_apply_event(f->v, "user.changed", ev, strlen(ev), 0, now, &e),
	                 STATUS_OK);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	authn_epoch_user_set(f->v, UID, 2, now);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	free(pl);

	/* tenant epoch */
	pl = xasprintf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u2\",\"tid\":\"" TID
	               "\",\"roles\":[\"viewer\"],\"epoch\":9,\"tepoch\":5,\"iat\":%lld,"
	               "\"exp\":%lld,\"jti\":\"j\"}",
	               (long long)now, (long long)now + 900);
	t = sign_es256(f->key, HDR, pl);
	assert_int_equal(verify(f, t, NULL), STATUS_OK);
	ev = "{\"tenant_id\":\"" TID "\",\"epoch\":6}";
	assert_int_equal(authn_apply_event(f->v, "tenant.changed", ev, strlen(ev), 0, now, &e),
	                 STATUS_OK);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	free(pl);

	/* session revoked */
	pl = xasprintf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u3\",\"tid\":\"t3\","
	               "\"roles\":[\"viewer\"],\"epoch\":0,\"tepoch\":0,\"iat\":%lld,"
	               "\"exp\":%lld,\"jti\":\"j\",\"sid\":\"sess-9\"}",
	               (long long)now, (long long)now + 900);
	t = sign_es256(f->key, HDR, pl);
	assert_int_equal(verify(f, t, NULL), STATUS_OK);
	ev = "{\"session_id\":\"sess-9\",\"until\":9999999999}";
	assert_int_equal(authn_apply_event(f->v, "session.revoked", ev, strlen(ev), 0, now, &e),
	                 STATUS_OK);
	assert_int_equal(verify(f, t, NULL), STATUS_UNAUTHORIZED);
	free(t);
	free(pl);

	/* malformed events of known types; unknown types ignored */
	assert_int_equal(authn_apply_event(f->v, "user.changed", "{}", 2, 0, now, &e),
	                 STATUS_INVALID);
	assert_int_equal(authn_apply_event(f->v, "tenant.changed", "[", 1, 0, now, &e),
	                 STATUS_INVALID);
	assert_int_equal(
	        authn_apply_event(f->v, "identity.heartbeat", "{\"at_ms\":\"x\"}", 13, 0, now, &e),
	        STATUS_INVALID);
	assert_int_equal(authn_apply_event(f->v, "job.requested", "garbage", 7, 0, now, &e),
	                 STATUS_OK);
}

static void test_many_epochs(void **state)
{
	struct fx *f = *state;
	char id[64];

	/* growth and expiry of the table: old entries are dropped on rehash */
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "user-%d", i);
		authn_epoch_user_set(f->v, id, i, i < 2500 ? now - 100000 : now);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "user-%d", i);
		authn_epoch_user_set(f->v, id, 1, now);
	}
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_fail_closed_when_stale(void **state)
{
	struct fx *f = *state;
	struct authn_config cfg = {
		.issuer = ISS, .audience = AUD, .require_fresh = true, .stale_ms = 2000
	};
	struct authn_verifier *v;
	struct authn_principal p;
	struct err e;
	char *pl = payload(NULL), *t = sign_es256(f->key, HDR, pl), *ev;

	v = authn_verifier_new(&cfg, &e);
	assert_non_null(v);
	assert_int_equal(authn_verifier_set_jwks(v, f->jwks, &e), STATUS_OK);
	authn_verifier_set_partitions(v, 2);
	/* never heard: unavailable */
	assert_int_equal(authn_verify(v, t, now, &p, &e), STATUS_UNAVAILABLE);
	assert_true(authn_staleness_ms(v, wall_ms()) == INT64_MAX);
	/* one partition of two: still unavailable */
	authn_heard(v, 0, wall_ms());
	assert_int_equal(authn_verify(v, t, now, &p, &e), STATUS_UNAVAILABLE);
	ev = xasprintf("{\"at_ms\":%lld}", (long long)wall_ms());
	assert_int_equal(authn_apply_event(v, "identity.heartbeat", ev, strlen(ev), 1, now, &e),
	                 STATUS_OK);
	free(ev);
	assert_int_equal(authn_verify(v, t, now, &p, &e), STATUS_OK);
	/* a bad token is still 401 first, not 503 */
	assert_int_equal(authn_verify(v, "x.y.z", now, &p, &e), STATUS_UNAUTHORIZED);
	/* partition 1 falls behind */
	authn_verifier_set_partitions(v, 2);
	authn_heard(v, 0, wall_ms());
	authn_heard(v, 1, wall_ms() - 5000);
	assert_int_equal(authn_verify(v, t, now, &p, &e), STATUS_UNAVAILABLE);
	assert_true(authn_staleness_ms(v, wall_ms()) >= 5000);
	authn_verifier_free(v);
	free(t);
	free(pl);
}

struct thr_arg {
	struct fx *f;
	const char *tok;
	int ok;
};

static void *verify_loop(void *a)
{
	struct thr_arg *ta = a;
	struct authn_principal p;
	struct err e;

	for (int i = 0; i < 300; i++)
		if (authn_verify(ta->f->v, ta->tok, now, &p, &e) == STATUS_OK)
			ta->ok++;
	return NULL;
}

static void test_threads(void **state)
{
	struct fx *f = *state;
	char *pl = payload(NULL), *t = sign_es256(f->key, HDR, pl);
	pthread_t th[4];
	struct thr_arg args[4];
	char id[32];
	struct err e;

	for (int i = 0; i < 4; i++) {
		args[i] = (struct thr_arg){ f, t, 0 };
		pthread_create(&th[i], NULL, verify_loop, &args[i]);
	}
	for (int i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "other-%d", i);
		authn_epoch_user_set(f->v, id, i, now);
		if (i % 500 == 0)
			assert_int_equal(authn_verifier_set_jwks(f->v, f->jwks, &e), STATUS_OK);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].ok, 300);
	}
	free(t);
	free(pl);
}

static void test_b64url(void **state)
{
	const char *vec[][2] = {
		{ "", "" },
		{ "f", "Zg" },
		{ "fo", "Zm8" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
	};
	unsigned char bin[3] = { 0xfb, 0xff, 0xfe };
	size_t n;
	char *s;
	unsigned char *d;

	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		s = authn_b64url_encode(vec[i][0], strlen(vec[i][0]));
		assert_string_equal(s, vec[i][1]);
		free(s);
		d = authn_b64url_decode(vec[i][1], strlen(vec[i][1]), &n);
		assert_non_null(d);
		assert_int_equal(n, strlen(vec[i][0]));
		assert_memory_equal(d, vec[i][0], n);
		free(d);
	}
	s = authn_b64url_encode(bin, 3);
	assert_string_equal(s, "-__-");
	free(s);
	assert_null(authn_b64url_decode("Zg==", 4, &n));
	assert_null(authn_b64url_decode("Z", 1, &n));
	assert_null(authn_b64url_decode("Zh", 2, &n)); /* non-zero trailing bits */
	assert_null(authn_b64url_decode("+/+/", 4, &n));
	assert_null(authn_b64url_decode("Zm 9", 4, &n));
}

static void test_roles(void **state)
{
	assert_int_equal(authn_role_parse("tenant-admin"), AUTHN_ROLE_TENANT_ADMIN);
	assert_int_equal(authn_role_parse("Tenant-Admin"), 0);
	assert_int_equal(authn_role_parse(NULL), 0);
	assert_string_equal(authn_role_name(AUTHN_ROLE_VIEWER), "viewer");
	assert_null(authn_role_name(3));
	for (unsigned b = 1; b <= AUTHN_ROLE_VIEWER; b <<= 1)
		assert_int_equal(authn_role_parse(authn_role_name(b)), b);
}

static void test_config(void **state)
{
	struct authn_config cfg = { 0 };
	struct err e;

	assert_null(authn_verifier_new(&cfg, &e));
	assert_int_equal(e.code, STATUS_INVALID);
	assert_null(authn_verifier_new(NULL, &e));
	authn_verifier_free(NULL);
	authn_listener_stop(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provider_admin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alg_none_and_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hs256_with_public_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rs256, setup, teardown),
		cmocka_unit_test_setup_teardown(test_times, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kid_and_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_jwks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epochs_and_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_epochs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_closed_when_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
