/* engine_test_util.h - helpers for the engine's unit tests (temp dirs, images, keys). */
#ifndef ENGINE_TEST_UTIL_H
#define ENGINE_TEST_UTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/xalloc.h"
#include "engine/backup.h"
#include "engine/chunk.h"
#include "engine/keys.h"
#include "engine/manifest.h"
#include "engine/repo.h"

struct tenv {
	char *dir;
	char *repo_dir;
	char *keys_dir;
	struct engine_master_key mk;
	struct engine_keystore *ks;
};

static inline int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static inline void tenv_rmrf(const char *dir)
{
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline struct tenv *tenv_new(void)
{
	struct tenv *t = xcalloc(1, sizeof(*t));
	char tmpl[] = "/tmp/cairn-engine-test-XXXXXX";
	struct err e;

	if (mkdtemp(tmpl) == NULL)
		abort();
	t->dir = xstrdup(tmpl);
	t->repo_dir = xasprintf("%s/repo", t->dir);
	t->keys_dir = xasprintf("%s/keys", t->dir);
	if (RAND_bytes(t->mk.k, sizeof(t->mk.k)) != 1)
		abort();
	if (mkdir(t->repo_dir, 0700) != 0)
		abort();
	t->ks = engine_keystore_file_new(t->keys_dir, t->repo_dir, &e);
	if (t->ks == NULL) {
		fprintf(stderr, "keystore: %s\n", e.msg);
		abort();
	}
	return t;
}

static inline void tenv_free(struct tenv *t)
{
	if (t == NULL)
		return;
	engine_keystore_free(t->ks);
	tenv_rmrf(t->dir);
	free(t->dir);
	free(t->repo_dir);
	free(t->keys_dir);
	free(t);
}

static inline struct engine_repo *tenv_repo(struct tenv *t, const char *tenant,
                                            struct engine_tenant_keys *tk)
{
	struct err e;
	struct engine_repo *r = engine_repo_open(t->repo_dir, tenant, true, &e);

	if (r == NULL) {
		fprintf(stderr, "repo: %s\n", e.msg);
		abort();
	}
	if (engine_tenant_keys_get(t->ks, &t->mk, tenant, true, tk, &e) != STATUS_OK) {
		fprintf(stderr, "keys: %s\n", e.msg);
		abort();
	}
	return r;
}

static inline void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		abort();
}

/* The whole file, or NULL (and *n = 0) when it cannot be opened. */
static inline uint8_t *read_file_try(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long sz;

	*n = 0;
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		abort();
	b = xmalloc((size_t)sz + 1);
	if (fread(b, 1, (size_t)sz, f) != (size_t)sz)
		abort();
	fclose(f);
	*n = (size_t)sz;
	return b;
}

/* The whole file; aborts the test when it cannot be read. */
static inline uint8_t *read_file_all(const char *path, size_t *n)
{
	uint8_t *b = read_file_try(path, n);

	if (b == NULL)
		abort();
	return b;
}

static inline bool files_equal(const char *a, const char *b)
{
	size_t na, nb;
	uint8_t *pa = read_file_try(a, &na), *pb = read_file_try(b, &nb);
	bool eq = pa && pb && na == nb && memcmp(pa, pb, na) == 0;

	free(pa);
	free(pb);
	return eq;
}

/* Deterministic pseudo-random bytes (xorshift), cheap. */
static inline void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;

	for (size_t i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		p[i] = (uint8_t)(s >> 24);
	}
}

/* The whole-image SHA-256 that restore point rp records for its disk i, against the plain
 * SHA-256 of want (n bytes): 1 recorded and equal, 0 not recorded, -1 different (or the
 * manifest cannot be loaded, or there is no disk i). */
static inline int manifest_sha_state(struct engine_repo *repo, const struct engine_tenant_keys *tk,
                                     const char *rp, size_t i, const uint8_t *want, size_t n)
{
	struct engine_codec *codec = engine_codec_new(tk, 1, true);
	struct engine_manifest *m = NULL;
	uint8_t md[32];
	unsigned int len = 0;
	struct err e;
	int state = -1;

	if (engine_manifest_load(repo, codec, rp, &m, &e) == STATUS_OK && i < m->n_disks) {
		if (!(m->disks[i].flags & ENGINE_DISK_HAS_SHA256))
			state = 0;
		else if (EVP_Digest(want, n, md, &len, EVP_sha256(), NULL) == 1 &&
		         memcmp(m->disks[i].sha256, md, sizeof(md)) == 0)
			state = 1;
	}
	engine_manifest_free(m);
	engine_codec_free(codec);
	return state;
}

/* Write img as a file of n bytes with holes wherever img has whole zero 4 KiB blocks
 * (aborts on an I/O error). */
static inline void write_holey(const char *path, const uint8_t *img, size_t n)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)n) != 0)
		abort();
	for (size_t off = 0; off < n; off += 4096) {
		size_t l = n - off < 4096 ? n - off : 4096;
		bool z = true;

		for (size_t i = 0; i < l && z; i++)
			z = img[off + i] == 0;
		if (!z && pwrite(fd, img + off, l, (off_t)off) != (ssize_t)l)
			abort();
	}
	if (fsync(fd) != 0 || close(fd) != 0)
		abort();
}

#endif
