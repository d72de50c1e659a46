/* test_fastcdc.c - FastCDC: parameter checks, size bounds, determinism, boundaries that
 * resynchronise after an insertion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "engine/fastcdc.h"

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

/* All cut offsets (end positions) of p[0..n). */
static size_t cuts(const struct engine_fastcdc *c, const uint8_t *p, size_t n, uint64_t *out)
{
	size_t pos = 0, k = 0;

	while (pos < n) {
		size_t len = engine_fastcdc_cut(c, p + pos, n - pos);

		assert_true(len > 0);
		assert_true(len <= c->max);
		if (pos + len < n)
			assert_true(len >= c->min);
		pos += len;
		out[k++] = pos;
	}
	return k;
}

static void test_params(void **state)
{
	struct engine_fastcdc c;
	struct err e;

	(void)state;
	assert_int_equal(engine_fastcdc_init(&c, 512 << 10, 1 << 20, 8 << 20, &e), STATUS_OK);
	assert_int_equal(engine_fastcdc_init(&c, 512 << 10, 3 << 20, 8 << 20, &e), STATUS_INVALID);
	assert_int_equal(engine_fastcdc_init(&c, 2 << 20, 1 << 20, 8 << 20, &e), STATUS_INVALID);
	assert_int_equal(engine_fastcdc_init(&c, 512 << 10, 1 << 20, 16 << 20, &e), STATUS_INVALID);
}

static void resync(uint32_t min, uint32_t avg, uint32_t max, size_t n, size_t at, size_t ins)
{
	struct engine_fastcdc c, c2;
	uint8_t *a = xmalloc(n), *b = xmalloc(n + ins);
	uint64_t *ca = xcalloc(n / min + 2, sizeof(uint64_t));
	uint64_t *cb = xcalloc((n + ins) / min + 2, sizeof(uint64_t));
	size_t na, nb, matched = 0, after = 0, before_same = 0, before = 0;
	struct err e;

	assert_int_equal(engine_fastcdc_init(&c, min, avg, max, &e), STATUS_OK);
	assert_int_equal(engine_fastcdc_init(&c2, min, avg, max, &e), STATUS_OK);
	assert_memory_equal(c.gear, c2.gear, sizeof(c.gear)); /* deterministic table */
	fill(a, n, 12345);
	memcpy(b, a, at);
	fill(b + at, ins, 999);
	memcpy(b + at + ins, a + at, n - at);
	na = cuts(&c, a, n, ca);
	nb = cuts(&c, b, n + ins, cb);
	/* average chunk size near avg */
	assert_true(n / na > avg / 2 && n / na < (size_t)avg * 2);
	/* boundaries before the insertion are identical */
	for (size_t i = 0; i < na && ca[i] < at; i++) {
		before++;
		if (i < nb && cb[i] == ca[i])
			before_same++;
	}
	assert_int_equal(before, before_same);
	/* boundaries well after the insertion reappear shifted by ins */
	for (size_t i = 0; i < na; i++) {
		if (ca[i] < at + 2 * (size_t)max)
			continue;
		after++;
		for (size_t j = 0; j < nb; j++)
			if (cb[j] == ca[i] + ins) {
				matched++;
				break;
			}
	}
	assert_true(after > 10);
	assert_int_equal(matched, after);
	free(a);
	free(b);
	free(ca);
	free(cb);
}

static void test_resync_small(void **state)
{
	(void)state;
	resync(2048, 8192, 65536, 4 << 20, 1 << 20, 1000);
	resync(2048, 8192, 65536, 4 << 20, 777777, 1);
}

static void test_resync_default(void **state)
{
	(void)state;
	/* production parameters: 512 KiB / 1 MiB / 8 MiB over 48 MiB, 64 KiB inserted */
	resync(ENGINE_CDC_MIN_DEFAULT, ENGINE_CDC_AVG_DEFAULT, ENGINE_CDC_MAX_DEFAULT, 48u << 20,
	       5u << 20, 65536);
}

static void test_zeros_hit_max(void **state)
{
	struct engine_fastcdc c;
	uint8_t *z = xcalloc(1, 9u << 20);
	struct err e;

	(void)state;
	assert_int_equal(engine_fastcdc_init(&c, ENGINE_CDC_MIN_DEFAULT, ENGINE_CDC_AVG_DEFAULT,
	                                     ENGINE_CDC_MAX_DEFAULT, &e),
	                 STATUS_OK);
	assert_int_equal(engine_fastcdc_cut(&c, z, 9u << 20), ENGINE_CDC_MAX_DEFAULT);
	assert_int_equal(engine_fastcdc_cut(&c, z, 100), 100);
	assert_int_equal(engine_fastcdc_cut(&c, z, 0), 0);
	free(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_resync_small),
		cmocka_unit_test(test_resync_default),
		cmocka_unit_test(test_zeros_hit_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
