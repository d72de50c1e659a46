/* extents.c - change-tracking extent lists. */
#include "engine/extents.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void engine_extents_init(struct engine_extents *x)
{
	memset(x, 0, sizeof(*x));
	x->normalized = true;
}

void engine_extents_cleanup(struct engine_extents *x)
{
	free(x->v);
	engine_extents_init(x);
}

void engine_extents_add(struct engine_extents *x, uint64_t offset, uint64_t length)
{
	if (length == 0)
		return;
	if (x->n == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 64;
		x->v = xrealloc(x->v, x->cap * sizeof(*x->v));
	}
	x->v[x->n].offset = offset;
	x->v[x->n].length = length;
	x->n++;
	x->normalized = false;
}

static int cmp_ext(const void *a, const void *b)
{
	const struct engine_extent *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

void engine_extents_normalize(struct engine_extents *x)
{
	size_t w = 0;

	if (x->n > 1)
		qsort(x->v, x->n, sizeof(*x->v), cmp_ext);
	for (size_t i = 0; i < x->n; i++) {
		uint64_t end = x->v[i].offset + x->v[i].length;

		if (end < x->v[i].offset) /* clamp overflow */
			end = UINT64_MAX;
		if (w > 0 && x->v[i].offset <= x->v[w - 1].offset + x->v[w - 1].length) {
			uint64_t wend = x->v[w - 1].offset + x->v[w - 1].length;

			if (end > wend)
				x->v[w - 1].length = end - x->v[w - 1].offset;
		} else {
			x->v[w].offset = x->v[i].offset;
			x->v[w].length = end - x->v[i].offset;
			w++;
		}
	}
	x->n = w;
	x->normalized = true;
}

bool engine_extents_overlap(const struct engine_extents *x, uint64_t off, uint64_t len)
{
	size_t lo = 0, hi = x->n;

	if (len == 0)
		return false;
	/* first extent with offset >= off + len is not overlapping; find last with offset <
	 * off + len and check its end. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (x->v[mid].offset < off + len)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	return x->v[lo - 1].offset + x->v[lo - 1].length > off;
}

uint64_t engine_extents_total(const struct engine_extents *x)
{
	uint64_t t = 0;

	for (size_t i = 0; i < x->n; i++)
		t += x->v[i].length;
	return t;
}

static bool parse_u64(const char **s, uint64_t *out)
{
	char *end;

	while (**s == ' ' || **s == '\t' || **s == ',')
		(*s)++;
	if (!(**s >= '0' && **s <= '9'))
		return false;
	errno = 0;
	*out = strtoull(*s, &end, 0);
	if (errno != 0 || end == *s)
		return false;
	*s = end;
	return true;
}

enum status engine_extents_load(const char *path, struct engine_extents *x, struct err *e)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	enum status st = STATUS_OK;

	engine_extents_init(x);
	if (f == NULL)
		return err_set(e, errno == ENOENT ? STATUS_NOT_FOUND : STATUS_IO, "%s: %s", path,
		               strerror(errno));
	while (getline(&line, &cap, f) >= 0) {
		const char *s = line;
		uint64_t off, len;

		lineno++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '#' || *s == '\n' || *s == '\r' || *s == '\0')
			continue;
		if (!parse_u64(&s, &off) || !parse_u64(&s, &len)) {
			st = err_set(e, STATUS_INVALID, "%s:%ld: want OFFSET LENGTH", path, lineno);
			break;
		}
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		if (*s != '\0') {
			st = err_set(e, STATUS_INVALID, "%s:%ld: trailing text", path, lineno);
			break;
		}
		engine_extents_add(x, off, len);
	}
	if (st == STATUS_OK && ferror(f))
		st = err_set(e, STATUS_IO, "%s: read error", path);
	free(line);
	fclose(f);
	if (st != STATUS_OK)
		engine_extents_cleanup(x);
	else
		engine_extents_normalize(x);
	return st;
}
