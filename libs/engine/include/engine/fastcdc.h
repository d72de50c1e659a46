/* fastcdc.h - FastCDC content-defined chunking for streams (Xia et al., 2016), written here.
 *
 * Gear rolling hash h = (h << 1) + gear[byte]; the gear table is generated deterministically
 * (SplitMix64 from a fixed seed) so boundaries are stable across builds and machines.
 * Normalized chunking (level 2): below the average size a boundary needs log2(avg)+2 zero
 * bits, above it log2(avg)-2, which narrows the size distribution around avg. No boundary
 * before min; a forced one at max. */
#ifndef ENGINE_FASTCDC_H
#define ENGINE_FASTCDC_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ENGINE_CDC_MIN_DEFAULT (512u << 10)
#define ENGINE_CDC_AVG_DEFAULT (1u << 20)
#define ENGINE_CDC_MAX_DEFAULT (8u << 20)

struct engine_fastcdc {
	uint32_t min, avg, max;
	uint64_t mask_s, mask_l;
	uint64_t gear[256];
};

/** @brief Initialise a chunker. avg must be a power of two, 64 <= min < avg < max <= 8 MiB.
 *  @returns STATUS_INVALID otherwise. The struct is read-only afterwards (thread-safe). */
enum status engine_fastcdc_init(struct engine_fastcdc *cdc, uint32_t min, uint32_t avg,
                                uint32_t max, struct err *e) MUST_CHECK;

/** @brief Length of the next chunk at the start of p[0..n). When n < max and the data may
 *  continue, call with at least max bytes unless at end of stream: a result == n with
 *  n < max means "end of stream chunk". @returns 1..min(n,max) (0 only if n == 0). */
size_t engine_fastcdc_cut(const struct engine_fastcdc *cdc, const uint8_t *p, size_t n);

#endif
