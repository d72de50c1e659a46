/* buf.h - a growable byte buffer (curl's dynbuf). Always NUL-terminated. */
#ifndef COMMON_BUF_H
#define COMMON_BUF_H

#include <stddef.h>

struct buf {
	char *data; /* owned; NULL until the first append */
	size_t len;
	size_t cap;
};

/** @brief Initialise a caller-allocated buf to empty. */
void buf_init(struct buf *b);
/** @brief Release the memory of b (b itself is the caller's); b is empty afterwards. */
void buf_cleanup(struct buf *b);
/** @brief Append n bytes (aborts on OOM). */
void buf_append(struct buf *b, const void *p, size_t n);
/** @brief Append a C string. */
void buf_puts(struct buf *b, const char *s);
/** @brief Append printf output. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** @brief Take the data out: @returns new string the caller frees; b is empty afterwards. */
char *buf_take(struct buf *b);

#endif
