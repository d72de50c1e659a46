/* cairn-datastore - the datastore's write tool: create VMs, write into their disks as a
 * running guest would, list, snapshot/release, show changed extents, index a disk.
 * Argument parsing only; the logic is in libs/engine/src/datastore.c and ext4index.c. */
#include "engine/datastore.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/xalloc.h"
#include "engine/ext4index.h"

static const char usage[] =
        "usage: cairn-datastore <command> [options]\n"
        "  create-vm --root R --org O --vdc V --vapp A --vm NAME --disk SPEC [--disk SPEC...]\n"
        "            [--guest-os OS] [--application JSON]\n"
        "            SPEC: NAME=SIZE (empty ext4) | NAME=SIZE:DIR (mke2fs -d DIR)\n"
        "                | NAME=SIZE:raw (zeros) | NAME=@IMAGE (copy an image); SIZE: 512M, 2G\n"
        "  list      --root R                          inventory as JSON\n"
        "  show      --vm DIR                          one VM as JSON\n"
        "  write     --vm DIR --disk NAME --offset N (--from FILE | --random N [--seed S])\n"
        "            [--wait-ms MS]                    write as a running guest (updates -ctk)\n"
        "  snapshot  --vm DIR [--mode auto|reflink|lock]   prints the snapshot as JSON\n"
        "  release   --vm DIR --snapshot ID\n"
        "  changed   --vm DIR --disk NAME --since CHANGE_ID   changed extents (off len per line)\n"
        "  index     (--image FILE | --vm DIR --disk NAME) [--quiet]\n"
        "            list files as TSV: type size mtime ino path; figures on stderr\n"
        "environment: CAIRN_DATASTORE_SNAPSHOT=auto|reflink|lock, "
        "CAIRN_DATASTORE_WRITE_WAIT_MS=N\n";

struct args {
	const char *root, *org, *vdc, *vapp, *vm, *disk_name, *guest_os, *app;
	const char *from, *since, *snapshot, *image, *mode;
	const char *disks[16];
	size_t n_disks;
	uint64_t offset, random_len, seed;
	bool has_random, quiet;
	long wait_ms;
};

static int fail(const struct err *e)
{
	fprintf(stderr, "cairn-datastore: %s: %s\n", status_str(e->code), e->msg);
	return e->code == STATUS_TIMEOUT ? 3 : 1;
}

static int need(const char *v, const char *opt)
{
	if (v == NULL) {
		fprintf(stderr, "cairn-datastore: %s is required\n%s", opt, usage);
		return 0;
	}
	return 1;
}

static int parse_u64(const char *s, uint64_t *out, const char *opt)
{
	struct err e;

	if (datastore_size_parse(s, out, &e) != STATUS_OK) {
		fprintf(stderr, "cairn-datastore: %s: %s\n", opt, e.msg);
		return 0;
	}
	return 1;
}

static int load_vm(const struct args *a, struct platform_vm **vm, struct err *e)
{
	if (!need(a->vm, "--vm"))
		return 2;
	if (datastore_vm_load(a->vm, vm, e) != STATUS_OK)
		return fail(e);
	return 0;
}

static int cmd_create(const struct args *a)
{
	struct datastore_disk_spec specs[16];
	char *storage[16] = { 0 };
	struct datastore_vm_spec spec = { 0 };
	struct platform_vm *vm = NULL;
	struct err e;
	int rc = 0;

	if (!need(a->root, "--root") || !need(a->org, "--org") || !need(a->vdc, "--vdc") ||
	    !need(a->vapp, "--vapp") || !need(a->vm, "--vm") ||
	    !need(a->n_disks ? "" : NULL, "--disk"))
		return 2;
	for (size_t i = 0; i < a->n_disks; i++) {
		if (datastore_disk_spec_parse(a->disks[i], &specs[i], &storage[i], &e) !=
		    STATUS_OK) {
			rc = fail(&e);
			goto out;
		}
	}
	spec.root = a->root;
	spec.org = a->org;
	spec.vdc = a->vdc;
	spec.vapp = a->vapp;
	spec.name = a->vm;
	spec.guest_os = a->guest_os;
	spec.application_json = a->app;
	spec.disks = specs;
	spec.n_disks = a->n_disks;
	if (datastore_vm_create(&spec, &vm, &e) != STATUS_OK) {
		rc = fail(&e);
		goto out;
	}
	{
		char *s = platform_vm_to_json(vm);
		puts(s);
		free(s);
	}
out:
	platform_vm_free(vm);
	for (size_t i = 0; i < a->n_disks; i++)
		free(storage[i]);
	return rc;
}

static int cmd_list(const struct args *a)
{
	struct platform_inventory inv;
	struct err e;
	char *s;

	if (!need(a->root, "--root"))
		return 2;
	if (datastore_inventory(a->root, &inv, &e) != STATUS_OK)
		return fail(&e);
	s = platform_inventory_to_json(&inv);
	puts(s);
	free(s);
	platform_inventory_cleanup(&inv);
	return 0;
}

static int cmd_show(const struct args *a)
{
	struct platform_vm *vm;
	struct err e;
	char *s;
	int rc = load_vm(a, &vm, &e);

	if (rc)
		return rc;
	s = platform_vm_to_json(vm);
	puts(s);
	free(s);
	platform_vm_free(vm);
	return 0;
}

static int cmd_write(const struct args *a, const struct datastore_opts *o)
{
	struct platform_vm *vm;
	struct err e;
	enum status st;
	unsigned wait = a->wait_ms >= 0 ? (unsigned)a->wait_ms : o->write_wait_ms;
	int rc;

	if (!need(a->disk_name, "--disk"))
		return 2;
	if ((a->from == NULL) == !a->has_random) {
		fprintf(stderr, "cairn-datastore: write needs exactly one of --from, --random\n");
		return 2;
	}
	rc = load_vm(a, &vm, &e);
	if (rc)
		return rc;
	if (a->from)
		st = datastore_disk_write_file(vm, a->disk_name, a->offset, a->from, wait, &e);
	else
		st = datastore_disk_write_random(vm, a->disk_name, a->offset, a->random_len,
		                                 a->seed, wait, &e);
	platform_vm_free(vm);
	return st == STATUS_OK ? 0 : fail(&e);
}

static int cmd_snapshot(const struct args *a, const struct datastore_opts *o)
{
	struct platform_vm *vm;
	struct platform_snapshot *snap;
	enum datastore_snap_mode mode = o->snap_mode;
	struct err e;
	char *s;
	int rc;

	if (a->mode && datastore_snap_mode_parse(a->mode, &mode, &e) != STATUS_OK)
		return fail(&e);
	rc = load_vm(a, &vm, &e);
	if (rc)
		return rc;
	if (datastore_snapshot_create(vm, mode, &snap, &e) != STATUS_OK) {
		platform_vm_free(vm);
		return fail(&e);
	}
	s = platform_snapshot_to_json(snap);
	puts(s);
	free(s);
	platform_snapshot_free(snap);
	platform_vm_free(vm);
	return 0;
}

static int cmd_release(const struct args *a)
{
	struct platform_snapshot *snap;
	struct err e;
	enum status st;

	if (!need(a->vm, "--vm") || !need(a->snapshot, "--snapshot"))
		return 2;
	if (datastore_snapshot_load(a->vm, a->snapshot, &snap, &e) != STATUS_OK)
		return fail(&e);
	st = datastore_snapshot_release(snap, &e);
	platform_snapshot_free(snap);
	return st == STATUS_OK ? 0 : fail(&e);
}

static int cmd_changed(const struct args *a)
{
	struct platform_vm *vm;
	struct extent_list l;
	struct err e;
	enum status st;
	int rc;

	if (!need(a->disk_name, "--disk") || !need(a->since, "--since"))
		return 2;
	rc = load_vm(a, &vm, &e);
	if (rc)
		return rc;
	extent_list_init(&l);
	st = datastore_changed_extents(vm, a->disk_name, a->since, &l, &e);
	if (st == STATUS_OK) {
		for (size_t i = 0; i < l.n; i++)
			printf("%" PRIu64 " %" PRIu64 "\n", l.v[i].off, l.v[i].len);
		fprintf(stderr, "%zu extents, %" PRIu64 " bytes\n", l.n, extent_list_bytes(&l));
	}
	extent_list_cleanup(&l);
	platform_vm_free(vm);
	return st == STATUS_OK ? 0 : fail(&e);
}

static enum status print_row(void *arg, const struct ext4index_row *r, struct err *e)
{
	const bool *quiet = arg;

	if (!*quiet)
		printf("%s\t%" PRIu64 "\t%" PRId64 "\t%" PRIu32 "\t%s\n",
		       ext4index_type_str(r->type), r->size, r->mtime, r->ino, r->path);
	return STATUS_OK;
}

static int cmd_index(const struct args *a)
{
	struct ext4index_source src;
	struct ext4index_stats stats;
	struct platform_vm *vm = NULL;
	const char *path = a->image;
	struct err e;
	enum status st;
	bool quiet = a->quiet;
	int fd, rc;

	if (path == NULL) {
		const struct platform_disk *d;
		if (!need(a->disk_name, "--disk"))
			return 2;
		rc = load_vm(a, &vm, &e);
		if (rc)
			return rc;
		d = platform_vm_disk(vm, a->disk_name);
		if (d == NULL) {
			fprintf(stderr, "cairn-datastore: no disk %s\n", a->disk_name);
			platform_vm_free(vm);
			return 1;
		}
		path = d->path;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cairn-datastore: open %s: %s\n", path, strerror(errno));
		platform_vm_free(vm);
		return 1;
	}
	st = ext4index_source_fd(fd, &src, &e);
	if (st == STATUS_OK)
		st = ext4index_disk(&src, print_row, &quiet, &stats, &e);
	close(fd);
	platform_vm_free(vm);
	if (st != STATUS_OK)
		return fail(&e);
	fprintf(stderr,
	        "%u file systems, %" PRIu64 " files in %.3f s (%.0f files/s), %u skipped, "
	        "%u failed, %" PRIu64 " errors%s%s\n",
	        stats.filesystems, stats.files, stats.seconds, stats.files_per_second,
	        stats.skipped, stats.failed, stats.errors, stats.warning[0] ? ": " : "",
	        stats.warning);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "org", required_argument, NULL, 'o' },
		{ "vdc", required_argument, NULL, 'V' },
		{ "vapp", required_argument, NULL, 'a' },
		{ "vm", required_argument, NULL, 'm' },
		{ "disk", required_argument, NULL, 'd' },
		{ "guest-os", required_argument, NULL, 'g' },
		{ "application", required_argument, NULL, 'A' },
		{ "offset", required_argument, NULL, 'O' },
		{ "from", required_argument, NULL, 'f' },
		{ "random", required_argument, NULL, 'R' },
		{ "seed", required_argument, NULL, 's' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "mode", required_argument, NULL, 'M' },
		{ "snapshot", required_argument, NULL, 'S' },
		{ "since", required_argument, NULL, 'c' },
		{ "image", required_argument, NULL, 'i' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { .wait_ms = -1 };
	struct datastore_opts o;
	struct err e;
	const char *cmd;
	int c;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			a.root = optarg;
			break;
		case 'o':
			a.org = optarg;
			break;
		case 'V':
			a.vdc = optarg;
			break;
		case 'a':
			a.vapp = optarg;
			break;
		case 'm':
			a.vm = optarg;
			break;
		case 'd':
			/* create-vm: a spec; other commands: a disk name */
			if (a.n_disks < sizeof(a.disks) / sizeof(a.disks[0]))
				a.disks[a.n_disks++] = optarg;
			a.disk_name = optarg;
			break;
		case 'g':
			a.guest_os = optarg;
			break;
		case 'A':
			a.app = optarg;
			break;
		case 'O':
			if (!parse_u64(optarg, &a.offset, "--offset"))
				return 2;
			break;
		case 'f':
			a.from = optarg;
			break;
		case 'R':
			if (!parse_u64(optarg, &a.random_len, "--random"))
				return 2;
			a.has_random = true;
			break;
		case 's':
			if (!parse_u64(optarg, &a.seed, "--seed"))
				return 2;
			break;
		case 'w': {
			uint64_t v;
			if (!parse_u64(optarg, &v, "--wait-ms") || v > 86400000)
				return 2;
			a.wait_ms = (long)v;
			break;
		}
		case 'M':
			a.mode = optarg;
			break;
		case 'S':
			a.snapshot = optarg;
			break;
		case 'c':
			a.since = optarg;
			break;
		case 'i':
			a.image = optarg;
			break;
		case 'q':
			a.quiet = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "cairn-datastore: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	if (datastore_opts_from_env(&o, &e) != STATUS_OK)
		return fail(&e);
	if (strcmp(cmd, "create-vm") == 0)
		return cmd_create(&a);
	if (strcmp(cmd, "list") == 0)
		return cmd_list(&a);
	if (strcmp(cmd, "show") == 0)
		return cmd_show(&a);
	if (strcmp(cmd, "write") == 0)
		return cmd_write(&a, &o);
	if (strcmp(cmd, "snapshot") == 0)
		return cmd_snapshot(&a, &o);
	if (strcmp(cmd, "release") == 0)
		return cmd_release(&a);
	if (strcmp(cmd, "changed") == 0)
		return cmd_changed(&a);
	if (strcmp(cmd, "index") == 0)
		return cmd_index(&a);
	fprintf(stderr, "cairn-datastore: unknown command %s\n%s", cmd, usage);
	return 2;
}
