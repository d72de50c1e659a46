/* sha256.c - SHA-256 / HMAC-SHA-256 with a fused two-state update (see sha256.h). */
#include "engine/sha256.h"

#include <stdatomic.h>
#include <string.h>

#include "engine/keys.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define SHA_X86 1
#endif

static const uint32_t K256[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

static const uint32_t IV256[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	                           0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

/* ---- portable compression ---- */

static uint32_t ror(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void blocks_c(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
	uint32_t w[64];

	for (; nblocks > 0; nblocks--, p += 64) {
		uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
		uint32_t e = st[4], f = st[5], g = st[6], h = st[7];

		for (int t = 0; t < 16; t++)
			w[t] = be32(p + (size_t)4 * t);
		for (int t = 16; t < 64; t++) {
			uint32_t s0 = ror(w[t - 15], 7) ^ ror(w[t - 15], 18) ^ (w[t - 15] >> 3);
			uint32_t s1 = ror(w[t - 2], 17) ^ ror(w[t - 2], 19) ^ (w[t - 2] >> 10);

			w[t] = w[t - 16] + s0 + w[t - 7] + s1;
		}
		for (int t = 0; t < 64; t++) {
			uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) +
			              ((e & f) ^ (~e & g)) + K256[t] + w[t];
			uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) +
			              ((a & b) ^ (a & c) ^ (b & c));

			h = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}
		st[0] += a;
		st[1] += b;
		st[2] += c;
		st[3] += d;
		st[4] += e;
		st[5] += f;
		st[6] += g;
		st[7] += h;
	}
	engine_key_wipe(w, sizeof(w)); /* message words */
}

/* ---- SHA extensions ----
 * sha256rnds2 works on the state split as ABEF and CDGH; pack/unpack convert from and to
 * the h[0..7] order. One 4-word step of the message schedule is
 * W[i] = msg2(msg1(W[i-4], W[i-3]) + alignr(W[i-1], W[i-2], 4), W[i-1]). */
#ifdef SHA_X86
#define SHA_TARGET __attribute__((target("sha,ssse3,sse4.1")))

SHA_TARGET static void ni_pack(const uint32_t st[8], __m128i *abef, __m128i *cdgh)
{
	__m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)st), 0xB1);
	__m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(st + 4)), 0x1B);

	*abef = _mm_alignr_epi8(dcba, hgfe, 8);
	*cdgh = _mm_blend_epi16(hgfe, dcba, 0xF0);
}

SHA_TARGET static void ni_unpack(uint32_t st[8], __m128i abef, __m128i cdgh)
{
	__m128i feba = _mm_shuffle_epi32(abef, 0x1B);
	__m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);

	_mm_storeu_si128((__m128i *)st, _mm_blend_epi16(feba, dchg, 0xF0));
	_mm_storeu_si128((__m128i *)(st + 4), _mm_alignr_epi8(dchg, feba, 8));
}

SHA_TARGET static __m128i ni_sched(const __m128i w[4], int r)
{
	__m128i t = _mm_sha256msg1_epu32(w[r & 3], w[(r + 1) & 3]);

	t = _mm_add_epi32(t, _mm_alignr_epi8(w[(r + 3) & 3], w[(r + 2) & 3], 4));
	return _mm_sha256msg2_epu32(t, w[(r + 3) & 3]);
}

SHA_TARGET static void ni_load(__m128i w[4], const uint8_t *p)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);

	for (int i = 0; i < 4; i++)
		w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + (size_t)16 * i)),
		                        bswap);
}

SHA_TARGET static void blocks_ni(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
	__m128i s0, s1;

	ni_pack(st, &s0, &s1);
	for (; nblocks > 0; nblocks--, p += 64) {
		__m128i a0 = s0, a1 = s1, w[4];

		ni_load(w, p);
		_Pragma("GCC unroll 16") for (int r = 0; r < 16; r++)
		{
			if (r >= 4)
				w[r & 3] = ni_sched(w, r);
			__m128i m = _mm_add_epi32(
			        w[r & 3], _mm_loadu_si128((const __m128i *)(K256 + (size_t)4 * r)));

			s1 = _mm_sha256rnds2_epu32(s1, s0, m);
			s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(m, 0x0E));
		}
		s0 = _mm_add_epi32(s0, a0);
		s1 = _mm_add_epi32(s1, a1);
	}
	ni_unpack(st, s0, s1);
}

/* The same blocks into two states: one message schedule, two interleaved round chains. */
SHA_TARGET static void blocks2_ni(uint32_t sa[8], uint32_t sb[8], const uint8_t *p, size_t nblocks)
{
	__m128i s0, s1, t0, t1;

	ni_pack(sa, &s0, &s1);
	ni_pack(sb, &t0, &t1);
	for (; nblocks > 0; nblocks--, p += 64) {
		__m128i a0 = s0, a1 = s1, b0 = t0, b1 = t1, w[4];

		ni_load(w, p);
		_Pragma("GCC unroll 16") for (int r = 0; r < 16; r++)
		{
			if (r >= 4)
				w[r & 3] = ni_sched(w, r);
			__m128i m = _mm_add_epi32(
			        w[r & 3], _mm_loadu_si128((const __m128i *)(K256 + (size_t)4 * r)));
			__m128i mh = _mm_shuffle_epi32(m, 0x0E);

			s1 = _mm_sha256rnds2_epu32(s1, s0, m);
			t1 = _mm_sha256rnds2_epu32(t1, t0, m);
			s0 = _mm_sha256rnds2_epu32(s0, s1, mh);
			t0 = _mm_sha256rnds2_epu32(t0, t1, mh);
		}
		s0 = _mm_add_epi32(s0, a0);
		s1 = _mm_add_epi32(s1, a1);
		t0 = _mm_add_epi32(t0, b0);
		t1 = _mm_add_epi32(t1, b1);
	}
	ni_unpack(sa, s0, s1);
	ni_unpack(sb, t0, t1);
}

static bool cpu_has_sha(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
}
#else
static bool cpu_has_sha(void)
{
	return false;
}
#endif

/* What the CPU supports, decided once per process like OpenSSL's capability vector
 * (OPENSSL_ia32cap): 0 not decided yet, 1 portable, 2 SHA extensions. Only the test hook
 * engine_sha256_set_fast changes it afterwards. */
static atomic_int mode;

bool engine_sha256_fast(void)
{
	int m = atomic_load_explicit(&mode, memory_order_relaxed);

	if (m == 0) {
		m = cpu_has_sha() ? 2 : 1;
		atomic_store(&mode, m);
	}
	return m == 2;
}

void engine_sha256_set_fast(bool on)
{
	atomic_store(&mode, on && cpu_has_sha() ? 2 : 1);
}

static void blocks(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
#ifdef SHA_X86
	if (engine_sha256_fast()) {
		blocks_ni(st, p, nblocks);
		return;
	}
#endif
	blocks_c(st, p, nblocks);
}

static void blocks2(uint32_t sa[8], uint32_t sb[8], const uint8_t *p, size_t nblocks)
{
#ifdef SHA_X86
	if (engine_sha256_fast()) {
		blocks2_ni(sa, sb, p, nblocks);
		return;
	}
#endif
	blocks_c(sa, p, nblocks);
	blocks_c(sb, p, nblocks);
}

/* ---- SHA-256 ---- */

void engine_sha256_init(struct engine_sha256 *s)
{
	memcpy(s->h, IV256, sizeof(s->h));
	s->total = 0;
	s->nbuf = 0;
}

void engine_sha256_update(struct engine_sha256 *s, const void *p, size_t n)
{
	const uint8_t *in = p;

	if (n == 0)
		return;
	s->total += n;
	if (s->nbuf > 0) {
		size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;

		memcpy(s->buf + s->nbuf, in, take);
		s->nbuf += (uint32_t)take;
		in += take;
		n -= take;
		if (s->nbuf < 64)
			return;
		blocks(s->h, s->buf, 1);
		s->nbuf = 0;
	}
	if (n >= 64) {
		blocks(s->h, in, n / 64);
		in += n & ~(size_t)63;
		n &= 63;
	}
	memcpy(s->buf, in, n);
	s->nbuf = (uint32_t)n;
}

void engine_sha256_update2(struct engine_sha256 *a, struct engine_sha256 *b, const void *p,
                           size_t n)
{
	const uint8_t *in = p;

	if (n == 0)
		return;
	if (a->nbuf != b->nbuf || a->nbuf != 0) {
		engine_sha256_update(a, p, n);
		engine_sha256_update(b, p, n);
		return;
	}
	a->total += n;
	b->total += n;
	if (n >= 64) {
		blocks2(a->h, b->h, in, n / 64);
		in += n & ~(size_t)63;
		n &= 63;
	}
	memcpy(a->buf, in, n);
	memcpy(b->buf, in, n);
	a->nbuf = b->nbuf = (uint32_t)n;
}

void engine_sha256_final(struct engine_sha256 *s, uint8_t out[ENGINE_SHA256_LEN])
{
	uint64_t bits = s->total * 8;

	s->buf[s->nbuf++] = 0x80;
	if (s->nbuf > 56) {
		memset(s->buf + s->nbuf, 0, 64 - s->nbuf);
		blocks(s->h, s->buf, 1);
		s->nbuf = 0;
	}
	memset(s->buf + s->nbuf, 0, 56 - s->nbuf);
	for (int i = 0; i < 8; i++)
		s->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	blocks(s->h, s->buf, 1);
	for (size_t i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
	engine_key_wipe(s->buf, sizeof(s->buf)); /* may hold message bytes */
}

/* ---- HMAC-SHA-256 ---- */

void engine_hmac256_init(struct engine_hmac256 *k, const uint8_t *key, size_t keylen)
{
	uint8_t kb[64] = { 0 }, pad[64];

	if (keylen > sizeof(kb)) {
		struct engine_sha256 s;

		engine_sha256_init(&s);
		engine_sha256_update(&s, key, keylen);
		engine_sha256_final(&s, kb);
		engine_key_wipe(&s, sizeof(s)); /* s.h is the effective key */
	} else if (keylen > 0) {
		memcpy(kb, key, keylen);
	}
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = kb[i] ^ 0x36;
	engine_sha256_init(&k->inner);
	engine_sha256_update(&k->inner, pad, sizeof(pad));
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = kb[i] ^ 0x5c;
	engine_sha256_init(&k->outer);
	engine_sha256_update(&k->outer, pad, sizeof(pad));
	engine_key_wipe(kb, sizeof(kb)); /* key material off the stack */
	engine_key_wipe(pad, sizeof(pad));
}

void engine_hmac256_start(const struct engine_hmac256 *k, struct engine_sha256 *s)
{
	*s = k->inner;
}

void engine_hmac256_finish(const struct engine_hmac256 *k, struct engine_sha256 *s,
                           uint8_t out[ENGINE_SHA256_LEN])
{
	uint8_t inner[ENGINE_SHA256_LEN];
	struct engine_sha256 o = k->outer;

	engine_sha256_final(s, inner);
	engine_sha256_update(&o, inner, sizeof(inner));
	engine_sha256_final(&o, out);
}
