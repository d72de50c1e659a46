/* test_ext4index.c - the guest file index against debugfs's listing: a whole-disk ext4
 * image, GPT and MBR (logical partition) images built with sfdisk, a read-callback source,
 * a failing source, and randomly damaged images (error or warning, never a crash). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "common/buf.h"
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

/* ---- helpers (shared in spirit with test_ext4index_100k.c) ------------------------------ */

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

struct collect {
	struct strs rows;
	int want_partition;   /* -1: all */
	const char *src_root; /* compare mtime with lstat of the source tree, or NULL */
	uint64_t mtime_checked;
};

static enum status collect_row(void *arg, const struct ext4index_row *r, struct err *e)
{
	struct collect *c = arg;

	if (r->path[0] != '/' || strlen(r->path) != r->path_len)
		fail_msg("bad path %s", r->path);
	if (c->want_partition >= 0 && r->fs->partition != c->want_partition)
		return STATUS_OK;
	char size[32] = "";
	if (r->type != EXT4INDEX_DIR)
		snprintf(size, sizeof(size), "%llu", (unsigned long long)r->size);
	strs_add(&c->rows, xasprintf("%s\t%u\t%06o\t%s", r->path, r->ino, r->mode, size));
	if (c->src_root && strcmp(r->path, "/lost+found") != 0) {
		char *p = xasprintf("%s%s", c->src_root, r->path);
		struct stat sb;
		assert_int_equal(lstat(p, &sb), 0);
		assert_int_equal(r->mtime, sb.st_mtim.tv_sec);
		/* mke2fs -d keeps seconds only; nanoseconds are checked separately. */
		assert_int_equal(r->size == (uint64_t)sb.st_size || S_ISDIR(sb.st_mode), 1);
		c->mtime_checked++;
		free(p);
	}
	return STATUS_OK;
}

static void compare(struct strs *got, struct strs *want)
{
	qsort(got->v, got->n, sizeof(*got->v), cmp_str);
	for (size_t i = 0; i < got->n && i < want->n; i++) {
		if (strcmp(got->v[i], want->v[i]) != 0)
			fail_msg("row %zu differs:\n index:   %s\n debugfs: %s", i, got->v[i],
			         want->v[i]);
	}
	assert_int_equal(got->n, want->n);
}

static enum status find_hostname(void *arg, const struct ext4index_row *r, struct err *e)
{
	struct {
		int64_t mtime;
		uint32_t nsec;
	} *got = arg;

	if (strcmp(r->path, "/etc/hostname") == 0) {
		got->mtime = r->mtime;
		got->nsec = r->mtime_nsec;
	}
	return STATUS_OK;
}

static enum status index_file(const char *image, struct collect *c, struct ext4index_stats *stats,
                              struct err *e)
{
	struct ext4index_source src;
	int fd = open(image, O_RDONLY);
	enum status st;

	assert_true(fd >= 0);
	assert_int_equal(ext4index_source_fd(fd, &src, e), STATUS_OK);
	st = ext4index_disk(&src, collect_row, c, stats, e);
	close(fd);
	return st;
}

/* ---- fixtures --------------------------------------------------------------------------- */

struct fx {
	char tmp[256];
	char *src;
};

static void write_file(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(p);
}

static void set_mtime(const char *dir, const char *name, long sec, long nsec)
{
	char *p = xasprintf("%s/%s", dir, name);
	struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };
	assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
	free(p);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const char *env_tmp = getenv("TMPDIR");
	const char *tmpdir = env_tmp && *env_tmp ? env_tmp : "/tmp";
	char *p, *q;

	snprintf(f->tmp, sizeof(f->tmp), "%s/cairn-test-idx-XXXXXX", tmpdir);
	assert_non_null(mkdtemp(f->tmp));
	f->src = xasprintf("%s/src", f->tmp);
	p = xasprintf("%s/etc/ssh", f->src);
	q = xasprintf("mkdir -p '%s' '%s/var/lib/empty dir' '%s/home/ünïcode'", p, f->src, f->src);
	run(q);
	free(q);
	free(p);
	write_file(f->src, "etc/hostname", "guest\n");
	write_file(f->src, "etc/ssh/sshd_config", "PermitRootLogin no\n");
	write_file(f->src, "home/ünïcode/notes with spaces.txt", "hello\n");
	write_file(f->src, "empty", "");
	p = xasprintf("%s/big", f->src);
	q = xasprintf("truncate -s 5000000 '%s' && ln -s etc/hostname '%s/link' && "
	              "ln '%s/etc/hostname' '%s/hardlink' && mkfifo '%s/fifo'",
	              p, f->src, f->src, f->src, f->src);
	run(q);
	free(q);
	free(p);
	set_mtime(f->src, "etc/hostname", 1700000000, 123456789);
	set_mtime(f->src, "empty", 86400, 0);
	set_mtime(f->src, "link", 1600000000, 5);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->tmp);

	run(cmd);
	free(cmd);
	free(f->src);
	free(f);
	return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_whole_disk_matches_debugfs(void **state)
{
	struct fx *f = *state;
	char *img = xasprintf("%s/whole.img", f->tmp);
	char *cmd = xasprintf("mke2fs -q -F -t ext4 -d '%s' '%s' 32M", f->src, img);
	struct collect c = { .want_partition = -1, .src_root = f->src };
	struct strs want = { 0 };
	struct ext4index_stats stats;
	struct err e;

	run(cmd);
	assert_int_equal(index_file(img, &c, &stats, &e), STATUS_OK);
	assert_int_equal(stats.filesystems, 1);
	assert_int_equal(stats.errors, 0);
	assert_int_equal(stats.files, c.rows.n);
	assert_true(c.mtime_checked >= 10);
	debugfs_listing(img, 0, f->tmp, &want);
	assert_true(want.n >= 12);
	compare(&c.rows, &want);
	strs_free(&c.rows);
	strs_free(&want);
	free(cmd);

	/* Nanoseconds and the epoch bits of i_mtime_extra (set with debugfs, as mke2fs -d
	 * keeps whole seconds): 0x1d6f3455 = 123456789 ns << 2 | epoch 1 (+2^32 s). */
	cmd = xasprintf("debugfs -w -R 'sif /etc/hostname mtime_extra 0x1d6f3455' '%s' "
	                ">/dev/null 2>&1",
	                img);
	run(cmd);
	struct collect one = { .want_partition = -1 };
	assert_int_equal(index_file(img, &one, &stats, &e), STATUS_OK);
	free(cmd);
	cmd = NULL;
	struct stat sb;
	char *p = xasprintf("%s/etc/hostname", f->src);
	assert_int_equal(lstat(p, &sb), 0);
	free(p);
	strs_free(&one.rows);
	struct mt {
		int64_t mtime;
		uint32_t nsec;
	} got = { 0, 0 };
	struct ext4index_source src;
	int fd = open(img, O_RDONLY);
	assert_int_equal(ext4index_source_fd(fd, &src, &e), STATUS_OK);
	assert_int_equal(ext4index_disk(&src, find_hostname, &got, &stats, &e), STATUS_OK);
	close(fd);
	assert_int_equal(got.mtime, (int64_t)sb.st_mtim.tv_sec + (INT64_C(1) << 32));
	assert_int_equal(got.nsec, 123456789);
	free(img);
}

static void test_partitions(void **state, const char *label, const uint64_t *fs_sectors,
                            size_t n_fs, const char *sfdisk_script, int other_partition)
{
	struct fx *f = *state;
	char *img = xasprintf("%s/%s.img", f->tmp, label);
	char *cmd = xasprintf("truncate -s 48M '%s'", img);
	struct ext4index_part *parts;
	struct ext4index_source src;
	struct ext4index_stats stats;
	size_t n;
	struct err e;
	int fd;

	run(cmd);
	free(cmd);
	/* File systems first (mke2fs -E offset), then the table (sfdisk leaves them alone). */
	for (size_t i = 0; i < n_fs; i++) {
		cmd = xasprintf("mke2fs -q -F -t ext4 -E offset=%llu -d '%s' '%s' 8M",
		                (unsigned long long)fs_sectors[i] * 512, f->src, img);
		run(cmd);
		free(cmd);
	}
	cmd = xasprintf("printf '%s' | sfdisk -q --no-reread --no-tell-kernel '%s' >/dev/null "
	                "2>&1",
	                sfdisk_script, img);
	run(cmd);
	free(cmd);

	fd = open(img, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(ext4index_source_fd(fd, &src, &e), STATUS_OK);
	assert_int_equal(ext4index_partitions(&src, &parts, &n, &e), STATUS_OK);
	size_t n_ext = 0;
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(parts[i].table, label);
		if (parts[i].is_ext) {
			REQUIRE(n_ext < n_fs);
			assert_int_equal(parts[i].offset, fs_sectors[n_ext] * 512);
			n_ext++;
		} else {
			assert_int_equal(parts[i].number, other_partition);
		}
	}
	assert_int_equal(n_ext, n_fs);
	free(parts);
	close(fd);

	struct collect all = { .want_partition = -1 };
	assert_int_equal(index_file(img, &all, &stats, &e), STATUS_OK);
	assert_int_equal(stats.filesystems, n_fs);
	assert_int_equal(stats.skipped, 1);
	assert_int_equal(stats.errors, 0);
	strs_free(&all.rows);

	/* Each file system's rows match debugfs at that offset. */
	fd = open(img, O_RDONLY);
	assert_int_equal(ext4index_source_fd(fd, &src, &e), STATUS_OK);
	assert_int_equal(ext4index_partitions(&src, &parts, &n, &e), STATUS_OK);
	close(fd);
	for (size_t i = 0; i < n; i++) {
		if (!parts[i].is_ext)
			continue;
		struct collect c = { .want_partition = parts[i].number, .src_root = f->src };
		struct strs want = { 0 };
		assert_int_equal(index_file(img, &c, &stats, &e), STATUS_OK);
		debugfs_listing(img, parts[i].offset, f->tmp, &want);
		assert_true(want.n >= 12);
		compare(&c.rows, &want);
		strs_free(&c.rows);
		strs_free(&want);
	}
	free(parts);
	free(img);
}

static void test_gpt(void **state)
{
	static const uint64_t fs[] = { 2048 };
	test_partitions(state, "gpt", fs, 1,
	                "label: gpt\\nstart=2048, size=16384, type=L\\n"
	                "start=20480, size=16384, type=S\\n",
	                2);
}

static void test_mbr_logical(void **state)
{
	static const uint64_t fs[] = { 2048, 24576 };
	/* p1 ext4, p2 extended holding logical p5 (ext4) and p6 (not a file system) */
	test_partitions(state, "mbr", fs, 2,
	                "label: dos\\nstart=2048, size=16384, type=83\\n"
	                "start=20480, size=73728, type=5\\n"
	                "start=24576, size=16384, type=83\\n"
	                "start=43008, size=8192, type=82\\n",
	                6);
}

/* An in-memory disk behind the read callback; reads can be made to fail. */
struct memdisk {
	unsigned char *data;
	size_t size;
	uint64_t reads;
	uint64_t fail_after; /* 0 = never */
};

static enum status mem_read(void *arg, void *buf, size_t len, uint64_t off, struct err *e)
{
	struct memdisk *m = arg;

	m->reads++;
	if (m->fail_after && m->reads > m->fail_after)
		return err_set(e, STATUS_IO, "injected read failure at %llu",
		               (unsigned long long)off);
	if (off > m->size || len > m->size - off)
		return err_set(e, STATUS_IO, "out of range");
	memcpy(buf, m->data + off, len);
	return STATUS_OK;
}

static void load_image(const char *path, struct memdisk *m)
{
	int fd = open(path, O_RDONLY);
	struct stat sb;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	m->size = (size_t)sb.st_size;
	m->data = xmalloc(m->size);
	assert_int_equal(pread(fd, m->data, m->size, 0), (ssize_t)m->size);
	close(fd);
}

static enum status count_row(void *arg, const struct ext4index_row *r, struct err *e)
{
	uint64_t *n = arg;

	if (r->path[0] != '/' || strlen(r->path) != r->path_len)
		abort();
	(*n)++;
	return STATUS_OK;
}

static enum status stop_row(void *arg, const struct ext4index_row *r, struct err *e)
{
	return err_set(e, STATUS_CONFLICT, "stop at %s", r->path);
}

static void test_callback_source_and_failures(void **state)
{
	struct fx *f = *state;
	char *img = xasprintf("%s/mem.img", f->tmp);
	char *cmd = xasprintf("mke2fs -q -F -t ext4 -d '%s' '%s' 16M", f->src, img);
	struct memdisk m = { 0 };
	struct ext4index_source src = { .read = mem_read, .arg = &m };
	struct ext4index_stats stats;
	uint64_t n = 0;
	struct err e;

	run(cmd);
	load_image(img, &m);
	src.size = m.size;
	assert_int_equal(ext4index_disk(&src, count_row, &n, &stats, &e), STATUS_OK);
	assert_int_equal(n, 16); /* lost+found + the 15 entries of the tree */
	assert_true(m.reads > 0);

	/* The row callback can stop the walk; its status comes back. */
	assert_int_equal(ext4index_disk(&src, stop_row, NULL, &stats, &e), STATUS_CONFLICT);
	assert_non_null(strstr(e.msg, "stop at"));

	/* A failing source is an I/O error, at any point of the walk. */
	for (uint64_t k = 1; k < m.reads; k += 3) {
		m.reads = 0;
		m.fail_after = k;
		n = 0;
		enum status st = ext4index_disk(&src, count_row, &n, &stats, &e);
		assert_true(st == STATUS_IO || st == STATUS_OK);
		if (st == STATUS_IO)
			assert_non_null(strstr(e.msg, "injected"));
	}
	m.fail_after = 0;

	/* No file system at all. */
	memset(m.data, 0, m.size);
	assert_int_equal(ext4index_disk(&src, count_row, &n, &stats, &e), STATUS_NOT_FOUND);
	/* A zero-length disk. */
	src.size = 0;
	assert_int_equal(ext4index_disk(&src, count_row, &n, &stats, &e), STATUS_NOT_FOUND);
	free(m.data);
	free(cmd);
	free(img);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_corrupt_images(void **state)
{
	struct fx *f = *state;
	char *img = xasprintf("%s/bad.img", f->tmp);
	/* Without metadata_csum, damaged directories and inodes reach the parsers. */
	char *cmd = xasprintf("mke2fs -q -F -t ext4 -O ^metadata_csum -b 1024 -d '%s' '%s' 4M",
	                      f->src, img);
	struct memdisk pristine = { 0 }, m = { 0 };
	struct ext4index_source src = { .read = mem_read, .arg = &m };
	struct ext4index_stats stats;
	unsigned counts[STATUS__COUNT] = { 0 }, with_errors = 0;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	struct err e;

	run(cmd);
	load_image(img, &pristine);
	m.data = xmalloc(pristine.size);
	m.size = pristine.size;
	src.size = m.size;
	/* Damage only where the metadata lives: the non-zero 1 KiB blocks of the first MiB
	 * after the superblock (descriptors, bitmaps, used inodes, directories). */
	size_t meta[1024], n_meta = 0;
	for (size_t b = 2; b < (1u << 20) / 1024 && b * 1024 < pristine.size; b++) {
		for (size_t i = 0; i < 1024; i++) {
			if (pristine.data[b * 1024 + i]) {
				meta[n_meta++] = b;
				break;
			}
		}
	}
	REQUIRE(n_meta > 8);
	for (int round = 0; round < 400; round++) {
		uint64_t n = 0;
		enum status st;

		memcpy(m.data, pristine.data, m.size);
		m.reads = 0;
		int flips = 1 + (int)(rnd(&seed) % 64);
		for (int k = 0; k < flips; k++) {
			size_t at = meta[rnd(&seed) % n_meta] * 1024 + (size_t)(rnd(&seed) % 1024);
			m.data[at] = (unsigned char)rnd(&seed);
		}
		st = ext4index_disk(&src, count_row, &n, &stats, &e);
		assert_true(st == STATUS_OK || st == STATUS_CORRUPT || st == STATUS_NOT_FOUND ||
		            st == STATUS_IO);
		counts[st]++;
		if (st == STATUS_OK && stats.errors > 0)
			with_errors++;
	}
	print_message("400 damaged images: %u indexed (%u with skipped entries), %u corrupt, "
	              "%u not found, %u io\n",
	              counts[STATUS_OK], with_errors, counts[STATUS_CORRUPT],
	              counts[STATUS_NOT_FOUND], counts[STATUS_IO]);

	/* Specific damage: zeroed group descriptors, truncated image, directory loop. */
	memcpy(m.data, pristine.data, m.size);
	memset(m.data + 2048, 0, 1024);
	assert_int_equal(ext4index_disk(&src, count_row, &(uint64_t){ 0 }, &stats, &e),
	                 STATUS_CORRUPT);
	memcpy(m.data, pristine.data, m.size);
	src.size = (uint64_t)64 * 1024;
	assert_int_equal(ext4index_disk(&src, count_row, &(uint64_t){ 0 }, &stats, &e),
	                 STATUS_CORRUPT);
	assert_non_null(strstr(e.msg, "truncated"));
	src.size = m.size;

	/* A directory loop: /etc/ssh/up is a second link to /etc. It is listed once and not
	 * entered again, so the walk ends. */
	free(cmd);
	cmd = xasprintf("debugfs -w -R 'ln /etc /etc/ssh/up' '%s' >/dev/null 2>&1", img);
	run(cmd);
	struct collect loop = { .want_partition = -1 };
	assert_int_equal(index_file(img, &loop, &stats, &e), STATUS_OK);
	size_t ups = 0;
	for (size_t i = 0; i < loop.rows.n; i++) {
		assert_null(strstr(loop.rows.v[i], "/up/"));
		ups += strncmp(loop.rows.v[i], "/etc/ssh/up\t", 12) == 0;
	}
	assert_int_equal(ups, 1);
	strs_free(&loop.rows);
	free(m.data);
	free(pristine.data);
	free(cmd);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_whole_disk_matches_debugfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mbr_logical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_source_and_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_images, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
