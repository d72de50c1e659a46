/* ext4index.h - the guest file index: list every file of each ext2/3/4 file system on a
 * disk (whole disk, or partitions of an MBR or GPT table) through libext2fs, reading the
 * disk through a callback so it works on raw images and straight from the chunk store.
 * Read-only; a damaged image yields an error or a warning, never a crash. */
#ifndef ENGINE_EXT4INDEX_H
#define ENGINE_EXT4INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Where the disk's bytes come from. */
struct ext4index_source {
	/* Read exactly len bytes at byte offset off into buf; return non-OK (and fill e) on
	 * failure. Called from the thread that runs ext4index_disk(), never concurrently. */
	enum status (*read)(void *arg, void *buf, size_t len, uint64_t off, struct err *e);
	void *arg;
	uint64_t size; /* bytes of the disk */
};

/** @brief A source reading a file descriptor with pread (the fd stays the caller's and must
 *  outlive the source). @returns STATUS_IO when fstat fails. */
MUST_CHECK enum status ext4index_source_fd(int fd, struct ext4index_source *src, struct err *e);

enum ext4index_type { EXT4INDEX_FILE = 0, EXT4INDEX_DIR, EXT4INDEX_SYMLINK, EXT4INDEX_OTHER };

/** @brief "file", "dir", "symlink" or "other". @returns a static string. */
const char *ext4index_type_str(enum ext4index_type t);

/* One file system found on the disk. */
struct ext4index_fs {
	unsigned index;    /* 0-based among the file systems indexed on this disk */
	int partition;     /* 1-based partition number (MBR logical: 5..), 0 = whole disk */
	const char *table; /* "none", "mbr" or "gpt" (static string) */
	uint64_t offset;   /* bytes from the start of the disk */
	uint64_t size;     /* bytes of the partition (the disk for whole-disk) */
	char uuid[37];     /* file system uuid */
	char label[17];    /* volume label, may be empty */
};

/* One directory entry. Everything is borrowed for the duration of the callback. */
struct ext4index_row {
	const struct ext4index_fs *fs;
	const char *path; /* absolute inside the file system, "/etc/passwd"; raw bytes */
	size_t path_len;
	enum ext4index_type type;
	uint64_t size; /* i_size (directories: their block size total) */
	int64_t mtime; /* seconds since the epoch */
	uint32_t mtime_nsec;
	uint32_t mode; /* full st_mode bits */
	uint32_t uid, gid;
	uint32_t ino;
};

/* A partition table entry (or the whole disk). */
struct ext4index_part {
	int number;        /* as in struct ext4index_fs */
	const char *table; /* "none", "mbr", "gpt" */
	uint64_t offset, size;
	bool is_ext; /* an ext2/3/4 superblock magic is present */
};

/** @brief Find the file systems of a disk: a whole-disk ext superblock wins; else the
 *  partitions of a GPT (512- or 4096-byte sectors) or MBR table (with logical partitions).
 *  Entries past the end of the disk are dropped. *parts is new (caller frees with free());
 *  *n may be 0. STATUS_IO when the source fails. */
MUST_CHECK enum status ext4index_partitions(const struct ext4index_source *src,
                                            struct ext4index_part **parts, size_t *n,
                                            struct err *e);

struct ext4index_stats {
	unsigned filesystems; /* indexed */
	unsigned skipped;     /* partitions without an ext file system */
	unsigned failed;      /* ext file systems libext2fs could not open */
	uint64_t files;       /* rows emitted (every entry but "/", "." and "..") */
	uint64_t errors;      /* entries or directories skipped as unreadable */
	double seconds;
	double files_per_second;
	/* the first problem met (failed/errors > 0), else "". Names inodes and offsets, never
	 * guest file names: it goes into logs and events. */
	char warning[256];
};

/** @brief Index every ext file system of the disk, calling row(arg, r, e) for each entry in
 *  depth-first order (a directory before its contents). A row callback returning non-OK
 *  stops the walk and that status is returned. Directories already visited (loops in a
 *  damaged image) are not entered twice. Unreadable directories or inodes are skipped and
 *  counted in stats->errors. @returns OK when at least one file system was indexed (see
 *  stats for warnings); NOT_FOUND when the disk holds no ext file system; CORRUPT when every
 *  ext file system failed to open; IO when the source failed. stats may be NULL.
 *  Thread-safety: independent calls may run in parallel threads. */
MUST_CHECK enum status ext4index_disk(const struct ext4index_source *src,
                                      enum status (*row)(void *arg, const struct ext4index_row *r,
                                                         struct err *e),
                                      void *arg, struct ext4index_stats *stats, struct err *e);

#endif
