/* test_engine_security.c - no plaintext or key in the repository (canary, with and without
 * compression), tenant isolation, key wrapping, keystore placement, master key files. */
#define _GNU_SOURCE /* nftw, memmem, mkostemp in the test helpers */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/chunk.h"
#include "engine/manifest.h"

#include "engine_test_util.h"

#include <cmocka.h>

#define CS ((size_t)64 << 10)
static const char CANARY[] = "CAIRN-CANARY-7f3a9c1e-PLAINTEXT";

/* Search every file under dir for needle. */
static const void *g_needle;
static size_t g_needle_len;
static int g_hits;

static int scan_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)f;
	if (flag == FTW_F && S_ISREG(sb->st_mode)) {
		size_t n;
		uint8_t *b = read_file_try(p, &n);

		if (b != NULL && n >= g_needle_len && memmem(b, n, g_needle, g_needle_len) != NULL)
			g_hits++;
		free(b);
	}
	return 0;
}

static int count_hits(const char *dir, const void *needle, size_t n)
{
	g_needle = needle;
	g_needle_len = n;
	g_hits = 0;
	nftw(dir, scan_cb, 16, FTW_PHYS);
	return g_hits;
}

static void test_canary(void **state)
{
	struct tenv *t = tenv_new();
	struct engine_tenant_keys tk;
	struct engine_repo *r = tenv_repo(t, "tenant-a", &tk);
	size_t n = 8 * CS + 1000;
	uint8_t *img = xcalloc(1, n);
	char *path = xasprintf("%s/img", t->dir);
	char *src_dir = xasprintf("%s/src", t->dir);
	struct engine_backup_result res;
	struct err e;

	(void)state;
	/* compressible chunk full of canaries, an incompressible one with one canary, the
	 * canary alone in a zero chunk, and in the short tail */
	for (size_t off = 0; off + sizeof(CANARY) < CS; off += sizeof(CANARY))
		memcpy(img + off, CANARY, sizeof(CANARY) - 1);
	fill_random(img + CS, CS, 7);
	memcpy(img + CS + 1234, CANARY, sizeof(CANARY) - 1);
	memcpy(img + 3 * CS + 77, CANARY, sizeof(CANARY) - 1);
	memcpy(img + 8 * CS + 10, CANARY, sizeof(CANARY) - 1);
	mkdir(src_dir, 0700);
	free(path);
	path = xasprintf("%s/img", src_dir);
	write_file(path, img, n);

	char parent[ENGINE_RP_ID_MAX] = "";

	for (int pass = 0; pass < 4; pass++) {
		struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
		struct engine_disk_source d = { .name = "disk0", .path = path };

		o.no_compress = pass == 1 || pass == 3;
		o.cdc = pass == 2;
		o.source = "vm-with-canary"; /* metadata is encrypted too */
		if (pass == 3) {
			/* an incremental whose new canaries land in patches (one block of the
			 * random chunk, one of a zero chunk): patches and block maps are
			 * sealed like chunks, uncompressed here so nothing hides them */
			memcpy(img + CS + 5000, CANARY, sizeof(CANARY) - 1);
			memcpy(img + 5 * CS + 9000, CANARY, sizeof(CANARY) - 1);
			write_file(path, img, n);
			o.parent_rp = parent;
		}
		assert_int_equal(engine_backup_run(r, &tk, &d, 1, &o, &res, &e), STATUS_OK);
		if (pass == 1)
			snprintf(parent, sizeof(parent), "%s", res.rp_id);
		if (pass == 3)
			assert_int_equal(res.chunks_patch, 2);
		assert_int_equal(count_hits(t->repo_dir, CANARY, sizeof(CANARY) - 1), 0);
		assert_int_equal(count_hits(t->repo_dir, "vm-with-canary", 14), 0);
		/* neither the tenant keys nor the master key appear in repository or keys dir */
		assert_int_equal(count_hits(t->repo_dir, tk.id_key, 32), 0);
		assert_int_equal(count_hits(t->repo_dir, tk.data_key, 32), 0);
		assert_int_equal(count_hits(t->repo_dir, t->mk.k, 32), 0);
		assert_int_equal(count_hits(t->keys_dir, tk.data_key, 32), 0);
		assert_int_equal(count_hits(t->keys_dir, tk.id_key, 32), 0);
		assert_int_equal(count_hits(t->keys_dir, t->mk.k, 32), 0);
	}
	/* sanity: the scanner finds the canaries where they are */
	assert_int_equal(count_hits(src_dir, CANARY, sizeof(CANARY) - 1), 1);
	free(img);
	free(path);
	free(src_dir);
	engine_repo_free(r);
	tenv_free(t);
}

static size_t list_chunk_names(const char *dir, char ***out);

static void test_tenant_isolation(void **state)
{
	struct tenv *t = tenv_new();
	struct engine_tenant_keys ka, kb;
	struct engine_repo *ra = tenv_repo(t, "tenant-a", &ka);
	struct engine_repo *rb = tenv_repo(t, "tenant-b", &kb);
	size_t n = 3 * CS;
	uint8_t *img = xmalloc(n);
	char *path = xasprintf("%s/img", t->dir);
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_backup_result resa, resb;
	struct engine_disk_source d = { .name = "disk0", .path = path };
	struct engine_codec *ca = engine_codec_new(&ka, 1, true);
	struct engine_codec *cb = engine_codec_new(&kb, 1, true);
	uint8_t ida[32], idb[32];
	struct err e;

	(void)state;
	assert_memory_not_equal(ka.id_key, kb.id_key, 32);
	assert_memory_not_equal(ka.data_key, kb.data_key, 32);
	fill_random(img, n, 11);
	write_file(path, img, n);
	assert_int_equal(engine_backup_run(ra, &ka, &d, 1, &o, &resa, &e), STATUS_OK);
	assert_int_equal(engine_backup_run(rb, &kb, &d, 1, &o, &resb, &e), STATUS_OK);
	/* same plaintext, different ids per tenant */
	engine_codec_id(ca, img, CS, ida);
	engine_codec_id(cb, img, CS, idb);
	assert_memory_not_equal(ida, idb, 32);
	assert_true(engine_repo_chunk_exists(ra, ida));
	assert_false(engine_repo_chunk_exists(rb, ida)); /* B cannot even reference A's chunk */
	assert_false(engine_repo_chunk_exists(ra, idb));

	/* A's sealed chunk planted in B's store under A's id: B's key cannot open it */
	char *pa = engine_repo_chunk_path(ra, ida);
	size_t sn;
	uint8_t *sealed = read_file_all(pa, &sn);
	bool stored;
	uint8_t *plain = xmalloc(CS);
	size_t pl;
	assert_int_equal(engine_repo_chunk_put(rb, ida, sealed, sn, &stored, &e), STATUS_OK);
	assert_true(stored);
	assert_int_equal(
	        engine_codec_open(cb, ENGINE_KIND_CHUNK, ida, sealed, sn, plain, CS, &pl, &e),
	        STATUS_CORRUPT);
	assert_int_equal(
	        engine_codec_open(ca, ENGINE_KIND_CHUNK, ida, sealed, sn, plain, CS, &pl, &e),
	        STATUS_OK);
	assert_memory_equal(plain, img, CS);

	/* B cannot see A's restore point, nor open A's manifest planted in B's dir */
	struct engine_restore_opts ro = { 0 };
	struct engine_restore_result rr;
	char *out = xasprintf("%s/out", t->dir);
	assert_int_equal(engine_restore_disk(rb, &kb, resa.rp_id, "disk0", out, &ro, &rr, &e),
	                 STATUS_NOT_FOUND);
	char *ma = xasprintf("%s/tenant-a/manifests/%s.mf", t->repo_dir, resa.rp_id);
	char *mb = xasprintf("%s/tenant-b/manifests/%s.mf", t->repo_dir, resa.rp_id);
	size_t mn;
	uint8_t *mbytes = read_file_all(ma, &mn);
	write_file(mb, mbytes, mn);
	assert_int_equal(engine_restore_disk(rb, &kb, resa.rp_id, "disk0", out, &ro, &rr, &e),
	                 STATUS_CORRUPT);
	/* A's manifest restored with A's keys still works */
	assert_int_equal(engine_restore_disk(ra, &ka, resa.rp_id, "disk0", out, &ro, &rr, &e),
	                 STATUS_OK);
	assert_true(files_equal(path, out));

	/* tenant ids that would escape the repository are refused */
	assert_null(engine_repo_open(t->repo_dir, "../x", true, &e));
	assert_int_equal(e.code, STATUS_INVALID);
	assert_null(engine_repo_open(t->repo_dir, ".hidden", true, &e));

	char **names;
	size_t nn = list_chunk_names(t->repo_dir, &names);
	assert_true(nn > 0);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	free(mbytes);
	free(ma);
	free(mb);
	free(out);
	free(plain);
	free(sealed);
	free(pa);
	engine_codec_free(ca);
	engine_codec_free(cb);
	free(img);
	free(path);
	engine_repo_free(ra);
	engine_repo_free(rb);
	tenv_free(t);
}

static char **g_names;
static size_t g_nnames;

static int name_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	if (flag == FTW_F && strlen(p + f->base) == 64) {
		g_names = xrealloc(g_names, (g_nnames + 1) * sizeof(*g_names));
		g_names[g_nnames++] = xstrdup(p + f->base);
	}
	return 0;
}

static size_t list_chunk_names(const char *dir, char ***out)
{
	g_names = NULL;
	g_nnames = 0;
	nftw(dir, name_cb, 16, FTW_PHYS);
	*out = g_names;
	return g_nnames;
}

/* The chunk codec stores incompressible data raw (no zstd flag, plaintext-sized) and
 * compresses the rest, at the fast default and at the highest level a task may ask for. */
static void test_codec_raw_and_levels(void **state)
{
	struct tenv *t = tenv_new();
	struct engine_tenant_keys tk;
	struct engine_repo *r = tenv_repo(t, "tenant-a", &tk);
	const int levels[] = { 1, 19, 22 };
	size_t cap = engine_sealed_bound(CS), sn = 0, pl = 0;
	uint8_t *rnd = xmalloc(CS), *txt = xmalloc(CS), *sealed = xmalloc(cap),
	        *plain = xmalloc(CS);
	uint8_t id[32];
	struct err e;

	(void)state;
	fill_random(rnd, CS, 21);
	for (size_t i = 0; i < CS; i++)
		txt[i] = (uint8_t) "cairn backs up virtual machines. "[i % 33];
	for (size_t k = 0; k < sizeof(levels) / sizeof(levels[0]); k++) {
		struct engine_codec *c = engine_codec_new(&tk, levels[k], true);

		engine_codec_id(c, rnd, CS, id);
		assert_int_equal(
		        engine_codec_seal(c, ENGINE_KIND_CHUNK, id, rnd, CS, sealed, &sn, &e),
		        STATUS_OK);
		assert_int_equal(sealed[6] & ENGINE_FLAG_ZSTD, 0); /* stored raw */
		assert_true(sn >= ENGINE_CHUNK_HDR_LEN + CS &&
		            sn <= ENGINE_CHUNK_HDR_LEN + CS + 16);
		assert_int_equal(
		        engine_codec_open(c, ENGINE_KIND_CHUNK, id, sealed, sn, plain, CS, &pl, &e),
		        STATUS_OK);
		assert_memory_equal(plain, rnd, CS);

		engine_codec_id(c, txt, CS, id);
		assert_int_equal(
		        engine_codec_seal(c, ENGINE_KIND_CHUNK, id, txt, CS, sealed, &sn, &e),
		        STATUS_OK);
		assert_int_equal(sealed[6] & ENGINE_FLAG_ZSTD, ENGINE_FLAG_ZSTD);
		assert_true(sn < CS / 8);
		assert_int_equal(
		        engine_codec_open(c, ENGINE_KIND_CHUNK, id, sealed, sn, plain, CS, &pl, &e),
		        STATUS_OK);
		assert_int_equal(pl, CS);
		assert_memory_equal(plain, txt, CS);
		engine_codec_free(c);
	}
	free(rnd);
	free(txt);
	free(sealed);
	free(plain);

	/* the largest chunk at the highest level (tables capped by ENGINE_ZSTD_TABLELOG_MAX) */
	{
		const size_t big = (size_t)8 << 20;
		struct engine_codec *c = engine_codec_new(&tk, 22, true);
		uint8_t *src = xmalloc(big), *out = xmalloc(engine_sealed_bound(big)),
		        *back = xmalloc(big);

		fill_random(src, big, 23);
		for (size_t i = 0; i < big; i += 8192) /* compressible, not trivially */
			memset(src + i, (int)(i >> 13) & 0xff, 4096);
		engine_codec_id(c, src, big, id);
		assert_int_equal(
		        engine_codec_seal(c, ENGINE_KIND_CHUNK, id, src, big, out, &sn, &e),
		        STATUS_OK);
		assert_true(sn < big * 3 / 4);
		assert_int_equal(
		        engine_codec_open(c, ENGINE_KIND_CHUNK, id, out, sn, back, big, &pl, &e),
		        STATUS_OK);
		assert_int_equal(pl, big);
		assert_memory_equal(back, src, big);
		engine_codec_free(c);
		free(src);
		free(out);
		free(back);
	}
	engine_repo_free(r);
	tenv_free(t);
}

static void test_keys(void **state)
{
	struct tenv *t = tenv_new();
	struct engine_tenant_keys k1, k2, k3;
	struct engine_master_key other;
	uint8_t w[ENGINE_WRAPPED_LEN];
	struct err e;

	(void)state;
	assert_int_equal(engine_tenant_keys_get(t->ks, &t->mk, "t1", false, &k1, &e),
	                 STATUS_NOT_FOUND);
	assert_int_equal(engine_tenant_keys_get(t->ks, &t->mk, "t1", true, &k1, &e), STATUS_OK);
	assert_int_equal(engine_tenant_keys_get(t->ks, &t->mk, "t1", true, &k2, &e), STATUS_OK);
	assert_memory_equal(&k1, &k2, sizeof(k1));
	assert_int_equal(engine_tenant_keys_get(t->ks, &t->mk, "bad/tenant", true, &k2, &e),
	                 STATUS_INVALID);
	/* wrong master key, wrong tenant, damaged blob */
	memset(other.k, 0x42, sizeof(other.k));
	assert_int_equal(engine_tenant_keys_get(t->ks, &other, "t1", true, &k3, &e),
	                 STATUS_CORRUPT);
	assert_int_equal(engine_keys_wrap(&t->mk, "t1", &k1, w, &e), STATUS_OK);
	assert_int_equal(engine_keys_unwrap(&t->mk, "t2", w, sizeof(w), &k3, &e), STATUS_CORRUPT);
	w[50] ^= 1;
	assert_int_equal(engine_keys_unwrap(&t->mk, "t1", w, sizeof(w), &k3, &e), STATUS_CORRUPT);
	w[50] ^= 1;
	assert_int_equal(engine_keys_unwrap(&t->mk, "t1", w, sizeof(w), &k3, &e), STATUS_OK);
	assert_memory_equal(&k1, &k3, sizeof(k1));
	/* the stored blob is wrapped: no raw key in it */
	assert_int_equal(count_hits(t->keys_dir, k1.data_key, 32), 0);

	/* keys dir inside the repository is refused */
	char *inside = xasprintf("%s/keys", t->repo_dir);
	assert_null(engine_keystore_file_new(inside, t->repo_dir, &e));
	assert_int_equal(e.code, STATUS_FORBIDDEN);
	assert_null(engine_keystore_file_new(t->repo_dir, t->repo_dir, &e));
	free(inside);

	/* master key files: raw 32 bytes, hex with newline, wrong sizes */
	char *mkp = xasprintf("%s/master.key", t->dir);
	struct engine_master_key mk;
	write_file(mkp, t->mk.k, 32);
	assert_int_equal(engine_master_key_load(&mk, mkp, &e), STATUS_OK);
	assert_memory_equal(mk.k, t->mk.k, 32);
	char hex[66];
	for (size_t i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", t->mk.k[i]);
	hex[64] = '\n';
	write_file(mkp, hex, 65);
	memset(&mk, 0, sizeof(mk));
	assert_int_equal(engine_master_key_load(&mk, mkp, &e), STATUS_OK);
	assert_memory_equal(mk.k, t->mk.k, 32);
	write_file(mkp, hex, 31);
	assert_int_equal(engine_master_key_load(&mk, mkp, &e), STATUS_INVALID);
	assert_null(strstr(e.msg, "\n")); /* no key material echoed */
	setenv(ENGINE_MASTER_KEY_ENV, mkp, 1);
	write_file(mkp, t->mk.k, 32);
	assert_int_equal(engine_master_key_from_env(&mk, &e), STATUS_OK);
	unsetenv(ENGINE_MASTER_KEY_ENV);
	assert_int_equal(engine_master_key_from_env(&mk, &e), STATUS_INVALID);
	free(mkp);
	tenv_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canary),
		cmocka_unit_test(test_tenant_isolation),
		cmocka_unit_test(test_codec_raw_and_levels),
		cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
