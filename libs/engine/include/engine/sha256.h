/* sha256.h - the engine's own SHA-256 and HMAC-SHA-256, for one reason: hashing the same
 * bytes under two states at once. A backup hashes every chunk twice, once into the
 * whole-image SHA-256 and once for its HMAC id. With the x86 SHA extensions a round is
 * bound by the latency of sha256rnds2, not by its throughput, so the two hashes share one
 * message schedule and interleave their rounds: both cost about what one does (measured on
 * this project's AMD EPYC: 1.78 GB/s for the pair, 1.78 GB/s for OpenSSL's single hash).
 *
 * Results are plain SHA-256 and HMAC-SHA-256 (RFC 6234, RFC 2104): the unit test checks
 * them against OpenSSL. Without the SHA extensions a portable compression function is
 * used; callers that care about speed ask engine_sha256_fast() and use OpenSSL otherwise. */
#ifndef ENGINE_SHA256_H
#define ENGINE_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENGINE_SHA256_LEN 32

/* Thread safety: the functions work on the state they are given and nothing else (the CPU
 * check is decided once, atomically), so separate states may be used from separate threads
 * at once; one state must not. */

/* A hash in progress. Plain data: copy it to fork a state. */
struct engine_sha256 {
	uint32_t h[8];
	uint64_t total; /* bytes hashed so far */
	uint8_t buf[64];
	uint32_t nbuf; /* bytes waiting in buf */
};

/* An HMAC-SHA-256 key, prepared once: the states after the ipad and the opad block. */
struct engine_hmac256 {
	struct engine_sha256 inner, outer;
};

/** @brief true when the CPU has the SHA extensions (and SSSE3/SSE4.1) and they are not
 *  disabled by engine_sha256_set_fast(false); decided once per process. */
bool engine_sha256_fast(void);
/** @brief Test hook: false makes engine_sha256_fast() answer false and the functions below
 *  use the portable code; true restores what the CPU supports. */
void engine_sha256_set_fast(bool on);

/** @brief Start a SHA-256 in *s (caller-owned). */
void engine_sha256_init(struct engine_sha256 *s);
/** @brief Hash n more bytes of p (borrowed). */
void engine_sha256_update(struct engine_sha256 *s, const void *p, size_t n);
/** @brief Write the digest to out; s is spent (init it again to reuse). */
void engine_sha256_final(struct engine_sha256 *s, uint8_t out[ENGINE_SHA256_LEN]);
/** @brief Hash the same n bytes of p into a and b (two different states), in one pass when
 *  both have the same number of bytes buffered (e.g. both at a 64-byte boundary). */
void engine_sha256_update2(struct engine_sha256 *a, struct engine_sha256 *b, const void *p,
                           size_t n);

/** @brief Prepare key (borrowed, any length) into k. k holds key-derived state: wipe it
 *  (engine_key_wipe) when done. */
void engine_hmac256_init(struct engine_hmac256 *k, const uint8_t *key, size_t keylen);
/** @brief Start a message: *s becomes the inner state (feed it the message with
 *  engine_sha256_update or _update2). */
void engine_hmac256_start(const struct engine_hmac256 *k, struct engine_sha256 *s);
/** @brief Finish a message started with engine_hmac256_start: out = HMAC(key, message). */
void engine_hmac256_finish(const struct engine_hmac256 *k, struct engine_sha256 *s,
                           uint8_t out[ENGINE_SHA256_LEN]);

#endif
