/* test_engine_roundtrip.c - byte-exact round trips (zero, sparse, random, ext4 images whose
 * size is not a multiple of the chunk size), FastCDC streams, incremental runs, cancel. */
#define _GNU_SOURCE /* nftw, mkostemp in the test helpers */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <sys/stat.h>

#include <openssl/evp.h>

#include "engine/fastcdc.h"
#include "engine/manifest.h"
#include "engine/sha256.h"

#include "engine_test_util.h"

#include <cmocka.h>

#define CS ((size_t)64 << 10)
#define IMG_SIZE (((size_t)3 << 20) + 12345) /* not a multiple of CS */

struct ctx {
	struct tenv *t;
	struct engine_repo *repo;
	struct engine_tenant_keys tk;
	char *img, *out;
};

static int setup(void **state)
{
	struct ctx *c = xcalloc(1, sizeof(*c));

	c->t = tenv_new();
	c->repo = tenv_repo(c->t, "tenant-a", &c->tk);
	c->img = xasprintf("%s/disk.img", c->t->dir);
	c->out = xasprintf("%s/restored.img", c->t->dir);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	engine_repo_free(c->repo);
	tenv_free(c->t);
	free(c->img);
	free(c->out);
	free(c);
	return 0;
}

static enum status backup(struct ctx *c, const struct engine_backup_opts *o,
                          const struct engine_extents *changed, struct engine_backup_result *res)
{
	struct engine_disk_source d = { .name = "disk0", .path = c->img, .changed = changed };
	struct err e;
	enum status st = engine_backup_run(c->repo, &c->tk, &d, 1, o, res, &e);

	if (st != STATUS_OK)
		fprintf(stderr, "backup: %s\n", e.msg);
	return st;
}

static void restore_and_compare(struct ctx *c, const char *rp)
{
	struct engine_restore_opts ro = { .threads = 3 };
	struct engine_restore_result rr;
	struct engine_verify_report rep;
	struct err e;
	enum status st = engine_restore_disk(c->repo, &c->tk, rp, "disk0", c->out, &ro, &rr, &e);

	if (st != STATUS_OK)
		fprintf(stderr, "restore: %s\n", e.msg);
	assert_int_equal(st, STATUS_OK);
	assert_true(files_equal(c->img, c->out));
	st = engine_verify_rp(c->repo, &c->tk, rp, &ro, &rep, &e);
	assert_int_equal(st, STATUS_OK);
	assert_int_equal(rep.n_problems, 0);
	engine_verify_report_cleanup(&rep);
	unlink(c->out);
}

/* The manifest's whole-image SHA-256 (computed by the backup's hasher thread) is the
 * plain SHA-256 of the image, as sha256sum prints it. */
static void check_image_sha(struct ctx *c, const char *rp, const uint8_t *img, size_t n)
{
	assert_int_equal(manifest_sha_state(c->repo, &c->tk, rp, 0, img, n), 1);
}

static void roundtrip(struct ctx *c, const uint8_t *img, size_t n, bool expect_sha)
{
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 3 };
	struct engine_backup_result res;
	struct engine_restore_opts ro = { .threads = 2 };
	struct engine_restore_result rr;
	struct err e;

	write_file(c->img, img, n);
	assert_int_equal(backup(c, &o, NULL, &res), STATUS_OK);
	assert_int_equal(res.bytes_total, n);
	assert_int_equal(res.chunks_total, (n + CS - 1) / CS);
	if (expect_sha)
		check_image_sha(c, res.rp_id, img, n);
	restore_and_compare(c, res.rp_id);
	assert_int_equal(
	        engine_restore_disk(c->repo, &c->tk, res.rp_id, "disk0", c->out, &ro, &rr, &e),
	        STATUS_OK);
	assert_int_equal(rr.sha256_checked, expect_sha);
	unlink(c->out);
}

/* New repositories use the v2 layout (chunks/ab/<id>); a v1 repository (chunks/ab/cd/<id>)
 * keeps working, incrementals included; an unknown marker is refused. */
static void test_repo_layouts(void **state)
{
	struct ctx *c = *state;
	uint8_t *img = xmalloc(IMG_SIZE);
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_backup_result res;
	struct engine_tenant_keys tk1;
	struct engine_repo *r1;
	struct stat sb;
	char *root1 = xasprintf("%s/repo-v1", c->t->dir);
	char *p;
	struct err e;

	fill_random(img, IMG_SIZE, 21);
	roundtrip(c, img, IMG_SIZE, true);
	p = engine_repo_chunk_path(c->repo, (const uint8_t *)"\xab\xcd"
	                                                     "0123456789abcdef0123456789abcd");
	assert_non_null(strstr(p, "/chunks/ab/abcd"));
	free(p);

	/* a v1 root, as engine_repo_open wrote it before the v2 layout */
	assert_int_equal(mkdir(root1, 0700), 0);
	p = xasprintf("%s/CAIRN-REPO", root1);
	write_file(p, "cairn repository v1\n", 20);
	free(p);
	r1 = engine_repo_open(root1, "tenant-a", true, &e);
	assert_non_null(r1);
	assert_int_equal(engine_tenant_keys_get(c->t->ks, &c->t->mk, "tenant-a", false, &tk1, &e),
	                 STATUS_OK);
	p = engine_repo_chunk_path(r1, (const uint8_t *)"\xab\xcd"
	                                                "0123456789abcdef0123456789abcd");
	assert_non_null(strstr(p, "/chunks/ab/cd/abcd"));
	free(p);
	write_file(c->img, img, IMG_SIZE);
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	assert_int_equal(engine_backup_run(r1, &tk1, &d, 1, &o, &res, &e), STATUS_OK);
	char rp1[ENGINE_RP_ID_MAX];
	snprintf(rp1, sizeof(rp1), "%s", res.rp_id);
	assert_true(res.chunks_new > 0);
	img[CS + 7] ^= 1;
	write_file(c->img, img, IMG_SIZE);
	o.parent_rp = rp1;
	assert_int_equal(engine_backup_run(r1, &tk1, &d, 1, &o, &res, &e), STATUS_OK);
	assert_int_equal(res.chunks_patch, 1); /* one block changed: a patch */
	struct engine_restore_opts ro = { .threads = 2 };
	struct engine_restore_result rr;
	assert_int_equal(engine_restore_disk(r1, &tk1, res.rp_id, "disk0", c->out, &ro, &rr, &e),
	                 STATUS_OK);
	assert_true(rr.sha256_checked);
	assert_true(files_equal(c->img, c->out));
	unlink(c->out);
	/* the chunk files are where v1 puts them */
	struct engine_manifest *m = NULL;
	struct engine_codec *codec = engine_codec_new(&tk1, 1, true);
	assert_int_equal(engine_manifest_load(r1, codec, res.rp_id, &m, &e), STATUS_OK);
	char hex[65];
	for (size_t i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", m->disks[0].entries[0].id[i]);
	p = xasprintf("%s/tenant-a/chunks/%.2s/%.2s/%s", root1, hex, hex + 2, hex);
	assert_int_equal(stat(p, &sb), 0);
	free(p);
	engine_manifest_free(m);
	engine_codec_free(codec);
	engine_repo_free(r1);

	/* an unknown repository version is refused, not guessed */
	p = xasprintf("%s/CAIRN-REPO", root1);
	unlink(p);
	write_file(p, "cairn repository v9\n", 20);
	free(p);
	assert_null(engine_repo_open(root1, "tenant-a", false, &e));
	assert_int_equal(e.code, STATUS_INVALID);
	free(root1);
	free(img);
}

static void test_zero_image(void **state)
{
	struct ctx *c = *state;
	uint8_t *img = xcalloc(1, IMG_SIZE);
	struct engine_backup_opts o = { .chunk_size = CS };
	struct engine_backup_result res;
	struct stat sb;

	roundtrip(c, img, IMG_SIZE, true);
	assert_int_equal(backup(c, &o, NULL, &res), STATUS_OK);
	assert_int_equal(res.chunks_zero, res.chunks_total);
	assert_int_equal(res.chunks_new, 0);
	assert_int_equal(res.bytes_stored, 0);
	/* restored zero image is sparse */
	struct engine_restore_opts ro = { 0 };
	struct engine_restore_result rr;
	struct err e;
	assert_int_equal(
	        engine_restore_disk(c->repo, &c->tk, res.rp_id, "disk0", c->out, &ro, &rr, &e),
	        STATUS_OK);
	assert_int_equal(stat(c->out, &sb), 0);
	assert_int_equal(sb.st_size, IMG_SIZE);
	assert_true(sb.st_blocks * 512 < 64L * 1024);
	free(img);
}

static void test_sparse_image(void **state)
{
	struct ctx *c = *state;
	uint8_t *img = xcalloc(1, IMG_SIZE);

	fill_random(img + 100000, 5000, 1);
	fill_random(img + IMG_SIZE - 3000, 3000, 2); /* in the short last chunk */
	memset(img + 2 * CS, 0x41, CS);              /* compressible */
	roundtrip(c, img, IMG_SIZE, true);
	free(img);
}

/* A file with real holes (ftruncate, data written at a few places): chunks wholly inside a
 * hole are zero entries that are never read, and the image SHA-256 still covers them.
 * Then an incremental after a hole is filled and data is punched out. */
static void test_holey_file(void **state)
{
	struct ctx *c = *state;
	uint8_t *img = xcalloc(1, IMG_SIZE);
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_backup_result r1, r2;
	struct stat sb;
	int fd;

	fill_random(img + 5 * CS + 100, 5000, 5);    /* one chunk with data */
	fill_random(img + 20 * CS - 4096, 8192, 6);  /* straddles chunks 19 and 20 */
	fill_random(img + IMG_SIZE - 3000, 3000, 7); /* the short last chunk */
	fd = open(c->img, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)IMG_SIZE), 0);
	assert_int_equal(pwrite(fd, img + 5 * CS, CS, (off_t)(5 * CS)), (ssize_t)CS);
	assert_int_equal(pwrite(fd, img + 20 * CS - 4096, 8192, (off_t)(20 * CS - 4096)), 8192);
	assert_int_equal(pwrite(fd, img + IMG_SIZE - 3000, 3000, (off_t)(IMG_SIZE - 3000)), 3000);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fstat(fd, &sb), 0);
	close(fd);
	if ((uint64_t)sb.st_blocks * 512 >= IMG_SIZE) {
		free(img);
		skip(); /* this file system does not keep holes */
		return;
	}
	assert_int_equal(backup(c, &o, NULL, &r1), STATUS_OK);
	/* chunks 5, 19, 20 and the last are read; the rest are holes (a file system that keeps
	 * holes in units above 4 KiB may make a neighbour count as data) */
	assert_true(r1.bytes_read >= 3 * CS + IMG_SIZE % CS && r1.bytes_read < IMG_SIZE / 2);
	assert_int_equal(r1.chunks_zero, r1.chunks_total - 4);
	check_image_sha(c, r1.rp_id, img, IMG_SIZE);
	restore_and_compare(c, r1.rp_id);

	/* fill a hole, punch chunk 5's data out: the incremental sees both */
	fill_random(img + 9 * CS, CS, 8);
	memset(img + 5 * CS, 0, CS);
	fd = open(c->img, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, img + 9 * CS, CS, (off_t)(9 * CS)), (ssize_t)CS);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(5 * CS),
	                           (off_t)CS),
	                 0);
	close(fd);
	o.parent_rp = r1.rp_id;
	assert_int_equal(backup(c, &o, NULL, &r2), STATUS_OK);
	assert_true(r2.bytes_read >= 3 * CS + IMG_SIZE % CS && r2.bytes_read < IMG_SIZE / 2);
	assert_int_equal(r2.chunks_new, 1);
	check_image_sha(c, r2.rp_id, img, IMG_SIZE);
	restore_and_compare(c, r2.rp_id);
	free(img);
}

static void test_random_image(void **state)
{
	struct ctx *c = *state;
	uint8_t *img = xmalloc(IMG_SIZE);

	fill_random(img, IMG_SIZE, 3);
	roundtrip(c, img, IMG_SIZE, true);
	free(img);
}

/* The chunk ids and the whole-image SHA-256 are the same whether the hasher computes them in
 * one fused pass (engine_sha256_update2, on a CPU with the SHA extensions) or OpenSSL does
 * (the hasher the image hash, the workers the ids). 4 KiB chunks alternating with holes make
 * the workers both wait for ids the hasher is computing and take over ids it has not reached
 * yet; verify re-checks every id. */
static void test_fused_ids(void **state)
{
	struct ctx *c = *state;
	const size_t n = ((size_t)8 << 20) + 512, cs = 4096;
	uint8_t *img = xcalloc(1, n);
	struct engine_backup_result r[2];
	struct engine_manifest *m[2] = { NULL, NULL };
	struct engine_codec *codec = engine_codec_new(&c->tk, 1, true);
	struct err e;

	fill_random(img, n, 11);
	for (size_t off = 0; off < n; off += 3 * cs)
		memset(img + off, 0, cs < n - off ? cs : n - off); /* every third chunk zero */
	write_holey(c->img, img, n);                               /* zero chunks stay holes */
	for (int i = 0; i < 2; i++) {
		struct engine_backup_opts o = { .chunk_size = (uint32_t)cs, .threads = 3 };

		engine_sha256_set_fast(i == 0);
		o.rp_id = i == 0 ? "fused" : "openssl";
		assert_int_equal(backup(c, &o, NULL, &r[i]), STATUS_OK);
		check_image_sha(c, r[i].rp_id, img, n);
		assert_int_equal(engine_manifest_load(c->repo, codec, r[i].rp_id, &m[i], &e),
		                 STATUS_OK);
	}
	engine_sha256_set_fast(true);
	if (engine_sha256_fast()) /* the fused path did compute ids (not only the workers) */
		assert_true(r[0].chunks_id_fused > 0);
	assert_int_equal(r[1].chunks_id_fused, 0);
	assert_int_equal(m[0]->disks[0].n_entries, m[1]->disks[0].n_entries);
	for (size_t k = 0; k < m[0]->disks[0].n_entries; k++) {
		assert_int_equal(m[0]->disks[0].entries[k].kind, m[1]->disks[0].entries[k].kind);
		assert_memory_equal(m[0]->disks[0].entries[k].id, m[1]->disks[0].entries[k].id,
		                    ENGINE_ID_LEN);
	}
	assert_int_equal(r[1].chunks_new, 0); /* the second run found every chunk by its id */
	restore_and_compare(c, "fused");
	restore_and_compare(c, "openssl");
	engine_manifest_free(m[0]);
	engine_manifest_free(m[1]);
	engine_codec_free(codec);
	free(img);
}

static void test_tiny_images(void **state)
{
	struct ctx *c = *state;
	uint8_t b[5] = { 1, 2, 3, 4, 5 };

	roundtrip(c, b, 1, true);
	roundtrip(c, b, 5, true);
	roundtrip(c, b, 0, true);
}

static void test_ext4_image(void **state)
{
	struct ctx *c = *state;
	char *src = xasprintf("%s/src", c->t->dir);
	char *cmd;
	size_t n;
	uint8_t *img;
	int rc;

	/* A real ext4 image (mke2fs -d, no mount) of 3076 KiB: not a multiple of 64 KiB. */
	cmd = xasprintf("mkdir -p %s/d1/d2 && seq 1 20000 > %s/d1/numbers && "
	                "head -c 300000 /dev/urandom > %s/d1/d2/random && "
	                "cp /etc/services %s/ 2>/dev/null; "
	                "mke2fs -q -F -t ext4 -d %s %s 3076k",
	                src, src, src, src, src, c->img);
	rc = system(cmd);
	free(cmd);
	free(src);
	if (rc != 0)
		skip();
	img = read_file_all(c->img, &n);
	assert_int_equal(n, 3076 * 1024);
	assert_true(n % CS != 0);
	roundtrip(c, img, n, true);
	free(img);
}

static void test_cdc_stream(void **state)
{
	struct ctx *c = *state;
	size_t n = (9u << 20) + 777;
	uint8_t *img = xmalloc(n);
	struct engine_backup_opts o = { .cdc = true, .threads = 2 };
	struct engine_backup_result res;
	struct engine_manifest *m;
	struct engine_codec *codec = engine_codec_new(&c->tk, 1, true);
	struct err e;

	fill_random(img, n, 9);
	memset(img + (2u << 20), 0, 3u << 20);
	write_file(c->img, img, n);
	assert_int_equal(backup(c, &o, NULL, &res), STATUS_OK);
	assert_int_equal(engine_manifest_load(c->repo, codec, res.rp_id, &m, &e), STATUS_OK);
	assert_true(m->disks[0].flags & ENGINE_DISK_CDC);
	for (size_t i = 0; i + 1 < m->disks[0].n_entries; i++)
		assert_true(m->disks[0].entries[i].length >= ENGINE_CDC_MIN_DEFAULT);
	engine_manifest_free(m);
	engine_codec_free(codec);
	check_image_sha(c, res.rp_id, img, n);
	restore_and_compare(c, res.rp_id);
	free(img);
}

/* 1 MiB image of random data, then change bytes in chunks 3 and 9 only. */
static void test_incremental(void **state)
{
	struct ctx *c = *state;
	size_t n = 16 * CS + 999;
	uint8_t *img = xmalloc(n);
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_backup_result r1, r2, r3, r4;
	struct engine_extents ext;

	fill_random(img, n, 4);
	write_file(c->img, img, n);
	assert_int_equal(backup(c, &o, NULL, &r1), STATUS_OK);
	assert_int_equal(r1.chunks_new, 17);

	img[3 * CS + 5] ^= 0xff;
	img[9 * CS + CS - 1] ^= 0x01;
	write_file(c->img, img, n);

	/* without change tracking: reads everything, stores only the 2 changed chunks (as
	 * patches of their changed 4 KiB block: test_engine_patch covers those) */
	o.parent_rp = r1.rp_id;
	assert_int_equal(backup(c, &o, NULL, &r2), STATUS_OK);
	assert_int_equal(r2.chunks_patch, 2);
	assert_int_equal(r2.chunks_new, 0);
	assert_int_equal(r2.chunks_known, 15);
	assert_int_equal(r2.bytes_read, n);
	restore_and_compare(c, r2.rp_id);

	/* with change tracking: reads only the chunks overlapping the changed extents */
	img[12 * CS] ^= 0x55;
	write_file(c->img, img, n);
	engine_extents_init(&ext);
	engine_extents_add(&ext, 12 * CS, 1);
	engine_extents_normalize(&ext);
	o.parent_rp = r2.rp_id;
	assert_int_equal(backup(c, &o, &ext, &r3), STATUS_OK);
	assert_int_equal(r3.chunks_patch, 1);
	assert_int_equal(r3.chunks_parent, 16);
	assert_int_equal(r3.bytes_read, CS);
	restore_and_compare(c, r3.rp_id); /* logically full */
	engine_extents_cleanup(&ext);

	/* an extent spanning a chunk boundary touches both chunks */
	engine_extents_init(&ext);
	engine_extents_add(&ext, 5 * CS - 10, 20);
	engine_extents_normalize(&ext);
	o.parent_rp = r3.rp_id;
	assert_int_equal(backup(c, &o, &ext, &r4), STATUS_OK);
	assert_int_equal(r4.bytes_read, 2 * CS);
	assert_int_equal(r4.chunks_new, 0);
	engine_extents_cleanup(&ext);

	/* no chunk size given: the parent's (CS, not the 2 MiB default) is kept, so nothing
	 * unchanged is stored again */
	struct engine_backup_result r5;
	struct engine_manifest *m = NULL;
	struct engine_codec *codec = engine_codec_new(&c->tk, 1, true);
	struct err e;

	o.chunk_size = 0;
	o.parent_rp = r4.rp_id;
	assert_int_equal(backup(c, &o, NULL, &r5), STATUS_OK);
	assert_int_equal(r5.chunks_total, 17);
	assert_int_equal(r5.chunks_new + r5.chunks_patch, 0);
	assert_int_equal(engine_manifest_load(c->repo, codec, r5.rp_id, &m, &e), STATUS_OK);
	assert_int_equal(m->disks[0].chunk_size, CS);
	engine_manifest_free(m);
	engine_codec_free(codec);
	restore_and_compare(c, r5.rp_id);

	/* restore points are listed in order */
	char **ids;
	size_t nids;
	assert_int_equal(engine_repo_manifest_list(c->repo, &ids, &nids, &e), STATUS_OK);
	assert_int_equal(nids, 5);
	engine_repo_ids_free(ids, nids);
	free(img);
}

static void test_rp_id_conflict(void **state)
{
	struct ctx *c = *state;
	uint8_t b[100] = { 7 };
	struct engine_backup_opts o = { .chunk_size = CS, .rp_id = "task-42" };
	struct engine_backup_result res;
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	struct err e;

	write_file(c->img, b, sizeof(b));
	assert_int_equal(backup(c, &o, NULL, &res), STATUS_OK);
	assert_int_equal(engine_backup_run(c->repo, &c->tk, &d, 1, &o, &res, &e), STATUS_CONFLICT);
}

struct cancel_state {
	atomic_bool *flag;
	int calls;
};

static void cancel_after_first(const struct engine_progress *p, void *ud)
{
	struct cancel_state *cs = ud;

	(void)p;
	cs->calls++;
	atomic_store(cs->flag, true);
}

/* A device is restored in place: whatever it held before must not survive, zero chunks
 * included (they are holes only in a fresh file). Needs a loop device (root, losetup);
 * skipped where there is none. */
static void test_restore_to_device(void **state)
{
	struct ctx *c = *state;
	size_t n = 40 * CS;
	uint8_t *img = xmalloc(n), *junk = xmalloc(2 * n), *got;
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_backup_result res;
	struct engine_restore_opts ro = { .threads = 3 };
	struct engine_restore_result rr;
	char *backing = xasprintf("%s/loop-backing", c->t->dir), *cmd, dev[64] = "";
	struct err e;
	FILE *f;
	int fd;

	fill_random(img, n, 31);
	memset(img + 5 * CS, 0, 3 * CS); /* zero chunks */
	write_file(c->img, img, n);
	assert_int_equal(backup(c, &o, NULL, &res), STATUS_OK);
	fill_random(junk, 2 * n, 32);
	write_file(backing, junk, 2 * n);
	cmd = xasprintf("losetup -f --show %s 2>/dev/null", backing);
	f = popen(cmd, "r");
	free(cmd);
	if (f == NULL || fgets(dev, sizeof(dev), f) == NULL || pclose(f) != 0 ||
	    strncmp(dev, "/dev/loop", 9) != 0) {
		free(img);
		free(junk);
		free(backing);
		skip(); /* no loop devices here */
		return;
	}
	dev[strcspn(dev, "\n")] = '\0';
	assert_int_equal(
	        engine_restore_disk(c->repo, &c->tk, res.rp_id, "disk0", dev, &ro, &rr, &e),
	        STATUS_OK);
	assert_true(rr.sha256_checked);
	got = xmalloc(n);
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (size_t off = 0; off < n;) {
		ssize_t r = pread(fd, got + off, n - off, (off_t)off);

		assert_true(r > 0);
		off += (size_t)r;
	}
	close(fd);
	cmd = xasprintf("losetup -d %s", dev);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	assert_memory_equal(got, img, n);
	free(got);
	free(img);
	free(junk);
	free(backing);
}

static void test_cancel(void **state)
{
	struct ctx *c = *state;
	uint8_t b[CS];
	atomic_bool flag = true;
	struct engine_backup_opts o = { .chunk_size = CS, .cancel = &flag };
	struct engine_backup_result res;
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	char **ids;
	size_t nids;
	struct err e;

	fill_random(b, sizeof(b), 5);
	write_file(c->img, b, sizeof(b));
	assert_int_equal(engine_backup_run(c->repo, &c->tk, &d, 1, &o, &res, &e),
	                 STATUS_UNAVAILABLE);
	assert_true(res.cancelled);
	assert_int_equal(engine_repo_manifest_list(c->repo, &ids, &nids, &e), STATUS_OK);
	assert_int_equal(nids, 0);
	engine_repo_ids_free(ids, nids);
	(void)cancel_after_first;
}

static void test_extents(void **state)
{
	struct engine_extents x;
	char path[] = "/tmp/cairn-ext-XXXXXX";
	int fd = mkstemp(path);
	static const char text[] = "# changed\n0 4096\n0x2000 0x1000\n\n8192 100\n100000 1\n";
	struct err e;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	assert_int_equal(engine_extents_load(path, &x, &e), STATUS_OK);
	assert_int_equal(x.n, 3);
	assert_int_equal(x.v[1].offset, 8192);
	assert_int_equal(x.v[1].length, 4096);
	assert_true(engine_extents_overlap(&x, 4000, 1));
	assert_false(engine_extents_overlap(&x, 4096, 4096));
	assert_true(engine_extents_overlap(&x, 99999, 2));
	assert_false(engine_extents_overlap(&x, 100001, 1000));
	engine_extents_cleanup(&x);
	write_file(path, "12 x\n", 5);
	assert_int_equal(engine_extents_load(path, &x, &e), STATUS_INVALID);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_zero_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repo_layouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holey_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tiny_images, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fused_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ext4_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cdc_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rp_id_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_to_device, setup, teardown),
		cmocka_unit_test(test_extents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
