/* fastcdc.c - FastCDC with a deterministic gear table and normalized chunking. */
#include "engine/fastcdc.h"

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* bits ones placed in the top of a 64-bit word: the gear hash's high bits depend on the
 * last 64 bytes, the low bits only on the last few. 0 bits is an empty mask (a shift by 64
 * would be undefined). */
static uint64_t top_mask(unsigned bits)
{
	if (bits == 0)
		return 0;
	return bits >= 64 ? ~0ULL : ~0ULL << (64 - bits);
}

enum status engine_fastcdc_init(struct engine_fastcdc *cdc, uint32_t min, uint32_t avg,
                                uint32_t max, struct err *e)
{
	uint64_t seed = 0x636169726e434443ULL; /* "cairnCDC" */
	unsigned bits = 0;

	if (avg == 0 || (avg & (avg - 1)) != 0 || min < 64 || min >= avg || avg >= max ||
	    max > (8u << 20))
		return err_set(e, STATUS_INVALID,
		               "fastcdc: need 64 <= min < avg (2^k) < max <= 8MiB");
	while ((1u << bits) < avg)
		bits++;
	cdc->min = min;
	cdc->avg = avg;
	cdc->max = max;
	cdc->mask_s = top_mask(bits + 2);
	cdc->mask_l = top_mask(bits - 2);
	for (int i = 0; i < 256; i++)
		cdc->gear[i] = splitmix64(&seed);
	return STATUS_OK;
}

size_t engine_fastcdc_cut(const struct engine_fastcdc *cdc, const uint8_t *p, size_t n)
{
	uint64_t h = 0;
	size_t i, normal, end;

	if (n <= cdc->min)
		return n;
	end = n < cdc->max ? n : cdc->max;
	normal = end < cdc->avg ? end : cdc->avg;
	/* Skip to min - 64 so the hash at min covers a full 64-byte window. */
	for (i = cdc->min - 64; i < cdc->min; i++)
		h = (h << 1) + cdc->gear[p[i]];
	for (; i < normal; i++) {
		h = (h << 1) + cdc->gear[p[i]];
		if ((h & cdc->mask_s) == 0)
			return i + 1;
	}
	for (; i < end; i++) {
		h = (h << 1) + cdc->gear[p[i]];
		if ((h & cdc->mask_l) == 0)
			return i + 1;
	}
	return end;
}
