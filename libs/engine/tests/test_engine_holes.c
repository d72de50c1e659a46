/* test_engine_holes.c - backups of sparse source files whose holes are skipped without a read
 * (SEEK_DATA/SEEK_HOLE): random layouts against an independent probe of the file, multi-disk
 * runs where one disk is sparse, change-tracked incrementals, FastCDC, cancellation, a failing
 * repository, and sources that shrink or get written while the backup runs. */
#define _GNU_SOURCE /* nftw, mkostemp, fallocate, SEEK_DATA */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <sys/stat.h>

#include <openssl/evp.h>

#include "engine/extents.h"
#include "engine/manifest.h"

#include "engine_test_util.h"

#include <cmocka.h>

#define CS ((size_t)64 << 10)

struct ctx {
	struct tenv *t;
	struct engine_repo *repo;
	struct engine_tenant_keys tk;
	char *img, *img2, *out;
};

static int setup(void **state)
{
	struct ctx *c = xcalloc(1, sizeof(*c));

	c->t = tenv_new();
	c->repo = tenv_repo(c->t, "tenant-a", &c->tk);
	c->img = xasprintf("%s/disk.img", c->t->dir);
	c->img2 = xasprintf("%s/disk2.img", c->t->dir);
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
	free(c->img2);
	free(c->out);
	free(c);
	return 0;
}

static bool is_sparse(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return (uint64_t)sb.st_blocks * 512 < (uint64_t)sb.st_size;
}

/* Bytes a backup with chunk size cs must read: every chunk that touches a data extent as the
 * file system reports them (probed independently of the engine, from the file's start). */
static uint64_t expect_read(const char *path, size_t cs)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	uint64_t n, total = 0;
	uint8_t *touched;
	off_t pos = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	n = ((uint64_t)sb.st_size + cs - 1) / cs;
	touched = xcalloc(n ? n : 1, 1);
	for (;;) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;

		if (d < 0)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		assert_true(h > d);
		for (uint64_t i = (uint64_t)d / cs; i < n && i * cs < (uint64_t)h; i++)
			touched[i] = 1;
		pos = h;
	}
	for (uint64_t i = 0; i < n; i++)
		if (touched[i])
			total += (uint64_t)sb.st_size - i * cs < cs ? (uint64_t)sb.st_size - i * cs
			                                            : cs;
	free(touched);
	close(fd);
	return total;
}

static enum status backup_disks(struct ctx *c, const struct engine_disk_source *d, size_t n,
                                const struct engine_backup_opts *o,
                                struct engine_backup_result *res, struct err *e)
{
	enum status st = engine_backup_run(c->repo, &c->tk, d, n, o, res, e);

	if (st != STATUS_OK)
		fprintf(stderr, "backup: %s\n", e->msg);
	return st;
}

/* Restore disk `name` of rp and check it equals want (n bytes); verify the restore point. */
static void restore_check(struct ctx *c, const char *rp, const char *name, const uint8_t *want,
                          size_t n, bool expect_sha)
{
	struct engine_restore_opts ro = { .threads = 2 };
	struct engine_restore_result rr;
	struct engine_verify_report rep;
	struct err e;
	size_t got_n = 0;
	uint8_t *got;
	enum status st = engine_restore_disk(c->repo, &c->tk, rp, name, c->out, &ro, &rr, &e);

	if (st != STATUS_OK)
		fprintf(stderr, "restore: %s\n", e.msg);
	assert_int_equal(st, STATUS_OK);
	assert_int_equal(rr.sha256_checked, expect_sha);
	got = read_file_all(c->out, &got_n);
	assert_int_equal(got_n, n);
	assert_memory_equal(got, want, n);
	free(got);
	unlink(c->out);
	assert_int_equal(engine_verify_rp(c->repo, &c->tk, rp, &ro, &rep, &e), STATUS_OK);
	assert_int_equal(rep.n_problems, 0);
	engine_verify_report_cleanup(&rep);
}

/* The manifest's SHA-256 of disk i is the plain SHA-256 of want, or absent. */
static void check_sha(struct ctx *c, const char *rp, size_t i, const uint8_t *want, size_t n,
                      bool present)
{
	assert_int_equal(manifest_sha_state(c->repo, &c->tk, rp, i, want, n), present ? 1 : 0);
}

/* A random layout: runs of data and holes of random lengths, not aligned to the chunk
 * size nor (sometimes) to the 4 KiB block, image size not a multiple of the chunk size. */
static uint8_t *random_layout(size_t n, uint64_t seed)
{
	uint8_t *img = xcalloc(1, n);
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 7;
	size_t off = 0;

	while (off < n) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		size_t hole = (size_t)(s % (5 * CS));
		size_t data = (size_t)((s >> 20) % (CS + CS / 2)) + 1;

		if ((s >> 40) & 1)
			hole &= ~(size_t)4095;
		off += hole;
		if (off >= n)
			break;
		if (data > n - off)
			data = n - off;
		fill_random(img + off, data, s);
		off += data;
	}
	return img;
}

/* Random layouts with several chunk sizes and thread counts: bytes restored, image SHA-256,
 * bytes_read (exactly the chunks touching data) and zero counts. */
static void test_random_layouts(void **state)
{
	struct ctx *c = *state;

	for (uint64_t seed = 1; seed <= 12; seed++) {
		size_t n = ((size_t)(seed % 4) + 2) * ((size_t)1 << 20) + (size_t)seed * 4099;
		size_t cs = (seed % 3 == 0) ? 4096 : (seed % 3 == 1) ? CS : 3 * CS;
		uint8_t *img = random_layout(n, seed);
		struct engine_backup_opts o = { .chunk_size = (uint32_t)cs,
			                        .threads = (unsigned)(seed % 3) + 1 };
		struct engine_disk_source d = { .name = "disk0", .path = c->img };
		struct engine_backup_result r;
		struct err e;

		write_holey(c->img, img, n);
		if (!is_sparse(c->img)) {
			free(img);
			skip();
			return;
		}
		assert_int_equal(backup_disks(c, &d, 1, &o, &r, &e), STATUS_OK);
		assert_int_equal(r.bytes_total, n);
		assert_int_equal(r.chunks_total, (n + cs - 1) / cs);
		assert_int_equal(r.bytes_read, expect_read(c->img, cs));
		assert_true(r.bytes_read < n);
		check_sha(c, r.rp_id, 0, img, n, true);
		restore_check(c, r.rp_id, "disk0", img, n, true);
		free(img);
	}
}

/* A file that is all hole (no block allocated), sizes around the chunk size. */
static void test_all_hole(void **state)
{
	struct ctx *c = *state;
	const size_t sizes[] = { 1, 4095, CS - 1, CS, CS + 1, 10 * CS + 12345 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		uint8_t *img = xcalloc(1, n);
		struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
		struct engine_disk_source d = { .name = "disk0", .path = c->img };
		struct engine_backup_result r;
		struct err e;

		write_holey(c->img, img, n);
		assert_int_equal(backup_disks(c, &d, 1, &o, &r, &e), STATUS_OK);
		assert_int_equal(r.bytes_read, 0);
		assert_int_equal(r.chunks_zero, r.chunks_total);
		assert_int_equal(r.chunks_new, 0); /* only the block map may be new */
		check_sha(c, r.rp_id, 0, img, n, true);
		restore_check(c, r.rp_id, "disk0", img, n, true);
		free(img);
	}
}

/* Two disks, one dense and one sparse, in both orders, with and without the image SHA-256:
 * each disk's SHA-256 covers exactly its own bytes (the hasher's zero buffer is not
 * attributed to the wrong disk) and both restore. */
static void test_multi_disk(void **state)
{
	struct ctx *c = *state;
	size_t n1 = ((size_t)1 << 20) + 777, n2 = ((size_t)3 << 20) + (size_t)4096 * 3 + 5;
	uint8_t *dense = xmalloc(n1), *thin = random_layout(n2, 99);

	fill_random(dense, n1, 42);
	write_file(c->img, dense, n1);
	write_holey(c->img2, thin, n2);
	if (!is_sparse(c->img2)) {
		free(dense);
		free(thin);
		skip();
		return;
	}
	for (int order = 0; order < 2; order++) {
		for (int nosha = 0; nosha < 2; nosha++) {
			struct engine_disk_source a = { .name = "dense", .path = c->img };
			struct engine_disk_source b = { .name = "thin", .path = c->img2 };
			struct engine_disk_source d[2];
			struct engine_backup_opts o = { .chunk_size = CS,
				                        .threads = 3,
				                        .no_image_sha256 = nosha };
			struct engine_backup_result r;
			struct err e;

			d[0] = order ? b : a;
			d[1] = order ? a : b;
			assert_int_equal(backup_disks(c, d, 2, &o, &r, &e), STATUS_OK);
			assert_int_equal(r.bytes_read, n1 + expect_read(c->img2, CS));
			check_sha(c, r.rp_id, order ? 1 : 0, dense, n1, !nosha);
			check_sha(c, r.rp_id, order ? 0 : 1, thin, n2, !nosha);
			restore_check(c, r.rp_id, "dense", dense, n1, !nosha);
			restore_check(c, r.rp_id, "thin", thin, n2, !nosha);
		}
	}
	free(dense);
	free(thin);
}

/* A change-tracked incremental of a sparse file: changed extents that cover holes (one newly
 * punched, one never written), data that was filled in, and extents that change nothing. */
static void test_ct_incremental(void **state)
{
	struct ctx *c = *state;
	size_t n = 40 * CS + 1000;
	uint8_t *img = random_layout(n, 5);
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	struct engine_backup_result r1, r2, r3;
	struct engine_extents ch;
	char rp1[ENGINE_RP_ID_MAX];
	struct err e;
	int fd;

	write_holey(c->img, img, n);
	if (!is_sparse(c->img)) {
		free(img);
		skip();
		return;
	}
	assert_int_equal(backup_disks(c, &d, 1, &o, &r1, &e), STATUS_OK);
	snprintf(rp1, sizeof(rp1), "%s", r1.rp_id);

	/* punch chunk 3 out, fill chunk 30, write a few bytes into the last short chunk */
	fd = open(c->img, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(3 * CS),
	                           (off_t)CS),
	                 0);
	memset(img + 3 * CS, 0, CS);
	fill_random(img + 30 * CS, CS, 77);
	assert_int_equal(pwrite(fd, img + 30 * CS, CS, (off_t)(30 * CS)), (ssize_t)CS);
	fill_random(img + n - 10, 10, 78);
	assert_int_equal(pwrite(fd, img + n - 10, 10, (off_t)(n - 10)), 10);
	assert_int_equal(fsync(fd), 0);
	close(fd);

	engine_extents_init(&ch);
	engine_extents_add(&ch, 3 * CS, CS);
	engine_extents_add(&ch, 30 * CS + 5, 100);
	engine_extents_add(&ch, 12 * CS, 4 * CS); /* maybe holes, unchanged */
	engine_extents_add(&ch, n - 10, 10);
	engine_extents_normalize(&ch);
	d.changed = &ch;
	o.parent_rp = rp1;
	assert_int_equal(backup_disks(c, &d, 1, &o, &r2, &e), STATUS_OK);
	assert_true(r2.chunks_parent > 0);
	restore_check(c, r2.rp_id, "disk0", img, n, false);

	/* and a plain incremental on top (no change list: everything re-examined, SHA back) */
	d.changed = NULL;
	o.parent_rp = r2.rp_id;
	assert_int_equal(backup_disks(c, &d, 1, &o, &r3, &e), STATUS_OK);
	assert_int_equal(r3.bytes_read, expect_read(c->img, CS));
	check_sha(c, r3.rp_id, 0, img, n, true);
	restore_check(c, r3.rp_id, "disk0", img, n, true);
	engine_extents_cleanup(&ch);
	free(img);
}

/* FastCDC streams never probe holes: everything is read, bytes round-trip. */
static void test_cdc_sparse(void **state)
{
	struct ctx *c = *state;
	size_t n = ((size_t)6 << 20) + 333;
	uint8_t *img = random_layout(n, 11);
	struct engine_backup_opts o = { .cdc = true, .threads = 2 };
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	struct engine_backup_result r;
	struct err e;

	write_holey(c->img, img, n);
	assert_int_equal(backup_disks(c, &d, 1, &o, &r, &e), STATUS_OK);
	assert_int_equal(r.bytes_read, n);
	check_sha(c, r.rp_id, 0, img, n, true);
	restore_check(c, r.rp_id, "disk0", img, n, true);
	free(img);
}

/* ---- runs that are interfered with at an exact point (the reader hook) ---- */

/* BIG bytes of which only chunk 0 has data: a long hole (make_big). */
#define BIG ((uint64_t)256 << 20)

struct meddle {
	const char *path;
	int what;    /* 0 cancel, 1 truncate to CS, 2 write data near the end */
	uint64_t at; /* the chunk the reader is about to handle when it happens */
	atomic_bool cancel;
	bool done;
	uint8_t tail[4096];
};

static void meddle_hook(size_t disk, uint64_t chunk, void *ud)
{
	struct meddle *m = ud;

	(void)disk;
	if (m->done || chunk != m->at)
		return;
	m->done = true;
	if (m->what == 0) {
		atomic_store(&m->cancel, true);
	} else if (m->what == 1) {
		assert_int_equal(truncate(m->path, (off_t)CS), 0);
	} else {
		int fd = open(m->path, O_WRONLY | O_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, m->tail, sizeof(m->tail), (off_t)(BIG - 8192)),
		                 (ssize_t)sizeof(m->tail));
		close(fd);
	}
}

/* size bytes, data in chunk 0 only. */
static void make_big(const char *path, uint64_t size)
{
	uint8_t blk[4096];
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	fill_random(blk, sizeof(blk), 3);
	assert_int_equal(pwrite(fd, blk, sizeof(blk), 0), (ssize_t)sizeof(blk));
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

/* Cancel while the reader walks through a long hole: nothing committed, nothing leaked (the
 * hasher's zero items and the reader's in-flight items are all released; ASan checks). */
static void test_cancel_in_hole(void **state)
{
	struct ctx *c = *state;
	struct meddle m = { .path = c->img, .what = 0, .at = BIG / CS / 2 };
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	struct engine_backup_result r;
	struct err e;

	make_big(c->img, BIG);
	o.reader_hook = meddle_hook;
	o.reader_hook_ud = &m;
	o.cancel = &m.cancel;
	assert_int_equal(engine_backup_run(c->repo, &c->tk, &d, 1, &o, &r, &e), STATUS_UNAVAILABLE);
	assert_true(r.cancelled);
	assert_true(m.done);
}

/* The repository fails (its chunk directory is a file) while holes and data chunks are in
 * flight: the run fails cleanly, no double release of the zero buffer, nothing leaked. */
static void test_repo_failure(void **state)
{
	struct ctx *c = *state;
	size_t n = 64 * CS + 5;
	uint8_t *img = random_layout(n, 17);
	uint8_t id[ENGINE_ID_LEN] = { 0xab, 0xcd };
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 3 };
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	struct engine_backup_result r;
	struct err e;
	char *p = engine_repo_chunk_path(c->repo, id), *s;

	/* .../chunks/ab/abcd... -> .../chunks */
	s = strrchr(p, '/');
	*s = '\0';
	s = strrchr(p, '/');
	*s = '\0';
	tenv_rmrf(p);
	write_file(p, "x", 1);
	write_holey(c->img, img, n);
	assert_int_not_equal(engine_backup_run(c->repo, &c->tk, &d, 1, &o, &r, &e), STATUS_OK);
	assert_false(r.cancelled);
	unlink(p);
	free(p);
	free(img);
}

/* The source shrinks while the backup runs, before the reader gets past the new end. Before
 * hole skipping the reader's short read failed the run ("image shrank?"); a hole probe past
 * the new end of file (ENXIO) must not turn the vanished tail into zero entries. */
static void test_shrink_during_backup(void **state)
{
	struct ctx *c = *state;
	struct meddle m = { .path = c->img, .what = 1, .at = BIG / CS / 2 };
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	struct engine_backup_result r;
	struct err e;
	enum status st;

	make_big(c->img, BIG);
	o.reader_hook = meddle_hook;
	o.reader_hook_ud = &m;
	st = engine_backup_run(c->repo, &c->tk, &d, 1, &o, &r, &e);
	assert_true(m.done);
	if (st == STATUS_OK)
		fprintf(stderr,
		        "shrunk to %zu bytes during the backup, yet committed %s as %llu "
		        "bytes\n",
		        CS, r.rp_id, (unsigned long long)r.bytes_total);
	assert_int_equal(st, STATUS_IO);
}

/* Data written into a hole while the backup runs, before the reader reaches that offset:
 * a reader that reads captures it; the hole probe must not be so stale that it does not. */
static void test_written_ahead_of_reader(void **state)
{
	struct ctx *c = *state;
	struct meddle m = { .path = c->img, .what = 2, .at = BIG / CS / 2 };
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	struct engine_backup_result r;
	struct engine_restore_opts ro = { .threads = 2 };
	struct engine_restore_result rr;
	uint8_t got[4096];
	struct err e;
	int fd;

	make_big(c->img, BIG);
	fill_random(m.tail, sizeof(m.tail), 9);
	o.reader_hook = meddle_hook;
	o.reader_hook_ud = &m;
	o.no_image_sha256 = false;
	assert_int_equal(backup_disks(c, &d, 1, &o, &r, &e), STATUS_OK);
	assert_true(m.done);
	assert_int_equal(
	        engine_restore_disk(c->repo, &c->tk, r.rp_id, "disk0", c->out, &ro, &rr, &e),
	        STATUS_OK);
	fd = open(c->out, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, sizeof(got), (off_t)(BIG - 8192)), (ssize_t)sizeof(got));
	close(fd);
	unlink(c->out);
	assert_memory_equal(got, m.tail, sizeof(got));
}

struct progress_log {
	unsigned calls;
	uint64_t first_done, last_done;
	bool monotonic;
};

static void log_progress(const struct engine_progress *p, void *ud)
{
	struct progress_log *l = ud;

	if (l->calls++ == 0)
		l->first_done = p->bytes_done;
	else if (p->bytes_done < l->last_done)
		l->monotonic = false;
	l->last_done = p->bytes_done;
}

/* The reader is through a long hole at once, the hasher is not: progress keeps coming while
 * it hashes the zeros, and counts a byte done only once the hasher is through it (the
 * first report cannot say 100%). 4 GiB of hole: ~2.4 s of hashing. */
static void test_progress_in_long_hole(void **state)
{
	struct ctx *c = *state;
	const uint64_t size = (uint64_t)4 << 30;
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_disk_source d = { .name = "disk0", .path = c->img };
	struct progress_log l = { .monotonic = true };
	struct engine_backup_result r;
	struct err e;

	make_big(c->img, size);
	o.progress = log_progress;
	o.progress_ud = &l;
	assert_int_equal(backup_disks(c, &d, 1, &o, &r, &e), STATUS_OK);
	if (r.seconds < 1.5) {
		skip(); /* hashed too fast for a report in between */
		return;
	}
	assert_true(l.calls >= 2); /* at least one during the run and the final one */
	assert_true(l.first_done < size);
	assert_true(l.monotonic);
	assert_int_equal(l.last_done, size);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_random_layouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ct_incremental, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cdc_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_in_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repo_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shrink_during_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_written_ahead_of_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_progress_in_long_hole, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
