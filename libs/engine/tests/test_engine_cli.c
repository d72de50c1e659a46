/* test_engine_cli.c - cairn-engine end to end through engine_cli_main: backup, incremental
 * with a changed-extents file, list, restore, verify, usage errors and exit codes. */
#define _GNU_SOURCE /* nftw, mkostemp in the test helpers */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/cli.h"

#include "engine_test_util.h"

#include <cmocka.h>

static int run(char *out, size_t cap, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	FILE *o = fmemopen(out, cap, "w");
	FILE *errs = fopen("/dev/null", "w");
	int rc;

	for (; args[argc] != NULL; argc++)
		argv[argc] = xstrdup(args[argc]);
	argv[argc] = NULL;
	rc = engine_cli_main(argc, argv, o, errs, NULL);
	fclose(o);
	fclose(errs);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return rc;
}

static void test_cli(void **state)
{
	struct tenv *t = tenv_new();
	char *mk = xasprintf("%s/master.key", t->dir);
	char *img = xasprintf("%s/d.img", t->dir);
	char *ext = xasprintf("%s/changed.txt", t->dir);
	char *outimg = xasprintf("%s/out.img", t->dir);
	char *keys = xasprintf("%s/k2", t->dir);
	char *bad_keys = xasprintf("%s/keys", t->repo_dir);
	char *disk = xasprintf("root=%s", img);
	size_t n = (3u << 20) + 100;
	uint8_t *b = xcalloc(1, n);
	char out[8192];

	(void)state;
	write_file(mk, t->mk.k, 32);
	setenv(ENGINE_MASTER_KEY_ENV, mk, 1);
	fill_random(b, 1u << 20, 1);
	write_file(img, b, n);

	const char *backup1[] = { "cairn-engine", "backup",   "--repo",  t->repo_dir, "--keys",
		                  keys,           "--tenant", "acme",    "--disk",    disk,
		                  "--chunk-size", "256K",     "--rp-id", "rp1",       NULL };
	assert_int_equal(run(out, sizeof(out), backup1), ENGINE_EXIT_OK);
	assert_non_null(strstr(out, "\"rp_id\":\"rp1\""));
	assert_non_null(strstr(out, "\"chunks_new\":4"));

	b[2u << 20] = 1;
	write_file(img, b, n);
	write_file(ext, "# one block\n2097152 4096\n", 25);
	const char *backup2[] = { "cairn-engine",
		                  "backup",
		                  "--repo",
		                  t->repo_dir,
		                  "--keys",
		                  keys,
		                  "--tenant",
		                  "acme",
		                  "--disk",
		                  disk,
		                  "--chunk-size",
		                  "256K",
		                  "--parent",
		                  "latest",
		                  "--changed-extents",
		                  ext,
		                  "--rp-id",
		                  "rp2",
		                  NULL };
	assert_int_equal(run(out, sizeof(out), backup2), ENGINE_EXIT_OK);
	assert_non_null(strstr(out, "\"bytes_read\":262144"));
	assert_non_null(strstr(out, "\"parent\":\"rp1\""));

	const char *list[] = { "cairn-engine", "list",     "--repo", t->repo_dir, "--keys",
		               keys,           "--tenant", "acme",   NULL };
	assert_int_equal(run(out, sizeof(out), list), ENGINE_EXIT_OK);
	assert_non_null(strstr(out, "\"id\":\"rp1\""));
	assert_non_null(strstr(out, "\"id\":\"rp2\""));

	const char *restore[] = { "cairn-engine", "restore",  "--repo", t->repo_dir, "--keys",
		                  keys,           "--tenant", "acme",   "--rp",      "rp2",
		                  "--disk",       "root",     "--out",  outimg,      NULL };
	assert_int_equal(run(out, sizeof(out), restore), ENGINE_EXIT_OK);
	assert_true(files_equal(img, outimg));

	const char *verify[] = { "cairn-engine", "verify", "--repo", t->repo_dir, "--keys", keys,
		                 "--tenant",     "acme",   "--rp",   "rp2",       NULL };
	assert_int_equal(run(out, sizeof(out), verify), ENGINE_EXIT_OK);
	assert_non_null(strstr(out, "\"ok\":true"));

	const char *missing[] = { "cairn-engine", "verify", "--repo", t->repo_dir, "--keys", keys,
		                  "--tenant",     "acme",   "--rp",   "nope",      NULL };
	assert_int_equal(run(out, sizeof(out), missing), ENGINE_EXIT_NOT_FOUND);
	assert_non_null(strstr(out, "\"error\""));

	const char *inside[] = { "cairn-engine", "list",     "--repo", t->repo_dir, "--keys",
		                 bad_keys,       "--tenant", "acme",   NULL };
	assert_int_equal(run(out, sizeof(out), inside), ENGINE_EXIT_FAIL);
	assert_non_null(strstr(out, "forbidden"));

	const char *nocmd[] = { "cairn-engine", NULL };
	assert_int_equal(run(out, sizeof(out), nocmd), ENGINE_EXIT_USAGE);
	const char *badopt[] = { "cairn-engine", "backup", "--repo", t->repo_dir, "--bogus", NULL };
	assert_int_equal(run(out, sizeof(out), badopt), ENGINE_EXIT_USAGE);
	const char *nodisk[] = { "cairn-engine", "backup",   "--repo", t->repo_dir, "--keys",
		                 keys,           "--tenant", "acme",   NULL };
	assert_int_equal(run(out, sizeof(out), nodisk), ENGINE_EXIT_USAGE);
	const char *badtenant[] = { "cairn-engine", "list",     "--repo", t->repo_dir, "--keys",
		                    keys,           "--tenant", "../etc", NULL };
	assert_int_equal(run(out, sizeof(out), badtenant), ENGINE_EXIT_USAGE);

	unsetenv(ENGINE_MASTER_KEY_ENV);
	assert_int_equal(run(out, sizeof(out), list), ENGINE_EXIT_USAGE); /* no master key */
	free(b);
	free(mk);
	free(img);
	free(ext);
	free(outimg);
	free(keys);
	free(bad_keys);
	free(disk);
	tenv_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
