/* test_engine_patch.c - incremental backups below chunk granularity: patches against the
 * parent's chunk, block maps, cumulative patches, zero bases, fallbacks; every restore point
 * stays byte-exact and verifiable. */
#define _GNU_SOURCE /* nftw, mkostemp in the test helpers */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/hex.h"
#include "engine/manifest.h"
#include "engine/patch.h"

#include "engine_test_util.h"

#include <cmocka.h>

#define CS ((size_t)64 << 10)           /* 16 blocks per chunk */
#define N_CHUNKS 40                     /* two block map groups */
#define IMG (N_CHUNKS * CS - CS + 5000) /* last chunk 5000 bytes: a partial block */
#define BLK ((size_t)ENGINE_BLOCK)

struct ctx {
	struct tenv *t;
	struct engine_repo *repo;
	struct engine_tenant_keys tk;
	char *img, *out;
	uint8_t *data;
	char rp[8][ENGINE_RP_ID_MAX];
	uint8_t *saved[8]; /* image of each restore point */
	int n;
	bool buffered; /* no O_DIRECT anywhere */
};

static int setup(void **state)
{
	struct ctx *c = xcalloc(1, sizeof(*c));

	c->t = tenv_new();
	c->repo = tenv_repo(c->t, "tenant-a", &c->tk);
	c->img = xasprintf("%s/disk.img", c->t->dir);
	c->out = xasprintf("%s/restored.img", c->t->dir);
	c->data = xmalloc(IMG);
	fill_random(c->data, IMG, 77);
	memset(c->data + 5 * CS, 0, CS);  /* chunk 5: zeros */
	memset(c->data + 20 * CS, 0, CS); /* chunk 20: zeros */
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	for (int i = 0; i < c->n; i++)
		free(c->saved[i]);
	engine_repo_free(c->repo);
	tenv_free(c->t);
	free(c->img);
	free(c->out);
	free(c->data);
	free(c);
	return 0;
}

/* Back up the current image (parent: the previous restore point) and keep a copy of it. */
static void run(struct ctx *c, const struct engine_extents *changed,
                struct engine_backup_result *res)
{
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 3 };
	struct engine_disk_source d = { .name = "disk0", .path = c->img, .changed = changed };
	struct err e;

	write_file(c->img, c->data, IMG);
	if (c->n > 0)
		o.parent_rp = c->rp[c->n - 1];
	assert_int_equal(engine_backup_run(c->repo, &c->tk, &d, 1, &o, res, &e), STATUS_OK);
	snprintf(c->rp[c->n], sizeof(c->rp[c->n]), "%s", res->rp_id);
	c->saved[c->n] = xmalloc(IMG);
	memcpy(c->saved[c->n], c->data, IMG);
	c->n++;
}

/* Every restore point from the first-th on restores byte-exact and verifies clean. */
static void check_all_from(struct ctx *c, int first)
{
	struct engine_restore_opts ro = { .threads = 3, .no_direct_io = c->buffered };

	for (int i = first; i < c->n; i++) {
		struct engine_restore_result rr;
		struct engine_verify_report rep;
		struct err e;
		size_t n = 0;
		enum status st = engine_restore_disk(c->repo, &c->tk, c->rp[i], "disk0", c->out,
		                                     &ro, &rr, &e);

		if (st != STATUS_OK)
			fprintf(stderr, "restore %s: %s\n", c->rp[i], e.msg);
		assert_int_equal(st, STATUS_OK);
		uint8_t *got = read_file_all(c->out, &n);
		assert_int_equal(n, IMG);
		assert_memory_equal(got, c->saved[i], IMG);
		free(got);
		unlink(c->out);
		st = engine_verify_rp(c->repo, &c->tk, c->rp[i], &ro, &rep, &e);
		if (st != STATUS_OK)
			fprintf(stderr, "verify %s: %s\n", c->rp[i], e.msg);
		assert_int_equal(st, STATUS_OK);
		engine_verify_report_cleanup(&rep);
	}
}

static void check_all(struct ctx *c)
{
	check_all_from(c, 0);
}

static struct engine_manifest *load(struct ctx *c, int i)
{
	struct engine_codec *codec = engine_codec_new(&c->tk, 1, true);
	struct engine_manifest *m = NULL;
	struct err e;

	assert_int_equal(engine_manifest_load(c->repo, codec, c->rp[i], &m, &e), STATUS_OK);
	engine_codec_free(codec);
	return m;
}

static void test_patches(void **state)
{
	struct ctx *c = *state;
	struct engine_backup_result r;
	struct engine_manifest *m0, *m;

	run(c, NULL, &r); /* 0: initial */
	assert_int_equal(r.chunks_new, N_CHUNKS - 2);
	assert_int_equal(r.chunks_zero, 2);
	assert_int_equal(r.maps_new, 2);
	m0 = load(c, 0);
	assert_true(m0->disks[0].flags & ENGINE_DISK_HAS_MAPS);
	assert_int_equal(m0->disks[0].n_maps, 2);

	/* 1: one block of chunk 2, one byte of zero chunk 5, the partial last block, and 12 of
	 * the 16 blocks of chunk 7 (too many for a patch: stored whole) */
	c->data[2 * CS + 3 * BLK + 17] ^= 0x5a;
	c->data[5 * CS + 9 * BLK] = 1;
	c->data[IMG - 1] ^= 0xff;
	fill_random(c->data + 7 * CS, 12 * BLK, 5);
	run(c, NULL, &r);
	assert_int_equal(r.chunks_patch, 3);
	assert_int_equal(r.chunks_new, 1);
	assert_int_equal(r.chunks_known, N_CHUNKS - 2 - 3); /* not 2, 7, 39; zeros 5, 20 */
	assert_int_equal(r.chunks_zero, 1);
	/* three patches of one block each, one 64 KiB chunk, two maps: far below 4 chunks */
	assert_true(r.bytes_stored < CS + 3 * BLK + (size_t)2 * 16384);
	m = load(c, 1);
	assert_int_equal(m->disks[0].entries[2].kind, ENGINE_ENTRY_PATCH);
	assert_memory_equal(m->disks[0].entries[2].base, m0->disks[0].entries[2].id, ENGINE_ID_LEN);
	assert_int_equal(m->disks[0].entries[5].kind, ENGINE_ENTRY_ZPATCH);
	assert_int_equal(m->disks[0].entries[N_CHUNKS - 1].kind, ENGINE_ENTRY_PATCH);
	assert_int_equal(m->disks[0].entries[7].kind, ENGINE_ENTRY_DATA);
	engine_manifest_free(m);
	check_all(c);

	/* 2: another block of chunk 2 (the patch stays against the first backup's chunk and
	 * holds both blocks), chunk 5 back to zeros, nothing else */
	c->data[2 * CS + 11 * BLK] ^= 1;
	c->data[5 * CS + 9 * BLK] = 0;
	run(c, NULL, &r);
	assert_int_equal(r.chunks_patch, 1);
	assert_int_equal(r.chunks_new, 0);
	assert_int_equal(r.chunks_zero, 2);
	m = load(c, 2);
	assert_int_equal(m->disks[0].entries[2].kind, ENGINE_ENTRY_PATCH);
	assert_memory_equal(m->disks[0].entries[2].base, m0->disks[0].entries[2].id, ENGINE_ID_LEN);
	assert_int_equal(m->disks[0].entries[5].kind, ENGINE_ENTRY_ZERO);
	/* the last chunk did not change: the same patch entry as before */
	engine_manifest_free(m);
	check_all(c);

	/* 3: chunk 2 back to its first content: the first backup's chunk again, nothing stored
	 * for it; the second map group is untouched, so its map is the same object */
	memcpy(c->data + 2 * CS, c->saved[0] + 2 * CS, CS);
	run(c, NULL, &r);
	assert_int_equal(r.chunks_patch, 0);
	assert_int_equal(r.chunks_new, 0);
	m = load(c, 3);
	assert_int_equal(m->disks[0].entries[2].kind, ENGINE_ENTRY_DATA);
	assert_memory_equal(m->disks[0].entries[2].id, m0->disks[0].entries[2].id, ENGINE_ID_LEN);
	engine_manifest_free(m);
	check_all(c);
	engine_manifest_free(m0);
}

/* Change tracking and patches together: only the chunks the extents touch are read; a
 * changed block inside one becomes a patch; untouched groups keep their map object. */
static void test_patches_ct(void **state)
{
	struct ctx *c = *state;
	struct engine_backup_result r;
	struct engine_extents ext;
	struct engine_manifest *m1, *m2;

	run(c, NULL, &r);
	c->data[33 * CS + 4 * BLK] ^= 0x11;
	engine_extents_init(&ext);
	engine_extents_add(&ext, 33 * CS + 4 * BLK, BLK);
	engine_extents_normalize(&ext);
	run(c, &ext, &r);
	engine_extents_cleanup(&ext);
	assert_int_equal(r.bytes_read, CS);
	assert_int_equal(r.chunks_patch, 1);
	assert_int_equal(r.chunks_parent, N_CHUNKS - 1);
	assert_int_equal(r.maps_new, 1); /* group 0 untouched: reused */
	m1 = load(c, 0);
	m2 = load(c, 1);
	assert_memory_equal(m1->disks[0].map_ids[0], m2->disks[0].map_ids[0], ENGINE_ID_LEN);
	assert_memory_not_equal(m1->disks[0].map_ids[1], m2->disks[0].map_ids[1], ENGINE_ID_LEN);
	engine_manifest_free(m1);
	engine_manifest_free(m2);
	check_all(c);

	/* and a non-CT run afterwards sees the CT run's maps: one more block, one patch */
	c->data[33 * CS + 9 * BLK] ^= 0x22;
	run(c, NULL, &r);
	assert_int_equal(r.chunks_patch, 1);
	assert_int_equal(r.chunks_known, N_CHUNKS - 3);
	check_all(c);
}

/* A block map that cannot be read costs space, never correctness: its entries are stored
 * whole. A damaged patch object fails restore and verify by id. */
static void test_patch_damage(void **state)
{
	struct ctx *c = *state;
	struct engine_backup_result r;
	struct engine_manifest *m;
	struct engine_restore_opts ro = { .threads = 2 };
	struct engine_restore_result rr;
	struct engine_verify_report rep;
	struct err e;
	char *p, hex[2 * ENGINE_ID_LEN + 1];

	run(c, NULL, &r);
	m = load(c, 0);
	p = engine_repo_chunk_path(c->repo, m->disks[0].map_ids[0]);
	assert_int_equal(unlink(p), 0);
	free(p);
	engine_manifest_free(m);
	c->data[1 * CS + 2 * BLK] ^= 1;  /* group 0: map missing */
	c->data[35 * CS + 2 * BLK] ^= 1; /* group 1: map fine */
	run(c, NULL, &r);
	assert_int_equal(r.maps_unreadable, 1);
	assert_int_equal(r.chunks_new, 1);
	assert_int_equal(r.chunks_patch, 1);
	/* verify of the first restore point reports its missing map by id */
	assert_int_equal(engine_verify_rp(c->repo, &c->tk, c->rp[0], &ro, &rep, &e),
	                 STATUS_NOT_FOUND);
	assert_int_equal(rep.chunks_missing, 1);
	engine_verify_report_cleanup(&rep);

	/* flip a byte of the patch object: restore names it, and leaves no output */
	m = load(c, 1);
	assert_int_equal(m->disks[0].entries[35].kind, ENGINE_ENTRY_PATCH);
	engine_hex_encode(m->disks[0].entries[35].id, ENGINE_ID_LEN, hex);
	p = engine_repo_chunk_path(c->repo, m->disks[0].entries[35].id);
	size_t n = 0;
	uint8_t *obj = read_file_all(p, &n);
	obj[n - 3] ^= 0x40;
	assert_int_equal(chmod(p, 0600), 0);
	write_file(p, obj, n);
	free(obj);
	free(p);
	engine_manifest_free(m);
	assert_int_equal(
	        engine_restore_disk(c->repo, &c->tk, c->rp[1], "disk0", c->out, &ro, &rr, &e),
	        STATUS_CORRUPT);
	assert_non_null(strstr(e.msg, hex));
	assert_int_equal(access(c->out, F_OK), -1);
	assert_int_equal(engine_verify_rp(c->repo, &c->tk, c->rp[1], &ro, &rep, &e),
	                 STATUS_CORRUPT);
	engine_verify_report_cleanup(&rep);
}

/* What a backup reuses must still exist: a lost chunk is stored again by the next backup
 * (as before patches existed), a lost patch base makes the chunk be stored whole, and a
 * lost block map is not carried into a new restore point. */
static void test_lost_objects_heal(void **state)
{
	struct ctx *c = *state;
	struct engine_backup_result r;
	struct engine_manifest *m;
	struct engine_extents ext;
	char *p;

	run(c, NULL, &r);
	m = load(c, 0);
	p = engine_repo_chunk_path(c->repo, m->disks[0].entries[2].id); /* unchanged next */
	assert_int_equal(unlink(p), 0);
	free(p);
	p = engine_repo_chunk_path(c->repo, m->disks[0].entries[3].id); /* base of a patch */
	assert_int_equal(unlink(p), 0);
	free(p);
	engine_manifest_free(m);
	c->data[3 * CS + 5 * BLK] ^= 1;
	run(c, NULL, &r);
	assert_int_equal(r.chunks_new, 2); /* both stored whole again */
	assert_int_equal(r.chunks_patch, 0);
	check_all_from(c, 1);

	/* a change-tracked run that leaves map group 0 untouched must not reuse a lost map */
	m = load(c, 1);
	p = engine_repo_chunk_path(c->repo, m->disks[0].map_ids[0]);
	assert_int_equal(unlink(p), 0);
	free(p);
	engine_manifest_free(m);
	c->data[36 * CS] ^= 1;
	engine_extents_init(&ext);
	engine_extents_add(&ext, 36 * CS, 1);
	engine_extents_normalize(&ext);
	run(c, &ext, &r);
	engine_extents_cleanup(&ext);
	assert_int_equal(r.maps_new, 2);
	check_all_from(c, 2);
}

/* The same with direct I/O off (engine_repo_set_direct_io, restore no_direct_io): the
 * page-cache paths give the same bytes. */
static void test_buffered_io(void **state)
{
	struct ctx *c = *state;
	struct engine_backup_result r;

	c->buffered = true;
	engine_repo_set_direct_io(c->repo, false);
	run(c, NULL, &r);
	c->data[2 * CS + 3 * BLK] ^= 1;
	c->data[IMG - 1] ^= 1;
	run(c, NULL, &r);
	assert_int_equal(r.chunks_patch, 2);
	check_all(c);
}

/* The patch format on its own: round trip, and malformed patches refused. */
static void test_patch_format(void **state)
{
	(void)state;
	uint32_t len = 3 * BLK + 100; /* 4 blocks, the last one short */
	uint8_t base[3 * BLK + 100], img[3 * BLK + 100], set[1] = { 0x9 }; /* blocks 0, 3 */
	uint8_t *p = xmalloc(engine_patch_bound(len));
	size_t n;
	struct err e;

	fill_random(base, len, 1);
	memcpy(img, base, len);
	img[5] ^= 1;
	img[len - 1] ^= 1;
	n = engine_patch_build(img, len, set, p);
	assert_int_equal(n, 12 + 2 * 4 + BLK + 100);
	assert_int_equal(engine_patch_apply(NULL, len, p, n, &e), STATUS_OK); /* check only */
	assert_int_equal(engine_patch_apply(NULL, len + BLK, p, n, &e), STATUS_CORRUPT);
	assert_int_equal(engine_patch_apply(base, len, p, n, &e), STATUS_OK);
	assert_memory_equal(base, img, len);
	assert_int_equal(engine_patch_apply(base, len - 1, p, n, &e), STATUS_CORRUPT);
	assert_int_equal(engine_patch_apply(base, len, p, n - 1, &e), STATUS_CORRUPT);
	p[16] = 0; /* second index 3 -> 0: not increasing */
	assert_int_equal(engine_patch_apply(base, len, p, n, &e), STATUS_CORRUPT);
	p[8] = 0xff; /* block count */
	assert_int_equal(engine_patch_apply(base, len, p, n, &e), STATUS_CORRUPT);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_patches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patches_ct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patch_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_objects_heal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffered_io, setup, teardown),
		cmocka_unit_test(test_patch_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
