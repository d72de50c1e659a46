/* extents.h - change-tracking input: the extents of a disk changed since the parent restore
 * point (what VMware's -ctk files hold). The datastore connector's change-tracking reader
 * fills a struct engine_extents with engine_extents_add(); the CLI reads a text file. */
#ifndef ENGINE_EXTENTS_H
#define ENGINE_EXTENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct engine_extent {
	uint64_t offset;
	uint64_t length;
};

struct engine_extents {
	struct engine_extent *v; /* owned */
	size_t n, cap;
	bool normalized; /* sorted and merged (engine_extents_normalize) */
};

/** @brief Initialise an empty list. */
void engine_extents_init(struct engine_extents *x);
/** @brief Release the list's memory. */
void engine_extents_cleanup(struct engine_extents *x);
/** @brief Append (offset, length); zero-length extents are ignored. Aborts on OOM. */
void engine_extents_add(struct engine_extents *x, uint64_t offset, uint64_t length);
/** @brief Sort by offset and merge overlapping/adjacent extents. */
void engine_extents_normalize(struct engine_extents *x);
/** @brief true if [off, off+len) overlaps any extent. x must be normalized. O(log n). */
bool engine_extents_overlap(const struct engine_extents *x, uint64_t off, uint64_t len);
/** @brief Sum of lengths (x normalized). */
uint64_t engine_extents_total(const struct engine_extents *x);

/** @brief Read a text file: one "OFFSET LENGTH" pair per line (decimal or 0x-hex), blank lines
 *  and lines starting with '#' ignored. The result is normalized. @returns STATUS_INVALID with
 *  the line number on a malformed line, STATUS_NOT_FOUND / STATUS_IO. */
enum status engine_extents_load(const char *path, struct engine_extents *x,
                                struct err *e) MUST_CHECK;

#endif
