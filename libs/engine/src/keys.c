/* keys.c - master key loading, tenant key wrap/unwrap, file-backed keystore. */
#define _GNU_SOURCE
#include "engine/keys.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/xalloc.h"

#include "engine_internal.h"

static const uint8_t WRAP_MAGIC[4] = { 'C', 'K', 'W', '1' };

void engine_key_wipe(void *p, size_t n)
{
	volatile uint8_t *v = p;

	while (n--)
		*v++ = 0;
}

bool engine_tenant_id_valid(const char *t)
{
	size_t n = t ? strlen(t) : 0;

	if (n == 0 || n > 64 || t[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

enum status engine_master_key_load(struct engine_master_key *mk, const char *path, struct err *e)
{
	uint8_t *b = NULL;
	size_t n = 0;
	enum status st = engine_fs_read_all(path, 4096, &b, &n, e);

	if (st == STATUS_TOO_LARGE)
		return err_set(e, STATUS_INVALID, "master key file %s: too large", path);
	if (st != STATUS_OK)
		return st;
	if (n == ENGINE_KEY_LEN) {
		memcpy(mk->k, b, ENGINE_KEY_LEN);
	} else {
		while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' '))
			n--;
		b[n] = '\0';
		if (n != 2 * sizeof(mk->k) || !engine_hex_decode((char *)b, mk->k, ENGINE_KEY_LEN))
			st = err_set(e, STATUS_INVALID,
			             "master key file %s: want 32 raw bytes or 64 hex digits",
			             path);
	}
	engine_key_wipe(b, n);
	free(b);
	return st;
}

enum status engine_master_key_from_env(struct engine_master_key *mk, struct err *e)
{
	const char *p = getenv(ENGINE_MASTER_KEY_ENV);

	if (p == NULL || *p == '\0')
		return err_set(e, STATUS_INVALID, "%s is not set", ENGINE_MASTER_KEY_ENV);
	return engine_master_key_load(mk, p, e);
}

static char *wrap_aad(const char *tenant, int *len)
{
	char *aad = xasprintf("cairn-tenant-keys-v1:%s", tenant);

	*len = (int)strlen(aad);
	return aad;
}

enum status engine_keys_wrap(const struct engine_master_key *mk, const char *tenant,
                             const struct engine_tenant_keys *tk, uint8_t out[ENGINE_WRAPPED_LEN],
                             struct err *e)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	uint8_t plain[2 * ENGINE_KEY_LEN];
	enum status st = STATUS_OK;
	int aadlen, len;
	char *aad = wrap_aad(tenant, &aadlen);

	memcpy(plain, tk->id_key, ENGINE_KEY_LEN);
	memcpy(plain + ENGINE_KEY_LEN, tk->data_key, ENGINE_KEY_LEN);
	memcpy(out, WRAP_MAGIC, 4);
	if (c == NULL || RAND_bytes(out + 4, 12) != 1 ||
	    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, mk->k, out + 4) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &len, (const uint8_t *)aad, aadlen) != 1 ||
	    EVP_EncryptUpdate(c, out + 16, &len, plain, sizeof(plain)) != 1 ||
	    EVP_EncryptFinal_ex(c, out + 16 + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + 80) != 1)
		st = err_set(e, STATUS_INTERNAL, "wrapping tenant keys failed");
	engine_key_wipe(plain, sizeof(plain));
	EVP_CIPHER_CTX_free(c);
	free(aad);
	return st;
}

enum status engine_keys_unwrap(const struct engine_master_key *mk, const char *tenant,
                               const uint8_t *blob, size_t n, struct engine_tenant_keys *tk,
                               struct err *e)
{
	EVP_CIPHER_CTX *c;
	uint8_t plain[2 * ENGINE_KEY_LEN];
	enum status st = STATUS_OK;
	int aadlen, len;
	char *aad;

	if (n != ENGINE_WRAPPED_LEN || memcmp(blob, WRAP_MAGIC, 4) != 0)
		return err_set(e, STATUS_CORRUPT, "tenant %s: wrapped key blob malformed", tenant);
	c = EVP_CIPHER_CTX_new();
	aad = wrap_aad(tenant, &aadlen);
	if (c == NULL || EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, mk->k, blob + 4) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &len, (const uint8_t *)aad, aadlen) != 1 ||
	    EVP_DecryptUpdate(c, plain, &len, blob + 16, 64) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(blob + 80)) != 1 ||
	    EVP_DecryptFinal_ex(c, plain + len, &len) != 1) {
		st = err_set(e, STATUS_CORRUPT,
		             "tenant %s: cannot unwrap keys (wrong master key or damaged blob)",
		             tenant);
	} else {
		memcpy(tk->id_key, plain, ENGINE_KEY_LEN);
		memcpy(tk->data_key, plain + ENGINE_KEY_LEN, ENGINE_KEY_LEN);
	}
	engine_key_wipe(plain, sizeof(plain));
	EVP_CIPHER_CTX_free(c);
	free(aad);
	return st;
}

enum status engine_tenant_keys_get(const struct engine_keystore *ks,
                                   const struct engine_master_key *mk, const char *tenant,
                                   bool create, struct engine_tenant_keys *out, struct err *e)
{
	uint8_t *blob = NULL;
	size_t n = 0;
	enum status st;

	if (!engine_tenant_id_valid(tenant))
		return err_set(e, STATUS_INVALID, "invalid tenant id");
	for (int attempt = 0; attempt < 2; attempt++) {
		st = ks->ops->load(ks->ud, tenant, &blob, &n, e);
		if (st == STATUS_OK) {
			st = engine_keys_unwrap(mk, tenant, blob, n, out, e);
			free(blob);
			return st;
		}
		if (st != STATUS_NOT_FOUND || !create)
			return st;

		struct engine_tenant_keys fresh;
		uint8_t w[ENGINE_WRAPPED_LEN];

		if (RAND_bytes(fresh.id_key, ENGINE_KEY_LEN) != 1 ||
		    RAND_bytes(fresh.data_key, ENGINE_KEY_LEN) != 1)
			return err_set(e, STATUS_INTERNAL, "RAND_bytes failed");
		st = engine_keys_wrap(mk, tenant, &fresh, w, e);
		if (st == STATUS_OK)
			st = ks->ops->store(ks->ud, tenant, w, sizeof(w), e);
		if (st == STATUS_OK)
			*out = fresh;
		engine_key_wipe(&fresh, sizeof(fresh));
		if (st != STATUS_CONFLICT)
			return st;
		/* Lost a race with another creator: load theirs. */
	}
	return err_set(e, STATUS_CONFLICT, "tenant %s: key creation raced twice", tenant);
}

/* ---- file keystore ---- */

static enum status fks_load(void *ud, const char *tenant, uint8_t **blob, size_t *len,
                            struct err *e)
{
	char *path = xasprintf("%s/%s.key", (const char *)ud, tenant);
	enum status st = engine_fs_read_all(path, 4096, blob, len, e);

	if (st == STATUS_NOT_FOUND)
		err_set(e, STATUS_NOT_FOUND, "no keys for tenant %s", tenant);
	free(path);
	return st;
}

static enum status fks_store(void *ud, const char *tenant, const uint8_t *blob, size_t len,
                             struct err *e)
{
	char *name = xasprintf("%s.key", tenant);
	enum status st = engine_fs_write_once(ud, name, blob, len, true, e);

	free(name);
	return st;
}

static void fks_free(void *ud)
{
	free(ud);
}

static const struct engine_keystore_ops FILE_KEYSTORE_OPS = {
	.load = fks_load,
	.store = fks_store,
	.free = fks_free,
};

bool engine_path_is_inside(const char *path, const char *root)
{
	char rp[PATH_MAX], rr[PATH_MAX];
	size_t n;

	if (realpath(root, rr) == NULL || realpath(path, rp) == NULL)
		return false;
	n = strlen(rr);
	if (n == 1) /* root is "/" */
		return true;
	return strncmp(rp, rr, n) == 0 && (rp[n] == '\0' || rp[n] == '/');
}

struct engine_keystore *engine_keystore_file_new(const char *dir, const char *forbidden_root,
                                                 struct err *e)
{
	struct engine_keystore *ks;
	char real[PATH_MAX];

	if (engine_fs_mkdirs(dir, 0700, e) != STATUS_OK)
		return NULL;
	if (forbidden_root != NULL && engine_path_is_inside(dir, forbidden_root)) {
		err_set(e, STATUS_FORBIDDEN, "keys dir %s is inside the repository %s", dir,
		        forbidden_root);
		return NULL;
	}
	if (realpath(dir, real) == NULL) {
		err_set(e, STATUS_IO, "keys dir %s: %s", dir, strerror(errno));
		return NULL;
	}
	ks = xcalloc(1, sizeof(*ks));
	ks->ops = &FILE_KEYSTORE_OPS;
	ks->ud = xstrdup(real);
	return ks;
}

void engine_keystore_free(struct engine_keystore *ks)
{
	if (ks == NULL)
		return;
	if (ks->ops->free)
		ks->ops->free(ks->ud);
	free(ks);
}
