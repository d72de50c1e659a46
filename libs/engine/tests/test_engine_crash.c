/* test_engine_crash.c - SIGKILL during a backup leaves no visible restore point; the retry
 * with the same restore point id succeeds and reuses the chunks already stored. */
#define _GNU_SOURCE /* nftw, mkostemp in the test helpers */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <sys/wait.h>

#include "engine/patch.h"

#include "engine_test_util.h"

#include <cmocka.h>

#define CS ((size_t)64 << 10)

static int g_files, g_published;

/* Every file, and the published objects among them (64 hex digits; temp files are .tmp-*). */
static int count_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	if (flag != FTW_F)
		return 0;
	g_files++;
	if (strlen(p + f->base) == 64 && strspn(p + f->base, "0123456789abcdef") == 64)
		g_published++;
	return 0;
}

static int count_files(const char *dir)
{
	g_files = 0;
	g_published = 0;
	nftw(dir, count_cb, 16, FTW_PHYS);
	return g_files;
}

static void test_sigkill_mid_backup(void **state)
{
	struct tenv *t = tenv_new();
	struct engine_tenant_keys tk;
	struct engine_repo *r = tenv_repo(t, "tenant-a", &tk);
	size_t n = 96u << 20;
	uint8_t *img = xmalloc(n);
	char *path = xasprintf("%s/img", t->dir);
	char *chunks = xasprintf("%s/tenant-a/chunks", t->repo_dir);
	struct engine_disk_source d = { .name = "disk0", .path = path };
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2, .rp_id = "task-7" };
	struct engine_backup_result res;
	char **ids;
	size_t nids;
	struct err e;
	pid_t pid;
	int status, seen = 0, published;

	(void)state;
	fill_random(img, n, 77);
	write_file(path, img, n);
	free(img);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		enum status st = engine_backup_run(r, &tk, &d, 1, &o, &res, &e);

		_exit(st == STATUS_OK ? 0 : 1);
	}
	/* kill as soon as some chunks are published (durable, linked into place: the retry must
	 * find them) but long before the end */
	for (int i = 0; i < 20000; i++) {
		struct timespec ts = { 0, 1000L * 1000 };

		count_files(chunks);
		seen = g_published;
		if (seen >= 8)
			break;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status)); /* it was still running */
	assert_true(seen >= 8);
	count_files(chunks);
	published = g_published; /* durable objects the killed run left: chunks and block maps */

	/* no restore point is visible */
	assert_int_equal(engine_repo_manifest_list(r, &ids, &nids, &e), STATUS_OK);
	assert_int_equal(nids, 0);
	engine_repo_ids_free(ids, nids);

	/* the retry (same task, same rp id) completes and restores byte-exact */
	assert_int_equal(engine_backup_run(r, &tk, &d, 1, &o, &res, &e), STATUS_OK);
	/* random data: every chunk is new or was stored by the killed run; each published object
	 * is a chunk (found again) or one of the block maps (one per 32 chunks) */
	assert_int_equal(res.chunks_new + res.chunks_known, res.chunks_total);
	assert_true(published >= 8);
	assert_true(res.chunks_known > 0);
	assert_true(res.chunks_known + (res.chunks_total + ENGINE_MAP_GROUP_DEFAULT - 1) /
	                                       ENGINE_MAP_GROUP_DEFAULT >=
	            (uint64_t)published);
	assert_true(res.chunks_known <= (uint64_t)published);
	struct engine_restore_opts ro = { 0 };
	struct engine_restore_result rr;
	char *out = xasprintf("%s/out", t->dir);
	assert_int_equal(engine_restore_disk(r, &tk, "task-7", "disk0", out, &ro, &rr, &e),
	                 STATUS_OK);
	assert_true(files_equal(path, out));
	/* a second delivery of the same task does not make a second restore point */
	assert_int_equal(engine_backup_run(r, &tk, &d, 1, &o, &res, &e), STATUS_CONFLICT);
	assert_int_equal(engine_repo_manifest_list(r, &ids, &nids, &e), STATUS_OK);
	assert_int_equal(nids, 1);
	engine_repo_ids_free(ids, nids);
	free(out);
	free(path);
	free(chunks);
	engine_repo_free(r);
	tenv_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigkill_mid_backup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
