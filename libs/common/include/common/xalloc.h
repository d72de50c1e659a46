/* xalloc.h - allocation that aborts on out-of-memory (redis zmalloc), so callers
 * never check. Every pointer returned is new: the caller frees it with free(). */
#ifndef COMMON_XALLOC_H
#define COMMON_XALLOC_H

#include <stddef.h>

/** @brief malloc or abort. @returns new memory (caller frees). */
void *xmalloc(size_t n);
/** @brief calloc or abort. @returns new zeroed memory (caller frees). */
void *xcalloc(size_t nmemb, size_t size);
/** @brief realloc or abort; p may be NULL. Old pointer invalid after the call. */
void *xrealloc(void *p, size_t n);
/** @brief strdup or abort; s must not be NULL. @returns new string (caller frees). */
char *xstrdup(const char *s);
/** @brief strndup or abort. @returns new string (caller frees). */
char *xstrndup(const char *s, size_t n);
/** @brief printf into a new string or abort. @returns new string (caller frees). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
