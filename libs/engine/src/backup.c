/* backup.c - the backup pipeline: reader -> workers -> collector, then manifest commit. */
#define _GNU_SOURCE
#include "engine/backup.h"

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
#include <openssl/rand.h>

#include "common/xalloc.h"
#include "engine/chunk.h"
#include "engine/fastcdc.h"
#include "engine/manifest.h"
#include "engine/patch.h"
#include "engine/sha256.h"

#include "engine_internal.h"

/* Who computes a chunk's HMAC id when the hasher can do it fused with the image hash
 * (struct bctx.fused): whoever moves it out of ID_PENDING first. A worker that finds
 * ID_HASHER waits for ID_DONE; one that finds ID_PENDING takes the work itself (the hasher
 * is behind, e.g. still hashing a long hole), so nobody ever waits for a chunk the hasher
 * has not started. */
enum { ID_PENDING, ID_HASHER, ID_WORKER, ID_DONE };
_Static_assert(ENGINE_ID_LEN == ENGINE_SHA256_LEN, "a chunk id is an HMAC-SHA-256");

/* A chunk's plaintext on its way to the whole-image hasher. It shares the pool buffer with
 * the chunk's work item: whoever drops the last reference returns the buffer. */
struct hitem {
	size_t disk;
	uint8_t *buf; /* b->zeros for a run of hole chunks */
	uint64_t len; /* a hole run may span many chunks (the hasher hashes zeros for it) */
	atomic_uint refs;
	atomic_int id_state;       /* ID_*; only for chunks that were read (not holes) */
	uint8_t id[ENGINE_ID_LEN]; /* HMAC id of buf, valid at ID_DONE */
};

/* A group of entries sharing one block map object. The reader creates it (loading the
 * parent's map for the same entries), workers read the parent's records, the collector
 * gathers the new records and, once every entry of the group is in, writes the new map. */
struct mgroup {
	size_t disk, g, first, n;         /* entries [first, first + n) */
	bool reuse;                       /* every entry copied from the parent: same map */
	struct engine_blockmap_rec *prec; /* parent's records (NULL: none or unreadable) */
	size_t pn;
	struct engine_blockmap_rec *recs; /* new records (collector) */
	size_t collected;
	struct mgroup *next; /* every group of the run, for cleanup */
};

struct bitem {
	size_t disk, idx;
	uint64_t off;
	uint32_t len;
	uint8_t *buf;    /* pool buffer with the plaintext; NULL for copied entries */
	struct hitem *h; /* shares buf with the hasher, or NULL */
	bool copy;       /* entry taken from the parent manifest */
	bool hole;       /* inside a hole of a sparse source: zero, never read */
	struct engine_manifest_entry entry;         /* result (or the parent's entry when copy) */
	const struct engine_manifest_entry *pentry; /* parent's entry at this index, or NULL */
	struct mgroup *mg;                          /* block map group, or NULL (no maps) */
	struct engine_blockmap_rec rec;             /* this entry's new block map record */
	bool patch;                                 /* stored as a patch against its base */
	bool is_map;                                /* a block map object, not a disk entry */
	bool is_new, known;
	uint64_t stored;
	bool staged_ok; /* staged holds a written, not yet published chunk */
	struct engine_staged_chunk staged;
};

/* Staged chunks waiting to be made durable together (the collector's batch). */
#define BATCH_MAX_FILES 128
#define BATCH_MAX_BYTES (64u << 20)

struct bdisk {
	const struct engine_disk_source *src;
	int fd;
	uint64_t size;
	/* A sparse regular file: chunks inside its holes are zero entries without a read.
	 * [data_start, data_end) is the data extent found by the last SEEK_DATA probe. */
	bool sparse;
	bool regular; /* a regular file (can shrink under the reader; a device cannot) */
	uint64_t data_start, data_end;
	const struct engine_manifest_disk *parent; /* usable parent disk for CT, or NULL */
	const struct engine_manifest_disk *pdisk;  /* parent disk chunked the same way, or NULL */
	bool maps;                                 /* this run writes block maps for the disk */
	uint8_t (*map_ids)[ENGINE_ID_LEN];
	size_t n_maps;
	bool has_sha;
	EVP_MD_CTX *sha;          /* whole-image SHA-256 (OpenSSL), unless b->fused */
	struct engine_sha256 own; /* whole-image SHA-256 when b->fused */
	struct engine_manifest_entry *entries;
	size_t n_entries, cap_entries;
};

struct bctx {
	struct engine_repo *repo;
	const struct engine_tenant_keys *keys;
	const struct engine_backup_opts *o;
	uint32_t cs;
	int level;
	struct bdisk *disks;
	size_t n_disks;
	struct engine_fastcdc cdc;
	struct engine_queue work, done;
	struct engine_queue hash; /* in read order, to the whole-image SHA-256 thread */
	bool hashing;             /* some disk has the whole-image SHA-256 */
	/* The hasher also computes the HMAC ids of the chunks it hashes, in the same pass
	 * (engine_sha256_update2): with the CPU's SHA extensions the pair costs what one hash
	 * does, which takes the ids off the workers. */
	bool fused;
	struct engine_hmac256 idkey; /* prepared id key (wiped at the end) */
	pthread_mutex_t idmu;        /* ID_DONE hand-over to waiting workers */
	pthread_cond_t idcv;
	struct engine_pool pool;
	size_t bufsize;
	uint8_t *zeros; /* bufsize zero bytes: what the hasher hashes for a hole */
	uint32_t map_group;
	uint8_t zfp[ENGINE_FP_LEN]; /* fingerprint of an all-zero block */
	struct mgroup *groups;      /* reader appends; freed after the pipeline */
	struct mgroup **groups_tail;
	atomic_uint_fast64_t maps_unreadable;
	/* bytes the hasher is done with, plus those it need not hash: progress counts a byte
	 * done only when the hasher is through it too (it may trail by a long hole) */
	atomic_uint_fast64_t hashed;
	atomic_bool hasher_done;
	atomic_uint_fast64_t ids_fused; /* chunk ids the hasher computed (set when it ends) */
	atomic_bool failed;
	atomic_uint workers_left;
	atomic_uint_fast64_t bytes_read;
	pthread_mutex_t emu;
	enum status first_st;
	struct err first;
	struct engine_backup_timing timing; /* threads add theirs under emu when they end */
};

static bool cancelled(const struct bctx *b)
{
	return b->o->cancel != NULL && atomic_load(b->o->cancel);
}

static void fail(struct bctx *b, enum status st, const struct err *e)
{
	pthread_mutex_lock(&b->emu);
	if (b->first_st == STATUS_OK) {
		b->first_st = st;
		if (e != NULL)
			b->first = *e;
		else
			err_set(&b->first, st, "%s", status_str(st));
	}
	pthread_mutex_unlock(&b->emu);
	atomic_store(&b->failed, true);
}

static bool stopping(struct bctx *b)
{
	return atomic_load(&b->failed) || cancelled(b);
}

static void timing_add(struct bctx *b, const struct engine_backup_timing *t)
{
	pthread_mutex_lock(&b->emu);
	b->timing.read += t->read;
	b->timing.read_wait += t->read_wait;
	b->timing.image_sha += t->image_sha;
	b->timing.id += t->id;
	b->timing.seal += t->seal;
	b->timing.stage += t->stage;
	pthread_mutex_unlock(&b->emu);
}

void engine_rp_id_generate(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	uint8_t r[4];
	char hex[9];

	/* Microseconds keep ids of quick successive runs in creation order when sorted. */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r)); /* uniqueness then rests on the timestamp */
	engine_hex_encode(r, sizeof(r), hex);
	snprintf(out, cap, "%04d%02d%02dT%02d%02d%02d.%06ldZ-%s", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, hex);
}

/* ---- reader ---- */

/* Drop one reference to a chunk buffer (h may be NULL: the buffer has a single owner). */
static void buf_release(struct bctx *b, uint8_t *buf, struct hitem *h)
{
	if (h == NULL) {
		engine_pool_put(&b->pool, buf);
	} else if (atomic_fetch_sub(&h->refs, 1) == 1) {
		if (h->buf != b->zeros)
			engine_pool_put(&b->pool, h->buf);
		free(h);
	}
}

/* A run of hole chunks is handed to the hasher at the latest when it reaches this size. */
#define HOLE_RUN_MAX ((uint64_t)64 << 20)

/* Hand the pending run of hole chunks (if any) to the hasher. */
static void flush_run(struct bctx *b, struct hitem **run)
{
	if (*run != NULL && !engine_queue_push(&b->hash, *run))
		buf_release(b, (*run)->buf, *run);
	*run = NULL;
}

/* Queue a chunk for the workers and, when its disk is hashed, for the hasher (first, so
 * the hasher sees chunks in read order). Consecutive holes become one run for the hasher
 * (*run, hashed from b->zeros), so a long hole takes one slot of the hash queue, and a
 * hole goes straight to the collector (a zero entry needs no worker): the reader gets past
 * a hole to the data after it while the hasher still hashes the zeros, instead of waiting
 * for the hasher chunk by chunk. On failure the item is released. */
static bool push_item(struct bctx *b, struct bitem *it, struct hitem **run)
{
	struct bdisk *d = &b->disks[it->disk];

	if (!d->has_sha || (!it->hole && it->buf == NULL))
		atomic_fetch_add(&b->hashed, it->len);
	if (it->hole && d->has_sha) {
		if (*run == NULL) {
			*run = xcalloc(1, sizeof(**run));
			(*run)->disk = it->disk;
			(*run)->buf = b->zeros;
			atomic_init(&(*run)->refs, 1);
			atomic_init(&(*run)->id_state, ID_PENDING);
		}
		(*run)->len += it->len;
		if ((*run)->len >= HOLE_RUN_MAX) /* let the hasher start on a long hole */
			flush_run(b, run);
	} else if (it->buf != NULL && d->has_sha) {
		struct hitem *h = xcalloc(1, sizeof(*h));

		flush_run(b, run);
		h->disk = it->disk;
		h->buf = it->buf;
		h->len = it->len;
		atomic_init(&h->refs, 2);
		atomic_init(&h->id_state, ID_PENDING);
		it->h = h;
		if (!engine_queue_push(&b->hash, h))
			buf_release(b, h->buf, h); /* the hasher's reference */
	}
	if (it->hole) {
		it->entry.offset = it->off;
		it->entry.length = it->len;
		it->entry.kind = ENGINE_ENTRY_ZERO;
		if (!engine_queue_push(&b->done, it)) {
			free(it);
			return false;
		}
		return true;
	}
	if (!engine_queue_push(&b->work, it)) {
		if (it->buf)
			buf_release(b, it->buf, it->h);
		free(it);
		return false;
	}
	return true;
}

/* Length of fixed-size chunk idx (the last one may be short). */
static uint32_t chunk_len(const struct bctx *b, const struct bdisk *d, uint64_t idx)
{
	uint64_t off = idx * b->cs;

	return (uint32_t)(d->size - off < b->cs ? d->size - off : b->cs);
}

/* The parent's entry for the chunk at idx if it covers the same bytes, else NULL. */
static const struct engine_manifest_entry *parent_entry(const struct bctx *b, const struct bdisk *d,
                                                        uint64_t idx)
{
	uint64_t off = idx * b->cs;
	uint32_t len = chunk_len(b, d, idx);

	if (d->pdisk == NULL || idx >= d->pdisk->n_entries ||
	    d->pdisk->entries[idx].offset != off || d->pdisk->entries[idx].length != len)
		return NULL;
	return &d->pdisk->entries[idx];
}

/* Change tracking says the chunk at idx did not change: take the parent's entry. */
static bool is_copy(const struct bctx *b, const struct bdisk *d, uint64_t idx)
{
	return d->parent != NULL && parent_entry(b, d, idx) != NULL &&
	       !engine_extents_overlap(d->src->changed, idx * b->cs, chunk_len(b, d, idx));
}

/* Load the parent's block map g of disk d (NULL on any problem: those entries are then
 * stored whole, which is always correct). */
static struct engine_blockmap_rec *load_parent_map(struct bctx *b, struct engine_codec *c,
                                                   const struct bdisk *d, size_t g, size_t *pn)
{
	size_t cap = engine_blockmap_plain_max(b->cs, d->pdisk->map_group);
	uint8_t *sealed = xmalloc(engine_sealed_bound(cap)), *plain = xmalloc(cap);
	struct engine_blockmap_rec *recs = NULL;
	size_t n = 0, plen = 0;
	struct err e;

	*pn = 0;
	if (engine_repo_chunk_read(b->repo, d->pdisk->map_ids[g], sealed, engine_sealed_bound(cap),
	                           &n, &e) != STATUS_OK ||
	    engine_codec_open(c, ENGINE_KIND_CHUNK, d->pdisk->map_ids[g], sealed, n, plain, cap,
	                      &plen, &e) != STATUS_OK ||
	    engine_blockmap_decode(plain, plen, &recs, pn, &e) != STATUS_OK) {
		atomic_fetch_add(&b->maps_unreadable, 1);
		recs = NULL;
		*pn = 0;
	}
	free(sealed);
	free(plain);
	return recs;
}

static struct mgroup *group_start(struct bctx *b, struct engine_codec **c, size_t di,
                                  uint64_t first, uint64_t n_entries)
{
	struct bdisk *d = &b->disks[di];
	struct mgroup *mg = xcalloc(1, sizeof(*mg));

	mg->disk = di;
	mg->g = first / b->map_group;
	mg->first = first;
	mg->n = n_entries - first < b->map_group ? n_entries - first : b->map_group;
	mg->recs = xcalloc(mg->n, sizeof(*mg->recs));
	if (d->pdisk != NULL && (d->pdisk->flags & ENGINE_DISK_HAS_MAPS) &&
	    d->pdisk->map_group == b->map_group && mg->g < d->pdisk->n_maps) {
		size_t pfirst_n = d->pdisk->n_entries - first < b->map_group
		                          ? d->pdisk->n_entries - first
		                          : b->map_group;
		bool all = d->parent != NULL && pfirst_n == mg->n;

		for (size_t j = 0; all && j < mg->n; j++)
			all = is_copy(b, d, first + j);
		/* reuse the parent's map only if it is still there (else write a new one) */
		if (all && engine_repo_chunk_exists(b->repo, d->pdisk->map_ids[mg->g])) {
			mg->reuse = true;
		} else {
			if (*c == NULL)
				*c = engine_codec_new(b->keys, b->level, false);
			mg->prec = load_parent_map(b, *c, d, mg->g, &mg->pn);
		}
	}
	*b->groups_tail = mg;
	b->groups_tail = &mg->next;
	return mg;
}

/* True when [off, off + len) lies wholly in a hole of the sparse source (SEEK_DATA /
 * SEEK_HOLE): the chunk is zero and need not be read, as VMware's allocated-areas query lets a
 * backup skip unallocated blocks. A chunk inside the data extent found last is read without a
 * probe; any other chunk is probed as the reader reaches it, so a hole is only trusted as of
 * now (data written ahead of the reader is read, as a plain read would). ENXIO also answers a
 * probe past the end of a file that shrank: read_fixed's size check at the end fails the run
 * then. Any other probe error turns probing off for the disk (everything is then read). */
static bool in_hole(struct bdisk *d, uint64_t off, uint32_t len)
{
	off_t nd, nh;

	if (!d->sparse)
		return false;
	if (off >= d->data_start && off < d->data_end)
		return false;
	nd = lseek(d->fd, (off_t)off, SEEK_DATA);
	if (nd < 0 && errno == ENXIO) { /* no data from off to the end */
		d->data_start = d->data_end = 0;
		return true;
	}
	if (nd < 0) {
		d->sparse = false;
		return false;
	}
	nh = lseek(d->fd, nd, SEEK_HOLE);
	if (nh <= nd) {
		d->sparse = false;
		return false;
	}
	d->data_start = (uint64_t)nd;
	d->data_end = (uint64_t)nh;
	return off + len <= d->data_start;
}

static void read_fixed(struct bctx *b, size_t di, struct engine_backup_timing *tm)
{
	struct bdisk *d = &b->disks[di];
	uint64_t n = (d->size + b->cs - 1) / b->cs;
	struct engine_codec *mc = NULL; /* for parent block maps */
	struct mgroup *mg = NULL;
	struct hitem *run = NULL;
	struct err e;

	for (uint64_t idx = 0; idx < n && !stopping(b); idx++) {
		struct bitem *it;

		if (b->o->reader_hook != NULL)
			b->o->reader_hook(di, idx, b->o->reader_hook_ud);
		it = xcalloc(1, sizeof(*it));

		it->disk = di;
		it->idx = idx;
		it->off = idx * b->cs;
		it->len = chunk_len(b, d, idx);
		if (d->maps && idx % b->map_group == 0)
			mg = group_start(b, &mc, di, idx, n);
		it->mg = d->maps ? mg : NULL;
		it->pentry = parent_entry(b, d, idx);
		if (is_copy(b, d, idx)) {
			it->copy = true;
			it->entry = *it->pentry;
		} else if (in_hole(d, it->off, it->len)) {
			it->hole = true;
		} else {
			double t0 = engine_now();

			it->buf = engine_pool_get(&b->pool);
			double t1 = engine_now();
			long long r = engine_fs_pread_full(d->fd, it->buf, it->len, it->off);

			tm->read_wait += t1 - t0;
			tm->read += engine_now() - t1;

			if (r != (long long)it->len) {
				err_set(&e, STATUS_IO, "read %s at %llu: %s", d->src->path,
				        (unsigned long long)it->off,
				        r < 0 ? strerror(errno) : "short read (image shrank?)");
				fail(b, STATUS_IO, &e);
				engine_pool_put(&b->pool, it->buf);
				free(it);
				break;
			}
			atomic_fetch_add(&b->bytes_read, it->len);
		}
		if (!push_item(b, it, &run))
			break;
	}
	flush_run(b, &run);
	engine_codec_free(mc);
	/* A file that shrank during the read: past its new end the hole probes say "no data"
	 * and nothing is read, so only its size tells. */
	struct stat sb;
	if (!stopping(b) && d->regular && fstat(d->fd, &sb) == 0 &&
	    (uint64_t)sb.st_size < d->size) {
		err_set(&e, STATUS_IO, "%s shrank during backup (%llu of %llu bytes)", d->src->path,
		        (unsigned long long)sb.st_size, (unsigned long long)d->size);
		fail(b, STATUS_IO, &e);
	}
}

static void read_cdc(struct bctx *b, size_t di, struct engine_backup_timing *tm)
{
	struct bdisk *d = &b->disks[di];
	size_t wcap = 2 * (size_t)b->cdc.max;
	uint8_t *w = xmalloc(wcap);
	size_t pos = 0, avail = 0, idx = 0;
	uint64_t off = 0, rdoff = 0;
	bool eof = false;
	struct hitem *run = NULL; /* stays NULL: a stream has no holes */
	struct err e;

	while (!stopping(b)) {
		if (avail < b->cdc.max && !eof) {
			memmove(w, w + pos, avail);
			pos = 0;
			double t0 = engine_now();
			long long r = engine_fs_pread_full(d->fd, w + avail, wcap - avail, rdoff);

			tm->read += engine_now() - t0;

			if (r < 0) {
				err_set(&e, STATUS_IO, "read %s: %s", d->src->path,
				        strerror(errno));
				fail(b, STATUS_IO, &e);
				break;
			}
			if ((size_t)r < wcap - avail)
				eof = true;
			atomic_fetch_add(&b->bytes_read, (uint64_t)r);
			avail += (size_t)r;
			rdoff += (uint64_t)r;
		}
		if (avail == 0)
			break;
		size_t cut = engine_fastcdc_cut(&b->cdc, w + pos, avail);
		struct bitem *it = xcalloc(1, sizeof(*it));

		it->disk = di;
		it->idx = idx++;
		it->off = off;
		it->len = (uint32_t)cut;
		double t0 = engine_now();
		it->buf = engine_pool_get(&b->pool);
		tm->read_wait += engine_now() - t0;
		memcpy(it->buf, w + pos, cut);
		pos += cut;
		avail -= cut;
		off += cut;
		if (!push_item(b, it, &run))
			break;
	}
	if (!stopping(b) && off != d->size) {
		err_set(&e, STATUS_IO, "%s: size changed during backup", d->src->path);
		fail(b, STATUS_IO, &e);
	}
	free(w);
}

static void *reader_main(void *arg)
{
	struct bctx *b = arg;
	struct engine_backup_timing tm = { 0 };

	for (size_t di = 0; di < b->n_disks && !stopping(b); di++) {
		if (b->o->cdc)
			read_cdc(b, di, &tm);
		else
			read_fixed(b, di, &tm);
	}
	timing_add(b, &tm);
	engine_queue_close(&b->work);
	engine_queue_close(&b->hash);
	return NULL;
}

/* ---- whole-image SHA-256 ----
 * SHA-256 is sequential, so one thread hashes every chunk in read order (zeros included)
 * while the workers id, compress and encrypt the same buffers: it overlaps the pipeline
 * instead of running inside the reader. */
/* The disk's whole-image SHA-256: the engine's own when fused, else OpenSSL's. */
static void image_update(struct bctx *b, struct bdisk *d, const uint8_t *p, size_t n)
{
	struct err e;

	if (b->fused) {
		engine_sha256_update(&d->own, p, n);
	} else if (EVP_DigestUpdate(d->sha, p, n) != 1) {
		err_set(&e, STATUS_INTERNAL, "SHA-256 update failed");
		fail(b, STATUS_INTERNAL, &e);
	}
}

static bool image_final(struct bctx *b, struct bdisk *d, uint8_t out[ENGINE_SHA256_LEN])
{
	unsigned int len = 0;

	if (b->fused) {
		engine_sha256_final(&d->own, out);
		return true;
	}
	return EVP_DigestFinal_ex(d->sha, out, &len) == 1;
}

static void *hasher_main(void *arg)
{
	struct bctx *b = arg;
	struct engine_backup_timing tm = { 0 };
	struct hitem *h;
	uint64_t ids_fused = 0;

	while ((h = engine_queue_pop(&b->hash)) != NULL) {
		double t0 = engine_now();
		struct bdisk *d = &b->disks[h->disk];
		int expect = ID_PENDING;

		if (stopping(b)) {
			/* nothing: the run is failing, and no worker waits on an unclaimed id */
		} else if (h->buf == b->zeros) { /* a run of hole chunks, piece by piece */
			for (uint64_t off = 0; off < h->len && !stopping(b); off += b->bufsize) {
				size_t n = h->len - off < b->bufsize ? (size_t)(h->len - off)
				                                     : b->bufsize;

				image_update(b, d, b->zeros, n);
				atomic_fetch_add(&b->hashed, n);
			}
		} else if (b->fused && d->own.nbuf == 0 &&
		           atomic_compare_exchange_strong(&h->id_state, &expect, ID_HASHER)) {
			/* the pair needs a 64-byte boundary: always so with fixed chunks, by chance
			 * with FastCDC ones (else the worker computes the id) */
			struct engine_sha256 s;

			engine_hmac256_start(&b->idkey, &s);
			engine_sha256_update2(&d->own, &s, h->buf, h->len);
			engine_hmac256_finish(&b->idkey, &s, h->id);
			ids_fused++;
			pthread_mutex_lock(&b->idmu);
			atomic_store(&h->id_state, ID_DONE);
			pthread_cond_broadcast(&b->idcv);
			pthread_mutex_unlock(&b->idmu);
		} else {
			image_update(b, d, h->buf, h->len);
		}
		tm.image_sha += engine_now() - t0;
		if (h->buf != b->zeros)
			atomic_fetch_add(&b->hashed, h->len);
		buf_release(b, h->buf, h);
	}
	timing_add(b, &tm);
	atomic_store(&b->ids_fused, ids_fused);
	atomic_store(&b->hasher_done, true);
	return NULL;
}

/* ---- workers ---- */

static const uint8_t zero_block[ENGINE_BLOCK];

/* Block map record of a parent entry that is all zeros (such entries need no stored map). */
static void zero_rec(const struct bctx *b, struct engine_codec *c, uint32_t len,
                     struct engine_blockmap_rec *r)
{
	uint32_t nb = engine_blocks(len);

	engine_blockmap_rec_alloc(r, nb);
	for (uint32_t i = 0; i < nb; i++)
		memcpy(r->fps + (size_t)i * ENGINE_FP_LEN, b->zfp, ENGINE_FP_LEN);
	if (len % ENGINE_BLOCK != 0)
		engine_codec_fingerprints(c, zero_block, len % ENGINE_BLOCK,
		                          r->fps + (size_t)(nb - 1) * ENGINE_FP_LEN);
}

/* With a block map of the parent's entry: find the blocks that changed since the parent.
 * Returns true when the entry needs nothing stored (it->entry set: the parent's entry, or
 * the base chunk when every block is back to the base's content); otherwise sets it->patch
 * and fills pbuf and plen when a patch against the base is small enough. The new record
 * gets the blocks that differ from the base and the base's fingerprints of those. */
static bool diff_parent(struct bctx *b, struct engine_codec *c, struct bitem *it, uint8_t *pbuf,
                        size_t *plen)
{
	const struct engine_manifest_entry *pe = it->pentry;
	const struct engine_blockmap_rec *pm = NULL;
	struct engine_blockmap_rec zr = { 0 };
	struct engine_blockmap_rec *r = &it->rec;
	uint32_t nb = r->nblocks, k = 0, nk = 0;
	size_t j = it->idx - it->mg->first;
	bool changed = false, zero_base, base_ok;

	if (pe == NULL)
		return false;
	if (pe->kind == ENGINE_ENTRY_ZERO) {
		zero_rec(b, c, it->len, &zr);
		pm = &zr;
	} else if (it->mg->prec != NULL && j < it->mg->pn && it->mg->prec[j].has &&
	           it->mg->prec[j].nblocks == nb) {
		pm = &it->mg->prec[j];
	}
	if (pm == NULL)
		return false;
	for (uint32_t i = 0; i < nb; i++) {
		const uint8_t *nf = r->fps + (size_t)i * ENGINE_FP_LEN;
		const uint8_t *pf = pm->fps + (size_t)i * ENGINE_FP_LEN;
		const uint8_t *bf = pf; /* the base's fingerprint of block i */

		if (pm->patched[i / 8] & (1u << (i % 8)))
			bf = pm->base_fps + (size_t)(k++) * ENGINE_FP_LEN;
		changed |= memcmp(nf, pf, ENGINE_FP_LEN) != 0;
		if (memcmp(nf, bf, ENGINE_FP_LEN) != 0) {
			r->patched[i / 8] |= (uint8_t)(1u << (i % 8));
			memcpy(r->base_fps + (size_t)(nk++) * ENGINE_FP_LEN, bf, ENGINE_FP_LEN);
		}
	}
	engine_blockmap_rec_cleanup(&zr);
	zero_base = pe->kind == ENGINE_ENTRY_ZERO || pe->kind == ENGINE_ENTRY_ZPATCH;
	/* What is reused must still be in the repository (as a backup without change tracking
	 * always re-stored a lost chunk): one stat per object, as the id check did. A lost base
	 * or patch makes the chunk be stored whole, which heals the chain from here on. */
	base_ok = zero_base || engine_repo_chunk_exists(
	                               b->repo, pe->kind == ENGINE_ENTRY_DATA ? pe->id : pe->base);
	if (!base_ok)
		goto whole;
	if (!changed && pe->kind != ENGINE_ENTRY_ZERO &&
	    (pe->kind == ENGINE_ENTRY_DATA || engine_repo_chunk_exists(b->repo, pe->id))) {
		it->entry = *pe;
		return true;
	}
	if (nk == 0 && !zero_base) { /* every block back to the base's content */
		it->entry.kind = ENGINE_ENTRY_DATA;
		memcpy(it->entry.id, pe->kind == ENGINE_ENTRY_DATA ? pe->id : pe->base,
		       ENGINE_ID_LEN);
		return true;
	}
	if (nk > 0 && engine_patch_set_bytes(r->patched, it->len, NULL) <= it->len / 2) {
		/* the patch object itself gets the usual existence check in work_item */
		*plen = engine_patch_build(it->buf, it->len, r->patched, pbuf);
		it->patch = true;
		if (zero_base) {
			it->entry.kind = ENGINE_ENTRY_ZPATCH;
		} else {
			it->entry.kind = ENGINE_ENTRY_PATCH;
			memcpy(it->entry.base, pe->kind == ENGINE_ENTRY_DATA ? pe->id : pe->base,
			       ENGINE_ID_LEN);
		}
		return false;
	}
whole: /* stored whole: the new chunk is its own base */
	memset(r->patched, 0, ((size_t)nb + 7) / 8);
	return false;
}

/* it->entry.id = HMAC id of plain: from the hasher when it computes it (or is computing
 * it), otherwise here. */
static void chunk_id(struct bctx *b, struct engine_codec *c, struct bitem *it, const uint8_t *plain,
                     size_t plen)
{
	struct hitem *h = it->h;
	int st = ID_PENDING;

	if (!b->fused || h == NULL || plain != it->buf ||
	    atomic_compare_exchange_strong(&h->id_state, &st, ID_WORKER)) {
		engine_codec_id(c, plain, plen, it->entry.id);
		return;
	}
	if (st != ID_DONE) { /* ID_HASHER: it is hashing this very chunk now */
		pthread_mutex_lock(&b->idmu);
		while (atomic_load(&h->id_state) != ID_DONE)
			pthread_cond_wait(&b->idcv, &b->idmu);
		pthread_mutex_unlock(&b->idmu);
	}
	memcpy(it->entry.id, h->id, ENGINE_ID_LEN);
}

static void work_item(struct bctx *b, struct engine_codec *c, struct bitem *it, uint8_t *sealed,
                      uint8_t *pbuf, struct engine_backup_timing *tm)
{
	double t0 = engine_now(), t1 = 0, t2 = 0;
	const uint8_t *plain = it->buf;
	size_t plen = it->len;
	struct err e;

	it->entry.offset = it->off;
	it->entry.length = it->len;
	if (engine_is_zero(it->buf, it->len)) { /* holes never get here: see push_item */
		it->entry.kind = ENGINE_ENTRY_ZERO;
		tm->id += engine_now() - t0;
		return;
	}
	it->entry.kind = ENGINE_ENTRY_DATA;
	if (it->mg != NULL) {
		engine_blockmap_rec_alloc(&it->rec, engine_blocks(it->len));
		engine_codec_fingerprints(c, it->buf, it->len, it->rec.fps);
		if (diff_parent(b, c, it, pbuf, &plen)) {
			it->known = true;
			tm->id += engine_now() - t0;
			return;
		}
		if (it->patch)
			plain = pbuf;
	}
	chunk_id(b, c, it, plain, plen);
	if (engine_repo_chunk_exists(b->repo, it->entry.id)) {
		it->known = true;
	} else {
		size_t sl = 0;
		t1 = engine_now();
		enum status st = engine_codec_seal(c, ENGINE_KIND_CHUNK, it->entry.id, plain, plen,
		                                   sealed, &sl, &e);
		t2 = engine_now();

		/* Written now, made durable and visible in batches by the collector: one
		 * fdatasync per chunk right here costs ~3 ms each and serialises on the
		 * journal. */
		if (st == STATUS_OK)
			st = engine_repo_chunk_stage(b->repo, it->entry.id, sealed, sl, &it->staged,
			                             &e);
		if (st != STATUS_OK)
			fail(b, st, &e);
		else
			it->staged_ok = true;
	}
	double t3 = engine_now();
	if (t1 > 0) {
		tm->id += t1 - t0;
		tm->seal += t2 - t1;
		tm->stage += t3 - t2;
	} else {
		tm->id += t3 - t0;
	}
}

static void *worker_main(void *arg)
{
	struct bctx *b = arg;
	struct engine_codec *c = engine_codec_new(b->keys, b->level, !b->o->no_compress);
	/* aligned: chunk files are written with O_DIRECT (engine_repo_chunk_stage) */
	uint8_t *sealed = engine_malloc_aligned(engine_sealed_bound(b->bufsize));
	uint8_t *pbuf = xmalloc(engine_patch_bound((uint32_t)b->bufsize));
	struct engine_backup_timing tm = { 0 };
	struct bitem *it;

	while ((it = engine_queue_pop(&b->work)) != NULL) {
		if (!it->copy && !stopping(b))
			work_item(b, c, it, sealed, pbuf, &tm);
		if (it->buf) {
			buf_release(b, it->buf, it->h);
			it->buf = NULL;
			it->h = NULL;
		}
		if (!engine_queue_push(&b->done, it))
			free(it);
	}
	timing_add(b, &tm);
	if (atomic_fetch_sub(&b->workers_left, 1) == 1)
		engine_queue_close(&b->done);
	free(sealed);
	free(pbuf);
	engine_codec_free(c);
	return NULL;
}

/* ---- setup and collector ---- */

static enum status open_disks(struct bctx *b, const struct engine_disk_source *src, size_t n,
                              const struct engine_manifest *parent, struct err *e)
{
	b->disks = xcalloc(n ? n : 1, sizeof(*b->disks));
	b->n_disks = n;
	for (size_t i = 0; i < n; i++)
		b->disks[i].fd = -1;
	for (size_t i = 0; i < n; i++) {
		struct bdisk *d = &b->disks[i];
		struct stat sb;

		d->src = &src[i];
		if (src[i].name == NULL || src[i].name[0] == '\0' || strlen(src[i].name) > 4096)
			return err_set(e, STATUS_INVALID, "disk %zu: bad name", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(src[j].name, src[i].name) == 0)
				return err_set(e, STATUS_INVALID, "disk %s given twice",
				               src[i].name);
		d->fd = open(src[i].path, O_RDONLY | O_CLOEXEC);
		if (d->fd < 0)
			return err_set(e, errno == ENOENT ? STATUS_NOT_FOUND : STATUS_IO,
			               "disk %s: open %s: %s", src[i].name, src[i].path,
			               strerror(errno));
		if (fstat(d->fd, &sb) != 0)
			return err_set(e, STATUS_IO, "stat %s: %s", src[i].path, strerror(errno));
		if (S_ISREG(sb.st_mode)) {
			d->size = (uint64_t)sb.st_size;
		} else {
			off_t end = lseek(d->fd, 0, SEEK_END);

			if (end < 0)
				return err_set(e, STATUS_INVALID, "disk %s: cannot size %s",
				               src[i].name, src[i].path);
			d->size = (uint64_t)end;
		}
		posix_fadvise(d->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		/* fewer blocks allocated than the size: the file has holes worth probing */
		d->regular = S_ISREG(sb.st_mode);
		d->sparse = !b->o->cdc && d->regular && (uint64_t)sb.st_blocks * 512 < d->size;
		d->has_sha = !b->o->no_image_sha256;
		if (parent != NULL && !b->o->cdc) {
			/* Reuse only a parent chunked the same way; otherwise read it all. */
			const struct engine_manifest_disk *pd =
			        engine_manifest_disk_find(parent, src[i].name);

			if (pd != NULL && !(pd->flags & ENGINE_DISK_CDC) && pd->chunk_size == b->cs)
				d->pdisk = pd;
		}
		if (parent != NULL && src[i].changed != NULL && !b->o->cdc) {
			if (!src[i].changed->normalized)
				return err_set(e, STATUS_INVALID,
				               "disk %s: change list not normalized", src[i].name);
			if (d->pdisk != NULL) {
				d->parent = d->pdisk;
				d->has_sha = false; /* unread parts cannot be hashed */
			}
		}
		d->maps = !b->o->cdc;
		d->sha = EVP_MD_CTX_new();
		if (d->sha == NULL || EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL) != 1)
			return err_set(e, STATUS_INTERNAL, "SHA-256 init failed");
		engine_sha256_init(&d->own);
		if (!b->o->cdc) {
			d->cap_entries = (size_t)((d->size + b->cs - 1) / b->cs);
			d->entries =
			        xcalloc(d->cap_entries ? d->cap_entries : 1, sizeof(*d->entries));
			d->n_entries = d->cap_entries;
			d->n_maps = (d->n_entries + b->map_group - 1) / b->map_group;
			d->map_ids = xcalloc(d->n_maps ? d->n_maps : 1, ENGINE_ID_LEN);
		}
	}
	return STATUS_OK;
}

static void close_disks(struct bctx *b)
{
	for (size_t i = 0; i < b->n_disks; i++) {
		if (b->disks[i].fd >= 0)
			close(b->disks[i].fd);
		EVP_MD_CTX_free(b->disks[i].sha);
		engine_key_wipe(&b->disks[i].own, sizeof(b->disks[i].own)); /* may hold plaintext */
		free(b->disks[i].entries);
		free(b->disks[i].map_ids);
	}
	free(b->disks);
}

struct batch {
	struct bitem *v[BATCH_MAX_FILES];
	size_t n;
	size_t bytes;
};

static void account(struct bitem *it, struct engine_backup_result *res)
{
	if (it->is_map) {
		res->maps_new += it->is_new;
		res->bytes_stored += it->stored;
		return;
	}
	res->chunks_total++;
	if (it->patch)
		res->chunks_patch++;
	else if (it->copy)
		res->chunks_parent++;
	else if (it->entry.kind == ENGINE_ENTRY_ZERO)
		res->chunks_zero++;
	else if (it->is_new)
		res->chunks_new++;
	else
		res->chunks_known++;
	res->bytes_stored += it->stored;
}

/* Make every staged chunk of the batch durable, then publish them (link into place). */
static void batch_flush(struct bctx *b, struct batch *bt, struct engine_backup_result *res)
{
	double t0 = engine_now();
	struct err e;

	for (size_t i = 0; i < bt->n; i++) {
		struct bitem *it = bt->v[i];

		if (!stopping(b) && fdatasync(it->staged.fd) != 0) {
			err_set(&e, STATUS_IO, "fdatasync chunk: %s", strerror(errno));
			fail(b, STATUS_IO, &e);
		}
	}
	for (size_t i = 0; i < bt->n; i++) {
		struct bitem *it = bt->v[i];

		if (stopping(b)) {
			engine_repo_chunk_discard(&it->staged);
		} else {
			size_t len = it->staged.len;
			enum status st = engine_repo_chunk_publish(b->repo, &it->staged, true,
			                                           &it->is_new, &e);

			if (st != STATUS_OK)
				fail(b, st, &e);
			if (it->is_new)
				it->stored = len;
			else
				it->known = true;
		}
		account(it, res);
		engine_blockmap_rec_cleanup(&it->rec);
		free(it);
	}
	/* Make the new directory entries durable now, while the workers run on, rather than
	 * all of them at commit time (commit syncs what later batches add). */
	if (bt->n > 0 && !stopping(b)) {
		enum status st = engine_repo_sync(b->repo, &e);

		if (st != STATUS_OK)
			fail(b, st, &e);
	}
	bt->n = 0;
	bt->bytes = 0;
	res->timing.durable += engine_now() - t0;
}

static void collect(struct bctx *b, struct bitem *it, struct engine_backup_result *res)
{
	struct bdisk *d = &b->disks[it->disk];

	if (it->idx >= d->cap_entries) {
		size_t ncap = d->cap_entries ? d->cap_entries * 2 : 256;

		while (ncap <= it->idx)
			ncap *= 2;
		d->entries = xrealloc(d->entries, ncap * sizeof(*d->entries));
		memset(d->entries + d->cap_entries, 0,
		       (ncap - d->cap_entries) * sizeof(*d->entries));
		d->cap_entries = ncap;
	}
	if (it->idx + 1 > d->n_entries)
		d->n_entries = it->idx + 1;
	d->entries[it->idx] = it->entry;
}

static void batch_add(struct bctx *b, struct batch *bt, struct bitem *it,
                      struct engine_backup_result *res)
{
	bt->v[bt->n++] = it;
	bt->bytes += it->staged.len;
	if (bt->n == BATCH_MAX_FILES || bt->bytes >= BATCH_MAX_BYTES)
		batch_flush(b, bt, res);
}

/* Every entry of the group is in: store its block map (or reuse the parent's). */
static void group_finish(struct bctx *b, struct engine_codec *c, struct mgroup *mg,
                         struct batch *bt, struct engine_backup_result *res)
{
	struct bdisk *d = &b->disks[mg->disk];
	struct err e;

	if (mg->reuse) {
		memcpy(d->map_ids[mg->g], d->pdisk->map_ids[mg->g], ENGINE_ID_LEN);
	} else if (!stopping(b)) {
		size_t plen = 0, sl = 0;
		uint8_t *plain = engine_blockmap_encode(mg->recs, mg->n, &plen);
		struct bitem *mit = xcalloc(1, sizeof(*mit));

		mit->is_map = true;
		engine_codec_id(c, plain, plen, d->map_ids[mg->g]);
		if (!engine_repo_chunk_exists(b->repo, d->map_ids[mg->g])) {
			uint8_t *sealed = xmalloc(engine_sealed_bound(plen));
			enum status st = engine_codec_seal(c, ENGINE_KIND_CHUNK, d->map_ids[mg->g],
			                                   plain, plen, sealed, &sl, &e);

			if (st == STATUS_OK)
				st = engine_repo_chunk_stage(b->repo, d->map_ids[mg->g], sealed, sl,
				                             &mit->staged, &e);
			free(sealed);
			if (st != STATUS_OK) {
				fail(b, st, &e);
			} else {
				mit->staged_ok = true;
				batch_add(b, bt, mit, res);
				mit = NULL;
			}
		}
		free(mit);
		free(plain);
	}
	engine_blockmap_free(mg->prec, mg->pn);
	engine_blockmap_free(mg->recs, mg->n);
	mg->prec = NULL;
	mg->recs = NULL;
}

/* Hand an entry's block map record to its group (moved, or copied from the parent's map for
 * an entry taken over by change tracking). */
static void group_collect(struct bctx *b, struct engine_codec *c, struct bitem *it,
                          struct batch *bt, struct engine_backup_result *res)
{
	struct mgroup *mg = it->mg;
	size_t j = it->idx - mg->first;

	if (it->copy) {
		if (mg->prec != NULL && j < mg->pn)
			engine_blockmap_rec_copy(&mg->recs[j], &mg->prec[j]);
	} else {
		mg->recs[j] = it->rec;
		memset(&it->rec, 0, sizeof(it->rec));
	}
	if (++mg->collected == mg->n)
		group_finish(b, c, mg, bt, res);
}

static void report(struct bctx *b, const struct engine_backup_result *res, uint64_t done, double t0)
{
	struct engine_progress p;
	uint64_t hashed = atomic_load(&b->hashed);

	if (b->o->progress == NULL)
		return;
	if (hashed < done)
		done = hashed;
	p.bytes_total = res->bytes_total;
	p.bytes_done = done;
	p.bytes_read = atomic_load(&b->bytes_read);
	p.bytes_stored = res->bytes_stored;
	p.chunks_new = res->chunks_new + res->chunks_patch;
	p.elapsed = engine_now() - t0;
	p.percent = res->bytes_total ? 100.0 * (double)done / (double)res->bytes_total : 100.0;
	p.speed = p.elapsed > 0 ? (double)done / p.elapsed : 0;
	b->o->progress(&p, b->o->progress_ud);
}

static enum status commit(struct bctx *b, struct engine_codec *c, const char *rp_id,
                          const struct engine_backup_result *res, struct err *e)
{
	struct engine_manifest m = { 0 };
	enum status st;

	m.rp_id = (char *)rp_id;
	m.parent_id = (char *)(b->o->parent_rp ? b->o->parent_rp : "");
	m.tenant = (char *)engine_repo_tenant(b->repo);
	m.source = (char *)(b->o->source ? b->o->source : "");
	m.created = (int64_t)time(NULL);
	m.bytes_new = res->bytes_stored;
	m.n_disks = b->n_disks;
	m.disks = xcalloc(b->n_disks ? b->n_disks : 1, sizeof(*m.disks));
	for (size_t i = 0; i < b->n_disks; i++) {
		struct bdisk *d = &b->disks[i];
		struct engine_manifest_disk *md = &m.disks[i];

		md->name = (char *)d->src->name;
		md->size = d->size;
		md->chunk_size = b->o->cdc ? b->cdc.avg : b->cs;
		md->flags = b->o->cdc ? ENGINE_DISK_CDC : 0;
		if (d->has_sha && image_final(b, d, md->sha256))
			md->flags |= ENGINE_DISK_HAS_SHA256;
		md->n_entries = d->n_entries;
		md->entries = d->entries;
		if (d->maps) {
			md->flags |= ENGINE_DISK_HAS_MAPS;
			md->map_group = b->map_group;
			md->n_maps = d->n_maps;
			md->map_ids = d->map_ids;
		}
	}
	/* Every chunk file was fdatasync'ed; make their directory entries durable too before
	 * the manifest that references them can appear. */
	st = engine_repo_sync(b->repo, e);
	if (st == STATUS_OK)
		st = engine_manifest_save(b->repo, c, &m, e);
	free(m.disks);
	return st;
}

static bool chunk_size_ok(uint32_t cs)
{
	return cs > 0 && cs % 4096 == 0 && cs <= ENGINE_CHUNK_MAX;
}

enum status engine_backup_run(struct engine_repo *repo, const struct engine_tenant_keys *keys,
                              const struct engine_disk_source *disks, size_t n_disks,
                              const struct engine_backup_opts *o, struct engine_backup_result *res,
                              struct err *e)
{
	struct bctx b;
	struct engine_manifest *parent = NULL;
	struct engine_codec *c;
	pthread_t reader, hasher, *workers = NULL;
	unsigned nw, started = 0;
	size_t npool;
	bool hasher_started = false;
	double t0 = engine_now(), last = t0;
	uint64_t done_bytes = 0;
	enum status st = STATUS_OK;
	char rp_id[ENGINE_RP_ID_MAX];
	struct bitem *it;
	bool reader_started = false;
	struct batch *bt = xcalloc(1, sizeof(*bt));

	memset(res, 0, sizeof(*res));
	memset(&b, 0, sizeof(b));
	b.repo = repo;
	b.keys = keys;
	b.o = o;
	b.cs = o->chunk_size ? o->chunk_size : ENGINE_CHUNK_SIZE_DEFAULT;
	b.level = o->zstd_level_set ? o->zstd_level : ENGINE_ZSTD_LEVEL_DEFAULT;
	b.map_group = ENGINE_MAP_GROUP_DEFAULT;
	b.groups_tail = &b.groups;
	pthread_mutex_init(&b.emu, NULL);
	pthread_mutex_init(&b.idmu, NULL);
	pthread_cond_init(&b.idcv, NULL);
	c = engine_codec_new(keys, b.level, !o->no_compress);
	engine_codec_fingerprints(c, zero_block, ENGINE_BLOCK, b.zfp);

	if (!chunk_size_ok(b.cs)) {
		st = err_set(e, STATUS_INVALID, "chunk size must be a multiple of 4096, <= 8 MiB");
		goto out;
	}
	if (b.level < -50 || b.level > 22) {
		st = err_set(e, STATUS_INVALID, "zstd level must be -50..22");
		goto out;
	}
	if (o->rp_id != NULL) {
		if (!engine_rp_id_valid(o->rp_id)) {
			st = err_set(e, STATUS_INVALID, "invalid restore point id");
			goto out;
		}
		snprintf(rp_id, sizeof(rp_id), "%s", o->rp_id);
	} else {
		engine_rp_id_generate(rp_id, sizeof(rp_id));
	}
	snprintf(res->rp_id, sizeof(res->rp_id), "%s", rp_id);
	if (o->cdc && engine_fastcdc_init(&b.cdc, ENGINE_CDC_MIN_DEFAULT, ENGINE_CDC_AVG_DEFAULT,
	                                  ENGINE_CDC_MAX_DEFAULT, e) != STATUS_OK) {
		st = STATUS_INTERNAL;
		goto out;
	}
	if (o->parent_rp != NULL) {
		st = engine_manifest_load(repo, c, o->parent_rp, &parent, e);
		if (st != STATUS_OK)
			goto out;
		/* No chunk size asked for: keep the parent's, so an incremental after a change of
		 * the default (1 MiB before 2026-11) still reuses its parent's chunks. */
		for (size_t i = 0; o->chunk_size == 0 && !o->cdc && i < parent->n_disks; i++) {
			uint32_t pcs = parent->disks[i].chunk_size;

			if (!(parent->disks[i].flags & ENGINE_DISK_CDC) && chunk_size_ok(pcs)) {
				b.cs = pcs;
				break;
			}
		}
	}
	st = open_disks(&b, disks, n_disks, parent, e);
	if (st != STATUS_OK)
		goto out_disks;
	for (size_t i = 0; i < b.n_disks; i++)
		res->bytes_total += b.disks[i].size;

	nw = o->threads ? o->threads : engine_default_threads();
	if (nw > 64)
		nw = 64;
	b.bufsize = o->cdc ? b.cdc.max : b.cs;
	for (size_t i = 0; i < b.n_disks; i++)
		b.hashing |= b.disks[i].has_sha;
	if (b.hashing)
		b.zeros = xcalloc(1, b.bufsize);
	/* fused only where it is faster than OpenSSL's single hash plus a separate HMAC */
	b.fused = b.hashing && engine_sha256_fast();
	if (b.fused)
		engine_hmac256_init(&b.idkey, keys->id_key, ENGINE_KEY_LEN);
	/* Buffers: the work queue, one per worker, the reader's, and slack so the hasher can
	 * trail the workers by a few chunks without stalling the reader. */
	npool = 3 * (size_t)nw + 3;
	engine_pool_init(&b.pool, npool, b.bufsize);
	engine_queue_init(&b.work, 2 * (size_t)nw);
	engine_queue_init(&b.hash, npool);
	/* Items in the done queue hold no chunk buffers, only a block map record (~1/128 of
	 * the chunk): a deep queue lets workers run on while the collector waits for a batch's
	 * fdatasyncs. Deep enough for 1 GiB of chunks, so records stay within ~8 MiB. */
	engine_queue_init(&b.done,
	                  b.bufsize >= (1u << 20) ? (size_t)1024 * (1u << 20) / b.bufsize : 1024);
	atomic_store(&b.workers_left, nw);
	workers = xcalloc(nw, sizeof(*workers));
	for (started = 0; started < nw; started++)
		if (pthread_create(&workers[started], NULL, worker_main, &b) != 0)
			break;
	if (started < nw) {
		/* Account for the workers that never ran so the done queue still closes. */
		if (atomic_fetch_sub(&b.workers_left, nw - started) == nw - started)
			engine_queue_close(&b.done);
		if (started == 0) {
			engine_queue_close(&b.work);
			st = err_set(e, STATUS_INTERNAL, "cannot start worker threads");
			goto out_pipeline;
		}
	}
	if (b.hashing) {
		if (pthread_create(&hasher, NULL, hasher_main, &b) != 0) {
			engine_queue_close(&b.work);
			engine_queue_close(&b.hash);
			fail(&b, STATUS_INTERNAL, NULL);
		} else {
			hasher_started = true;
		}
	}
	if (atomic_load(&b.failed)) {
		/* no hasher: the reader is not started either */
	} else if (pthread_create(&reader, NULL, reader_main, &b) != 0) {
		engine_queue_close(&b.work);
		engine_queue_close(&b.hash);
		fail(&b, STATUS_INTERNAL, NULL);
	} else {
		reader_started = true;
	}

	while ((it = engine_queue_pop(&b.done)) != NULL) {
		collect(&b, it, res);
		done_bytes += it->len;
		if (it->mg != NULL)
			group_collect(&b, c, it, bt, res);
		if (it->staged_ok) {
			batch_add(&b, bt, it, res);
		} else {
			account(it, res);
			engine_blockmap_rec_cleanup(&it->rec);
			free(it);
		}
		double now = engine_now();
		if (now - last >= 1.0) {
			last = now;
			report(&b, res, done_bytes, t0);
		}
	}
	batch_flush(&b, bt, res);
	/* the hasher may still be hashing a long hole: keep the progress coming */
	while (hasher_started && b.o->progress != NULL && !atomic_load(&b.hasher_done)) {
		const struct timespec ts = { 0, 20000000L }; /* 20 ms */
		double now;

		nanosleep(&ts, NULL);
		now = engine_now();
		if (now - last >= 1.0) {
			last = now;
			report(&b, res, done_bytes, t0);
		}
	}
out_pipeline:
	if (reader_started)
		pthread_join(reader, NULL);
	else
		engine_queue_close(&b.hash);
	if (hasher_started)
		pthread_join(hasher, NULL);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	free(workers);
	engine_queue_cleanup(&b.work);
	engine_queue_cleanup(&b.done);
	engine_queue_cleanup(&b.hash);
	engine_pool_cleanup(&b.pool);
	free(b.zeros);
	while (b.groups != NULL) {
		struct mgroup *g = b.groups;

		b.groups = g->next;
		engine_blockmap_free(g->prec, g->pn);
		engine_blockmap_free(g->recs, g->n);
		free(g);
	}
	res->maps_unreadable = atomic_load(&b.maps_unreadable);
	res->chunks_id_fused = atomic_load(&b.ids_fused);
	res->bytes_read = atomic_load(&b.bytes_read);
	res->timing.read = b.timing.read;
	res->timing.read_wait = b.timing.read_wait;
	res->timing.image_sha = b.timing.image_sha;
	res->timing.id = b.timing.id;
	res->timing.seal = b.timing.seal;
	res->timing.stage = b.timing.stage;
	if (st != STATUS_OK)
		goto out_disks;
	if (cancelled(&b)) {
		res->cancelled = true;
		st = err_set(e, STATUS_UNAVAILABLE, "backup cancelled; no restore point written");
		goto out_disks;
	}
	if (b.first_st != STATUS_OK) {
		st = b.first_st;
		if (e != NULL)
			*e = b.first;
		goto out_disks;
	}
	report(&b, res, done_bytes, t0);
	double tc = engine_now();
	st = commit(&b, c, rp_id, res, e);
	res->timing.commit = engine_now() - tc;
out_disks:
	close_disks(&b);
	engine_manifest_free(parent);
out:
	free(bt);
	engine_codec_free(c);
	pthread_mutex_destroy(&b.emu);
	pthread_mutex_destroy(&b.idmu);
	pthread_cond_destroy(&b.idcv);
	engine_key_wipe(&b.idkey, sizeof(b.idkey));
	res->seconds = engine_now() - t0;
	return st;
}
