/* tokens.c - signing keys, ES256 access tokens (libjwt, OpenSSL backend), JWKS, key wrapping,
 * opaque tokens. */
#include "tokens.h"

#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "common/authn.h"
#include "common/buf.h"
#include "common/xalloc.h"

struct auth_key {
	char kid[AUTH_KID_LEN + 8];
	EVP_PKEY *pkey;
	char *pem;
};

static void random_bytes(void *p, size_t n)
{
	/* A failing CSPRNG leaves no safe way forward for a token issuer. */
	if (RAND_bytes(p, (int)n) != 1)
		abort();
}

static char *pem_of(EVP_PKEY *pkey)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out = NULL;
	long n;

	if (!b)
		return NULL;
	if (PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL) == 1) {
		n = BIO_get_mem_data(b, &data);
		if (n > 0)
			out = xstrndup(data, (size_t)n);
	}
	BIO_free(b);
	return out;
}

static bool is_p256(EVP_PKEY *pkey)
{
	char group[64];
	size_t gl = 0;

	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
		return false;
	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   &gl) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

struct auth_key *auth_key_generate(struct err *e)
{
	struct auth_key *k;
	unsigned char rnd[16];
	char *kid;

	k = xcalloc(1, sizeof(*k));
	k->pkey = EVP_EC_gen("P-256");
	if (!k->pkey)
		goto fail;
	k->pem = pem_of(k->pkey);
	if (!k->pem)
		goto fail;
	random_bytes(rnd, sizeof(rnd));
	kid = authn_b64url_encode(rnd, sizeof(rnd));
	snprintf(k->kid, sizeof(k->kid), "%s", kid);
	free(kid);
	return k;
fail:
	auth_key_free(k);
	err_set(e, STATUS_INTERNAL, "signing key: EC P-256 generation failed");
	return NULL;
}

struct auth_key *auth_key_from_pem(const char *kid, const char *pem, struct err *e)
{
	struct auth_key *k;
	BIO *b;

	if (!kid || !*kid || strlen(kid) >= sizeof(k->kid)) {
		err_set(e, STATUS_CORRUPT, "signing key: bad kid");
		return NULL;
	}
	k = xcalloc(1, sizeof(*k));
	snprintf(k->kid, sizeof(k->kid), "%s", kid);
	b = BIO_new_mem_buf(pem, -1);
	if (b)
		k->pkey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!k->pkey || !is_p256(k->pkey)) {
		auth_key_free(k);
		err_set(e, STATUS_CORRUPT, "signing key %s: not an EC P-256 private key", kid);
		return NULL;
	}
	k->pem = xstrdup(pem);
	return k;
}

void auth_key_free(struct auth_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	if (k->pem) {
		OPENSSL_cleanse(k->pem, strlen(k->pem));
		free(k->pem);
	}
	free(k);
}

const char *auth_key_kid(const struct auth_key *k)
{
	return k->kid;
}

const char *auth_key_pem(const struct auth_key *k)
{
	return k->pem;
}

static json_t *jwk_of(const struct auth_key *k)
{
	BIGNUM *x = NULL, *y = NULL;
	unsigned char xb[32], yb[32];
	char *xs = NULL, *ys = NULL;
	json_t *j = NULL;

	if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
	    EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
	    BN_bn2binpad(x, xb, 32) != 32 || BN_bn2binpad(y, yb, 32) != 32)
		goto out;
	xs = authn_b64url_encode(xb, 32);
	ys = authn_b64url_encode(yb, 32);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "kid",
	              k->kid, "alg", "ES256", "use", "sig", "x", xs, "y", ys);
out:
	free(xs);
	free(ys);
	BN_free(x);
	BN_free(y);
	return j;
}

char *auth_jwks_json(struct auth_key *const *keys, size_t n)
{
	json_t *arr = json_array(), *doc;
	char *s;

	for (size_t i = 0; i < n; i++) {
		json_t *j = keys[i] ? jwk_of(keys[i]) : NULL;

		if (j)
			json_array_append_new(arr, j);
	}
	doc = json_pack("{s:o}", "keys", arr);
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (!s)
		abort();
	return s;
}

/* ---- key wrapping ---- */

enum status auth_kek_parse(const char *s, unsigned char kek[AUTH_KEK_LEN], struct err *e)
{
	char *norm;
	unsigned char *raw;
	size_t n = 0, len;

	if (!s)
		return err_set(e, STATUS_INVALID, "key encryption key: empty");
	/* Accept standard base64 (with or without padding) as well as base64url. */
	len = strlen(s);
	while (len > 0 && s[len - 1] == '=')
		len--;
	norm = xstrndup(s, len);
	for (char *c = norm; *c; c++) {
		if (*c == '+')
			*c = '-';
		else if (*c == '/')
			*c = '_';
	}
	raw = authn_b64url_decode(norm, strlen(norm), &n);
	free(norm);
	if (!raw || n != AUTH_KEK_LEN) {
		if (raw)
			OPENSSL_cleanse(raw, n);
		free(raw);
		return err_set(e, STATUS_INVALID,
		               "key encryption key: must be base64 of exactly 32 bytes");
	}
	memcpy(kek, raw, AUTH_KEK_LEN);
	OPENSSL_cleanse(raw, n);
	free(raw);
	return STATUS_OK;
}

enum status auth_key_wrap(const unsigned char *kek, const char *kid, const char *pem, char **out,
                          struct err *e)
{
	unsigned char nonce[12], tag[16];
	size_t plen = strlen(pem);
	unsigned char *ct = NULL;
	EVP_CIPHER_CTX *c = NULL;
	int n = 0, fin = 0;
	char *nb = NULL, *cb = NULL;
	enum status st = STATUS_OK;

	*out = NULL;
	if (!kek) {
		cb = authn_b64url_encode(pem, plen);
		*out = xasprintf("plain.%s", cb);
		free(cb);
		return STATUS_OK;
	}
	random_bytes(nonce, sizeof(nonce));
	ct = xmalloc(plen + sizeof(tag));
	c = EVP_CIPHER_CTX_new();
	if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, kek, nonce) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)kid, (int)strlen(kid)) != 1 ||
	    EVP_EncryptUpdate(c, ct, &n, (const unsigned char *)pem, (int)plen) != 1 ||
	    EVP_EncryptFinal_ex(c, ct + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag) != 1) {
		st = err_set(e, STATUS_INTERNAL, "key wrap: AES-GCM failed");
		goto out;
	}
	memcpy(ct + n + fin, tag, sizeof(tag));
	nb = authn_b64url_encode(nonce, sizeof(nonce));
	cb = authn_b64url_encode(ct, (size_t)(n + fin) + sizeof(tag));
	*out = xasprintf("v1.%s.%s", nb, cb);
out:
	EVP_CIPHER_CTX_free(c);
	free(ct);
	free(nb);
	free(cb);
	return st;
}

enum status auth_key_unwrap(const unsigned char *kek, const char *kid, const char *wrapped,
                            char **pem, struct err *e)
{
	const char *d1, *d2;
	unsigned char *nonce = NULL, *ct = NULL, *pt = NULL;
	size_t nn = 0, cn = 0;
	EVP_CIPHER_CTX *c = NULL;
	int n = 0, fin = 0;
	enum status st = STATUS_OK;

	*pem = NULL;
	if (strncmp(wrapped, "plain.", 6) == 0) {
		if (kek)
			return err_set(
			        e, STATUS_CORRUPT,
			        "signing key %s is stored unwrapped but a key encryption key "
			        "is configured",
			        kid);
		pt = authn_b64url_decode(wrapped + 6, strlen(wrapped + 6), &cn);
		if (!pt)
			return err_set(e, STATUS_CORRUPT, "signing key %s: bad encoding", kid);
		*pem = (char *)pt;
		return STATUS_OK;
	}
	if (strncmp(wrapped, "v1.", 3) != 0)
		return err_set(e, STATUS_CORRUPT, "signing key %s: unknown wrapping", kid);
	if (!kek)
		return err_set(e, STATUS_CORRUPT,
		               "signing key %s is wrapped; configure the key encryption key", kid);
	d1 = wrapped + 3;
	d2 = strchr(d1, '.');
	if (!d2)
		return err_set(e, STATUS_CORRUPT, "signing key %s: bad format", kid);
	nonce = authn_b64url_decode(d1, (size_t)(d2 - d1), &nn);
	ct = authn_b64url_decode(d2 + 1, strlen(d2 + 1), &cn);
	if (!nonce || !ct || nn != 12 || cn < 16) {
		st = err_set(e, STATUS_CORRUPT, "signing key %s: bad format", kid);
		goto out;
	}
	pt = xmalloc(cn + 1);
	c = EVP_CIPHER_CTX_new();
	if (!c || EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, kek, nonce) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)kid, (int)strlen(kid)) != 1 ||
	    EVP_DecryptUpdate(c, pt, &n, ct, (int)(cn - 16)) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, ct + cn - 16) != 1 ||
	    EVP_DecryptFinal_ex(c, pt + n, &fin) != 1) {
		st = err_set(e, STATUS_CORRUPT,
		             "signing key %s: cannot unwrap (wrong key encryption key or tampered)",
		             kid);
		goto out;
	}
	pt[n + fin] = '\0';
	*pem = (char *)pt;
	pt = NULL;
out:
	EVP_CIPHER_CTX_free(c);
	if (pt) {
		OPENSSL_cleanse(pt, cn);
		free(pt);
	}
	free(nonce);
	free(ct);
	return st;
}

/* ---- access tokens ---- */

enum status auth_token_sign(const struct auth_key *k, const struct auth_claims *c, char **out,
                            struct err *e)
{
	jwt_t *jwt = NULL;
	json_t *roles = json_array(), *grants = NULL;
	char *gs = NULL, *tok;
	char jti[AUTH_UUID_LEN + 1];
	int ttl = c->ttl_s > 0 ? c->ttl_s : AUTH_ACCESS_TTL_S;
	enum status st = STATUS_OK;

	*out = NULL;
	if (!c->iss || !c->aud || !c->sub || !c->roles) {
		st = err_set(e, STATUS_INVALID, "token: iss, aud, sub and roles are required");
		goto out;
	}
	if ((c->roles & AUTHN_ROLE_PROVIDER_ADMIN) ? c->tid != NULL : c->tid == NULL) {
		st = err_set(e, STATUS_INVALID,
		             "token: a provider-admin has no tenant, everyone else has one");
		goto out;
	}
	for (unsigned b = 1; b <= AUTHN_ROLE__ALL; b <<= 1)
		if (c->roles & b)
			json_array_append_new(roles, json_string(authn_role_name(b)));
	auth_uuid_v4(jti);
	grants = json_pack("{s:s, s:s, s:s, s:O, s:I, s:I, s:I, s:I, s:s}", "iss", c->iss, "aud",
	                   c->aud, "sub", c->sub, "roles", roles, "epoch", (json_int_t)c->epoch,
	                   "iat", (json_int_t)c->iat, "nbf", (json_int_t)c->iat, "exp",
	                   (json_int_t)c->iat + ttl, "jti", jti);
	if (!grants) {
		st = err_set(e, STATUS_INTERNAL, "token: cannot build claims");
		goto out;
	}
	if (c->tid) {
		json_object_set_new(grants, "tid", json_string(c->tid));
		json_object_set_new(grants, "tepoch", json_integer((json_int_t)c->tepoch));
	}
	if (c->sid)
		json_object_set_new(grants, "sid", json_string(c->sid));
	gs = json_dumps(grants, JSON_COMPACT);
	if (!gs || jwt_new(&jwt) != 0 || jwt_add_grants_json(jwt, gs) != 0 ||
	    jwt_add_header(jwt, "kid", k->kid) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)k->pem, (int)strlen(k->pem)) !=
	            0) {
		st = err_set(e, STATUS_INTERNAL, "token: libjwt setup failed");
		goto out;
	}
	tok = jwt_encode_str(jwt);
	if (!tok) {
		st = err_set(e, STATUS_INTERNAL, "token: libjwt signing failed");
		goto out;
	}
	*out = xstrdup(tok);
	free(tok);
out:
	jwt_free(jwt);
	free(gs);
	json_decref(grants);
	json_decref(roles);
	return st;
}

/* ---- opaque tokens ---- */

char *auth_opaque_new(const char *prefix)
{
	unsigned char rnd[32];
	char *b, *s;

	random_bytes(rnd, sizeof(rnd));
	b = authn_b64url_encode(rnd, sizeof(rnd));
	s = xasprintf("%s%s", prefix, b);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	OPENSSL_cleanse(b, strlen(b));
	free(b);
	return s;
}

void auth_opaque_hash(const char *token, char out[AUTH_HASH_HEX_LEN + 1])
{
	unsigned char md[32];
	unsigned int mdl = 0;
	static const char hex[] = "0123456789abcdef";

	if (EVP_Digest(token, strlen(token), md, &mdl, EVP_sha256(), NULL) != 1 || mdl != 32)
		abort();
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[AUTH_HASH_HEX_LEN] = '\0';
}

bool auth_opaque_is_wellformed(const char *token, const char *prefix)
{
	size_t pl = strlen(prefix);

	if (!token || strncmp(token, prefix, pl) != 0 || strlen(token + pl) != 43)
		return false;
	for (const char *c = token + pl; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
			return false;
	return true;
}

void auth_uuid_v4(char out[AUTH_UUID_LEN + 1])
{
	unsigned char b[16];

	random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, AUTH_UUID_LEN + 1,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
}
