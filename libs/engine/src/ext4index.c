/* ext4index.c - list the files of ext2/3/4 file systems through libext2fs and a custom,
 * read-only io_manager whose reads go to a caller's callback. */
#include "engine/ext4index.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <ext2fs/ext2_err.h>
#include <ext2fs/ext2fs.h>

#include "common/buf.h"
#include "common/xalloc.h"

/* ---- the fd source ---------------------------------------------------------------------- */

static enum status fd_read(void *arg, void *buf, size_t len, uint64_t off, struct err *e)
{
	int fd = (int)(intptr_t)arg;
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return err_set(e, STATUS_IO, "read at %llu: %s",
			               (unsigned long long)off + done,
			               r < 0 ? strerror(errno) : "unexpected end of file");
		done += (size_t)r;
	}
	return STATUS_OK;
}

enum status ext4index_source_fd(int fd, struct ext4index_source *src, struct err *e)
{
	struct stat sb;

	if (fstat(fd, &sb) != 0)
		return err_set(e, STATUS_IO, "fstat: %s", strerror(errno));
	src->read = fd_read;
	src->arg = (void *)(intptr_t)fd; /* NOLINT(performance-no-int-to-ptr) */
	src->size = (uint64_t)sb.st_size;
	return STATUS_OK;
}

const char *ext4index_type_str(enum ext4index_type t)
{
	switch (t) {
	case EXT4INDEX_FILE:
		return "file";
	case EXT4INDEX_DIR:
		return "dir";
	case EXT4INDEX_SYMLINK:
		return "symlink";
	default:
		return "other";
	}
}

static enum status src_read(const struct ext4index_source *src, void *buf, size_t len, uint64_t off,
                            struct err *e)
{
	if (off > src->size || len > src->size - off)
		return err_set(e, STATUS_IO, "read [%llu, +%zu) past the end of the disk",
		               (unsigned long long)off, len);
	return src->read(src->arg, buf, len, off, e);
}

/* ---- partitions ------------------------------------------------------------------------- */

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

/* Is there an ext2/3/4 superblock magic at byte off of the disk? */
static enum status ext_magic(const struct ext4index_source *src, uint64_t off, uint64_t size,
                             bool *is_ext, struct err *e)
{
	unsigned char sb[2] = { 0 };
	enum status st;

	*is_ext = false;
	if (size < 2048 || off + 1024 + 58 > src->size)
		return STATUS_OK;
	st = src_read(src, sb, 2, off + 1024 + 56, e);
	if (st != STATUS_OK)
		return st;
	*is_ext = get16(sb) == EXT2_SUPER_MAGIC;
	return STATUS_OK;
}

struct parts {
	struct ext4index_part *v;
	size_t n, cap;
};

static void parts_add(struct parts *ps, const struct ext4index_source *src, int number,
                      const char *table, uint64_t off, uint64_t size)
{
	struct ext4index_part *p;

	if (size == 0 || off >= src->size || size > src->size - off)
		return; /* outside the disk: a damaged or truncated table */
	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 8;
		ps->v = xrealloc(ps->v, ps->cap * sizeof(*ps->v));
	}
	p = &ps->v[ps->n++];
	p->number = number;
	p->table = table;
	p->offset = off;
	p->size = size;
	p->is_ext = false; /* filled in by ext4index_partitions() */
}

static enum status gpt_scan(const struct ext4index_source *src, uint64_t sector, struct parts *ps,
                            bool *found, struct err *e)
{
	unsigned char hdr[92];
	uint64_t entries_lba;
	uint32_t n_entries, entry_size;
	unsigned char *ent = NULL;
	enum status st;

	*found = false;
	if (src->size < sector * 2 + sizeof(hdr))
		return STATUS_OK;
	st = src_read(src, hdr, sizeof(hdr), sector, e);
	if (st != STATUS_OK)
		return st;
	if (memcmp(hdr, "EFI PART", 8) != 0)
		return STATUS_OK;
	*found = true;
	entries_lba = get64(hdr + 72);
	n_entries = get32(hdr + 80);
	entry_size = get32(hdr + 84);
	if (n_entries > 4096 || entry_size < 128 || entry_size > 4096 || entry_size % 8 != 0)
		return STATUS_OK; /* damaged header: no partitions */
	if (entries_lba == 0 || entries_lba > src->size / sector)
		return STATUS_OK;
	ent = xmalloc(entry_size);
	for (uint32_t i = 0; i < n_entries; i++) {
		static const unsigned char zero[16];
		uint64_t off = entries_lba * sector + (uint64_t)i * entry_size;
		uint64_t first, last;

		if (off + entry_size > src->size)
			break;
		st = src_read(src, ent, entry_size, off, e);
		if (st != STATUS_OK)
			break;
		if (memcmp(ent, zero, 16) == 0)
			continue;
		first = get64(ent + 32);
		last = get64(ent + 40);
		if (last < first || first > UINT64_MAX / sector || last >= UINT64_MAX / sector)
			continue;
		parts_add(ps, src, (int)i + 1, "gpt", first * sector, (last - first + 1) * sector);
	}
	free(ent);
	return st;
}

static bool mbr_is_extended(unsigned char type)
{
	return type == 0x05 || type == 0x0f || type == 0x85;
}

static enum status mbr_scan(const struct ext4index_source *src, const unsigned char mbr[512],
                            struct parts *ps, struct err *e)
{
	for (int i = 0; i < 4; i++) {
		const unsigned char *pe = mbr + 446 + (size_t)i * 16;
		unsigned char type = pe[4];
		uint64_t start = get32(pe + 8), count = get32(pe + 12);

		if (type == 0 || count == 0)
			continue;
		if (!mbr_is_extended(type)) {
			parts_add(ps, src, i + 1, "mbr", start * 512, count * 512);
			continue;
		}
		/* Logical partitions: a chain of EBRs, each relative to the extended start. */
		uint64_t ebr = start;
		for (int n = 0; n < 256 && ebr != 0; n++) {
			unsigned char b[512] = { 0 };
			enum status st;

			if ((ebr + 1) * 512 > src->size)
				break;
			st = src_read(src, b, sizeof(b), ebr * 512, e);
			if (st != STATUS_OK)
				return st;
			if (b[510] != 0x55 || b[511] != 0xaa)
				break;
			if (b[446 + 4] != 0 && get32(b + 446 + 12) != 0)
				parts_add(ps, src, 5 + n, "mbr", (ebr + get32(b + 446 + 8)) * 512,
				          (uint64_t)get32(b + 446 + 12) * 512);
			if (b[462 + 4] == 0 || get32(b + 462 + 8) == 0)
				break;
			ebr = start + get32(b + 462 + 8);
		}
	}
	return STATUS_OK;
}

enum status ext4index_partitions(const struct ext4index_source *src, struct ext4index_part **out,
                                 size_t *n, struct err *e)
{
	struct parts ps = { 0 };
	unsigned char mbr[512];
	bool found = false;
	enum status st = STATUS_OK;

	*out = NULL;
	*n = 0;
	st = ext_magic(src, 0, src->size, &found, e);
	if (st != STATUS_OK)
		goto fail;
	if (found) {
		parts_add(&ps, src, 0, "none", 0, src->size);
		goto done;
	}
	if (src->size < 512)
		goto done;
	st = src_read(src, mbr, sizeof(mbr), 0, e);
	if (st != STATUS_OK)
		goto fail;
	if (mbr[510] != 0x55 || mbr[511] != 0xaa)
		goto done;
	for (uint64_t sector = 512; sector <= 4096 && !found; sector *= 8) {
		st = gpt_scan(src, sector, &ps, &found, e);
		if (st != STATUS_OK)
			goto fail;
	}
	if (!found)
		st = mbr_scan(src, mbr, &ps, e);
	if (st != STATUS_OK)
		goto fail;
done:
	for (size_t i = 0; i < ps.n; i++) {
		st = ext_magic(src, ps.v[i].offset, ps.v[i].size, &ps.v[i].is_ext, e);
		if (st != STATUS_OK)
			goto fail;
	}
	*out = ps.v;
	*n = ps.n;
	return STATUS_OK;
fail:
	free(ps.v);
	return st;
}

/* ---- the io_manager --------------------------------------------------------------------- */

/* What a channel reads: a window [base, base+size) of the source. libext2fs's open()
 * receives only a name, so the name carries this struct's address ("cairn-idx:%p"); no
 * global state is needed and independent indexes can run in parallel. */
struct chan_ctx {
	const struct ext4index_source *src;
	uint64_t base, size;
	struct err err; /* the first read failure, for the caller's message */
	bool failed;
};

static errcode_t cio_open(const char *name, int flags, io_channel *channel);

static errcode_t cio_close(io_channel io)
{
	if (--io->refcount > 0)
		return 0;
	ext2fs_free_mem(&io->name);
	ext2fs_free_mem(&io);
	return 0;
}

static errcode_t cio_set_blksize(io_channel io, int blksize)
{
	if (blksize <= 0 || blksize > (1 << 16))
		return EXT2_ET_INVALID_ARGUMENT;
	io->block_size = blksize;
	return 0;
}

static errcode_t cio_read_blk64(io_channel io, unsigned long long block, int count, void *data)
{
	struct chan_ctx *c = io->private_data;
	uint64_t len = count < 0 ? (uint64_t)(-(int64_t)count) : (uint64_t)count * io->block_size;
	uint64_t off;

	if (block > UINT64_MAX / (uint64_t)io->block_size)
		return EXT2_ET_SHORT_READ;
	off = block * (uint64_t)io->block_size;
	if (off > c->size || len > c->size - off || len > SIZE_MAX)
		return EXT2_ET_SHORT_READ;
	if (src_read(c->src, data, (size_t)len, c->base + off, &c->err) != STATUS_OK) {
		c->failed = true;
		return EXT2_ET_SHORT_READ;
	}
	return 0;
}

static errcode_t cio_read_blk(io_channel io, unsigned long block, int count, void *data)
{
	return cio_read_blk64(io, block, count, data);
}

static errcode_t cio_write_blk(io_channel io, unsigned long block, int count, const void *data)
{
	return EXT2_ET_RO_FILSYS;
}

static errcode_t cio_write_blk64(io_channel io, unsigned long long block, int count,
                                 const void *data)
{
	return EXT2_ET_RO_FILSYS;
}

static errcode_t cio_write_byte(io_channel io, unsigned long offset, int count, const void *data)
{
	return EXT2_ET_RO_FILSYS;
}

static errcode_t cio_flush(io_channel io)
{
	return 0;
}

static errcode_t cio_set_option(io_channel io, const char *option, const char *arg)
{
	return EXT2_ET_INVALID_ARGUMENT;
}

/* libext2fs wants a non-const io_manager; this table is never modified. */
static struct struct_io_manager cio_manager = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "cairn read-callback I/O manager",
	.open = cio_open,
	.close = cio_close,
	.set_blksize = cio_set_blksize,
	.read_blk = cio_read_blk,
	.write_blk = cio_write_blk,
	.flush = cio_flush,
	.write_byte = cio_write_byte,
	.set_option = cio_set_option,
	.read_blk64 = cio_read_blk64,
	.write_blk64 = cio_write_blk64,
};

static errcode_t cio_open(const char *name, int flags, io_channel *channel)
{
	io_channel io = NULL;
	void *ptr = NULL;
	size_t len;
	errcode_t rc;

	if (name == NULL || sscanf(name, "cairn-idx:%p", &ptr) != 1 || ptr == NULL)
		return EXT2_ET_BAD_DEVICE_NAME;
	if (flags & IO_FLAG_RW)
		return EXT2_ET_RO_FILSYS;
	rc = ext2fs_get_mem(sizeof(*io), &io);
	if (rc)
		return rc;
	memset(io, 0, sizeof(*io));
	len = strlen(name) + 1;
	rc = ext2fs_get_mem(len, &io->name);
	if (rc) {
		ext2fs_free_mem(&io);
		return rc;
	}
	memcpy(io->name, name, len);
	io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	io->manager = &cio_manager;
	io->block_size = 1024;
	io->refcount = 1;
	io->private_data = ptr;
	*channel = io;
	return 0;
}

/* ---- walking a file system -------------------------------------------------------------- */

static pthread_once_t et_once = PTHREAD_ONCE_INIT;

static void et_init(void)
{
	initialize_ext2_error_table();
}

struct dir_item {
	ext2_ino_t ino;
	char *path;
};

struct walk {
	ext2_filsys fs;
	struct ext4index_fs *info;
	enum status (*row)(void *arg, const struct ext4index_row *r, struct err *e);
	void *arg;
	struct ext4index_stats *stats;
	ext2fs_inode_bitmap visited;
	struct dir_item *stack;
	size_t n_stack, cap_stack;
	const char *dir_path; /* of the directory being iterated */
	ext2_ino_t dir_ino;   /* its inode: warnings name inodes, never guest paths */
	struct buf path;
	enum status st; /* of the row callback */
	struct err *e;
};

/* Keep the first problem met as the warning. */
#define warn(s, ...)                                                                               \
	do {                                                                                       \
		if ((s)->warning[0] == '\0')                                                       \
			snprintf((s)->warning, sizeof((s)->warning), __VA_ARGS__);                 \
	} while (0)

static enum ext4index_type type_of(uint32_t mode)
{
	if (LINUX_S_ISREG(mode))
		return EXT4INDEX_FILE;
	if (LINUX_S_ISDIR(mode))
		return EXT4INDEX_DIR;
	if (LINUX_S_ISLNK(mode))
		return EXT4INDEX_SYMLINK;
	return EXT4INDEX_OTHER;
}

static void push_dir(struct walk *w, ext2_ino_t ino, const char *path, size_t len)
{
	if (w->n_stack == w->cap_stack) {
		w->cap_stack = w->cap_stack ? w->cap_stack * 2 : 64;
		w->stack = xrealloc(w->stack, w->cap_stack * sizeof(*w->stack));
	}
	w->stack[w->n_stack].ino = ino;
	w->stack[w->n_stack].path = xstrndup(path, len);
	w->n_stack++;
}

static int on_dirent(ext2_ino_t dir, int entry, struct ext2_dir_entry *d, int offset, int blocksize,
                     char *blockbuf, void *priv)
{
	struct walk *w = priv;
	struct ext2_inode_large inode;
	struct ext4index_row r;
	int name_len = ext2fs_dirent_name_len(d);
	ext2_ino_t ino = d->inode;
	errcode_t rc;

	if (entry == DIRENT_DOT_FILE || entry == DIRENT_DOT_DOT_FILE || entry == DIRENT_CHECKSUM)
		return 0;
	if (ino == 0 || name_len == 0)
		return 0;
	if ((name_len == 1 && d->name[0] == '.') ||
	    (name_len == 2 && d->name[0] == '.' && d->name[1] == '.'))
		return 0;
	if (ino > w->fs->super->s_inodes_count || name_len > blocksize - offset - 8) {
		w->stats->errors++;
		warn(w->stats, "directory inode %u: entry with bad inode %u", w->dir_ino, ino);
		return 0;
	}
	if (memchr(d->name, '\0', (size_t)name_len) || memchr(d->name, '/', (size_t)name_len)) {
		w->stats->errors++;
		warn(w->stats, "directory inode %u: entry name with a NUL or '/' byte (inode %u)",
		     w->dir_ino, ino);
		return 0;
	}
	w->path.len = 0;
	if (w->path.data)
		w->path.data[0] = '\0';
	if (strcmp(w->dir_path, "/") != 0)
		buf_puts(&w->path, w->dir_path);
	buf_puts(&w->path, "/");
	buf_append(&w->path, d->name, (size_t)name_len);

	memset(&inode, 0, sizeof(inode));
	rc = ext2fs_read_inode_full(w->fs, ino, (struct ext2_inode *)&inode, sizeof(inode));
	if (rc) {
		w->stats->errors++;
		warn(w->stats, "inode %u (in directory inode %u): %s", ino, w->dir_ino,
		     error_message(rc));
		return 0;
	}
	memset(&r, 0, sizeof(r));
	r.fs = w->info;
	r.path = w->path.data;
	r.path_len = w->path.len;
	r.mode = inode.i_mode;
	r.type = type_of(inode.i_mode);
	r.size = EXT2_I_SIZE(&inode);
	r.uid = inode_uid(inode);
	r.gid = inode_gid(inode);
	r.ino = ino;
	r.mtime = (int32_t)inode.i_mtime;
	if (EXT2_INODE_SIZE(w->fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
	    inode.i_extra_isize >= offsetof(struct ext2_inode_large, i_mtime_extra) + 4 -
	                                   EXT2_GOOD_OLD_INODE_SIZE) {
		r.mtime += (int64_t)(inode.i_mtime_extra & EXT4_EPOCH_MASK) << 32;
		r.mtime_nsec = inode.i_mtime_extra >> EXT4_EPOCH_BITS;
	}
	w->st = w->row(w->arg, &r, w->e);
	if (w->st != STATUS_OK)
		return DIRENT_ABORT;
	w->stats->files++;
	if (r.type == EXT4INDEX_DIR && !ext2fs_test_inode_bitmap2(w->visited, ino)) {
		ext2fs_mark_inode_bitmap2(w->visited, ino);
		push_dir(w, ino, w->path.data, w->path.len);
	}
	return 0;
}

static enum status index_fs(const struct ext4index_source *src, struct ext4index_fs *info,
                            enum status (*row)(void *, const struct ext4index_row *, struct err *),
                            void *arg, struct ext4index_stats *stats, struct err *e)
{
	struct chan_ctx ctx = { .src = src, .base = info->offset, .size = info->size };
	struct walk w = { .info = info, .row = row, .arg = arg, .stats = stats, .e = e };
	char name[64];
	errcode_t rc;
	enum status st = STATUS_OK;

	snprintf(name, sizeof(name), "cairn-idx:%p", (void *)&ctx);
	rc = ext2fs_open2(name, NULL, EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0, &cio_manager,
	                  &w.fs);
	if (rc) {
		if (ctx.failed)
			return err_set(e, ctx.err.code, "%s", ctx.err.msg);
		stats->failed++;
		warn(stats, "file system at offset %llu: %s", (unsigned long long)info->offset,
		     error_message(rc));
		return STATUS_CORRUPT;
	}
	if (ext2fs_blocks_count(w.fs->super) > info->size / (uint64_t)w.fs->blocksize) {
		stats->failed++;
		warn(stats,
		     "file system at offset %llu: %llu blocks of %u bytes do not fit in %llu bytes "
		     "(truncated image?)",
		     (unsigned long long)info->offset,
		     (unsigned long long)ext2fs_blocks_count(w.fs->super), w.fs->blocksize,
		     (unsigned long long)info->size);
		st = STATUS_CORRUPT;
		goto out_close;
	}
	/* Descriptors pointing outside the file system would send every read astray. */
	rc = ext2fs_check_desc(w.fs);
	if (rc) {
		stats->failed++;
		warn(stats, "file system at offset %llu: group descriptors: %s",
		     (unsigned long long)info->offset, error_message(rc));
		st = ctx.failed ? err_set(e, ctx.err.code, "%s", ctx.err.msg) : STATUS_CORRUPT;
		goto out_close;
	}
	{
		const unsigned char *u = w.fs->super->s_uuid;
		snprintf(info->uuid, sizeof(info->uuid),
		         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
		         u[12], u[13], u[14], u[15]);
		memcpy(info->label, w.fs->super->s_volume_name, 16);
		info->label[16] = '\0';
	}
	rc = ext2fs_allocate_inode_bitmap(w.fs, "visited", &w.visited);
	if (rc) {
		st = err_set(e, STATUS_NOMEM, "inode bitmap: %s", error_message(rc));
		goto out_close;
	}
	buf_init(&w.path);
	ext2fs_mark_inode_bitmap2(w.visited, EXT2_ROOT_INO);
	push_dir(&w, EXT2_ROOT_INO, "/", 1);
	while (w.n_stack > 0) {
		struct dir_item it = w.stack[--w.n_stack];

		w.dir_path = it.path;
		w.dir_ino = it.ino;
		rc = ext2fs_dir_iterate2(w.fs, it.ino, 0, NULL, on_dirent, &w);
		free(it.path);
		if (w.st != STATUS_OK) {
			st = w.st;
			break;
		}
		if (ctx.failed) {
			st = err_set(e, ctx.err.code, "%s", ctx.err.msg);
			break;
		}
		if (rc) {
			stats->errors++;
			warn(stats, "directory inode %u: %s", it.ino, error_message(rc));
		}
	}
	for (size_t i = 0; i < w.n_stack; i++)
		free(w.stack[i].path);
	free(w.stack);
	buf_cleanup(&w.path);
	ext2fs_free_inode_bitmap(w.visited);
	if (st == STATUS_OK)
		stats->filesystems++;
out_close:
	ext2fs_close_free(&w.fs);
	return st;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum status ext4index_disk(const struct ext4index_source *src,
                           enum status (*row)(void *arg, const struct ext4index_row *r,
                                              struct err *e),
                           void *arg, struct ext4index_stats *stats_out, struct err *e)
{
	struct ext4index_stats local = { 0 };
	struct ext4index_stats *stats = stats_out ? stats_out : &local;
	struct ext4index_part *parts = NULL;
	struct err fe;
	size_t n = 0;
	unsigned index = 0;
	double t0 = mono_s();
	enum status st;

	memset(stats, 0, sizeof(*stats));
	pthread_once(&et_once, et_init);
	st = ext4index_partitions(src, &parts, &n, e);
	if (st != STATUS_OK)
		return st;
	for (size_t i = 0; i < n && st == STATUS_OK; i++) {
		struct ext4index_fs info = { 0 };

		if (!parts[i].is_ext) {
			stats->skipped++;
			continue;
		}
		info.index = index;
		info.partition = parts[i].number;
		info.table = parts[i].table;
		info.offset = parts[i].offset;
		info.size = parts[i].size;
		err_clear(&fe);
		st = index_fs(src, &info, row, arg, stats, &fe);
		if (st == STATUS_CORRUPT) {
			st = STATUS_OK; /* counted in stats->failed; try the others */
			continue;
		}
		if (st != STATUS_OK)
			err_set(e, fe.code, "%s", fe.msg);
		index++;
	}
	free(parts);
	stats->seconds = mono_s() - t0;
	stats->files_per_second = stats->seconds > 0 ? (double)stats->files / stats->seconds : 0.0;
	if (st != STATUS_OK)
		return st;
	if (stats->filesystems == 0 && stats->failed > 0)
		return err_set(e, STATUS_CORRUPT, "no file system could be opened: %s",
		               stats->warning);
	if (stats->filesystems == 0)
		return err_set(e, STATUS_NOT_FOUND,
		               "no ext2/3/4 file system on the disk (%u other partitions)",
		               stats->skipped);
	return STATUS_OK;
}
