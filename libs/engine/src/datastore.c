/* datastore.c - the local datastore connector: inventory, VM creation, change tracking
 * (-ctk files), the guest write path, snapshots (reflink or lock) and the platform_ops
 * table. Layout and formats: docs/datastore.md. */
#include "engine/datastore.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <linux/fs.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "common/buf.h"
#include "common/xalloc.h"

extern char **environ;

/* ---- extents ---------------------------------------------------------------------------- */

void extent_list_init(struct extent_list *l)
{
	l->v = NULL;
	l->n = 0;
	l->cap = 0;
}

void extent_list_cleanup(struct extent_list *l)
{
	free(l->v);
	extent_list_init(l);
}

void extent_list_append(struct extent_list *l, uint64_t off, uint64_t len)
{
	if (len == 0)
		return;
	if (l->n > 0) {
		struct extent *last = &l->v[l->n - 1];
		if (last->off + last->len == off) {
			last->len += len;
			return;
		}
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n].off = off;
	l->v[l->n].len = len;
	l->n++;
}

uint64_t extent_list_bytes(const struct extent_list *l)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < l->n; i++)
		sum += l->v[i].len;
	return sum;
}

/* ---- small helpers ---------------------------------------------------------------------- */

static void uuid_format(const unsigned char b[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

/* A random (version 4) uuid. */
static enum status uuid_random(char out[37], struct err *e)
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return err_set(e, STATUS_INTERNAL, "RAND_bytes failed");
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	uuid_format(b, out);
	return STATUS_OK;
}

/* A stable name-based uuid (version 8, SHA-256) for levels without an id file. */
static void uuid_from_name(const char *name, char out[37])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "cairn-datastore:%s", name);
	SHA256((const unsigned char *)b.data, b.len, md);
	buf_cleanup(&b);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	uuid_format(md, out);
}

static void now_rfc3339(char out[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool name_is_valid(const char *s)
{
	if (s == NULL || s[0] == '\0' || s[0] == '.' || strlen(s) > 200)
		return false;
	for (const char *p = s; *p; p++) {
		if (*p == '/' || (unsigned char)*p < 0x20)
			return false;
	}
	return true;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static enum status write_file_atomic(const char *path, const char *data, struct err *e)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	size_t len = strlen(data);
	enum status st = STATUS_OK;
	int fd;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		st = err_set(e, STATUS_IO, "create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
		st = err_set(e, STATUS_IO, "write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		st = err_set(e, STATUS_IO, "rename %s: %s", path, strerror(errno));
		unlink(tmp);
	}
out:
	free(tmp);
	return st;
}

static enum status json_write_file(const char *path, json_t *j, struct err *e)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	enum status st;

	if (s == NULL)
		return err_set(e, STATUS_INTERNAL, "json_dumps failed for %s", path);
	st = write_file_atomic(path, s, e);
	free(s);
	return st;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- inventory objects ------------------------------------------------------------------ */

static void app_free(struct platform_app *app)
{
	if (app == NULL)
		return;
	free(app->type);
	free(app->host);
	free(app->user);
	for (size_t i = 0; i < app->n_databases; i++)
		free(app->databases[i]);
	free(app->databases);
	free(app);
}

void platform_vm_free(struct platform_vm *vm)
{
	if (vm == NULL)
		return;
	free(vm->id);
	free(vm->name);
	free(vm->guest_os);
	free(vm->org);
	free(vm->org_id);
	free(vm->vdc);
	free(vm->vdc_id);
	free(vm->vapp);
	free(vm->vapp_id);
	free(vm->locator);
	for (size_t i = 0; i < vm->n_disks; i++) {
		free(vm->disks[i].id);
		free(vm->disks[i].name);
		free(vm->disks[i].path);
	}
	free(vm->disks);
	app_free(vm->app);
	free(vm);
}

void platform_inventory_cleanup(struct platform_inventory *inv)
{
	for (size_t i = 0; i < inv->n_vms; i++)
		platform_vm_free(inv->vms[i]);
	free(inv->vms);
	inv->vms = NULL;
	inv->n_vms = 0;
}

const struct platform_disk *platform_vm_disk(const struct platform_vm *vm, const char *name)
{
	for (size_t i = 0; i < vm->n_disks; i++) {
		if (strcmp(vm->disks[i].name, name) == 0)
			return &vm->disks[i];
	}
	return NULL;
}

static json_t *level_json(const char *id, const char *name)
{
	return json_pack("{s:s?, s:s?}", "id", id, "name", name);
}

static json_t *vm_json(const struct platform_vm *vm, bool with_locator)
{
	json_t *j = json_object();
	json_t *disks = json_array();

	json_object_set_new(j, "id", json_string(vm->id));
	json_object_set_new(j, "name", json_string(vm->name));
	json_object_set_new(j, "guest_os", json_string(vm->guest_os));
	json_object_set_new(j, "org", level_json(vm->org_id, vm->org));
	json_object_set_new(j, "vdc", level_json(vm->vdc_id, vm->vdc));
	json_object_set_new(j, "vapp", level_json(vm->vapp_id, vm->vapp));
	for (size_t i = 0; i < vm->n_disks; i++) {
		json_array_append_new(disks, json_pack("{s:s, s:s, s:I}", "id", vm->disks[i].id,
		                                       "name", vm->disks[i].name, "size",
		                                       (json_int_t)vm->disks[i].size));
	}
	json_object_set_new(j, "disks", disks);
	if (vm->app) {
		json_t *dbs = json_array();
		for (size_t i = 0; i < vm->app->n_databases; i++)
			json_array_append_new(dbs, json_string(vm->app->databases[i]));
		json_object_set_new(j, "application",
		                    json_pack("{s:s, s:s?, s:i, s:s?, s:o}", "type", vm->app->type,
		                              "host", vm->app->host, "port", vm->app->port, "user",
		                              vm->app->user, "databases", dbs));
	}
	if (with_locator && vm->locator)
		json_object_set_new(j, "locator", json_string(vm->locator));
	return j;
}

static char *json_take_string(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(j);
	if (s == NULL)
		abort(); /* only on OOM */
	return s;
}

char *platform_vm_to_json(const struct platform_vm *vm)
{
	return json_take_string(vm_json(vm, true));
}

char *platform_inventory_to_json(const struct platform_inventory *inv)
{
	json_t *vms = json_array();

	for (size_t i = 0; i < inv->n_vms; i++)
		json_array_append_new(vms, vm_json(inv->vms[i], false));
	return json_take_string(json_pack("{s:o}", "vms", vms));
}

void platform_snapshot_free(struct platform_snapshot *snap)
{
	if (snap == NULL)
		return;
	free(snap->id);
	free(snap->vm_id);
	free(snap->locator);
	free(snap->mode);
	free(snap->created);
	for (size_t i = 0; i < snap->n_disks; i++) {
		free(snap->disks[i].name);
		free(snap->disks[i].path);
		free(snap->disks[i].change_id);
	}
	free(snap->disks);
	free(snap);
}

const struct platform_snapshot_disk *platform_snapshot_disk(const struct platform_snapshot *snap,
                                                            const char *name)
{
	for (size_t i = 0; i < snap->n_disks; i++) {
		if (strcmp(snap->disks[i].name, name) == 0)
			return &snap->disks[i];
	}
	return NULL;
}

static json_t *snapshot_json(const struct platform_snapshot *snap)
{
	json_t *disks = json_array();

	for (size_t i = 0; i < snap->n_disks; i++) {
		const struct platform_snapshot_disk *d = &snap->disks[i];
		json_array_append_new(disks, json_pack("{s:s, s:s, s:I, s:s}", "name", d->name,
		                                       "path", d->path, "size", (json_int_t)d->size,
		                                       "change_id", d->change_id));
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", snap->id, "vm_id", snap->vm_id,
	                 "locator", snap->locator, "mode", snap->mode, "created", snap->created,
	                 "disks", disks);
}

char *platform_snapshot_to_json(const struct platform_snapshot *snap)
{
	return json_take_string(snapshot_json(snap));
}

/* ---- loading VMs ------------------------------------------------------------------------ */

/* The id of an org/vdc/vapp directory: from <dir>/<kind>.json when present, else derived
 * from the path relative to the root so that it is stable. */
static char *level_id(const char *dir, const char *kind, const char *rel)
{
	char *path = xasprintf("%s/%s.json", dir, kind);
	json_t *j = json_load_file(path, 0, NULL);
	char *id = NULL;
	char buf[37];

	free(path);
	if (j && jstr(j, "id"))
		id = xstrdup(jstr(j, "id"));
	json_decref(j);
	if (id == NULL) {
		uuid_from_name(rel, buf);
		id = xstrdup(buf);
	}
	return id;
}

static char *path_dirname(const char *p)
{
	const char *slash = strrchr(p, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == p)
		return xstrdup("/");
	return xstrndup(p, (size_t)(slash - p));
}

static const char *path_basename(const char *p)
{
	const char *slash = strrchr(p, '/');
	return slash ? slash + 1 : p;
}

static enum status app_parse(json_t *ja, struct platform_app **out, const char *path, struct err *e)
{
	struct platform_app *app;
	json_t *dbs = json_object_get(ja, "databases");
	json_t *port = json_object_get(ja, "port");

	if (!json_is_object(ja) || jstr(ja, "type") == NULL)
		return err_set(e, STATUS_CORRUPT, "%s: application needs a \"type\"", path);
	if (dbs && !json_is_array(dbs))
		return err_set(e, STATUS_CORRUPT, "%s: application.databases is not an array",
		               path);
	app = xcalloc(1, sizeof(*app));
	app->type = xstrdup(jstr(ja, "type"));
	app->host = dup_or_null(jstr(ja, "host"));
	app->user = dup_or_null(jstr(ja, "user"));
	app->port = json_is_integer(port) ? (int)json_integer_value(port) : 5432;
	if (dbs && json_array_size(dbs) > 0) {
		app->databases = xcalloc(json_array_size(dbs), sizeof(char *));
		for (size_t i = 0; i < json_array_size(dbs); i++) {
			const char *s = json_string_value(json_array_get(dbs, i));
			if (s)
				app->databases[app->n_databases++] = xstrdup(s);
		}
	}
	*out = app;
	return STATUS_OK;
}

enum status datastore_vm_load(const char *vm_dir_in, struct platform_vm **out, struct err *e)
{
	char *vm_dir = realpath(vm_dir_in, NULL);
	char *path = NULL, *vapp_dir = NULL, *vdc_dir = NULL, *org_dir = NULL, *rel = NULL;
	struct platform_vm *vm = NULL;
	json_t *j = NULL, *disks;
	json_error_t jerr;
	enum status st = STATUS_OK;

	*out = NULL;
	if (vm_dir == NULL)
		return err_set(e, STATUS_NOT_FOUND, "VM directory %s: %s", vm_dir_in,
		               strerror(errno));
	path = xasprintf("%s/vm.json", vm_dir);
	if (access(path, F_OK) != 0) {
		st = err_set(e, STATUS_NOT_FOUND, "%s: no vm.json", vm_dir);
		goto out;
	}
	j = json_load_file(path, 0, &jerr);
	if (j == NULL) {
		st = err_set(e, STATUS_CORRUPT, "%s:%d: %s", path, jerr.line, jerr.text);
		goto out;
	}
	disks = json_object_get(j, "disks");
	if (!json_is_object(j) || jstr(j, "id") == NULL || jstr(j, "name") == NULL ||
	    !json_is_array(disks)) {
		st = err_set(e, STATUS_CORRUPT, "%s: needs id, name and a disks array", path);
		goto out;
	}
	vapp_dir = path_dirname(vm_dir);
	vdc_dir = path_dirname(vapp_dir);
	org_dir = path_dirname(vdc_dir);

	vm = xcalloc(1, sizeof(*vm));
	vm->id = xstrdup(jstr(j, "id"));
	vm->name = xstrdup(jstr(j, "name"));
	vm->guest_os = xstrdup(jstr(j, "guest_os") ? jstr(j, "guest_os") : "other_linux_64");
	vm->org = xstrdup(path_basename(org_dir));
	vm->vdc = xstrdup(path_basename(vdc_dir));
	vm->vapp = xstrdup(path_basename(vapp_dir));
	rel = xasprintf("%s", vm->org);
	vm->org_id = level_id(org_dir, "org", rel);
	free(rel);
	rel = xasprintf("%s/%s", vm->org, vm->vdc);
	vm->vdc_id = level_id(vdc_dir, "vdc", rel);
	free(rel);
	rel = xasprintf("%s/%s/%s", vm->org, vm->vdc, vm->vapp);
	vm->vapp_id = level_id(vapp_dir, "vapp", rel);
	vm->locator = xstrdup(vm_dir);

	vm->disks = xcalloc(json_array_size(disks) + 1, sizeof(*vm->disks));
	for (size_t i = 0; i < json_array_size(disks); i++) {
		json_t *d = json_array_get(disks, i);
		struct platform_disk *pd = &vm->disks[vm->n_disks];
		const char *file = jstr(d, "file");
		json_t *size = json_object_get(d, "size");
		struct stat sb;

		if (jstr(d, "name") == NULL || file == NULL || !name_is_valid(file)) {
			st = err_set(e, STATUS_CORRUPT,
			             "%s: disk %zu needs a name and a file inside the VM directory",
			             path, i);
			goto out;
		}
		pd->name = xstrdup(jstr(d, "name"));
		pd->path = xasprintf("%s/%s", vm_dir, file);
		vm->n_disks++;
		if (jstr(d, "id")) {
			pd->id = xstrdup(jstr(d, "id"));
		} else {
			char buf[37];
			char *n = xasprintf("%s/%s", vm->id, pd->name);
			uuid_from_name(n, buf);
			free(n);
			pd->id = xstrdup(buf);
		}
		/* The image is the truth for the size; vm.json's size is informative. */
		if (stat(pd->path, &sb) == 0)
			pd->size = (uint64_t)sb.st_size;
		else if (json_is_integer(size))
			pd->size = (uint64_t)json_integer_value(size);
	}
	if (json_object_get(j, "application") && !json_is_null(json_object_get(j, "application"))) {
		st = app_parse(json_object_get(j, "application"), &vm->app, path, e);
		if (st != STATUS_OK)
			goto out;
	}
	*out = vm;
	vm = NULL;
out:
	platform_vm_free(vm);
	json_decref(j);
	free(rel);
	free(org_dir);
	free(vdc_dir);
	free(vapp_dir);
	free(path);
	free(vm_dir);
	return st;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the subdirectories of dir that do not start with '.'. */
static char **list_subdirs(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		struct stat sb;
		char *p;

		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 8;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[(*n)++] = xstrdup(de->d_name);
		}
		free(p);
	}
	closedir(d);
	if (*n > 1)
		qsort(v, *n, sizeof(*v), cmp_str);
	return v;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Walk <dir> down to depth levels below it, calling visit on each directory at that depth. */
typedef enum status (*walk_fn)(const char *dir, void *arg, struct err *e);

static enum status walk_depth(const char *dir, int depth, walk_fn fn, void *arg, struct err *e)
{
	size_t n;
	char **names;
	enum status st = STATUS_OK;

	if (depth == 0)
		return fn(dir, arg, e);
	names = list_subdirs(dir, &n);
	for (size_t i = 0; i < n && st == STATUS_OK; i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		st = walk_depth(p, depth - 1, fn, arg, e);
		free(p);
	}
	free_names(names, n);
	return st;
}

struct inv_walk {
	struct platform_inventory *inv;
	size_t cap;
	const char *find_id; /* datastore_vm_find */
	struct platform_vm *found;
};

static enum status inv_visit(const char *dir, void *arg, struct err *e)
{
	struct inv_walk *w = arg;
	struct platform_vm *vm = NULL;
	enum status st;
	char *path = xasprintf("%s/vm.json", dir);
	bool has = access(path, F_OK) == 0;

	free(path);
	if (!has)
		return STATUS_OK;
	st = datastore_vm_load(dir, &vm, e);
	if (st != STATUS_OK || vm == NULL)
		return st;
	if (w->find_id) {
		if (strcmp(vm->id, w->find_id) == 0 && w->found == NULL)
			w->found = vm;
		else
			platform_vm_free(vm);
		return STATUS_OK;
	}
	if (w->inv->n_vms == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 16;
		w->inv->vms = xrealloc(w->inv->vms, w->cap * sizeof(struct platform_vm *));
	}
	w->inv->vms[w->inv->n_vms++] = vm;
	return STATUS_OK;
}

enum status datastore_inventory(const char *root, struct platform_inventory *inv, struct err *e)
{
	struct inv_walk w = { .inv = inv };
	struct stat sb;
	enum status st;

	inv->vms = NULL;
	inv->n_vms = 0;
	if (stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return err_set(e, STATUS_NOT_FOUND, "datastore root %s is not a directory", root);
	st = walk_depth(root, 4, inv_visit, &w, e);
	if (st != STATUS_OK)
		platform_inventory_cleanup(inv);
	return st;
}

enum status datastore_vm_find(const char *root, const char *vm_id, struct platform_vm **vm,
                              struct err *e)
{
	struct inv_walk w = { .find_id = vm_id };
	enum status st;

	*vm = NULL;
	st = walk_depth(root, 4, inv_visit, &w, e);
	if (st != STATUS_OK) {
		platform_vm_free(w.found);
		return st;
	}
	if (w.found == NULL) {
		err_set(e, STATUS_NOT_FOUND, "no VM with id %s under %s", vm_id, root);
		return STATUS_NOT_FOUND;
	}
	*vm = w.found;
	return STATUS_OK;
}

/* ---- change tracking (-ctk) ------------------------------------------------------------- */

/* Header of a -ctk file (little-endian), followed by one u32 epoch per block:
 *   0 magic "CAIRNCTK" | 8 u32 version (1) | 12 u32 block size | 16 u64 disk size
 *   24 u64 current epoch | 32 char[36] uuid | 68..127 zero */
static const unsigned char ctk_magic[8] = { 'C', 'A', 'I', 'R', 'N', 'C', 'T', 'K' };
#define CTK_HDR 128u

struct ctk {
	int fd;
	uint32_t block;
	uint64_t disk_size;
	uint64_t epoch;
	char uuid[37];
	uint64_t nblocks;
};

static char *ctk_path(const char *disk_path)
{
	return xasprintf("%s.ctk", disk_path);
}

static enum status ctk_create(const char *disk_path, uint64_t disk_size, struct err *e)
{
	char *path = ctk_path(disk_path);
	char *tmp = xasprintf("%s.tmp", path);
	unsigned char hdr[CTK_HDR];
	uint64_t nblocks = (disk_size + DATASTORE_CTK_BLOCK - 1) / DATASTORE_CTK_BLOCK;
	char uuid[37];
	uint64_t v;
	uint32_t v32;
	enum status st;
	int fd = -1;

	st = uuid_random(uuid, e);
	if (st != STATUS_OK)
		goto out;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, ctk_magic, sizeof(ctk_magic));
	v32 = htole32(1);
	memcpy(hdr + 8, &v32, 4);
	v32 = htole32(DATASTORE_CTK_BLOCK);
	memcpy(hdr + 12, &v32, 4);
	v = htole64(disk_size);
	memcpy(hdr + 16, &v, 8);
	v = htole64(1);
	memcpy(hdr + 24, &v, 8);
	memcpy(hdr + 32, uuid, 36);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		st = err_set(e, STATUS_IO, "create %s: %s", tmp, strerror(errno));
		goto out;
	}
	/* The marks start at 0 (sparse): nothing changed since creation. */
	if (write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
	    ftruncate(fd, (off_t)(CTK_HDR + nblocks * 4)) != 0 || fsync(fd) != 0) {
		st = err_set(e, STATUS_IO, "write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, path) != 0)
		st = err_set(e, STATUS_IO, "rename %s: %s", path, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (st != STATUS_OK)
		unlink(tmp);
	free(tmp);
	free(path);
	return st;
}

/* Open the -ctk of a disk and take its flock (exclusive). */
static enum status ctk_open_locked(const char *disk_path, struct ctk *c, struct err *e)
{
	char *path = ctk_path(disk_path);
	unsigned char hdr[CTK_HDR];
	struct stat sb;
	uint32_t v32;
	uint64_t v;
	enum status st = STATUS_OK;

	c->fd = open(path, O_RDWR | O_CLOEXEC);
	if (c->fd < 0) {
		st = err_set(e, errno == ENOENT ? STATUS_NOT_FOUND : STATUS_IO, "open %s: %s", path,
		             strerror(errno));
		goto out;
	}
	if (flock(c->fd, LOCK_EX) != 0) {
		st = err_set(e, STATUS_IO, "flock %s: %s", path, strerror(errno));
		goto out_close;
	}
	if (pread(c->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    memcmp(hdr, ctk_magic, sizeof(ctk_magic)) != 0 || fstat(c->fd, &sb) != 0) {
		st = err_set(e, STATUS_CORRUPT, "%s: not a change-tracking file", path);
		goto out_close;
	}
	memcpy(&v32, hdr + 8, 4);
	if (le32toh(v32) != 1) {
		st = err_set(e, STATUS_CORRUPT, "%s: version %u unsupported", path, le32toh(v32));
		goto out_close;
	}
	memcpy(&v32, hdr + 12, 4);
	c->block = le32toh(v32);
	memcpy(&v, hdr + 16, 8);
	c->disk_size = le64toh(v);
	memcpy(&v, hdr + 24, 8);
	c->epoch = le64toh(v);
	memcpy(c->uuid, hdr + 32, 36);
	c->uuid[36] = '\0';
	if (c->block == 0 || c->block % 512 != 0 || c->epoch == 0 || c->epoch > UINT32_MAX) {
		st = err_set(e, STATUS_CORRUPT, "%s: bad header", path);
		goto out_close;
	}
	c->nblocks = (c->disk_size + c->block - 1) / c->block;
	if ((uint64_t)sb.st_size < CTK_HDR + c->nblocks * 4) {
		st = err_set(e, STATUS_CORRUPT, "%s: truncated", path);
		goto out_close;
	}
	goto out;
out_close:
	close(c->fd);
	c->fd = -1;
out:
	free(path);
	return st;
}

static void ctk_close(struct ctk *c)
{
	if (c->fd >= 0)
		close(c->fd); /* drops the flock */
	c->fd = -1;
}

static enum status ctk_mark(struct ctk *c, uint64_t off, uint64_t len, struct err *e)
{
	uint64_t b0 = off / c->block, b1 = (off + len - 1) / c->block;
	uint32_t marks[1024];
	uint32_t m = htole32((uint32_t)c->epoch);

	for (size_t i = 0; i < 1024; i++)
		marks[i] = m;
	for (uint64_t b = b0; b <= b1;) {
		uint64_t n = b1 - b + 1 < 1024 ? b1 - b + 1 : 1024;
		ssize_t w = pwrite(c->fd, marks, n * 4, (off_t)(CTK_HDR + b * 4));
		if (w != (ssize_t)(n * 4))
			return err_set(e, STATUS_IO, "write -ctk: %s",
			               w < 0 ? strerror(errno) : "short write");
		b += n;
	}
	return STATUS_OK;
}

static enum status ctk_bump(struct ctk *c, struct err *e)
{
	uint64_t v = htole64(c->epoch + 1);

	if (pwrite(c->fd, &v, 8, 24) != 8 || fdatasync(c->fd) != 0)
		return err_set(e, STATUS_IO, "write -ctk epoch: %s", strerror(errno));
	c->epoch++;
	return STATUS_OK;
}

static enum status change_id_parse(const char *s, char uuid[37], uint64_t *epoch, struct err *e)
{
	const char *slash = strchr(s, '/');
	char *end;
	unsigned long long v;

	if (slash == NULL || slash - s != 36)
		return err_set(e, STATUS_INVALID, "change id \"%s\" is not <uuid>/<epoch>", s);
	memcpy(uuid, s, 36);
	uuid[36] = '\0';
	errno = 0;
	v = strtoull(slash + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == slash + 1)
		return err_set(e, STATUS_INVALID, "change id \"%s\": bad epoch", s);
	*epoch = v;
	return STATUS_OK;
}

static enum status disk_lookup(const struct platform_vm *vm, const char *disk,
                               const struct platform_disk **d, struct err *e)
{
	*d = platform_vm_disk(vm, disk);
	if (*d == NULL)
		return err_set(e, STATUS_NOT_FOUND, "VM %s has no disk %s", vm->name, disk);
	if ((*d)->path == NULL)
		return err_set(e, STATUS_INVALID, "disk %s has no local path", disk);
	return STATUS_OK;
}

enum status datastore_changed_extents(const struct platform_vm *vm, const char *disk,
                                      const char *since, struct extent_list *out, struct err *e)
{
	const struct platform_disk *d;
	struct ctk c = { .fd = -1 };
	char uuid[37];
	uint64_t since_epoch = 0;
	uint32_t marks[4096];
	enum status st;

	st = disk_lookup(vm, disk, &d, e);
	if (st != STATUS_OK)
		return st;
	if (strcmp(since, "*") != 0) {
		st = change_id_parse(since, uuid, &since_epoch, e);
		if (st != STATUS_OK)
			return st;
	}
	st = ctk_open_locked(d->path, &c, e);
	if (st != STATUS_OK)
		return st;
	if (strcmp(since, "*") == 0) {
		extent_list_append(out, 0, c.disk_size);
		goto out;
	}
	if (strcmp(uuid, c.uuid) != 0) {
		st = err_set(e, STATUS_CONFLICT,
		             "change id %s belongs to another change-tracking file (now %s): read "
		             "the whole disk",
		             since, c.uuid);
		goto out;
	}
	if (since_epoch >= c.epoch) {
		st = err_set(e, STATUS_CONFLICT, "change id %s is newer than the -ctk (epoch %llu)",
		             since, (unsigned long long)c.epoch);
		goto out;
	}
	for (uint64_t b = 0; b < c.nblocks;) {
		uint64_t n = c.nblocks - b < 4096 ? c.nblocks - b : 4096;
		ssize_t r = pread(c.fd, marks, n * 4, (off_t)(CTK_HDR + b * 4));
		if (r != (ssize_t)(n * 4)) {
			st = err_set(e, STATUS_IO, "read -ctk of %s: %s", disk,
			             r < 0 ? strerror(errno) : "short read");
			goto out;
		}
		for (uint64_t i = 0; i < n; i++) {
			uint64_t off = (b + i) * c.block;
			uint64_t len = c.block;
			if (le32toh(marks[i]) <= since_epoch)
				continue;
			if (off + len > c.disk_size)
				len = c.disk_size - off;
			extent_list_append(out, off, len);
		}
		b += n;
	}
out:
	ctk_close(&c);
	return st;
}

/* ---- the write path --------------------------------------------------------------------- */

static char *snaplock_path(const char *disk_path)
{
	return xasprintf("%s.snaplock", disk_path);
}

/* The snapshot id recorded in <disk>.snaplock, or NULL when no lock exists. */
static char *snaplock_holder(const char *disk_path)
{
	char *p = snaplock_path(disk_path);
	json_t *j;
	char *id = NULL;

	if (access(p, F_OK) != 0) {
		free(p);
		return NULL;
	}
	j = json_load_file(p, 0, NULL);
	id = xstrdup(j && jstr(j, "snapshot") ? jstr(j, "snapshot") : "(unreadable lock record)");
	json_decref(j);
	free(p);
	return id;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

enum status datastore_disk_write(const struct platform_vm *vm, const char *disk, uint64_t off,
                                 const void *buf, size_t len, unsigned wait_ms, struct err *e)
{
	const struct platform_disk *d;
	struct ctk c = { .fd = -1 };
	uint64_t deadline = mono_ms() + wait_ms;
	const char *p = buf;
	size_t done = 0;
	enum status st;
	int fd;

	st = disk_lookup(vm, disk, &d, e);
	if (st != STATUS_OK)
		return st;
	if (len == 0)
		return STATUS_OK;
	fd = open(d->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, STATUS_IO, "open %s: %s", d->path, strerror(errno));
	for (;;) {
		char *holder;

		st = ctk_open_locked(d->path, &c, e);
		if (st != STATUS_OK)
			goto out;
		holder = snaplock_holder(d->path);
		if (holder == NULL)
			break;
		ctk_close(&c);
		if (mono_ms() >= deadline) {
			st = err_set(e, STATUS_TIMEOUT,
			             "disk %s of VM %s is held by snapshot %s (lock mode); the "
			             "write waited %u ms",
			             disk, vm->name, holder, wait_ms);
			free(holder);
			goto out;
		}
		free(holder);
		nanosleep(&(struct timespec){ .tv_nsec = 20L * 1000 * 1000 }, NULL);
	}
	if (off > c.disk_size || len > c.disk_size - off) {
		st = err_set(e, STATUS_INVALID,
		             "write [%llu, +%zu) past the end of disk %s (%llu bytes)",
		             (unsigned long long)off, len, disk, (unsigned long long)c.disk_size);
		goto out;
	}
	while (done < len) {
		ssize_t w = pwrite(fd, p + done, len - done, (off_t)(off + done));
		if (w <= 0) {
			st = err_set(e, STATUS_IO, "write %s: %s", d->path,
			             w < 0 ? strerror(errno) : "no progress");
			goto out;
		}
		done += (size_t)w;
	}
	st = ctk_mark(&c, off, len, e);
out:
	ctk_close(&c);
	close(fd);
	return st;
}

/* ---- creating VMs ----------------------------------------------------------------------- */

static enum status mkdir_p1(const char *path, struct err *e)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return err_set(e, STATUS_IO, "mkdir %s: %s", path, strerror(errno));
	return STATUS_OK;
}

static enum status level_ensure(const char *dir, const char *kind, const char *name, struct err *e)
{
	char *path = xasprintf("%s/%s.json", dir, kind);
	enum status st = STATUS_OK;
	char id[37];

	if (access(path, F_OK) != 0) {
		st = uuid_random(id, e);
		if (st == STATUS_OK) {
			json_t *j = json_pack("{s:s, s:s}", "id", id, "name", name);
			st = json_write_file(path, j, e);
			json_decref(j);
		}
	}
	free(path);
	return st;
}

/* Run argv (argv[0] looked up in PATH, then /usr/sbin and /sbin), stdout to /dev/null and
 * stderr captured into the error message. */
static enum status run_tool(char *const argv[], struct err *e)
{
	static const char *const dirs[] = { NULL, "/usr/sbin", "/sbin" };
	posix_spawn_file_actions_t fa;
	char msg[512] = "";
	int pipefd[2];
	pid_t pid = -1;
	int status = 0, rc = ENOENT;
	ssize_t n;
	size_t got = 0;

	if (pipe(pipefd) != 0)
		return err_set(e, STATUS_IO, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && rc == ENOENT; i++) {
		if (dirs[i] == NULL) {
			rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
		} else {
			char *p = xasprintf("%s/%s", dirs[i], argv[0]);
			rc = posix_spawn(&pid, p, &fa, NULL, argv, environ);
			free(p);
		}
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		return err_set(e, STATUS_UNAVAILABLE, "cannot run %s: %s", argv[0], strerror(rc));
	}
	while ((n = read(pipefd[0], msg + got, sizeof(msg) - 1 - got)) > 0)
		got += (size_t)n;
	msg[got] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		for (char *q = msg; *q; q++) {
			if (*q == '\n')
				*q = ' ';
		}
		return err_set(e, STATUS_IO, "%s failed (status %d): %s", argv[0], status, msg);
	}
	return STATUS_OK;
}

static enum status copy_image(const char *from, const char *to, uint64_t *size, struct err *e)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1;
	struct stat sb;
	enum status st = STATUS_OK;
	char *buf = NULL;

	if (in < 0)
		return err_set(e, STATUS_NOT_FOUND, "open %s: %s", from, strerror(errno));
	if (fstat(in, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		st = err_set(e, STATUS_INVALID, "%s is not a regular file", from);
		goto out;
	}
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		st = err_set(e, STATUS_IO, "create %s: %s", to, strerror(errno));
		goto out;
	}
	/* Try a reflink first, then copy block by block keeping holes sparse. */
	if (ioctl(out, FICLONE, in) != 0) {
		size_t bs = 1u << 20;
		off_t off = 0;
		buf = xmalloc(bs);
		for (;;) {
			ssize_t r = pread(in, buf, bs, off);
			bool zero = true;
			if (r < 0) {
				st = err_set(e, STATUS_IO, "read %s: %s", from, strerror(errno));
				goto out;
			}
			if (r == 0)
				break;
			for (ssize_t i = 0; i < r && zero; i++)
				zero = buf[i] == 0;
			if (!zero && pwrite(out, buf, (size_t)r, off) != r) {
				st = err_set(e, STATUS_IO, "write %s: %s", to, strerror(errno));
				goto out;
			}
			off += r;
		}
		if (ftruncate(out, sb.st_size) != 0) {
			st = err_set(e, STATUS_IO, "truncate %s: %s", to, strerror(errno));
			goto out;
		}
	}
	*size = (uint64_t)sb.st_size;
out:
	free(buf);
	if (out >= 0)
		close(out);
	close(in);
	return st;
}

static enum status disk_make(const char *vm_dir, const struct datastore_disk_spec *ds,
                             const char *file, uint64_t *size, struct err *e)
{
	char *path = xasprintf("%s/%s", vm_dir, file);
	enum status st = STATUS_OK;
	int fd;

	if (ds->import_from) {
		st = copy_image(ds->import_from, path, size, e);
		goto out;
	}
	if (ds->size == 0 || ds->size % 512 != 0) {
		st = err_set(e, STATUS_INVALID, "disk %s: size must be a positive multiple of 512",
		             ds->name);
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		st = err_set(e, STATUS_IO, "create %s: %s", path, strerror(errno));
		goto out;
	}
	if (ftruncate(fd, (off_t)ds->size) != 0) {
		st = err_set(e, STATUS_IO, "truncate %s: %s", path, strerror(errno));
		close(fd);
		goto out;
	}
	close(fd);
	*size = ds->size;
	if (!ds->raw) {
		char *argv[12];
		int a = 0;
		argv[a++] = (char *)"mke2fs";
		argv[a++] = (char *)"-q";
		argv[a++] = (char *)"-F";
		argv[a++] = (char *)"-t";
		argv[a++] = (char *)"ext4";
		if (ds->from_dir) {
			argv[a++] = (char *)"-d";
			argv[a++] = (char *)ds->from_dir;
		}
		argv[a++] = path;
		argv[a] = NULL;
		st = run_tool(argv, e);
	}
out:
	free(path);
	return st;
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (d == NULL) {
		unlink(path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char *p;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", path, de->d_name);
		rm_rf(p);
		free(p);
	}
	closedir(d);
	rmdir(path);
}

enum status datastore_vm_create(const struct datastore_vm_spec *spec, struct platform_vm **vm,
                                struct err *e)
{
	char *org_dir = NULL, *vdc_dir = NULL, *vapp_dir = NULL, *vm_dir = NULL;
	json_t *j = NULL, *disks = NULL;
	bool created = false;
	enum status st;
	char id[37];

	if (vm)
		*vm = NULL;
	if (!name_is_valid(spec->org) || !name_is_valid(spec->vdc) || !name_is_valid(spec->vapp) ||
	    !name_is_valid(spec->name))
		return err_set(e, STATUS_INVALID,
		               "org, vdc, vapp and vm names must be non-empty, without '/', and "
		               "not start with '.'");
	if (spec->n_disks == 0)
		return err_set(e, STATUS_INVALID, "a VM needs at least one disk");
	for (size_t i = 0; i < spec->n_disks; i++) {
		if (!name_is_valid(spec->disks[i].name))
			return err_set(e, STATUS_INVALID, "bad disk name");
		for (size_t k = 0; k < i; k++) {
			if (strcmp(spec->disks[i].name, spec->disks[k].name) == 0)
				return err_set(e, STATUS_INVALID, "disk %s named twice",
				               spec->disks[i].name);
		}
	}
	st = mkdir_p1(spec->root, e);
	if (st != STATUS_OK)
		return st;
	org_dir = xasprintf("%s/%s", spec->root, spec->org);
	vdc_dir = xasprintf("%s/%s", org_dir, spec->vdc);
	vapp_dir = xasprintf("%s/%s", vdc_dir, spec->vapp);
	vm_dir = xasprintf("%s/%s", vapp_dir, spec->name);
	st = mkdir_p1(org_dir, e);
	if (st == STATUS_OK)
		st = level_ensure(org_dir, "org", spec->org, e);
	if (st == STATUS_OK)
		st = mkdir_p1(vdc_dir, e);
	if (st == STATUS_OK)
		st = level_ensure(vdc_dir, "vdc", spec->vdc, e);
	if (st == STATUS_OK)
		st = mkdir_p1(vapp_dir, e);
	if (st == STATUS_OK)
		st = level_ensure(vapp_dir, "vapp", spec->vapp, e);
	if (st != STATUS_OK)
		goto out;
	if (mkdir(vm_dir, 0755) != 0) {
		st = err_set(e, errno == EEXIST ? STATUS_CONFLICT : STATUS_IO, "mkdir %s: %s",
		             vm_dir, strerror(errno));
		goto out;
	}
	created = true;

	st = uuid_random(id, e);
	if (st != STATUS_OK)
		goto out;
	j = json_pack("{s:i, s:s, s:s, s:s}", "schema", 1, "id", id, "name", spec->name, "guest_os",
	              spec->guest_os ? spec->guest_os : "other_linux_64");
	disks = json_array();
	for (size_t i = 0; i < spec->n_disks; i++) {
		const struct datastore_disk_spec *ds = &spec->disks[i];
		char *file = xasprintf("%s.img", ds->name);
		char *path = xasprintf("%s/%s", vm_dir, file);
		uint64_t size = 0;
		char did[37];

		st = disk_make(vm_dir, ds, file, &size, e);
		if (st == STATUS_OK)
			st = ctk_create(path, size, e);
		if (st == STATUS_OK)
			st = uuid_random(did, e);
		if (st == STATUS_OK)
			json_array_append_new(disks, json_pack("{s:s, s:s, s:s, s:I}", "id", did,
			                                       "name", ds->name, "file", file,
			                                       "size", (json_int_t)size));
		free(path);
		free(file);
		if (st != STATUS_OK)
			goto out;
	}
	json_object_set(j, "disks", disks);
	if (spec->application_json) {
		json_error_t jerr;
		json_t *app = json_loads(spec->application_json, 0, &jerr);
		if (!json_is_object(app) || jstr(app, "type") == NULL) {
			json_decref(app);
			st = err_set(e, STATUS_INVALID,
			             "application must be a JSON object with a \"type\"");
			goto out;
		}
		json_object_set_new(j, "application", app);
	}
	{
		char *path = xasprintf("%s/vm.json", vm_dir);
		st = json_write_file(path, j, e);
		free(path);
	}
	if (st == STATUS_OK && vm)
		st = datastore_vm_load(vm_dir, vm, e);
out:
	if (st != STATUS_OK && created)
		rm_rf(vm_dir);
	json_decref(disks);
	json_decref(j);
	free(vm_dir);
	free(vapp_dir);
	free(vdc_dir);
	free(org_dir);
	return st;
}

/* ---- snapshots -------------------------------------------------------------------------- */

static char *snap_dir(const char *vm_dir)
{
	return xasprintf("%s/.snapshots", vm_dir);
}

static enum status snapshot_save(const struct platform_snapshot *snap, struct err *e)
{
	char *path = xasprintf("%s/.snapshots/%s.json", snap->locator, snap->id);
	json_t *j = snapshot_json(snap);
	enum status st = json_write_file(path, j, e);

	json_decref(j);
	free(path);
	return st;
}

static void snaplock_remove(const char *disk_path, const char *snap_id)
{
	char *holder = snaplock_holder(disk_path);

	if (holder && strcmp(holder, snap_id) == 0) {
		char *p = snaplock_path(disk_path);
		unlink(p);
		free(p);
	}
	free(holder);
}

static bool errno_no_reflink(int err)
{
	return err == EOPNOTSUPP || err == ENOTTY || err == EINVAL || err == EXDEV ||
	       err == ENOSYS || err == EPERM;
}

enum status datastore_snapshot_create(const struct platform_vm *vm, enum datastore_snap_mode mode,
                                      struct platform_snapshot **out, struct err *e)
{
	struct platform_snapshot *snap = xcalloc(1, sizeof(*snap));
	struct ctk *c = xcalloc(vm->n_disks + 1, sizeof(*c));
	char *sdir = snap_dir(vm->locator), *cdir = NULL;
	bool reflink = mode != DATASTORE_SNAP_LOCK;
	size_t n_locked = 0, n_done = 0;
	enum status st;
	char id[37], ts[32];

	*out = NULL;
	for (size_t i = 0; i <= vm->n_disks; i++)
		c[i].fd = -1;
	st = uuid_random(id, e);
	if (st != STATUS_OK)
		goto out;
	now_rfc3339(ts);
	snap->id = xstrdup(id);
	snap->vm_id = xstrdup(vm->id);
	snap->locator = xstrdup(vm->locator);
	snap->created = xstrdup(ts);
	snap->disks = xcalloc(vm->n_disks + 1, sizeof(*snap->disks));
	st = mkdir_p1(sdir, e);
	if (st != STATUS_OK)
		goto out;
	cdir = xasprintf("%s/%s", sdir, id);
	if (reflink) {
		st = mkdir_p1(cdir, e);
		if (st != STATUS_OK)
			goto out;
	}

	/* Freeze: every disk's -ctk lock, so no guest write lands while we cut. */
	for (size_t i = 0; i < vm->n_disks; i++) {
		st = ctk_open_locked(vm->disks[i].path, &c[i], e);
		if (st == STATUS_NOT_FOUND) {
			/* A disk added by hand: start tracking it now. */
			st = ctk_create(vm->disks[i].path, vm->disks[i].size, e);
			if (st == STATUS_OK)
				st = ctk_open_locked(vm->disks[i].path, &c[i], e);
		}
		if (st != STATUS_OK)
			goto out_unlock;
		n_locked++;
	}
	for (size_t i = 0; i < vm->n_disks; i++) {
		char *holder = snaplock_holder(vm->disks[i].path);
		if (holder) {
			st = err_set(e, STATUS_CONFLICT, "disk %s is already held by snapshot %s",
			             vm->disks[i].name, holder);
			free(holder);
			goto out_unlock;
		}
	}
	for (size_t i = 0; i < vm->n_disks; i++) {
		const struct platform_disk *d = &vm->disks[i];
		struct platform_snapshot_disk *sd = &snap->disks[i];

		sd->name = xstrdup(d->name);
		sd->size = c[i].disk_size;
		snap->n_disks++;
		if (reflink) {
			char *clone = xasprintf("%s/%s", cdir, path_basename(d->path));
			int in = open(d->path, O_RDONLY | O_CLOEXEC);
			int o = open(clone, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
			int rc = (in < 0 || o < 0) ? -1 : ioctl(o, FICLONE, in);
			int saved = errno;
			if (in >= 0)
				close(in);
			if (o >= 0)
				close(o);
			sd->path = clone;
			if (rc != 0) {
				unlink(clone);
				if (mode == DATASTORE_SNAP_AUTO && i == 0 &&
				    errno_no_reflink(saved)) {
					/* No reflink here: the whole snapshot uses locks. */
					reflink = false;
					free(sd->path);
					sd->path = NULL;
					rmdir(cdir);
				} else {
					st = err_set(e,
					             mode == DATASTORE_SNAP_REFLINK &&
					                             errno_no_reflink(saved)
					                     ? STATUS_UNAVAILABLE
					                     : STATUS_IO,
					             "reflink clone of %s: %s", d->path,
					             strerror(saved));
					goto out_undo;
				}
			}
		}
		if (!reflink) {
			char *lp = snaplock_path(d->path);
			json_t *lj = json_pack("{s:s, s:s, s:i}", "snapshot", id, "created", ts,
			                       "pid", (int)getpid());
			int fd = open(lp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
			char *txt = json_dumps(lj, JSON_COMPACT);
			bool ok = fd >= 0 && txt &&
			          write(fd, txt, strlen(txt)) == (ssize_t)strlen(txt);
			if (fd >= 0)
				close(fd);
			free(txt);
			json_decref(lj);
			free(lp);
			if (!ok) {
				st = err_set(e, STATUS_IO, "create lock record for %s: %s", d->name,
				             strerror(errno));
				goto out_undo;
			}
			free(sd->path);
			sd->path = xstrdup(d->path);
		}
		n_done++;
	}
	snap->mode = xstrdup(reflink ? "reflink" : "lock");
	for (size_t i = 0; i < vm->n_disks; i++) {
		snap->disks[i].change_id =
		        xasprintf("%s/%llu", c[i].uuid, (unsigned long long)c[i].epoch);
		st = ctk_bump(&c[i], e);
		if (st != STATUS_OK)
			goto out_undo;
	}
	st = snapshot_save(snap, e);
	if (st != STATUS_OK)
		goto out_undo;
	*out = snap;
	snap = NULL;
	goto out_unlock;
out_undo:
	for (size_t i = 0; i < n_done; i++) {
		if (reflink && snap->disks[i].path)
			unlink(snap->disks[i].path);
		else
			snaplock_remove(vm->disks[i].path, id);
	}
	if (cdir)
		rmdir(cdir);
out_unlock:
	for (size_t i = 0; i < n_locked; i++)
		ctk_close(&c[i]);
out:
	free(c);
	free(cdir);
	free(sdir);
	platform_snapshot_free(snap);
	return st;
}

enum status datastore_snapshot_load(const char *vm_dir, const char *snap_id,
                                    struct platform_snapshot **out, struct err *e)
{
	char *path;
	json_t *j, *disks;
	json_error_t jerr;
	struct platform_snapshot *snap;
	enum status st = STATUS_OK;

	*out = NULL;
	if (!name_is_valid(snap_id))
		return err_set(e, STATUS_INVALID, "bad snapshot id");
	path = xasprintf("%s/.snapshots/%s.json", vm_dir, snap_id);
	if (access(path, F_OK) != 0) {
		st = err_set(e, STATUS_NOT_FOUND, "no snapshot %s in %s", snap_id, vm_dir);
		free(path);
		return st;
	}
	j = json_load_file(path, 0, &jerr);
	disks = json_object_get(j, "disks");
	if (j == NULL || jstr(j, "id") == NULL || jstr(j, "mode") == NULL ||
	    jstr(j, "locator") == NULL || !json_is_array(disks)) {
		st = err_set(e, STATUS_CORRUPT, "%s: not a snapshot description", path);
		goto out;
	}
	snap = xcalloc(1, sizeof(*snap));
	snap->id = xstrdup(jstr(j, "id"));
	snap->vm_id = xstrdup(jstr(j, "vm_id") ? jstr(j, "vm_id") : "");
	snap->locator = xstrdup(jstr(j, "locator"));
	snap->mode = xstrdup(jstr(j, "mode"));
	snap->created = xstrdup(jstr(j, "created") ? jstr(j, "created") : "");
	snap->disks = xcalloc(json_array_size(disks) + 1, sizeof(*snap->disks));
	for (size_t i = 0; i < json_array_size(disks); i++) {
		json_t *d = json_array_get(disks, i);
		struct platform_snapshot_disk *sd = &snap->disks[snap->n_disks];
		if (jstr(d, "name") == NULL || jstr(d, "path") == NULL)
			continue;
		sd->name = xstrdup(jstr(d, "name"));
		sd->path = xstrdup(jstr(d, "path"));
		sd->change_id = xstrdup(jstr(d, "change_id") ? jstr(d, "change_id") : "*");
		sd->size = (uint64_t)json_integer_value(json_object_get(d, "size"));
		snap->n_disks++;
	}
	*out = snap;
out:
	json_decref(j);
	free(path);
	return st;
}

enum status datastore_snapshot_release(const struct platform_snapshot *snap, struct err *e)
{
	bool reflink = strcmp(snap->mode, "reflink") == 0;
	char *json_path = xasprintf("%s/.snapshots/%s.json", snap->locator, snap->id);
	char *cdir = xasprintf("%s/.snapshots/%s", snap->locator, snap->id);
	enum status st = STATUS_OK;

	for (size_t i = 0; i < snap->n_disks; i++) {
		const char *p = snap->disks[i].path;
		if (reflink) {
			/* Only ever delete inside the snapshot's own directory. */
			if (strncmp(p, cdir, strlen(cdir)) == 0 && unlink(p) != 0 &&
			    errno != ENOENT)
				st = err_set(e, STATUS_IO, "unlink %s: %s", p, strerror(errno));
		} else {
			snaplock_remove(p, snap->id);
		}
	}
	if (reflink && rmdir(cdir) != 0 && errno != ENOENT && st == STATUS_OK)
		st = err_set(e, STATUS_IO, "rmdir %s: %s", cdir, strerror(errno));
	if (st == STATUS_OK && unlink(json_path) != 0 && errno != ENOENT)
		st = err_set(e, STATUS_IO, "unlink %s: %s", json_path, strerror(errno));
	free(cdir);
	free(json_path);
	return st;
}

/* ---- options ---------------------------------------------------------------------------- */

enum status datastore_snap_mode_parse(const char *s, enum datastore_snap_mode *m, struct err *e)
{
	if (strcmp(s, "auto") == 0)
		*m = DATASTORE_SNAP_AUTO;
	else if (strcmp(s, "reflink") == 0)
		*m = DATASTORE_SNAP_REFLINK;
	else if (strcmp(s, "lock") == 0)
		*m = DATASTORE_SNAP_LOCK;
	else
		return err_set(e, STATUS_INVALID, "snapshot mode \"%s\": want auto|reflink|lock",
		               s);
	return STATUS_OK;
}

enum status datastore_opts_from_env(struct datastore_opts *o, struct err *e)
{
	const char *s;

	o->snap_mode = DATASTORE_SNAP_AUTO;
	o->write_wait_ms = DATASTORE_WRITE_WAIT_MS_DEFAULT;
	s = getenv("CAIRN_DATASTORE_SNAPSHOT");
	if (s && *s) {
		enum status st = datastore_snap_mode_parse(s, &o->snap_mode, e);
		if (st != STATUS_OK)
			return st;
	}
	s = getenv("CAIRN_DATASTORE_WRITE_WAIT_MS");
	if (s && *s) {
		char *end;
		long v;
		errno = 0;
		v = strtol(s, &end, 10);
		if (errno || *end || v < 0 || v > 86400000)
			return err_set(e, STATUS_INVALID, "CAIRN_DATASTORE_WRITE_WAIT_MS=%s", s);
		o->write_wait_ms = (unsigned)v;
	}
	return STATUS_OK;
}

/* ---- the platform_ops table ------------------------------------------------------------- */

struct ds_platform {
	struct platform base;
	char *root;
	struct datastore_opts opts;
};

struct ds_handle {
	struct platform_disk_handle base;
	int fd;
	struct platform_vm *vm; /* live and writable only */
	char *disk;
	unsigned wait_ms;
};

static struct ds_platform *ds_of(struct platform *p)
{
	return (struct ds_platform *)p;
}

static enum status op_inventory(struct platform *p, struct platform_inventory *inv, struct err *e)
{
	return datastore_inventory(ds_of(p)->root, inv, e);
}

static enum status op_vm_get(struct platform *p, const char *vm_id, struct platform_vm **vm,
                             struct err *e)
{
	return datastore_vm_find(ds_of(p)->root, vm_id, vm, e);
}

static enum status op_snapshot_create(struct platform *p, const char *vm_id,
                                      struct platform_snapshot **snap, struct err *e)
{
	struct platform_vm *vm = NULL;
	enum status st = datastore_vm_find(ds_of(p)->root, vm_id, &vm, e);

	if (st != STATUS_OK || vm == NULL)
		return st != STATUS_OK ? st : err_set(e, STATUS_INTERNAL, "no VM");
	st = datastore_snapshot_create(vm, ds_of(p)->opts.snap_mode, snap, e);
	platform_vm_free(vm);
	return st;
}

static enum status op_snapshot_release(struct platform *p, const struct platform_snapshot *snap,
                                       struct err *e)
{
	return datastore_snapshot_release(snap, e);
}

static enum status op_disk_open(struct platform *p, const char *vm_id,
                                const struct platform_snapshot *snap, const char *disk,
                                bool writable, struct platform_disk_handle **out, struct err *e)
{
	struct ds_handle *h = xcalloc(1, sizeof(*h));
	struct platform_vm *vm = NULL;
	const char *path;
	struct stat sb;
	enum status st = STATUS_OK;

	*out = NULL;
	h->fd = -1;
	h->base.p = p;
	h->wait_ms = ds_of(p)->opts.write_wait_ms;
	if (snap) {
		const struct platform_snapshot_disk *sd = platform_snapshot_disk(snap, disk);
		if (writable) {
			st = err_set(e, STATUS_INVALID, "snapshots are read-only");
			goto fail;
		}
		if (sd == NULL) {
			st = err_set(e, STATUS_NOT_FOUND, "snapshot %s has no disk %s", snap->id,
			             disk);
			goto fail;
		}
		path = sd->path;
	} else {
		const struct platform_disk *d;
		st = datastore_vm_find(ds_of(p)->root, vm_id, &vm, e);
		if (st == STATUS_OK && vm == NULL) {
			err_set(e, STATUS_INTERNAL, "no VM");
			st = STATUS_INTERNAL;
		}
		if (st != STATUS_OK)
			goto fail;
		st = disk_lookup(vm, disk, &d, e);
		if (st != STATUS_OK)
			goto fail;
		path = d->path;
	}
	h->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (h->fd < 0 || fstat(h->fd, &sb) != 0) {
		st = err_set(e, STATUS_IO, "open %s: %s", path, strerror(errno));
		goto fail;
	}
	h->base.size = (uint64_t)sb.st_size;
	h->disk = xstrdup(disk);
	if (writable) {
		h->vm = vm;
		vm = NULL;
	}
	platform_vm_free(vm);
	*out = &h->base;
	return STATUS_OK;
fail:
	if (h->fd >= 0)
		close(h->fd);
	free(h);
	platform_vm_free(vm);
	return st;
}

static enum status op_disk_read(struct platform_disk_handle *hb, void *buf, size_t len,
                                uint64_t off, struct err *e)
{
	struct ds_handle *h = (struct ds_handle *)hb;
	size_t done = 0;

	if (off > hb->size || len > hb->size - off)
		return err_set(e, STATUS_INVALID, "read past the end of disk %s", h->disk);
	while (done < len) {
		ssize_t r = pread(h->fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return err_set(e, STATUS_IO, "read disk %s: %s", h->disk,
			               r < 0 ? strerror(errno) : "unexpected end of file");
		done += (size_t)r;
	}
	return STATUS_OK;
}

static enum status op_disk_write(struct platform_disk_handle *hb, const void *buf, size_t len,
                                 uint64_t off, struct err *e)
{
	struct ds_handle *h = (struct ds_handle *)hb;

	if (h->vm == NULL)
		return err_set(e, STATUS_INVALID, "disk %s is not open for writing", h->disk);
	return datastore_disk_write(h->vm, h->disk, off, buf, len, h->wait_ms, e);
}

static void op_disk_close(struct platform_disk_handle *hb)
{
	struct ds_handle *h = (struct ds_handle *)hb;

	if (h == NULL)
		return;
	if (h->fd >= 0)
		close(h->fd);
	platform_vm_free(h->vm);
	free(h->disk);
	free(h);
}

static enum status op_changed_extents(struct platform *p, const struct platform_snapshot *snap,
                                      const char *disk, const char *since, struct extent_list *out,
                                      struct err *e)
{
	struct platform_vm *vm = NULL;
	enum status st = datastore_vm_load(snap->locator, &vm, e);

	if (st != STATUS_OK || vm == NULL)
		return st != STATUS_OK ? st : err_set(e, STATUS_INTERNAL, "no VM");
	st = datastore_changed_extents(vm, disk, since, out, e);
	platform_vm_free(vm);
	return st;
}

static void op_close(struct platform *p)
{
	if (p == NULL)
		return;
	free(ds_of(p)->root);
	free(p);
}

static const struct platform_ops datastore_ops = {
	.name = "datastore",
	.inventory = op_inventory,
	.vm_get = op_vm_get,
	.snapshot_create = op_snapshot_create,
	.snapshot_release = op_snapshot_release,
	.disk_open = op_disk_open,
	.disk_read = op_disk_read,
	.disk_write = op_disk_write,
	.disk_close = op_disk_close,
	.changed_extents = op_changed_extents,
	.close = op_close,
};

struct platform *datastore_open(const char *root, const struct datastore_opts *opts, struct err *e)
{
	struct ds_platform *ds;
	struct datastore_opts o;
	char *real = realpath(root, NULL);
	struct stat sb;

	if (real == NULL || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		err_set(e, STATUS_NOT_FOUND, "datastore root %s is not a directory", root);
		free(real);
		return NULL;
	}
	if (opts) {
		o = *opts;
	} else if (datastore_opts_from_env(&o, e) != STATUS_OK) {
		free(real);
		return NULL;
	}
	ds = xcalloc(1, sizeof(*ds));
	ds->base.ops = &datastore_ops;
	ds->root = real;
	ds->opts = o;
	return &ds->base;
}

/* ---- helpers for the write tool --------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void datastore_random_fill(uint64_t seed, uint64_t stream_off, void *buf, size_t len)
{
	unsigned char *p = buf;
	uint64_t i = stream_off;
	size_t done = 0;

	while (done < len) {
		uint64_t word = mix64(seed + (i / 8 + 1) * 0x9e3779b97f4a7c15ull);
		unsigned shift = (unsigned)(i % 8) * 8;
		p[done++] = (unsigned char)(word >> shift);
		i++;
		/* Whole words at a time once aligned. */
		while (i % 8 == 0 && len - done >= 8) {
			word = mix64(seed + (i / 8 + 1) * 0x9e3779b97f4a7c15ull);
			for (unsigned b = 0; b < 8; b++)
				p[done + b] = (unsigned char)(word >> (8 * b));
			done += 8;
			i += 8;
		}
	}
}

#define WRITE_PIECE (1u << 20)

enum status datastore_disk_write_random(const struct platform_vm *vm, const char *disk,
                                        uint64_t off, uint64_t len, uint64_t seed, unsigned wait_ms,
                                        struct err *e)
{
	unsigned char *buf = xmalloc(WRITE_PIECE);
	enum status st = STATUS_OK;

	for (uint64_t done = 0; done < len && st == STATUS_OK;) {
		size_t n = len - done < WRITE_PIECE ? (size_t)(len - done) : WRITE_PIECE;
		datastore_random_fill(seed, done, buf, n);
		st = datastore_disk_write(vm, disk, off + done, buf, n, wait_ms, e);
		done += n;
	}
	free(buf);
	return st;
}

enum status datastore_disk_write_file(const struct platform_vm *vm, const char *disk, uint64_t off,
                                      const char *path, unsigned wait_ms, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char *buf;
	enum status st = STATUS_OK;
	uint64_t done = 0;

	if (fd < 0)
		return err_set(e, STATUS_NOT_FOUND, "open %s: %s", path, strerror(errno));
	buf = xmalloc(WRITE_PIECE);
	for (;;) {
		ssize_t r = read(fd, buf, WRITE_PIECE);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			st = err_set(e, STATUS_IO, "read %s: %s", path, strerror(errno));
			break;
		}
		if (r == 0)
			break;
		st = datastore_disk_write(vm, disk, off + done, buf, (size_t)r, wait_ms, e);
		if (st != STATUS_OK)
			break;
		done += (uint64_t)r;
	}
	free(buf);
	close(fd);
	return st;
}

enum status datastore_size_parse(const char *s, uint64_t *out, struct err *e)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	if (s == NULL || *s < '0' || *s > '9')
		return err_set(e, STATUS_INVALID, "bad size \"%s\"", s ? s : "");
	v = strtoull(s, &end, 10);
	if (errno)
		return err_set(e, STATUS_INVALID, "bad size \"%s\"", s);
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	case '\0':
		break;
	default:
		return err_set(e, STATUS_INVALID, "bad size \"%s\"", s);
	}
	if (shift && end[1] != '\0' && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
		return err_set(e, STATUS_INVALID, "bad size \"%s\"", s);
	if (shift && v > (UINT64_MAX >> shift))
		return err_set(e, STATUS_INVALID, "size \"%s\" overflows", s);
	*out = (uint64_t)v << shift;
	return STATUS_OK;
}

enum status datastore_disk_spec_parse(const char *arg, struct datastore_disk_spec *d,
                                      char **storage, struct err *e)
{
	char *s = xstrdup(arg);
	char *eq = strchr(s, '='), *colon;
	enum status st;

	memset(d, 0, sizeof(*d));
	*storage = NULL;
	if (eq == NULL || eq == s || eq[1] == '\0') {
		free(s);
		return err_set(e, STATUS_INVALID,
		               "--disk %s: want NAME=SIZE[:DIR|:raw] or NAME=@IMAGE", arg);
	}
	*eq = '\0';
	d->name = s;
	if (eq[1] == '@') {
		d->import_from = eq + 2;
		*storage = s;
		return STATUS_OK;
	}
	colon = strchr(eq + 1, ':');
	if (colon) {
		*colon = '\0';
		if (strcmp(colon + 1, "raw") == 0)
			d->raw = true;
		else
			d->from_dir = colon + 1;
	}
	st = datastore_size_parse(eq + 1, &d->size, e);
	if (st != STATUS_OK) {
		free(s);
		return st;
	}
	*storage = s;
	return STATUS_OK;
}
