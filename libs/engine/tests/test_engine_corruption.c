/* test_engine_corruption.c - the corruption matrix: bit flips in every header field and the
 * ciphertext, truncation, zero-length and missing chunks, swapped chunks, damaged, swapped
 * and missing manifests, and hostile headers. Each must be detected by verify and by
 * restore, named by chunk id and restore point, and restore must never leave bytes behind. */
#define _GNU_SOURCE /* nftw, mkostemp in the test helpers */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/chunk.h"
#include "engine/manifest.h"

#include "engine_test_util.h"

#include <cmocka.h>

#define CS ((size_t)64 << 10)

struct ctx {
	struct tenv *t;
	struct engine_repo *repo;
	struct engine_tenant_keys tk;
	char *img, *out;
	char rp[ENGINE_RP_ID_MAX];
	struct engine_manifest *m;
};

static int setup(void **state)
{
	struct ctx *c = xcalloc(1, sizeof(*c));
	size_t n = 6 * CS + 100;
	uint8_t *img = xcalloc(1, n);
	struct engine_disk_source d;
	struct engine_backup_opts o = { .chunk_size = CS, .threads = 2 };
	struct engine_backup_result res;
	struct engine_codec *codec;
	struct err e;

	c->t = tenv_new();
	c->repo = tenv_repo(c->t, "tenant-a", &c->tk);
	c->img = xasprintf("%s/disk.img", c->t->dir);
	c->out = xasprintf("%s/restored.img", c->t->dir);
	fill_random(img, 2 * CS, 1);       /* chunks 0,1: raw (incompressible) */
	memset(img + 2 * CS, 'x', 2 * CS); /* chunks 2,3: compressed */
	fill_random(img + 5 * CS, 100, 2); /* chunk 5: mostly zero; 4 is all zero */
	img[5 * CS + 5000] = 1;
	fill_random(img + 6 * CS, 100, 3); /* short last chunk */
	write_file(c->img, img, n);
	free(img);
	d = (struct engine_disk_source){ .name = "disk0", .path = c->img };
	assert_int_equal(engine_backup_run(c->repo, &c->tk, &d, 1, &o, &res, &e), STATUS_OK);
	snprintf(c->rp, sizeof(c->rp), "%s", res.rp_id);
	codec = engine_codec_new(&c->tk, 1, true);
	assert_int_equal(engine_manifest_load(c->repo, codec, c->rp, &c->m, &e), STATUS_OK);
	engine_codec_free(codec);
	assert_int_equal(c->m->disks[0].n_entries, 7);
	assert_int_equal(c->m->disks[0].entries[4].kind, ENGINE_ENTRY_ZERO);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	engine_manifest_free(c->m);
	engine_repo_free(c->repo);
	tenv_free(c->t);
	free(c->img);
	free(c->out);
	free(c);
	return 0;
}

/* verify and restore must both fail with want, naming hex (if given) and the rp. */
static void expect_failure(struct ctx *c, enum status want, const char *hex)
{
	struct engine_restore_opts ro = { .threads = 2 };
	struct engine_restore_result rr;
	struct engine_verify_report rep;
	struct err e;
	struct stat sb;
	enum status st;

	st = engine_verify_rp(c->repo, &c->tk, c->rp, &ro, &rep, &e);
	assert_int_equal(st, want);
	assert_non_null(strstr(e.msg, c->rp));
	if (hex != NULL) {
		assert_non_null(strstr(e.msg, hex));
		assert_int_equal(rep.n_problems, 1);
		assert_string_equal(rep.problems[0].chunk_id, hex);
		assert_int_equal(rep.problems[0].kind, want);
	}
	engine_verify_report_cleanup(&rep);

	st = engine_restore_disk(c->repo, &c->tk, c->rp, "disk0", c->out, &ro, &rr, &e);
	assert_int_equal(st, want);
	assert_non_null(strstr(e.msg, c->rp));
	if (hex != NULL)
		assert_non_null(strstr(e.msg, hex));
	assert_int_not_equal(stat(c->out, &sb), 0); /* nothing left behind */
}

static void expect_ok(struct ctx *c)
{
	struct engine_restore_opts ro = { .threads = 2 };
	struct engine_restore_result rr;
	struct err e;

	assert_int_equal(engine_restore_disk(c->repo, &c->tk, c->rp, "disk0", c->out, &ro, &rr, &e),
	                 STATUS_OK);
	assert_true(files_equal(c->img, c->out));
	unlink(c->out);
}

static char *chunk_path(struct ctx *c, size_t idx, char hex[65])
{
	const struct engine_manifest_entry *en = &c->m->disks[0].entries[idx];
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < 32; i++) {
		hex[2 * i] = digits[en->id[i] >> 4];
		hex[2 * i + 1] = digits[en->id[i] & 15];
	}
	hex[64] = '\0';
	return engine_repo_chunk_path(c->repo, en->id);
}

/* Every header byte position class and the payload, on a raw and a compressed chunk. */
static void test_bit_flips(void **state)
{
	struct ctx *c = *state;
	const size_t chunks[] = { 0, 2, 6 };
	const size_t positions[] = { 0, 4, 5, 6, 7, 8, 11, 12, 15, 16, 27, 28, 43, 44, 100 };

	expect_ok(c);
	for (size_t ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++) {
		char hex[65];
		char *p = chunk_path(c, chunks[ci], hex);
		size_t n;
		uint8_t *orig = read_file_all(p, &n);

		for (size_t pi = 0; pi < sizeof(positions) / sizeof(positions[0]); pi++) {
			for (int bit = 0; bit < 8; bit += 7) {
				uint8_t *b = xmalloc(n);
				size_t pos = positions[pi] < n ? positions[pi] : n - 1;

				memcpy(b, orig, n);
				b[pos] ^= (uint8_t)(1u << bit);
				write_file(p, b, n);
				expect_failure(c, STATUS_CORRUPT, hex);
				free(b);
			}
		}
		/* last byte (end of ciphertext) */
		uint8_t *b = xmalloc(n);
		memcpy(b, orig, n);
		b[n - 1] ^= 0x80;
		write_file(p, b, n);
		expect_failure(c, STATUS_CORRUPT, hex);
		free(b);
		write_file(p, orig, n);
		free(orig);
		free(p);
	}
	expect_ok(c);
}

static void test_truncation_and_zero_length(void **state)
{
	struct ctx *c = *state;
	char hex[65];
	char *p = chunk_path(c, 3, hex);
	size_t n;
	uint8_t *orig = read_file_all(p, &n);
	const size_t lens[] = { 0, 1, 43, 44, 45, n / 2, n - 1 };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		write_file(p, orig, lens[i]);
		expect_failure(c, STATUS_CORRUPT, hex);
	}
	/* appended garbage */
	uint8_t *b = xmalloc(n + 10);
	memcpy(b, orig, n);
	memset(b + n, 0, 10);
	write_file(p, b, n + 10);
	expect_failure(c, STATUS_CORRUPT, hex);
	free(b);
	write_file(p, orig, n);
	expect_ok(c);
	free(orig);
	free(p);
}

static void test_missing_chunk(void **state)
{
	struct ctx *c = *state;
	char hex[65];
	char *p = chunk_path(c, 5, hex);
	size_t n;
	uint8_t *orig = read_file_all(p, &n);

	assert_int_equal(unlink(p), 0);
	expect_failure(c, STATUS_NOT_FOUND, hex);
	write_file(p, orig, n);
	expect_ok(c);
	free(orig);
	free(p);
}

/* A valid chunk served under another id: the id is AAD, so GCM fails. */
static void test_swapped_chunk(void **state)
{
	struct ctx *c = *state;
	char hex0[65], hex1[65];
	char *p0 = chunk_path(c, 0, hex0), *p1 = chunk_path(c, 1, hex1);
	size_t n0, n1;
	uint8_t *b0 = read_file_all(p0, &n0), *b1 = read_file_all(p1, &n1);

	write_file(p1, b0, n0);
	expect_failure(c, STATUS_CORRUPT, hex1);
	write_file(p1, b1, n1);
	expect_ok(c);
	free(b0);
	free(b1);
	free(p0);
	free(p1);
}

static char *manifest_path(struct ctx *c, const char *rp)
{
	return xasprintf("%s/tenant-a/manifests/%s.mf", c->t->repo_dir, rp);
}

static void test_damaged_manifest(void **state)
{
	struct ctx *c = *state;
	char *p = manifest_path(c, c->rp);
	size_t n;
	uint8_t *orig = read_file_all(p, &n);

	for (size_t pos = 0; pos < n; pos += (pos < 64 ? 1 : 37)) {
		uint8_t *b = xmalloc(n);

		memcpy(b, orig, n);
		b[pos] ^= 0x10;
		write_file(p, b, n);
		expect_failure(c, STATUS_CORRUPT, NULL);
		free(b);
	}
	write_file(p, orig, n / 2);
	expect_failure(c, STATUS_CORRUPT, NULL);
	write_file(p, orig, 0);
	expect_failure(c, STATUS_CORRUPT, NULL);
	unlink(p);
	expect_failure(c, STATUS_NOT_FOUND, NULL);
	write_file(p, orig, n);
	expect_ok(c);

	/* a valid manifest renamed to another restore point is rejected (id bound as AAD) */
	char *other = manifest_path(c, "other-rp");
	write_file(other, orig, n);
	struct engine_codec *codec = engine_codec_new(&c->tk, 1, true);
	struct engine_manifest *m = NULL;
	struct err e;
	assert_int_equal(engine_manifest_load(c->repo, codec, "other-rp", &m, &e), STATUS_CORRUPT);
	assert_null(m);
	engine_codec_free(codec);
	free(other);
	free(orig);
	free(p);
}

/* Headers that claim huge sizes are rejected before any allocation or decompression. */
static void test_hostile_header(void **state)
{
	struct ctx *c = *state;
	char hex[65];
	char *p = chunk_path(c, 2, hex);
	size_t n;
	uint8_t *orig = read_file_all(p, &n);
	uint8_t *b = xmalloc(n);
	struct engine_codec *codec = engine_codec_new(&c->tk, 1, true);
	uint8_t out[16];
	size_t outl;
	struct engine_chunk_header h;
	struct err e;

	/* plaintext length 4 GiB - 1 */
	memcpy(b, orig, n);
	b[8] = b[9] = b[10] = b[11] = 0xff;
	write_file(p, b, n);
	expect_failure(c, STATUS_CORRUPT, hex);
	assert_int_equal(engine_chunk_header_parse(b, n, ENGINE_CHUNK_MAX, &h, &e), STATUS_CORRUPT);
	assert_non_null(strstr(e.msg, "exceeds limit"));
	/* the codec with a tiny output buffer rejects even the honest header */
	assert_int_equal(engine_codec_open(codec, ENGINE_KIND_CHUNK, c->m->disks[0].entries[2].id,
	                                   orig, n, out, sizeof(out), &outl, &e),
	                 STATUS_CORRUPT);
	/* stored length larger than the file */
	memcpy(b, orig, n);
	b[15] = 0x7f;
	write_file(p, b, n);
	expect_failure(c, STATUS_CORRUPT, hex);
	/* a sealed 8 MiB+1 plaintext is refused by the reader's 64 KiB limit (decompression
	 * bomb: the chunk is valid and authenticated but claims more than the entry allows) */
	size_t big = ENGINE_CHUNK_MAX;
	uint8_t *zeros = xcalloc(1, big);
	uint8_t *sealed = xmalloc(engine_sealed_bound(big));
	size_t sl;
	assert_int_equal(engine_codec_seal(codec, ENGINE_KIND_CHUNK, c->m->disks[0].entries[2].id,
	                                   zeros, big, sealed, &sl, &e),
	                 STATUS_OK);
	assert_true(sl < 4096); /* compressed tiny */
	write_file(p, sealed, sl);
	expect_failure(c, STATUS_CORRUPT, hex);
	free(sealed);
	free(zeros);
	engine_codec_free(codec);
	write_file(p, orig, n);
	expect_ok(c);
	free(b);
	free(orig);
	free(p);
}

static void test_decode_fuzz(void **state)
{
	struct ctx *c = *state;
	size_t n;
	uint8_t *enc = engine_manifest_encode(c->m, &n);
	struct engine_manifest *m;
	struct err e;

	m = engine_manifest_decode(enc, n, &e);
	assert_non_null(m);
	engine_manifest_free(m);
	/* every truncation and many flips of the plaintext encoding fail cleanly or parse into
	 * a self-consistent manifest (no crash, no over-read: ASan) */
	for (size_t len = 0; len < n; len++) {
		m = engine_manifest_decode(enc, len, &e);
		assert_null(m);
	}
	for (size_t pos = 0; pos < n; pos++) {
		enc[pos] ^= 0xff;
		m = engine_manifest_decode(enc, n, &e);
		engine_manifest_free(m);
		enc[pos] ^= 0xff;
	}
	free(enc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bit_flips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation_and_zero_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_chunk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swapped_chunk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_fuzz, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
