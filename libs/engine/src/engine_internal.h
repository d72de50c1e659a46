/* engine_internal.h - helpers shared by the engine's own source files (not installed,
 * not for the datastore/ext4index modules). Bounded queue, buffer pool, hex, fs. */
#ifndef ENGINE_INTERNAL_H
#define ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/hex.h"

/* ---- little-endian fields of the on-disk formats ---- */
static inline void engine_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t engine_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/** @brief Default pipeline width: online CPUs + 1 (one thread can wait on I/O). */
unsigned engine_default_threads(void);

/* ---- file system ---- */
/** @brief Write buf to dir/name atomically: temp file in dir, fsync, link (no overwrite),
 *  unlink temp, fsync dir. @returns STATUS_CONFLICT if name exists, STATUS_IO otherwise. */
enum status engine_fs_write_once(const char *dir, const char *name, const void *buf, size_t n,
                                 bool sync_dir, struct err *e) MUST_CHECK;
/** @brief Read a whole file of at most max bytes. @returns STATUS_NOT_FOUND, STATUS_TOO_LARGE,
 *  STATUS_IO. *out is new (caller frees). */
enum status engine_fs_read_all(const char *path, size_t max, uint8_t **out, size_t *n,
                               struct err *e) MUST_CHECK;
/** @brief mkdir -p with mode. */
enum status engine_fs_mkdirs(const char *path, unsigned mode, struct err *e) MUST_CHECK;
/** @brief fsync a directory. */
enum status engine_fs_sync_dir(const char *path, struct err *e) MUST_CHECK;
/** @brief Full pread/pwrite loops. @returns bytes done or -1 (errno set). */
long long engine_fs_pread_full(int fd, void *buf, size_t n, uint64_t off);
long long engine_fs_pwrite_full(int fd, const void *buf, size_t n, uint64_t off);
/** @brief true if every byte of p[0..n) is zero. */
bool engine_is_zero(const void *p, size_t n);
/** @brief Monotonic seconds. */
double engine_now(void);

/* ---- bounded queue of pointers (many producers, many consumers) ---- */
struct engine_queue {
	pthread_mutex_t mu;
	pthread_cond_t not_empty;
	pthread_cond_t not_full;
	void **v;
	size_t cap, head, len;
	bool closed;
};
void engine_queue_init(struct engine_queue *q, size_t cap);
void engine_queue_cleanup(struct engine_queue *q);
/** @brief Blocks while full. @returns false if the queue is closed (item not queued). */
bool engine_queue_push(struct engine_queue *q, void *item);
/** @brief Blocks while empty. @returns NULL when closed and drained. */
void *engine_queue_pop(struct engine_queue *q);
void engine_queue_close(struct engine_queue *q);

/* ---- direct I/O ---- */
/* Alignment of buffers, offsets and lengths for O_DIRECT (the common logical block size). */
#define ENGINE_DIO_ALIGN 4096u
/** @brief n bytes (rounded up to ENGINE_DIO_ALIGN) aligned to ENGINE_DIO_ALIGN; aborts when out
 *  of memory. Free with free(). */
void *engine_malloc_aligned(size_t n);

/* ---- fixed pool of equal-size buffers: bounds the pipeline's memory ---- */
/* Buffers are ENGINE_DIO_ALIGN-aligned (usable for O_DIRECT). */
struct engine_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	void **free;
	size_t nfree, created, max;
	size_t size;
};
void engine_pool_init(struct engine_pool *p, size_t max_buffers, size_t size);
void engine_pool_cleanup(struct engine_pool *p);
/** @brief Blocks until a buffer is free. @returns borrowed buffer of p->size bytes. */
void *engine_pool_get(struct engine_pool *p);
void engine_pool_put(struct engine_pool *p, void *buf);

#endif
