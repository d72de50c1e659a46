/* password.c - argon2id hashing (libargon2) and the password policy. */
#include "password.h"

#include <argon2.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/jsonh.h"
#include "common/xalloc.h"

enum status auth_password_hash(const char *password, char **out_phc, struct err *e)
{
	unsigned char salt[AUTH_PW_SALT_LEN];
	size_t len;
	char *enc;
	int rc;

	*out_phc = NULL;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return err_set(e, STATUS_INTERNAL, "password: RNG failure");
	len = argon2_encodedlen(AUTH_PW_T, AUTH_PW_M_KIB, AUTH_PW_P, AUTH_PW_SALT_LEN,
	                        AUTH_PW_HASH_LEN, Argon2_id);
	enc = xmalloc(len);
	rc = argon2id_hash_encoded(AUTH_PW_T, AUTH_PW_M_KIB, AUTH_PW_P, password, strlen(password),
	                           salt, sizeof(salt), AUTH_PW_HASH_LEN, enc, len);
	OPENSSL_cleanse(salt, sizeof(salt));
	if (rc != ARGON2_OK) {
		free(enc);
		return err_set(e, STATUS_INTERNAL, "password: argon2: %s",
		               argon2_error_message(rc));
	}
	*out_phc = enc;
	return STATUS_OK;
}

/* Standard base64 without padding (the PHC string format). @returns bytes or -1. */
static int b64_nopad_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int d;
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			d = c - 'A';
		else if (c >= 'a' && c <= 'z')
			d = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			d = c - '0' + 52;
		else if (c == '+')
			d = 62;
		else if (c == '/')
			d = 63;
		else
			return -1;
		acc = (acc << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return (int)o;
}

struct phc {
	unsigned m, t, p;
	unsigned char salt[64], hash[64];
	int saltlen, hashlen;
};

static bool parse_uint(const char **s, const char *prefix, unsigned *out)
{
	size_t pl = strlen(prefix);
	unsigned long v = 0;
	const char *c = *s;

	if (strncmp(c, prefix, pl) != 0)
		return false;
	c += pl;
	if (!isdigit((unsigned char)*c))
		return false;
	while (isdigit((unsigned char)*c)) {
		v = v * 10 + (unsigned long)(*c - '0');
		if (v > 0xffffffffu)
			return false;
		c++;
	}
	*out = (unsigned)v;
	*s = c;
	return true;
}

/* "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" */
static bool phc_parse(const char *s, struct phc *ph)
{
	const char *dollar;
	unsigned ver;

	if (strncmp(s, "$argon2id$", 10) != 0)
		return false;
	s += 10;
	if (!parse_uint(&s, "v=", &ver) || ver != ARGON2_VERSION_13 || *s++ != '$')
		return false;
	if (!parse_uint(&s, "m=", &ph->m) || *s++ != ',' || !parse_uint(&s, "t=", &ph->t) ||
	    *s++ != ',' || !parse_uint(&s, "p=", &ph->p) || *s++ != '$')
		return false;
	dollar = strchr(s, '$');
	if (!dollar)
		return false;
	ph->saltlen = b64_nopad_decode(s, (size_t)(dollar - s), ph->salt, sizeof(ph->salt));
	ph->hashlen = b64_nopad_decode(dollar + 1, strlen(dollar + 1), ph->hash, sizeof(ph->hash));
	if (ph->saltlen < 8 || ph->hashlen < 16)
		return false;
	/* Refuse absurd parameters: a corrupted row must not become a DoS or a weak check. */
	if (ph->m < 8192 || ph->m > 1048576 || ph->t < 1 || ph->t > 16 || ph->p < 1 || ph->p > 8)
		return false;
	return true;
}

bool auth_password_verify(const char *phc, const char *password)
{
	struct phc ph;
	unsigned char out[64];
	bool ok;

	if (!phc || !password || !phc_parse(phc, &ph)) {
		auth_password_verify_dummy(password ? password : "");
		return false;
	}
	if (argon2id_hash_raw(ph.t, ph.m, ph.p, password, strlen(password), ph.salt,
	                      (size_t)ph.saltlen, out, (size_t)ph.hashlen) != ARGON2_OK)
		return false;
	ok = CRYPTO_memcmp(out, ph.hash, (size_t)ph.hashlen) == 0;
	OPENSSL_cleanse(out, sizeof(out));
	return ok;
}

void auth_password_verify_dummy(const char *password)
{
	static const unsigned char salt[AUTH_PW_SALT_LEN] = { 0 };
	unsigned char out[AUTH_PW_HASH_LEN];

	if (argon2id_hash_raw(AUTH_PW_T, AUTH_PW_M_KIB, AUTH_PW_P, password, strlen(password), salt,
	                      sizeof(salt), out, sizeof(out)) != ARGON2_OK)
		memset(out, 0, sizeof(out));
	OPENSSL_cleanse(out, sizeof(out));
}

bool auth_password_needs_rehash(const char *phc)
{
	struct phc ph;

	if (!phc || !phc_parse(phc, &ph))
		return true;
	return ph.m < AUTH_PW_M_KIB || ph.t < AUTH_PW_T || ph.hashlen < (int)AUTH_PW_HASH_LEN ||
	       ph.saltlen < (int)AUTH_PW_SALT_LEN;
}

/* ASCII case-insensitive substring search. */
static bool contains_ci(const char *hay, const char *needle)
{
	size_t hn = strlen(hay), nn = strlen(needle);

	if (nn == 0 || nn > hn)
		return false;
	for (size_t i = 0; i + nn <= hn; i++) {
		size_t j = 0;

		while (j < nn &&
		       tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j]))
			j++;
		if (j == nn)
			return true;
	}
	return false;
}

enum status auth_password_check_policy(const char *username, const char *password, struct err *e)
{
	size_t n, cps = 0;

	if (!password)
		return err_set(e, STATUS_INVALID, "password is required");
	n = strlen(password);
	if (n > AUTH_PW_MAX_BYTES)
		return err_set(e, STATUS_INVALID, "password must be at most %u characters",
		               AUTH_PW_MAX_CHARS);
	if (!jsonh_utf8_valid(password, n))
		return err_set(e, STATUS_INVALID, "password must be valid UTF-8");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)password[i];

		if (c < 0x20 || c == 0x7f)
			return err_set(e, STATUS_INVALID,
			               "password must not contain control characters");
		if ((c & 0xc0) != 0x80)
			cps++;
	}
	if (cps < AUTH_PW_MIN_CHARS)
		return err_set(e, STATUS_INVALID, "password must be at least %u characters long",
		               AUTH_PW_MIN_CHARS);
	if (cps > AUTH_PW_MAX_CHARS)
		return err_set(e, STATUS_INVALID, "password must be at most %u characters",
		               AUTH_PW_MAX_CHARS);
	if (username && *username && contains_ci(password, username))
		return err_set(e, STATUS_INVALID, "password must not contain the username");
	return STATUS_OK;
}
