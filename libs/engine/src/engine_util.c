/* engine_util.c - hex, file system helpers, bounded queue and buffer pool. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "common/xalloc.h"

#include "engine_internal.h"

void engine_hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool engine_hex_decode(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]);
		int lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);

		if (lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return s[2 * n] == '\0';
}

long long engine_fs_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (long long)done;
}

long long engine_fs_pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pwrite(fd, (const char *)buf + done, n - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return (long long)done;
}

enum status engine_fs_sync_dir(const char *path, struct err *e)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return err_set(e, STATUS_IO, "open dir %s: %s", path, strerror(errno));
	if (fsync(fd) != 0) {
		int saved = errno;

		close(fd);
		return err_set(e, STATUS_IO, "fsync dir %s: %s", path, strerror(saved));
	}
	close(fd);
	return STATUS_OK;
}

enum status engine_fs_mkdirs(const char *path, unsigned mode, struct err *e)
{
	char *p = xstrdup(path);
	enum status st = STATUS_OK;

	for (char *s = p + 1;; s++) {
		bool end = *s == '\0';

		if (*s == '/' || end) {
			*s = '\0';
			if (mkdir(p, mode) != 0 && errno != EEXIST) {
				st = err_set(e, STATUS_IO, "mkdir %s: %s", p, strerror(errno));
				break;
			}
			if (end)
				break;
			*s = '/';
		}
	}
	free(p);
	return st;
}

enum status engine_fs_write_once(const char *dir, const char *name, const void *buf, size_t n,
                                 bool sync_dir, struct err *e)
{
	char *tmp = xasprintf("%s/.tmp-%s-XXXXXX", dir, name);
	char *final = xasprintf("%s/%s", dir, name);
	enum status st = STATUS_OK;
	int fd = mkostemp(tmp, O_CLOEXEC);

	if (fd < 0) {
		st = err_set(e, STATUS_IO, "create temp in %s: %s", dir, strerror(errno));
		goto out;
	}
	if (engine_fs_pwrite_full(fd, buf, n, 0) < 0 || fdatasync(fd) != 0) {
		st = err_set(e, STATUS_IO, "write %s: %s", final, strerror(errno));
		close(fd);
		goto out_unlink;
	}
	if (close(fd) != 0) {
		st = err_set(e, STATUS_IO, "close %s: %s", final, strerror(errno));
		goto out_unlink;
	}
	/* link() fails with EEXIST: an existing object is never replaced. */
	if (link(tmp, final) != 0) {
		if (errno == EEXIST)
			st = err_set(e, STATUS_CONFLICT, "%s exists", name);
		else
			st = err_set(e, STATUS_IO, "link %s: %s", final, strerror(errno));
		goto out_unlink;
	}
	unlink(tmp);
	if (sync_dir)
		st = engine_fs_sync_dir(dir, e);
	goto out;
out_unlink:
	unlink(tmp);
out:
	free(final);
	free(tmp);
	return st;
}

enum status engine_fs_read_all(const char *path, size_t max, uint8_t **out, size_t *n,
                               struct err *e)
{
	struct stat sb;
	enum status st = STATUS_OK;
	uint8_t *b = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*out = NULL;
	*n = 0;
	if (fd < 0) {
		if (errno == ENOENT)
			return err_set(e, STATUS_NOT_FOUND, "%s: not found", path);
		return err_set(e, STATUS_IO, "open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &sb) != 0) {
		st = err_set(e, STATUS_IO, "stat %s: %s", path, strerror(errno));
		goto out;
	}
	if ((uint64_t)sb.st_size > max) {
		st = err_set(e, STATUS_TOO_LARGE, "%s: %lld bytes, limit %zu", path,
		             (long long)sb.st_size, max);
		goto out;
	}
	b = xmalloc((size_t)sb.st_size + 1);
	long long r = engine_fs_pread_full(fd, b, (size_t)sb.st_size, 0);
	if (r < 0) {
		st = err_set(e, STATUS_IO, "read %s: %s", path, strerror(errno));
		free(b);
		goto out;
	}
	*out = b;
	*n = (size_t)r;
out:
	close(fd);
	return st;
}

bool engine_is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i = 0;

	/* Check a small prefix byte-wise, then compare the buffer with itself shifted: the
	 * whole buffer is zero iff b[0] == 0 and b[i] == b[i+k] for the rest. */
	for (; i < n && i < 16; i++)
		if (b[i] != 0)
			return false;
	if (n <= 16)
		return true;
	return memcmp(b, b + 16, n - 16) == 0;
}

double engine_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void engine_queue_init(struct engine_queue *q, size_t cap)
{
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	q->v = xcalloc(cap, sizeof(void *));
	q->cap = cap;
	q->head = 0;
	q->len = 0;
	q->closed = false;
}

void engine_queue_cleanup(struct engine_queue *q)
{
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->not_empty);
	pthread_cond_destroy(&q->not_full);
	free(q->v);
	q->v = NULL;
}

bool engine_queue_push(struct engine_queue *q, void *item)
{
	pthread_mutex_lock(&q->mu);
	while (q->len == q->cap && !q->closed)
		pthread_cond_wait(&q->not_full, &q->mu);
	if (q->closed) {
		pthread_mutex_unlock(&q->mu);
		return false;
	}
	q->v[(q->head + q->len) % q->cap] = item;
	q->len++;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->mu);
	return true;
}

void *engine_queue_pop(struct engine_queue *q)
{
	void *item = NULL;

	pthread_mutex_lock(&q->mu);
	while (q->len == 0 && !q->closed)
		pthread_cond_wait(&q->not_empty, &q->mu);
	if (q->len > 0) {
		item = q->v[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
		pthread_cond_signal(&q->not_full);
	}
	pthread_mutex_unlock(&q->mu);
	return item;
}

void engine_queue_close(struct engine_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = true;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->mu);
}

void engine_pool_init(struct engine_pool *p, size_t max_buffers, size_t size)
{
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->free = xcalloc(max_buffers, sizeof(void *));
	p->nfree = 0;
	p->created = 0;
	p->max = max_buffers;
	p->size = size;
}

void engine_pool_cleanup(struct engine_pool *p)
{
	for (size_t i = 0; i < p->nfree; i++)
		free(p->free[i]);
	free(p->free);
	p->free = NULL;
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
}

void *engine_pool_get(struct engine_pool *p)
{
	void *b;

	pthread_mutex_lock(&p->mu);
	while (p->nfree == 0 && p->created == p->max)
		pthread_cond_wait(&p->cv, &p->mu);
	if (p->nfree > 0) {
		b = p->free[--p->nfree];
	} else {
		p->created++;
		b = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	if (b == NULL)
		b = engine_malloc_aligned(p->size);
	return b;
}

unsigned engine_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 2 : (unsigned)n + 1;
}

void *engine_malloc_aligned(size_t n)
{
	void *p = NULL;
	size_t rounded = (n + ENGINE_DIO_ALIGN - 1) / ENGINE_DIO_ALIGN * ENGINE_DIO_ALIGN;

	if (posix_memalign(&p, ENGINE_DIO_ALIGN, rounded ? rounded : ENGINE_DIO_ALIGN) != 0)
		abort(); /* out of memory, as xmalloc */
	return p;
}

void engine_pool_put(struct engine_pool *p, void *buf)
{
	pthread_mutex_lock(&p->mu);
	p->free[p->nfree++] = buf;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}
