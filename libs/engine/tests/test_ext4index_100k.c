/* test_ext4index_100k.c - the guest file index of an ext4 image holding 100,000 files
 * (mke2fs -d from a generated tree) matches debugfs's listing; reports files indexed per
 * second. Its own binary because building the image takes several seconds. */
#include <errno.h>
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
#include <sys/statvfs.h>

#include "common/xalloc.h"
#include "engine/ext4index.h"

#include <cmocka.h>

/* Like assert_true, but also visible to the static analyser as a dead end. */
#define REQUIRE(x)                                                                                 \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fail_msg("required: %s", #x);                                              \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define N_DIRS 100
#define N_FILES 1000 /* per directory */

/* ---- helpers (the same debugfs walk as test_ext4index.c) -------------------------------- */

struct strs {
	char **v;
	size_t n, cap;
};

static void strs_add(struct strs *s, char *owned)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = owned;
}

static void strs_free(struct strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run(const char *cmd)
{
	int rc = system(cmd);
	if (rc != 0)
		fail_msg("command failed (%d): %s", rc, cmd);
}

/* Every entry of the file system at byte offset off of image, from debugfs: a level-by-level
 * walk with `ls -p` ("/ino/mode/uid/gid/name/size/"), one debugfs run per depth. Records
 * "path\tino\tmode\tsize" (size empty for directories, as debugfs prints it). */
static void debugfs_listing(const char *image, uint64_t off, const char *tmp, struct strs *out)
{
	struct strs level = { 0 }, next = { 0 };
	char *cmdfile = xasprintf("%s/debugfs.cmd", tmp);
	char *outfile = xasprintf("%s/debugfs.out", tmp);

	strs_add(&level, xstrdup(""));
	while (level.n > 0) {
		FILE *f = fopen(cmdfile, "w");
		char line[8192], *cur = NULL;
		char *cmd;

		REQUIRE(f != NULL);
		for (size_t i = 0; i < level.n; i++)
			fprintf(f, "ls -p \"%s/\"\n", level.v[i]);
		fclose(f);
		cmd = xasprintf("debugfs -f '%s' '%s?offset=%llu' >'%s' 2>/dev/null", cmdfile,
		                image, (unsigned long long)off, outfile);
		run(cmd);
		free(cmd);
		f = fopen(outfile, "r");
		REQUIRE(f != NULL);
		while (fgets(line, sizeof(line), f)) {
			char *fld[7];
			int n = 0;

			line[strcspn(line, "\n")] = '\0';
			if (strncmp(line, "debugfs: ls -p \"", 16) == 0) {
				free(cur);
				cur = xstrdup(line + 16);
				cur[strlen(cur) - 2] = '\0'; /* drop the trailing /" */
				continue;
			}
			if (line[0] != '/' || cur == NULL)
				continue;
			/* /ino/mode/uid/gid/name/size/ — names in the test have no '/' */
			for (char *p = line + 1; n < 7 && p;) {
				fld[n++] = p;
				p = strchr(p, '/');
				if (p)
					*p++ = '\0';
			}
			REQUIRE(n >= 6);
			/* Skip ".", ".." and the empty slots debugfs shows (inode 0). */
			if (strcmp(fld[4], ".") == 0 || strcmp(fld[4], "..") == 0 ||
			    strcmp(fld[0], "0") == 0)
				continue;
			char *path = xasprintf("%s/%s", cur, fld[4]);
			strs_add(out, xasprintf("%s\t%s\t%s\t%s", path, fld[0], fld[1], fld[5]));
			if (fld[1][0] == '0' && fld[1][1] == '4')
				strs_add(&next, path);
			else
				free(path);
		}
		free(cur);
		fclose(f);
		strs_free(&level);
		level = next;
		memset(&next, 0, sizeof(next));
	}
	free(cmdfile);
	free(outfile);
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
}

static enum status collect_row(void *arg, const struct ext4index_row *r, struct err *e)
{
	struct strs *rows = arg;
	char size[32] = "";

	if (r->type != EXT4INDEX_DIR)
		snprintf(size, sizeof(size), "%llu", (unsigned long long)r->size);
	strs_add(rows, xasprintf("%s\t%u\t%06o\t%s", r->path, r->ino, r->mode, size));
	return STATUS_OK;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_100k_files_match_debugfs(void **state)
{
	/* The tree and the image live on tmpfs when there is one: creating 100,000 files on a
	 * journalled disk file system that other jobs keep busy took 75 s instead of 7. */
	const char *env_tmp = getenv("TMPDIR");
	const char *tmpdir = env_tmp && *env_tmp ? env_tmp : "/tmp";
	struct statvfs vfs;
	if (getenv("CAIRN_TEST_NO_SHM") == NULL && statvfs("/dev/shm", &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize > (512ull << 20) && vfs.f_favail > 200000 &&
	    access("/dev/shm", W_OK) == 0)
		tmpdir = "/dev/shm";
	char tmp[256], *src, *img, *cmd;
	struct strs rows = { 0 }, want = { 0 };
	struct ext4index_source s;
	struct ext4index_stats stats;
	struct err e;
	char buf[300];
	double t0, t_tree, t_mkfs, t_debugfs;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/cairn-test-idx100k-XXXXXX", tmpdir);
	assert_non_null(mkdtemp(tmp));
	src = xasprintf("%s/src", tmp);
	img = xasprintf("%s/100k.img", tmp);
	assert_int_equal(mkdir(src, 0755), 0);
	memset(buf, 'x', sizeof(buf));

	/* 100 directories of 1,000 files; every tenth file holds a few bytes, the rest are
	 * empty; one deeper branch for depth. 100,000 files + 100 dirs + 3 deep entries. */
	t0 = mono();
	for (int d = 0; d < N_DIRS; d++) {
		char *dir = xasprintf("%s/d%03d", src, d);
		assert_int_equal(mkdir(dir, 0755), 0);
		for (int i = 0; i < N_FILES; i++) {
			char *p = xasprintf("%s/f%04d", dir, i);
			int ffd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
			assert_true(ffd >= 0);
			if (i % 10 == 0)
				assert_int_equal(write(ffd, buf, (size_t)(i % 300)), i % 300);
			close(ffd);
			free(p);
		}
		free(dir);
	}
	cmd = xasprintf("mkdir -p '%s/deep/er' && echo leaf > '%s/deep/er/leaf'", src, src);
	run(cmd);
	free(cmd);
	t_tree = mono() - t0;

	t0 = mono();
	cmd = xasprintf("mke2fs -q -F -t ext4 -N 110000 -d '%s' '%s' 512M >/dev/null 2>&1", src,
	                img);
	run(cmd);
	free(cmd);
	t_mkfs = mono() - t0;

	fd = open(img, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(ext4index_source_fd(fd, &s, &e), STATUS_OK);
	assert_int_equal(ext4index_disk(&s, collect_row, &rows, &stats, &e), STATUS_OK);
	close(fd);
	assert_int_equal(stats.errors, 0);
	/* + lost+found */
	assert_int_equal(stats.files, N_DIRS * N_FILES + N_DIRS + 3 + 1);
	assert_int_equal(rows.n, stats.files);

	t0 = mono();
	debugfs_listing(img, 0, tmp, &want);
	t_debugfs = mono() - t0;
	qsort(rows.v, rows.n, sizeof(*rows.v), cmp_str);
	for (size_t i = 0; i < rows.n && i < want.n; i++) {
		if (strcmp(rows.v[i], want.v[i]) != 0)
			fail_msg("row %zu differs:\n index:   %s\n debugfs: %s", i, rows.v[i],
			         want.v[i]);
	}
	assert_int_equal(rows.n, want.n);

	print_message("100k image: tree %.1f s, mke2fs -d %.1f s, index %llu files in %.3f s "
	              "= %.0f files/s, debugfs walk %.1f s\n",
	              t_tree, t_mkfs, (unsigned long long)stats.files, stats.seconds,
	              stats.files_per_second, t_debugfs);
	strs_free(&rows);
	strs_free(&want);
	cmd = xasprintf("rm -rf '%s'", tmp);
	run(cmd);
	free(cmd);
	free(img);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_100k_files_match_debugfs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
