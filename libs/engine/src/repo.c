/* repo.c - local file system repository: write-once chunks and manifests. */
#define _GNU_SOURCE
#include "engine/repo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "common/xalloc.h"
#include "engine/keys.h"

#include "engine_internal.h"

#define MARKER "CAIRN-REPO"
#define MARKER_V1 "cairn repository v1\n"
#define MARKER_V2 "cairn repository v2\n"
#define MANIFEST_MAX (1u << 30)

/* Chunk layouts, named by the root's marker:
 *   v1  chunks/ab/cd/<id>  (65536 leaf directories)
 *   v2  chunks/ab/<id>     (256 leaf directories; new repositories)
 * v2 exists because every new leaf directory costs an inode allocation, a mkdir and a
 * directory fsync per backup: a young v1 repository paid one of each per new chunk. */
struct engine_repo {
	char *root;
	char *tenant;
	char *base;      /* root/tenant */
	char *chunks;    /* base/chunks */
	char *manifests; /* base/manifests */
	int layout;      /* 1 or 2 */
	pthread_mutex_t mu;
	uint8_t dirty_l1[256 / 8];     /* v1: chunks/ab needs fsync */
	uint8_t dirty_leaf[65536 / 8]; /* the chunk's directory needs fsync */
	uint8_t known_leaf[65536 / 8]; /* the chunk's directory exists */
	bool dirty_chunks;             /* chunks/ itself */
	atomic_bool dio_off;           /* the file system refused O_DIRECT writes */
};

bool engine_rp_id_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 100 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* The chunk layout the marker names, or 0 (error set). */
static int read_layout(const char *marker, struct err *e)
{
	uint8_t *text = NULL;
	size_t n = 0;
	int layout = 0;

	if (engine_fs_read_all(marker, 256, &text, &n, e) != STATUS_OK)
		return 0;
	if (n == sizeof(MARKER_V1) - 1 && memcmp(text, MARKER_V1, n) == 0)
		layout = 1;
	else if (n == sizeof(MARKER_V2) - 1 && memcmp(text, MARKER_V2, n) == 0)
		layout = 2;
	else
		err_set(e, STATUS_INVALID, "%s: unsupported repository version", marker);
	free(text);
	return layout;
}

struct engine_repo *engine_repo_open(const char *root, const char *tenant, bool create,
                                     struct err *e)
{
	struct engine_repo *r;
	char *marker;
	struct stat sb;
	int layout;

	if (!engine_tenant_id_valid(tenant)) {
		err_set(e, STATUS_INVALID, "invalid tenant id");
		return NULL;
	}
	marker = xasprintf("%s/%s", root, MARKER);
	if (stat(marker, &sb) != 0) {
		static const char text[] = MARKER_V2;

		if (!create) {
			err_set(e, STATUS_NOT_FOUND, "%s is not a cairn repository", root);
			free(marker);
			return NULL;
		}
		if (engine_fs_mkdirs(root, 0700, e) != STATUS_OK) {
			free(marker);
			return NULL;
		}
		enum status st =
		        engine_fs_write_once(root, MARKER, text, sizeof(text) - 1, true, e);
		if (st != STATUS_OK && st != STATUS_CONFLICT) {
			free(marker);
			return NULL;
		}
	}
	layout = read_layout(marker, e);
	free(marker);
	if (layout == 0)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->layout = layout;
	r->root = xstrdup(root);
	r->tenant = xstrdup(tenant);
	r->base = xasprintf("%s/%s", root, tenant);
	r->chunks = xasprintf("%s/chunks", r->base);
	r->manifests = xasprintf("%s/manifests", r->base);
	pthread_mutex_init(&r->mu, NULL);
	if (stat(r->base, &sb) != 0) {
		if (!create) {
			err_set(e, STATUS_NOT_FOUND, "tenant %s has no repository under %s", tenant,
			        root);
			engine_repo_free(r);
			return NULL;
		}
		if (engine_fs_mkdirs(r->chunks, 0700, e) != STATUS_OK ||
		    engine_fs_mkdirs(r->manifests, 0700, e) != STATUS_OK ||
		    engine_fs_sync_dir(r->base, e) != STATUS_OK ||
		    engine_fs_sync_dir(root, e) != STATUS_OK) {
			engine_repo_free(r);
			return NULL;
		}
	}
	return r;
}

void engine_repo_free(struct engine_repo *r)
{
	if (r == NULL)
		return;
	pthread_mutex_destroy(&r->mu);
	free(r->root);
	free(r->tenant);
	free(r->base);
	free(r->chunks);
	free(r->manifests);
	free(r);
}

void engine_repo_set_direct_io(struct engine_repo *r, bool on)
{
	atomic_store(&r->dio_off, !on);
}

const char *engine_repo_tenant(const struct engine_repo *r)
{
	return r->tenant;
}

const char *engine_repo_root(const struct engine_repo *r)
{
	return r->root;
}

char *engine_repo_chunk_path(const struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN])
{
	char hex[2 * ENGINE_ID_LEN + 1];

	engine_hex_encode(id, ENGINE_ID_LEN, hex);
	if (r->layout == 1)
		return xasprintf("%s/%.2s/%.2s/%s", r->chunks, hex, hex + 2, hex);
	return xasprintf("%s/%.2s/%s", r->chunks, hex, hex);
}

/* Index of the directory that holds a chunk (v1: ab/cd, v2: ab) and its path. */
static unsigned leaf_index(const struct engine_repo *r, const uint8_t *id)
{
	return r->layout == 1 ? (unsigned)id[0] << 8 | id[1] : id[0];
}

static char *leaf_path(const struct engine_repo *r, unsigned leaf)
{
	if (r->layout == 1)
		return xasprintf("%s/%02x/%02x", r->chunks, leaf >> 8, leaf & 255);
	return xasprintf("%s/%02x", r->chunks, leaf);
}

bool engine_repo_chunk_exists(struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN])
{
	char *p = engine_repo_chunk_path(r, id);
	struct stat sb;
	bool ok = stat(p, &sb) == 0;

	free(p);
	return ok;
}

#define BIT_GET(a, i) (((a)[(i) >> 3] >> ((i)&7)) & 1)
#define BIT_SET(a, i) ((a)[(i) >> 3] |= (uint8_t)(1u << ((i)&7)))

/* Make the chunk's directory (v1 chunks/ab/cd, v2 chunks/ab), remembering which
 * directories got new entries. */
static enum status ensure_dirs(struct engine_repo *r, const uint8_t *id, const char *dir2,
                               struct err *e)
{
	unsigned l1 = id[0], l2 = leaf_index(r, id);
	bool known;

	pthread_mutex_lock(&r->mu);
	known = BIT_GET(r->known_leaf, l2);
	pthread_mutex_unlock(&r->mu);
	if (known)
		return STATUS_OK;
	if (r->layout == 2) {
		if (mkdir(dir2, 0700) == 0) {
			pthread_mutex_lock(&r->mu);
			r->dirty_chunks = true;
			pthread_mutex_unlock(&r->mu);
		} else if (errno != EEXIST) {
			return err_set(e, STATUS_IO, "mkdir %s: %s", dir2, strerror(errno));
		}
		pthread_mutex_lock(&r->mu);
		BIT_SET(r->known_leaf, l2);
		pthread_mutex_unlock(&r->mu);
		return STATUS_OK;
	}
	char *dir1 = xstrndup(dir2, strlen(dir2) - 3);
	if (mkdir(dir1, 0700) == 0) {
		pthread_mutex_lock(&r->mu);
		r->dirty_chunks = true;
		pthread_mutex_unlock(&r->mu);
	} else if (errno != EEXIST) {
		enum status st = err_set(e, STATUS_IO, "mkdir %s: %s", dir1, strerror(errno));

		free(dir1);
		return st;
	}
	free(dir1);
	if (mkdir(dir2, 0700) == 0) {
		pthread_mutex_lock(&r->mu);
		BIT_SET(r->dirty_l1, l1);
		pthread_mutex_unlock(&r->mu);
	} else if (errno != EEXIST) {
		return err_set(e, STATUS_IO, "mkdir %s: %s", dir2, strerror(errno));
	}
	pthread_mutex_lock(&r->mu);
	BIT_SET(r->known_leaf, l2);
	pthread_mutex_unlock(&r->mu);
	return STATUS_OK;
}

/* Write buf[0..n) to the new, empty file fd. The part that is a whole number of
 * ENGINE_DIO_ALIGN blocks goes to the device with O_DIRECT when buf is aligned (no copy into
 * page cache that nobody reads back: for random data that copy, and reclaiming the page
 * cache it fills, was most of a backup's system time); the short tail goes through the page
 * cache (made durable by the fdatasync that publishes the chunk). @returns 0 or -1 (errno). */
static int write_chunk(struct engine_repo *r, int fd, const uint8_t *buf, size_t n)
{
	size_t head = n / ENGINE_DIO_ALIGN * ENGINE_DIO_ALIGN;
	int fl;

	if (head > 0 && !atomic_load(&r->dio_off) && (uintptr_t)buf % ENGINE_DIO_ALIGN == 0 &&
	    (fl = fcntl(fd, F_GETFL)) >= 0) {
		if (fcntl(fd, F_SETFL, fl | O_DIRECT) != 0) {
			atomic_store(&r->dio_off, true); /* refused: do not ask for every chunk */
			return engine_fs_pwrite_full(fd, buf, n, 0) < 0 ? -1 : 0;
		}
		long long w = engine_fs_pwrite_full(fd, buf, head, 0);
		int saved = errno;

		if (fcntl(fd, F_SETFL, fl) != 0)
			return -1;
		if (w == (long long)head)
			return engine_fs_pwrite_full(fd, buf + head, n - head, head) < 0 ? -1 : 0;
		if (saved != EINVAL) {
			errno = saved;
			return -1;
		}
		atomic_store(&r->dio_off, true); /* this file system does not do O_DIRECT */
	}
	return engine_fs_pwrite_full(fd, buf, n, 0) < 0 ? -1 : 0;
}

enum status engine_repo_chunk_stage(struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN],
                                    const void *sealed, size_t n, struct engine_staged_chunk *sc,
                                    struct err *e)
{
	char hex[2 * ENGINE_ID_LEN + 1];
	char *dir2;
	enum status st;

	sc->fd = -1;
	sc->tmp = NULL;
	memcpy(sc->id, id, ENGINE_ID_LEN);
	sc->len = n;
	engine_hex_encode(id, ENGINE_ID_LEN, hex);
	dir2 = leaf_path(r, leaf_index(r, id));
	st = ensure_dirs(r, id, dir2, e);
	if (st != STATUS_OK)
		goto out;
	sc->tmp = xasprintf("%s/.tmp-%s-XXXXXX", dir2, hex);
	sc->fd = mkostemp(sc->tmp, O_CLOEXEC);
	if (sc->fd < 0) {
		st = err_set(e, STATUS_IO, "create temp chunk: %s", strerror(errno));
		free(sc->tmp);
		sc->tmp = NULL;
		goto out;
	}
	if (write_chunk(r, sc->fd, sealed, n) < 0) {
		st = err_set(e, STATUS_IO, "write chunk: %s", strerror(errno));
		engine_repo_chunk_discard(sc);
	}
out:
	free(dir2);
	return st;
}

void engine_repo_chunk_discard(struct engine_staged_chunk *sc)
{
	if (sc->fd >= 0)
		close(sc->fd);
	if (sc->tmp != NULL) {
		unlink(sc->tmp);
		free(sc->tmp);
	}
	sc->fd = -1;
	sc->tmp = NULL;
}

enum status engine_repo_chunk_publish(struct engine_repo *r, struct engine_staged_chunk *sc,
                                      bool already_synced, bool *stored, struct err *e)
{
	char *final;
	enum status st = STATUS_OK;

	*stored = false;
	if (sc->tmp == NULL || sc->fd < 0)
		return err_set(e, STATUS_INVALID, "chunk not staged");
	final = engine_repo_chunk_path(r, sc->id);
	if (!already_synced && fdatasync(sc->fd) != 0) {
		st = err_set(e, STATUS_IO, "fdatasync chunk: %s", strerror(errno));
		goto out;
	}
	if (close(sc->fd) != 0) {
		sc->fd = -1;
		st = err_set(e, STATUS_IO, "close chunk: %s", strerror(errno));
		goto out;
	}
	sc->fd = -1;
	/* link() fails with EEXIST: an existing chunk is never rewritten. */
	if (link(sc->tmp, final) == 0) {
		unsigned l2 = leaf_index(r, sc->id);

		*stored = true;
		pthread_mutex_lock(&r->mu);
		BIT_SET(r->dirty_leaf, l2);
		pthread_mutex_unlock(&r->mu);
	} else if (errno != EEXIST) {
		st = err_set(e, STATUS_IO, "link chunk: %s", strerror(errno));
	}
out:
	engine_repo_chunk_discard(sc);
	free(final);
	return st;
}

enum status engine_repo_chunk_put(struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN],
                                  const void *sealed, size_t n, bool *stored, struct err *e)
{
	struct engine_staged_chunk sc;
	enum status st = engine_repo_chunk_stage(r, id, sealed, n, &sc, e);

	*stored = false;
	if (st != STATUS_OK)
		return st;
	return engine_repo_chunk_publish(r, &sc, false, stored, e);
}

enum status engine_repo_chunk_read(struct engine_repo *r, const uint8_t id[ENGINE_ID_LEN],
                                   void *buf, size_t cap, size_t *n, struct err *e)
{
	char *p = engine_repo_chunk_path(r, id);
	enum status st = STATUS_OK;
	struct stat sb;
	int fd = open(p, O_RDONLY | O_CLOEXEC);

	*n = 0;
	if (fd < 0) {
		st = errno == ENOENT ? err_set(e, STATUS_NOT_FOUND, "chunk missing")
		                     : err_set(e, STATUS_IO, "open chunk: %s", strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) != 0) {
		st = err_set(e, STATUS_IO, "stat chunk: %s", strerror(errno));
		goto out_close;
	}
	if ((uint64_t)sb.st_size > cap) {
		st = err_set(e, STATUS_CORRUPT, "chunk file too large (%lld bytes)",
		             (long long)sb.st_size);
		goto out_close;
	}
	long long got = engine_fs_pread_full(fd, buf, (size_t)sb.st_size, 0);
	if (got < 0) {
		st = err_set(e, STATUS_IO, "read chunk: %s", strerror(errno));
		goto out_close;
	}
	*n = (size_t)got;
out_close:
	close(fd);
out:
	free(p);
	return st;
}

enum status engine_repo_sync(struct engine_repo *r, struct err *e)
{
	enum status st = STATUS_OK;
	uint8_t l1[sizeof(r->dirty_l1)];
	uint8_t *l2 = xmalloc(sizeof(r->dirty_leaf));
	unsigned nleaf = r->layout == 1 ? 65536 : 256;
	bool top;

	pthread_mutex_lock(&r->mu);
	memcpy(l1, r->dirty_l1, sizeof(l1));
	memcpy(l2, r->dirty_leaf, sizeof(r->dirty_leaf));
	top = r->dirty_chunks;
	memset(r->dirty_l1, 0, sizeof(r->dirty_l1));
	memset(r->dirty_leaf, 0, sizeof(r->dirty_leaf));
	r->dirty_chunks = false;
	pthread_mutex_unlock(&r->mu);
	/* Leaves first, then parents, so a synced parent never names an unsynced child. */
	for (unsigned i = 0; i < nleaf && st == STATUS_OK; i++) {
		if (!BIT_GET(l2, i))
			continue;
		char *d = leaf_path(r, i);
		st = engine_fs_sync_dir(d, e);
		free(d);
	}
	for (unsigned i = 0; i < 256 && st == STATUS_OK; i++) {
		if (!BIT_GET(l1, i))
			continue;
		char *d = xasprintf("%s/%02x", r->chunks, i);
		st = engine_fs_sync_dir(d, e);
		free(d);
	}
	if (st == STATUS_OK && top)
		st = engine_fs_sync_dir(r->chunks, e);
	free(l2);
	return st;
}

enum status engine_repo_manifest_put(struct engine_repo *r, const char *rp_id, const void *sealed,
                                     size_t n, struct err *e)
{
	char *name;
	enum status st;

	if (!engine_rp_id_valid(rp_id))
		return err_set(e, STATUS_INVALID, "invalid restore point id");
	name = xasprintf("%s.mf", rp_id);
	st = engine_fs_write_once(r->manifests, name, sealed, n, true, e);
	if (st == STATUS_CONFLICT)
		err_set(e, STATUS_CONFLICT, "restore point %s already exists", rp_id);
	free(name);
	return st;
}

enum status engine_repo_manifest_read(struct engine_repo *r, const char *rp_id, uint8_t **out,
                                      size_t *n, struct err *e)
{
	char *p;
	enum status st;

	if (!engine_rp_id_valid(rp_id))
		return err_set(e, STATUS_INVALID, "invalid restore point id");
	p = xasprintf("%s/%s.mf", r->manifests, rp_id);
	st = engine_fs_read_all(p, MANIFEST_MAX, out, n, e);
	if (st == STATUS_NOT_FOUND)
		err_set(e, STATUS_NOT_FOUND, "restore point %s not found", rp_id);
	else if (st == STATUS_TOO_LARGE)
		st = err_set(e, STATUS_CORRUPT, "restore point %s: manifest too large", rp_id);
	free(p);
	return st;
}

struct named_time {
	char *name;
	struct timespec t;
};

static int cmp_named_time(const void *a, const void *b)
{
	const struct named_time *x = a, *y = b;

	if (x->t.tv_sec != y->t.tv_sec)
		return x->t.tv_sec < y->t.tv_sec ? -1 : 1;
	if (x->t.tv_nsec != y->t.tv_nsec)
		return x->t.tv_nsec < y->t.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

enum status engine_repo_manifest_list(struct engine_repo *r, char ***ids, size_t *n, struct err *e)
{
	DIR *d = opendir(r->manifests);
	struct dirent *de;
	struct named_time *v = NULL;
	size_t cnt = 0, cap = 0;

	*ids = NULL;
	*n = 0;
	if (d == NULL)
		return err_set(e, STATUS_IO, "open %s: %s", r->manifests, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		struct stat sb;

		if (de->d_name[0] == '.' || len < 4 || strcmp(de->d_name + len - 3, ".mf") != 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb, 0) != 0)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[cnt].name = xstrndup(de->d_name, len - 3);
		v[cnt].t = sb.st_mtim; /* manifests are written once: mtime = commit time */
		cnt++;
	}
	closedir(d);
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_named_time);
	*ids = xcalloc(cnt ? cnt : 1, sizeof(char *));
	for (size_t i = 0; i < cnt; i++)
		(*ids)[i] = v[i].name;
	free(v);
	*n = cnt;
	return STATUS_OK;
}

void engine_repo_ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* Remove ".tmp-*" regular files older than cutoff under dir, descending depth levels. */
static void sweep_dir(const char *dir, int depth, time_t cutoff, size_t *removed)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat sb;
		char *p;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		if (lstat(p, &sb) == 0) {
			if (S_ISDIR(sb.st_mode) && depth > 0)
				sweep_dir(p, depth - 1, cutoff, removed);
			else if (S_ISREG(sb.st_mode) && strncmp(de->d_name, ".tmp-", 5) == 0 &&
			         sb.st_mtime < cutoff && unlink(p) == 0)
				(*removed)++;
		}
		free(p);
	}
	closedir(d);
}

enum status engine_repo_sweep_temps(struct engine_repo *r, unsigned max_age_s, size_t *removed,
                                    struct err *e)
{
	time_t cutoff = time(NULL) - (time_t)max_age_s;
	size_t n = 0;

	if (r == NULL)
		return err_set(e, STATUS_INVALID, "no repository");
	/* v2: chunks/ab/<file>; v1: chunks/ab/cd/<file>; manifests are one level. */
	sweep_dir(r->chunks, r->layout == 1 ? 2 : 1, cutoff, &n);
	sweep_dir(r->manifests, 0, cutoff, &n);
	if (removed)
		*removed = n;
	return STATUS_OK;
}
