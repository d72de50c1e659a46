/* Unit tests for signing keys, access tokens (signed by libjwt, checked by the common
 * verifier), JWKS, key wrapping and opaque tokens. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/authn.h"
#include "common/err.h"

#include "tokens.h"

#include <cmocka.h>

#define UID "11111111-1111-4111-8111-111111111111"
#define TID "22222222-2222-4222-8222-222222222222"

static struct authn_verifier *verifier_for(struct auth_key *const *keys, size_t n)
{
	struct authn_config cfg = { .issuer = "cairn-auth", .audience = "cairn" };
	struct err e;
	struct authn_verifier *v = authn_verifier_new(&cfg, &e);
	char *jwks = auth_jwks_json(keys, n);

	assert_non_null(v);
	assert_int_equal(authn_verifier_set_jwks(v, jwks, &e), STATUS_OK);
	free(jwks);
	return v;
}

static void test_sign_and_verify(void **state)
{
	struct err e;
	struct auth_key *k = auth_key_generate(&e);
	struct authn_verifier *v;
	struct authn_principal p;
	int64_t now = (int64_t)time(NULL);
	struct auth_claims c = { .iss = "cairn-auth",
		                 .aud = "cairn",
		                 .sub = UID,
		                 .tid = TID,
		                 .sid = "fam-1",
		                 .roles = AUTHN_ROLE_TENANT_ADMIN,
		                 .epoch = 7,
		                 .tepoch = 2,
		                 .iat = now };
	char *tok = NULL;

	assert_non_null(k);
	assert_int_equal(strlen(auth_key_kid(k)), AUTH_KID_LEN);
	v = verifier_for(&k, 1);
	assert_int_equal(auth_token_sign(k, &c, &tok, &e), STATUS_OK);
	assert_int_equal(authn_verify(v, tok, now, &p, &e), STATUS_OK);
	assert_string_equal(p.user_id, UID);
	assert_string_equal(p.tenant_id, TID);
	assert_string_equal(p.session_id, "fam-1");
	assert_int_equal(p.roles, AUTHN_ROLE_TENANT_ADMIN);
	assert_int_equal(p.epoch, 7);
	assert_int_equal(p.tenant_epoch, 2);
	assert_int_equal(p.expires_at, now + AUTH_ACCESS_TTL_S);
	assert_int_equal(strlen(p.token_id), AUTH_UUID_LEN);
	/* 15 minutes later it is expired (beyond the leeway) */
	assert_int_equal(authn_verify(v, tok, now + AUTH_ACCESS_TTL_S + 31, &p, &e),
	                 STATUS_UNAUTHORIZED);
	/* epoch bump revokes */
	authn_epoch_user_set(v, UID, 8, now);
	assert_int_equal(authn_verify(v, tok, now, &p, &e), STATUS_UNAUTHORIZED);
	free(tok);

	/* provider-admin: no tenant */
	c.tid = NULL;
	c.sub = "33333333-3333-4333-8333-333333333333";
	c.roles = AUTHN_ROLE_PROVIDER_ADMIN;
	assert_int_equal(auth_token_sign(k, &c, &tok, &e), STATUS_OK);
	assert_int_equal(authn_verify(v, tok, now, &p, &e), STATUS_OK);
	assert_true(p.is_provider_admin);
	assert_string_equal(p.tenant_id, "");
	free(tok);
	/* inconsistent claims refused at signing */
	c.tid = TID;
	assert_int_equal(auth_token_sign(k, &c, &tok, &e), STATUS_INVALID);
	c.tid = NULL;
	c.roles = AUTHN_ROLE_VIEWER;
	assert_int_equal(auth_token_sign(k, &c, &tok, &e), STATUS_INVALID);
	authn_verifier_free(v);
	auth_key_free(k);
}

static void test_rotation_and_jwks(void **state)
{
	struct err e;
	struct auth_key *k1 = auth_key_generate(&e), *k2 = auth_key_generate(&e);
	struct auth_key *both[2] = { k2, k1 };
	struct authn_verifier *v;
	struct authn_principal p;
	int64_t now = (int64_t)time(NULL);
	struct auth_claims c = { .iss = "cairn-auth",
		                 .aud = "cairn",
		                 .sub = UID,
		                 .tid = TID,
		                 .roles = AUTHN_ROLE_VIEWER,
		                 .iat = now };
	char *t1, *t2, *jwks;
	json_t *doc, *key;
	json_error_t jerr;

	assert_string_not_equal(auth_key_kid(k1), auth_key_kid(k2));
	assert_int_equal(auth_token_sign(k1, &c, &t1, &e), STATUS_OK);
	assert_int_equal(auth_token_sign(k2, &c, &t2, &e), STATUS_OK);
	v = verifier_for(both, 2);
	assert_int_equal(authn_verify(v, t1, now, &p, &e), STATUS_OK);
	assert_int_equal(authn_verify(v, t2, now, &p, &e), STATUS_OK);
	authn_verifier_free(v);
	v = verifier_for(&k2, 1);
	assert_int_equal(authn_verify(v, t1, now, &p, &e), STATUS_UNAUTHORIZED);
	assert_int_equal(authn_verify(v, t2, now, &p, &e), STATUS_OK);
	authn_verifier_free(v);

	jwks = auth_jwks_json(both, 2);
	doc = json_loads(jwks, 0, &jerr);
	assert_non_null(doc);
	assert_int_equal(json_array_size(json_object_get(doc, "keys")), 2);
	key = json_array_get(json_object_get(doc, "keys"), 0);
	assert_string_equal(json_string_value(json_object_get(key, "kty")), "EC");
	assert_string_equal(json_string_value(json_object_get(key, "crv")), "P-256");
	assert_string_equal(json_string_value(json_object_get(key, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(key, "use")), "sig");
	assert_string_equal(json_string_value(json_object_get(key, "kid")), auth_key_kid(k2));
	assert_int_equal(strlen(json_string_value(json_object_get(key, "x"))), 43);
	assert_null(json_object_get(key, "d"));
	json_decref(doc);
	free(jwks);
	free(t1);
	free(t2);
	auth_key_free(k1);
	auth_key_free(k2);
}

static void test_pem_round_trip_and_wrap(void **state)
{
	struct err e;
	struct auth_key *k = auth_key_generate(&e), *k2;
	unsigned char kek[AUTH_KEK_LEN], kek2[AUTH_KEK_LEN];
	char *wrapped, *pem, *tok;
	struct auth_claims c = { .iss = "cairn-auth",
		                 .aud = "cairn",
		                 .sub = UID,
		                 .tid = TID,
		                 .roles = AUTHN_ROLE_VIEWER,
		                 .iat = (int64_t)time(NULL) };
	struct authn_verifier *v;
	struct authn_principal p;

	assert_int_equal(auth_kek_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", kek, &e),
	                 STATUS_OK);
	assert_int_equal(kek[31], 31);
	assert_int_equal(auth_kek_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", kek2, &e),
	                 STATUS_OK);
	assert_memory_equal(kek, kek2, 32);
	assert_int_equal(auth_kek_parse("c2hvcnQ=", kek2, &e), STATUS_INVALID);
	assert_int_equal(auth_kek_parse("not base64 at all!", kek2, &e), STATUS_INVALID);

	assert_int_equal(auth_key_wrap(kek, auth_key_kid(k), auth_key_pem(k), &wrapped, &e),
	                 STATUS_OK);
	assert_non_null(strstr(wrapped, "v1."));
	assert_null(strstr(wrapped, "PRIVATE"));
	assert_int_equal(auth_key_unwrap(kek, auth_key_kid(k), wrapped, &pem, &e), STATUS_OK);
	assert_string_equal(pem, auth_key_pem(k));
	k2 = auth_key_from_pem(auth_key_kid(k), pem, &e);
	assert_non_null(k2);
	free(pem);
	/* a token of the reloaded key verifies with the original's JWKS */
	v = verifier_for(&k, 1);
	assert_int_equal(auth_token_sign(k2, &c, &tok, &e), STATUS_OK);
	assert_int_equal(authn_verify(v, tok, c.iat, &p, &e), STATUS_OK);
	free(tok);
	authn_verifier_free(v);
	/* wrong kek, wrong kid (associated data), tampering */
	memset(kek2, 7, sizeof(kek2));
	assert_int_equal(auth_key_unwrap(kek2, auth_key_kid(k), wrapped, &pem, &e), STATUS_CORRUPT);
	assert_int_equal(auth_key_unwrap(kek, "other-kid", wrapped, &pem, &e), STATUS_CORRUPT);
	wrapped[strlen(wrapped) - 5] ^= 1;
	assert_int_equal(auth_key_unwrap(kek, auth_key_kid(k), wrapped, &pem, &e), STATUS_CORRUPT);
	assert_int_equal(auth_key_unwrap(NULL, auth_key_kid(k), wrapped, &pem, &e), STATUS_CORRUPT);
	free(wrapped);
	/* plain storage without a kek, refused once a kek is configured */
	assert_int_equal(auth_key_wrap(NULL, auth_key_kid(k), auth_key_pem(k), &wrapped, &e),
	                 STATUS_OK);
	assert_int_equal(auth_key_unwrap(NULL, auth_key_kid(k), wrapped, &pem, &e), STATUS_OK);
	assert_string_equal(pem, auth_key_pem(k));
	free(pem);
	assert_int_equal(auth_key_unwrap(kek, auth_key_kid(k), wrapped, &pem, &e), STATUS_CORRUPT);
	free(wrapped);
	/* not a P-256 key */
	assert_null(auth_key_from_pem("x", "-----BEGIN PRIVATE KEY-----\nAAAA\n", &e));
	assert_int_equal(e.code, STATUS_CORRUPT);
	auth_key_free(k2);
	auth_key_free(k);
}

static void test_opaque(void **state)
{
	char *a = auth_opaque_new(AUTH_PREFIX_API), *b = auth_opaque_new(AUTH_PREFIX_API);
	char *r = auth_opaque_new(AUTH_PREFIX_REFRESH);
	char h1[AUTH_HASH_HEX_LEN + 1], h2[AUTH_HASH_HEX_LEN + 1];
	char u1[AUTH_UUID_LEN + 1], u2[AUTH_UUID_LEN + 1];

	assert_int_equal(strncmp(a, "cairn_at_", 9), 0);
	assert_int_equal(strlen(a), 9 + 43);
	assert_string_not_equal(a, b);
	assert_true(auth_opaque_is_wellformed(a, AUTH_PREFIX_API));
	assert_false(auth_opaque_is_wellformed(a, AUTH_PREFIX_REFRESH));
	assert_true(auth_opaque_is_wellformed(r, AUTH_PREFIX_REFRESH));
	assert_false(auth_opaque_is_wellformed("cairn_at_short", AUTH_PREFIX_API));
	assert_false(auth_opaque_is_wellformed(NULL, AUTH_PREFIX_API));
	auth_opaque_hash(a, h1);
	auth_opaque_hash(a, h2);
	assert_string_equal(h1, h2);
	auth_opaque_hash(b, h2);
	assert_string_not_equal(h1, h2);
	auth_opaque_hash("abc", h1);
	assert_string_equal(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	auth_uuid_v4(u1);
	auth_uuid_v4(u2);
	assert_int_equal(strlen(u1), 36);
	assert_string_not_equal(u1, u2);
	assert_int_equal(u1[14], '4');
	free(a);
	free(b);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_and_verify),
		cmocka_unit_test(test_rotation_and_jwks),
		cmocka_unit_test(test_pem_round_trip_and_wrap),
		cmocka_unit_test(test_opaque),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
