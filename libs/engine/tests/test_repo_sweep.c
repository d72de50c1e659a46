/* Unit test: temporary files left by a killed writer are swept; nothing else is. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "engine/repo.h"

#include <cmocka.h>

static void touch(const char *path, time_t age)
{
	struct timespec t[2];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	t[0].tv_sec = t[1].tv_sec = time(NULL) - age;
	t[0].tv_nsec = t[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void test_sweep(void **state)
{
	char root[] = "/tmp/cairn-sweep-XXXXXX";
	char p[512];
	struct engine_repo *r;
	struct err e;
	size_t removed = 99;
	struct stat sb;
	const char *pub = "00aa0000000000000000000000000000000000000000000000000000000000ff";

	assert_non_null(mkdtemp(root));
	r = engine_repo_open(root, "tenant1", true, &e);
	assert_non_null(r);
	snprintf(p, sizeof(p), "%s/tenant1/chunks/00", root);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/tenant1/chunks/00/.tmp-old", root);
	touch(p, 7200);
	snprintf(p, sizeof(p), "%s/tenant1/chunks/00/.tmp-new", root);
	touch(p, 10);
	snprintf(p, sizeof(p), "%s/tenant1/chunks/00/%s", root, pub);
	touch(p, 7200);
	snprintf(p, sizeof(p), "%s/tenant1/manifests/.tmp-manifest", root);
	touch(p, 7200);

	assert_int_equal(engine_repo_sweep_temps(r, 3600, &removed, &e), STATUS_OK);
	assert_int_equal(removed, 2);
	snprintf(p, sizeof(p), "%s/tenant1/chunks/00/.tmp-old", root);
	assert_int_not_equal(stat(p, &sb), 0);
	snprintf(p, sizeof(p), "%s/tenant1/manifests/.tmp-manifest", root);
	assert_int_not_equal(stat(p, &sb), 0);
	snprintf(p, sizeof(p), "%s/tenant1/chunks/00/.tmp-new", root);
	assert_int_equal(stat(p, &sb), 0); /* a live writer's file stays */
	snprintf(p, sizeof(p), "%s/tenant1/chunks/00/%s", root, pub);
	assert_int_equal(stat(p, &sb), 0); /* published chunks are never touched */
	engine_repo_free(r);
	snprintf(p, sizeof(p), "rm -rf '%s'", root);
	assert_int_equal(system(p), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sweep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
