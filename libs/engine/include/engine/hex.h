/* hex.h - lower-case hexadecimal for ids and key blobs (chunk ids in paths and events,
 * wrapped keys through SQL text). */
#ifndef ENGINE_HEX_H
#define ENGINE_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** @brief Write the 2n hex digits of p[0..n) and a NUL into out (2n+1 bytes, the caller's). */
void engine_hex_encode(const uint8_t *p, size_t n, char *out);

/** @brief Decode exactly 2n hex digits of s into out (n bytes, the caller's).
 *  @returns false when s is not exactly 2n hex digits (out is then unspecified). */
bool engine_hex_decode(const char *s, uint8_t *out, size_t n);

#endif
