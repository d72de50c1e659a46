/* restore.c - restore a disk byte-exact, verify a restore point. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <openssl/evp.h>

#include "common/xalloc.h"
#include "engine/backup.h"
#include "engine/chunk.h"
#include "engine/manifest.h"
#include "engine/patch.h"

#include "engine_internal.h"

static bool is_cancelled(const atomic_bool *c)
{
	return c != NULL && atomic_load(c);
}

/* Read, authenticate, decompress (and check the id of) one object into out (capacity cap).
 * want > 0: the plaintext must have exactly that length. */
static enum status fetch_object(struct engine_repo *repo, struct engine_codec *c,
                                const uint8_t id[ENGINE_ID_LEN], uint8_t *sealed, size_t sealed_cap,
                                uint8_t *out, size_t cap, size_t want, size_t *plen, struct err *e)
{
	size_t n = 0;
	enum status st = engine_repo_chunk_read(repo, id, sealed, sealed_cap, &n, e);

	*plen = 0;
	if (st != STATUS_OK)
		return st;
	st = engine_codec_open(c, ENGINE_KIND_CHUNK, id, sealed, n, out, cap, plen, e);
	if (st == STATUS_OK && want > 0 && *plen != want)
		st = err_set(e, STATUS_CORRUPT, "length %zu, manifest says %zu", *plen, want);
	return st;
}

/* The bytes of one entry into out (en->length bytes): a chunk, or base + patch.
 * pscratch holds engine_patch_bound(en->length) bytes. *bad_id gets the object at fault. */
static enum status fetch_entry(struct engine_repo *repo, struct engine_codec *c,
                               const struct engine_manifest_entry *en, uint8_t *sealed,
                               size_t sealed_cap, uint8_t *out, uint8_t *pscratch,
                               const uint8_t **bad_id, struct err *e)
{
	size_t plen = 0;
	enum status st;

	*bad_id = en->id;
	if (en->kind == ENGINE_ENTRY_DATA)
		return fetch_object(repo, c, en->id, sealed, sealed_cap, out, en->length,
		                    en->length, &plen, e);
	if (en->kind == ENGINE_ENTRY_PATCH) {
		*bad_id = en->base;
		st = fetch_object(repo, c, en->base, sealed, sealed_cap, out, en->length,
		                  en->length, &plen, e);
		if (st != STATUS_OK)
			return st;
		*bad_id = en->id;
	} else {
		memset(out, 0, en->length);
	}
	st = fetch_object(repo, c, en->id, sealed, sealed_cap, pscratch,
	                  engine_patch_bound(en->length), 0, &plen, e);
	if (st == STATUS_OK)
		st = engine_patch_apply(out, en->length, pscratch, plen, e);
	return st;
}

static void chunk_error(struct err *e, enum status st, const char *rp_id, const uint8_t *id)
{
	char hex[2 * ENGINE_ID_LEN + 1];
	char why[128];

	engine_hex_encode(id, ENGINE_ID_LEN, hex);
	snprintf(why, sizeof(why), "%.120s", e ? e->msg : "");
	err_set(e, st, "restore point %s: chunk %s %s (%s)", rp_id, hex,
	        st == STATUS_NOT_FOUND ? "missing" : "corrupt", why);
}

/* ---- restore ---- */

#define RESTORE_DIO_WRITERS 2
#define RESTORE_POOL_BYTES ((size_t)128 << 20)

struct ritem {
	size_t idx;
	uint8_t *buf;     /* plaintext (pool) for data entries; NULL for zero entries */
	atomic_uint refs; /* once in order: the writer's and the collector's (hash) */
};

struct rctx {
	struct engine_repo *repo;
	const struct engine_tenant_keys *keys;
	const struct engine_restore_opts *o;
	const char *rp_id;
	const struct engine_manifest_disk *d;
	int fd;
	int dfd;             /* the output opened with O_DIRECT, or -1 */
	bool in_place;       /* a device: written in place, no rename after the SHA-256 check */
	size_t dio_align;    /* O_DIRECT only for ranges aligned to this (>= the page size, so a
	                        direct range never shares a page with a buffered write) */
	atomic_bool dio_off; /* O_DIRECT writes were refused: buffered from then on */
	size_t maxlen;
	struct engine_queue work, done;
	struct engine_queue write; /* verified chunks in order, to the writer thread */
	struct engine_pool pool;
	atomic_bool failed;
	atomic_uint workers_left;
	atomic_uint_fast64_t bytes_written;
	pthread_mutex_t emu;
	enum status first_st;
	struct err first;
	struct engine_restore_timing timing; /* threads add theirs under emu when they end */
};

static void rtiming_add(struct rctx *r, const struct engine_restore_timing *t)
{
	pthread_mutex_lock(&r->emu);
	r->timing.fetch += t->fetch;
	r->timing.buf_wait += t->buf_wait;
	r->timing.write += t->write;
	pthread_mutex_unlock(&r->emu);
}

static void rfail(struct rctx *r, enum status st, const struct err *e)
{
	pthread_mutex_lock(&r->emu);
	if (r->first_st == STATUS_OK) {
		r->first_st = st;
		r->first = *e;
	}
	pthread_mutex_unlock(&r->emu);
	atomic_store(&r->failed, true);
}

static bool rstop(struct rctx *r)
{
	return atomic_load(&r->failed) || is_cancelled(r->o->cancel);
}

static void *rdispatch_main(void *arg)
{
	struct rctx *r = arg;
	struct engine_restore_timing tm = { 0 };

	for (size_t i = 0; i < r->d->n_entries && !rstop(r); i++) {
		struct ritem *it = xcalloc(1, sizeof(*it));

		it->idx = i;
		/* Buffers are taken in entry order, so the in-order collector can always make
		 * progress: the oldest outstanding entry always holds a buffer. */
		/* A device keeps whatever it held before: its zero entries are written too. */
		if (r->d->entries[i].kind != ENGINE_ENTRY_ZERO || r->in_place) {
			double t0 = engine_now();

			it->buf = engine_pool_get(&r->pool);
			tm.buf_wait += engine_now() - t0;
		}
		if (!engine_queue_push(&r->work, it)) {
			if (it->buf)
				engine_pool_put(&r->pool, it->buf);
			free(it);
			break;
		}
	}
	engine_queue_close(&r->work);
	rtiming_add(r, &tm);
	return NULL;
}

static void *rworker_main(void *arg)
{
	struct rctx *r = arg;
	struct engine_codec *c = engine_codec_new(r->keys, 0, false);
	size_t scap = engine_sealed_bound(engine_patch_bound((uint32_t)r->maxlen));
	uint8_t *sealed = xmalloc(scap);
	uint8_t *pscratch = xmalloc(engine_patch_bound((uint32_t)r->maxlen));
	struct ritem *it;
	struct engine_restore_timing tm = { 0 };
	struct err e;

	/* The GCM tag binds every object to its id; the whole-image SHA-256 checks the
	 * assembled bytes before the output is renamed into place: with it, recomputing each
	 * chunk's HMAC id is redundant work (verify still does it). A device is written in
	 * place, so there every chunk is checked before its bytes are written. */
	engine_codec_check_ids(c, !(r->d->flags & ENGINE_DISK_HAS_SHA256) || r->in_place);
	while ((it = engine_queue_pop(&r->work)) != NULL) {
		const struct engine_manifest_entry *en = &r->d->entries[it->idx];

		if (it->buf != NULL && en->kind == ENGINE_ENTRY_ZERO) {
			memset(it->buf, 0, en->length);
		} else if (it->buf != NULL && !rstop(r)) {
			const uint8_t *bad = en->id;
			double t0 = engine_now();
			enum status st = fetch_entry(r->repo, c, en, sealed, scap, it->buf,
			                             pscratch, &bad, &e);

			tm.fetch += engine_now() - t0;
			if (st != STATUS_OK) {
				chunk_error(&e, st, r->rp_id, bad);
				rfail(r, st, &e);
			}
		}
		if (!engine_queue_push(&r->done, it)) {
			if (it->buf)
				engine_pool_put(&r->pool, it->buf);
			free(it);
		}
	}
	rtiming_add(r, &tm);
	if (atomic_fetch_sub(&r->workers_left, 1) == 1)
		engine_queue_close(&r->done);
	engine_key_wipe(pscratch, engine_patch_bound((uint32_t)r->maxlen));
	free(pscratch);
	free(sealed);
	engine_codec_free(c);
	return NULL;
}

/* Drop one reference to an in-order item; the last one returns its buffer. */
static void ritem_release(struct rctx *r, struct ritem *it)
{
	if (atomic_fetch_sub(&it->refs, 1) == 1) {
		if (it->buf)
			engine_pool_put(&r->pool, it->buf);
		free(it);
	}
}

/* Writers take chunks in entry order. Buffered: one writer, as concurrent pwrites into one
 * file contend on its inode lock (the workers spun on it) and sequential writes suit delayed
 * allocation. Direct I/O: RESTORE_DIO_WRITERS, so the device always has a write in flight
 * while another is being issued. Zero entries never come here: they stay holes. */
static void *rwriter_main(void *arg)
{
	struct rctx *r = arg;
	struct ritem *it;
	struct engine_restore_timing tm = { 0 };
	struct err e;

	while ((it = engine_queue_pop(&r->write)) != NULL) {
		const struct engine_manifest_entry *en = &r->d->entries[it->idx];

		if (!rstop(r)) {
			long long w = -1;
			double t0 = engine_now();

			/* Aligned chunks go straight to the device: no copy into the page
			 * cache and no page cache to allocate for gigabytes the restore
			 * never reads back. The rest (a short last chunk) goes through it. */
			bool direct = r->dfd >= 0 && !atomic_load(&r->dio_off) &&
			              en->offset % r->dio_align == 0 &&
			              en->length % r->dio_align == 0;

			if (direct) {
				w = engine_fs_pwrite_full(r->dfd, it->buf, en->length, en->offset);
				if (w < 0 && errno == EINVAL)
					atomic_store(&r->dio_off, true); /* buffered after all */
			}
			if (!direct || (w < 0 && atomic_load(&r->dio_off)))
				w = engine_fs_pwrite_full(r->fd, it->buf, en->length, en->offset);
			tm.write += engine_now() - t0;
			if (w < 0) {
				err_set(&e, STATUS_IO, "write output: %s", strerror(errno));
				rfail(r, STATUS_IO, &e);
			} else {
				atomic_fetch_add(&r->bytes_written, en->length);
			}
		}
		ritem_release(r, it);
	}
	rtiming_add(r, &tm);
	return NULL;
}

static void rreport(const struct rctx *r, uint64_t done, double t0)
{
	struct engine_progress p;

	if (r->o->progress == NULL)
		return;
	memset(&p, 0, sizeof(p));
	p.bytes_total = r->d->size;
	p.bytes_done = done;
	p.bytes_read = done;
	p.elapsed = engine_now() - t0;
	p.percent = r->d->size ? 100.0 * (double)done / (double)r->d->size : 100.0;
	p.speed = p.elapsed > 0 ? (double)done / p.elapsed : 0;
	r->o->progress(&p, r->o->progress_ud);
}

/* Open the output: a temp file beside a regular-file target, or the device itself. With
 * want_dio, *dfd gets a second descriptor with O_DIRECT where the file system supports it;
 * else -1. */
static enum status open_output(const char *out_path, uint64_t size, bool want_dio, int *fd,
                               int *dfd, char **tmp, struct err *e)
{
	struct stat sb;

	*tmp = NULL;
	*dfd = -1;
	if (stat(out_path, &sb) == 0 && (S_ISBLK(sb.st_mode) || S_ISCHR(sb.st_mode))) {
		*fd = open(out_path, O_WRONLY | O_CLOEXEC);
		if (*fd < 0)
			return err_set(e, STATUS_IO, "open %s: %s", out_path, strerror(errno));
		if (want_dio)
			*dfd = open(out_path, O_WRONLY | O_CLOEXEC | O_DIRECT);
		return STATUS_OK;
	}
	*tmp = xasprintf("%s.cairn-tmp-XXXXXX", out_path);
	*fd = mkostemp(*tmp, O_CLOEXEC);
	if (*fd < 0) {
		enum status st = err_set(e, STATUS_IO, "create %s: %s", *tmp, strerror(errno));

		free(*tmp);
		*tmp = NULL;
		return st;
	}
	if (ftruncate(*fd, (off_t)size) != 0) {
		enum status st = err_set(e, STATUS_IO, "truncate %s: %s", *tmp, strerror(errno));

		close(*fd);
		unlink(*tmp);
		free(*tmp);
		*tmp = NULL;
		return st;
	}
	if (!want_dio)
		return STATUS_OK;
	/* Reopened by name for O_DIRECT: make sure it is still our file (no symlink, same
	 * inode), else write through the first descriptor only. */
	*dfd = open(*tmp, O_WRONLY | O_CLOEXEC | O_DIRECT | O_NOFOLLOW);
	if (*dfd >= 0) {
		struct stat a, b;

		if (fstat(*fd, &a) != 0 || fstat(*dfd, &b) != 0 || a.st_dev != b.st_dev ||
		    a.st_ino != b.st_ino) {
			close(*dfd);
			*dfd = -1;
		}
	}
	return STATUS_OK;
}

enum status engine_restore_disk(struct engine_repo *repo, const struct engine_tenant_keys *keys,
                                const char *rp_id, const char *disk, const char *out_path,
                                const struct engine_restore_opts *o,
                                struct engine_restore_result *res, struct err *e)
{
	struct engine_codec *c = engine_codec_new(keys, 0, false);
	struct engine_manifest *m = NULL;
	struct rctx r;
	struct ritem **pending = NULL, *it;
	pthread_t disp, writer[RESTORE_DIO_WRITERS], *workers = NULL;
	unsigned nw, started = 0, writers = 0;
	size_t npool;
	bool disp_started = false, writer_started = false;
	EVP_MD_CTX *sha = NULL;
	uint8_t *zeros = NULL;
	size_t next = 0;
	uint64_t done = 0;
	double t0 = engine_now(), last = t0;
	char *tmp = NULL;
	enum status st;

	memset(res, 0, sizeof(*res));
	memset(&r, 0, sizeof(r));
	r.fd = -1;
	r.dfd = -1;
	pthread_mutex_init(&r.emu, NULL);
	st = engine_manifest_load(repo, c, rp_id, &m, e);
	if (st != STATUS_OK)
		goto out;
	r.d = engine_manifest_disk_find(m, disk);
	if (r.d == NULL) {
		st = err_set(e, STATUS_NOT_FOUND, "restore point %s has no disk %s", rp_id, disk);
		goto out;
	}
	r.repo = repo;
	r.keys = keys;
	r.o = o;
	r.rp_id = rp_id;
	for (size_t i = 0; i < r.d->n_entries; i++)
		if (r.d->entries[i].length > r.maxlen)
			r.maxlen = r.d->entries[i].length;
	if (r.maxlen == 0)
		r.maxlen = 1;
	res->bytes_total = r.d->size;
	res->chunks_total = r.d->n_entries;
	/* O_DIRECT unless turned off; not for FastCDC entries, which are almost never aligned
	 * (and two buffered writers would contend on the inode lock). */
	st = open_output(out_path, r.d->size, !o->no_direct_io && !(r.d->flags & ENGINE_DISK_CDC),
	                 &r.fd, &r.dfd, &tmp, e);
	r.in_place = tmp == NULL;
	{
		long ps = sysconf(_SC_PAGESIZE);

		r.dio_align = ps > (long)ENGINE_DIO_ALIGN ? (size_t)ps : ENGINE_DIO_ALIGN;
	}
	if (st != STATUS_OK)
		goto out;
	if (r.d->flags & ENGINE_DISK_HAS_SHA256) {
		sha = EVP_MD_CTX_new();
		if (sha == NULL || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
			st = err_set(e, STATUS_INTERNAL, "SHA-256 init failed");
			goto out_output;
		}
		zeros = xcalloc(1, r.maxlen);
	}
	nw = o->threads ? o->threads : engine_default_threads();
	if (nw > 64)
		nw = 64;
	/* Enough buffers for the writers to trail the workers, but at most ~128 MiB of them
	 * (with 8 MiB chunks), never fewer than two per worker. */
	npool = 4 * (size_t)nw + 8;
	if (npool * r.maxlen > RESTORE_POOL_BYTES)
		npool = RESTORE_POOL_BYTES / r.maxlen;
	if (npool < 2 * (size_t)nw + 2)
		npool = 2 * (size_t)nw + 2;
	engine_pool_init(&r.pool, npool, r.maxlen);
	engine_queue_init(&r.work, 2 * (size_t)nw);
	engine_queue_init(&r.done, npool);
	engine_queue_init(&r.write, npool); /* never full: one per buffer */
	/* An array of pointers: sizeof(*pending) is meant to be a pointer's size. */
	pending = xcalloc(r.d->n_entries ? r.d->n_entries : 1,
	                  sizeof(*pending)); // NOLINT(bugprone-sizeof-expression)
	atomic_store(&r.workers_left, nw);
	workers = xcalloc(nw, sizeof(*workers));
	for (started = 0; started < nw; started++)
		if (pthread_create(&workers[started], NULL, rworker_main, &r) != 0)
			break;
	if (started < nw && atomic_fetch_sub(&r.workers_left, nw - started) == nw - started)
		engine_queue_close(&r.done);
	/* Two writers only when chunks go out with O_DIRECT: buffered pwrites from two threads
	 * contend on the inode lock. */
	for (unsigned i = 0; started > 0 && i < (r.dfd >= 0 ? RESTORE_DIO_WRITERS : 1); i++)
		if (pthread_create(&writer[i], NULL, rwriter_main, &r) == 0)
			writers++;
	writer_started = writers > 0;
	if (!writer_started || pthread_create(&disp, NULL, rdispatch_main, &r) != 0) {
		struct err pe;

		err_set(&pe, STATUS_INTERNAL, "cannot start threads");
		rfail(&r, STATUS_INTERNAL, &pe);
		engine_queue_close(&r.work);
		engine_queue_close(&r.done);
	} else {
		disp_started = true;
	}
	while ((it = engine_queue_pop(&r.done)) != NULL) {
		pending[it->idx] = it;
		while (next < r.d->n_entries && pending[next] != NULL) {
			struct ritem *p = pending[next];
			const struct engine_manifest_entry *en = &r.d->entries[next];

			pending[next++] = NULL;
			/* the writer gets the chunk first, the hash runs alongside it */
			atomic_init(&p->refs, 1);
			if (p->buf != NULL && !rstop(&r)) {
				atomic_init(&p->refs, 2);
				if (!engine_queue_push(&r.write, p))
					atomic_fetch_sub(&p->refs, 1);
			}
			double ts = engine_now();
			if (sha != NULL && !rstop(&r) &&
			    EVP_DigestUpdate(sha, p->buf ? p->buf : zeros, en->length) != 1) {
				struct err he;

				err_set(&he, STATUS_INTERNAL, "SHA-256 update failed");
				rfail(&r, STATUS_INTERNAL, &he);
			}
			r.timing.image_sha += engine_now() - ts;
			if (en->kind == ENGINE_ENTRY_ZERO)
				res->chunks_zero++;
			done += en->length;
			ritem_release(&r, p);
		}
		double now = engine_now();
		if (now - last >= 1.0) {
			last = now;
			rreport(&r, done, t0);
		}
	}
	if (disp_started)
		pthread_join(disp, NULL);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	engine_queue_close(&r.write);
	for (unsigned i = 0; i < writers; i++)
		pthread_join(writer[i], NULL);
	/* Items left behind after a failure (out of order) */
	for (size_t i = 0; i < r.d->n_entries; i++) {
		if (pending[i] != NULL) {
			if (pending[i]->buf)
				engine_pool_put(&r.pool, pending[i]->buf);
			free(pending[i]);
		}
	}
	free(pending);
	free(workers);
	engine_queue_cleanup(&r.work);
	engine_queue_cleanup(&r.done);
	engine_queue_cleanup(&r.write);
	engine_pool_cleanup(&r.pool);
	res->bytes_written = atomic_load(&r.bytes_written);
	res->timing = r.timing;

	if (r.first_st != STATUS_OK) {
		st = r.first_st;
		if (e)
			*e = r.first;
		goto out_output;
	}
	if (is_cancelled(o->cancel)) {
		res->cancelled = true;
		st = err_set(e, STATUS_UNAVAILABLE, "restore cancelled");
		goto out_output;
	}
	if (next != r.d->n_entries) {
		st = err_set(e, STATUS_INTERNAL, "restore incomplete");
		goto out_output;
	}
	if (sha != NULL) {
		uint8_t dig[32];
		unsigned int len = 0;

		if (EVP_DigestFinal_ex(sha, dig, &len) != 1 || memcmp(dig, r.d->sha256, 32) != 0) {
			st = err_set(e, STATUS_CORRUPT,
			             "restore point %s disk %s: SHA-256 of the restored image does "
			             "not match the manifest",
			             rp_id, disk);
			goto out_output;
		}
		res->sha256_checked = true;
	}
	if (r.dfd >= 0) {
		close(r.dfd);
		r.dfd = -1;
	}
	/* (a character device such as /dev/null cannot be synced: EINVAL is not a failure) */
	if (!o->no_fsync && fsync(r.fd) != 0 && !(r.in_place && errno == EINVAL)) {
		st = err_set(e, STATUS_IO, "fsync output: %s", strerror(errno));
		goto out_output;
	}
	if (close(r.fd) != 0) {
		r.fd = -1;
		st = err_set(e, STATUS_IO, "close output: %s", strerror(errno));
		goto out_output;
	}
	r.fd = -1;
	if (tmp != NULL && rename(tmp, out_path) != 0) {
		st = err_set(e, STATUS_IO, "rename to %s: %s", out_path, strerror(errno));
		goto out_output;
	}
	free(tmp);
	tmp = NULL;
	rreport(&r, done, t0);
out_output:
	if (r.dfd >= 0)
		close(r.dfd);
	if (r.fd >= 0)
		close(r.fd);
	if (tmp != NULL) {
		unlink(tmp); /* never leave wrong or partial bytes behind */
		free(tmp);
	}
out:
	EVP_MD_CTX_free(sha);
	free(zeros);
	engine_manifest_free(m);
	engine_codec_free(c);
	pthread_mutex_destroy(&r.emu);
	res->seconds = engine_now() - t0;
	return st;
}

/* ---- verify ---- */

/* One object a restore point references: a chunk, a patch or a block map. */
struct vref {
	uint8_t id[ENGINE_ID_LEN];
	size_t cap;         /* largest plaintext it may have */
	size_t want;        /* exact plaintext length (chunks), or 0 */
	uint32_t patch_for; /* a patch for an entry of this length (checked whole), or 0 */
};

struct vctx {
	struct engine_repo *repo;
	const struct engine_tenant_keys *keys;
	const struct engine_restore_opts *o;
	struct vref *uniq;
	size_t n;
	size_t maxcap;
	atomic_size_t next;
	atomic_uint_fast64_t done_bytes;
	enum status *st; /* per unique object */
	char (*why)[96]; /* per unique object */
};

static void *vworker_main(void *arg)
{
	struct vctx *v = arg;
	struct engine_codec *c = engine_codec_new(v->keys, 0, false);
	size_t scap = engine_sealed_bound(v->maxcap);
	uint8_t *sealed = xmalloc(scap);
	uint8_t *plain = xmalloc(v->maxcap);
	struct err e;

	for (;;) {
		size_t i = atomic_fetch_add(&v->next, 1), plen = 0;

		if (i >= v->n || is_cancelled(v->o->cancel))
			break;
		err_clear(&e);
		v->st[i] = fetch_object(v->repo, c, v->uniq[i].id, sealed, scap, plain,
		                        v->uniq[i].cap, v->uniq[i].want, &plen, &e);
		if (v->st[i] == STATUS_OK && v->uniq[i].patch_for > 0)
			v->st[i] = engine_patch_apply(NULL, v->uniq[i].patch_for, plain, plen, &e);
		if (v->st[i] != STATUS_OK)
			snprintf(v->why[i], sizeof(v->why[i]), "%.90s", e.msg);
		atomic_fetch_add(&v->done_bytes, plen);
	}
	engine_key_wipe(plain, v->maxcap);
	free(plain);
	free(sealed);
	engine_codec_free(c);
	return NULL;
}

static int cmp_ref(const void *a, const void *b)
{
	const struct vref *x = a, *y = b;

	return memcmp(x->id, y->id, ENGINE_ID_LEN);
}

static void ref_add(struct vref **v, size_t *n, size_t *cap, const uint8_t *id, size_t plain_cap,
                    size_t want, uint32_t patch_for)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 256;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	memcpy((*v)[*n].id, id, ENGINE_ID_LEN);
	(*v)[*n].cap = plain_cap;
	(*v)[*n].want = want;
	(*v)[*n].patch_for = patch_for;
	(*n)++;
}

void engine_verify_report_cleanup(struct engine_verify_report *rep)
{
	free(rep->problems);
	memset(rep, 0, sizeof(*rep));
}

enum status engine_verify_rp(struct engine_repo *repo, const struct engine_tenant_keys *keys,
                             const char *rp_id, const struct engine_restore_opts *o,
                             struct engine_verify_report *rep, struct err *e)
{
	struct engine_codec *c = engine_codec_new(keys, 0, false);
	struct engine_manifest *m = NULL;
	struct vctx v;
	pthread_t *workers = NULL;
	unsigned nw, started = 0;
	size_t k = 0, kcap = 0;
	double t0 = engine_now();
	enum status st;

	memset(rep, 0, sizeof(*rep));
	memset(&v, 0, sizeof(v));
	st = engine_manifest_load(repo, c, rp_id, &m, e);
	if (st != STATUS_OK)
		goto out;
	for (size_t i = 0; i < m->n_disks; i++) {
		const struct engine_manifest_disk *d = &m->disks[i];

		for (size_t j = 0; j < d->n_entries; j++) {
			const struct engine_manifest_entry *en = &d->entries[j];

			if (en->kind == ENGINE_ENTRY_DATA)
				ref_add(&v.uniq, &k, &kcap, en->id, en->length, en->length, 0);
			if (en->kind == ENGINE_ENTRY_PATCH)
				ref_add(&v.uniq, &k, &kcap, en->base, en->length, en->length, 0);
			if (en->kind == ENGINE_ENTRY_PATCH || en->kind == ENGINE_ENTRY_ZPATCH)
				ref_add(&v.uniq, &k, &kcap, en->id, engine_patch_bound(en->length),
				        0, en->length);
		}
		for (size_t j = 0; j < d->n_maps; j++)
			ref_add(&v.uniq, &k, &kcap, d->map_ids[j],
			        engine_blockmap_plain_max(d->chunk_size, d->map_group), 0, 0);
	}
	if (k > 1)
		qsort(v.uniq, k, sizeof(*v.uniq), cmp_ref);
	v.n = 0;
	for (size_t i = 0; i < k; i++) {
		if (v.n > 0 && memcmp(v.uniq[v.n - 1].id, v.uniq[i].id, ENGINE_ID_LEN) == 0) {
			/* one id, one plaintext: keep the strictest expectations */
			struct vref *p = &v.uniq[v.n - 1];

			if ((v.uniq[i].want != 0 && p->want != 0 && v.uniq[i].want != p->want) ||
			    (v.uniq[i].patch_for != 0 && p->patch_for != 0 &&
			     v.uniq[i].patch_for != p->patch_for)) {
				st = err_set(e, STATUS_CORRUPT,
				             "restore point %s: one chunk id with two lengths",
				             rp_id);
				goto out_v;
			}
			if (p->want == 0)
				p->want = v.uniq[i].want;
			if (p->patch_for == 0)
				p->patch_for = v.uniq[i].patch_for;
			if (v.uniq[i].cap > p->cap)
				p->cap = v.uniq[i].cap;
			continue;
		}
		v.uniq[v.n++] = v.uniq[i];
	}
	for (size_t i = 0; i < v.n; i++)
		if (v.uniq[i].cap > v.maxcap)
			v.maxcap = v.uniq[i].cap;
	if (v.maxcap == 0)
		v.maxcap = 1;
	v.repo = repo;
	v.keys = keys;
	v.o = o;
	v.st = xcalloc(v.n ? v.n : 1, sizeof(*v.st));
	v.why = xcalloc(v.n ? v.n : 1, sizeof(*v.why));
	nw = o->threads ? o->threads : engine_default_threads();
	if (nw > 64)
		nw = 64;
	workers = xcalloc(nw, sizeof(*workers));
	for (started = 0; started < nw; started++)
		if (pthread_create(&workers[started], NULL, vworker_main, &v) != 0)
			break;
	if (started == 0)
		vworker_main(&v); /* run inline */
	if (o->progress != NULL) {
		double last = t0;

		while (atomic_load(&v.next) < v.n && !is_cancelled(o->cancel)) {
			struct timespec ts = { 0, 50L * 1000 * 1000 };

			nanosleep(&ts, NULL);
			if (engine_now() - last >= 1.0) {
				struct engine_progress p = { 0 };

				last = engine_now();
				p.bytes_done = atomic_load(&v.done_bytes);
				p.bytes_read = p.bytes_done;
				p.elapsed = last - t0;
				p.percent = v.n ? 100.0 * (double)atomic_load(&v.next) / (double)v.n
				                : 100.0;
				p.speed = p.elapsed > 0 ? (double)p.bytes_done / p.elapsed : 0;
				o->progress(&p, o->progress_ud);
			}
		}
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	free(workers);
	if (is_cancelled(o->cancel)) {
		st = err_set(e, STATUS_UNAVAILABLE, "verify cancelled");
		goto out_st;
	}
	rep->chunks_checked = v.n;
	rep->bytes_checked = atomic_load(&v.done_bytes);
	for (size_t i = 0; i < v.n; i++) {
		if (v.st[i] == STATUS_OK)
			continue;
		if (v.st[i] == STATUS_NOT_FOUND)
			rep->chunks_missing++;
		else
			rep->chunks_corrupt++;
		if (rep->n_problems < ENGINE_VERIFY_MAX_PROBLEMS) {
			struct engine_verify_problem *p;

			rep->problems = xrealloc(rep->problems,
			                         (rep->n_problems + 1) * sizeof(*rep->problems));
			p = &rep->problems[rep->n_problems++];
			engine_hex_encode(v.uniq[i].id, ENGINE_ID_LEN, p->chunk_id);
			p->kind = v.st[i] == STATUS_NOT_FOUND ? STATUS_NOT_FOUND : STATUS_CORRUPT;
			snprintf(p->detail, sizeof(p->detail), "%s", v.why[i]);
		}
	}
	if (rep->n_problems > 0) {
		const struct engine_verify_problem *p = &rep->problems[0];

		st = err_set(
		        e, p->kind,
		        "restore point %s: %llu missing, %llu corrupt chunks; first: %s %s (%s)",
		        rp_id, (unsigned long long)rep->chunks_missing,
		        (unsigned long long)rep->chunks_corrupt, p->chunk_id,
		        p->kind == STATUS_NOT_FOUND ? "missing" : "corrupt", p->detail);
	}
out_st:
	free(v.st);
	free(v.why);
out_v:
	free(v.uniq);
out:
	engine_manifest_free(m);
	engine_codec_free(c);
	rep->seconds = engine_now() - t0;
	return st;
}
