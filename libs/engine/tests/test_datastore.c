/* test_datastore.c - the datastore connector: create, inventory, guest writes and the -ctk,
 * snapshots (lock and, where the file system supports it, reflink), platform_ops. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include <sys/wait.h>

#include "common/xalloc.h"
#include "engine/datastore.h"

#include <cmocka.h>

/* Like assert_true, but also visible to the static analyser as a dead end. */
#define REQUIRE(x)                                                                                 \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fail_msg("required: %s", #x);                                              \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define DATA_SIZE (4194304u + 4096u) /* not a multiple of the ctk block */

struct fx {
	char tmp[256];
	char *root;
	char *src;
	struct platform_vm *vm;
};

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f != NULL);
	fputs(text, f);
	fclose(f);
}

static void rm_tree(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct datastore_disk_spec disks[2] = {
		{ .name = "disk0", .size = 16u << 20 },
		{ .name = "data", .size = DATA_SIZE, .raw = true },
	};
	struct datastore_vm_spec spec = { .org = "acme",
		                          .vdc = "vdc-1",
		                          .vapp = "shop",
		                          .name = "db01",
		                          .guest_os = "debian12_64",
		                          .disks = disks,
		                          .n_disks = 2 };
	struct err e;
	char *p;

	/* TMPDIR on a reflink-capable file system (XFS, btrfs) exercises the reflink path. */
	const char *env_tmp = getenv("TMPDIR");
	const char *tmpdir = env_tmp && *env_tmp ? env_tmp : "/tmp";
	snprintf(f->tmp, sizeof(f->tmp), "%s/cairn-test-ds-XXXXXX", tmpdir);
	assert_non_null(mkdtemp(f->tmp));
	f->root = xasprintf("%s/root", f->tmp);
	f->src = xasprintf("%s/src", f->tmp);
	assert_int_equal(mkdir(f->src, 0755), 0);
	p = xasprintf("%s/etc", f->src);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	p = xasprintf("%s/etc/hostname", f->src);
	write_text(p, "db01\n");
	free(p);
	p = xasprintf("%s/README", f->src);
	write_text(p, "hello from the guest\n");
	free(p);
	disks[0].from_dir = f->src;
	spec.root = f->root;
	spec.application_json = "{\"type\":\"postgresql\",\"host\":\"127.0.0.1\",\"port\":55432,"
	                        "\"databases\":[\"shop\",\"audit\"]}";
	if (datastore_vm_create(&spec, &f->vm, &e) != STATUS_OK)
		fail_msg("create: %s", e.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	platform_vm_free(f->vm);
	rm_tree(f->tmp);
	free(f->root);
	free(f->src);
	free(f);
	return 0;
}

static void read_disk(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void test_create_and_inventory(void **state)
{
	struct fx *f = *state;
	struct platform_inventory inv;
	struct platform_vm *found;
	struct err e;
	struct datastore_disk_spec d = { .name = "x", .size = 1u << 20, .raw = true };
	struct datastore_vm_spec again = { .root = f->root,
		                           .org = "acme",
		                           .vdc = "vdc-1",
		                           .vapp = "shop",
		                           .name = "db01",
		                           .disks = &d,
		                           .n_disks = 1 };

	assert_int_equal(datastore_inventory(f->root, &inv, &e), STATUS_OK);
	assert_int_equal(inv.n_vms, 1);
	struct platform_vm *vm = inv.vms[0];
	assert_string_equal(vm->name, "db01");
	assert_string_equal(vm->org, "acme");
	assert_string_equal(vm->vdc, "vdc-1");
	assert_string_equal(vm->vapp, "shop");
	assert_string_equal(vm->guest_os, "debian12_64");
	assert_int_equal(strlen(vm->id), 36);
	assert_int_equal(strlen(vm->org_id), 36);
	assert_int_equal(strlen(vm->vdc_id), 36);
	assert_int_equal(strlen(vm->vapp_id), 36);
	assert_string_equal(vm->id, f->vm->id);
	assert_int_equal(vm->n_disks, 2);
	assert_string_equal(vm->disks[0].name, "disk0");
	assert_int_equal(vm->disks[0].size, 16u << 20);
	assert_string_equal(vm->disks[1].name, "data");
	assert_int_equal(vm->disks[1].size, DATA_SIZE);
	assert_non_null(vm->app);
	assert_string_equal(vm->app->type, "postgresql");
	assert_int_equal(vm->app->port, 55432);
	assert_int_equal(vm->app->n_databases, 2);
	assert_string_equal(vm->app->databases[1], "audit");

	char *js = platform_inventory_to_json(&inv);
	assert_non_null(strstr(js, "\"db01\""));
	assert_non_null(strstr(js, vm->vapp_id));
	free(js);

	assert_int_equal(datastore_vm_find(f->root, vm->id, &found, &e), STATUS_OK);
	assert_string_equal(found->locator, vm->locator);
	platform_vm_free(found);
	assert_int_equal(
	        datastore_vm_find(f->root, "00000000-0000-0000-0000-000000000000", &found, &e),
	        STATUS_NOT_FOUND);
	platform_inventory_cleanup(&inv);

	/* The VM exists: CONFLICT, and the existing VM is untouched. */
	assert_int_equal(datastore_vm_create(&again, NULL, &e), STATUS_CONFLICT);
	assert_int_equal(datastore_inventory(f->root, &inv, &e), STATUS_OK);
	assert_int_equal(inv.n_vms, 1);
	platform_inventory_cleanup(&inv);

	/* Bad names are refused. */
	again.name = "../evil";
	assert_int_equal(datastore_vm_create(&again, NULL, &e), STATUS_INVALID);
	again.name = ".hidden";
	assert_int_equal(datastore_vm_create(&again, NULL, &e), STATUS_INVALID);
}

static void expect_extents(const struct extent_list *l, const struct extent *want, size_t n)
{
	if (l->n != n) {
		for (size_t i = 0; i < l->n; i++)
			print_message("got [%llu +%llu]\n", (unsigned long long)l->v[i].off,
			              (unsigned long long)l->v[i].len);
		fail_msg("got %zu extents, want %zu", l->n, n);
	}
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(l->v[i].off, want[i].off);
		assert_int_equal(l->v[i].len, want[i].len);
	}
}

static void test_writes_and_ctk(void **state)
{
	struct fx *f = *state;
	struct platform_snapshot *s1, *s2;
	struct extent_list l;
	struct err e;
	unsigned char buf[200000], back[200000];
	const char *data_path = platform_vm_disk(f->vm, "data")->path;
	char *bad;

	assert_int_equal(datastore_snapshot_create(f->vm, DATASTORE_SNAP_LOCK, &s1, &e), STATUS_OK);
	assert_string_equal(s1->mode, "lock");
	assert_int_equal(datastore_snapshot_release(s1, &e), STATUS_OK);
	const char *since = platform_snapshot_disk(s1, "data")->change_id;

	datastore_random_fill(1, 0, buf, sizeof(buf));
	assert_int_equal(datastore_disk_write(f->vm, "data", 70000, buf, 100, 0, &e), STATUS_OK);
	assert_int_equal(datastore_disk_write(f->vm, "data", 1000000, buf, 200000, 0, &e),
	                 STATUS_OK);
	assert_int_equal(datastore_disk_write(f->vm, "data", DATA_SIZE - 10, buf, 10, 0, &e),
	                 STATUS_OK);
	/* Past the end: refused, nothing marked. */
	assert_int_equal(datastore_disk_write(f->vm, "data", DATA_SIZE - 5, buf, 10, 0, &e),
	                 STATUS_INVALID);
	assert_int_equal(datastore_disk_write(f->vm, "nope", 0, buf, 10, 0, &e), STATUS_NOT_FOUND);

	read_disk(data_path, 1000000, back, 200000);
	assert_memory_equal(back, buf, 200000);

	static const struct extent want[] = {
		{ 65536, 65536 },                /* 100 bytes at 70000 */
		{ 15ull * 65536, 4ull * 65536 }, /* 200000 bytes at 1000000: blocks 15..18 */
		{ 4194304, 4096 },               /* the partial last block */
	};
	extent_list_init(&l);
	assert_int_equal(datastore_changed_extents(f->vm, "data", since, &l, &e), STATUS_OK);
	expect_extents(&l, want, 3);
	extent_list_cleanup(&l);

	/* The other disk saw no writes. */
	assert_int_equal(datastore_changed_extents(f->vm, "disk0",
	                                           platform_snapshot_disk(s1, "disk0")->change_id,
	                                           &l, &e),
	                 STATUS_OK);
	assert_int_equal(l.n, 0);

	/* "*" is the whole disk. */
	assert_int_equal(datastore_changed_extents(f->vm, "data", "*", &l, &e), STATUS_OK);
	static const struct extent whole[] = { { 0, DATA_SIZE } };
	expect_extents(&l, whole, 1);
	extent_list_cleanup(&l);

	/* A second snapshot: nothing changed since it; everything still changed since s1. */
	assert_int_equal(datastore_snapshot_create(f->vm, DATASTORE_SNAP_LOCK, &s2, &e), STATUS_OK);
	assert_int_equal(datastore_snapshot_release(s2, &e), STATUS_OK);
	assert_int_equal(datastore_changed_extents(f->vm, "data",
	                                           platform_snapshot_disk(s2, "data")->change_id,
	                                           &l, &e),
	                 STATUS_OK);
	assert_int_equal(l.n, 0);
	assert_int_equal(datastore_changed_extents(f->vm, "data", since, &l, &e), STATUS_OK);
	expect_extents(&l, want, 3);
	extent_list_cleanup(&l);
	assert_int_equal(datastore_disk_write(f->vm, "data", 0, buf, 1, 0, &e), STATUS_OK);
	assert_int_equal(datastore_changed_extents(f->vm, "data",
	                                           platform_snapshot_disk(s2, "data")->change_id,
	                                           &l, &e),
	                 STATUS_OK);
	static const struct extent first[] = { { 0, 65536 } };
	expect_extents(&l, first, 1);
	extent_list_cleanup(&l);

	/* Ids of another -ctk, from the future, or garbage. */
	bad = xstrdup(since);
	bad[0] = bad[0] == 'a' ? 'b' : 'a';
	assert_int_equal(datastore_changed_extents(f->vm, "data", bad, &l, &e), STATUS_CONFLICT);
	free(bad);
	bad = xasprintf("%.36s/999", since);
	assert_int_equal(datastore_changed_extents(f->vm, "data", bad, &l, &e), STATUS_CONFLICT);
	free(bad);
	assert_int_equal(datastore_changed_extents(f->vm, "data", "garbage", &l, &e),
	                 STATUS_INVALID);
	assert_int_equal(l.n, 0);
	platform_snapshot_free(s1);
	platform_snapshot_free(s2);
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct releaser {
	struct platform_snapshot *snap;
	unsigned delay_ms;
};

static void *release_later(void *arg)
{
	struct releaser *r = arg;
	struct err e;
	nanosleep(&(struct timespec){ .tv_sec = r->delay_ms / 1000,
	                              .tv_nsec = (long)(r->delay_ms % 1000) * 1000000L },
	          NULL);
	if (datastore_snapshot_release(r->snap, &e) != STATUS_OK)
		abort();
	return NULL;
}

static void test_lock_snapshot(void **state)
{
	struct fx *f = *state;
	struct platform_snapshot *snap, *other, *loaded;
	const char *disk0 = platform_vm_disk(f->vm, "disk0")->path;
	unsigned char before[4096], after[4096], w[4096];
	struct err e;
	double t0;

	read_disk(disk0, 0, before, sizeof(before));
	assert_int_equal(datastore_snapshot_create(f->vm, DATASTORE_SNAP_LOCK, &snap, &e),
	                 STATUS_OK);
	assert_string_equal(snap->mode, "lock");
	assert_int_equal(snap->n_disks, 2);
	/* The lock path reads the live image, held still. */
	assert_string_equal(platform_snapshot_disk(snap, "disk0")->path, disk0);

	/* A guest write waits, then fails with a message naming the snapshot. */
	memset(w, 0xab, sizeof(w));
	t0 = mono();
	assert_int_equal(datastore_disk_write(f->vm, "disk0", 0, w, sizeof(w), 150, &e),
	                 STATUS_TIMEOUT);
	assert_true(mono() - t0 >= 0.14);
	assert_non_null(strstr(e.msg, snap->id));
	assert_non_null(strstr(e.msg, "held by snapshot"));
	read_disk(disk0, 0, after, sizeof(after));
	assert_memory_equal(before, after, sizeof(before)); /* point in time */

	/* A second lock snapshot of the same disks conflicts. */
	assert_int_equal(datastore_snapshot_create(f->vm, DATASTORE_SNAP_LOCK, &other, &e),
	                 STATUS_CONFLICT);

	/* Another process can find and release it by id. */
	assert_int_equal(datastore_snapshot_load(f->vm->locator, snap->id, &loaded, &e), STATUS_OK);
	assert_string_equal(loaded->mode, "lock");
	assert_int_equal(loaded->n_disks, 2);

	/* A write that waits long enough goes through once the snapshot is released. */
	pthread_t th;
	struct releaser r = { .snap = loaded, .delay_ms = 200 };
	assert_int_equal(pthread_create(&th, NULL, release_later, &r), 0);
	t0 = mono();
	assert_int_equal(datastore_disk_write(f->vm, "disk0", 0, w, sizeof(w), 10000, &e),
	                 STATUS_OK);
	assert_true(mono() - t0 >= 0.15);
	pthread_join(th, NULL);
	read_disk(disk0, 0, after, sizeof(after));
	assert_memory_equal(w, after, sizeof(w));
	/* Releasing again is fine. */
	assert_int_equal(datastore_snapshot_release(snap, &e), STATUS_OK);
	assert_int_equal(datastore_snapshot_load(f->vm->locator, snap->id, &other, &e),
	                 STATUS_NOT_FOUND);
	platform_snapshot_free(loaded);
	platform_snapshot_free(snap);
}

/* The write tool itself (cairn-datastore, built beside this test binary) honours the lock. */
static void test_write_tool_honours_lock(void **state)
{
	struct fx *f = *state;
	struct platform_snapshot *snap;
	struct err e;
	char exe[4096], *tool, *cmd, *out;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int rc;

	assert_true(n > 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	tool = xasprintf("%s/cairn-datastore", exe);
	if (access(tool, X_OK) != 0) {
		print_message("SKIP: %s not built (build target tool_datastore)\n", tool);
		free(tool);
		skip();
		return;
	}
	out = xasprintf("%s/tool.err", f->tmp);
	assert_int_equal(datastore_snapshot_create(f->vm, DATASTORE_SNAP_LOCK, &snap, &e),
	                 STATUS_OK);
	cmd = xasprintf("'%s' write --vm '%s' --disk data --offset 64K --random 4096 --seed 5 "
	                "--wait-ms 100 2>'%s'",
	                tool, f->vm->locator, out);
	rc = system(cmd);
	assert_true(WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 3); /* timeout */
	{
		char msg[1024] = "";
		FILE *fe = fopen(out, "r");
		REQUIRE(fe != NULL);
		size_t got = fread(msg, 1, sizeof(msg) - 1, fe);
		msg[got] = '\0';
		fclose(fe);
		assert_non_null(strstr(msg, snap->id));
	}
	assert_int_equal(datastore_snapshot_release(snap, &e), STATUS_OK);
	rc = system(cmd);
	assert_true(WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 0);

	/* What the tool wrote is the seeded stream, and the -ctk saw exactly that block. */
	unsigned char got[4096], want[4096];
	read_disk(platform_vm_disk(f->vm, "data")->path, 65536, got, sizeof(got));
	datastore_random_fill(5, 0, want, sizeof(want));
	assert_memory_equal(got, want, sizeof(got));
	struct extent_list l;
	extent_list_init(&l);
	assert_int_equal(datastore_changed_extents(f->vm, "data",
	                                           platform_snapshot_disk(snap, "data")->change_id,
	                                           &l, &e),
	                 STATUS_OK);
	static const struct extent one[] = { { 65536, 65536 } };
	expect_extents(&l, one, 1);
	extent_list_cleanup(&l);
	platform_snapshot_free(snap);
	free(cmd);
	free(out);
	free(tool);
}

static void test_reflink_snapshot(void **state)
{
	struct fx *f = *state;
	struct platform_snapshot *snap, *autosnap;
	unsigned char before[8192], w[8192], got[8192];
	struct err e;
	enum status st;
	const char *data = platform_vm_disk(f->vm, "data")->path;

	/* AUTO picks reflink where supported, else lock: either way a valid snapshot. */
	assert_int_equal(datastore_snapshot_create(f->vm, DATASTORE_SNAP_AUTO, &autosnap, &e),
	                 STATUS_OK);
	assert_true(strcmp(autosnap->mode, "lock") == 0 || strcmp(autosnap->mode, "reflink") == 0);
	assert_int_equal(datastore_snapshot_release(autosnap, &e), STATUS_OK);

	st = datastore_snapshot_create(f->vm, DATASTORE_SNAP_REFLINK, &snap, &e);
	if (st == STATUS_UNAVAILABLE && getenv("CAIRN_TEST_REQUIRE_REFLINK") != NULL)
		fail_msg("CAIRN_TEST_REQUIRE_REFLINK is set but the reflink snapshot failed: %s",
		         e.msg);
	if (st == STATUS_UNAVAILABLE) {
		assert_string_equal(autosnap->mode, "lock");
		platform_snapshot_free(autosnap);
		print_message("SKIP reflink snapshot: this file system has no reflink (%s); the "
		              "lock path is tested instead\n",
		              e.msg);
		skip();
		return;
	}
	assert_int_equal(st, STATUS_OK);
	assert_string_equal(autosnap->mode, "reflink");
	platform_snapshot_free(autosnap);
	assert_string_equal(snap->mode, "reflink");
	read_disk(data, 0, before, sizeof(before));
	datastore_random_fill(7, 0, w, sizeof(w));
	/* With a clone, guest writes do not wait... */
	assert_int_equal(datastore_disk_write(f->vm, "data", 0, w, sizeof(w), 0, &e), STATUS_OK);
	/* ...and do not show through the snapshot. */
	read_disk(platform_snapshot_disk(snap, "data")->path, 0, got, sizeof(got));
	assert_memory_equal(got, before, sizeof(got));
	read_disk(data, 0, got, sizeof(got));
	assert_memory_equal(got, w, sizeof(got));
	assert_int_equal(datastore_snapshot_release(snap, &e), STATUS_OK);
	assert_int_equal(access(platform_snapshot_disk(snap, "data")->path, F_OK), -1);
	platform_snapshot_free(snap);
}

static void test_platform_ops(void **state)
{
	struct fx *f = *state;
	struct datastore_opts o = { .snap_mode = DATASTORE_SNAP_LOCK, .write_wait_ms = 50 };
	struct platform *p;
	struct platform_inventory inv;
	struct platform_vm *vm;
	struct platform_snapshot *snap;
	struct platform_disk_handle *h, *live;
	struct extent_list l;
	unsigned char sb[1024], w[512];
	struct err e;

	p = datastore_open(f->root, &o, &e);
	assert_non_null(p);
	assert_string_equal(p->ops->name, "datastore");
	assert_int_equal(p->ops->inventory(p, &inv, &e), STATUS_OK);
	assert_int_equal(inv.n_vms, 1);
	platform_inventory_cleanup(&inv);
	assert_int_equal(p->ops->vm_get(p, f->vm->id, &vm, &e), STATUS_OK);
	platform_vm_free(vm);

	assert_int_equal(p->ops->snapshot_create(p, f->vm->id, &snap, &e), STATUS_OK);
	assert_int_equal(p->ops->disk_open(p, f->vm->id, snap, "disk0", false, &h, &e), STATUS_OK);
	assert_int_equal(h->size, 16u << 20);
	/* The ext4 superblock magic through the snapshot handle. */
	assert_int_equal(p->ops->disk_read(h, sb, sizeof(sb), 1024, &e), STATUS_OK);
	assert_int_equal(sb[56] | (sb[57] << 8), 0xef53);
	assert_int_equal(p->ops->disk_read(h, sb, 2, h->size - 1, &e), STATUS_INVALID);
	assert_int_equal(p->ops->disk_write(h, w, sizeof(w), 0, &e), STATUS_INVALID);
	p->ops->disk_close(h);
	assert_int_equal(p->ops->disk_open(p, f->vm->id, snap, "disk0", true, &h, &e),
	                 STATUS_INVALID);

	/* A live writable handle honours the snapshot's lock. */
	assert_int_equal(p->ops->disk_open(p, f->vm->id, NULL, "data", true, &live, &e), STATUS_OK);
	memset(w, 0x5a, sizeof(w));
	assert_int_equal(p->ops->disk_write(live, w, sizeof(w), 131072, &e), STATUS_TIMEOUT);
	assert_int_equal(p->ops->snapshot_release(p, snap, &e), STATUS_OK);
	assert_int_equal(p->ops->disk_write(live, w, sizeof(w), 131072, &e), STATUS_OK);
	p->ops->disk_close(live);

	extent_list_init(&l);
	assert_int_equal(p->ops->changed_extents(p, snap, "data",
	                                         platform_snapshot_disk(snap, "data")->change_id,
	                                         &l, &e),
	                 STATUS_OK);
	static const struct extent want[] = { { 131072, 65536 } };
	expect_extents(&l, want, 1);
	extent_list_cleanup(&l);
	platform_snapshot_free(snap);
	p->ops->close(p);
	assert_null(datastore_open("/nonexistent/cairn", &o, &e));
	assert_int_equal(e.code, STATUS_NOT_FOUND);
}

static void test_write_helpers(void **state)
{
	struct fx *f = *state;
	unsigned char a[1000], b[1000], got[3000000 % 4096 + 4096];
	struct err e;
	uint64_t v;

	datastore_random_fill(42, 0, a, sizeof(a));
	datastore_random_fill(42, 0, b, 333);
	datastore_random_fill(42, 333, b + 333, sizeof(b) - 333);
	assert_memory_equal(a, b, sizeof(a));
	datastore_random_fill(43, 0, b, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));

	/* 3 MB of seeded data through 1 MiB guest writes; spot-check the tail. */
	assert_int_equal(datastore_disk_write_random(f->vm, "data", 4096, 3000000, 9, 0, &e),
	                 STATUS_OK);
	read_disk(platform_vm_disk(f->vm, "data")->path, 4096 + 3000000 - sizeof(got), got,
	          sizeof(got));
	unsigned char want[sizeof(got)];
	datastore_random_fill(9, 3000000 - sizeof(got), want, sizeof(want));
	assert_memory_equal(got, want, sizeof(got));

	assert_int_equal(datastore_size_parse("2G", &v, &e), STATUS_OK);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(datastore_size_parse("512MiB", &v, &e), STATUS_OK);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(datastore_size_parse("12345", &v, &e), STATUS_OK);
	assert_int_equal(v, 12345);
	assert_int_equal(datastore_size_parse("-1", &v, &e), STATUS_INVALID);
	assert_int_equal(datastore_size_parse("3X", &v, &e), STATUS_INVALID);
	assert_int_equal(datastore_size_parse("99999999999T", &v, &e), STATUS_INVALID);

	struct datastore_disk_spec d;
	char *storage;
	assert_int_equal(datastore_disk_spec_parse("root=1G:/tmp/x", &d, &storage, &e), STATUS_OK);
	assert_string_equal(d.name, "root");
	assert_int_equal(d.size, 1ull << 30);
	assert_string_equal(d.from_dir, "/tmp/x");
	free(storage);
	assert_int_equal(datastore_disk_spec_parse("scratch=64M:raw", &d, &storage, &e), STATUS_OK);
	assert_true(d.raw);
	free(storage);
	assert_int_equal(datastore_disk_spec_parse("img=@/a/b.img", &d, &storage, &e), STATUS_OK);
	assert_string_equal(d.import_from, "/a/b.img");
	free(storage);
	assert_int_equal(datastore_disk_spec_parse("noequals", &d, &storage, &e), STATUS_INVALID);
}

static void test_import_and_corrupt_vm_json(void **state)
{
	struct fx *f = *state;
	struct datastore_disk_spec d = { .name = "copy",
		                         .import_from = platform_vm_disk(f->vm, "disk0")->path };
	struct datastore_vm_spec spec = { .root = f->root,
		                          .org = "acme",
		                          .vdc = "vdc-1",
		                          .vapp = "other",
		                          .name = "clone",
		                          .disks = &d,
		                          .n_disks = 1 };
	struct platform_vm *vm;
	struct platform_inventory inv;
	unsigned char a[65536], b[65536];
	struct err e;

	assert_int_equal(datastore_vm_create(&spec, &vm, &e), STATUS_OK);
	assert_int_equal(vm->disks[0].size, 16u << 20);
	read_disk(vm->disks[0].path, 0, a, sizeof(a));
	read_disk(platform_vm_disk(f->vm, "disk0")->path, 0, b, sizeof(b));
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(datastore_inventory(f->root, &inv, &e), STATUS_OK);
	assert_int_equal(inv.n_vms, 2);
	platform_inventory_cleanup(&inv);

	/* A broken vm.json is reported, not skipped silently. */
	char *p = xasprintf("%s/vm.json", vm->locator);
	write_text(p, "{ not json");
	free(p);
	assert_int_equal(datastore_inventory(f->root, &inv, &e), STATUS_CORRUPT);
	assert_non_null(strstr(e.msg, "vm.json"));
	platform_vm_free(vm);

	/* A failed create leaves nothing behind. */
	d.import_from = "/nonexistent/image";
	spec.name = "broken";
	assert_int_equal(datastore_vm_create(&spec, NULL, &e), STATUS_NOT_FOUND);
	p = xasprintf("%s/acme/vdc-1/other/broken", f->root);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_inventory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writes_and_ctk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_tool_honours_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reflink_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_platform_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_helpers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_and_corrupt_vm_json, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
