/* test_sha256.c - the engine's SHA-256 / HMAC-SHA-256 against OpenSSL: every length around
 * block boundaries, split updates, the fused two-state update from any buffer fill, keys
 * shorter and longer than a block; with the SHA extensions (when the CPU has them) and with
 * the portable code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/xalloc.h"
#include "engine/sha256.h"

#include <cmocka.h>

static void fill(uint8_t *p, size_t n, uint64_t s)
{
	for (size_t i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		p[i] = (uint8_t)(s >> 32);
	}
}

static void ref_sha(const uint8_t *p, size_t n, uint8_t out[32])
{
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

static void ref_hmac(const uint8_t *key, size_t kl, const uint8_t *p, size_t n, uint8_t out[32])
{
	unsigned int len = 0;

	assert_non_null(HMAC(EVP_sha256(), key, (int)kl, p, n, out, &len));
	assert_int_equal(len, 32);
}

#define BIG (3u << 20)

/* Runs body once with the portable code and once with the SHA extensions (if present). */
static void each_mode(void (*body)(void))
{
	engine_sha256_set_fast(false);
	assert_false(engine_sha256_fast());
	body();
	engine_sha256_set_fast(true);
	if (!engine_sha256_fast())
		fprintf(stderr, "note: this CPU has no SHA extensions; portable code only\n");
	body();
}

static void lengths_body(void)
{
	uint8_t *p = xmalloc(BIG);
	uint8_t a[32], r[32];

	fill(p, BIG, 1);
	for (size_t n = 0; n < 300; n++) {
		struct engine_sha256 s;

		engine_sha256_init(&s);
		engine_sha256_update(&s, p, n);
		engine_sha256_final(&s, a);
		ref_sha(p, n, r);
		assert_memory_equal(a, r, 32);
	}
	size_t big[] = { BIG, BIG - 1, BIG - 63, (1u << 20) + 17 };
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		struct engine_sha256 s;

		engine_sha256_init(&s);
		engine_sha256_update(&s, p, big[i]);
		engine_sha256_final(&s, a);
		ref_sha(p, big[i], r);
		assert_memory_equal(a, r, 32);
	}
	free(p);
}

static void test_lengths(void **state)
{
	(void)state;
	each_mode(lengths_body);
}

/* Split updates at awkward points equal one update. */
static void split_body(void)
{
	uint8_t *p = xmalloc(BIG);
	uint8_t a[32], r[32];
	uint64_t seed = 7;

	fill(p, BIG, 2);
	ref_sha(p, BIG, r);
	for (int round = 0; round < 20; round++) {
		struct engine_sha256 s;
		size_t off = 0;

		engine_sha256_init(&s);
		while (off < BIG) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			size_t n = (size_t)(seed >> 33) % (round < 10 ? 200 : 300000);

			if (n > BIG - off)
				n = BIG - off;
			engine_sha256_update(&s, p + off, n);
			off += n;
		}
		engine_sha256_final(&s, a);
		assert_memory_equal(a, r, 32);
	}
	free(p);
}

static void test_split(void **state)
{
	(void)state;
	each_mode(split_body);
}

/* The fused update: a runs over prefix+data, b over other+data; both must equal their own
 * single-state results whatever the bytes buffered before (equal or not). */
static void fused_body(void)
{
	uint8_t *p = xmalloc(BIG), pre[130], other[130];
	uint8_t a[32], b[32], r[32];

	fill(p, BIG, 3);
	fill(pre, sizeof(pre), 4);
	fill(other, sizeof(other), 5);
	size_t pl[] = { 0, 64, 128, 1, 63, 65, 0, 100 };
	size_t ol[] = { 0, 0, 64, 1, 63, 65, 7, 3 };
	size_t nl[] = { BIG, 1u << 20, 4096, 64, 0, 1, 1000, BIG - 5 };
	for (size_t i = 0; i < sizeof(pl) / sizeof(pl[0]); i++) {
		struct engine_sha256 sa, sb;
		uint8_t *cat = xmalloc(130 + BIG + 64);

		engine_sha256_init(&sa);
		engine_sha256_init(&sb);
		engine_sha256_update(&sa, pre, pl[i]);
		engine_sha256_update(&sb, other, ol[i]);
		engine_sha256_update2(&sa, &sb, p, nl[i]);
		engine_sha256_update2(&sa, &sb, p, 64); /* and once more after */
		engine_sha256_final(&sa, a);
		engine_sha256_final(&sb, b);

		memcpy(cat, pre, pl[i]);
		memcpy(cat + pl[i], p, nl[i]);
		memcpy(cat + pl[i] + nl[i], p, 64);
		ref_sha(cat, pl[i] + nl[i] + 64, r);
		assert_memory_equal(a, r, 32);
		memcpy(cat, other, ol[i]);
		memcpy(cat + ol[i], p, nl[i]);
		memcpy(cat + ol[i] + nl[i], p, 64);
		ref_sha(cat, ol[i] + nl[i] + 64, r);
		assert_memory_equal(b, r, 32);
		free(cat);
	}
	free(p);
}

static void test_fused(void **state)
{
	(void)state;
	each_mode(fused_body);
}

/* HMAC: keys of 0, 32, 64, 65 and 200 bytes; a message fused with a whole-image hash, as a
 * backup does it, chunk after chunk. */
static void hmac_body(void)
{
	uint8_t key[200], a[32], r[32], img[32];
	uint8_t *p = xmalloc(BIG);
	size_t kl[] = { 0, 32, 64, 65, 200 };

	fill(key, sizeof(key), 6);
	fill(p, BIG, 8);
	for (size_t i = 0; i < sizeof(kl) / sizeof(kl[0]); i++) {
		struct engine_hmac256 k;
		struct engine_sha256 s, image;

		engine_hmac256_init(&k, key, kl[i]);
		for (size_t n = 0; n < 200; n += 13) {
			engine_hmac256_start(&k, &s);
			engine_sha256_update(&s, p, n);
			engine_hmac256_finish(&k, &s, a);
			ref_hmac(key, kl[i], p, n, r);
			assert_memory_equal(a, r, 32);
		}
		engine_sha256_init(&image);
		for (size_t off = 0; off < BIG; off += 1u << 20) {
			size_t n = BIG - off < (1u << 20) ? BIG - off : (1u << 20);

			engine_hmac256_start(&k, &s);
			engine_sha256_update2(&image, &s, p + off, n);
			engine_hmac256_finish(&k, &s, a);
			ref_hmac(key, kl[i], p + off, n, r);
			assert_memory_equal(a, r, 32);
		}
		engine_sha256_final(&image, img);
		ref_sha(p, BIG, r);
		assert_memory_equal(img, r, 32);
	}
	free(p);
}

static void test_hmac(void **state)
{
	(void)state;
	each_mode(hmac_body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_fused),
		cmocka_unit_test(test_hmac),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
